/* config.h - the configuration, validated whole, as an immutable refcounted generation.
 *
 * A generation (cfg_gen) is built on the main thread from one JSON file: every value checked, every
 * plugin instance created, every error collected with its JSON pointer. Workers take a reference
 * for each request (gen_ref) and drop it when the request ends (gen_unref); the main thread swaps
 * the current generation atomically on reload and destroys a retired one once its last reference
 * is gone. Everything reachable from a cfg_gen is owned by it and read-only after cfg_load. */
#ifndef AIGW_CONFIG_H
#define AIGW_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "aigw/plugin.h"

struct cJSON;
struct plug_lib;

/* One error found while loading; a list is kept in load order. */
typedef struct cfg_error {
  char *path;    /* JSON pointer into the config file, e.g. "/routes/0/plugins/1/config/url" */
  char *message; /* what is wrong and what to do */
  struct cfg_error *next;
} cfg_error;

typedef struct cfg_errors {
  cfg_error *head, *tail;
  size_t count;
} cfg_errors;

/* A plugin instance: one per (plugin entry in a route or the global list, or provider). */
typedef struct cfg_plugin {
  const struct plug_lib *lib; /* loaded library (process lifetime; never unloaded) */
  const aigw_plugin *desc;    /* its descriptor (static storage in the .so) */
  void *inst;                 /* from desc->create; owned, destroyed with the generation */
  int32_t priority;           /* effective: config "priority" or desc->priority */
  char *name;                 /* the plugin's name as configured */
  uint32_t index;             /* slot in the route's per-request rctx array */
} cfg_plugin;

typedef struct cfg_provider {
  char *name;          /* key in "providers" */
  cfg_plugin plugin;   /* the provider adapter instance (desc->provider != NULL) */
  int enabled;         /* 0 when enabled_if_env names an unset variable */
  int force_libcurl;   /* "http_client": "libcurl" (default "auto") */
} cfg_provider;

typedef struct cfg_timeouts {
  uint32_t connect_ms;     /* default 10000 */
  uint32_t first_byte_ms;  /* from request sent to the first response byte; default 120000 */
  uint32_t idle_ms;        /* max gap between upstream reads once started; default 60000 */
  uint32_t total_ms;       /* whole upstream exchange; 0 = none (streams may run long) */
} cfg_timeouts;

/* Routing strategies (docs/routing.md). */
enum { STRAT_PRIORITY = 0, STRAT_WEIGHTED, STRAT_RR, STRAT_LEAST, STRAT_LATENCY, STRAT_COST, STRAT_HASH };

#define CFG_MAX_LEAVES 64 /* provider targets per route (groups flattened): plans use a 64-bit mask */

struct tstate; /* balance.c: a target's shared runtime state (breaker, in-flight, latency) */

/* A target: a provider (+ model) or a group of targets. Everything owned by the generation. */
typedef struct cfg_target {
  cfg_provider *provider; /* borrowed from the generation; NULL for a group */
  char *model;            /* override, NULL = the client's model */
  char *name;             /* unique in the route */
  int name_plain;         /* name needs no JSON escaping (the access log copies it raw) */
  uint32_t weight;        /* default 1 */
  int32_t priority;       /* lower first; default 0 */
  struct cJSON *params;   /* object of members set on the upstream request, or NULL (owned) */
  cfg_timeouts timeouts;  /* effective: the route's with this target's overrides */
  uint64_t context_window;/* tokens, 0 = unknown (config, else the catalog) */
  double price;           /* input + output USD per million tokens; < 0 unknown */
  int strategy;           /* groups: STRAT_* */
  struct cfg_target *kids; size_t nkids; /* group members (owned) */
  uint64_t mask;          /* leaves of this target (bit = leaf index) */
  uint32_t leaf;          /* leaf index (provider targets) */
  struct tstate *st;      /* runtime state (breaker, in-flight, latency), never NULL; refcounted,
                           * shared with the previous generation's same-named target on reload */
} cfg_target;

typedef struct cfg_header_match {
  char *name, *value; /* exact, case-insensitive name; exact value */
} cfg_header_match;

enum { ADMIN_VIEWER = 1, ADMIN_OPERATOR = 2, ADMIN_ADMIN = 3 }; /* admin API roles, each includes the ones before */

enum { CFG_M_GET = 1, CFG_M_POST = 2, CFG_M_PUT = 4, CFG_M_DELETE = 8, CFG_M_PATCH = 16,
       CFG_M_HEAD = 32, CFG_M_OPTIONS = 64, CFG_M_ANY = 127 };

/* Retry and fallback policy of a route. */
typedef struct cfg_retry {
  uint32_t attempts;        /* whole budget per request; 0 = the plan's length */
  uint32_t per_target;      /* attempts on one target before falling back; default 1 */
  uint32_t backoff_ms, max_backoff_ms; /* 100, 5000 */
  uint32_t max_retry_after_ms;         /* 30000 */
  uint32_t deadline_ms;     /* 0 = none */
  uint8_t status_on[25];    /* bit (status - 400) set: that status fails over */
  unsigned on_timeout : 1, on_connect : 1, on_malformed : 1;
  unsigned fb_content_policy : 1;
  unsigned stream_continue : 1; /* continue a stream broken after its first byte on the next target */
  struct cfg_target *fb_context; /* borrowed: the target for context-window errors, or NULL */
  struct cfg_target *fb_overflow; /* borrowed: where a request plugin's 429 (own limits) goes, or NULL */
} cfg_retry;

typedef struct cfg_breaker {
  int enabled;
  double failure_rate;      /* 0.5 */
  uint32_t min_requests;    /* 10 */
  uint32_t window_ms;       /* 30000 */
  uint32_t cooldown_ms;     /* 15000 */
  uint32_t probes;          /* 1 */
} cfg_breaker;

typedef struct cfg_kv {
  char *k;
  struct cJSON *v; /* header/metadata rules: string; param rules: any JSON (owned) */
} cfg_kv;

typedef struct cfg_rule {
  cfg_kv *headers; size_t nheaders;   /* value "*" = present */
  cfg_kv *meta; size_t nmeta;
  cfg_kv *params; size_t nparams;
  char *model;                        /* exact, or prefix when it ends in '*' */
  char *consumer;
  uint64_t min_tokens, max_tokens;    /* 0 = no bound */
  cfg_target **order; size_t norder;  /* the rule's targets, in preference order (borrowed) */
  uint64_t mask;
} cfg_rule;

typedef struct cfg_alias {
  char *name;
  cfg_target **order; size_t norder;
  uint64_t mask;
} cfg_alias;

typedef struct cfg_route {
  char *name;
  uint32_t methods;        /* CFG_M_* bits */
  char *path;              /* exact match, or NULL */
  char *path_prefix;       /* prefix match, or NULL */
  char *host;              /* exact Host match (port stripped), or NULL */
  cfg_header_match *headers; size_t nheaders;
  aigw_api api;
  cfg_target *targets; size_t ntargets;   /* enabled targets only, in order */
  cfg_timeouts timeouts;
  int strategy;                            /* STRAT_* of the top level */
  int hash_kind; char *hash_name;          /* STRAT_HASH key: 1 header, 2 metadata, 3 body member, 4 consumer */
  cfg_target *leaves[CFG_MAX_LEAVES]; size_t nleaves; /* provider targets, flattened (borrowed) */
  cfg_alias *aliases; size_t naliases;
  cfg_rule *rules; size_t nrules;
  int need_estimate;                       /* rules or context checks use the prompt estimate */
  cfg_retry retry;
  cfg_breaker breaker;
  int hc;                                  /* "health_check" configured (active probes) */
  uint32_t hc_interval_ms, hc_timeout_ms, hc_unhealthy; /* 10000, 3000, 2 */
  int hedge;                               /* "hedge" configured */
  uint32_t hedge_delay_ms;                 /* fixed delay; 0 = the primary target's p95 */
  uint32_t hedge_min_ms, hedge_max_ms;     /* bounds of the p95 delay (and its value without samples) */
  struct tstate *rstate;                   /* route-wide runtime state (round-robin counter) */
  cfg_plugin **plugins; size_t nplugins;  /* global + route plugins, sorted by priority desc, name */
  size_t route_index;
} cfg_route;

typedef struct cfg_listen {
  char *address;
  uint16_t port;
  char *tls_cert, *tls_key; /* both NULL = plain HTTP */
} cfg_listen;

typedef struct cfg_limits {
  uint32_t max_header_bytes;        /* 16384 */
  uint64_t max_body_bytes;          /* 10 MiB */
  uint32_t client_header_timeout_ms;/* 10000 */
  uint32_t client_body_timeout_ms;  /* 30000 */
  uint32_t keepalive_timeout_ms;    /* 60000 */
  uint32_t send_timeout_ms;         /* 60000: a client that reads nothing for this long is dropped */
  uint32_t max_concurrent_requests; /* 10000 per process */
  uint64_t max_stream_buffer_bytes; /* 1 MiB: client output above this pauses the upstream */
} cfg_limits;

typedef struct cfg_gen {
  atomic_long refs;       /* one for "current" + one per request in flight */
  uint64_t id;            /* 1, 2, ... per successful load */
  struct cJSON *root;     /* the parsed file, ${ENV} expanded; owned */
  cfg_listen *listen; size_t nlisten;
  cfg_listen admin;       /* port 0 = no admin listener */
  char *admin_token;      /* NULL = admin endpoints other than /health refused (role admin) */
  struct cfg_admin_tok { char *token; int role; } *admin_tokens; size_t nadmin_tokens; /* "tokens" */
  uint32_t workers;       /* 0 in the file = one per core, resolved here */
  char **plugin_paths; size_t nplugin_paths;
  char *access_log_path;  /* "-" = stdout, NULL = off */
  cfg_limits limits;
  uint32_t drain_timeout_ms; /* SIGTERM: wait this long for in-flight requests; default 30000 */
  /* the host store: in-process (default) or Redis ("store": {"backend": "redis", ...}) */
  int store_redis;
  char *redis_host;        /* "127.0.0.1" */
  uint16_t redis_port;     /* 6379 */
  char *redis_password;    /* NULL = no AUTH */
  uint32_t redis_timeout_ms; /* per command, and for connecting; 100 */
  char *redis_prefix;      /* key prefix, "aigw:" */
  int redis_cluster;       /* a Redis Cluster: keys go to the node owning their slot (rstore.c) */
  char *redis_nodes[16];   /* cluster seed nodes "host:port" (besides host:port); owned */
  size_t redis_nnodes;
  cfg_provider *providers; size_t nproviders;
  cfg_route *routes; size_t nroutes;
  cfg_plugin *plugins; size_t nplugins; /* every instance (global and per route), owned here */
  struct catalog *catalog; /* model catalog ("model_catalog" file + "models"), owned; never NULL
                            * after a successful load (may hold no models); see catalog.h */
  uint64_t retired_ms;    /* when a reload retired it (monotonic ms); 0 while current */
} cfg_gen;

/* Loads and validates the file at path. Returns a generation with refs == 1, or NULL with every
 * problem appended to errs. Main thread only (runs plugin create hooks). */
cfg_gen *cfg_load(const char *path, cfg_errors *errs);
/* Same from a JSON text (tests). base_dir: the folder relative "model_catalog" paths start from. */
cfg_gen *cfg_load_text(const char *text, size_t len, const char *base_dir, cfg_errors *errs);

void gen_ref(cfg_gen *g);
/* Drops a reference; returns 1 when it was the last one (the caller must then hand it to the main
 * thread for cfg_free, since plugin destroy hooks run there). */
int gen_unref(cfg_gen *g);
void cfg_free(cfg_gen *g); /* destroys plugin instances; main thread */

void cfg_errors_add(cfg_errors *errs, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cfg_errors_clear(cfg_errors *errs);

/* balance.c: target runtime state, shared across reloads (main thread: new, adopt; release:
 * whoever frees a generation). */
struct tstate *balance_state_new(void);
void balance_state_release(struct tstate *s);
void balance_adopt(cfg_gen *nw, const cfg_gen *old); /* before nw becomes current */

/* Finds the route for a request; NULL when none matches. path excludes the query. get_header
 * returns 0 and sets *v / *vn when the request has that header, non-zero when it has not. */
const cfg_route *cfg_match(const cfg_gen *g, const char *method, size_t mlen, const char *path,
                           size_t plen, const char *host, size_t hlen,
                           int (*get_header)(void *ud, const char *name, const char **v, size_t *vn),
                           void *ud);

/* Expands ${VAR} and ${VAR:-default} in s; returns malloc'd text or NULL (missing variable without
 * default: *missing names it, malloc'd). "$${" escapes a literal "${". */
char *cfg_expand_env(const char *s, char **missing);



/* The sink behind aigw_diag: the loader points prefix at "/routes/2/plugins/0/config" (say) before
 * calling a plugin's create; h->diag_error appends "<prefix><pointer>: message" errors here. */
struct aigw_diag {
  cfg_errors *errs;
  const char *prefix;   /* JSON pointer of the plugin's config object */
  const char *plugin;   /* plugin name, for messages */
  size_t nerrors;       /* errors reported through this diag */
};
#endif
