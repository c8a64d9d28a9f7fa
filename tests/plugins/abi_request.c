/* abi_request.c - test plugin for the request-hook family of the ABI: method/path/headers,
 * set/add/remove headers on CLIENT_REQUEST and CLIENT_RESPONSE, JSON body edits, the
 * format-neutral text view, respond / respond_error / ERROR, meta across instances, log_field,
 * log. meta, a plugin metric, and what on_done may read.
 *
 * Loaded by tests/integration/gateway.abi.test.mjs. Behaviour is chosen per request by x-abi-*
 * request headers (only when the instance's config has "actions": true, the default):
 *   x-abi-echo: v             -> response header x-abi-echo-back: v
 *   x-abi-remove-me           -> removed from the upstream request (set_header with value.p NULL)
 *   x-abi-replace-me          -> replaced with "replaced"
 *   (always)                  -> upstream request gets x-abi-injected: yes and x-abi-multi: one, two
 *   x-abi-set-model: m        -> body "model" = m (json_set_str + body_changed)
 *   x-abi-system: text        -> a system message prepended to "messages" (json_dump + json_set_raw)
 *   x-abi-redact: word        -> word replaced by [redacted] in user texts (text_get/text_set)
 *   x-abi-text-roles: 1       -> response header x-abi-text-roles: "role:text|role:text|..." (text view)
 *   x-abi-respond: status     -> local answer (a chat.completion) with that status, STOP
 *   x-abi-respond-continue    -> same, but the hook returns CONTINUE (must count as STOP)
 *   x-abi-error: status:type  -> respond_error(status, type, "abi_request refused"), STOP
 *   x-abi-fail: 1             -> return ERROR;  x-abi-fail: <status> -> respond_error then ERROR
 *   x-abi-fail-response: 1    -> return ERROR from on_response
 *   x-abi-resp-edit: 1        -> on_response adds "abi_note" to the response JSON
 *   x-abi-trace: id           -> on_done logs "ABI-REQ-DONE id=<id> tag=<tag> status=<n> meta_rc=<rc> order=<v>"
 * Every instance (actions or not) records its order in meta "abi.order" ("a>b>" on the request,
 * then "<b<a" on the response), reads "abi.first" (set by the first instance to run) into the
 * response header x-abi-<tag>-saw-first, copies the order into x-abi-order and "log.abi_order".
 *
 * tests/plugins/abi_request_peer.c builds the same code under another name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aigw/plugin.h"

#ifndef ABI_REQ_NAME
#define ABI_REQ_NAME "abi_request"
#endif
#ifndef ABI_REQ_PRIORITY
#define ABI_REQ_PRIORITY 10
#endif

typedef struct ar_inst {
    const aigw_host *h;
    char tag[32];
    int actions;
    uint32_t metric;
} ar_inst;

/* ---- helpers ---- */

static int hdr(const aigw_host *h, aigw_req *r, const char *name, char *buf, size_t cap)
{
    aigw_str v;
    if (h->header(r, AIGW_CLIENT_REQUEST, (aigw_str){name, strlen(name)}, &v) != AIGW_OK)
        return 0;
    size_t n = v.n < cap - 1 ? v.n : cap - 1;
    memcpy(buf, v.p, n);
    buf[n] = 0;
    return 1;
}

static aigw_str cs(const char *s) { return (aigw_str){s, strlen(s)}; }

static void set_resp(const aigw_host *h, aigw_req *r, const char *name, const char *value)
{
    h->set_header(r, AIGW_CLIENT_RESPONSE, cs(name), cs(value));
}

/* JSON-escape s into out (always NUL-terminated). */
static void json_escape(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = 0;
}

/* meta key "abi.order" += piece; mirrored into "log.abi_order". Returns the new value in buf. */
static void order_append(const aigw_host *h, aigw_req *r, const char *piece, char *buf, size_t cap)
{
    aigw_str cur;
    buf[0] = 0;
    if (h->meta_get(r, "abi.order", &cur) == AIGW_OK) {
        size_t n = cur.n < cap - 1 ? cur.n : cap - 1;
        memcpy(buf, cur.p, n);
        buf[n] = 0;
    }
    size_t l = strlen(buf);
    snprintf(buf + l, cap - l, "%s", piece);
    h->meta_set(r, "abi.order", cs(buf));
    h->meta_set(r, "log.abi_order", cs(buf));
}

/* ---- create / destroy ---- */

static void *ar_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d)
{
    const char *tag = ABI_REQ_NAME;
    aigw_str ts = {0, 0};
    int actions = 1, bad = 0;
    if (cfg) {
        const aigw_json *t = h->json_get(cfg, "tag");
        if (t) {
            if (h->json_str(t, &ts) != AIGW_OK || ts.n == 0 || ts.n >= 32) {
                h->diag_error(d, "/tag", "must be a string of 1..31 characters [a-z0-9_-]");
                bad = 1;
            } else {
                for (size_t i = 0; i < ts.n; i++) {
                    char ch = ts.p[i];
                    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-')) {
                        h->diag_error(d, "/tag", "must be a string of 1..31 characters [a-z0-9_-]");
                        bad = 1;
                        break;
                    }
                }
            }
        }
        const aigw_json *a = h->json_get(cfg, "actions");
        if (a && h->json_bool(a, &actions) != AIGW_OK) {
            h->diag_error(d, "/actions", "must be a boolean");
            bad = 1;
        }
    }
    if (bad)
        return NULL;
    static const char *const labels[] = {"tag", NULL};
    uint32_t metric = h->metric_define(d, AIGW_METRIC_COUNTER, ABI_REQ_NAME "_requests_total",
                                       "requests seen by the " ABI_REQ_NAME " test plugin", labels);
    if (metric == UINT32_MAX)
        return NULL;
    ar_inst *in = h->alloc(sizeof *in);
    if (!in)
        return NULL;
    memset(in, 0, sizeof *in);
    in->h = h;
    if (ts.p) {
        memcpy(in->tag, ts.p, ts.n);
        in->tag[ts.n] = 0;
    } else {
        snprintf(in->tag, sizeof in->tag, "%s", tag);
    }
    in->actions = actions;
    in->metric = metric;
    return in;
}

static void ar_destroy(void *inst)
{
    ar_inst *in = inst;
    in->h->free(in);
}

/* ---- request actions ---- */

static void redact(const aigw_host *h, aigw_req *r, const char *word)
{
    size_t n = h->text_count(r, AIGW_CLIENT_REQUEST), changed = 0, wl = strlen(word);
    if (!wl)
        return;
    for (size_t i = 0; i < n; i++) {
        aigw_str role, text;
        if (h->text_get(r, AIGW_CLIENT_REQUEST, i, &role, &text) != AIGW_OK)
            continue;
        if (!(role.n == 4 && !memcmp(role.p, "user", 4)))
            continue;
        char out[4096];
        size_t o = 0, hits = 0;
        for (size_t k = 0; k < text.n && o + 16 < sizeof out;) {
            if (k + wl <= text.n && !memcmp(text.p + k, word, wl)) {
                memcpy(out + o, "[redacted]", 10);
                o += 10;
                k += wl;
                hits++;
            } else {
                out[o++] = text.p[k++];
            }
        }
        if (hits && h->text_set(r, AIGW_CLIENT_REQUEST, i, (aigw_str){out, o}) == AIGW_OK)
            changed++;
    }
    char num[32];
    snprintf(num, sizeof num, "%zu", changed);
    set_resp(h, r, "x-abi-redacted", num);
}

static int prepend_system(const aigw_host *h, aigw_req *r, const char *text)
{
    aigw_json *body = h->body(r, AIGW_CLIENT_REQUEST);
    if (!body)
        return -1;
    const aigw_json *msgs = h->json_get(body, "messages");
    aigw_str dumped;
    if (!msgs || h->json_type(msgs) != AIGW_JSON_ARRAY || h->json_dump(r, msgs, &dumped) != AIGW_OK)
        return -1;
    char esc[1024];
    json_escape(text, esc, sizeof esc);
    size_t cap = dumped.n + strlen(esc) + 64;
    char *buf = h->req_alloc(r, cap);
    if (!buf)
        return -1;
    /* dumped is "[...]": insert our message after the '[' */
    int n = snprintf(buf, cap, "[{\"role\":\"system\",\"content\":\"%s\"}%s%.*s", esc,
                     dumped.n > 2 ? "," : "", (int)(dumped.n - 1), dumped.p + 1);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    if (h->json_set_raw(body, "messages", (aigw_str){buf, (size_t)n}) != AIGW_OK)
        return -1;
    h->body_changed(r, AIGW_CLIENT_REQUEST);
    return 0;
}

static void local_answer(const aigw_host *h, aigw_req *r, const ar_inst *in, int status)
{
    char body[512];
    int n = snprintf(body, sizeof body,
                     "{\"id\":\"chatcmpl-abi\",\"object\":\"chat.completion\",\"created\":1700000000,"
                     "\"model\":\"abi-local\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                     "\"content\":\"local answer from %s\"},\"finish_reason\":\"stop\"}],"
                     "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":3,\"total_tokens\":4}}",
                     in->tag);
    h->respond(r, status, AIGW_STR("application/json"), (aigw_str){body, (size_t)n});
}

static aigw_status ar_on_request(void *inst, aigw_req *r, void **rctx)
{
    ar_inst *in = inst;
    const aigw_host *h = in->h;
    char buf[512], order[256];

    if (!*rctx && hdr(h, r, "x-abi-trace", buf, 100)) {
        char *t = h->alloc(strlen(buf) + 1);
        if (t) {
            memcpy(t, buf, strlen(buf) + 1);
            *rctx = t;
        }
    }

    /* ordering and meta across instances */
    snprintf(buf, sizeof buf, "%s>", in->tag);
    order_append(h, r, buf, order, sizeof order);
    aigw_str first;
    if (h->meta_get(r, "abi.first", &first) == AIGW_OK) {
        char name[64], val[64];
        snprintf(name, sizeof name, "x-abi-%s-saw-first", in->tag);
        snprintf(val, sizeof val, "%.*s", (int)(first.n < 60 ? first.n : 60), first.p);
        set_resp(h, r, name, val);
    } else {
        h->meta_set(r, "abi.first", cs(in->tag));
    }
    aigw_str tagv = cs(in->tag);
    h->metric_add(in->metric, &tagv, 1);

    if (!in->actions)
        return AIGW_CONTINUE;

    /* request line and headers */
    aigw_str m, p;
    if (h->method(r, &m) == AIGW_OK) {
        snprintf(buf, sizeof buf, "%.*s", (int)m.n, m.p);
        set_resp(h, r, "x-abi-method", buf);
    }
    if (h->path(r, &p) == AIGW_OK) {
        snprintf(buf, sizeof buf, "%.*s", (int)(p.n < 400 ? p.n : 400), p.p);
        set_resp(h, r, "x-abi-path", buf);
    }
    size_t nh = 0;
    aigw_str hn, hv;
    while (h->header_at(r, AIGW_CLIENT_REQUEST, nh, &hn, &hv) == AIGW_OK)
        nh++;
    snprintf(buf, sizeof buf, "%zu", nh);
    set_resp(h, r, "x-abi-nheaders", buf);
    if (hdr(h, r, "x-abi-echo", buf, sizeof buf))
        set_resp(h, r, "x-abi-echo-back", buf);
    /* reaches the client on every path: upstream answer, stream, local answer, errors */
    set_resp(h, r, "x-abi-from-request", in->tag);

    /* edit the upstream request's headers */
    h->set_header(r, AIGW_CLIENT_REQUEST, AIGW_STR("x-abi-injected"), AIGW_STR("yes"));
    h->add_header(r, AIGW_CLIENT_REQUEST, AIGW_STR("x-abi-multi"), AIGW_STR("one"));
    h->add_header(r, AIGW_CLIENT_REQUEST, AIGW_STR("x-abi-multi"), AIGW_STR("two"));
    if (hdr(h, r, "x-abi-remove-me", buf, sizeof buf)) {
        h->set_header(r, AIGW_CLIENT_REQUEST, AIGW_STR("x-abi-remove-me"), (aigw_str){NULL, 0});
        aigw_str gone;
        int rc = h->header(r, AIGW_CLIENT_REQUEST, AIGW_STR("x-abi-remove-me"), &gone);
        set_resp(h, r, "x-abi-remove-check", rc == AIGW_E_NOTFOUND ? "notfound" : "still-there");
    }
    if (hdr(h, r, "x-abi-replace-me", buf, sizeof buf))
        h->set_header(r, AIGW_CLIENT_REQUEST, AIGW_STR("x-abi-replace-me"), AIGW_STR("replaced"));
    /* a header value with CR/LF is refused */
    int bad = h->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("x-abi-bad"), AIGW_STR("a\r\nx-injected: 1"));
    snprintf(buf, sizeof buf, "%d", bad);
    set_resp(h, r, "x-abi-bad-header-rc", buf);

    /* access-log record */
    snprintf(buf, sizeof buf, "{\"tag\":\"%s\",\"nheaders\":%zu}", in->tag, nh);
    h->log_field(r, "abi_field", cs(buf));
    int badlf = h->log_field(r, "abi_bad_field", AIGW_STR("{not json"));
    snprintf(buf, sizeof buf, "%d", badlf);
    set_resp(h, r, "x-abi-logfield-bad-rc", buf);
    h->meta_set(r, "log.abi_tag", cs(in->tag));

    /* body */
    if (hdr(h, r, "x-abi-set-model", buf, sizeof buf)) {
        aigw_json *body = h->body(r, AIGW_CLIENT_REQUEST);
        if (!body || h->json_set_str(body, "model", cs(buf)) != AIGW_OK)
            return AIGW_ERROR;
        h->body_changed(r, AIGW_CLIENT_REQUEST);
    }
    if (hdr(h, r, "x-abi-system", buf, sizeof buf) && prepend_system(h, r, buf) < 0)
        return AIGW_ERROR;
    if (hdr(h, r, "x-abi-redact", buf, sizeof buf))
        redact(h, r, buf);
    if (hdr(h, r, "x-abi-text-roles", buf, sizeof buf)) {
        char out[1024];
        size_t o = 0, n = h->text_count(r, AIGW_CLIENT_REQUEST);
        out[0] = '\0';
        for (size_t i = 0; i < n && o + 80 < sizeof out; i++) {
            aigw_str role, text;
            if (h->text_get(r, AIGW_CLIENT_REQUEST, i, &role, &text) != AIGW_OK)
                continue;
            o += (size_t)snprintf(out + o, sizeof out - o, "%s%.*s:%.*s", i ? "|" : "", (int)role.n, role.p,
                                  (int)(text.n > 60 ? 60 : text.n), text.p);
        }
        set_resp(h, r, "x-abi-text-roles", out);
    }

    /* flow control */
    if (hdr(h, r, "x-abi-respond", buf, sizeof buf)) {
        local_answer(h, r, in, atoi(buf));
        return AIGW_STOP;
    }
    if (hdr(h, r, "x-abi-respond-continue", buf, sizeof buf)) {
        local_answer(h, r, in, atoi(buf));
        return AIGW_CONTINUE; /* after respond, CONTINUE counts as STOP */
    }
    if (hdr(h, r, "x-abi-error", buf, sizeof buf)) {
        char *colon = strchr(buf, ':');
        if (colon)
            *colon++ = 0;
        h->respond_error(r, atoi(buf), colon ? colon : "invalid_request_error", "abi_request refused the request");
        return AIGW_STOP;
    }
    if (hdr(h, r, "x-abi-fail", buf, sizeof buf)) {
        int st = atoi(buf);
        if (st >= 400)
            h->respond_error(r, st, "service_unavailable_error", "abi_request failed with its own error");
        h->log(r, AIGW_LOG_WARN, "abi_request: failing on purpose");
        return AIGW_ERROR;
    }
    return AIGW_CONTINUE;
}

static aigw_status ar_on_response(void *inst, aigw_req *r, void **rctx)
{
    (void)rctx;
    ar_inst *in = inst;
    const aigw_host *h = in->h;
    char buf[256], order[256];
    snprintf(buf, sizeof buf, "<%s", in->tag);
    order_append(h, r, buf, order, sizeof order);
    set_resp(h, r, "x-abi-order", order); /* the last response hook to run wins */
    if (!in->actions)
        return AIGW_CONTINUE;
    snprintf(buf, sizeof buf, "%d", h->status(r, AIGW_CLIENT_RESPONSE));
    set_resp(h, r, "x-abi-from-response", buf);
    h->set_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("openai-processing-ms"), (aigw_str){NULL, 0});
    h->add_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("x-abi-resp-multi"), AIGW_STR("one"));
    h->add_header(r, AIGW_CLIENT_RESPONSE, AIGW_STR("x-abi-resp-multi"), AIGW_STR("two"));
    if (hdr(h, r, "x-abi-resp-edit", buf, sizeof buf)) {
        aigw_json *body = h->body(r, AIGW_CLIENT_RESPONSE);
        if (body && h->json_set_str(body, "abi_note", AIGW_STR("edited")) == AIGW_OK)
            h->body_changed(r, AIGW_CLIENT_RESPONSE);
    }
    if (hdr(h, r, "x-abi-fail-response", buf, sizeof buf))
        return AIGW_ERROR;
    return AIGW_CONTINUE;
}

static void ar_on_done(void *inst, aigw_req *r, void *rctx)
{
    ar_inst *in = inst;
    const aigw_host *h = in->h;
    char *trace = rctx; /* captured in on_request (x-abi-trace), h->alloc'd */
    /* on_done "reads the final record (status, usage, meta)" */
    aigw_str ord = {"", 0};
    int mrc = h->meta_get(r, "abi.order", &ord);
    int st = h->status(r, AIGW_CLIENT_RESPONSE);
    if (trace)
        h->log(r, AIGW_LOG_WARN, "ABI-REQ-DONE id=%s tag=%s status=%d meta_rc=%d order=%.*s", trace, in->tag, st,
               mrc, mrc == AIGW_OK ? (int)ord.n : 0, mrc == AIGW_OK ? ord.p : "");
    h->free(trace);
}

static const aigw_plugin desc = {
    AIGW_PLUGIN_HEADER,
    .name = ABI_REQ_NAME,
    .version = "1.0.0",
    .priority = ABI_REQ_PRIORITY,
    .create = ar_create,
    .destroy = ar_destroy,
    .on_request = ar_on_request,
    .on_response = ar_on_response,
    .on_done = ar_on_done,
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
