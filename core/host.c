/* host.c - the host function table handed to plugins (aigw/plugin.h), ABI 1.0.
 *
 * aigw_json handles are cJSON nodes cast to the opaque type: the ABI never exposes cJSON's layout,
 * and the cast costs nothing. Every call that takes a request checks it (magic number) and the
 * phase, returning AIGW_E_PHASE / AIGW_E_STATE rather than misbehaving. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "catalog.h"
#include <openssl/crypto.h>

#include "core.h"
#include "jscan.h"
#include "metrics.h"
#include "plugin_loader.h"

#define J(x) ((cJSON *)(x))
#define CJ(x) ((const cJSON *)(x))
#define AJ(x) ((aigw_json *)(x))

/* Writes need a live request; reads are allowed until the request is freed, so that on_done and
 * CANCELLED callbacks can read the final record (status, usage, meta) as the ABI promises. */
static int req_ok(aigw_req *r) { return r && r->magic == REQ_MAGIC && !r->ended; }
static int req_rd(aigw_req *r) { return r && r->magic == REQ_MAGIC; }

static msg_t *msg_of(aigw_req *r, aigw_which which) {
  switch (which) {
  case AIGW_CLIENT_REQUEST: return &r->creq;
  case AIGW_UPSTREAM_REQUEST: return &r->ureq;
  case AIGW_UPSTREAM_RESPONSE: return &r->uresp;
  case AIGW_CLIENT_RESPONSE: return &r->cresp;
  default: return NULL;
  }
}

/* ---- bodies: parsed once, serialized once ---- */

cJSON *msg_json(aigw_req *r, msg_t *m) {
  (void)r;
  if (m->json || m->json_tried) return m->json;
  m->json_tried = 1;
  if (!m->body || !m->body_len) return NULL;
  m->json = cJSON_ParseWithLength(m->body, m->body_len);
  return m->json;
}

int msg_serialize(aigw_req *r, msg_t *m) {
  if (!m->json) return 0;
  char *txt = cJSON_PrintUnformatted(m->json);
  if (!txt) return -1;
  size_t n = strlen(txt);
  char *copy = arena_strndup(&r->pool, txt, n);
  free(txt);
  if (!copy) return -1;
  if (m->body_owned) free(m->body);
  m->body = copy;
  m->body_len = n;
  m->body_owned = 0;
  m->dirty = 0;
  return 0;
}

/* ---- memory ---- */
static void *h_alloc(size_t n) { return malloc(n ? n : 1); }
static void h_free(void *p) { free(p); }
static void *h_req_alloc(aigw_req *r, size_t n) { return req_rd(r) ? arena_alloc(&r->pool, n) : NULL; }

/* ---- request line, headers ---- */
static int h_method(aigw_req *r, aigw_str *out) {
  if (!req_rd(r) || !out) return AIGW_E_INVAL;
  *out = r->method;
  return AIGW_OK;
}
static int h_path(aigw_req *r, aigw_str *out) {
  if (!req_rd(r) || !out) return AIGW_E_INVAL;
  *out = r->target_uri;
  return AIGW_OK;
}
static int h_header(aigw_req *r, aigw_which which, aigw_str name, aigw_str *out) {
  msg_t *m;
  if (!req_rd(r) || !(m = msg_of(r, which)) || !out) return AIGW_E_INVAL;
  const hdr *h = hdrs_get(&m->hdrs, name.p, name.n);
  if (!h) return AIGW_E_NOTFOUND;
  *out = h->value;
  return AIGW_OK;
}
static int h_header_at(aigw_req *r, aigw_which which, size_t i, aigw_str *name, aigw_str *value) {
  msg_t *m;
  if (!req_rd(r) || !(m = msg_of(r, which))) return AIGW_E_INVAL;
  if (i >= m->hdrs.n) return AIGW_E_NOTFOUND;
  if (name) *name = m->hdrs.v[i].name;
  if (value) *value = m->hdrs.v[i].value;
  return AIGW_OK;
}
static int header_writable(aigw_req *r, aigw_which which) {
  if (which == AIGW_CLIENT_RESPONSE && r->head_sent) return 0;
  if (which == AIGW_CLIENT_REQUEST && r->phase > PH_REQUEST) return 0;
  if (which == AIGW_UPSTREAM_REQUEST && r->up_step >= 2) return 0;
  return 1;
}
static int valid_header(aigw_str name, aigw_str value) {
  if (!name.p || !name.n) return 0;
  for (size_t i = 0; i < name.n; i++)
    if (name.p[i] <= ' ' || name.p[i] == ':' || name.p[i] == 127) return 0;
  for (size_t i = 0; value.p && i < value.n; i++)
    if (value.p[i] == '\r' || value.p[i] == '\n' || value.p[i] == 0) return 0;
  return 1;
}
static int h_set_header(aigw_req *r, aigw_which which, aigw_str name, aigw_str value) {
  msg_t *m;
  if (!req_ok(r) || !(m = msg_of(r, which)) || !valid_header(name, value)) return AIGW_E_INVAL;
  if (!header_writable(r, which)) return AIGW_E_PHASE;
  return hdrs_set(&r->pool, &m->hdrs, name.p, name.n, value.p, value.n) < 0 ? AIGW_E_NOMEM : AIGW_OK;
}
static int h_add_header(aigw_req *r, aigw_which which, aigw_str name, aigw_str value) {
  msg_t *m;
  if (!req_ok(r) || !(m = msg_of(r, which)) || !value.p || !valid_header(name, value)) return AIGW_E_INVAL;
  if (!header_writable(r, which)) return AIGW_E_PHASE;
  return hdrs_add(&r->pool, &m->hdrs, name.p, name.n, value.p, value.n) < 0 ? AIGW_E_NOMEM : AIGW_OK;
}
static int h_status(aigw_req *r, aigw_which which) {
  msg_t *m;
  if (!req_rd(r) || !(m = msg_of(r, which))) return 0;
  return m->status;
}
static int h_set_status(aigw_req *r, aigw_which which, int status) {
  if (!req_ok(r) || which != AIGW_CLIENT_RESPONSE || status < 100 || status > 599) return AIGW_E_INVAL;
  if (r->head_sent) return AIGW_E_PHASE;
  r->cresp.status = status;
  return AIGW_OK;
}

/* ---- bodies ---- */
static int h_body_raw(aigw_req *r, aigw_which which, aigw_str *out) {
  msg_t *m;
  if (!req_rd(r) || !(m = msg_of(r, which)) || !out) return AIGW_E_INVAL;
  if (m->dirty && msg_serialize(r, m) < 0) return AIGW_E_NOMEM;
  *out = (aigw_str){m->body ? m->body : "", m->body_len};
  return AIGW_OK;
}
static aigw_json *h_body(aigw_req *r, aigw_which which) {
  msg_t *m;
  if (!req_rd(r) || !(m = msg_of(r, which))) return NULL;
  return AJ(msg_json(r, m));
}
static void h_body_changed(aigw_req *r, aigw_which which) {
  msg_t *m;
  if (!req_ok(r) || !(m = msg_of(r, which))) return;
  m->dirty = 1;
  /* the upstream request shares the client's tree until the provider runs */
  if (which == AIGW_CLIENT_REQUEST && r->ureq.json == r->creq.json && r->ureq.json) r->ureq.dirty = 1;
}
static int h_set_body(aigw_req *r, aigw_which which, aigw_str body) {
  msg_t *m;
  if (!req_ok(r) || !(m = msg_of(r, which))) return AIGW_E_INVAL;
  if (which == AIGW_CLIENT_RESPONSE && r->head_sent) return AIGW_E_PHASE;
  char *copy = arena_strndup(&r->pool, body.p ? body.p : "", body.n);
  if (!copy) return AIGW_E_NOMEM;
  if (m->body_owned) free(m->body);
  /* a tree shared with another message stays with it */
  int shared = 0;
  msg_t *all[] = {&r->creq, &r->ureq, &r->uresp, &r->cresp};
  for (int i = 0; i < 4; i++)
    if (all[i] != m && all[i]->json == m->json) shared = 1;
  if (m->json && !shared) cJSON_Delete(m->json);
  m->json = NULL;
  m->json_tried = 0;
  m->dirty = 0;
  m->body = copy;
  m->body_len = body.n;
  m->body_owned = 0;
  if (which == AIGW_CLIENT_RESPONSE) r->responded = r->responded || r->phase >= PH_RESPONSE;
  return AIGW_OK;
}

/* ---- format-neutral text view ---- */
typedef int (*text_visit)(void *ud, const char *role, cJSON *holder, cJSON *str);

static int visit_content(const char *role, cJSON *content, text_visit fn, void *ud) {
  if (cJSON_IsString(content)) return fn(ud, role, NULL, content);
  if (!cJSON_IsArray(content)) return 0;
  cJSON *part;
  cJSON_ArrayForEach(part, content) {
    cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
    cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
    if (cJSON_IsString(type) && (!strcmp(type->valuestring, "text") || !strcmp(type->valuestring, "input_text") ||
                                 !strcmp(type->valuestring, "output_text")) && cJSON_IsString(text)) {
      int rc = fn(ud, role, part, text);
      if (rc) return rc;
    } else if (cJSON_IsString(type) && !strcmp(type->valuestring, "tool_result")) {
      /* Anthropic tool results: their text is content too (guards must see it) */
      int rc = visit_content("tool", cJSON_GetObjectItemCaseSensitive(part, "content"), fn, ud);
      if (rc) return rc;
    }
  }
  return 0;
}

static int visit_texts(cJSON *root, aigw_api api, text_visit fn, void *ud) {
  if (!cJSON_IsObject(root)) return 0;
  int rc;
  if (api == AIGW_API_EMBEDDINGS) {
    cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (cJSON_IsString(in)) return fn(ud, "user", NULL, in);
    cJSON *it;
    cJSON_ArrayForEach(it, in) if (cJSON_IsString(it) && (rc = fn(ud, "user", NULL, it))) return rc;
    return 0;
  }
  cJSON *sys = cJSON_GetObjectItemCaseSensitive(root, "system"); /* Anthropic */
  if (sys && (rc = visit_content("system", sys, fn, ud))) return rc;
  cJSON *ins = cJSON_GetObjectItemCaseSensitive(root, "instructions"); /* Responses */
  if (cJSON_IsString(ins) && (rc = fn(ud, "system", NULL, ins))) return rc;
  cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
  if (!msgs) msgs = cJSON_GetObjectItemCaseSensitive(root, "input");
  if (cJSON_IsString(msgs)) return fn(ud, "user", NULL, msgs);
  cJSON *m;
  cJSON_ArrayForEach(m, msgs) {
    cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    const char *rs = cJSON_IsString(role) ? role->valuestring : "user";
    if ((rc = visit_content(rs, cJSON_GetObjectItemCaseSensitive(m, "content"), fn, ud))) return rc;
  }
  return 0;
}

typedef struct {
  size_t want, n;
  const char *role;
  cJSON *str;
} text_find;

static int count_cb(void *ud, const char *role, cJSON *holder, cJSON *str) {
  (void)holder;
  text_find *f = ud;
  if (f->n++ == f->want) {
    f->role = role;
    f->str = str;
    return 1;
  }
  return 0;
}

static int bytes_cb(void *ud, const char *role, cJSON *holder, cJSON *str) {
  (void)role;
  (void)holder;
  *(size_t *)ud += strlen(str->valuestring);
  return 0;
}

size_t req_prompt_bytes(aigw_req *r) {
  size_t n = 0;
  if (r->route) visit_texts(msg_json(r, &r->creq), r->route->api, bytes_cb, &n);
  return n;
}

static size_t h_text_count(aigw_req *r, aigw_which which) {
  msg_t *m;
  if (!req_rd(r) || !(m = msg_of(r, which)) || !r->route) return 0;
  text_find f = {(size_t)-1, 0, NULL, NULL};
  visit_texts(msg_json(r, m), r->route->api, count_cb, &f);
  return f.n;
}
static int h_text_get(aigw_req *r, aigw_which which, size_t i, aigw_str *role, aigw_str *text) {
  msg_t *m;
  if (!req_rd(r) || !(m = msg_of(r, which)) || !r->route) return AIGW_E_INVAL;
  text_find f = {i, 0, NULL, NULL};
  visit_texts(msg_json(r, m), r->route->api, count_cb, &f);
  if (!f.str) return AIGW_E_NOTFOUND;
  if (role) *role = (aigw_str){f.role, strlen(f.role)};
  if (text) *text = (aigw_str){f.str->valuestring, strlen(f.str->valuestring)};
  return AIGW_OK;
}
static int h_text_set(aigw_req *r, aigw_which which, size_t i, aigw_str text) {
  msg_t *m;
  if (!req_ok(r) || !(m = msg_of(r, which)) || !r->route) return AIGW_E_INVAL;
  if (which == AIGW_CLIENT_REQUEST && r->phase > PH_REQUEST) return AIGW_E_PHASE;
  text_find f = {i, 0, NULL, NULL};
  visit_texts(msg_json(r, m), r->route->api, count_cb, &f);
  if (!f.str) return AIGW_E_NOTFOUND;
  char *copy = malloc(text.n + 1);
  if (!copy) return AIGW_E_NOMEM;
  memcpy(copy, text.p, text.n);
  copy[text.n] = 0;
  cJSON_free(f.str->valuestring);
  f.str->valuestring = copy; /* cJSON's default allocator is malloc */
  h_body_changed(r, which);
  return AIGW_OK;
}

/* ---- JSON access ---- */
static aigw_json_type h_json_type(const aigw_json *j) {
  const cJSON *c = CJ(j);
  if (!c) return AIGW_JSON_INVALID;
  switch (c->type & 0xFF) {
  case cJSON_NULL: return AIGW_JSON_NULL;
  case cJSON_False: return AIGW_JSON_FALSE;
  case cJSON_True: return AIGW_JSON_TRUE;
  case cJSON_Number: return AIGW_JSON_NUMBER;
  case cJSON_String: return AIGW_JSON_STRING;
  case cJSON_Array: return AIGW_JSON_ARRAY;
  case cJSON_Object: return AIGW_JSON_OBJECT;
  default: return AIGW_JSON_INVALID;
  }
}
static const aigw_json *h_json_get(const aigw_json *obj, const char *key) {
  if (!obj || !key || !cJSON_IsObject(CJ(obj))) return NULL;
  return AJ(cJSON_GetObjectItemCaseSensitive(CJ(obj), key));
}
static const aigw_json *h_json_at(const aigw_json *arr, size_t i) {
  if (!arr || !cJSON_IsArray(CJ(arr)) || i > (size_t)0x7fffffff) return NULL;
  return AJ(cJSON_GetArrayItem(CJ(arr), (int)i));
}
static size_t h_json_len(const aigw_json *j) {
  if (!j || !(cJSON_IsArray(CJ(j)) || cJSON_IsObject(CJ(j)))) return 0;
  return (size_t)cJSON_GetArraySize(CJ(j));
}
static const aigw_json *h_json_pointer(const aigw_json *j, const char *ptr) {
  const cJSON *cur = CJ(j);
  if (!cur || !ptr) return NULL;
  if (!*ptr) return j;
  if (*ptr != '/') return NULL;
  char tok[256];
  while (cur && *ptr == '/') {
    ptr++;
    size_t n = 0;
    while (*ptr && *ptr != '/') {
      char ch = *ptr++;
      if (ch == '~') {
        if (*ptr == '0') ch = '~';
        else if (*ptr == '1') ch = '/';
        else return NULL;
        ptr++;
      }
      if (n + 1 >= sizeof tok) return NULL;
      tok[n++] = ch;
    }
    tok[n] = 0;
    if (cJSON_IsArray(cur)) {
      /* RFC 6901 array index: "0" or [1-9][0-9]*, nothing else */
      if (!n || n > 9 || (n > 1 && tok[0] == '0')) return NULL;
      long idx = 0;
      for (size_t k = 0; k < n; k++) {
        if (tok[k] < '0' || tok[k] > '9') return NULL;
        idx = idx * 10 + (tok[k] - '0');
      }
      cur = cJSON_GetArrayItem(cur, (int)idx);
    } else if (cJSON_IsObject(cur)) {
      cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    } else {
      return NULL;
    }
  }
  return AJ(cur);
}
static int h_json_str(const aigw_json *j, aigw_str *out) {
  if (!j || !out || !cJSON_IsString(CJ(j))) return AIGW_E_INVAL;
  *out = (aigw_str){CJ(j)->valuestring, strlen(CJ(j)->valuestring)};
  return AIGW_OK;
}
static int h_json_num(const aigw_json *j, double *out) {
  if (!j || !out || !cJSON_IsNumber(CJ(j))) return AIGW_E_INVAL;
  *out = CJ(j)->valuedouble;
  return AIGW_OK;
}
static int h_json_bool(const aigw_json *j, int *out) {
  if (!j || !out || !cJSON_IsBool(CJ(j))) return AIGW_E_INVAL;
  *out = cJSON_IsTrue(CJ(j));
  return AIGW_OK;
}
static int h_json_key_at(const aigw_json *obj, size_t i, aigw_str *key) {
  if (!obj || !key || !cJSON_IsObject(CJ(obj))) return AIGW_E_INVAL;
  const cJSON *c = CJ(obj)->child;
  while (c && i--) c = c->next;
  if (!c || !c->string) return AIGW_E_NOTFOUND;
  *key = (aigw_str){c->string, strlen(c->string)};
  return AIGW_OK;
}
static int json_put(aigw_json *obj, const char *key, cJSON *v) {
  if (!v) return AIGW_E_NOMEM;
  if (!obj || !key || !cJSON_IsObject(J(obj))) {
    cJSON_Delete(v);
    return AIGW_E_INVAL;
  }
  if (cJSON_GetObjectItemCaseSensitive(J(obj), key)) cJSON_ReplaceItemInObjectCaseSensitive(J(obj), key, v);
  else cJSON_AddItemToObject(J(obj), key, v);
  return AIGW_OK;
}
static int h_json_set_str(aigw_json *obj, const char *key, aigw_str v) {
  if (v.n && (!v.p || memchr(v.p, 0, v.n))) return AIGW_E_INVAL; /* JSON strings here hold no NUL */
  char *tmp = malloc(v.n + 1);
  if (!tmp) return AIGW_E_NOMEM;
  if (v.n) memcpy(tmp, v.p, v.n);
  tmp[v.n] = 0;
  int rc = json_put(obj, key, cJSON_CreateString(tmp));
  free(tmp);
  return rc;
}
static int h_json_set_num(aigw_json *obj, const char *key, double v) { return json_put(obj, key, cJSON_CreateNumber(v)); }
static int h_json_set_bool(aigw_json *obj, const char *key, int v) { return json_put(obj, key, cJSON_CreateBool(v)); }
static int h_json_set_raw(aigw_json *obj, const char *key, aigw_str txt) {
  cJSON *v = cJSON_ParseWithLength(txt.p, txt.n);
  if (!v) return AIGW_E_INVAL;
  return json_put(obj, key, v);
}
static int h_json_remove(aigw_json *obj, const char *key) {
  if (!obj || !key || !cJSON_IsObject(J(obj))) return AIGW_E_INVAL;
  if (!cJSON_GetObjectItemCaseSensitive(J(obj), key)) return AIGW_E_NOTFOUND;
  cJSON_DeleteItemFromObjectCaseSensitive(J(obj), key);
  return AIGW_OK;
}
static aigw_json *h_json_mut(aigw_json *root, const char *ptr) { return (aigw_json *)h_json_pointer(root, ptr); }
static int h_json_dump(aigw_req *r, const aigw_json *j, aigw_str *out) {
  if (!req_rd(r) || !j || !out) return AIGW_E_INVAL;
  char *txt = cJSON_PrintUnformatted(CJ(j));
  if (!txt) return AIGW_E_NOMEM;
  size_t n = strlen(txt);
  char *copy = arena_strndup(&r->pool, txt, n);
  free(txt);
  if (!copy) return AIGW_E_NOMEM;
  *out = (aigw_str){copy, n};
  return AIGW_OK;
}

/* ---- flow control ---- */
static int h_respond(aigw_req *r, int status, aigw_str ctype, aigw_str body) {
  if (!req_ok(r) || status < 100 || status > 599) return AIGW_E_INVAL;
  if (r->head_sent || r->phase >= PH_SENDING) return AIGW_E_STATE;
  char *copy = arena_strndup(&r->pool, body.p ? body.p : "", body.n);
  if (!copy) return AIGW_E_NOMEM;
  if (r->cresp.json) {
    cJSON *j = r->cresp.json;
    r->cresp.json = NULL;
    if (j != r->uresp.json && j != r->creq.json) cJSON_Delete(j);
  }
  r->cresp.json_tried = 0;
  r->cresp.body = copy;
  r->cresp.body_len = body.n;
  r->cresp.body_owned = 0;
  r->cresp.status = status;
  if (ctype.p && ctype.n) hdrs_set(&r->pool, &r->cresp.hdrs, "content-type", 12, ctype.p, ctype.n);
  r->responded = 1;
  return AIGW_OK;
}

static int h_respond_error(aigw_req *r, int status, const char *type, const char *message) {
  if (!req_ok(r) || status < 400 || status > 599) return AIGW_E_INVAL;
  if (r->phase >= PH_SENDING) return AIGW_E_STATE;
  if (r->head_sent) {
    stream_end_error(r, type, message ? message : status_reason(status));
    return AIGW_OK;
  }
  char *txt = err_json(REQ_API(r), status, type, NULL, message ? message : status_reason(status));
  if (!txt) return AIGW_E_NOMEM;
  int rc = h_respond(r, status, AIGW_STR("application/json"), (aigw_str){txt, strlen(txt)});
  free(txt);
  if (!r->error && message) r->error = arena_strndup(&r->pool, message, strlen(message));
  return rc;
}

static int h_resume(aigw_req *r, aigw_status st) {
  if (!req_ok(r)) return AIGW_E_STATE;
  if (r->resume_pending) return AIGW_E_STATE;
  r->resume_pending = 1;
  r->resume_st = st;
  if (!r->in_hook) req_schedule(r); /* from a callback: continue on the next loop turn */
  return AIGW_OK;
}

/* ---- meta ---- */
static int h_meta_set(aigw_req *r, const char *key, aigw_str v) {
  if (!req_ok(r) || !key || !*key || !strncmp(key, "aigw.", 5)) return AIGW_E_INVAL;
  for (meta_kv *m = r->meta; m; m = m->next)
    if (!strcmp(m->key, key)) {
      char *c = arena_strndup(&r->pool, v.p ? v.p : "", v.n);
      if (!c) return AIGW_E_NOMEM;
      m->v = (aigw_str){c, v.n};
      return AIGW_OK;
    }
  meta_kv *m = arena_alloc(&r->pool, sizeof *m);
  if (!m) return AIGW_E_NOMEM;
  m->key = arena_strndup(&r->pool, key, strlen(key));
  char *c = arena_strndup(&r->pool, v.p ? v.p : "", v.n);
  if (!m->key || !c) return AIGW_E_NOMEM;
  m->v = (aigw_str){c, v.n};
  m->next = r->meta;
  r->meta = m;
  return AIGW_OK;
}
/* ---- per-request provider credentials (bring your own key) ---- */
static int h_set_credential(aigw_req *r, aigw_str provider, aigw_str secret) {
  if (!req_ok(r) || !provider.p || !provider.n || provider.n > 200) return AIGW_E_INVAL;
  if (r->phase >= PH_UPSTREAM) return AIGW_E_PHASE; /* the upstream request is made already */
  if (secret.n > 8192) return AIGW_E_INVAL;
  for (size_t i = 0; i < secret.n; i++)
    if ((unsigned char)secret.p[i] < 0x20 || secret.p[i] == 0x7f) return AIGW_E_INVAL; /* header-safe */
  meta_kv *m = NULL;
  for (meta_kv *x = r->creds; x; x = x->next)
    if (strlen(x->key) == provider.n && !memcmp(x->key, provider.p, provider.n)) m = x;
  if (!m) {
    m = arena_alloc(&r->pool, sizeof *m);
    if (!m || !(m->key = arena_strndup(&r->pool, provider.p, provider.n))) return AIGW_E_NOMEM;
    m->next = r->creds;
    r->creds = m;
  } else if (m->v.n) {
    OPENSSL_cleanse((char *)m->v.p, m->v.n);
  }
  char *c = secret.n ? arena_strndup(&r->pool, secret.p, secret.n) : NULL;
  if (secret.n && !c) return AIGW_E_NOMEM;
  m->v = (aigw_str){c ? c : "", secret.n}; /* empty: this provider uses its own key again */
  return AIGW_OK;
}

/* The secret set for the provider serving the current attempt. */
static int h_credential(aigw_req *r, aigw_str *out) {
  if (!req_rd(r) || !out) return AIGW_E_INVAL;
  *out = (aigw_str){NULL, 0};
  if (!r->provider || r->cur_plugin != &r->provider->plugin) return AIGW_E_PHASE; /* adapters only */
  const meta_kv *m = NULL;
  for (const meta_kv *x = r->creds; x && !m; x = x->next)
    if (!strcmp(x->key, r->provider->name)) m = x;
  if (!m || !m->v.n) return AIGW_E_NOTFOUND;
  *out = m->v;
  return AIGW_OK;
}

/* Wipes the request's provider secrets (before its arena goes back to the allocator). */
void req_wipe_credentials(aigw_req *r) {
  for (meta_kv *x = r->creds; x; x = x->next)
    if (x->v.n) OPENSSL_cleanse((char *)x->v.p, x->v.n);
  r->creds = NULL;
}

static int h_meta_get(aigw_req *r, const char *key, aigw_str *v) {
  if (!req_rd(r) || !key || !v) return AIGW_E_INVAL;
  if (!strncmp(key, "aigw.", 5)) {
    const char *k = key + 5;
    if (!strcmp(k, "request_id")) *v = (aigw_str){r->id, strlen(r->id)};
    else if (!strcmp(k, "route")) *v = r->route ? (aigw_str){r->route->name, strlen(r->route->name)} : (aigw_str){"", 0};
    else if (!strcmp(k, "provider")) *v = r->provider ? (aigw_str){r->provider->name, strlen(r->provider->name)} : (aigw_str){"", 0};
    else if (!strcmp(k, "target")) *v = r->target && r->target->name ? (aigw_str){r->target->name, strlen(r->target->name)} : (aigw_str){"", 0};
    else if (!strcmp(k, "target_model")) *v = r->target && r->target->model ? (aigw_str){r->target->model, strlen(r->target->model)} : (aigw_str){"", 0};
    else if (!strcmp(k, "model")) {
      cJSON *j = msg_json(r, &r->creq);
      cJSON *mdl = j ? cJSON_GetObjectItemCaseSensitive(j, "model") : NULL;
      *v = cJSON_IsString(mdl) ? (aigw_str){mdl->valuestring, strlen(mdl->valuestring)} : (aigw_str){"", 0};
    } else return AIGW_E_NOTFOUND;
    return AIGW_OK;
  }
  for (meta_kv *m = r->meta; m; m = m->next)
    if (!strcmp(m->key, key)) {
      *v = m->v;
      return AIGW_OK;
    }
  return AIGW_E_NOTFOUND;
}
static aigw_api h_api(aigw_req *r) { return req_rd(r) && r->route ? r->route->api : AIGW_API_PASSTHROUGH; }
static int h_is_stream(aigw_req *r) { return req_rd(r) && r->is_stream; }

/* ---- provider services ---- */
static int h_set_upstream_url(aigw_req *r, aigw_str url) {
  if (!req_rd(r) || !url.p || url.n < 8) return AIGW_E_INVAL;
  if (r->up_step != 1) return AIGW_E_PHASE;
  if (strncmp(url.p, "http://", 7) && strncmp(url.p, "https://", 8)) return AIGW_E_INVAL;
  char *u = arena_strndup(&r->pool, url.p, url.n);
  if (!u) return AIGW_E_NOMEM;
  r->upstream_url = u;
  return AIGW_OK;
}
static int h_set_usage(aigw_req *r, const aigw_usage *u) {
  if (!req_ok(r) || !u || u->struct_size < offsetof(aigw_usage, reasoning_tokens)) return AIGW_E_INVAL;
  if (u->input_tokens >= 0) r->usage.input_tokens = u->input_tokens;
  if (u->output_tokens >= 0) r->usage.output_tokens = u->output_tokens;
  if (u->cached_tokens >= 0) r->usage.cached_tokens = u->cached_tokens;
  if (u->cache_write_tokens >= 0) r->usage.cache_write_tokens = u->cache_write_tokens;
  if (u->struct_size >= sizeof(aigw_usage) && u->reasoning_tokens >= 0) r->usage.reasoning_tokens = u->reasoning_tokens;
  return AIGW_OK;
}
static int h_provider_reply(aigw_req *r, int status, aigw_str ctype, aigw_str body) {
  if (!req_ok(r) || status < 100 || status > 599) return AIGW_E_INVAL;
  if (r->up_step != 1) return AIGW_E_PHASE;
  char *copy = arena_strndup(&r->pool, body.p ? body.p : "", body.n);
  if (!copy) return AIGW_E_NOMEM;
  r->uresp.body = copy;
  r->uresp.body_len = body.n;
  r->uresp.status = status;
  if (ctype.p && ctype.n) hdrs_set(&r->pool, &r->uresp.hdrs, "content-type", 12, ctype.p, ctype.n);
  r->up_streaming = status >= 200 && status < 300 && ctype.n >= 17 && str_ieq(ctype.p, 17, "text/event-stream", 17);
  r->local_reply = 1;
  return AIGW_OK;
}

/* ---- events ---- */
void event_init(aigw_event *ev, aigw_req *r, const char *name, size_t nl, const char *data, size_t dl) {
  memset(ev, 0, sizeof *ev);
  ev->magic = EVENT_MAGIC;
  ev->r = r;
  ev->name = (aigw_str){name ? name : "", nl};
  ev->data = (aigw_str){data ? data : "", dl};
}
void event_release(aigw_event *ev) {
  if (ev->json) cJSON_Delete(ev->json);
  ev->json = NULL;
  ev->magic = 0;
}
static int ev_ok(aigw_event *ev) { return ev && ev->magic == EVENT_MAGIC; }
static aigw_event_kind h_event_kind(aigw_event *ev) { return ev_ok(ev) ? ev->kind : AIGW_EV_OTHER; }
static int h_event_set_kind(aigw_event *ev, aigw_event_kind k) {
  if (!ev_ok(ev)) return AIGW_E_INVAL;
  ev->kind = k;
  return AIGW_OK;
}
static int h_event_name(aigw_event *ev, aigw_str *out) {
  if (!ev_ok(ev) || !out) return AIGW_E_INVAL;
  *out = ev->name;
  return AIGW_OK;
}
static int h_event_data(aigw_event *ev, aigw_str *out) {
  if (!ev_ok(ev) || !out) return AIGW_E_INVAL;
  if (ev->json && ev->changed) {
    aigw_str s;
    if (h_json_dump(ev->r, AJ(ev->json), &s) == AIGW_OK) {
      ev->data = s;
      ev->changed = 0;
      ev->modified = 1;
    }
  }
  *out = ev->data;
  return AIGW_OK;
}
static aigw_json *h_event_json(aigw_event *ev) {
  if (!ev_ok(ev)) return NULL;
  if (!ev->json && !ev->json_tried) {
    ev->json_tried = 1;
    if (ev->data.n && ev->data.p[0] == '{') ev->json = cJSON_ParseWithLength(ev->data.p, ev->data.n);
  }
  return AJ(ev->json);
}
struct cJSON *event_json(aigw_event *ev) { return (cJSON *)h_event_json(ev); }
static void h_event_changed(aigw_event *ev) {
  if (ev_ok(ev) && ev->json) ev->changed = 1;
}
static int h_event_set_data(aigw_event *ev, aigw_str d) {
  if (!ev_ok(ev)) return AIGW_E_INVAL;
  char *c = arena_strndup(&ev->r->pool, d.p ? d.p : "", d.n);
  if (!c) return AIGW_E_NOMEM;
  if (ev->json) cJSON_Delete(ev->json);
  ev->json = NULL;
  ev->json_tried = 0;
  ev->changed = 0;
  ev->data = (aigw_str){c, d.n};
  ev->modified = 1;
  return AIGW_OK;
}
/* The delta text lives where the client's format puts it: events reach plugins in the client's
 * format (the provider adapter translated them), so the host knows the place. */
static cJSON *delta_node(aigw_event *ev) {
  cJSON *j = (cJSON *)h_event_json(ev);
  if (!j) return NULL;
  if (ev->r->route && ev->r->route->api == AIGW_API_MESSAGES) {
    cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "delta");
    cJSON *t = d ? cJSON_GetObjectItemCaseSensitive(d, "text") : NULL;
    return cJSON_IsString(t) ? t : NULL;
  }
  cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
  cJSON *d = ch ? cJSON_GetObjectItemCaseSensitive(ch, "delta") : NULL;
  cJSON *t = d ? cJSON_GetObjectItemCaseSensitive(d, "content") : NULL;
  return cJSON_IsString(t) ? t : NULL;
}
int event_text_get(aigw_event *ev, aigw_str *out) {
  cJSON *t = delta_node(ev);
  if (!t) return AIGW_E_NOTFOUND;
  *out = (aigw_str){t->valuestring, strlen(t->valuestring)};
  return AIGW_OK;
}
static int h_event_text(aigw_event *ev, aigw_str *out) {
  if (!ev_ok(ev) || !out) return AIGW_E_INVAL;
  return event_text_get(ev, out);
}
static int h_event_set_text(aigw_event *ev, aigw_str text) {
  if (!ev_ok(ev)) return AIGW_E_INVAL;
  cJSON *t = delta_node(ev);
  if (!t) return AIGW_E_NOTFOUND;
  char *copy = malloc(text.n + 1);
  if (!copy) return AIGW_E_NOMEM;
  memcpy(copy, text.p, text.n);
  copy[text.n] = 0;
  cJSON_free(t->valuestring);
  t->valuestring = copy;
  ev->changed = 1;
  return AIGW_OK;
}
static int h_emit_event(aigw_req *r, aigw_str name, aigw_str data) {
  if (!req_ok(r)) return AIGW_E_INVAL;
  if (r->stream_ended || !(r->up_streaming)) return AIGW_E_PHASE;
  if (r->in_event) { /* inside an event hook: goes out right after the current event */
    if (!r->emit_q && !(r->emit_q = evbuffer_new())) return AIGW_E_NOMEM;
    stream_append_sse(r->emit_q, name.p, name.p ? name.n : 0, data.p ? data.p : "", data.n);
    return AIGW_OK;
  }
  stream_emit(r, name.p, name.p ? name.n : 0, data.p ? data.p : "", data.n);
  if (!r->in_hook && !r->in_curl_cb) stream_flush(r);
  return AIGW_OK;
}
static int h_provider_emit(aigw_req *r, aigw_event_kind kind, aigw_str name, aigw_str data) {
  if (!req_ok(r) || (name.n && !name.p) || (data.n && !data.p)) return AIGW_E_INVAL;
  if (!r->provider || r->cur_plugin != &r->provider->plugin || !r->up_streaming) return AIGW_E_PHASE;
  if (r->in_event) return AIGW_E_PHASE; /* a plugin's event hook is running (not the adapter's) */
  if (r->stream_ended) return AIGW_E_STATE;
  if (memchr(name.p ? name.p : "", '\n', name.n) || memchr(name.p ? name.p : "", '\r', name.n)) return AIGW_E_INVAL;
  return stream_pemit_push(r, kind, name, data) < 0 ? AIGW_E_NOMEM : AIGW_OK;
}
static int h_end_stream(aigw_req *r, const char *type, const char *message) {
  if (!req_ok(r)) return AIGW_E_INVAL;
  if (!r->up_streaming || r->stream_ended) return AIGW_E_PHASE;
  stream_end_error(r, type, message ? message : "stream ended by a gateway policy");
  return AIGW_OK;
}

/* ---- logs, metrics, diag ---- */
static int h_log_enabled(aigw_log_level level) { return log_level_enabled((int)level); }
static void h_log(aigw_req *r, aigw_log_level level, const char *fmt, ...) {
  if (!log_level_enabled((int)level)) return;
  char buf[1536];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  const char *pname = r && r->magic == REQ_MAGIC && r->cur_plugin ? r->cur_plugin->name : "plugin";
  if (r && r->magic == REQ_MAGIC) log_msg((int)level, "[%s] request %s: %s", pname, r->id, buf);
  else log_msg((int)level, "[%s] %s", pname, buf);
}
static int h_log_field(aigw_req *r, const char *key, aigw_str json_value) {
  if (!req_rd(r) || !key || !*key || !json_value.p) return AIGW_E_INVAL;
  cJSON *v = cJSON_ParseWithLength(json_value.p, json_value.n);
  if (!v) return AIGW_E_INVAL;
  cJSON_Delete(v);
  meta_kv *f = arena_alloc(&r->pool, sizeof *f);
  if (!f) return AIGW_E_NOMEM;
  f->key = arena_strndup(&r->pool, key, strlen(key));
  char *c = arena_strndup(&r->pool, json_value.p, json_value.n);
  if (!f->key || !c) return AIGW_E_NOMEM;
  f->v = (aigw_str){c, json_value.n};
  f->next = r->log_fields;
  r->log_fields = f;
  return AIGW_OK;
}
static uint32_t h_metric_define(aigw_diag *d, aigw_metric_kind kind, const char *name, const char *help,
                                const char *const *labels) {
  char full[200];
  snprintf(full, sizeof full, "aigw_plugin_%s", name ? name : "");
  met_kind mk = kind == AIGW_METRIC_GAUGE ? MET_GAUGE : kind == AIGW_METRIC_HISTOGRAM ? MET_HISTOGRAM : MET_COUNTER;
  int id = met_define(core_metrics(), mk, full, help ? help : "plugin metric", labels, NULL, 0, 1000);
  if (id >= 0) {
    int nl = 0;
    while (labels && labels[nl] && nl < MET_MAX_LABELS) nl++;
    observe_metric_set_nlabels(id, nl);
  }
  if (id < 0) {
    if (d && d->errs) cfg_errors_add(d->errs, d->prefix ? d->prefix : "", "metric '%s' cannot be defined (bad name, labels, or redefined with another shape)", full);
    return UINT32_MAX;
  }
  return (uint32_t)id;
}
static void h_metric_add(uint32_t id, const aigw_str *label_values, double v) {
  if (id == UINT32_MAX) return;
  const char *vals[MET_MAX_LABELS];
  size_t lens[MET_MAX_LABELS];
  int nl = observe_metric_nlabels(id); /* read only as many values as the metric has labels */
  for (int i = 0; i < MET_MAX_LABELS; i++) {
    int have = i < nl && label_values && label_values[i].p;
    vals[i] = have ? label_values[i].p : "";
    lens[i] = have ? label_values[i].n : 0;
  }
  /* one of the two applies, by the metric's kind; the registry ignores the other */
  met_add_n(core_metrics(), (int)id, vals, lens, v);
  met_observe_n(core_metrics(), (int)id, vals, lens, v);
}
static void h_diag_error(aigw_diag *d, const char *ptr, const char *fmt, ...) {
  if (!d || !d->errs) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char path[1024];
  snprintf(path, sizeof path, "%s%s", d->prefix ? d->prefix : "", ptr ? ptr : "");
  cfg_errors_add(d->errs, path, "%s%s%s", d->plugin ? d->plugin : "", d->plugin ? ": " : "", msg);
  d->nerrors++;
}

static const aigw_json *h_body_member(aigw_req *r, aigw_which which, const char *key, int *st) {
  msg_t *m;
  int dummy;
  if (!st) st = &dummy;
  *st = AIGW_E_INVAL;
  if (!req_rd(r) || !(m = msg_of(r, which)) || !key) return NULL;
  if (m->json || m->dirty) { /* already parsed (or edited): answer from the tree */
    if (!cJSON_IsObject(m->json)) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->json, key);
    *st = v ? AIGW_OK : AIGW_E_NOTFOUND;
    return AJ(v);
  }
  const char *vs;
  size_t vn;
  int rc = jscan_member(m->body ? m->body : "", m->body_len, key, &vs, &vn);
  if (rc < 0) return NULL;
  if (rc == 0) {
    *st = AIGW_E_NOTFOUND;
    return NULL;
  }
  cJSON *v = cJSON_ParseWithLength(vs, vn);
  if (!v) return NULL;
  meta_kv *keep = arena_alloc(&r->pool, sizeof *keep); /* freed with the request */
  if (!keep) {
    cJSON_Delete(v);
    *st = AIGW_E_NOMEM;
    return NULL;
  }
  keep->v.p = (const char *)v;
  keep->next = r->member_trees;
  r->member_trees = keep;
  *st = AIGW_OK;
  return AJ(v);
}

static int h_body_member_raw(aigw_req *r, aigw_which which, const char *key, aigw_str *out) {
  msg_t *m;
  if (!req_rd(r) || !(m = msg_of(r, which)) || !key || !out) return AIGW_E_INVAL;
  if (m->json || m->dirty) return AIGW_E_STATE;
  const char *body = m->body ? m->body : "";
  /* The client's request (read by several plugins, several members each): the first lookup on
   * its bytes indexes every top-level member in one scan, the next ones look them up there. Its
   * bytes change only to new request memory (set_body) or through the JSON tree (E_STATE above),
   * so the pointer and length identify them. Other sides: one scan per lookup. */
  if (which == AIGW_CLIENT_REQUEST && (!m->idx || m->idx_body != body || m->idx_len != m->body_len)) {
    enum { IDX_MAX = 32 };
    jscan_ent *e = m->idx ? m->idx : arena_alloc(&r->pool, IDX_MAX * sizeof *e);
    if (e) {
      size_t cnt = 0;
      int rc = jscan_index(body, m->body_len, e, IDX_MAX, &cnt);
      m->idx = e;
      m->idx_body = body;
      m->idx_len = m->body_len;
      m->idx_n = rc < 0 ? -1 : rc == 0 ? -2 : (int)cnt; /* -2: more members than it holds */
    }
  }
  if (which == AIGW_CLIENT_REQUEST && m->idx && m->idx_body == body && m->idx_len == m->body_len && m->idx_n != -2) {
    if (m->idx_n < 0) return AIGW_E_INVAL;
    size_t kl = strlen(key);
    for (int i = 0; i < m->idx_n; i++) /* the first of duplicate names, as jscan_member and cJSON */
      if (m->idx[i].klen == kl && !memcmp(m->idx[i].key, key, kl)) {
        *out = (aigw_str){m->idx[i].val, m->idx[i].vlen};
        return AIGW_OK;
      }
    return AIGW_E_NOTFOUND;
  }
  const char *vs;
  size_t vn;
  int rc = jscan_member(body, m->body_len, key, &vs, &vn);
  if (rc < 0) return AIGW_E_INVAL;
  if (rc == 0) return AIGW_E_NOTFOUND;
  *out = (aigw_str){vs, vn};
  return AIGW_OK;
}

static void *h_get_api(const char *name) {
  if (name && !strcmp(name, "x_cjson_body")) return (void *)msg_json; /* unstable escape hatch */
  return NULL;
}

/* calls.c provides these */
aigw_call *host_http_call(aigw_req *r, const aigw_http_spec *spec, aigw_done_fn done, void *ud);
aigw_call *host_timer(aigw_req *r, uint32_t ms, aigw_done_fn done, void *ud);
void host_cancel(aigw_call *c);
int host_call_status_code(aigw_call *c);
int host_call_body(aigw_call *c, aigw_str *out);
int host_call_header(aigw_call *c, aigw_str name, aigw_str *out);
int host_call_error(aigw_call *c, aigw_str *out);
int64_t host_call_int(aigw_call *c);
int host_post(aigw_req *r, void (*fn)(aigw_req *, void *), void *ud);
aigw_call *host_store_incr(aigw_req *r, aigw_str key, int64_t by, uint64_t window_ms, aigw_done_fn done, void *ud);
aigw_call *host_store_get(aigw_req *r, aigw_str key, aigw_done_fn done, void *ud);
aigw_call *host_store_set(aigw_req *r, aigw_str key, aigw_str value, uint64_t ttl_ms, aigw_done_fn done, void *ud);

aigw_call *host_store_reserve(aigw_req *r, aigw_str key, int64_t by, int64_t limit, uint64_t window_ms, aigw_done_fn done,
                              void *ud);

static int h_usage(aigw_req *r, aigw_usage *out) {
  if (!req_rd(r) || !out || out->struct_size < offsetof(aigw_usage, input_tokens) + sizeof out->input_tokens)
    return AIGW_E_INVAL;
  uint32_t n = out->struct_size < sizeof r->usage ? out->struct_size : (uint32_t)sizeof r->usage;
  uint32_t keep = out->struct_size;
  memcpy(out, &r->usage, n);
  out->struct_size = keep;
  return AIGW_OK;
}

static int h_price(aigw_req *r, aigw_str model, const aigw_usage *u, double *usd) {
  if (!req_rd(r) || !model.p || !u || !usd || !r->gen) return AIGW_E_INVAL;
  const cat_model *m = catalog_find(r->gen->catalog, model.p, model.n);
  return m && catalog_cost(m, u, usd) == 0 ? AIGW_OK : AIGW_E_NOTFOUND;
}

static const aigw_host g_host = {
    .abi_major = AIGW_ABI_MAJOR,
    .abi_minor = AIGW_ABI_MINOR,
    .struct_size = sizeof(aigw_host),
    .get_api = h_get_api,
    .alloc = h_alloc,
    .free = h_free,
    .req_alloc = h_req_alloc,
    .method = h_method,
    .path = h_path,
    .header = h_header,
    .header_at = h_header_at,
    .set_header = h_set_header,
    .add_header = h_add_header,
    .status = h_status,
    .set_status = h_set_status,
    .body_raw = h_body_raw,
    .body = h_body,
    .body_changed = h_body_changed,
    .set_body = h_set_body,
    .text_count = h_text_count,
    .text_get = h_text_get,
    .text_set = h_text_set,
    .json_type = h_json_type,
    .json_get = h_json_get,
    .json_at = h_json_at,
    .json_len = h_json_len,
    .json_pointer = h_json_pointer,
    .json_str = h_json_str,
    .json_num = h_json_num,
    .json_bool = h_json_bool,
    .json_key_at = h_json_key_at,
    .json_set_str = h_json_set_str,
    .json_set_num = h_json_set_num,
    .json_set_bool = h_json_set_bool,
    .json_set_raw = h_json_set_raw,
    .json_remove = h_json_remove,
    .json_mut = h_json_mut,
    .json_dump = h_json_dump,
    .respond = h_respond,
    .respond_error = h_respond_error,
    .resume = h_resume,
    .meta_set = h_meta_set,
    .meta_get = h_meta_get,
    .api = h_api,
    .is_stream = h_is_stream,
    .set_upstream_url = h_set_upstream_url,
    .set_usage = h_set_usage,
    .provider_reply = h_provider_reply,
    .event_kind = h_event_kind,
    .event_set_kind = h_event_set_kind,
    .event_name = h_event_name,
    .event_data = h_event_data,
    .event_json = h_event_json,
    .event_changed = h_event_changed,
    .event_set_data = h_event_set_data,
    .event_text = h_event_text,
    .event_set_text = h_event_set_text,
    .emit_event = h_emit_event,
    .provider_emit = h_provider_emit,
    .end_stream = h_end_stream,
    .http_call = host_http_call,
    .timer = host_timer,
    .cancel = host_cancel,
    .call_status_code = host_call_status_code,
    .call_body = host_call_body,
    .call_header = host_call_header,
    .call_error = host_call_error,
    .call_int = host_call_int,
    .post = host_post,
    .store_incr = host_store_incr,
    .store_get = host_store_get,
    .store_set = host_store_set,
    .log_enabled = h_log_enabled,
    .log = h_log,
    .log_field = h_log_field,
    .metric_define = h_metric_define,
    .metric_add = h_metric_add,
    .diag_error = h_diag_error,
    .body_member = h_body_member,
    .body_member_raw = h_body_member_raw,
    .usage = h_usage,
    .price = h_price,
    .store_reserve = host_store_reserve,
    .set_credential = h_set_credential,
    .credential = h_credential,
};

const aigw_host *host_table(void) { return &g_host; }
