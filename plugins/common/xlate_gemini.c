/* xlate_gemini.c - hub <-> Gemini generateContent (see xlate_gemini.h for the mapping). */
#include "xlate_gemini.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define SCHEMA_REF_DEPTH 16
#define SCHEMA_BUDGET 20000 /* schema nodes converted per request (guards $ref blow-up) */

/* ---------------------------------------------------------------------------------------- */
/* small helpers                                                                              */

static const char *jstr(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *jget(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return (v && !cJSON_IsNull(v)) ? v : NULL;
}

static void oom(pc_err *e) { pc_err_set(e, 500, "", "out of memory while translating for gemini"); }

/* Add a new item to an object/array; on failure the item is deleted and -1 returned. */
static int add(cJSON *o, const char *k, cJSON *v)
{
  if (!v) return -1;
  if (k ? !cJSON_AddItemToObject(o, k, v) : !cJSON_AddItemToArray(o, v)) {
    cJSON_Delete(v);
    return -1;
  }
  return 0;
}
static int add_str(cJSON *o, const char *k, const char *s) { return add(o, k, cJSON_CreateString(s)); }
static int add_num(cJSON *o, const char *k, double d) { return add(o, k, cJSON_CreateNumber(d)); }
static int add_dup(cJSON *o, const char *k, const cJSON *v) { return add(o, k, cJSON_Duplicate(v, 1)); }

static cJSON *obj_or(cJSON *o, const char *k)
{
  cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  if (v) return v;
  v = cJSON_CreateObject();
  return add(o, k, v) ? NULL : v;
}

static cJSON *arr_or(cJSON *o, const char *k)
{
  cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  if (v) return v;
  v = cJSON_CreateArray();
  return add(o, k, v) ? NULL : v;
}

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int ieq(const char *a, const char *b, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])) return 0;
  return 1;
}

/* FNV-1a 64 */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

/* ---------------------------------------------------------------------------------------- */
/* finish reasons, errors                                                                     */

const char *xg_finish_reason(const char *r, int has_tool_calls)
{
  static const char *const filt[] = {"SAFETY", "RECITATION", "BLOCKLIST",    "PROHIBITED_CONTENT",
                                     "SPII",   "LANGUAGE",   "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT",
                                     NULL};
  if (r && !strcmp(r, "MAX_TOKENS")) return "length";
  for (int i = 0; r && filt[i]; i++)
    if (!strcmp(r, filt[i])) return "content_filter";
  return has_tool_calls ? "tool_calls" : "stop";
}

const char *xg_error_type(int status)
{
  switch (status) {
  case 400: return "invalid_request_error";
  case 401: return "authentication_error";
  case 403: return "permission_error";
  case 404: return "not_found_error";
  case 413: return "request_too_large";
  case 429: return "rate_limit_error";
  case 503:
  case 529: return "overloaded_error";
  case 504: return "timeout_error";
  default: return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
  }
}

static int status_of_name(const char *s)
{
  static const struct {
    const char *n;
    int st;
  } t[] = {{"INVALID_ARGUMENT", 400},
           {"FAILED_PRECONDITION", 400},
           {"OUT_OF_RANGE", 400},
           {"UNAUTHENTICATED", 401},
           {"PERMISSION_DENIED", 403},
           {"NOT_FOUND", 404},
           {"ALREADY_EXISTS", 409},
           {"ABORTED", 409},
           {"RESOURCE_EXHAUSTED", 429},
           {"CANCELLED", 499},
           {"UNIMPLEMENTED", 501},
           {"UNAVAILABLE", 503},
           {"DEADLINE_EXCEEDED", 504},
           {"INTERNAL", 500},
           {"UNKNOWN", 500},
           {"DATA_LOSS", 500}};
  for (size_t i = 0; s && i < sizeof t / sizeof t[0]; i++)
    if (!strcmp(s, t[i].n)) return t[i].st;
  return 0;
}

int xg_error_parse(int http_status, const char *body, size_t n, xg_error *out)
{
  memset(out, 0, sizeof *out);
  cJSON *root = body && n ? cJSON_ParseWithLength(body, n) : NULL;
  const cJSON *o = root;
  if (cJSON_IsArray(o) && cJSON_GetArraySize(o) == 1) o = cJSON_GetArrayItem(o, 0);
  const cJSON *err = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "error") : NULL;
  int rc = -1;
  int st = http_status >= 400 && http_status <= 599 ? http_status : 0;
  if (cJSON_IsObject(err)) {
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    const char *gs = jstr(err, "status"), *msg = jstr(err, "message");
    if (!st && cJSON_IsNumber(code) && code->valuedouble >= 400 && code->valuedouble <= 599)
      st = (int)code->valuedouble;
    if (!st) st = status_of_name(gs);
    snprintf(out->gstatus, sizeof out->gstatus, "%s", gs ? gs : "");
    snprintf(out->message, sizeof out->message, "%s", msg && *msg ? msg : (gs && *gs ? gs : "gemini error"));
    rc = 0;
  }
  if (!st) st = 502;
  out->status = st;
  snprintf(out->type, sizeof out->type, "%s", xg_error_type(st));
  if (rc) snprintf(out->message, sizeof out->message, "gemini returned HTTP %d", st);
  cJSON_Delete(root);
  return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* URLs                                                                                       */

static int url_safe(const char *s)
{
  if (!s || !*s || strspn(s, ".") == strlen(s)) return 0; /* nor "." / ".." */
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && !strchr("._@-", *s)) return 0;
  return 1;
}

int xg_url(pc_buf *out, xg_flavor flavor, const char *base, const char *project, const char *location,
           const char *model, const char *method)
{
  static const char *const methods[] = {
      "generateContent", "streamGenerateContent", "batchEmbedContents", "embedContent", "predict", "countTokens", NULL};
  int ok = 0;
  for (int i = 0; method && methods[i]; i++)
    if (!strcmp(method, methods[i])) ok = 1;
  if (!ok || !model) return -1;
  if (starts(model, "models/")) model += 7;
  if (!url_safe(model)) return -1;
  if (flavor == XG_VERTEX && (!url_safe(project) || !url_safe(location))) return -1;
  size_t blen = base ? strlen(base) : 0;
  while (blen && base[blen - 1] == '/') blen--;
  const char *alt = !strcmp(method, "streamGenerateContent") ? "?alt=sse" : "";
  size_t n0 = out->n;
  int rc;
  if (flavor == XG_VERTEX) {
    if (blen)
      rc = pc_buf_add(out, base, blen);
    else if (!strcmp(location, "global"))
      rc = pc_buf_adds(out, "https://aiplatform.googleapis.com");
    else
      rc = pc_buf_printf(out, "https://%s-aiplatform.googleapis.com", location);
    if (!rc)
      rc = pc_buf_printf(out, "/v1/projects/%s/locations/%s/publishers/google/models/%s:%s%s", project, location, model,
                         method, alt);
  } else {
    rc = blen ? pc_buf_add(out, base, blen) : pc_buf_adds(out, "https://generativelanguage.googleapis.com");
    if (!rc) rc = pc_buf_printf(out, "/v1beta/models/%s:%s%s", model, method, alt);
  }
  if (rc && out->p) { /* keep out as it was */
    out->n = n0;
    out->p[n0] = 0;
  }
  return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* JSON Schema -> Gemini Schema (OpenAPI 3.0 subset)                                         */

typedef struct sch_ctx {
  const cJSON *root;
  int budget;
  pc_err *e;
  const char *path;
} sch_ctx;

static const cJSON *ref_resolve(const cJSON *root, const char *ref)
{
  if (strcmp(ref, "#") == 0) return root;
  if (!starts(ref, "#/")) return NULL;
  const cJSON *cur = root;
  char tok[256];
  const char *p = ref + 2;
  while (cur) {
    size_t k = 0;
    for (; *p && *p != '/'; p++) {
      char c = *p;
      if (c == '~') {
        if (p[1] == '0')
          c = '~';
        else if (p[1] == '1')
          c = '/';
        else
          return NULL;
        p++;
      }
      if (k + 1 >= sizeof tok) return NULL;
      tok[k++] = c;
    }
    tok[k] = 0;
    if (cJSON_IsObject(cur))
      cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    else if (cJSON_IsArray(cur)) {
      char *end;
      long i = strtol(tok, &end, 10);
      cur = (*tok && !*end && i >= 0 && i < 100000) ? cJSON_GetArrayItem(cur, (int)i) : NULL;
    } else
      cur = NULL;
    if (!*p) break;
    p++;
  }
  return cur;
}

static const char *gtype(const char *t)
{
  static const char *const m[][2] = {{"string", "STRING"},   {"number", "NUMBER"}, {"integer", "INTEGER"},
                                     {"boolean", "BOOLEAN"}, {"array", "ARRAY"},   {"object", "OBJECT"},
                                     {"null", "NULL"}};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    if (!strcmp(t, m[i][0])) return m[i][1];
  return NULL;
}

static cJSON *sch_conv(sch_ctx *c, const cJSON *s, int refdepth);

static int sch_fail(sch_ctx *c, const char *fmt, const char *what)
{
  if (c->e->status == 0) {
    char m[200];
    snprintf(m, sizeof m, fmt, what);
    pc_err_set(c->e, 400, c->path, "%s: %s (not supported by gemini's schema subset)", c->path, m);
  }
  return -1;
}

/* Convert into out (an object); returns 0 or -1 (c->e set). */
static int sch_fill(sch_ctx *c, const cJSON *s, int refdepth, cJSON *out)
{
  if (--c->budget < 0) return sch_fail(c, "%s", "schema too large");
  if (cJSON_IsTrue(s) || !s) return 0; /* "anything" */
  if (!cJSON_IsObject(s)) return sch_fail(c, "%s", "a schema must be an object");
  const char *ref = jstr(s, "$ref");
  if (ref) {
    if (refdepth >= SCHEMA_REF_DEPTH) return sch_fail(c, "$ref %s nests too deep or is recursive", ref);
    const cJSON *t = ref_resolve(c->root, ref);
    if (!t) return sch_fail(c, "$ref %s cannot be resolved (only local refs)", ref);
    if (sch_fill(c, t, refdepth + 1, out)) return -1;
    const char *d = jstr(s, "description");
    if (d) {
      cJSON_DeleteItemFromObjectCaseSensitive(out, "description");
      if (add_str(out, "description", d)) return -1;
    }
    return 0;
  }
  const cJSON *allof = jget(s, "allOf");
  if (allof) {
    if (!cJSON_IsArray(allof) || cJSON_GetArraySize(allof) != 1) return sch_fail(c, "%s", "allOf with several members");
    if (sch_fill(c, cJSON_GetArrayItem(allof, 0), refdepth, out)) return -1;
  }
  if (jget(s, "not")) return sch_fail(c, "%s", "\"not\"");

  const cJSON *type = jget(s, "type");
  int nullable = 0;
  const char *gt = NULL;
  cJSON *anyof_types = NULL;
  if (cJSON_IsString(type)) {
    gt = gtype(type->valuestring);
    if (!gt) return sch_fail(c, "unknown type \"%s\"", type->valuestring);
  } else if (cJSON_IsArray(type)) {
    int nn = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, type)
    {
      if (!cJSON_IsString(t) || !gtype(t->valuestring)) return sch_fail(c, "%s", "bad type list");
      if (!strcmp(t->valuestring, "null"))
        nullable = 1;
      else
        nn++;
    }
    if (nn == 0)
      gt = "NULL";
    else if (nn == 1) {
      cJSON_ArrayForEach(t, type) if (strcmp(t->valuestring, "null")) gt = gtype(t->valuestring);
    } else {
      anyof_types = cJSON_CreateArray();
      if (!anyof_types) return -1;
      cJSON_ArrayForEach(t, type)
      {
        if (!strcmp(t->valuestring, "null")) continue;
        cJSON *o = cJSON_CreateObject();
        if (add(anyof_types, NULL, o) || add_str(o, "type", gtype(t->valuestring))) {
          cJSON_Delete(anyof_types);
          return -1;
        }
      }
    }
  } else if (type)
    return sch_fail(c, "%s", "\"type\" must be a string or an array");
  if (gt) {
    cJSON_DeleteItemFromObjectCaseSensitive(out, "type");
    if (add_str(out, "type", gt)) return -1;
  }
  if (anyof_types && add(out, "anyOf", anyof_types)) return -1;
  if (nullable || cJSON_IsTrue(jget(s, "nullable"))) {
    cJSON_DeleteItemFromObjectCaseSensitive(out, "nullable");
    if (add(out, "nullable", cJSON_CreateTrue())) return -1;
  }

  static const char *const copy_str[] = {"description", "title", "pattern", NULL};
  for (int i = 0; copy_str[i]; i++) {
    const char *v = jstr(s, copy_str[i]);
    if (v) {
      cJSON_DeleteItemFromObjectCaseSensitive(out, copy_str[i]);
      if (add_str(out, copy_str[i], v)) return -1;
    }
  }
  static const char *const copy_num[] = {"minimum",  "maximum",       "minLength",     "maxLength", "minItems",
                                         "maxItems", "minProperties", "maxProperties", NULL};
  for (int i = 0; copy_num[i]; i++) {
    const cJSON *v = jget(s, copy_num[i]);
    if (cJSON_IsNumber(v)) {
      cJSON_DeleteItemFromObjectCaseSensitive(out, copy_num[i]);
      if (add_dup(out, copy_num[i], v)) return -1;
    }
  }
  static const char *const copy_any[] = {"default", "example", "propertyOrdering", "required", NULL};
  for (int i = 0; copy_any[i]; i++) {
    const cJSON *v = jget(s, copy_any[i]);
    if (v) {
      cJSON_DeleteItemFromObjectCaseSensitive(out, copy_any[i]);
      if (add_dup(out, copy_any[i], v)) return -1;
    }
  }
  /* format: only the ones Gemini accepts for the type */
  const char *fmt = jstr(s, "format");
  const char *ty = jstr(out, "type");
  if (fmt && ty &&
      ((!strcmp(ty, "STRING") && (!strcmp(fmt, "date-time") || !strcmp(fmt, "enum"))) ||
       (!strcmp(ty, "INTEGER") && (!strcmp(fmt, "int32") || !strcmp(fmt, "int64"))) ||
       (!strcmp(ty, "NUMBER") && (!strcmp(fmt, "float") || !strcmp(fmt, "double"))))) {
    cJSON_DeleteItemFromObjectCaseSensitive(out, "format");
    if (add_str(out, "format", fmt)) return -1;
  }
  /* enum / const: Gemini's enum is a list of strings */
  const cJSON *en = jget(s, "enum"), *cst = cJSON_GetObjectItemCaseSensitive(s, "const");
  if (en || cst) {
    cJSON *list = cJSON_CreateArray();
    if (!list) return -1;
    const cJSON *v;
    if (cJSON_IsArray(en)) {
      cJSON_ArrayForEach(v, en)
      {
        if (cJSON_IsString(v)) {
          if (add_str(list, NULL, v->valuestring)) goto enum_fail;
        } else if (cJSON_IsNull(v)) {
          cJSON_DeleteItemFromObjectCaseSensitive(out, "nullable");
          if (add(out, "nullable", cJSON_CreateTrue())) goto enum_fail;
        } else {
          char *t = cJSON_PrintUnformatted(v);
          int r = t ? add_str(list, NULL, t) : -1;
          free(t);
          if (r) goto enum_fail;
        }
      }
    }
    if (cst) {
      if (cJSON_IsString(cst)) {
        if (add_str(list, NULL, cst->valuestring)) goto enum_fail;
      } else {
        char *t = cJSON_PrintUnformatted(cst);
        int r = t ? add_str(list, NULL, t) : -1;
        free(t);
        if (r) goto enum_fail;
      }
    }
    cJSON_DeleteItemFromObjectCaseSensitive(out, "enum");
    if (add(out, "enum", list)) return -1;
    if (!jstr(out, "type")) {
      if (add_str(out, "type", "STRING")) return -1;
    }
    goto enum_done;
  enum_fail:
    cJSON_Delete(list);
    return -1;
  }
enum_done:;
  const cJSON *props = jget(s, "properties");
  if (props) {
    if (!cJSON_IsObject(props)) return sch_fail(c, "%s", "\"properties\" must be an object");
    cJSON *po = obj_or(out, "properties");
    if (!po) return -1;
    const cJSON *p;
    cJSON_ArrayForEach(p, props)
    {
      cJSON *cv = sch_conv(c, p, refdepth);
      if (!cv) return -1;
      cJSON_DeleteItemFromObjectCaseSensitive(po, p->string);
      if (add(po, p->string, cv)) return -1;
    }
  }
  const cJSON *items = jget(s, "items");
  if (items) {
    if (cJSON_IsArray(items)) return sch_fail(c, "%s", "tuple \"items\"");
    cJSON *cv = sch_conv(c, items, refdepth);
    if (!cv) return -1;
    cJSON_DeleteItemFromObjectCaseSensitive(out, "items");
    if (add(out, "items", cv)) return -1;
  }
  const char *alts[] = {"anyOf", "oneOf"};
  for (int a = 0; a < 2; a++) {
    const cJSON *l = jget(s, alts[a]);
    if (!l) continue;
    if (!cJSON_IsArray(l)) return sch_fail(c, "\"%s\" must be an array", alts[a]);
    cJSON *ao = arr_or(out, "anyOf");
    if (!ao) return -1;
    const cJSON *m;
    cJSON_ArrayForEach(m, l)
    {
      cJSON *cv = sch_conv(c, m, refdepth);
      if (!cv || add(ao, NULL, cv)) return -1;
    }
  }
  return 0;
}

static cJSON *sch_conv(sch_ctx *c, const cJSON *s, int refdepth)
{
  cJSON *out = cJSON_CreateObject();
  if (!out) return NULL;
  if (sch_fill(c, s, refdepth, out)) {
    cJSON_Delete(out);
    return NULL;
  }
  return out;
}

/* A client's JSON may repeat a member name; everything here reads the first one (cJSON's lookup),
 * so a copied tree keeps only that one: the provider must not see a value aigw never checked. */
static void dedupe_keys(cJSON *j, int depth)
{
  if (!j || depth > 512) return;
  for (cJSON *a = j->child; a; a = a->next) {
    if (cJSON_IsObject(j) && a->string) {
      cJSON *b = a->next;
      while (b) {
        cJSON *nx = b->next;
        if (b->string && !strcmp(a->string, b->string)) cJSON_Delete(cJSON_DetachItemViaPointer(j, b));
        b = nx;
      }
    }
    dedupe_keys(a, depth + 1);
  }
}

/* JSON Schema for Gemini: converted (opts->schema_openapi) or passed through without "$schema".
 * Returns a new tree or NULL with e set. *empty_obj is set when the converted schema is an
 * OBJECT without properties. */
static cJSON *schema_for(const cJSON *s, int openapi, const char *path, pc_err *e, int *empty_obj)
{
  if (empty_obj) *empty_obj = 0;
  if (!openapi) {
    if (!cJSON_IsObject(s) && !cJSON_IsBool(s)) {
      pc_err_set(e, 400, path, "%s: a JSON Schema must be an object", path);
      return NULL;
    }
    cJSON *d = cJSON_Duplicate(s, 1);
    if (!d) {
      oom(e);
      return NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(d, "$schema");
    dedupe_keys(d, 0);
    return d;
  }
  sch_ctx c = {s, SCHEMA_BUDGET, e, path};
  cJSON *out = sch_conv(&c, s, 0);
  if (!out) {
    if (!e->status) oom(e);
    return NULL;
  }
  if (empty_obj) {
    const char *t = jstr(out, "type");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(out, "properties");
    *empty_obj = t && !strcmp(t, "OBJECT") && (!p || !p->child);
  }
  return out;
}

/* ---------------------------------------------------------------------------------------- */
/* request                                                                                    */

typedef struct rq {
  const xg_req_opts *o;
  pc_err *e;
  const cJSON *msgs;
  cJSON *contents;
  cJSON *sys; /* systemInstruction.parts, lazily */
  cJSON *cur; /* last content's parts */
  const char *cur_role;
  char path[96];
} rq;

static cJSON *turn(rq *q, const char *role)
{
  if (q->cur && !strcmp(q->cur_role, role)) return q->cur;
  if (q->cur && !q->cur->child) {
    /* the last turn stayed empty (e.g. an assistant message with content ""): drop it, and go on
     * with the turn before it when that has the wanted role, so that turns still alternate */
    cJSON *last = q->contents->child ? q->contents->child->prev : NULL;
    cJSON_Delete(cJSON_DetachItemViaPointer(q->contents, last));
    last = q->contents->child ? q->contents->child->prev : NULL;
    q->cur = NULL;
    if (last) {
      q->cur = cJSON_GetObjectItemCaseSensitive(last, "parts");
      q->cur_role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "role"));
      if (!strcmp(q->cur_role, role)) return q->cur;
    }
  }
  cJSON *c = cJSON_CreateObject();
  if (add(q->contents, NULL, c) || add_str(c, "role", role)) return NULL;
  cJSON *parts = cJSON_CreateArray();
  if (add(c, "parts", parts)) return NULL;
  q->cur = parts;
  q->cur_role = role;
  return parts;
}

static int text_part(cJSON *parts, const char *text)
{
  cJSON *p = cJSON_CreateObject();
  if (add(parts, NULL, p)) return -1;
  return add_str(p, "text", text);
}

static const char *mime_from_name(const char *u)
{
  static const char *const m[][2] = {{"png", "image/png"},   {"jpg", "image/jpeg"},      {"jpeg", "image/jpeg"},
                                     {"gif", "image/gif"},   {"webp", "image/webp"},     {"heic", "image/heic"},
                                     {"heif", "image/heif"}, {"pdf", "application/pdf"}, {"txt", "text/plain"},
                                     {"md", "text/md"},      {"csv", "text/csv"},        {"html", "text/html"},
                                     {"mp3", "audio/mp3"},   {"wav", "audio/wav"},       {"flac", "audio/flac"},
                                     {"mp4", "video/mp4"},   {"mov", "video/mov"},       {"json", "application/json"}};
  size_t n = strcspn(u, "?#");
  const char *dot = NULL;
  for (size_t i = 0; i < n; i++) {
    if (u[i] == '.') dot = u + i;
    if (u[i] == '/') dot = NULL;
  }
  if (!dot) return NULL;
  size_t el = (size_t)(u + n - dot - 1);
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    if (strlen(m[i][0]) == el && ieq(dot + 1, m[i][0], el)) return m[i][1];
  return NULL;
}

/* data:<mime>;base64,<data> -> inlineData part; -1 with e set when not such a URL. */
static cJSON *data_url_part(const char *url, const char *path, pc_err *e)
{
  const char *semi = strchr(url + 5, ';'), *comma = strchr(url + 5, ',');
  if (!semi || !comma || semi > comma || strncmp(semi, ";base64,", 8) || semi == url + 5) {
    pc_err_set(e, 400, path, "%s: only base64 data: URLs (data:<mime>;base64,...) are supported by gemini", path);
    return NULL;
  }
  cJSON *p = cJSON_CreateObject(), *d = cJSON_CreateObject();
  if (!p || !d) goto fail;
  cJSON_AddItemToObject(p, "inlineData", d);
  char mime[128];
  size_t ml = (size_t)(semi - (url + 5));
  if (ml >= sizeof mime) ml = sizeof mime - 1;
  memcpy(mime, url + 5, ml);
  mime[ml] = 0;
  if (add_str(d, "mimeType", mime) || add_str(d, "data", comma + 1)) goto fail2;
  return p;
fail:
  cJSON_Delete(d);
fail2:
  cJSON_Delete(p);
  oom(e);
  return NULL;
}

static cJSON *file_part(const char *uri, const char *mime)
{
  cJSON *p = cJSON_CreateObject(), *d = cJSON_CreateObject();
  if (!p || !d) {
    cJSON_Delete(p);
    cJSON_Delete(d);
    return NULL;
  }
  cJSON_AddItemToObject(p, "fileData", d);
  if (add_str(d, "mimeType", mime) || add_str(d, "fileUri", uri)) {
    cJSON_Delete(p);
    return NULL;
  }
  return p;
}

static int is_remote(const char *u) { return starts(u, "https://") || starts(u, "http://") || starts(u, "gs://"); }

/* one hub content part -> Gemini part (appended to parts) */
static int conv_part(rq *q, cJSON *parts, const cJSON *p, const char *path)
{
  pc_err *e = q->e;
  const char *type = jstr(p, "type");
  if (!type) {
    pc_err_set(e, 400, path, "%s: a content part needs a \"type\"", path);
    return -1;
  }
  cJSON *gp = NULL;
  if (!strcmp(type, "text") || !strcmp(type, "refusal")) {
    const char *t = jstr(p, type);
    if (!t) {
      pc_err_set(e, 400, path, "%s.%s must be a string", path, type);
      return -1;
    }
    if (!*t) return 0;
    if (text_part(parts, t)) goto nomem;
    return 0;
  } else if (!strcmp(type, "image_url")) {
    const cJSON *iu = cJSON_GetObjectItemCaseSensitive(p, "image_url");
    const char *url = cJSON_IsString(iu) ? iu->valuestring : jstr(iu, "url");
    if (!url) {
      pc_err_set(e, 400, path, "%s.image_url.url must be a string", path);
      return -1;
    }
    if (starts(url, "data:")) {
      gp = data_url_part(url, path, e);
      if (!gp) return -1;
    } else if (is_remote(url)) {
      const char *m = mime_from_name(url);
      gp = file_part(url, m ? m : "image/jpeg");
    } else {
      pc_err_set(e, 400, path, "%s.image_url.url: gemini takes data: URLs and http(s):// or gs:// URIs", path);
      return -1;
    }
  } else if (!strcmp(type, "file")) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(p, "file");
    const char *fd = jstr(f, "file_data"), *fid = jstr(f, "file_id"), *fn = jstr(f, "filename");
    const char *fmt = jstr(f, "format");
    if (fd && starts(fd, "data:")) {
      gp = data_url_part(fd, path, e);
      if (!gp) return -1;
    } else if (fd && fmt) { /* bare base64 with an explicit mime type */
      gp = cJSON_CreateObject();
      cJSON *d = cJSON_CreateObject();
      if (add(gp, "inlineData", d) || add_str(d, "mimeType", fmt) || add_str(d, "data", fd)) goto nomem_gp;
    } else if (fid && is_remote(fid)) {
      const char *m = fmt ? fmt : mime_from_name(fn ? fn : fid);
      if (!m) m = mime_from_name(fid);
      if (!m) {
        pc_err_set(e, 400, path,
                   "%s.file: gemini needs the file's MIME type; give file.format or a filename with an extension",
                   path);
        return -1;
      }
      gp = file_part(fid, m);
    } else {
      pc_err_set(e, 400, path,
                 "%s.file: gemini takes file_data as a base64 data: URL or file_id as a gs:// or https:// URI", path);
      return -1;
    }
  } else if (!strcmp(type, "input_audio")) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "input_audio");
    const char *data = jstr(a, "data"), *fmt = jstr(a, "format");
    if (!data || !fmt || strlen(fmt) > 16) {
      pc_err_set(e, 400, path, "%s.input_audio needs data and format", path);
      return -1;
    }
    char mime[32];
    snprintf(mime, sizeof mime, "audio/%s", fmt);
    gp = cJSON_CreateObject();
    cJSON *d = cJSON_CreateObject();
    if (add(gp, "inlineData", d) || add_str(d, "mimeType", mime) || add_str(d, "data", data)) goto nomem_gp;
  } else {
    pc_err_set(e, 400, path, "%s.type: content part type \"%s\" is not supported by gemini", path, type);
    return -1;
  }
  if (add(parts, NULL, gp)) goto nomem;
  return 0;
nomem_gp:
  cJSON_Delete(gp);
nomem:
  oom(e);
  return -1;
}

/* string or array of text parts -> NUL-terminated text in b (parts joined with "\n") */
static int content_text(const cJSON *c, pc_buf *b, const char *path, pc_err *e)
{
  if (!c || cJSON_IsNull(c)) return pc_buf_add(b, "", 0) ? (oom(e), -1) : 0;
  if (cJSON_IsString(c)) return pc_buf_adds(b, c->valuestring) ? (oom(e), -1) : 0;
  if (!cJSON_IsArray(c)) {
    pc_err_set(e, 400, path, "%s.content must be a string or an array of parts", path);
    return -1;
  }
  const cJSON *p;
  int i = 0, first = 1;
  if (pc_buf_add(b, "", 0)) goto nomem;
  cJSON_ArrayForEach(p, c)
  {
    const char *t = jstr(p, "type"), *tx = jstr(p, "text");
    if (!t || strcmp(t, "text") || !tx) {
      pc_err_set(e, 400, path, "%s.content[%d]: only text parts are supported by gemini here", path, i);
      return -1;
    }
    if ((!first && pc_buf_adds(b, "\n")) || pc_buf_adds(b, tx)) goto nomem;
    first = 0;
    i++;
  }
  return 0;
nomem:
  oom(e);
  return -1;
}

static const char *tool_name_for(const cJSON *msgs, int before, const char *id)
{
  for (int i = before - 1; i >= 0; i--) {
    const cJSON *m = cJSON_GetArrayItem(msgs, i);
    const char *r = jstr(m, "role");
    if (!r || strcmp(r, "assistant")) continue;
    const cJSON *tc;
    cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
    {
      const char *tid = jstr(tc, "id");
      if (tid && !strcmp(tid, id)) return jstr(cJSON_GetObjectItemCaseSensitive(tc, "function"), "name");
    }
  }
  return NULL;
}

static int conv_tool_msg(rq *q, const cJSON *m, int idx)
{
  pc_err *e = q->e;
  const char *path = q->path;
  const char *id = jstr(m, "tool_call_id");
  if (!id) {
    pc_err_set(e, 400, path, "%s.tool_call_id must be a string", path);
    return -1;
  }
  const char *name = tool_name_for(q->msgs, idx, id);
  if (!name) {
    pc_err_set(e, 400, path,
               "%s.tool_call_id: no earlier assistant tool call has id \"%.64s\" (gemini needs the function name)",
               path, id);
    return -1;
  }
  pc_buf b = {0};
  if (content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), &b, path, e)) {
    pc_buf_free(&b);
    return -1;
  }
  cJSON *val = cJSON_Parse(b.p);
  if (val && !cJSON_IsObject(val)) {
    cJSON_Delete(val);
    val = NULL;
  }
  int is_err = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "is_error"));
  cJSON *resp = NULL;
  if (val && !is_err)
    resp = val;
  else {
    resp = cJSON_CreateObject();
    if (!resp || add(resp, is_err ? "error" : "content", val ? val : cJSON_CreateString(b.p))) {
      cJSON_Delete(resp);
      resp = NULL;
    }
  }
  pc_buf_free(&b);
  if (!resp) goto nomem;
  cJSON *parts = turn(q, "user");
  cJSON *p = cJSON_CreateObject(), *fr = cJSON_CreateObject();
  if (!parts || add(parts, NULL, p) || add(p, "functionResponse", fr) || add_str(fr, "name", name)) {
    cJSON_Delete(resp);
    goto nomem;
  }
  if (add(fr, "response", resp)) goto nomem;
  return 0;
nomem:
  oom(e);
  return -1;
}

static int conv_assistant(rq *q, const cJSON *m)
{
  pc_err *e = q->e;
  const char *path = q->path;
  cJSON *parts = turn(q, "model");
  if (!parts) goto nomem;
  int start = cJSON_GetArraySize(parts);
  const char *detached[16];
  int ndet = 0;
  /* thought parts */
  const cJSON *tb;
  int i = 0;
  cJSON_ArrayForEach(tb, cJSON_GetObjectItemCaseSensitive(m, "thinking_blocks"))
  {
    const char *t = jstr(tb, "type");
    if (t && !strcmp(t, "thinking")) {
      const char *txt = jstr(tb, "thinking"), *sig = jstr(tb, "signature");
      if (txt && *txt) {
        cJSON *p = cJSON_CreateObject();
        if (add(parts, NULL, p) || add_str(p, "text", txt) || add(p, "thought", cJSON_CreateTrue()) ||
            (sig && *sig && add_str(p, "thoughtSignature", sig)))
          goto nomem;
      } else if (sig && *sig && ndet < 16)
        detached[ndet++] = sig;
    } else if (!t || strcmp(t, "redacted_thinking")) {
      pc_err_set(e, 400, path, "%s.thinking_blocks[%d].type: unknown block type for gemini", path, i);
      return -1;
    }
    i++;
  }
  /* text */
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
  int last_text = -1;
  if (cJSON_IsString(c)) {
    if (*c->valuestring) {
      if (text_part(parts, c->valuestring)) goto nomem;
      last_text = cJSON_GetArraySize(parts) - 1;
    }
  } else if (cJSON_IsArray(c)) {
    const cJSON *p;
    int k = 0;
    cJSON_ArrayForEach(p, c)
    {
      char pp[128];
      snprintf(pp, sizeof pp, "%s.content[%d]", path, k++);
      int before = cJSON_GetArraySize(parts);
      if (conv_part(q, parts, p, pp)) return -1;
      if (cJSON_GetArraySize(parts) > before &&
          cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(parts, before), "text"))
        last_text = before;
    }
  } else if (c && !cJSON_IsNull(c)) {
    pc_err_set(e, 400, path, "%s.content must be a string, an array or null", path);
    return -1;
  }
  /* tool calls */
  const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
  const cJSON *tc;
  int nfc = 0, first_fc = -1;
  i = 0;
  cJSON_ArrayForEach(tc, tcs)
  {
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const char *name = jstr(fn, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
    if (!name) {
      pc_err_set(e, 400, path, "%s.tool_calls[%d].function.name must be a string", path, i);
      return -1;
    }
    cJSON *a = NULL;
    if (cJSON_IsString(args) && *args->valuestring) {
      a = cJSON_Parse(args->valuestring);
      if (!cJSON_IsObject(a)) {
        cJSON_Delete(a);
        pc_err_set(e, 400, path, "%s.tool_calls[%d].function.arguments: gemini needs a JSON object", path, i);
        return -1;
      }
    } else if (cJSON_IsObject(args))
      a = cJSON_Duplicate(args, 1);
    else
      a = cJSON_CreateObject();
    cJSON *p = cJSON_CreateObject(), *fc = cJSON_CreateObject();
    if (add(parts, NULL, p)) {
      cJSON_Delete(a);
      cJSON_Delete(fc);
      goto nomem;
    }
    if (add(p, "functionCall", fc)) {
      cJSON_Delete(a);
      goto nomem;
    }
    if (add_str(fc, "name", name) || add(fc, "args", a)) goto nomem;
    const char *sig =
        jstr(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tc, "extra_content"), "google"),
             "thought_signature");
    if (sig && add_str(p, "thoughtSignature", sig)) goto nomem;
    if (first_fc < 0) first_fc = cJSON_GetArraySize(parts) - 1;
    nfc++;
    i++;
  }
  /* re-attach detached signatures */
  if (nfc) {
    int k = 0;
    for (int j = first_fc; j < cJSON_GetArraySize(parts) && k < ndet; j++) {
      cJSON *p = cJSON_GetArrayItem(parts, j);
      if (!cJSON_GetObjectItemCaseSensitive(p, "functionCall")) continue;
      if (!cJSON_GetObjectItemCaseSensitive(p, "thoughtSignature") && add_str(p, "thoughtSignature", detached[k]))
        goto nomem;
      k++;
    }
  } else if (ndet && last_text >= 0) {
    cJSON *p = cJSON_GetArrayItem(parts, last_text);
    if (!cJSON_GetObjectItemCaseSensitive(p, "thoughtSignature") && add_str(p, "thoughtSignature", detached[0]))
      goto nomem;
  }
  if (nfc && q->o->fill_signatures) {
    int has = 0;
    for (int j = start; j < cJSON_GetArraySize(parts); j++)
      if (cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(parts, j), "thoughtSignature")) has = 1;
    if (!has && add_str(cJSON_GetArrayItem(parts, first_fc), "thoughtSignature", XG_DUMMY_SIGNATURE)) goto nomem;
  }
  return 0;
nomem:
  oom(e);
  return -1;
}

static int conv_messages(rq *q, const cJSON *msgs)
{
  pc_err *e = q->e;
  if (!cJSON_IsArray(msgs)) {
    pc_err_set(e, 400, "messages", "messages must be an array");
    return -1;
  }
  int idx = 0, conv = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, msgs)
  {
    snprintf(q->path, sizeof q->path, "messages[%d]", idx);
    const char *role = jstr(m, "role");
    if (!role) {
      pc_err_set(e, 400, q->path, "%s.role must be a string", q->path);
      return -1;
    }
    if (!strcmp(role, "system") || !strcmp(role, "developer")) {
      pc_buf b = {0};
      if (content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), &b, q->path, e)) {
        pc_buf_free(&b);
        return -1;
      }
      int rc = 0;
      if (!conv || q->o->hoist_mid_system) {
        if (!q->sys) {
          q->sys = cJSON_CreateArray();
          rc = q->sys ? 0 : -1;
        }
        if (!rc) rc = text_part(q->sys, b.p);
      } else {
        cJSON *parts = turn(q, "user");
        pc_buf w = {0};
        rc = !parts || pc_buf_printf(&w, "<system>\n%s\n</system>", b.p) || text_part(parts, w.p);
        pc_buf_free(&w);
      }
      pc_buf_free(&b);
      if (rc) {
        oom(e);
        return -1;
      }
    } else if (!strcmp(role, "user")) {
      conv = 1;
      cJSON *parts = turn(q, "user");
      if (!parts) {
        oom(e);
        return -1;
      }
      const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
      if (cJSON_IsString(c)) {
        if (*c->valuestring && text_part(parts, c->valuestring)) {
          oom(e);
          return -1;
        }
      } else if (cJSON_IsArray(c)) {
        const cJSON *p;
        int k = 0;
        cJSON_ArrayForEach(p, c)
        {
          char pp[128];
          snprintf(pp, sizeof pp, "%s.content[%d]", q->path, k++);
          if (conv_part(q, parts, p, pp)) return -1;
        }
      } else {
        pc_err_set(e, 400, q->path, "%s.content must be a string or an array of parts", q->path);
        return -1;
      }
    } else if (!strcmp(role, "assistant")) {
      conv = 1;
      if (conv_assistant(q, m)) return -1;
    } else if (!strcmp(role, "tool")) {
      conv = 1;
      if (conv_tool_msg(q, m, idx)) return -1;
    } else {
      pc_err_set(e, 400, q->path, "%s.role: \"%.32s\" is not supported by gemini", q->path, role);
      return -1;
    }
    idx++;
  }
  /* drop contents left without parts (e.g. an assistant turn with content "") */
  cJSON *c = q->contents->child;
  while (c) {
    cJSON *next = c->next;
    if (!cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c, "parts")))
      cJSON_Delete(cJSON_DetachItemViaPointer(q->contents, c));
    c = next;
  }
  if (!cJSON_GetArraySize(q->contents)) {
    pc_err_set(e, 400, "messages", "messages: gemini needs at least one user or assistant message with content");
    return -1;
  }
  return 0;
}

static int conv_tools(const cJSON *hub, cJSON *out, const xg_req_opts *o, pc_err *e)
{
  const cJSON *tools = jget(hub, "tools");
  if (tools) {
    if (!cJSON_IsArray(tools)) {
      pc_err_set(e, 400, "tools", "tools must be an array");
      return -1;
    }
    if (cJSON_GetArraySize(tools)) {
      cJSON *ta = cJSON_CreateArray(), *t0 = cJSON_CreateObject(), *decls = cJSON_CreateArray();
      if (add(out, "tools", ta)) {
        cJSON_Delete(t0);
        cJSON_Delete(decls);
        goto nomem;
      }
      if (add(ta, NULL, t0)) {
        cJSON_Delete(decls);
        goto nomem;
      }
      if (add(t0, "functionDeclarations", decls)) goto nomem;
      const cJSON *t;
      int i = 0;
      cJSON_ArrayForEach(t, tools)
      {
        char path[64];
        snprintf(path, sizeof path, "tools[%d]", i);
        const char *type = jstr(t, "type");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        if ((type && strcmp(type, "function")) || !cJSON_IsObject(fn)) {
          pc_err_set(e, 400, path, "%s: tool type \"%.32s\" is not supported by gemini (function tools only)", path,
                     type ? type : "");
          return -1;
        }
        const char *name = jstr(fn, "name"), *desc = jstr(fn, "description");
        if (!name) {
          pc_err_set(e, 400, path, "%s.function.name must be a string", path);
          return -1;
        }
        cJSON *d = cJSON_CreateObject();
        if (add(decls, NULL, d) || add_str(d, "name", name) || (desc && add_str(d, "description", desc))) goto nomem;
        const cJSON *params = jget(fn, "parameters");
        if (params) {
          char pp[128];
          snprintf(pp, sizeof pp, "%s.function.parameters", path);
          int empty = 0;
          cJSON *s = schema_for(params, o->schema_openapi, pp, e, &empty);
          if (!s) return -1;
          if (o->schema_openapi && empty)
            cJSON_Delete(s);
          else if (add(d, o->schema_openapi ? "parameters" : "parametersJsonSchema", s))
            goto nomem;
        }
        i++;
      }
    }
  }
  const cJSON *tch = jget(hub, "tool_choice");
  if (tch) {
    const char *mode = NULL, *only = NULL;
    const cJSON *allowed = NULL;
    if (cJSON_IsString(tch)) {
      if (!strcmp(tch->valuestring, "auto"))
        mode = "AUTO";
      else if (!strcmp(tch->valuestring, "none"))
        mode = "NONE";
      else if (!strcmp(tch->valuestring, "required"))
        mode = "ANY";
    } else if (cJSON_IsObject(tch)) {
      const char *type = jstr(tch, "type");
      if (type && !strcmp(type, "function")) {
        only = jstr(cJSON_GetObjectItemCaseSensitive(tch, "function"), "name");
        if (only) mode = "ANY";
      } else if (type && !strcmp(type, "allowed_tools")) {
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(tch, "allowed_tools");
        const char *m = jstr(at, "mode");
        allowed = cJSON_GetObjectItemCaseSensitive(at, "tools");
        if (m && !strcmp(m, "required") && cJSON_IsArray(allowed)) mode = "ANY";
      }
    }
    if (!mode) {
      pc_err_set(e, 400, "tool_choice", "tool_choice: this value is not supported by gemini");
      return -1;
    }
    cJSON *tc = cJSON_CreateObject(), *fcc = cJSON_CreateObject();
    if (add(out, "toolConfig", tc)) {
      cJSON_Delete(fcc);
      goto nomem;
    }
    if (add(tc, "functionCallingConfig", fcc) || add_str(fcc, "mode", mode)) goto nomem;
    if (only || allowed) {
      cJSON *names = cJSON_CreateArray();
      if (add(fcc, "allowedFunctionNames", names)) goto nomem;
      if (only && add_str(names, NULL, only)) goto nomem;
      const cJSON *a;
      cJSON_ArrayForEach(a, allowed)
      {
        const char *n = jstr(cJSON_GetObjectItemCaseSensitive(a, "function"), "name");
        if (!n) n = jstr(a, "name");
        if (!n) {
          pc_err_set(e, 400, "tool_choice", "tool_choice.allowed_tools.tools: each needs a function name");
          return -1;
        }
        if (add_str(names, NULL, n)) goto nomem;
      }
    }
  }
  return 0;
nomem:
  oom(e);
  return -1;
}

static int num_field(const cJSON *hub, const char *k, cJSON *gc, const char *gk, pc_err *e)
{
  const cJSON *v = jget(hub, k);
  if (!v) return 0;
  if (!cJSON_IsNumber(v)) {
    pc_err_set(e, 400, k, "%s must be a number", k);
    return -1;
  }
  if (add_dup(gc, gk, v)) {
    oom(e);
    return -1;
  }
  return 0;
}

static int conv_thinking(const cJSON *hub, cJSON *gc, const xg_req_opts *o, pc_err *e)
{
  const cJSON *th = jget(hub, "thinking");
  const char *effort = jstr(hub, "reasoning_effort");
  if (!th && !effort) return 0;
  long budget = -2; /* -2: use level */
  const char *level = NULL;
  int include = 1;
  if (th) {
    const char *t = jstr(th, "type");
    const cJSON *bt = cJSON_GetObjectItemCaseSensitive(th, "budget_tokens");
    if (t && !strcmp(t, "disabled")) {
      budget = 0;
      include = 0;
    } else if (t && !strcmp(t, "enabled") && cJSON_IsNumber(bt) && bt->valuedouble >= 0 && bt->valuedouble < 1e9) {
      budget = (long)bt->valuedouble;
    } else if (t && (!strcmp(t, "adaptive") || (!strcmp(t, "enabled") && !bt))) {
      budget = -1; /* dynamic */
    } else {
      pc_err_set(e, 400, "thinking",
                 "thinking: expected {\"type\":\"enabled\",\"budget_tokens\":N} or {\"type\":\"disabled\"} for gemini");
      return -1;
    }
  } else {
    static const struct {
      const char *n;
      long b;
      const char *lv;
    } t[] = {{"none", 0, "MINIMAL"},
             {"minimal", XG_BUDGET_MINIMAL, "MINIMAL"},
             {"low", XG_BUDGET_LOW, "LOW"},
             {"medium", XG_BUDGET_MEDIUM, "MEDIUM"},
             {"high", XG_BUDGET_HIGH, "HIGH"}};
    size_t i;
    for (i = 0; i < sizeof t / sizeof t[0]; i++)
      if (!strcmp(effort, t[i].n)) break;
    if (i == sizeof t / sizeof t[0]) {
      pc_err_set(e, 400, "reasoning_effort", "reasoning_effort: \"%.32s\" is not supported by gemini", effort);
      return -1;
    }
    if (!strcmp(effort, "none")) include = 0;
    if (o->thinking_level)
      level = t[i].lv;
    else
      budget = t[i].b;
  }
  cJSON *tc = cJSON_CreateObject();
  if (add(gc, "thinkingConfig", tc)) goto nomem;
  if (level ? add_str(tc, "thinkingLevel", level) : add_num(tc, "thinkingBudget", (double)budget)) goto nomem;
  if (include && add(tc, "includeThoughts", cJSON_CreateTrue())) goto nomem;
  return 0;
nomem:
  oom(e);
  return -1;
}

static int conv_generation(const cJSON *hub, cJSON *out, const xg_req_opts *o, pc_err *e)
{
  cJSON *gc = cJSON_CreateObject();
  if (!gc) goto nomem;
  if (num_field(hub, "temperature", gc, "temperature", e) || num_field(hub, "top_p", gc, "topP", e) ||
      num_field(hub, "top_k", gc, "topK", e) || num_field(hub, "seed", gc, "seed", e) ||
      num_field(hub, "n", gc, "candidateCount", e) || num_field(hub, "presence_penalty", gc, "presencePenalty", e) ||
      num_field(hub, "frequency_penalty", gc, "frequencyPenalty", e))
    goto fail;
  const char *mt = jget(hub, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (num_field(hub, mt, gc, "maxOutputTokens", e)) goto fail;
  const cJSON *stop = jget(hub, "stop");
  if (stop) {
    cJSON *ss = cJSON_CreateArray();
    if (add(gc, "stopSequences", ss)) goto nomem;
    if (cJSON_IsString(stop)) {
      if (add_str(ss, NULL, stop->valuestring)) goto nomem;
    } else if (cJSON_IsArray(stop)) {
      const cJSON *s;
      cJSON_ArrayForEach(s, stop)
      {
        if (!cJSON_IsString(s)) {
          pc_err_set(e, 400, "stop", "stop must be a string or an array of strings");
          goto fail;
        }
        if (add_str(ss, NULL, s->valuestring)) goto nomem;
      }
    } else {
      pc_err_set(e, 400, "stop", "stop must be a string or an array of strings");
      goto fail;
    }
  }
  const cJSON *rf = jget(hub, "response_format");
  if (rf) {
    const char *t = jstr(rf, "type");
    if (!t) {
      pc_err_set(e, 400, "response_format", "response_format.type must be a string");
      goto fail;
    }
    if (!strcmp(t, "json_object") || !strcmp(t, "json_schema")) {
      if (add_str(gc, "responseMimeType", "application/json")) goto nomem;
      const cJSON *sch = jget(cJSON_GetObjectItemCaseSensitive(rf, "json_schema"), "schema");
      if (!strcmp(t, "json_schema") && sch) {
        cJSON *s = schema_for(sch, o->schema_openapi, "response_format.json_schema.schema", e, NULL);
        if (!s) goto fail;
        if (add(gc, o->schema_openapi ? "responseSchema" : "responseJsonSchema", s)) goto nomem;
      }
    } else if (strcmp(t, "text")) {
      pc_err_set(e, 400, "response_format", "response_format.type \"%.32s\" is not supported by gemini", t);
      goto fail;
    }
  }
  if (conv_thinking(hub, gc, o, e)) goto fail;
  if (cJSON_GetArraySize(gc)) {
    if (add(out, "generationConfig", gc)) goto nomem_nofree;
  } else
    cJSON_Delete(gc);
  return 0;
nomem:
  oom(e);
fail:
  cJSON_Delete(gc);
  return -1;
nomem_nofree:
  oom(e);
  return -1;
}

cJSON *xg_request_from_hub(const cJSON *hub, const xg_req_opts *opts, pc_err *e)
{
  static const xg_req_opts zero;
  const xg_req_opts *o = opts ? opts : &zero;
  if (e) e->status = 0;
  pc_err dummy;
  if (!e) e = &dummy;
  e->status = 0;
  if (!cJSON_IsObject(hub)) {
    pc_err_set(e, 400, "", "the request body must be a JSON object");
    return NULL;
  }
  /* fields gemini cannot carry */
  static const char *const unsupported[] = {"audio", "prediction", "web_search_options", "top_logprobs", NULL};
  for (int i = 0; unsupported[i]; i++)
    if (jget(hub, unsupported[i])) {
      pc_err_set(e, 400, unsupported[i], "%s is not supported by gemini", unsupported[i]);
      return NULL;
    }
  if (cJSON_IsTrue(jget(hub, "logprobs"))) {
    pc_err_set(e, 400, "logprobs", "logprobs is not supported by gemini");
    return NULL;
  }
  const cJSON *lb = jget(hub, "logit_bias");
  if (lb && (!cJSON_IsObject(lb) || lb->child)) {
    pc_err_set(e, 400, "logit_bias", "logit_bias is not supported by gemini");
    return NULL;
  }
  const cJSON *mod = jget(hub, "modalities");
  if (mod) {
    const cJSON *x;
    cJSON_ArrayForEach(x, mod) if (!cJSON_IsString(x) || strcmp(x->valuestring, "text"))
    {
      pc_err_set(e, 400, "modalities", "modalities other than \"text\" are not supported by gemini");
      return NULL;
    }
  }

  cJSON *out = cJSON_CreateObject();
  rq q = {.o = o, .e = e, .msgs = cJSON_GetObjectItemCaseSensitive(hub, "messages")};
  q.contents = cJSON_CreateArray();
  if (!out || add(out, "contents", q.contents)) {
    oom(e);
    goto fail;
  }
  if (conv_messages(&q, q.msgs)) goto fail;
  if (q.sys) {
    cJSON *si = cJSON_CreateObject();
    if (add(out, "systemInstruction", si)) {
      oom(e);
      goto fail;
    }
    cJSON_AddItemToObject(si, "parts", q.sys);
    q.sys = NULL;
  }
  if (conv_tools(hub, out, o, e) || conv_generation(hub, out, o, e)) goto fail;
  return out;
fail:
  cJSON_Delete(q.sys);
  cJSON_Delete(out);
  return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* response                                                                                   */

static void call_id(char out[40], const char *resp_id, int cand, int pos, const char *name, const char *args)
{
  uint64_t h = 0xcbf29ce484222325ULL;
  char num[32];
  h = fnv(h, resp_id ? resp_id : "", strlen(resp_id ? resp_id : "") + 1);
  snprintf(num, sizeof num, "%d/%d", cand, pos);
  h = fnv(h, num, strlen(num) + 1);
  h = fnv(h, name ? name : "", strlen(name ? name : "") + 1);
  h = fnv(h, args, strlen(args));
  snprintf(out, 40, "call_%016llx", (unsigned long long)h);
}

/* a hub tool call from a Gemini functionCall; index < 0: no "index" member */
static cJSON *tool_call(const cJSON *fc, const char *resp_id, int cand, int pos, int index)
{
  const char *name = jstr(fc, "name");
  const char *own = jstr(fc, "id");
  const cJSON *args = cJSON_GetObjectItemCaseSensitive(fc, "args");
  char *a = args ? cJSON_PrintUnformatted(args) : NULL;
  cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
  char id[40];
  call_id(id, resp_id, cand, pos, name, a ? a : "{}");
  int bad = !tc || !fn || (args && !a);
  if (!bad && index >= 0) bad = add_num(tc, "index", index);
  if (!bad) bad = add_str(tc, "id", own && *own ? own : id) || add_str(tc, "type", "function");
  if (!bad) {
    bad = add(tc, "function", fn);
    fn = NULL;
  }
  if (!bad) bad = add_str(cJSON_GetObjectItemCaseSensitive(tc, "function"), "name", name ? name : "");
  if (!bad) bad = add_str(cJSON_GetObjectItemCaseSensitive(tc, "function"), "arguments", a ? a : "{}");
  free(a);
  cJSON_Delete(fn);
  if (bad) {
    cJSON_Delete(tc);
    return NULL;
  }
  return tc;
}

static cJSON *thinking_block(const char *text, const char *sig)
{
  cJSON *b = cJSON_CreateObject();
  if (add_str(b, "type", "thinking") || add_str(b, "thinking", text) || (sig && add_str(b, "signature", sig))) {
    cJSON_Delete(b);
    return NULL;
  }
  return b;
}

static cJSON *hub_usage(const cJSON *um)
{
  double pt = 0, ct = 0, th = 0, ca = 0, tu = 0, tot = -1;
  const cJSON *v;
  if ((v = cJSON_GetObjectItemCaseSensitive(um, "promptTokenCount")) && cJSON_IsNumber(v)) pt = v->valuedouble;
  if ((v = cJSON_GetObjectItemCaseSensitive(um, "candidatesTokenCount")) && cJSON_IsNumber(v)) ct = v->valuedouble;
  if ((v = cJSON_GetObjectItemCaseSensitive(um, "thoughtsTokenCount")) && cJSON_IsNumber(v)) th = v->valuedouble;
  if ((v = cJSON_GetObjectItemCaseSensitive(um, "cachedContentTokenCount")) && cJSON_IsNumber(v)) ca = v->valuedouble;
  if ((v = cJSON_GetObjectItemCaseSensitive(um, "toolUsePromptTokenCount")) && cJSON_IsNumber(v)) tu = v->valuedouble;
  if ((v = cJSON_GetObjectItemCaseSensitive(um, "totalTokenCount")) && cJSON_IsNumber(v)) tot = v->valuedouble;
  if (tot < 0) tot = pt + tu + ct + th;
  cJSON *u = cJSON_CreateObject(), *pd = cJSON_CreateObject(), *cd = cJSON_CreateObject();
  if (!u || !pd || !cd) goto fail;
  cJSON_AddItemToObject(u, "prompt_tokens_details", pd);
  pd = NULL;
  cJSON_AddItemToObject(u, "completion_tokens_details", cd);
  cd = NULL;
  if (add_num(u, "prompt_tokens", pt + tu) || add_num(u, "completion_tokens", ct + th) ||
      add_num(u, "total_tokens", tot) ||
      add_num(cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens_details"), "cached_tokens", ca) ||
      add_num(cJSON_GetObjectItemCaseSensitive(u, "completion_tokens_details"), "reasoning_tokens", th))
    goto fail;
  return u;
fail:
  cJSON_Delete(u);
  cJSON_Delete(pd);
  cJSON_Delete(cd);
  return NULL;
}

static int envelope(cJSON *o, const char *id, const char *object, long long created, const char *model)
{
  return add_str(o, "id", id) || add_str(o, "object", object) || add_num(o, "created", (double)created) ||
         add_str(o, "model", model);
}

static void resp_ids(const cJSON *gem, const xg_meta *meta, char id[128], char model[128])
{
  const char *rid = jstr(gem, "responseId"), *mv = jstr(gem, "modelVersion");
  if (rid && *rid)
    snprintf(id, 128, "chatcmpl-%s", rid);
  else
    snprintf(id, 128, "%s", meta && meta->id ? meta->id : "chatcmpl-gemini");
  snprintf(model, 128, "%s", mv && *mv ? mv : (meta && meta->model ? meta->model : ""));
}

static int cand_index(const cJSON *cand, int pos)
{
  const cJSON *ix = cJSON_GetObjectItemCaseSensitive(cand, "index");
  if (cJSON_IsNumber(ix) && ix->valuedouble >= 0 && ix->valuedouble < XG_MAX_CHOICES) return (int)ix->valuedouble;
  return pos;
}

/* Gemini error object inside a 2xx body or stream event -> e; returns 1 when there was one. */
static int embedded_error(const cJSON *gem, pc_err *e)
{
  if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(gem, "error"))) return 0;
  char *t = cJSON_PrintUnformatted(gem);
  xg_error xe;
  xg_error_parse(0, t, t ? strlen(t) : 0, &xe);
  free(t);
  pc_err_set(e, xe.status, "", "gemini: %s", xe.message);
  return 1;
}

cJSON *xg_response_to_hub(const cJSON *gem, const xg_meta *meta, pc_err *e)
{
  pc_err dummy;
  if (!e) e = &dummy;
  e->status = 0;
  if (!cJSON_IsObject(gem)) {
    pc_err_set(e, 502, "", "gemini answer is not a JSON object");
    return NULL;
  }
  if (embedded_error(gem, e)) return NULL;
  const cJSON *cands = cJSON_GetObjectItemCaseSensitive(gem, "candidates");
  if (cands && !cJSON_IsArray(cands)) {
    pc_err_set(e, 502, "", "gemini answer: candidates is not an array");
    return NULL;
  }
  char id[128], model[128];
  resp_ids(gem, meta, id, model);
  const char *rid = jstr(gem, "responseId");
  cJSON *out = cJSON_CreateObject(), *choices = cJSON_CreateArray();
  pc_buf text = {0}, reas = {0};
  if (!out || add(out, "choices", choices)) goto nomem;
  if (envelope(out, id, "chat.completion", meta ? meta->created : 0, model)) goto nomem;
  int pos = 0;
  const cJSON *cand;
  cJSON_ArrayForEach(cand, cands)
  {
    int ci = cand_index(cand, pos);
    cJSON *ch = cJSON_CreateObject(), *msg = cJSON_CreateObject();
    if (add(choices, NULL, ch)) {
      cJSON_Delete(msg);
      goto nomem;
    }
    if (add_num(ch, "index", ci) || add(ch, "message", msg) || add_str(msg, "role", "assistant")) goto nomem;
    cJSON *tcs = NULL, *blocks = NULL;
    int ntext = 0, nreas = 0, ntc = 0;
    text.n = reas.n = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part,
                       cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cand, "content"), "parts"))
    {
      const char *t = jstr(part, "text"), *sig = jstr(part, "thoughtSignature");
      int thought = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(part, "thought"));
      const cJSON *fc = cJSON_GetObjectItemCaseSensitive(part, "functionCall");
      if (thought) {
        if (t && pc_buf_adds(&reas, t)) goto nomem;
        nreas += t != NULL;
        if ((t && *t) || sig) {
          if (!blocks && !(blocks = cJSON_CreateArray())) goto nomem_tc;
          if (add(blocks, NULL, thinking_block(t ? t : "", sig))) goto nomem_tc;
        }
        continue;
      }
      if (sig) {
        if (!blocks && !(blocks = cJSON_CreateArray())) goto nomem_tc;
        if (add(blocks, NULL, thinking_block("", sig))) goto nomem_tc;
      }
      if (cJSON_IsObject(fc)) {
        if (!tcs && !(tcs = cJSON_CreateArray())) goto nomem_tc;
        if (add(tcs, NULL, tool_call(fc, rid, ci, ntc, -1))) goto nomem_tc;
        ntc++;
      } else if (t) {
        if (pc_buf_adds(&text, t)) goto nomem_tc;
        ntext++;
      }
    }
    if (add(msg, "content", ntext ? cJSON_CreateString(text.p) : cJSON_CreateNull())) goto nomem_tc;
    if (nreas && add_str(msg, "reasoning_content", reas.p)) goto nomem_tc;
    if (blocks) {
      cJSON_AddItemToObject(msg, "thinking_blocks", blocks);
      blocks = NULL;
    }
    if (tcs) {
      cJSON_AddItemToObject(msg, "tool_calls", tcs);
      tcs = NULL;
    }
    if (add_str(ch, "finish_reason", xg_finish_reason(jstr(cand, "finishReason"), ntc > 0))) goto nomem;
    pos++;
    continue;
  nomem_tc:
    cJSON_Delete(tcs);
    cJSON_Delete(blocks);
    goto nomem;
  }
  if (!pos) { /* no candidate: blocked prompt or an empty answer */
    const char *br = jstr(cJSON_GetObjectItemCaseSensitive(gem, "promptFeedback"), "blockReason");
    cJSON *ch = cJSON_CreateObject(), *msg = cJSON_CreateObject();
    if (add(choices, NULL, ch)) {
      cJSON_Delete(msg);
      goto nomem;
    }
    if (add_num(ch, "index", 0) || add(ch, "message", msg) || add_str(msg, "role", "assistant") ||
        add(msg, "content", cJSON_CreateNull()) || add_str(ch, "finish_reason", br ? "content_filter" : "stop"))
      goto nomem;
  }
  const cJSON *um = cJSON_GetObjectItemCaseSensitive(gem, "usageMetadata");
  if (cJSON_IsObject(um) && add(out, "usage", hub_usage(um))) goto nomem;
  pc_buf_free(&text);
  pc_buf_free(&reas);
  return out;
nomem:
  pc_buf_free(&text);
  pc_buf_free(&reas);
  cJSON_Delete(out);
  oom(e);
  return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* stream                                                                                     */

void xg_stream_init(xg_stream *s, const xg_meta *meta)
{
  memset(s, 0, sizeof *s);
  snprintf(s->id, sizeof s->id, "%s", meta && meta->id ? meta->id : "chatcmpl-gemini");
  snprintf(s->model, sizeof s->model, "%s", meta && meta->model ? meta->model : "");
  s->created = meta ? meta->created : 0;
}

void xg_stream_free(xg_stream *s)
{
  cJSON_Delete(s->usage);
  s->usage = NULL;
}

/* A new delta for choice ci: {"role":"assistant"} for the choice's first chunk, else {}. */
static cJSON *new_delta(const xg_stream *s, int ci)
{
  cJSON *d = cJSON_CreateObject();
  if (d && !s->started[ci] && add_str(d, "role", "assistant")) {
    cJSON_Delete(d);
    return NULL;
  }
  return d;
}

/* Send a chunk with one choice; the delta is taken over (NULL: a new empty one). */
static int emit(xg_stream *s, int ci, cJSON *delta, const char *finish, pc_chunk_fn fn, void *ud, pc_err *e)
{
  if (!delta) delta = new_delta(s, ci);
  cJSON *c = cJSON_CreateObject(), *choices = cJSON_CreateArray(), *ch = cJSON_CreateObject();
  int bad = !c || !choices || !ch || !delta;
  if (bad) {
    cJSON_Delete(choices);
    cJSON_Delete(ch);
    cJSON_Delete(delta);
  } else {
    cJSON_AddItemToObject(c, "choices", choices);
    cJSON_AddItemToArray(choices, ch);
    bad = add_num(ch, "index", ci);
    cJSON_AddItemToObject(ch, "delta", delta);
    bad = bad || envelope(c, s->id, "chat.completion.chunk", s->created, s->model) ||
          add(ch, "finish_reason", finish ? cJSON_CreateString(finish) : cJSON_CreateNull());
  }
  if (bad) {
    cJSON_Delete(c);
    oom(e);
    return -1;
  }
  s->started[ci] = 1;
  int rc = fn(ud, c);
  cJSON_Delete(c);
  return rc;
}

static int stream_usage(xg_stream *s, pc_chunk_fn fn, void *ud, pc_err *e)
{
  if (s->usage_sent || !s->usage) return 0;
  cJSON *c = cJSON_CreateObject();
  if (!c || envelope(c, s->id, "chat.completion.chunk", s->created, s->model) ||
      add(c, "choices", cJSON_CreateArray()) || add(c, "usage", hub_usage(s->usage))) {
    cJSON_Delete(c);
    oom(e);
    return -1;
  }
  s->usage_sent = 1;
  int rc = fn(ud, c);
  cJSON_Delete(c);
  return rc;
}

int xg_stream_event(xg_stream *s, const char *data, size_t n, pc_chunk_fn fn, void *ud, pc_err *e)
{
  pc_err dummy;
  if (!e) e = &dummy;
  e->status = 0;
  cJSON *gem = cJSON_ParseWithLength(data, n);
  int rc = 0;
  if (cJSON_IsArray(gem) && cJSON_GetArraySize(gem) == 1) { /* non-SSE framing leaked through */
    cJSON *one = cJSON_DetachItemFromArray(gem, 0);
    cJSON_Delete(gem);
    gem = one;
  }
  if (!cJSON_IsObject(gem)) {
    pc_err_set(e, 502, "", "gemini stream event is not a JSON object");
    rc = -1;
    goto done;
  }
  if (embedded_error(gem, e)) {
    rc = -1;
    goto done;
  }
  int any = 0;
  for (int i = 0; i < XG_MAX_CHOICES; i++) any |= s->started[i];
  if (!any) { /* the envelope comes from the first event */
    char id[128], model[128];
    xg_meta m = {s->id, s->model, s->created};
    resp_ids(gem, &m, id, model);
    memcpy(s->id, id, sizeof s->id);
    memcpy(s->model, model, sizeof s->model);
  }
  const char *rid = jstr(gem, "responseId");
  const cJSON *um = cJSON_GetObjectItemCaseSensitive(gem, "usageMetadata");
  if (cJSON_IsObject(um)) {
    cJSON *d = cJSON_Duplicate(um, 1);
    if (!d) {
      oom(e);
      rc = -1;
      goto done;
    }
    cJSON_Delete(s->usage);
    s->usage = d;
  }
  const cJSON *cand;
  int pos = 0;
  cJSON_ArrayForEach(cand, cJSON_GetObjectItemCaseSensitive(gem, "candidates"))
  {
    int ci = cand_index(cand, pos++);
    if (ci >= XG_MAX_CHOICES || s->finished[ci]) continue; /* nothing follows a finish */
    if (ci + 1 > s->nchoices) s->nchoices = ci + 1;
    const cJSON *part;
    cJSON_ArrayForEach(part,
                       cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cand, "content"), "parts"))
    {
      const char *t = jstr(part, "text"), *sig = jstr(part, "thoughtSignature");
      int thought = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(part, "thought"));
      const cJSON *fc = cJSON_GetObjectItemCaseSensitive(part, "functionCall");
      cJSON *d = new_delta(s, ci);
      if (!d) goto nomem;
      int bad = 0, has = 0;
      if (cJSON_IsObject(fc)) {
        has = 1;
        cJSON *tcs = cJSON_CreateArray();
        bad = add(d, "tool_calls", tcs) || add(tcs, NULL, tool_call(fc, rid, ci, s->ntools[ci], s->ntools[ci]));
        if (!bad) s->ntools[ci]++;
      } else if (t && *t) {
        has = 1;
        bad = add_str(d, thought ? "reasoning_content" : "content", t);
      }
      if (!bad && sig) {
        has = 1;
        cJSON *bl = cJSON_CreateArray();
        bad = add(d, "thinking_blocks", bl) || add(bl, NULL, thinking_block("", sig));
      }
      if (bad) {
        cJSON_Delete(d);
        goto nomem;
      }
      if (!has) {
        cJSON_Delete(d);
        continue;
      }
      if ((rc = emit(s, ci, d, NULL, fn, ud, e))) goto done;
    }
    const char *fr = jstr(cand, "finishReason");
    if (fr && !s->finished[ci]) {
      s->finished[ci] = 1;
      if ((rc = emit(s, ci, NULL, xg_finish_reason(fr, s->ntools[ci] > 0), fn, ud, e))) goto done;
    }
  }
  if (!pos) {
    const char *br = jstr(cJSON_GetObjectItemCaseSensitive(gem, "promptFeedback"), "blockReason");
    if (br && !s->finished[0]) {
      s->finished[0] = 1;
      if (s->nchoices < 1) s->nchoices = 1;
      if ((rc = emit(s, 0, NULL, "content_filter", fn, ud, e))) goto done;
    }
  }
  goto done;
nomem:
  oom(e);
  rc = -1;
done:
  cJSON_Delete(gem);
  return rc;
}

int xg_stream_finish(xg_stream *s, pc_chunk_fn fn, void *ud, pc_err *e)
{
  pc_err dummy;
  if (!e) e = &dummy;
  e->status = 0;
  int nc = s->nchoices ? s->nchoices : 1;
  for (int ci = 0; ci < nc; ci++) {
    if (s->finished[ci]) continue;
    s->finished[ci] = 1;
    int rc = emit(s, ci, NULL, s->ntools[ci] ? "tool_calls" : "stop", fn, ud, e);
    if (rc) return rc;
  }
  return stream_usage(s, fn, ud, e);
}

/* ---------------------------------------------------------------------------------------- */
/* embeddings                                                                                 */

cJSON *xg_embed_request(const cJSON *req, xg_flavor flavor, const char *model, pc_err *e)
{
  pc_err dummy;
  if (!e) e = &dummy;
  e->status = 0;
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(req, "input");
  if (!cJSON_IsString(in) && !(cJSON_IsArray(in) && cJSON_GetArraySize(in) > 0)) {
    pc_err_set(e, 400, "input", "input must be a string or a non-empty array of strings");
    return NULL;
  }
  const cJSON *x;
  if (cJSON_IsArray(in)) cJSON_ArrayForEach(x, in) if (!cJSON_IsString(x))
    {
      pc_err_set(e, 400, "input", "input: token arrays are not supported by gemini; send text");
      return NULL;
    }
  const cJSON *dim = jget(req, "dimensions");
  if (dim && !cJSON_IsNumber(dim)) {
    pc_err_set(e, 400, "dimensions", "dimensions must be a number");
    return NULL;
  }
  const char *ef = jstr(req, "encoding_format");
  if (ef && strcmp(ef, "float") && strcmp(ef, "base64")) {
    pc_err_set(e, 400, "encoding_format", "encoding_format must be \"float\" or \"base64\"");
    return NULL;
  }
  const char *task = jstr(req, "task_type"), *title = jstr(req, "title");
  if (!model) model = jstr(req, "model");
  if (!model) {
    pc_err_set(e, 400, "model", "model must be a string");
    return NULL;
  }
  if (starts(model, "models/")) model += 7;
  cJSON *out = cJSON_CreateObject();
  if (!out) goto nomem;
  cJSON *list = cJSON_CreateArray();
  if (add(out, flavor == XG_VERTEX ? "instances" : "requests", list)) goto nomem;
  char mname[160];
  snprintf(mname, sizeof mname, "models/%s", model);
  const cJSON *one = cJSON_IsString(in) ? in : in->child;
  for (; one; one = cJSON_IsString(in) ? NULL : one->next) {
    cJSON *r = cJSON_CreateObject();
    if (add(list, NULL, r)) goto nomem;
    if (flavor == XG_VERTEX) {
      if (add_str(r, "content", one->valuestring) || (task && add_str(r, "task_type", task)) ||
          (title && add_str(r, "title", title)))
        goto nomem;
    } else {
      cJSON *c = cJSON_CreateObject(), *parts = cJSON_CreateArray();
      if (add_str(r, "model", mname)) {
        cJSON_Delete(c);
        cJSON_Delete(parts);
        goto nomem;
      }
      if (add(r, "content", c)) {
        cJSON_Delete(parts);
        goto nomem;
      }
      if (add(c, "parts", parts) || text_part(parts, one->valuestring)) goto nomem;
      if ((dim && add_dup(r, "outputDimensionality", dim)) || (task && add_str(r, "taskType", task)) ||
          (title && add_str(r, "title", title)))
        goto nomem;
    }
  }
  if (flavor == XG_VERTEX && dim) {
    cJSON *p = cJSON_CreateObject();
    if (add(out, "parameters", p) || add_dup(p, "outputDimensionality", dim)) goto nomem;
  }
  return out;
nomem:
  cJSON_Delete(out);
  oom(e);
  return NULL;
}

static cJSON *b64_floats(const cJSON *vals)
{
  int n = cJSON_GetArraySize(vals);
  unsigned char *raw = malloc((size_t)n * 4 + 1);
  char *txt = malloc(((size_t)n * 4 + 2) / 3 * 4 + 1);
  cJSON *r = NULL;
  if (raw && txt) {
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, vals)
    {
      float f = (float)v->valuedouble;
      uint32_t u;
      memcpy(&u, &f, 4);
      raw[i * 4] = (unsigned char)u;
      raw[i * 4 + 1] = (unsigned char)(u >> 8);
      raw[i * 4 + 2] = (unsigned char)(u >> 16);
      raw[i * 4 + 3] = (unsigned char)(u >> 24);
      i++;
    }
    EVP_EncodeBlock((unsigned char *)txt, raw, n * 4);
    r = cJSON_CreateString(txt);
  }
  free(raw);
  free(txt);
  return r;
}

cJSON *xg_embed_response(const cJSON *gem, const char *model, int base64, pc_err *e)
{
  pc_err dummy;
  if (!e) e = &dummy;
  e->status = 0;
  if (!cJSON_IsObject(gem)) {
    pc_err_set(e, 502, "", "gemini embeddings answer is not a JSON object");
    return NULL;
  }
  if (embedded_error(gem, e)) return NULL;
  const cJSON *embs = cJSON_GetObjectItemCaseSensitive(gem, "embeddings");
  const cJSON *single = cJSON_GetObjectItemCaseSensitive(gem, "embedding");
  const cJSON *preds = cJSON_GetObjectItemCaseSensitive(gem, "predictions");
  const cJSON *list = cJSON_IsArray(embs) ? embs : cJSON_IsArray(preds) ? preds : NULL;
  if (!list && !cJSON_IsObject(single)) {
    pc_err_set(e, 502, "", "gemini embeddings answer has no embeddings");
    return NULL;
  }
  cJSON *out = cJSON_CreateObject(), *data = cJSON_CreateArray();
  if (!out || add_str(out, "object", "list") || add(out, "data", data)) {
    cJSON_Delete(out);
    goto nomem0;
  }
  double tokens = 0;
  int i = 0;
  const cJSON *it = list ? list->child : single;
  for (; it; it = list ? it->next : NULL) {
    const cJSON *emb = it;
    if (list && list == preds) {
      emb = cJSON_GetObjectItemCaseSensitive(it, "embeddings");
      const cJSON *tc =
          cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(emb, "statistics"), "token_count");
      if (cJSON_IsNumber(tc)) tokens += tc->valuedouble;
    }
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(emb, "values"), *v;
    if (!cJSON_IsArray(vals)) goto bad;
    cJSON_ArrayForEach(v, vals) if (!cJSON_IsNumber(v)) goto bad;
    cJSON *d = cJSON_CreateObject();
    if (add(data, NULL, d) || add_str(d, "object", "embedding") || add_num(d, "index", i) ||
        add(d, "embedding", base64 ? b64_floats(vals) : cJSON_Duplicate(vals, 1)))
      goto nomem;
    i++;
  }
  cJSON *u = cJSON_CreateObject();
  if (add_str(out, "model", model ? model : "") || add(out, "usage", u) || add_num(u, "prompt_tokens", tokens) ||
      add_num(u, "total_tokens", tokens))
    goto nomem;
  return out;
bad:
  cJSON_Delete(out);
  pc_err_set(e, 502, "", "gemini embeddings answer: an embedding has no numeric values");
  return NULL;
nomem:
  cJSON_Delete(out);
nomem0:
  oom(e);
  return NULL;
}
