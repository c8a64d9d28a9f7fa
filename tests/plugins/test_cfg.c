/* test_cfg.c - a plugin whose create validates its config and reports problems through
 * h->diag_error: "/limit" must be an integer > 0 (required), "/label" an optional string.
 * It also exports test_cfg_live (instances alive) so tests can check that the host destroys
 * every instance it created; real plugins export only aigw_plugin_entry. */
#include "aigw/plugin.h"

AIGW_EXPORT int test_cfg_live;

typedef struct tc_inst {
    const aigw_host *h;
    double limit;
} tc_inst;

static void *tc_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d)
{
    int bad = 0;
    double limit = 0;
    if (!cfg || h->json_type(cfg) != AIGW_JSON_OBJECT) {
        h->diag_error(d, "", "needs a config object with \"limit\"");
        return NULL;
    }
    const aigw_json *l = h->json_pointer(cfg, "/limit");
    if (!l) {
        h->diag_error(d, "/limit", "is required (an integer > 0)");
        bad = 1;
    } else if (h->json_num(l, &limit) != AIGW_OK || limit <= 0 || limit > 1e15 ||
               limit != (double)(long long)limit) {
        h->diag_error(d, "/limit", "must be an integer > 0");
        bad = 1;
    }
    const aigw_json *lab = h->json_get(cfg, "label");
    aigw_str s;
    if (lab && h->json_str(lab, &s) != AIGW_OK) {
        h->diag_error(d, "/label", "must be a string");
        bad = 1;
    }
    if (bad)
        return NULL;
    tc_inst *in = h->alloc(sizeof *in);
    if (!in)
        return NULL;
    in->h = h;
    in->limit = limit;
    test_cfg_live++;
    return in;
}

static void tc_destroy(void *inst)
{
    tc_inst *in = inst;
    test_cfg_live--;
    in->h->free(in);
}

static const aigw_plugin desc = {
    AIGW_PLUGIN_HEADER,
    .name = "test_cfg",
    .version = "1.0.0",
    .priority = 10,
    .create = tc_create,
    .destroy = tc_destroy,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen)
{
    (void)h;
    (void)err;
    (void)errlen;
    return &desc;
}
