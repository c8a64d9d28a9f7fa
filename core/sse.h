/* sse.h - incremental Server-Sent Events parser (WHATWG HTML "event stream interpretation").
 *
 * Feeds arrive as the upstream sends them, split anywhere; complete events are handed to a
 * callback synchronously, in order. Zero-copy where the bytes allow it. One parser per stream,
 * not thread-safe; the parser owns only its carry and join buffers.
 */
#ifndef AIGW_SSE_H
#define AIGW_SSE_H

#include <stddef.h>

/* One dispatched event. All pointers are borrowed and valid only during the callback: they point
 * into the buffer passed to sse_feed (when the event lies entirely within it) or into the parser's
 * own buffers. Strings are not NUL-terminated. */
typedef struct sse_event {
  const char *event; /* value of the last "event:" field; "" (len 0) when there was none */
  size_t event_len;
  const char *data; /* "data:" values joined with '\n' (no trailing '\n'); never NULL */
  size_t data_len;
  const char *id; /* value of the last "id:" field of this event; NULL/0 when absent (an "id:"
                   * field whose value contains NUL is ignored, as WHATWG says) */
  size_t id_len;
  const char *raw; /* the exact bytes of this event as received: its field and comment lines and
                    * its terminating blank line. Exception: when that blank line is a lone CR
                    * ending one feed and the next feed starts with LF, the LF is swallowed and
                    * is part of no event's raw. A BOM at stream start is never part of raw. */
  size_t raw_len;
} sse_event;

/* Called for each complete event; a non-zero return stops sse_feed, which returns that value.
 * The rest of that feed's bytes are then dropped; the parser is positioned just after the event. */
typedef int (*sse_cb)(void *ud, const sse_event *ev);

/* Internal fields; use the functions below. */
typedef struct sse_parser {
  char *carry; /* raw bytes of the event in progress, when it spans feeds */
  size_t carry_len, carry_cap;
  char *join; /* data lines joined with '\n', for events with several data lines */
  size_t join_cap;
  size_t max;      /* max_event_bytes */
  const char *err; /* set once an error happened; sticky until sse_reset */
  unsigned char bom;        /* BOM bytes matched at stream start; 3 = past the stream start */
  unsigned char line_start; /* carry ends at the start of a line */
  unsigned char prev_cr;    /* carry ends with a CR that ended a line: an LF next pairs with it */
  unsigned char skip_lf;    /* the last event ended with a lone CR at the end of a feed */
} sse_parser;

/* Initialises *p. An event whose size (its raw bytes, not counting the LF of a final CRLF) exceeds
 * max_event_bytes is an error; 0 means the default of 1 MiB. Allocates nothing yet. */
void sse_init(sse_parser *p, size_t max_event_bytes);

/* Forgets any partial event, error and stream-start (BOM) state, to parse a new stream; keeps the
 * allocated buffers. */
void sse_reset(sse_parser *p);

/* Frees the parser's buffers; *p may be sse_init'ed again afterwards. */
void sse_free(sse_parser *p);

/* Feeds buf[0..n). Calls cb for each event completed by these bytes, in order; events without any
 * "data" field (comment-only blocks, stray blank lines) are not dispatched. Returns 0; -1 when an
 * event exceeds max_event_bytes or a buffer cannot be allocated (sse_error tells which; events
 * before it were dispatched; the partial event is dropped, so sse_pending is 0, and the parser
 * refuses further feeds until sse_reset); or cb's non-zero return value. Line ends may be CRLF, LF or CR, split across feeds anywhere; a UTF-8
 * BOM at stream start is skipped. */
int sse_feed(sse_parser *p, const char *buf, size_t n, sse_cb cb, void *ud);

/* The message of the last error ("SSE event larger than max_event_bytes", ...), or NULL. */
const char *sse_error(const sse_parser *p);

/* 1 when bytes of an incomplete event are buffered (the stream was cut mid-event), else 0. */
int sse_pending(const sse_parser *p);

#endif
