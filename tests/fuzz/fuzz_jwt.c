/* fuzz_jwt.c - the jwt plugin's parsers on untrusted bytes (plugins/jwt/jwt_core.c compiled in):
 * a token from the client (jw_token_parse, then a verify against fixed keys of every type, whose
 * answer must be "invalid": the fuzzer cannot forge signatures), and a JWK Set from the JWKS URL
 * (jw_jwks_parse). Invariants: no crash, no leak; base64url decoding is the exact inverse of a
 * strict encoder for what it accepts; a parsed token's signing input is a prefix of the input.
 * Input: [mode byte] bytes... */
#include "../../plugins/jwt/jwt_core.c"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static jw_key g_keys[4];
static int g_init;

static void init_keys(void) {
  char err[200];
  cJSON *j = cJSON_Parse("{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}");
  CHECK(jw_key_from_jwk(j, &g_keys[0], err, sizeof err) == 0);
  cJSON_Delete(j);
  EVP_PKEY *k[3] = {EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
                    EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")};
  for (int i = 0; i < 3; i++) {
    CHECK(k[i]);
    g_keys[1 + i].pkey = k[i];
    g_keys[1 + i].alg = i == 0 ? JW_RS256 : i == 1 ? JW_ES256 : JW_EDDSA;
  }
  g_init = 1;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_init) init_keys();
  if (size < 1) return 0;
  const char *p = (const char *)data + 1;
  size_t n = size - 1;
  switch (data[0] % 3) {
  case 0: { /* token */
    jw_token t;
    const char *why = NULL;
    if (jw_token_parse(p, n, 8192, &t, &why) == 0) {
      CHECK(t.signing_input == p && t.signing_len < n && p[t.signing_len] == '.');
      CHECK(t.alg == JW_HS256 || t.alg == JW_RS256 || t.alg == JW_ES256 || t.alg == JW_EDDSA);
      for (int i = 0; i < 4; i++)
        CHECK(!jw_verify(&g_keys[i], t.alg, (const unsigned char *)t.signing_input, t.signing_len, t.sig, t.siglen));
      jw_token_free(&t);
    } else {
      CHECK(why && *why);
    }
    break;
  }
  case 1: { /* JWK Set */
    size_t skipped = 0;
    char err[200] = "";
    jw_keyset *ks = jw_jwks_parse(p, n, &skipped, err, sizeof err);
    CHECK(ks || err[0]);
    jw_keyset_free(ks);
    break;
  }
  default: { /* base64url: what is accepted re-encodes to the same text */
    unsigned char *out = malloc(jw_b64url_max(n) + 1);
    size_t ol = 0;
    if (out && jw_b64url_decode(p, n, out, &ol) == 0) {
      char *re = malloc(ol / 3 * 4 + 5), *q = re;
      size_t i = 0;
      for (; i + 2 < ol; i += 3) {
        *q++ = B64[out[i] >> 2];
        *q++ = B64[((out[i] & 3) << 4) | (out[i + 1] >> 4)];
        *q++ = B64[((out[i + 1] & 15) << 2) | (out[i + 2] >> 6)];
        *q++ = B64[out[i + 2] & 63];
      }
      if (ol - i == 1) *q++ = B64[out[i] >> 2], *q++ = B64[(out[i] & 3) << 4];
      else if (ol - i == 2)
        *q++ = B64[out[i] >> 2], *q++ = B64[((out[i] & 3) << 4) | (out[i + 1] >> 4)], *q++ = B64[(out[i + 1] & 15) << 2];
      CHECK((size_t)(q - re) == n && !memcmp(re, p, n));
      free(re);
    }
    free(out);
    break;
  }
  }
  return 0;
}
