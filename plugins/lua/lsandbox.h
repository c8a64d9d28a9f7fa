/* lsandbox.h - the host-independent half of the lua plugin: a sandboxed Lua 5.4 state with a
 * memory budget (custom allocator) and an instruction budget (count hook), a JSON codec between
 * JSON text and Lua values, and error positions ("script:line: message").
 *
 * Nothing here knows about aigw_host: tests/unit/test_lua.c links this file on its own.
 *
 * Ownership: an lsb_state is created by lsb_new and freed by lsb_free (which closes the Lua state;
 * no script runs then: __gc metamethods are refused by the sandbox's setmetatable). The lua_State
 * inside belongs to the lsb_state. One lsb_state is used by one thread at a time (the caller's
 * rule; nothing here locks). */
#ifndef AIGW_LSANDBOX_H
#define AIGW_LSANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>

/* The instruction-count hook fires every LSB_HOOK_STEP VM instructions (budgets are rounded to it). */
#define LSB_HOOK_STEP 1000

typedef struct lsb_state {
  lua_State *L;       /* owned; the main thread; lua_getextraspace(L) holds this lsb_state* */
  size_t mem_used;    /* bytes currently allocated by L (the allocator's count) */
  size_t mem_limit;   /* allocation beyond this fails (a Lua memory error) */
  int64_t ins_left;   /* instructions left in the current invocation (the count hook decrements) */
  int64_t ins_max;    /* the per-invocation budget, for messages */
  int ins_hit;        /* the instruction budget ran out in the current invocation */
  int mem_hit;        /* an allocation was refused by the memory budget since the last reset */
  void *user;         /* the embedder's pointer (the plugin's per-worker state); not owned */
} lsb_state;

/* A new sandboxed state: base library without dofile/loadfile/require/collectgarbage(except
 * "count"), load restricted to text chunks, setmetatable refusing __gc; string (no dump), table,
 * math, utf8, os.time/clock/date/difftime only; no io, package, debug, coroutine. The count hook
 * is armed on the main thread (threads created from it inherit it). The embedder adds its own
 * API (the plugin's `aigw` table) on top. Returns NULL when out of memory. */
lsb_state *lsb_new(size_t mem_limit, int64_t max_instructions);
void lsb_free(lsb_state *s);

/* The lsb_state of any thread of s->L (coroutines share the main thread's extra space). */
static inline lsb_state *lsb_of(lua_State *L) { return *(lsb_state **)lua_getextraspace(L); }

/* Starts a new invocation budget (instructions) and clears the hit flags. */
void lsb_budget_reset(lsb_state *s);

/* Compiles text-only source src (n bytes) named chunkname ("=name": shown verbatim) and runs its
 * top level under the budgets. Returns 0, or -1 with "name:line: message" in err. */
int lsb_load_run(lsb_state *s, const char *src, size_t n, const char *chunkname, char *err, size_t errlen);

/* Only compiles (syntax check); no state needed beyond s. Same return convention. */
int lsb_compile(lsb_state *s, const char *src, size_t n, const char *chunkname, char *err, size_t errlen);

/* After lua_resume/lua_pcall on co returned an error status (error value on co's top): writes
 * "script:line: message" into out, the position taken from the message when it has one, else from
 * the innermost Lua frame still on co's stack (the stack of a coroutine that failed is kept). kind
 * gets a short classification: "instruction budget exceeded", "memory budget exceeded" or
 * "runtime error". Does not pop the error value. */
void lsb_error_text(lsb_state *s, lua_State *co, int status, char *out, size_t outlen, const char **kind,
                    char *where, size_t wherelen);

/* ---- JSON ----
 * null is aigw.null (a light userdata NULL: lsb_push_null); arrays decode to tables carrying the
 * array metatable (so [] stays an array when encoded again); integers that fit decode to Lua
 * integers. Encoding: a table is an array when it has the array metatable, or when its keys are
 * exactly 1..#t (non-empty); otherwise an object whose keys must be strings (numbers are written as
 * their decimal text). NaN/inf, functions, cycles / nesting deeper than LSB_JSON_DEPTH are errors. */
#define LSB_JSON_DEPTH 100
void lsb_push_null(lua_State *L);
int lsb_is_null(lua_State *L, int idx);
void lsb_push_array_mt(lua_State *L); /* pushes the shared array metatable */
/* Decodes n bytes onto the stack. Returns 1 (one value pushed), or 0 with nothing pushed and a
 * message in err. Raises Lua errors only for memory. Call from inside a Lua C function. */
int lsb_json_decode(lua_State *L, const char *p, size_t n, char *err, size_t errlen);
/* Encodes the value at idx and pushes the JSON text as a Lua string (the buffer is a Lua
 * userdata, so a Lua error on the way leaks nothing). Raises a Lua error for unencodable values. */
void lsb_json_encode(lua_State *L, int idx);
/* Lua C functions: json.encode(v) -> string, json.decode(s) -> value | nil, err */
int lsb_l_json_encode(lua_State *L);
int lsb_l_json_decode(lua_State *L);

#endif
