/* limits.c - request, token and cost limits and budgets, "reserve, then settle".
 *
 *   {"name": "limits", "config": {"limits": [
 *     {"name": "rpm",    "by": ["consumer"], "requests": 60,          "window_s": 60},
 *     {"name": "tokens", "by": ["team"],     "total_tokens": 100000,  "window_s": 3600},
 *     {"name": "budget", "by": ["consumer"], "cost_usd": 50,          "window_s": 2592000, "soft": 0.8}
 *   ]}}
 *
 * A limit counts one measure (requests, input_tokens, output_tokens, total_tokens, cost_usd) per
 * value of its "by" dimensions (consumer, team, tier, route, model, header:<name>,
 * metadata:<key>; none = one global counter) over a sliding window of window_s seconds, in the
 * host store (in-process, or Redis: every node shares it). A limit whose dimension is missing on a
 * request does not apply to it.
 *
 * Before the call each applicable limit RESERVES the request's estimate atomically
 * (h->store_reserve): 1 request; input tokens = the prompt's raw JSON bytes / 4; output =
 * the request's max_tokens (max_completion_tokens, max_output_tokens), else default_output_tokens;
 * cost = the model catalog's price of that estimate (micro-USD counters). Concurrent requests can
 * never push a counter past its limit, on any number of workers or nodes. When the real usage is
 * known (the response, or the stream's final event) the reservation is SETTLED: the difference is
 * added (negative refunds). A refused reservation refunds the others of the request and answers
 * 429 in the client's format naming the limit, its window and when it resets, with retry-after.
 * Every answer carries x-ratelimit-limit/remaining/reset-requests and -tokens (the tightest limit
 * of each kind); a limit with "soft" (a fraction) adds x-aigw-limit-warning and a log field once
 * its total passes that share.
 *
 * A request's identity may carry its own value for a limit: metadata "limit.<name>" (a number; USD
 * for cost), set by keyauth from a consumer's "limits", by jwt from a claim, or by a script; it
 * replaces the configured value for that request (the counter stays the same).
 *
 * Store trouble: "fail_open" (default true) lets the request through; false answers 503.
 * Instance immutable after create; per-request state in rctx (request memory). */
#include <aigw/plugin.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const aigw_host *H;

enum { M_REQUESTS, M_INPUT, M_OUTPUT, M_TOTAL, M_COST };
static const char *const measure_names[] = {"requests", "input_tokens", "output_tokens", "total_tokens", "cost_usd"};
#define MAX_LIMITS 16
#define MAX_DIMS 4

typedef struct lim {
  char *name;
  char *dims[MAX_DIMS]; size_t ndims;
  int measure;
  int64_t limit;     /* cost in micro-USD */
  uint64_t window_ms;
  double soft;       /* 0 = none */
  int fail_open;
} lim;

typedef struct lim_inst {
  lim l[MAX_LIMITS]; size_t n;
  int64_t default_output;
  uint32_t m_refused, m_store_err, m_warn; /* aigw_plugin_limits_*_total{limit} */
} lim_inst;

struct lim_ctx;
typedef struct lim_one {
  struct lim_ctx *x;   /* back to the request's context (the reserve callback's ud is the slot) */
  int on;              /* applies to this request */
  char key[240];
  int64_t reserved;
  int64_t limit;       /* the limit for this request: the config's, or the identity's override */
  int admitted;        /* the reservation went in */
  int64_t total;       /* the counter after it */
} lim_one;

typedef struct lim_ctx {
  lim_inst *in;
  int pending;
  int refused;         /* index of a refusing limit, -1 */
  int failed;          /* a store error on a fail-closed limit */
  int64_t est_in, est_out;
  char model[200];
  int settled;
  lim_one one[];       /* in->n slots */
} lim_ctx;

static void lim_destroy(void *vi) {
  lim_inst *in = vi;
  if (!in) return;
  for (size_t i = 0; i < in->n; i++) {
    free(in->l[i].name);
    for (size_t k = 0; k < in->l[i].ndims; k++) free(in->l[i].dims[k]);
  }
  free(in);
}

static int dim_ok(const char *d) {
  return !strcmp(d, "consumer") || !strcmp(d, "team") || !strcmp(d, "tier") || !strcmp(d, "route") ||
         !strcmp(d, "model") || (!strncmp(d, "header:", 7) && d[7]) || (!strncmp(d, "metadata:", 9) && d[9]);
}

static void *lim_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d) {
  (void)h;
  lim_inst *in = calloc(1, sizeof *in);
  if (!in) return NULL;
  in->default_output = 256;
  int bad = 0;
  const aigw_json *ls = cfg ? H->json_get(cfg, "limits") : NULL;
  const aigw_json *dv = cfg ? H->json_get(cfg, "default_output_tokens") : NULL;
  double v;
  if (dv && (H->json_num(dv, &v) != AIGW_OK || v < 1 || v > 1e7)) {
    H->diag_error(d, "/default_output_tokens", "must be a number of tokens (1-10000000)");
    bad = 1;
  } else if (dv) {
    in->default_output = (int64_t)v;
  }
  for (size_t i = 0; cfg && i < H->json_len(cfg); i++) {
    aigw_str k;
    H->json_key_at(cfg, i, &k);
    if (!(k.n == 6 && !memcmp(k.p, "limits", 6)) && !(k.n == 21 && !memcmp(k.p, "default_output_tokens", 21))) {
      H->diag_error(d, "", "unknown option '%.*s' (known: limits, default_output_tokens)", (int)(k.n > 60 ? 60 : k.n), k.p);
      bad = 1;
    }
  }
  if (!ls || H->json_type(ls) != AIGW_JSON_ARRAY || !H->json_len(ls) || H->json_len(ls) > MAX_LIMITS) {
    H->diag_error(d, "/limits", "required: an array of 1 to %d limits, e.g. [{\"name\": \"rpm\", \"by\": [\"consumer\"], "
                                "\"requests\": 60, \"window_s\": 60}]", MAX_LIMITS);
    lim_destroy(in);
    return NULL;
  }
  for (size_t i = 0; i < H->json_len(ls); i++) {
    const aigw_json *e = H->json_at(ls, i);
    lim *l = &in->l[in->n++];
    char p[64], q[96];
    snprintf(p, sizeof p, "/limits/%zu", i);
    aigw_str s;
    if (H->json_str(H->json_get(e, "name"), &s) != AIGW_OK || !s.n || s.n > 60) {
      snprintf(q, sizeof q, "%s/name", p);
      H->diag_error(d, q, "required: the limit's name (1-60 bytes; it appears in 429 answers and logs)");
      bad = 1;
      continue;
    }
    l->name = malloc(s.n + 1);
    if (!l->name) goto nomem;
    memcpy(l->name, s.p, s.n);
    l->name[s.n] = 0;
    for (size_t k = 0; k + 1 < in->n; k++)
      if (!strcmp(in->l[k].name, l->name)) {
        snprintf(q, sizeof q, "%s/name", p);
        H->diag_error(d, q, "limit '%s' is defined twice", l->name);
        bad = 1;
      }
    l->measure = -1;
    int nmeas = 0;
    for (int m = 0; m <= M_COST; m++) {
      const aigw_json *mv = H->json_get(e, measure_names[m]);
      if (!mv) continue;
      nmeas++;
      snprintf(q, sizeof q, "%s/%s", p, measure_names[m]);
      if (H->json_num(mv, &v) != AIGW_OK || !(v > 0) || v > 9e15) {
        H->diag_error(d, q, "must be a positive number");
        bad = 1;
        continue;
      }
      l->measure = m;
      l->limit = m == M_COST ? (int64_t)llround(v * 1e6) : (int64_t)v;
    }
    if (nmeas != 1) {
      H->diag_error(d, p, "a limit counts exactly one of: requests, input_tokens, output_tokens, total_tokens, cost_usd");
      bad = 1;
    }
    snprintf(q, sizeof q, "%s/window_s", p);
    if (H->json_num(H->json_get(e, "window_s"), &v) != AIGW_OK || v < 1 || v > 366.0 * 86400) {
      H->diag_error(d, q, "required: the window in seconds (1 s to 366 days)");
      bad = 1;
    } else {
      l->window_ms = (uint64_t)(v * 1000);
    }
    const aigw_json *sv = H->json_get(e, "soft");
    if (sv && (H->json_num(sv, &l->soft) != AIGW_OK || !(l->soft > 0) || l->soft >= 1)) {
      snprintf(q, sizeof q, "%s/soft", p);
      H->diag_error(d, q, "must be a fraction of the limit (0 < soft < 1) at which answers carry a warning");
      bad = 1;
    }
    int fo = 1;
    const aigw_json *fv = H->json_get(e, "fail_open");
    if (fv && H->json_bool(fv, &fo) != AIGW_OK) {
      snprintf(q, sizeof q, "%s/fail_open", p);
      H->diag_error(d, q, "must be true or false");
      bad = 1;
    }
    l->fail_open = fo;
    const aigw_json *by = H->json_get(e, "by");
    if (by) {
      if (H->json_type(by) != AIGW_JSON_ARRAY || H->json_len(by) > MAX_DIMS) {
        snprintf(q, sizeof q, "%s/by", p);
        H->diag_error(d, q, "must be an array of at most %d dimensions", MAX_DIMS);
        bad = 1;
      } else {
        for (size_t k = 0; k < H->json_len(by); k++) {
          snprintf(q, sizeof q, "%s/by/%zu", p, k);
          if (H->json_str(H->json_at(by, k), &s) != AIGW_OK || s.n > 100) {
            H->diag_error(d, q, "must be a dimension name");
            bad = 1;
            continue;
          }
          char *dn = malloc(s.n + 1);
          if (!dn) goto nomem;
          memcpy(dn, s.p, s.n);
          dn[s.n] = 0;
          l->dims[l->ndims++] = dn;
          if (!dim_ok(dn)) {
            H->diag_error(d, q, "unknown dimension '%s' (consumer, team, tier, route, model, header:<name>, metadata:<key>)", dn);
            bad = 1;
          }
        }
      }
    }
    for (size_t k = 0; k < H->json_len(e); k++) {
      aigw_str key;
      H->json_key_at(e, k, &key);
      static const char *const known[] = {"name", "by", "window_s", "soft", "fail_open", "requests", "input_tokens",
                                          "output_tokens", "total_tokens", "cost_usd"};
      int ok = 0;
      for (size_t j = 0; j < sizeof known / sizeof *known; j++) ok |= key.n == strlen(known[j]) && !memcmp(key.p, known[j], key.n);
      if (!ok) {
        snprintf(q, sizeof q, "%s", p);
        H->diag_error(d, q, "unknown key '%.*s' in a limit", (int)(key.n > 60 ? 60 : key.n), key.p);
        bad = 1;
      }
    }
  }
  static const char *const labels[] = {"limit", NULL};
  if ((in->m_refused = H->metric_define(d, AIGW_METRIC_COUNTER, "limits_refused_total",
                                        "Requests refused (429) by the limits plugin, by limit", labels)) == UINT32_MAX ||
      (in->m_store_err = H->metric_define(d, AIGW_METRIC_COUNTER, "limits_store_errors_total",
                                          "Store calls of the limits plugin that failed (then fail_open decides), by limit",
                                          labels)) == UINT32_MAX ||
      (in->m_warn = H->metric_define(d, AIGW_METRIC_COUNTER, "limits_warnings_total",
                                     "Answers past a limit's soft share (x-aigw-limit-warning), by limit", labels)) == UINT32_MAX)
    bad = 1;
  if (bad) {
    lim_destroy(in);
    return NULL;
  }
  return in;
nomem:
  H->diag_error(d, "", "out of memory");
  lim_destroy(in);
  return NULL;
}

/* One dimension's value for this request; 0 when missing. */
static int dim_value(aigw_req *r, const char *dname, lim_ctx *x, aigw_str *out) {
  if (!strcmp(dname, "route")) return H->meta_get(r, "aigw.route", out) == AIGW_OK && out->n;
  if (!strcmp(dname, "model")) {
    *out = (aigw_str){x->model, strlen(x->model)};
    return out->n > 0;
  }
  if (!strncmp(dname, "header:", 7))
    return H->header(r, AIGW_CLIENT_REQUEST, (aigw_str){dname + 7, strlen(dname + 7)}, out) == AIGW_OK && out->n;
  if (!strncmp(dname, "metadata:", 9)) return H->meta_get(r, dname + 9, out) == AIGW_OK && out->n;
  return H->meta_get(r, dname, out) == AIGW_OK && out->n; /* consumer, team, tier (keyauth) */
}

static int64_t cost_micro(aigw_req *r, const char *model, int64_t in, int64_t out) {
  aigw_usage u = {sizeof u, in, out, 0, -1, -1};
  double usd = 0;
  if (!model[0] || H->price(r, (aigw_str){model, strlen(model)}, &u, &usd) != AIGW_OK) return -1;
  return (int64_t)ceil(usd * 1e6);
}

static int64_t amount(const lim *l, aigw_req *r, lim_ctx *x, int64_t in, int64_t out) {
  switch (l->measure) {
  case M_REQUESTS: return 1;
  case M_INPUT: return in;
  case M_OUTPUT: return out;
  case M_TOTAL: return in + out;
  default: return cost_micro(r, x->model, in, out);
  }
}

static void fmt_amount(char *b, size_t n, const lim *l, int64_t v) {
  if (l->measure == M_COST) snprintf(b, n, "$%.2f", (double)v / 1e6);
  else snprintf(b, n, "%lld %s", (long long)v, l->measure == M_REQUESTS ? "requests" : measure_names[l->measure]);
}

/* Headers on every answer: the tightest limit of each kind (requests, tokens), and soft warnings. */
static void set_headers(aigw_req *r, lim_ctx *x) {
  lim_inst *in = x->in;
  int best[2] = {-1, -1};
  int64_t rem[2] = {0, 0};
  for (size_t i = 0; i < in->n; i++) {
    const lim *l = &in->l[i];
    if (!x->one[i].on || !x->one[i].admitted || l->measure == M_COST) continue;
    int kind = l->measure == M_REQUESTS ? 0 : 1;
    int64_t left = x->one[i].limit - x->one[i].total;
    if (left < 0) left = 0;
    if (best[kind] < 0 || left < rem[kind]) best[kind] = (int)i, rem[kind] = left;
  }
  for (int kind = 0; kind < 2; kind++) {
    if (best[kind] < 0) continue;
    const lim *l = &in->l[best[kind]];
    char v[32], name[48];
    const char *suf = kind ? "tokens" : "requests";
    snprintf(v, sizeof v, "%lld", (long long)x->one[best[kind]].limit);
    snprintf(name, sizeof name, "x-ratelimit-limit-%s", suf);
    H->set_header(r, AIGW_CLIENT_RESPONSE, (aigw_str){name, strlen(name)}, (aigw_str){v, strlen(v)});
    snprintf(v, sizeof v, "%lld", (long long)rem[kind]);
    snprintf(name, sizeof name, "x-ratelimit-remaining-%s", suf);
    H->set_header(r, AIGW_CLIENT_RESPONSE, (aigw_str){name, strlen(name)}, (aigw_str){v, strlen(v)});
    snprintf(v, sizeof v, "%llus", (unsigned long long)((l->window_ms + 999) / 1000));
    snprintf(name, sizeof name, "x-ratelimit-reset-%s", suf);
    H->set_header(r, AIGW_CLIENT_RESPONSE, (aigw_str){name, strlen(name)}, (aigw_str){v, strlen(v)});
  }
  for (size_t i = 0; i < in->n; i++) {
    const lim *l = &in->l[i];
    if (!x->one[i].on || !x->one[i].admitted || !(l->soft > 0)) continue;
    if ((double)x->one[i].total >= l->soft * (double)x->one[i].limit) {
      char w[160];
      int pct = x->one[i].limit > 0 ? (int)(100.0 * (double)x->one[i].total / (double)x->one[i].limit) : 100;
      snprintf(w, sizeof w, "%s at %d%% of its limit", l->name, pct);
      H->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("x-aigw-limit-warning"), (aigw_str){w, strlen(w)});
      char j[200];
      int n = snprintf(j, sizeof j, "{\"limit\":\"%s\",\"percent\":%d}", l->name, pct);
      H->log_field(r, "limit_warning", (aigw_str){j, (size_t)n});
      aigw_str lv = {l->name, strlen(l->name)};
      H->metric_add(in->m_warn, &lv, 1);
    }
  }
}

static void noop_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud) {
  (void)r, (void)c, (void)st, (void)ud;
}

/* Gives back what this request reserved (a refusal elsewhere, or settling). */
static void refund_all(aigw_req *r, lim_ctx *x) {
  for (size_t i = 0; i < x->in->n; i++) {
    lim_one *o = &x->one[i];
    if (!o->on || !o->admitted || !o->reserved) continue;
    H->store_incr(r, (aigw_str){o->key, strlen(o->key)}, -o->reserved, x->in->l[i].window_ms, noop_done, NULL);
    o->admitted = 0;
  }
}

static void reserve_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud) {
  lim_one *o = ud;
  lim_ctx *x = o->x;
  if (st == AIGW_CALL_CANCELLED) return;
  x->pending--;
  if (st != AIGW_CALL_OK) {
    if (!x->in->l[o - x->one].fail_open) x->failed = 1;
    aigw_str e = {0};
    H->call_error(c, &e);
    H->log(r, AIGW_LOG_WARN, "limits: %s: the store failed (%.*s); %s", x->in->l[o - x->one].name, (int)e.n, e.p,
           x->in->l[o - x->one].fail_open ? "let through" : "refused");
    aigw_str lv = {x->in->l[o - x->one].name, strlen(x->in->l[o - x->one].name)};
    H->metric_add(x->in->m_store_err, &lv, 1);
    o->on = 0;
  } else {
    o->total = H->call_int(c);
    if (H->call_status_code(c) == 200) o->admitted = 1;
    else if (x->refused < 0) x->refused = (int)(o - x->one);
  }
  if (x->pending) return;
  if (x->failed) {
    refund_all(r, x);
    H->respond_error(r, 503, "server_error", "the limits service is unavailable");
    H->resume(r, AIGW_STOP);
    return;
  }
  if (x->refused >= 0) {
    refund_all(r, x);
    const lim *l = &x->in->l[x->refused];
    aigw_str ln = {l->name, strlen(l->name)};
    H->metric_add(x->in->m_refused, &ln, 1);
    char amt[64], used[64], msg[400];
    int64_t lv = x->one[x->refused].limit;
    fmt_amount(amt, sizeof amt, l, lv);
    fmt_amount(used, sizeof used, l, x->one[x->refused].total);
    uint64_t win_s = (l->window_ms + 999) / 1000;
    snprintf(msg, sizeof msg, "limit '%s' reached: %s per %llu s (used %s); it frees up as the window slides, fully within %llu s",
             l->name, amt, (unsigned long long)win_s, used, (unsigned long long)win_s);
    char ra[24];
    snprintf(ra, sizeof ra, "%llu", (unsigned long long)(l->measure == M_REQUESTS && x->one[x->refused].total > 0 && lv > 0
                                                             ? (win_s + (uint64_t)lv - 1) / (uint64_t)lv
                                                             : win_s));
    H->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("retry-after"), (aigw_str){ra, strlen(ra)});
    char j[120];
    int n = snprintf(j, sizeof j, "\"%s\"", l->name);
    H->log_field(r, "limit", (aigw_str){j, (size_t)n});
    H->respond_error(r, 429, "rate_limit_error", msg);
    H->resume(r, AIGW_STOP);
    return;
  }
  set_headers(r, x);
  H->resume(r, AIGW_CONTINUE);
}

/* A positive integer member of the client's body (max_tokens...), or -1. Read raw when it can be. */
static int64_t num_member(aigw_req *r, const char *k) {
  aigw_str raw;
  int rc = H->body_member_raw(r, AIGW_CLIENT_REQUEST, k, &raw);
  if (rc == AIGW_OK) {
    int64_t v = 0;
    size_t i = 0;
    for (; i < raw.n && raw.p[i] >= '0' && raw.p[i] <= '9' && v < 1000000000; i++) v = v * 10 + (raw.p[i] - '0');
    return i && i == raw.n && v > 0 && v < 1000000000 ? v : -1;
  }
  if (rc != AIGW_E_STATE) return -1;
  const aigw_json *j = H->body_member(r, AIGW_CLIENT_REQUEST, k, NULL);
  double v;
  return j && H->json_num(j, &v) == AIGW_OK && v > 0 && v < 1e9 ? (int64_t)v : -1;
}

static aigw_status lim_on_request(void *vi, aigw_req *r, void **rctx) {
  lim_inst *in = vi;
  lim_ctx *x = H->req_alloc(r, sizeof *x + in->n * sizeof(lim_one));
  if (!x) return AIGW_ERROR;
  x->in = in;
  x->refused = -1;
  *rctx = x;
  aigw_str m = {0};
  if (H->meta_get(r, "aigw.target_model", &m) != AIGW_OK || !m.n) {
    aigw_str raw;
    int rc = H->body_member_raw(r, AIGW_CLIENT_REQUEST, "model", &raw);
    if (rc == AIGW_OK && raw.n >= 2 && raw.p[0] == '"' && !memchr(raw.p, '\\', raw.n)) {
      m = (aigw_str){raw.p + 1, raw.n - 2};
    } else {
      const aigw_json *mj = rc == AIGW_E_NOTFOUND ? NULL : H->body_member(r, AIGW_CLIENT_REQUEST, "model", NULL);
      if (!mj || H->json_str(mj, &m) != AIGW_OK) m = (aigw_str){0};
    }
  }
  snprintf(x->model, sizeof x->model, "%.*s", (int)(m.n < sizeof x->model ? m.n : sizeof x->model - 1), m.p ? m.p : "");
  /* the estimate: the prompt's raw JSON bytes / 4 (messages, input, prompt, system; read without
   * parsing the body, so a little over the text's own size), and the output the request allows */
  size_t bytes = 0;
  static const char *const members[] = {"messages", "input", "prompt", "system", "instructions"};
  for (size_t i = 0; i < sizeof members / sizeof *members; i++) {
    aigw_str raw;
    int rc = H->body_member_raw(r, AIGW_CLIENT_REQUEST, members[i], &raw);
    if (rc == AIGW_OK) bytes += raw.n;
    else if (rc == AIGW_E_STATE) {
      aigw_str t; /* the body was parsed or edited already: its text */
      size_t nt = H->text_count(r, AIGW_CLIENT_REQUEST);
      bytes = 0;
      for (size_t k = 0; k < nt; k++)
        if (H->text_get(r, AIGW_CLIENT_REQUEST, k, NULL, &t) == AIGW_OK) bytes += t.n;
      break;
    }
  }
  x->est_in = (int64_t)((bytes + 3) / 4);
  int64_t mo = num_member(r, "max_tokens");
  if (mo < 0) mo = num_member(r, "max_completion_tokens");
  if (mo < 0) mo = num_member(r, "max_output_tokens");
  x->est_out = mo > 0 ? mo : in->default_output;
  for (size_t i = 0; i < in->n; i++) {
    const lim *l = &in->l[i];
    lim_one *o = &x->one[i];
    o->x = x;
    /* the counter's key: "limits:" name, then each dimension's value after a 0x1f separator */
    size_t n = 0, nl = strlen(l->name);
    memcpy(o->key, "limits:", 7), n = 7;
    memcpy(o->key + n, l->name, nl), n += nl; /* names are at most 60 bytes */
    int ok = 1;
    for (size_t k = 0; k < l->ndims && ok; k++) {
      aigw_str v;
      ok = dim_value(r, l->dims[k], x, &v);
      if (!ok) break;
      o->key[n++] = '\x1f';
      if (v.n <= 40) {
        memcpy(o->key + n, v.p, v.n), n += v.n;
      } else { /* a long value (a header the client chose) counts under its 64-bit hash: never skipped */
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t j = 0; j < v.n; j++) h = (h ^ (unsigned char)v.p[j]) * 0x100000001b3ull;
        static const char hx[] = "0123456789abcdef";
        o->key[n++] = '#';
        for (int j = 15; j >= 0; j--) o->key[n++] = hx[(h >> (4 * j)) & 15];
      }
    }
    if (!ok) continue;
    o->key[n] = 0;
    int64_t a = amount(l, r, x, x->est_in, x->est_out);
    if (a < 0) {
      H->log(r, AIGW_LOG_INFO, "limits: %s: model '%s' has no price in the catalog; not counted", l->name, x->model);
      continue;
    }
    o->on = 1;
    o->reserved = a;
    o->limit = l->limit;
    /* the identity may carry its own value for this limit: metadata "limit.<name>" (keyauth's
     * consumer "limits", a jwt claim, a script) */
    char mk[80];
    aigw_str mv;
    snprintf(mk, sizeof mk, "limit.%s", l->name);
    if (H->meta_get(r, mk, &mv) == AIGW_OK && mv.n && mv.n < 32) {
      char nb[32];
      memcpy(nb, mv.p, mv.n);
      nb[mv.n] = 0;
      char *end;
      double v = strtod(nb, &end);
      if (end != nb && !*end && v >= 0 && v < 9e15)
        o->limit = l->measure == M_COST ? (int64_t)llround(v * 1e6) : (int64_t)v;
      else
        H->log(r, AIGW_LOG_WARN, "limits: %s: metadata %s is not a number >= 0; the configured limit applies", l->name, mk);
    }
  }
  for (size_t i = 0; i < in->n; i++) {
    lim_one *o = &x->one[i];
    if (!o->on) continue;
    x->pending++;
    if (!H->store_reserve(r, (aigw_str){o->key, strlen(o->key)}, o->reserved, o->limit, in->l[i].window_ms,
                          reserve_done, o)) {
      x->pending--;
      o->on = 0;
      if (!in->l[i].fail_open) x->failed = 1;
    }
  }
  if (!x->pending) {
    if (x->failed) {
      H->respond_error(r, 503, "server_error", "the limits service is unavailable");
      return AIGW_STOP;
    }
    return AIGW_CONTINUE;
  }
  return AIGW_PAUSE;
}

/* The real usage is known: add the difference to each token and cost counter. */
static void settle(aigw_req *r, lim_ctx *x, int broken) {
  if (!x || x->settled) return;
  x->settled = 1;
  aigw_usage u = {sizeof u, -1, -1, -1, -1, -1};
  H->usage(r, &u);
  for (size_t i = 0; i < x->in->n; i++) {
    const lim *l = &x->in->l[i];
    lim_one *o = &x->one[i];
    if (!o->on || !o->admitted || l->measure == M_REQUESTS) continue;
    int64_t real;
    if (u.input_tokens < 0 && u.output_tokens < 0)
      /* no usage: an error answer generated nothing (give it back); a stream that broke after it
       * started delivered an unknown amount: keep the reservation (never count less than sent) */
      real = broken ? o->reserved : 0;
    else real = amount(l, r, x, u.input_tokens > 0 ? u.input_tokens : 0, u.output_tokens > 0 ? u.output_tokens : 0);
    if (real < 0) real = o->reserved; /* cost no longer priceable: keep the reservation */
    if (broken && u.output_tokens < 0 && real < o->reserved) real = o->reserved; /* output unknown */
    if (real != o->reserved)
      H->store_incr(r, (aigw_str){o->key, strlen(o->key)}, real - o->reserved, l->window_ms, noop_done, NULL);
  }
}

static aigw_status lim_on_response(void *vi, aigw_req *r, void **rctx) {
  (void)vi;
  if (!H->is_stream(r) || H->status(r, AIGW_CLIENT_RESPONSE) >= 400) settle(r, *rctx, 0);
  return AIGW_CONTINUE;
}

static aigw_status lim_on_event(void *vi, aigw_req *r, void **rctx, aigw_event *ev) {
  (void)vi;
  if (H->event_kind(ev) == AIGW_EV_DONE || H->event_kind(ev) == AIGW_EV_ERROR)
    settle(r, *rctx, H->event_kind(ev) == AIGW_EV_ERROR && H->status(r, AIGW_CLIENT_RESPONSE) < 400);
  return AIGW_CONTINUE;
}

static const aigw_plugin lim_plugin = {
    AIGW_PLUGIN_HEADER,
    .name = "limits",
    .version = "0.1.0",
    .priority = 800, /* after identity (keyauth 1000), before the rest */
    .flags = AIGW_WANTS_EVENTS,
    .create = lim_create,
    .destroy = lim_destroy,
    .on_request = lim_on_request,
    .on_response = lim_on_response,
    .on_event = lim_on_event,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  if (!h || h->abi_major != AIGW_ABI_MAJOR || h->abi_minor < 2) {
    snprintf(err, errlen, "limits: needs a host with plugin ABI 1.2 or later (this one: %u.%u)", h ? (unsigned)h->abi_major : 0u,
             h ? (unsigned)h->abi_minor : 0u);
    return NULL;
  }
  H = h;
  return &lim_plugin;
}
