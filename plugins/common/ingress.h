/* ingress.h - the client side of a translating provider adapter.
 *
 * A provider adapter that does not speak the client's format works in the hub format
 * (docs/translation.md). These helpers turn the client's request (route api: OpenAI chat or
 * Anthropic messages) into a hub request, and a hub answer (response, stream chunks, errors) into
 * what the client's SDK expects, through the host table. One adapter thus serves every ingress
 * format with one hub <-> provider translation.
 *
 * Clients of the Responses API (route api "responses") are bridged the same way; a request with
 * previous_response_id must have been resolved before (the responses_state plugin rewrites it
 * into a self-contained request), otherwise it is a 400 naming that plugin.
 *
 * Threads: worker thread of the request, inside the adapter's hooks. No globals.
 * OWNERSHIP: trees passed in are borrowed; returned trees belong to the caller (cJSON_Delete).
 */
#ifndef AIGW_INGRESS_H
#define AIGW_INGRESS_H

#include "pcommon.h"
#include "xlate.h"
#include "xlate_responses.h"

/* The client's request (the upstream-request body as the request hooks left it) as a hub request;
 * NULL with err set (400 naming the field) when it cannot be read or carried. The route target's
 * model ("aigw.target_model") replaces "model" when set. For Anthropic-format clients it also
 * removes anthropic-version / anthropic-beta from the upstream request (a warning names the
 * dropped betas): only for adapters whose provider is not Anthropic. */
cJSON *ing_hub_request(const aigw_host *H, aigw_req *r, pc_err *err);

/* Answer the client with a hub chat.completion in its format (response phase, provider
 * on_response): replaces the upstream response body and reports usage. 0, or -1 (err set). */
int ing_hub_response(const aigw_host *H, aigw_req *r, const cJSON *hub, pc_err *err);

/* The usual tail of a translating adapter's on_response: answer with hub (owned, freed here)
 * through ing_hub_response; a failure there answers a 502-class error in the client's format.
 * Returns AIGW_CONTINUE, or AIGW_STOP after an error answer. */
aigw_status ing_answer_hub(const aigw_host *H, aigw_req *r, cJSON *hub);

/* A decoder callback (pc_chunk_fn) that hands each hub chunk to ing_stream_chunk; ud is an
 * ing_fwd (borrowed for the call). Stops the decoder (returns 1) when the client's stream ended
 * with an error. */
typedef struct ing_fwd {
  const aigw_host *H;
  aigw_req *r;
  struct ing_stream *st;
} ing_fwd;
int ing_fwd_chunk(void *ud, const cJSON *chunk);

/* Answer the client with an error in its format: status, an OpenAI-style type (may be NULL:
 * derived from the status) and a message. Keeps Retry-After (the host copied it already). */
void ing_error(const aigw_host *H, aigw_req *r, int status, const char *type, const char *message);

/* hub usage object -> h->set_usage (prompt_tokens include cached ones; cache_creation_input_tokens
 * is the hub extension). Returns 1 when something was reported. */
int ing_report_usage(const aigw_host *H, aigw_req *r, const cJSON *usage);

/* Streams: hub chunks -> client events through h->provider_emit.
 *   chat ingress: each chunk as an OpenAI chunk (the usage chunk only when the client asked for
 *     it with stream_options.include_usage), "[DONE]" at the end;
 *   messages ingress: the Anthropic event sequence (xlate.h's encoder);
 *   responses ingress: the Responses event sequence (xlate_responses.h's encoder).
 * Usage in chunks is reported to the host either way. */
typedef struct ing_stream {
  aigw_api api;
  int client_usage; /* chat: the client asked for the usage chunk */
  int done;         /* the end was emitted */
  int enc_init;
  xl_anth_enc enc;   /* messages clients */
  int renc_init;
  xr_enc renc;       /* responses clients */
  pc_buf fast;       /* scratch for the text-delta fast paths */
} ing_stream;

/* In prepare (reads the client's stream_options). Free with ing_stream_free (from on_done or the
 * adapter's request cleanup; safe to call twice). */
void ing_stream_init(const aigw_host *H, aigw_req *r, ing_stream *s);
void ing_stream_free(ing_stream *s);
/* One hub chunk. 0, or -1 when the stream was ended with an error event. */
int ing_stream_chunk(const aigw_host *H, aigw_req *r, ing_stream *s, const cJSON *chunk);
/* A client event the adapter produced itself (a fast path for plain text deltas): emitted as is
 * unless the stream already ended. 0, or -1. */
int ing_stream_emit_raw(const aigw_host *H, aigw_req *r, ing_stream *s, aigw_event_kind kind, const char *name,
                        const char *data, size_t n);
/* The provider told the prompt size before the first content (e.g. Gemini's usageMetadata on its
 * first chunk): message_start of an Anthropic-format client then carries it instead of the
 * estimate. input_tokens excludes cache reads (Anthropic's meaning). No-op once started. */
void ing_stream_prompt_tokens(ing_stream *s, long long input_tokens);
/* The provider's stream ended cleanly: close the client's stream (message_stop / [DONE]). */
int ing_stream_end(const aigw_host *H, aigw_req *r, ing_stream *s);
/* The provider reported an error mid-stream: end the client's stream with an error event in its
 * format. */
void ing_stream_error(const aigw_host *H, aigw_req *r, ing_stream *s, int status, const char *message);

/* One OpenAI-format stream event from an upstream (a hub chunk, "[DONE]", or an error) -> the
 * client's events. The caller returns AIGW_DROP for the upstream event. */
/* The same for one event's data (an adapter replaying events it held back). */
void ing_openai_data(const aigw_host *H, aigw_req *r, ing_stream *st, const char *p, size_t n);
void ing_openai_event(const aigw_host *H, aigw_req *r, ing_stream *st, aigw_event *ev);

/* A provider's non-2xx answer (status, body as received). When the client's format differs from
 * wire ("openai" or "anthropic": the error shape the provider used), answers the client with the
 * error in its own format (message kept, status mapped) and returns 1; returns 0 when the formats
 * match and the body can go through untouched. */
int ing_upstream_error(const aigw_host *H, aigw_req *r, const char *wire, int status, aigw_str body);

/* Make a hub request fit an OpenAI-compatible upstream: removes the hub's extension members
 * (cache_control, thinking blocks, is_error, top_k, Anthropic extras), refuses with a 400 what
 * cannot be carried (Anthropic server tools, MCP servers, images in tool results, documents by
 * URL). provider names the upstream in messages. 0, or -1 with err set. */
int ing_hub_strip_for_openai(const aigw_host *H, aigw_req *r, cJSON *hub, const char *provider, pc_err *err);

#endif
