/* abi_stream.c - test plugin for the stream-event family of the ABI: event_kind, event_name,
 * event_data, event_json, event_text / event_set_text, DROP, emit_event, end_stream, and response
 * headers set from the first event (before the head is sent) vs a later one (refused).
 *
 * Loaded by tests/integration/gateway.abi.test.mjs. Ops come from the x-abi-stream request header,
 * a comma-separated list:
 *   upper         every DELTA's text upper-cased (event_set_text)
 *   drop:<word>   DELTA events whose text contains <word> are dropped (DROP)
 *   emit          after the first DELTA, an inserted chunk-shaped event with content "[inserted] "
 *   emit-named    after the first DELTA, an inserted event "event: abi" with data {"abi":"named"}
 *   end:<n>       on the DELTA after the n-th, end_stream("policy_error", "ended by abi_stream")
 *                 (the hook then returns CONTINUE: the host must not send that event)
 * Always (when the header is present): the first event sets x-abi-stream-first on the client
 * response; the third event tries x-abi-stream-late (AIGW_E_PHASE once the head was sent, which a
 * trickling upstream guarantees: one event per read, one write per read); on the DONE event a
 * log_field "abi_kinds" {"delta","tool","usage","stop","done","other","json_ok","late_rc","emit_rc"}
 * is added, and every kind seen is also logged in on_done at WARN as
 * "ABI-STREAM id=<x-abi-trace> kinds=<...>". */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aigw/plugin.h"

typedef struct st_inst {
    const aigw_host *h;
} st_inst;

typedef struct st_ctx {
    int upper, emit, emit_named, end_after;
    char drop[64];
    char trace[64];
    int events, delta, tool, usage, stop, done, other, error, json_ok;
    int late_rc, late_tried, emit_rc, ended;
    int dropped;
} st_ctx;

static aigw_str cs(const char *s) { return (aigw_str){s, strlen(s)}; }

static void *st_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d)
{
    (void)cfg;
    (void)d;
    st_inst *in = h->alloc(sizeof *in);
    if (in)
        in->h = h;
    return in;
}

static void st_destroy(void *inst)
{
    st_inst *in = inst;
    in->h->free(in);
}

static aigw_status st_on_request(void *inst, aigw_req *r, void **rctx)
{
    st_inst *in = inst;
    const aigw_host *h = in->h;
    aigw_str v;
    if (h->header(r, AIGW_CLIENT_REQUEST, AIGW_STR("x-abi-stream"), &v) != AIGW_OK)
        return AIGW_CONTINUE;
    st_ctx *x = h->alloc(sizeof *x);
    if (!x)
        return AIGW_ERROR;
    memset(x, 0, sizeof *x);
    x->late_rc = 1;
    x->emit_rc = 1;
    *rctx = x;
    char ops[256];
    snprintf(ops, sizeof ops, "%.*s", (int)(v.n < 255 ? v.n : 255), v.p);
    for (char *tok = strtok(ops, ","); tok; tok = strtok(NULL, ",")) {
        while (*tok == ' ')
            tok++;
        if (!strcmp(tok, "upper"))
            x->upper = 1;
        else if (!strcmp(tok, "emit"))
            x->emit = 1;
        else if (!strcmp(tok, "emit-named"))
            x->emit_named = 1;
        else if (!strncmp(tok, "drop:", 5))
            snprintf(x->drop, sizeof x->drop, "%s", tok + 5);
        else if (!strncmp(tok, "end:", 4))
            x->end_after = atoi(tok + 4);
    }
    aigw_str t;
    if (h->header(r, AIGW_CLIENT_REQUEST, AIGW_STR("x-abi-trace"), &t) == AIGW_OK)
        snprintf(x->trace, sizeof x->trace, "%.*s", (int)(t.n < 63 ? t.n : 63), t.p);
    return AIGW_CONTINUE;
}

static int contains(aigw_str s, const char *w)
{
    size_t wl = strlen(w);
    if (!wl || wl > s.n)
        return 0;
    for (size_t i = 0; i + wl <= s.n; i++)
        if (!memcmp(s.p + i, w, wl))
            return 1;
    return 0;
}

static aigw_status st_on_event(void *inst, aigw_req *r, void **rctx, aigw_event *e)
{
    st_inst *in = inst;
    const aigw_host *h = in->h;
    st_ctx *x = *rctx;
    if (!x)
        return AIGW_CONTINUE;
    x->events++;
    if (x->events == 1)
        h->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("x-abi-stream-first"), AIGW_STR("yes"));
    else if (x->events >= 3 && !x->late_tried) { /* with a trickling upstream, the head is out by now */
        x->late_tried = 1;
        x->late_rc = h->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("x-abi-stream-late"), AIGW_STR("yes"));
    }
    aigw_event_kind k = h->event_kind(e);
    switch (k) {
    case AIGW_EV_DELTA: x->delta++; break;
    case AIGW_EV_TOOL_DELTA: x->tool++; break;
    case AIGW_EV_USAGE: x->usage++; break;
    case AIGW_EV_STOP: x->stop++; break;
    case AIGW_EV_DONE: x->done++; break;
    case AIGW_EV_ERROR: x->error++; break;
    case AIGW_EV_OTHER:
    default: x->other++; break;
    }
    if (k == AIGW_EV_DONE) {
        char f[256];
        snprintf(f, sizeof f,
                 "{\"delta\":%d,\"tool\":%d,\"usage\":%d,\"stop\":%d,\"done\":%d,\"other\":%d,\"json_ok\":%d,"
                 "\"late_rc\":%d,\"emit_rc\":%d,\"dropped\":%d}",
                 x->delta, x->tool, x->usage, x->stop, x->done, x->other, x->json_ok, x->late_rc, x->emit_rc,
                 x->dropped);
        h->log_field(r, "abi_kinds", cs(f));
        return AIGW_CONTINUE;
    }
    if (k != AIGW_EV_DELTA)
        return AIGW_CONTINUE;

    /* the raw pieces agree with each other */
    aigw_str name, data, text;
    aigw_json *j = h->event_json(e);
    if (h->event_name(e, &name) == AIGW_OK && h->event_data(e, &data) == AIGW_OK && data.n && data.p[0] == '{' && j &&
        h->json_type(j) == AIGW_JSON_OBJECT && h->json_pointer(j, "/choices/0/delta/content"))
        x->json_ok++;
    if (h->event_text(e, &text) != AIGW_OK)
        return AIGW_CONTINUE;

    if (x->end_after && x->delta > x->end_after) {
        if (!x->ended) {
            x->ended = 1;
            h->end_stream(r, "policy_error", "ended by abi_stream");
        }
        return AIGW_CONTINUE; /* the host must not send this event after the error */
    }
    if (x->drop[0] && contains(text, x->drop)) {
        x->dropped++;
        return AIGW_DROP;
    }
    if (x->upper) {
        char buf[4096];
        size_t n = text.n < sizeof buf ? text.n : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)toupper((unsigned char)text.p[i]);
        if (h->event_set_text(e, (aigw_str){buf, n}) != AIGW_OK)
            return AIGW_ERROR;
    }
    if (x->delta == 1 && x->emit) {
        x->emit_rc = h->emit_event(r, (aigw_str){NULL, 0},
                                   AIGW_STR("{\"id\":\"chatcmpl-abi\",\"object\":\"chat.completion.chunk\","
                                            "\"created\":1700000000,\"model\":\"abi\",\"choices\":[{\"index\":0,"
                                            "\"delta\":{\"content\":\"[inserted] \"},\"finish_reason\":null}]}"));
    }
    if (x->delta == 1 && x->emit_named)
        x->emit_rc = h->emit_event(r, AIGW_STR("abi"), AIGW_STR("{\"abi\":\"named\"}"));
    return AIGW_CONTINUE;
}

static void st_on_done(void *inst, aigw_req *r, void *rctx)
{
    st_inst *in = inst;
    st_ctx *x = rctx;
    if (!x)
        return;
    if (x->trace[0])
        in->h->log(r, AIGW_LOG_WARN,
                   "ABI-STREAM id=%s kinds=delta:%d,tool:%d,usage:%d,stop:%d,done:%d,error:%d,other:%d dropped=%d",
                   x->trace, x->delta, x->tool, x->usage, x->stop, x->done, x->error, x->other, x->dropped);
    in->h->free(x);
}

static const aigw_plugin desc = {
    AIGW_PLUGIN_HEADER,
    .name = "abi_stream",
    .version = "1.0.0",
    .priority = 15,
    .flags = AIGW_WANTS_EVENTS,
    .create = st_create,
    .destroy = st_destroy,
    .on_request = st_on_request,
    .on_event = st_on_event,
    .on_done = st_on_done,
};

AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen)
{
    if (h->abi_major != AIGW_ABI_MAJOR) {
        snprintf(err, errlen, "host ABI %u.%u, plugin built for %d.%d", h->abi_major, h->abi_minor,
                 AIGW_ABI_MAJOR, AIGW_ABI_MINOR);
        return NULL;
    }
    return &desc;
}
