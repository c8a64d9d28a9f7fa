/* xlate_anth_resp.c - non-stream responses: Anthropic Message <-> hub chat.completion. */
#include "xlate_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *xl_anth_stop_to_finish(const char *s) {
  if (!s) return "stop";
  if (!strcmp(s, "max_tokens") || !strcmp(s, "model_context_window_exceeded")) return "length";
  if (!strcmp(s, "tool_use")) return "tool_calls";
  if (!strcmp(s, "refusal")) return "content_filter";
  return "stop"; /* end_turn, stop_sequence, pause_turn, unknown */
}

const char *xl_finish_to_anth_stop(const char *f) {
  if (!f) return "end_turn";
  if (!strcmp(f, "length")) return "max_tokens";
  if (!strcmp(f, "tool_calls") || !strcmp(f, "function_call")) return "tool_use";
  if (!strcmp(f, "content_filter")) return "refusal";
  return "end_turn";
}

cJSON *xl_hub_usage(xl_ctx *c, long long in, long long out, long long cache_read, long long cache_create,
                    long long think) {
  cJSON *u = xl_obj(c);
  long long prompt = in + cache_read + cache_create;
  xl_put_num(c, u, "prompt_tokens", (double)prompt);
  xl_put_num(c, u, "completion_tokens", (double)out);
  xl_put_num(c, u, "total_tokens", (double)(prompt + out));
  cJSON *pd = xl_put(c, u, "prompt_tokens_details", xl_obj(c));
  xl_put_num(c, pd, "cached_tokens", (double)cache_read);
  cJSON *cd = xl_put(c, u, "completion_tokens_details", xl_obj(c));
  xl_put_num(c, cd, "reasoning_tokens", (double)think);
  xl_put_num(c, u, "cache_creation_input_tokens", (double)cache_create);
  return u;
}

void xl_usage_from_hub(const cJSON *u, long long *in, long long *out, long long *cache_read, long long *cache_create) {
  long long prompt = xl_ll(u, "prompt_tokens", 0);
  *cache_read = xl_ll(xl_objm(u, "prompt_tokens_details"), "cached_tokens", 0);
  *cache_create = xl_ll(u, "cache_creation_input_tokens", 0);
  *out = xl_ll(u, "completion_tokens", 0);
  long long rest = prompt - *cache_read - *cache_create;
  *in = rest > 0 ? rest : 0;
}

cJSON *xl_anth_usage(xl_ctx *c, long long in, long long out, long long cache_read, long long cache_create) {
  cJSON *u = xl_obj(c);
  xl_put_num(c, u, "input_tokens", (double)in);
  xl_put_num(c, u, "output_tokens", (double)out);
  xl_put_num(c, u, "cache_creation_input_tokens", (double)cache_create);
  xl_put_num(c, u, "cache_read_input_tokens", (double)cache_read);
  return u;
}

cJSON *xl_anth_resp_to_hub(const cJSON *a, long long created, pc_err *err) {
  xl_ctx c = {err, 0};
  const cJSON *content = xl_arrm(a, "content");
  if (!content) {
    xl_fail(&c, 502, "content", "the anthropic answer has no content array");
    return NULL;
  }
  char id[200];
  xl_id_anth_to_hub(xl_str(a, "id"), id, sizeof id);
  cJSON *h = xl_obj(&c);
  xl_put_str(&c, h, "id", id);
  xl_put_str(&c, h, "object", "chat.completion");
  xl_put_num(&c, h, "created", (double)created);
  xl_put_str(&c, h, "model", xl_str(a, "model") ? xl_str(a, "model") : "");
  cJSON *choices = xl_put(&c, h, "choices", xl_arr(&c));
  cJSON *ch = xl_push(&c, choices, xl_obj(&c));
  xl_put_num(&c, ch, "index", 0);
  cJSON *m = xl_put(&c, ch, "message", xl_obj(&c));
  xl_put_str(&c, m, "role", "assistant");

  pc_buf text = {0}, reason = {0};
  int ntext = 0, nreason = 0;
  cJSON *calls = xl_arr(&c), *thinks = xl_arr(&c);
  const cJSON *b;
  int j = 0;
  cJSON_ArrayForEach(b, content) {
    char path[64];
    snprintf(path, sizeof path, "content[%d]", j++);
    const char *type = xl_str(b, "type");
    if (!type) {
      xl_fail(&c, 502, path, "%s: anthropic content block without a type", path);
    } else if (!strcmp(type, "text")) {
      const char *t = xl_str(b, "text");
      if (!t) xl_fail(&c, 502, path, "%s: anthropic text block without text", path);
      else if (pc_buf_adds(&text, t) < 0) xl_fail(&c, 500, "", "out of memory");
      ntext++;
    } else if (!strcmp(type, "tool_use")) {
      const char *tid = xl_str(b, "id"), *name = xl_str(b, "name");
      const cJSON *in = xl_get(b, "input");
      if (!tid || !name) {
        xl_fail(&c, 502, path, "%s: anthropic tool_use without id or name", path);
        break;
      }
      cJSON *tc = xl_push(&c, calls, xl_obj(&c));
      xl_put_num(&c, tc, "index", cJSON_GetArraySize(calls) - 1);
      xl_put_str(&c, tc, "id", tid);
      xl_put_str(&c, tc, "type", "function");
      cJSON *fn = xl_put(&c, tc, "function", xl_obj(&c));
      xl_put_str(&c, fn, "name", name);
      char *args = in ? cJSON_PrintUnformatted(in) : NULL;
      if (in && !args) xl_fail(&c, 500, "", "out of memory");
      xl_put_str(&c, fn, "arguments", args ? args : "{}");
      cJSON_free(args);
    } else if (!strcmp(type, "thinking")) {
      const char *t = xl_str(b, "thinking");
      if (!t) {
        xl_fail(&c, 502, path, "%s: anthropic thinking block without thinking", path);
        break;
      }
      nreason++;
      if (pc_buf_adds(&reason, t) < 0) xl_fail(&c, 500, "", "out of memory");
      cJSON *tb = xl_push(&c, thinks, xl_obj(&c));
      xl_put_str(&c, tb, "type", "thinking");
      xl_put_str(&c, tb, "thinking", t);
      xl_put_str(&c, tb, "signature", xl_str(b, "signature") ? xl_str(b, "signature") : "");
    } else if (!strcmp(type, "redacted_thinking")) {
      cJSON *tb = xl_push(&c, thinks, xl_obj(&c));
      xl_put_str(&c, tb, "type", "redacted_thinking");
      xl_put_str(&c, tb, "data", xl_str(b, "data") ? xl_str(b, "data") : "");
    } /* server tool blocks and unknown types: not carried (xlate.h "Known losses") */
    if (c.failed) break;
  }
  if (ntext) xl_put_str(&c, m, "content", text.p ? text.p : "");
  else xl_put(&c, m, "content", cJSON_CreateNull());
  if (cJSON_GetArraySize(calls)) {
    xl_put(&c, m, "tool_calls", calls);
    calls = NULL;
  }
  if (nreason) xl_put_str(&c, m, "reasoning_content", reason.p ? reason.p : "");
  if (cJSON_GetArraySize(thinks)) {
    xl_put(&c, m, "thinking_blocks", thinks);
    thinks = NULL;
  }
  cJSON_Delete(calls);
  cJSON_Delete(thinks);
  pc_buf_free(&text);
  pc_buf_free(&reason);
  xl_put(&c, ch, "logprobs", cJSON_CreateNull());
  xl_put_str(&c, ch, "finish_reason", xl_anth_stop_to_finish(xl_str(a, "stop_reason")));
  if (xl_str(a, "stop_sequence")) xl_put_str(&c, ch, "stop_sequence", xl_str(a, "stop_sequence"));
  const cJSON *u = xl_objm(a, "usage");
  xl_put(&c, h, "usage",
         xl_hub_usage(&c, xl_ll(u, "input_tokens", 0), xl_ll(u, "output_tokens", 0), xl_ll(u, "cache_read_input_tokens", 0),
                      xl_ll(u, "cache_creation_input_tokens", 0),
                      xl_ll(xl_objm(u, "output_tokens_details"), "thinking_tokens", 0)));
  if (c.failed) {
    cJSON_Delete(h);
    return NULL;
  }
  return h;
}

/* first choice of a hub answer (index 0 or the first element) */
const cJSON *xl_hub_choice0(const cJSON *h) {
  const cJSON *choices = xl_arrm(h, "choices"), *x;
  cJSON_ArrayForEach(x, choices) if (xl_ll(x, "index", 0) == 0 && cJSON_IsObject(x)) return x;
  x = cJSON_GetArrayItem(choices, 0);
  return cJSON_IsObject(x) ? x : NULL;
}

cJSON *xl_hub_resp_to_anth(const cJSON *h, pc_err *err) {
  xl_ctx c = {err, 0};
  const cJSON *ch = xl_hub_choice0(h);
  const cJSON *m = xl_objm(ch, "message");
  if (!m) {
    xl_fail(&c, 502, "choices", "the answer has no choices[0].message");
    return NULL;
  }
  char id[200];
  xl_id_hub_to_anth(xl_str(h, "id"), id, sizeof id);
  cJSON *a = xl_obj(&c);
  xl_put_str(&c, a, "id", id);
  xl_put_str(&c, a, "type", "message");
  xl_put_str(&c, a, "role", "assistant");
  xl_put_str(&c, a, "model", xl_str(h, "model") ? xl_str(h, "model") : "");
  cJSON *content = xl_put(&c, a, "content", xl_arr(&c));

  const cJSON *thinks = xl_arrm(m, "thinking_blocks"), *x;
  const char *reason = xl_str(m, "reasoning_content");
  if (cJSON_GetArraySize(thinks)) {
    cJSON_ArrayForEach(x, thinks) {
      const char *type = xl_str(x, "type");
      cJSON *b = NULL;
      if (type && !strcmp(type, "thinking")) {
        b = xl_push(&c, content, xl_obj(&c));
        xl_put_str(&c, b, "type", "thinking");
        xl_put_str(&c, b, "thinking", xl_str(x, "thinking") ? xl_str(x, "thinking") : "");
        xl_put_str(&c, b, "signature", xl_str(x, "signature") ? xl_str(x, "signature") : "");
      } else if (type && !strcmp(type, "redacted_thinking")) {
        b = xl_push(&c, content, xl_obj(&c));
        xl_put_str(&c, b, "type", "redacted_thinking");
        xl_put_str(&c, b, "data", xl_str(x, "data") ? xl_str(x, "data") : "");
      }
    }
  } else if (reason && reason[0]) {
    /* reasoning from a provider without signatures: shown, but it cannot be replayed */
    cJSON *b = xl_push(&c, content, xl_obj(&c));
    xl_put_str(&c, b, "type", "thinking");
    xl_put_str(&c, b, "thinking", reason);
    xl_put_str(&c, b, "signature", "");
  }
  const cJSON *ct = xl_get(m, "content");
  if (cJSON_IsString(ct) && ct->valuestring[0]) {
    cJSON *b = xl_push(&c, content, xl_obj(&c));
    xl_put_str(&c, b, "type", "text");
    xl_put_str(&c, b, "text", ct->valuestring);
  } else if (cJSON_IsArray(ct)) {
    cJSON_ArrayForEach(x, ct) {
      const char *t = xl_str(x, "text") ? xl_str(x, "text") : xl_str(x, "refusal");
      if (!t || !t[0]) continue;
      cJSON *b = xl_push(&c, content, xl_obj(&c));
      xl_put_str(&c, b, "type", "text");
      xl_put_str(&c, b, "text", t);
    }
  }
  const char *refusal = xl_str(m, "refusal");
  if (refusal && refusal[0] && !(cJSON_IsString(ct) && ct->valuestring[0])) {
    cJSON *b = xl_push(&c, content, xl_obj(&c));
    xl_put_str(&c, b, "type", "text");
    xl_put_str(&c, b, "text", refusal);
  }
  int j = 0;
  cJSON_ArrayForEach(x, xl_arrm(m, "tool_calls")) {
    char path[80];
    snprintf(path, sizeof path, "choices[0].message.tool_calls[%d]", j++);
    const cJSON *fn = xl_objm(x, "function");
    const char *tid = xl_str(x, "id"), *name = xl_str(fn, "name"), *args = xl_str(fn, "arguments");
    if (!tid || !name) {
      xl_fail(&c, 502, path, "%s: a tool call without id or function.name", path);
      break;
    }
    cJSON *in = NULL;
    if (!args || !args[strspn(args, " \t\r\n")]) in = cJSON_CreateObject();
    else if (!(in = cJSON_Parse(args)) || !cJSON_IsObject(in)) {
      cJSON_Delete(in);
      xl_fail(&c, 502, path, "%s.function.arguments: the model produced arguments that are not a JSON object", path);
      break;
    }
    cJSON *b = xl_push(&c, content, xl_obj(&c));
    xl_put_str(&c, b, "type", "tool_use");
    xl_put_str(&c, b, "id", tid);
    xl_put_str(&c, b, "name", name);
    xl_put(&c, b, "input", in);
  }
  const char *fin = xl_str(ch, "finish_reason"), *seq = xl_str(ch, "stop_sequence");
  const char *stop = xl_finish_to_anth_stop(fin);
  int by_seq = seq && (!strcmp(stop, "end_turn") || !strcmp(stop, "stop_sequence"));
  if (by_seq) stop = "stop_sequence";
  xl_put_str(&c, a, "stop_reason", stop);
  xl_put_str(&c, a, "stop_sequence", by_seq ? seq : NULL);
  long long in, out, cr, cc;
  xl_usage_from_hub(xl_objm(h, "usage"), &in, &out, &cr, &cc);
  xl_put(&c, a, "usage", xl_anth_usage(&c, in, out, cr, cc));
  if (c.failed) {
    cJSON_Delete(a);
    return NULL;
  }
  return a;
}
