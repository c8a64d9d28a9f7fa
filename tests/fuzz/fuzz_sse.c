/* fuzz_sse.c - SSE parser: the events (event, data, id, raw) must be the same whether the input is
 * fed whole, in three pieces at data-chosen cuts, or one byte at a time (short inputs), with the
 * one allowed difference that a CRLF's LF split from its CR at the end of an event is not in raw.
 * Each dispatched raw, parsed alone, must give back the same event.
 * Input: [max selector][cut1][cut2][stop-at] stream bytes... */
#include "sse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

typedef struct {
  char *event, *data, *id, *raw;
  size_t elen, dlen, ilen, rlen;
  int has_id;
} ev_copy;

typedef struct {
  ev_copy *e;
  size_t n, cap;
  size_t stop_at; /* return 5 from the callback at this event (1-based); 0: never */
  const char *lo, *hi;
} rec;

static char *dup(const char *s, size_t n)
{
  char *d = malloc(n + 1);
  CHECK(d);
  if (n) memcpy(d, s, n);
  d[n] = 0;
  return d;
}

static int on_event(void *ud, const sse_event *ev)
{
  rec *r = ud;
  CHECK(ev->event && ev->data && ev->raw && ev->raw_len > 0);
  CHECK(ev->data_len < ev->raw_len && ev->event_len < ev->raw_len && ev->id_len < ev->raw_len);
  char last = ev->raw[ev->raw_len - 1];
  CHECK(last == '\n' || last == '\r');
  CHECK(!ev->id || !memchr(ev->id, 0, ev->id_len));
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 8;
    r->e = realloc(r->e, r->cap * sizeof *r->e);
    CHECK(r->e);
  }
  ev_copy *e = &r->e[r->n++];
  e->event = dup(ev->event, ev->event_len);
  e->elen = ev->event_len;
  e->data = dup(ev->data, ev->data_len);
  e->dlen = ev->data_len;
  e->has_id = ev->id != NULL;
  e->id = dup(ev->id ? ev->id : "", ev->id_len);
  e->ilen = ev->id_len;
  e->raw = dup(ev->raw, ev->raw_len);
  e->rlen = ev->raw_len;
  return r->stop_at && r->n == r->stop_at ? 5 : 0;
}

static void rec_free(rec *r)
{
  for (size_t i = 0; i < r->n; i++) {
    free(r->e[i].event);
    free(r->e[i].data);
    free(r->e[i].id);
    free(r->e[i].raw);
  }
  free(r->e);
  memset(r, 0, sizeof *r);
}

static size_t norm(const ev_copy *e)
{
  return e->rlen >= 2 && e->raw[e->rlen - 1] == '\n' && e->raw[e->rlen - 2] == '\r' ? e->rlen - 1
                                                                                    : e->rlen;
}

static int same_ev(const ev_copy *x, const ev_copy *y, int exact_raw)
{
  size_t nx = exact_raw ? x->rlen : norm(x), ny = exact_raw ? y->rlen : norm(y);
  return x->elen == y->elen && !memcmp(x->event, y->event, x->elen) && x->dlen == y->dlen &&
         !memcmp(x->data, y->data, x->dlen) && x->has_id == y->has_id && x->ilen == y->ilen &&
         !memcmp(x->id, y->id, x->ilen) && nx == ny && !memcmp(x->raw, y->raw, nx);
}

typedef struct {
  int rc, pending;
} outcome;

static outcome run(const char *in, size_t n, size_t max, const size_t *cuts, int ncuts, rec *r)
{
  sse_parser p;
  outcome o = {0, 0};
  sse_init(&p, max);
  size_t at = 0;
  for (int i = 0; i <= ncuts && !o.rc; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    char *b = malloc(to - at + 1); /* exact copy per feed: stale pointers would be caught */
    CHECK(b);
    memcpy(b, in + at, to - at);
    o.rc = sse_feed(&p, b, to - at, on_event, r);
    free(b);
    at = to;
  }
  CHECK(o.rc == 0 || o.rc == -1 || o.rc == 5);
  CHECK((o.rc == -1) == (sse_error(&p) != NULL));
  o.pending = sse_pending(&p);
  sse_free(&p);
  return o;
}

static void compare(const rec *a, outcome oa, const rec *b, outcome ob)
{
  CHECK(oa.rc == ob.rc);
  CHECK(a->n == b->n);
  if (oa.rc != 5) CHECK(oa.pending == ob.pending); /* a stop drops the rest of a feed */
  for (size_t i = 0; i < a->n; i++) CHECK(same_ev(&a->e[i], &b->e[i], 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 4) return 0;
  size_t max = data[0] == 0 ? 0 : (size_t)data[0] * 2;
  size_t c1 = data[1], c2 = data[2], stop = data[3] < 16 ? data[3] : 0;
  const char *in = (const char *)data + 4;
  size_t n = size - 4;
  c1 = n * c1 / 255;
  c2 = n * c2 / 255;
  if (c1 > c2) {
    size_t t = c1;
    c1 = c2;
    c2 = t;
  }

  rec whole = {0}, part = {0};
  whole.stop_at = part.stop_at = stop;
  outcome ow = run(in, n, max, NULL, 0, &whole);

  size_t cuts[2] = {c1, c2};
  outcome op = run(in, n, max, cuts, 2, &part);
  /* with a stop, the pieces run may stop at the same event; the events before are equal */
  compare(&whole, ow, &part, op);
  rec_free(&part);

  if (n <= 300) {
    size_t bytes[300];
    for (size_t k = 0; k + 1 < n; k++) bytes[k] = k + 1;
    part.stop_at = stop;
    op = run(in, n, max, bytes, n ? (int)n - 1 : 0, &part);
    compare(&whole, ow, &part, op);
    rec_free(&part);
  }

  /* each raw alone parses back to the same event (unless it starts with a BOM, which a new
   * stream would strip) */
  for (size_t i = 0; i < whole.n; i++) {
    const ev_copy *e = &whole.e[i];
    if (e->rlen >= 3 && !memcmp(e->raw, "\xEF\xBB\xBF", 3)) continue;
    rec one = {0};
    outcome o1 = run(e->raw, e->rlen, 0, NULL, 0, &one);
    CHECK(o1.rc == 0 && o1.pending == 0 && one.n == 1 && same_ev(&one.e[0], e, 1));
    rec_free(&one);
  }
  rec_free(&whole);
  return 0;
}
