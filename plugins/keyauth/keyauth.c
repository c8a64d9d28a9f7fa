/* keyauth.c - consumers and their API keys ("virtual keys").
 *
 * Every request must carry a key: `Authorization: Bearer <key>` (OpenAI clients, recent Anthropic
 * SDKs), `x-api-key: <key>` (Anthropic clients) or a header named in "headers". The key is hashed
 * (SHA-256) and looked up among the consumers' key hashes; the config holds only hashes
 * ("sha256:<64 hex>", made with `aigw --hash-key`), never keys. Hashes are compared in constant
 * time. The consumer found is the request's identity for the plugins after this one and for
 * routing: metadata "consumer", "team", "tier" and "consumer.<name>" for its own metadata, and the
 * access-log field "consumer". A consumer may be limited to some routes and models (a trailing '*'
 * matches a prefix); anything else is refused with 403. No key, a malformed header or an unknown
 * key: 401. Answers are in the client's format (the host's respond_error).
 *
 * Bring your own key: a consumer's "provider_keys" ({"<provider>": "<key>"}) and, when configured,
 * a key the client sends in "client_provider_key".header (for the providers listed; it wins) are
 * handed to the adapters with h->set_credential (ABI 1.3), never logged.
 *
 * The key never leaves this plugin: the core drops Authorization and x-api-key before the
 * upstream request, and a custom key header is removed here; no key, hash or part of one reaches a
 * log, a metric or an error body.
 *
 * Instance (immutable after create): the consumers and a sorted array of (hash, consumer index)
 * for binary search. Threads: any worker; nothing is written after create. */
#include <aigw/plugin.h>

#include "pcommon.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const aigw_host *H;

#define MAX_HEADERS 4

typedef struct ka_consumer {
  char *name, *team, *tier;
  char **routes; size_t nroutes;  /* NULL: every route */
  char **models; size_t nmodels;  /* NULL: every model */
  char **meta; size_t nmeta;      /* key, value pairs */
  char **pkeys; size_t npkeys;    /* provider name, secret pairs: its own provider keys (BYOK) */
  char **limits; size_t nlimits;  /* limit name, value (number text) pairs: metadata "limit.<name>" */
} ka_consumer;

typedef struct ka_key {
  unsigned char h[32];
  size_t consumer;
} ka_key;

typedef struct ka_inst {
  EVP_MD *sha256;                 /* fetched once (a fetch per request costs more than the hash) */
  ka_consumer *c; size_t nc;
  ka_key *keys; size_t nkeys;     /* sorted by h */
  char *headers[MAX_HEADERS]; size_t nheaders; /* lower-case names; "authorization" means Bearer */
  char *byok_header;              /* lower-case; the client's own provider key, or NULL */
  char **byok_providers; size_t nbyok_providers; /* the providers it is for */
  uint32_t m_refused;             /* aigw_plugin_keyauth_refused_total{reason} */
} ka_inst;

/* provider name, secret pairs: the secrets are wiped before they are freed */
static void free_secrets(char **v, size_t n) {
  for (size_t i = 1; i < n; i += 2)
    if (v[i]) OPENSSL_cleanse(v[i], strlen(v[i]));
  pc_free_list(v, n);
}

/* Answers the request with an error (in the client's format) and counts it by reason. */
static void refuse(aigw_req *r, const ka_inst *in, int status, const char *type, const char *msg, const char *reason) {
  aigw_str lv = {reason, strlen(reason)};
  if (in->m_refused != UINT32_MAX) H->metric_add(in->m_refused, &lv, 1);
  H->respond_error(r, status, type, msg);
}

static void consumer_clear(ka_consumer *c) {
  free(c->name);
  free(c->team);
  free(c->tier);
  pc_free_list(c->routes, c->nroutes);
  pc_free_list(c->models, c->nmodels);
  pc_free_list(c->meta, c->nmeta);
  free_secrets(c->pkeys, c->npkeys);
  pc_free_list(c->limits, c->nlimits);
  memset(c, 0, sizeof *c);
}

static void ka_destroy(void *vi) {
  ka_inst *in = vi;
  if (!in) return;
  for (size_t i = 0; i < in->nc; i++) consumer_clear(&in->c[i]);
  free(in->byok_header);
  pc_free_list(in->byok_providers, in->nbyok_providers);
  free(in->c);
  free(in->keys);
  EVP_MD_free(in->sha256);
  for (size_t i = 0; i < in->nheaders; i++) free(in->headers[i]);
  free(in);
}

static int key_cmp(const void *a, const void *b) { return memcmp(((const ka_key *)a)->h, ((const ka_key *)b)->h, 32); }

static int hexval(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* "sha256:<64 hex>" -> 32 bytes. 0 or -1. */
static int parse_hash(aigw_str s, unsigned char out[32]) {
  if (s.n != 7 + 64 || memcmp(s.p, "sha256:", 7)) return -1;
  for (size_t i = 0; i < 32; i++) {
    int a = hexval(s.p[7 + 2 * i]), b = hexval(s.p[8 + 2 * i]);
    if (a < 0 || b < 0) return -1;
    out[i] = (unsigned char)(a * 16 + b);
  }
  return 0;
}

/* A JSON array of strings at cfg[key] into a malloc'd list; absent: *out NULL. -1 on a bad value. */
static int str_list(const aigw_json *obj, const char *key, char ***out, size_t *n, aigw_diag *d, const char *ptr) {
  *out = NULL;
  *n = 0;
  const aigw_json *a = H->json_get(obj, key);
  if (!a) return 0;
  if (H->json_type(a) != AIGW_JSON_ARRAY) {
    H->diag_error(d, ptr, "must be an array of strings");
    return -1;
  }
  size_t len = H->json_len(a);
  *out = calloc(len ? len : 1, sizeof **out);
  if (!*out) return -1;
  for (size_t i = 0; i < len; i++) {
    aigw_str s;
    if (H->json_str(H->json_at(a, i), &s) != AIGW_OK || !s.n) {
      char p[160];
      snprintf(p, sizeof p, "%s/%zu", ptr, i);
      H->diag_error(d, p, "must be a non-empty string");
      return -1;
    }
    if (!((*out)[(*n)++] = pc_dup(s))) return -1;
  }
  return 0;
}

static void *ka_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d) {
  (void)h;
  ka_inst *in = calloc(1, sizeof *in);
  if (!in) return NULL;
  if (!(in->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
    H->diag_error(d, "", "OpenSSL has no SHA-256");
    free(in);
    return NULL;
  }
  int bad = 0;
  for (size_t i = 0; cfg && i < H->json_len(cfg); i++) {
    aigw_str k;
    if (H->json_key_at(cfg, i, &k) != AIGW_OK) continue;
    if (!pc_str_eq(k, "consumers") && !pc_str_eq(k, "headers") && !pc_str_eq(k, "client_provider_key")) {
      char p[128];
      snprintf(p, sizeof p, "/%.*s", (int)(k.n > 100 ? 100 : k.n), k.p);
      H->diag_error(d, p, "unknown option (known: consumers, headers, client_provider_key)");
      bad = 1;
    }
  }
  /* a client may bring its own provider key in a header, for the providers listed */
  const aigw_json *cp = cfg ? H->json_get(cfg, "client_provider_key") : NULL;
  if (cp) {
    aigw_str hn;
    if (H->json_type(cp) != AIGW_JSON_OBJECT || H->json_str(H->json_get(cp, "header"), &hn) != AIGW_OK || !hn.n ||
        hn.n > 100 || !H->json_get(cp, "providers")) {
      H->diag_error(d, "/client_provider_key",
                    "must be {\"header\": \"<name>\", \"providers\": [\"<provider>\", ...]}: the header a client "
                    "sends its own key in, and the providers it is used for");
      bad = 1;
    } else {
      if (!(in->byok_header = pc_dup(hn))) goto nomem;
      for (char *c = in->byok_header; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
      if (!strcmp(in->byok_header, "authorization") || !strcmp(in->byok_header, "x-api-key")) {
        H->diag_error(d, "/client_provider_key/header", "must differ from the headers the gateway's own keys come in");
        bad = 1;
      }
      if (str_list(cp, "providers", &in->byok_providers, &in->nbyok_providers, d, "/client_provider_key/providers") < 0 ||
          !in->nbyok_providers) {
        if (!in->nbyok_providers) H->diag_error(d, "/client_provider_key/providers", "must name at least one provider");
        bad = 1;
      }
    }
  }
  /* where keys come from */
  const aigw_json *hs = cfg ? H->json_get(cfg, "headers") : NULL;
  if (hs) {
    int hr = pc_header_names(H, hs, in->headers, MAX_HEADERS, &in->nheaders, d);
    if (hr == -2) goto nomem;
    if (hr < 0) bad = 1;
  } else {
    if (!(in->headers[0] = strdup("authorization")) || !(in->headers[1] = strdup("x-api-key"))) goto nomem;
    in->nheaders = 2;
  }
  const aigw_json *cs = cfg ? H->json_get(cfg, "consumers") : NULL;
  if (!cs || H->json_type(cs) != AIGW_JSON_ARRAY) {
    H->diag_error(d, "/consumers", "required: an array of consumers ({\"name\", \"keys\": [\"sha256:...\"], ...}; "
                                   "hash a key with `aigw --hash-key`)");
    ka_destroy(in);
    return NULL;
  }
  size_t ncs = H->json_len(cs), nk = 0;
  in->c = calloc(ncs ? ncs : 1, sizeof *in->c);
  for (size_t i = 0; i < ncs; i++) {
    const aigw_json *ks = H->json_get(H->json_at(cs, i), "keys");
    nk += ks && H->json_type(ks) == AIGW_JSON_ARRAY ? H->json_len(ks) : 0;
  }
  in->keys = calloc(nk ? nk : 1, sizeof *in->keys);
  if (!in->c || !in->keys) goto nomem;
  for (size_t i = 0; i < ncs; i++) {
    const aigw_json *c = H->json_at(cs, i);
    char p[160];
    snprintf(p, sizeof p, "/consumers/%zu", i);
    if (H->json_type(c) != AIGW_JSON_OBJECT) {
      H->diag_error(d, p, "must be an object");
      bad = 1;
      continue;
    }
    for (size_t k = 0; k < H->json_len(c); k++) {
      aigw_str key;
      H->json_key_at(c, k, &key);
      if (!pc_str_eq(key, "name") && !pc_str_eq(key, "keys") && !pc_str_eq(key, "team") && !pc_str_eq(key, "tier") &&
          !pc_str_eq(key, "routes") && !pc_str_eq(key, "models") && !pc_str_eq(key, "metadata") && !pc_str_eq(key, "provider_keys") &&
          !pc_str_eq(key, "limits")) {
        char q[300];
        snprintf(q, sizeof q, "%s/%.*s", p, (int)(key.n > 100 ? 100 : key.n), key.p);
        H->diag_error(d, q, "unknown key (known: name, keys, team, tier, routes, models, metadata, provider_keys, limits)");
        bad = 1;
      }
    }
    ka_consumer *con = &in->c[in->nc++];
    aigw_str s;
    char q[300];
    if (H->json_str(H->json_get(c, "name"), &s) != AIGW_OK || !s.n || s.n > 200) {
      snprintf(q, sizeof q, "%s/name", p);
      H->diag_error(d, q, "required: the consumer's name (1-200 bytes)");
      bad = 1;
    } else if (!(con->name = pc_dup(s))) {
      goto nomem;
    }
    for (size_t j = 0; con->name && j + 1 < in->nc; j++)
      if (in->c[j].name && !strcmp(in->c[j].name, con->name)) {
        snprintf(q, sizeof q, "%s/name", p);
        H->diag_error(d, q, "consumer '%s' is defined twice", con->name);
        bad = 1;
      }
    if (H->json_str(H->json_get(c, "team"), &s) == AIGW_OK && !(con->team = pc_dup(s))) goto nomem;
    if (H->json_str(H->json_get(c, "tier"), &s) == AIGW_OK && !(con->tier = pc_dup(s))) goto nomem;
    snprintf(q, sizeof q, "%s/routes", p);
    if (str_list(c, "routes", &con->routes, &con->nroutes, d, q) < 0) bad = 1;
    snprintf(q, sizeof q, "%s/models", p);
    if (str_list(c, "models", &con->models, &con->nmodels, d, q) < 0) bad = 1;
    const aigw_json *md = H->json_get(c, "metadata");
    if (md) {
      snprintf(q, sizeof q, "%s/metadata", p);
      if (H->json_type(md) != AIGW_JSON_OBJECT) {
        H->diag_error(d, q, "must be an object of strings");
        bad = 1;
      } else {
        con->meta = calloc(2 * H->json_len(md) + 1, sizeof *con->meta);
        if (!con->meta) goto nomem;
        for (size_t k = 0; k < H->json_len(md); k++) {
          aigw_str mk, mv;
          H->json_key_at(md, k, &mk);
          char *kz = pc_dup(mk);
          if (!kz) goto nomem;
          if (H->json_str(H->json_get(md, kz), &mv) != AIGW_OK) {
            free(kz);
            H->diag_error(d, q, "metadata values must be strings");
            bad = 1;
            continue;
          }
          con->meta[con->nmeta++] = kz;
          if (!(con->meta[con->nmeta++] = pc_dup(mv))) goto nomem;
        }
      }
    }
    const aigw_json *lm = H->json_get(c, "limits");
    if (lm) { /* {"<limit name>": <its value for this consumer>} */
      snprintf(q, sizeof q, "%s/limits", p);
      if (H->json_type(lm) != AIGW_JSON_OBJECT) {
        H->diag_error(d, q, "must be an object: {\"<limit name>\": <this consumer's value>} (the limits plugin's limits)");
        bad = 1;
      } else {
        con->limits = calloc(2 * H->json_len(lm) + 1, sizeof *con->limits);
        if (!con->limits) goto nomem;
        for (size_t k = 0; k < H->json_len(lm); k++) {
          aigw_str ln;
          double v;
          H->json_key_at(lm, k, &ln);
          char *lz = pc_dup(ln);
          if (!lz) goto nomem;
          if (H->json_num(H->json_get(lm, lz), &v) != AIGW_OK || !(v >= 0) || v >= 9e15 || ln.n > 60) {
            H->diag_error(d, q, "limit %s: must be a number >= 0", lz);
            free(lz);
            bad = 1;
            continue;
          }
          char nb[40];
          snprintf(nb, sizeof nb, "%.17g", v);
          con->limits[con->nlimits++] = lz;
          if (!(con->limits[con->nlimits++] = strdup(nb))) goto nomem;
        }
      }
    }
    const aigw_json *pk = H->json_get(c, "provider_keys");
    if (pk) { /* {"<provider>": "<its key for this consumer>"}: never echoed in an error */
      snprintf(q, sizeof q, "%s/provider_keys", p);
      if (H->json_type(pk) != AIGW_JSON_OBJECT) {
        H->diag_error(d, q, "must be an object: {\"<provider name>\": \"<the consumer's own key>\"} (use ${ENV} references)");
        bad = 1;
      } else {
        con->pkeys = calloc(2 * H->json_len(pk) + 1, sizeof *con->pkeys);
        if (!con->pkeys) goto nomem;
        for (size_t k = 0; k < H->json_len(pk); k++) {
          aigw_str pn, pv;
          H->json_key_at(pk, k, &pn);
          char *pz = pc_dup(pn);
          if (!pz) goto nomem;
          int okv = H->json_str(H->json_get(pk, pz), &pv) == AIGW_OK && pv.n && pv.n <= 8192;
          free(pz);
          for (size_t z = 0; okv && z < pv.n; z++)
            if ((unsigned char)pv.p[z] < 0x20 || pv.p[z] == 0x7f) okv = 0;
          if (!okv || !pn.n || pn.n > 200) {
            H->diag_error(d, q, "provider %.*s: the key must be a non-empty string without control characters",
                          (int)(pn.n > 100 ? 100 : pn.n), pn.p);
            bad = 1;
            continue;
          }
          if (!(con->pkeys[con->npkeys++] = pc_dup(pn))) goto nomem;
          if (!(con->pkeys[con->npkeys++] = pc_dup(pv))) goto nomem;
        }
      }
    }
    const aigw_json *ks = H->json_get(c, "keys");
    snprintf(q, sizeof q, "%s/keys", p);
    if (!ks || H->json_type(ks) != AIGW_JSON_ARRAY || !H->json_len(ks)) {
      H->diag_error(d, q, "required: an array of key hashes (\"sha256:<64 hex>\", from `aigw --hash-key`)");
      bad = 1;
      continue;
    }
    for (size_t k = 0; k < H->json_len(ks); k++) {
      ka_key *e = &in->keys[in->nkeys];
      char r[400];
      snprintf(r, sizeof r, "%s/%zu", q, k);
      if (H->json_str(H->json_at(ks, k), &s) != AIGW_OK || parse_hash(s, e->h) < 0) {
        H->diag_error(d, r, "must be \"sha256:\" and 64 hex digits (store the hash of a key, never the key: `aigw --hash-key`)");
        bad = 1;
        continue;
      }
      e->consumer = in->nc - 1;
      in->nkeys++;
    }
  }
  if (!bad) {
    qsort(in->keys, in->nkeys, sizeof *in->keys, key_cmp);
    for (size_t i = 1; i < in->nkeys; i++)
      if (!memcmp(in->keys[i].h, in->keys[i - 1].h, 32)) {
        H->diag_error(d, "/consumers", "the same key hash is given twice (consumers '%s' and '%s')",
                      in->c[in->keys[i - 1].consumer].name, in->c[in->keys[i].consumer].name);
        bad = 1;
        break;
      }
  }
  static const char *const labels[] = {"reason", NULL};
  if ((in->m_refused = H->metric_define(d, AIGW_METRIC_COUNTER, "keyauth_refused_total",
                                        "Requests keyauth refused, by reason (missing_key, invalid_key, route, model, "
                                        "bad_provider_key, store_unavailable)",
                                        labels)) == UINT32_MAX)
    bad = 1;
  if (bad) {
    ka_destroy(in);
    return NULL;
  }
  return in;
nomem:
  H->diag_error(d, "", "out of memory");
  ka_destroy(in);
  return NULL;
}

/* The consumer index for a key, or -1. Binary search over hashes; the final comparison is
 * constant-time (CRYPTO_memcmp). */
static long find(const ka_inst *in, const unsigned char h[32]) {
  size_t lo = 0, hi = in->nkeys;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = memcmp(in->keys[mid].h, h, 32);
    if (c == 0) lo = hi = mid;
    else if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  if (lo < in->nkeys && CRYPTO_memcmp(in->keys[lo].h, h, 32) == 0) return (long)in->keys[lo].consumer;
  return -1;
}

static int glob_ok(char **pats, size_t n, aigw_str v) {
  if (!pats) return 1;
  for (size_t i = 0; i < n; i++) {
    size_t pl = strlen(pats[i]);
    if (pl && pats[i][pl - 1] == '*' ? v.n >= pl - 1 && !memcmp(v.p, pats[i], pl - 1) : pc_str_eq(v, pats[i])) return 1;
  }
  return 0;
}

/* One request's state (request memory). */
typedef struct ka_req {
  ka_inst *in;
  int byok;      /* the client sent its own provider key (set_credential done) */
  aigw_str cname; /* a stored key's consumer, while its record is looked up (request memory) */
} ka_req;

static aigw_status admit(aigw_req *r, ka_req *q, const ka_consumer *c);
static void lookup_done(aigw_req *r, aigw_call *call, aigw_call_status st, void *ud);
static void consumer_done(aigw_req *r, aigw_call *call, aigw_call_status st, void *ud);

static aigw_status ka_on_request(void *vi, aigw_req *r, void **rctx) {
  (void)rctx;
  ka_inst *in = vi;
  aigw_str key = {0};
  const char *from = NULL;
  for (size_t i = 0; i < in->nheaders && !key.n; i++) {
    aigw_str v;
    if (H->header(r, AIGW_CLIENT_REQUEST, (aigw_str){in->headers[i], strlen(in->headers[i])}, &v) != AIGW_OK || !v.n)
      continue;
    from = in->headers[i];
    if (!strcmp(from, "authorization")) {
      if (v.n < 8 || strncasecmp(v.p, "Bearer ", 7)) continue; /* another scheme: not ours */
      v.p += 7, v.n -= 7;
      while (v.n && *v.p == ' ') v.p++, v.n--;
    }
    key = v;
  }
  if (from && strcmp(from, "authorization") && strcmp(from, "x-api-key")) /* the core drops those two itself */
    H->set_header(r, AIGW_CLIENT_REQUEST, (aigw_str){from, strlen(from)}, (aigw_str){NULL, 0});
  ka_req *q = H->req_alloc(r, sizeof *q);
  if (!q) return AIGW_ERROR;
  q->in = in;
  q->byok = 0;
  if (in->byok_header) { /* the client's own provider key: for the providers listed, never forwarded */
    aigw_str hn = {in->byok_header, strlen(in->byok_header)}, v;
    if (H->header(r, AIGW_CLIENT_REQUEST, hn, &v) == AIGW_OK && v.n) {
      int st = AIGW_OK;
      for (size_t i = 0; i < in->nbyok_providers && st == AIGW_OK; i++)
        st = H->set_credential(r, (aigw_str){in->byok_providers[i], strlen(in->byok_providers[i])}, v);
      H->set_header(r, AIGW_CLIENT_REQUEST, hn, (aigw_str){NULL, 0});
      if (st != AIGW_OK) {
        refuse(r, in, 400, "invalid_request_error",
                         "the provider key header holds an invalid value (control characters, or over 8 KiB)",
               "bad_provider_key");
        return AIGW_STOP;
      }
      q->byok = 1;
    }
  }
  if (!key.n) {
    refuse(r, in, 401, "authentication_error", "an API key is required (Authorization: Bearer <key>, or x-api-key: <key>)",
           "missing_key");
    return AIGW_STOP;
  }
  unsigned char h[32];
  unsigned int hl = 0;
  if (key.n > 4096 || !EVP_Digest(key.p, key.n, h, &hl, in->sha256, NULL) || hl != 32) {
    refuse(r, in, 401, "authentication_error", "invalid API key", "invalid_key");
    return AIGW_STOP;
  }
  long ci = find(in, h);
  if (ci < 0) {
    /* not in the config: a key made through the admin API (the host store, shared by every
     * worker and node: a revocation counts at once) */
    char kk[12 + 65];
    static const char hx[] = "0123456789abcdef";
    memcpy(kk, "keyauth:key:", 12);
    for (int i = 0; i < 32; i++) kk[12 + 2 * i] = hx[h[i] >> 4], kk[13 + 2 * i] = hx[h[i] & 15];
    kk[76] = 0;
    OPENSSL_cleanse(h, sizeof h);
    if (!H->store_get(r, (aigw_str){kk, 76}, lookup_done, q)) {
      refuse(r, in, 503, "server_error", "the key store is unavailable", "store_unavailable");
      return AIGW_STOP;
    }
    return AIGW_PAUSE;
  }
  OPENSSL_cleanse(h, sizeof h);
  return admit(r, q, &in->c[ci]);
}

static aigw_status admit(aigw_req *r, ka_req *q, const ka_consumer *c) {
  const ka_inst *in = q->in;
  aigw_str route = {0}, model = {0};
  H->meta_get(r, "aigw.route", &route);
  if (!glob_ok(c->routes, c->nroutes, route)) {
    H->log(r, AIGW_LOG_INFO, "keyauth: consumer %s may not use route %.*s", c->name, (int)route.n, route.p);
    refuse(r, in, 403, "permission_error", "this API key may not use this endpoint", "route");
    return AIGW_STOP;
  }
  if (c->models) {
    const aigw_json *m = H->body_member(r, AIGW_CLIENT_REQUEST, "model", NULL);
    if (!m || H->json_str(m, &model) != AIGW_OK || !glob_ok(c->models, c->nmodels, model)) {
      char msg[300];
      snprintf(msg, sizeof msg, "this API key may not use model '%.*s'", (int)(model.n > 200 ? 200 : model.n), model.p ? model.p : "");
      refuse(r, in, 403, "permission_error", msg, "model");
      return AIGW_STOP;
    }
  }
  /* the consumer's own provider keys, except where the client brought its own */
  for (size_t i = 0; i + 1 < c->npkeys; i += 2) {
    int client_has = 0;
    for (size_t j = 0; q->byok && j < in->nbyok_providers; j++)
      if (!strcmp(in->byok_providers[j], c->pkeys[i])) client_has = 1;
    if (!client_has)
      H->set_credential(r, (aigw_str){c->pkeys[i], strlen(c->pkeys[i])}, (aigw_str){c->pkeys[i + 1], strlen(c->pkeys[i + 1])});
  }
  for (size_t i = 0; i + 1 < c->nlimits; i += 2) {
    char k[80];
    snprintf(k, sizeof k, "limit.%s", c->limits[i]);
    H->meta_set(r, k, (aigw_str){c->limits[i + 1], strlen(c->limits[i + 1])});
  }
  H->meta_set(r, "consumer", (aigw_str){c->name, strlen(c->name)});
  if (c->team) H->meta_set(r, "team", (aigw_str){c->team, strlen(c->team)});
  if (c->tier) H->meta_set(r, "tier", (aigw_str){c->tier, strlen(c->tier)});
  for (size_t i = 0; i + 1 < c->nmeta; i += 2) {
    char k[256];
    snprintf(k, sizeof k, "consumer.%s", c->meta[i]);
    H->meta_set(r, k, (aigw_str){c->meta[i + 1], strlen(c->meta[i + 1])});
  }
  char lv[420];
  size_t n = 0;
  lv[n++] = '"';
  for (const char *p = c->name; *p && n < sizeof lv - 3; p++)
    if ((unsigned char)*p >= 0x20 && *p != '"' && *p != '\\') lv[n++] = *p;
  lv[n++] = '"';
  H->log_field(r, "consumer", (aigw_str){lv, n});
  return AIGW_CONTINUE;
}

/* A consumer record from the store (keyadmin.c writes it: {"team", "tier", "routes", "models",
 * "metadata", "limits"}) into c (malloc'd copies; consumer_clear frees). 0, or -1 malformed. */
static int consumer_from_json(const char *name, size_t nn, const char *txt, size_t tn, ka_consumer *c) {
  memset(c, 0, sizeof *c);
  cJSON *j = cJSON_ParseWithLength(txt, tn);
  if (!cJSON_IsObject(j) || !(c->name = pc_dup((aigw_str){name, nn}))) goto bad;
  const cJSON *v;
  if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(j, "team")) && !(c->team = strdup(v->valuestring))) goto bad;
  if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(j, "tier")) && !(c->tier = strdup(v->valuestring))) goto bad;
  static const char *const lists[] = {"routes", "models"};
  for (int li = 0; li < 2; li++) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, lists[li]);
    if (!cJSON_IsArray(a)) continue;
    char ***dst = li ? &c->models : &c->routes;
    size_t *dn = li ? &c->nmodels : &c->nroutes;
    if (!(*dst = calloc((size_t)cJSON_GetArraySize(a) + 1, sizeof **dst))) goto bad;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) if (cJSON_IsString(e) && !((*dst)[(*dn)++] = strdup(e->valuestring))) goto bad;
  }
  static const char *const maps[] = {"metadata", "limits"};
  for (int mi = 0; mi < 2; mi++) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, maps[mi]);
    if (!cJSON_IsObject(o)) continue;
    char ***dst = mi ? &c->limits : &c->meta;
    size_t *dn = mi ? &c->nlimits : &c->nmeta;
    if (!(*dst = calloc(2 * (size_t)cJSON_GetArraySize(o) + 1, sizeof **dst))) goto bad;
    const cJSON *e;
    cJSON_ArrayForEach(e, o) {
      char nb[40];
      const char *val = NULL;
      if (!mi && cJSON_IsString(e)) val = e->valuestring;
      else if (mi && cJSON_IsNumber(e) && e->valuedouble >= 0) val = (snprintf(nb, sizeof nb, "%.17g", e->valuedouble), nb);
      if (!val) continue;
      if (!((*dst)[(*dn)++] = strdup(e->string)) || !((*dst)[(*dn)++] = strdup(val))) goto bad;
    }
  }
  cJSON_Delete(j);
  return 0;
bad:
  cJSON_Delete(j);
  consumer_clear(c);
  return -1;
}

/* The store's answer for a consumer the config does not define (made through the admin API). */
static void consumer_done(aigw_req *r, aigw_call *call, aigw_call_status st, void *ud) {
  if (st == AIGW_CALL_CANCELLED) return;
  ka_req *q = ud;
  const ka_inst *in = q->in;
  aigw_str b = {0};
  if (st == AIGW_CALL_OK && H->call_body(call, &b) == AIGW_OK && b.n) {
    ka_consumer c;
    if (consumer_from_json(q->cname.p, q->cname.n, b.p, b.n, &c) == 0) {
      aigw_status rs = admit(r, q, &c);
      consumer_clear(&c);
      H->resume(r, rs);
      return;
    }
    H->log(r, AIGW_LOG_WARN, "keyauth: the stored record of consumer '%.*s' is malformed", (int)q->cname.n, q->cname.p);
  } else if (st != AIGW_CALL_OK && H->call_status_code(call) != 404) {
    refuse(r, in, 503, "server_error", "the key store is unavailable", "store_unavailable");
    H->resume(r, AIGW_STOP);
    return;
  } else {
    H->log(r, AIGW_LOG_WARN, "keyauth: a stored key names consumer '%.*s', which is neither in this route's keyauth config nor in the store",
           (int)(q->cname.n > 100 ? 100 : q->cname.n), q->cname.p);
  }
  refuse(r, in, 401, "authentication_error", "invalid API key", "invalid_key");
  H->resume(r, AIGW_STOP);
}

/* The store's answer for a key the config does not know: its consumer's name, or nothing. */
static void lookup_done(aigw_req *r, aigw_call *call, aigw_call_status st, void *ud) {
  if (st == AIGW_CALL_CANCELLED) return;
  ka_req *q = ud;
  ka_inst *in = q->in;
  aigw_str b = {0};
  if (st == AIGW_CALL_OK && H->call_body(call, &b) == AIGW_OK && b.n) {
    for (size_t i = 0; i < in->nc; i++)
      if (in->c[i].name && strlen(in->c[i].name) == b.n && !memcmp(in->c[i].name, b.p, b.n)) {
        H->resume(r, admit(r, q, &in->c[i]));
        return;
      }
    /* not in the config: a consumer made through the admin API (PUT /consumers/<name>) */
    char *cn = b.n <= 200 ? H->req_alloc(r, b.n) : NULL;
    if (cn) {
      memcpy(cn, b.p, b.n);
      q->cname = (aigw_str){cn, b.n};
      char ck[17 + 201];
      memcpy(ck, "keyauth:consumer:", 17);
      memcpy(ck + 17, b.p, b.n);
      if (H->store_get(r, (aigw_str){ck, 17 + b.n}, consumer_done, q)) return; /* resumes from there */
    }
    refuse(r, in, 503, "server_error", "the key store is unavailable", "store_unavailable");
    H->resume(r, AIGW_STOP);
    return;
  } else if (H->call_status_code(call) != 404) {
    refuse(r, in, 503, "server_error", "the key store is unavailable", "store_unavailable");
    H->resume(r, AIGW_STOP);
    return;
  }
  H->log(r, AIGW_LOG_INFO, "keyauth: unknown API key");
  refuse(r, in, 401, "authentication_error", "invalid API key", "invalid_key");
  H->resume(r, AIGW_STOP);
}

static const aigw_plugin ka_plugin = {
    AIGW_PLUGIN_HEADER,
    .name = "keyauth",
    .version = "0.1.0",
    .priority = 1000, /* first: everything after it knows the consumer */
    .create = ka_create,
    .destroy = ka_destroy,
    .on_request = ka_on_request,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  if (!h || h->abi_major != AIGW_ABI_MAJOR) {
    snprintf(err, errlen, "keyauth: host ABI major %u, plugin built for %d", h ? (unsigned)h->abi_major : 0u, AIGW_ABI_MAJOR);
    return NULL;
  }
  H = h;
  return &ka_plugin;
}
