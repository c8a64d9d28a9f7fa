/* fuzz_config.c - the config loader (cfg_load_text) on arbitrary text: it must never crash or leak;
 * NULL comes with at least one error, each with a path that is empty or a JSON pointer ("/...")
 * and a non-empty message; a generation comes with no error and is freed (plugin instances
 * destroyed) by cfg_free.
 *
 * Safety: a config names plugin libraries, and the loader dlopen()s them. Before the load, the
 * text is parsed the way the loader parses it; when it parses, every top-level "plugin_paths" is
 * dropped (so only the default search directories are used: the install directory and
 * build/plugins, which hold only this project's plugins, or nothing) and every "plugin" / "name"
 * string loses its '/' and '$' (a name with '/' is taken as a file path; "${VAR:-/x/y.so}" would
 * expand into one), then the tree is printed back and that text is loaded instead. Text that does
 * not parse is handed over as it is (the loader stops at the syntax error). */
#include "config.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

/* Returns 1 when something was changed. */
static int defang(cJSON *node)
{
  int changed = 0;
  for (cJSON *c = node->child; c; c = c->next) {
    if (c->string && cJSON_IsString(c) && c->valuestring &&
        (!strcmp(c->string, "plugin") || !strcmp(c->string, "name"))) {
      for (char *s = c->valuestring; *s; s++) {
        if (*s == '/' || *s == '$') {
          *s = '_';
          changed = 1;
        }
      }
    }
    if (cJSON_IsArray(c) || cJSON_IsObject(c)) changed |= defang(c);
  }
  return changed;
}

static void check_errors(const cfg_errors *e)
{
  size_t n = 0;
  const cfg_error *last = NULL;
  for (const cfg_error *x = e->head; x; x = x->next, n++) {
    CHECK(x->path && (x->path[0] == '\0' || x->path[0] == '/'));
    CHECK(x->message && x->message[0]);
    last = x;
  }
  CHECK(n == e->count && last == e->tail);
}

static int hdr_none(void *ud, const char *name, const char **v, size_t *vn)
{
  (void)ud;
  (void)name;
  (void)v;
  (void)vn;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* parse exactly as cfg_load_text does: a NUL-terminated copy, nothing after the value */
  char *buf = malloc(size + 1);
  CHECK(buf);
  if (size) memcpy(buf, data, size);
  buf[size] = 0;
  const char *text = (const char *)data;
  size_t len = size;
  char *printed = NULL;
  cJSON *root = cJSON_ParseWithOpts(buf, NULL, 1);
  if (root) {
    int changed = defang(root);
    if (cJSON_IsObject(root))
      while (cJSON_GetObjectItemCaseSensitive(root, "plugin_paths")) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "plugin_paths");
        changed = 1;
      }
    if (changed || memchr(data, 0, size)) { /* an embedded NUL: the loader stops there too */
      printed = cJSON_PrintUnformatted(root);
      CHECK(printed);
      text = printed;
      len = strlen(printed);
    }
    cJSON_Delete(root);
  }
  free(buf);

  cfg_errors errs = {0};
  cfg_gen *g = cfg_load_text(text, len, ".", &errs);
  check_errors(&errs);
  if (g) {
    CHECK(errs.count == 0);
    CHECK(g->id > 0 && atomic_load(&g->refs) == 1);
    CHECK(g->workers > 0);
    for (size_t i = 0; i < g->nroutes; i++) CHECK(g->routes[i].route_index == i);
    (void)cfg_match(g, "POST", 4, "/v1/chat/completions", 20, "localhost", 9, hdr_none, NULL);
    (void)cfg_match(g, "GET", 3, "/", 1, "", 0, hdr_none, NULL);
    gen_ref(g);
    CHECK(gen_unref(g) == 0);
    CHECK(gen_unref(g) == 1);
    cfg_free(g);
  } else {
    CHECK(errs.count > 0);
  }
  cfg_errors_clear(&errs);
  CHECK(errs.count == 0 && !errs.head);
  free(printed);
  return 0;
}
