/* config.c - loads one JSON file into a validated, immutable, refcounted generation (config.h).
 *
 * The load runs in passes over the parsed tree, each collecting every error it finds:
 *   1. parse (a syntax error is reported with line and column and ends the load: nothing to check);
 *   2. find the providers disabled by enabled_if_env, then expand ${ENV} in every string value
 *      outside them;
 *   3. check the scalar sections (listen, workers, admin, plugin_paths, access_log, limits, ...);
 *   4. providers: load each enabled provider's plugin and create its instance;
 *   5. global plugins: load and create once each;
 *   6. routes: match, api, targets (dropping disabled providers), timeouts, route plugins, and the
 *      effective plugin list (globals not overridden + route instances, priority desc, name asc);
 *   7. the model catalog: the "model_catalog" file (errors as "<file>#<pointer>") with the config's
 *      "models" entries merged in (field by field; null removes a model), built into g->catalog.
 * Any error -> every instance already created is destroyed and NULL is returned.
 *
 * Instances and slots.  Every instance lives once in g->plugins (providers in g->providers) and is
 * destroyed from there. A route's plugins[] point at per-route COPIES of those cfg_plugin records
 * (same lib, desc, inst and name, borrowed), allocated in one block with the pointer array, because
 * a global instance shared by several routes has a different rctx index in each of them. */
#include "config.h"
#include "catalog.h"
#include "plugin_loader.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifndef AIGW_PLUGIN_DIR
#define AIGW_PLUGIN_DIR "/usr/local/lib/aigw/plugins"
#endif

#define PMAX 1024 /* longest JSON pointer kept; longer ones are cut (messages only) */

static atomic_ullong cfg_next_id = 1;

/* ---- errors ------------------------------------------------------------------------------ */

void cfg_errors_add(cfg_errors *errs, const char *path, const char *fmt, ...)
{
    if (!errs)
        return;
    cfg_error *e = calloc(1, sizeof *e);
    if (!e)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&e->message, fmt, ap) < 0)
        e->message = NULL;
    va_end(ap);
    e->path = strdup(path ? path : "");
    if (!e->message || !e->path) {
        free(e->message);
        free(e->path);
        free(e);
        return;
    }
    if (errs->tail)
        errs->tail->next = e;
    else
        errs->head = e;
    errs->tail = e;
    errs->count++;
}

void cfg_errors_clear(cfg_errors *errs)
{
    if (!errs)
        return;
    cfg_error *e = errs->head;
    while (e) {
        cfg_error *n = e->next;
        free(e->path);
        free(e->message);
        free(e);
        e = n;
    }
    errs->head = errs->tail = NULL;
    errs->count = 0;
}

/* ---- ${ENV} expansion --------------------------------------------------------------------- */

static int is_var_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
static int is_var_char(char c) { return is_var_start(c) || (c >= '0' && c <= '9'); }

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* A reference is "${NAME}" or "${NAME:-default}" (default: any text up to the first '}'); the
 * default applies when NAME is unset or empty, as in the shell. "$${" is a literal "${". Text that
 * does not form a reference (no closing brace, bad name) is kept as it is. */
char *cfg_expand_env(const char *s, char **missing)
{
    sbuf b = {0};
    if (missing)
        *missing = NULL;
    sb_add(&b, "", 0);
    while (*s) {
        if (s[0] == '$' && s[1] == '$' && s[2] == '{') {
            sb_add(&b, "${", 2);
            s += 3;
            continue;
        }
        if (s[0] == '$' && s[1] == '{' && is_var_start(s[2])) {
            const char *name = s + 2, *q = name;
            while (is_var_char(*q))
                q++;
            size_t nlen = (size_t)(q - name);
            const char *def = NULL, *end = NULL;
            if (*q == '}') {
                end = q;
            } else if (q[0] == ':' && q[1] == '-') {
                def = q + 2;
                end = strchr(def, '}');
            }
            if (end) {
                char vname[256];
                if (nlen >= sizeof vname)
                    nlen = sizeof vname - 1;
                memcpy(vname, name, nlen);
                vname[nlen] = '\0';
                const char *v = getenv(vname);
                if (def && (!v || !*v)) {
                    sb_add(&b, def, (size_t)(end - def));
                } else if (v) {
                    sb_add(&b, v, strlen(v));
                } else {
                    if (missing)
                        *missing = strdup(vname);
                    free(b.p);
                    return NULL;
                }
                s = end + 1;
                continue;
            }
        }
        sb_add(&b, s, 1);
        s++;
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- small helpers ------------------------------------------------------------------------ */

typedef struct ld {
    cfg_errors *errs;
    cfg_gen *g;
    size_t plug_cap;      /* capacity of g->plugins (counted up front: pointers into it are kept) */
    char **disabled;      /* names of providers disabled by enabled_if_env (borrowed from root) */
    size_t ndisabled;
} ld;

#define ERR(L, path, ...) cfg_errors_add((L)->errs, (path), __VA_ARGS__)

/* base + "/" + escaped key (RFC 6901: "~" -> "~0", "/" -> "~1"). */
static void pkey(char *out, const char *base, const char *key)
{
    size_t n = (size_t)snprintf(out, PMAX, "%s/", base);
    if (n >= PMAX)
        return;
    for (; key && *key && n + 3 < PMAX; key++) {
        if (*key == '~') {
            out[n++] = '~';
            out[n++] = '0';
        } else if (*key == '/') {
            out[n++] = '~';
            out[n++] = '1';
        } else {
            out[n++] = *key;
        }
    }
    out[n] = '\0';
}

static void pidx(char *out, const char *base, size_t i)
{
    if (snprintf(out, PMAX, "%s/%zu", base, i) >= PMAX)
        out[PMAX - 1] = '\0'; /* cut: messages only */
}

static const char *jtype(const cJSON *j)
{
    if (!j)
        return "nothing";
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsNumber(j))
        return "a number";
    if (cJSON_IsBool(j))
        return "a boolean";
    if (cJSON_IsNull(j))
        return "null";
    if (cJSON_IsArray(j))
        return "an array";
    if (cJSON_IsObject(j))
        return "an object";
    return "invalid";
}

static size_t lev(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t c = d[i - 1][j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (d[i - 1][j] + 1 < c)
                c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c)
                c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    }
    return d[la][lb];
}

/* The closest of cands to s, or NULL when none is close enough to be a likely typo. */
static const char *suggest(const char *s, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t bd = 99, sl = strlen(s);
    for (size_t i = 0; i < n; i++) {
        size_t d = lev(s, cands[i]);
        size_t cl = strlen(cands[i]);
        size_t lim = (sl < cl ? sl : cl) <= 4 ? 1 : 2;
        if (d <= lim && d < bd) {
            bd = d;
            best = cands[i];
        } else if (!best && cl > sl && sl >= 2 && s[0] == cands[i][0]) {
            /* an abbreviation: s's letters appear in order in the candidate ("cfg" -> "config") */
            const char *c = cands[i], *q = s;
            for (; *c && *q; c++)
                if (*c == *q)
                    q++;
            if (!*q) {
                best = cands[i];
                bd = 99;
            }
        }
    }
    return best;
}

/* Checks that obj is an object whose keys are all in allowed[], with no key twice. Returns 0 when
 * obj is not an object (error reported), else 1. what names the thing for messages. comments: keys
 * starting with '_' are allowed too (the model catalog's "_note"s). */
static int check_obj_x(ld *L, const cJSON *obj, const char *path, const char *what,
                       const char *const *allowed, size_t nallowed, int comments)
{
    char p[PMAX];
    if (!cJSON_IsObject(obj)) {
        ERR(L, path, "%s must be an object, got %s", what, jtype(obj));
        return 0;
    }
    for (const cJSON *c = obj->child; c; c = c->next) {
        pkey(p, path, c->string);
        for (const cJSON *d = obj->child; d != c; d = d->next) {
            if (strcmp(d->string, c->string) == 0) {
                ERR(L, p, "duplicate key '%s' (each key may appear once)", c->string);
                break;
            }
        }
        if (!allowed || (comments && c->string[0] == '_'))
            continue;
        size_t i;
        for (i = 0; i < nallowed; i++)
            if (strcmp(c->string, allowed[i]) == 0)
                break;
        if (i < nallowed)
            continue;
        const char *sug = suggest(c->string, allowed, nallowed);
        if (sug) {
            ERR(L, p, "unknown key '%s' in %s, did you mean '%s'?", c->string, what, sug);
        } else {
            char list[512];
            size_t off = 0;
            list[0] = '\0';
            for (i = 0; i < nallowed && off < sizeof list; i++)
                off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", allowed[i]);
            ERR(L, p, "unknown key '%s' in %s (known keys: %s)", c->string, what, list);
        }
    }
    return 1;
}

static int check_obj(ld *L, const cJSON *obj, const char *path, const char *what,
                     const char *const *allowed, size_t nallowed)
{
    return check_obj_x(L, obj, path, what, allowed, nallowed, 0);
}

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))

/* Reads an optional string member; returns its value (borrowed), or NULL when absent or wrong
 * (error reported unless absent). required: a missing key is an error. */
static const char *get_str(ld *L, const cJSON *obj, const char *key, const char *path, int required,
                           int allow_empty)
{
    char p[PMAX];
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) {
        if (required)
            ERR(L, path, "missing required key '%s'", key);
        return NULL;
    }
    pkey(p, path, key);
    if (!cJSON_IsString(j)) {
        ERR(L, p, "must be a string, got %s", jtype(j));
        return NULL;
    }
    if (!allow_empty && !*j->valuestring) {
        ERR(L, p, "must not be empty");
        return NULL;
    }
    return j->valuestring;
}

/* Reads an optional integer in [min, max] into *out (left unchanged when absent or wrong).
 * Returns 1 when read, 0 when absent, -1 on error. */
static int get_int(ld *L, const cJSON *obj, const char *key, const char *path, double min, double max,
                   double *out)
{
    char p[PMAX];
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j)
        return 0;
    pkey(p, path, key);
    if (!cJSON_IsNumber(j)) {
        ERR(L, p, "must be an integer, got %s", jtype(j));
        return -1;
    }
    double v = j->valuedouble;
    if (!isfinite(v) || floor(v) != v) {
        ERR(L, p, "must be an integer, got %g", v);
        return -1;
    }
    if (v < min || v > max) {
        if (max < 4294967295.0)
            ERR(L, p, "must be between %.0f and %.0f, got %.0f", min, max, v);
        else if (v < min)
            ERR(L, p, "must be >= %.0f, got %.0f", min, v);
        else
            ERR(L, p, "must be <= %.0f, got %.0f", max, v);
        return -1;
    }
    *out = v;
    return 1;
}

static int get_u32(ld *L, const cJSON *obj, const char *key, const char *path, uint32_t min,
                   uint32_t *out)
{
    double v;
    int r = get_int(L, obj, key, path, min, 4294967295.0, &v);
    if (r == 1)
        *out = (uint32_t)v;
    return r;
}

static int get_bool(ld *L, const cJSON *obj, const char *key, const char *path, int *out)
{
    char p[PMAX];
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j)
        return 0;
    if (!cJSON_IsBool(j)) {
        pkey(p, path, key);
        ERR(L, p, "must be true or false, got %s", jtype(j));
        return -1;
    }
    *out = cJSON_IsTrue(j);
    return 1;
}

static char *xstrdup(ld *L, const char *s)
{
    if (!s)
        return NULL;
    char *r = strdup(s);
    if (!r)
        ERR(L, "", "out of memory");
    return r;
}

static int is_disabled(const ld *L, const char *provider)
{
    for (size_t i = 0; i < L->ndisabled; i++)
        if (strcmp(L->disabled[i], provider) == 0)
            return 1;
    return 0;
}

/* ---- pass 2: ${ENV} ------------------------------------------------------------------------ */

static void expand_tree(ld *L, cJSON *j, const char *path)
{
    char p[PMAX];
    if (cJSON_IsString(j)) {
        if (!strchr(j->valuestring, '$'))
            return;
        char *missing = NULL;
        char *v = cfg_expand_env(j->valuestring, &missing);
        if (!v) {
            if (missing)
                ERR(L, path,
                    "environment variable %s is not set (set it, or give a default: ${%s:-value})",
                    missing, missing);
            else
                ERR(L, path, "out of memory expanding environment variables");
            free(missing);
            return;
        }
        if (strcmp(v, j->valuestring) != 0 && !cJSON_SetValuestring(j, v))
            ERR(L, path, "out of memory");
        free(v);
        return;
    }
    size_t i = 0;
    for (cJSON *c = j->child; c; c = c->next, i++) {
        if (cJSON_IsObject(j))
            pkey(p, path, c->string);
        else
            pidx(p, path, i);
        expand_tree(L, c, p);
    }
}

static void find_disabled(ld *L, const cJSON *root)
{
    const cJSON *provs = cJSON_GetObjectItemCaseSensitive(root, "providers");
    if (!cJSON_IsObject(provs))
        return;
    size_t n = (size_t)cJSON_GetArraySize(provs);
    L->disabled = calloc(n ? n : 1, sizeof *L->disabled);
    if (!L->disabled)
        return;
    for (const cJSON *p = provs->child; p; p = p->next) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(p, "enabled_if_env");
        if (!cJSON_IsString(e))
            continue; /* a wrong type is reported by the providers pass */
        const char *v = getenv(e->valuestring);
        if (!v || !*v)
            L->disabled[L->ndisabled++] = p->string;
    }
}

/* ---- pass 3: the plain sections ----------------------------------------------------------- */

static int readable(ld *L, const cJSON *obj, const char *key, const char *path, const char *what,
                    char **out)
{
    char p[PMAX];
    const char *f = get_str(L, obj, key, path, 1, 0);
    if (!f)
        return -1;
    pkey(p, path, key);
    if (access(f, R_OK) != 0) {
        ERR(L, p, "cannot read the TLS %s file '%s': %s (paths are relative to the working directory)",
            what, f, strerror(errno));
        return -1;
    }
    *out = xstrdup(L, f);
    return 0;
}

static void load_listen(ld *L, const cJSON *root)
{
    static const char *const lkeys[] = {"address", "port", "tls"};
    static const char *const tkeys[] = {"cert", "key"};
    cfg_gen *g = L->g;
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(root, "listen");
    char p[PMAX], tp[PMAX];
    if (!ls) {
        g->listen = calloc(1, sizeof *g->listen);
        if (!g->listen) {
            ERR(L, "", "out of memory");
            return;
        }
        g->nlisten = 1;
        g->listen[0].address = xstrdup(L, "127.0.0.1");
        g->listen[0].port = 8080;
        return;
    }
    if (!cJSON_IsArray(ls)) {
        ERR(L, "/listen", "must be an array of {\"address\", \"port\"} objects, got %s", jtype(ls));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(ls);
    if (n == 0) {
        ERR(L, "/listen", "needs at least one listener, e.g. [{\"port\": 8080}]");
        return;
    }
    g->listen = calloc(n, sizeof *g->listen);
    if (!g->listen) {
        ERR(L, "", "out of memory");
        return;
    }
    size_t i = 0;
    for (const cJSON *e = ls->child; e; e = e->next, i++) {
        cfg_listen *l = &g->listen[g->nlisten++];
        pidx(p, "/listen", i);
        if (!check_obj(L, e, p, "listener", lkeys, NKEYS(lkeys)))
            continue;
        const char *addr = get_str(L, e, "address", p, 0, 0);
        l->address = xstrdup(L, addr ? addr : "127.0.0.1");
        double port;
        int r = get_int(L, e, "port", p, 1, 65535, &port);
        if (r == 0)
            ERR(L, p, "missing required key 'port' (1-65535)");
        else if (r == 1)
            l->port = (uint16_t)port;
        const cJSON *tls = cJSON_GetObjectItemCaseSensitive(e, "tls");
        if (tls) {
            pkey(tp, p, "tls");
            if (check_obj(L, tls, tp, "tls", tkeys, NKEYS(tkeys))) {
                readable(L, tls, "cert", tp, "certificate", &l->tls_cert);
                readable(L, tls, "key", tp, "key", &l->tls_key);
            }
        }
    }
}

static int is_loopback(const char *a)
{
    return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 || strcmp(a, "[::1]") == 0 ||
           strcasecmp(a, "localhost") == 0;
}

static void load_admin(ld *L, const cJSON *root)
{
    static const char *const akeys[] = {"address", "port", "token", "tokens"};
    cfg_gen *g = L->g;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "admin");
    g->admin.address = xstrdup(L, "127.0.0.1");
    if (!a || !check_obj(L, a, "/admin", "admin", akeys, NKEYS(akeys)))
        return;
    const char *addr = get_str(L, a, "address", "/admin", 0, 0);
    if (addr) {
        free(g->admin.address);
        g->admin.address = xstrdup(L, addr);
    }
    double port;
    if (get_int(L, a, "port", "/admin", 0, 65535, &port) == 1)
        g->admin.port = (uint16_t)port;
    const char *tok = get_str(L, a, "token", "/admin", 0, 1);
    if (tok && *tok)
        g->admin_token = xstrdup(L, tok);
    /* tokens with roles: viewer (read: metrics, routes, targets, plugins, ready), operator (+ reload),
     * admin (everything); "token" alone is an admin token */
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(a, "tokens");
    if (ts) {
        if (!cJSON_IsArray(ts)) {
            ERR(L, "/admin/tokens", "must be an array of {\"token\", \"role\"} (role: admin, operator or viewer)");
        } else {
            size_t n = (size_t)cJSON_GetArraySize(ts), i = 0;
            g->admin_tokens = calloc(n ? n : 1, sizeof *g->admin_tokens);
            static const char *const tk[] = {"token", "role"};
            for (const cJSON *e = ts->child; e && g->admin_tokens; e = e->next, i++) {
                char q[PMAX], r[PMAX];
                pidx(q, "/admin/tokens", i);
                if (!check_obj(L, e, q, "admin token", tk, NKEYS(tk)))
                    continue;
                const char *t = get_str(L, e, "token", q, 1, 0);
                const char *role = get_str(L, e, "role", q, 1, 0);
                int rv = !role ? 0 : !strcmp(role, "admin") ? ADMIN_ADMIN : !strcmp(role, "operator") ? ADMIN_OPERATOR
                       : !strcmp(role, "viewer") ? ADMIN_VIEWER : -1;
                if (rv < 0) {
                    pkey(r, q, "role");
                    ERR(L, r, "unknown role '%s' (use admin, operator or viewer)", role);
                }
                if (t && strlen(t) < 16) {
                    pkey(r, q, "token");
                    ERR(L, r, "admin tokens must be at least 16 characters");
                }
                if (t && rv > 0) {
                    g->admin_tokens[g->nadmin_tokens].token = xstrdup(L, t);
                    g->admin_tokens[g->nadmin_tokens++].role = rv;
                }
            }
        }
    }
    if (g->admin.port && !g->admin_token && !g->nadmin_tokens && addr && !is_loopback(addr))
        ERR(L, "/admin/address",
            "the admin API on non-loopback address '%s' needs a token: set /admin/token (e.g. "
            "\"${AIGW_ADMIN_TOKEN}\") or bind it to 127.0.0.1",
            addr);
}

static void load_misc(ld *L, const cJSON *root)
{
    cfg_gen *g = L->g;
    char p[PMAX];

    /* workers */
    uint32_t w = 0;
    get_u32(L, root, "workers", "", 0, &w);
    if (w > 1024) {
        ERR(L, "/workers", "must be at most 1024 (0 = one per CPU), got %u", (unsigned)w);
        w = 0;
    }
    if (w == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        w = n > 0 ? (uint32_t)n : 1;
    }
    g->workers = w;

    /* plugin_paths */
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "plugin_paths");
    if (!pp) {
        g->plugin_paths = calloc(2, sizeof(char *));
        if (g->plugin_paths) {
            g->plugin_paths[0] = xstrdup(L, AIGW_PLUGIN_DIR);
            g->plugin_paths[1] = xstrdup(L, "build/plugins");
            g->nplugin_paths = 2;
        }
    } else if (!cJSON_IsArray(pp)) {
        ERR(L, "/plugin_paths", "must be an array of directory names, got %s", jtype(pp));
    } else {
        size_t n = (size_t)cJSON_GetArraySize(pp), i = 0;
        g->plugin_paths = calloc(n ? n : 1, sizeof(char *));
        for (const cJSON *e = pp->child; e && g->plugin_paths; e = e->next, i++) {
            pidx(p, "/plugin_paths", i);
            if (!cJSON_IsString(e) || !*e->valuestring)
                ERR(L, p, "must be a non-empty directory name, got %s", jtype(e));
            else
                g->plugin_paths[g->nplugin_paths++] = xstrdup(L, e->valuestring);
        }
    }

    /* access_log */
    static const char *const alkeys[] = {"path"};
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(root, "access_log");
    if (!al) {
        g->access_log_path = xstrdup(L, "-");
    } else if (cJSON_IsNull(al)) {
        g->access_log_path = NULL;
    } else if (check_obj(L, al, "/access_log", "access_log", alkeys, NKEYS(alkeys))) {
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(al, "path");
        if (!path)
            g->access_log_path = xstrdup(L, "-");
        else if (cJSON_IsNull(path))
            g->access_log_path = NULL;
        else if (!cJSON_IsString(path) || !*path->valuestring)
            ERR(L, "/access_log/path", "must be \"-\" (stdout), a file path, or null (off); got %s",
                jtype(path));
        else
            g->access_log_path = xstrdup(L, path->valuestring);
    }

    /* limits */
    static const char *const lkeys[] = {"max_header_bytes", "max_body_bytes",
                                        "client_header_timeout_ms", "client_body_timeout_ms",
                                        "keepalive_timeout_ms", "send_timeout_ms",
                                        "max_concurrent_requests", "max_stream_buffer_bytes"};
    cfg_limits *lm = &g->limits;
    lm->max_header_bytes = 16384;
    lm->max_body_bytes = 10u << 20;
    lm->client_header_timeout_ms = 10000;
    lm->client_body_timeout_ms = 30000;
    lm->keepalive_timeout_ms = 60000;
    lm->send_timeout_ms = 60000;
    lm->max_concurrent_requests = 10000;
    lm->max_stream_buffer_bytes = 1u << 20;
    const cJSON *li = cJSON_GetObjectItemCaseSensitive(root, "limits");
    if (li && check_obj(L, li, "/limits", "limits", lkeys, NKEYS(lkeys))) {
        double v;
        get_u32(L, li, "max_header_bytes", "/limits", 1, &lm->max_header_bytes);
        if (get_int(L, li, "max_body_bytes", "/limits", 1, 9007199254740992.0, &v) == 1)
            lm->max_body_bytes = (uint64_t)v;
        get_u32(L, li, "client_header_timeout_ms", "/limits", 1, &lm->client_header_timeout_ms);
        get_u32(L, li, "client_body_timeout_ms", "/limits", 1, &lm->client_body_timeout_ms);
        get_u32(L, li, "keepalive_timeout_ms", "/limits", 1, &lm->keepalive_timeout_ms);
        get_u32(L, li, "send_timeout_ms", "/limits", 1, &lm->send_timeout_ms);
        get_u32(L, li, "max_concurrent_requests", "/limits", 1, &lm->max_concurrent_requests);
        if (get_int(L, li, "max_stream_buffer_bytes", "/limits", 1, 9007199254740992.0, &v) == 1)
            lm->max_stream_buffer_bytes = (uint64_t)v;
    }

    g->drain_timeout_ms = 30000;
    get_u32(L, root, "drain_timeout_ms", "", 0, &g->drain_timeout_ms);

    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "store");
    if (st) {
        static const char *const sk[] = {"backend", "redis"};
        static const char *const rk[] = {"host", "port", "password", "timeout_ms", "prefix", "cluster", "nodes"};
        if (check_obj(L, st, "/store", "store", sk, NKEYS(sk))) {
            const char *b = get_str(L, st, "backend", "/store", 0, 0);
            if (b && strcmp(b, "memory") && strcmp(b, "redis"))
                ERR(L, "/store/backend", "unknown backend '%s' (use \"memory\" or \"redis\")", b);
            g->store_redis = b && !strcmp(b, "redis");
            const cJSON *rj = cJSON_GetObjectItemCaseSensitive(st, "redis");
            if (g->store_redis && !rj)
                ERR(L, "/store", "\"backend\": \"redis\" needs a \"redis\" object (e.g. {\"host\": \"127.0.0.1\", \"port\": 6379})");
            if (rj && check_obj(L, rj, "/store/redis", "redis", rk, NKEYS(rk))) {
                g->redis_host = xstrdup(L, get_str(L, rj, "host", "/store/redis", 0, 0));
                uint32_t port = 6379;
                get_u32(L, rj, "port", "/store/redis", 1, &port);
                if (port > 65535)
                    ERR(L, "/store/redis/port", "must be a TCP port (1-65535), got %u", port);
                g->redis_port = (uint16_t)port;
                g->redis_password = xstrdup(L, get_str(L, rj, "password", "/store/redis", 0, 1));
                if (g->redis_password && !*g->redis_password) {
                    free(g->redis_password);
                    g->redis_password = NULL;
                }
                g->redis_timeout_ms = 100;
                get_u32(L, rj, "timeout_ms", "/store/redis", 1, &g->redis_timeout_ms);
                g->redis_prefix = xstrdup(L, get_str(L, rj, "prefix", "/store/redis", 0, 1));
                const cJSON *cl = cJSON_GetObjectItemCaseSensitive(rj, "cluster");
                if (cl && !cJSON_IsBool(cl))
                    ERR(L, "/store/redis/cluster", "must be true or false");
                g->redis_cluster = cJSON_IsTrue(cl);
                const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(rj, "nodes");
                if (nodes) {
                    if (!g->redis_cluster)
                        ERR(L, "/store/redis/nodes", "is for a Redis Cluster: set \"cluster\": true (one server takes \"host\" and \"port\")");
                    else if (!cJSON_IsArray(nodes) || !cJSON_GetArraySize(nodes) || cJSON_GetArraySize(nodes) > 16)
                        ERR(L, "/store/redis/nodes", "must be a list of 1 to 16 \"host:port\" strings (the cluster's seed nodes)");
                    else {
                        int i = 0;
                        const cJSON *n;
                        cJSON_ArrayForEach(n, nodes) {
                            const char *hp = cJSON_IsString(n) ? n->valuestring : NULL;
                            const char *colon = hp ? strrchr(hp, ':') : NULL;
                            char *end = NULL;
                            unsigned long np = colon ? strtoul(colon + 1, &end, 10) : 0;
                            if (!colon || colon == hp || colon - hp > 255 || !end || *end || !np || np > 65535)
                                ERR(L, "/store/redis/nodes", "entry %d must be \"host:port\" (e.g. \"127.0.0.1:7000\")", i);
                            else if (g->redis_nnodes < 16) {
                                g->redis_nodes[g->redis_nnodes] = xstrdup(L, hp);
                                g->redis_nnodes++;
                            }
                            i++;
                        }
                        if (g->redis_nnodes && !cJSON_GetObjectItemCaseSensitive(rj, "host")) {
                            /* the first seed node is the one "host" and "port" name */
                            const char *colon = strrchr(g->redis_nodes[0], ':');
                            free(g->redis_host);
                            g->redis_host = xstrdup(L, g->redis_nodes[0]);
                            if (g->redis_host)
                                g->redis_host[colon - g->redis_nodes[0]] = 0;
                            g->redis_port = (uint16_t)strtoul(colon + 1, NULL, 10);
                        }
                    }
                }
            }
        }
    }
    if (!g->redis_host)
        g->redis_host = xstrdup(L, "127.0.0.1");
    if (!g->redis_port)
        g->redis_port = 6379;
    if (!g->redis_prefix)
        g->redis_prefix = xstrdup(L, "aigw:");
    if (!g->redis_timeout_ms)
        g->redis_timeout_ms = 100;
}

/* ---- plugin instances ---------------------------------------------------------------------- */

/* Creates an instance of lib's plugin into *out. cfg_path is the pointer of the "config" value
 * (where diag errors are anchored). Returns 0, or -1 with errors added. */
static int make_instance(ld *L, cfg_plugin *out, const plug_lib *lib, const char *name,
                         const cJSON *cfg, const char *cfg_path, int32_t priority)
{
    const aigw_plugin *d = lib->desc;
    memset(out, 0, sizeof *out);
    out->lib = lib;
    out->desc = d;
    out->priority = priority;
    out->name = xstrdup(L, name);
    if (!d->create)
        return out->name ? 0 : -1;
    struct aigw_diag diag = {L->errs, cfg_path, name, 0};
    size_t before = L->errs->count;
    void *inst = d->create(host_table(), (const aigw_json *)cfg, &diag);
    if (L->errs->count > before || diag.nerrors > 0) {
        if (inst && d->destroy)
            d->destroy(inst);
        return -1;
    }
    if (!inst) {
        ERR(L, cfg_path, "plugin '%s' refused its configuration (it reported no reason)", name);
        return -1;
    }
    out->inst = inst;
    return 0;
}

static void destroy_instance(cfg_plugin *p)
{
    if (p->inst && p->desc && p->desc->destroy)
        p->desc->destroy(p->inst);
    p->inst = NULL;
    free(p->name);
    p->name = NULL;
}

/* Loads a plugin library, reporting the loader's message at path. */
static const plug_lib *load_lib(ld *L, const char *name, const char *path)
{
    char err[1024];
    const plug_lib *lib = plug_load(name, L->g->plugin_paths, L->g->nplugin_paths, err, sizeof err);
    if (!lib)
        ERR(L, path, "%s", err);
    return lib;
}

/* ---- pass 4: providers --------------------------------------------------------------------- */

static void load_providers(ld *L, const cJSON *root)
{
    static const char *const pkeys[] = {"plugin", "config", "enabled_if_env", "http_client"};
    cfg_gen *g = L->g;
    const cJSON *provs = cJSON_GetObjectItemCaseSensitive(root, "providers");
    char p[PMAX], q[PMAX];
    if (!provs)
        return;
    if (!check_obj(L, provs, "/providers", "providers", NULL, 0))
        return;
    size_t n = (size_t)cJSON_GetArraySize(provs);
    g->providers = calloc(n ? n : 1, sizeof *g->providers);
    if (!g->providers) {
        ERR(L, "", "out of memory");
        return;
    }
    for (const cJSON *e = provs->child; e; e = e->next) {
        pkey(p, "/providers", e->string);
        if (!*e->string) {
            ERR(L, p, "provider names must not be empty");
            continue;
        }
        int ok = check_obj(L, e, p, "provider", pkeys, NKEYS(pkeys));
        cfg_provider *pv = &g->providers[g->nproviders++];
        pv->name = xstrdup(L, e->string);
        pv->enabled = !is_disabled(L, e->string);
        if (!ok)
            continue;
        get_str(L, e, "enabled_if_env", p, 0, 0);
        const char *hc = get_str(L, e, "http_client", p, 0, 0);
        if (hc && strcmp(hc, "auto") && strcmp(hc, "libcurl")) {
            pkey(q, p, "http_client");
            ERR(L, q, "must be \"auto\" (built-in HTTP/1.1 client for plain-HTTP address upstreams, libcurl otherwise) or \"libcurl\", got \"%s\"", hc);
        }
        pv->force_libcurl = hc && !strcmp(hc, "libcurl");
        const char *plugin = get_str(L, e, "plugin", p, 1, 0);
        const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(e, "config");
        pkey(q, p, "config");
        if (cfg && !cJSON_IsObject(cfg) && !cJSON_IsNull(cfg)) {
            ERR(L, q, "must be an object, got %s", jtype(cfg));
            continue;
        }
        if (cJSON_IsNull(cfg))
            cfg = NULL;
        if (!plugin || !pv->enabled)
            continue;
        pkey(q, p, "plugin");
        const plug_lib *lib = load_lib(L, plugin, q);
        if (!lib)
            continue;
        if (!lib->desc->provider || !(lib->desc->flags & AIGW_IS_PROVIDER)) {
            ERR(L, q, "plugin '%s' (%s) is not a provider adapter; use it under \"plugins\" instead",
                plugin, lib->path);
            continue;
        }
        pkey(q, p, "config");
        make_instance(L, &pv->plugin, lib, plugin, cfg, q, lib->desc->priority);
    }
}

static cfg_provider *find_provider(cfg_gen *g, const char *name)
{
    for (size_t i = 0; i < g->nproviders; i++)
        if (g->providers[i].name && strcmp(g->providers[i].name, name) == 0)
            return &g->providers[i];
    return NULL;
}

/* ---- pass 5/6: plugin entries -------------------------------------------------------------- */

/* One parsed plugin entry of a list ("plugins" or a route's "plugins"). */
typedef struct pentry {
    const char *name;     /* borrowed from the tree; NULL when the entry is broken */
    int enabled;
    cfg_plugin *inst;     /* created instance in g->plugins, or NULL */
} pentry;

/* Parses and (when enabled) creates every entry of a plugin list at path. out has one slot per
 * array element. Returns the number of elements, or 0 (with an error) when arr is not an array. */
static size_t load_plugin_list(ld *L, const cJSON *arr, const char *path, pentry *out,
                               const char *what)
{
    static const char *const ekeys[] = {"name", "config", "priority", "enabled"};
    char p[PMAX], q[PMAX];
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        pentry *pe = &out[i];
        pe->enabled = 1;
        pidx(p, path, i);
        if (!check_obj(L, e, p, what, ekeys, NKEYS(ekeys)))
            continue;
        const char *name = get_str(L, e, "name", p, 1, 0);
        double prio = 0;
        int has_prio = get_int(L, e, "priority", p, -2147483648.0, 2147483647.0, &prio);
        get_bool(L, e, "enabled", p, &pe->enabled);
        const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(e, "config");
        if (cfg && !cJSON_IsObject(cfg) && !cJSON_IsNull(cfg)) {
            pkey(q, p, "config");
            ERR(L, q, "must be an object, got %s", jtype(cfg));
            name = NULL;
        }
        if (cJSON_IsNull(cfg))
            cfg = NULL;
        if (!name)
            continue;
        for (size_t k = 0; k < i; k++) {
            if (out[k].name && strcmp(out[k].name, name) == 0) {
                pkey(q, p, "name");
                ERR(L, q, "plugin '%s' is listed twice in %s (also at %s/%zu)", name, path, path, k);
                name = NULL;
                break;
            }
        }
        if (!name)
            continue;
        pe->name = name;
        if (!pe->enabled || has_prio < 0)
            continue;
        pkey(q, p, "name");
        const plug_lib *lib = load_lib(L, name, q);
        if (!lib)
            continue;
        if (lib->desc->provider) {
            ERR(L, q, "plugin '%s' is a provider adapter: declare it under /providers and use it as a "
                      "route target", name);
            continue;
        }
        if (L->g->nplugins >= L->plug_cap) {
            ERR(L, p, "internal error: plugin slots exhausted");
            continue;
        }
        cfg_plugin *cp = &L->g->plugins[L->g->nplugins];
        pkey(q, p, "config");
        if (make_instance(L, cp, lib, name, cfg, q,
                          has_prio == 1 ? (int32_t)prio : lib->desc->priority) == 0) {
            L->g->nplugins++;
            pe->inst = cp;
        } else {
            destroy_instance(cp);
        }
    }
    return i;
}

static int cmp_plugin(const void *a, const void *b)
{
    const cfg_plugin *x = *(cfg_plugin *const *)a, *y = *(cfg_plugin *const *)b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* ---- pass 6: routes ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    uint32_t bit;
} methods[] = {{"GET", CFG_M_GET},       {"POST", CFG_M_POST}, {"PUT", CFG_M_PUT},
               {"DELETE", CFG_M_DELETE}, {"PATCH", CFG_M_PATCH}, {"HEAD", CFG_M_HEAD},
               {"OPTIONS", CFG_M_OPTIONS}};

static const struct {
    const char *name;
    aigw_api api;
} apis[] = {{"chat", AIGW_API_CHAT},           {"embeddings", AIGW_API_EMBEDDINGS},
            {"models", AIGW_API_MODELS},       {"messages", AIGW_API_MESSAGES},
            {"responses", AIGW_API_RESPONSES}, {"passthrough", AIGW_API_PASSTHROUGH}};

static void load_match(ld *L, cfg_route *r, const cJSON *m, const char *path)
{
    static const char *const mkeys[] = {"methods", "path", "path_prefix", "host", "headers"};
    char p[PMAX], q[PMAX];
    r->methods = CFG_M_ANY;
    if (!m) {
        ERR(L, path, "missing required key 'match' (e.g. {\"path\": \"/v1/chat/completions\"})");
        return;
    }
    pkey(p, path, "match");
    if (!check_obj(L, m, p, "match", mkeys, NKEYS(mkeys)))
        return;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(m, "methods");
    if (ms) {
        pkey(q, p, "methods");
        if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) == 0) {
            ERR(L, q, "must be a non-empty array of method names (e.g. [\"POST\"]); omit it to match "
                      "any method");
        } else {
            r->methods = 0;
            size_t i = 0;
            char ip[PMAX];
            for (const cJSON *e = ms->child; e; e = e->next, i++) {
                pidx(ip, q, i);
                size_t k = NKEYS(methods);
                if (cJSON_IsString(e))
                    for (k = 0; k < NKEYS(methods); k++)
                        if (strcasecmp(e->valuestring, methods[k].name) == 0)
                            break;
                if (k == NKEYS(methods))
                    ERR(L, ip, "unknown method %s%s%s (use GET, POST, PUT, DELETE, PATCH, HEAD or OPTIONS)",
                        cJSON_IsString(e) ? "'" : "", cJSON_IsString(e) ? e->valuestring : jtype(e),
                        cJSON_IsString(e) ? "'" : "");
                else
                    r->methods |= methods[k].bit;
            }
            if (!r->methods)
                r->methods = CFG_M_ANY;
        }
    }
    const char *path_ = get_str(L, m, "path", p, 0, 0);
    const char *prefix = get_str(L, m, "path_prefix", p, 0, 0);
    int has_path = cJSON_HasObjectItem(m, "path"), has_prefix = cJSON_HasObjectItem(m, "path_prefix");
    if (has_path && has_prefix)
        ERR(L, p, "give either 'path' (exact) or 'path_prefix', not both");
    else if (!has_path && !has_prefix)
        ERR(L, p, "missing 'path' (exact match) or 'path_prefix'");
    if (path_ && path_[0] != '/') {
        pkey(q, p, "path");
        ERR(L, q, "must start with '/', got '%s'", path_);
    } else if (path_ && !has_prefix) {
        r->path = xstrdup(L, path_);
    }
    if (prefix && prefix[0] != '/') {
        pkey(q, p, "path_prefix");
        ERR(L, q, "must start with '/', got '%s'", prefix);
    } else if (prefix && !has_path) {
        r->path_prefix = xstrdup(L, prefix);
    }
    const char *host = get_str(L, m, "host", p, 0, 0);
    if (host)
        r->host = xstrdup(L, host);
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(m, "headers");
    if (hs) {
        pkey(q, p, "headers");
        if (check_obj(L, hs, q, "headers", NULL, 0)) {
            size_t n = (size_t)cJSON_GetArraySize(hs);
            r->headers = calloc(n ? n : 1, sizeof *r->headers);
            char hp[PMAX];
            for (const cJSON *e = hs->child; e && r->headers; e = e->next) {
                pkey(hp, q, e->string);
                if (!*e->string)
                    ERR(L, hp, "header names must not be empty");
                else if (!cJSON_IsString(e))
                    ERR(L, hp, "must be a string (the exact header value), got %s", jtype(e));
                else {
                    cfg_header_match *h = &r->headers[r->nheaders++];
                    h->name = xstrdup(L, e->string);
                    h->value = xstrdup(L, e->valuestring);
                }
            }
        }
    }
}

static const char *const strategy_names[] = {"priority", "weighted", "round_robin", "least_inflight",
                                              "latency", "cost", "hash"};

static int parse_strategy(ld *L, const cJSON *obj, const char *path, int *out)
{
    const char *s = get_str(L, obj, "strategy", path, 0, 0);
    if (!s)
        return 0;
    for (size_t k = 0; k < NKEYS(strategy_names); k++)
        if (strcmp(s, strategy_names[k]) == 0) {
            *out = (int)k;
            return 1;
        }
    char q[PMAX];
    pkey(q, path, "strategy");
    const char *sug = suggest(s, strategy_names, NKEYS(strategy_names));
    ERR(L, q, "unknown strategy '%s'%s%s%s (use priority, weighted, round_robin, least_inflight, latency, cost "
              "or hash)", s, sug ? ", did you mean '" : "", sug ? sug : "", sug ? "'?" : "");
    return -1;
}

static void free_target(cfg_target *t)
{
    free(t->model);
    free(t->name);
    cJSON_Delete(t->params);
    for (size_t i = 0; i < t->nkids; i++)
        free_target(&t->kids[i]);
    free(t->kids);
    balance_state_release(t->st);
}

/* Timeouts of a target: {connect_ms, first_byte_ms, idle_ms, total_ms}, each optional; applied over
 * the route's once both are known (the mask of given ones in *given). */
static void load_target_timeouts(ld *L, cfg_target *t, const cJSON *j, const char *path, unsigned *given)
{
    static const char *const tkeys[] = {"connect_ms", "first_byte_ms", "idle_ms", "total_ms"};
    char p[PMAX];
    *given = 0;
    if (!j)
        return;
    pkey(p, path, "timeouts");
    if (!check_obj(L, j, p, "timeouts", tkeys, NKEYS(tkeys)))
        return;
    if (get_u32(L, j, "connect_ms", p, 1, &t->timeouts.connect_ms) == 1)
        *given |= 1;
    if (get_u32(L, j, "first_byte_ms", p, 1, &t->timeouts.first_byte_ms) == 1)
        *given |= 2;
    if (get_u32(L, j, "idle_ms", p, 1, &t->timeouts.idle_ms) == 1)
        *given |= 4;
    if (get_u32(L, j, "total_ms", p, 0, &t->timeouts.total_ms) == 1)
        *given |= 8;
}

/* Loads the targets array at path into (*out, *nout); groups recurse. Disabled providers are dropped
 * (their names collected in dis). Returns the number of enabled leaves found. */
typedef struct name_set {
    const char *v[CFG_MAX_LEAVES * 2];
    size_t n;
} name_set;

static int name_taken(const name_set *ns, const char *s)
{
    for (size_t i = 0; i < ns->n; i++)
        if (strcmp(ns->v[i], s) == 0)
            return 1;
    return 0;
}

static void load_target_list(ld *L, cfg_route *r, const cJSON *ts, const char *p, int depth, cfg_target **out,
                             size_t *nout, char *dis, size_t *doff, name_set *ns)
{
    static const char *const tkeys[] = {"name", "provider", "model", "weight", "priority", "params",
                                        "timeouts", "context_window", "strategy", "targets"};
    char q[PMAX], tp[PMAX];
    size_t n = (size_t)cJSON_GetArraySize(ts), i = 0;
    *out = calloc(n ? n : 1, sizeof **out);
    *nout = 0;
    if (!*out) {
        ERR(L, "", "out of memory");
        return;
    }
    for (const cJSON *e = ts->child; e; e = e->next, i++) {
        pidx(q, p, i);
        if (!check_obj(L, e, q, "target", tkeys, NKEYS(tkeys)))
            continue;
        const cJSON *kids = cJSON_GetObjectItemCaseSensitive(e, "targets");
        const char *prov = NULL;
        cfg_provider *pv = NULL;
        if (kids) {
            if (cJSON_GetObjectItemCaseSensitive(e, "provider") || cJSON_GetObjectItemCaseSensitive(e, "model")) {
                ERR(L, q, "a target is either a provider (\"provider\", \"model\") or a group (\"targets\"), not both");
                continue;
            }
            pkey(tp, q, "targets");
            if (!cJSON_IsArray(kids) || cJSON_GetArraySize(kids) == 0) {
                ERR(L, tp, "a group's targets must be a non-empty array, got %s",
                    cJSON_IsArray(kids) ? "an empty array" : jtype(kids));
                continue;
            }
            if (depth >= 4) {
                ERR(L, tp, "groups nest at most 4 deep");
                continue;
            }
            if (!get_str(L, e, "name", q, 1, 0))
                continue;
        } else {
            prov = get_str(L, e, "provider", q, 1, 0);
            if (!prov)
                continue;
            pv = find_provider(L->g, prov);
            if (!pv) {
                const char *names[64];
                size_t nn = 0;
                for (size_t k = 0; k < L->g->nproviders && nn < 64; k++)
                    if (L->g->providers[k].name)
                        names[nn++] = L->g->providers[k].name;
                const char *sug = suggest(prov, names, nn);
                pkey(tp, q, "provider");
                if (sug)
                    ERR(L, tp, "unknown provider '%s', did you mean '%s'?", prov, sug);
                else
                    ERR(L, tp, "unknown provider '%s': declare it under /providers", prov);
                continue;
            }
            if (!pv->enabled) {
                if (*doff < 512 && !strstr(dis, prov)) {
                    const char *envn = "";
                    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(L->g->root, "providers"), prov);
                    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(pj, "enabled_if_env");
                    if (cJSON_IsString(ev))
                        envn = ev->valuestring;
                    *doff += (size_t)snprintf(dis + *doff, 512 - *doff, "%s'%s' (%s is not set)",
                                              *doff ? ", " : "", prov, envn);
                }
                continue;
            }
        }
        cfg_target *t = &(*out)[(*nout)++];
        t->provider = pv;
        t->model = xstrdup(L, get_str(L, e, "model", q, 0, 0));
        t->weight = 1;
        get_u32(L, e, "weight", q, 0, &t->weight);
        double pr = 0;
        if (get_int(L, e, "priority", q, -1000000, 1000000, &pr) == 1)
            t->priority = (int32_t)pr;
        uint32_t cw = 0;
        if (get_u32(L, e, "context_window", q, 1, &cw) == 1)
            t->context_window = cw;
        t->price = -1;
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(e, "params");
        if (pa) {
            pkey(tp, q, "params");
            if (!cJSON_IsObject(pa)) {
                ERR(L, tp, "must be an object of request members to set (e.g. {\"max_tokens\": 4096}), got %s",
                    jtype(pa));
            } else {
                for (const cJSON *m = pa->child; m; m = m->next)
                    if (!strcmp(m->string, "model") || !strcmp(m->string, "stream")) {
                        char mp[PMAX];
                        pkey(mp, tp, m->string);
                        ERR(L, mp, "'%s' cannot be set through params (use the target's \"model\"; streaming "
                                   "is the client's choice)", m->string);
                    }
                t->params = cJSON_Duplicate(pa, 1);
            }
        }
        unsigned given = 0;
        load_target_timeouts(L, t, cJSON_GetObjectItemCaseSensitive(e, "timeouts"), q, &given);
        t->strategy = (int)given; /* kept here until the route's timeouts are known (see finish_targets) */
        const char *nm = get_str(L, e, "name", q, 0, 0);
        if (nm) {
            for (const char *c = nm; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == '"' || *c == '\\' || *c == 0x7f) {
                    pkey(tp, q, "name");
                    ERR(L, tp, "target names must not contain quotes, backslashes or control characters (they "
                               "appear in headers, logs and metrics)");
                    break;
                }
            if (name_taken(ns, nm)) {
                pkey(tp, q, "name");
                ERR(L, tp, "two targets are named '%s'; give each a unique \"name\" (names appear in headers, "
                           "logs, metrics, rules and aliases)", nm);
            }
            t->name = xstrdup(L, nm);
        } else {
            /* the default name; a clash with an earlier target gets a suffix (#2, #3, ...) */
            char base[480], buf[512];
            snprintf(base, sizeof base, "%s%s%s", prov, t->model ? "/" : "", t->model ? t->model : "");
            snprintf(buf, sizeof buf, "%s", base);
            for (int k = 2; name_taken(ns, buf) && k < 1000; k++)
                snprintf(buf, sizeof buf, "%s#%d", base, k);
            t->name = xstrdup(L, buf);
        }
        if (t->name && ns->n < NKEYS(ns->v))
            ns->v[ns->n++] = t->name;
        t->name_plain = 1;
        for (const char *c = t->name ? t->name : ""; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f || *c == '"' || *c == '\\')
                t->name_plain = 0;
        t->st = balance_state_new();
        if (!t->st)
            ERR(L, "", "out of memory");
        if (kids) {
            int strat = STRAT_PRIORITY;
            parse_strategy(L, e, q, &strat);
            load_target_list(L, r, kids, tp, depth + 1, &t->kids, &t->nkids, dis, doff, ns);
            t->strategy = strat | (int)(given << 8);
            if (t->nkids == 0)
                (*nout)--, free_target(t), memset(t, 0, sizeof *t);
        } else if (r->nleaves >= CFG_MAX_LEAVES) {
            ERR(L, q, "a route has at most %d provider targets", CFG_MAX_LEAVES);
        } else {
            t->leaf = (uint32_t)r->nleaves;
            t->mask = 1ull << t->leaf;
            r->leaves[r->nleaves++] = t;
        }
    }
}

static void load_targets(ld *L, cfg_route *r, const cJSON *ts, const char *path)
{
    char p[PMAX];
    if (!ts) {
        ERR(L, path, "missing required key 'targets' (e.g. [{\"provider\": \"openai\"}])");
        return;
    }
    pkey(p, path, "targets");
    if (!cJSON_IsArray(ts) || cJSON_GetArraySize(ts) == 0) {
        ERR(L, p, "must be a non-empty array of {\"provider\", \"model\"} objects, got %s",
            cJSON_IsArray(ts) ? "an empty array" : jtype(ts));
        return;
    }
    size_t nerr = L->errs->count, doff = 0;
    char dis[512];
    dis[0] = '\0';
    name_set ns = {{0}, 0};
    load_target_list(L, r, ts, p, 0, &r->targets, &r->ntargets, dis, &doff, &ns);
    if (r->nleaves == 0 && L->errs->count == nerr)
        ERR(L, p, "route '%s' has no enabled target: disabled provider%s %s", r->name ? r->name : "?",
            strchr(dis, ',') ? "s" : "", dis);
}

/* After the route's timeouts: each target's effective timeouts, group masks, unique names. */
static void finish_target_list(ld *L, cfg_route *r, cfg_target *ts, size_t n, const cfg_timeouts *base,
                               const char *path)
{
    for (size_t i = 0; i < n; i++) {
        cfg_target *t = &ts[i];
        unsigned given = t->provider ? (unsigned)t->strategy : (unsigned)t->strategy >> 8;
        if (!t->provider)
            t->strategy &= 0xff;
        else
            t->strategy = 0;
        cfg_timeouts own = t->timeouts;
        t->timeouts = *base;
        if (given & 1)
            t->timeouts.connect_ms = own.connect_ms;
        if (given & 2)
            t->timeouts.first_byte_ms = own.first_byte_ms;
        if (given & 4)
            t->timeouts.idle_ms = own.idle_ms;
        if (given & 8)
            t->timeouts.total_ms = own.total_ms;
        if (!t->provider) {
            finish_target_list(L, r, t->kids, t->nkids, &t->timeouts, path);
            t->mask = 0;
            for (size_t k = 0; k < t->nkids; k++)
                t->mask |= t->kids[k].mask;
        }
    }
}

static int json_target_disabled(ld *L, const cJSON *ts, const char *name)
{
    for (const cJSON *e = cJSON_IsArray(ts) ? ts->child : NULL; e; e = e->next) {
        const cJSON *kids = cJSON_GetObjectItemCaseSensitive(e, "targets");
        if (kids) {
            if (json_target_disabled(L, kids, name))
                return 1;
            continue;
        }
        const cJSON *pv = cJSON_GetObjectItemCaseSensitive(e, "provider");
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(e, "model");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (!cJSON_IsString(pv) || !is_disabled(L, pv->valuestring))
            continue;
        char buf[512];
        if (cJSON_IsString(nm))
            snprintf(buf, sizeof buf, "%s", nm->valuestring);
        else
            snprintf(buf, sizeof buf, "%s%s%s", pv->valuestring, cJSON_IsString(md) ? "/" : "",
                     cJSON_IsString(md) ? md->valuestring : "");
        if (strcmp(buf, name) == 0)
            return 1;
    }
    return 0;
}

/* name is a target of route r whose provider is disabled (enabled_if_env): not an error. */
static int target_disabled(ld *L, const cfg_route *r, const char *name)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(L->g->root, "routes");
    const cJSON *rj = cJSON_GetArrayItem(rs, (int)r->route_index);
    return json_target_disabled(L, cJSON_GetObjectItemCaseSensitive(rj, "targets"), name);
}

static cfg_target *route_target(cfg_target *ts, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (ts[i].name && strcmp(ts[i].name, name) == 0)
            return &ts[i];
        if (!ts[i].provider) {
            cfg_target *k = route_target(ts[i].kids, ts[i].nkids, name);
            if (k)
                return k;
        }
    }
    return NULL;
}

static void collect_names(cfg_target *ts, size_t n, const char **names, size_t *nn, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        if (ts[i].name && *nn < cap)
            names[(*nn)++] = ts[i].name;
        if (!ts[i].provider)
            collect_names(ts[i].kids, ts[i].nkids, names, nn, cap);
    }
}

/* A list of target names at path (a JSON array of strings) into *order / *mask. Names of disabled
 * providers' targets are ignored (they may be disabled on purpose). */
static void load_name_list(ld *L, cfg_route *r, const cJSON *arr, const char *path, cfg_target ***order,
                           size_t *norder, uint64_t *mask, const char *what)
{
    char q[PMAX];
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
        ERR(L, path, "%s must be a non-empty array of target names, got %s", what,
            cJSON_IsArray(arr) ? "an empty array" : jtype(arr));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    *order = calloc(n, sizeof **order);
    if (!*order)
        return;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        pidx(q, path, i);
        if (!cJSON_IsString(e)) {
            ERR(L, q, "must be a target name (a string), got %s", jtype(e));
            continue;
        }
        cfg_target *t = route_target(r->targets, r->ntargets, e->valuestring);
        if (!t) {
            if (target_disabled(L, r, e->valuestring))
                continue;
            const char *names[CFG_MAX_LEAVES * 2];
            size_t nn = 0;
            collect_names(r->targets, r->ntargets, names, &nn, NKEYS(names));
            const char *sug = suggest(e->valuestring, names, nn);
            ERR(L, q, "no target named '%s' in this route%s%s%s", e->valuestring, sug ? ", did you mean '" : "",
                sug ? sug : "", sug ? "'?" : "");
            continue;
        }
        (*order)[(*norder)++] = t;
        *mask |= t->mask;
    }
}

static void load_kv(ld *L, const cJSON *obj, const char *path, const char *what, int strings, cfg_kv **out,
                    size_t *nout)
{
    char q[PMAX];
    if (!cJSON_IsObject(obj)) {
        ERR(L, path, "%s must be an object, got %s", what, jtype(obj));
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(obj);
    *out = calloc(n ? n : 1, sizeof **out);
    if (!*out)
        return;
    for (const cJSON *e = obj->child; e; e = e->next) {
        pkey(q, path, e->string);
        if (strings && !cJSON_IsString(e)) {
            ERR(L, q, "must be a string, got %s", jtype(e));
            continue;
        }
        cfg_kv *kv = &(*out)[(*nout)++];
        kv->k = xstrdup(L, e->string);
        kv->v = cJSON_Duplicate(e, 1);
    }
}

static void load_routing(ld *L, cfg_route *r, const cJSON *e, const char *p)
{
    char q[PMAX], s[PMAX];
    finish_target_list(L, r, r->targets, r->ntargets, &r->timeouts, p);
    r->rstate = balance_state_new();
    parse_strategy(L, e, p, &r->strategy);
    const char *hk = get_str(L, e, "hash_key", p, 0, 0);
    if (hk) {
        pkey(q, p, "hash_key");
        if (!strncmp(hk, "header:", 7) && hk[7])
            r->hash_kind = 1, r->hash_name = xstrdup(L, hk + 7);
        else if (!strncmp(hk, "metadata:", 9) && hk[9])
            r->hash_kind = 2, r->hash_name = xstrdup(L, hk + 9);
        else if (!strncmp(hk, "body:", 5) && hk[5])
            r->hash_kind = 3, r->hash_name = xstrdup(L, hk + 5);
        else if (!strcmp(hk, "consumer"))
            r->hash_kind = 4;
        else
            ERR(L, q, "unknown hash key '%s' (use \"header:<name>\", \"metadata:<key>\", \"body:<member>\" or "
                      "\"consumer\")", hk);
        if (r->strategy != STRAT_HASH)
            ERR(L, q, "hash_key is only used with \"strategy\": \"hash\"");
    } else if (r->strategy == STRAT_HASH) {
        ERR(L, p, "\"strategy\": \"hash\" needs a \"hash_key\" (e.g. \"header:x-user-id\")");
    }
    /* aliases */
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(e, "aliases");
    if (al) {
        pkey(q, p, "aliases");
        if (!cJSON_IsObject(al)) {
            ERR(L, q, "must be an object: model name -> list of target names, got %s", jtype(al));
        } else {
            size_t n = (size_t)cJSON_GetArraySize(al);
            r->aliases = calloc(n ? n : 1, sizeof *r->aliases);
            for (const cJSON *a = al->child; a && r->aliases; a = a->next) {
                cfg_alias *x = &r->aliases[r->naliases++];
                x->name = xstrdup(L, a->string);
                pkey(s, q, a->string);
                load_name_list(L, r, a, s, &x->order, &x->norder, &x->mask, "an alias");
            }
        }
    }
    /* rules */
    const cJSON *rl = cJSON_GetObjectItemCaseSensitive(e, "rules");
    if (rl) {
        pkey(q, p, "rules");
        if (!cJSON_IsArray(rl)) {
            ERR(L, q, "must be an array of {\"when\": {...}, \"targets\": [names]}, got %s", jtype(rl));
        } else {
            size_t n = (size_t)cJSON_GetArraySize(rl), i = 0;
            r->rules = calloc(n ? n : 1, sizeof *r->rules);
            static const char *const rk[] = {"when", "targets"};
            static const char *const wk[] = {"header", "metadata", "model", "param", "consumer", "min_prompt_tokens",
                                             "max_prompt_tokens"};
            for (const cJSON *x = rl->child; x && r->rules; x = x->next, i++) {
                pidx(s, q, i);
                if (!check_obj(L, x, s, "rule", rk, NKEYS(rk)))
                    continue;
                cfg_rule *ru = &r->rules[r->nrules++];
                char w[PMAX], t[PMAX];
                pkey(w, s, "when");
                pkey(t, s, "targets");
                const cJSON *when = cJSON_GetObjectItemCaseSensitive(x, "when");
                if (!when) {
                    ERR(L, s, "missing required key 'when'");
                } else if (check_obj(L, when, w, "when", wk, NKEYS(wk))) {
                    char k[PMAX];
                    const cJSON *h = cJSON_GetObjectItemCaseSensitive(when, "header");
                    if (h)
                        pkey(k, w, "header"), load_kv(L, h, k, "header", 1, &ru->headers, &ru->nheaders);
                    h = cJSON_GetObjectItemCaseSensitive(when, "metadata");
                    if (h)
                        pkey(k, w, "metadata"), load_kv(L, h, k, "metadata", 1, &ru->meta, &ru->nmeta);
                    h = cJSON_GetObjectItemCaseSensitive(when, "param");
                    if (h)
                        pkey(k, w, "param"), load_kv(L, h, k, "param", 0, &ru->params, &ru->nparams);
                    ru->model = xstrdup(L, get_str(L, when, "model", w, 0, 0));
                    ru->consumer = xstrdup(L, get_str(L, when, "consumer", w, 0, 0));
                    uint32_t v = 0;
                    if (get_u32(L, when, "min_prompt_tokens", w, 1, &v) == 1)
                        ru->min_tokens = v, r->need_estimate = 1;
                    v = 0;
                    if (get_u32(L, when, "max_prompt_tokens", w, 1, &v) == 1)
                        ru->max_tokens = v, r->need_estimate = 1;
                }
                const cJSON *tl = cJSON_GetObjectItemCaseSensitive(x, "targets");
                if (!tl)
                    ERR(L, s, "missing required key 'targets' (the names of the targets this rule routes to)");
                else
                    load_name_list(L, r, tl, t, &ru->order, &ru->norder, &ru->mask, "a rule's targets");
            }
        }
    }
    /* retry */
    cfg_retry *rp = &r->retry;
    rp->per_target = 1;
    rp->backoff_ms = 100;
    rp->max_backoff_ms = 5000;
    rp->max_retry_after_ms = 30000;
    rp->on_timeout = rp->on_connect = rp->on_malformed = 1;
    rp->status_on[(429 - 400) / 8] |= (uint8_t)(1u << ((429 - 400) % 8));
    for (int st = 500; st < 600; st++)
        rp->status_on[(st - 400) / 8] |= (uint8_t)(1u << ((st - 400) % 8));
    const cJSON *rj = cJSON_GetObjectItemCaseSensitive(e, "retry");
    if (rj) {
        static const char *const rk[] = {"attempts", "per_target", "backoff_ms", "max_backoff_ms", "on",
                                         "max_retry_after_ms", "deadline_ms"};
        pkey(q, p, "retry");
        if (check_obj(L, rj, q, "retry", rk, NKEYS(rk))) {
            double v;
            if (get_int(L, rj, "attempts", q, 1, 20, &v) == 1)
                rp->attempts = (uint32_t)v;
            if (get_int(L, rj, "per_target", q, 1, 20, &v) == 1)
                rp->per_target = (uint32_t)v;
            get_u32(L, rj, "backoff_ms", q, 0, &rp->backoff_ms);
            get_u32(L, rj, "max_backoff_ms", q, 0, &rp->max_backoff_ms);
            get_u32(L, rj, "max_retry_after_ms", q, 0, &rp->max_retry_after_ms);
            get_u32(L, rj, "deadline_ms", q, 1, &rp->deadline_ms);
            const cJSON *on = cJSON_GetObjectItemCaseSensitive(rj, "on");
            if (on) {
                pkey(s, q, "on");
                if (!cJSON_IsArray(on)) {
                    ERR(L, s, "must be an array such as [\"429\", \"5xx\", \"timeout\", \"connect\", \"malformed\"], "
                              "got %s", jtype(on));
                } else {
                    memset(rp->status_on, 0, sizeof rp->status_on);
                    rp->on_timeout = rp->on_connect = rp->on_malformed = 0;
                    size_t i = 0;
                    for (const cJSON *x = on->child; x; x = x->next, i++) {
                        char xp[PMAX];
                        pidx(xp, s, i);
                        const char *v2 = cJSON_IsString(x) ? x->valuestring : NULL;
                        char nb[16];
                        if (cJSON_IsNumber(x)) {
                            snprintf(nb, sizeof nb, "%d", x->valueint);
                            v2 = nb;
                        }
                        if (!v2) {
                            ERR(L, xp, "must be a string, got %s", jtype(x));
                        } else if (!strcmp(v2, "timeout")) {
                            rp->on_timeout = 1;
                        } else if (!strcmp(v2, "connect")) {
                            rp->on_connect = 1;
                        } else if (!strcmp(v2, "malformed")) {
                            rp->on_malformed = 1;
                        } else if ((v2[0] == '4' || v2[0] == '5') && !strcmp(v2 + 1, "xx")) {
                            for (int st = (v2[0] - '0') * 100; st < (v2[0] - '0') * 100 + 100; st++)
                                rp->status_on[(st - 400) / 8] |= (uint8_t)(1u << ((st - 400) % 8));
                        } else if (strlen(v2) == 3 && isdigit((unsigned char)v2[0]) && isdigit((unsigned char)v2[1]) &&
                                   isdigit((unsigned char)v2[2]) && atoi(v2) >= 400 && atoi(v2) < 600) {
                            int st = atoi(v2);
                            rp->status_on[(st - 400) / 8] |= (uint8_t)(1u << ((st - 400) % 8));
                        } else {
                            ERR(L, xp, "unknown failure '%s' (use a status 400-599 such as \"429\", \"4xx\", "
                                       "\"5xx\", \"timeout\", \"connect\" or \"malformed\")", v2);
                        }
                    }
                }
            }
        }
    }
    /* fallback */
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(e, "fallback");
    if (fb) {
        static const char *const fk[] = {"context_window", "content_policy", "stream_continue", "overflow"};
        pkey(q, p, "fallback");
        if (check_obj(L, fb, q, "fallback", fk, NKEYS(fk))) {
            const char *cw = get_str(L, fb, "context_window", q, 0, 0);
            if (cw) {
                rp->fb_context = route_target(r->targets, r->ntargets, cw);
                if (!rp->fb_context && !target_disabled(L, r, cw)) {
                    pkey(s, q, "context_window");
                    ERR(L, s, "no target named '%s' in this route", cw);
                }
                r->need_estimate = 1;
            }
            const char *ov = get_str(L, fb, "overflow", q, 0, 0);
            if (ov) {
                rp->fb_overflow = route_target(r->targets, r->ntargets, ov);
                if (!rp->fb_overflow && !target_disabled(L, r, ov)) {
                    pkey(s, q, "overflow");
                    ERR(L, s, "no target named '%s' in this route", ov);
                }
            }
            int b = 0;
            if (get_bool(L, fb, "content_policy", q, &b) == 1)
                rp->fb_content_policy = (unsigned)b;
            b = 0;
            if (get_bool(L, fb, "stream_continue", q, &b) == 1) {
                rp->stream_continue = (unsigned)b;
                if (b && r->api != AIGW_API_CHAT && r->api != AIGW_API_MESSAGES) {
                    pkey(s, q, "stream_continue");
                    ERR(L, s, "stream continuation works on chat and messages routes only");
                }
            }
        }
    }
    /* breaker */
    cfg_breaker *br = &r->breaker;
    br->failure_rate = 0.5;
    br->min_requests = 10;
    br->window_ms = 30000;
    br->cooldown_ms = 15000;
    br->probes = 1;
    const cJSON *bj = cJSON_GetObjectItemCaseSensitive(e, "breaker");
    if (bj) {
        static const char *const bk[] = {"enabled", "failure_rate", "min_requests", "window_ms", "cooldown_ms",
                                         "probes"};
        pkey(q, p, "breaker");
        if (check_obj(L, bj, q, "breaker", bk, NKEYS(bk))) {
            br->enabled = 1;
            get_bool(L, bj, "enabled", q, &br->enabled);
            const cJSON *fr = cJSON_GetObjectItemCaseSensitive(bj, "failure_rate");
            if (fr) {
                pkey(s, q, "failure_rate");
                if (!cJSON_IsNumber(fr) || !(fr->valuedouble > 0) || fr->valuedouble > 1)
                    ERR(L, s, "must be a number in (0, 1], e.g. 0.5, got %s", jtype(fr));
                else
                    br->failure_rate = fr->valuedouble;
            }
            get_u32(L, bj, "min_requests", q, 1, &br->min_requests);
            get_u32(L, bj, "window_ms", q, 10, &br->window_ms);
            get_u32(L, bj, "cooldown_ms", q, 1, &br->cooldown_ms);
            get_u32(L, bj, "probes", q, 1, &br->probes);
        }
    }
}

static void load_hedge(ld *L, cfg_route *r, const cJSON *e, const char *p)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(e, "hedge");
    char q[PMAX], s[PMAX];
    if (!h)
        return;
    static const char *const hk[] = {"delay_ms", "min_delay_ms", "max_delay_ms"};
    pkey(q, p, "hedge");
    if (!check_obj(L, h, q, "hedge", hk, NKEYS(hk)))
        return;
    r->hedge = 1;
    r->hedge_min_ms = 50;
    r->hedge_max_ms = 10000;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(h, "delay_ms");
    pkey(s, q, "delay_ms");
    if (!d) {
        ERR(L, q, "missing required key 'delay_ms' (milliseconds, or \"p95\" for the primary target's observed p95)");
    } else if (cJSON_IsString(d) && !strcmp(d->valuestring, "p95")) {
        r->hedge_delay_ms = 0;
    } else if (cJSON_IsNumber(d) && d->valuedouble >= 1 && d->valuedouble <= 600000 && floor(d->valuedouble) == d->valuedouble) {
        r->hedge_delay_ms = (uint32_t)d->valuedouble;
    } else {
        ERR(L, s, "must be milliseconds (1-600000) or \"p95\", got %s", jtype(d));
    }
    get_u32(L, h, "min_delay_ms", q, 1, &r->hedge_min_ms);
    get_u32(L, h, "max_delay_ms", q, 1, &r->hedge_max_ms);
    if (r->hedge_max_ms < r->hedge_min_ms)
        ERR(L, q, "max_delay_ms must not be below min_delay_ms");
}

static void load_health(ld *L, cfg_route *r, const cJSON *e, const char *p)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(e, "health_check");
    char q[PMAX];
    if (!h)
        return;
    static const char *const hk[] = {"interval_ms", "timeout_ms", "unhealthy_after"};
    pkey(q, p, "health_check");
    if (!check_obj(L, h, q, "health_check", hk, NKEYS(hk)))
        return;
    r->hc = 1;
    r->hc_interval_ms = 10000;
    r->hc_timeout_ms = 3000;
    r->hc_unhealthy = 2;
    get_u32(L, h, "interval_ms", q, 100, &r->hc_interval_ms);
    get_u32(L, h, "timeout_ms", q, 10, &r->hc_timeout_ms);
    get_u32(L, h, "unhealthy_after", q, 1, &r->hc_unhealthy);
    if (!r->breaker.enabled) /* the checks act through the targets' breakers */
        r->breaker.enabled = 1;
}

/* After the catalog: each leaf's context window (unless given) and price. */
static void route_catalog(cfg_gen *g)
{
    for (size_t i = 0; i < g->nroutes; i++) {
        cfg_route *r = &g->routes[i];
        for (size_t k = 0; k < r->nleaves; k++) {
            cfg_target *t = r->leaves[k];
            const cat_model *m = t->model ? catalog_find(g->catalog, t->model, strlen(t->model)) : NULL;
            if (!m)
                continue;
            if (!t->context_window)
                t->context_window = m->context_window;
            if (cat_model_priced(m))
                t->price = m->base.input + m->base.output;
        }
    }
}

static void load_timeouts(ld *L, cfg_route *r, const cJSON *t, const char *path)
{
    static const char *const tkeys[] = {"connect_ms", "first_byte_ms", "idle_ms", "total_ms"};
    char p[PMAX];
    r->timeouts.connect_ms = 10000;
    r->timeouts.first_byte_ms = 120000;
    r->timeouts.idle_ms = 60000;
    r->timeouts.total_ms = 0;
    if (!t)
        return;
    pkey(p, path, "timeouts");
    if (!check_obj(L, t, p, "timeouts", tkeys, NKEYS(tkeys)))
        return;
    get_u32(L, t, "connect_ms", p, 1, &r->timeouts.connect_ms);
    get_u32(L, t, "first_byte_ms", p, 1, &r->timeouts.first_byte_ms);
    get_u32(L, t, "idle_ms", p, 1, &r->timeouts.idle_ms);
    get_u32(L, t, "total_ms", p, 0, &r->timeouts.total_ms);
}

/* A route entry with the same name replaces (or disables) the global instance. */
static int overridden(const pentry *own, size_t nown, const char *name)
{
    for (size_t k = 0; k < nown; k++)
        if (own[k].name && strcmp(own[k].name, name) == 0)
            return 1;
    return 0;
}

/* Builds r->plugins: global instances not overridden by a route entry, plus the route's own
 * instances, as per-route copies with their index, sorted by priority desc then name. */
static void build_route_plugins(ld *L, cfg_route *r, const pentry *glob, size_t nglob,
                                const pentry *own, size_t nown)
{
    size_t n = 0;
    for (size_t i = 0; i < nglob; i++)
        if (glob[i].inst && !overridden(own, nown, glob[i].name))
            n++;
    for (size_t k = 0; k < nown; k++)
        if (own[k].inst)
            n++;
    if (n == 0)
        return;
    /* one block: n pointers, then n records (pointers first keeps the records aligned enough) */
    cfg_plugin **ptrs = calloc(1, n * sizeof(cfg_plugin *) + n * sizeof(cfg_plugin));
    if (!ptrs) {
        ERR(L, "", "out of memory");
        return;
    }
    cfg_plugin *recs = (cfg_plugin *)(void *)(ptrs + n);
    size_t m = 0;
    for (size_t i = 0; i < nglob; i++) {
        if (glob[i].inst && !overridden(own, nown, glob[i].name)) {
            recs[m] = *glob[i].inst;
            ptrs[m] = &recs[m];
            m++;
        }
    }
    for (size_t k = 0; k < nown; k++) {
        if (own[k].inst) {
            recs[m] = *own[k].inst;
            ptrs[m] = &recs[m];
            m++;
        }
    }
    qsort(ptrs, n, sizeof *ptrs, cmp_plugin);
    for (size_t i = 0; i < n; i++)
        ptrs[i]->index = (uint32_t)i;
    r->plugins = ptrs;
    r->nplugins = n;
}

static size_t count_plugin_entries(const cJSON *root)
{
    size_t n = 0;
    const cJSON *gp = cJSON_GetObjectItemCaseSensitive(root, "plugins");
    if (cJSON_IsArray(gp))
        n += (size_t)cJSON_GetArraySize(gp);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "routes");
    if (cJSON_IsArray(rs)) {
        for (const cJSON *r = rs->child; r; r = r->next) {
            const cJSON *rp = cJSON_GetObjectItemCaseSensitive(r, "plugins");
            if (cJSON_IsArray(rp))
                n += (size_t)cJSON_GetArraySize(rp);
        }
    }
    return n;
}

static void load_routes(ld *L, const cJSON *root)
{
    static const char *const rkeys[] = {"name",    "match",   "api",   "targets",  "timeouts", "plugins",
                                        "strategy", "hash_key", "aliases", "rules", "retry",    "fallback",
                                        "breaker", "hedge", "health_check"};
    cfg_gen *g = L->g;
    char p[PMAX], q[PMAX];

    /* global plugins first: routes refer to them */
    const cJSON *gp = cJSON_GetObjectItemCaseSensitive(root, "plugins");
    pentry *glob = NULL;
    size_t nglob = 0;
    if (gp && !cJSON_IsArray(gp)) {
        ERR(L, "/plugins", "must be an array of {\"name\", \"config\"} objects, got %s", jtype(gp));
    } else if (gp) {
        size_t n = (size_t)cJSON_GetArraySize(gp);
        glob = calloc(n ? n : 1, sizeof *glob);
        if (glob)
            nglob = load_plugin_list(L, gp, "/plugins", glob, "plugin entry");
    }

    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "routes");
    if (!rs) {
        ERR(L, "", "missing required key 'routes' (an array of routes, e.g. [{\"name\": \"chat\", "
                   "\"match\": {\"path\": \"/v1/chat/completions\"}, \"api\": \"chat\", \"targets\": "
                   "[{\"provider\": \"openai\"}]}])");
        goto done;
    }
    if (!cJSON_IsArray(rs) || cJSON_GetArraySize(rs) == 0) {
        ERR(L, "/routes", "must be a non-empty array of routes, got %s",
            cJSON_IsArray(rs) ? "an empty array" : jtype(rs));
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(rs), i = 0;
    g->routes = calloc(n, sizeof *g->routes);
    if (!g->routes) {
        ERR(L, "", "out of memory");
        goto done;
    }
    for (const cJSON *e = rs->child; e; e = e->next, i++) {
        cfg_route *r = &g->routes[g->nroutes++];
        r->route_index = i;
        r->methods = CFG_M_ANY;
        pidx(p, "/routes", i);
        if (!check_obj(L, e, p, "route", rkeys, NKEYS(rkeys)))
            continue;
        const char *name = get_str(L, e, "name", p, 1, 0);
        if (name) {
            for (size_t k = 0; k < i; k++) {
                if (g->routes[k].name && strcmp(g->routes[k].name, name) == 0) {
                    pkey(q, p, "name");
                    ERR(L, q, "route name '%s' is already used by /routes/%zu; names must be unique",
                        name, k);
                    break;
                }
            }
            r->name = xstrdup(L, name);
        }
        load_match(L, r, cJSON_GetObjectItemCaseSensitive(e, "match"), p);
        const char *api = get_str(L, e, "api", p, 1, 0);
        if (api) {
            size_t k;
            for (k = 0; k < NKEYS(apis); k++)
                if (strcmp(api, apis[k].name) == 0)
                    break;
            if (k < NKEYS(apis)) {
                r->api = apis[k].api;
            } else {
                const char *names[NKEYS(apis)];
                for (k = 0; k < NKEYS(apis); k++)
                    names[k] = apis[k].name;
                const char *sug = suggest(api, names, NKEYS(apis));
                pkey(q, p, "api");
                ERR(L, q, "unknown api '%s'%s%s%s (use chat, embeddings, models, messages, responses "
                          "or passthrough)",
                    api, sug ? ", did you mean '" : "", sug ? sug : "", sug ? "'?" : "");
            }
        }
        load_targets(L, r, cJSON_GetObjectItemCaseSensitive(e, "targets"), p);
        load_timeouts(L, r, cJSON_GetObjectItemCaseSensitive(e, "timeouts"), p);
        load_routing(L, r, e, p);
        load_hedge(L, r, e, p);
        load_health(L, r, e, p);

        const cJSON *rp = cJSON_GetObjectItemCaseSensitive(e, "plugins");
        pentry *own = NULL;
        size_t nown = 0;
        pkey(q, p, "plugins");
        if (rp && !cJSON_IsArray(rp)) {
            ERR(L, q, "must be an array of {\"name\", \"config\"} objects, got %s", jtype(rp));
        } else if (rp) {
            size_t m = (size_t)cJSON_GetArraySize(rp);
            own = calloc(m ? m : 1, sizeof *own);
            if (own)
                nown = load_plugin_list(L, rp, q, own, "plugin entry");
            /* enabled:false must name a global plugin, or it is likely a typo */
            for (size_t k = 0; k < nown; k++) {
                if (!own[k].name || own[k].enabled)
                    continue;
                size_t j;
                for (j = 0; j < nglob; j++)
                    if (glob[j].name && strcmp(glob[j].name, own[k].name) == 0)
                        break;
                if (j == nglob) {
                    char kp[PMAX], np[PMAX];
                    pidx(kp, q, k);
                    pkey(np, kp, "name");
                    ERR(L, np, "\"enabled\": false disables a global plugin on this route, but no "
                               "global plugin is named '%s'", own[k].name);
                }
            }
        }
        build_route_plugins(L, r, glob, nglob, own, nown);
        free(own);
    }
done:
    free(glob);
}

/* ---- pass 7: the model catalog ------------------------------------------------------------ */

static void json_syntax_error(ld *L, const char *path, const char *text, size_t len, const char *at);

/* Reads a whole file into malloc'd memory (NUL-terminated). Returns NULL with errno set. */
static char *slurp(const char *path, size_t *lenp)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65537 > cap) {
            cap = cap ? cap * 2 : 65537 * 2;
            char *t = realloc(text, cap);
            if (!t) {
                free(text);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            text = t;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(text);
        errno = EIO;
        return NULL;
    }
    text[len] = '\0';
    *lenp = len;
    return text;
}

static const struct {
    const char *name;
    uint32_t bit;
} capnames[] = {{"tools", CAT_CAP_TOOLS},
                {"vision", CAT_CAP_VISION},
                {"reasoning", CAT_CAP_REASONING},
                {"embeddings", CAT_CAP_EMBEDDINGS},
                {"json_schema", CAT_CAP_JSON_SCHEMA}};

/* The models being built: every entry of the catalog file, then the config's "models" merged in.
 * src[i] is the JSON pointer where model i's aliases came from (for clash messages). */
typedef struct mlist {
    cat_model *v;
    char **src;
    size_t n, cap;
} mlist;

static cat_model *mlist_add(ld *L, mlist *ml, const char *name, const char *src)
{
    if (ml->n == ml->cap) {
        size_t cap = ml->cap ? ml->cap * 2 : 64;
        cat_model *v = realloc(ml->v, cap * sizeof *v);
        if (v)
            ml->v = v;
        char **s = realloc(ml->src, cap * sizeof *s);
        if (s)
            ml->src = s;
        if (!v || !s) {
            ERR(L, "", "out of memory");
            return NULL;
        }
        ml->cap = cap;
    }
    cat_model *m = &ml->v[ml->n];
    memset(m, 0, sizeof *m);
    m->base = m->longc = (cat_rates){-1, -1, -1, -1};
    m->name = xstrdup(L, name);
    ml->src[ml->n] = xstrdup(L, src);
    ml->n++;
    return m;
}

static void free_aliases(cat_model *m)
{
    for (size_t i = 0; i < m->naliases; i++)
        free(m->aliases[i]);
    free(m->aliases);
    m->aliases = NULL;
    m->naliases = 0;
}

/* Reads a price (USD per million tokens): a finite number >= 0. Returns 1 read, 0 absent, -1 bad. */
static int get_price(ld *L, const cJSON *obj, const char *key, const char *path, double *out)
{
    char p[PMAX];
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j)
        return 0;
    pkey(p, path, key);
    if (!cJSON_IsNumber(j)) {
        ERR(L, p, "must be a price in USD per million tokens (a number), got %s", jtype(j));
        return -1;
    }
    double v = j->valuedouble;
    if (!isfinite(v) || v < 0) {
        ERR(L, p, "must be >= 0 (USD per million tokens), got %g", v);
        return -1;
    }
    if (v > 1e6) {
        ERR(L, p, "must be at most 1000000 USD per million tokens, got %g (a price per token "
                  "must be multiplied by 1000000)", v);
        return -1;
    }
    *out = v;
    return 1;
}

static void get_rates(ld *L, const cJSON *obj, const char *path, cat_rates *r)
{
    get_price(L, obj, "input", path, &r->input);
    get_price(L, obj, "output", path, &r->output);
    get_price(L, obj, "cached_input", path, &r->cached_input);
    get_price(L, obj, "cache_write", path, &r->cache_write);
}

/* Reads one model entry at path into m: every field given replaces m's (m may hold the catalog's
 * entry that a config entry overrides). Keys starting with '_' are comments. */
static void parse_model(ld *L, const cJSON *e, const char *path, cat_model *m, char **alias_src)
{
    static const char *const mkeys[] = {"provider", "aliases", "context_window",
                                        "max_output_tokens", "pricing", "capabilities"};
    static const char *const prkeys[] = {"input", "output", "cached_input", "cache_write",
                                         "long_context"};
    static const char *const lckeys[] = {"above_input_tokens", "input", "output", "cached_input",
                                         "cache_write"};
    char p[PMAX], q[PMAX];
    if (!check_obj_x(L, e, path, "model entry", mkeys, NKEYS(mkeys), 1))
        return;
    const char *prov = get_str(L, e, "provider", path, 0, 0);
    if (prov) {
        free(m->provider);
        m->provider = xstrdup(L, prov);
    }
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(e, "aliases");
    if (al) {
        pkey(p, path, "aliases");
        if (!cJSON_IsArray(al)) {
            ERR(L, p, "must be an array of model names, got %s", jtype(al));
        } else {
            free_aliases(m);
            size_t n = (size_t)cJSON_GetArraySize(al), i = 0;
            m->aliases = calloc(n ? n : 1, sizeof *m->aliases);
            if (!m->aliases)
                ERR(L, "", "out of memory");
            for (const cJSON *a = al->child; a && m->aliases; a = a->next, i++) {
                pidx(q, p, i);
                if (!cJSON_IsString(a) || !*a->valuestring)
                    ERR(L, q, "must be a non-empty model name, got %s", jtype(a));
                else
                    m->aliases[m->naliases++] = xstrdup(L, a->valuestring);
            }
            free(*alias_src);
            *alias_src = xstrdup(L, p);
        }
    }
    get_u32(L, e, "context_window", path, 1, &m->context_window);
    get_u32(L, e, "max_output_tokens", path, 1, &m->max_output_tokens);
    if (m->context_window && m->max_output_tokens > m->context_window) {
        pkey(p, path, "max_output_tokens");
        ERR(L, p, "is %u, more than the context window (%u)", (unsigned)m->max_output_tokens,
            (unsigned)m->context_window);
    }
    const cJSON *caps = cJSON_GetObjectItemCaseSensitive(e, "capabilities");
    if (caps) {
        pkey(p, path, "capabilities");
        if (!cJSON_IsArray(caps)) {
            ERR(L, p, "must be an array of capability names, got %s", jtype(caps));
        } else {
            const char *names[NKEYS(capnames)];
            for (size_t k = 0; k < NKEYS(capnames); k++)
                names[k] = capnames[k].name;
            m->caps = 0;
            size_t i = 0;
            for (const cJSON *c = caps->child; c; c = c->next, i++) {
                pidx(q, p, i);
                if (!cJSON_IsString(c)) {
                    ERR(L, q, "must be a capability name, got %s", jtype(c));
                    continue;
                }
                size_t k;
                for (k = 0; k < NKEYS(capnames); k++)
                    if (strcmp(c->valuestring, capnames[k].name) == 0)
                        break;
                if (k < NKEYS(capnames)) {
                    m->caps |= capnames[k].bit;
                    continue;
                }
                const char *sug = suggest(c->valuestring, names, NKEYS(capnames));
                ERR(L, q, "unknown capability '%s'%s%s%s (known: tools, vision, reasoning, "
                          "embeddings, json_schema)",
                    c->valuestring, sug ? ", did you mean '" : "", sug ? sug : "", sug ? "'?" : "");
            }
        }
    }
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(e, "pricing");
    pkey(p, path, "pricing");
    if (pr && check_obj_x(L, pr, p, "pricing", prkeys, NKEYS(prkeys), 1)) {
        get_rates(L, pr, p, &m->base);
        const cJSON *lc = cJSON_GetObjectItemCaseSensitive(pr, "long_context");
        pkey(q, p, "long_context");
        if (cJSON_IsNull(lc)) {
            m->long_above = 0;
            m->longc = (cat_rates){-1, -1, -1, -1};
        } else if (lc && check_obj_x(L, lc, q, "long_context", lckeys, NKEYS(lckeys), 1)) {
            double v;
            int r = get_int(L, lc, "above_input_tokens", q, 1, 9007199254740992.0, &v);
            if (r == 1)
                m->long_above = (uint64_t)v;
            else if (r == 0 && !m->long_above)
                ERR(L, q, "missing required key 'above_input_tokens' (prompts of more input tokens "
                          "are priced at these rates)");
            get_rates(L, lc, q, &m->longc);
        }
    }
    /* the merged entry: both base prices or none (an unpriced model logs cost_unknown) */
    if ((m->base.input >= 0) != (m->base.output >= 0))
        ERR(L, p, "needs both 'input' and 'output' (USD per million tokens; write \"output\": 0 "
                  "for an embeddings model)");
    else if (m->long_above && m->base.input < 0)
        ERR(L, p, "has a long_context tier but no 'input' and 'output' prices");
}

/* Index of the model named (not aliased) name, or -1. */
static long mlist_find(const mlist *ml, const char *name)
{
    for (size_t i = 0; i < ml->n; i++)
        if (ml->v[i].name && strcmp(ml->v[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* Index of the model that has alias name (and the alias's slot in *slot), or -1. */
static long mlist_find_alias(const mlist *ml, const char *name, size_t *slot)
{
    for (size_t i = 0; i < ml->n; i++)
        for (size_t a = 0; ml->v[i].name && a < ml->v[i].naliases; a++)
            if (strcmp(ml->v[i].aliases[a], name) == 0) {
                *slot = a;
                return (long)i;
            }
    return -1;
}

/* Copies src's fields (not its name and aliases) into the fresh record dst. */
static void copy_model(ld *L, cat_model *dst, const cat_model *src)
{
    dst->provider = xstrdup(L, src->provider);
    dst->context_window = src->context_window;
    dst->max_output_tokens = src->max_output_tokens;
    dst->caps = src->caps;
    dst->base = src->base;
    dst->long_above = src->long_above;
    dst->longc = src->longc;
}

/* Every name and alias must name one model. */
static void check_clashes(ld *L, const mlist *ml)
{
    char p[PMAX];
    for (size_t i = 0; i < ml->n; i++) {
        const cat_model *m = &ml->v[i];
        if (!m->name)
            continue;
        for (size_t a = 0; a < m->naliases; a++) {
            const char *k = m->aliases[a];
            pidx(p, ml->src[i] ? ml->src[i] : "", a);
            if (strcmp(k, m->name) == 0)
                continue; /* harmless */
            for (size_t j = 0; j < ml->n; j++) {
                const cat_model *o = &ml->v[j];
                if (!o->name)
                    continue;
                int clash = strcmp(o->name, k) == 0;
                for (size_t b = 0; !clash && j < i && b < o->naliases; b++)
                    clash = strcmp(o->aliases[b], k) == 0;
                for (size_t b = 0; !clash && j == i && b < a; b++)
                    clash = strcmp(o->aliases[b], k) == 0;
                if (clash) {
                    ERR(L, p, "'%s' already names model '%s'; a name or alias may belong to one "
                              "model only", k, o->name);
                    break;
                }
            }
        }
    }
}

/* Applies one entry of the config's "models" to ml. Returns 0 when out of memory. */
static int apply_override(ld *L, mlist *ml, const cJSON *e)
{
    char q[PMAX];
    pkey(q, "/models", e->string);
    if (!*e->string) {
        ERR(L, q, "model names must not be empty");
        return 1;
    }
    long i = mlist_find(ml, e->string);
    if (cJSON_IsNull(e)) {
        if (i < 0)
            ERR(L, q, "null removes a catalog model, but the catalog has no model '%s'", e->string);
        else
            cat_model_clear(&ml->v[i]); /* name NULL: skipped from now on */
        return 1;
    }
    if (i >= 0) {
        parse_model(L, e, q, &ml->v[i], &ml->src[i]);
        return 1;
    }
    size_t slot = 0;
    long a = mlist_find_alias(ml, e->string, &slot);
    cat_model *m = mlist_add(L, ml, e->string, NULL);
    if (!m)
        return 0;
    if (a >= 0) {
        /* an alias gets its own entry, starting from the aliased model's fields */
        cat_model *base = &ml->v[a];
        copy_model(L, m, base);
        free(base->aliases[slot]);
        memmove(base->aliases + slot, base->aliases + slot + 1,
                (base->naliases - slot - 1) * sizeof *base->aliases);
        base->naliases--;
    }
    parse_model(L, e, q, m, &ml->src[ml->n - 1]);
    return 1;
}

static void load_catalog(ld *L, const cJSON *root, const char *base_dir)
{
    mlist ml = {0};
    char p[PMAX], q[PMAX];
    cJSON *file = NULL;

    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(root, "model_catalog");
    if (mc && !cJSON_IsNull(mc)) {
        const char *f = get_str(L, root, "model_catalog", "", 0, 0);
        char fpath[4096];
        if (f) {
            if (f[0] == '/' || !base_dir || !*base_dir)
                snprintf(fpath, sizeof fpath, "%s", f);
            else
                snprintf(fpath, sizeof fpath, "%s/%s", base_dir, f);
            size_t len = 0;
            char *text = slurp(fpath, &len);
            if (!text) {
                ERR(L, "/model_catalog", "cannot read the model catalog '%s': %s (a relative path "
                                          "is relative to the config file's folder)",
                    fpath, strerror(errno));
            } else {
                /* errors inside the file are reported as "<file>#<JSON pointer>" */
                char fbase[PMAX];
                if (snprintf(fbase, sizeof fbase, "%.1000s#", fpath) < 0)
                    fbase[0] = '\0';
                const char *end = NULL;
                file = cJSON_ParseWithOpts(text, &end, 1);
                if (!file) {
                    json_syntax_error(L, fbase, text, len, end);
                } else if (check_obj_x(L, file, fbase, "the model catalog", (const char *const[]){"models"},
                                       1, 1)) {
                    const cJSON *models = cJSON_GetObjectItemCaseSensitive(file, "models");
                    pkey(p, fbase, "models");
                    if (!models)
                        ERR(L, fbase, "missing required key 'models' (an object: model name -> entry)");
                    else if (check_obj(L, models, p, "models", NULL, 0)) {
                        for (const cJSON *e = models->child; e; e = e->next) {
                            if (e->string[0] == '_')
                                continue; /* a comment */
                            pkey(q, p, e->string);
                            if (!*e->string) {
                                ERR(L, q, "model names must not be empty");
                                continue;
                            }
                            cat_model *m = mlist_add(L, &ml, e->string, NULL);
                            if (!m)
                                break;
                            parse_model(L, e, q, m, &ml.src[ml.n - 1]);
                        }
                    }
                }
                free(text);
            }
        }
    }

    /* the config's own entries: override a catalog model field by field, or add one; null removes.
     * Entries named by an alias of a catalog model go second, so that they start from the model
     * with its overrides applied whatever the order of the keys. */
    const cJSON *ov = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (ov && check_obj(L, ov, "/models", "models", NULL, 0)) {
        size_t nov = (size_t)cJSON_GetArraySize(ov), k = 0, slot;
        unsigned char *second = calloc(nov ? nov : 1, 1);
        if (!second)
            ERR(L, "", "out of memory");
        for (const cJSON *e = ov->child; e && second; e = e->next, k++)
            second[k] = mlist_find(&ml, e->string) < 0 && mlist_find_alias(&ml, e->string, &slot) >= 0;
        for (int pass = 0; pass < 2 && second; pass++) {
            k = 0;
            for (const cJSON *e = ov->child; e; e = e->next, k++) {
                if (e->string[0] == '_' || second[k] != pass)
                    continue;
                if (!apply_override(L, &ml, e)) {
                    pass = 2;
                    break;
                }
            }
        }
        free(second);
    }
    check_clashes(L, &ml);
    cJSON_Delete(file);

    /* keep the models that were not removed */
    size_t n = 0;
    for (size_t i = 0; i < ml.n; i++) {
        free(ml.src[i]);
        ml.src[i] = NULL;
        if (ml.v[i].name)
            ml.v[n++] = ml.v[i];
    }
    free(ml.src);
    L->g->catalog = catalog_new(ml.v, n); /* takes ml.v */
    if (!L->g->catalog)
        ERR(L, "", "out of memory");
}

/* ---- load ---------------------------------------------------------------------------------- */

static void json_syntax_error(ld *L, const char *path, const char *text, size_t len, const char *at)
{
    size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : len;
    size_t line = 1, col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char near[24];
    size_t k = 0;
    for (size_t i = off; i < len && k < 16 && text[i] != '\n'; i++)
        near[k++] = text[i];
    near[k] = '\0';
    if (off >= len)
        ERR(L, path, "invalid JSON at line %zu, column %zu: unexpected end of file (missing '}' or ']'?)",
            line, col);
    else
        ERR(L, path, "invalid JSON at line %zu, column %zu, near '%s'", line, col, near);
}

cfg_gen *cfg_load_text(const char *text, size_t len, const char *base_dir, cfg_errors *errs)
{
    static const char *const topkeys[] = {"listen",     "workers", "admin",     "plugin_paths",
                                          "access_log", "limits",  "drain_timeout_ms",
                                          "providers",  "routes",  "plugins",
                                          "model_catalog", "models", "store"};
    /* Relative paths are relative to the working directory (TLS files, plugin_paths), except the
     * model catalog's: relative to base_dir, the config file's folder. */
    cfg_errors local = {0};
    if (!errs)
        errs = &local;
    size_t nerr0 = errs->count;
    ld L = {.errs = errs};

    char *buf = malloc(len + 1);
    if (!buf) {
        ERR(&L, "", "out of memory");
        return NULL;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(buf, &end, 1);
    if (!root) {
        json_syntax_error(&L, "", buf, len, end);
        free(buf);
        cfg_errors_clear(&local);
        return NULL;
    }
    free(buf);

    cfg_gen *g = calloc(1, sizeof *g);
    if (!g) {
        cJSON_Delete(root);
        ERR(&L, "", "out of memory");
        return NULL;
    }
    g->root = root;
    atomic_init(&g->refs, 1);
    L.g = g;

    if (check_obj(&L, root, "", "the top level", topkeys, NKEYS(topkeys))) {
        find_disabled(&L, root);
        for (cJSON *c = root->child; c; c = c->next) {
            char p[PMAX];
            pkey(p, "", c->string);
            if (strcmp(c->string, "providers") == 0 && cJSON_IsObject(c)) {
                for (cJSON *pv = c->child; pv; pv = pv->next) {
                    if (is_disabled(&L, pv->string))
                        continue;
                    char pp[PMAX];
                    pkey(pp, p, pv->string);
                    expand_tree(&L, pv, pp);
                }
            } else {
                expand_tree(&L, c, p);
            }
        }
        load_listen(&L, root);
        load_admin(&L, root);
        load_misc(&L, root);
        L.plug_cap = count_plugin_entries(root);
        g->plugins = calloc(L.plug_cap ? L.plug_cap : 1, sizeof *g->plugins);
        if (!g->plugins)
            ERR(&L, "", "out of memory");
        else {
            load_providers(&L, root);
            load_routes(&L, root);
        }
        load_catalog(&L, root, base_dir);
        if (L.g->catalog)
            route_catalog(L.g);
    }
    free(L.disabled);

    int failed = errs->count > nerr0;
    cfg_errors_clear(&local);
    if (failed) {
        cfg_free(g);
        return NULL;
    }
    g->id = atomic_fetch_add(&cfg_next_id, 1);
    return g;
}

cfg_gen *cfg_load(const char *path, cfg_errors *errs)
{
    size_t len = 0;
    char *text = slurp(path, &len);
    if (!text) {
        if (errno == ENOMEM)
            cfg_errors_add(errs, "", "out of memory reading '%s'", path);
        else if (errno == EIO)
            cfg_errors_add(errs, "", "cannot read config file '%s'", path);
        else
            cfg_errors_add(errs, "", "cannot open config file '%s': %s", path, strerror(errno));
        return NULL;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir] = '\0'; /* "/aigw.json" -> "/" */
    else
        snprintf(dir, sizeof dir, ".");
    cfg_gen *g = cfg_load_text(text, len, dir, errs);
    free(text);
    return g;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

void gen_ref(cfg_gen *g) { atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed); }

int gen_unref(cfg_gen *g) { return atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1; }

void cfg_free(cfg_gen *g)
{
    if (!g)
        return;
    /* instances first, in reverse creation order (routes' plugins, globals, then providers) */
    for (size_t i = g->nplugins; i-- > 0;)
        destroy_instance(&g->plugins[i]);
    for (size_t i = g->nproviders; i-- > 0;) {
        destroy_instance(&g->providers[i].plugin);
        free(g->providers[i].name);
    }
    free(g->plugins);
    free(g->providers);
    for (size_t i = 0; i < g->nroutes; i++) {
        cfg_route *r = &g->routes[i];
        free(r->name);
        free(r->path);
        free(r->path_prefix);
        free(r->host);
        for (size_t k = 0; k < r->nheaders; k++) {
            free(r->headers[k].name);
            free(r->headers[k].value);
        }
        free(r->headers);
        for (size_t k = 0; k < r->ntargets; k++)
            free_target(&r->targets[k]);
        free(r->targets);
        balance_state_release(r->rstate);
        free(r->hash_name);
        for (size_t k = 0; k < r->naliases; k++) {
            free(r->aliases[k].name);
            free(r->aliases[k].order);
        }
        free(r->aliases);
        for (size_t k = 0; k < r->nrules; k++) {
            cfg_rule *ru = &r->rules[k];
            cfg_kv *lists[] = {ru->headers, ru->meta, ru->params};
            size_t ns[] = {ru->nheaders, ru->nmeta, ru->nparams};
            for (int l = 0; l < 3; l++) {
                for (size_t j = 0; j < ns[l]; j++) {
                    free(lists[l][j].k);
                    cJSON_Delete(lists[l][j].v);
                }
                free(lists[l]);
            }
            free(ru->model);
            free(ru->consumer);
            free(ru->order);
        }
        free(r->rules);
        free(r->plugins); /* one block with the per-route records */
    }
    free(g->routes);
    for (size_t i = 0; i < g->nlisten; i++) {
        free(g->listen[i].address);
        free(g->listen[i].tls_cert);
        free(g->listen[i].tls_key);
    }
    free(g->listen);
    free(g->admin.address);
    free(g->admin_token);
    for (size_t i = 0; i < g->nadmin_tokens; i++)
        free(g->admin_tokens[i].token);
    free(g->admin_tokens);
    for (size_t i = 0; i < g->nplugin_paths; i++)
        free(g->plugin_paths[i]);
    free(g->plugin_paths);
    free(g->access_log_path);
    free(g->redis_host);
    free(g->redis_password);
    free(g->redis_prefix);
    for (size_t i = 0; i < g->redis_nnodes; i++)
        free(g->redis_nodes[i]);
    catalog_free(g->catalog);
    cJSON_Delete(g->root);
    free(g);
}

/* ---- matching ------------------------------------------------------------------------------ */

static uint32_t method_bit(const char *m, size_t n)
{
    for (size_t k = 0; k < NKEYS(methods); k++)
        if (strlen(methods[k].name) == n && memcmp(methods[k].name, m, n) == 0)
            return methods[k].bit;
    return 0;
}

const cfg_route *cfg_match(const cfg_gen *g, const char *method, size_t mlen, const char *path,
                           size_t plen, const char *host, size_t hlen,
                           int (*get_header)(void *ud, const char *name, const char **v, size_t *vn),
                           void *ud)
{
    uint32_t mb = method ? method_bit(method, mlen) : 0;
    /* Host without its port: "[::1]:8080" -> "[::1]", "example.com:443" -> "example.com" */
    size_t hn = host ? hlen : 0;
    if (hn && host[0] == '[') {
        const char *rb = memchr(host, ']', hn);
        if (rb)
            hn = (size_t)(rb - host) + 1;
    } else if (hn) {
        const char *c = memchr(host, ':', hn);
        if (c)
            hn = (size_t)(c - host);
    }
    for (size_t i = 0; i < g->nroutes; i++) {
        const cfg_route *r = &g->routes[i];
        if (r->methods != CFG_M_ANY && !(r->methods & mb))
            continue;
        if (r->path && (strlen(r->path) != plen || memcmp(r->path, path, plen) != 0))
            continue;
        if (r->path_prefix) {
            size_t n = strlen(r->path_prefix);
            if (plen < n || memcmp(r->path_prefix, path, n) != 0)
                continue;
        }
        if (r->host && (strlen(r->host) != hn || strncasecmp(r->host, host, hn) != 0))
            continue;
        size_t k;
        for (k = 0; k < r->nheaders; k++) {
            const char *v = NULL;
            size_t vn = 0;
            if (!get_header || get_header(ud, r->headers[k].name, &v, &vn) != 0 || !v)
                break;
            if (vn != strlen(r->headers[k].value) || memcmp(v, r->headers[k].value, vn) != 0)
                break;
        }
        if (k < r->nheaders)
            continue;
        return r;
    }
    return NULL;
}
