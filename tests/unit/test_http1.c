/* test_http1.c - request head parser and chunked decoder: tables of valid, malformed and
 * smuggling-shaped inputs, each parsed whole, grown one byte at a time (same buffer, so the resume
 * state is used; and a fresh exact-size buffer each time, so ASan sees any overread), and in two
 * pieces at every split point. Chunked bodies are decoded whole, in two pieces at every split
 * point, in three pieces and one byte at a time, in place and into a separate buffer. */
#include "http1.h"
#include "t.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* test allocations: never NULL */
static void *xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (!p) abort();
  return p;
}

#define MAXHEAD 8192

typedef struct {
  const char *name;
  const char *in;
  size_t max;      /* 0: MAXHEAD */
  int status;      /* 0: success */
  size_t head_len; /* 0: strlen(in) */
  const char *method, *target, *path, *host;
  int minor;
  int64_t cl; /* 0 means -1 unless cl_set */
  int cl_set, chunked, ka, expect, upgrade;
  int nheaders;
} h1_case;

#define OK(nm, s) .name = nm, .in = s
#define ERR(nm, s, st) .name = nm, .in = s, .status = st

static const h1_case cases[] = {
  {OK("simple", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"), .method = "GET", .target = "/", .path = "/",
   .host = "a", .minor = 1, .ka = 1, .nheaders = 1},
  {OK("lf only", "GET /x?y=1 HTTP/1.1\nHost: a\n\n"), .method = "GET", .target = "/x?y=1",
   .path = "/x", .host = "a", .minor = 1, .ka = 1, .nheaders = 1},
  {OK("mixed line ends", "GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\n"), .method = "GET", .target = "/",
   .path = "/", .minor = 1, .ka = 1, .nheaders = 2},
  {OK("no headers", "GET /p HTTP/1.1\r\n\r\n"), .method = "GET", .target = "/p", .path = "/p",
   .minor = 1, .ka = 1},
  {OK("http/1.0", "GET / HTTP/1.0\r\n\r\n"), .method = "GET", .target = "/", .path = "/"},
  {OK("1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), .method = "GET",
   .target = "/", .path = "/", .ka = 1, .nheaders = 1},
  {OK("1.1 close", "GET / HTTP/1.1\r\nConnection: foo, CLOSE\r\n\r\n"), .method = "GET",
   .target = "/", .path = "/", .minor = 1, .nheaders = 1},
  {OK("close wins", "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"),
   .method = "GET", .target = "/", .path = "/", .nheaders = 2},
  {OK("upgrade", "GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"),
   .method = "GET", .target = "/ws", .path = "/ws", .minor = 1, .ka = 1, .upgrade = 1,
   .nheaders = 2},
  {OK("upgrade header alone", "GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n"), .method = "GET",
   .target = "/", .path = "/", .minor = 1, .ka = 1, .nheaders = 1},
  {OK("connection upgrade alone", "GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n"),
   .method = "GET", .target = "/", .path = "/", .minor = 1, .ka = 1, .nheaders = 1},
  {OK("content-length", "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: 42\r\n"
                        "Content-Type: application/json\r\n\r\n"),
   .method = "POST", .target = "/v1/chat/completions", .path = "/v1/chat/completions",
   .host = "gw", .minor = 1, .cl = 42, .cl_set = 1, .ka = 1, .nheaders = 3},
  {OK("content-length 0", "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), .method = "POST",
   .target = "/", .path = "/", .minor = 1, .cl = 0, .cl_set = 1, .ka = 1, .nheaders = 1},
  {OK("equal duplicate CL", "POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 007\r\n\r\n"),
   .method = "POST", .target = "/", .path = "/", .minor = 1, .cl = 7, .cl_set = 1, .ka = 1,
   .nheaders = 2},
  {OK("CL list", "POST / HTTP/1.1\r\nContent-Length: 7 , 7,7\r\n\r\n"), .method = "POST",
   .target = "/", .path = "/", .minor = 1, .cl = 7, .cl_set = 1, .ka = 1, .nheaders = 1},
  {OK("CL max", "POST / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n"),
   .method = "POST", .target = "/", .path = "/", .minor = 1, .cl = INT64_MAX, .cl_set = 1,
   .ka = 1, .nheaders = 1},
  {OK("chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), .method = "POST",
   .target = "/", .path = "/", .minor = 1, .chunked = 1, .ka = 1, .nheaders = 1},
  {OK("chunked case", "POST / HTTP/1.1\r\nTransfer-Encoding:  Chunked \r\n\r\n"),
   .method = "POST", .target = "/", .path = "/", .minor = 1, .chunked = 1, .ka = 1, .nheaders = 1},
  {OK("expect", "POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"),
   .method = "POST", .target = "/", .path = "/", .minor = 1, .cl = 1, .cl_set = 1, .ka = 1,
   .expect = 1, .nheaders = 2},
  {OK("ows trimmed", "GET / HTTP/1.1\r\nX:   v w \t\r\nY:\r\nHost:\t h \r\n\r\n"), .method = "GET",
   .target = "/", .path = "/", .host = "h", .minor = 1, .ka = 1, .nheaders = 3},
  {OK("leading empty lines", "\r\n\nGET / HTTP/1.1\r\n\r\n"), .method = "GET", .target = "/",
   .path = "/", .minor = 1, .ka = 1},
  {OK("obs-text value", "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n"), .method = "GET",
   .target = "/", .path = "/", .minor = 1, .ka = 1, .nheaders = 1},
  {OK("asterisk", "OPTIONS * HTTP/1.1\r\n\r\n"), .method = "OPTIONS", .target = "*", .path = "*",
   .minor = 1, .ka = 1},
  {OK("absolute-form", "GET http://h/p?q HTTP/1.1\r\n\r\n"), .method = "GET",
   .target = "http://h/p?q", .path = "http://h/p", .minor = 1, .ka = 1},
  {OK("pipelined rest", "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\n\r\n"),
   .head_len = 38, .method = "POST", .target = "/", .path = "/", .minor = 1, .cl = 2,
   .cl_set = 1, .ka = 1, .nheaders = 1},
  {OK("head at max", "GET / HTTP/1.1\r\nX: 12\r\n\r\n"), .max = 25, .method = "GET",
   .target = "/", .path = "/", .minor = 1, .ka = 1, .nheaders = 1},

  /* smuggling and framing */
  {ERR("CL and TE", "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400)},
  {ERR("TE and CL", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400)},
  {ERR("different CLs", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400)},
  {ERR("CL list differs", "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", 400)},
  {ERR("CL trailing comma", "POST / HTTP/1.1\r\nContent-Length: 5,\r\n\r\n", 400)},
  {ERR("CL empty element", "POST / HTTP/1.1\r\nContent-Length: 5,,5\r\n\r\n", 400)},
  {ERR("CL empty", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400)},
  {ERR("CL negative", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400)},
  {ERR("CL plus", "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400)},
  {ERR("CL hex", "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400)},
  {ERR("CL junk", "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400)},
  {ERR("CL overflow", "POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n", 400)},
  {ERR("CL huge", "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400)},
  {ERR("space before colon", "POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", 400)},
  {ERR("tab before colon", "POST / HTTP/1.1\r\nTransfer-Encoding\t: chunked\r\n\r\n", 400)},
  {ERR("obs-fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400)},
  {ERR("obs-fold tab", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 400)},
  {ERR("fold as first line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400)},
  {ERR("TE gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501)},
  {ERR("TE gzip, chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501)},
  {ERR("TE chunked, gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501)},
  {ERR("TE split headers", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n", 501)},
  {ERR("TE chunked params", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", 501)},
  {ERR("TE xchunked", "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", 501)},
  {ERR("TE chunked twice", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400)},
  {ERR("TE chunked twice in headers", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400)},
  {ERR("TE empty", "POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n", 400)},
  {ERR("TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400)},
  {ERR("two hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400)},
  {ERR("bare CR in value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400)},
  {ERR("CR CR LF", "GET / HTTP/1.1\r\nX: a\r\r\n\r\n", 400)},
  {ERR("bare CR line end", "GET / HTTP/1.1\r\nX: a\rY: b\r\n\r\n", 400)},
  {ERR("bare CR request line", "GET / HTTP/1.1\r\r\n\r\n", 400)},
  {ERR("CR before request line", "\rGET / HTTP/1.1\r\n\r\n", 400)},
  {ERR("NUL in value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 400)},
  {ERR("ctl in value", "GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n", 400)},
  {ERR("DEL in value", "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400)},
  {ERR("bad header name", "GET / HTTP/1.1\r\nX(: a\r\n\r\n", 400)},
  {ERR("empty header name", "GET / HTTP/1.1\r\n: a\r\n\r\n", 400)},
  {ERR("no colon", "GET / HTTP/1.1\r\nX a\r\n\r\n", 400)},
  {ERR("non-ascii name", "GET / HTTP/1.1\r\nX\xc3\xa9: a\r\n\r\n", 400)},
  {ERR("bad method", "G(ET / HTTP/1.1\r\n\r\n", 400)},
  {ERR("no method", " / HTTP/1.1\r\n\r\n", 400)},
  {ERR("double space", "GET  / HTTP/1.1\r\n\r\n", 400)},
  {ERR("no version", "GET /\r\n\r\n", 400)},
  {ERR("trailing space", "GET / HTTP/1.1 \r\n\r\n", 400)},
  {ERR("lower-case version", "GET / http/1.1\r\n\r\n", 400)},
  {ERR("long version", "GET / HTTP/1.10\r\n\r\n", 400)},
  {ERR("ctl in target", "GET /a\x01 HTTP/1.1\r\n\r\n", 400)},
  {ERR("DEL in target", "GET /a\x7f HTTP/1.1\r\n\r\n", 400)},
  {ERR("non-ascii target", "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", 400)},
  {ERR("tab separator", "GET\t/ HTTP/1.1\r\n\r\n", 400)},
  {ERR("http/2.0", "GET / HTTP/2.0\r\n\r\n", 505)},
  {ERR("http/1.2", "GET / HTTP/1.2\r\n\r\n", 505)},
  {ERR("http/0.9", "GET / HTTP/0.9\r\n\r\n", 505)},
  {ERR("head over max", "GET / HTTP/1.1\r\nX: 123\r\n\r\n", 431), .max = 25},
  {ERR("head over max crlf", "GET / HTTP/1.1\r\nX: 12\r\n\r\n", 431), .max = 24},
  {ERR("no end within max", "GET / HTTP/1.1\r\nX: 1234567890", 431), .max = 20},
  {ERR("blank lines over max", "\r\n\r\n\r\n\r\n\r\n\r\n", 431), .max = 10},
};

static const char *lit_or_null(const char *s) { return s; }

static int span_eq(const char *p, size_t n, const char *s)
{
  if (!s) return p == NULL;
  return p && n == strlen(s) && !memcmp(p, s, n);
}

/* same parse result, pointers compared as offsets from their buffers */
static int req_same(const h1_request *a, const char *ba, const h1_request *b, const char *bb)
{
#define OFF(r, f, base) ((r)->f ? (r)->f - (base) : -1)
  if (OFF(a, method, ba) != OFF(b, method, bb) || a->method_len != b->method_len) return 0;
  if (OFF(a, target, ba) != OFF(b, target, bb) || a->target_len != b->target_len) return 0;
  if (OFF(a, path, ba) != OFF(b, path, bb) || a->path_len != b->path_len) return 0;
  if (OFF(a, host, ba) != OFF(b, host, bb) || a->host_len != b->host_len) return 0;
  if (a->version_minor != b->version_minor || a->nheaders != b->nheaders) return 0;
  if (a->content_length != b->content_length || a->chunked != b->chunked ||
      a->keep_alive != b->keep_alive || a->expect_continue != b->expect_continue ||
      a->upgrade != b->upgrade)
    return 0;
  for (size_t i = 0; i < a->nheaders; i++) {
    const h1_header *x = &a->headers[i], *y = &b->headers[i];
    if (x->name - ba != y->name - bb || x->name_len != y->name_len ||
        x->value - ba != y->value - bb || x->value_len != y->value_len)
      return 0;
  }
  return 1;
#undef OFF
}

typedef struct {
  int r, status;
  const char *reason;
} res;

static res parse(const char *b, size_t n, size_t max, h1_request *req)
{
  res o = {0, 0, NULL};
  o.r = h1_parse_request(b, n, max, req, &o.status, &o.reason);
  if (o.r >= 0) o.status = 0;
  return o;
}

static void check_case(const h1_case *c)
{
  size_t n = strlen(c->in);
  if (!strcmp(c->name, "NUL in value")) n = sizeof("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n") - 1;
  size_t max = c->max ? c->max : MAXHEAD;
  char *buf = xmalloc(n + 1);
  memcpy(buf, c->in, n);
  h1_request whole;
  memset(&whole, 0, sizeof whole);
  res w = parse(buf, n, max, &whole);
  int bad = 0;
  if (c->status) {
    bad = w.r != -1 || w.status != c->status || !w.reason || !*w.reason;
  } else {
    size_t hl = c->head_len ? c->head_len : n;
    bad = w.r != (int)hl || !span_eq(whole.method, whole.method_len, c->method) ||
          !span_eq(whole.target, whole.target_len, c->target) ||
          !span_eq(whole.path, whole.path_len, c->path) ||
          !span_eq(whole.host, whole.host_len, lit_or_null(c->host)) ||
          whole.version_minor != c->minor || whole.content_length != (c->cl_set ? c->cl : -1) ||
          whole.chunked != c->chunked || whole.keep_alive != c->ka ||
          whole.expect_continue != c->expect || whole.upgrade != c->upgrade ||
          whole.nheaders != (size_t)c->nheaders;
    for (size_t i = 0; !bad && i < whole.nheaders; i++) {
      const h1_header *h = &whole.headers[i];
      if (h->name < buf || h->value < buf || h->value + h->value_len > buf + w.r) bad = 1;
    }
  }
  if (bad) {
    T_CHECK(!"whole parse");
    fprintf(stderr, "  case %s: r %d status %d reason %s\n", c->name, w.r, w.status,
            w.reason ? w.reason : "-");
  }

  /* grow the same buffer one byte at a time: 0 until the complete result appears */
  h1_request r;
  memset(&r, 0, sizeof r);
  for (size_t k = 0; k <= n; k++) {
    res o = parse(buf, k, max, &r);
    if (o.r == 0 && k < n) continue;
    if (o.r != w.r || o.status != w.status || (o.r > 0 && (!req_same(&r, buf, &whole, buf) ||
                                                            (size_t)o.r != k))) {
      T_CHECK(!"growing buffer");
      fprintf(stderr, "  case %s at %zu: r %d status %d\n", c->name, k, o.r, o.status);
    }
    break;
  }
  /* a fresh exact-size buffer each time (no resume, and ASan sees overreads) */
  for (size_t k = 0; k <= n; k++) {
    char *b = xmalloc(k ? k : 1);
    memcpy(b, buf, k);
    memset(&r, 0, sizeof r);
    res o = parse(b, k, max, &r);
    int stop = o.r != 0 || k == n;
    if (stop && (o.r != w.r || o.status != w.status || (o.r > 0 && !req_same(&r, b, &whole, buf)))) {
      T_CHECK(!"exact buffer");
      fprintf(stderr, "  case %s at %zu: r %d status %d\n", c->name, k, o.r, o.status);
    }
    free(b);
    if (stop) break;
  }
  /* two pieces: a prefix, then everything, with the same struct */
  for (size_t k = 0; k <= n; k++) {
    memset(&r, 0, sizeof r);
    res o = parse(buf, k, max, &r);
    if (o.r == 0) o = parse(buf, n, max, &r);
    if (o.r != w.r || o.status != w.status || (o.r > 0 && !req_same(&r, buf, &whole, buf))) {
      T_CHECK(!"two pieces");
      fprintf(stderr, "  case %s split at %zu: r %d status %d\n", c->name, k, o.r, o.status);
    }
  }
  free(buf);
}

static void test_cases(void)
{
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i]);
}

static void test_reasons(void)
{
  h1_request r;
  int st = 0;
  const char *why = NULL;
  const char *in = "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n";
  memset(&r, 0, sizeof r);
  T_EQ_INT(h1_parse_request(in, strlen(in), MAXHEAD, &r, &st, &why), -1);
  T_EQ_INT(st, 400);
  T_EQ_STR(why, "invalid Content-Length");
  in = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
  T_EQ_INT(h1_parse_request(in, strlen(in), MAXHEAD, &r, &st, &why), -1);
  T_EQ_INT(st, 501);
  T_EQ_STR(why, "unsupported Transfer-Encoding");
  /* success leaves status and reason alone */
  st = 123;
  why = "x";
  in = "GET / HTTP/1.1\r\n\r\n";
  T_EQ_INT(h1_parse_request(in, strlen(in), MAXHEAD, &r, &st, &why), (int)strlen(in));
  T_EQ_INT(st, 123);
  T_EQ_STR(why, "x");
}

static void test_header_limit(void)
{
  char *buf = xmalloc(64 * 1024);
  for (int count = 99; count <= 101; count++) {
    size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < count; i++) n += (size_t)sprintf(buf + n, "X-%d: %d\r\n", i, i);
    n += (size_t)sprintf(buf + n, "\r\n");
    h1_request r;
    memset(&r, 0, sizeof r);
    int st = 0;
    const char *why = NULL;
    int rc = h1_parse_request(buf, n, 64 * 1024, &r, &st, &why);
    if (count <= H1_MAX_HEADERS) {
      T_EQ_INT(rc, (int)n);
      T_EQ_INT(r.nheaders, count);
    } else {
      T_EQ_INT(rc, -1);
      T_EQ_INT(st, 431);
    }
  }
  free(buf);
}

/* junk that cannot start a request line is refused on its first byte */
static void test_early_reject(void)
{
  h1_request r;
  int st = 0;
  const char *why = NULL;
  memset(&r, 0, sizeof r);
  T_EQ_INT(h1_parse_request("\x16\x03\x01", 3, MAXHEAD, &r, &st, &why), -1); /* TLS hello */
  T_EQ_INT(st, 400);
  memset(&r, 0, sizeof r);
  T_EQ_INT(h1_parse_request("\r\n\r\n{", 5, MAXHEAD, &r, &st, &why), -1);
  memset(&r, 0, sizeof r);
  T_EQ_INT(h1_parse_request("\r\n\r\nG", 5, MAXHEAD, &r, &st, &why), 0);
  T_EQ_INT(h1_parse_request("\r\n\r\nGET / H", 11, MAXHEAD, &r, &st, &why), 0);
}

static void test_header_get(void)
{
  const char *in = "GET / HTTP/1.1\r\nHost: h\r\nX-Api-Key: k1\r\nx-api-key: k2\r\nEmpty:\r\n\r\n";
  h1_request r;
  memset(&r, 0, sizeof r);
  int st;
  const char *why, *v = NULL;
  size_t vn = 99;
  T_EQ_INT(h1_parse_request(in, strlen(in), MAXHEAD, &r, &st, &why), (int)strlen(in));
  T_EQ_INT(h1_header_get(&r, "x-API-key", &v, &vn), 1);
  T_EQ_MEM(v, vn, "k1");
  T_EQ_INT(h1_header_get(&r, "empty", &v, &vn), 1);
  T_EQ_INT(vn, 0);
  T_EQ_INT(h1_header_get(&r, "missing", &v, &vn), 0);
  T_EQ_INT(h1_header_get(&r, "Hos", &v, &vn), 0);
  T_EQ_INT(h1_header_get(&r, "HOST", &v, &vn), 1);
  T_EQ_MEM(v, vn, "h");
}

/* Pipelined requests reuse the struct with no reset; the resume state must not leak across. */
static void test_pipelined_reuse(void)
{
  char buf[256];
  const char *a = "GET /a HTTP/1.1\r\nX: 1\r\n\r\n", *b = "GET /b HTTP/1.1\r\n\r\n";
  size_t na = strlen(a), nb = strlen(b);
  memcpy(buf, a, na);
  memcpy(buf + na, b, nb);
  h1_request r;
  memset(&r, 0, sizeof r);
  int st;
  const char *why;
  T_EQ_INT(h1_parse_request(buf, 10, MAXHEAD, &r, &st, &why), 0);
  T_EQ_INT(h1_parse_request(buf, na + nb, MAXHEAD, &r, &st, &why), (int)na);
  /* the consumer moves the rest to the front of the same buffer, as a ring-less reader does */
  memmove(buf, buf + na, nb);
  T_EQ_INT(h1_parse_request(buf, 5, MAXHEAD, &r, &st, &why), 0);
  T_EQ_INT(h1_parse_request(buf, nb, MAXHEAD, &r, &st, &why), (int)nb);
  T_EQ_MEM(r.path, r.path_len, "/b");
  T_EQ_INT(r.nheaders, 0);
}

/* A head arriving one byte at a time must cost linear time: 512 KiB, one call per byte. A
 * rescan from 0 on each call would read ~1.4e11 bytes and take minutes. */
static void test_linear_time(void)
{
  size_t n = 512 * 1024;
  char *buf = xmalloc(n);
  size_t hl = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nX: ");
  memset(buf + hl, 'a', n - hl - 4);
  memcpy(buf + n - 4, "\r\n\r\n", 4);
  h1_request r;
  memset(&r, 0, sizeof r);
  int st, rc = 0;
  const char *why;
  clock_t t0 = clock();
  size_t k;
  for (k = 1; k <= n && rc == 0; k++) rc = h1_parse_request(buf, k, n, &r, &st, &why);
  double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
  T_EQ_INT(rc, (int)n);
  T_EQ_INT(k - 1, n);
  T_EQ_INT(r.headers[0].value_len, n - hl - 4);
  T_CHECK(secs < 5.0);
  /* one byte short of the limit and growing past it */
  memset(&r, 0, sizeof r);
  for (k = 1, rc = 0; k <= n && rc == 0; k++) rc = h1_parse_request(buf, k, n - 1, &r, &st, &why);
  T_EQ_INT(rc, -1);
  T_EQ_INT(st, 431);
  T_EQ_INT(k - 1, n - 1);
  free(buf);
}

/* ---- chunked ---- */

typedef struct {
  const char *name;
  const char *in;
  const char *out;  /* decoded bytes (before the error, for errors) */
  long consumed;    /* -1: error; 0: strlen(in) */
  int done;
} ck_case;

static const ck_case ck_cases[] = {
  {"one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", 0, 1},
  {"chunks", "3\r\nabc\r\n4\r\ndefg\r\n1\r\nh\r\n0\r\n\r\n", "abcdefgh", 0, 1},
  {"hex", "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij", 0, 1},
  {"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", 0, 1},
  {"empty body", "0\r\n\r\n", "", 0, 1},
  {"extensions", "5;foo=bar;q=\"x y\"\r\nhello\r\n0;last\r\n\r\n", "hello", 0, 1},
  {"BWS before ext", "5 \t;a\r\nhello\r\n0\r\n\r\n", "hello", 0, 1},
  {"trailers", "2\r\nhi\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n", "hi", 0, 1},
  {"pipelined rest", "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "hi", 12, 1},
  {"data with CRLF inside", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", 0, 1},
  {"incomplete data", "5\r\nhel", "hel", 0, 0},
  {"incomplete size line", "5", "", 0, 0},
  {"incomplete trailer", "0\r\nX: 1\r\n", "", 0, 0},
  {"max size", "4000000000000000\r\nab", "ab", 0, 0},
  {"size overflow", "4000000000000001\r\n", "", -1, 0},
  {"size overflow long", "100000000000000000\r\n", "", -1, 0},
  {"empty size", "\r\nhello\r\n", "", -1, 0},
  {"bad hex", "g\r\n", "", -1, 0},
  {"negative", "-5\r\n", "", -1, 0},
  {"0x prefix", "0x5\r\nhello\r\n", "", -1, 0},
  {"space before size", " 5\r\nhello\r\n", "", -1, 0},
  {"space after size", "5 \r\nhello\r\n", "", -1, 0},
  {"bare LF after size", "5\nhello\r\n0\r\n\r\n", "", -1, 0},
  {"bare CR after size", "5\rhello\r\n", "", -1, 0},
  {"bare LF after data", "5\r\nhello\n0\r\n\r\n", "hello", -1, 0},
  {"data too long", "5\r\nhelloX\r\n0\r\n\r\n", "hello", -1, 0},
  {"missing CRLF", "5\r\nhello0\r\n\r\n", "hello", -1, 0},
  {"bare LF end", "0\r\n\n", "", -1, 0},
  {"CR then junk at end", "0\r\n\rX", "", -1, 0},
  {"bare LF trailer", "0\r\nX: 1\n\r\n", "", -1, 0},
  {"ctl in ext", "5;a\x01\r\nhello\r\n0\r\n\r\n", "", -1, 0},
  {"LF in ext", "5;a\nb\r\nhello\r\n0\r\n\r\n", "", -1, 0},
};

typedef struct {
  long consumed;
  int done, err;
  char *out;
  size_t out_len;
} ck_res;

/* Decodes in[0..n) cut at cuts[], in place (one buffer, the way the server does it) or into a
 * separate output buffer. */
static ck_res ck_run(const char *in, size_t n, const size_t *cuts, int ncuts, int in_place)
{
  ck_res o = {0, 0, 0, NULL, 0};
  char *buf = xmalloc(n + 1), *out = in_place ? buf : xmalloc(n + 1);
  memcpy(buf, in, n);
  h1_chunked c;
  h1_chunked_init(&c);
  size_t at = 0;
  for (int i = 0; i <= ncuts; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    long r = h1_chunked_decode(&c, buf + at, to - at, out, &o.out_len, &o.done);
    if (r < 0) {
      o.err = 1;
      break;
    }
    o.consumed += r;
    if (o.done) {
      /* later calls consume nothing */
      size_t ol = o.out_len;
      int d2 = 0;
      if (h1_chunked_decode(&c, buf + at + r, n - at - (size_t)r, out, &ol, &d2) != 0 || !d2 ||
          ol != o.out_len)
        o.err = 2;
      break;
    }
    at = to;
  }
  o.out = xmalloc(o.out_len + 1);
  memcpy(o.out, out, o.out_len);
  if (!in_place) free(out);
  free(buf);
  return o;
}

static int ck_same(const ck_res *a, const ck_res *b)
{
  return a->err == b->err && a->done == b->done && (a->err || a->consumed == b->consumed) &&
         a->out_len == b->out_len && !memcmp(a->out, b->out, a->out_len);
}

static void test_chunked_cases(void)
{
  for (size_t i = 0; i < sizeof ck_cases / sizeof ck_cases[0]; i++) {
    const ck_case *c = &ck_cases[i];
    size_t n = strlen(c->in);
    ck_res w = ck_run(c->in, n, NULL, 0, 0);
    long want = c->consumed == 0 ? (long)n : c->consumed;
    if ((c->consumed < 0) != w.err || (!w.err && w.consumed != want) || w.done != c->done ||
        !(w.out_len == strlen(c->out) && !memcmp(w.out, c->out, w.out_len))) {
      T_CHECK(!"chunked whole");
      fprintf(stderr, "  case %s: err %d consumed %ld done %d out %.*s\n", c->name, w.err,
              w.consumed, w.done, (int)w.out_len, w.out);
    }
    for (int ip = 0; ip <= 1; ip++) {
      for (size_t k = 0; k <= n; k++) {
        ck_res o = ck_run(c->in, n, &k, 1, ip);
        if (!ck_same(&o, &w)) {
          T_CHECK(!"chunked two pieces");
          fprintf(stderr, "  case %s split at %zu in_place %d\n", c->name, k, ip);
        }
        free(o.out);
        for (size_t j = k; ip && j <= n; j++) {
          size_t cuts[2] = {k, j};
          o = ck_run(c->in, n, cuts, 2, ip);
          if (!ck_same(&o, &w)) {
            T_CHECK(!"chunked three pieces");
            fprintf(stderr, "  case %s split at %zu,%zu\n", c->name, k, j);
          }
          free(o.out);
        }
      }
      size_t *cuts = xmalloc((n + 1) * sizeof *cuts);
      for (size_t k = 0; k < n; k++) cuts[k] = k + 1;
      ck_res o = ck_run(c->in, n, cuts, n ? (int)n - 1 : 0, ip);
      if (!ck_same(&o, &w)) {
        T_CHECK(!"chunked byte at a time");
        fprintf(stderr, "  case %s in_place %d\n", c->name, ip);
      }
      free(o.out);
      free(cuts);
    }
    free(w.out);
  }
}

static void test_chunked_limits(void)
{
  char *buf = xmalloc(40000);
  for (int ext = 4096; ext <= 4098; ext++) { /* ';' plus ext-1 bytes = ext bytes after the size */
    size_t n = (size_t)sprintf(buf, "1;");
    memset(buf + n, 'e', (size_t)ext - 1);
    n += (size_t)ext - 1;
    n += (size_t)sprintf(buf + n, "\r\nx\r\n0\r\n\r\n");
    h1_chunked c;
    h1_chunked_init(&c);
    size_t ol = 0;
    int done = 0;
    char out[8];
    long r = h1_chunked_decode(&c, buf, n, out, &ol, &done);
    if (ext - 1 <= 4096) {
      T_EQ_INT(r, (long)n);
      T_EQ_INT(done, 1);
    } else {
      T_EQ_INT(r, -1);
    }
  }
  /* trailer section: 16384 bytes accepted, more refused */
  for (int big = 0; big <= 1; big++) {
    size_t n = (size_t)sprintf(buf, "0\r\n"), tl = 0;
    while (tl + 100 <= 16384) {
      n += (size_t)sprintf(buf + n, "X-Pad: %091d\r\n", 0); /* 98 counted bytes + CRLF */
      tl += 98;
    }
    if (big) {
      n += (size_t)sprintf(buf + n, "X-Pad: %0*d\r\n", (int)(16384 - tl - 7 + 1), 0);
    }
    memcpy(buf + n, "\r\n", 2);
    n += 2;
    h1_chunked c;
    h1_chunked_init(&c);
    size_t ol = 0;
    int done = 0;
    char out[8];
    long r = h1_chunked_decode(&c, buf, n, out, &ol, &done);
    if (!big) {
      T_EQ_INT(r, (long)n);
    } else {
      T_EQ_INT(r, -1);
    }
  }
  /* an error is sticky */
  h1_chunked c;
  h1_chunked_init(&c);
  size_t ol = 0;
  int done = 0;
  char out[8];
  T_EQ_INT(h1_chunked_decode(&c, "z", 1, out, &ol, &done), -1);
  T_EQ_INT(h1_chunked_decode(&c, "0\r\n\r\n", 5, out, &ol, &done), -1);
  T_EQ_INT(h1_chunked_decode(&c, "", 0, out, &ol, &done), -1);
  h1_chunked_init(&c);
  T_EQ_INT(h1_chunked_decode(&c, "0\r\n\r\n", 5, out, &ol, &done), 5);
  T_EQ_INT(done, 1);
  free(buf);
}

/* appending after already-decoded bytes, in place, over several calls */
static void test_chunked_append(void)
{
  char buf[64];
  const char *in = "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
  size_t n = strlen(in), dlen = 0, at = 0;
  memcpy(buf, in, n);
  h1_chunked c;
  h1_chunked_init(&c);
  int done = 0;
  long r = h1_chunked_decode(&c, buf, 9, buf, &dlen, &done);
  T_EQ_INT(r, 9);
  at += 9;
  T_EQ_INT(dlen, 3);
  r = h1_chunked_decode(&c, buf + at, n - at, buf, &dlen, &done);
  T_EQ_INT(r, (long)(n - at));
  T_EQ_INT(done, 1);
  T_EQ_MEM(buf, dlen, "abcdef");
}

int main(void)
{
  T_RUN(test_cases);
  T_RUN(test_reasons);
  T_RUN(test_header_limit);
  T_RUN(test_early_reject);
  T_RUN(test_header_get);
  T_RUN(test_pipelined_reuse);
  T_RUN(test_linear_time);
  T_RUN(test_chunked_cases);
  T_RUN(test_chunked_limits);
  T_RUN(test_chunked_append);
  return T_END();
}
