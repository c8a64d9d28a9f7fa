/* xlate_anth_req.c - requests: Anthropic Messages <-> hub (docs/translation.md, xlate.h). */
#include "xlate_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATHN 128

/* ======================= Anthropic -> hub ======================= */

/* cache_control (and other ext members kept on a part) copied from an Anthropic block */
static void keep_cache(xl_ctx *c, cJSON *dst, const cJSON *blk) {
  const cJSON *cc = xl_get(blk, "cache_control");
  if (cc && !cJSON_IsNull(cc)) xl_put_dup(c, dst, "cache_control", cc);
}

/* Anthropic text / image / document block -> hub content part. NULL + failure otherwise. */
static cJSON *anth_part_to_hub(xl_ctx *c, const cJSON *b, const char *path) {
  const char *type = xl_str(b, "type");
  if (!type) {
    xl_fail(c, 400, path, "%s: content block without a type", path);
    return NULL;
  }
  cJSON *p = xl_obj(c);
  if (!p) return NULL;
  if (!strcmp(type, "text")) {
    const char *t = xl_str(b, "text");
    if (!t) goto bad_field;
    xl_put_str(c, p, "type", "text");
    xl_put_str(c, p, "text", t);
    const cJSON *cit = xl_get(b, "citations");
    if (cit && !cJSON_IsNull(cit)) xl_put_dup(c, p, "citations", cit);
  } else if (!strcmp(type, "image")) {
    const cJSON *src = xl_objm(b, "source");
    const char *st = xl_str(src, "type");
    pc_buf url = {0};
    if (st && !strcmp(st, "base64") && xl_str(src, "media_type") && xl_str(src, "data")) {
      if (pc_buf_printf(&url, "data:%s;base64,%s", xl_str(src, "media_type"), xl_str(src, "data")) < 0) {
        pc_buf_free(&url);
        cJSON_Delete(p);
        xl_fail(c, 500, "", "out of memory while translating");
        return NULL;
      }
    } else if (st && !strcmp(st, "url") && xl_str(src, "url")) {
      if (pc_buf_adds(&url, xl_str(src, "url")) < 0) {
        pc_buf_free(&url);
        cJSON_Delete(p);
        xl_fail(c, 500, "", "out of memory while translating");
        return NULL;
      }
    } else {
      cJSON_Delete(p);
      xl_fail(c, 400, path, "%s.source: image source type \"%s\" cannot be translated from anthropic", path,
              st ? st : "");
      return NULL;
    }
    xl_put_str(c, p, "type", "image_url");
    cJSON *iu = xl_put(c, p, "image_url", xl_obj(c));
    xl_put_str(c, iu, "url", url.p);
    pc_buf_free(&url);
  } else if (!strcmp(type, "document")) {
    const cJSON *src = xl_objm(b, "source");
    const char *st = xl_str(src, "type");
    xl_put_str(c, p, "type", "file");
    cJSON *f = xl_put(c, p, "file", xl_obj(c));
    pc_buf url = {0};
    int ok = 1;
    if (st && !strcmp(st, "base64") && xl_str(src, "data")) {
      const char *mt = xl_str(src, "media_type");
      ok = pc_buf_printf(&url, "data:%s;base64,%s", mt ? mt : "application/pdf", xl_str(src, "data")) == 0;
      if (ok) xl_put_str(c, f, "file_data", url.p);
    } else if (st && !strcmp(st, "text") && xl_str(src, "data")) {
      const char *d = xl_str(src, "data");
      char *b64 = xl_b64_encode((const unsigned char *)d, strlen(d));
      ok = b64 && pc_buf_printf(&url, "data:text/plain;base64,%s", b64) == 0;
      free(b64);
      if (ok) xl_put_str(c, f, "file_data", url.p);
    } else if (st && !strcmp(st, "url") && xl_str(src, "url")) {
      xl_put_str(c, f, "file_url", xl_str(src, "url"));
    } else {
      cJSON_Delete(p);
      xl_fail(c, 400, path, "%s.source: document source type \"%s\" cannot be translated from anthropic", path,
              st ? st : "");
      return NULL;
    }
    pc_buf_free(&url);
    if (!ok) {
      cJSON_Delete(p);
      xl_fail(c, 500, "", "out of memory while translating");
      return NULL;
    }
    if (xl_str(b, "title")) xl_put_str(c, f, "filename", xl_str(b, "title"));
    if (xl_str(b, "context")) xl_put_str(c, p, "context", xl_str(b, "context"));
    const cJSON *cit = xl_get(b, "citations");
    if (cit && !cJSON_IsNull(cit)) xl_put_dup(c, p, "citations", cit);
  } else {
    cJSON_Delete(p);
    xl_fail(c, 400, path, "%s: content block type \"%s\" cannot be translated from anthropic", path, type);
    return NULL;
  }
  keep_cache(c, p, b);
  return p;
bad_field:
  cJSON_Delete(p);
  xl_fail(c, 400, path, "%s: malformed %s block", path, type);
  return NULL;
}

/* tool_result block -> hub tool message */
static cJSON *anth_tool_result_to_hub(xl_ctx *c, const cJSON *b, const char *path) {
  const char *id = xl_str(b, "tool_use_id");
  if (!id) {
    xl_fail(c, 400, path, "%s.tool_use_id: missing", path);
    return NULL;
  }
  cJSON *m = xl_obj(c);
  xl_put_str(c, m, "role", "tool");
  xl_put_str(c, m, "tool_call_id", id);
  const cJSON *ct = xl_get(b, "content");
  if (cJSON_IsString(ct)) {
    xl_put_str(c, m, "content", ct->valuestring);
  } else if (cJSON_IsArray(ct)) {
    cJSON *parts = xl_put(c, m, "content", xl_arr(c));
    int j = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, ct) {
      char p2[PATHN];
      xl_subpath(p2, sizeof p2, path, "content", j++);
      xl_push(c, parts, anth_part_to_hub(c, x, p2));
      if (c->failed) break;
    }
  } else if (!ct || cJSON_IsNull(ct)) {
    xl_put_str(c, m, "content", "");
  } else {
    xl_fail(c, 400, path, "%s.content: must be a string or an array", path);
  }
  if (cJSON_IsTrue(xl_get(b, "is_error"))) xl_put(c, m, "is_error", cJSON_CreateTrue());
  keep_cache(c, m, b);
  if (c->failed) {
    cJSON_Delete(m);
    return NULL;
  }
  return m;
}

static int flush_user(xl_ctx *c, cJSON *msgs, cJSON **parts) {
  if (!*parts) return 0;
  cJSON *m = xl_push(c, msgs, xl_obj(c));
  xl_put_str(c, m, "role", "user");
  xl_put(c, m, "content", *parts);
  *parts = NULL;
  return c->failed ? -1 : 0;
}

static int anth_user_to_hub(xl_ctx *c, const cJSON *content, cJSON *msgs, int mi) {
  char path[PATHN];
  if (cJSON_IsString(content)) {
    cJSON *m = xl_push(c, msgs, xl_obj(c));
    xl_put_str(c, m, "role", "user");
    xl_put_str(c, m, "content", content->valuestring);
    return c->failed ? -1 : 0;
  }
  cJSON *parts = NULL;
  int j = 0;
  const cJSON *b;
  cJSON_ArrayForEach(b, content) {
    snprintf(path, sizeof path, "messages[%d].content[%d]", mi, j++);
    const char *type = xl_str(b, "type");
    if (type && !strcmp(type, "tool_result")) {
      if (flush_user(c, msgs, &parts) < 0) break;
      xl_push(c, msgs, anth_tool_result_to_hub(c, b, path));
    } else {
      if (!parts && !(parts = xl_arr(c))) break;
      xl_push(c, parts, anth_part_to_hub(c, b, path));
    }
    if (c->failed) break;
  }
  if (c->failed) {
    cJSON_Delete(parts);
    return -1;
  }
  return flush_user(c, msgs, &parts);
}

static int anth_assistant_to_hub(xl_ctx *c, const cJSON *content, cJSON *msgs, int mi) {
  char path[PATHN];
  cJSON *m = xl_push(c, msgs, xl_obj(c));
  xl_put_str(c, m, "role", "assistant");
  if (cJSON_IsString(content)) {
    xl_put_str(c, m, "content", content->valuestring);
    return c->failed ? -1 : 0;
  }
  cJSON *texts = xl_arr(c), *calls = xl_arr(c), *thinks = xl_arr(c);
  pc_buf reason = {0}, text = {0};
  int rich_text = 0, has_reason = 0, j = 0;
  const cJSON *b;
  cJSON_ArrayForEach(b, content) {
    snprintf(path, sizeof path, "messages[%d].content[%d]", mi, j++);
    const char *type = xl_str(b, "type");
    if (!type) {
      xl_fail(c, 400, path, "%s: content block without a type", path);
    } else if (!strcmp(type, "text")) {
      cJSON *p = xl_push(c, texts, anth_part_to_hub(c, b, path));
      if (p && cJSON_GetArraySize(p) > 2) rich_text = 1; /* cache_control / citations */
      if (p && pc_buf_adds(&text, xl_str(b, "text")) < 0) xl_fail(c, 500, "", "out of memory while translating");
    } else if (!strcmp(type, "tool_use")) {
      const char *id = xl_str(b, "id"), *name = xl_str(b, "name");
      const cJSON *in = xl_get(b, "input");
      if (!id || !name) {
        xl_fail(c, 400, path, "%s: tool_use needs id and name", path);
        break;
      }
      cJSON *tc = xl_push(c, calls, xl_obj(c));
      xl_put_str(c, tc, "id", id);
      xl_put_str(c, tc, "type", "function");
      cJSON *fn = xl_put(c, tc, "function", xl_obj(c));
      xl_put_str(c, fn, "name", name);
      char *args = in ? cJSON_PrintUnformatted(in) : NULL;
      xl_put_str(c, fn, "arguments", args ? args : "{}");
      if (in && !args) xl_fail(c, 500, "", "out of memory while translating");
      cJSON_free(args);
      if (tc) keep_cache(c, tc, b);
    } else if (!strcmp(type, "thinking")) {
      const char *t = xl_str(b, "thinking");
      if (!t) {
        xl_fail(c, 400, path, "%s: thinking block without thinking", path);
        break;
      }
      has_reason = 1;
      if (pc_buf_adds(&reason, t) < 0) xl_fail(c, 500, "", "out of memory while translating");
      xl_push(c, thinks, cJSON_Duplicate(b, 1));
    } else if (!strcmp(type, "redacted_thinking")) {
      xl_push(c, thinks, cJSON_Duplicate(b, 1));
    } else {
      xl_fail(c, 400, path, "%s: content block type \"%s\" in an assistant turn cannot be translated from anthropic",
              path, type);
    }
    if (c->failed) break;
  }
  if (!c->failed) {
    int nt = cJSON_GetArraySize(texts), nc = cJSON_GetArraySize(calls);
    if (rich_text) {
      xl_put(c, m, "content", texts);
      texts = NULL;
    } else if (nt) {
      xl_put_str(c, m, "content", text.p ? text.p : "");
    } else {
      xl_put(c, m, "content", nc ? cJSON_CreateNull() : cJSON_CreateString(""));
    }
    if (nc) {
      xl_put(c, m, "tool_calls", calls);
      calls = NULL;
    }
    if (has_reason) xl_put_str(c, m, "reasoning_content", reason.p ? reason.p : "");
    if (cJSON_GetArraySize(thinks)) {
      xl_put(c, m, "thinking_blocks", thinks);
      thinks = NULL;
    }
  }
  cJSON_Delete(texts);
  cJSON_Delete(calls);
  cJSON_Delete(thinks);
  pc_buf_free(&reason);
  pc_buf_free(&text);
  return c->failed ? -1 : 0;
}

static const char *const tool_known[] = {"name", "description", "input_schema", "cache_control", "strict", "type"};

static int anth_tools_to_hub(xl_ctx *c, const cJSON *tools, cJSON *h) {
  cJSON *out = xl_put(c, h, "tools", xl_arr(c));
  int i = 0;
  const cJSON *t;
  cJSON_ArrayForEach(t, tools) {
    char path[PATHN];
    snprintf(path, sizeof path, "tools[%d]", i++);
    if (!cJSON_IsObject(t)) return xl_fail(c, 400, path, "%s: must be an object", path);
    const char *type = xl_str(t, "type");
    int plain = !type || !strcmp(type, "custom");
    const cJSON *m;
    cJSON_ArrayForEach(m, t) {
      int known = 0;
      for (size_t k = 0; k < sizeof tool_known / sizeof tool_known[0]; k++)
        if (!strcmp(m->string, tool_known[k])) known = 1;
      if (!known) plain = 0;
    }
    if (plain && !xl_str(t, "name")) return xl_fail(c, 400, path, "%s.name: missing", path);
    cJSON *o = xl_push(c, out, xl_obj(c));
    if (!plain) {
      xl_put_str(c, o, "type", "anthropic");
      xl_put_dup(c, o, "anthropic", t);
      continue;
    }
    xl_put_str(c, o, "type", "function");
    cJSON *fn = xl_put(c, o, "function", xl_obj(c));
    xl_put_str(c, fn, "name", xl_str(t, "name"));
    if (xl_str(t, "description")) xl_put_str(c, fn, "description", xl_str(t, "description"));
    if (xl_get(t, "input_schema")) xl_put_dup(c, fn, "parameters", xl_get(t, "input_schema"));
    if (cJSON_IsBool(xl_get(t, "strict"))) xl_put_dup(c, fn, "strict", xl_get(t, "strict"));
    keep_cache(c, o, t);
  }
  return c->failed ? -1 : 0;
}

static int anth_tool_choice_to_hub(xl_ctx *c, const cJSON *tc, cJSON *h) {
  const char *type = xl_str(tc, "type");
  if (!type) return xl_fail(c, 400, "tool_choice", "tool_choice: must be an object with a type");
  if (!strcmp(type, "auto")) xl_put_str(c, h, "tool_choice", "auto");
  else if (!strcmp(type, "any")) xl_put_str(c, h, "tool_choice", "required");
  else if (!strcmp(type, "none")) xl_put_str(c, h, "tool_choice", "none");
  else if (!strcmp(type, "tool")) {
    if (!xl_str(tc, "name")) return xl_fail(c, 400, "tool_choice.name", "tool_choice.name: missing");
    cJSON *o = xl_put(c, h, "tool_choice", xl_obj(c));
    xl_put_str(c, o, "type", "function");
    cJSON *fn = xl_put(c, o, "function", xl_obj(c));
    xl_put_str(c, fn, "name", xl_str(tc, "name"));
  } else
    return xl_fail(c, 400, "tool_choice.type", "tool_choice.type: \"%s\" cannot be translated from anthropic", type);
  if (cJSON_IsTrue(xl_get(tc, "disable_parallel_tool_use"))) xl_put(c, h, "parallel_tool_calls", cJSON_CreateFalse());
  return c->failed ? -1 : 0;
}

static int anth_system_to_hub(xl_ctx *c, const cJSON *sys, cJSON *msgs) {
  if (cJSON_IsNull(sys)) return 0;
  cJSON *m = xl_push(c, msgs, xl_obj(c));
  xl_put_str(c, m, "role", "system");
  if (cJSON_IsString(sys)) {
    xl_put_str(c, m, "content", sys->valuestring);
    return c->failed ? -1 : 0;
  }
  if (!cJSON_IsArray(sys)) return xl_fail(c, 400, "system", "system: must be a string or an array of text blocks");
  cJSON *parts = xl_put(c, m, "content", xl_arr(c));
  int i = 0;
  const cJSON *b;
  cJSON_ArrayForEach(b, sys) {
    char path[PATHN];
    snprintf(path, sizeof path, "system[%d]", i++);
    const char *type = xl_str(b, "type");
    if (!type || strcmp(type, "text") != 0) return xl_fail(c, 400, path, "%s: system blocks must be text", path);
    xl_push(c, parts, anth_part_to_hub(c, b, path));
    if (c->failed) return -1;
  }
  return 0;
}

cJSON *xl_anth_req_to_hub(const cJSON *a, pc_err *err) {
  xl_ctx c = {err, 0};
  if (!cJSON_IsObject(a)) {
    xl_fail(&c, 400, "", "the request body must be a JSON object");
    return NULL;
  }
  const cJSON *msgs_in = xl_get(a, "messages");
  if (!cJSON_IsArray(msgs_in)) {
    xl_fail(&c, 400, "messages", "messages: must be an array");
    return NULL;
  }
  cJSON *h = xl_obj(&c), *extra = NULL;
  cJSON *msgs = cJSON_CreateArray();
  const cJSON *sys = xl_get(a, "system");
  if (sys) anth_system_to_hub(&c, sys, msgs);
  int i = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, msgs_in) {
    if (c.failed) break;
    char path[PATHN];
    snprintf(path, sizeof path, "messages[%d]", i);
    const char *role = xl_str(m, "role");
    const cJSON *content = xl_get(m, "content");
    if (!cJSON_IsString(content) && !cJSON_IsArray(content)) {
      xl_fail(&c, 400, path, "%s.content: must be a string or an array", path);
      break;
    }
    if (role && !strcmp(role, "user")) anth_user_to_hub(&c, content, msgs, i);
    else if (role && !strcmp(role, "assistant")) anth_assistant_to_hub(&c, content, msgs, i);
    else xl_fail(&c, 400, path, "%s.role: must be user or assistant", path);
    i++;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, a) {
    if (c.failed) break;
    const char *k = it->string;
    if (!strcmp(k, "messages") || !strcmp(k, "system")) continue;
    if (!strcmp(k, "model") || !strcmp(k, "temperature") || !strcmp(k, "top_p") || !strcmp(k, "top_k") ||
        !strcmp(k, "max_tokens") || !strcmp(k, "thinking")) {
      xl_put_dup(&c, h, k, it);
    } else if (!strcmp(k, "stream")) {
      xl_put_dup(&c, h, k, it);
      if (cJSON_IsTrue(it)) {
        cJSON *so = xl_put(&c, h, "stream_options", xl_obj(&c));
        xl_put(&c, so, "include_usage", cJSON_CreateTrue());
      }
    } else if (!strcmp(k, "stop_sequences")) {
      if (!cJSON_IsNull(it)) xl_put_dup(&c, h, "stop", it);
    } else if (!strcmp(k, "metadata")) {
      const char *u = xl_str(it, "user_id");
      if (u) xl_put_str(&c, h, "user", u);
    } else if (!strcmp(k, "tools")) {
      if (cJSON_IsArray(it)) anth_tools_to_hub(&c, it, h);
      else if (!cJSON_IsNull(it)) xl_fail(&c, 400, "tools", "tools: must be an array");
    } else if (!strcmp(k, "tool_choice")) {
      if (!cJSON_IsNull(it)) anth_tool_choice_to_hub(&c, it, h);
    } else if (!strcmp(k, "output_config") && cJSON_IsObject(it)) {
      const cJSON *f = xl_objm(it, "format");
      cJSON *rest = cJSON_Duplicate(it, 1);
      if (!rest) {
        xl_fail(&c, 500, "", "out of memory while translating");
        break;
      }
      cJSON_DeleteItemFromObjectCaseSensitive(rest, "format");
      if (f) {
        const char *ft = xl_str(f, "type");
        if (!ft || strcmp(ft, "json_schema") != 0) {
          cJSON_Delete(rest);
          xl_fail(&c, 400, "output_config.format.type", "output_config.format.type: only json_schema can be translated from anthropic");
          break;
        }
        cJSON *rf = xl_put(&c, h, "response_format", xl_obj(&c));
        xl_put_str(&c, rf, "type", "json_schema");
        cJSON *js = xl_put(&c, rf, "json_schema", xl_obj(&c));
        xl_put_str(&c, js, "name", "output");
        if (xl_get(f, "schema")) xl_put_dup(&c, js, "schema", xl_get(f, "schema"));
        xl_put(&c, js, "strict", cJSON_CreateTrue());
      }
      if (cJSON_GetArraySize(rest)) {
        if (!extra) extra = xl_put(&c, h, "x_anthropic", xl_obj(&c));
        xl_put(&c, extra, k, rest);
      } else {
        cJSON_Delete(rest);
      }
    } else {
      if (!extra) extra = xl_put(&c, h, "x_anthropic", xl_obj(&c));
      xl_put_dup(&c, extra, k, it);
    }
  }
  /* messages go in last so that the hub object reads model, ..., messages */
  xl_put(&c, h, "messages", msgs);
  if (c.failed) {
    cJSON_Delete(h);
    return NULL;
  }
  return h;
}

/* ======================= hub -> Anthropic ======================= */

/* tool ids towards Anthropic: [A-Za-z0-9_-]+ */
static cJSON *anth_tool_id(const char *id) {
  size_t n = strlen(id);
  char *s = malloc(n + 2);
  if (!s) return NULL;
  for (size_t i = 0; i < n; i++) {
    char ch = id[i];
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
    s[i] = ok ? ch : '_';
  }
  if (!n) s[n++] = '_';
  s[n] = 0;
  cJSON *r = cJSON_CreateString(s);
  free(s);
  return r;
}

/* hub content part -> Anthropic block (text, image_url, file; refusal for assistants) */
static cJSON *hub_part_to_anth(xl_ctx *c, const cJSON *p, const char *path) {
  const char *type = xl_str(p, "type");
  if (!type) {
    xl_fail(c, 400, path, "%s.type: missing", path);
    return NULL;
  }
  cJSON *b = xl_obj(c);
  if (!b) return NULL;
  if (!strcmp(type, "text") || !strcmp(type, "refusal")) {
    const char *t = xl_str(p, !strcmp(type, "text") ? "text" : "refusal");
    if (!t) {
      cJSON_Delete(b);
      xl_fail(c, 400, path, "%s: %s part without text", path, type);
      return NULL;
    }
    xl_put_str(c, b, "type", "text");
    xl_put_str(c, b, "text", t);
    const cJSON *cit = xl_get(p, "citations");
    if (cit && !cJSON_IsNull(cit)) xl_put_dup(c, b, "citations", cit);
  } else if (!strcmp(type, "image_url")) {
    const cJSON *iu = xl_get(p, "image_url");
    const char *url = cJSON_IsString(iu) ? iu->valuestring : xl_str(iu, "url");
    char mime[128];
    const char *b64;
    if (!url) {
      cJSON_Delete(b);
      xl_fail(c, 400, path, "%s.image_url.url: missing", path);
      return NULL;
    }
    xl_put_str(c, b, "type", "image");
    cJSON *src = xl_put(c, b, "source", xl_obj(c));
    if (xl_data_url(url, mime, sizeof mime, &b64)) {
      xl_put_str(c, src, "type", "base64");
      xl_put_str(c, src, "media_type", mime);
      xl_put_str(c, src, "data", b64);
    } else if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8)) {
      xl_put_str(c, src, "type", "url");
      xl_put_str(c, src, "url", url);
    } else {
      cJSON_Delete(b);
      xl_fail(c, 400, path, "%s.image_url.url: only base64 data URLs and http(s) URLs are supported by anthropic", path);
      return NULL;
    }
  } else if (!strcmp(type, "file")) {
    const cJSON *f = xl_objm(p, "file");
    const char *fd = xl_str(f, "file_data"), *fu = xl_str(f, "file_url");
    char mime[128];
    const char *b64;
    xl_put_str(c, b, "type", "document");
    cJSON *src = xl_put(c, b, "source", xl_obj(c));
    if (fd && xl_data_url(fd, mime, sizeof mime, &b64)) {
      if (!strcmp(mime, "application/pdf")) {
        xl_put_str(c, src, "type", "base64");
        xl_put_str(c, src, "media_type", mime);
        xl_put_str(c, src, "data", b64);
      } else if (!strcmp(mime, "text/plain")) {
        size_t n;
        unsigned char *txt = xl_b64_decode(b64, strlen(b64), &n);
        if (!txt || memchr(txt, 0, n)) {
          free(txt);
          cJSON_Delete(b);
          xl_fail(c, 400, path, "%s.file.file_data: not valid base64 text", path);
          return NULL;
        }
        xl_put_str(c, src, "type", "text");
        xl_put_str(c, src, "media_type", "text/plain");
        xl_put_str(c, src, "data", (const char *)txt);
        free(txt);
      } else {
        cJSON_Delete(b);
        xl_fail(c, 400, path, "%s.file.file_data: file type \"%s\" is not supported by anthropic (PDF and plain text are)",
                path, mime);
        return NULL;
      }
    } else if (fu) {
      xl_put_str(c, src, "type", "url");
      xl_put_str(c, src, "url", fu);
    } else {
      cJSON_Delete(b);
      xl_fail(c, 400, path, "%s.file: only base64 file_data is supported by anthropic (no file_id)", path);
      return NULL;
    }
    if (xl_str(f, "filename")) xl_put_str(c, b, "title", xl_str(f, "filename"));
    if (xl_str(p, "context")) xl_put_str(c, b, "context", xl_str(p, "context"));
    const cJSON *cit = xl_get(p, "citations");
    if (cit && !cJSON_IsNull(cit)) xl_put_dup(c, b, "citations", cit);
  } else {
    cJSON_Delete(b);
    xl_fail(c, 400, path, "%s.type: content part \"%s\" is not supported by anthropic", path, type);
    return NULL;
  }
  keep_cache(c, b, p);
  return b;
}

/* Build state for the Anthropic messages array: consecutive same-role turns are merged. */
typedef struct turns {
  cJSON *arr;
  cJSON *last; /* last message */
  const char *last_role;
} turns;

/* The block array of a (possibly new) turn of this role. */
static cJSON *turn_blocks(xl_ctx *c, turns *t, const char *role) {
  if (t->last && !strcmp(t->last_role, role)) {
    cJSON *ct = cJSON_GetObjectItemCaseSensitive(t->last, "content");
    if (cJSON_IsString(ct)) {
      cJSON *arr = xl_arr(c), *tb = xl_push(c, arr, xl_obj(c));
      xl_put_str(c, tb, "type", "text");
      xl_put_str(c, tb, "text", ct->valuestring);
      if (c->failed || !cJSON_ReplaceItemInObjectCaseSensitive(t->last, "content", arr)) {
        if (!c->failed) cJSON_Delete(arr);
        xl_fail(c, 500, "", "out of memory while translating");
        return NULL;
      }
      return arr;
    }
    return ct;
  }
  cJSON *m = xl_push(c, t->arr, xl_obj(c));
  xl_put_str(c, m, "role", role);
  cJSON *arr = xl_put(c, m, "content", xl_arr(c));
  t->last = m;
  t->last_role = !strcmp(role, "user") ? "user" : "assistant";
  return arr;
}

static void turn_string(xl_ctx *c, turns *t, const char *role, const char *s) {
  if (t->last && !strcmp(t->last_role, role)) {
    cJSON *arr = turn_blocks(c, t, role), *tb = xl_push(c, arr, xl_obj(c));
    xl_put_str(c, tb, "type", "text");
    xl_put_str(c, tb, "text", s);
    return;
  }
  cJSON *m = xl_push(c, t->arr, xl_obj(c));
  xl_put_str(c, m, "role", role);
  xl_put_str(c, m, "content", s);
  t->last = m;
  t->last_role = !strcmp(role, "user") ? "user" : "assistant";
}

/* text of a system/developer message (string or text parts) */
static int hub_text_of(xl_ctx *c, const cJSON *content, pc_buf *out, const char *path) {
  if (cJSON_IsString(content)) return pc_buf_adds(out, content->valuestring) < 0 ? xl_fail(c, 500, "", "out of memory") : 0;
  if (!cJSON_IsArray(content)) return xl_fail(c, 400, path, "%s.content: must be a string or an array", path);
  const cJSON *p;
  cJSON_ArrayForEach(p, content) {
    const char *t = xl_str(p, "text");
    if (!t) return xl_fail(c, 400, path, "%s.content: system messages take text parts only", path);
    if (pc_buf_adds(out, t) < 0) return xl_fail(c, 500, "", "out of memory");
  }
  return 0;
}

static int hub_blocks(xl_ctx *c, const cJSON *content, cJSON *dst, const char *path) {
  int j = 0;
  const cJSON *p;
  cJSON_ArrayForEach(p, content) {
    char p2[PATHN];
    xl_subpath(p2, sizeof p2, path, "content", j++);
    xl_push(c, dst, hub_part_to_anth(c, p, p2));
    if (c->failed) return -1;
  }
  return 0;
}

static int hub_tool_to_anth(xl_ctx *c, turns *t, const cJSON *m, const char *path) {
  const char *id = xl_str(m, "tool_call_id");
  if (!id) return xl_fail(c, 400, path, "%s.tool_call_id: missing", path);
  cJSON *blocks = turn_blocks(c, t, "user");
  if (!blocks) return -1;
  cJSON *r = xl_obj(c);
  if (!r) return -1;
  xl_put_str(c, r, "type", "tool_result");
  xl_put(c, r, "tool_use_id", anth_tool_id(id));
  const cJSON *ct = xl_get(m, "content");
  if (cJSON_IsString(ct)) {
    xl_put_str(c, r, "content", ct->valuestring);
  } else if (cJSON_IsArray(ct)) {
    cJSON *arr = xl_put(c, r, "content", xl_arr(c));
    hub_blocks(c, ct, arr, path);
  } else if (ct && !cJSON_IsNull(ct)) {
    xl_fail(c, 400, path, "%s.content: must be a string or an array", path);
  }
  if (cJSON_IsTrue(xl_get(m, "is_error"))) xl_put(c, r, "is_error", cJSON_CreateTrue());
  keep_cache(c, r, m);
  if (c->failed) {
    cJSON_Delete(r);
    return -1;
  }
  /* Anthropic wants the tool_result blocks first in their user turn */
  int pos = 0;
  const cJSON *b;
  cJSON_ArrayForEach(b, blocks) {
    const char *bt = xl_str(b, "type");
    if (!bt || strcmp(bt, "tool_result") != 0) break;
    pos++;
  }
  if (pos == cJSON_GetArraySize(blocks)) {
    xl_push(c, blocks, r);
  } else if (!cJSON_InsertItemInArray(blocks, pos, r)) {
    cJSON_Delete(r);
    return xl_fail(c, 500, "", "out of memory");
  }
  return c->failed ? -1 : 0;
}

static int hub_assistant_to_anth(xl_ctx *c, turns *t, const cJSON *m, const char *path) {
  const cJSON *ct = xl_get(m, "content"), *calls = xl_arrm(m, "tool_calls"), *thinks = xl_arrm(m, "thinking_blocks");
  if (xl_get(m, "function_call") && !cJSON_IsNull(xl_get(m, "function_call")))
    return xl_fail(c, 400, path, "%s.function_call: legacy function calls are not supported by anthropic; use tool_calls",
                   path);
  int ncalls = cJSON_GetArraySize(calls), nthinks = cJSON_GetArraySize(thinks);
  if (cJSON_IsString(ct) && !ncalls && !nthinks) {
    if (ct->valuestring[0]) turn_string(c, t, "assistant", ct->valuestring);
    return c->failed ? -1 : 0;
  }
  if (ct && !cJSON_IsString(ct) && !cJSON_IsArray(ct) && !cJSON_IsNull(ct))
    return xl_fail(c, 400, path, "%s.content: must be a string, an array or null", path);
  cJSON *blocks = xl_arr(c);
  if (!blocks) return -1;
  int j = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, thinks) {
    char p2[PATHN];
    xl_subpath(p2, sizeof p2, path, "thinking_blocks", j++);
    const char *type = xl_str(x, "type");
    cJSON *b = NULL;
    if (type && !strcmp(type, "thinking") && xl_str(x, "thinking")) {
      b = xl_push(c, blocks, xl_obj(c));
      xl_put_str(c, b, "type", "thinking");
      xl_put_str(c, b, "thinking", xl_str(x, "thinking"));
      xl_put_str(c, b, "signature", xl_str(x, "signature") ? xl_str(x, "signature") : "");
    } else if (type && !strcmp(type, "redacted_thinking") && xl_str(x, "data")) {
      b = xl_push(c, blocks, xl_obj(c));
      xl_put_str(c, b, "type", "redacted_thinking");
      xl_put_str(c, b, "data", xl_str(x, "data"));
    } else {
      xl_fail(c, 400, p2, "%s: not a thinking or redacted_thinking block", p2);
    }
    if (c->failed) break;
  }
  if (!c->failed && cJSON_IsString(ct) && ct->valuestring[0]) {
    cJSON *b = xl_push(c, blocks, xl_obj(c));
    xl_put_str(c, b, "type", "text");
    xl_put_str(c, b, "text", ct->valuestring);
  } else if (!c->failed && cJSON_IsArray(ct)) {
    hub_blocks(c, ct, blocks, path);
  }
  j = 0;
  cJSON_ArrayForEach(x, calls) {
    if (c->failed) break;
    char p2[PATHN];
    xl_subpath(p2, sizeof p2, path, "tool_calls", j++);
    const cJSON *fn = xl_objm(x, "function");
    const char *id = xl_str(x, "id"), *name = xl_str(fn, "name"), *args = xl_str(fn, "arguments");
    if (!id || !name) {
      xl_fail(c, 400, p2, "%s: a tool call needs id and function.name", p2);
      break;
    }
    cJSON *in = NULL;
    if (!args || !args[strspn(args, " \t\r\n")]) in = cJSON_CreateObject();
    else if (!(in = cJSON_Parse(args)) || !cJSON_IsObject(in)) {
      cJSON_Delete(in);
      xl_fail(c, 400, p2, "%s.function.arguments: not a JSON object; anthropic needs tool input as an object", p2);
      break;
    }
    cJSON *b = xl_push(c, blocks, xl_obj(c));
    xl_put_str(c, b, "type", "tool_use");
    xl_put(c, b, "id", anth_tool_id(id));
    xl_put_str(c, b, "name", name);
    xl_put(c, b, "input", in);
    if (b) keep_cache(c, b, x);
  }
  if (!c->failed && cJSON_GetArraySize(blocks)) {
    cJSON *dst = turn_blocks(c, t, "assistant");
    cJSON *b;
    while (dst && (b = cJSON_DetachItemFromArray(blocks, 0))) xl_push(c, dst, b);
  }
  cJSON_Delete(blocks);
  return c->failed ? -1 : 0;
}

static int hub_messages_to_anth(xl_ctx *c, const cJSON *msgs, cJSON *out) {
  cJSON *sys = NULL;
  const char *sys_str = NULL;
  int nsys = 0, i = 0, leading = 1;
  turns t = {0};
  t.arr = xl_put(c, out, "messages", xl_arr(c));
  const cJSON *m;
  cJSON_ArrayForEach(m, msgs) {
    if (c->failed) break;
    char path[PATHN];
    snprintf(path, sizeof path, "messages[%d]", i++);
    const char *role = xl_str(m, "role");
    const cJSON *ct = xl_get(m, "content");
    if (!role) {
      xl_fail(c, 400, path, "%s.role: missing", path);
      break;
    }
    int is_sys = !strcmp(role, "system") || !strcmp(role, "developer");
    if (is_sys && leading) {
      if (!sys && !(sys = xl_arr(c))) break;
      nsys++;
      if (cJSON_IsString(ct)) {
        sys_str = ct->valuestring;
        cJSON *b = xl_push(c, sys, xl_obj(c));
        xl_put_str(c, b, "type", "text");
        xl_put_str(c, b, "text", ct->valuestring);
      } else if (cJSON_IsArray(ct)) {
        sys_str = NULL;
        nsys++; /* parts: keep blocks */
        hub_blocks(c, ct, sys, path);
        const cJSON *b;
        cJSON_ArrayForEach(b, sys) {
          const char *bt = xl_str(b, "type");
          if (!bt || strcmp(bt, "text") != 0) {
            xl_fail(c, 400, path, "%s.content: system messages take text parts only", path);
            break;
          }
        }
      } else {
        xl_fail(c, 400, path, "%s.content: must be a string or an array", path);
      }
      continue;
    }
    leading = 0;
    if (is_sys) {
      pc_buf b = {0};
      if (pc_buf_adds(&b, "<system>") < 0 || hub_text_of(c, ct, &b, path) < 0 || pc_buf_adds(&b, "</system>") < 0) {
        pc_buf_free(&b);
        xl_fail(c, 500, "", "out of memory");
        break;
      }
      cJSON *blocks = turn_blocks(c, &t, "user"), *tb = xl_push(c, blocks, xl_obj(c));
      xl_put_str(c, tb, "type", "text");
      xl_put_str(c, tb, "text", b.p);
      pc_buf_free(&b);
    } else if (!strcmp(role, "user")) {
      if (cJSON_IsString(ct)) turn_string(c, &t, "user", ct->valuestring);
      else if (cJSON_IsArray(ct)) hub_blocks(c, ct, turn_blocks(c, &t, "user"), path);
      else xl_fail(c, 400, path, "%s.content: must be a string or an array", path);
    } else if (!strcmp(role, "assistant")) {
      hub_assistant_to_anth(c, &t, m, path);
    } else if (!strcmp(role, "tool")) {
      hub_tool_to_anth(c, &t, m, path);
    } else {
      xl_fail(c, 400, path, "%s.role: \"%s\" is not supported by anthropic", path, role);
    }
  }
  if (c->failed) {
    cJSON_Delete(sys);
    return -1;
  }
  if (sys) {
    if (nsys == 1 && sys_str) {
      xl_put_str(c, out, "system", sys_str);
      cJSON_Delete(sys);
    } else {
      xl_put(c, out, "system", sys);
    }
  }
  return c->failed ? -1 : 0;
}

static int hub_tools_to_anth(xl_ctx *c, const cJSON *tools, cJSON *out) {
  cJSON *arr = xl_put(c, out, "tools", xl_arr(c));
  int i = 0;
  const cJSON *t;
  cJSON_ArrayForEach(t, tools) {
    char path[PATHN];
    snprintf(path, sizeof path, "tools[%d]", i++);
    const char *type = xl_str(t, "type");
    if (type && !strcmp(type, "anthropic") && xl_objm(t, "anthropic")) {
      xl_push(c, arr, cJSON_Duplicate(xl_objm(t, "anthropic"), 1));
      continue;
    }
    if (!type || strcmp(type, "function") != 0)
      return xl_fail(c, 400, path, "%s.type: tool type \"%s\" is not supported by anthropic", path, type ? type : "");
    const cJSON *fn = xl_objm(t, "function");
    if (!xl_str(fn, "name")) return xl_fail(c, 400, path, "%s.function.name: missing", path);
    cJSON *o = xl_push(c, arr, xl_obj(c));
    xl_put_str(c, o, "name", xl_str(fn, "name"));
    if (xl_str(fn, "description")) xl_put_str(c, o, "description", xl_str(fn, "description"));
    const cJSON *params = xl_objm(fn, "parameters");
    if (params) {
      xl_put_dup(c, o, "input_schema", params);
    } else {
      cJSON *s = xl_put(c, o, "input_schema", xl_obj(c));
      xl_put_str(c, s, "type", "object");
      xl_put(c, s, "properties", xl_obj(c));
    }
    if (cJSON_IsBool(xl_get(fn, "strict"))) xl_put_dup(c, o, "strict", xl_get(fn, "strict"));
    if (o) keep_cache(c, o, t);
  }
  return c->failed ? -1 : 0;
}

static int hub_tool_choice_to_anth(xl_ctx *c, const cJSON *h, cJSON *out) {
  const cJSON *tc = xl_get(h, "tool_choice");
  int no_par = cJSON_IsFalse(xl_get(h, "parallel_tool_calls"));
  const char *type = "auto", *name = NULL;
  if (cJSON_IsString(tc)) {
    if (!strcmp(tc->valuestring, "auto")) type = "auto";
    else if (!strcmp(tc->valuestring, "none")) type = "none";
    else if (!strcmp(tc->valuestring, "required")) type = "any";
    else return xl_fail(c, 400, "tool_choice", "tool_choice: \"%s\" is not supported by anthropic", tc->valuestring);
  } else if (cJSON_IsObject(tc)) {
    name = xl_str(xl_objm(tc, "function"), "name");
    if (!name) return xl_fail(c, 400, "tool_choice", "tool_choice: only {type:function,function:{name}} objects are supported by anthropic");
    type = "tool";
  } else if (!no_par) {
    return 0; /* nothing to say */
  }
  cJSON *o = xl_put(c, out, "tool_choice", xl_obj(c));
  xl_put_str(c, o, "type", type);
  if (name) xl_put_str(c, o, "name", name);
  if (no_par && strcmp(type, "none") != 0) xl_put(c, o, "disable_parallel_tool_use", cJSON_CreateTrue());
  return c->failed ? -1 : 0;
}

/* request members Anthropic cannot honour */
static int hub_refuse(xl_ctx *c, const cJSON *h) {
  double d;
  if (xl_num(h, "n", &d) && d != 1) return xl_fail(c, 400, "n", "n: only one choice (n=1) is supported by anthropic");
  if (cJSON_IsTrue(xl_get(h, "logprobs"))) return xl_fail(c, 400, "logprobs", "logprobs: not supported by anthropic");
  if (xl_num(h, "top_logprobs", &d) && d != 0)
    return xl_fail(c, 400, "top_logprobs", "top_logprobs: not supported by anthropic");
  if (xl_num(h, "frequency_penalty", &d) && d != 0)
    return xl_fail(c, 400, "frequency_penalty", "frequency_penalty: not supported by anthropic");
  if (xl_num(h, "presence_penalty", &d) && d != 0)
    return xl_fail(c, 400, "presence_penalty", "presence_penalty: not supported by anthropic");
  if (cJSON_GetArraySize(xl_objm(h, "logit_bias"))) return xl_fail(c, 400, "logit_bias", "logit_bias: not supported by anthropic");
  const cJSON *x;
  cJSON_ArrayForEach(x, xl_arrm(h, "modalities")) {
    if (cJSON_IsString(x) && !strcmp(x->valuestring, "audio"))
      return xl_fail(c, 400, "modalities", "modalities: audio output is not supported by anthropic");
  }
  static const char *const never[] = {"audio", "functions", "function_call", "prediction", "web_search_options"};
  for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
    x = xl_get(h, never[i]);
    if (x && !cJSON_IsNull(x)) return xl_fail(c, 400, never[i], "%s: not supported by anthropic", never[i]);
  }
  const cJSON *rf = xl_objm(h, "response_format");
  const char *rft = xl_str(rf, "type");
  if (rft && !strcmp(rft, "json_object"))
    return xl_fail(c, 400, "response_format.type",
                   "response_format.type: json_object is not supported by anthropic; use json_schema");
  if (rft && strcmp(rft, "text") != 0 && strcmp(rft, "json_schema") != 0)
    return xl_fail(c, 400, "response_format.type", "response_format.type: \"%s\" is not supported by anthropic", rft);
  if (rft && !strcmp(rft, "json_schema") && !xl_objm(xl_objm(rf, "json_schema"), "schema"))
    return xl_fail(c, 400, "response_format.json_schema.schema", "response_format.json_schema.schema: missing");
  return 0;
}

cJSON *xl_hub_req_to_anth(const cJSON *h, const xl_anth_opts *opts, pc_err *err) {
  xl_ctx c = {err, 0};
  if (!cJSON_IsObject(h)) {
    xl_fail(&c, 400, "", "the request body must be a JSON object");
    return NULL;
  }
  const cJSON *msgs = xl_get(h, "messages");
  if (!cJSON_IsArray(msgs)) {
    xl_fail(&c, 400, "messages", "messages: must be an array");
    return NULL;
  }
  if (hub_refuse(&c, h) < 0) return NULL;
  cJSON *out = xl_obj(&c);
  if (!out) return NULL;
  const cJSON *x;
  if ((x = xl_get(h, "model"))) xl_put_dup(&c, out, "model", x);

  double mt = 0;
  if (!xl_num(h, "max_completion_tokens", &mt) && !xl_num(h, "max_tokens", &mt))
    mt = opts && opts->default_max_tokens > 0 ? opts->default_max_tokens : XL_DEFAULT_MAX_TOKENS;

  const cJSON *thinking = xl_objm(h, "thinking");
  const char *effort = xl_str(h, "reasoning_effort");
  if (thinking) {
    xl_put_dup(&c, out, "thinking", thinking);
  } else if (effort && strcmp(effort, "none") != 0) {
    double budget = !strcmp(effort, "minimal") ? XL_EFFORT_MINIMAL
                    : !strcmp(effort, "low")   ? XL_EFFORT_LOW
                    : !strcmp(effort, "high")  ? XL_EFFORT_HIGH
                                               : XL_EFFORT_MEDIUM;
    if (strcmp(effort, "minimal") && strcmp(effort, "low") && strcmp(effort, "medium") && strcmp(effort, "high")) {
      cJSON_Delete(out);
      xl_fail(&c, 400, "reasoning_effort", "reasoning_effort: \"%s\" is not supported by anthropic", effort);
      return NULL;
    }
    cJSON *t = xl_put(&c, out, "thinking", xl_obj(&c));
    xl_put_str(&c, t, "type", "enabled");
    xl_put_num(&c, t, "budget_tokens", budget);
    if (mt <= budget) mt += budget;
  }
  xl_put_num(&c, out, "max_tokens", mt);

  hub_messages_to_anth(&c, msgs, out);

  const cJSON *stop = xl_get(h, "stop");
  if (cJSON_IsString(stop)) {
    cJSON *a = xl_put(&c, out, "stop_sequences", xl_arr(&c));
    xl_push(&c, a, cJSON_CreateString(stop->valuestring));
  } else if (cJSON_IsArray(stop) && cJSON_GetArraySize(stop)) {
    cJSON_ArrayForEach(x, stop) if (!cJSON_IsString(x)) {
      cJSON_Delete(out);
      xl_fail(&c, 400, "stop", "stop: must be a string or an array of strings");
      return NULL;
    }
    xl_put_dup(&c, out, "stop_sequences", stop);
  }
  static const char *const nums[] = {"temperature", "top_p", "top_k"};
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
    if (xl_num(h, nums[i], NULL)) xl_put_dup(&c, out, nums[i], xl_get(h, nums[i]));
  if (cJSON_IsBool(xl_get(h, "stream"))) xl_put_dup(&c, out, "stream", xl_get(h, "stream"));

  const char *user = xl_str(xl_objm(h, "metadata"), "user_id");
  if (!user) user = xl_str(h, "user");
  if (user) {
    cJSON *md = xl_put(&c, out, "metadata", xl_obj(&c));
    xl_put_str(&c, md, "user_id", user);
  }

  const cJSON *tools = xl_arrm(h, "tools");
  if (cJSON_GetArraySize(tools)) {
    hub_tools_to_anth(&c, tools, out);
    hub_tool_choice_to_anth(&c, h, out);
  }

  const cJSON *rf = xl_objm(h, "response_format");
  const char *rft = xl_str(rf, "type");
  if (rft && !strcmp(rft, "json_schema")) {
    cJSON *oc = xl_put(&c, out, "output_config", xl_obj(&c));
    cJSON *f = xl_put(&c, oc, "format", xl_obj(&c));
    xl_put_str(&c, f, "type", "json_schema");
    xl_put_dup(&c, f, "schema", xl_objm(xl_objm(rf, "json_schema"), "schema"));
  }

  /* Anthropic-only members carried through the hub */
  const cJSON *extra = xl_objm(h, "x_anthropic");
  cJSON_ArrayForEach(x, extra) {
    cJSON *have = cJSON_GetObjectItemCaseSensitive(out, x->string);
    if (!have) {
      xl_put_dup(&c, out, x->string, x);
    } else if (cJSON_IsObject(have) && cJSON_IsObject(x)) {
      const cJSON *y;
      cJSON_ArrayForEach(y, x) if (!cJSON_GetObjectItemCaseSensitive(have, y->string)) xl_put_dup(&c, have, y->string, y);
    }
  }
  if (c.failed) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}
