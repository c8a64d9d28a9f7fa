/* http1.c - HTTP/1.1 request head parser and chunked body decoder (see http1.h).
 *
 * The head is parsed in two steps: a cheap resumable search for the blank line that ends it
 * (memchr for LF from where the previous call stopped), then one strict validating pass over the
 * complete head. Nothing is validated twice and nothing is rescanned from the start while the head
 * is still arriving. */
#include "http1.h"

#include <limits.h>
#include <string.h>

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
 *       / DIGIT / ALPHA  (RFC 9110 5.6.2) */
static const unsigned char h1_tchar[256] = {
  ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
  ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
  ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
  ['8'] = 1, ['9'] = 1,
  ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
  ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
  ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
  ['Y'] = 1, ['Z'] = 1,
  ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
  ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
  ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
  ['y'] = 1, ['z'] = 1,
};

static int h1_lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* s[0..n) equals the lower-case literal lit (length ln), ignoring ASCII case */
static int h1_ieq(const char *s, size_t n, const char *lit, size_t ln)
{
  if (n != ln) return 0;
  for (size_t i = 0; i < n; i++)
    if (h1_lower((unsigned char)s[i]) != (unsigned char)lit[i]) return 0;
  return 1;
}
#define H1_IEQ(s, n, lit) h1_ieq((s), (n), lit, sizeof(lit) - 1)

static int h1_ows(char c) { return c == ' ' || c == '\t'; }

/* Next element of a comma-separated list in [*p, end): trims OWS, skips empty elements
 * (RFC 9110 5.6.1). Returns 0 when the list is exhausted. */
static int h1_list_next(const char **p, const char *end, const char **e, size_t *en)
{
  const char *s = *p;
  while (s < end && (h1_ows(*s) || *s == ',')) s++;
  if (s >= end) {
    *p = s;
    return 0;
  }
  const char *c = memchr(s, ',', (size_t)(end - s));
  const char *stop = c ? c : end;
  const char *t = stop;
  while (t > s && h1_ows(t[-1])) t--;
  *e = s;
  *en = (size_t)(t - s);
  *p = stop;
  return 1;
}

/* Content-Length value: 1*DIGIT, or a list of identical 1*DIGIT values (RFC 9112 6.3 lets a
 * recipient accept "42, 42"); empty list elements are refused. v has no surrounding OWS.
 * Returns the value, or -1 when invalid, conflicting or above INT64_MAX. */
static int64_t h1_parse_cl(const char *v, size_t vn)
{
  int64_t val = -1;
  size_t i = 0;
  for (;;) {
    int64_t x = 0;
    size_t d0 = i;
    while (i < vn && v[i] >= '0' && v[i] <= '9') {
      int dg = v[i] - '0';
      if (x > (INT64_MAX - dg) / 10) return -1;
      x = x * 10 + dg;
      i++;
    }
    if (i == d0 || (val >= 0 && x != val)) return -1;
    val = x;
    while (i < vn && h1_ows(v[i])) i++;
    if (i == vn) return val;
    if (v[i] != ',') return -1;
    i++;
    while (i < vn && h1_ows(v[i])) i++;
  }
}

/* Searches for the end of the head from the saved resume point. Returns the offset just past the
 * blank line, 0 when more bytes are needed, or -1 with *st and *why set. */
static long h1_find_end(const char *buf, size_t len, size_t max_head, h1_request *req, int *st,
                        const char **why)
{
  size_t start = 0, off = 0;
  if (req->scan_buf == buf && req->scan_off <= len && req->scan_start <= req->scan_off) {
    start = req->scan_start;
    off = req->scan_off;
  }
  if (off == start) { /* nothing of the request line seen yet: skip empty lines before it */
    while (start < len) {
      if (buf[start] == '\n')
        start++;
      else if (buf[start] == '\r' && start + 1 < len && buf[start + 1] == '\n')
        start += 2;
      else
        break;
    }
    off = start;
    if (start + 1 == len && buf[start] == '\r') goto more; /* maybe CRLF: decide on the LF */
    if (start >= max_head) goto more;
    /* refuse at once what cannot start a method (TLS handshakes, binary junk) rather than wait
     * for max_head bytes or a timeout */
    if (start < len && buf[start] != '\r' && !h1_tchar[(unsigned char)buf[start]]) {
      req->scan_buf = NULL;
      *st = 400;
      *why = "malformed request line";
      return -1;
    }
  }
  size_t lim = len < max_head ? len : max_head; /* the LF before the blank line is < max_head */
  while (off < lim) {
    const char *lf = memchr(buf + off, '\n', lim - off);
    if (!lf) {
      off = lim;
      break;
    }
    size_t i = (size_t)(lf - buf);
    if (i + 1 >= len) {
      off = i; /* look at this LF again once the next byte is here */
      break;
    }
    if (buf[i + 1] == '\n') {
      req->scan_buf = NULL;
      return i + 2 > max_head ? (*st = 431, *why = "request head too large", -1) : (long)(i + 2);
    }
    if (buf[i + 1] == '\r') {
      if (i + 2 >= len) {
        off = i;
        break;
      }
      if (buf[i + 2] == '\n') {
        req->scan_buf = NULL;
        return i + 3 > max_head ? (*st = 431, *why = "request head too large", -1)
                                : (long)(i + 3);
      }
    }
    off = i + 1;
  }
more:
  if (len >= max_head) { /* any end still to come would lie beyond max_head */
    req->scan_buf = NULL;
    *st = 431;
    *why = "request head too large";
    return -1;
  }
  req->scan_buf = buf;
  req->scan_start = start;
  req->scan_off = off;
  return 0;
}

int h1_parse_request(const char *buf, size_t len, size_t max_head, h1_request *req, int *status,
                     const char **reason)
{
  int st = 400;
  const char *why = "malformed request";
  if (max_head > (size_t)INT_MAX) max_head = (size_t)INT_MAX;

  long end = h1_find_end(buf, len, max_head, req, &st, &why);
  if (end <= 0) {
    if (end == 0) return 0;
    goto fail;
  }

  /* Complete head in buf[0..end). Validate it in one pass; the first empty line ends it. */
  const char *p = buf, *hend = buf + end;
  while (p < hend && (*p == '\n' || (*p == '\r' && p + 1 < hend && p[1] == '\n')))
    p += *p == '\r' ? 2 : 1; /* the empty lines h1_find_end skipped */
  if (p >= hend) goto fail;   /* cannot happen: h1_find_end saw a non-empty line */

  req->method = req->target = req->path = req->host = NULL;
  req->method_len = req->target_len = req->path_len = req->host_len = 0;
  req->nheaders = 0;
  req->content_length = -1;
  req->chunked = req->keep_alive = req->expect_continue = req->upgrade = 0;
  req->version_minor = 0;

  /* request-line = method SP request-target SP HTTP-version */
  const char *lf = memchr(p, '\n', (size_t)(hend - p));
  const char *le = lf > p && lf[-1] == '\r' ? lf - 1 : lf;
  const char *q = p;
  while (q < le && h1_tchar[(unsigned char)*q]) q++;
  if (q == p || q >= le || *q != ' ') {
    why = "malformed request line";
    goto fail;
  }
  req->method = p;
  req->method_len = (size_t)(q - p);
  const char *t = ++q;
  while (q < le && (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f) q++;
  if (q == t || q >= le || *q != ' ') {
    why = "malformed request-target";
    goto fail;
  }
  req->target = t;
  req->target_len = (size_t)(q - t);
  const char *qm = memchr(t, '?', req->target_len);
  req->path = t;
  req->path_len = qm ? (size_t)(qm - t) : req->target_len;
  q++;
  if (le - q != 8 || memcmp(q, "HTTP/", 5) || q[5] < '0' || q[5] > '9' || q[6] != '.' ||
      q[7] < '0' || q[7] > '9') {
    why = "malformed HTTP version";
    goto fail;
  }
  if (q[5] != '1' || (q[7] != '0' && q[7] != '1')) {
    st = 505;
    why = "HTTP version not supported";
    goto fail;
  }
  req->version_minor = q[7] - '0';

  int te_seen = 0, te_other = 0, cl_seen = 0, conn_close = 0, conn_ka = 0, conn_upg = 0;
  int has_upgrade = 0;
  for (p = lf + 1;;) {
    lf = memchr(p, '\n', (size_t)(hend - p));
    le = lf > p && lf[-1] == '\r' ? lf - 1 : lf;
    if (le == p) break; /* the blank line */
    if (*p == ' ' || *p == '\t') {
      why = "obsolete line folding";
      goto fail;
    }
    q = p;
    while (q < le && h1_tchar[(unsigned char)*q]) q++;
    if (q == p || q >= le || *q != ':') {
      why = q > p && q < le && h1_ows(*q) ? "whitespace before colon in header"
                                          : "invalid header name";
      goto fail;
    }
    const char *name = p;
    size_t nl = (size_t)(q - p);
    q++;
    while (q < le && h1_ows(*q)) q++;
    const char *v = q;
    for (; q < le; q++) {
      unsigned char c = (unsigned char)*q;
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        why = c == '\r' ? "bare CR in header" : "invalid character in header value";
        goto fail;
      }
    }
    while (q > v && h1_ows(q[-1])) q--;
    size_t vn = (size_t)(q - v);
    if (req->nheaders >= H1_MAX_HEADERS) {
      st = 431;
      why = "too many header fields";
      goto fail;
    }
    h1_header *h = &req->headers[req->nheaders++];
    h->name = name;
    h->name_len = nl;
    h->value = v;
    h->value_len = vn;

    const char *e, *lp = v;
    size_t en;
    switch (nl) {
    case 4:
      if (H1_IEQ(name, nl, "host")) {
        if (req->host) {
          why = "more than one Host header";
          goto fail;
        }
        req->host = v;
        req->host_len = vn;
      }
      break;
    case 6:
      if (H1_IEQ(name, nl, "expect") && H1_IEQ(v, vn, "100-continue")) req->expect_continue = 1;
      break;
    case 7:
      if (H1_IEQ(name, nl, "upgrade") && vn > 0) has_upgrade = 1;
      break;
    case 10:
      if (H1_IEQ(name, nl, "connection")) {
        while (h1_list_next(&lp, v + vn, &e, &en)) {
          if (H1_IEQ(e, en, "close")) conn_close = 1;
          else if (H1_IEQ(e, en, "keep-alive")) conn_ka = 1;
          else if (H1_IEQ(e, en, "upgrade")) conn_upg = 1;
        }
      }
      break;
    case 14:
      if (H1_IEQ(name, nl, "content-length")) {
        int64_t cl = h1_parse_cl(v, vn);
        if (cl < 0 || (cl_seen && cl != req->content_length)) {
          why = cl < 0 ? "invalid Content-Length" : "conflicting Content-Length headers";
          goto fail;
        }
        cl_seen = 1;
        req->content_length = cl;
      }
      break;
    case 17:
      if (H1_IEQ(name, nl, "transfer-encoding")) {
        int any = 0;
        te_seen = 1;
        while (h1_list_next(&lp, v + vn, &e, &en)) {
          any = 1;
          if (!H1_IEQ(e, en, "chunked")) te_other = 1;
          else if (req->chunked) {
            why = "chunked transfer coding applied twice";
            goto fail;
          } else req->chunked = 1;
        }
        if (!any) {
          why = "empty Transfer-Encoding";
          goto fail;
        }
      }
      break;
    default:
      break;
    }
    p = lf + 1;
  }

  if (te_seen && cl_seen) {
    why = "Content-Length with Transfer-Encoding";
    goto fail;
  }
  if (te_seen && req->version_minor == 0) {
    why = "Transfer-Encoding in an HTTP/1.0 request";
    goto fail;
  }
  if (te_other) {
    st = 501;
    why = "unsupported Transfer-Encoding";
    goto fail;
  }
  req->keep_alive = !conn_close && (req->version_minor == 1 || conn_ka);
  req->upgrade = conn_upg && has_upgrade;
  return (int)(lf + 1 - buf);

fail:
  req->scan_buf = NULL;
  *status = st;
  *reason = why;
  return -1;
}

int h1_header_get(const h1_request *req, const char *name, const char **v, size_t *vn)
{
  size_t n = strlen(name);
  for (size_t i = 0; i < req->nheaders; i++) {
    const h1_header *h = &req->headers[i];
    if (h->name_len != n) continue;
    size_t j = 0;
    while (j < n && h1_lower((unsigned char)h->name[j]) == h1_lower((unsigned char)name[j])) j++;
    if (j == n) {
      *v = h->value;
      *vn = h->value_len;
      return 1;
    }
  }
  return 0;
}

/* ---- chunked ---- */

enum {
  CK_SIZE0,    /* first hex digit of a chunk-size */
  CK_SIZE,     /* more hex digits, ';', BWS or CR */
  CK_SIZE_WS,  /* BWS after the size: only ';' may follow */
  CK_EXT,      /* chunk extension, ignored up to CR */
  CK_SIZE_LF,  /* LF ending the size line */
  CK_DATA,     /* `left` data bytes */
  CK_DATA_CR,  /* CR after chunk data */
  CK_DATA_LF,  /* LF after chunk data */
  CK_TRL_LINE, /* start of a trailer line or the final CRLF */
  CK_TRL,      /* inside a trailer line */
  CK_TRL_LF,   /* LF ending a trailer line */
  CK_END_LF,   /* LF of the final CRLF */
  CK_DONE,
  CK_ERR,
};

#define CK_MAX_SIZE ((uint64_t)1 << 62)
#define CK_MAX_EXT 4096
#define CK_MAX_TRAILER 16384

void h1_chunked_init(h1_chunked *c) { memset(c, 0, sizeof *c); }

static int ck_hex(unsigned char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

long h1_chunked_decode(h1_chunked *c, const char *in, size_t n, char *out, size_t *out_len,
                       int *done)
{
  size_t i = 0, o = *out_len;
  *done = 0;
  if (c->state == CK_ERR) return -1;
  while (i < n && c->state != CK_DONE) {
    unsigned char ch = (unsigned char)in[i];
    int d;
    switch (c->state) {
    case CK_DATA: {
      size_t k = n - i;
      if (k > c->left) k = (size_t)c->left;
      if (out + o != in + i) memmove(out + o, in + i, k);
      o += k;
      i += k;
      c->left -= k;
      if (c->left == 0) c->state = CK_DATA_CR;
      continue;
    }
    case CK_SIZE0:
    case CK_SIZE:
      d = ck_hex(ch);
      if (d >= 0) {
        if (c->left > (CK_MAX_SIZE - (uint64_t)d) >> 4) goto bad;
        c->left = (c->left << 4) | (uint64_t)d;
        c->state = CK_SIZE;
      } else if (c->state == CK_SIZE0) {
        goto bad;
      } else if (ch == '\r') {
        c->state = CK_SIZE_LF;
      } else if (ch == ';') {
        c->state = CK_EXT;
        c->ext_len = 0;
      } else if (ch == ' ' || ch == '\t') {
        c->state = CK_SIZE_WS;
      } else {
        goto bad;
      }
      break;
    case CK_SIZE_WS:
      if (ch == ';') {
        c->state = CK_EXT;
        c->ext_len = 0;
      } else if (ch != ' ' && ch != '\t') {
        goto bad;
      }
      break;
    case CK_EXT:
      if (ch == '\r') {
        c->state = CK_SIZE_LF;
      } else if ((ch < 0x20 && ch != '\t') || ch == 0x7f || ++c->ext_len > CK_MAX_EXT) {
        goto bad;
      }
      break;
    case CK_SIZE_LF:
      if (ch != '\n') goto bad;
      if (c->left == 0) {
        c->state = CK_TRL_LINE;
        c->ext_len = 0;
      } else {
        c->state = CK_DATA;
      }
      break;
    case CK_DATA_CR:
      if (ch != '\r') goto bad;
      c->state = CK_DATA_LF;
      break;
    case CK_DATA_LF:
      if (ch != '\n') goto bad;
      c->state = CK_SIZE0;
      c->left = 0;
      break;
    case CK_TRL_LINE:
      if (ch == '\r') {
        c->state = CK_END_LF;
        break;
      }
      c->state = CK_TRL; /* and the byte belongs to the trailer line: */
      /* fall through */
    case CK_TRL:
      if (ch == '\r') {
        c->state = CK_TRL_LF;
      } else if ((ch < 0x20 && ch != '\t') || ch == 0x7f || ++c->ext_len > CK_MAX_TRAILER) {
        goto bad;
      }
      break;
    case CK_TRL_LF:
      if (ch != '\n') goto bad;
      c->state = CK_TRL_LINE;
      break;
    case CK_END_LF:
      if (ch != '\n') goto bad;
      c->state = CK_DONE;
      break;
    default: /* CK_ERR */
      goto bad;
    }
    i++;
  }
  *out_len = o;
  *done = c->state == CK_DONE;
  return (long)i;
bad:
  c->state = CK_ERR;
  *out_len = o;
  return -1;
}
