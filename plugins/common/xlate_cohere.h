/* xlate_cohere.h - the hub format (docs/translation.md) to and from Cohere's v2 API: chat
 * requests (POST /v2/chat), non-stream chat responses, the chat stream (SSE events -> hub
 * chunks), embeddings (OpenAI embeddings request/response <-> POST /v2/embed) and error bodies.
 *
 * Pure C11 over cJSON: no globals, no I/O, no clock (callers pass `created`), thread-safe for
 * distinct objects. Nothing keeps a pointer to its inputs after it returns.
 *
 * OWNERSHIP, for every function below unless it says otherwise:
 *   - input trees / strings are borrowed and never modified;
 *   - a returned cJSON * is a new tree owned by the caller (cJSON_Delete); NULL means failure and
 *     `err` (may be NULL) says why: 400 when a request cannot be carried (the message names the
 *     field and "cohere"), 502 when a Cohere answer cannot be understood, 500 out of memory;
 *   - callbacks (pc_chunk_fn) get borrowed chunks valid only during the call.
 *
 * ---- Request mapping (hub -> Cohere v2 chat) ----
 *   model, messages, stream                 verbatim roles system (also developer), user,
 *                                           assistant, tool
 *   content string | text / image_url parts text parts, image_url {url, detail}; system turns
 *                                           and assistant turns take text only
 *   assistant tool_calls                    tool_calls [{id, type:function, function{name,
 *                                           arguments (JSON string)}}]
 *   assistant ext tool_plan (string)        tool_plan (Cohere's plan text, kept for round trips)
 *   assistant reasoning_content             a {type:"thinking"} content item before the text
 *   tool message tool_call_id, content      tool_call_id; content string, text parts, or hub ext
 *                                           {type:"document",document:{data,id}} parts verbatim
 *   tools[] type function                   tools [{type:function, function{name, description,
 *                                           parameters}}]; any function.strict true -> strict_tools
 *   tool_choice auto / none / required      omitted / "NONE" / "REQUIRED"
 *   tool_choice {type:function,name}        only that tool is sent, tool_choice "REQUIRED"
 *                                           (tool_choice none without tools: omitted)
 *   response_format json_object / json_schema  {type:"json_object"[, json_schema: schema]}
 *   temperature, top_p, ext top_k           temperature, p, k
 *   max_tokens | max_completion_tokens      max_tokens
 *   stop (string or array)                  stop_sequences
 *   seed, frequency_penalty, presence_penalty  verbatim
 *   ext thinking {type:enabled,budget_tokens} / reasoning_effort
 *                                           thinking {type:"enabled", token_budget} (effort: the
 *                                           XL_EFFORT_* table; "none" / {type:disabled} -> disabled)
 *   ext x_cohere (object)                   merged verbatim (documents, citation_options,
 *                                           safety_mode, priority, ...)
 * Dropped on purpose: stream_options (Cohere always reports usage), user, metadata, store,
 *   service_tier, cache_control, tool message is_error, message `name`, parallel_tool_calls
 *   true, x_anthropic members other than the hard ones below.
 * Refused (pc_err 400, field and "cohere" named): n > 1, logprobs / top_logprobs, non-empty
 *   logit_bias, audio / modalities with audio, functions / function_call, prediction,
 *   web_search_options, parallel_tool_calls false, non-function tools, file / input_audio parts,
 *   image parts outside user turns, role function, unknown roles, x_anthropic.{mcp_servers,
 *   container, context_management}, unknown reasoning_effort, tool_choice required / named
 *   without tools, a JSON response_format together with tools (Cohere refuses the pair).
 *
 * ---- Response mapping (Cohere -> hub) ----
 *   id -> id (verbatim); message.content[] text -> content (joined; null when none), thinking ->
 *   ext reasoning_content; tool_calls -> tool_calls; tool_plan -> ext message.tool_plan;
 *   finish_reason COMPLETE / STOP_SEQUENCE -> stop, MAX_TOKENS / TIMEOUT -> length, TOOL_CALL ->
 *   tool_calls; ERROR -> a 502 failure (non-stream) or an upstream error (stream);
 *   usage: billed_units.{input,output}_tokens when present (what is charged), else
 *   tokens.{input,output}_tokens; cached_tokens -> prompt_tokens_details.cached_tokens.
 *   Citations are not carried.
 *
 * ---- Embeddings ----
 *   OpenAI {input: string | [string], model, encoding_format, dimensions, user, ext input_type}
 *   -> {model, texts, input_type (ext input_type, else the configured default, else
 *   "search_document"), embedding_types:["float"], output_dimension (dimensions)}.
 *   Token-array inputs and unknown encoding formats are refused (400).
 *   Response {id, embeddings:{float:[[...]]} (or a plain [[...]]), meta.billed_units.input_tokens}
 *   -> {object:"list", data:[{object:"embedding", index, embedding}], model, usage{prompt_tokens,
 *   total_tokens}}; with encoding_format "base64" each embedding is the base64 of its
 *   little-endian float32 values, as OpenAI sends it.
 */
#ifndef AIGW_XLATE_COHERE_H
#define AIGW_XLATE_COHERE_H

#include <stddef.h>

#include "pcommon.h"

/* Return value of xc_dec_event when Cohere reported a failure inside the stream (message-end
 * with finish_reason ERROR or an error text, or an error object): err has status, message. */
#define XC_EUPSTREAM (-2)

/* ================================ chat ================================ */

/* hub request -> Cohere v2 chat request (new tree). The model is copied as is. */
cJSON *xc_req_from_hub(const cJSON *hub, pc_err *err);

/* Cohere v2 chat response -> hub chat.completion (new tree). model: stamped on the answer
 * (Cohere's answer names none; may be NULL); created: unix time. */
cJSON *xc_resp_to_hub(const cJSON *co, const char *model, long long created, pc_err *err);

/* Cohere finish_reason -> hub finish_reason (static; unknown or NULL -> "stop"). */
const char *xc_finish_to_hub(const char *finish_reason);

/* ================================ chat stream ================================ */

/* Decoder: Cohere v2 chat SSE events -> hub chat.completion.chunk objects.
 *   message-start       {delta:{role:"assistant",content:""}}
 *   content-delta       {delta:{content}} (text) or {delta:{reasoning_content}} (thinking)
 *   tool-plan-delta     {delta:{tool_plan}} (hub extension)
 *   tool-call-start     {delta:{tool_calls:[{index,id,type:"function",function:{name,arguments}}]}}
 *   tool-call-delta     {delta:{tool_calls:[{index,function:{arguments}}]}}
 *   message-end         {delta:{},finish_reason} then the usage chunk {choices:[],usage}; sets
 *                       `done` (the caller then ends the client's stream)
 *   content-start/-end, tool-call-end, citation-*, debug, unknown types, "[DONE]": nothing.
 * index: hub tool call index, counted from 0 in order of tool-call-start (Cohere's own index
 * is mapped). Each chunk has id, object, created, model. */
typedef struct xc_dec {
  long long created;
  char id[160], model[160];
  int started;   /* message-start seen (or implied) */
  int done;      /* message-end seen */
  int ntools;    /* tool calls started */
  int *tmap;     /* owned: Cohere tool index -> hub index, -1 none */
  int ntmap;
} xc_dec;

/* model: stamped on the chunks (may be NULL). Free with xc_dec_free. */
void xc_dec_init(xc_dec *d, const char *model, long long created);
void xc_dec_free(xc_dec *d);

/* One SSE event: name (NUL-terminated or NULL: the data's "type" decides, the name is only a
 * fallback), data (n bytes, borrowed). Returns 0, the callback's non-zero value, XC_EUPSTREAM,
 * or -1 (err set: 502 not a Cohere event, 500 out of memory). */
int xc_dec_event(xc_dec *d, const char *name, const char *data, size_t n, pc_chunk_fn cb, void *ud,
                 pc_err *err);

/* The upstream stream ended: 0 when message-end was seen, else -1 with a 502 "stream ended
 * early" in err. */
int xc_dec_finish(const xc_dec *d, pc_err *err);

/* ================================ embeddings ================================ */

/* OpenAI embeddings request -> Cohere /v2/embed request (new tree). input_type: the default
 * when the request has no ext input_type (NULL: "search_document"). *base64 (may be NULL) is
 * set to 1 when the client asked for encoding_format "base64". */
cJSON *xc_embed_req_from_openai(const cJSON *oai, const char *input_type, int *base64, pc_err *err);

/* Cohere embed response -> OpenAI embeddings list (new tree). model: stamped (may be NULL). */
cJSON *xc_embed_resp_to_openai(const cJSON *co, const char *model, int base64, pc_err *err);

/* 1 when s is a Cohere input_type (search_document, search_query, classification, clustering,
 * image). */
int xc_input_type_ok(const char *s);

/* ================================ errors ================================ */

/* A Cohere error answer (HTTP status, body {"message"} / {"id","message"} or anything) ->
 * err: status (498 invalid token -> 401; anything outside 400..599 -> 502), param = the OpenAI
 * error type for that status, msg = Cohere's message (or "cohere: upstream error <status>"). */
void xc_error_from_upstream(int status, const char *body, size_t n, pc_err *err);

#endif
