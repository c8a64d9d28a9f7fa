/* http1.h - HTTP/1.1 request head parser and chunked body decoder.
 *
 * Pure functions over caller-owned bytes: no allocation, no I/O, libc only, thread-safe (all state
 * lives in the caller's structs). Used on the ingress hot path by the server; strict on purpose,
 * because the gateway is a proxy and framing that two parsers could read differently is how
 * requests get smuggled.
 */
#ifndef AIGW_HTTP1_H
#define AIGW_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define H1_MAX_HEADERS 100

/* One header line. name/value point into the caller's buffer (borrowed, not NUL-terminated);
 * the value has its leading and trailing whitespace (SP / HTAB) removed. */
typedef struct {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} h1_header;

/* A parsed request head. Every pointer points into the buffer given to h1_parse_request and is
 * valid as long as that buffer is unchanged.
 *
 * Zero the struct (memset or `= {0}`) before the first h1_parse_request call for a new request,
 * then keep passing the same struct while the head arrives: the scan_* fields remember how far the
 * buffer was already searched for the end of the head, so a head arriving one byte at a time costs
 * linear, not quadratic, time. They are reset when a call returns non-zero, so reusing the struct
 * for the next pipelined request needs no extra step. */
typedef struct h1_request {
  const char *method;
  size_t method_len;
  const char *target; /* request-target as sent (path?query) */
  size_t target_len;
  const char *path; /* target up to the first '?' */
  size_t path_len;
  int version_minor; /* 0 or 1 (HTTP/1.0 or HTTP/1.1) */
  h1_header headers[H1_MAX_HEADERS];
  size_t nheaders;
  int64_t content_length; /* -1 when absent */
  unsigned chunked : 1, keep_alive : 1, expect_continue : 1, upgrade : 1;
  const char *host; /* Host header value, NULL if absent */
  size_t host_len;
  /* internal: resume point of the end-of-head search (see above) */
  const char *scan_buf;
  size_t scan_start, scan_off;
} h1_request;

/* Parses the request head in buf[0..len), allowing at most max_head bytes for it.
 *
 * Returns the head length (request line, header lines and the blank line, plus any empty lines
 * that preceded the request line, which are skipped as RFC 9112 2.2 allows) when the head is
 * complete; 0 when more bytes are needed; -1 on error, with *status set to the response code and
 * *reason to a short static string a user can act on:
 *   400  malformed request line or header line (bare CR, NUL or control character, obs-fold,
 *        whitespace before ':', invalid token character), invalid or conflicting Content-Length,
 *        Content-Length together with Transfer-Encoding, Transfer-Encoding in an HTTP/1.0
 *        request, "chunked" listed twice, more than one Host header;
 *   431  head longer than max_head, or more than H1_MAX_HEADERS header lines;
 *   501  a transfer coding other than "chunked";
 *   505  a version other than HTTP/1.0 or HTTP/1.1.
 * On success *status and *reason are left untouched. Lines may end in CRLF or LF.
 * Whether or not the head is complete, the only bytes read are buf[0..len). */
int h1_parse_request(const char *buf, size_t len, size_t max_head, h1_request *req, int *status,
                     const char **reason);

/* Case-insensitive lookup of the first header called `name` (NUL-terminated). Returns 1 and sets
 * *v / *vn (borrowed, as in h1_header) when found, else 0 and leaves them untouched. */
int h1_header_get(const h1_request *req, const char *name, const char **v, size_t *vn);

/* Incremental decoder of a chunked request body (RFC 9112 7.1). Internal fields; zero-init or
 * h1_chunked_init before the first h1_chunked_decode call of each body. */
typedef struct h1_chunked {
  int state;
  uint64_t left;  /* chunk-size digits so far, then data bytes left in the chunk */
  size_t ext_len; /* bytes of chunk extension on this size line, or of trailer section */
} h1_chunked;

void h1_chunked_init(h1_chunked *c);

/* Decodes in[0..n). Decoded bytes are written at out + *out_len and *out_len grows by their count,
 * so a caller decoding in place keeps one buffer and passes out = start of the decoded region and
 * in = start of the undecoded bytes (out + *out_len <= in must hold; equality is fine: the copy is
 * a memmove and never writes past the bytes already consumed).
 *
 * Returns the number of bytes consumed: n, unless the terminating last-chunk and trailer section
 * ended inside in[0..n), in which case *done is set to 1 and the rest belongs to the next pipelined
 * request. *done is 0 otherwise. Returns -1 on malformed input, a chunk-size above 2^62, chunk
 * extensions longer than 4096 bytes on a size line or a trailer section longer than 16384 bytes;
 * the decoder then stays in error until re-initialised. Size lines, the CRLF after chunk data and
 * trailer lines must end in CRLF (a bare LF is an error); extensions and trailers are discarded.
 * Once done, further calls consume 0 bytes and set *done = 1. */
long h1_chunked_decode(h1_chunked *c, const char *in, size_t n, char *out, size_t *out_len,
                       int *done);

#endif
