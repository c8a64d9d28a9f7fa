/* lua.c - the `lua` plugin: per-route Lua 5.4 scripts with request, response, stream-event and log
 * hooks, and an `aigw` Lua API over the host services (docs: plugins/lua/README.md).
 *
 * Config: {"script": "path.lua"} or {"inline": "...", "name": "label"}, plus "config" (any JSON,
 * given to the script as aigw.config), "max_instructions" (per hook invocation, default 1e6),
 * "max_memory_mb" (per Lua state, default 16) and "metrics" ({name: {type, help, labels}}, defined
 * at load; the script adds to them with aigw.metric).
 *
 * STATES AND THREADS.  Instances are created on the main thread; hooks run on workers. ABI 1.0
 * tells a plugin nothing about which worker it runs on, so each instance keeps ONE LUA STATE PER
 * WORKER THREAD, created lazily on the thread's first request that needs it and found again
 * through a small thread-local cache keyed by (instance address, instance nonce). The nonce (64
 * random bits from getrandom) makes a cache entry left behind by a destroyed instance never match
 * a new instance allocated at the same address. A state is used only by the thread that created
 * it (lstate.owner), so nothing inside a state is locked. Every state of an instance is also on
 * the instance's list (linst.states, guarded by linst.mu) so that destroy - on the main thread,
 * after the config generation's last request ended, so no worker can still use a state - closes
 * them all. A reload creates new instances and so new states; the old ones go with the old
 * generation.
 *
 * A state whose memory budget ran out is RETIRED: new requests on that worker get a fresh state;
 * the old one is closed by its worker when the last request pinned to it ends (lreq pins its
 * state for the request's whole life: the request's `ctx` table lives there).
 *
 * COROUTINES.  Every hook invocation runs in a coroutine of the worker's state. aigw.http,
 * aigw.sleep and aigw.store.* start the host's async call and yield; on_request returns PAUSE;
 * the call's done callback resumes the coroutine and, when the script returns, calls h->resume
 * with the hook's result. A CANCELLED callback (the request ended first) drops the coroutine
 * without running any more script. Response, event and log hooks cannot pause in ABI 1.0 (the
 * host ignores PAUSE there), so a wait in them is a script error with a message saying so.
 *
 * BUDGETS.  Instructions: lsb count hook, per hook invocation, counted across resumes (the count
 * left is saved in the request while it waits). Memory: per state (lsandbox's allocator). Any
 * failure - error, budget - fails that request: 500 in the client's format (h->respond_error) in
 * request/response hooks, the stream's error event in event hooks, and a log line
 * "lua: <script>:<line>: <message>". The worker and the state live on (a state out of memory is
 * replaced, see above).
 *
 * PROTECTION.  Every Lua API call that can allocate runs inside lua_pcall or lua_resume, so a
 * memory error never reaches Lua's panic handler.
 *
 * OWNERSHIP.  linst: calloc'd by create, freed by destroy, with everything it points to (source,
 * names, config text, metrics, states). lstate: calloc'd on a worker, owned by linst.states until
 * closed (destroy, or its worker when retired and unpinned). lreq: request memory (h->req_alloc),
 * freed by the host with the request; the Lua references it holds (ctx table, coroutine) are
 * released in on_done or when the coroutine ends. Strings from the host are borrowed and copied
 * into Lua before the hook returns. */
#include <aigw/plugin.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lsandbox.h"

static const aigw_host *H; /* set once by aigw_plugin_entry before any instance exists */

enum { HK_REQUEST, HK_RESPONSE, HK_EVENT, HK_LOG, HK_N };
static const char *const HOOK_FN[HK_N] = {"on_request", "on_response", "on_event", "on_log"};
static const char *const HOOK_NAME[HK_N] = {"on_request", "on_response", "on_event", "on_log"};

enum { W_NONE, W_HTTP, W_SLEEP, W_INCR, W_GET, W_SET };

#define LUA_DEFAULT_INSTRUCTIONS 1000000
#define LUA_DEFAULT_MEMORY_MB 16
#define LUA_MAX_SCRIPT_BYTES (4u << 20)
#define LUA_IDLE_COROUTINES 8
#define LUA_TL_SLOTS 8
#define LUA_MAX_LABELS 8
#define LUA_STORE_PREFIX "lua:"

typedef struct lmetric {
  char *name; /* owned */
  uint32_t id;
  int nlabels;
} lmetric;

typedef struct lstate lstate;

typedef struct linst {
  char *src;       /* owned: the script's text */
  size_t srclen;
  char *chunkname; /* owned: "=" + display name (Lua shows it verbatim) */
  const char *script; /* chunkname + 1 */
  char *config_json;  /* owned: the "config" member as JSON text, or NULL */
  size_t mem_limit;
  int64_t max_ins;
  int has[HK_N]; /* the script defines this hook (found by the load-time probe) */
  lmetric *metrics; /* owned array */
  size_t nmetrics;
  uint64_t nonce;
  pthread_mutex_t mu; /* guards the list `states` (not the states themselves) */
  lstate *states;     /* owned list: every worker's states */
} linst;

typedef struct lreq lreq;

struct lstate {
  lsb_state *sb;   /* owned; sb->user == this */
  linst *inst;     /* borrowed: outlives every state */
  pthread_t owner; /* the worker thread that created it; immutable */
  int fn_ref[HK_N]; /* registry refs of the hook functions (LUA_NOREF when absent) */
  int refs;         /* requests pinned to this state (owner thread only) */
  int retired;      /* out of memory: no new requests; closed when refs drops to 0 (owner only) */
  lstate *next;     /* linst.states, under linst.mu */
  /* the invocation running now (owner thread only; NULL/0 between invocations) */
  aigw_req *r;
  lreq *q;
  aigw_event *ev;
  int hook;
  /* finished coroutines kept for reuse: threads and their registry refs */
  lua_State *idle[LUA_IDLE_COROUTINES];
  int idle_ref[LUA_IDLE_COROUTINES];
  int nidle;
};

/* rctx: one per (request, instance), in request memory. */
struct lreq {
  lstate *st;      /* pinned (st->refs) from the first hook to on_done */
  int ctx_ref;     /* registry ref of the request's `ctx` table, or LUA_NOREF */
  lua_State *co;   /* the coroutine of the invocation that is waiting, or NULL */
  int co_ref;      /* its registry ref */
  int hook;        /* the hook that is waiting */
  int64_t ins_left; /* instructions the waiting invocation has left */
  int wait;        /* W_*: what it waits for */
  int want_ref;    /* aigw.http: registry ref of the array of response header names, or LUA_NOREF */
  int responded;   /* the script answered (respond / deny) in this invocation */
};

/* ---- thread-local state lookup --------------------------------------------------------------- */

typedef struct tl_slot {
  const linst *inst;
  uint64_t nonce;
  lstate *st;
} tl_slot;
static _Thread_local tl_slot tl_cache[LUA_TL_SLOTS];
static _Thread_local unsigned tl_next;

static void tl_forget(lstate *st) {
  for (int i = 0; i < LUA_TL_SLOTS; i++)
    if (tl_cache[i].st == st) tl_cache[i] = (tl_slot){NULL, 0, NULL};
}

static int install_api(lua_State *L);
static void state_close(lstate *st);

/* Unlinks st from its instance and closes it. Main thread (destroy) or st's owner. */
static void state_free(lstate *st) {
  lsb_free(st->sb); /* runs no script: the sandbox refuses __gc */
  free(st);
}

static void state_close(lstate *st) {
  linst *in = st->inst;
  pthread_mutex_lock(&in->mu);
  for (lstate **pp = &in->states; *pp; pp = &(*pp)->next)
    if (*pp == st) {
      *pp = st->next;
      break;
    }
  pthread_mutex_unlock(&in->mu);
  tl_forget(st);
  state_free(st);
}

typedef struct setup_args {
  lstate *st;
  char err[512];
} setup_args;

/* Protected: the aigw API, the script's top level, the hook functions. */
static int state_setup(lua_State *L) {
  setup_args *a = lua_touserdata(L, 1);
  lstate *st = a->st;
  lua_pushcfunction(L, install_api);
  lua_pushlightuserdata(L, st->inst);
  lua_call(L, 1, 0);
  if (lsb_load_run(st->sb, st->inst->src, st->inst->srclen, st->inst->chunkname, a->err, sizeof a->err) != 0)
    return 0;
  for (int i = 0; i < HK_N; i++) {
    lua_pushglobaltable(L);
    lua_pushstring(L, HOOK_FN[i]);
    if (lua_rawget(L, -2) == LUA_TFUNCTION) {
      st->fn_ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  return 0;
}

static lstate *state_new(linst *in, char *err, size_t errlen) {
  lstate *st = calloc(1, sizeof *st);
  if (!st) return snprintf(err, errlen, "out of memory"), NULL;
  st->inst = in;
  st->owner = pthread_self();
  for (int i = 0; i < HK_N; i++) st->fn_ref[i] = LUA_NOREF;
  st->sb = lsb_new(in->mem_limit, in->max_ins);
  if (!st->sb) {
    free(st);
    snprintf(err, errlen, "%s: cannot create a Lua state (memory budget too small?)", in->script);
    return NULL;
  }
  st->sb->user = st;
  setup_args a = {st, ""};
  lua_State *L = st->sb->L;
  lua_pushcfunction(L, state_setup);
  lua_pushlightuserdata(L, &a);
  int rc = lua_pcall(L, 1, 0, 0);
  if (rc != LUA_OK) {
    snprintf(err, errlen, "%s: %s", in->script, rc == LUA_ERRMEM ? "memory budget exceeded while loading" :
             lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "cannot load");
  } else if (a.err[0]) {
    snprintf(err, errlen, "%s", a.err);
  } else {
    return st;
  }
  state_free(st);
  return NULL;
}

/* This worker's state for instance `in` (created on first use). NULL with err on failure. */
static lstate *state_get(linst *in, char *err, size_t errlen) {
  for (int i = 0; i < LUA_TL_SLOTS; i++)
    if (tl_cache[i].inst == in && tl_cache[i].nonce == in->nonce) return tl_cache[i].st;
  pthread_t me = pthread_self();
  lstate *st = NULL;
  pthread_mutex_lock(&in->mu);
  for (lstate *s = in->states; s; s = s->next)
    if (pthread_equal(s->owner, me) && !s->retired) { /* owner first: retired is the owner's */
      st = s;
      break;
    }
  pthread_mutex_unlock(&in->mu);
  if (!st) {
    st = state_new(in, err, errlen);
    if (!st) return NULL;
    pthread_mutex_lock(&in->mu);
    st->next = in->states;
    in->states = st;
    pthread_mutex_unlock(&in->mu);
  }
  tl_cache[tl_next++ % LUA_TL_SLOTS] = (tl_slot){in, in->nonce, st};
  return st;
}

static void state_retire(lstate *st) {
  st->retired = 1;
  tl_forget(st);
  if (st->refs == 0) state_close(st);
}

static void state_unpin(lstate *st) {
  if (--st->refs == 0 && st->retired) state_close(st);
}

/* ---- small helpers ----------------------------------------------------------------------------- */

static lstate *cur(lua_State *L) { return lsb_of(L)->user; }

/* The running invocation's request; a Lua error outside hooks. */
static aigw_req *need_req(lua_State *L, const char *fn) {
  lstate *st = cur(L);
  if (!st || !st->r) luaL_error(L, "%s works only inside a hook", fn);
  return st->r;
}

static aigw_str L_str(lua_State *L, int idx) {
  size_t n;
  const char *p = luaL_checklstring(L, idx, &n);
  return (aigw_str){p, n};
}

static void push_str(lua_State *L, aigw_str s) { lua_pushlstring(L, s.p ? s.p : "", s.n); }

/* The body value at idx as JSON text (a table is encoded, a string is taken as is); leaves the
 * text on the stack top. */
static aigw_str body_text(lua_State *L, int idx, int *is_json) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    *is_json = 0;
    lua_pushvalue(L, idx);
  } else {
    *is_json = 1;
    lsb_json_encode(L, idx);
  }
  size_t n;
  const char *p = lua_tolstring(L, -1, &n);
  return (aigw_str){p, n};
}

static const char *rc_text(int rc) {
  switch (rc) {
  case AIGW_E_INVAL: return "invalid argument";
  case AIGW_E_PHASE: return "not allowed in this phase";
  case AIGW_E_NOTFOUND: return "not found";
  case AIGW_E_NOMEM: return "out of memory";
  case AIGW_E_STATE: return "the request was already answered or ended";
  default: return "failed";
  }
}

static int check_rc(lua_State *L, int rc, const char *fn) {
  if (rc != AIGW_OK) return luaL_error(L, "%s: %s", fn, rc_text(rc));
  return 0;
}

/* ---- aigw.req / aigw.resp: headers and bodies ---------------------------------------------------
 * One set of functions for both; upvalue 1 is the aigw_which. */
static aigw_which up_which(lua_State *L) { return (aigw_which)lua_tointeger(L, lua_upvalueindex(1)); }

static int l_header(lua_State *L) {
  aigw_req *r = need_req(L, "header");
  aigw_str v;
  if (H->header(r, up_which(L), L_str(L, 1), &v) != AIGW_OK) return lua_pushnil(L), 1;
  push_str(L, v);
  return 1;
}

static int l_headers(lua_State *L) {
  aigw_req *r = need_req(L, "headers");
  aigw_which w = up_which(L);
  aigw_str n, v;
  lua_newtable(L);
  char name[256];
  for (size_t i = 0; H->header_at(r, w, i, &n, &v) == AIGW_OK; i++) {
    if (n.n >= sizeof name) continue;
    for (size_t k = 0; k < n.n; k++) name[k] = (char)(n.p[k] >= 'A' && n.p[k] <= 'Z' ? n.p[k] + 32 : n.p[k]);
    lua_pushlstring(L, name, n.n);
    if (lua_rawget(L, -2) == LUA_TSTRING) { /* repeated: "a, b" */
      lua_pushliteral(L, ", ");
      push_str(L, v);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      push_str(L, v);
    }
    lua_pushlstring(L, name, n.n);
    lua_insert(L, -2);
    lua_rawset(L, -3);
  }
  return 1;
}

static int set_or_add_header(lua_State *L, int add) {
  aigw_req *r = need_req(L, add ? "add_header" : "set_header");
  aigw_str name = L_str(L, 1), v = {NULL, 0};
  if (!lua_isnoneornil(L, 2)) {
    luaL_checkany(L, 2);
    v.p = luaL_tolstring(L, 2, &v.n);
  } else if (add) {
    return luaL_error(L, "add_header: a value is required");
  }
  int rc = add ? H->add_header(r, up_which(L), name, v) : H->set_header(r, up_which(L), name, v);
  check_rc(L, rc, add ? "add_header" : "set_header");
  return 0;
}
static int l_set_header(lua_State *L) { return set_or_add_header(L, 0); }
static int l_add_header(lua_State *L) { return set_or_add_header(L, 1); }

static int l_raw_body(lua_State *L) {
  aigw_req *r = need_req(L, "raw_body");
  aigw_str b;
  if (H->body_raw(r, up_which(L), &b) != AIGW_OK) return lua_pushnil(L), 1;
  push_str(L, b);
  return 1;
}

static int l_body(lua_State *L) {
  aigw_req *r = need_req(L, "body");
  aigw_str b;
  if (H->body_raw(r, up_which(L), &b) != AIGW_OK || b.n == 0) return lua_pushnil(L), 1;
  char err[128];
  if (!lsb_json_decode(L, b.p, b.n, err, sizeof err)) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  return 1;
}

static int l_set_body(lua_State *L) {
  aigw_req *r = need_req(L, "set_body");
  luaL_checkany(L, 1);
  int is_json;
  aigw_str t = body_text(L, 1, &is_json);
  check_rc(L, H->set_body(r, up_which(L), t), "set_body");
  return 0;
}

static int l_status(lua_State *L) {
  aigw_req *r = need_req(L, "status");
  lua_pushinteger(L, H->status(r, up_which(L)));
  return 1;
}

static int l_set_status(lua_State *L) {
  aigw_req *r = need_req(L, "set_status");
  check_rc(L, H->set_status(r, AIGW_CLIENT_RESPONSE, (int)luaL_checkinteger(L, 1)), "set_status");
  return 0;
}

static int l_method(lua_State *L) {
  aigw_str s;
  H->method(need_req(L, "method"), &s);
  push_str(L, s);
  return 1;
}

static int l_path(lua_State *L) {
  aigw_str s;
  H->path(need_req(L, "path"), &s);
  push_str(L, s);
  return 1;
}

/* aigw.req.messages() -> {{role=, text=}, ...}: the format-neutral view of the conversation. */
static int l_messages(lua_State *L) {
  aigw_req *r = need_req(L, "messages");
  size_t n = H->text_count(r, AIGW_CLIENT_REQUEST);
  lua_createtable(L, (int)(n < 1000 ? n : 1000), 0);
  for (size_t i = 0; i < n; i++) {
    aigw_str role, text;
    if (H->text_get(r, AIGW_CLIENT_REQUEST, i, &role, &text) != AIGW_OK) break;
    lua_createtable(L, 0, 2);
    push_str(L, role);
    lua_setfield(L, -2, "role");
    push_str(L, text);
    lua_setfield(L, -2, "text");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* aigw.req.set_message(i, text): replaces the text of the i-th part (1-based, as messages()). */
static int l_set_message(lua_State *L) {
  aigw_req *r = need_req(L, "set_message");
  lua_Integer i = luaL_checkinteger(L, 1);
  aigw_str t = L_str(L, 2);
  if (i < 1) return luaL_error(L, "set_message: index must be >= 1");
  if (memchr(t.p, 0, t.n)) return luaL_error(L, "set_message: text contains a NUL byte");
  check_rc(L, H->text_set(r, AIGW_CLIENT_REQUEST, (size_t)(i - 1), t), "set_message");
  return 0;
}

/* ---- flow: answer, target, model, meta ------------------------------------------------------- */

/* aigw.respond(status, body [, headers]): body a table (JSON) or a string. */
static int l_respond(lua_State *L) {
  aigw_req *r = need_req(L, "aigw.respond");
  lstate *st = cur(L);
  int status = (int)luaL_checkinteger(L, 1);
  if (lua_isnoneornil(L, 2)) {
    lua_pushliteral(L, "");
    lua_replace(L, 2);
  }
  lua_settop(L, 3);
  int is_json;
  aigw_str body = body_text(L, 2, &is_json);
  aigw_str ctype = is_json ? AIGW_STR("application/json") : AIGW_STR("text/plain; charset=utf-8");
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
        aigw_str k, v;
        k.p = lua_tolstring(L, -2, &k.n);
        v.p = lua_tolstring(L, -1, &v.n);
        if (k.n == 12 && strncasecmp(k.p, "content-type", 12) == 0) ctype = v;
        else check_rc(L, H->set_header(r, AIGW_CLIENT_RESPONSE, k, v), "aigw.respond (header)");
      }
      lua_pop(L, 1);
    }
  }
  check_rc(L, H->respond(r, status, ctype, body), "aigw.respond");
  st->q->responded = 1;
  return 0;
}

static const char *default_err_type(int status) {
  switch (status) {
  case 400: return "invalid_request_error";
  case 401: return "authentication_error";
  case 403: return "permission_error";
  case 404: return "not_found_error";
  case 413: return "request_too_large";
  case 429: return "rate_limit_error";
  default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

/* aigw.deny(status, message [, type]): an error in the client's format (OpenAI or Anthropic). */
static int l_deny(lua_State *L) {
  aigw_req *r = need_req(L, "aigw.deny");
  lstate *st = cur(L);
  int status = (int)luaL_checkinteger(L, 1);
  const char *msg = luaL_checkstring(L, 2);
  const char *type = luaL_optstring(L, 3, default_err_type(status));
  if (status < 400 || status > 599) return luaL_error(L, "aigw.deny: status must be 400..599");
  check_rc(L, H->respond_error(r, status, type, msg), "aigw.deny");
  st->q->responded = 1;
  return 0;
}

/* aigw.set_target(name [, only]): pins the route's target (metadata route.target). */
static int l_set_target(lua_State *L) {
  aigw_req *r = need_req(L, "aigw.set_target");
  check_rc(L, H->meta_set(r, "route.target", L_str(L, 1)), "aigw.set_target");
  if (lua_toboolean(L, 2)) check_rc(L, H->meta_set(r, "route.target_only", AIGW_STR("1")), "aigw.set_target");
  return 0;
}

static int l_model(lua_State *L) {
  aigw_str v;
  if (H->meta_get(need_req(L, "aigw.model"), "aigw.model", &v) != AIGW_OK || v.n == 0) return lua_pushnil(L), 1;
  push_str(L, v);
  return 1;
}

/* aigw.set_model(name): edits the request body's "model". */
static int l_set_model(lua_State *L) {
  aigw_req *r = need_req(L, "aigw.set_model");
  aigw_str m = L_str(L, 1);
  aigw_json *j = H->body(r, AIGW_CLIENT_REQUEST);
  if (!j || H->json_type(j) != AIGW_JSON_OBJECT) return luaL_error(L, "aigw.set_model: the request body is not a JSON object");
  check_rc(L, H->json_set_str(j, "model", m), "aigw.set_model");
  H->body_changed(r, AIGW_CLIENT_REQUEST);
  return 0;
}

static int l_meta(lua_State *L) {
  aigw_str v;
  if (H->meta_get(need_req(L, "aigw.meta"), luaL_checkstring(L, 1), &v) != AIGW_OK) return lua_pushnil(L), 1;
  push_str(L, v);
  return 1;
}

static int l_set_meta(lua_State *L) {
  aigw_req *r = need_req(L, "aigw.set_meta");
  const char *k = luaL_checkstring(L, 1);
  luaL_checkany(L, 2);
  aigw_str v;
  v.p = luaL_tolstring(L, 2, &v.n);
  check_rc(L, H->meta_set(r, k, v), "aigw.set_meta");
  return 0;
}

/* aigw.set_credential(provider, key): the key that provider's adapter uses for this request
 * (bring your own key, e.g. from a secrets service through aigw.http); "" removes it. */
static int l_set_credential(lua_State *L) {
  aigw_req *r = need_req(L, "aigw.set_credential");
  aigw_str p, k;
  p.p = luaL_checklstring(L, 1, &p.n);
  k.p = luaL_checklstring(L, 2, &k.n);
  check_rc(L, H->set_credential(r, p, k), "aigw.set_credential");
  return 0;
}

static int l_request_id(lua_State *L) {
  aigw_str v = {"", 0};
  H->meta_get(need_req(L, "aigw.request_id"), "aigw.request_id", &v);
  push_str(L, v);
  return 1;
}

static int l_route(lua_State *L) {
  aigw_str v = {"", 0};
  H->meta_get(need_req(L, "aigw.route"), "aigw.route", &v);
  push_str(L, v);
  return 1;
}

static int l_api(lua_State *L) {
  static const char *const names[] = {"chat", "embeddings", "models", "messages", "responses", "passthrough"};
  aigw_api a = H->api(need_req(L, "aigw.api"));
  lua_pushstring(L, (unsigned)a < 6 ? names[a] : "unknown");
  return 1;
}

static int l_is_stream(lua_State *L) {
  lua_pushboolean(L, H->is_stream(need_req(L, "aigw.is_stream")));
  return 1;
}

static int l_phase(lua_State *L) {
  lstate *st = cur(L);
  if (!st || !st->r) return lua_pushnil(L), 1;
  lua_pushstring(L, HOOK_NAME[st->hook]);
  return 1;
}

static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  return 1;
}

/* ---- logs, log fields, metrics --------------------------------------------------------------- */

static int do_log(lua_State *L, int first, aigw_log_level lv) {
  if (!H->log_enabled(lv)) return 0;
  lstate *st = cur(L);
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = first; i <= n; i++) {
    if (i > first) luaL_addchar(&b, ' ');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  H->log(st ? st->r : NULL, lv, "lua %s: %s", st ? st->inst->script : "?", lua_tostring(L, -1));
  return 0;
}

/* aigw.log([level,] ...): level "debug" | "info" | "warn" | "error" (default info). */
static int l_log(lua_State *L) {
  static const char *const lv[] = {"debug", "info", "warn", "error", NULL};
  if (lua_gettop(L) >= 2 && lua_type(L, 1) == LUA_TSTRING) {
    const char *s = lua_tostring(L, 1);
    for (int i = 0; lv[i]; i++)
      if (strcmp(s, lv[i]) == 0) return do_log(L, 2, (aigw_log_level)i);
  }
  return do_log(L, 1, AIGW_LOG_INFO);
}

static int l_print(lua_State *L) { return do_log(L, 1, AIGW_LOG_INFO); }

/* aigw.log_field(key, value): value (any JSON-able Lua value) into the access-log record. */
static int l_log_field(lua_State *L) {
  aigw_req *r = need_req(L, "aigw.log_field");
  const char *k = luaL_checkstring(L, 1);
  luaL_checkany(L, 2);
  lsb_json_encode(L, 2);
  size_t n;
  const char *t = lua_tolstring(L, -1, &n);
  check_rc(L, H->log_field(r, k, (aigw_str){t, n}), "aigw.log_field");
  return 0;
}

/* aigw.metric(name, value [, {label values...}]) for a metric declared in the plugin config. */
static int l_metric(lua_State *L) {
  lstate *st = cur(L);
  const char *name = luaL_checkstring(L, 1);
  double v = (double)luaL_checknumber(L, 2);
  const lmetric *m = NULL;
  for (size_t i = 0; i < st->inst->nmetrics; i++)
    if (strcmp(st->inst->metrics[i].name, name) == 0) m = &st->inst->metrics[i];
  if (!m) return luaL_error(L, "aigw.metric: '%s' is not declared in the plugin's \"metrics\" config", name);
  aigw_str lab[LUA_MAX_LABELS];
  for (int i = 0; i < m->nlabels; i++) {
    lab[i] = (aigw_str){"", 0};
    if (lua_istable(L, 3)) {
      lua_rawgeti(L, 3, i + 1);
      if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) lab[i].p = lua_tolstring(L, -1, &lab[i].n);
      /* the value stays on the stack (keeps the string alive) */
    }
  }
  H->metric_add(m->id, m->nlabels ? lab : NULL, v);
  return 0;
}

/* ---- stream events --------------------------------------------------------------------------- */

static aigw_event *need_ev(lua_State *L, const char *fn) {
  lstate *st = cur(L);
  if (!st || !st->ev) luaL_error(L, "%s works only inside on_event", fn);
  return st->ev;
}

static int l_ev_kind(lua_State *L) {
  static const char *const k[] = {"other", "delta", "tool_delta", "usage", "stop", "error", "done"};
  aigw_event_kind kind = H->event_kind(need_ev(L, "aigw.event.kind"));
  lua_pushstring(L, (unsigned)kind < 7 ? k[kind] : "other");
  return 1;
}

static int l_ev_name(lua_State *L) {
  aigw_str s = {"", 0};
  H->event_name(need_ev(L, "aigw.event.name"), &s);
  push_str(L, s);
  return 1;
}

static int l_ev_data(lua_State *L) {
  aigw_str s = {"", 0};
  H->event_data(need_ev(L, "aigw.event.data"), &s);
  push_str(L, s);
  return 1;
}

static int l_ev_set_data(lua_State *L) {
  aigw_event *ev = need_ev(L, "aigw.event.set_data");
  luaL_checkany(L, 1);
  int is_json;
  aigw_str t = body_text(L, 1, &is_json);
  check_rc(L, H->event_set_data(ev, t), "aigw.event.set_data");
  return 0;
}

static int l_ev_text(lua_State *L) {
  aigw_str s;
  if (H->event_text(need_ev(L, "aigw.event.text"), &s) != AIGW_OK) return lua_pushnil(L), 1;
  push_str(L, s);
  return 1;
}

static int l_ev_set_text(lua_State *L) {
  aigw_event *ev = need_ev(L, "aigw.event.set_text");
  aigw_str t = L_str(L, 1);
  if (memchr(t.p, 0, t.n)) return luaL_error(L, "aigw.event.set_text: text contains a NUL byte");
  check_rc(L, H->event_set_text(ev, t), "aigw.event.set_text");
  return 0;
}

static int l_ev_json(lua_State *L) {
  aigw_str s = {"", 0};
  H->event_data(need_ev(L, "aigw.event.json"), &s);
  char err[128];
  if (s.n == 0 || !lsb_json_decode(L, s.p, s.n, err, sizeof err)) return lua_pushnil(L), 1;
  return 1;
}

/* aigw.emit(data [, name]): a new event after the current one (data: string or table). */
static int l_emit(lua_State *L) {
  aigw_req *r = need_req(L, "aigw.emit");
  luaL_checkany(L, 1);
  aigw_str name = {"", 0};
  if (!lua_isnoneornil(L, 2)) name = L_str(L, 2);
  int is_json;
  aigw_str t = body_text(L, 1, &is_json);
  check_rc(L, H->emit_event(r, name, t), "aigw.emit");
  return 0;
}

/* aigw.end_stream(message [, type]): ends the client's stream with an error event. */
static int l_end_stream(lua_State *L) {
  aigw_req *r = need_req(L, "aigw.end_stream");
  const char *msg = luaL_checkstring(L, 1);
  const char *type = luaL_optstring(L, 2, "server_error");
  check_rc(L, H->end_stream(r, type, msg), "aigw.end_stream");
  return 0;
}

/* ---- waiting: http, sleep, store ------------------------------------------------------------- */

static void on_call_done(aigw_req *r, aigw_call *c, aigw_call_status cs, void *ud);

/* Checks that the running invocation may wait; returns its lreq. */
static lreq *can_wait(lua_State *L, const char *fn) {
  lstate *st = cur(L);
  need_req(L, fn);
  if (st->hook != HK_REQUEST)
    luaL_error(L, "%s cannot wait in %s: in ABI 1.0 only on_request can pause (response, stream-event and "
                  "log hooks cannot)", fn, HOOK_NAME[st->hook]);
  if (!lua_isyieldable(L)) luaL_error(L, "%s cannot wait here (called through a C function such as a metamethod or table.sort)", fn);
  return st->q;
}

/* aigw.http{url=, method=, headers={name=value}, body=string|table, timeout_ms=,
 *           response_headers={"name", ...}} -> res {status=, body=, headers={}} | nil, err.
 * Waits without blocking the worker (the coroutine yields; on_call_done resumes it). */
static int l_http(lua_State *L) {
  lreq *q = can_wait(L, "aigw.http");
  aigw_req *r = cur(L)->r;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "url");              /* 2 */
  lua_getfield(L, 1, "method");           /* 3 */
  lua_getfield(L, 1, "headers");          /* 4 */
  lua_getfield(L, 1, "body");             /* 5 */
  lua_getfield(L, 1, "timeout_ms");       /* 6 */
  lua_getfield(L, 1, "response_headers"); /* 7 */
  const char *url = lua_tostring(L, 2);
  if (!url) return luaL_error(L, "aigw.http: url is required");
  if (!lua_isnil(L, 3) && !lua_isstring(L, 3)) return luaL_error(L, "aigw.http: method must be a string");
  if (!lua_isnil(L, 4) && !lua_istable(L, 4)) return luaL_error(L, "aigw.http: headers must be a table");
  if (!lua_isnil(L, 7) && !lua_istable(L, 7)) return luaL_error(L, "aigw.http: response_headers must be an array");
  const char *method = lua_tostring(L, 3);
  lua_Integer tmo = lua_isnil(L, 6) ? 10000 : luaL_checkinteger(L, 6);
  if (tmo < 1 || tmo > 600000) return luaL_error(L, "aigw.http: timeout_ms must be 1..600000");
  int is_json = 0;
  aigw_str body = {NULL, 0};
  if (!lua_isnil(L, 5)) body = body_text(L, 5, &is_json); /* 8: the body text (kept on the stack) */
  else lua_pushnil(L);
  size_t nh = 0;
  if (lua_istable(L, 4)) {
    lua_pushnil(L);
    while (lua_next(L, 4)) nh++, lua_pop(L, 1);
  }
  if (nh > 64) return luaL_error(L, "aigw.http: at most 64 headers");
  /* scratch for the header pairs; the strings stay alive in the headers table (slot 4) */
  aigw_str *hv = lua_newuserdatauv(L, sizeof(aigw_str) * 2 * (nh + 1), 0);
  size_t k = 0;
  int has_ctype = 0;
  if (nh) {
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "aigw.http: headers must map names to string values");
      hv[2 * k].p = lua_tolstring(L, -2, &hv[2 * k].n);
      hv[2 * k + 1].p = lua_tolstring(L, -1, &hv[2 * k + 1].n);
      if (hv[2 * k].n == 12 && strncasecmp(hv[2 * k].p, "content-type", 12) == 0) has_ctype = 1;
      k++;
      lua_pop(L, 1);
    }
  }
  if (is_json && !has_ctype) {
    hv[2 * k] = AIGW_STR("content-type");
    hv[2 * k + 1] = AIGW_STR("application/json");
    k++;
  }
  aigw_http_spec spec = {sizeof(aigw_http_spec), method, url, k ? hv : NULL, k, body, (uint32_t)tmo, 0, 0};
  int want = LUA_NOREF;
  if (lua_istable(L, 7)) {
    lua_pushvalue(L, 7);
    want = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  aigw_call *c = H->http_call(r, &spec, on_call_done, q);
  if (!c) {
    luaL_unref(L, LUA_REGISTRYINDEX, want);
    luaL_pushfail(L);
    lua_pushliteral(L, "aigw.http: the call could not be started (bad URL?)");
    return 2;
  }
  q->want_ref = want;
  q->wait = W_HTTP;
  return lua_yield(L, 0);
}

/* aigw.sleep(ms): waits on a host timer. */
static int l_sleep(lua_State *L) {
  lreq *q = can_wait(L, "aigw.sleep");
  lua_Integer ms = luaL_checkinteger(L, 1);
  if (ms < 0 || ms > 600000) return luaL_error(L, "aigw.sleep: ms must be 0..600000");
  if (!H->timer(cur(L)->r, (uint32_t)ms, on_call_done, q)) return luaL_error(L, "aigw.sleep: the timer could not be started");
  q->wait = W_SLEEP;
  return lua_yield(L, 0);
}

/* Store keys are prefixed "lua:" (no clash with other plugins' keys). */
static aigw_str store_key(lua_State *L, int idx) {
  aigw_str k = L_str(L, idx);
  if (k.n == 0 || k.n > 512) luaL_error(L, "aigw.store: a key is 1..512 bytes");
  lua_pushliteral(L, LUA_STORE_PREFIX);
  lua_pushvalue(L, idx);
  lua_concat(L, 2);
  k.p = lua_tolstring(L, -1, &k.n);
  return k;
}

/* aigw.store.incr(key [, by [, window_ms]]) -> the window's total | nil, err */
static int l_store_incr(lua_State *L) {
  lreq *q = can_wait(L, "aigw.store.incr");
  lua_Integer by = luaL_optinteger(L, 2, 1), win = luaL_optinteger(L, 3, 60000);
  if (win < 1) return luaL_error(L, "aigw.store.incr: window_ms must be >= 1");
  aigw_str k = store_key(L, 1);
  if (!H->store_incr(cur(L)->r, k, (int64_t)by, (uint64_t)win, on_call_done, q))
    return luaL_pushfail(L), lua_pushliteral(L, "aigw.store.incr: not started"), 2;
  q->wait = W_INCR;
  return lua_yield(L, 0);
}

/* aigw.store.get(key) -> value | nil (missing) | nil, err */
static int l_store_get(lua_State *L) {
  lreq *q = can_wait(L, "aigw.store.get");
  aigw_str k = store_key(L, 1);
  if (!H->store_get(cur(L)->r, k, on_call_done, q))
    return luaL_pushfail(L), lua_pushliteral(L, "aigw.store.get: not started"), 2;
  q->wait = W_GET;
  return lua_yield(L, 0);
}

/* aigw.store.set(key, value [, ttl_ms]) -> true | nil, err */
static int l_store_set(lua_State *L) {
  lreq *q = can_wait(L, "aigw.store.set");
  luaL_checkany(L, 2);
  lua_Integer ttl = luaL_optinteger(L, 3, 0);
  if (ttl < 0) return luaL_error(L, "aigw.store.set: ttl_ms must be >= 0");
  aigw_str v;
  v.p = luaL_tolstring(L, 2, &v.n);
  aigw_str k = store_key(L, 1);
  if (!H->store_set(cur(L)->r, k, v, (uint64_t)ttl, on_call_done, q))
    return luaL_pushfail(L), lua_pushliteral(L, "aigw.store.set: not started"), 2;
  q->wait = W_SET;
  return lua_yield(L, 0);
}

static int l_json_array(lua_State *L) {
  if (lua_isnoneornil(L, 1)) lua_newtable(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lsb_push_array_mt(L);
  lua_setmetatable(L, 1);
  return 1;
}

/* ---- the aigw table ---------------------------------------------------------------------------- */

static const luaL_Reg aigw_funcs[] = {
    {"respond", l_respond},       {"deny", l_deny},         {"set_target", l_set_target},
    {"model", l_model},           {"set_model", l_set_model}, {"meta", l_meta},
    {"set_meta", l_set_meta},     {"request_id", l_request_id}, {"route", l_route},
    {"set_credential", l_set_credential},
    {"api", l_api},               {"is_stream", l_is_stream}, {"phase", l_phase},
    {"now", l_now},               {"log", l_log},           {"log_field", l_log_field},
    {"metric", l_metric},         {"emit", l_emit},         {"end_stream", l_end_stream},
    {"http", l_http},             {"sleep", l_sleep},       {NULL, NULL}};

static const luaL_Reg msg_funcs[] = {
    {"header", l_header},     {"headers", l_headers}, {"set_header", l_set_header},
    {"add_header", l_add_header}, {"body", l_body},   {"raw_body", l_raw_body},
    {"set_body", l_set_body}, {"status", l_status},   {NULL, NULL}};

static const luaL_Reg event_funcs[] = {
    {"kind", l_ev_kind}, {"name", l_ev_name}, {"data", l_ev_data}, {"set_data", l_ev_set_data},
    {"text", l_ev_text}, {"set_text", l_ev_set_text}, {"json", l_ev_json}, {NULL, NULL}};

static const luaL_Reg store_funcs[] = {
    {"incr", l_store_incr}, {"get", l_store_get}, {"set", l_store_set}, {NULL, NULL}};

static const luaL_Reg json_funcs[] = {
    {"encode", lsb_l_json_encode}, {"decode", lsb_l_json_decode}, {"array", l_json_array}, {NULL, NULL}};

/* Protected: builds the global `aigw` (and print) in a new state. Arg 1: the linst. */
static int install_api(lua_State *L) {
  linst *in = lua_touserdata(L, 1);
  lua_createtable(L, 0, 40);
  luaL_setfuncs(L, aigw_funcs, 0);

  lua_createtable(L, 0, 12); /* aigw.req */
  lua_pushinteger(L, AIGW_CLIENT_REQUEST);
  luaL_setfuncs(L, msg_funcs, 1);
  lua_pushcfunction(L, l_method);
  lua_setfield(L, -2, "method");
  lua_pushcfunction(L, l_path);
  lua_setfield(L, -2, "path");
  lua_pushcfunction(L, l_messages);
  lua_setfield(L, -2, "messages");
  lua_pushcfunction(L, l_set_message);
  lua_setfield(L, -2, "set_message");
  lua_setfield(L, -2, "req");

  lua_createtable(L, 0, 10); /* aigw.resp */
  lua_pushinteger(L, AIGW_CLIENT_RESPONSE);
  luaL_setfuncs(L, msg_funcs, 1);
  lua_pushcfunction(L, l_set_status);
  lua_setfield(L, -2, "set_status");
  lua_setfield(L, -2, "resp");

  luaL_newlib(L, event_funcs);
  lua_setfield(L, -2, "event");
  luaL_newlib(L, store_funcs);
  lua_setfield(L, -2, "store");
  luaL_newlib(L, json_funcs);
  lua_setfield(L, -2, "json");

  lsb_push_null(L);
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, "drop");
  lua_setfield(L, -2, "DROP");
  lua_pushstring(L, in->script);
  lua_setfield(L, -2, "script");

  char err[128];
  if (!in->config_json || !lsb_json_decode(L, in->config_json, strlen(in->config_json), err, sizeof err))
    lua_newtable(L);
  lua_setfield(L, -2, "config");

  lua_setglobal(L, "aigw");
  lua_pushcfunction(L, l_print);
  lua_setglobal(L, "print");
  return 0;
}

/* ---- running hooks ------------------------------------------------------------------------------ */

/* Releases the request's coroutine (never runs script: a suspended coroutine is just dropped). */
static void drop_co(lreq *q) {
  lua_State *L = q->st->sb->L;
  if (q->co_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, q->co_ref);
  if (q->want_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, q->want_ref);
  q->co = NULL;
  q->co_ref = LUA_NOREF;
  q->want_ref = LUA_NOREF;
  q->wait = W_NONE;
}

/* A failed invocation: log line, answer, and the state retired when it ran out of memory. */
static aigw_status fail(lstate *st, aigw_req *r, int hook, const char *msg, const char *where, const char *kind,
                        int out_of_memory) {
  H->log(r, AIGW_LOG_ERROR, "lua: %s", msg);
  if (out_of_memory) state_retire(st); /* still pinned by this request: closed when it ends */
  char client[320];
  snprintf(client, sizeof client, "lua script failed: %s: %s (see the gateway log)",
           where && where[0] ? where : st->inst->script, kind);
  switch (hook) {
  case HK_REQUEST:
  case HK_RESPONSE: H->respond_error(r, 500, "server_error", client); return AIGW_ERROR;
  case HK_EVENT: H->end_stream(r, "server_error", client); return AIGW_ERROR;
  default: return AIGW_CONTINUE;
  }
}

static aigw_status finish(lstate *st, lreq *q, aigw_req *r, int hook, int rc, int nres) {
  lua_State *co = q->co;
  if (rc == LUA_YIELD) return AIGW_PAUSE; /* only request hooks can yield (can_wait) */
  if (rc == LUA_OK) {
    aigw_status s = AIGW_CONTINUE;
    if (hook == HK_EVENT && nres > 0) {
      int i = lua_gettop(co) - nres + 1;
      if ((lua_type(co, i) == LUA_TBOOLEAN && !lua_toboolean(co, i)) ||
          (lua_type(co, i) == LUA_TSTRING && strcmp(lua_tostring(co, i), "drop") == 0))
        s = AIGW_DROP;
    }
    if (hook == HK_REQUEST && q->responded) s = AIGW_STOP;
    lua_settop(co, 0);
    if (st->nidle < LUA_IDLE_COROUTINES && q->want_ref == LUA_NOREF) { /* reuse the thread */
      st->idle[st->nidle] = co;
      st->idle_ref[st->nidle++] = q->co_ref;
      q->co_ref = LUA_NOREF;
    }
    drop_co(q);
    return s;
  }
  char msg[640], where[160];
  const char *kind;
  lsb_error_text(st->sb, co, rc, msg, sizeof msg, &kind, where, sizeof where);
  int oom = !st->sb->ins_hit && (rc == LUA_ERRMEM || st->sb->mem_hit);
  drop_co(q);
  return fail(st, r, hook, msg, where, kind, oom);
}

/* Runs q->co (set up by prep_start or with results pushed) until it returns or waits. */
static aigw_status run(lstate *st, lreq *q, aigw_req *r, aigw_event *ev, int hook, int nargs) {
  lsb_state *sb = st->sb;
  st->r = r;
  st->q = q;
  st->ev = ev;
  st->hook = hook;
  q->hook = hook;
  sb->ins_hit = 0;
  sb->mem_hit = 0;
  sb->ins_left = q->ins_left;
  int nres = 0;
  int rc = lua_resume(q->co, sb->L, nargs, &nres);
  q->ins_left = sb->ins_left;
  st->r = NULL;
  st->q = NULL;
  st->ev = NULL;
  return finish(st, q, r, hook, rc, nres);
}

typedef struct prep_args {
  lstate *st;
  lreq *q;
  int hook;
} prep_args;

/* Protected: a coroutine for the invocation (an idle one or a new one) with the hook function and
 * the request's ctx table pushed. */
static int prep_start(lua_State *L) {
  prep_args *a = lua_touserdata(L, 1);
  lstate *st = a->st;
  lreq *q = a->q;
  if (q->ctx_ref == LUA_NOREF) {
    lua_newtable(L);
    q->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  if (st->nidle) {
    st->nidle--;
    q->co = st->idle[st->nidle];
    q->co_ref = st->idle_ref[st->nidle];
  } else {
    lua_State *co = lua_newthread(L);
    q->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    q->co = co;
  }
  if (!lua_checkstack(q->co, 4)) return luaL_error(L, "not enough memory");
  lua_rawgeti(q->co, LUA_REGISTRYINDEX, st->fn_ref[a->hook]);
  lua_rawgeti(q->co, LUA_REGISTRYINDEX, q->ctx_ref);
  return 0;
}

static aigw_status start(lreq *q, aigw_req *r, aigw_event *ev, int hook) {
  lstate *st = q->st;
  if (st->fn_ref[hook] == LUA_NOREF) return AIGW_CONTINUE;
  lua_State *L = st->sb->L;
  prep_args a = {st, q, hook};
  q->responded = 0;
  q->ins_left = st->inst->max_ins;
  lua_pushcfunction(L, prep_start);
  lua_pushlightuserdata(L, &a);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lua_pop(L, 1);
    drop_co(q);
    char msg[256];
    snprintf(msg, sizeof msg, "%s: memory budget exceeded (%zu KiB) before %s could start", st->inst->script,
             st->inst->mem_limit / 1024, HOOK_NAME[hook]);
    return fail(st, r, hook, msg, st->inst->script, "memory budget exceeded", 1);
  }
  return run(st, q, r, ev, hook, 1);
}

typedef struct done_args {
  lreq *q;
  aigw_call *c;
  aigw_call_status cs;
  int wait;
  int n; /* values pushed */
} done_args;

static const char *call_err(aigw_call *c, aigw_call_status cs, char *buf, size_t n) {
  aigw_str e = {"", 0};
  if (cs == AIGW_CALL_TIMEOUT) return "timeout";
  if (H->call_error(c, &e) == AIGW_OK && e.n) {
    snprintf(buf, n, "%.*s", (int)(e.n > n - 1 ? n - 1 : e.n), e.p);
    return buf;
  }
  return "error";
}

/* Protected, on the main thread: the results of the call, moved onto the coroutine. */
static int push_results(lua_State *L) {
  done_args *a = lua_touserdata(L, 1);
  lreq *q = a->q;
  int base = lua_gettop(L);
  char eb[256];
  aigw_str s;
  if (a->cs != AIGW_CALL_OK && a->wait != W_SLEEP && !(a->wait == W_GET && H->call_status_code(a->c) == 404)) {
    luaL_pushfail(L);
    lua_pushstring(L, call_err(a->c, a->cs, eb, sizeof eb));
  } else {
    switch (a->wait) {
    case W_HTTP:
      lua_createtable(L, 0, 3);
      lua_pushinteger(L, H->call_status_code(a->c));
      lua_setfield(L, -2, "status");
      s = (aigw_str){"", 0};
      H->call_body(a->c, &s);
      push_str(L, s);
      lua_setfield(L, -2, "body");
      lua_newtable(L);
      if (H->call_header(a->c, AIGW_STR("content-type"), &s) == AIGW_OK) {
        push_str(L, s);
        lua_setfield(L, -2, "content-type");
      }
      if (q->want_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, q->want_ref);
        for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
          aigw_str name;
          name.p = lua_tolstring(L, -1, &name.n);
          if (H->call_header(a->c, name, &s) == AIGW_OK) {
            push_str(L, s);
            lua_rawset(L, -4); /* headers[name] = value; pops both */
          } else {
            lua_pop(L, 1);
          }
        }
        lua_pop(L, 2);
      }
      lua_setfield(L, -2, "headers");
      break;
    case W_INCR: lua_pushinteger(L, (lua_Integer)H->call_int(a->c)); break;
    case W_GET:
      if (a->cs != AIGW_CALL_OK) {
        lua_pushnil(L);
      } else {
        s = (aigw_str){"", 0};
        H->call_body(a->c, &s);
        push_str(L, s);
      }
      break;
    case W_SET: lua_pushboolean(L, 1); break;
    default: break; /* sleep: no values */
    }
  }
  a->n = lua_gettop(L) - base;
  if (!lua_checkstack(q->co, a->n + 2)) return luaL_error(L, "not enough memory");
  lua_xmove(L, q->co, a->n);
  return 0;
}

static void on_call_done(aigw_req *r, aigw_call *c, aigw_call_status cs, void *ud) {
  lreq *q = ud;
  lstate *st = q->st;
  int wait = q->wait;
  q->wait = W_NONE;
  if (cs == AIGW_CALL_CANCELLED) { /* the request ended first: drop the coroutine, run nothing */
    drop_co(q);
    return;
  }
  lua_State *L = st->sb->L;
  done_args a = {q, c, cs, wait, 0};
  lua_pushcfunction(L, push_results);
  lua_pushlightuserdata(L, &a);
  aigw_status s;
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lua_pop(L, 1);
    drop_co(q);
    char msg[256];
    snprintf(msg, sizeof msg, "%s: memory budget exceeded (%zu KiB) while resuming on_request", st->inst->script,
             st->inst->mem_limit / 1024);
    s = fail(st, r, HK_REQUEST, msg, st->inst->script, "memory budget exceeded", 1);
  } else {
    if (q->want_ref != LUA_NOREF) {
      luaL_unref(L, LUA_REGISTRYINDEX, q->want_ref);
      q->want_ref = LUA_NOREF;
    }
    s = run(st, q, r, NULL, HK_REQUEST, a.n);
    if (s == AIGW_PAUSE) return; /* waits again */
  }
  H->resume(r, s);
}

/* ---- hooks ------------------------------------------------------------------------------------- */

/* The request's lreq, created (and its state pinned) on first use; NULL after logging why. */
static lreq *lreq_get(linst *in, aigw_req *r, void **rctx) {
  if (rctx && *rctx) return *rctx;
  char err[512];
  lstate *st = state_get(in, err, sizeof err);
  if (!st) {
    H->log(r, AIGW_LOG_ERROR, "lua: %s", err);
    return NULL;
  }
  lreq *q = H->req_alloc(r, sizeof *q);
  if (!q) return NULL;
  q->st = st;
  st->refs++;
  q->ctx_ref = LUA_NOREF;
  q->co_ref = LUA_NOREF;
  q->want_ref = LUA_NOREF;
  if (rctx) *rctx = q;
  return q;
}

static aigw_status no_state(aigw_req *r, linst *in, int hook) {
  char client[256];
  snprintf(client, sizeof client, "lua script %s could not be loaded on this worker (see the gateway log)", in->script);
  if (hook == HK_EVENT) {
    H->end_stream(r, "server_error", client);
    return AIGW_ERROR;
  }
  H->respond_error(r, 500, "server_error", client);
  return AIGW_ERROR;
}

static aigw_status lua_on_request(void *inst, aigw_req *r, void **rctx) {
  linst *in = inst;
  if (!in->has[HK_REQUEST]) return AIGW_CONTINUE;
  lreq *q = lreq_get(in, r, rctx);
  if (!q) return no_state(r, in, HK_REQUEST);
  return start(q, r, NULL, HK_REQUEST);
}

static aigw_status lua_on_response(void *inst, aigw_req *r, void **rctx) {
  linst *in = inst;
  if (!in->has[HK_RESPONSE]) return AIGW_CONTINUE;
  lreq *q = lreq_get(in, r, rctx);
  if (!q) return no_state(r, in, HK_RESPONSE);
  aigw_status s = start(q, r, NULL, HK_RESPONSE);
  return s == AIGW_STOP ? AIGW_CONTINUE : s;
}

static aigw_status lua_on_event(void *inst, aigw_req *r, void **rctx, aigw_event *ev) {
  linst *in = inst;
  if (!in->has[HK_EVENT]) return AIGW_CONTINUE;
  lreq *q = lreq_get(in, r, rctx);
  if (!q) return no_state(r, in, HK_EVENT);
  return start(q, r, ev, HK_EVENT);
}

static void lua_on_done(void *inst, aigw_req *r, void *rctx) {
  linst *in = inst;
  lreq *q = rctx;
  if (in->has[HK_LOG]) {
    if (!q) q = lreq_get(in, r, NULL);
    if (q) start(q, r, NULL, HK_LOG);
  }
  if (!q) return;
  drop_co(q);
  if (q->ctx_ref != LUA_NOREF) luaL_unref(q->st->sb->L, LUA_REGISTRYINDEX, q->ctx_ref);
  q->ctx_ref = LUA_NOREF;
  state_unpin(q->st);
}

/* ---- create / destroy ------------------------------------------------------------------------ */

/* JSON text of a host JSON node (create's config), malloc'd into *b. */
typedef struct sbuf {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
      b->oom = 1;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

static void sb_jstr(sbuf *b, aigw_str s) {
  sb_add(b, "\"", 1);
  for (size_t i = 0; i < s.n; i++) {
    unsigned char c = (unsigned char)s.p[i];
    char e[8];
    if (c == '"' || c == '\\') {
      e[0] = '\\', e[1] = (char)c;
      sb_add(b, e, 2);
    } else if (c < 0x20) {
      snprintf(e, sizeof e, "\\u%04x", c);
      sb_add(b, e, 6);
    } else {
      sb_add(b, (const char *)&s.p[i], 1);
    }
  }
  sb_add(b, "\"", 1);
}

static void sb_json(sbuf *b, const aigw_json *j, int depth) {
  char num[64];
  aigw_str s;
  double d;
  if (depth > 100) {
    b->oom = 1;
    return;
  }
  switch (H->json_type(j)) {
  case AIGW_JSON_NULL: sb_add(b, "null", 4); break;
  case AIGW_JSON_TRUE: sb_add(b, "true", 4); break;
  case AIGW_JSON_FALSE: sb_add(b, "false", 5); break;
  case AIGW_JSON_NUMBER:
    H->json_num(j, &d);
    if (d == (double)(long long)d && d > -1e15 && d < 1e15) snprintf(num, sizeof num, "%lld", (long long)d);
    else snprintf(num, sizeof num, "%.17g", d);
    sb_add(b, num, strlen(num));
    break;
  case AIGW_JSON_STRING:
    H->json_str(j, &s);
    sb_jstr(b, s);
    break;
  case AIGW_JSON_ARRAY:
    sb_add(b, "[", 1);
    for (size_t i = 0; i < H->json_len(j); i++) {
      if (i) sb_add(b, ",", 1);
      sb_json(b, H->json_at(j, i), depth + 1);
    }
    sb_add(b, "]", 1);
    break;
  case AIGW_JSON_OBJECT:
    sb_add(b, "{", 1);
    for (size_t i = 0; i < H->json_len(j); i++) {
      if (i) sb_add(b, ",", 1);
      H->json_key_at(j, i, &s);
      sb_jstr(b, s);
      sb_add(b, ":", 1);
      char key[512];
      snprintf(key, sizeof key, "%.*s", (int)(s.n < 511 ? s.n : 511), s.p);
      sb_json(b, H->json_get(j, key), depth + 1);
    }
    sb_add(b, "}", 1);
    break;
  default: sb_add(b, "null", 4); break;
  }
}

static char *dup_str(aigw_str s) {
  char *p = malloc(s.n + 1);
  if (!p) return NULL;
  memcpy(p, s.p, s.n);
  p[s.n] = 0;
  return p;
}

static void inst_free(linst *in) {
  if (!in) return;
  lstate *st = in->states;
  while (st) { /* destroy: no request can use a state any more */
    lstate *next = st->next;
    state_free(st);
    st = next;
  }
  pthread_mutex_destroy(&in->mu);
  free(in->src);
  free(in->chunkname);
  free(in->config_json);
  for (size_t i = 0; i < in->nmetrics; i++) free(in->metrics[i].name);
  free(in->metrics);
  free(in);
}

static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) return snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno)), -1;
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 4096 > cap) {
      cap = cap ? cap * 2 : 8192;
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(f);
        return snprintf(err, errlen, "out of memory"), -1;
      }
      buf = nb;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (n > LUA_MAX_SCRIPT_BYTES) {
      free(buf);
      fclose(f);
      return snprintf(err, errlen, "'%s' is larger than %u bytes", path, LUA_MAX_SCRIPT_BYTES), -1;
    }
    if (got == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return snprintf(err, errlen, "cannot read '%s'", path), -1;
  }
  buf[n] = 0;
  *out = buf;
  *outlen = n;
  return 0;
}

static int valid_metric_name(aigw_str s) {
  if (s.n == 0 || s.n > 100) return 0;
  for (size_t i = 0; i < s.n; i++)
    if (!((s.p[i] >= 'a' && s.p[i] <= 'z') || (s.p[i] >= '0' && s.p[i] <= '9') || s.p[i] == '_')) return 0;
  return 1;
}

static int define_metrics(linst *in, const aigw_json *ms, aigw_diag *d) {
  if (H->json_type(ms) != AIGW_JSON_OBJECT) {
    H->diag_error(d, "/metrics", "must be an object: {name: {type, help, labels}}");
    return -1;
  }
  size_t n = H->json_len(ms);
  in->metrics = calloc(n ? n : 1, sizeof *in->metrics);
  if (!in->metrics) return -1;
  int ok = 0;
  for (size_t i = 0; i < n; i++) {
    aigw_str name;
    H->json_key_at(ms, i, &name);
    char *nm = dup_str(name);
    if (!nm) return -1;
    char ptr[160];
    snprintf(ptr, sizeof ptr, "/metrics/%s", nm);
    const aigw_json *m = H->json_get(ms, nm);
    if (!valid_metric_name(name) || H->json_type(m) != AIGW_JSON_OBJECT) {
      H->diag_error(d, ptr, "a metric is [a-z0-9_]+ mapped to {\"type\": \"counter\"|\"gauge\"|\"histogram\", \"help\", \"labels\"}");
      free(nm);
      ok = -1;
      continue;
    }
    aigw_str t = AIGW_STR("counter"), help = AIGW_STR("lua script metric");
    const aigw_json *tj = H->json_get(m, "type"), *hj = H->json_get(m, "help"), *lj = H->json_get(m, "labels");
    if (tj) H->json_str(tj, &t);
    if (hj) H->json_str(hj, &help);
    aigw_metric_kind kind;
    if (t.n == 7 && !memcmp(t.p, "counter", 7)) kind = AIGW_METRIC_COUNTER;
    else if (t.n == 5 && !memcmp(t.p, "gauge", 5)) kind = AIGW_METRIC_GAUGE;
    else if (t.n == 9 && !memcmp(t.p, "histogram", 9)) kind = AIGW_METRIC_HISTOGRAM;
    else {
      H->diag_error(d, ptr, "type must be \"counter\", \"gauge\" or \"histogram\"");
      free(nm);
      ok = -1;
      continue;
    }
    char lab[LUA_MAX_LABELS][64];
    const char *labels[LUA_MAX_LABELS + 1] = {NULL};
    int nl = 0, badl = 0;
    if (lj) {
      if (H->json_type(lj) != AIGW_JSON_ARRAY || H->json_len(lj) > LUA_MAX_LABELS) badl = 1;
      for (size_t k = 0; !badl && k < H->json_len(lj); k++) {
        aigw_str ls;
        if (H->json_str(H->json_at(lj, k), &ls) != AIGW_OK || !valid_metric_name(ls) || ls.n >= 64) {
          badl = 1;
          break;
        }
        snprintf(lab[nl], sizeof lab[nl], "%.*s", (int)ls.n, ls.p);
        labels[nl] = lab[nl];
        nl++;
      }
    }
    if (badl) {
      H->diag_error(d, ptr, "labels must be an array of at most 8 names [a-z0-9_]+");
      free(nm);
      ok = -1;
      continue;
    }
    char full[160], hb[256];
    snprintf(full, sizeof full, "lua_%s", nm);
    snprintf(hb, sizeof hb, "%.*s", (int)(help.n < 255 ? help.n : 255), help.p);
    uint32_t id = H->metric_define(d, kind, full, hb, labels);
    if (id == UINT32_MAX) {
      free(nm);
      ok = -1;
      continue;
    }
    in->metrics[in->nmetrics++] = (lmetric){nm, id, nl};
  }
  return ok;
}

static void *lua_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d) {
  (void)h;
  if (!cfg || H->json_type(cfg) != AIGW_JSON_OBJECT) {
    H->diag_error(d, "", "needs a config object with \"script\" (a file) or \"inline\" (Lua source)");
    return NULL;
  }
  static const char *const known[] = {"script", "inline", "name", "config", "max_instructions", "max_memory_mb", "metrics", NULL};
  int bad = 0;
  for (size_t i = 0; i < H->json_len(cfg); i++) {
    aigw_str k;
    H->json_key_at(cfg, i, &k);
    int ok = 0;
    for (int j = 0; known[j]; j++) ok |= strlen(known[j]) == k.n && memcmp(known[j], k.p, k.n) == 0;
    if (!ok) {
      H->diag_error(d, "", "unknown key \"%.*s\" (known: script, inline, name, config, max_instructions, max_memory_mb, metrics)",
                    (int)k.n, k.p);
      bad = 1;
    }
  }
  linst *in = calloc(1, sizeof *in);
  if (!in) return NULL;
  pthread_mutex_init(&in->mu, NULL);
  in->max_ins = LUA_DEFAULT_INSTRUCTIONS;
  in->mem_limit = (size_t)LUA_DEFAULT_MEMORY_MB << 20;

  const aigw_json *js = H->json_get(cfg, "script"), *ji = H->json_get(cfg, "inline"), *jn = H->json_get(cfg, "name");
  const char *src_ptr = js ? "/script" : "/inline";
  aigw_str path = {0}, inl = {0}, name = AIGW_STR("inline");
  char err[640];
  if ((js && ji) || (!js && !ji)) {
    H->diag_error(d, "", "needs exactly one of \"script\" (a file) or \"inline\" (Lua source)");
    bad = 1;
  } else if (js && (H->json_str(js, &path) != AIGW_OK || path.n == 0 || memchr(path.p, 0, path.n))) {
    H->diag_error(d, "/script", "must be a file path");
    bad = 1;
  } else if (ji && H->json_str(ji, &inl) != AIGW_OK) {
    H->diag_error(d, "/inline", "must be a string of Lua source");
    bad = 1;
  }
  if (jn && (H->json_str(jn, &name) != AIGW_OK || name.n == 0 || name.n > 100)) {
    H->diag_error(d, "/name", "must be a short string (the script's name in messages)");
    bad = 1;
  }
  double v;
  const aigw_json *jmi = H->json_get(cfg, "max_instructions"), *jmm = H->json_get(cfg, "max_memory_mb");
  if (jmi) {
    if (H->json_num(jmi, &v) != AIGW_OK || v < 1000 || v > 1e10 || v != (double)(long long)v) {
      H->diag_error(d, "/max_instructions", "must be an integer from 1000 to 1e10 (instructions per hook invocation)");
      bad = 1;
    } else {
      in->max_ins = (int64_t)v;
    }
  }
  if (jmm) {
    if (H->json_num(jmm, &v) != AIGW_OK || v < 1 || v > 4096) {
      H->diag_error(d, "/max_memory_mb", "must be a number from 1 to 4096 (MiB per Lua state)");
      bad = 1;
    } else {
      in->mem_limit = (size_t)(v * 1048576.0);
    }
  }
  const aigw_json *jc = H->json_get(cfg, "config");
  if (jc) {
    sbuf b = {0};
    sb_json(&b, jc, 0);
    if (b.oom) {
      free(b.p);
      H->diag_error(d, "/config", "cannot be copied (nested too deep?)");
      bad = 1;
    } else {
      in->config_json = b.p;
    }
  }
  const aigw_json *jm = H->json_get(cfg, "metrics");
  if (jm && define_metrics(in, jm, d) != 0) bad = 1;
  if (bad) goto fail;

  if (js) {
    char *p = dup_str(path);
    if (!p) goto fail;
    if (read_file(p, &in->src, &in->srclen, err, sizeof err) != 0) {
      H->diag_error(d, "/script", "%s", err);
      free(p);
      goto fail;
    }
    name = path;
    free(p);
  } else {
    in->src = dup_str(inl);
    in->srclen = inl.n;
    if (!in->src) goto fail;
  }
  in->chunkname = malloc(name.n + 2);
  if (!in->chunkname) goto fail;
  in->chunkname[0] = '=';
  memcpy(in->chunkname + 1, name.p, name.n);
  in->chunkname[name.n + 1] = 0;
  in->script = in->chunkname + 1;

  /* The probe: load and run the top level once here, so that syntax and load errors are config
   * errors (with the script's line), and to learn which hooks the script defines. */
  lstate *probe = state_new(in, err, sizeof err);
  if (!probe) {
    H->diag_error(d, src_ptr, "%s", err);
    goto fail;
  }
  int any = 0;
  for (int i = 0; i < HK_N; i++) any |= in->has[i] = probe->fn_ref[i] != LUA_NOREF;
  state_free(probe);
  if (!any) {
    H->diag_error(d, src_ptr, "%s defines none of the hook functions on_request, on_response, on_event, on_log",
                  in->script);
    goto fail;
  }
  if (getrandom(&in->nonce, sizeof in->nonce, 0) != (ssize_t)sizeof in->nonce) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    in->nonce = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ (uint64_t)(uintptr_t)in;
  }
  return in;
fail:
  inst_free(in);
  return NULL;
}

static void lua_destroy(void *inst) { inst_free(inst); }

static const aigw_plugin lua_plugin = {
    AIGW_PLUGIN_HEADER,
    .name = "lua",
    .version = "1.0.0",
    .priority = 0,
    .flags = AIGW_WANTS_EVENTS,
    .create = lua_create,
    .destroy = lua_destroy,
    .on_request = lua_on_request,
    .on_response = lua_on_response,
    .on_event = lua_on_event,
    .on_done = lua_on_done,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  if (!AIGW_HAS(h, store_set) || !AIGW_HAS(h, diag_error)) {
    snprintf(err, errlen, "lua needs a host with the ABI 1.0 table (store_set, diag_error)");
    return NULL;
  }
  H = h;
  return &lua_plugin;
}
