/* metrics.c - see metrics.h.
 *
 * Layout. A registry is a fixed array of metric pointers published with release stores, so the hot
 * path indexes it without a lock. Each labelled metric preallocates an open-addressing table of
 * series pointers with at least 2 * max_series slots (load factor <= 1/2, so a probe always meets
 * an empty slot). Slots go from NULL to a series exactly once and series never move or die before
 * met_free, so readers probe with acquire loads and no lock. New series are created under the
 * metric's mutex and appended to a creation-order list that met_render walks.
 *
 * Values are doubles kept as bit patterns in _Atomic uint64_t: counters and gauges add with a CAS
 * loop (exact under contention; see test_metrics for ns/op), gauges set with a plain store,
 * histogram buckets are integer fetch-adds. Each series is cache-line aligned so that two series
 * updated by two workers never share a line.
 *
 * Cardinality. nseries only grows and is bumped after the slot is published, so a reader that sees
 * nseries == max_series and then misses in the table knows the combination cannot exist and goes to
 * the overflow series without touching the mutex (an attacker spraying new model names never makes
 * workers queue on the lock).
 */
#include "metrics.h"
#include "jsonw.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define OTHER "_other"

/* Helgrind does not model C11 acquire/release, so a build for it (-DAIGW_HELGRIND) tells it about
 * each publication: HB where a series/metric is published, HA where it is picked up lock-free. */
#ifdef AIGW_HELGRIND
#include <valgrind/helgrind.h>
#define HB(p) ANNOTATE_HAPPENS_BEFORE(p)
#define HA(p) ANNOTATE_HAPPENS_AFTER(p)
#define ATOMIC_VAR(p, n) ANNOTATE_BENIGN_RACE_SIZED(p, n, "C11 atomic")
#else
#define HB(p) ((void)0)
#define HA(p) ((void)0)
#define ATOMIC_VAR(p, n) ((void)0)
#endif

struct met_series {
    _Atomic(struct met_series *) next; /* creation order */
    uint64_t hash;
    _Atomic uint64_t val;              /* counter/gauge value, histogram sum (double bits) */
    uint16_t lens[MET_MAX_LABELS];     /* label value lengths */
    char *labels;                      /* values back to back, each NUL-terminated */
    _Atomic uint64_t buckets[];        /* histograms: nb + 1 counts (last = +Inf), not cumulative */
};

struct met_metric {
    met_kind kind;
    char *name, *help;
    int nlabels;
    char *lnames[MET_MAX_LABELS];
    double *bounds;
    size_t nb;
    uint32_t max_series;
    uint64_t seed;
    struct met_series *single;             /* metrics without labels: the one series */
    size_t mask;                           /* slots - 1 */
    _Atomic(struct met_series *) *slots;
    _Atomic uint32_t nseries;              /* series in slots (overflow not counted) */
    _Atomic(struct met_series *) overflow;
    _Atomic(struct met_series *) head;     /* creation-order list */
    struct met_series *tail;               /* under lock */
    pthread_mutex_t lock;
};

struct met_registry {
    pthread_mutex_t lock; /* met_define */
    uint64_t seed;
    _Atomic int count;
    _Atomic(struct met_metric *) m[MET_MAX_METRICS];
};

static const double default_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

/* ---- small helpers ---- */

static uint64_t d2u(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }
static double u2d(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }

static void atomic_add_double(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, d2u(u2d(old) + v), memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static int valid_metric_name(const char *s)
{
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (p != s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

static int valid_label_name(const char *s)
{
    if (!s || !*s || (s[0] == '_' && s[1] == '_'))
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (p != s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

static int valid_utf8(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t need, k = jw_utf8_prefix(p + i, n - i, &need);
        if (!need || k != need)
            return 0;
        i += k;
    }
    return 1;
}

static uint64_t fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* FNV-1a over the values and their lengths, seeded per registry (so nobody outside can aim
 * values at one probe chain), finished with a murmur mix for good low bits. */
static uint64_t hash_labels(uint64_t seed, int n, const char *const *v, const size_t *len)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (int i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)v[i];
        for (size_t k = 0; k < len[i]; k++) {
            h ^= p[k];
            h *= 0x100000001b3ULL;
        }
        h ^= len[i] + 0x9e;
        h *= 0x100000001b3ULL;
    }
    return fmix64(h);
}

/* ---- series ---- */

static struct met_series *series_new(struct met_metric *m, uint64_t hash, const char *const *v,
                                     const size_t *len)
{
    size_t nbk = m->kind == MET_HISTOGRAM ? m->nb + 1 : 0;
    size_t head = sizeof(struct met_series) + nbk * sizeof(_Atomic uint64_t);
    size_t total = head;
    for (int i = 0; i < m->nlabels; i++)
        total += len[i] + 1;
    total = (total + 63) & ~(size_t)63;
    struct met_series *s = aligned_alloc(64, total);
    if (!s)
        return NULL;
    memset(s, 0, total);
    atomic_init(&s->next, NULL);
    ATOMIC_VAR(&s->next, sizeof s->next);
    atomic_init(&s->val, d2u(0.0));
    for (size_t i = 0; i < nbk; i++)
        atomic_init(&s->buckets[i], 0);
    s->hash = hash;
    s->labels = (char *)s + head;
    char *o = s->labels;
    for (int i = 0; i < m->nlabels; i++) {
        s->lens[i] = (uint16_t)len[i];
        memcpy(o, v[i], len[i]);
        o[len[i]] = '\0';
        o += len[i] + 1;
    }
    return s;
}

static int series_eq(const struct met_metric *m, const struct met_series *s, const char *const *v,
                     const size_t *len)
{
    const char *p = s->labels;
    for (int i = 0; i < m->nlabels; i++) {
        if (s->lens[i] != len[i] || memcmp(p, v[i], len[i]))
            return 0;
        p += len[i] + 1;
    }
    return 1;
}

/* Under m->lock. */
static void series_append(struct met_metric *m, struct met_series *s)
{
    HB(s);
    if (m->tail)
        atomic_store_explicit(&m->tail->next, s, memory_order_release);
    else
        atomic_store_explicit(&m->head, s, memory_order_release);
    m->tail = s;
}

static struct met_series *probe(struct met_metric *m, uint64_t h, const char *const *v,
                                const size_t *len)
{
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        struct met_series *s = atomic_load_explicit(&m->slots[i], memory_order_acquire);
        if (!s)
            return NULL;
        HA(s);
        if (s->hash == h && series_eq(m, s, v, len))
            return s;
    }
}

/* Under m->lock. */
static struct met_series *overflow_locked(struct met_metric *m)
{
    struct met_series *s = atomic_load_explicit(&m->overflow, memory_order_relaxed);
    if (s)
        return s;
    const char *v[MET_MAX_LABELS];
    size_t len[MET_MAX_LABELS];
    for (int i = 0; i < m->nlabels; i++) {
        v[i] = OTHER;
        len[i] = sizeof OTHER - 1;
    }
    s = series_new(m, 0, v, len);
    if (!s)
        return NULL;
    series_append(m, s);
    atomic_store_explicit(&m->overflow, s, memory_order_release);
    return s;
}

static struct met_series *overflow(struct met_metric *m)
{
    struct met_series *s = atomic_load_explicit(&m->overflow, memory_order_acquire);
    if (s) {
        HA(s);
        return s;
    }
    pthread_mutex_lock(&m->lock);
    s = overflow_locked(m);
    pthread_mutex_unlock(&m->lock);
    return s;
}

static struct met_series *lookup_slow(struct met_metric *m, uint64_t h, const char *const *v,
                                      const size_t *len)
{
    int all_other = 1;
    for (int i = 0; i < m->nlabels; i++) {
        if (!valid_utf8((const unsigned char *)v[i], len[i]))
            return overflow(m);
        if (len[i] != sizeof OTHER - 1 || memcmp(v[i], OTHER, len[i]))
            all_other = 0;
    }
    if (all_other)
        return overflow(m);
    if (atomic_load_explicit(&m->nseries, memory_order_acquire) >= m->max_series) {
        /* Full: every series that will ever exist is published now; one more probe settles it. */
        struct met_series *s = probe(m, h, v, len);
        return s ? s : overflow(m);
    }
    pthread_mutex_lock(&m->lock);
    struct met_series *s = probe(m, h, v, len);
    if (s)
        goto done;
    if (atomic_load_explicit(&m->nseries, memory_order_relaxed) >= m->max_series) {
        s = overflow_locked(m);
        goto done;
    }
    s = series_new(m, h, v, len);
    if (!s) {
        s = atomic_load_explicit(&m->overflow, memory_order_relaxed); /* may be NULL: dropped */
        goto done;
    }
    size_t i = h & m->mask;
    while (atomic_load_explicit(&m->slots[i], memory_order_relaxed))
        i = (i + 1) & m->mask;
    atomic_store_explicit(&m->slots[i], s, memory_order_release);
    series_append(m, s);
    atomic_fetch_add_explicit(&m->nseries, 1, memory_order_release);
done:
    pthread_mutex_unlock(&m->lock);
    return s;
}

static struct met_series *lookup(met_registry *r, int id, met_kind want, const char *const *lv,
                                 const size_t *lens, struct met_metric **mp)
{
    if (!r || id < 0 || id >= MET_MAX_METRICS)
        return NULL;
    struct met_metric *m = atomic_load_explicit(&r->m[id], memory_order_acquire);
    if (!m)
        return NULL;
    HA(m);
    if (m->kind != want && !(want == MET_COUNTER && m->kind == MET_GAUGE))
        return NULL;
    *mp = m;
    if (m->nlabels == 0)
        return m->single;
    if (!lv)
        return NULL;
    const char *v[MET_MAX_LABELS];
    size_t len[MET_MAX_LABELS];
    for (int i = 0; i < m->nlabels; i++) {
        const char *s = lv[i] ? lv[i] : "";
        size_t n = lens && lv[i] ? lens[i] : strlen(s);
        if (n > MET_LABEL_VALUE_MAX) {
            n = MET_LABEL_VALUE_MAX;
            while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
                n--; /* do not cut a UTF-8 sequence */
        }
        v[i] = s;
        len[i] = n;
    }
    uint64_t h = hash_labels(m->seed, m->nlabels, v, len);
    struct met_series *s = probe(m, h, v, len);
    return s ? s : lookup_slow(m, h, v, len);
}

/* ---- updates ---- */

void met_add_n(met_registry *r, int id, const char *const *label_values, const size_t *lens, double v)
{
    struct met_metric *m = NULL;
    struct met_series *s = lookup(r, id, MET_COUNTER, label_values, lens, &m);
    if (!s)
        return;
    if (m->kind == MET_COUNTER && !(v >= 0))
        return;
    atomic_add_double(&s->val, v);
}

void met_set_n(met_registry *r, int id, const char *const *label_values, const size_t *lens, double v)
{
    struct met_metric *m = NULL;
    struct met_series *s = lookup(r, id, MET_GAUGE, label_values, lens, &m);
    if (s)
        atomic_store_explicit(&s->val, d2u(v), memory_order_relaxed);
}

void met_observe_n(met_registry *r, int id, const char *const *label_values, const size_t *lens,
                   double v)
{
    if (isnan(v))
        return;
    struct met_metric *m = NULL;
    struct met_series *s = lookup(r, id, MET_HISTOGRAM, label_values, lens, &m);
    if (!s)
        return;
    size_t lo = 0, hi = m->nb; /* first bound >= v, or nb (+Inf) */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v <= m->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&s->val, v);
}

void met_add(met_registry *r, int id, const char *const *label_values, double v)
{
    met_add_n(r, id, label_values, NULL, v);
}

void met_set(met_registry *r, int id, const char *const *label_values, double v)
{
    met_set_n(r, id, label_values, NULL, v);
}

void met_observe(met_registry *r, int id, const char *const *label_values, double v)
{
    met_observe_n(r, id, label_values, NULL, v);
}

/* ---- registry ---- */

met_registry *met_new(void)
{
    met_registry *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (pthread_mutex_init(&r->lock, NULL)) {
        free(r);
        return NULL;
    }
    atomic_init(&r->count, 0);
    for (int i = 0; i < MET_MAX_METRICS; i++)
        atomic_init(&r->m[i], NULL);
    if (getrandom(&r->seed, sizeof r->seed, GRND_NONBLOCK) != (ssize_t)sizeof r->seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r->seed = fmix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)r);
    }
    return r;
}

static void metric_free(struct met_metric *m)
{
    if (!m)
        return;
    struct met_series *s = atomic_load_explicit(&m->head, memory_order_relaxed);
    while (s) {
        struct met_series *n = atomic_load_explicit(&s->next, memory_order_relaxed);
        free(s);
        s = n;
    }
    for (int i = 0; i < m->nlabels; i++)
        free(m->lnames[i]);
    free(m->slots);
    free(m->bounds);
    free(m->name);
    free(m->help);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void met_free(met_registry *r)
{
    if (!r)
        return;
    int n = atomic_load(&r->count);
    for (int i = 0; i < n; i++)
        metric_free(atomic_load(&r->m[i]));
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static int same_shape(const struct met_metric *m, met_kind kind, int nlabels,
                      const char *const *label_names, const double *b, size_t nb)
{
    if (m->kind != kind || m->nlabels != nlabels)
        return 0;
    for (int i = 0; i < nlabels; i++)
        if (strcmp(m->lnames[i], label_names[i]))
            return 0;
    if (kind == MET_HISTOGRAM) {
        if (m->nb != nb)
            return 0;
        for (size_t i = 0; i < nb; i++)
            if (m->bounds[i] != b[i])
                return 0;
    }
    return 1;
}

int met_define(met_registry *r, met_kind kind, const char *name, const char *help,
               const char *const *label_names, const double *buckets, size_t nbuckets,
               uint32_t max_series)
{
    if (!r || (kind != MET_COUNTER && kind != MET_GAUGE && kind != MET_HISTOGRAM) ||
        !valid_metric_name(name))
        return -1;
    int nlabels = 0;
    if (label_names) {
        while (label_names[nlabels]) {
            if (nlabels == MET_MAX_LABELS || !valid_label_name(label_names[nlabels]))
                return -1;
            if (kind == MET_HISTOGRAM && !strcmp(label_names[nlabels], "le"))
                return -1;
            for (int j = 0; j < nlabels; j++)
                if (!strcmp(label_names[j], label_names[nlabels]))
                    return -1;
            nlabels++;
        }
    }
    const double *b = NULL;
    size_t nb = 0;
    if (kind == MET_HISTOGRAM) {
        b = buckets && nbuckets ? buckets : default_buckets;
        nb = buckets && nbuckets ? nbuckets
                                 : sizeof default_buckets / sizeof default_buckets[0];
        if (isinf(b[nb - 1]) && b[nb - 1] > 0)
            nb--; /* +Inf is implicit */
        if (nb > MET_MAX_BUCKETS)
            return -1;
        for (size_t i = 0; i < nb; i++)
            if (!isfinite(b[i]) || (i > 0 && !(b[i] > b[i - 1])))
                return -1;
    }
    if (max_series == 0)
        max_series = MET_DEFAULT_SERIES;
    if (max_series > MET_MAX_SERIES)
        max_series = MET_MAX_SERIES;

    int id = -1;
    struct met_metric *m = NULL;
    pthread_mutex_lock(&r->lock);
    int count = atomic_load_explicit(&r->count, memory_order_relaxed);
    for (int i = 0; i < count; i++) {
        struct met_metric *o = atomic_load_explicit(&r->m[i], memory_order_relaxed);
        if (!strcmp(o->name, name)) {
            id = same_shape(o, kind, nlabels, label_names, b, nb) ? i : -1;
            goto done;
        }
    }
    if (count >= MET_MAX_METRICS)
        goto done;
    m = calloc(1, sizeof *m);
    if (!m || pthread_mutex_init(&m->lock, NULL)) {
        free(m);
        m = NULL;
        goto done;
    }
    m->kind = kind;
    m->seed = r->seed;
    m->max_series = max_series;
    m->name = xstrdup(name);
    m->help = xstrdup(help ? help : "");
    if (!m->name || !m->help)
        goto fail;
    for (m->nlabels = 0; m->nlabels < nlabels; m->nlabels++)
        if (!(m->lnames[m->nlabels] = xstrdup(label_names[m->nlabels])))
            goto fail;
    if (nb) {
        m->bounds = malloc(nb * sizeof *m->bounds);
        if (!m->bounds)
            goto fail;
        memcpy(m->bounds, b, nb * sizeof *m->bounds);
        m->nb = nb;
    }
    atomic_init(&m->nseries, 0);
    atomic_init(&m->overflow, NULL);
    atomic_init(&m->head, NULL);
    ATOMIC_VAR(&m->overflow, sizeof m->overflow);
    ATOMIC_VAR(&m->head, sizeof m->head);
    if (nlabels == 0) {
        m->single = series_new(m, 0, NULL, NULL);
        if (!m->single)
            goto fail;
        series_append(m, m->single);
    } else {
        size_t slots = 4;
        while (slots < 2 * (size_t)max_series)
            slots *= 2;
        m->slots = malloc(slots * sizeof *m->slots);
        if (!m->slots)
            goto fail;
        for (size_t i = 0; i < slots; i++)
            atomic_init(&m->slots[i], NULL);
        ATOMIC_VAR(m->slots, slots * sizeof *m->slots);
        m->mask = slots - 1;
    }
    HB(m);
    atomic_store_explicit(&r->m[count], m, memory_order_release);
    atomic_store_explicit(&r->count, count + 1, memory_order_release);
    id = count;
    goto done;
fail:
    metric_free(m);
done:
    pthread_mutex_unlock(&r->lock);
    return id;
}

/* ---- rendering ---- */

struct sb {
    char *p;
    size_t len, cap;
    int err;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
    if (b->err)
        return;
    if (b->cap - b->len <= n) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc - b->len <= n) {
            if (nc > SIZE_MAX / 2) {
                b->err = 1;
                return;
            }
            nc *= 2;
        }
        char *np = realloc(b->p, nc);
        if (!np) {
            b->err = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(struct sb *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Escapes \\ and \n, and also \" when quote is set (label values); HELP text leaves '"' as is. */
static void sb_escaped(struct sb *b, const char *s, size_t n, int quote)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        if (s[i] == '\\')
            rep = "\\\\";
        else if (s[i] == '\n')
            rep = "\\n";
        else if (quote && s[i] == '"')
            rep = "\\\"";
        if (rep) {
            sb_put(b, s + run, i - run);
            sb_put(b, rep, 2);
            run = i + 1;
        }
    }
    sb_put(b, s + run, n - run);
}

static void sb_double(struct sb *b, double v)
{
    char tmp[32];
    if (isnan(v)) {
        sb_put(b, "NaN", 3);
    } else if (isinf(v)) {
        sb_puts(b, v > 0 ? "+Inf" : "-Inf");
    } else {
        size_t n = jw_fmt_double(tmp, v);
        sb_put(b, tmp, n);
    }
}

static void sb_u64(struct sb *b, uint64_t u)
{
    char tmp[24];
    char *e = tmp + sizeof tmp, *p = e;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    sb_put(b, p, (size_t)(e - p));
}

/* name<suffix>{labels[,le="..."]} */
static void sb_series_name(struct sb *b, const struct met_metric *m, const char *suffix,
                           const struct met_series *s, const char *le)
{
    sb_puts(b, m->name);
    sb_puts(b, suffix);
    if (m->nlabels == 0 && !le)
        return;
    sb_put(b, "{", 1);
    const char *p = s->labels;
    for (int i = 0; i < m->nlabels; i++) {
        if (i)
            sb_put(b, ",", 1);
        sb_puts(b, m->lnames[i]);
        sb_put(b, "=\"", 2);
        sb_escaped(b, p, s->lens[i], 1);
        sb_put(b, "\"", 1);
        p += s->lens[i] + 1;
    }
    if (le) {
        if (m->nlabels)
            sb_put(b, ",", 1);
        sb_put(b, "le=\"", 4);
        sb_puts(b, le);
        sb_put(b, "\"", 1);
    }
    sb_put(b, "}", 1);
}

static void render_metric(struct sb *b, const struct met_metric *m)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    sb_put(b, "# HELP ", 7);
    sb_puts(b, m->name);
    sb_put(b, " ", 1);
    sb_escaped(b, m->help, strlen(m->help), 0);
    sb_put(b, "\n# TYPE ", 8);
    sb_puts(b, m->name);
    sb_put(b, " ", 1);
    sb_puts(b, types[m->kind]);
    sb_put(b, "\n", 1);
    for (struct met_series *s = atomic_load_explicit(&m->head, memory_order_acquire); s;
         s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        HA(s);
        if (m->kind != MET_HISTOGRAM) {
            sb_series_name(b, m, "", s, NULL);
            sb_put(b, " ", 1);
            sb_double(b, u2d(atomic_load_explicit(&s->val, memory_order_relaxed)));
            sb_put(b, "\n", 1);
            continue;
        }
        uint64_t cum = 0;
        char le[32];
        for (size_t i = 0; i <= m->nb; i++) {
            cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
            if (i < m->nb)
                le[jw_fmt_double(le, m->bounds[i])] = '\0';
            else
                strcpy(le, "+Inf");
            sb_series_name(b, m, "_bucket", s, le);
            sb_put(b, " ", 1);
            sb_u64(b, cum);
            sb_put(b, "\n", 1);
        }
        sb_series_name(b, m, "_sum", s, NULL);
        sb_put(b, " ", 1);
        sb_double(b, u2d(atomic_load_explicit(&s->val, memory_order_relaxed)));
        sb_put(b, "\n", 1);
        sb_series_name(b, m, "_count", s, NULL);
        sb_put(b, " ", 1);
        sb_u64(b, cum);
        sb_put(b, "\n", 1);
    }
}

char *met_render(met_registry *r, size_t *len)
{
    struct sb b = {0};
    sb_put(&b, "", 0); /* allocate, so an empty registry renders "" */
    if (!b.p && !b.err) {
        b.p = malloc(1);
        if (b.p)
            b.p[0] = '\0';
        else
            b.err = 1;
    }
    int n = r ? atomic_load_explicit(&r->count, memory_order_acquire) : 0;
    for (int i = 0; i < n; i++) {
        struct met_metric *m = atomic_load_explicit(&r->m[i], memory_order_acquire);
        HA(m);
        render_metric(&b, m);
    }
    if (b.err) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.p;
}
