/* gemini.c - provider adapter for Google Gemini: the Gemini Developer API ("AI Studio") and
 * Vertex AI, both through the hub format (docs/translation.md).
 *
 * Clients: OpenAI chat (route api "chat") and Anthropic messages ("messages") go through
 * ingress.h (client -> hub) and xlate_gemini.h (hub -> generateContent /
 * streamGenerateContent?alt=sse, and back); OpenAI embeddings ("embeddings") become
 * batchEmbedContents (AI Studio) or predict (Vertex); "models" lists the AI Studio models in
 * OpenAI's shape. Gemini streams have no end marker: the end goes out from on_stream_end.
 * Passthrough routes: Anthropic's /v1/messages/count_tokens becomes countTokens (answer
 * {"input_tokens": N}, errors in Anthropic's shape); any other path goes to the API host with
 * the client's path, query and body and the provider's credential (see README.md).
 * The Gemini model in the URL is the route target's model ("aigw.target_model"), else the
 * client's "model".
 *
 * Config:
 *   mode              "aistudio" or "vertex"; default: vertex when project, location,
 *                     credentials or credentials_file is set, else aistudio
 *   api_key           aistudio: the key, sent as x-goog-api-key (required)
 *   base_url          override of the API host, e.g. "http://127.0.0.1:8080" (no path)
 *   project           vertex: project id (default: the key's project_id)
 *   location          vertex: region or "global" (default "us-central1")
 *   credentials       vertex: the service-account key JSON, inline (object or JSON text)
 *   credentials_file  vertex: path of the key JSON; neither given: $GOOGLE_APPLICATION_CREDENTIALS
 *   token_uri         vertex: OAuth token endpoint override (default: the key's token_uri)
 *   headers           extra upstream headers (object name -> string)
 *   schema_openapi, hoist_mid_system, thinking_level, fill_signatures: booleans, see
 *                     xlate_gemini.h (xg_req_opts)
 * Everything is checked at create (the key is parsed and test-signed once).
 *
 * Threads and state. The instance (gm_inst) is immutable after create and shared by every
 * worker. The one mutable thing, the Vertex access-token cache, lives in a separately allocated
 * gm_auth owned by the instance (created in create, freed in destroy), guarded by its pthread
 * mutex: the gj_cache (token, expiry, refresh flag), a mint sequence number and the outcome of
 * the last failed mint. No process globals besides the host table H.
 *
 * Vertex tokens (gcp_jwt.h): prepare looks at the cache under the lock and
 *   - uses a token with >= 5 min left;
 *   - with < 5 min left (still usable), or none: this request becomes the one minter (single
 *     flight): it signs a JWT, POSTs it to token_uri with the host's non-blocking h->http_call
 *     and returns PAUSE; the callback stores the token and resumes. A failed refresh of a
 *     still-usable token falls back to that token; without one the client gets 502 (the
 *     endpoint refused the credentials) or 503 (the endpoint could not be reached);
 *   - no usable token while a mint is in flight (another request, maybe on another worker):
 *     PAUSE and poll the cache with h->timer (5 ms, doubling to 50 ms, at most 15 s). A
 *     waiter takes the token when it appears, fails with the minter's error when the mint it
 *     waited for failed, and becomes the minter itself when the mint was abandoned (its
 *     client went away).
 *   Every PAUSE has exactly one pending call (the mint or one timer); each callback resumes at
 *   most once, and a CANCELLED callback (client gone) only releases the mint flag, never
 *   resumes. Callback state is request memory (h->req_alloc), alive until on_done, which runs
 *   after every callback. Vertex answering 401 (token expired or revoked early) drops the cached
 *   token, so the next request mints; that request's client gets a 503 (SDKs retry it).
 * Secrets (api_key, tokens, the private key) are never logged. */
#include <aigw/plugin.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gcp_jwt.h"
#include "ingress.h"
#include "xlate_gemini.h"

static const aigw_host *H;

#define GM_MINT_TIMEOUT_MS 10000
#define GM_WAIT_MAX_MS 15000
#define GM_POLL_FIRST_MS 5
#define GM_POLL_MAX_MS 50

typedef struct gm_auth {
  pthread_mutex_t mu;
  gj_cache cache;       /* token, expiry, single-flight flag */
  uint64_t mint_seq;    /* number of mints started; the running one's number */
  uint64_t fail_seq;    /* number of the last mint that failed (0: none) */
  int fail_status;      /* 502 / 503 */
  char fail_msg[400];
} gm_auth;

typedef struct gm_inst {
  xg_flavor flavor;
  char *base;     /* NULL: the flavor's default host */
  char *api_key;  /* aistudio */
  char *project;  /* vertex */
  char *location; /* vertex */
  gj_key key;     /* vertex; key.token_uri is the endpoint used */
  gm_auth *auth;  /* vertex: the mutable token cache (see the header) */
  xg_req_opts opts;
  aigw_str *hdrs; /* name, value pairs */
  size_t nhdrs;
} gm_inst;

typedef struct gm_rctx {
  gm_inst *in;
  aigw_api api;
  int dec_init, st_init;
  xg_stream dec;  /* Gemini SSE -> hub chunks */
  ing_stream st;  /* hub chunks -> client events */
  char model[160];
  int embed_base64;
  int count; /* Anthropic count_tokens (passthrough route) -> countTokens */
  int pass;  /* any other passthrough request: base URL + the client's path, untouched */
  /* vertex auth (request memory) */
  char *token;     /* the bearer token this request sent */
  char *fallback;  /* a still-usable token while this request refreshes */
  uint64_t my_seq; /* the mint this request runs (0: none) */
  uint64_t wait_seq; /* the mint this request waits for (0: none) */
  uint32_t poll_ms, waited_ms;
} gm_rctx;

/* ---- small helpers ---- */

static char *dup_n(const char *p, size_t n) {
  char *s = malloc(n + 1);
  if (s) {
    memcpy(s, p, n);
    s[n] = 0;
  }
  return s;
}

static char *req_dup(aigw_req *r, const char *s) {
  size_t n = strlen(s);
  char *d = H->req_alloc(r, n + 1);
  if (d) memcpy(d, s, n + 1);
  return d;
}



static int is_http_url(aigw_str s) {
  return ((s.n > 8 && !memcmp(s.p, "https://", 8)) || (s.n > 7 && !memcmp(s.p, "http://", 7))) && !pc_has_ctl(s) &&
         !memchr(s.p, ' ', s.n) && !memchr(s.p, '?', s.n) && !memchr(s.p, '#', s.n);
}



/* Reads a whole (small) file. Returns malloc'd bytes or NULL with a reason in why. */
static char *read_file(const char *path, size_t *n, char *why, size_t whyn) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(why, whyn, "cannot open %.200s: %s", path, strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 20, len = 0;
  char *buf = malloc(cap);
  if (!buf) {
    fclose(f);
    snprintf(why, whyn, "out of memory");
    return NULL;
  }
  len = fread(buf, 1, cap, f);
  int err = ferror(f), more = !feof(f);
  fclose(f);
  if (err || more) {
    free(buf);
    snprintf(why, whyn, err ? "cannot read %.200s" : "%.200s is larger than 1 MiB: not a service-account key", path);
    return NULL;
  }
  *n = len;
  return buf;
}

/* ---- create / destroy ---- */

static void gm_destroy(void *vi) {
  gm_inst *in = vi;
  if (!in) return;
  if (in->auth) {
    pthread_mutex_destroy(&in->auth->mu);
    gj_cache_free(&in->auth->cache);
    free(in->auth);
  }
  gj_key_free(&in->key);
  for (size_t i = 0; i < in->nhdrs * 2; i++) free((void *)in->hdrs[i].p);
  free(in->hdrs);
  free(in->base);
  if (in->api_key) {
    volatile char *p = in->api_key;
    while (*p) *p++ = 0;
  }
  free(in->api_key);
  free(in->project);
  free(in->location);
  free(in);
}

static const char *const KNOWN[] = {"mode", "api_key", "base_url", "project", "location", "credentials",
                                    "credentials_file", "token_uri", "headers", "schema_openapi",
                                    "hoist_mid_system", "thinking_level", "fill_signatures", NULL};

/* Optional string member: 1 found (out set), 0 absent, -1 wrong type (reported). */
static int opt_str(const aigw_json *cfg, const char *k, aigw_str *out, aigw_diag *d) {
  const aigw_json *v = cfg ? H->json_get(cfg, k) : NULL;
  if (!v) return 0;
  if (H->json_str(v, out) != AIGW_OK || pc_has_ctl(*out)) {
    char ptr[64];
    snprintf(ptr, sizeof ptr, "/%s", k);
    H->diag_error(d, ptr, "must be a string without control characters");
    return -1;
  }
  return 1;
}

static int opt_bool(const aigw_json *cfg, const char *k, int *out, aigw_diag *d) {
  const aigw_json *v = cfg ? H->json_get(cfg, k) : NULL;
  if (!v) return 0;
  if (H->json_bool(v, out) != AIGW_OK) {
    char ptr[64];
    snprintf(ptr, sizeof ptr, "/%s", k);
    H->diag_error(d, ptr, "must be true or false");
    return -1;
  }
  return 1;
}

/* Vertex: load, parse and test-sign the service-account key. 0 or -1 (reported). */
static int load_key(gm_inst *in, const aigw_json *cfg, aigw_str token_uri, aigw_diag *d) {
  const aigw_json *cj = H->json_get(cfg, "credentials");
  aigw_str cf = {0};
  int has_cf = opt_str(cfg, "credentials_file", &cf, d);
  if (has_cf < 0) return -1;
  if (cj && has_cf) {
    H->diag_error(d, "/credentials_file", "give either credentials or credentials_file, not both");
    return -1;
  }
  const char *ptr = cj ? "/credentials" : "/credentials_file";
  char *text = NULL, why[300] = "";
  size_t n = 0;
  if (cj) {
    aigw_str s;
    if (H->json_type(cj) == AIGW_JSON_OBJECT) {
      cJSON *o = pc_to_cjson(H, cj);
      text = o ? cJSON_PrintUnformatted(o) : NULL;
      cJSON_Delete(o);
      if (!text) {
        H->diag_error(d, ptr, "cannot be read (out of memory or nested too deep)");
        return -1;
      }
      n = strlen(text);
    } else if (H->json_str(cj, &s) == AIGW_OK && s.n && s.p[0] == '{') {
      text = dup_n(s.p, s.n);
      n = s.n;
    } else {
      H->diag_error(d, ptr, "must be the service-account key JSON (an object, or its text); for a path use credentials_file");
      return -1;
    }
  } else {
    char path[1024];
    if (has_cf) {
      if (!cf.n || cf.n >= sizeof path) {
        H->diag_error(d, ptr, "must be the path of a service-account key JSON file");
        return -1;
      }
      memcpy(path, cf.p, cf.n);
      path[cf.n] = 0;
    } else {
      const char *env = getenv("GOOGLE_APPLICATION_CREDENTIALS");
      if (!env || !*env || strlen(env) >= sizeof path) {
        H->diag_error(d, ptr, "vertex mode needs service-account credentials: set credentials (the key JSON), credentials_file, or GOOGLE_APPLICATION_CREDENTIALS");
        return -1;
      }
      snprintf(path, sizeof path, "%s", env);
    }
    text = read_file(path, &n, why, sizeof why);
    if (!text) {
      H->diag_error(d, ptr, "%s%s", has_cf ? "" : "GOOGLE_APPLICATION_CREDENTIALS: ", why);
      return -1;
    }
  }
  pc_err e = {0};
  int rc = gj_key_parse(text, n, &in->key, &e);
  memset(text, 0, n);
  free(text);
  if (rc < 0) {
    H->diag_error(d, ptr, "%s", e.msg);
    return -1;
  }
  if (token_uri.n) {
    char *t = dup_n(token_uri.p, token_uri.n);
    if (!t) return -1;
    free(in->key.token_uri);
    in->key.token_uri = t;
  }
  if (!in->key.token_uri || strncmp(in->key.token_uri, "http", 4)) {
    H->diag_error(d, token_uri.n ? "/token_uri" : ptr, "the token endpoint must be an http:// or https:// URL");
    return -1;
  }
  pc_buf jwt = {0};
  rc = gj_assertion(&in->key, NULL, (long long)time(NULL), &jwt, &e);
  pc_buf_free(&jwt);
  if (rc < 0) {
    H->diag_error(d, ptr, "private_key: %s", e.msg);
    return -1;
  }
  return 0;
}

static void *gm_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d) {
  (void)h;
  int bad = 0;
  if (!cfg || H->json_type(cfg) != AIGW_JSON_OBJECT) {
    H->diag_error(d, "", "provider gemini: config must be an object (mode, api_key or project + credentials)");
    return NULL;
  }
  for (size_t i = 0; i < H->json_len(cfg); i++) {
    aigw_str k;
    if (H->json_key_at(cfg, i, &k) != AIGW_OK) continue;
    int ok = 0;
    for (size_t j = 0; KNOWN[j]; j++) ok |= pc_str_eq(k, KNOWN[j]);
    if (!ok) {
      char ptr[128];
      snprintf(ptr, sizeof ptr, "/%.*s", (int)(k.n > 100 ? 100 : k.n), k.p);
      H->diag_error(d, ptr, "unknown option (known: mode, api_key, base_url, project, location, credentials, credentials_file, token_uri, headers, schema_openapi, hoist_mid_system, thinking_level, fill_signatures)");
      bad = 1;
    }
  }
  aigw_str mode = {0}, key = {0}, base = {0}, project = {0}, location = {0}, token_uri = {0};
  int has_mode = opt_str(cfg, "mode", &mode, d), has_key = opt_str(cfg, "api_key", &key, d),
      has_base = opt_str(cfg, "base_url", &base, d), has_proj = opt_str(cfg, "project", &project, d),
      has_loc = opt_str(cfg, "location", &location, d), has_tu = opt_str(cfg, "token_uri", &token_uri, d);
  if (has_mode < 0 || has_key < 0 || has_base < 0 || has_proj < 0 || has_loc < 0 || has_tu < 0) bad = 1;
  int vertex_hint = has_proj > 0 || has_loc > 0 || H->json_get(cfg, "credentials") || H->json_get(cfg, "credentials_file");
  xg_flavor flavor = vertex_hint ? XG_VERTEX : XG_AISTUDIO;
  if (has_mode > 0) {
    if (pc_str_eq(mode, "vertex")) flavor = XG_VERTEX;
    else if (pc_str_eq(mode, "aistudio")) flavor = XG_AISTUDIO;
    else {
      H->diag_error(d, "/mode", "must be \"aistudio\" (Gemini Developer API, api_key) or \"vertex\" (Vertex AI, service account)");
      bad = 1;
    }
  }
  if (has_base > 0) {
    while (base.n && base.p[base.n - 1] == '/') base.n--;
    if (!is_http_url(base)) {
      H->diag_error(d, "/base_url", "must be an http:// or https:// URL without query, e.g. \"https://generativelanguage.googleapis.com\"");
      bad = 1;
    }
  }
  if (has_tu > 0 && !is_http_url(token_uri)) {
    H->diag_error(d, "/token_uri", "must be an http:// or https:// URL");
    bad = 1;
  }
  if (flavor == XG_AISTUDIO) {
    if (has_key <= 0 || !key.n) {
      if (has_key >= 0) H->diag_error(d, "/api_key", "required in aistudio mode (the Gemini API key, sent as x-goog-api-key)");
      bad = 1;
    }
    static const char *const vonly[] = {"project", "location", "credentials", "credentials_file", "token_uri"};
    for (size_t i = 0; i < sizeof vonly / sizeof *vonly; i++)
      if (H->json_get(cfg, vonly[i])) {
        char ptr[64];
        snprintf(ptr, sizeof ptr, "/%s", vonly[i]);
        H->diag_error(d, ptr, "only for mode \"vertex\"");
        bad = 1;
      }
  } else if (has_key > 0) {
    H->diag_error(d, "/api_key", "vertex mode authenticates with a service account (credentials); api_key is for mode \"aistudio\"");
    bad = 1;
  }
  const aigw_json *hdrs = H->json_get(cfg, "headers");
  if (hdrs && H->json_type(hdrs) != AIGW_JSON_OBJECT) {
    H->diag_error(d, "/headers", "must be an object of header name -> string value");
    bad = 1;
    hdrs = NULL;
  }
  for (size_t i = 0; hdrs && i < H->json_len(hdrs); i++) {
    aigw_str name = {"", 0}, val;
    H->json_key_at(hdrs, i, &name);
    const aigw_json *hv = pc_member_at(H, hdrs, i, NULL);
    if (!hv || H->json_str(hv, &val) != AIGW_OK || pc_has_ctl(val) || !name.n || pc_has_ctl(name)) {
      H->diag_error(d, "/headers", "header %.*s: must be a string without control characters", (int)(name.n > 64 ? 64 : name.n), name.p);
      bad = 1;
    }
  }
  int b[4] = {0, 0, 0, 0};
  if (opt_bool(cfg, "schema_openapi", &b[0], d) < 0 || opt_bool(cfg, "hoist_mid_system", &b[1], d) < 0 ||
      opt_bool(cfg, "thinking_level", &b[2], d) < 0 || opt_bool(cfg, "fill_signatures", &b[3], d) < 0)
    bad = 1;
  if (bad) return NULL;

  gm_inst *in = calloc(1, sizeof *in);
  if (!in) goto nomem;
  in->flavor = flavor;
  in->opts = (xg_req_opts){.schema_openapi = b[0], .hoist_mid_system = b[1], .thinking_level = b[2], .fill_signatures = b[3]};
  if (has_base > 0 && !(in->base = dup_n(base.p, base.n))) goto nomem;
  if (flavor == XG_AISTUDIO) {
    if (!(in->api_key = dup_n(key.p, key.n))) goto nomem;
  } else {
    if (load_key(in, cfg, has_tu > 0 ? token_uri : (aigw_str){0}, d) < 0) goto fail;
    if (has_proj > 0) in->project = dup_n(project.p, project.n);
    else if (in->key.project_id) in->project = dup_n(in->key.project_id, strlen(in->key.project_id));
    else {
      H->diag_error(d, "/project", "required in vertex mode (or a project_id in the service-account key)");
      goto fail;
    }
    in->location = has_loc > 0 ? dup_n(location.p, location.n) : dup_n("us-central1", 11);
    if (!in->project || !in->location) goto nomem;
    pc_buf u = {0};
    int prc = xg_url(&u, XG_VERTEX, NULL, in->project, "global", "gemini-2.5-flash", "generateContent");
    pc_buf_free(&u);
    int lrc = xg_url(&u, XG_VERTEX, NULL, "p", in->location, "gemini-2.5-flash", "generateContent");
    pc_buf_free(&u);
    if (prc < 0) H->diag_error(d, has_proj > 0 ? "/project" : "/credentials", "project id \"%.80s\" must be [A-Za-z0-9._@-]+", in->project);
    if (lrc < 0) H->diag_error(d, "/location", "must be a region such as \"us-central1\" or \"global\" ([A-Za-z0-9._@-]+)");
    if (prc < 0 || lrc < 0) goto fail;
    if (!(in->auth = calloc(1, sizeof *in->auth))) goto nomem;
    if (pthread_mutex_init(&in->auth->mu, NULL) != 0) {
      free(in->auth);
      in->auth = NULL;
      goto nomem;
    }
  }
  size_t nh = hdrs ? H->json_len(hdrs) : 0;
  if (nh) {
    if (!(in->hdrs = calloc(nh * 2, sizeof *in->hdrs))) goto nomem;
    for (size_t i = 0; i < nh; i++) {
      aigw_str name = {"", 0}, val = {"", 0};
      H->json_key_at(hdrs, i, &name);
      H->json_str(pc_member_at(H, hdrs, i, NULL), &val);
      in->hdrs[2 * i] = (aigw_str){dup_n(name.p, name.n), name.n};
      in->hdrs[2 * i + 1] = (aigw_str){dup_n(val.p, val.n), val.n};
      in->nhdrs++;
      if (!in->hdrs[2 * i].p || !in->hdrs[2 * i + 1].p) goto nomem;
    }
  }
  return in;
nomem:
  H->diag_error(d, "", "out of memory");
fail:
  gm_destroy(in);
  return NULL;
}

/* ---- Vertex access tokens ---- */

static long long now_s(void) { return (long long)time(NULL); }

static void set_bearer(aigw_req *r, gm_rctx *ctx, const char *tok) {
  size_t n = strlen(tok);
  char *v = H->req_alloc(r, n + 8);
  if (!v) return;
  memcpy(v, "Bearer ", 7);
  memcpy(v + 7, tok, n + 1);
  ctx->token = v + 7;
  H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("authorization"), (aigw_str){v, n + 7});
}

static void mint_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud);
static void wait_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud);
static void gm_err(aigw_req *r, gm_rctx *ctx, int status, const char *msg);

/* Ends this request's mint as failed (lock held by the caller). */
static void mint_failed_locked(gm_auth *a, gm_rctx *ctx, int status, const char *msg) {
  if (a->mint_seq == ctx->my_seq) gj_cache_failed(&a->cache);
  if (status) {
    if (ctx->my_seq > a->fail_seq) a->fail_seq = ctx->my_seq;
    a->fail_status = status;
    snprintf(a->fail_msg, sizeof a->fail_msg, "%s", msg);
  }
  ctx->my_seq = 0;
}

/* Starts the token request; the caller PAUSEs on 0. -1: answered with an error. */
static int mint_start(aigw_req *r, gm_rctx *ctx) {
  gm_inst *in = ctx->in;
  pc_buf jwt = {0}, body = {0};
  pc_err e = {0};
  char msg[400];
  int status = 503;
  aigw_call *c = NULL;
  if (gj_assertion(&in->key, NULL, now_s(), &jwt, &e) < 0) {
    snprintf(msg, sizeof msg, "vertex: cannot sign the service-account JWT: %.300s", e.msg);
    status = 500;
  } else if (gj_token_body(jwt.p, &body) < 0) {
    snprintf(msg, sizeof msg, "vertex: out of memory");
    status = 500;
  } else {
    aigw_str hdrs[] = {AIGW_STR("content-type"), AIGW_STR("application/x-www-form-urlencoded"),
                       AIGW_STR("accept"), AIGW_STR("application/json")};
    aigw_http_spec sp = {.struct_size = sizeof sp,
                         .method = "POST",
                         .url = in->key.token_uri,
                         .headers = hdrs,
                         .nheaders = 2,
                         .body = {body.p, body.n},
                         .timeout_ms = GM_MINT_TIMEOUT_MS,
                         .max_response_bytes = 64 * 1024};
    c = H->http_call(r, &sp, mint_done, ctx);
    if (!c) snprintf(msg, sizeof msg, "vertex: could not start the access-token request to %.200s", in->key.token_uri);
  }
  pc_buf_free(&jwt);
  pc_buf_free(&body);
  if (c) return 0;
  H->log(r, AIGW_LOG_WARN, "%s", msg);
  pthread_mutex_lock(&in->auth->mu);
  mint_failed_locked(in->auth, ctx, status, msg);
  pthread_mutex_unlock(&in->auth->mu);
  if (ctx->fallback) {
    set_bearer(r, ctx, ctx->fallback);
    return 1;
  }
  gm_err(r, ctx, status, msg);
  return -1;
}

/* The token decision for this request. CONTINUE: the header is set; PAUSE: a mint or a wait
 * timer is pending; STOP: answered with an error. */
static aigw_status auth_step(aigw_req *r, gm_rctx *ctx) {
  gm_inst *in = ctx->in;
  gm_auth *a = in->auth;
  char *tok = NULL;
  int fail_status = 0;
  char fail_msg[sizeof a->fail_msg];
  pthread_mutex_lock(&a->mu);
  long long now = now_s();
  int usable = a->cache.token && a->cache.expires_at - now >= GJ_USABLE_MIN;
  if (ctx->wait_seq && !usable && a->fail_seq >= ctx->wait_seq) {
    /* the mint this request waited for failed: same answer as its own client got */
    fail_status = a->fail_status;
    memcpy(fail_msg, a->fail_msg, sizeof fail_msg);
    pthread_mutex_unlock(&a->mu);
    gm_err(r, ctx, fail_status, fail_msg);
    return AIGW_STOP;
  }
  gj_action act = gj_cache_check(&a->cache, now);
  if (act == GJ_REFRESH || act == GJ_USE_REFRESH) ctx->my_seq = ++a->mint_seq;
  if (act == GJ_USE || act == GJ_USE_REFRESH) tok = req_dup(r, a->cache.token);
  if (act == GJ_WAIT && !ctx->wait_seq) ctx->wait_seq = a->mint_seq;
  if ((act == GJ_USE && !tok) || (act == GJ_USE_REFRESH && !tok)) {
    if (act == GJ_USE_REFRESH) mint_failed_locked(a, ctx, 0, "");
    pthread_mutex_unlock(&a->mu);
    return AIGW_ERROR;
  }
  pthread_mutex_unlock(&a->mu);

  switch (act) {
  case GJ_USE:
    set_bearer(r, ctx, tok);
    return AIGW_CONTINUE;
  case GJ_USE_REFRESH:
  case GJ_REFRESH: {
    ctx->fallback = tok; /* NULL for GJ_REFRESH */
    ctx->wait_seq = 0;
    int rc = mint_start(r, ctx);
    return rc == 0 ? AIGW_PAUSE : rc > 0 ? AIGW_CONTINUE : AIGW_STOP;
  }
  case GJ_WAIT:
  default:
    if (ctx->waited_ms >= GM_WAIT_MAX_MS) {
      gm_err(r, ctx, 503, "vertex: timed out waiting for the access token another request is fetching");
      return AIGW_STOP;
    }
    if (!ctx->poll_ms) ctx->poll_ms = GM_POLL_FIRST_MS;
    if (!H->timer(r, ctx->poll_ms, wait_done, ctx)) {
      gm_err(r, ctx, 500, "vertex: cannot wait for the access token (timer)");
      return AIGW_STOP;
    }
    ctx->waited_ms += ctx->poll_ms;
    if (ctx->poll_ms < GM_POLL_MAX_MS) ctx->poll_ms = ctx->poll_ms * 2 > GM_POLL_MAX_MS ? GM_POLL_MAX_MS : ctx->poll_ms * 2;
    return AIGW_PAUSE;
  }
}

/* From a callback of a paused prepare: resume unless still paused. */
static void resume_with(aigw_req *r, aigw_status st) {
  if (st == AIGW_PAUSE) return;
  H->resume(r, st == AIGW_CONTINUE ? AIGW_CONTINUE : st == AIGW_STOP ? AIGW_STOP : AIGW_ERROR);
}

static void wait_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud) {
  (void)c;
  gm_rctx *ctx = ud;
  if (st == AIGW_CALL_CANCELLED) return; /* the request is ending: nothing to release, no resume */
  resume_with(r, auth_step(r, ctx));
}

static void mint_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud) {
  gm_rctx *ctx = ud;
  gm_inst *in = ctx->in;
  gm_auth *a = in->auth;
  if (st == AIGW_CALL_CANCELLED) {
    /* the client went away: give the mint up so a waiter can run it; not a failure */
    pthread_mutex_lock(&a->mu);
    mint_failed_locked(a, ctx, 0, "");
    pthread_mutex_unlock(&a->mu);
    return;
  }
  int code = H->call_status_code(c);
  aigw_str body = {0}, cerr = {0};
  H->call_body(c, &body);
  char msg[400] = "";
  int status = 0;
  gj_token tk = {0};
  pc_err e = {0};
  if (st != AIGW_CALL_OK) {
    H->call_error(c, &cerr);
    snprintf(msg, sizeof msg, "vertex: the access-token request to %.120s %s: %.*s", in->key.token_uri,
             st == AIGW_CALL_TIMEOUT ? "timed out" : "failed", (int)(cerr.n > 200 ? 200 : cerr.n), cerr.p ? cerr.p : "");
    status = 503;
  } else if (code >= 200 && code < 300 && gj_token_parse(body.p, body.n, now_s(), &tk, &e) == 0) {
    status = 0;
  } else if (code >= 500 || code == 429 || code == 0) {
    snprintf(msg, sizeof msg, "vertex: the token endpoint %.200s answered HTTP %d; try again later", in->key.token_uri, code);
    status = 503;
  } else {
    if (code >= 200 && code < 300) {
      snprintf(msg, sizeof msg, "vertex: the token endpoint %.120s answered without an access token: %.200s", in->key.token_uri, e.msg);
    } else {
      pc_err pe = {0};
      gj_token t2 = {0};
      if (gj_token_parse(body.p, body.n, now_s(), &t2, &pe) == 0) gj_token_free(&t2);
      snprintf(msg, sizeof msg, "vertex: the token endpoint %.100s refused the service-account credentials (HTTP %d): %.160s",
               in->key.token_uri, code, pe.msg[0] ? pe.msg : "no reason given");
    }
    status = 502;
  }
  if (!status) {
    long long ttl = tk.expires_at - now_s();
    char *copy = tk.access_token ? req_dup(r, tk.access_token) : NULL;
    pthread_mutex_lock(&a->mu);
    int keep_flag = a->cache.refreshing && a->mint_seq != ctx->my_seq; /* a newer mint runs */
    if (!a->cache.token || tk.expires_at >= a->cache.expires_at) gj_cache_store(&a->cache, &tk);
    else if (a->mint_seq == ctx->my_seq) gj_cache_failed(&a->cache);
    if (keep_flag) a->cache.refreshing = 1;
    ctx->my_seq = 0;
    pthread_mutex_unlock(&a->mu);
    gj_token_free(&tk);
    H->log(r, AIGW_LOG_INFO, "vertex: access token minted for %s (valid %lld s)", in->key.client_email, ttl);
    if (!copy) {
      resume_with(r, AIGW_ERROR);
      return;
    }
    set_bearer(r, ctx, copy);
    H->resume(r, AIGW_CONTINUE);
    return;
  }
  H->log(r, AIGW_LOG_WARN, "%s", msg);
  pthread_mutex_lock(&a->mu);
  mint_failed_locked(a, ctx, status, msg);
  pthread_mutex_unlock(&a->mu);
  if (ctx->fallback) { /* the old token is still good for a while */
    set_bearer(r, ctx, ctx->fallback);
    H->resume(r, AIGW_CONTINUE);
    return;
  }
  gm_err(r, ctx, status, msg);
  H->resume(r, AIGW_STOP);
}

/* Vertex said 401: the token is no good (expired or revoked early); drop it. */
static void drop_token(gm_rctx *ctx) {
  gm_auth *a = ctx->in->auth;
  if (!a || !ctx->token) return;
  pthread_mutex_lock(&a->mu);
  if (a->cache.token && !strcmp(a->cache.token, ctx->token)) {
    free(a->cache.token);
    a->cache.token = NULL;
    a->cache.expires_at = 0;
  }
  pthread_mutex_unlock(&a->mu);
}

/* ---- prepare ---- */

static int set_body_json(aigw_req *r, cJSON *j) {
  char *txt = cJSON_PrintUnformatted(j);
  if (!txt) return -1;
  int rc = H->set_body(r, AIGW_UPSTREAM_REQUEST, (aigw_str){txt, strlen(txt)});
  free(txt);
  return rc == AIGW_OK ? 0 : -1;
}

static int set_body_json_resp(aigw_req *r, const cJSON *j) {
  char *txt = cJSON_PrintUnformatted(j);
  if (!txt) return -1;
  int rc = H->set_body(r, AIGW_UPSTREAM_RESPONSE, (aigw_str){txt, strlen(txt)});
  free(txt);
  return rc == AIGW_OK ? 0 : -1;
}

static int set_url(gm_inst *in, aigw_req *r, const char *model, const char *method) {
  pc_buf u = {0};
  if (xg_url(&u, in->flavor, in->base, in->project, in->location, model, method) < 0) {
    pc_buf_free(&u);
    return -1;
  }
  int rc = H->set_upstream_url(r, (aigw_str){u.p, u.n});
  pc_buf_free(&u);
  return rc == AIGW_OK ? 0 : -2;
}

static int copy_model(gm_rctx *ctx, const char *m) {
  if (!m || !*m || strlen(m) >= sizeof ctx->model) return -1;
  snprintf(ctx->model, sizeof ctx->model, "%s", m);
  return 0;
}

static aigw_status bad_model(aigw_req *r, const char *m) {
  char msg[300];
  if (!m || !*m) snprintf(msg, sizeof msg, "model: required (the Gemini model, e.g. \"gemini-2.5-flash\"), or set one on the route's target");
  else snprintf(msg, sizeof msg, "model: \"%.160s\" is not a Gemini model name ([A-Za-z0-9._@-], optionally \"models/\" first)", m);
  ing_error(H, r, 400, "invalid_request_error", msg);
  return AIGW_STOP;
}

static aigw_status prep_chat(gm_inst *in, aigw_req *r, gm_rctx *ctx) {
  pc_err e = {0};
  cJSON *hub = ing_hub_request(H, r, &e);
  if (!hub) {
    ing_error(H, r, e.status ? e.status : 400, NULL, e.msg[0] ? e.msg : "the request cannot be read");
    return AIGW_STOP;
  }
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(hub, "model");
  const char *model = cJSON_IsString(m) ? m->valuestring : NULL;
  if (copy_model(ctx, model) < 0) {
    aigw_status s = bad_model(r, model);
    cJSON_Delete(hub);
    return s;
  }
  cJSON *gem = xg_request_from_hub(hub, &in->opts, &e);
  cJSON_Delete(hub);
  if (!gem) {
    ing_error(H, r, e.status ? e.status : 400, NULL, e.msg[0] ? e.msg : "the request cannot be translated for gemini");
    return AIGW_STOP;
  }
  int stream = H->is_stream(r);
  int rc = set_url(in, r, ctx->model, stream ? "streamGenerateContent" : "generateContent");
  if (rc == -1) {
    cJSON_Delete(gem);
    return bad_model(r, ctx->model);
  }
  rc = rc < 0 ? -1 : set_body_json(r, gem);
  cJSON_Delete(gem);
  if (rc < 0) return AIGW_ERROR;
  if (stream) {
    xg_meta meta = {.id = NULL, .model = ctx->model, .created = now_s()};
    xg_stream_init(&ctx->dec, &meta);
    ctx->dec_init = 1;
    ing_stream_init(H, r, &ctx->st);
    ctx->st_init = 1;
  }
  return AIGW_CONTINUE;
}

static aigw_status prep_embed(gm_inst *in, aigw_req *r, gm_rctx *ctx) {
  aigw_str raw = {0}, tm = {0};
  H->body_raw(r, AIGW_UPSTREAM_REQUEST, &raw);
  cJSON *req = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  if (!cJSON_IsObject(req)) {
    cJSON_Delete(req);
    ing_error(H, r, 400, "invalid_request_error", "the request body must be a JSON object");
    return AIGW_STOP;
  }
  char model[160] = "";
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(req, "model");
  if (H->meta_get(r, "aigw.target_model", &tm) == AIGW_OK && tm.n && tm.n < sizeof model) snprintf(model, sizeof model, "%.*s", (int)tm.n, tm.p);
  else if (cJSON_IsString(m)) snprintf(model, sizeof model, "%s", m->valuestring);
  const char *bare = strncmp(model, "models/", 7) ? model : model + 7;
  if (copy_model(ctx, bare) < 0) {
    cJSON_Delete(req);
    return bad_model(r, model);
  }
  const cJSON *ef = cJSON_GetObjectItemCaseSensitive(req, "encoding_format");
  ctx->embed_base64 = cJSON_IsString(ef) && !strcmp(ef->valuestring, "base64");
  pc_err e = {0};
  cJSON *gem = xg_embed_request(req, in->flavor, ctx->model, &e);
  cJSON_Delete(req);
  if (!gem) {
    ing_error(H, r, e.status ? e.status : 400, NULL, e.msg[0] ? e.msg : "the embeddings request cannot be translated for gemini");
    return AIGW_STOP;
  }
  int rc = set_url(in, r, ctx->model, in->flavor == XG_VERTEX ? "predict" : "batchEmbedContents");
  if (rc == -1) {
    cJSON_Delete(gem);
    return bad_model(r, ctx->model);
  }
  rc = rc < 0 ? -1 : set_body_json(r, gem);
  cJSON_Delete(gem);
  return rc < 0 ? AIGW_ERROR : AIGW_CONTINUE;
}

/* ---- Anthropic count_tokens and passthrough (route api "passthrough") ---- */

/* The request path (query ignored) is Anthropic's count_tokens. */
static int is_count_tokens(aigw_req *r) {
  aigw_str p;
  if (H->path(r, &p) != AIGW_OK) return 0;
  const char *q = memchr(p.p, '?', p.n);
  size_t n = q ? (size_t)(q - p.p) : p.n;
  static const char suf[] = "/messages/count_tokens";
  return n >= sizeof suf - 1 && !memcmp(p.p + n - (sizeof suf - 1), suf, sizeof suf - 1);
}

/* An error in Anthropic's shape (count_tokens clients; the route's api is passthrough, so the
 * host's respond_error would use OpenAI's). */
static void anth_error(aigw_req *r, int status, const char *msg) {
  if (status < 400 || status > 599) status = 502;
  cJSON *e = xl_error_to_anth(status, msg && *msg ? msg : "the provider answered with an error");
  char *txt = e ? cJSON_PrintUnformatted(e) : NULL;
  cJSON_Delete(e);
  if (txt) H->respond(r, status, AIGW_STR("application/json"), (aigw_str){txt, strlen(txt)});
  else H->respond_error(r, 500, "api_error", "out of memory");
  free(txt);
}

static void gm_err(aigw_req *r, gm_rctx *ctx, int status, const char *msg) {
  if (ctx && ctx->count) anth_error(r, status, msg);
  else ing_error(H, r, status, NULL, msg);
}

/* Anthropic count_tokens request -> hub -> Gemini -> models/{model}:countTokens. AI Studio takes
 * {"generateContentRequest": {model, contents, systemInstruction, tools, toolConfig}} (plain
 * "contents" would drop the system prompt and tools from the count); Vertex takes contents,
 * systemInstruction and tools at the top level. */
static aigw_status prep_count(gm_inst *in, aigw_req *r, gm_rctx *ctx) {
  ctx->count = 1;
  aigw_str raw = {0}, tm = {0};
  H->body_raw(r, AIGW_UPSTREAM_REQUEST, &raw);
  cJSON *req = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  if (!cJSON_IsObject(req)) {
    cJSON_Delete(req);
    anth_error(r, 400, "the request body must be a JSON object (an Anthropic count_tokens request)");
    return AIGW_STOP;
  }
  pc_err e = {0};
  cJSON *hub = xl_anth_req_to_hub(req, &e);
  cJSON_Delete(req);
  if (!hub) {
    anth_error(r, e.status ? e.status : 400, e.msg[0] ? e.msg : "the request cannot be read");
    return AIGW_STOP;
  }
  char model[160] = "";
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(hub, "model");
  if (H->meta_get(r, "aigw.target_model", &tm) == AIGW_OK && tm.n && tm.n < sizeof model) snprintf(model, sizeof model, "%.*s", (int)tm.n, tm.p);
  else if (cJSON_IsString(m) && strlen(m->valuestring) < sizeof model) snprintf(model, sizeof model, "%s", m->valuestring);
  const char *bare = strncmp(model, "models/", 7) ? model : model + 7;
  char msg[300];
  cJSON *gem = copy_model(ctx, bare) == 0 ? xg_request_from_hub(hub, &in->opts, &e) : NULL;
  cJSON_Delete(hub);
  int rc = gem ? set_url(in, r, ctx->model, "countTokens") : -1;
  if (!gem || rc == -1) {
    if (gem || !ctx->model[0] || !model[0]) {
      if (!model[0]) snprintf(msg, sizeof msg, "model: required (the Gemini model, e.g. \"gemini-2.5-flash\"), or set one on the route's target");
      else snprintf(msg, sizeof msg, "model: \"%.160s\" is not a Gemini model name ([A-Za-z0-9._@-], optionally \"models/\" first)", model);
      anth_error(r, 400, msg);
    } else {
      anth_error(r, e.status ? e.status : 400, e.msg[0] ? e.msg : "the request cannot be translated for gemini");
    }
    cJSON_Delete(gem);
    return AIGW_STOP;
  }
  if (rc < 0) {
    cJSON_Delete(gem);
    return AIGW_ERROR;
  }
  static const char *const keep_ai[] = {"contents", "systemInstruction", "tools", "toolConfig"};
  static const char *const keep_vx[] = {"contents", "systemInstruction", "tools"};
  int vx = in->flavor == XG_VERTEX;
  const char *const *keep = vx ? keep_vx : keep_ai;
  size_t nkeep = vx ? 3 : 4;
  cJSON *inner = cJSON_CreateObject(), *body = NULL;
  int ok = inner != NULL;
  if (ok && !vx) {
    char full[200];
    snprintf(full, sizeof full, "models/%s", ctx->model);
    ok = cJSON_AddStringToObject(inner, "model", full) != NULL;
  }
  for (size_t i = 0; ok && i < nkeep; i++) {
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(gem, keep[i]);
    if (v) cJSON_AddItemToObject(inner, keep[i], v);
  }
  cJSON_Delete(gem);
  if (ok && !vx) {
    body = cJSON_CreateObject();
    ok = body && cJSON_AddItemToObject(body, "generateContentRequest", inner);
    if (ok) inner = NULL;
  } else {
    body = inner;
    inner = NULL;
  }
  rc = ok ? set_body_json(r, body) : -1;
  cJSON_Delete(inner);
  cJSON_Delete(body);
  return rc < 0 ? AIGW_ERROR : AIGW_CONTINUE;
}

/* Passthrough: the client's method, path, query and body to the API host, with our credentials.
 * A "key" query parameter (a client's own API key, as Google's REST examples pass it) is removed:
 * the upstream credential is the provider's. */
static aigw_status prep_pass(gm_inst *in, aigw_req *r, gm_rctx *ctx) {
  ctx->pass = 1;
  aigw_str p;
  if (H->path(r, &p) != AIGW_OK || !p.n || p.p[0] != '/') return AIGW_ERROR;
  char host[160];
  const char *base = in->base;
  if (!base && in->flavor == XG_AISTUDIO) base = "https://generativelanguage.googleapis.com";
  else if (!base && !strcmp(in->location, "global")) base = "https://aiplatform.googleapis.com";
  else if (!base) {
    snprintf(host, sizeof host, "https://%.100s-aiplatform.googleapis.com", in->location);
    base = host;
  }
  size_t bl = strlen(base);
  char *url = H->req_alloc(r, bl + p.n + 1);
  if (!url) return AIGW_ERROR;
  memcpy(url, base, bl);
  size_t n = bl;
  const char *q = memchr(p.p, '?', p.n);
  size_t pl = q ? (size_t)(q - p.p) : p.n;
  memcpy(url + n, p.p, pl);
  n += pl;
  if (q) {
    const char *s = q + 1, *end = p.p + p.n;
    int first = 1;
    while (s <= end) {
      const char *amp = memchr(s, '&', (size_t)(end - s));
      const char *e = amp ? amp : end;
      size_t len = (size_t)(e - s);
      int is_key = (len >= 3 && !memcmp(s, "key", 3) && (len == 3 || s[3] == '='));
      if (len && !is_key) {
        url[n++] = first ? '?' : '&';
        memcpy(url + n, s, len);
        n += len;
        first = 0;
      }
      if (!amp) break;
      s = amp + 1;
    }
  }
  url[n] = 0;
  return H->set_upstream_url(r, (aigw_str){url, n}) == AIGW_OK ? AIGW_CONTINUE : AIGW_ERROR;
}

static aigw_status gm_prepare(void *vi, aigw_req *r, void **rctx) {
  gm_inst *in = vi;
  gm_rctx *ctx = H->req_alloc(r, sizeof *ctx);
  if (!ctx) return AIGW_ERROR;
  ctx->in = in;
  ctx->api = H->api(r);
  *rctx = ctx;
  aigw_status s;
  switch (ctx->api) {
  case AIGW_API_CHAT:
  case AIGW_API_MESSAGES:
  case AIGW_API_RESPONSES: s = prep_chat(in, r, ctx); break;
  case AIGW_API_EMBEDDINGS: s = prep_embed(in, r, ctx); break;
  case AIGW_API_PASSTHROUGH: s = is_count_tokens(r) ? prep_count(in, r, ctx) : prep_pass(in, r, ctx); break;
  case AIGW_API_MODELS:
    if (in->flavor == XG_VERTEX) {
      ing_error(H, r, 400, "invalid_request_error", "provider gemini in vertex mode has no model list; list models in the Google Cloud console");
      return AIGW_STOP;
    } else {
      char *url = H->req_alloc(r, (in->base ? strlen(in->base) : 40) + 16);
      if (!url) return AIGW_ERROR;
      sprintf(url, "%s/v1beta/models", in->base ? in->base : "https://generativelanguage.googleapis.com");
      if (H->set_upstream_url(r, (aigw_str){url, strlen(url)}) != AIGW_OK) return AIGW_ERROR;
      aigw_str raw;
      if (H->body_raw(r, AIGW_UPSTREAM_REQUEST, &raw) == AIGW_OK && raw.n) H->set_body(r, AIGW_UPSTREAM_REQUEST, AIGW_STR(""));
      s = AIGW_CONTINUE;
    }
    break;
  default:
    ing_error(H, r, 400, "invalid_request_error", "this API is not supported by provider gemini (chat, messages, responses, embeddings, models and passthrough are)");
    return AIGW_STOP;
  }
  if (s != AIGW_CONTINUE) return s;
  /* headers: what other formats' clients sent for their own APIs does not go to Google */
  static const char *const drop[] = {"anthropic-version", "anthropic-beta", "openai-organization", "openai-project"};
  for (size_t i = 0; !ctx->pass && i < sizeof drop / sizeof *drop; i++)
    H->set_header(r, AIGW_UPSTREAM_REQUEST, (aigw_str){drop[i], strlen(drop[i])}, (aigw_str){NULL, 0});
  if (ctx->api != AIGW_API_MODELS && !ctx->pass) H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("content-type"), AIGW_STR("application/json"));
  for (size_t i = 0; i < in->nhdrs; i++) H->set_header(r, AIGW_UPSTREAM_REQUEST, in->hdrs[2 * i], in->hdrs[2 * i + 1]);
  if (in->flavor == XG_AISTUDIO) {
    aigw_str own = pc_credential(H, r); /* the request's own key (bring your own key), else ours */
    H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("x-goog-api-key"), own.n ? own : (aigw_str){in->api_key, strlen(in->api_key)});
    return AIGW_CONTINUE;
  }
  H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("x-goog-api-key"), (aigw_str){NULL, 0}); /* a client's, not ours */
  return auth_step(r, ctx);
}

/* ---- responses ---- */

/* Google's RetryInfo detail ("retryDelay": "1.5s") -> whole seconds, rounded up; -1 if none. */
static long retry_delay(aigw_str raw) {
  cJSON *j = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  const cJSON *o = cJSON_IsArray(j) ? cJSON_GetArrayItem(j, 0) : j;
  const cJSON *det = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "error"), "details");
  long out = -1;
  const cJSON *x;
  cJSON_ArrayForEach(x, det) {
    const cJSON *rd = cJSON_GetObjectItemCaseSensitive(x, "retryDelay");
    if (cJSON_IsString(rd)) {
      char *end = NULL;
      double s = strtod(rd->valuestring, &end);
      if (end != rd->valuestring && s >= 0 && s < 86400) out = (long)s + ((double)(long)s < s ? 1 : 0);
      break;
    }
  }
  cJSON_Delete(j);
  return out;
}

static aigw_status upstream_error(gm_rctx *ctx, aigw_req *r, int st, aigw_str raw) {
  xg_error xe;
  xg_error_parse(st, raw.p, raw.n, &xe);
  long ra = retry_delay(raw);
  if (ra >= 0) {
    char v[24];
    int n = snprintf(v, sizeof v, "%ld", ra);
    H->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("retry-after"), (aigw_str){v, (size_t)n});
  }
  if (ctx->in->flavor == XG_VERTEX && st == 401) {
    drop_token(ctx);
    char msg[520];
    snprintf(msg, sizeof msg, "vertex rejected the gateway's access token (%s); it was dropped and the next request fetches a new one", xe.message);
    H->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("retry-after"), AIGW_STR("0"));
    ing_error(H, r, 503, NULL, msg);
    return AIGW_STOP;
  }
  char msg[480];
  snprintf(msg, sizeof msg, "gemini: %s", xe.message);
  ing_error(H, r, xe.status, NULL, msg);
  return AIGW_STOP;
}

static aigw_status models_to_openai(aigw_req *r, aigw_str raw) {
  cJSON *in = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL, *out = cJSON_CreateObject();
  if (!cJSON_IsObject(in) || !out) {
    cJSON_Delete(in);
    cJSON_Delete(out);
    ing_error(H, r, 502, NULL, "gemini answered the model list with something that is not JSON");
    return AIGW_STOP;
  }
  cJSON_AddStringToObject(out, "object", "list");
  cJSON *arr = cJSON_AddArrayToObject(out, "data");
  const cJSON *m;
  cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(in, "models")) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
    if (!cJSON_IsString(name)) continue;
    const char *id = strncmp(name->valuestring, "models/", 7) ? name->valuestring : name->valuestring + 7;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", 0);
    cJSON_AddStringToObject(o, "owned_by", "google");
    cJSON_AddItemToArray(arr, o);
  }
  char *txt = cJSON_PrintUnformatted(out);
  cJSON_Delete(in);
  cJSON_Delete(out);
  if (!txt) return AIGW_ERROR;
  int rc = H->set_body(r, AIGW_UPSTREAM_RESPONSE, (aigw_str){txt, strlen(txt)});
  free(txt);
  return rc == AIGW_OK ? AIGW_CONTINUE : AIGW_ERROR;
}

/* countTokens answer -> Anthropic's {"input_tokens": N}; errors in Anthropic's shape. */
static aigw_status count_response(gm_rctx *ctx, aigw_req *r, int st, aigw_str raw) {
  char msg[520];
  if (st < 200 || st > 299) {
    xg_error xe;
    xg_error_parse(st, raw.p, raw.n, &xe);
    long ra = retry_delay(raw);
    if (ra >= 0) {
      char v[24];
      int n = snprintf(v, sizeof v, "%ld", ra);
      H->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("retry-after"), (aigw_str){v, (size_t)n});
    }
    if (ctx->in->flavor == XG_VERTEX && st == 401) {
      drop_token(ctx);
      snprintf(msg, sizeof msg, "vertex rejected the gateway's access token (%s); it was dropped and the next request fetches a new one", xe.message);
      H->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("retry-after"), AIGW_STR("0"));
      anth_error(r, 503, msg);
      return AIGW_STOP;
    }
    snprintf(msg, sizeof msg, "gemini: %s", xe.message);
    anth_error(r, xe.status, msg);
    return AIGW_STOP;
  }
  cJSON *j = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  const cJSON *tt = cJSON_GetObjectItemCaseSensitive(j, "totalTokens");
  double n = cJSON_IsNumber(tt) ? tt->valuedouble : cJSON_IsObject(j) && !tt ? 0 : -1; /* proto JSON omits 0 */
  cJSON_Delete(j);
  if (n < 0 || n > 9e15) {
    anth_error(r, 502, "gemini answered countTokens with something that is not a CountTokensResponse");
    return AIGW_STOP;
  }
  char out[64];
  int len = snprintf(out, sizeof out, "{\"input_tokens\":%lld}", (long long)n);
  H->set_header(r, AIGW_UPSTREAM_RESPONSE, AIGW_STR("content-type"), AIGW_STR("application/json"));
  return H->set_body(r, AIGW_UPSTREAM_RESPONSE, (aigw_str){out, (size_t)len}) == AIGW_OK ? AIGW_CONTINUE : AIGW_ERROR;
}

static aigw_status gm_on_response(void *vi, aigw_req *r, void **rctx) {
  (void)vi;
  gm_rctx *ctx = rctx ? *rctx : NULL;
  if (!ctx) return AIGW_CONTINUE;
  int st = H->status(r, AIGW_UPSTREAM_RESPONSE);
  aigw_str raw = {0};
  H->body_raw(r, AIGW_UPSTREAM_RESPONSE, &raw);
  if (ctx->count) return count_response(ctx, r, st, raw);
  if (ctx->pass) { /* untouched; a Vertex 401 still drops the token it refused */
    if (ctx->in->flavor == XG_VERTEX && st == 401) drop_token(ctx);
    return AIGW_CONTINUE;
  }
  if (st < 200 || st > 299) return upstream_error(ctx, r, st, raw);
  if (ctx->api == AIGW_API_MODELS) return models_to_openai(r, raw);
  cJSON *gem = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  pc_err e = {0};
  cJSON *out = NULL;
  if (ctx->api == AIGW_API_EMBEDDINGS) {
    out = cJSON_IsObject(gem) ? xg_embed_response(gem, ctx->model, ctx->embed_base64, &e) : NULL;
    cJSON_Delete(gem);
    if (!out) {
      ing_error(H, r, 502, "upstream_error", e.msg[0] ? e.msg : "gemini answered 2xx with a body that is not an embeddings answer");
      return AIGW_STOP;
    }
    ing_report_usage(H, r, cJSON_GetObjectItemCaseSensitive(out, "usage"));
    int rc = set_body_json_resp(r, out);
    cJSON_Delete(out);
    return rc < 0 ? AIGW_ERROR : AIGW_CONTINUE;
  }
  if (ctx->dec_init) {
    /* a stream request answered with one JSON document (not SSE): translate it as one event */
    cJSON_Delete(gem);
    ing_error(H, r, 502, "upstream_error", "gemini answered a stream request without an event stream");
    return AIGW_STOP;
  }
  xg_meta meta = {.id = NULL, .model = ctx->model, .created = now_s()};
  out = cJSON_IsObject(gem) ? xg_response_to_hub(gem, &meta, &e) : NULL;
  cJSON_Delete(gem);
  if (!out) {
    ing_error(H, r, 502, "upstream_error", e.msg[0] ? e.msg : "gemini answered 2xx with a body that is not a GenerateContentResponse");
    return AIGW_STOP;
  }
  return ing_answer_hub(H, r, out);
}

/* ---- streams ---- */



/* The non-negative integer after "key": in JSON text (names are unique in usageMetadata), -1. */
static long long raw_count(aigw_str d, const char *key) {
  size_t kl = strlen(key);
  const char *k = d.n >= kl ? memmem(d.p, d.n, key, kl) : NULL;
  if (!k) return -1;
  const char *p = k + kl, *end = d.p + d.n;
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  if (p >= end || *p++ != ':') return -1;
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  long long v = 0;
  int digits = 0;
  while (p < end && *p >= '0' && *p <= '9' && digits < 15) v = v * 10 + (*p++ - '0'), digits++;
  return digits ? v : -1;
}

static aigw_status gm_on_event(void *vi, aigw_req *r, void **rctx, aigw_event *ev) {
  (void)vi;
  gm_rctx *ctx = rctx ? *rctx : NULL;
  if (ctx && ctx->pass) {
    /* a passed-through stream (streamGenerateContent?alt=sse) has no end marker: the event with
     * the finishReason is its end */
    aigw_str d = {0};
    H->event_data(ev, &d);
    if (d.n && memmem(d.p, d.n, "\"finishReason\"", 14)) H->event_set_kind(ev, AIGW_EV_DONE);
    return AIGW_CONTINUE;
  }
  if (!ctx || !ctx->dec_init) return AIGW_CONTINUE;
  if (ctx->st.done) return AIGW_DROP;
  aigw_str data = {0};
  H->event_data(ev, &data);
  if (!data.n) return AIGW_DROP; /* keep-alive / comment-only events */
  if (ctx->st.enc_init && !ctx->st.enc.started) {
    /* Gemini reports the prompt size on its first chunk: message_start gets the real number */
    long long pt = raw_count(data, "\"promptTokenCount\""), cc = raw_count(data, "\"cachedContentTokenCount\"");
    if (pt >= 0) ing_stream_prompt_tokens(&ctx->st, pt - (cc > 0 && cc <= pt ? cc : 0));
  }
  ing_fwd f = {H, r, &ctx->st};
  pc_err e = {0};
  int rc = xg_stream_event(&ctx->dec, data.p, data.n, ing_fwd_chunk, &f, &e);
  if (rc < 0) {
    char msg[480];
    snprintf(msg, sizeof msg, "gemini: %s", e.msg[0] ? e.msg : "the stream broke");
    ing_stream_error(H, r, &ctx->st, e.status ? e.status : 502, msg);
  }
  return AIGW_DROP;
}

static aigw_status gm_on_stream_end(void *vi, aigw_req *r, void **rctx) {
  (void)vi;
  gm_rctx *ctx = rctx ? *rctx : NULL;
  if (!ctx || !ctx->dec_init || ctx->st.done) return AIGW_CONTINUE;
  /* Gemini streams have no end marker, but every candidate's last event carries its
   * finishReason: without one the stream was cut, and must not look complete */
  int complete = ctx->dec.nchoices > 0;
  for (int i = 0; i < ctx->dec.nchoices && i < XG_MAX_CHOICES; i++) complete &= ctx->dec.finished[i];
  if (!complete) {
    ing_stream_error(H, r, &ctx->st, 502, "gemini: the stream ended before the model finished (no finishReason); the answer is incomplete");
    return AIGW_CONTINUE;
  }
  ing_fwd f = {H, r, &ctx->st};
  pc_err e = {0};
  if (xg_stream_finish(&ctx->dec, ing_fwd_chunk, &f, &e) < 0) {
    ing_stream_error(H, r, &ctx->st, e.status ? e.status : 502, e.msg[0] ? e.msg : "gemini: the stream could not be finished");
    return AIGW_CONTINUE;
  }
  if (!ctx->st.done) ing_stream_end(H, r, &ctx->st);
  return AIGW_CONTINUE;
}

static void gm_on_done(void *vi, aigw_req *r, void *rctx) {
  (void)vi;
  (void)r;
  gm_rctx *ctx = rctx;
  if (!ctx) return;
  if (ctx->dec_init) xg_stream_free(&ctx->dec);
  if (ctx->st_init) ing_stream_free(&ctx->st);
  ctx->dec_init = ctx->st_init = 0;
}

static const aigw_provider gm_provider = {
    .struct_size = sizeof(aigw_provider),
    .wire_format = "gemini",
    .prepare = gm_prepare,
    .on_response = gm_on_response,
    .on_event = gm_on_event,
    .on_stream_end = gm_on_stream_end,
};

static const aigw_plugin gm_plugin = {
    AIGW_PLUGIN_HEADER,
    .name = "gemini",
    .version = "0.1.0",
    .flags = AIGW_IS_PROVIDER,
    .create = gm_create,
    .destroy = gm_destroy,
    .on_done = gm_on_done,
    .provider = &gm_provider,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  if (!h || h->abi_major != AIGW_ABI_MAJOR) {
    snprintf(err, errlen, "gemini: host ABI major %u, plugin built for %d", h ? (unsigned)h->abi_major : 0u, AIGW_ABI_MAJOR);
    return NULL;
  }
  if (!AIGW_HAS(h, provider_emit) || !AIGW_HAS(h, body_member)) {
    snprintf(err, errlen, "gemini: the host lacks provider_emit (needs a newer aigw)");
    return NULL;
  }
  H = h;
  return &gm_plugin;
}
