/* jwt.c - JWT / OIDC bearer-token authentication.
 *
 * Every request must carry a JWS compact token (`Authorization: Bearer <jwt>`, or a header named in
 * "headers") signed with HS256, RS256, ES256 or EdDSA (Ed25519) by a key the plugin knows: static
 * keys from the config ("keys": JWKs, PEM public keys or HS256 secrets; "jwks": an inline JWK Set)
 * and/or a JWK Set fetched from "jwks_url". The token's claims are checked (iss, aud, exp, nbf,
 * iat, required scopes) and mapped onto the request's identity, the same metadata keyauth sets:
 * "consumer" (default claim "sub"), "team", "tier", "consumer.<name>" and "scopes", plus the
 * access-log field "consumer"; so limits and routing rules work the same behind jwt. Anything wrong
 * is a 401 (403 for a missing scope or a model the scopes do not allow) naming the reason, in the
 * client's format; a JWKS that cannot be fetched when no key is known is a 503. The token, or any
 * part of it (kid included), never reaches a log line, a metric or an error body.
 *
 * Remote keys (jwks_url). A call-out needs a request, so keys are fetched by requests: the first
 * one that needs keys (none fetched yet, a kid no key has, or a key set older than jwks_refresh_s)
 * starts the fetch through h->http_call and PAUSEs until its callback, which installs the new key
 * set and resumes it. Requests that need keys while a fetch is running wait for that same fetch:
 * they queue on the instance and are woken with h->post (any worker) when it ends. Requests whose
 * key is known do not wait for a periodic refresh someone else started. A kid no key has triggers a
 * fetch at most once per jwks_min_refresh_s (so random kids cannot flood the JWKS endpoint); the
 * same spacing applies after a failed fetch. A failed refresh keeps the previous keys. If the
 * fetching request goes away, its fetch is cancelled and one of the waiting requests takes over.
 *
 * THREADS. The instance is shared by every worker. Its config part is immutable after create. The
 * JWKS cache is a refcounted, immutable key-set snapshot (jw_keyset) swapped under inst->mu; a
 * request takes a reference under mu, verifies without the lock, and drops it under mu (the last
 * reference frees the set). The waiter list, the fetch flag and the fetch bookkeeping are under mu
 * as well. Wake-ups are posted (h->post) while mu is held, so a queued request's state (its
 * on_done takes mu to leave the queue) is valid while it is read; h->post never calls back into a
 * plugin. Nothing blocks: mu guards a few pointer and number updates.
 *
 * OWNERSHIP. The instance owns everything it points to (config strings, static keys, the current
 * snapshot's reference). Per-request state (jwt_rq) is request memory (h->req_alloc); it is the
 * fetch callback's ud and the post's ud, both of which only run while the request is alive. */
#include <aigw/plugin.h>

#include "jwt_core.h"
#include "pcommon.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const aigw_host *H;

#define MAX_HEADERS 4
#define MAX_CLAIM_VALUE 256

typedef struct jwt_rq jwt_rq;

typedef struct scope_models {
  char *scope;
  char **models; /* a trailing '*' matches a prefix */
  size_t n;
} scope_models;

typedef struct jwt_inst {
  /* ---- configuration: immutable after create ---- */
  jw_claims_cfg claims; /* lists owned */
  unsigned algs;        /* allowed jw_alg mask */
  jw_keyset *statics;   /* "keys" and "jwks"; never NULL after create */
  char *jwks_url;       /* NULL: no JWKS URL given */
  char *discovery_url;  /* OIDC discovery document (its jwks_uri is fetched); NULL: none */
  double refresh_s, min_refresh_s;
  uint32_t timeout_ms;
  char *headers[MAX_HEADERS]; /* lower-case; "authorization" means a Bearer credential */
  size_t nheaders;
  size_t max_token;
  char *consumer_claim, *team_claim, *tier_claim; /* team/tier may be NULL */
  char **meta;                                    /* pairs: metadata name, claim */
  size_t nmeta;
  char **limits;                                  /* pairs: limit name, claim (metadata limit.<name>) */
  size_t nlimits;
  scope_models *sm;
  size_t nsm;
  uint32_t m_fetch; /* aigw_plugin_jwt_jwks_fetches_total{result} */

  /* ---- the JWKS cache: everything below under mu ---- */
  pthread_mutex_t mu;
  int mu_ok;
  jw_keyset *jwks;      /* current snapshot (this pointer holds one reference); NULL until fetched */
  int fetching;         /* a fetch is in flight */
  int attempted;        /* a fetch has ended (OK or failed) at least once */
  uint64_t completed;   /* fetches ended OK or failed (not cancelled) */
  double last_attempt;  /* monotonic seconds, when the last fetch ended */
  double last_ok;       /* monotonic seconds, when the current snapshot was installed */
  char last_error[160]; /* why the last fetch failed ("" after a success) */
  char jwks_found[1024]; /* discovery: the document's jwks_uri ("" until known, or after a failure) */
  jwt_rq *waiters;      /* requests waiting for the fetch in flight */
} jwt_inst;

/* Per request (request memory). */
struct jwt_rq {
  jwt_inst *in;
  aigw_req *r;
  jwt_rq *next; /* in in->waiters (under in->mu) */
  int queued;   /* under in->mu */
  uint64_t seen; /* in->completed when this request started waiting */
  int rounds;    /* fetches waited for (bounded) */
  const char *url; /* what its fetch fetches (request memory), for the log */
};

/* Remote keys: a JWKS URL, or one found through OIDC discovery. */
static int remote(const jwt_inst *in) { return in->jwks_url || in->discovery_url; }

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- key-set snapshots ------------------------------------------------------------------- */

typedef struct snap {
  jw_keyset *ks; /* a reference (release with ks_release), or NULL */
  int stale;     /* a fetched set older than jwks_refresh_s */
  uint64_t completed;
} snap;

static snap ks_acquire(jwt_inst *in) {
  snap s = {0};
  pthread_mutex_lock(&in->mu);
  if ((s.ks = in->jwks)) s.ks->refs++;
  /* never fetched is not "stale": a token a static key verifies does not wait for a first fetch */
  s.stale = in->jwks && mono() - in->last_ok >= in->refresh_s;
  s.completed = in->completed;
  pthread_mutex_unlock(&in->mu);
  return s;
}

static void ks_release(jwt_inst *in, jw_keyset *ks) {
  if (!ks) return;
  pthread_mutex_lock(&in->mu);
  int last = --ks->refs == 0;
  pthread_mutex_unlock(&in->mu);
  if (last) jw_keyset_free(ks);
}

/* ---- instance ---------------------------------------------------------------------------- */

static void jwt_destroy(void *vi) {
  jwt_inst *in = vi;
  if (!in) return;
  pc_free_list(in->claims.issuers, in->claims.nissuers);
  pc_free_list(in->claims.audiences, in->claims.naudiences);
  pc_free_list(in->claims.scopes, in->claims.nscopes);
  jw_keyset_free(in->statics);
  jw_keyset_free(in->jwks); /* every request has ended: this is the last reference */
  free(in->jwks_url);
  free(in->discovery_url);
  for (size_t i = 0; i < in->nheaders; i++) free(in->headers[i]);
  free(in->consumer_claim);
  free(in->team_claim);
  free(in->tier_claim);
  pc_free_list(in->meta, in->nmeta);
  pc_free_list(in->limits, in->nlimits);
  for (size_t i = 0; i < in->nsm; i++) {
    free(in->sm[i].scope);
    pc_free_list(in->sm[i].models, in->sm[i].n);
  }
  free(in->sm);
  if (in->mu_ok) pthread_mutex_destroy(&in->mu);
  free(in);
}

/* A string or an array of 1..64 non-empty strings at cfg[key]. Absent: 0 with *n = 0. */
static int str_or_list(const aigw_json *cfg, const char *key, char ***out, size_t *n, aigw_diag *d, const char *what) {
  *out = NULL;
  *n = 0;
  const aigw_json *v = cfg ? H->json_get(cfg, key) : NULL;
  if (!v) return 0;
  char ptr[80];
  snprintf(ptr, sizeof ptr, "/%s", key);
  aigw_str s;
  size_t len = H->json_type(v) == AIGW_JSON_ARRAY ? H->json_len(v) : 1;
  if ((H->json_type(v) != AIGW_JSON_ARRAY && H->json_type(v) != AIGW_JSON_STRING) || len == 0 || len > 64) {
    H->diag_error(d, ptr, "must be %s: a string or an array of 1 to 64 strings", what);
    return -1;
  }
  if (!(*out = calloc(len, sizeof **out))) return -1;
  for (size_t i = 0; i < len; i++) {
    const aigw_json *e = H->json_type(v) == AIGW_JSON_ARRAY ? H->json_at(v, i) : v;
    if (H->json_str(e, &s) != AIGW_OK || !s.n || s.n > 1000) {
      char p[100];
      snprintf(p, sizeof p, "%s/%zu", ptr, i);
      H->diag_error(d, H->json_type(v) == AIGW_JSON_ARRAY ? p : ptr, "must be a non-empty string (%s)", what);
      return -1;
    }
    if (!((*out)[(*n)++] = pc_dup(s))) return -1;
  }
  return 0;
}

/* An optional number in [lo, hi] at cfg[key]; *out keeps its default when absent. */
static int num_opt(const aigw_json *cfg, const char *key, double lo, double hi, double *out, aigw_diag *d) {
  const aigw_json *v = cfg ? H->json_get(cfg, key) : NULL;
  double x;
  if (!v) return 0;
  if (H->json_num(v, &x) != AIGW_OK || !(x >= lo && x <= hi)) {
    char p[80];
    snprintf(p, sizeof p, "/%s", key);
    H->diag_error(d, p, "must be a number from %g to %g", lo, hi);
    return -1;
  }
  *out = x;
  return 0;
}

/* An optional non-empty string at cfg[key] (a claim name); *out keeps its default when absent. */
static int str_opt(const aigw_json *cfg, const char *key, char **out, aigw_diag *d) {
  const aigw_json *v = cfg ? H->json_get(cfg, key) : NULL;
  aigw_str s;
  if (!v) return 0;
  if (H->json_str(v, &s) != AIGW_OK || !s.n || s.n > 200 || memchr(s.p, 0, s.n)) {
    char p[80];
    snprintf(p, sizeof p, "/%s", key);
    H->diag_error(d, p, "must be a claim name (a non-empty string)");
    return -1;
  }
  free(*out);
  return (*out = pc_dup(s)) ? 0 : -1;
}

/* Append one key to a growing key set. */
static int ks_push(jw_keyset *ks, size_t *cap, const jw_key *k) {
  if (ks->n == *cap) {
    size_t nc = *cap ? *cap * 2 : 4;
    jw_key *nk = realloc(ks->keys, nc * sizeof *nk);
    if (!nk) return -1;
    ks->keys = nk;
    *cap = nc;
  }
  ks->keys[ks->n++] = *k;
  return 0;
}

/* One entry of "keys": a JWK ("kty"), {"pem", "kid"?, "alg"?} or {"secret", "kid"?, "alg"?}. */
static int parse_static_key(const aigw_json *e, const char *ptr, jw_key *k, aigw_diag *d) {
  char err[200] = "";
  aigw_str s;
  if (H->json_type(e) != AIGW_JSON_OBJECT) {
    H->diag_error(d, ptr, "must be an object: a JWK, {\"pem\": ...} or {\"secret\": ...}");
    return -1;
  }
  if (H->json_get(e, "kty")) {
    cJSON *j = pc_to_cjson(H, e);
    int rc = j ? jw_key_from_jwk(j, k, err, sizeof err) : -1;
    cJSON_Delete(j);
    if (rc < 0) H->diag_error(d, ptr, "%s", err[0] ? err : "out of memory");
    return rc;
  }
  const aigw_json *pem = H->json_get(e, "pem"), *sec = H->json_get(e, "secret");
  if (!pem == !sec) {
    H->diag_error(d, ptr, "a key is a JWK (with \"kty\"), {\"pem\": \"-----BEGIN PUBLIC KEY-----...\"} or {\"secret\": \"...\"}");
    return -1;
  }
  int bad = 0;
  for (size_t i = 0; i < H->json_len(e); i++) {
    aigw_str kn;
    if (H->json_key_at(e, i, &kn) != AIGW_OK) continue;
    if (!pc_str_eq(kn, "pem") && !pc_str_eq(kn, "secret") && !pc_str_eq(kn, "kid") && !pc_str_eq(kn, "alg")) {
      char p[300];
      snprintf(p, sizeof p, "%s/%.*s", ptr, (int)(kn.n > 100 ? 100 : kn.n), kn.p);
      H->diag_error(d, p, "unknown key (known: pem or secret, kid, alg)");
      bad = 1;
    }
  }
  char *kid = NULL, *alg = NULL;
  const aigw_json *kv = H->json_get(e, "kid"), *av = H->json_get(e, "alg");
  if (kv && (H->json_str(kv, &s) != AIGW_OK || !s.n || !(kid = pc_dup(s)))) {
    char p[300];
    snprintf(p, sizeof p, "%s/kid", ptr);
    H->diag_error(d, p, "must be a non-empty string");
    bad = 1;
  }
  if (av && (H->json_str(av, &s) != AIGW_OK || !(alg = pc_dup(s)) || !jw_alg_parse(s.p, s.n))) {
    char p[300];
    snprintf(p, sizeof p, "%s/alg", ptr);
    H->diag_error(d, p, "unknown alg (HS256, RS256, ES256 or EdDSA)");
    bad = 1;
  }
  if (!bad) {
    char p[300];
    snprintf(p, sizeof p, "%s/%s", ptr, pem ? "pem" : "secret");
    if (H->json_str(pem ? pem : sec, &s) != AIGW_OK) {
      H->diag_error(d, p, "must be a string");
      bad = 1;
    } else if (pem) {
      if (jw_key_from_pem(s.p, s.n, alg, kid, k, err, sizeof err) < 0) H->diag_error(d, p, "%s", err), bad = 1;
    } else if (alg && strcmp(alg, "HS256")) {
      snprintf(p, sizeof p, "%s/alg", ptr);
      H->diag_error(d, p, "a secret verifies HS256 only");
      bad = 1;
    } else if (jw_key_from_secret(s.p, s.n, kid, k, err, sizeof err) < 0) {
      H->diag_error(d, p, "%s", err);
      bad = 1;
    }
  }
  free(kid);
  free(alg);
  return bad ? -1 : 0;
}

static const char *const KNOWN[] = {"issuer", "audience", "algorithms", "keys", "jwks", "jwks_url", "discovery_url", "jwks_refresh_s",
                                    "jwks_min_refresh_s", "jwks_timeout_ms", "headers", "max_token_bytes",
                                    "clock_skew_s", "require_exp", "max_age_s", "required_scopes",
                                    "consumer_claim", "team_claim", "tier_claim", "metadata_claims", "limit_claims",
                                    "scope_models"};

/* A static key into the instance's set (taking k), checked against "algorithms". 0, -1 not
 * allowed (reported at p; kept, the config fails anyway), -2 out of memory (k freed). */
static int add_static(jwt_inst *in, size_t *cap, jw_key *k, const char *p, aigw_diag *d) {
  int rc = 0;
  if (!(k->alg & in->algs)) {
    H->diag_error(d, p, "this key verifies %s, which \"algorithms\" does not allow", jw_alg_name(k->alg));
    rc = -1;
  }
  if (ks_push(in->statics, cap, k) < 0) {
    jw_key_free(k);
    return -2;
  }
  return rc;
}

static void *jwt_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d) {
  (void)h;
  int bad = 0;
  jwt_inst *in = calloc(1, sizeof *in);
  if (!in) return NULL;
  if (pthread_mutex_init(&in->mu, NULL) != 0) {
    free(in);
    return NULL;
  }
  in->mu_ok = 1;
  if (!(in->statics = calloc(1, sizeof *in->statics))) goto nomem;
  in->statics->refs = 1;
  if (!cfg || H->json_type(cfg) != AIGW_JSON_OBJECT) {
    H->diag_error(d, "", "required: a config object with issuer, audience and keys, jwks or jwks_url");
    jwt_destroy(in);
    return NULL;
  }
  for (size_t i = 0; i < H->json_len(cfg); i++) {
    aigw_str k;
    int known = 0;
    if (H->json_key_at(cfg, i, &k) != AIGW_OK) continue;
    for (size_t j = 0; j < sizeof KNOWN / sizeof *KNOWN; j++) known |= pc_str_eq(k, KNOWN[j]);
    if (!known) {
      char p[128];
      snprintf(p, sizeof p, "/%.*s", (int)(k.n > 100 ? 100 : k.n), k.p);
      H->diag_error(d, p, "unknown option (see plugins/jwt/README.md)");
      bad = 1;
    }
  }

  /* claims */
  if (str_or_list(cfg, "issuer", &in->claims.issuers, &in->claims.nissuers, d, "the accepted issuer(s)") < 0) bad = 1;
  else if (!in->claims.nissuers) {
    H->diag_error(d, "/issuer", "required: the accepted issuer (\"iss\"): a string or an array of strings");
    bad = 1;
  }
  if (str_or_list(cfg, "audience", &in->claims.audiences, &in->claims.naudiences, d, "the accepted audience(s)") < 0) bad = 1;
  else if (!in->claims.naudiences) {
    H->diag_error(d, "/audience", "required: the audience (\"aud\") tokens must be issued for: a string or an array");
    bad = 1;
  }
  const aigw_json *rs = H->json_get(cfg, "required_scopes");
  if (rs && H->json_type(rs) != AIGW_JSON_ARRAY) {
    H->diag_error(d, "/required_scopes", "must be an array of scope names");
    bad = 1;
  } else if (rs && H->json_len(rs) && str_or_list(cfg, "required_scopes", &in->claims.scopes, &in->claims.nscopes, d, "scope names") < 0) {
    bad = 1;
  }
  double skew = 60, max_age = 0, maxtok = 8192, refresh = 300, minref = 10, tmo = 5000;
  if (num_opt(cfg, "clock_skew_s", 0, 3600, &skew, d) < 0) bad = 1;
  if (num_opt(cfg, "max_age_s", 0, 31536000, &max_age, d) < 0) bad = 1;
  if (num_opt(cfg, "max_token_bytes", 256, 65536, &maxtok, d) < 0) bad = 1;
  if (num_opt(cfg, "jwks_refresh_s", 1, 604800, &refresh, d) < 0) bad = 1;
  if (num_opt(cfg, "jwks_min_refresh_s", 0, 3600, &minref, d) < 0) bad = 1;
  if (num_opt(cfg, "jwks_timeout_ms", 1, 60000, &tmo, d) < 0) bad = 1;
  in->claims.skew_s = (long long)skew;
  in->claims.max_age_s = (long long)max_age;
  in->max_token = (size_t)maxtok;
  in->refresh_s = refresh;
  in->min_refresh_s = minref;
  in->timeout_ms = (uint32_t)tmo;
  in->claims.require_exp = 1;
  const aigw_json *re = H->json_get(cfg, "require_exp");
  if (re && H->json_bool(re, &in->claims.require_exp) != AIGW_OK) {
    H->diag_error(d, "/require_exp", "must be true or false");
    bad = 1;
  }

  /* algorithms */
  in->algs = JW_ALG_ALL;
  const aigw_json *al = H->json_get(cfg, "algorithms");
  if (al) {
    in->algs = 0;
    if (H->json_type(al) != AIGW_JSON_ARRAY || !H->json_len(al)) {
      H->diag_error(d, "/algorithms", "must be a non-empty array of HS256, RS256, ES256, EdDSA");
      bad = 1;
    }
    for (size_t i = 0; H->json_type(al) == AIGW_JSON_ARRAY && i < H->json_len(al); i++) {
      aigw_str s;
      char p[64];
      snprintf(p, sizeof p, "/algorithms/%zu", i);
      unsigned a = H->json_str(H->json_at(al, i), &s) == AIGW_OK ? jw_alg_parse(s.p, s.n) : 0;
      if (!a) {
        int none = H->json_str(H->json_at(al, i), &s) == AIGW_OK && s.n == 4 && !strncasecmp(s.p, "none", 4);
        H->diag_error(d, p, none ? "alg none is never accepted" : "unknown alg (HS256, RS256, ES256 or EdDSA)");
        bad = 1;
      }
      in->algs |= a;
    }
  }

  /* static keys */
  size_t cap = 0;
  const aigw_json *ks = H->json_get(cfg, "keys");
  if (ks && H->json_type(ks) != AIGW_JSON_ARRAY) {
    H->diag_error(d, "/keys", "must be an array of keys (JWKs, {\"pem\"} or {\"secret\"})");
    bad = 1;
  }
  for (size_t i = 0; ks && H->json_type(ks) == AIGW_JSON_ARRAY && i < H->json_len(ks); i++) {
    char p[64];
    jw_key k;
    snprintf(p, sizeof p, "/keys/%zu", i);
    if (parse_static_key(H->json_at(ks, i), p, &k, d) < 0) {
      bad = 1;
      continue;
    }
    int ar = add_static(in, &cap, &k, p, d);
    if (ar == -2) goto nomem;
    if (ar < 0) bad = 1;
  }
  const aigw_json *jw = H->json_get(cfg, "jwks");
  if (jw) {
    const aigw_json *jk = H->json_type(jw) == AIGW_JSON_OBJECT ? H->json_get(jw, "keys") : NULL;
    if (!jk || H->json_type(jk) != AIGW_JSON_ARRAY) {
      H->diag_error(d, "/jwks", "must be a JWK Set: {\"keys\": [JWK, ...]}");
      bad = 1;
    }
    for (size_t i = 0; jk && H->json_type(jk) == AIGW_JSON_ARRAY && i < H->json_len(jk); i++) {
      char p[64], err[200] = "";
      jw_key k;
      snprintf(p, sizeof p, "/jwks/keys/%zu", i);
      cJSON *j = pc_to_cjson(H, H->json_at(jk, i));
      int rc = j ? jw_key_from_jwk(j, &k, err, sizeof err) : -1;
      cJSON_Delete(j);
      if (rc < 0) {
        H->diag_error(d, p, "%s", err[0] ? err : "out of memory");
        bad = 1;
        continue;
      }
      int ar = add_static(in, &cap, &k, p, d);
      if (ar == -2) goto nomem;
      if (ar < 0) bad = 1;
    }
  }
  const aigw_json *ju = H->json_get(cfg, "jwks_url");
  if (ju) {
    aigw_str s;
    if (H->json_str(ju, &s) != AIGW_OK || !(s.n > 7 && (!strncmp(s.p, "http://", 7) || (s.n > 8 && !strncmp(s.p, "https://", 8)))) ||
        memchr(s.p, 0, s.n)) {
      H->diag_error(d, "/jwks_url", "must be an http:// or https:// URL");
      bad = 1;
    } else if (!(in->jwks_url = pc_dup(s))) {
      goto nomem;
    }
  }
  const aigw_json *du = H->json_get(cfg, "discovery_url");
  if (du) {
    aigw_str s;
    if (H->json_str(du, &s) != AIGW_OK || !(s.n > 7 && (!strncmp(s.p, "http://", 7) || (s.n > 8 && !strncmp(s.p, "https://", 8)))) ||
        memchr(s.p, 0, s.n) || pc_has_ctl(s) || s.n > 1000) {
      H->diag_error(d, "/discovery_url", "must be an http:// or https:// URL (the issuer's .well-known/openid-configuration)");
      bad = 1;
    } else if (ju) {
      H->diag_error(d, "/discovery_url", "give \"jwks_url\" or \"discovery_url\", not both");
      bad = 1;
    } else if (!(in->discovery_url = pc_dup(s))) {
      goto nomem;
    }
  }
  if (!ks && !jw && !ju && !du) {
    H->diag_error(d, "", "no keys: give \"keys\", \"jwks\", \"jwks_url\" or \"discovery_url\" (or several)");
    bad = 1;
  }

  /* where tokens come from */
  const aigw_json *hs = H->json_get(cfg, "headers");
  if (hs) {
    int hr = pc_header_names(H, hs, in->headers, MAX_HEADERS, &in->nheaders, d);
    if (hr == -2) goto nomem;
    if (hr < 0) bad = 1;
  } else {
    if (!(in->headers[0] = strdup("authorization"))) goto nomem;
    in->nheaders = 1;
  }

  /* claim mapping */
  if (!(in->consumer_claim = strdup("sub"))) goto nomem;
  if (str_opt(cfg, "consumer_claim", &in->consumer_claim, d) < 0) bad = 1;
  if (str_opt(cfg, "team_claim", &in->team_claim, d) < 0) bad = 1;
  if (str_opt(cfg, "tier_claim", &in->tier_claim, d) < 0) bad = 1;
  static const char *const maps[] = {"metadata_claims", "limit_claims"};
  for (int mi = 0; mi < 2; mi++) {
    const aigw_json *mc = H->json_get(cfg, maps[mi]);
    if (!mc) continue;
    char ***list = mi ? &in->limits : &in->meta;
    size_t *nlist = mi ? &in->nlimits : &in->nmeta;
    char p[160];
    if (H->json_type(mc) != AIGW_JSON_OBJECT) {
      snprintf(p, sizeof p, "/%s", maps[mi]);
      H->diag_error(d, p, mi ? "must be an object: {\"<limit name>\": \"<claim holding this token's value>\"}"
                             : "must be an object: {\"<metadata name>\": \"<claim>\"}");
      bad = 1;
      continue;
    }
    if (!(*list = calloc(2 * H->json_len(mc) + 1, sizeof **list))) goto nomem;
    for (size_t i = 0; i < H->json_len(mc); i++) {
      aigw_str mk, mv;
      H->json_key_at(mc, i, &mk);
      char *kz = pc_dup(mk);
      if (!kz) goto nomem;
      if (!mk.n || mk.n > (mi ? 60u : 100u) || H->json_str(H->json_get(mc, kz), &mv) != AIGW_OK || !mv.n) {
        snprintf(p, sizeof p, "/%s/%s", maps[mi], kz);
        H->diag_error(d, p, mi ? "must be a claim name (a non-empty string) under a limit name (1-60 bytes)"
                               : "must be a claim name (a non-empty string) under a non-empty metadata name");
        free(kz);
        bad = 1;
        continue;
      }
      (*list)[(*nlist)++] = kz;
      if (!((*list)[(*nlist)++] = pc_dup(mv))) goto nomem;
    }
  }
  const aigw_json *sm = H->json_get(cfg, "scope_models");
  if (sm) {
    if (H->json_type(sm) != AIGW_JSON_OBJECT || !H->json_len(sm)) {
      H->diag_error(d, "/scope_models", "must be an object: {\"<scope>\": [\"<model or prefix*>\", ...]}");
      bad = 1;
    } else {
      if (!(in->sm = calloc(H->json_len(sm), sizeof *in->sm))) goto nomem;
      for (size_t i = 0; i < H->json_len(sm); i++) {
        aigw_str sk, s;
        H->json_key_at(sm, i, &sk);
        scope_models *e = &in->sm[in->nsm++];
        if (!(e->scope = pc_dup(sk))) goto nomem;
        const aigw_json *l = H->json_get(sm, e->scope);
        char p[160];
        snprintf(p, sizeof p, "/scope_models/%.100s", e->scope);
        if (!sk.n || H->json_type(l) != AIGW_JSON_ARRAY) {
          H->diag_error(d, p, "must be an array of model names (a trailing '*' matches a prefix)");
          bad = 1;
          continue;
        }
        if (!(e->models = calloc(H->json_len(l) + 1, sizeof *e->models))) goto nomem;
        for (size_t k = 0; k < H->json_len(l); k++) {
          if (H->json_str(H->json_at(l, k), &s) != AIGW_OK || !s.n) {
            char q[200];
            snprintf(q, sizeof q, "%s/%zu", p, k);
            H->diag_error(d, q, "must be a model name");
            bad = 1;
            continue;
          }
          if (!(e->models[e->n++] = pc_dup(s))) goto nomem;
        }
      }
    }
  }

  static const char *const labels[] = {"result", NULL};
  if (remote(in) &&
      (in->m_fetch = H->metric_define(d, AIGW_METRIC_COUNTER, "jwt_jwks_fetches_total",
                                      "JWKS fetches by the jwt plugin, by result (ok, error)", labels)) == UINT32_MAX)
    bad = 1;
  if (bad) {
    jwt_destroy(in);
    return NULL;
  }
  return in;
nomem:
  H->diag_error(d, "", "out of memory");
  jwt_destroy(in);
  return NULL;
}

/* ---- answers ----------------------------------------------------------------------------- */

/* Refuse: status 401 (authentication_error), 403 (permission_error) or 503 (server_error), with
 * msg (never token material) as the client's error message and a WWW-Authenticate header (RFC
 * 6750) on 401/403. */
static aigw_status deny(aigw_req *r, int status, const char *msg) {
  const char *type = status == 401 ? "authentication_error" : status == 403 ? "permission_error" : "server_error";
  const char *www = status == 401 ? "Bearer error=\"invalid_token\"" : status == 403 ? "Bearer error=\"insufficient_scope\"" : NULL;
  if (www) H->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("www-authenticate"), (aigw_str){www, strlen(www)});
  H->log(r, AIGW_LOG_INFO, "jwt: refused (%d): %s", status, msg);
  H->respond_error(r, status, type, msg);
  return AIGW_STOP;
}

static aigw_status denyf(aigw_req *r, int status, const char *prefix, const char *why) {
  char msg[300];
  snprintf(msg, sizeof msg, "%s%s", prefix, why);
  return deny(r, status, msg);
}

/* The token and the header it came from (*from, one of in->headers); tok->n == 0 when none. */
static void find_token(jwt_inst *in, aigw_req *r, aigw_str *tok, const char **from) {
  *tok = (aigw_str){0};
  *from = NULL;
  for (size_t i = 0; i < in->nheaders && !tok->n; i++) {
    aigw_str v;
    if (H->header(r, AIGW_CLIENT_REQUEST, (aigw_str){in->headers[i], strlen(in->headers[i])}, &v) != AIGW_OK || !v.n) continue;
    int auth = !strcmp(in->headers[i], "authorization");
    if (v.n >= 7 && !strncasecmp(v.p, "Bearer ", 7)) v.p += 7, v.n -= 7;
    else if (auth) continue; /* another scheme: not ours */
    while (v.n && v.p[0] == ' ') v.p++, v.n--;
    while (v.n && v.p[v.n - 1] == ' ') v.n--;
    *tok = v;
    *from = in->headers[i];
  }
}

/* A token header other than Authorization (which the core drops itself) is removed before the
 * upstream request. */
static void strip_header(aigw_req *r, const char *from) {
  if (from && strcmp(from, "authorization"))
    H->set_header(r, AIGW_CLIENT_REQUEST, (aigw_str){from, strlen(from)}, (aigw_str){NULL, 0});
}

static int glob_ok(char **pats, size_t n, aigw_str v) {
  for (size_t i = 0; i < n; i++) {
    size_t pl = strlen(pats[i]);
    if (pl && pats[i][pl - 1] == '*' ? v.n >= pl - 1 && !memcmp(v.p, pats[i], pl - 1) : pc_str_eq(v, pats[i])) return 1;
  }
  return 0;
}

/* A claim as a metadata value: a string, or a number / boolean as its JSON text. 0 or -1. */
/* The claim named `claim`: a top-level member of that exact name (names may hold dots, e.g. URL
 * claims), else a dotted path into nested objects ("realm_access.roles"), at most 8 deep. */
static const cJSON *claim_node(const cJSON *p, const char *claim) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, claim);
  if (v || !strchr(claim, '.')) return v;
  char seg[128];
  const char *c = claim;
  for (int depth = 0; depth < 8 && cJSON_IsObject(p); depth++) {
    const char *dot = strchr(c, '.');
    size_t n = dot ? (size_t)(dot - c) : strlen(c);
    if (!n || n >= sizeof seg) return NULL;
    memcpy(seg, c, n);
    seg[n] = 0;
    p = cJSON_GetObjectItemCaseSensitive(p, seg);
    if (!dot) return p;
    c = dot + 1;
  }
  return NULL;
}

/* A claim's value as text: a string, a number, a boolean, or an array's first string (groups,
 * roles). 0, or -1 when there is no usable value. */
static int claim_value(const cJSON *p, const char *claim, char *buf, size_t cap, aigw_str *out) {
  const cJSON *v = claim_node(p, claim);
  if (cJSON_IsArray(v)) {
    const cJSON *e;
    cJSON_ArrayForEach(e, v) if (cJSON_IsString(e) && e->valuestring[0]) break;
    v = e;
  }
  if (cJSON_IsString(v) && v->valuestring[0] && strlen(v->valuestring) <= MAX_CLAIM_VALUE) {
    *out = (aigw_str){v->valuestring, strlen(v->valuestring)};
    return 0;
  }
  if (cJSON_IsNumber(v)) {
    snprintf(buf, cap, "%.17g", v->valuedouble);
    *out = (aigw_str){buf, strlen(buf)};
    return 0;
  }
  if (cJSON_IsBool(v)) {
    snprintf(buf, cap, "%s", cJSON_IsTrue(v) ? "true" : "false");
    *out = (aigw_str){buf, strlen(buf)};
    return 0;
  }
  return -1;
}

/* The verified token's identity onto the request; CONTINUE, or STOP after a refusal. */
static aigw_status admit(jwt_inst *in, aigw_req *r, const cJSON *p) {
  char nb[64], msg[300];
  aigw_str consumer, v;
  if (claim_value(p, in->consumer_claim, nb, sizeof nb, &consumer) < 0) {
    snprintf(msg, sizeof msg, "invalid token: no usable '%.100s' claim (the consumer)", in->consumer_claim);
    return deny(r, 401, msg);
  }
  if (in->nsm) { /* models per scope */
    aigw_str model = {0};
    const aigw_json *m = H->body_member(r, AIGW_CLIENT_REQUEST, "model", NULL);
    int ok = 0;
    if (m && H->json_str(m, &model) == AIGW_OK)
      for (size_t i = 0; i < in->nsm && !ok; i++) ok = jw_has_scope(p, in->sm[i].scope) && glob_ok(in->sm[i].models, in->sm[i].n, model);
    if (!ok) {
      snprintf(msg, sizeof msg, "this token's scopes do not allow model '%.*s'", (int)(model.n > 200 ? 200 : model.n),
               model.p ? model.p : "");
      return deny(r, 403, msg);
    }
  }
  H->meta_set(r, "consumer", consumer);
  if (in->team_claim && claim_value(p, in->team_claim, nb, sizeof nb, &v) == 0) H->meta_set(r, "team", v);
  if (in->tier_claim && claim_value(p, in->tier_claim, nb, sizeof nb, &v) == 0) H->meta_set(r, "tier", v);
  for (size_t i = 0; i + 1 < in->nmeta; i += 2) {
    char k[256];
    snprintf(k, sizeof k, "consumer.%s", in->meta[i]);
    if (claim_value(p, in->meta[i + 1], nb, sizeof nb, &v) == 0) H->meta_set(r, k, v);
  }
  for (size_t i = 0; i + 1 < in->nlimits; i += 2) { /* this token's own value of a limit (the limits plugin) */
    char k[80];
    snprintf(k, sizeof k, "limit.%s", in->limits[i]);
    if (claim_value(p, in->limits[i + 1], nb, sizeof nb, &v) == 0) H->meta_set(r, k, v);
  }
  char sc[1024];
  size_t sn = jw_scopes_join(p, sc, sizeof sc);
  if (sn) H->meta_set(r, "scopes", (aigw_str){sc, sn});
  char lv[MAX_CLAIM_VALUE + 3];
  size_t n = 0;
  lv[n++] = '"';
  for (size_t i = 0; i < consumer.n && n < sizeof lv - 1; i++)
    if ((unsigned char)consumer.p[i] >= 0x20 && consumer.p[i] != '"' && consumer.p[i] != '\\' && consumer.p[i] != 0x7f)
      lv[n++] = consumer.p[i];
  lv[n++] = '"';
  H->log_field(r, "consumer", (aigw_str){lv, n});
  return AIGW_CONTINUE;
}

/* ---- the JWKS fetch ---------------------------------------------------------------------- */

static void fetch_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud);
static void discovery_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud);
static int jwks_call(jwt_inst *in, aigw_req *r, jwt_rq *rq);
static void wake(aigw_req *r, void *ud);

/* A fetch ended. ks: the new set (NULL when it failed or was cancelled); err: why it failed (NULL
 * for a cancelled fetch, which does not count as an attempt). Wakes every waiting request. */
static void fetch_finish(jwt_inst *in, jw_keyset *ks, const char *err) {
  jw_keyset *old = NULL;
  pthread_mutex_lock(&in->mu);
  in->fetching = 0;
  if (ks || err) {
    double now = mono();
    in->attempted = 1;
    in->last_attempt = now;
    in->completed++;
    if (ks) {
      old = in->jwks;
      in->jwks = ks;
      in->last_ok = now;
      in->last_error[0] = 0;
    } else {
      snprintf(in->last_error, sizeof in->last_error, "%s", err);
    }
  }
  /* Posted under mu: a queued request cannot leave the queue (its on_done takes mu) and so cannot
   * end while its jwt_rq is read here. post checks that the request is alive; when it ends before
   * delivery, wake never runs (nothing to free: jwt_rq is request memory). */
  for (jwt_rq *w = in->waiters, *next; w; w = next) {
    next = w->next;
    w->queued = 0;
    w->next = NULL;
    if (H->post(w->r, wake, w) != AIGW_OK)
      H->log(NULL, AIGW_LOG_WARN, "jwt: a request waiting for the JWKS could not be woken (it ends at its timeout)");
  }
  in->waiters = NULL;
  pthread_mutex_unlock(&in->mu);
  if (old) ks_release(in, old);
}

/* Start a fetch for rq (or join the one in flight). urgent: the request cannot be verified
 * without it (no keys yet, an unknown kid); otherwise it is a periodic refresh, which a request
 * neither joins nor starts while the last attempt is younger than jwks_min_refresh_s.
 * Returns 1 when rq now waits (PAUSE), 0 to go on with the keys at hand. */
static int start_or_join(jwt_inst *in, aigw_req *r, jwt_rq *rq, int urgent) {
  pthread_mutex_lock(&in->mu);
  if (in->fetching) {
    if (!urgent) {
      pthread_mutex_unlock(&in->mu);
      return 0;
    }
    rq->seen = in->completed;
    rq->rounds++;
    rq->next = in->waiters;
    in->waiters = rq;
    rq->queued = 1;
    pthread_mutex_unlock(&in->mu);
    return 1;
  }
  if (in->attempted && mono() - in->last_attempt < in->min_refresh_s) {
    pthread_mutex_unlock(&in->mu);
    return 0;
  }
  in->fetching = 1;
  rq->seen = in->completed;
  rq->rounds++;
  char *url = H->req_alloc(r, sizeof in->jwks_found);
  if (url) snprintf(url, sizeof in->jwks_found, "%s", in->jwks_url ? in->jwks_url : in->jwks_found);
  pthread_mutex_unlock(&in->mu);
  if (!url) {
    fetch_finish(in, NULL, "out of memory");
    return 0;
  }
  if (!url[0]) { /* discovery first: its jwks_uri, then the JWKS (discovery_done) */
    static const aigw_str dh[] = {AIGW_STR("accept"), AIGW_STR("application/json")};
    rq->url = in->discovery_url;
    aigw_http_spec spec = {.struct_size = sizeof spec, .method = "GET", .url = in->discovery_url, .headers = dh,
                           .nheaders = 1, .timeout_ms = in->timeout_ms, .max_response_bytes = 1u << 20};
    if (!H->http_call(r, &spec, discovery_done, rq)) {
      fetch_finish(in, NULL, "the call-out could not start");
      return 0;
    }
    return 1;
  }
  rq->url = url;
  if (jwks_call(in, r, rq) < 0) {
    fetch_finish(in, NULL, "the call-out could not start");
    return 0;
  }
  return 1;
}

/* The JWKS request for rq->url; 0 started, -1 not. */
static int jwks_call(jwt_inst *in, aigw_req *r, jwt_rq *rq) {
  static const aigw_str hdrs[] = {AIGW_STR("accept"), AIGW_STR("application/jwk-set+json, application/json")};
  aigw_http_spec spec = {.struct_size = sizeof spec,
                         .method = "GET",
                         .url = rq->url,
                         .headers = hdrs,
                         .nheaders = 1,
                         .timeout_ms = in->timeout_ms,
                         .max_response_bytes = 1u << 20};
  return H->http_call(r, &spec, fetch_done, rq) ? 0 : -1;
}

static aigw_status evaluate(jwt_inst *in, aigw_req *r, jwt_rq *rq, int final);

/* The fetcher's callback (its request's worker). Installs the new set, wakes the waiting requests,
 * then finishes its own request's check. */
static void fetch_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud) {
  jwt_rq *rq = ud;
  jwt_inst *in = rq->in;
  if (st == AIGW_CALL_CANCELLED) { /* its request went away: a waiting one takes over */
    fetch_finish(in, NULL, NULL);
    return;
  }
  char err[200] = "";
  jw_keyset *ks = NULL;
  size_t skipped = 0;
  aigw_str b = {0}, e = {0};
  int code = H->call_status_code(c);
  if (st != AIGW_CALL_OK) {
    H->call_error(c, &e);
    snprintf(err, sizeof err, "%s: %.*s", st == AIGW_CALL_TIMEOUT ? "timed out" : "failed", (int)(e.n > 120 ? 120 : e.n),
             e.p ? e.p : "");
  } else if (code != 200) {
    snprintf(err, sizeof err, "HTTP %d from the JWKS URL", code);
  } else if (H->call_body(c, &b) != AIGW_OK || !(ks = jw_jwks_parse(b.p, b.n, &skipped, err, sizeof err))) {
    if (!err[0]) snprintf(err, sizeof err, "no body");
  }
  if (ks) {
    H->log(r, AIGW_LOG_INFO, "jwt: JWKS from %s: %zu usable keys (%zu skipped)", rq->url, ks->n, skipped);
  } else {
    H->log(r, AIGW_LOG_WARN, "jwt: JWKS from %s could not be used: %s", rq->url, err);
    if (in->discovery_url) { /* the issuer may have moved its keys: discover again next time */
      pthread_mutex_lock(&in->mu);
      in->jwks_found[0] = 0;
      pthread_mutex_unlock(&in->mu);
    }
  }
  if (in->m_fetch != UINT32_MAX) {
    aigw_str lv = ks ? AIGW_STR("ok") : AIGW_STR("error");
    H->metric_add(in->m_fetch, &lv, 1);
  }
  fetch_finish(in, ks, ks ? NULL : err);
  aigw_status s = evaluate(in, r, rq, 1);
  if (s != AIGW_PAUSE) H->resume(r, s);
}

/* The discovery document's answer: its issuer must be one this config accepts (OpenID Connect
 * Discovery 1.0, section 4.3); its jwks_uri is kept and fetched now, for the same waiting rq. */
static void discovery_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud) {
  jwt_rq *rq = ud;
  jwt_inst *in = rq->in;
  if (st == AIGW_CALL_CANCELLED) {
    fetch_finish(in, NULL, NULL);
    return;
  }
  char err[200] = "";
  aigw_str b = {0}, e = {0};
  cJSON *j = NULL;
  if (st != AIGW_CALL_OK) {
    H->call_error(c, &e);
    snprintf(err, sizeof err, "discovery %s: %.*s", st == AIGW_CALL_TIMEOUT ? "timed out" : "failed",
             (int)(e.n > 120 ? 120 : e.n), e.p ? e.p : "");
  } else if (H->call_status_code(c) != 200) {
    snprintf(err, sizeof err, "HTTP %ld from the discovery URL", (long)H->call_status_code(c));
  } else if (H->call_body(c, &b) != AIGW_OK || !(j = cJSON_ParseWithLength(b.p, b.n)) || !cJSON_IsObject(j)) {
    snprintf(err, sizeof err, "the discovery document is not a JSON object");
  } else {
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(j, "issuer");
    const cJSON *ju = cJSON_GetObjectItemCaseSensitive(j, "jwks_uri");
    int iss_ok = 0;
    for (size_t i = 0; cJSON_IsString(iss) && i < in->claims.nissuers; i++)
      if (!strcmp(in->claims.issuers[i], iss->valuestring)) iss_ok = 1;
    if (!iss_ok)
      snprintf(err, sizeof err, "the discovery document's issuer is not one this config accepts");
    else if (!cJSON_IsString(ju) || strlen(ju->valuestring) >= sizeof in->jwks_found ||
             (strncmp(ju->valuestring, "https://", 8) && strncmp(ju->valuestring, "http://", 7)) ||
             pc_has_ctl((aigw_str){ju->valuestring, strlen(ju->valuestring)}))
      snprintf(err, sizeof err, "the discovery document has no usable jwks_uri");
    else {
      pthread_mutex_lock(&in->mu);
      snprintf(in->jwks_found, sizeof in->jwks_found, "%s", ju->valuestring);
      pthread_mutex_unlock(&in->mu);
      char *url = H->req_alloc(r, strlen(ju->valuestring) + 1);
      if (url) {
        memcpy(url, ju->valuestring, strlen(ju->valuestring) + 1);
        rq->url = url;
      }
      if (!url || jwks_call(in, r, rq) < 0) snprintf(err, sizeof err, "the call-out could not start");
    }
  }
  cJSON_Delete(j);
  if (!err[0]) return; /* the JWKS fetch goes on (fetch_done) */
  H->log(r, AIGW_LOG_WARN, "jwt: OIDC discovery at %s failed: %s", in->discovery_url, err);
  if (in->m_fetch != UINT32_MAX) {
    aigw_str lv = AIGW_STR("error");
    H->metric_add(in->m_fetch, &lv, 1);
  }
  fetch_finish(in, NULL, err);
  aigw_status s = evaluate(in, r, rq, 1);
  if (s != AIGW_PAUSE) H->resume(r, s);
}

/* A waiting request, on its own worker, after the fetch it waited for ended. */
static void wake(aigw_req *r, void *ud) {
  jwt_rq *rq = ud;
  jwt_inst *in = rq->in;
  pthread_mutex_lock(&in->mu);
  int final = in->completed > rq->seen; /* a fetch ended (not just a cancelled one) */
  pthread_mutex_unlock(&in->mu);
  aigw_status s = evaluate(in, r, rq, final);
  if (s != AIGW_PAUSE) H->resume(r, s);
}

/* ---- the check --------------------------------------------------------------------------- */

/* Whether a key for t is known: with a kid, a key with that kid; without, any key that fits. */
static int key_known(const jw_keyset *ks, const jw_token *t) {
  for (size_t i = 0; ks && i < ks->n; i++)
    if (t->kid ? ks->keys[i].kid && !strcmp(ks->keys[i].kid, t->kid) : jw_key_fits(&ks->keys[i], t)) return 1;
  return 0;
}

/* 1 verified, 0 not; *fit counts the keys that were tried. */
static int verify_with(const jw_keyset *ks, const jw_token *t, int *fit) {
  for (size_t i = 0; ks && i < ks->n; i++) {
    if (!jw_key_fits(&ks->keys[i], t)) continue;
    (*fit)++;
    if (jw_verify(&ks->keys[i], t->alg, (const unsigned char *)t->signing_input, t->signing_len, t->sig, t->siglen)) return 1;
  }
  return 0;
}

/* The whole check of one request. final: a JWKS fetch this request waited for has ended, so no
 * further fetch is started for it. Returns CONTINUE (admitted), STOP (refused, answer set) or
 * PAUSE (waiting for the JWKS; fetch_done or wake goes on). */
static aigw_status evaluate(jwt_inst *in, aigw_req *r, jwt_rq *rq, int final) {
  aigw_str tok;
  const char *from;
  find_token(in, r, &tok, &from);
  if (!tok.n) return deny(r, 401, "a bearer token is required (Authorization: Bearer <JWT>)");
  jw_token t;
  const char *why = NULL;
  if (jw_token_parse(tok.p, tok.n, in->max_token, &t, &why) < 0) {
    strip_header(r, from);
    return denyf(r, 401, "invalid token: ", why);
  }
  aigw_status st;
  snap sn = {0};
  if (!(t.alg & in->algs)) {
    char m[100];
    snprintf(m, sizeof m, "alg %s is not accepted here", jw_alg_name(t.alg));
    st = denyf(r, 401, "invalid token: ", m);
    goto done;
  }
  if (remote(in)) {
    sn = ks_acquire(in);
    int known = key_known(in->statics, &t) || key_known(sn.ks, &t);
    if (!final && rq->rounds < 4 && (!known || sn.stale) && start_or_join(in, r, rq, !known)) {
      st = AIGW_PAUSE; /* the token is parsed again when the keys are there */
      goto done;
    }
  }
  int fit = 0;
  if (!verify_with(in->statics, &t, &fit) && !verify_with(sn.ks, &t, &fit)) {
    strip_header(r, from);
    if (!fit && remote(in) && !sn.ks) {
      char m[260];
      pthread_mutex_lock(&in->mu);
      snprintf(m, sizeof m, "the signing keys are unavailable: the JWKS could not be fetched (%s)",
               in->last_error[0] ? in->last_error : "not yet tried");
      pthread_mutex_unlock(&in->mu);
      st = deny(r, 503, m);
    } else {
      st = deny(r, 401, fit ? "invalid token: the signature does not verify" : "invalid token: no known key fits its kid and alg");
    }
    goto done;
  }
  char cw[200];
  int code = 401;
  if (jw_check_claims(t.payload, &in->claims, (long long)time(NULL), cw, sizeof cw, &code) < 0) {
    strip_header(r, from);
    st = denyf(r, code, code == 401 ? "invalid token: " : "", cw);
    goto done;
  }
  st = admit(in, r, t.payload);
  strip_header(r, from);
done:
  ks_release(in, sn.ks);
  jw_token_free(&t);
  return st;
}

static aigw_status jwt_on_request(void *vi, aigw_req *r, void **rctx) {
  jwt_inst *in = vi;
  jwt_rq *rq = H->req_alloc(r, sizeof *rq);
  if (!rq) return AIGW_ERROR;
  rq->in = in;
  rq->r = r;
  *rctx = rq;
  return evaluate(in, r, rq, 0);
}

/* A request that ends while queued (client gone, timeout) leaves the queue. */
static void jwt_on_done(void *vi, aigw_req *r, void *rctx) {
  (void)r;
  jwt_inst *in = vi;
  jwt_rq *rq = rctx;
  if (!rq) return;
  pthread_mutex_lock(&in->mu);
  if (rq->queued) {
    for (jwt_rq **pp = &in->waiters; *pp; pp = &(*pp)->next)
      if (*pp == rq) {
        *pp = rq->next;
        break;
      }
    rq->queued = 0;
  }
  pthread_mutex_unlock(&in->mu);
}

static const aigw_plugin jwt_plugin = {
    AIGW_PLUGIN_HEADER,
    .name = "jwt",
    .version = "0.1.0",
    .priority = 1000, /* with keyauth, first: everything after it knows the consumer */
    .create = jwt_create,
    .destroy = jwt_destroy,
    .on_request = jwt_on_request,
    .on_done = jwt_on_done,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  if (!h || h->abi_major != AIGW_ABI_MAJOR) {
    snprintf(err, errlen, "jwt: host ABI major %u, plugin built for %d", h ? (unsigned)h->abi_major : 0u, AIGW_ABI_MAJOR);
    return NULL;
  }
  if (!AIGW_HAS(h, body_member)) {
    snprintf(err, errlen, "jwt: needs plugin ABI 1.1 or later (body_member)");
    return NULL;
  }
  H = h;
  return &jwt_plugin;
}
