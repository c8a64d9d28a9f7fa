/* aws_eventstream.c - vnd.amazon.eventstream decoder and encoder (see aws_eventstream.h). */
#include "aws_eventstream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

static uint32_t be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t crc(const uint8_t *p, size_t n)
{
  return (uint32_t)crc32(0L, p, (uInt)n); /* n < 4 GiB: total_length is a u32 */
}

static int fail(aws_es_decoder *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(aws_es_decoder *d, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->err, sizeof d->err, fmt, ap);
  va_end(ap);
  d->failed = 1;
  return -1;
}

void aws_es_decoder_init(aws_es_decoder *d, size_t max_message)
{
  memset(d, 0, sizeof *d);
  d->max_message = max_message ? max_message : AWS_ES_DEFAULT_MAX_MESSAGE;
}

void aws_es_decoder_free(aws_es_decoder *d)
{
  free(d->buf);
  free(d->hdrs);
  memset(d, 0, sizeof *d);
}

const char *aws_es_decoder_error(const aws_es_decoder *d) { return d->failed ? d->err : NULL; }

size_t aws_es_decoder_pending(const aws_es_decoder *d) { return d->n - d->off; }

int aws_es_str_eq(aws_es_str s, const char *lit)
{
  return s.p && strlen(lit) == s.n && !memcmp(s.p, lit, s.n);
}

const aws_es_header *aws_es_find(const aws_es_message *m, const char *name)
{
  for (size_t i = 0; i < m->nheaders; i++)
    if (aws_es_str_eq(m->headers[i].name, name)) return &m->headers[i];
  return NULL;
}

/* appends to the pending buffer (compacting first) */
static int keep(aws_es_decoder *d, const uint8_t *p, size_t n)
{
  if (!n) return 0;
  if (d->off) {
    memmove(d->buf, d->buf + d->off, d->n - d->off);
    d->n -= d->off;
    d->off = 0;
  }
  if (d->n + n > d->cap) {
    size_t cap = d->cap ? d->cap : 1024;
    while (cap < d->n + n) {
      if (cap > SIZE_MAX / 2) return fail(d, "eventstream: out of memory");
      cap *= 2;
    }
    uint8_t *b = realloc(d->buf, cap);
    if (!b) return fail(d, "eventstream: out of memory");
    d->buf = b;
    d->cap = cap;
  }
  memcpy(d->buf + d->n, p, n);
  d->n += n;
  return 0;
}

/* How many bytes the message at p needs: 12 while the prelude is incomplete, then its
 * total_length (after checking the prelude). -1 on a bad prelude. */
static int need(aws_es_decoder *d, const uint8_t *p, size_t avail, size_t *out)
{
  if (avail < AWS_ES_PRELUDE_LEN) {
    *out = AWS_ES_PRELUDE_LEN;
    return 0;
  }
  uint32_t total = be32(p), hlen = be32(p + 4), pcrc = be32(p + 8), got = crc(p, 8);
  if (pcrc != got)
    return fail(d, "eventstream: prelude CRC mismatch (got 0x%08x, frame says 0x%08x)", got, pcrc);
  if (total < AWS_ES_MIN_MESSAGE)
    return fail(d, "eventstream: message length %u is under the 16-byte minimum", total);
  if (total > d->max_message)
    return fail(d, "eventstream: message length %u exceeds the %zu-byte limit", total, d->max_message);
  if (hlen > total - AWS_ES_MIN_MESSAGE)
    return fail(d, "eventstream: headers length %u does not fit in a %u-byte message", hlen, total);
  *out = total;
  return 0;
}

static int64_t sbe(const uint8_t *p, int n)
{
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
  return (int64_t)v;
}

/* checks the message CRC, parses the headers, calls back */
static int deliver(aws_es_decoder *d, const uint8_t *p, size_t total, aws_es_message_fn cb, void *ud)
{
  uint32_t mcrc = be32(p + total - 4), got = crc(p, total - 4);
  if (mcrc != got)
    return fail(d, "eventstream: message CRC mismatch (got 0x%08x, frame says 0x%08x)", got, mcrc);
  size_t hlen = be32(p + 4);
  const uint8_t *h = p + AWS_ES_PRELUDE_LEN, *he = h + hlen;
  aws_es_message m;
  memset(&m, 0, sizeof m);
  size_t nh = 0;
  while (h < he) {
    size_t nlen = *h++;
    if (nlen == 0) return fail(d, "eventstream: header %zu has an empty name", nh);
    if ((size_t)(he - h) < nlen + 1) return fail(d, "eventstream: header %zu overruns the headers", nh);
    if (nh == d->hcap) {
      size_t cap = d->hcap ? d->hcap * 2 : 16;
      aws_es_header *x = realloc(d->hdrs, cap * sizeof *x);
      if (!x) return fail(d, "eventstream: out of memory");
      d->hdrs = x;
      d->hcap = cap;
    }
    aws_es_header *x = &d->hdrs[nh];
    memset(x, 0, sizeof *x);
    x->name.p = (const char *)h;
    x->name.n = nlen;
    h += nlen;
    x->type = (aws_es_type)*h++;
    size_t left = (size_t)(he - h), vlen = 0;
    switch (x->type) {
    case AWS_ES_BOOL_TRUE: x->i = 1; break;
    case AWS_ES_BOOL_FALSE: x->i = 0; break;
    case AWS_ES_BYTE: vlen = 1; break;
    case AWS_ES_SHORT: vlen = 2; break;
    case AWS_ES_INT: vlen = 4; break;
    case AWS_ES_LONG:
    case AWS_ES_TIMESTAMP: vlen = 8; break;
    case AWS_ES_UUID: vlen = 16; break;
    case AWS_ES_BYTES:
    case AWS_ES_STRING:
      if (left < 2) return fail(d, "eventstream: header %zu overruns the headers", nh);
      vlen = (size_t)h[0] << 8 | h[1];
      h += 2;
      left -= 2;
      break;
    default:
      return fail(d, "eventstream: header %zu has unknown value type %d", nh, (int)x->type);
    }
    if (left < vlen) return fail(d, "eventstream: header %zu overruns the headers", nh);
    if (x->type >= AWS_ES_BYTE && x->type <= AWS_ES_LONG) x->i = sbe(h, (int)vlen);
    else if (x->type == AWS_ES_TIMESTAMP) x->i = sbe(h, 8);
    else if (vlen) {
      x->v = h;
      x->vn = vlen;
    }
    if (x->type == AWS_ES_BYTES || x->type == AWS_ES_STRING) x->v = h; /* even when empty */
    h += vlen;
    nh++;
  }
  m.headers = d->hdrs;
  m.nheaders = nh;
  m.payload = p + AWS_ES_PRELUDE_LEN + hlen;
  m.payload_len = total - AWS_ES_MIN_MESSAGE - hlen;
  static const char *const known[] = {":event-type",     ":message-type", ":content-type",
                                      ":exception-type", ":error-code",   ":error-message"};
  aws_es_str *slots[] = {&m.event_type,     &m.message_type, &m.content_type,
                         &m.exception_type, &m.error_code,   &m.error_message};
  for (int k = 0; k < 6; k++) {
    const aws_es_header *x = aws_es_find(&m, known[k]);
    if (x && x->type == AWS_ES_STRING) {
      slots[k]->p = (const char *)x->v;
      slots[k]->n = x->vn;
    }
  }
  return cb(ud, &m);
}

int aws_es_decoder_feed(aws_es_decoder *d, const void *data, size_t n, aws_es_message_fn cb, void *ud)
{
  if (d->failed) return -1;
  const uint8_t *in = data;
  size_t want = 0;
  /* first finish what is buffered */
  while (d->n > d->off) {
    size_t avail = d->n - d->off;
    if (need(d, d->buf + d->off, avail, &want) < 0) return -1;
    if (avail >= want) {
      int rc = deliver(d, d->buf + d->off, want, cb, ud);
      if (rc < 0 && d->failed) return -1;
      d->off += want;
      if (rc) return keep(d, in, n) < 0 ? -1 : rc;
      continue;
    }
    if (!n) {
      if (d->off) {
        memmove(d->buf, d->buf + d->off, avail);
        d->n = avail;
        d->off = 0;
      }
      return 0;
    }
    size_t take = want - avail < n ? want - avail : n;
    if (keep(d, in, take) < 0) return -1;
    in += take;
    n -= take;
  }
  d->off = d->n = 0;
  /* then whole messages straight from the input, without copying */
  while (n) {
    if (need(d, in, n, &want) < 0) return -1;
    if (n < want) return keep(d, in, n);
    int rc = deliver(d, in, want, cb, ud);
    if (rc < 0 && d->failed) return -1;
    in += want;
    n -= want;
    if (rc) return keep(d, in, n) < 0 ? -1 : rc;
  }
  return 0;
}

/* ---- encoder ---- */

aws_es_header aws_es_hdr_str(const char *name, const char *value)
{
  aws_es_header h;
  memset(&h, 0, sizeof h);
  h.name.p = name;
  h.name.n = strlen(name);
  h.type = AWS_ES_STRING;
  h.v = (const uint8_t *)value;
  h.vn = strlen(value);
  return h;
}

aws_es_header aws_es_hdr_int(const char *name, aws_es_type type, int64_t value)
{
  aws_es_header h;
  memset(&h, 0, sizeof h);
  h.name.p = name;
  h.name.n = strlen(name);
  h.type = type;
  h.i = value;
  return h;
}

aws_es_header aws_es_hdr_bytes(const char *name, aws_es_type type, const void *v, size_t n)
{
  aws_es_header h;
  memset(&h, 0, sizeof h);
  h.name.p = name;
  h.name.n = strlen(name);
  h.type = type;
  h.v = v;
  h.vn = n;
  return h;
}

static size_t value_len(const aws_es_header *h)
{
  switch (h->type) {
  case AWS_ES_BOOL_TRUE:
  case AWS_ES_BOOL_FALSE: return 0;
  case AWS_ES_BYTE: return 1;
  case AWS_ES_SHORT: return 2;
  case AWS_ES_INT: return 4;
  case AWS_ES_LONG:
  case AWS_ES_TIMESTAMP: return 8;
  case AWS_ES_UUID: return h->vn == 16 ? 16 : SIZE_MAX;
  case AWS_ES_BYTES:
  case AWS_ES_STRING: return h->vn <= 65535 ? 2 + h->vn : SIZE_MAX;
  }
  return SIZE_MAX;
}

int aws_es_encode(pc_buf *out, const aws_es_header *headers, size_t nheaders, const void *payload,
                  size_t payload_len)
{
  size_t hlen = 0;
  for (size_t i = 0; i < nheaders; i++) {
    const aws_es_header *h = &headers[i];
    size_t vl = value_len(h);
    if (!h->name.n || h->name.n > 255 || vl == SIZE_MAX || (vl && !h->v && (h->type == AWS_ES_UUID || h->vn)))
      return -1;
    hlen += 2 + h->name.n + vl;
    if (hlen > UINT32_MAX) return -1;
  }
  if (payload_len > UINT32_MAX - AWS_ES_MIN_MESSAGE - hlen) return -1;
  size_t total = AWS_ES_MIN_MESSAGE + hlen + payload_len, start = out->n;
  if (pc_buf_add(out, NULL, 0) < 0) return -1;
  /* grow once, then write in place */
  if (out->cap < start + total + 1) {
    size_t cap = out->cap;
    while (cap < start + total + 1) cap *= 2;
    char *q = realloc(out->p, cap);
    if (!q) return -1;
    out->p = q;
    out->cap = cap;
  }
  uint8_t *p = (uint8_t *)out->p + start, *w = p + AWS_ES_PRELUDE_LEN;
  put32(p, (uint32_t)total);
  put32(p + 4, (uint32_t)hlen);
  put32(p + 8, crc(p, 8));
  for (size_t i = 0; i < nheaders; i++) {
    const aws_es_header *h = &headers[i];
    *w++ = (uint8_t)h->name.n;
    memcpy(w, h->name.p, h->name.n);
    w += h->name.n;
    *w++ = (uint8_t)h->type;
    size_t vl = value_len(h);
    switch (h->type) {
    case AWS_ES_BYTE:
    case AWS_ES_SHORT:
    case AWS_ES_INT:
    case AWS_ES_LONG:
    case AWS_ES_TIMESTAMP:
      for (size_t k = 0; k < vl; k++) w[k] = (uint8_t)((uint64_t)h->i >> (8 * (vl - 1 - k)));
      break;
    case AWS_ES_UUID:
      memcpy(w, h->v, 16);
      break;
    case AWS_ES_BYTES:
    case AWS_ES_STRING:
      w[0] = (uint8_t)(h->vn >> 8);
      w[1] = (uint8_t)h->vn;
      if (h->vn) memcpy(w + 2, h->v, h->vn);
      break;
    default:
      break;
    }
    w += vl;
  }
  if (payload_len) memcpy(w, payload, payload_len);
  w += payload_len;
  put32(w, crc(p, total - 4));
  out->n = start + total;
  out->p[out->n] = 0;
  return 0;
}
