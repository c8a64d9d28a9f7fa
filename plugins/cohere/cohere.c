/* cohere.c - provider adapter for Cohere's v2 API (chat and embed).
 *
 * Cohere speaks its own format, so every request goes through the hub (plugins/common/
 * xlate_cohere.h): OpenAI chat clients (route api "chat") and Anthropic messages clients (api
 * "messages", via ingress.h) -> POST /v2/chat; OpenAI embeddings clients (api "embeddings") ->
 * POST /v2/embed. Answers, streams and errors come back in the client's own format.
 * Passthrough routes: base_url + the client's path (method, query, body untouched) with the
 * provider's Bearer key; Anthropic's /v1/messages/count_tokens is a 400 in Anthropic's shape
 * (Cohere has no token-counting endpoint for a conversation).
 *
 * Config: api_key (sent as Authorization: Bearer), base_url (default https://api.cohere.com),
 * embed_input_type (Cohere input_type for embeddings when the request names none; default
 * "search_document"). The instance (which also holds the host table, so the plugin has no
 * globals) is immutable after create; the key is never logged.
 *
 * Streams: each Cohere SSE event is decoded into hub chunks and re-emitted in the client's format
 * with h->provider_emit (the upstream event is dropped); message-end closes the client's stream
 * at once, on_stream_end closes it (or reports a cut stream) when message-end never came.
 *
 * OWNERSHIP: the per-request context is request memory (h->req_alloc); the decoder and the
 * ingress encoder it holds own heap memory freed in on_done. */
#include <aigw/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingress.h"
#include "xlate_cohere.h"

typedef struct co_inst {
  const aigw_host *H;
  char *base_url; /* no trailing '/' */
  size_t base_len;
  char *api_key;  /* NULL: none */
  char *input_type;
} co_inst;

typedef struct co_rctx {
  aigw_api api;
  int base64;      /* embeddings: the client asked for base64 */
  char model[160]; /* the model sent upstream */
  int dec_init, st_init;
  xc_dec dec;    /* Cohere events -> hub chunks */
  ing_stream st; /* hub chunks -> client events */
} co_rctx;



static char *dup_n(const aigw_host *H, const char *p, size_t n) {
  char *s = H->alloc(n + 1);
  if (s) {
    memcpy(s, p, n);
    s[n] = 0;
  }
  return s;
}

static void co_destroy(void *vi) {
  co_inst *in = vi;
  if (!in) return;
  const aigw_host *H = in->H;
  H->free(in->base_url);
  H->free(in->api_key);
  H->free(in->input_type);
  H->free(in);
}

static void *co_create(const aigw_host *H, const aigw_json *cfg, aigw_diag *d) {
  int bad = 0;
  aigw_str base = AIGW_STR("https://api.cohere.com"), key = {0}, itype = AIGW_STR("search_document");
  const aigw_json *v;
  if (cfg && H->json_type(cfg) != AIGW_JSON_OBJECT) {
    H->diag_error(d, "", "provider cohere: config must be an object");
    return NULL;
  }
  for (size_t i = 0; cfg && i < H->json_len(cfg); i++) {
    aigw_str k;
    if (H->json_key_at(cfg, i, &k) != AIGW_OK) continue;
    if (!pc_str_eq(k, "base_url") && !pc_str_eq(k, "api_key") && !pc_str_eq(k, "embed_input_type")) {
      char ptr[128];
      snprintf(ptr, sizeof ptr, "/%.*s", (int)(k.n > 100 ? 100 : k.n), k.p);
      H->diag_error(d, ptr, "unknown option (known: base_url, api_key, embed_input_type)");
      bad = 1;
    }
  }
  if (cfg && (v = H->json_get(cfg, "base_url"))) {
    if (H->json_str(v, &base) != AIGW_OK ||
        !((base.n > 8 && !memcmp(base.p, "https://", 8)) || (base.n > 7 && !memcmp(base.p, "http://", 7))) ||
        pc_has_ctl(base) || memchr(base.p, ' ', base.n) || memchr(base.p, '?', base.n)) {
      H->diag_error(d, "/base_url", "must be an http:// or https:// URL without query, e.g. \"https://api.cohere.com\"");
      bad = 1;
    }
    while (base.n && base.p[base.n - 1] == '/') base.n--;
  }
  if (cfg && (v = H->json_get(cfg, "api_key")) && (H->json_str(v, &key) != AIGW_OK || pc_has_ctl(key))) {
    H->diag_error(d, "/api_key", "must be a string without control characters");
    bad = 1;
  }
  if (cfg && (v = H->json_get(cfg, "embed_input_type"))) {
    char buf[32] = "";
    if (H->json_str(v, &itype) == AIGW_OK && itype.n < sizeof buf) memcpy(buf, itype.p, itype.n);
    if (!xc_input_type_ok(buf)) {
      H->diag_error(d, "/embed_input_type", "must be one of search_document, search_query, classification, clustering, image");
      bad = 1;
    }
  }
  if (bad) return NULL;
  co_inst *in = H->alloc(sizeof *in);
  if (!in) goto nomem;
  memset(in, 0, sizeof *in);
  in->H = H;
  in->base_url = dup_n(H, base.p, base.n);
  in->base_len = base.n;
  in->api_key = key.n ? dup_n(H, key.p, key.n) : NULL;
  in->input_type = dup_n(H, itype.p, itype.n);
  if (!in->base_url || !in->input_type || (key.n && !in->api_key)) goto nomem;
  return in;
nomem:
  H->diag_error(d, "", "out of memory");
  co_destroy(in);
  return NULL;
}

/* ---- prepare ---- */

static int set_url(co_inst *in, aigw_req *r, const char *path) {
  const aigw_host *H = in->H;
  size_t pn = strlen(path);
  char *url = H->req_alloc(r, in->base_len + pn + 1);
  if (!url) return -1;
  memcpy(url, in->base_url, in->base_len);
  memcpy(url + in->base_len, path, pn + 1);
  return H->set_upstream_url(r, (aigw_str){url, in->base_len + pn}) == AIGW_OK ? 0 : -1;
}

static int set_json_body(const aigw_host *H, aigw_req *r, aigw_which which, const cJSON *j) {
  char *txt = cJSON_PrintUnformatted(j);
  if (!txt) return -1;
  int rc = H->set_body(r, which, (aigw_str){txt, strlen(txt)});
  free(txt);
  return rc == AIGW_OK ? 0 : -1;
}

/* The client's embeddings request with the route's model applied; NULL + a 400 answered. */
static cJSON *embed_request(const aigw_host *H, aigw_req *r) {
  aigw_str raw = {0}, tm = {0};
  cJSON *in = NULL;
  if (H->body_raw(r, AIGW_UPSTREAM_REQUEST, &raw) == AIGW_OK && raw.n) in = cJSON_ParseWithLength(raw.p, raw.n);
  if (!cJSON_IsObject(in)) {
    cJSON_Delete(in);
    ing_error(H, r, 400, NULL, "the embeddings request body must be a JSON object");
    return NULL;
  }
  if (H->meta_get(r, "aigw.target_model", &tm) == AIGW_OK && tm.n) {
    char *m = malloc(tm.n + 1);
    cJSON *v = NULL;
    if (m) {
      memcpy(m, tm.p, tm.n);
      m[tm.n] = 0;
      v = cJSON_CreateString(m);
      free(m);
    }
    if (!v) {
      cJSON_Delete(in);
      return NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(in, "model");
    cJSON_AddItemToObject(in, "model", v);
  }
  return in;
}

/* ---- passthrough routes ---- */

/* The request path (query ignored) is Anthropic's count_tokens. */
static int is_count_tokens(const aigw_host *H, aigw_req *r) {
  aigw_str p;
  if (H->path(r, &p) != AIGW_OK) return 0;
  const char *q = memchr(p.p, '?', p.n);
  size_t n = q ? (size_t)(q - p.p) : p.n;
  static const char suf[] = "/messages/count_tokens";
  return n >= sizeof suf - 1 && !memcmp(p.p + n - (sizeof suf - 1), suf, sizeof suf - 1);
}

/* An error in Anthropic's shape (the route's api is passthrough: respond_error would use OpenAI's). */
static void anth_error(const aigw_host *H, aigw_req *r, int status, const char *msg) {
  cJSON *e = xl_error_to_anth(status, msg);
  char *txt = e ? cJSON_PrintUnformatted(e) : NULL;
  cJSON_Delete(e);
  if (txt) H->respond(r, status, AIGW_STR("application/json"), (aigw_str){txt, strlen(txt)});
  else H->respond_error(r, 500, "api_error", "out of memory");
  free(txt);
}

static int set_bearer(co_inst *in, aigw_req *r) {
  const aigw_host *H = in->H;
  aigw_str own = pc_credential(H, r); /* the request's own key (bring your own key), else ours */
  if (!own.n && !in->api_key) return 0;
  const char *key = own.n ? own.p : in->api_key;
  size_t kn = own.n ? own.n : strlen(in->api_key);
  char *hv = H->req_alloc(r, kn + 8);
  if (!hv) return -1;
  memcpy(hv, "Bearer ", 7);
  memcpy(hv + 7, key, kn);
  return H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("authorization"), (aigw_str){hv, kn + 7}) == AIGW_OK ? 0 : -1;
}

/* Anthropic count_tokens: Cohere's v2 chat API has no token-counting endpoint (its /v1/tokenize
 * tokenizes one text, not a conversation with tools), so the client gets a clear 400 instead of
 * a guess. Any other path: base_url + the client's path and query, method and body untouched,
 * with the provider's key. */
static aigw_status co_prepare_pass(co_inst *in, aigw_req *r, co_rctx *ctx) {
  const aigw_host *H = in->H;
  if (is_count_tokens(H, r)) {
    anth_error(H, r, 400,
               "count_tokens is not available for provider cohere: Cohere's v2 API has no token-counting endpoint for a "
               "conversation; route /v1/messages/count_tokens to anthropic or gemini");
    return AIGW_STOP;
  }
  aigw_str p;
  if (H->path(r, &p) != AIGW_OK || !p.n || p.p[0] != '/') return AIGW_ERROR;
  char *url = H->req_alloc(r, in->base_len + p.n + 1);
  if (!url) return AIGW_ERROR;
  memcpy(url, in->base_url, in->base_len);
  memcpy(url + in->base_len, p.p, p.n);
  url[in->base_len + p.n] = 0;
  if (H->set_upstream_url(r, (aigw_str){url, in->base_len + p.n}) != AIGW_OK || set_bearer(in, r) < 0) return AIGW_ERROR;
  ctx->api = AIGW_API_PASSTHROUGH;
  return AIGW_CONTINUE;
}

static aigw_status co_prepare(void *vi, aigw_req *r, void **rctx) {
  co_inst *in = vi;
  const aigw_host *H = in->H;
  aigw_api api = H->api(r);
  if (api == AIGW_API_PASSTHROUGH) {
    co_rctx *pc = H->req_alloc(r, sizeof *pc);
    if (!pc) return AIGW_ERROR;
    *rctx = pc;
    return co_prepare_pass(in, r, pc);
  }
  if (api != AIGW_API_CHAT && api != AIGW_API_MESSAGES && api != AIGW_API_RESPONSES && api != AIGW_API_EMBEDDINGS) {
    H->respond_error(r, 400, "invalid_request_error",
                     "this API is not supported by provider cohere (chat, messages, responses, embeddings and passthrough are)");
    return AIGW_STOP;
  }
  co_rctx *ctx = H->req_alloc(r, sizeof *ctx);
  if (!ctx) return AIGW_ERROR;
  ctx->api = api;
  *rctx = ctx;
  if (set_url(in, r, api == AIGW_API_EMBEDDINGS ? "/v2/embed" : "/v2/chat") < 0) return AIGW_ERROR;
  if (set_bearer(in, r) < 0) return AIGW_ERROR;
  /* headers of other formats that mean nothing to Cohere */
  H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("anthropic-version"), (aigw_str){NULL, 0});
  H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("anthropic-beta"), (aigw_str){NULL, 0});

  pc_err e = {0};
  cJSON *out = NULL;
  if (api == AIGW_API_EMBEDDINGS) {
    cJSON *oai = embed_request(H, r);
    if (!oai) return AIGW_STOP;
    out = xc_embed_req_from_openai(oai, in->input_type, &ctx->base64, &e);
    cJSON_Delete(oai);
  } else {
    cJSON *hub = ing_hub_request(H, r, &e);
    out = hub ? xc_req_from_hub(hub, &e) : NULL;
    cJSON_Delete(hub);
  }
  if (!out) {
    ing_error(H, r, e.status ? e.status : 400, NULL, e.msg[0] ? e.msg : "the request cannot be translated for cohere");
    return AIGW_STOP;
  }
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(out, "model");
  if (cJSON_IsString(m)) snprintf(ctx->model, sizeof ctx->model, "%s", m->valuestring);
  int rc = set_json_body(H, r, AIGW_UPSTREAM_REQUEST, out);
  cJSON_Delete(out);
  if (rc < 0) return AIGW_ERROR;
  if (api != AIGW_API_EMBEDDINGS && H->is_stream(r)) {
    H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("accept"), AIGW_STR("text/event-stream"));
    xc_dec_init(&ctx->dec, ctx->model, (long long)time(NULL));
    ctx->dec_init = 1;
    ing_stream_init(H, r, &ctx->st);
    ctx->st_init = 1;
  }
  return AIGW_CONTINUE;
}

/* ---- responses ---- */

static void upstream_error(const aigw_host *H, aigw_req *r, int st, aigw_str raw) {
  pc_err e = {0};
  xc_error_from_upstream(st, raw.p, raw.n, &e);
  ing_error(H, r, e.status, e.param, e.msg);
}

static aigw_status co_on_response(void *vi, aigw_req *r, void **rctx) {
  co_inst *in = vi;
  const aigw_host *H = in->H;
  co_rctx *ctx = rctx ? *rctx : NULL;
  if (!ctx || ctx->api == AIGW_API_PASSTHROUGH) return AIGW_CONTINUE; /* passthrough: untouched */
  int st = H->status(r, AIGW_UPSTREAM_RESPONSE);
  aigw_str raw = {0};
  H->body_raw(r, AIGW_UPSTREAM_RESPONSE, &raw);
  if (st < 200 || st > 299) {
    upstream_error(H, r, st, raw);
    return AIGW_STOP;
  }
  cJSON *co = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  pc_err e = {0};
  if (!cJSON_IsObject(co)) {
    cJSON_Delete(co);
    ing_error(H, r, 502, "upstream_error", "provider cohere answered 2xx with a body that is not a JSON object");
    return AIGW_STOP;
  }
  if (ctx->api == AIGW_API_EMBEDDINGS) {
    cJSON *oai = xc_embed_resp_to_openai(co, ctx->model, ctx->base64, &e);
    cJSON_Delete(co);
    if (!oai) {
      ing_error(H, r, e.status ? e.status : 502, "upstream_error", e.msg);
      return AIGW_STOP;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(oai, "usage");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
    aigw_usage us = {sizeof(aigw_usage), cJSON_IsNumber(pt) ? (int64_t)pt->valuedouble : -1, 0, -1, -1, -1};
    H->set_usage(r, &us);
    int rc = set_json_body(H, r, AIGW_UPSTREAM_RESPONSE, oai);
    cJSON_Delete(oai);
    return rc == 0 ? AIGW_CONTINUE : AIGW_ERROR;
  }
  cJSON *hub = xc_resp_to_hub(co, ctx->model, (long long)time(NULL), &e);
  cJSON_Delete(co);
  if (!hub) {
    ing_error(H, r, e.status ? e.status : 502, "upstream_error", e.msg[0] ? e.msg : "provider cohere answered with something that is not a chat response");
    return AIGW_STOP;
  }
  return ing_answer_hub(H, r, hub);
}

/* ---- streams ---- */


static aigw_status co_on_event(void *vi, aigw_req *r, void **rctx, aigw_event *ev) {
  co_inst *in = vi;
  const aigw_host *H = in->H;
  co_rctx *ctx = rctx ? *rctx : NULL;
  if (ctx && ctx->api == AIGW_API_PASSTHROUGH) {
    /* a passed-through chat stream: message-end is its end marker */
    aigw_str name = {0}, data = {0};
    H->event_name(ev, &name);
    H->event_data(ev, &data);
    if (pc_str_eq(name, "message-end") || (data.n && memmem(data.p, data.n, "\"message-end\"", 13)))
      H->event_set_kind(ev, AIGW_EV_DONE);
    return AIGW_CONTINUE;
  }
  if (!ctx || !ctx->dec_init) return AIGW_CONTINUE;
  if (ctx->st.done) return AIGW_DROP;
  aigw_str name = {0}, data = {0};
  H->event_name(ev, &name);
  H->event_data(ev, &data);
  char nm[64] = "";
  if (name.n && name.n < sizeof nm) {
    memcpy(nm, name.p, name.n);
    nm[name.n] = 0;
  }
  ing_fwd f = {H, r, &ctx->st};
  pc_err e = {0};
  int rc = xc_dec_event(&ctx->dec, nm[0] ? nm : NULL, data.p ? data.p : "", data.n, ing_fwd_chunk, &f, &e);
  if (rc == XC_EUPSTREAM || rc < 0) {
    ing_stream_error(H, r, &ctx->st, e.status ? e.status : 502, e.msg[0] ? e.msg : "provider cohere sent a broken stream");
  } else if (ctx->dec.done) {
    ing_stream_end(H, r, &ctx->st);
  }
  return AIGW_DROP;
}

static aigw_status co_on_stream_end(void *vi, aigw_req *r, void **rctx) {
  co_inst *in = vi;
  const aigw_host *H = in->H;
  co_rctx *ctx = rctx ? *rctx : NULL;
  if (!ctx || !ctx->dec_init || ctx->st.done) return AIGW_CONTINUE;
  pc_err e = {0};
  if (xc_dec_finish(&ctx->dec, &e) < 0) ing_stream_error(H, r, &ctx->st, 502, e.msg);
  else ing_stream_end(H, r, &ctx->st);
  return AIGW_CONTINUE;
}

static void co_on_done(void *vi, aigw_req *r, void *rctx) {
  (void)vi;
  (void)r;
  co_rctx *ctx = rctx;
  if (!ctx) return;
  if (ctx->dec_init) xc_dec_free(&ctx->dec);
  if (ctx->st_init) ing_stream_free(&ctx->st);
  ctx->dec_init = ctx->st_init = 0;
}

static const aigw_provider co_provider = {
    .struct_size = sizeof(aigw_provider),
    .wire_format = "cohere",
    .prepare = co_prepare,
    .on_response = co_on_response,
    .on_event = co_on_event,
    .on_stream_end = co_on_stream_end,
};

static const aigw_plugin co_plugin = {
    AIGW_PLUGIN_HEADER,
    .name = "cohere",
    .version = "0.1.0",
    .flags = AIGW_IS_PROVIDER,
    .create = co_create,
    .destroy = co_destroy,
    .on_done = co_on_done,
    .provider = &co_provider,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  if (!h || h->abi_major != AIGW_ABI_MAJOR) {
    snprintf(err, errlen, "cohere: host ABI major %u, plugin built for %d", h ? (unsigned)h->abi_major : 0u, AIGW_ABI_MAJOR);
    return NULL;
  }
  if (!AIGW_HAS(h, provider_emit)) {
    snprintf(err, errlen, "cohere: the host lacks provider_emit (needs a newer aigw)");
    return NULL;
  }
  return &co_plugin;
}
