/* fuzz_xlate_cohere.c - hub <-> Cohere v2 translation (xlate_cohere.h) on arbitrary input. The
 * first byte picks the path: 0 chat request (hub JSON -> Cohere), 1 chat response (Cohere JSON
 * -> hub), 2 stream (lines "event-name<TAB>data", fed in order, then the end check), 3 embeddings
 * request (OpenAI JSON -> Cohere), 4 embeddings response (Cohere JSON -> OpenAI, float and
 * base64), 5 error mapping ("status<TAB>body"). Invariants: a NULL result comes with err status
 * 400/500/502 and a message; a result is a JSON object that prints and re-parses; chunks are
 * objects with id and choices; stream results are 0, -1 (err set) or XC_EUPSTREAM (err set). */
#include "xlate_cohere.h"

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
  int mode = data[0] % 6;
  const char *in = (const char *)data + 1;
  size_t n = size - 1;
  pc_err e;
  memset(&e, 0, sizeof e);
  if (mode == 0 || mode == 1 || mode == 3 || mode == 4) {
    cJSON *j = cJSON_ParseWithLength(in, n);
    cJSON *out = NULL, *out2 = NULL;
    int b64 = 0;
    if (mode == 0) out = xc_req_from_hub(j, &e);
    else if (mode == 1) out = xc_resp_to_hub(j, "m", 1, &e);
    else if (mode == 3) out = xc_embed_req_from_openai(j, NULL, &b64, &e);
    else {
      out = xc_embed_resp_to_openai(j, "m", 0, &e);
      pc_err e2;
      memset(&e2, 0, sizeof e2);
      out2 = xc_embed_resp_to_openai(j, NULL, 1, &e2);
      CHECK(!out == !out2);
      if (out2) check_tree(out2);
    }
    if (out) check_tree(out);
    else check_err(&e, 400, 502);
    cJSON_Delete(out);
    cJSON_Delete(out2);
    cJSON_Delete(j);
  } else if (mode == 2) {
    xc_dec d;
    size_t chunks = 0;
    xc_dec_init(&d, "command", 0);
    const char *p = in, *end = in + n;
    int rc = 0;
    while (p < end && !rc) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      const char *le = nl ? nl : end;
      const char *tab = memchr(p, '\t', (size_t)(le - p));
      char name[64] = "";
      const char *dp = p;
      if (tab && tab - p < 64) {
        memcpy(name, p, (size_t)(tab - p));
        name[tab - p] = 0;
        dp = tab + 1;
      }
      memset(&e, 0, sizeof e);
      rc = xc_dec_event(&d, name[0] ? name : NULL, dp, (size_t)(le - dp), on_chunk, &chunks, &e);
      CHECK(rc == 0 || rc == -1 || rc == XC_EUPSTREAM);
      if (rc) check_err(&e, 400, 599);
      p = nl ? nl + 1 : end;
    }
    if (!rc) {
      memset(&e, 0, sizeof e);
      if (xc_dec_finish(&d, &e) < 0) check_err(&e, 502, 502);
      else CHECK(d.done);
    }
    xc_dec_free(&d);
  } else {
    const char *tab = memchr(in, '\t', n);
    int status = 0;
    for (const char *q = in; q < (tab ? tab : in + n) && q < in + 4; q++)
      if (*q >= '0' && *q <= '9') status = status * 10 + (*q - '0');
    const char *body = tab ? tab + 1 : in;
    size_t bn = tab ? (size_t)(in + n - body) : n;
    xc_error_from_upstream(status, body, bn, &e);
    CHECK(e.status >= 400 && e.status <= 599);
    CHECK(e.msg[0] && e.param[0]);
  }
  return 0;
}
