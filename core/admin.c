/* admin.c - the admin listener (loopback by default), on the main thread's event loop.
 *
 * GET /health (no auth: liveness), GET /ready, GET /metrics (Prometheus), POST /reload,
 * GET /plugins, GET /routes. Everything but /health needs "Authorization: Bearer <admin token>";
 * the token is compared in constant time. Admin traffic is rare, so libevent's evhttp serves it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "core.h"
#include "jsonw.h"
#include "metrics.h"
#include "plugin_loader.h"

static void reply(struct evhttp_request *req, int code, const char *ctype, const char *body, size_t n) {
  struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
  evhttp_add_header(oh, "Content-Type", ctype);
  struct evbuffer *b = evbuffer_new();
  if (b) evbuffer_add(b, body, n);
  evhttp_send_reply(req, code, code == 200 ? "OK" : status_reason(code), b);
  if (b) evbuffer_free(b);
}

static void reply_json(struct evhttp_request *req, int code, jsonw *w) {
  if (w->err) reply(req, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
  else reply(req, code, "application/json", w->buf, w->len);
  jw_free(w);
}

static int tok_eq(const char *a, size_t n, const char *t) {
  return t && *t && strlen(t) == n && CRYPTO_memcmp(a, t, n) == 0;
}

/* The role of the request's bearer token (ADMIN_*), 0 when none matches. Every configured token
 * is compared (constant time each), so the answer's timing does not tell which one was close. */
static int role_of(server *s, struct evhttp_request *req) {
  cfg_gen *g = (cfg_gen *)atomic_load(&s->current);
  const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
  if (!a || strncmp(a, "Bearer ", 7)) return 0;
  a += 7;
  size_t n = strlen(a);
  int role = 0;
  if (tok_eq(a, n, g->admin_token)) role = ADMIN_ADMIN;
  for (size_t i = 0; i < g->nadmin_tokens; i++)
    if (tok_eq(a, n, g->admin_tokens[i].token) && g->admin_tokens[i].role > role) role = g->admin_tokens[i].role;
  return role;
}

/* What an endpoint needs: keys are credentials (admin); reload changes the gateway (operator);
 * everything else reads. */
static int role_needed(const char *path, enum evhttp_cmd_type cmd) {
  if (!strncmp(path, "/keys", 5)) return ADMIN_ADMIN;
  if (!strncmp(path, "/consumers/", 11)) return cmd == EVHTTP_REQ_GET ? ADMIN_VIEWER : ADMIN_ADMIN;
  return !strcmp(path, "/reload") ? ADMIN_OPERATOR : ADMIN_VIEWER;
}

int keyadmin_handle(const cfg_gen *g, const char *method, const char *path, const char *body, size_t blen, int *status,
                    char **out);

static void on_admin(struct evhttp_request *req, void *arg) {
  server *s = arg;
  const char *uri = evhttp_request_get_uri(req);
  char path[256];
  size_t i = 0;
  for (; uri[i] && uri[i] != '?' && i < sizeof path - 1; i++) path[i] = uri[i];
  path[i] = 0;
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  jsonw w;
  char buf[2048];
  jw_init(&w, buf, sizeof buf);
  if (!strcmp(path, "/health")) {
    jw_obj_begin(&w);
    jw_kcstr(&w, "status", atomic_load(&s->draining) ? "draining" : "ok");
    jw_obj_end(&w);
    reply_json(req, 200, &w);
    return;
  }
  int role = role_of(s, req);
  if (!role) {
    jw_free(&w);
    reply(req, 401, "application/json",
          "{\"error\":{\"message\":\"admin endpoints need Authorization: Bearer <admin token>\",\"type\":\"authentication_error\"}}",
          110);
    return;
  }
  if (role < role_needed(path, cmd)) {
    jw_free(&w);
    static const char forbid[] =
        "{\"error\":{\"message\":\"this admin token's role may not use this endpoint (reload needs operator or admin; keys and consumer changes need admin)\",\"type\":\"permission_error\"}}";
    reply(req, 403, "application/json", forbid, sizeof forbid - 1);
    return;
  }
  cfg_gen *g = (cfg_gen *)atomic_load(&s->current);
  if (!strncmp(path, "/keys", 5) || !strncmp(path, "/consumers/", 11)) {
    struct evbuffer *ib = evhttp_request_get_input_buffer(req);
    size_t bl = evbuffer_get_length(ib);
    const char *bp = bl ? (const char *)evbuffer_pullup(ib, -1) : "";
    const char *m = cmd == EVHTTP_REQ_POST     ? "POST"
                    : cmd == EVHTTP_REQ_DELETE ? "DELETE"
                    : cmd == EVHTTP_REQ_PUT    ? "PUT"
                                               : "GET";
    int st = 500;
    char *txt = NULL;
    if (keyadmin_handle(g, m, path, bp, bl, &st, &txt)) {
      jw_free(&w);
      if (txt) reply(req, st, "application/json", txt, strlen(txt));
      else reply(req, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
      free(txt);
      return;
    }
  }
  if (!strcmp(path, "/ready")) {
    int draining = atomic_load(&s->draining);
    jw_obj_begin(&w);
    jw_kcstr(&w, "status", draining ? "draining" : "ready");
    jw_kint(&w, "generation", (long long)g->id);
    jw_kint(&w, "active_requests", atomic_load(&s->total_active));
    jw_kint(&w, "uptime_s", (long long)((now_ms() - s->started_ms) / 1000));
    jw_obj_end(&w);
    reply_json(req, draining ? 503 : 200, &w);
    return;
  }
  if (!strcmp(path, "/metrics")) {
    jw_free(&w);
    balance_metrics_refresh(g); /* gauges read from the targets' state at scrape time */
    size_t n = 0;
    char *txt = met_render(core_metrics(), &n);
    if (!txt) {
      reply(req, 500, "text/plain", "out of memory\n", 14);
      return;
    }
    reply(req, 200, "text/plain; version=0.0.4", txt, n);
    free(txt);
    return;
  }
  if (!strcmp(path, "/reload")) {
    if (cmd != EVHTTP_REQ_POST) {
      jw_free(&w);
      reply(req, 405, "application/json", "{\"error\":\"use POST\"}", 20);
      return;
    }
    char text[8192];
    int rc = server_reload(s, text, sizeof text);
    jw_obj_begin(&w);
    jw_kbool(&w, "ok", rc == 0);
    jw_kcstr(&w, "message", text);
    jw_kint(&w, "generation", (long long)((cfg_gen *)atomic_load(&s->current))->id);
    jw_obj_end(&w);
    reply_json(req, rc == 0 ? 200 : 400, &w);
    return;
  }
  if (!strcmp(path, "/plugins")) {
    jw_arr_begin(&w);
    for (const plug_lib *l = plug_list(); l; l = l->next) {
      jw_obj_begin(&w);
      jw_kcstr(&w, "name", l->desc->name);
      jw_kcstr(&w, "version", l->desc->version);
      jw_kcstr(&w, "path", l->path);
      jw_kint(&w, "abi_major", l->desc->abi_major);
      jw_kint(&w, "abi_minor", l->desc->abi_minor);
      jw_kint(&w, "priority", l->desc->priority);
      jw_kbool(&w, "provider", l->desc->provider != NULL);
      jw_obj_end(&w);
    }
    jw_arr_end(&w);
    reply_json(req, 200, &w);
    return;
  }
  if (!strcmp(path, "/targets")) {
    balance_admin_json(&w, g);
    reply_json(req, 200, &w);
    return;
  }
  if (!strcmp(path, "/routes")) {
    jw_arr_begin(&w);
    for (size_t k = 0; k < g->nroutes; k++) {
      const cfg_route *rt = &g->routes[k];
      jw_obj_begin(&w);
      jw_kcstr(&w, "name", rt->name);
      jw_kcstr(&w, "path", rt->path);
      jw_kcstr(&w, "path_prefix", rt->path_prefix);
      jw_key(&w, "targets");
      jw_arr_begin(&w);
      for (size_t t = 0; t < rt->ntargets; t++) {
        jw_obj_begin(&w);
        jw_kcstr(&w, "name", rt->targets[t].name);
        jw_kcstr(&w, "provider", rt->targets[t].provider ? rt->targets[t].provider->name : NULL);
        jw_kcstr(&w, "model", rt->targets[t].model);
        jw_obj_end(&w);
      }
      jw_arr_end(&w);
      jw_key(&w, "plugins");
      jw_arr_begin(&w);
      for (size_t p = 0; p < rt->nplugins; p++) {
        jw_obj_begin(&w);
        jw_kcstr(&w, "name", rt->plugins[p]->name);
        jw_kint(&w, "priority", rt->plugins[p]->priority);
        jw_obj_end(&w);
      }
      jw_arr_end(&w);
      jw_obj_end(&w);
    }
    jw_arr_end(&w);
    reply_json(req, 200, &w);
    return;
  }
  jw_free(&w);
  reply(req, 404, "application/json", "{\"error\":\"unknown admin endpoint\"}", 34);
}

int admin_start(server *s, cfg_gen *g) {
  if (!g->admin.port) return 0;
  s->admin = evhttp_new(s->main_base);
  if (!s->admin) return -1;
  evhttp_set_gencb(s->admin, on_admin, s);
  evhttp_set_allowed_methods(s->admin, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_DELETE | EVHTTP_REQ_PUT);
  evhttp_set_max_body_size(s->admin, 65536);
  evhttp_set_timeout(s->admin, 30);
  if (!evhttp_bind_socket_with_handle(s->admin, g->admin.address, g->admin.port)) {
    log_msg(AIGW_LOG_ERROR, "cannot listen for admin on %s:%u (address in use or not local)", g->admin.address,
            g->admin.port);
    evhttp_free(s->admin);
    s->admin = NULL;
    return -1;
  }
  log_msg(AIGW_LOG_INFO, "admin listening on %s:%u", g->admin.address, g->admin.port);
  return 0;
}

void admin_stop(server *s) {
  if (s->admin) evhttp_free(s->admin);
  s->admin = NULL;
}
