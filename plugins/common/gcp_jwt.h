/* gcp_jwt.h - Google service-account authentication building blocks for Vertex AI (OAuth 2.0
 * JWT-bearer grant, RFC 7523), pure: no I/O, no globals, no clock (time is passed in), so the
 * plugin does the HTTP through the host (h->http_call) and tests are deterministic.
 *
 * The flow a provider plugin runs:
 *   1. at create: gj_key_parse(the service-account key JSON) -> gj_key (keep it; free at destroy)
 *   2. per request: gj_cache_check(&cache, now)
 *        GJ_USE          use cache.token as "Authorization: Bearer <token>"
 *        GJ_USE_REFRESH  use cache.token AND start one refresh in the background
 *        GJ_REFRESH      no usable token: start the refresh, wait for it (PAUSE)
 *        GJ_WAIT         no usable token and a refresh is in flight: wait for it
 *   3. refresh: gj_assertion(key, NULL, now) -> JWT; gj_token_body(JWT) -> POST body
 *      (Content-Type: application/x-www-form-urlencoded) to key.token_uri;
 *      on 200: gj_token_parse(body, now) -> gj_cache_store; on failure: gj_cache_failed.
 *
 * OWNERSHIP: strings in gj_key, gj_token and gj_cache are OWNED by the struct (malloc'd; free
 * with the matching *_free). Inputs are BORROWED for the call. pc_buf outputs are appended to and
 * owned by the caller. THREADS: the structs are plain data; a cache shared between workers needs
 * the caller's lock (or use one cache per worker).
 */
#ifndef AIGW_GCP_JWT_H
#define AIGW_GCP_JWT_H

#include "pcommon.h"

#define GJ_SCOPE_CLOUD_PLATFORM "https://www.googleapis.com/auth/cloud-platform"
#define GJ_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define GJ_LIFETIME 3600     /* exp = iat + GJ_LIFETIME (Google's maximum) */
#define GJ_REFRESH_BEFORE 300 /* refresh when fewer seconds than this remain */
#define GJ_USABLE_MIN 30      /* a token with fewer seconds left than this is not used */
#define GJ_STALE_REFRESH 120  /* a refresh in flight longer than this is presumed lost */

typedef struct gj_key {
  char *client_email;   /* required */
  char *private_key;    /* required, PEM (PKCS#8 "BEGIN PRIVATE KEY" or "BEGIN RSA PRIVATE KEY") */
  char *private_key_id; /* optional: the JWT header's kid */
  char *token_uri;      /* key's token_uri, else GJ_DEFAULT_TOKEN_URI */
  char *project_id;     /* optional */
} gj_key;

/* Parse a service-account key JSON (n bytes, need not be NUL-terminated). The key must have
 * "type": "service_account" when type is present. Returns 0, or -1 with e set (status 400,
 * message naming the missing field) and *out zeroed. */
int gj_key_parse(const char *json, size_t n, gj_key *out, pc_err *e);
void gj_key_free(gj_key *k);

/* Build the signed assertion: base64url(header) "." base64url(claims) "." base64url(RS256 sig),
 * no padding; header {"alg":"RS256","typ":"JWT","kid":private_key_id (when known)}, claims
 * {"iss":client_email,"scope":scope (NULL: GJ_SCOPE_CLOUD_PLATFORM),"aud":token_uri,"iat":iat,
 * "exp":iat+GJ_LIFETIME}. Appends to out. Returns 0, or -1 with e set (the private key cannot be
 * read or is not RSA, or out of memory). */
int gj_assertion(const gj_key *k, const char *scope, long long iat, pc_buf *out, pc_err *e);

/* Append the token request body:
 * "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=<assertion>"
 * (assertion percent-encoded where needed). Returns 0 or -1 (out of memory). */
int gj_token_body(const char *assertion, pc_buf *out);

typedef struct gj_token {
  char *access_token;   /* OWNED */
  long long expires_at; /* now + expires_in (3600 when absent) */
} gj_token;

/* Parse the token endpoint's answer {"access_token","expires_in","token_type"} (or its error
 * {"error","error_description"}: -1 with the description in e, status 401). Returns 0 or -1. */
int gj_token_parse(const char *body, size_t n, long long now, gj_token *out, pc_err *e);
void gj_token_free(gj_token *t);

typedef struct gj_cache {
  char *token;          /* OWNED; NULL when none */
  long long expires_at;
  int refreshing;       /* single flight: one refresh at a time */
  long long refresh_started;
} gj_cache;

typedef enum gj_action {
  GJ_USE = 0,         /* token good for >= GJ_REFRESH_BEFORE seconds */
  GJ_USE_REFRESH = 1, /* usable, but fewer than GJ_REFRESH_BEFORE s left: refresh now (flag set) */
  GJ_REFRESH = 2,     /* none usable: refresh now (flag set) and wait for it */
  GJ_WAIT = 3         /* none usable, a refresh is in flight: wait for it */
} gj_action;

/* The refresh decision at time now. A token is usable while expires_at - now >= GJ_USABLE_MIN.
 * GJ_USE_REFRESH and GJ_REFRESH set c->refreshing (the caller MUST then end it with
 * gj_cache_store or gj_cache_failed); while it is set, the others get GJ_USE (usable token) or
 * GJ_WAIT. A refresh started GJ_STALE_REFRESH seconds ago or more no longer blocks a new one. */
gj_action gj_cache_check(gj_cache *c, long long now);
/* A refresh succeeded: takes over t->access_token (t is left empty); clears the flag. */
void gj_cache_store(gj_cache *c, gj_token *t);
/* A refresh failed: clears the flag (the old token, if any, stays). */
void gj_cache_failed(gj_cache *c);
void gj_cache_free(gj_cache *c);

/* base64url without padding of n bytes, appended to out. Returns 0 or -1. (Exposed for tests.) */
int gj_b64url(pc_buf *out, const void *p, size_t n);

#endif
