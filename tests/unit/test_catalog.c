/* test_catalog.c - the model catalog: pricing math (cached, cache-write, reasoning, long context),
 * lookups (aliases, snapshot dates, Bedrock region prefixes), the config's "models" overriding the
 * catalog file, JSON-pointer errors for invalid catalogs, and the shipped conf/models.json.
 *
 * Configs need a provider and a route; they use the test_provider plugin from $AIGW_TEST_PLUGIN_DIR,
 * else from the test-plugins folder beside this binary (named ${TPD} in the texts, as in
 * test_config.c). Texts are written with ' for ". */
#include "catalog.h"
#include "config.h"
#include "t.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static char plugdir[PATH_MAX + 64];
static char tmpdir[PATH_MAX];

#define HEAD "{'plugin_paths': ['${TPD}'], 'providers': {'p': {'plugin': 'test_provider', " \
             "'config': {'base_url': 'http://u/v1'}}}, 'routes': [{'name': 'r', 'match': {'path': " \
             "'/x'}, 'api': 'chat', 'targets': [{'provider': 'p'}]}]"

static cfg_gen *load_in(const char *dir, const char *text, cfg_errors *errs) {
  size_t n = strlen(text);
  char *t = malloc(n + 1);
  for (size_t i = 0; i <= n; i++) t[i] = text[i] == '\'' ? '"' : text[i];
  cfg_gen *g = cfg_load_text(t, n, dir, errs);
  free(t);
  return g;
}
static cfg_gen *load(const char *text, cfg_errors *errs) { return load_in(tmpdir, text, errs); }

static void write_file(const char *name, const char *text) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  if (!f) return;
  for (const char *p = text; *p; p++) fputc(*p == '\'' ? '"' : *p, f);
  fclose(f);
}

static void dump_errs(const cfg_errors *e) {
  for (const cfg_error *x = e->head; x; x = x->next) fprintf(stderr, "    [%s] %s\n", x->path, x->message);
}

/* 1 when some error is at exactly path and its message contains sub. */
static int has_err(const cfg_errors *e, const char *path, const char *sub) {
  for (const cfg_error *x = e->head; x; x = x->next)
    if (strcmp(x->path, path) == 0 && (!sub || strstr(x->message, sub))) return 1;
  fprintf(stderr, "  expected an error at '%s' containing '%s'; got:\n", path, sub ? sub : "");
  dump_errs(e);
  return 0;
}

static const cat_model *find(const cfg_gen *g, const char *name) {
  return catalog_find(g ? g->catalog : NULL, name, strlen(name));
}

static aigw_usage usage(int64_t in, int64_t out, int64_t cached, int64_t cwrite, int64_t reasoning) {
  aigw_usage u = {sizeof(aigw_usage), in, out, cached, cwrite, reasoning};
  return u;
}

#define NEAR(a, b) (fabs((a) - (b)) < 1e-12)

/* ---- pricing ------------------------------------------------------------------------------ */

static void t_pricing(void) {
  cfg_errors e = {0};
  cfg_gen *g = load(HEAD ", 'models': {"
                    " 'full': {'pricing': {'input': 2, 'output': 8, 'cached_input': 0.5, 'cache_write': 2.5}},"
                    " 'nocache': {'pricing': {'input': 2, 'output': 8}},"
                    " 'emb': {'pricing': {'input': 0.02, 'output': 0}, 'capabilities': ['embeddings']},"
                    " 'long': {'pricing': {'input': 1.25, 'output': 10, 'cached_input': 0.125,"
                    "   'long_context': {'above_input_tokens': 200000, 'input': 2.5, 'output': 15}}},"
                    " 'unpriced': {'context_window': 1000}}}",
                    &e);
  T_CHECK(g != NULL);
  if (!g) {
    dump_errs(&e);
    cfg_errors_clear(&e);
    return;
  }
  double usd = -1;
  /* 1000 prompt tokens of which 300 cached and 100 written to the cache; 500 out (200 reasoning):
   * 600 * 2 + 300 * 0.5 + 100 * 2.5 + 500 * 8 = 5600 micro-USD. Reasoning is not added again. */
  aigw_usage u = usage(1000, 500, 300, 100, 200);
  T_EQ_INT(catalog_cost(find(g, "full"), &u, &usd), 0);
  T_CHECK(NEAR(usd, 0.0056));
  /* no cache rates: cached and written tokens cost the input rate, never less, never twice */
  T_EQ_INT(catalog_cost(find(g, "nocache"), &u, &usd), 0);
  T_CHECK(NEAR(usd, (1000 * 2 + 500 * 8) / 1e6));
  /* plain request */
  u = usage(10, 20, 0, -1, -1);
  T_EQ_INT(catalog_cost(find(g, "full"), &u, &usd), 0);
  T_CHECK(NEAR(usd, (10 * 2 + 20 * 8) / 1e6));
  /* cached tokens only: 100 prompt tokens, 40 from the cache */
  u = usage(100, 0, 40, 0, 0);
  T_EQ_INT(catalog_cost(find(g, "full"), &u, &usd), 0);
  T_CHECK(NEAR(usd, (60 * 2 + 40 * 0.5) / 1e6));
  /* an adapter claiming more cached tokens than prompt tokens: all of them at the cached rate */
  u = usage(10, 0, 50, 0, 0);
  T_EQ_INT(catalog_cost(find(g, "full"), &u, &usd), 0);
  T_CHECK(NEAR(usd, 10 * 0.5 / 1e6));
  /* unknown usage is never priced as 0 */
  u = usage(-1, 20, -1, -1, -1);
  T_EQ_INT(catalog_cost(find(g, "full"), &u, &usd), -1);
  u = usage(10, -1, -1, -1, -1);
  T_EQ_INT(catalog_cost(find(g, "full"), &u, &usd), -1);
  /* ... except the output of an embeddings model, which answers no tokens */
  T_EQ_INT(catalog_cost(find(g, "emb"), &u, &usd), 0);
  T_CHECK(NEAR(usd, 10 * 0.02 / 1e6));
  /* unpriced or unknown models */
  u = usage(10, 20, 0, 0, 0);
  T_CHECK(find(g, "unpriced") != NULL);
  T_EQ_INT(cat_model_priced(find(g, "unpriced")), 0);
  T_EQ_INT(catalog_cost(find(g, "unpriced"), &u, &usd), -1);
  T_EQ_INT(catalog_cost(find(g, "nope"), &u, &usd), -1);
  T_EQ_INT(catalog_cost(find(g, "full"), NULL, &usd), -1);
  /* long context: at the threshold the base rates, above it the tier's (cached inherits) */
  u = usage(200000, 1000, 0, 0, 0);
  T_EQ_INT(catalog_cost(find(g, "long"), &u, &usd), 0);
  T_CHECK(NEAR(usd, (200000 * 1.25 + 1000 * 10) / 1e6));
  u = usage(200001, 1000, 1, 0, 0);
  T_EQ_INT(catalog_cost(find(g, "long"), &u, &usd), 0);
  T_CHECK(NEAR(usd, (200000 * 2.5 + 1 * 0.125 + 1000 * 15) / 1e6));
  cfg_free(g);
  cfg_errors_clear(&e);
}

/* ---- lookups ------------------------------------------------------------------------------ */

static void t_lookup(void) {
  cfg_errors e = {0};
  cfg_gen *g = load(HEAD ", 'models': {"
                    " 'gpt-4o': {'aliases': ['gpt-4o-2024-08-06'], 'pricing': {'input': 2.5, 'output': 10}},"
                    " 'gpt-4o-2024-05-13': {'pricing': {'input': 5, 'output': 15}},"
                    " 'claude-sonnet-4-0': {'aliases': ['claude-sonnet-4'], 'max_output_tokens': 64000},"
                    " 'anthropic.claude-x-v1:0': {'max_output_tokens': 100},"
                    " 'global.anthropic.claude-x-v1:0': {'max_output_tokens': 200}}}",
                    &e);
  T_CHECK(g != NULL);
  if (!g) {
    dump_errs(&e);
    cfg_errors_clear(&e);
    return;
  }
  const cat_model *m = find(g, "gpt-4o");
  T_CHECK(m && !strcmp(m->name, "gpt-4o"));
  T_CHECK(find(g, "gpt-4o-2024-08-06") == m);             /* alias */
  T_CHECK(find(g, "gpt-4o-2024-11-20") == m);             /* snapshot date stripped */
  T_CHECK(find(g, "gpt-4o-2024-05-13") != m);             /* an exact entry wins over the stripping */
  T_CHECK(find(g, "gpt-4o-2024-05-13") && find(g, "gpt-4o-2024-05-13")->base.input == 5);
  T_CHECK(find(g, "gpt-4o-mini") == NULL);                /* no prefix matching */
  T_CHECK(find(g, "GPT-4O") == NULL);                     /* exact bytes */
  T_CHECK(find(g, "claude-sonnet-4-20250514") == find(g, "claude-sonnet-4-0")); /* date, then alias */
  T_CHECK(find(g, "claude-sonnet-4@20250514") == find(g, "claude-sonnet-4-0")); /* Vertex style */
  T_EQ_INT(catalog_max_output_tokens(g->catalog, "us.anthropic.claude-x-v1:0", 26), 100);
  T_EQ_INT(catalog_max_output_tokens(g->catalog, "eu.anthropic.claude-x-v1:0", 26), 100);
  T_EQ_INT(catalog_max_output_tokens(g->catalog, "global.anthropic.claude-x-v1:0", 30), 200);
  T_EQ_INT(catalog_max_output_tokens(g->catalog, "claude-sonnet-4", 15), 64000);
  T_EQ_INT(catalog_max_output_tokens(g->catalog, "claude-sonnet-4", 10), 0); /* "claude-son" */
  T_EQ_INT(catalog_max_output_tokens(g->catalog, "gpt-4o", 6), 0);          /* not given */
  T_EQ_INT(catalog_max_output_tokens(NULL, "gpt-4o", 6), 0);
  T_CHECK(catalog_find(g->catalog, NULL, 0) == NULL);
  cfg_free(g);
  cfg_errors_clear(&e);

  /* no catalog and no models: an empty catalog, every lookup misses */
  g = load(HEAD "}", &e);
  T_CHECK(g && g->catalog && catalog_count(g->catalog) == 0 && !find(g, "gpt-4o"));
  cfg_free(g);
  cfg_errors_clear(&e);
}

/* ---- the config's "models" over the catalog file -------------------------------------------- */

static void t_overrides(void) {
  write_file("cat.json", "{'_note': 'comment', 'models': {"
                         " '_c': 'a comment entry',"
                         " 'm1': {'provider': 'openai', 'aliases': ['m1-2025-01-01', 'm1-old'],"
                         "   'context_window': 1000, 'max_output_tokens': 100, 'capabilities': ['tools'],"
                         "   'pricing': {'input': 1, 'output': 2, 'cached_input': 0.5}, '_note': 'x'},"
                         " 'm2': {'pricing': {'input': 3, 'output': 4}},"
                         " 'm3': {'pricing': {'input': 5, 'output': 6}}}}");
  cfg_errors e = {0};
  /* without overrides */
  cfg_gen *g = load(HEAD ", 'model_catalog': 'cat.json'}", &e);
  T_CHECK(g != NULL);
  if (!g) dump_errs(&e);
  T_EQ_INT(catalog_count(g ? g->catalog : NULL), 3);
  const cat_model *m = find(g, "m1");
  T_CHECK(m && m->base.input == 1 && m->base.cached_input == 0.5 && m->base.cache_write < 0);
  T_CHECK(m && m->provider && !strcmp(m->provider, "openai") && m->caps == CAT_CAP_TOOLS);
  T_CHECK(find(g, "m1-old") == m);
  cfg_free(g);
  cfg_errors_clear(&e);

  /* overrides: field by field; an alias key becomes its own model, starting from the aliased one
   * with its overrides (whatever the key order); null removes; new ones add */
  g = load(HEAD ", 'model_catalog': 'cat.json', 'models': {"
                " 'm1-old': {'pricing': {'input': 9}},"
                " 'm1': {'pricing': {'output': 20}, 'max_output_tokens': 50},"
                " 'm2': null,"
                " 'm4': {'pricing': {'input': 7, 'output': 8}, 'aliases': ['m4a']}}}",
           &e);
  T_CHECK(g != NULL);
  if (!g) {
    dump_errs(&e);
    cfg_errors_clear(&e);
    return;
  }
  m = find(g, "m1");
  T_CHECK(m && m->base.input == 1 && m->base.output == 20 && m->base.cached_input == 0.5); /* merged */
  T_CHECK(m && m->context_window == 1000 && m->max_output_tokens == 50 && m->caps == CAT_CAP_TOOLS);
  T_CHECK(find(g, "m1-2025-01-01") == m); /* the other alias stays */
  const cat_model *old = find(g, "m1-old");
  T_CHECK(old && old != m && !strcmp(old->name, "m1-old"));
  T_CHECK(old && old->base.input == 9 && old->base.output == 20 && old->context_window == 1000);
  T_CHECK(old && old->max_output_tokens == 50 && old->naliases == 0);
  T_CHECK(old && old->provider && !strcmp(old->provider, "openai"));
  T_CHECK(find(g, "m2") == NULL);
  T_CHECK(find(g, "m3") && find(g, "m3")->base.output == 6);
  T_CHECK(find(g, "m4a") && find(g, "m4a") == find(g, "m4"));
  aigw_usage u = usage(1000000, 1000000, 0, 0, 0);
  double usd = 0;
  T_EQ_INT(catalog_cost(find(g, "m1"), &u, &usd), 0);
  T_CHECK(NEAR(usd, 21.0)); /* 1 + 20: the override's output price */
  cfg_free(g);
  cfg_errors_clear(&e);

  /* a relative path is relative to base_dir (the config file's folder), an absolute one is not */
  char abs[PATH_MAX + 64], text[2 * PATH_MAX];
  snprintf(abs, sizeof abs, "%s/cat.json", tmpdir);
  snprintf(text, sizeof text, HEAD ", 'model_catalog': '%s'}", abs);
  g = load_in("/nonexistent", text, &e);
  T_CHECK(g && find(g, "m3"));
  cfg_free(g);
  cfg_errors_clear(&e);
  g = load_in("/nonexistent", HEAD ", 'model_catalog': 'cat.json'}", &e);
  T_CHECK(g == NULL);
  T_CHECK(has_err(&e, "/model_catalog", "cannot read the model catalog '/nonexistent/cat.json'"));
  cfg_free(g);
  cfg_errors_clear(&e);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void t_errors(void) {
  char fb[PATH_MAX + 64], p[PATH_MAX + 128];
  snprintf(fb, sizeof fb, "%s/bad.json#", tmpdir);
#define FP(ptr) (snprintf(p, sizeof p, "%s%s", fb, ptr), p)
  write_file("bad.json", "{'version': 1, 'models': {"
                         " 'neg': {'pricing': {'input': -1, 'output': 2}},"
                         " 'str': {'pricing': {'input': '1', 'output': 2}},"
                         " 'half': {'pricing': {'input': 1}},"
                         " 'typo': {'pricing': {'input': 1, 'output': 2}, 'max_output': 5},"
                         " 'ptypo': {'pricing': {'input': 1, 'output': 2, 'cache_read': 1}},"
                         " 'cap': {'capabilities': ['vision', 'tool', 3]},"
                         " 'ctx': {'context_window': 0, 'max_output_tokens': 1.5},"
                         " 'big': {'context_window': 100, 'max_output_tokens': 200},"
                         " 'lc': {'pricing': {'input': 1, 'output': 2, 'long_context': {'input': 2}}},"
                         " 'huge': {'pricing': {'input': 2000000, 'output': 1}},"
                         " 'al': {'aliases': ['neg', '']},"
                         " 'al2': {'aliases': 'x'},"
                         " 'prov': {'provider': 7},"
                         " '': {},"
                         " 'notobj': 3}}");
  cfg_errors e = {0};
  cfg_gen *g = load(HEAD ", 'model_catalog': 'bad.json', 'models': {"
                         " 'x': {'pricing': {'input': 1, 'output': -0.5}},"
                         " 'y': {'pricing': 'cheap'},"
                         " 'gone': null,"
                         " 'z': {'aliases': ['str']},"
                         " 'w': {'colour': 'red'}}}",
                    &e);
  T_CHECK(g == NULL);
  T_CHECK(has_err(&e, FP("/version"), "unknown key 'version' in the model catalog"));
  T_CHECK(has_err(&e, FP("/models/neg/pricing/input"), "must be >= 0"));
  T_CHECK(has_err(&e, FP("/models/str/pricing/input"), "got a string"));
  T_CHECK(has_err(&e, FP("/models/half/pricing"), "needs both 'input' and 'output'"));
  T_CHECK(has_err(&e, FP("/models/typo/max_output"), "did you mean 'max_output_tokens'"));
  T_CHECK(has_err(&e, FP("/models/ptypo/pricing/cache_read"), "unknown key 'cache_read' in pricing"));
  T_CHECK(has_err(&e, FP("/models/cap/capabilities/1"), "did you mean 'tools'"));
  T_CHECK(has_err(&e, FP("/models/cap/capabilities/2"), "must be a capability name, got a number"));
  T_CHECK(has_err(&e, FP("/models/ctx/context_window"), "must be >= 1"));
  T_CHECK(has_err(&e, FP("/models/ctx/max_output_tokens"), "must be an integer"));
  T_CHECK(has_err(&e, FP("/models/big/max_output_tokens"), "more than the context window"));
  T_CHECK(has_err(&e, FP("/models/lc/pricing/long_context"), "missing required key 'above_input_tokens'"));
  T_CHECK(has_err(&e, FP("/models/huge/pricing/input"), "at most 1000000"));
  T_CHECK(has_err(&e, FP("/models/al/aliases/0"), "'neg' already names model 'neg'"));
  T_CHECK(has_err(&e, FP("/models/al/aliases/1"), "must be a non-empty model name"));
  T_CHECK(has_err(&e, FP("/models/al2/aliases"), "must be an array"));
  T_CHECK(has_err(&e, FP("/models/prov/provider"), "must be a string"));
  T_CHECK(has_err(&e, FP("/models/"), "must not be empty"));
  T_CHECK(has_err(&e, FP("/models/notobj"), "model entry must be an object, got a number"));
  /* the config's own entries are pointed at in the config file */
  T_CHECK(has_err(&e, "/models/x/pricing/output", "must be >= 0 (USD per million tokens), got -0.5"));
  T_CHECK(has_err(&e, "/models/y/pricing", "must be an object, got a string"));
  T_CHECK(has_err(&e, "/models/gone", "the catalog has no model 'gone'"));
  T_CHECK(has_err(&e, "/models/z/aliases/0", "'str' already names model 'str'"));
  T_CHECK(has_err(&e, "/models/w/colour", "unknown key 'colour' in model entry"));
  cfg_errors_clear(&e);

  /* wrong types at the top level, a syntax error in the file */
  g = load(HEAD ", 'model_catalog': 5, 'models': []}", &e);
  T_CHECK(g == NULL);
  T_CHECK(has_err(&e, "/model_catalog", "must be a string"));
  T_CHECK(has_err(&e, "/models", "must be an object, got an array"));
  cfg_errors_clear(&e);
  write_file("syntax.json", "{'models': {'a': {'pricing': {'input': 1,, }}}}");
  g = load(HEAD ", 'model_catalog': 'syntax.json'}", &e);
  snprintf(fb, sizeof fb, "%s/syntax.json#", tmpdir);
  T_CHECK(g == NULL);
  T_CHECK(has_err(&e, fb, "invalid JSON at line 1"));
  cfg_errors_clear(&e);
  write_file("nomodels.json", "{'_note': 'x'}");
  g = load(HEAD ", 'model_catalog': 'nomodels.json'}", &e);
  snprintf(fb, sizeof fb, "%s/nomodels.json#", tmpdir);
  T_CHECK(g == NULL);
  T_CHECK(has_err(&e, fb, "missing required key 'models'"));
  cfg_errors_clear(&e);
  /* null: no catalog */
  g = load(HEAD ", 'model_catalog': null}", &e);
  T_CHECK(g != NULL);
  cfg_free(g);
  cfg_errors_clear(&e);
#undef FP
}

/* ---- the shipped catalog ------------------------------------------------------------------ */

static void t_shipped(void) {
  /* conf/ beside tests/: from this file's path */
  char root[PATH_MAX];
  snprintf(root, sizeof root, "%s", __FILE__);
  char *s = strstr(root, "/tests/unit/");
  if (!s) {
    T_CHECK(!"cannot find the repository from __FILE__");
    return;
  }
  *s = '\0';
  char conf[PATH_MAX + 8];
  snprintf(conf, sizeof conf, "%s/conf", root);
  cfg_errors e = {0};
  cfg_gen *g = load_in(conf, HEAD ", 'model_catalog': 'models.json'}", &e);
  T_CHECK(g != NULL);
  if (!g) {
    dump_errs(&e);
    cfg_errors_clear(&e);
    return;
  }
  T_CHECK(catalog_count(g->catalog) >= 60);
  size_t unpriced = 0;
  for (size_t i = 0; i < catalog_count(g->catalog); i++) {
    const cat_model *m = catalog_at(g->catalog, i);
    T_CHECK(m->provider != NULL);
    if (!cat_model_priced(m)) unpriced++;
    /* cache rates are discounts; output costs at least input except embeddings */
    if (m->base.cached_input >= 0) T_CHECK(m->base.cached_input <= m->base.input);
    if (m->base.cache_write >= 0) T_CHECK(m->base.cache_write >= m->base.input);
    if (!(m->caps & CAT_CAP_EMBEDDINGS)) T_CHECK(m->max_output_tokens > 0);
  }
  T_EQ_INT(unpriced, 1); /* text-embedding-004, explained in its _note */
  const char *names[] = {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3", "o4-mini", "gpt-5", "gpt-5-mini",
                         "text-embedding-3-small", "claude-opus-4-1", "claude-sonnet-4-5-20250929",
                         "claude-haiku-4-5", "claude-3-7-sonnet-20250219", "claude-3-5-haiku-20241022",
                         "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash",
                         "gemini-embedding-001", "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                         "amazon.nova-pro-v1:0", "meta.llama3-3-70b-instruct-v1:0", "mistral-large-latest",
                         "mistral-small-latest", "command-r", "command-r-plus", "command-a", "embed-v4.0",
                         "deepseek-chat", "deepseek-reasoner", "llama-3.3-70b-versatile"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const cat_model *m = find(g, names[i]);
    if (!m || !cat_model_priced(m)) fprintf(stderr, "  shipped catalog: %s missing or unpriced\n", names[i]);
    T_CHECK(m && cat_model_priced(m));
  }
  const cat_model *m = find(g, "gpt-4o-mini");
  T_CHECK(m && m->base.input == 0.15 && m->base.output == 0.6 && m->base.cached_input == 0.075);
  m = find(g, "claude-haiku-4-5-20251001");
  T_CHECK(m && m->base.cache_write == 1.25 && m->base.cached_input == 0.1 && m->max_output_tokens == 64000);
  /* Bedrock: regional above global */
  T_CHECK(find(g, "us.anthropic.claude-haiku-4-5-20251001-v1:0")->base.input >
          find(g, "global.anthropic.claude-haiku-4-5-20251001-v1:0")->base.input);
  T_EQ_INT(catalog_max_output_tokens(g->catalog, "claude-3-5-haiku-latest", 23), 8192);
  cfg_free(g);
  cfg_errors_clear(&e);
}

int main(void) {
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
    if (slash) *slash = '\0';
    snprintf(plugdir, sizeof plugdir, "%s/test-plugins", exe);
  }
  setenv("TPD", plugdir, 1);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/aigw-test-catalog-XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }

  T_RUN(t_pricing);
  T_RUN(t_lookup);
  T_RUN(t_overrides);
  T_RUN(t_errors);
  T_RUN(t_shipped);

  const char *files[] = {"cat.json", "bad.json", "syntax.json", "nomodels.json"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", tmpdir, files[i]);
    unlink(p);
  }
  rmdir(tmpdir);
  return T_END();
}
