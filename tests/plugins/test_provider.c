/* test_provider.c - a minimal provider adapter: config "/base_url" (a string, required) becomes
 * the upstream URL in prepare. Exports test_provider_live (instances alive) for the tests. */
#include "aigw/plugin.h"

#include <string.h>

AIGW_EXPORT int test_provider_live;

typedef struct tp_inst {
    const aigw_host *h;
    char *base_url;
    size_t n;
} tp_inst;

static void *tp_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d)
{
    const aigw_json *u = cfg ? h->json_get(cfg, "base_url") : NULL;
    aigw_str s;
    if (!u) {
        h->diag_error(d, "/base_url", "is required (e.g. \"http://127.0.0.1:9000/v1\")");
        return NULL;
    }
    if (h->json_str(u, &s) != AIGW_OK) {
        h->diag_error(d, "/base_url", "must be a string");
        return NULL;
    }
    tp_inst *in = h->alloc(sizeof *in);
    if (!in)
        return NULL;
    in->base_url = h->alloc(s.n + 1);
    if (!in->base_url) {
        h->free(in);
        return NULL;
    }
    memcpy(in->base_url, s.p, s.n);
    in->base_url[s.n] = '\0';
    in->n = s.n;
    in->h = h;
    test_provider_live++;
    return in;
}

static void tp_destroy(void *inst)
{
    tp_inst *in = inst;
    test_provider_live--;
    in->h->free(in->base_url);
    in->h->free(in);
}

static aigw_status tp_prepare(void *inst, aigw_req *r, void **rctx)
{
    tp_inst *in = inst;
    (void)rctx;
    aigw_str url = {in->base_url, in->n};
    return in->h->set_upstream_url(r, url) == AIGW_OK ? AIGW_CONTINUE : AIGW_ERROR;
}

static const aigw_provider prov = {
    .struct_size = (uint32_t)sizeof(aigw_provider),
    .wire_format = "openai",
    .prepare = tp_prepare,
};

static const aigw_plugin desc = {
    AIGW_PLUGIN_HEADER,
    .name = "test_provider",
    .version = "1.0.0",
    .flags = AIGW_IS_PROVIDER,
    .create = tp_create,
    .destroy = tp_destroy,
    .provider = &prov,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen)
{
    (void)h;
    (void)err;
    (void)errlen;
    return &desc;
}
