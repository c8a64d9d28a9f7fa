/* test_gemini.c - hub <-> Gemini translation (xlate_gemini.h) against hand-written golden fixtures
 * in tests/fixtures/gemini/ (compared semantically with cJSON_Compare), and the Vertex
 * service-account JWT building blocks (gcp_jwt.h): signatures verified with the public key. */
#include "gcp_jwt.h"
#include "t.h"
#include "xlate_gemini.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>

#define FIX "tests/fixtures/gemini/"

static char *xstrdup(const char *s)
{
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (!d) abort();
  return memcpy(d, s, n);
}

static char *slurp(const char *name, size_t *len)
{
  char path[256];
  snprintf(path, sizeof path, FIX "%s", name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "  cannot open %s\n", path);
    return NULL;
  }
  pc_buf b = {0};
  char tmp[4096];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) pc_buf_add(&b, tmp, n);
  fclose(f);
  if (len) *len = b.n;
  return b.p;
}

static cJSON *fixture(const char *name)
{
  char *t = slurp(name, NULL);
  cJSON *j = t ? cJSON_Parse(t) : NULL;
  if (t && !j) fprintf(stderr, "  fixture %s is not JSON\n", name);
  free(t);
  return j;
}

/* semantic JSON equality; prints both on mismatch */
static int same_json(const cJSON *got, const cJSON *want, const char *what)
{
  if (got && want && cJSON_Compare(got, want, 1)) return 1;
  char *g = got ? cJSON_Print(got) : NULL, *w = want ? cJSON_Print(want) : NULL;
  fprintf(stderr, "  %s differs\n  got:  %s\n  want: %s\n", what, g ? g : "(null)", w ? w : "(null)");
  free(g);
  free(w);
  return 0;
}

static void check_request(const char *hub_name, const char *want_name, const xg_req_opts *o)
{
  cJSON *hub = fixture(hub_name), *want = fixture(want_name);
  pc_err e = {0};
  cJSON *got = xg_request_from_hub(hub, o, &e);
  if (!got) fprintf(stderr, "  %s: error %d %s\n", hub_name, e.status, e.msg);
  T_CHECK(same_json(got, want, want_name));
  cJSON_Delete(hub);
  cJSON_Delete(want);
  cJSON_Delete(got);
}

static void test_request_goldens(void)
{
  xg_req_opts def = {0}, hoist = {.hoist_mid_system = 1}, openapi = {.schema_openapi = 1};
  check_request("req_basic.hub.json", "req_basic.gemini.json", &def);
  check_request("req_basic.hub.json", "req_basic.gemini.json", NULL);
  check_request("req_basic.hub.json", "req_basic_hoist.gemini.json", &hoist);
  check_request("req_media.hub.json", "req_media.gemini.json", &def);
  check_request("req_tools.hub.json", "req_tools.gemini.json", &def);
  check_request("req_tools.hub.json", "req_tools_openapi.gemini.json", &openapi);
  check_request("req_schema.hub.json", "req_schema.gemini.json", &def);
  check_request("req_schema.hub.json", "req_schema_openapi.gemini.json", &openapi);
  check_request("req_thinking.hub.json", "req_thinking.gemini.json", &def);
}

/* translate an inline hub request; returns the tree (caller frees) */
static cJSON *req_of(const char *hub_text, const xg_req_opts *o, pc_err *e)
{
  cJSON *hub = cJSON_Parse(hub_text);
  T_CHECK(hub != NULL);
  cJSON *g = xg_request_from_hub(hub, o, e);
  cJSON_Delete(hub);
  return g;
}

static void check_member(const char *hub_text, const xg_req_opts *o, const char *member, const char *want_text)
{
  pc_err e = {0};
  cJSON *g = req_of(hub_text, o, &e);
  if (!g) fprintf(stderr, "  error %d %s\n", e.status, e.msg);
  cJSON *want = want_text ? cJSON_Parse(want_text) : NULL;
  T_CHECK(!want_text || want != NULL);
  const cJSON *got = g ? cJSON_GetObjectItemCaseSensitive(g, member) : NULL;
  if (want_text)
    T_CHECK(same_json(got, want, member));
  else
    T_CHECK(g && !got); /* absent */
  cJSON_Delete(g);
  cJSON_Delete(want);
}

#define U "\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]"

static void test_request_thinking_and_choice(void)
{
  xg_req_opts lv = {.thinking_level = 1}, def = {0};
  check_member("{" U ",\"reasoning_effort\":\"high\"}", &lv, "generationConfig",
               "{\"thinkingConfig\":{\"thinkingLevel\":\"HIGH\",\"includeThoughts\":true}}");
  check_member("{" U ",\"reasoning_effort\":\"none\"}", &def, "generationConfig",
               "{\"thinkingConfig\":{\"thinkingBudget\":0}}");
  check_member("{" U ",\"reasoning_effort\":\"minimal\"}", &lv, "generationConfig",
               "{\"thinkingConfig\":{\"thinkingLevel\":\"MINIMAL\",\"includeThoughts\":true}}");
  check_member("{" U ",\"reasoning_effort\":\"medium\"}", &def, "generationConfig",
               "{\"thinkingConfig\":{\"thinkingBudget\":8192,\"includeThoughts\":true}}");
  /* an explicit budget wins over the effort and gives a budget even in level mode */
  check_member("{" U ",\"reasoning_effort\":\"high\",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048}}", &lv,
               "generationConfig", "{\"thinkingConfig\":{\"thinkingBudget\":2048,\"includeThoughts\":true}}");
  check_member("{" U ",\"thinking\":{\"type\":\"disabled\"}}", &def, "generationConfig",
               "{\"thinkingConfig\":{\"thinkingBudget\":0}}");
  check_member("{" U ",\"response_format\":{\"type\":\"json_object\"}}", &def, "generationConfig",
               "{\"responseMimeType\":\"application/json\"}");
  check_member("{" U ",\"stop\":[\"a\",\"b\"],\"max_tokens\":9}", &def, "generationConfig",
               "{\"stopSequences\":[\"a\",\"b\"],\"maxOutputTokens\":9}");
  check_member("{" U ",\"response_format\":{\"type\":\"text\"}}", &def, "generationConfig", NULL);
  check_member("{" U ",\"tool_choice\":\"auto\"}", &def, "toolConfig",
               "{\"functionCallingConfig\":{\"mode\":\"AUTO\"}}");
  check_member("{" U ",\"tool_choice\":\"required\"}", &def, "toolConfig",
               "{\"functionCallingConfig\":{\"mode\":\"ANY\"}}");
  check_member(
      "{" U ",\"tool_choice\":{\"type\":\"allowed_tools\",\"allowed_tools\":{\"mode\":\"required\",\"tools\":["
      "{\"type\":\"function\",\"function\":{\"name\":\"a\"}},{\"type\":\"function\",\"function\":{\"name\":\"b\"}}]}}}",
      &def, "toolConfig", "{\"functionCallingConfig\":{\"mode\":\"ANY\",\"allowedFunctionNames\":[\"a\",\"b\"]}}");
}

static void test_request_signatures(void)
{
  /* a turn without signatures gets the documented dummy on its first call with fill_signatures */
  const char *h =
      "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},"
      "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"x\",\"type\":\"function\",\"function\":{\"name\":\"f\","
      "\"arguments\":\"{}\"}},"
      "{\"id\":\"y\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{\\\"a\\\":1}\"}}]},"
      "{\"role\":\"tool\",\"tool_call_id\":\"y\",\"content\":\"[1,2]\"},"
      "{\"role\":\"tool\",\"tool_call_id\":\"x\",\"content\":\"42\"}]}";
  xg_req_opts fill = {.fill_signatures = 1}, def = {0};
  check_member(
      h, &fill, "contents",
      "[{\"role\":\"user\",\"parts\":[{\"text\":\"q\"}]},"
      "{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{}},\"thoughtSignature\":"
      "\"" XG_DUMMY_SIGNATURE "\"},"
      "{\"functionCall\":{\"name\":\"g\",\"args\":{\"a\":1}}}]},"
      "{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":\"g\",\"response\":{\"content\":\"[1,2]\"}}},"
      "{\"functionResponse\":{\"name\":\"f\",\"response\":{\"content\":\"42\"}}}]}]");
  check_member(
      h, &def, "contents",
      "[{\"role\":\"user\",\"parts\":[{\"text\":\"q\"}]},"
      "{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{}}},"
      "{\"functionCall\":{\"name\":\"g\",\"args\":{\"a\":1}}}]},"
      "{\"role\":\"user\",\"parts\":[{\"functionResponse\":{\"name\":\"g\",\"response\":{\"content\":\"[1,2]\"}}},"
      "{\"functionResponse\":{\"name\":\"f\",\"response\":{\"content\":\"42\"}}}]}]");
  /* an assistant turn left empty disappears and the user turns around it merge (alternation) */
  check_member("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"\"},"
               "{\"role\":\"user\",\"content\":\"b\"},{\"role\":\"assistant\",\"content\":null}]}",
               &def, "contents", "[{\"role\":\"user\",\"parts\":[{\"text\":\"a\"},{\"text\":\"b\"}]}]");
  /* Gemini's OpenAI-compatible extra_content signature is kept and not overridden by the dummy */
  check_member(
      "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":["
      "{\"id\":\"x\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"},"
      "\"extra_content\":{\"google\":{\"thought_signature\":\"REAL\"}}}]}]}",
      &fill, "contents",
      "[{\"role\":\"user\",\"parts\":[{\"text\":\"q\"}]},"
      "{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{}},\"thoughtSignature\":\"REAL\"}]}"
      "]");
}

static void expect_400(const char *hub_text, const xg_req_opts *o, const char *param)
{
  pc_err e = {0};
  cJSON *g = req_of(hub_text, o, &e);
  T_CHECK(g == NULL);
  T_EQ_INT(e.status, 400);
  T_EQ_STR(e.param, param);
  if (!strstr(e.msg, "gemini") || !strstr(e.msg, param)) {
    fprintf(stderr, "  message \"%s\" should name \"%s\" and gemini\n", e.msg, param);
    t_cur_failed = 1;
  }
  cJSON_Delete(g);
}

static void test_request_errors(void)
{
  xg_req_opts def = {0}, openapi = {.schema_openapi = 1};
  expect_400("{" U ",\"logprobs\":true}", &def, "logprobs");
  expect_400("{" U ",\"top_logprobs\":2}", &def, "top_logprobs");
  expect_400("{" U ",\"logit_bias\":{\"50256\":-100}}", &def, "logit_bias");
  expect_400("{" U ",\"audio\":{\"voice\":\"x\"}}", &def, "audio");
  expect_400("{" U ",\"modalities\":[\"text\",\"audio\"]}", &def, "modalities");
  expect_400("{" U ",\"reasoning_effort\":\"extreme\"}", &def, "reasoning_effort");
  expect_400("{" U ",\"tools\":[{\"type\":\"web_search\"}]}", &def, "tools[0]");
  expect_400("{" U ",\"tool_choice\":\"sometimes\"}", &def, "tool_choice");
  expect_400("{" U ",\"response_format\":{\"type\":\"xml\"}}", &def, "response_format");
  expect_400("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video\",\"video\":{}}]}]}", &def,
             "messages[0].content[0]");
  expect_400("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:"
             "image/png,abc\"}}]}]}",
             &def, "messages[0].content[0]");
  expect_400("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"ftp://x/"
             "y.png\"}}]}]}",
             &def, "messages[0].content[0]");
  expect_400(
      "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{\"file_id\":\"file-abc\"}}]}]}",
      &def, "messages[0].content[0]");
  expect_400("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"tool\",\"tool_call_id\":\"nope\","
             "\"content\":\"1\"}]}",
             &def, "messages[1]");
  expect_400(
      "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"x\","
      "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
      &def, "messages[1]");
  expect_400("{\"messages\":[{\"role\":\"function\",\"content\":\"q\"}]}", &def, "messages[0]");
  expect_400("{\"messages\":[{\"role\":\"system\",\"content\":\"only system\"}]}", &def, "messages");
  /* schema subset: what cannot be carried is named */
  expect_400("{" U
             ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
             "\"properties\":{\"a\":{\"not\":{\"type\":\"string\"}}}}}}]}",
             &openapi, "tools[0].function.parameters");
  expect_400("{" U
             ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"$ref\":\"#/$defs/n\","
             "\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"next\":{\"$ref\":\"#/$defs/n\"}}}}}}}]}",
             &openapi, "tools[0].function.parameters");
  expect_400("{" U ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"$ref\":\"http://"
                   "x/s.json\"}}}]}",
             &openapi, "tools[0].function.parameters");
  /* enum with null and a nullable type list: one "nullable" member */
  check_member("{" U ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\",\"schema\":"
               "{\"type\":[\"string\",\"null\"],\"enum\":[\"a\",null],\"allOf\":[{\"description\":\"d\"}]}}}}",
               &openapi, "generationConfig",
               "{\"responseMimeType\":\"application/json\",\"responseSchema\":"
               "{\"description\":\"d\",\"type\":\"STRING\",\"nullable\":true,\"enum\":[\"a\"]}}");
  /* the recursive schema passes unchanged as parametersJsonSchema */
  pc_err e = {0};
  cJSON *g = req_of(
      "{" U ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"$ref\":\"#/$defs/n\","
      "\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"next\":{\"$ref\":\"#/$defs/n\"}}}}}}}]}",
      &def, &e);
  T_CHECK(g != NULL);
  cJSON_Delete(g);
  /* not an object at all */
  cJSON *arr = cJSON_CreateArray();
  T_CHECK(xg_request_from_hub(arr, NULL, &e) == NULL);
  T_EQ_INT(e.status, 400);
  cJSON_Delete(arr);
}

static void check_response(const char *gem_name, const char *want_name, const char *model)
{
  cJSON *gem = fixture(gem_name), *want = fixture(want_name);
  xg_meta m = {"chatcmpl-fallback", model, 1700000000};
  pc_err e = {0};
  cJSON *got = xg_response_to_hub(gem, &m, &e);
  if (!got) fprintf(stderr, "  %s: error %d %s\n", gem_name, e.status, e.msg);
  T_CHECK(same_json(got, want, want_name));
  cJSON_Delete(gem);
  cJSON_Delete(want);
  cJSON_Delete(got);
}

static void test_response_goldens(void)
{
  check_response("resp_text.gemini.json", "resp_text.hub.json", "ignored");
  check_response("resp_tools.gemini.json", "resp_tools.hub.json", "gemini-2.5-pro");
  check_response("resp_safety.gemini.json", "resp_safety.hub.json", "x");
  check_response("resp_blocked.gemini.json", "resp_blocked.hub.json", "x");
  check_response("resp_multi.gemini.json", "resp_multi.hub.json", "gemini-2.5-pro");
}

static void test_response_errors(void)
{
  pc_err e = {0};
  cJSON *arr = cJSON_Parse("[1]");
  T_CHECK(xg_response_to_hub(arr, NULL, &e) == NULL);
  T_EQ_INT(e.status, 502);
  cJSON_Delete(arr);
  cJSON *err = fixture("error_429.json");
  T_CHECK(xg_response_to_hub(err, NULL, &e) == NULL);
  T_EQ_INT(e.status, 429);
  T_CHECK(strstr(e.msg, "Resource has been exhausted") != NULL);
  cJSON_Delete(err);
  cJSON *bad = cJSON_Parse("{\"candidates\":{}}");
  T_CHECK(xg_response_to_hub(bad, NULL, &e) == NULL);
  T_EQ_INT(e.status, 502);
  cJSON_Delete(bad);
  /* own ids of function calls are kept */
  cJSON *own =
      cJSON_Parse("{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"id\":\"fc-9\",\"name\":\"f\"}}]},"
                  "\"finishReason\":\"STOP\"}]}");
  cJSON *h = xg_response_to_hub(own, NULL, &e);
  const cJSON *tc = cJSON_GetArrayItem(
      cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(h, "choices"), 0), "message"),
                          "tool_calls"),
      0);
  T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(tc, "id")), "fc-9");
  T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(tc, "function"), "arguments")), "{}");
  cJSON_Delete(h);
  cJSON_Delete(own);
}

static void test_finish_reasons(void)
{
  T_EQ_STR(xg_finish_reason("STOP", 0), "stop");
  T_EQ_STR(xg_finish_reason("STOP", 1), "tool_calls");
  T_EQ_STR(xg_finish_reason("MAX_TOKENS", 1), "length");
  const char *filt[] = {"SAFETY", "RECITATION", "BLOCKLIST",    "PROHIBITED_CONTENT",
                        "SPII",   "LANGUAGE",   "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"};
  for (size_t i = 0; i < sizeof filt / sizeof filt[0]; i++) T_EQ_STR(xg_finish_reason(filt[i], 0), "content_filter");
  T_EQ_STR(xg_finish_reason("MALFORMED_FUNCTION_CALL", 0), "stop");
  T_EQ_STR(xg_finish_reason("OTHER", 0), "stop");
  T_EQ_STR(xg_finish_reason(NULL, 0), "stop");
}

/* ---- stream ---- */
typedef struct {
  cJSON *chunks;
  int stop_after; /* return 5 from the callback after this many chunks (0 = never) */
} sink;

static int collect(void *ud, const cJSON *chunk)
{
  sink *s = ud;
  cJSON_AddItemToArray(s->chunks, cJSON_Duplicate(chunk, 1));
  return s->stop_after && cJSON_GetArraySize(s->chunks) >= s->stop_after ? 5 : 0;
}

/* feeds every "data: " line of an .sse fixture; returns the last rc */
static int feed_sse(xg_stream *st, const char *text, sink *sk, pc_err *e)
{
  int rc = 0;
  for (const char *p = text; p && *p && !rc;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    if (n > 6 && !strncmp(p, "data: ", 6)) rc = xg_stream_event(st, p + 6, n - 6, collect, sk, e);
    p = nl ? nl + 1 : NULL;
  }
  return rc;
}

static void test_stream_golden(void)
{
  char *sse = slurp("stream_tools.sse", NULL);
  cJSON *want = fixture("stream_tools.chunks.json");
  xg_meta m = {"chatcmpl-x", "fallback-model", 1700000000};
  xg_stream st;
  xg_stream_init(&st, &m);
  sink sk = {cJSON_CreateArray(), 0};
  pc_err e = {0};
  T_EQ_INT(feed_sse(&st, sse, &sk, &e), 0);
  T_EQ_INT(xg_stream_finish(&st, collect, &sk, &e), 0);
  T_EQ_INT(xg_stream_finish(&st, collect, &sk, &e), 0); /* idempotent */
  T_CHECK(same_json(sk.chunks, want, "stream_tools.chunks.json"));

  /* the same answer non-streamed gives the same tool-call ids */
  const char *last =
      strrchr(sse, '{')
          ? strstr(sse, "data: {\"candidates\": [{\"content\": {\"role\": \"model\", \"parts\": [{\"functionCall\"")
          : NULL;
  T_CHECK(last != NULL);
  if (last) {
    cJSON *g = cJSON_Parse(last + 6);
    cJSON *h = xg_response_to_hub(g, &m, &e);
    const cJSON *tcs = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(h, "choices"), 0), "message"), "tool_calls");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(tcs, 0), "id")), "call_cb498327ad01a387");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(tcs, 1), "id")), "call_218777efc3c1f9a1");
    cJSON_Delete(h);
    cJSON_Delete(g);
  }
  xg_stream_free(&st);
  cJSON_Delete(sk.chunks);
  cJSON_Delete(want);
  free(sse);
}

static void test_stream_edges(void)
{
  xg_meta m = {"chatcmpl-x", "gm", 5};
  pc_err e = {0};
  /* the callback's non-zero value stops the decoder and is returned */
  {
    char *sse = slurp("stream_tools.sse", NULL);
    xg_stream st;
    xg_stream_init(&st, &m);
    sink sk = {cJSON_CreateArray(), 3};
    T_EQ_INT(feed_sse(&st, sse, &sk, &e), 5);
    T_EQ_INT(cJSON_GetArraySize(sk.chunks), 3);
    xg_stream_free(&st);
    cJSON_Delete(sk.chunks);
    free(sse);
  }
  /* a stream cut before finishReason: finish sends stop, then usage; no usage seen -> none */
  {
    xg_stream st;
    xg_stream_init(&st, &m);
    sink sk = {cJSON_CreateArray(), 0};
    const char *ev = "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}";
    T_EQ_INT(xg_stream_event(&st, ev, strlen(ev), collect, &sk, &e), 0);
    T_EQ_INT(xg_stream_finish(&st, collect, &sk, &e), 0);
    cJSON *want = cJSON_Parse(
        "[{\"id\":\"chatcmpl-x\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"gm\","
        "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]},"
        "{\"id\":\"chatcmpl-x\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"gm\","
        "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}]");
    T_CHECK(same_json(sk.chunks, want, "cut stream"));
    cJSON_Delete(want);
    xg_stream_free(&st);
    cJSON_Delete(sk.chunks);
  }
  /* a blocked prompt: one content_filter finish, then usage */
  {
    xg_stream st;
    xg_stream_init(&st, &m);
    sink sk = {cJSON_CreateArray(), 0};
    const char *ev = "{\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":4,"
                     "\"totalTokenCount\":4},"
                     "\"responseId\":\"b\",\"modelVersion\":\"gemini-2.5-flash\"}";
    T_EQ_INT(xg_stream_event(&st, ev, strlen(ev), collect, &sk, &e), 0);
    T_EQ_INT(xg_stream_finish(&st, collect, &sk, &e), 0);
    cJSON *want = cJSON_Parse(
        "[{\"id\":\"chatcmpl-b\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"gemini-2.5-flash\","
        "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_reason\":\"content_filter\"}]},"
        "{\"id\":\"chatcmpl-b\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"gemini-2.5-flash\","
        "\"choices\":[],"
        "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":0,\"total_tokens\":4,"
        "\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}]");
    T_CHECK(same_json(sk.chunks, want, "blocked stream"));
    cJSON_Delete(want);
    xg_stream_free(&st);
    cJSON_Delete(sk.chunks);
  }
  /* an error event and garbage */
  {
    xg_stream st;
    xg_stream_init(&st, &m);
    sink sk = {cJSON_CreateArray(), 0};
    const char *ev = "{\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}";
    T_EQ_INT(xg_stream_event(&st, ev, strlen(ev), collect, &sk, &e), -1);
    T_EQ_INT(e.status, 503);
    T_CHECK(strstr(e.msg, "overloaded") != NULL);
    T_EQ_INT(xg_stream_event(&st, "{\"cand", 6, collect, &sk, &e), -1);
    T_EQ_INT(e.status, 502);
    T_EQ_INT(cJSON_GetArraySize(sk.chunks), 0);
    xg_stream_free(&st);
    cJSON_Delete(sk.chunks);
  }
  /* two candidates interleaved keep their own indexes and tool counters */
  {
    xg_stream st;
    xg_stream_init(&st, &m);
    sink sk = {cJSON_CreateArray(), 0};
    const char *ev =
        "{\"candidates\":[{\"index\":1,\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{}}}]},"
        "\"finishReason\":\"STOP\"},{\"index\":0,\"content\":{\"parts\":[{\"text\":\"a\"}]},\"finishReason\":\"MAX_"
        "TOKENS\"}]}";
    T_EQ_INT(xg_stream_event(&st, ev, strlen(ev), collect, &sk, &e), 0);
    T_EQ_INT(xg_stream_finish(&st, collect, &sk, &e), 0);
    T_EQ_INT(cJSON_GetArraySize(sk.chunks), 4);
    const cJSON *c1 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(sk.chunks, 1), "choices"), 0);
    const cJSON *c3 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(sk.chunks, 3), "choices"), 0);
    T_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(c1, "index")), 1);
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(c1, "finish_reason")), "tool_calls");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(c3, "finish_reason")), "length");
    xg_stream_free(&st);
    cJSON_Delete(sk.chunks);
  }
}

/* ---- embeddings ---- */
static void test_embeddings(void)
{
  pc_err e = {0};
  cJSON *req = fixture("embed_req.openai.json");
  cJSON *want_a = fixture("embed_req.aistudio.json"), *want_v = fixture("embed_req.vertex.json");
  cJSON *a = xg_embed_request(req, XG_AISTUDIO, "models/text-embedding-004", &e);
  cJSON *v = xg_embed_request(req, XG_VERTEX, "text-embedding-004", &e);
  T_CHECK(same_json(a, want_a, "embed_req.aistudio.json"));
  T_CHECK(same_json(v, want_v, "embed_req.vertex.json"));
  cJSON_Delete(a);
  cJSON_Delete(v);
  cJSON_Delete(want_a);
  cJSON_Delete(want_v);
  cJSON_Delete(req);

  cJSON *ra = fixture("embed_resp.aistudio.json"), *wa = fixture("embed_resp.aistudio.openai.json");
  cJSON *ga = xg_embed_response(ra, "text-embedding-004", 0, &e);
  T_CHECK(same_json(ga, wa, "embed_resp.aistudio.openai.json"));
  cJSON *rv = fixture("embed_resp.vertex.json"), *wv = fixture("embed_resp.vertex.openai.json");
  cJSON *gv = xg_embed_response(rv, "text-embedding-005", 0, &e);
  T_CHECK(same_json(gv, wv, "embed_resp.vertex.openai.json"));
  /* base64: little-endian float32 of [1, -2] */
  cJSON *gb = xg_embed_response(rv, "m", 1, &e);
  T_EQ_STR(
      cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(gb, "data"), 0), "embedding")),
      "AACAPwAAAMA=");
  /* single embedContent answer */
  cJSON *one = cJSON_Parse("{\"embedding\":{\"values\":[0.25]}}");
  cJSON *go = xg_embed_response(one, "m", 0, &e);
  T_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(go, "data")), 1);
  cJSON *bad = cJSON_Parse("{\"embeddings\":[{\"values\":[\"x\"]}]}");
  T_CHECK(xg_embed_response(bad, "m", 0, &e) == NULL);
  T_EQ_INT(e.status, 502);
  cJSON *tok = cJSON_Parse("{\"model\":\"m\",\"input\":[[1,2,3]]}");
  T_CHECK(xg_embed_request(tok, XG_AISTUDIO, NULL, &e) == NULL);
  T_EQ_INT(e.status, 400);
  T_EQ_STR(e.param, "input");
  T_CHECK(strstr(e.msg, "gemini") != NULL);
  cJSON *single = cJSON_Parse("{\"model\":\"m\",\"input\":\"hello\"}");
  cJSON *gs = xg_embed_request(single, XG_AISTUDIO, NULL, &e);
  cJSON *ws = cJSON_Parse("{\"requests\":[{\"model\":\"models/m\",\"content\":{\"parts\":[{\"text\":\"hello\"}]}}]}");
  T_CHECK(same_json(gs, ws, "single embed request"));
  cJSON *objs[] = {ra, wa, ga, rv, wv, gv, gb, one, go, bad, tok, single, gs, ws};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) cJSON_Delete(objs[i]);
}

/* ---- errors, URLs ---- */
static void test_errors(void)
{
  xg_error x;
  size_t n;
  char *b = slurp("error_429.json", &n);
  T_EQ_INT(xg_error_parse(429, b, n, &x), 0);
  T_EQ_INT(x.status, 429);
  T_EQ_STR(x.type, "rate_limit_error");
  T_EQ_STR(x.gstatus, "RESOURCE_EXHAUSTED");
  T_EQ_STR(x.message, "Resource has been exhausted (e.g. check quota).");
  free(b);
  const char *inv = "[{\"error\":{\"code\":400,\"message\":\"Invalid JSON payload\",\"status\":\"INVALID_ARGUMENT\"}}]";
  T_EQ_INT(xg_error_parse(400, inv, strlen(inv), &x), 0);
  T_EQ_INT(x.status, 400);
  T_EQ_STR(x.type, "invalid_request_error");
  T_EQ_STR(x.message, "Invalid JSON payload");
  const char *perm = "{\"error\":{\"code\":403,\"message\":\"denied\",\"status\":\"PERMISSION_DENIED\"}}";
  T_EQ_INT(xg_error_parse(0, perm, strlen(perm), &x), 0); /* status from error.code */
  T_EQ_INT(x.status, 403);
  T_EQ_STR(x.type, "permission_error");
  const char *unav = "{\"error\":{\"message\":\"overloaded\",\"status\":\"UNAVAILABLE\"}}";
  T_EQ_INT(xg_error_parse(0, unav, strlen(unav), &x), 0); /* status from the status name */
  T_EQ_INT(x.status, 503);
  T_EQ_STR(x.type, "overloaded_error");
  T_EQ_INT(xg_error_parse(500, "<html>oops</html>", 17, &x), -1);
  T_EQ_INT(x.status, 500);
  T_EQ_STR(x.type, "api_error");
  T_EQ_STR(x.message, "gemini returned HTTP 500");
  T_EQ_INT(xg_error_parse(0, NULL, 0, &x), -1);
  T_EQ_INT(x.status, 502);
  T_EQ_STR(xg_error_type(401), "authentication_error");
  T_EQ_STR(xg_error_type(404), "not_found_error");
  T_EQ_STR(xg_error_type(413), "request_too_large");
  T_EQ_STR(xg_error_type(504), "timeout_error");
}

static void url_is(xg_flavor f, const char *base, const char *proj, const char *loc, const char *model,
                   const char *method, const char *want)
{
  pc_buf b = {0};
  int rc = xg_url(&b, f, base, proj, loc, model, method);
  if (want) {
    T_EQ_INT(rc, 0);
    T_EQ_STR(b.p, want);
  } else {
    T_EQ_INT(rc, -1);
    T_CHECK(b.n == 0);
  }
  pc_buf_free(&b);
}

static void test_urls(void)
{
  url_is(XG_AISTUDIO, NULL, NULL, NULL, "gemini-2.5-flash", "generateContent",
         "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent");
  url_is(XG_AISTUDIO, "", NULL, NULL, "models/gemini-2.5-flash", "streamGenerateContent",
         "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
  url_is(XG_AISTUDIO, "http://127.0.0.1:18080/", NULL, NULL, "text-embedding-004", "batchEmbedContents",
         "http://127.0.0.1:18080/v1beta/models/text-embedding-004:batchEmbedContents");
  url_is(XG_VERTEX, NULL, "my-proj", "us-central1", "gemini-2.0-flash-001", "generateContent",
         "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/publishers/google/"
         "models/"
         "gemini-2.0-flash-001:generateContent");
  url_is(XG_VERTEX, NULL, "p", "global", "gemini-2.5-pro", "streamGenerateContent",
         "https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-pro:"
         "streamGenerateContent?alt=sse");
  url_is(XG_VERTEX, "http://127.0.0.1:9", "p", "europe-west4", "text-embedding-005", "predict",
         "http://127.0.0.1:9/v1/projects/p/locations/europe-west4/publishers/google/models/text-embedding-005:predict");
  url_is(XG_AISTUDIO, NULL, NULL, NULL, "../x", "generateContent", NULL);
  url_is(XG_AISTUDIO, NULL, NULL, NULL, "a?b", "generateContent", NULL);
  url_is(XG_AISTUDIO, NULL, NULL, NULL, "gemini", "deleteEverything", NULL);
  url_is(XG_VERTEX, NULL, "p/../q", "us-central1", "gemini", "generateContent", NULL);
  url_is(XG_VERTEX, NULL, "p", NULL, "gemini", "generateContent", NULL);
  url_is(XG_AISTUDIO, NULL, NULL, NULL, "", "generateContent", NULL);
}

/* ---- JWT ---- */
static int b64url_dec(const char *s, size_t n, pc_buf *out)
{
  static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned v = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    const char *q = memchr(al, s[i], 64);
    if (!q || !s[i]) return -1;
    v = (v << 6) | (unsigned)(q - al);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      char c = (char)((v >> bits) & 0xff);
      pc_buf_add(out, &c, 1);
    }
  }
  pc_buf_add(out, "", 0);
  return 0;
}

static void test_b64url(void)
{
  const char *in[] = {"", "f", "fo", "foo", "foob", "\xfb\xff"};
  const char *want[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "-_8"};
  for (int i = 0; i < 6; i++) {
    pc_buf b = {0};
    T_EQ_INT(gj_b64url(&b, in[i], strlen(in[i])), 0);
    T_EQ_MEM(b.p ? b.p : "", b.n, want[i]);
    pc_buf_free(&b);
  }
}

static EVP_PKEY *gen_rsa(char **pem_out)
{
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
  char *p;
  long n = BIO_get_mem_data(bio, &p);
  *pem_out = malloc((size_t)n + 1);
  memcpy(*pem_out, p, (size_t)n);
  (*pem_out)[n] = 0;
  BIO_free(bio);
  return k;
}

static int verify_rs256(EVP_PKEY *k, const char *msg, size_t n, const unsigned char *sig, size_t sn)
{
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
           EVP_DigestVerify(md, sig, sn, (const unsigned char *)msg, n) == 1;
  EVP_MD_CTX_free(md);
  return ok;
}

static void test_jwt(void)
{
  char *pem = NULL;
  EVP_PKEY *k = gen_rsa(&pem);
  T_CHECK(k != NULL);
  cJSON *sa = cJSON_CreateObject();
  cJSON_AddStringToObject(sa, "type", "service_account");
  cJSON_AddStringToObject(sa, "project_id", "proj-1");
  cJSON_AddStringToObject(sa, "private_key_id", "kid-123");
  cJSON_AddStringToObject(sa, "private_key", pem);
  cJSON_AddStringToObject(sa, "client_email", "svc@proj-1.iam.gserviceaccount.com");
  cJSON_AddStringToObject(sa, "token_uri", "http://127.0.0.1:18081/token");
  char *sa_text = cJSON_PrintUnformatted(sa);

  gj_key key;
  pc_err e = {0};
  T_EQ_INT(gj_key_parse(sa_text, strlen(sa_text), &key, &e), 0);
  T_EQ_STR(key.client_email, "svc@proj-1.iam.gserviceaccount.com");
  T_EQ_STR(key.private_key_id, "kid-123");
  T_EQ_STR(key.token_uri, "http://127.0.0.1:18081/token");
  T_EQ_STR(key.project_id, "proj-1");
  T_EQ_STR(key.private_key, pem);

  pc_buf jwt = {0};
  T_EQ_INT(gj_assertion(&key, NULL, 1700000000, &jwt, &e), 0);
  T_CHECK(jwt.p && !strpbrk(jwt.p, "+/= "));
  const char *d1 = jwt.p ? strchr(jwt.p, '.') : NULL, *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
  T_CHECK(d1 && d2 && !strchr(d2 + 1, '.'));
  if (d1 && d2) {
    pc_buf h = {0}, c = {0}, s = {0};
    T_EQ_INT(b64url_dec(jwt.p, (size_t)(d1 - jwt.p), &h), 0);
    T_EQ_INT(b64url_dec(d1 + 1, (size_t)(d2 - d1 - 1), &c), 0);
    T_EQ_INT(b64url_dec(d2 + 1, strlen(d2 + 1), &s), 0);
    cJSON *hj = cJSON_Parse(h.p), *cj = cJSON_Parse(c.p);
    cJSON *wh = cJSON_Parse("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"kid-123\"}");
    cJSON *wc =
        cJSON_Parse("{\"iss\":\"svc@proj-1.iam.gserviceaccount.com\",\"scope\":"
                    "\"https://www.googleapis.com/auth/cloud-platform\",\"aud\":\"http://127.0.0.1:18081/token\","
                    "\"iat\":1700000000,\"exp\":1700003600}");
    T_CHECK(same_json(hj, wh, "JWT header"));
    T_CHECK(same_json(cj, wc, "JWT claims"));
    T_CHECK(strstr(c.p, "\"iat\":1700000000") != NULL); /* integers, not 1.7e+09 */
    T_EQ_INT(s.n, 256);                                 /* RSA-2048 signature */
    T_CHECK(verify_rs256(k, jwt.p, (size_t)(d2 - jwt.p), (unsigned char *)s.p, s.n));
    /* a changed claim no longer verifies */
    char *tampered = xstrdup(jwt.p);
    tampered[(d1 - jwt.p) + 3] ^= 1;
    T_CHECK(!verify_rs256(k, tampered, (size_t)(d2 - jwt.p), (unsigned char *)s.p, s.n));
    free(tampered);
    /* the token request body */
    pc_buf body = {0};
    T_EQ_INT(gj_token_body(jwt.p, &body), 0);
    pc_buf wb = {0};
    pc_buf_printf(&wb, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer&assertion=%s", jwt.p);
    T_EQ_STR(body.p, wb.p);
    pc_buf_free(&body);
    pc_buf_free(&wb);
    cJSON_Delete(hj);
    cJSON_Delete(cj);
    cJSON_Delete(wh);
    cJSON_Delete(wc);
    pc_buf_free(&h);
    pc_buf_free(&c);
    pc_buf_free(&s);
  }
  /* another scope; no kid, default token_uri */
  free(key.private_key_id);
  key.private_key_id = NULL;
  free(key.token_uri);
  key.token_uri = NULL;
  pc_buf j2 = {0};
  T_EQ_INT(gj_assertion(&key, "https://www.googleapis.com/auth/generative-language", 5, &j2, &e), 0);
  if (j2.p) {
    pc_buf h = {0}, c = {0};
    const char *a = strchr(j2.p, '.'), *b2 = strchr(a + 1, '.');
    b64url_dec(j2.p, (size_t)(a - j2.p), &h);
    b64url_dec(a + 1, (size_t)(b2 - a - 1), &c);
    cJSON *hj = cJSON_Parse(h.p), *cj = cJSON_Parse(c.p);
    cJSON *wh = cJSON_Parse("{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
    cJSON *wc =
        cJSON_Parse("{\"iss\":\"svc@proj-1.iam.gserviceaccount.com\",\"scope\":"
                    "\"https://www.googleapis.com/auth/generative-language\",\"aud\":\"" GJ_DEFAULT_TOKEN_URI "\","
                    "\"iat\":5,\"exp\":3605}");
    T_CHECK(same_json(hj, wh, "JWT header without kid"));
    T_CHECK(same_json(cj, wc, "JWT claims, other scope"));
    cJSON_Delete(hj);
    cJSON_Delete(cj);
    cJSON_Delete(wh);
    cJSON_Delete(wc);
    pc_buf_free(&h);
    pc_buf_free(&c);
  }
  pc_buf_free(&j2);
  /* an unreadable key */
  free(key.private_key);
  key.private_key = xstrdup("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  size_t before = jwt.n;
  T_EQ_INT(gj_assertion(&key, NULL, 1, &jwt, &e), -1);
  T_EQ_INT(jwt.n, before); /* out unchanged */
  T_EQ_STR(e.param, "private_key");
  gj_key_free(&key);
  T_CHECK(key.client_email == NULL);

  /* parse errors name the field */
  const char *bad[][2] = {
      {"{\"type\":\"authorized_user\",\"client_email\":\"a\",\"private_key\":\"-----BEGIN X\"}", "type"},
      {"{\"private_key\":\"-----BEGIN X\"}", "client_email"},
      {"{\"client_email\":\"a\",\"private_key\":\"nope\"}", "private_key"},
      {"[]", ""}};
  for (int i = 0; i < 4; i++) {
    gj_key kk;
    T_EQ_INT(gj_key_parse(bad[i][0], strlen(bad[i][0]), &kk, &e), -1);
    T_EQ_STR(e.param, bad[i][1]);
    T_CHECK(kk.client_email == NULL && kk.private_key == NULL);
  }
  const char *minimal = "{\"client_email\":\"a@b\",\"private_key\":\"-----BEGIN PRIVATE KEY-----\\n\"}";
  gj_key mk;
  T_EQ_INT(gj_key_parse(minimal, strlen(minimal), &mk, &e), 0);
  T_EQ_STR(mk.token_uri, GJ_DEFAULT_TOKEN_URI);
  T_CHECK(mk.private_key_id == NULL && mk.project_id == NULL);
  gj_key_free(&mk);

  pc_buf_free(&jwt);
  free(sa_text);
  cJSON_Delete(sa);
  free(pem);
  EVP_PKEY_free(k);
}

static void test_token_parse(void)
{
  gj_token t;
  pc_err e = {0};
  const char *ok = "{\"access_token\":\"ya29.abc\",\"expires_in\":3599,\"token_type\":\"Bearer\"}";
  T_EQ_INT(gj_token_parse(ok, strlen(ok), 1000, &t, &e), 0);
  T_EQ_STR(t.access_token, "ya29.abc");
  T_EQ_INT(t.expires_at, 4599);
  gj_token_free(&t);
  const char *noexp = "{\"access_token\":\"x\"}";
  T_EQ_INT(gj_token_parse(noexp, strlen(noexp), 10, &t, &e), 0);
  T_EQ_INT(t.expires_at, 10 + GJ_LIFETIME);
  gj_token_free(&t);
  const char *err = "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}";
  T_EQ_INT(gj_token_parse(err, strlen(err), 0, &t, &e), -1);
  T_EQ_INT(e.status, 401);
  T_EQ_STR(e.msg, "token endpoint: invalid_grant: Invalid JWT Signature.");
  T_CHECK(t.access_token == NULL);
  T_EQ_INT(gj_token_parse("nope", 4, 0, &t, &e), -1);
  T_EQ_INT(e.status, 502);
}

static gj_token tok(const char *s, long long exp)
{
  gj_token t = {xstrdup(s), exp};
  return t;
}

static void test_cache(void)
{
  gj_cache c = {0};
  /* empty: the first caller refreshes, the others wait */
  T_EQ_INT(gj_cache_check(&c, 1000), GJ_REFRESH);
  T_EQ_INT(c.refreshing, 1);
  T_EQ_INT(gj_cache_check(&c, 1001), GJ_WAIT);
  gj_cache_failed(&c);
  T_EQ_INT(c.refreshing, 0);
  T_EQ_INT(gj_cache_check(&c, 1002), GJ_REFRESH);
  gj_token t = tok("A", 1002 + 3600);
  gj_cache_store(&c, &t);
  T_CHECK(t.access_token == NULL);
  T_EQ_STR(c.token, "A");
  T_EQ_INT(c.refreshing, 0);
  /* exactly 300 s left: still fresh; 299: use and refresh once */
  T_EQ_INT(gj_cache_check(&c, 4602 - 300), GJ_USE);
  T_EQ_INT(gj_cache_check(&c, 4602 - 299), GJ_USE_REFRESH);
  T_EQ_INT(c.refreshing, 1);
  T_EQ_INT(gj_cache_check(&c, 4602 - 298), GJ_USE); /* single flight */
  t = tok("B", 10000);
  gj_cache_store(&c, &t);
  T_EQ_STR(c.token, "B");
  T_EQ_INT(c.refreshing, 0);
  T_EQ_INT(gj_cache_check(&c, 5000), GJ_USE);
  /* a failed background refresh keeps the old token; the next caller retries */
  T_EQ_INT(gj_cache_check(&c, 10000 - 100), GJ_USE_REFRESH);
  gj_cache_failed(&c);
  T_EQ_STR(c.token, "B");
  T_EQ_INT(gj_cache_check(&c, 10000 - 100), GJ_USE_REFRESH); /* in flight from 9900 */
  /* 30 s left is usable, 29 s is not: wait while the refresh is in flight */
  T_EQ_INT(gj_cache_check(&c, 10000 - 30), GJ_USE);
  T_EQ_INT(gj_cache_check(&c, 10000 - 29), GJ_WAIT);
  T_EQ_INT(gj_cache_check(&c, 10000 + 5), GJ_WAIT);
  /* a refresh lost for GJ_STALE_REFRESH seconds no longer blocks */
  T_EQ_INT(gj_cache_check(&c, 9900 + GJ_STALE_REFRESH - 1), GJ_WAIT);
  T_EQ_INT(gj_cache_check(&c, 9900 + GJ_STALE_REFRESH), GJ_REFRESH);
  T_EQ_INT(gj_cache_check(&c, 9900 + GJ_STALE_REFRESH), GJ_WAIT);
  t = tok("C", 20000);
  gj_cache_store(&c, &t);
  T_EQ_INT(gj_cache_check(&c, 10100), GJ_USE);
  gj_cache_free(&c);
  T_CHECK(c.token == NULL);
}

int main(void)
{
  T_RUN(test_request_goldens);
  T_RUN(test_request_thinking_and_choice);
  T_RUN(test_request_signatures);
  T_RUN(test_request_errors);
  T_RUN(test_response_goldens);
  T_RUN(test_response_errors);
  T_RUN(test_finish_reasons);
  T_RUN(test_stream_golden);
  T_RUN(test_stream_edges);
  T_RUN(test_embeddings);
  T_RUN(test_errors);
  T_RUN(test_urls);
  T_RUN(test_b64url);
  T_RUN(test_jwt);
  T_RUN(test_token_parse);
  T_RUN(test_cache);
  return T_END();
}
