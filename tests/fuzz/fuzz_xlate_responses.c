/* fuzz_xlate_responses: the OpenAI Responses <-> hub translators (plugins/common/xlate_responses.h)
 * on arbitrary bytes.
 *
 * The input is used two ways:
 *   - as one JSON document: a Responses request (-> hub, the stored-conversation helpers on the
 *     result), a hub answer (-> Responses response, with the document also as the echoed request;
 *     the response's output items sent back as input items must always be accepted);
 *   - line by line as the data of hub stream events into the stream encoder (the document, when
 *     it is one, as the request), then xr_enc_finish; the streamed answer as a hub response is
 *     converted again.
 * Checks: nothing crashes or leaks (ASan/UBSan); every success returns a tree that prints and
 * parses back; every failure sets a 4xx/5xx status and a message; every event is a JSON object
 * whose "type" is the event name and one the openai SDK knows, with sequence_number counting
 * from 0; the stream always ends with response.completed / response.incomplete (DONE) or
 * response.failed (DONE) + error (ERROR), and nothing after. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xlate_responses.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void check_tree(cJSON *t, const pc_err *e) {
  if (!t) {
    CHECK(e->status >= 400 && e->status <= 599 && e->msg[0]);
    return;
  }
  char *s = cJSON_PrintUnformatted(t);
  CHECK(s);
  cJSON *back = cJSON_Parse(s);
  CHECK(back);
  cJSON_Delete(back);
  cJSON_free(s);
}

static const char *const known[] = {
    "response.created", "response.in_progress", "response.output_item.added", "response.output_item.done",
    "response.content_part.added", "response.content_part.done", "response.output_text.delta",
    "response.output_text.done", "response.refusal.delta", "response.refusal.done",
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "response.reasoning_summary_part.added", "response.reasoning_summary_part.done",
    "response.reasoning_summary_text.delta", "response.reasoning_summary_text.done", "response.completed",
    "response.incomplete", "response.failed", "error"};

typedef struct st {
  long long n;      /* events seen */
  int done, error;  /* DONE / ERROR seen */
} st;

static int on_event(void *ud, aigw_event_kind kind, const char *name, const char *data, size_t n) {
  st *s = ud;
  CHECK(name && kind >= AIGW_EV_OTHER && kind <= AIGW_EV_DONE);
  CHECK(!s->error); /* nothing after the error event */
  CHECK(!s->done || kind == AIGW_EV_ERROR); /* after DONE only the error event of a failure */
  int ok = 0;
  for (size_t i = 0; i < sizeof known / sizeof *known; i++) ok |= !strcmp(name, known[i]);
  CHECK(ok);
  cJSON *j = cJSON_ParseWithLength(data, n);
  CHECK(cJSON_IsObject(j));
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
  CHECK(cJSON_IsString(t) && !strcmp(t->valuestring, name));
  const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "sequence_number");
  CHECK(cJSON_IsNumber(q) && (long long)q->valuedouble == s->n);
  s->n++;
  if (kind == AIGW_EV_DONE) s->done = 1;
  if (kind == AIGW_EV_ERROR) {
    CHECK(!strcmp(name, "error"));
    s->error = 1;
  }
  cJSON_Delete(j);
  return 0;
}

/* a response's output, sent back as input, is always accepted */
static void output_as_input(const cJSON *resp) {
  cJSON *req = cJSON_CreateObject();
  CHECK(req);
  cJSON *out = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(resp, "output"), 1);
  CHECK(out && cJSON_AddItemToObject(req, "input", out));
  pc_err e = {0};
  cJSON *hub = xr_req_to_hub(req, NULL, NULL, &e);
  CHECK(hub);
  check_tree(hub, &e);
  cJSON_Delete(hub);
  cJSON_Delete(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *t = (const char *)data;
  pc_err e;
  cJSON *j = cJSON_ParseWithLength(t, size);
  if (j) {
    /* as a Responses request */
    memset(&e, 0, sizeof e);
    xr_req_info info;
    cJSON *hub = xr_req_to_hub(j, size % 2 ? "p" : NULL, &info, &e);
    check_tree(hub, &e);
    if (hub) {
      CHECK(info.store == 0 || info.store == 1);
      /* its own messages as a stored conversation */
      cJSON *stored = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(hub, "messages"), 1);
      int before = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(hub, "messages"));
      memset(&e, 0, sizeof e);
      if (stored && xr_hub_prepend(hub, j, stored, &e) == 0)
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(hub, "messages")) == 2 * before);
      cJSON_Delete(stored);
      memset(&e, 0, sizeof e);
      cJSON *conv = xr_conversation(j, hub, j, &e);
      check_tree(conv, &e);
      cJSON_Delete(conv);
    }
    cJSON_Delete(hub);
    /* as a hub answer (the document also as the request) */
    memset(&e, 0, sizeof e);
    cJSON *r = xr_hub_resp_to_responses(j, j, &e);
    check_tree(r, &e);
    if (r) output_as_input(r);
    cJSON_Delete(r);
    cJSON *eb = xr_error_body(&e);
    CHECK(eb);
    cJSON_Delete(eb);
  }

  /* line by line as hub stream event data */
  xr_enc enc;
  xr_enc_opts o = {.req = j, .created = 1, .model = size % 3 ? "m" : NULL, .id = size % 5 ? NULL : "chatcmpl-x"};
  CHECK(xr_enc_init(&enc, &o) == 0);
  st s = {0, 0, 0};
  size_t a = 0;
  int failed = 0;
  while (a < size) {
    const char *nlp = memchr(t + a, '\n', size - a);
    size_t b = nlp ? (size_t)(nlp - t) : size;
    memset(&e, 0, sizeof e);
    int rc = xr_enc_data(&enc, t + a, b - a, on_event, &s, &e);
    if (rc) {
      CHECK(rc == -1 && e.status >= 400 && e.status <= 599);
      failed = 1;
      break;
    }
    a = b + 1;
  }
  memset(&e, 0, sizeof e);
  if (failed && size % 2) CHECK(xr_enc_error(&enc, 502, e.msg, on_event, &s, &e) == 0);
  memset(&e, 0, sizeof e);
  CHECK(xr_enc_finish(&enc, on_event, &s, &e) == 0);
  CHECK(s.done && xr_enc_response(&enc));
  check_tree((cJSON *)xr_enc_response(&enc), &e);
  memset(&e, 0, sizeof e);
  cJSON *hr = xr_enc_hub_response(&enc, &e);
  CHECK(hr);
  cJSON *r2 = xr_hub_resp_to_responses(hr, j, &e);
  CHECK(r2);
  output_as_input(r2);
  cJSON_Delete(r2);
  cJSON_Delete(hr);
  xr_enc_free(&enc);
  cJSON_Delete(j);
  return 0;
}
