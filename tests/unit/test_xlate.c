/* test_xlate.c - hub <-> Anthropic translation (plugins/common/xlate.h) against golden fixtures in
 * tests/fixtures/xlate/ (compared as JSON, not as text), round trips, refusals, stream decoder and
 * encoder (fed whole and one byte at a time through the core SSE parser), error bodies. */
#include "sse.h"
#include "t.h"
#include "xlate.h"

#include <stdlib.h>

#define FX "tests/fixtures/xlate/"
#define CREATED 1700000000LL

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "  cannot open %s\n", path);
    return NULL;
  }
  size_t cap = 4096, len = 0;
  char *p = malloc(cap);
  size_t r;
  while (p && (r = fread(p + len, 1, cap - len - 1, f)) > 0) {
    len += r;
    if (cap - len < 2) {
      char *q = realloc(p, cap *= 2);
      if (!q) {
        free(p);
        p = NULL;
      }
      p = q;
    }
  }
  fclose(f);
  if (!p) abort();
  p[len] = 0;
  if (n) *n = len;
  return p;
}

static cJSON *load(const char *name) {
  char path[256];
  snprintf(path, sizeof path, FX "%s", name);
  char *s = slurp(path, NULL);
  cJSON *j = s ? cJSON_Parse(s) : NULL;
  if (s && !j) fprintf(stderr, "  %s: not JSON\n", path);
  free(s);
  return j;
}

/* semantic JSON equality, printing both sides when they differ */
static int json_eq(const cJSON *got, const cJSON *want, const char *what) {
  if (got && want && cJSON_Compare(got, want, 1)) return 1;
  char *g = got ? cJSON_Print(got) : NULL, *w = want ? cJSON_Print(want) : NULL;
  fprintf(stderr, "  %s differs\n  got:  %s\n  want: %s\n", what, g ? g : "(null)", w ? w : "(null)");
  cJSON_free(g);
  cJSON_free(w);
  return 0;
}
#define T_JSON(got, want, what) T_CHECK(json_eq((got), (want), (what)))

typedef cJSON *(*xl_fn)(const cJSON *in, pc_err *err);
static cJSON *a2h(const cJSON *in, pc_err *e) { return xl_anth_req_to_hub(in, e); }
static cJSON *h2a(const cJSON *in, pc_err *e) { return xl_hub_req_to_anth(in, NULL, e); }
static cJSON *ra2h(const cJSON *in, pc_err *e) { return xl_anth_resp_to_hub(in, CREATED, e); }
static cJSON *rh2a(const cJSON *in, pc_err *e) { return xl_hub_resp_to_anth(in, e); }

static void golden(xl_fn fn, const char *name) {
  char a[128], b[128];
  snprintf(a, sizeof a, "%s.in.json", name);
  snprintf(b, sizeof b, "%s.out.json", name);
  cJSON *in = load(a), *want = load(b);
  T_CHECK(in && want);
  pc_err err = {0};
  cJSON *got = in ? fn(in, &err) : NULL;
  if (in && !got) fprintf(stderr, "  %s: error %d %s: %s\n", name, err.status, err.param, err.msg);
  T_JSON(got, want, name);
  cJSON_Delete(in);
  cJSON_Delete(want);
  cJSON_Delete(got);
}

static void test_golden_requests(void) {
  golden(a2h, "a2h_full");
  golden(h2a, "h2a_full");
}

static void test_golden_responses(void) {
  golden(ra2h, "ra2h_tools");
  golden(ra2h, "ra2h_stopseq");
  golden(rh2a, "rh2a_tools");
  golden(rh2a, "rh2a_length");
}

/* Anthropic -> hub -> Anthropic gives the request back: cache_control, signatures, tool ids,
 * server tools, documents, images, system blocks, tool_choice flags, service_tier. */
static void test_roundtrip_request(void) {
  cJSON *in = load("a2h_full.in.json");
  pc_err err = {0};
  cJSON *hub = xl_anth_req_to_hub(in, &err);
  T_CHECK(hub);
  cJSON *back = hub ? xl_hub_req_to_anth(hub, NULL, &err) : NULL;
  if (!back) fprintf(stderr, "  error %d %s: %s\n", err.status, err.param, err.msg);
  T_JSON(back, in, "anthropic -> hub -> anthropic");
  cJSON_Delete(in);
  cJSON_Delete(hub);
  cJSON_Delete(back);

  /* a plain one: string system, string contents, tool_choice auto, no extras */
  const char *plain = "{\"model\":\"m\",\"max_tokens\":10,\"system\":\"S\",\"messages\":[{\"role\":\"user\","
                      "\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"},{\"role\":\"user\",\"content\":"
                      "[{\"type\":\"text\",\"text\":\"a\",\"cache_control\":{\"type\":\"ephemeral\"}}]}],"
                      "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}}],\"tool_choice\":{\"type\":"
                      "\"tool\",\"name\":\"f\"},\"output_config\":{\"effort\":\"high\",\"format\":{\"type\":"
                      "\"json_schema\",\"schema\":{\"type\":\"object\"}}}}";
  in = cJSON_Parse(plain);
  hub = xl_anth_req_to_hub(in, &err);
  back = hub ? xl_hub_req_to_anth(hub, NULL, &err) : NULL;
  T_JSON(back, in, "plain anthropic round trip");
  /* the hub form is what an OpenAI provider expects, plus the documented ext members */
  T_EQ_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(hub, "tool_choice"), "type")->valuestring, "function");
  T_EQ_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(hub, "response_format"), "type")->valuestring, "json_schema");
  T_EQ_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(hub, "x_anthropic"), "output_config") ? "y" : "n", "y");
  cJSON_Delete(in);
  cJSON_Delete(hub);
  cJSON_Delete(back);
}

static void test_roundtrip_response(void) {
  const char *s = "{\"id\":\"msg_R\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\",\"content\":["
                  "{\"type\":\"thinking\",\"thinking\":\"x\",\"signature\":\"S1\"},{\"type\":\"redacted_thinking\","
                  "\"data\":\"D\"},{\"type\":\"text\",\"text\":\"t\"},{\"type\":\"tool_use\",\"id\":\"toolu_9\","
                  "\"name\":\"f\",\"input\":{\"a\":[1,{\"b\":null}]}}],\"stop_reason\":\"tool_use\","
                  "\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":4,"
                  "\"cache_creation_input_tokens\":5,\"cache_read_input_tokens\":6}}";
  cJSON *in = cJSON_Parse(s);
  pc_err err = {0};
  cJSON *hub = xl_anth_resp_to_hub(in, 1, &err);
  cJSON *back = hub ? xl_hub_resp_to_anth(hub, &err) : NULL;
  T_JSON(back, in, "response anthropic -> hub -> anthropic");
  cJSON_Delete(in);
  cJSON_Delete(hub);
  cJSON_Delete(back);

  /* stop_sequence survives both ways */
  in = load("ra2h_stopseq.in.json");
  hub = xl_anth_resp_to_hub(in, 1, &err);
  back = hub ? xl_hub_resp_to_anth(hub, &err) : NULL;
  T_CHECK(back && !strcmp(cJSON_GetObjectItem(back, "stop_reason")->valuestring, "stop_sequence"));
  T_CHECK(back && !strcmp(cJSON_GetObjectItem(back, "stop_sequence")->valuestring, "4"));
  T_CHECK(back && !strcmp(cJSON_GetObjectItem(back, "id")->valuestring, "msg_2"));
  cJSON_Delete(in);
  cJSON_Delete(hub);
  cJSON_Delete(back);
}

/* hub -> anthropic refusals: 400, the field named, "anthropic" in the message */
static void refuse(const char *hub_json, const char *param) {
  cJSON *in = cJSON_Parse(hub_json);
  T_CHECK(in);
  pc_err err = {0};
  cJSON *out = xl_hub_req_to_anth(in, NULL, &err);
  T_CHECK(out == NULL);
  T_EQ_INT(err.status, 400);
  T_EQ_STR(err.param, param);
  T_CHECK(strstr(err.msg, param) != NULL);
  if (!strstr(err.msg, "anthropic")) {
    t_cur_failed = 1;
    fprintf(stderr, "  message without the provider: %s\n", err.msg);
  }
  cJSON_Delete(out);
  cJSON_Delete(in);
}

#define M "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
static void test_refusals(void) {
  refuse("{" M ",\"n\":2}", "n");
  refuse("{" M ",\"logprobs\":true}", "logprobs");
  refuse("{" M ",\"top_logprobs\":3}", "top_logprobs");
  refuse("{" M ",\"frequency_penalty\":0.5}", "frequency_penalty");
  refuse("{" M ",\"presence_penalty\":-1}", "presence_penalty");
  refuse("{" M ",\"logit_bias\":{\"1\":5}}", "logit_bias");
  refuse("{" M ",\"modalities\":[\"text\",\"audio\"]}", "modalities");
  refuse("{" M ",\"functions\":[{\"name\":\"f\"}]}", "functions");
  refuse("{" M ",\"response_format\":{\"type\":\"json_object\"}}", "response_format.type");
  refuse("{" M ",\"reasoning_effort\":\"extreme\"}", "reasoning_effort");
  refuse("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\",\"input_audio\":{}}]}]}",
         "messages[0].content[0]");
  refuse("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{\"file_id\":\"file-1\"}}]}]}",
         "messages[0].content[0]");
  refuse("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{\"file_data\":"
         "\"data:image/tiff;base64,AAAA\"}}]}]}",
         "messages[0].content[0]");
  refuse("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
         "\"ftp://x/y.png\"}}]}]}",
         "messages[0].content[0]");
  refuse("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\","
         "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{broken\"}}]}]}",
         "messages[1].tool_calls[0]");
  refuse("{" M ",\"tools\":[{\"type\":\"custom\",\"custom\":{\"name\":\"x\"}}]}", "tools[0]");
  refuse("{\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}", "messages[0]");
  /* and what passes: n=1, zero penalties, empty logit_bias, text format */
  cJSON *in = cJSON_Parse("{" M ",\"n\":1,\"frequency_penalty\":0,\"logit_bias\":{},\"logprobs\":false,"
                              "\"response_format\":{\"type\":\"text\"},\"seed\":3}");
  pc_err err = {0};
  xl_anth_opts o = {.default_max_tokens = 777};
  cJSON *out = xl_hub_req_to_anth(in, &o, &err);
  cJSON *want = cJSON_Parse("{\"max_tokens\":777," M "}");
  T_JSON(out, want, "accepted no-op members");
  cJSON_Delete(in);
  cJSON_Delete(out);
  cJSON_Delete(want);
  /* no max tokens and no option: 4096 */
  in = cJSON_Parse("{" M ",\"max_tokens\":null}");
  out = xl_hub_req_to_anth(in, NULL, &err);
  T_EQ_INT(cJSON_GetObjectItem(out, "max_tokens")->valuedouble, 4096);
  cJSON_Delete(in);
  cJSON_Delete(out);
}

/* anthropic -> hub refusals: blocks the hub cannot hold */
static void test_anth_in_refusals(void) {
  const char *bad[][2] = {
      {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"search_result\",\"source\":\"s\"}]}]}",
       "messages[0].content[0]"},
      {"{\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", "messages[0]"},
      {"{\"messages\":{}}", "messages"},
      {"[1,2]", ""},
      {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"file\","
       "\"file_id\":\"f\"}}]}]}",
       "messages[0].content[0]"},
      {"{\"messages\":[],\"tool_choice\":{\"type\":\"weird\"}}", "tool_choice.type"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cJSON *in = cJSON_Parse(bad[i][0]);
    pc_err err = {0};
    cJSON *out = xl_anth_req_to_hub(in, &err);
    T_CHECK(out == NULL);
    T_EQ_INT(err.status, 400);
    T_EQ_STR(err.param, bad[i][1]);
    cJSON_Delete(out);
    cJSON_Delete(in);
  }
}

/* merging: consecutive assistant turns, tool results after a user text, reasoning effort */
static void test_merging(void) {
  const char *h =
      "{\"model\":\"m\",\"max_tokens\":100,\"reasoning_effort\":\"medium\",\"messages\":["
      "{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
      "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"c\"}]},"
      "{\"role\":\"assistant\",\"content\":\"\"},"
      "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"x\",\"type\":\"function\","
      "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
      "{\"role\":\"user\",\"content\":\"late\"},{\"role\":\"tool\",\"tool_call_id\":\"x\",\"content\":\"r\"}]}";
  const char *want_s =
      "{\"model\":\"m\",\"max_tokens\":8292,\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":8192},"
      "\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":["
      "{\"type\":\"text\",\"text\":\"b\"},{\"type\":\"text\",\"text\":\"c\"},{\"type\":\"tool_use\",\"id\":\"x\","
      "\"name\":\"f\",\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
      "\"tool_use_id\":\"x\",\"content\":\"r\"},{\"type\":\"text\",\"text\":\"late\"}]}]}";
  cJSON *in = cJSON_Parse(h), *want = cJSON_Parse(want_s);
  pc_err err = {0};
  cJSON *out = xl_hub_req_to_anth(in, NULL, &err);
  T_JSON(out, want, "merged turns");
  cJSON_Delete(in);
  cJSON_Delete(want);
  cJSON_Delete(out);
}

/* ---- streams ---- */

typedef struct {
  cJSON *arr; /* collected chunks or events */
  int stop_after; /* return 9 from the callback at this count (0: never) */
} sink;

static int on_chunk(void *ud, const cJSON *chunk) {
  sink *s = ud;
  cJSON_AddItemToArray(s->arr, cJSON_Duplicate(chunk, 1));
  return s->stop_after && cJSON_GetArraySize(s->arr) == s->stop_after ? 9 : 0;
}

static int on_event(void *ud, aigw_event_kind kind, const char *name, const char *data, size_t n) {
  sink *s = ud;
  cJSON *e = cJSON_CreateObject();
  cJSON_AddNumberToObject(e, "kind", kind);
  cJSON_AddStringToObject(e, "event", name ? name : "");
  cJSON *d = cJSON_ParseWithLength(data, n);
  cJSON_AddItemToObject(e, "data", d ? d : cJSON_CreateString("NOT JSON"));
  cJSON_AddItemToArray(s->arr, e);
  return s->stop_after && cJSON_GetArraySize(s->arr) == s->stop_after ? 9 : 0;
}

typedef struct {
  xl_anth_dec *d;
  sink *s;
  int rc; /* first non-zero result */
  pc_err err;
} dec_run;

static int dec_sse(void *ud, const sse_event *ev) {
  dec_run *r = ud;
  char name[64];
  snprintf(name, sizeof name, "%.*s", (int)ev->event_len, ev->event);
  int rc = xl_anth_dec_event(r->d, ev->event_len ? name : NULL, ev->data, ev->data_len, on_chunk, r->s, &r->err);
  if (rc && !r->rc) r->rc = rc;
  return 0;
}

/* decode an SSE text, fed in pieces of `step` bytes (0: whole) */
static cJSON *decode_sse(const char *text, size_t n, size_t step, int *rc_out, pc_err *err_out) {
  xl_anth_dec d;
  xl_anth_dec_init(&d, CREATED);
  sink s = {cJSON_CreateArray(), 0};
  dec_run r = {&d, &s, 0, {0}};
  sse_parser p;
  sse_init(&p, 1 << 20);
  if (!step) step = n;
  for (size_t i = 0; i < n; i += step) sse_feed(&p, text + i, i + step > n ? n - i : step, dec_sse, &r);
  sse_free(&p);
  if (!r.rc && xl_anth_dec_finish(&d, &r.err) != 0) r.rc = -1;
  if (rc_out) *rc_out = r.rc;
  if (err_out) *err_out = r.err;
  xl_anth_dec_free(&d);
  return s.arr;
}

static void test_stream_decoder(void) {
  size_t n;
  char *text = slurp(FX "sdec_tools.in.sse", &n);
  cJSON *want = load("sdec_tools.out.json");
  T_CHECK(text && want);
  if (!text || !want) goto out;
  size_t steps[] = {0, 1, 7};
  for (size_t i = 0; i < 3; i++) {
    int rc;
    cJSON *got = decode_sse(text, n, steps[i], &rc, NULL);
    T_EQ_INT(rc, 0);
    T_JSON(got, want, "decoded stream");
    cJSON_Delete(got);
  }
out:
  free(text);
  cJSON_Delete(want);
}

static void test_stream_decoder_errors(void) {
  const char *s = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\","
                  "\"usage\":{\"input_tokens\":1}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                  "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
  int rc;
  pc_err err;
  cJSON *got = decode_sse(s, strlen(s), 0, &rc, &err);
  T_EQ_INT(rc, XL_EUPSTREAM);
  T_EQ_INT(err.status, 529);
  T_EQ_STR(err.param, "overloaded_error");
  T_EQ_STR(err.msg, "Overloaded");
  T_EQ_INT(cJSON_GetArraySize(got), 1);
  cJSON_Delete(got);
  /* the OpenAI client sees a 503 with the Anthropic type as code */
  cJSON *oe = xl_error_to_openai(err.status == 529 ? 503 : err.status, err.msg, NULL, err.param);
  cJSON *want = cJSON_Parse("{\"error\":{\"message\":\"Overloaded\",\"type\":\"server_error\",\"param\":null,"
                            "\"code\":\"overloaded_error\"}}");
  T_JSON(oe, want, "stream error as openai");
  cJSON_Delete(oe);
  cJSON_Delete(want);

  /* garbage: not JSON, no type, bad index, input_json_delta without a tool block */
  const char *garbage[] = {"{not json", "{}", "{\"type\":\"content_block_delta\",\"index\":-1,\"delta\":{\"type\":"
                           "\"text_delta\",\"text\":\"x\"}}",
                           "{\"type\":\"content_block_delta\",\"index\":5,\"delta\":{\"type\":\"input_json_delta\","
                           "\"partial_json\":\"{\"}}",
                           "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\"}}",
                           "{\"type\":\"message_start\"}"};
  for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
    xl_anth_dec d;
    xl_anth_dec_init(&d, 0);
    sink sk = {cJSON_CreateArray(), 0};
    pc_err e2 = {0};
    T_EQ_INT(xl_anth_dec_event(&d, NULL, garbage[i], strlen(garbage[i]), on_chunk, &sk, &e2), -1);
    T_EQ_INT(e2.status, 502);
    T_EQ_INT(cJSON_GetArraySize(sk.arr), 0);
    cJSON_Delete(sk.arr);
    xl_anth_dec_free(&d);
  }
  /* cut before message_delta */
  const char *cut = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}\n\n";
  got = decode_sse(cut, strlen(cut), 0, &rc, &err);
  T_EQ_INT(rc, -1);
  T_EQ_INT(err.status, 502);
  cJSON_Delete(got);
  /* the callback's value stops the decoder */
  xl_anth_dec d;
  xl_anth_dec_init(&d, 0);
  sink sk = {cJSON_CreateArray(), 1};
  const char *ms = "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}";
  T_EQ_INT(xl_anth_dec_event(&d, "message_delta", ms, strlen(ms), on_chunk, &sk, NULL), 9);
  cJSON_Delete(sk.arr);
  xl_anth_dec_free(&d);
}

/* server tool blocks and citations are skipped; redacted thinking and text in a start pass */
static void test_stream_decoder_skips(void) {
  const char *s =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"c\"}}\n\n"
      "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"server_tool_use\","
      "\"id\":\"srvtoolu_1\",\"name\":\"web_search\",\"input\":{}}}\n\n"
      "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
      "\"partial_json\":\"{\\\"q\\\":1}\"}}\n\n"
      "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"redacted_thinking\","
      "\"data\":\"R\"}}\n\n"
      "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"text\",\"text\":\"pre\"}}\n\n"
      "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"citations_delta\",\"citation\":{}}}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"refusal\"},"
      "\"usage\":{\"input_tokens\":7,\"output_tokens\":3,\"output_tokens_details\":{\"thinking_tokens\":2}}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  int rc;
  cJSON *got = decode_sse(s, strlen(s), 0, &rc, NULL);
  T_EQ_INT(rc, 0);
  const char *H = "\"id\":\"m1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"c\"";
  char want_s[2048];
  snprintf(want_s, sizeof want_s,
           "[{%s,\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
           "\"finish_reason\":null}]},"
           "{%s,\"choices\":[{\"index\":0,\"delta\":{\"thinking_blocks\":[{\"type\":\"redacted_thinking\",\"data\":"
           "\"R\"}]},\"logprobs\":null,\"finish_reason\":null}]},"
           "{%s,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"pre\"},\"logprobs\":null,\"finish_reason\":null}]},"
           "{%s,\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"content_filter\"}]},"
           "{%s,\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10,"
           "\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":2},"
           "\"cache_creation_input_tokens\":0}}]",
           H, H, H, H, H);
  cJSON *want = cJSON_Parse(want_s);
  T_CHECK(want);
  T_JSON(got, want, "decoded stream with skipped blocks");
  cJSON_Delete(got);
  cJSON_Delete(want);
}

static cJSON *encode_chunks(const cJSON *chunks, const xl_anth_enc_opts *o, int *rc_out) {
  xl_anth_enc e;
  xl_anth_enc_init(&e, o);
  sink s = {cJSON_CreateArray(), 0};
  int rc = 0;
  pc_err err = {0};
  const cJSON *c;
  cJSON_ArrayForEach(c, chunks) {
    if (cJSON_IsString(c)) rc = xl_anth_enc_data(&e, c->valuestring, strlen(c->valuestring), on_event, &s, &err);
    else rc = xl_anth_enc_chunk(&e, c, on_event, &s, &err);
    if (rc) break;
  }
  if (!rc) rc = xl_anth_enc_finish(&e, on_event, &s, &err);
  xl_anth_enc_free(&e);
  if (rc_out) *rc_out = rc;
  return s.arr;
}

static void test_stream_encoder(void) {
  cJSON *in = load("senc_tools.in.json"), *want = load("senc_tools.out.json");
  int rc;
  cJSON *got = encode_chunks(in, NULL, &rc);
  T_EQ_INT(rc, 0);
  T_JSON(got, want, "encoded stream");
  cJSON_Delete(got);
  cJSON_Delete(in);
  cJSON_Delete(want);

  /* known prompt size in message_start; finish chunk carrying usage; stop sequence; no [DONE] */
  const char *s = "[{\"id\":\"x1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]},"
                  "{\"id\":\"x1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\","
                  "\"stop_sequence\":\"##\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1}}]";
  in = cJSON_Parse(s);
  xl_anth_enc_opts o = {.input_tokens = 9, .model = "fallback", .id = "msg_fallback"};
  got = encode_chunks(in, &o, &rc);
  want = cJSON_Parse(
      "[{\"kind\":0,\"event\":\"message_start\",\"data\":{\"type\":\"message_start\",\"message\":{\"id\":\"x1\","
      "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,"
      "\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":0,\"cache_creation_input_tokens\":0,"
      "\"cache_read_input_tokens\":0}}}},"
      "{\"kind\":0,\"event\":\"content_block_start\",\"data\":{\"type\":\"content_block_start\",\"index\":0,"
      "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}},"
      "{\"kind\":1,\"event\":\"content_block_delta\",\"data\":{\"type\":\"content_block_delta\",\"index\":0,"
      "\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}},"
      "{\"kind\":0,\"event\":\"content_block_stop\",\"data\":{\"type\":\"content_block_stop\",\"index\":0}},"
      "{\"kind\":3,\"event\":\"message_delta\",\"data\":{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
      "\"stop_sequence\",\"stop_sequence\":\"##\"},\"usage\":{\"input_tokens\":9,\"output_tokens\":1,"
      "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}},"
      "{\"kind\":6,\"event\":\"message_stop\",\"data\":{\"type\":\"message_stop\"}}]");
  T_EQ_INT(rc, 0);
  T_JSON(got, want, "encoded stream with usage in the finish chunk");
  cJSON_Delete(got);
  cJSON_Delete(in);
  cJSON_Delete(want);

  /* cut stream: no finish_reason -> an error event, kind ERROR, after message_start */
  in = cJSON_Parse("[{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}]");
  got = encode_chunks(in, NULL, &rc);
  T_EQ_INT(rc, 0);
  int n = cJSON_GetArraySize(got);
  cJSON *last = cJSON_GetArrayItem(got, n - 1);
  T_EQ_INT(cJSON_GetObjectItem(last, "kind")->valueint, AIGW_EV_ERROR);
  T_EQ_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(last, "data"), "error"), "type")->valuestring,
           "api_error");
  T_EQ_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(got, 0), "data"), "type")->valuestring,
           "message_start");
  cJSON_Delete(got);
  cJSON_Delete(in);

  /* finish without usage, then [DONE]: message_delta is STOP kind, no usage numbers */
  in = cJSON_Parse("[{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"length\"}]},\"[DONE]\"]");
  got = encode_chunks(in, NULL, &rc);
  n = cJSON_GetArraySize(got);
  cJSON *md = cJSON_GetArrayItem(got, n - 2);
  T_EQ_INT(cJSON_GetObjectItem(md, "kind")->valueint, AIGW_EV_STOP);
  T_EQ_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(md, "data"), "delta"), "stop_reason")->valuestring,
           "max_tokens");
  T_EQ_INT(cJSON_GetObjectItem(cJSON_GetArrayItem(got, n - 1), "kind")->valueint, AIGW_EV_DONE);
  cJSON_Delete(got);
  cJSON_Delete(in);

  /* an upstream error chunk -> anthropic error event */
  in = cJSON_Parse("[{\"error\":{\"message\":\"slow down\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}]");
  got = encode_chunks(in, NULL, &rc);
  last = cJSON_GetArrayItem(got, cJSON_GetArraySize(got) - 1);
  T_EQ_INT(cJSON_GetObjectItem(last, "kind")->valueint, AIGW_EV_ERROR);
  cJSON *want_e = cJSON_Parse("{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}");
  T_JSON(cJSON_GetObjectItem(last, "data"), want_e, "error event");
  cJSON_Delete(want_e);
  cJSON_Delete(got);
  cJSON_Delete(in);

  /* interleaved arguments of a closed tool call, garbage data: -1 / 502 */
  in = cJSON_Parse("[{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\"}}]}}]},"
                   "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"b\",\"function\":{\"name\":\"g\"}}]}}]},"
                   "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}]");
  got = encode_chunks(in, NULL, &rc);
  T_EQ_INT(rc, -1);
  cJSON_Delete(got);
  cJSON_Delete(in);
  xl_anth_enc e;
  xl_anth_enc_init(&e, NULL);
  sink sk = {cJSON_CreateArray(), 0};
  pc_err err = {0};
  T_EQ_INT(xl_anth_enc_data(&e, "nope", 4, on_event, &sk, &err), -1);
  T_EQ_INT(err.status, 502);
  T_EQ_INT(cJSON_GetArraySize(sk.arr), 0);
  xl_anth_enc_free(&e);
  cJSON_Delete(sk.arr);
}

/* decode(encode(decode(x))) == decode(x): the encoder's events say everything the decoder read */
static void test_stream_roundtrip(void) {
  size_t n;
  char *text = slurp(FX "sdec_tools.in.sse", &n);
  if (!text) {
    T_CHECK(0);
    return;
  }
  int rc;
  cJSON *hub1 = decode_sse(text, n, 0, &rc, NULL);
  free(text);
  xl_anth_enc_opts o = {.input_tokens = 25, .model = NULL, .id = NULL};
  cJSON *events = encode_chunks(hub1, &o, &rc);
  T_EQ_INT(rc, 0);
  pc_buf sse = {0};
  const cJSON *ev;
  cJSON_ArrayForEach(ev, events) {
    char *d = cJSON_PrintUnformatted(cJSON_GetObjectItem(ev, "data"));
    pc_buf_printf(&sse, "event: %s\ndata: %s\n\n", cJSON_GetObjectItem(ev, "event")->valuestring, d);
    cJSON_free(d);
  }
  cJSON *hub2 = decode_sse(sse.p, sse.n, 3, &rc, NULL);
  T_EQ_INT(rc, 0);
  T_JSON(hub2, hub1, "stream decode/encode/decode");
  pc_buf_free(&sse);
  cJSON_Delete(hub1);
  cJSON_Delete(hub2);
  cJSON_Delete(events);
}

/* ---- errors ---- */
static void test_errors(void) {
  cJSON *a = xl_error_to_anth(529, "Overloaded");
  cJSON *w = cJSON_Parse("{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}");
  T_JSON(a, w, "anthropic 529");
  cJSON_Delete(a);
  cJSON_Delete(w);
  static const struct {
    int st;
    const char *t;
  } m[] = {{400, "invalid_request_error"}, {401, "authentication_error"}, {403, "permission_error"},
           {404, "not_found_error"},       {413, "request_too_large"},     {429, "rate_limit_error"},
           {500, "api_error"},             {529, "overloaded_error"},      {422, "invalid_request_error"}};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
    T_EQ_STR(xl_anth_error_type(m[i].st), m[i].t);
    if (m[i].st != 422) T_EQ_INT(xl_anth_error_status(m[i].t), m[i].st);
  }
  /* anthropic body -> openai body, 529 -> 503 */
  const char *ab = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";
  int st = 0;
  cJSON *o = xl_error_anth_body_to_openai(529, ab, strlen(ab), &st);
  T_EQ_INT(st, 503);
  w = cJSON_Parse("{\"error\":{\"message\":\"Overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":"
                  "\"overloaded_error\"}}");
  T_JSON(o, w, "anthropic body as openai");
  cJSON_Delete(o);
  cJSON_Delete(w);
  /* openai body -> anthropic body, 503 -> 529, 429 kept */
  const char *ob = "{\"error\":{\"message\":\"busy\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
  a = xl_error_openai_body_to_anth(503, ob, strlen(ob), &st);
  T_EQ_INT(st, 529);
  w = cJSON_Parse("{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}");
  T_JSON(a, w, "openai body as anthropic");
  cJSON_Delete(a);
  cJSON_Delete(w);
  const char *rl = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}";
  a = xl_error_openai_body_to_anth(429, rl, strlen(rl), &st);
  T_EQ_INT(st, 429);
  w = cJSON_Parse("{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"Rate limit reached\"}}");
  T_JSON(a, w, "openai 429 as anthropic");
  cJSON_Delete(a);
  cJSON_Delete(w);
  /* not JSON: the text is the message; NUL bytes cut */
  a = xl_error_openai_body_to_anth(502, "Bad Gateway\0tail", 16, &st);
  T_EQ_INT(st, 502);
  T_EQ_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "error"), "message")->valuestring, "Bad Gateway");
  T_EQ_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "error"), "type")->valuestring, "api_error");
  cJSON_Delete(a);
  o = xl_error_anth_body_to_openai(401, "", 0, &st);
  T_EQ_INT(st, 401);
  T_EQ_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "type")->valuestring, "authentication_error");
  T_EQ_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "code")->valuestring, "authentication_error");
  cJSON_Delete(o);
}

static void test_base64(void) {
  const char *v[][2] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}};
  for (size_t i = 0; i < 5; i++) {
    char *e = xl_b64_encode((const unsigned char *)v[i][0], strlen(v[i][0]));
    T_EQ_STR(e, v[i][1]);
    free(e);
    size_t n;
    unsigned char *d = xl_b64_decode(v[i][1], strlen(v[i][1]), &n);
    T_CHECK(d && n == strlen(v[i][0]) && !memcmp(d, v[i][0], n));
    free(d);
  }
  const char *bad[] = {"Zg=", "Z===", "Zg==Zg==", "Z!==", "Zm9 v"};
  for (size_t i = 0; i < 5; i++) T_CHECK(xl_b64_decode(bad[i], strlen(bad[i]), NULL) == NULL);
}


/* ---- fast paths: the same events as the tree paths ---- */
typedef struct collect1 {
  cJSON *last;
  int n;
  char name[64];
} collect1;
static int c1_chunk(void *ud, const cJSON *chunk) {
  collect1 *c = ud;
  cJSON_Delete(c->last);
  c->last = cJSON_Duplicate(chunk, 1);
  c->n++;
  return 0;
}
static int c1_event(void *ud, aigw_event_kind kind, const char *name, const char *data, size_t n) {
  (void)kind;
  collect1 *c = ud;
  cJSON_Delete(c->last);
  c->last = cJSON_ParseWithLength(data, n);
  snprintf(c->name, sizeof c->name, "%s", name ? name : "");
  c->n++;
  return 0;
}

static void test_fast_paths(void) {
  /* decoder: every event of the golden stream, plus text with escapes and an unusual shape */
  size_t n;
  char *text = slurp(FX "sdec_tools.in.sse", &n);
  T_CHECK(text != NULL);
  if (!text) return;
  pc_buf extra = {0};
  pc_buf_adds(&extra, text);
  free(text);
  xl_anth_dec d;
  xl_anth_dec_init(&d, CREATED);
  pc_buf out = {0};
  int fast = 0, events = 0;
  char *save = NULL;
  for (char *blk = strtok_r(extra.p, "\n", &save); blk; blk = strtok_r(NULL, "\n", &save)) {
    if (strncmp(blk, "data: ", 6) != 0) continue;
    const char *data = blk + 6;
    size_t dn = strlen(data);
    events++;
    int fr = xl_anth_dec_text_fast(&d, data, dn, &out);
    T_CHECK(fr >= 0);
    collect1 c = {0};
    pc_err e = {0};
    int rc = xl_anth_dec_event(&d, NULL, data, dn, c1_chunk, &c, &e);
    if (fr == 1) {
      fast++;
      T_EQ_INT(rc, 0);
      if (out.n) {
        T_EQ_INT(c.n, 1);
        cJSON *got = cJSON_ParseWithLength(out.p, out.n);
        T_JSON(got, c.last, "decoder fast path == tree path");
        cJSON_Delete(got);
      } else {
        T_EQ_INT(c.n, 0);
      }
    }
    cJSON_Delete(c.last);
    if (!strncmp(data, "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\"", 68)) {
      /* text with escapes inside the open text block */
      const char *esc = "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"a \\\"q\\\" \\\\ \\u00e9\\n\"}}";
      collect1 c2 = {0};
      T_EQ_INT(xl_anth_dec_text_fast(&d, esc, strlen(esc), &out), 1);
      T_EQ_INT(xl_anth_dec_event(&d, NULL, esc, strlen(esc), c1_chunk, &c2, &e), 0);
      cJSON *got = cJSON_ParseWithLength(out.p, out.n);
      T_JSON(got, c2.last, "escaped text");
      const cJSON *ct = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(got, "choices"), 0), "delta"), "content");
      T_CHECK(cJSON_IsString(ct) && !strcmp(ct->valuestring, "a \"q\" \\ \xc3\xa9\n"));
      cJSON_Delete(got);
      cJSON_Delete(c2.last);
      /* a delta with an extra member is left to the tree path */
      const char *odd = "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\",\"citations\":[]}}";
      T_EQ_INT(xl_anth_dec_text_fast(&d, odd, strlen(odd), &out), 0);
      fast += 1;
    }
  }
  T_CHECK(events > 5);
  T_CHECK(fast >= 2); /* the fixture's text delta + the escaped one */
  xl_anth_dec_free(&d);
  pc_buf_free(&extra);

  /* encoder: every chunk of the golden input */
  cJSON *in = load("senc_tools.in.json");
  T_CHECK(in != NULL);
  xl_anth_enc en;
  xl_anth_enc_init(&en, NULL);
  int efast = 0;
  const cJSON *chunk;
  cJSON_ArrayForEach(chunk, in) {
    if (cJSON_IsString(chunk)) { /* raw SSE data ("[DONE]") */
      collect1 c = {0};
      pc_err e = {0};
      T_CHECK(xl_anth_enc_data(&en, chunk->valuestring, strlen(chunk->valuestring), c1_event, &c, &e) >= 0);
      cJSON_Delete(c.last);
      continue;
    }
    char *t = cJSON_PrintUnformatted(chunk);
    int fr = xl_anth_enc_text_fast(&en, t, strlen(t), &out);
    T_CHECK(fr >= 0);
    collect1 c = {0};
    pc_err e = {0};
    T_EQ_INT(xl_anth_enc_chunk(&en, chunk, c1_event, &c, &e), 0);
    if (fr == 1) {
      efast++;
      T_EQ_INT(c.n, 1);
      T_CHECK(!strcmp(c.name, "content_block_delta"));
      cJSON *got = cJSON_ParseWithLength(out.p, out.n);
      T_JSON(got, c.last, "encoder fast path == tree path");
      cJSON_Delete(got);
    }
    cJSON_Delete(c.last);
    free(t);
  }
  T_CHECK(efast >= 1);
  /* a chunk with a finish reason or usage never takes the fast path */
  const char *fin = "{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}";
  T_EQ_INT(xl_anth_enc_text_fast(&en, fin, strlen(fin), &out), 0);
  xl_anth_enc_free(&en);
  cJSON_Delete(in);
  pc_buf_free(&out);
}

int main(void) {
  T_RUN(test_golden_requests);
  T_RUN(test_golden_responses);
  T_RUN(test_roundtrip_request);
  T_RUN(test_roundtrip_response);
  T_RUN(test_refusals);
  T_RUN(test_anth_in_refusals);
  T_RUN(test_merging);
  T_RUN(test_stream_decoder);
  T_RUN(test_stream_decoder_errors);
  T_RUN(test_stream_decoder_skips);
  T_RUN(test_stream_encoder);
  T_RUN(test_stream_roundtrip);
  T_RUN(test_errors);
  T_RUN(test_base64);
  T_RUN(test_fast_paths);
  return T_END();
}
