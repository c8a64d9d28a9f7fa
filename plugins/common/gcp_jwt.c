/* gcp_jwt.c - service-account JWT assertion, token request/answer, token cache (gcp_jwt.h). */
#include "gcp_jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

static char *sdup(const char *s)
{
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d) memcpy(d, s, n + 1);
  return d;
}

static const char *jstr(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

void gj_key_free(gj_key *k)
{
  if (!k) return;
  free(k->client_email);
  if (k->private_key) { /* do not leave key material behind in freed memory */
    volatile char *p = k->private_key;
    while (*p) *p++ = 0;
  }
  free(k->private_key);
  free(k->private_key_id);
  free(k->token_uri);
  free(k->project_id);
  memset(k, 0, sizeof *k);
}

int gj_key_parse(const char *json, size_t n, gj_key *out, pc_err *e)
{
  memset(out, 0, sizeof *out);
  cJSON *root = json ? cJSON_ParseWithLength(json, n) : NULL;
  int rc = -1;
  if (!cJSON_IsObject(root)) {
    pc_err_set(e, 400, "", "service-account key: not a JSON object");
    goto done;
  }
  const char *type = jstr(root, "type");
  if (cJSON_GetObjectItemCaseSensitive(root, "type") && (!type || strcmp(type, "service_account"))) {
    pc_err_set(e, 400, "type", "service-account key: type must be \"service_account\"");
    goto done;
  }
  const char *email = jstr(root, "client_email"), *pk = jstr(root, "private_key");
  if (!email || !*email) {
    pc_err_set(e, 400, "client_email", "service-account key: client_email is missing");
    goto done;
  }
  if (!pk || !strstr(pk, "-----BEGIN ")) {
    pc_err_set(e, 400, "private_key", "service-account key: private_key is missing or not PEM");
    goto done;
  }
  const char *kid = jstr(root, "private_key_id"), *uri = jstr(root, "token_uri"), *proj = jstr(root, "project_id");
  out->client_email = sdup(email);
  out->private_key = sdup(pk);
  out->token_uri = sdup(uri && *uri ? uri : GJ_DEFAULT_TOKEN_URI);
  if (kid && *kid) out->private_key_id = sdup(kid);
  if (proj && *proj) out->project_id = sdup(proj);
  if (!out->client_email || !out->private_key || !out->token_uri || (kid && *kid && !out->private_key_id) ||
      (proj && *proj && !out->project_id)) {
    gj_key_free(out);
    pc_err_set(e, 500, "", "service-account key: out of memory");
    goto done;
  }
  rc = 0;
done:
  if (root) { /* the tree held the private key too */
    cJSON *pkn = cJSON_GetObjectItemCaseSensitive(root, "private_key");
    if (cJSON_IsString(pkn)) memset(pkn->valuestring, 0, strlen(pkn->valuestring));
  }
  cJSON_Delete(root);
  return rc;
}

int gj_b64url(pc_buf *out, const void *p, size_t n)
{
  size_t cap = (n + 2) / 3 * 4 + 1;
  unsigned char *t = malloc(cap);
  if (!t || n > 0x3fffffff) {
    free(t);
    return -1;
  }
  int len = EVP_EncodeBlock(t, p, (int)n);
  while (len > 0 && t[len - 1] == '=') len--;
  for (int i = 0; i < len; i++) {
    if (t[i] == '+')
      t[i] = '-';
    else if (t[i] == '/')
      t[i] = '_';
  }
  int rc = pc_buf_add(out, t, (size_t)len);
  free(t);
  return rc;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return 0; /* never prompt on a terminal for an encrypted key */
}

static int b64_json(pc_buf *out, cJSON *o)
{
  char *t = o ? cJSON_PrintUnformatted(o) : NULL;
  int rc = t ? gj_b64url(out, t, strlen(t)) : -1;
  free(t);
  return rc;
}

int gj_assertion(const gj_key *k, const char *scope, long long iat, pc_buf *out, pc_err *e)
{
  int rc = -1;
  size_t n0 = out->n;
  pc_buf in = {0};
  EVP_PKEY *pkey = NULL;
  EVP_MD_CTX *md = NULL;
  unsigned char *sig = NULL;
  cJSON *hdr = cJSON_CreateObject(), *cl = cJSON_CreateObject();
  if (!k || !k->client_email || !k->private_key) {
    pc_err_set(e, 400, "", "service-account key is incomplete");
    goto done;
  }
  if (!hdr || !cl || !cJSON_AddStringToObject(hdr, "alg", "RS256") || !cJSON_AddStringToObject(hdr, "typ", "JWT") ||
      (k->private_key_id && !cJSON_AddStringToObject(hdr, "kid", k->private_key_id)) ||
      !cJSON_AddStringToObject(cl, "iss", k->client_email) ||
      !cJSON_AddStringToObject(cl, "scope", scope ? scope : GJ_SCOPE_CLOUD_PLATFORM) ||
      !cJSON_AddStringToObject(cl, "aud", k->token_uri ? k->token_uri : GJ_DEFAULT_TOKEN_URI) ||
      !cJSON_AddNumberToObject(cl, "iat", (double)iat) ||
      !cJSON_AddNumberToObject(cl, "exp", (double)(iat + GJ_LIFETIME)))
    goto nomem;
  if (b64_json(&in, hdr) || pc_buf_adds(&in, ".") || b64_json(&in, cl)) goto nomem;

  BIO *bio = BIO_new_mem_buf(k->private_key, -1);
  if (bio) {
    pkey = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
    BIO_free(bio);
  }
  if (!pkey || EVP_PKEY_base_id(pkey) != EVP_PKEY_RSA) {
    pc_err_set(e, 400, "private_key", "service-account key: private_key is not a readable RSA key");
    goto done;
  }
  size_t slen = 0;
  md = EVP_MD_CTX_new();
  if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
      EVP_DigestSign(md, NULL, &slen, (const unsigned char *)in.p, in.n) != 1 || !(sig = malloc(slen)) ||
      EVP_DigestSign(md, sig, &slen, (const unsigned char *)in.p, in.n) != 1) {
    pc_err_set(e, 500, "", "service-account key: signing failed");
    goto done;
  }
  if (pc_buf_add(out, in.p, in.n) || pc_buf_adds(out, ".") || gj_b64url(out, sig, slen)) goto nomem;
  rc = 0;
  goto done;
nomem:
  pc_err_set(e, 500, "", "out of memory building the JWT assertion");
done:
  if (rc && out->p) {
    out->n = n0;
    out->p[n0] = 0;
  }
  free(sig);
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(pkey);
  pc_buf_free(&in);
  cJSON_Delete(hdr);
  cJSON_Delete(cl);
  return rc;
}

int gj_token_body(const char *assertion, pc_buf *out)
{
  static const char hex[] = "0123456789ABCDEF";
  if (pc_buf_adds(out, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")) return -1;
  for (const unsigned char *p = (const unsigned char *)assertion; *p; p++) {
    int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                *p == '_' || *p == '.' || *p == '~';
    char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
    if (plain ? pc_buf_add(out, p, 1) : pc_buf_add(out, enc, 3)) return -1;
  }
  return 0;
}

void gj_token_free(gj_token *t)
{
  if (!t) return;
  free(t->access_token);
  t->access_token = NULL;
  t->expires_at = 0;
}

int gj_token_parse(const char *body, size_t n, long long now, gj_token *out, pc_err *e)
{
  memset(out, 0, sizeof *out);
  cJSON *root = body ? cJSON_ParseWithLength(body, n) : NULL;
  int rc = -1;
  const char *tok = jstr(root, "access_token"), *err = jstr(root, "error");
  if (!cJSON_IsObject(root)) {
    pc_err_set(e, 502, "", "token endpoint answer is not JSON");
  } else if (err || !tok || !*tok) {
    const char *d = jstr(root, "error_description");
    pc_err_set(e, 401, "", "token endpoint: %s%s%s", err ? err : "no access_token", d ? ": " : "", d ? d : "");
  } else {
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
    double secs = cJSON_IsNumber(ex) ? ex->valuedouble : cJSON_IsString(ex) ? atof(ex->valuestring) : GJ_LIFETIME;
    if (!(secs >= 0 && secs < 1e9)) secs = 0;
    out->access_token = sdup(tok);
    out->expires_at = now + (long long)secs;
    if (out->access_token)
      rc = 0;
    else
      pc_err_set(e, 500, "", "out of memory");
  }
  cJSON_Delete(root);
  return rc;
}

gj_action gj_cache_check(gj_cache *c, long long now)
{
  long long left = c->token ? c->expires_at - now : -1;
  int usable = c->token && left >= GJ_USABLE_MIN;
  int inflight = c->refreshing && now - c->refresh_started < GJ_STALE_REFRESH;
  if (usable && left >= GJ_REFRESH_BEFORE) return GJ_USE;
  if (inflight) return usable ? GJ_USE : GJ_WAIT;
  c->refreshing = 1;
  c->refresh_started = now;
  return usable ? GJ_USE_REFRESH : GJ_REFRESH;
}

void gj_cache_store(gj_cache *c, gj_token *t)
{
  free(c->token);
  c->token = t->access_token;
  c->expires_at = t->expires_at;
  t->access_token = NULL;
  c->refreshing = 0;
}

void gj_cache_failed(gj_cache *c) { c->refreshing = 0; }

void gj_cache_free(gj_cache *c)
{
  free(c->token);
  memset(c, 0, sizeof *c);
}
