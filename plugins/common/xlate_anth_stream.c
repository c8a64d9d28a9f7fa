/* xlate_anth_stream.c - streams: Anthropic SSE events <-> hub chat.completion.chunk objects. */
#include "xlate_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BK_NONE = 0, BK_TEXT, BK_TOOL, BK_THINK, BK_REDACTED, BK_IGNORE };

/* ============================ decoder ============================ */

void xl_anth_dec_init(xl_anth_dec *d, long long created) {
  memset(d, 0, sizeof *d);
  d->created = created;
}

void xl_anth_dec_free(xl_anth_dec *d) {
  free(d->blk);
  d->blk = NULL;
  d->nblk = d->capblk = 0;
}

static xl_anth_blk *dec_blk(xl_anth_dec *d, int index) {
  for (int i = d->nblk - 1; i >= 0; i--)
    if (d->blk[i].anth_index == index) return &d->blk[i];
  return NULL;
}

static xl_anth_blk *dec_add(xl_anth_dec *d, int index) {
  xl_anth_blk *b = dec_blk(d, index);
  if (b) return b; /* a repeated start re-types the block */
  if (d->nblk == d->capblk) {
    if (d->capblk >= 1 << 20) return NULL; /* garbage guard */
    int cap = d->capblk ? d->capblk * 2 : 8;
    xl_anth_blk *p = realloc(d->blk, (size_t)cap * sizeof *p);
    if (!p) return NULL;
    d->blk = p;
    d->capblk = cap;
  }
  b = &d->blk[d->nblk++];
  memset(b, 0, sizeof *b);
  b->anth_index = index;
  return b;
}

/* chunk skeleton; choices added by the caller */
static cJSON *dec_chunk(xl_anth_dec *d, xl_ctx *c) {
  cJSON *k = xl_obj(c);
  xl_put_str(c, k, "id", d->id);
  xl_put_str(c, k, "object", "chat.completion.chunk");
  xl_put_num(c, k, "created", (double)d->created);
  xl_put_str(c, k, "model", d->model);
  return k;
}

/* send {choices:[{index:0,delta,logprobs:null,finish_reason}]} ; delta owned */
static int dec_send(xl_anth_dec *d, xl_ctx *c, cJSON *delta, const char *finish, const char *seq, pc_chunk_fn cb,
                    void *ud) {
  cJSON *k = dec_chunk(d, c);
  cJSON *ch = xl_push(c, xl_put(c, k, "choices", xl_arr(c)), xl_obj(c));
  xl_put_num(c, ch, "index", 0);
  xl_put(c, ch, "delta", delta);
  xl_put(c, ch, "logprobs", cJSON_CreateNull());
  xl_put_str(c, ch, "finish_reason", finish);
  if (seq) xl_put_str(c, ch, "stop_sequence", seq);
  int rc = c->failed ? -1 : cb(ud, k);
  cJSON_Delete(k);
  return rc;
}

static int dec_finish_chunks(xl_anth_dec *d, xl_ctx *c, const char *stop, const char *seq, pc_chunk_fn cb, void *ud) {
  d->finished = 1;
  int rc = dec_send(d, c, xl_obj(c), xl_anth_stop_to_finish(stop), seq, cb, ud);
  if (rc) return rc;
  cJSON *k = dec_chunk(d, c);
  xl_put(c, k, "choices", xl_arr(c));
  xl_put(c, k, "usage", xl_hub_usage(c, d->in_tok, d->out_tok, d->cache_read, d->cache_create, d->think_tok));
  rc = c->failed ? -1 : cb(ud, k);
  cJSON_Delete(k);
  return rc;
}

static void dec_usage(xl_anth_dec *d, const cJSON *u) {
  if (!u) return;
  d->in_tok = xl_ll(u, "input_tokens", d->in_tok);
  d->out_tok = xl_ll(u, "output_tokens", d->out_tok);
  d->cache_read = xl_ll(u, "cache_read_input_tokens", d->cache_read);
  d->cache_create = xl_ll(u, "cache_creation_input_tokens", d->cache_create);
  d->think_tok = xl_ll(xl_objm(u, "output_tokens_details"), "thinking_tokens", d->think_tok);
}

static int get_index(const cJSON *ev, int *out) {
  double v;
  if (!xl_num(ev, "index", &v) || v < 0 || v > 1e9 || v != (double)(int)v) return 0;
  *out = (int)v;
  return 1;
}

static int dec_start(xl_anth_dec *d, xl_ctx *c, const cJSON *ev, pc_chunk_fn cb, void *ud) {
  int index;
  const cJSON *cb_ = xl_objm(ev, "content_block");
  const char *type = xl_str(cb_, "type");
  if (!get_index(ev, &index) || !type)
    return xl_fail(c, 502, "", "anthropic stream: content_block_start without index or content_block.type");
  xl_anth_blk *b = dec_add(d, index);
  if (!b) return xl_fail(c, 500, "", "out of memory");
  if (!strcmp(type, "text")) {
    b->kind = BK_TEXT;
    const char *t = xl_str(cb_, "text");
    if (t && t[0]) {
      cJSON *delta = xl_obj(c);
      xl_put_str(c, delta, "content", t);
      return dec_send(d, c, delta, NULL, NULL, cb, ud);
    }
  } else if (!strcmp(type, "tool_use")) {
    const char *id = xl_str(cb_, "id"), *name = xl_str(cb_, "name");
    if (!id || !name) return xl_fail(c, 502, "", "anthropic stream: tool_use block without id or name");
    b->kind = BK_TOOL;
    b->tool_index = d->ntools++;
    const cJSON *in = xl_get(cb_, "input");
    char *args = NULL;
    if (cJSON_IsObject(in) && cJSON_GetArraySize(in) && !(args = cJSON_PrintUnformatted(in)))
      return xl_fail(c, 500, "", "out of memory");
    cJSON *delta = xl_obj(c);
    cJSON *tc = xl_push(c, xl_put(c, delta, "tool_calls", xl_arr(c)), xl_obj(c));
    xl_put_num(c, tc, "index", b->tool_index);
    xl_put_str(c, tc, "id", id);
    xl_put_str(c, tc, "type", "function");
    cJSON *fn = xl_put(c, tc, "function", xl_obj(c));
    xl_put_str(c, fn, "name", name);
    xl_put_str(c, fn, "arguments", args ? args : "");
    cJSON_free(args);
    return dec_send(d, c, delta, NULL, NULL, cb, ud);
  } else if (!strcmp(type, "thinking")) {
    b->kind = BK_THINK;
    const char *t = xl_str(cb_, "thinking");
    if (t && t[0]) {
      cJSON *delta = xl_obj(c);
      xl_put_str(c, delta, "reasoning_content", t);
      return dec_send(d, c, delta, NULL, NULL, cb, ud);
    }
  } else if (!strcmp(type, "redacted_thinking")) {
    b->kind = BK_REDACTED;
    cJSON *delta = xl_obj(c);
    cJSON *tb = xl_push(c, xl_put(c, delta, "thinking_blocks", xl_arr(c)), xl_obj(c));
    xl_put_str(c, tb, "type", "redacted_thinking");
    xl_put_str(c, tb, "data", xl_str(cb_, "data") ? xl_str(cb_, "data") : "");
    return dec_send(d, c, delta, NULL, NULL, cb, ud);
  } else {
    b->kind = BK_IGNORE; /* server tools and future block types */
  }
  return 0;
}

static int dec_delta(xl_anth_dec *d, xl_ctx *c, const cJSON *ev, pc_chunk_fn cb, void *ud) {
  int index;
  const cJSON *dl = xl_objm(ev, "delta");
  const char *type = xl_str(dl, "type");
  if (!get_index(ev, &index) || !type)
    return xl_fail(c, 502, "", "anthropic stream: content_block_delta without index or delta.type");
  xl_anth_blk *b = dec_blk(d, index);
  if (b && b->kind == BK_IGNORE) return 0;
  cJSON *delta = NULL;
  if (!strcmp(type, "text_delta")) {
    const char *t = xl_str(dl, "text");
    if (!t) return xl_fail(c, 502, "", "anthropic stream: text_delta without text");
    if (!t[0]) return 0;
    delta = xl_obj(c);
    xl_put_str(c, delta, "content", t);
  } else if (!strcmp(type, "input_json_delta")) {
    const char *t = xl_str(dl, "partial_json");
    if (!t) return xl_fail(c, 502, "", "anthropic stream: input_json_delta without partial_json");
    if (!b || b->kind != BK_TOOL)
      return xl_fail(c, 502, "", "anthropic stream: input_json_delta for block %d, which is not a tool_use block", index);
    if (!t[0]) return 0;
    delta = xl_obj(c);
    cJSON *tc = xl_push(c, xl_put(c, delta, "tool_calls", xl_arr(c)), xl_obj(c));
    xl_put_num(c, tc, "index", b->tool_index);
    cJSON *fn = xl_put(c, tc, "function", xl_obj(c));
    xl_put_str(c, fn, "arguments", t);
  } else if (!strcmp(type, "thinking_delta")) {
    const char *t = xl_str(dl, "thinking");
    if (!t) return xl_fail(c, 502, "", "anthropic stream: thinking_delta without thinking");
    if (!t[0]) return 0;
    delta = xl_obj(c);
    xl_put_str(c, delta, "reasoning_content", t);
  } else if (!strcmp(type, "signature_delta")) {
    const char *s = xl_str(dl, "signature");
    if (!s) return xl_fail(c, 502, "", "anthropic stream: signature_delta without signature");
    delta = xl_obj(c);
    cJSON *tb = xl_push(c, xl_put(c, delta, "thinking_blocks", xl_arr(c)), xl_obj(c));
    xl_put_str(c, tb, "type", "thinking");
    xl_put_str(c, tb, "thinking", "");
    xl_put_str(c, tb, "signature", s);
  } else {
    return 0; /* citations_delta and future delta types */
  }
  return dec_send(d, c, delta, NULL, NULL, cb, ud);
}

int xl_anth_dec_event(xl_anth_dec *d, const char *name, const char *data, size_t n, pc_chunk_fn cb, void *ud,
                      pc_err *err) {
  xl_ctx c = {err, 0};
  int rc = 0;
  cJSON *ev = xl_parse(data, n);
  const char *type = xl_str(ev, "type");
  if (!type) type = name;
  if (!type) {
    rc = xl_fail(&c, 502, "", "anthropic stream: an event without a type");
    goto done;
  }
  if (!ev && strcmp(type, "ping") != 0) {
    rc = xl_fail(&c, 502, "", "anthropic stream: %.40s event data is not JSON", type);
    goto done;
  }
  if (!strcmp(type, "message_start")) {
    const cJSON *m = xl_objm(ev, "message");
    if (!m) {
      rc = xl_fail(&c, 502, "", "anthropic stream: message_start without message");
      goto done;
    }
    xl_id_anth_to_hub(xl_str(m, "id"), d->id, sizeof d->id);
    xl_cpy(d->model, sizeof d->model, xl_str(m, "model"));
    dec_usage(d, xl_objm(m, "usage"));
    if (d->started) goto done;
    d->started = 1;
    cJSON *delta = xl_obj(&c);
    xl_put_str(&c, delta, "role", "assistant");
    xl_put_str(&c, delta, "content", "");
    rc = dec_send(d, &c, delta, NULL, NULL, cb, ud);
  } else if (!strcmp(type, "content_block_start")) {
    rc = dec_start(d, &c, ev, cb, ud);
  } else if (!strcmp(type, "content_block_delta")) {
    rc = dec_delta(d, &c, ev, cb, ud);
  } else if (!strcmp(type, "message_delta")) {
    dec_usage(d, xl_objm(ev, "usage"));
    const cJSON *dl = xl_objm(ev, "delta");
    if (!d->finished) rc = dec_finish_chunks(d, &c, xl_str(dl, "stop_reason"), xl_str(dl, "stop_sequence"), cb, ud);
  } else if (!strcmp(type, "message_stop")) {
    if (!d->finished) rc = dec_finish_chunks(d, &c, NULL, NULL, cb, ud);
    d->done = 1;
  } else if (!strcmp(type, "error")) {
    const cJSON *e = xl_objm(ev, "error");
    const char *et = xl_str(e, "type"), *msg = xl_str(e, "message");
    pc_err_set(err, xl_anth_error_status(et), et ? et : "api_error", "%s", msg ? msg : "anthropic stream error");
    rc = XL_EUPSTREAM;
  } /* ping, content_block_stop, unknown: nothing */
done:
  cJSON_Delete(ev);
  if (c.failed && rc == 0) rc = -1;
  return rc;
}

int xl_anth_dec_finish(xl_anth_dec *d, pc_err *err) {
  if (d->finished) return 0;
  pc_err_set(err, 502, "", "the anthropic stream ended before message_delta");
  return -1;
}

/* ============================ encoder ============================ */

void xl_anth_enc_init(xl_anth_enc *e, const xl_anth_enc_opts *o) {
  memset(e, 0, sizeof *e);
  e->input_tokens = o ? o->input_tokens : -1;
  e->max_tool = -1;
  e->tool_index = -1;
  if (o && o->model) xl_cpy(e->model, sizeof e->model, o->model);
  if (o && o->id) xl_cpy(e->id, sizeof e->id, o->id);
}

void xl_anth_enc_free(xl_anth_enc *e) {
  free(e->stop_seq);
  e->stop_seq = NULL;
}

/* a new event object whose first member is its type */
static cJSON *ev_new(xl_ctx *c, const char *name) {
  cJSON *ev = xl_obj(c);
  xl_put_str(c, ev, "type", name);
  return ev;
}

/* print and send an event; obj owned */
static int enc_send(xl_ctx *c, aigw_event_kind kind, const char *name, cJSON *obj, pc_event_fn cb, void *ud) {
  if (c->failed) {
    cJSON_Delete(obj);
    return -1;
  }
  char *s = c->failed ? NULL : cJSON_PrintUnformatted(obj);
  cJSON_Delete(obj);
  if (!s) return xl_fail(c, 500, "", "out of memory");
  int rc = cb(ud, kind, name, s, strlen(s));
  cJSON_free(s);
  return rc;
}

static int enc_start(xl_anth_enc *e, xl_ctx *c, const cJSON *chunk, pc_event_fn cb, void *ud) {
  if (e->started) return 0;
  e->started = 1;
  const char *id = xl_str(chunk, "id"), *model = xl_str(chunk, "model");
  if (id && id[0]) xl_id_hub_to_anth(id, e->id, sizeof e->id);
  if (!e->id[0]) xl_cpy(e->id, sizeof e->id, "msg_aigw");
  if (model && model[0]) xl_cpy(e->model, sizeof e->model, model);
  cJSON *ev = ev_new(c, "message_start");
  cJSON *m = xl_put(c, ev, "message", xl_obj(c));
  xl_put_str(c, m, "id", e->id);
  xl_put_str(c, m, "type", "message");
  xl_put_str(c, m, "role", "assistant");
  xl_put_str(c, m, "model", e->model);
  xl_put(c, m, "content", xl_arr(c));
  xl_put(c, m, "stop_reason", cJSON_CreateNull());
  xl_put(c, m, "stop_sequence", cJSON_CreateNull());
  xl_put(c, m, "usage", xl_anth_usage(c, e->input_tokens > 0 ? e->input_tokens : 0, 0, 0, 0));
  return enc_send(c, AIGW_EV_OTHER, "message_start", ev, cb, ud);
}

static int enc_close(xl_anth_enc *e, xl_ctx *c, pc_event_fn cb, void *ud) {
  if (!e->open) return 0;
  e->open = BK_NONE;
  cJSON *ev = ev_new(c, "content_block_stop");
  xl_put_num(c, ev, "index", e->next_index - 1);
  return enc_send(c, AIGW_EV_OTHER, "content_block_stop", ev, cb, ud);
}

/* close the open block, start one of kind with content_block blk (owned) */
static int enc_open(xl_anth_enc *e, xl_ctx *c, int kind, cJSON *blk, pc_event_fn cb, void *ud) {
  int rc = enc_close(e, c, cb, ud);
  if (rc) {
    cJSON_Delete(blk);
    return rc;
  }
  cJSON *ev = ev_new(c, "content_block_start");
  xl_put_num(c, ev, "index", e->next_index++);
  xl_put(c, ev, "content_block", blk);
  e->open = kind;
  return enc_send(c, AIGW_EV_OTHER, "content_block_start", ev, cb, ud);
}

/* content_block_delta on the open block: {type:dtype, key:val} */
static int enc_delta(xl_anth_enc *e, xl_ctx *c, aigw_event_kind kind, const char *dtype, const char *key,
                     const char *val, pc_event_fn cb, void *ud) {
  cJSON *ev = ev_new(c, "content_block_delta");
  xl_put_num(c, ev, "index", e->next_index - 1);
  cJSON *d = xl_put(c, ev, "delta", xl_obj(c));
  xl_put_str(c, d, "type", dtype);
  xl_put_str(c, d, key, val);
  return enc_send(c, kind, "content_block_delta", ev, cb, ud);
}

static cJSON *blk2(xl_ctx *c, const char *type, const char *k1, const char *v1, const char *k2, const char *v2) {
  cJSON *b = xl_obj(c);
  xl_put_str(c, b, "type", type);
  if (k1) xl_put_str(c, b, k1, v1);
  if (k2) xl_put_str(c, b, k2, v2);
  return b;
}

static int enc_end(xl_anth_enc *e, xl_ctx *c, pc_event_fn cb, void *ud) {
  int rc = enc_close(e, c, cb, ud);
  if (rc) return rc;
  e->stopped = 1;
  const char *stop = xl_finish_to_anth_stop(e->finish);
  if (e->stop_seq && !strcmp(stop, "end_turn")) stop = "stop_sequence";
  cJSON *ev = ev_new(c, "message_delta");
  cJSON *d = xl_put(c, ev, "delta", xl_obj(c));
  xl_put_str(c, d, "stop_reason", stop);
  xl_put_str(c, d, "stop_sequence", !strcmp(stop, "stop_sequence") ? e->stop_seq : NULL);
  if (e->have_usage) {
    long long in = e->prompt - e->cached - e->cache_create;
    xl_put(c, ev, "usage", xl_anth_usage(c, in > 0 ? in : 0, e->completion, e->cached, e->cache_create));
  } else {
    cJSON *u = xl_put(c, ev, "usage", xl_obj(c));
    if (e->input_tokens >= 0) xl_put_num(c, u, "input_tokens", (double)e->input_tokens);
    xl_put_num(c, u, "output_tokens", 0);
  }
  rc = enc_send(c, e->have_usage ? AIGW_EV_USAGE : AIGW_EV_STOP, "message_delta", ev, cb, ud);
  if (rc) return rc;
  return enc_send(c, AIGW_EV_DONE, "message_stop", ev_new(c, "message_stop"), cb, ud);
}

static int enc_error(xl_anth_enc *e, xl_ctx *c, const char *etype, const char *msg, pc_event_fn cb, void *ud) {
  e->stopped = 1;
  cJSON *ev = ev_new(c, "error");
  cJSON *er = xl_put(c, ev, "error", xl_obj(c));
  xl_put_str(c, er, "type", etype);
  xl_put_str(c, er, "message", msg);
  return enc_send(c, AIGW_EV_ERROR, "error", ev, cb, ud);
}

static int enc_tool(xl_anth_enc *e, xl_ctx *c, const cJSON *tc, pc_event_fn cb, void *ud) {
  double di = 0;
  xl_num(tc, "index", &di);
  if (!(di >= 0 && di < 1e6)) return xl_fail(c, 502, "", "hub stream: a tool call index out of range");
  int idx = (int)di, rc;
  const cJSON *fn = xl_objm(tc, "function");
  if (!(e->open == BK_TOOL && e->tool_index == idx)) {
    if (idx <= e->max_tool)
      return xl_fail(c, 502, "", "hub stream: arguments for tool call %d after another tool call started", idx);
    const char *id = xl_str(tc, "id"), *name = xl_str(fn, "name");
    char gen[200];
    if (!id || !id[0]) {
      snprintf(gen, sizeof gen, "toolu_%s_%d", e->id, idx);
      id = gen;
    }
    cJSON *b = blk2(c, "tool_use", "id", id, "name", name ? name : "");
    xl_put(c, b, "input", xl_obj(c));
    rc = enc_open(e, c, BK_TOOL, b, cb, ud);
    if (rc) return rc;
    e->tool_index = e->max_tool = idx;
  }
  const char *args = xl_str(fn, "arguments");
  if (args && args[0]) return enc_delta(e, c, AIGW_EV_TOOL_DELTA, "input_json_delta", "partial_json", args, cb, ud);
  return 0;
}

static int enc_chunk(xl_anth_enc *e, xl_ctx *c, const cJSON *k, pc_event_fn cb, void *ud) {
  if (!cJSON_IsObject(k)) return xl_fail(c, 502, "", "hub stream: a chunk that is not a JSON object");
  if (e->stopped) return 0;
  const cJSON *er = xl_get(k, "error");
  if (er && !cJSON_IsNull(er)) {
    const char *msg = cJSON_IsString(er) ? er->valuestring : xl_str(er, "message");
    const char *t = xl_str(er, "type"), *code = xl_str(er, "code");
    const char *et = "api_error";
    if ((t && strstr(t, "rate_limit")) || (code && strstr(code, "rate_limit"))) et = "rate_limit_error";
    else if ((t && strstr(t, "overloaded")) || (code && strstr(code, "overloaded"))) et = "overloaded_error";
    else if (t && !strcmp(t, "invalid_request_error")) et = "invalid_request_error";
    int rc = enc_start(e, c, k, cb, ud);
    if (rc) return rc;
    return enc_error(e, c, et, msg ? msg : "upstream error", cb, ud);
  }
  int rc = enc_start(e, c, k, cb, ud);
  if (rc) return rc;
  const cJSON *ch = xl_hub_choice0(k);
  const cJSON *d = xl_objm(ch, "delta"), *x;
  const char *rs = xl_str(d, "reasoning_content");
  if (rs && rs[0]) {
    if (e->open != BK_THINK && (rc = enc_open(e, c, BK_THINK, blk2(c, "thinking", "thinking", "", "signature", ""), cb, ud)))
      return rc;
    if ((rc = enc_delta(e, c, AIGW_EV_OTHER, "thinking_delta", "thinking", rs, cb, ud))) return rc;
  }
  cJSON_ArrayForEach(x, xl_arrm(d, "thinking_blocks")) {
    const char *t = xl_str(x, "type");
    if (t && !strcmp(t, "thinking")) {
      const char *sig = xl_str(x, "signature");
      if (!sig || !sig[0]) continue;
      if (e->open != BK_THINK && (rc = enc_open(e, c, BK_THINK, blk2(c, "thinking", "thinking", "", "signature", ""), cb, ud)))
        return rc;
      if ((rc = enc_delta(e, c, AIGW_EV_OTHER, "signature_delta", "signature", sig, cb, ud))) return rc;
      if ((rc = enc_close(e, c, cb, ud))) return rc; /* a signature ends its thinking block */
    } else if (t && !strcmp(t, "redacted_thinking")) {
      const char *data = xl_str(x, "data");
      if ((rc = enc_open(e, c, BK_REDACTED, blk2(c, "redacted_thinking", "data", data ? data : "", NULL, NULL), cb, ud)))
        return rc;
      if ((rc = enc_close(e, c, cb, ud))) return rc;
    }
  }
  const char *txt = xl_str(d, "content");
  if (!txt) txt = xl_str(d, "refusal");
  if (txt && txt[0]) {
    if (e->open != BK_TEXT && (rc = enc_open(e, c, BK_TEXT, blk2(c, "text", "text", "", NULL, NULL), cb, ud))) return rc;
    if ((rc = enc_delta(e, c, AIGW_EV_DELTA, "text_delta", "text", txt, cb, ud))) return rc;
  }
  cJSON_ArrayForEach(x, xl_arrm(d, "tool_calls")) {
    if ((rc = enc_tool(e, c, x, cb, ud))) return rc;
  }
  const char *fin = xl_str(ch, "finish_reason");
  if (fin && fin[0]) {
    if ((rc = enc_close(e, c, cb, ud))) return rc;
    xl_cpy(e->finish, sizeof e->finish, fin);
    const char *seq = xl_str(ch, "stop_sequence");
    if (seq && !e->stop_seq && !(e->stop_seq = strdup(seq))) return xl_fail(c, 500, "", "out of memory");
  }
  const cJSON *u = xl_objm(k, "usage");
  if (u) {
    e->have_usage = 1;
    e->prompt = xl_ll(u, "prompt_tokens", 0);
    e->completion = xl_ll(u, "completion_tokens", 0);
    e->cached = xl_ll(xl_objm(u, "prompt_tokens_details"), "cached_tokens", 0);
    e->cache_create = xl_ll(u, "cache_creation_input_tokens", 0);
  }
  if (e->finish[0] && e->have_usage) return enc_end(e, c, cb, ud);
  return 0;
}

int xl_anth_enc_chunk(xl_anth_enc *e, const cJSON *chunk, pc_event_fn cb, void *ud, pc_err *err) {
  xl_ctx c = {err, 0};
  int rc = enc_chunk(e, &c, chunk, cb, ud);
  return c.failed && rc == 0 ? -1 : rc;
}

int xl_anth_enc_finish(xl_anth_enc *e, pc_event_fn cb, void *ud, pc_err *err) {
  xl_ctx c = {err, 0};
  if (e->stopped) return 0;
  int rc = enc_start(e, &c, NULL, cb, ud);
  if (!rc && e->finish[0]) rc = enc_end(e, &c, cb, ud);
  else if (!rc) rc = enc_error(e, &c, "api_error", "the upstream stream ended before a finish_reason", cb, ud);
  return c.failed && rc == 0 ? -1 : rc;
}

int xl_anth_enc_data(xl_anth_enc *e, const char *data, size_t n, pc_event_fn cb, void *ud, pc_err *err) {
  size_t a = 0, b = n;
  while (a < b && (data[a] == ' ' || data[a] == '\t' || data[a] == '\r' || data[a] == '\n')) a++;
  while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t' || data[b - 1] == '\r' || data[b - 1] == '\n')) b--;
  if (b - a == 6 && !memcmp(data + a, "[DONE]", 6)) return xl_anth_enc_finish(e, cb, ud, err);
  cJSON *k = xl_parse(data + a, b - a);
  if (!k) {
    pc_err_set(err, 502, "", "hub stream: event data is not JSON");
    return -1;
  }
  int rc = xl_anth_enc_chunk(e, k, cb, ud, err);
  cJSON_Delete(k);
  return rc;
}

/* ================= fast paths for plain text deltas (no tree built) =================
 * The common event of a stream is one text delta. Both directions copy the JSON string of the
 * text verbatim (escapes included) into the other format's envelope; anything unusual falls back
 * to the tree-based path (return 0). */

/* The raw JSON string value (quotes excluded, escapes kept) of the first member "key" whose
 * name appears as  "key":"  in the text; 1 when found and well-terminated. */
static int raw_str_member(const char *p, size_t n, const char *pat, const char **vs, size_t *vn) {
  size_t pl = strlen(pat);
  const char *k = memmem(p, n, pat, pl);
  if (!k) return 0;
  const char *s = k + pl, *end = p + n;
  for (const char *q = s; q < end; q++) {
    if (*q == '\\') {
      if (++q >= end) return 0;
      continue;
    }
    if (*q == '"') {
      *vs = s;
      *vn = (size_t)(q - s);
      return 1;
    }
    if ((unsigned char)*q < 0x20) return 0;
  }
  return 0;
}

static int json_plain(const char *s) { /* needs no escaping */
  for (; *s; s++)
    if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) return 0;
  return 1;
}

int xl_anth_dec_text_fast(xl_anth_dec *d, const char *data, size_t n, pc_buf *out) {
  if (!d->started || d->finished || !d->id[0] || !json_plain(d->id) || !json_plain(d->model)) return 0;
#define HAS(lit) (memmem(data, n, lit, sizeof(lit) - 1) != NULL)
  if (n < 40 || data[0] != '{' || !HAS("\"type\":\"content_block_delta\"") ||
      !HAS("\"delta\":{\"type\":\"text_delta\",\"text\":\""))
    return 0;
  const char *ix = memmem(data, n, "\"index\":", 8);
  if (!ix) return 0;
  ix += 8;
  int index = 0, digits = 0;
  while (ix < data + n && *ix >= '0' && *ix <= '9' && digits < 9) index = index * 10 + (*ix++ - '0'), digits++;
  if (!digits || ix >= data + n || (*ix != ',' && *ix != '}')) return 0;
  xl_anth_blk *b = dec_blk(d, index);
  if (!b || b->kind != BK_TEXT) return 0;
  const char *t;
  size_t tn;
  if (!raw_str_member(data, n, "\"delta\":{\"type\":\"text_delta\",\"text\":\"", &t, &tn)) return 0;
#undef HAS
  /* the delta object must end right after the text: no other members to lose */
  const char *after = t + tn + 1;
  if (after + 1 >= data + n || after[0] != '}' || after[1] != '}') return 0;
  out->n = 0;
  if (!tn) return 1; /* empty text: nothing to send, as the tree path */
  if (pc_buf_printf(out, "{\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":\"%s\","
                         "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"", d->id, d->created, d->model) < 0 ||
      pc_buf_add(out, t, tn) < 0 || pc_buf_adds(out, "\"},\"logprobs\":null,\"finish_reason\":null}]}") < 0)
    return -1;
  return 1;
}

int xl_anth_enc_text_fast(xl_anth_enc *e, const char *data, size_t n, pc_buf *out) {
  if (!e->started || e->stopped || e->open != BK_TEXT || n < 20 || data[0] != '{') return 0;
  /* only a chunk whose one job is a text delta */
  static const char *const no[] = {"\"tool_calls\"", "\"reasoning_content\"", "\"thinking_blocks\"", "\"refusal\":\"",
                                   "\"error\"", "\"function_call\"", "\"stop_sequence\""};
  for (size_t i = 0; i < sizeof no / sizeof *no; i++)
    if (memmem(data, n, no[i], strlen(no[i]))) return 0;
  const char *u = memmem(data, n, "\"usage\":", 8);
  if (u && !(u + 12 <= data + n && !memcmp(u + 8, "null", 4))) return 0;
  const char *f = memmem(data, n, "\"finish_reason\":", 16);
  if (!f || !(f + 20 <= data + n && !memcmp(f + 16, "null", 4))) return 0;
  if (memmem(f + 16, (size_t)(data + n - f - 16), "\"finish_reason\":", 16)) return 0; /* several choices */
  const char *t;
  size_t tn;
  if (!raw_str_member(data, n, "\"content\":\"", &t, &tn) || !tn) return 0;
  if (memmem(t + tn, (size_t)(data + n - t - tn), "\"content\":", 10)) return 0; /* a second content */
  out->n = 0;
  if (pc_buf_printf(out, "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":\"text_delta\",\"text\":\"",
                    e->next_index - 1) < 0 ||
      pc_buf_add(out, t, tn) < 0 || pc_buf_adds(out, "\"}}") < 0)
    return -1;
  return 1;
}
