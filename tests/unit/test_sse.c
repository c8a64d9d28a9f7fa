/* test_sse.c - SSE parser: sample streams (OpenAI, Anthropic, CRLF, CR, comments, BOM, limits),
 * each fed whole, in two pieces at every split point, in three pieces and one byte at a time. */
#include "sse.h"
#include "t.h"

#include <stdlib.h>

#define MAXEV 64

/* test allocations: never NULL */
static void *xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (!p) abort();
  return p;
}

typedef struct {
  char *event, *data, *id, *raw;
  size_t elen, dlen, ilen, rlen;
  int in_input; /* data pointed into the fed buffer */
} rec_ev;

typedef struct {
  rec_ev e[MAXEV];
  int n;
  int stop_at;      /* return 7 from the callback for event number stop_at (1-based), 0 = never */
  const char *lo, *hi; /* the current feed buffer */
} rec;

static char *dup(const char *s, size_t n)
{
  char *d = xmalloc(n + 1);
  if (n) memcpy(d, s, n);
  d[n] = 0;
  return d;
}

static int rec_cb(void *ud, const sse_event *ev)
{
  rec *r = ud;
  if (r->n >= MAXEV) return 99;
  rec_ev *e = &r->e[r->n++];
  e->event = dup(ev->event, ev->event_len);
  e->elen = ev->event_len;
  e->data = dup(ev->data, ev->data_len);
  e->dlen = ev->data_len;
  e->id = ev->id ? dup(ev->id, ev->id_len) : NULL;
  e->ilen = ev->id_len;
  e->raw = dup(ev->raw, ev->raw_len);
  e->rlen = ev->raw_len;
  e->in_input = ev->data >= r->lo && ev->data <= r->hi && ev->raw >= r->lo && ev->raw <= r->hi;
  return r->stop_at == r->n ? 7 : 0;
}

static void rec_free(rec *r)
{
  for (int i = 0; i < r->n; i++) {
    free(r->e[i].event);
    free(r->e[i].data);
    free(r->e[i].id);
    free(r->e[i].raw);
  }
  r->n = 0;
}

/* raw without the LF of a final CRLF: the one byte that may differ with the split point */
static size_t norm_len(const rec_ev *e)
{
  return e->rlen >= 2 && e->raw[e->rlen - 1] == '\n' && e->raw[e->rlen - 2] == '\r' ? e->rlen - 1
                                                                                    : e->rlen;
}

static int rec_same(const rec *a, const rec *b)
{
  if (a->n != b->n) return 0;
  for (int i = 0; i < a->n; i++) {
    const rec_ev *x = &a->e[i], *y = &b->e[i];
    if (x->elen != y->elen || memcmp(x->event, y->event, x->elen)) return 0;
    if (x->dlen != y->dlen || memcmp(x->data, y->data, x->dlen)) return 0;
    if (!x->id != !y->id || (x->id && (x->ilen != y->ilen || memcmp(x->id, y->id, x->ilen))))
      return 0;
    if (norm_len(x) != norm_len(y) || memcmp(x->raw, y->raw, norm_len(x))) return 0;
  }
  return 1;
}

typedef struct {
  int rc, pending, err;
} outcome;

/* Feeds in[0..n) cut at the given points (ascending), stopping at the first non-zero return. */
static outcome run(const char *in, size_t n, size_t max, const size_t *cuts, int ncuts, rec *r)
{
  sse_parser p;
  outcome o = {0, 0, 0};
  sse_init(&p, max);
  size_t at = 0;
  for (int i = 0; i <= ncuts && !o.rc; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    /* feed from a private copy so that zero-copy pointers cannot outlive the feed unnoticed */
    char *b = xmalloc(to - at + 1);
    memcpy(b, in + at, to - at);
    r->lo = b;
    r->hi = b + (to - at);
    o.rc = sse_feed(&p, b, to - at, rec_cb, r);
    free(b);
    at = to;
  }
  o.pending = sse_pending(&p);
  o.err = sse_error(&p) != NULL;
  sse_free(&p);
  return o;
}

typedef struct {
  const char *event, *data, *id, *raw; /* id NULL: absent */
} exp_ev;

typedef struct {
  const char *name;
  const char *in;
  size_t max; /* 0: default */
  int rc, pending;
  int nev;
  exp_ev ev[6];
} sse_case;

#define OA1 "{\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}"
#define OA2 "{\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}"
#define AN1 "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"role\":\"assistant\"}}"
#define AN2 "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}"
#define AN3 "{\"type\":\"message_stop\"}"

static const sse_case cases[] = {
  {"openai", "data: " OA1 "\n\ndata: " OA2 "\n\ndata: [DONE]\n\n", 0, 0, 0, 3,
   {{"", OA1, NULL, "data: " OA1 "\n\n"},
    {"", OA2, NULL, "data: " OA2 "\n\n"},
    {"", "[DONE]", NULL, "data: [DONE]\n\n"}}},
  {"openai crlf", "data: " OA1 "\r\n\r\ndata: [DONE]\r\n\r\n", 0, 0, 0, 2,
   {{"", OA1, NULL, "data: " OA1 "\r\n\r\n"}, {"", "[DONE]", NULL, "data: [DONE]\r\n\r\n"}}},
  {"openai cr", "data: " OA1 "\r\rdata: [DONE]\r\r", 0, 0, 0, 2,
   {{"", OA1, NULL, "data: " OA1 "\r\r"}, {"", "[DONE]", NULL, "data: [DONE]\r\r"}}},
  {"anthropic",
   "event: message_start\ndata: " AN1 "\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n"
   "event: content_block_delta\ndata: " AN2 "\n\nevent: message_stop\ndata: " AN3 "\n\n",
   0, 0, 0, 4,
   {{"message_start", AN1, NULL, "event: message_start\ndata: " AN1 "\n\n"},
    {"ping", "{\"type\": \"ping\"}", NULL, "event: ping\ndata: {\"type\": \"ping\"}\n\n"},
    {"content_block_delta", AN2, NULL, "event: content_block_delta\ndata: " AN2 "\n\n"},
    {"message_stop", AN3, NULL, "event: message_stop\ndata: " AN3 "\n\n"}}},
  {"anthropic crlf", "event: message_start\r\ndata: " AN1 "\r\n\r\nevent: message_stop\r\ndata: " AN3
   "\r\n\r\n", 0, 0, 0, 2,
   {{"message_start", AN1, NULL, "event: message_start\r\ndata: " AN1 "\r\n\r\n"},
    {"message_stop", AN3, NULL, "event: message_stop\r\ndata: " AN3 "\r\n\r\n"}}},
  {"anthropic cr", "event: message_start\rdata: " AN1 "\r\revent: message_stop\rdata: " AN3 "\r\r",
   0, 0, 0, 2,
   {{"message_start", AN1, NULL, "event: message_start\rdata: " AN1 "\r\r"},
    {"message_stop", AN3, NULL, "event: message_stop\rdata: " AN3 "\r\r"}}},
  {"mixed line ends", "data: a\r\ndata: b\rdata: c\n\r\n", 0, 0, 0, 1,
   {{"", "a\nb\nc", NULL, "data: a\r\ndata: b\rdata: c\n\r\n"}}},
  {"comments", ": keep-alive\n\n: c1\ndata: x\n: c2\n\n:\n\n", 0, 0, 0, 1,
   {{"", "x", NULL, ": c1\ndata: x\n: c2\n\n"}}},
  {"bom", "\xEF\xBB\xBF" "data: a\n\ndata: b\n\n", 0, 0, 0, 2,
   {{"", "a", NULL, "data: a\n\n"}, {"", "b", NULL, "data: b\n\n"}}},
  {"bom only at start", "\xEF\xBB\xBF" "data: a\n\n\xEF\xBB\xBF" "data: b\n\n", 0, 0, 0, 1,
   {{"", "a", NULL, "data: a\n\n"}}},
  {"bom prefix", "\xEF\xBB" "data: a\n\ndata: b\n\n", 0, 0, 0, 1,
   {{"", "b", NULL, "data: b\n\n"}}},
  {"bom prefix then data", "\xEF\n" "data: b\n\n", 0, 0, 0, 1,
   {{"", "b", NULL, "\xEF\n" "data: b\n\n"}}},
  {"field forms", "data:a\ndata:  b\ndata\ndata:\n\n", 0, 0, 0, 1,
   {{"", "a\n b\n\n", NULL, "data:a\ndata:  b\ndata\ndata:\n\n"}}},
  {"empty data", "data:\n\ndata\n\n", 0, 0, 0, 2,
   {{"", "", NULL, "data:\n\n"}, {"", "", NULL, "data\n\n"}}},
  {"multi-line data", "data: a\ndata: b\ndata:\n\n", 0, 0, 0, 1,
   {{"", "a\nb\n", NULL, "data: a\ndata: b\ndata:\n\n"}}},
  {"id and event", "id: 42\nevent: e1\nevent: e2\ndata: x\n\nid\ndata: y\n\nid: 7\nid: 8\ndata: z\n\n",
   0, 0, 0, 3,
   {{"e2", "x", "42", "id: 42\nevent: e1\nevent: e2\ndata: x\n\n"},
    {"", "y", "", "id\ndata: y\n\n"},
    {"", "z", "8", "id: 7\nid: 8\ndata: z\n\n"}}},
  {"no-data events are dropped", "event: foo\nid: 1\n\ndata: x\n\nevent: bar\n\n", 0, 0, 0, 1,
   {{"", "x", NULL, "data: x\n\n"}}},
  {"unknown fields", "retry: 1000\nfoo: bar\nData: no\nDATA: no\ndata : no\ndata: yes\n\n", 0, 0,
   0, 1, {{"", "yes", NULL, "retry: 1000\nfoo: bar\nData: no\nDATA: no\ndata : no\ndata: yes\n\n"}}},
  {"extra blank lines", "\n\r\n\rdata: a\n\n\n\ndata: b\n\n", 0, 0, 0, 2,
   {{"", "a", NULL, "data: a\n\n"}, {"", "b", NULL, "data: b\n\n"}}},
  {"colon in value", "data: {\"a\": \"b:c\"}\n\n", 0, 0, 0, 1,
   {{"", "{\"a\": \"b:c\"}", NULL, "data: {\"a\": \"b:c\"}\n\n"}}},
  {"cut mid-event", "data: a\n\ndata: partial", 0, 0, 1, 1, {{"", "a", NULL, "data: a\n\n"}}},
  {"cut after a line", "data: a\n\nevent: x\ndata: b\n", 0, 0, 1, 1,
   {{"", "a", NULL, "data: a\n\n"}}},
  {"cut after comment", ": ping\n", 0, 0, 1, 0, {{0}}},
  {"empty", "", 0, 0, 0, 0, {{0}}},
  {"only blank lines", "\n\n\r\n\r\r", 0, 0, 0, 0, {{0}}},
  /* limits: size counts raw bytes without the LF of a final CRLF */
  {"event at the limit", "data: 0123456789\n\n", 18, 0, 0, 1,
   {{"", "0123456789", NULL, "data: 0123456789\n\n"}}},
  {"event at the limit crlf", "data: 0123456789\r\n\r\n", 19, 0, 0, 1,
   {{"", "0123456789", NULL, "data: 0123456789\r\n\r\n"}}},
  {"event over the limit", "data: a\n\ndata: 0123456789\n\ndata: b\n\n", 17, -1, 0, 1,
   {{"", "a", NULL, "data: a\n\n"}}},
  {"event over the limit crlf", "data: 0123456789\r\n\r\n", 18, -1, 0, 0, {{0}}},
  {"comment block over the limit", ": 0123456789abcdef\n\ndata: b\n\n", 10, -1, 0, 0, {{0}}},
  {"cut event over the limit", "data: a\n\ndata: 0123456789abcdef", 12, -1, 0, 1,
   {{"", "a", NULL, "data: a\n\n"}}},
};

static void check_case(const sse_case *c)
{
  size_t n = strlen(c->in);
  rec whole = {0};
  outcome ow = run(c->in, n, c->max, NULL, 0, &whole);
  int bad = 0;
  if (ow.rc != c->rc || ow.pending != c->pending || whole.n != c->nev || ow.err != (c->rc == -1))
    bad = 1;
  for (int i = 0; !bad && i < c->nev; i++) {
    const exp_ev *x = &c->ev[i];
    const rec_ev *y = &whole.e[i];
    size_t rl = strlen(x->raw);
    if (strcmp(x->event, y->event) || strcmp(x->data, y->data) || !x->id != !y->id ||
        (x->id && strcmp(x->id, y->id)) || rl != y->rlen || memcmp(x->raw, y->raw, rl))
      bad = 1;
  }
  if (bad) {
    T_CHECK(!"whole feed");
    fprintf(stderr, "  case %s: rc %d pending %d events %d\n", c->name, ow.rc, ow.pending, whole.n);
    for (int i = 0; i < whole.n; i++)
      fprintf(stderr, "    [%s] [%s] [%s] [%s]\n", whole.e[i].event, whole.e[i].data,
              whole.e[i].id ? whole.e[i].id : "(none)", whole.e[i].raw);
  }

  /* two pieces at every split point, three pieces at every pair, one byte at a time */
  for (size_t k = 0; k <= n; k++) {
    rec r = {0};
    outcome o = run(c->in, n, c->max, &k, 1, &r);
    if (o.rc != ow.rc || o.pending != ow.pending || !rec_same(&r, &whole)) {
      T_CHECK(!"two pieces differ from whole");
      fprintf(stderr, "  case %s split at %zu\n", c->name, k);
    }
    rec_free(&r);
    for (size_t j = k; j <= n; j++) {
      size_t cuts[2] = {k, j};
      o = run(c->in, n, c->max, cuts, 2, &r);
      if (o.rc != ow.rc || o.pending != ow.pending || !rec_same(&r, &whole)) {
        T_CHECK(!"three pieces differ from whole");
        fprintf(stderr, "  case %s split at %zu,%zu\n", c->name, k, j);
      }
      rec_free(&r);
    }
  }
  size_t *cuts = xmalloc((n + 1) * sizeof *cuts);
  for (size_t k = 0; k < n; k++) cuts[k] = k + 1;
  rec r = {0};
  outcome o = run(c->in, n, c->max, cuts, n ? (int)n - 1 : 0, &r);
  if (o.rc != ow.rc || o.pending != ow.pending || !rec_same(&r, &whole)) {
    T_CHECK(!"byte at a time differs from whole");
    fprintf(stderr, "  case %s\n", c->name);
  }
  rec_free(&r);
  free(cuts);
  rec_free(&whole);
}

static void test_samples(void)
{
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i]);
}

/* single-line events inside one feed point into it; multi-line data and split events do not */
static void test_zero_copy(void)
{
  const char *in = "data: a\n\nevent: e\ndata: b\n\ndata: c\ndata: d\n\ndata: spl";
  rec r = {0};
  outcome o = run(in, strlen(in), 0, NULL, 0, &r);
  T_EQ_INT(o.rc, 0);
  T_EQ_INT(r.n, 3);
  T_CHECK(r.e[0].in_input);
  T_CHECK(r.e[1].in_input);
  T_CHECK(!r.e[2].in_input);
  T_EQ_STR(r.e[2].data, "c\nd");
  rec_free(&r);
  size_t cut = 4;
  o = run("data: it\n\n", 10, 0, &cut, 1, &r);
  T_EQ_INT(r.n, 1);
  T_CHECK(!r.e[0].in_input);
  T_EQ_STR(r.e[0].data, "it");
  rec_free(&r);
}

/* a CR ending one feed and the LF starting the next make one line end, not two */
static void test_cr_lf_across_feeds(void)
{
  sse_parser p;
  rec r = {0};
  sse_init(&p, 0);
  r.lo = r.hi = NULL;
  T_EQ_INT(sse_feed(&p, "data: a\r", 8, rec_cb, &r), 0);
  T_EQ_INT(sse_feed(&p, "\ndata: b\r", 9, rec_cb, &r), 0);
  T_EQ_INT(r.n, 0);
  T_EQ_INT(sse_feed(&p, "\n\r", 2, rec_cb, &r), 0);
  T_EQ_INT(r.n, 1);
  T_EQ_STR(r.e[0].data, "a\nb");
  T_EQ_STR(r.e[0].raw, "data: a\r\ndata: b\r\n\r");
  T_EQ_INT(sse_pending(&p), 0);
  T_EQ_INT(sse_feed(&p, "\n", 1, rec_cb, &r), 0); /* swallowed: no empty line, no raw */
  T_EQ_INT(sse_feed(&p, "data: c\n\n", 9, rec_cb, &r), 0);
  T_EQ_INT(r.n, 2);
  T_EQ_STR(r.e[1].raw, "data: c\n\n");
  T_EQ_INT(sse_pending(&p), 0);
  /* a CR ending a feed followed by CR: that is a blank line */
  T_EQ_INT(sse_feed(&p, "data: d\r", 8, rec_cb, &r), 0);
  T_EQ_INT(sse_feed(&p, "\rdata: e\n\n", 10, rec_cb, &r), 0);
  T_EQ_INT(r.n, 4);
  T_EQ_STR(r.e[2].data, "d");
  T_EQ_STR(r.e[3].data, "e");
  rec_free(&r);
  sse_free(&p);
}

/* an id whose value contains NUL is ignored (WHATWG); NUL elsewhere is just a byte */
static void test_nul_bytes(void)
{
  static const char in[] = "id: 1\nid: a\0b\ndata: x\0y\n\n";
  rec r = {0};
  outcome o = run(in, sizeof in - 1, 0, NULL, 0, &r);
  T_EQ_INT(o.rc, 0);
  T_EQ_INT(r.n, 1);
  T_EQ_INT(r.e[0].ilen, 1);
  T_EQ_STR(r.e[0].id, "1");
  T_EQ_INT(r.e[0].dlen, 3);
  T_CHECK(!memcmp(r.e[0].data, "x\0y", 3));
  T_EQ_INT(r.e[0].rlen, sizeof in - 1);
  rec_free(&r);
}

static void test_callback_stop(void)
{
  const char *in = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
  sse_parser p;
  rec r = {0};
  r.stop_at = 2;
  sse_init(&p, 0);
  T_EQ_INT(sse_feed(&p, in, strlen(in), rec_cb, &r), 7);
  T_EQ_INT(r.n, 2);
  T_EQ_INT(sse_pending(&p), 0);
  r.stop_at = 0;
  T_EQ_INT(sse_feed(&p, "data: 4\n\n", 9, rec_cb, &r), 0);
  T_EQ_INT(r.n, 3);
  T_EQ_STR(r.e[2].data, "4");
  /* stop on an event completed from the carry */
  r.stop_at = 4;
  T_EQ_INT(sse_feed(&p, "data: 5", 7, rec_cb, &r), 0);
  T_EQ_INT(sse_feed(&p, "\n\ndata: 6\n\n", 11, rec_cb, &r), 7);
  T_EQ_INT(r.n, 4);
  T_EQ_STR(r.e[3].data, "5");
  T_EQ_INT(sse_pending(&p), 0);
  rec_free(&r);
  sse_free(&p);
}

static void test_error_sticky_and_reset(void)
{
  sse_parser p;
  rec r = {0};
  sse_init(&p, 9);
  T_CHECK(sse_error(&p) == NULL);
  T_EQ_INT(sse_feed(&p, "data: 0123456789", 16, rec_cb, &r), -1);
  T_CHECK(sse_error(&p) != NULL);
  T_EQ_INT(sse_feed(&p, "data:\n\n", 7, rec_cb, &r), -1);
  T_EQ_INT(r.n, 0);
  sse_reset(&p);
  T_CHECK(sse_error(&p) == NULL);
  T_EQ_INT(sse_feed(&p, "\xEF\xBB\xBF" "data:\n\n", 10, rec_cb, &r), 0); /* BOM again */
  T_EQ_INT(r.n, 1);
  T_EQ_INT(sse_feed(&p, "data: 1", 7, rec_cb, &r), 0);
  T_EQ_INT(sse_pending(&p), 1);
  sse_reset(&p);
  T_EQ_INT(sse_pending(&p), 0);
  T_EQ_INT(sse_feed(&p, "data: 2\n\n", 9, rec_cb, &r), 0);
  T_EQ_INT(r.n, 2);
  T_EQ_STR(r.e[1].data, "2");
  T_EQ_STR(r.e[1].raw, "data: 2\n\n");
  rec_free(&r);
  sse_free(&p);
  sse_free(&p); /* idempotent */
}

/* a large multi-line event in many small feeds; also a long stream of CR-only lines */
static void test_large(void)
{
  size_t lines = 5000, n = 0;
  char *in = xmalloc(lines * 16 + 16);
  for (size_t i = 0; i < lines; i++) n += (size_t)sprintf(in + n, "data: line%05zu\r", i);
  in[n++] = '\r';
  sse_parser p;
  rec r = {0};
  sse_init(&p, n);
  for (size_t at = 0; at < n; at += 7)
    T_EQ_INT(sse_feed(&p, in + at, n - at < 7 ? n - at : 7, rec_cb, &r), 0);
  T_EQ_INT(r.n, 1);
  T_EQ_INT(r.e[0].dlen, lines * 9 + lines - 1); /* "lineNNNNN" lines joined by '\n' */
  T_EQ_INT(r.e[0].rlen, n);
  T_CHECK(!memcmp(r.e[0].data, "line00000\nline00001\n", 20));
  rec_free(&r);
  sse_free(&p);
  sse_init(&p, n - 1); /* one byte too small, whole feed */
  T_EQ_INT(sse_feed(&p, in, n, rec_cb, &r), -1);
  T_EQ_INT(r.n, 0);
  sse_free(&p);
  free(in);
}

int main(void)
{
  T_RUN(test_samples);
  T_RUN(test_zero_copy);
  T_RUN(test_cr_lf_across_feeds);
  T_RUN(test_nul_bytes);
  T_RUN(test_callback_stop);
  T_RUN(test_error_sticky_and_reset);
  T_RUN(test_large);
  return T_END();
}
