/* my_plugin.c - a template for an aigw plugin: copy this folder, rename "my_plugin" (here, in
 * CMakeLists.txt and in your config), and replace the logic. docs/plugins.md is the reference.
 *
 * What it does, as a small but complete example of the three things every plugin has:
 *   create     validates its config and reports every problem at its JSON pointer;
 *   on_request reads a request header (the team), refuses the request when it is missing (400) or
 *              not allowed (403), records it in the access log ("team") and keeps it in rctx;
 *   on_done    counts the request in aigw_plugin_my_plugin_requests_total{team, code} and frees rctx.
 *
 * Config (all optional):
 *   {"header": "x-team",        the request header that names the team
 *    "teams": ["red", "blue"],  the teams allowed (any when absent)
 *    "required": true}          false: a request without the header counts as team "none" */
#include <aigw/plugin.h>

#include <stdio.h>
#include <string.h>

#define MAX_TEAMS 32
#define MAX_NAME 64

/* Set once by aigw_plugin_entry; the table is valid for the life of the process. */
static const aigw_host *H;

/* The instance: built by create, then read-only and shared by every worker thread. */
typedef struct my_inst {
  char header[MAX_NAME];
  char teams[MAX_TEAMS][MAX_NAME];
  size_t nteams; /* 0 = any team */
  int required;
  uint32_t m_requests; /* metric id */
} my_inst;

/* Per-request state (rctx): allocated in on_request, freed in on_done. */
typedef struct my_req {
  char team[MAX_NAME];
} my_req;

/* Copies a borrowed host string into a fixed buffer; 0 if it does not fit or is empty. */
static int copy_name(char *dst, aigw_str s) {
  if (s.n == 0 || s.n >= MAX_NAME) return 0;
  memcpy(dst, s.p, s.n);
  dst[s.n] = '\0';
  return 1;
}

static int is_token(const char *s) { /* header names: letters, digits, '-' */
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-'))
      return 0;
  return 1;
}

/* Main thread. cfg is borrowed (NULL when the route gives no "config"); d collects errors. */
static void *my_create(const aigw_host *h, const aigw_json *cfg, aigw_diag *d) {
  my_inst *in = h->alloc(sizeof *in);
  if (!in) return NULL;
  memset(in, 0, sizeof *in);
  strcpy(in->header, "x-team");
  in->required = 1;
  int ok = 1;

  if (cfg && h->json_type(cfg) != AIGW_JSON_OBJECT) {
    h->diag_error(d, "", "must be an object");
    h->free(in);
    return NULL;
  }
  const aigw_json *v = cfg ? h->json_get(cfg, "header") : NULL;
  aigw_str s;
  if (v && (h->json_str(v, &s) != AIGW_OK || !copy_name(in->header, s) || !is_token(in->header))) {
    h->diag_error(d, "/header", "must be a header name (1 to %d letters, digits or '-')", MAX_NAME - 1);
    ok = 0;
  }
  v = cfg ? h->json_get(cfg, "teams") : NULL;
  if (v && (h->json_type(v) != AIGW_JSON_ARRAY || h->json_len(v) == 0 || h->json_len(v) > MAX_TEAMS)) {
    h->diag_error(d, "/teams", "must be an array of 1 to %d team names", MAX_TEAMS);
    ok = 0;
  } else if (v) {
    for (size_t i = 0; i < h->json_len(v); i++) {
      if (h->json_str(h->json_at(v, i), &s) != AIGW_OK || !copy_name(in->teams[i], s)) {
        char ptr[32]; /* the JSON pointer of the bad element */
        snprintf(ptr, sizeof ptr, "/teams/%zu", i);
        h->diag_error(d, ptr, "must be a string of 1 to %d bytes", MAX_NAME - 1);
        ok = 0;
      }
    }
    in->nteams = h->json_len(v);
  }
  v = cfg ? h->json_get(cfg, "required") : NULL;
  if (v && h->json_bool(v, &in->required) != AIGW_OK) {
    h->diag_error(d, "/required", "must be true or false");
    ok = 0;
  }
  /* Metrics are defined in create only; the host prefixes the name with "aigw_plugin_". */
  static const char *const labels[] = {"team", "code", NULL};
  in->m_requests = h->metric_define(d, AIGW_METRIC_COUNTER, "my_plugin_requests_total",
                                    "Requests seen by my_plugin, by team and status class", labels);
  if (in->m_requests == UINT32_MAX) ok = 0; /* the host already reported why */

  if (!ok) {
    h->free(in);
    return NULL;
  }
  return in;
}

/* Main thread, once no request uses the instance any more. */
static void my_destroy(void *inst) { H->free(inst); }

/* Worker thread. Returns CONTINUE to let the request go on, or STOP after answering it. */
static aigw_status my_on_request(void *inst, aigw_req *r, void **rctx) {
  const my_inst *in = inst;
  aigw_str team = {"none", 4};
  int rc = H->header(r, AIGW_CLIENT_REQUEST, (aigw_str){in->header, strlen(in->header)}, &team);
  if (rc != AIGW_OK && in->required) {
    char msg[128];
    snprintf(msg, sizeof msg, "the %s header is required", in->header);
    H->respond_error(r, 400, "invalid_request_error", msg); /* takes effect when we return */
    return AIGW_STOP;
  }
  if (rc == AIGW_OK && in->nteams > 0) {
    size_t i = 0;
    while (i < in->nteams && !(strlen(in->teams[i]) == team.n && memcmp(in->teams[i], team.p, team.n) == 0))
      i++;
    if (i == in->nteams) {
      H->respond_error(r, 403, "permission_error", "this team may not use this route");
      return AIGW_STOP;
    }
  }
  my_req *q = H->alloc(sizeof *q);
  if (!q) return AIGW_ERROR; /* the client gets a 500 in its own format */
  if (!copy_name(q->team, team)) strcpy(q->team, "invalid");
  *rctx = q; /* ours until on_done */
  H->meta_set(r, "log.team", (aigw_str){q->team, strlen(q->team)}); /* -> "team" in the access log */
  return AIGW_CONTINUE;
}

/* Worker thread; the last call for every request whose on_request ran (rctx NULL if we set none). */
static void my_on_done(void *inst, aigw_req *r, void *rctx) {
  const my_inst *in = inst;
  my_req *q = rctx;
  if (!q) return; /* refused above: nothing to count or free */
  int status = H->status(r, AIGW_CLIENT_RESPONSE);
  char code[4] = "0xx";
  if (status >= 100 && status <= 599) code[0] = (char)('0' + status / 100);
  const aigw_str values[] = {{q->team, strlen(q->team)}, {code, 3}};
  H->metric_add(in->m_requests, values, 1);
  H->free(q);
}

static const aigw_plugin my_plugin = {
    AIGW_PLUGIN_HEADER, /* ABI version and descriptor size: always first */
    .name = "my_plugin",
    .version = "0.1.0",
    .priority = 50, /* higher runs earlier on the request path */
    .create = my_create,
    .destroy = my_destroy,
    .on_request = my_on_request,
    .on_done = my_on_done,
};

/* The one exported symbol. Refuse (NULL + reason) if the host lacks something you need. */
AIGW_EXPORT const aigw_plugin *aigw_plugin_entry(const aigw_host *h, char *err, size_t errlen) {
  (void)err, (void)errlen;
  H = h;
  return &my_plugin;
}
