/* fuzz_xlate_gemini.c - the Gemini translation (xlate_gemini.h) and the service-account/token
 * parsers (gcp_jwt.h) on arbitrary input.
 *
 * Input: [mode byte] [JSON or event text...]. The mode byte's low 3 bits pick the target, the
 * high bits are option flags:
 *   0  hub request -> Gemini (flags: schema_openapi, hoist_mid_system, thinking_level,
 *      fill_signatures); success: a JSON object with a non-empty "contents" array that prints and
 *      re-parses; in OpenAPI mode every schema keyword is in Gemini's subset; failure: status 400
 *      or 500 with a message.
 *   1  Gemini response -> hub: a chat.completion with at least one choice, each with a known
 *      finish_reason; failure: a status and a message.
 *   2  stream: the rest split at '\n', each line one event, then finish: every chunk is a
 *      chat.completion.chunk, tool-call indexes count up from 0 per choice, exactly one finish per
 *      choice that saw a delta, at most one usage chunk, and it is the last.
 *   3  embeddings request (both flavors) and response (float and base64).
 *   4  error body parse: status in 400..599, type and message non-empty.
 *   5  URL builder: the rest split at '\n' into base, project, location, model, method; a built
 *      URL holds no character outside the allowed ones of its parts.
 *   6  service-account key and token answer parsers.
 */
#include "gcp_jwt.h"
#include "xlate_gemini.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                                       \
  do {                                                                                                                 \
    if (!(c)) abort();                                                                                                 \
  } while (0)

/* no object in the tree has a member name twice */
static void no_dup_keys(const cJSON *j, int depth)
{
  CHECK(depth < 2000);
  for (const cJSON *a = j ? j->child : NULL; a; a = a->next) {
    if (cJSON_IsObject(j))
      for (const cJSON *b = a->next; b; b = b->next) CHECK(strcmp(a->string, b->string));
    no_dup_keys(a, depth + 1);
  }
}

static void reprint(const cJSON *j)
{
  no_dup_keys(j, 0);
  char *t = cJSON_PrintUnformatted(j);
  CHECK(t);
  cJSON *back = cJSON_Parse(t);
  CHECK(back);
  cJSON_Delete(back);
  free(t);
}

static void check_err(const pc_err *e)
{
  CHECK(e->status >= 400 && e->status <= 599);
  CHECK(e->msg[0]);
}

/* Gemini Schema subset keywords (OpenAPI mode) */
static void check_schema(const cJSON *s, int depth)
{
  static const char *const ok[] = {
      "type",     "format",     "title",    "description",      "nullable",      "enum",      "maxItems",
      "minItems", "properties", "required", "minProperties",    "maxProperties", "minLength", "maxLength",
      "pattern",  "example",    "anyOf",    "propertyOrdering", "default",       "items",     "minimum",
      "maximum",  NULL};
  CHECK(depth < 2000);
  if (!cJSON_IsObject(s)) return;
  const cJSON *k;
  cJSON_ArrayForEach(k, s)
  {
    int found = 0;
    for (int i = 0; ok[i]; i++)
      if (!strcmp(k->string, ok[i])) found = 1;
    CHECK(found);
  }
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
  if (t) {
    CHECK(cJSON_IsString(t));
    CHECK(strchr("SNIBAO", t->valuestring[0]) && t->valuestring[1] >= 'A' && t->valuestring[1] <= 'Z');
  }
  const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum"), *v;
  cJSON_ArrayForEach(v, en) CHECK(cJSON_IsString(v));
  cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(s, "properties")) check_schema(v, depth + 1);
  cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(s, "anyOf")) check_schema(v, depth + 1);
  check_schema(cJSON_GetObjectItemCaseSensitive(s, "items"), depth + 1);
}

static void do_request(const char *t, size_t n, unsigned flags)
{
  cJSON *hub = cJSON_ParseWithLength(t, n);
  if (!hub) return;
  xg_req_opts o = {.schema_openapi = flags & 1,
                   .hoist_mid_system = !!(flags & 2),
                   .thinking_level = !!(flags & 4),
                   .fill_signatures = !!(flags & 8)};
  pc_err e = {0};
  cJSON *g = xg_request_from_hub(hub, &o, &e);
  if (g) {
    CHECK(cJSON_IsObject(g));
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(g, "contents"), *x;
    CHECK(cJSON_IsArray(c) && cJSON_GetArraySize(c) > 0);
    cJSON_ArrayForEach(x, c)
    {
      const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "role"));
      CHECK(role && (!strcmp(role, "user") || !strcmp(role, "model")));
      CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, "parts")) > 0);
    }
    for (x = c->child; x && x->next; x = x->next) /* turns alternate */
      CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "role")),
                   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x->next, "role"))));
    if (o.schema_openapi) {
      const cJSON *d;
      cJSON_ArrayForEach(
          d, cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(g, "tools"), 0),
                                              "functionDeclarations"))
          check_schema(cJSON_GetObjectItemCaseSensitive(d, "parameters"), 0);
      check_schema(
          cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g, "generationConfig"), "responseSchema"),
          0);
    }
    reprint(g);
  } else {
    CHECK(e.status == 400 || e.status == 500);
    CHECK(e.msg[0]);
  }
  cJSON_Delete(g);
  cJSON_Delete(hub);
}

static int known_finish(const char *f)
{
  return f && (!strcmp(f, "stop") || !strcmp(f, "length") || !strcmp(f, "tool_calls") || !strcmp(f, "content_filter"));
}

static void do_response(const char *t, size_t n)
{
  cJSON *gem = cJSON_ParseWithLength(t, n);
  if (!gem) return;
  xg_meta m = {"chatcmpl-f", "m", 1};
  pc_err e = {0};
  cJSON *h = xg_response_to_hub(gem, &m, &e);
  if (h) {
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(h, "choices"), *c;
    CHECK(cJSON_GetArraySize(ch) > 0);
    cJSON_ArrayForEach(c, ch)
    {
      CHECK(known_finish(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "finish_reason"))));
      const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c, "message"), *tc;
      CHECK(cJSON_IsObject(msg));
      cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"))
      {
        const char *a = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tc, "function"), "arguments"));
        CHECK(a);
        cJSON *pa = cJSON_Parse(a); /* arguments are JSON text */
        CHECK(pa);
        cJSON_Delete(pa);
      }
    }
    reprint(h);
  } else
    check_err(&e);
  cJSON_Delete(h);
  cJSON_Delete(gem);
}

typedef struct {
  int nchunks, usage_seen, ntools[XG_MAX_CHOICES], finished[XG_MAX_CHOICES], delta_seen[XG_MAX_CHOICES];
} sstate;

static int on_chunk(void *ud, const cJSON *c)
{
  sstate *s = ud;
  CHECK(!s->usage_seen); /* the usage chunk is the last */
  s->nchunks++;
  CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "object")), "chat.completion.chunk"));
  const cJSON *ch = cJSON_GetObjectItemCaseSensitive(c, "choices");
  CHECK(cJSON_IsArray(ch));
  if (!cJSON_GetArraySize(ch)) {
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(c, "usage")));
    s->usage_seen = 1;
    return 0;
  }
  CHECK(cJSON_GetArraySize(ch) == 1);
  const cJSON *c0 = ch->child;
  int ix = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c0, "index"));
  CHECK(ix >= 0 && ix < XG_MAX_CHOICES);
  CHECK(!s->finished[ix]);
  const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
  if (cJSON_IsString(fr)) {
    CHECK(known_finish(fr->valuestring));
    s->finished[ix] = 1;
  } else
    CHECK(cJSON_IsNull(fr));
  s->delta_seen[ix] = 1;
  const cJSON *tc;
  cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c0, "delta"), "tool_calls"))
  {
    CHECK((int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(tc, "index")) == s->ntools[ix]);
    s->ntools[ix]++;
  }
  return 0;
}

static void do_stream(const char *t, size_t n)
{
  xg_meta m = {"chatcmpl-f", "m", 1};
  xg_stream st;
  xg_stream_init(&st, &m);
  sstate s;
  memset(&s, 0, sizeof s);
  pc_err e = {0};
  const char *end = t + n;
  for (const char *p = t; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    int rc = xg_stream_event(&st, p, len, on_chunk, &s, &e);
    if (rc) check_err(&e);
    p += len + 1;
  }
  CHECK(xg_stream_finish(&st, on_chunk, &s, &e) == 0);
  for (int i = 0; i < XG_MAX_CHOICES; i++) CHECK(!s.delta_seen[i] || s.finished[i]);
  xg_stream_free(&st);
}

static void do_embed(const char *t, size_t n)
{
  cJSON *j = cJSON_ParseWithLength(t, n);
  if (!j) return;
  pc_err e = {0};
  for (int f = 0; f < 2; f++) {
    cJSON *r = xg_embed_request(j, f ? XG_VERTEX : XG_AISTUDIO, NULL, &e);
    if (r)
      reprint(r);
    else
      check_err(&e);
    cJSON_Delete(r);
    r = xg_embed_response(j, "m", f, &e);
    if (r) {
      const cJSON *d;
      cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(r, "data"))
          CHECK(f ? cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d, "embedding"))
                  : cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(d, "embedding")));
      reprint(r);
    } else
      check_err(&e);
    cJSON_Delete(r);
  }
  cJSON_Delete(j);
}

static void do_error(const char *t, size_t n, unsigned flags)
{
  xg_error x;
  int st = flags & 1 ? 0 : 400 + (int)(flags % 200);
  xg_error_parse(st, t, n, &x);
  CHECK(x.status >= 400 && x.status <= 599);
  CHECK(x.type[0] && x.message[0]);
  CHECK(memchr(x.message, 0, sizeof x.message) && memchr(x.gstatus, 0, sizeof x.gstatus));
}

static void do_url(const char *t, size_t n, unsigned flags)
{
  char *parts[5] = {0};
  char *buf = malloc(n + 1);
  CHECK(buf);
  memcpy(buf, t, n);
  buf[n] = 0;
  char *p = buf;
  for (int i = 0; i < 5 && p; i++) {
    parts[i] = p;
    p = strchr(p, '\n');
    if (p) *p++ = 0;
  }
  pc_buf b = {0};
  int rc = xg_url(&b, flags & 1 ? XG_VERTEX : XG_AISTUDIO, parts[0], parts[1], parts[2], parts[3], parts[4]);
  if (rc == 0) {
    CHECK(b.p);
    size_t bl = parts[0] ? strlen(parts[0]) : 0;
    while (bl && parts[0][bl - 1] == '/') bl--;
    const char *path = bl ? b.p + bl : strchr(b.p + 8, '/'); /* after the base */
    CHECK(path);
    for (const char *q = path; *q; q++) CHECK(*q > 0x20 && *q < 0x7f && *q != '#' && *q != '%' && *q != '\\');
    CHECK(!strstr(path, "/../") && !strstr(path, "/./"));
  } else
    CHECK(b.n == 0);
  pc_buf_free(&b);
  free(buf);
}

static void do_jwt(const char *t, size_t n)
{
  gj_key k;
  pc_err e = {0};
  if (gj_key_parse(t, n, &k, &e) == 0) {
    CHECK(k.client_email && k.private_key && k.token_uri);
    gj_key_free(&k);
  } else
    CHECK(!k.client_email && e.msg[0]);
  gj_token tk;
  if (gj_token_parse(t, n, 1000, &tk, &e) == 0) {
    CHECK(tk.access_token && tk.expires_at >= 1000);
    gj_cache c = {0};
    CHECK(gj_cache_check(&c, 1000) == GJ_REFRESH);
    gj_cache_store(&c, &tk);
    CHECK(!tk.access_token && !c.refreshing);
    gj_action a = gj_cache_check(&c, 1000);
    CHECK(a == GJ_USE || a == GJ_USE_REFRESH || a == GJ_REFRESH);
    gj_cache_free(&c);
  } else
    CHECK(!tk.access_token && e.msg[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1) return 0;
  unsigned mode = data[0] & 7, flags = data[0] >> 3;
  const char *t = (const char *)data + 1;
  size_t n = size - 1;
  switch (mode) {
  case 0: do_request(t, n, flags); break;
  case 1: do_response(t, n); break;
  case 2: do_stream(t, n); break;
  case 3: do_embed(t, n); break;
  case 4: do_error(t, n, flags); break;
  case 5: do_url(t, n, flags); break;
  default: do_jwt(t, n); break;
  }
  return 0;
}
