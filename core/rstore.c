/* rstore.c - the host store on Redis ("store": {"backend": "redis"}), so that every gateway node
 * shares the same counters and values (limits, budgets, quotas, caches).
 *
 * Connections. Each worker keeps one non-blocking connection per Redis node (hiredis' async API
 * on the worker's event_base), opened on first use and re-opened after a failure with a back-off
 * (250 ms doubling to 4 s; while a node is down, calls for it fail at once instead of queueing).
 * Every command has a deadline (timeout_ms, the call's own timer in calls.c): a slow or dead Redis
 * gives the plugin AIGW_CALL_ERROR quickly, never a hang; what to do then (fail open or closed) is
 * the plugin's policy.
 *
 * Redis Cluster ("cluster": true, seed "nodes"). A key goes to the node that owns its hash slot
 * (CRC16 of the key's hash tag, as Redis computes it). The slot map comes from CLUSTER SLOTS, asked
 * when the worker first uses the store and again after a redirect or a lost node (at most every
 * 200 ms). A MOVED answer updates the map and sends the command again to the owner; ASK sends it
 * once, after ASKING, to the importing node (a slot being migrated). At most 5 redirects per
 * command. Every key the store writes carries the caller's key as its hash tag ("<prefix>{key}"
 * for a counter, "<prefix>kv:{key}" for a value), so a key's slot is the caller's key's.
 *
 * Windowed counters run as Lua scripts (loaded once per connection, then EVALSHA) with the same
 * sliding-window estimate as the in-process store (store.h): fixed windows k = now / W on Redis'
 * own clock (TIME), so nodes with skewed clocks agree.
 *
 * Batching. Counter commands (incr, reserve) issued on the same key during one turn of the
 * worker's event loop are sent as ONE script call at the end of the turn, which applies them in
 * the order they were issued, exactly as separate calls would (each reserve is admitted or refused
 * against the total the earlier ones left; each incr gets the total as of its own increment). This
 * is what keeps Redis' work per request low under load: with c concurrent requests, a hot key costs
 * about one script run per loop turn, not one per request. The wait is the rest of the current loop
 * turn; nothing is delayed by a timer.
 *
 * Ownership: a command's privdata is an rpend (malloc'd, with its formatted command for resending
 * after a redirect) that outlives its calls: each call points at its slot in the rpend while it
 * waits, and a call that ended (deadline, cancel) clears that slot, so a late reply frees the rpend
 * and touches nothing else. A batch's increments are sent even when its calls ended before the
 * flush (a settle issued as its request finishes must still count). Threads: worker only. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include <openssl/sha.h>

#include "core.h"

#define RS_MAX_NODES 64
#define RS_BATCH_MAX 64   /* calls per script run */
#define RS_MAX_OPEN 32    /* batches being gathered per loop turn */
#define RS_REDIRECTS 5
#define RS_BREAK_AFTER 5  /* commands in a row a node let time out: then it counts as down */
#define RS_SLOTS 16384

enum { OP_INCR = 0, OP_GET = 1, OP_SET = 2, OP_RESERVE = 3 };

struct rclient;

typedef struct rnode {
  struct rclient *cl;
  redisAsyncContext *ac;
  int connected;
  uint64_t started_ms;   /* connect started */
  uint64_t down_until;   /* back-off: no connect before */
  uint32_t backoff_ms;
  uint32_t timeouts;     /* commands in a row that got no answer within timeout_ms */
  uint16_t port;
  char host[256];
} rnode;

struct rpend {
  struct rclient *cl;
  int op;
  int redirects;
  int sent;              /* 0 while the batch is being gathered */
  rnode *node;           /* where it went last (the client outlives it) */
  uint16_t slot;
  uint64_t window_ms;
  int64_t limit;
  char *cmd;             /* formatted (redisFormatCommandArgv), kept for MOVED/ASK; freed with the rpend */
  size_t cmdlen;
  size_t klen;
  uint32_t n, cap;       /* calls in this command; room for */
  aigw_call **call;      /* [cap], in this allocation; NULL once that call ended */
  int64_t *by;           /* [cap], in this allocation */
  char key[];            /* klen bytes (+ NUL), then call[], then by[] */
};

/* One allocation: the struct, the key, room for cap calls. NULL when out of memory. */
static struct rpend *pend_alloc(const char *key, size_t klen, uint32_t cap) {
  size_t koff = (klen + 1 + 7) & ~(size_t)7;
  struct rpend *p = malloc(sizeof *p + koff + cap * (sizeof(aigw_call *) + sizeof(int64_t)));
  if (!p) return NULL;
  memset(p, 0, sizeof *p);
  memcpy(p->key, key, klen);
  p->key[klen] = 0;
  p->klen = klen;
  p->cap = cap;
  p->call = (aigw_call **)(void *)(p->key + koff);
  p->by = (int64_t *)(void *)(p->call + cap);
  return p;
}

/* p with room for twice as many calls (its calls re-pointed); NULL when out of memory (p kept). */
static struct rpend *pend_grow(struct rpend *p) {
  struct rpend *q = pend_alloc(p->key, p->klen, p->cap * 2);
  if (!q) return NULL;
  struct aigw_call **call = q->call;
  int64_t *by = q->by;
  uint32_t cap = q->cap;
  memcpy(q, p, sizeof *q);
  q->call = call, q->by = by, q->cap = cap;
  memcpy(q->call, p->call, p->n * sizeof *p->call);
  memcpy(q->by, p->by, p->n * sizeof *p->by);
  for (uint32_t i = 0; i < q->n; i++)
    if (q->call[i]) q->call[i]->rpend = q;
  free(p);
  return q;
}

typedef struct rclient {
  worker *w;
  int cluster;
  int closing;           /* being freed: replies only free their rpend */
  char sig[512];         /* the settings it was made for (a reload that changes them makes a new client) */
  uint64_t gen_id;       /* the config generation last found to have these settings */
  rnode *node[RS_MAX_NODES];
  size_t nnodes;         /* node[0..nseeds) are the configured seeds */
  size_t nseeds;
  uint8_t slot_node[RS_SLOTS]; /* node index + 1; 0 = not known (ask a seed) */
  uint64_t slots_asked_ms;
  int slots_pending;
  struct rpend *open[RS_MAX_OPEN];
  size_t nopen;
  struct event flush_ev;
  int flush_armed;
  uint32_t timeout_ms;
  char *password;
} rclient;

/* Each script takes its counter's key, its parameters, then one "by" per batched call. A counter
 * is ONE hash, its fields the window numbers k (the current and the previous one are read; older
 * ones are deleted as windows advance, and the hash expires after 2 windows without increments).
 * One key, declared to the script, that exists once counted: so a Redis Cluster slot migration
 * answers ASK exactly when the counter has moved, and the count carries over whole. */
static const char INCR_LUA[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local W = tonumber(ARGV[1]) local sum = 0 "
    "for i = 2, #ARGV do sum = sum + tonumber(ARGV[i]) end "
    "local k = math.floor(now / W) local e = now - k * W "
    "local c "
    "if sum ~= 0 then c = redis.call('HINCRBY', KEYS[1], k, sum) redis.call('HDEL', KEYS[1], k - 2) "
    "  redis.call('PEXPIRE', KEYS[1], 2 * W) "
    "else c = tonumber(redis.call('HGET', KEYS[1], k) or '0') end "
    "local p = tonumber(redis.call('HGET', KEYS[1], k - 1) or '0') "
    "return c + math.ceil(p * (W - e) / W)";

static const char RESERVE_LUA[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local limit = tonumber(ARGV[1]) local W = tonumber(ARGV[2]) "
    "local k = math.floor(now / W) local e = now - k * W "
    "local c = tonumber(redis.call('HGET', KEYS[1], k) or '0') "
    "local p = tonumber(redis.call('HGET', KEYS[1], k - 1) or '0') "
    "local total = c + math.ceil(p * (W - e) / W) "
    "local add = 0 local out = {} "
    "for i = 3, #ARGV do local by = tonumber(ARGV[i]) "
    "  if by > 0 and total + by > limit then out[#out + 1] = 0 "
    "  else total = total + by add = add + by out[#out + 1] = 1 end "
    "  out[#out + 1] = total end "
    "if add ~= 0 then redis.call('HINCRBY', KEYS[1], k, add) redis.call('HDEL', KEYS[1], k - 2) "
    "  redis.call('PEXPIRE', KEYS[1], 2 * W) end "
    "return out";

/* The scripts' SHA-1 (hex), for EVALSHA: each connection loads both first (SCRIPT LOAD is the
 * first thing queued on it, and Redis runs one connection's commands in order), so the script
 * bodies cross the wire once per connection, not once per call. */
static char incr_sha[41], reserve_sha[41];
static uint16_t crc_tab[256];
static pthread_once_t rs_once = PTHREAD_ONCE_INIT;

static void sha_hex(const char *s, char out[41]) {
  unsigned char h[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)s, strlen(s), h);
  for (int i = 0; i < SHA_DIGEST_LENGTH; i++) snprintf(out + 2 * i, 3, "%02x", h[i]);
}
static void rs_init(void) {
  sha_hex(INCR_LUA, incr_sha);
  sha_hex(RESERVE_LUA, reserve_sha);
  for (unsigned i = 0; i < 256; i++) { /* CRC16-CCITT (XMODEM), Redis Cluster's key hash */
    uint16_t c = (uint16_t)(i << 8);
    for (int b = 0; b < 8; b++) c = (uint16_t)(c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1);
    crc_tab[i] = c;
  }
}

/* The hash slot of a key, as Redis Cluster computes it (hash tag rule included). */
static uint16_t key_slot(const char *k, size_t n) {
  const char *o = memchr(k, '{', n);
  if (o) {
    const char *c = memchr(o + 1, '}', n - (size_t)(o + 1 - k));
    if (c && c > o + 1) {
      k = o + 1;
      n = (size_t)(c - k);
    }
  }
  uint16_t crc = 0;
  for (size_t i = 0; i < n; i++) crc = (uint16_t)((crc << 8) ^ crc_tab[((crc >> 8) ^ (unsigned char)k[i]) & 0xff]);
  return crc & (RS_SLOTS - 1);
}

/* ---- nodes ---- */

static void ask_slots(rclient *cl, int force);

static void on_connect(const redisAsyncContext *ac, int status) {
  rnode *nd = ac->data;
  if (!nd || nd->ac != ac) return;
  if (status != REDIS_OK) {
    log_msg(AIGW_LOG_WARN, "store: cannot connect to redis at %s:%u: %s; store calls for it fail for %u ms", nd->host,
            nd->port, ac->errstr, nd->backoff_ms);
    nd->ac = NULL; /* hiredis frees the context after this callback */
    nd->connected = 0;
    nd->down_until = now_ms() + nd->backoff_ms;
    nd->backoff_ms = nd->backoff_ms < 4000 ? nd->backoff_ms * 2 : 4000;
    return;
  }
  nd->connected = 1;
  nd->backoff_ms = 250;
  log_msg(AIGW_LOG_INFO, "store: worker %u connected to redis at %s:%u", nd->cl->w->id, nd->host, nd->port);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  rnode *nd = ac->data;
  if (!nd || nd->ac != ac) return;
  if (status != REDIS_OK)
    log_msg(AIGW_LOG_WARN, "store: lost the redis connection to %s:%u: %s", nd->host, nd->port, ac->errstr);
  nd->ac = NULL;
  nd->connected = 0;
  nd->down_until = now_ms() + nd->backoff_ms;
  if (nd->cl->cluster && !nd->cl->closing) ask_slots(nd->cl, 0); /* a failover may have moved its slots */
}

static void node_drop(rnode *nd) {
  if (!nd->ac) return;
  redisAsyncContext *ac = nd->ac;
  nd->ac = NULL; /* first: the disconnect callback must not start a back-off */
  nd->connected = 0;
  redisAsyncFree(ac);
}

/* The node's connection, connecting when needed; NULL while it is down. */
static redisAsyncContext *node_ac(rnode *nd) {
  rclient *cl = nd->cl;
  uint64_t now = now_ms();
  if (nd->ac && !nd->connected && now - nd->started_ms > 2u * cl->timeout_ms + 100) {
    node_drop(nd); /* connect hangs: give up on it */
    nd->down_until = now + nd->backoff_ms;
  }
  if (nd->ac) return nd->ac;
  if (now < nd->down_until) return NULL;
  redisAsyncContext *ac = redisAsyncConnect(nd->host, nd->port);
  if (!ac) return NULL;
  if (ac->err) {
    log_msg(AIGW_LOG_WARN, "store: redis at %s:%u: %s", nd->host, nd->port, ac->errstr);
    redisAsyncFree(ac);
    nd->down_until = now + nd->backoff_ms;
    return NULL;
  }
  ac->data = nd;
  redisLibeventAttach(ac, cl->w->base);
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  nd->ac = ac;
  nd->started_ms = now;
  if (cl->password) redisAsyncCommand(ac, NULL, NULL, "AUTH %s", cl->password);
  redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s", INCR_LUA);
  redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s", RESERVE_LUA);
  return ac;
}

/* The node host:port (added when new); -1 when the table is full. */
static int node_find(rclient *cl, const char *host, size_t hl, uint16_t port) {
  for (size_t i = 0; i < cl->nnodes; i++)
    if (cl->node[i]->port == port && strlen(cl->node[i]->host) == hl && !memcmp(cl->node[i]->host, host, hl))
      return (int)i;
  if (cl->nnodes == RS_MAX_NODES || hl >= sizeof cl->node[0]->host) return -1;
  rnode *nd = calloc(1, sizeof *nd);
  if (!nd) return -1;
  nd->cl = cl;
  nd->backoff_ms = 250;
  nd->port = port;
  memcpy(nd->host, host, hl);
  nd->host[hl] = 0;
  cl->node[cl->nnodes] = nd;
  return (int)cl->nnodes++;
}

/* "host:port" at s (length n) → node index, or -1 */
static int node_parse(rclient *cl, const char *s, size_t n) {
  const char *colon = NULL;
  for (size_t i = n; i > 0; i--)
    if (s[i - 1] == ':') {
      colon = s + i - 1;
      break;
    }
  if (!colon || colon == s) return -1;
  unsigned long port = 0;
  for (const char *p = colon + 1; p < s + n; p++) {
    if (*p < '0' || *p > '9') return -1;
    port = port * 10 + (unsigned long)(*p - '0');
    if (port > 65535) return -1;
  }
  return port ? node_find(cl, s, (size_t)(colon - s), (uint16_t)port) : -1;
}

/* ---- the cluster's slot map ---- */

static void on_slots(redisAsyncContext *ac, void *r, void *privdata) {
  rclient *cl = privdata;
  rnode *asked = ac->data;
  redisReply *rep = r;
  if (cl->closing) return;
  cl->slots_pending = 0;
  if (!rep || rep->type != REDIS_REPLY_ARRAY) {
    if (rep && rep->type == REDIS_REPLY_ERROR)
      log_msg(AIGW_LOG_WARN, "store: redis at %s:%u answered CLUSTER SLOTS with: %.200s (is it a cluster?)",
              asked->host, asked->port, rep->str);
    return;
  }
  for (size_t i = 0; i < rep->elements; i++) {
    redisReply *e = rep->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
        e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY ||
        e->element[2]->elements < 2 || e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
      continue;
    long long a = e->element[0]->integer, b = e->element[1]->integer, port = e->element[2]->element[1]->integer;
    redisReply *h = e->element[2]->element[0];
    const char *host = asked->host;
    size_t hl = strlen(asked->host);
    if (h->type == REDIS_REPLY_STRING && h->len && strcmp(h->str, "?")) host = h->str, hl = h->len;
    if (a < 0 || b >= RS_SLOTS || a > b || port <= 0 || port > 65535) continue;
    int idx = node_find(cl, host, hl, (uint16_t)port);
    if (idx < 0) {
      log_msg(AIGW_LOG_WARN, "store: more than %d redis nodes; slots %lld-%lld stay unmapped", RS_MAX_NODES, a, b);
      continue;
    }
    memset(cl->slot_node + a, idx + 1, (size_t)(b - a + 1));
  }
}

/* Asks a reachable node for the slot map (at most every 200 ms unless forced). */
static void ask_slots(rclient *cl, int force) {
  uint64_t now = now_ms();
  if (cl->slots_pending && now - cl->slots_asked_ms < 2u * cl->timeout_ms + 100) return;
  if (!force && now - cl->slots_asked_ms < 200) return;
  for (size_t i = 0; i < cl->nnodes; i++) {
    redisAsyncContext *ac = node_ac(cl->node[i]);
    if (!ac) continue;
    if (redisAsyncCommand(ac, on_slots, cl, "CLUSTER SLOTS") == REDIS_OK) {
      cl->slots_pending = 1;
      cl->slots_asked_ms = now;
    }
    return;
  }
}

/* ---- the worker's client ---- */

static void flush_open(evutil_socket_t fd, short what, void *arg);

static void settings_sig(const cfg_gen *g, char *out, size_t cap) {
  int n = snprintf(out, cap, "%d|%s|%u|%u|%s", g->redis_cluster, g->redis_host, (unsigned)g->redis_port,
                   (unsigned)g->redis_timeout_ms, g->redis_password ? g->redis_password : "");
  for (size_t i = 0; i < g->redis_nnodes && n > 0 && (size_t)n < cap; i++)
    n += snprintf(out + n, cap - (size_t)n, "|%s", g->redis_nodes[i]);
}

static void client_free(rclient *cl);

static rclient *client_get(worker *w, const cfg_gen *g) {
  rclient *cl = w->rstore;
  if (cl && cl->gen_id == g->id) return cl; /* checked for this generation already */
  char sig[512];
  settings_sig(g, sig, sizeof sig);
  if (cl && strcmp(cl->sig, sig)) { /* a reload moved the store: pending replies fail, callbacks run */
    client_free(cl);
    cl = w->rstore = NULL;
  }
  if (cl) {
    cl->gen_id = g->id;
    return cl;
  }
  pthread_once(&rs_once, rs_init);
  cl = calloc(1, sizeof *cl);
  if (!cl) return NULL;
  cl->w = w;
  cl->cluster = g->redis_cluster;
  cl->timeout_ms = g->redis_timeout_ms;
  snprintf(cl->sig, sizeof cl->sig, "%s", sig);
  cl->gen_id = g->id;
  if (g->redis_password && !(cl->password = strdup(g->redis_password))) {
    free(cl);
    return NULL;
  }
  event_assign(&cl->flush_ev, w->base, -1, 0, flush_open, cl);
  node_find(cl, g->redis_host, strlen(g->redis_host), g->redis_port);
  for (size_t i = 0; i < g->redis_nnodes; i++) node_parse(cl, g->redis_nodes[i], strlen(g->redis_nodes[i]));
  if (!cl->nnodes) {
    free(cl->password);
    free(cl);
    return NULL;
  }
  cl->nseeds = cl->nnodes;
  w->rstore = cl;
  if (cl->cluster) ask_slots(cl, 1);
  return cl;
}

static void fail_pend(struct rpend *p, const char *msg);

static void client_free(rclient *cl) {
  cl->closing = 1;
  if (cl->flush_armed) event_del(&cl->flush_ev);
  for (size_t i = 0; i < cl->nopen; i++) fail_pend(cl->open[i], "redis: the store closed");
  cl->nopen = 0;
  for (size_t i = 0; i < cl->nnodes; i++) node_drop(cl->node[i]); /* pending replies run with NULL: freed */
  for (size_t i = 0; i < cl->nnodes; i++) free(cl->node[i]);
  free(cl->password);
  free(cl);
}

void rstore_shutdown(worker *w) {
  rclient *cl = w->rstore;
  if (!cl) return;
  w->rstore = NULL;
  client_free(cl);
}

/* ---- commands ---- */

static void pend_free(struct rpend *p) {
  if (p->cmd) redisFreeCommand(p->cmd);
  free(p);
}

/* Completes every call still waiting on p with an error, and frees p. */
static void fail_pend(struct rpend *p, const char *msg) {
  for (uint32_t i = 0; i < p->n; i++) {
    aigw_call *c = p->call[i];
    if (!c) continue;
    c->rpend = NULL;
    snprintf(c->errbuf, sizeof c->errbuf, "%.250s", msg);
    call_store_complete(c, AIGW_CALL_ERROR);
  }
  pend_free(p);
}

/* The node for a slot: the map's, else the first seed. */
static rnode *slot_owner(rclient *cl, uint16_t slot) {
  uint8_t i = cl->cluster ? cl->slot_node[slot] : 0;
  return i && i <= cl->nnodes ? cl->node[i - 1] : cl->node[0];
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Sends p's formatted command to node nd (after ASKING when ask); 0 sent, -1 not (node down). */
static int pend_send(struct rpend *p, rnode *nd, int ask) {
  redisAsyncContext *ac = node_ac(nd);
  if (!ac) return -1;
  if (ask && redisAsyncCommand(ac, NULL, NULL, "ASKING") != REDIS_OK) return -1;
  if (redisAsyncFormattedCommand(ac, on_reply, p, p->cmd, p->cmdlen) != REDIS_OK) return -1;
  p->node = nd;
  return 0;
}

/* Formats p's command (the batch is complete). 0 ok, -1 out of memory. */
static int pend_format(struct rpend *p) {
  const char *argv[RS_BATCH_MAX + 6];
  size_t len[RS_BATCH_MAX + 6];
  char nums[RS_BATCH_MAX + 2][24]; /* each number its own buffer */
  int argc = 0, nn = 0;
#define ARG(s, n) (argv[argc] = (s), len[argc] = (n), argc++)
#define NUM(v) (snprintf(nums[nn], sizeof nums[nn], "%lld", (long long)(v)), ARG(nums[nn], strlen(nums[nn])), nn++)
  if (p->op == OP_INCR || p->op == OP_RESERVE) {
    ARG("EVALSHA", 7);
    ARG(p->op == OP_INCR ? incr_sha : reserve_sha, 40);
    ARG("1", 1);
    ARG(p->key, p->klen);
    if (p->op == OP_RESERVE) NUM(p->limit);
    NUM((long long)p->window_ms);
    for (uint32_t i = 0; i < p->n; i++) NUM(p->by[i]);
  }
#undef NUM
#undef ARG
  int n = redisFormatCommandArgv(&p->cmd, argc, argv, len);
  if (n < 0) return -1;
  p->cmdlen = (size_t)n;
  return 0;
}

static void send_pend(struct rpend *p) {
  p->sent = 1;
  if (!p->cmd && pend_format(p) < 0) {
    fail_pend(p, "out of memory");
    return;
  }
  rnode *nd = slot_owner(p->cl, p->slot);
  if (pend_send(p, nd, 0) < 0) {
    char msg[400];
    snprintf(msg, sizeof msg, "redis at %s:%u is unavailable", nd->host, (unsigned)nd->port);
    if (p->cl->cluster) ask_slots(p->cl, 0);
    fail_pend(p, msg);
  }
}

static void flush_open(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  rclient *cl = arg;
  cl->flush_armed = 0;
  size_t n = cl->nopen;
  cl->nopen = 0;
  struct rpend *batch[RS_MAX_OPEN];
  memcpy(batch, cl->open, n * sizeof *batch);
  for (size_t i = 0; i < n; i++) send_pend(batch[i]);
}

/* A redirect (MOVED or ASK): 1 handled (p was sent elsewhere or failed), 0 not a redirect. */
static int redirect(struct rpend *p, const redisReply *rep) {
  int moved = !strncmp(rep->str, "MOVED ", 6), ask = !strncmp(rep->str, "ASK ", 4);
  if (!moved && !ask) return 0;
  rclient *cl = p->cl;
  const char *s = rep->str + (moved ? 6 : 4);
  char *end;
  unsigned long slot = strtoul(s, &end, 10);
  if (*end != ' ' || slot >= RS_SLOTS) return 0;
  int idx = node_parse(cl, end + 1, strlen(end + 1));
  if (idx < 0) return 0;
  if (++p->redirects > RS_REDIRECTS) {
    fail_pend(p, "redis cluster: too many redirects (the slot map keeps changing)");
    return 1;
  }
  if (moved) {
    cl->slot_node[slot] = (uint8_t)(idx + 1);
    ask_slots(cl, 0);
  }
  rnode *nd = cl->node[idx];
  if (pend_send(p, nd, ask) < 0) {
    char msg[400];
    snprintf(msg, sizeof msg, "redis at %s:%u is unavailable", nd->host, (unsigned)nd->port);
    fail_pend(p, msg);
  }
  return 1;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata) {
  struct rpend *p = privdata;
  redisReply *rep = r;
  if (p->cl->closing || !rep) {
    fail_pend(p, "redis: the connection closed before the answer");
    return;
  }
  if (p->node) p->node->timeouts = 0; /* it answers */
  if (rep->type == REDIS_REPLY_ERROR) {
    if (p->cl->cluster && redirect(p, rep)) return;
    if (!strncmp(rep->str, "NOSCRIPT", 8)) redisAsyncDisconnect(ac); /* scripts flushed: reconnect, reload */
    char msg[300];
    snprintf(msg, sizeof msg, "redis: %.200s", rep->str);
    fail_pend(p, msg);
    return;
  }
  if (p->op == OP_INCR) {
    if (rep->type != REDIS_REPLY_INTEGER) {
      fail_pend(p, "redis: unexpected answer to the counter script");
      return;
    }
    int64_t total = rep->integer; /* after every increment: call i sees it less the later ones */
    for (uint32_t i = p->n; i-- > 0;) {
      aigw_call *c = p->call[i];
      if (c) {
        c->rpend = NULL;
        c->int_result = total;
        call_store_complete(c, AIGW_CALL_OK);
      }
      total -= p->by[i];
    }
  } else if (p->op == OP_RESERVE) {
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2u * p->n) {
      fail_pend(p, "redis: unexpected answer to the reserve script");
      return;
    }
    for (uint32_t i = 0; i < p->n; i++) {
      aigw_call *c = p->call[i];
      if (!c) continue;
      const redisReply *a = rep->element[2 * i], *t = rep->element[2 * i + 1];
      c->rpend = NULL;
      if (a->type != REDIS_REPLY_INTEGER || t->type != REDIS_REPLY_INTEGER) {
        snprintf(c->errbuf, sizeof c->errbuf, "redis: unexpected answer to the reserve script");
        call_store_complete(c, AIGW_CALL_ERROR);
        continue;
      }
      c->http_status = a->integer ? 200 : 429;
      c->int_result = t->integer;
      call_store_complete(c, AIGW_CALL_OK);
    }
  } else {
    aigw_call *c = p->call[0];
    if (c) {
      c->rpend = NULL;
      if (p->op == OP_GET) {
        if (rep->type == REDIS_REPLY_STRING) {
          c->str_result = malloc(rep->len + 1);
          if (!c->str_result) {
            snprintf(c->errbuf, sizeof c->errbuf, "out of memory");
            call_store_complete(c, AIGW_CALL_ERROR);
          } else {
            memcpy(c->str_result, rep->str, rep->len);
            c->str_result[rep->len] = 0;
            c->str_len = rep->len;
            c->http_status = 200;
            call_store_complete(c, AIGW_CALL_OK);
          }
        } else {
          c->http_status = 404;
          snprintf(c->errbuf, sizeof c->errbuf, "key not found");
          call_store_complete(c, AIGW_CALL_ERROR);
        }
      } else {
        call_store_complete(c, AIGW_CALL_OK);
      }
    }
  }
  pend_free(p);
}

/* Sends one command for call c (op 0 incr, 1 get, 2 set, 3 reserve: ttl_ms is the limit). 0 sent
 * or queued for this loop turn's batch (the call completes from the reply or its deadline), -1 not
 * sent (errbuf set; the caller completes it with ERROR). */
int rstore_send(aigw_call *c, int op, const char *key, size_t klen, int64_t by, uint64_t window_ms, const char *val,
                size_t vlen, uint64_t ttl_ms) {
  aigw_req *r = c->r;
  const cfg_gen *g = r->gen;
  rclient *cl = client_get(r->w, g);
  if (!cl) {
    snprintf(c->errbuf, sizeof c->errbuf, "out of memory");
    return -1;
  }
  char k[1100];
  int kn;
  if (klen > 1000) {
    snprintf(c->errbuf, sizeof c->errbuf, "store key too long for redis (at most 1000 bytes)");
    return -1;
  }
  if (op == OP_INCR || op == OP_RESERVE) kn = snprintf(k, sizeof k, "%s{%.*s}", g->redis_prefix, (int)klen, key);
  else kn = snprintf(k, sizeof k, "%skv:{%.*s}", g->redis_prefix, (int)klen, key);
  if (kn < 0 || (size_t)kn >= sizeof k) {
    snprintf(c->errbuf, sizeof c->errbuf, "store key too long for redis (at most 1000 bytes with the prefix)");
    return -1;
  }
  uint16_t slot = cl->cluster ? key_slot(k, (size_t)kn) : 0;
  rnode *nd = slot_owner(cl, slot);
  if (!node_ac(nd)) {
    if (cl->cluster) ask_slots(cl, 0);
    snprintf(c->errbuf, sizeof c->errbuf, "redis at %.200s:%u is unavailable", nd->host, (unsigned)nd->port);
    return -1;
  }
  c->rop = op;
  if (op == OP_INCR || op == OP_RESERVE) {
    int64_t limit = op == OP_RESERVE ? (int64_t)ttl_ms : 0;
    for (size_t i = 0; i < cl->nopen; i++) { /* join this turn's batch for the same counter */
      struct rpend *p = cl->open[i];
      if (p->op == op && p->window_ms == window_ms && p->limit == limit && p->klen == (size_t)kn &&
          !memcmp(p->key, k, (size_t)kn)) {
        if (p->n == p->cap) {
          struct rpend *q = pend_grow(p);
          if (!q) break; /* out of memory: this call goes on its own */
          cl->open[i] = p = q;
        }
        p->call[p->n] = c;
        p->by[p->n] = by;
        c->rpend = p;
        c->rpend_idx = p->n++;
        if (p->n == RS_BATCH_MAX) { /* full: send it now */
          cl->open[i] = cl->open[--cl->nopen];
          send_pend(p);
        }
        return 0;
      }
    }
  }
  struct rpend *p = pend_alloc(k, (size_t)kn, op == OP_INCR || op == OP_RESERVE ? 4 : 1);
  if (!p) {
    snprintf(c->errbuf, sizeof c->errbuf, "out of memory");
    return -1;
  }
  p->cl = cl;
  p->op = op;
  p->slot = slot;
  p->window_ms = window_ms;
  p->n = 1;
  p->call[0] = c;
  p->by[0] = by;
  c->rpend = p;
  c->rpend_idx = 0;
  if (op == OP_INCR || op == OP_RESERVE) {
    p->limit = op == OP_RESERVE ? (int64_t)ttl_ms : 0;
    if (cl->nopen < RS_MAX_OPEN) {
      cl->open[cl->nopen++] = p;
      if (!cl->flush_armed) {
        static const struct timeval zero = {0, 0};
        evtimer_add(&cl->flush_ev, &zero);
        cl->flush_armed = 1;
      }
      return 0;
    }
  } else {
    int n;
    char tb[24];
    if (op == OP_GET) n = redisFormatCommand(&p->cmd, "GET %b", k, (size_t)kn);
    else if (ttl_ms) {
      snprintf(tb, sizeof tb, "%llu", (unsigned long long)ttl_ms);
      n = redisFormatCommand(&p->cmd, "SET %b %b PX %s", k, (size_t)kn, val, vlen, tb);
    } else {
      n = redisFormatCommand(&p->cmd, "SET %b %b", k, (size_t)kn, val, vlen);
    }
    if (n < 0) {
      c->rpend = NULL;
      pend_free(p);
      snprintf(c->errbuf, sizeof c->errbuf, "out of memory");
      return -1;
    }
    p->cmdlen = (size_t)n;
  }
  p->sent = 1;
  if (!p->cmd && pend_format(p) < 0) {
    c->rpend = NULL;
    pend_free(p);
    snprintf(c->errbuf, sizeof c->errbuf, "out of memory");
    return -1;
  }
  if (pend_send(p, nd, 0) < 0) {
    c->rpend = NULL;
    pend_free(p);
    snprintf(c->errbuf, sizeof c->errbuf, "redis: the command could not be queued");
    return -1;
  }
  return 0;
}

/* The call's deadline passed (calls.c; it then completes the call with an error). The circuit
 * breaker: a node that lets RS_BREAK_AFTER commands in a row time out counts as down: its
 * connection is dropped (what waits on it fails at once) and no command goes to it for the
 * back-off (250 ms doubling to 4 s), after which the next command reconnects and probes it. */
void rstore_timed_out(aigw_call *c) {
  struct rpend *p = c->rpend;
  rnode *nd = p && p->sent ? p->node : NULL;
  rstore_detach(c);
  if (!nd || ++nd->timeouts < RS_BREAK_AFTER || !nd->ac) return;
  log_msg(AIGW_LOG_WARN, "store: redis at %s:%u did not answer %u commands in a row within timeout_ms=%u; "
          "treated as down for %u ms", nd->host, nd->port, nd->timeouts, nd->cl->timeout_ms, nd->backoff_ms);
  nd->timeouts = 0;
  node_drop(nd);
  nd->down_until = now_ms() + nd->backoff_ms;
  nd->backoff_ms = nd->backoff_ms < 4000 ? nd->backoff_ms * 2 : 4000;
  if (nd->cl->cluster) ask_slots(nd->cl, 0);
}

/* The call ended without its reply (deadline, cancel): the reply, when it comes, is dropped; a
 * batched increment not yet sent still goes out with its batch. */
void rstore_detach(aigw_call *c) {
  if (c->rpend && c->rpend_idx < c->rpend->n && c->rpend->call[c->rpend_idx] == c)
    c->rpend->call[c->rpend_idx] = NULL;
  c->rpend = NULL;
}
