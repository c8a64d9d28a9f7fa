/* plugins/common: in-tree code shared by aigw's own provider plugins.
 *
 * Linked statically (PIC) into each plugin and into the unit tests; NOT part of the public SDK
 * and never crossing the ABI: plugins still reach the host only through aigw_host. Everything
 * here is pure (no globals, no I/O, thread-safe), so it can be tested and fuzzed on its own.
 *
 * Modules (each has its own header, which documents ownership):
 *   pcommon.h        this file: a growable byte buffer used by the others
 *   xlate.h          the hub format and the OpenAI chat <-> Anthropic messages translation
 *   (more: aws_sigv4.h, aws_eventstream.h, xlate_bedrock.h, xlate_gemini.h, gcp_jwt.h)
 *
 * The hub format (docs/translation.md): OpenAI Chat Completions JSON plus documented extension
 * fields, so that every ingress format and every provider format translates to and from one shape.
 */
#ifndef AIGW_PCOMMON_H
#define AIGW_PCOMMON_H

#include <stddef.h>

/* A growable byte buffer. Owns p (free with pc_buf_free). Always NUL-terminated after a
 * successful append. Functions return 0, or -1 when out of memory (buffer unchanged). */
typedef struct pc_buf {
  char *p;
  size_t n, cap;
} pc_buf;

int pc_buf_add(pc_buf *b, const void *p, size_t n);
int pc_buf_adds(pc_buf *b, const char *s);
int pc_buf_printf(pc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pc_buf_free(pc_buf *b);

#endif
