/* aws_sigv4.c - AWS SigV4 signing (see aws_sigv4.h for the rules followed). */
#include "aws_sigv4.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void hex(const unsigned char *d, size_t n, char *out)
{
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
  out[2 * n] = 0;
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(p ? p : (const void *)"", n, md);
  hex(md, sizeof md, out);
}

static int hmac(const void *key, size_t klen, const void *msg, size_t n, unsigned char out[32])
{
  unsigned int olen = 0;
  return HMAC(EVP_sha256(), key, (int)klen, msg, n, out, &olen) && olen == 32 ? 0 : -1;
}

static int unreserved(unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

int aws_uri_encode(pc_buf *dst, const char *s, size_t n, int keep_slash)
{
  static const char digits[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c) || (keep_slash && c == '/')) {
      if (pc_buf_add(dst, &s[i], 1) < 0) return -1;
    } else {
      char e[3] = {'%', digits[c >> 4], digits[c & 15]};
      if (pc_buf_add(dst, e, 3) < 0) return -1;
    }
  }
  return pc_buf_add(dst, "", 0); /* an allocation exists even for n = 0 */
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* percent-decodes s[0..n) into dst ('+' stays '+': AWS does not treat it as a space) */
static int uri_decode(pc_buf *dst, const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    }
    if (pc_buf_add(dst, &c, 1) < 0) return -1;
  }
  return pc_buf_add(dst, "", 0);
}

/* The canonical URI: normalized (unless no_normalize) then encoded once. */
static int canonical_uri(pc_buf *out, const char *path, int normalize)
{
  if (!path || !*path) return pc_buf_adds(out, "/");
  if (!normalize) {
    if (path[0] != '/' && pc_buf_adds(out, "/") < 0) return -1;
    return aws_uri_encode(out, path, strlen(path), 1);
  }
  size_t n = strlen(path);
  /* (start, length) of the kept segments, a stack: ".." pops */
  size_t *seg = malloc((n + 1) * 2 * sizeof *seg);
  if (!seg) return -1;
  size_t nseg = 0, i = 0;
  int trailing = 0;
  while (i < n) {
    while (i < n && path[i] == '/') i++;
    size_t st = i;
    while (i < n && path[i] != '/') i++;
    size_t len = i - st;
    trailing = 0;
    if (len == 0) {
      trailing = 1; /* the path ended with a slash */
    } else if (len == 1 && path[st] == '.') {
      trailing = 1; /* "/a/." names the directory a/ */
    } else if (len == 2 && path[st] == '.' && path[st + 1] == '.') {
      if (nseg) nseg--;
      trailing = 0; /* "/a/b/.." = "/a" per aws-c-auth ("/example/.." -> "/") */
    } else {
      seg[2 * nseg] = st;
      seg[2 * nseg + 1] = len;
      nseg++;
    }
  }
  int rc = 0;
  if (pc_buf_adds(out, "/") < 0) rc = -1;
  for (size_t k = 0; k < nseg && !rc; k++) {
    if (k && pc_buf_adds(out, "/") < 0) rc = -1;
    if (!rc && aws_uri_encode(out, path + seg[2 * k], seg[2 * k + 1], 0) < 0) rc = -1;
  }
  if (!rc && nseg && trailing && pc_buf_adds(out, "/") < 0) rc = -1;
  free(seg);
  return rc;
}

typedef struct qparam {
  char *k, *v; /* encoded, malloc'ed */
} qparam;

static int qcmp(const void *a, const void *b)
{
  const qparam *x = a, *y = b;
  int c = strcmp(x->k, y->k);
  return c ? c : strcmp(x->v, y->v);
}

static char *encode_component(const char *s, size_t n)
{
  pc_buf dec = {0}, enc = {0};
  if (uri_decode(&dec, s, n) < 0 || aws_uri_encode(&enc, dec.p, dec.n, 0) < 0) {
    pc_buf_free(&dec);
    pc_buf_free(&enc);
    return NULL;
  }
  pc_buf_free(&dec);
  return enc.p;
}

static int canonical_query(pc_buf *out, const char *q)
{
  if (!q || !*q) return 0;
  size_t cap = 1;
  for (const char *c = q; *c; c++) cap += *c == '&';
  qparam *ps = calloc(cap, sizeof *ps);
  if (!ps) return -1;
  size_t np = 0;
  int rc = 0;
  const char *s = q;
  while (*s && !rc) {
    const char *e = strchr(s, '&');
    if (!e) e = s + strlen(s);
    if (e > s) {
      const char *eq = memchr(s, '=', (size_t)(e - s));
      const char *ke = eq ? eq : e;
      ps[np].k = encode_component(s, (size_t)(ke - s));
      ps[np].v = eq ? encode_component(eq + 1, (size_t)(e - eq - 1)) : encode_component("", 0);
      np++;
      if (!ps[np - 1].k || !ps[np - 1].v) rc = -1;
    }
    s = *e ? e + 1 : e;
  }
  if (!rc) qsort(ps, np, sizeof *ps, qcmp);
  for (size_t i = 0; i < np && !rc; i++)
    if (pc_buf_printf(out, "%s%s=%s", i ? "&" : "", ps[i].k, ps[i].v) < 0) rc = -1;
  for (size_t i = 0; i < np; i++) {
    free(ps[i].k);
    free(ps[i].v);
  }
  free(ps);
  return rc;
}

typedef struct chdr {
  char *name;  /* lowercased, malloc'ed */
  char *value; /* trimmed and collapsed, malloc'ed */
  size_t order;
} chdr;

static int hcmp(const void *a, const void *b)
{
  const chdr *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  if (c) return c;
  return x->order < y->order ? -1 : x->order > y->order;
}

static char *lower_dup(const char *s)
{
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (!d) return NULL;
  for (size_t i = 0; i <= n; i++) d[i] = (char)tolower((unsigned char)s[i]);
  return d;
}

/* trim, collapse whitespace runs (space, tab, CR, LF: folded lines) to one space */
static char *collapse_dup(const char *s)
{
  size_t n = strlen(s), o = 0;
  char *d = malloc(n + 1);
  if (!d) return NULL;
  int ws = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ws = 1;
      continue;
    }
    if (ws && o) d[o++] = ' ';
    ws = 0;
    d[o++] = c;
  }
  d[o] = 0;
  return d;
}

static int is_owned_header(const char *lname)
{
  return !strcmp(lname, "authorization") || !strcmp(lname, "x-amz-date") ||
         !strcmp(lname, "x-amz-security-token") || !strcmp(lname, "x-amz-content-sha256");
}

/* a CR or LF is only allowed as part of a folded line (followed by a space or tab) */
static int bad_newlines(const char *v)
{
  for (const char *c = v; *c; c++) {
    if (*c != '\r' && *c != '\n') continue;
    const char *nx = c + 1;
    if (*c == '\r' && *nx == '\n') nx++;
    if (*nx != ' ' && *nx != '\t') return 1;
    c = nx - 1;
  }
  return 0;
}

int aws_sigv4_sign(const aws_sigv4_req *req, const aws_sigv4_params *p, aws_sigv4_result *out,
                   char *err, size_t errlen)
{
  memset(out, 0, sizeof *out);
  if (!req || !p || !req->method || !*req->method || !p->access_key || !*p->access_key ||
      !p->secret_key || !*p->secret_key || !p->region || !*p->region || !p->service ||
      !*p->service || (req->nheaders && !req->headers)) {
    seterr(err, errlen, "sigv4: method, access key, secret key, region and service are required");
    return -1;
  }
  const char *token = p->session_token && *p->session_token ? p->session_token : NULL;
  struct tm tm;
  time_t now = p->now;
  if (!gmtime_r(&now, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1000) {
    seterr(err, errlen, "sigv4: time out of range");
    return -1;
  }
  strftime(out->amz_date, sizeof out->amz_date, "%Y%m%dT%H%M%SZ", &tm);
  char date[9];
  memcpy(date, out->amz_date, 8);
  date[8] = 0;
  sha256_hex(req->body, req->body_len, out->payload_sha256);

  int rc = -1;
  size_t cap = req->nheaders + 5, nh = 0;
  chdr *hs = calloc(cap, sizeof *hs);
  pc_buf cr = {0}, sh = {0}, sts = {0}, auth = {0};
  if (!hs) goto oom;

  /* the headers to sign */
  for (size_t i = 0; i < req->nheaders; i++) {
    const aws_header *h = &req->headers[i];
    if (!h->name || !*h->name || !h->value) {
      seterr(err, errlen, "sigv4: header %zu has no name or value", i);
      goto done;
    }
    if (strpbrk(h->name, "\r\n: \t") || bad_newlines(h->value)) {
      seterr(err, errlen, "sigv4: header \"%s\" has a bad name or a line break in its value", h->name);
      goto done;
    }
    hs[nh].name = lower_dup(h->name);
    if (!hs[nh].name) goto oom;
    hs[nh].order = nh;
    nh++;
    if (is_owned_header(hs[nh - 1].name)) {
      seterr(err, errlen, "sigv4: header \"%s\" is set by the signer", h->name);
      goto done;
    }
    if (!(hs[nh - 1].value = collapse_dup(h->value))) goto oom;
  }
  const char *extra[3][2] = {{"host", req->host},
                             {"x-amz-date", out->amz_date},
                             {"x-amz-content-sha256", p->sign_content_sha256 ? out->payload_sha256 : NULL}};
  for (int i = 0; i < 3; i++) {
    if (!extra[i][1]) continue;
    hs[nh].order = nh;
    if (!(hs[nh].name = strdup(extra[i][0])) || !(hs[nh].value = collapse_dup(extra[i][1]))) {
      nh++;
      goto oom;
    }
    nh++;
  }
  if (token && !p->token_unsigned) {
    hs[nh].order = nh;
    if (!(hs[nh].name = strdup("x-amz-security-token")) || !(hs[nh].value = strdup(token))) {
      nh++;
      goto oom;
    }
    nh++;
  }
  qsort(hs, nh, sizeof *hs, hcmp);

  /* canonical request */
  if (pc_buf_printf(&cr, "%s\n", req->method) < 0) goto oom;
  if (canonical_uri(&cr, req->path, !p->no_normalize) < 0 || pc_buf_adds(&cr, "\n") < 0) goto oom;
  if (canonical_query(&cr, req->query) < 0 || pc_buf_adds(&cr, "\n") < 0) goto oom;
  for (size_t i = 0; i < nh; i++) {
    int first = i == 0 || strcmp(hs[i].name, hs[i - 1].name);
    int last = i + 1 == nh || strcmp(hs[i].name, hs[i + 1].name);
    if (first) {
      if (pc_buf_printf(&cr, "%s:", hs[i].name) < 0) goto oom;
      if (pc_buf_printf(&sh, "%s%s", sh.n ? ";" : "", hs[i].name) < 0) goto oom;
    }
    if (pc_buf_printf(&cr, "%s%s", first ? "" : ",", hs[i].value) < 0) goto oom;
    if (last && pc_buf_adds(&cr, "\n") < 0) goto oom;
  }
  if (pc_buf_printf(&cr, "\n%s\n%s", sh.p ? sh.p : "", out->payload_sha256) < 0) goto oom;

  /* string to sign */
  char crh[65];
  sha256_hex(cr.p, cr.n, crh);
  if (pc_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", out->amz_date, date,
                    p->region, p->service, crh) < 0)
    goto oom;

  /* signing key and signature */
  {
    unsigned char k[32], k2[32];
    pc_buf ks = {0};
    if (pc_buf_printf(&ks, "AWS4%s", p->secret_key) < 0) goto oom;
    int bad = hmac(ks.p, ks.n, date, 8, k) < 0 ||
              hmac(k, 32, p->region, strlen(p->region), k2) < 0 ||
              hmac(k2, 32, p->service, strlen(p->service), k) < 0 ||
              hmac(k, 32, "aws4_request", 12, k2) < 0 || hmac(k2, 32, sts.p, sts.n, k) < 0;
    OPENSSL_cleanse(ks.p, ks.n);
    pc_buf_free(&ks);
    OPENSSL_cleanse(k2, sizeof k2);
    if (bad) {
      seterr(err, errlen, "sigv4: HMAC failed");
      goto done;
    }
    hex(k, 32, out->signature);
  }
  if (pc_buf_printf(&auth, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
                    p->access_key, date, p->region, p->service, sh.p ? sh.p : "", out->signature) < 0)
    goto oom;

  out->canonical_request = cr.p;
  out->string_to_sign = sts.p;
  out->authorization = auth.p;
  cr.p = sts.p = auth.p = NULL;
  out->headers[out->nheaders++] = (aws_header){"X-Amz-Date", out->amz_date};
  if (token) out->headers[out->nheaders++] = (aws_header){"X-Amz-Security-Token", p->session_token};
  if (p->sign_content_sha256)
    out->headers[out->nheaders++] = (aws_header){"x-amz-content-sha256", out->payload_sha256};
  out->headers[out->nheaders++] = (aws_header){"Authorization", out->authorization};
  rc = 0;
  goto done;
oom:
  seterr(err, errlen, "sigv4: out of memory");
done:
  for (size_t i = 0; i < nh && hs; i++) {
    free(hs[i].name);
    free(hs[i].value);
  }
  free(hs);
  pc_buf_free(&cr);
  pc_buf_free(&sh);
  pc_buf_free(&sts);
  pc_buf_free(&auth);
  if (rc) memset(out, 0, sizeof *out);
  return rc;
}

void aws_sigv4_result_free(aws_sigv4_result *r)
{
  if (!r) return;
  free(r->canonical_request);
  free(r->string_to_sign);
  free(r->authorization);
  memset(r, 0, sizeof *r);
}

/* ---- credentials ---- */

const char *aws_getenv_process(void *ud, const char *name)
{
  (void)ud;
  return getenv(name);
}

static const char *nz(const char *s) { return s && *s ? s : NULL; }

int aws_creds_resolve(aws_creds *out, const char *cfg_access_key, const char *cfg_secret_key,
                      const char *cfg_session_token, const char *cfg_region, aws_getenv_fn env,
                      void *env_ud, char *err, size_t errlen)
{
  memset(out, 0, sizeof *out);
  const char *ak = nz(cfg_access_key), *sk = nz(cfg_secret_key), *tok = NULL, *region = nz(cfg_region);
  if (ak || sk) {
    if (!ak || !sk) {
      seterr(err, errlen, "aws credentials: %s is set but %s is not",
             ak ? "access_key_id" : "secret_access_key", ak ? "secret_access_key" : "access_key_id");
      return -1;
    }
    tok = nz(cfg_session_token);
  } else if (env) {
    ak = nz(env(env_ud, "AWS_ACCESS_KEY_ID"));
    sk = nz(env(env_ud, "AWS_SECRET_ACCESS_KEY"));
    if (!ak || !sk) {
      seterr(err, errlen,
             "aws credentials: none configured and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not both set");
      return -1;
    }
    tok = nz(env(env_ud, "AWS_SESSION_TOKEN"));
  } else {
    seterr(err, errlen, "aws credentials: access_key_id and secret_access_key are required");
    return -1;
  }
  if (!region && env) region = nz(env(env_ud, "AWS_REGION"));
  if (!region && env) region = nz(env(env_ud, "AWS_DEFAULT_REGION"));
  if (!region) {
    seterr(err, errlen, "aws credentials: no region (set region, AWS_REGION or AWS_DEFAULT_REGION)");
    return -1;
  }
  out->access_key = strdup(ak);
  out->secret_key = strdup(sk);
  out->session_token = tok ? strdup(tok) : NULL;
  out->region = strdup(region);
  if (!out->access_key || !out->secret_key || (tok && !out->session_token) || !out->region) {
    aws_creds_free(out);
    seterr(err, errlen, "aws credentials: out of memory");
    return -1;
  }
  return 0;
}

void aws_creds_free(aws_creds *c)
{
  if (!c) return;
  free(c->access_key);
  if (c->secret_key) OPENSSL_cleanse(c->secret_key, strlen(c->secret_key));
  free(c->secret_key);
  free(c->session_token);
  free(c->region);
  memset(c, 0, sizeof *c);
}
