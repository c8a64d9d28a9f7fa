/* balance_bench.c - the balancer's decision cost per request: building the plan (strategy order
 * over the route's targets) and the breaker check for the first target, as balance_begin_attempt
 * does, for each strategy over 10 targets. Prints ns per decision (median of 5 runs of 200k) and,
 * run under valgrind --tool=callgrind, gives instruction counts. Target (issue 4): <= 2 us. */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NT 10

static cfg_provider prov = {.name = "p"};

static uint64_t ns_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int iters = argc > 1 ? atoi(argv[1]) : 200000;
  static const char *const sn[] = {"priority", "weighted", "round_robin", "least_inflight", "latency", "cost", "hash"};
  observe_init();
  setenv("AIGW_SEED", "7", 1);
  printf("strategy        targets  ns/decision (median of 5 x %d)\n", iters);
  for (int strat = 0; strat <= STRAT_HASH; strat++) {
    cfg_route rt;
    cfg_target t[NT];
    static char names[NT][8];
    memset(&rt, 0, sizeof rt);
    memset(t, 0, sizeof t);
    rt.name = "bench";
    rt.api = AIGW_API_CHAT;
    rt.strategy = strat;
    rt.rstate = balance_state_new();
    rt.breaker = (cfg_breaker){1, 0.5, 10, 30000, 15000, 1};
    if (strat == STRAT_HASH) rt.hash_kind = 3, rt.hash_name = "user";
    for (int i = 0; i < NT; i++) {
      snprintf(names[i], sizeof names[i], "t%d", i);
      t[i] = (cfg_target){.provider = &prov, .name = names[i], .weight = (uint32_t)(1 + i % 3), .priority = i / 4,
                          .price = 0.5 + i, .leaf = (uint32_t)i, .mask = 1ull << i, .st = balance_state_new()};
      rt.leaves[i] = &t[i];
    }
    rt.targets = t;
    rt.ntargets = rt.nleaves = NT;
    worker w;
    memset(&w, 0, sizeof w);
    struct aigw_req *r = calloc(1, sizeof *r);
    r->magic = REQ_MAGIC;
    r->w = &w;
    r->route = &rt;
    static const char body[] = "{\"model\":\"gpt-4o-mini\",\"user\":\"user-1234\",\"messages\":[]}";
    r->creq.body = (char *)body;
    r->creq.body_len = sizeof body - 1;
    uint64_t runs[5];
    int sink = 0;
    for (int k = 0; k < 5; k++) {
      uint64_t t0 = ns_now();
      for (int i = 0; i < iters; i++) {
        r->nplan = 0;
        r->est_tokens = -1;
        balance_build_plan(r);
        sink += balance_breaker_allow_at(&rt, rt.leaves[r->plan[0]], 1000);
      }
      runs[k] = ns_now() - t0;
    }
    qsort(runs, 5, sizeof *runs, cmp);
    printf("%-15s %7d  %8.0f   (sink %d)\n", sn[strat], NT, (double)runs[2] / iters, sink & 1);
    free(r);
    for (int i = 0; i < NT; i++) balance_state_release(t[i].st);
    balance_state_release(rt.rstate);
  }
  return 0;
}
