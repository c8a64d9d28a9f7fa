/* jwt_core.h - the pure part of the jwt plugin: strict base64url, JWS compact token parsing,
 * JWK / PEM public keys (OpenSSL 3 EVP), signature checks (HS256, RS256, ES256, EdDSA) and the
 * registered-claim checks (iss, aud, exp, nbf, iat, scopes). No host calls, no I/O, no clock (the
 * time is passed in), no globals: tests/unit/test_jwt.c compiles this file on its own.
 *
 * OWNERSHIP: every struct owns what its fields point to unless a field says "borrowed"; free it
 * with the matching *_free. Inputs are borrowed for the call.
 * THREADS: a jw_key / jw_keyset is immutable once built; verifying with it from several threads at
 * once is safe (each verification uses its own EVP_MD_CTX; an EVP_PKEY is only read). Sharing a
 * keyset between threads (its lifetime) is the caller's business (jwt.c refcounts it). */
#ifndef AIGW_JWT_CORE_H
#define AIGW_JWT_CORE_H

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stddef.h>

/* JWS algorithms, as bits so that a set of them is a mask. */
typedef enum jw_alg {
  JW_HS256 = 1,
  JW_RS256 = 2,
  JW_ES256 = 4,
  JW_EDDSA = 8 /* Ed25519 only */
} jw_alg;
#define JW_ALG_ALL (JW_HS256 | JW_RS256 | JW_ES256 | JW_EDDSA)

/* "HS256" ... "EdDSA" (exact, case-sensitive as in RFC 7518) -> the alg; 0 for anything else,
 * "none" included. */
unsigned jw_alg_parse(const char *s, size_t n);
const char *jw_alg_name(unsigned alg); /* static string; "?" for an unknown value */

/* Strict base64url (RFC 4648 section 5) without padding, as JWS requires (RFC 7515 section 2):
 * only [A-Za-z0-9_-]; '=' , whitespace and '+' '/' are refused; a length of 4k+1 is refused; the
 * unused low bits of the last character must be zero (one encoding per byte string). out must hold
 * jw_b64url_max(n) bytes. Returns 0 with *outlen set, or -1. */
#define jw_b64url_max(n) ((n) / 4 * 3 + 3)
int jw_b64url_decode(const char *in, size_t n, unsigned char *out, size_t *outlen);

/* A verification key bound to exactly one algorithm: an RSA key verifies RS256 only, an oct key
 * HS256 only, so a token can never pick how its key is used (no RS/HS confusion). */
typedef struct jw_key {
  char *kid;             /* owned; NULL: the key has no kid (it is tried for any token) */
  unsigned alg;          /* one jw_alg */
  EVP_PKEY *pkey;        /* owned; RS256 / ES256 / EdDSA */
  unsigned char *secret; /* owned; HS256 */
  size_t secret_len;
} jw_key;

void jw_key_free(jw_key *k); /* the fields; k itself is the caller's */

/* One JWK (RFC 7517) object: kty RSA (n, e; >= 2048 bits), EC (crv P-256, x, y: a point on the
 * curve), OKP (crv Ed25519, x) or oct (k, >= 32 bytes). "alg", when present, must be the one the
 * key type verifies (RS256, ES256, EdDSA, HS256); without it the key type decides. "use", when
 * present, must be "sig". Returns 0 with *out filled, or -1 with a reason in err (never key
 * material). */
int jw_key_from_jwk(const cJSON *jwk, jw_key *out, char *err, size_t errlen);

/* A PEM public key ("BEGIN PUBLIC KEY": RSA >= 2048 bits, EC P-256, Ed25519). alg may be NULL
 * (derived from the key) or must match it. kid may be NULL. Returns 0 or -1 with err. */
int jw_key_from_pem(const char *pem, size_t n, const char *alg, const char *kid, jw_key *out, char *err,
                    size_t errlen);

/* An HS256 secret (the bytes as given, >= 32). Returns 0 or -1 with err. */
int jw_key_from_secret(const void *p, size_t n, const char *kid, jw_key *out, char *err, size_t errlen);

/* An immutable set of keys. refs is managed by whoever shares the set (jwt.c). */
typedef struct jw_keyset {
  jw_key *keys;
  size_t n;
  int refs; /* jwt.c: atomically (see jwt.c); 1 when built */
} jw_keyset;

/* A JWKS document {"keys": [JWK, ...]} (n bytes, need not be NUL-terminated). Keys that cannot be
 * used here (another kty or alg, "use": "enc", a bad value) are skipped and counted in *skipped.
 * Returns the set (refs = 1), or NULL with err when the document is not a JWKS (or no memory). */
jw_keyset *jw_jwks_parse(const char *json, size_t n, size_t *skipped, char *err, size_t errlen);
void jw_keyset_free(jw_keyset *ks); /* frees whatever refs says */

/* A parsed JWS compact token: BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature). */
typedef struct jw_token {
  const char *signing_input; /* borrowed: the token's "header.payload" bytes */
  size_t signing_len;
  cJSON *header, *payload;   /* owned; JSON objects */
  unsigned char *sig;        /* owned */
  size_t siglen;
  unsigned alg;              /* one jw_alg */
  const char *kid;           /* borrowed from header; NULL when absent */
} jw_token;

/* Parse (not verify) a token of n bytes (limit: max_bytes). Returns 0, or -1 with *reason set to a
 * static message naming what is wrong (never a part of the token): too large, not three parts, bad
 * base64url, header or payload not a JSON object, alg none, an alg this code does not know, a
 * "crit" header (no extension is understood), a non-string kid. */
int jw_token_parse(const char *tok, size_t n, size_t max_bytes, jw_token *t, const char **reason);
void jw_token_free(jw_token *t);

/* Whether key k may verify token t: same alg, and the key's kid equals the token's when both have
 * one (a key without kid fits any kid; a token without kid fits any key). */
int jw_key_fits(const jw_key *k, const jw_token *t);

/* Verify sig over msg with key k for alg (which must be k->alg). 1 valid, 0 not (wrong length,
 * bad signature, or an OpenSSL failure). HS256 compares in constant time. */
int jw_verify(const jw_key *k, unsigned alg, const unsigned char *msg, size_t mlen, const unsigned char *sig,
              size_t slen);

/* ES256: the JWS signature is R || S, 32 bytes each (RFC 7518 section 3.4); EVP wants a DER
 * ECDSA-Sig-Value. Converts 64 raw bytes into DER in der (cap >= 72). Returns 0 with *derlen, or
 * -1 (raw is not 64 bytes, cap too small). */
int jw_es256_raw_to_der(const unsigned char *raw, size_t rawlen, unsigned char *der, size_t cap, size_t *derlen);

/* What the claims must satisfy. Lists are borrowed for the call. */
typedef struct jw_claims_cfg {
  char **issuers;     /* the token's "iss" must equal one of them */
  size_t nissuers;
  char **audiences;   /* the token's "aud" (a string or an array of strings) must hold one of them */
  size_t naudiences;
  int require_exp;    /* "exp" must be present */
  long long skew_s;   /* clock skew allowed on exp, nbf and iat */
  long long max_age_s; /* > 0: "iat" required and now - iat <= max_age_s + skew_s */
  char **scopes;      /* every one must be among the token's scopes */
  size_t nscopes;
} jw_claims_cfg;

/* Check payload against c at time now (seconds since the epoch). Returns 0, or -1 with the reason
 * written into why (cap bytes) and *status: 401 (expired, not yet valid, issued in the future / too
 * long ago, missing or malformed exp/nbf/iat, issuer or audience not accepted) or 403 (a required
 * scope missing: the reason names the configured scope). Values from the token are never put into
 * the reason. */
int jw_check_claims(const cJSON *payload, const jw_claims_cfg *c, long long now, char *why, size_t cap, int *status);

/* The token's scopes: "scope" (a space-separated string, RFC 8693) and "scp" (an array of strings,
 * or a string). jw_has_scope: whether s is one of them. jw_scopes_join writes them, space-separated,
 * into out (cap bytes, NUL-terminated; scopes that do not fit or hold a control character or '"' or
 * '\\' are left out) and returns the length. */
int jw_has_scope(const cJSON *payload, const char *s);
size_t jw_scopes_join(const cJSON *payload, char *out, size_t cap);

#endif
