/* bedrock.c - provider adapter for Amazon Bedrock Runtime's Converse API, through the hub format
 * (docs/translation.md).
 *
 * Clients: OpenAI chat (route api "chat"), Anthropic messages ("messages") and OpenAI Responses
 * ("responses", bridged by ingress.h) go through ingress.h (client -> hub) and xlate_bedrock.h (hub -> Converse / ConverseStream, and back).
 * Non-stream requests POST /model/{modelId}/converse (JSON answer); stream requests POST
 * /model/{modelId}/converse-stream, whose answer is AWS event-stream (binary frames, not SSE):
 * the adapter sets on_stream_data, decodes the frames with xb_stream_feed and emits the client's
 * events (OpenAI chunks or Anthropic events) with h->provider_emit. The model id is the route
 * target's model ("aigw.target_model"), else the client's "model".
 *
 * Embeddings (route api "embeddings", OpenAI embeddings clients) go through InvokeModel, POST
 * /model/{modelId}/invoke, with the model family's own body (xlate_bedrock.h: Titan Text
 * Embeddings v2, Cohere Embed v3; another model id is a 400 naming bedrock). One InvokeModel body
 * (a single input, or Cohere's batch) is the upstream request itself. Titan embeds one text per
 * call, so an input array of N > 1 texts becomes N signed call-outs with h->http_call: prepare
 * PAUSEs, at most EMB_INFLIGHT run at once (the next starts as one finishes), results are kept by
 * input index, and when all are in, the OpenAI list (usage summed) is answered with
 * h->provider_reply + resume(STOP). The first failed call answers the client with its error
 * (mapped as for Converse) and cancels the others; a CANCELLED callback only releases its slot.
 * Callback state is request memory; parsed answers are freed when the list is built or in
 * on_done (which runs after every callback).
 *
 * Passthrough (route api "passthrough"): any Bedrock Runtime request (/model/{id}/invoke,
 * /model/{id}/converse[-stream], /guardrail/..., /async-invoke?...) goes to base_url + the client's
 * path and query with its method and body untouched, signed by the gateway over exactly what is
 * sent (prep_passthrough); the answer (JSON, event-stream, or an error) reaches the client as is.
 *
 * Every request is signed with AWS Signature Version 4 (aws_sigv4.h) over the exact bytes sent:
 * method POST, the wire path (model id percent-encoded once, signed encoded twice), the host as
 * the core sends it (the base URL's authority, a default port dropped), content-type, x-amz-date,
 * x-amz-security-token (temporary credentials) and the SHA-256 of the body set with h->set_body.
 * The core adds content-length after signing; it is not signed, as in AWS's own SDKs.
 *
 * Config (all strings; checked at create, errors at JSON pointers):
 *   region             e.g. "us-east-1" (else AWS_REGION, else AWS_DEFAULT_REGION)
 *   access_key_id      \ the gateway's AWS credentials (use "${ENV}" references); when neither
 *   secret_access_key  / key is set: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
 *   session_token      temporary credentials (with configured keys only)
 *   base_url           endpoint override (default https://bedrock-runtime.<region>.amazonaws.com);
 *                      an optional path prefix is kept (and signed)
 * Credentials are resolved once, at create (no refresh of expiring temporary credentials: reload
 * the configuration with new ones). The instance is immutable after create; secrets are never
 * logged. No process globals besides the host table H. */
#include <aigw/plugin.h>

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aws_sigv4.h"
#include "ingress.h"
#include "xlate_bedrock.h"

static const aigw_host *H;

typedef struct br_inst {
  char *base;   /* scheme://authority[/prefix], no trailing '/' */
  size_t base_len;
  char *host;   /* authority as the core sends it in Host */
  char *prefix; /* path prefix of base ("" or "/x/y") */
  aws_creds creds;
  int start_count; /* message_start_usage "count": CountTokens in parallel (default) */
} br_inst;

#define EMB_INFLIGHT 8
#define EMB_CALL_TIMEOUT_MS 60000

struct br_rctx;
typedef struct emb_slot {
  struct br_rctx *ctx;
  size_t idx;
} emb_slot;

typedef struct br_rctx {
  aigw_api api;
  /* embeddings */
  xb_emb_family fam;
  int emb_base64;
  int emb_local;    /* fan-out: answered with provider_reply */
  int emb_over;     /* fan-out answered or failed: later results are ignored */
  size_t emb_n, emb_next, emb_ndone, emb_inflight;
  long long emb_tokens; /* fan-out: summed prompt tokens */
  aigw_str *emb_bodies; /* request memory */
  cJSON **emb_resps;    /* parsed answers by index (heap; freed in emb_free) */
  long long *emb_tok;   /* header token counts by index */
  aigw_call **emb_calls;
  emb_slot *emb_slots;
  br_inst *in;
  int xs_init, st_init, got_data;
  const char *model; /* request memory */
  xb_stream xs;      /* ConverseStream frames -> hub chunks */
  ing_stream st;     /* hub chunks -> client events */
  /* message_start's input_tokens from a parallel CountTokens call (Anthropic-format clients):
   * the event-stream bytes are held until it is back, then fed from its callback */
  aigw_call *cnt;
  int cnt_pending, holding, held_end;
  pc_buf held;
} br_rctx;

static char *dup_n(const char *p, size_t n) {
  char *s = H->alloc(n + 1);
  if (s) {
    memcpy(s, p, n);
    s[n] = 0;
  }
  return s;
}


static int has_ctl(aigw_str s) {
  for (size_t i = 0; i < s.n; i++)
    if ((unsigned char)s.p[i] < 0x20 || s.p[i] == 0x7f) return 1;
  return 0;
}

static long long now_s(void) { return (long long)time(NULL); }

/* ---- create ---- */

static void br_destroy(void *vi) {
  br_inst *in = vi;
  if (!in) return;
  H->free(in->base);
  H->free(in->host);
  H->free(in->prefix);
  aws_creds_free(&in->creds);
  H->free(in);
}

/* A config string member: NUL-terminated copy into buf (cap), or "" when absent. 0, or -1 after
 * a diag. */
static int cfg_str(const aigw_json *cfg, const char *key, char *buf, size_t cap, aigw_diag *d, const char *what) {
  buf[0] = 0;
  const aigw_json *v = cfg ? H->json_get(cfg, key) : NULL;
  if (!v) return 0;
  aigw_str s;
  char ptr[40];
  snprintf(ptr, sizeof ptr, "/%s", key);
  if (H->json_str(v, &s) != AIGW_OK || has_ctl(s) || s.n >= cap || memchr(s.p, 0, s.n)) {
    H->diag_error(d, ptr, "must be %s (a string without control characters, under %zu bytes)", what, cap);
    return -1;
  }
  memcpy(buf, s.p, s.n);
  buf[s.n] = 0;
  return 0;
}

static int region_ok(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-')) return 0;
  return 1;
}

/* Splits base (scheme://authority[/prefix]) and normalizes it: trailing '/' dropped, a default
 * port (":443" for https, ":80" for http) dropped so that the Host the core sends and the one
 * signed agree. 0, or -1 when it is not such a URL. */
static int parse_base(br_inst *in, const char *url) {
  size_t sl;
  int https;
  if (!strncmp(url, "https://", 8)) sl = 8, https = 1;
  else if (!strncmp(url, "http://", 7)) sl = 7, https = 0;
  else return -1;
  const char *a = url + sl;
  size_t an = strcspn(a, "/?#");
  if (!an || a[an] == '?' || a[an] == '#' || strchr(a, '?') || strchr(a, '#')) return -1;
  if (memchr(a, '@', an) || memchr(a, ' ', an)) return -1;
  const char *prefix = a + an;
  size_t pn = strlen(prefix);
  while (pn && prefix[pn - 1] == '/') pn--;
  if (memchr(prefix, ' ', pn)) return -1;
  /* the port, if any (after the last ':' outside an IPv6 literal) */
  size_t hn = an;
  const char *rb = memchr(a, ']', an);
  const char *colon = NULL;
  for (const char *p = rb ? rb : a; p < a + an; p++)
    if (*p == ':') colon = p;
  if (a[0] == '[' && !rb) return -1;
  if (colon) {
    const char *ps = colon + 1;
    size_t psn = (size_t)(a + an - ps);
    if (!psn || psn > 5) return -1;
    long port = 0;
    for (size_t i = 0; i < psn; i++) {
      if (ps[i] < '0' || ps[i] > '9') return -1;
      port = port * 10 + (ps[i] - '0');
    }
    if (port < 1 || port > 65535) return -1;
    if ((https && port == 443) || (!https && port == 80)) hn = (size_t)(colon - a);
  }
  if (!hn) return -1;
  in->host = dup_n(a, hn);
  in->prefix = dup_n(prefix, pn);
  in->base_len = sl + hn + pn;
  in->base = H->alloc(in->base_len + 1);
  if (!in->host || !in->prefix || !in->base) return -2;
  memcpy(in->base, url, sl);
  memcpy(in->base + sl, a, hn);
  memcpy(in->base + sl + hn, prefix, pn);
  in->base[in->base_len] = 0;
  return 0;
}

static void *br_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d) {
  (void)h;
  int bad = 0;
  if (cfg && H->json_type(cfg) != AIGW_JSON_OBJECT) {
    H->diag_error(d, "", "provider bedrock: config must be an object");
    return NULL;
  }
  static const char *const known[] = {"region", "access_key_id", "secret_access_key", "session_token", "base_url",
                                      "message_start_usage"};
  for (size_t i = 0; cfg && i < H->json_len(cfg); i++) {
    aigw_str k;
    if (H->json_key_at(cfg, i, &k) != AIGW_OK) continue;
    int ok = 0;
    for (size_t j = 0; j < sizeof known / sizeof *known; j++) ok |= pc_str_eq(k, known[j]);
    if (!ok) {
      char ptr[128];
      snprintf(ptr, sizeof ptr, "/%.*s", (int)(k.n > 100 ? 100 : k.n), k.p);
      H->diag_error(d, ptr, "unknown option (known: region, access_key_id, secret_access_key, session_token, base_url, "
                            "message_start_usage)");
      bad = 1;
    }
  }
  char region[64], ak[256], sk[256], tok[4096], base[1024];
  if (cfg_str(cfg, "region", region, sizeof region, d, "an AWS region such as \"us-east-1\"") < 0) bad = 1;
  if (cfg_str(cfg, "access_key_id", ak, sizeof ak, d, "an AWS access key id") < 0) bad = 1;
  if (cfg_str(cfg, "secret_access_key", sk, sizeof sk, d, "an AWS secret access key") < 0) bad = 1;
  if (cfg_str(cfg, "session_token", tok, sizeof tok, d, "an AWS session token") < 0) bad = 1;
  if (cfg_str(cfg, "base_url", base, sizeof base, d, "an http:// or https:// URL") < 0) bad = 1;
  if (region[0] && !region_ok(region)) {
    H->diag_error(d, "/region", "must be an AWS region such as \"us-east-1\" (lowercase letters, digits, '-')");
    bad = 1;
  }
  br_inst *in = bad ? NULL : H->alloc(sizeof *in);
  if (!in) {
    if (!bad) H->diag_error(d, "", "out of memory");
    goto fail;
  }
  memset(in, 0, sizeof *in);
  /* message_start_usage: "count" (CountTokens in parallel with ConverseStream, the default) or
   * "estimate" (no extra call; models without CountTokens support) */
  in->start_count = 1;
  {
    const aigw_json *v = H->json_get(cfg, "message_start_usage");
    aigw_str sm = {0};
    if (v && (H->json_str(v, &sm) != AIGW_OK || (!pc_str_eq(sm, "count") && !pc_str_eq(sm, "estimate")))) {
      H->diag_error(d, "/message_start_usage", "must be \"count\" or \"estimate\"");
      goto fail;
    }
    if (v && pc_str_eq(sm, "estimate")) in->start_count = 0;
  }
  char err[200];
  if (aws_creds_resolve(&in->creds, ak, sk, tok, region, aws_getenv_process, NULL, err, sizeof err) < 0) {
    const char *ptr = "";
    if (strstr(err, "region")) ptr = "/region";
    else if (strstr(err, "access_key_id is set")) ptr = "/secret_access_key";
    else if (strstr(err, "secret_access_key is set")) ptr = "/access_key_id";
    H->diag_error(d, ptr, "%s", err);
    goto fail;
  }
  if (!region_ok(in->creds.region)) {
    H->diag_error(d, "/region", "the region from the environment (\"%.60s\") is not an AWS region name", in->creds.region);
    goto fail;
  }
  if (!base[0]) snprintf(base, sizeof base, "https://bedrock-runtime.%s.amazonaws.com", in->creds.region);
  int rc = parse_base(in, base);
  if (rc == -2) {
    H->diag_error(d, "", "out of memory");
    goto fail;
  }
  if (rc < 0) {
    H->diag_error(d, "/base_url", "must be an http:// or https:// URL without query or user info, e.g. \"https://bedrock-runtime.us-east-1.amazonaws.com\"");
    goto fail;
  }
  /* test-sign once: a problem with the credentials' bytes shows here, not per request */
  aws_sigv4_req sr = {.method = "POST", .host = in->host, .path = "/"};
  aws_sigv4_params sp = {.access_key = in->creds.access_key, .secret_key = in->creds.secret_key,
                         .session_token = in->creds.session_token, .region = in->creds.region,
                         .service = "bedrock", .now = time(NULL)};
  aws_sigv4_result res;
  if (aws_sigv4_sign(&sr, &sp, &res, err, sizeof err) < 0) {
    H->diag_error(d, "", "the credentials cannot sign a request: %s", err);
    goto fail;
  }
  aws_sigv4_result_free(&res);
  OPENSSL_cleanse(sk, sizeof sk);
  OPENSSL_cleanse(tok, sizeof tok);
  return in;
fail:
  OPENSSL_cleanse(sk, sizeof sk);
  OPENSSL_cleanse(tok, sizeof tok);
  br_destroy(in);
  return NULL;
}

/* ---- prepare ---- */

static aigw_status bad_model(aigw_req *r, const char *m) {
  char msg[300];
  if (!m || !*m) snprintf(msg, sizeof msg, "model: required (the Bedrock model id, e.g. \"anthropic.claude-3-5-haiku-20241022-v1:0\"), or set one on the route's target");
  else snprintf(msg, sizeof msg, "model: \"%.160s\" is not a Bedrock model id or ARN", m);
  ing_error(H, r, 400, "invalid_request_error", msg);
  return AIGW_STOP;
}

static int model_ok(const char *m) {
  size_t n = strlen(m);
  if (!n || n > 2048 || !strcmp(m, ".") || !strcmp(m, "..")) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)m[i] < 0x20 || m[i] == 0x7f) return 0;
  return 1;
}

/* Removes every UPSTREAM_REQUEST header whose name starts with pre (case-insensitive). 0, or -1
 * when one could not be removed (out of memory). */
static int drop_prefixed_headers(aigw_req *r, const char *pre) {
  size_t pn = strlen(pre);
  for (int pass = 0; pass < 4096; pass++) {
    aigw_str n, v;
    int found = 0;
    for (size_t i = 0; H->header_at(r, AIGW_UPSTREAM_REQUEST, i, &n, &v) == AIGW_OK; i++) {
      if (n.n >= pn && !strncasecmp(n.p, pre, pn)) {
        char buf[128];
        char *nm = n.n <= sizeof buf ? buf : H->req_alloc(r, n.n); /* copied: the list changes */
        if (!nm) return -1;
        memcpy(nm, n.p, n.n);
        if (H->set_header(r, AIGW_UPSTREAM_REQUEST, (aigw_str){nm, n.n}, (aigw_str){NULL, 0}) != AIGW_OK) return -1;
        found = 1;
        break; /* the list changed: start over (each pass removes a name: this ends) */
      }
    }
    if (!found) return 0;
  }
  return -1;
}

/* Client headers meant for other APIs, and any AWS header that would collide with the signature. */
static void drop_foreign_headers(aigw_req *r) {
  static const char *const drop[] = {"anthropic-version", "anthropic-beta", "openai-organization", "openai-project",
                                     "openai-beta"};
  for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
    H->set_header(r, AIGW_UPSTREAM_REQUEST, (aigw_str){drop[i], strlen(drop[i])}, (aigw_str){NULL, 0});
  (void)drop_prefixed_headers(r, "x-amz"); /* best effort: the signer's own headers replace them */
}

/* Signs POST path (wire form) with body for this instance, now. 0, or -1 (logged). */
static int sign_post(br_inst *in, aigw_req *r, const char *path, aigw_str body, aws_sigv4_result *res) {
  aws_header sh[] = {{"content-type", "application/json"}};
  aws_sigv4_req sr = {.method = "POST", .host = in->host, .path = path, .query = NULL, .headers = sh,
                      .nheaders = 1, .body = body.p, .body_len = body.n};
  aws_sigv4_params sp = {.access_key = in->creds.access_key, .secret_key = in->creds.secret_key,
                         .session_token = in->creds.session_token, .region = in->creds.region,
                         .service = "bedrock", .now = time(NULL)};
  char err[200];
  if (aws_sigv4_sign(&sr, &sp, res, err, sizeof err) < 0) {
    H->log(r, AIGW_LOG_ERROR, "bedrock: signing failed: %s", err);
    return -1;
  }
  return 0;
}

/* A signed POST call-out to this instance's endpoint (CountTokens, the per-input InvokeModel of a
 * Titan embeddings fan-out): path is the wire path, prefix included; body is JSON (the host copies
 * it, and the URL and headers, before http_call returns). Signed now over exactly body, with the
 * JSON content-type and accept. The call, or NULL (a signing failure is logged; an allocation or
 * host refusal is the caller's to report). */
static aigw_call *signed_post(br_inst *in, aigw_req *r, const char *path, aigw_str body, uint32_t timeout_ms,
                              aigw_done_fn done, void *ud) {
  pc_buf url = {0};
  aws_sigv4_result res;
  memset(&res, 0, sizeof res);
  aigw_call *call = NULL;
  if (pc_buf_add(&url, in->base, in->base_len) == 0 && pc_buf_adds(&url, path) == 0 &&
      sign_post(in, r, path, body, &res) == 0) {
    aigw_str hv[2 * (2 + sizeof res.headers / sizeof *res.headers)];
    size_t nh = 0;
    hv[nh++] = AIGW_STR("content-type");
    hv[nh++] = AIGW_STR("application/json");
    hv[nh++] = AIGW_STR("accept");
    hv[nh++] = AIGW_STR("application/json");
    for (size_t k = 0; k < res.nheaders && k < sizeof res.headers / sizeof *res.headers; k++) {
      hv[nh++] = (aigw_str){res.headers[k].name, strlen(res.headers[k].name)};
      hv[nh++] = (aigw_str){res.headers[k].value, strlen(res.headers[k].value)};
    }
    aigw_http_spec sp = {.struct_size = sizeof sp, .method = "POST", .url = url.p, .headers = hv,
                         .nheaders = nh / 2, .body = body, .timeout_ms = timeout_ms};
    call = H->http_call(r, &sp, done, ud);
  }
  aws_sigv4_result_free(&res);
  pc_buf_free(&url);
  return call;
}

/* Sets the upstream URL (base + path), the JSON headers and the signature over the body the
 * core holds now (set_body copied it; nothing changes it afterwards). 0 or -1. */
static int sign_upstream(br_inst *in, aigw_req *r, const pc_buf *path, int stream) {
  pc_buf url = {0};
  aws_sigv4_result res;
  memset(&res, 0, sizeof res);
  int out = -1;
  if (pc_buf_add(&url, in->base, in->base_len) < 0 || pc_buf_add(&url, path->p, path->n) < 0) goto done;
  if (H->set_upstream_url(r, (aigw_str){url.p, url.n}) != AIGW_OK) goto done;
  drop_foreign_headers(r);
  H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("content-type"), AIGW_STR("application/json"));
  H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("accept"),
                stream ? AIGW_STR("application/vnd.amazon.eventstream") : AIGW_STR("application/json"));
  aigw_str body = {0};
  if (H->body_raw(r, AIGW_UPSTREAM_REQUEST, &body) != AIGW_OK) goto done;
  if (sign_post(in, r, path->p, body, &res) < 0) goto done;
  for (size_t i = 0; i < res.nheaders; i++)
    if (H->set_header(r, AIGW_UPSTREAM_REQUEST, (aigw_str){res.headers[i].name, strlen(res.headers[i].name)},
                      (aigw_str){res.headers[i].value, strlen(res.headers[i].value)}) != AIGW_OK)
      goto done;
  out = 0;
done:
  aws_sigv4_result_free(&res);
  pc_buf_free(&url);
  return out;
}

static void br_count_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud);

/* CountTokens for the prompt of a Converse request (conv), in parallel with ConverseStream. 0 started. */
static int br_start_count(br_inst *in, aigw_req *r, br_rctx *ctx, const cJSON *conv) {
  cJSON *body = cJSON_CreateObject();
  cJSON *input = body ? cJSON_AddObjectToObject(body, "input") : NULL;
  cJSON *cv = input ? cJSON_AddObjectToObject(input, "converse") : NULL;
  const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(conv, "messages");
  const cJSON *sys = cJSON_GetObjectItemCaseSensitive(conv, "system");
  if (!cv || !msgs || !cJSON_AddItemToObject(cv, "messages", cJSON_Duplicate(msgs, 1)) ||
      (sys && !cJSON_AddItemToObject(cv, "system", cJSON_Duplicate(sys, 1)))) {
    cJSON_Delete(body);
    return -1;
  }
  char *txt = cJSON_PrintUnformatted(body);
  cJSON_Delete(body);
  if (!txt) return -1;
  pc_buf path = {0};
  aigw_call *call = NULL;
  if (pc_buf_adds(&path, in->prefix) == 0 && pc_buf_adds(&path, "/model/") == 0 &&
      aws_uri_encode(&path, ctx->model, strlen(ctx->model), 0) == 0 && pc_buf_adds(&path, "/count-tokens") == 0)
    call = signed_post(in, r, path.p, (aigw_str){txt, strlen(txt)}, 5000, br_count_done, ctx);
  pc_buf_free(&path);
  free(txt);
  if (!call) return -1;
  ctx->cnt = call;
  ctx->cnt_pending = ctx->holding = 1;
  return 0;
}

static void br_feed(aigw_req *r, br_rctx *ctx, const char *p, size_t n);
static void br_end(aigw_req *r, br_rctx *ctx);

/* Feeds what was held back (and the end, when the upstream is over). */
static void br_release(aigw_req *r, br_rctx *ctx) {
  ctx->holding = 0;
  if (ctx->held.n) br_feed(r, ctx, ctx->held.p, ctx->held.n);
  pc_buf_free(&ctx->held);
  if (ctx->held_end) br_end(r, ctx);
}

static void br_count_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud) {
  br_rctx *ctx = ud;
  if (!ctx->cnt_pending) return;
  ctx->cnt_pending = 0;
  ctx->cnt = NULL;
  if (st == AIGW_CALL_CANCELLED) return;
  if (st == AIGW_CALL_OK && H->call_status_code(c) >= 200 && H->call_status_code(c) < 300) {
    aigw_str b = {0};
    H->call_body(c, &b);
    cJSON *j = b.n ? cJSON_ParseWithLength(b.p, b.n) : NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, "inputTokens");
    if (cJSON_IsNumber(it) && it->valuedouble >= 0 && it->valuedouble < 9e15)
      ing_stream_prompt_tokens(&ctx->st, (long long)it->valuedouble);
    cJSON_Delete(j);
  } else {
    H->log(r, AIGW_LOG_INFO, "bedrock: CountTokens for message_start failed (status %d); it carries the estimate",
           H->call_status_code(c));
  }
  if (ctx->holding) br_release(r, ctx);
}

static aigw_status prep_chat(br_inst *in, aigw_req *r, br_rctx *ctx) {
  pc_err e = {0};
  cJSON *hub = ing_hub_request(H, r, &e);
  if (!hub) {
    ing_error(H, r, e.status ? e.status : 400, NULL, e.msg[0] ? e.msg : "the request cannot be read");
    return AIGW_STOP;
  }
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(hub, "model");
  const char *model = cJSON_IsString(m) ? m->valuestring : NULL;
  if (!model || !model_ok(model)) {
    aigw_status s = bad_model(r, model);
    cJSON_Delete(hub);
    return s;
  }
  size_t mn = strlen(model);
  char *mcopy = H->req_alloc(r, mn + 1);
  if (!mcopy) {
    cJSON_Delete(hub);
    return AIGW_ERROR;
  }
  memcpy(mcopy, model, mn + 1);
  ctx->model = mcopy;
  cJSON *conv = xb_req_from_hub(hub, &e);
  cJSON_Delete(hub);
  if (!conv) {
    ing_error(H, r, e.status ? e.status : 400, NULL, e.msg[0] ? e.msg : "the request cannot be translated for bedrock");
    return AIGW_STOP;
  }
  char *txt = cJSON_PrintUnformatted(conv);
  cJSON *count_conv = in->start_count && H->is_stream(r) && H->api(r) == AIGW_API_MESSAGES ? conv : NULL;
  if (!count_conv) cJSON_Delete(conv);
  if (!txt) {
    cJSON_Delete(count_conv);
    return AIGW_ERROR;
  }
  int rc = H->set_body(r, AIGW_UPSTREAM_REQUEST, (aigw_str){txt, strlen(txt)});
  free(txt);
  if (rc != AIGW_OK) {
    cJSON_Delete(count_conv);
    return AIGW_ERROR;
  }

  int stream = H->is_stream(r);
  pc_buf path = {0};
  aigw_status out = AIGW_ERROR;
  if (pc_buf_adds(&path, in->prefix) < 0 || xb_path(&path, ctx->model, stream) < 0) goto done;
  if (sign_upstream(in, r, &path, stream) < 0) goto done;
  if (stream) {
    xb_stream_init(&ctx->xs, NULL, ctx->model, now_s());
    ctx->xs_init = 1;
    ing_stream_init(H, r, &ctx->st);
    ctx->st_init = 1;
    if (count_conv && br_start_count(in, r, ctx, count_conv) < 0)
      H->log(r, AIGW_LOG_INFO, "bedrock: CountTokens for message_start could not start; it carries the estimate");
  }
  out = AIGW_CONTINUE;
done:
  cJSON_Delete(count_conv);
  pc_buf_free(&path);
  return out;
}

static aigw_status prep_embed(br_inst *in, aigw_req *r, br_rctx *ctx);

/* A passthrough request-target the gateway can forward and sign byte for byte: origin form
 * ('/' first), printable ASCII that needs no further encoding (no space, '#', quotes, '<' '>'
 * '\\' '^' '`' '{' '|' '}', no byte >= 0x7f; so no client library re-encodes it), no "." or ".."
 * path segment (an HTTP stack may collapse them, and ".." would climb out of base_url's prefix).
 * NULL when fine, else the reason. */
static const char *pass_target_problem(aigw_str p) {
  if (!p.n || p.p[0] != '/') return "the request path must start with '/'";
  size_t pathn = p.n;
  const char *q = memchr(p.p, '?', p.n);
  if (q) pathn = (size_t)(q - p.p);
  for (size_t i = 0; i < p.n; i++) {
    unsigned char c = (unsigned char)p.p[i];
    if (c <= 0x20 || c >= 0x7f || strchr("#\"<>\\^`{|}", c))
      return "the request path and query must be percent-encoded (no spaces, control or non-ASCII bytes, nor #\"<>\\^`{|})";
  }
  for (size_t i = 0; i < pathn;) { /* segments between '/' */
    size_t j = i + 1;
    while (j < pathn && p.p[j] != '/') j++;
    size_t sn = j - i - 1;
    const char *sg = p.p + i + 1;
    if ((sn == 1 && sg[0] == '.') || (sn == 2 && sg[0] == '.' && sg[1] == '.'))
      return "the request path must not contain \".\" or \"..\" segments";
    i = j;
  }
  return NULL;
}

/* Passthrough (route api "passthrough"): the client's request-target (path and query) under
 * base_url, the method and body untouched, the answer untouched (JSON or event-stream; the core
 * buffers an event-stream answer of a passthrough request and sends its exact bytes). Signed over
 * what is sent: the method as the core sends it, the wire path (base prefix + client path) and
 * query, host, content-type when the client sent one, and the SHA-256 of the exact body (of none
 * for GET, which the core sends without a body). The client's credentials never go upstream: the
 * core drops authorization / x-api-key / api-key; x-amz-* headers (date, token, content hash, a
 * client's own signature parts) are dropped here and replaced by ours. */
static aigw_status prep_passthrough(br_inst *in, aigw_req *r) {
  aigw_str p = {0}, m = {0};
  if (H->path(r, &p) != AIGW_OK || H->method(r, &m) != AIGW_OK) return AIGW_ERROR;
  const char *why = pass_target_problem(p);
  if (why) {
    char msg[300];
    snprintf(msg, sizeof msg, "bedrock passthrough: %s", why);
    ing_error(H, r, 400, "invalid_request_error", msg);
    return AIGW_STOP;
  }
  const char *q = memchr(p.p, '?', p.n);
  size_t pathn = q ? (size_t)(q - p.p) : p.n;
  /* the method exactly as the core puts it on the wire (core/upstream.c, core/upclient.c) */
  int is_get = m.n == 3 && !strncasecmp(m.p, "GET", 3);
  char method[32];
  if (is_get) snprintf(method, sizeof method, "GET");
  else if (m.n == 4 && !strncasecmp(m.p, "POST", 4)) snprintf(method, sizeof method, "POST");
  else if (!m.n || m.n >= sizeof method || has_ctl(m) || memchr(m.p, ' ', m.n)) {
    ing_error(H, r, 400, "invalid_request_error", "bedrock passthrough: unsupported request method");
    return AIGW_STOP;
  } else {
    memcpy(method, m.p, m.n);
    method[m.n] = 0;
  }
  aigw_str body = {0};
  if (!is_get && H->body_raw(r, AIGW_UPSTREAM_REQUEST, &body) != AIGW_OK) body = (aigw_str){NULL, 0};

  static const char *const drop[] = {"authorization", "x-api-key", "api-key", "anthropic-version", "anthropic-beta",
                                     "openai-organization", "openai-project", "openai-beta"};
  for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
    if (H->set_header(r, AIGW_UPSTREAM_REQUEST, (aigw_str){drop[i], strlen(drop[i])}, (aigw_str){NULL, 0}) != AIGW_OK)
      return AIGW_ERROR;
  if (drop_prefixed_headers(r, "x-amz-") < 0) return AIGW_ERROR;

  pc_buf url = {0}, wpath = {0}, query = {0}, ctype = {0};
  aws_sigv4_result res;
  memset(&res, 0, sizeof res);
  aigw_status out = AIGW_ERROR;
  aigw_str ct = {0};
  int has_ct = H->header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("content-type"), &ct) == AIGW_OK;
  if (pc_buf_add(&url, in->base, in->base_len) < 0 || pc_buf_add(&url, p.p, p.n) < 0) goto done;
  if (pc_buf_adds(&wpath, in->prefix) < 0 || pc_buf_add(&wpath, p.p, pathn) < 0 || pc_buf_add(&wpath, "", 1) < 0) goto done;
  if (q && (pc_buf_add(&query, q + 1, p.n - pathn - 1) < 0 || pc_buf_add(&query, "", 1) < 0)) goto done;
  if (has_ct && (has_ctl(ct) || pc_buf_add(&ctype, ct.p, ct.n) < 0 || pc_buf_add(&ctype, "", 1) < 0)) goto done;
  if (H->set_upstream_url(r, (aigw_str){url.p, url.n}) != AIGW_OK) goto done;
  {
    aws_header sh[] = {{"content-type", has_ct ? ctype.p : ""}};
    aws_sigv4_req sr = {.method = method, .host = in->host, .path = wpath.p, .query = q ? query.p : NULL,
                        .headers = sh, .nheaders = has_ct ? 1 : 0, .body = body.p, .body_len = body.n};
    aws_sigv4_params sp = {.access_key = in->creds.access_key, .secret_key = in->creds.secret_key,
                           .session_token = in->creds.session_token, .region = in->creds.region,
                           .service = "bedrock", .now = time(NULL)};
    char err[200];
    if (aws_sigv4_sign(&sr, &sp, &res, err, sizeof err) < 0) {
      H->log(r, AIGW_LOG_ERROR, "bedrock: signing failed: %s", err);
      goto done;
    }
  }
  for (size_t i = 0; i < res.nheaders; i++)
    if (H->set_header(r, AIGW_UPSTREAM_REQUEST, (aigw_str){res.headers[i].name, strlen(res.headers[i].name)},
                      (aigw_str){res.headers[i].value, strlen(res.headers[i].value)}) != AIGW_OK)
      goto done;
  out = AIGW_CONTINUE;
done:
  aws_sigv4_result_free(&res);
  pc_buf_free(&url);
  pc_buf_free(&wpath);
  pc_buf_free(&query);
  pc_buf_free(&ctype);
  return out;
}

static aigw_status br_prepare(void *vi, aigw_req *r, void **rctx) {
  br_inst *in = vi;
  br_rctx *ctx = H->req_alloc(r, sizeof *ctx);
  if (!ctx) return AIGW_ERROR;
  ctx->api = H->api(r);
  *rctx = ctx;
  switch (ctx->api) {
  case AIGW_API_CHAT:
  case AIGW_API_MESSAGES:
  case AIGW_API_RESPONSES: return prep_chat(in, r, ctx);
  case AIGW_API_EMBEDDINGS: return prep_embed(in, r, ctx);
  case AIGW_API_PASSTHROUGH: return prep_passthrough(in, r);
  default:
    ing_error(H, r, 400, "invalid_request_error", "this API is not supported by provider bedrock (chat, messages, responses, embeddings and passthrough are)");
    return AIGW_STOP;
  }
}

/* ---- responses ---- */

/* "x-amzn-RequestId" -> "chatcmpl-<id>" in buf, or NULL. */
static const char *resp_id(aigw_req *r, char *buf, size_t cap) {
  aigw_str v;
  if (H->header(r, AIGW_UPSTREAM_RESPONSE, AIGW_STR("x-amzn-requestid"), &v) != AIGW_OK || !v.n || v.n > 100 || has_ctl(v))
    return NULL;
  snprintf(buf, cap, "chatcmpl-%.*s", (int)v.n, v.p);
  return buf;
}

static int is_auth_error(const char *code) {
  static const char *const names[] = {"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
                                      "IncompleteSignatureException", "MissingAuthenticationTokenException",
                                      "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (!strcmp(code, names[i])) return 1;
  return 0;
}

/* Answers the client with a Bedrock error (status st, x-amzn-ErrorType value etv, body raw). */
static aigw_status error_answer(aigw_req *r, int st, aigw_str etv, aigw_str raw) {
  char et[128] = "", code[96] = "";
  if (etv.p && etv.n < sizeof et && !has_ctl(etv)) {
    memcpy(et, etv.p, etv.n);
    et[etv.n] = 0;
  }
  pc_err e = {0};
  xb_error_from_upstream(st, et[0] ? et : NULL, raw.p, raw.n, &e, code, sizeof code);
  char msg[520];
  if (is_auth_error(code) || ((st == 401 || st == 403) && e.status == 502))
    snprintf(msg, sizeof msg, "bedrock rejected the gateway's AWS credentials (%s): %s", code[0] ? code : "authentication", e.msg);
  else if (code[0])
    snprintf(msg, sizeof msg, "bedrock: %s: %s", code, e.msg);
  else
    snprintf(msg, sizeof msg, "bedrock: %s", e.msg);
  ing_error(H, r, e.status ? e.status : 502, NULL, msg);
  return AIGW_STOP;
}

static aigw_status upstream_error(aigw_req *r, int st, aigw_str raw) {
  aigw_str v = {0};
  if (H->header(r, AIGW_UPSTREAM_RESPONSE, AIGW_STR("x-amzn-errortype"), &v) != AIGW_OK) v = (aigw_str){0};
  return error_answer(r, st, v, raw);
}

/* ---- embeddings (InvokeModel) ---- */

/* A header's decimal value (X-Amzn-Bedrock-Input-Token-Count), -1 when absent or not a number. */
static long long dec_value(aigw_str v) {
  if (!v.n || v.n > 15) return -1;
  long long x = 0;
  for (size_t i = 0; i < v.n; i++) {
    if (v.p[i] < '0' || v.p[i] > '9') return -1;
    x = x * 10 + (v.p[i] - '0');
  }
  return x;
}

static void emb_free(br_rctx *ctx) {
  for (size_t i = 0; ctx->emb_resps && i < ctx->emb_n; i++) {
    cJSON_Delete(ctx->emb_resps[i]);
    ctx->emb_resps[i] = NULL;
  }
}

static void emb_cancel_all(br_rctx *ctx) {
  for (size_t i = 0; ctx->emb_calls && i < ctx->emb_n; i++)
    if (ctx->emb_calls[i]) H->cancel(ctx->emb_calls[i]); /* its callback runs later, CANCELLED */
}

static void emb_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud);

/* Starts calls until EMB_INFLIGHT run or none is left. 0, or -1 (logged). */
static int emb_start_more(aigw_req *r, br_rctx *ctx) {
  br_inst *in = ctx->in;
  while (ctx->emb_inflight < EMB_INFLIGHT && ctx->emb_next < ctx->emb_n) {
    size_t i = ctx->emb_next;
    pc_buf path = {0};
    aigw_call *call = NULL;
    ctx->emb_slots[i] = (emb_slot){ctx, i};
    if (pc_buf_adds(&path, in->prefix) == 0 && xb_invoke_path(&path, ctx->model) == 0)
      call = signed_post(in, r, path.p, ctx->emb_bodies[i], EMB_CALL_TIMEOUT_MS, emb_done, &ctx->emb_slots[i]);
    pc_buf_free(&path);
    if (!call) {
      H->log(r, AIGW_LOG_ERROR, "bedrock: could not start InvokeModel call-out %zu of %zu", i + 1, ctx->emb_n);
      return -1;
    }
    ctx->emb_calls[i] = call;
    ctx->emb_inflight++;
    ctx->emb_next++;
  }
  return 0;
}

/* Fan-out over: answer with an error, cancel the rest, resume. */
static void emb_fail(aigw_req *r, br_rctx *ctx, int status, const char *msg) {
  ctx->emb_over = 1;
  emb_cancel_all(ctx);
  if (msg) ing_error(H, r, status, NULL, msg);
  H->resume(r, AIGW_STOP);
}

static void emb_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud) {
  emb_slot *slot = ud;
  br_rctx *ctx = slot->ctx;
  size_t i = slot->idx;
  ctx->emb_calls[i] = NULL;
  ctx->emb_inflight--;
  if (st == AIGW_CALL_CANCELLED || ctx->emb_over) return; /* the request is ending / answered */
  if (st != AIGW_CALL_OK) {
    aigw_str e = {0};
    H->call_error(c, &e);
    char msg[300];
    snprintf(msg, sizeof msg, "bedrock: InvokeModel call %zu of %zu %s: %.*s", i + 1, ctx->emb_n,
             st == AIGW_CALL_TIMEOUT ? "timed out" : "failed", (int)(e.n > 200 ? 200 : e.n), e.p ? e.p : "");
    emb_fail(r, ctx, st == AIGW_CALL_TIMEOUT ? 504 : 502, msg);
    return;
  }
  int code = H->call_status_code(c);
  aigw_str body = {0};
  H->call_body(c, &body);
  if (code < 200 || code > 299) {
    aigw_str et = {0};
    if (H->call_header(c, AIGW_STR("x-amzn-errortype"), &et) != AIGW_OK) et = (aigw_str){0};
    error_answer(r, code, et, body);
    emb_fail(r, ctx, 0, NULL);
    return;
  }
  cJSON *j = body.n ? cJSON_ParseWithLength(body.p, body.n) : NULL;
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    emb_fail(r, ctx, 502, "bedrock answered an InvokeModel embeddings call with a body that is not a JSON object");
    return;
  }
  ctx->emb_resps[i] = j;
  aigw_str tv = {0};
  ctx->emb_tok[i] = H->call_header(c, AIGW_STR("x-amzn-bedrock-input-token-count"), &tv) == AIGW_OK ? dec_value(tv) : -1;
  ctx->emb_ndone++;
  if (emb_start_more(r, ctx) < 0) {
    emb_fail(r, ctx, 502, "bedrock: an InvokeModel call-out could not be started");
    return;
  }
  if (ctx->emb_ndone < ctx->emb_n) return;
  pc_err e = {0};
  cJSON *list = xb_embed_response(ctx->fam, (const cJSON *const *)ctx->emb_resps, ctx->emb_tok, ctx->emb_n, ctx->model,
                                  ctx->emb_base64, &e);
  emb_free(ctx);
  const cJSON *pt = list ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(list, "usage"), "prompt_tokens") : NULL;
  ctx->emb_tokens = cJSON_IsNumber(pt) ? (long long)pt->valuedouble : -1;
  char *txt = list ? cJSON_PrintUnformatted(list) : NULL;
  cJSON_Delete(list);
  if (!txt) {
    emb_fail(r, ctx, e.status ? e.status : 500, e.msg[0] ? e.msg : "out of memory");
    return;
  }
  ctx->emb_over = 1;
  ctx->emb_local = 1;
  int rc = H->provider_reply(r, 200, AIGW_STR("application/json"), (aigw_str){txt, strlen(txt)});
  free(txt);
  H->resume(r, rc == AIGW_OK ? AIGW_STOP : AIGW_ERROR);
}

/* The client's embeddings request with the route's model applied. NULL with *answered = 1
 * after a 400, or *answered = 0 (out of memory). */
static cJSON *embed_request(aigw_req *r, int *answered) {
  aigw_str raw = {0}, tm = {0};
  cJSON *j = NULL;
  *answered = 0;
  if (H->body_raw(r, AIGW_UPSTREAM_REQUEST, &raw) == AIGW_OK && raw.n) j = cJSON_ParseWithLength(raw.p, raw.n);
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    ing_error(H, r, 400, "invalid_request_error", "the embeddings request body must be a JSON object");
    *answered = 1;
    return NULL;
  }
  if (H->meta_get(r, "aigw.target_model", &tm) == AIGW_OK && tm.n) {
    char *m = dup_n(tm.p, tm.n);
    cJSON *v = m ? cJSON_CreateString(m) : NULL;
    H->free(m);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "model");
    if (!v || !cJSON_AddItemToObject(j, "model", v)) {
      cJSON_Delete(v);
      cJSON_Delete(j);
      return NULL;
    }
  }
  return j;
}

static aigw_status prep_embed(br_inst *in, aigw_req *r, br_rctx *ctx) {
  int answered;
  cJSON *oai = embed_request(r, &answered);
  if (!oai) return answered ? AIGW_STOP : AIGW_ERROR;
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(oai, "model");
  const char *model = cJSON_IsString(m) ? m->valuestring : NULL;
  if (!model || !model_ok(model)) {
    aigw_status s = bad_model(r, model);
    cJSON_Delete(oai);
    return s;
  }
  size_t mn = strlen(model);
  char *mcopy = H->req_alloc(r, mn + 1);
  if (!mcopy) {
    cJSON_Delete(oai);
    return AIGW_ERROR;
  }
  memcpy(mcopy, model, mn + 1);
  ctx->model = mcopy;
  ctx->fam = xb_emb_family_of(model);
  pc_err e = {0};
  cJSON *bodies = xb_embed_requests(oai, ctx->fam, &ctx->emb_base64, &e);
  cJSON_Delete(oai);
  if (!bodies) {
    ing_error(H, r, e.status ? e.status : 400, NULL, e.msg[0] ? e.msg : "the embeddings request cannot be translated for bedrock");
    return AIGW_STOP;
  }
  size_t n = (size_t)cJSON_GetArraySize(bodies);
  ctx->emb_n = n;
  ctx->in = in;
  if (n == 1) { /* one InvokeModel call: the upstream request itself */
    char *txt = cJSON_PrintUnformatted(cJSON_GetArrayItem(bodies, 0));
    cJSON_Delete(bodies);
    if (!txt) return AIGW_ERROR;
    int rc = H->set_body(r, AIGW_UPSTREAM_REQUEST, (aigw_str){txt, strlen(txt)});
    free(txt);
    if (rc != AIGW_OK) return AIGW_ERROR;
    pc_buf path = {0};
    int ok = pc_buf_adds(&path, in->prefix) == 0 && xb_invoke_path(&path, ctx->model) == 0 && sign_upstream(in, r, &path, 0) == 0;
    pc_buf_free(&path);
    return ok ? AIGW_CONTINUE : AIGW_ERROR;
  }
  /* Titan with several inputs: one signed call-out per input (see the top of the file) */
  ctx->emb_bodies = H->req_alloc(r, n * sizeof *ctx->emb_bodies);
  ctx->emb_resps = H->req_alloc(r, n * sizeof *ctx->emb_resps);
  ctx->emb_tok = H->req_alloc(r, n * sizeof *ctx->emb_tok);
  ctx->emb_calls = H->req_alloc(r, n * sizeof *ctx->emb_calls);
  ctx->emb_slots = H->req_alloc(r, n * sizeof *ctx->emb_slots);
  int ok = ctx->emb_bodies && ctx->emb_resps && ctx->emb_tok && ctx->emb_calls && ctx->emb_slots;
  for (size_t i = 0; ok && i < n; i++) {
    char *txt = cJSON_PrintUnformatted(cJSON_GetArrayItem(bodies, (int)i));
    size_t tn = txt ? strlen(txt) : 0;
    char *cp = txt ? H->req_alloc(r, tn + 1) : NULL;
    if (cp) memcpy(cp, txt, tn + 1);
    free(txt);
    ctx->emb_bodies[i] = (aigw_str){cp, tn};
    ok = cp != NULL;
  }
  cJSON_Delete(bodies);
  if (!ok) {
    ctx->emb_n = 0; /* nothing allocated to free */
    return AIGW_ERROR;
  }
  if (emb_start_more(r, ctx) < 0) {
    ctx->emb_over = 1;
    emb_cancel_all(ctx);
    ing_error(H, r, 502, NULL, "bedrock: an InvokeModel call-out could not be started");
    return AIGW_STOP;
  }
  return AIGW_PAUSE;
}

/* on_response for embeddings: the InvokeModel answer (or the fan-out's own list) -> OpenAI. */
static aigw_status embed_response(aigw_req *r, br_rctx *ctx, int st, aigw_str raw) {
  if (ctx->emb_local) { /* built by emb_done; only the usage is left to report */
    aigw_usage us = {sizeof(aigw_usage), ctx->emb_tokens, 0, -1, -1, -1};
    H->set_usage(r, &us);
    return AIGW_CONTINUE;
  }
  if (st < 200 || st > 299) return upstream_error(r, st, raw);
  cJSON *j = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  aigw_str tv = {0};
  long long tok = H->header(r, AIGW_UPSTREAM_RESPONSE, AIGW_STR("x-amzn-bedrock-input-token-count"), &tv) == AIGW_OK ? dec_value(tv) : -1;
  pc_err e = {0};
  const cJSON *one = j;
  cJSON *list = cJSON_IsObject(j) ? xb_embed_response(ctx->fam, &one, &tok, 1, ctx->model, ctx->emb_base64, &e) : NULL;
  cJSON_Delete(j);
  if (!list) {
    ing_error(H, r, e.status ? e.status : 502, "upstream_error", e.msg[0] ? e.msg : "bedrock answered 2xx with a body that is not an InvokeModel embeddings answer");
    return AIGW_STOP;
  }
  const cJSON *pt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(list, "usage"), "prompt_tokens");
  aigw_usage us = {sizeof(aigw_usage), cJSON_IsNumber(pt) ? (int64_t)pt->valuedouble : -1, 0, -1, -1, -1};
  H->set_usage(r, &us);
  char *txt = cJSON_PrintUnformatted(list);
  cJSON_Delete(list);
  if (!txt) return AIGW_ERROR;
  int rc = H->set_body(r, AIGW_UPSTREAM_RESPONSE, (aigw_str){txt, strlen(txt)});
  free(txt);
  return rc == AIGW_OK ? AIGW_CONTINUE : AIGW_ERROR;
}

static aigw_status br_on_response(void *vi, aigw_req *r, void **rctx) {
  (void)vi;
  br_rctx *ctx = rctx ? *rctx : NULL;
  if (!ctx || !ctx->model) return AIGW_CONTINUE;
  int st = H->status(r, AIGW_UPSTREAM_RESPONSE);
  aigw_str raw = {0};
  H->body_raw(r, AIGW_UPSTREAM_RESPONSE, &raw);
  if (ctx->api == AIGW_API_EMBEDDINGS) return embed_response(r, ctx, st, raw);
  if (st < 200 || st > 299) return upstream_error(r, st, raw);
  if (ctx->xs_init) {
    ing_error(H, r, 502, "upstream_error", "bedrock answered a stream request without an event stream");
    return AIGW_STOP;
  }
  cJSON *conv = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  pc_err e = {0};
  char idb[128];
  cJSON *hub = cJSON_IsObject(conv) ? xb_resp_to_hub(conv, resp_id(r, idb, sizeof idb), ctx->model, now_s(), &e) : NULL;
  cJSON_Delete(conv);
  if (!hub) {
    ing_error(H, r, 502, "upstream_error", e.msg[0] ? e.msg : "bedrock answered 2xx with a body that is not a Converse response");
    return AIGW_STOP;
  }
  return ing_answer_hub(H, r, hub);
}

/* ---- streams ---- */


static void stream_fail(aigw_req *r, br_rctx *ctx, const pc_err *e, const char *dflt) {
  char msg[480];
  snprintf(msg, sizeof msg, "bedrock: %s", e->msg[0] ? e->msg : dflt);
  ing_stream_error(H, r, &ctx->st, e->status ? e->status : 502, msg);
}

static aigw_status br_on_stream_data(void *vi, aigw_req *r, void **rctx, const char *p, size_t n) {
  (void)vi;
  br_rctx *ctx = rctx ? *rctx : NULL;
  if (!ctx || !ctx->xs_init || ctx->st.done) return AIGW_CONTINUE; /* after the end: ignored */
  if (!ctx->got_data) {
    ctx->got_data = 1;
    char idb[128];
    if (resp_id(r, idb, sizeof idb)) snprintf(ctx->xs.id, sizeof ctx->xs.id, "%s", idb);
  }
  if (ctx->holding) {
    if (ctx->held.n + n < (4u << 20) && pc_buf_add(&ctx->held, p, n) == 0) return AIGW_CONTINUE;
    /* too much before the count is back: go on with the estimate */
    ctx->cnt_pending = 0;
    if (ctx->cnt) H->cancel(ctx->cnt);
    ctx->cnt = NULL;
    br_release(r, ctx);
  }
  br_feed(r, ctx, p, n);
  return AIGW_CONTINUE;
}

static void br_feed(aigw_req *r, br_rctx *ctx, const char *p, size_t n) {
  if (ctx->st.done) return;
  ing_fwd f = {H, r, &ctx->st};
  pc_err e = {0};
  int rc = xb_stream_feed(&ctx->xs, p, n, ing_fwd_chunk, &f, &e);
  if (rc == XB_EUPSTREAM) stream_fail(r, ctx, &e, "the stream reported an error");
  else if (rc < 0) stream_fail(r, ctx, &e, "the event stream could not be read");
  else if (rc == 0 && ctx->xs.done) ing_stream_end(H, r, &ctx->st);
  /* rc > 0: ing_stream_chunk failed and already ended the client's stream */
}

static void br_end(aigw_req *r, br_rctx *ctx) {
  if (ctx->st.done) return;
  pc_err e = {0};
  if (xb_stream_end(&ctx->xs, &e) < 0) stream_fail(r, ctx, &e, "the stream ended early");
  else ing_stream_end(H, r, &ctx->st); /* messageStop seen, metadata missing: still complete */
}

static aigw_status br_on_stream_end(void *vi, aigw_req *r, void **rctx) {
  (void)vi;
  br_rctx *ctx = rctx ? *rctx : NULL;
  if (!ctx || !ctx->xs_init || ctx->st.done) return AIGW_CONTINUE;
  if (ctx->holding && ctx->cnt_pending) {
    ctx->held_end = 1; /* the held bytes and the end go out from the count's callback */
    return AIGW_PAUSE;
  }
  br_end(r, ctx);
  return AIGW_CONTINUE;
}

static void br_on_done(void *vi, aigw_req *r, void *rctx) {
  (void)vi;
  (void)r;
  br_rctx *ctx = rctx;
  if (!ctx) return;
  if (ctx->cnt_pending && ctx->cnt) {
    ctx->cnt_pending = 0;
    H->cancel(ctx->cnt);
    ctx->cnt = NULL;
  }
  pc_buf_free(&ctx->held);
  if (ctx->xs_init) xb_stream_free(&ctx->xs);
  if (ctx->st_init) ing_stream_free(&ctx->st);
  ctx->xs_init = ctx->st_init = 0;
  emb_free(ctx);
}

static const aigw_provider br_provider = {
    .struct_size = sizeof(aigw_provider),
    .wire_format = "bedrock",
    .prepare = br_prepare,
    .on_response = br_on_response,
    .on_stream_data = br_on_stream_data,
    .on_stream_end = br_on_stream_end,
};

static const aigw_plugin br_plugin = {
    AIGW_PLUGIN_HEADER,
    .name = "bedrock",
    .version = "0.1.0",
    .flags = AIGW_IS_PROVIDER,
    .create = br_create,
    .destroy = br_destroy,
    .on_done = br_on_done,
    .provider = &br_provider,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  if (!h || h->abi_major != AIGW_ABI_MAJOR) {
    snprintf(err, errlen, "bedrock: host ABI major %u, plugin built for %d", h ? (unsigned)h->abi_major : 0u, AIGW_ABI_MAJOR);
    return NULL;
  }
  if (!AIGW_HAS(h, provider_emit) || !AIGW_HAS(h, body_member)) {
    snprintf(err, errlen, "bedrock: the host lacks provider_emit (needs a newer aigw)");
    return NULL;
  }
  H = h;
  return &br_plugin;
}
