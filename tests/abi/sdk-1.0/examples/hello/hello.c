/* hello.c - the smallest useful aigw plugin: adds "x-hello: <greeting>" to every response.
 * Config: {"greeting": "world"} (optional). Build: see ../README.md. */
#include <aigw/plugin.h>
#include <string.h>

static const aigw_host *H;

static void *hello_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d) {
  aigw_str g = AIGW_STR("world");
  const aigw_json *v = cfg ? h->json_get(cfg, "greeting") : NULL;
  if (v && h->json_str(v, &g) != AIGW_OK) {
    h->diag_error(d, "/greeting", "must be a string");
    return NULL;
  }
  char *inst = h->alloc(g.n + 1); /* the instance is just the greeting, NUL-terminated */
  if (inst) memcpy(inst, g.p, g.n), inst[g.n] = '\0';
  return inst;
}

static void hello_destroy(void *inst) { H->free(inst); }

/* Response headers may be set from the request phase on: the host applies them to whatever
 * response the client gets (upstream answer, stream, or an error). */
static aigw_status hello_on_request(void *inst, aigw_req *r, void **rctx) {
  (void)rctx;
  H->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("x-hello"), (aigw_str){inst, strlen(inst)});
  return AIGW_CONTINUE;
}

static const aigw_plugin hello = {AIGW_PLUGIN_HEADER, .name = "hello", .version = "1.0.0",
                                  .create = hello_create, .destroy = hello_destroy,
                                  .on_request = hello_on_request};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  (void)err, (void)errlen;
  H = h;
  return &hello;
}
