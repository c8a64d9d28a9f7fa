/* plugins/common: in-tree code shared by aigw's own provider plugins.
 *
 * Linked statically (PIC) into each plugin and into the unit tests; NOT part of the public SDK
 * and never crossing the ABI: plugins still reach the host only through aigw_host. Everything
 * here is pure (no globals, no I/O, thread-safe), so it can be tested and fuzzed on its own.
 *
 * Modules (each has its own header, which documents ownership):
 *   pcommon.h          this file: a growable byte buffer, pc_err, stream callback types
 *   xlate.h            the hub format and the OpenAI chat <-> Anthropic messages translation
 *   xlate_responses.h  OpenAI Responses API <-> hub (requests, responses, event encoder)
 *   xlate_gemini.h     hub <-> Gemini generateContent / embeddings; gcp_jwt.h: Vertex OAuth JWT
 *   xlate_bedrock.h    hub <-> Bedrock Converse; aws_sigv4.h, aws_eventstream.h: signing, framing
 *   xlate_cohere.h     hub <-> Cohere v2 chat / embed
 *   ingress.h          the client side of a translating adapter, through the host table
 *
 * The hub format (docs/translation.md): OpenAI Chat Completions JSON plus documented extension
 * fields, so that every ingress format and every provider format translates to and from one shape.
 */
#ifndef AIGW_PCOMMON_H
#define AIGW_PCOMMON_H

#include <stddef.h>

#include <aigw/plugin.h> /* aigw_event_kind */
#include <cjson/cJSON.h>

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

/* Small helpers shared by the provider plugins' config and header handling.
 *   pc_str_eq: s equals the NUL-terminated lit exactly.
 *   pc_has_ctl: s holds a control character other than TAB (or DEL): not allowed in header values.
 *   pc_member_at: the value of the i-th member of a JSON object (the host's json_at is for arrays);
 *     *name (may be NULL) gets the member name, borrowed. NULL past the end or for names of 256
 *     bytes or more. */
int pc_str_eq(aigw_str s, const char *lit);
char *pc_strndup(const char *p, size_t n); /* malloc'd, NUL-terminated; NULL when out of memory */
char *pc_dup(aigw_str s);                  /* the same for a string view */
void pc_free_list(char **v, size_t n);     /* frees v[0..n) and v (v may be NULL) */
/* A plugin's "headers" option hs: 1 to max header names, lower-cased, malloc'd into out[0..*n)
 * (the caller frees them, also on failure). 0, -1 bad (reported at /headers), -2 out of memory. */
int pc_header_names(const aigw_host *H, const aigw_json *hs, char **out, size_t max, size_t *n, aigw_diag *d);
int pc_has_ctl(aigw_str s);
/* The request's own key for the provider adapter being called ("bring your own key": a request
 * plugin set it with h->set_credential; ABI 1.3), or an empty string: use the configured key.
 * Borrowed, valid until the request ends. */
aigw_str pc_credential(const aigw_host *H, aigw_req *r);
/* A borrowed host JSON node (a plugin's config) as a new cJSON tree (caller frees), at most 16
 * levels deep. NULL on failure (out of memory, too deep). */
cJSON *pc_to_cjson(const aigw_host *H, const aigw_json *j);
const aigw_json *pc_member_at(const aigw_host *H, const aigw_json *obj, size_t i, aigw_str *name);

/* A translation failure the client should see: HTTP status (400 when the request cannot be
 * carried to the provider, 502 when a provider answer cannot be understood), the offending field
 * as a JSON path ("messages[3].content[0].type", may be ""), and a message naming the field and
 * the provider, e.g. "messages[3].content[0]: image URLs are not supported by bedrock; send the
 * image as base64 data". */
typedef struct pc_err {
  int status;
  char param[128];
  char msg[384];
} pc_err;
void pc_err_set(pc_err *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Stream translation callbacks (all arguments borrowed for the duration of the call).
 * A decoder turns one provider event into zero or more hub chunks (docs/translation.md);
 * an encoder turns one hub chunk into zero or more events of a wire format.
 * name: the SSE event name, or NULL for none. Return 0 to go on, non-zero to stop (the
 * decoder/encoder then returns that value). */
typedef int (*pc_chunk_fn)(void *ud, const cJSON *chunk);
typedef int (*pc_event_fn)(void *ud, aigw_event_kind kind, const char *name, const char *data, size_t n);

#endif
