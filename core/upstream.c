/* upstream.c - upstream transfers through the worker's libcurl multi handle, driven by the
 * worker's event loop (multi-socket API), and the streaming path to the client.
 *
 * Deadlines: connect (CURLOPT_CONNECTTIMEOUT_MS), first byte and idle (one timer per request,
 * re-armed on every read; a timer re-arm touches only libevent's heap, no syscall), total
 * (CURLOPT_TIMEOUT_MS, 0 = none so that long reasoning streams are not cut).
 *
 * Streams: each upstream read is parsed into SSE events; every event runs through the provider's
 * and the plugins' event hooks and is appended to r->chunk; at the end of the read the chunk goes
 * to the client in one write (one HTTP chunk). A stream that ends without its terminal event, or
 * with a transfer error or timeout, ends with an error event in the client's format, never with
 * [DONE]. libcurl forbids multi calls inside its callbacks, so teardown requested inside one is
 * deferred: the callback returns an abort and the completion path finishes the request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "core.h"

typedef struct sock_ctx {
  struct event ev;
  worker *w;
  curl_socket_t fd;
} sock_ctx;

static void check_multi_info(worker *w);

/* ---- multi-socket plumbing ---- */

static void on_sock_event(evutil_socket_t fd, short what, void *arg) {
  sock_ctx *sc = arg;
  worker *w = sc->w;
  int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
  curl_multi_socket_action(w->multi, fd, action, &w->still_running);
  check_multi_info(w);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  (void)e;
  worker *w = userp;
  sock_ctx *sc = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (sc) {
      event_del(&sc->ev);
      free(sc);
      curl_multi_assign(w->multi, s, NULL);
    }
    return 0;
  }
  if (!sc) {
    sc = calloc(1, sizeof *sc);
    if (!sc) return -1;
    sc->w = w;
    sc->fd = s;
    curl_multi_assign(w->multi, s, sc);
  } else {
    event_del(&sc->ev);
  }
  short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
  event_assign(&sc->ev, w->base, s, kind, on_sock_event, sc);
  event_add(&sc->ev, NULL);
  return 0;
}

static void on_curl_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  worker *w = arg;
  curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &w->still_running);
  check_multi_info(w);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp) {
  (void)m;
  worker *w = userp;
  if (timeout_ms < 0) {
    evtimer_del(&w->curl_timer);
    return 0;
  }
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  evtimer_add(&w->curl_timer, &tv);
  return 0;
}

int upstream_init(worker *w) {
  w->multi = curl_multi_init();
  if (!w->multi) return -1;
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
  curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
  curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
  curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, 1024L);
  evtimer_assign(&w->curl_timer, w->base, on_curl_timer, w);
  w->easy_pool = calloc(64, sizeof(CURL *));
  return w->easy_pool ? 0 : -1;
}

void upstream_shutdown(worker *w) {
  if (!w->multi) return;
  for (size_t i = 0; i < w->neasy; i++) curl_easy_cleanup(w->easy_pool[i]);
  free(w->easy_pool);
  w->easy_pool = NULL;
  w->neasy = 0;
  evtimer_del(&w->curl_timer);
  curl_multi_cleanup(w->multi);
  w->multi = NULL;
}

/* The options every transfer shares (upstream requests and plugin call-outs): ud is the private
 * pointer (its first field a magic number telling the two apart) and the callbacks' data. */
void upstream_easy_setup(CURL *e, const char *url, void *ud, struct curl_slist *hdrs,
                         size_t (*wcb)(char *, size_t, size_t, void *),
                         size_t (*hcb)(char *, size_t, size_t, void *)) {
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, ud);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, wcb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, ud);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, hcb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, ud);
}

CURL *upstream_easy_get(worker *w) {
  if (w->neasy) return w->easy_pool[--w->neasy];
  return curl_easy_init();
}

void upstream_easy_put(worker *w, CURL *e) {
  curl_easy_reset(e);
  if (w->easy_pool && w->neasy < 64) w->easy_pool[w->neasy++] = e;
  else curl_easy_cleanup(e);
}

/* ---- deadlines ---- */

static void arm_timer(struct aigw_req *r, uint32_t ms) {
  if (r->total_deadline_us) { /* the built-in client: the total deadline caps every wait */
    uint64_t now = now_us();
    uint64_t left = r->total_deadline_us > now ? (r->total_deadline_us - now + 999) / 1000 : 1;
    if (!ms || left < ms) ms = (uint32_t)(left ? left : 1);
  }
  if (!ms) {
    if (r->up_timer_set) evtimer_del(&r->up_timer);
    r->up_timer_set = 0;
    return;
  }
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(&r->up_timer, &tv);
  r->up_timer_set = 1;
}

static void finish_transfer(struct aigw_req *r, CURLcode rc, const char *msg);
static void stream_terminate(struct aigw_req *r);

static void on_up_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct aigw_req *r = arg;
  r->up_timer_set = 0;
  if (r->stream_held) { /* the adapter never finished the stream it held */
    r->stream_held = 0;
    stream_end_error(r, "upstream_error", "the provider adapter did not finish the stream");
    return;
  }
  if (r->total_deadline_us && now_us() >= r->total_deadline_us) r->timeout_kind = 3;
  else r->timeout_kind = r->up_got_first_byte ? 2 : 1;
  finish_transfer(r, CURLE_OPERATION_TIMEDOUT, NULL);
}

/* ---- streaming to the client ---- */

static void stream_send_head(struct aigw_req *r) {
  if (r->head_sent) return;
  r->head_sent = 1;
  atomic_fetch_add(&r->w->active_streams, 1);
  observe_stream_delta(1);
  if (!r->c) return;
  balance_add_headers(r);
  hdr_list *h = &r->cresp.hdrs;
  r->cresp.status = r->uresp.status ? r->uresp.status : 200;
  if (!hdrs_get(h, "content-type", 12)) hdrs_add(&r->pool, h, "content-type", 12, "text/event-stream", 17);
  hdrs_add(&r->pool, h, "cache-control", 13, "no-cache", 8);
  if (r->http10) { /* HTTP/1.0 has no chunked encoding: the body ends when the connection closes */
    r->c->keep_alive = 0;
    r->keep_alive = 0;
    conn_write_response_head(r->c, r->cresp.status, h, 2, 0, r->id);
    return;
  }
  conn_write_response_head(r->c, r->cresp.status, h, 1, 0, r->id);
}

void stream_flush(struct aigw_req *r) {
  if (!r->chunk) return;
  size_t n = evbuffer_get_length(r->chunk);
  if (!n) return;
  if (!r->c) {
    evbuffer_drain(r->chunk, n);
    return;
  }
  stream_send_head(r);
  if (r->http10) {
    evbuffer_add_buffer(r->c->out, r->chunk);
  } else {
    char hx[24];
    int hn = snprintf(hx, sizeof hx, "%zx\r\n", n);
    evbuffer_add(r->c->out, hx, (size_t)hn);
    evbuffer_add_buffer(r->c->out, r->chunk);
    evbuffer_add(r->c->out, "\r\n", 2);
  }
  conn_send(r->c, NULL); /* may discover the client is gone: see req_client_gone */
}

static int ensure_chunk(struct aigw_req *r) {
  if (!r->chunk) r->chunk = evbuffer_new();
  return r->chunk ? 0 : -1;
}

void stream_append_sse(struct evbuffer *b, const char *name, size_t nlen, const char *data, size_t dlen) {
  if (nlen) {
    evbuffer_add(b, "event: ", 7);
    evbuffer_add(b, name, nlen);
    evbuffer_add(b, "\n", 1);
  }
  /* one data: line per line of data */
  const char *p = data, *end = data + dlen;
  do {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    evbuffer_add(b, "data: ", 6);
    evbuffer_add(b, p, (size_t)(le - p));
    evbuffer_add(b, "\n", 1);
    p = nl ? nl + 1 : end;
  } while (p < end);
  evbuffer_add(b, "\n", 1);
}

void stream_emit(struct aigw_req *r, const char *name, size_t nlen, const char *data, size_t dlen) {
  if (ensure_chunk(r) < 0) return;
  stream_append_sse(r->chunk, name, nlen, data, dlen);
}

static void stream_terminate(struct aigw_req *r) {
  if (r->stream_ended) return;
  r->stream_ended = 1;
  stream_flush(r);
  if (r->c) {
    stream_send_head(r);
    if (!r->http10) evbuffer_add(r->c->out, "0\r\n\r\n", 5);
    conn_send(r->c, NULL);
  }
}

void stream_end_ok(struct aigw_req *r) {
  stream_terminate(r);
  if (!r->in_curl_cb) req_finish(r);
}

void stream_end_error(struct aigw_req *r, const char *type, const char *msg) {
  if (r->stream_ended) return;
  if (!r->error) r->error = arena_strndup(&r->pool, msg, strlen(msg));
  if (!type) type = "upstream_error";
  /* in the client's format: an OpenAI error chunk, or Anthropic's `event: error` */
  int anth = REQ_API(r) == AIGW_API_MESSAGES;
  char *txt = err_json(REQ_API(r), anth ? 500 : 502, type, "stream_interrupted", msg);
  if (txt) {
    stream_emit(r, anth ? "error" : NULL, anth ? 5 : 0, txt, strlen(txt));
    free(txt);
  }
  if (r->cresp.status < 400 && !r->head_sent) r->cresp.status = 502;
  stream_terminate(r);
  if (!r->in_curl_cb && !r->in_hook) req_finish(r);
}

/* provider_emit queue: events a translating adapter produced during one provider hook. */
typedef struct pemit {
  aigw_event_kind kind;
  size_t nn, dn;
  char *buf; /* name then data, one allocation */
} pemit;

int stream_pemit_push(struct aigw_req *r, aigw_event_kind kind, aigw_str name, aigw_str data) {
  if (r->pemit_n == r->pemit_cap) {
    size_t cap = r->pemit_cap ? r->pemit_cap * 2 : 8;
    pemit *v = realloc(r->pemit, cap * sizeof *v);
    if (!v) return -1;
    r->pemit = v;
    r->pemit_cap = cap;
  }
  size_t nn = name.p ? name.n : 0, dn = data.p ? data.n : 0;
  char *b = malloc(nn + dn + 1);
  if (!b) return -1;
  if (nn) memcpy(b, name.p, nn);
  if (dn) memcpy(b + nn, data.p, dn);
  b[nn + dn] = 0;
  r->pemit[r->pemit_n++] = (pemit){kind, nn, dn, b};
  return 0;
}

void stream_pemit_free(struct aigw_req *r) {
  for (size_t i = 0; i < r->pemit_n; i++) free(r->pemit[i].buf);
  free(r->pemit);
  r->pemit = NULL;
  r->pemit_n = r->pemit_cap = 0;
}

/* One client-format event: kind bookkeeping, the plugins' event hooks (reverse order), then the
 * bytes into the current write. */
static void deliver_event(struct aigw_req *r, aigw_event *ev) {
  if (r->cont_active && cont_filter(r, ev)) return; /* a continuation's start event: the client has it */
  if (ev->kind == AIGW_EV_ERROR && (r->head_sent || r->t_first_token) && r->c && balance_can_retry(r, OUT_STREAM, 0)) {
    /* broken after the first byte: the route continues the answer on another target */
    r->retry_wanted = OUT_STREAM;
    r->stream_ended = 1;
    if (!r->error) r->error = "the provider sent an error event mid-stream";
    return;
  }
  if (ev->kind == AIGW_EV_ERROR && !r->head_sent && !r->t_first_token && r->c && balance_can_retry(r, OUT_MALFORMED, 0)) {
    /* the provider failed before anything reached the client: drop what this attempt produced,
     * end the transfer, and let its end start the next attempt */
    r->retry_wanted = OUT_MALFORMED;
    r->stream_ended = 1;
    if (r->chunk) evbuffer_drain(r->chunk, evbuffer_get_length(r->chunk));
    if (!r->error) r->error = "the provider sent an error event before any content";
    return;
  }
  if (ev->kind == AIGW_EV_DONE) r->saw_done = 1;
  if (ev->kind == AIGW_EV_ERROR) {
    /* the provider's own error event ends the stream: pass it on as the last event */
    r->saw_error = 1;
    if (!r->error) r->error = "the provider sent an error event mid-stream";
  }
  if ((ev->kind == AIGW_EV_DELTA || ev->kind == AIGW_EV_TOOL_DELTA) && !r->t_first_token) r->t_first_token = now_us();
  r->in_event = 1;
  aigw_status st = AIGW_CONTINUE;
  const cfg_route *rt = r->route;
  for (size_t i = r->hooks_reached; i-- > 0;) {
    const cfg_plugin *p = rt->plugins[i];
    if (!p->desc->on_event) continue;
    r->in_hook = 1;
    r->cur_plugin = p;
    st = p->desc->on_event(p->inst, r, &r->rctx[p->index], ev);
    r->cur_plugin = NULL;
    r->in_hook = 0;
    if (st == AIGW_ERROR) {
      observe_plugin_error(p->name);
      log_msg(AIGW_LOG_ERROR, "request %s: plugin '%s' failed in its event hook", r->id, p->name);
      stream_end_error(r, "server_error", "a gateway plugin failed while streaming");
      break;
    }
    if (st == AIGW_DROP || r->stream_ended) break;
  }
  if (st != AIGW_DROP && st != AIGW_ERROR && !(r->stream_ended && !r->saw_error) && ensure_chunk(r) == 0) {
    if (ev->json && ev->changed) {
      char *txt = cJSON_PrintUnformatted(ev->json);
      if (txt) {
        stream_append_sse(r->chunk, ev->name.p, ev->name.n, txt, strlen(txt));
        free(txt);
      }
    } else if (ev->modified || !ev->raw.p) {
      stream_append_sse(r->chunk, ev->name.p, ev->name.n, ev->data.p, ev->data.n);
    } else {
      evbuffer_add(r->chunk, ev->raw.p, ev->raw.n);
    }
    if (r->route->retry.stream_continue) cont_observe(r, ev);
  }
  r->in_event = 0;
  if (r->emit_q) { /* events plugins emitted during this one follow it */
    if (!r->stream_ended && ensure_chunk(r) == 0) evbuffer_add_buffer(r->chunk, r->emit_q);
    else evbuffer_drain(r->emit_q, evbuffer_get_length(r->emit_q));
  }
}

/* Deliver what the provider emitted during its last hook, in order. */
static void deliver_pemit(struct aigw_req *r) {
  size_t i = 0;
  for (; i < r->pemit_n && !(r->stream_ended && !r->saw_error); i++) {
    pemit *pe = &r->pemit[i];
    aigw_event ev;
    event_init(&ev, r, pe->buf, pe->nn, pe->buf + pe->nn, pe->dn);
    ev.kind = pe->kind;
    deliver_event(r, &ev);
    event_release(&ev);
    free(pe->buf);
    if (r->saw_error) { i++; break; }
  }
  for (; i < r->pemit_n; i++) free(r->pemit[i].buf);
  r->pemit_n = 0;
}

/* Events the adapter emitted outside its stream hooks (from a call-out's callback): delivered from
 * a clean loop turn. */
void stream_deliver_pending(struct aigw_req *r) {
  if (r->ended || !r->pemit_n) return;
  if (r->stream_ended || r->client_gone) {
    stream_pemit_free(r);
    return;
  }
  int guard = r->in_curl_cb;
  r->in_curl_cb = 1;
  deliver_pemit(r);
  if (r->saw_error && !r->stream_ended) stream_terminate(r);
  stream_flush(r);
  r->in_curl_cb = guard;
  if (r->client_gone || r->stream_ended) {
    req_finish(r); /* the transfer may be idle (or over): end it here */
  } else if (r->stream_held && r->saw_done) {
    r->stream_held = 0;
    stream_end_ok(r); /* the upstream had ended; the adapter's held events are out */
  }
}

static aigw_status run_provider_stream_hook(struct aigw_req *r, int which, aigw_event *ev, const char *p, size_t n) {
  const aigw_provider *pv = r->provider->plugin.desc->provider;
  aigw_status st = AIGW_CONTINUE;
  r->in_hook = 1;
  r->cur_plugin = &r->provider->plugin;
  if (which == 0) st = pv->on_event(r->provider->plugin.inst, r, &r->provider_rctx, ev);
  else if (which == 1) st = pv->on_stream_data(r->provider->plugin.inst, r, &r->provider_rctx, p, n);
  else st = pv->on_stream_end(r->provider->plugin.inst, r, &r->provider_rctx);
  r->cur_plugin = NULL;
  r->in_hook = 0;
  if (r->pemit_n) deliver_pemit(r);
  if (st == AIGW_ERROR && !r->stream_ended) {
    observe_plugin_error(r->provider->plugin.name);
    stream_end_error(r, "upstream_error", "the provider adapter could not translate the upstream stream");
  }
  return st;
}

static int on_sse_event(void *ud, const sse_event *sev) {
  struct aigw_req *r = ud;
  aigw_event ev;
  event_init(&ev, r, sev->event, sev->event_len, sev->data, sev->data_len);
  ev.raw = (aigw_str){sev->raw, sev->raw_len};
  aigw_status st = AIGW_CONTINUE;
  const aigw_provider *pv = r->provider->plugin.desc->provider;
  if (pv->on_event) st = run_provider_stream_hook(r, 0, &ev, NULL, 0);
  if (st == AIGW_DROP || st == AIGW_ERROR) {
    if (ev.kind == AIGW_EV_DONE) r->saw_done = 1; /* a dropped end marker still ends the stream */
  } else if (!r->stream_ended) {
    deliver_event(r, &ev);
  }
  event_release(&ev);
  if (r->saw_error && !r->stream_ended) stream_terminate(r); /* nothing after the provider's error event */
  return r->stream_ended ? 1 : 0;
}

int stream_process_bytes(struct aigw_req *r, const char *p, size_t n) {
  const aigw_provider *pv = r->provider->plugin.desc->provider;
  int guard = r->in_curl_cb;
  r->in_curl_cb = 1; /* no teardown while a hook or the parser iterates: the caller finishes */
  int rc = 0;
  if (PROV_HAS(pv, on_stream_data)) {
    run_provider_stream_hook(r, 1, NULL, p, n);
    if (r->saw_error && !r->stream_ended) stream_terminate(r);
  } else {
    if (!r->sse_init) {
      sse_init(&r->sse, 4u << 20);
      r->sse_init = 1;
    }
    rc = sse_feed(&r->sse, p, n, on_sse_event, r);
    if (rc < 0) stream_end_error(r, "upstream_error", sse_error(&r->sse));
  }
  r->in_curl_cb = guard;
  return rc < 0 ? -1 : 0;
}

int stream_upstream_complete(struct aigw_req *r) {
  const aigw_provider *pv = r->provider->plugin.desc->provider;
  if (r->stream_ended) return 0;
  if (r->sse_init && sse_pending(&r->sse)) return 0; /* a half event: truncated */
  if (PROV_HAS(pv, on_stream_end)) {
    int guard = r->in_curl_cb;
    r->in_curl_cb = 1;
    aigw_status est = run_provider_stream_hook(r, 2, NULL, NULL, 0);
    if (est == AIGW_PAUSE && !r->stream_ended && !r->saw_done) {
      /* the adapter still holds events (waiting for a call-out): it emits them, the end marker
       * included, from that call-out's callback */
      r->stream_held = 1;
      r->in_curl_cb = guard;
      return 0;
    }
    if (r->saw_error && !r->stream_ended) stream_terminate(r);
    r->in_curl_cb = guard;
    if (r->stream_ended) return 0;
  }
  return r->saw_done;
}

/* ---- libcurl callbacks ---- */

void upstream_on_header_line(struct aigw_req *r, const char *buf, size_t n) {
  int st = hdrs_add_line(&r->pool, &r->uresp.hdrs, buf, n); /* a status line starts over */
  if (st) r->uresp.status = st > 0 ? st : 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud) {
  upstream_on_header_line(ud, buf, size * nitems);
  return size * nitems;
}

static int is_event_stream(struct aigw_req *r) {
  const hdr *ct = hdrs_get(&r->uresp.hdrs, "content-type", 12);
  if (ct && ct->value.n >= 17 && str_ieq(ct->value.p, 17, "text/event-stream", 17)) return 1;
  /* a provider that decodes its own stream framing (AWS event-stream, NDJSON) */
  const aigw_provider *pv = r->provider->plugin.desc->provider;
  return r->is_stream && PROV_HAS(pv, on_stream_data) && !(ct && ct->value.n >= 16 && str_ieq(ct->value.p, 16, "application/json", 16));
}

static size_t on_write(char *buf, size_t size, size_t nmemb, void *ud) {
  return upstream_on_body(ud, buf, size * nmemb);
}

size_t upstream_on_body(struct aigw_req *r, const char *buf, size_t n) {
  if (r->is_probe) return health_probe_body(r, buf, n);
  if (r->hedge_parent) return hedge_child_body(r, buf, n);
  if (r->client_gone || r->ended) return 0; /* abort the transfer */
  if (!r->up_got_first_byte) {
    if (r->hedge) hedge_first_byte(r);
    r->up_got_first_byte = 1;
    r->t_up_first = now_us();
    r->up_streaming = r->uresp.status >= 200 && r->uresp.status < 300 && is_event_stream(r);
  }
  arm_timer(r, r->tmo.idle_ms);
  if (!r->up_streaming) {
    /* Buffer the whole answer (bounded). */
    size_t need = r->uresp.body_len + n;
    if (need > (64u << 20)) {
      r->error = "upstream response larger than 64 MiB";
      return 0;
    }
    if (!r->uresp.body_owned || need + 1 > r->uresp.body_cap) {
      /* grow geometrically: a large answer arriving in 16 KiB reads is copied O(n) times, not O(n^2) */
      size_t cap = r->uresp.body_owned ? r->uresp.body_cap * 2 : 16384;
      while (cap < need + 1) cap *= 2;
      char *nb = realloc(r->uresp.body_owned ? r->uresp.body : NULL, cap);
      if (!nb) return 0;
      if (!r->uresp.body_owned && r->uresp.body_len) memcpy(nb, r->uresp.body, r->uresp.body_len);
      r->uresp.body = nb;
      r->uresp.body_cap = cap;
      r->uresp.body_owned = 1;
    }
    memcpy(r->uresp.body + r->uresp.body_len, buf, n);
    r->uresp.body[need] = 0;
    r->uresp.body_len = need;
    return n;
  }
  r->in_curl_cb = 1;
  stream_process_bytes(r, buf, n);
  stream_flush(r);
  r->in_curl_cb = 0;
  if (r->client_gone || r->stream_ended) return 0;
  /* back-pressure: a slow client pauses the upstream instead of growing our buffer */
  if (r->c && conn_out_pending(r->c) > r->gen->limits.max_stream_buffer_bytes) {
    r->up_paused = 1;
    if (r->easy) curl_easy_pause(r->easy, CURLPAUSE_RECV); /* allowed inside the callback; this data is consumed */
  }
  return n;
}

void upstream_unpause(struct aigw_req *r) {
  if (!r->up_paused) return;
  r->up_paused = 0;
  if (r->upc) upc_unpause(r);
  else if (r->easy) curl_easy_pause(r->easy, CURLPAUSE_CONT);
}

/* ---- start, abort, finish ---- */

int upstream_start(struct aigw_req *r) {
  worker *w = r->w;
  if (!r->upstream_url) {
    req_respond_error(r, 502, "upstream_error", NULL, "the provider adapter did not set an upstream URL");
    return -1;
  }
  {
    const cfg_timeouts *to = &r->tmo;
    evtimer_assign(&r->up_timer, w->base, on_up_timer, r);
    r->t_up_start = now_us();
    if (to->total_ms) r->total_deadline_us = r->t_up_start + (uint64_t)to->total_ms * 1000u;
    arm_timer(r, to->first_byte_ms);
    int rc = r->provider && r->provider->force_libcurl ? 1 : upc_start(r); /* plain HTTP to an address: the built-in client */
    if (rc <= 0) return rc; /* started, or failed and answered */
    r->total_deadline_us = 0; /* libcurl enforces total_ms itself */
  }
  CURL *e = upstream_easy_get(w);
  if (!e) {
    req_respond_error(r, 500, "server_error", NULL, "out of memory");
    return -1;
  }
  r->easy = e;
  for (size_t i = 0; i < r->ureq.hdrs.n; i++) {
    const hdr *h = &r->ureq.hdrs.v[i];
    char *line = arena_alloc(&r->pool, h->name.n + h->value.n + 3);
    if (!line) break;
    memcpy(line, h->name.p, h->name.n);
    memcpy(line + h->name.n, ": ", 2);
    memcpy(line + h->name.n + 2, h->value.p, h->value.n);
    struct curl_slist *nl = curl_slist_append(r->curl_hdrs, line);
    if (nl) r->curl_hdrs = nl;
  }
  struct curl_slist *nl = curl_slist_append(r->curl_hdrs, "Expect:");
  if (nl) r->curl_hdrs = nl;
  const cfg_timeouts *to = &r->tmo;
  upstream_easy_setup(e, r->upstream_url, r, r->curl_hdrs, on_write, on_header);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(to->connect_ms ? to->connect_ms : 10000));
  if (to->total_ms) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)to->total_ms);
  if (strncmp(r->upstream_url, "http://", 7) == 0) curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  int is_get = str_ieq(r->method.p, r->method.n, "GET", 3) || r->route->api == AIGW_API_MODELS;
  if (is_get) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->ureq.body ? r->ureq.body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->ureq.body_len);
    if (!str_ieq(r->method.p, r->method.n, "POST", 4)) {
      char *m = arena_strndup(&r->pool, r->method.p, r->method.n);
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    }
  }
  /* up_timer was assigned and armed above (never re-assign a pending event) */
  r->t_up_start = now_us();
  if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
    upstream_abort(r);
    req_respond_error(r, 500, "server_error", NULL, "could not start the upstream transfer");
    return -1;
  }
  r->up_active = 1;
  return 0;
}

void upstream_abort(struct aigw_req *r) {
  if (r->upc) upc_abort(r);
  if (r->up_timer_set) {
    evtimer_del(&r->up_timer);
    r->up_timer_set = 0;
  }
  if (r->easy) {
    if (r->up_active) curl_multi_remove_handle(r->w->multi, r->easy);
    r->up_active = 0;
    upstream_easy_put(r->w, r->easy);
    r->easy = NULL;
  }
  if (r->curl_hdrs) {
    curl_slist_free_all(r->curl_hdrs);
    r->curl_hdrs = NULL;
  }
}

void upstream_transfer_done(struct aigw_req *r, CURLcode rc, const char *msg) { finish_transfer(r, rc, msg); }

static void finish_transfer(struct aigw_req *r, CURLcode rc, const char *msg) {
  if (r->is_probe) {
    health_probe_done(r, rc); /* frees the probe */
    return;
  }
  if (r->hedge_parent) {
    hedge_child_done(r, rc, msg);
    return;
  }
  r->t_up_end = now_us();
  r->curl_result = rc;
  char cerr[CURL_ERROR_SIZE + 64];
  if (rc != CURLE_OK && msg && !r->timeout_kind) {
    snprintf(cerr, sizeof cerr, "%s", msg);
  } else if (rc != CURLE_OK) {
    const char *what = curl_easy_strerror(rc);
    if (r->timeout_kind != 2 && r->deadline_capped && r->deadline_us && now_us() + 2000 >= r->deadline_us)
      snprintf(cerr, sizeof cerr, "the route's deadline_ms=%u passed before an upstream answered", r->route->retry.deadline_ms);
    else if (r->timeout_kind == 1)
      snprintf(cerr, sizeof cerr, "upstream did not answer within first_byte_ms=%u", r->tmo.first_byte_ms);
    else if (r->timeout_kind == 2)
      snprintf(cerr, sizeof cerr, "upstream stalled: no data for idle_ms=%u", r->tmo.idle_ms);
    else if (r->timeout_kind == 3)
      snprintf(cerr, sizeof cerr, "upstream exceeded total_ms=%u", r->tmo.total_ms);
    else
      snprintf(cerr, sizeof cerr, "upstream %s: %s", r->provider ? r->provider->name : "", what);
  }
  upstream_abort(r);
  if (r->client_gone) {
    req_finish(r);
    return;
  }
  int timeout = rc == CURLE_OPERATION_TIMEDOUT || r->timeout_kind;
  if (r->retry_wanted) {
    /* an event hook saw the stream fail before anything reached the client */
    int out = r->retry_wanted;
    r->retry_wanted = 0;
    r->stream_ended = 0;
    if (balance_failed(r, out, r->uresp.status, -1)) return;
    stream_end_error(r, "upstream_error", out == OUT_STREAM ? "the provider's stream failed mid-answer"
                                                           : "the provider's stream failed before its first content");
    return;
  }
  if (r->up_streaming) {
    /* each branch ends the request exactly once */
    if (r->stream_ended) {
      req_finish(r);
      return;
    }
    if (rc == CURLE_OK && stream_upstream_complete(r)) {
      stream_end_ok(r);
      return;
    }
    if (r->stream_ended) {
      req_finish(r); /* the adapter ended it while finishing */
      return;
    }
    if (r->stream_held) { /* the adapter finishes it from a callback (stream_deliver_pending) */
      arm_timer(r, r->tmo.idle_ms ? r->tmo.idle_ms : 60000);
      return;
    }
    if (!r->head_sent && !r->t_first_token && balance_open(r)) {
      /* no content reached the client (nor was produced for it) yet: this attempt may still fail over */
      int out = rc == CURLE_OK ? OUT_MALFORMED : timeout ? OUT_TIMEOUT : OUT_CONNECT;
      if (balance_failed(r, out, r->uresp.status, -1)) return;
    } else if (balance_open(r) && balance_can_retry(r, OUT_STREAM, 0)) {
      stream_flush(r); /* what the adapter produced at the end reaches the client first */
      r->error = NULL;
      if (balance_failed(r, OUT_STREAM, r->uresp.status, -1)) return; /* the answer goes on elsewhere */
    }
    stream_end_error(r, "upstream_error", rc != CURLE_OK ? cerr : "upstream ended the stream before its terminal event");
    return;
  }
  if (rc != CURLE_OK) {
    if (r->error && strstr(r->error, "64 MiB")) {
      balance_close(r, OUT_MALFORMED, 0); /* a too-large answer is not retried */
      req_respond_error(r, 502, "upstream_error", "upstream_too_large", r->error);
      return;
    }
    if (balance_failed(r, timeout ? OUT_TIMEOUT : OUT_CONNECT, 0, -1)) return; /* the next attempt runs */
    r->error = arena_strndup(&r->pool, cerr, strlen(cerr));
    req_respond_error(r, timeout ? 504 : 502, "upstream_error", timeout ? "upstream_timeout" : "upstream_unavailable", cerr);
    return;
  }
  if (!r->uresp.body) {
    r->uresp.body = "";
    r->uresp.body_owned = 0;
  }
  req_upstream_response(r);
}

static void check_multi_info(worker *w) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(w->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *e = m->easy_handle;
    CURLcode rc = m->data.result;
    void *priv = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&priv);
    if (!priv) continue;
    if (*(uint32_t *)priv == CALL_MAGIC) {
      call_http_done(priv, rc);
      continue;
    }
    struct aigw_req *r = priv;
    finish_transfer(r, rc, NULL);
  }
}
