/* xlate_responses.h - the OpenAI Responses API (POST /v1/responses) <-> hub (docs/translation.md):
 * requests, non-stream responses, the streaming event encoder (hub chunks -> Responses events),
 * the conversation kept for `previous_response_id`, and error bodies.
 *
 * Pure C11 over cJSON: no globals, no I/O, no clock, thread-safe for distinct objects. Same
 * OWNERSHIP rules as xlate.h: inputs borrowed and never modified (except the `hub` argument of
 * xr_hub_prepend, which is edited in place); returned cJSON * are new trees owned by the caller;
 * NULL / -1 means failure with `err` set (400: the request cannot be carried, the message names
 * the field; 502: a hub answer that is not one; 500: out of memory); callbacks get borrowed data.
 *
 * ---- How ingress uses it (route api = responses) ----
 *   prepare:
 *     xr_req_info info;
 *     cJSON *hub = xr_req_to_hub(body, provider_name, &info, &err);       // 400 -> client
 *     if (info.previous_response_id[0]) {
 *       cJSON *stored = <load the hub messages array stored under that id; 404 when unknown>;
 *       xr_hub_prepend(hub, body, stored, &err);
 *     }
 *     keep `body` (the client's Responses request) and `hub` for the answer.
 *   non-stream answer (hub chat.completion `hr` from the provider side):
 *     cJSON *out = xr_hub_resp_to_responses(hr, body, &err);             // client body
 *     if (info.store) store xr_conversation(body, hub, hr, &err) under out.id
 *       (cJSON_GetObjectItem(out,"id"), also xr_response_id(hub id)).
 *   stream: xr_enc_init(&enc, &(xr_enc_opts){.req = body, .created = now}) in prepare; each hub
 *     chunk -> xr_enc_chunk(&enc, chunk, emit, ud, &err) where emit calls provider_emit(kind,
 *     name, data); upstream end -> xr_enc_finish; upstream error -> xr_enc_error. After the end,
 *     if info.store: hr = xr_enc_hub_response(&enc, &err); store xr_conversation(body, hub, hr)
 *     under xr_enc_response(&enc)'s "id". xr_enc_free in cleanup.
 *   errors: the Responses API uses OpenAI's error shape: xl_error_to_openai (xlate.h), or
 *     xr_error_body(pc_err) below; Anthropic-shaped provider errors via xl_error_anth_body_to_openai.
 *   The stored conversation never contains the `instructions` system message: as in OpenAI,
 *   instructions do not carry over to a request that continues with previous_response_id.
 *
 * ---- Request mapping (Responses -> hub) ----
 *   instructions (string)           -> leading {"role":"system"} message
 *   input: string                   -> one user message
 *   input items:
 *     message (type "message" or no type; role user/system/developer/assistant; content string or
 *       parts): input_text / output_text -> {"type":"text"}; input_image {image_url: data URL or
 *       https URL, detail} -> {"type":"image_url"}; input_file {file_data (data URL, or bare base64
 *       taken as application/pdf), filename} -> {"type":"file"}, {file_url} -> hub ext file_url;
 *       file_id anywhere -> 400 (aigw has no file store); input_audio -> 400. Assistant messages
 *       become hub assistant text (a string); a refusal part -> hub "refusal".
 *     function_call {call_id, name, arguments} -> assistant tool_calls[] (consecutive assistant-side
 *       items - reasoning, assistant message, function_call - merge into one hub assistant
 *       message, in that order; a reasoning item after text or a function_call, or an assistant
 *       message after a function_call, starts a new assistant message)
 *     function_call_output {call_id, output: string or input_text/input_image/input_file parts}
 *       -> {"role":"tool","tool_call_id","content"}
 *     reasoning {summary[], content[], encrypted_content}: reasoning_text content (else the
 *       summary texts, joined by "\n\n") -> hub reasoning_content; encrypted_content made by aigw
 *       ("aigw1:" + base64 of the hub thinking_blocks JSON, see below) -> thinking_blocks, so signed
 *       Anthropic/Bedrock thinking survives a stateless (store:false) round trip; any other
 *       encrypted_content (OpenAI's own) is dropped: no other provider can read it.
 *     item_reference and every other item type (computer_call, web_search_call, mcp_*, ...) -> 400.
 *   tools[]: {type:"function", name, description, parameters, strict} -> hub function tools
 *     (strict only when given: the Responses default strict=true is not forced on the provider);
 *     built-in tools (web_search*, file_search, computer_use*, code_interpreter, mcp,
 *     image_generation, local_shell, shell, custom, apply_patch, ...) -> 400 naming the tool.
 *   tool_choice: "auto"/"none"/"required" verbatim; {type:"function",name} -> {type:"function",
 *     function:{name}}; allowed_tools and hosted-tool choices -> 400.
 *   parallel_tool_calls, temperature, top_p, metadata, user, safety_identifier, service_tier,
 *     prompt_cache_key, prompt_cache_retention, model: copied. max_output_tokens ->
 *     max_completion_tokens. reasoning.effort -> reasoning_effort (reasoning.summary /
 *     generate_summary dropped: the summary is whatever reasoning the provider returns).
 *   text.format: text -> nothing; json_object -> response_format json_object; json_schema {name,
 *     schema, strict, description} -> response_format {type:"json_schema", json_schema:{...}}
 *     (no name: "output"). text.verbosity -> verbosity.
 *   stream: true -> stream + stream_options.include_usage (the final event needs usage).
 *   include: "reasoning.encrypted_content" -> reasoning items carry encrypted_content (above);
 *     "message.output_text.logprobs" -> 400; the others concern built-in tools (refused anyway)
 *     or input images and are ignored.
 *   Refused with 400: background: true (aigw keeps no running responses), conversation (aigw has
 *     no conversation objects; use previous_response_id), prompt (stored prompt templates),
 *     top_logprobs > 0, max_tool_calls, truncation "auto" (aigw does not drop context).
 *   store: reported in xr_req_info.store (false: the caller must not keep the conversation).
 *   previous_response_id: reported in xr_req_info, resolved by the caller with xr_hub_prepend.
 *   stream_options and unknown members: ignored.
 *
 * ---- Response mapping (hub chat.completion -> Responses "response") ----
 *   id "resp_<X>" where X is the hub id without "chatcmpl-" (characters outside [A-Za-z0-9_-]
 *     -> '_', empty -> "aigw"); items: "rs_<X>", "msg_<X>", "fc_<X>_<tool index>" (the stream
 *     encoder names a second message / reasoning item "msg_<X>_<output index>").
 *   created_at = hub created; model = hub model.
 *   status: "completed"; finish_reason length -> "incomplete" + incomplete_details
 *     {reason:"max_output_tokens"}; content_filter -> "incomplete" + {reason:"content_filter"};
 *     the last output item's status is then "incomplete" too.
 *   output, in this order: a reasoning item {id, type, summary:[{type:"summary_text",text}],
 *     encrypted_content (only when include asked for it and thinking_blocks exist)} when the hub
 *     message has reasoning_content or thinking_blocks; a message item {id, type:"message",
 *     status, content:[{type:"output_text", annotations:[], logprobs:[], text}] + a
 *     {type:"refusal",refusal} part for hub "refusal", role:"assistant"} when there is text or
 *     a refusal, or nothing else at all; function_call items {id, type, status, arguments,
 *     call_id, name} per tool call.
 *   usage {input_tokens, input_tokens_details.cached_tokens, output_tokens,
 *     output_tokens_details.reasoning_tokens, total_tokens} when the hub has usage.
 *   Echo of the request: background false, error null, incomplete_details, instructions,
 *     max_output_tokens, metadata ({}), parallel_tool_calls (true), previous_response_id,
 *     reasoning ({effort,summary}), store, temperature, text ({format:{type:"text"}}),
 *     tool_choice ("auto"), tools ([]), top_p, truncation ("disabled"), user, safety_identifier,
 *     service_tier, prompt_cache_key (null / defaults when not in the request).
 *
 * ---- Stream events (xr_enc_*) ----
 * Every event is a JSON object {"type":<SSE event name>, ..., "sequence_number":n}, n = 0, 1, ...
 *   response.created, response.in_progress (OTHER; the response with status "in_progress",
 *     output [], usage null) at the first chunk;
 *   per output item, one open at a time, in arrival order:
 *     response.output_item.added (OTHER; item with status "in_progress", empty content)
 *     message: response.content_part.added / response.output_text.delta (DELTA; item_id,
 *       output_index, content_index, delta, logprobs:[]) / response.output_text.done /
 *       response.content_part.done; hub delta.refusal: the same with response.refusal.delta /
 *       .done (OTHER)
 *     reasoning: response.reasoning_summary_part.added / response.reasoning_summary_text.delta
 *       (OTHER) / response.reasoning_summary_text.done / response.reasoning_summary_part.done;
 *       delta.thinking_blocks are collected for encrypted_content
 *     function_call: response.function_call_arguments.delta (TOOL_DELTA) / .done (name,
 *       arguments); a new tool call index closes the previous one (arguments for an already
 *       closed tool call: -1, 502, like xlate.h's encoder)
 *     response.output_item.done (OTHER; the finished item)
 *   when the finish_reason and the usage were both seen (or at xr_enc_finish after a
 *   finish_reason): the open item closes (status "incomplete" for length / content_filter), an
 *   empty message item is produced when there was no output at all, then response.completed or
 *   response.incomplete (DONE) with the whole response (output = the finished items, usage).
 *   With the hub chunks of a non-stream answer in canonical order (reasoning, text, tools) that
 *   response equals xr_hub_resp_to_responses of the answer.
 *   A hub error chunk {"error":{...}}, xr_enc_error, or the upstream ending before a
 *   finish_reason: response.failed (DONE; status "failed", error {code:"server_error" or
 *   "rate_limit_exceeded", message}, the items finished so far) then an `error` event (ERROR,
 *   {code, message, param:null}: the host ends the stream after an ERROR event, and the openai
 *   SDK rejects finalResponse() on it).
 */
#ifndef AIGW_XLATE_RESPONSES_H
#define AIGW_XLATE_RESPONSES_H

#include <stddef.h>

#include "pcommon.h"
#include "xlate.h"

/* Prefix of encrypted_content values made by aigw (base64 of the thinking_blocks JSON follows). */
#define XR_ENC_PREFIX "aigw1:"

/* ================================ requests ================================ */

typedef struct xr_req_info {
  int stream;                     /* "stream": true */
  int store;                      /* 0 when "store": false, else 1 (OpenAI's default) */
  int include_encrypted;          /* include has "reasoning.encrypted_content" */
  char previous_response_id[160]; /* "" when none */
} xr_req_info;

/* Responses request -> hub chat request (new tree). provider names the upstream in refusals
 * (NULL: "the provider"). info (may be NULL) receives what the caller must act on. */
cJSON *xr_req_to_hub(const cJSON *req, const char *provider, xr_req_info *info, pc_err *err);

/* previous_response_id: insert the stored conversation `stored` (a hub messages array, as made by
 * xr_conversation; borrowed, copied) into hub->messages, after the instructions system message
 * when req has instructions, else at the start. req is the Responses request hub was made from.
 * 0, or -1 with err (500: stored is not an array of message objects, or out of memory). */
int xr_hub_prepend(cJSON *hub, const cJSON *req, const cJSON *stored, pc_err *err);

/* ============================ non-stream responses ============================ */

/* "resp_<X>" for a hub id (see "Response mapping"), truncated to cap. */
void xr_response_id(const char *hub_id, char *out, size_t cap);

/* hub chat.completion -> Responses response object (new tree). req: the client's Responses
 * request (for the echoed parameters and include), may be NULL. Only choices[0] is used. */
cJSON *xr_hub_resp_to_responses(const cJSON *hub, const cJSON *req, pc_err *err);

/* The conversation to store for a later previous_response_id (new hub messages array):
 * hub_req's messages (without the leading instructions message when req has instructions) +
 * the assistant message of hub_resp's choices[0] (content, refusal, tool_calls,
 * reasoning_content, thinking_blocks). req may be NULL (no instructions). */
cJSON *xr_conversation(const cJSON *req, const cJSON *hub_req, const cJSON *hub_resp, pc_err *err);

/* ================================ streams ================================ */

typedef struct xr_enc_opts {
  const cJSON *req;  /* the client's Responses request (echoed; copied at init), may be NULL */
  long long created; /* created_at when the chunks carry no "created" */
  const char *model; /* model when the chunks carry none; may be NULL */
  const char *id;    /* hub id when the chunks carry none; may be NULL */
} xr_enc_opts;

typedef struct xr_enc {
  cJSON *echo;           /* owned: echoed request members */
  cJSON *out;            /* owned: finished output items */
  cJSON *think;          /* owned: thinking blocks collected */
  cJSON *final;          /* owned: the last response object (completed/incomplete/failed) */
  pc_buf text, refusal;  /* open message parts */
  pc_buf reason;         /* open reasoning item's summary text */
  pc_buf think_text;     /* reasoning text since the last thinking block */
  pc_buf args;           /* open function call's arguments */
  long long created;
  char x[160];           /* id base X */
  char model[160];
  char item_id[200];     /* open item's id */
  char call_id[200], name[200];
  int include_encrypted;
  int started, ended;
  int open;              /* kind of the open item, 0 none */
  int part;              /* open message part kind, 0 none */
  int nparts;            /* parts closed so far in the open message */
  cJSON *parts;          /* owned: finished parts of the open message */
  int summary_open;      /* reasoning: summary part 0 added */
  int think_from;        /* index in think where the open reasoning item's blocks start */
  int tool_index, max_tool;
  int nmsg, nreason;     /* message / reasoning items opened */
  long long seq;         /* next sequence_number */
  char finish[32];
  int have_usage;
  long long prompt, completion, cached, reasoning_tok;
} xr_enc;

/* 0, or -1 when out of memory (then xr_enc_free is still safe). opts may be NULL. */
int xr_enc_init(xr_enc *e, const xr_enc_opts *opts);
void xr_enc_free(xr_enc *e);

/* One hub chunk (borrowed). Returns 0, the callback's non-zero value, or -1 (err: 502 for a chunk
 * that is not a hub chunk or for arguments of an already closed tool call, 500). */
int xr_enc_chunk(xr_enc *e, const cJSON *chunk, pc_event_fn cb, void *ud, pc_err *err);
/* Same from the SSE data text of an OpenAI-format event; "[DONE]" calls xr_enc_finish. */
int xr_enc_data(xr_enc *e, const char *data, size_t n, pc_event_fn cb, void *ud, pc_err *err);
/* End of the upstream stream: completes the response (finish_reason seen) or fails it (cut
 * stream). Idempotent. */
int xr_enc_finish(xr_enc *e, pc_event_fn cb, void *ud, pc_err *err);
/* The upstream failed mid-stream: response.failed + error. No-op once ended. */
int xr_enc_error(xr_enc *e, int status, const char *message, pc_event_fn cb, void *ud, pc_err *err);

/* The final response object sent in the last event (borrowed, valid until xr_enc_free), or NULL
 * while the stream is not over. */
const cJSON *xr_enc_response(const xr_enc *e);
/* What was streamed, as a hub chat.completion (new tree) for xr_conversation: text, refusal,
 * tool calls, reasoning_content, thinking_blocks, finish_reason, usage. NULL before the end. */
cJSON *xr_enc_hub_response(const xr_enc *e, pc_err *err);

/* ================================ errors ================================ */

/* A translation failure as the client's error body (OpenAI shape, new tree):
 * {"error":{"message","type" (by status),"param" (or null),"code":null}}. */
cJSON *xr_error_body(const pc_err *e);

#endif
