/* lsandbox.c - sandboxed Lua 5.4 states with memory and instruction budgets, and a JSON codec.
 * See lsandbox.h for the contract. No global mutable state: the keys below are addresses of
 * constants, used only as unique registry keys. */
#include "lsandbox.h"

#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ARRAY_MT_KEY = 'a'; /* registry[&ARRAY_MT_KEY] = the JSON array metatable */

/* ---- memory budget --------------------------------------------------------------------------
 * lua_Alloc: counts the bytes of every block; growth past mem_limit fails, which Lua turns into a
 * memory error (after one emergency full collection). A shrink never fails (Lua relies on it). */
static void *lsb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lsb_state *s = ud;
  size_t old = ptr ? osize : 0; /* with ptr == NULL, osize is a type tag, not a size */
  if (nsize == 0) {
    free(ptr);
    s->mem_used -= old;
    return NULL;
  }
  if (nsize > old) {
    size_t grow = nsize - old;
    if (grow > s->mem_limit || s->mem_used > s->mem_limit - grow) {
      s->mem_hit = 1;
      return NULL;
    }
  }
  void *p = realloc(ptr, nsize);
  if (!p) return nsize <= old ? ptr : NULL;
  s->mem_used = s->mem_used - old + nsize;
  return p;
}

/* ---- instruction budget ---------------------------------------------------------------------
 * Fires every LSB_HOOK_STEP instructions in any thread of the state. Once the invocation's budget
 * is spent it raises an error, and re-arms itself to fire on every instruction of that thread, so
 * a script that catches the error with pcall fails again at its next instruction. */
static void count_hook(lua_State *L, lua_Debug *ar) {
  lsb_state *s = lsb_of(L);
  if (!s->ins_hit) {
    s->ins_left -= LSB_HOOK_STEP;
    if (s->ins_left > 0) return;
    s->ins_hit = 1;
  }
  lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
  lua_getinfo(L, "Sl", ar);
  lua_pushfstring(L, "%s:%d: instruction budget exceeded (%I instructions)", ar->short_src, ar->currentline,
                  (lua_Integer)s->ins_max);
  lua_error(L);
}

void lsb_budget_reset(lsb_state *s) {
  s->ins_left = s->ins_max;
  s->ins_hit = 0;
  s->mem_hit = 0;
}

/* ---- the sandbox ----------------------------------------------------------------------------- */

/* load(chunk [, chunkname [, mode [, env]]]): always text mode, whatever mode says. */
static int sb_load(lua_State *L) {
  int n = lua_gettop(L);
  if (lua_type(L, 1) == LUA_TSTRING) {
    size_t len;
    const char *c = lua_tolstring(L, 1, &len);
    if (len > 0 && c[0] == LUA_SIGNATURE[0]) {
      luaL_pushfail(L);
      lua_pushliteral(L, "binary chunks are not allowed in the sandbox");
      return 2;
    }
  }
  lua_settop(L, 4);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushliteral(L, "t");
  int nargs = 3;
  if (n >= 4) { /* an explicit env, even nil */
    lua_pushvalue(L, 4);
    nargs = 4;
  }
  lua_call(L, nargs, LUA_MULTRET);
  return lua_gettop(L) - 4;
}

/* setmetatable(t, mt): refuses metatables with __gc (finalizers would run script outside any
 * budgeted invocation, e.g. while the state is closed). */
static int sb_setmetatable(lua_State *L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    int t = lua_rawget(L, 2);
    lua_pop(L, 1);
    if (t != LUA_TNIL) return luaL_error(L, "__gc metamethods are not allowed in the sandbox");
  }
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 2, 1);
  return 1;
}

/* collectgarbage("count") only: the other options could stop or tune the collector. */
static int sb_collectgarbage(lua_State *L) {
  const char *opt = luaL_optstring(L, 1, "collect");
  if (strcmp(opt, "count") != 0) return luaL_error(L, "collectgarbage('%s') is not allowed in the sandbox", opt);
  int k = lua_gc(L, LUA_GCCOUNT), b = lua_gc(L, LUA_GCCOUNTB);
  lua_pushnumber(L, (lua_Number)k + ((lua_Number)b / 1024));
  return 1;
}

static void replace_with_closure(lua_State *L, const char *name, lua_CFunction fn) {
  lua_getglobal(L, name); /* the original becomes the upvalue */
  lua_pushcclosure(L, fn, 1);
  lua_setglobal(L, name);
}

static int open_sandbox(lua_State *L) {
  static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},      {LUA_STRLIBNAME, luaopen_string},
                                  {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
                                  {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL}};
  for (const luaL_Reg *l = libs; l->name; l++) {
    luaL_requiref(L, l->name, l->func, 1);
    lua_pop(L, 1);
  }
  lua_settop(L, 0);
  luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0); /* the full os table: index 1, not in _G */

  static const char *const drop[] = {"dofile", "loadfile", "require", "print", "warn", NULL};
  for (int i = 0; drop[i]; i++) {
    lua_pushnil(L);
    lua_setglobal(L, drop[i]);
  }
  replace_with_closure(L, "load", sb_load);
  replace_with_closure(L, "setmetatable", sb_setmetatable);
  lua_pushcfunction(L, sb_collectgarbage);
  lua_setglobal(L, "collectgarbage");

  lua_getglobal(L, LUA_STRLIBNAME); /* string.dump would give bytecode */
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);

  static const char *const os_keep[] = {"time", "clock", "date", "difftime", NULL};
  lua_createtable(L, 0, 4);
  for (int i = 0; os_keep[i]; i++) {
    lua_getfield(L, 1, os_keep[i]);
    lua_setfield(L, -2, os_keep[i]);
  }
  lua_setglobal(L, LUA_OSLIBNAME);

  lua_createtable(L, 0, 1); /* the JSON array metatable */
  lua_pushliteral(L, "json.array");
  lua_setfield(L, -2, "__name");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ARRAY_MT_KEY);
  return 0;
}

lsb_state *lsb_new(size_t mem_limit, int64_t max_instructions) {
  lsb_state *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->mem_limit = mem_limit;
  s->ins_max = max_instructions;
  s->ins_left = max_instructions;
  lua_State *L = lua_newstate(lsb_alloc, s);
  if (!L) {
    free(s);
    return NULL;
  }
  s->L = L;
  *(lsb_state **)lua_getextraspace(L) = s;
  lua_pushcfunction(L, open_sandbox);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lua_close(L);
    free(s);
    return NULL;
  }
  lua_sethook(L, count_hook, LUA_MASKCOUNT, LSB_HOOK_STEP);
  return s;
}

void lsb_free(lsb_state *s) {
  if (!s) return;
  if (s->L) lua_close(s->L);
  free(s);
}

/* ---- loading and errors ---------------------------------------------------------------------- */

int lsb_compile(lsb_state *s, const char *src, size_t n, const char *chunkname, char *err, size_t errlen) {
  lsb_budget_reset(s);
  int rc = luaL_loadbufferx(s->L, src, n, chunkname, "t");
  if (rc != LUA_OK) {
    const char *m = lua_tostring(s->L, -1);
    snprintf(err, errlen, "%s", rc == LUA_ERRMEM ? "memory budget exceeded while compiling" : m ? m : "cannot load");
    lua_pop(s->L, 1);
    return -1;
  }
  return 0; /* the compiled function stays on the stack */
}

int lsb_load_run(lsb_state *s, const char *src, size_t n, const char *chunkname, char *err, size_t errlen) {
  lua_State *L = s->L;
  int top = lua_gettop(L);
  if (lsb_compile(s, src, n, chunkname, err, errlen) != 0) return -1;
  if (!lua_checkstack(L, 4)) {
    lua_settop(L, top);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  lua_State *co = lua_newthread(L); /* run in a coroutine: a failed one keeps its stack for lsb_error_text */
  lua_rotate(L, -2, 1);             /* thread below the function */
  lua_xmove(L, co, 1);
  int nres = 0;
  lsb_budget_reset(s);
  int rc = lua_resume(co, L, 0, &nres);
  int ret = 0;
  if (rc == LUA_YIELD) {
    snprintf(err, errlen, "%s: the top level of a script cannot wait (aigw.http, aigw.sleep and aigw.store "
                          "only work inside hooks)", chunkname[0] == '=' || chunkname[0] == '@' ? chunkname + 1 : chunkname);
    ret = -1;
  } else if (rc != LUA_OK) {
    const char *kind;
    lsb_error_text(s, co, rc, err, errlen, &kind, NULL, 0);
    ret = -1;
  }
  lua_settop(L, top); /* drops the thread; the GC frees it */
  return ret;
}

void lsb_error_text(lsb_state *s, lua_State *co, int status, char *out, size_t outlen, const char **kind,
                    char *where, size_t wherelen) {
  char pos[128] = "";
  lua_Debug ar;
  for (int lvl = 0; lua_getstack(co, lvl, &ar); lvl++) {
    if (!lua_getinfo(co, "Sl", &ar)) break;
    if (ar.currentline > 0) {
      snprintf(pos, sizeof pos, "%s:%d", ar.short_src, ar.currentline);
      break;
    }
  }
  if (where && wherelen) snprintf(where, wherelen, "%s", pos);

  if (s->ins_hit) *kind = "instruction budget exceeded";
  else if (status == LUA_ERRMEM || s->mem_hit) *kind = "memory budget exceeded";
  else *kind = "runtime error";

  char tmp[64];
  const char *msg = NULL;
  if (lua_gettop(co) > 0 && lua_type(co, -1) == LUA_TSTRING) msg = lua_tostring(co, -1);
  if (status == LUA_ERRMEM || (msg && s->mem_hit && strcmp(msg, "not enough memory") == 0)) {
    snprintf(tmp, sizeof tmp, "memory budget exceeded (%zu KiB)", s->mem_limit / 1024);
    msg = tmp;
  } else if (!msg) {
    snprintf(tmp, sizeof tmp, "(error object is a %s value)",
             lua_gettop(co) > 0 ? luaL_typename(co, -1) : "missing");
    msg = tmp;
  }
  /* messages from luaL_error / runtime errors carry "src:line:" already */
  size_t pl = strcspn(pos, ":");
  int has_pos = pos[0] && strncmp(msg, pos, pl) == 0 && msg[pl] == ':';
  if (has_pos || !pos[0]) snprintf(out, outlen, "%s", msg);
  else snprintf(out, outlen, "%s: %s", pos, msg);
}

/* ---- JSON ------------------------------------------------------------------------------------ */

void lsb_push_null(lua_State *L) { lua_pushlightuserdata(L, NULL); }
int lsb_is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}
void lsb_push_array_mt(lua_State *L) { lua_rawgetp(L, LUA_REGISTRYINDEX, &ARRAY_MT_KEY); }

typedef struct jd {
  lua_State *L;
  const char *s, *p, *e;
  int depth;
  char *err;
  size_t errlen;
} jd;

static int jd_fail(jd *d, const char *what) {
  snprintf(d->err, d->errlen, "invalid JSON at byte %zu: %s", (size_t)(d->p - d->s), what);
  return 0;
}
static void jd_ws(jd *d) {
  while (d->p < d->e && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r')) d->p++;
}
static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
static int jd_hex4(jd *d, unsigned *out) {
  if (d->e - d->p < 4) return 0;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval((unsigned char)d->p[i]);
    if (h < 0) return 0;
    v = v * 16 + (unsigned)h;
  }
  d->p += 4;
  *out = v;
  return 1;
}
static size_t utf8_put(char *o, unsigned cp) {
  if (cp < 0x80) return o[0] = (char)cp, 1;
  if (cp < 0x800) return o[0] = (char)(0xC0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* d->p at the opening quote; pushes the string. */
static int jd_string(jd *d) {
  const char *start = ++d->p;
  while (d->p < d->e && *d->p != '"' && *d->p != '\\') {
    if ((unsigned char)*d->p < 0x20) return jd_fail(d, "control character in a string");
    d->p++;
  }
  if (d->p >= d->e) return jd_fail(d, "unterminated string");
  if (*d->p == '"') { /* no escapes: one copy */
    lua_pushlstring(d->L, start, (size_t)(d->p - start));
    d->p++;
    return 1;
  }
  luaL_Buffer b; /* nothing else touches the stack until luaL_pushresult */
  luaL_buffinit(d->L, &b);
  luaL_addlstring(&b, start, (size_t)(d->p - start));
  while (d->p < d->e && *d->p != '"') {
    unsigned char c = (unsigned char)*d->p;
    if (c < 0x20) return jd_fail(d, "control character in a string");
    if (c != '\\') {
      luaL_addchar(&b, (char)c);
      d->p++;
      continue;
    }
    if (++d->p >= d->e) break;
    char esc = *d->p++;
    switch (esc) {
    case '"': luaL_addchar(&b, '"'); break;
    case '\\': luaL_addchar(&b, '\\'); break;
    case '/': luaL_addchar(&b, '/'); break;
    case 'b': luaL_addchar(&b, '\b'); break;
    case 'f': luaL_addchar(&b, '\f'); break;
    case 'n': luaL_addchar(&b, '\n'); break;
    case 'r': luaL_addchar(&b, '\r'); break;
    case 't': luaL_addchar(&b, '\t'); break;
    case 'u': {
      unsigned cp, lo;
      if (!jd_hex4(d, &cp)) return jd_fail(d, "bad \\u escape");
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (d->e - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u') {
          d->p += 2;
          if (!jd_hex4(d, &lo) || lo < 0xDC00 || lo > 0xDFFF) return jd_fail(d, "bad surrogate pair");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else {
          cp = 0xFFFD;
        }
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        cp = 0xFFFD;
      }
      char u[4];
      luaL_addlstring(&b, u, utf8_put(u, cp));
      break;
    }
    default: return jd_fail(d, "bad escape");
    }
  }
  if (d->p >= d->e) return jd_fail(d, "unterminated string");
  d->p++;
  luaL_pushresult(&b);
  return 1;
}

static int jd_number(jd *d) {
  const char *st = d->p;
  int is_float = 0;
  if (d->p < d->e && *d->p == '-') d->p++;
  if (d->p >= d->e || *d->p < '0' || *d->p > '9') return jd_fail(d, "bad number");
  if (*d->p == '0') d->p++;
  else
    while (d->p < d->e && *d->p >= '0' && *d->p <= '9') d->p++;
  if (d->p < d->e && *d->p == '.') {
    is_float = 1;
    d->p++;
    if (d->p >= d->e || *d->p < '0' || *d->p > '9') return jd_fail(d, "bad number");
    while (d->p < d->e && *d->p >= '0' && *d->p <= '9') d->p++;
  }
  if (d->p < d->e && (*d->p == 'e' || *d->p == 'E')) {
    is_float = 1;
    d->p++;
    if (d->p < d->e && (*d->p == '+' || *d->p == '-')) d->p++;
    if (d->p >= d->e || *d->p < '0' || *d->p > '9') return jd_fail(d, "bad number");
    while (d->p < d->e && *d->p >= '0' && *d->p <= '9') d->p++;
  }
  size_t len = (size_t)(d->p - st);
  if (!is_float && len <= 18) {
    const char *q = st;
    int neg = *q == '-';
    if (neg) q++;
    lua_Integer v = 0;
    for (; q < d->p; q++) v = v * 10 + (*q - '0');
    lua_pushinteger(d->L, neg ? -v : v);
    return 1;
  }
  char buf[400];
  if (len >= sizeof buf) return jd_fail(d, "number too long");
  memcpy(buf, st, len);
  buf[len] = 0;
  lua_pushnumber(d->L, (lua_Number)strtod(buf, NULL));
  return 1;
}

static int jd_value(jd *d) {
  jd_ws(d);
  if (d->p >= d->e) return jd_fail(d, "unexpected end");
  char c = *d->p;
  if (c == '"') return jd_string(d);
  if (c == '-' || (c >= '0' && c <= '9')) return jd_number(d);
  if (c == '{' || c == '[') {
    if (++d->depth > LSB_JSON_DEPTH) return jd_fail(d, "nesting too deep");
    if (!lua_checkstack(d->L, 4)) return jd_fail(d, "nesting too deep");
    d->p++;
    lua_newtable(d->L);
    if (c == '[') {
      lsb_push_array_mt(d->L);
      lua_setmetatable(d->L, -2);
      jd_ws(d);
      if (d->p < d->e && *d->p == ']') {
        d->p++;
        d->depth--;
        return 1;
      }
      for (lua_Integer i = 1;; i++) {
        if (!jd_value(d)) return 0;
        lua_rawseti(d->L, -2, i);
        jd_ws(d);
        if (d->p < d->e && *d->p == ',') {
          d->p++;
          continue;
        }
        if (d->p < d->e && *d->p == ']') break;
        return jd_fail(d, "expected ',' or ']'");
      }
    } else {
      jd_ws(d);
      if (d->p < d->e && *d->p == '}') {
        d->p++;
        d->depth--;
        return 1;
      }
      for (;;) {
        jd_ws(d);
        if (d->p >= d->e || *d->p != '"') return jd_fail(d, "expected a member name");
        if (!jd_string(d)) return 0;
        jd_ws(d);
        if (d->p >= d->e || *d->p != ':') return jd_fail(d, "expected ':'");
        d->p++;
        if (!jd_value(d)) return 0;
        lua_rawset(d->L, -3);
        jd_ws(d);
        if (d->p < d->e && *d->p == ',') {
          d->p++;
          continue;
        }
        if (d->p < d->e && *d->p == '}') break;
        return jd_fail(d, "expected ',' or '}'");
      }
    }
    d->p++;
    d->depth--;
    return 1;
  }
  if (d->e - d->p >= 4 && memcmp(d->p, "true", 4) == 0) return d->p += 4, lua_pushboolean(d->L, 1), 1;
  if (d->e - d->p >= 5 && memcmp(d->p, "false", 5) == 0) return d->p += 5, lua_pushboolean(d->L, 0), 1;
  if (d->e - d->p >= 4 && memcmp(d->p, "null", 4) == 0) return d->p += 4, lsb_push_null(d->L), 1;
  return jd_fail(d, "unexpected character");
}

int lsb_json_decode(lua_State *L, const char *p, size_t n, char *err, size_t errlen) {
  int top = lua_gettop(L);
  jd d = {L, p, p, p + n, 0, err, errlen};
  if (!jd_value(&d)) {
    lua_settop(L, top);
    return 0;
  }
  jd_ws(&d);
  if (d.p != d.e) {
    jd_fail(&d, "trailing characters");
    lua_settop(L, top);
    return 0;
  }
  return 1;
}

/* Encoder: the output grows in a Lua userdata at a fixed stack slot, so a Lua error (a value that
 * cannot be encoded, memory) leaves nothing to free. */
typedef struct je {
  lua_State *L;
  int slot;
  char *p;
  size_t n, cap;
} je;

static void je_need(je *e, size_t more) {
  if (e->n + more <= e->cap) return;
  size_t cap = e->cap ? e->cap : 256;
  while (cap < e->n + more) cap *= 2;
  char *np = lua_newuserdatauv(e->L, cap, 0);
  if (e->n) memcpy(np, e->p, e->n);
  lua_replace(e->L, e->slot);
  e->p = np;
  e->cap = cap;
}
static void je_add(je *e, const char *s, size_t n) {
  je_need(e, n);
  memcpy(e->p + e->n, s, n);
  e->n += n;
}
static void je_str(je *e, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  je_need(e, n + 2);
  e->p[e->n++] = '"';
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\') run++;
    if (run > i) je_add(e, s + i, run - i);
    if (run >= n) break;
    unsigned char c = (unsigned char)s[run];
    char esc[6] = {'\\', 0, 0, 0, 0, 0};
    size_t el = 2;
    switch (c) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    default:
      esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
      el = 6;
    }
    je_add(e, esc, el);
    i = run + 1;
  }
  je_add(e, "\"", 1);
}
static void je_num(je *e, lua_State *L, int idx) {
  char buf[64];
  int len;
  if (lua_isinteger(L, idx)) { /* by hand: snprintf costs ~1k instructions */
    lua_Integer v = lua_tointeger(L, idx);
    lua_Unsigned u = v < 0 ? 0u - (lua_Unsigned)v : (lua_Unsigned)v;
    char *p = buf + sizeof buf;
    do {
      *--p = (char)('0' + u % 10);
      u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    je_add(e, p, (size_t)(buf + sizeof buf - p));
    return;
  } else {
    double v = (double)lua_tonumber(L, idx);
    if (isnan(v) || isinf(v)) luaL_error(L, "cannot encode %s as JSON", isnan(v) ? "NaN" : "infinity");
    len = snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v) len = snprintf(buf, sizeof buf, "%.17g", v);
  }
  je_add(e, buf, (size_t)len);
}

static void je_value(je *e, int idx, int depth);

/* 1 when the table at idx is a JSON array: the array metatable, or keys exactly 1..n (n > 0). */
static int je_is_array(lua_State *L, int idx, lua_Integer *len) {
  if (lua_getmetatable(L, idx)) {
    lsb_push_array_mt(L);
    int is = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (is) {
      *len = (lua_Integer)lua_rawlen(L, idx);
      return 1;
    }
  }
  lua_Integer count = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
      lua_pop(L, 1);
      return 0;
    }
    lua_Integer k = lua_tointeger(L, -1);
    if (k > max) max = k;
    count++;
  }
  *len = count;
  return count > 0 && max == count;
}

static void je_table(je *e, int idx, int depth) {
  lua_State *L = e->L;
  if (depth > LSB_JSON_DEPTH) luaL_error(L, "cannot encode as JSON: nesting too deep (or a cycle)");
  luaL_checkstack(L, 6, "JSON nesting");
  lua_Integer len;
  if (je_is_array(L, idx, &len)) {
    je_add(e, "[", 1);
    for (lua_Integer i = 1; i <= len; i++) {
      if (i > 1) je_add(e, ",", 1);
      lua_rawgeti(L, idx, i);
      je_value(e, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
    }
    je_add(e, "]", 1);
    return;
  }
  je_add(e, "{", 1);
  int first = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (!first) je_add(e, ",", 1);
    first = 0;
    int kt = lua_type(L, -2);
    if (kt == LUA_TSTRING) {
      size_t kl;
      const char *k = lua_tolstring(L, -2, &kl);
      je_str(e, k, kl);
    } else if (kt == LUA_TNUMBER) {
      je_add(e, "\"", 1);
      je_num(e, L, lua_gettop(L) - 1);
      je_add(e, "\"", 1);
    } else {
      luaL_error(L, "cannot encode a table key of type %s as JSON", lua_typename(L, kt));
    }
    je_add(e, ":", 1);
    je_value(e, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  je_add(e, "}", 1);
}

static void je_value(je *e, int idx, int depth) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: je_add(e, "null", 4); break;
  case LUA_TBOOLEAN: lua_toboolean(L, idx) ? je_add(e, "true", 4) : je_add(e, "false", 5); break;
  case LUA_TNUMBER: je_num(e, L, idx); break;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    je_str(e, s, n);
    break;
  }
  case LUA_TTABLE: je_table(e, idx, depth); break;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) {
      je_add(e, "null", 4);
      break;
    }
    /* fall through */
  default: luaL_error(L, "cannot encode a %s value as JSON", luaL_typename(L, idx));
  }
}

void lsb_json_encode(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L); /* the buffer's slot */
  je e = {L, lua_gettop(L), NULL, 0, 0};
  je_need(&e, 256);
  je_value(&e, idx, 0);
  lua_pushlstring(L, e.p, e.n);
  lua_remove(L, e.slot);
}

int lsb_l_json_encode(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  lsb_json_encode(L, 1);
  return 1;
}

int lsb_l_json_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char err[128];
  if (!lsb_json_decode(L, s, n, err, sizeof err)) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  return 1;
}
