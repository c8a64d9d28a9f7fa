/* fuzz_http1.c - request head parser: invariants of the result, and the same result whether the
 * head is parsed whole, grown at two data-chosen cut points with the resume state, grown one byte
 * at a time (short inputs) or from a fresh exact-size buffer.
 * Input: [max_head selector][cut1][cut2] head bytes... */
#include "http1.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static int tchar(unsigned char c)
{
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int in_buf(const char *p, size_t n, const char *b, size_t len)
{
  return p >= b && p + n <= b + len;
}

static void check_result(const char *b, size_t n, size_t max, int r, int st, const char *why,
                         const h1_request *q)
{
  if (r == -1) {
    CHECK(st == 400 || st == 431 || st == 501 || st == 505);
    CHECK(why && *why);
    return;
  }
  if (r == 0) {
    CHECK(n < max);
    return;
  }
  CHECK(r > 0 && (size_t)r <= n && (size_t)r <= max && b[r - 1] == '\n');
  CHECK(in_buf(q->method, q->method_len, b, (size_t)r) && q->method_len > 0);
  CHECK(in_buf(q->target, q->target_len, b, (size_t)r) && q->target_len > 0);
  CHECK(q->path == q->target && q->path_len <= q->target_len);
  for (size_t i = 0; i < q->method_len; i++) CHECK(tchar((unsigned char)q->method[i]));
  for (size_t i = 0; i < q->target_len; i++)
    CHECK((unsigned char)q->target[i] > 0x20 && (unsigned char)q->target[i] < 0x7f);
  CHECK(q->version_minor == 0 || q->version_minor == 1);
  CHECK(q->nheaders <= H1_MAX_HEADERS);
  CHECK(q->content_length >= -1);
  CHECK(!(q->chunked && q->content_length >= 0));
  CHECK(!(q->chunked && q->version_minor == 0));
  if (q->host) CHECK(in_buf(q->host, q->host_len, b, (size_t)r));
  for (size_t i = 0; i < q->nheaders; i++) {
    const h1_header *h = &q->headers[i];
    CHECK(in_buf(h->name, h->name_len, b, (size_t)r) && h->name_len > 0);
    CHECK(in_buf(h->value, h->value_len, b, (size_t)r));
    CHECK(h->name[h->name_len] == ':');
    for (size_t j = 0; j < h->name_len; j++) CHECK(tchar((unsigned char)h->name[j]));
    for (size_t j = 0; j < h->value_len; j++) {
      unsigned char c = (unsigned char)h->value[j];
      CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
    }
    if (h->value_len) {
      CHECK(h->value[0] != ' ' && h->value[0] != '\t');
      CHECK(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
    }
  }
}

static int same(const h1_request *a, const char *ba, const h1_request *b, const char *bb)
{
  if (a->method - ba != b->method - bb || a->method_len != b->method_len ||
      a->target - ba != b->target - bb || a->target_len != b->target_len ||
      a->path_len != b->path_len || a->version_minor != b->version_minor ||
      a->nheaders != b->nheaders || a->content_length != b->content_length ||
      a->chunked != b->chunked || a->keep_alive != b->keep_alive ||
      a->expect_continue != b->expect_continue || a->upgrade != b->upgrade ||
      !a->host != !b->host || a->host_len != b->host_len ||
      (a->host && a->host - ba != b->host - bb))
    return 0;
  for (size_t i = 0; i < a->nheaders; i++)
    if (a->headers[i].name - ba != b->headers[i].name - bb ||
        a->headers[i].name_len != b->headers[i].name_len ||
        a->headers[i].value - ba != b->headers[i].value - bb ||
        a->headers[i].value_len != b->headers[i].value_len)
      return 0;
  return 1;
}

static h1_request whole, part; /* big: keep them off the stack */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 3) return 0;
  size_t max = data[0] == 255 ? (size_t)1 << 20 : 8 + (size_t)data[0] * 16;
  size_t c1 = (size_t)data[1], c2 = (size_t)data[2];
  data += 3;
  size -= 3;
  char *b = malloc(size ? size : 1);
  if (!b) return 0;
  memcpy(b, data, size);
  c1 = size * c1 / 255;
  c2 = size * c2 / 255;
  if (c1 > c2) {
    size_t t = c1;
    c1 = c2;
    c2 = t;
  }

  int st = 0, st2 = 0;
  const char *why = NULL, *why2 = NULL;
  memset(&whole, 0, sizeof whole);
  int r = h1_parse_request(b, size, max, &whole, &st, &why);
  check_result(b, size, max, r, st, why, &whole);

  /* grown at c1, c2, size with the resume state */
  size_t cuts[3] = {c1, c2, size};
  memset(&part, 0, sizeof part);
  for (int i = 0; i < 3; i++) {
    int r2 = h1_parse_request(b, cuts[i], max, &part, &st2, &why2);
    check_result(b, cuts[i], max, r2, st2, why2, &part);
    if (r2 == 0 && i < 2) continue;
    CHECK(r2 == r);
    if (r2 < 0) CHECK(st2 == st);
    if (r2 > 0) CHECK(same(&part, b, &whole, b));
    break;
  }
  /* one byte at a time, short inputs */
  if (size <= 600) {
    memset(&part, 0, sizeof part);
    for (size_t k = 0; k <= size; k++) {
      int r2 = h1_parse_request(b, k, max, &part, &st2, &why2);
      if (r2 == 0 && k < size) continue;
      CHECK(r2 == r);
      if (r2 < 0) CHECK(st2 == st);
      if (r2 > 0) CHECK(same(&part, b, &whole, b) && (size_t)r2 == k);
      break;
    }
  }
  /* the prefix at c1 in an exact-size buffer: a complete result there must be the whole one */
  char *p = malloc(c1 ? c1 : 1);
  if (p) {
    memcpy(p, b, c1);
    memset(&part, 0, sizeof part);
    int r2 = h1_parse_request(p, c1, max, &part, &st2, &why2);
    if (r2 != 0) {
      CHECK(r2 == r);
      if (r2 > 0) CHECK(same(&part, p, &whole, b));
      else CHECK(st2 == st);
    }
    free(p);
  }

  /* a chunked body after a chunked head: decode whole and in place in pieces */
  if (r > 0 && whole.chunked) {
    const char *body = b + r;
    size_t bn = size - (size_t)r;
    char *out = malloc(bn ? bn : 1), *ip = malloc(bn ? bn : 1);
    if (out && ip) {
      h1_chunked c;
      h1_chunked_init(&c);
      size_t ol = 0, il = 0;
      int done = 0, done2 = 0;
      long n1 = h1_chunked_decode(&c, body, bn, out, &ol, &done);
      memcpy(ip, body, bn);
      h1_chunked_init(&c);
      size_t mid = bn / 2, at = 0;
      long n2 = h1_chunked_decode(&c, ip, mid, ip, &il, &done2);
      if (n2 >= 0 && !done2) {
        at = (size_t)n2;
        long n3 = h1_chunked_decode(&c, ip + at, bn - at, ip, &il, &done2);
        n2 = n3 < 0 ? -1 : (long)at + n3;
      }
      CHECK((n1 < 0) == (n2 < 0));
      if (n1 >= 0) {
        CHECK(n1 == n2 && done == done2 && ol == il && !memcmp(out, ip, ol));
        CHECK(ol <= (size_t)n1);
      }
    }
    free(out);
    free(ip);
  }
  free(b);
  return 0;
}
