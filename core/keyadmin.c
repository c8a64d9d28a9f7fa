/* keyadmin.c - API keys managed through the admin API (role admin), for the keyauth plugin:
 *
 *   POST   /keys               {"consumer": "bob", "expires_in_s"?}  -> 201 {"id", "key", "consumer",
 *                              "expires_at"?}  (the key is shown this once; only its SHA-256 is
 *                              stored; with expires_in_s it stops by itself: the records expire)
 *   POST   /keys/<id>/rotate   {"expires_in_s"?} -> 201 a new key for the same consumer; the old
 *                              one stops at once
 *   DELETE /keys/<id>          -> 200; the key stops at once
 *
 * The keys live in the host store (store.h in-process, or Redis when configured): key
 * "keyauth:key:<sha256 hex>" holds the consumer's name, "keyauth:id:<id>" the hash (id = the
 * hash's first 12 hex digits). Every worker (and, on Redis, every node) reads the same entries, so
 * a revocation takes effect on the next request everywhere. keyauth looks a key up there when its
 * config does not know it.
 *
 * Consumers too (GET: role viewer; PUT, DELETE: role admin):
 *
 *   PUT    /consumers/<name>   {"team", "tier", "routes", "models", "metadata", "limits"} -> 201
 *                              created, 200 replaced; stored as "keyauth:consumer:<name>"
 *   GET    /consumers/<name>   -> 200 {"name", "consumer": {...}}, 404
 *   DELETE /consumers/<name>   -> 200; its keys stop at once (keyauth finds no consumer)
 *
 * A key's consumer is looked up in keyauth's config first, then in the store. "limits" holds the
 * consumer's own values for the limits plugin's limits (metadata "limit.<name>"). Names: 1-200 of
 * [A-Za-z0-9._@:-]. Provider keys (BYOK) are config-only: the store never holds a secret in clear.
 *
 * Main thread (the admin listener). With Redis the calls are blocking with the store's
 * timeout_ms: admin traffic is rare and never on a worker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core.h"
#include "store.h"

#define ID_LEN 12

/* ---- the store, from the main thread ---- */

typedef struct kstore {
  const cfg_gen *g;
  redisContext *rc; /* Redis: one blocking connection for this admin call */
} kstore;

static redisContext *ks_connect(const cfg_gen *g, const char *host, uint16_t port);

static int ks_open(kstore *k, const cfg_gen *g, char *err, size_t errlen) {
  k->g = g;
  k->rc = NULL;
  if (!g->store_redis) return 0;
  k->rc = ks_connect(g, g->redis_host, g->redis_port);
  for (size_t i = 0; !k->rc && i < g->redis_nnodes; i++) { /* a cluster: any seed will do */
    const char *colon = strrchr(g->redis_nodes[i], ':');
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - g->redis_nodes[i]), g->redis_nodes[i]);
    k->rc = ks_connect(g, host, (uint16_t)strtoul(colon + 1, NULL, 10));
  }
  if (!k->rc) {
    snprintf(err, errlen, "the store (redis at %s:%u) is unavailable, or refused the password", g->redis_host,
             (unsigned)g->redis_port);
    return -1;
  }
  return 0;
}

/* A blocking connection to host:port with the store's timeout and password; NULL on failure. */
static redisContext *ks_connect(const cfg_gen *g, const char *host, uint16_t port) {
  struct timeval tv = {(time_t)(g->redis_timeout_ms / 1000), (suseconds_t)((g->redis_timeout_ms % 1000) * 1000)};
  redisContext *rc = redisConnectWithTimeout(host, port, tv);
  if (!rc || rc->err) {
    if (rc) redisFree(rc);
    return NULL;
  }
  redisSetTimeout(rc, tv);
  if (g->redis_password) {
    redisReply *r = redisCommand(rc, "AUTH %s", g->redis_password);
    int ok = r && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    if (!ok) {
      redisFree(rc);
      return NULL;
    }
  }
  return rc;
}

/* Runs one command; on a Redis Cluster, follows MOVED and ASK to the node owning the key's slot
 * (the connection moves there). The reply (caller frees), or NULL on a connection error. */
static redisReply *ks_cmd(kstore *k, const char *fmt, ...) {
  char *cmd;
  va_list ap;
  va_start(ap, fmt);
  int n = redisvFormatCommand(&cmd, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  redisReply *rep = NULL;
  int ask = 0;
  for (int hop = 0; hop < 6 && k->rc; hop++) {
    void *out = NULL;
    if (ask) redisAppendCommand(k->rc, "ASKING");
    redisAppendFormattedCommand(k->rc, cmd, (size_t)n);
    if (ask && (redisGetReply(k->rc, &out) != REDIS_OK || !out)) break;
    freeReplyObject(out);
    out = NULL;
    if (redisGetReply(k->rc, &out) != REDIS_OK || !out) break;
    rep = out;
    ask = rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "ASK ", 4);
    int moved = rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "MOVED ", 6);
    if (!k->g->redis_cluster || (!ask && !moved)) break;
    const char *sp = strchr(rep->str + (moved ? 6 : 4), ' ');
    const char *colon = sp ? strrchr(sp + 1, ':') : NULL;
    char host[256];
    if (!colon || colon - sp - 1 <= 0 || colon - sp - 1 >= (long)sizeof host) break;
    memcpy(host, sp + 1, (size_t)(colon - sp - 1));
    host[colon - sp - 1] = 0;
    unsigned long port = strtoul(colon + 1, NULL, 10);
    freeReplyObject(rep);
    rep = NULL;
    redisFree(k->rc);
    k->rc = port && port <= 65535 ? ks_connect(k->g, host, (uint16_t)port) : NULL;
  }
  redisFreeCommand(cmd);
  return rep;
}

static void ks_close(kstore *k) {
  if (k->rc) redisFree(k->rc);
  k->rc = NULL;
}

/* keys as rstore.c names values: <prefix>kv:{key} */
static int ks_name(const kstore *k, const char *key, char *out, size_t cap) {
  int n = snprintf(out, cap, "%skv:{%s}", k->g->redis_prefix, key);
  return n > 0 && (size_t)n < cap ? n : -1;
}

/* ttl_ms 0: kept until deleted */
static int ks_set(kstore *k, const char *key, const char *val, uint64_t ttl_ms) {
  if (!k->rc) return store_set(core_store(), key, strlen(key), val, strlen(val), ttl_ms, now_ms());
  char name[300];
  if (ks_name(k, key, name, sizeof name) < 0) return -1;
  char px[24];
  snprintf(px, sizeof px, "%llu", (unsigned long long)ttl_ms);
  redisReply *r = ttl_ms ? ks_cmd(k, "SET %s %s PX %s", name, val, px) : ks_cmd(k, "SET %s %s", name, val);
  int ok = r && r->type == REDIS_REPLY_STATUS;
  freeReplyObject(r);
  return ok ? 0 : -1;
}

/* malloc'd value, or NULL (missing or error: *err set on error) */
static char *ks_get(kstore *k, const char *key, int *err) {
  *err = 0;
  if (!k->rc) {
    void *v = NULL;
    return store_get(core_store(), key, strlen(key), &v, NULL, now_ms()) == 0 ? v : NULL;
  }
  char name[300];
  if (ks_name(k, key, name, sizeof name) < 0) return NULL;
  redisReply *r = ks_cmd(k, "GET %s", name);
  char *out = NULL;
  if (!r || r->type == REDIS_REPLY_ERROR) *err = 1;
  else if (r->type == REDIS_REPLY_STRING) out = strndup(r->str, r->len);
  freeReplyObject(r);
  return out;
}

static int ks_del(kstore *k, const char *key) {
  if (!k->rc) return store_del(core_store(), key, strlen(key)) == 0 ? 0 : -1;
  char name[300];
  if (ks_name(k, key, name, sizeof name) < 0) return -1;
  redisReply *r = ks_cmd(k, "DEL %s", name);
  int ok = r && r->type == REDIS_REPLY_INTEGER;
  freeReplyObject(r);
  return ok ? 0 : -1;
}

/* ---- keys ---- */

static void hex(const unsigned char *p, size_t n, char *out) {
  static const char hx[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) out[2 * i] = hx[p[i] >> 4], out[2 * i + 1] = hx[p[i] & 15];
  out[2 * n] = 0;
}

static int name_ok(const char *s) {
  size_t n = strlen(s);
  if (!n || n > 200) return 0;
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\' || (unsigned char)*s == 0x7f) return 0;
  return 1;
}

/* A new key for consumer: stored hashed (expiring after ttl_ms, 0 never); the key itself into
 * key_out (shown once). */
static int make_key(kstore *k, const char *consumer, uint64_t ttl_ms, char key_out[64], char id_out[ID_LEN + 1], char *err,
                    size_t errlen) {
  unsigned char rnd[24], h[32];
  unsigned int hl = 0;
  if (RAND_bytes(rnd, sizeof rnd) != 1) {
    snprintf(err, errlen, "no randomness for a key");
    return -1;
  }
  memcpy(key_out, "sk-aigw-", 8);
  hex(rnd, sizeof rnd, key_out + 8);
  OPENSSL_cleanse(rnd, sizeof rnd);
  EVP_Digest(key_out, strlen(key_out), h, &hl, EVP_sha256(), NULL);
  char hh[65], kk[100], ik[40];
  hex(h, 32, hh);
  memcpy(id_out, hh, ID_LEN);
  id_out[ID_LEN] = 0;
  snprintf(kk, sizeof kk, "keyauth:key:%s", hh);
  snprintf(ik, sizeof ik, "keyauth:id:%s", id_out);
  if (ks_set(k, kk, consumer, ttl_ms) < 0 || ks_set(k, ik, hh, ttl_ms) < 0) {
    snprintf(err, errlen, "the store could not keep the key");
    return -1;
  }
  return 0;
}

/* Revokes key id; its consumer into consumer_out (may be NULL). 0, 1 unknown id, -1 store error. */
static int revoke(kstore *k, const char *id, char *consumer_out, size_t cap) {
  char ik[40], kk[100];
  snprintf(ik, sizeof ik, "keyauth:id:%s", id);
  int err = 0;
  char *hh = ks_get(k, ik, &err);
  if (!hh) return err ? -1 : 1;
  snprintf(kk, sizeof kk, "keyauth:key:%s", hh);
  free(hh);
  char *c = ks_get(k, kk, &err);
  if (consumer_out && cap) snprintf(consumer_out, cap, "%s", c ? c : "");
  free(c);
  int rc = ks_del(k, kk) < 0 || ks_del(k, ik) < 0 ? -1 : 0;
  return rc;
}

static int id_ok(const char *s) {
  if (strlen(s) != ID_LEN) return 0;
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
  return 1;
}

/* A consumer's name in an admin path: 1-200 of [A-Za-z0-9._@:-] (no escaping needed). */
static int cname_ok(const char *s) {
  size_t n = strlen(s);
  if (!n || n > 200) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("._@:-", *s)))
      return 0;
  return 1;
}

/* The stored form of a consumer from an admin request's body, or NULL with err set. Known
 * members only: team, tier (strings), routes, models (string arrays), metadata (strings),
 * limits (numbers >= 0, per limit name of the limits plugin). */
static cJSON *consumer_record(const char *body, size_t blen, char *err, size_t errlen) {
  cJSON *j = blen ? cJSON_ParseWithLength(body, blen) : cJSON_CreateObject();
  if (!cJSON_IsObject(j)) {
    snprintf(err, errlen, "the body must be a JSON object: {\"team\", \"tier\", \"routes\", \"models\", \"metadata\", \"limits\"}");
    cJSON_Delete(j);
    return NULL;
  }
  for (const cJSON *m = j->child; m; m = m->next) {
    const char *k = m->string;
    int ok = 1;
    if (!strcmp(k, "team") || !strcmp(k, "tier")) ok = cJSON_IsString(m) && name_ok(m->valuestring);
    else if (!strcmp(k, "routes") || !strcmp(k, "models")) {
      ok = cJSON_IsArray(m) && cJSON_GetArraySize(m) <= 256;
      for (const cJSON *e = m->child; ok && e; e = e->next) ok = cJSON_IsString(e) && name_ok(e->valuestring);
    } else if (!strcmp(k, "metadata")) {
      ok = cJSON_IsObject(m) && cJSON_GetArraySize(m) <= 64;
      for (const cJSON *e = m->child; ok && e; e = e->next) ok = cJSON_IsString(e) && name_ok(e->string) && strlen(e->valuestring) <= 1000;
    } else if (!strcmp(k, "limits")) {
      ok = cJSON_IsObject(m) && cJSON_GetArraySize(m) <= 16;
      for (const cJSON *e = m->child; ok && e; e = e->next)
        ok = cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble < 9e15 && strlen(e->string) <= 60;
    } else {
      snprintf(err, errlen, "unknown member '%.60s' (known: team, tier, routes, models, metadata, limits)", k);
      cJSON_Delete(j);
      return NULL;
    }
    if (!ok) {
      snprintf(err, errlen, "'%s' must be %s", k,
               !strcmp(k, "routes") || !strcmp(k, "models") ? "an array of names"
               : !strcmp(k, "metadata")                    ? "an object of strings"
               : !strcmp(k, "limits")                      ? "an object of numbers >= 0 (limit name: this consumer's value)"
                                                           : "a name (1-200 characters, no quotes or control characters)");
      cJSON_Delete(j);
      return NULL;
    }
  }
  return j;
}

/* /consumers/<name>: GET, PUT (create or replace), DELETE. Consumers in keyauth's config are
 * not in the store; a config consumer of the same name wins. */
static int consumers_handle(kstore *k, const char *method, const char *name, const char *body, size_t blen, cJSON *res,
                            int *status, char *err, size_t errlen) {
  char ck[256];
  snprintf(ck, sizeof ck, "keyauth:consumer:%s", name);
  int gerr = 0;
  char *cur = ks_get(k, ck, &gerr);
  if (gerr) {
    *status = 503;
    snprintf(err, errlen, "the store is unavailable");
    free(cur);
    return -1;
  }
  if (!strcmp(method, "GET") || !strcmp(method, "DELETE")) {
    if (!cur) {
      *status = 404;
      snprintf(err, errlen, "no consumer '%s' in the store", name);
      return -1;
    }
    cJSON *rec = cJSON_Parse(cur);
    free(cur);
    if (!strcmp(method, "DELETE") && ks_del(k, ck) < 0) {
      cJSON_Delete(rec);
      *status = 503;
      snprintf(err, errlen, "the store could not delete consumer '%s'", name);
      return -1;
    }
    cJSON_AddStringToObject(res, "name", name);
    if (rec) cJSON_AddItemToObject(res, "consumer", rec);
    if (!strcmp(method, "DELETE")) {
      cJSON_AddBoolToObject(res, "deleted", 1);
      log_msg(AIGW_LOG_INFO, "admin: consumer %s deleted (its keys no longer work)", name);
    }
    *status = 200;
    return 0;
  }
  int existed = cur != NULL;
  free(cur);
  cJSON *rec = consumer_record(body, blen, err, errlen);
  if (!rec) {
    *status = 400;
    return -1;
  }
  char *txt = cJSON_PrintUnformatted(rec);
  if (!txt || ks_set(k, ck, txt, 0) < 0) {
    free(txt);
    cJSON_Delete(rec);
    *status = 503;
    snprintf(err, errlen, "the store could not keep consumer '%s'", name);
    return -1;
  }
  free(txt);
  cJSON_AddStringToObject(res, "name", name);
  cJSON_AddItemToObject(res, "consumer", rec);
  log_msg(AIGW_LOG_INFO, "admin: consumer %s %s", name, existed ? "replaced" : "created");
  *status = existed ? 200 : 201;
  return 0;
}

/* The optional "expires_in_s" of a key request (1 s to 10 years): its ttl in ms into *ttl (0
 * without one). 0, or -1 (err set). */
static int key_ttl(const cJSON *j, uint64_t *ttl, char *err, size_t errlen) {
  *ttl = 0;
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "expires_in_s");
  if (!e) return 0;
  if (!cJSON_IsNumber(e) || e->valuedouble < 1 || e->valuedouble > 315360000 || e->valuedouble != (double)(long long)e->valuedouble) {
    snprintf(err, errlen, "\"expires_in_s\" must be a whole number of seconds from 1 to 315360000 (10 years)");
    return -1;
  }
  *ttl = (uint64_t)e->valuedouble * 1000;
  return 0;
}

static void add_expiry(cJSON *res, uint64_t ttl_ms) {
  if (!ttl_ms) return;
  struct timeval tv;
  gettimeofday(&tv, NULL);
  cJSON_AddNumberToObject(res, "expires_at", (double)((uint64_t)tv.tv_sec + ttl_ms / 1000));
}

/* Handles /keys... and /consumers/...; fills status and a malloc'd JSON body. Returns 1 when the
 * path was ours. */
int keyadmin_handle(const cfg_gen *g, const char *method, const char *path, const char *body, size_t blen, int *status,
                    char **out) {
  int consumers = !strncmp(path, "/consumers/", 11);
  if (!consumers && (strncmp(path, "/keys", 5) || (path[5] && path[5] != '/'))) return 0;
  char err[200] = "";
  cJSON *res = cJSON_CreateObject();
  kstore k;
  *status = 500;
  if (!res) return 1;
  if (ks_open(&k, g, err, sizeof err) < 0) {
    *status = 503;
    goto fail;
  }
  if (consumers) {
    if (!cname_ok(path + 11) || (strcmp(method, "GET") && strcmp(method, "PUT") && strcmp(method, "DELETE"))) {
      *status = cname_ok(path + 11) ? 405 : 404;
      snprintf(err, sizeof err, "use GET, PUT or DELETE /consumers/<name> (a name of letters, digits and ._@:-)");
      goto fail;
    }
    if (consumers_handle(&k, method, path + 11, body, blen, res, status, err, sizeof err) < 0) goto fail;
    ks_close(&k);
    *out = cJSON_PrintUnformatted(res);
    cJSON_Delete(res);
    return 1;
  }
  const char *rest = path[5] ? path + 6 : "";
  char id[64] = "";
  const char *slash = strchr(rest, '/');
  size_t idn = slash ? (size_t)(slash - rest) : strlen(rest);
  if (idn >= sizeof id) idn = sizeof id - 1;
  memcpy(id, rest, idn);
  id[idn] = 0;
  if (!strcmp(method, "POST") && !*rest) {
    cJSON *j = blen ? cJSON_ParseWithLength(body, blen) : NULL;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "consumer");
    if (!cJSON_IsString(c) || !name_ok(c->valuestring)) {
      cJSON_Delete(j);
      *status = 400;
      snprintf(err, sizeof err, "the body must be {\"consumer\": \"<name of a consumer in keyauth's config>\"}");
      goto fail;
    }
    uint64_t ttl;
    if (key_ttl(j, &ttl, err, sizeof err) < 0) {
      cJSON_Delete(j);
      *status = 400;
      goto fail;
    }
    char key[64], kid[ID_LEN + 1];
    if (make_key(&k, c->valuestring, ttl, key, kid, err, sizeof err) < 0) {
      cJSON_Delete(j);
      *status = 503;
      goto fail;
    }
    cJSON_AddStringToObject(res, "id", kid);
    cJSON_AddStringToObject(res, "key", key);
    cJSON_AddStringToObject(res, "consumer", c->valuestring);
    add_expiry(res, ttl);
    cJSON_AddStringToObject(res, "note", "the key is shown this once; only its hash is kept");
    OPENSSL_cleanse(key, sizeof key);
    log_msg(AIGW_LOG_INFO, "admin: key %s created for consumer %s", kid, c->valuestring);
    cJSON_Delete(j); /* c points into it */
    *status = 201;
  } else if (!strcmp(method, "DELETE") && id_ok(id) && !slash) {
    int rc = revoke(&k, id, NULL, 0);
    if (rc) {
      *status = rc > 0 ? 404 : 503;
      snprintf(err, sizeof err, rc > 0 ? "no key with id %s" : "the store could not revoke key %s", id);
      goto fail;
    }
    cJSON_AddStringToObject(res, "revoked", id);
    log_msg(AIGW_LOG_INFO, "admin: key %s revoked", id);
    *status = 200;
  } else if (!strcmp(method, "POST") && id_ok(id) && slash && !strcmp(slash, "/rotate")) {
    uint64_t ttl = 0;
    cJSON *j = blen ? cJSON_ParseWithLength(body, blen) : NULL;
    int bad = (blen && !cJSON_IsObject(j)) || key_ttl(j, &ttl, err, sizeof err) < 0;
    cJSON_Delete(j);
    if (bad) {
      if (!err[0]) snprintf(err, sizeof err, "the body must be empty or {\"expires_in_s\": N}");
      *status = 400;
      goto fail;
    }
    char consumer[256] = "";
    int rc = revoke(&k, id, consumer, sizeof consumer);
    if (rc || !consumer[0]) {
      *status = rc < 0 ? 503 : 404;
      snprintf(err, sizeof err, rc < 0 ? "the store could not rotate key %s" : "no key with id %s", id);
      goto fail;
    }
    char key[64], kid[ID_LEN + 1];
    if (make_key(&k, consumer, ttl, key, kid, err, sizeof err) < 0) {
      *status = 503;
      goto fail;
    }
    cJSON_AddStringToObject(res, "id", kid);
    cJSON_AddStringToObject(res, "key", key);
    cJSON_AddStringToObject(res, "consumer", consumer);
    add_expiry(res, ttl);
    cJSON_AddStringToObject(res, "replaced", id);
    OPENSSL_cleanse(key, sizeof key);
    log_msg(AIGW_LOG_INFO, "admin: key %s rotated to %s (consumer %s)", id, kid, consumer);
    *status = 201;
  } else {
    *status = 404;
    snprintf(err, sizeof err, "use POST /keys, POST /keys/<id>/rotate or DELETE /keys/<id>");
    goto fail;
  }
  ks_close(&k);
  *out = cJSON_PrintUnformatted(res);
  cJSON_Delete(res);
  return 1;
fail:
  ks_close(&k);
  cJSON_Delete(res);
  res = cJSON_CreateObject();
  cJSON *e = res ? cJSON_AddObjectToObject(res, "error") : NULL;
  if (e) {
    cJSON_AddStringToObject(e, "message", err[0] ? err : "internal error");
    cJSON_AddStringToObject(e, "type", *status == 400 || *status == 405 ? "invalid_request_error"
                                       : *status == 404                 ? "not_found_error"
                                                                        : "server_error");
  }
  *out = res ? cJSON_PrintUnformatted(res) : NULL;
  cJSON_Delete(res);
  return 1;
}
