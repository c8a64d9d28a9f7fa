/* ingress.c - see ingress.h. */
#include "ingress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static cJSON *parse_str(aigw_str s) { return s.p ? cJSON_ParseWithLength(s.p, s.n) : NULL; }

cJSON *ing_hub_request(const aigw_host *H, aigw_req *r, pc_err *err) {
  aigw_str raw = {0};
  if (H->body_raw(r, AIGW_UPSTREAM_REQUEST, &raw) != AIGW_OK || !raw.n) {
    pc_err_set(err, 400, "", "the request needs a JSON body");
    return NULL;
  }
  cJSON *in = parse_str(raw);
  if (!cJSON_IsObject(in)) {
    cJSON_Delete(in);
    pc_err_set(err, 400, "", "the request body must be a JSON object");
    return NULL;
  }
  cJSON *hub = NULL;
  switch (H->api(r)) {
  case AIGW_API_CHAT: hub = in; break;
  case AIGW_API_MESSAGES:
    /* anthropic-version / anthropic-beta mean nothing to another provider: never sent on */
    for (int i = 0; i < 2; i++) {
      aigw_str name = i ? AIGW_STR("anthropic-version") : AIGW_STR("anthropic-beta"), v;
      if (H->header(r, AIGW_UPSTREAM_REQUEST, name, &v) != AIGW_OK) continue;
      if (!i)
        H->log(r, AIGW_LOG_WARN, "dropped anthropic-beta \"%.*s\": the provider is not Anthropic",
               (int)(v.n > 200 ? 200 : v.n), v.p);
      H->set_header(r, AIGW_UPSTREAM_REQUEST, name, (aigw_str){NULL, 0});
    }
    hub = xl_anth_req_to_hub(in, err);
    cJSON_Delete(in);
    break;
  case AIGW_API_RESPONSES: {
    xr_req_info info;
    hub = xr_req_to_hub(in, NULL, &info, err);
    cJSON_Delete(in);
    if (hub && info.previous_response_id[0]) {
      /* the conversation is resolved before the provider, by the responses_state plugin */
      cJSON_Delete(hub);
      pc_err_set(err, 400, "previous_response_id",
                 "previous_response_id: this route keeps no conversation state; add the "
                 "\"responses_state\" plugin to the route (or send the whole conversation in \"input\")");
      return NULL;
    }
    break;
  }
  default:
    cJSON_Delete(in);
    pc_err_set(err, 400, "", "this API cannot be translated for this provider; use a passthrough route");
    return NULL;
  }
  if (!hub) return NULL;
  if (H->is_stream(r) && H->api(r) == AIGW_API_MESSAGES) {
    size_t bytes = 0;
    const cJSON *m, *part;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(hub, "messages")) {
      const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
      if (cJSON_IsString(c)) bytes += strlen(c->valuestring);
      const cJSON *arr = cJSON_IsArray(c) ? c : NULL;
      cJSON_ArrayForEach(part, arr) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t)) bytes += strlen(t->valuestring);
      }
    }
    char nb[24];
    int nn = snprintf(nb, sizeof nb, "%zu", (bytes + 3) / 4);
    H->meta_set(r, "ingress.prompt_tokens_estimate", (aigw_str){nb, (size_t)nn});
  }
  aigw_str tm = {0};
  if (H->meta_get(r, "aigw.target_model", &tm) == AIGW_OK && tm.n) {
    char *m = malloc(tm.n + 1);
    if (!m) {
      cJSON_Delete(hub);
      pc_err_set(err, 500, "", "out of memory");
      return NULL;
    }
    memcpy(m, tm.p, tm.n);
    m[tm.n] = 0;
    cJSON *v = cJSON_CreateString(m);
    free(m);
    if (!v || !(cJSON_HasObjectItem(hub, "model") ? cJSON_ReplaceItemInObjectCaseSensitive(hub, "model", v)
                                                   : cJSON_AddItemToObject(hub, "model", v))) {
      cJSON_Delete(hub);
      pc_err_set(err, 500, "", "out of memory");
      return NULL;
    }
  }
  return hub;
}

static long long num(const cJSON *o, const char *k) {
  const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
  return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9e15 ? (long long)v->valuedouble : -1;
}

int ing_report_usage(const aigw_host *H, aigw_req *r, const cJSON *u) {
  if (!cJSON_IsObject(u)) return 0;
  aigw_usage us = {sizeof(aigw_usage), -1, -1, -1, -1, -1};
  us.input_tokens = num(u, "prompt_tokens");
  us.output_tokens = num(u, "completion_tokens");
  us.cached_tokens = num(cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens_details"), "cached_tokens");
  us.reasoning_tokens = num(cJSON_GetObjectItemCaseSensitive(u, "completion_tokens_details"), "reasoning_tokens");
  us.cache_write_tokens = num(u, "cache_creation_input_tokens");
  if (us.input_tokens < 0 && us.output_tokens < 0) return 0;
  H->set_usage(r, &us);
  return 1;
}

/* The client's Responses request for the answer's echo (new tree or NULL), with the
 * previous_response_id the responses_state plugin resolved and removed. */
static cJSON *responses_req(const aigw_host *H, aigw_req *r) {
  aigw_str raw = {0}, pid = {0};
  H->body_raw(r, AIGW_CLIENT_REQUEST, &raw);
  cJSON *req = raw.n ? cJSON_ParseWithLength(raw.p, raw.n) : NULL;
  if (cJSON_IsObject(req) && H->meta_get(r, "responses_state.previous_response_id", &pid) == AIGW_OK && pid.n &&
      !cJSON_HasObjectItem(req, "previous_response_id")) {
    char *id = malloc(pid.n + 1);
    if (id) {
      memcpy(id, pid.p, pid.n);
      id[pid.n] = 0;
      cJSON_AddStringToObject(req, "previous_response_id", id);
      free(id);
    }
  }
  return req;
}

int ing_hub_response(const aigw_host *H, aigw_req *r, const cJSON *hub, pc_err *err) {
  ing_report_usage(H, r, cJSON_GetObjectItemCaseSensitive(hub, "usage"));
  cJSON *conv = NULL;
  const cJSON *out = hub;
  if (H->api(r) == AIGW_API_MESSAGES) {
    if (!(conv = xl_hub_resp_to_anth(hub, err))) return -1;
    out = conv;
  } else if (H->api(r) == AIGW_API_RESPONSES) {
    cJSON *req = responses_req(H, r); /* echoed parameters */
    conv = xr_hub_resp_to_responses(hub, req, err);
    cJSON_Delete(req);
    if (!conv) return -1;
    out = conv;
  }
  char *txt = cJSON_PrintUnformatted(out);
  cJSON_Delete(conv);
  if (!txt) {
    pc_err_set(err, 500, "", "out of memory");
    return -1;
  }
  int rc = H->set_body(r, AIGW_UPSTREAM_RESPONSE, (aigw_str){txt, strlen(txt)});
  free(txt);
  if (rc != AIGW_OK) {
    pc_err_set(err, 500, "", "out of memory");
    return -1;
  }
  return 0;
}

aigw_status ing_answer_hub(const aigw_host *H, aigw_req *r, cJSON *hub) {
  pc_err e = {0};
  int rc = ing_hub_response(H, r, hub, &e);
  cJSON_Delete(hub);
  if (rc < 0) {
    ing_error(H, r, e.status ? e.status : 502, "upstream_error", e.msg);
    return AIGW_STOP;
  }
  return AIGW_CONTINUE;
}

int ing_fwd_chunk(void *ud, const cJSON *chunk) {
  ing_fwd *f = ud;
  return ing_stream_chunk(f->H, f->r, f->st, chunk) < 0 ? 1 : 0;
}

void ing_error(const aigw_host *H, aigw_req *r, int status, const char *type, const char *message) {
  if (status < 400 || status > 599) status = 502;
  if (!type) type = xl_openai_error_type(status);
  H->respond_error(r, status, type, message && *message ? message : "the provider answered with an error");
}

/* ---- streams ---- */

void ing_stream_init(const aigw_host *H, aigw_req *r, ing_stream *s) {
  memset(s, 0, sizeof *s);
  s->api = H->api(r);
  if (s->api == AIGW_API_RESPONSES) {
    cJSON *req = responses_req(H, r);
    xr_enc_opts o = {.req = req, .created = (long long)time(NULL), .model = NULL, .id = NULL};
    if (xr_enc_init(&s->renc, &o) == 0) s->renc_init = 1;
    cJSON_Delete(req);
    return;
  }
  if (s->api == AIGW_API_MESSAGES) {
    /* message_start must carry input usage, but OpenAI-style upstreams report it only at the
     * end: ing_hub_request left an estimate of the prompt (ceil(text bytes / 4)); message_delta
     * then carries the provider's real numbers. */
    aigw_str est = {0};
    long long in_est = -1;
    if (H->meta_get(r, "ingress.prompt_tokens_estimate", &est) == AIGW_OK && est.n && est.n < 20) {
      char nb[24];
      memcpy(nb, est.p, est.n);
      nb[est.n] = 0;
      in_est = atoll(nb);
    }
    xl_anth_enc_opts o = {.input_tokens = in_est, .model = NULL, .id = NULL};
    char model[160] = "";
    const aigw_json *m = H->body_member(r, AIGW_CLIENT_REQUEST, "model", NULL);
    aigw_str ms;
    if (m && H->json_str(m, &ms) == AIGW_OK && ms.n < sizeof model) {
      memcpy(model, ms.p, ms.n);
      model[ms.n] = 0;
      o.model = model;
    }
    xl_anth_enc_init(&s->enc, &o);
    s->enc_init = 1;
  } else {
    const aigw_json *so = H->body_member(r, AIGW_CLIENT_REQUEST, "stream_options", NULL);
    const aigw_json *iu = so ? H->json_get(so, "include_usage") : NULL;
    s->client_usage = iu && H->json_type(iu) == AIGW_JSON_TRUE;
  }
}

void ing_stream_free(ing_stream *s) {
  if (s->enc_init) xl_anth_enc_free(&s->enc);
  s->enc_init = 0;
  if (s->renc_init) xr_enc_free(&s->renc);
  s->renc_init = 0;
  pc_buf_free(&s->fast);
}

void ing_stream_prompt_tokens(ing_stream *s, long long input_tokens) {
  if (s->enc_init && !s->enc.started && input_tokens >= 0) s->enc.input_tokens = input_tokens;
}

int ing_stream_emit_raw(const aigw_host *H, aigw_req *r, ing_stream *s, aigw_event_kind kind, const char *name,
                        const char *data, size_t n) {
  if (s->done) return 0;
  aigw_str nm = {name ? name : "", name ? strlen(name) : 0};
  return H->provider_emit(r, kind, nm, (aigw_str){data, n}) == AIGW_OK ? 0 : -1;
}

typedef struct emit_ctx {
  const aigw_host *H;
  aigw_req *r;
} emit_ctx;

static int emit_cb(void *ud, aigw_event_kind kind, const char *name, const char *data, size_t n) {
  emit_ctx *c = ud;
  aigw_str nm = {name ? name : "", name ? strlen(name) : 0};
  return c->H->provider_emit(c->r, kind, nm, (aigw_str){data, n}) == AIGW_OK ? 0 : -1;
}

static int nonempty_str(const cJSON *j) { return cJSON_IsString(j) && j->valuestring[0]; }

static aigw_event_kind chat_kind(const cJSON *chunk) {
  if (cJSON_GetObjectItemCaseSensitive(chunk, "error")) return AIGW_EV_ERROR;
  const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(chunk, "choices"), 0);
  if (c0) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(c0, "delta");
    if (nonempty_str(cJSON_GetObjectItemCaseSensitive(d, "content"))) return AIGW_EV_DELTA;
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(d, "tool_calls")) > 0) return AIGW_EV_TOOL_DELTA;
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
    if (fr && !cJSON_IsNull(fr)) return AIGW_EV_STOP;
  }
  if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(chunk, "usage"))) return AIGW_EV_USAGE;
  return AIGW_EV_OTHER;
}

int ing_stream_chunk(const aigw_host *H, aigw_req *r, ing_stream *s, const cJSON *chunk) {
  if (s->done) return 0;
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(chunk, "usage");
  if (cJSON_IsObject(u)) ing_report_usage(H, r, u);
  emit_ctx c = {H, r};
  if (s->api == AIGW_API_RESPONSES) {
    pc_err e = {0};
    int rc = s->renc_init ? xr_enc_chunk(&s->renc, chunk, emit_cb, &c, &e) : -1;
    if (rc < 0) {
      ing_stream_error(H, r, s, e.status ? e.status : 502, e.msg[0] ? e.msg : "stream translation failed");
      return -1;
    }
    return 0;
  }
  if (s->api == AIGW_API_MESSAGES) {
    pc_err e = {0};
    int rc = xl_anth_enc_chunk(&s->enc, chunk, emit_cb, &c, &e);
    if (rc < 0) {
      ing_stream_error(H, r, s, e.status ? e.status : 502, e.msg[0] ? e.msg : "stream translation failed");
      return -1;
    }
    return 0;
  }
  aigw_event_kind k = chat_kind(chunk);
  const cJSON *choices = cJSON_GetObjectItemCaseSensitive(chunk, "choices");
  if (k == AIGW_EV_USAGE && !s->client_usage && cJSON_GetArraySize(choices) == 0) return 0;
  cJSON *copy = NULL;
  const cJSON *out = chunk;
  if (cJSON_IsObject(u) && !s->client_usage) { /* usage rides on a content chunk: hide it */
    if (!(copy = cJSON_Duplicate(chunk, 1))) return -1;
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "usage");
    out = copy;
  }
  char *txt = cJSON_PrintUnformatted(out);
  cJSON_Delete(copy);
  if (!txt) return -1;
  int rc = H->provider_emit(r, k, AIGW_STR(""), (aigw_str){txt, strlen(txt)});
  free(txt);
  return rc == AIGW_OK ? 0 : -1;
}

int ing_stream_end(const aigw_host *H, aigw_req *r, ing_stream *s) {
  if (s->done) return 0;
  s->done = 1;
  if (s->api == AIGW_API_RESPONSES) {
    emit_ctx c = {H, r};
    pc_err e = {0};
    return s->renc_init && xr_enc_finish(&s->renc, emit_cb, &c, &e) >= 0 ? 0 : -1;
  }
  if (s->api == AIGW_API_MESSAGES) {
    emit_ctx c = {H, r};
    pc_err e = {0};
    return xl_anth_enc_finish(&s->enc, emit_cb, &c, &e) < 0 ? -1 : 0;
  }
  return H->provider_emit(r, AIGW_EV_DONE, AIGW_STR(""), AIGW_STR("[DONE]")) == AIGW_OK ? 0 : -1;
}

void ing_stream_error(const aigw_host *H, aigw_req *r, ing_stream *s, int status, const char *message) {
  if (s->done) return;
  s->done = 1;
  if (s->api == AIGW_API_RESPONSES && s->renc_init) {
    emit_ctx c = {H, r};
    pc_err e = {0};
    if (xr_enc_error(&s->renc, status, message, emit_cb, &c, &e) >= 0) return;
  }
  cJSON *body = s->api == AIGW_API_MESSAGES ? xl_error_to_anth(status, message)
                                             : xl_error_to_openai(status, message, NULL, "upstream_error");
  char *txt = body ? cJSON_PrintUnformatted(body) : NULL;
  cJSON_Delete(body);
  if (txt) {
    aigw_str name = s->api == AIGW_API_MESSAGES ? AIGW_STR("error") : AIGW_STR("");
    H->provider_emit(r, AIGW_EV_ERROR, name, (aigw_str){txt, strlen(txt)});
    free(txt);
  } else {
    H->end_stream(r, "upstream_error", message);
  }
}

/* ---- hub -> an OpenAI-compatible upstream ---- */

static void del(cJSON *o, const char *k) { cJSON_DeleteItemFromObjectCaseSensitive(o, k); }

int ing_hub_strip_for_openai(const aigw_host *H, aigw_req *r, cJSON *hub, const char *provider, pc_err *err) {
  cJSON *xa = cJSON_GetObjectItemCaseSensitive(hub, "x_anthropic");
  if (xa) {
    static const char *const hard[] = {"mcp_servers", "container", "context_management"};
    for (size_t i = 0; i < sizeof hard / sizeof *hard; i++)
      if (cJSON_GetObjectItemCaseSensitive(xa, hard[i])) {
        pc_err_set(err, 400, hard[i], "%s: an Anthropic-only feature that %s cannot honour; route this request to an Anthropic provider", hard[i], provider);
        return -1;
      }
    del(hub, "x_anthropic");
  }
  if (cJSON_GetObjectItemCaseSensitive(hub, "thinking")) {
    /* Anthropic's thinking budget has no equivalent on chat-completions models that are not
     * reasoning models; reasoning models reason on their own. */
    if (H) H->log(r, AIGW_LOG_INFO, "dropped \"thinking\": %s has no thinking budget", provider);
    del(hub, "thinking");
  }
  del(hub, "top_k");
  cJSON *tools = cJSON_GetObjectItemCaseSensitive(hub, "tools");
  int ti = 0;
  for (cJSON *t = tools ? tools->child : NULL; t; t = t->next, ti++) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(t, "type");
    if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "function") != 0) {
      char p[48];
      snprintf(p, sizeof p, "tools[%d]", ti);
      pc_err_set(err, 400, p, "%s: tool type \"%s\" is not supported by %s (only function tools)", p,
                 cJSON_IsString(ty) ? ty->valuestring : "?", provider);
      return -1;
    }
    del(t, "cache_control");
  }
  cJSON *msgs = cJSON_GetObjectItemCaseSensitive(hub, "messages");
  int mi = 0;
  for (cJSON *m = msgs ? msgs->child : NULL; m; m = m->next, mi++) {
    del(m, "reasoning_content");
    del(m, "thinking_blocks");
    del(m, "cache_control");
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    int is_tool = cJSON_IsString(role) && strcmp(role->valuestring, "tool") == 0;
    if (is_tool) del(m, "is_error");
    cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    for (cJSON *c = tc ? tc->child : NULL; c; c = c->next) del(c, "cache_control");
    cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    int pi = 0;
    for (cJSON *part = cJSON_IsArray(content) ? content->child : NULL; part; part = part->next, pi++) {
      del(part, "cache_control");
      del(part, "citations");
      const cJSON *pt = cJSON_GetObjectItemCaseSensitive(part, "type");
      const char *pts = cJSON_IsString(pt) ? pt->valuestring : "";
      char p[64];
      snprintf(p, sizeof p, "messages[%d].content[%d]", mi, pi);
      if (is_tool && strcmp(pts, "text") != 0) {
        pc_err_set(err, 400, p, "%s: %s takes only text in tool results, got a \"%s\" part", p, provider, pts);
        return -1;
      }
      cJSON *f = cJSON_GetObjectItemCaseSensitive(part, "file");
      if (f && cJSON_GetObjectItemCaseSensitive(f, "file_url")) {
        pc_err_set(err, 400, p, "%s: %s does not fetch documents by URL; send the document as base64 data", p, provider);
        return -1;
      }
    }
  }
  return 0;
}

int ing_upstream_error(const aigw_host *H, aigw_req *r, const char *wire, int status, aigw_str body) {
  aigw_api api = H->api(r);
  int out = status;
  cJSON *eb = NULL;
  if (api == AIGW_API_MESSAGES && strcmp(wire, "anthropic") != 0)
    eb = xl_error_openai_body_to_anth(status, body.p ? body.p : "", body.n, &out);
  else if ((api == AIGW_API_CHAT || api == AIGW_API_RESPONSES) && strcmp(wire, "openai") != 0)
    eb = xl_error_anth_body_to_openai(status, body.p ? body.p : "", body.n, &out);
  else
    return 0; /* same format: the body goes through untouched */
  char *txt = eb ? cJSON_PrintUnformatted(eb) : NULL;
  cJSON_Delete(eb);
  if (!txt) {
    ing_error(H, r, status, NULL, "the provider answered with an error");
    return 1;
  }
  H->respond(r, out, AIGW_STR("application/json"), (aigw_str){txt, strlen(txt)});
  free(txt);
  return 1;
}

void ing_openai_event(const aigw_host *H, aigw_req *r, ing_stream *st, aigw_event *ev) {
  aigw_str data = {0};
  H->event_data(ev, &data);
  ing_openai_data(H, r, st, data.p, data.n);
}

void ing_openai_data(const aigw_host *H, aigw_req *r, ing_stream *st, const char *p, size_t n) {
  aigw_str data = {p ? p : "", p ? n : 0};
  while (data.n && (data.p[0] == ' ' || data.p[0] == '\t')) data.p++, data.n--;
  while (data.n && (data.p[data.n - 1] == ' ' || data.p[data.n - 1] == '\r' || data.p[data.n - 1] == '\n')) data.n--;
  if (data.n == 6 && memcmp(data.p, "[DONE]", 6) == 0) {
    ing_stream_end(H, r, st);
    return;
  }
  if (st->api == AIGW_API_MESSAGES && st->enc_init) { /* the common event, without trees */
    int fr = xl_anth_enc_text_fast(&st->enc, data.p, data.n, &st->fast);
    if (fr > 0) {
      if (st->fast.n) ing_stream_emit_raw(H, r, st, AIGW_EV_DELTA, "content_block_delta", st->fast.p, st->fast.n);
      return;
    }
  }
  cJSON *chunk = data.n ? cJSON_ParseWithLength(data.p, data.n) : NULL;
  if (!cJSON_IsObject(chunk)) {
    cJSON_Delete(chunk);
    if (!data.n) return; /* keep-alive comment or empty event */
    ing_stream_error(H, r, st, 502, "the provider sent a stream event that is not JSON");
    return;
  }
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(chunk, "error");
  if (err && !cJSON_IsNull(err)) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
    ing_stream_error(H, r, st, 500, cJSON_IsString(m) ? m->valuestring : "the provider reported an error mid-stream");
  } else {
    ing_stream_chunk(H, r, st, chunk);
  }
  cJSON_Delete(chunk);
}

