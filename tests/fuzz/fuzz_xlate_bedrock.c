/* fuzz_xlate_bedrock.c - hub <-> Bedrock Converse translation on arbitrary input. The first byte
 * picks the path: 0 request (hub JSON -> Converse), 1 response (Converse JSON -> hub), 2 stream
 * from raw event-stream bytes (fed in two pieces at a data-chosen cut), 3 stream from lines
 * "eventType<TAB>json", 4 error mapping ("ErrorType<TAB>body"). Invariants: a NULL result comes
 * with err status 400/500/502 and a message; a result is a JSON object that prints and re-parses;
 * chunks are objects with id and choices; stream results are 0, -1 (err set) or XB_EUPSTREAM
 * (err set, 4xx/5xx). */
#include "aws_eventstream.h"
#include "xlate_bedrock.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void check_tree(const cJSON *j)
{
  CHECK(cJSON_IsObject(j));
  char *s = cJSON_PrintUnformatted(j);
  CHECK(s);
  cJSON *back = cJSON_Parse(s);
  CHECK(back);
  cJSON_Delete(back);
  free(s);
}

static int on_chunk(void *ud, const cJSON *chunk)
{
  size_t *n = ud;
  check_tree(chunk);
  CHECK(cJSON_IsString(cJSON_GetObjectItem(chunk, "id")));
  CHECK(cJSON_IsArray(cJSON_GetObjectItem(chunk, "choices")));
  (*n)++;
  return 0;
}

static void check_err(const pc_err *e, int lo, int hi)
{
  CHECK(e->status >= lo && e->status <= hi);
  CHECK(e->msg[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2) return 0;
  int mode = data[0] % 5;
  const char *in = (const char *)data + 1;
  size_t n = size - 1;
  pc_err e;
  memset(&e, 0, sizeof e);
  if (mode == 0 || mode == 1) {
    cJSON *j = cJSON_ParseWithLength(in, n);
    cJSON *out = mode == 0 ? xb_req_from_hub(j, &e) : xb_resp_to_hub(j, "id", "m", 1, &e);
    if (out) check_tree(out);
    else check_err(&e, 400, 502);
    cJSON_Delete(out);
    cJSON_Delete(j);
  } else if (mode == 2) {
    if (n < 1) return 0;
    size_t cut = (n - 1) * (uint8_t)in[0] / 255;
    xb_stream st;
    size_t chunks = 0;
    xb_stream_init(&st, NULL, NULL, 0);
    int rc = xb_stream_feed(&st, in + 1, cut, on_chunk, &chunks, &e);
    if (!rc) rc = xb_stream_feed(&st, in + 1 + cut, n - 1 - cut, on_chunk, &chunks, &e);
    CHECK(rc == 0 || rc == -1 || rc == XB_EUPSTREAM);
    if (rc) check_err(&e, 400, 599);
    else if (xb_stream_end(&st, &e) < 0) check_err(&e, 502, 502);
    xb_stream_free(&st);
  } else if (mode == 3) {
    xb_stream st;
    size_t chunks = 0;
    xb_stream_init(&st, "chatcmpl-x", "m", 0);
    const char *p = in, *end = in + n;
    while (p < end) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      const char *le = nl ? nl : end;
      const char *tab = memchr(p, '\t', (size_t)(le - p));
      if (tab && tab - p < 64) {
        char type[64];
        memcpy(type, p, (size_t)(tab - p));
        type[tab - p] = 0;
        int rc = xb_stream_event(&st, type, tab + 1, (size_t)(le - tab - 1), on_chunk, &chunks, &e);
        CHECK(rc == 0 || rc == -1 || rc == XB_EUPSTREAM);
        if (rc) {
          check_err(&e, 400, 599);
          break;
        }
      }
      p = le + 1;
    }
    xb_stream_free(&st);
  } else {
    const char *tab = memchr(in, '\t', n);
    char type[64] = "";
    if (tab && tab - in < 64) {
      memcpy(type, in, (size_t)(tab - in));
      type[tab - in] = 0;
    }
    const char *body = tab ? tab + 1 : in;
    char code[64];
    xb_error_from_upstream(400 + data[0] % 200, type, body, (size_t)(in + n - body), &e, code, sizeof code);
    check_err(&e, 400, 599);
    CHECK(e.param[0]);
  }
  return 0;
}
