/* observe.c - the access log and the core's metrics.
 *
 * Registries (process-wide, documented here): the metrics registry and the in-process store, both
 * created once by observe_init() before workers start and thread-safe by construction; a table of
 * label counts for plugin-defined metrics (written at create, read on the hot path).
 *
 * Label values are bounded: routes and providers come from the config, statuses are numbers, models
 * on the cost counter are catalog names (a request whose model is not in the catalog is counted in
 * aigw_cost_unknown_total, which has no model label), and every metric has a series cap with an
 * overflow series, so client input cannot mint series.
 *
 * Cost: a request that reached a provider (any API but the model list) gets, in its access-log line,
 * "cost_usd" priced from the generation's model catalog (catalog.h) and the normalized usage, or
 * "cost_unknown": true when its model has no price or its usage is unknown -- never a made-up 0.
 * The model priced is the one the upstream answered for (the "model" member of a non-stream JSON
 * answer) when the catalog knows it, else the requested one (the route target's override, else the
 * client's "model"). Streams are priced by the requested model: the pipeline keeps no per-event
 * model. A line whose priced model differs from its "model" also carries "cost_model". */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "catalog.h"
#include "core.h"
#include "jscan.h"
#include "jsonw.h"
#include "metrics.h"
#include "plugin_loader.h"
#include "store.h"

static met_registry *g_metrics;
static store *g_store;
static _Atomic unsigned char g_plugin_nlabels[MET_MAX_METRICS];

static int m_requests, m_duration, m_upstream, m_ttft, m_tokens, m_streams, m_plugin_errors, m_cost, m_cost_unknown;

met_registry *core_metrics(void) { return g_metrics; }
store *core_store(void) { return g_store; }

int observe_metric_nlabels(uint32_t id) { return id < MET_MAX_METRICS ? atomic_load(&g_plugin_nlabels[id]) : 0; }
void observe_metric_set_nlabels(int id, int n) {
  if (id >= 0 && id < MET_MAX_METRICS) atomic_store(&g_plugin_nlabels[id], (unsigned char)n);
}

int observe_init(void) {
  if (g_metrics) return 0;
  g_metrics = met_new();
  g_store = store_new(1u << 20);
  if (!g_metrics || !g_store) return -1;
  static const char *const route_status[] = {"route", "status", NULL};
  static const char *const route[] = {"route", NULL};
  static const char *const route_provider[] = {"route", "provider", NULL};
  static const char *const tokens[] = {"route", "provider", "direction", NULL};
  static const char *const plugin[] = {"plugin", NULL};
  m_requests = met_define(g_metrics, MET_COUNTER, "aigw_requests_total", "Requests by route and status", route_status, NULL, 0, 2000);
  m_duration = met_define(g_metrics, MET_HISTOGRAM, "aigw_request_duration_seconds", "Request latency, first byte in to last byte out", route, NULL, 0, 500);
  m_upstream = met_define(g_metrics, MET_HISTOGRAM, "aigw_upstream_duration_seconds", "Upstream exchange latency", route_provider, NULL, 0, 1000);
  m_ttft = met_define(g_metrics, MET_HISTOGRAM, "aigw_time_to_first_token_seconds", "Streams: request start to first content delta", route, NULL, 0, 500);
  m_tokens = met_define(g_metrics, MET_COUNTER, "aigw_tokens_total", "Tokens by route, provider and direction (input/output/cached/reasoning)", tokens, NULL, 0, 4000);
  m_streams = met_define(g_metrics, MET_GAUGE, "aigw_active_streams", "Streams in flight", NULL, NULL, 0, 0);
  m_plugin_errors = met_define(g_metrics, MET_COUNTER, "aigw_plugin_errors_total", "Plugin hook failures", plugin, NULL, 0, 500);
  static const char *const cost[] = {"route", "provider", "model", NULL};
  m_cost = met_define(g_metrics, MET_COUNTER, "aigw_cost_usd_total", "Cost in USD from the model catalog's prices and the reported usage", cost, NULL, 0, 4000);
  m_cost_unknown = met_define(g_metrics, MET_COUNTER, "aigw_cost_unknown_total", "Requests that could not be priced (model not in the catalog, or usage unknown)", route_provider, NULL, 0, 1000);
  if (balance_metrics_init() < 0) return -1;
  return m_requests < 0 || m_duration < 0 || m_upstream < 0 || m_ttft < 0 || m_tokens < 0 || m_streams < 0 ||
                 m_plugin_errors < 0 || m_cost < 0 || m_cost_unknown < 0
             ? -1
             : 0;
}

void observe_stream_delta(int d) { met_add(g_metrics, m_streams, NULL, (double)d); }

void observe_plugin_error(const char *plugin) {
  const char *v[] = {plugin};
  met_add(g_metrics, m_plugin_errors, v, 1);
}

static void add_tokens(const char *route, const char *prov, const char *dir, int64_t n) {
  if (n <= 0) return;
  const char *v[] = {route, prov, dir};
  met_add(g_metrics, m_tokens, v, (double)n);
}

/* "<int>.<3 digits>" from an integer count of thousandths, without printf's float path (which
 * cost ~5% of a proxied request's CPU). */
static void jw_kfixed3(jsonw *w, const char *k, uint64_t thousandths) {
  char buf[32], *p = buf + sizeof buf;
  uint64_t ip = thousandths / 1000, fp = thousandths % 1000;
  for (int i = 0; i < 3; i++) {
    *--p = (char)('0' + fp % 10);
    fp /= 10;
  }
  *--p = '.';
  do {
    *--p = (char)('0' + ip % 10);
    ip /= 10;
  } while (ip);
  jw_key(w, k);
  jw_raw(w, p, (size_t)(buf + sizeof buf - p));
}

/* USD with up to 12 decimals, trailing zeros cut ("0.000125"), without printf's float path. */
static void jw_kusd(jsonw *w, const char *k, double usd) {
  char buf[48], *p = buf + sizeof buf;
  double scaled = usd * 1e12 + 0.5;
  uint64_t v = scaled < 1.8e19 ? (uint64_t)scaled : UINT64_MAX;
  uint64_t ip = v / 1000000000000ull, fp = v % 1000000000000ull;
  int nd = 12;
  while (nd > 0 && fp % 10 == 0) {
    fp /= 10;
    nd--;
  }
  for (int i = 0; i < nd; i++) {
    *--p = (char)('0' + fp % 10);
    fp /= 10;
  }
  if (nd) *--p = '.';
  do {
    *--p = (char)('0' + ip % 10);
    ip /= 10;
  } while (ip);
  jw_key(w, k);
  jw_raw(w, p, (size_t)(buf + sizeof buf - p));
}

/* The model the client asked for after routing: the target's override, else the body's "model"
 * (a plain JSON string; at most 200 bytes). Returns 0 with the name in p and n, or -1 when there is none. */
static int requested_model(struct aigw_req *r, const char **p, size_t *n) {
  const cJSON *mj = r->creq.json ? cJSON_GetObjectItemCaseSensitive(r->creq.json, "model") : NULL;
  const char *mv = NULL;
  size_t mn = 0;
  if (r->target && r->target->model) {
    *p = r->target->model;
    *n = strlen(r->target->model);
  } else if (cJSON_IsString(mj)) {
    *p = mj->valuestring;
    *n = strnlen(mj->valuestring, 200);
  } else if (!r->creq.json && r->creq.body && jscan_member(r->creq.body, r->creq.body_len, "model", &mv, &mn) == 1 &&
             mn >= 2 && mv[0] == '"' && !memchr(mv, '\\', mn)) {
    *p = mv + 1; /* plain string: no unescaping needed */
    *n = mn - 2 > 200 ? 200 : mn - 2;
  } else {
    return -1;
  }
  return 0;
}

/* The model a non-stream 2xx JSON answer says it came from (a plain string), or -1. */
static int answered_model(struct aigw_req *r, const char **p, size_t *n) {
  const char *mv = NULL;
  size_t mn = 0;
  if (r->up_streaming || r->uresp.status < 200 || r->uresp.status > 299 || !r->uresp.body) return -1;
  if (jscan_member(r->uresp.body, r->uresp.body_len, "model", &mv, &mn) != 1 || mn < 3 || mv[0] != '"' ||
      memchr(mv, '\\', mn) || mn - 2 > 200)
    return -1;
  *p = mv + 1;
  *n = mn - 2;
  return 0;
}

typedef struct req_cost {
  int applies;          /* the request reached a provider on a priced API */
  int known;            /* usd is valid */
  double usd;
  const cat_model *m;   /* the model priced (known == 1) */
} req_cost;

static req_cost price_request(struct aigw_req *r, const char *req_model, size_t req_len) {
  req_cost c = {0};
  if (!r->provider || !r->route || r->route->api == AIGW_API_MODELS) return c;
  c.applies = 1;
  const catalog *cat = r->gen ? r->gen->catalog : NULL;
  if (!catalog_count(cat) || r->usage.input_tokens < 0) return c; /* no JSON scan when nothing can match */
  const char *am = NULL;
  size_t an = 0;
  const cat_model *m = answered_model(r, &am, &an) == 0 ? catalog_find(cat, am, an) : NULL;
  if (!cat_model_priced(m)) m = req_model ? catalog_find(cat, req_model, req_len) : NULL;
  if (m && catalog_cost(m, &r->usage, &c.usd) == 0) {
    c.known = 1;
    c.m = m;
  }
  return c;
}

void observe_request(struct aigw_req *r) {
  int status = r->cresp.status ? r->cresp.status : 200;
  const char *route = r->route ? r->route->name : "_none";
  const char *prov = r->provider ? r->provider->name : "";
  char st[24];
  st[fmt_u64(st, (uint64_t)(status > 0 ? status : 0))] = 0;
  const char *rs[] = {route, st};
  met_add(g_metrics, m_requests, rs, 1);
  double lat = (double)(r->t_end - r->t_start) / 1e6;
  const char *rv[] = {route};
  met_observe(g_metrics, m_duration, rv, lat);
  double up = r->t_up_end > r->t_up_start ? (double)(r->t_up_end - r->t_up_start) / 1e6 : -1;
  if (up >= 0 && r->t_up_start) {
    const char *rp[] = {route, prov};
    met_observe(g_metrics, m_upstream, rp, up);
  }
  double ttft = r->t_first_token ? (double)(r->t_first_token - r->t_start) / 1e6 : -1;
  if (ttft >= 0) met_observe(g_metrics, m_ttft, rv, ttft);
  add_tokens(route, prov, "input", r->usage.input_tokens);
  add_tokens(route, prov, "output", r->usage.output_tokens);
  add_tokens(route, prov, "cached", r->usage.cached_tokens);
  add_tokens(route, prov, "reasoning", r->usage.reasoning_tokens);
  const char *model = NULL;
  size_t model_len = 0;
  if (requested_model(r, &model, &model_len) < 0) model = NULL;
  req_cost cost = price_request(r, model, model_len);
  if (cost.known) {
    const char *cv[] = {route, prov, cost.m->name};
    met_add(g_metrics, m_cost, cv, cost.usd);
  } else if (cost.applies) {
    const char *rp[] = {route, prov};
    met_add(g_metrics, m_cost_unknown, rp, 1);
  }

  server *s = r->w->srv;
  if (s->access_log_fd < 0) return;
  char stackbuf[1024];
  jsonw w;
  jw_init(&w, stackbuf, sizeof stackbuf);
  jw_obj_begin(&w);
  {
    /* wall-clock time of the request's end */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    jw_kfixed3(&w, "ts", (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
  }
  jw_kcstr(&w, "request_id", r->id);
  jw_kstr(&w, "method", r->method.p, r->method.n);
  jw_kstr(&w, "path", r->path.p, r->path.n > 512 ? 512 : r->path.n);
  jw_kcstr(&w, "route", r->route ? r->route->name : NULL);
  jw_kcstr(&w, "provider", r->provider ? r->provider->name : NULL);
  if (model) jw_kstr(&w, "model", model, model_len);
  else jw_kcstr(&w, "model", NULL);
  jw_kint(&w, "status", status);
  jw_kbool(&w, "stream", r->is_stream);
  jw_kfixed3(&w, "latency_ms", r->t_end - r->t_start);
  if (up >= 0 && r->t_up_start) jw_kfixed3(&w, "upstream_latency_ms", r->t_up_end - r->t_up_start);
  else jw_kcstr(&w, "upstream_latency_ms", NULL);
  if (ttft >= 0) jw_kfixed3(&w, "ttft_ms", r->t_first_token - r->t_start);
  else jw_kcstr(&w, "ttft_ms", NULL);
#define TOK(k, v) \
  if ((v) >= 0) jw_kint(&w, k, (long long)(v)); \
  else jw_kcstr(&w, k, NULL)
  TOK("tokens_in", r->usage.input_tokens);
  TOK("tokens_out", r->usage.output_tokens);
  TOK("tokens_cached", r->usage.cached_tokens);
  TOK("tokens_reasoning", r->usage.reasoning_tokens);
#undef TOK
  if (cost.known) {
    jw_kusd(&w, "cost_usd", cost.usd);
    if (!model || strlen(cost.m->name) != model_len || memcmp(cost.m->name, model, model_len))
      jw_kcstr(&w, "cost_model", cost.m->name);
  } else if (cost.applies) {
    jw_kbool(&w, "cost_unknown", 1);
  }
  if (r->nattempts) {
    const cfg_target *tt = r->att[r->cur_att >= 0 ? r->cur_att : r->nattempts - 1].t;
    if (tt->name_plain) { /* names checked at load: copied as they are */
      jw_key(&w, "target");
      char q[300];
      size_t nl = strlen(tt->name);
      if (nl > sizeof q - 2) nl = sizeof q - 2;
      q[0] = '"';
      memcpy(q + 1, tt->name, nl);
      q[nl + 1] = '"';
      jw_raw(&w, q, nl + 2);
    } else {
      jw_kcstr(&w, "target", tt->name);
    }
    jw_key(&w, "attempts");
    /* one array, built on the stack: it is on every line of a routed request */
    char ab[1024];
    size_t n = 0;
    int fast = 1;
    ab[n++] = '[';
    for (uint16_t i = 0; i < r->nattempts; i++) {
      const attempt_rec *a = &r->att[i];
      const char *on = a->outcome >= 0 ? balance_outcome_name(a->outcome) : "ok";
      size_t tl = strlen(a->t->name), ol = strlen(on);
      if (!a->t->name_plain || n + tl + ol + 80 > sizeof ab) {
        fast = 0;
        break;
      }
      if (i) ab[n++] = ',';
      memcpy(ab + n, "{\"target\":\"", 11), n += 11;
      memcpy(ab + n, a->t->name, tl), n += tl;
      memcpy(ab + n, "\",\"status\":", 11), n += 11;
      if (a->status > 0) n += fmt_u64(ab + n, (uint64_t)a->status);
      else memcpy(ab + n, "null", 4), n += 4;
      memcpy(ab + n, ",\"outcome\":\"", 12), n += 12;
      memcpy(ab + n, on, ol), n += ol;
      memcpy(ab + n, "\",\"ms\":", 7), n += 7;
      n += fmt_u64(ab + n, a->ms);
      ab[n++] = '}';
    }
    if (fast) {
      ab[n++] = ']';
      jw_raw(&w, ab, n);
    } else {
      jw_arr_begin(&w);
      for (uint16_t i = 0; i < r->nattempts; i++) {
        const attempt_rec *a = &r->att[i];
        jw_obj_begin(&w);
        jw_kcstr(&w, "target", a->t->name);
        if (a->status) jw_kint(&w, "status", a->status);
        else jw_kcstr(&w, "status", NULL);
        jw_kcstr(&w, "outcome", a->outcome >= 0 ? balance_outcome_name(a->outcome) : "ok");
        jw_kint(&w, "ms", a->ms);
        jw_obj_end(&w);
      }
      jw_arr_end(&w);
    }
  }
  jw_kcstr(&w, "error", r->error);
  for (meta_kv *m = r->meta; m; m = m->next)
    if (!strncmp(m->key, "log.", 4)) jw_kstr(&w, m->key + 4, m->v.p, m->v.n);
  for (meta_kv *f = r->log_fields; f; f = f->next) {
    jw_key(&w, f->key);
    jw_raw(&w, f->v.p, f->v.n);
  }
  jw_obj_end(&w);
  if (!w.err) {
    worker *wk = r->w;
    if (wk->alog) {
      /* batched: all lines of this loop turn leave in one write at its end */
      evbuffer_add(wk->alog, w.buf, w.len);
      evbuffer_add(wk->alog, "\n", 1);
      if (!wk->alog_pending) {
        wk->alog_pending = 1;
        event_active(&wk->alog_ev, EV_TIMEOUT, 1);
      }
    } else {
      struct iovec iov[2] = {{w.buf, w.len}, {"\n", 1}};
      ssize_t n = writev(s->access_log_fd, iov, 2);
      (void)n;
    }
  }
  jw_free(&w);
}

static void on_alog_flush(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  observe_worker_flush(arg);
}

void observe_worker_init(worker *w) {
  if (w->srv->access_log_fd < 0) return;
  w->alog = evbuffer_new();
  event_assign(&w->alog_ev, w->base, -1, 0, on_alog_flush, w);
}

/* Writes the buffered lines; each worker writes whole lines with O_APPEND semantics, so lines of
 * different workers never interleave. Also called at worker shutdown. */
void observe_worker_flush(worker *w) {
  w->alog_pending = 0;
  if (!w->alog) return;
  int fd = w->srv->access_log_fd;
  while (evbuffer_get_length(w->alog) > 0) {
    if (evbuffer_write(w->alog, fd) <= 0) {
      evbuffer_drain(w->alog, evbuffer_get_length(w->alog)); /* a broken log sink drops lines, never blocks */
      break;
    }
  }
}
