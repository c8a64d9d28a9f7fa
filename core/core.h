/* core.h - the proxy core's internal types: server, workers, connections, requests.
 *
 * Threads: the main thread owns the server, the admin listener, signals and config generations.
 * Each worker thread owns one event_base, one libcurl multi handle, its listening sockets, and
 * every connection and request accepted on it; nothing here is shared between workers except the
 * server (read-only after start, plus the atomic current generation) and the registries
 * (metrics, store, plugin libraries), which are thread-safe. */
#ifndef AIGW_CORE_H
#define AIGW_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "aigw/plugin.h"
#include "config.h"
#include "http1.h"
#include "sse.h"

struct cJSON;
struct evbuffer;
struct evconnlistener;
struct evhttp;
typedef struct worker worker;
typedef struct conn conn;
typedef struct server server;
typedef struct upconn upconn;
struct uppool;

/* ---- small utilities (util.c) ---- */
uint64_t now_us(void); /* CLOCK_MONOTONIC in microseconds */
uint64_t now_ms(void);
int str_ieq(const char *a, size_t an, const char *b, size_t bn);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int log_level_enabled(int level);
void log_set_level(int level);

/* Decimal digits of v into out (at least 20 bytes); returns the length. No NUL. */
size_t fmt_u64(char *out, uint64_t v);

/* An HTTP head assembled on the stack and handed to the evbuffer in one add (spills to the
 * evbuffer when it outgrows the stack buffer). hb_add/hb_lit return nothing; hb_done flushes. */
struct evbuffer;
typedef struct headbuf {
  struct evbuffer *out;
  size_t n;
  char buf[2048];
} headbuf;
void hb_add(headbuf *h, const char *p, size_t n);
#define hb_lit(h, s) hb_add((h), (s), sizeof(s) - 1)
void hb_u64(headbuf *h, uint64_t v);
void hb_done(headbuf *h);

/* ---- request arena (arena.c): bump allocator freed at once ---- */
typedef struct arena_chunk arena_chunk;
typedef struct arena {
  arena_chunk *head;
  char *p, *end;
} arena;
void arena_init(arena *a);
void *arena_alloc(arena *a, size_t n);  /* zeroed, 16-byte aligned; NULL on ENOMEM */
char *arena_strndup(arena *a, const char *s, size_t n); /* NUL-terminated copy */
void arena_free(arena *a);

/* ---- header lists: name/value pairs in arena memory ---- */
typedef struct hdr {
  aigw_str name, value;
} hdr;
typedef struct hdr_list {
  hdr *v;
  size_t n, cap;
} hdr_list;
int hdrs_add(arena *a, hdr_list *l, const char *n, size_t nn, const char *v, size_t vn);
int hdrs_set(arena *a, hdr_list *l, const char *n, size_t nn, const char *v, size_t vn); /* v NULL removes */
const hdr *hdrs_get(const hdr_list *l, const char *n, size_t nn);
int hdrs_add_line(arena *a, hdr_list *l, const char *buf, size_t n); /* status line: returns its code */

/* ---- async calls started by plugins (calls.c) ---- */
typedef enum { CALL_HTTP, CALL_TIMER, CALL_STORE } call_kind;
struct aigw_call {
  uint32_t magic;
  call_kind kind;
  struct aigw_req *r;
  aigw_done_fn done;
  void *ud;
  const cfg_plugin *plugin;  /* whose call (for logs) */
  int finished;              /* done has run or is scheduled */
  aigw_call_status st;
  struct event ev;           /* timer / deferred completion */
  CURL *easy;                /* CALL_HTTP */
  struct curl_slist *hdrs;
  char *req_body;
  struct evbuffer *resp;     /* response body */
  hdr_list resp_hdrs;
  arena *resp_arena;         /* = &r->pool */
  long http_status;
  uint32_t max_bytes;
  char errbuf[CURL_ERROR_SIZE];
  int64_t int_result;
  char *str_result; size_t str_len;
  struct rpend *rpend;       /* CALL_STORE on redis: the pending command (rstore.c) */
  int rop;
  uint32_t rpend_idx;        /* its slot in rpend's batch */
  struct aigw_call *next, *prev; /* r->calls */
};

/* ---- stream events ---- */
struct aigw_event {
  uint32_t magic;
  struct aigw_req *r;
  aigw_event_kind kind;
  aigw_str name;         /* event: field */
  aigw_str data;         /* data (borrowed from parser or arena) */
  aigw_str raw;          /* the bytes as received; sent as-is when nothing changed */
  int modified;          /* name/data replaced: re-encode */
  int dropped;
  struct cJSON *json;    /* parsed lazily */
  int json_tried;
  int changed;           /* json edited: reserialize */
};

/* ---- requests ---- */
enum req_phase {
  PH_READ = 0,     /* head parsed, reading body */
  PH_REQUEST,      /* request hooks */
  PH_UPSTREAM,     /* provider prepare + transfer */
  PH_RESPONSE,     /* response hooks */
  PH_STREAM,       /* streaming to client */
  PH_SENDING,      /* final bytes queued */
  PH_DONE
};

typedef struct meta_kv {
  char *key;
  aigw_str v;
  struct meta_kv *next;
} meta_kv;

typedef struct msg_t {
  /* One side of an exchange: headers, body bytes, parsed JSON (lazy). */
  hdr_list hdrs;
  char *body; size_t body_len; /* arena or malloc (body_owned) */
  size_t body_cap;           /* allocated bytes when body_owned and growing */
  int body_owned;
  struct cJSON *json;
  int json_tried, dirty;
  int status;
  /* body_member_raw's index of the top-level members (arena), for the body bytes it was made of */
  struct jscan_ent *idx;
  const char *idx_body; size_t idx_len; /* the bytes indexed; another body means a new index */
  int idx_n;                            /* members indexed; -1: not a JSON object */
} msg_t;

struct aigw_req {
  uint32_t magic;
  worker *w;
  conn *c;                  /* NULL once the client has gone */
  cfg_gen *gen;             /* referenced for the request's lifetime */
  const cfg_route *route;
  const cfg_provider *provider;
  const cfg_target *target;
  arena pool;
  uint64_t serial;
  char id[72];              /* request id: the client's x-request-id if sane, else generated */

  aigw_str method, target_uri, path;
  int is_stream;            /* client asked "stream": true */
  int http10, keep_alive;

  msg_t creq;                /* client request */
  msg_t ureq;                /* upstream request */
  msg_t uresp;               /* upstream response */
  msg_t cresp;               /* client response */
  char *upstream_url;

  /* pipeline state */
  enum req_phase phase;
  size_t hook_i;            /* next plugin index in the current phase */
  size_t hooks_reached;     /* plugins whose on_request was (or would have been) called */
  void **rctx;              /* one slot per route plugin */
  void *provider_rctx;
  int in_hook;              /* a plugin hook is running: defer actions */
  int in_curl_cb;           /* inside a libcurl callback: no multi calls, no teardown */
  int client_gone;
  int up_step;              /* 0: provider prepare not run; 1: running/paused; 2: transfer started */
  int up_active;            /* easy handle added to the multi */
  upconn *upc;              /* the built-in HTTP/1.1 client's connection (upclient.c) */
  int upc_retried;
  uint64_t total_deadline_us; /* upclient transfers: total_ms as an absolute time */
  int paused;               /* waiting for resume */
  int resume_pending;       /* resume() called, continuation scheduled */
  aigw_status resume_st;
  int responded;            /* respond()/respond_error() recorded a response */
  int local_reply;          /* provider_reply supplied the upstream response */
  int ended;                /* finalize ran */
  int error_logged;
  const char *error;        /* error text for the log (static or arena) */
  struct event defer_ev;    /* runs req_continue on the next loop turn */
  int defer_added;
  const cfg_plugin *cur_plugin; /* plugin whose hook runs now (log tagging) */

  /* upstream transfer */
  CURL *easy;
  struct curl_slist *curl_hdrs;
  struct event up_timer;    /* first-byte / idle deadline */
  int up_timer_set;
  int up_got_first_byte;
  int up_streaming;         /* upstream answered text/event-stream 2xx */
  int up_paused;            /* CURLPAUSE_RECV because the client is slow */
  int up_failed;
  int timeout_kind;         /* 0 none, 1 first byte, 2 idle, 3 total */
  long curl_result;
  sse_parser sse;
  int sse_init;
  int saw_done;             /* stream ended with its terminal event */
  int saw_error;            /* the provider sent an error event (terminal) */
  int stream_held;          /* the upstream ended but the adapter finishes the stream later (on_stream_end PAUSE) */
  int client_wants_stream_usage;
  struct evbuffer *chunk;   /* events produced by the current read, sent in one write */
  struct evbuffer *emit_q;  /* events emitted by hooks during the current event */
  int in_event;
  struct pemit *pemit;      /* provider_emit queue (malloc'd array), delivered after the provider hook */
  size_t pemit_n, pemit_cap;

  /* client side of a stream */
  int head_sent;
  int stream_ended;

  /* accounting */
  uint64_t t_start, t_up_start, t_up_first, t_up_end, t_first_token, t_end;
  aigw_usage usage;
  meta_kv *meta;
  meta_kv *log_fields;      /* plugin log fields: key -> JSON text */
  meta_kv *member_trees;    /* body_member results (v.p holds a cJSON *), deleted at the end */
  meta_kv *creds;           /* set_credential: key = provider name, v = the secret; in
                             * the arena, wiped when the request ends; a hedge borrows its parent's */

  /* routing and attempts (balance.c) */
  uint8_t plan[CFG_MAX_LEAVES]; /* leaf indices into route->leaves, in the order to try */
  uint8_t nplan, plan_pos, plan_built, tries_here;
  uint16_t nattempts;
  struct attempt_rec *att;  /* arena array, att_cap entries */
  uint16_t att_cap;
  int cur_att;              /* index in att of the attempt whose transfer r runs (-1 none) */
  int hedge_att;            /* index in att of the hedge's attempt (-1 none) */
  struct aigw_req *hedge;   /* the hedge: a transfer-only child request (see hedge.c) */
  struct aigw_req *hedge_parent; /* set on a hedge child */
  int hedge_state;          /* child: 0 racing, 1 won (first 2xx byte, paused), 2 failed, 3 done */
  int waiting_hedge;        /* parent: its own attempt failed; the hedge decides */
  struct evbuffer *hedge_buf; /* child: body bytes read before the parent adopted the transfer */
  CURLcode hedge_rc;        /* child: how its transfer ended (hedge_state 3) */
  struct event hedge_ev;    /* parent: start / adopt / cancel the hedge on the next loop turn */
  int hedge_ev_set;
  int hedge_timer_set;      /* parent: hedge_ev is the delay timer */
  int retry_wanted;         /* failover decided inside a callback: the transfer's end retries */
  int retry_set;            /* retry_ev pending */
  struct event retry_ev;    /* backoff before the next attempt */
  uint64_t t_att_start;
  uint64_t deadline_us;     /* retry.deadline_ms as an absolute time; 0 = none */
  uint64_t ctx_tried;       /* the context-window fallback target was used */
  cfg_timeouts tmo;         /* the current attempt's timeouts (target's, capped by the deadline) */
  int deadline_capped;      /* tmo was cut by the deadline */
  int64_t est_tokens;       /* pre-flight prompt estimate; -1 = not computed */
  int overflowed;           /* a plugin's 429 was turned into the route's overflow target */
  int is_probe;             /* an active health check (health.c): no client, no hooks */
  int probe_failed;
  struct aigw_req *probe_next, *probe_prev; /* worker's in-flight probes */
  /* stream continuation (fallback.stream_continue): what reached the client so far */
  char *cont_text;          /* malloc'd, freed at the end; cont_len bytes of delta text */
  size_t cont_len, cont_cap;
  int cont_tool;            /* a tool-call delta reached the client: no continuation */
  int cont_active;          /* this attempt continues a broken stream: its start events are dropped */
  int cont_count;           /* continuations made */
  int cont_block;           /* messages: index of the client's last content block, -1 none */
  int cont_block_open;      /* ... and it is still open (a text block) */
  int cont_idx_off, cont_idx_set; /* messages: index shift from the continuation's blocks to the client's */
  int cont_ws;              /* the prefill's trailing whitespace was trimmed: the client has it already */
  int cont_text_seen;       /* the continuation's first text delta went out */
  char cont_id[96];         /* chat: the chunk id the client saw first */
  int64_t carry_in, carry_out; /* estimated tokens of the broken attempts, added to the usage */

  aigw_call *calls;          /* pending async calls */
  struct aigw_req *next_live, *prev_live; /* worker's live list */
  struct aigw_req *reg_next, *reg_prev;   /* the live-request registry (calls.c), for h->post */
};

#define REQ_MAGIC 0x52514157u
#define CALL_MAGIC 0x4c4c4143u
#define EVENT_MAGIC 0x544e5645u

/* ---- connections (server.c) ---- */
enum conn_state { CS_HEAD, CS_BODY, CS_BUSY, CS_CLOSING };

struct conn {
  worker *w;
  int fd;
  struct event rev, wev;
  struct event close_ev;    /* deferred close after a write error */
  int rev_added, wev_added;
  int write_failed;         /* the peer is gone; close once the request has unwound */
  int lingering;            /* error answer sent, write side shut: discard input briefly, then close */
  uint64_t head_deadline_ms;/* client_header_timeout_ms counts from a head's first byte */
  struct ssl_st *ssl;       /* TLS listener connections; NULL for plain HTTP */
  struct evbuffer *in, *out;
  enum conn_state state;
  struct aigw_req *req;
  h1_request h1;
  size_t head_len;
  uint64_t body_need;       /* content-length bytes still to read */
  int chunked;
  h1_chunked chk;
  char *body; size_t body_len, body_cap;
  int keep_alive;
  int peer_closed;
  int close_after_write;
  int write_blocked;        /* waiting for EPOLLOUT */
  uint64_t last_write_progress;
  struct conn *next, *prev;
};

/* ---- workers ---- */
typedef struct post_item {
  void (*fn)(void *a, void *b);
  void *a, *b;
  struct post_item *next;
} post_item;

struct worker {
  uint32_t id;
  server *srv;
  pthread_t thread;
  struct event_base *base;
  struct evconnlistener **listeners; size_t nlisteners;
  struct listen_arg { worker *w; size_t idx; } *largs;
  CURLM *multi;
  struct event curl_timer;
  int still_running;
  /* cross-thread queue */
  pthread_mutex_t post_mu;
  post_item *post_head, *post_tail;
  int post_fd;             /* eventfd */
  struct event post_ev;
  /* live objects */
  conn *conns;
  size_t nconns;
  struct aigw_req *live;
  atomic_long active_requests;
  uint64_t rng;             /* xorshift state for routing choices (this thread only) */
  struct event health_ev;   /* worker 0: the active health checks' tick (health.c) */
  int health_on;
  struct aigw_req *probes;  /* in-flight health probes */
  struct rclient *rstore;   /* the store's redis client (rstore.c), NULL until used */
  atomic_long active_streams;
  int draining;
  CURL **easy_pool; size_t neasy;
  struct uppool *uppools;   /* upclient.c: keep-alive pools per upstream address */
  struct evbuffer *alog;    /* access-log lines of this loop turn, written in one syscall */
  struct event alog_ev;
  int alog_pending;
};

struct server {
  atomic_uintptr_t current;  /* cfg_gen * */
  const char *config_path;
  struct event_base *main_base;
  worker *workers; size_t nworkers;
  struct evhttp *admin;
  int access_log_fd;         /* -1 = off */
  int access_log_owned;
  atomic_int draining;
  atomic_ullong next_serial;
  uint64_t started_ms;
  cfg_gen **retired; size_t nretired, cap_retired;
  pthread_mutex_t retired_mu;
  struct event *sig_term, *sig_int, *sig_hup, *gc_timer, *drain_timer;
  uint64_t drain_deadline_ms;
  atomic_long total_active;
  struct ssl_ctx_st **tls; /* per listener (index as in the first generation); NULL = plain */
};

/* server.c */
int server_run(server *s);
cfg_gen *server_gen_acquire(server *s); /* current generation, referenced */
void server_gen_release(server *s, cfg_gen *g);
int server_reload(server *s, char *msg, size_t msglen); /* main thread */
int worker_post(worker *w, void (*fn)(void *, void *), void *a, void *b); /* any thread */
void conn_write_response_head(conn *c, int status, const hdr_list *hdrs, int chunked, uint64_t clen, const char *reqid);
void conn_send(conn *c, struct evbuffer *buf); /* queue + try to write now */
void conn_request_done(conn *c); /* request finished: keep-alive or close */
size_t conn_out_pending(conn *c);
void conn_abort(conn *c);

/* pipeline.c */
struct aigw_req *req_new(conn *c, worker *w);
void req_start(struct aigw_req *r);        /* body complete: route and run */
void req_client_gone(struct aigw_req *r);  /* client disconnected */
void req_continue(struct aigw_req *r);     /* run the pipeline from its current state */
void req_schedule(struct aigw_req *r);     /* req_continue on the next loop turn */
void req_finish(struct aigw_req *r);       /* log, on_done, free */
void req_respond_error(struct aigw_req *r, int status, const char *type, const char *code, const char *msg);
void req_out_drained(struct aigw_req *r);  /* client output fell below the watermark */
void req_upstream_response(struct aigw_req *r); /* non-stream answer complete */
const char *status_reason(int status);
int req_build_upstream(struct aigw_req *r);  /* the upstream request starts as the client's */
aigw_status req_run_prepare(struct aigw_req *r); /* the adapter's prepare (up_step 1, hook flags) */
void req_provider_done(struct aigw_req *r);     /* the adapter's on_done for its exchange */
struct aigw_req *req_new_internal(worker *w);   /* hedges and probes: no client, not counted */
void req_free_internal(struct aigw_req *r);     /* ... and their end (transfer already over) */
int req_apply_params(struct aigw_req *r, const struct cJSON *params); /* a target's "params" */

/* upstream.c */
int upstream_init(worker *w);
void upstream_shutdown(worker *w);
int upstream_start(struct aigw_req *r);    /* 0 started; -1 answered with an error */
void upstream_abort(struct aigw_req *r);   /* cancel the transfer, no callbacks */
void upstream_unpause(struct aigw_req *r);
void stream_append_sse(struct evbuffer *b, const char *name, size_t nlen, const char *data, size_t dlen);
void stream_emit(struct aigw_req *r, const char *name, size_t nlen, const char *data, size_t dlen);
void stream_flush(struct aigw_req *r);
void stream_end_error(struct aigw_req *r, const char *type, const char *msg);
void stream_end_ok(struct aigw_req *r);
int stream_process_bytes(struct aigw_req *r, const char *p, size_t n); /* stream bytes from upstream or provider_reply */
/* errfmt.c: error bodies in the route's ingress format; malloc'd JSON text, caller frees */
char *err_json(aigw_api api, int status, const char *type, const char *code, const char *msg);
const char *err_anthropic_type(int status);
#define REQ_API(r) ((r)->route ? (r)->route->api : AIGW_API_CHAT)
int stream_upstream_complete(struct aigw_req *r); /* upstream stream ended cleanly: 1 when the client's stream is complete */
int stream_pemit_push(struct aigw_req *r, aigw_event_kind kind, aigw_str name, aigw_str data);
void stream_pemit_free(struct aigw_req *r);
void stream_deliver_pending(struct aigw_req *r); /* provider_emit from outside the stream hooks */
/* provider descriptor fields added after 1.0's first cut: read only when the plugin has them */
#define PROV_HAS(pv, f) ((pv) && offsetof(aigw_provider, f) + sizeof((pv)->f) <= (pv)->struct_size && (pv)->f)
CURL *upstream_easy_get(worker *w);
void upstream_easy_setup(CURL *e, const char *url, void *ud, struct curl_slist *hdrs,
                         size_t (*wcb)(char *, size_t, size_t, void *),
                         size_t (*hcb)(char *, size_t, size_t, void *));
/* shared by libcurl's callbacks and upclient.c */
void upstream_on_header_line(struct aigw_req *r, const char *line, size_t n);
size_t upstream_on_body(struct aigw_req *r, const char *p, size_t n); /* != n: abort */
void upstream_transfer_done(struct aigw_req *r, CURLcode rc, const char *msg);
/* upclient.c */
int upc_start(struct aigw_req *r); /* 0 started, 1 not eligible (use libcurl), -1 failed (answered) */
void upc_abort(struct aigw_req *r);
void upc_unpause(struct aigw_req *r);
void upc_set_owner(upconn *c, void *ctx, upconn **slot); /* a hedge's connection changes owner */
void upc_shutdown(worker *w);
void upstream_easy_put(worker *w, CURL *e);

/* balance.c: plans, attempts, retries, breakers (docs/routing.md) */
enum { OUT_OK = 0, OUT_STATUS, OUT_TIMEOUT, OUT_CONNECT, OUT_MALFORMED, OUT_CONTEXT, OUT_CONTENT, OUT_STREAM,
       OUT_CANCELLED, OUT_HEDGED };
int balance_open(const struct aigw_req *r); /* the current attempt is still open */
typedef struct attempt_rec {
  const cfg_target *t;
  int status;
  int outcome;              /* OUT_*; -1 while open */
  uint32_t ms;
  uint64_t t0;              /* start (monotonic us) */
  uint8_t open, probe, inflight, hedge;
} attempt_rec;
const char *balance_outcome_name(int outcome);
/* Chooses the target of the next attempt (building the plan first), sets r->target, r->provider
 * and r->tmo, counts the attempt. 0 ok; -1 when no target can take it (answered: 503). */
int balance_begin_attempt(struct aigw_req *r);
/* The current attempt failed with outcome (status: the upstream's, 0 if none; retry_after_ms:
 * from the upstream, -1 if none). Records it. Returns 1 when another attempt was scheduled (the
 * caller must return without answering), 0 when the caller answers with this failure. Never call
 * it inside a libcurl callback: set r->retry_wanted and let the transfer end instead. */
int balance_failed(struct aigw_req *r, int outcome, int status, int64_t retry_after_ms);
/* Whether balance_failed would retry this outcome now (no side effects). */
int balance_can_retry(struct aigw_req *r, int outcome, int status);
void balance_close(struct aigw_req *r, int outcome, int status); /* record the attempt, no retry */
/* active health checks (health.c; the state lives in balance.c) */
void health_init(worker *w);
void health_shutdown(worker *w);
size_t health_probe_body(struct aigw_req *r, const char *p, size_t n);
void health_probe_done(struct aigw_req *r, CURLcode rc);
int balance_health_due(const cfg_target *t, uint64_t now_ms, uint32_t interval_ms); /* 1: probe now (marked) */
void balance_health_result(const cfg_route *rt, const cfg_target *t, int ok, uint64_t now_ms);
/* hedged requests (route "hedge"): hedge_arm after the parent's transfer started; the hedge_child_*
 * functions take over upstream_on_body / the transfer's end for a child; hedge_first_byte when the
 * parent's own first byte arrived; hedge_free at the parent's end. */
void hedge_arm(struct aigw_req *r);
void hedge_first_byte(struct aigw_req *r);
size_t hedge_child_body(struct aigw_req *c, const char *p, size_t n);
void hedge_child_done(struct aigw_req *c, CURLcode rc, const char *msg);
int hedge_wait(struct aigw_req *r); /* the parent's attempt failed: 1 when a racing hedge decides */
void hedge_stop(struct aigw_req *r); /* request end: cancel the child's transfer and events */
void hedge_free(struct aigw_req *r); /* request end, after every on_done: the child's memory */
uint32_t balance_p95_ms(const cfg_target *t);
/* for the unit tests and bench/: the plan of r (r->route, r->w, r->creq set; fills r->plan), and
 * the breaker driven by an explicit clock (ms) */
void balance_build_plan(struct aigw_req *r);
int balance_breaker_allow_at(const cfg_route *rt, const cfg_target *t, uint64_t now_ms);
void balance_breaker_record_at(const cfg_route *rt, const cfg_target *t, int probe, int counts, int ok, uint64_t now_ms);
int balance_breaker_state(const cfg_target *t); /* 0 closed, 1 open, 2 half-open */
void balance_finish(struct aigw_req *r); /* request end: records an open attempt as its final outcome */
void balance_add_headers(struct aigw_req *r); /* x-aigw-target, x-aigw-attempts on cresp */
/* stream continuation: cont_filter (continuation attempts) says 1 = drop this start event;
 * cont_observe records an event that reached the client; cont_prefill adds the partial answer to
 * the upstream request of a continuation attempt (-1 on ENOMEM). */
int cont_filter(struct aigw_req *r, aigw_event *ev);
void cont_observe(struct aigw_req *r, aigw_event *ev);
int cont_prefill(struct aigw_req *r);
struct cJSON *event_json(aigw_event *ev); /* host.c: the event's JSON, parsed once */
/* Classifies a complete non-stream upstream answer: OUT_OK or a failure outcome. */
int balance_classify(struct aigw_req *r, int64_t *retry_after_ms);
struct jsonw;
void balance_admin_json(struct jsonw *w, const cfg_gen *g); /* GET /admin/targets */
int balance_metrics_init(void);
void balance_metrics_refresh(const cfg_gen *g); /* admin /metrics: set the in-flight gauges */
size_t req_prompt_bytes(struct aigw_req *r); /* host.c: bytes of message text (text view) */

/* calls.c */
void calls_cancel_all(struct aigw_req *r);
void call_store_complete(aigw_call *c, aigw_call_status st); /* a store call's answer (rstore.c) */
/* rstore.c: the store on redis */
int rstore_send(aigw_call *c, int op, const char *key, size_t klen, int64_t by, uint64_t window_ms, const char *val,
                size_t vlen, uint64_t ttl_ms);
void rstore_detach(aigw_call *c);
void rstore_timed_out(aigw_call *c); /* its deadline passed: detach, and count it for the node's breaker */
void rstore_shutdown(worker *w);
void calls_move(struct aigw_req *from, struct aigw_req *to); /* a hedge's calls go to its parent */
void req_registry_add(struct aigw_req *r);    /* req_new: h->post may find it from any thread */
void req_registry_remove(struct aigw_req *r); /* req_finish, before it is freed */
void call_http_done(aigw_call *c, CURLcode rc); /* from upstream.c multi loop */

/* host.c */
void req_wipe_credentials(struct aigw_req *r); /* before the request's arena is freed */
struct cJSON *msg_json(struct aigw_req *r, msg_t *m); /* parse once */
int msg_serialize(struct aigw_req *r, msg_t *m);     /* re-serialize a dirty JSON body */
void event_init(aigw_event *ev, struct aigw_req *r, const char *name, size_t nl, const char *data, size_t dl);
void event_release(aigw_event *ev);
int event_text_get(aigw_event *ev, aigw_str *out);

/* access log + metrics (observe.c) */
int observe_init(void);
void observe_request(struct aigw_req *r);
void observe_worker_init(worker *w);
void observe_worker_flush(worker *w);
void observe_stream_delta(int d);
void observe_plugin_error(const char *plugin);
struct met_registry *core_metrics(void);
int observe_metric_nlabels(uint32_t id);
void observe_metric_set_nlabels(int id, int n);
struct store *core_store(void);

/* admin.c */
int admin_start(server *s, cfg_gen *g);
void admin_stop(server *s);

extern server *g_server; /* the process's server (registry: set once in main before workers) */

#endif
