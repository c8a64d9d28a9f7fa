/* jwt_core.c - base64url, JWS parsing, JWK/PEM keys, signatures and claims (see jwt_core.h).
 *
 * Keys are built with OpenSSL 3's provider API (OSSL_PARAM_BLD + EVP_PKEY_fromdata, raw Ed25519
 * keys), never the deprecated RSA_* / EC_KEY_* calls. Every key is bound to one algorithm when it
 * is built; jw_verify refuses any other, which is what keeps an RSA public key from being used as
 * an HMAC secret. */
#include "jwt_core.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIN_RSA_BITS 2048
#define MIN_HMAC_BYTES 32

static const struct {
  unsigned alg;
  const char *name;
} ALGS[] = {{JW_HS256, "HS256"}, {JW_RS256, "RS256"}, {JW_ES256, "ES256"}, {JW_EDDSA, "EdDSA"}};

unsigned jw_alg_parse(const char *s, size_t n) {
  for (size_t i = 0; s && i < sizeof ALGS / sizeof *ALGS; i++)
    if (strlen(ALGS[i].name) == n && !memcmp(ALGS[i].name, s, n)) return ALGS[i].alg;
  return 0;
}

const char *jw_alg_name(unsigned alg) {
  for (size_t i = 0; i < sizeof ALGS / sizeof *ALGS; i++)
    if (ALGS[i].alg == alg) return ALGS[i].name;
  return "?";
}

static void errf(char *err, size_t cap, const char *fmt, ...) {
  if (!err || !cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

/* ---- base64url --------------------------------------------------------------------------- */

static int b64v(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

int jw_b64url_decode(const char *in, size_t n, unsigned char *out, size_t *outlen) {
  if (n % 4 == 1) return -1;
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64v((unsigned char)in[i]);
    if (v < 0) return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
    }
    acc &= (1u << bits) - 1; /* keep only the bits not yet written */
  }
  if (acc) return -1; /* non-zero padding bits: not the canonical encoding */
  *outlen = o;
  return 0;
}

/* Decode a base64url JSON string member into a new buffer. NULL when absent, not a string or bad. */
static unsigned char *b64_member(const cJSON *o, const char *key, size_t *len) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsString(v) || !v->valuestring) return NULL;
  size_t n = strlen(v->valuestring);
  unsigned char *p = malloc(jw_b64url_max(n) + 1);
  if (!p) return NULL;
  if (jw_b64url_decode(v->valuestring, n, p, len) < 0) {
    free(p);
    return NULL;
  }
  return p;
}

static const char *str_member(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- keys -------------------------------------------------------------------------------- */

void jw_key_free(jw_key *k) {
  if (!k) return;
  free(k->kid);
  EVP_PKEY_free(k->pkey);
  if (k->secret) OPENSSL_clear_free(k->secret, k->secret_len);
  memset(k, 0, sizeof *k);
}

static int set_kid(jw_key *k, const char *kid) {
  if (!kid) return 0;
  return (k->kid = strdup(kid)) ? 0 : -1;
}

/* The one alg a key type verifies, for an EVP_PKEY. 0 when unusable (with err). */
static unsigned pkey_alg(EVP_PKEY *pk, char *err, size_t cap) {
  if (EVP_PKEY_is_a(pk, "RSA")) {
    if (EVP_PKEY_get_bits(pk) < MIN_RSA_BITS) {
      errf(err, cap, "RSA key of %d bits (at least %d needed)", EVP_PKEY_get_bits(pk), MIN_RSA_BITS);
      return 0;
    }
    return JW_RS256;
  }
  if (EVP_PKEY_is_a(pk, "EC")) {
    char g[64] = "";
    size_t gl = 0;
    if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, g, sizeof g, &gl) != 1 ||
        (strcmp(g, "prime256v1") && strcmp(g, "P-256"))) {
      errf(err, cap, "EC key not on P-256 (ES256 needs P-256)");
      return 0;
    }
    return JW_ES256;
  }
  if (EVP_PKEY_is_a(pk, "ED25519")) return JW_EDDSA;
  errf(err, cap, "unsupported key type (RSA, EC P-256 or Ed25519)");
  return 0;
}

static EVP_PKEY *fromdata(const char *type, OSSL_PARAM_BLD *bld) {
  EVP_PKEY *pk = NULL;
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
    pk = NULL;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  return pk;
}

static EVP_PKEY *rsa_from_jwk(const cJSON *j, char *err, size_t cap) {
  size_t nl = 0, el = 0;
  unsigned char *n = b64_member(j, "n", &nl), *e = b64_member(j, "e", &el);
  BIGNUM *bn = NULL, *be = NULL;
  OSSL_PARAM_BLD *bld = NULL;
  EVP_PKEY *pk = NULL;
  if (!n || !e || !nl || !el || el > 8) {
    errf(err, cap, "RSA JWK needs \"n\" and \"e\" (base64url)");
    goto done;
  }
  bn = BN_bin2bn(n, (int)nl, NULL);
  be = BN_bin2bn(e, (int)el, NULL);
  bld = OSSL_PARAM_BLD_new();
  if (!bn || !be || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) || !(pk = fromdata("RSA", bld)))
    errf(err, cap, "RSA JWK: OpenSSL refused n/e");
done:
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn);
  BN_free(be);
  free(n);
  free(e);
  return pk;
}

static EVP_PKEY *ec_from_jwk(const cJSON *j, char *err, size_t cap) {
  const char *crv = str_member(j, "crv");
  if (!crv || strcmp(crv, "P-256")) {
    errf(err, cap, "EC JWK: only crv \"P-256\" is supported");
    return NULL;
  }
  size_t xl = 0, yl = 0;
  unsigned char *x = b64_member(j, "x", &xl), *y = b64_member(j, "y", &yl);
  unsigned char pub[65];
  OSSL_PARAM_BLD *bld = NULL;
  EVP_PKEY *pk = NULL;
  EVP_PKEY_CTX *chk = NULL;
  if (!x || !y || xl != 32 || yl != 32) {
    errf(err, cap, "EC JWK needs \"x\" and \"y\" of 32 bytes each (base64url)");
    goto done;
  }
  pub[0] = 0x04; /* uncompressed point */
  memcpy(pub + 1, x, 32);
  memcpy(pub + 33, y, 32);
  bld = OSSL_PARAM_BLD_new();
  if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub) || !(pk = fromdata("EC", bld))) {
    errf(err, cap, "EC JWK: not a point on P-256");
    goto done;
  }
  chk = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
  if (!chk || EVP_PKEY_public_check(chk) != 1) {
    errf(err, cap, "EC JWK: not a valid point on P-256");
    EVP_PKEY_free(pk);
    pk = NULL;
  }
done:
  EVP_PKEY_CTX_free(chk);
  OSSL_PARAM_BLD_free(bld);
  free(x);
  free(y);
  return pk;
}

static EVP_PKEY *okp_from_jwk(const cJSON *j, char *err, size_t cap) {
  const char *crv = str_member(j, "crv");
  if (!crv || strcmp(crv, "Ed25519")) {
    errf(err, cap, "OKP JWK: only crv \"Ed25519\" is supported");
    return NULL;
  }
  size_t xl = 0;
  unsigned char *x = b64_member(j, "x", &xl);
  EVP_PKEY *pk = NULL;
  if (!x || xl != 32) errf(err, cap, "OKP JWK needs \"x\" of 32 bytes (base64url)");
  else if (!(pk = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, xl))) errf(err, cap, "OKP JWK: OpenSSL refused x");
  free(x);
  return pk;
}

int jw_key_from_jwk(const cJSON *j, jw_key *out, char *err, size_t cap) {
  memset(out, 0, sizeof *out);
  if (!cJSON_IsObject(j)) {
    errf(err, cap, "a JWK must be an object");
    return -1;
  }
  const char *kty = str_member(j, "kty"), *alg = str_member(j, "alg"), *use = str_member(j, "use");
  const cJSON *kidv = cJSON_GetObjectItemCaseSensitive(j, "kid");
  if (kidv && !cJSON_IsString(kidv)) {
    errf(err, cap, "\"kid\" must be a string");
    return -1;
  }
  if (use && strcmp(use, "sig")) {
    errf(err, cap, "\"use\" is \"%.20s\", not \"sig\"", use);
    return -1;
  }
  if (!kty) {
    errf(err, cap, "\"kty\" is required (RSA, EC, OKP or oct)");
    return -1;
  }
  unsigned want;
  if (!strcmp(kty, "RSA")) want = JW_RS256;
  else if (!strcmp(kty, "EC")) want = JW_ES256;
  else if (!strcmp(kty, "OKP")) want = JW_EDDSA;
  else if (!strcmp(kty, "oct")) want = JW_HS256;
  else {
    errf(err, cap, "unsupported kty \"%.20s\" (RSA, EC, OKP or oct)", kty);
    return -1;
  }
  if (alg && jw_alg_parse(alg, strlen(alg)) != want) {
    errf(err, cap, "alg \"%.20s\" does not fit kty %s (it verifies %s only)", alg, kty, jw_alg_name(want));
    return -1;
  }
  out->alg = want;
  if (want == JW_HS256) {
    size_t kl = 0;
    unsigned char *k = b64_member(j, "k", &kl);
    if (!k || kl < MIN_HMAC_BYTES) {
      errf(err, cap, "oct JWK needs \"k\" (base64url) of at least %d bytes", MIN_HMAC_BYTES);
      if (k) OPENSSL_clear_free(k, kl);
      return -1;
    }
    out->secret = k;
    out->secret_len = kl;
  } else {
    EVP_PKEY *pk = want == JW_RS256 ? rsa_from_jwk(j, err, cap) : want == JW_ES256 ? ec_from_jwk(j, err, cap) : okp_from_jwk(j, err, cap);
    if (!pk) return -1;
    out->pkey = pk;
    if (pkey_alg(pk, err, cap) != want) {
      jw_key_free(out);
      return -1;
    }
  }
  if (set_kid(out, kidv ? kidv->valuestring : NULL) < 0) {
    jw_key_free(out);
    errf(err, cap, "out of memory");
    return -1;
  }
  return 0;
}

int jw_key_from_pem(const char *pem, size_t n, const char *alg, const char *kid, jw_key *out, char *err, size_t cap) {
  memset(out, 0, sizeof *out);
  if (n > INT32_MAX) return -1;
  BIO *b = BIO_new_mem_buf(pem, (int)n);
  EVP_PKEY *pk = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
  if (!pk && b) { /* a certificate: its public key */
    BIO_free(b);
    b = BIO_new_mem_buf(pem, (int)n);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    if (x) pk = X509_get_pubkey(x);
    X509_free(x);
  }
  BIO_free(b);
  if (!pk) {
    errf(err, cap, "not a PEM public key (\"-----BEGIN PUBLIC KEY-----\") or certificate");
    return -1;
  }
  unsigned a = pkey_alg(pk, err, cap);
  if (!a) {
    EVP_PKEY_free(pk);
    return -1;
  }
  if (alg && jw_alg_parse(alg, strlen(alg)) != a) {
    errf(err, cap, "alg \"%.20s\" does not fit this key (it verifies %s only)", alg, jw_alg_name(a));
    EVP_PKEY_free(pk);
    return -1;
  }
  out->pkey = pk;
  out->alg = a;
  if (set_kid(out, kid) < 0) {
    jw_key_free(out);
    errf(err, cap, "out of memory");
    return -1;
  }
  return 0;
}

int jw_key_from_secret(const void *p, size_t n, const char *kid, jw_key *out, char *err, size_t cap) {
  memset(out, 0, sizeof *out);
  if (n < MIN_HMAC_BYTES) {
    errf(err, cap, "an HS256 secret must have at least %d bytes (RFC 7518 section 3.2)", MIN_HMAC_BYTES);
    return -1;
  }
  if (!(out->secret = malloc(n)) || set_kid(out, kid) < 0) {
    free(out->secret);
    out->secret = NULL;
    errf(err, cap, "out of memory");
    return -1;
  }
  memcpy(out->secret, p, n);
  out->secret_len = n;
  out->alg = JW_HS256;
  return 0;
}

void jw_keyset_free(jw_keyset *ks) {
  if (!ks) return;
  for (size_t i = 0; i < ks->n; i++) jw_key_free(&ks->keys[i]);
  free(ks->keys);
  free(ks);
}

jw_keyset *jw_jwks_parse(const char *json, size_t n, size_t *skipped, char *err, size_t cap) {
  *skipped = 0;
  cJSON *doc = cJSON_ParseWithLength(json, n);
  const cJSON *keys = doc ? cJSON_GetObjectItemCaseSensitive(doc, "keys") : NULL;
  jw_keyset *ks = NULL;
  if (!cJSON_IsObject(doc) || !cJSON_IsArray(keys)) {
    errf(err, cap, "not a JSON Web Key Set ({\"keys\": [...]})");
    goto done;
  }
  int nk = cJSON_GetArraySize(keys);
  ks = calloc(1, sizeof *ks);
  if (!ks || !(ks->keys = calloc(nk > 0 ? (size_t)nk : 1, sizeof *ks->keys))) {
    free(ks);
    ks = NULL;
    errf(err, cap, "out of memory");
    goto done;
  }
  ks->refs = 1;
  const cJSON *k;
  cJSON_ArrayForEach(k, keys) {
    char why[160];
    if (jw_key_from_jwk(k, &ks->keys[ks->n], why, sizeof why) == 0) ks->n++;
    else (*skipped)++;
  }
done:
  cJSON_Delete(doc);
  return ks;
}

/* ---- tokens ------------------------------------------------------------------------------ */

void jw_token_free(jw_token *t) {
  if (!t) return;
  cJSON_Delete(t->header);
  cJSON_Delete(t->payload);
  free(t->sig);
  memset(t, 0, sizeof *t);
}

/* base64url(JSON object) -> cJSON. NULL when not. */
static cJSON *b64_json_object(const char *p, size_t n) {
  unsigned char *buf = malloc(jw_b64url_max(n) + 1);
  size_t len = 0;
  cJSON *j = NULL;
  if (buf && jw_b64url_decode(p, n, buf, &len) == 0) {
    j = cJSON_ParseWithLength((const char *)buf, len);
    if (j && !cJSON_IsObject(j)) {
      cJSON_Delete(j);
      j = NULL;
    }
  }
  free(buf);
  return j;
}

int jw_token_parse(const char *tok, size_t n, size_t max_bytes, jw_token *t, const char **reason) {
  memset(t, 0, sizeof *t);
  if (n > max_bytes) {
    *reason = "the token is too large";
    return -1;
  }
  const char *d1 = memchr(tok, '.', n);
  const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok)) : NULL;
  if (!d1 || !d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - tok)) || d1 == tok || d2 == d1 + 1) {
    *reason = "not a JWS compact token (three base64url parts separated by '.')";
    return -1;
  }
  if (!(t->header = b64_json_object(tok, (size_t)(d1 - tok)))) {
    *reason = "the token header is not base64url-encoded JSON object";
    goto fail;
  }
  const cJSON *alg = cJSON_GetObjectItemCaseSensitive(t->header, "alg");
  if (!cJSON_IsString(alg)) {
    *reason = "the token header has no alg";
    goto fail;
  }
  if (!strcasecmp(alg->valuestring, "none")) { /* any spelling of "none" */
    *reason = "alg none is not accepted";
    goto fail;
  }
  if (!(t->alg = jw_alg_parse(alg->valuestring, strlen(alg->valuestring)))) {
    *reason = "unsupported alg (HS256, RS256, ES256 and EdDSA are supported)";
    goto fail;
  }
  if (cJSON_GetObjectItemCaseSensitive(t->header, "crit")) {
    *reason = "the token header has crit extensions, none of which is supported";
    goto fail;
  }
  const cJSON *kid = cJSON_GetObjectItemCaseSensitive(t->header, "kid");
  if (kid && !cJSON_IsString(kid)) {
    *reason = "the token header's kid is not a string";
    goto fail;
  }
  t->kid = kid ? kid->valuestring : NULL;
  if (!(t->payload = b64_json_object(d1 + 1, (size_t)(d2 - d1 - 1)))) {
    *reason = "the token payload is not base64url-encoded JSON object";
    goto fail;
  }
  size_t sl = (size_t)(tok + n - d2 - 1); /* may be 0 (an unsecured JWS is refused above; any
                                           * other alg then fails verification) */
  if (!(t->sig = malloc(jw_b64url_max(sl) + 1)) || jw_b64url_decode(d2 + 1, sl, t->sig, &t->siglen) < 0) {
    *reason = "the token signature is not base64url";
    goto fail;
  }
  t->signing_input = tok;
  t->signing_len = (size_t)(d2 - tok);
  return 0;
fail:
  jw_token_free(t);
  return -1;
}

int jw_key_fits(const jw_key *k, const jw_token *t) {
  if (k->alg != t->alg) return 0;
  return !k->kid || !t->kid || !strcmp(k->kid, t->kid);
}

/* ---- signatures -------------------------------------------------------------------------- */

int jw_es256_raw_to_der(const unsigned char *raw, size_t rawlen, unsigned char *der, size_t cap, size_t *derlen) {
  if (rawlen != 64) return -1;
  int rc = -1;
  ECDSA_SIG *s = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(raw, 32, NULL), *ss = BN_bin2bn(raw + 32, 32, NULL);
  if (!s || !r || !ss || ECDSA_SIG_set0(s, r, ss) != 1) {
    BN_free(r);
    BN_free(ss);
    goto done;
  }
  /* owned by s now */
  int len = i2d_ECDSA_SIG(s, NULL);
  if (len <= 0 || (size_t)len > cap) goto done;
  unsigned char *p = der;
  if (i2d_ECDSA_SIG(s, &p) != len) goto done;
  *derlen = (size_t)len;
  rc = 0;
done:
  ECDSA_SIG_free(s);
  return rc;
}

static int digest_verify(EVP_PKEY *pk, const EVP_MD *md, const unsigned char *sig, size_t slen, const unsigned char *msg,
                         size_t mlen) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, md, NULL, pk) == 1 && EVP_DigestVerify(ctx, sig, slen, msg, mlen) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

int jw_verify(const jw_key *k, unsigned alg, const unsigned char *msg, size_t mlen, const unsigned char *sig, size_t slen) {
  if (!k || alg != k->alg) return 0;
  switch (alg) {
  case JW_HS256: {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    if (!k->secret || slen != 32 || k->secret_len > INT32_MAX) return 0;
    if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, msg, mlen, mac, &ml) || ml != 32) return 0;
    int ok = CRYPTO_memcmp(mac, sig, 32) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return ok;
  }
  case JW_RS256:
    if (!k->pkey || EVP_PKEY_get_size(k->pkey) <= 0 || slen != (size_t)EVP_PKEY_get_size(k->pkey)) return 0;
    return digest_verify(k->pkey, EVP_sha256(), sig, slen, msg, mlen);
  case JW_ES256: {
    unsigned char der[80];
    size_t dl = 0;
    if (!k->pkey || jw_es256_raw_to_der(sig, slen, der, sizeof der, &dl) < 0) return 0;
    return digest_verify(k->pkey, EVP_sha256(), der, dl, msg, mlen);
  }
  case JW_EDDSA:
    if (!k->pkey || slen != 64) return 0;
    return digest_verify(k->pkey, NULL, sig, slen, msg, mlen);
  default:
    return 0;
  }
}

/* ---- claims ------------------------------------------------------------------------------ */

/* 0 absent, 1 a number (in *v), -1 present but not a number */
static int num_claim(const cJSON *p, const char *k, double *v) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(p, k);
  if (!j) return 0;
  if (!cJSON_IsNumber(j)) return -1;
  *v = j->valuedouble;
  return 1;
}

static int in_list(char **l, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(l[i], s)) return 1;
  return 0;
}

int jw_check_claims(const cJSON *p, const jw_claims_cfg *c, long long now, char *why, size_t cap, int *status) {
  double v = 0, tnow = (double)now, skew = (double)c->skew_s;
  int r;
  *status = 401;
  if ((r = num_claim(p, "exp", &v)) < 0) return errf(why, cap, "the exp claim is not a number"), -1;
  if (r == 0 && c->require_exp) return errf(why, cap, "the token has no exp claim"), -1;
  if (r == 1 && tnow - skew >= v) return errf(why, cap, "the token has expired"), -1;
  if ((r = num_claim(p, "nbf", &v)) < 0) return errf(why, cap, "the nbf claim is not a number"), -1;
  if (r == 1 && tnow + skew < v) return errf(why, cap, "the token is not valid yet (nbf)"), -1;
  if ((r = num_claim(p, "iat", &v)) < 0) return errf(why, cap, "the iat claim is not a number"), -1;
  if (r == 1 && v > tnow + skew) return errf(why, cap, "the token was issued in the future (iat)"), -1;
  if (c->max_age_s > 0) {
    if (r == 0) return errf(why, cap, "the token has no iat claim (max_age_s needs it)"), -1;
    if (tnow - v > (double)c->max_age_s + skew) return errf(why, cap, "the token is older than max_age_s (iat)"), -1;
  }
  if (c->nissuers) {
    const char *iss = str_member(p, "iss");
    if (!iss) return errf(why, cap, "the token has no iss claim"), -1;
    if (!in_list(c->issuers, c->nissuers, iss)) return errf(why, cap, "the token's issuer is not accepted"), -1;
  }
  if (c->naudiences) {
    const cJSON *aud = cJSON_GetObjectItemCaseSensitive(p, "aud");
    int ok = 0;
    if (!aud) return errf(why, cap, "the token has no aud claim"), -1;
    if (cJSON_IsString(aud)) {
      ok = in_list(c->audiences, c->naudiences, aud->valuestring);
    } else if (cJSON_IsArray(aud)) {
      const cJSON *a;
      cJSON_ArrayForEach(a, aud) if (cJSON_IsString(a) && in_list(c->audiences, c->naudiences, a->valuestring)) ok = 1;
    } else {
      return errf(why, cap, "the aud claim is neither a string nor an array"), -1;
    }
    if (!ok) return errf(why, cap, "the token's audience is not accepted"), -1;
  }
  for (size_t i = 0; i < c->nscopes; i++)
    if (!jw_has_scope(p, c->scopes[i])) {
      *status = 403;
      return errf(why, cap, "the token lacks the required scope '%.100s'", c->scopes[i]), -1;
    }
  return 0;
}

/* Calls fn(ud, scope, len) for each scope of the token; stops early when fn returns non-zero
 * (and returns that). */
static int each_scope(const cJSON *p, int (*fn)(void *, const char *, size_t), void *ud) {
  const cJSON *srcs[2] = {cJSON_GetObjectItemCaseSensitive(p, "scope"), cJSON_GetObjectItemCaseSensitive(p, "scp")};
  for (int s = 0; s < 2; s++) {
    const cJSON *v = srcs[s];
    if (!v) continue;
    const cJSON *one = v;
    if (cJSON_IsArray(v)) one = v->child;
    for (; one; one = cJSON_IsArray(v) ? one->next : NULL) {
      if (cJSON_IsString(one)) {
        const char *q = one->valuestring;
        while (*q) {
          while (*q == ' ') q++;
          const char *e = q;
          while (*e && *e != ' ') e++;
          if (e > q) {
            int r = fn(ud, q, (size_t)(e - q));
            if (r) return r;
          }
          q = e;
        }
      }
      if (!cJSON_IsArray(v)) break;
    }
  }
  return 0;
}

static int eq_scope(void *ud, const char *s, size_t n) {
  const char *want = ud;
  return strlen(want) == n && !memcmp(want, s, n);
}

int jw_has_scope(const cJSON *p, const char *s) { return each_scope(p, eq_scope, (void *)s); }

typedef struct join_ctx {
  char *out;
  size_t cap, n;
} join_ctx;

static int join_scope(void *ud, const char *s, size_t n) {
  join_ctx *j = ud;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\' || s[i] == 0x7f) return 0;
  if (j->n + (j->n ? 1 : 0) + n + 1 > j->cap) return 0;
  if (j->n) j->out[j->n++] = ' ';
  memcpy(j->out + j->n, s, n);
  j->n += n;
  j->out[j->n] = 0;
  return 0;
}

size_t jw_scopes_join(const cJSON *p, char *out, size_t cap) {
  if (!cap) return 0;
  out[0] = 0;
  join_ctx j = {out, cap, 0};
  each_scope(p, join_scope, &j);
  return j.n;
}
