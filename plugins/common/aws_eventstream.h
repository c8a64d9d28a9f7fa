/* aws_eventstream.h - application/vnd.amazon.eventstream framing: incremental decoder and encoder.
 *
 * A message on the wire (all integers big-endian):
 *   total_length u32 | headers_length u32 | prelude_crc u32 (CRC-32 of the 8 bytes before)
 *   headers (headers_length bytes) | payload | message_crc u32 (CRC-32 of every byte before it)
 * total_length = 16 + headers_length + payload length. A header is
 *   name_length u8 (1..255) | name | type u8 | value
 * with value by type: 0 bool true, 1 bool false (no bytes), 2 byte (i8), 3 short (i16), 4 int (i32),
 * 5 long (i64), 6 bytes and 7 string (u16 length + bytes), 8 timestamp (i64, ms since the epoch),
 * 9 uuid (16 bytes).
 *
 * Bedrock's ConverseStream answers with such messages: ":message-type" "event" (":event-type" =
 * "contentBlockDelta", ...), "exception" (":exception-type" = "throttlingException", ...) or
 * "error" (":error-code", ":error-message"); ":content-type" "application/json"; the payload is
 * the JSON of the event. Pure code (zlib's crc32), no globals, one decoder per stream.
 */
#ifndef AIGW_AWS_EVENTSTREAM_H
#define AIGW_AWS_EVENTSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "pcommon.h"

#define AWS_ES_PRELUDE_LEN 12
#define AWS_ES_MIN_MESSAGE 16                    /* prelude + message CRC */
#define AWS_ES_DEFAULT_MAX_MESSAGE (16u << 20)   /* 16 MiB */

typedef enum aws_es_type {
  AWS_ES_BOOL_TRUE = 0,
  AWS_ES_BOOL_FALSE = 1,
  AWS_ES_BYTE = 2,
  AWS_ES_SHORT = 3,
  AWS_ES_INT = 4,
  AWS_ES_LONG = 5,
  AWS_ES_BYTES = 6,
  AWS_ES_STRING = 7,
  AWS_ES_TIMESTAMP = 8,
  AWS_ES_UUID = 9
} aws_es_type;

/* A byte string that is NOT NUL-terminated. */
typedef struct aws_es_str {
  const char *p;
  size_t n;
} aws_es_str;

/* One header. In a decoded message every pointer is borrowed: it points into the message's bytes
 * and is valid only during the callback. For the encoder the caller owns them for the call.
 * i: bool (1 true / 0 false), byte, short, int, long, timestamp; v/vn: bytes, string, uuid (16). */
typedef struct aws_es_header {
  aws_es_str name;
  aws_es_type type;
  int64_t i;
  const uint8_t *v;
  size_t vn;
} aws_es_header;

/* A decoded message, borrowed for the duration of the callback (headers and payload point into
 * the fed bytes or into the decoder's buffer). The well-known string headers are found for
 * convenience (p = NULL when absent or not a string): ":event-type", ":message-type",
 * ":content-type", ":exception-type", ":error-code", ":error-message". */
typedef struct aws_es_message {
  const aws_es_header *headers;
  size_t nheaders;
  const uint8_t *payload;
  size_t payload_len;
  aws_es_str event_type, message_type, content_type, exception_type, error_code, error_message;
} aws_es_message;

/* Called once per complete, CRC-checked message. Return 0 to go on; non-zero stops the feed, which
 * then returns that value (the bytes after the message are kept: a later feed, even of 0 bytes,
 * resumes with them). */
typedef int (*aws_es_message_fn)(void *ud, const aws_es_message *m);

/* The decoder. OWNERSHIP: the caller owns the struct (init / free); the decoder owns its buffers.
 * Not thread-safe; one per stream. */
typedef struct aws_es_decoder {
  uint8_t *buf;        /* bytes of an incomplete message (and, after a stop, what followed) */
  size_t off, n, cap;  /* buf[off..n) is pending */
  size_t max_message;  /* total_length cap */
  aws_es_header *hdrs; /* scratch for the current message's headers */
  size_t hcap;
  int failed;
  char err[160];
} aws_es_decoder;

/* max_message: the largest total_length accepted (0 = AWS_ES_DEFAULT_MAX_MESSAGE). */
void aws_es_decoder_init(aws_es_decoder *d, size_t max_message);
void aws_es_decoder_free(aws_es_decoder *d);

/* Feeds bytes (any split: a message may arrive one byte at a time). Calls cb for each complete
 * message, in order. Returns 0 (all consumed or buffered), the callback's non-zero value, or -1
 * on a framing error: bad prelude CRC, bad message CRC, total_length over the cap or under 16,
 * headers_length over the message, malformed headers, out of memory. After -1 the decoder is
 * failed: every later feed returns -1; aws_es_decoder_error gives the message. p may be NULL
 * when n = 0. */
int aws_es_decoder_feed(aws_es_decoder *d, const void *p, size_t n, aws_es_message_fn cb, void *ud);

/* NULL, or why the decoder failed ("eventstream: prelude CRC mismatch ..."). */
const char *aws_es_decoder_error(const aws_es_decoder *d);

/* Bytes held for an incomplete message: non-zero at the end of the upstream body = truncated. */
size_t aws_es_decoder_pending(const aws_es_decoder *d);

/* Finds a header by exact name (first match), or NULL. */
const aws_es_header *aws_es_find(const aws_es_message *m, const char *name);

/* 1 when s equals the NUL-terminated lit. */
int aws_es_str_eq(aws_es_str s, const char *lit);

/* Appends one encoded message to *out. Returns 0, or -1 with *out unchanged in length: a name
 * empty or over 255 bytes, a bytes/string value over 65535, a uuid not 16 bytes, an unknown type,
 * a message over 4 GiB, out of memory. Header values are taken from the fields named above. */
int aws_es_encode(pc_buf *out, const aws_es_header *headers, size_t nheaders, const void *payload,
                  size_t payload_len);

/* Convenience constructors for encoder input (pointers borrowed from the arguments). */
aws_es_header aws_es_hdr_str(const char *name, const char *value);
aws_es_header aws_es_hdr_int(const char *name, aws_es_type type, int64_t value);
aws_es_header aws_es_hdr_bytes(const char *name, aws_es_type type, const void *v, size_t n);

#endif
