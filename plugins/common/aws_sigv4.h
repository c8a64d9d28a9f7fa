/* aws_sigv4.h - AWS Signature Version 4 request signing (header form) and credential lookup.
 *
 * Pure functions over OpenSSL (HMAC-SHA256, SHA-256): no globals, no I/O, thread-safe. The time is
 * an argument, so signatures are reproducible (tests use AWS's published SigV4 test suite).
 *
 * The canonical URI follows AWS's rules for every service except S3: the path is normalized (empty
 * and "." segments dropped, ".." pops a segment, a trailing slash kept) and then percent-encoded
 * once more, byte by byte, keeping only A-Z a-z 0-9 - . _ ~ and '/'. The path given is the one sent
 * on the wire (already percent-encoded), so a Bedrock model id "a.b-v1:0" sent as
 * "/model/a.b-v1%3A0/converse" is signed as "/model/a.b-v1%253A0/converse" — exactly what AWS
 * computes on its side. Query parameters are percent-decoded, re-encoded with the same set and
 * sorted by key, then value. Header names are lowercased, values trimmed with inner whitespace
 * runs (including folded lines) collapsed to one space; repeated names are joined with ','.
 */
#ifndef AIGW_AWS_SIGV4_H
#define AIGW_AWS_SIGV4_H

#include <stddef.h>
#include <time.h>

#include "pcommon.h"

/* A header: name and value, NUL-terminated, borrowed. */
typedef struct aws_header {
  const char *name;
  const char *value;
} aws_header;

/* What to sign. Every pointer is borrowed for the duration of aws_sigv4_sign only. */
typedef struct aws_sigv4_req {
  const char *method;         /* "POST" */
  const char *host;           /* signed as "host"; NULL when headers[] carries Host itself */
  const char *path;           /* wire path, percent-encoded as sent; NULL or "" = "/" */
  const char *query;          /* wire query without '?', or NULL */
  const aws_header *headers;  /* other headers to sign (any case), may be NULL when nheaders = 0.
                               * Must not contain Authorization, X-Amz-Date,
                               * X-Amz-Security-Token or X-Amz-Content-Sha256: the signer adds
                               * those (aws_sigv4_sign fails otherwise). */
  size_t nheaders;
  const void *body;           /* request body, may be NULL when body_len = 0 */
  size_t body_len;
} aws_sigv4_req;

/* Who signs, where and when. Strings borrowed for the call. */
typedef struct aws_sigv4_params {
  const char *access_key;     /* required */
  const char *secret_key;     /* required */
  const char *session_token;  /* NULL or "" for long-term keys */
  const char *region;         /* "us-east-1" */
  const char *service;        /* signing name, "bedrock" for bedrock-runtime */
  time_t now;                 /* seconds since the epoch (UTC) */
  int sign_content_sha256;    /* 1: add and sign x-amz-content-sha256 (the payload hash) */
  int token_unsigned;         /* 1: add x-amz-security-token after signing, outside the signed
                               * headers (a few services want that; Bedrock does not) */
  int no_normalize;           /* 1: sign the path as given, without dot/slash normalization
                               * (S3-style); it is still percent-encoded once */
} aws_sigv4_params;

/* The result. OWNERSHIP: the caller owns the struct; the three char* members are malloc'ed by
 * aws_sigv4_sign and freed by aws_sigv4_result_free (safe on a zeroed or freed struct).
 * headers[0..nheaders) point into this struct (names are static strings): add them to the
 * request as they are, in any order, besides the headers that were signed. */
typedef struct aws_sigv4_result {
  char amz_date[17];          /* "20150830T123600Z" */
  char payload_sha256[65];    /* hex SHA-256 of the body */
  char signature[65];         /* hex */
  char *canonical_request;    /* the exact canonical request signed (for debugging and tests) */
  char *string_to_sign;
  char *authorization;        /* "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..." */
  aws_header headers[4];      /* X-Amz-Date, [X-Amz-Security-Token], [x-amz-content-sha256], Authorization */
  size_t nheaders;
} aws_sigv4_result;

/* Signs. Returns 0 and fills *out, or -1 with a message in err (NUL-terminated, errlen > 0) and
 * *out left zeroed: missing argument, a header the signer owns, a header with CR/LF other than a
 * folded continuation, out of memory. */
int aws_sigv4_sign(const aws_sigv4_req *req, const aws_sigv4_params *p, aws_sigv4_result *out,
                   char *err, size_t errlen);
void aws_sigv4_result_free(aws_sigv4_result *r);

/* Percent-encodes s[0..n) with AWS's unreserved set (A-Z a-z 0-9 - . _ ~), and '/' too when
 * keep_slash, uppercase hex. Appends to *dst. Returns 0 or -1 (out of memory). Also for URL path
 * segments such as Bedrock model ids. */
int aws_uri_encode(pc_buf *dst, const char *s, size_t n, int keep_slash);

/* ---- credentials ---- */

/* A getenv-like lookup: returns the value of name or NULL; the string must stay valid until
 * aws_creds_resolve returns. aws_getenv_process is one backed by the process environment. */
typedef const char *(*aws_getenv_fn)(void *ud, const char *name);
const char *aws_getenv_process(void *ud, const char *name);

/* Resolved credentials. OWNERSHIP: all strings malloc'ed, freed by aws_creds_free (safe on a zeroed
 * struct); session_token is NULL when there is none. */
typedef struct aws_creds {
  char *access_key;
  char *secret_key;
  char *session_token;
  char *region;
} aws_creds;

/* Resolves credentials: explicit config strings first (cfg_* may be NULL; "" counts as unset);
 * when neither cfg_access_key nor cfg_secret_key is set, the environment through env:
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. A session token is taken only from
 * the same source as the keys (config token with config keys, env token with env keys).
 * Region: cfg_region, else AWS_REGION, else AWS_DEFAULT_REGION. env may be NULL (config only).
 * Returns 0, or -1 with a message in err: only one of the two config keys set, no keys found, no
 * region, out of memory (*out is then zeroed). */
int aws_creds_resolve(aws_creds *out, const char *cfg_access_key, const char *cfg_secret_key,
                      const char *cfg_session_token, const char *cfg_region, aws_getenv_fn env,
                      void *env_ud, char *err, size_t errlen);
void aws_creds_free(aws_creds *c);

#endif
