/* calls.c - async work started by plugins: HTTP call-outs, timers, store operations, posts.
 *
 * The exactly-once rule: every call ends through call_complete(), which marks it finished and
 * schedules its done callback on the worker's loop (never inside the starting call). A request
 * that ends first cancels its pending calls in calls_cancel_all(), which runs their callbacks
 * with CANCELLED synchronously, before the plugins' on_done hooks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core.h"
#include "store.h"

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

static void call_free(aigw_call *c) {
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

static aigw_call *call_new(aigw_req *r, call_kind kind, aigw_done_fn done, void *ud) {
  if (!r || r->magic != REQ_MAGIC || r->ended || !done) return NULL;
  aigw_call *c = calloc(1, sizeof *c);
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

aigw_call *host_http_call(aigw_req *r, const aigw_http_spec *s, aigw_done_fn done, void *ud) {
  if (!s || s->struct_size < offsetof(aigw_http_spec, max_response_bytes) || !s->url) return NULL;
  if (strncmp(s->url, "http://", 7) && strncmp(s->url, "https://", 8)) return NULL;
  aigw_call *c = call_new(r, CALL_HTTP, done, ud);
  if (!c) return NULL;
  c->max_bytes = s->struct_size >= sizeof(aigw_http_spec) && s->max_response_bytes ? s->max_response_bytes : 8u << 20;
  c->resp = evbuffer_new();
  c->easy = upstream_easy_get(r->w);
  if (!c->resp || !c->easy) goto fail;
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
  uint32_t to = s->timeout_ms ? s->timeout_ms : 10000;
  upstream_easy_setup(e, s->url, c, c->hdrs, call_on_write, call_on_header);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)to);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(s->connect_timeout_ms ? s->connect_timeout_ms : to));
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
  if (s->body.n) {
    c->req_body = malloc(s->body.n);
    if (!c->req_body) goto fail;
    memcpy(c->req_body, s->body.p, s->body.n);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->req_body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body.n);
  }
  if (s->method) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, s->method);
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

aigw_call *host_store_incr(aigw_req *r, aigw_str key, int64_t by, uint64_t window_ms, aigw_done_fn done, void *ud) {
  if (!key.p || !key.n || !window_ms) return NULL;
  aigw_call *c = call_new(r, CALL_STORE, done, ud);
  if (!c) return NULL;
  c->int_result = store_incr(core_store(), key.p, key.n, by, window_ms, now_ms());
  call_complete(c, AIGW_CALL_OK);
  return c;
}

aigw_call *host_store_get(aigw_req *r, aigw_str key, aigw_done_fn done, void *ud) {
  if (!key.p || !key.n) return NULL;
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
  aigw_call *c = call_new(r, CALL_STORE, done, ud);
  if (!c) return NULL;
  int rc = store_set(core_store(), key.p, key.n, value.p ? value.p : "", value.n, ttl_ms, now_ms());
  if (rc != 0) snprintf(c->errbuf, sizeof c->errbuf, "store full or out of memory");
  call_complete(c, rc == 0 ? AIGW_CALL_OK : AIGW_CALL_ERROR);
  return c;
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
  if (!r || !fn || r->magic != REQ_MAGIC || r->ended) return AIGW_E_STATE;
  post_ctx *p = malloc(sizeof *p);
  if (!p) return AIGW_E_NOMEM;
  p->r = r;
  p->serial = r->serial;
  p->fn = fn;
  p->ud = ud;
  if (worker_post(r->w, deliver_post, p, r->w) < 0) {
    free(p);
    return AIGW_E_NOMEM;
  }
  return AIGW_OK;
}
