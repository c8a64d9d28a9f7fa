/* catalog.c - the model catalog's lookup and pricing (catalog.h). Validation lives in config.c.
 *
 * The catalog keeps its models in one array and an index of every name and alias sorted by bytes,
 * searched by bisection: a lookup allocates nothing and takes no lock. */
#include "catalog.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cat_key {
  const char *key; /* borrowed from the model */
  size_t len;
  const cat_model *m;
  int alias;
} cat_key;

struct catalog {
  cat_model *models;
  size_t n;
  cat_key *index;
  size_t nindex;
};

void cat_model_clear(cat_model *m) {
  if (!m) return;
  free(m->name);
  free(m->provider);
  for (size_t i = 0; i < m->naliases; i++) free(m->aliases[i]);
  free(m->aliases);
  memset(m, 0, sizeof *m);
}

void catalog_free(catalog *c) {
  if (!c) return;
  for (size_t i = 0; i < c->n; i++) cat_model_clear(&c->models[i]);
  free(c->models);
  free(c->index);
  free(c);
}

static int keycmp(const char *a, size_t an, const char *b, size_t bn) {
  int r = memcmp(a, b, an < bn ? an : bn);
  if (r) return r;
  return an < bn ? -1 : an > bn;
}

static int cmp_key(const void *a, const void *b) {
  const cat_key *x = a, *y = b;
  int r = keycmp(x->key, x->len, y->key, y->len);
  if (r) return r;
  if (x->alias != y->alias) return x->alias - y->alias; /* names before aliases */
  return x->m < y->m ? -1 : x->m > y->m;                /* then model order: the first wins */
}

catalog *catalog_new(cat_model *models, size_t n) {
  catalog *c = calloc(1, sizeof *c);
  size_t nk = 0;
  for (size_t i = 0; i < n; i++) nk += 1 + models[i].naliases;
  cat_key *idx = calloc(nk ? nk : 1, sizeof *idx);
  if (!c || !idx) {
    for (size_t i = 0; i < n; i++) cat_model_clear(&models[i]);
    free(models);
    free(c);
    free(idx);
    return NULL;
  }
  c->models = models;
  c->n = n;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const cat_model *m = &models[i];
    if (m->name) idx[k++] = (cat_key){m->name, strlen(m->name), m, 0};
    for (size_t a = 0; a < m->naliases; a++)
      if (m->aliases[a]) idx[k++] = (cat_key){m->aliases[a], strlen(m->aliases[a]), m, 1};
  }
  qsort(idx, k, sizeof *idx, cmp_key);
  /* keep the first of equal keys (sorted so that it is the one that wins) */
  size_t w = 0;
  for (size_t i = 0; i < k; i++)
    if (w == 0 || keycmp(idx[w - 1].key, idx[w - 1].len, idx[i].key, idx[i].len) != 0) idx[w++] = idx[i];
  c->index = idx;
  c->nindex = w;
  return c;
}

size_t catalog_count(const catalog *c) { return c ? c->n : 0; }
const cat_model *catalog_at(const catalog *c, size_t i) { return c && i < c->n ? &c->models[i] : NULL; }

static const cat_model *find_exact(const catalog *c, const char *s, size_t n) {
  size_t lo = 0, hi = c->nindex;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int r = keycmp(c->index[mid].key, c->index[mid].len, s, n);
    if (r == 0) return c->index[mid].m;
    if (r < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

static int digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

/* Length of name without a trailing snapshot date, or len when it has none. */
static size_t strip_date(const char *s, size_t len) {
  /* -YYYY-MM-DD */
  if (len > 11 && s[len - 11] == '-' && digits(s + len - 10, 4) && s[len - 6] == '-' && digits(s + len - 5, 2) &&
      s[len - 3] == '-' && digits(s + len - 2, 2) && s[len - 10] == '2')
    return len - 11;
  /* -YYYYMMDD or @YYYYMMDD */
  if (len > 9 && (s[len - 9] == '-' || s[len - 9] == '@') && digits(s + len - 8, 8) && s[len - 8] == '2')
    return len - 9;
  return len;
}

static const cat_model *find_dated(const catalog *c, const char *s, size_t n) {
  const cat_model *m = find_exact(c, s, n);
  if (m) return m;
  size_t k = strip_date(s, n);
  return k < n ? find_exact(c, s, k) : NULL;
}

const cat_model *catalog_find(const catalog *c, const char *name, size_t len) {
  if (!c || !name || !len) return NULL;
  const cat_model *m = find_dated(c, name, len);
  if (m) return m;
  static const char *const regions[] = {"us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov."};
  for (size_t i = 0; i < sizeof regions / sizeof regions[0]; i++) {
    size_t pl = strlen(regions[i]);
    if (len > pl && !memcmp(name, regions[i], pl)) return find_dated(c, name + pl, len - pl);
  }
  return NULL;
}

int cat_model_priced(const cat_model *m) { return m && m->base.input >= 0 && m->base.output >= 0; }

static double pick(double v, double fallback) { return v >= 0 ? v : fallback; }

int catalog_cost(const cat_model *m, const aigw_usage *u, double *usd) {
  if (!cat_model_priced(m) || !u || u->input_tokens < 0) return -1;
  int64_t in = u->input_tokens;
  int64_t out = u->output_tokens;
  if (out < 0) {
    if (!(m->caps & CAT_CAP_EMBEDDINGS)) return -1;
    out = 0; /* embeddings answer no tokens */
  }
  int64_t cached = u->cached_tokens > 0 ? u->cached_tokens : 0;
  int64_t cwrite = u->cache_write_tokens > 0 ? u->cache_write_tokens : 0;
  cat_rates r = m->base;
  if (m->long_above && (uint64_t)in > m->long_above) {
    r.input = pick(m->longc.input, r.input);
    r.output = pick(m->longc.output, r.output);
    r.cached_input = pick(m->longc.cached_input, r.cached_input);
    r.cache_write = pick(m->longc.cache_write, r.cache_write);
  }
  if (cached > in) cached = in; /* an adapter reporting more cached than prompt tokens */
  if (cwrite > in - cached) cwrite = in - cached;
  int64_t plain = in - cached - cwrite;
  double cost = (double)plain * r.input + (double)cached * pick(r.cached_input, r.input) +
                (double)cwrite * pick(r.cache_write, r.input) + (double)out * r.output;
  cost /= 1e6;
  if (!isfinite(cost) || cost < 0) return -1;
  *usd = cost;
  return 0;
}

uint32_t catalog_max_output_tokens(const catalog *c, const char *name, size_t len) {
  const cat_model *m = catalog_find(c, name, len);
  return m ? m->max_output_tokens : 0;
}
