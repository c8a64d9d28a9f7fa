/* test_store.c - the in-process store with a simulated clock: windows, weighting, TTL, LRU,
 * types, and threads (exact limits under contention, concurrent set/get).
 * AIGW_TEST_ITERS (env) scales the threaded loops down for slow checkers (helgrind, TSan). */
#include "store.h"
#include "t.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define K(s) (s), (sizeof(s) - 1)

static long iters(long dflt)
{
    const char *e = getenv("AIGW_TEST_ITERS");
    long n = e ? atol(e) : 0;
    return n > 0 ? n : dflt;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void t_new_free(void)
{
    T_CHECK(store_new(0) == NULL);
    store *s = store_new(1);
    T_CHECK(s != NULL);
    T_EQ_INT(store_count(s), 0);
    store_free(s);
    store_free(NULL);
}

static void t_window_rollover(void)
{
    store *s = store_new(1000);
    const uint64_t W = 1000, T0 = 5000; /* T0 is window-aligned */
    T_EQ_INT(store_incr(s, K("k"), 0, W, T0), 0);   /* read of a missing key */
    T_EQ_INT(store_count(s), 0);                    /* ... creates nothing */
    T_EQ_INT(store_incr(s, K("k"), 3, W, T0), 3);
    T_EQ_INT(store_incr(s, K("k"), 4, W, T0 + 999), 7);
    T_EQ_INT(store_count(s), 1);
    /* aligned read at the next window: exact, previous window counted whole */
    T_EQ_INT(store_incr(s, K("k"), 0, W, T0 + 1000), 7);
    /* two windows later: all gone */
    T_EQ_INT(store_incr(s, K("k"), 0, W, T0 + 2000), 0);
    T_EQ_INT(store_incr(s, K("k"), 2, W, T0 + 2000), 2);
    /* a skipped window resets both */
    T_EQ_INT(store_incr(s, K("k"), 1, W, T0 + 4500), 1);
    /* window_ms 0: plain counter, never expires */
    T_EQ_INT(store_incr(s, K("plain"), 5, 0, 1), 5);
    T_EQ_INT(store_incr(s, K("plain"), 5, 0, UINT64_MAX / 2), 10);
    T_EQ_INT(store_sweep(s, UINT64_MAX), 1); /* only "k" can expire */
    T_EQ_INT(store_incr(s, K("plain"), 0, 0, UINT64_MAX), 10);
    store_free(s);
}

static void t_window_weighting(void)
{
    store *s = store_new(1000);
    const uint64_t W = 1000, T0 = 10000;
    store_incr(s, K("w"), 100, W, T0 + 500); /* previous window: 100 */
    /* e = 250 into the next window: 100 * 750/1000 = 75 */
    T_EQ_INT(store_incr(s, K("w"), 0, W, T0 + 1250), 75);
    T_EQ_INT(store_incr(s, K("w"), 10, W, T0 + 1500), 10 + 50);
    T_EQ_INT(store_incr(s, K("w"), 0, W, T0 + 1999), 10 + 1); /* 100 * 1/1000 = 0.1 -> rounds up */
    /* rollover: prev = 10, cur = 0 */
    T_EQ_INT(store_incr(s, K("w"), 0, W, T0 + 2000), 10);
    T_EQ_INT(store_incr(s, K("w"), 0, W, T0 + 2900), 1);
    /* refunds: negative adds */
    T_EQ_INT(store_incr(s, K("w"), -3, W, T0 + 2900), -2);
    /* clock going back stays in the current window */
    T_EQ_INT(store_incr(s, K("w"), 0, W, T0 + 1000), -3 + 10);
    /* changing the window restarts the counter */
    T_EQ_INT(store_incr(s, K("w"), 1, 60000, T0 + 2900), 1);
    /* saturation */
    T_EQ_INT(store_incr(s, K("sat"), INT64_MAX, 0, 0), INT64_MAX);
    T_EQ_INT(store_incr(s, K("sat"), 1, 0, 0), INT64_MAX);
    T_EQ_INT(store_incr(s, K("neg"), INT64_MIN, 0, 0), INT64_MIN);
    T_EQ_INT(store_incr(s, K("neg"), -1, 0, 0), INT64_MIN);
    /* large window and values: no overflow in the weighting */
    uint64_t day = 86400000;
    store_incr(s, K("big"), INT64_MAX / 2, day, 0);
    T_EQ_INT(store_incr(s, K("big"), 0, day, day + day / 2), (INT64_MAX / 2 + 1) / 2);
    store_free(s);
}

static void t_incr_if_below(void)
{
    store *s = store_new(1000);
    const uint64_t W = 60000;
    int64_t total = -1;
    T_EQ_INT(store_incr_if_below(s, K("tok"), 50, 100, W, 0, &total), 1);
    T_EQ_INT(total, 50);
    T_EQ_INT(store_incr_if_below(s, K("tok"), 50, 100, W, 1, &total), 1);
    T_EQ_INT(total, 100);
    T_EQ_INT(store_incr_if_below(s, K("tok"), 1, 100, W, 2, &total), 0);
    T_EQ_INT(total, 100);
    /* settle: refund always allowed, even above the limit */
    T_EQ_INT(store_incr_if_below(s, K("tok"), -30, 100, W, 3, &total), 1);
    T_EQ_INT(total, 70);
    T_EQ_INT(store_incr_if_below(s, K("tok"), 30, 100, W, 4, &total), 1);
    T_EQ_INT(total, 100);
    T_EQ_INT(store_incr_if_below(s, K("tok"), -10, 50, W, 5, &total), 1);
    T_EQ_INT(total, 90);
    /* refused on a missing key creates nothing */
    T_EQ_INT(store_incr_if_below(s, K("fresh"), 200, 100, W, 0, &total), 0);
    T_EQ_INT(total, 0);
    T_EQ_INT(store_count(s), 1);
    T_EQ_INT(store_incr_if_below(s, K("fresh"), 100, 100, W, 0, NULL), 1);
    /* the weighted previous window counts against the limit */
    T_EQ_INT(store_incr_if_below(s, K("fresh"), 60, 100, W, W + W / 2, &total), 0);
    T_EQ_INT(total, 50);
    T_EQ_INT(store_incr_if_below(s, K("fresh"), 50, 100, W, W + W / 2, &total), 1);
    T_EQ_INT(total, 100);
    store_free(s);
}

static void t_kv_ttl(void)
{
    store *s = store_new(1000);
    void *v = NULL;
    size_t n = 0;
    T_EQ_INT(store_get(s, K("a"), &v, &n, 0), -1);
    T_EQ_INT(store_set(s, K("a"), "hello", 5, 100, 1000), 0);
    T_EQ_INT(store_get(s, K("a"), &v, &n, 1099), 0);
    T_EQ_INT(n, 5);
    T_EQ_STR((char *)v, "hello"); /* NUL after the bytes */
    free(v);
    v = NULL;
    T_EQ_INT(store_get(s, K("a"), &v, &n, 1100), -1); /* expired at set + ttl */
    T_CHECK(v == NULL);
    T_EQ_INT(store_count(s), 0); /* dropped on the way */
    /* no expiry, binary value with NUL, replace value and TTL */
    T_EQ_INT(store_set(s, K("b"), "x\0y", 3, 0, 0), 0);
    T_EQ_INT(store_get(s, K("b"), &v, &n, UINT64_MAX), 0);
    T_EQ_INT(n, 3);
    T_CHECK(!memcmp(v, "x\0y", 3));
    free(v);
    T_EQ_INT(store_set(s, K("b"), "", 0, 10, 0), 0);
    T_EQ_INT(store_get(s, K("b"), NULL, &n, 9), 0); /* existence check without copy */
    T_EQ_INT(n, 0);
    T_EQ_INT(store_get(s, K("b"), NULL, NULL, 10), -1);
    T_EQ_INT(store_set(s, K("c"), "1", 1, 10, 0), 0);
    T_EQ_INT(store_set(s, K("c"), "2", 1, 0, 5), 0); /* TTL removed */
    T_EQ_INT(store_get(s, K("c"), &v, NULL, 1000000), 0);
    T_EQ_STR((char *)v, "2");
    free(v);
    /* sweep */
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof key, "t%d", i);
        store_set(s, key, strlen(key), "v", 1, (uint64_t)(i + 1) * 10, 0);
    }
    T_EQ_INT(store_count(s), 101);
    T_EQ_INT(store_sweep(s, 500), 50);
    T_EQ_INT(store_count(s), 51);
    T_EQ_INT(store_sweep(s, 500), 0);
    T_EQ_INT(store_sweep(s, 2000), 50);
    T_EQ_INT(store_count(s), 1);
    /* del */
    T_EQ_INT(store_del(s, K("c")), 0);
    T_EQ_INT(store_del(s, K("c")), -1);
    T_EQ_INT(store_count(s), 0);
    /* empty and binary keys */
    T_EQ_INT(store_set(s, "", 0, "e", 1, 0, 0), 0);
    T_EQ_INT(store_set(s, "\0\1", 2, "f", 1, 0, 0), 0);
    T_EQ_INT(store_set(s, "\0\2", 2, "g", 1, 0, 0), 0);
    T_EQ_INT(store_get(s, "\0\1", 2, &v, NULL, 0), 0);
    T_EQ_STR((char *)v, "f");
    free(v);
    T_EQ_INT(store_get(s, "", 0, &v, NULL, 0), 0);
    T_EQ_STR((char *)v, "e");
    free(v);
    store_free(s);
}

static void t_types(void)
{
    store *s = store_new(1000);
    void *v = NULL;
    int64_t total = 7;
    store_incr(s, K("ctr"), 5, 1000, 0);
    T_EQ_INT(store_get(s, K("ctr"), &v, NULL, 0), -1);
    T_EQ_INT(store_set(s, K("ctr"), "x", 1, 0, 0), -1);
    T_EQ_INT(store_incr(s, K("ctr"), 0, 1000, 0), 5); /* unchanged */
    store_set(s, K("kv"), "x", 1, 100, 0);
    T_EQ_INT(store_incr(s, K("kv"), 5, 1000, 0), 0);
    T_EQ_INT(store_incr_if_below(s, K("kv"), 1, 10, 1000, 0, &total), -1);
    T_EQ_INT(total, 0);
    T_EQ_INT(store_get(s, K("kv"), &v, NULL, 0), 0);
    free(v);
    /* expired entries free the key for the other type */
    T_EQ_INT(store_incr(s, K("kv"), 5, 1000, 100), 5);
    T_EQ_INT(store_set(s, K("ctr"), "y", 1, 0, 2000), 0); /* counter windows both past at 2000 */
    T_EQ_INT(store_get(s, K("ctr"), &v, NULL, 2000), 0);
    T_EQ_STR((char *)v, "y");
    free(v);
    store_free(s);
}

static void t_lru_eviction(void)
{
    /* below 32 entries there is one shard, so LRU order is global and exact */
    store *s = store_new(4);
    void *v;
    store_set(s, K("a"), "1", 1, 0, 0);
    store_set(s, K("b"), "2", 1, 0, 0);
    store_incr(s, K("c"), 1, 0, 0);
    store_set(s, K("d"), "4", 1, 0, 0);
    T_EQ_INT(store_count(s), 4);
    T_EQ_INT(store_get(s, K("a"), &v, NULL, 0), 0); /* a becomes most recent */
    free(v);
    store_incr(s, K("c"), 1, 0, 0); /* c too */
    store_set(s, K("e"), "5", 1, 0, 0); /* evicts b */
    T_EQ_INT(store_count(s), 4);
    T_EQ_INT(store_get(s, K("b"), NULL, NULL, 0), -1);
    T_EQ_INT(store_get(s, K("a"), NULL, NULL, 0), 0);
    T_EQ_INT(store_get(s, K("d"), NULL, NULL, 0), 0);
    T_EQ_INT(store_get(s, K("e"), NULL, NULL, 0), 0);
    T_EQ_INT(store_incr(s, K("c"), 0, 0, 0), 2);
    /* LRU now (old->new): a d e c. An expired entry goes before any live one. */
    store_set(s, K("d"), "4", 1, 50, 100); /* d: expires at 150, now most recent */
    store_set(s, K("f"), "6", 1, 0, 200); /* full: d is expired -> reclaimed, a stays */
    T_EQ_INT(store_get(s, K("a"), NULL, NULL, 200), 0);
    T_EQ_INT(store_get(s, K("d"), NULL, NULL, 200), -1);
    T_EQ_INT(store_count(s), 4);
    /* a read of a missing counter and a refused reservation never evict */
    T_EQ_INT(store_incr(s, K("zz"), 0, 1000, 200), 0);
    T_EQ_INT(store_incr_if_below(s, K("zz"), 5, 1, 1000, 200, NULL), 0);
    T_EQ_INT(store_get(s, K("e"), NULL, NULL, 200), 0);
    T_EQ_INT(store_count(s), 4);
    store_free(s);

    /* many shards: the total never exceeds max_entries */
    s = store_new(1000);
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        store_incr(s, key, strlen(key), 1, 1000, 0);
        if (store_count(s) > 1000) {
            T_CHECK(store_count(s) <= 1000);
            break;
        }
    }
    T_CHECK(store_count(s) <= 1000);
    T_CHECK(store_count(s) >= 900); /* shards fill evenly */
    /* the most recent keys survive */
    T_EQ_INT(store_incr(s, K("key-19999"), 0, 1000, 0), 1);
    store_free(s);
}

/* ---- threads ---- */

struct limiter {
    store *s;
    long tries;
    int64_t limit;
    long added;
};

static void *limiter_thread(void *arg)
{
    struct limiter *l = arg;
    for (long i = 0; i < l->tries; i++) {
        int64_t by = 1 + i % 3;
        if (store_incr_if_below(l->s, K("shared"), by, l->limit, 1000, 7000, NULL) == 1) {
            l->added += by;
            /* settle: hand back part of some reservations, then take it again */
            if (i % 5 == 0) {
                store_incr_if_below(l->s, K("shared"), -by, l->limit, 1000, 7000, NULL);
                l->added -= by;
            }
        }
    }
    return NULL;
}

static void t_threads_limit_exact(void)
{
    store *s = store_new(1000);
    long tries = iters(1000000) / 4;
    int64_t limit = (int64_t)tries; /* reached part way through */
    struct limiter l[2] = {{s, tries, limit, 0}, {s, tries, limit, 0}};
    pthread_t th[2];
    double t0 = now_s();
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, limiter_thread, &l[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    double t1 = now_s();
    int64_t total = store_incr(s, K("shared"), 0, 1000, 7000);
    T_EQ_INT(total, l[0].added + l[1].added);
    T_CHECK(total <= limit);
    T_CHECK(total >= limit - 10); /* filled up: adds of 1 fit until the end */
    printf("  store_incr_if_below 2 threads, one key: %.1f ns/op per thread\n",
           (t1 - t0) * 1e9 / (double)tries);
    store_free(s);
}

struct kvworker {
    store *s;
    int id;
    long n;
    int bad;
};

static void *kv_thread(void *arg)
{
    struct kvworker *w = arg;
    char key[32], val[64];
    for (long i = 0; i < w->n; i++) {
        snprintf(key, sizeof key, "k%ld", i % 500);
        /* the value names its key, so a reader can check it got a whole, matching value */
        int len = snprintf(val, sizeof val, "%s=%d:%ld", key, w->id, i);
        if (i % 2 == 0) {
            store_set(w->s, key, strlen(key), val, (size_t)len, i % 3 ? 0 : 50, (uint64_t)i);
        } else {
            void *v = NULL;
            size_t n = 0;
            if (store_get(w->s, key, strlen(key), &v, &n, (uint64_t)i) == 0) {
                size_t kl = strlen(key);
                if (n != strlen(v) || n <= kl || memcmp(v, key, kl) || ((char *)v)[kl] != '=')
                    w->bad++;
                free(v);
            }
        }
        if (i % 97 == 0)
            store_del(w->s, key, strlen(key));
        if (i % 1000 == 0)
            store_sweep(w->s, (uint64_t)i);
        snprintf(key, sizeof key, "c%ld", i % 300);
        store_incr(w->s, key, strlen(key), 1, 100, (uint64_t)i);
    }
    return NULL;
}

static void t_threads_set_get(void)
{
    store *s = store_new(600); /* smaller than the key set: evictions under contention too */
    long n = iters(1000000) / 5;
    struct kvworker w[2] = {{s, 1, n, 0}, {s, 2, n, 0}};
    pthread_t th[2];
    double t0 = now_s();
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, kv_thread, &w[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    double t1 = now_s();
    T_EQ_INT(w[0].bad + w[1].bad, 0);
    T_CHECK(store_count(s) <= 600);
    printf("  mixed set/get/incr 2 threads: %.1f ns per loop (about 2.5 calls)\n",
           (t1 - t0) * 1e9 / (double)n);
    store_free(s);
}

static void t_incr_speed(void)
{
    store *s = store_new(100000);
    long n = iters(1000000);
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        store_incr(s, K("route:chat|key:abc123"), 1, 60000, (uint64_t)i / 64);
    double t1 = now_s();
    printf("  store_incr 1 thread: %.1f ns/op\n", (t1 - t0) * 1e9 / (double)n);
    if (n < 64 * 60000) /* all in the first window */
        T_EQ_INT(store_incr(s, K("route:chat|key:abc123"), 0, 60000, (uint64_t)(n - 1) / 64), n);
    store_free(s);
}

int main(void)
{
    T_RUN(t_new_free);
    T_RUN(t_window_rollover);
    T_RUN(t_window_weighting);
    T_RUN(t_incr_if_below);
    T_RUN(t_kv_ttl);
    T_RUN(t_types);
    T_RUN(t_lru_eviction);
    T_RUN(t_threads_limit_exact);
    T_RUN(t_threads_set_get);
    T_RUN(t_incr_speed);
    return T_END();
}
