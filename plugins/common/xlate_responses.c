/* xlate_responses.c - OpenAI Responses API <-> hub (xlate_responses.h documents the mapping). */
#include "xlate_responses.h"

#include "xlate_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================ helpers ================================ */

static int streq(const char *a, const char *b) { return a && b && !strcmp(a, b); }

static int is_true(const cJSON *o, const char *k) { return cJSON_IsTrue(xl_get(o, k)); }

/* present and not null */
static int has(const cJSON *o, const char *k) {
  const cJSON *v = xl_get(o, k);
  return v && !cJSON_IsNull(v);
}

static int add_str(xl_ctx *c, pc_buf *b, const char *s) {
  if (s && s[0] && pc_buf_adds(b, s)) return xl_fail(c, 500, "", "out of memory");
  return 0;
}

static const char *bstr(const pc_buf *b) { return b->p && b->n ? b->p : ""; }

static void buf_reset(pc_buf *b) {
  b->n = 0;
  if (b->p) b->p[0] = 0;
}

/* the id base X from a hub id */
static void id_base(const char *hub_id, char *out, size_t cap) {
  const char *s = hub_id ? hub_id : "";
  if (!strncmp(s, "chatcmpl-", 9)) s += 9;
  size_t n = 0;
  for (; *s && n + 1 < cap; s++) {
    char ch = *s;
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
    out[n++] = ok ? ch : '_';
  }
  out[n] = 0;
  if (!n) xl_cpy(out, cap, "aigw");
}

void xr_response_id(const char *hub_id, char *out, size_t cap) {
  char x[160];
  id_base(hub_id, x, sizeof x);
  snprintf(out, cap, "resp_%s", x);
}

static const char *prov(const char *p) { return p && p[0] ? p : "the provider"; }

static int include_has(const cJSON *req, const char *what) {
  const cJSON *v;
  cJSON_ArrayForEach(v, xl_arrm(req, "include")) if (cJSON_IsString(v) && !strcmp(v->valuestring, what)) return 1;
  return 0;
}

/* ================================ requests ================================ */

/* one content part of a message / tool output -> hub part (new), or NULL + failed */
static cJSON *part_to_hub(xl_ctx *c, const cJSON *p, const char *path, int assistant) {
  const char *t = xl_str(p, "type");
  if (!cJSON_IsObject(p) || !t) {
    xl_fail(c, 400, path, "%s: a content part must be an object with a \"type\"", path);
    return NULL;
  }
  if (!strcmp(t, "input_text") || !strcmp(t, "output_text") || !strcmp(t, "text")) {
    const char *s = xl_str(p, "text");
    if (!s) {
      xl_fail(c, 400, path, "%s: \"text\" must be a string", path);
      return NULL;
    }
    cJSON *o = xl_obj(c);
    xl_put_str(c, o, "type", "text");
    xl_put_str(c, o, "text", s);
    return o;
  }
  if (assistant) {
    xl_fail(c, 400, path, "%s: assistant messages take only output_text and refusal parts, got \"%s\"", path, t);
    return NULL;
  }
  if (!strcmp(t, "input_image")) {
    const char *url = xl_str(p, "image_url");
    if (!url) {
      if (has(p, "file_id"))
        xl_fail(c, 400, path, "%s: images by file_id are not supported (aigw has no file store); send image_url as a data URL or https URL", path);
      else
        xl_fail(c, 400, path, "%s: input_image needs an image_url", path);
      return NULL;
    }
    cJSON *o = xl_obj(c);
    xl_put_str(c, o, "type", "image_url");
    cJSON *iu = xl_put(c, o, "image_url", xl_obj(c));
    xl_put_str(c, iu, "url", url);
    const char *d = xl_str(p, "detail");
    if (d) xl_put_str(c, iu, "detail", d);
    return o;
  }
  if (!strcmp(t, "input_file")) {
    const char *data = xl_str(p, "file_data"), *url = xl_str(p, "file_url"), *fn = xl_str(p, "filename");
    if (!data && !url) {
      if (has(p, "file_id"))
        xl_fail(c, 400, path, "%s: files by file_id are not supported (aigw has no file store); send file_data", path);
      else
        xl_fail(c, 400, path, "%s: input_file needs file_data or file_url", path);
      return NULL;
    }
    cJSON *o = xl_obj(c);
    xl_put_str(c, o, "type", "file");
    cJSON *f = xl_put(c, o, "file", xl_obj(c));
    if (data) {
      if (!strncmp(data, "data:", 5)) {
        xl_put_str(c, f, "file_data", data);
      } else { /* bare base64: the Responses API documents PDF input */
        pc_buf b = {0};
        if (pc_buf_adds(&b, "data:application/pdf;base64,") || pc_buf_adds(&b, data)) {
          pc_buf_free(&b);
          xl_fail(c, 500, "", "out of memory");
          cJSON_Delete(o);
          return NULL;
        }
        xl_put_str(c, f, "file_data", b.p);
        pc_buf_free(&b);
      }
    } else {
      xl_put_str(c, f, "file_url", url);
    }
    if (fn) xl_put_str(c, f, "filename", fn);
    return o;
  }
  xl_fail(c, 400, path, "%s: content part type \"%s\" is not supported", path, t);
  return NULL;
}

/* content (string or parts array) -> hub content (new) */
static cJSON *content_to_hub(xl_ctx *c, const cJSON *content, const char *path) {
  if (cJSON_IsString(content)) return cJSON_CreateString(content->valuestring);
  if (!cJSON_IsArray(content)) {
    xl_fail(c, 400, path, "%s: must be a string or an array of content parts", path);
    return NULL;
  }
  cJSON *a = xl_arr(c);
  const cJSON *p;
  int i = 0;
  char sub[160];
  cJSON_ArrayForEach(p, content) {
    snprintf(sub, sizeof sub, "%s[%d]", path, i++);
    cJSON *h = part_to_hub(c, p, sub, 0);
    if (!h) break;
    xl_push(c, a, h);
  }
  if (c->failed) {
    cJSON_Delete(a);
    return NULL;
  }
  return a;
}

/* the assistant message being assembled from consecutive assistant-side items */
typedef struct asst {
  int active;
  pc_buf text, refusal, reason;
  int has_text;
  cJSON *calls;  /* owned */
  cJSON *blocks; /* owned */
} asst;

static void asst_free(asst *a) {
  pc_buf_free(&a->text);
  pc_buf_free(&a->refusal);
  pc_buf_free(&a->reason);
  cJSON_Delete(a->calls);
  cJSON_Delete(a->blocks);
  memset(a, 0, sizeof *a);
}

static void asst_flush(xl_ctx *c, asst *a, cJSON *msgs) {
  if (!a->active) return;
  cJSON *m = xl_obj(c);
  xl_put_str(c, m, "role", "assistant");
  int ncalls = cJSON_GetArraySize(a->calls);
  if (a->has_text || !ncalls) xl_put_str(c, m, "content", bstr(&a->text));
  else xl_put(c, m, "content", cJSON_CreateNull());
  if (a->refusal.n) xl_put_str(c, m, "refusal", a->refusal.p);
  if (ncalls) {
    xl_put(c, m, "tool_calls", a->calls);
    a->calls = NULL;
  }
  if (a->reason.n) xl_put_str(c, m, "reasoning_content", a->reason.p);
  if (cJSON_GetArraySize(a->blocks)) {
    xl_put(c, m, "thinking_blocks", a->blocks);
    a->blocks = NULL;
  }
  xl_push(c, msgs, m);
  asst_free(a);
}

static void asst_begin(asst *a) { a->active = 1; }

static int asst_has_output(const asst *a) { return a->has_text || a->refusal.n || cJSON_GetArraySize(a->calls); }

/* "aigw1:<base64 JSON array>" -> new array, or NULL when not ours / not valid */
static cJSON *decode_blocks(const char *enc) {
  size_t pl = strlen(XR_ENC_PREFIX);
  if (!enc || strncmp(enc, XR_ENC_PREFIX, pl)) return NULL;
  size_t n = 0;
  unsigned char *raw = xl_b64_decode(enc + pl, strlen(enc + pl), &n);
  if (!raw) return NULL;
  cJSON *j = cJSON_ParseWithLength((const char *)raw, n);
  free(raw);
  if (!cJSON_IsArray(j)) {
    cJSON_Delete(j);
    return NULL;
  }
  return j;
}

static char *encode_blocks(const cJSON *blocks) {
  char *s = cJSON_PrintUnformatted(blocks);
  if (!s) return NULL;
  char *b = xl_b64_encode((const unsigned char *)s, strlen(s));
  cJSON_free(s);
  if (!b) return NULL;
  size_t pl = strlen(XR_ENC_PREFIX), bl = strlen(b);
  char *out = malloc(pl + bl + 1);
  if (out) {
    memcpy(out, XR_ENC_PREFIX, pl);
    memcpy(out + pl, b, bl + 1);
  }
  free(b);
  return out;
}

static void item_reasoning(xl_ctx *c, asst *a, const cJSON *it, const char *path) {
  pc_buf t = {0};
  const cJSON *p;
  int n = 0;
  cJSON_ArrayForEach(p, xl_arrm(it, "content")) {
    const char *s = xl_str(p, "text");
    if (!s || !s[0]) continue;
    if ((n++ && pc_buf_adds(&t, "\n\n")) || pc_buf_adds(&t, s)) xl_fail(c, 500, "", "out of memory");
  }
  if (!n) cJSON_ArrayForEach(p, xl_arrm(it, "summary")) {
      const char *s = xl_str(p, "text");
      if (!s || !s[0]) continue;
      if ((n++ && pc_buf_adds(&t, "\n\n")) || pc_buf_adds(&t, s)) xl_fail(c, 500, "", "out of memory");
    }
  if (n) {
    if ((a->reason.n && pc_buf_adds(&a->reason, "\n\n")) || pc_buf_adds(&a->reason, t.p))
      xl_fail(c, 500, "", "out of memory");
  }
  pc_buf_free(&t);
  cJSON *blocks = decode_blocks(xl_str(it, "encrypted_content"));
  if (blocks) {
    if (!a->blocks) {
      a->blocks = blocks;
    } else {
      while (blocks->child) {
        cJSON *b = cJSON_DetachItemViaPointer(blocks, blocks->child);
        if (!cJSON_AddItemToArray(a->blocks, b)) {
          cJSON_Delete(b);
          xl_fail(c, 500, "", "out of memory");
          break;
        }
      }
      cJSON_Delete(blocks);
    }
  }
  (void)path;
}

static void item_function_call(xl_ctx *c, asst *a, const cJSON *it, const char *path) {
  const char *id = xl_str(it, "call_id"), *name = xl_str(it, "name"), *args = xl_str(it, "arguments");
  if (!id || !name) {
    xl_fail(c, 400, path, "%s: a function_call item needs call_id and name", path);
    return;
  }
  if (!a->calls && !(a->calls = xl_arr(c))) return;
  cJSON *tc = xl_push(c, a->calls, xl_obj(c));
  xl_put_str(c, tc, "id", id);
  xl_put_str(c, tc, "type", "function");
  cJSON *fn = xl_put(c, tc, "function", xl_obj(c));
  xl_put_str(c, fn, "name", name);
  xl_put_str(c, fn, "arguments", args ? args : "{}");
}

static void item_assistant_message(xl_ctx *c, asst *a, const cJSON *content, const char *path) {
  if (cJSON_IsString(content)) {
    a->has_text = 1;
    add_str(c, &a->text, content->valuestring);
    return;
  }
  if (!cJSON_IsArray(content)) {
    xl_fail(c, 400, path, "%s: must be a string or an array of content parts", path);
    return;
  }
  const cJSON *p;
  int i = 0;
  char sub[160];
  cJSON_ArrayForEach(p, content) {
    snprintf(sub, sizeof sub, "%s[%d]", path, i++);
    const char *t = xl_str(p, "type");
    if (streq(t, "refusal")) {
      add_str(c, &a->refusal, xl_str(p, "refusal"));
      continue;
    }
    cJSON *h = part_to_hub(c, p, sub, 1);
    if (!h) return;
    a->has_text = 1;
    add_str(c, &a->text, xl_str(h, "text"));
    cJSON_Delete(h);
  }
}

static void input_items(xl_ctx *c, const cJSON *input, cJSON *msgs) {
  asst a = {0};
  const cJSON *it;
  int i = 0;
  char path[96], sub[128];
  cJSON_ArrayForEach(it, input) {
    snprintf(path, sizeof path, "input[%d]", i++);
    if (c->failed) break;
    if (!cJSON_IsObject(it)) {
      xl_fail(c, 400, path, "%s: an input item must be an object", path);
      break;
    }
    const char *type = xl_str(it, "type"), *role = xl_str(it, "role");
    if (!type && role) type = "message";
    if (!type) {
      xl_fail(c, 400, path, "%s: an input item needs a \"type\" (or a \"role\")", path);
      break;
    }
    if (!strcmp(type, "message")) {
      snprintf(sub, sizeof sub, "%s.content", path);
      if (streq(role, "assistant")) {
        if (a.active && cJSON_GetArraySize(a.calls)) asst_flush(c, &a, msgs);
        asst_begin(&a);
        item_assistant_message(c, &a, xl_get(it, "content"), sub);
        continue;
      }
      if (!streq(role, "user") && !streq(role, "system") && !streq(role, "developer")) {
        xl_fail(c, 400, path, "%s: role \"%s\" is not supported (user, system, developer, assistant)", path,
                role ? role : "(none)");
        break;
      }
      asst_flush(c, &a, msgs);
      cJSON *content = content_to_hub(c, xl_get(it, "content"), sub);
      if (!content) break;
      cJSON *m = xl_push(c, msgs, xl_obj(c));
      xl_put_str(c, m, "role", role);
      xl_put(c, m, "content", content);
    } else if (!strcmp(type, "function_call")) {
      asst_begin(&a);
      item_function_call(c, &a, it, path);
    } else if (!strcmp(type, "function_call_output")) {
      asst_flush(c, &a, msgs);
      const char *id = xl_str(it, "call_id");
      if (!id) {
        xl_fail(c, 400, path, "%s: a function_call_output item needs call_id", path);
        break;
      }
      snprintf(sub, sizeof sub, "%s.output", path);
      cJSON *content = content_to_hub(c, xl_get(it, "output"), sub);
      if (!content) break;
      cJSON *m = xl_push(c, msgs, xl_obj(c));
      xl_put_str(c, m, "role", "tool");
      xl_put_str(c, m, "tool_call_id", id);
      xl_put(c, m, "content", content);
    } else if (!strcmp(type, "reasoning")) {
      if (a.active && asst_has_output(&a)) asst_flush(c, &a, msgs);
      asst_begin(&a);
      item_reasoning(c, &a, it, path);
    } else if (!strcmp(type, "item_reference")) {
      xl_fail(c, 400, path, "%s: item_reference is not supported (aigw stores no items); send the items, or use previous_response_id", path);
    } else {
      xl_fail(c, 400, path, "%s: input item type \"%s\" is not supported (built-in tools are not available through aigw)", path, type);
    }
  }
  if (!c->failed) asst_flush(c, &a, msgs);
  asst_free(&a);
}

static const char *const builtin_prefixes[] = {"web_search", "file_search", "computer", "code_interpreter", "mcp",
                                               "image_generation", "local_shell", "shell", "custom", "apply_patch"};

static void tools_to_hub(xl_ctx *c, const cJSON *tools, cJSON *hub, const char *provider) {
  if (!tools) return;
  if (!cJSON_IsArray(tools)) {
    xl_fail(c, 400, "tools", "tools: must be an array");
    return;
  }
  if (!cJSON_GetArraySize(tools)) return;
  cJSON *out = xl_put(c, hub, "tools", xl_arr(c));
  const cJSON *t;
  int i = 0;
  char path[48];
  cJSON_ArrayForEach(t, tools) {
    snprintf(path, sizeof path, "tools[%d]", i++);
    const char *type = xl_str(t, "type");
    if (!type) {
      xl_fail(c, 400, path, "%s: a tool needs a \"type\"", path);
      return;
    }
    if (strcmp(type, "function")) {
      int builtin = 0;
      for (size_t k = 0; k < sizeof builtin_prefixes / sizeof *builtin_prefixes; k++)
        if (!strncmp(type, builtin_prefixes[k], strlen(builtin_prefixes[k]))) builtin = 1;
      xl_fail(c, 400, path, "%s: the %stool \"%s\" is not supported by %s through aigw (only function tools)", path,
              builtin ? "built-in " : "", type, prov(provider));
      return;
    }
    const char *name = xl_str(t, "name");
    if (!name) {
      xl_fail(c, 400, path, "%s: a function tool needs a \"name\"", path);
      return;
    }
    cJSON *h = xl_push(c, out, xl_obj(c));
    xl_put_str(c, h, "type", "function");
    cJSON *fn = xl_put(c, h, "function", xl_obj(c));
    xl_put_str(c, fn, "name", name);
    if (xl_str(t, "description")) xl_put_str(c, fn, "description", xl_str(t, "description"));
    if (has(t, "parameters")) xl_put_dup(c, fn, "parameters", xl_get(t, "parameters"));
    const cJSON *strict = xl_get(t, "strict");
    if (cJSON_IsBool(strict)) xl_put(c, fn, "strict", cJSON_CreateBool(cJSON_IsTrue(strict)));
  }
}

static void tool_choice_to_hub(xl_ctx *c, const cJSON *tc, cJSON *hub, const char *provider) {
  if (!tc || cJSON_IsNull(tc)) return;
  if (cJSON_IsString(tc)) {
    const char *s = tc->valuestring;
    if (strcmp(s, "auto") && strcmp(s, "none") && strcmp(s, "required")) {
      xl_fail(c, 400, "tool_choice", "tool_choice: \"%s\" is not one of auto, none, required", s);
      return;
    }
    xl_put_str(c, hub, "tool_choice", s);
    return;
  }
  const char *type = xl_str(tc, "type");
  if (streq(type, "function")) {
    const char *name = xl_str(tc, "name");
    if (!name) {
      xl_fail(c, 400, "tool_choice.name", "tool_choice: a function choice needs a \"name\"");
      return;
    }
    cJSON *h = xl_put(c, hub, "tool_choice", xl_obj(c));
    xl_put_str(c, h, "type", "function");
    cJSON *fn = xl_put(c, h, "function", xl_obj(c));
    xl_put_str(c, fn, "name", name);
    return;
  }
  xl_fail(c, 400, "tool_choice", "tool_choice: type \"%s\" is not supported by %s through aigw (auto, none, required or a function)",
          type ? type : "?", prov(provider));
}

static void text_to_hub(xl_ctx *c, const cJSON *text, cJSON *hub) {
  if (!text || cJSON_IsNull(text)) return;
  if (!cJSON_IsObject(text)) {
    xl_fail(c, 400, "text", "text: must be an object");
    return;
  }
  const char *verb = xl_str(text, "verbosity");
  if (verb) xl_put_str(c, hub, "verbosity", verb);
  const cJSON *f = xl_get(text, "format");
  if (!f || cJSON_IsNull(f)) return;
  const char *type = xl_str(f, "type");
  if (streq(type, "text")) return;
  if (streq(type, "json_object")) {
    cJSON *rf = xl_put(c, hub, "response_format", xl_obj(c));
    xl_put_str(c, rf, "type", "json_object");
    return;
  }
  if (streq(type, "json_schema")) {
    if (!xl_objm(f, "schema")) {
      xl_fail(c, 400, "text.format.schema", "text.format: json_schema needs a \"schema\" object");
      return;
    }
    cJSON *rf = xl_put(c, hub, "response_format", xl_obj(c));
    xl_put_str(c, rf, "type", "json_schema");
    cJSON *js = xl_put(c, rf, "json_schema", xl_obj(c));
    xl_put_str(c, js, "name", xl_str(f, "name") ? xl_str(f, "name") : "output");
    if (xl_str(f, "description")) xl_put_str(c, js, "description", xl_str(f, "description"));
    xl_put_dup(c, js, "schema", xl_get(f, "schema"));
    const cJSON *strict = xl_get(f, "strict");
    if (cJSON_IsBool(strict)) xl_put(c, js, "strict", cJSON_CreateBool(cJSON_IsTrue(strict)));
    return;
  }
  xl_fail(c, 400, "text.format.type", "text.format: type \"%s\" is not supported (text, json_object, json_schema)",
          type ? type : "?");
}

static void copy_if(xl_ctx *c, const cJSON *from, const char *k, cJSON *to, const char *as) {
  const cJSON *v = xl_get(from, k);
  if (v && !cJSON_IsNull(v)) xl_put_dup(c, to, as ? as : k, v);
}

cJSON *xr_req_to_hub(const cJSON *req, const char *provider, xr_req_info *info, pc_err *err) {
  xl_ctx c = {err, 0};
  xr_req_info tmp;
  if (!info) info = &tmp;
  memset(info, 0, sizeof *info);
  info->store = 1;
  if (!cJSON_IsObject(req)) {
    xl_fail(&c, 400, "", "the request body must be a JSON object");
    return NULL;
  }
  /* refusals first: features that cannot be kept */
  if (is_true(req, "background")) {
    xl_fail(&c, 400, "background", "background: background responses are not supported by aigw (it keeps no running responses); send the request without background");
    return NULL;
  }
  if (has(req, "conversation")) {
    xl_fail(&c, 400, "conversation", "conversation: conversation objects are not supported by aigw; use previous_response_id or send the items");
    return NULL;
  }
  if (has(req, "prompt")) {
    xl_fail(&c, 400, "prompt", "prompt: stored prompt templates are not supported by aigw; send instructions and input");
    return NULL;
  }
  if (xl_ll(req, "top_logprobs", 0) > 0) {
    xl_fail(&c, 400, "top_logprobs", "top_logprobs: log probabilities are not supported by aigw's Responses API");
    return NULL;
  }
  if (has(req, "max_tool_calls")) {
    xl_fail(&c, 400, "max_tool_calls", "max_tool_calls: not supported by %s through aigw", prov(provider));
    return NULL;
  }
  if (streq(xl_str(req, "truncation"), "auto")) {
    xl_fail(&c, 400, "truncation", "truncation: \"auto\" is not supported (aigw does not drop context); use \"disabled\"");
    return NULL;
  }
  const cJSON *v;
  int ii = 0;
  cJSON_ArrayForEach(v, xl_arrm(req, "include")) {
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "message.output_text.logprobs")) {
      char p[32];
      snprintf(p, sizeof p, "include[%d]", ii);
      xl_fail(&c, 400, p, "%s: message.output_text.logprobs is not supported by aigw's Responses API", p);
      return NULL;
    }
    ii++;
  }
  info->stream = is_true(req, "stream");
  info->store = !cJSON_IsFalse(xl_get(req, "store"));
  info->include_encrypted = include_has(req, "reasoning.encrypted_content");
  if (xl_str(req, "previous_response_id"))
    xl_cpy(info->previous_response_id, sizeof info->previous_response_id, xl_str(req, "previous_response_id"));

  cJSON *hub = xl_obj(&c);
  if (xl_str(req, "model")) xl_put_str(&c, hub, "model", xl_str(req, "model"));
  cJSON *msgs = xl_put(&c, hub, "messages", xl_arr(&c));
  const char *instr = xl_str(req, "instructions");
  if (instr && instr[0]) {
    cJSON *m = xl_push(&c, msgs, xl_obj(&c));
    xl_put_str(&c, m, "role", "system");
    xl_put_str(&c, m, "content", instr);
  } else if (has(req, "instructions") && !cJSON_IsString(xl_get(req, "instructions"))) {
    xl_fail(&c, 400, "instructions", "instructions: must be a string");
  }
  const cJSON *input = xl_get(req, "input");
  if (cJSON_IsString(input)) {
    cJSON *m = xl_push(&c, msgs, xl_obj(&c));
    xl_put_str(&c, m, "role", "user");
    xl_put_str(&c, m, "content", input->valuestring);
  } else if (cJSON_IsArray(input)) {
    input_items(&c, input, msgs);
  } else if (input && !cJSON_IsNull(input)) {
    xl_fail(&c, 400, "input", "input: must be a string or an array of items");
  }
  tools_to_hub(&c, xl_get(req, "tools"), hub, provider);
  tool_choice_to_hub(&c, xl_get(req, "tool_choice"), hub, provider);
  text_to_hub(&c, xl_get(req, "text"), hub);
  copy_if(&c, req, "parallel_tool_calls", hub, NULL);
  copy_if(&c, req, "max_output_tokens", hub, "max_completion_tokens");
  copy_if(&c, req, "temperature", hub, NULL);
  copy_if(&c, req, "top_p", hub, NULL);
  const char *effort = xl_str(xl_objm(req, "reasoning"), "effort");
  if (effort) xl_put_str(&c, hub, "reasoning_effort", effort);
  copy_if(&c, req, "metadata", hub, NULL);
  copy_if(&c, req, "user", hub, NULL);
  copy_if(&c, req, "safety_identifier", hub, NULL);
  copy_if(&c, req, "service_tier", hub, NULL);
  copy_if(&c, req, "prompt_cache_key", hub, NULL);
  copy_if(&c, req, "prompt_cache_retention", hub, NULL);
  if (info->stream) {
    xl_put(&c, hub, "stream", cJSON_CreateTrue());
    cJSON *so = xl_put(&c, hub, "stream_options", xl_obj(&c));
    xl_put(&c, so, "include_usage", cJSON_CreateTrue());
  }
  if (c.failed) {
    cJSON_Delete(hub);
    return NULL;
  }
  return hub;
}

static int has_instructions(const cJSON *req) {
  const char *s = xl_str(req, "instructions");
  return s && s[0];
}

int xr_hub_prepend(cJSON *hub, const cJSON *req, const cJSON *stored, pc_err *err) {
  cJSON *msgs = cJSON_GetObjectItemCaseSensitive(hub, "messages");
  if (!cJSON_IsArray(msgs) || !cJSON_IsArray(stored)) {
    pc_err_set(err, 500, "previous_response_id", "previous_response_id: the stored conversation is not a messages array");
    return -1;
  }
  const cJSON *m;
  cJSON_ArrayForEach(m, stored) if (!cJSON_IsObject(m)) {
      pc_err_set(err, 500, "previous_response_id", "previous_response_id: the stored conversation holds a non-object");
      return -1;
    }
  int at = has_instructions(req) ? 1 : 0;
  if (at > cJSON_GetArraySize(msgs)) at = cJSON_GetArraySize(msgs);
  /* a new list: the first `at` messages, copies of the stored ones, the rest. Only the two
   * allocations can fail, before anything moved; moving items between arrays cannot. */
  cJSON *ins = cJSON_Duplicate(stored, 1), *list = cJSON_CreateArray();
  if (!ins || !list) {
    cJSON_Delete(ins);
    cJSON_Delete(list);
    pc_err_set(err, 500, "", "out of memory");
    return -1;
  }
  int i = 0;
  while (msgs->child && i++ < at) cJSON_AddItemToArray(list, cJSON_DetachItemViaPointer(msgs, msgs->child));
  while (ins->child) cJSON_AddItemToArray(list, cJSON_DetachItemViaPointer(ins, ins->child));
  while (msgs->child) cJSON_AddItemToArray(list, cJSON_DetachItemViaPointer(msgs, msgs->child));
  while (list->child) cJSON_AddItemToArray(msgs, cJSON_DetachItemViaPointer(list, list->child));
  cJSON_Delete(ins);
  cJSON_Delete(list);
  return 0;
}

cJSON *xr_conversation(const cJSON *req, const cJSON *hub_req, const cJSON *hub_resp, pc_err *err) {
  xl_ctx c = {err, 0};
  const cJSON *msg = xl_objm(xl_hub_choice0(hub_resp), "message");
  if (!msg) {
    xl_fail(&c, 502, "choices", "the answer has no choices[0].message");
    return NULL;
  }
  cJSON *out = xl_arr(&c);
  const cJSON *m;
  int i = 0, skip = has_instructions(req) ? 1 : 0;
  cJSON_ArrayForEach(m, xl_arrm(hub_req, "messages")) {
    if (i++ < skip) continue;
    xl_push(&c, out, cJSON_Duplicate(m, 1));
  }
  cJSON *a = xl_push(&c, out, xl_obj(&c));
  xl_put_str(&c, a, "role", "assistant");
  const cJSON *content = xl_get(msg, "content");
  if (content) xl_put_dup(&c, a, "content", content);
  else xl_put(&c, a, "content", cJSON_CreateNull());
  static const char *const keep[] = {"refusal", "tool_calls", "reasoning_content", "thinking_blocks"};
  for (size_t k = 0; k < sizeof keep / sizeof *keep; k++) copy_if(&c, msg, keep[k], a, NULL);
  if (c.failed) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}

/* ============================ non-stream responses ============================ */

/* echoed request members (a template object) */
static cJSON *echo_build(xl_ctx *c, const cJSON *req) {
  cJSON *e = xl_obj(c);
  const char *instr = xl_str(req, "instructions");
  xl_put_str(c, e, "instructions", instr);
  const cJSON *v = xl_get(req, "max_output_tokens");
  xl_put(c, e, "max_output_tokens", cJSON_IsNumber(v) ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
  v = xl_get(req, "metadata");
  xl_put(c, e, "metadata", cJSON_IsObject(v) ? cJSON_Duplicate(v, 1) : cJSON_CreateObject());
  v = xl_get(req, "parallel_tool_calls");
  xl_put(c, e, "parallel_tool_calls", cJSON_CreateBool(!cJSON_IsFalse(v)));
  xl_put_str(c, e, "previous_response_id", xl_str(req, "previous_response_id"));
  cJSON *r = xl_put(c, e, "reasoning", xl_obj(c));
  const cJSON *rq = xl_objm(req, "reasoning");
  xl_put_str(c, r, "effort", xl_str(rq, "effort"));
  xl_put_str(c, r, "summary", xl_str(rq, "summary"));
  xl_put(c, e, "store", cJSON_CreateBool(!cJSON_IsFalse(xl_get(req, "store"))));
  v = xl_get(req, "temperature");
  xl_put(c, e, "temperature", cJSON_IsNumber(v) ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
  v = xl_get(req, "text");
  if (cJSON_IsObject(v) && xl_objm(v, "format")) {
    xl_put_dup(c, e, "text", v);
  } else {
    cJSON *t = xl_put(c, e, "text", cJSON_IsObject(v) ? cJSON_Duplicate(v, 1) : xl_obj(c));
    cJSON *f = xl_put(c, t, "format", xl_obj(c));
    xl_put_str(c, f, "type", "text");
  }
  v = xl_get(req, "tool_choice");
  if (v && !cJSON_IsNull(v)) xl_put_dup(c, e, "tool_choice", v);
  else xl_put_str(c, e, "tool_choice", "auto");
  v = xl_get(req, "tools");
  xl_put(c, e, "tools", cJSON_IsArray(v) ? cJSON_Duplicate(v, 1) : cJSON_CreateArray());
  v = xl_get(req, "top_p");
  xl_put(c, e, "top_p", cJSON_IsNumber(v) ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
  xl_put_str(c, e, "truncation", xl_str(req, "truncation") ? xl_str(req, "truncation") : "disabled");
  static const char *const opt[] = {"user", "safety_identifier", "service_tier", "prompt_cache_key"};
  for (size_t k = 0; k < sizeof opt / sizeof *opt; k++)
    if (xl_str(req, opt[k])) xl_put_str(c, e, opt[k], xl_str(req, opt[k]));
  return e;
}

static cJSON *usage_build(xl_ctx *c, long long in, long long cached, long long out, long long reasoning) {
  cJSON *u = xl_obj(c);
  xl_put_num(c, u, "input_tokens", (double)in);
  cJSON *d = xl_put(c, u, "input_tokens_details", xl_obj(c));
  xl_put_num(c, d, "cached_tokens", (double)cached);
  xl_put_num(c, u, "output_tokens", (double)out);
  d = xl_put(c, u, "output_tokens_details", xl_obj(c));
  xl_put_num(c, d, "reasoning_tokens", (double)reasoning);
  xl_put_num(c, u, "total_tokens", (double)(in + out));
  return u;
}

/* status / incomplete reason for a finish_reason ("" or NULL: completed) */
static const char *finish_status(const char *fin, const char **reason) {
  *reason = NULL;
  if (streq(fin, "length")) *reason = "max_output_tokens";
  else if (streq(fin, "content_filter")) *reason = "content_filter";
  return *reason ? "incomplete" : "completed";
}

/* the response object; output and usage owned (usage may be NULL); error: code/message or NULL */
static cJSON *resp_build(xl_ctx *c, const cJSON *echo, const char *x, long long created, const char *model,
                         const char *status, const char *inc_reason, cJSON *output, cJSON *usage,
                         const char *ecode, const char *emsg) {
  cJSON *r = xl_obj(c);
  char id[200];
  snprintf(id, sizeof id, "resp_%s", x);
  xl_put_str(c, r, "id", id);
  xl_put_str(c, r, "object", "response");
  xl_put_num(c, r, "created_at", (double)created);
  xl_put_str(c, r, "status", status);
  xl_put(c, r, "background", cJSON_CreateFalse());
  if (ecode) {
    cJSON *e = xl_put(c, r, "error", xl_obj(c));
    xl_put_str(c, e, "code", ecode);
    xl_put_str(c, e, "message", emsg ? emsg : "");
  } else {
    xl_put(c, r, "error", cJSON_CreateNull());
  }
  if (inc_reason) {
    cJSON *d = xl_put(c, r, "incomplete_details", xl_obj(c));
    xl_put_str(c, d, "reason", inc_reason);
  } else {
    xl_put(c, r, "incomplete_details", cJSON_CreateNull());
  }
  const cJSON *v;
  int did_output = 0;
  cJSON_ArrayForEach(v, echo) {
    /* keep the API's member order: output and model go where OpenAI puts them */
    if (!strcmp(v->string, "metadata")) {
      xl_put_str(c, r, "model", model ? model : "");
      xl_put(c, r, "output", output);
      did_output = 1;
    }
    xl_put_dup(c, r, v->string, v);
  }
  if (!did_output) {
    xl_put_str(c, r, "model", model ? model : "");
    xl_put(c, r, "output", output);
  }
  xl_put(c, r, "usage", usage ? usage : cJSON_CreateNull());
  return r;
}

static cJSON *item_msg(xl_ctx *c, const char *id, const char *status, cJSON *content) {
  cJSON *m = xl_obj(c);
  xl_put_str(c, m, "id", id);
  xl_put_str(c, m, "type", "message");
  xl_put_str(c, m, "status", status);
  xl_put(c, m, "content", content);
  xl_put_str(c, m, "role", "assistant");
  return m;
}

static cJSON *part_text(xl_ctx *c, const char *text) {
  cJSON *p = xl_obj(c);
  xl_put_str(c, p, "type", "output_text");
  xl_put(c, p, "annotations", xl_arr(c));
  xl_put(c, p, "logprobs", xl_arr(c));
  xl_put_str(c, p, "text", text);
  return p;
}

static cJSON *part_refusal(xl_ctx *c, const char *text) {
  cJSON *p = xl_obj(c);
  xl_put_str(c, p, "type", "refusal");
  xl_put_str(c, p, "refusal", text);
  return p;
}

static cJSON *item_fc(xl_ctx *c, const char *id, const char *status, const char *args, const char *call_id,
                      const char *name) {
  cJSON *f = xl_obj(c);
  xl_put_str(c, f, "id", id);
  xl_put_str(c, f, "type", "function_call");
  xl_put_str(c, f, "status", status);
  xl_put_str(c, f, "arguments", args);
  xl_put_str(c, f, "call_id", call_id);
  xl_put_str(c, f, "name", name);
  return f;
}

/* reasoning item; summary text may be NULL/"" (no summary part); blocks borrowed, may be NULL */
static cJSON *item_reason(xl_ctx *c, const char *id, const char *summary, const cJSON *blocks, int with_enc) {
  cJSON *r = xl_obj(c);
  xl_put_str(c, r, "id", id);
  xl_put_str(c, r, "type", "reasoning");
  cJSON *s = xl_put(c, r, "summary", xl_arr(c));
  if (summary && summary[0]) {
    cJSON *p = xl_push(c, s, xl_obj(c));
    xl_put_str(c, p, "type", "summary_text");
    xl_put_str(c, p, "text", summary);
  }
  if (with_enc && cJSON_GetArraySize(blocks)) {
    char *enc = encode_blocks(blocks);
    if (!enc) xl_fail(c, 500, "", "out of memory");
    else xl_put_str(c, r, "encrypted_content", enc);
    free(enc);
  }
  return r;
}

/* text of hub content (string or text parts) into b */
static void hub_text(xl_ctx *c, const cJSON *content, pc_buf *b) {
  if (cJSON_IsString(content)) {
    add_str(c, b, content->valuestring);
    return;
  }
  const cJSON *p;
  cJSON_ArrayForEach(p, content) add_str(c, b, xl_str(p, "text"));
}

static void set_last_incomplete(cJSON *output) {
  int n = cJSON_GetArraySize(output);
  cJSON *last = n ? cJSON_GetArrayItem(output, n - 1) : NULL;
  cJSON *st = cJSON_GetObjectItemCaseSensitive(last, "status");
  if (cJSON_IsString(st)) cJSON_SetValuestring(st, "incomplete");
}

cJSON *xr_hub_resp_to_responses(const cJSON *hub, const cJSON *req, pc_err *err) {
  xl_ctx c = {err, 0};
  const cJSON *msg = xl_objm(xl_hub_choice0(hub), "message");
  if (!msg) {
    xl_fail(&c, 502, "choices", "the answer has no choices[0].message");
    return NULL;
  }
  char x[160], id[200];
  id_base(xl_str(hub, "id"), x, sizeof x);
  const char *reason;
  const char *status = finish_status(xl_str(xl_hub_choice0(hub), "finish_reason"), &reason);
  cJSON *output = xl_arr(&c);
  const char *rc = xl_str(msg, "reasoning_content");
  const cJSON *blocks = xl_arrm(msg, "thinking_blocks");
  if ((rc && rc[0]) || cJSON_GetArraySize(blocks)) {
    snprintf(id, sizeof id, "rs_%s", x);
    xl_push(&c, output, item_reason(&c, id, rc, blocks, include_has(req, "reasoning.encrypted_content")));
  }
  pc_buf text = {0};
  hub_text(&c, xl_get(msg, "content"), &text);
  const char *refusal = xl_str(msg, "refusal");
  const cJSON *calls = xl_arrm(msg, "tool_calls");
  if (text.n || (refusal && refusal[0]) || !cJSON_GetArraySize(calls)) {
    cJSON *content = xl_arr(&c);
    if (text.n || !(refusal && refusal[0])) xl_push(&c, content, part_text(&c, bstr(&text)));
    if (refusal && refusal[0]) xl_push(&c, content, part_refusal(&c, refusal));
    snprintf(id, sizeof id, "msg_%s", x);
    xl_push(&c, output, item_msg(&c, id, "completed", content));
  }
  pc_buf_free(&text);
  const cJSON *tc;
  int i = 0;
  cJSON_ArrayForEach(tc, calls) {
    const cJSON *fn = xl_objm(tc, "function");
    const char *cid = xl_str(tc, "id"), *args = xl_str(fn, "arguments");
    char gen[200];
    if (!cid || !cid[0]) {
      snprintf(gen, sizeof gen, "call_%s_%d", x, i);
      cid = gen;
    }
    snprintf(id, sizeof id, "fc_%s_%d", x, i);
    xl_push(&c, output, item_fc(&c, id, "completed", args ? args : "", cid, xl_str(fn, "name") ? xl_str(fn, "name") : ""));
    i++;
  }
  if (reason) set_last_incomplete(output);
  cJSON *usage = NULL;
  const cJSON *u = xl_objm(hub, "usage");
  if (u)
    usage = usage_build(&c, xl_ll(u, "prompt_tokens", 0), xl_ll(xl_objm(u, "prompt_tokens_details"), "cached_tokens", 0),
                        xl_ll(u, "completion_tokens", 0),
                        xl_ll(xl_objm(u, "completion_tokens_details"), "reasoning_tokens", 0));
  cJSON *echo = echo_build(&c, req);
  cJSON *r = resp_build(&c, echo, x, xl_ll(hub, "created", 0), xl_str(hub, "model"), status, reason, output, usage,
                        NULL, NULL);
  cJSON_Delete(echo);
  if (c.failed) {
    cJSON_Delete(r);
    return NULL;
  }
  return r;
}

/* ================================ streams ================================ */

enum { IT_NONE = 0, IT_MSG, IT_REASON, IT_FC };
enum { PT_NONE = 0, PT_TEXT, PT_REFUSAL };

int xr_enc_init(xr_enc *e, const xr_enc_opts *o) {
  memset(e, 0, sizeof *e);
  e->tool_index = e->max_tool = -1;
  e->created = o ? o->created : 0;
  if (o && o->model) xl_cpy(e->model, sizeof e->model, o->model);
  if (o && o->id) id_base(o->id, e->x, sizeof e->x);
  const cJSON *req = o ? o->req : NULL;
  e->include_encrypted = include_has(req, "reasoning.encrypted_content");
  xl_ctx c = {NULL, 0};
  e->echo = echo_build(&c, req);
  e->out = cJSON_CreateArray();
  e->think = cJSON_CreateArray();
  if (c.failed || !e->echo || !e->out || !e->think) return -1;
  return 0;
}

void xr_enc_free(xr_enc *e) {
  cJSON_Delete(e->echo);
  cJSON_Delete(e->out);
  cJSON_Delete(e->think);
  cJSON_Delete(e->final);
  cJSON_Delete(e->parts);
  pc_buf_free(&e->text);
  pc_buf_free(&e->refusal);
  pc_buf_free(&e->reason);
  pc_buf_free(&e->think_text);
  pc_buf_free(&e->args);
  memset(e, 0, sizeof *e);
}

/* a new event object whose first member is its type */
static cJSON *ev_new(xl_ctx *c, const char *type) {
  cJSON *ev = xl_obj(c);
  xl_put_str(c, ev, "type", type);
  return ev;
}

/* stamp sequence_number, print and send; ev owned */
static int send(xr_enc *e, xl_ctx *c, aigw_event_kind kind, cJSON *ev, pc_event_fn cb, void *ud) {
  xl_put_num(c, ev, "sequence_number", (double)e->seq++);
  if (c->failed) {
    cJSON_Delete(ev);
    return -1;
  }
  char *s = cJSON_PrintUnformatted(ev);
  const char *name = xl_str(ev, "type");
  char nm[64];
  xl_cpy(nm, sizeof nm, name);
  cJSON_Delete(ev);
  if (!s) return xl_fail(c, 500, "", "out of memory");
  int rc = cb(ud, kind, nm, s, strlen(s));
  cJSON_free(s);
  return rc;
}

/* an event on the open item: {type, item_id, output_index, ...} */
static cJSON *ev_item(xr_enc *e, xl_ctx *c, const char *type) {
  cJSON *ev = ev_new(c, type);
  xl_put_str(c, ev, "item_id", e->item_id);
  xl_put_num(c, ev, "output_index", cJSON_GetArraySize(e->out));
  return ev;
}

static cJSON *resp_now(xr_enc *e, xl_ctx *c, const char *status, const char *reason, int with_output, int with_usage,
                       const char *ecode, const char *emsg) {
  cJSON *usage = with_usage && e->have_usage
                     ? usage_build(c, e->prompt, e->cached, e->completion, e->reasoning_tok)
                     : NULL;
  cJSON *output = with_output ? cJSON_Duplicate(e->out, 1) : cJSON_CreateArray();
  return resp_build(c, e->echo, e->x, e->created, e->model, status, reason, output, usage, ecode, emsg);
}

static int enc_start(xr_enc *e, xl_ctx *c, const cJSON *k, pc_event_fn cb, void *ud) {
  if (e->started) return 0;
  e->started = 1;
  const char *id = xl_str(k, "id"), *model = xl_str(k, "model");
  if (id && id[0]) id_base(id, e->x, sizeof e->x);
  if (!e->x[0]) xl_cpy(e->x, sizeof e->x, "aigw");
  if (model && model[0]) xl_cpy(e->model, sizeof e->model, model);
  if (xl_num(k, "created", NULL)) e->created = xl_ll(k, "created", 0);
  cJSON *ev = ev_new(c, "response.created");
  xl_put(c, ev, "response", resp_now(e, c, "in_progress", NULL, 0, 0, NULL, NULL));
  int rc = send(e, c, AIGW_EV_OTHER, ev, cb, ud);
  if (rc) return rc;
  ev = ev_new(c, "response.in_progress");
  xl_put(c, ev, "response", resp_now(e, c, "in_progress", NULL, 0, 0, NULL, NULL));
  return send(e, c, AIGW_EV_OTHER, ev, cb, ud);
}

static int close_part(xr_enc *e, xl_ctx *c, pc_event_fn cb, void *ud) {
  if (!e->part) return 0;
  int kind = e->part, rc;
  e->part = PT_NONE;
  int ci = e->nparts++;
  const char *s = kind == PT_TEXT ? bstr(&e->text) : bstr(&e->refusal);
  cJSON *ev = ev_item(e, c, kind == PT_TEXT ? "response.output_text.done" : "response.refusal.done");
  xl_put_num(c, ev, "content_index", ci);
  xl_put_str(c, ev, kind == PT_TEXT ? "text" : "refusal", s);
  if (kind == PT_TEXT) xl_put(c, ev, "logprobs", xl_arr(c));
  if ((rc = send(e, c, AIGW_EV_OTHER, ev, cb, ud))) return rc;
  cJSON *part = kind == PT_TEXT ? part_text(c, s) : part_refusal(c, s);
  xl_push(c, e->parts, cJSON_Duplicate(part, 1));
  ev = ev_item(e, c, "response.content_part.done");
  xl_put_num(c, ev, "content_index", ci);
  xl_put(c, ev, "part", part);
  buf_reset(kind == PT_TEXT ? &e->text : &e->refusal);
  return send(e, c, AIGW_EV_OTHER, ev, cb, ud);
}

/* close the open item; status for message / function_call items */
static int close_item(xr_enc *e, xl_ctx *c, const char *status, pc_event_fn cb, void *ud) {
  int kind = e->open, rc;
  if (!kind) return 0;
  e->open = IT_NONE;
  cJSON *item = NULL;
  if (kind == IT_MSG) {
    if ((rc = close_part(e, c, cb, ud))) return rc;
    item = item_msg(c, e->item_id, status, e->parts);
    e->parts = NULL;
  } else if (kind == IT_REASON) {
    const char *s = bstr(&e->reason);
    if (e->summary_open) {
      cJSON *ev = ev_item(e, c, "response.reasoning_summary_text.done");
      xl_put_num(c, ev, "summary_index", 0);
      xl_put_str(c, ev, "text", s);
      if ((rc = send(e, c, AIGW_EV_OTHER, ev, cb, ud))) return rc;
      ev = ev_item(e, c, "response.reasoning_summary_part.done");
      xl_put_num(c, ev, "summary_index", 0);
      cJSON *p = xl_put(c, ev, "part", xl_obj(c));
      xl_put_str(c, p, "type", "summary_text");
      xl_put_str(c, p, "text", s);
      if ((rc = send(e, c, AIGW_EV_OTHER, ev, cb, ud))) return rc;
    }
    /* the blocks collected while this item was open */
    cJSON *mine = xl_arr(c);
    int i = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, e->think) if (i++ >= e->think_from) xl_push(c, mine, cJSON_Duplicate(b, 1));
    item = item_reason(c, e->item_id, s, mine, e->include_encrypted);
    cJSON_Delete(mine);
    buf_reset(&e->reason);
    e->summary_open = 0;
  } else {
    cJSON *ev = ev_item(e, c, "response.function_call_arguments.done");
    xl_put_str(c, ev, "name", e->name);
    xl_put_str(c, ev, "arguments", bstr(&e->args));
    if ((rc = send(e, c, AIGW_EV_OTHER, ev, cb, ud))) return rc;
    item = item_fc(c, e->item_id, status, bstr(&e->args), e->call_id, e->name);
    buf_reset(&e->args);
  }
  cJSON *ev = ev_new(c, "response.output_item.done");
  xl_put_num(c, ev, "output_index", cJSON_GetArraySize(e->out));
  xl_put(c, ev, "item", cJSON_Duplicate(item, 1));
  xl_push(c, e->out, item);
  return send(e, c, AIGW_EV_OTHER, ev, cb, ud);
}

/* close what is open and open an item of kind (item owned: the in_progress form) */
static int open_item(xr_enc *e, xl_ctx *c, int kind, cJSON *item, pc_event_fn cb, void *ud) {
  int rc = close_item(e, c, "completed", cb, ud);
  if (rc) {
    cJSON_Delete(item);
    return rc;
  }
  xl_cpy(e->item_id, sizeof e->item_id, xl_str(item, "id"));
  e->open = kind;
  cJSON *ev = ev_new(c, "response.output_item.added");
  xl_put_num(c, ev, "output_index", cJSON_GetArraySize(e->out));
  xl_put(c, ev, "item", item);
  return send(e, c, AIGW_EV_OTHER, ev, cb, ud);
}

static void item_name(xr_enc *e, char *out, size_t cap, const char *prefix, int first) {
  if (first) snprintf(out, cap, "%s_%s", prefix, e->x);
  else snprintf(out, cap, "%s_%s_%d", prefix, e->x, cJSON_GetArraySize(e->out));
}

static int ensure_msg(xr_enc *e, xl_ctx *c, pc_event_fn cb, void *ud) {
  if (e->open == IT_MSG) return 0;
  char id[200];
  item_name(e, id, sizeof id, "msg", e->nmsg++ == 0);
  cJSON_Delete(e->parts);
  e->parts = xl_arr(c);
  e->nparts = 0;
  e->part = PT_NONE;
  buf_reset(&e->text);
  buf_reset(&e->refusal);
  return open_item(e, c, IT_MSG, item_msg(c, id, "in_progress", xl_arr(c)), cb, ud);
}

static int msg_delta(xr_enc *e, xl_ctx *c, int kind, const char *s, pc_event_fn cb, void *ud) {
  int rc = ensure_msg(e, c, cb, ud);
  if (rc) return rc;
  if (e->part != kind) {
    if ((rc = close_part(e, c, cb, ud))) return rc;
    e->part = kind;
    cJSON *ev = ev_item(e, c, "response.content_part.added");
    xl_put_num(c, ev, "content_index", e->nparts);
    xl_put(c, ev, "part", kind == PT_TEXT ? part_text(c, "") : part_refusal(c, ""));
    if ((rc = send(e, c, AIGW_EV_OTHER, ev, cb, ud))) return rc;
  }
  if (add_str(c, kind == PT_TEXT ? &e->text : &e->refusal, s)) return -1;
  cJSON *ev = ev_item(e, c, kind == PT_TEXT ? "response.output_text.delta" : "response.refusal.delta");
  xl_put_num(c, ev, "content_index", e->nparts);
  xl_put_str(c, ev, "delta", s);
  if (kind == PT_TEXT) xl_put(c, ev, "logprobs", xl_arr(c));
  return send(e, c, kind == PT_TEXT ? AIGW_EV_DELTA : AIGW_EV_OTHER, ev, cb, ud);
}

static int ensure_reason(xr_enc *e, xl_ctx *c, pc_event_fn cb, void *ud) {
  if (e->open == IT_REASON) return 0;
  char id[200];
  item_name(e, id, sizeof id, "rs", e->nreason++ == 0);
  buf_reset(&e->reason);
  e->summary_open = 0;
  e->think_from = cJSON_GetArraySize(e->think);
  return open_item(e, c, IT_REASON, item_reason(c, id, NULL, NULL, 0), cb, ud);
}

static int reason_delta(xr_enc *e, xl_ctx *c, const char *s, pc_event_fn cb, void *ud) {
  int rc = ensure_reason(e, c, cb, ud);
  if (rc) return rc;
  if (!e->summary_open) {
    e->summary_open = 1;
    cJSON *ev = ev_item(e, c, "response.reasoning_summary_part.added");
    xl_put_num(c, ev, "summary_index", 0);
    cJSON *p = xl_put(c, ev, "part", xl_obj(c));
    xl_put_str(c, p, "type", "summary_text");
    xl_put_str(c, p, "text", "");
    if ((rc = send(e, c, AIGW_EV_OTHER, ev, cb, ud))) return rc;
  }
  if (add_str(c, &e->reason, s) || add_str(c, &e->think_text, s)) return -1;
  cJSON *ev = ev_item(e, c, "response.reasoning_summary_text.delta");
  xl_put_num(c, ev, "summary_index", 0);
  xl_put_str(c, ev, "delta", s);
  return send(e, c, AIGW_EV_OTHER, ev, cb, ud);
}

static int think_block(xr_enc *e, xl_ctx *c, const cJSON *b, pc_event_fn cb, void *ud) {
  const char *t = xl_str(b, "type");
  cJSON *blk = NULL;
  if (streq(t, "thinking")) {
    const char *sig = xl_str(b, "signature"), *th = xl_str(b, "thinking");
    if (!sig || !sig[0]) return 0;
    blk = xl_obj(c);
    xl_put_str(c, blk, "type", "thinking");
    xl_put_str(c, blk, "thinking", th && th[0] ? th : bstr(&e->think_text));
    xl_put_str(c, blk, "signature", sig);
    buf_reset(&e->think_text);
  } else if (streq(t, "redacted_thinking")) {
    blk = cJSON_Duplicate(b, 1);
  } else {
    return 0;
  }
  int rc = ensure_reason(e, c, cb, ud);
  if (rc) {
    cJSON_Delete(blk);
    return rc;
  }
  xl_push(c, e->think, blk);
  return c->failed ? -1 : 0;
}

static int tool_delta(xr_enc *e, xl_ctx *c, const cJSON *tc, pc_event_fn cb, void *ud) {
  double di = 0;
  xl_num(tc, "index", &di);
  if (!(di >= 0 && di < 1e6)) return xl_fail(c, 502, "", "hub stream: a tool call index out of range");
  int idx = (int)di, rc;
  const cJSON *fn = xl_objm(tc, "function");
  if (!(e->open == IT_FC && e->tool_index == idx)) {
    if (idx <= e->max_tool)
      return xl_fail(c, 502, "", "hub stream: arguments for tool call %d after another tool call started", idx);
    if ((rc = close_item(e, c, "completed", cb, ud))) return rc;
    const char *id = xl_str(tc, "id"), *name = xl_str(fn, "name");
    if (id && id[0]) xl_cpy(e->call_id, sizeof e->call_id, id);
    else snprintf(e->call_id, sizeof e->call_id, "call_%s_%d", e->x, idx);
    xl_cpy(e->name, sizeof e->name, name ? name : "");
    char iid[200];
    snprintf(iid, sizeof iid, "fc_%s_%d", e->x, idx);
    buf_reset(&e->args);
    if ((rc = open_item(e, c, IT_FC, item_fc(c, iid, "in_progress", "", e->call_id, e->name), cb, ud))) return rc;
    e->tool_index = e->max_tool = idx;
  }
  const char *args = xl_str(fn, "arguments");
  if (!args || !args[0]) return 0;
  if (add_str(c, &e->args, args)) return -1;
  cJSON *ev = ev_item(e, c, "response.function_call_arguments.delta");
  xl_put_str(c, ev, "delta", args);
  return send(e, c, AIGW_EV_TOOL_DELTA, ev, cb, ud);
}

static int enc_end(xr_enc *e, xl_ctx *c, pc_event_fn cb, void *ud) {
  const char *reason;
  const char *status = finish_status(e->finish, &reason);
  int rc;
  /* as in the non-stream conversion: a message item unless the answer is tool calls */
  if (!e->nmsg && e->max_tool < 0 && (rc = ensure_msg(e, c, cb, ud))) return rc;
  if (e->open == IT_MSG && !e->nparts && !e->part) { /* an empty message still has its text part */
    e->part = PT_TEXT;
    cJSON *ev = ev_item(e, c, "response.content_part.added");
    xl_put_num(c, ev, "content_index", 0);
    xl_put(c, ev, "part", part_text(c, ""));
    if ((rc = send(e, c, AIGW_EV_OTHER, ev, cb, ud))) return rc;
  }
  if ((rc = close_item(e, c, reason ? "incomplete" : "completed", cb, ud))) return rc;
  e->ended = 1;
  cJSON_Delete(e->final);
  e->final = resp_now(e, c, status, reason, 1, 1, NULL, NULL);
  const char *type = reason ? "response.incomplete" : "response.completed";
  cJSON *ev = ev_new(c, type);
  xl_put(c, ev, "response", cJSON_Duplicate(e->final, 1));
  return send(e, c, AIGW_EV_DONE, ev, cb, ud);
}

static int enc_fail(xr_enc *e, xl_ctx *c, const char *code, const char *msg, pc_event_fn cb, void *ud) {
  e->ended = 1;
  e->open = IT_NONE; /* an unfinished item is not part of a failed response */
  cJSON_Delete(e->final);
  e->final = resp_now(e, c, "failed", NULL, 1, 1, code, msg);
  cJSON *ev = ev_new(c, "response.failed");
  xl_put(c, ev, "response", cJSON_Duplicate(e->final, 1));
  int rc = send(e, c, AIGW_EV_DONE, ev, cb, ud);
  if (rc) return rc;
  ev = ev_new(c, "error");
  xl_put_str(c, ev, "code", code);
  xl_put_str(c, ev, "message", msg);
  xl_put(c, ev, "param", cJSON_CreateNull());
  return send(e, c, AIGW_EV_ERROR, ev, cb, ud);
}

static int enc_chunk(xr_enc *e, xl_ctx *c, const cJSON *k, pc_event_fn cb, void *ud) {
  if (!cJSON_IsObject(k)) return xl_fail(c, 502, "", "hub stream: a chunk that is not a JSON object");
  if (e->ended) return 0;
  int rc = enc_start(e, c, k, cb, ud);
  if (rc) return rc;
  const cJSON *er = xl_get(k, "error");
  if (er && !cJSON_IsNull(er)) {
    const char *msg = cJSON_IsString(er) ? er->valuestring : xl_str(er, "message");
    const char *t = xl_str(er, "type"), *code = xl_str(er, "code");
    int rl = (t && strstr(t, "rate_limit")) || (code && strstr(code, "rate_limit"));
    return enc_fail(e, c, rl ? "rate_limit_exceeded" : "server_error", msg ? msg : "upstream error", cb, ud);
  }
  const cJSON *ch = xl_hub_choice0(k), *x;
  const cJSON *d = xl_objm(ch, "delta");
  const char *rs = xl_str(d, "reasoning_content");
  if (rs && rs[0] && (rc = reason_delta(e, c, rs, cb, ud))) return rc;
  cJSON_ArrayForEach(x, xl_arrm(d, "thinking_blocks")) if ((rc = think_block(e, c, x, cb, ud))) return rc;
  const char *txt = xl_str(d, "content");
  if (txt && txt[0] && (rc = msg_delta(e, c, PT_TEXT, txt, cb, ud))) return rc;
  const char *ref = xl_str(d, "refusal");
  if (ref && ref[0] && (rc = msg_delta(e, c, PT_REFUSAL, ref, cb, ud))) return rc;
  cJSON_ArrayForEach(x, xl_arrm(d, "tool_calls")) if ((rc = tool_delta(e, c, x, cb, ud))) return rc;
  const char *fin = xl_str(ch, "finish_reason");
  if (fin && fin[0]) xl_cpy(e->finish, sizeof e->finish, fin);
  const cJSON *u = xl_objm(k, "usage");
  if (u) {
    e->have_usage = 1;
    e->prompt = xl_ll(u, "prompt_tokens", 0);
    e->completion = xl_ll(u, "completion_tokens", 0);
    e->cached = xl_ll(xl_objm(u, "prompt_tokens_details"), "cached_tokens", 0);
    e->reasoning_tok = xl_ll(xl_objm(u, "completion_tokens_details"), "reasoning_tokens", 0);
  }
  if (e->finish[0] && e->have_usage) return enc_end(e, c, cb, ud);
  return 0;
}

int xr_enc_chunk(xr_enc *e, const cJSON *chunk, pc_event_fn cb, void *ud, pc_err *err) {
  xl_ctx c = {err, 0};
  int rc = enc_chunk(e, &c, chunk, cb, ud);
  return c.failed && rc == 0 ? -1 : rc;
}

int xr_enc_finish(xr_enc *e, pc_event_fn cb, void *ud, pc_err *err) {
  xl_ctx c = {err, 0};
  if (e->ended) return 0;
  int rc = enc_start(e, &c, NULL, cb, ud);
  if (!rc && e->finish[0]) rc = enc_end(e, &c, cb, ud);
  else if (!rc) rc = enc_fail(e, &c, "server_error", "the upstream stream ended before a finish_reason", cb, ud);
  return c.failed && rc == 0 ? -1 : rc;
}

int xr_enc_error(xr_enc *e, int status, const char *message, pc_event_fn cb, void *ud, pc_err *err) {
  xl_ctx c = {err, 0};
  if (e->ended) return 0;
  int rc = enc_start(e, &c, NULL, cb, ud);
  if (!rc)
    rc = enc_fail(e, &c, status == 429 ? "rate_limit_exceeded" : "server_error", message ? message : "upstream error",
                  cb, ud);
  return c.failed && rc == 0 ? -1 : rc;
}

int xr_enc_data(xr_enc *e, const char *data, size_t n, pc_event_fn cb, void *ud, pc_err *err) {
  size_t a = 0, b = n;
  while (a < b && (data[a] == ' ' || data[a] == '\t' || data[a] == '\r' || data[a] == '\n')) a++;
  while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t' || data[b - 1] == '\r' || data[b - 1] == '\n')) b--;
  if (b - a == 6 && !memcmp(data + a, "[DONE]", 6)) return xr_enc_finish(e, cb, ud, err);
  cJSON *k = xl_parse(data + a, b - a);
  if (!k) {
    pc_err_set(err, 502, "", "hub stream: event data is not JSON");
    return -1;
  }
  int rc = xr_enc_chunk(e, k, cb, ud, err);
  cJSON_Delete(k);
  return rc;
}

const cJSON *xr_enc_response(const xr_enc *e) { return e->ended ? e->final : NULL; }

cJSON *xr_enc_hub_response(const xr_enc *e, pc_err *err) {
  xl_ctx c = {err, 0};
  if (!e->ended || !e->final) {
    xl_fail(&c, 500, "", "the stream is not over");
    return NULL;
  }
  pc_buf text = {0}, refusal = {0}, reason = {0};
  cJSON *calls = xl_arr(&c);
  const cJSON *it, *p;
  cJSON_ArrayForEach(it, e->out) {
    const char *t = xl_str(it, "type");
    if (streq(t, "message")) {
      cJSON_ArrayForEach(p, xl_arrm(it, "content")) {
        add_str(&c, &text, xl_str(p, "text"));
        add_str(&c, &refusal, xl_str(p, "refusal"));
      }
    } else if (streq(t, "reasoning")) {
      cJSON_ArrayForEach(p, xl_arrm(it, "summary")) {
        const char *s = xl_str(p, "text");
        if (s && s[0] && reason.n) add_str(&c, &reason, "\n\n");
        add_str(&c, &reason, s);
      }
    } else if (streq(t, "function_call")) {
      cJSON *tc = xl_push(&c, calls, xl_obj(&c));
      xl_put_str(&c, tc, "id", xl_str(it, "call_id"));
      xl_put_str(&c, tc, "type", "function");
      cJSON *fn = xl_put(&c, tc, "function", xl_obj(&c));
      xl_put_str(&c, fn, "name", xl_str(it, "name"));
      xl_put_str(&c, fn, "arguments", xl_str(it, "arguments"));
    }
  }
  char id[200];
  snprintf(id, sizeof id, "chatcmpl-%s", e->x);
  cJSON *h = xl_obj(&c);
  xl_put_str(&c, h, "id", id);
  xl_put_str(&c, h, "object", "chat.completion");
  xl_put_num(&c, h, "created", (double)e->created);
  xl_put_str(&c, h, "model", e->model);
  cJSON *ch = xl_push(&c, xl_put(&c, h, "choices", xl_arr(&c)), xl_obj(&c));
  xl_put_num(&c, ch, "index", 0);
  cJSON *m = xl_put(&c, ch, "message", xl_obj(&c));
  xl_put_str(&c, m, "role", "assistant");
  int ncalls = cJSON_GetArraySize(calls);
  if (text.n || !ncalls) xl_put_str(&c, m, "content", bstr(&text));
  else xl_put(&c, m, "content", cJSON_CreateNull());
  if (refusal.n) xl_put_str(&c, m, "refusal", refusal.p);
  if (ncalls) xl_put(&c, m, "tool_calls", calls);
  else cJSON_Delete(calls);
  if (reason.n) xl_put_str(&c, m, "reasoning_content", reason.p);
  if (cJSON_GetArraySize(e->think)) xl_put_dup(&c, m, "thinking_blocks", e->think);
  xl_put_str(&c, ch, "finish_reason", e->finish[0] ? e->finish : NULL);
  if (e->have_usage) {
    cJSON *u = xl_put(&c, h, "usage", xl_obj(&c));
    xl_put_num(&c, u, "prompt_tokens", (double)e->prompt);
    xl_put_num(&c, u, "completion_tokens", (double)e->completion);
    xl_put_num(&c, u, "total_tokens", (double)(e->prompt + e->completion));
    cJSON *pd = xl_put(&c, u, "prompt_tokens_details", xl_obj(&c));
    xl_put_num(&c, pd, "cached_tokens", (double)e->cached);
    cJSON *cd = xl_put(&c, u, "completion_tokens_details", xl_obj(&c));
    xl_put_num(&c, cd, "reasoning_tokens", (double)e->reasoning_tok);
  }
  pc_buf_free(&text);
  pc_buf_free(&refusal);
  pc_buf_free(&reason);
  if (c.failed) {
    cJSON_Delete(h);
    return NULL;
  }
  return h;
}

/* ================================ errors ================================ */

cJSON *xr_error_body(const pc_err *e) {
  int status = e && e->status ? e->status : 500;
  return xl_error_to_openai(status, e && e->msg[0] ? e->msg : "translation failed", e && e->param[0] ? e->param : NULL,
                            NULL);
}
