/* test_xlate_cohere.c - hub <-> Cohere v2 (plugins/common/xlate_cohere.h) against golden fixtures
 * in tests/fixtures/cohere/ (X.in.* -> X.out.json, compared semantically with cJSON_Compare):
 * requests (all roles, images, tool calls with tool_plan and thinking, documents in tool results,
 * tools with strict, tool_choice forms, response_format, sampling, effort, x_cohere), refusals (400
 * naming the field and cohere), responses (tool calls, thinking, usage fallbacks), SSE streams
 * (tool calls with argument deltas, thinking, citations/debug ignored), stream errors and early
 * ends, embeddings both ways (float and base64), and error bodies.
 * AIGW_FIXTURE_WRITE=1 rewrites the .out.json files from the current code (review the diff!). */
#include "t.h"
#include "xlate_cohere.h"

#include <stdlib.h>

#define FIX "tests/fixtures/cohere/"

static char *slurp(const char *name, size_t *n) {
  char path[256];
  snprintf(path, sizeof path, FIX "%s", name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "  cannot open %s\n", path);
    return NULL;
  }
  pc_buf b = {0};
  char tmp[4096];
  size_t k;
  while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
    if (pc_buf_add(&b, tmp, k) < 0) abort();
  fclose(f);
  if (n) *n = b.n;
  return b.p;
}

static cJSON *load(const char *name) {
  size_t n = 0;
  char *s = slurp(name, &n);
  cJSON *j = s ? cJSON_ParseWithLength(s, n) : NULL;
  if (s && !j) fprintf(stderr, "  %s: bad JSON\n", name);
  free(s);
  return j;
}

/* compare got with the golden out file (or rewrite it under AIGW_FIXTURE_WRITE) */
static int golden(const cJSON *got, const char *out) {
  if (getenv("AIGW_FIXTURE_WRITE") && got) {
    char path[256];
    snprintf(path, sizeof path, FIX "%s", out);
    char *s = cJSON_Print(got);
    FILE *f = fopen(path, "wb");
    if (f && s) {
      fputs(s, f);
      fputc('\n', f);
    }
    if (f) fclose(f);
    free(s);
    return 1;
  }
  cJSON *want = load(out);
  int ok = got && want && cJSON_Compare(got, want, 1);
  if (!ok) {
    char *g = got ? cJSON_Print(got) : NULL, *w = want ? cJSON_Print(want) : NULL;
    fprintf(stderr, "  %s differs\n--- got\n%s\n--- want\n%s\n", out, g ? g : "(null)", w ? w : "(null)");
    free(g);
    free(w);
  }
  cJSON_Delete(want);
  return ok;
}

/* ---- requests ---- */

static void req_case(const char *in, const char *out) {
  cJSON *hub = load(in);
  T_CHECK(hub != NULL);
  pc_err e = {0};
  cJSON *got = xc_req_from_hub(hub, &e);
  if (!got) fprintf(stderr, "  %s: %d %s: %s\n", in, e.status, e.param, e.msg);
  T_CHECK(golden(got, out));
  /* the input is never modified */
  cJSON *again = load(in);
  T_CHECK(cJSON_Compare(hub, again, 1));
  cJSON_Delete(again);
  cJSON_Delete(got);
  cJSON_Delete(hub);
}

static void test_req_full(void) { req_case("req_full.in.json", "req_full.out.json"); }
static void test_req_schema(void) { req_case("req_schema.in.json", "req_schema.out.json"); }
static void test_req_named_tool(void) { req_case("req_named_tool.in.json", "req_named_tool.out.json"); }

static void test_req_refusals(void) {
#define U "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
  static const struct {
    const char *hub, *param;
  } cases[] = {
      {"{\"model\":\"m\",\"n\":2," U "}", "n"},
      {"{\"model\":\"m\",\"logprobs\":true," U "}", "logprobs"},
      {"{\"model\":\"m\",\"top_logprobs\":3," U "}", "top_logprobs"},
      {"{\"model\":\"m\",\"logit_bias\":{\"1\":2}," U "}", "logit_bias"},
      {"{\"model\":\"m\",\"functions\":[{\"name\":\"f\"}]," U "}", "functions"},
      {"{\"model\":\"m\",\"modalities\":[\"text\",\"audio\"]," U "}", "modalities"},
      {"{\"model\":\"m\",\"prediction\":{\"type\":\"content\"}," U "}", "prediction"},
      {"{\"model\":\"m\",\"web_search_options\":{}," U "}", "web_search_options"},
      {"{\"model\":\"m\",\"parallel_tool_calls\":false," U "}", "parallel_tool_calls"},
      {"{\"model\":\"m\",\"x_anthropic\":{\"mcp_servers\":[]}," U "}", "x_anthropic.mcp_servers"},
      {"{\"model\":\"m\",\"tools\":[{\"type\":\"anthropic\",\"anthropic\":{}}]," U "}", "tools[0]"},
      {"{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a\"}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"b\"}}," U "}",
       "tool_choice"},
      {"{\"model\":\"m\",\"response_format\":{\"type\":\"grammar\"}," U "}", "response_format"},
      {"{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a\"}}],\"response_format\":{\"type\":\"json_object\"}," U "}",
       "response_format"},
      {"{\"model\":\"m\",\"tool_choice\":\"required\"," U "}", "tool_choice"},
      {"{\"model\":\"m\",\"reasoning_effort\":\"extreme\"," U "}", "reasoning_effort"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{\"file_data\":\"data:application/pdf;base64,AA==\"}}]}]}",
       "messages[0].content[0]"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"input_audio\",\"input_audio\":{}}]}]}",
       "messages[0].content[1]"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]}]}",
       "messages[0].content[0]"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"x\"}]}", "messages[0]"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1\"}}]}]}",
       "messages[1].tool_calls[0]"},
      {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\",\"tool_call_id\":\"1\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x\"}}]}]}",
       "messages[1].content[0]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    cJSON *hub = cJSON_Parse(cases[i].hub);
    T_CHECK(hub != NULL);
    pc_err e = {0};
    cJSON *got = xc_req_from_hub(hub, &e);
    if (got || e.status != 400 || strcmp(e.param, cases[i].param) || !strstr(e.msg, "cohere") ||
        !strstr(e.msg, cases[i].param)) {
      t_cur_failed = 1;
      fprintf(stderr, "  refusal %zu: got %s, %d \"%s\" \"%s\"; want 400 \"%s\"\n", i, got ? "a body" : "NULL", e.status,
              e.param, e.msg, cases[i].param);
    }
    cJSON_Delete(got);
    cJSON_Delete(hub);
  }
  /* malformed input: 400 without a crash */
  const char *bad[] = {"[]", "{}", "{\"model\":\"m\"}", "{\"model\":\"m\",\"messages\":{}}", "{\"model\":\"m\",\"messages\":[]}",
                       "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}",
                       "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
                       "{\"model\":\"m\",\"temperature\":\"hot\"," U "}", "{\"model\":\"m\",\"stop\":[1]," U "}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cJSON *hub = cJSON_Parse(bad[i]);
    pc_err e = {0};
    cJSON *got = xc_req_from_hub(hub, &e);
    if (got || e.status != 400) {
      t_cur_failed = 1;
      fprintf(stderr, "  bad %zu: %d %s\n", i, e.status, e.msg);
    }
    cJSON_Delete(got);
    cJSON_Delete(hub);
  }
  T_CHECK(xc_req_from_hub(NULL, NULL) == NULL);
#undef U
}

/* ---- responses ---- */

static void resp_case(const char *in, const char *out) {
  cJSON *co = load(in);
  T_CHECK(co != NULL);
  pc_err e = {0};
  cJSON *got = xc_resp_to_hub(co, "command-a-03-2025", 1700000000, &e);
  if (!got) fprintf(stderr, "  %s: %d %s\n", in, e.status, e.msg);
  T_CHECK(golden(got, out));
  cJSON_Delete(got);
  cJSON_Delete(co);
}

static void test_resp_tools(void) { resp_case("resp_tools.in.json", "resp_tools.out.json"); }
static void test_resp_text(void) { resp_case("resp_text.in.json", "resp_text.out.json"); }

static void test_resp_bad(void) {
  const char *bad[] = {"{}", "{\"message\":[]}", "{\"finish_reason\":\"ERROR\",\"message\":{\"content\":[]}}",
                       "{\"message\":{\"tool_calls\":[{\"id\":\"x\",\"function\":{}}]}}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cJSON *j = cJSON_Parse(bad[i]);
    pc_err e = {0};
    cJSON *got = xc_resp_to_hub(j, NULL, 0, &e);
    T_CHECK(got == NULL);
    T_EQ_INT(e.status, 502);
    cJSON_Delete(got);
    cJSON_Delete(j);
  }
  T_CHECK(xc_resp_to_hub(NULL, NULL, 0, NULL) == NULL);
  T_EQ_STR(xc_finish_to_hub("COMPLETE"), "stop");
  T_EQ_STR(xc_finish_to_hub("STOP_SEQUENCE"), "stop");
  T_EQ_STR(xc_finish_to_hub("MAX_TOKENS"), "length");
  T_EQ_STR(xc_finish_to_hub("TIMEOUT"), "length");
  T_EQ_STR(xc_finish_to_hub("TOOL_CALL"), "tool_calls");
  T_EQ_STR(xc_finish_to_hub("SOMETHING_NEW"), "stop");
  T_EQ_STR(xc_finish_to_hub(NULL), "stop");
  /* no content at all: content null, finish from tool calls when Cohere names none */
  cJSON *j = cJSON_Parse("{\"id\":\"a\",\"message\":{\"tool_calls\":[{\"id\":\"t\",\"function\":{\"name\":\"f\"}}]}}");
  cJSON *h = xc_resp_to_hub(j, NULL, 0, NULL);
  const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(h, "choices"), 0);
  T_CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "message"), "content")));
  T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(c0, "finish_reason")), "tool_calls");
  T_CHECK(cJSON_GetObjectItem(h, "usage") == NULL);
  cJSON_Delete(h);
  cJSON_Delete(j);
}

/* ---- streams ---- */

typedef struct {
  cJSON *chunks;
  int stop_at; /* 1-based chunk whose callback returns 3 */
} sink;

static int on_chunk(void *ud, const cJSON *chunk) {
  sink *s = ud;
  cJSON_AddItemToArray(s->chunks, cJSON_Duplicate(chunk, 1));
  return s->stop_at && cJSON_GetArraySize(s->chunks) == s->stop_at ? 3 : 0;
}

/* Feed an SSE text (event:/data: lines, blank-line separated) to the decoder. Returns the first
 * non-zero result, or 0. */
static int feed_sse(xc_dec *d, const char *text, sink *s, pc_err *e) {
  const char *p = text;
  char name[64] = "";
  pc_buf data = {0};
  int rc = 0;
  while (*p && !rc) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (len == 0) {
      if (data.n) rc = xc_dec_event(d, name[0] ? name : NULL, data.p, data.n, on_chunk, s, e);
      name[0] = 0;
      data.n = 0;
    } else if (len > 7 && !strncmp(p, "event: ", 7)) {
      snprintf(name, sizeof name, "%.*s", (int)(len - 7), p + 7);
    } else if (len > 6 && !strncmp(p, "data: ", 6)) {
      if (pc_buf_add(&data, p + 6, len - 6) < 0) abort();
    }
    p = nl ? nl + 1 : p + len;
  }
  if (!rc && data.n) rc = xc_dec_event(d, name[0] ? name : NULL, data.p, data.n, on_chunk, s, e);
  pc_buf_free(&data);
  return rc;
}

static void stream_case(const char *in, const char *out) {
  char *text = slurp(in, NULL);
  T_CHECK(text != NULL);
  if (!text) return;
  xc_dec d;
  xc_dec_init(&d, "command-a-03-2025", 1700000000);
  sink s = {cJSON_CreateArray(), 0};
  pc_err e = {0};
  T_EQ_INT(feed_sse(&d, text, &s, &e), 0);
  T_EQ_INT(d.done, 1);
  T_EQ_INT(xc_dec_finish(&d, &e), 0);
  T_CHECK(golden(s.chunks, out));
  xc_dec_free(&d);
  cJSON_Delete(s.chunks);
  free(text);
}

static void test_stream_tools(void) { stream_case("stream_tools.in.sse", "stream_tools.out.json"); }
static void test_stream_text(void) { stream_case("stream_text.in.sse", "stream_text.out.json"); }

static void test_stream_stop_and_names(void) {
  char *text = slurp("stream_tools.in.sse", NULL);
  if (!text) return;
  xc_dec d;
  xc_dec_init(&d, NULL, 0);
  sink s = {cJSON_CreateArray(), 4};
  pc_err e = {0};
  T_EQ_INT(feed_sse(&d, text, &s, &e), 3); /* the callback's stop comes back */
  T_EQ_INT(cJSON_GetArraySize(s.chunks), 4);
  xc_dec_free(&d);
  cJSON_Delete(s.chunks);
  free(text);
  /* the event name is used when the data has no type; the first event implies message-start */
  xc_dec_init(&d, "m", 1);
  s = (sink){cJSON_CreateArray(), 0};
  const char *cd = "{\"delta\":{\"message\":{\"content\":{\"text\":\"hi\"}}}}";
  T_EQ_INT(xc_dec_event(&d, "content-delta", cd, strlen(cd), on_chunk, &s, &e), 0);
  T_EQ_INT(cJSON_GetArraySize(s.chunks), 2);
  T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(
               cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(s.chunks, 1), "choices"), 0), "delta"),
               "content")),
           "hi");
  /* ended without message-end */
  T_EQ_INT(xc_dec_finish(&d, &e), -1);
  T_EQ_INT(e.status, 502);
  T_CHECK(strstr(e.msg, "ended early") != NULL);
  xc_dec_free(&d);
  cJSON_Delete(s.chunks);
}

static void test_stream_errors(void) {
  xc_dec d;
  sink s = {cJSON_CreateArray(), 0};
  pc_err e = {0};
  xc_dec_init(&d, "m", 1);
  const char *me = "{\"type\":\"message-end\",\"delta\":{\"error\":\"internal server error\",\"finish_reason\":\"ERROR\"}}";
  T_EQ_INT(xc_dec_event(&d, NULL, me, strlen(me), on_chunk, &s, &e), XC_EUPSTREAM);
  T_EQ_INT(e.status, 502);
  T_EQ_STR(e.msg, "internal server error");
  T_EQ_INT(d.done, 0);
  xc_dec_free(&d);
  xc_dec_init(&d, "m", 1);
  const char *fe = "{\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"ERROR\"}}";
  T_EQ_INT(xc_dec_event(&d, NULL, fe, strlen(fe), on_chunk, &s, &e), XC_EUPSTREAM);
  T_CHECK(strstr(e.msg, "ERROR") != NULL);
  xc_dec_free(&d);
  xc_dec_init(&d, "m", 1);
  const char *eo = "{\"message\":\"too many tokens\"}";
  T_EQ_INT(xc_dec_event(&d, NULL, eo, strlen(eo), on_chunk, &s, &e), XC_EUPSTREAM);
  T_EQ_STR(e.msg, "too many tokens");
  /* garbage, a delta for a tool call that never started, a start without a name */
  T_EQ_INT(xc_dec_event(&d, "content-delta", "{oops", 5, on_chunk, &s, &e), -1);
  T_EQ_INT(e.status, 502);
  const char *td = "{\"type\":\"tool-call-delta\",\"index\":3,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"{\"}}}}}";
  T_EQ_INT(xc_dec_event(&d, NULL, td, strlen(td), on_chunk, &s, &e), -1);
  T_EQ_INT(e.status, 502);
  const char *ts = "{\"type\":\"tool-call-start\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"a\"}}}}";
  T_EQ_INT(xc_dec_event(&d, NULL, ts, strlen(ts), on_chunk, &s, &e), -1);
  const char *big = "{\"type\":\"tool-call-start\",\"index\":100000000,\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"a\",\"function\":{\"name\":\"f\"}}}}}";
  T_EQ_INT(xc_dec_event(&d, NULL, big, strlen(big), on_chunk, &s, &e), -1);
  /* unknown events, empty data, [DONE]: nothing */
  int before = cJSON_GetArraySize(s.chunks);
  T_EQ_INT(xc_dec_event(&d, NULL, "{\"type\":\"something-new\"}", 24, on_chunk, &s, &e), 0);
  T_EQ_INT(xc_dec_event(&d, NULL, "", 0, on_chunk, &s, &e), 0);
  T_EQ_INT(xc_dec_event(&d, NULL, " [DONE]\n", 8, on_chunk, &s, &e), 0);
  T_EQ_INT(cJSON_GetArraySize(s.chunks), before);
  xc_dec_free(&d);
  cJSON_Delete(s.chunks);
}

/* ---- embeddings ---- */

static void test_embed(void) {
  cJSON *oai = load("embed.in.json");
  pc_err e = {0};
  int b64 = -1;
  cJSON *got = xc_embed_req_from_openai(oai, "search_query", &b64, &e);
  T_CHECK(golden(got, "embed.out.json"));
  T_EQ_INT(b64, 1);
  cJSON_Delete(got);
  cJSON_Delete(oai);
  /* default input type, a single string, float */
  oai = cJSON_Parse("{\"model\":\"embed-english-v3.0\",\"input\":\"one\"}");
  got = xc_embed_req_from_openai(oai, NULL, &b64, &e);
  cJSON *want = cJSON_Parse("{\"model\":\"embed-english-v3.0\",\"texts\":[\"one\"],\"input_type\":\"search_document\",\"embedding_types\":[\"float\"]}");
  T_CHECK(cJSON_Compare(got, want, 1));
  T_EQ_INT(b64, 0);
  cJSON_Delete(want);
  cJSON_Delete(got);
  cJSON_Delete(oai);
  static const struct {
    const char *req, *param;
  } bad[] = {{"{\"model\":\"m\",\"input\":[[1,2]]}", "input[0]"},
             {"{\"model\":\"m\",\"input\":[\"a\",3]}", "input[1]"},
             {"{\"model\":\"m\",\"input\":[]}", "input"},
             {"{\"model\":\"m\"}", "input"},
             {"{\"input\":\"a\"}", "model"},
             {"{\"model\":\"m\",\"input\":\"a\",\"encoding_format\":\"int8\"}", "encoding_format"},
             {"{\"model\":\"m\",\"input\":\"a\",\"input_type\":\"poetry\"}", "input_type"},
             {"{\"model\":\"m\",\"input\":\"a\",\"dimensions\":\"big\"}", "dimensions"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cJSON *j = cJSON_Parse(bad[i].req);
    e = (pc_err){0};
    cJSON *g = xc_embed_req_from_openai(j, NULL, NULL, &e);
    if (g || e.status != 400 || strcmp(e.param, bad[i].param)) {
      t_cur_failed = 1;
      fprintf(stderr, "  embed refusal %zu: %d \"%s\" %s\n", i, e.status, e.param, e.msg);
    }
    cJSON_Delete(g);
    cJSON_Delete(j);
  }
  T_EQ_INT(xc_input_type_ok("clustering"), 1);
  T_EQ_INT(xc_input_type_ok("nope"), 0);
  T_EQ_INT(xc_input_type_ok(NULL), 0);
}

static void test_embed_resp(void) {
  cJSON *co = load("embed_resp.in.json");
  pc_err e = {0};
  cJSON *got = xc_embed_resp_to_openai(co, "embed-v4.0", 0, &e);
  T_CHECK(golden(got, "embed_resp_float.out.json"));
  cJSON_Delete(got);
  got = xc_embed_resp_to_openai(co, "embed-v4.0", 1, &e);
  T_CHECK(golden(got, "embed_resp_base64.out.json"));
  /* [0.5, -0.25, 1] as little-endian float32: 0000003f 000080be 0000803f */
  const cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItem(got, "data"), 0);
  T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(d0, "embedding")), "AAAAPwAAgL4AAIA/");
  cJSON_Delete(got);
  cJSON_Delete(co);
  /* the plain-array shape, tokens fallback */
  co = cJSON_Parse("{\"embeddings\":[[1]],\"meta\":{\"tokens\":{\"input_tokens\":5}}}");
  got = xc_embed_resp_to_openai(co, NULL, 0, &e);
  T_EQ_INT((int)cJSON_GetObjectItem(cJSON_GetObjectItem(got, "usage"), "prompt_tokens")->valuedouble, 5);
  cJSON_Delete(got);
  cJSON_Delete(co);
  const char *bad[] = {"{}", "{\"embeddings\":{\"int8\":[[1]]}}", "{\"embeddings\":{\"float\":[1]}}",
                       "{\"embeddings\":{\"float\":[[\"x\"]]}}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cJSON *j = cJSON_Parse(bad[i]);
    e = (pc_err){0};
    T_CHECK(xc_embed_resp_to_openai(j, NULL, 0, &e) == NULL);
    T_EQ_INT(e.status, 502);
    cJSON_Delete(j);
  }
}

/* ---- errors ---- */

static void test_errors(void) {
  static const struct {
    int http;
    const char *body;
    int status;
    const char *type, *msg;
  } cases[] = {
      {400, "{\"id\":\"e1\",\"message\":\"invalid request: unknown field: parameter 'n' is not a valid field\"}", 400,
       "invalid_request_error", "invalid request: unknown field: parameter 'n' is not a valid field"},
      {401, "{\"message\":\"invalid api token\"}", 401, "authentication_error", "invalid api token"},
      {498, "{\"message\":\"invalid api token\"}", 401, "authentication_error", "invalid api token"},
      {429, "{\"id\":\"x\",\"message\":\"You are using a Trial key\"}", 429, "rate_limit_error", "You are using a Trial key"},
      {404, "{\"message\":\"model 'x' not found\"}", 404, "not_found_error", "model 'x' not found"},
      {500, "{\"message\":\"internal server error\"}", 500, "server_error", "internal server error"},
      {503, "upstream\nunavailable  ", 503, "server_error", "upstream unavailable"},
      {502, "", 502, "server_error", "cohere: upstream error 502"},
      {200, "{\"error\":{\"message\":\"odd\"}}", 502, "server_error", "odd"},
      {422, "{\"message\":\"\"}", 422, "invalid_request_error", "cohere: upstream error 422"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    pc_err e = {0};
    xc_error_from_upstream(cases[i].http, cases[i].body, strlen(cases[i].body), &e);
    if (e.status != cases[i].status || strcmp(e.param, cases[i].type) || strcmp(e.msg, cases[i].msg)) {
      t_cur_failed = 1;
      fprintf(stderr, "  error case %zu: %d %s \"%s\"\n", i, e.status, e.param, e.msg);
    }
  }
  xc_error_from_upstream(500, NULL, 0, NULL); /* err may be NULL */
}

int main(void) {
  T_RUN(test_req_full);
  T_RUN(test_req_schema);
  T_RUN(test_req_named_tool);
  T_RUN(test_req_refusals);
  T_RUN(test_resp_tools);
  T_RUN(test_resp_text);
  T_RUN(test_resp_bad);
  T_RUN(test_stream_tools);
  T_RUN(test_stream_text);
  T_RUN(test_stream_stop_and_names);
  T_RUN(test_stream_errors);
  T_RUN(test_embed);
  T_RUN(test_embed_resp);
  T_RUN(test_errors);
  return T_END();
}
