/* sse.c - incremental Server-Sent Events parser (see sse.h).
 *
 * Two paths. The fast path parses events straight out of the caller's buffer: one pass, field
 * pointers into that buffer, no copy unless an event has several data lines (then only the data is
 * joined). Only an event that is cut by the end of a feed is copied into the carry buffer; the
 * following feeds are then scanned (new bytes only, from a saved line state) for the blank line
 * that ends it, appended, and the carried event is parsed once when complete. Each byte is thus
 * scanned at most twice and copied at most once (plus once more for multi-line data). */
#include "sse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SSE_DEFAULT_MAX ((size_t)1 << 20)

static const char sse_err_big[] = "SSE event larger than max_event_bytes";
static const char sse_err_oom[] = "out of memory buffering an SSE event";

void sse_init(sse_parser *p, size_t max_event_bytes)
{
  memset(p, 0, sizeof *p);
  p->max = max_event_bytes ? max_event_bytes : SSE_DEFAULT_MAX;
}

void sse_reset(sse_parser *p)
{
  p->carry_len = 0;
  p->err = NULL;
  p->bom = 0;
  p->line_start = p->prev_cr = p->skip_lf = 0;
}

void sse_free(sse_parser *p)
{
  free(p->carry);
  free(p->join);
  size_t max = p->max;
  memset(p, 0, sizeof *p);
  p->max = max;
}

const char *sse_error(const sse_parser *p) { return p->err; }

int sse_pending(const sse_parser *p) { return p->carry_len > 0 || (p->bom > 0 && p->bom < 3); }

/* Grows *b to hold at least need bytes (need <= max + 1 always, so no overflow). */
static int sse_grow(char **b, size_t *cap, size_t need)
{
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 256;
  while (c < need) c = c > SIZE_MAX / 2 ? need : c * 2;
  char *nb = realloc(*b, c);
  if (!nb) return -1;
  *b = nb;
  *cap = c;
  return 0;
}

/* Finds the next CR or LF in [i, n) of s. Remembers the next LF and CR seen, so a buffer of
 * CR-only lines does not make every line search for an LF to the end of the buffer. */
typedef struct {
  const char *s;
  size_t n, lf, cr; /* offsets of the next LF / CR at or after the last query; n = none */
} sse_eol;

static void sse_eol_init(sse_eol *e, const char *s, size_t n)
{
  e->s = s;
  e->n = n;
  e->lf = e->cr = SIZE_MAX; /* unknown */
}

static size_t sse_eol_find(sse_eol *e, size_t i)
{
  if (e->lf == SIZE_MAX || (e->lf < i && e->lf != e->n)) {
    const char *x = memchr(e->s + i, '\n', e->n - i);
    e->lf = x ? (size_t)(x - e->s) : e->n;
  }
  if (e->cr == SIZE_MAX || (e->cr < i && e->cr != e->n)) {
    const char *x = memchr(e->s + i, '\r', e->n - i);
    e->cr = x ? (size_t)(x - e->s) : e->n;
  }
  return e->lf < e->cr ? e->lf : e->cr;
}

typedef struct {
  sse_event ev;
  size_t ndata;
} sse_acc;

/* One non-empty field or comment line l[0..len) of the event being built. */
static int sse_field(sse_parser *p, sse_acc *a, const char *l, size_t len)
{
  if (l[0] == ':') return 0; /* comment */
  const char *colon = memchr(l, ':', len);
  size_t nl = colon ? (size_t)(colon - l) : len;
  const char *v = colon ? colon + 1 : l + len;
  size_t vn = colon ? len - nl - 1 : 0;
  if (vn && *v == ' ') {
    v++;
    vn--;
  }
  if (nl == 4 && !memcmp(l, "data", 4)) {
    if (a->ndata == 0) {
      a->ev.data = v; /* zero-copy in the common single-line case */
      a->ev.data_len = vn;
    } else {
      size_t need = a->ev.data_len + 1 + vn;
      if (sse_grow(&p->join, &p->join_cap, need)) return -1;
      if (a->ndata == 1) memcpy(p->join, a->ev.data, a->ev.data_len);
      p->join[a->ev.data_len] = '\n';
      memcpy(p->join + a->ev.data_len + 1, v, vn);
      a->ev.data = p->join;
      a->ev.data_len = need;
    }
    a->ndata++;
  } else if (nl == 5 && !memcmp(l, "event", 5)) {
    a->ev.event = v;
    a->ev.event_len = vn;
  } else if (nl == 2 && !memcmp(l, "id", 2)) {
    if (!memchr(v, '\0', vn)) {
      a->ev.id = v;
      a->ev.id_len = vn;
    }
  } /* "retry" and unknown fields are ignored */
  return 0;
}

/* The size counted against max: raw bytes without the LF of a final CRLF, so that it does not
 * depend on whether that LF came in the same feed. */
static size_t sse_size(const char *raw, size_t len)
{
  return len >= 2 && raw[len - 1] == '\n' && raw[len - 2] == '\r' ? len - 1 : len;
}

/* Parses the event starting at s[pos], at a line start. Returns 1 with *a and *end (offset just
 * past its blank line) when the event is complete within s[pos..n); 0 when s ends first (then
 * p->line_start / p->prev_cr describe where s ended); -1 on error (p->err set). */
static int sse_parse(sse_parser *p, const char *s, size_t pos, size_t n, sse_acc *a, size_t *end)
{
  sse_eol eol;
  sse_eol_init(&eol, s, n);
  memset(a, 0, sizeof *a);
  a->ev.event = "";
  for (size_t i = pos;;) {
    if (i >= n) {
      p->line_start = 1;
      p->prev_cr = 0;
      return 0;
    }
    if (s[i] == '\r' || s[i] == '\n') { /* blank line: the event ends */
      size_t e = i + 1;
      if (s[i] == '\r' && e < n && s[e] == '\n') e++;
      a->ev.raw = s + pos;
      a->ev.raw_len = e - pos;
      *end = e;
      return 1;
    }
    size_t x = sse_eol_find(&eol, i);
    if (x >= n) {
      p->line_start = 0;
      p->prev_cr = 0;
      return 0;
    }
    if (x + 1 - pos > p->max) {
      p->err = sse_err_big;
      return -1;
    }
    if (sse_field(p, a, s + i, x - i)) {
      p->err = sse_err_oom;
      return -1;
    }
    i = x + 1;
    if (s[x] == '\r') {
      if (i >= n) {
        p->line_start = 1;
        p->prev_cr = 1;
        return 0;
      }
      if (s[i] == '\n') i++;
    }
  }
}

/* Scans buf[pos..n) for the end of the carried event, continuing from p->line_start/prev_cr.
 * Returns the offset just past its blank line, or SIZE_MAX when buf ends first. */
static size_t sse_scan_end(sse_parser *p, const char *buf, size_t pos, size_t n)
{
  sse_eol eol;
  sse_eol_init(&eol, buf, n);
  size_t i = pos;
  if (i < n && p->prev_cr) {
    p->prev_cr = 0;
    if (buf[i] == '\n') i++; /* second half of a CRLF split across feeds */
  }
  for (;;) {
    if (i >= n) return SIZE_MAX;
    if (p->line_start && (buf[i] == '\r' || buf[i] == '\n')) {
      size_t e = i + 1;
      if (buf[i] == '\r' && e < n && buf[e] == '\n') e++;
      return e;
    }
    size_t x = sse_eol_find(&eol, i);
    if (x >= n) {
      p->line_start = 0;
      return SIZE_MAX;
    }
    p->line_start = 1;
    i = x + 1;
    if (buf[x] == '\r') {
      if (i >= n) {
        p->prev_cr = 1;
        return SIZE_MAX;
      }
      if (buf[i] == '\n') i++;
    }
  }
}

static int sse_carry_append(sse_parser *p, const char *b, size_t k)
{
  if (sse_grow(&p->carry, &p->carry_cap, p->carry_len + k)) {
    p->err = sse_err_oom;
    return -1;
  }
  memcpy(p->carry + p->carry_len, b, k);
  p->carry_len += k;
  return 0;
}

static int sse_feed_bytes(sse_parser *p, const char *buf, size_t n, sse_cb cb, void *ud)
{
  size_t pos = 0, e;
  sse_acc a;
  int rc;
  if (n == 0) return 0;
  if (p->skip_lf) {
    p->skip_lf = 0;
    if (buf[0] == '\n') pos = 1;
  }
  if (p->carry_len) {
    e = sse_scan_end(p, buf, pos, n);
    if (e == SIZE_MAX) {
      if (n - pos > p->max - p->carry_len) goto too_big;
      return sse_carry_append(p, buf + pos, n - pos);
    }
    /* size of carry + buf[pos..e) without a final CRLF's LF; the CR may be the carry's last byte */
    size_t size = p->carry_len + (e - pos);
    char before = e - 1 > pos ? buf[e - 2] : p->carry[p->carry_len - 1];
    if (buf[e - 1] == '\n' && before == '\r') size--;
    if (size > p->max) goto too_big;
    if (sse_carry_append(p, buf + pos, e - pos)) return -1;
    size_t end;
    if (sse_parse(p, p->carry, 0, p->carry_len, &a, &end) != 1) return -1; /* only OOM */
    p->carry_len = 0; /* the bytes stay intact until the next append, after cb */
    p->line_start = p->prev_cr = 0;
    if (e == n && buf[n - 1] == '\r') p->skip_lf = 1;
    pos = e;
    if (a.ndata && (rc = cb(ud, &a.ev)) != 0) return rc;
  }
  while (pos < n) {
    int r = sse_parse(p, buf, pos, n, &a, &e);
    if (r < 0) return -1;
    if (r == 0) {
      if (n - pos > p->max) goto too_big;
      return sse_carry_append(p, buf + pos, n - pos);
    }
    if (sse_size(buf + pos, e - pos) > p->max) goto too_big;
    if (e == n && buf[n - 1] == '\r') p->skip_lf = 1;
    pos = e;
    if (a.ndata && (rc = cb(ud, &a.ev)) != 0) return rc;
  }
  return 0;
too_big:
  p->err = sse_err_big;
  return -1;
}

int sse_feed(sse_parser *p, const char *buf, size_t n, sse_cb cb, void *ud)
{
  static const char bom[3] = {'\xEF', '\xBB', '\xBF'};
  if (p->err) return -1;
  if (p->bom < 3) {
    while (p->bom < 3 && n > 0 && *buf == bom[p->bom]) {
      p->bom++;
      buf++;
      n--;
    }
    if (p->bom < 3) {
      if (n == 0) return 0; /* still possibly a BOM */
      size_t k = p->bom;    /* a BOM prefix that is not one: those bytes are stream bytes */
      p->bom = 3;
      if (k) {
        int rc = sse_feed_bytes(p, bom, k, cb, ud); /* cannot fail: k < 3 bytes, no line end */
        if (rc) return rc;
      }
    }
  }
  int rc = sse_feed_bytes(p, buf, n, cb, ud);
  if (rc == -1 && p->err) p->carry_len = 0; /* a failed stream has no pending event */
  return rc;
}
