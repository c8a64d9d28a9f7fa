/* xlate_util.c - tree-building helpers, base64, data URLs, ids and error bodies for xlate.h. */
#include "xlate_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int xl_fail(xl_ctx *c, int status, const char *param, const char *fmt, ...) {
  if (c->failed) return -1;
  c->failed = 1;
  if (c->err) {
    c->err->status = status;
    snprintf(c->err->param, sizeof c->err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
    va_end(ap);
    if (!c->err->msg[0]) snprintf(c->err->msg, sizeof c->err->msg, "upstream error (no message given, status %d)", status);
  }
  return -1;
}

static void oom(xl_ctx *c) { xl_fail(c, 500, "", "out of memory while translating"); }

cJSON *xl_put(xl_ctx *c, cJSON *o, const char *k, cJSON *v) {
  if (!v || !o || !cJSON_AddItemToObject(o, k, v)) {
    cJSON_Delete(v);
    oom(c);
    return NULL;
  }
  return v;
}

cJSON *xl_push(xl_ctx *c, cJSON *a, cJSON *v) {
  if (!v || !a || !cJSON_AddItemToArray(a, v)) {
    cJSON_Delete(v);
    oom(c);
    return NULL;
  }
  return v;
}

cJSON *xl_put_str(xl_ctx *c, cJSON *o, const char *k, const char *s) {
  return xl_put(c, o, k, s ? cJSON_CreateString(s) : cJSON_CreateNull());
}

cJSON *xl_put_num(xl_ctx *c, cJSON *o, const char *k, double v) { return xl_put(c, o, k, cJSON_CreateNumber(v)); }

cJSON *xl_put_dup(xl_ctx *c, cJSON *o, const char *k, const cJSON *src) {
  return xl_put(c, o, k, cJSON_Duplicate(src, 1));
}

cJSON *xl_obj(xl_ctx *c) {
  cJSON *o = cJSON_CreateObject();
  if (!o) oom(c);
  return o;
}

cJSON *xl_arr(xl_ctx *c) {
  cJSON *a = cJSON_CreateArray();
  if (!a) oom(c);
  return a;
}

const cJSON *xl_get(const cJSON *o, const char *k) {
  return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

const char *xl_str(const cJSON *o, const char *k) {
  const cJSON *v = xl_get(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

const cJSON *xl_objm(const cJSON *o, const char *k) {
  const cJSON *v = xl_get(o, k);
  return cJSON_IsObject(v) ? v : NULL;
}

const cJSON *xl_arrm(const cJSON *o, const char *k) {
  const cJSON *v = xl_get(o, k);
  return cJSON_IsArray(v) ? v : NULL;
}

int xl_num(const cJSON *o, const char *k, double *out) {
  const cJSON *v = xl_get(o, k);
  if (!cJSON_IsNumber(v)) return 0;
  if (out) *out = v->valuedouble;
  return 1;
}

long long xl_ll(const cJSON *o, const char *k, long long dflt) {
  double d;
  if (!xl_num(o, k, &d)) return dflt;
  /* token counts: clamp what cannot be one (NaN is impossible from cJSON, huge values are) */
  if (!(d >= 0)) return 0;
  if (d > 9e15) return 9000000000000000LL;
  return (long long)d;
}

void xl_cpy(char *dst, size_t cap, const char *s) {
  if (!cap) return;
  size_t n = s ? strlen(s) : 0;
  if (n >= cap) n = cap - 1;
  if (n) memcpy(dst, s, n);
  dst[n] = 0;
}

void xl_subpath(char *dst, size_t cap, const char *base, const char *member, int i) {
  int r = snprintf(dst, cap, "%s.%s[%d]", base, member, i);
  (void)r; /* truncation is fine: the path is only a hint for the client */
}

cJSON *xl_parse(const char *p, size_t n) {
  if (!p) return NULL;
  return cJSON_ParseWithLength(p, n);
}

int xl_data_url(const char *url, char *mime, size_t mime_cap, const char **b64) {
  if (!url || strncmp(url, "data:", 5) != 0) return 0;
  const char *m = url + 5;
  const char *comma = strchr(m, ',');
  if (!comma) return 0;
  const char *semi = memchr(m, ';', (size_t)(comma - m));
  size_t mlen = (size_t)((semi ? semi : comma) - m);
  /* ";base64" must be the last parameter before the comma */
  if (comma - m < 7 || memcmp(comma - 7, ";base64", 7) != 0) return 0;
  if (mime_cap) {
    if (mlen >= mime_cap) mlen = mime_cap - 1;
    memcpy(mime, m, mlen);
    mime[mlen] = 0;
  }
  *b64 = comma + 1;
  return 1;
}

/* ---- base64 ---- */
static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *xl_b64_encode(const unsigned char *p, size_t n) {
  if (n > ((size_t)-1) / 2) return NULL;
  size_t olen = (n + 2) / 3 * 4;
  char *o = malloc(olen + 1), *q = o;
  if (!o) return NULL;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
    *q++ = b64chars[v >> 18 & 63];
    *q++ = b64chars[v >> 12 & 63];
    *q++ = b64chars[v >> 6 & 63];
    *q++ = b64chars[v & 63];
  }
  if (i < n) {
    unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
    *q++ = b64chars[v >> 18 & 63];
    *q++ = b64chars[v >> 12 & 63];
    *q++ = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
    *q++ = '=';
  }
  *q = 0;
  return o;
}

static int b64val(unsigned char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+') return 62;
  if (ch == '/') return 63;
  return -1;
}

unsigned char *xl_b64_decode(const char *s, size_t n, size_t *out_n) {
  unsigned char *o = malloc(n / 4 * 3 + 4);
  if (!o) return NULL;
  size_t k = 0;
  unsigned acc = 0;
  int bits = 0, pad = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '=') {
      pad++;
      continue;
    }
    int v = b64val(ch);
    if (v < 0 || pad) goto bad; /* no whitespace, nothing after padding */
    acc = (acc << 6 | (unsigned)v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[k++] = (unsigned char)(acc >> bits & 0xff);
    }
  }
  /* total length with padding must be a multiple of 4; at most 2 padding characters */
  if (n % 4 != 0 || pad > 2 || bits >= 6) goto bad;
  o[k] = 0;
  if (out_n) *out_n = k;
  return o;
bad:
  free(o);
  return NULL;
}

/* ---- ids ---- */
void xl_id_anth_to_hub(const char *id, char *out, size_t cap) {
  if (id && strncmp(id, "msg_", 4) == 0)
    snprintf(out, cap, "chatcmpl-%s", id + 4);
  else
    xl_cpy(out, cap, id ? id : "");
}

void xl_id_hub_to_anth(const char *id, char *out, size_t cap) {
  if (id && strncmp(id, "chatcmpl-", 9) == 0)
    snprintf(out, cap, "msg_%s", id + 9);
  else
    xl_cpy(out, cap, id ? id : "");
}

/* ---- errors ---- */
const char *xl_anth_error_type(int status) {
  switch (status) {
  case 400: return "invalid_request_error";
  case 401: return "authentication_error";
  case 402: return "billing_error";
  case 403: return "permission_error";
  case 404: return "not_found_error";
  case 413: return "request_too_large";
  case 429: return "rate_limit_error";
  case 503:
  case 529: return "overloaded_error";
  case 504: return "timeout_error";
  default: return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
  }
}

int xl_anth_error_status(const char *type) {
  static const struct {
    const char *t;
    int s;
  } m[] = {{"invalid_request_error", 400}, {"authentication_error", 401}, {"billing_error", 402},
           {"permission_error", 403},      {"not_found_error", 404},      {"request_too_large", 413},
           {"rate_limit_error", 429},      {"api_error", 500},            {"timeout_error", 504},
           {"overloaded_error", 529}};
  for (size_t i = 0; type && i < sizeof m / sizeof m[0]; i++)
    if (!strcmp(type, m[i].t)) return m[i].s;
  return 500;
}

const char *xl_openai_error_type(int status) {
  switch (status) {
  case 401: return "authentication_error";
  case 403: return "permission_error";
  case 404: return "not_found_error";
  case 429: return "rate_limit_error";
  default: return status >= 400 && status < 500 ? "invalid_request_error" : "server_error";
  }
}

cJSON *xl_error_to_anth(int status, const char *message) {
  xl_ctx c = {0};
  cJSON *o = xl_obj(&c);
  xl_put_str(&c, o, "type", "error");
  cJSON *e = xl_put(&c, o, "error", xl_obj(&c));
  xl_put_str(&c, e, "type", xl_anth_error_type(status));
  xl_put_str(&c, e, "message", message ? message : "");
  if (c.failed) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

cJSON *xl_error_to_openai(int status, const char *message, const char *param, const char *code) {
  xl_ctx c = {0};
  cJSON *o = xl_obj(&c);
  cJSON *e = xl_put(&c, o, "error", xl_obj(&c));
  xl_put_str(&c, e, "message", message ? message : "");
  xl_put_str(&c, e, "type", xl_openai_error_type(status));
  xl_put_str(&c, e, "param", param);
  xl_put_str(&c, e, "code", code);
  if (c.failed) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

/* The body's text as a message when it is not the expected shape: at most 300 bytes, NULs cut. */
static void raw_message(const char *body, size_t n, char *out, size_t cap, int status) {
  size_t k = 0;
  for (size_t i = 0; body && i < n && k + 1 < cap && k < 300; i++) {
    if (!body[i]) break;
    out[k++] = body[i];
  }
  out[k] = 0;
  if (!k) snprintf(out, cap, "upstream error (HTTP %d)", status);
}

cJSON *xl_error_anth_body_to_openai(int status, const char *body, size_t n, int *status_out) {
  char buf[320];
  const char *msg = NULL, *type = NULL;
  cJSON *j = xl_parse(body, n);
  const cJSON *e = xl_objm(j, "error");
  if (e) {
    msg = xl_str(e, "message");
    type = xl_str(e, "type");
  }
  if (!msg) {
    raw_message(body, n, buf, sizeof buf, status);
    msg = buf;
  }
  int st = status == 529 ? 503 : status;
  if (st < 400 || st > 599) st = 502;
  cJSON *out = xl_error_to_openai(st, msg, NULL, type ? type : xl_anth_error_type(status));
  cJSON_Delete(j);
  if (status_out) *status_out = st;
  return out;
}

cJSON *xl_error_openai_body_to_anth(int status, const char *body, size_t n, int *status_out) {
  char buf[320];
  const char *msg = NULL;
  cJSON *j = xl_parse(body, n);
  const cJSON *e = xl_get(j, "error");
  if (cJSON_IsObject(e))
    msg = xl_str(e, "message");
  else if (cJSON_IsString(e))
    msg = e->valuestring; /* some OpenAI-compatible servers send {"error":"text"} */
  if (!msg) {
    raw_message(body, n, buf, sizeof buf, status);
    msg = buf;
  }
  int st = status == 503 ? 529 : status;
  if (st < 400 || st > 599) st = 502;
  cJSON *out = xl_error_to_anth(st, msg);
  cJSON_Delete(j);
  if (status_out) *status_out = st;
  return out;
}
