/* upclient.c - the purpose-built HTTP/1.1 upstream client: pooled keep-alive connections to
 * plain-HTTP upstreams given by IP address or "localhost" (local model servers, sidecars, the
 * benchmark), beside libcurl, which keeps everything else (TLS, HTTP/2, names needing DNS, proxies).
 *
 * Why: with libcurl a proxied request cost two poll() calls (connection liveness checks), its own
 * allocations and per-transfer bookkeeping; on this path a request is one writev() and, usually,
 * one read(). Idle pooled connections keep their read event registered, so reuse costs no
 * epoll_ctl, and a server closing an idle connection is noticed at once.
 *
 * Owners: the connection feeds a sink (upclient.h): the proxied request's (upc_start below, whose
 * functions are the ones libcurl's callbacks call: upstream_on_header_line, upstream_on_body,
 * upstream_transfer_done, so streaming, deadlines and errors behave the same) or a plugin
 * call-out's (calls.c). Pools are per worker and per address, shared by both. A request that fails
 * on a reused connection before any response byte arrived is retried once on a new connection
 * (the keep-alive race every HTTP client handles). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "core.h"
#include "upclient.h"

enum { UC_CONNECTING, UC_SENDING, UC_HEAD, UC_BODY, UC_IDLE };

typedef struct uppool uppool;

struct upconn {
  worker *w;
  uppool *pool;
  int fd;
  struct event rev, wev;
  int rev_added, wev_added;
  struct evbuffer *in, *out;
  /* the exchange (NULL sink: idle or being torn down) */
  const upc_sink *sink;
  void *ctx;
  upconn **slot;
  const char *path; /* into the owner's URL; kept for the one retry */
  size_t pathlen;
  uint32_t connect_ms;
  int head;
  int state;
  int reused;
  int got_bytes;
  int paused;
  int status;
  int chunked, until_close, keep_alive, has_clen;
  uint64_t clen_left;
  h1_chunked chk;
  uint64_t idle_since;
  struct upconn *next;
};

struct uppool {
  char key[72];
  char host[80]; /* the Host header's value */
  size_t hostlen;
  struct sockaddr_storage addr;
  socklen_t alen;
  struct upconn *idle;
  size_t nidle;
  uppool *next;
};

#define UC_MAX_IDLE 1024
#define UC_IDLE_MS 60000

static void uc_on_read(evutil_socket_t fd, short what, void *arg);
static void uc_on_write(evutil_socket_t fd, short what, void *arg);
static int uc_send(upconn *c);

/* ---- URL and pool ---- */

typedef struct {
  char host[64];
  uint16_t port;
  const char *path; /* into the URL */
  size_t pathlen;   /* up to a '#' fragment */
} url_parts;

/* Accepts http://IPv4[:port]/..., http://[IPv6][:port]/..., http://localhost[:port]/... only. */
static int parse_url(const char *url, url_parts *u, struct sockaddr_storage *ss, socklen_t *alen) {
  if (strncmp(url, "http://", 7)) return -1;
  const char *h = url + 7, *hend, *p;
  if (*h == '[') {
    hend = strchr(h, ']');
    if (!hend) return -1;
    p = hend + 1;
    h++;
  } else {
    hend = h + strcspn(h, ":/?#");
    p = hend;
  }
  size_t hl = (size_t)(hend - h);
  if (!hl || hl >= sizeof u->host) return -1;
  memcpy(u->host, h, hl);
  u->host[hl] = 0;
  u->port = 80;
  if (*p == ':') {
    char *end;
    long port = strtol(p + 1, &end, 10);
    if (port <= 0 || port > 65535) return -1;
    u->port = (uint16_t)port;
    p = end;
  }
  if (*p && *p != '/' && *p != '?' && *p != '#') return -1;
  u->path = *p && *p != '#' ? p : "/";
  u->pathlen = strcspn(u->path, "#");
  if (strchr(u->host, '@')) return -1;
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (!strcmp(u->host, "localhost") || inet_pton(AF_INET, u->host, &a4->sin_addr) == 1) {
    if (!strcmp(u->host, "localhost")) a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(u->port);
    *alen = sizeof *a4;
    return 0;
  }
  if (inet_pton(AF_INET6, u->host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(u->port);
    *alen = sizeof *a6;
    return 0;
  }
  return -1; /* a name: libcurl resolves it without blocking */
}

static uppool *pool_get(worker *w, const url_parts *u, const struct sockaddr_storage *ss, socklen_t alen) {
  char key[72];
  snprintf(key, sizeof key, "%.63s:%u", u->host, (unsigned)u->port);
  for (uppool *p = w->uppools; p; p = p->next)
    if (!strcmp(p->key, key)) return p;
  uppool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  memcpy(p->key, key, sizeof key);
  const char *lb = strchr(u->host, ':') ? "[" : "", *rb = *lb ? "]" : "";
  int hn = u->port != 80 ? snprintf(p->host, sizeof p->host, "%s%s%s:%u", lb, u->host, rb, (unsigned)u->port)
                         : snprintf(p->host, sizeof p->host, "%s%s%s", lb, u->host, rb);
  p->hostlen = hn > 0 && (size_t)hn < sizeof p->host ? (size_t)hn : strlen(p->host);
  p->addr = *ss;
  p->alen = alen;
  p->next = w->uppools;
  w->uppools = p;
  return p;
}

/* ---- connections ---- */

static void uc_close(upconn *c) {
  if (c->rev_added) event_del(&c->rev);
  if (c->wev_added) event_del(&c->wev);
  if (c->fd >= 0) close(c->fd);
  if (c->in) evbuffer_free(c->in);
  if (c->out) evbuffer_free(c->out);
  free(c);
}

static void pool_remove_idle(upconn *c) {
  uppool *p = c->pool;
  for (upconn **pp = &p->idle; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      p->nidle--;
      c->next = NULL;
      return;
    }
}

static upconn *uc_new(worker *w, uppool *p) {
  upconn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->w = w;
  c->pool = p;
  c->in = evbuffer_new();
  c->out = evbuffer_new();
  c->fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (!c->in || !c->out || c->fd < 0) {
    uc_close(c);
    return NULL;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  event_assign(&c->rev, w->base, c->fd, EV_READ | EV_PERSIST, uc_on_read, c);
  event_assign(&c->wev, w->base, c->fd, EV_WRITE | EV_PERSIST, uc_on_write, c);
  return c;
}

/* Detaches the connection from its owner: back to the pool when reusable (the response read
 * exactly, the request sent completely), else closed. */
static void uc_release(upconn *c, int reusable) {
  if (c->slot) *c->slot = NULL;
  c->slot = NULL;
  c->sink = NULL;
  c->ctx = NULL;
  if (!reusable || c->pool->nidle >= UC_MAX_IDLE || evbuffer_get_length(c->in) || evbuffer_get_length(c->out) ||
      c->w->draining) {
    uc_close(c);
    return;
  }
  if (c->wev_added) {
    event_del(&c->wev);
    c->wev_added = 0;
  }
  if (!c->rev_added) {
    event_add(&c->rev, NULL);
    c->rev_added = 1;
  }
  c->state = UC_IDLE;
  c->idle_since = now_ms();
  c->next = c->pool->idle;
  c->pool->idle = c;
  c->pool->nidle++;
}

/* Ends the exchange with an error and tells the owner. */
static void uc_fail(upconn *c, CURLcode rc, const char *msg) {
  const upc_sink *s = c->sink;
  void *ctx = c->ctx;
  uc_release(c, 0);
  if (s) s->on_done(ctx, rc, msg);
}

/* ---- sending ---- */

static int uc_send(upconn *c) {
  while (evbuffer_get_length(c->out)) {
    int n = evbuffer_write(c->out, c->fd);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        if (!c->wev_added) {
          event_add(&c->wev, NULL);
          c->wev_added = 1;
        }
        return 0;
      }
      return -1;
    }
  }
  if (c->wev_added) {
    event_del(&c->wev);
    c->wev_added = 0;
  }
  c->state = UC_HEAD;
  if (!c->rev_added) {
    event_add(&c->rev, NULL);
    c->rev_added = 1;
  }
  return 0;
}

static void uc_on_write(evutil_socket_t fd, short what, void *arg) {
  upconn *c = arg;
  if (c->state == UC_CONNECTING) {
    char msg[160];
    if (what & EV_TIMEOUT) {
      snprintf(msg, sizeof msg, "connect to %s timed out after %u ms", c->pool->key, c->connect_ms);
      uc_fail(c, CURLE_OPERATION_TIMEDOUT, msg);
      return;
    }
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      snprintf(msg, sizeof msg, "connect to %s failed: %s", c->pool->key, strerror(err));
      uc_fail(c, CURLE_COULDNT_CONNECT, msg);
      return;
    }
    c->state = UC_SENDING;
  }
  if (uc_send(c) < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "sending to %s failed: %s", c->pool->key, strerror(errno));
    uc_fail(c, CURLE_SEND_ERROR, msg);
  }
}

/* Has the sink write the request and sends what the socket takes: 0, -1 send error (errno), -2
 * the sink could not build it. */
static int uc_start_on(upconn *c) {
  c->status = 0;
  c->got_bytes = 0;
  c->chunked = c->until_close = c->has_clen = 0;
  c->keep_alive = 1;
  c->clen_left = 0;
  c->paused = 0;
  struct evbuffer *o = c->out;
  evbuffer_drain(o, evbuffer_get_length(o));
  if (c->sink->build(c->ctx, o, c->path, c->pathlen, c->pool->host, c->pool->hostlen) < 0) return -2;
  if (c->state == UC_CONNECTING) {
    if (!c->wev_added) {
      struct timeval tv = {c->connect_ms / 1000, (c->connect_ms % 1000) * 1000};
      event_add(&c->wev, &tv);
      c->wev_added = 1;
    }
    return 0;
  }
  c->state = UC_SENDING;
  return uc_send(c);
}

/* Starts the exchange on a pooled connection (unless fresh) or a new one. Returns 0 started, or
 * failed with on_done run; 1 nothing happened (out of memory). */
static int uc_begin(worker *w, uppool *p, const char *path, size_t pathlen, const upc_sink *s, void *ctx, upconn **slot,
                    uint32_t connect_ms, int head, int fresh) {
  upconn *c = NULL;
  if (!fresh) {
    while (p->idle) { /* LIFO: the most recently used connection is the least likely closed */
      c = p->idle;
      p->idle = c->next;
      p->nidle--;
      c->next = NULL;
      if (now_ms() - c->idle_since < UC_IDLE_MS) break;
      uc_close(c);
      c = NULL;
    }
  }
  char msg[160];
  if (c) {
    c->reused = 1;
    c->state = UC_SENDING;
  } else {
    c = uc_new(w, p);
    if (!c) return 1;
    c->reused = 0;
    c->state = UC_CONNECTING;
  }
  c->sink = s;
  c->ctx = ctx;
  c->slot = slot;
  *slot = c;
  c->path = path;
  c->pathlen = pathlen;
  c->connect_ms = connect_ms;
  c->head = head;
  if (!c->reused && connect(c->fd, (struct sockaddr *)&p->addr, p->alen) < 0 && errno != EINPROGRESS) {
    snprintf(msg, sizeof msg, "connect to %s failed: %s", p->key, strerror(errno));
    uc_fail(c, CURLE_COULDNT_CONNECT, msg);
    return 0;
  }
  int rc = uc_start_on(c);
  if (rc == -2) {
    uc_fail(c, CURLE_OUT_OF_MEMORY, "out of memory building the request");
    return 0;
  }
  if (rc < 0) {
    snprintf(msg, sizeof msg, "sending to %s failed: %s", p->key, strerror(errno));
    if (c->reused && !fresh) {
      uc_release(c, 0);
      return uc_begin(w, p, path, pathlen, s, ctx, slot, connect_ms, head, 1);
    }
    uc_fail(c, CURLE_SEND_ERROR, msg);
  }
  return 0;
}

/* ---- receiving ---- */

static void uc_complete(upconn *c) {
  const upc_sink *s = c->sink;
  void *ctx = c->ctx;
  uc_release(c, c->keep_alive && !c->until_close);
  s->on_done(ctx, CURLE_OK, NULL);
}

/* Feeds body bytes; returns -1 when the owner aborted the exchange. */
static int deliver(upconn *c, const char *p, size_t n) {
  if (!n) return 0;
  int rc = c->sink->on_body(c->ctx, p, n);
  if (rc == UPC_BODY_OK) return 0;
  if (rc < 0) {
    uc_fail(c, CURLE_WRITE_ERROR, NULL);
    return -1;
  }
  c->paused = 1; /* back-pressure from a slow client */
  if (c->rev_added) {
    event_del(&c->rev);
    c->rev_added = 0;
  }
  return 0;
}

/* Parses the response head at the front of c->in; returns 1 when complete, 0 need more, -1 bad. */
static int parse_head(upconn *c) {
  struct evbuffer_ptr pos = evbuffer_search(c->in, "\r\n\r\n", 4, NULL);
  size_t hl;
  if (pos.pos < 0) {
    if (evbuffer_get_length(c->in) > 65536) return -1;
    return 0;
  }
  hl = (size_t)pos.pos + 4;
  char *h = (char *)evbuffer_pullup(c->in, (ev_ssize_t)hl);
  const char *p = h, *end = h + hl - 2;
  int first = 1;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) break;
    size_t ll = (size_t)(nl + 1 - p);
    if (first) {
      if (ll < 12 || memcmp(p, "HTTP/1.", 7)) return -1;
      int st = atoi(p + 9);
      if (st < 100 || st > 999) return -1;
      c->status = st;
      if (p[7] == '0') c->keep_alive = 0;
      first = 0;
    } else {
      const char *colon = memchr(p, ':', ll);
      if (colon) {
        const char *v = colon + 1, *ve = p + ll;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == '\r' || ve[-1] == '\n' || ve[-1] == ' ')) ve--;
        size_t nn = (size_t)(colon - p), vn = (size_t)(ve - v);
        if (str_ieq(p, nn, "content-length", 14)) c->clen_left = strtoull(v, NULL, 10), c->has_clen = 1;
        else if (str_ieq(p, nn, "transfer-encoding", 17) && vn >= 7 && str_ieq(ve - 7, 7, "chunked", 7)) c->chunked = 1;
        else if (str_ieq(p, nn, "connection", 10) && vn >= 5 && str_ieq(v, 5, "close", 5)) c->keep_alive = 0;
      }
    }
    if (c->status >= 200) c->sink->on_header(c->ctx, p, ll);
    p = nl + 1;
  }
  evbuffer_drain(c->in, hl);
  if (c->status >= 100 && c->status < 200) { /* interim response: the real one follows */
    c->status = 0;
    c->clen_left = 0;
    c->chunked = c->has_clen = 0;
    c->keep_alive = 1;
    return parse_head(c);
  }
  return 1;
}

static void uc_process(upconn *c) {
  if (!c->sink) return;
  if (c->state == UC_HEAD) {
    int rc = parse_head(c);
    if (rc == 0) return;
    if (rc < 0) {
      uc_fail(c, CURLE_WEIRD_SERVER_REPLY, "upstream sent a malformed HTTP response head");
      return;
    }
    c->state = UC_BODY;
    if (c->head || c->status == 204 || c->status == 304) { /* no body, whatever the headers say */
      c->chunked = 0;
      c->clen_left = 0;
    } else if (c->chunked) {
      h1_chunked_init(&c->chk);
    } else if (!c->has_clen) {
      c->until_close = 1; /* no Content-Length: the body runs until the server closes */
    }
    if (!c->chunked && !c->until_close && !c->clen_left) {
      c->sink->on_body(c->ctx, "", 0); /* marks the first byte for an empty body */
      uc_complete(c);
      return;
    }
  }
  if (c->state != UC_BODY || c->paused) return;
  size_t avail = evbuffer_get_length(c->in);
  if (!avail) return;
  char *p = (char *)evbuffer_pullup(c->in, -1);
  if (c->chunked) {
    size_t out = 0;
    int done = 0;
    long used = h1_chunked_decode(&c->chk, p, avail, p, &out, &done);
    if (used < 0) {
      uc_fail(c, CURLE_RECV_ERROR, "upstream sent malformed chunked encoding");
      return;
    }
    if (deliver(c, p, out) < 0) return;
    evbuffer_drain(c->in, (size_t)used);
    if (done) uc_complete(c);
    return;
  }
  size_t take = c->until_close || avail < c->clen_left ? avail : (size_t)c->clen_left;
  if (deliver(c, p, take) < 0) return;
  evbuffer_drain(c->in, take);
  if (!c->until_close) {
    c->clen_left -= take;
    if (!c->clen_left) uc_complete(c);
  }
}

static void uc_on_read(evutil_socket_t fd, short what, void *arg) {
  upconn *c = arg;
  (void)what;
  struct evbuffer_iovec v;
  if (evbuffer_reserve_space(c->in, 16384, &v, 1) != 1) {
    uc_fail(c, CURLE_OUT_OF_MEMORY, "out of memory");
    return;
  }
  ssize_t n = read(fd, v.iov_base, v.iov_len);
  int err = errno;
  v.iov_len = n > 0 ? (size_t)n : 0;
  evbuffer_commit_space(c->in, &v, 1);
  if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)) return;
  if (c->state == UC_IDLE) { /* the server closed (or wrote to) an idle connection */
    pool_remove_idle(c);
    uc_close(c);
    return;
  }
  if (n <= 0) {
    if (c->state == UC_BODY && c->until_close && n == 0) {
      uc_complete(c);
      return;
    }
    if (c->sink && c->reused && !c->got_bytes && c->state <= UC_HEAD) {
      /* the keep-alive race: the server closed the idle connection as we reused it */
      worker *w = c->w;
      uppool *p = c->pool;
      const upc_sink *s = c->sink;
      void *ctx = c->ctx;
      upconn **slot = c->slot;
      const char *path = c->path;
      size_t pathlen = c->pathlen;
      uint32_t cms = c->connect_ms;
      int head = c->head;
      uc_release(c, 0);
      if (uc_begin(w, p, path, pathlen, s, ctx, slot, cms, head, 1) == 0) return;
      s->on_done(ctx, CURLE_RECV_ERROR, "upstream closed a reused connection");
      return;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "upstream %s closed the connection%s%s", c->pool->key, n < 0 ? ": " : "",
             n < 0 ? strerror(err) : "");
    uc_fail(c, CURLE_RECV_ERROR, msg);
    return;
  }
  c->got_bytes = 1;
  uc_process(c);
}

/* ---- interface (upclient.h) ---- */

int upc_open(worker *w, const char *url, const upc_sink *s, void *ctx, upconn **slot, uint32_t connect_ms, int head) {
  url_parts u;
  struct sockaddr_storage ss;
  socklen_t alen;
  if (!url || parse_url(url, &u, &ss, &alen) < 0) return 1;
  uppool *p = pool_get(w, &u, &ss, alen);
  if (!p) return 1;
  return uc_begin(w, p, u.path, u.pathlen, s, ctx, slot, connect_ms ? connect_ms : 10000, head, 0);
}

void upc_close(upconn **slot) {
  upconn *c = *slot;
  if (c) uc_release(c, 0); /* mid-response: the connection cannot be reused */
}

void upc_set_owner(upconn *c, void *ctx, upconn **slot) {
  if (!c) return;
  c->ctx = ctx;
  c->slot = slot;
  *slot = c;
}

void upc_resume(upconn *c) {
  if (!c || !c->paused) return;
  c->paused = 0;
  if (!c->rev_added) {
    event_add(&c->rev, NULL);
    c->rev_added = 1;
  }
  uc_process(c);
}

void upc_shutdown(worker *w) {
  uppool *p = w->uppools;
  while (p) {
    uppool *nx = p->next;
    while (p->idle) {
      upconn *c = p->idle;
      p->idle = c->next;
      uc_close(c);
    }
    free(p);
    p = nx;
  }
  w->uppools = NULL;
}

/* ---- the proxied request's sink (core.h: upc_start, upc_abort, upc_unpause) ---- */

/* The request head as the provider prepared it; the body is referenced, not copied (it stays in
 * the request's memory until the transfer ends). */
static int px_build(void *ctx, struct evbuffer *o, const char *path, size_t pathlen, const char *host, size_t hostlen) {
  struct aigw_req *r = ctx;
  headbuf hb;
  hb.out = o;
  hb.n = 0;
  int is_get = str_ieq(r->method.p, r->method.n, "GET", 3) || r->route->api == AIGW_API_MODELS;
  if (is_get) hb_lit(&hb, "GET ");
  else if (str_ieq(r->method.p, r->method.n, "POST", 4) || r->route->api != AIGW_API_PASSTHROUGH) hb_lit(&hb, "POST ");
  else {
    hb_add(&hb, r->method.p, r->method.n);
    hb_lit(&hb, " ");
  }
  if (*path != '/') hb_lit(&hb, "/");
  hb_add(&hb, path, pathlen);
  hb_lit(&hb, " HTTP/1.1\r\nHost: ");
  hb_add(&hb, host, hostlen);
  hb_lit(&hb, "\r\n");
  for (size_t i = 0; i < r->ureq.hdrs.n; i++) {
    const hdr *h = &r->ureq.hdrs.v[i];
    hb_add(&hb, h->name.p, h->name.n);
    hb_lit(&hb, ": ");
    hb_add(&hb, h->value.p, h->value.n);
    hb_lit(&hb, "\r\n");
  }
  if (!is_get) {
    hb_lit(&hb, "Content-Length: ");
    hb_u64(&hb, r->ureq.body_len);
    hb_lit(&hb, "\r\n");
  }
  hb_lit(&hb, "\r\n");
  hb_done(&hb);
  if (!is_get && r->ureq.body_len) evbuffer_add_reference(o, r->ureq.body, r->ureq.body_len, NULL, NULL);
  return 0;
}

static void px_header(void *ctx, const char *line, size_t n) { upstream_on_header_line(ctx, line, n); }

static int px_body(void *ctx, const char *p, size_t n) {
  struct aigw_req *r = ctx;
  if (upstream_on_body(r, p, n) != n) return UPC_BODY_ABORT;
  return r->up_paused ? UPC_BODY_PAUSE : UPC_BODY_OK;
}

static void px_done(void *ctx, CURLcode rc, const char *msg) { upstream_transfer_done(ctx, rc, msg); }

static const upc_sink px_sink = {px_build, px_header, px_body, px_done};

/* 0 started (or failed and already answered through upstream_transfer_done), 1 not eligible. */
int upc_start(struct aigw_req *r) {
  int head = r->route->api == AIGW_API_PASSTHROUGH && str_ieq(r->method.p, r->method.n, "HEAD", 4);
  return upc_open(r->w, r->upstream_url, &px_sink, r, &r->upc, r->tmo.connect_ms, head);
}

void upc_abort(struct aigw_req *r) { upc_close(&r->upc); }

void upc_unpause(struct aigw_req *r) { upc_resume(r->upc); }
