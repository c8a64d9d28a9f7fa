/* test_xlate_responses.c - OpenAI Responses API <-> hub (plugins/common/xlate_responses.h) against
 * golden fixtures in tests/fixtures/responses/ (JSON compared semantically; the stream's SSE text
 * byte for byte, since tests/integration/responses_stream_shape.test.mjs feeds that same file to
 * the official openai SDK): requests, refusals, output items fed back as input, the stored
 * conversation for previous_response_id, responses, the stream encoder, errors.
 *
 * XR_REGEN=1 rewrites the SSE golden from the encoder (review the diff before committing). */
#include "t.h"
#include "xlate_responses.h"

#include <stdlib.h>

#define FX "tests/fixtures/responses/"

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "  cannot open %s\n", path);
    return NULL;
  }
  size_t cap = 4096, len = 0, r;
  char *p = malloc(cap);
  while (p && (r = fread(p + len, 1, cap - len - 1, f)) > 0) {
    len += r;
    if (cap - len < 2) {
      char *q = realloc(p, cap *= 2);
      if (!q) free(p);
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

static int json_eq(const cJSON *got, const cJSON *want, const char *what) {
  if (got && want && cJSON_Compare(got, want, 1)) return 1;
  char *g = got ? cJSON_Print(got) : NULL, *w = want ? cJSON_Print(want) : NULL;
  fprintf(stderr, "  %s differs\n  got:  %s\n  want: %s\n", what, g ? g : "(null)", w ? w : "(null)");
  cJSON_free(g);
  cJSON_free(w);
  return 0;
}
#define T_JSON(got, want, what) T_CHECK(json_eq((got), (want), (what)))

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }
static const char *gstr(const cJSON *o, const char *k) {
  const cJSON *v = get(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ================================ requests ================================ */

static void golden_req(const char *name) {
  char a[128], b[128];
  snprintf(a, sizeof a, "%s.in.json", name);
  snprintf(b, sizeof b, "%s.out.json", name);
  cJSON *in = load(a), *want = load(b);
  T_CHECK(in && want);
  pc_err err = {0};
  cJSON *got = in ? xr_req_to_hub(in, "openai", NULL, &err) : NULL;
  if (in && !got) fprintf(stderr, "  %s: error %d %s: %s\n", name, err.status, err.param, err.msg);
  T_JSON(got, want, name);
  cJSON_Delete(in);
  cJSON_Delete(want);
  cJSON_Delete(got);
}

static void test_golden_requests(void) {
  golden_req("req_string");
  golden_req("req_items");
}

static void test_request_info(void) {
  xr_req_info info;
  pc_err err = {0};
  cJSON *in = load("req_items.in.json");
  cJSON *hub = xr_req_to_hub(in, NULL, &info, &err);
  T_CHECK(hub);
  T_EQ_INT(info.stream, 1);
  T_EQ_INT(info.store, 1);
  T_EQ_INT(info.include_encrypted, 1);
  T_EQ_STR(info.previous_response_id, "");
  cJSON_Delete(in);
  cJSON_Delete(hub);

  in = load("req_string.in.json");
  hub = xr_req_to_hub(in, NULL, &info, &err);
  T_CHECK(hub);
  T_EQ_INT(info.stream, 0);
  T_EQ_INT(info.store, 0);
  T_EQ_INT(info.include_encrypted, 0);
  cJSON_Delete(in);
  cJSON_Delete(hub);

  in = cJSON_Parse("{\"model\":\"m\",\"previous_response_id\":\"resp_abc\",\"input\":[{\"role\":\"user\",\"content\":\"x\"}],"
                   "\"reasoning\":{\"effort\":\"high\"},\"text\":{\"format\":{\"type\":\"json_object\"}},"
                   "\"tool_choice\":\"none\",\"include\":[\"file_search_call.results\"],\"store\":true}");
  hub = xr_req_to_hub(in, NULL, &info, &err);
  T_CHECK(hub);
  T_EQ_STR(info.previous_response_id, "resp_abc");
  T_EQ_INT(info.store, 1);
  T_EQ_STR(gstr(hub, "reasoning_effort"), "high");
  T_EQ_STR(gstr(hub, "tool_choice"), "none");
  T_EQ_STR(gstr(get(hub, "response_format"), "type"), "json_object");
  T_CHECK(!get(hub, "previous_response_id") && !get(hub, "store") && !get(hub, "include") && !get(hub, "input"));
  cJSON_Delete(in);
  cJSON_Delete(hub);

  /* text.format text adds nothing; bare base64 file_data becomes a PDF data URL */
  in = cJSON_Parse("{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_file\",\"file_data\":\"JVBE\","
                   "\"filename\":\"x.pdf\"}]}],\"text\":{\"format\":{\"type\":\"text\"}}}");
  hub = xr_req_to_hub(in, NULL, NULL, &err);
  T_CHECK(hub && !get(hub, "response_format"));
  const cJSON *part = cJSON_GetArrayItem(get(cJSON_GetArrayItem(get(hub, "messages"), 0), "content"), 0);
  T_EQ_STR(gstr(get(part, "file"), "file_data"), "data:application/pdf;base64,JVBE");
  cJSON_Delete(in);
  cJSON_Delete(hub);
}

static void refused(const char *json, const char *param, const char *needle1, const char *needle2) {
  cJSON *in = cJSON_Parse(json);
  T_CHECK(in);
  pc_err err = {0};
  cJSON *hub = xr_req_to_hub(in, "bedrock", NULL, &err);
  T_CHECK(!hub);
  if (hub) fprintf(stderr, "  accepted: %s\n", json);
  T_EQ_INT(err.status, 400);
  T_EQ_STR(err.param, param);
  if (needle1 && !strstr(err.msg, needle1)) {
    T_CHECK(!"message names the thing");
    fprintf(stderr, "  \"%s\" not in \"%s\"\n", needle1, err.msg);
  }
  if (needle2 && !strstr(err.msg, needle2)) {
    T_CHECK(!"message names the provider");
    fprintf(stderr, "  \"%s\" not in \"%s\"\n", needle2, err.msg);
  }
  cJSON_Delete(hub);
  cJSON_Delete(in);
}

static void test_refusals(void) {
  static const char *const builtin[] = {"web_search", "web_search_preview", "file_search", "computer_use_preview",
                                        "code_interpreter", "mcp", "image_generation", "local_shell"};
  char buf[256];
  for (size_t i = 0; i < sizeof builtin / sizeof *builtin; i++) {
    snprintf(buf, sizeof buf, "{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"},{\"type\":\"%s\"}]}",
             builtin[i]);
    refused(buf, "tools[1]", builtin[i], "bedrock");
  }
  refused("{\"input\":\"x\",\"background\":true}", "background", "background", NULL);
  refused("{\"input\":\"x\",\"conversation\":\"conv_1\"}", "conversation", "conversation", NULL);
  refused("{\"input\":\"x\",\"prompt\":{\"id\":\"pmpt_1\"}}", "prompt", "prompt", NULL);
  refused("{\"input\":\"x\",\"truncation\":\"auto\"}", "truncation", "auto", NULL);
  refused("{\"input\":\"x\",\"top_logprobs\":3}", "top_logprobs", "top_logprobs", NULL);
  refused("{\"input\":\"x\",\"max_tool_calls\":3}", "max_tool_calls", "max_tool_calls", "bedrock");
  refused("{\"input\":\"x\",\"include\":[\"reasoning.encrypted_content\",\"message.output_text.logprobs\"]}",
          "include[1]", "logprobs", NULL);
  refused("{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\",\"file_id\":\"file-1\"}]}]}",
          "input[0].content[0]", "file_id", NULL);
  refused("{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_file\",\"file_id\":\"file-1\"}]}]}",
          "input[0].content[0]", "file_id", NULL);
  refused("{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}", "input[0].content[0]",
          "input_audio", NULL);
  refused("{\"input\":[{\"type\":\"item_reference\",\"id\":\"msg_1\"}]}", "input[0]", "item_reference", NULL);
  refused("{\"input\":[{\"type\":\"web_search_call\",\"id\":\"ws_1\"}]}", "input[0]", "web_search_call", NULL);
  refused("{\"input\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "input[0]", "tool", NULL);
  refused("{\"input\":\"x\",\"tool_choice\":{\"type\":\"web_search_preview\"}}", "tool_choice", "web_search_preview",
          "bedrock");
  refused("{\"input\":\"x\",\"tool_choice\":\"sometimes\"}", "tool_choice", "sometimes", NULL);
  refused("{\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"n\"}}}", "text.format.schema",
          "schema", NULL);
  refused("{\"input\":[{\"type\":\"function_call\",\"name\":\"f\"}]}", "input[0]", "call_id", NULL);
  refused("{\"input\":42}", "input", "input", NULL);
  /* no leak / no crash on an error deep inside items */
  refused("{\"input\":[{\"role\":\"user\",\"content\":\"a\"},{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\"},"
          "{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"ok\"},{\"type\":\"nope\"}]}]}",
          "input[2].content[1]", "nope", NULL);
  /* what is accepted: store false, truncation disabled, background false, tool-result includes */
  cJSON *in = cJSON_Parse("{\"input\":\"x\",\"store\":false,\"truncation\":\"disabled\",\"background\":false,"
                          "\"include\":[\"web_search_call.results\",\"message.input_image.image_url\"],"
                          "\"stream_options\":{\"include_obfuscation\":false}}");
  pc_err err = {0};
  cJSON *hub = xr_req_to_hub(in, NULL, NULL, &err);
  T_CHECK(hub);
  cJSON_Delete(hub);
  cJSON_Delete(in);
}

/* the output of a response, sent back as input items with the tool results, gives the hub
 * assistant turn back: text, both tool calls, reasoning and its signed thinking block */
static void test_output_items_as_input(void) {
  cJSON *resp = load("resp_tools.out.json"), *hub_resp = load("resp_tools.in.json");
  cJSON *req = cJSON_CreateObject();
  cJSON *input = cJSON_AddArrayToObject(req, "input");
  cJSON_AddItemToArray(input, cJSON_Parse("{\"role\":\"user\",\"content\":\"weather?\"}"));
  const cJSON *it;
  cJSON_ArrayForEach(it, get(resp, "output")) cJSON_AddItemToArray(input, cJSON_Duplicate(it, 1));
  cJSON_AddItemToArray(input, cJSON_Parse("{\"type\":\"function_call_output\",\"call_id\":\"toolu_1\",\"output\":\"18C\"}"));
  cJSON_AddItemToArray(input, cJSON_Parse("{\"type\":\"function_call_output\",\"call_id\":\"toolu_2\",\"output\":\"4C\"}"));
  pc_err err = {0};
  cJSON *hub = xr_req_to_hub(req, NULL, NULL, &err);
  T_CHECK(hub);
  const cJSON *msgs = get(hub, "messages");
  T_EQ_INT(cJSON_GetArraySize(msgs), 4);
  const cJSON *a = cJSON_GetArrayItem(msgs, 1);
  const cJSON *want = get(cJSON_GetArrayItem(get(hub_resp, "choices"), 0), "message");
  T_JSON(a, want, "assistant turn from output items");
  T_EQ_STR(gstr(cJSON_GetArrayItem(msgs, 2), "tool_call_id"), "toolu_1");
  T_EQ_STR(gstr(cJSON_GetArrayItem(msgs, 3), "role"), "tool");
  cJSON_Delete(hub);

  /* foreign encrypted_content (OpenAI's own) is dropped; the summary stays */
  cJSON *in = cJSON_Parse("{\"input\":[{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[{\"type\":\"summary_text\","
                          "\"text\":\"a\"},{\"type\":\"summary_text\",\"text\":\"b\"}],\"encrypted_content\":\"gAAAA\"},"
                          "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":"
                          "\"x\"},{\"type\":\"refusal\",\"refusal\":\"no\"}]},{\"type\":\"reasoning\",\"summary\":[]},"
                          "{\"type\":\"message\",\"role\":\"assistant\",\"content\":\"y\"}]}");
  hub = xr_req_to_hub(in, NULL, NULL, &err);
  T_CHECK(hub);
  cJSON *wantm = cJSON_Parse("[{\"role\":\"assistant\",\"content\":\"x\",\"refusal\":\"no\",\"reasoning_content\":\"a\\n\\nb\"},"
                             "{\"role\":\"assistant\",\"content\":\"y\"}]");
  T_JSON(get(hub, "messages"), wantm, "reasoning merge");
  cJSON_Delete(wantm);
  cJSON_Delete(hub);
  cJSON_Delete(in);
  cJSON_Delete(req);
  cJSON_Delete(resp);
  cJSON_Delete(hub_resp);
}

/* previous_response_id: store the conversation of turn 1, prepend it to turn 2 */
static void test_previous_response(void) {
  pc_err err = {0};
  cJSON *req1 = cJSON_Parse("{\"model\":\"m\",\"instructions\":\"I1\",\"input\":\"hello\"}");
  cJSON *hub1 = xr_req_to_hub(req1, NULL, NULL, &err);
  cJSON *resp1 = load("resp_tools.in.json");
  cJSON *conv = xr_conversation(req1, hub1, resp1, &err);
  T_CHECK(conv);
  T_EQ_INT(cJSON_GetArraySize(conv), 2); /* no instructions message */
  T_EQ_STR(gstr(cJSON_GetArrayItem(conv, 0), "content"), "hello");
  const cJSON *a = cJSON_GetArrayItem(conv, 1);
  T_JSON(a, get(cJSON_GetArrayItem(get(resp1, "choices"), 0), "message"), "stored assistant turn");

  cJSON *req2 = cJSON_Parse("{\"model\":\"m\",\"instructions\":\"I2\",\"previous_response_id\":\"resp_T1\",\"input\":["
                            "{\"type\":\"function_call_output\",\"call_id\":\"toolu_1\",\"output\":\"18C\"},"
                            "{\"type\":\"function_call_output\",\"call_id\":\"toolu_2\",\"output\":\"4C\"}]}");
  xr_req_info info;
  cJSON *hub2 = xr_req_to_hub(req2, NULL, &info, &err);
  T_EQ_STR(info.previous_response_id, "resp_T1");
  T_EQ_INT(xr_hub_prepend(hub2, req2, conv, &err), 0);
  if (err.status) fprintf(stderr, "  prepend: %d %s\n", err.status, err.msg);
  const cJSON *msgs = get(hub2, "messages");
  T_EQ_INT(cJSON_GetArraySize(msgs), 5);
  T_EQ_STR(gstr(cJSON_GetArrayItem(msgs, 0), "content"), "I2");
  T_EQ_STR(gstr(cJSON_GetArrayItem(msgs, 1), "content"), "hello");
  T_EQ_STR(gstr(cJSON_GetArrayItem(msgs, 2), "role"), "assistant");
  T_EQ_STR(gstr(cJSON_GetArrayItem(msgs, 3), "tool_call_id"), "toolu_1");
  T_EQ_STR(gstr(cJSON_GetArrayItem(msgs, 4), "tool_call_id"), "toolu_2");

  /* the chain grows: turn 2's conversation holds turn 1 */
  cJSON *resp2 = load("resp_text.in.json");
  cJSON *conv2 = xr_conversation(req2, hub2, resp2, &err);
  T_EQ_INT(cJSON_GetArraySize(conv2), 5);
  T_EQ_STR(gstr(cJSON_GetArrayItem(conv2, 4), "content"), "Hello there.");

  /* without instructions the stored turns go first */
  cJSON *req3 = cJSON_Parse("{\"input\":\"more\",\"previous_response_id\":\"r\"}");
  cJSON *hub3 = xr_req_to_hub(req3, NULL, NULL, &err);
  T_EQ_INT(xr_hub_prepend(hub3, req3, conv2, &err), 0);
  T_EQ_INT(cJSON_GetArraySize(get(hub3, "messages")), 6);
  T_EQ_STR(gstr(cJSON_GetArrayItem(get(hub3, "messages"), 5), "content"), "more");
  /* bad stored data */
  cJSON *bad = cJSON_Parse("[1]");
  T_EQ_INT(xr_hub_prepend(hub3, req3, bad, &err), -1);
  T_EQ_INT(err.status, 500);
  cJSON_Delete(bad);

  char id[64];
  xr_response_id("chatcmpl-T1", id, sizeof id);
  T_EQ_STR(id, "resp_T1");
  xr_response_id("a/b c", id, sizeof id);
  T_EQ_STR(id, "resp_a_b_c");
  xr_response_id(NULL, id, sizeof id);
  T_EQ_STR(id, "resp_aigw");

  cJSON_Delete(req1);
  cJSON_Delete(hub1);
  cJSON_Delete(resp1);
  cJSON_Delete(conv);
  cJSON_Delete(req2);
  cJSON_Delete(hub2);
  cJSON_Delete(resp2);
  cJSON_Delete(conv2);
  cJSON_Delete(req3);
  cJSON_Delete(hub3);
}

/* ============================ responses ============================ */

static void golden_resp(const char *name, const char *reqname) {
  char a[128], b[128];
  snprintf(a, sizeof a, "%s.in.json", name);
  snprintf(b, sizeof b, "%s.out.json", name);
  cJSON *in = load(a), *want = load(b), *req = reqname ? load(reqname) : NULL;
  T_CHECK(in && want);
  pc_err err = {0};
  cJSON *got = in ? xr_hub_resp_to_responses(in, req, &err) : NULL;
  if (in && !got) fprintf(stderr, "  %s: error %d %s: %s\n", name, err.status, err.param, err.msg);
  T_JSON(got, want, name);
  cJSON_Delete(in);
  cJSON_Delete(want);
  cJSON_Delete(req);
  cJSON_Delete(got);
}

static void test_golden_responses(void) {
  golden_resp("resp_text", NULL);
  golden_resp("resp_tools", "resp_tools.req.json");
  golden_resp("resp_length", NULL);
  golden_resp("resp_filter", NULL);
  /* without include, no encrypted_content */
  cJSON *in = load("resp_tools.in.json");
  pc_err err = {0};
  cJSON *got = xr_hub_resp_to_responses(in, NULL, &err);
  T_CHECK(got && !get(cJSON_GetArrayItem(get(got, "output"), 0), "encrypted_content"));
  cJSON_Delete(got);
  cJSON_Delete(in);
  /* not an answer */
  in = cJSON_Parse("{\"choices\":[]}");
  T_CHECK(!xr_hub_resp_to_responses(in, NULL, &err));
  T_EQ_INT(err.status, 502);
  cJSON_Delete(in);
}

/* ================================ streams ================================ */

typedef struct rec {
  pc_buf sse;
  cJSON *events; /* array of {kind, name, data} */
  int stop_at;   /* stop (return 7) at this event index, -1 never */
} rec;

static int on_event(void *ud, aigw_event_kind kind, const char *name, const char *data, size_t n) {
  rec *r = ud;
  pc_buf_printf(&r->sse, "event: %s\ndata: %.*s\n\n", name, (int)n, data);
  cJSON *e = cJSON_CreateObject();
  cJSON_AddNumberToObject(e, "kind", kind);
  cJSON_AddStringToObject(e, "name", name);
  cJSON_AddItemToObject(e, "data", cJSON_ParseWithLength(data, n));
  cJSON_AddItemToArray(r->events, e);
  if (r->stop_at >= 0 && cJSON_GetArraySize(r->events) > r->stop_at) return 7;
  return 0;
}

/* feed a .jsonl of hub chunks (one per line) then finish */
static int feed_lines(xr_enc *e, const char *text, rec *r, pc_err *err) {
  const char *p = text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    if (n) {
      int rc = xr_enc_data(e, p, n, on_event, r, err);
      if (rc) return rc;
    }
    p += n + (nl ? 1 : 0);
  }
  return xr_enc_data(e, "[DONE]", 6, on_event, r, err);
}

/* the SSE text equals the golden file (rewritten first under XR_REGEN) */
static void golden_sse(const char *name, const pc_buf *sse) {
  char path[256];
  snprintf(path, sizeof path, FX "%s", name);
  if (getenv("XR_REGEN")) {
    FILE *f = fopen(path, "wb");
    if (f) {
      fwrite(sse->p, 1, sse->n, f);
      fclose(f);
    }
  }
  size_t gn = 0;
  char *golden = slurp(path, &gn);
  int same = golden && gn == sse->n && !memcmp(golden, sse->p, gn);
  T_CHECK(same);
  if (!same) fprintf(stderr, "  %s differs; got:\n%s\n", name, sse->p ? sse->p : "");
  free(golden);
}

static const char *ev_name(const rec *r, int i) { return gstr(cJSON_GetArrayItem(r->events, i), "name"); }
static int ev_kind(const rec *r, int i) { return (int)cJSON_GetNumberValue(get(cJSON_GetArrayItem(r->events, i), "kind")); }
static const cJSON *ev_data(const rec *r, int i) { return get(cJSON_GetArrayItem(r->events, i), "data"); }

static void check_sequence(const rec *r) {
  int n = cJSON_GetArraySize(r->events);
  for (int i = 0; i < n; i++) {
    const cJSON *d = ev_data(r, i);
    T_CHECK(cJSON_IsObject(d));
    T_EQ_STR(gstr(d, "type"), ev_name(r, i));
    T_EQ_INT((int)cJSON_GetNumberValue(get(d, "sequence_number")), i);
  }
}

static void test_stream_tools(void) {
  cJSON *req = load("stream_tools.req.json"), *hub = load("stream_tools.hub.json");
  char *chunks = slurp(FX "stream_tools.chunks.jsonl", NULL);
  xr_enc e;
  T_EQ_INT(xr_enc_init(&e, &(xr_enc_opts){.req = req, .created = 1}), 0);
  cJSON_Delete(req); /* the encoder copied what it echoes */
  req = load("stream_tools.req.json");
  rec r = {{0}, cJSON_CreateArray(), -1};
  pc_err err = {0};
  T_EQ_INT(feed_lines(&e, chunks, &r, &err), 0);
  check_sequence(&r);

  static const char *const want[] = {
      "response.created", "response.in_progress",
      "response.output_item.added", "response.content_part.added", "response.output_text.delta",
      "response.output_text.delta", "response.output_text.done", "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added", "response.function_call_arguments.delta",
      "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done",
      "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.done",
      "response.output_item.done", "response.completed"};
  int nw = (int)(sizeof want / sizeof *want);
  T_EQ_INT(cJSON_GetArraySize(r.events), nw);
  for (int i = 0; i < nw && i < cJSON_GetArraySize(r.events); i++) {
    T_EQ_STR(ev_name(&r, i), want[i]);
    int k = !strcmp(want[i], "response.output_text.delta")                ? AIGW_EV_DELTA
            : !strcmp(want[i], "response.function_call_arguments.delta") ? AIGW_EV_TOOL_DELTA
            : !strcmp(want[i], "response.completed")                      ? AIGW_EV_DONE
                                                                          : AIGW_EV_OTHER;
    T_EQ_INT(ev_kind(&r, i), k);
  }
  /* a few exact members */
  T_EQ_STR(gstr(ev_data(&r, 4), "delta"), "Let me ");
  T_EQ_STR(gstr(ev_data(&r, 4), "item_id"), "msg_S1");
  T_CHECK(cJSON_IsArray(get(ev_data(&r, 4), "logprobs")));
  T_EQ_STR(gstr(ev_data(&r, 6), "text"), "Let me check.");
  T_EQ_STR(gstr(ev_data(&r, 12), "arguments"), "{\"city\":\"Paris\"}");
  T_EQ_INT((int)cJSON_GetNumberValue(get(ev_data(&r, 15), "output_index")), 2);
  T_EQ_STR(gstr(get(ev_data(&r, 0), "response"), "status"), "in_progress");

  /* the final response equals the non-stream conversion of the same answer */
  cJSON *ns = xr_hub_resp_to_responses(hub, req, &err);
  T_JSON(get(ev_data(&r, nw - 1), "response"), ns, "response.completed vs non-stream");
  T_JSON(xr_enc_response(&e), ns, "xr_enc_response vs non-stream");
  /* and what was streamed, as a hub answer, is the answer */
  cJSON *back = xr_enc_hub_response(&e, &err);
  T_JSON(back, hub, "xr_enc_hub_response");

  /* the golden SSE (also read by responses_stream_shape.test.mjs) */
  golden_sse("stream_tools.sse", &r.sse);

  /* finishing again does nothing */
  int before = cJSON_GetArraySize(r.events);
  T_EQ_INT(xr_enc_finish(&e, on_event, &r, &err), 0);
  T_EQ_INT(cJSON_GetArraySize(r.events), before);

  cJSON_Delete(back);
  cJSON_Delete(ns);
  free(chunks);
  pc_buf_free(&r.sse);
  cJSON_Delete(r.events);
  xr_enc_free(&e);
  cJSON_Delete(req);
  cJSON_Delete(hub);
}

static int feed_json(xr_enc *e, const char *json, rec *r, pc_err *err) {
  return xr_enc_data(e, json, strlen(json), on_event, r, err);
}

#define CH(delta, fin) "{\"id\":\"chatcmpl-R\",\"created\":9,\"model\":\"c\",\"choices\":[{\"index\":0,\"delta\":" delta \
                       ",\"finish_reason\":" fin "}]}"

/* reasoning (Anthropic-style: text then a signature), text, cut by max tokens */
static void test_stream_reasoning(void) {
  cJSON *req = cJSON_Parse("{\"input\":\"x\",\"include\":[\"reasoning.encrypted_content\"],\"max_output_tokens\":9}");
  xr_enc e;
  xr_enc_init(&e, &(xr_enc_opts){.req = req});
  rec r = {{0}, cJSON_CreateArray(), -1};
  pc_err err = {0};
  const char *in[] = {CH("{\"role\":\"assistant\",\"content\":\"\"}", "null"), CH("{\"reasoning_content\":\"Hmm, \"}", "null"),
                      CH("{\"reasoning_content\":\"ok.\"}", "null"),
                      CH("{\"thinking_blocks\":[{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"SG\"}]}", "null"),
                      CH("{\"content\":\"The\"}", "null"), CH("{}", "\"length\""),
                      ("{\"id\":\"chatcmpl-R\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9,"
                       "\"completion_tokens_details\":{\"reasoning_tokens\":4}}}")};
  for (size_t i = 0; i < sizeof in / sizeof *in; i++) T_EQ_INT(feed_json(&e, in[i], &r, &err), 0);
  check_sequence(&r);
  static const char *const want[] = {
      "response.created", "response.in_progress", "response.output_item.added",
      "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
      "response.reasoning_summary_text.delta", "response.reasoning_summary_text.done",
      "response.reasoning_summary_part.done", "response.output_item.done", "response.output_item.added",
      "response.content_part.added", "response.output_text.delta", "response.output_text.done",
      "response.content_part.done", "response.output_item.done", "response.incomplete"};
  int nw = (int)(sizeof want / sizeof *want);
  T_EQ_INT(cJSON_GetArraySize(r.events), nw);
  for (int i = 0; i < nw && i < cJSON_GetArraySize(r.events); i++) T_EQ_STR(ev_name(&r, i), want[i]);
  T_EQ_INT(ev_kind(&r, nw - 1), AIGW_EV_DONE);
  T_EQ_STR(gstr(get(ev_data(&r, 8), "item"), "id"), "rs_R");
  T_EQ_STR(gstr(get(ev_data(&r, 14), "item"), "status"), "incomplete");

  cJSON *hub = cJSON_Parse("{\"id\":\"chatcmpl-R\",\"object\":\"chat.completion\",\"created\":9,\"model\":\"c\",\"choices\":[{\"index\":0,\"message\":"
                           "{\"role\":\"assistant\",\"content\":\"The\",\"reasoning_content\":\"Hmm, ok.\","
                           "\"thinking_blocks\":[{\"type\":\"thinking\",\"thinking\":\"Hmm, ok.\",\"signature\":\"SG\"}]},"
                           "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9,"
                           "\"total_tokens\":14,\"prompt_tokens_details\":{\"cached_tokens\":0},"
                           "\"completion_tokens_details\":{\"reasoning_tokens\":4}}}");
  cJSON *ns = xr_hub_resp_to_responses(hub, req, &err);
  T_JSON(xr_enc_response(&e), ns, "incomplete stream vs non-stream");
  T_EQ_STR(gstr(get(ns, "incomplete_details"), "reason"), "max_output_tokens");
  T_CHECK(gstr(cJSON_GetArrayItem(get(ns, "output"), 0), "encrypted_content") != NULL);
  cJSON *back = xr_enc_hub_response(&e, &err);
  T_JSON(back, hub, "streamed reasoning as hub");
  golden_sse("stream_reasoning.sse", &r.sse);
  cJSON_Delete(back);
  cJSON_Delete(ns);
  cJSON_Delete(hub);
  pc_buf_free(&r.sse);
  cJSON_Delete(r.events);
  xr_enc_free(&e);
  cJSON_Delete(req);
}

static void test_stream_edges(void) {
  pc_err err = {0};
  xr_enc e;
  /* an error chunk mid-stream: response.failed (DONE) then error (ERROR), nothing after */
  xr_enc_init(&e, NULL);
  rec r = {{0}, cJSON_CreateArray(), -1};
  T_EQ_INT(feed_json(&e, CH("{\"content\":\"partial\"}", "null"), &r, &err), 0);
  T_EQ_INT(feed_json(&e, "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}", &r, &err), 0);
  T_EQ_INT(feed_json(&e, CH("{\"content\":\"more\"}", "null"), &r, &err), 0);
  int n = cJSON_GetArraySize(r.events);
  T_CHECK(n >= 2);
  T_EQ_STR(ev_name(&r, n - 2), "response.failed");
  T_EQ_INT(ev_kind(&r, n - 2), AIGW_EV_DONE);
  T_EQ_STR(ev_name(&r, n - 1), "error");
  T_EQ_INT(ev_kind(&r, n - 1), AIGW_EV_ERROR);
  T_EQ_STR(gstr(ev_data(&r, n - 1), "code"), "rate_limit_exceeded");
  T_EQ_STR(gstr(ev_data(&r, n - 1), "message"), "slow down");
  const cJSON *fr = get(ev_data(&r, n - 2), "response");
  T_EQ_STR(gstr(fr, "status"), "failed");
  T_EQ_STR(gstr(get(fr, "error"), "code"), "rate_limit_exceeded");
  check_sequence(&r);
  golden_sse("stream_failed.sse", &r.sse);
  pc_buf_free(&r.sse);
  cJSON_Delete(r.events);
  xr_enc_free(&e);

  /* a cut stream (no finish_reason): failed */
  xr_enc_init(&e, NULL);
  r = (rec){{0}, cJSON_CreateArray(), -1};
  feed_json(&e, CH("{\"content\":\"x\"}", "null"), &r, &err);
  T_EQ_INT(xr_enc_finish(&e, on_event, &r, &err), 0);
  n = cJSON_GetArraySize(r.events);
  T_EQ_STR(ev_name(&r, n - 2), "response.failed");
  T_EQ_STR(ev_name(&r, n - 1), "error");
  T_EQ_STR(gstr(get(ev_data(&r, n - 2), "response"), "id"), "resp_R");
  pc_buf_free(&r.sse);
  cJSON_Delete(r.events);
  xr_enc_free(&e);

  /* xr_enc_error before any chunk: created, in_progress, failed, error */
  xr_enc_init(&e, &(xr_enc_opts){.id = "chatcmpl-Z", .model = "mm", .created = 3});
  r = (rec){{0}, cJSON_CreateArray(), -1};
  T_EQ_INT(xr_enc_error(&e, 503, "upstream down", on_event, &r, &err), 0);
  T_EQ_INT(cJSON_GetArraySize(r.events), 4);
  T_EQ_STR(gstr(get(ev_data(&r, 2), "response"), "id"), "resp_Z");
  T_EQ_STR(gstr(get(ev_data(&r, 2), "response"), "model"), "mm");
  T_EQ_STR(gstr(ev_data(&r, 3), "code"), "server_error");
  T_CHECK(xr_enc_response(&e) != NULL);
  pc_buf_free(&r.sse);
  cJSON_Delete(r.events);
  xr_enc_free(&e);

  /* finish without content or usage: an empty message item, completed at [DONE] */
  xr_enc_init(&e, NULL);
  r = (rec){{0}, cJSON_CreateArray(), -1};
  feed_json(&e, CH("{}", "\"stop\""), &r, &err);
  T_CHECK(!xr_enc_response(&e));
  T_EQ_INT(xr_enc_data(&e, " [DONE]\n", 8, on_event, &r, &err), 0);
  n = cJSON_GetArraySize(r.events);
  T_EQ_STR(ev_name(&r, n - 1), "response.completed");
  const cJSON *out = get(xr_enc_response(&e), "output");
  T_EQ_INT(cJSON_GetArraySize(out), 1);
  T_EQ_STR(gstr(cJSON_GetArrayItem(get(cJSON_GetArrayItem(out, 0), "content"), 0), "text"), "");
  T_CHECK(cJSON_IsNull(get(xr_enc_response(&e), "usage")));
  check_sequence(&r);
  pc_buf_free(&r.sse);
  cJSON_Delete(r.events);
  xr_enc_free(&e);

  /* arguments for a closed tool call: 502; garbage: 502; refusal deltas */
  xr_enc_init(&e, NULL);
  r = (rec){{0}, cJSON_CreateArray(), -1};
  T_EQ_INT(feed_json(&e, CH("{\"refusal\":\"no\"}", "null"), &r, &err), 0);
  T_EQ_STR(ev_name(&r, cJSON_GetArraySize(r.events) - 1), "response.refusal.delta");
  feed_json(&e, CH("{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{\"}}]}", "null"), &r, &err);
  feed_json(&e, CH("{\"tool_calls\":[{\"index\":1,\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}", "null"), &r, &err);
  T_EQ_INT(feed_json(&e, CH("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"}\"}}]}", "null"), &r, &err), -1);
  T_EQ_INT(err.status, 502);
  T_EQ_INT(xr_enc_data(&e, "nope", 4, on_event, &r, &err), -1);
  T_EQ_INT(err.status, 502);
  pc_buf_free(&r.sse);
  cJSON_Delete(r.events);
  xr_enc_free(&e);

  /* the callback's non-zero value stops and is returned */
  xr_enc_init(&e, NULL);
  r = (rec){{0}, cJSON_CreateArray(), 0};
  T_EQ_INT(feed_json(&e, CH("{\"content\":\"x\"}", "null"), &r, &err), 7);
  pc_buf_free(&r.sse);
  cJSON_Delete(r.events);
  xr_enc_free(&e);
}

/* ================================ errors ================================ */

static void test_errors(void) {
  pc_err e = {0};
  pc_err_set(&e, 400, "tools[0]", "tools[0]: nope");
  cJSON *b = xr_error_body(&e);
  cJSON *want = cJSON_Parse("{\"error\":{\"message\":\"tools[0]: nope\",\"type\":\"invalid_request_error\","
                            "\"param\":\"tools[0]\",\"code\":null}}");
  T_JSON(b, want, "error body");
  cJSON_Delete(b);
  cJSON_Delete(want);
  b = xr_error_body(NULL);
  T_EQ_STR(gstr(get(b, "error"), "type"), "server_error");
  cJSON_Delete(b);
}

int main(void) {
  T_RUN(test_golden_requests);
  T_RUN(test_request_info);
  T_RUN(test_refusals);
  T_RUN(test_output_items_as_input);
  T_RUN(test_previous_response);
  T_RUN(test_golden_responses);
  T_RUN(test_stream_tools);
  T_RUN(test_stream_reasoning);
  T_RUN(test_stream_edges);
  T_RUN(test_errors);
  return T_END();
}
