/* xlate_bedrock.h - the hub format (docs/translation.md) <-> AWS Bedrock Converse / ConverseStream.
 *
 * Pure C11 over cJSON: no globals, no I/O, no clock (callers pass `created`), thread-safe for
 * distinct objects. Nothing keeps a pointer to its inputs after returning.
 * OWNERSHIP, for every function below unless it says otherwise:
 *   - input trees / strings are borrowed and never modified;
 *   - a returned cJSON * is a new tree owned by the caller (cJSON_Delete); NULL means failure and
 *     err (may be NULL) says why: 400 when a request cannot be carried (the message names the field
 *     and "bedrock"), 502 when an answer cannot be understood, 500 out of memory;
 *   - callbacks (pc_chunk_fn) receive a borrowed chunk valid only during the call.
 *
 * ---- Request: hub -> Converse (body of POST /model/{modelId}/converse[-stream]) ----
 *   system / developer messages (anywhere) -> system[] {text} in order (+ {cachePoint} after a
 *     part or message with cache_control); Converse has no mid-conversation system turn, so they
 *     are hoisted, order kept.
 *   user / assistant / tool messages -> messages[] {role, content[]}; consecutive messages of the
 *     same Converse role are merged (tool results and a following user text share one user turn,
 *     as Converse wants strict alternation); messages that end up empty are skipped.
 *   content parts: text -> {text} (empty text skipped); image_url data:<mime>;base64 -> {image:
 *     {format png|jpeg|gif|webp, source:{bytes}}} (an http(s) URL -> 400: Converse takes bytes);
 *     file (file_data data URL) -> {document:{format pdf|csv|doc|docx|xls|xlsx|html|txt|md, name,
 *     source:{bytes}}} (name from filename, reduced to Converse's allowed characters, else
 *     "document-N"); cache_control on any part / tool message / tool definition -> a {cachePoint:
 *     {type:"default"[, ttl:"5m"|"1h"]}} block right after it.
 *   assistant thinking_blocks -> reasoningContent {reasoningText:{text, signature}} /
 *     {redactedContent} first; text; tool_calls -> toolUse {toolUseId, name, input (arguments
 *     parsed; "" -> {})}. reasoning_content without thinking_blocks is dropped (display copy).
 *   tool messages -> toolResult {toolUseId, content [{text}|{image}|{document}], status "error"
 *     when the hub ext is_error is true}.
 *   max_completion_tokens | max_tokens -> inferenceConfig.maxTokens; temperature; top_p -> topP;
 *     stop (string or array) -> stopSequences.
 *   tools[] (type function) -> toolConfig.tools[] {toolSpec:{name, description, inputSchema:
 *     {json}, strict}}; tool_choice auto -> {auto:{}}, required -> {any:{}}, {function:{name}} ->
 *     {tool:{name}}, none -> toolConfig left out (400 when the conversation holds tool blocks,
 *     which Converse only accepts with a toolConfig).
 *   top_k -> additionalModelRequestFields.top_k; thinking -> additionalModelRequestFields.thinking
 *     verbatim; reasoning_effort (without thinking) -> thinking {type:"enabled", budget_tokens}
 *     by XB_EFFORT_* ("none": nothing), maxTokens raised to budget + maxTokens (or budget +
 *     XB_DEFAULT_MAX_TOKENS when unset) so the answer keeps room.
 *   response_format json_schema -> outputConfig.textFormat {type:"json_schema", structure:
 *     {jsonSchema:{schema (the schema serialized, a string), name, description}}}.
 *   Refused (400, field and "bedrock" named): n > 1, logprobs / top_logprobs, non-zero
 *     frequency_penalty / presence_penalty, non-empty logit_bias, response_format json_object,
 *     parallel_tool_calls false with tools, functions / function_call, audio / modalities with
 *     audio, prediction, web_search_options, image URLs, file_id / file_url files, input_audio,
 *     tool types other than function, role function, unparsable tool arguments, x_anthropic
 *     mcp_servers / container.
 *   Dropped (no Converse meaning): model (it is in the URL: xb_path), stream, stream_options,
 *     seed, user, metadata, store, service_tier, image detail, other x_anthropic members.
 *
 * ---- Response: Converse -> hub chat.completion ----
 *   output.message.content: text blocks concatenated -> message.content (null when none);
 *   toolUse -> tool_calls[] {id, type:"function", function:{name, arguments (input serialized)}};
 *   reasoningContent -> reasoning_content (texts concatenated) + thinking_blocks.
 *   stopReason -> finish_reason (xb_stop_to_finish). usage: prompt_tokens = inputTokens +
 *   cacheReadInputTokens + cacheWriteInputTokens, completion_tokens = outputTokens, total,
 *   prompt_tokens_details.cached_tokens = cacheReadInputTokens, ext cache_creation_input_tokens =
 *   cacheWriteInputTokens.
 *
 * ---- Stream: ConverseStream events -> hub chat.completion.chunk objects ----
 *   messageStart                {delta:{role:"assistant",content:""}}
 *   contentBlockStart toolUse   {delta:{tool_calls:[{index,id,type:"function",function:{name,arguments:""}}]}}
 *                               (index counts the toolUse blocks of the message from 0)
 *   contentBlockDelta text      {delta:{content}}
 *   contentBlockDelta toolUse   {delta:{tool_calls:[{index,function:{arguments}}]}}
 *   reasoningContent text       {delta:{reasoning_content}}
 *   reasoningContent signature  {delta:{thinking_blocks:[{type:"thinking",thinking:"",signature}]}}
 *   reasoningContent redacted   {delta:{thinking_blocks:[{type:"redacted_thinking",data}]}}
 *   contentBlockStop            nothing
 *   messageStop                 {delta:{},finish_reason}
 *   metadata                    {choices:[],usage} (always: the ingress side decides whether the
 *                               client asked for usage); sets `done`
 *   exception events            return XB_EUPSTREAM with err = (status, hub error type, message)
 *   unknown events / deltas     nothing
 * Every chunk has id, object "chat.completion.chunk", created, model.
 */
#ifndef AIGW_XLATE_BEDROCK_H
#define AIGW_XLATE_BEDROCK_H

#include <stddef.h>

#include "aws_eventstream.h"
#include "pcommon.h"

/* reasoning_effort -> thinking budget_tokens (the same table as xlate.h's XL_EFFORT_*). */
#define XB_EFFORT_MINIMAL 1024
#define XB_EFFORT_LOW 2048
#define XB_EFFORT_MEDIUM 8192
#define XB_EFFORT_HIGH 16384
#define XB_DEFAULT_MAX_TOKENS 4096

/* Stream functions return this when the upstream sent an exception / error message:
 * err->status = HTTP status for the client, err->param = the hub error type
 * ("rate_limit_error", ...), err->msg = the upstream message. The stream is over. */
#define XB_EUPSTREAM (-2)

/* ---- requests ---- */

/* hub request -> Converse request body (new tree; no modelId: it goes in the path). */
cJSON *xb_req_from_hub(const cJSON *hub, pc_err *err);

/* Appends "/model/{modelId}/converse" (or "/converse-stream" when stream) to *out, the model id
 * percent-encoded as one path segment (':' -> %3A, '/' of ARNs -> %2F). This is the wire path
 * to request and to give aws_sigv4_sign. Returns 0, or -1 (empty id, out of memory). */
int xb_path(pc_buf *out, const char *model_id, int stream);

/* ---- responses ---- */

/* Converse response -> hub chat.completion (new tree). id: the hub id to stamp (e.g.
 * "chatcmpl-" + x-amzn-RequestId; NULL -> "chatcmpl-bedrock"); model: the model name for the
 * client (NULL -> ""); created: unix time. 502 when output.message is missing. */
cJSON *xb_resp_to_hub(const cJSON *conv, const char *id, const char *model, long long created,
                      pc_err *err);

/* stopReason -> finish_reason (static strings): end_turn, stop_sequence -> stop; tool_use ->
 * tool_calls; max_tokens, model_context_window_exceeded -> length; guardrail_intervened,
 * content_filtered -> content_filter; anything else -> stop. */
const char *xb_stop_to_finish(const char *stop_reason);

/* ---- errors ---- */

/* A Bedrock error answer -> what the hub reports. http_status: the upstream status;
 * error_type: the x-amzn-ErrorType header value (may be NULL; "Name:uri" suffixes are ignored)
 * or a stream exception type ("throttlingException"); body/n: the answer body (may be NULL),
 * {"message": ...} (also "Message", and "__type" when the header is absent).
 * Fills err: status (ThrottlingException / ModelNotReadyException / ServiceQuotaExceededException
 * 429, ValidationException / ConflictException 400, AccessDeniedException 403,
 * ResourceNotFoundException 404, ModelTimeoutException 408, InternalServerException 500,
 * ServiceUnavailableException 503, ModelErrorException / ModelStreamErrorException 502, the AWS
 * authentication errors (UnrecognizedClientException, InvalidSignatureException,
 * ExpiredTokenException, ...: the gateway's credentials) 502; otherwise the upstream status, or
 * 502 when it is not an error status), param = the hub error type for that status
 * (invalid_request_error, authentication_error, permission_error, not_found_error,
 * timeout_error, request_too_large, rate_limit_error, api_error, overloaded_error), msg = the
 * message ("bedrock: <type name>" when the body has none). If code is non-NULL the Bedrock error
 * name is copied there ("ThrottlingException"; "" when unknown). */
void xb_error_from_upstream(int http_status, const char *error_type, const char *body, size_t n,
                            pc_err *err, char *code, size_t code_cap);

/* ---- streams ---- */

/* Decoder state. OWNERSHIP: the caller owns the struct (init / free); it owns its buffers. */
typedef struct xb_stream {
  long long created;
  char id[160], model[160];
  int started;     /* messageStart seen */
  int finished;    /* messageStop seen (finish chunk sent) */
  int done;        /* metadata seen (usage chunk sent): the stream is complete */
  int ntools;      /* toolUse blocks so far */
  int *tool_of;    /* contentBlockIndex -> tool index, -1 when not a toolUse block */
  int ntool_of;
  aws_es_decoder dec; /* for xb_stream_feed */
} xb_stream;

/* id: hub chunk id (NULL -> "chatcmpl-bedrock"); model (NULL -> ""); created: unix time. */
void xb_stream_init(xb_stream *s, const char *id, const char *model, long long created);
void xb_stream_free(xb_stream *s);

/* Raw upstream body bytes (application/vnd.amazon.eventstream), any split. Decodes messages and
 * translates each (xb_stream_message). Returns 0, cb's non-zero value, XB_EUPSTREAM (exception
 * message), or -1 with err set (502: framing error, unparsable event; 500: memory). After a
 * non-zero return, stop feeding. */
int xb_stream_feed(xb_stream *s, const void *p, size_t n, pc_chunk_fn cb, void *ud, pc_err *err);

/* Call when the upstream body ended: 0 when the stream was complete (messageStop seen and no
 * partial message pending), else -1 with err 502 ("bedrock stream ended early"). */
int xb_stream_end(xb_stream *s, pc_err *err);

/* One decoded event-stream message (":message-type" event / exception / error). Same returns as
 * xb_stream_feed. */
int xb_stream_message(xb_stream *s, const aws_es_message *m, pc_chunk_fn cb, void *ud, pc_err *err);

/* One event given by type and JSON payload (for callers that decoded the framing themselves).
 * Same returns. */
int xb_stream_event(xb_stream *s, const char *event_type, const char *json, size_t n, pc_chunk_fn cb,
                    void *ud, pc_err *err);

/* ---- embeddings: OpenAI embeddings <-> InvokeModel bodies (POST /model/{modelId}/invoke) ----
 * Family by the model id (an ARN's last '/' segment, an inference-profile region prefix such as
 * "us." skipped): "amazon.titan-embed-text-v2" -> XB_EMB_TITAN, "cohere.embed-" -> XB_EMB_COHERE.
 *   Titan Text Embeddings v2, one text per call: {inputText, dimensions (OpenAI dimensions: 256,
 *     512 or 1024, else 400), normalize:true}; answer {embedding:[...], inputTextTokenCount}.
 *   Cohere Embed v3, up to XB_EMB_COHERE_MAX texts per call: {texts, input_type (hub ext
 *     input_type: search_document (default), search_query, classification, clustering),
 *     embedding_types:["float"]}; answer {embeddings:{float:[[...]]} or [[...]], id, texts}; the
 *     token count comes from the X-Amzn-Bedrock-Input-Token-Count header. dimensions -> 400 (v3
 *     has a fixed size).
 * OpenAI input: a string or an array of strings (token arrays -> 400); encoding_format float or
 * base64 (little-endian float32, base64, as OpenAI); user dropped. */
typedef enum xb_emb_family { XB_EMB_NONE = 0, XB_EMB_TITAN = 1, XB_EMB_COHERE = 2 } xb_emb_family;
#define XB_EMB_COHERE_MAX 96  /* texts per Cohere InvokeModel call (Bedrock's limit) */
#define XB_EMB_TITAN_MAX 256  /* inputs per OpenAI request sent to Titan (one call each) */

xb_emb_family xb_emb_family_of(const char *model_id);

/* OpenAI embeddings request -> the InvokeModel bodies to send, in input order: a new array of
 * objects (Titan: one per input; Cohere: one). *base64 (may be NULL) = 1 when the client asked
 * encoding_format "base64". 400 naming the field and bedrock for what cannot be carried (also an
 * unknown family, more than XB_EMB_TITAN_MAX / XB_EMB_COHERE_MAX inputs). */
cJSON *xb_embed_requests(const cJSON *oai, xb_emb_family fam, int *base64, pc_err *err);

/* InvokeModel answers (resps[0..n), in the order of xb_embed_requests' bodies) -> the OpenAI
 * list {object:"list", data:[{object:"embedding", index, embedding}], model, usage:
 * {prompt_tokens, total_tokens}} (new tree). hdr_tokens (may be NULL): per answer the
 * X-Amzn-Bedrock-Input-Token-Count header value, -1 when absent; the body's own count
 * (inputTextTokenCount) wins. 502 when an answer holds no vectors. */
cJSON *xb_embed_response(xb_emb_family fam, const cJSON *const *resps, const long long *hdr_tokens, size_t n,
                         const char *model, int base64, pc_err *err);

/* Appends "/model/{modelId}/invoke" (model id encoded as in xb_path) to *out. 0 or -1. */
int xb_invoke_path(pc_buf *out, const char *model_id);

#endif
