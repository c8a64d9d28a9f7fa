/* test_xlate_bedrock.c - hub <-> Bedrock Converse, against golden fixtures in
 * tests/fixtures/bedrock/ (compared semantically with cJSON_Compare): requests (system hoisting,
 * images, documents, cachePoint, thinking, parallel tool calls and results, effort, structured
 * output), refusals (400 naming the field and bedrock), responses, ConverseStream event sequences
 * encoded as real event-stream frames and fed whole, split at every byte and one byte at a time
 * (parallel tool use -> exact hub chunks; a mid-stream exception), stream end checks, the model
 * path, and error mapping; embeddings (InvokeModel): the model family, Titan / Cohere bodies from
 * OpenAI requests, refusals, answers -> the OpenAI list (float and base64, usage summed). */
#include "aws_eventstream.h"
#include "t.h"
#include "xlate_bedrock.h"

#include <stdlib.h>

#define FIX "tests/fixtures/bedrock/"

static cJSON *load(const char *name)
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
  size_t k;
  while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
    if (pc_buf_add(&b, tmp, k) < 0) abort();
  fclose(f);
  cJSON *j = b.p ? cJSON_ParseWithLength(b.p, b.n) : NULL;
  if (!j) fprintf(stderr, "  %s: bad JSON\n", path);
  pc_buf_free(&b);
  return j;
}

static int same_json(const cJSON *got, const cJSON *want, const char *what)
{
  if (got && want && cJSON_Compare(got, want, 1)) return 1;
  char *g = got ? cJSON_Print(got) : NULL, *w = want ? cJSON_Print(want) : NULL;
  fprintf(stderr, "  %s differs\n--- got\n%s\n--- want\n%s\n", what, g ? g : "(null)", w ? w : "(null)");
  free(g);
  free(w);
  return 0;
}

static void req_case(const char *file)
{
  cJSON *fx = load(file);
  T_CHECK(fx != NULL);
  if (!fx) return;
  pc_err e = {0};
  cJSON *got = xb_req_from_hub(cJSON_GetObjectItem(fx, "hub"), &e);
  if (!got) fprintf(stderr, "  %s: %d %s: %s\n", file, e.status, e.param, e.msg);
  T_CHECK(same_json(got, cJSON_GetObjectItem(fx, "converse"), file));
  cJSON_Delete(got);
  cJSON_Delete(fx);
}

static void test_req_full(void) { req_case("req_full.json"); }
static void test_req_effort_schema(void) { req_case("req_effort_schema.json"); }
static void test_req_minimal(void) { req_case("req_minimal.json"); }

/* Each hub request must be refused with 400, the field as param, and a message naming it and
 * "bedrock". */
static void test_req_refusals(void)
{
  static const struct {
    const char *hub, *param;
  } cases[] = {
      {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]}]}",
       "messages[0].content[0]"},
      {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/tiff;base64,AAAA\"}}]}]}",
       "messages[0].content[1]"},
      {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{\"file_id\":\"file-1\"}}]}]}",
       "messages[0].content[0]"},
      {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{\"file_data\":\"data:application/zip;base64,UEs=\"}}]}]}",
       "messages[0].content[0]"},
      {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\",\"input_audio\":{}}]}]}",
       "messages[0].content[0]"},
      {"{\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "n"},
      {"{\"logprobs\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "logprobs"},
      {"{\"top_logprobs\":2,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "top_logprobs"},
      {"{\"presence_penalty\":0.5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "presence_penalty"},
      {"{\"logit_bias\":{\"1\":2},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "logit_bias"},
      {"{\"response_format\":{\"type\":\"json_object\"},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "response_format"},
      {"{\"parallel_tool_calls\":false,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
       "parallel_tool_calls"},
      {"{\"tools\":[{\"type\":\"anthropic\",\"anthropic\":{\"type\":\"bash_20250124\"}}],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
       "tools[0]"},
      {"{\"tool_choice\":\"none\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
       "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
       "{\"role\":\"tool\",\"tool_call_id\":\"1\",\"content\":\"r\"}]}",
       "tool_choice"},
      {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1\"}}]}]}",
       "messages[1].tool_calls[0]"},
      {"{\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"x\"}]}", "messages[0]"},
      {"{\"functions\":[{\"name\":\"f\"}],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "functions"},
      {"{\"modalities\":[\"text\",\"audio\"],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "modalities"},
      {"{\"x_anthropic\":{\"mcp_servers\":[]},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "x_anthropic.mcp_servers"},
      {"{\"max_tokens\":1e300,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "max_tokens"},
      {"{\"max_completion_tokens\":0.5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "max_completion_tokens"},
      {"{\"reasoning_effort\":\"extreme\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "reasoning_effort"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    cJSON *hub = cJSON_Parse(cases[i].hub);
    T_CHECK(hub != NULL);
    pc_err e = {0};
    cJSON *got = xb_req_from_hub(hub, &e);
    if (got || e.status != 400 || strcmp(e.param, cases[i].param) || !strstr(e.msg, "bedrock") ||
        !strstr(e.msg, cases[i].param)) {
      t_cur_failed = 1;
      fprintf(stderr, "  refusal %zu: got %s, %d \"%s\" \"%s\"; want 400 \"%s\"\n", i, got ? "a body" : "NULL",
              e.status, e.param, e.msg, cases[i].param);
    }
    cJSON_Delete(got);
    cJSON_Delete(hub);
  }
  /* malformed input: 400 without a crash */
  const char *bad[] = {"[]", "{}", "{\"messages\":{}}", "{\"messages\":[{\"content\":\"x\"}]}",
                       "{\"messages\":[{\"role\":\"system\",\"content\":\"only system\"}]}",
                       "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"no type\"}]}]}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    cJSON *hub = cJSON_Parse(bad[i]);
    pc_err e = {0};
    cJSON *got = xb_req_from_hub(hub, &e);
    T_CHECK(got == NULL && e.status == 400);
    cJSON_Delete(got);
    cJSON_Delete(hub);
  }
  T_CHECK(xb_req_from_hub(NULL, NULL) == NULL); /* err may be NULL */
}

static void resp_case(const char *file)
{
  cJSON *fx = load(file);
  T_CHECK(fx != NULL);
  if (!fx) return;
  pc_err e = {0};
  cJSON *got = xb_resp_to_hub(cJSON_GetObjectItem(fx, "converse"), cJSON_GetStringValue(cJSON_GetObjectItem(fx, "id")),
                              cJSON_GetStringValue(cJSON_GetObjectItem(fx, "model")),
                              (long long)cJSON_GetObjectItem(fx, "created")->valuedouble, &e);
  T_CHECK(same_json(got, cJSON_GetObjectItem(fx, "hub"), file));
  cJSON_Delete(got);
  cJSON_Delete(fx);
}

static void test_resp_tools(void) { resp_case("resp_tools.json"); }
static void test_resp_text(void) { resp_case("resp_text.json"); }

static void test_resp_bad(void)
{
  pc_err e = {0};
  cJSON *j = cJSON_Parse("{\"output\":{}}");
  T_CHECK(xb_resp_to_hub(j, NULL, NULL, 0, &e) == NULL);
  T_EQ_INT(e.status, 502);
  cJSON_Delete(j);
  j = cJSON_Parse("{\"output\":{\"message\":{\"content\":[{\"toolUse\":{\"input\":{}}}]}}}");
  T_CHECK(xb_resp_to_hub(j, NULL, NULL, 0, &e) == NULL);
  T_EQ_INT(e.status, 502);
  cJSON_Delete(j);
  T_EQ_STR(xb_stop_to_finish("end_turn"), "stop");
  T_EQ_STR(xb_stop_to_finish("stop_sequence"), "stop");
  T_EQ_STR(xb_stop_to_finish("tool_use"), "tool_calls");
  T_EQ_STR(xb_stop_to_finish("max_tokens"), "length");
  T_EQ_STR(xb_stop_to_finish("model_context_window_exceeded"), "length");
  T_EQ_STR(xb_stop_to_finish("guardrail_intervened"), "content_filter");
  T_EQ_STR(xb_stop_to_finish("content_filtered"), "content_filter");
  T_EQ_STR(xb_stop_to_finish("something_new"), "stop");
  T_EQ_STR(xb_stop_to_finish(NULL), "stop");
}

static void test_path(void)
{
  pc_buf b = {0};
  T_EQ_INT(xb_path(&b, "anthropic.claude-3-5-sonnet-20240620-v1:0", 0), 0);
  T_EQ_STR(b.p, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
  pc_buf_free(&b);
  T_EQ_INT(xb_path(&b, "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0", 1), 0);
  T_EQ_STR(b.p, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic."
                "claude-3-7-sonnet-20250219-v1%3A0/converse-stream");
  pc_buf_free(&b);
  T_EQ_INT(xb_path(&b, "", 0), -1);
  T_EQ_INT(xb_path(&b, NULL, 0), -1);
  pc_buf_free(&b);
}

static void test_errors(void)
{
  static const struct {
    int http;
    const char *hdr, *body;
    int status;
    const char *type, *msg, *code;
  } cases[] = {
      {400, "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
       "{\"message\":\"Malformed input request\"}", 400, "invalid_request_error", "Malformed input request", "ValidationException"},
      {429, "ThrottlingException", "{\"message\":\"Too many requests\"}", 429, "rate_limit_error", "Too many requests", "ThrottlingException"},
      {403, "AccessDeniedException", "{\"Message\":\"no access\"}", 403, "permission_error", "no access", "AccessDeniedException"},
      {404, "ResourceNotFoundException", "{\"message\":\"model not found\"}", 404, "not_found_error", "model not found", "ResourceNotFoundException"},
      {408, "ModelTimeoutException", "{\"message\":\"timed out\"}", 408, "timeout_error", "timed out", "ModelTimeoutException"},
      {400, "ServiceQuotaExceededException", "{\"message\":\"quota\"}", 429, "rate_limit_error", "quota", "ServiceQuotaExceededException"},
      {503, "ServiceUnavailableException", "{\"message\":\"busy\"}", 503, "overloaded_error", "busy", "ServiceUnavailableException"},
      {500, "InternalServerException", NULL, 500, "api_error", "bedrock: InternalServerException", "InternalServerException"},
      {424, "ModelErrorException", "{\"message\":\"model failed\"}", 502, "api_error", "model failed", "ModelErrorException"},
      {403, "UnrecognizedClientException", "{\"message\":\"The security token included in the request is invalid.\"}", 502, "api_error",
       "The security token included in the request is invalid.", "UnrecognizedClientException"},
      {400, NULL, "{\"__type\":\"com.amazon.coral.validate#ValidationException\",\"message\":\"bad\"}", 400, "invalid_request_error", "bad",
       "ValidationException"},
      {413, NULL, "not json", 413, "request_too_large", "bedrock: upstream error", ""},
      {200, "", "", 502, "api_error", "bedrock: upstream error", ""},
      {502, "throttlingException", "{\"message\":\"slow down\"}", 429, "rate_limit_error", "slow down", "ThrottlingException"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    pc_err e = {0};
    char code[64] = "x";
    xb_error_from_upstream(cases[i].http, cases[i].hdr, cases[i].body, cases[i].body ? strlen(cases[i].body) : 0, &e,
                           code, sizeof code);
    if (e.status != cases[i].status || strcmp(e.param, cases[i].type) || strcmp(e.msg, cases[i].msg) ||
        strcmp(code, cases[i].code)) {
      t_cur_failed = 1;
      fprintf(stderr, "  error case %zu: %d %s \"%s\" %s\n", i, e.status, e.param, e.msg, code);
    }
  }
}

/* ---- streams ---- */

typedef struct {
  cJSON *chunks; /* array of copies */
  int stop_at;   /* 1-based chunk whose callback returns 3 */
} sink;

static int on_chunk(void *ud, const cJSON *chunk)
{
  sink *s = ud;
  cJSON_AddItemToArray(s->chunks, cJSON_Duplicate(chunk, 1));
  return s->stop_at && cJSON_GetArraySize(s->chunks) == s->stop_at ? 3 : 0;
}

/* the fixture's events as event-stream frames, as Bedrock sends them */
static void encode_events(const cJSON *events, pc_buf *out)
{
  const cJSON *ev;
  cJSON_ArrayForEach(ev, events)
  {
    char *payload = cJSON_PrintUnformatted(cJSON_GetObjectItem(ev, "payload"));
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(ev, "type"));
    const char *exc = cJSON_GetStringValue(cJSON_GetObjectItem(ev, "exception"));
    aws_es_header h[3];
    if (exc) {
      h[0] = aws_es_hdr_str(":exception-type", exc);
      h[2] = aws_es_hdr_str(":message-type", "exception");
    } else {
      h[0] = aws_es_hdr_str(":event-type", type);
      h[2] = aws_es_hdr_str(":message-type", "event");
    }
    h[1] = aws_es_hdr_str(":content-type", "application/json");
    if (aws_es_encode(out, h, 3, payload, strlen(payload)) < 0) abort();
    free(payload);
  }
}

/* runs the stream cut at cuts; returns the first non-zero feed result (or the end result) */
static int run_stream(const cJSON *fx, const pc_buf *bytes, const size_t *cuts, int ncut, sink *s, pc_err *e, int *ended)
{
  xb_stream st;
  xb_stream_init(&st, cJSON_GetStringValue(cJSON_GetObjectItem(fx, "id")),
                 cJSON_GetStringValue(cJSON_GetObjectItem(fx, "model")),
                 (long long)cJSON_GetObjectItem(fx, "created")->valuedouble);
  size_t at = 0;
  int rc = 0;
  for (int i = 0; i <= ncut && !rc; i++) {
    size_t to = i < ncut ? cuts[i] : bytes->n;
    rc = xb_stream_feed(&st, bytes->p + at, to - at, on_chunk, s, e);
    at = to;
  }
  *ended = rc ? 1 : xb_stream_end(&st, e);
  xb_stream_free(&st);
  return rc;
}

static void test_stream_tools(void)
{
  cJSON *fx = load("stream_tools.json");
  T_CHECK(fx != NULL);
  if (!fx) return;
  pc_buf bytes = {0};
  encode_events(cJSON_GetObjectItem(fx, "events"), &bytes);
  const cJSON *want = cJSON_GetObjectItem(fx, "chunks");
  sink s = {cJSON_CreateArray(), 0};
  pc_err e = {0};
  int ended;
  T_EQ_INT(run_stream(fx, &bytes, NULL, 0, &s, &e, &ended), 0);
  T_EQ_INT(ended, 0);
  T_CHECK(same_json(s.chunks, want, "stream_tools chunks"));
  cJSON_Delete(s.chunks);
  /* every split point, then one byte at a time */
  int bad = 0;
  for (size_t c = 0; c <= bytes.n; c++) {
    size_t cuts[1] = {c};
    s.chunks = cJSON_CreateArray();
    if (run_stream(fx, &bytes, cuts, 1, &s, &e, &ended) || ended || !cJSON_Compare(s.chunks, want, 1)) bad++;
    cJSON_Delete(s.chunks);
  }
  T_EQ_INT(bad, 0);
  size_t *cuts = malloc(bytes.n * sizeof *cuts);
  for (size_t k = 0; k + 1 < bytes.n; k++) cuts[k] = k + 1;
  s.chunks = cJSON_CreateArray();
  T_EQ_INT(run_stream(fx, &bytes, cuts, (int)bytes.n - 1, &s, &e, &ended), 0);
  T_CHECK(cJSON_Compare(s.chunks, want, 1));
  cJSON_Delete(s.chunks);
  free(cuts);
  /* a callback's stop comes back as the feed's result */
  s.chunks = cJSON_CreateArray();
  s.stop_at = 4;
  T_EQ_INT(run_stream(fx, &bytes, NULL, 0, &s, &e, &ended), 3);
  T_EQ_INT(cJSON_GetArraySize(s.chunks), 4);
  cJSON_Delete(s.chunks);
  s.stop_at = 0;
  /* truncated body: every proper prefix ends with a 502 from xb_stream_end */
  for (size_t n = 0; n + 1 < bytes.n; n += 13) {
    pc_buf pre = {.p = bytes.p, .n = n};
    s.chunks = cJSON_CreateArray();
    e.status = 0;
    if (run_stream(fx, &pre, NULL, 0, &s, &e, &ended) || ended != -1 || e.status != 502 || !strstr(e.msg, "ended early")) bad++;
    cJSON_Delete(s.chunks);
  }
  T_EQ_INT(bad, 0);
  /* a corrupted byte: framing error, 502 */
  bytes.p[20] ^= 0x40;
  s.chunks = cJSON_CreateArray();
  T_EQ_INT(run_stream(fx, &bytes, NULL, 0, &s, &e, &ended), -1);
  T_EQ_INT(e.status, 502);
  T_CHECK(strstr(e.msg, "CRC") != NULL);
  cJSON_Delete(s.chunks);
  pc_buf_free(&bytes);
  cJSON_Delete(fx);
}

static void test_stream_exception(void)
{
  cJSON *fx = load("stream_exception.json");
  T_CHECK(fx != NULL);
  if (!fx) return;
  pc_buf bytes = {0};
  encode_events(cJSON_GetObjectItem(fx, "events"), &bytes);
  const cJSON *want = cJSON_GetObjectItem(fx, "chunks"), *werr = cJSON_GetObjectItem(fx, "error");
  for (size_t c = 0; c <= bytes.n; c += 9) {
    size_t cuts[1] = {c};
    sink s = {cJSON_CreateArray(), 0};
    pc_err e = {0};
    int ended;
    int rc = run_stream(fx, &bytes, cuts, 1, &s, &e, &ended);
    if (rc != XB_EUPSTREAM || !cJSON_Compare(s.chunks, want, 1) ||
        e.status != (int)cJSON_GetObjectItem(werr, "status")->valuedouble ||
        strcmp(e.param, cJSON_GetStringValue(cJSON_GetObjectItem(werr, "type"))) ||
        strcmp(e.msg, cJSON_GetStringValue(cJSON_GetObjectItem(werr, "message")))) {
      t_cur_failed = 1;
      fprintf(stderr, "  exception stream cut %zu: rc %d, %d %s %s\n", c, rc, e.status, e.param, e.msg);
    }
    cJSON_Delete(s.chunks);
  }
  pc_buf_free(&bytes);
  cJSON_Delete(fx);

  /* other exception types and the "error" message type */
  static const struct {
    const char *type;
    int status;
  } ex[] = {{"validationException", 400}, {"modelStreamErrorException", 502}, {"internalServerException", 500},
            {"serviceUnavailableException", 503}, {"throttlingException", 429}};
  for (size_t i = 0; i < sizeof ex / sizeof *ex; i++) {
    pc_buf b = {0};
    aws_es_header h[] = {aws_es_hdr_str(":exception-type", ex[i].type), aws_es_hdr_str(":message-type", "exception")};
    T_EQ_INT(aws_es_encode(&b, h, 2, "{\"message\":\"m\"}", 15), 0);
    xb_stream st;
    xb_stream_init(&st, NULL, NULL, 0);
    sink s = {cJSON_CreateArray(), 0};
    pc_err e = {0};
    T_EQ_INT(xb_stream_feed(&st, b.p, b.n, on_chunk, &s, &e), XB_EUPSTREAM);
    T_EQ_INT(e.status, ex[i].status);
    T_EQ_STR(e.msg, "m");
    xb_stream_free(&st);
    cJSON_Delete(s.chunks);
    pc_buf_free(&b);
  }
  pc_buf b = {0};
  aws_es_header h[] = {aws_es_hdr_str(":error-code", "InternalFailure"), aws_es_hdr_str(":error-message", "boom"),
                       aws_es_hdr_str(":message-type", "error")};
  T_EQ_INT(aws_es_encode(&b, h, 3, NULL, 0), 0);
  xb_stream st;
  xb_stream_init(&st, NULL, NULL, 0);
  pc_err e = {0};
  sink s = {cJSON_CreateArray(), 0};
  T_EQ_INT(xb_stream_feed(&st, b.p, b.n, on_chunk, &s, &e), XB_EUPSTREAM);
  T_EQ_INT(e.status, 502);
  T_EQ_STR(e.msg, "boom");
  xb_stream_free(&st);
  cJSON_Delete(s.chunks);
  pc_buf_free(&b);
}

static void test_stream_events_direct(void)
{
  xb_stream st;
  sink s = {cJSON_CreateArray(), 0};
  pc_err e = {0};
  xb_stream_init(&st, "id", "m", 1);
  /* a toolUse delta for a block that never started a tool call */
  const char *d = "{\"contentBlockIndex\":0,\"delta\":{\"toolUse\":{\"input\":\"{}\"}}}";
  T_EQ_INT(xb_stream_event(&st, "contentBlockDelta", d, strlen(d), on_chunk, &s, &e), -1);
  T_EQ_INT(e.status, 502);
  /* not JSON */
  T_EQ_INT(xb_stream_event(&st, "contentBlockDelta", "{oops", 5, on_chunk, &s, &e), -1);
  T_EQ_INT(e.status, 502);
  /* an absurd block index */
  const char *big = "{\"contentBlockIndex\":100000000,\"start\":{\"toolUse\":{\"toolUseId\":\"a\",\"name\":\"b\"}}}";
  T_EQ_INT(xb_stream_event(&st, "contentBlockStart", big, strlen(big), on_chunk, &s, &e), -1);
  /* unknown events and deltas: nothing */
  T_EQ_INT(xb_stream_event(&st, "somethingNew", "{}", 2, on_chunk, &s, &e), 0);
  const char *cit = "{\"contentBlockIndex\":0,\"delta\":{\"citation\":{}}}";
  T_EQ_INT(xb_stream_event(&st, "contentBlockDelta", cit, strlen(cit), on_chunk, &s, &e), 0);
  /* a redacted reasoning delta */
  const char *red = "{\"contentBlockIndex\":0,\"delta\":{\"reasoningContent\":{\"redactedContent\":\"QUJD\"}}}";
  T_EQ_INT(xb_stream_event(&st, "contentBlockDelta", red, strlen(red), on_chunk, &s, &e), 0);
  T_EQ_INT(cJSON_GetArraySize(s.chunks), 1);
  cJSON *want = cJSON_Parse("{\"id\":\"id\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":"
                            "[{\"index\":0,\"delta\":{\"thinking_blocks\":[{\"type\":\"redacted_thinking\",\"data\":\"QUJD\"}]},"
                            "\"finish_reason\":null}]}");
  T_CHECK(same_json(cJSON_GetArrayItem(s.chunks, 0), want, "redacted delta"));
  cJSON_Delete(want);
  /* no messageStop: the end is early */
  T_EQ_INT(xb_stream_end(&st, &e), -1);
  T_CHECK(strstr(e.msg, "messageStop") != NULL);
  T_EQ_INT(xb_stream_event(&st, "messageStop", "{\"stopReason\":\"end_turn\"}", 25, on_chunk, &s, &e), 0);
  T_EQ_INT(xb_stream_end(&st, &e), 0);
  xb_stream_free(&st);
  cJSON_Delete(s.chunks);
}

/* ---------------- embeddings (InvokeModel) ---------------- */

static cJSON *emb_req(const char *json, xb_emb_family fam, int *b64, pc_err *e)
{
  cJSON *in = cJSON_Parse(json);
  cJSON *out = xb_embed_requests(in, fam, b64, e);
  cJSON_Delete(in);
  return out;
}

static int same_text(const cJSON *got, const char *want_json, const char *what)
{
  cJSON *w = cJSON_Parse(want_json);
  int ok = same_json(got, w, what);
  cJSON_Delete(w);
  return ok;
}

static void test_emb_family(void)
{
  T_EQ_INT(xb_emb_family_of("amazon.titan-embed-text-v2:0"), XB_EMB_TITAN);
  T_EQ_INT(xb_emb_family_of("arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0"), XB_EMB_TITAN);
  T_EQ_INT(xb_emb_family_of("cohere.embed-english-v3"), XB_EMB_COHERE);
  T_EQ_INT(xb_emb_family_of("us.cohere.embed-multilingual-v3"), XB_EMB_COHERE);
  T_EQ_INT(xb_emb_family_of("amazon.titan-embed-text-v1"), XB_EMB_NONE);
  T_EQ_INT(xb_emb_family_of("anthropic.claude-3-haiku-20240307-v1:0"), XB_EMB_NONE);
  T_EQ_INT(xb_emb_family_of(""), XB_EMB_NONE);
  T_EQ_INT(xb_emb_family_of(NULL), XB_EMB_NONE);
  pc_buf b = {0};
  T_EQ_INT(xb_invoke_path(&b, "amazon.titan-embed-text-v2:0"), 0);
  T_EQ_STR(b.p, "/model/amazon.titan-embed-text-v2%3A0/invoke");
  pc_buf_free(&b);
  T_EQ_INT(xb_invoke_path(&b, ""), -1);
  pc_buf_free(&b);
}

static void test_emb_requests(void)
{
  pc_err e = {0};
  int b64 = -1;
  /* Titan: one body per input, dimensions carried, normalize on */
  cJSON *o = emb_req("{\"model\":\"amazon.titan-embed-text-v2:0\",\"input\":[\"a\",\"b c\"],\"dimensions\":256,"
                     "\"encoding_format\":\"base64\",\"user\":\"u1\"}", XB_EMB_TITAN, &b64, &e);
  T_CHECK(same_text(o, "[{\"inputText\":\"a\",\"dimensions\":256,\"normalize\":true},"
                       "{\"inputText\":\"b c\",\"dimensions\":256,\"normalize\":true}]", "titan bodies"));
  T_EQ_INT(b64, 1);
  cJSON_Delete(o);
  o = emb_req("{\"model\":\"m\",\"input\":\"only\"}", XB_EMB_TITAN, &b64, &e);
  T_CHECK(same_text(o, "[{\"inputText\":\"only\",\"normalize\":true}]", "titan single"));
  T_EQ_INT(b64, 0);
  cJSON_Delete(o);
  /* Cohere: one body with every text, input_type default and ext */
  o = emb_req("{\"model\":\"cohere.embed-english-v3\",\"input\":[\"x\",\"y\"],\"encoding_format\":\"float\"}", XB_EMB_COHERE, &b64, &e);
  T_CHECK(same_text(o, "[{\"texts\":[\"x\",\"y\"],\"input_type\":\"search_document\",\"embedding_types\":[\"float\"]}]", "cohere body"));
  cJSON_Delete(o);
  o = emb_req("{\"model\":\"m\",\"input\":\"q\",\"input_type\":\"search_query\"}", XB_EMB_COHERE, &b64, &e);
  T_CHECK(same_text(o, "[{\"texts\":[\"q\"],\"input_type\":\"search_query\",\"embedding_types\":[\"float\"]}]", "cohere query"));
  cJSON_Delete(o);

  /* refusals: 400, the field named, bedrock named */
  static const struct {
    const char *json;
    xb_emb_family fam;
    const char *param;
  } bad[] = {
      {"{\"model\":\"amazon.titan-embed-text-v1\",\"input\":\"a\"}", XB_EMB_NONE, "model"},
      {"{\"model\":\"m\",\"input\":\"a\",\"dimensions\":300}", XB_EMB_TITAN, "dimensions"},
      {"{\"model\":\"m\",\"input\":\"a\",\"dimensions\":\"256\"}", XB_EMB_TITAN, "dimensions"},
      {"{\"model\":\"m\",\"input\":\"a\",\"dimensions\":1024}", XB_EMB_COHERE, "dimensions"},
      {"{\"model\":\"m\",\"input\":[]}", XB_EMB_TITAN, "input"},
      {"{\"model\":\"m\"}", XB_EMB_COHERE, "input"},
      {"{\"model\":\"m\",\"input\":[\"a\",[1,2]]}", XB_EMB_TITAN, "input[1]"},
      {"{\"model\":\"m\",\"input\":[1,2,3]}", XB_EMB_COHERE, "input[0]"},
      {"{\"model\":\"m\",\"input\":\"a\",\"encoding_format\":\"int8\"}", XB_EMB_TITAN, "encoding_format"},
      {"{\"model\":\"m\",\"input\":\"a\",\"input_type\":\"image\"}", XB_EMB_COHERE, "input_type"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    pc_err be = {0};
    o = emb_req(bad[i].json, bad[i].fam, NULL, &be);
    T_CHECK(o == NULL);
    cJSON_Delete(o);
    T_EQ_INT(be.status, 400);
    T_EQ_STR(be.param, bad[i].param);
    if (!strstr(be.msg, "bedrock")) fprintf(stderr, "  no 'bedrock' in: %s\n", be.msg);
    T_CHECK(strstr(be.msg, "bedrock") != NULL);
  }
  /* too many texts for one request */
  pc_buf b = {0};
  pc_buf_adds(&b, "{\"model\":\"m\",\"input\":[");
  for (int i = 0; i <= XB_EMB_TITAN_MAX; i++) pc_buf_printf(&b, "%s\"t%d\"", i ? "," : "", i);
  pc_buf_adds(&b, "]}");
  pc_err te = {0};
  o = emb_req(b.p, XB_EMB_TITAN, NULL, &te);
  T_CHECK(o == NULL && te.status == 400 && strstr(te.msg, "at most 256"));
  cJSON_Delete(o);
  o = emb_req(b.p, XB_EMB_COHERE, NULL, &te);
  T_CHECK(o == NULL && te.status == 400 && strstr(te.msg, "at most 96"));
  cJSON_Delete(o);
  pc_buf_free(&b);
}

static void test_emb_responses(void)
{
  pc_err e = {0};
  /* Titan: two answers in order, tokens from the body (the header count loses), summed */
  cJSON *a = cJSON_Parse("{\"embedding\":[0.5,-1],\"inputTextTokenCount\":3}");
  cJSON *b = cJSON_Parse("{\"embedding\":[0.25,0],\"inputTextTokenCount\":4}");
  const cJSON *rs[] = {a, b};
  long long hdr[] = {99, -1};
  cJSON *o = xb_embed_response(XB_EMB_TITAN, rs, hdr, 2, "amazon.titan-embed-text-v2:0", 0, &e);
  T_CHECK(same_text(o, "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":[0.5,-1]},"
                       "{\"object\":\"embedding\",\"index\":1,\"embedding\":[0.25,0]}],\"model\":\"amazon.titan-embed-text-v2:0\","
                       "\"usage\":{\"prompt_tokens\":7,\"total_tokens\":7}}", "titan list"));
  cJSON_Delete(o);
  /* base64: little-endian float32 */
  o = xb_embed_response(XB_EMB_TITAN, rs, NULL, 1, "m", 1, &e);
  T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "data"), 0), "embedding")), "AAAAPwAAgL8=");
  cJSON_Delete(o);
  cJSON_Delete(a);
  cJSON_Delete(b);

  /* Cohere: by-type and plain shapes; tokens from the header */
  const char *shapes[] = {"{\"id\":\"x\",\"texts\":[\"p\",\"q\"],\"embeddings\":{\"float\":[[1,2],[3,4]]},\"response_type\":\"embeddings_by_type\"}",
                          "{\"id\":\"x\",\"texts\":[\"p\",\"q\"],\"embeddings\":[[1,2],[3,4]],\"response_type\":\"embeddings_floats\"}"};
  for (int i = 0; i < 2; i++) {
    cJSON *c = cJSON_Parse(shapes[i]);
    const cJSON *cr[] = {c};
    long long t = 12;
    o = xb_embed_response(XB_EMB_COHERE, cr, &t, 1, "cohere.embed-english-v3", 0, &e);
    T_CHECK(same_text(o, "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,\"embedding\":[1,2]},"
                         "{\"object\":\"embedding\",\"index\":1,\"embedding\":[3,4]}],\"model\":\"cohere.embed-english-v3\","
                         "\"usage\":{\"prompt_tokens\":12,\"total_tokens\":12}}", shapes[i]));
    cJSON_Delete(o);
    cJSON_Delete(c);
  }
  /* no tokens anywhere: 0 */
  cJSON *c = cJSON_Parse("{\"embeddings\":[[1]]}");
  const cJSON *cr[] = {c};
  o = xb_embed_response(XB_EMB_COHERE, cr, NULL, 1, NULL, 0, &e);
  T_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "usage"), "prompt_tokens")->valuedouble, 0);
  cJSON_Delete(o);
  cJSON_Delete(c);

  /* answers without vectors, or with non-numbers: 502 */
  const char *bad[] = {"{\"message\":\"x\"}", "{\"embedding\":\"no\"}", "{\"embedding\":[1,\"x\"]}"};
  for (int i = 0; i < 3; i++) {
    cJSON *j = cJSON_Parse(bad[i]);
    const cJSON *jr[] = {j};
    pc_err be = {0};
    o = xb_embed_response(XB_EMB_TITAN, jr, NULL, 1, "m", i == 2, &be);
    T_CHECK(o == NULL);
    T_EQ_INT(be.status, 502);
    cJSON_Delete(o);
    cJSON_Delete(j);
  }
  cJSON *j = cJSON_Parse("{\"embeddings\":{\"int8\":[[1]]}}");
  const cJSON *jr[] = {j};
  pc_err be = {0};
  o = xb_embed_response(XB_EMB_COHERE, jr, NULL, 1, "m", 0, &be);
  T_CHECK(o == NULL && be.status == 502);
  cJSON_Delete(j);
}

int main(void)
{
  T_RUN(test_req_full);
  T_RUN(test_req_effort_schema);
  T_RUN(test_req_minimal);
  T_RUN(test_req_refusals);
  T_RUN(test_resp_tools);
  T_RUN(test_resp_text);
  T_RUN(test_resp_bad);
  T_RUN(test_path);
  T_RUN(test_errors);
  T_RUN(test_stream_tools);
  T_RUN(test_stream_exception);
  T_RUN(test_stream_events_direct);
  T_RUN(test_emb_family);
  T_RUN(test_emb_requests);
  T_RUN(test_emb_responses);
  return T_END();
}
