/* xlate_count.h - hub chat request -> an OpenAI Responses input-token counting request
 * (POST {base_url}/responses/input_tokens, answered with
 * {"object":"response.input_tokens","input_tokens":N}). Used by the openai adapter to answer
 * Anthropic's /v1/messages/count_tokens: Anthropic request -> hub (xl_anth_req_to_hub) -> this.
 *
 * Pure C11 over cJSON: no globals, no I/O, thread-safe for distinct objects.
 * OWNERSHIP: `hub` and `model` are borrowed and never modified; the returned tree is new and owned
 * by the caller (cJSON_Delete). NULL means failure with `err` (may be NULL) set: 400 when the
 * request holds something the count request cannot carry (the message names the field), 500 out
 * of memory. Nothing keeps a pointer to the inputs after the call.
 *
 * ---- Mapping (hub -> input_tokens request) ----
 *   model                 the `model` argument when non-NULL and non-empty, else hub "model"
 *   messages[]            input items, in order:
 *     system / developer  {"type":"message","role":same,"content":[input_text...]} in place.
 *                         Not folded into `instructions`: instructions is one system message, so
 *                         several leading system messages would have to be joined (losing their
 *                         per-message framing tokens) and a mid-conversation system message could
 *                         not be placed at all; as input items every one keeps its position and
 *                         its own message overhead, which is what the model is actually given.
 *     user                {"type":"message","role":"user","content":[parts]}: text -> input_text,
 *                         image_url -> input_image {image_url, detail ("auto" when absent)},
 *                         file {file_data, filename} / ext {file_url} -> input_file.
 *     assistant           text (string or text parts) -> a message item with output_text parts,
 *                         refusal -> a refusal part (no item when there is neither); each
 *                         tool_calls[] entry -> {"type":"function_call",call_id,name,arguments}.
 *                         reasoning_content / thinking_blocks are dropped: earlier turns' thinking
 *                         is not part of the context a model is given (Anthropic strips it from
 *                         its own counts too) and OpenAI cannot read other providers' signatures.
 *     tool                {"type":"function_call_output",call_id,output}: output is the text
 *                         (string, or text parts joined) or, when images/files are present, an
 *                         array of input_text / input_image / input_file parts.
 *   tools[]               function tools -> {"type":"function",name,description,parameters
 *                         [,strict]}; any other tool (e.g. an Anthropic server tool) -> 400.
 *   tool_choice           "auto"/"none"/"required" verbatim; {type:function,function:{name}} ->
 *                         {"type":"function","name"}.
 *   parallel_tool_calls   copied.
 *   response_format       json_object -> text.format {type:"json_object"}; json_schema ->
 *                         text.format {type:"json_schema",name,schema[,strict][,description]}
 *                         (the schema is part of what the model reads).
 *   Not carried (they do not change the input count): sampling and output limits, stop, stream,
 *   metadata/user, thinking/reasoning_effort, top_k, cache_control, and hub ext x_anthropic.
 *   Refused with 400: input_audio parts, file parts with a file_id, unknown part types. */
#ifndef AIGW_XLATE_COUNT_H
#define AIGW_XLATE_COUNT_H

#include <cjson/cJSON.h>

#include "pcommon.h"

cJSON *xc_hub_to_input_tokens(const cJSON *hub, const char *model, pc_err *err);

#endif
