/* xlate_bedrock.c - hub <-> Bedrock Converse (see xlate_bedrock.h for the mapping). */
#include "xlate_bedrock.h"

#include "aws_sigv4.h" /* aws_uri_encode */
#include "xlate.h"        /* xl_b64_encode */

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------- small JSON helpers (sticky failure) ---------------- */

typedef struct ctx {
  pc_err *err;
  int failed;
  int ndocs; /* documents named so far (default names) */
} ctx;

static int fail(ctx *c, int status, const char *param, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(ctx *c, int status, const char *param, const char *fmt, ...)
{
  if (c->failed) return -1;
  c->failed = 1;
  if (c->err) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pc_err_set(c->err, status, param, "%s", msg);
  }
  return -1;
}

static int oom(ctx *c) { return fail(c, 500, "", "out of memory"); }

static cJSON *put(ctx *c, cJSON *o, const char *k, cJSON *v)
{
  if (!v || !o || !cJSON_AddItemToObject(o, k, v)) {
    cJSON_Delete(v);
    oom(c);
    return NULL;
  }
  return v;
}

static cJSON *push(ctx *c, cJSON *a, cJSON *v)
{
  if (!v || !a || !cJSON_AddItemToArray(a, v)) {
    cJSON_Delete(v);
    oom(c);
    return NULL;
  }
  return v;
}

static cJSON *put_str(ctx *c, cJSON *o, const char *k, const char *s) { return put(c, o, k, cJSON_CreateString(s)); }
static cJSON *put_num(ctx *c, cJSON *o, const char *k, double v) { return put(c, o, k, cJSON_CreateNumber(v)); }
static cJSON *put_obj(ctx *c, cJSON *o, const char *k) { return put(c, o, k, cJSON_CreateObject()); }
static cJSON *put_arr(ctx *c, cJSON *o, const char *k) { return put(c, o, k, cJSON_CreateArray()); }
static cJSON *put_dup(ctx *c, cJSON *o, const char *k, const cJSON *v) { return put(c, o, k, cJSON_Duplicate(v, 1)); }

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL; }
static const char *gstr(const cJSON *o, const char *k) { return cJSON_GetStringValue(get(o, k)); }
static const cJSON *gobj(const cJSON *o, const char *k) { const cJSON *v = get(o, k); return cJSON_IsObject(v) ? v : NULL; }
static const cJSON *garr(const cJSON *o, const char *k) { const cJSON *v = get(o, k); return cJSON_IsArray(v) ? v : NULL; }
/* a JSON number as an integer without overflow (NaN / out of range -> dflt) */
static long long d2ll(double d, long long dflt) { return d >= -1e15 && d <= 1e15 ? (long long)d : dflt; }
static long long gll(const cJSON *o, const char *k, long long d) { const cJSON *v = get(o, k); return cJSON_IsNumber(v) ? d2ll(v->valuedouble, d) : d; }
static int present(const cJSON *o, const char *k) { const cJSON *v = get(o, k); return v && !cJSON_IsNull(v); }

/* ---------------- requests ---------------- */

static const char *image_format(const char *mime)
{
  if (!strcasecmp(mime, "image/png")) return "png";
  if (!strcasecmp(mime, "image/jpeg") || !strcasecmp(mime, "image/jpg")) return "jpeg";
  if (!strcasecmp(mime, "image/gif")) return "gif";
  if (!strcasecmp(mime, "image/webp")) return "webp";
  return NULL;
}

static const char *doc_format(const char *mime)
{
  static const char *const t[][2] = {
      {"application/pdf", "pdf"},
      {"text/csv", "csv"},
      {"application/msword", "doc"},
      {"application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"},
      {"application/vnd.ms-excel", "xls"},
      {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"},
      {"text/html", "html"},
      {"text/plain", "txt"},
      {"text/markdown", "md"},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++)
    if (!strcasecmp(mime, t[i][0])) return t[i][1];
  return NULL;
}

/* "data:<mime>;base64,<b64>" -> mime (copied) and the base64 text (pointer into url). */
static int data_url(const char *url, char *mime, size_t cap, const char **b64)
{
  if (strncasecmp(url, "data:", 5)) return -1;
  const char *m = url + 5, *semi = strchr(m, ';'), *comma = strchr(m, ',');
  if (!semi || !comma || semi > comma || strncasecmp(semi, ";base64,", 8) || semi + 7 != comma) {
    /* parameters before ;base64 (data:text/plain;charset=utf-8;base64,...) */
    const char *b = comma ? comma - 7 : NULL;
    if (!comma || b < m || strncasecmp(b, ";base64", 7)) return -1;
    semi = strchr(m, ';');
  }
  size_t n = (size_t)(semi - m);
  if (n == 0 || n >= cap) return -1;
  memcpy(mime, m, n);
  mime[n] = 0;
  *b64 = comma + 1;
  return 0;
}

static int add_cp(ctx *c, cJSON *arr, const char *ttl)
{
  cJSON *cp = put_obj(c, push(c, arr, cJSON_CreateObject()), "cachePoint");
  put_str(c, cp, "type", "default");
  if (ttl && (!strcmp(ttl, "5m") || !strcmp(ttl, "1h"))) put_str(c, cp, "ttl", ttl);
  return c->failed ? -1 : 0;
}

/* a {cachePoint} block after the part that carried cache_control (hub ext) */
static int add_cache_point(ctx *c, cJSON *arr, const cJSON *cc)
{
  return cJSON_IsObject(cc) ? add_cp(c, arr, gstr(cc, "ttl")) : 0;
}

/* Converse document names: alphanumerics, single whitespace, hyphens, parentheses, brackets */
static void doc_name(ctx *c, const char *filename, char *out, size_t cap)
{
  size_t o = 0;
  if (filename) {
    const char *dot = strrchr(filename, '.');
    size_t n = dot && dot != filename ? (size_t)(dot - filename) : strlen(filename);
    for (size_t i = 0; i < n && o + 1 < cap && o < 200; i++) {
      unsigned char ch = (unsigned char)filename[i];
      char w = isalnum(ch) || ch == '-' || ch == '(' || ch == ')' || ch == '[' || ch == ']' ? (char)ch
               : isspace(ch) ? ' '
                             : '-';
      if (w == ' ' && (o == 0 || out[o - 1] == ' ')) continue;
      out[o++] = w;
    }
    while (o && out[o - 1] == ' ') o--;
  }
  out[o] = 0;
  if (!o) snprintf(out, cap, "document-%d", c->ndocs + 1);
  c->ndocs++;
}

/* one hub content part -> Converse block(s) appended to arr (text/image/document).
 * allow: 1 also in tool results. */
static int part_to_block(ctx *c, cJSON *arr, const cJSON *part, const char *path)
{
  const char *type = gstr(part, "type");
  char mime[128];
  const char *b64 = NULL;
  if (!type) return fail(c, 400, path, "%s: a content part needs a type", path);
  if (!strcmp(type, "text") || !strcmp(type, "refusal")) {
    const char *t = gstr(part, !strcmp(type, "text") ? "text" : "refusal");
    if (!t) return fail(c, 400, path, "%s: text part without text", path);
    if (*t) put_str(c, push(c, arr, cJSON_CreateObject()), "text", t);
  } else if (!strcmp(type, "image_url")) {
    const cJSON *iu = get(part, "image_url");
    const char *url = cJSON_IsString(iu) ? iu->valuestring : gstr(iu, "url");
    if (!url) return fail(c, 400, path, "%s: image_url without url", path);
    if (data_url(url, mime, sizeof mime, &b64) < 0)
      return fail(c, 400, path,
                  "%s: image URLs are not supported by bedrock (Converse takes image bytes); send the image as a base64 data URL",
                  path);
    const char *fmt = image_format(mime);
    if (!fmt)
      return fail(c, 400, path, "%s: image type %s is not supported by bedrock (png, jpeg, gif, webp)", path, mime);
    cJSON *img = put_obj(c, push(c, arr, cJSON_CreateObject()), "image");
    put_str(c, img, "format", fmt);
    put_str(c, put_obj(c, img, "source"), "bytes", b64);
  } else if (!strcmp(type, "file")) {
    const cJSON *f = gobj(part, "file");
    const char *fd = gstr(f, "file_data");
    if (!fd)
      return fail(c, 400, path, "%s: files must be sent as file_data (file_id and file_url are not supported by bedrock)", path);
    if (data_url(fd, mime, sizeof mime, &b64) < 0)
      return fail(c, 400, path, "%s: file_data must be a base64 data URL for bedrock", path);
    const char *fmt = doc_format(mime);
    if (!fmt)
      return fail(c, 400, path, "%s: document type %s is not supported by bedrock (pdf, csv, doc, docx, xls, xlsx, html, txt, md)",
                  path, mime);
    char name[208];
    doc_name(c, gstr(f, "filename"), name, sizeof name);
    cJSON *doc = put_obj(c, push(c, arr, cJSON_CreateObject()), "document");
    put_str(c, doc, "format", fmt);
    put_str(c, doc, "name", name);
    put_str(c, put_obj(c, doc, "source"), "bytes", b64);
  } else {
    return fail(c, 400, path, "%s: content part type \"%s\" is not supported by bedrock", path, type);
  }
  if (c->failed) return -1;
  return add_cache_point(c, arr, get(part, "cache_control"));
}

/* content (string or parts) -> blocks */
static int content_to_blocks(ctx *c, cJSON *arr, const cJSON *content, const char *path)
{
  char p2[200];
  if (!content || cJSON_IsNull(content)) return 0;
  if (cJSON_IsString(content)) {
    if (*content->valuestring) put_str(c, push(c, arr, cJSON_CreateObject()), "text", content->valuestring);
    return c->failed ? -1 : 0;
  }
  if (!cJSON_IsArray(content)) return fail(c, 400, path, "%s: content must be a string or an array", path);
  int i = 0;
  const cJSON *part;
  cJSON_ArrayForEach(part, content)
  {
    snprintf(p2, sizeof p2, "%.150s[%d]", path, i++);
    if (part_to_block(c, arr, part, p2) < 0) return -1;
  }
  return 0;
}

/* appends blocks as a message of role; merged into the previous message when it has that role.
 * Takes ownership of blocks. */
static int append_msg(ctx *c, cJSON *msgs, const char *role, cJSON *blocks)
{
  if (!blocks) return oom(c);
  if (!cJSON_GetArraySize(blocks)) {
    cJSON_Delete(blocks);
    return 0;
  }
  cJSON *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
  if (last && !strcmp(gstr(last, "role"), role)) {
    cJSON *dst = cJSON_GetObjectItemCaseSensitive(last, "content");
    while (blocks->child) cJSON_AddItemToArray(dst, cJSON_DetachItemViaPointer(blocks, blocks->child));
    cJSON_Delete(blocks);
    return 0;
  }
  cJSON *m = push(c, msgs, cJSON_CreateObject());
  put_str(c, m, "role", role);
  put(c, m, "content", blocks);
  return c->failed ? -1 : 0;
}

static int assistant_blocks(ctx *c, cJSON *blocks, const cJSON *m, const char *path, int *has_tools)
{
  char p2[200];
  const cJSON *tb = garr(m, "thinking_blocks"), *b;
  int i = 0;
  cJSON_ArrayForEach(b, tb)
  {
    snprintf(p2, sizeof p2, "%.150s.thinking_blocks[%d]", path, i++);
    const char *t = gstr(b, "type");
    cJSON *rc = NULL;
    if (t && !strcmp(t, "thinking")) {
      rc = put_obj(c, push(c, blocks, cJSON_CreateObject()), "reasoningContent");
      cJSON *rt = put_obj(c, rc, "reasoningText");
      put_str(c, rt, "text", gstr(b, "thinking") ? gstr(b, "thinking") : "");
      if (gstr(b, "signature")) put_str(c, rt, "signature", gstr(b, "signature"));
    } else if (t && !strcmp(t, "redacted_thinking") && gstr(b, "data")) {
      rc = put_obj(c, push(c, blocks, cJSON_CreateObject()), "reasoningContent");
      put_str(c, rc, "redactedContent", gstr(b, "data"));
    } else {
      return fail(c, 400, p2, "%s: unknown thinking block for bedrock", p2);
    }
    if (c->failed) return -1;
  }
  snprintf(p2, sizeof p2, "%.150s.content", path);
  if (content_to_blocks(c, blocks, get(m, "content"), p2) < 0) return -1;
  const cJSON *tcs = garr(m, "tool_calls"), *tc;
  i = 0;
  cJSON_ArrayForEach(tc, tcs)
  {
    snprintf(p2, sizeof p2, "%.150s.tool_calls[%d]", path, i++);
    const cJSON *fn = gobj(tc, "function");
    const char *id = gstr(tc, "id"), *name = gstr(fn, "name"), *args = gstr(fn, "arguments");
    if (!id || !name) return fail(c, 400, p2, "%s: a tool call needs id and function.name", p2);
    cJSON *input = NULL;
    const cJSON *argj = get(fn, "arguments");
    if (!args && cJSON_IsObject(argj)) input = cJSON_Duplicate(argj, 1);
    else if (!args || !*args) input = cJSON_CreateObject();
    else {
      input = cJSON_Parse(args);
      if (!input || !cJSON_IsObject(input)) {
        cJSON_Delete(input);
        return fail(c, 400, p2, "%s: function.arguments is not a JSON object; bedrock needs the tool input as an object", p2);
      }
    }
    cJSON *tu = put_obj(c, push(c, blocks, cJSON_CreateObject()), "toolUse");
    put_str(c, tu, "toolUseId", id);
    put_str(c, tu, "name", name);
    put(c, tu, "input", input);
    if (c->failed) return -1;
    if (add_cache_point(c, blocks, get(tc, "cache_control")) < 0) return -1;
    *has_tools = 1;
  }
  return 0;
}

static int tool_result_block(ctx *c, cJSON *blocks, const cJSON *m, const char *path)
{
  char p2[200];
  const char *id = gstr(m, "tool_call_id");
  if (!id) return fail(c, 400, path, "%s: a tool message needs tool_call_id", path);
  cJSON *tr = put_obj(c, push(c, blocks, cJSON_CreateObject()), "toolResult");
  put_str(c, tr, "toolUseId", id);
  cJSON *content = put_arr(c, tr, "content");
  if (c->failed) return -1;
  snprintf(p2, sizeof p2, "%.150s.content", path);
  if (content_to_blocks(c, content, get(m, "content"), p2) < 0) return -1;
  /* cachePoint is not a tool-result content block: parts' cache points move after the result */
  char ttl[8] = "";
  int cache = 0;
  for (cJSON *b = content->child, *nx; b; b = nx) {
    nx = b->next;
    const cJSON *cp = gobj(b, "cachePoint");
    if (cp) {
      if (gstr(cp, "ttl")) snprintf(ttl, sizeof ttl, "%s", gstr(cp, "ttl"));
      cJSON_Delete(cJSON_DetachItemViaPointer(content, b));
      cache = 1;
    }
  }
  if (cJSON_IsTrue(get(m, "is_error"))) put_str(c, tr, "status", "error");
  if (c->failed) return -1;
  const cJSON *mcc = get(m, "cache_control");
  if (cJSON_IsObject(mcc)) return add_cache_point(c, blocks, mcc);
  return cache ? add_cp(c, blocks, ttl[0] ? ttl : NULL) : 0;
}

static int system_blocks(ctx *c, cJSON *sys, const cJSON *m, const char *path)
{
  char p2[200];
  const cJSON *content = get(m, "content");
  if (cJSON_IsString(content)) {
    if (*content->valuestring) put_str(c, push(c, sys, cJSON_CreateObject()), "text", content->valuestring);
  } else if (cJSON_IsArray(content)) {
    const cJSON *part;
    int i = 0;
    cJSON_ArrayForEach(part, content)
    {
      snprintf(p2, sizeof p2, "%.150s.content[%d]", path, i++);
      const char *type = gstr(part, "type"), *t = gstr(part, "text");
      if (!type || strcmp(type, "text") || !t)
        return fail(c, 400, p2, "%s: bedrock system prompts take text parts only", p2);
      if (*t) put_str(c, push(c, sys, cJSON_CreateObject()), "text", t);
      if (add_cache_point(c, sys, get(part, "cache_control")) < 0) return -1;
    }
  } else if (content && !cJSON_IsNull(content)) {
    return fail(c, 400, path, "%s.content must be a string or an array", path);
  }
  if (c->failed) return -1;
  return add_cache_point(c, sys, get(m, "cache_control"));
}

static int refuse_if(ctx *c, int cond, const char *field, const char *what)
{
  if (!cond) return 0;
  return fail(c, 400, field, "%s: %s is not supported by bedrock", field, what);
}

static int nonzero(const cJSON *v) { return cJSON_IsNumber(v) && v->valuedouble != 0; }

cJSON *xb_req_from_hub(const cJSON *hub, pc_err *err)
{
  ctx cc = {err, 0, 0}, *c = &cc;
  if (!cJSON_IsObject(hub)) {
    fail(c, 400, "", "the request body must be a JSON object");
    return NULL;
  }
  const cJSON *msgs = garr(hub, "messages");
  if (!msgs) {
    fail(c, 400, "messages", "messages: required (an array)");
    return NULL;
  }
  /* refusals first: cheap and clear */
  const cJSON *n = get(hub, "n"), *rf = gobj(hub, "response_format"), *xa = gobj(hub, "x_anthropic");
  const cJSON *lb = get(hub, "logit_bias"), *mods = garr(hub, "modalities"), *mo;
  int audio_out = present(hub, "audio");
  cJSON_ArrayForEach(mo, mods) if (cJSON_IsString(mo) && !strcmp(mo->valuestring, "audio")) audio_out = 1;
  if (refuse_if(c, cJSON_IsNumber(n) && n->valuedouble > 1, "n", "n > 1 (several choices)") ||
      refuse_if(c, cJSON_IsTrue(get(hub, "logprobs")), "logprobs", "logprobs") ||
      refuse_if(c, present(hub, "top_logprobs"), "top_logprobs", "top_logprobs") ||
      refuse_if(c, nonzero(get(hub, "frequency_penalty")), "frequency_penalty", "frequency_penalty") ||
      refuse_if(c, nonzero(get(hub, "presence_penalty")), "presence_penalty", "presence_penalty") ||
      refuse_if(c, cJSON_IsObject(lb) && lb->child, "logit_bias", "logit_bias") ||
      refuse_if(c, present(hub, "functions") || present(hub, "function_call"), "functions",
                "the legacy functions / function_call form (use tools)") ||
      refuse_if(c, audio_out, "modalities", "audio output") ||
      refuse_if(c, present(hub, "prediction"), "prediction", "prediction") ||
      refuse_if(c, present(hub, "web_search_options"), "web_search_options", "web_search_options") ||
      refuse_if(c, present(xa, "mcp_servers"), "x_anthropic.mcp_servers", "mcp_servers") ||
      refuse_if(c, present(xa, "container"), "x_anthropic.container", "container"))
    return NULL;

  cJSON *out = cJSON_CreateObject(), *bmsgs = put_arr(c, out, "messages"), *sys = cJSON_CreateArray();
  if (!sys) oom(c);
  int has_tool_blocks = 0, i = 0;
  char path[64];
  const cJSON *m;
  cJSON_ArrayForEach(m, msgs)
  {
    if (c->failed) break;
    snprintf(path, sizeof path, "messages[%d]", i++);
    const char *role = gstr(m, "role");
    if (!role) {
      fail(c, 400, path, "%s: role is required", path);
      break;
    }
    if (!strcmp(role, "system") || !strcmp(role, "developer")) {
      system_blocks(c, sys, m, path);
    } else if (!strcmp(role, "user")) {
      cJSON *blocks = cJSON_CreateArray();
      char p2[80];
      snprintf(p2, sizeof p2, "%s.content", path);
      if (blocks && content_to_blocks(c, blocks, get(m, "content"), p2) == 0 &&
          add_cache_point(c, blocks, get(m, "cache_control")) == 0)
        append_msg(c, bmsgs, "user", blocks);
      else {
        cJSON_Delete(blocks);
        if (!blocks) oom(c);
      }
    } else if (!strcmp(role, "assistant")) {
      cJSON *blocks = cJSON_CreateArray();
      if (blocks && assistant_blocks(c, blocks, m, path, &has_tool_blocks) == 0 &&
          add_cache_point(c, blocks, get(m, "cache_control")) == 0)
        append_msg(c, bmsgs, "assistant", blocks);
      else {
        cJSON_Delete(blocks);
        if (!blocks) oom(c);
      }
    } else if (!strcmp(role, "tool")) {
      cJSON *blocks = cJSON_CreateArray();
      has_tool_blocks = 1;
      if (blocks && tool_result_block(c, blocks, m, path) == 0) append_msg(c, bmsgs, "user", blocks);
      else {
        cJSON_Delete(blocks);
        if (!blocks) oom(c);
      }
    } else {
      fail(c, 400, path, "%s: role \"%s\" is not supported by bedrock", path, role);
    }
  }
  if (!c->failed && cJSON_GetArraySize(sys)) {
    put(c, out, "system", sys);
    sys = NULL;
  }
  cJSON_Delete(sys);

  /* inferenceConfig */
  cJSON *ic = cJSON_CreateObject();
  const cJSON *v;
  long long max_tokens = -1;
  if (cJSON_IsNumber(v = get(hub, "max_completion_tokens")) || cJSON_IsNumber(v = get(hub, "max_tokens"))) {
    max_tokens = d2ll(v->valuedouble, -1);
    if (max_tokens < 1 || (double)max_tokens != v->valuedouble)
      fail(c, 400, v->string, "%s: must be a positive integer for bedrock", v->string);
  }
  if (cJSON_IsNumber(v = get(hub, "temperature"))) put_num(c, ic, "temperature", v->valuedouble);
  if (cJSON_IsNumber(v = get(hub, "top_p"))) put_num(c, ic, "topP", v->valuedouble);
  if (cJSON_IsString(v = get(hub, "stop")))
    push(c, put_arr(c, ic, "stopSequences"), cJSON_CreateString(v->valuestring));
  else if (cJSON_IsArray(v) && cJSON_GetArraySize(v)) {
    const cJSON *s;
    cJSON *ss = put_arr(c, ic, "stopSequences");
    cJSON_ArrayForEach(s, v)
    {
      if (!cJSON_IsString(s)) {
        fail(c, 400, "stop", "stop: entries must be strings");
        break;
      }
      push(c, ss, cJSON_CreateString(s->valuestring));
    }
  }

  /* additionalModelRequestFields: top_k, thinking (or from reasoning_effort) */
  cJSON *amrf = cJSON_CreateObject();
  if (cJSON_IsNumber(v = get(hub, "top_k"))) put_num(c, amrf, "top_k", v->valuedouble);
  if (cJSON_IsObject(v = get(hub, "thinking"))) put_dup(c, amrf, "thinking", v);
  else if (cJSON_IsString(v = get(hub, "reasoning_effort")) && strcmp(v->valuestring, "none")) {
    const char *e = v->valuestring;
    long long budget = !strcmp(e, "minimal") ? XB_EFFORT_MINIMAL
                       : !strcmp(e, "low")   ? XB_EFFORT_LOW
                       : !strcmp(e, "medium") ? XB_EFFORT_MEDIUM
                       : !strcmp(e, "high")  ? XB_EFFORT_HIGH
                                             : -1;
    if (budget < 0) fail(c, 400, "reasoning_effort", "reasoning_effort: \"%s\" is not supported by bedrock (minimal, low, medium, high, none)", e);
    else {
      cJSON *th = put_obj(c, amrf, "thinking");
      put_str(c, th, "type", "enabled");
      put_num(c, th, "budget_tokens", (double)budget);
      if (max_tokens < 0) max_tokens = budget + XB_DEFAULT_MAX_TOKENS;
      else if (max_tokens <= budget) max_tokens += budget;
    }
  }
  if (max_tokens >= 0) put_num(c, ic, "maxTokens", (double)max_tokens);
  if (ic && ic->child) put(c, out, "inferenceConfig", ic);
  else cJSON_Delete(ic);

  /* tools */
  const cJSON *tools = garr(hub, "tools"), *tchoice = get(hub, "tool_choice");
  int choice_none = cJSON_IsString(tchoice) && !strcmp(tchoice->valuestring, "none");
  if (!c->failed && tools && cJSON_GetArraySize(tools)) {
    if (cJSON_IsFalse(get(hub, "parallel_tool_calls")))
      fail(c, 400, "parallel_tool_calls", "parallel_tool_calls: false is not supported by bedrock");
    else if (choice_none && has_tool_blocks)
      fail(c, 400, "tool_choice", "tool_choice: \"none\" is not supported by bedrock when the conversation has tool calls");
    else if (!choice_none) {
      cJSON *tc = put_obj(c, out, "toolConfig"), *tl = put_arr(c, tc, "tools");
      const cJSON *t;
      i = 0;
      cJSON_ArrayForEach(t, tools)
      {
        char p2[48];
        snprintf(p2, sizeof p2, "tools[%d]", i++);
        const char *type = gstr(t, "type");
        const cJSON *fn = gobj(t, "function");
        if (!type || strcmp(type, "function") || !fn || !gstr(fn, "name")) {
          fail(c, 400, p2, "%s: tool type \"%s\" is not supported by bedrock (function tools only)", p2, type ? type : "");
          break;
        }
        cJSON *spec = put_obj(c, push(c, tl, cJSON_CreateObject()), "toolSpec");
        put_str(c, spec, "name", gstr(fn, "name"));
        const char *d = gstr(fn, "description");
        if (d && *d) put_str(c, spec, "description", d);
        const cJSON *params = gobj(fn, "parameters");
        cJSON *schema = put_obj(c, spec, "inputSchema");
        if (params) put_dup(c, schema, "json", params);
        else {
          cJSON *js = put_obj(c, schema, "json");
          put_str(c, js, "type", "object");
          put_obj(c, js, "properties");
        }
        if (cJSON_IsBool(v = get(fn, "strict"))) put(c, spec, "strict", cJSON_CreateBool(cJSON_IsTrue(v)));
        add_cache_point(c, tl, get(t, "cache_control"));
      }
      if (cJSON_IsString(tchoice)) {
        if (!strcmp(tchoice->valuestring, "auto")) put_obj(c, put_obj(c, tc, "toolChoice"), "auto");
        else if (!strcmp(tchoice->valuestring, "required")) put_obj(c, put_obj(c, tc, "toolChoice"), "any");
        else fail(c, 400, "tool_choice", "tool_choice: \"%s\" is not supported by bedrock", tchoice->valuestring);
      } else if (cJSON_IsObject(tchoice)) {
        const char *name = gstr(gobj(tchoice, "function"), "name");
        if (!name) fail(c, 400, "tool_choice", "tool_choice: needs function.name");
        else put_str(c, put_obj(c, put_obj(c, tc, "toolChoice"), "tool"), "name", name);
      }
    }
  } else if (!c->failed && tchoice && !cJSON_IsNull(tchoice) && !choice_none &&
             !(cJSON_IsString(tchoice) && !strcmp(tchoice->valuestring, "auto"))) {
    fail(c, 400, "tool_choice", "tool_choice: set without tools");
  }

  /* response_format */
  if (!c->failed && rf) {
    const char *type = gstr(rf, "type");
    if (type && !strcmp(type, "json_schema")) {
      const cJSON *js = gobj(rf, "json_schema");
      const cJSON *schema = get(js, "schema");
      if (!schema) fail(c, 400, "response_format.json_schema.schema", "response_format.json_schema.schema: required");
      else {
        char *s = cJSON_PrintUnformatted(schema);
        if (!s) oom(c);
        cJSON *tf = put_obj(c, put_obj(c, out, "outputConfig"), "textFormat");
        put_str(c, tf, "type", "json_schema");
        cJSON *jsd = put_obj(c, put_obj(c, tf, "structure"), "jsonSchema");
        if (s) put_str(c, jsd, "schema", s);
        free(s);
        if (gstr(js, "name")) put_str(c, jsd, "name", gstr(js, "name"));
        if (gstr(js, "description")) put_str(c, jsd, "description", gstr(js, "description"));
      }
    } else if (type && !strcmp(type, "json_object")) {
      fail(c, 400, "response_format", "response_format: json_object is not supported by bedrock; use json_schema");
    } else if (type && strcmp(type, "text")) {
      fail(c, 400, "response_format", "response_format: type \"%s\" is not supported by bedrock", type);
    }
  }

  if (amrf && amrf->child && !c->failed) put(c, out, "additionalModelRequestFields", amrf);
  else cJSON_Delete(amrf);
  if (!c->failed && !cJSON_GetArraySize(bmsgs))
    fail(c, 400, "messages", "messages: bedrock needs at least one user or assistant message");
  if (c->failed || !out) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}

int xb_path(pc_buf *out, const char *model_id, int stream)
{
  if (!model_id || !*model_id) return -1;
  if (pc_buf_adds(out, "/model/") < 0 || aws_uri_encode(out, model_id, strlen(model_id), 0) < 0)
    return -1;
  return pc_buf_adds(out, stream ? "/converse-stream" : "/converse");
}

/* ---------------- responses ---------------- */

const char *xb_stop_to_finish(const char *r)
{
  if (!r) return "stop";
  if (!strcmp(r, "tool_use")) return "tool_calls";
  if (!strcmp(r, "max_tokens") || !strcmp(r, "model_context_window_exceeded")) return "length";
  if (!strcmp(r, "guardrail_intervened") || !strcmp(r, "content_filtered")) return "content_filter";
  return "stop";
}

static cJSON *hub_usage(ctx *c, const cJSON *u)
{
  long long in = gll(u, "inputTokens", 0), out = gll(u, "outputTokens", 0);
  long long cr = gll(u, "cacheReadInputTokens", 0), cw = gll(u, "cacheWriteInputTokens", 0);
  cJSON *h = cJSON_CreateObject();
  if (!h) {
    oom(c);
    return NULL;
  }
  put_num(c, h, "prompt_tokens", (double)(in + cr + cw));
  put_num(c, h, "completion_tokens", (double)out);
  put_num(c, h, "total_tokens", (double)(in + cr + cw + out));
  put_num(c, put_obj(c, h, "prompt_tokens_details"), "cached_tokens", (double)cr);
  put_num(c, h, "cache_creation_input_tokens", (double)cw);
  return h;
}

cJSON *xb_resp_to_hub(const cJSON *conv, const char *id, const char *model, long long created, pc_err *err)
{
  ctx cc = {err, 0, 0}, *c = &cc;
  const cJSON *msg = gobj(gobj(conv, "output"), "message");
  const cJSON *content = garr(msg, "content");
  if (!content) {
    fail(c, 502, "output.message", "bedrock answer without output.message.content");
    return NULL;
  }
  cJSON *out = cJSON_CreateObject();
  put_str(c, out, "id", id ? id : "chatcmpl-bedrock");
  put_str(c, out, "object", "chat.completion");
  put_num(c, out, "created", (double)created);
  put_str(c, out, "model", model ? model : "");
  cJSON *ch = push(c, put_arr(c, out, "choices"), cJSON_CreateObject());
  put_num(c, ch, "index", 0);
  cJSON *hm = put_obj(c, ch, "message");
  put_str(c, hm, "role", "assistant");
  pc_buf text = {0}, reason = {0};
  int has_text = 0, has_reason = 0;
  cJSON *tcs = cJSON_CreateArray(), *tbs = cJSON_CreateArray();
  if (!tcs || !tbs) oom(c);
  const cJSON *b;
  cJSON_ArrayForEach(b, content)
  {
    const cJSON *tu, *rc;
    if (cJSON_IsString(get(b, "text"))) {
      has_text = 1;
      if (pc_buf_adds(&text, gstr(b, "text")) < 0) oom(c);
    } else if ((tu = gobj(b, "toolUse"))) {
      const char *tid = gstr(tu, "toolUseId"), *name = gstr(tu, "name");
      if (!tid || !name) {
        fail(c, 502, "output.message.content", "bedrock toolUse block without toolUseId or name");
        break;
      }
      const cJSON *input = get(tu, "input");
      char *args = input ? cJSON_PrintUnformatted(input) : NULL;
      cJSON *tc = push(c, tcs, cJSON_CreateObject());
      put_str(c, tc, "id", tid);
      put_str(c, tc, "type", "function");
      cJSON *fn = put_obj(c, tc, "function");
      put_str(c, fn, "name", name);
      put_str(c, fn, "arguments", args ? args : "{}");
      free(args);
    } else if ((rc = gobj(b, "reasoningContent"))) {
      const cJSON *rt = gobj(rc, "reasoningText");
      const char *red = gstr(rc, "redactedContent");
      if (rt) {
        const char *t = gstr(rt, "text") ? gstr(rt, "text") : "";
        has_reason = 1;
        if (pc_buf_adds(&reason, t) < 0) oom(c);
        cJSON *tb = push(c, tbs, cJSON_CreateObject());
        put_str(c, tb, "type", "thinking");
        put_str(c, tb, "thinking", t);
        if (gstr(rt, "signature")) put_str(c, tb, "signature", gstr(rt, "signature"));
      } else if (red) {
        cJSON *tb = push(c, tbs, cJSON_CreateObject());
        put_str(c, tb, "type", "redacted_thinking");
        put_str(c, tb, "data", red);
      }
    } /* other blocks (citations, guard content, images): not carried */
  }
  if (has_text) put_str(c, hm, "content", text.p ? text.p : "");
  else put(c, hm, "content", cJSON_CreateNull());
  if (cJSON_GetArraySize(tcs)) {
    put(c, hm, "tool_calls", tcs);
    tcs = NULL;
  }
  if (has_reason) put_str(c, hm, "reasoning_content", reason.p ? reason.p : "");
  if (cJSON_GetArraySize(tbs)) {
    put(c, hm, "thinking_blocks", tbs);
    tbs = NULL;
  }
  cJSON_Delete(tcs);
  cJSON_Delete(tbs);
  pc_buf_free(&text);
  pc_buf_free(&reason);
  put_str(c, ch, "finish_reason", xb_stop_to_finish(gstr(conv, "stopReason")));
  put(c, out, "usage", hub_usage(c, gobj(conv, "usage")));
  if (c->failed || !out) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}

/* ---------------- errors ---------------- */

typedef struct err_map {
  const char *name; /* PascalCase; stream exception types are the same in camelCase */
  int status;
} err_map;

static const err_map ERRS[] = {
    {"ThrottlingException", 429},         {"ModelNotReadyException", 429},
    {"ServiceQuotaExceededException", 429}, {"ValidationException", 400},
    {"ConflictException", 400},           {"AccessDeniedException", 403},
    {"ResourceNotFoundException", 404},   {"ModelTimeoutException", 408},
    {"InternalServerException", 500},     {"ServiceUnavailableException", 503},
    {"ModelErrorException", 502},         {"ModelStreamErrorException", 502},
    {"UnrecognizedClientException", 502}, {"InvalidSignatureException", 502},
    {"ExpiredTokenException", 502},       {"IncompleteSignatureException", 502},
    {"MissingAuthenticationTokenException", 502}, {"InvalidClientTokenId", 502},
};

static const char *type_for_status(int s)
{
  switch (s) {
  case 400: return "invalid_request_error";
  case 401: return "authentication_error";
  case 403: return "permission_error";
  case 404: return "not_found_error";
  case 408: return "timeout_error";
  case 413: return "request_too_large";
  case 429: return "rate_limit_error";
  case 503:
  case 529: return "overloaded_error";
  default: return s >= 400 && s < 500 ? "invalid_request_error" : "api_error";
  }
}

void xb_error_from_upstream(int http_status, const char *error_type, const char *body, size_t n,
                            pc_err *err, char *code, size_t code_cap)
{
  char name[96] = "";
  cJSON *j = body && n ? cJSON_ParseWithLength(body, n) : NULL;
  const char *src = error_type && *error_type ? error_type : gstr(j, "__type");
  if (src) {
    /* "ValidationException:http://internal..." and "com.amazon...#ValidationException" */
    const char *h = strrchr(src, '#');
    if (h) src = h + 1;
    size_t k = strcspn(src, ":");
    if (k >= sizeof name) k = sizeof name - 1;
    memcpy(name, src, k);
    name[k] = 0;
  }
  int status = 0;
  for (size_t i = 0; name[0] && i < sizeof ERRS / sizeof *ERRS; i++)
    if (!strcasecmp(name, ERRS[i].name)) {
      status = ERRS[i].status;
      /* report the canonical PascalCase name */
      snprintf(name, sizeof name, "%s", ERRS[i].name);
      break;
    }
  if (!status) status = http_status >= 400 && http_status <= 599 ? http_status : 502;
  const char *msg = gstr(j, "message");
  if (!msg || !*msg) msg = gstr(j, "Message");
  char fallback[160];
  if (!msg || !*msg) {
    snprintf(fallback, sizeof fallback, "bedrock: %s", name[0] ? name : "upstream error");
    msg = fallback;
  }
  pc_err_set(err, status, type_for_status(status), "%s", msg);
  if (code && code_cap) snprintf(code, code_cap, "%s", name);
  cJSON_Delete(j);
}

/* ---------------- streams ---------------- */

void xb_stream_init(xb_stream *s, const char *id, const char *model, long long created)
{
  memset(s, 0, sizeof *s);
  snprintf(s->id, sizeof s->id, "%s", id ? id : "chatcmpl-bedrock");
  snprintf(s->model, sizeof s->model, "%s", model ? model : "");
  s->created = created;
  aws_es_decoder_init(&s->dec, 0);
}

void xb_stream_free(xb_stream *s)
{
  free(s->tool_of);
  aws_es_decoder_free(&s->dec);
  memset(s, 0, sizeof *s);
}

/* a chunk skeleton; *delta gets choices[0].delta; no_choice: "choices": [] (usage chunk);
 * finish: finish_reason (NULL: null) */
static cJSON *chunk(ctx *c, const xb_stream *s, cJSON **delta, int no_choice, const char *finish)
{
  cJSON *o = cJSON_CreateObject();
  put_str(c, o, "id", s->id);
  put_str(c, o, "object", "chat.completion.chunk");
  put_num(c, o, "created", (double)s->created);
  put_str(c, o, "model", s->model);
  cJSON *chs = put_arr(c, o, "choices");
  if (!no_choice) {
    cJSON *ch = push(c, chs, cJSON_CreateObject());
    put_num(c, ch, "index", 0);
    *delta = put_obj(c, ch, "delta");
    put(c, ch, "finish_reason", finish ? cJSON_CreateString(finish) : cJSON_CreateNull());
  }
  if (c->failed) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

static int emit(ctx *c, cJSON *o, pc_chunk_fn cb, void *ud)
{
  if (c->failed || !o) {
    cJSON_Delete(o);
    return -1;
  }
  int rc = cb(ud, o);
  cJSON_Delete(o);
  return rc;
}

#define XB_MAX_BLOCKS 4096

static int set_tool_of(ctx *c, xb_stream *s, long long idx, int tool)
{
  if (idx < 0 || idx >= XB_MAX_BLOCKS)
    return fail(c, 502, "contentBlockIndex", "bedrock stream: contentBlockIndex %lld out of range", idx);
  if (idx >= s->ntool_of) {
    int n = s->ntool_of ? s->ntool_of : 8;
    while (n <= idx) n *= 2;
    int *t = realloc(s->tool_of, (size_t)n * sizeof *t);
    if (!t) return oom(c);
    for (int i = s->ntool_of; i < n; i++) t[i] = -1;
    s->tool_of = t;
    s->ntool_of = n;
  }
  s->tool_of[idx] = tool;
  return 0;
}

int xb_stream_event(xb_stream *s, const char *et, const char *json, size_t n, pc_chunk_fn cb, void *ud, pc_err *err)
{
  ctx cc = {err, 0, 0}, *c = &cc;
  if (!et) return 0;
  cJSON *j = cJSON_ParseWithLength(json ? json : "", n);
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    fail(c, 502, et, "bedrock stream: event %s has no JSON object payload", et);
    return -1;
  }
  int rc = 0;
  cJSON *delta = NULL, *o = NULL;
  if (!strcmp(et, "messageStart")) {
    s->started = 1;
    o = chunk(c, s, &delta, 0, NULL);
    put_str(c, delta, "role", "assistant");
    put_str(c, delta, "content", "");
    rc = emit(c, o, cb, ud);
  } else if (!strcmp(et, "contentBlockStart")) {
    const cJSON *tu = gobj(gobj(j, "start"), "toolUse");
    if (tu) {
      const char *tid = gstr(tu, "toolUseId"), *name = gstr(tu, "name");
      long long idx = gll(j, "contentBlockIndex", -1);
      if (!tid || !name) rc = fail(c, 502, et, "bedrock stream: toolUse start without toolUseId or name");
      else if ((rc = set_tool_of(c, s, idx, s->ntools)) == 0) {
        o = chunk(c, s, &delta, 0, NULL);
        cJSON *tc = push(c, put_arr(c, delta, "tool_calls"), cJSON_CreateObject());
        put_num(c, tc, "index", s->ntools);
        put_str(c, tc, "id", tid);
        put_str(c, tc, "type", "function");
        cJSON *fn = put_obj(c, tc, "function");
        put_str(c, fn, "name", name);
        put_str(c, fn, "arguments", "");
        s->ntools++;
        rc = emit(c, o, cb, ud);
      }
    }
  } else if (!strcmp(et, "contentBlockDelta")) {
    const cJSON *d = gobj(j, "delta"), *tu, *rcd;
    long long idx = gll(j, "contentBlockIndex", -1);
    if (cJSON_IsString(get(d, "text"))) {
      o = chunk(c, s, &delta, 0, NULL);
      put_str(c, delta, "content", gstr(d, "text"));
      rc = emit(c, o, cb, ud);
    } else if ((tu = gobj(d, "toolUse"))) {
      const char *frag = gstr(tu, "input");
      int tool = idx >= 0 && idx < s->ntool_of ? s->tool_of[idx] : -1;
      if (tool < 0) rc = fail(c, 502, et, "bedrock stream: toolUse delta for block %lld, which did not start a tool call", idx);
      else if (!frag) rc = fail(c, 502, et, "bedrock stream: toolUse delta without input");
      else {
        o = chunk(c, s, &delta, 0, NULL);
        cJSON *tc = push(c, put_arr(c, delta, "tool_calls"), cJSON_CreateObject());
        put_num(c, tc, "index", tool);
        put_str(c, put_obj(c, tc, "function"), "arguments", frag);
        rc = emit(c, o, cb, ud);
      }
    } else if ((rcd = gobj(d, "reasoningContent"))) {
      if (cJSON_IsString(get(rcd, "text"))) {
        o = chunk(c, s, &delta, 0, NULL);
        put_str(c, delta, "reasoning_content", gstr(rcd, "text"));
        rc = emit(c, o, cb, ud);
      } else if (gstr(rcd, "signature")) {
        o = chunk(c, s, &delta, 0, NULL);
        cJSON *tb = push(c, put_arr(c, delta, "thinking_blocks"), cJSON_CreateObject());
        put_str(c, tb, "type", "thinking");
        put_str(c, tb, "thinking", "");
        put_str(c, tb, "signature", gstr(rcd, "signature"));
        rc = emit(c, o, cb, ud);
      } else if (gstr(rcd, "redactedContent")) {
        o = chunk(c, s, &delta, 0, NULL);
        cJSON *tb = push(c, put_arr(c, delta, "thinking_blocks"), cJSON_CreateObject());
        put_str(c, tb, "type", "redacted_thinking");
        put_str(c, tb, "data", gstr(rcd, "redactedContent"));
        rc = emit(c, o, cb, ud);
      }
    }
  } else if (!strcmp(et, "messageStop")) {
    s->finished = 1;
    o = chunk(c, s, &delta, 0, xb_stop_to_finish(gstr(j, "stopReason")));
    rc = emit(c, o, cb, ud);
  } else if (!strcmp(et, "metadata")) {
    s->done = 1;
    o = chunk(c, s, &delta, 1, NULL);
    put(c, o, "usage", hub_usage(c, gobj(j, "usage")));
    rc = emit(c, o, cb, ud);
  } else if (strstr(et, "Exception")) {
    /* an exception sent as an event (the usual path is xb_stream_message) */
    xb_error_from_upstream(502, et, json, n, err, NULL, 0);
    rc = XB_EUPSTREAM;
  }
  /* contentBlockStop and unknown events: nothing */
  cJSON_Delete(j);
  return rc;
}

int xb_stream_message(xb_stream *s, const aws_es_message *m, pc_chunk_fn cb, void *ud, pc_err *err)
{
  char type[128];
  if (aws_es_str_eq(m->message_type, "exception")) {
    snprintf(type, sizeof type, "%.*s", (int)(m->exception_type.n < 120 ? m->exception_type.n : 120),
             m->exception_type.p ? m->exception_type.p : "");
    xb_error_from_upstream(502, type, (const char *)m->payload, m->payload_len, err, NULL, 0);
    return XB_EUPSTREAM;
  }
  if (aws_es_str_eq(m->message_type, "error")) {
    snprintf(type, sizeof type, "%.*s", (int)(m->error_code.n < 120 ? m->error_code.n : 120),
             m->error_code.p ? m->error_code.p : "");
    xb_error_from_upstream(502, type, NULL, 0, err, NULL, 0);
    if (m->error_message.p && err)
      snprintf(err->msg, sizeof err->msg, "%.*s", (int)(m->error_message.n < 380 ? m->error_message.n : 380),
               m->error_message.p);
    return XB_EUPSTREAM;
  }
  if (!m->event_type.p) return 0; /* not an event we know how to read */
  snprintf(type, sizeof type, "%.*s", (int)(m->event_type.n < 120 ? m->event_type.n : 120), m->event_type.p);
  return xb_stream_event(s, type, (const char *)m->payload, m->payload_len, cb, ud, err);
}

typedef struct feed_ctx {
  xb_stream *s;
  pc_chunk_fn cb;
  void *ud;
  pc_err *err;
  int rc;
} feed_ctx;

static int on_message(void *ud, const aws_es_message *m)
{
  feed_ctx *f = ud;
  int rc = xb_stream_message(f->s, m, f->cb, f->ud, f->err);
  f->rc = rc;
  return rc ? 1 : 0;
}

int xb_stream_feed(xb_stream *s, const void *p, size_t n, pc_chunk_fn cb, void *ud, pc_err *err)
{
  feed_ctx f = {s, cb, ud, err, 0};
  int rc = aws_es_decoder_feed(&s->dec, p, n, on_message, &f);
  if (rc == -1 && aws_es_decoder_error(&s->dec)) {
    pc_err_set(err, 502, "", "bedrock stream: %s", aws_es_decoder_error(&s->dec));
    return -1;
  }
  return rc ? f.rc : 0;
}

int xb_stream_end(xb_stream *s, pc_err *err)
{
  if (aws_es_decoder_pending(&s->dec)) {
    pc_err_set(err, 502, "", "bedrock stream ended early: %zu bytes of an incomplete event-stream message",
               aws_es_decoder_pending(&s->dec));
    return -1;
  }
  if (!s->finished) {
    pc_err_set(err, 502, "", "bedrock stream ended early: no messageStop");
    return -1;
  }
  return 0;
}

/* ---------------- embeddings (InvokeModel) ---------------- */

xb_emb_family xb_emb_family_of(const char *m)
{
  if (!m) return XB_EMB_NONE;
  const char *slash = strrchr(m, '/');
  if (slash) m = slash + 1;
  /* cross-region inference profiles: "us.", "eu.", "apac.", "global." ... before the provider */
  const char *dot = strchr(m, '.');
  if (dot && dot - m <= 6 && strncmp(m, "amazon.", 7) && strncmp(m, "cohere.", 7)) m = dot + 1;
  if (!strncmp(m, "amazon.titan-embed-text-v2", 26)) return XB_EMB_TITAN;
  if (!strncmp(m, "cohere.embed-", 13)) return XB_EMB_COHERE;
  return XB_EMB_NONE;
}

int xb_invoke_path(pc_buf *out, const char *model_id)
{
  if (!model_id || !*model_id) return -1;
  if (pc_buf_adds(out, "/model/") < 0 || aws_uri_encode(out, model_id, strlen(model_id), 0) < 0) return -1;
  return pc_buf_adds(out, "/invoke");
}

cJSON *xb_embed_requests(const cJSON *oai, xb_emb_family fam, int *base64, pc_err *err)
{
  ctx c = {err, 0, 0};
  if (base64) *base64 = 0;
  if (!cJSON_IsObject(oai)) {
    fail(&c, 400, "", "the embeddings request must be a JSON object");
    return NULL;
  }
  if (fam != XB_EMB_TITAN && fam != XB_EMB_COHERE) {
    const char *m = gstr(oai, "model");
    fail(&c, 400, "model", "model: \"%.120s\" is not an embedding model bedrock serves here (amazon.titan-embed-text-v2:0, cohere.embed-english-v3, cohere.embed-multilingual-v3)", m ? m : "");
    return NULL;
  }
  const cJSON *in = get(oai, "input");
  int n = cJSON_IsString(in) ? 1 : cJSON_IsArray(in) ? cJSON_GetArraySize(in) : 0;
  if (n < 1) {
    fail(&c, 400, "input", "input: must be a string or a non-empty array of strings (bedrock embeddings)");
    return NULL;
  }
  int max = fam == XB_EMB_TITAN ? XB_EMB_TITAN_MAX : XB_EMB_COHERE_MAX;
  if (n > max) {
    fail(&c, 400, "input", "input: %d texts, bedrock %s embeds at most %d per request", n,
         fam == XB_EMB_TITAN ? "Titan" : "Cohere", max);
    return NULL;
  }
  for (int i = 0; cJSON_IsArray(in) && i < n; i++)
    if (!cJSON_IsString(cJSON_GetArrayItem(in, i))) {
      char p[32];
      snprintf(p, sizeof p, "input[%d]", i);
      fail(&c, 400, p, "%s: bedrock embeds texts only (token arrays are not supported)", p);
      return NULL;
    }
  const cJSON *ef = get(oai, "encoding_format");
  if (ef && !cJSON_IsNull(ef)) {
    const char *s = cJSON_GetStringValue(ef);
    if (!s || (strcmp(s, "float") && strcmp(s, "base64"))) {
      fail(&c, 400, "encoding_format", "encoding_format: must be \"float\" or \"base64\" for bedrock");
      return NULL;
    }
    if (base64) *base64 = !strcmp(s, "base64");
  }
  const cJSON *dim = get(oai, "dimensions");
  int has_dim = dim && !cJSON_IsNull(dim);
  const cJSON *it = get(oai, "input_type");
  const char *itype = "search_document";
  if (fam == XB_EMB_TITAN) {
    if (has_dim && !(cJSON_IsNumber(dim) && (dim->valuedouble == 256 || dim->valuedouble == 512 || dim->valuedouble == 1024))) {
      fail(&c, 400, "dimensions", "dimensions: bedrock Titan Text Embeddings v2 supports 256, 512 or 1024");
      return NULL;
    }
  } else {
    if (has_dim) {
      fail(&c, 400, "dimensions", "dimensions: bedrock Cohere Embed v3 models have a fixed size; leave dimensions out");
      return NULL;
    }
    if (it && !cJSON_IsNull(it)) {
      const char *s = cJSON_GetStringValue(it);
      if (!s || (strcmp(s, "search_document") && strcmp(s, "search_query") && strcmp(s, "classification") && strcmp(s, "clustering"))) {
        fail(&c, 400, "input_type", "input_type: must be search_document, search_query, classification or clustering for bedrock Cohere");
        return NULL;
      }
      itype = s;
    }
  }
  cJSON *out = cJSON_CreateArray();
  if (!out) {
    oom(&c);
    return NULL;
  }
  if (fam == XB_EMB_TITAN) {
    for (int i = 0; i < n && !c.failed; i++) {
      const cJSON *t = cJSON_IsString(in) ? in : cJSON_GetArrayItem(in, i);
      cJSON *b = push(&c, out, cJSON_CreateObject());
      put_str(&c, b, "inputText", t->valuestring);
      if (has_dim) put_num(&c, b, "dimensions", dim->valuedouble);
      put(&c, b, "normalize", cJSON_CreateTrue());
    }
  } else {
    cJSON *b = push(&c, out, cJSON_CreateObject());
    cJSON *texts = put(&c, b, "texts", cJSON_CreateArray());
    for (int i = 0; i < n && !c.failed; i++) {
      const cJSON *t = cJSON_IsString(in) ? in : cJSON_GetArrayItem(in, i);
      push(&c, texts, cJSON_CreateString(t->valuestring));
    }
    put_str(&c, b, "input_type", itype);
    cJSON *et = put(&c, b, "embedding_types", cJSON_CreateArray());
    push(&c, et, cJSON_CreateString("float"));
  }
  if (c.failed) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}

/* One vector -> a new array of numbers (a copy) or its base64 float32 string; NULL + err. */
static cJSON *vec_out(ctx *c, const cJSON *vec, int base64)
{
  int n = cJSON_GetArraySize(vec);
  const cJSON *v;
  cJSON_ArrayForEach(v, vec) if (!cJSON_IsNumber(v)) {
    fail(c, 502, "", "bedrock answered an embedding with a value that is not a number");
    return NULL;
  }
  if (!base64) {
    cJSON *a = cJSON_Duplicate(vec, 1);
    if (!a) oom(c);
    return a;
  }
  unsigned char *buf = malloc((size_t)(n > 0 ? n : 1) * 4);
  if (!buf) {
    oom(c);
    return NULL;
  }
  size_t k = 0;
  cJSON_ArrayForEach(v, vec) {
    float f = (float)v->valuedouble;
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int b = 0; b < 4; b++) buf[k++] = (unsigned char)(u >> (8 * b));
  }
  char *s = xl_b64_encode(buf, k);
  free(buf);
  cJSON *out = s ? cJSON_CreateString(s) : NULL;
  free(s);
  if (!out) oom(c);
  return out;
}

cJSON *xb_embed_response(xb_emb_family fam, const cJSON *const *resps, const long long *hdr_tokens, size_t n,
                         const char *model, int base64, pc_err *err)
{
  ctx c = {err, 0, 0};
  cJSON *out = cJSON_CreateObject();
  if (!out) {
    oom(&c);
    return NULL;
  }
  put_str(&c, out, "object", "list");
  cJSON *data = put(&c, out, "data", cJSON_CreateArray());
  long long tokens = 0;
  int index = 0;
  for (size_t i = 0; i < n && !c.failed; i++) {
    const cJSON *r = resps[i];
    long long t = hdr_tokens ? hdr_tokens[i] : -1;
    const cJSON *vecs[XB_EMB_COHERE_MAX];
    int nv = 0;
    if (fam == XB_EMB_TITAN) {
      const cJSON *e = garr(r, "embedding");
      if (e) vecs[nv++] = e;
      const cJSON *tc = get(r, "inputTextTokenCount");
      if (cJSON_IsNumber(tc)) t = d2ll(tc->valuedouble, t);
    } else if (fam == XB_EMB_COHERE) {
      const cJSON *e = get(r, "embeddings");
      if (cJSON_IsObject(e)) e = get(e, "float");
      const cJSON *v;
      if (cJSON_IsArray(e)) cJSON_ArrayForEach(v, e) {
        if (!cJSON_IsArray(v) || nv >= XB_EMB_COHERE_MAX) {
          nv = 0;
          break;
        }
        vecs[nv++] = v;
      }
    }
    if (!nv) {
      fail(&c, 502, "", "bedrock answered an InvokeModel embeddings call without embeddings");
      break;
    }
    for (int k = 0; k < nv && !c.failed; k++) {
      cJSON *d = push(&c, data, cJSON_CreateObject());
      put_str(&c, d, "object", "embedding");
      put_num(&c, d, "index", index++);
      cJSON *vo = vec_out(&c, vecs[k], base64);
      if (vo) put(&c, d, "embedding", vo);
    }
    if (t > 0) tokens += t;
  }
  put_str(&c, out, "model", model ? model : "");
  cJSON *u = put(&c, out, "usage", cJSON_CreateObject());
  put_num(&c, u, "prompt_tokens", (double)tokens);
  put_num(&c, u, "total_tokens", (double)tokens);
  if (c.failed) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}
