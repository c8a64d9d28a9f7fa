/* xlate_gemini.h - hub (docs/translation.md) <-> Google Gemini generateContent, for both the
 * Gemini Developer API ("AI Studio", generativelanguage.googleapis.com/v1beta) and Vertex AI
 * (aiplatform.googleapis.com/v1). Pure: no globals, no I/O, thread-safe.
 *
 * OWNERSHIP, for the whole module:
 *   - Input trees and strings are BORROWED for the duration of the call and never modified.
 *   - A returned cJSON * is a NEW tree owned by the caller (cJSON_Delete). NULL means failure:
 *     the pc_err says why (status 400: the request cannot be carried to gemini; 502: the provider
 *     answer is not understood; 500: out of memory).
 *   - pc_buf outputs are appended to; the caller owns and frees the buffer (pc_buf_free).
 *   - xg_stream owns what it holds; release it with xg_stream_free.
 *
 * ---- Request (hub -> Gemini), xg_request_from_hub ----------------------------------------
 *   messages            user -> role "user", assistant -> role "model"; consecutive turns of the
 *                       same role are merged into one content (Gemini wants alternation).
 *   system / developer  LEADING ones (before the first user/assistant/tool message) become
 *                       systemInstruction.parts (one text part each, in order). A system turn in
 *                       mid-conversation is, by default, kept IN PLACE as a user-turn text part
 *                       "<system>\n...\n</system>" (Gemini has no mid-conversation system role and
 *                       hoisting would move the instruction in time); with
 *                       xg_req_opts.hoist_mid_system it is appended to systemInstruction instead.
 *   content parts       text -> {text}; image_url data: URL -> inlineData{mimeType,data};
 *                       image_url http(s):// or gs:// -> fileData{mimeType,fileUri} (mimeType from
 *                       the extension, default image/jpeg); file.file_data (data: URL) ->
 *                       inlineData; file.file_id that is a gs:// or https:// URI -> fileData (mime
 *                       type from filename / URI extension, else 400); input_audio ->
 *                       inlineData audio/<format>. Any other part type -> 400.
 *   tool_calls          functionCall{name,args}; arguments must be a JSON object ("" = {}).
 *                       A tool call's ext extra_content.google.thought_signature (the shape of
 *                       Gemini's own OpenAI-compatible endpoint) becomes that part's
 *                       thoughtSignature.
 *   role tool           functionResponse{name,response}; the name is found through tool_call_id in
 *                       the earlier assistant tool_calls (unknown id -> 400). A content that is a
 *                       JSON object is sent as the response object; anything else is wrapped as
 *                       {"content": "<text>"}; with ext is_error:true the result is wrapped as
 *                       {"error": <object or text>}. Consecutive tool messages (and a following
 *                       user message) share one user turn.
 *   thinking_blocks     {type:thinking, thinking:"text", signature} -> a thought part
 *                       {text, thought:true, thoughtSignature} placed first in the model turn. A
 *                       block with empty thinking and a signature (how xg_response_to_hub keeps a
 *                       signature Gemini put on a non-thought part) is re-attached: the n-th such
 *                       signature to the n-th functionCall part, or, without tool calls, the first
 *                       one to the last text part (further ones are dropped: Gemini only asks for
 *                       signatures on function calls back). redacted_thinking blocks (Anthropic)
 *                       and reasoning_content without thinking_blocks are NOT sent: Gemini reads
 *                       nothing from unsigned thought text. Note: a signature made by another
 *                       provider is forwarded as is (the hub cannot tell them apart).
 *   tools               function tools -> tools[0].functionDeclarations[]; parameters: see
 *                       xg_req_opts.schema_openapi. A tool type other than "function" -> 400.
 *   tool_choice         auto -> AUTO, none -> NONE, required -> ANY, {type:function,function:
 *                       {name}} -> ANY + allowedFunctionNames [name]; allowed_tools with mode
 *                       "required" -> ANY + allowedFunctionNames; mode "auto" -> 400.
 *   parallel_tool_calls ignored (Gemini cannot be told to call one function at a time).
 *   generationConfig    temperature, top_p -> topP, ext top_k -> topK, max_completion_tokens (else
 *                       max_tokens) -> maxOutputTokens, stop (string or array) -> stopSequences,
 *                       n -> candidateCount, seed, presence_penalty, frequency_penalty,
 *                       response_format json_object -> responseMimeType application/json,
 *                       json_schema -> responseMimeType + responseJsonSchema (or responseSchema).
 *   thinking            reasoning_effort none|minimal|low|medium|high or ext thinking
 *                       {type:enabled,budget_tokens} / {type:disabled} -> generationConfig.
 *                       thinkingConfig: thinkingBudget (effort table XG_BUDGET_*; disabled or
 *                       "none" -> 0) or, with xg_req_opts.thinking_level, thinkingLevel
 *                       (MINIMAL/LOW/MEDIUM/HIGH; "none" -> MINIMAL). includeThoughts is true
 *                       whenever thinking was asked for and not disabled, so reasoning comes
 *                       back as reasoning_content.
 *   -> 400 (naming the field and "gemini"): logprobs / top_logprobs, logit_bias, audio,
 *      modalities other than ["text"], prediction, web_search_options, a non-function tool,
 *      token-array inputs, unknown content part types.
 *   Ignored (no Gemini meaning): model, stream, stream_options, user, metadata, store,
 *   service_tier, parallel_tool_calls, name on messages.
 *
 * ---- Response (Gemini -> hub), xg_response_to_hub ----------------------------------------
 *   One hub choice per candidate (index = candidate.index, else its position). Parts in order:
 *   text -> content (concatenated; null when none); thought:true text -> reasoning_content and a
 *   thinking block {type:thinking, thinking, signature?}; a thoughtSignature on a non-thought
 *   part -> a thinking block {type:thinking, thinking:"", signature} (see above for the way back);
 *   functionCall -> tool_calls[] {id, type:function, function:{name, arguments: JSON text of
 *   args}}; the id is the call's own id when Gemini sent one, else "call_" + 16 hex digits of a
 *   hash of (responseId, candidate, position, name, args): stable, identical for the stream and
 *   non-stream form of the same answer.
 *   finishReason: STOP -> stop (tool_calls when the candidate has a functionCall), MAX_TOKENS ->
 *   length, SAFETY / RECITATION / BLOCKLIST / PROHIBITED_CONTENT / SPII / LANGUAGE /
 *   IMAGE_SAFETY / IMAGE_PROHIBITED_CONTENT -> content_filter, anything else (OTHER,
 *   MALFORMED_FUNCTION_CALL, ...) -> stop (tool_calls with a functionCall).
 *   promptFeedback.blockReason without candidates -> one choice, content null, finish_reason
 *   content_filter (the answer is a 200, as OpenAI's own filtered completions).
 *   usageMetadata -> usage: prompt_tokens = promptTokenCount (+ toolUsePromptTokenCount; cached
 *   included), completion_tokens = candidatesTokenCount + thoughtsTokenCount (reasoning
 *   included, as the hub says), total_tokens = totalTokenCount (else the sum),
 *   prompt_tokens_details.cached_tokens = cachedContentTokenCount,
 *   completion_tokens_details.reasoning_tokens = thoughtsTokenCount.
 *   id: "chatcmpl-" + responseId, else meta->id; model: modelVersion, else meta->model.
 *
 * ---- Stream (Gemini streamGenerateContent?alt=sse -> hub chunks), xg_stream_* ------------
 *   Each SSE data is a whole GenerateContentResponse. Per candidate part: text -> delta.content,
 *   thought text -> delta.reasoning_content (+ delta.thinking_blocks when signed), a lone
 *   signature -> delta.thinking_blocks [{type:thinking,thinking:"",signature}], functionCall ->
 *   one tool_calls delta with index (counted per choice), id, type, function.name and the
 *   COMPLETE arguments. The first chunk of a choice carries delta.role "assistant". A
 *   finishReason gives a chunk with an empty delta and finish_reason (mapped as above). The usage
 *   chunk (choices: [], usage) is sent by xg_stream_finish, once, from the last usageMetadata
 *   seen. xg_stream_finish also sends the finish chunk when the stream ended without one
 *   (finish_reason "stop", or "tool_calls").
 */
#ifndef AIGW_XLATE_GEMINI_H
#define AIGW_XLATE_GEMINI_H

#include "pcommon.h"

/* reasoning_effort -> thinkingBudget (tokens). "none" -> 0. */
#define XG_BUDGET_MINIMAL 512
#define XG_BUDGET_LOW 1024
#define XG_BUDGET_MEDIUM 8192
#define XG_BUDGET_HIGH 24576

/* The documented value Gemini accepts in place of a thought signature it never issued (history
 * from another model or a client that dropped signatures); see xg_req_opts.fill_signatures. */
#define XG_DUMMY_SIGNATURE "skip_thought_signature_validator"

typedef enum xg_flavor {
  XG_AISTUDIO = 0, /* Gemini Developer API, generativelanguage.googleapis.com/v1beta */
  XG_VERTEX = 1    /* Vertex AI, {location}-aiplatform.googleapis.com/v1 */
} xg_flavor;

typedef struct xg_req_opts {
  /* 0 (default): JSON Schemas go as parametersJsonSchema / responseJsonSchema (the current fields,
   * full JSON Schema, Gemini 2.5 and later on both APIs; only "$schema" is removed).
   * 1: converted to the OpenAPI-3.0 subset of Gemini's Schema object as parameters /
   * responseSchema (for older models): uppercase types, ["T","null"] -> nullable, oneOf -> anyOf,
   * const -> enum, local $ref inlined (depth 16), single allOf merged; keywords outside the subset
   * (additionalProperties, $schema, $defs, strict, examples, ...) are dropped; a multi-member
   * allOf, not, or a non-local / too deep $ref -> 400. An object without properties at the top of
   * a function's parameters omits parameters (Gemini rejects an empty OBJECT). */
  int schema_openapi;
  /* 1: mid-conversation system/developer turns go to systemInstruction (see above). */
  int hoist_mid_system;
  /* 1: reasoning_effort -> thinkingConfig.thinkingLevel (Gemini 3); 0: thinkingBudget. An
   * explicit ext thinking.budget_tokens always gives thinkingBudget. */
  int thinking_level;
  /* 1: a model turn with function calls but no thought signature gets XG_DUMMY_SIGNATURE on its
   * first functionCall part (Gemini 3 rejects unsigned function-call history with a 400). */
  int fill_signatures;
} xg_req_opts;

/* hub chat request -> Gemini GenerateContentRequest body (without "model": it is in the URL).
 * opts may be NULL (all zero). Returns a new tree, or NULL with e set (400 / 500). */
cJSON *xg_request_from_hub(const cJSON *hub, const xg_req_opts *opts, pc_err *e);

/* Fallbacks for the hub response envelope; all borrowed, any may be NULL/0. */
typedef struct xg_meta {
  const char *id;    /* used when the answer has no responseId */
  const char *model; /* used when the answer has no modelVersion */
  long long created; /* "created" (unix seconds): time is passed in */
} xg_meta;

/* Gemini GenerateContentResponse -> hub chat.completion. Returns a new tree, or NULL with e set
 * (502 when gem is not a GenerateContentResponse, 500 on allocation failure). */
cJSON *xg_response_to_hub(const cJSON *gem, const xg_meta *meta, pc_err *e);

/* Map a Gemini finishReason (may be NULL) to a hub finish_reason (static string). */
const char *xg_finish_reason(const char *gemini_reason, int has_tool_calls);

/* ---- stream decoder ---- */
#define XG_MAX_CHOICES 8
typedef struct xg_stream {
  char id[128];
  char model[128];
  long long created;
  int started[XG_MAX_CHOICES];  /* role sent */
  int ntools[XG_MAX_CHOICES];   /* tool-call deltas sent (next index) */
  int finished[XG_MAX_CHOICES]; /* finish chunk sent */
  int nchoices;                 /* highest choice index seen + 1 */
  int usage_sent;
  cJSON *usage; /* OWNED: last usageMetadata seen (copy) */
} xg_stream;

/* meta borrowed during the call (copied). */
void xg_stream_init(xg_stream *s, const xg_meta *meta);
/* One SSE data payload (a GenerateContentResponse; also an {"error":...} object, which gives
 * e->status from the error and returns -1). data need not be NUL-terminated. Emits zero or
 * more hub chunks through fn (chunk borrowed during the call). Returns 0, fn's non-zero value,
 * or -1 with e set (502 unparsable, the mapped status for an error event, 500 memory). */
int xg_stream_event(xg_stream *s, const char *data, size_t n, pc_chunk_fn fn, void *ud, pc_err *e);
/* The upstream stream ended: sends the missing finish chunks and the usage chunk (once). */
int xg_stream_finish(xg_stream *s, pc_chunk_fn fn, void *ud, pc_err *e);
void xg_stream_free(xg_stream *s);

/* ---- embeddings ----
 * OpenAI embeddings request {model, input: string | [string], dimensions, encoding_format, ext
 * task_type, ext title} -> for XG_AISTUDIO a batchEmbedContents body {requests:[{model:
 * "models/<model>", content:{parts:[{text}]}, outputDimensionality?, taskType?, title?}]};
 * for XG_VERTEX a predict body {instances:[{content, task_type?, title?}], parameters:
 * {outputDimensionality?}}. model: the provider model name (borrowed; "models/" prefix
 * optional). Token-array inputs and an empty input -> 400. Returns a new tree or NULL + e. */
cJSON *xg_embed_request(const cJSON *req, xg_flavor flavor, const char *model, pc_err *e);
/* Gemini embeddings answer (batchEmbedContents {embeddings:[{values}]}, embedContent
 * {embedding:{values}} or Vertex predict {predictions:[{embeddings:{values,statistics:
 * {token_count}}}]}) -> OpenAI {object:"list", data:[{object:"embedding", index, embedding}],
 * model, usage:{prompt_tokens, total_tokens}}. usage is 0 for the Developer API (it reports no
 * counts) and the sum of token_count for Vertex. base64: 1 when the client asked
 * encoding_format "base64" (little-endian float32, as OpenAI). Returns a new tree or NULL + e
 * (502). */
cJSON *xg_embed_response(const cJSON *gem, const char *model, int base64, pc_err *e);

/* ---- errors ----
 * A Gemini error body {"error":{"code","message","status"}} (also wrapped in a one-element array,
 * as Vertex's non-SSE streams send it) -> status (error.code, else http_status, else from the
 * status name), an error type by status as in docs/translation.md (invalid_request_error,
 * authentication_error, permission_error, not_found_error, request_too_large, rate_limit_error,
 * api_error, overloaded_error, timeout_error) and the message (prefixed by nothing; truncated to
 * fit). Returns 0 when the body had that shape, -1 otherwise (then status = http_status or 502,
 * type by status, message "gemini returned HTTP <status>"). body need not be NUL-terminated. */
typedef struct xg_error {
  int status;
  char type[32];
  char gstatus[40]; /* e.g. "RESOURCE_EXHAUSTED", "" when absent */
  char message[384];
} xg_error;
int xg_error_parse(int http_status, const char *body, size_t n, xg_error *out);
/* The hub error type for an HTTP status (static string). */
const char *xg_error_type(int status);

/* ---- URLs ----
 * Appends the endpoint URL to out. base: NULL/"" for the default host of the flavor
 * (https://generativelanguage.googleapis.com, https://{location}-aiplatform.googleapis.com or,
 * for location "global", https://aiplatform.googleapis.com), else a base URL override such as
 * "http://127.0.0.1:8080" (a trailing '/' is ignored); the path is the same either way:
 *   AI Studio  {base}/v1beta/models/{model}:{method}
 *   Vertex     {base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{method}
 * method: "generateContent", "streamGenerateContent" (gets "?alt=sse"), "batchEmbedContents",
 * "embedContent", "predict", "countTokens". model may carry a "models/" prefix. project,
 * location and model must be [A-Za-z0-9._@-]+ and not only dots (no path tricks). AI Studio
 * authenticates with the header "x-goog-api-key: <key>", Vertex with "Authorization: Bearer
 * <token>" (gcp_jwt.h).
 * Returns 0, or -1 (bad argument or out of memory; out unchanged on bad arguments). */
int xg_url(pc_buf *out, xg_flavor flavor, const char *base, const char *project,
           const char *location, const char *model, const char *method);

#endif
