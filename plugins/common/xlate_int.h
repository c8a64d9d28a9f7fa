/* xlate_int.h - helpers shared by the xlate*.c files (not for plugins: use xlate.h).
 *
 * Tree building goes through an xl_ctx: every xl_put/xl_push takes ownership of the new item,
 * and on any failure (NULL item, OOM) deletes it and marks the context failed with a 500, so the
 * builders check once at the end instead of after every allocation. The first error wins. */
#ifndef AIGW_XLATE_INT_H
#define AIGW_XLATE_INT_H

#include "xlate.h"

typedef struct xl_ctx {
  pc_err *err;
  int failed;
} xl_ctx;

/* Set the first error (later ones are ignored). Returns -1. */
int xl_fail(xl_ctx *c, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Add v (owned) to object o under k / append to array a. NULL v or failure: v deleted, context
 * failed (500). Returns v or NULL. */
cJSON *xl_put(xl_ctx *c, cJSON *o, const char *k, cJSON *v);
cJSON *xl_push(xl_ctx *c, cJSON *a, cJSON *v);
cJSON *xl_put_str(xl_ctx *c, cJSON *o, const char *k, const char *s);
cJSON *xl_put_num(xl_ctx *c, cJSON *o, const char *k, double v);
cJSON *xl_put_dup(xl_ctx *c, cJSON *o, const char *k, const cJSON *src); /* deep copy */
cJSON *xl_obj(xl_ctx *c); /* new object, or NULL + failed */
cJSON *xl_arr(xl_ctx *c);

/* Borrowed lookups (case-sensitive); typed getters return NULL / dflt when absent or mistyped. */
const cJSON *xl_get(const cJSON *o, const char *k);
const char *xl_str(const cJSON *o, const char *k);
const cJSON *xl_objm(const cJSON *o, const char *k); /* member that is an object */
const cJSON *xl_arrm(const cJSON *o, const char *k); /* member that is an array */
int xl_num(const cJSON *o, const char *k, double *out); /* 1 if a number */
long long xl_ll(const cJSON *o, const char *k, long long dflt);

/* "data:<mime>[;...];base64,<b64>": mime copied into mime (truncated), *b64 points into url.
 * Returns 1 when url is such a data URL. */
int xl_data_url(const char *url, char *mime, size_t mime_cap, const char **b64);

/* Parse n bytes of JSON (not NUL-terminated). NULL when invalid. */
cJSON *xl_parse(const char *p, size_t n);

/* dst = "<base>.<member>[<i>]" (truncated to cap) */
void xl_subpath(char *dst, size_t cap, const char *base, const char *member, int i);

/* Copy s into dst (cap bytes), truncating. */
void xl_cpy(char *dst, size_t cap, const char *s);

/* Message id mapping (see xlate.h "Ids"). Writes into out. */
void xl_id_anth_to_hub(const char *id, char *out, size_t cap);
void xl_id_hub_to_anth(const char *id, char *out, size_t cap);



/* usage helpers (xlate_anth_resp.c) */
cJSON *xl_hub_usage(xl_ctx *c, long long in, long long out, long long cache_read, long long cache_create,
                    long long think);
void xl_usage_from_hub(const cJSON *u, long long *in, long long *out, long long *cache_read, long long *cache_create);
cJSON *xl_anth_usage(xl_ctx *c, long long in, long long out, long long cache_read, long long cache_create);
const cJSON *xl_hub_choice0(const cJSON *h);
#endif
