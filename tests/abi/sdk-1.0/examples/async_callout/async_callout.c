/* async_callout.c - asks an external policy service whether a request may proceed, without
 * blocking the worker: on_request starts an HTTP call-out and returns PAUSE; the done callback
 * resumes the request (allowed) or answers it with 403 (denied, or the service failed: fail closed).
 *
 * The service gets  POST <url>  {"model": "<the request's model>"}
 * and must answer   2xx  {"allow": true}   to let the request through.
 *
 * Config: {"url": "http://127.0.0.1:9000/check", "timeout_ms": 2000} */
#include <aigw/plugin.h>

#include <stdio.h>
#include <string.h>

static const aigw_host *H;

typedef struct callout {
  char *url;
  uint32_t timeout_ms;
} callout;

/* Per call-out state, owned by the callback: freed on every path, CANCELLED included. */
typedef struct pending {
  char model[128];
} pending;

/* Appends s to out as a JSON string body (quotes included); returns the length written. */
static size_t json_quote(char *out, aigw_str s) {
  size_t o = 0;
  out[o++] = '"';
  for (size_t i = 0; i < s.n; i++) {
    unsigned char c = (unsigned char)s.p[i];
    if (c == '"' || c == '\\') out[o++] = '\\', out[o++] = (char)c;
    else if (c < 0x20) o += (size_t)sprintf(out + o, "\\u%04x", c);
    else out[o++] = (char)c;
  }
  out[o++] = '"';
  return o;
}

/* Skips one JSON string starting at p[*i] == '"'; returns 0, or -1 if it does not end. */
static int skip_string(aigw_str b, size_t *i) {
  for ((*i)++; *i < b.n; (*i)++) {
    if (b.p[*i] == '\\') (*i)++;
    else if (b.p[*i] == '"') return (*i)++, 0;
  }
  return -1;
}

/* Whether b is a JSON object whose top-level member "allow" is true. A small scanner rather than
 * a parser: the host's json_* calls read only JSON the host parsed (bodies, events, config). */
static int allowed(aigw_str b) {
  size_t i = 0;
  int depth = 0;
  while (i < b.n && (b.p[i] == ' ' || b.p[i] == '\t' || b.p[i] == '\r' || b.p[i] == '\n')) i++;
  if (i >= b.n || b.p[i] != '{') return 0;
  while (i < b.n) {
    char c = b.p[i];
    if (c == '"') {
      size_t start = i;
      if (skip_string(b, &i) != 0) return 0;
      int is_key = 0;
      size_t j = i;
      while (j < b.n && (b.p[j] == ' ' || b.p[j] == '\t' || b.p[j] == '\r' || b.p[j] == '\n')) j++;
      is_key = j < b.n && b.p[j] == ':';
      if (is_key && depth == 1 && i - start == 7 && memcmp(b.p + start, "\"allow\"", 7) == 0) {
        for (j++; j < b.n && (b.p[j] == ' ' || b.p[j] == '\t' || b.p[j] == '\r' || b.p[j] == '\n');)
          j++;
        return b.n - j >= 4 && memcmp(b.p + j, "true", 4) == 0;
      }
      continue;
    }
    if (c == '{' || c == '[') depth++;
    else if (c == '}' || c == ']') depth--;
    i++;
  }
  return 0;
}

static void on_answer(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud) {
  pending *p = ud;
  if (st == AIGW_CALL_CANCELLED) { /* the request ended first: only free, never resume */
    H->free(p);
    return;
  }
  aigw_str body = {"", 0};
  int code = st == AIGW_CALL_OK ? H->call_status_code(c) : 0;
  if (code >= 200 && code <= 299) H->call_body(c, &body);
  if (code >= 200 && code <= 299 && allowed(body)) {
    H->resume(r, AIGW_CONTINUE);
  } else {
    H->log(r, AIGW_LOG_INFO, "model '%s' denied (policy status %d, call status %d)", p->model,
           code, (int)st);
    H->respond_error(r, 403, "permission_error", "this request is not allowed by policy");
    H->resume(r, AIGW_STOP);
  }
  H->free(p);
}

static aigw_status callout_on_request(void *inst, aigw_req *r, void **rctx) {
  callout *co = inst;
  aigw_str model = {"", 0};
  (void)rctx;
  aigw_json *req = H->body(r, AIGW_CLIENT_REQUEST);
  const aigw_json *m = req ? H->json_get(req, "model") : NULL;
  if (m) H->json_str(m, &model);

  char *json = H->req_alloc(r, 16 + 6 * model.n); /* worst case: every byte escaped */
  pending *p = json ? H->alloc(sizeof *p) : NULL;
  if (!p) return AIGW_ERROR;
  snprintf(p->model, sizeof p->model, "%.*s", (int)(model.n > 100 ? 100 : model.n), model.p);

  size_t n = 9;
  memcpy(json, "{\"model\":", 9);
  n += json_quote(json + n, model);
  json[n++] = '}';

  const aigw_str hdrs[] = {AIGW_STR("Content-Type"), AIGW_STR("application/json")};
  aigw_http_spec spec = {sizeof(aigw_http_spec), "POST", co->url, hdrs, 1,
                         (aigw_str){json, n}, co->timeout_ms, 0, 64 * 1024};
  if (!H->http_call(r, &spec, on_answer, p)) { /* not started: callback never runs */
    H->free(p);
    H->respond_error(r, 503, "api_error", "the policy service could not be called");
    return AIGW_STOP;
  }
  return AIGW_PAUSE;
}

static void *callout_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d) {
  aigw_str url = {0};
  double t = 2000;
  const aigw_json *u = cfg ? h->json_get(cfg, "url") : NULL;
  const aigw_json *tm = cfg ? h->json_get(cfg, "timeout_ms") : NULL;
  int ok = 1;
  if (!u || h->json_str(u, &url) != AIGW_OK ||
      !(url.n > 7 && (memcmp(url.p, "http://", 7) == 0 || memcmp(url.p, "https://", 8) == 0))) {
    h->diag_error(d, "/url", "is required: an http:// or https:// URL");
    ok = 0;
  }
  if (tm && (h->json_num(tm, &t) != AIGW_OK || t < 1 || t > 60000)) {
    h->diag_error(d, "/timeout_ms", "must be a number from 1 to 60000");
    ok = 0;
  }
  callout *co = ok ? h->alloc(sizeof *co) : NULL;
  if (!co) return NULL;
  co->url = h->alloc(url.n + 1);
  if (!co->url) {
    h->free(co);
    return NULL;
  }
  memcpy(co->url, url.p, url.n);
  co->url[url.n] = '\0';
  co->timeout_ms = (uint32_t)t;
  return co;
}

static void callout_destroy(void *inst) {
  callout *co = inst;
  H->free(co->url);
  H->free(co);
}

static const aigw_plugin callout_plugin = {
    AIGW_PLUGIN_HEADER,
    .name = "async_callout",
    .version = "1.0.0",
    .priority = 100, /* early: before plugins that cost something */
    .create = callout_create,
    .destroy = callout_destroy,
    .on_request = callout_on_request,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  if (!AIGW_HAS(h, http_call)) {
    snprintf(err, errlen, "async_callout needs a host with http_call");
    return NULL;
  }
  H = h;
  return &callout_plugin;
}
