/* store.c - see store.h.
 *
 * Each shard is a chained hash table, a doubly linked LRU list and a binary min-heap of the
 * entries that can expire, ordered by expiry. The heap makes "expired first" and store_sweep cost
 * O(log n) per expired entry instead of a scan of the shard. Heap room for every entry is reserved
 * when the entry is created, so later expiry changes (a counter rolling into a new window, a TTL
 * change) never allocate and cannot fail halfway.
 */
#include "store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MAX_SHARDS 64
#define MIN_PER_SHARD 16
#define NO_HEAP SIZE_MAX

enum { T_KV = 1, T_CTR = 2 };

struct ent {
    struct ent *hnext;          /* hash chain */
    struct ent *newer, *older;  /* LRU list */
    uint64_t hash;
    uint64_t expires;           /* 0 = never; expired when now >= expires */
    size_t heap_idx;            /* NO_HEAP when not in the heap */
    int type;
    union {
        struct {
            void *val;
            size_t vlen;
        } kv;
        struct {
            int64_t cur, prev;  /* sums of the current and the previous window */
            uint64_t start;     /* start of the current window */
            uint64_t win;       /* window_ms; 0 = plain counter */
        } ctr;
    } u;
    size_t klen;
    unsigned char key[];
};

struct shard {
    _Alignas(64) pthread_mutex_t lock;
    struct ent **tab;
    size_t tmask;
    size_t n, cap;
    struct ent *newest, *oldest;
    struct ent **heap;
    size_t hn, hcap;
};

struct store {
    uint64_t k0, k1;
    size_t nshards;
    _Atomic size_t count;
    struct shard *shards;
};

/* ---- hashing: SipHash-1-3 ---- */

static uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

#define SIPROUND                                                                    \
    do {                                                                            \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);                   \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                                      \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                                      \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);                   \
    } while (0)

static uint64_t siphash13(uint64_t k0, uint64_t k1, const unsigned char *p, size_t n)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)n << 56;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m = 0;
        for (int k = 7; k >= 0; k--)
            m = (m << 8) | p[i + (size_t)k];
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (int k = 0; i + (size_t)k < n; k++)
        b |= (uint64_t)p[i + (size_t)k] << (8 * k);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- saturating arithmetic ---- */

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static uint64_t usat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ---- heap of expiring entries (per shard, under its lock) ---- */

static void heap_place(struct shard *sh, size_t i, struct ent *e)
{
    sh->heap[i] = e;
    e->heap_idx = i;
}

static void heap_fix(struct shard *sh, size_t i)
{
    struct ent *e = sh->heap[i];
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (sh->heap[up]->expires <= e->expires)
            break;
        heap_place(sh, i, sh->heap[up]);
        i = up;
    }
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        uint64_t best = e->expires;
        if (l < sh->hn && sh->heap[l]->expires < best)
            m = l, best = sh->heap[l]->expires;
        if (l + 1 < sh->hn && sh->heap[l + 1]->expires < best)
            m = l + 1;
        if (m == i)
            break;
        heap_place(sh, i, sh->heap[m]);
        i = m;
    }
    heap_place(sh, i, e);
}

static void heap_remove(struct shard *sh, struct ent *e)
{
    size_t i = e->heap_idx;
    e->heap_idx = NO_HEAP;
    struct ent *last = sh->heap[--sh->hn];
    if (i == sh->hn)
        return;
    heap_place(sh, i, last);
    heap_fix(sh, i);
}

/* Sets e's expiry (0 = never), keeping the heap in order. Cannot fail: room was reserved. */
static void set_expiry(struct shard *sh, struct ent *e, uint64_t expires)
{
    if (e->heap_idx == NO_HEAP) {
        e->expires = expires;
        if (!expires)
            return;
        heap_place(sh, sh->hn++, e);
        heap_fix(sh, e->heap_idx);
    } else if (!expires) {
        heap_remove(sh, e);
        e->expires = 0;
    } else {
        e->expires = expires;
        heap_fix(sh, e->heap_idx);
    }
}

/* ---- entries (under the shard lock) ---- */

static void lru_unlink(struct shard *sh, struct ent *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        sh->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        sh->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(struct shard *sh, struct ent *e)
{
    e->newer = NULL;
    e->older = sh->newest;
    if (sh->newest)
        sh->newest->newer = e;
    else
        sh->oldest = e;
    sh->newest = e;
}

static void touch(struct shard *sh, struct ent *e)
{
    if (sh->newest != e) {
        lru_unlink(sh, e);
        lru_push(sh, e);
    }
}

static void remove_entry(store *s, struct shard *sh, struct ent *e)
{
    struct ent **pp = &sh->tab[e->hash & sh->tmask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(sh, e);
    if (e->heap_idx != NO_HEAP)
        heap_remove(sh, e);
    if (e->type == T_KV)
        free(e->u.kv.val);
    free(e);
    sh->n--;
    atomic_fetch_sub_explicit(&s->count, 1, memory_order_relaxed);
}

static int is_expired(const struct ent *e, uint64_t now)
{
    return e->expires && now >= e->expires;
}

static size_t reclaim_expired(store *s, struct shard *sh, uint64_t now)
{
    size_t n = 0;
    while (sh->hn && now >= sh->heap[0]->expires) {
        remove_entry(s, sh, sh->heap[0]);
        n++;
    }
    return n;
}

static struct ent *find(struct shard *sh, uint64_t h, const char *key, size_t klen)
{
    for (struct ent *e = sh->tab[h & sh->tmask]; e; e = e->hnext)
        if (e->hash == h && e->klen == klen && (!klen || !memcmp(e->key, key, klen)))
            return e;
    return NULL;
}

/* Finds a live entry; an expired one is dropped on the way. */
static struct ent *find_live(store *s, struct shard *sh, uint64_t h, const char *key, size_t klen,
                             uint64_t now)
{
    struct ent *e = find(sh, h, key, klen);
    if (e && is_expired(e, now)) {
        remove_entry(s, sh, e);
        e = NULL;
    }
    return e;
}

static void grow_table(struct shard *sh)
{
    size_t nb = (sh->tmask + 1) * 2;
    struct ent **t = calloc(nb, sizeof *t);
    if (!t)
        return; /* longer chains, still correct */
    for (struct ent *e = sh->newest; e; e = e->older) {
        size_t i = e->hash & (nb - 1);
        e->hnext = t[i];
        t[i] = e;
    }
    free(sh->tab);
    sh->tab = t;
    sh->tmask = nb - 1;
}

/* Creates an entry of the given type, making room first. NULL on ENOMEM. */
static struct ent *insert(store *s, struct shard *sh, uint64_t h, const char *key, size_t klen,
                          int type, uint64_t now)
{
    if (sh->n >= sh->cap) {
        reclaim_expired(s, sh, now);
        if (sh->n >= sh->cap)
            remove_entry(s, sh, sh->oldest);
    }
    if (sh->hcap < sh->n + 1) {
        size_t nc = sh->hcap ? sh->hcap * 2 : 16;
        if (nc > sh->cap)
            nc = sh->cap;
        struct ent **nh = realloc(sh->heap, nc * sizeof *nh);
        if (!nh)
            return NULL;
        sh->heap = nh;
        sh->hcap = nc;
    }
    if (klen > SIZE_MAX - sizeof(struct ent))
        return NULL;
    struct ent *e = calloc(1, sizeof *e + klen);
    if (!e)
        return NULL;
    e->hash = h;
    e->heap_idx = NO_HEAP;
    e->type = type;
    e->klen = klen;
    if (klen)
        memcpy(e->key, key, klen);
    size_t i = h & sh->tmask;
    e->hnext = sh->tab[i];
    sh->tab[i] = e;
    lru_push(sh, e);
    sh->n++;
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    if (sh->n > sh->tmask + 1)
        grow_table(sh);
    return e;
}

static struct shard *shard_for(store *s, const char *key, size_t klen, uint64_t *h)
{
    *h = siphash13(s->k0, s->k1, (const unsigned char *)key, klen);
    return &s->shards[(*h >> 40) & (s->nshards - 1)];
}

/* ---- counters ---- */

/* Moves the counter's windows up to now and refreshes its expiry. */
static void roll(struct shard *sh, struct ent *e, uint64_t win, uint64_t now)
{
    if (e->u.ctr.win != win) {
        e->u.ctr.cur = e->u.ctr.prev = 0;
        e->u.ctr.win = win;
        e->u.ctr.start = win ? now - now % win : 0;
    } else if (win) {
        uint64_t start = now - now % win;
        if (start > e->u.ctr.start) {
            e->u.ctr.prev = start - e->u.ctr.start == win ? e->u.ctr.cur : 0;
            e->u.ctr.cur = 0;
            e->u.ctr.start = start;
        } /* start < e->u.ctr.start: the clock went back; keep the current window */
    }
    set_expiry(sh, e, win ? usat_add(e->u.ctr.start, usat_add(win, win)) : 0);
}

/* cur + ceil(prev * (W - e) / W), saturating. */
static int64_t window_total(const struct ent *e, uint64_t now)
{
    int64_t cur = e->u.ctr.cur, prev = e->u.ctr.prev;
    uint64_t w = e->u.ctr.win;
    if (!w || !prev)
        return cur;
    uint64_t el = now > e->u.ctr.start ? now - e->u.ctr.start : 0;
    if (el >= w)
        return cur;
    uint64_t rest = w - el; /* 1..w */
    int64_t part;
#ifdef __SIZEOF_INT128__
    __int128 num = (__int128)prev * (__int128)rest;
    __int128 q = num / (__int128)w;
    if (num % (__int128)w > 0)
        q++;
    part = (int64_t)q; /* |q| <= |prev| */
#else
    long double x = (long double)prev * (long double)rest / (long double)w;
    part = (int64_t)x;
    if ((long double)part < x)
        part++;
#endif
    return sat_add(cur, part);
}

int64_t store_incr(store *s, const char *key, size_t klen, int64_t by, uint64_t window_ms,
                   uint64_t now_ms)
{
    int64_t total = 0;
    store_incr_if_below(s, key, klen, by, INT64_MAX, window_ms, now_ms, &total);
    return total;
}

int store_incr_if_below(store *s, const char *key, size_t klen, int64_t by, int64_t limit,
                        uint64_t window_ms, uint64_t now_ms, int64_t *total)
{
    uint64_t h;
    struct shard *sh = shard_for(s, key, klen, &h);
    int rc = -1;
    int64_t t = 0;
    pthread_mutex_lock(&sh->lock);
    struct ent *e = find_live(s, sh, h, key, klen, now_ms);
    if (e && e->type != T_CTR)
        goto done;
    if (!e) {
        /* nothing counted yet: total 0, and a read or a refused add creates nothing */
        if (by == 0 || (by > 0 && by > limit)) {
            rc = by == 0 ? 1 : 0;
            goto done;
        }
        e = insert(s, sh, h, key, klen, T_CTR, now_ms);
        if (!e)
            goto done;
    }
    roll(sh, e, window_ms, now_ms);
    t = window_total(e, now_ms);
    if (by > 0 && sat_add(t, by) > limit) {
        rc = 0;
    } else {
        e->u.ctr.cur = sat_add(e->u.ctr.cur, by);
        t = window_total(e, now_ms);
        rc = 1;
    }
    touch(sh, e);
done:
    pthread_mutex_unlock(&sh->lock);
    if (total)
        *total = t;
    return rc;
}

/* ---- key-value ---- */

int store_set(store *s, const char *key, size_t klen, const void *val, size_t vlen, uint64_t ttl_ms,
              uint64_t now_ms)
{
    uint64_t h;
    struct shard *sh = shard_for(s, key, klen, &h);
    if (vlen == SIZE_MAX)
        return -1;
    void *copy = malloc(vlen ? vlen : 1);
    if (!copy)
        return -1;
    if (vlen)
        memcpy(copy, val, vlen);
    int rc = -1;
    pthread_mutex_lock(&sh->lock);
    struct ent *e = find_live(s, sh, h, key, klen, now_ms);
    if (e && e->type != T_KV)
        goto done;
    if (!e) {
        e = insert(s, sh, h, key, klen, T_KV, now_ms);
        if (!e)
            goto done;
    } else {
        free(e->u.kv.val);
    }
    e->u.kv.val = copy;
    e->u.kv.vlen = vlen;
    copy = NULL;
    set_expiry(sh, e, ttl_ms ? usat_add(now_ms, ttl_ms) : 0);
    touch(sh, e);
    rc = 0;
done:
    pthread_mutex_unlock(&sh->lock);
    free(copy);
    return rc;
}

int store_get(store *s, const char *key, size_t klen, void **val, size_t *vlen, uint64_t now_ms)
{
    uint64_t h;
    struct shard *sh = shard_for(s, key, klen, &h);
    int rc = -1;
    pthread_mutex_lock(&sh->lock);
    struct ent *e = find_live(s, sh, h, key, klen, now_ms);
    if (!e || e->type != T_KV)
        goto done;
    if (val) {
        char *copy = malloc(e->u.kv.vlen + 1);
        if (!copy)
            goto done;
        if (e->u.kv.vlen)
            memcpy(copy, e->u.kv.val, e->u.kv.vlen);
        copy[e->u.kv.vlen] = '\0';
        *val = copy;
    }
    if (vlen)
        *vlen = e->u.kv.vlen;
    touch(sh, e);
    rc = 0;
done:
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

int store_del(store *s, const char *key, size_t klen)
{
    uint64_t h;
    struct shard *sh = shard_for(s, key, klen, &h);
    pthread_mutex_lock(&sh->lock);
    struct ent *e = find(sh, h, key, klen);
    if (e)
        remove_entry(s, sh, e);
    pthread_mutex_unlock(&sh->lock);
    return e ? 0 : -1;
}

size_t store_sweep(store *s, uint64_t now_ms)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nshards; i++) {
        struct shard *sh = &s->shards[i];
        pthread_mutex_lock(&sh->lock);
        n += reclaim_expired(s, sh, now_ms);
        pthread_mutex_unlock(&sh->lock);
    }
    return n;
}

size_t store_count(store *s)
{
    return atomic_load_explicit(&s->count, memory_order_relaxed);
}

/* ---- lifetime ---- */

store *store_new(size_t max_entries)
{
    if (max_entries == 0)
        return NULL;
    store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    size_t ns = MAX_SHARDS;
    while (ns > 1 && max_entries / ns < MIN_PER_SHARD)
        ns /= 2;
    s->nshards = ns;
    atomic_init(&s->count, 0);
    uint64_t k[2];
    if (getrandom(k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uintptr_t)s;
        k[1] = (uint64_t)ts.tv_sec * 0xc2b2ae3d27d4eb4fULL ^ (uintptr_t)&ts;
    }
    s->k0 = k[0];
    s->k1 = k[1];
    s->shards = aligned_alloc(64, ns * sizeof *s->shards);
    if (!s->shards) {
        free(s);
        return NULL;
    }
    memset(s->shards, 0, ns * sizeof *s->shards);
    size_t made = 0;
    for (; made < ns; made++) {
        struct shard *sh = &s->shards[made];
        sh->cap = max_entries / ns;
        sh->tab = calloc(16, sizeof *sh->tab);
        if (!sh->tab || pthread_mutex_init(&sh->lock, NULL)) {
            free(sh->tab);
            goto fail;
        }
        sh->tmask = 15;
    }
    return s;
fail:
    while (made--) {
        pthread_mutex_destroy(&s->shards[made].lock);
        free(s->shards[made].tab);
    }
    free(s->shards);
    free(s);
    return NULL;
}

void store_free(store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nshards; i++) {
        struct shard *sh = &s->shards[i];
        for (struct ent *e = sh->newest, *n; e; e = n) {
            n = e->older;
            if (e->type == T_KV)
                free(e->u.kv.val);
            free(e);
        }
        free(sh->tab);
        free(sh->heap);
        pthread_mutex_destroy(&sh->lock);
    }
    free(s->shards);
    free(s);
}
