/* xlate.h - the hub format (OpenAI Chat Completions JSON + extensions, docs/translation.md) and
 * its translation to and from the Anthropic Messages API: requests, non-stream responses, stream
 * events (a decoder Anthropic SSE -> hub chunks, an encoder hub chunks -> Anthropic SSE) and
 * error bodies.
 *
 * Pure C11 over cJSON: no globals, no I/O, no clock (the caller passes `created` times), thread-
 * safe for distinct objects. Nothing here keeps a pointer to its inputs after it returns.
 *
 * OWNERSHIP, for every function below unless it says otherwise:
 *   - input trees / strings are borrowed and never modified;
 *   - a returned cJSON * is a new tree owned by the caller (free with cJSON_Delete); NULL means
 *     failure and `err` (may be NULL) says why: 400 when a request cannot be carried (the message
 *     names the field and "anthropic"), 502 when a provider answer cannot be understood, 500 when
 *     out of memory;
 *   - callbacks (pc_chunk_fn, pc_event_fn) receive borrowed data valid only during the call.
 *
 * ---- Hub extension members produced / consumed here (besides standard OpenAI chat members) ----
 * Request, top level:
 *   top_k            number                      Anthropic top_k
 *   thinking         {"type":"enabled","budget_tokens":N} | {"type":"disabled"} | {"type":"adaptive"}
 *                                                Anthropic thinking, verbatim
 *   reasoning_effort (standard OpenAI) -> Anthropic thinking budget: XL_EFFORT_* below
 *   x_anthropic      object: Anthropic request members with no hub meaning (service_tier,
 *                    container, mcp_servers, context_management, inference_geo, output_config
 *                    minus `format`, any unknown member), verbatim. xl_hub_req_to_anth merges
 *                    them back; every other adapter must strip it (or refuse it with a 400 when
 *                    it holds a feature it cannot honour, e.g. mcp_servers).
 *   user             <- Anthropic metadata.user_id (hub metadata.user_id is also read back)
 * Request, messages:
 *   any content part / tool message / tool_calls[] entry: "cache_control" {type:"ephemeral",...}
 *   tool message:    "is_error": true; content may also hold image_url / file parts (from
 *                    Anthropic tool_result blocks; OpenAI itself only takes text there)
 *   assistant:       "reasoning_content" string, "thinking_blocks" [{type:"thinking",thinking,
 *                    signature} | {type:"redacted_thinking",data}] (verbatim, for round trips)
 *   file part:       "file": {"file_data":"data:<mime>;base64,...","filename"} as OpenAI, or
 *                    ext {"file_url":"https://..."}; ext "citations" (Anthropic citations config)
 *   tools[]:         {"type":"function",function:{name,description,parameters,strict},
 *                    cache_control} or ext {"type":"anthropic","anthropic":{...}}: an Anthropic
 *                    server/typed tool (web_search_..., bash_..., ...) kept verbatim.
 * Response: choices[0].message.reasoning_content / thinking_blocks as above; choices[0]
 *   "stop_sequence" (the matched sequence); usage.cache_creation_input_tokens.
 * Stream chunks: delta.reasoning_content, delta.thinking_blocks (a signature arrives as
 *   [{"type":"thinking","thinking":"","signature":"..."}], a redacted block whole), and the
 *   final-choice "stop_sequence".
 *
 * ---- What is refused towards Anthropic (pc_err 400, field and "anthropic" named) ----
 *   n > 1, logprobs true / top_logprobs, non-zero frequency_penalty / presence_penalty,
 *   non-empty logit_bias, response_format json_object, audio output (modalities/audio),
 *   legacy functions / function_call, prediction, web_search_options, input_audio parts,
 *   file_id files, tool types other than function / anthropic, unparsable tool arguments.
 * Dropped on purpose (no Anthropic meaning, documented best-effort in OpenAI): seed, store,
 *   service_tier, metadata members other than user_id, stream_options, image `detail`,
 *   reasoning_content without thinking_blocks (Anthropic refuses unsigned thinking).
 * response_format json_schema -> Anthropic output_config.format (native structured outputs;
 *   models without it answer 400 themselves). Anthropic output_config.format -> json_schema
 *   named "output".
 *
 * ---- Ids ----
 * Message ids: Anthropic "msg_X" <-> hub "chatcmpl-X" (any other id is kept verbatim), so a
 * round trip gives the original id back. Tool call ids are kept verbatim; towards Anthropic,
 * characters outside [A-Za-z0-9_-] become '_' (the same mapping for tool_use ids and
 * tool_result tool_use_ids, so pairs still match).
 *
 * ---- Known losses ----
 * Assistant turns: the hub keeps text and tool calls apart, so an Anthropic assistant turn comes
 * back as [thinking..., text..., tool_use...] (text after a tool_use moves before it). Text
 * citations in responses and server-tool blocks in responses (server_tool_use,
 * web_search_tool_result, ...) are not carried to the hub.
 */
#ifndef AIGW_XLATE_H
#define AIGW_XLATE_H

#include <stddef.h>

#include "pcommon.h"

/* reasoning_effort -> Anthropic thinking.budget_tokens ("none" turns thinking off). When the
 * budget is derived from reasoning_effort and max_tokens is not above it, max_tokens becomes
 * budget + max_tokens so the answer keeps its own room. */
#define XL_EFFORT_MINIMAL 1024
#define XL_EFFORT_LOW 2048
#define XL_EFFORT_MEDIUM 8192
#define XL_EFFORT_HIGH 16384

#define XL_DEFAULT_MAX_TOKENS 4096

/* Return value of the stream functions when the upstream stream carried an error event:
 * err->status is the HTTP status of that error (Anthropic overloaded_error = 529), err->param
 * its type, err->msg its message; turn it into a client error event with xl_error_to_openai /
 * xl_error_to_anth. Other failures return -1 with err set (502 garbage, 500 memory). */
#define XL_EUPSTREAM (-2)

/* ================================ requests ================================ */

typedef struct xl_anth_opts {
  int default_max_tokens; /* Anthropic max_tokens when the hub request has none; 0: 4096 */
} xl_anth_opts;

/* Anthropic Messages request -> hub request (new tree). */
cJSON *xl_anth_req_to_hub(const cJSON *anth, pc_err *err);

/* hub request -> Anthropic Messages request (new tree). opts may be NULL. The model is copied as
 * is (the caller maps model names). */
cJSON *xl_hub_req_to_anth(const cJSON *hub, const xl_anth_opts *opts, pc_err *err);

/* ============================ non-stream responses ============================ */

/* Anthropic Message -> hub chat.completion (new tree); `created` is the unix time to stamp. */
cJSON *xl_anth_resp_to_hub(const cJSON *anth, long long created, pc_err *err);

/* hub chat.completion -> Anthropic Message (new tree). Only choices[0] is used. */
cJSON *xl_hub_resp_to_anth(const cJSON *hub, pc_err *err);

/* stop_reason <-> finish_reason (static strings; unknown in -> "stop" / "end_turn"). */
const char *xl_anth_stop_to_finish(const char *stop_reason);
const char *xl_finish_to_anth_stop(const char *finish_reason);

/* ================================ streams ================================ */

/* Decoder: Anthropic SSE events -> hub chat.completion.chunk objects.
 * Chunks produced:
 *   message_start            {delta:{role:"assistant",content:""}}
 *   text start/text_delta    {delta:{content}}
 *   tool_use start           {delta:{tool_calls:[{index,id,type:"function",function:{name,arguments:""}}]}}
 *   input_json_delta         {delta:{tool_calls:[{index,function:{arguments}}]}} (index counts the
 *                            tool_use blocks of the message from 0)
 *   thinking_delta           {delta:{reasoning_content}}
 *   signature_delta          {delta:{thinking_blocks:[{type:"thinking",thinking:"",signature}]}}
 *   redacted_thinking start  {delta:{thinking_blocks:[{type:"redacted_thinking",data}]}}
 *   message_delta            {delta:{},finish_reason[,stop_sequence]} then the usage chunk
 *                            {choices:[],usage} (always sent: the ingress side decides whether
 *                            the client asked for it)
 *   message_stop             nothing; sets `done` (the caller then ends the stream, "[DONE]")
 *   ping, unknown events, unknown block / delta types: nothing.
 * Each chunk has id ("chatcmpl-..." from the message id), object, created, model. */
typedef struct xl_anth_blk {
  int anth_index; /* Anthropic content block index */
  int kind;       /* internal */
  int tool_index; /* hub tool call index for tool_use blocks */
} xl_anth_blk;

typedef struct xl_anth_dec {
  long long created;
  char id[160], model[160];
  int started;      /* message_start seen */
  int finished;     /* finish + usage chunks sent */
  int done;         /* message_stop seen */
  int ntools;       /* tool_use blocks so far */
  xl_anth_blk *blk; /* owned; blocks seen */
  int nblk, capblk;
  long long in_tok, out_tok, cache_read, cache_create, think_tok;
} xl_anth_dec;

/* created: unix time stamped on the chunks. Free with xl_anth_dec_free. */
void xl_anth_dec_init(xl_anth_dec *d, long long created);
void xl_anth_dec_free(xl_anth_dec *d);

/* One SSE event: name (NUL-terminated or NULL; the data's "type" member decides, the name is
 * only a fallback), data (n bytes, not NUL-terminated, borrowed). Feed events in order; the
 * caller's SSE parser reassembles events split across reads.
 * Returns 0, the callback's non-zero value, XL_EUPSTREAM for an error event, or -1 (err set:
 * 502 for data that is not an Anthropic event, 500 out of memory). */
int xl_anth_dec_event(xl_anth_dec *d, const char *name, const char *data, size_t n, pc_chunk_fn cb,
                      void *ud, pc_err *err);

/* The upstream stream ended. Returns 0 when message_stop (or at least message_delta) was seen,
 * else -1 with a 502 "stream ended early" in err (the caller sends an error event). */
int xl_anth_dec_finish(xl_anth_dec *d, pc_err *err);

/* Encoder: hub chunks -> Anthropic SSE events via pc_event_fn(ud, kind, name, json, len):
 *   message_start (OTHER) first, with usage.input_tokens = opts.input_tokens when the caller
 *     knows the prompt size (else 0: OpenAI reports usage only in the last chunk; the real
 *     numbers then arrive in message_delta's usage);
 *   content_block_start (OTHER) / content_block_delta / content_block_stop (OTHER), one block
 *     open at a time: thinking (thinking_delta, OTHER; signature_delta, OTHER; a signature closes
 *     the block), text (text_delta, DELTA), tool_use per tool call index (input_json_delta,
 *     TOOL_DELTA), redacted_thinking (start + stop);
 *   message_delta (USAGE when usage is known, else STOP) with stop_reason, stop_sequence and
 *     usage {input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens};
 *   message_stop (DONE);
 *   a hub chunk {"error":{...}} -> an Anthropic error event (ERROR) and the stream ends.
 * message_delta/message_stop go out once both the finish_reason and the usage were seen, or at
 * xl_anth_enc_finish. */
typedef struct xl_anth_enc_opts {
  long long input_tokens; /* prompt tokens for message_start when known, else -1 */
  const char *model;      /* model when the chunks carry none; may be NULL */
  const char *id;         /* message id when the chunks carry none; may be NULL */
} xl_anth_enc_opts;

typedef struct xl_anth_enc {
  long long input_tokens;
  char id[160], model[160];
  int started, stopped;
  int open;          /* kind of the open block, 0 none */
  int next_index;    /* next Anthropic block index */
  int tool_index;    /* hub index of the open tool_use block */
  int max_tool;      /* highest hub tool index opened so far, -1 none */
  char finish[32];   /* finish_reason seen, "" none */
  char *stop_seq;    /* owned */
  int have_usage;
  long long prompt, completion, cached, cache_create;
} xl_anth_enc;

/* opts may be NULL. Free with xl_anth_enc_free. */
void xl_anth_enc_init(xl_anth_enc *e, const xl_anth_enc_opts *opts);
void xl_anth_enc_free(xl_anth_enc *e);

/* One hub chunk (borrowed). Returns 0, the callback's non-zero value, or -1 (err set: 502 for
 * a chunk that is not a hub chunk or interleaves arguments of an already closed tool call, 500). */
int xl_anth_enc_chunk(xl_anth_enc *e, const cJSON *chunk, pc_event_fn cb, void *ud, pc_err *err);

/* Same, from the SSE data text of an OpenAI-format event; "[DONE]" calls xl_anth_enc_finish. */
int xl_anth_enc_data(xl_anth_enc *e, const char *data, size_t n, pc_event_fn cb, void *ud, pc_err *err);

/* End of the upstream stream: closes the open block, sends message_delta + message_stop if not
 * yet sent. When no finish_reason ever arrived the stream was cut: an Anthropic error event
 * (api_error, ERROR kind) is sent instead. Idempotent. */
int xl_anth_enc_finish(xl_anth_enc *e, pc_event_fn cb, void *ud, pc_err *err);

/* Fast paths for the common event, a plain text delta, without building trees (the tree paths
 * above give the same result). Each returns 1 when it handled the event (out holds the JSON text
 * of the one event to send, or is empty when there is nothing to send), 0 when the event must go
 * the tree path, -1 out of memory. out is the caller's buffer, reset here.
 *   xl_anth_dec_text_fast: an Anthropic content_block_delta/text_delta (SSE data) for an open
 *     text block -> a hub (OpenAI) chunk with delta.content.
 *   xl_anth_enc_text_fast: an OpenAI chunk whose only content is delta.content, while a text block
 *     is open -> an Anthropic content_block_delta event (name "content_block_delta", kind DELTA). */
int xl_anth_dec_text_fast(xl_anth_dec *d, const char *data, size_t n, pc_buf *out);
int xl_anth_enc_text_fast(xl_anth_enc *e, const char *data, size_t n, pc_buf *out);

/* ================================ errors ================================ */

/* Anthropic error type for a status: 400 invalid_request_error, 401 authentication_error,
 * 402 billing_error, 403 permission_error, 404 not_found_error, 413 request_too_large,
 * 429 rate_limit_error, 503/529 overloaded_error, 504 timeout_error, other 4xx
 * invalid_request_error, other 5xx api_error. Static string. */
const char *xl_anth_error_type(int status);
/* Status for an Anthropic error type (unknown: 500). */
int xl_anth_error_status(const char *type);
/* OpenAI error type for a status: 401 authentication_error, 403 permission_error,
 * 404 not_found_error, 429 rate_limit_error, other 4xx invalid_request_error, 5xx server_error. */
const char *xl_openai_error_type(int status);

/* {"type":"error","error":{"type":<by status>,"message":message}} (new tree). */
cJSON *xl_error_to_anth(int status, const char *message);
/* {"error":{"message","type":<by status>,"param":param or null,"code":code or null}} (new tree);
 * param and code may be NULL. */
cJSON *xl_error_to_openai(int status, const char *message, const char *param, const char *code);

/* A provider's error body in one format -> the other format's body (new tree, never NULL unless
 * out of memory). body may be anything (not JSON, other shapes: its text becomes the message).
 * *status_out (may be NULL) receives the client status: Anthropic 529 -> 503 towards OpenAI
 * clients, 503 -> 529 towards Anthropic clients, others unchanged. The Anthropic error type
 * becomes the OpenAI `code`; an OpenAI `type` is not carried (Anthropic types go by status). */
cJSON *xl_error_anth_body_to_openai(int status, const char *body, size_t n, int *status_out);
cJSON *xl_error_openai_body_to_anth(int status, const char *body, size_t n, int *status_out);

/* ================================ helpers ================================ */

/* Standard base64 (with padding). Encode: new NUL-terminated string (free()), NULL out of
 * memory. Decode: new buffer (free()) of *out_n bytes + NUL, NULL when not valid base64. */
char *xl_b64_encode(const unsigned char *p, size_t n);
unsigned char *xl_b64_decode(const char *s, size_t n, size_t *out_n);

#endif
