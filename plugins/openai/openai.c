/* openai.c - provider adapter for OpenAI and any OpenAI-compatible server (vLLM, Ollama, LM Studio,
 * llama.cpp, Together, Groq, ...).
 *
 * The upstream speaks the same wire format as an OpenAI client, so this adapter never translates:
 * it points the request at base_url, adds credentials, applies the route's model, and reads token
 * usage out of responses and stream chunks. The only body edit is on streamed chat requests, where
 * it asks for stream_options.include_usage so that every stream is metered; the extra usage chunk
 * is removed again when the client had not asked for it itself.
 *
 * Presets ("preset": "groq", ...) give the base URL of the common OpenAI-compatible services, so
 * each is one line of config; "base_url" still overrides. "preset": "azure" speaks Azure OpenAI
 * (deployment URLs, api-version, api-key header or an Entra bearer token), "azure_foundry" the
 * Azure AI Foundry model inference endpoint.
 *
 * Anthropic's /v1/messages/count_tokens (a passthrough route) is answered through OpenAI's
 * POST /responses/input_tokens (Anthropic request -> hub -> xlate_count.h) when the base URL is
 * OpenAI's own or "count_tokens": "responses" is set; other servers answer a 400 in Anthropic's
 * shape (they have no counting API).
 *
 * The instance is built once in create and never written afterwards (shared by all workers). The
 * API key lives only in the instance and in the upstream Authorization header; it is never logged. */
#include <aigw/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingress.h" /* plugins/common: Anthropic-format clients through the hub format */
#include "xlate_count.h" /* plugins/common: hub -> Responses input_tokens request */

/* The host table, set once by the entry (main thread) before anything else runs. */
static const aigw_host *H;

enum { OA_PLAIN = 0, OA_AZURE = 1, OA_FOUNDRY = 2 };

/* OpenAI-compatible services: one line of config each. */
static const struct oa_preset {
  const char *name, *base_url;
} presets[] = {
    {"openai", "https://api.openai.com/v1"},
    {"mistral", "https://api.mistral.ai/v1"},
    {"groq", "https://api.groq.com/openai/v1"},
    {"deepseek", "https://api.deepseek.com/v1"},
    {"together", "https://api.together.xyz/v1"},
    {"fireworks", "https://api.fireworks.ai/inference/v1"},
    {"openrouter", "https://openrouter.ai/api/v1"},
    {"xai", "https://api.x.ai/v1"},
    {"perplexity", "https://api.perplexity.ai"},
    {"cerebras", "https://api.cerebras.ai/v1"},
    {"sambanova", "https://api.sambanova.ai/v1"},
    {"nvidia", "https://integrate.api.nvidia.com/v1"},
    {"huggingface", "https://router.huggingface.co/v1"},
    {"ollama", "http://127.0.0.1:11434/v1"},
    {"vllm", "http://127.0.0.1:8000/v1"},
    {"lmstudio", "http://127.0.0.1:1234/v1"},
    {"llamacpp", "http://127.0.0.1:8080/v1"},
    {"azure", NULL},         /* base_url: https://<resource>.openai.azure.com */
    {"azure_foundry", NULL}, /* base_url: https://<resource>.services.ai.azure.com/models */
};

typedef struct oa_inst {
  char *base_url; /* normalized: no trailing '/' */
  size_t base_len;
  int kind;        /* OA_PLAIN, OA_AZURE, OA_FOUNDRY */
  char *api_version; /* azure: "?api-version=<v>" */
  char *auth; /* "Bearer <api_key>" (or the bare key for api-key auth), NULL when api_key is empty */
  int auth_api_key; /* send the key as "api-key: <key>" (Azure) instead of Authorization */
  aigw_str *hdrs; /* name, value pairs: OpenAI-Organization, OpenAI-Project, config "headers" */
  size_t nhdrs;
  int stream_usage; /* inject stream_options.include_usage into streamed chat requests */
  int count_responses; /* Anthropic count_tokens via POST {base_url}/responses/input_tokens */
  int start_count;     /* Anthropic-format streams: count the prompt in parallel for message_start */
} oa_inst;

/* Per-request state (h->req_alloc, freed by the host): only streamed chat requests have one. */
typedef struct oa_rctx {
  int client_usage; /* the client asked for the usage chunk itself */
  int translate;    /* the client speaks another format (Anthropic messages): via the hub */
  int count;        /* Anthropic count_tokens answered through /responses/input_tokens */
  int st_init;
  ing_stream st;    /* translated streams */
  /* message_start's input_tokens from a parallel /responses/input_tokens call: upstream events
   * are held (raw data, [u32 len][bytes]...) until it is back, then replayed from its callback */
  aigw_call *cnt;
  int cnt_pending;
  int holding;
  pc_buf held;
} oa_rctx;

/* ---- helpers ------------------------------------------------------------------------------ */

static char *dup_str(aigw_str s) {
  char *p = H->alloc(s.n + 1);
  if (p) {
    memcpy(p, s.p, s.n);
    p[s.n] = '\0';
  }
  return p;
}


static int str_ieq(aigw_str s, const char *lit) {
  size_t n = strlen(lit);
  if (s.n != n) return 0;
  for (size_t i = 0; i < n; i++) {
    char a = s.p[i], b = lit[i];
    if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = (char)(b - 'A' + 'a');
    if (a != b) return 0;
  }
  return 1;
}

/* RFC 7230 token characters, for header names. */
static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}


/* Writes a JSON pointer "/headers/<name>" with RFC 6901 escaping (~ -> ~0, / -> ~1). */
static void header_ptr(char *out, size_t cap, aigw_str name) {
  size_t o = 0;
  const char *pre = "/headers/";
  for (const char *p = pre; *p && o + 1 < cap; p++) out[o++] = *p;
  for (size_t i = 0; i < name.n && o + 3 < cap; i++) {
    if (name.p[i] == '~' || name.p[i] == '/') {
      out[o++] = '~';
      out[o++] = name.p[i] == '~' ? '0' : '1';
    } else {
      out[o++] = name.p[i];
    }
  }
  out[o] = '\0';
}


/* The base URL is OpenAI's own API (https://api.openai.com/...), which has /responses/input_tokens. */
static int is_openai_host(aigw_str base) {
  static const char h[] = "https://api.openai.com";
  size_t n = sizeof h - 1;
  if (base.n < n || (base.n > n && base.p[n] != '/' && base.p[n] != ':')) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = base.p[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != h[i]) return 0;
  }
  return 1;
}

static void oa_destroy(void *vi) {
  oa_inst *in = vi;
  if (!in) return;
  for (size_t i = 0; i < in->nhdrs * 2; i++) H->free((void *)in->hdrs[i].p);
  H->free(in->hdrs);
  H->free(in->base_url);
  H->free(in->api_version);
  H->free(in->auth);
  H->free(in);
}

/* ---- create: validate the whole config, report every problem ------------------------------- */

static void *oa_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d) {
  (void)h;
  int bad = 0;
  aigw_str base = {0}, key = {0}, org = {0}, proj = {0};
  const aigw_json *hdrs = NULL, *v;

  if (!cfg || H->json_type(cfg) != AIGW_JSON_OBJECT) {
    H->diag_error(d, "", "provider openai needs a config object with at least \"base_url\"");
    return NULL;
  }
  for (size_t i = 0; i < H->json_len(cfg); i++) {
    aigw_str k;
    if (H->json_key_at(cfg, i, &k) != AIGW_OK) continue;
    if (!pc_str_eq(k, "base_url") && !pc_str_eq(k, "api_key") && !pc_str_eq(k, "organization") &&
        !pc_str_eq(k, "project") && !pc_str_eq(k, "headers") && !pc_str_eq(k, "stream_usage") &&
        !pc_str_eq(k, "preset") && !pc_str_eq(k, "api_version") && !pc_str_eq(k, "auth") && !pc_str_eq(k, "count_tokens") &&
        !pc_str_eq(k, "message_start_usage")) {
      char ptr[128];
      snprintf(ptr, sizeof ptr, "/%.*s", (int)(k.n > 100 ? 100 : k.n), k.p);
      H->diag_error(d, ptr, "unknown option (known: preset, base_url, api_key, organization, project, "
                            "headers, stream_usage, api_version, auth, count_tokens, message_start_usage)");
      bad = 1;
    }
  }

  int kind = OA_PLAIN;
  const struct oa_preset *pre = NULL;
  v = H->json_get(cfg, "preset");
  if (v) {
    aigw_str pn = {0};
    if (H->json_str(v, &pn) == AIGW_OK)
      for (size_t i = 0; i < sizeof presets / sizeof *presets; i++)
        if (pc_str_eq(pn, presets[i].name)) pre = &presets[i];
    if (!pre) {
      char known[512];
      size_t o = 0;
      for (size_t i = 0; i < sizeof presets / sizeof *presets && o + 20 < sizeof known; i++)
        o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", i ? ", " : "", presets[i].name);
      H->diag_error(d, "/preset", "unknown preset (known: %s)", known);
      bad = 1;
    } else if (pc_str_eq(pn, "azure")) {
      kind = OA_AZURE;
    } else if (pc_str_eq(pn, "azure_foundry")) {
      kind = OA_FOUNDRY;
    }
  }
  aigw_str apiver = {0};
  v = H->json_get(cfg, "api_version");
  if (v && (H->json_str(v, &apiver) != AIGW_OK || apiver.n == 0 || apiver.n > 64 || pc_has_ctl(apiver) ||
            memchr(apiver.p, '&', apiver.n) || memchr(apiver.p, ' ', apiver.n) || memchr(apiver.p, '#', apiver.n))) {
    H->diag_error(d, "/api_version", "must be an API version string such as \"2024-10-21\"");
    bad = 1;
  } else if (v && kind == OA_PLAIN) {
    H->diag_error(d, "/api_version", "only applies to the azure and azure_foundry presets");
    bad = 1;
  } else if (!v && kind != OA_PLAIN) {
    H->diag_error(d, "/api_version", "is required for Azure (e.g. \"2024-10-21\")");
    bad = 1;
  }
  int auth_api_key = kind != OA_PLAIN;
  v = H->json_get(cfg, "auth");
  if (v) {
    aigw_str am = {0};
    H->json_str(v, &am);
    if (pc_str_eq(am, "api-key")) auth_api_key = 1;
    else if (pc_str_eq(am, "bearer")) auth_api_key = 0;
    else {
      H->diag_error(d, "/auth", "must be \"bearer\" (Authorization: Bearer <api_key>) or \"api-key\" (api-key: <api_key>)");
      bad = 1;
    }
  }

  v = H->json_get(cfg, "base_url");
  if (!v && pre && pre->base_url) {
    base = (aigw_str){pre->base_url, strlen(pre->base_url)};
  } else if (!v) {
    H->diag_error(d, "/base_url", kind == OA_AZURE ? "is required for Azure: \"https://<resource>.openai.azure.com\""
                                  : kind == OA_FOUNDRY ? "is required for Azure AI Foundry: \"https://<resource>.services.ai.azure.com/models\""
                                  : "is required (e.g. \"https://api.openai.com/v1\"), or set a \"preset\"");
    bad = 1;
  } else if (H->json_str(v, &base) != AIGW_OK) {
    H->diag_error(d, "/base_url", "must be a string");
    bad = 1;
  } else {
    size_t skip = 0;
    if (base.n >= 8 && memcmp(base.p, "https://", 8) == 0) skip = 8;
    else if (base.n >= 7 && memcmp(base.p, "http://", 7) == 0) skip = 7;
    while (base.n > skip && base.p[base.n - 1] == '/') base.n--; /* normalize trailing slashes */
    if (!skip) {
      H->diag_error(d, "/base_url", "must start with http:// or https://, got \"%.*s\"",
                    (int)(base.n > 200 ? 200 : base.n), base.p);
      bad = 1;
    } else if (base.n == skip || base.p[skip] == '/') {
      H->diag_error(d, "/base_url", "has no host name");
      bad = 1;
    } else {
      for (size_t i = 0; i < base.n; i++) {
        unsigned char c = (unsigned char)base.p[i];
        if (c <= 0x20 || c == 0x7f || c == '?' || c == '#') {
          H->diag_error(d, "/base_url", "must not contain spaces, control characters, a query "
                                        "or a fragment");
          bad = 1;
          break;
        }
      }
    }
  }

  v = H->json_get(cfg, "api_key");
  if (v && H->json_str(v, &key) != AIGW_OK) {
    H->diag_error(d, "/api_key", "must be a string (\"\" for servers without authentication)");
    bad = 1;
  } else if (pc_has_ctl(key)) {
    H->diag_error(d, "/api_key", "contains control characters"); /* never echo the key */
    bad = 1;
  }
  v = H->json_get(cfg, "organization");
  if (v && (H->json_str(v, &org) != AIGW_OK || pc_has_ctl(org))) {
    H->diag_error(d, "/organization", "must be a string without control characters");
    bad = 1;
  }
  v = H->json_get(cfg, "project");
  if (v && (H->json_str(v, &proj) != AIGW_OK || pc_has_ctl(proj))) {
    H->diag_error(d, "/project", "must be a string without control characters");
    bad = 1;
  }
  int stream_usage = 1;
  v = H->json_get(cfg, "stream_usage");
  if (v && H->json_bool(v, &stream_usage) != AIGW_OK) {
    H->diag_error(d, "/stream_usage", "must be true or false");
    bad = 1;
  }

  /* count_tokens: how Anthropic's /v1/messages/count_tokens is answered. "responses": through
   * OpenAI's POST /responses/input_tokens (the default when the base URL is OpenAI's own);
   * "none": a 400 (the default for every other OpenAI-compatible server, which has no such API). */
  /* message_start_usage: "count" (the prompt counted in parallel through /responses/input_tokens,
   * the default when counting is available) or "estimate" (text bytes / 4; no extra call) */
  int start_count = -1;
  v = H->json_get(cfg, "message_start_usage");
  if (v) {
    aigw_str sm = {0};
    H->json_str(v, &sm);
    if (pc_str_eq(sm, "count")) start_count = 1;
    else if (pc_str_eq(sm, "estimate")) start_count = 0;
    else {
      H->diag_error(d, "/message_start_usage", "must be \"count\" or \"estimate\"");
      bad = 1;
    }
  }
  int count_mode = -1;
  v = H->json_get(cfg, "count_tokens");
  if (v) {
    aigw_str cm = {0};
    H->json_str(v, &cm);
    if (pc_str_eq(cm, "responses")) count_mode = 1;
    else if (pc_str_eq(cm, "none")) count_mode = 0;
    else {
      H->diag_error(d, "/count_tokens", "must be \"responses\" (POST {base_url}/responses/input_tokens) or \"none\"");
      bad = 1;
    }
    if (count_mode == 1 && kind != OA_PLAIN) {
      H->diag_error(d, "/count_tokens", "\"responses\" is not available for the Azure presets");
      bad = 1;
    }
  }

  hdrs = H->json_get(cfg, "headers");
  if (hdrs && H->json_type(hdrs) != AIGW_JSON_OBJECT) {
    H->diag_error(d, "/headers", "must be an object of header name -> string value");
    bad = 1;
    hdrs = NULL;
  }
  for (size_t i = 0; hdrs && i < H->json_len(hdrs); i++) {
    aigw_str name = {0}, val;
    char ptr[160];
    const aigw_json *hv = pc_member_at(H, hdrs, i, &name);
    header_ptr(ptr, sizeof ptr, name);
    int tok = name.n > 0 && name.n < 256;
    for (size_t j = 0; j < name.n; j++) tok = tok && is_tchar((unsigned char)name.p[j]);
    if (!tok) {
      H->diag_error(d, ptr, "is not a valid header name");
      bad = 1;
    } else if (str_ieq(name, "host") || str_ieq(name, "content-length") ||
               str_ieq(name, "transfer-encoding") || str_ieq(name, "connection") ||
               str_ieq(name, "te") || str_ieq(name, "upgrade") || str_ieq(name, "keep-alive")) {
      H->diag_error(d, ptr, "is managed by the gateway and cannot be set");
      bad = 1;
    } else if (str_ieq(name, "authorization") && key.n > 0) {
      H->diag_error(d, ptr, "conflicts with \"api_key\": set one of them");
      bad = 1;
    }
    if (!hv || H->json_str(hv, &val) != AIGW_OK || pc_has_ctl(val)) {
      H->diag_error(d, ptr, "must be a string without control characters");
      bad = 1;
    }
  }
  if (bad) return NULL;

  oa_inst *in = H->alloc(sizeof *in);
  if (!in) goto nomem;
  memset(in, 0, sizeof *in);
  in->stream_usage = stream_usage;
  in->kind = kind;
  in->count_responses = count_mode >= 0 ? count_mode : kind == OA_PLAIN && is_openai_host(base);
  in->start_count = start_count >= 0 ? start_count : in->count_responses;
  if (in->start_count && !in->count_responses) {
    H->diag_error(d, "/message_start_usage", "\"count\" needs the counting API: set \"count_tokens\": \"responses\"");
    H->free(in);
    return NULL;
  }
  in->auth_api_key = auth_api_key;
  in->base_url = dup_str(base);
  in->base_len = base.n;
  if (!in->base_url) goto nomem;
  if (apiver.n) {
    in->api_version = H->alloc(apiver.n + 14);
    if (!in->api_version) goto nomem;
    snprintf(in->api_version, apiver.n + 14, "?api-version=%.*s", (int)apiver.n, apiver.p);
  }
  if (key.n && auth_api_key) {
    in->auth = dup_str(key);
    if (!in->auth) goto nomem;
  } else if (key.n) {
    in->auth = H->alloc(key.n + 8);
    if (!in->auth) goto nomem;
    memcpy(in->auth, "Bearer ", 7);
    memcpy(in->auth + 7, key.p, key.n);
    in->auth[7 + key.n] = '\0';
  }
  size_t cap = 2 + (hdrs ? H->json_len(hdrs) : 0);
  in->hdrs = H->alloc(cap * 2 * sizeof *in->hdrs);
  if (!in->hdrs) goto nomem;
  memset(in->hdrs, 0, cap * 2 * sizeof *in->hdrs);
  /* Config headers first, then the named ones, so organization/project win over a duplicate. */
  for (size_t i = 0; hdrs && i < H->json_len(hdrs); i++) {
    aigw_str name, val;
    const aigw_json *hv = pc_member_at(H, hdrs, i, &name);
    if (!hv || H->json_str(hv, &val) != AIGW_OK) continue;
    aigw_str *pair = &in->hdrs[in->nhdrs * 2];
    in->nhdrs++;
    pair[0] = (aigw_str){dup_str(name), name.n};
    pair[1] = (aigw_str){dup_str(val), val.n};
    if (!pair[0].p || !pair[1].p) goto nomem;
  }
  const aigw_str named[2][2] = {{AIGW_STR("OpenAI-Organization"), org},
                                {AIGW_STR("OpenAI-Project"), proj}};
  for (size_t i = 0; i < 2; i++) {
    if (named[i][1].n == 0) continue; /* "" (e.g. an unset ${ENV:-}) means not set */
    aigw_str *pair = &in->hdrs[in->nhdrs * 2];
    in->nhdrs++;
    pair[0] = (aigw_str){dup_str(named[i][0]), named[i][0].n};
    pair[1] = (aigw_str){dup_str(named[i][1]), named[i][1].n};
    if (!pair[0].p || !pair[1].p) goto nomem;
  }
  return in;

nomem:
  H->diag_error(d, "", "out of memory");
  oa_destroy(in);
  return NULL;
}

/* ---- usage -------------------------------------------------------------------------------- */

static int64_t num_at(const aigw_json *obj, const char *key) {
  double v;
  const aigw_json *n = obj ? H->json_get(obj, key) : NULL;
  if (!n || H->json_num(n, &v) != AIGW_OK || v < 0 || v > 9e15) return -1;
  return (int64_t)v;
}

static int64_t first_of(int64_t a, int64_t b) { return a >= 0 ? a : b; }

/* Reports a usage object. Chat/embeddings name the fields prompt_/completion_tokens, the
 * Responses API input_/output_tokens; both are read. Returns 1 when something was reported. */
static int report_usage(aigw_req *r, const aigw_json *u, aigw_api api) {
  if (!u || H->json_type(u) != AIGW_JSON_OBJECT) return 0;
  aigw_usage us = {sizeof(aigw_usage), -1, -1, -1, -1, -1};
  const aigw_json *pd = H->json_get(u, "prompt_tokens_details");
  const aigw_json *cd = H->json_get(u, "completion_tokens_details");
  if (!pd) pd = H->json_get(u, "input_tokens_details");
  if (!cd) cd = H->json_get(u, "output_tokens_details");
  us.input_tokens = first_of(num_at(u, "prompt_tokens"), num_at(u, "input_tokens"));
  us.output_tokens = first_of(num_at(u, "completion_tokens"), num_at(u, "output_tokens"));
  if (api == AIGW_API_EMBEDDINGS && us.output_tokens < 0) us.output_tokens = 0;
  us.cached_tokens = num_at(pd, "cached_tokens");
  us.reasoning_tokens = num_at(cd, "reasoning_tokens");
  if (us.input_tokens < 0 && us.output_tokens < 0) return 0;
  H->set_usage(r, &us);
  return 1;
}

/* The next member name in JSON text at or after *pp: a string followed by blanks and a colon
 * (other strings are skipped whole, escapes respected, so a string's content is never read as a
 * name). Its name into *name; returns the value's first byte (after blanks), or NULL when there is
 * none (*bad when a string is unterminated). *pp moves past the name. One memchr per quote: this
 * is what the fast paths below read chunks and usage with, in one pass. */
static inline __attribute__((always_inline)) const char *next_member(const char **pp, const char *end, aigw_str *name,
                                                                    int *bad) {
  const char *p = *pp;
  while (p < end && (p = memchr(p, '"', (size_t)(end - p)))) {
    const char *s = ++p, *q = p; /* the string's first byte; find its closing quote */
    for (;;) {
      q = memchr(q, '"', (size_t)(end - q));
      if (!q) {
        *bad = 1;
        *pp = end;
        return NULL;
      }
      size_t bs = 0;
      while (q - bs > s && q[-1 - (ptrdiff_t)bs] == '\\') bs++;
      if (!(bs & 1)) break;
      q++;
    }
    p = q + 1;
    const char *v = p;
    while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')) v++;
    if (v >= end || *v != ':') continue; /* a value, not a member name */
    v++;
    while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')) v++;
    *name = (aigw_str){s, (size_t)(q - s)};
    *pp = p;
    return v;
  }
  *pp = end;
  return NULL;
}

/* A token count at v (digits, or null: -1); *bad when it is something else. */
static int64_t raw_count(const char *v, const char *end, int *bad) {
  if (end - v >= 4 && !memcmp(v, "null", 4)) return -1;
  int64_t n = 0;
  int digits = 0;
  while (v < end && *v >= '0' && *v <= '9' && digits < 16) n = n * 10 + (*v++ - '0'), digits++;
  if (!digits || (v < end && *v != ',' && *v != '}' && *v != ' ' && *v != '\n' && *v != '\r' && *v != '\t')) *bad = 1;
  return n;
}

/* usage from its JSON text (u starts at its '{'): the counts after "prompt_tokens": etc., the first
 * of each (names are unique inside usage), in one pass. Returns 1 when reported, 0 when the text
 * has another shape (the caller parses it). */
static int raw_usage(aigw_req *r, aigw_str u, aigw_api api) {
  if (u.n < 2 || u.p[0] != '{') return u.n >= 4 && !memcmp(u.p, "null", 4); /* null usage: nothing to report */
  int bad = 0;
  aigw_usage us = {sizeof(aigw_usage), -1, -1, -1, -1, -1};
  int64_t pt = -1, it = -1, ct = -1, ot = -1, cached = -1, reasoning = -1;
  const char *p = u.p, *end = u.p + u.n, *v;
  aigw_str nm;
  while ((v = next_member(&p, end, &nm, &bad))) {
#define TAKE(lit, var) \
  if (nm.n == sizeof(lit) - 1 && !memcmp(nm.p, lit, sizeof(lit) - 1)) { \
    if (var < 0) var = raw_count(v, end, &bad); \
    continue; \
  }
    TAKE("prompt_tokens", pt)
    TAKE("input_tokens", it)
    TAKE("completion_tokens", ct)
    TAKE("output_tokens", ot)
    TAKE("cached_tokens", cached)
    TAKE("reasoning_tokens", reasoning)
#undef TAKE
  }
  us.input_tokens = first_of(pt, it);
  us.output_tokens = first_of(ct, ot);
  us.cached_tokens = cached;
  us.reasoning_tokens = reasoning;
  if (bad) return 0;
  if (api == AIGW_API_EMBEDDINGS && us.output_tokens < 0) us.output_tokens = 0;
  if (us.input_tokens < 0 && us.output_tokens < 0) return 1;
  H->set_usage(r, &us);
  return 1;
}

/* ---- prepare ------------------------------------------------------------------------------ */

/* The request path (query ignored) is Anthropic's count_tokens (POST /v1/messages/count_tokens). */
static int is_count_tokens(aigw_str p) {
  const char *q = memchr(p.p, '?', p.n);
  size_t n = q ? (size_t)(q - p.p) : p.n;
  static const char suf[] = "/messages/count_tokens";
  return n >= sizeof suf - 1 && !memcmp(p.p + n - (sizeof suf - 1), suf, sizeof suf - 1);
}

/* Anthropic's count_tokens in front of an OpenAI-compatible upstream: chat completions have no
 * token-counting endpoint, and a local estimate is not a count, so the client gets a clear 400 in
 * Anthropic's shape naming the provider (the route's api is passthrough, so respond_error would
 * answer in OpenAI's shape). */
static aigw_status oa_refuse_count_tokens(aigw_req *r) {
  aigw_str pn = {0};
  if (H->meta_get(r, "aigw.provider", &pn) != AIGW_OK || !pn.n) pn = AIGW_STR("openai");
  char msg[400];
  snprintf(msg, sizeof msg,
           "count_tokens is not available for provider %.*s (OpenAI-compatible: its chat completions API has no "
           "token-counting endpoint); route /v1/messages/count_tokens to anthropic or gemini, or set \"count_tokens\": "
           "\"responses\" when the server has OpenAI's /responses/input_tokens",
           (int)(pn.n > 100 ? 100 : pn.n), pn.p);
  cJSON *e = xl_error_to_anth(400, msg);
  char *txt = e ? cJSON_PrintUnformatted(e) : NULL;
  cJSON_Delete(e);
  if (!txt) return AIGW_ERROR;
  H->respond(r, 400, AIGW_STR("application/json"), (aigw_str){txt, strlen(txt)});
  free(txt);
  return AIGW_STOP;
}

/* An error in Anthropic's shape with this status (count_tokens clients: the route's api is
 * passthrough, so respond_error would answer in OpenAI's shape). Takes the tree. */
static aigw_status oa_anth_respond(aigw_req *r, int status, cJSON *e) {
  char *txt = e ? cJSON_PrintUnformatted(e) : NULL;
  cJSON_Delete(e);
  if (!txt) return AIGW_ERROR;
  H->respond(r, status, AIGW_STR("application/json"), (aigw_str){txt, strlen(txt)});
  free(txt);
  return AIGW_STOP;
}

static aigw_status oa_anth_error(aigw_req *r, int status, const char *msg) {
  if (status < 400 || status > 599) status = 400;
  return oa_anth_respond(r, status, xl_error_to_anth(status, msg));
}

/* The auth header's value for this request: the request's own key when a plugin set one for this
 * provider (bring your own key), else the configured one; {NULL, 0} for none. */
static aigw_str oa_auth(const oa_inst *in, aigw_req *r) {
  aigw_str own = pc_credential(H, r);
  if (!own.n) return in->auth ? (aigw_str){in->auth, strlen(in->auth)} : (aigw_str){NULL, 0};
  if (in->auth_api_key) return own;
  char *v = H->req_alloc(r, own.n + 7);
  if (!v) return (aigw_str){NULL, 0};
  memcpy(v, "Bearer ", 7);
  memcpy(v + 7, own.p, own.n);
  return (aigw_str){v, own.n + 7};
}

static void oa_set_auth(const oa_inst *in, aigw_req *r) {
  aigw_str v = oa_auth(in, r);
  if (v.n)
    H->set_header(r, AIGW_UPSTREAM_REQUEST, in->auth_api_key ? AIGW_STR("api-key") : AIGW_STR("Authorization"), v);
}

/* Anthropic count_tokens through OpenAI's input-token counting API: Anthropic request -> hub ->
 * a Responses input_tokens request (xlate_count.h) -> POST {base_url}/responses/input_tokens with
 * our credentials; the answer becomes {"input_tokens": N} in oa_count_response. */
static aigw_status oa_prepare_count(oa_inst *in, aigw_req *r, void **rctx) {
  aigw_str raw = {0}, tm = {0};
  H->body_raw(r, AIGW_UPSTREAM_REQUEST, &raw);
  cJSON *req = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  if (!cJSON_IsObject(req)) {
    cJSON_Delete(req);
    return oa_anth_error(r, 400, "the request body must be a JSON object (an Anthropic count_tokens request)");
  }
  pc_err e = {0};
  cJSON *hub = xl_anth_req_to_hub(req, &e);
  cJSON_Delete(req);
  char model[256] = "";
  if (H->meta_get(r, "aigw.target_model", &tm) == AIGW_OK && tm.n && tm.n < sizeof model)
    snprintf(model, sizeof model, "%.*s", (int)tm.n, tm.p);
  cJSON *body = hub ? xc_hub_to_input_tokens(hub, model, &e) : NULL;
  cJSON_Delete(hub);
  if (!body) return oa_anth_error(r, e.status ? e.status : 400, e.msg[0] ? e.msg : "the request cannot be counted by openai");
  char *txt = cJSON_PrintUnformatted(body);
  cJSON_Delete(body);
  if (!txt) return AIGW_ERROR;
  int rc = H->set_body(r, AIGW_UPSTREAM_REQUEST, (aigw_str){txt, strlen(txt)});
  free(txt);
  if (rc != AIGW_OK) return AIGW_ERROR;

  static const char suf[] = "/responses/input_tokens";
  char *url = H->req_alloc(r, in->base_len + sizeof suf);
  if (!url) return AIGW_ERROR;
  memcpy(url, in->base_url, in->base_len);
  memcpy(url + in->base_len, suf, sizeof suf);
  if (H->set_upstream_url(r, (aigw_str){url, in->base_len + sizeof suf - 1}) != AIGW_OK) return AIGW_ERROR;
  /* what an Anthropic client sent for its own API does not go to OpenAI */
  static const char *const drop[] = {"anthropic-version", "anthropic-beta"};
  for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
    H->set_header(r, AIGW_UPSTREAM_REQUEST, (aigw_str){drop[i], strlen(drop[i])}, (aigw_str){NULL, 0});
  H->set_header(r, AIGW_UPSTREAM_REQUEST, AIGW_STR("content-type"), AIGW_STR("application/json"));
  for (size_t i = 0; i < in->nhdrs; i++) H->set_header(r, AIGW_UPSTREAM_REQUEST, in->hdrs[2 * i], in->hdrs[2 * i + 1]);
  oa_set_auth(in, r);
  oa_rctx *ctx = H->req_alloc(r, sizeof *ctx);
  if (!ctx) return AIGW_ERROR;
  memset(ctx, 0, sizeof *ctx);
  ctx->count = 1;
  *rctx = ctx;
  return AIGW_CONTINUE;
}

/* input_tokens answer -> Anthropic's {"input_tokens": N}; an error -> Anthropic's shape, status
 * mapped (xl_error_openai_body_to_anth). Never reported as usage: nothing was generated. */
static aigw_status oa_count_response(aigw_req *r) {
  int st = H->status(r, AIGW_UPSTREAM_RESPONSE);
  aigw_str raw = {0};
  H->body_raw(r, AIGW_UPSTREAM_RESPONSE, &raw);
  if (st < 200 || st > 299) {
    int out = st;
    cJSON *e = xl_error_openai_body_to_anth(st, raw.p ? raw.p : "", raw.n, &out);
    return oa_anth_respond(r, out >= 400 && out <= 599 ? out : 502, e);
  }
  cJSON *j = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, "input_tokens");
  double n = cJSON_IsNumber(it) ? it->valuedouble : -1;
  cJSON_Delete(j);
  if (n < 0 || n > 9e15)
    return oa_anth_error(r, 502, "openai answered /responses/input_tokens with something that has no input_tokens count");
  char txt[64];
  int len = snprintf(txt, sizeof txt, "{\"input_tokens\":%lld}", (long long)n);
  H->set_header(r, AIGW_UPSTREAM_RESPONSE, AIGW_STR("content-type"), AIGW_STR("application/json"));
  return H->set_body(r, AIGW_UPSTREAM_RESPONSE, (aigw_str){txt, (size_t)len}) == AIGW_OK ? AIGW_CONTINUE : AIGW_ERROR;
}

/* Any other API (files, batches, audio, images, moderations, ...): the client's path under
 * base_url ("/v1/files" -> <base_url ending in /v1>/files), method, query and body untouched;
 * only the credentials are ours. Anthropic's count_tokens goes through OpenAI's input-token
 * counting API when configured (oa_prepare_count), else a 400. */
static aigw_status oa_prepare_passthrough(oa_inst *in, aigw_req *r, void **rctx) {
  aigw_str p;
  if (H->path(r, &p) == AIGW_OK && is_count_tokens(p))
    return in->count_responses ? oa_prepare_count(in, r, rctx) : oa_refuse_count_tokens(r);
  if (in->kind != OA_PLAIN) {
    H->respond_error(r, 400, "invalid_request_error", "passthrough routes are not supported for Azure presets");
    return AIGW_STOP;
  }
  if (H->path(r, &p) != AIGW_OK || !p.n || p.p[0] != '/') return AIGW_ERROR;
  if (in->base_len >= 3 && !memcmp(in->base_url + in->base_len - 3, "/v1", 3) && p.n >= 4 && !memcmp(p.p, "/v1/", 4)) {
    p.p += 3;
    p.n -= 3;
  }
  char *url = H->req_alloc(r, in->base_len + p.n + 1);
  if (!url) return AIGW_ERROR;
  memcpy(url, in->base_url, in->base_len);
  memcpy(url + in->base_len, p.p, p.n);
  url[in->base_len + p.n] = 0;
  if (H->set_upstream_url(r, (aigw_str){url, in->base_len + p.n}) != AIGW_OK) return AIGW_ERROR;
  for (size_t i = 0; i < in->nhdrs; i++) H->set_header(r, AIGW_UPSTREAM_REQUEST, in->hdrs[2 * i], in->hdrs[2 * i + 1]);
  oa_set_auth(in, r);
  return AIGW_CONTINUE;
}

/* An Anthropic-format client (route api "messages") in front of an OpenAI-compatible upstream:
 * Anthropic request -> hub (= OpenAI chat) -> stripped of what OpenAI does not take. */
static void oa_count_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud);

/* The parallel count for message_start: hub -> Responses input_tokens request. 0 started. */
static int oa_start_count(oa_inst *in, aigw_req *r, oa_rctx *ctx, const cJSON *hub) {
  pc_err e = {0};
  const cJSON *mj = cJSON_GetObjectItemCaseSensitive(hub, "model");
  cJSON *body = xc_hub_to_input_tokens(hub, cJSON_IsString(mj) ? mj->valuestring : "", &e);
  if (!body) return -1;
  char *txt = cJSON_PrintUnformatted(body);
  cJSON_Delete(body);
  if (!txt) return -1;
  static const char suf[] = "/responses/input_tokens";
  char *url = H->req_alloc(r, in->base_len + sizeof suf);
  aigw_str hv[2 * 8 + 4];
  size_t nh = 0;
  hv[nh++] = AIGW_STR("content-type");
  hv[nh++] = AIGW_STR("application/json");
  for (size_t i = 0; i < in->nhdrs && nh + 2 <= 2 * 8 + 2; i++) hv[nh++] = in->hdrs[2 * i], hv[nh++] = in->hdrs[2 * i + 1];
  aigw_str auth = oa_auth(in, r);
  if (auth.n) hv[nh++] = in->auth_api_key ? AIGW_STR("api-key") : AIGW_STR("authorization"), hv[nh++] = auth;
  aigw_call *c = NULL;
  if (url) {
    memcpy(url, in->base_url, in->base_len);
    memcpy(url + in->base_len, suf, sizeof suf);
    aigw_http_spec spec = {.struct_size = sizeof spec, .method = "POST", .url = url, .headers = hv, .nheaders = nh / 2,
                           .body = {txt, strlen(txt)}, .timeout_ms = 5000};
    c = H->http_call(r, &spec, oa_count_done, ctx);
  }
  free(txt);
  if (!c) return -1;
  ctx->cnt = c;
  ctx->cnt_pending = 1;
  ctx->holding = 1;
  return 0;
}

/* Replays the held upstream events (now that message_start knows its input tokens). */
static void oa_release(aigw_req *r, oa_rctx *ctx) {
  ctx->holding = 0;
  size_t off = 0;
  while (off + 4 <= ctx->held.n) {
    uint32_t n;
    memcpy(&n, ctx->held.p + off, 4);
    off += 4;
    if (off + n > ctx->held.n) break;
    ing_openai_data(H, r, &ctx->st, ctx->held.p + off, n);
    off += n;
  }
  pc_buf_free(&ctx->held);
}

static void oa_count_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud) {
  oa_rctx *ctx = ud;
  if (!ctx->cnt_pending) return; /* released already (the stream ended first) */
  ctx->cnt_pending = 0;
  ctx->cnt = NULL;
  if (st == AIGW_CALL_CANCELLED) return; /* the request (or this attempt) is over */
  if (st == AIGW_CALL_OK && H->call_status_code(c) >= 200 && H->call_status_code(c) < 300) {
    aigw_str b = {0};
    H->call_body(c, &b);
    cJSON *j = b.n ? cJSON_ParseWithLength(b.p, b.n) : NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, "input_tokens");
    if (cJSON_IsNumber(it) && it->valuedouble >= 0 && it->valuedouble < 9e15)
      ing_stream_prompt_tokens(&ctx->st, (long long)it->valuedouble);
    cJSON_Delete(j);
  } else {
    H->log(r, AIGW_LOG_INFO, "openai: counting the prompt for message_start failed; it carries the estimate");
  }
  if (ctx->holding) oa_release(r, ctx);
}

static aigw_status oa_prepare_translated(oa_inst *in, aigw_req *r, void **rctx) {
  pc_err e = {0};
  cJSON *hub = ing_hub_request(H, r, &e);
  if (!hub || ing_hub_strip_for_openai(H, r, hub, "openai", &e) < 0) {
    cJSON_Delete(hub);
    ing_error(H, r, e.status ? e.status : 400, NULL, e.msg[0] ? e.msg : "the request cannot be translated");
    return AIGW_STOP;
  }
  oa_rctx *ctx = H->req_alloc(r, sizeof *ctx);
  if (!ctx) {
    cJSON_Delete(hub);
    return AIGW_ERROR;
  }
  ctx->translate = 1;
  *rctx = ctx;
  if (H->is_stream(r)) {
    cJSON_DeleteItemFromObjectCaseSensitive(hub, "stream_options");
    cJSON *so = cJSON_AddObjectToObject(hub, "stream_options");
    if (!so || !cJSON_AddTrueToObject(so, "include_usage")) {
      cJSON_Delete(hub);
      return AIGW_ERROR;
    }
    ing_stream_init(H, r, &ctx->st);
    ctx->st_init = 1;
    if (in->start_count && H->api(r) == AIGW_API_MESSAGES && oa_start_count(in, r, ctx, hub) < 0)
      H->log(r, AIGW_LOG_INFO, "openai: the prompt count for message_start could not start; it carries the estimate");
  }
  char *txt = cJSON_PrintUnformatted(hub);
  cJSON_Delete(hub);
  if (!txt) return AIGW_ERROR;
  int rc = H->set_body(r, AIGW_UPSTREAM_REQUEST, (aigw_str){txt, strlen(txt)});
  free(txt);
  return rc == AIGW_OK ? AIGW_CONTINUE : AIGW_ERROR;
}

static aigw_status oa_on_response_translated(aigw_req *r) {
  int st = H->status(r, AIGW_UPSTREAM_RESPONSE);
  aigw_str raw = {0};
  H->body_raw(r, AIGW_UPSTREAM_RESPONSE, &raw);
  if (st < 200 || st > 299) {
    ing_upstream_error(H, r, "openai", st, raw);
    return AIGW_CONTINUE;
  }
  cJSON *hub = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  if (!cJSON_IsObject(hub)) {
    cJSON_Delete(hub);
    ing_error(H, r, 502, "upstream_error", "the provider answered 2xx with a body that is not a JSON object");
    return AIGW_STOP;
  }
  return ing_answer_hub(H, r, hub);
}

static aigw_status oa_on_event_translated(aigw_req *r, oa_rctx *ctx, aigw_event *ev) {
  if (ctx->holding) {
    aigw_str d = {0};
    H->event_data(ev, &d);
    if (ctx->held.n + d.n < (4u << 20)) { /* [DONE] too: on_stream_end keeps the stream open */
      uint32_t n = (uint32_t)d.n;
      if (pc_buf_add(&ctx->held, (const char *)&n, 4) == 0 && pc_buf_add(&ctx->held, d.p, d.n) == 0) return AIGW_DROP;
    }
    /* too much before the count is back: go on with the estimate */
    ctx->cnt_pending = 0;
    if (ctx->cnt) H->cancel(ctx->cnt);
    ctx->cnt = NULL;
    oa_release(r, ctx);
  }
  ing_openai_event(H, r, &ctx->st, ev);
  return AIGW_DROP;
}

static void oa_on_done(void *vi, aigw_req *r, void *rctx) {
  (void)vi;
  (void)r;
  oa_rctx *ctx = rctx;
  if (ctx && ctx->cnt_pending && ctx->cnt) {
    ctx->cnt_pending = 0; /* its CANCELLED callback touches nothing */
    H->cancel(ctx->cnt);
    ctx->cnt = NULL;
  }
  if (ctx) pc_buf_free(&ctx->held);
  if (ctx && ctx->st_init) ing_stream_free(&ctx->st);
}

/* Azure deployment names are URL path segments: letters, digits, '-', '_', '.'. */
static int deployment_ok(aigw_str m) {
  if (m.n == 0 || m.n > 128) return 0;
  for (size_t i = 0; i < m.n; i++) {
    char c = m.p[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.'))
      return 0;
  }
  return 1;
}

/* base_url + path (+ Azure's deployment segment and api-version query). 0 = set, 1 = answered
 * the client with an error, < 0 = failure. */
static int oa_set_url(oa_inst *in, aigw_req *r, const char *suffix, int has_body) {
  aigw_str dep = {0};
  if (in->kind == OA_AZURE && strcmp(suffix, "/models") != 0) {
    /* the deployment is the model name: the route's target model, else the client's "model" */
    if (H->meta_get(r, "aigw.target_model", &dep) != AIGW_OK || !dep.n) {
      const aigw_json *m = has_body ? H->body_member(r, AIGW_CLIENT_REQUEST, "model", NULL) : NULL;
      if (!m || H->json_str(m, &dep) != AIGW_OK) dep = (aigw_str){0};
    }
    if (!deployment_ok(dep)) {
      H->respond_error(r, 400, "invalid_request_error",
                       "Azure OpenAI needs a deployment name: set \"model\" (or the route target's model) "
                       "to the deployment name (letters, digits, '-', '_', '.')");
      return 1; /* answered */
    }
  }
  const char *av = in->api_version ? in->api_version : "";
  size_t sl = strlen(suffix), al = strlen(av);
  size_t cap = in->base_len + 32 + dep.n + sl + al + 1;
  char *url = H->req_alloc(r, cap);
  if (!url) return AIGW_E_NOMEM;
  int n;
  if (in->kind == OA_AZURE && dep.n)
    n = snprintf(url, cap, "%.*s/openai/deployments/%.*s%s%s", (int)in->base_len, in->base_url, (int)dep.n, dep.p, suffix, av);
  else if (in->kind == OA_AZURE)
    n = snprintf(url, cap, "%.*s/openai%s%s", (int)in->base_len, in->base_url, suffix, av);
  else
    n = snprintf(url, cap, "%.*s%s%s", (int)in->base_len, in->base_url, suffix, av);
  if (n < 0 || (size_t)n >= cap) return AIGW_E_INVAL;
  return H->set_upstream_url(r, (aigw_str){url, (size_t)n});
}

static aigw_status oa_prepare(void *vi, aigw_req *r, void **rctx) {
  oa_inst *in = vi;
  const char *suffix;
  aigw_api api = H->api(r);
  int has_body = 1;

  switch (api) {
  case AIGW_API_CHAT: suffix = "/chat/completions"; break;
  case AIGW_API_EMBEDDINGS: suffix = "/embeddings"; break;
  case AIGW_API_MODELS: suffix = "/models"; has_body = 0; break;
  case AIGW_API_RESPONSES: suffix = "/responses"; break;
  case AIGW_API_MESSAGES: suffix = "/chat/completions"; break; /* translated through the hub */
  case AIGW_API_PASSTHROUGH: return oa_prepare_passthrough(in, r, rctx);
  default:
    H->respond_error(r, 400, "invalid_request_error", "this API is not supported by provider openai");
    return AIGW_ERROR;
  }

  int urc = oa_set_url(in, r, suffix, has_body);
  if (urc == 1) return AIGW_STOP;
  if (urc != AIGW_OK) return AIGW_ERROR;

  for (size_t i = 0; i < in->nhdrs; i++)
    H->set_header(r, AIGW_UPSTREAM_REQUEST, in->hdrs[2 * i], in->hdrs[2 * i + 1]);
  oa_set_auth(in, r);

  if (api == AIGW_API_MESSAGES) return oa_prepare_translated(in, r, rctx);

  if (!has_body) {
    aigw_str raw;
    if (H->body_raw(r, AIGW_UPSTREAM_REQUEST, &raw) == AIGW_OK && raw.n > 0)
      H->set_body(r, AIGW_UPSTREAM_REQUEST, (aigw_str){"", 0});
    return AIGW_CONTINUE;
  }

  aigw_str target = {0};
  int want_model = H->meta_get(r, "aigw.target_model", &target) == AIGW_OK && target.n > 0;
  int want_usage = api == AIGW_API_CHAT && in->stream_usage && H->is_stream(r);
  if (!want_model && !want_usage) return AIGW_CONTINUE; /* forwarded byte for byte */

  aigw_json *body = H->body(r, AIGW_UPSTREAM_REQUEST);
  if (!body || H->json_type(body) != AIGW_JSON_OBJECT) {
    if (!want_model) return AIGW_CONTINUE; /* let the upstream judge a body we do not need */
    H->respond_error(r, 400, "invalid_request_error", "the request body must be a JSON object");
    return AIGW_STOP;
  }

  int changed = 0;
  if (want_model) {
    aigw_str cur;
    const aigw_json *m = H->json_get(body, "model");
    if (!m || H->json_str(m, &cur) != AIGW_OK || cur.n != target.n ||
        memcmp(cur.p, target.p, cur.n) != 0) {
      if (H->json_set_str(body, "model", target) != AIGW_OK) return AIGW_ERROR;
      changed = 1;
    }
  }
  if (want_usage) {
    oa_rctx *ctx = H->req_alloc(r, sizeof *ctx);
    if (!ctx) return AIGW_ERROR;
    const aigw_json *so = H->json_get(body, "stream_options");
    const aigw_json *iu = so ? H->json_get(so, "include_usage") : NULL;
    ctx->client_usage = iu && H->json_type(iu) == AIGW_JSON_TRUE;
    if (!ctx->client_usage) {
      aigw_json *mso = so && H->json_type(so) == AIGW_JSON_OBJECT
                           ? H->json_mut(body, "/stream_options") : NULL;
      int rc = mso ? H->json_set_bool(mso, "include_usage", 1)
                   : H->json_set_raw(body, "stream_options", AIGW_STR("{\"include_usage\":true}"));
      if (rc != AIGW_OK) return AIGW_ERROR;
      changed = 1;
    }
    *rctx = ctx;
  }
  if (changed) H->body_changed(r, AIGW_UPSTREAM_REQUEST);
  return AIGW_CONTINUE;
}

/* ---- non-stream responses: usage only, the body is never touched ---------------------------- */

static aigw_status oa_on_response(void *vi, aigw_req *r, void **rctx) {
  (void)vi;
  oa_rctx *tctx = rctx ? *rctx : NULL;
  if (tctx && tctx->count) return oa_count_response(r);
  if (tctx && tctx->translate) return oa_on_response_translated(r);
  aigw_api api = H->api(r);
  int st = H->status(r, AIGW_UPSTREAM_RESPONSE);
  if (st < 200 || st > 299 || api == AIGW_API_MODELS) return AIGW_CONTINUE;
  /* Only "usage" is needed: its numbers straight from the text when it has the usual flat shape,
   * else the member parsed on its own (body_member), never the whole answer. */
  if (AIGW_HAS(H, body_member_raw)) {
    aigw_str u = {0};
    int rc = H->body_member_raw(r, AIGW_UPSTREAM_RESPONSE, "usage", &u);
    if (rc == AIGW_E_INVAL) {
      H->respond_error(r, 502, "upstream_error", "the provider answered 2xx with a body that is not a JSON object");
      return AIGW_STOP;
    }
    if (rc == AIGW_E_NOTFOUND || (rc == AIGW_OK && raw_usage(r, u, api))) return AIGW_CONTINUE;
  }
  if (AIGW_HAS(H, body_member)) {
    int mst = 0;
    const aigw_json *u = H->body_member(r, AIGW_UPSTREAM_RESPONSE, "usage", &mst);
    if (mst == AIGW_E_INVAL) {
      H->respond_error(r, 502, "upstream_error", "the provider answered 2xx with a body that is not a JSON object");
      return AIGW_STOP;
    }
    if (u) report_usage(r, u, api);
    return AIGW_CONTINUE;
  }
  aigw_json *b = H->body(r, AIGW_UPSTREAM_RESPONSE);
  if (!b || H->json_type(b) != AIGW_JSON_OBJECT) {
    /* A 2xx that is not a JSON object is a broken answer, not a success: say so in the client's
     * format instead of handing the SDK something it cannot parse. */
    H->respond_error(r, 502, "upstream_error", "the provider answered 2xx with a body that is not a JSON object");
    return AIGW_STOP;
  }
  report_usage(r, H->json_get(b, "usage"), api);
  return AIGW_CONTINUE;
}

/* ---- stream events ------------------------------------------------------------------------ */

static int nonempty_str(const aigw_json *j) {
  aigw_str s;
  return j && H->json_str(j, &s) == AIGW_OK && s.n > 0;
}

static int nonempty_arr(const aigw_json *j) {
  return j && H->json_type(j) == AIGW_JSON_ARRAY && H->json_len(j) > 0;
}

/* Responses API events carry their type in "type" (and the SSE event name). */
static aigw_status classify_responses(aigw_req *r, aigw_event *ev, const aigw_json *j) {
  aigw_str t = {0};
  const aigw_json *tj = H->json_get(j, "type");
  if (tj) H->json_str(tj, &t);
  aigw_event_kind k = AIGW_EV_OTHER;
  if (pc_str_eq(t, "response.output_text.delta")) {
    k = AIGW_EV_DELTA;
  } else if (pc_str_eq(t, "response.function_call_arguments.delta")) {
    k = AIGW_EV_TOOL_DELTA;
  } else if (pc_str_eq(t, "error") || pc_str_eq(t, "response.failed")) {
    k = AIGW_EV_ERROR;
  } else if (pc_str_eq(t, "response.completed") || pc_str_eq(t, "response.incomplete")) {
    const aigw_json *resp = H->json_get(j, "response");
    if (resp) report_usage(r, H->json_get(resp, "usage"), AIGW_API_RESPONSES);
    k = AIGW_EV_DONE; /* the last event of a Responses stream; there is no [DONE] */
  }
  H->event_set_kind(ev, k);
  return AIGW_CONTINUE;
}

static int raw_is_null(aigw_str d, const char *v) {
  return v && (size_t)(d.p + d.n - v) >= 4 && !memcmp(v, "null", 4);
}

/* The common chunks are classified from their bytes, without building a tree: a text delta
 * (DELTA), the opening role-only chunk or any chunk with nothing of interest (OTHER), a finish
 * without usage (STOP), and the usage-only chunk ("choices": [], usage reported from its digits:
 * USAGE). Usage, errors, tool calls, several choices and unusual shapes take the full
 * path (-1).
 *
 * One pass over the chunk's member names (next_member). (Six memmem scans of the whole chunk and a cJSON parse of every non-text chunk did this
 * before: 30 % and 12 % of a proxied stream's instructions.) */
static int raw_classify(aigw_str d, const char **usage, int *no_choices) {
  *usage = NULL;
  *no_choices = 0;
  if (!d.n || d.p[0] != '{') return -1;
  const char *p = d.p, *end = d.p + d.n, *content = NULL, *finish = NULL, *v;
  int nfinish = 0, nusage = 0, bad = 0;
  aigw_str nm;
  while ((v = next_member(&p, end, &nm, &bad))) {
    const char *s = nm.p;
    size_t n = nm.n;
#define NAME_IS(lit) (n == sizeof(lit) - 1 && !memcmp(s, lit, sizeof(lit) - 1))
    if (NAME_IS("error") || NAME_IS("tool_calls") || NAME_IS("function_call")) return -1;
    if (NAME_IS("usage") && !raw_is_null(d, v)) {
      if (++nusage > 1 || *v != '{') return -1;
      *usage = v;
    }
    if (NAME_IS("choices") && end - v >= 2 && v[0] == '[' && v[1] == ']') *no_choices = 1;
    if (NAME_IS("finish_reason")) {
      if (++nfinish > 1) return -1; /* several choices: the full path looks at the first */
      if (!raw_is_null(d, v)) finish = v;
    }
    if (NAME_IS("content")) {
      if (content) return -1;
      content = v;
    }
#undef NAME_IS
  }
  if (bad) return -1; /* an unterminated string: not a well-formed chunk */
  int text = content && content < end && *content == '"' && content + 1 < end && content[1] != '"';
  int empty = !content || raw_is_null(d, content) || (content + 1 < end && content[0] == '"' && content[1] == '"');
  if (*usage) return !content && !finish && *no_choices ? AIGW_EV_USAGE : -1; /* the usage-only chunk */
  if (text) return AIGW_EV_DELTA;
  if (!empty) return -1; /* content that is neither text nor empty: let the full path judge */
  if (finish) return *finish == '"' ? AIGW_EV_STOP : -1;
  return AIGW_EV_OTHER;
}

/* Classifies one chat.completion.chunk. When a chunk is several things at once, the kind is the
 * first of DELTA, TOOL_DELTA, STOP, USAGE (usage is reported regardless). */
static aigw_status oa_on_event(void *vi, aigw_req *r, void **rctx, aigw_event *ev) {
  (void)vi;
  oa_rctx *tctx = rctx ? *rctx : NULL;
  if (tctx && tctx->translate) return oa_on_event_translated(r, tctx, ev);
  aigw_str data = {0}, name = {0};
  H->event_data(ev, &data);
  while (data.n && (data.p[0] == ' ' || data.p[0] == '\t')) data.p++, data.n--;
  while (data.n && (data.p[data.n - 1] == ' ' || data.p[data.n - 1] == '\r' ||
                    data.p[data.n - 1] == '\n'))
    data.n--;
  if (pc_str_eq(data, "[DONE]")) {
    H->event_set_kind(ev, AIGW_EV_DONE);
    return AIGW_CONTINUE;
  }
  H->event_name(ev, &name);
  const char *ru = NULL;
  int no_choices = 0;
  int rk = !name.n && H->api(r) == AIGW_API_CHAT ? raw_classify(data, &ru, &no_choices) : -1;
  if (rk == AIGW_EV_USAGE && !raw_usage(r, (aigw_str){ru, (size_t)(data.p + data.n - ru)}, AIGW_API_CHAT)) rk = -1;
  if (rk >= 0) {
    H->event_set_kind(ev, (aigw_event_kind)rk);
    /* We asked for the usage chunk; the client did not: hide it (it has no choices) */
    if (rk == AIGW_EV_USAGE && tctx && !tctx->client_usage) return AIGW_DROP;
    return AIGW_CONTINUE;
  }
  aigw_json *j = H->event_json(ev);
  if (pc_str_eq(name, "error") ||
      (j && H->json_type(j) == AIGW_JSON_OBJECT && H->json_get(j, "error") &&
       H->json_type(H->json_get(j, "error")) != AIGW_JSON_NULL)) {
    H->event_set_kind(ev, AIGW_EV_ERROR);
    return AIGW_CONTINUE;
  }
  if (!j || H->json_type(j) != AIGW_JSON_OBJECT) return AIGW_CONTINUE; /* stays OTHER */
  if (H->api(r) == AIGW_API_RESPONSES) return classify_responses(r, ev, j);

  aigw_event_kind k = AIGW_EV_OTHER;
  const aigw_json *choices = H->json_get(j, "choices");
  size_t nchoices = choices && H->json_type(choices) == AIGW_JSON_ARRAY ? H->json_len(choices) : 0;
  const aigw_json *c0 = nchoices ? H->json_at(choices, 0) : NULL;
  if (c0) {
    const aigw_json *delta = H->json_get(c0, "delta");
    const aigw_json *fr = H->json_get(c0, "finish_reason");
    if (delta && nonempty_str(H->json_get(delta, "content")))
      k = AIGW_EV_DELTA;
    else if (delta && (nonempty_arr(H->json_get(delta, "tool_calls")) ||
                       (H->json_get(delta, "function_call") &&
                        H->json_type(H->json_get(delta, "function_call")) == AIGW_JSON_OBJECT)))
      k = AIGW_EV_TOOL_DELTA;
    else if (fr && H->json_type(fr) != AIGW_JSON_NULL)
      k = AIGW_EV_STOP;
  }
  const aigw_json *u = H->json_get(j, "usage");
  int has_usage = u && H->json_type(u) == AIGW_JSON_OBJECT;
  if (has_usage) {
    report_usage(r, u, AIGW_API_CHAT);
    if (k == AIGW_EV_OTHER) k = AIGW_EV_USAGE;
  }
  H->event_set_kind(ev, k);

  /* We asked for the usage chunk; the client did not: hide it. */
  oa_rctx *ctx = rctx ? *rctx : NULL;
  if (has_usage && ctx && !ctx->client_usage) {
    if (nchoices == 0) return AIGW_DROP;
    if (H->json_remove(j, "usage") == AIGW_OK) H->event_changed(ev);
  }
  return AIGW_CONTINUE;
}

/* ---- descriptor --------------------------------------------------------------------------- */

/* The upstream stream is over while the prompt count is still out: the held events (its end
 * included) go out from the count's callback. */
static aigw_status oa_on_stream_end(void *vi, aigw_req *r, void **rctx) {
  (void)vi;
  (void)r;
  oa_rctx *ctx = rctx ? *rctx : NULL;
  return ctx && ctx->translate && ctx->holding && ctx->cnt_pending ? AIGW_PAUSE : AIGW_CONTINUE;
}

static const aigw_provider oa_provider = {
    .struct_size = sizeof(aigw_provider), .wire_format = "openai", .prepare = oa_prepare, .on_response = oa_on_response,
    .on_event = oa_on_event, .on_stream_end = oa_on_stream_end,
};

static const aigw_plugin oa_plugin = {
    AIGW_PLUGIN_HEADER,
    .name = "openai",
    .version = "0.2.0",
    .priority = 0,
    .flags = AIGW_IS_PROVIDER,
    .create = oa_create,
    .destroy = oa_destroy,
    .on_done = oa_on_done,
    .provider = &oa_provider,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  if (!h || h->abi_major != AIGW_ABI_MAJOR) {
    snprintf(err, errlen, "openai: host ABI major %u, plugin built for %d",
             h ? (unsigned)h->abi_major : 0u, AIGW_ABI_MAJOR);
    return NULL;
  }
  H = h;
  return &oa_plugin;
}
