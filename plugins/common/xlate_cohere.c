/* xlate_cohere.c - hub <-> Cohere v2 chat and embed; see xlate_cohere.h. */
#include "xlate_cohere.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xlate_int.h"

#define PROV "cohere"

/* ================================ requests ================================ */

static int is_str(const cJSON *j, const char *s) { return cJSON_IsString(j) && strcmp(j->valuestring, s) == 0; }

/* a text-only content value (string or text parts) -> Cohere content (string or text items) */
static cJSON *text_content(xl_ctx *c, const cJSON *content, const char *path, const char *what) {
  if (cJSON_IsString(content)) return cJSON_CreateString(content->valuestring);
  if (!cJSON_IsArray(content)) {
    xl_fail(c, 400, path, "%s.content: must be a string or an array of content parts", path);
    return NULL;
  }
  cJSON *arr = xl_arr(c);
  int i = 0;
  const cJSON *p;
  cJSON_ArrayForEach(p, content) {
    char pp[128];
    xl_subpath(pp, sizeof pp, path, "content", i++);
    const char *ty = xl_str(p, "type");
    const char *tx = xl_str(p, "text");
    if (!ty || strcmp(ty, "text") != 0 || !tx) {
      xl_fail(c, 400, pp, "%s: %s takes only text in %s, got a \"%s\" part", pp, PROV, what, ty ? ty : "?");
      cJSON_Delete(arr);
      return NULL;
    }
    cJSON *it = xl_push(c, arr, xl_obj(c));
    xl_put_str(c, it, "type", "text");
    xl_put_str(c, it, "text", tx);
  }
  return arr;
}

static cJSON *user_content(xl_ctx *c, const cJSON *content, const char *path) {
  if (cJSON_IsString(content)) return cJSON_CreateString(content->valuestring);
  if (!cJSON_IsArray(content)) {
    xl_fail(c, 400, path, "%s.content: must be a string or an array of content parts", path);
    return NULL;
  }
  cJSON *arr = xl_arr(c);
  int i = 0;
  const cJSON *p;
  cJSON_ArrayForEach(p, content) {
    char pp[128];
    xl_subpath(pp, sizeof pp, path, "content", i++);
    const char *ty = xl_str(p, "type");
    if (ty && strcmp(ty, "text") == 0 && xl_str(p, "text")) {
      cJSON *it = xl_push(c, arr, xl_obj(c));
      xl_put_str(c, it, "type", "text");
      xl_put_str(c, it, "text", xl_str(p, "text"));
    } else if (ty && strcmp(ty, "image_url") == 0) {
      const cJSON *iu = xl_get(p, "image_url");
      const char *url = cJSON_IsString(iu) ? iu->valuestring : xl_str(iu, "url");
      if (!url || !*url) {
        xl_fail(c, 400, pp, "%s: image_url.url is required", pp);
        break;
      }
      cJSON *it = xl_push(c, arr, xl_obj(c));
      xl_put_str(c, it, "type", "image_url");
      cJSON *o = xl_put(c, it, "image_url", xl_obj(c));
      xl_put_str(c, o, "url", url);
      const char *det = xl_str(iu, "detail");
      if (det) xl_put_str(c, o, "detail", det);
    } else {
      xl_fail(c, 400, pp, "%s: content part type \"%s\" is not supported by %s (text and image_url only)", pp,
              ty ? ty : "?", PROV);
      break;
    }
  }
  if (c->failed) {
    cJSON_Delete(arr);
    return NULL;
  }
  return arr;
}

static cJSON *tool_content(xl_ctx *c, const cJSON *content, const char *path) {
  if (cJSON_IsString(content)) return cJSON_CreateString(content->valuestring);
  if (!content || cJSON_IsNull(content)) return cJSON_CreateString("");
  if (!cJSON_IsArray(content)) {
    xl_fail(c, 400, path, "%s.content: must be a string or an array of content parts", path);
    return NULL;
  }
  cJSON *arr = xl_arr(c);
  int i = 0;
  const cJSON *p;
  cJSON_ArrayForEach(p, content) {
    char pp[128];
    xl_subpath(pp, sizeof pp, path, "content", i++);
    const char *ty = xl_str(p, "type");
    if (ty && strcmp(ty, "text") == 0 && xl_str(p, "text")) {
      cJSON *it = xl_push(c, arr, xl_obj(c));
      xl_put_str(c, it, "type", "text");
      xl_put_str(c, it, "text", xl_str(p, "text"));
    } else if (ty && strcmp(ty, "document") == 0 && xl_objm(p, "document")) {
      cJSON *it = xl_push(c, arr, xl_obj(c));
      xl_put_str(c, it, "type", "document");
      xl_put_dup(c, it, "document", xl_objm(p, "document"));
    } else {
      xl_fail(c, 400, pp, "%s: %s takes only text and document parts in tool results, got a \"%s\" part", pp, PROV,
              ty ? ty : "?");
      break;
    }
  }
  if (c->failed) {
    cJSON_Delete(arr);
    return NULL;
  }
  return arr;
}

static cJSON *conv_message(xl_ctx *c, const cJSON *m, int i) {
  char path[64];
  snprintf(path, sizeof path, "messages[%d]", i);
  if (!cJSON_IsObject(m)) {
    xl_fail(c, 400, path, "%s: must be an object", path);
    return NULL;
  }
  const char *role = xl_str(m, "role");
  const cJSON *content = xl_get(m, "content");
  cJSON *out = xl_obj(c);
  if (!out) return NULL;
  if (role && (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)) {
    xl_put_str(c, out, "role", "system");
    if (!c->failed) xl_put(c, out, "content", text_content(c, content, path, "system messages"));
  } else if (role && strcmp(role, "user") == 0) {
    xl_put_str(c, out, "role", "user");
    if (!c->failed) xl_put(c, out, "content", user_content(c, content, path));
  } else if (role && strcmp(role, "assistant") == 0) {
    xl_put_str(c, out, "role", "assistant");
    const cJSON *tcs = xl_get(m, "tool_calls");
    const char *plan = xl_str(m, "tool_plan");
    const char *reason = xl_str(m, "reasoning_content");
    int has_text = content && !cJSON_IsNull(content) &&
                   !(cJSON_IsString(content) && !content->valuestring[0] && cJSON_GetArraySize(tcs) > 0);
    if (reason && *reason) {
      cJSON *arr = xl_put(c, out, "content", xl_arr(c));
      cJSON *th = xl_push(c, arr, xl_obj(c));
      xl_put_str(c, th, "type", "thinking");
      xl_put_str(c, th, "thinking", reason);
      if (has_text && !c->failed) {
        cJSON *tc = text_content(c, content, path, "assistant messages");
        if (cJSON_IsString(tc)) {
          if (tc->valuestring[0]) {
            cJSON *it = xl_push(c, arr, xl_obj(c));
            xl_put_str(c, it, "type", "text");
            xl_put_str(c, it, "text", tc->valuestring);
          }
          cJSON_Delete(tc);
        } else if (tc) {
          while (tc->child) xl_push(c, arr, cJSON_DetachItemViaPointer(tc, tc->child));
          cJSON_Delete(tc);
        }
      }
    } else if (has_text && !c->failed) {
      xl_put(c, out, "content", text_content(c, content, path, "assistant messages"));
    }
    if (plan) xl_put_str(c, out, "tool_plan", plan);
    if (tcs && !cJSON_IsNull(tcs)) {
      if (!cJSON_IsArray(tcs)) {
        xl_fail(c, 400, path, "%s.tool_calls: must be an array", path);
      } else if (cJSON_GetArraySize(tcs) > 0) {
        cJSON *arr = xl_put(c, out, "tool_calls", xl_arr(c));
        int k = 0;
        const cJSON *tc;
        cJSON_ArrayForEach(tc, tcs) {
          char tp[96];
          xl_subpath(tp, sizeof tp, path, "tool_calls", k++);
          const cJSON *fn = xl_objm(tc, "function");
          const char *id = xl_str(tc, "id"), *name = xl_str(fn, "name");
          const cJSON *args = xl_get(fn, "arguments");
          if (!id || !name) {
            xl_fail(c, 400, tp, "%s: id and function.name are required", tp);
            break;
          }
          const char *astr = cJSON_IsString(args) ? args->valuestring : NULL;
          cJSON *chk = astr && *astr ? cJSON_Parse(astr) : NULL;
          if (astr && *astr && !cJSON_IsObject(chk)) {
            cJSON_Delete(chk);
            xl_fail(c, 400, tp, "%s: function.arguments must be a JSON object text for %s", tp, PROV);
            break;
          }
          cJSON_Delete(chk);
          cJSON *o = xl_push(c, arr, xl_obj(c));
          xl_put_str(c, o, "id", id);
          xl_put_str(c, o, "type", "function");
          cJSON *f = xl_put(c, o, "function", xl_obj(c));
          xl_put_str(c, f, "name", name);
          xl_put_str(c, f, "arguments", astr && *astr ? astr : "{}");
        }
      }
    }
    if (!xl_get(out, "content") && !xl_get(out, "tool_calls") && !c->failed) xl_put_str(c, out, "content", "");
  } else if (role && strcmp(role, "tool") == 0) {
    xl_put_str(c, out, "role", "tool");
    const char *id = xl_str(m, "tool_call_id");
    if (!id) xl_fail(c, 400, path, "%s.tool_call_id: required for tool messages", path);
    else xl_put_str(c, out, "tool_call_id", id);
    if (!c->failed) xl_put(c, out, "content", tool_content(c, content, path));
  } else {
    xl_fail(c, 400, path, "%s.role: \"%s\" is not supported by %s (system, developer, user, assistant, tool)", path,
            role ? role : "?", PROV);
  }
  if (c->failed) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}

static int num_nonzero(const cJSON *h, const char *k) {
  const cJSON *v = xl_get(h, k);
  return v && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valuedouble == 0) && !cJSON_IsFalse(v);
}

static void copy_num(xl_ctx *c, const cJSON *h, const char *from, cJSON *out, const char *to) {
  const cJSON *v = xl_get(h, from);
  if (cJSON_IsNumber(v)) xl_put_num(c, out, to, v->valuedouble);
  else if (v && !cJSON_IsNull(v)) xl_fail(c, 400, from, "%s: must be a number", from);
}

cJSON *xc_req_from_hub(const cJSON *hub, pc_err *err) {
  xl_ctx c = {err, 0};
  if (!cJSON_IsObject(hub)) {
    xl_fail(&c, 400, "", "the request must be a JSON object");
    return NULL;
  }
  /* refusals first */
  const cJSON *n = xl_get(hub, "n");
  if (cJSON_IsNumber(n) && n->valuedouble > 1) xl_fail(&c, 400, "n", "n: %s returns one choice per request; n > 1 is not supported", PROV);
  static const char *const refuse[] = {"logprobs", "top_logprobs", "functions", "function_call", "prediction",
                                       "web_search_options", "audio"};
  for (size_t i = 0; !c.failed && i < sizeof refuse / sizeof *refuse; i++)
    if (num_nonzero(hub, refuse[i])) xl_fail(&c, 400, refuse[i], "%s: not supported by %s", refuse[i], PROV);
  const cJSON *lb = xl_get(hub, "logit_bias");
  if (!c.failed && cJSON_IsObject(lb) && lb->child) xl_fail(&c, 400, "logit_bias", "logit_bias: not supported by %s", PROV);
  const cJSON *mod = xl_arrm(hub, "modalities"), *mv;
  cJSON_ArrayForEach(mv, mod) if (!c.failed && !is_str(mv, "text")) xl_fail(&c, 400, "modalities", "modalities: %s answers with text only", PROV);
  const cJSON *ptc = xl_get(hub, "parallel_tool_calls");
  if (!c.failed && cJSON_IsFalse(ptc))
    xl_fail(&c, 400, "parallel_tool_calls", "parallel_tool_calls: %s cannot turn parallel tool calls off", PROV);
  const cJSON *xa = xl_objm(hub, "x_anthropic");
  static const char *const hard[] = {"mcp_servers", "container", "context_management"};
  for (size_t i = 0; xa && !c.failed && i < 3; i++)
    if (xl_get(xa, hard[i])) {
      char p[64];
      snprintf(p, sizeof p, "x_anthropic.%s", hard[i]);
      xl_fail(&c, 400, p, "%s: an Anthropic-only feature that %s cannot honour", p, PROV);
    }
  if (c.failed) return NULL;

  const char *model = xl_str(hub, "model");
  const cJSON *msgs = xl_get(hub, "messages");
  if (!model || !*model) {
    xl_fail(&c, 400, "model", "model: required (a %s model name)", PROV);
    return NULL;
  }
  if (!cJSON_IsArray(msgs) || !msgs->child) {
    xl_fail(&c, 400, "messages", "messages: must be a non-empty array");
    return NULL;
  }
  cJSON *out = xl_obj(&c);
  xl_put_str(&c, out, "model", model);
  cJSON *arr = xl_put(&c, out, "messages", xl_arr(&c));
  int i = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, msgs) {
    if (c.failed) break;
    xl_push(&c, arr, conv_message(&c, m, i++));
  }

  /* tools and tool_choice */
  const cJSON *tools = xl_get(hub, "tools");
  const cJSON *tch = xl_get(hub, "tool_choice");
  const char *forced = NULL;
  if (!c.failed && cJSON_IsObject(tch)) {
    forced = xl_str(xl_objm(tch, "function"), "name");
    if (!forced) forced = xl_str(tch, "name");
    if (!forced) xl_fail(&c, 400, "tool_choice", "tool_choice: unknown form for %s", PROV);
  }
  if (!c.failed && tools && !cJSON_IsNull(tools)) {
    if (!cJSON_IsArray(tools)) {
      xl_fail(&c, 400, "tools", "tools: must be an array");
    } else if (tools->child) {
      cJSON *ta = xl_put(&c, out, "tools", xl_arr(&c));
      int strict = 0, k = 0, found = 0;
      const cJSON *t;
      cJSON_ArrayForEach(t, tools) {
        char tp[32];
        snprintf(tp, sizeof tp, "tools[%d]", k++);
        const char *ty = xl_str(t, "type");
        const cJSON *fn = xl_objm(t, "function");
        const char *name = xl_str(fn, "name");
        if (!ty || strcmp(ty, "function") != 0) {
          xl_fail(&c, 400, tp, "%s: tool type \"%s\" is not supported by %s (only function tools)", tp, ty ? ty : "?", PROV);
          break;
        }
        if (!name) {
          xl_fail(&c, 400, tp, "%s: function.name is required", tp);
          break;
        }
        if (forced && strcmp(forced, name) != 0) continue;
        found = 1;
        cJSON *o = xl_push(&c, ta, xl_obj(&c));
        xl_put_str(&c, o, "type", "function");
        cJSON *f = xl_put(&c, o, "function", xl_obj(&c));
        xl_put_str(&c, f, "name", name);
        if (xl_str(fn, "description")) xl_put_str(&c, f, "description", xl_str(fn, "description"));
        const cJSON *params = xl_objm(fn, "parameters");
        if (params) xl_put_dup(&c, f, "parameters", params);
        else {
          cJSON *p = xl_put(&c, f, "parameters", xl_obj(&c));
          xl_put_str(&c, p, "type", "object");
          xl_put(&c, p, "properties", xl_obj(&c));
        }
        if (cJSON_IsTrue(xl_get(fn, "strict"))) strict = 1;
      }
      if (!c.failed && forced && !found)
        xl_fail(&c, 400, "tool_choice", "tool_choice: the tool \"%s\" is not among the tools (%s can only be forced to use one of them)", forced, PROV);
      if (strict) xl_put(&c, out, "strict_tools", cJSON_CreateTrue());
    }
  }
  if (!c.failed && tch && !cJSON_IsNull(tch)) {
    /* Cohere takes tool_choice only together with tools */
    int have_tools = xl_get(out, "tools") != NULL;
    if (forced || is_str(tch, "required")) {
      if (have_tools) xl_put_str(&c, out, "tool_choice", "REQUIRED");
      else xl_fail(&c, 400, "tool_choice", "tool_choice: asks for a tool call but the request has no tools for %s", PROV);
    } else if (is_str(tch, "none")) {
      if (have_tools) xl_put_str(&c, out, "tool_choice", "NONE");
    } else if (!is_str(tch, "auto")) {
      xl_fail(&c, 400, "tool_choice", "tool_choice: unknown value for %s", PROV);
    }
  }

  /* response_format */
  const cJSON *rf = xl_get(hub, "response_format");
  if (!c.failed && cJSON_IsObject(rf)) {
    const char *ty = xl_str(rf, "type");
    if (ty && strcmp(ty, "text") != 0 && xl_get(out, "tools"))
      xl_fail(&c, 400, "response_format", "response_format: %s does not take a JSON response format together with tools", PROV);
    if (c.failed) {
    } else if (ty && strcmp(ty, "json_object") == 0) {
      cJSON *o = xl_put(&c, out, "response_format", xl_obj(&c));
      xl_put_str(&c, o, "type", "json_object");
    } else if (ty && strcmp(ty, "json_schema") == 0) {
      const cJSON *schema = xl_objm(xl_objm(rf, "json_schema"), "schema");
      cJSON *o = xl_put(&c, out, "response_format", xl_obj(&c));
      xl_put_str(&c, o, "type", "json_object");
      if (schema) xl_put_dup(&c, o, "json_schema", schema);
    } else if (!ty || strcmp(ty, "text") != 0) {
      xl_fail(&c, 400, "response_format", "response_format: type \"%s\" is not supported by %s", ty ? ty : "?", PROV);
    }
  }

  /* sampling */
  if (!c.failed) copy_num(&c, hub, "temperature", out, "temperature");
  if (!c.failed) copy_num(&c, hub, "top_p", out, "p");
  if (!c.failed) copy_num(&c, hub, "top_k", out, "k");
  if (!c.failed) copy_num(&c, hub, "seed", out, "seed");
  if (!c.failed) copy_num(&c, hub, "frequency_penalty", out, "frequency_penalty");
  if (!c.failed) copy_num(&c, hub, "presence_penalty", out, "presence_penalty");
  const cJSON *mt = xl_get(hub, "max_completion_tokens");
  if (!cJSON_IsNumber(mt)) mt = xl_get(hub, "max_tokens");
  if (!c.failed && cJSON_IsNumber(mt)) xl_put_num(&c, out, "max_tokens", mt->valuedouble);
  const cJSON *stop = xl_get(hub, "stop");
  if (!c.failed && cJSON_IsString(stop)) {
    cJSON *sa = xl_put(&c, out, "stop_sequences", xl_arr(&c));
    xl_push(&c, sa, cJSON_CreateString(stop->valuestring));
  } else if (!c.failed && cJSON_IsArray(stop) && stop->child) {
    cJSON *sa = xl_put(&c, out, "stop_sequences", xl_arr(&c));
    const cJSON *s;
    cJSON_ArrayForEach(s, stop) {
      if (!cJSON_IsString(s)) {
        xl_fail(&c, 400, "stop", "stop: must be a string or an array of strings");
        break;
      }
      xl_push(&c, sa, cJSON_CreateString(s->valuestring));
    }
  }

  /* thinking */
  const cJSON *th = xl_objm(hub, "thinking");
  const char *eff = xl_str(hub, "reasoning_effort");
  if (!c.failed && th) {
    const char *ty = xl_str(th, "type");
    cJSON *o = xl_put(&c, out, "thinking", xl_obj(&c));
    if (ty && strcmp(ty, "disabled") == 0) xl_put_str(&c, o, "type", "disabled");
    else {
      xl_put_str(&c, o, "type", "enabled");
      double b;
      if (xl_num(th, "budget_tokens", &b)) xl_put_num(&c, o, "token_budget", b);
    }
  } else if (!c.failed && eff) {
    int budget = 0;
    if (!strcmp(eff, "minimal")) budget = XL_EFFORT_MINIMAL;
    else if (!strcmp(eff, "low")) budget = XL_EFFORT_LOW;
    else if (!strcmp(eff, "medium")) budget = XL_EFFORT_MEDIUM;
    else if (!strcmp(eff, "high")) budget = XL_EFFORT_HIGH;
    else if (strcmp(eff, "none") != 0)
      xl_fail(&c, 400, "reasoning_effort", "reasoning_effort: \"%s\" is not known (none, minimal, low, medium, high) for %s", eff, PROV);
    if (!c.failed) {
      cJSON *o = xl_put(&c, out, "thinking", xl_obj(&c));
      xl_put_str(&c, o, "type", budget ? "enabled" : "disabled");
      if (budget) xl_put_num(&c, o, "token_budget", budget);
    }
  }

  if (!c.failed && cJSON_IsTrue(xl_get(hub, "stream"))) xl_put(&c, out, "stream", cJSON_CreateTrue());

  /* x_cohere: Cohere members verbatim */
  const cJSON *xc = xl_objm(hub, "x_cohere"), *e;
  cJSON_ArrayForEach(e, xc) {
    if (c.failed) break;
    if (!e->string) continue;
    cJSON_DeleteItemFromObjectCaseSensitive(out, e->string);
    xl_put_dup(&c, out, e->string, e);
  }
  if (c.failed) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}

/* ================================ responses ================================ */

const char *xc_finish_to_hub(const char *fr) {
  if (!fr) return "stop";
  if (!strcmp(fr, "MAX_TOKENS") || !strcmp(fr, "TIMEOUT")) return "length";
  if (!strcmp(fr, "TOOL_CALL")) return "tool_calls";
  return "stop";
}

static long long nonneg(const cJSON *o, const char *k) {
  const cJSON *v = xl_get(o, k);
  return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9e15 ? (long long)v->valuedouble : -1;
}

/* Cohere usage -> hub usage (new tree in c); NULL when the usage says nothing */
static cJSON *hub_usage(xl_ctx *c, const cJSON *u) {
  const cJSON *bu = xl_objm(u, "billed_units"), *tk = xl_objm(u, "tokens");
  long long in = nonneg(bu, "input_tokens"), out = nonneg(bu, "output_tokens");
  if (in < 0) in = nonneg(tk, "input_tokens");
  if (out < 0) out = nonneg(tk, "output_tokens");
  if (in < 0 && out < 0) return NULL;
  if (in < 0) in = 0;
  if (out < 0) out = 0;
  long long cached = nonneg(u, "cached_tokens");
  cJSON *h = xl_obj(c);
  xl_put_num(c, h, "prompt_tokens", (double)in);
  xl_put_num(c, h, "completion_tokens", (double)out);
  xl_put_num(c, h, "total_tokens", (double)(in + out));
  if (cached >= 0) {
    cJSON *pd = xl_put(c, h, "prompt_tokens_details", xl_obj(c));
    xl_put_num(c, pd, "cached_tokens", (double)cached);
  }
  return h;
}

/* Cohere tool call -> hub tool call; NULL + failure when malformed */
static cJSON *hub_tool_call(xl_ctx *c, const cJSON *tc, int index, int with_index) {
  const cJSON *fn = xl_objm(tc, "function");
  const char *id = xl_str(tc, "id"), *name = xl_str(fn, "name");
  const cJSON *args = xl_get(fn, "arguments");
  if (!name) {
    xl_fail(c, 502, "", "%s answered a tool call without a function name", PROV);
    return NULL;
  }
  cJSON *o = xl_obj(c);
  if (with_index) xl_put_num(c, o, "index", index);
  xl_put_str(c, o, "id", id ? id : "");
  xl_put_str(c, o, "type", "function");
  cJSON *f = xl_put(c, o, "function", xl_obj(c));
  xl_put_str(c, f, "name", name);
  if (cJSON_IsString(args)) xl_put_str(c, f, "arguments", args->valuestring);
  else if (args && !cJSON_IsNull(args)) {
    char *s = cJSON_PrintUnformatted(args);
    xl_put_str(c, f, "arguments", s ? s : "{}");
    free(s);
  } else xl_put_str(c, f, "arguments", with_index ? "" : "{}");
  return o;
}

cJSON *xc_resp_to_hub(const cJSON *co, const char *model, long long created, pc_err *err) {
  xl_ctx c = {err, 0};
  const cJSON *msg = xl_objm(co, "message");
  if (!msg) {
    xl_fail(&c, 502, "", "%s answered without a message", PROV);
    return NULL;
  }
  const char *fr = xl_str(co, "finish_reason");
  if (fr && !strcmp(fr, "ERROR")) {
    xl_fail(&c, 502, "", "%s: the generation failed (finish_reason ERROR)", PROV);
    return NULL;
  }
  pc_buf text = {0}, think = {0};
  int have_text = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, xl_arrm(msg, "content")) {
    const char *ty = xl_str(it, "type");
    if (ty && !strcmp(ty, "text") && xl_str(it, "text")) {
      have_text = 1;
      if (pc_buf_adds(&text, xl_str(it, "text")) < 0) xl_fail(&c, 500, "", "out of memory");
    } else if (ty && !strcmp(ty, "thinking") && xl_str(it, "thinking")) {
      if (pc_buf_adds(&think, xl_str(it, "thinking")) < 0) xl_fail(&c, 500, "", "out of memory");
    }
  }
  cJSON *out = xl_obj(&c);
  const char *id = xl_str(co, "id");
  xl_put_str(&c, out, "id", id ? id : "chatcmpl-cohere");
  xl_put_str(&c, out, "object", "chat.completion");
  xl_put_num(&c, out, "created", (double)created);
  xl_put_str(&c, out, "model", model ? model : "");
  cJSON *choices = xl_put(&c, out, "choices", xl_arr(&c));
  cJSON *ch = xl_push(&c, choices, xl_obj(&c));
  xl_put_num(&c, ch, "index", 0);
  cJSON *m = xl_put(&c, ch, "message", xl_obj(&c));
  xl_put_str(&c, m, "role", "assistant");
  xl_put_str(&c, m, "content", have_text ? (text.p ? text.p : "") : NULL);
  if (think.n) xl_put_str(&c, m, "reasoning_content", think.p);
  const char *plan = xl_str(msg, "tool_plan");
  if (plan && *plan) xl_put_str(&c, m, "tool_plan", plan);
  const cJSON *tcs = xl_arrm(msg, "tool_calls");
  int ntc = 0;
  if (tcs && tcs->child) {
    cJSON *arr = xl_put(&c, m, "tool_calls", xl_arr(&c));
    const cJSON *tc;
    cJSON_ArrayForEach(tc, tcs) {
      if (c.failed) break;
      xl_push(&c, arr, hub_tool_call(&c, tc, ntc++, 0));
    }
  }
  const char *hf = xc_finish_to_hub(fr);
  if (!fr && ntc) hf = "tool_calls";
  xl_put_str(&c, ch, "finish_reason", hf);
  xl_put(&c, ch, "logprobs", cJSON_CreateNull());
  const cJSON *u = xl_objm(co, "usage");
  cJSON *hu = u && !c.failed ? hub_usage(&c, u) : NULL;
  if (hu) xl_put(&c, out, "usage", hu);
  pc_buf_free(&text);
  pc_buf_free(&think);
  if (c.failed) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}

/* ================================ stream ================================ */

void xc_dec_init(xc_dec *d, const char *model, long long created) {
  memset(d, 0, sizeof *d);
  d->created = created;
  xl_cpy(d->model, sizeof d->model, model ? model : "");
  xl_cpy(d->id, sizeof d->id, "chatcmpl-cohere");
}

void xc_dec_free(xc_dec *d) {
  free(d->tmap);
  d->tmap = NULL;
  d->ntmap = 0;
}

static cJSON *chunk_new(xl_ctx *c, const xc_dec *d, cJSON **delta_out, int with_choice) {
  cJSON *ch = xl_obj(c);
  xl_put_str(c, ch, "id", d->id);
  xl_put_str(c, ch, "object", "chat.completion.chunk");
  xl_put_num(c, ch, "created", (double)d->created);
  xl_put_str(c, ch, "model", d->model);
  cJSON *choices = xl_put(c, ch, "choices", xl_arr(c));
  if (with_choice) {
    cJSON *c0 = xl_push(c, choices, xl_obj(c));
    xl_put_num(c, c0, "index", 0);
    cJSON *delta = xl_put(c, c0, "delta", xl_obj(c));
    if (delta_out) *delta_out = delta;
    xl_put(c, c0, "finish_reason", cJSON_CreateNull());
  }
  return ch;
}

static int send_chunk(xl_ctx *c, cJSON *ch, pc_chunk_fn cb, void *ud) {
  if (c->failed) {
    cJSON_Delete(ch);
    return -1;
  }
  int rc = cb(ud, ch);
  cJSON_Delete(ch);
  return rc;
}

static int start_chunk(xl_ctx *c, xc_dec *d, pc_chunk_fn cb, void *ud) {
  d->started = 1;
  cJSON *delta = NULL;
  cJSON *ch = chunk_new(c, d, &delta, 1);
  xl_put_str(c, delta, "role", "assistant");
  xl_put_str(c, delta, "content", "");
  return send_chunk(c, ch, cb, ud);
}

/* hub index for Cohere tool index ci; create = assign the next one */
static int tool_index(xl_ctx *c, xc_dec *d, int ci, int create) {
  if (ci < 0 || ci > 4096) return -1;
  if (ci >= d->ntmap) {
    if (!create) return -1;
    int nn = ci + 8;
    int *m = realloc(d->tmap, (size_t)nn * sizeof *m);
    if (!m) {
      xl_fail(c, 500, "", "out of memory");
      return -1;
    }
    for (int i = d->ntmap; i < nn; i++) m[i] = -1;
    d->tmap = m;
    d->ntmap = nn;
  }
  if (create) d->tmap[ci] = d->ntools++;
  return d->tmap[ci];
}

int xc_dec_event(xc_dec *d, const char *name, const char *data, size_t n, pc_chunk_fn cb, void *ud, pc_err *err) {
  xl_ctx c = {err, 0};
  while (n && (*data == ' ' || *data == '\t' || *data == '\r' || *data == '\n')) data++, n--;
  while (n && (data[n - 1] == ' ' || data[n - 1] == '\r' || data[n - 1] == '\n')) n--;
  if (!n || (n == 6 && !memcmp(data, "[DONE]", 6))) return 0;
  cJSON *ev = xl_parse(data, n);
  if (!cJSON_IsObject(ev)) {
    cJSON_Delete(ev);
    return xl_fail(&c, 502, "", "%s sent a stream event that is not JSON", PROV);
  }
  const char *ty = xl_str(ev, "type");
  if (!ty) ty = name;
  int rc = 0;
  const cJSON *delta = xl_objm(ev, "delta");
  const cJSON *dm = xl_objm(delta, "message");
  if (!ty) {
    const char *msg = xl_str(ev, "message");
    if (msg) {
      xl_fail(&c, 500, "", "%s", *msg ? msg : "cohere sent an error event without a message");
      rc = XC_EUPSTREAM;
    }
    goto out;
  }
  if (!d->started && strcmp(ty, "message-start") && strcmp(ty, "debug")) {
    rc = start_chunk(&c, d, cb, ud);
    if (rc) goto out;
  }
  if (!strcmp(ty, "message-start")) {
    const char *id = xl_str(ev, "id");
    if (id && *id) xl_cpy(d->id, sizeof d->id, id);
    if (!d->started) rc = start_chunk(&c, d, cb, ud);
  } else if (!strcmp(ty, "content-start") || !strcmp(ty, "content-delta")) {
    const cJSON *ct = xl_objm(dm, "content");
    const char *tx = xl_str(ct, "text"), *tk = xl_str(ct, "thinking");
    if ((tx && *tx) || (tk && *tk)) {
      cJSON *dl = NULL;
      cJSON *ch = chunk_new(&c, d, &dl, 1);
      if (tx && *tx) xl_put_str(&c, dl, "content", tx);
      else xl_put_str(&c, dl, "reasoning_content", tk);
      rc = send_chunk(&c, ch, cb, ud);
    }
  } else if (!strcmp(ty, "tool-plan-delta")) {
    const char *tp = xl_str(dm, "tool_plan");
    if (tp && *tp) {
      cJSON *dl = NULL;
      cJSON *ch = chunk_new(&c, d, &dl, 1);
      xl_put_str(&c, dl, "tool_plan", tp);
      rc = send_chunk(&c, ch, cb, ud);
    }
  } else if (!strcmp(ty, "tool-call-start") || !strcmp(ty, "tool-call-delta")) {
    int start = ty[10] == 's';
    double ci = 0;
    if (!xl_num(ev, "index", &ci)) ci = start ? d->ntools : (d->ntools ? d->ntools - 1 : 0);
    const cJSON *tc = xl_objm(dm, "tool_calls");
    if (!tc) {
      const cJSON *ta = xl_arrm(dm, "tool_calls");
      tc = ta && cJSON_IsObject(ta->child) ? ta->child : NULL;
    }
    if (ci != floor(ci)) ci = -1;
    int hi = tool_index(&c, d, (int)ci, start);
    if (hi < 0) {
      if (!c.failed) xl_fail(&c, 502, "", "%s sent a %s for a tool call that never started", PROV, ty);
      rc = -1;
      goto out;
    }
    cJSON *dl = NULL;
    cJSON *ch = chunk_new(&c, d, &dl, 1);
    cJSON *arr = xl_put(&c, dl, "tool_calls", xl_arr(&c));
    if (start) {
      if (!xl_str(xl_objm(tc, "function"), "name")) {
        cJSON_Delete(ch);
        rc = xl_fail(&c, 502, "", "%s sent a tool-call-start without a function name", PROV);
        goto out;
      }
      xl_push(&c, arr, hub_tool_call(&c, tc, hi, 1));
    } else {
      const cJSON *args = xl_get(xl_objm(tc, "function"), "arguments");
      if (!cJSON_IsString(args) || !args->valuestring[0]) {
        cJSON_Delete(ch);
        goto out;
      }
      cJSON *o = xl_push(&c, arr, xl_obj(&c));
      xl_put_num(&c, o, "index", hi);
      cJSON *f = xl_put(&c, o, "function", xl_obj(&c));
      xl_put_str(&c, f, "arguments", args->valuestring);
    }
    rc = send_chunk(&c, ch, cb, ud);
  } else if (!strcmp(ty, "message-end")) {
    if (d->done) goto out;
    const char *fr = xl_str(delta, "finish_reason");
    const char *em = xl_str(delta, "error");
    if ((em && *em) || (fr && !strcmp(fr, "ERROR"))) {
      xl_fail(&c, 502, "", "%s", em && *em ? em : "cohere: the generation failed (finish_reason ERROR)");
      rc = XC_EUPSTREAM;
      goto out;
    }
    d->done = 1;
    const char *hf = fr ? xc_finish_to_hub(fr) : (d->ntools ? "tool_calls" : "stop");
    cJSON *ch = chunk_new(&c, d, NULL, 1);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ch, "choices"), 0);
    if (c0) cJSON_ReplaceItemInObjectCaseSensitive(c0, "finish_reason", cJSON_CreateString(hf));
    rc = send_chunk(&c, ch, cb, ud);
    if (rc) goto out;
    cJSON *hu = hub_usage(&c, xl_objm(delta, "usage"));
    if (hu) {
      cJSON *uc = chunk_new(&c, d, NULL, 0);
      xl_put(&c, uc, "usage", hu);
      rc = send_chunk(&c, uc, cb, ud);
    }
  }
  /* content-end, tool-call-end, citation-*, debug, unknown: nothing */
out:
  cJSON_Delete(ev);
  if (c.failed && rc == 0) rc = -1;
  return rc;
}

int xc_dec_finish(const xc_dec *d, pc_err *err) {
  if (d->done) return 0;
  pc_err_set(err, 502, "", "the %s stream ended early (no message-end)", PROV);
  return -1;
}

/* ================================ embeddings ================================ */

int xc_input_type_ok(const char *s) {
  static const char *const ok[] = {"search_document", "search_query", "classification", "clustering", "image"};
  for (size_t i = 0; s && i < sizeof ok / sizeof *ok; i++)
    if (!strcmp(s, ok[i])) return 1;
  return 0;
}

cJSON *xc_embed_req_from_openai(const cJSON *oai, const char *input_type, int *base64, pc_err *err) {
  xl_ctx c = {err, 0};
  if (base64) *base64 = 0;
  if (!cJSON_IsObject(oai)) {
    xl_fail(&c, 400, "", "the request must be a JSON object");
    return NULL;
  }
  const char *model = xl_str(oai, "model");
  if (!model || !*model) {
    xl_fail(&c, 400, "model", "model: required (a %s embedding model name)", PROV);
    return NULL;
  }
  const cJSON *in = xl_get(oai, "input");
  if (!cJSON_IsString(in) && !(cJSON_IsArray(in) && in->child)) {
    xl_fail(&c, 400, "input", "input: must be a string or a non-empty array of strings");
    return NULL;
  }
  const char *ef = xl_str(oai, "encoding_format");
  if (ef && strcmp(ef, "float") && strcmp(ef, "base64")) {
    xl_fail(&c, 400, "encoding_format", "encoding_format: \"%s\" is not supported by %s (float, base64)", ef, PROV);
    return NULL;
  }
  if (ef && base64) *base64 = strcmp(ef, "base64") == 0;
  const cJSON *it = xl_get(oai, "input_type");
  const char *itype = input_type && *input_type ? input_type : "search_document";
  if (it && !cJSON_IsNull(it)) {
    if (!cJSON_IsString(it) || !xc_input_type_ok(it->valuestring)) {
      xl_fail(&c, 400, "input_type", "input_type: must be one of search_document, search_query, classification, clustering, image for %s", PROV);
      return NULL;
    }
    itype = it->valuestring;
  }
  cJSON *out = xl_obj(&c);
  xl_put_str(&c, out, "model", model);
  cJSON *texts = xl_put(&c, out, "texts", xl_arr(&c));
  if (cJSON_IsString(in)) xl_push(&c, texts, cJSON_CreateString(in->valuestring));
  else {
    int i = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, in) {
      if (!cJSON_IsString(s)) {
        char p[32];
        snprintf(p, sizeof p, "input[%d]", i);
        xl_fail(&c, 400, p, "%s: %s embeds texts only; token arrays are not supported", p, PROV);
        break;
      }
      xl_push(&c, texts, cJSON_CreateString(s->valuestring));
      i++;
    }
  }
  xl_put_str(&c, out, "input_type", itype);
  cJSON *et = xl_put(&c, out, "embedding_types", xl_arr(&c));
  xl_push(&c, et, cJSON_CreateString("float"));
  const cJSON *dim = xl_get(oai, "dimensions");
  if (cJSON_IsNumber(dim)) xl_put_num(&c, out, "output_dimension", dim->valuedouble);
  else if (dim && !cJSON_IsNull(dim)) xl_fail(&c, 400, "dimensions", "dimensions: must be a number");
  if (c.failed) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}

static cJSON *b64_floats(xl_ctx *c, const cJSON *vec) {
  int n = cJSON_GetArraySize(vec);
  unsigned char *buf = malloc((size_t)(n > 0 ? n : 1) * 4);
  if (!buf) {
    xl_fail(c, 500, "", "out of memory");
    return NULL;
  }
  int i = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, vec) {
    float f = (float)v->valuedouble;
    uint32_t u;
    memcpy(&u, &f, 4);
    buf[i * 4] = (unsigned char)(u & 0xff);
    buf[i * 4 + 1] = (unsigned char)((u >> 8) & 0xff);
    buf[i * 4 + 2] = (unsigned char)((u >> 16) & 0xff);
    buf[i * 4 + 3] = (unsigned char)((u >> 24) & 0xff);
    i++;
  }
  char *s = xl_b64_encode(buf, (size_t)n * 4);
  free(buf);
  cJSON *r = s ? cJSON_CreateString(s) : NULL;
  free(s);
  if (!r) xl_fail(c, 500, "", "out of memory");
  return r;
}

cJSON *xc_embed_resp_to_openai(const cJSON *co, const char *model, int base64, pc_err *err) {
  xl_ctx c = {err, 0};
  const cJSON *emb = xl_get(co, "embeddings");
  const cJSON *list = cJSON_IsObject(emb) ? xl_arrm(emb, "float") : (cJSON_IsArray(emb) ? emb : NULL);
  if (!list) {
    xl_fail(&c, 502, "", "%s answered the embeddings request without float embeddings", PROV);
    return NULL;
  }
  cJSON *out = xl_obj(&c);
  xl_put_str(&c, out, "object", "list");
  cJSON *data = xl_put(&c, out, "data", xl_arr(&c));
  int i = 0;
  const cJSON *vec;
  cJSON_ArrayForEach(vec, list) {
    if (c.failed) break;
    if (!cJSON_IsArray(vec)) {
      xl_fail(&c, 502, "", "%s answered an embedding that is not an array", PROV);
      break;
    }
    const cJSON *x;
    cJSON_ArrayForEach(x, vec) if (!cJSON_IsNumber(x)) {
      xl_fail(&c, 502, "", "%s answered an embedding with a non-number", PROV);
      break;
    }
    if (c.failed) break;
    cJSON *o = xl_push(&c, data, xl_obj(&c));
    xl_put_str(&c, o, "object", "embedding");
    xl_put_num(&c, o, "index", i++);
    xl_put(&c, o, "embedding", base64 ? b64_floats(&c, vec) : cJSON_Duplicate(vec, 1));
  }
  xl_put_str(&c, out, "model", model ? model : "");
  const cJSON *meta = xl_objm(co, "meta");
  long long in = nonneg(xl_objm(meta, "billed_units"), "input_tokens");
  if (in < 0) in = nonneg(xl_objm(meta, "tokens"), "input_tokens");
  if (in < 0) in = 0;
  cJSON *u = xl_put(&c, out, "usage", xl_obj(&c));
  xl_put_num(&c, u, "prompt_tokens", (double)in);
  xl_put_num(&c, u, "total_tokens", (double)in);
  if (c.failed) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}

/* ================================ errors ================================ */

void xc_error_from_upstream(int status, const char *body, size_t n, pc_err *err) {
  int st = status;
  if (st == 498) st = 401;
  if (st < 400 || st > 599) st = 502;
  char msg[sizeof err->msg];
  msg[0] = 0;
  cJSON *j = body && n ? xl_parse(body, n) : NULL;
  const char *m = xl_str(j, "message");
  if (!m) m = xl_str(xl_objm(j, "error"), "message");
  if (m && *m) xl_cpy(msg, sizeof msg, m);
  else if (!j && body && n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < sizeof msg && k < 200; i++) {
      unsigned char ch = (unsigned char)body[i];
      msg[k++] = ch < 0x20 ? ' ' : (char)ch;
    }
    msg[k] = 0;
    while (k && msg[k - 1] == ' ') msg[--k] = 0;
  }
  if (!msg[0]) snprintf(msg, sizeof msg, "%s: upstream error %d", PROV, status);
  cJSON_Delete(j);
  pc_err_set(err, st, xl_openai_error_type(st), "%s", msg);
}
