/* calls.c - async work started by plugins: HTTP call-outs, timers, store operations, posts.
 *
 * The exactly-once rule: every call ends through call_complete(), which marks it finished and
 * schedules its done callback on the worker's loop (never inside the starting call), or through
 * call_run() when already on the loop (timers, a call-out's deadline). A request that ends first
 * cancels its pending calls in calls_cancel_all(), which runs their callbacks with CANCELLED
 * synchronously, before the plugins' on_done hooks.
 *
 * HTTP call-outs to plain http:// at an IP literal or localhost go through the built-in client
 * (upclient.c, pooled keep-alive connections shared with the proxied requests of the worker);
 * everything else (https, names needing DNS) through libcurl. AIGW_CALLOUT_CLIENT=libcurl in the
 * environment (read once) sends every call-out through libcurl. */
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core.h"
#include "store.h"
#include "upclient.h"

/* A call-out on the built-in client: the handle plugins see, then what the request is built from
 * (the one retry on a fresh connection builds it again). */
typedef struct http_call {
  aigw_call c; /* first: (aigw_call *) and (http_call *) are the same pointer */
  upconn *upc; /* the connection while the exchange runs (upclient clears it) */
  char *url;   /* copy; the request path is read from it */
  const char *method;
  char *method_own;
  char *hdr_block; /* "Name: value\r\n" ... as given */
  size_t hdr_len;
  size_t body_len;
  int user_host; /* the plugin set Host itself */
  int send_clen;
  uint32_t timeout_ms;
} http_call;

static void call_link(aigw_req *r, aigw_call *c) {
  c->next = r->calls;
  if (r->calls) r->calls->prev = c;
  r->calls = c;
}

static void call_unlink(aigw_req *r, aigw_call *c) {
  if (c->prev) c->prev->next = c->next;
  else if (r->calls == c) r->calls = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

/* A hedge's exchange was adopted: its pending call-outs (an adapter's, started in its prepare)
 * now belong to the adopting request. */
void calls_move(aigw_req *from, aigw_req *to) {
  while (from->calls) {
    aigw_call *c = from->calls;
    call_unlink(from, c);
    c->r = to;
    call_link(to, c);
  }
}

static void call_free(aigw_call *c) {
  if (c->rpend) rstore_detach(c);
  if (c->kind == CALL_HTTP) {
    http_call *hc = (http_call *)c;
    upc_close(&hc->upc);
    free(hc->url);
    free(hc->method_own);
    free(hc->hdr_block);
  }
  if (c->easy) {
    upstream_easy_put(c->r->w, c->easy);
    c->easy = NULL;
  }
  if (c->hdrs) curl_slist_free_all(c->hdrs);
  if (c->resp) evbuffer_free(c->resp);
  free(c->req_body);
  free(c->str_result);
  c->magic = 0;
  free(c);
}

/* Runs the callback now (worker thread, outside any hook of the same plugin) and frees. */
static void call_run(aigw_call *c) {
  aigw_req *r = c->r;
  call_unlink(r, c);
  r->cur_plugin = c->plugin;
  if (c->resp) evbuffer_pullup(c->resp, -1);
  c->done(r, c, c->st, c->ud);
  r->cur_plugin = NULL;
  call_free(c);
  /* a provider adapter emitted stream events from its callback (a count it waited for): they go
   * out on the next loop turn, in order with what its stream hooks emit meanwhile */
  if (r->pemit_n && !r->ended && r->up_streaming) req_schedule(r);
}

static void on_call_deferred(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  call_run(arg);
}

static void call_complete(aigw_call *c, aigw_call_status st) {
  if (c->finished) return;
  c->finished = 1;
  c->st = st;
  if (c->ev.ev_base) event_del(&c->ev);
  event_assign(&c->ev, c->r->w->base, -1, 0, on_call_deferred, c);
  event_active(&c->ev, EV_TIMEOUT, 1);
}

void call_store_complete(aigw_call *c, aigw_call_status st) { call_complete(c, st); }

static aigw_call *call_new(aigw_req *r, call_kind kind, aigw_done_fn done, void *ud) {
  if (!r || r->magic != REQ_MAGIC || r->ended || !done) return NULL;
  aigw_call *c = calloc(1, kind == CALL_HTTP ? sizeof(http_call) : sizeof *c);
  if (!c) return NULL;
  c->magic = CALL_MAGIC;
  c->kind = kind;
  c->r = r;
  c->done = done;
  c->ud = ud;
  c->plugin = r->cur_plugin;
  call_link(r, c);
  return c;
}

void calls_cancel_all(aigw_req *r) {
  while (r->calls) {
    aigw_call *c = r->calls;
    if (c->easy) {
      curl_multi_remove_handle(r->w->multi, c->easy);
    }
    if (c->kind == CALL_HTTP) upc_close(&((http_call *)c)->upc); /* closed, never reused */
    if (c->ev.ev_base) event_del(&c->ev);
    c->finished = 1;
    c->st = AIGW_CALL_CANCELLED;
    call_run(c);
  }
}

/* ---- HTTP call-outs ---- */

static size_t call_on_write(char *buf, size_t size, size_t nmemb, void *ud) {
  aigw_call *c = ud;
  size_t n = size * nmemb;
  if (evbuffer_get_length(c->resp) + n > c->max_bytes) return 0;
  evbuffer_add(c->resp, buf, n);
  return n;
}

static size_t call_on_header(char *buf, size_t size, size_t nitems, void *ud) {
  aigw_call *c = ud;
  hdrs_add_line(&c->r->pool, &c->resp_hdrs, buf, size * nitems);
  return size * nitems;
}

/* AIGW_CALLOUT_CLIENT=libcurl: every call-out through libcurl (tests run both clients). */
static int callout_builtin(void) {
  static atomic_int mode; /* 0 unknown, 1 built-in allowed, 2 libcurl only */
  int m = atomic_load_explicit(&mode, memory_order_relaxed);
  if (!m) {
    const char *v = getenv("AIGW_CALLOUT_CLIENT");
    m = v && !strcmp(v, "libcurl") ? 2 : 1;
    atomic_store_explicit(&mode, m, memory_order_relaxed);
  }
  return m == 1;
}

static int is_tchar(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int is_token(const char *p, size_t n) {
  if (!n) return 0;
  for (size_t i = 0; i < n; i++)
    if (!is_tchar((unsigned char)p[i])) return 0;
  return 1;
}

/* A header value may not break the message (CR, LF, NUL). */
static int value_ok(aigw_str v) {
  for (size_t i = 0; i < v.n; i++)
    if (v.p[i] == '\r' || v.p[i] == '\n' || !v.p[i]) return 0;
  return 1;
}

/* A URL the built-in client may send as it is (no spaces, no control bytes). */
static int url_plain(const char *u) {
  for (; *u; u++)
    if ((unsigned char)*u <= 0x20 || (unsigned char)*u == 0x7f) return 0;
  return 1;
}

static int co_build(void *ctx, struct evbuffer *o, const char *path, size_t pathlen, const char *host, size_t hostlen) {
  http_call *hc = ctx;
  headbuf hb;
  hb.out = o;
  hb.n = 0;
  hb_add(&hb, hc->method, strlen(hc->method));
  hb_lit(&hb, " ");
  if (*path != '/') hb_lit(&hb, "/");
  hb_add(&hb, path, pathlen);
  hb_lit(&hb, " HTTP/1.1\r\n");
  if (!hc->user_host) {
    hb_lit(&hb, "Host: ");
    hb_add(&hb, host, hostlen);
    hb_lit(&hb, "\r\n");
  }
  if (hc->hdr_len) hb_add(&hb, hc->hdr_block, hc->hdr_len);
  if (hc->send_clen) {
    hb_lit(&hb, "Content-Length: ");
    hb_u64(&hb, hc->body_len);
    hb_lit(&hb, "\r\n");
  }
  hb_lit(&hb, "\r\n");
  hb_done(&hb);
  /* the body stays in the call until it is freed, which closes the connection first */
  if (hc->body_len && evbuffer_add_reference(o, hc->c.req_body, hc->body_len, NULL, NULL) < 0) return -1;
  return 0;
}

static void co_header(void *ctx, const char *line, size_t n) {
  aigw_call *c = ctx;
  int st = hdrs_add_line(&c->r->pool, &c->resp_hdrs, line, n);
  if (st > 0) c->http_status = st;
}

static int co_body(void *ctx, const char *p, size_t n) {
  aigw_call *c = ctx;
  if (evbuffer_get_length(c->resp) + n > c->max_bytes) {
    snprintf(c->errbuf, sizeof c->errbuf, "call-out response larger than max_response_bytes=%u", c->max_bytes);
    return UPC_BODY_ABORT;
  }
  if (n && evbuffer_add(c->resp, p, n) < 0) return UPC_BODY_ABORT;
  return UPC_BODY_OK;
}

static void co_done(void *ctx, CURLcode rc, const char *msg) {
  aigw_call *c = ctx;
  aigw_call_status st = rc == CURLE_OK ? AIGW_CALL_OK : rc == CURLE_OPERATION_TIMEDOUT ? AIGW_CALL_TIMEOUT : AIGW_CALL_ERROR;
  if (rc != CURLE_OK && !c->errbuf[0]) snprintf(c->errbuf, sizeof c->errbuf, "%s", msg ? msg : curl_easy_strerror(rc));
  call_complete(c, st); /* deletes the deadline timer (c->ev) and defers the callback */
}

static const upc_sink co_sink = {co_build, co_header, co_body, co_done};

/* The call-out's total deadline (timeout_ms) on the built-in client; libcurl keeps its own. */
static void on_callout_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  aigw_call *c = arg;
  http_call *hc = (http_call *)c;
  if (c->finished) return;
  upc_close(&hc->upc); /* the connection is closed, never reused */
  snprintf(c->errbuf, sizeof c->errbuf, "call-out timed out after %u ms", hc->timeout_ms);
  c->finished = 1;
  c->st = AIGW_CALL_TIMEOUT;
  call_run(c); /* already on the loop: run now */
}

/* Starts c on the built-in client: 0 started (or ended already: the callback is scheduled), 1 the
 * URL is not one for it (nothing happened), -1 out of memory. */
static int callout_start_builtin(aigw_req *r, http_call *hc, const aigw_http_spec *s, uint32_t to, uint32_t cto) {
  aigw_call *c = &hc->c;
  hc->url = strdup(s->url);
  if (!hc->url) return -1;
  if (s->method) {
    hc->method = hc->method_own = strdup(s->method);
    if (!hc->method_own) return -1;
  } else {
    hc->method = s->body.n ? "POST" : "GET";
  }
  size_t need = 0;
  for (size_t i = 0; s->headers && i < s->nheaders; i++) need += s->headers[2 * i].n + s->headers[2 * i + 1].n + 4;
  if (need) {
    hc->hdr_block = malloc(need);
    if (!hc->hdr_block) return -1;
  }
  for (size_t i = 0; s->headers && i < s->nheaders; i++) {
    aigw_str n = s->headers[2 * i], v = s->headers[2 * i + 1];
    if (str_ieq(n.p, n.n, "content-length", 14) || str_ieq(n.p, n.n, "transfer-encoding", 17)) continue; /* ours */
    if (str_ieq(n.p, n.n, "host", 4)) hc->user_host = 1;
    char *o = hc->hdr_block + hc->hdr_len;
    memcpy(o, n.p, n.n);
    memcpy(o + n.n, ": ", 2);
    memcpy(o + n.n + 2, v.p, v.n);
    memcpy(o + n.n + 2 + v.n, "\r\n", 2);
    hc->hdr_len += n.n + v.n + 4;
  }
  hc->body_len = s->body.n;
  hc->send_clen = s->body.n || !strcmp(hc->method, "POST") || !strcmp(hc->method, "PUT") || !strcmp(hc->method, "PATCH");
  hc->timeout_ms = to;
  /* the deadline first: a synchronous failure inside upc_open re-uses c->ev for the callback */
  evtimer_assign(&c->ev, r->w->base, on_callout_deadline, c);
  struct timeval tv = {to / 1000, (to % 1000) * 1000};
  evtimer_add(&c->ev, &tv);
  int rc = upc_open(r->w, hc->url, &co_sink, hc, &hc->upc, cto, !strcmp(hc->method, "HEAD"));
  if (rc != 0) {
    event_del(&c->ev);
    memset(&c->ev, 0, sizeof c->ev);
  }
  return rc;
}

aigw_call *host_http_call(aigw_req *r, const aigw_http_spec *s, aigw_done_fn done, void *ud) {
  if (!s || s->struct_size < offsetof(aigw_http_spec, max_response_bytes) || !s->url) return NULL;
  if (strncmp(s->url, "http://", 7) && strncmp(s->url, "https://", 8)) return NULL;
  if (s->method && !is_token(s->method, strlen(s->method))) {
    log_msg(AIGW_LOG_WARN, "http_call: method '%.32s' is not an HTTP token", s->method);
    return NULL;
  }
  for (size_t i = 0; s->headers && i < s->nheaders; i++)
    if (!is_token(s->headers[2 * i].p, s->headers[2 * i].n) || !value_ok(s->headers[2 * i + 1])) {
      log_msg(AIGW_LOG_WARN, "http_call: header %zu has an invalid name or a CR/LF/NUL in its value", i);
      return NULL;
    }
  aigw_call *c = call_new(r, CALL_HTTP, done, ud);
  if (!c) return NULL;
  c->max_bytes = s->struct_size >= sizeof(aigw_http_spec) && s->max_response_bytes ? s->max_response_bytes : 8u << 20;
  c->resp = evbuffer_new();
  if (!c->resp) goto fail;
  uint32_t to = s->timeout_ms ? s->timeout_ms : 10000;
  uint32_t cto = s->connect_timeout_ms ? s->connect_timeout_ms : to;
  if (s->body.n) {
    c->req_body = malloc(s->body.n);
    if (!c->req_body) goto fail;
    memcpy(c->req_body, s->body.p, s->body.n);
  }
  if (!strncmp(s->url, "http://", 7) && url_plain(s->url) && callout_builtin()) {
    int rc = callout_start_builtin(r, (http_call *)c, s, to, cto);
    if (rc == 0) return c;
    if (rc < 0) goto fail;
  }
  c->easy = upstream_easy_get(r->w);
  if (!c->easy) goto fail;
  CURL *e = c->easy;
  for (size_t i = 0; s->headers && i < s->nheaders; i++) {
    aigw_str n = s->headers[2 * i], v = s->headers[2 * i + 1];
    char *line = malloc(n.n + v.n + 3);
    if (!line) goto fail;
    snprintf(line, n.n + v.n + 3, "%.*s: %.*s", (int)n.n, n.p, (int)v.n, v.p);
    struct curl_slist *nl = curl_slist_append(c->hdrs, line);
    free(line);
    if (!nl) goto fail;
    c->hdrs = nl;
  }
  struct curl_slist *nl = curl_slist_append(c->hdrs, "Expect:");
  if (nl) c->hdrs = nl;
  upstream_easy_setup(e, s->url, c, c->hdrs, call_on_write, call_on_header);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)to);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cto);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
  if (s->body.n) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->req_body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body.n);
  }
  if (s->method) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, s->method);
  if (s->method && !strcmp(s->method, "HEAD")) curl_easy_setopt(e, CURLOPT_NOBODY, 1L); /* else it waits for a body */
  if (curl_multi_add_handle(r->w->multi, e) != CURLM_OK) goto fail;
  return c;
fail:
  call_unlink(r, c);
  call_free(c);
  return NULL;
}

void call_http_done(aigw_call *c, CURLcode rc) {
  curl_multi_remove_handle(c->r->w->multi, c->easy);
  curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->http_status);
  aigw_call_status st = rc == CURLE_OK ? AIGW_CALL_OK : rc == CURLE_OPERATION_TIMEDOUT ? AIGW_CALL_TIMEOUT : AIGW_CALL_ERROR;
  if (rc != CURLE_OK && !c->errbuf[0]) snprintf(c->errbuf, sizeof c->errbuf, "%s", curl_easy_strerror(rc));
  upstream_easy_put(c->r->w, c->easy);
  c->easy = NULL;
  call_complete(c, st);
}

/* ---- timers ---- */

static void on_call_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  aigw_call *c = arg;
  c->finished = 1;
  c->st = AIGW_CALL_OK;
  call_run(c); /* already on the loop: run now */
}

aigw_call *host_timer(aigw_req *r, uint32_t ms, aigw_done_fn done, void *ud) {
  aigw_call *c = call_new(r, CALL_TIMER, done, ud);
  if (!c) return NULL;
  evtimer_assign(&c->ev, r->w->base, on_call_timer, c);
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(&c->ev, &tv);
  return c;
}

void host_cancel(aigw_call *c) {
  if (!c || c->magic != CALL_MAGIC || c->finished) return;
  if (c->easy) {
    curl_multi_remove_handle(c->r->w->multi, c->easy);
    upstream_easy_put(c->r->w, c->easy);
    c->easy = NULL;
  }
  if (c->kind == CALL_HTTP) upc_close(&((http_call *)c)->upc); /* closed, never reused */
  call_complete(c, AIGW_CALL_CANCELLED);
}

/* ---- results ---- */
int host_call_status_code(aigw_call *c) { return c && c->magic == CALL_MAGIC ? (int)c->http_status : 0; }
int host_call_body(aigw_call *c, aigw_str *out) {
  if (!c || c->magic != CALL_MAGIC || !out) return AIGW_E_INVAL;
  if (c->str_result) {
    *out = (aigw_str){c->str_result, c->str_len};
    return AIGW_OK;
  }
  if (!c->resp) {
    *out = (aigw_str){"", 0};
    return AIGW_OK;
  }
  size_t n = evbuffer_get_length(c->resp);
  *out = (aigw_str){n ? (const char *)evbuffer_pullup(c->resp, -1) : "", n};
  return AIGW_OK;
}
int host_call_header(aigw_call *c, aigw_str name, aigw_str *out) {
  if (!c || c->magic != CALL_MAGIC || !out) return AIGW_E_INVAL;
  const hdr *h = hdrs_get(&c->resp_hdrs, name.p, name.n);
  if (!h) return AIGW_E_NOTFOUND;
  *out = h->value;
  return AIGW_OK;
}
int host_call_error(aigw_call *c, aigw_str *out) {
  if (!c || c->magic != CALL_MAGIC || !out) return AIGW_E_INVAL;
  *out = (aigw_str){c->errbuf, strlen(c->errbuf)};
  return AIGW_OK;
}
int64_t host_call_int(aigw_call *c) { return c && c->magic == CALL_MAGIC ? c->int_result : 0; }

/* ---- store (in-process backend: completes on the next loop turn) ---- */

/* ---- the store on redis: the command's deadline is the call's timer ---- */
static void on_store_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  aigw_call *c = arg;
  rstore_timed_out(c);
  snprintf(c->errbuf, sizeof c->errbuf, "redis did not answer within timeout_ms=%u", c->r->gen->redis_timeout_ms);
  call_complete(c, AIGW_CALL_ERROR);
}

static aigw_call *redis_call(aigw_req *r, aigw_done_fn done, void *ud, int op, aigw_str key, int64_t by,
                             uint64_t window_ms, aigw_str val, uint64_t ttl_ms) {
  aigw_call *c = call_new(r, CALL_STORE, done, ud);
  if (!c) return NULL;
  if (rstore_send(c, op, key.p, key.n, by, window_ms, val.p ? val.p : "", val.n, ttl_ms) < 0) {
    call_complete(c, AIGW_CALL_ERROR);
    return c;
  }
  uint32_t ms = r->gen->redis_timeout_ms;
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  event_assign(&c->ev, r->w->base, -1, 0, on_store_deadline, c);
  evtimer_add(&c->ev, &tv);
  return c;
}

aigw_call *host_store_incr(aigw_req *r, aigw_str key, int64_t by, uint64_t window_ms, aigw_done_fn done, void *ud) {
  if (!key.p || !key.n || !window_ms) return NULL;
  if (r && r->magic == REQ_MAGIC && r->gen && r->gen->store_redis)
    return redis_call(r, done, ud, 0, key, by, window_ms, (aigw_str){NULL, 0}, 0);
  aigw_call *c = call_new(r, CALL_STORE, done, ud);
  if (!c) return NULL;
  c->int_result = store_incr(core_store(), key.p, key.n, by, window_ms, now_ms());
  call_complete(c, AIGW_CALL_OK);
  return c;
}

aigw_call *host_store_reserve(aigw_req *r, aigw_str key, int64_t by, int64_t limit, uint64_t window_ms, aigw_done_fn done,
                              void *ud) {
  if (!key.p || !key.n || !window_ms || limit < 0) return NULL;
  if (r && r->magic == REQ_MAGIC && r->gen && r->gen->store_redis)
    return redis_call(r, done, ud, 3, key, by, window_ms, (aigw_str){NULL, 0}, (uint64_t)limit);
  aigw_call *c = call_new(r, CALL_STORE, done, ud);
  if (!c) return NULL;
  int64_t total = 0;
  int rc = store_incr_if_below(core_store(), key.p, key.n, by, limit, window_ms, now_ms(), &total);
  if (rc < 0) {
    snprintf(c->errbuf, sizeof c->errbuf, "the store cannot count under this key (it holds a value, or out of memory)");
    call_complete(c, AIGW_CALL_ERROR);
    return c;
  }
  c->http_status = rc == 1 ? 200 : 429;
  c->int_result = total;
  call_complete(c, AIGW_CALL_OK);
  return c;
}

aigw_call *host_store_get(aigw_req *r, aigw_str key, aigw_done_fn done, void *ud) {
  if (!key.p || !key.n) return NULL;
  if (r && r->magic == REQ_MAGIC && r->gen && r->gen->store_redis)
    return redis_call(r, done, ud, 1, key, 0, 0, (aigw_str){NULL, 0}, 0);
  aigw_call *c = call_new(r, CALL_STORE, done, ud);
  if (!c) return NULL;
  void *v = NULL;
  size_t vn = 0;
  if (store_get(core_store(), key.p, key.n, &v, &vn, now_ms()) == 0) {
    c->str_result = v;
    c->str_len = vn;
    c->http_status = 200;
    call_complete(c, AIGW_CALL_OK);
  } else {
    c->http_status = 404;
    snprintf(c->errbuf, sizeof c->errbuf, "key not found");
    call_complete(c, AIGW_CALL_ERROR);
  }
  return c;
}

aigw_call *host_store_set(aigw_req *r, aigw_str key, aigw_str value, uint64_t ttl_ms, aigw_done_fn done, void *ud) {
  if (!key.p || !key.n) return NULL;
  if (r && r->magic == REQ_MAGIC && r->gen && r->gen->store_redis)
    return redis_call(r, done, ud, 2, key, 0, 0, value, ttl_ms);
  aigw_call *c = call_new(r, CALL_STORE, done, ud);
  if (!c) return NULL;
  int rc = store_set(core_store(), key.p, key.n, value.p ? value.p : "", value.n, ttl_ms, now_ms());
  if (rc != 0) snprintf(c->errbuf, sizeof c->errbuf, "store full or out of memory");
  call_complete(c, rc == 0 ? AIGW_CALL_OK : AIGW_CALL_ERROR);
  return c;
}

/* ---- the live-request registry ----
 * Registry (process-wide, documented): every request from req_new to just before it is freed, in
 * 64 mutex-guarded stripes keyed by its address, so that h->post from any thread can tell a live
 * request from freed memory without reading it unlocked. Two uncontended lock pairs per request. */
#define REG_STRIPES 64
static struct reg_stripe {
  pthread_mutex_t mu;
  aigw_req *head;
} g_reg[REG_STRIPES];
static pthread_once_t g_reg_once = PTHREAD_ONCE_INIT;

static void reg_init(void) {
  for (int i = 0; i < REG_STRIPES; i++) pthread_mutex_init(&g_reg[i].mu, NULL);
}
static struct reg_stripe *reg_of(const aigw_req *r) {
  uintptr_t h = (uintptr_t)r;
  h ^= h >> 17;
  h *= 0x9E3779B97F4A7C15ull;
  return &g_reg[(h >> 58) % REG_STRIPES];
}

void req_registry_add(aigw_req *r) {
  pthread_once(&g_reg_once, reg_init);
  struct reg_stripe *s = reg_of(r);
  pthread_mutex_lock(&s->mu);
  r->reg_prev = NULL;
  r->reg_next = s->head;
  if (s->head) s->head->reg_prev = r;
  s->head = r;
  pthread_mutex_unlock(&s->mu);
}

void req_registry_remove(aigw_req *r) {
  struct reg_stripe *s = reg_of(r);
  pthread_mutex_lock(&s->mu);
  if (r->reg_prev) r->reg_prev->reg_next = r->reg_next;
  else if (s->head == r) s->head = r->reg_next;
  if (r->reg_next) r->reg_next->reg_prev = r->reg_prev;
  r->reg_next = r->reg_prev = NULL;
  pthread_mutex_unlock(&s->mu);
}

/* ---- post from other threads ----
 * The request must be paused by the posting plugin (it cannot end before resume... except when
 * the client leaves). A per-worker check against the live list at delivery keeps a post to an
 * ended request from running; the request's serial guards against address reuse. */
typedef struct post_ctx {
  aigw_req *r;
  uint64_t serial;
  void (*fn)(aigw_req *, void *);
  void *ud;
} post_ctx;

static void deliver_post(void *a, void *b) {
  post_ctx *p = a;
  worker *w = b;
  for (aigw_req *r = w->live; r; r = r->next_live) {
    if (r == p->r && r->serial == p->serial && !r->ended) {
      p->fn(r, p->ud);
      break;
    }
  }
  free(p);
}

int host_post(aigw_req *r, void (*fn)(aigw_req *, void *), void *ud) {
  if (!r || !fn) return AIGW_E_STATE;
  pthread_once(&g_reg_once, reg_init);
  /* read the request only while the registry says it is alive (it cannot be freed meanwhile) */
  struct reg_stripe *s = reg_of(r);
  worker *w = NULL;
  uint64_t serial = 0;
  pthread_mutex_lock(&s->mu);
  for (aigw_req *x = s->head; x; x = x->reg_next)
    if (x == r) {
      if (r->magic == REQ_MAGIC) w = r->w, serial = r->serial; /* set before it was registered */
      break;
    }
  pthread_mutex_unlock(&s->mu);
  if (!w) return AIGW_E_STATE;
  post_ctx *p = malloc(sizeof *p);
  if (!p) return AIGW_E_NOMEM;
  p->r = r;
  p->serial = serial;
  p->fn = fn;
  p->ud = ud;
  if (worker_post(w, deliver_post, p, w) < 0) {
    free(p);
    return AIGW_E_NOMEM;
  }
  return AIGW_OK;
}
