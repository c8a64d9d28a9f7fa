/* balance.c - routing plans, attempts, retries, fallbacks and circuit breakers (docs/routing.md).
 *
 * Per request: the first attempt builds a plan (leaf indices of the route's targets in the order to
 * try: aliases and rules narrow the candidates, the strategy orders them, a pinned target goes
 * first, targets with a too-small context window drop out). balance_begin_attempt picks the plan
 * position to use (skipping targets whose breaker is open) and balance_failed decides, after a
 * failed attempt, whether and where the next one goes and after what delay.
 *
 * State: one tstate per target (and per route and group, for round-robin), owned by the config
 * generation, refcounted: a reload hands the old generation's state to the new one's targets of
 * the same route and name (balance_adopt), so breakers, in-flight counts and latency averages
 * survive reloads. Each tstate has a mutex for its breaker window and atomics for what the hot
 * path reads.
 *
 * Threads: plans and attempts run on the request's worker; the worker's xorshift state gives the
 * random choices (no shared PRNG). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "core.h"
#include "jscan.h"
#include "jsonw.h"
#include "metrics.h"

#define NBUCKET 10

typedef struct tstate {
  atomic_int refs;           /* generations sharing it (a reload adopts the old one's) */
  pthread_mutex_t mu;        /* the breaker's fields */
  int bstate;                /* 0 closed, 1 open, 2 half-open */
  uint64_t opened_ms;
  uint32_t probes_out;
  uint32_t ok[NBUCKET], fail[NBUCKET];
  uint64_t epoch[NBUCKET];
  atomic_int bstate_pub;     /* bstate for lock-free readers (admin, plans) */
  atomic_ullong ewma_us;     /* time to first byte/token, 0 = no sample; written under mu */
  atomic_long inflight;
  atomic_ullong rr;          /* round-robin counter (groups and routes) */
  atomic_ullong n_attempts, n_failures;
  uint32_t lat[32];          /* last time-to-first-byte samples (us), under mu: the hedge's p95 */
  uint32_t nlat, lat_pos;
  uint64_t hc_last_ms;       /* active health checks (worker 0 only) */
  int hc_inflight;
  uint32_t hc_fails;         /* consecutive failed checks, under mu */
} tstate;

static int m_attempts = -1, m_bstate = -1, m_inflight = -1;

tstate *balance_state_new(void) {
  tstate *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  pthread_mutex_init(&s->mu, NULL);
  atomic_store(&s->refs, 1);
  return s;
}

void balance_state_release(tstate *s) {
  if (!s || atomic_fetch_sub(&s->refs, 1) != 1) return;
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static void adopt_list(cfg_target *ts, size_t n, const cfg_target *old, size_t on) {
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < on; k++) {
      if (strcmp(ts[i].name, old[k].name) || !ts[i].provider != !old[k].provider) continue;
      if (ts[i].st != old[k].st) {
        atomic_fetch_add(&old[k].st->refs, 1);
        balance_state_release(ts[i].st);
        ts[i].st = old[k].st;
      }
      if (!ts[i].provider) adopt_list(ts[i].kids, ts[i].nkids, old[k].kids, old[k].nkids);
      break;
    }
  }
}

void balance_adopt(cfg_gen *nw, const cfg_gen *old) {
  if (!nw || !old) return;
  for (size_t i = 0; i < nw->nroutes; i++) {
    cfg_route *r = &nw->routes[i];
    for (size_t k = 0; k < old->nroutes; k++) {
      const cfg_route *o = &old->routes[k];
      if (!r->name || !o->name || strcmp(r->name, o->name)) continue;
      if (r->rstate && o->rstate && r->rstate != o->rstate) {
        atomic_fetch_add(&o->rstate->refs, 1);
        balance_state_release(r->rstate);
        r->rstate = o->rstate;
      }
      adopt_list(r->targets, r->ntargets, o->targets, o->ntargets);
      break;
    }
  }
}

int balance_metrics_init(void) {
  met_registry *m = core_metrics();
  static const char *const rto[] = {"route", "target", "outcome", NULL};
  static const char *const rt[] = {"route", "target", NULL};
  m_attempts = met_define(m, MET_COUNTER, "aigw_upstream_attempts_total",
                          "Upstream attempts by route, target and outcome (ok, status, timeout, connect, malformed, "
                          "context_window, content_policy, stream, cancelled)", rto, NULL, 0, 0);
  m_bstate = met_define(m, MET_GAUGE, "aigw_target_breaker_state",
                        "Circuit breaker state per target: 0 closed, 1 open, 2 half-open", rt, NULL, 0, 0);
  m_inflight = met_define(m, MET_GAUGE, "aigw_target_inflight", "Upstream attempts in flight per target", rt, NULL, 0, 0);
  return m_attempts < 0 || m_bstate < 0 || m_inflight < 0 ? -1 : 0;
}

static const char *const outcome_names[] = {"ok",     "status",    "timeout",   "connect", "malformed", "context_window",
                                            "content_policy", "stream", "cancelled", "hedged"};

int balance_open(const struct aigw_req *r) { return r->nattempts && r->cur_att >= 0 && r->att[r->cur_att].open; }

const char *balance_outcome_name(int o) {
  return o >= 0 && o < (int)(sizeof outcome_names / sizeof *outcome_names) ? outcome_names[o] : "unknown";
}

/* ---- randomness (per worker) ---- */

static uint64_t rnd(worker *w) {
  if (!w->rng) {
    /* AIGW_SEED fixes the routing choices (tests, benchmarks); each worker gets its own stream */
    const char *e = getenv("AIGW_SEED");
    uint64_t seed = e && *e ? strtoull(e, NULL, 10) : now_us();
    w->rng = (seed * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)(w->id + 1) << 32) ^ 0x2545F4914F6CDD1Dull;
    if (!w->rng) w->rng = 1;
  }
  uint64_t x = w->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  w->rng = x;
  return x * 0x2545F4914F6CDD1Dull;
}
static double rnd01(worker *w) { return (double)(rnd(w) >> 11) * (1.0 / 9007199254740992.0); }

/* ---- breaker ---- */

static void bucket_add(tstate *s, const cfg_breaker *b, uint64_t now, int ok) {
  uint64_t bw = b->window_ms / NBUCKET ? b->window_ms / NBUCKET : 1;
  uint64_t ep = now / bw;
  int i = (int)(ep % NBUCKET);
  if (s->epoch[i] != ep) {
    s->epoch[i] = ep;
    s->ok[i] = s->fail[i] = 0;
  }
  if (ok) s->ok[i]++;
  else s->fail[i]++;
}

static void window_sum(const tstate *s, const cfg_breaker *b, uint64_t now, uint32_t *tot, uint32_t *fails) {
  uint64_t bw = b->window_ms / NBUCKET ? b->window_ms / NBUCKET : 1;
  uint64_t ep = now / bw;
  *tot = *fails = 0;
  for (int i = 0; i < NBUCKET; i++) {
    if (s->epoch[i] + NBUCKET <= ep) continue; /* older than the window */
    *tot += s->ok[i] + s->fail[i];
    *fails += s->fail[i];
  }
}

static void publish_state(const cfg_route *rt, const cfg_target *t, tstate *s, int st) {
  s->bstate = st;
  atomic_store(&s->bstate_pub, st);
  const char *lv[] = {rt->name, t->name};
  met_set(core_metrics(), m_bstate, lv, st);
}

/* 0 refused (open), 1 allowed, 2 allowed as a half-open probe. now: ms (balance_breaker_allow_at
 * lets the unit tests drive the clock). */
int balance_breaker_allow_at(const cfg_route *rt, const cfg_target *t, uint64_t now) {
  const cfg_breaker *b = &rt->breaker;
  tstate *s = t->st;
  if (!b->enabled || atomic_load(&s->bstate_pub) == 0) return 1;
  int rc = 1;
  pthread_mutex_lock(&s->mu);
  if (s->bstate == 1 && now - s->opened_ms >= b->cooldown_ms) {
    publish_state(rt, t, s, 2);
    s->probes_out = 0;
    log_msg(AIGW_LOG_INFO, "route %s: target %s half-open after %u ms: sending up to %u probe(s)", rt->name, t->name,
            b->cooldown_ms, b->probes);
  }
  if (s->bstate == 1) rc = 0;
  else if (s->bstate == 2) {
    if (s->probes_out < b->probes) {
      s->probes_out++;
      rc = 2;
    } else {
      rc = 0;
    }
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int breaker_allow(const cfg_route *rt, const cfg_target *t) { return balance_breaker_allow_at(rt, t, now_ms()); }

int balance_breaker_state(const cfg_target *t) { return atomic_load(&t->st->bstate_pub); }

/* ms until the soonest open breaker among the plan half-opens (for Retry-After). */
static uint64_t soonest_half_open(struct aigw_req *r) {
  const cfg_route *rt = r->route;
  uint64_t now = now_ms(), best = UINT64_MAX;
  for (size_t i = 0; i < r->nplan; i++) {
    tstate *s = rt->leaves[r->plan[i]]->st;
    pthread_mutex_lock(&s->mu);
    uint64_t left = s->bstate == 1 && s->opened_ms + rt->breaker.cooldown_ms > now ? s->opened_ms + rt->breaker.cooldown_ms - now : 0;
    pthread_mutex_unlock(&s->mu);
    if (left < best) best = left;
  }
  return best == UINT64_MAX ? 0 : best;
}

void balance_breaker_record_at(const cfg_route *rt, const cfg_target *t, int probe, int counts, int ok, uint64_t now) {
  const cfg_breaker *b = &rt->breaker;
  tstate *s = t->st;
  if (!b->enabled) return;
  pthread_mutex_lock(&s->mu);
  if (probe && s->probes_out) s->probes_out--;
  if (s->bstate == 2 && probe && counts) {
    if (ok) {
      publish_state(rt, t, s, 0);
      memset(s->ok, 0, sizeof s->ok);
      memset(s->fail, 0, sizeof s->fail);
      log_msg(AIGW_LOG_INFO, "route %s: target %s closed again (probe succeeded)", rt->name, t->name);
    } else {
      publish_state(rt, t, s, 1);
      s->opened_ms = now;
      log_msg(AIGW_LOG_WARN, "route %s: target %s open again (probe failed), next probe in %u ms", rt->name, t->name,
              b->cooldown_ms);
    }
  } else if (s->bstate == 0 && counts) {
    bucket_add(s, b, now, ok);
    uint32_t tot, fails;
    window_sum(s, b, now, &tot, &fails);
    if (!ok && tot >= b->min_requests && tot && (double)fails / (double)tot >= b->failure_rate) {
      publish_state(rt, t, s, 1);
      s->opened_ms = now;
      log_msg(AIGW_LOG_WARN, "route %s: target %s open: %u of %u attempts failed in %u ms; skipped for %u ms", rt->name,
              t->name, fails, tot, b->window_ms, b->cooldown_ms);
    }
  }
  pthread_mutex_unlock(&s->mu);
}

static void breaker_record(const cfg_route *rt, const cfg_target *t, int probe, int counts, int ok) {
  balance_breaker_record_at(rt, t, probe, counts, ok, now_ms());
}

/* ---- plans ---- */

typedef struct cand {
  const cfg_target *t;
  double key;
  size_t idx;
} cand;

static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->key < y->key) return -1;
  if (x->key > y->key) return 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static long t_inflight(const cfg_target *t) {
  if (t->provider) return atomic_load(&t->st->inflight);
  long n = 0;
  for (size_t i = 0; i < t->nkids; i++) n += t_inflight(&t->kids[i]);
  return n;
}

/* -1 = no sample */
static double t_latency(const cfg_target *t) {
  if (t->provider) {
    uint64_t v = atomic_load(&t->st->ewma_us);
    return v ? (double)v : -1;
  }
  double best = -1;
  for (size_t i = 0; i < t->nkids; i++) {
    double v = t_latency(&t->kids[i]);
    if (v < 0) return -1;
    if (best < 0 || v < best) best = v;
  }
  return best;
}

static double t_price(const cfg_target *t) {
  if (t->provider) return t->price;
  double best = -1;
  for (size_t i = 0; i < t->nkids; i++) {
    double v = t_price(&t->kids[i]);
    if (v >= 0 && (best < 0 || v < best)) best = v;
  }
  return best;
}

static uint64_t fnv(const char *p, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
  return h;
}

typedef struct plan_ctx {
  struct aigw_req *r;
  uint64_t mask;
  int have_key;
  uint64_t key_hash;
} plan_ctx;

#define STRAT_LISTED (-1)

static void expand(plan_ctx *pc, const cfg_target *const *ts, size_t n, int strategy, tstate *rrs) {
  struct aigw_req *r = pc->r;
  cand c[CFG_MAX_LEAVES];
  size_t m = 0;
  for (size_t i = 0; i < n && m < CFG_MAX_LEAVES; i++)
    if (ts[i]->mask & pc->mask) c[m++] = (cand){ts[i], 0, i};
  if (!m) return;
  if (strategy == STRAT_HASH && !pc->have_key) strategy = STRAT_PRIORITY;
  switch (strategy) {
  case STRAT_LISTED: break;
  case STRAT_PRIORITY: {
    /* by priority; equal priorities share by weight when their weights differ */
    for (size_t i = 0; i < m; i++) {
      int differ = 0;
      for (size_t k = 0; k < m; k++)
        if (c[k].t->priority == c[i].t->priority && c[k].t->weight != c[i].t->weight) differ = 1;
      double sub = (double)i / 1024.0;
      if (differ) sub = c[i].t->weight ? -log(rnd01(r->w) + 1e-12) / (double)c[i].t->weight : 1e9;
      c[i].key = (double)c[i].t->priority * 1e12 + sub;
    }
    break;
  }
  case STRAT_WEIGHTED:
    /* Efraimidis-Spirakis: sorting by -ln(u)/w is a weighted draw without replacement */
    for (size_t i = 0; i < m; i++) c[i].key = c[i].t->weight ? -log(rnd01(r->w) + 1e-12) / (double)c[i].t->weight : 1e12 + (double)i;
    break;
  case STRAT_RR: {
    uint64_t start = rrs ? atomic_fetch_add(&rrs->rr, 1) % m : 0;
    for (size_t i = 0; i < m; i++) c[i].key = (double)((i + m - start) % m);
    break;
  }
  case STRAT_LEAST:
    for (size_t i = 0; i < m; i++) c[i].key = (double)t_inflight(c[i].t);
    break;
  case STRAT_LATENCY:
    for (size_t i = 0; i < m; i++) c[i].key = t_latency(c[i].t);
    break;
  case STRAT_COST:
    for (size_t i = 0; i < m; i++) {
      double p = t_price(c[i].t);
      c[i].key = p >= 0 ? p : 1e18;
    }
    break;
  case STRAT_HASH:
    /* rendezvous hashing: the highest score first; stable per key, and so is the fallback order */
    for (size_t i = 0; i < m; i++) {
      uint64_t h = fnv(c[i].t->name, strlen(c[i].t->name), pc->key_hash);
      h ^= h >> 33;
      h *= 0xff51afd7ed558ccdull;
      h ^= h >> 33;
      c[i].key = -(double)(h >> 11);
    }
    break;
  }
  if (strategy != STRAT_LISTED) qsort(c, m, sizeof *c, cand_cmp);
  for (size_t i = 0; i < m; i++) {
    const cfg_target *t = c[i].t;
    if (t->provider) {
      if (r->nplan < CFG_MAX_LEAVES) r->plan[r->nplan++] = (uint8_t)t->leaf;
      continue;
    }
    const cfg_target *kp[CFG_MAX_LEAVES];
    size_t kn = 0;
    for (size_t k = 0; k < t->nkids && kn < CFG_MAX_LEAVES; k++) kp[kn++] = &t->kids[k];
    expand(pc, kp, kn, t->strategy, t->st);
  }
}

/* The client's top-level string member key of the request body, or NULL. */
static const char *body_str(struct aigw_req *r, const char *key, size_t *n) {
  if (r->creq.json) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(r->creq.json, key);
    if (!cJSON_IsString(v)) return NULL;
    *n = strlen(v->valuestring);
    return v->valuestring;
  }
  const char *v;
  size_t vn;
  if (!r->creq.body || jscan_member(r->creq.body, r->creq.body_len, key, &v, &vn) != 1) return NULL;
  if (vn < 2 || v[0] != '"' || memchr(v + 1, '\\', vn - 2)) {
    /* escaped or not a string: read the tree */
    cJSON *j = msg_json(r, &r->creq);
    cJSON *s = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsString(s)) return NULL;
    *n = strlen(s->valuestring);
    return s->valuestring;
  }
  *n = vn - 2;
  return v + 1;
}

static const char *meta_str(struct aigw_req *r, const char *key, size_t *n) {
  for (meta_kv *m = r->meta; m; m = m->next)
    if (!strcmp(m->key, key)) {
      *n = m->v.n;
      return m->v.p;
    }
  return NULL;
}

static int64_t estimate(struct aigw_req *r) {
  if (r->est_tokens < 0) r->est_tokens = (int64_t)((req_prompt_bytes(r) + 3) / 4);
  return r->est_tokens;
}

static int str_is(const char *p, size_t n, const char *s) { return p && strlen(s) == n && !memcmp(p, s, n); }

static int rule_match(struct aigw_req *r, const cfg_rule *ru) {
  for (size_t i = 0; i < ru->nheaders; i++) {
    const hdr *h = hdrs_get(&r->creq.hdrs, ru->headers[i].k, strlen(ru->headers[i].k));
    const char *want = ru->headers[i].v->valuestring;
    if (!h) return 0;
    if (strcmp(want, "*") && !str_is(h->value.p, h->value.n, want)) return 0;
  }
  for (size_t i = 0; i < ru->nmeta; i++) {
    size_t n;
    const char *v = meta_str(r, ru->meta[i].k, &n);
    if (!v || !str_is(v, n, ru->meta[i].v->valuestring)) return 0;
  }
  if (ru->consumer) {
    size_t n;
    const char *v = meta_str(r, "consumer", &n);
    if (!v || !str_is(v, n, ru->consumer)) return 0;
  }
  if (ru->model) {
    size_t n = 0;
    const char *v = body_str(r, "model", &n);
    size_t ml = strlen(ru->model);
    if (!v) return 0;
    if (ml && ru->model[ml - 1] == '*') {
      if (n < ml - 1 || memcmp(v, ru->model, ml - 1)) return 0;
    } else if (!str_is(v, n, ru->model)) {
      return 0;
    }
  }
  if (ru->nparams) {
    cJSON *j = msg_json(r, &r->creq);
    for (size_t i = 0; i < ru->nparams; i++) {
      cJSON *v = cJSON_GetObjectItemCaseSensitive(j, ru->params[i].k);
      if (!v || !cJSON_Compare(v, ru->params[i].v, 1)) return 0;
    }
  }
  if (ru->min_tokens && estimate(r) < (int64_t)ru->min_tokens) return 0;
  if (ru->max_tokens && estimate(r) > (int64_t)ru->max_tokens) return 0;
  return 1;
}

static const cfg_target *find_target(const cfg_target *ts, size_t n, const char *name, size_t nl) {
  for (size_t i = 0; i < n; i++) {
    if (str_is(name, nl, ts[i].name)) return &ts[i];
    if (!ts[i].provider) {
      const cfg_target *k = find_target(ts[i].kids, ts[i].nkids, name, nl);
      if (k) return k;
    }
  }
  return NULL;
}

void balance_build_plan(struct aigw_req *r) {
  const cfg_route *rt = r->route;
  plan_ctx pc = {r, rt->nleaves >= 64 ? ~0ull : ((1ull << rt->nleaves) - 1), 0, 0};
  uint64_t all = pc.mask;
  cfg_target *const *order = NULL;
  size_t norder = 0;
  r->nplan = 0;
  /* pre-flight: targets whose context window is too small for the prompt are not usable */
  uint64_t usable = all;
  if (rt->need_estimate) {
    int64_t est = estimate(r);
    for (size_t i = 0; i < rt->nleaves; i++) {
      const cfg_target *t = rt->leaves[i];
      if (t->context_window && (int64_t)t->context_window < est) usable &= ~(1ull << i);
    }
    if (rt->retry.fb_context) usable |= rt->retry.fb_context->mask & all;
    if (!usable) usable = all; /* nothing fits: let the upstreams say so */
  }
  pc.mask = usable;
  if (rt->naliases) {
    size_t n = 0;
    const char *m = body_str(r, "model", &n);
    for (size_t i = 0; m && i < rt->naliases; i++)
      if (str_is(m, n, rt->aliases[i].name)) {
        if (pc.mask & rt->aliases[i].mask) {
          pc.mask &= rt->aliases[i].mask;
          order = rt->aliases[i].order;
          norder = rt->aliases[i].norder;
        }
        break;
      }
  }
  for (size_t i = 0; i < rt->nrules; i++) {
    if (!rule_match(r, &rt->rules[i])) continue;
    if (pc.mask & rt->rules[i].mask) { /* a rule that leaves no usable target: the whole list */
      pc.mask &= rt->rules[i].mask;
      order = rt->rules[i].order;
      norder = rt->rules[i].norder;
    }
    break;
  }
  if (rt->strategy == STRAT_HASH) {
    const char *v = NULL;
    size_t n = 0;
    if (rt->hash_kind == 1) {
      const hdr *h = hdrs_get(&r->creq.hdrs, rt->hash_name, strlen(rt->hash_name));
      if (h) v = h->value.p, n = h->value.n;
    } else if (rt->hash_kind == 2) {
      v = meta_str(r, rt->hash_name, &n);
    } else if (rt->hash_kind == 3) {
      v = body_str(r, rt->hash_name, &n);
    } else if (rt->hash_kind == 4) {
      v = meta_str(r, "consumer", &n);
    }
    if (v && n) {
      pc.have_key = 1;
      pc.key_hash = fnv(v, n, 0xcbf29ce484222325ull);
    }
  }
  if (order && rt->strategy == STRAT_PRIORITY) {
    expand(&pc, (const cfg_target *const *)order, norder, STRAT_LISTED, rt->rstate);
  } else {
    const cfg_target *tp[CFG_MAX_LEAVES];
    size_t tn = 0;
    for (size_t i = 0; i < rt->ntargets && tn < CFG_MAX_LEAVES; i++) tp[tn++] = &rt->targets[i];
    expand(&pc, tp, tn, rt->strategy, rt->rstate);
  }
  /* the context-window fallback is always reachable */
  if (rt->retry.fb_context) {
    for (size_t i = 0; i < rt->nleaves; i++) {
      if (!(rt->retry.fb_context->mask & (1ull << i))) continue;
      int have = 0;
      for (size_t k = 0; k < r->nplan; k++) have |= r->plan[k] == i;
      if (!have && r->nplan < CFG_MAX_LEAVES) r->plan[r->nplan++] = (uint8_t)i;
    }
  }
  /* a request plugin's pin: metadata route.target */
  size_t pn = 0;
  const char *pin = meta_str(r, "route.target", &pn);
  if (pin) {
    const cfg_target *t = find_target(rt->targets, rt->ntargets, pin, pn);
    if (!t) {
      log_msg(AIGW_LOG_WARN, "request %s: metadata route.target names no target of route %s; ignored", r->id, rt->name);
    } else {
      size_t on = 0;
      const char *only = meta_str(r, "route.target_only", &on);
      int just = only && on == 1 && only[0] == '1';
      uint8_t first[CFG_MAX_LEAVES], rest[CFG_MAX_LEAVES];
      size_t nf = 0, nr = 0;
      for (size_t k = 0; k < r->nplan; k++) {
        if (t->mask & (1ull << r->plan[k])) first[nf++] = r->plan[k];
        else rest[nr++] = r->plan[k];
      }
      if (!nf) /* narrowed away by a rule: the pin wins */
        for (size_t i = 0; i < rt->nleaves; i++)
          if (t->mask & (1ull << i)) first[nf++] = (uint8_t)i;
      r->nplan = 0;
      for (size_t k = 0; k < nf; k++) r->plan[r->nplan++] = first[k];
      for (size_t k = 0; !just && k < nr; k++) r->plan[r->nplan++] = rest[k];
    }
  }
}

/* ---- attempts ---- */

/* The hot path only touches the atomic; the gauge is set from it when metrics are scraped. */
static void inflight_delta(struct aigw_req *r, const cfg_target *t, int d) {
  (void)r;
  atomic_fetch_add(&t->st->inflight, d);
}

static void refresh_list(const cfg_route *rt, const cfg_target *ts, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!ts[i].provider) {
      refresh_list(rt, ts[i].kids, ts[i].nkids);
      continue;
    }
    const char *lv[] = {rt->name, ts[i].name};
    met_set(core_metrics(), m_inflight, lv, (double)atomic_load(&ts[i].st->inflight));
  }
}

void balance_metrics_refresh(const cfg_gen *g) {
  for (size_t i = 0; g && i < g->nroutes; i++) refresh_list(&g->routes[i], g->routes[i].targets, g->routes[i].ntargets);
}

static int counts_for_breaker(const cfg_route *rt, int outcome, int status) {
  switch (outcome) {
  case OUT_TIMEOUT: case OUT_CONNECT: case OUT_MALFORMED: case OUT_STREAM: return 1;
  case OUT_STATUS: return status == 429 || status >= 500 || (status >= 400 && status < 600 && (rt->retry.status_on[(status - 400) / 8] >> ((status - 400) % 8) & 1));
  default: return 0;
  }
}

static void latency_sample(const cfg_target *t, uint64_t us) {
  tstate *s = t->st;
  pthread_mutex_lock(&s->mu);
  uint64_t old = atomic_load(&s->ewma_us);
  atomic_store(&s->ewma_us, old ? (uint64_t)(0.8 * (double)old + 0.2 * (double)us) + 1 : us + 1);
  s->lat[s->lat_pos] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
  s->lat_pos = (s->lat_pos + 1) % 32;
  if (s->nlat < 32) s->nlat++;
  pthread_mutex_unlock(&s->mu);
}

static int u32cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* p95 of the target's recent time to first byte in ms, or 0 with fewer than 8 samples. */
uint32_t balance_p95_ms(const cfg_target *t) {
  tstate *s = t->st;
  uint32_t v[32], n;
  pthread_mutex_lock(&s->mu);
  n = s->nlat;
  memcpy(v, s->lat, sizeof v);
  pthread_mutex_unlock(&s->mu);
  if (n < 8) return 0;
  qsort(v, n, sizeof *v, u32cmp);
  return (v[(n * 95 + 99) / 100 - 1] + 999) / 1000;
}

static void close_att(struct aigw_req *r, int idx, int outcome, int status) {
  if (idx < 0 || idx >= r->nattempts || !r->att[idx].open) return;
  attempt_rec *a = &r->att[idx];
  a->open = 0;
  const cfg_route *rt = r->route;
  const cfg_target *t = a->t;
  uint64_t now = now_us();
  a->outcome = outcome;
  a->status = status;
  a->ms = (uint32_t)((now - a->t0) / 1000);
  if (a->inflight) {
    a->inflight = 0;
    inflight_delta(r, t, -1);
  }
  atomic_fetch_add(&t->st->n_attempts, 1);
  int ok = outcome == OUT_OK;
  int counts = outcome != OUT_CANCELLED && outcome != OUT_HEDGED && (ok || counts_for_breaker(rt, outcome, status));
  if (counts && !ok) atomic_fetch_add(&t->st->n_failures, 1);
  if (a->probe || counts) breaker_record(rt, t, a->probe, counts, ok);
  a->probe = 0;
  if (ok && r->t_up_start && idx == r->cur_att) {
    /* latency sample: time to first token for streams, to first byte otherwise */
    uint64_t first = r->is_stream && r->t_first_token ? r->t_first_token : r->t_up_first;
    if (first > r->t_up_start) latency_sample(t, first - r->t_up_start);
  }
  const char *lv[] = {rt->name, t->name, balance_outcome_name(outcome)};
  met_add(core_metrics(), m_attempts, lv, 1);
}

static void close_attempt(struct aigw_req *r, int outcome, int status) { close_att(r, r->cur_att, outcome, status); }

/* Appends an open attempt on t; -1 on ENOMEM. */
static int add_attempt(struct aigw_req *r, const cfg_target *t, int probe, int hedge) {
  if (r->nattempts == r->att_cap) {
    uint16_t cap = r->att_cap ? (uint16_t)(r->att_cap * 2) : 4;
    attempt_rec *na = arena_alloc(&r->pool, cap * sizeof *na);
    if (!na) return -1;
    if (r->nattempts) memcpy(na, r->att, r->nattempts * sizeof *na);
    r->att = na;
    r->att_cap = cap;
  }
  attempt_rec *a = &r->att[r->nattempts];
  *a = (attempt_rec){t, 0, -1, 0, now_us(), 1, (uint8_t)probe, 1, (uint8_t)hedge};
  inflight_delta(r, t, 1);
  return r->nattempts++;
}

int balance_begin_attempt(struct aigw_req *r) {
  const cfg_route *rt = r->route;
  if (!r->plan_built) {
    r->plan_built = 1;
    r->est_tokens = -1;
    balance_build_plan(r);
    r->plan_pos = 0;
    r->tries_here = 0;
    if (rt->retry.deadline_ms) r->deadline_us = r->t_start + (uint64_t)rt->retry.deadline_ms * 1000u;
    if (!r->nplan) {
      req_respond_error(r, 503, "server_error", "no_target", "no target of this route can take the request");
      return -1;
    }
  }
  const cfg_target *t = NULL;
  int allow = 0;
  for (size_t k = 0; k < r->nplan; k++) {
    size_t idx = (r->plan_pos + k) % r->nplan;
    const cfg_target *c = rt->leaves[r->plan[idx]];
    if ((allow = breaker_allow(rt, c))) {
      if (idx != r->plan_pos) r->tries_here = 0;
      r->plan_pos = (uint8_t)idx;
      t = c;
      break;
    }
  }
  if (!t) {
    uint64_t ms = soonest_half_open(r);
    char ra[24];
    ra[fmt_u64(ra, (ms + 999) / 1000 ? (ms + 999) / 1000 : 1)] = 0;
    hdrs_set(&r->pool, &r->cresp.hdrs, "retry-after", 11, ra, strlen(ra));
    char msg[200];
    snprintf(msg, sizeof msg, "every target of route '%s' is unavailable (circuit breaker open); retry in %s s", rt->name, ra);
    req_respond_error(r, 503, "server_error", "targets_unavailable", msg);
    return -1;
  }
  int idx = add_attempt(r, t, allow == 2, 0);
  if (idx < 0) {
    req_respond_error(r, 500, "server_error", NULL, "out of memory");
    return -1;
  }
  r->cur_att = idx;
  r->t_att_start = now_us();
  r->tries_here++;
  r->target = t;
  r->provider = t->provider;
  r->tmo = t->timeouts;
  r->deadline_capped = 0;
  if (r->deadline_us) {
    uint64_t now = now_us();
    uint32_t left = r->deadline_us > now ? (uint32_t)((r->deadline_us - now + 999) / 1000) : 1;
    if (!r->tmo.first_byte_ms || r->tmo.first_byte_ms > left) r->tmo.first_byte_ms = left, r->deadline_capped = 1;
    if (!r->tmo.total_ms || r->tmo.total_ms > left) r->tmo.total_ms = left, r->deadline_capped = 1;
    if (r->tmo.connect_ms > left) r->tmo.connect_ms = left;
  }
  return 0;
}

static int status_on(const cfg_retry *rp, int status) {
  if (status < 400 || status >= 600) return 0;
  int b = status - 400;
  return rp->status_on[b / 8] >> (b % 8) & 1;
}

/* Decides the next attempt; commit: apply the choice. Returns 1 with *delay_ms when one follows. */
static int decide(struct aigw_req *r, int outcome, int status, int64_t ra_ms, uint64_t *delay_ms, int commit) {
  const cfg_route *rt = r->route;
  const cfg_retry *rp = &rt->retry;
  if (r->client_gone || r->ended || r->local_reply || !r->nplan) return 0;
  int to_ctx = 0, ok;
  switch (outcome) {
  case OUT_CONTEXT: ok = to_ctx = rp->fb_context && !r->ctx_tried && !(rp->fb_context->mask & (1ull << r->target->leaf)); break;
  case OUT_CONTENT: ok = rp->fb_content_policy; break;
  case OUT_STATUS: ok = status_on(rp, status); break;
  case OUT_TIMEOUT: ok = rp->on_timeout; break;
  case OUT_CONNECT: ok = rp->on_connect; break;
  case OUT_MALFORMED: ok = rp->on_malformed; break;
  case OUT_STREAM:
    ok = rp->stream_continue && (r->head_sent || r->t_first_token) && !r->cont_tool && r->cont_len > 0 && r->c &&
         (rt->api == AIGW_API_CHAT || rt->api == AIGW_API_MESSAGES);
    break;
  default: ok = 0;
  }
  if (!ok) return 0;
  uint32_t budget = rp->attempts ? rp->attempts : r->nplan;
  if (r->nattempts >= budget) return 0;
  uint64_t now = now_us();
  /* the deadline: no attempt starts in its last 20 ms, and a wait it cut is not retried (timers
   * run on the loop's cached clock and may fire a little before it) */
  if (r->deadline_us && (now + 20000 >= r->deadline_us || (outcome == OUT_TIMEOUT && r->deadline_capped))) return 0;
  size_t next = r->plan_pos;
  uint64_t delay = 0;
  uint32_t cap = rp->max_retry_after_ms;
  if (to_ctx) {
    for (size_t k = 0; k < r->nplan; k++)
      if (rp->fb_context->mask & (1ull << r->plan[k])) {
        next = k;
        break;
      }
  } else {
    int same = r->tries_here < rp->per_target && !(ra_ms >= 0 && (uint64_t)ra_ms > cap);
    int wrapped = 0;
    if (!same) {
      next = (r->plan_pos + 1) % r->nplan;
      wrapped = next <= r->plan_pos;
      if (wrapped && ra_ms >= 0 && (uint64_t)ra_ms > cap && r->nplan == 1) return 0; /* told to wait too long */
    }
    if (same || wrapped) {
      /* exponential backoff with jitter: between half and all of base * 2^(n-1), capped */
      uint32_t n = same ? r->tries_here : (uint32_t)(r->nattempts / (r->nplan ? r->nplan : 1));
      double b = (double)rp->backoff_ms * pow(2.0, n > 1 ? (double)(n - 1) : 0.0);
      if (b > rp->max_backoff_ms) b = rp->max_backoff_ms;
      delay = (uint64_t)(b / 2 + rnd01(r->w) * b / 2);
      if (ra_ms >= 0 && (uint64_t)ra_ms <= cap && (uint64_t)ra_ms > delay) delay = (uint64_t)ra_ms;
    }
  }
  if (r->deadline_us && now + delay * 1000u >= r->deadline_us) return 0;
  if (outcome == OUT_STREAM) {
    /* go on at once, on the next target (the one that broke may still be broken) */
    next = r->nplan > 1 ? (r->plan_pos + 1) % r->nplan : r->plan_pos;
    delay = 0;
  }
  if (commit) {
    if (next != r->plan_pos) r->tries_here = 0;
    r->plan_pos = (uint8_t)next;
    if (to_ctx) r->ctx_tried = 1;
    if (outcome == OUT_STREAM) {
      r->cont_active = 1;
      r->cont_idx_set = 0;
      r->cont_count++;
      /* account the broken attempt: its prompt again, and what it had sent (estimates) */
      r->carry_in += estimate(r);
      r->carry_out += (int64_t)((r->cont_len + 3) / 4);
    }
  }
  *delay_ms = delay;
  return 1;
}

int balance_can_retry(struct aigw_req *r, int outcome, int status) {
  uint64_t d;
  return balance_open(r) && decide(r, outcome, status, -1, &d, 0);
}

static void attempt_reset(struct aigw_req *r);

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct aigw_req *r = arg;
  r->retry_set = 0;
  attempt_reset(r);
  req_continue(r);
}

int balance_failed(struct aigw_req *r, int outcome, int status, int64_t ra_ms) {
  uint64_t delay = 0;
  if (r->hedge && r->hedge_att >= 0 && outcome != OUT_STREAM && !r->client_gone && hedge_wait(r)) {
    /* a hedge is still racing: its answer decides (through this same path if it fails too) */
    close_attempt(r, outcome, status);
    r->phase = PH_UPSTREAM;
    return 1;
  }
  int again = balance_open(r) && decide(r, outcome, status, ra_ms, &delay, 1);
  close_attempt(r, outcome, status);
  if (!again) return 0;
  const attempt_rec *a = &r->att[r->cur_att];
  log_msg(AIGW_LOG_INFO, "request %s: attempt %u on %s failed (%s%s%d), next attempt in %llu ms", r->id,
          (unsigned)r->nattempts, a->t->name, balance_outcome_name(outcome), status ? " " : "", status,
          (unsigned long long)delay);
  event_assign(&r->retry_ev, r->w->base, -1, 0, on_retry, r);
  struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000)};
  evtimer_add(&r->retry_ev, &tv);
  r->retry_set = 1;
  r->phase = PH_UPSTREAM;
  r->up_step = 0;
  return 1;
}

void balance_close(struct aigw_req *r, int outcome, int status) { close_attempt(r, outcome, status); }

void balance_finish(struct aigw_req *r) {
  if (r->retry_set) {
    event_del(&r->retry_ev);
    r->retry_set = 0;
  }
  free(r->cont_text);
  r->cont_text = NULL;
  if (r->cont_count) {
    /* both attempts are accounted: the broken ones' estimated tokens are added */
    if (r->usage.input_tokens >= 0) r->usage.input_tokens += r->carry_in;
    if (r->usage.output_tokens >= 0) r->usage.output_tokens += r->carry_out;
    char v[24];
    size_t k = fmt_u64(v, (uint64_t)r->cont_count);
    meta_kv *m = arena_alloc(&r->pool, sizeof *m);
    char *c = arena_strndup(&r->pool, v, k);
    if (m && c) {
      m->key = "log.continued";
      m->v = (aigw_str){c, k};
      m->next = r->meta;
      r->meta = m;
    }
  }
  if (r->hedge_att >= 0) close_att(r, r->hedge_att, OUT_CANCELLED, 0);
  if (!balance_open(r)) return;
  int outcome = OUT_OK;
  if (r->client_gone) outcome = OUT_CANCELLED;
  else if (r->head_sent && !r->saw_done) outcome = OUT_STREAM;
  close_attempt(r, outcome, r->uresp.status);
}

void balance_add_headers(struct aigw_req *r) {
  if (!r->nattempts) return;
  const cfg_target *t = r->att[r->cur_att >= 0 ? r->cur_att : r->nattempts - 1].t;
  hdrs_add(&r->pool, &r->cresp.hdrs, "x-aigw-target", 13, t->name, strlen(t->name)); /* once per answer */
  char n[24];
  size_t k = fmt_u64(n, r->nattempts);
  hdrs_add(&r->pool, &r->cresp.hdrs, "x-aigw-attempts", 15, n, k);
}

/* Everything one attempt left behind, so that the next one starts from the client's request. */
static void attempt_reset(struct aigw_req *r) {
  upstream_abort(r);
  req_provider_done(r);
  /* the upstream request: the provider may have edited the client's tree in place (shared on the
   * first attempt); keep that tree alive (handles may point into it) and re-read the body */
  if (r->ureq.json && r->ureq.json != r->creq.json) cJSON_Delete(r->ureq.json);
  if (r->creq.json) {
    meta_kv *keep = arena_alloc(&r->pool, sizeof *keep);
    if (keep) {
      keep->v.p = (const char *)r->creq.json;
      keep->next = r->member_trees;
      r->member_trees = keep;
    } else {
      cJSON_Delete(r->creq.json);
    }
    r->creq.json = NULL;
    r->creq.json_tried = 0;
  }
  if (r->ureq.body_owned) free(r->ureq.body);
  memset(&r->ureq, 0, sizeof r->ureq);
  if (r->uresp.json) cJSON_Delete(r->uresp.json);
  if (r->uresp.body_owned) free(r->uresp.body);
  memset(&r->uresp, 0, sizeof r->uresp);
  r->upstream_url = NULL;
  r->up_got_first_byte = r->up_streaming = r->up_paused = r->up_failed = 0;
  r->timeout_kind = 0;
  r->curl_result = 0;
  r->upc_retried = 0;
  r->total_deadline_us = 0;
  if (r->sse_init) {
    sse_free(&r->sse);
    r->sse_init = 0;
  }
  r->saw_done = r->saw_error = 0;
  r->stream_ended = 0;
  if (r->chunk) evbuffer_drain(r->chunk, evbuffer_get_length(r->chunk));
  if (r->emit_q) evbuffer_drain(r->emit_q, evbuffer_get_length(r->emit_q));
  stream_pemit_free(r);
  if (!r->head_sent) r->t_first_token = 0;
  r->t_up_start = r->t_up_first = r->t_up_end = 0;
  r->usage = (aigw_usage){sizeof(aigw_usage), -1, -1, -1, -1, -1};
  r->error = NULL;
  r->retry_wanted = 0;
}

/* ---- classifying an answer ---- */

static int has_word(const char *p, size_t n, const char *w) {
  size_t wl = strlen(w);
  for (size_t i = 0; i + wl <= n; i++)
    if (str_ieq(p + i, wl, w, wl)) return 1;
  return 0;
}

static int64_t retry_after(struct aigw_req *r) {
  const hdr *h = hdrs_get(&r->uresp.hdrs, "retry-after-ms", 14);
  int ms = 1;
  if (!h) {
    h = hdrs_get(&r->uresp.hdrs, "retry-after", 11);
    ms = 0;
  }
  if (!h || !h->value.n || h->value.n > 15) return -1;
  char buf[16];
  memcpy(buf, h->value.p, h->value.n);
  buf[h->value.n] = 0;
  char *end;
  double v = strtod(buf, &end);
  if (end == buf || *end || !(v >= 0) || v > 1e9) return -1; /* an HTTP date: not honoured */
  return (int64_t)(ms ? v : v * 1000.0);
}

int balance_classify(struct aigw_req *r, int64_t *ra_ms) {
  int st = r->uresp.status;
  const char *b = r->uresp.body ? r->uresp.body : "";
  size_t n = r->uresp.body_len;
  *ra_ms = -1;
  if (st >= 400) {
    *ra_ms = retry_after(r);
    if (st == 400 || st == 413 || st == 422) {
      size_t k = n > 8192 ? 8192 : n;
      if (has_word(b, k, "context_length_exceeded") || has_word(b, k, "prompt is too long") ||
          has_word(b, k, "maximum context length") || has_word(b, k, "exceeds the maximum number of tokens") ||
          has_word(b, k, "too many input tokens") || has_word(b, k, "input is too long") ||
          has_word(b, k, "context window"))
        return OUT_CONTEXT;
      if (has_word(b, k, "content_filter") || has_word(b, k, "content_policy_violation") ||
          has_word(b, k, "content management policy") || has_word(b, k, "responsibleaipolicyviolation"))
        return OUT_CONTENT;
    }
    return OUT_STATUS;
  }
  if (st < 200 || st >= 300) return OUT_OK;
  aigw_api api = r->route->api;
  if (api != AIGW_API_CHAT && api != AIGW_API_MESSAGES && api != AIGW_API_RESPONSES && api != AIGW_API_EMBEDDINGS)
    return OUT_OK;
  /* a 2xx JSON API answer must be an object, and not an error object */
  size_t i = 0, e = n;
  while (i < n && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t')) i++;
  while (e > i && (b[e - 1] == ' ' || b[e - 1] == '\n' || b[e - 1] == '\r' || b[e - 1] == '\t')) e--;
  if (e - i < 2 || b[i] != '{' || b[e - 1] != '}') return OUT_MALFORMED;
  i++;
  while (i < e && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t')) i++;
  if (e - i >= 7 && !memcmp(b + i, "\"error\"", 7)) return OUT_MALFORMED;
  if (e - i >= 6 && !memcmp(b + i, "\"type\"", 6)) {
    /* Anthropic's error shape: {"type":"error", ...} */
    const char *v;
    size_t vn;
    if (jscan_member(b, n, "type", &v, &vn) == 1 && vn == 7 && !memcmp(v, "\"error\"", 7)) return OUT_MALFORMED;
  }
  return OUT_OK;
}

/* ---- admin ---- */

static void admin_target(jsonw *w, const cfg_route *rt, const cfg_target *t) {
  jw_obj_begin(w);
  jw_kcstr(w, "name", t->name);
  if (t->provider) {
    tstate *s = t->st;
    jw_kcstr(w, "provider", t->provider->name);
    jw_kcstr(w, "model", t->model);
    jw_kint(w, "weight", t->weight);
    jw_kint(w, "priority", t->priority);
    uint32_t tot = 0, fails = 0;
    int st;
    uint64_t opened;
    pthread_mutex_lock(&s->mu);
    window_sum(s, &rt->breaker, now_ms(), &tot, &fails);
    st = s->bstate;
    opened = s->opened_ms;
    pthread_mutex_unlock(&s->mu);
    if (st == 1 && now_ms() - opened >= rt->breaker.cooldown_ms) st = 2; /* the next request probes */
    static const char *const names[] = {"closed", "open", "half_open"};
    jw_kcstr(w, "state", rt->breaker.enabled ? names[st] : "closed");
    jw_kbool(w, "breaker", rt->breaker.enabled);
    if (st == 1) jw_kint(w, "open_for_ms", (long long)(now_ms() - opened));
    jw_kint(w, "window_attempts", tot);
    jw_kint(w, "window_failures", fails);
    jw_kint(w, "inflight", atomic_load(&s->inflight));
    uint64_t e = atomic_load(&s->ewma_us);
    if (e) jw_knum(w, "latency_ewma_ms", (double)(e / 10) / 100.0);
    else jw_kcstr(w, "latency_ewma_ms", NULL);
    jw_kint(w, "attempts_total", (long long)atomic_load(&s->n_attempts));
    jw_kint(w, "failures_total", (long long)atomic_load(&s->n_failures));
    if (t->context_window) jw_kint(w, "context_window", (long long)t->context_window);
  } else {
    static const char *const sn[] = {"priority", "weighted", "round_robin", "least_inflight", "latency", "cost", "hash"};
    jw_kcstr(w, "strategy", sn[t->strategy]);
    jw_key(w, "targets");
    jw_arr_begin(w);
    for (size_t i = 0; i < t->nkids; i++) admin_target(w, rt, &t->kids[i]);
    jw_arr_end(w);
  }
  jw_obj_end(w);
}

void balance_admin_json(jsonw *w, const cfg_gen *g) {
  static const char *const sn[] = {"priority", "weighted", "round_robin", "least_inflight", "latency", "cost", "hash"};
  jw_arr_begin(w);
  for (size_t k = 0; k < g->nroutes; k++) {
    const cfg_route *rt = &g->routes[k];
    jw_obj_begin(w);
    jw_kcstr(w, "route", rt->name);
    jw_kcstr(w, "strategy", sn[rt->strategy]);
    jw_key(w, "targets");
    jw_arr_begin(w);
    for (size_t i = 0; i < rt->ntargets; i++) admin_target(w, rt, &rt->targets[i]);
    jw_arr_end(w);
    jw_obj_end(w);
  }
  jw_arr_end(w);
}

/* ---- stream continuation (fallback.stream_continue) ----
 * A stream that breaks after its first byte reached the client goes on on the next target: the
 * text the client already has becomes an assistant prefill, the new stream's start events (chat:
 * the role chunk; messages: message_start and the opening of the text block) are dropped, its
 * block indexes and chunk ids are made the client's, and the rest is spliced into the same client
 * stream. Not possible once a tool-call delta went out (a half tool call cannot be resumed). */

static int cont_append(struct aigw_req *r, const char *p, size_t n) {
  if (r->cont_len + n + 1 > r->cont_cap) {
    size_t cap = r->cont_cap ? r->cont_cap * 2 : 1024;
    while (cap < r->cont_len + n + 1) cap *= 2;
    char *nb = realloc(r->cont_text, cap);
    if (!nb) return -1;
    r->cont_text = nb;
    r->cont_cap = cap;
  }
  memcpy(r->cont_text + r->cont_len, p, n);
  r->cont_len += n;
  r->cont_text[r->cont_len] = 0;
  return 0;
}

void cont_observe(struct aigw_req *r, aigw_event *ev) {
  if (ev->kind == AIGW_EV_TOOL_DELTA) r->cont_tool = 1;
  aigw_api api = r->route->api;
  cJSON *j = event_json(ev);
  if (!j) return;
  if (api == AIGW_API_MESSAGES) {
    cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "type");
    const char *t = cJSON_IsString(ty) ? ty->valuestring : "";
    cJSON *ix = cJSON_GetObjectItemCaseSensitive(j, "index");
    if (!strcmp(t, "content_block_start")) {
      cJSON *cb = cJSON_GetObjectItemCaseSensitive(j, "content_block");
      cJSON *cty = cJSON_GetObjectItemCaseSensitive(cb, "type");
      if (cJSON_IsNumber(ix)) r->cont_block = ix->valueint;
      r->cont_block_open = cJSON_IsString(cty) && !strcmp(cty->valuestring, "text");
      if (cJSON_IsString(cty) && strcmp(cty->valuestring, "text") && strcmp(cty->valuestring, "thinking") &&
          strcmp(cty->valuestring, "redacted_thinking"))
        r->cont_tool = 1; /* tool_use, server tools: cannot be resumed */
    } else if (!strcmp(t, "content_block_stop")) {
      r->cont_block_open = 0;
    } else if (!strcmp(t, "content_block_delta")) {
      cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "delta");
      cJSON *tx = cJSON_GetObjectItemCaseSensitive(d, "text");
      if (cJSON_IsString(tx)) cont_append(r, tx->valuestring, strlen(tx->valuestring));
    }
    return;
  }
  if (!r->cont_id[0]) {
    cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (cJSON_IsString(id) && strlen(id->valuestring) < sizeof r->cont_id) strcpy(r->cont_id, id->valuestring);
  }
  cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
  cJSON *d = cJSON_GetObjectItemCaseSensitive(ch, "delta");
  cJSON *tx = cJSON_GetObjectItemCaseSensitive(d, "content");
  if (cJSON_IsString(tx)) cont_append(r, tx->valuestring, strlen(tx->valuestring));
  cJSON *tc = cJSON_GetObjectItemCaseSensitive(d, "tool_calls");
  if (cJSON_GetArraySize(tc) > 0) r->cont_tool = 1;
}

/* The continuation's first text: the whitespace the prefill lost is already at the client. */
static void cont_first_text(struct aigw_req *r, aigw_event *ev, cJSON *t) {
  if (!cJSON_IsString(t) || !t->valuestring[0] || r->cont_text_seen) return;
  r->cont_text_seen = 1;
  if (!r->cont_ws) return;
  const char *p = t->valuestring;
  while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
  if (p == t->valuestring) return;
  char *c = strdup(p);
  if (!c) return;
  cJSON_free(t->valuestring);
  t->valuestring = c;
  ev->changed = 1;
}

int cont_filter(struct aigw_req *r, aigw_event *ev) {
  aigw_api api = r->route->api;
  cJSON *j = event_json(ev);
  if (!j) return 0;
  if (api == AIGW_API_MESSAGES) {
    cJSON *ty = cJSON_GetObjectItemCaseSensitive(j, "type");
    const char *t = cJSON_IsString(ty) ? ty->valuestring : "";
    if (!strcmp(t, "message_start") || !strcmp(t, "ping")) return 1;
    cJSON *ix = cJSON_GetObjectItemCaseSensitive(j, "index");
    if (!cJSON_IsNumber(ix)) return 0;
    if (!r->cont_idx_set && !strcmp(t, "content_block_start")) {
      cJSON *cty = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "content_block"), "type");
      int text = cJSON_IsString(cty) && !strcmp(cty->valuestring, "text");
      r->cont_idx_set = 1;
      if (text && r->cont_block_open) {
        r->cont_idx_off = r->cont_block - ix->valueint; /* the client's open text block goes on */
        return 1;
      }
      r->cont_idx_off = r->cont_block + 1 - ix->valueint; /* a new block after the client's last */
    }
    if (!r->cont_idx_set) return 0;
    if (!strcmp(t, "content_block_delta"))
      cont_first_text(r, ev, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "delta"), "text"));
    if (r->cont_idx_off) {
      cJSON_SetNumberValue(ix, ix->valueint + r->cont_idx_off);
      ev->changed = 1;
    }
    return 0;
  }
  /* chat chunks: drop the role-only opening chunk, keep the client's chunk id */
  cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
  cJSON *d = cJSON_GetObjectItemCaseSensitive(ch, "delta");
  cJSON *fr = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
  cJSON *tx = cJSON_GetObjectItemCaseSensitive(d, "content");
  cJSON *rs = cJSON_GetObjectItemCaseSensitive(d, "reasoning_content");
  int empty = ch && !(cJSON_IsString(tx) && tx->valuestring[0]) && !cJSON_GetObjectItemCaseSensitive(d, "tool_calls") &&
              !(cJSON_IsString(rs) && rs->valuestring[0]) && !cJSON_IsString(fr) &&
              !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "usage"));
  if (empty && !r->cont_idx_set) return 1;
  r->cont_idx_set = 1;
  cont_first_text(r, ev, tx);
  cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
  if (r->cont_id[0] && cJSON_IsString(id) && strcmp(id->valuestring, r->cont_id)) {
    cJSON_ReplaceItemInObjectCaseSensitive(j, "id", cJSON_CreateString(r->cont_id));
    ev->changed = 1;
  }
  return 0;
}

int cont_prefill(struct aigw_req *r) {
  cJSON *j = msg_json(r, &r->ureq);
  cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
  if (!cJSON_IsArray(msgs)) return 0;
  /* trailing whitespace: Anthropic refuses a final assistant turn that ends with it */
  size_t n = r->cont_len;
  while (n && (r->cont_text[n - 1] == ' ' || r->cont_text[n - 1] == '\n' || r->cont_text[n - 1] == '\t' ||
               r->cont_text[n - 1] == '\r'))
    n--;
  r->cont_ws = n < r->cont_len;
  r->cont_text_seen = 0;
  cJSON *m = cJSON_CreateObject();
  char *txt = malloc(n + 1);
  if (!m || !txt) {
    cJSON_Delete(m);
    free(txt);
    return -1;
  }
  memcpy(txt, r->cont_text, n);
  txt[n] = 0;
  cJSON_AddStringToObject(m, "role", "assistant");
  cJSON_AddStringToObject(m, "content", txt);
  free(txt);
  cJSON_AddItemToArray(msgs, m);
  r->ureq.dirty = 1;
  return 0;
}

/* ---- hedged requests (route "hedge") ----
 * When the parent's attempt has no first byte after the delay (fixed, or the target's observed
 * p95), a child request -- a transfer-only copy with no client and no plugin hooks -- sends the same
 * request to the next target of the plan. The first 2xx first byte wins: a winning child pauses its
 * transfer, keeps the bytes it read, and the parent adopts the transfer on its next loop turn (the
 * primary is cancelled, outcome "hedged"); a parent whose own first byte comes first cancels the
 * child. A child that fails is recorded as an attempt; if the parent failed first and waits for it,
 * the parent takes the child's answer through its normal path (retries, errors). The child's memory
 * (its arena holds what the adopted transfer points at) lives until the parent ends. */

static void hedge_event(struct aigw_req *r, void (*fn)(evutil_socket_t, short, void *), uint32_t delay_ms) {
  if (r->hedge_ev_set) event_del(&r->hedge_ev);
  event_assign(&r->hedge_ev, r->w->base, -1, 0, fn, r);
  if (delay_ms) {
    struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000)};
    evtimer_add(&r->hedge_ev, &tv);
  } else {
    event_active(&r->hedge_ev, EV_TIMEOUT, 1);
  }
  r->hedge_ev_set = 1;
  r->hedge_timer_set = delay_ms != 0;
}

static void hedge_child_release(struct aigw_req *c) {
  upstream_abort(c);
  calls_cancel_all(c);
  if (c->provider_rctx) req_provider_done(c); /* not when the parent adopted the adapter's state */
}

void hedge_stop(struct aigw_req *r) {
  if (r->hedge_ev_set) {
    event_del(&r->hedge_ev);
    r->hedge_ev_set = 0;
  }
  if (r->hedge) hedge_child_release(r->hedge);
}

/* After the parent's provider on_done: an adopted adapter's state lives in the child's arena. */
void hedge_free(struct aigw_req *r) {
  struct aigw_req *c = r->hedge;
  if (!c) return;
  r->hedge = NULL;
  hedge_child_release(c);
  req_free_internal(c);
}

static void hedge_fail_child(struct aigw_req *r, int outcome, int status);

static void on_hedge_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct aigw_req *r = arg;
  r->hedge_ev_set = r->hedge_timer_set = 0;
  const cfg_route *rt = r->route;
  if (r->ended || r->hedge || r->up_got_first_byte || !balance_open(r) || r->client_gone) return;
  uint32_t budget = rt->retry.attempts ? rt->retry.attempts : r->nplan;
  if (r->nattempts >= budget) return;
  /* the next target of the plan whose breaker lets it through (the same one on a one-target plan) */
  const cfg_target *t = NULL;
  int allow = 0;
  for (size_t k = 1; k <= r->nplan; k++) {
    const cfg_target *c = rt->leaves[r->plan[(r->plan_pos + k) % r->nplan]];
    if ((allow = breaker_allow(rt, c))) {
      t = c;
      break;
    }
  }
  if (!t) return;
  struct aigw_req *c = req_new_internal(r->w);
  if (!c) return;
  c->serial = r->serial;
  snprintf(c->id, sizeof c->id, "%.60s~h", r->id);
  c->gen = r->gen;
  c->route = rt;
  c->method = r->method;
  c->target_uri = r->target_uri;
  c->path = r->path;
  c->is_stream = r->is_stream;
  c->creq.hdrs = r->creq.hdrs;     /* borrowed, read-only: the parent outlives the child */
  c->creq.body = r->creq.body;     /* the client's body after the request hooks */
  c->creq.body_len = r->creq.body_len;
  c->meta = r->meta;               /* the parent's metadata, read-only (new entries go in front) */
  c->creds = r->creds;             /* the parent's provider credentials, borrowed (wiped by the parent) */
  c->hedge_parent = r;
  c->target = t;
  c->provider = t->provider;
  c->tmo = t->timeouts;
  c->phase = PH_UPSTREAM;
  r->hedge = c;
  int idx = add_attempt(r, t, allow == 2, 1);
  if (idx < 0) {
    r->hedge = NULL;
    req_free_internal(c);
    return;
  }
  r->hedge_att = idx;
  if (r->deadline_us) {
    uint64_t now = now_us();
    uint32_t left = r->deadline_us > now ? (uint32_t)((r->deadline_us - now + 999) / 1000) : 1;
    if (!c->tmo.first_byte_ms || c->tmo.first_byte_ms > left) c->tmo.first_byte_ms = left;
    if (!c->tmo.total_ms || c->tmo.total_ms > left) c->tmo.total_ms = left;
  }
  log_msg(AIGW_LOG_INFO, "request %s: no first byte from %s yet: hedging on %s", r->id, r->att[r->cur_att].t->name, t->name);
  if (req_build_upstream(c) < 0 || (t->params && req_apply_params(c, t->params) < 0)) {
    hedge_fail_child(r, OUT_CONNECT, 0);
    return;
  }
  aigw_status st = req_run_prepare(c);
  if (st != AIGW_CONTINUE || c->responded || c->local_reply || c->hedge_state == 2) {
    log_msg(AIGW_LOG_INFO, "request %s: no hedge: the adapter of %s %s (%s)", r->id, t->name,
            st == AIGW_PAUSE ? "must wait (async prepare)" : c->local_reply ? "answers itself" : "refused the request",
            c->error ? c->error : c->cresp.body ? c->cresp.body : "no message");
    /* an adapter that must wait (token fetch), answers itself or refuses: no hedge this time */
    hedge_fail_child(r, OUT_CONNECT, 0);
    return;
  }
  c->up_step = 2;
  if (c->ureq.dirty && msg_serialize(c, &c->ureq) < 0) {
    hedge_fail_child(r, OUT_CONNECT, 0);
    return;
  }
  if (upstream_start(c) < 0 || c->hedge_state == 2) hedge_fail_child(r, OUT_CONNECT, 0);
}

void hedge_arm(struct aigw_req *r) {
  const cfg_route *rt = r->route;
  if (!rt->hedge || r->hedge || r->hedge_parent || r->cont_active || r->local_reply || !balance_open(r)) return;
  uint32_t d = rt->hedge_delay_ms;
  if (!d) {
    d = balance_p95_ms(r->att[r->cur_att].t);
    if (!d) d = rt->hedge_max_ms; /* no samples yet: hedge only very slow answers */
    if (d < rt->hedge_min_ms) d = rt->hedge_min_ms;
    if (d > rt->hedge_max_ms) d = rt->hedge_max_ms;
  }
  hedge_event(r, on_hedge_timer, d);
}

/* The child failed (or could not start) while the parent still races: record it and drop it. */
static void hedge_fail_child(struct aigw_req *r, int outcome, int status) {
  struct aigw_req *c = r->hedge;
  if (c) {
    c->hedge_state = 2;
    hedge_child_release(c);
  }
  close_att(r, r->hedge_att, outcome, status);
  r->hedge_att = -1;
}

static void on_hedge_cancel(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct aigw_req *r = arg;
  r->hedge_ev_set = 0;
  if (!r->hedge || r->hedge->hedge_state >= 2 || r->waiting_hedge) return;
  r->hedge->hedge_state = 2;
  hedge_child_release(r->hedge);
  close_att(r, r->hedge_att, OUT_HEDGED, 0);
  r->hedge_att = -1;
}

/* The parent's own answer is coming (a 2xx first byte) and it is not waiting for the hedge. */
static int parent_winning(const struct aigw_req *r) {
  return r->up_got_first_byte && r->uresp.status >= 200 && r->uresp.status < 300 && !r->waiting_hedge;
}

void hedge_first_byte(struct aigw_req *r) {
  if (r->uresp.status < 200 || r->uresp.status >= 300) return; /* an error answer does not win the race */
  if (r->hedge_timer_set) { /* the delay has not passed: no hedge at all */
    event_del(&r->hedge_ev);
    r->hedge_ev_set = r->hedge_timer_set = 0;
  }
  if (r->hedge && r->hedge->hedge_state == 0) hedge_event(r, on_hedge_cancel, 0); /* not inside this callback */
}

static void on_hedge_adopt(evutil_socket_t fd, short what, void *arg);

size_t hedge_child_body(struct aigw_req *c, const char *p, size_t n) {
  struct aigw_req *r = c->hedge_parent;
  if (c->hedge_state >= 2 || r->ended) return 0;
  if (!c->hedge_buf && !(c->hedge_buf = evbuffer_new())) return 0;
  if (evbuffer_get_length(c->hedge_buf) + n > (64u << 20)) return 0;
  evbuffer_add(c->hedge_buf, p, n);
  if (!c->up_got_first_byte) {
    c->up_got_first_byte = 1;
    c->t_up_first = now_us();
    if (c->uresp.status >= 200 && c->uresp.status < 300) {
      /* the first answer: hold it and hand the transfer to the parent */
      c->hedge_state = 1;
      if (c->up_timer_set) {
        evtimer_del(&c->up_timer);
        c->up_timer_set = 0;
      }
      c->up_paused = 1;
      if (c->easy) curl_easy_pause(c->easy, CURLPAUSE_RECV); /* allowed inside the callback: the data is consumed */
      if (!parent_winning(r)) hedge_event(r, on_hedge_adopt, 0);
      else hedge_event(r, on_hedge_cancel, 0);
    }
  }
  return n;
}

void hedge_child_done(struct aigw_req *c, CURLcode rc, const char *msg) {
  struct aigw_req *r = c->hedge_parent;
  (void)msg;
  c->t_up_end = now_us();
  upstream_abort(c);
  if (c->hedge_state >= 2 || r->ended) return;
  c->hedge_rc = rc;
  if (c->hedge_state == 1 || (rc == CURLE_OK && c->uresp.status >= 200 && c->uresp.status < 300)) {
    c->hedge_state = 3; /* a complete answer (the adoption may already be scheduled) */
    if (!parent_winning(r)) hedge_event(r, on_hedge_adopt, 0);
    return;
  }
  /* a failure: an error status (buffered) or a transport error */
  c->hedge_state = 3;
  if (r->waiting_hedge) {
    hedge_event(r, on_hedge_adopt, 0); /* the parent answers through its normal path */
    return;
  }
  int timeout = rc == CURLE_OPERATION_TIMEDOUT || c->timeout_kind;
  int64_t ra = -1;
  int out = rc != CURLE_OK ? (timeout ? OUT_TIMEOUT : OUT_CONNECT) : OUT_STATUS;
  if (rc == CURLE_OK) {
    if (c->hedge_buf) {
      c->uresp.body_len = evbuffer_get_length(c->hedge_buf);
      c->uresp.body = (char *)evbuffer_pullup(c->hedge_buf, -1);
    }
    out = balance_classify(c, &ra);
    if (out == OUT_OK) out = OUT_STATUS;
    c->uresp.body = NULL;
    c->uresp.body_len = 0;
  }
  hedge_fail_child(r, out, c->uresp.status);
}

int hedge_wait(struct aigw_req *r) {
  struct aigw_req *c = r->hedge;
  if (!c || c->hedge_state == 2) return 0;
  r->waiting_hedge = 1;
  if (c->hedge_state == 1 || c->hedge_state == 3) hedge_event(r, on_hedge_adopt, 0);
  return 1;
}

/* The parent takes the child's transfer (or its finished answer) and goes on with it. */
static void on_hedge_adopt(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct aigw_req *r = arg;
  r->hedge_ev_set = 0;
  struct aigw_req *c = r->hedge;
  if (!c || c->hedge_state == 2 || r->ended) return;
  if (parent_winning(r)) { /* the primary answered first after all */
    c->hedge_state = 2;
    hedge_child_release(c);
    close_att(r, r->hedge_att, OUT_HEDGED, 0);
    r->hedge_att = -1;
    return;
  }
  if (balance_open(r)) close_attempt(r, OUT_HEDGED, 0); /* the primary loses */
  attempt_reset(r);                                      /* its transfer, adapter state and buffers */
  /* move the child's transfer and upstream exchange over */
  r->easy = c->easy, c->easy = NULL;
  r->curl_hdrs = c->curl_hdrs, c->curl_hdrs = NULL;
  r->up_active = c->up_active, c->up_active = 0;
  r->ureq = c->ureq;
  memset(&c->ureq, 0, sizeof c->ureq);
  r->uresp = c->uresp;
  memset(&c->uresp, 0, sizeof c->uresp);
  r->upstream_url = c->upstream_url;
  r->provider = c->provider;
  r->target = c->target;
  r->provider_rctx = c->provider_rctx, c->provider_rctx = NULL;
  calls_move(c, r); /* the adapter's pending call-outs follow its state */
  r->tmo = c->tmo;
  r->t_up_start = c->t_up_start;
  r->total_deadline_us = c->total_deadline_us;
  r->timeout_kind = c->timeout_kind;
  r->cur_att = r->hedge_att;
  r->hedge_att = -1;
  r->waiting_hedge = 0;
  r->phase = PH_UPSTREAM;
  r->up_step = 2;
  for (size_t k = 0; k < r->nplan; k++)
    if (r->route->leaves[r->plan[k]] == r->target) {
      r->plan_pos = (uint8_t)k;
      r->tries_here = 1;
      break;
    }
  if (c->upc) {
    upconn *u = c->upc;
    c->upc = NULL;
    upc_set_owner(u, r, &r->upc);
  }
  if (r->easy) {
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
  }
  int done = c->hedge_state == 3;
  size_t n = c->hedge_buf ? evbuffer_get_length(c->hedge_buf) : 0;
  if (n) {
    const char *p = (const char *)evbuffer_pullup(c->hedge_buf, -1);
    size_t got = upstream_on_body(r, p, n);
    if (r->ended) return;
    if (got != n) {
      upstream_transfer_done(r, CURLE_WRITE_ERROR, NULL);
      return;
    }
    evbuffer_drain(c->hedge_buf, n);
  }
  if (done) {
    upstream_transfer_done(r, c->hedge_rc, c->hedge_rc == CURLE_OK ? NULL : c->error);
    return;
  }
  r->up_paused = 1;
  upstream_unpause(r);
}

/* ---- active health checks (health.c runs them; worker 0 only) ---- */

int balance_health_due(const cfg_target *t, uint64_t now, uint32_t interval_ms) {
  tstate *s = t->st;
  if (s->hc_inflight || (s->hc_last_ms && now - s->hc_last_ms < interval_ms)) return 0;
  s->hc_inflight = 1;
  s->hc_last_ms = now;
  return 1;
}

void balance_health_result(const cfg_route *rt, const cfg_target *t, int ok, uint64_t now) {
  tstate *s = t->st;
  s->hc_inflight = 0;
  pthread_mutex_lock(&s->mu);
  if (ok) {
    s->hc_fails = 0;
    if (s->bstate != 0) {
      publish_state(rt, t, s, 0);
      memset(s->ok, 0, sizeof s->ok);
      memset(s->fail, 0, sizeof s->fail);
      s->probes_out = 0;
      log_msg(AIGW_LOG_INFO, "route %s: target %s closed again (active health check passed)", rt->name, t->name);
    }
  } else {
    s->hc_fails++;
    if (s->hc_fails >= rt->hc_unhealthy) {
      if (s->bstate != 1)
        log_msg(AIGW_LOG_WARN, "route %s: target %s open: %u active health checks failed in a row", rt->name, t->name,
                s->hc_fails);
      publish_state(rt, t, s, 1);
      s->opened_ms = now; /* stays open while the checks fail; a passing check closes it */
    }
  }
  pthread_mutex_unlock(&s->mu);
}
