/* anthropic.c - provider adapter for the Anthropic Messages API.
 *
 * Anthropic-format clients (route api "messages", and passthrough routes such as
 * /v1/messages/count_tokens) are forwarded without translation: the body goes out as received
 * (plugin edits and the route's model applied), anthropic-beta headers pass through, and the
 * adapter only reads usage. OpenAI-format clients (api "chat", "responses", "models") are
 * translated through the hub format (plugins/common/xlate.h, xlate_responses.h): request,
 * response, stream and errors.
 *
 * Config: base_url (default https://api.anthropic.com), api_key (sent as x-api-key),
 * version (anthropic-version when the client sent none; default 2023-06-01),
 * default_max_tokens (OpenAI clients that set no limit; default 4096), headers (extra headers).
 * The instance is immutable after create; the key is never logged. */
#include <aigw/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingress.h"

static const aigw_host *H;

typedef struct an_inst {
  char *base_url; /* no trailing '/' */
  size_t base_len;
  char *api_key;  /* NULL: none */
  char *version;
  int default_max_tokens;
  aigw_str *hdrs; /* name, value pairs */
  size_t nhdrs;
} an_inst;

typedef struct an_rctx {
  int translate;   /* OpenAI-format client */
  int dec_init, st_init;
  xl_anth_dec dec; /* Anthropic events -> hub chunks */
  ing_stream st;   /* hub chunks -> client events */
} an_rctx;

static char *dup_n(const char *p, size_t n) {
  char *s = H->alloc(n + 1);
  if (s) {
    memcpy(s, p, n);
    s[n] = 0;
  }
  return s;
}




static void an_destroy(void *vi) {
  an_inst *in = vi;
  if (!in) return;
  for (size_t i = 0; i < in->nhdrs * 2; i++) H->free((void *)in->hdrs[i].p);
  H->free(in->hdrs);
  H->free(in->base_url);
  H->free(in->api_key);
  H->free(in->version);
  H->free(in);
}

static void *an_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d) {
  (void)h;
  int bad = 0;
  aigw_str base = AIGW_STR("https://api.anthropic.com"), key = {0}, ver = AIGW_STR("2023-06-01");
  double mt = 4096;
  const aigw_json *v, *hdrs = NULL;
  if (cfg && H->json_type(cfg) != AIGW_JSON_OBJECT) {
    H->diag_error(d, "", "provider anthropic: config must be an object");
    return NULL;
  }
  for (size_t i = 0; cfg && i < H->json_len(cfg); i++) {
    aigw_str k;
    if (H->json_key_at(cfg, i, &k) != AIGW_OK) continue;
    if (!pc_str_eq(k, "base_url") && !pc_str_eq(k, "api_key") && !pc_str_eq(k, "version") &&
        !pc_str_eq(k, "default_max_tokens") && !pc_str_eq(k, "headers")) {
      char ptr[128];
      snprintf(ptr, sizeof ptr, "/%.*s", (int)(k.n > 100 ? 100 : k.n), k.p);
      H->diag_error(d, ptr, "unknown option (known: base_url, api_key, version, default_max_tokens, headers)");
      bad = 1;
    }
  }
  if (cfg && (v = H->json_get(cfg, "base_url"))) {
    if (H->json_str(v, &base) != AIGW_OK ||
        !((base.n > 8 && !memcmp(base.p, "https://", 8)) || (base.n > 7 && !memcmp(base.p, "http://", 7))) ||
        pc_has_ctl(base) || memchr(base.p, ' ', base.n) || memchr(base.p, '?', base.n)) {
      H->diag_error(d, "/base_url", "must be an http:// or https:// URL without query, e.g. \"https://api.anthropic.com\"");
      bad = 1;
    }
    while (base.n && base.p[base.n - 1] == '/') base.n--;
  }
  if (cfg && (v = H->json_get(cfg, "api_key")) && (H->json_str(v, &key) != AIGW_OK || pc_has_ctl(key))) {
    H->diag_error(d, "/api_key", "must be a string without control characters");
    bad = 1;
  }
  if (cfg && (v = H->json_get(cfg, "version")) && (H->json_str(v, &ver) != AIGW_OK || !ver.n || pc_has_ctl(ver))) {
    H->diag_error(d, "/version", "must be an anthropic-version string such as \"2023-06-01\"");
    bad = 1;
  }
  if (cfg && (v = H->json_get(cfg, "default_max_tokens")) &&
      (H->json_num(v, &mt) != AIGW_OK || mt < 1 || mt > 1000000 || mt != (double)(int)mt)) {
    H->diag_error(d, "/default_max_tokens", "must be an integer between 1 and 1000000");
    bad = 1;
  }
  if (cfg && (hdrs = H->json_get(cfg, "headers")) && H->json_type(hdrs) != AIGW_JSON_OBJECT) {
    H->diag_error(d, "/headers", "must be an object of header name -> string value");
    bad = 1;
    hdrs = NULL;
  }
  for (size_t i = 0; hdrs && i < H->json_len(hdrs); i++) {
    aigw_str name = {0}, val;
    const aigw_json *hv = pc_member_at(H, hdrs, i, &name);
    if (!hv || H->json_str(hv, &val) != AIGW_OK || pc_has_ctl(val) || !name.n || pc_has_ctl(name)) {
      H->diag_error(d, "/headers", "header %.*s: must be a string without control characters", (int)(name.n > 64 ? 64 : name.n), name.p);
      bad = 1;
    }
  }
  if (bad) return NULL;
  an_inst *in = H->alloc(sizeof *in);
  if (!in) goto nomem;
  memset(in, 0, sizeof *in);
  in->base_url = dup_n(base.p, base.n);
  in->base_len = base.n;
  in->version = dup_n(ver.p, ver.n);
  in->api_key = key.n ? dup_n(key.p, key.n) : NULL;
  in->default_max_tokens = (int)mt;
  if (!in->base_url || !in->version || (key.n && !in->api_key)) goto nomem;
  size_t nh = hdrs ? H->json_len(hdrs) : 0;
  if (nh) {
    in->hdrs = H->alloc(nh * 2 * sizeof *in->hdrs);
    if (!in->hdrs) goto nomem;
    memset(in->hdrs, 0, nh * 2 * sizeof *in->hdrs);
    for (size_t i = 0; i < nh; i++) {
      aigw_str name = {0}, val = {0};
      H->json_str(pc_member_at(H, hdrs, i, &name), &val);
      in->hdrs[2 * i] = (aigw_str){dup_n(name.p, name.n), name.n};
      in->hdrs[2 * i + 1] = (aigw_str){dup_n(val.p, val.n), val.n};
      in->nhdrs++;
      if (!in->hdrs[2 * i].p || !in->hdrs[2 * i + 1].p) goto nomem;
    }
  }
  return in;
nomem:
  H->diag_error(d, "", "out of memory");
  an_destroy(in);
  return NULL;
}

/* ---- usage (Anthropic counts input_tokens without the cached and cache-written ones) ---- */

static int64_t num_at(const aigw_json *o, const char *k) {
  double v;
  const aigw_json *n = o ? H->json_get(o, k) : NULL;
  if (!n || H->json_num(n, &v) != AIGW_OK || v < 0 || v > 9e15) return -1;
  return (int64_t)v;
}

static void report_anth_usage(aigw_req *r, const aigw_json *u) {
  if (!u || H->json_type(u) != AIGW_JSON_OBJECT) return;
  aigw_usage us = {sizeof(aigw_usage), -1, -1, -1, -1, -1};
  int64_t in = num_at(u, "input_tokens"), cr = num_at(u, "cache_read_input_tokens"),
          cw = num_at(u, "cache_creation_input_tokens");
  if (in >= 0) us.input_tokens = in + (cr > 0 ? cr : 0) + (cw > 0 ? cw : 0);
  us.output_tokens = num_at(u, "output_tokens");
  us.cached_tokens = cr;
  us.cache_write_tokens = cw;
  H->set_usage(r, &us);
}

/* ---- prepare ---- */

static int set_url(an_inst *in, aigw_req *r, const char *path, size_t pn) {
  char *url = H->req_alloc(r, in->base_len + pn + 1);
  if (!url) return -1;
  memcpy(url, in->base_url, in->base_len);
  memcpy(url + in->base_len, path, pn);
  url[in->base_len + pn] = 0;
  return H->set_upstream_url(r, (aigw_str){url, in->base_len + pn}) == AIGW_OK ? 0 : -1;
}

static aigw_status an_prepare(void *vi, aigw_req *r, void **rctx) {
  an_inst *in = vi;
  aigw_api api = H->api(r);
  int rc;
  if (api == AIGW_API_MESSAGES || api == AIGW_API_CHAT || api == AIGW_API_RESPONSES) {
    rc = set_url(in, r, "/v1/messages", 12);
  } else if (api == AIGW_API_MODELS) {
    rc = set_url(in, r, "/v1/models", 10);
  } else if (api == AIGW_API_PASSTHROUGH) {
    aigw_str p;
    if (H->path(r, &p) != AIGW_OK) return AIGW_ERROR;
    rc = set_url(in, r, p.p, p.n);
  } else {
    H->respond_error(r, 400, "invalid_request_error",
                     api == AIGW_API_EMBEDDINGS ? "provider anthropic has no embeddings API; route embeddings to another provider"
                                                : "this API is not supported by provider anthropic");
    return AIGW_STOP;
  }
  if (rc < 0) return AIGW_ERROR;
  for (size_t i = 0; i < in->nhdrs; i++) H->set_header(r, AIGW_UPSTREAM_REQUEST, in->hdrs[2 * i], in->hdrs[2 * i + 1]);
  aigw_str own = pc_credential(H, r); /* the request's own key (bring your own key), else ours */
  if (own.n) H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("x-api-key"), own);
  else if (in->api_key) H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("x-api-key"), (aigw_str){in->api_key, strlen(in->api_key)});
  aigw_str cv;
  if (H->header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("anthropic-version"), &cv) != AIGW_OK)
    H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("anthropic-version"), (aigw_str){in->version, strlen(in->version)});

  if (api == AIGW_API_MODELS) {
    aigw_str raw;
    if (H->body_raw(r, AIGW_UPSTREAM_REQUEST, &raw) == AIGW_OK && raw.n) H->set_body(r, AIGW_UPSTREAM_REQUEST, AIGW_STR(""));
    an_rctx *ctx = H->req_alloc(r, sizeof *ctx);
    if (!ctx) return AIGW_ERROR;
    ctx->translate = 1; /* the list comes back in OpenAI's shape */
    *rctx = ctx;
    return AIGW_CONTINUE;
  }
  if (api == AIGW_API_MESSAGES || api == AIGW_API_PASSTHROUGH) {
    /* same format: forward as received; only the route's model is applied */
    aigw_str tm;
    if (api == AIGW_API_MESSAGES && H->meta_get(r, "aigw.target_model", &tm) == AIGW_OK && tm.n) {
      aigw_json *b = H->body(r, AIGW_UPSTREAM_REQUEST);
      if (b && H->json_type(b) == AIGW_JSON_OBJECT && H->json_set_str(b, "model", tm) == AIGW_OK)
        H->body_changed(r, AIGW_UPSTREAM_REQUEST);
    }
    return AIGW_CONTINUE;
  }

  /* OpenAI-format client: hub -> Anthropic */
  pc_err e = {0};
  cJSON *hub = ing_hub_request(H, r, &e);
  xl_anth_opts o = {.default_max_tokens = in->default_max_tokens};
  cJSON *anth = hub ? xl_hub_req_to_anth(hub, &o, &e) : NULL;
  cJSON_Delete(hub);
  if (!anth) {
    ing_error(H, r, e.status ? e.status : 400, NULL, e.msg[0] ? e.msg : "the request cannot be translated for anthropic");
    return AIGW_STOP;
  }
  char *txt = cJSON_PrintUnformatted(anth);
  cJSON_Delete(anth);
  if (!txt) return AIGW_ERROR;
  rc = H->set_body(r, AIGW_UPSTREAM_REQUEST, (aigw_str){txt, strlen(txt)});
  free(txt);
  if (rc != AIGW_OK) return AIGW_ERROR;
  an_rctx *ctx = H->req_alloc(r, sizeof *ctx);
  if (!ctx) return AIGW_ERROR;
  ctx->translate = 1;
  if (H->is_stream(r)) {
    xl_anth_dec_init(&ctx->dec, (long long)time(NULL));
    ctx->dec_init = 1;
    ing_stream_init(H, r, &ctx->st);
    ctx->st_init = 1;
  }
  *rctx = ctx;
  return AIGW_CONTINUE;
}

/* ---- responses ---- */

/* Anthropic's model list -> OpenAI's {"object":"list","data":[{id,object,created,owned_by}]}. */
static aigw_status models_to_openai(aigw_req *r, aigw_str raw) {
  cJSON *in = cJSON_ParseWithLength(raw.p, raw.n), *out = cJSON_CreateObject(), *arr = NULL;
  if (!cJSON_IsObject(in) || !out) goto bad;
  cJSON_AddStringToObject(out, "object", "list");
  arr = cJSON_AddArrayToObject(out, "data");
  cJSON *m;
  cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(in, "data")) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
    if (!cJSON_IsString(id)) continue;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id->valuestring);
    cJSON_AddStringToObject(o, "object", "model");
    struct tm tmv = {0};
    const cJSON *ca = cJSON_GetObjectItemCaseSensitive(m, "created_at");
    long long created = 0;
    if (cJSON_IsString(ca) && sscanf(ca->valuestring, "%4d-%2d-%2dT%2d:%2d:%2d", &tmv.tm_year, &tmv.tm_mon, &tmv.tm_mday,
                                     &tmv.tm_hour, &tmv.tm_min, &tmv.tm_sec) == 6) {
      tmv.tm_year -= 1900;
      tmv.tm_mon -= 1;
      created = (long long)timegm(&tmv);
    }
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddStringToObject(o, "owned_by", "anthropic");
    cJSON_AddItemToArray(arr, o);
  }
  char *txt = cJSON_PrintUnformatted(out);
  cJSON_Delete(in);
  cJSON_Delete(out);
  if (!txt) return AIGW_ERROR;
  H->set_body(r, AIGW_UPSTREAM_RESPONSE, (aigw_str){txt, strlen(txt)});
  free(txt);
  return AIGW_CONTINUE;
bad:
  cJSON_Delete(in);
  cJSON_Delete(out);
  H->respond_error(r, 502, "upstream_error", "provider anthropic answered the model list with something that is not JSON");
  return AIGW_STOP;
}

static aigw_status an_on_response(void *vi, aigw_req *r, void **rctx) {
  (void)vi;
  an_rctx *ctx = rctx ? *rctx : NULL;
  int st = H->status(r, AIGW_UPSTREAM_RESPONSE);
  aigw_api api = H->api(r);
  if (!ctx || !ctx->translate) {
    if (st >= 200 && st < 300 && api == AIGW_API_MESSAGES) {
      int mst = 0;
      const aigw_json *u = H->body_member(r, AIGW_UPSTREAM_RESPONSE, "usage", &mst);
      if (mst == AIGW_E_INVAL) {
        H->respond_error(r, 502, "api_error", "provider anthropic answered 2xx with a body that is not a JSON object");
        return AIGW_STOP;
      }
      report_anth_usage(r, u);
    }
    return AIGW_CONTINUE;
  }
  aigw_str raw = {0};
  H->body_raw(r, AIGW_UPSTREAM_RESPONSE, &raw);
  if (st < 200 || st > 299) {
    ing_upstream_error(H, r, "anthropic", st, raw);
    return AIGW_CONTINUE;
  }
  if (api == AIGW_API_MODELS) return models_to_openai(r, raw);
  cJSON *anth = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  pc_err e = {0};
  cJSON *hub = cJSON_IsObject(anth) ? xl_anth_resp_to_hub(anth, (long long)time(NULL), &e) : NULL;
  cJSON_Delete(anth);
  if (!hub) {
    ing_error(H, r, 502, "upstream_error", e.msg[0] ? e.msg : "provider anthropic answered 2xx with a body that is not a message");
    return AIGW_STOP;
  }
  return ing_answer_hub(H, r, hub);
}

/* ---- streams ---- */


/* Same-format stream: classify each Anthropic event and read usage. */
static aigw_status classify(aigw_req *r, aigw_event *ev) {
  aigw_str name = {0};
  H->event_name(ev, &name);
  aigw_event_kind k = AIGW_EV_OTHER;
  if (pc_str_eq(name, "content_block_delta")) {
    aigw_str d;
    H->event_data(ev, &d);
    /* the common event, classified from its bytes */
    if (memmem(d.p, d.n, "\"text_delta\"", 12)) k = AIGW_EV_DELTA;
    else if (memmem(d.p, d.n, "\"input_json_delta\"", 18)) k = AIGW_EV_TOOL_DELTA;
  } else if (pc_str_eq(name, "message_start")) {
    aigw_json *j = H->event_json(ev);
    const aigw_json *m = j ? H->json_get(j, "message") : NULL;
    report_anth_usage(r, m ? H->json_get(m, "usage") : NULL);
  } else if (pc_str_eq(name, "message_delta")) {
    aigw_json *j = H->event_json(ev);
    const aigw_json *u = j ? H->json_get(j, "usage") : NULL;
    if (u) {
      /* output_tokens is cumulative; input figures appear here only in newer API versions */
      aigw_usage us = {sizeof(aigw_usage), -1, num_at(u, "output_tokens"), -1, -1, -1};
      if (num_at(u, "input_tokens") >= 0) report_anth_usage(r, u);
      else H->set_usage(r, &us);
      k = AIGW_EV_USAGE;
    } else {
      k = AIGW_EV_STOP;
    }
  } else if (pc_str_eq(name, "message_stop")) {
    k = AIGW_EV_DONE;
  } else if (pc_str_eq(name, "error")) {
    k = AIGW_EV_ERROR;
  }
  H->event_set_kind(ev, k);
  return AIGW_CONTINUE;
}

static aigw_status an_on_event(void *vi, aigw_req *r, void **rctx, aigw_event *ev) {
  (void)vi;
  an_rctx *ctx = rctx ? *rctx : NULL;
  if (!ctx || !ctx->dec_init) return classify(r, ev);
  aigw_str name = {0}, data = {0};
  H->event_name(ev, &name);
  H->event_data(ev, &data);
  char nm[64] = "";
  if (name.n && name.n < sizeof nm) {
    memcpy(nm, name.p, name.n);
    nm[name.n] = 0;
  }
  if (ctx->st.api == AIGW_API_CHAT && !strcmp(nm, "content_block_delta")) { /* the common event, without trees */
    int fr = xl_anth_dec_text_fast(&ctx->dec, data.p, data.n, &ctx->st.fast);
    if (fr > 0) {
      if (ctx->st.fast.n) ing_stream_emit_raw(H, r, &ctx->st, AIGW_EV_DELTA, NULL, ctx->st.fast.p, ctx->st.fast.n);
      return AIGW_DROP;
    }
  }
  ing_fwd f = {H, r, &ctx->st};
  pc_err e = {0};
  int rc = xl_anth_dec_event(&ctx->dec, nm[0] ? nm : NULL, data.p, data.n, ing_fwd_chunk, &f, &e);
  if (rc == XL_EUPSTREAM || rc < 0) {
    ing_stream_error(H, r, &ctx->st, e.status ? e.status : 502, e.msg[0] ? e.msg : "provider anthropic sent a broken stream");
  } else if (ctx->dec.done) {
    ing_stream_end(H, r, &ctx->st);
  }
  return AIGW_DROP;
}

static aigw_status an_on_stream_end(void *vi, aigw_req *r, void **rctx) {
  (void)vi;
  an_rctx *ctx = rctx ? *rctx : NULL;
  if (!ctx || !ctx->dec_init || ctx->st.done) return AIGW_CONTINUE;
  pc_err e = {0};
  if (xl_anth_dec_finish(&ctx->dec, &e) < 0) ing_stream_error(H, r, &ctx->st, 502, e.msg[0] ? e.msg : "the stream ended early");
  else ing_stream_end(H, r, &ctx->st);
  return AIGW_CONTINUE;
}

static void an_on_done(void *vi, aigw_req *r, void *rctx) {
  (void)vi;
  (void)r;
  an_rctx *ctx = rctx;
  if (!ctx) return;
  if (ctx->dec_init) xl_anth_dec_free(&ctx->dec);
  if (ctx->st_init) ing_stream_free(&ctx->st);
}

static const aigw_provider an_provider = {
    .struct_size = sizeof(aigw_provider),
    .wire_format = "anthropic",
    .prepare = an_prepare,
    .on_response = an_on_response,
    .on_event = an_on_event,
    .on_stream_end = an_on_stream_end,
};

static const aigw_plugin an_plugin = {
    AIGW_PLUGIN_HEADER,
    .name = "anthropic",
    .version = "0.1.0",
    .flags = AIGW_IS_PROVIDER,
    .create = an_create,
    .destroy = an_destroy,
    .on_done = an_on_done,
    .provider = &an_provider,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  if (!h || h->abi_major != AIGW_ABI_MAJOR) {
    snprintf(err, errlen, "anthropic: host ABI major %u, plugin built for %d", h ? (unsigned)h->abi_major : 0u, AIGW_ABI_MAJOR);
    return NULL;
  }
  if (!AIGW_HAS(h, provider_emit)) {
    snprintf(err, errlen, "anthropic: the host lacks provider_emit (needs a newer aigw)");
    return NULL;
  }
  H = h;
  return &an_plugin;
}
