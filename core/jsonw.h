/* jsonw.h - a tiny streaming JSON writer into a growable buffer.
 *
 * Used for access-log lines, error bodies and admin output: values are appended in document order
 * and commas are placed automatically (nesting up to JW_MAX_DEPTH levels).
 *
 *     char stack[512];
 *     jsonw w;
 *     jw_init(&w, stack, sizeof stack);
 *     jw_obj_begin(&w);
 *     jw_kcstr(&w, "model", model);
 *     jw_kint(&w, "status", 200);
 *     jw_obj_end(&w);
 *     if (!w.err) write(fd, w.buf, w.len);
 *     jw_free(&w);
 *
 * OWNERSHIP: the jsonw struct itself belongs to the caller (usually on its stack). `initial` passed
 * to jw_init stays the caller's: the writer fills it until it overflows, then continues in memory it
 * malloc's itself (copying what was written). jw_free frees only memory the writer allocated.
 * w->buf is valid until the next write call or jw_free; jw_take hands the text over to the caller.
 *
 * ERRORS: w->err is sticky. JW_ENOMEM on allocation failure, JW_EUSAGE on misuse (end without a
 * matching begin, key outside an object, nesting deeper than JW_MAX_DEPTH). Once set, every
 * further call is a no-op and the buffer content must not be used.
 *
 * THREADS: a jsonw is used by one thread at a time; distinct writers need no locking.
 * All functions are re-entrant; jw_fmt_double is thread-safe and independent of the locale.
 */
#ifndef AIGW_JSONW_H
#define AIGW_JSONW_H

#include <stddef.h>

#define JW_MAX_DEPTH 32
#define JW_ENOMEM 1
#define JW_EUSAGE 2

typedef struct jsonw {
    char *buf;        /* the text so far; NUL-terminated whenever err == 0 and buf != NULL */
    size_t len, cap;  /* bytes written (without the NUL), bytes available in buf */
    int need_comma;   /* the next value needs a ',' before it */
    int err;          /* 0, JW_ENOMEM or JW_EUSAGE; sticky */
    /* internal */
    int owned;        /* buf was malloc'd by the writer */
    int depth;        /* open containers */
    unsigned int kinds; /* bit i set: container at depth i+1 is an object */
} jsonw;

/* Prepares w. initial/cap: caller memory to write into first (may be NULL/0: the writer mallocs on
 * the first write). With cap > 0, buf is "" right away. */
void jw_init(jsonw *w, char *initial, size_t cap);
/* Frees what the writer allocated; w may be jw_init'ed again afterwards. */
void jw_free(jsonw *w);
/* Returns the text as a malloc'd NUL-terminated string the caller frees (length in *len if len is
 * not NULL), or NULL if w->err is set or allocation fails. Leaves w empty (as after jw_free). */
char *jw_take(jsonw *w, size_t *len);

void jw_obj_begin(jsonw *w);
void jw_obj_end(jsonw *w);
void jw_arr_begin(jsonw *w);
void jw_arr_end(jsonw *w);
/* Object key (NUL-terminated, escaped like jw_str); the next call writes its value. */
void jw_key(jsonw *w, const char *k);

/* String value of n bytes (may contain NUL bytes, written as \u0000). Escapes per RFC 8259:
 * '"', '\\' and control characters; invalid UTF-8 is replaced by U+FFFD (one per maximal invalid
 * subsequence, as Unicode recommends). s == NULL writes null. */
void jw_str(jsonw *w, const char *s, size_t n);
/* NUL-terminated string value; NULL writes null. */
void jw_cstr(jsonw *w, const char *s);
void jw_int(jsonw *w, long long v);
/* Shortest text that reads back as the same double (e.g. 0.1, 0.000123, 1.5e-07, 1e+20);
 * NaN and infinities are written as null. Never affected by setlocale(). */
void jw_num(jsonw *w, double v);
void jw_bool(jsonw *w, int v);
void jw_null(jsonw *w);
/* Inserts n bytes of already-valid JSON as one value (not checked). */
void jw_raw(jsonw *w, const char *json, size_t n);

/* key + value in one call */
void jw_kstr(jsonw *w, const char *k, const char *s, size_t n);
void jw_kcstr(jsonw *w, const char *k, const char *s);
void jw_kint(jsonw *w, const char *k, long long v);
void jw_knum(jsonw *w, const char *k, double v);
void jw_kbool(jsonw *w, const char *k, int v);

/* Formats a finite double into out (at least 32 bytes) as the shortest %g form that reads back
 * exactly, with '.' as the decimal point whatever the locale; returns the length. Non-finite
 * values write nothing and return 0 (callers choose null, +Inf, ...). Thread-safe. */
size_t jw_fmt_double(char *out, double v);

/* UTF-8 at p[0..n), n >= 1: returns how many bytes form a valid prefix of the sequence that starts
 * there (lead included, at least 1) and sets *need to the sequence's full length (0: invalid lead
 * byte). The sequence is well-formed exactly when the return value equals *need. */
size_t jw_utf8_prefix(const unsigned char *p, size_t n, size_t *need);

#endif
