/* fuzz_json.c - the host's JSON accessors (host_table()->json_*) as plugins use them, on a cJSON
 * tree parsed from the input.
 *
 * Input: four parts split at the first three '\n':
 *   [JSON pointer] \n [key] \n [value] \n [JSON document...]
 * (a missing part is empty). The pointer is resolved with json_pointer and compared with a strict
 * RFC 6901 reference resolver; every node of the tree is checked (type vs. the typed getters,
 * json_len vs. json_at / json_key_at successes, json_get and json_pointer finding each member);
 * on the node the pointer finds, the setters (json_set_str/num/bool/raw, json_remove) run with the
 * key and value, then again with a key and a value borrowed from the tree itself (key_at / json_str
 * results passed straight back, as plugins do); the tree is checked again, printed compactly, and
 * the text must parse back and print the same.
 *
 * Build with -DFUZZ_JSON_STRICT to also abort on (or, for UBSan, report) the known deviations
 * marked "known" below: non-canonical / >= 2^31 array indexes in json_pointer, a NUL inside a
 * json_set_str value, set_raw nesting past cJSON's limit, memcpy from NULL in set_str. */
#include "plugin_loader.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)
#define CJ(x) ((const cJSON *)(x))
#define AJ(x) ((const aigw_json *)(x))

static const aigw_host *H;

/* ---- known deviations from the contract (reported; tolerated unless FUZZ_JSON_STRICT) ---- */
#ifdef FUZZ_JSON_STRICT
static const int lax = 0;
#else
static const int lax = 1;
#endif

/* ---- strict RFC 6901 reference resolver over cJSON ---- */
typedef struct {
  int long_tok;   /* a decoded token longer than 255 bytes (the host's token buffer) */
  int lax_index;  /* an array token that is not a canonical index ("+1", " 1", "-0", "01"...)
                     or one of 2^31 and more */
} ref_flags;

static int canonical_index(const char *t, size_t n, size_t *idx)
{
  if (!n || (n > 1 && t[0] == '0')) return 0;
  size_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (t[i] < '0' || t[i] > '9') return 0;
    if (v > (SIZE_MAX - 9) / 10) return 0; /* too large to be an index of anything */
    v = v * 10 + (size_t)(t[i] - '0');
  }
  *idx = v;
  return 1;
}

static const cJSON *ref_pointer(const cJSON *cur, const char *p, ref_flags *f)
{
  if (!*p) return cur;
  if (*p != '/') return NULL;
  size_t cap = strlen(p) + 1;
  char *tok = malloc(cap);
  CHECK(tok);
  while (cur && *p == '/') {
    p++;
    size_t len = strcspn(p, "/"), n = 0;
    for (size_t i = 0; i < len; i++) {
      char c = p[i];
      if (c == '~') {
        if (i + 1 < len && p[i + 1] == '0') c = '~';
        else if (i + 1 < len && p[i + 1] == '1') c = '/';
        else {
          free(tok);
          return NULL;
        }
        i++;
      }
      tok[n++] = c;
    }
    tok[n] = 0;
    p += len;
    if (n > 255) f->long_tok = 1;
    if (cJSON_IsArray(cur)) {
      size_t idx;
      if (!canonical_index(tok, n, &idx)) {
        f->lax_index = 1;
        cur = NULL;
      } else {
        if (idx > 0x7fffffff) f->lax_index = 1; /* the host's (int) cast wraps it */
        const cJSON *c = cur->child;
        while (c && idx--) c = c->next;
        cur = c;
      }
    } else if (cJSON_IsObject(cur)) {
      cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    } else {
      cur = NULL;
    }
  }
  free(tok);
  return cur;
}

static void check_pointer(const cJSON *root, const char *ptr)
{
  ref_flags f = {0, 0};
  const cJSON *want = ref_pointer(root, ptr, &f);
  const cJSON *got = CJ(H->json_pointer(AJ(root), ptr));
  if (got == want) return;
  /* host limit: a token over 255 bytes fails the lookup */
  if (f.long_tok && !got) return;
  /* known: the host parses array tokens with strtol (leading blanks, '+', "-0" accepted) and casts
   * the long to int (indexes >= 2^31 wrap); see the report in the commit message */
  CHECK(lax && f.lax_index);
}

/* ---- per-node invariants ---- */
typedef struct {
  char *p;
  size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
  if (b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2;
    b->p = realloc(b->p, b->cap);
    CHECK(b->p);
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

static void sb_token(sbuf *b, const char *t)
{
  sb_put(b, "/", 1);
  for (; *t; t++) {
    if (*t == '~') sb_put(b, "~0", 2);
    else if (*t == '/') sb_put(b, "~1", 2);
    else sb_put(b, t, 1);
  }
}

static aigw_json_type want_type(const cJSON *c)
{
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

/* checks node and everything below it; path is node's pointer from root (usable: 1) */
static void walk(const cJSON *root, const cJSON *node, sbuf *path, int usable, int depth)
{
  const aigw_json *j = AJ(node);
  aigw_json_type t = H->json_type(j);
  CHECK(t == want_type(node) && t != AIGW_JSON_INVALID);
  if (usable) CHECK(H->json_pointer(AJ(root), path->p) == j);
  CHECK(H->json_mut((aigw_json *)j, "") == j);

  aigw_str s = {NULL, 0};
  double d = 0;
  int b = -1;
  CHECK((H->json_str(j, &s) == AIGW_OK) == (t == AIGW_JSON_STRING));
  if (t == AIGW_JSON_STRING) CHECK(s.p == node->valuestring && s.n == strlen(node->valuestring));
  CHECK((H->json_num(j, &d) == AIGW_OK) == (t == AIGW_JSON_NUMBER));
  if (t == AIGW_JSON_NUMBER)
    CHECK(memcmp(&d, &node->valuedouble, sizeof d) == 0);
  CHECK((H->json_bool(j, &b) == AIGW_OK) == (t == AIGW_JSON_TRUE || t == AIGW_JSON_FALSE));
  if (t == AIGW_JSON_TRUE || t == AIGW_JSON_FALSE) CHECK(b == (t == AIGW_JSON_TRUE));
  CHECK(H->json_str(j, NULL) == AIGW_E_INVAL && H->json_num(j, NULL) == AIGW_E_INVAL &&
        H->json_bool(j, NULL) == AIGW_E_INVAL);

  size_t len = H->json_len(j);
  int is_arr = t == AIGW_JSON_ARRAY, is_obj = t == AIGW_JSON_OBJECT;
  if (!is_arr && !is_obj) CHECK(len == 0);
  if (!is_obj) {
    aigw_str k;
    CHECK(H->json_key_at(j, 0, &k) == AIGW_E_INVAL);
    CHECK(H->json_get(j, "") == NULL);
  }
  if (!is_arr) CHECK(H->json_at(j, 0) == NULL);
  if (is_arr) {
    CHECK(H->json_at(j, len) == NULL && H->json_at(j, (size_t)1 << 32) == NULL &&
          H->json_at(j, SIZE_MAX) == NULL);
    CHECK(H->json_get(j, "0") == NULL);
  }
  if (is_obj) {
    aigw_str k;
    CHECK(H->json_key_at(j, len, &k) == AIGW_E_NOTFOUND);
    CHECK(H->json_key_at(j, SIZE_MAX, &k) == AIGW_E_NOTFOUND);
    CHECK(H->json_key_at(j, 0, NULL) == AIGW_E_INVAL);
    CHECK(H->json_get(j, NULL) == NULL);
  }

  size_t i = 0, hits = 0;
  for (const cJSON *c = node->child; c; c = c->next, i++) {
    size_t mark = path->n;
    int u = usable && depth < 64;
    if (is_arr) {
      CHECK(H->json_at(j, i) == AJ(c));
      hits++;
      if (u) {
        char num[32];
        int w = snprintf(num, sizeof num, "/%zu", i);
        sb_put(path, num, (size_t)w);
      }
    } else {
      aigw_str k;
      CHECK(H->json_key_at(j, i, &k) == AIGW_OK);
      hits++;
      CHECK(c->string && k.p == c->string && k.n == strlen(c->string));
      const cJSON *first = CJ(H->json_get(j, c->string));
      CHECK(first && !strcmp(first->string, c->string));
      /* json_get finds the first member of that name: c itself, or one before it */
      const cJSON *x = node->child;
      while (x != c && x != first) x = x->next;
      CHECK(x == first);
      if (first != c || strlen(c->string) > 255) u = 0; /* shadowed, or over the host's limit */
      if (u) sb_token(path, c->string);
    }
    walk(root, c, path, u, depth + 1);
    path->n = mark;
    if (path->p) path->p[mark] = 0;
  }
  CHECK(len == i && len == hits);
}

static void walk_all(const cJSON *root)
{
  sbuf path = {0};
  sb_put(&path, "", 0);
  walk(root, root, &path, 1, 0);
  free(path.p);
}

/* ---- setters ---- */
static size_t count_key(const cJSON *obj, const char *key)
{
  size_t n = 0;
  for (const cJSON *c = obj->child; c; c = c->next)
    if (!strcmp(c->string, key)) n++;
  return n;
}

static int same_double(double a, double b)
{
  return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* Runs the setters with key (NUL-terminated; may point into obj's own members) and val (may point
 * into obj too); num and flag for set_num/set_bool. Returns nothing; checks each step. */
static void setters(aigw_json *obj, const char *key, aigw_str val, double num, int flag)
{
  /* key may be a member's own name: the first replace frees it. Keep a copy. */
  char *k = strdup(key);
  CHECK(k);
  const cJSON *o = CJ(obj);
  size_t len0 = H->json_len(obj), dup0 = count_key(o, k);

  /* set_str: copies val; it is a byte string (may contain NUL) */
  size_t vlen = val.n;
  char *vcopy = malloc(vlen + 1);
  CHECK(vcopy);
  if (vlen) memcpy(vcopy, val.p, vlen);
  vcopy[vlen] = 0;
  if (vlen && memchr(vcopy, 0, vlen)) {
    /* a JSON string here cannot hold NUL: refused, nothing changed; go on with the prefix */
    CHECK(H->json_set_str(obj, key, val) == AIGW_E_INVAL);
    CHECK(H->json_len(obj) == len0);
    vlen = strlen(vcopy);
    val = (aigw_str){vcopy, vlen};
  }
  CHECK(H->json_set_str(obj, key, val) == AIGW_OK); /* key/val dangle from here on */
  size_t len1 = H->json_len(obj);
  CHECK(len1 == len0 + (dup0 == 0));
  CHECK(count_key(o, k) == (dup0 ? dup0 : 1));
  const aigw_json *m = H->json_get(obj, k);
  aigw_str s;
  CHECK(m && H->json_type(m) == AIGW_JSON_STRING && H->json_str(m, &s) == AIGW_OK);
  if (s.n != vlen) /* known: a NUL inside the value cuts the stored string (strdup semantics) */
    CHECK(lax && memchr(vcopy, 0, vlen) && s.n == strlen(vcopy));
  CHECK(!memcmp(s.p, vcopy, s.n));

  /* set_raw with the same bytes: OK exactly when they are one JSON value */
  cJSON *expect = cJSON_ParseWithLength(vcopy, vlen);
  int rc = H->json_set_raw(obj, k, (aigw_str){vcopy, vlen});
  CHECK((rc == AIGW_OK) == (expect != NULL));
  CHECK(rc == AIGW_OK || rc == AIGW_E_INVAL);
  m = H->json_get(obj, k);
  CHECK(m && H->json_len(obj) == len1);
  if (expect) {
    CHECK(H->json_type(m) == want_type(expect));
    char *a = cJSON_PrintUnformatted(expect), *b = cJSON_PrintUnformatted(CJ(m));
    CHECK(a && b && !strcmp(a, b));
    free(a);
    free(b);
    cJSON_Delete(expect);
  } else {
    CHECK(H->json_type(m) == AIGW_JSON_STRING); /* unchanged */
  }

  CHECK(H->json_set_num(obj, k, num) == AIGW_OK);
  double d;
  m = H->json_get(obj, k);
  CHECK(m && H->json_num(m, &d) == AIGW_OK && same_double(d, num) && H->json_len(obj) == len1);

  CHECK(H->json_set_bool(obj, k, flag) == AIGW_OK);
  int b;
  m = H->json_get(obj, k);
  CHECK(m && H->json_bool(m, &b) == AIGW_OK && b == (flag != 0) && H->json_len(obj) == len1);

  /* remove: the first member of that name goes; a duplicate behind it becomes visible */
  size_t dups = count_key(o, k);
  CHECK(H->json_remove(obj, k) == AIGW_OK);
  CHECK(H->json_len(obj) == len1 - 1 && count_key(o, k) == dups - 1);
  CHECK((H->json_get(obj, k) == NULL) == (dups == 1));
  if (dups == 1) CHECK(H->json_remove(obj, k) == AIGW_E_NOTFOUND);

  /* put it back so the pointer-found node keeps a member to look at */
  CHECK(H->json_set_str(obj, k, (aigw_str){vcopy, vlen}) == AIGW_OK);
  free(vcopy);
  free(k);
}

static void non_object_setters(aigw_json *j, const char *key, aigw_str val)
{
  CHECK(H->json_set_str(j, key, val) == AIGW_E_INVAL);
  CHECK(H->json_set_num(j, key, 1) == AIGW_E_INVAL);
  CHECK(H->json_set_bool(j, key, 1) == AIGW_E_INVAL);
  int rc = H->json_set_raw(j, key, val);
  CHECK(rc == AIGW_E_INVAL);
  CHECK(H->json_remove(j, key) == AIGW_E_INVAL);
}

static size_t depth_of(const cJSON *c)
{
  size_t d = 0;
  for (const cJSON *x = c->child; x; x = x->next) {
    size_t e = depth_of(x);
    if (e > d) d = e;
  }
  return d + (cJSON_IsArray(c) || cJSON_IsObject(c));
}

/* ---- input ---- */
static const uint8_t *line(const uint8_t **p, size_t *n, size_t *len)
{
  const uint8_t *s = *p, *nl = *n ? memchr(s, '\n', *n) : NULL;
  *len = nl ? (size_t)(nl - s) : *n;
  *p += nl ? *len + 1 : *len;
  *n -= nl ? *len + 1 : *len;
  return s;
}

static char *cstr(const uint8_t *s, size_t n) /* cut at an embedded NUL, like a C caller would */
{
  char *c = malloc(n + 1);
  CHECK(c);
  if (n) memcpy(c, s, n);
  c[n] = 0;
  return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!H) H = host_table();
  const uint8_t *p = data;
  size_t n = size, plen, klen, vlen;
  const uint8_t *ps = line(&p, &n, &plen), *ks = line(&p, &n, &klen), *vs = line(&p, &n, &vlen);
  char *ptr = cstr(ps, plen), *key = cstr(ks, klen);
  /* the value and the document in exact-size buffers: an overread is caught */
  char *val = malloc(vlen ? vlen : 1), *doc = malloc(n ? n : 1);
  CHECK(val && doc);
  if (vlen) memcpy(val, vs, vlen);
  if (n) memcpy(doc, p, n);
  aigw_str v = {val, vlen};
  /* an empty byte string may come as {NULL, 0}; known: set_str then does memcpy(tmp, NULL, 0) */
  if (!lax && !vlen) v.p = NULL;
  double num = 0;
  memcpy(&num, vs, vlen < sizeof num ? vlen : sizeof num);
  int flag = vlen ? (int)(signed char)vs[0] : 0;

  /* NULL handles */
  CHECK(H->json_type(NULL) == AIGW_JSON_INVALID && H->json_len(NULL) == 0);
  CHECK(H->json_pointer(NULL, ptr) == NULL && H->json_get(NULL, key) == NULL &&
        H->json_at(NULL, 0) == NULL);
  CHECK(H->json_set_str(NULL, key, v) == AIGW_E_INVAL && H->json_remove(NULL, key) == AIGW_E_INVAL);
  CHECK(H->json_set_raw(NULL, key, v) == AIGW_E_INVAL);

  cJSON *root = cJSON_ParseWithLength(doc, n);
  if (!root) goto out;
  CHECK(H->json_pointer(AJ(root), NULL) == NULL);
  CHECK(H->json_pointer(AJ(root), "") == AJ(root));
  walk_all(root);

  check_pointer(root, ptr);
  aigw_json *node = H->json_mut((aigw_json *)root, ptr);
  CHECK(node == (aigw_json *)H->json_pointer(AJ(root), ptr));
  if (node) {
    if (H->json_type(node) == AIGW_JSON_OBJECT) {
      CHECK(H->json_set_str(node, NULL, v) == AIGW_E_INVAL);
      CHECK(H->json_set_num(node, NULL, 0) == AIGW_E_INVAL);
      CHECK(H->json_remove(node, NULL) == AIGW_E_INVAL);
      setters(node, key, v, num, flag);
      /* again with a key and a value borrowed from the tree, passed straight back */
      size_t len = H->json_len(node);
      CHECK(len > 0);
      aigw_str k, sv = v;
      CHECK(H->json_key_at(node, vlen % len, &k) == AIGW_OK);
      for (size_t i = 0; i < len; i++) {
        aigw_str kk, s;
        CHECK(H->json_key_at(node, i, &kk) == AIGW_OK);
        if (H->json_str(H->json_get(node, kk.p), &s) == AIGW_OK) {
          sv = s;
          break;
        }
      }
      setters(node, k.p, sv, -num, !flag);
      /* the plugin pattern "copy one member's value over another's" */
      CHECK(H->json_key_at(node, 0, &k) == AIGW_OK);
      const aigw_json *first = H->json_get(node, k.p);
      if (H->json_str(first, &sv) == AIGW_OK) {
        CHECK(H->json_set_str(node, k.p, sv) == AIGW_OK);
        CHECK(H->json_key_at(node, 0, &k) == AIGW_OK);
        int rc = H->json_set_raw(node, k.p, (aigw_str){k.p, k.n}); /* the name as JSON text */
        CHECK(rc == AIGW_OK || rc == AIGW_E_INVAL);
      }
    } else {
      non_object_setters(node, key, v);
    }
    walk_all(root);
    check_pointer(root, ptr);
  }

  /* compact print, parse back, print again: the same text. Known: set_raw can nest a value
   * below an existing one past cJSON's nesting limit, and then the text does not parse back. */
  if (lax && depth_of(root) > CJSON_NESTING_LIMIT) {
    cJSON_Delete(root);
    goto out;
  }
  char *txt = cJSON_PrintUnformatted(root);
  CHECK(txt);
  size_t tn = strlen(txt);
  char *exact = malloc(tn ? tn : 1);
  CHECK(exact);
  memcpy(exact, txt, tn);
  cJSON *again = cJSON_ParseWithLength(exact, tn);
  CHECK(again);
  char *txt2 = cJSON_PrintUnformatted(again);
  CHECK(txt2 && !strcmp(txt, txt2));
  walk_all(again);
  check_pointer(again, ptr);
  free(txt2);
  cJSON_Delete(again);
  free(exact);
  free(txt);
  cJSON_Delete(root);
out:
  free(ptr);
  free(key);
  free(val);
  free(doc);
  return 0;
}
