/* test_config.c - config loading and validation, ${ENV} expansion, the plugin loader's checks,
 * route matching and plugin ordering.
 *
 * Test plugins (tests/plugins/test_*.c) are found in $AIGW_TEST_PLUGIN_DIR, else in the
 * test-plugins folder beside this binary. Configs below are written with ' for " to stay
 * readable; they name the plugin folder as ${TPD}, which exercises env expansion on the way. */
#include "config.h"
#include "plugin_loader.h"
#include "t.h"

#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

static char plugdir[PATH_MAX + 64];

/* ---- a stand-in host table, only while core/host.c does not exist (or when the test is built
 * by hand against config.c and plugin_loader.c alone, with -DAIGW_TEST_HOST_STUB) ------------- */
#if !__has_include("host.c") || defined(AIGW_TEST_HOST_STUB)
static const cJSON *cj(const aigw_json *j) { return (const cJSON *)(const void *)j; }
static const aigw_json *aj(const cJSON *j) { return (const aigw_json *)(const void *)j; }

static aigw_json_type sh_json_type(const aigw_json *j)
{
    const cJSON *c = cj(j);
    if (!c)
        return AIGW_JSON_INVALID;
    if (cJSON_IsNull(c))
        return AIGW_JSON_NULL;
    if (cJSON_IsFalse(c))
        return AIGW_JSON_FALSE;
    if (cJSON_IsTrue(c))
        return AIGW_JSON_TRUE;
    if (cJSON_IsNumber(c))
        return AIGW_JSON_NUMBER;
    if (cJSON_IsString(c))
        return AIGW_JSON_STRING;
    if (cJSON_IsArray(c))
        return AIGW_JSON_ARRAY;
    if (cJSON_IsObject(c))
        return AIGW_JSON_OBJECT;
    return AIGW_JSON_INVALID;
}
static const aigw_json *sh_json_get(const aigw_json *o, const char *k)
{
    return cJSON_IsObject(cj(o)) ? aj(cJSON_GetObjectItemCaseSensitive(cj(o), k)) : NULL;
}
static const aigw_json *sh_json_at(const aigw_json *a, size_t i)
{
    return cJSON_IsArray(cj(a)) ? aj(cJSON_GetArrayItem(cj(a), (int)i)) : NULL;
}
static size_t sh_json_len(const aigw_json *j) { return j ? (size_t)cJSON_GetArraySize(cj(j)) : 0; }
static const aigw_json *sh_json_pointer(const aigw_json *j, const char *ptr)
{
    const cJSON *c = cj(j);
    char tok[256];
    while (c && *ptr == '/') {
        ptr++;
        size_t n = 0;
        while (*ptr && *ptr != '/' && n + 1 < sizeof tok) {
            if (ptr[0] == '~' && ptr[1] == '0') {
                tok[n++] = '~';
                ptr += 2;
            } else if (ptr[0] == '~' && ptr[1] == '1') {
                tok[n++] = '/';
                ptr += 2;
            } else {
                tok[n++] = *ptr++;
            }
        }
        tok[n] = '\0';
        c = cJSON_IsArray(c) ? cJSON_GetArrayItem(c, atoi(tok))
                             : cJSON_GetObjectItemCaseSensitive(c, tok);
    }
    return aj(c);
}
static int sh_json_str(const aigw_json *j, aigw_str *out)
{
    if (!cJSON_IsString(cj(j)))
        return AIGW_E_INVAL;
    out->p = cj(j)->valuestring;
    out->n = strlen(out->p);
    return AIGW_OK;
}
static int sh_json_num(const aigw_json *j, double *out)
{
    if (!cJSON_IsNumber(cj(j)))
        return AIGW_E_INVAL;
    *out = cj(j)->valuedouble;
    return AIGW_OK;
}
static int sh_json_bool(const aigw_json *j, int *out)
{
    if (!cJSON_IsBool(cj(j)))
        return AIGW_E_INVAL;
    *out = cJSON_IsTrue(cj(j));
    return AIGW_OK;
}
static void sh_diag_error(aigw_diag *d, const char *ptr, const char *fmt, ...)
{
    char msg[512], path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(path, sizeof path, "%s%s", d->prefix ? d->prefix : "", ptr ? ptr : "");
    cfg_errors_add(d->errs, path, "plugin '%s': %s", d->plugin ? d->plugin : "?", msg);
    d->nerrors++;
}
static void *sh_alloc(size_t n) { return malloc(n); }
static void sh_free(void *p) { free(p); }

const aigw_host *host_table(void)
{
    static aigw_host h;
    if (!h.struct_size) {
        h.abi_major = AIGW_ABI_MAJOR;
        h.abi_minor = AIGW_ABI_MINOR;
        h.alloc = sh_alloc;
        h.free = sh_free;
        h.json_type = sh_json_type;
        h.json_get = sh_json_get;
        h.json_at = sh_json_at;
        h.json_len = sh_json_len;
        h.json_pointer = sh_json_pointer;
        h.json_str = sh_json_str;
        h.json_num = sh_json_num;
        h.json_bool = sh_json_bool;
        h.diag_error = sh_diag_error;
        h.struct_size = (uint32_t)sizeof h;
    }
    return &h;
}
#endif

/* ---- helpers ------------------------------------------------------------------------------ */

/* Loads text with every ' turned into ". */
static cfg_gen *load(const char *text, cfg_errors *errs)
{
    size_t n = strlen(text);
    char *t = malloc(n + 1);
    for (size_t i = 0; i <= n; i++)
        t[i] = text[i] == '\'' ? '"' : text[i];
    cfg_gen *g = cfg_load_text(t, n, ".", errs);
    free(t);
    return g;
}

static void dump_errs(const cfg_errors *e)
{
    for (const cfg_error *x = e->head; x; x = x->next)
        fprintf(stderr, "    [%s] %s\n", x->path, x->message);
}

/* 1 when some error is at exactly path and its message contains every substring given. */
static int has_err(const cfg_errors *e, const char *path, const char *sub, const char *sub2)
{
    for (const cfg_error *x = e->head; x; x = x->next)
        if (strcmp(x->path, path) == 0 && (!sub || strstr(x->message, sub)) &&
            (!sub2 || strstr(x->message, sub2)))
            return 1;
    fprintf(stderr, "  expected an error at '%s' containing '%s'%s%s%s; got:\n", path, sub ? sub : "",
            sub2 ? " and '" : "", sub2 ? sub2 : "", sub2 ? "'" : "");
    dump_errs(e);
    return 0;
}

static int *live_counter(const char *plugin, const char *sym)
{
    char err[512];
    char *paths[] = {plugdir};
    const plug_lib *l = plug_load(plugin, paths, 1, err, sizeof err);
    if (!l)
        return NULL;
    return (int *)dlsym(l->handle, sym);
}

#define PROV "'providers': {'p': {'plugin': 'test_provider', 'config': {'base_url': 'http://u/v1'}}},"
#define HEAD "{'plugin_paths': ['${TPD}'], " PROV
#define ROUTE(extra) "{'name': 'r', 'match': {'path': '/x'}, 'api': 'chat', 'targets': [{'provider': 'p'}]" extra "}"

/* ---- tests -------------------------------------------------------------------------------- */

static void t_valid(void)
{
    cfg_errors e = {0};
    cfg_gen *g = load("{'listen': [{'port': 9000}, {'address': '0.0.0.0', 'port': 9001}],"
                      " 'workers': 3, 'admin': {'port': 9002, 'token': 'sekrit'},"
                      " 'plugin_paths': ['${TPD}'], 'access_log': {'path': null},"
                      " 'limits': {'max_body_bytes': 1024, 'send_timeout_ms': 5},"
                      " 'drain_timeout_ms': 100," PROV
                      " 'routes': [{'name': 'chat', 'match': {'methods': ['POST', 'get'],"
                      "   'path': '/v1/chat/completions', 'host': 'api.example.com',"
                      "   'headers': {'x-tenant': 'a'}}, 'api': 'chat',"
                      "   'targets': [{'provider': 'p', 'model': 'gpt-x'}, {'provider': 'p'}],"
                      "   'timeouts': {'connect_ms': 7, 'total_ms': 0},"
                      "   'plugins': [{'name': 'test_cfg', 'config': {'limit': 3}}]},"
                      "  {'name': 'emb', 'match': {'path_prefix': '/v1/embed'}, 'api': 'embeddings',"
                      "   'targets': [{'provider': 'p'}]}],"
                      " 'plugins': []}",
                      &e);
    T_CHECK(g != NULL);
    if (!g) {
        dump_errs(&e);
        cfg_errors_clear(&e);
        return;
    }
    T_EQ_INT(e.count, 0);
    T_EQ_INT(atomic_load(&g->refs), 1);
    T_CHECK(g->id > 0);
    T_EQ_INT(g->nlisten, 2);
    T_EQ_STR(g->listen[0].address, "127.0.0.1");
    T_EQ_INT(g->listen[0].port, 9000);
    T_EQ_STR(g->listen[1].address, "0.0.0.0");
    T_CHECK(g->listen[0].tls_cert == NULL);
    T_EQ_INT(g->workers, 3);
    T_EQ_STR(g->admin.address, "127.0.0.1");
    T_EQ_INT(g->admin.port, 9002);
    T_EQ_STR(g->admin_token, "sekrit");
    T_EQ_INT(g->nplugin_paths, 1);
    T_EQ_STR(g->plugin_paths[0], plugdir);
    T_CHECK(g->access_log_path == NULL);
    T_EQ_INT(g->limits.max_body_bytes, 1024);
    T_EQ_INT(g->limits.send_timeout_ms, 5);
    T_EQ_INT(g->limits.max_header_bytes, 16384);
    T_EQ_INT(g->limits.max_stream_buffer_bytes, 1 << 20);
    T_EQ_INT(g->drain_timeout_ms, 100);
    T_EQ_INT(g->nproviders, 1);
    T_EQ_STR(g->providers[0].name, "p");
    T_EQ_INT(g->providers[0].enabled, 1);
    T_CHECK(g->providers[0].plugin.inst != NULL);
    T_CHECK(g->providers[0].plugin.desc->provider != NULL);
    T_EQ_INT(g->nroutes, 2);
    const cfg_route *r = &g->routes[0];
    T_EQ_STR(r->name, "chat");
    T_EQ_INT(r->methods, CFG_M_POST | CFG_M_GET);
    T_EQ_STR(r->path, "/v1/chat/completions");
    T_CHECK(r->path_prefix == NULL);
    T_EQ_STR(r->host, "api.example.com");
    T_EQ_INT(r->nheaders, 1);
    T_EQ_INT(r->api, AIGW_API_CHAT);
    T_EQ_INT(r->ntargets, 2);
    T_CHECK(r->targets[0].provider == &g->providers[0]);
    T_EQ_STR(r->targets[0].model, "gpt-x");
    T_CHECK(r->targets[1].model == NULL);
    T_EQ_INT(r->timeouts.connect_ms, 7);
    T_EQ_INT(r->timeouts.first_byte_ms, 120000);
    T_EQ_INT(r->timeouts.idle_ms, 60000);
    T_EQ_INT(r->nplugins, 1);
    T_EQ_STR(r->plugins[0]->name, "test_cfg");
    T_EQ_INT(r->plugins[0]->priority, 10);
    T_EQ_INT(r->plugins[0]->index, 0);
    T_CHECK(r->plugins[0]->inst != NULL);
    T_EQ_INT(g->routes[1].api, AIGW_API_EMBEDDINGS);
    T_EQ_STR(g->routes[1].path_prefix, "/v1/embed");
    T_EQ_INT(g->routes[1].methods, CFG_M_ANY);
    T_EQ_INT(g->routes[1].nplugins, 0);
    T_EQ_INT(g->routes[1].route_index, 1);
    cfg_free(g);
}

static void t_defaults(void)
{
    cfg_errors e = {0};
    cfg_gen *g = load(HEAD "'routes': [" ROUTE("") "]}", &e);
    T_CHECK(g != NULL);
    if (!g) {
        dump_errs(&e);
        cfg_errors_clear(&e);
        return;
    }
    T_EQ_INT(g->nlisten, 1);
    T_EQ_STR(g->listen[0].address, "127.0.0.1");
    T_EQ_INT(g->listen[0].port, 8080);
    T_CHECK(g->workers >= 1);
    T_EQ_INT(g->admin.port, 0);
    T_CHECK(g->admin_token == NULL);
    T_EQ_STR(g->access_log_path, "-");
    T_EQ_INT(g->drain_timeout_ms, 30000);
    T_EQ_INT(g->store_redis, 0);
    T_EQ_INT(g->limits.keepalive_timeout_ms, 60000);
    T_EQ_INT(g->routes[0].timeouts.connect_ms, 10000);
    T_EQ_INT(g->routes[0].timeouts.total_ms, 0);
    cfg_free(g);

    /* default plugin paths: the install dir, then build/plugins */
    g = load("{'routes': [{'name': 'r', 'match': {'path': '/'}, 'api': 'models', 'targets': "
             "[{'provider': 'p'}, {'provider': 'q'}]}], 'providers': {'p': {'plugin': 'test_provider', "
             "'enabled_if_env': 'AIGW_TEST_UNSET_VAR'}, 'q': {'plugin': '${TPD}/test_provider.so',"
             " 'config': {'base_url': 'x'}}}, 'access_log': {}}",
             &e);
    T_CHECK(g != NULL);
    if (!g) {
        dump_errs(&e);
        cfg_errors_clear(&e);
        return;
    }
    T_EQ_INT(g->nplugin_paths, 2);
    T_EQ_STR(g->plugin_paths[1], "build/plugins");
    T_EQ_STR(g->access_log_path, "-");
    T_EQ_INT(g->routes[0].ntargets, 1);
    cfg_free(g);
}

/* One config, one expected error (path and message substrings). */
static const struct {
    const char *cfg, *path, *sub, *sub2;
} cases[] = {
    /* JSON syntax, with line and column */
    {"{\n  'routes': [\n    {'name' 'x'}\n  ]\n}", "", "line 3, column 13", NULL},
    {"{'routes': [", "", "unexpected end", NULL},
    {"[1, 2]", "", "top level must be an object", NULL},
    /* listen */
    {HEAD "'listen': [{'address': '::1'}], 'routes': [" ROUTE("") "]}", "/listen/0", "'port'", NULL},
    {HEAD "'listen': [{'port': 70000}], 'routes': [" ROUTE("") "]}", "/listen/0/port",
     "between 1 and 65535", "70000"},
    {HEAD "'listen': [{'port': 80.5}], 'routes': [" ROUTE("") "]}", "/listen/0/port", "integer", NULL},
    {HEAD "'listen': [], 'routes': [" ROUTE("") "]}", "/listen", "at least one", NULL},
    {HEAD "'listen': [{'port': 1, 'tls': {'cert': '/nonexistent/c.pem', 'key': '/proc/self/exe'}}],"
          " 'routes': [" ROUTE("") "]}",
     "/listen/0/tls/cert", "cannot read", "/nonexistent/c.pem"},
    {HEAD "'listen': [{'port': 1, 'tls': {'cert': '/proc/self/exe'}}], 'routes': [" ROUTE("") "]}",
     "/listen/0/tls", "missing required key 'key'", NULL},
    /* workers, admin, access_log, limits, drain */
    {HEAD "'workers': -1, 'routes': [" ROUTE("") "]}", "/workers", "-1", NULL},
    {HEAD "'workers': 'four', 'routes': [" ROUTE("") "]}", "/workers", "integer", "a string"},
    {HEAD "'admin': {'address': '0.0.0.0', 'port': 8081}, 'routes': [" ROUTE("") "]}",
     "/admin/address", "needs a token", "0.0.0.0"},
    {HEAD "'access_log': {'path': 5}, 'routes': [" ROUTE("") "]}", "/access_log/path", "stdout", NULL},
    {HEAD "'limits': {'max_body_bytes': 0}, 'routes': [" ROUTE("") "]}", "/limits/max_body_bytes",
     ">= 1", NULL},
    {HEAD "'limits': {'max_bodybytes': 10}, 'routes': [" ROUTE("") "]}", "/limits/max_bodybytes",
     "unknown key", "did you mean 'max_body_bytes'"},
    {HEAD "'drain_timeout_ms': true, 'routes': [" ROUTE("") "]}", "/drain_timeout_ms", "integer", NULL},
    {HEAD "'plugin_path': [], 'routes': [" ROUTE("") "]}", "/plugin_path", "unknown key 'plugin_path'",
     "did you mean 'plugin_paths'"},
    {HEAD "'frobnicate': 1, 'routes': [" ROUTE("") "]}", "/frobnicate", "unknown key 'frobnicate'",
     "known keys"},
    /* providers */
    {"{'plugin_paths': ['${TPD}'], 'providers': {'p': {'config': {}}}, 'routes': [" ROUTE("") "]}",
     "/providers/p", "missing required key 'plugin'", NULL},
    {"{'plugin_paths': ['${TPD}'], 'providers': {'p': {'plugin': 'nope'}}, 'routes': [" ROUTE("") "]}",
     "/providers/p/plugin", "plugin 'nope' not found in", NULL},
    {"{'plugin_paths': ['${TPD}'], 'providers': {'p': {'plugin': 'test_cfg', 'config': {'limit': 1}}},"
     " 'routes': [" ROUTE("") "]}",
     "/providers/p/plugin", "not a provider", NULL},
    {"{'plugin_paths': ['${TPD}'], 'providers': {'p': {'plugin': 'test_provider'}}, 'routes': ["
     ROUTE("") "]}",
     "/providers/p/config/base_url", "is required", NULL},
    {"{'plugin_paths': ['${TPD}'], 'providers': {'p': {'plugin': 'test_provider', 'config': "
     "{'base_url': 7}}}, 'routes': [" ROUTE("") "]}",
     "/providers/p/config/base_url", "must be a string", NULL},
    {"{'plugin_paths': ['${TPD}'], 'providers': {'p': {'plugin': 'test_provider', 'config': "
     "{'base_url': '${AIGW_TEST_UNSET_VAR}'}}}, 'routes': [" ROUTE("") "]}",
     "/providers/p/config/base_url", "AIGW_TEST_UNSET_VAR is not set", NULL},
    {"{'plugin_paths': ['${TPD}'], 'providers': {'p': {'plugin': 'test_provider', 'enabled_if_env': 3}},"
     " 'routes': [" ROUTE("") "]}",
     "/providers/p/enabled_if_env", "must be a string", NULL},
    {"{'plugin_paths': ['${TPD}'], 'providers': {'p': {'plugin': 'test_provider', 'config': [1]}},"
     " 'routes': [" ROUTE("") "]}",
     "/providers/p/config", "must be an object", NULL},
    {"{'plugin_paths': ['${TPD}'], 'providers': {'p': {'plugin': 'test_bad_abi'}}, 'routes': ["
     ROUTE("") "]}",
     "/providers/p/plugin", "test_bad_abi.so was built for plugin ABI 2.0", "this aigw provides ABI 1."},
    /* routes */
    {HEAD "'plugins': []}", "", "missing required key 'routes'", NULL},
    {HEAD "'routes': []}", "/routes", "non-empty", NULL},
    {HEAD "'routes': [{'match': {'path': '/'}, 'api': 'chat', 'targets': [{'provider': 'p'}]}]}",
     "/routes/0", "missing required key 'name'", NULL},
    {HEAD "'routes': [" ROUTE("") ", " ROUTE("") "]}", "/routes/1/name", "already used by /routes/0",
     NULL},
    {HEAD "'routes': [" ROUTE(", 'timeout': {}") "]}", "/routes/0/timeout", "unknown key 'timeout'",
     "did you mean 'timeouts'?"},
    {HEAD "'routes': [{'name': 'r', 'api': 'chat', 'targets': [{'provider': 'p'}]}]}", "/routes/0",
     "missing required key 'match'", NULL},
    {HEAD "'routes': [{'name': 'r', 'match': {'path': '/a', 'path_prefix': '/b'}, 'api': 'chat',"
          " 'targets': [{'provider': 'p'}]}]}",
     "/routes/0/match", "not both", NULL},
    {HEAD "'routes': [{'name': 'r', 'match': {'host': 'h'}, 'api': 'chat',"
          " 'targets': [{'provider': 'p'}]}]}",
     "/routes/0/match", "'path_prefix'", NULL},
    {HEAD "'routes': [{'name': 'r', 'match': {'path': 'v1'}, 'api': 'chat',"
          " 'targets': [{'provider': 'p'}]}]}",
     "/routes/0/match/path", "must start with '/'", NULL},
    {HEAD "'routes': [{'name': 'r', 'match': {'path': '/', 'methods': ['POST', 'FETCH']}, 'api': 'chat',"
          " 'targets': [{'provider': 'p'}]}]}",
     "/routes/0/match/methods/1", "unknown method 'FETCH'", NULL},
    {HEAD "'routes': [{'name': 'r', 'match': {'path': '/', 'headers': {'x-a': 1}}, 'api': 'chat',"
          " 'targets': [{'provider': 'p'}]}]}",
     "/routes/0/match/headers/x-a", "must be a string", NULL},
    {HEAD "'routes': [{'name': 'r', 'match': {'path': '/'}, 'api': 'chats',"
          " 'targets': [{'provider': 'p'}]}]}",
     "/routes/0/api", "unknown api 'chats'", "did you mean 'chat'?"},
    {HEAD "'routes': [{'name': 'r', 'match': {'path': '/'}, 'targets': [{'provider': 'p'}]}]}",
     "/routes/0", "missing required key 'api'", NULL},
    {HEAD "'routes': [{'name': 'r', 'match': {'path': '/'}, 'api': 'chat'}]}", "/routes/0",
     "missing required key 'targets'", NULL},
    {HEAD "'routes': [{'name': 'r', 'match': {'path': '/'}, 'api': 'chat', 'targets': []}]}",
     "/routes/0/targets", "non-empty", NULL},
    {HEAD "'routes': [{'name': 'r', 'match': {'path': '/'}, 'api': 'chat', 'targets': "
          "[{'provider': 'q'}]}]}",
     "/routes/0/targets/0/provider", "unknown provider 'q'", "did you mean 'p'?"},
    {HEAD "'routes': [{'name': 'r', 'match': {'path': '/'}, 'api': 'chat', 'targets': "
          "[{'model': 'm'}]}]}",
     "/routes/0/targets/0", "missing required key 'provider'", NULL},
    {HEAD "'routes': [" ROUTE(", 'timeouts': {'connect_ms': 0}") "]}", "/routes/0/timeouts/connect_ms",
     ">= 1", NULL},
    /* plugins */
    {HEAD "'routes': [" ROUTE(", 'plugins': [{'name': 'test_cfg', 'config': {'limit': 0}}]") "]}",
     "/routes/0/plugins/0/config/limit", "must be an integer > 0", NULL},
    {HEAD "'routes': [" ROUTE(", 'plugins': [{'name': 'test_cfg'}]") "]}",
     "/routes/0/plugins/0/config", "needs a config object", NULL},
    {HEAD "'routes': [" ROUTE(", 'plugins': [{'config': {}}]") "]}", "/routes/0/plugins/0",
     "missing required key 'name'", NULL},
    {HEAD "'routes': [" ROUTE(", 'plugins': [{'name': 'test_cfg', 'config': {'limit': 1}},"
                             " {'name': 'test_cfg', 'config': {'limit': 2}}]") "]}",
     "/routes/0/plugins/1/name", "listed twice", NULL},
    {HEAD "'routes': [" ROUTE(", 'plugins': [{'name': 'test_cfg', 'priority': 'high',"
                             " 'config': {'limit': 1}}]") "]}",
     "/routes/0/plugins/0/priority", "integer", NULL},
    {HEAD "'routes': [" ROUTE(", 'plugins': [{'name': 'test_cfg', 'enabled': 'no'}]") "]}",
     "/routes/0/plugins/0/enabled", "true or false", NULL},
    {HEAD "'routes': [" ROUTE(", 'plugins': [{'name': 'test_cfg', 'enabled': false}]") "]}",
     "/routes/0/plugins/0/name", "no global plugin is named 'test_cfg'", NULL},
    {HEAD "'routes': [" ROUTE(", 'plugins': [{'name': 'test_provider', 'config': {}}]") "]}",
     "/routes/0/plugins/0/name", "is a provider adapter", NULL},
    {HEAD "'routes': [" ROUTE(", 'plugins': [{'name': 'nope'}]") "]}", "/routes/0/plugins/0/name",
     "plugin 'nope' not found in: ", NULL},
    {HEAD "'routes': [" ROUTE("") "], 'plugins': [{'name': 'test_cfg', 'config': {'limit': -2}}]}",
     "/plugins/0/config/limit", "must be an integer > 0", NULL},
    {HEAD "'routes': [" ROUTE("") "], 'plugins': [{'name': 'test_bad_abi'}]}", "/plugins/0/name",
     "was built for plugin ABI 2.0", "this aigw provides ABI 1."},
    {HEAD "'routes': [" ROUTE("") "], 'plugins': {}}", "/plugins", "must be an array", NULL},
    /* the store */
    {HEAD "'routes': [" ROUTE("") "], 'store': {'backend': 'redis', 'redis': {'nodes': ['127.0.0.1:7000']}}}",
     "/store/redis/nodes", "set \"cluster\": true", NULL},
    {HEAD "'routes': [" ROUTE("") "], 'store': {'backend': 'redis', 'redis': {'cluster': true, 'nodes': ['127.0.0.1']}}}",
     "/store/redis/nodes", "entry 0 must be \"host:port\"", NULL},
    {HEAD "'routes': [" ROUTE("") "], 'store': {'backend': 'redis', 'redis': {'cluster': 1}}}",
     "/store/redis/cluster", "true or false", NULL},
    {HEAD "'routes': [" ROUTE("") "], 'plugins': [{'name': 'test_cfg', 'cfg': {}}]}", "/plugins/0/cfg",
     "unknown key 'cfg'", "did you mean 'config'?"},
};

/* A Redis Cluster store: the first seed is host:port when "host" is not given. */
static void t_store_cluster(void)
{
    cfg_errors e = {0};
    cfg_gen *g = load(HEAD "'routes': [" ROUTE("") "], 'store': {'backend': 'redis', 'redis': {'cluster': true, "
                      "'nodes': ['127.0.0.2:7001', 'localhost:7002']}}}", &e);
    T_CHECK(g != NULL);
    if (!g) {
        dump_errs(&e);
        cfg_errors_clear(&e);
        return;
    }
    T_EQ_INT(g->store_redis, 1);
    T_EQ_INT(g->redis_cluster, 1);
    T_EQ_INT(g->redis_nnodes, 2);
    T_EQ_STR(g->redis_host, "127.0.0.2");
    T_EQ_INT(g->redis_port, 7001);
    T_EQ_STR(g->redis_nodes[1], "localhost:7002");
    cfg_free(g);
}

static void t_errors(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cfg_errors e = {0};
        cfg_gen *g = load(cases[i].cfg, &e);
        if (g) {
            fprintf(stderr, "  case %zu loaded but should have failed (%s)\n", i, cases[i].path);
            cfg_free(g);
            t_cur_failed = 1;
            continue;
        }
        if (!has_err(&e, cases[i].path, cases[i].sub, cases[i].sub2)) {
            fprintf(stderr, "  (case %zu)\n", i);
            t_cur_failed = 1;
        }
        cfg_errors_clear(&e);
    }
}

/* Several problems in one file: every one is reported, and no instance outlives the failure. */
static void t_many_errors(void)
{
    int *live = live_counter("test_cfg", "test_cfg_live");
    int *plive = live_counter("test_provider", "test_provider_live");
    T_CHECK(live != NULL && plive != NULL);
    if (!live || !plive)
        return;
    int before = *live, pbefore = *plive;
    cfg_errors e = {0};
    cfg_gen *g = load(HEAD "'listen': [{'port': 0}], 'workers': -3, 'bogus': 1,"
                      " 'plugins': [{'name': 'test_cfg', 'config': {'limit': 4}}],"
                      " 'routes': [" ROUTE(", 'plugins': [{'name': 'test_cfg', 'config': {'limit': 2},"
                                           " 'priority': 1}]")
                      ", {'name': 'r', 'match': {'path': '/'}, 'api': 'nope', 'targets': ["
                      "{'provider': 'zz'}], 'plugins': [{'name': 'test_cfg', 'config': {}}]}]}",
                      &e);
    T_CHECK(g == NULL);
    T_CHECK(has_err(&e, "/listen/0/port", "between 1 and 65535", NULL));
    T_CHECK(has_err(&e, "/workers", "must be >= 0, got -3", NULL));
    T_CHECK(has_err(&e, "/bogus", "unknown key 'bogus'", NULL));
    T_CHECK(has_err(&e, "/routes/1/name", "already used", NULL));
    T_CHECK(has_err(&e, "/routes/1/api", "unknown api 'nope'", NULL));
    T_CHECK(has_err(&e, "/routes/1/targets/0/provider", "unknown provider 'zz'", NULL));
    T_CHECK(has_err(&e, "/routes/1/plugins/0/config/limit", "is required", NULL));
    T_EQ_INT(e.count, 7);
    /* the provider, the global and the first route's instance were created, then destroyed */
    T_EQ_INT(*live, before);
    T_EQ_INT(*plive, pbefore);
    cfg_errors_clear(&e);
    T_CHECK(e.head == NULL && e.count == 0);
}

static void t_loader(void)
{
    char err[1024];
    char *paths[] = {"/nonexistent/dir", plugdir};
    const plug_lib *l = plug_load("test_bad_abi", paths, 2, err, sizeof err);
    T_CHECK(l == NULL);
    T_CHECK(strstr(err, "test_bad_abi.so") != NULL);
    T_CHECK(strstr(err, "plugin ABI 2.0") != NULL);
    T_CHECK(strstr(err, "this aigw provides ABI 1.") != NULL);
    T_CHECK(strstr(err, plugdir) != NULL || strchr(err, '/') != NULL);

    l = plug_load("missing_plugin", paths, 2, err, sizeof err);
    T_CHECK(l == NULL);
    T_CHECK(strstr(err, "plugin 'missing_plugin' not found in: /nonexistent/dir, ") != NULL);
    T_CHECK(strstr(err, plugdir) != NULL);

    char file[PATH_MAX + 128];
    snprintf(file, sizeof file, "%s/no_such.so", plugdir);
    l = plug_load(file, paths, 2, err, sizeof err);
    T_CHECK(l == NULL);
    T_CHECK(strstr(err, "No such file") != NULL);

    /* a file that is not a shared object: dlopen's own text is passed on */
    char tmp[] = "/tmp/aigw_notso_XXXXXX";
    int fd = mkstemp(tmp);
    T_CHECK(fd >= 0);
    if (fd >= 0) {
        T_CHECK(write(fd, "hello", 5) == 5);
        close(fd);
        l = plug_load(tmp, paths, 2, err, sizeof err);
        T_CHECK(l == NULL);
        T_CHECK(strstr(err, "cannot load") != NULL);
        T_CHECK(strstr(err, tmp) != NULL);
        unlink(tmp);
    }

    const plug_lib *a = plug_load("test_cfg", paths, 2, err, sizeof err);
    T_CHECK(a != NULL);
    snprintf(file, sizeof file, "%s/test_cfg.so", plugdir);
    const plug_lib *b = plug_load(file, paths, 2, err, sizeof err);
    T_CHECK(a == b); /* one registry entry per file */
    if (a) {
        T_EQ_STR(a->desc->name, "test_cfg");
        T_EQ_INT(a->desc->priority, 10);
    }
    int found = 0;
    for (const plug_lib *x = plug_list(); x; x = x->next)
        found += x == a;
    T_EQ_INT(found, 1);

    const plug_lib *p = plug_load("test_provider", paths, 2, err, sizeof err);
    T_CHECK(p && p->desc->provider && (p->desc->flags & AIGW_IS_PROVIDER));
    T_CHECK(plug_load("", paths, 2, err, sizeof err) == NULL);
}

static void t_expand(void)
{
    char *missing = NULL, *s;
    setenv("AIGW_T_A", "alpha", 1);
    setenv("AIGW_T_EMPTY", "", 1);
    unsetenv("AIGW_T_UNSET");

    s = cfg_expand_env("x${AIGW_T_A}y${AIGW_T_A}", &missing);
    T_EQ_STR(s, "xalphayalpha");
    T_CHECK(missing == NULL);
    free(s);
    s = cfg_expand_env("${AIGW_T_UNSET:-dflt}/${AIGW_T_A:-no}", &missing);
    T_EQ_STR(s, "dflt/alpha");
    free(s);
    s = cfg_expand_env("[${AIGW_T_EMPTY:-e}][${AIGW_T_EMPTY}][${AIGW_T_UNSET:-}]", &missing);
    T_EQ_STR(s, "[e][][]");
    free(s);
    s = cfg_expand_env("$${AIGW_T_A} costs $5, ${ not a ref, ${AIGW_T_A", &missing);
    T_EQ_STR(s, "${AIGW_T_A} costs $5, ${ not a ref, ${AIGW_T_A");
    free(s);
    s = cfg_expand_env("$$x $$${AIGW_T_A}", &missing);
    T_EQ_STR(s, "$$x $${AIGW_T_A}");
    free(s);
    s = cfg_expand_env("a${AIGW_T_UNSET}b", &missing);
    T_CHECK(s == NULL);
    T_EQ_STR(missing, "AIGW_T_UNSET");
    free(missing);
    s = cfg_expand_env("", &missing);
    T_EQ_STR(s, "");
    free(s);

    /* in a config: every string value, nested, in arrays too; keys are left alone */
    cfg_errors e = {0};
    cfg_gen *g = load("{'plugin_paths': ['${TPD}'], 'providers': {'p': {'plugin': 'test_provider',"
                      " 'config': {'base_url': 'https://${AIGW_T_A}.example/${AIGW_T_UNSET:-v1}',"
                      " 'list': ['${AIGW_T_A}', 1], '${AIGW_T_A}': '$${lit}'}}},"
                      " 'admin': {'port': 1, 'token': '${AIGW_T_A}'},"
                      " 'routes': [{'name': '${AIGW_T_A}', 'match': {'path': '/${AIGW_T_A}'},"
                      " 'api': 'chat', 'targets': [{'provider': 'p'}]}]}",
                      &e);
    T_CHECK(g != NULL);
    if (!g) {
        dump_errs(&e);
        cfg_errors_clear(&e);
        return;
    }
    const cJSON *cfg = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
        cJSON_GetObjectItem(g->root, "providers"), "p"), "config"), "base_url");
    T_EQ_STR(cJSON_GetStringValue(cfg), "https://alpha.example/v1");
    const cJSON *c2 = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
        g->root, "providers"), "p"), "config");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(c2, "list"), 0)), "alpha");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(c2, "${AIGW_T_A}")), "${lit}");
    T_EQ_STR(g->admin_token, "alpha");
    T_EQ_STR(g->routes[0].name, "alpha");
    T_EQ_STR(g->routes[0].path, "/alpha");
    cfg_free(g);

    /* every missing variable is reported at its own path */
    g = load(HEAD "'admin': {'token': '${AIGW_T_UNSET}'}, 'routes': [" ROUTE("") "],"
             " 'access_log': {'path': 'x${AIGW_T_UNSET2}'}}",
             &e);
    T_CHECK(g == NULL);
    T_CHECK(has_err(&e, "/admin/token", "AIGW_T_UNSET is not set", "${AIGW_T_UNSET:-"));
    T_CHECK(has_err(&e, "/access_log/path", "AIGW_T_UNSET2 is not set", NULL));
    T_EQ_INT(e.count, 2);
    cfg_errors_clear(&e);
}

static void t_disabled_provider(void)
{
    int *plive = live_counter("test_provider", "test_provider_live");
    T_CHECK(plive != NULL);
    if (!plive)
        return;
    int before = *plive;
    unsetenv("AIGW_T_KEY");
    const char *cfgtext =
        "{'plugin_paths': ['${TPD}'], 'providers': {"
        "  'off': {'plugin': 'test_provider', 'enabled_if_env': 'AIGW_T_KEY',"
        "          'config': {'base_url': 'x', 'key': '${AIGW_T_KEY}'}},"
        "  'on': {'plugin': 'test_provider', 'config': {'base_url': 'http://on'}}},"
        " 'routes': [{'name': 'r', 'match': {'path': '/'}, 'api': 'chat',"
        "   'targets': [{'provider': 'off', 'model': 'm1'}, {'provider': 'on', 'model': 'm2'}]}]}";
    cfg_errors e = {0};
    cfg_gen *g = load(cfgtext, &e);
    T_CHECK(g != NULL);
    if (!g) {
        dump_errs(&e);
        cfg_errors_clear(&e);
        return;
    }
    T_EQ_INT(g->nproviders, 2);
    T_EQ_STR(g->providers[0].name, "off");
    T_EQ_INT(g->providers[0].enabled, 0);
    T_CHECK(g->providers[0].plugin.inst == NULL);
    T_EQ_INT(g->providers[1].enabled, 1);
    T_EQ_INT(g->routes[0].ntargets, 1);
    T_CHECK(g->routes[0].targets[0].provider == &g->providers[1]);
    T_EQ_STR(g->routes[0].targets[0].model, "m2");
    T_EQ_INT(*plive, before + 1);
    cfg_free(g);
    T_EQ_INT(*plive, before);

    /* an empty variable disables too */
    setenv("AIGW_T_KEY", "", 1);
    g = load(cfgtext, &e);
    T_CHECK(g && !g->providers[0].enabled);
    cfg_free(g);

    /* set: both enabled, and ${AIGW_T_KEY} is expanded */
    setenv("AIGW_T_KEY", "k", 1);
    g = load(cfgtext, &e);
    T_CHECK(g != NULL);
    if (g) {
        T_EQ_INT(g->providers[0].enabled, 1);
        T_EQ_INT(g->routes[0].ntargets, 2);
        T_EQ_INT(*plive, before + 2);
        cfg_free(g);
    }
    T_EQ_INT(*plive, before);
    T_EQ_INT(e.count, 0);
    dump_errs(&e);
    cfg_errors_clear(&e);

    /* only disabled targets: the error names the route and the provider */
    unsetenv("AIGW_T_KEY");
    g = load("{'plugin_paths': ['${TPD}'], 'providers': {"
             "  'off': {'plugin': 'test_provider', 'enabled_if_env': 'AIGW_T_KEY'}},"
             " 'routes': [{'name': 'lonely', 'match': {'path': '/'}, 'api': 'chat',"
             "   'targets': [{'provider': 'off'}]}]}",
             &e);
    T_CHECK(g == NULL);
    T_CHECK(has_err(&e, "/routes/0/targets", "route 'lonely' has no enabled target", "'off'"));
    cfg_errors_clear(&e);
}

/* headers for cfg_match: "name: value" lines */
static int get_hdr(void *ud, const char *name, const char **v, size_t *vn)
{
    for (const char *const *h = ud; *h; h++) {
        size_t n = strlen(name);
        if (strncasecmp(*h, name, n) == 0 && (*h)[n] == ':') {
            *v = *h + n + 2;
            *vn = strlen(*v);
            return 0;
        }
    }
    return -1;
}

static const char *match(const cfg_gen *g, const char *m, const char *path, const char *host,
                         const char *const *hdrs)
{
    const cfg_route *r = cfg_match(g, m, strlen(m), path, strlen(path), host, host ? strlen(host) : 0,
                                   get_hdr, (void *)hdrs);
    return r ? r->name : "(none)";
}

static void t_match(void)
{
    cfg_errors e = {0};
    cfg_gen *g = load(HEAD "'routes': ["
                      "{'name': 'tenant', 'match': {'path_prefix': '/v1/', 'headers': {'X-Tenant': 'acme',"
                      "  'x-env': 'prod'}}, 'api': 'passthrough', 'targets': [{'provider': 'p'}]},"
                      "{'name': 'hosted', 'match': {'path_prefix': '/v1/', 'host': 'API.Example.com'},"
                      "  'api': 'chat', 'targets': [{'provider': 'p'}]},"
                      "{'name': 'v6', 'match': {'path_prefix': '/', 'host': '[::1]'},"
                      "  'api': 'chat', 'targets': [{'provider': 'p'}]},"
                      "{'name': 'chat', 'match': {'methods': ['POST'], 'path': '/v1/chat/completions'},"
                      "  'api': 'chat', 'targets': [{'provider': 'p'}]},"
                      "{'name': 'models', 'match': {'methods': ['GET', 'HEAD'], 'path': '/v1/models'},"
                      "  'api': 'models', 'targets': [{'provider': 'p'}]},"
                      "{'name': 'rest', 'match': {'path_prefix': '/v1/'}, 'api': 'passthrough',"
                      "  'targets': [{'provider': 'p'}]}]}",
                      &e);
    T_CHECK(g != NULL);
    if (!g) {
        dump_errs(&e);
        cfg_errors_clear(&e);
        return;
    }
    const char *none[] = {NULL};
    const char *acme[] = {"x-tenant: acme", "X-Env: prod", NULL};
    const char *acme_dev[] = {"x-tenant: acme", "x-env: dev", NULL};
    const char *acme_only[] = {"x-tenant: acme", NULL};
    T_EQ_STR(match(g, "POST", "/v1/chat/completions", "localhost:8080", none), "chat");
    T_EQ_STR(match(g, "GET", "/v1/chat/completions", "localhost", none), "rest");
    T_EQ_STR(match(g, "GET", "/v1/models", NULL, none), "models");
    T_EQ_STR(match(g, "HEAD", "/v1/models", NULL, none), "models");
    T_EQ_STR(match(g, "POST", "/v1/models", NULL, none), "rest");
    T_EQ_STR(match(g, "POST", "/v1/models/x", NULL, none), "rest");
    T_EQ_STR(match(g, "BREW", "/v1/models", NULL, none), "rest"); /* unknown method: any-method routes */
    T_EQ_STR(match(g, "POST", "/v2/chat", NULL, none), "(none)");
    T_EQ_STR(match(g, "POST", "/v1", NULL, none), "(none)");
    /* host: port stripped, case-insensitive */
    T_EQ_STR(match(g, "POST", "/v1/chat/completions", "api.example.com:443", none), "hosted");
    T_EQ_STR(match(g, "POST", "/v1/chat/completions", "api.example.COM", none), "hosted");
    T_EQ_STR(match(g, "POST", "/v1/chat/completions", "api.example.com.evil", none), "chat");
    T_EQ_STR(match(g, "POST", "/x", "[::1]:8080", none), "v6");
    T_EQ_STR(match(g, "POST", "/x", "[::2]:8080", none), "(none)");
    /* headers: all must match, names case-insensitive (the callback's job), values exact */
    T_EQ_STR(match(g, "POST", "/v1/chat/completions", "api.example.com", acme), "tenant");
    T_EQ_STR(match(g, "POST", "/v1/chat/completions", "api.example.com", acme_dev), "hosted");
    T_EQ_STR(match(g, "POST", "/v1/chat/completions", NULL, acme_only), "chat");
    /* no header callback: header routes never match */
    const cfg_route *r = cfg_match(g, "POST", 4, "/v1/x", 5, NULL, 0, NULL, NULL);
    T_CHECK(r && strcmp(r->name, "rest") == 0);
    cfg_free(g);
}

static void t_priority(void)
{
    int *live = live_counter("test_cfg", "test_cfg_live");
    T_CHECK(live != NULL);
    if (!live)
        return;
    int before = *live;
    /* "test_cfg" (priority 10 from its descriptor) and "${TPD}/test_cfg.so" (same library, a
     * different name) give two independent plugins. */
    cfg_errors e = {0};
    cfg_gen *g = load(
        HEAD "'plugins': ["
        "  {'name': 'test_cfg', 'config': {'limit': 1}},"
        "  {'name': '${TPD}/test_cfg.so', 'priority': 50, 'config': {'limit': 2}}],"
        " 'routes': ["
        "  {'name': 'a', 'match': {'path': '/a'}, 'api': 'chat', 'targets': [{'provider': 'p'}]},"
        "  {'name': 'b', 'match': {'path': '/b'}, 'api': 'chat', 'targets': [{'provider': 'p'}],"
        "   'plugins': [{'name': 'test_cfg', 'priority': 60, 'config': {'limit': 3}}]},"
        "  {'name': 'c', 'match': {'path': '/c'}, 'api': 'chat', 'targets': [{'provider': 'p'}],"
        "   'plugins': [{'name': '${TPD}/test_cfg.so', 'enabled': false}]},"
        "  {'name': 'd', 'match': {'path': '/d'}, 'api': 'chat', 'targets': [{'provider': 'p'}],"
        "   'plugins': [{'name': 'test_cfg', 'priority': 50, 'config': {'limit': 4}}]}]}",
        &e);
    T_CHECK(g != NULL);
    if (!g) {
        dump_errs(&e);
        cfg_errors_clear(&e);
        return;
    }
    char path_name[PATH_MAX + 128];
    snprintf(path_name, sizeof path_name, "%s/test_cfg.so", plugdir);
    T_EQ_INT(g->nplugins, 4); /* 2 global + 2 route instances */
    T_EQ_INT(*live, before + 4);

    const cfg_route *a = &g->routes[0], *b = &g->routes[1], *c = &g->routes[2], *d = &g->routes[3];
    /* a: both globals, priority 50 before 10 */
    T_EQ_INT(a->nplugins, 2);
    if (a->nplugins == 2) {
        T_EQ_STR(a->plugins[0]->name, path_name);
        T_EQ_INT(a->plugins[0]->priority, 50);
        T_EQ_INT(a->plugins[0]->index, 0);
        T_EQ_STR(a->plugins[1]->name, "test_cfg");
        T_EQ_INT(a->plugins[1]->priority, 10);
        T_EQ_INT(a->plugins[1]->index, 1);
    }
    /* b: its own test_cfg (priority 60) replaces the global one and runs first */
    T_EQ_INT(b->nplugins, 2);
    if (b->nplugins == 2 && a->nplugins == 2) {
        T_EQ_STR(b->plugins[0]->name, "test_cfg");
        T_EQ_INT(b->plugins[0]->priority, 60);
        T_CHECK(b->plugins[0]->inst != a->plugins[1]->inst);
        T_EQ_INT(b->plugins[0]->index, 0);
        T_EQ_STR(b->plugins[1]->name, path_name);
        T_CHECK(b->plugins[1]->inst == a->plugins[0]->inst); /* the global instance is shared */
        T_EQ_INT(b->plugins[1]->index, 1);
    }
    /* c: the path-named global is disabled here */
    T_EQ_INT(c->nplugins, 1);
    if (c->nplugins == 1 && a->nplugins == 2) {
        T_EQ_STR(c->plugins[0]->name, "test_cfg");
        T_CHECK(c->plugins[0]->inst == a->plugins[1]->inst);
        T_EQ_INT(c->plugins[0]->index, 0);
    }
    /* d: equal priorities (50): ties broken by name ascending ('/' sorts before 't') */
    T_EQ_INT(d->nplugins, 2);
    if (d->nplugins == 2) {
        T_EQ_INT(d->plugins[0]->priority, 50);
        T_EQ_INT(d->plugins[1]->priority, 50);
        T_EQ_STR(d->plugins[0]->name, path_name);
        T_EQ_STR(d->plugins[1]->name, "test_cfg");
        T_EQ_INT(d->plugins[1]->index, 1);
    }
    cfg_free(g);
    T_EQ_INT(*live, before);
}

static void t_refs_and_file(void)
{
    cfg_errors e = {0};
    /* the repository's default config, loaded from the file (OPENAI_API_KEY unset: the openai
     * provider is disabled); it names plugins under build/plugins, which may not be built here,
     * so only check that the failure, if any, is about plugins */
    unsetenv("OPENAI_API_KEY");
    unsetenv("ANTHROPIC_API_KEY");
    char *cwd = getcwd(NULL, 0);
    char conf[PATH_MAX + 64];
    snprintf(conf, sizeof conf, "%s/conf/aigw.json", cwd ? cwd : ".");
    free(cwd);
    if (access(conf, R_OK) == 0) {
        cfg_gen *g = cfg_load(conf, &e);
        if (g) {
            T_EQ_INT(g->nroutes, 7); /* chat, embeddings, messages, responses, count_tokens, models, passthrough */
            T_EQ_INT(g->admin.port, 8081);
            cfg_free(g);
        } else {
            for (const cfg_error *x = e.head; x; x = x->next)
                T_CHECK(strstr(x->path, "/plugin") != NULL || strstr(x->path, "/config") != NULL);
        }
        cfg_errors_clear(&e);
    }
    T_CHECK(cfg_load("/nonexistent/aigw.json", &e) == NULL);
    T_CHECK(has_err(&e, "", "cannot open config file '/nonexistent/aigw.json'", NULL));
    cfg_errors_clear(&e);

    cfg_gen *g = load(HEAD "'routes': [" ROUTE("") "]}", &e);
    cfg_gen *g2 = load(HEAD "'routes': [" ROUTE("") "]}", &e);
    T_CHECK(g && g2);
    if (!g || !g2) {
        dump_errs(&e);
        cfg_errors_clear(&e);
        cfg_free(g);
        cfg_free(g2);
        return;
    }
    T_CHECK(g2->id > g->id);
    gen_ref(g);
    gen_ref(g);
    T_EQ_INT(atomic_load(&g->refs), 3);
    T_EQ_INT(gen_unref(g), 0);
    T_EQ_INT(gen_unref(g), 0);
    T_EQ_INT(gen_unref(g), 1);
    cfg_free(g);
    cfg_free(g2);
    cfg_free(NULL);
}

int main(void)
{
    const char *d = getenv("AIGW_TEST_PLUGIN_DIR");
    if (d && *d) {
        snprintf(plugdir, sizeof plugdir, "%s", d);
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0) {
            fprintf(stderr, "cannot find the test plugins: set AIGW_TEST_PLUGIN_DIR\n");
            return 1;
        }
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        snprintf(plugdir, sizeof plugdir, "%s/test-plugins", exe);
    }
    setenv("TPD", plugdir, 1);
    unsetenv("AIGW_TEST_UNSET_VAR");

    T_RUN(t_valid);
    T_RUN(t_defaults);
    T_RUN(t_errors);
    T_RUN(t_store_cluster);
    T_RUN(t_many_errors);
    T_RUN(t_loader);
    T_RUN(t_expand);
    T_RUN(t_disabled_provider);
    T_RUN(t_match);
    T_RUN(t_priority);
    T_RUN(t_refs_and_file);
    return T_END();
}
