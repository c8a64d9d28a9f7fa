/* jscan.c - find one top-level member of a JSON object without parsing the rest.
 *
 * The hot path needs two or three fields of a body (the request's "stream" and "model", the
 * answer's "usage"); a full cJSON parse allocates a node per value (~60 mallocs for a small chat
 * answer). This scanner walks the text once without allocating: it skips nested values by
 * tracking strings (with escapes) and bracket depth, checks the structure (balanced brackets,
 * terminated strings, separators, literals' and numbers' characters), and returns where the wanted
 * member's value starts and ends. The value is then parsed on its own when needed. */
#include <string.h>

#include "jscan.h"

typedef struct {
  const char *p, *end;
} cur;

static void ws(cur *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

/* Bytes that end a run of plain string characters: '"', '\\' and the control characters. */
#define S4(x) x, x, x, x
#define S16(x) S4(x), S4(x), S4(x), S4(x)
static const unsigned char str_stop[256] = {
    S16(1), S16(1), /* 0x00-0x1f */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20-0x2f: '"' */
    S16(0), S16(0), /* 0x30-0x4f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50-0x5f: '\\' */
};
#undef S16
#undef S4

/* Skips a string starting at '"'; returns 0 or -1. */
static int skip_string(cur *c) {
  c->p++; /* opening quote */
  while (c->p < c->end) {
    const char *q = c->p;
    const unsigned char *u = (const unsigned char *)q, *ue = (const unsigned char *)c->end;
    while (ue - u >= 4 && !str_stop[u[0]] && !str_stop[u[1]] && !str_stop[u[2]] && !str_stop[u[3]]) u += 4;
    while (u < ue && !str_stop[*u]) u++;
    q = (const char *)u;
    c->p = q;
    if (q >= c->end) return -1;
    if (*q == '"') {
      c->p++;
      return 0;
    }
    if ((unsigned char)*q < 0x20) return -1;
    /* backslash */
    if (q + 1 >= c->end) return -1;
    char e = q[1];
    if (e == 'u') {
      if (q + 6 > c->end) return -1;
      for (int i = 2; i < 6; i++) {
        char h = q[i];
        if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F'))) return -1;
      }
      c->p = q + 6;
    } else if (strchr("\"\\/bfnrt", e) && e) {
      c->p = q + 2;
    } else {
      return -1;
    }
  }
  return -1;
}

static int skip_value(cur *c, int depth);

static int skip_scalar(cur *c) {
  const char *s = c->p;
  size_t left = (size_t)(c->end - s);
  if (*s == 't') {
    if (left < 4 || memcmp(s, "true", 4)) return -1;
    c->p += 4;
    return 0;
  }
  if (*s == 'f') {
    if (left < 5 || memcmp(s, "false", 5)) return -1;
    c->p += 5;
    return 0;
  }
  if (*s == 'n') {
    if (left < 4 || memcmp(s, "null", 4)) return -1;
    c->p += 4;
    return 0;
  }
  /* number: -?digits[.digits][(e|E)[+-]digits] */
  const char *q = s;
  if (q < c->end && *q == '-') q++;
  const char *d = q;
  while (q < c->end && *q >= '0' && *q <= '9') q++;
  if (q == d) return -1;
  if (q < c->end && *q == '.') {
    q++;
    d = q;
    while (q < c->end && *q >= '0' && *q <= '9') q++;
    if (q == d) return -1;
  }
  if (q < c->end && (*q == 'e' || *q == 'E')) {
    q++;
    if (q < c->end && (*q == '+' || *q == '-')) q++;
    d = q;
    while (q < c->end && *q >= '0' && *q <= '9') q++;
    if (q == d) return -1;
  }
  c->p = q;
  return 0;
}

static int skip_container(cur *c, int depth) {
  char close = *c->p == '{' ? '}' : ']';
  int obj = close == '}';
  if (depth > 512) return -1;
  c->p++;
  ws(c);
  if (c->p < c->end && *c->p == close) {
    c->p++;
    return 0;
  }
  for (;;) {
    if (obj) {
      ws(c);
      if (c->p >= c->end || *c->p != '"' || skip_string(c) < 0) return -1;
      ws(c);
      if (c->p >= c->end || *c->p != ':') return -1;
      c->p++;
    }
    if (skip_value(c, depth + 1) < 0) return -1;
    ws(c);
    if (c->p >= c->end) return -1;
    if (*c->p == ',') {
      c->p++;
      continue;
    }
    if (*c->p == close) {
      c->p++;
      return 0;
    }
    return -1;
  }
}

static int skip_value(cur *c, int depth) {
  ws(c);
  if (c->p >= c->end) return -1;
  char ch = *c->p;
  if (ch == '"') return skip_string(c);
  if (ch == '{' || ch == '[') return skip_container(c, depth);
  return skip_scalar(c);
}

/* Walks the JSON object text[0..n), checking its structure, and calls visit for each top-level
 * member in order. 0, or -1 when the text is not a JSON object. */
static int walk(const char *text, size_t n, void (*visit)(void *ud, const jscan_ent *e), void *ud) {
  cur c = {text, text + n};
  ws(&c);
  if (c.p >= c.end || *c.p != '{') return -1;
  c.p++;
  ws(&c);
  if (c.p < c.end && *c.p == '}') {
    c.p++;
    goto tail;
  }
  for (;;) {
    ws(&c);
    if (c.p >= c.end || *c.p != '"') return -1;
    const char *ks = c.p + 1;
    if (skip_string(&c) < 0) return -1;
    const char *ke = c.p - 1;
    ws(&c);
    if (c.p >= c.end || *c.p != ':') return -1;
    c.p++;
    ws(&c);
    const char *vs = c.p;
    if (skip_value(&c, 1) < 0) return -1;
    visit(ud, &(jscan_ent){ks, (size_t)(ke - ks), vs, (size_t)(c.p - vs)});
    ws(&c);
    if (c.p >= c.end) return -1;
    if (*c.p == ',') {
      c.p++;
      continue;
    }
    if (*c.p == '}') {
      c.p++;
      break;
    }
    return -1;
  }
tail:
  ws(&c);
  return c.p == c.end ? 0 : -1; /* trailing garbage: not a JSON object */
}

typedef struct {
  jscan_ent *out;
  size_t max, k;
  int over;
} index_ud;

static void index_visit(void *ud, const jscan_ent *e) {
  index_ud *x = ud;
  if (x->k < x->max) x->out[x->k++] = *e;
  else x->over = 1;
}

int jscan_index(const char *text, size_t n, jscan_ent *out, size_t max, size_t *count) {
  index_ud x = {out, max, 0, 0};
  if (walk(text, n, index_visit, &x) < 0) return -1;
  *count = x.k;
  return x.over ? 0 : 1;
}

typedef struct {
  const char *key;
  size_t klen;
  int found;
  jscan_ent hit;
} member_ud;

/* keys with escapes never match (none of the keys we look up need them); of duplicate names the
 * first wins, as in cJSON's lookup */
static void member_visit(void *ud, const jscan_ent *e) {
  member_ud *x = ud;
  if (!x->found && e->klen == x->klen && !memcmp(e->key, x->key, x->klen)) {
    x->found = 1;
    x->hit = *e;
  }
}

int jscan_member(const char *text, size_t n, const char *key, const char **vstart, size_t *vlen) {
  member_ud x = {key, strlen(key), 0, {0}};
  if (walk(text, n, member_visit, &x) < 0) return -1;
  if (!x.found) return 0;
  if (vstart) *vstart = x.hit.val;
  if (vlen) *vlen = x.hit.vlen;
  return 1;
}
