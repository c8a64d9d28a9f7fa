/* test_jwt.c - the jwt plugin's pure part (plugins/jwt/jwt_core.c, compiled into this test):
 * strict base64url, alg names, ES256 R||S <-> DER, JWK and PEM keys (RSA, EC P-256, Ed25519,
 * oct), token parsing (alg none, crit, shape), signatures (including RS/HS confusion and tampering)
 * and the claim checks. Keys are generated here with OpenSSL; tokens are built here. */
#include "t.h"

#include "../../plugins/jwt/jwt_core.c"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <time.h>

/* ---- helpers ----------------------------------------------------------------------------- */

static char *b64url(const void *p, size_t n) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const unsigned char *s = p;
  char *o = malloc(n / 3 * 4 + 5), *q = o;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    *q++ = A[s[i] >> 2];
    *q++ = A[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
    *q++ = A[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
    *q++ = A[s[i + 2] & 63];
  }
  if (n - i == 1) {
    *q++ = A[s[i] >> 2];
    *q++ = A[(s[i] & 3) << 4];
  } else if (n - i == 2) {
    *q++ = A[s[i] >> 2];
    *q++ = A[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
    *q++ = A[(s[i + 1] & 15) << 2];
  }
  *q = 0;
  return o;
}

static char *b64s(const char *s) { return b64url(s, strlen(s)); }

static int dec(const char *in, unsigned char *out, size_t *n) { return jw_b64url_decode(in, strlen(in), out, n); }

/* DER ECDSA signature -> R||S (64 bytes) */
static void der_to_raw(const unsigned char *der, size_t n, unsigned char raw[64]) {
  const unsigned char *p = der;
  ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)n);
  BN_bn2binpad(ECDSA_SIG_get0_r(s), raw, 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(s), raw + 32, 32);
  ECDSA_SIG_free(s);
}

static size_t sign(EVP_PKEY *k, const EVP_MD *md, const void *msg, size_t n, unsigned char *sig, size_t cap) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  size_t sl = cap;
  if (EVP_DigestSignInit(c, NULL, md, NULL, k) != 1 || EVP_DigestSign(c, sig, &sl, msg, n) != 1) sl = 0;
  EVP_MD_CTX_free(c);
  return sl;
}

/* A token "<b64 header>.<b64 payload>.<b64 sig>" signed by fn. */
typedef size_t (*signer)(void *ud, const char *in, size_t n, unsigned char *sig);

static char *make_token(const char *header, const char *payload, signer fn, void *ud) {
  char *h = b64s(header), *p = b64s(payload);
  size_t n = strlen(h) + strlen(p) + 1;
  char *in = malloc(n + 1);
  snprintf(in, n + 1, "%s.%s", h, p);
  unsigned char sig[600];
  size_t sl = fn(ud, in, n, sig);
  char *s = b64url(sig, sl);
  char *tok = malloc(n + strlen(s) + 2);
  sprintf(tok, "%s.%s", in, s);
  free(h), free(p), free(in), free(s);
  return tok;
}

static size_t sign_rs(void *ud, const char *in, size_t n, unsigned char *sig) { return sign(ud, EVP_sha256(), in, n, sig, 600); }
static size_t sign_ed(void *ud, const char *in, size_t n, unsigned char *sig) { return sign(ud, NULL, in, n, sig, 600); }
static size_t sign_es(void *ud, const char *in, size_t n, unsigned char *sig) {
  unsigned char der[80];
  size_t dl = sign(ud, EVP_sha256(), in, n, der, sizeof der);
  der_to_raw(der, dl, sig);
  return 64;
}
typedef struct secret {
  const void *p;
  size_t n;
} secret;
static size_t sign_hs(void *ud, const char *in, size_t n, unsigned char *sig) {
  secret *s = ud;
  unsigned int ml = 0;
  HMAC(EVP_sha256(), s->p, (int)s->n, (const unsigned char *)in, n, sig, &ml);
  return ml;
}

/* The public JWK of a generated key. */
static cJSON *jwk_of(EVP_PKEY *k, const char *kid) {
  cJSON *j = cJSON_CreateObject();
  if (kid) cJSON_AddStringToObject(j, "kid", kid);
  if (EVP_PKEY_is_a(k, "RSA")) {
    BIGNUM *n = NULL, *e = NULL;
    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e);
    unsigned char nb[1024], eb[16];
    int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
    char *ns = b64url(nb, (size_t)nl), *es = b64url(eb, (size_t)el);
    cJSON_AddStringToObject(j, "kty", "RSA");
    cJSON_AddStringToObject(j, "n", ns);
    cJSON_AddStringToObject(j, "e", es);
    free(ns), free(es);
    BN_free(n), BN_free(e);
  } else if (EVP_PKEY_is_a(k, "EC")) {
    unsigned char pub[65];
    size_t pl = 0;
    EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &pl);
    if (pl != 65) { /* compressed by default in some builds: ask for uncompressed */
      EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed");
      EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &pl);
    }
    char *x = b64url(pub + 1, 32), *y = b64url(pub + 33, 32);
    cJSON_AddStringToObject(j, "kty", "EC");
    cJSON_AddStringToObject(j, "crv", "P-256");
    cJSON_AddStringToObject(j, "x", x);
    cJSON_AddStringToObject(j, "y", y);
    free(x), free(y);
  } else {
    unsigned char pub[32];
    size_t pl = sizeof pub;
    EVP_PKEY_get_raw_public_key(k, pub, &pl);
    char *x = b64url(pub, pl);
    cJSON_AddStringToObject(j, "kty", "OKP");
    cJSON_AddStringToObject(j, "crv", "Ed25519");
    cJSON_AddStringToObject(j, "x", x);
    free(x);
  }
  return j;
}

static char *pem_of(EVP_PKEY *k) {
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(b, k);
  char *p = NULL;
  long n = BIO_get_mem_data(b, &p);
  char *o = malloc((size_t)n + 1);
  memcpy(o, p, (size_t)n);
  o[n] = 0;
  BIO_free(b);
  return o;
}

static EVP_PKEY *RSA2048, *EC256, *ED;

/* parse + verify a token against one key: 1 / 0, or -1 when it does not even parse */
static int check(const char *tok, const jw_key *k) {
  jw_token t;
  const char *why;
  if (jw_token_parse(tok, strlen(tok), 8192, &t, &why) < 0) return -1;
  int ok = jw_key_fits(k, &t) && jw_verify(k, t.alg, (const unsigned char *)t.signing_input, t.signing_len, t.sig, t.siglen);
  jw_token_free(&t);
  return ok;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_b64url(void) {
  unsigned char o[64];
  size_t n = 99;
  T_EQ_INT(dec("", o, &n), 0);
  T_EQ_INT(n, 0);
  T_EQ_INT(dec("Zg", o, &n), 0);
  T_EQ_MEM(o, n, "f");
  T_EQ_INT(dec("Zm8", o, &n), 0);
  T_EQ_MEM(o, n, "fo");
  T_EQ_INT(dec("Zm9v", o, &n), 0);
  T_EQ_MEM(o, n, "foo");
  T_EQ_INT(dec("-_8", o, &n), 0);
  T_EQ_INT(n, 2);
  T_CHECK(o[0] == 0xfb && o[1] == 0xff);
  /* refused: padding, the standard alphabet, whitespace, a 4k+1 length, non-zero unused bits */
  T_EQ_INT(dec("Zg==", o, &n), -1);
  T_EQ_INT(dec("Zm9v=", o, &n), -1);
  T_EQ_INT(dec("+/8A", o, &n), -1);
  T_EQ_INT(dec("Zm 9", o, &n), -1);
  T_EQ_INT(dec("Zm9vY", o, &n), -1);
  T_EQ_INT(dec("Zh", o, &n), -1);  /* 'h' leaves 0001 in the unused bits */
  T_EQ_INT(dec("Zm9", o, &n), -1); /* '9' leaves 01 */
  /* round trip over every length 0..40 */
  unsigned char src[40], back[64];
  for (size_t i = 0; i < sizeof src; i++) src[i] = (unsigned char)(i * 37 + 11);
  for (size_t len = 0; len <= sizeof src; len++) {
    char *e = b64url(src, len);
    size_t bl = 0;
    T_EQ_INT(jw_b64url_decode(e, strlen(e), back, &bl), 0);
    T_CHECK(bl == len && !memcmp(back, src, len));
    free(e);
  }
}

static void test_alg_names(void) {
  T_EQ_INT(jw_alg_parse("HS256", 5), JW_HS256);
  T_EQ_INT(jw_alg_parse("RS256", 5), JW_RS256);
  T_EQ_INT(jw_alg_parse("ES256", 5), JW_ES256);
  T_EQ_INT(jw_alg_parse("EdDSA", 5), JW_EDDSA);
  T_EQ_INT(jw_alg_parse("none", 4), 0);
  T_EQ_INT(jw_alg_parse("rs256", 5), 0);
  T_EQ_INT(jw_alg_parse("RS384", 5), 0);
  T_EQ_INT(jw_alg_parse("RS2", 3), 0);
  T_EQ_STR(jw_alg_name(JW_EDDSA), "EdDSA");
}

static void test_es256_der(void) {
  /* OpenSSL's DER signatures -> R||S -> our DER: the same bytes (30 of them covers R or S with the
   * top bit set, which DER pads with a zero byte) */
  for (int i = 0; i < 30; i++) {
    unsigned char der[80], raw[64], der2[80];
    char msg[32];
    snprintf(msg, sizeof msg, "message %d", i);
    size_t dl = sign(EC256, EVP_sha256(), msg, strlen(msg), der, sizeof der), dl2 = 0;
    T_CHECK(dl > 0);
    der_to_raw(der, dl, raw);
    T_EQ_INT(jw_es256_raw_to_der(raw, 64, der2, sizeof der2, &dl2), 0);
    T_CHECK(dl2 == dl && !memcmp(der, der2, dl));
  }
  unsigned char raw[65] = {1}, der[80];
  size_t dl;
  T_EQ_INT(jw_es256_raw_to_der(raw, 63, der, sizeof der, &dl), -1);
  T_EQ_INT(jw_es256_raw_to_der(raw, 65, der, sizeof der, &dl), -1);
  T_EQ_INT(jw_es256_raw_to_der(raw, 64, der, 10, &dl), -1); /* no room */
}

static void test_jwk_keys(void) {
  char err[200];
  jw_key k;
  cJSON *j = jwk_of(RSA2048, "r1");
  T_EQ_INT(jw_key_from_jwk(j, &k, err, sizeof err), 0);
  T_EQ_INT(k.alg, JW_RS256);
  T_EQ_STR(k.kid, "r1");
  jw_key_free(&k);
  cJSON_AddStringToObject(j, "alg", "HS256"); /* an RSA key claiming HS256: refused */
  T_EQ_INT(jw_key_from_jwk(j, &k, err, sizeof err), -1);
  T_CHECK(strstr(err, "does not fit") != NULL);
  cJSON_Delete(j);

  j = jwk_of(EC256, "e1");
  cJSON_AddStringToObject(j, "alg", "ES256");
  cJSON_AddStringToObject(j, "use", "sig");
  T_EQ_INT(jw_key_from_jwk(j, &k, err, sizeof err), 0);
  T_EQ_INT(k.alg, JW_ES256);
  jw_key_free(&k);
  /* a point off the curve: y + 1 */
  const char *ys = cJSON_GetObjectItem(j, "y")->valuestring;
  unsigned char y[40];
  size_t yl;
  jw_b64url_decode(ys, strlen(ys), y, &yl);
  y[31] ^= 1;
  char *y2 = b64url(y, 32);
  cJSON_ReplaceItemInObject(j, "y", cJSON_CreateString(y2));
  free(y2);
  T_EQ_INT(jw_key_from_jwk(j, &k, err, sizeof err), -1);
  cJSON_ReplaceItemInObject(j, "y", cJSON_CreateString("AAAA"));
  T_EQ_INT(jw_key_from_jwk(j, &k, err, sizeof err), -1);
  T_CHECK(strstr(err, "32 bytes") != NULL);
  cJSON_Delete(j);

  j = jwk_of(ED, NULL);
  T_EQ_INT(jw_key_from_jwk(j, &k, err, sizeof err), 0);
  T_EQ_INT(k.alg, JW_EDDSA);
  T_CHECK(k.kid == NULL);
  jw_key_free(&k);
  cJSON_ReplaceItemInObject(j, "crv", cJSON_CreateString("Ed448"));
  T_EQ_INT(jw_key_from_jwk(j, &k, err, sizeof err), -1);
  cJSON_Delete(j);

  /* oct */
  j = cJSON_Parse("{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\",\"kid\":\"h\"}");
  T_EQ_INT(jw_key_from_jwk(j, &k, err, sizeof err), 0);
  T_EQ_INT(k.alg, JW_HS256);
  T_EQ_INT(k.secret_len, 32);
  jw_key_free(&k);
  cJSON_Delete(j);
  j = cJSON_Parse("{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}");
  T_EQ_INT(jw_key_from_jwk(j, &k, err, sizeof err), -1); /* 5 bytes */
  cJSON_Delete(j);
  /* the rest of what is refused */
  const char *badj[] = {"{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}", /* 17-bit modulus */
                        "{\"kty\":\"RSA\",\"e\":\"AQAB\"}",
                        "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}",
                        "{\"kty\":\"XYZ\"}",
                        "{\"n\":\"AQAB\"}",
                        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\",\"use\":\"enc\"}",
                        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"}",
                        "{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\",\"kid\":7}",
                        "[1]"};
  for (size_t i = 0; i < sizeof badj / sizeof *badj; i++) {
    j = cJSON_Parse(badj[i]);
    if (jw_key_from_jwk(j, &k, err, sizeof err) != -1) {
      T_CHECK(!"a bad JWK was accepted");
      fprintf(stderr, "    %s\n", badj[i]);
      jw_key_free(&k);
    }
    cJSON_Delete(j);
  }
  /* a small RSA key */
  EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
  j = jwk_of(small, NULL);
  T_EQ_INT(jw_key_from_jwk(j, &k, err, sizeof err), -1);
  T_CHECK(strstr(err, "2048") != NULL);
  cJSON_Delete(j);
  EVP_PKEY_free(small);
}

static void test_pem_and_secret(void) {
  char err[200], *p = pem_of(RSA2048);
  jw_key k;
  T_EQ_INT(jw_key_from_pem(p, strlen(p), NULL, "kp", &k, err, sizeof err), 0);
  T_EQ_INT(k.alg, JW_RS256);
  jw_key_free(&k);
  T_EQ_INT(jw_key_from_pem(p, strlen(p), "ES256", NULL, &k, err, sizeof err), -1);
  T_EQ_INT(jw_key_from_pem(p, strlen(p), "HS256", NULL, &k, err, sizeof err), -1);
  free(p);
  p = pem_of(EC256);
  T_EQ_INT(jw_key_from_pem(p, strlen(p), "ES256", NULL, &k, err, sizeof err), 0);
  T_EQ_INT(k.alg, JW_ES256);
  jw_key_free(&k);
  free(p);
  p = pem_of(ED);
  T_EQ_INT(jw_key_from_pem(p, strlen(p), NULL, NULL, &k, err, sizeof err), 0);
  T_EQ_INT(k.alg, JW_EDDSA);
  jw_key_free(&k);
  free(p);
  const char *junk = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
  T_EQ_INT(jw_key_from_pem(junk, strlen(junk), NULL, NULL, &k, err, sizeof err), -1);
  T_CHECK(strstr(err, "PEM") != NULL);
  T_EQ_INT(jw_key_from_secret("short", 5, NULL, &k, err, sizeof err), -1);
  T_EQ_INT(jw_key_from_secret("0123456789abcdef0123456789abcdef", 32, "h", &k, err, sizeof err), 0);
  jw_key_free(&k);
}

static void test_signatures(void) {
  char err[200];
  jw_key rk, ek, dk, hk;
  cJSON *j;
  j = jwk_of(RSA2048, "r"), jw_key_from_jwk(j, &rk, err, sizeof err), cJSON_Delete(j);
  j = jwk_of(EC256, "e"), jw_key_from_jwk(j, &ek, err, sizeof err), cJSON_Delete(j);
  j = jwk_of(ED, "d"), jw_key_from_jwk(j, &dk, err, sizeof err), cJSON_Delete(j);
  secret s = {"0123456789abcdef0123456789abcdef", 32};
  jw_key_from_secret(s.p, s.n, "h", &hk, err, sizeof err);
  const char *pl = "{\"sub\":\"alice\"}";

  char *t = make_token("{\"alg\":\"RS256\",\"kid\":\"r\"}", pl, sign_rs, RSA2048);
  T_EQ_INT(check(t, &rk), 1);
  T_EQ_INT(check(t, &ek), 0);
  /* tampered: one signature character, then the payload */
  char *sig = strrchr(t, '.') + 1;
  sig[5] = sig[5] == 'A' ? 'B' : 'A';
  T_EQ_INT(check(t, &rk), 0);
  free(t);
  t = make_token("{\"alg\":\"ES256\",\"kid\":\"e\"}", pl, sign_es, EC256);
  T_EQ_INT(check(t, &ek), 1);
  /* another payload under this signature */
  char *t2 = make_token("{\"alg\":\"ES256\",\"kid\":\"e\"}", "{\"sub\":\"admin\"}", sign_es, EC256), spliced[1200];
  snprintf(spliced, sizeof spliced, "%.*s%s", (int)(strrchr(t2, '.') - t2), t2, strrchr(t, '.'));
  T_EQ_INT(check(t2, &ek), 1);
  T_EQ_INT(check(spliced, &ek), 0);
  free(t2);
  free(t);
  t = make_token("{\"alg\":\"EdDSA\",\"kid\":\"d\"}", pl, sign_ed, ED);
  T_EQ_INT(check(t, &dk), 1);
  T_EQ_INT(check(t, &rk), 0);
  free(t);
  t = make_token("{\"alg\":\"HS256\",\"kid\":\"h\"}", pl, sign_hs, &s);
  T_EQ_INT(check(t, &hk), 1);
  free(t);
  /* kid mismatch: a key with another kid does not fit */
  t = make_token("{\"alg\":\"HS256\",\"kid\":\"other\"}", pl, sign_hs, &s);
  T_EQ_INT(check(t, &hk), 0);
  free(t);
  /* RS/HS confusion: HMAC keyed with the RSA key's public PEM, labelled with its kid */
  char *pem = pem_of(RSA2048);
  secret ps = {pem, strlen(pem)};
  t = make_token("{\"alg\":\"HS256\",\"kid\":\"r\"}", pl, sign_hs, &ps);
  T_EQ_INT(check(t, &rk), 0);
  jw_token tk;
  const char *why;
  T_EQ_INT(jw_token_parse(t, strlen(t), 8192, &tk, &why), 0);
  T_EQ_INT(jw_verify(&rk, JW_HS256, (const unsigned char *)tk.signing_input, tk.signing_len, tk.sig, tk.siglen), 0);
  jw_token_free(&tk);
  free(t);
  free(pem);
  /* ES256 with a DER signature (what a naive signer sends) is refused: not 64 bytes */
  {
    char *h = b64s("{\"alg\":\"ES256\"}"), *p = b64s(pl), in[200];
    snprintf(in, sizeof in, "%s.%s", h, p);
    unsigned char der[80];
    size_t dl = sign(EC256, EVP_sha256(), in, strlen(in), der, sizeof der);
    char *ds = b64url(der, dl), tok[400];
    snprintf(tok, sizeof tok, "%s.%s", in, ds);
    T_EQ_INT(check(tok, &ek), 0);
    free(h), free(p), free(ds);
  }
  jw_key_free(&rk), jw_key_free(&ek), jw_key_free(&dk), jw_key_free(&hk);
}

static void test_token_parse(void) {
  jw_token t;
  const char *why = NULL;
  char buf[600];
  char *h, *p = b64s("{\"sub\":\"a\"}");
#define PARSE(hdr, pay, sig)                                                    \
  (h = b64s(hdr), snprintf(buf, sizeof buf, "%s.%s.%s", h, pay, sig), free(h), \
   jw_token_parse(buf, strlen(buf), 8192, &t, &why))
  T_EQ_INT(PARSE("{\"alg\":\"none\"}", p, "AAAA"), -1);
  T_CHECK(why && strstr(why, "none"));
  T_EQ_INT(PARSE("{\"alg\":\"NONE\"}", p, "AAAA"), -1);
  T_CHECK(why && strstr(why, "none"));
  T_EQ_INT(PARSE("{\"alg\":\"PS256\"}", p, "AAAA"), -1);
  T_CHECK(why && strstr(why, "unsupported"));
  T_EQ_INT(PARSE("{\"typ\":\"JWT\"}", p, "AAAA"), -1);
  T_EQ_INT(PARSE("{\"alg\":\"RS256\",\"crit\":[\"b64\"]}", p, "AAAA"), -1);
  T_CHECK(why && strstr(why, "crit"));
  T_EQ_INT(PARSE("{\"alg\":\"RS256\",\"kid\":1}", p, "AAAA"), -1);
  T_EQ_INT(PARSE("[\"alg\"]", p, "AAAA"), -1);
  T_EQ_INT(PARSE("{\"alg\":\"RS256\"}", "e30=", "AAAA"), -1); /* padding */
  T_EQ_INT(PARSE("{\"alg\":\"RS256\"}", "WzFd", "AAAA"), -1); /* [1]: not an object */
  T_EQ_INT(PARSE("{\"alg\":\"none\"}", p, ""), -1);           /* unsecured JWS: alg none named */
  T_CHECK(why && strstr(why, "none"));
  T_EQ_INT(PARSE("{\"alg\":\"RS256\"}", p, ""), 0); /* an empty signature parses, and never verifies */
  T_EQ_INT(t.siglen, 0);
  jw_token_free(&t);
  T_EQ_INT(PARSE("{\"alg\":\"RS256\"}", p, "AA.AA"), -1);     /* four parts */
  T_EQ_INT(PARSE("{\"alg\":\"RS256\",\"kid\":\"k\"}", p, "AAAA"), 0);
  T_EQ_STR(t.kid, "k");
  T_EQ_INT(t.alg, JW_RS256);
  T_EQ_INT(t.siglen, 3);
  jw_token_free(&t);
  T_EQ_INT(jw_token_parse("abc", 3, 8192, &t, &why), -1);
  T_EQ_INT(jw_token_parse(buf, strlen(buf), 10, &t, &why), -1);
  T_CHECK(why && strstr(why, "too large"));
  free(p);
#undef PARSE
}

static cJSON *claims(const char *fmt, long long a, long long b) {
  char s[512];
  snprintf(s, sizeof s, fmt, a, b);
  return cJSON_Parse(s);
}

/* 0 when the claims pass, else the status (401 / 403) */
static int check_claims(const jw_claims_cfg *c, long long now, char *why, size_t cap, const char *fmt, long long a, long long b) {
  cJSON *p = claims(fmt, a, b);
  int st = 0;
  if (!p) return -1;
  if (jw_check_claims(p, c, now, why, cap, &st) == 0) st = 0;
  cJSON_Delete(p);
  return st;
}

static void test_claims(void) {
  char *iss[] = {"https://a", "https://b"}, *aud[] = {"aigw"}, *scopes[] = {"llm"};
  jw_claims_cfg c = {iss, 2, aud, 1, 1, 60, 0, NULL, 0};
  long long now = 1700000000;
  char why[200];
  cJSON *p;
#define CL(fmt, a, b) check_claims(&c, now, why, sizeof why, fmt, a, b)
  T_EQ_INT(CL("{\"iss\":\"https://b\",\"aud\":\"aigw\",\"exp\":%lld,\"x\":%lld}", now + 10, 0), 0);
  T_EQ_INT(CL("{\"iss\":\"https://b\",\"aud\":\"aigw\",\"exp\":%lld,\"x\":%lld}", now - 59, 0), 0); /* within the skew */
  T_EQ_INT(CL("{\"iss\":\"https://b\",\"aud\":\"aigw\",\"exp\":%lld,\"x\":%lld}", now - 61, 0), 401);
  T_CHECK(strstr(why, "expired") != NULL);
  T_EQ_INT(CL("{\"iss\":\"https://b\",\"aud\":\"aigw\",\"x\":%lld,\"y\":%lld}", 0, 0), 401);
  T_CHECK(strstr(why, "no exp") != NULL);
  T_EQ_INT(CL("{\"iss\":\"https://b\",\"aud\":\"aigw\",\"exp\":\"%lld\",\"x\":%lld}", now + 10, 0), 401);
  T_EQ_INT(CL("{\"iss\":\"https://b\",\"aud\":\"aigw\",\"exp\":%lld,\"nbf\":%lld}", now + 1000, now + 120), 401);
  T_CHECK(strstr(why, "not valid yet") != NULL);
  T_EQ_INT(CL("{\"iss\":\"https://b\",\"aud\":\"aigw\",\"exp\":%lld,\"nbf\":%lld}", now + 1000, now + 30), 0);
  T_EQ_INT(CL("{\"iss\":\"https://b\",\"aud\":\"aigw\",\"exp\":%lld,\"iat\":%lld}", now + 1000, now + 600), 401);
  T_EQ_INT(CL("{\"iss\":\"https://c\",\"aud\":\"aigw\",\"exp\":%lld,\"x\":%lld}", now + 10, 0), 401);
  T_CHECK(strstr(why, "issuer") != NULL && !strstr(why, "https://c"));
  T_EQ_INT(CL("{\"aud\":\"aigw\",\"exp\":%lld,\"x\":%lld}", now + 10, 0), 401);
  T_EQ_INT(CL("{\"iss\":\"https://a\",\"aud\":[\"x\",\"aigw\"],\"exp\":%lld,\"x\":%lld}", now + 10, 0), 0);
  T_EQ_INT(CL("{\"iss\":\"https://a\",\"aud\":[\"x\",\"y\"],\"exp\":%lld,\"x\":%lld}", now + 10, 0), 401);
  T_CHECK(strstr(why, "audience") != NULL);
  T_EQ_INT(CL("{\"iss\":\"https://a\",\"aud\":\"aigw2\",\"exp\":%lld,\"x\":%lld}", now + 10, 0), 401);
  T_EQ_INT(CL("{\"iss\":\"https://a\",\"exp\":%lld,\"x\":%lld}", now + 10, 0), 401);
  /* exp optional */
  c.require_exp = 0;
  T_EQ_INT(CL("{\"iss\":\"https://a\",\"aud\":\"aigw\",\"x\":%lld,\"y\":%lld}", 0, 0), 0);
  /* max age */
  c.max_age_s = 300;
  T_EQ_INT(CL("{\"iss\":\"https://a\",\"aud\":\"aigw\",\"iat\":%lld,\"y\":%lld}", now - 100, 0), 0);
  T_EQ_INT(CL("{\"iss\":\"https://a\",\"aud\":\"aigw\",\"iat\":%lld,\"y\":%lld}", now - 1000, 0), 401);
  T_EQ_INT(CL("{\"iss\":\"https://a\",\"aud\":\"aigw\",\"x\":%lld,\"y\":%lld}", 0, 0), 401);
  c.max_age_s = 0;
  /* scopes: 403 naming the configured scope */
  c.scopes = scopes;
  c.nscopes = 1;
  T_EQ_INT(CL("{\"iss\":\"https://a\",\"aud\":\"aigw\",\"scope\":\"read llm write\",\"x\":%lld,\"y\":%lld}", 0, 0), 0);
  T_EQ_INT(CL("{\"iss\":\"https://a\",\"aud\":\"aigw\",\"scp\":[\"read\",\"llm\"],\"x\":%lld,\"y\":%lld}", 0, 0), 0);
  T_EQ_INT(CL("{\"iss\":\"https://a\",\"aud\":\"aigw\",\"scope\":\"llmx read\",\"x\":%lld,\"y\":%lld}", 0, 0), 403);
  T_CHECK(strstr(why, "'llm'") != NULL);
#undef CL
  p = cJSON_Parse("{\"scope\":\"  a b\\u0001c  d \",\"scp\":[\"e\",1,\"f g\"]}");
  char out[64];
  T_EQ_INT(jw_scopes_join(p, out, sizeof out), strlen("a d e f g"));
  T_EQ_STR(out, "a d e f g");
  T_CHECK(jw_has_scope(p, "g") && jw_has_scope(p, "a") && jw_has_scope(p, "d") && !jw_has_scope(p, "b") && !jw_has_scope(p, "f g"));
  T_EQ_INT(jw_scopes_join(p, out, 4), 3); /* what fits */
  T_EQ_STR(out, "a d");
  cJSON_Delete(p);
}

static void test_jwks(void) {
  cJSON *set = cJSON_CreateObject(), *keys = cJSON_AddArrayToObject(set, "keys");
  cJSON_AddItemToArray(keys, jwk_of(RSA2048, "r"));
  cJSON_AddItemToArray(keys, jwk_of(EC256, "e"));
  cJSON_AddItemToArray(keys, cJSON_Parse("{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}"));
  cJSON_AddItemToArray(keys, cJSON_Parse("{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"}"));
  cJSON_AddItemToArray(keys, jwk_of(ED, NULL));
  char *txt = cJSON_PrintUnformatted(set);
  size_t skipped = 0;
  char err[200];
  jw_keyset *ks = jw_jwks_parse(txt, strlen(txt), &skipped, err, sizeof err);
  T_CHECK(ks != NULL);
  if (ks) {
    T_EQ_INT(ks->n, 3);
    T_EQ_INT(skipped, 2);
    T_EQ_INT(ks->refs, 1);
    T_EQ_STR(ks->keys[0].kid, "r");
    T_EQ_INT(ks->keys[2].alg, JW_EDDSA);
  }
  jw_keyset_free(ks);
  T_CHECK(jw_jwks_parse("{\"keys\":{}}", 11, &skipped, err, sizeof err) == NULL);
  T_CHECK(jw_jwks_parse("<html>", 6, &skipped, err, sizeof err) == NULL);
  ks = jw_jwks_parse("{\"keys\":[]}", 11, &skipped, err, sizeof err);
  T_CHECK(ks && ks->n == 0);
  jw_keyset_free(ks);
  free(txt);
  cJSON_Delete(set);
}

int main(void) {
  RSA2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  EC256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  ED = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  if (!RSA2048 || !EC256 || !ED) {
    fprintf(stderr, "key generation failed\n");
    return 1;
  }
  T_RUN(test_b64url);
  T_RUN(test_alg_names);
  T_RUN(test_es256_der);
  T_RUN(test_jwk_keys);
  T_RUN(test_pem_and_secret);
  T_RUN(test_signatures);
  T_RUN(test_token_parse);
  T_RUN(test_claims);
  T_RUN(test_jwks);
  EVP_PKEY_free(RSA2048);
  EVP_PKEY_free(EC256);
  EVP_PKEY_free(ED);
  return T_END();
}
