/* util.c - clocks, the error log, the request arena and header lists. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "core.h"

uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t now_ms(void) { return now_us() / 1000u; }

int str_ieq(const char *a, size_t an, const char *b, size_t bn) {
  return an == bn && strncasecmp(a, b, an) == 0;
}

/* The error log goes to stderr (the access log has its own sink). Level is process-wide and set
 * once at start (-v), before workers run. */
static int g_log_level = AIGW_LOG_INFO;

void log_set_level(int level) { g_log_level = level; }
int log_level_enabled(int level) { return level >= g_log_level; }

void log_msg(int level, const char *fmt, ...) {
  if (level < g_log_level) return;
  static const char *names[] = {"debug", "info", "warn", "error"};
  char line[2048];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000, names[level < 0 ? 0 : level > 3 ? 3 : level]);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2) len = sizeof line - 2;
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len); /* one write: lines of concurrent threads never interleave */
  (void)w;
}

/* ---- arena ---- */
struct arena_chunk {
  arena_chunk *next;
  size_t size;
  /* data follows, 16-byte aligned */
  max_align_t align[];
};

#define ARENA_CHUNK 4096

void arena_init(arena *a) { a->head = NULL; a->p = a->end = NULL; }

void *arena_alloc(arena *a, size_t n) {
  n = (n + 15u) & ~(size_t)15u;
  if (n == 0) n = 16;
  if ((size_t)(a->end - a->p) < n) {
    size_t sz = n > ARENA_CHUNK - sizeof(arena_chunk) ? n + sizeof(arena_chunk) : ARENA_CHUNK;
    arena_chunk *c = malloc(sz);
    if (!c) return NULL;
    c->size = sz;
    c->next = a->head;
    a->head = c;
    a->p = (char *)c->align;
    a->end = (char *)c + sz;
  }
  void *r = a->p;
  a->p += n;
  memset(r, 0, n);
  return r;
}

char *arena_strndup(arena *a, const char *s, size_t n) {
  char *d = arena_alloc(a, n + 1);
  if (!d) return NULL;
  if (n) memcpy(d, s, n);
  d[n] = 0;
  return d;
}

void arena_free(arena *a) {
  arena_chunk *c = a->head;
  while (c) {
    arena_chunk *nx = c->next;
    free(c);
    c = nx;
  }
  a->head = NULL;
  a->p = a->end = NULL;
}

/* ---- header lists ---- */
int hdrs_add(arena *a, hdr_list *l, const char *n, size_t nn, const char *v, size_t vn) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    hdr *nv = arena_alloc(a, cap * sizeof *nv);
    if (!nv) return -1;
    if (l->n) memcpy(nv, l->v, l->n * sizeof *nv);
    l->v = nv;
    l->cap = cap;
  }
  char *cn = arena_strndup(a, n, nn), *cv = arena_strndup(a, v, vn);
  if (!cn || !cv) return -1;
  l->v[l->n].name = (aigw_str){cn, nn};
  l->v[l->n].value = (aigw_str){cv, vn};
  l->n++;
  return 0;
}

int hdrs_set(arena *a, hdr_list *l, const char *n, size_t nn, const char *v, size_t vn) {
  size_t j = 0;
  for (size_t i = 0; i < l->n; i++) {
    if (str_ieq(l->v[i].name.p, l->v[i].name.n, n, nn)) continue;
    l->v[j++] = l->v[i];
  }
  l->n = j;
  if (!v) return 0;
  return hdrs_add(a, l, n, nn, v, vn);
}

const hdr *hdrs_get(const hdr_list *l, const char *n, size_t nn) {
  for (size_t i = 0; i < l->n; i++)
    if (str_ieq(l->v[i].name.p, l->v[i].name.n, n, nn)) return &l->v[i];
  return NULL;
}

/* One raw response header line ("Name: value\r\n") into l; a status line ("HTTP/1.1 200 OK")
 * clears l (a new response follows an interim one) and returns its status code; else 0. */
int hdrs_add_line(arena *a, hdr_list *l, const char *buf, size_t n) {
  if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
    l->n = 0;
    const char *sp = memchr(buf, ' ', n);
    int st = sp ? atoi(sp + 1) : 0;
    return st > 0 ? st : -1;
  }
  const char *colon = memchr(buf, ':', n);
  if (!colon) return 0;
  const char *v = colon + 1, *end = buf + n;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
  hdrs_add(a, l, buf, (size_t)(colon - buf), v, (size_t)(end - v));
  return 0;
}

size_t fmt_u64(char *out, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

void hb_add(headbuf *h, const char *p, size_t n) {
  if (h->n + n > sizeof h->buf) {
    evbuffer_add(h->out, h->buf, h->n);
    h->n = 0;
    if (n > sizeof h->buf) {
      evbuffer_add(h->out, p, n);
      return;
    }
  }
  memcpy(h->buf + h->n, p, n);
  h->n += n;
}

void hb_u64(headbuf *h, uint64_t v) {
  char d[24];
  hb_add(h, d, fmt_u64(d, v));
}

void hb_done(headbuf *h) {
  if (h->n) evbuffer_add(h->out, h->buf, h->n);
  h->n = 0;
}
