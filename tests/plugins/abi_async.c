/* abi_async.c - test plugin for the async family of the ABI: http_call, timer, cancel, resume
 * (from a callback and synchronously inside the hook), several calls in flight, cancellation when
 * the request ends first, call results, and the shared store (store_incr / store_set / store_get).
 *
 * Loaded by tests/integration/gateway.abi.test.mjs. The mode comes from the x-abi-async request
 * header; the call-out from x-abi-url (x-abi-method, x-abi-body, x-abi-timeout, x-abi-max-bytes):
 *   call            GET x-abi-url, PAUSE; done: x-abi-call-status / x-abi-call-echo on the upstream
 *                   request and the client response; resume(CONTINUE)
 *   report          call x-abi-url, PAUSE; done: respond 200 with a JSON report of the result
 *                   {"st","code","body","error","hdr"}; resume(STOP). http_call returning NULL
 *                   (a bad URL) answers {"st":"NULL"} at once
 *   timer           timer(x-abi-ms), PAUSE; fire: x-abi-timer header, resume(CONTINUE)
 *   multi           x-abi-n calls to x-abi-url?i=k in flight at once, counted in rctx; the last
 *                   done sets x-abi-multi: <ok>/<n> and resumes
 *   cancel          call x-abi-url (slow), PAUSE and wait: the client leaves; the done callback must
 *                   run with CANCELLED (where resume is refused and the request is readable:
 *                   "readable:yes|no" in the trace) before on_done
 *   orphan          call x-abi-url (slow) and return CONTINUE: the request ends first, so the
 *                   call's done runs with CANCELLED before on_done
 *   cancel-explicit call x-abi-url (slow) and a 50 ms timer, PAUSE; the timer cancels the call
 *                   (twice: the second is a no-op) and resumes(CONTINUE); the call's done runs once
 *   sync            resume(CONTINUE) inside the hook, then return PAUSE
 *   sync-stop       respond + resume(STOP) inside the hook, then return PAUSE
 *   store           store_incr(x-abi-key, 1, 60 s) -> store_set(key:v) -> store_get(key:v) ->
 *                   store_get(key:missing); respond with {"count","got","missing_st","missing_code"}
 * Every request with x-abi-trace: <id> logs its callbacks at WARN:
 *   "ABI-EV id=<id> ev=<event>" for each callback as it happens, and in on_done
 *   "ABI-TRACE id=<id> seq=<event,event,...> calls=<started> dones=<done callbacks>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aigw/plugin.h"

typedef struct as_inst {
    const aigw_host *h;
} as_inst;

typedef struct as_ctx {
    const aigw_host *h;
    char trace[64];
    char seq[768];
    char url[512];
    int started, dones, pending, ok;
    aigw_call *slow;
    int count; /* store */
    char got[128];
} as_ctx;

static const char *st_name(aigw_call_status st)
{
    switch (st) {
    case AIGW_CALL_OK: return "OK";
    case AIGW_CALL_ERROR: return "ERROR";
    case AIGW_CALL_TIMEOUT: return "TIMEOUT";
    case AIGW_CALL_CANCELLED: return "CANCELLED";
    default: return "UNKNOWN";
    }
}

static aigw_str cs(const char *s) { return (aigw_str){s, strlen(s)}; }

static int hdr(const aigw_host *h, aigw_req *r, const char *name, char *buf, size_t cap)
{
    aigw_str v;
    if (h->header(r, AIGW_CLIENT_REQUEST, cs(name), &v) != AIGW_OK)
        return 0;
    size_t n = v.n < cap - 1 ? v.n : cap - 1;
    memcpy(buf, v.p, n);
    buf[n] = 0;
    return 1;
}

static void ev(as_ctx *x, aigw_req *r, const char *fmt, ...) AIGW_PRINTF(3, 4);
static void ev(as_ctx *x, aigw_req *r, const char *fmt, ...)
{
    char e[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e, sizeof e, fmt, ap);
    va_end(ap);
    size_t l = strlen(x->seq);
    snprintf(x->seq + l, sizeof x->seq - l, "%s%s", l ? "," : "", e);
    if (x->trace[0])
        x->h->log(r, AIGW_LOG_WARN, "ABI-EV id=%s ev=%s", x->trace, e);
}

/* JSON string literal of s (n bytes) appended to out. */
static void jstr(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = strlen(out);
    if (o + 2 >= cap)
        return;
    out[o++] = '"';
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o++] = '"';
    out[o] = 0;
}

static void report(aigw_req *r, as_ctx *x, aigw_call *c, aigw_call_status st)
{
    const aigw_host *h = x->h;
    char out[8192];
    aigw_str body = {"", 0}, err = {"", 0}, hv = {"", 0};
    if (c) {
        h->call_body(c, &body);
        h->call_error(c, &err);
        h->call_header(c, AIGW_STR("x-echo-server"), &hv);
    }
    snprintf(out, sizeof out, "{\"st\":\"%s\",\"code\":%d,\"body\":", c ? st_name(st) : "NULL",
             c ? h->call_status_code(c) : 0);
    jstr(out, sizeof out, body.p, body.n > 4000 ? 4000 : body.n);
    size_t l = strlen(out);
    snprintf(out + l, sizeof out - l, ",\"error\":");
    jstr(out, sizeof out, err.p, err.n);
    l = strlen(out);
    snprintf(out + l, sizeof out - l, ",\"hdr\":");
    jstr(out, sizeof out, hv.p, hv.n);
    l = strlen(out);
    snprintf(out + l, sizeof out - l, "}");
    h->respond(r, 200, AIGW_STR("application/json"), cs(out));
}

/* ---- callbacks ---- */

static void done_call(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud)
{
    as_ctx *x = ud;
    const aigw_host *h = x->h;
    x->dones++;
    ev(x, r, "done:%s", st_name(st));
    if (st == AIGW_CALL_CANCELLED)
        return;
    char num[32];
    snprintf(num, sizeof num, "%d", h->call_status_code(c));
    h->set_header(r, AIGW_CLIENT_REQUEST, AIGW_STR("x-abi-call-status"), cs(num));
    h->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("x-abi-call-status"), cs(num));
    h->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("x-abi-call-st"), cs(st_name(st)));
    aigw_str hv;
    if (h->call_header(c, AIGW_STR("x-echo-server"), &hv) == AIGW_OK)
        h->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("x-abi-call-echo"), hv);
    int rc = h->resume(r, AIGW_CONTINUE);
    ev(x, r, "resume:%d", rc);
}

static void done_report(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud)
{
    as_ctx *x = ud;
    x->dones++;
    ev(x, r, "done:%s", st_name(st));
    if (st == AIGW_CALL_CANCELLED)
        return;
    report(r, x, c, st);
    int rc = x->h->resume(r, AIGW_STOP);
    ev(x, r, "resume:%d", rc);
}

static void done_timer(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud)
{
    (void)c;
    as_ctx *x = ud;
    x->dones++;
    ev(x, r, "timer:%s", st_name(st));
    if (st == AIGW_CALL_CANCELLED)
        return;
    char v[64];
    snprintf(v, sizeof v, "fired:%s", st_name(st));
    x->h->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("x-abi-timer"), cs(v));
    x->h->resume(r, AIGW_CONTINUE);
}

static void done_multi(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud)
{
    as_ctx *x = ud;
    x->dones++;
    x->pending--;
    if (st == AIGW_CALL_OK && x->h->call_status_code(c) == 200)
        x->ok++;
    ev(x, r, "done:%s", st_name(st));
    if (st == AIGW_CALL_CANCELLED || x->pending > 0)
        return;
    char v[64];
    snprintf(v, sizeof v, "%d/%d", x->ok, x->started);
    x->h->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("x-abi-multi"), cs(v));
    x->h->resume(r, AIGW_CONTINUE);
}

/* cancel: the client is gone by now; resuming must be refused */
static void done_cancelled(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud)
{
    (void)c;
    as_ctx *x = ud;
    x->dones++;
    ev(x, r, "done:%s", st_name(st));
    aigw_str m;
    /* "In a CANCELLED callback the request may be read" */
    ev(x, r, "readable:%s", x->h->method(r, &m) == AIGW_OK ? "yes" : "no");
    if (st != AIGW_CALL_CANCELLED) {
        x->h->resume(r, AIGW_CONTINUE);
        return;
    }
    int rc = x->h->resume(r, AIGW_CONTINUE);
    ev(x, r, "resume_refused:%s", rc != AIGW_OK ? "yes" : "no");
}

static void done_orphan(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud)
{
    (void)c;
    as_ctx *x = ud;
    x->dones++;
    ev(x, r, "done:%s", st_name(st));
    aigw_str m;
    ev(x, r, "readable:%s", x->h->method(r, &m) == AIGW_OK ? "yes" : "no");
}

static void done_explicit_timer(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud)
{
    (void)c;
    as_ctx *x = ud;
    x->dones++;
    ev(x, r, "timer:%s", st_name(st));
    if (st == AIGW_CALL_CANCELLED)
        return;
    if (x->slow) {
        x->h->cancel(x->slow);
        x->h->cancel(x->slow); /* a no-op: done still runs once */
        ev(x, r, "cancelled");
    }
    x->h->resume(r, AIGW_CONTINUE);
}

static void done_explicit_slow(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud)
{
    (void)c;
    as_ctx *x = ud;
    x->dones++;
    x->slow = NULL;
    ev(x, r, "done:%s", st_name(st));
}

/* store chain */
static void store_missing_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud)
{
    as_ctx *x = ud;
    const aigw_host *h = x->h;
    x->dones++;
    ev(x, r, "get-missing:%s", st_name(st));
    if (st == AIGW_CALL_CANCELLED)
        return;
    char out[512];
    snprintf(out, sizeof out, "{\"count\":%d,\"got\":", x->count);
    jstr(out, sizeof out, x->got, strlen(x->got));
    size_t l = strlen(out);
    snprintf(out + l, sizeof out - l, ",\"missing_st\":\"%s\",\"missing_code\":%d}", st_name(st), h->call_status_code(c));
    h->respond(r, 200, AIGW_STR("application/json"), cs(out));
    h->resume(r, AIGW_STOP);
}

static void store_get_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud)
{
    as_ctx *x = ud;
    const aigw_host *h = x->h;
    x->dones++;
    ev(x, r, "get:%s", st_name(st));
    if (st == AIGW_CALL_CANCELLED)
        return;
    aigw_str b = {"", 0};
    if (st == AIGW_CALL_OK)
        h->call_body(c, &b);
    snprintf(x->got, sizeof x->got, "%.*s", (int)(b.n < 120 ? b.n : 120), b.p);
    char key[600];
    snprintf(key, sizeof key, "%s:missing", x->url);
    x->started++;
    if (!h->store_get(r, cs(key), store_missing_done, x)) {
        x->started--;
        h->respond_error(r, 500, "server_error", "store_get returned NULL");
        h->resume(r, AIGW_STOP);
    }
}

static void store_set_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud)
{
    (void)c;
    as_ctx *x = ud;
    const aigw_host *h = x->h;
    x->dones++;
    ev(x, r, "set:%s", st_name(st));
    if (st == AIGW_CALL_CANCELLED)
        return;
    char key[600];
    snprintf(key, sizeof key, "%s:v", x->url);
    x->started++;
    if (!h->store_get(r, cs(key), store_get_done, x)) {
        x->started--;
        h->respond_error(r, 500, "server_error", "store_get returned NULL");
        h->resume(r, AIGW_STOP);
    }
}

static void store_incr_done(aigw_req *r, aigw_call *c, aigw_call_status st, void *ud)
{
    as_ctx *x = ud;
    const aigw_host *h = x->h;
    x->dones++;
    ev(x, r, "incr:%s", st_name(st));
    if (st == AIGW_CALL_CANCELLED)
        return;
    x->count = (int)h->call_int(c);
    char key[600], val[64];
    snprintf(key, sizeof key, "%s:v", x->url);
    snprintf(val, sizeof val, "value-%d", x->count);
    x->started++;
    if (!h->store_set(r, cs(key), cs(val), 60000, store_set_done, x)) {
        x->started--;
        h->respond_error(r, 500, "server_error", "store_set returned NULL");
        h->resume(r, AIGW_STOP);
    }
}

/* ---- hooks ---- */

static void *as_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d)
{
    (void)cfg;
    (void)d;
    as_inst *in = h->alloc(sizeof *in);
    if (in)
        in->h = h;
    return in;
}

static void as_destroy(void *inst)
{
    as_inst *in = inst;
    in->h->free(in);
}

static aigw_call *start_call(const aigw_host *h, aigw_req *r, as_ctx *x, const char *url, aigw_done_fn done)
{
    char method[16] = "", body[1024] = "", tmo[32] = "", maxb[32] = "";
    hdr(h, r, "x-abi-method", method, sizeof method);
    hdr(h, r, "x-abi-body", body, sizeof body);
    hdr(h, r, "x-abi-timeout", tmo, sizeof tmo);
    hdr(h, r, "x-abi-max-bytes", maxb, sizeof maxb);
    static const aigw_str headers[] = {AIGW_STR("x-abi-callout"), AIGW_STR("yes"), AIGW_STR("content-type"),
                                       AIGW_STR("application/json")};
    aigw_http_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.struct_size = sizeof spec;
    spec.method = method[0] ? method : NULL;
    spec.url = url;
    spec.headers = headers;
    spec.nheaders = 2;
    spec.body = cs(body);
    spec.timeout_ms = (uint32_t)atoi(tmo);
    spec.max_response_bytes = (uint32_t)atoi(maxb);
    aigw_call *c = h->http_call(r, &spec, done, x);
    if (c)
        x->started++;
    return c;
}

static aigw_status as_on_request(void *inst, aigw_req *r, void **rctx)
{
    as_inst *in = inst;
    const aigw_host *h = in->h;
    char mode[32];
    if (!hdr(h, r, "x-abi-async", mode, sizeof mode))
        return AIGW_CONTINUE;
    as_ctx *x = h->alloc(sizeof *x);
    if (!x)
        return AIGW_ERROR;
    memset(x, 0, sizeof *x);
    x->h = h;
    *rctx = x;
    hdr(h, r, "x-abi-trace", x->trace, sizeof x->trace);
    hdr(h, r, "x-abi-url", x->url, sizeof x->url);
    ev(x, r, "on_request:%s", mode);

    if (!strcmp(mode, "call") || !strcmp(mode, "report")) {
        int rep = !strcmp(mode, "report");
        aigw_call *c = start_call(h, r, x, x->url, rep ? done_report : done_call);
        if (!c) {
            ev(x, r, "call:NULL");
            if (!rep)
                return AIGW_ERROR;
            report(r, x, NULL, AIGW_CALL_ERROR);
            return AIGW_STOP;
        }
        ev(x, r, "pause");
        return AIGW_PAUSE;
    }
    if (!strcmp(mode, "timer")) {
        char ms[32] = "0";
        hdr(h, r, "x-abi-ms", ms, sizeof ms);
        if (!h->timer(r, (uint32_t)atoi(ms), done_timer, x))
            return AIGW_ERROR;
        x->started++;
        ev(x, r, "pause");
        return AIGW_PAUSE;
    }
    if (!strcmp(mode, "multi")) {
        char nb[16] = "3";
        hdr(h, r, "x-abi-n", nb, sizeof nb);
        int n = atoi(nb);
        for (int k = 0; k < n; k++) {
            char u[600];
            snprintf(u, sizeof u, "%s%si=%d", x->url, strchr(x->url, '?') ? "&" : "?", k);
            if (!start_call(h, r, x, u, done_multi))
                break;
            x->pending++;
        }
        if (x->pending == 0)
            return AIGW_ERROR;
        ev(x, r, "pause:%d", x->pending);
        return AIGW_PAUSE;
    }
    if (!strcmp(mode, "cancel")) {
        if (!start_call(h, r, x, x->url, done_cancelled))
            return AIGW_ERROR;
        ev(x, r, "pause");
        return AIGW_PAUSE;
    }
    if (!strcmp(mode, "orphan")) {
        if (!start_call(h, r, x, x->url, done_orphan))
            return AIGW_ERROR;
        ev(x, r, "continue");
        return AIGW_CONTINUE;
    }
    if (!strcmp(mode, "cancel-explicit")) {
        x->slow = start_call(h, r, x, x->url, done_explicit_slow);
        if (!x->slow || !h->timer(r, 50, done_explicit_timer, x))
            return AIGW_ERROR;
        x->started++;
        ev(x, r, "pause");
        return AIGW_PAUSE;
    }
    if (!strcmp(mode, "sync")) {
        int rc = h->resume(r, AIGW_CONTINUE);
        ev(x, r, "sync-resume:%d", rc);
        h->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("x-abi-sync"), rc == AIGW_OK ? AIGW_STR("ok") : AIGW_STR("fail"));
        return AIGW_PAUSE;
    }
    if (!strcmp(mode, "sync-stop")) {
        h->respond(r, 203, AIGW_STR("application/json"), AIGW_STR("{\"abi\":\"sync-stop\"}"));
        int rc = h->resume(r, AIGW_STOP);
        ev(x, r, "sync-resume:%d", rc);
        return AIGW_PAUSE;
    }
    if (!strcmp(mode, "store")) {
        if (!hdr(h, r, "x-abi-key", x->url, 200))
            return AIGW_ERROR;
        if (!h->store_incr(r, cs(x->url), 1, 60000, store_incr_done, x))
            return AIGW_ERROR;
        x->started++;
        ev(x, r, "pause");
        return AIGW_PAUSE;
    }
    ev(x, r, "unknown-mode");
    return AIGW_CONTINUE;
}

static void as_on_done(void *inst, aigw_req *r, void *rctx)
{
    as_inst *in = inst;
    as_ctx *x = rctx;
    if (!x)
        return;
    ev(x, r, "on_done");
    if (x->trace[0])
        in->h->log(r, AIGW_LOG_WARN, "ABI-TRACE id=%s seq=%s calls=%d dones=%d", x->trace, x->seq, x->started,
                   x->dones);
    memset(x, 0xA5, sizeof *x); /* a callback after on_done would read garbage (and ASan: freed) */
    in->h->free(x);
}

static const aigw_plugin desc = {
    AIGW_PLUGIN_HEADER,
    .name = "abi_async",
    .version = "1.0.0",
    .priority = 20,
    .create = as_create,
    .destroy = as_destroy,
    .on_request = as_on_request,
    .on_done = as_on_done,
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
