/* rstore.c - the host store on Redis ("store": {"backend": "redis"}), so that every gateway node
 * shares the same counters and values (limits, budgets, quotas, caches).
 *
 * Each worker keeps one non-blocking connection (hiredis' async API on the worker's event_base),
 * opened on first use and re-opened after a failure with a back-off (250 ms doubling to 4 s;
 * while it is down, store calls fail at once instead of queueing). Every command has a deadline
 * (timeout_ms, the call's own timer): a slow or dead Redis gives the plugin AIGW_CALL_ERROR
 * quickly, never a hang; what to do then (fail open or closed) is the plugin's policy.
 *
 * Windowed counters run as one Lua script (loaded once per connection, then EVALSHA) with the same sliding-window
 * estimate as the in-process store (store.h): fixed windows k = now / W on Redis' own clock
 * (TIME), so nodes with skewed clocks agree; the current and previous window keys share a hash
 * tag ({key}) and so a Redis Cluster slot. Values live under "<prefix>kv:{key}".
 *
 * Ownership: a pending command's privdata is an rpend (malloc'd) that outlives its call: the call
 * points at it while it waits, and a timed-out or cancelled call sets rpend->call to NULL, so a
 * late reply frees the rpend and touches nothing else. Threads: worker only. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include <openssl/sha.h>

#include "core.h"

struct rpend {
  aigw_call *call; /* NULL once the call has ended (timeout, cancel): the reply is dropped */
  int op;          /* 0 incr, 1 get, 2 set */
};

typedef struct rconn {
  redisAsyncContext *ac;
  int connected;
  uint64_t started_ms;   /* connect started */
  uint64_t down_until;   /* back-off: no connect before */
  uint32_t backoff_ms;
  char host[256];
  uint16_t port;
} rconn;

static const char INCR_LUA[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local by = tonumber(ARGV[1]) local W = tonumber(ARGV[2]) "
    "local k = math.floor(now / W) local e = now - k * W "
    "local cur = KEYS[1] .. ':' .. k local prev = KEYS[1] .. ':' .. (k - 1) "
    "local c "
    "if by ~= 0 then c = redis.call('INCRBY', cur, by) redis.call('PEXPIRE', cur, 2 * W) "
    "else c = tonumber(redis.call('GET', cur) or '0') end "
    "local p = tonumber(redis.call('GET', prev) or '0') "
    "return c + math.ceil(p * (W - e) / W)";

static const char RESERVE_LUA[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local by = tonumber(ARGV[1]) local limit = tonumber(ARGV[2]) local W = tonumber(ARGV[3]) "
    "local k = math.floor(now / W) local e = now - k * W "
    "local cur = KEYS[1] .. ':' .. k local prev = KEYS[1] .. ':' .. (k - 1) "
    "local c = tonumber(redis.call('GET', cur) or '0') "
    "local p = tonumber(redis.call('GET', prev) or '0') "
    "local total = c + math.ceil(p * (W - e) / W) "
    "if by > 0 and total + by > limit then return {0, total} end "
    "if by ~= 0 then redis.call('INCRBY', cur, by) redis.call('PEXPIRE', cur, 2 * W) total = total + by end "
    "return {1, total}";

/* The scripts' SHA-1 (hex), for EVALSHA: each connection loads both first (SCRIPT LOAD is the
 * first thing queued on it, and Redis runs one connection's commands in order), so the script
 * bodies cross the wire once per connection, not once per call. */
static char incr_sha[41], reserve_sha[41];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void sha_hex(const char *s, char out[41]) {
  unsigned char h[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)s, strlen(s), h);
  for (int i = 0; i < SHA_DIGEST_LENGTH; i++) snprintf(out + 2 * i, 3, "%02x", h[i]);
}
static void sha_init(void) {
  sha_hex(INCR_LUA, incr_sha);
  sha_hex(RESERVE_LUA, reserve_sha);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  worker *w = ac->data;
  rconn *rc = w->rstore;
  if (!rc || rc->ac != ac) return;
  if (status != REDIS_OK) {
    log_msg(AIGW_LOG_WARN, "store: cannot connect to redis at %s:%u: %s; store calls fail for %u ms", rc->host,
            rc->port, ac->errstr, rc->backoff_ms);
    rc->ac = NULL; /* hiredis frees the context after this callback */
    rc->connected = 0;
    rc->down_until = now_ms() + rc->backoff_ms;
    rc->backoff_ms = rc->backoff_ms < 4000 ? rc->backoff_ms * 2 : 4000;
    return;
  }
  rc->connected = 1;
  rc->backoff_ms = 250;
  log_msg(AIGW_LOG_INFO, "store: worker %u connected to redis at %s:%u", w->id, rc->host, rc->port);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  worker *w = ac->data;
  rconn *rc = w->rstore;
  if (!rc || rc->ac != ac) return;
  if (status != REDIS_OK)
    log_msg(AIGW_LOG_WARN, "store: lost the redis connection to %s:%u: %s", rc->host, rc->port, ac->errstr);
  rc->ac = NULL;
  rc->connected = 0;
  rc->down_until = now_ms() + rc->backoff_ms;
}

/* The worker's connection for generation g's settings, connecting when needed; NULL while down. */
static redisAsyncContext *rconn_get(worker *w, const cfg_gen *g) {
  rconn *rc = w->rstore;
  if (!rc) {
    rc = calloc(1, sizeof *rc);
    if (!rc) return NULL;
    rc->backoff_ms = 250;
    w->rstore = rc;
  }
  uint64_t now = now_ms();
  if (rc->ac && (rc->port != g->redis_port || strcmp(rc->host, g->redis_host))) {
    redisAsyncContext *old = rc->ac; /* a reload moved the store: pending replies fail, callbacks run */
    rc->ac = NULL;                   /* first: the disconnect callback must not start a back-off */
    rc->connected = 0;
    redisAsyncFree(old);
  }
  if (rc->ac && !rc->connected && now - rc->started_ms > 2u * g->redis_timeout_ms + 100) {
    redisAsyncContext *ac = rc->ac; /* connect hangs: give up on it */
    rc->ac = NULL;
    redisAsyncFree(ac);
    rc->down_until = now + rc->backoff_ms;
  }
  if (rc->ac) return rc->ac;
  if (now < rc->down_until) return NULL;
  snprintf(rc->host, sizeof rc->host, "%s", g->redis_host);
  rc->port = g->redis_port;
  redisAsyncContext *ac = redisAsyncConnect(rc->host, rc->port);
  if (!ac) return NULL;
  if (ac->err) {
    log_msg(AIGW_LOG_WARN, "store: redis at %s:%u: %s", rc->host, rc->port, ac->errstr);
    redisAsyncFree(ac);
    rc->down_until = now + rc->backoff_ms;
    return NULL;
  }
  ac->data = w;
  redisLibeventAttach(ac, w->base);
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  rc->ac = ac;
  rc->started_ms = now;
  if (g->redis_password) redisAsyncCommand(ac, NULL, NULL, "AUTH %s", g->redis_password);
  pthread_once(&sha_once, sha_init);
  redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s", INCR_LUA);
  redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s", RESERVE_LUA);
  return ac;
}

void rstore_shutdown(worker *w) {
  rconn *rc = w->rstore;
  if (!rc) return;
  if (rc->ac) {
    redisAsyncContext *ac = rc->ac;
    rc->ac = NULL; /* callbacks see no current connection */
    redisAsyncFree(ac);
  }
  free(rc);
  w->rstore = NULL;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata) {
  struct rpend *p = privdata;
  aigw_call *c = p->call;
  redisReply *rep = r;
  free(p);
  if (!c) return; /* the call ended already */
  c->rpend = NULL;
  if (!rep) {
    snprintf(c->errbuf, sizeof c->errbuf, "redis: the connection closed before the answer");
    call_store_complete(c, AIGW_CALL_ERROR);
    return;
  }
  if (rep->type == REDIS_REPLY_ERROR) {
    if (!strncmp(rep->str, "NOSCRIPT", 8)) redisAsyncDisconnect(ac); /* scripts flushed: reconnect, reload */
    snprintf(c->errbuf, sizeof c->errbuf, "redis: %.200s", rep->str);
    call_store_complete(c, AIGW_CALL_ERROR);
    return;
  }
  if (c->rop == 0) {
    c->int_result = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    call_store_complete(c, AIGW_CALL_OK);
  } else if (c->rop == 3) {
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER) {
      snprintf(c->errbuf, sizeof c->errbuf, "redis: unexpected answer to the reserve script");
      call_store_complete(c, AIGW_CALL_ERROR);
      return;
    }
    c->http_status = rep->element[0]->integer ? 200 : 429;
    c->int_result = rep->element[1]->integer;
    call_store_complete(c, AIGW_CALL_OK);
  } else if (c->rop == 1) {
    if (rep->type == REDIS_REPLY_STRING) {
      c->str_result = malloc(rep->len + 1);
      if (!c->str_result) {
        snprintf(c->errbuf, sizeof c->errbuf, "out of memory");
        call_store_complete(c, AIGW_CALL_ERROR);
        return;
      }
      memcpy(c->str_result, rep->str, rep->len);
      c->str_result[rep->len] = 0;
      c->str_len = rep->len;
      c->http_status = 200;
      call_store_complete(c, AIGW_CALL_OK);
    } else {
      c->http_status = 404;
      snprintf(c->errbuf, sizeof c->errbuf, "key not found");
      call_store_complete(c, AIGW_CALL_ERROR);
    }
  } else {
    call_store_complete(c, AIGW_CALL_OK);
  }
}

/* Sends one command for call c (op 0 incr, 1 get, 2 set, 3 reserve: ttl_ms is the limit). 0 sent
 * (the call completes from the reply or its deadline), -1 not sent (errbuf set; the caller
 * completes it with ERROR). */
int rstore_send(aigw_call *c, int op, const char *key, size_t klen, int64_t by, uint64_t window_ms, const char *val,
                size_t vlen, uint64_t ttl_ms) {
  aigw_req *r = c->r;
  const cfg_gen *g = r->gen;
  redisAsyncContext *ac = rconn_get(r->w, g);
  if (!ac) {
    snprintf(c->errbuf, sizeof c->errbuf, "redis at %s:%u is unavailable", g->redis_host, (unsigned)g->redis_port);
    return -1;
  }
  struct rpend *p = malloc(sizeof *p);
  if (!p) {
    snprintf(c->errbuf, sizeof c->errbuf, "out of memory");
    return -1;
  }
  p->call = c;
  p->op = op;
  c->rop = op;
  char k[1100];
  int kn;
  if (op == 0 || op == 3) kn = snprintf(k, sizeof k, "%s{%.*s}", g->redis_prefix, (int)(klen > 1000 ? 1000 : klen), key);
  else kn = snprintf(k, sizeof k, "%skv:{%.*s}", g->redis_prefix, (int)(klen > 1000 ? 1000 : klen), key);
  if (kn < 0 || (size_t)kn >= sizeof k || klen > 1000) {
    free(p);
    snprintf(c->errbuf, sizeof c->errbuf, "store key too long for redis (at most 1000 bytes)");
    return -1;
  }
  int rc;
  char nb[24], wb[24], tb[24];
  nb[0] = 0;
  if (op == 0) {
    snprintf(nb, sizeof nb, "%lld", (long long)by);
    snprintf(wb, sizeof wb, "%llu", (unsigned long long)window_ms);
    rc = redisAsyncCommand(ac, on_reply, p, "EVALSHA %s 1 %b %s %s", incr_sha, k, (size_t)kn, nb, wb);
  } else if (op == 3) {
    char lb[24];
    snprintf(nb, sizeof nb, "%lld", (long long)by);
    snprintf(lb, sizeof lb, "%lld", (long long)ttl_ms);
    snprintf(wb, sizeof wb, "%llu", (unsigned long long)window_ms);
    rc = redisAsyncCommand(ac, on_reply, p, "EVALSHA %s 1 %b %s %s %s", reserve_sha, k, (size_t)kn, nb, lb, wb);
  } else if (op == 1) {
    rc = redisAsyncCommand(ac, on_reply, p, "GET %b", k, (size_t)kn);
  } else if (ttl_ms) {
    snprintf(tb, sizeof tb, "%llu", (unsigned long long)ttl_ms);
    rc = redisAsyncCommand(ac, on_reply, p, "SET %b %b PX %s", k, (size_t)kn, val, vlen, tb);
  } else {
    rc = redisAsyncCommand(ac, on_reply, p, "SET %b %b", k, (size_t)kn, val, vlen);
  }
  if (rc != REDIS_OK) {
    free(p);
    snprintf(c->errbuf, sizeof c->errbuf, "redis: the command could not be queued");
    return -1;
  }
  c->rpend = p;
  return 0;
}

/* The call ended without its reply (deadline, cancel): the reply, when it comes, is dropped. */
void rstore_detach(aigw_call *c) {
  if (c->rpend) c->rpend->call = NULL;
  c->rpend = NULL;
}
