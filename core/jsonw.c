/* jsonw.c - see jsonw.h. */
#include "jsonw.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(jsonw *w, char *initial, size_t cap)
{
    memset(w, 0, sizeof *w);
    if (initial && cap > 0) {
        w->buf = initial;
        w->cap = cap;
        w->buf[0] = '\0';
    }
}

void jw_free(jsonw *w)
{
    if (w->owned)
        free(w->buf);
    memset(w, 0, sizeof *w);
}

char *jw_take(jsonw *w, size_t *len)
{
    char *out = NULL;
    if (w->err)
        goto done;
    if (w->owned) {
        out = w->buf;
        w->owned = 0;
    } else {
        out = malloc(w->len + 1);
        if (!out)
            goto done;
        if (w->len)
            memcpy(out, w->buf, w->len);
        out[w->len] = '\0';
    }
    if (len)
        *len = w->len;
done:
    jw_free(w);
    return out;
}

/* Makes room for n more bytes plus the terminating NUL. Returns 0, or -1 with err set. */
static int reserve(jsonw *w, size_t n)
{
    if (w->err)
        return -1;
    if (w->cap > w->len && n < w->cap - w->len)
        return 0;
    if (n > SIZE_MAX / 2 - w->len - 1) {
        w->err = JW_ENOMEM;
        return -1;
    }
    size_t need = w->len + n + 1;
    size_t ncap = w->cap < 256 ? 256 : w->cap;
    while (ncap < need)
        ncap *= 2;
    char *nb;
    if (w->owned) {
        nb = realloc(w->buf, ncap);
    } else {
        nb = malloc(ncap);
        if (nb && w->len)
            memcpy(nb, w->buf, w->len);
    }
    if (!nb) {
        w->err = JW_ENOMEM;
        return -1;
    }
    w->buf = nb;
    w->cap = ncap;
    w->owned = 1;
    return 0;
}

static void put(jsonw *w, const char *s, size_t n)
{
    if (reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

/* Starts a value: comma if needed. Returns 0 if the caller may write. */
static int value_begin(jsonw *w)
{
    if (w->err)
        return -1;
    if (w->need_comma)
        put(w, ",", 1);
    return w->err ? -1 : 0;
}

static void container_begin(jsonw *w, int is_obj)
{
    if (value_begin(w))
        return;
    if (w->depth >= JW_MAX_DEPTH) {
        w->err = JW_EUSAGE;
        return;
    }
    put(w, is_obj ? "{" : "[", 1);
    if (is_obj)
        w->kinds |= 1u << w->depth;
    else
        w->kinds &= ~(1u << w->depth);
    w->depth++;
    w->need_comma = 0;
}

static void container_end(jsonw *w, int is_obj)
{
    if (w->err)
        return;
    if (w->depth == 0 || !!(w->kinds & (1u << (w->depth - 1))) != is_obj) {
        w->err = JW_EUSAGE;
        return;
    }
    w->depth--;
    put(w, is_obj ? "}" : "]", 1);
    w->need_comma = 1;
}

void jw_obj_begin(jsonw *w) { container_begin(w, 1); }
void jw_obj_end(jsonw *w) { container_end(w, 1); }
void jw_arr_begin(jsonw *w) { container_begin(w, 0); }
void jw_arr_end(jsonw *w) { container_end(w, 0); }

/* UTF-8 sequence: lengths and the allowed range of the second byte exclude overlong forms,
 * surrogates and code points above U+10FFFF (Unicode Table 3-7). */
size_t jw_utf8_prefix(const unsigned char *p, size_t n, size_t *need)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
        *need = 1;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        *need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        *need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        *need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *need = 0;
        return 1;
    }
    size_t k = 1;
    while (k < *need && k < n) {
        unsigned char cc = p[k];
        if (k == 1 ? (cc < lo || cc > hi) : (cc < 0x80 || cc > 0xBF))
            break;
        k++;
    }
    return k;
}

/* Bytes that need more than a plain copy: control characters, '"', '\\' and all non-ASCII. */
static int special(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
}

/* Writes the quoted, escaped form of s[0..n). */
static void put_string(jsonw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    /* Worst case is 6 output bytes per input byte (\u00XX); reserving up front keeps the loop
     * free of checks for ordinary sizes. */
    if (n > (SIZE_MAX - 2) / 6) {
        w->err = JW_ENOMEM;
        return;
    }
    if (reserve(w, n * 6 + 2))
        return;
    char *o = w->buf + w->len;
    *o++ = '"';
    while (i < n) {
        size_t run = i;
        while (run < n && !special(p[run]))
            run++;
        if (run > i) {
            memcpy(o, p + i, run - i);
            o += run - i;
            i = run;
            if (i == n)
                break;
        }
        unsigned char c = p[i];
        if (c < 0x80) {
            *o++ = '\\';
            switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:
                *o++ = 'u'; *o++ = '0'; *o++ = '0';
                *o++ = hex[c >> 4]; *o++ = hex[c & 15];
            }
            i++;
            continue;
        }
        size_t need, k = jw_utf8_prefix(p + i, n - i, &need);
        if (need && k == need) {
            memcpy(o, p + i, k);
            o += k;
        } else {
            /* maximal subpart of an ill-formed sequence -> one U+FFFD */
            *o++ = (char)0xEF; *o++ = (char)0xBF; *o++ = (char)0xBD;
        }
        i += k;
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
    w->buf[w->len] = '\0';
}

void jw_key(jsonw *w, const char *k)
{
    if (w->err)
        return;
    if (w->depth == 0 || !(w->kinds & (1u << (w->depth - 1))) || !k) {
        w->err = JW_EUSAGE;
        return;
    }
    if (value_begin(w))
        return;
    put_string(w, k, strlen(k));
    put(w, ":", 1);
    w->need_comma = 0;
}

void jw_str(jsonw *w, const char *s, size_t n)
{
    if (!s) {
        jw_null(w);
        return;
    }
    if (value_begin(w))
        return;
    put_string(w, s, n);
    w->need_comma = 1;
}

void jw_cstr(jsonw *w, const char *s)
{
    jw_str(w, s, s ? strlen(s) : 0);
}

void jw_raw(jsonw *w, const char *json, size_t n)
{
    if (value_begin(w))
        return;
    put(w, json, n);
    w->need_comma = 1;
}

void jw_int(jsonw *w, long long v)
{
    char tmp[24];
    char *e = tmp + sizeof tmp, *p = e;
    /* manual conversion: unsigned magnitude handles LLONG_MIN */
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    jw_raw(w, p, (size_t)(e - p));
}

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

size_t jw_fmt_double(char *out, double v)
{
    if (!isfinite(v))
        return 0;
    pthread_once(&c_locale_once, c_locale_init);
    /* uselocale() switches only this thread, so the "C" decimal point holds even if the process
     * called setlocale(); restored before returning. */
    locale_t old = c_locale ? uselocale(c_locale) : (locale_t)0;
    int n = 0;
    /* %.15g is the shortest exact form for nearly all values people write (0.1, 1.5e-07);
     * 16 and 17 digits catch the rest (17 always round-trips for IEEE doubles). */
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    if (old)
        uselocale(old);
    if (!c_locale) {
        /* no "C" locale object (ENOMEM): fix a one-byte decimal comma by hand */
        for (char *p = out; *p; p++)
            if (*p == ',')
                *p = '.';
    }
    return n > 0 ? (size_t)n : 0;
}

void jw_num(jsonw *w, double v)
{
    char tmp[32];
    size_t n = jw_fmt_double(tmp, v);
    if (!n)
        jw_null(w);
    else
        jw_raw(w, tmp, n);
}

void jw_bool(jsonw *w, int v) { jw_raw(w, v ? "true" : "false", v ? 4 : 5); }
void jw_null(jsonw *w) { jw_raw(w, "null", 4); }

void jw_kstr(jsonw *w, const char *k, const char *s, size_t n) { jw_key(w, k); jw_str(w, s, n); }
void jw_kcstr(jsonw *w, const char *k, const char *s) { jw_key(w, k); jw_cstr(w, s); }
void jw_kint(jsonw *w, const char *k, long long v) { jw_key(w, k); jw_int(w, v); }
void jw_knum(jsonw *w, const char *k, double v) { jw_key(w, k); jw_num(w, v); }
void jw_kbool(jsonw *w, const char *k, int v) { jw_key(w, k); jw_bool(w, v); }
