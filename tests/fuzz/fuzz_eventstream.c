/* fuzz_eventstream.c - event-stream decoder: the messages (headers, payload) and the outcome must
 * be the same whether the input is fed whole, in three pieces at data-chosen cuts, or one byte at a
 * time (short inputs); each delivered message, re-encoded, must give back exactly the bytes it was
 * decoded from; a stop from the callback keeps the rest, and a 0-byte feed resumes.
 * Input: [cap selector][cut1][cut2][stop-at] stream bytes... */
#include "aws_eventstream.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

typedef struct {
  pc_buf enc; /* every delivered message, re-encoded, back to back */
  size_t n;
  size_t stop_at;
} rec;

static int on_msg(void *ud, const aws_es_message *m)
{
  rec *r = ud;
  CHECK(m->payload || m->payload_len == 0);
  for (size_t i = 0; i < m->nheaders; i++) {
    const aws_es_header *h = &m->headers[i];
    CHECK(h->name.n >= 1 && h->name.n <= 255);
    CHECK(h->type <= AWS_ES_UUID);
    if (h->type == AWS_ES_UUID) CHECK(h->vn == 16);
  }
  CHECK(aws_es_encode(&r->enc, m->headers, m->nheaders, m->payload, m->payload_len) == 0);
  r->n++;
  return r->stop_at && r->n == r->stop_at ? 5 : 0;
}

typedef struct {
  int rc;
  size_t pending;
} outcome;

static outcome run(const uint8_t *in, size_t n, size_t max, const size_t *cuts, int ncuts, rec *r)
{
  aws_es_decoder d;
  outcome o = {0, 0};
  aws_es_decoder_init(&d, max);
  size_t at = 0;
  for (int i = 0; i <= ncuts && !o.rc; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    uint8_t *b = malloc(to - at + 1); /* exact copy per feed: stale pointers are caught */
    CHECK(b);
    memcpy(b, in + at, to - at);
    o.rc = aws_es_decoder_feed(&d, b, to - at, on_msg, r);
    free(b);
    at = to;
  }
  CHECK(o.rc == 0 || o.rc == -1 || o.rc == 5);
  CHECK((o.rc == -1) == (aws_es_decoder_error(&d) != NULL));
  if (o.rc == 5) {
    /* resume: whatever followed was kept; a stop at the same number cannot recur */
    size_t stop = r->stop_at;
    r->stop_at = 0;
    int rc2 = aws_es_decoder_feed(&d, NULL, 0, on_msg, r);
    r->stop_at = stop;
    CHECK(rc2 == 0 || rc2 == -1);
    (void)rc2;
  }
  o.pending = aws_es_decoder_pending(&d);
  aws_es_decoder_free(&d);
  return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 4) return 0;
  size_t max = data[0] < 128 ? 0 : (size_t)(data[0] - 100) * 8; /* 0: default 16 MiB cap */
  size_t c1 = data[1], c2 = data[2], stop = data[3] < 8 ? data[3] : 0;
  const uint8_t *in = data + 4;
  size_t n = size - 4;
  c1 = n * c1 / 255;
  c2 = n * c2 / 255;
  if (c1 > c2) {
    size_t t = c1;
    c1 = c2;
    c2 = t;
  }
  rec whole = {{0}, 0, 0}, part = {{0}, 0, 0};
  outcome ow = run(in, n, max, NULL, 0, &whole);
  /* delivered messages are a prefix of the input, byte for byte */
  CHECK(whole.enc.n <= n && (whole.enc.n == 0 || !memcmp(whole.enc.p, in, whole.enc.n)));
  if (ow.rc == 0) CHECK(whole.enc.n + ow.pending == n);

  size_t cuts[2] = {c1, c2};
  outcome op = run(in, n, max, cuts, 2, &part);
  CHECK(op.rc == ow.rc && part.n == whole.n && part.enc.n == whole.enc.n);
  CHECK(!whole.enc.n || !memcmp(part.enc.p, whole.enc.p, whole.enc.n));
  if (ow.rc == 0) CHECK(op.pending == ow.pending);
  pc_buf_free(&part.enc);
  part.n = 0;

  if (n <= 400) {
    size_t bytes[400];
    for (size_t k = 0; k + 1 < n; k++) bytes[k] = k + 1;
    op = run(in, n, max, bytes, n ? (int)n - 1 : 0, &part);
    CHECK(op.rc == ow.rc && part.n == whole.n && part.enc.n == whole.enc.n);
    CHECK(!whole.enc.n || !memcmp(part.enc.p, whole.enc.p, whole.enc.n));
    pc_buf_free(&part.enc);
  }

  /* with a stop: the same messages arrive in total (the resume feed delivers the rest) */
  if (stop) {
    rec st = {{0}, 0, stop};
    outcome os = run(in, n, max, NULL, 0, &st);
    (void)os;
    CHECK(st.n == whole.n && st.enc.n == whole.enc.n);
    pc_buf_free(&st.enc);
  }
  pc_buf_free(&whole.enc);
  return 0;
}
