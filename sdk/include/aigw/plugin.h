/* aigw/plugin.h - the aigw plugin ABI, version 1.
 *
 * Pure C11; depends on <stddef.h>, <stdint.h> and <stdarg.h> only. Plugins are trusted code loaded
 * into the gateway's process.
 *
 * THE RULES, once (each call repeats what applies to it):
 *
 * Loading.  A plugin is a shared object exporting exactly one symbol, aigw_plugin_entry(). The host
 *   passes its function table in; the plugin returns a pointer to its static descriptor, or NULL
 *   after writing a reason into err. The host refuses a plugin whose abi_major differs from its own
 *   or whose abi_minor is greater than its own, naming the file and both versions. Fields of the
 *   descriptor past its struct_size read as NULL/0. Plugins are never unloaded while the process
 *   runs. Build plugins with -fvisibility=hidden and AIGW_EXPORT on the entry (the SDK's CMake
 *   package and pkg-config file do this).
 *
 * Versioning.  Breaking change -> AIGW_ABI_MAJOR + 1. New host functions, new descriptor fields,
 *   new hooks -> AIGW_ABI_MINOR + 1, appended at the END of their struct, never reordered. New enum
 *   values may appear within a minor: every switch over an aigw enum needs a default. Test for a
 *   host function newer than 1.0 with AIGW_HAS(h, fn).
 *
 * Ownership.  Handles (aigw_req, aigw_json, aigw_event, aigw_call, aigw_diag) are opaque and owned
 *   by the host. Pointers the host returns (aigw_str contents, aigw_json nodes) are BORROWED: valid
 *   until the current hook or callback returns, or until the same thing is changed through the host,
 *   whichever is first. Data a plugin passes to the host is COPIED unless the call says otherwise.
 *   Memory that crosses the boundary in either direction is allocated with h->alloc / h->free;
 *   request-scoped scratch memory from h->req_alloc is freed by the host when the request ends.
 *
 * Threads.  create/destroy run on the main thread. Hooks and callbacks run on the worker thread that
 *   owns the request; a request never changes threads. Every host call that takes an aigw_req is
 *   worker-thread-only, except h->post, which any thread may call. Nothing a plugin does on a worker
 *   may block: waiting is done with the async calls (http_call, timer, store_*) and PAUSE.
 *
 * Flow.  Hooks return an aigw_status:
 *   CONTINUE  go on to the next plugin / phase.
 *   STOP      a response was set with h->respond or h->respond_error: skip the remaining request
 *             hooks and the upstream; response/event hooks of the plugins that ran still run.
 *   PAUSE     async work was started; the plugin calls h->resume(r, status) exactly once later
 *             (typically from the async callback). Nothing passes a paused plugin.
 *   ERROR     the plugin failed: the host answers 500 in the client's format (or the error set with
 *             h->respond_error) and logs it under the plugin's name.
 *   DROP      event hooks only: the event is not sent to the client.
 *   respond/respond_error/resume called DURING a hook take effect after the hook returns, so no host
 *   action re-enters a plugin. After respond, a returned CONTINUE counts as STOP.
 *
 * Async calls.  h->http_call, h->timer and h->store_* return an aigw_call handle (or NULL with the
 *   reason logged). Their done callback runs on the request's worker, never inside the call that
 *   started the work, and EXACTLY ONCE: with OK, ERROR, TIMEOUT or CANCELLED. When the request ends
 *   first (client gone, timeout, another plugin answered), pending calls are cancelled and their
 *   callbacks run with AIGW_CALL_CANCELLED before on_done, so user data is always freed and on_done
 *   is always the last call for a request. In a CANCELLED callback the request may be read but not
 *   resumed or answered.
 */
#ifndef AIGW_PLUGIN_H
#define AIGW_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AIGW_ABI_MAJOR 1
/* 1.1 appended: host body_member, provider_emit, body_member_raw; provider on_stream_data,
 * on_stream_end. 1.2: host usage, price, store_reserve. A plugin that uses them on an older host
 * must check h->abi_minor (or struct_size). */
#define AIGW_ABI_MINOR 3

#if defined(__GNUC__)
#define AIGW_EXPORT __attribute__((visibility("default")))
#define AIGW_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define AIGW_EXPORT
#define AIGW_PRINTF(a, b)
#endif

/* ---- opaque handles ---------------------------------------------------------------------- */
typedef struct aigw_req aigw_req;     /* OWNERSHIP: host. Valid from the first hook until on_done returns. */
typedef struct aigw_json aigw_json;   /* OWNERSHIP: host. Borrowed; see each call for its lifetime. */
typedef struct aigw_event aigw_event; /* OWNERSHIP: host. Valid during the on_event call only. */
typedef struct aigw_call aigw_call;   /* OWNERSHIP: host. Valid until its done callback returns. */
typedef struct aigw_diag aigw_diag;   /* OWNERSHIP: host. Valid during create only. */

/* A byte string. Never NUL-terminated by contract (some host strings happen to be). */
typedef struct aigw_str {
  const char *p;
  size_t n;
} aigw_str;

#define AIGW_STR(lit) ((aigw_str){(lit), sizeof(lit) - 1})

typedef enum aigw_status {
  AIGW_CONTINUE = 0,
  AIGW_STOP = 1,
  AIGW_PAUSE = 2,
  AIGW_ERROR = 3,
  AIGW_DROP = 4
} aigw_status;

typedef enum aigw_call_status {
  AIGW_CALL_OK = 0,
  AIGW_CALL_ERROR = 1,
  AIGW_CALL_TIMEOUT = 2,
  AIGW_CALL_CANCELLED = 3
} aigw_call_status;

/* Return codes of host calls that return int. */
enum {
  AIGW_OK = 0,
  AIGW_E_INVAL = -1,   /* bad argument */
  AIGW_E_PHASE = -2,   /* not allowed in the current phase (e.g. set a header after it was sent) */
  AIGW_E_NOTFOUND = -3,
  AIGW_E_NOMEM = -4,
  AIGW_E_STATE = -5    /* request already answered / resumed / ended */
};

/* Which message a header/body call addresses. */
typedef enum aigw_which {
  AIGW_CLIENT_REQUEST = 0,    /* the request as received (editable in the request phase) */
  AIGW_UPSTREAM_REQUEST = 1,  /* the request being sent upstream (provider prepare hook) */
  AIGW_UPSTREAM_RESPONSE = 2, /* the provider's response as received (provider hooks) */
  AIGW_CLIENT_RESPONSE = 3    /* the response the client will get (response phase) */
} aigw_which;

/* Kinds of stream events, set by the provider adapter. */
typedef enum aigw_event_kind {
  AIGW_EV_OTHER = 0,
  AIGW_EV_DELTA = 1,      /* text delta: event_text gives the text */
  AIGW_EV_TOOL_DELTA = 2, /* tool-call delta */
  AIGW_EV_USAGE = 3,      /* carries token usage */
  AIGW_EV_STOP = 4,       /* carries the finish reason */
  AIGW_EV_ERROR = 5,      /* an error event from the provider */
  AIGW_EV_DONE = 6        /* the stream's end marker ([DONE], message_stop) */
} aigw_event_kind;

typedef enum aigw_log_level {
  AIGW_LOG_DEBUG = 0,
  AIGW_LOG_INFO = 1,
  AIGW_LOG_WARN = 2,
  AIGW_LOG_ERROR = 3
} aigw_log_level;

typedef enum aigw_metric_kind {
  AIGW_METRIC_COUNTER = 0,
  AIGW_METRIC_GAUGE = 1,
  AIGW_METRIC_HISTOGRAM = 2
} aigw_metric_kind;

typedef enum aigw_json_type {
  AIGW_JSON_INVALID = 0,
  AIGW_JSON_NULL = 1,
  AIGW_JSON_FALSE = 2,
  AIGW_JSON_TRUE = 3,
  AIGW_JSON_NUMBER = 4,
  AIGW_JSON_STRING = 5,
  AIGW_JSON_ARRAY = 6,
  AIGW_JSON_OBJECT = 7
} aigw_json_type;

/* Token usage as the provider reported it (normalized). -1 = unknown. Grows at the end. */
typedef struct aigw_usage {
  uint32_t struct_size;
  int64_t input_tokens;       /* all prompt tokens, cached ones included */
  int64_t output_tokens;      /* all completion tokens, reasoning included */
  int64_t cached_tokens;      /* prompt tokens read from the provider's cache */
  int64_t cache_write_tokens; /* prompt tokens written to the provider's cache */
  int64_t reasoning_tokens;
} aigw_usage;

/* An HTTP call-out. Grows at the end: set struct_size = sizeof(aigw_http_spec). */
typedef struct aigw_http_spec {
  uint32_t struct_size;
  const char *method;          /* "GET", "POST", ...; NULL = GET, or POST when body.n > 0 */
  const char *url;             /* http:// or https:// */
  const aigw_str *headers;     /* pairs: name, value, name, value ...; may be NULL */
  size_t nheaders;             /* number of pairs */
  aigw_str body;               /* copied by the host before http_call returns */
  uint32_t timeout_ms;         /* total; 0 = 10000 */
  uint32_t connect_timeout_ms; /* 0 = timeout_ms */
  uint32_t max_response_bytes; /* 0 = 8 MiB; larger responses end with AIGW_CALL_ERROR */
} aigw_http_spec;

typedef struct aigw_host aigw_host;
typedef struct aigw_plugin aigw_plugin;

/* Async completion. r is NULL for detached calls. Runs exactly once (see Async calls above). */
typedef void (*aigw_done_fn)(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud);

/* ---- provider adapters --------------------------------------------------------------------
 * A provider plugin sets descriptor.provider. The host picks a target (provider instance + model),
 * then calls, on the request's worker:
 *   prepare      build the upstream request: h->set_upstream_url, h->set_header(UPSTREAM_REQUEST),
 *                h->body / h->set_body (UPSTREAM_REQUEST starts as a copy of the client request,
 *                with the client's credentials and hop-by-hop headers already removed). Returns
 *                CONTINUE to send it, STOP when it answered itself (h->provider_reply), ERROR
 *                with h->respond_error for a request it cannot serve, or PAUSE (e.g. waiting for a
 *                token refresh) and h->resume later.
 *   on_response  (non-stream) inspect the upstream response (status, body), report usage with
 *                h->set_usage, translate into the client's format if needed.
 *   on_event     (stream) classify one upstream event (h->event_set_kind), report usage, translate.
 * All three see the same void *inst the provider's create returned. */
typedef enum aigw_api {
  AIGW_API_CHAT = 0,       /* OpenAI chat completions shape */
  AIGW_API_EMBEDDINGS = 1,
  AIGW_API_MODELS = 2,
  AIGW_API_MESSAGES = 3,   /* Anthropic messages */
  AIGW_API_RESPONSES = 4,
  AIGW_API_PASSTHROUGH = 5
} aigw_api;

typedef struct aigw_provider {
  uint32_t struct_size;
  const char *wire_format; /* "openai", "anthropic", ... : what the upstream speaks */
  aigw_status (*prepare)(void *inst, aigw_req *r, void **rctx);
  aigw_status (*on_response)(void *inst, aigw_req *r, void **rctx);
  aigw_status (*on_event)(void *inst, aigw_req *r, void **rctx, aigw_event *ev);
  /* --- grown at the end (the host checks struct_size before reading these) ---
   * on_stream_data: for upstreams whose stream is not SSE (AWS event-stream, NDJSON). When set,
   *   a streaming request's 2xx answer is not parsed as SSE: every body read is handed here as it
   *   arrives (borrowed bytes, any split), and the adapter produces the client's events with
   *   h->provider_emit. on_event is not called. Return CONTINUE, or ERROR after h->end_stream.
   * on_stream_end: the upstream stream ended cleanly (transfer complete, nothing left). The
   *   adapter may emit final events; a stream is complete only once an event of kind
   *   AIGW_EV_DONE went out (emit one when the upstream format has no end marker, e.g. Gemini),
   *   otherwise the client gets an error event: a truncated answer never looks complete.
   *   Returning PAUSE (1.1) keeps the client's stream open: the adapter still holds events it
   *   will emit, the DONE one included, from one of its call-outs' callbacks (h->provider_emit
   *   is allowed there while the stream is open); the host ends the stream once DONE went out,
   *   or with an error event after idle_ms. */
  aigw_status (*on_stream_data)(void *inst, aigw_req *r, void **rctx, const char *p, size_t n);
  aigw_status (*on_stream_end)(void *inst, aigw_req *r, void **rctx);
} aigw_provider;

/* ---- the plugin descriptor (static storage in the plugin) -------------------------------- */
enum {
  AIGW_WANTS_EVENTS = 1u << 0, /* on_event is called for each stream event */
  AIGW_IS_PROVIDER = 1u << 1   /* descriptor.provider is set */
};

struct aigw_plugin {
  uint32_t abi_major, abi_minor, struct_size; /* AIGW_PLUGIN_HEADER fills these */
  const char *name;    /* unique, [a-z0-9_]+ */
  const char *version;
  int32_t priority;    /* higher runs first on the request path; reverse on responses/events */
  uint32_t flags;

  /* Main thread. cfg is the plugin's "config" object, ${ENV} references already expanded (borrowed, valid during
   * create only; NULL when absent). Validate everything; report each problem with h->diag_error and
   * return NULL. The returned instance is immutable after create and shared by all workers. */
  void *(*create)(const aigw_host *h, const aigw_json *cfg, aigw_diag *d);
  /* Main thread, after the config generation's last request has ended. */
  void (*destroy)(void *inst);

  /* Worker thread; any hook may be NULL. rctx is this (request, instance)'s slot, NULL at first. */
  aigw_status (*on_request)(void *inst, aigw_req *r, void **rctx);
  aigw_status (*on_response)(void *inst, aigw_req *r, void **rctx);
  /* One call per stream event, in the CLIENT's wire format (the provider adapter translated it).
   * Returns CONTINUE, DROP or ERROR; in ABI 1.0 an event hook cannot PAUSE (treated as CONTINUE). */
  aigw_status (*on_event)(void *inst, aigw_req *r, void **rctx, aigw_event *ev);
  /* Always the last call for a request (after every async callback); read the final record
   * (status, usage, meta) and free rctx. Runs for every plugin whose on_request ran. */
  void (*on_done)(void *inst, aigw_req *r, void *rctx);

  const aigw_provider *provider; /* provider adapters only */
};

#define AIGW_PLUGIN_HEADER AIGW_ABI_MAJOR, AIGW_ABI_MINOR, (uint32_t)sizeof(aigw_plugin)

/* The one exported symbol. Returns the descriptor or NULL with a reason written into err. */
typedef const aigw_plugin *(*aigw_plugin_entry_fn)(const aigw_host *h, char *err, size_t errlen);
#define AIGW_PLUGIN_ENTRY_SYMBOL "aigw_plugin_entry"

/* ---- the host function table ---------------------------------------------------------------
 * Append-only. AIGW_HAS(h, fn) tells whether the running host has fn. */
#define AIGW_HAS(h, fn) \
  (offsetof(aigw_host, fn) + sizeof((h)->fn) <= (h)->struct_size && (h)->fn != NULL)

struct aigw_host {
  uint32_t abi_major, abi_minor, struct_size;

  /* Experimental, unfrozen calls by name; NULL when unknown. Not covered by the ABI promise. */
  void *(*get_api)(const char *name);

  /* Memory. alloc/free: any thread. req_alloc: zeroed, freed when r ends; worker only. */
  void *(*alloc)(size_t n);
  void (*free)(void *p);
  void *(*req_alloc)(aigw_req *r, size_t n);

  /* --- request line and headers (worker thread) ---
   * method/path: of the client request. header: first value of name (case-insensitive), borrowed;
   * returns AIGW_OK or AIGW_E_NOTFOUND. header_at: the i-th header (for iteration), AIGW_E_NOTFOUND
   * past the end. set_header: replaces every value of name; value.p == NULL removes it. Copies.
   * CLIENT_RESPONSE headers may be set from the request phase on, until the response head is sent;
   * they apply to whatever answer the client gets (upstream, stream, respond, gateway error).
   * Reads work until on_done returns (also in CANCELLED callbacks); writes only while the request
   * is live (AIGW_E_INVAL after it ended). */
  int (*method)(aigw_req *r, aigw_str *out);
  int (*path)(aigw_req *r, aigw_str *out); /* request-target as received, query included */
  int (*header)(aigw_req *r, aigw_which which, aigw_str name, aigw_str *out);
  int (*header_at)(aigw_req *r, aigw_which which, size_t i, aigw_str *name, aigw_str *value);
  int (*set_header)(aigw_req *r, aigw_which which, aigw_str name, aigw_str value);
  int (*add_header)(aigw_req *r, aigw_which which, aigw_str name, aigw_str value);
  /* Status code of UPSTREAM_RESPONSE or CLIENT_RESPONSE (0 when not known yet). */
  int (*status)(aigw_req *r, aigw_which which);
  int (*set_status)(aigw_req *r, aigw_which which, int status);

  /* --- bodies (worker thread) ---
   * body_raw: the bytes (borrowed). body: the parsed JSON, parsed once on first use and shared by
   * all plugins; NULL if not JSON (a message is logged). Edit it through the json_* setters, then
   * call body_changed so the host re-serializes it once before sending. set_body replaces the
   * bytes (copied) and drops the parsed tree. */
  int (*body_raw)(aigw_req *r, aigw_which which, aigw_str *out);
  aigw_json *(*body)(aigw_req *r, aigw_which which);
  void (*body_changed)(aigw_req *r, aigw_which which);
  int (*set_body)(aigw_req *r, aigw_which which, aigw_str body);

  /* --- format-neutral view of the conversation (worker thread) ---
   * The messages of the client request (chat, messages, responses ingress) as role + text parts, in
   * order; system prompts included. text_set replaces one part's text in the underlying JSON. */
  size_t (*text_count)(aigw_req *r, aigw_which which);
  int (*text_get)(aigw_req *r, aigw_which which, size_t i, aigw_str *role, aigw_str *text);
  int (*text_set)(aigw_req *r, aigw_which which, size_t i, aigw_str text);

  /* --- JSON access (any JSON handle the host gave out; borrowed with its owner's lifetime) --- */
  aigw_json_type (*json_type)(const aigw_json *j);
  const aigw_json *(*json_get)(const aigw_json *obj, const char *key);   /* NULL if absent */
  const aigw_json *(*json_at)(const aigw_json *arr, size_t i);           /* NULL past the end */
  size_t (*json_len)(const aigw_json *j);                                /* array/object size */
  const aigw_json *(*json_pointer)(const aigw_json *j, const char *ptr); /* RFC 6901 */
  int (*json_str)(const aigw_json *j, aigw_str *out);                    /* AIGW_E_INVAL if not a string */
  int (*json_num)(const aigw_json *j, double *out);
  int (*json_bool)(const aigw_json *j, int *out);
  /* Object member name of the i-th member (objects only). */
  int (*json_key_at)(const aigw_json *obj, size_t i, aigw_str *key);
  /* Setters (request/response bodies only; not on create's cfg). They copy. */
  int (*json_set_str)(aigw_json *obj, const char *key, aigw_str v);
  int (*json_set_num)(aigw_json *obj, const char *key, double v);
  int (*json_set_bool)(aigw_json *obj, const char *key, int v);
  int (*json_set_raw)(aigw_json *obj, const char *key, aigw_str json_text); /* AIGW_E_INVAL if not JSON */
  int (*json_remove)(aigw_json *obj, const char *key);
  aigw_json *(*json_mut)(aigw_json *root, const char *ptr); /* mutable node by JSON pointer */
  /* Serialize j compactly into request memory (freed with r). */
  int (*json_dump)(aigw_req *r, const aigw_json *j, aigw_str *out);

  /* --- flow control (worker thread; applied after the current hook returns) ---
   * respond: answer the client with this status, content type and body (copied).
   * respond_error: answer with an error rendered in the client's wire format (OpenAI or Anthropic
   *   shape). type is the error type (e.g. "invalid_request_error", "rate_limit_error").
   * resume: end a PAUSE; st is CONTINUE, STOP (after respond) or ERROR. Exactly once per PAUSE. */
  int (*respond)(aigw_req *r, int status, aigw_str content_type, aigw_str body);
  int (*respond_error)(aigw_req *r, int status, const char *type, const char *message);
  int (*resume)(aigw_req *r, aigw_status st);

  /* --- request facts and shared metadata (worker thread) ---
   * meta_set/meta_get: cross-plugin key-value on the request, keys "ns.key"; values copied; meta is
   * also written into the access-log record when the key starts with "log.". Host keys:
   * "aigw.request_id", "aigw.route", "aigw.provider", "aigw.model" (read-only),
   * "aigw.target_model" (model chosen by the route's target, may be empty). */
  int (*meta_set)(aigw_req *r, const char *key, aigw_str v);
  int (*meta_get)(aigw_req *r, const char *key, aigw_str *v);
  aigw_api (*api)(aigw_req *r);
  int (*is_stream)(aigw_req *r); /* the client asked for a stream */

  /* --- provider adapter services (provider hooks only) --- */
  int (*set_upstream_url)(aigw_req *r, aigw_str url);
  int (*set_usage)(aigw_req *r, const aigw_usage *u); /* merged: fields < 0 are left unchanged */
  /* Answer from the provider itself as if the upstream had answered (status, content type, body);
   * a text/event-stream body is parsed into events and runs through the event hooks. Copied.
   * Allowed in prepare, or from an async callback while prepare is paused. */
  int (*provider_reply)(aigw_req *r, int status, aigw_str content_type, aigw_str body);

  /* --- stream events (on_event hooks) ---
   * event_name: the SSE event: field ("" if none). event_data: the data (borrowed).
   * event_json: data parsed once, shared by all plugins; NULL when not JSON. After editing it
   * call event_changed. event_set_data replaces the data (copied; drops the parsed tree).
   * event_text: the format-neutral delta text (DELTA events); event_set_text replaces it.
   * emit_event inserts a new event after the current one (or at the end of the stream's current
   * write when called outside an event hook, e.g. from a timer). end_stream ends the client's
   * stream with an error event in the client's format (never a [DONE]). */
  aigw_event_kind (*event_kind)(aigw_event *ev);
  int (*event_set_kind)(aigw_event *ev, aigw_event_kind k);
  int (*event_name)(aigw_event *ev, aigw_str *out);
  int (*event_data)(aigw_event *ev, aigw_str *out);
  aigw_json *(*event_json)(aigw_event *ev);
  void (*event_changed)(aigw_event *ev);
  int (*event_set_data)(aigw_event *ev, aigw_str data);
  int (*event_text)(aigw_event *ev, aigw_str *out);
  int (*event_set_text)(aigw_event *ev, aigw_str text);
  int (*emit_event)(aigw_req *r, aigw_str name, aigw_str data);
  int (*end_stream)(aigw_req *r, const char *type, const char *message);

  /* --- async work (worker thread; see "Async calls") --- */
  aigw_call *(*http_call)(aigw_req *r, const aigw_http_spec *spec, aigw_done_fn done, void *ud);
  aigw_call *(*timer)(aigw_req *r, uint32_t ms, aigw_done_fn done, void *ud);
  void (*cancel)(aigw_call *c); /* done then runs with CANCELLED (later, on the loop) */
  /* Results, valid during the done callback only. */
  int (*call_status_code)(aigw_call *c);                          /* HTTP status, 0 if none */
  int (*call_body)(aigw_call *c, aigw_str *out);                  /* borrowed */
  int (*call_header)(aigw_call *c, aigw_str name, aigw_str *out); /* borrowed */
  int (*call_error)(aigw_call *c, aigw_str *out);                 /* human text for ERROR/TIMEOUT */
  int64_t (*call_int)(aigw_call *c);                              /* store results */
  /* Runs fn(r, ud) on r's worker. The only call any thread may make; safe even when r has already
   * been freed (the host checks a registry of live requests, it does not read r). Returns
   * AIGW_E_STATE when r has ended (then fn never runs; the caller still owns ud). When r ends after
   * a successful post but before fn ran, fn never runs: free ud from on_done (which runs on r's
   * worker before r is freed), e.g. through a refcount shared with the posting thread. */
  int (*post)(aigw_req *r, void (*fn)(aigw_req *r, void *ud), void *ud);

  /* --- shared store (worker thread; async; done runs exactly once) ---
   * Windowed counters and key-value with TTL, shared by all workers (and all nodes when the store
   * is Redis-backed). store_incr adds `by` to key over a sliding window of window_ms and reports
   * the window's total through call_int. store_get's value comes through call_body (AIGW_CALL_ERROR
   * with call_status_code 404 when missing). */
  aigw_call *(*store_incr)(aigw_req *r, aigw_str key, int64_t by, uint64_t window_ms,
                           aigw_done_fn done, void *ud);
  aigw_call *(*store_get)(aigw_req *r, aigw_str key, aigw_done_fn done, void *ud);
  aigw_call *(*store_set)(aigw_req *r, aigw_str key, aigw_str value, uint64_t ttl_ms,
                          aigw_done_fn done, void *ud);

  /* --- logs and metrics ---
   * log: any thread when r is NULL, else r's worker; tagged with plugin name and request id.
   * log_field: add a field (value is JSON text, copied) to the request's access-log record.
   * metric_define: during create only; returns an id (or UINT32_MAX with a diag). Names get the
   *   prefix "aigw_plugin_". labels is NULL-terminated (at most 8). Series are bounded.
   * metric_add: any worker; counter += v, gauge += v, histogram observes v. */
  int (*log_enabled)(aigw_log_level level);
  void (*log)(aigw_req *r, aigw_log_level level, const char *fmt, ...) AIGW_PRINTF(3, 4);
  int (*log_field)(aigw_req *r, const char *key, aigw_str json_value);
  uint32_t (*metric_define)(aigw_diag *d, aigw_metric_kind kind, const char *name,
                            const char *help, const char *const *labels);
  void (*metric_add)(uint32_t id, const aigw_str *label_values, double v);

  /* --- config errors (create only) ---
   * Reports one problem at a JSON pointer inside the plugin's config; the host prefixes the
   * route and plugin, collects every error and refuses the configuration. */
  void (*diag_error)(aigw_diag *d, const char *json_pointer, const char *fmt, ...) AIGW_PRINTF(3, 4);

  /* --- fast field access (worker thread) ---
   * body_member: one top-level member of a JSON-object body, parsed on its own without parsing
   * the rest of the body (for adapters that need one field, e.g. "usage", of a large answer).
   * *st (may be NULL) gets AIGW_OK when found, AIGW_E_NOTFOUND when the body is a JSON object
   * without that member, AIGW_E_INVAL when the body is not a JSON object. The node is borrowed,
   * read-only, valid until the request ends; to edit, use h->body. */
  const aigw_json *(*body_member)(aigw_req *r, aigw_which which, const char *key, int *st);

  /* --- translated streams (provider stream hooks only: on_event, on_stream_data,
   * on_stream_end) ---
   * provider_emit: one event in the CLIENT's wire format, produced by translating the upstream's
   * stream; kind classifies it (DELTA: text, TOOL_DELTA, USAGE, STOP, ERROR, DONE: the stream's
   * end marker). It runs through the plugins' event hooks exactly like an untranslated event,
   * after the provider hook returns, in emission order, before the current upstream event (a
   * translating adapter returns DROP for that one). name: the SSE event name (empty for none);
   * name and data are copied. */
  int (*provider_emit)(aigw_req *r, aigw_event_kind kind, aigw_str name, aigw_str data);

  /* --- fast field access, raw (worker thread) ---
   * body_member_raw: the JSON text of one top-level member of a JSON-object body, without parsing
   * it (e.g. to read two numbers out of "usage"). *out is borrowed, valid until the body changes
   * or the request ends. AIGW_OK, AIGW_E_NOTFOUND (an object without that member), AIGW_E_INVAL
   * (not a JSON object), AIGW_E_STATE (the body was parsed or edited: use body_member). */
  int (*body_member_raw)(aigw_req *r, aigw_which which, const char *key, aigw_str *out);

  /* --- 1.2: accounting (worker thread) ---
   * usage: the request's token usage as the provider reported it so far (all fields -1 until it
   *   did; final in on_done). out->struct_size must be set by the caller.
   * price: the cost in USD of usage u on the model catalog's model `model` (prices per million
   *   tokens, cached tokens at their own rate). AIGW_OK, or AIGW_E_NOTFOUND when the model has no
   *   price or u lacks what pricing needs: never a made-up 0.
   * store_reserve: atomic check-and-add for "reserve, then settle": adds `by` to the windowed
   *   counter key (as store_incr) only if its total stays <= limit. done runs with AIGW_CALL_OK;
   *   call_status_code is 200 when added, 429 when refused; call_int is the total (after the add,
   *   or the current one). Settle later with store_incr(key, real - reserved) (negative refunds).
   *   Many requests at once, on any number of workers or nodes (Redis), never take the total
   *   past limit. */
  int (*usage)(aigw_req *r, aigw_usage *out);
  int (*price)(aigw_req *r, aigw_str model, const aigw_usage *u, double *usd);
  aigw_call *(*store_reserve)(aigw_req *r, aigw_str key, int64_t by, int64_t limit, uint64_t window_ms, aigw_done_fn done, void *ud);

  /* --- 1.3: per-request provider credentials, "bring your own key" (worker thread) ---
   * set_credential: from a request hook (before the upstream request is made; AIGW_E_PHASE
   *   after): the secret (an API key) the adapter of provider `provider` (its name under
   *   "providers") uses for THIS request instead of its configured key; other providers (a
   *   fallback elsewhere) keep their own keys, so a secret never reaches another vendor. Both
   *   are copied into the request's memory, never logged, and wiped when the request ends. An
   *   empty secret removes it. AIGW_E_INVAL for control characters or more than 8 KiB.
   * credential: for provider adapters (in their hooks, for the attempt they serve): the secret
   *   set for this provider. *out is borrowed, valid until the request ends.
   *   AIGW_OK, AIGW_E_NOTFOUND (none: use the configured key), AIGW_E_PHASE (not an adapter). */
  int (*set_credential)(aigw_req *r, aigw_str provider, aigw_str secret);
  int (*credential)(aigw_req *r, aigw_str *out);
};

#ifdef __cplusplus
}
#endif
#endif /* AIGW_PLUGIN_H */
