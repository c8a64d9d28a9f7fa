/* server.c - listeners, worker threads, client connections and HTTP/1.1 I/O.
 *
 * Each worker has its own SO_REUSEPORT listening socket per configured address, so the kernel
 * spreads connections over workers and no accept lock exists. A connection lives on one worker.
 * Reads go into an evbuffer; the head is parsed in place (http1.c) and copied once into the
 * request's arena; the body is read into one contiguous buffer. Writes are queued in an evbuffer
 * and written at once (writev inside evbuffer_write); the write event is added only when the
 * socket is full, so a normal response costs no epoll_ctl. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core.h"

server *g_server;

static void conn_on_read(evutil_socket_t fd, short what, void *arg);
static void conn_on_write(evutil_socket_t fd, short what, void *arg);
static void conn_process(conn *c);
static void conn_close(conn *c);
static void conn_write_failed(conn *c);
static void on_deferred_close(evutil_socket_t fd, short what, void *arg);

/* ---- generations ---- */

cfg_gen *server_gen_acquire(server *s) {
  /* The main thread only swaps `current` after taking the new generation's reference and drops the
   * old one after the swap; a worker that loaded the old pointer may still race with that drop,
   * so the retired list keeps a retired generation until its count reaches zero (gc timer). */
  cfg_gen *g = (cfg_gen *)atomic_load(&s->current);
  gen_ref(g);
  return g;
}

void server_gen_release(server *s, cfg_gen *g) {
  (void)s;
  gen_unref(g); /* freed by the main thread's gc timer once retired and unreferenced */
}

static void retire_gen(server *s, cfg_gen *g) {
  pthread_mutex_lock(&s->retired_mu);
  if (s->nretired == s->cap_retired) {
    size_t cap = s->cap_retired ? s->cap_retired * 2 : 8;
    cfg_gen **nv = realloc(s->retired, cap * sizeof *nv);
    if (!nv) {
      pthread_mutex_unlock(&s->retired_mu);
      log_msg(AIGW_LOG_ERROR, "out of memory retiring config generation %llu (leaked)",
              (unsigned long long)g->id);
      return;
    }
    s->retired = nv;
    s->cap_retired = cap;
  }
  g->retired_ms = now_ms();
  s->retired[s->nretired++] = g;
  pthread_mutex_unlock(&s->retired_mu);
}

static void gc_retired(server *s, int force) {
  pthread_mutex_lock(&s->retired_mu);
  size_t j = 0;
  for (size_t i = 0; i < s->nretired; i++) {
    cfg_gen *g = s->retired[i];
    /* refs counts the "current" reference too: a retired generation had it dropped already. */
    /* A worker loads `current` and then takes its reference; the one-second grace covers a worker
     * preempted between the two (RCU-style), so a generation is freed only when it has had no
     * reference for at least one gc period after retirement. */
    if (force || (atomic_load(&g->refs) <= 0 && now_ms() - g->retired_ms >= 1000)) {
      log_msg(AIGW_LOG_DEBUG, "config generation %llu released", (unsigned long long)g->id);
      cfg_free(g);
    } else {
      s->retired[j++] = g;
    }
  }
  s->nretired = j;
  pthread_mutex_unlock(&s->retired_mu);
}

int server_reload(server *s, char *msg, size_t msglen) {
  cfg_errors errs = {0};
  cfg_gen *ng = cfg_load(s->config_path, &errs);
  if (!ng) {
    size_t off = (size_t)snprintf(msg, msglen, "reload failed, keeping generation %llu:",
                                  (unsigned long long)((cfg_gen *)atomic_load(&s->current))->id);
    for (cfg_error *e = errs.head; e && off < msglen; e = e->next)
      off += (size_t)snprintf(msg + off, msglen - off, "\n  %s: %s", e->path, e->message);
    cfg_errors_clear(&errs);
    log_msg(AIGW_LOG_ERROR, "%s", msg);
    return -1;
  }
  cfg_gen *old = (cfg_gen *)atomic_load(&s->current);
  if (ng->workers != old->workers || ng->nlisten != old->nlisten)
    log_msg(AIGW_LOG_WARN, "reload: listeners and workers changes take effect at restart");
  ng->id = old->id + 1;
  balance_adopt(ng, old); /* breakers, in-flight counts and latencies carry over by route and target name */
  atomic_store(&s->current, (uintptr_t)ng);
  retire_gen(s, old);
  gen_unref(old); /* the "current" reference */
  snprintf(msg, msglen, "reloaded: generation %llu, %zu routes", (unsigned long long)ng->id,
           ng->nroutes);
  log_msg(AIGW_LOG_INFO, "%s", msg);
  return 0;
}

/* ---- cross-thread posts ---- */

int worker_post(worker *w, void (*fn)(void *, void *), void *a, void *b) {
  post_item *it = malloc(sizeof *it);
  if (!it) return -1;
  it->fn = fn;
  it->a = a;
  it->b = b;
  it->next = NULL;
  pthread_mutex_lock(&w->post_mu);
  if (w->post_tail) w->post_tail->next = it;
  else w->post_head = it;
  w->post_tail = it;
  pthread_mutex_unlock(&w->post_mu);
  uint64_t one = 1;
  ssize_t n = write(w->post_fd, &one, sizeof one);
  (void)n;
  return 0;
}

static void worker_on_post(evutil_socket_t fd, short what, void *arg) {
  worker *w = arg;
  uint64_t v;
  ssize_t n = read(fd, &v, sizeof v);
  (void)n;
  (void)what;
  pthread_mutex_lock(&w->post_mu);
  post_item *it = w->post_head;
  w->post_head = w->post_tail = NULL;
  pthread_mutex_unlock(&w->post_mu);
  while (it) {
    post_item *nx = it->next;
    it->fn(it->a, it->b);
    free(it);
    it = nx;
  }
}

/* ---- connections ---- */

static void set_read_timeout(conn *c, uint32_t ms) {
  if (ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(&c->rev, &tv);
  } else {
    event_add(&c->rev, NULL);
  }
  c->rev_added = 1;
}

static const cfg_limits *conn_limits(conn *c) {
  return &((cfg_gen *)atomic_load(&c->w->srv->current))->limits;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg) {
  (void)l;
  (void)sa;
  (void)salen;
  struct listen_arg *la = arg;
  worker *w = la->w;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  conn *c = calloc(1, sizeof *c);
  if (!c) {
    evutil_closesocket(fd);
    return;
  }
  c->w = w;
  c->fd = fd;
  c->in = evbuffer_new();
  c->out = evbuffer_new();
  if (!c->in || !c->out) {
    if (c->in) evbuffer_free(c->in);
    if (c->out) evbuffer_free(c->out);
    free(c);
    evutil_closesocket(fd);
    return;
  }
  SSL_CTX *ctx = w->srv->tls ? w->srv->tls[la->idx] : NULL;
  if (ctx) {
    c->ssl = SSL_new(ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
      if (c->ssl) SSL_free(c->ssl);
      evbuffer_free(c->in);
      evbuffer_free(c->out);
      free(c);
      evutil_closesocket(fd);
      return;
    }
    SSL_set_accept_state(c->ssl);
  }
  c->state = CS_HEAD;
  c->keep_alive = 1;
  event_assign(&c->rev, w->base, fd, EV_READ | EV_PERSIST, conn_on_read, c);
  event_assign(&c->wev, w->base, fd, EV_WRITE | EV_PERSIST, conn_on_write, c);
  event_assign(&c->close_ev, w->base, -1, 0, on_deferred_close, c);
  c->next = w->conns;
  if (w->conns) w->conns->prev = c;
  w->conns = c;
  w->nconns++;
  set_read_timeout(c, conn_limits(c)->client_header_timeout_ms);
}

static void on_deferred_close(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  conn_close(arg);
}

static void conn_write_failed(conn *c) {
  if (c->write_failed) return;
  c->write_failed = 1;
  c->peer_closed = 1;
  evbuffer_drain(c->out, evbuffer_get_length(c->out));
  if (c->wev_added) {
    event_del(&c->wev);
    c->wev_added = 0;
  }
  event_active(&c->close_ev, EV_TIMEOUT, 1);
}

static void conn_close(conn *c) {
  worker *w = c->w;
  event_del(&c->close_ev);
  if (c->req) {
    struct aigw_req *r = c->req;
    c->req = NULL;
    r->c = NULL;
    req_client_gone(r);
  }
  if (c->rev_added) event_del(&c->rev);
  if (c->wev_added) event_del(&c->wev);
  if (c->ssl) {
    if (!c->peer_closed) SSL_shutdown(c->ssl); /* best effort close_notify, non-blocking */
    SSL_free(c->ssl);
  }
  evutil_closesocket(c->fd);
  evbuffer_free(c->in);
  evbuffer_free(c->out);
  free(c->body);
  if (c->prev) c->prev->next = c->next;
  else w->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  w->nconns--;
  free(c);
}

void conn_abort(conn *c) { conn_close(c); }

size_t conn_out_pending(conn *c) { return evbuffer_get_length(c->out); }

/* Writes what it can now; arms the write event only when the socket is full. Returns -1 when the
 * connection was closed (write error, or everything written and close requested). */
/* TLS write of the first evbuffer segment; returns like evbuffer_write (errno EAGAIN when the
 * socket is full). */
static int tls_write(conn *c) {
  struct evbuffer_iovec v;
  if (evbuffer_peek(c->out, -1, NULL, &v, 1) < 1) return 0;
  size_t len = v.iov_len > (1u << 20) ? (1u << 20) : v.iov_len;
  ERR_clear_error();
  int n = SSL_write(c->ssl, v.iov_base, (int)len);
  if (n > 0) {
    evbuffer_drain(c->out, (size_t)n);
    return n;
  }
  int e = SSL_get_error(c->ssl, n);
  errno = (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) ? EAGAIN : EPIPE;
  return -1;
}

static int conn_flush(conn *c) {
  while (evbuffer_get_length(c->out) > 0) {
    int n = c->ssl ? tls_write(c) : evbuffer_write(c->out, c->fd);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        if (!c->wev_added) {
          uint32_t ms = conn_limits(c)->send_timeout_ms;
          struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
          event_add(&c->wev, ms ? &tv : NULL);
          c->wev_added = 1;
        }
        return 0;
      }
      /* Never close from inside a write: the pipeline may be mid-operation on this connection's
       * request. Drop the output and close from the loop. */
      conn_write_failed(c);
      return -1;
    }
    if (n == 0) break;
  }
  if (c->wev_added) {
    event_del(&c->wev);
    c->wev_added = 0;
  }
  if (c->req) req_out_drained(c->req);
  else if (c->close_after_write) {
    if (!c->ssl && !c->peer_closed && !c->lingering) {
      /* Lingering close: a client still sending its (refused) body would get a reset that
       * destroys the answer we just sent; shut our side, discard its bytes briefly, then close. */
      c->lingering = 1;
      shutdown(c->fd, SHUT_WR);
      set_read_timeout(c, 2000);
      return 0;
    }
    if (!c->lingering) {
      conn_close(c);
      return -1;
    }
  }
  return 0;
}

void conn_send(conn *c, struct evbuffer *buf) {
  if (c->write_failed) {
    evbuffer_drain(c->out, evbuffer_get_length(c->out));
    if (buf) evbuffer_drain(buf, evbuffer_get_length(buf));
    return;
  }
  if (buf) evbuffer_add_buffer(c->out, buf);
  if (!c->wev_added) conn_flush(c);
}

static void conn_on_write(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  conn *c = arg;
  if (what & EV_TIMEOUT) {
    log_msg(AIGW_LOG_INFO, "client read nothing for %u ms; connection dropped",
            conn_limits(c)->send_timeout_ms);
    conn_close(c);
    return;
  }
  /* the event stays added (persist) while data remains; conn_flush deletes it when empty */
  c->wev_added = 1;
  conn_flush(c);
}

void conn_write_response_head(conn *c, int status, const hdr_list *hdrs, int chunked, uint64_t clen,
                              const char *reqid) {
  headbuf hb;
  hb.out = c->out;
  hb.n = 0;
  const char *reason = status_reason(status);
  hb_lit(&hb, "HTTP/1.1 ");
  hb_u64(&hb, (uint64_t)(status > 0 ? status : 0));
  hb_lit(&hb, " ");
  hb_add(&hb, reason, strlen(reason));
  hb_lit(&hb, "\r\n");
  if (hdrs) {
    for (size_t i = 0; i < hdrs->n; i++) {
      const hdr *h = &hdrs->v[i];
      hb_add(&hb, h->name.p, h->name.n);
      hb_lit(&hb, ": ");
      hb_add(&hb, h->value.p, h->value.n);
      hb_lit(&hb, "\r\n");
    }
  }
  /* chunked: 0 = content-length, 1 = chunked, 2 = neither (HTTP/1.0 stream delimited by close) */
  if (chunked == 1) {
    hb_lit(&hb, "transfer-encoding: chunked\r\n");
  } else if (chunked == 0) {
    hb_lit(&hb, "content-length: ");
    hb_u64(&hb, clen);
    hb_lit(&hb, "\r\n");
  }
  if (reqid) {
    hb_lit(&hb, "x-request-id: ");
    hb_add(&hb, reqid, strlen(reqid));
    hb_lit(&hb, "\r\n");
  }
  if (!c->keep_alive) hb_lit(&hb, "connection: close\r\n");
  hb_lit(&hb, "\r\n");
  hb_done(&hb);
}

/* A response the connection layer itself sends (parse errors, limits): JSON in OpenAI's shape. */
static void conn_error(conn *c, int status, const char *type, const char *msg) {
  char body[512];
  int n = snprintf(body, sizeof body, "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":null}}",
                   msg, type);
  hdr_list h = {0};
  hdr one = {AIGW_STR("content-type"), AIGW_STR("application/json")};
  h.v = &one;
  h.n = 1;
  c->keep_alive = 0;
  c->close_after_write = 1;
  c->state = CS_CLOSING;
  conn_write_response_head(c, status, &h, 0, (uint64_t)n, NULL);
  evbuffer_add(c->out, body, (size_t)n);
  if (c->rev_added) {
    event_del(&c->rev);
    c->rev_added = 0;
  }
  conn_flush(c);
}

void conn_request_done(conn *c) {
  c->req = NULL;
  if (c->write_failed) {
    free(c->body);
    c->body = NULL;
    conn_close(c);
    return;
  }
  free(c->body);
  c->body = NULL;
  c->body_len = c->body_cap = 0;
  if (!c->keep_alive || c->w->draining) {
    int body_unread = c->state == CS_BODY; /* answered (413, 408) before the client finished sending */
    c->keep_alive = 0;
    c->close_after_write = 1;
    c->state = CS_CLOSING;
    if (evbuffer_get_length(c->out) == 0) {
      if (body_unread && !c->ssl && !c->peer_closed && !c->lingering) {
        /* the answer already left: close lingering, as conn_flush does when it leaves later, so
         * the client's unread bytes do not turn our close into a reset that destroys it */
        c->lingering = 1;
        shutdown(c->fd, SHUT_WR);
        set_read_timeout(c, 2000);
        return;
      }
      conn_close(c);
    }
    return;
  }
  c->state = CS_HEAD;
  set_read_timeout(c, evbuffer_get_length(c->in) ? conn_limits(c)->client_header_timeout_ms
                                                 : conn_limits(c)->keepalive_timeout_ms);
  if (evbuffer_get_length(c->in)) conn_process(c);
}

/* Reads and decrypts all that is available; returns bytes added, 0 on close, -1 with errno. */
static int tls_read(conn *c) {
  int total = 0;
  for (;;) {
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(c->in, 16384, &v, 1) < 1) {
      errno = ENOMEM;
      return -1;
    }
    ERR_clear_error();
    int n = SSL_read(c->ssl, v.iov_base, (int)v.iov_len);
    if (n > 0) {
      v.iov_len = (size_t)n;
      evbuffer_commit_space(c->in, &v, 1);
      total += n;
      if (total >= 65536) return total;
      continue;
    }
    v.iov_len = 0;
    evbuffer_commit_space(c->in, &v, 1);
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (total) return total;
      errno = EAGAIN;
      return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return total ? total : 0;
    if (total) return total;
    errno = ECONNRESET;
    return -1;
  }
}

static void conn_on_read(evutil_socket_t fd, short what, void *arg) {
  conn *c = arg;
  if (c->lingering) {
    char sink[16384];
    ssize_t n = (what & EV_TIMEOUT) ? 0 : read(fd, sink, sizeof sink);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) conn_close(c);
    return;
  }
  if (what & EV_TIMEOUT) {
    if (c->state == CS_HEAD && evbuffer_get_length(c->in) == 0) {
      conn_close(c); /* idle keep-alive connection */
    } else if (c->state == CS_BODY && c->req) {
      /* the request exists: answer through it so that it is logged and released */
      c->keep_alive = 0;
      c->req->keep_alive = 0;
      if (c->rev_added) {
        event_del(&c->rev);
        c->rev_added = 0;
      }
      req_respond_error(c->req, 408, "invalid_request_error", "request_timeout",
                        "request body not received within client_body_timeout_ms");
    } else if (c->state == CS_HEAD || c->state == CS_BODY) {
      conn_error(c, 408, "invalid_request_error", "request not received in time");
    }
    return;
  }
  if (c->state == CS_BUSY && evbuffer_get_length(c->in) > 65536) {
    /* a pipelining client far ahead of us: stop reading until this request is answered; a
     * disconnect will then show as a write error */
    event_del(&c->rev);
    c->rev_added = 0;
    return;
  }
  int n;
  if (c->ssl) {
    n = tls_read(c);
    if (c->wev_added == 0 && evbuffer_get_length(c->out)) conn_flush(c); /* handshake may unblock writes */
  } else {
    /* read() into reserved space: evbuffer_read would ask FIONREAD first (one more syscall) */
    struct evbuffer_iovec v;
    n = -1;
    if (evbuffer_reserve_space(c->in, 16384, &v, 1) == 1) {
      ssize_t got = read(fd, v.iov_base, v.iov_len);
      v.iov_len = got > 0 ? (size_t)got : 0;
      evbuffer_commit_space(c->in, &v, 1);
      n = (int)got;
    }
  }
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    c->peer_closed = 1;
    conn_close(c);
    return;
  }
  if (n < 0) return;
  if (c->state == CS_HEAD || c->state == CS_BODY) conn_process(c);
}

static int rebase_head(struct aigw_req *r, conn *c, const char *src) {
  char *copy = arena_alloc(&r->pool, c->head_len + 1);
  if (!copy) return -1;
  memcpy(copy, src, c->head_len);
  ptrdiff_t d = copy - src;
  h1_request *h = &c->h1;
#define RB(p) \
  if (p) p += d
  RB(h->method);
  RB(h->target);
  RB(h->path);
  RB(h->host);
  for (size_t i = 0; i < h->nheaders; i++) {
    RB(h->headers[i].name);
    RB(h->headers[i].value);
  }
#undef RB
  return 0;
}

static void conn_dispatch(conn *c) {
  struct aigw_req *r = c->req;
  c->state = CS_BUSY;
  r->creq.body = c->body;
  r->creq.body_len = c->body_len;
  r->creq.body_owned = 1;
  c->body = NULL; /* the request owns it now */
  c->body_len = c->body_cap = 0;
  set_read_timeout(c, 0); /* keep watching for a disconnect, no deadline */
  req_start(r);
}

static void conn_process(conn *c) {
  const cfg_limits *lim = conn_limits(c);
  while (c->state == CS_HEAD || c->state == CS_BODY) {
    size_t avail = evbuffer_get_length(c->in);
    if (c->state == CS_HEAD) {
      if (avail == 0) return;
      if (c->w->draining) {
        conn_error(c, 503, "server_error", "server is shutting down");
        return;
      }
      size_t look = avail < lim->max_header_bytes ? avail : lim->max_header_bytes;
      const char *p = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)look);
      int status = 0;
      const char *reason = NULL;
      int hl = h1_parse_request(p, look, lim->max_header_bytes, &c->h1, &status, &reason);
      if (hl == 0) {
        if (look >= lim->max_header_bytes) {
          conn_error(c, 431, "invalid_request_error", "request header too large");
          return;
        }
        /* the deadline counts from the head's first byte: a client dribbling bytes cannot
         * extend it (slowloris) */
        uint64_t now = now_ms();
        if (!c->head_deadline_ms) c->head_deadline_ms = now + lim->client_header_timeout_ms;
        set_read_timeout(c, c->head_deadline_ms > now ? (uint32_t)(c->head_deadline_ms - now) : 1);
        return;
      }
      c->head_deadline_ms = 0;
      if (hl < 0) {
        conn_error(c, status ? status : 400, "invalid_request_error",
                   reason ? reason : "malformed request");
        return;
      }
      c->head_len = (size_t)hl;
      if (atomic_load(&c->w->srv->total_active) >= (long)lim->max_concurrent_requests) {
        evbuffer_drain(c->in, c->head_len);
        conn_error(c, 503, "server_error", "too many concurrent requests; retry later");
        return;
      }
      struct aigw_req *r = req_new(c, c->w);
      if (!r || rebase_head(r, c, p) < 0) {
        if (r) {
          c->req = r;
          req_finish(r);
        }
        conn_error(c, 500, "server_error", "out of memory");
        return;
      }
      c->req = r;
      c->keep_alive = c->h1.keep_alive && !c->w->draining;
      r->keep_alive = c->keep_alive;
      r->http10 = c->h1.version_minor == 0;
      evbuffer_drain(c->in, c->head_len);
      if (c->h1.content_length > 0 && (uint64_t)c->h1.content_length > lim->max_body_bytes) {
        c->keep_alive = 0;
        req_respond_error(r, 413, "invalid_request_error", "request_too_large",
                          "request body exceeds the configured max_body_bytes");
        return;
      }
      c->chunked = c->h1.chunked;
      c->body_need = c->h1.content_length > 0 ? (uint64_t)c->h1.content_length : 0;
      if (c->chunked) h1_chunked_init(&c->chk);
      if (c->body_need || c->chunked) {
        if (c->h1.expect_continue) evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25), conn_flush(c);
        size_t cap = c->body_need ? (size_t)c->body_need : 16384;
        c->body = malloc(cap + 1);
        if (!c->body) {
          c->keep_alive = 0;
          req_respond_error(r, 500, "server_error", NULL, "out of memory");
          return;
        }
        c->body_cap = cap;
        c->body_len = 0;
        c->state = CS_BODY;
        set_read_timeout(c, lim->client_body_timeout_ms);
        continue;
      }
      conn_dispatch(c);
      return;
    }
    /* CS_BODY */
    if (avail == 0) return;
    if (!c->chunked) {
      size_t take = avail < c->body_need ? avail : (size_t)c->body_need;
      evbuffer_remove(c->in, c->body + c->body_len, take);
      c->body_len += take;
      c->body_need -= take;
      if (c->body_need) return;
      c->body[c->body_len] = 0;
      conn_dispatch(c);
      return;
    }
    const char *p = (const char *)evbuffer_pullup(c->in, -1);
    if (c->body_len + avail > c->body_cap) {
      size_t cap = c->body_cap * 2 > c->body_len + avail ? c->body_cap * 2 : c->body_len + avail;
      char *nb = realloc(c->body, cap + 1);
      if (!nb) {
        c->keep_alive = 0;
        req_respond_error(c->req, 500, "server_error", NULL, "out of memory");
        return;
      }
      c->body = nb;
      c->body_cap = cap;
    }
    size_t out_len = 0;
    int done = 0;
    long used = h1_chunked_decode(&c->chk, p, avail, c->body + c->body_len, &out_len, &done);
    if (used < 0) {
      c->keep_alive = 0;
      req_respond_error(c->req, 400, "invalid_request_error", NULL, "malformed chunked request body");
      return;
    }
    c->body_len += out_len;
    evbuffer_drain(c->in, (size_t)used);
    if (c->body_len > lim->max_body_bytes) {
      c->keep_alive = 0;
      req_respond_error(c->req, 413, "invalid_request_error", "request_too_large",
                        "request body exceeds the configured max_body_bytes");
      return;
    }
    if (!done) return;
    c->body[c->body_len] = 0;
    conn_dispatch(c);
    return;
  }
}

/* ---- workers ---- */

static int make_listener_fd(const cfg_listen *l, int reuseport, char *err, size_t errlen) {
  struct sockaddr_storage ss;
  int sslen = sizeof ss;
  char spec[300];
  if (strchr(l->address, ':')) snprintf(spec, sizeof spec, "[%s]:%u", l->address, l->port);
  else snprintf(spec, sizeof spec, "%s:%u", l->address, l->port);
  if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) < 0) {
    snprintf(err, errlen, "listen address '%s' is not an IP address", l->address);
    return -1;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "socket: %s", strerror(errno));
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) < 0) {
    snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(errno));
    close(fd);
    return -1;
  }
  if (listen(fd, 4096) < 0) {
    snprintf(err, errlen, "listen %s: %s", spec, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  event_base_dispatch(w->base);
  return NULL;
}

static void worker_stop_cb(void *a, void *b) {
  (void)b;
  worker *w = a;
  event_base_loopbreak(w->base);
}

static void worker_drain_cb(void *a, void *b) {
  (void)b;
  worker *w = a;
  w->draining = 1;
  /* close the listening sockets: a connection attempt during the drain is refused at once
   * instead of waiting in the backlog until we exit */
  for (size_t i = 0; i < w->nlisteners; i++) evconnlistener_free(w->listeners[i]);
  w->nlisteners = 0;
  conn *c = w->conns;
  while (c) {
    conn *nx = c->next;
    c->keep_alive = 0;
    if (c->state == CS_HEAD && evbuffer_get_length(c->in) == 0) conn_close(c);
    c = nx;
  }
}

static int worker_init(server *s, worker *w, uint32_t id, cfg_gen *g, char *err, size_t errlen) {
  w->id = id;
  w->srv = s;
  struct event_config *ec = event_config_new();
  event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
  w->base = event_base_new_with_config(ec);
  event_config_free(ec);
  if (!w->base) {
    snprintf(err, errlen, "event_base_new failed");
    return -1;
  }
  w->post_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->post_fd < 0) {
    snprintf(err, errlen, "eventfd: %s", strerror(errno));
    return -1;
  }
  event_assign(&w->post_ev, w->base, w->post_fd, EV_READ | EV_PERSIST, worker_on_post, w);
  event_add(&w->post_ev, NULL);
  w->listeners = calloc(g->nlisten, sizeof *w->listeners);
  w->largs = calloc(g->nlisten, sizeof *w->largs);
  if (!w->listeners || !w->largs) return -1;
  for (size_t i = 0; i < g->nlisten; i++) {
    int fd = make_listener_fd(&g->listen[i], 1, err, errlen);
    if (fd < 0) return -1;
    w->largs[i].w = w;
    w->largs[i].idx = i;
    w->listeners[i] = evconnlistener_new(w->base, on_accept, &w->largs[i], LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    if (!w->listeners[i]) {
      close(fd);
      snprintf(err, errlen, "evconnlistener_new failed");
      return -1;
    }
    w->nlisteners++;
  }
  observe_worker_init(w);
  if (upstream_init(w) < 0) {
    snprintf(err, errlen, "libcurl multi init failed");
    return -1;
  }
  health_init(w);
  return 0;
}

static void worker_destroy(worker *w) {
  while (w->conns) conn_close(w->conns);
  health_shutdown(w);
  rstore_shutdown(w);
  upc_shutdown(w);
  upstream_shutdown(w);
  if (w->alog) {
    if (w->alog_pending) event_del(&w->alog_ev);
    observe_worker_flush(w);
    evbuffer_free(w->alog);
    w->alog = NULL;
  }
  for (size_t i = 0; i < w->nlisteners; i++) evconnlistener_free(w->listeners[i]);
  free(w->listeners);
  free(w->largs);
  if (w->post_fd >= 0) {
    event_del(&w->post_ev);
    worker_on_post(w->post_fd, EV_READ, w); /* run what is left (frees the items) */
    close(w->post_fd);
  }
  pthread_mutex_destroy(&w->post_mu);
  if (w->base) event_base_free(w->base);
}

/* ---- main thread: signals, gc, drain ---- */

static void on_gc(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  gc_retired(arg, 0);
}

static void stop_workers(server *s) {
  for (size_t i = 0; i < s->nworkers; i++) worker_post(&s->workers[i], worker_stop_cb, &s->workers[i], NULL);
  event_base_loopbreak(s->main_base);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  server *s = arg;
  long active = atomic_load(&s->total_active);
  if (active == 0 || now_ms() >= s->drain_deadline_ms) {
    if (active) log_msg(AIGW_LOG_WARN, "drain deadline reached with %ld requests in flight; closing them", active);
    else log_msg(AIGW_LOG_INFO, "drained; exiting");
    stop_workers(s);
  }
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)what;
  server *s = arg;
  if (sig == SIGHUP) {
    char msg[4096];
    server_reload(s, msg, sizeof msg);
    return;
  }
  if (atomic_exchange(&s->draining, 1)) {
    log_msg(AIGW_LOG_WARN, "second signal: exiting now");
    stop_workers(s);
    return;
  }
  cfg_gen *g = (cfg_gen *)atomic_load(&s->current);
  s->drain_deadline_ms = now_ms() + g->drain_timeout_ms;
  log_msg(AIGW_LOG_INFO, "signal %d: draining %ld in-flight requests (up to %u ms)", (int)sig,
          atomic_load(&s->total_active), g->drain_timeout_ms);
  admin_stop(s);
  for (size_t i = 0; i < s->nworkers; i++) worker_post(&s->workers[i], worker_drain_cb, &s->workers[i], NULL);
  s->drain_timer = event_new(s->main_base, -1, EV_PERSIST, on_drain_tick, s);
  struct timeval tv = {0, 50000};
  event_add(s->drain_timer, &tv);
}

int server_run(server *s) {
  int rc = -1;
  char err[512] = "";
  cfg_gen *g = (cfg_gen *)atomic_load(&s->current);
  /* g may be retired and freed by a reload while we run: keep what the teardown needs */
  const size_t nalloc = g->workers, nlisten = g->nlisten;
  signal(SIGPIPE, SIG_IGN);
  s->main_base = event_base_new();
  if (!s->main_base) return -1;
  pthread_mutex_init(&s->retired_mu, NULL);
  s->started_ms = now_ms();
  /* Probe every address without SO_REUSEPORT first: a stale process holding the port with
   * SO_REUSEPORT would otherwise silently share our traffic. */
  for (size_t i = 0; i < g->nlisten; i++) {
    int fd = make_listener_fd(&g->listen[i], 0, err, sizeof err);
    if (fd < 0) {
      log_msg(AIGW_LOG_ERROR, "%s", err);
      goto done;
    }
    close(fd);
  }
  for (size_t i = 0; i < g->nlisten; i++) {
    if (!g->listen[i].tls_cert) continue;
    if (!s->tls && !(s->tls = calloc(g->nlisten, sizeof *s->tls))) goto done;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) goto done;
    s->tls[i] = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, g->listen[i].tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, g->listen[i].tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      char eb[256];
      ERR_error_string_n(ERR_get_error(), eb, sizeof eb);
      log_msg(AIGW_LOG_ERROR, "TLS for %s:%u: cannot use cert %s / key %s: %s", g->listen[i].address,
              g->listen[i].port, g->listen[i].tls_cert, g->listen[i].tls_key, eb);
      goto done;
    }
  }
  s->nworkers = g->workers;
  s->workers = calloc(s->nworkers, sizeof *s->workers);
  if (!s->workers) goto done;
  for (size_t i = 0; i < s->nworkers; i++) {
    s->workers[i].post_fd = -1;
    pthread_mutex_init(&s->workers[i].post_mu, NULL);
  }
  for (size_t i = 0; i < s->nworkers; i++) {
    if (worker_init(s, &s->workers[i], (uint32_t)i, g, err, sizeof err) < 0) {
      log_msg(AIGW_LOG_ERROR, "worker %zu: %s", i, err);
      goto done;
    }
  }
  if (admin_start(s, g) < 0) goto done;
  s->sig_term = evsignal_new(s->main_base, SIGTERM, on_signal, s);
  s->sig_int = evsignal_new(s->main_base, SIGINT, on_signal, s);
  s->sig_hup = evsignal_new(s->main_base, SIGHUP, on_signal, s);
  event_add(s->sig_term, NULL);
  event_add(s->sig_int, NULL);
  event_add(s->sig_hup, NULL);
  s->gc_timer = event_new(s->main_base, -1, EV_PERSIST, on_gc, s);
  struct timeval one_s = {1, 0};
  event_add(s->gc_timer, &one_s);
  for (size_t i = 0; i < s->nworkers; i++) {
    if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
      log_msg(AIGW_LOG_ERROR, "cannot start worker thread %zu", i);
      s->nworkers = i;
      stop_workers(s);
      break;
    }
  }
  for (size_t i = 0; i < g->nlisten; i++)
    log_msg(AIGW_LOG_INFO, "aigw %s listening on %s://%s:%u with %zu workers (config generation %llu)",
            AIGW_VERSION, g->listen[i].tls_cert ? "https" : "http", g->listen[i].address, g->listen[i].port, s->nworkers,
            (unsigned long long)g->id);
  event_base_dispatch(s->main_base);
  for (size_t i = 0; i < s->nworkers; i++) pthread_join(s->workers[i].thread, NULL);
  rc = 0;
done:
  admin_stop(s);
  if (s->workers) {
    for (size_t i = 0; i < nalloc; i++) worker_destroy(&s->workers[i]);
    free(s->workers);
  }
  if (s->sig_term) event_free(s->sig_term);
  if (s->sig_int) event_free(s->sig_int);
  if (s->sig_hup) event_free(s->sig_hup);
  if (s->gc_timer) event_free(s->gc_timer);
  if (s->drain_timer) event_free(s->drain_timer);
  gc_retired(s, 1);
  free(s->retired);
  if (s->tls) {
    for (size_t i = 0; i < nlisten; i++)
      if (s->tls[i]) SSL_CTX_free(s->tls[i]);
    free(s->tls);
  }
  event_base_free(s->main_base);
  pthread_mutex_destroy(&s->retired_mu);
  return rc;
}
