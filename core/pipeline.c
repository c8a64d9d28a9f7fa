/* pipeline.c - one request's life: route, request hooks, provider, upstream, response hooks,
 * response, log.
 *
 * req_continue() is the state machine. It runs until the request must wait (a paused plugin, the
 * upstream transfer, a slow client) and is re-entered from the callback that ends the wait.
 * Plugin actions (respond, resume) taken inside a hook are recorded and applied when the hook
 * returns; a resume from an async callback schedules req_continue on the next loop turn, so no
 * host action ever re-enters a plugin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "core.h"
#include "jscan.h"

const char *status_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 402: return "Payment Required";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Entity";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 499: return "Client Closed Request";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  case 529: return "Overloaded";
  default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
  }
}

static int id_char_ok(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
         ch == '_' || ch == '.' || ch == ':';
}

struct aigw_req *req_new(conn *c, worker *w) {
  struct aigw_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->magic = REQ_MAGIC;
  r->w = w;
  r->c = c;
  arena_init(&r->pool);
  r->serial = atomic_fetch_add(&w->srv->next_serial, 1) + 1;
  r->t_start = now_us();
  r->usage = (aigw_usage){sizeof(aigw_usage), -1, -1, -1, -1, -1};
  r->cur_att = r->hedge_att = -1;
  atomic_fetch_add(&w->srv->total_active, 1);
  atomic_fetch_add(&w->active_requests, 1);
  req_registry_add(r);
  r->next_live = w->live;
  if (w->live) w->live->prev_live = r;
  w->live = r;
  return r;
}

/* ---- responses ---- */

static int set_error_body(struct aigw_req *r, int status, const char *type, const char *code, const char *msg) {
  /* in the client's format: OpenAI's shape, or Anthropic's on a messages route */
  char *txt = err_json(REQ_API(r), status, type, code, msg);
  if (!txt) return -1;
  size_t n = strlen(txt);
  r->cresp.body = arena_strndup(&r->pool, txt, n);
  r->cresp.body_len = n;
  r->cresp.body_owned = 0;
  free(txt);
  r->cresp.status = status;
  if (r->cresp.json) {
    cJSON_Delete(r->cresp.json);
    r->cresp.json = NULL;
  }
  r->cresp.json_tried = 0;
  r->cresp.dirty = 0;
  hdrs_set(&r->pool, &r->cresp.hdrs, "content-type", 12, "application/json", 16);
  if (!r->error) r->error = arena_strndup(&r->pool, msg ? msg : "", msg ? strlen(msg) : 0);
  return 0;
}

static void send_client_response(struct aigw_req *r) {
  conn *c = r->c;
  r->phase = PH_SENDING;
  balance_add_headers(r);
  if (c) {
    if (!r->keep_alive) c->keep_alive = 0;
    conn_write_response_head(c, r->cresp.status ? r->cresp.status : 200, &r->cresp.hdrs, 0,
                             r->cresp.body_len, r->id);
    if (r->cresp.body_len) evbuffer_add(c->out, r->cresp.body, r->cresp.body_len);
    conn_send(c, NULL);
  }
  req_finish(r);
}

static void finish_with_local_response(struct aigw_req *r);

/* Errors the gateway itself answers (routing, limits, upstream failures) also pass through the
 * response hooks of the plugins that ran, so headers they add (CORS, tracing) reach every answer. */
void req_respond_error(struct aigw_req *r, int status, const char *type, const char *code, const char *msg) {
  if (r->is_probe) { /* a health check has no client */
    r->probe_failed = 1;
    if (!r->error) r->error = arena_strndup(&r->pool, msg ? msg : "", msg ? strlen(msg) : 0);
    return;
  }
  if (r->hedge_parent) { /* a hedge has no client: its failure is the parent's business */
    r->hedge_state = 2;
    if (!r->error) r->error = arena_strndup(&r->pool, msg ? msg : "", msg ? strlen(msg) : 0);
    return;
  }
  if (r->head_sent) {
    stream_end_error(r, type, msg);
    return;
  }
  set_error_body(r, status, type, code, msg);
  r->responded = 1;
  finish_with_local_response(r);
}

/* ---- running hooks ---- */

static aigw_status run_request_hook(struct aigw_req *r, const cfg_plugin *p) {
  r->in_hook = 1;
  r->cur_plugin = p;
  aigw_status st = p->desc->on_request(p->inst, r, &r->rctx[p->index]);
  r->cur_plugin = NULL;
  r->in_hook = 0;
  return st;
}

/* Response hooks run in reverse order over the plugins whose request hook was reached. */
static void run_response_hooks(struct aigw_req *r) {
  const cfg_route *rt = r->route;
  if (!rt) return;
  for (size_t i = r->hooks_reached; i-- > 0;) {
    const cfg_plugin *p = rt->plugins[i];
    if (!p->desc->on_response) continue;
    r->in_hook = 1;
    r->cur_plugin = p;
    aigw_status st = p->desc->on_response(p->inst, r, &r->rctx[p->index]);
    r->cur_plugin = NULL;
    r->in_hook = 0;
    if (st == AIGW_ERROR) {
      observe_plugin_error(p->name);
      log_msg(AIGW_LOG_ERROR, "request %s: plugin '%s' failed in its response hook", r->id, p->name);
      if (!r->responded) set_error_body(r, 500, "server_error", NULL, "a gateway plugin failed");
    }
    if (r->responded && r->cresp.status == 0) r->cresp.status = 200;
  }
  if (r->cresp.dirty) msg_serialize(r, &r->cresp);
}

static void plugin_failed(struct aigw_req *r, const cfg_plugin *p) {
  observe_plugin_error(p->name);
  log_msg(AIGW_LOG_ERROR, "request %s: plugin '%s' failed in its request hook", r->id, p->name);
  if (!r->responded) set_error_body(r, 500, "server_error", NULL, "a gateway plugin failed");
}

static void finish_with_local_response(struct aigw_req *r) {
  r->phase = PH_RESPONSE;
  run_response_hooks(r);
  send_client_response(r);
}

/* ---- the upstream request ---- */

/* Headers never forwarded upstream: hop-by-hop ones, the client's credentials and cookies, and
 * those the gateway sets itself. Lengths precomputed: this runs for every client header. */
static int hop_or_secret(const char *n, size_t nn) {
#define H(s) {s, sizeof(s) - 1}
  static const struct { const char *s; size_t n; } drop[] = {
      H("host"), H("content-length"), H("connection"), H("keep-alive"), H("proxy-authorization"),
      H("proxy-connection"), H("te"), H("trailer"), H("transfer-encoding"), H("upgrade"),
      H("authorization"), H("x-api-key"), H("api-key"), H("cookie"), H("expect"),
      H("accept-encoding"), H("x-aigw-key")};
#undef H
  for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
    if (str_ieq(n, nn, drop[i].s, drop[i].n)) return 1;
  return 0;
}

int req_build_upstream(struct aigw_req *r) {
  for (size_t i = 0; i < r->creq.hdrs.n; i++) {
    const hdr *h = &r->creq.hdrs.v[i];
    if (hop_or_secret(h->name.p, h->name.n)) continue;
    if (hdrs_add(&r->pool, &r->ureq.hdrs, h->name.p, h->name.n, h->value.p, h->value.n) < 0) return -1;
  }
  if (r->creq.dirty && msg_serialize(r, &r->creq) < 0) return -1;
  /* The upstream body starts as the client's bytes and parsed tree, shared: request hooks are over,
   * so the provider may edit the tree in place without copying it. */
  r->ureq.body = r->creq.body;
  r->ureq.body_len = r->creq.body_len;
  r->ureq.body_owned = 0;
  r->ureq.json = r->creq.json;
  r->ureq.json_tried = r->creq.json_tried;
  return 0;
}

/* The provider adapter's prepare for r's target (every exchange: attempts, hedges, probes). */
aigw_status req_run_prepare(struct aigw_req *r) {
  const aigw_provider *pv = r->provider->plugin.desc->provider;
  r->up_step = 1;
  r->in_hook = 1;
  r->cur_plugin = &r->provider->plugin;
  aigw_status st = pv->prepare(r->provider->plugin.inst, r, &r->provider_rctx);
  r->cur_plugin = NULL;
  r->in_hook = 0;
  return st;
}

/* The adapter's on_done for the exchange it prepared; its state is gone afterwards. */
void req_provider_done(struct aigw_req *r) {
  if (r->provider && r->provider->plugin.desc->on_done) {
    r->cur_plugin = &r->provider->plugin;
    r->provider->plugin.desc->on_done(r->provider->plugin.inst, r, r->provider_rctx);
    r->cur_plugin = NULL;
  }
  r->provider_rctx = NULL;
}

/* A request with no client (a hedge, a health probe): the fields req_new sets, nothing else. */
struct aigw_req *req_new_internal(worker *w) {
  struct aigw_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->magic = REQ_MAGIC;
  r->w = w;
  arena_init(&r->pool);
  r->t_start = now_us();
  r->usage = (aigw_usage){sizeof(aigw_usage), -1, -1, -1, -1, -1};
  r->cur_att = r->hedge_att = -1;
  return r;
}

/* Frees what an internal request's exchange left (the transfer must be over) and r itself. */
void req_free_internal(struct aigw_req *r) {
  if (r->sse_init) sse_free(&r->sse);
  if (r->chunk) evbuffer_free(r->chunk);
  if (r->hedge_buf) evbuffer_free(r->hedge_buf);
  stream_pemit_free(r);
  /* the client side's bytes are borrowed (a hedge's are its parent's), its tree is its own */
  if (r->ureq.json && r->ureq.json != r->creq.json) cJSON_Delete(r->ureq.json);
  if (r->creq.json) cJSON_Delete(r->creq.json);
  if (r->ureq.body_owned) free(r->ureq.body);
  if (r->uresp.json) cJSON_Delete(r->uresp.json);
  if (r->uresp.body_owned) free(r->uresp.body);
  for (meta_kv *t = r->member_trees; t; t = t->next) cJSON_Delete((cJSON *)t->v.p);
  arena_free(&r->pool);
  r->magic = 0;
  free(r);
}

/* The target's "params": top-level members set on the upstream request (null removes one). */
int req_apply_params(struct aigw_req *r, const cJSON *params) {
  cJSON *j = msg_json(r, &r->ureq);
  if (!cJSON_IsObject(j)) return 0; /* not JSON: nothing to set (the provider reports it) */
  for (const cJSON *m = params->child; m; m = m->next) {
    if (cJSON_IsNull(m)) {
      cJSON_DeleteItemFromObjectCaseSensitive(j, m->string);
      continue;
    }
    cJSON *v = cJSON_Duplicate(m, 1);
    if (!v) return -1;
    if (cJSON_GetObjectItemCaseSensitive(j, m->string)) cJSON_ReplaceItemInObjectCaseSensitive(j, m->string, v);
    else cJSON_AddItemToObject(j, m->string, v);
  }
  r->ureq.dirty = 1;
  return 0;
}

static void upstream_phase(struct aigw_req *r) {
  if (r->up_step == 0) {
    if (req_build_upstream(r) < 0) {
      req_respond_error(r, 500, "server_error", NULL, "out of memory");
      return;
    }
    if (balance_begin_attempt(r) < 0) return; /* answered */
    if ((r->target->params && req_apply_params(r, r->target->params) < 0) || (r->cont_active && cont_prefill(r) < 0)) {
      req_respond_error(r, 500, "server_error", NULL, "out of memory");
      return;
    }
    aigw_status st = req_run_prepare(r);
    if (st == AIGW_PAUSE) {
      if (!r->resume_pending) {
        r->paused = 1;
        return;
      }
      r->resume_pending = 0;
      st = r->resume_st;
    }
    if (st == AIGW_ERROR) {
      observe_plugin_error(r->provider->plugin.name);
      if (!r->responded) set_error_body(r, 502, "upstream_error", NULL, "the provider adapter failed to build the request");
      r->responded = 1;
    }
  }
  if (r->responded) {
    finish_with_local_response(r);
    return;
  }
  if (r->local_reply) {
    /* provider_reply: the adapter answered as the upstream */
    r->t_up_start = r->t_up_first = r->t_up_end = now_us();
    if (r->up_streaming) {
      stream_process_bytes(r, r->uresp.body, r->uresp.body_len);
      if (r->ended) return;
      stream_flush(r);
      if (r->ended) return;
      if (r->stream_ended || r->client_gone) req_finish(r);
      else if (stream_upstream_complete(r)) stream_end_ok(r);
      else if (r->stream_ended) req_finish(r);
      else stream_end_error(r, "upstream_error", "the provider's stream ended without its terminal event");
      return;
    }
    req_upstream_response(r);
    return;
  }
  r->up_step = 2;
  if (r->ureq.dirty && msg_serialize(r, &r->ureq) < 0) {
    req_respond_error(r, 500, "server_error", NULL, "out of memory");
    return;
  }
  r->phase = PH_UPSTREAM;
  if (upstream_start(r) == 0) hedge_arm(r); /* answers with 502 itself when the transfer cannot start */
}

/* Non-stream upstream answer complete (or provider_reply): provider and plugin response hooks,
 * then the client response. */
void req_upstream_response(struct aigw_req *r) {
  if (!r->local_reply && balance_open(r)) {
    int64_t ra = -1;
    int out = balance_classify(r, &ra);
    if (out != OUT_OK && balance_failed(r, out, r->uresp.status, ra)) return; /* the next attempt runs */
  }
  r->phase = PH_RESPONSE;
  r->cresp.status = r->uresp.status;
  /* Pass through the provider's content type and the headers SDKs act on. */
  for (size_t i = 0; i < r->uresp.hdrs.n; i++) {
    const hdr *h = &r->uresp.hdrs.v[i];
    int keep = str_ieq(h->name.p, h->name.n, "content-type", 12) || str_ieq(h->name.p, h->name.n, "retry-after", 11) ||
               (h->name.n > 12 && str_ieq(h->name.p, 12, "x-ratelimit-", 12)) ||
               str_ieq(h->name.p, h->name.n, "openai-processing-ms", 20) ||
               str_ieq(h->name.p, h->name.n, "retry-after-ms", 14);
    if (keep) hdrs_add(&r->pool, &r->cresp.hdrs, h->name.p, h->name.n, h->value.p, h->value.n);
  }
  const aigw_provider *pv = r->provider->plugin.desc->provider;
  if (pv->on_response) {
    r->in_hook = 1;
    r->cur_plugin = &r->provider->plugin;
    aigw_status st = pv->on_response(r->provider->plugin.inst, r, &r->provider_rctx);
    r->cur_plugin = NULL;
    r->in_hook = 0;
    if (st == AIGW_ERROR && !r->responded) {
      observe_plugin_error(r->provider->plugin.name);
      set_error_body(r, 502, "upstream_error", NULL, "the provider adapter could not read the upstream response");
      r->responded = 1;
    }
  }
  if (!r->responded) {
    /* The client response body is the upstream body (possibly edited by the adapter). */
    if (r->uresp.dirty) msg_serialize(r, &r->uresp);
    r->cresp.body = r->uresp.body;
    r->cresp.body_len = r->uresp.body_len;
    r->cresp.body_owned = 0;
    r->cresp.json = r->uresp.json; /* shared tree; freed once (uresp owns it) */
    r->cresp.json_tried = r->uresp.json_tried;
    r->uresp.json = NULL;
    r->uresp.json_tried = 1;
    if (!hdrs_get(&r->cresp.hdrs, "content-type", 12))
      hdrs_add(&r->pool, &r->cresp.hdrs, "content-type", 12, "application/json", 16);
  }
  if (r->cresp.status >= 400 && !r->error) {
    char msg[160];
    snprintf(msg, sizeof msg, "upstream answered %d", r->cresp.status);
    r->error = arena_strndup(&r->pool, msg, strlen(msg));
  }
  run_response_hooks(r);
  send_client_response(r);
}

/* A request plugin answered 429 (a limit of aigw's own) on a route with fallback.overflow: the
 * answer is dropped and the request goes on, pinned to the overflow target (quota spent ->
 * pay-as-you-go deployment). Returns 1 when it did. */
static int overflow(struct aigw_req *r, const cfg_plugin *p) {
  const cfg_target *t = r->route->retry.fb_overflow;
  if (!t || r->cresp.status != 429 || r->overflowed) return 0;
  r->overflowed = 1;
  log_msg(AIGW_LOG_INFO, "request %s: plugin '%s' answered 429; the route sends it to its overflow target %s", r->id,
          p->name, t->name);
  r->responded = 0;
  r->cresp.status = 0;
  r->cresp.body = NULL;
  r->cresp.body_len = 0;
  hdrs_set(&r->pool, &r->cresp.hdrs, "content-type", 12, NULL, 0);
  hdrs_set(&r->pool, &r->cresp.hdrs, "retry-after", 11, NULL, 0);
  r->error = NULL;
  meta_kv *m = arena_alloc(&r->pool, 2 * sizeof *m);
  if (!m) return 0;
  m[0] = (meta_kv){"route.target", {t->name, strlen(t->name)}, &m[1]};
  m[1] = (meta_kv){"route.target_only", {"1", 1}, r->meta};
  r->meta = m;
  return 1;
}

/* ---- the state machine ---- */

void req_continue(struct aigw_req *r) {
  if (r->ended) return;
  if (r->phase == PH_REQUEST) {
    const cfg_route *rt = r->route;
    if (r->resume_pending) {
      r->resume_pending = 0;
      r->paused = 0;
      aigw_status st = r->resume_st;
      const cfg_plugin *p = rt->plugins[r->hook_i - 1];
      if (st == AIGW_ERROR) plugin_failed(r, p);
      if (st != AIGW_ERROR && r->responded && overflow(r, p)) {
        req_continue(r); /* on with the next request hook */
        return;
      }
      if (st == AIGW_ERROR || st == AIGW_STOP || r->responded) {
        if (!r->responded) set_error_body(r, 500, "server_error", NULL, "a plugin stopped the request without answering");
        finish_with_local_response(r);
        return;
      }
    }
    while (r->hook_i < rt->nplugins) {
      const cfg_plugin *p = rt->plugins[r->hook_i++];
      r->hooks_reached = r->hook_i;
      if (!p->desc->on_request) continue;
      aigw_status st = run_request_hook(r, p);
      if (r->ended) return;
      if (st == AIGW_PAUSE) {
        if (!r->resume_pending) {
          r->paused = 1;
          return; /* h->resume schedules req_continue */
        }
        r->resume_pending = 0;
        st = r->resume_st;
      }
      if (st == AIGW_ERROR) plugin_failed(r, p);
      if (st != AIGW_ERROR && r->responded && overflow(r, p)) continue; /* the route's overflow target takes it */
      if (st == AIGW_ERROR || st == AIGW_STOP || r->responded) {
        if (!r->responded) {
          log_msg(AIGW_LOG_ERROR, "request %s: plugin '%s' returned STOP without a response", r->id, p->name);
          set_error_body(r, 500, "server_error", NULL, "a plugin stopped the request without answering");
        }
        finish_with_local_response(r);
        return;
      }
    }
    r->phase = PH_UPSTREAM;
  }
  if (r->phase == PH_UPSTREAM && r->up_step < 2) {
    if (r->resume_pending && r->up_step == 1) {
      r->resume_pending = 0;
      r->paused = 0;
      if (r->resume_st == AIGW_ERROR && !r->responded) {
        set_error_body(r, 502, "upstream_error", NULL, "the provider adapter failed");
        r->responded = 1;
      }
    }
    upstream_phase(r);
  }
}

static void on_defer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct aigw_req *r = arg;
  r->defer_added = 0;
  if (r->pemit_n && r->up_streaming) { /* events an adapter emitted from a call-out's callback */
    stream_deliver_pending(r);
    return;
  }
  req_continue(r);
}

void req_schedule(struct aigw_req *r) {
  if (r->defer_added) return;
  event_assign(&r->defer_ev, r->w->base, -1, 0, on_defer, r);
  event_active(&r->defer_ev, EV_TIMEOUT, 1);
  r->defer_added = 1;
}

/* ---- start ---- */

/* cfg_match's header lookup: 0 and the value when present, -1 when not. */
static int hdr_lookup(void *ud, const char *name, const char **v, size_t *vn) {
  const hdr *h = hdrs_get(ud, name, strlen(name));
  if (!h) return -1;
  *v = h->value.p;
  *vn = h->value.n;
  return 0;
}

static void make_request_id(struct aigw_req *r) {
  const h1_request *h = &r->c->h1;
  const char *v;
  size_t vn;
  if (h1_header_get(h, "x-request-id", &v, &vn) && vn > 0 && vn < sizeof r->id) {
    size_t i = 0;
    while (i < vn && id_char_ok(v[i])) i++;
    if (i == vn) {
      memcpy(r->id, v, vn);
      r->id[vn] = 0;
      return;
    }
  }
  static const char hex[] = "0123456789abcdef";
  uint64_t a = r->serial ^ (r->w->srv->started_ms << 20), b = r->t_start;
  for (int i = 0; i < 16; i++) r->id[i] = hex[(a >> (60 - 4 * i)) & 15];
  for (int i = 0; i < 8; i++) r->id[16 + i] = hex[(b >> (28 - 4 * i)) & 15];
  r->id[24] = 0;
}

void req_start(struct aigw_req *r) {
  conn *c = r->c;
  const h1_request *h = &c->h1;
  r->method = (aigw_str){h->method, h->method_len};
  r->target_uri = (aigw_str){h->target, h->target_len};
  r->path = (aigw_str){h->path, h->path_len};
  /* Headers already live in the arena (rebased head): reference them, no copy. */
  r->creq.hdrs.v = arena_alloc(&r->pool, (h->nheaders ? h->nheaders : 1) * sizeof(hdr));
  if (!r->creq.hdrs.v) {
    req_respond_error(r, 500, "server_error", NULL, "out of memory");
    return;
  }
  r->creq.hdrs.cap = h->nheaders ? h->nheaders : 1;
  for (size_t i = 0; i < h->nheaders; i++) {
    r->creq.hdrs.v[i].name = (aigw_str){h->headers[i].name, h->headers[i].name_len};
    r->creq.hdrs.v[i].value = (aigw_str){h->headers[i].value, h->headers[i].value_len};
  }
  r->creq.hdrs.n = h->nheaders;
  make_request_id(r);
  r->gen = server_gen_acquire(r->w->srv);
  r->route = cfg_match(r->gen, h->method, h->method_len, h->path, h->path_len, h->host, h->host ? h->host_len : 0,
                       hdr_lookup, &r->creq.hdrs);
  if (!r->route) {
    char msg[300];
    snprintf(msg, sizeof msg, "no route for %.*s %.*s", (int)(h->method_len > 16 ? 16 : h->method_len), h->method,
             (int)(h->path_len > 200 ? 200 : h->path_len), h->path);
    req_respond_error(r, 404, "invalid_request_error", "unknown_url", msg);
    return;
  }
  aigw_api api = r->route->api;
  if ((api == AIGW_API_CHAT || api == AIGW_API_EMBEDDINGS || api == AIGW_API_MESSAGES || api == AIGW_API_RESPONSES) &&
      !str_ieq(r->method.p, r->method.n, "GET", 3)) {
    /* Checked and read without building a tree: most requests never need one (plugins that do
     * get it parsed once, on first use). */
    const char *sv;
    size_t sn;
    int rc = jscan_member(r->creq.body ? r->creq.body : "", r->creq.body_len, "stream", &sv, &sn);
    if (rc < 0) {
      req_respond_error(r, 400, "invalid_request_error", "invalid_json",
                        r->creq.body_len == 0 ? "the request body is empty; a JSON object is expected"
                                              : "we could not parse the JSON body of your request: expected a JSON object");
      return;
    }
    r->is_stream = rc == 1 && sn == 4 && !memcmp(sv, "true", 4);
  }
  r->rctx = arena_alloc(&r->pool, (r->route->nplugins ? r->route->nplugins : 1) * sizeof(void *));
  if (!r->rctx) {
    req_respond_error(r, 500, "server_error", NULL, "out of memory");
    return;
  }
  r->phase = PH_REQUEST;
  req_continue(r);
}

/* ---- client gone, finish ---- */

void req_client_gone(struct aigw_req *r) {
  r->c = NULL;
  r->client_gone = 1;
  if (!r->error) r->error = "client closed the connection";
  if (r->cresp.status == 0) r->cresp.status = 499;
  if (r->in_curl_cb || r->in_hook) return; /* the callback returns abort; teardown follows */
  req_finish(r);
}

void req_out_drained(struct aigw_req *r) {
  if (r->up_paused) upstream_unpause(r);
}

void req_finish(struct aigw_req *r) {
  if (r->ended) return;
  r->ended = 1;
  r->phase = PH_DONE;
  r->t_end = now_us();
  worker *w = r->w;
  if (r->defer_added) {
    event_del(&r->defer_ev);
    r->defer_added = 0;
  }
  upstream_abort(r);
  hedge_stop(r);
  balance_finish(r);
  calls_cancel_all(r); /* CANCELLED callbacks run before on_done */
  if (r->route) {
    for (size_t i = 0; i < r->hooks_reached; i++) {
      const cfg_plugin *p = r->route->plugins[i];
      if (!p->desc->on_done) continue;
      r->cur_plugin = p;
      p->desc->on_done(p->inst, r, r->rctx[p->index]);
    }
  }
  if (r->provider) req_provider_done(r);
  r->cur_plugin = NULL;
  if (r->head_sent) atomic_fetch_sub(&w->active_streams, 1), observe_stream_delta(-1);
  observe_request(r);
  hedge_free(r); /* after every reader of an adopted exchange (on_done, the log) */
  conn *c = r->c;
  /* free */
  if (r->sse_init) sse_free(&r->sse);
  for (meta_kv *t = r->member_trees; t; t = t->next) cJSON_Delete((cJSON *)t->v.p);
  if (r->chunk) evbuffer_free(r->chunk);
  if (r->emit_q) evbuffer_free(r->emit_q);
  stream_pemit_free(r);
  msg_t *ms[] = {&r->creq, &r->ureq, &r->uresp, &r->cresp};
  cJSON *freed[4] = {0};
  for (int i = 0; i < 4; i++) {
    cJSON *j = ms[i]->json;
    int dup = 0;
    for (int k = 0; k < i; k++)
      if (freed[k] == j) dup = 1;
    if (j && !dup) cJSON_Delete(j);
    freed[i] = j;
    if (ms[i]->body_owned) free(ms[i]->body);
  }
  if (r->gen) server_gen_release(w->srv, r->gen);
  req_registry_remove(r);
  if (r->prev_live) r->prev_live->next_live = r->next_live;
  else w->live = r->next_live;
  if (r->next_live) r->next_live->prev_live = r->prev_live;
  atomic_fetch_sub(&w->srv->total_active, 1);
  atomic_fetch_sub(&w->active_requests, 1);
  req_wipe_credentials(r);
  arena_free(&r->pool);
  r->magic = 0;
  free(r);
  if (c) conn_request_done(c);
}
