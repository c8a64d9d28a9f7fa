/* fuzz_chunked.c - chunked body decoder: decoding whole into a separate buffer and decoding in
 * place in pieces (data-chosen cuts, or one byte at a time for short inputs) must agree on error,
 * done, bytes consumed and bytes produced.
 * Input: [cut1][cut2] body bytes... */
#include "http1.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

typedef struct {
  long consumed; /* -1: error */
  int done;
  size_t out_len;
} run_res;

/* in place: buf holds the body; decoded bytes are compacted to its front */
static run_res run_in_place(char *buf, size_t n, const size_t *cuts, int ncuts)
{
  run_res o = {0, 0, 0};
  h1_chunked c;
  h1_chunked_init(&c);
  size_t at = 0;
  for (int i = 0; i <= ncuts; i++) {
    size_t to = i < ncuts ? cuts[i] : n;
    if (to < at) to = at;
    size_t before = o.out_len;
    long r = h1_chunked_decode(&c, buf + at, to - at, buf, &o.out_len, &o.done);
    if (r < 0) {
      o.consumed = -1;
      return o;
    }
    CHECK((size_t)r <= to - at);
    CHECK(o.done || (size_t)r == to - at);
    CHECK(o.out_len - before <= (size_t)r);
    o.consumed += r;
    if (o.done) return o;
    at = to;
  }
  return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2) return 0;
  size_t c1 = data[0], c2 = data[1];
  data += 2;
  size -= 2;
  c1 = size * c1 / 255;
  c2 = size * c2 / 255;
  if (c1 > c2) {
    size_t t = c1;
    c1 = c2;
    c2 = t;
  }
  char *in = malloc(size ? size : 1), *out = malloc(size ? size : 1), *ip = malloc(size ? size : 1);
  if (!in || !out || !ip) goto done;
  memcpy(in, data, size);

  h1_chunked c;
  h1_chunked_init(&c);
  size_t ol = 0;
  int dn = 0;
  long r = h1_chunked_decode(&c, in, size, out, &ol, &dn);
  CHECK(r >= -1 && r <= (long)size);
  if (r >= 0) {
    CHECK(ol <= (size_t)r);
    CHECK(dn || (size_t)r == size);
    /* once done, nothing more is consumed */
    size_t ol2 = ol;
    int dn2 = 0;
    if (dn) CHECK(h1_chunked_decode(&c, in + r, size - (size_t)r, out, &ol2, &dn2) == 0 && dn2 &&
                  ol2 == ol);
  }

  size_t cuts[2] = {c1, c2};
  memcpy(ip, data, size);
  run_res p = run_in_place(ip, size, cuts, 2);
  CHECK((p.consumed < 0) == (r < 0));
  if (r >= 0) CHECK(p.consumed == r && p.done == dn && p.out_len == ol && !memcmp(ip, out, ol));

  if (size <= 400) {
    size_t bytes[400];
    for (size_t k = 0; k + 1 < size; k++) bytes[k] = k + 1;
    memcpy(ip, data, size);
    p = run_in_place(ip, size, bytes, size ? (int)size - 1 : 0);
    CHECK((p.consumed < 0) == (r < 0));
    if (r >= 0) CHECK(p.consumed == r && p.done == dn && p.out_len == ol && !memcmp(ip, out, ol));
  }
done:
  free(in);
  free(out);
  free(ip);
  return 0;
}
