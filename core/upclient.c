/* upclient.c - the purpose-built HTTP/1.1 upstream client: pooled keep-alive connections to
 * plain-HTTP upstreams given by IP address or "localhost" (local model servers, sidecars, the
 * benchmark), beside libcurl, which keeps everything else (TLS, HTTP/2, names needing DNS, proxies).
 *
 * Why: with libcurl a proxied request cost two poll() calls (connection liveness checks), its own
 * allocations and per-transfer bookkeeping; on this path a request is one writev() and, usually,
 * one read(). Idle pooled connections keep their read event registered, so reuse costs no
 * epoll_ctl, and a server closing an idle connection is noticed at once.
 *
 * Responses feed the same functions as libcurl's callbacks (upstream_on_header_line,
 * upstream_on_body, upstream_transfer_done), so streaming, deadlines and errors behave the same.
 * A request that fails on a reused connection before any response byte arrived is retried once on
 * a new connection (the keep-alive race every HTTP client handles). */
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

enum { UC_CONNECTING, UC_SENDING, UC_HEAD, UC_BODY, UC_IDLE };

typedef struct uppool uppool;

struct upconn {
  worker *w;
  uppool *pool;
  int fd;
  struct event rev, wev;
  int rev_added, wev_added;
  struct evbuffer *in, *out;
  struct aigw_req *r;
  int state;
  int reused;
  int got_bytes;
  int paused;
  int status;
  int chunked, until_close, keep_alive;
  uint64_t clen_left;
  h1_chunked chk;
  uint64_t idle_since;
  struct upconn *next;
};

struct uppool {
  char key[72];
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
  if (*p && *p != '/' && *p != '?') return -1;
  u->path = *p ? p : "/";
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

/* Detaches the connection from its request: back to the pool when reusable, else closed. */
static void uc_release(upconn *c, int reusable) {
  struct aigw_req *r = c->r;
  if (r) r->upc = NULL;
  c->r = NULL;
  if (!reusable || c->pool->nidle >= UC_MAX_IDLE || evbuffer_get_length(c->in) || c->w->draining) {
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

/* Ends the transfer with an error (or OK) and tells the pipeline. */
static void uc_fail(upconn *c, CURLcode rc, const char *msg) {
  struct aigw_req *r = c->r;
  uc_release(c, 0);
  if (r) upstream_transfer_done(r, rc, msg);
}

/* ---- sending ---- */

static int uc_start_on(upconn *c, struct aigw_req *r, const url_parts *u);

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
  (void)what;
  if (c->state == UC_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      char msg[160];
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

/* Builds the request head; the body is referenced, not copied. */
static int uc_start_on(upconn *c, struct aigw_req *r, const url_parts *up) {
  c->r = r;
  r->upc = c;
  c->status = 0;
  c->got_bytes = 0;
  c->chunked = c->until_close = 0;
  c->keep_alive = 1;
  c->clen_left = 0;
  c->paused = 0;
  const url_parts u = *up;
  int is_get = str_ieq(r->method.p, r->method.n, "GET", 3) || r->route->api == AIGW_API_MODELS;
  struct evbuffer *o = c->out;
  evbuffer_drain(o, evbuffer_get_length(o));
  if (is_get) evbuffer_add(o, "GET ", 4);
  else if (str_ieq(r->method.p, r->method.n, "POST", 4) || r->route->api != AIGW_API_PASSTHROUGH) evbuffer_add(o, "POST ", 5);
  else {
    evbuffer_add(o, r->method.p, r->method.n);
    evbuffer_add(o, " ", 1);
  }
  evbuffer_add(o, u.path, strlen(u.path));
  evbuffer_add(o, " HTTP/1.1\r\nHost: ", 17);
  char hb[96];
  int hn = strchr(u.host, ':') ? snprintf(hb, sizeof hb, "[%s]", u.host) : snprintf(hb, sizeof hb, "%s", u.host);
  evbuffer_add(o, hb, (size_t)hn);
  if (u.port != 80) {
    hn = snprintf(hb, sizeof hb, ":%u", u.port);
    evbuffer_add(o, hb, (size_t)hn);
  }
  evbuffer_add(o, "\r\n", 2);
  for (size_t i = 0; i < r->ureq.hdrs.n; i++) {
    const hdr *h = &r->ureq.hdrs.v[i];
    evbuffer_add(o, h->name.p, h->name.n);
    evbuffer_add(o, ": ", 2);
    evbuffer_add(o, h->value.p, h->value.n);
    evbuffer_add(o, "\r\n", 2);
  }
  if (!is_get) {
    hn = snprintf(hb, sizeof hb, "Content-Length: %zu\r\n", r->ureq.body_len);
    evbuffer_add(o, hb, (size_t)hn);
  }
  evbuffer_add(o, "\r\n", 2);
  /* the body stays in the request's memory until the transfer ends */
  if (!is_get && r->ureq.body_len) evbuffer_add_reference(o, r->ureq.body, r->ureq.body_len, NULL, NULL);
  if (c->state == UC_CONNECTING) {
    if (!c->wev_added) {
      uint32_t ms = r->route->timeouts.connect_ms ? r->route->timeouts.connect_ms : 10000;
      struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
      event_add(&c->wev, &tv);
      c->wev_added = 1;
    }
    return 0;
  }
  c->state = UC_SENDING;
  return uc_send(c);
}

/* ---- receiving ---- */

static void uc_complete(upconn *c) {
  struct aigw_req *r = c->r;
  uc_release(c, c->keep_alive && !c->until_close);
  if (r) upstream_transfer_done(r, CURLE_OK, NULL);
}

/* Feeds body bytes; returns -1 when the request aborted the transfer. */
static int deliver(upconn *c, const char *p, size_t n) {
  if (!n) return 0;
  struct aigw_req *r = c->r;
  size_t took = upstream_on_body(r, p, n);
  if (took != n) {
    uc_fail(c, CURLE_WRITE_ERROR, NULL);
    return -1;
  }
  if (r->up_paused && c->rev_added) { /* back-pressure from a slow client */
    event_del(&c->rev);
    c->rev_added = 0;
    c->paused = 1;
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
  struct aigw_req *r = c->r;
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
        if (str_ieq(p, nn, "content-length", 14)) c->clen_left = strtoull(v, NULL, 10), c->until_close = 0;
        else if (str_ieq(p, nn, "transfer-encoding", 17) && vn >= 7 && str_ieq(ve - 7, 7, "chunked", 7)) c->chunked = 1;
        else if (str_ieq(p, nn, "connection", 10) && vn >= 5 && str_ieq(v, 5, "close", 5)) c->keep_alive = 0;
      }
    }
    if (c->status >= 200 || first) upstream_on_header_line(r, p, ll);
    p = nl + 1;
  }
  evbuffer_drain(c->in, hl);
  if (c->status >= 100 && c->status < 200) { /* interim response: the real one follows */
    c->status = 0;
    return parse_head(c);
  }
  return 1;
}

static void uc_process(upconn *c) {
  for (;;) {
    if (!c->r) return;
    if (c->state == UC_HEAD) {
      int rc = parse_head(c);
      if (rc == 0) return;
      if (rc < 0) {
        uc_fail(c, CURLE_WEIRD_SERVER_REPLY, "upstream sent a malformed HTTP response head");
        return;
      }
      if (c->chunked) h1_chunked_init(&c->chk);
      else if (!c->clen_left) {
        /* no Content-Length: 204/304/HEAD-like answers are empty, others run until close */
        int has_cl = hdrs_get(&c->r->uresp.hdrs, "content-length", 14) != NULL;
        if (!has_cl && c->status != 204 && c->status != 304) c->until_close = 1;
      }
      c->state = UC_BODY;
      if (!c->chunked && !c->until_close && !c->clen_left) {
        upstream_on_body(c->r, "", 0); /* marks the first byte for an empty body */
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
      if (done) {
        uc_complete(c);
        return;
      }
      return;
    }
    size_t take = c->until_close || avail < c->clen_left ? avail : (size_t)c->clen_left;
    if (deliver(c, p, take) < 0) return;
    evbuffer_drain(c->in, take);
    if (!c->until_close) {
      c->clen_left -= take;
      if (!c->clen_left) {
        uc_complete(c);
        return;
      }
    }
    return;
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
    struct aigw_req *r = c->r;
    if (c->state == UC_BODY && c->until_close && n == 0) {
      uc_complete(c);
      return;
    }
    if (r && c->reused && !c->got_bytes && c->state <= UC_HEAD) {
      /* the keep-alive race: the server closed the idle connection as we reused it */
      uc_release(c, 0);
      r->upc_retried = 1;
      if (upc_start(r) == 0) return;
      upstream_transfer_done(r, CURLE_RECV_ERROR, "upstream closed a reused connection");
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

/* ---- interface ---- */

int upc_start(struct aigw_req *r) {
  url_parts u;
  struct sockaddr_storage ss;
  socklen_t alen;
  if (!r->upstream_url || parse_url(r->upstream_url, &u, &ss, &alen) < 0) return 1;
  uppool *p = pool_get(r->w, &u, &ss, alen);
  if (!p) return 1;
  upconn *c = NULL;
  if (!r->upc_retried) {
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
  if (c) {
    c->reused = 1;
    c->state = UC_SENDING;
  } else {
    c = uc_new(r->w, p);
    if (!c) return 1;
    c->reused = 0;
    if (connect(c->fd, (struct sockaddr *)&p->addr, p->alen) < 0 && errno != EINPROGRESS) {
      char msg[160];
      snprintf(msg, sizeof msg, "connect to %s failed: %s", p->key, strerror(errno));
      c->r = r;
      r->upc = c;
      uc_fail(c, CURLE_COULDNT_CONNECT, msg);
      return -1;
    }
    c->state = UC_CONNECTING;
  }
  if (uc_start_on(c, r, &u) < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "sending to %s failed: %s", p->key, strerror(errno));
    if (c->reused && !r->upc_retried) {
      uc_release(c, 0);
      r->upc_retried = 1;
      return upc_start(r);
    }
    uc_fail(c, CURLE_SEND_ERROR, msg);
    return -1;
  }
  return 0;
}

void upc_abort(struct aigw_req *r) {
  upconn *c = r->upc;
  if (!c) return;
  uc_release(c, 0); /* mid-response: the connection cannot be reused */
}

void upc_unpause(struct aigw_req *r) {
  upconn *c = r->upc;
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
