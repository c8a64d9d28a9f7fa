/* responses_state.c - conversation state for the OpenAI Responses API on routes whose provider
 * does not keep it (every provider but OpenAI itself): `previous_response_id` works through aigw.
 *
 * After each answer (non-stream: the response body; stream: the response.completed event) the
 * conversation so far - the request's input items plus the answer's output items, which the
 * Responses API accepts back as input items - is written to the host store under the response id
 * (TTL `ttl_s`, default 30 days; skipped when the request says "store": false or the conversation
 * is larger than `max_bytes`). A request with previous_response_id is paused while the stored
 * items are read, then rewritten into a self-contained request: input = stored items + its own
 * input. As in OpenAI, `instructions` do not carry over. An unknown or expired id is a 400.
 *
 * The store is the host's (in-process, or Redis when configured), so state is shared by all
 * workers and nodes. The rewritten request has no previous_response_id (so a provider that keeps
 * state itself, OpenAI, does not apply it twice); meta "responses_state.previous_response_id"
 * keeps it for the answer's echo.
 * The instance is immutable after create; per-request state lives in rctx (freed in on_done). */
#include <aigw/plugin.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const aigw_host *H;

typedef struct rs_inst {
  uint64_t ttl_ms;
  size_t max_bytes;
} rs_inst;

typedef struct rs_ctx {
  cJSON *req;   /* the client's request (owned) while a previous conversation is loaded */
  cJSON *items; /* the conversation's input items so far (owned); NULL: do not store */
  int saved;
} rs_ctx;

#define KEY_PREFIX "responses_state:"

static void *rs_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d) {
  (void)h;
  double ttl = 30.0 * 86400, maxb = 4.0 * 1024 * 1024;
  int bad = 0;
  for (size_t i = 0; cfg && i < H->json_len(cfg); i++) {
    aigw_str k;
    if (H->json_key_at(cfg, i, &k) != AIGW_OK) continue;
    if (!(k.n == 5 && !memcmp(k.p, "ttl_s", 5)) && !(k.n == 9 && !memcmp(k.p, "max_bytes", 9))) {
      H->diag_error(d, "", "unknown option '%.*s' (known: ttl_s, max_bytes)", (int)(k.n > 64 ? 64 : k.n), k.p);
      bad = 1;
    }
  }
  const aigw_json *v;
  if (cfg && (v = H->json_get(cfg, "ttl_s")) && (H->json_num(v, &ttl) != AIGW_OK || ttl < 1 || ttl > 365.0 * 86400)) {
    H->diag_error(d, "/ttl_s", "must be a number of seconds between 1 and 31536000");
    bad = 1;
  }
  if (cfg && (v = H->json_get(cfg, "max_bytes")) && (H->json_num(v, &maxb) != AIGW_OK || maxb < 1024 || maxb > 64.0 * 1024 * 1024)) {
    H->diag_error(d, "/max_bytes", "must be between 1024 and 67108864");
    bad = 1;
  }
  if (bad) return NULL;
  rs_inst *in = H->alloc(sizeof *in);
  if (!in) {
    H->diag_error(d, "", "out of memory");
    return NULL;
  }
  in->ttl_ms = (uint64_t)(ttl * 1000);
  in->max_bytes = (size_t)maxb;
  return in;
}

static void rs_destroy(void *vi) { H->free(vi); }

/* The request's input as a list of items: a string becomes one user message. New array. */
static cJSON *input_items(const cJSON *req) {
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(req, "input");
  if (cJSON_IsArray(in)) return cJSON_Duplicate(in, 1);
  cJSON *arr = cJSON_CreateArray();
  if (arr && cJSON_IsString(in)) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", in->valuestring);
    cJSON_AddItemToArray(arr, m);
  }
  return arr;
}

static int wants_store(const cJSON *req) {
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(req, "store");
  return !cJSON_IsFalse(st);
}

static void loaded(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud) {
  rs_ctx *x = ud;
  if (st == AIGW_CALL_CANCELLED) return; /* rctx trees are freed in on_done */
  const cJSON *pid = cJSON_GetObjectItemCaseSensitive(x->req, "previous_response_id");
  if (st != AIGW_CALL_OK) {
    char msg[300];
    snprintf(msg, sizeof msg, "Previous response with id '%.160s' not found (unknown, expired, or stored with \"store\": false).",
             cJSON_IsString(pid) ? pid->valuestring : "");
    H->respond_error(r, 400, "invalid_request_error", msg);
    H->resume(r, AIGW_STOP);
    return;
  }
  aigw_str v = {0};
  H->call_body(c, &v);
  cJSON *stored = v.n ? cJSON_ParseWithLength(v.p, v.n) : NULL;
  cJSON *mine = input_items(x->req);
  if (!cJSON_IsArray(stored) || !mine) {
    cJSON_Delete(stored);
    cJSON_Delete(mine);
    H->respond_error(r, 500, "server_error", "the stored conversation for previous_response_id is unreadable");
    H->resume(r, AIGW_STOP);
    return;
  }
  cJSON *it;
  while ((it = cJSON_DetachItemFromArray(mine, 0))) cJSON_AddItemToArray(stored, it);
  cJSON_Delete(mine);
  cJSON_DeleteItemFromObjectCaseSensitive(x->req, "input");
  cJSON_AddItemToObject(x->req, "input", stored);
  /* self-contained now: the id only comes back in the answer's echo (meta, read by ingress), and
   * a provider that keeps state itself (OpenAI) does not see it twice */
  if (cJSON_IsString(pid)) H->meta_set(r, "responses_state.previous_response_id", (aigw_str){pid->valuestring, strlen(pid->valuestring)});
  cJSON_DeleteItemFromObjectCaseSensitive(x->req, "previous_response_id");
  char *txt = cJSON_PrintUnformatted(x->req);
  int ok = txt && H->set_body(r, AIGW_CLIENT_REQUEST, (aigw_str){txt, strlen(txt)}) == AIGW_OK;
  free(txt);
  if (ok && wants_store(x->req)) x->items = cJSON_Duplicate(stored, 1);
  cJSON_Delete(x->req);
  x->req = NULL;
  H->resume(r, ok ? AIGW_CONTINUE : AIGW_ERROR);
}

static aigw_status rs_on_request(void *vi, aigw_req *r, void **rctx) {
  (void)vi;
  if (H->api(r) != AIGW_API_RESPONSES) return AIGW_CONTINUE;
  aigw_str raw = {0};
  if (H->body_raw(r, AIGW_CLIENT_REQUEST, &raw) != AIGW_OK || !raw.n) return AIGW_CONTINUE;
  cJSON *req = cJSON_ParseWithLength(raw.p, raw.n);
  if (!cJSON_IsObject(req)) {
    cJSON_Delete(req);
    return AIGW_CONTINUE; /* the ingress answers the 400 */
  }
  rs_ctx *x = calloc(1, sizeof *x);
  if (!x) {
    cJSON_Delete(req);
    return AIGW_ERROR;
  }
  *rctx = x;
  const cJSON *pid = cJSON_GetObjectItemCaseSensitive(req, "previous_response_id");
  if (cJSON_IsString(pid) && pid->valuestring[0]) {
    char key[256];
    int kn = snprintf(key, sizeof key, KEY_PREFIX "%s", pid->valuestring);
    if (kn < 0 || (size_t)kn >= sizeof key) {
      cJSON_Delete(req);
      H->respond_error(r, 400, "invalid_request_error", "previous_response_id is too long");
      return AIGW_STOP;
    }
    x->req = req;
    if (!H->store_get(r, (aigw_str){key, (size_t)kn}, loaded, x)) {
      H->respond_error(r, 503, "server_error", "the conversation store is unavailable");
      return AIGW_STOP;
    }
    return AIGW_PAUSE;
  }
  if (wants_store(req)) x->items = input_items(req);
  cJSON_Delete(req);
  return AIGW_CONTINUE;
}

static void saved(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud) {
  (void)c;
  (void)ud;
  if (st == AIGW_CALL_ERROR) H->log(r, AIGW_LOG_WARN, "could not store the conversation for previous_response_id");
}

/* Store items + the response's output items under the response id. */
static void save(rs_inst *in, aigw_req *r, rs_ctx *x, const cJSON *resp) {
  if (!x || !x->items || x->saved) return;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(resp, "id");
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(resp, "status");
  if (!cJSON_IsString(id) || (cJSON_IsString(st) && !strcmp(st->valuestring, "failed"))) return;
  x->saved = 1;
  cJSON *all = cJSON_Duplicate(x->items, 1), *it;
  cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(resp, "output")) cJSON_AddItemToArray(all, cJSON_Duplicate(it, 1));
  char *txt = all ? cJSON_PrintUnformatted(all) : NULL;
  cJSON_Delete(all);
  if (!txt) return;
  size_t n = strlen(txt);
  if (n > in->max_bytes) {
    H->log(r, AIGW_LOG_WARN, "conversation of %zu bytes not stored (max_bytes %zu): previous_response_id will not find it", n, in->max_bytes);
  } else {
    char key[256];
    int kn = snprintf(key, sizeof key, KEY_PREFIX "%s", id->valuestring);
    if (kn > 0 && (size_t)kn < sizeof key) H->store_set(r, (aigw_str){key, (size_t)kn}, (aigw_str){txt, n}, in->ttl_ms, saved, NULL);
  }
  free(txt);
}

static aigw_status rs_on_response(void *vi, aigw_req *r, void **rctx) {
  rs_ctx *x = rctx ? *rctx : NULL;
  if (!x || !x->items || H->status(r, AIGW_CLIENT_RESPONSE) != 200) return AIGW_CONTINUE;
  aigw_str raw = {0};
  if (H->body_raw(r, AIGW_CLIENT_RESPONSE, &raw) != AIGW_OK || !raw.n) return AIGW_CONTINUE;
  cJSON *resp = cJSON_ParseWithLength(raw.p, raw.n);
  if (cJSON_IsObject(resp)) save(vi, r, x, resp);
  cJSON_Delete(resp);
  return AIGW_CONTINUE;
}

static aigw_status rs_on_event(void *vi, aigw_req *r, void **rctx, aigw_event *ev) {
  rs_ctx *x = rctx ? *rctx : NULL;
  if (!x || !x->items || H->event_kind(ev) != AIGW_EV_DONE) return AIGW_CONTINUE;
  aigw_str name = {0};
  H->event_name(ev, &name);
  if (!(name.n == 18 && !memcmp(name.p, "response.completed", 18)) && !(name.n == 19 && !memcmp(name.p, "response.incomplete", 19)))
    return AIGW_CONTINUE;
  aigw_str d = {0};
  H->event_data(ev, &d);
  cJSON *e = d.n ? cJSON_ParseWithLength(d.p, d.n) : NULL;
  const cJSON *resp = cJSON_GetObjectItemCaseSensitive(e, "response");
  if (cJSON_IsObject(resp)) save(vi, r, x, resp);
  cJSON_Delete(e);
  return AIGW_CONTINUE;
}

static void rs_on_done(void *vi, aigw_req *r, void *rctx) {
  (void)vi;
  (void)r;
  rs_ctx *x = rctx;
  if (!x) return;
  cJSON_Delete(x->req);
  cJSON_Delete(x->items);
  free(x);
}

static const aigw_plugin rs_plugin = {
    AIGW_PLUGIN_HEADER,
    .name = "responses_state",
    .version = "0.1.0",
    .priority = 900, /* early: later plugins see the self-contained request */
    .flags = AIGW_WANTS_EVENTS,
    .create = rs_create,
    .destroy = rs_destroy,
    .on_request = rs_on_request,
    .on_response = rs_on_response,
    .on_event = rs_on_event,
    .on_done = rs_on_done,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  if (!h || h->abi_major != AIGW_ABI_MAJOR) {
    snprintf(err, errlen, "responses_state: host ABI major %u, plugin built for %d", h ? (unsigned)h->abi_major : 0u, AIGW_ABI_MAJOR);
    return NULL;
  }
  H = h;
  return &rs_plugin;
}
