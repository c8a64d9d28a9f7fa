/* health.c - optional active health checks (route "health_check", docs/routing.md).
 *
 * Worker 0 runs a 250 ms tick. For every route of the current generation with "health_check", a
 * target whose interval has passed gets a probe: a request with no client and no plugin hooks
 * whose route is a copy of the target's route with api "models", so the provider adapter builds
 * its own model-list request (GET .../models with the provider's credentials, signed where the
 * provider signs). A 2xx answer within timeout_ms passes; anything else fails. unhealthy_after
 * failures in a row open the target's breaker (it is skipped at once, like a passive open), a
 * passing check closes it. The probe's transfer runs through the normal upstream code
 * (upstream.c hands its body and end to health_probe_body / health_probe_done).
 *
 * Ownership: a probe (struct aigw_req, calloc'd) holds a generation reference and lives in the
 * worker's probe list until its transfer ends or the worker shuts down (health_shutdown). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "core.h"
#include "metrics.h"

#define TICK_MS 250

static int m_checks = -1;

static void probe_unlink(worker *w, struct aigw_req *r) {
  if (r->probe_prev) r->probe_prev->probe_next = r->probe_next;
  else if (w->probes == r) w->probes = r->probe_next;
  if (r->probe_next) r->probe_next->probe_prev = r->probe_prev;
  r->probe_next = r->probe_prev = NULL;
}

static void probe_free(struct aigw_req *r) {
  worker *w = r->w;
  probe_unlink(w, r);
  upstream_abort(r);
  calls_cancel_all(r);
  req_provider_done(r);
  cfg_gen *g = r->gen;
  req_free_internal(r);
  if (g) server_gen_release(w->srv, g);
}

static void probe_result(struct aigw_req *r, int ok, const char *why) {
  const cfg_route *rt = r->route; /* the probe's copy: name and health settings as the target's route */
  balance_health_result(rt, r->target, ok, now_ms());
  const char *lv[] = {rt->name, r->target->name, ok ? "pass" : "fail"};
  met_add(core_metrics(), m_checks, lv, 1);
  if (!ok)
    log_msg(AIGW_LOG_INFO, "route %s: health check of %s failed: %s", rt->name, r->target->name, why ? why : "no 2xx answer");
  probe_free(r);
}

size_t health_probe_body(struct aigw_req *r, const char *p, size_t n) {
  (void)p;
  r->up_got_first_byte = 1; /* the body itself does not matter */
  return n;
}

void health_probe_done(struct aigw_req *r, CURLcode rc) {
  char why[160];
  int ok = rc == CURLE_OK && r->uresp.status >= 200 && r->uresp.status < 300;
  if (rc != CURLE_OK) snprintf(why, sizeof why, "%s", r->timeout_kind ? "no answer within timeout_ms" : curl_easy_strerror(rc));
  else snprintf(why, sizeof why, "status %d", r->uresp.status);
  probe_result(r, ok, why);
}

static void probe_start(worker *w, cfg_gen *g, const cfg_route *rt, const cfg_target *t) {
  struct aigw_req *r = req_new_internal(w);
  if (!r) return;
  r->is_probe = 1;
  gen_ref(g); /* the generation t belongs to */
  r->gen = g;
  snprintf(r->id, sizeof r->id, "health-%.30s-%.30s", rt->name, t->name);
  cfg_route *pr = arena_alloc(&r->pool, sizeof *pr);
  if (!pr) {
    probe_result(r, 0, "out of memory");
    return;
  }
  memcpy(pr, rt, sizeof *pr);
  pr->api = AIGW_API_MODELS;
  pr->nplugins = 0;
  r->route = pr;
  r->method = (aigw_str){"GET", 3};
  r->path = r->target_uri = (aigw_str){"/v1/models", 10};
  r->creq.body = "";
  r->target = t;
  r->provider = t->provider;
  r->tmo = t->timeouts;
  r->tmo.first_byte_ms = r->tmo.total_ms = rt->hc_timeout_ms;
  if (r->tmo.connect_ms > rt->hc_timeout_ms) r->tmo.connect_ms = rt->hc_timeout_ms;
  r->tmo.idle_ms = rt->hc_timeout_ms;
  r->phase = PH_UPSTREAM;
  r->probe_next = w->probes;
  if (w->probes) w->probes->probe_prev = r;
  w->probes = r;
  if (req_build_upstream(r) < 0) {
    probe_result(r, 0, "out of memory");
    return;
  }
  aigw_status st = req_run_prepare(r);
  if (r->local_reply) { /* an adapter that answers itself (the mock) is as healthy as the gateway */
    probe_result(r, r->uresp.status >= 200 && r->uresp.status < 300, "its own answer was not 2xx");
    return;
  }
  if (st != AIGW_CONTINUE || r->responded || r->probe_failed) {
    probe_result(r, 0, st == AIGW_PAUSE ? "the adapter must wait before it can send (not checked)"
                                        : "the adapter has no model-list request for this provider");
    return;
  }
  r->up_step = 2;
  if (r->ureq.dirty && msg_serialize(r, &r->ureq) < 0) {
    probe_result(r, 0, "out of memory");
    return;
  }
  if (upstream_start(r) < 0 || r->probe_failed) probe_result(r, 0, r->error ? r->error : "the check could not start");
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  worker *w = arg;
  if (!w->draining) {
    cfg_gen *g = server_gen_acquire(w->srv);
    uint64_t now = now_ms();
    for (size_t i = 0; i < g->nroutes; i++) {
      const cfg_route *rt = &g->routes[i];
      if (!rt->hc) continue;
      for (size_t k = 0; k < rt->nleaves; k++)
        if (balance_health_due(rt->leaves[k], now, rt->hc_interval_ms)) probe_start(w, g, rt, rt->leaves[k]);
    }
    server_gen_release(w->srv, g);
  }
  struct timeval tv = {0, TICK_MS * 1000};
  evtimer_add(&w->health_ev, &tv);
}

void health_init(worker *w) {
  if (w->id != 0) return;
  if (m_checks < 0) {
    static const char *const l[] = {"route", "target", "result", NULL};
    m_checks = met_define(core_metrics(), MET_COUNTER, "aigw_health_checks_total",
                          "Active health checks by route, target and result (pass, fail)", l, NULL, 0, 0);
  }
  evtimer_assign(&w->health_ev, w->base, on_tick, w);
  struct timeval tv = {0, TICK_MS * 1000};
  evtimer_add(&w->health_ev, &tv);
  w->health_on = 1;
}

void health_shutdown(worker *w) {
  if (w->health_on) evtimer_del(&w->health_ev);
  w->health_on = 0;
  while (w->probes) probe_free(w->probes);
}
