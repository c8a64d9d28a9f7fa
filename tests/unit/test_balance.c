/* test_balance.c - the balancer's plans (strategies, with a fixed seed) and the circuit breaker's
 * transitions under a simulated clock (core/balance.c). Routes are built by hand: no provider
 * plugin is loaded, the targets only need names, weights, priorities and runtime state. */
#include "core.h"
#include "t.h"

#include <stdlib.h>
#include <string.h>

#define N 4

static cfg_provider prov = {.name = "p"};

typedef struct fixture {
  cfg_route rt;
  cfg_target t[N];
  worker w;
  struct aigw_req r;
} fixture;

static void fx_init(fixture *f, size_t n, int strategy, const uint32_t *weights, const int32_t *prios) {
  memset(f, 0, sizeof *f);
  static char names[N][8];
  f->rt.name = "r";
  f->rt.api = AIGW_API_CHAT;
  f->rt.strategy = strategy;
  f->rt.rstate = balance_state_new();
  for (size_t i = 0; i < n; i++) {
    snprintf(names[i], sizeof names[i], "t%zu", i);
    cfg_target *t = &f->t[i];
    t->provider = &prov;
    t->name = names[i];
    t->weight = weights ? weights[i] : 1;
    t->priority = prios ? prios[i] : 0;
    t->price = -1;
    t->leaf = (uint32_t)i;
    t->mask = 1ull << i;
    t->st = balance_state_new();
    f->rt.leaves[i] = t;
  }
  f->rt.targets = f->t;
  f->rt.ntargets = f->rt.nleaves = n;
  f->w.id = 0;
  f->r.magic = REQ_MAGIC;
  f->r.w = &f->w;
  f->r.route = &f->rt;
  f->r.creq.body = "{}";
  f->r.creq.body_len = 2;
  f->r.est_tokens = -1;
}

static void fx_free(fixture *f) {
  for (size_t i = 0; i < f->rt.nleaves; i++) balance_state_release(f->t[i].st);
  balance_state_release(f->rt.rstate);
}

static int first(fixture *f) {
  f->r.nplan = 0;
  balance_build_plan(&f->r);
  return f->r.nplan ? f->r.plan[0] : -1;
}

static void t_weighted(void) {
  fixture f;
  uint32_t w[] = {1, 2, 7};
  fx_init(&f, 3, STRAT_WEIGHTED, w, NULL);
  int count[3] = {0};
  const int n = 20000;
  for (int i = 0; i < n; i++) {
    int k = first(&f);
    T_CHECK(k >= 0 && k < 3);
    T_EQ_INT(f.r.nplan, 3); /* every target stays in the plan as a fallback */
    if (k >= 0) count[k]++;
  }
  /* 10%, 20%, 70% within 2 points (the seed is fixed: the run is the same each time) */
  T_CHECK(abs(count[0] * 100 / n - 10) <= 2);
  T_CHECK(abs(count[1] * 100 / n - 20) <= 2);
  T_CHECK(abs(count[2] * 100 / n - 70) <= 2);
  fx_free(&f);

  /* weight 0: never first while another has weight, still a fallback */
  uint32_t w0[] = {0, 1};
  fx_init(&f, 2, STRAT_WEIGHTED, w0, NULL);
  for (int i = 0; i < 1000; i++) {
    T_EQ_INT(first(&f), 1);
    T_EQ_INT(f.r.plan[1], 0);
  }
  fx_free(&f);
}

static void t_priority(void) {
  fixture f;
  int32_t pr[] = {2, 0, 1, 0};
  fx_init(&f, 4, STRAT_PRIORITY, NULL, pr);
  for (int i = 0; i < 100; i++) {
    first(&f);
    /* by priority; equal priority and equal weights: config order */
    T_EQ_INT(f.r.plan[0], 1);
    T_EQ_INT(f.r.plan[1], 3);
    T_EQ_INT(f.r.plan[2], 2);
    T_EQ_INT(f.r.plan[3], 0);
  }
  fx_free(&f);
  /* equal priority, different weights: shared by weight */
  uint32_t w[] = {1, 3};
  fx_init(&f, 2, STRAT_PRIORITY, w, NULL);
  int c1 = 0;
  for (int i = 0; i < 8000; i++) c1 += first(&f) == 1;
  T_CHECK(c1 > 5600 && c1 < 6400); /* 75% */
  fx_free(&f);
}

static void t_round_robin(void) {
  fixture f;
  fx_init(&f, 3, STRAT_RR, NULL, NULL);
  int prev = first(&f);
  for (int i = 0; i < 30; i++) {
    int k = first(&f);
    T_EQ_INT(k, (prev + 1) % 3);
    T_EQ_INT(f.r.plan[1], (k + 1) % 3);
    prev = k;
  }
  fx_free(&f);
}

static void t_cost(void) {
  fixture f;
  fx_init(&f, 3, STRAT_COST, NULL, NULL);
  f.t[0].price = 12.5;
  f.t[1].price = 0.75;
  f.t[2].price = -1; /* unknown: last */
  first(&f);
  T_EQ_INT(f.r.plan[0], 1);
  T_EQ_INT(f.r.plan[1], 0);
  T_EQ_INT(f.r.plan[2], 2);
  fx_free(&f);
}

static void t_hash(void) {
  fixture f;
  fx_init(&f, 4, STRAT_HASH, NULL, NULL);
  f.rt.hash_kind = 3;
  f.rt.hash_name = "user";
  char body[64];
  int seen[4] = {0};
  for (int u = 0; u < 200; u++) {
    snprintf(body, sizeof body, "{\"user\":\"user-%d\"}", u);
    f.r.creq.body = body;
    f.r.creq.body_len = strlen(body);
    int a = first(&f);
    uint8_t plan1[4];
    memcpy(plan1, f.r.plan, 4);
    int b = first(&f);
    T_EQ_INT(a, b);                                /* the same key, the same target */
    T_CHECK(memcmp(plan1, f.r.plan, 4) == 0);      /* and the same fallback order */
    if (a >= 0) seen[a]++;
  }
  for (int i = 0; i < 4; i++) T_CHECK(seen[i] > 20); /* keys spread over every target */
  fx_free(&f);
}

static void t_breaker(void) {
  fixture f;
  fx_init(&f, 2, STRAT_PRIORITY, NULL, NULL);
  f.rt.breaker = (cfg_breaker){1, 0.5, 4, 10000, 5000, 1};
  const cfg_target *a = &f.t[0];
  uint64_t now = 1000000;
  /* closed: 1 ok + 2 failures = 3 attempts, under min_requests: stays closed */
  balance_breaker_record_at(&f.rt, a, 0, 1, 1, now);
  balance_breaker_record_at(&f.rt, a, 0, 1, 0, now + 10);
  balance_breaker_record_at(&f.rt, a, 0, 1, 0, now + 20);
  T_EQ_INT(balance_breaker_state(a), 0);
  T_EQ_INT(balance_breaker_allow_at(&f.rt, a, now + 30), 1);
  /* the 4th attempt fails: 3 of 4 >= 0.5 -> open */
  balance_breaker_record_at(&f.rt, a, 0, 1, 0, now + 40);
  T_EQ_INT(balance_breaker_state(a), 1);
  T_EQ_INT(balance_breaker_allow_at(&f.rt, a, now + 50), 0);
  T_EQ_INT(balance_breaker_allow_at(&f.rt, a, now + 40 + 4999), 0);
  /* cool-down over: half-open, one probe, a second request is refused */
  T_EQ_INT(balance_breaker_allow_at(&f.rt, a, now + 40 + 5000), 2);
  T_EQ_INT(balance_breaker_state(a), 2);
  T_EQ_INT(balance_breaker_allow_at(&f.rt, a, now + 40 + 5001), 0);
  /* the probe fails: open again for another cool-down */
  balance_breaker_record_at(&f.rt, a, 1, 1, 0, now + 6000);
  T_EQ_INT(balance_breaker_state(a), 1);
  T_EQ_INT(balance_breaker_allow_at(&f.rt, a, now + 6000 + 4000), 0);
  T_EQ_INT(balance_breaker_allow_at(&f.rt, a, now + 6000 + 5000), 2);
  /* the probe succeeds: closed, window cleared (one failure does not reopen it) */
  balance_breaker_record_at(&f.rt, a, 1, 1, 1, now + 11001);
  T_EQ_INT(balance_breaker_state(a), 0);
  balance_breaker_record_at(&f.rt, a, 0, 1, 0, now + 11002);
  T_EQ_INT(balance_breaker_state(a), 0);
  T_EQ_INT(balance_breaker_allow_at(&f.rt, a, now + 11003), 1);
  /* old failures leave the window: 4 failures spread over more than window_ms never open it */
  fixture g;
  fx_init(&g, 1, STRAT_PRIORITY, NULL, NULL);
  g.rt.breaker = (cfg_breaker){1, 0.5, 4, 10000, 5000, 1};
  for (int i = 0; i < 8; i++) balance_breaker_record_at(&g.rt, &g.t[0], 0, 1, 0, now + (uint64_t)i * 6000);
  T_EQ_INT(balance_breaker_state(&g.t[0]), 0);
  /* outcomes that do not count (a client's 400, a cancelled attempt) never open it */
  for (int i = 0; i < 10; i++) balance_breaker_record_at(&g.rt, &g.t[0], 0, 0, 0, now + 60000);
  T_EQ_INT(balance_breaker_state(&g.t[0]), 0);
  fx_free(&g);
  fx_free(&f);
}

int main(void) {
  setenv("AIGW_SEED", "42", 1);
  observe_init();
  T_RUN(t_weighted);
  T_RUN(t_priority);
  T_RUN(t_round_robin);
  T_RUN(t_cost);
  T_RUN(t_hash);
  T_RUN(t_breaker);
  return T_END();
}
