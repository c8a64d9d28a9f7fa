/* xlate_count.c - hub chat request -> OpenAI Responses input_tokens request (xlate_count.h). */
#include "xlate_count.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static const char *gstr(const cJSON *o, const char *k) {
  const cJSON *v = get(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int oom(pc_err *err) {
  pc_err_set(err, 500, "", "out of memory");
  return -1;
}

/* {"type":t,key:val} with val a string (new tree, NULL out of memory). */
static cJSON *part_str(const char *t, const char *key, const char *val) {
  cJSON *p = cJSON_CreateObject();
  if (!p || !cJSON_AddStringToObject(p, "type", t) || !cJSON_AddStringToObject(p, key, val)) {
    cJSON_Delete(p);
    return NULL;
  }
  return p;
}

/* One hub content part -> a Responses input part appended to `out`. text_type is "input_text"
 * (user, system, tool output) or "output_text" (assistant). Returns 0, or -1 with err set. */
static int add_part(cJSON *out, const cJSON *p, const char *text_type, const char *where, pc_err *err) {
  const char *t = gstr(p, "type");
  cJSON *np = NULL;
  if (cJSON_IsString(p)) {
    np = part_str(text_type, "text", p->valuestring);
  } else if (t && !strcmp(t, "text")) {
    const char *tx = gstr(p, "text");
    np = part_str(text_type, "text", tx ? tx : "");
  } else if (t && !strcmp(t, "refusal") && !strcmp(text_type, "output_text")) {
    const char *tx = gstr(p, "refusal");
    np = part_str("refusal", "refusal", tx ? tx : "");
  } else if (t && !strcmp(t, "image_url") && strcmp(text_type, "output_text")) {
    const cJSON *iu = get(p, "image_url");
    const char *url = cJSON_IsString(iu) ? iu->valuestring : gstr(iu, "url");
    const char *detail = gstr(iu, "detail");
    if (!url) {
      pc_err_set(err, 400, where, "%s: an image_url part without a url", where);
      return -1;
    }
    np = part_str("input_image", "image_url", url);
    if (np && !cJSON_AddStringToObject(np, "detail", detail ? detail : "auto")) {
      cJSON_Delete(np);
      np = NULL;
    }
  } else if (t && !strcmp(t, "file") && strcmp(text_type, "output_text")) {
    const cJSON *f = get(p, "file");
    const char *data = gstr(f, "file_data"), *url = gstr(f, "file_url"), *name = gstr(f, "filename");
    if (gstr(f, "file_id")) {
      pc_err_set(err, 400, where, "%s: file_id files cannot be counted (aigw has no file store)", where);
      return -1;
    }
    if (!data && !url) {
      pc_err_set(err, 400, where, "%s: a file part without file_data or file_url", where);
      return -1;
    }
    np = data ? part_str("input_file", "file_data", data) : part_str("input_file", "file_url", url);
    if (np && name && !cJSON_AddStringToObject(np, "filename", name)) {
      cJSON_Delete(np);
      np = NULL;
    }
  } else {
    pc_err_set(err, 400, where, "%s: content part type \"%s\" cannot be counted by openai's input_tokens API", where,
               t ? t : "(none)");
    return -1;
  }
  if (!np || !cJSON_AddItemToArray(out, np)) {
    cJSON_Delete(np);
    return oom(err);
  }
  return 0;
}

/* content (string, parts or null) -> a new array of Responses parts. */
static cJSON *parts_of(const cJSON *content, const char *text_type, const char *where, pc_err *err) {
  cJSON *arr = cJSON_CreateArray();
  if (!arr) {
    oom(err);
    return NULL;
  }
  if (cJSON_IsString(content)) {
    if (add_part(arr, content, text_type, where, err) < 0) goto fail;
  } else if (cJSON_IsArray(content)) {
    const cJSON *p;
    cJSON_ArrayForEach(p, content) if (add_part(arr, p, text_type, where, err) < 0) goto fail;
  } else if (content && !cJSON_IsNull(content)) {
    pc_err_set(err, 400, where, "%s: content must be a string or an array of parts", where);
    goto fail;
  }
  return arr;
fail:
  cJSON_Delete(arr);
  return NULL;
}

static int add_message(cJSON *input, const char *role, cJSON *parts, pc_err *err) {
  cJSON *m = cJSON_CreateObject();
  if (!m || !cJSON_AddStringToObject(m, "type", "message") || !cJSON_AddStringToObject(m, "role", role) ||
      !cJSON_AddItemToObject(m, "content", parts)) {
    cJSON_Delete(m);
    cJSON_Delete(parts);
    return oom(err);
  }
  if (!cJSON_AddItemToArray(input, m)) {
    cJSON_Delete(m);
    return oom(err);
  }
  return 0;
}

/* A tool message's content -> function_call_output "output": a string when it is only text. */
static cJSON *tool_output(const cJSON *content, const char *where, pc_err *err) {
  if (cJSON_IsString(content)) return cJSON_CreateString(content->valuestring);
  if (!content || cJSON_IsNull(content)) return cJSON_CreateString("");
  int only_text = cJSON_IsArray(content);
  size_t len = 0;
  const cJSON *p;
  cJSON_ArrayForEach(p, content) {
    const char *t = gstr(p, "type");
    if (cJSON_IsString(p)) len += strlen(p->valuestring);
    else if (t && !strcmp(t, "text")) len += gstr(p, "text") ? strlen(gstr(p, "text")) : 0;
    else only_text = 0;
  }
  if (!only_text) return parts_of(content, "input_text", where, err);
  char *s = malloc(len + 1), *o = s;
  if (!s) {
    oom(err);
    return NULL;
  }
  cJSON_ArrayForEach(p, content) {
    const char *tx = cJSON_IsString(p) ? p->valuestring : gstr(p, "text");
    size_t n = tx ? strlen(tx) : 0;
    memcpy(o, tx ? tx : "", n);
    o += n;
  }
  *o = '\0';
  cJSON *out = cJSON_CreateString(s);
  free(s);
  if (!out) oom(err);
  return out;
}

static int add_messages(cJSON *input, const cJSON *msgs, pc_err *err) {
  const cJSON *m;
  int i = 0;
  char where[64];
  cJSON_ArrayForEach(m, msgs) {
    snprintf(where, sizeof where, "messages[%d]", i++);
    const char *role = gstr(m, "role");
    if (!cJSON_IsObject(m) || !role) {
      pc_err_set(err, 400, where, "%s: a message needs a role", where);
      return -1;
    }
    const cJSON *content = get(m, "content");
    if (!strcmp(role, "system") || !strcmp(role, "developer") || !strcmp(role, "user")) {
      cJSON *parts = parts_of(content, "input_text", where, err);
      if (!parts || add_message(input, role, parts, err) < 0) return -1;
    } else if (!strcmp(role, "assistant")) {
      cJSON *parts = parts_of(content, "output_text", where, err);
      if (!parts) return -1;
      const char *refusal = gstr(m, "refusal");
      cJSON *rp = refusal ? part_str("refusal", "refusal", refusal) : NULL;
      if (refusal && (!rp || !cJSON_AddItemToArray(parts, rp))) {
        cJSON_Delete(rp);
        cJSON_Delete(parts);
        return oom(err);
      }
      if (cJSON_GetArraySize(parts) > 0) {
        if (add_message(input, "assistant", parts, err) < 0) return -1;
      } else {
        cJSON_Delete(parts);
      }
      const cJSON *tc;
      cJSON_ArrayForEach(tc, get(m, "tool_calls")) {
        const cJSON *fn = get(tc, "function");
        const char *id = gstr(tc, "id"), *name = gstr(fn, "name"), *args = gstr(fn, "arguments");
        if (!id || !name) {
          pc_err_set(err, 400, where, "%s: a tool call needs an id and a function name", where);
          return -1;
        }
        cJSON *fc = cJSON_CreateObject();
        if (!fc || !cJSON_AddStringToObject(fc, "type", "function_call") || !cJSON_AddStringToObject(fc, "call_id", id) ||
            !cJSON_AddStringToObject(fc, "name", name) || !cJSON_AddStringToObject(fc, "arguments", args ? args : "{}") ||
            !cJSON_AddItemToArray(input, fc)) {
          cJSON_Delete(fc);
          return oom(err);
        }
      }
    } else if (!strcmp(role, "tool")) {
      const char *id = gstr(m, "tool_call_id");
      if (!id) {
        pc_err_set(err, 400, where, "%s: a tool message needs tool_call_id", where);
        return -1;
      }
      cJSON *out = tool_output(content, where, err);
      if (!out) return -1;
      cJSON *fo = cJSON_CreateObject();
      if (!fo || !cJSON_AddStringToObject(fo, "type", "function_call_output") ||
          !cJSON_AddStringToObject(fo, "call_id", id) || !cJSON_AddItemToObject(fo, "output", out)) {
        cJSON_Delete(fo); /* out is never attached when this branch runs */
        cJSON_Delete(out);
        return oom(err);
      }
      if (!cJSON_AddItemToArray(input, fo)) {
        cJSON_Delete(fo);
        return oom(err);
      }
    } else {
      pc_err_set(err, 400, where, "%s: role \"%s\" cannot be counted", where, role);
      return -1;
    }
  }
  return 0;
}

static int add_tools(cJSON *req, const cJSON *tools, pc_err *err) {
  if (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) == 0) return 0;
  cJSON *out = cJSON_AddArrayToObject(req, "tools");
  if (!out) return oom(err);
  const cJSON *t;
  int i = 0;
  cJSON_ArrayForEach(t, tools) {
    const char *type = gstr(t, "type");
    const cJSON *fn = get(t, "function");
    const char *name = gstr(fn, "name");
    if (!type || strcmp(type, "function") || !name) {
      const cJSON *an = get(get(t, "anthropic"), "name");
      pc_err_set(err, 400, "tools", "tools[%d]%s%s%s: only function tools can be counted by openai's input_tokens API",
                 i, cJSON_IsString(an) ? " (\"" : "", cJSON_IsString(an) ? an->valuestring : "",
                 cJSON_IsString(an) ? "\")" : "");
      return -1;
    }
    i++;
    cJSON *nt = cJSON_CreateObject();
    if (!nt || !cJSON_AddItemToArray(out, nt)) {
      cJSON_Delete(nt);
      return oom(err);
    }
    if (!cJSON_AddStringToObject(nt, "type", "function") || !cJSON_AddStringToObject(nt, "name", name)) return oom(err);
    static const char *const keep[] = {"description", "parameters", "strict"};
    for (size_t k = 0; k < sizeof keep / sizeof *keep; k++) {
      const cJSON *v = get(fn, keep[k]);
      if (!v || cJSON_IsNull(v)) continue;
      cJSON *d = cJSON_Duplicate(v, 1);
      if (!d || !cJSON_AddItemToObject(nt, keep[k], d)) {
        cJSON_Delete(d);
        return oom(err);
      }
    }
  }
  return 0;
}

static int add_tool_choice(cJSON *req, const cJSON *tc, pc_err *err) {
  if (!tc || cJSON_IsNull(tc)) return 0;
  if (cJSON_IsString(tc)) return cJSON_AddStringToObject(req, "tool_choice", tc->valuestring) ? 0 : oom(err);
  const char *name = gstr(get(tc, "function"), "name");
  const char *type = gstr(tc, "type");
  if (!type || strcmp(type, "function") || !name) {
    pc_err_set(err, 400, "tool_choice", "tool_choice: only \"auto\", \"none\", \"required\" or a function can be counted");
    return -1;
  }
  cJSON *o = cJSON_AddObjectToObject(req, "tool_choice");
  if (!o || !cJSON_AddStringToObject(o, "type", "function") || !cJSON_AddStringToObject(o, "name", name)) return oom(err);
  return 0;
}

static int add_text_format(cJSON *req, const cJSON *rf, pc_err *err) {
  const char *t = gstr(rf, "type");
  if (!t || !strcmp(t, "text")) return 0;
  cJSON *text = cJSON_AddObjectToObject(req, "text");
  cJSON *fmt = text ? cJSON_AddObjectToObject(text, "format") : NULL;
  if (!fmt) return oom(err);
  if (!strcmp(t, "json_object")) return cJSON_AddStringToObject(fmt, "type", "json_object") ? 0 : oom(err);
  if (strcmp(t, "json_schema")) {
    pc_err_set(err, 400, "response_format", "response_format: type \"%s\" cannot be counted", t);
    return -1;
  }
  const cJSON *js = get(rf, "json_schema");
  const char *name = gstr(js, "name");
  if (!cJSON_AddStringToObject(fmt, "type", "json_schema") || !cJSON_AddStringToObject(fmt, "name", name ? name : "output"))
    return oom(err);
  static const char *const keep[] = {"schema", "strict", "description"};
  for (size_t k = 0; k < sizeof keep / sizeof *keep; k++) {
    const cJSON *v = get(js, keep[k]);
    if (!v || cJSON_IsNull(v)) continue;
    cJSON *d = cJSON_Duplicate(v, 1);
    if (!d || !cJSON_AddItemToObject(fmt, keep[k], d)) {
      cJSON_Delete(d);
      return oom(err);
    }
  }
  return 0;
}

cJSON *xc_hub_to_input_tokens(const cJSON *hub, const char *model, pc_err *err) {
  if (!cJSON_IsObject(hub)) {
    pc_err_set(err, 400, "", "the request must be a JSON object");
    return NULL;
  }
  if (!model || !*model) model = gstr(hub, "model");
  cJSON *req = cJSON_CreateObject();
  if (!req) {
    oom(err);
    return NULL;
  }
  if (model && !cJSON_AddStringToObject(req, "model", model)) goto nomem;
  cJSON *input = cJSON_AddArrayToObject(req, "input");
  if (!input) goto nomem;
  const cJSON *msgs = get(hub, "messages");
  if (msgs && !cJSON_IsArray(msgs)) {
    pc_err_set(err, 400, "messages", "messages must be an array");
    goto fail;
  }
  if (add_messages(input, msgs, err) < 0 || add_tools(req, get(hub, "tools"), err) < 0 ||
      add_tool_choice(req, get(hub, "tool_choice"), err) < 0 || add_text_format(req, get(hub, "response_format"), err) < 0)
    goto fail;
  const cJSON *ptc = get(hub, "parallel_tool_calls");
  if (cJSON_IsBool(ptc) && !cJSON_AddBoolToObject(req, "parallel_tool_calls", cJSON_IsTrue(ptc))) goto nomem;
  return req;
nomem:
  oom(err);
fail:
  cJSON_Delete(req);
  return NULL;
}
