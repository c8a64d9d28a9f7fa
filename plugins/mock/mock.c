/* mock.c - the built-in offline provider: answers chat, embeddings and model-list requests itself,
 * in OpenAI's exact wire format, without any network. The default configuration falls back to it
 * when no OPENAI_API_KEY is set, so a first curl works offline; tests use it as a deterministic
 * upstream.
 *
 * Everything is derived from the request: the chat answer quotes the last user message, embeddings
 * are a hash of the input text, token counts are estimated as ceil(bytes / 4). Answers are built in
 * request memory (h->req_alloc) and handed to the host with h->provider_reply, which runs them
 * through the response or stream-event hooks exactly as if an upstream had sent them. An optional
 * latency is simulated with h->timer + PAUSE, never by blocking the worker. */
#include <aigw/plugin.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingress.h" /* Anthropic-format clients: answered through the hub format */

#define MOCK_ECHO_MAX 200    /* bytes of the user's message quoted back */
#define MOCK_WORDS_PER_CHUNK 3

static const aigw_host *H;
static atomic_ullong mock_seq; /* completion ids: chatcmpl-mock-<n>, process-wide */

typedef struct mock_inst {
  int dimensions;      /* default embedding size */
  uint32_t latency_ms; /* 0 = answer at once */
} mock_inst;

/* ---- a growable buffer in request memory --------------------------------------------------
 * Grows by doubling into a new req_alloc block (the old one is freed with the request), so no
 * error path ever needs a free. A failed allocation sets oom and later appends do nothing. */
typedef struct sb {
  aigw_req *r;
  char *p;
  size_t n, cap;
  int oom;
} sb;

static int sb_reserve(sb *b, size_t more) {
  if (b->oom) return -1;
  if (b->n + more <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 1024;
  while (cap < b->n + more) cap *= 2;
  char *p = H->req_alloc(b->r, cap);
  if (!p) {
    b->oom = 1;
    return -1;
  }
  if (b->n) memcpy(p, b->p, b->n);
  b->p = p;
  b->cap = cap;
  return 0;
}

static void sb_add(sb *b, const char *p, size_t n) {
  if (n == 0 || sb_reserve(b, n) != 0) return;
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

static void sb_puts(sb *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_printf(sb *b, const char *fmt, ...) AIGW_PRINTF(2, 3);
static void sb_printf(sb *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n <= 0 || sb_reserve(b, (size_t)n + 1) != 0) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)n;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if the bytes there are not valid UTF-8. */
static size_t utf8_len(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  size_t len;
  unsigned min;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000;
  else return 0;
  if (len > n) return 0;
  unsigned cp = c & (0xff >> (len + 1));
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

/* Appends s as a JSON string literal (quotes included). Control characters are escaped and
 * invalid UTF-8 becomes U+FFFD, so the output is always valid JSON. */
static void sb_json_str(sb *b, aigw_str s) {
  const unsigned char *p = (const unsigned char *)s.p;
  sb_add(b, "\"", 1);
  for (size_t i = 0; i < s.n;) {
    unsigned char c = p[i];
    size_t run = i;
    while (run < s.n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') run++;
    if (run > i) {
      sb_add(b, s.p + i, run - i);
      i = run;
      continue;
    }
    if (c == '"') sb_add(b, "\\\"", 2), i++;
    else if (c == '\\') sb_add(b, "\\\\", 2), i++;
    else if (c == '\n') sb_add(b, "\\n", 2), i++;
    else if (c == '\r') sb_add(b, "\\r", 2), i++;
    else if (c == '\t') sb_add(b, "\\t", 2), i++;
    else if (c < 0x20) sb_printf(b, "\\u%04x", c), i++;
    else {
      size_t l = utf8_len(p + i, s.n - i);
      if (l) sb_add(b, s.p + i, l), i += l;
      else sb_add(b, "\\ufffd", 6), i++;
    }
  }
  sb_add(b, "\"", 1);
}


static int get_str(const aigw_json *obj, const char *key, aigw_str *out) {
  const aigw_json *v = obj ? H->json_get(obj, key) : NULL;
  return v && H->json_str(v, out) == AIGW_OK;
}

static int64_t est_tokens(size_t bytes) { return (int64_t)((bytes + 3) / 4); }

/* Text of a message's content: a string, or the "text" of its text parts joined by a space. */
static aigw_str content_text(aigw_req *r, const aigw_json *content) {
  aigw_str s = {"", 0};
  if (!content) return s;
  if (H->json_str(content, &s) == AIGW_OK) return s;
  if (H->json_type(content) != AIGW_JSON_ARRAY) return (aigw_str){"", 0};
  sb b = {r, NULL, 0, 0, 0};
  for (size_t i = 0; i < H->json_len(content); i++) {
    aigw_str t;
    if (!get_str(H->json_at(content, i), "text", &t)) continue;
    if (b.n) sb_add(&b, " ", 1);
    sb_add(&b, t.p, t.n);
  }
  return b.oom || !b.n ? (aigw_str){"", 0} : (aigw_str){b.p, b.n};
}

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
static aigw_str utf8_cut(aigw_str s, size_t max) {
  if (s.n <= max) return s;
  size_t n = max;
  while (n > 0 && ((unsigned char)s.p[n] & 0xc0) == 0x80) n--;
  return (aigw_str){s.p, n};
}

/* ---- answers ------------------------------------------------------------------------------ */

/* A finished answer waiting to be delivered (possibly after latency_ms). Request memory. */
typedef struct mock_reply {
  int status;
  const char *ctype;
  aigw_str body;
  int translate; /* the client speaks Anthropic messages: the OpenAI answer goes through the hub */
  int st_init;
  ing_stream st;
} mock_reply;

static void sb_usage(sb *b, int64_t in, int64_t out) {
  sb_printf(b,
            "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld,"
            "\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"
            "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"
            "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}",
            (long long)in, (long long)out, (long long)(in + out));
}

static void report(aigw_req *r, int64_t in, int64_t out) {
  aigw_usage u = {sizeof(aigw_usage), in, out, 0, 0, 0};
  H->set_usage(r, &u);
}

/* Returns 0 and fills rep, or -1 after h->respond_error (the request was invalid). */
static int chat_answer(aigw_req *r, aigw_json *body, mock_reply *rep) {
  const aigw_json *msgs = H->json_get(body, "messages");
  if (!msgs || H->json_type(msgs) != AIGW_JSON_ARRAY || H->json_len(msgs) == 0) {
    H->respond_error(r, 400, "invalid_request_error",
                     "'messages' must be a non-empty array of messages");
    return -1;
  }
  /* Prompt size: all message text; the answer quotes the last user message. */
  size_t prompt_bytes = 0;
  aigw_str said = {"", 0};
  for (size_t i = 0; i < H->json_len(msgs); i++) {
    const aigw_json *m = H->json_at(msgs, i);
    aigw_str role = {0}, text = content_text(r, m ? H->json_get(m, "content") : NULL);
    prompt_bytes += text.n;
    if (get_str(m, "role", &role) && pc_str_eq(role, "user")) said = text;
  }
  said = utf8_cut(said, MOCK_ECHO_MAX);

  sb content = {r, NULL, 0, 0, 0};
  sb_puts(&content, "Hello from aigw's mock provider. You said: ");
  sb_add(&content, said.p, said.n);

  aigw_str model = AIGW_STR("mock-1");
  get_str(body, "model", &model);
  int64_t in = est_tokens(prompt_bytes), out = est_tokens(content.n);
  long long created = (long long)time(NULL);
  char id[48];
  snprintf(id, sizeof id, "chatcmpl-mock-%llu", (unsigned long long)atomic_fetch_add(&mock_seq, 1) + 1);

  sb b = {r, NULL, 0, 0, 0};
  if (!H->is_stream(r)) {
    sb_printf(&b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", id,
              created);
    sb_json_str(&b, model);
    sb_puts(&b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    sb_json_str(&b, (aigw_str){content.p, content.n});
    sb_puts(&b, ",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                "\"usage\":");
    sb_usage(&b, in, out);
    sb_puts(&b, ",\"service_tier\":\"default\",\"system_fingerprint\":null}");
    rep->ctype = "application/json";
  } else {
    const aigw_json *so = H->json_get(body, "stream_options");
    const aigw_json *iu = so ? H->json_get(so, "include_usage") : NULL;
    int with_usage = iu && H->json_type(iu) == AIGW_JSON_TRUE;
    /* Every chunk starts alike; with include_usage OpenAI sends "usage":null until the last. */
    sb head = {r, NULL, 0, 0, 0};
    sb_printf(&head, "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
                     "\"model\":", id, created);
    sb_json_str(&head, model);
    sb_puts(&head, ",\"service_tier\":\"default\",\"system_fingerprint\":null,\"choices\":[");
    const char *tail = with_usage ? "],\"usage\":null}\n\n" : "]}\n\n";

    sb_add(&b, head.p, head.n);
    sb_puts(&b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"
                "\"logprobs\":null,\"finish_reason\":null}");
    sb_puts(&b, tail);
    /* Content deltas of a few words each, cut after a space (never inside a UTF-8 sequence). */
    for (size_t i = 0; i < content.n;) {
      size_t j = i, words = 0;
      while (j < content.n && words < MOCK_WORDS_PER_CHUNK)
        if (content.p[j++] == ' ') words++;
      sb_add(&b, head.p, head.n);
      sb_puts(&b, "{\"index\":0,\"delta\":{\"content\":");
      sb_json_str(&b, (aigw_str){content.p + i, j - i});
      sb_puts(&b, "},\"logprobs\":null,\"finish_reason\":null}");
      sb_puts(&b, tail);
      i = j;
    }
    sb_add(&b, head.p, head.n);
    sb_puts(&b, "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}");
    sb_puts(&b, tail);
    if (with_usage) {
      sb_add(&b, head.p, head.n);
      sb_puts(&b, "],\"usage\":");
      sb_usage(&b, in, out);
      sb_puts(&b, "}\n\n");
    }
    sb_puts(&b, "data: [DONE]\n\n");
    if (head.oom) b.oom = 1;
    rep->ctype = "text/event-stream";
  }
  if (content.oom || b.oom) return -2;
  /* The host cannot read usage out of our own stream without the usage chunk: report it here. */
  report(r, in, out);
  rep->status = 200;
  rep->body = (aigw_str){b.p, b.n};
  return 0;
}

/* 64-bit FNV-1a, then splitmix64 per component: stable across runs, platforms and builds. */
static uint64_t fnv1a(aigw_str s) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < s.n; i++) h = (h ^ (unsigned char)s.p[i]) * 1099511628211ull;
  return h;
}

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void sb_base64(sb *b, const unsigned char *p, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (sb_reserve(b, (n + 2) / 3 * 4) != 0) return;
  char *o = b->p + b->n;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63], *o++ = tab[(v >> 6) & 63], *o++ = tab[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
    *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63];
    *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  b->n = (size_t)(o - b->p);
}

/* Square root by Newton's method (keeps the plugin free of libm); x > 0. */
static double nsqrt(double x) {
  double g = x > 1 ? x : 1;
  for (int i = 0; i < 64; i++) {
    double n = 0.5 * (g + x / g);
    if (n >= g) break;
    g = n;
  }
  return g;
}

/* One embedding object for the input text (its bytes, or a token array's JSON text); v is
 * scratch for dims floats. */
static void sb_embedding(sb *b, size_t index, aigw_str text, int dims, int base64, float *v) {
  double norm = 0;
  uint64_t x = fnv1a(text);
  for (int i = 0; i < dims; i++) {
    double u = (double)(splitmix64(&x) >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
    v[i] = (float)(2 * u - 1);
    norm += (double)v[i] * v[i];
  }
  if (norm > 0) norm = nsqrt(norm);
  for (int i = 0; i < dims && norm > 0; i++) v[i] = (float)(v[i] / norm); /* unit length, like OpenAI */

  sb_printf(b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", index ? "," : "", index);
  if (base64) {
    unsigned char *bytes = (unsigned char *)v; /* rewritten in place as little-endian float32 */
    for (int i = 0; i < dims; i++) {
      uint32_t w;
      memcpy(&w, &v[i], 4);
      bytes[4 * i] = (unsigned char)w, bytes[4 * i + 1] = (unsigned char)(w >> 8);
      bytes[4 * i + 2] = (unsigned char)(w >> 16), bytes[4 * i + 3] = (unsigned char)(w >> 24);
    }
    sb_add(b, "\"", 1);
    sb_base64(b, bytes, 4 * (size_t)dims);
    sb_add(b, "\"", 1);
  } else {
    sb_add(b, "[", 1);
    for (int i = 0; i < dims; i++) sb_printf(b, "%s%.9g", i ? "," : "", (double)v[i]);
    sb_add(b, "]", 1);
  }
  sb_add(b, "}", 1);
}

static int bad_request(aigw_req *r, const char *msg) {
  H->respond_error(r, 400, "invalid_request_error", msg);
  return -1;
}

static int embeddings_answer(mock_inst *in, aigw_req *r, aigw_json *body, mock_reply *rep) {
  const aigw_json *input = H->json_get(body, "input");
  int dims = in->dimensions, base64 = 0;
  aigw_str fmt, model = AIGW_STR("mock-embed-1");
  double d;
  const aigw_json *dj = H->json_get(body, "dimensions");
  if (dj && H->json_type(dj) != AIGW_JSON_NULL) {
    if (H->json_num(dj, &d) != AIGW_OK || d < 1 || d > 4096 || d != (double)(int)d)
      return bad_request(r, "'dimensions' must be an integer between 1 and 4096");
    dims = (int)d;
  }
  if (get_str(body, "encoding_format", &fmt)) {
    if (pc_str_eq(fmt, "base64")) base64 = 1;
    else if (!pc_str_eq(fmt, "float")) return bad_request(r, "'encoding_format' must be \"float\" or \"base64\"");
  }
  get_str(body, "model", &model);
  if (!input) return bad_request(r, "'input' is required");

  /* input: a string, an array of strings, a token array, or an array of token arrays. */
  aigw_json_type t = H->json_type(input);
  size_t count = 1;
  int tokens_flat = 0;
  if (t == AIGW_JSON_ARRAY) {
    count = H->json_len(input);
    if (count == 0) return bad_request(r, "'input' must not be empty");
    tokens_flat = H->json_type(H->json_at(input, 0)) == AIGW_JSON_NUMBER;
    if (tokens_flat) count = 1;
  } else if (t != AIGW_JSON_STRING) {
    return bad_request(r, "'input' must be a string or an array");
  }

  sb b = {r, NULL, 0, 0, 0};
  int64_t tokens = 0;
  float *v = H->req_alloc(r, sizeof(float) * (size_t)dims);
  if (!v) return -2;
  sb_puts(&b, "{\"object\":\"list\",\"data\":[");
  for (size_t i = 0; i < count; i++) {
    const aigw_json *item = t == AIGW_JSON_STRING || tokens_flat ? input : H->json_at(input, i);
    aigw_str text;
    if (H->json_str(item, &text) == AIGW_OK) {
      tokens += est_tokens(text.n);
    } else if (H->json_type(item) == AIGW_JSON_ARRAY) {
      tokens += (int64_t)H->json_len(item);
      if (H->json_dump(r, item, &text) != AIGW_OK) return -2;
    } else {
      return bad_request(r, "each 'input' item must be a string or an array of token ids");
    }
    sb_embedding(&b, i, text, dims, base64, v);
  }
  sb_puts(&b, "],\"model\":");
  sb_json_str(&b, model);
  sb_printf(&b, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", (long long)tokens,
            (long long)tokens);
  if (b.oom) return -2;
  report(r, tokens, 0);
  rep->status = 200;
  rep->ctype = "application/json";
  rep->body = (aigw_str){b.p, b.n};
  return 0;
}

static const char MODELS_JSON[] =
    "{\"object\":\"list\",\"data\":["
    "{\"id\":\"mock-1\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"aigw\"},"
    "{\"id\":\"mock-embed-1\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"aigw\"}]}";

/* ---- delivery ----------------------------------------------------------------------------- */

static int deliver(aigw_req *r, const mock_reply *rep) {
  aigw_str ct = {rep->ctype, strlen(rep->ctype)};
  return H->provider_reply(r, rep->status, ct, rep->body);
}

static void latency_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud) {
  (void)c;
  if (st == AIGW_CALL_CANCELLED) return; /* ud is request memory: nothing to free */
  H->resume(r, deliver(r, ud) == AIGW_OK ? AIGW_STOP : AIGW_ERROR);
}

/* The request path (query ignored) ends with suffix. */
static int path_ends(aigw_str path, const char *suffix) {
  const char *q = memchr(path.p, '?', path.n);
  size_t n = q ? (size_t)(q - path.p) : path.n, sl = strlen(suffix);
  return n >= sl && memcmp(path.p + n - sl, suffix, sl) == 0;
}

static aigw_status mock_prepare(void *vi, aigw_req *r, void **rctx) {
  mock_inst *in = vi;
  mock_reply *rep = H->req_alloc(r, sizeof *rep);
  aigw_api api = H->api(r);
  int rc;
  if (!rep) return AIGW_ERROR;
  *rctx = rep;

  aigw_str path = {0};
  if (api == AIGW_API_MODELS) {
    rep->status = 200, rep->ctype = "application/json", rep->body = AIGW_STR(MODELS_JSON);
    rc = 0;
  } else if (api == AIGW_API_PASSTHROUGH && H->path(r, &path) == AIGW_OK && path_ends(path, "/messages/count_tokens")) {
    /* Anthropic's count_tokens, offline: the same ceil(bytes / 4) estimate as the answers' usage */
    aigw_str raw = {0};
    H->body_raw(r, AIGW_UPSTREAM_REQUEST, &raw);
    cJSON *b = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
    if (!cJSON_IsObject(b)) {
      cJSON_Delete(b);
      H->respond_error(r, 400, "invalid_request_error", "the request body must be a JSON object");
      return AIGW_STOP;
    }
    size_t bytes = 0;
    const cJSON *sys = cJSON_GetObjectItemCaseSensitive(b, "system"), *m, *part;
    if (cJSON_IsString(sys)) bytes += strlen(sys->valuestring);
    const cJSON *sysarr = cJSON_IsArray(sys) ? sys : NULL;
    cJSON_ArrayForEach(part, sysarr) {
      const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
      if (cJSON_IsString(t)) bytes += strlen(t->valuestring);
    }
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(b, "messages")) {
      const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
      if (cJSON_IsString(c)) bytes += strlen(c->valuestring);
      const cJSON *carr = cJSON_IsArray(c) ? c : NULL;
      cJSON_ArrayForEach(part, carr) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t)) bytes += strlen(t->valuestring);
      }
    }
    cJSON_Delete(b);
    sb out = {r, NULL, 0, 0, 0};
    sb_printf(&out, "{\"input_tokens\":%lld}", (long long)est_tokens(bytes));
    if (out.oom) return AIGW_ERROR;
    rep->status = 200, rep->ctype = "application/json", rep->body = (aigw_str){out.p, out.n};
    rc = 0;
  } else if (api == AIGW_API_CHAT || api == AIGW_API_EMBEDDINGS || api == AIGW_API_MESSAGES ||
             api == AIGW_API_RESPONSES) {
    if (api == AIGW_API_MESSAGES || api == AIGW_API_RESPONSES) {
      /* answer the hub (OpenAI chat) version of the request, translated back on the way out */
      pc_err e = {0};
      cJSON *hub = ing_hub_request(H, r, &e);
      if (!hub) {
        H->respond_error(r, e.status ? e.status : 400, NULL, e.msg);
        return AIGW_STOP;
      }
      cJSON_DeleteItemFromObjectCaseSensitive(hub, "stream_options");
      cJSON *so = cJSON_AddObjectToObject(hub, "stream_options");
      if (so) cJSON_AddTrueToObject(so, "include_usage");
      char *txt = cJSON_PrintUnformatted(hub);
      cJSON_Delete(hub);
      if (!txt || H->set_body(r, AIGW_UPSTREAM_REQUEST, (aigw_str){txt, strlen(txt)}) != AIGW_OK) {
        free(txt);
        return AIGW_ERROR;
      }
      free(txt);
      rep->translate = 1;
      if (H->is_stream(r)) {
        ing_stream_init(H, r, &rep->st);
        rep->st_init = 1;
      }
    }
    aigw_json *body = H->body(r, AIGW_UPSTREAM_REQUEST);
    if (!body || H->json_type(body) != AIGW_JSON_OBJECT) {
      H->respond_error(r, 400, "invalid_request_error", "the request body must be a JSON object");
      return AIGW_STOP;
    }
    rc = api != AIGW_API_EMBEDDINGS ? chat_answer(r, body, rep) : embeddings_answer(in, r, body, rep);
  } else if (api == AIGW_API_PASSTHROUGH) {
    H->respond_error(r, 404, "invalid_request_error",
                     "the built-in mock provider serves chat completions, embeddings, models, messages and "
                     "count_tokens only; configure a real provider (e.g. set OPENAI_API_KEY) for other APIs");
    return AIGW_STOP;
  } else {
    H->respond_error(r, 400, "invalid_request_error", "this API is not supported by provider mock");
    return AIGW_STOP;
  }
  if (rc == -1) return AIGW_STOP; /* answered with a 400 */
  if (rc != 0) {
    H->respond_error(r, 500, "api_error", "mock provider: out of memory");
    return AIGW_ERROR;
  }
  if (in->latency_ms && H->timer(r, in->latency_ms, latency_done, rep)) return AIGW_PAUSE;
  return deliver(r, rep) == AIGW_OK ? AIGW_STOP : AIGW_ERROR;
}

/* Classifies our own events so that stream plugins (guards, token counters) see kinds exactly
 * as they would behind the openai provider. The mock never drops anything: it only sends the
 * usage chunk when the client asked for it. */
static aigw_status mock_on_event(void *vi, aigw_req *r, void **rctx, aigw_event *ev) {
  (void)vi;
  mock_reply *rep = rctx ? *rctx : NULL;
  if (rep && rep->translate) {
    ing_openai_event(H, r, &rep->st, ev);
    return AIGW_DROP;
  }
  aigw_str data = {0}, s;
  H->event_data(ev, &data);
  if (data.n >= 6 && memcmp(data.p, "[DONE]", 6) == 0) {
    H->event_set_kind(ev, AIGW_EV_DONE);
    return AIGW_CONTINUE;
  }
  aigw_json *j = H->event_json(ev);
  const aigw_json *choices = j ? H->json_get(j, "choices") : NULL;
  const aigw_json *c0 = choices ? H->json_at(choices, 0) : NULL;
  const aigw_json *delta = c0 ? H->json_get(c0, "delta") : NULL;
  const aigw_json *fr = c0 ? H->json_get(c0, "finish_reason") : NULL;
  const aigw_json *u = j ? H->json_get(j, "usage") : NULL;
  aigw_event_kind k = AIGW_EV_OTHER;
  if (get_str(delta, "content", &s) && s.n > 0) k = AIGW_EV_DELTA;
  else if (fr && H->json_type(fr) == AIGW_JSON_STRING) k = AIGW_EV_STOP;
  else if (u && H->json_type(u) == AIGW_JSON_OBJECT) k = AIGW_EV_USAGE;
  H->event_set_kind(ev, k);
  return AIGW_CONTINUE;
}

/* Anthropic-format clients: the OpenAI-format answer -> the client's format. */
static aigw_status mock_on_response(void *vi, aigw_req *r, void **rctx) {
  (void)vi;
  mock_reply *rep = rctx ? *rctx : NULL;
  if (!rep || !rep->translate || H->status(r, AIGW_UPSTREAM_RESPONSE) != 200) return AIGW_CONTINUE;
  aigw_str raw = {0};
  H->body_raw(r, AIGW_UPSTREAM_RESPONSE, &raw);
  cJSON *hub = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  pc_err e = {0};
  int rc = hub ? ing_hub_response(H, r, hub, &e) : -1;
  cJSON_Delete(hub);
  if (rc < 0) {
    H->respond_error(r, 500, NULL, e.msg[0] ? e.msg : "mock provider: translation failed");
    return AIGW_STOP;
  }
  return AIGW_CONTINUE;
}

static void mock_on_done(void *vi, aigw_req *r, void *rctx) {
  (void)vi;
  (void)r;
  mock_reply *rep = rctx;
  if (rep && rep->st_init) ing_stream_free(&rep->st);
}

/* ---- create / destroy --------------------------------------------------------------------- */

static int cfg_int(const aigw_json *cfg, const char *key, const char *ptr, double lo, double hi,
                   double *out, aigw_diag *d) {
  const aigw_json *v = H->json_get(cfg, key);
  if (!v) return 0;
  if (H->json_num(v, out) != AIGW_OK || *out < lo || *out > hi || *out != (double)(long long)*out) {
    H->diag_error(d, ptr, "must be an integer from %.0f to %.0f", lo, hi);
    return -1;
  }
  return 1;
}

static void *mock_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d) {
  (void)h;
  double dims = 8, lat = 0;
  int bad = 0;
  if (cfg && H->json_type(cfg) != AIGW_JSON_OBJECT) {
    H->diag_error(d, "", "must be an object");
    return NULL;
  }
  for (size_t i = 0; cfg && i < H->json_len(cfg); i++) {
    aigw_str k;
    if (H->json_key_at(cfg, i, &k) != AIGW_OK) continue;
    if (!pc_str_eq(k, "dimensions") && !pc_str_eq(k, "latency_ms")) {
      char ptr[128];
      snprintf(ptr, sizeof ptr, "/%.*s", (int)(k.n > 100 ? 100 : k.n), k.p);
      H->diag_error(d, ptr, "unknown option (known: dimensions, latency_ms)");
      bad = 1;
    }
  }
  if (cfg && cfg_int(cfg, "dimensions", "/dimensions", 1, 4096, &dims, d) < 0) bad = 1;
  if (cfg && cfg_int(cfg, "latency_ms", "/latency_ms", 0, 600000, &lat, d) < 0) bad = 1;
  if (bad) return NULL;
  mock_inst *in = H->alloc(sizeof *in);
  if (!in) {
    H->diag_error(d, "", "out of memory");
    return NULL;
  }
  in->dimensions = (int)dims;
  in->latency_ms = (uint32_t)lat;
  return in;
}

static void mock_destroy(void *inst) { H->free(inst); }

static const aigw_provider mock_provider = {
    .struct_size = sizeof(aigw_provider), .wire_format = "openai", .prepare = mock_prepare, .on_response = mock_on_response, .on_event = mock_on_event,
};

static const aigw_plugin mock_plugin = {
    AIGW_PLUGIN_HEADER,
    .name = "mock",
    .version = "0.2.0",
    .flags = AIGW_IS_PROVIDER,
    .create = mock_create,
    .destroy = mock_destroy,
    .on_done = mock_on_done,
    .provider = &mock_provider,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  if (!h || h->abi_major != AIGW_ABI_MAJOR) {
    snprintf(err, errlen, "mock: host ABI major %u, plugin built for %d",
             h ? (unsigned)h->abi_major : 0u, AIGW_ABI_MAJOR);
    return NULL;
  }
  H = h;
  return &mock_plugin;
}
