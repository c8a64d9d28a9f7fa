#include <stddef.h>
#include "pcommon.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pc_buf_add(pc_buf *b, const void *p, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) return -1;
    b->p = q;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, p, n);
  b->n += n;
  b->p[b->n] = 0;
  return 0;
}

int pc_buf_adds(pc_buf *b, const char *s) { return pc_buf_add(b, s, strlen(s)); }

int pc_buf_printf(pc_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (len < 0) return -1;
  if (pc_buf_add(b, "", 0) < 0) return -1; /* ensure an allocation exists */
  size_t need = b->n + (size_t)len + 1;
  if (need > b->cap) {
    size_t cap = b->cap;
    while (cap < need) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) return -1;
    b->p = q;
    b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->p + b->n, (size_t)len + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)len;
  return 0;
}

void pc_buf_free(pc_buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

void pc_err_set(pc_err *e, int status, const char *param, const char *fmt, ...) {
  if (!e) return;
  e->status = status;
  snprintf(e->param, sizeof e->param, "%s", param ? param : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  /* an upstream's empty error text must not give the client an empty message */
  if (!e->msg[0]) snprintf(e->msg, sizeof e->msg, "upstream error (no message given, status %d)", status);
}

int pc_str_eq(aigw_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.n == n && memcmp(s.p, lit, n) == 0;
}

int pc_has_ctl(aigw_str s) {
  for (size_t i = 0; i < s.n; i++) {
    unsigned char c = (unsigned char)s.p[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f) return 1;
  }
  return 0;
}

const aigw_json *pc_member_at(const aigw_host *H, const aigw_json *obj, size_t i, aigw_str *name) {
  aigw_str k;
  char key[256];
  if (H->json_key_at(obj, i, &k) != AIGW_OK || k.n >= sizeof key) return NULL;
  if (name) *name = k;
  memcpy(key, k.p, k.n);
  key[k.n] = '\0';
  return H->json_get(obj, key);
}

aigw_str pc_credential(const aigw_host *H, aigw_req *r) {
  aigw_str s = {NULL, 0};
  if (H->abi_minor < 3 || H->struct_size < offsetof(aigw_host, credential) + sizeof H->credential || !H->credential ||
      H->credential(r, &s) != AIGW_OK)
    return (aigw_str){NULL, 0};
  return s;
}

char *pc_strndup(const char *p, size_t n) {
  char *s = malloc(n + 1);
  if (s) {
    memcpy(s, p, n);
    s[n] = 0;
  }
  return s;
}

/* A borrowed host JSON node -> a new cJSON tree, at most 16 levels deep. */
static cJSON *to_cjson_d(const aigw_host *H, const aigw_json *j, int depth) {
  if (depth > 16) return NULL;
  aigw_str s;
  double d;
  switch (H->json_type(j)) {
  case AIGW_JSON_NULL: return cJSON_CreateNull();
  case AIGW_JSON_TRUE: return cJSON_CreateTrue();
  case AIGW_JSON_FALSE: return cJSON_CreateFalse();
  case AIGW_JSON_NUMBER: return H->json_num(j, &d) == AIGW_OK ? cJSON_CreateNumber(d) : NULL;
  case AIGW_JSON_STRING: {
    if (H->json_str(j, &s) != AIGW_OK) return NULL;
    char *t = pc_strndup(s.p, s.n);
    cJSON *o = t ? cJSON_CreateString(t) : NULL;
    free(t);
    return o;
  }
  case AIGW_JSON_ARRAY: {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < H->json_len(j); i++) {
      cJSON *c = to_cjson_d(H, H->json_at(j, i), depth + 1);
      if (!c || !cJSON_AddItemToArray(a, c)) {
        cJSON_Delete(c);
        cJSON_Delete(a);
        return NULL;
      }
    }
    return a;
  }
  case AIGW_JSON_OBJECT: {
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i < H->json_len(j); i++) {
      aigw_str k;
      char *kn = H->json_key_at(j, i, &k) == AIGW_OK ? pc_strndup(k.p, k.n) : NULL;
      const aigw_json *v = kn ? H->json_get(j, kn) : NULL; /* json_at is for arrays only */
      cJSON *c = v ? to_cjson_d(H, v, depth + 1) : NULL;
      if (!c || !cJSON_AddItemToObject(o, kn, c)) {
        free(kn);
        cJSON_Delete(c);
        cJSON_Delete(o);
        return NULL;
      }
      free(kn);
    }
    return o;
  }
  default: return NULL;
  }
}

cJSON *pc_to_cjson(const aigw_host *H, const aigw_json *j) { return to_cjson_d(H, j, 0); }

char *pc_dup(aigw_str s) { return pc_strndup(s.p ? s.p : "", s.n); }

void pc_free_list(char **v, size_t n) {
  for (size_t i = 0; v && i < n; i++) free(v[i]);
  free(v);
}

int pc_header_names(const aigw_host *H, const aigw_json *hs, char **out, size_t max, size_t *n, aigw_diag *d) {
  *n = 0;
  if (H->json_type(hs) != AIGW_JSON_ARRAY || !H->json_len(hs) || H->json_len(hs) > max) {
    H->diag_error(d, "/headers", "must be an array of 1 to %zu header names", max);
    return -1;
  }
  for (size_t i = 0; i < H->json_len(hs); i++) {
    aigw_str s;
    if (H->json_str(H->json_at(hs, i), &s) != AIGW_OK || !s.n || s.n > 100 || memchr(s.p, 0, s.n) || pc_has_ctl(s)) {
      char p[64];
      snprintf(p, sizeof p, "/headers/%zu", i);
      H->diag_error(d, p, "must be a header name");
      return -1;
    }
    char *h = pc_dup(s);
    if (!h) return -2;
    for (char *c = h; *c; c++)
      if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    out[(*n)++] = h;
  }
  return 0;
}
