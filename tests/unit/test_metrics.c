/* test_metrics.c - metrics registry: definitions, exposition text, cardinality bound, threads.
 * AIGW_TEST_ITERS (env) scales the threaded loops down for slow checkers (helgrind, TSan). */
#include "metrics.h"
#include "t.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

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

/* Counts occurrences of line (a whole line, without '\n') in text. */
static int count_line(const char *text, const char *line)
{
    int n = 0;
    size_t ll = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p += ll)
        if ((p == text || p[-1] == '\n') && p[ll] == '\n')
            n++;
    return n;
}

static int count_prefix(const char *text, const char *prefix)
{
    int n = 0;
    size_t pl = strlen(prefix);
    for (const char *p = text; (p = strstr(p, prefix)); p += pl)
        if (p == text || p[-1] == '\n')
            n++;
    return n;
}

static void t_define_validation(void)
{
    met_registry *r = met_new();
    const char *l1[] = {"route", "status", NULL};
    const char *l2[] = {"route", NULL};
    const char *bad1[] = {"1x", NULL};
    const char *bad2[] = {"__reserved", NULL};
    const char *bad3[] = {"a", "a", NULL};
    const char *bad4[] = {"le", NULL};
    const char *bad5[] = {"a-b", NULL};
    const char *nine[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", NULL};
    const char *eight[] = {"a", "b", "c", "d", "e", "f", "g", "h", NULL};
    int id = met_define(r, MET_COUNTER, "aigw_requests_total", "Requests.", l1, NULL, 0, 100);
    T_EQ_INT(id, 0);
    T_EQ_INT(met_define(r, MET_COUNTER, "aigw_requests_total", "other help", l1, NULL, 0, 5), 0);
    T_EQ_INT(met_define(r, MET_GAUGE, "aigw_requests_total", "x", l1, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_COUNTER, "aigw_requests_total", "x", l2, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_COUNTER, "aigw_requests_total", "x", NULL, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_COUNTER, "", "x", NULL, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_COUNTER, NULL, "x", NULL, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_COUNTER, "9lives", "x", NULL, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_COUNTER, "has space", "x", NULL, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_COUNTER, "ns:sub_x9", "x", NULL, NULL, 0, 0), 1);
    T_EQ_INT(met_define(r, MET_COUNTER, "c_bad1", "x", bad1, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_COUNTER, "c_bad2", "x", bad2, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_COUNTER, "c_bad3", "x", bad3, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_COUNTER, "c_bad5", "x", bad5, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_HISTOGRAM, "h_le", "x", bad4, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_GAUGE, "g_le", "x", bad4, NULL, 0, 0), 2); /* fine off histograms */
    T_EQ_INT(met_define(r, MET_COUNTER, "c_nine", "x", nine, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_COUNTER, "c_eight", "x", eight, NULL, 0, 0), 3);
    T_EQ_INT(met_define(r, (met_kind)7, "c_kind", "x", NULL, NULL, 0, 0), -1);

    double asc[] = {0.1, 0.5, 1};
    double desc[] = {0.1, 0.05};
    double dup[] = {0.1, 0.1};
    double nan_b[] = {0.1, NAN};
    double with_inf[] = {0.1, 0.5, 1, INFINITY};
    T_EQ_INT(met_define(r, MET_HISTOGRAM, "h1", "x", NULL, asc, 3, 0), 4);
    T_EQ_INT(met_define(r, MET_HISTOGRAM, "h1", "x", NULL, with_inf, 4, 0), 4); /* +Inf dropped */
    T_EQ_INT(met_define(r, MET_HISTOGRAM, "h1", "x", NULL, asc, 2, 0), -1);
    T_EQ_INT(met_define(r, MET_HISTOGRAM, "h1", "x", NULL, NULL, 0, 0), -1);
    T_EQ_INT(met_define(r, MET_HISTOGRAM, "h2", "x", NULL, desc, 2, 0), -1);
    T_EQ_INT(met_define(r, MET_HISTOGRAM, "h3", "x", NULL, dup, 2, 0), -1);
    T_EQ_INT(met_define(r, MET_HISTOGRAM, "h4", "x", NULL, nan_b, 2, 0), -1);
    T_EQ_INT(met_define(r, MET_HISTOGRAM, "h5", "x", NULL, NULL, 0, 0), 5);
    T_EQ_INT(met_define(r, MET_HISTOGRAM, "h5", "x", NULL, NULL, 0, 0), 5);
    T_EQ_INT(met_define(NULL, MET_COUNTER, "x", "x", NULL, NULL, 0, 0), -1);
    met_free(r);
    met_free(NULL);
}

static void t_counter_gauge_text(void)
{
    met_registry *r = met_new();
    const char *labels[] = {"route", "code", NULL};
    int c = met_define(r, MET_COUNTER, "aigw_requests_total", "Requests handled.", labels, NULL, 0, 10);
    int g = met_define(r, MET_GAUGE, "aigw_inflight", "In-flight requests.", NULL, NULL, 0, 0);
    int e = met_define(r, MET_COUNTER, "aigw_empty_total", "Never used.", labels, NULL, 0, 10);
    met_add(r, c, (const char *const[]){"chat", "200"}, 1);
    met_add(r, c, (const char *const[]){"chat", "200"}, 2);
    met_add(r, c, (const char *const[]){"embed", "429"}, 0.5);
    met_add(r, c, (const char *const[]){"chat", NULL}, 1);
    met_add(r, c, (const char *const[]){"chat", "200"}, -5); /* counters only go up */
    met_add(r, c, (const char *const[]){"chat", "200"}, NAN);
    met_set(r, c, (const char *const[]){"chat", "200"}, 100); /* set on a counter: ignored */
    met_observe(r, c, (const char *const[]){"chat", "200"}, 1);
    met_add(r, g, NULL, 3);
    met_add(r, g, NULL, -1);
    met_add(r, 99, NULL, 1);
    met_add(r, -1, NULL, 1);
    met_add(r, c, NULL, 1); /* labelled metric without values: ignored */
    size_t len = 0;
    char *out = met_render(r, &len);
    T_CHECK(out != NULL);
    T_EQ_INT(len, strlen(out));
    T_EQ_STR(out, "# HELP aigw_requests_total Requests handled.\n"
                  "# TYPE aigw_requests_total counter\n"
                  "aigw_requests_total{route=\"chat\",code=\"200\"} 3\n"
                  "aigw_requests_total{route=\"embed\",code=\"429\"} 0.5\n"
                  "aigw_requests_total{route=\"chat\",code=\"\"} 1\n"
                  "# HELP aigw_inflight In-flight requests.\n"
                  "# TYPE aigw_inflight gauge\n"
                  "aigw_inflight 2\n"
                  "# HELP aigw_empty_total Never used.\n"
                  "# TYPE aigw_empty_total counter\n");
    free(out);
    met_set(r, g, NULL, -7.25);
    met_set(r, g, NULL, INFINITY);
    out = met_render(r, NULL);
    T_EQ_INT(count_line(out, "aigw_inflight +Inf"), 1);
    free(out);
    met_set(r, g, NULL, NAN);
    out = met_render(r, NULL);
    T_EQ_INT(count_line(out, "aigw_inflight NaN"), 1);
    free(out);
    (void)e;
    met_free(r);
}

static void t_empty_registry(void)
{
    met_registry *r = met_new();
    size_t len = 99;
    char *out = met_render(r, &len);
    T_EQ_STR(out, "");
    T_EQ_INT(len, 0);
    free(out);
    met_free(r);
}

static void t_histogram_text(void)
{
    met_registry *r = met_new();
    const char *labels[] = {"model", NULL};
    double b[] = {0.005, 0.1, 1};
    int h = met_define(r, MET_HISTOGRAM, "aigw_latency_seconds", "Latency.", labels, b, 3, 10);
    int d = met_define(r, MET_HISTOGRAM, "aigw_ttft_seconds", "TTFT.", NULL, NULL, 0, 0);
    const char *const gpt[] = {"gpt-4o"};
    met_observe(r, h, gpt, 0.005); /* on the bound: le is inclusive */
    met_observe(r, h, gpt, 0.05);
    met_observe(r, h, gpt, 0.5);
    met_observe(r, h, gpt, 2);
    met_observe(r, h, gpt, 1000);
    met_observe(r, h, gpt, NAN);   /* ignored */
    met_observe(r, h, gpt, -1);    /* below all bounds: first bucket */
    met_add(r, h, gpt, 1);         /* wrong kind: ignored */
    met_observe(r, d, NULL, 0.0004);
    met_observe(r, d, NULL, 100);
    char *out = met_render(r, NULL);
    T_EQ_STR(out, "# HELP aigw_latency_seconds Latency.\n"
                  "# TYPE aigw_latency_seconds histogram\n"
                  "aigw_latency_seconds_bucket{model=\"gpt-4o\",le=\"0.005\"} 2\n"
                  "aigw_latency_seconds_bucket{model=\"gpt-4o\",le=\"0.1\"} 3\n"
                  "aigw_latency_seconds_bucket{model=\"gpt-4o\",le=\"1\"} 4\n"
                  "aigw_latency_seconds_bucket{model=\"gpt-4o\",le=\"+Inf\"} 6\n"
                  "aigw_latency_seconds_sum{model=\"gpt-4o\"} 1001.555\n"
                  "aigw_latency_seconds_count{model=\"gpt-4o\"} 6\n"
                  "# HELP aigw_ttft_seconds TTFT.\n"
                  "# TYPE aigw_ttft_seconds histogram\n"
                  "aigw_ttft_seconds_bucket{le=\"0.0005\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"0.001\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"0.0025\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"0.005\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"0.01\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"0.025\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"0.05\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"0.1\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"0.25\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"0.5\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"1\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"2.5\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"5\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"10\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"30\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"60\"} 1\n"
                  "aigw_ttft_seconds_bucket{le=\"+Inf\"} 2\n"
                  "aigw_ttft_seconds_sum 100.0004\n"
                  "aigw_ttft_seconds_count 2\n");
    free(out);
    met_free(r);
}

static void t_escaping(void)
{
    met_registry *r = met_new();
    const char *labels[] = {"path", NULL};
    int c = met_define(r, MET_COUNTER, "esc_total", "Help with \\ and\nnewline and \"quotes\".", labels,
                       NULL, 0, 10);
    met_add(r, c, (const char *const[]){"a\"b\\c\nd"}, 1);
    met_add(r, c, (const char *const[]){"caf\xC3\xA9"}, 1);
    char *out = met_render(r, NULL);
    T_EQ_STR(out, "# HELP esc_total Help with \\\\ and\\nnewline and \"quotes\".\n"
                  "# TYPE esc_total counter\n"
                  "esc_total{path=\"a\\\"b\\\\c\\nd\"} 1\n"
                  "esc_total{path=\"caf\xC3\xA9\"} 1\n");
    free(out);
    met_free(r);
}

static void t_cardinality_bound(void)
{
    met_registry *r = met_new();
    const char *labels[] = {"model", "route", NULL};
    int c = met_define(r, MET_COUNTER, "tok_total", "Tokens.", labels, NULL, 0, 3);
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "model-%d", i);
        met_add(r, c, (const char *const[]){name, "chat"}, 1);
    }
    met_add(r, c, (const char *const[]){"model-0", "chat"}, 10); /* existing series still works */
    met_add(r, c, (const char *const[]){"_other", "_other"}, 5); /* literal: goes to overflow */
    met_add(r, c, (const char *const[]){"\xC3(", "chat"}, 1);    /* invalid UTF-8: overflow */
    char *out = met_render(r, NULL);
    T_EQ_INT(count_prefix(out, "tok_total{"), 4);
    T_EQ_INT(count_line(out, "tok_total{model=\"model-0\",route=\"chat\"} 11"), 1);
    T_EQ_INT(count_line(out, "tok_total{model=\"model-1\",route=\"chat\"} 1"), 1);
    T_EQ_INT(count_line(out, "tok_total{model=\"model-2\",route=\"chat\"} 1"), 1);
    T_EQ_INT(count_line(out, "tok_total{model=\"_other\",route=\"_other\"} 1003"), 1);
    free(out);

    /* invalid UTF-8 never creates a series even when there is room */
    int d = met_define(r, MET_COUNTER, "bad_total", "x", labels, NULL, 0, 10);
    met_add(r, d, (const char *const[]){"\xFF", "x"}, 1);
    met_add(r, d, (const char *const[]){"ok", "x"}, 1);
    out = met_render(r, NULL);
    T_EQ_INT(count_prefix(out, "bad_total{"), 2);
    T_EQ_INT(count_line(out, "bad_total{model=\"_other\",route=\"_other\"} 1"), 1);
    T_EQ_INT(count_line(out, "bad_total{model=\"ok\",route=\"x\"} 1"), 1);
    free(out);
    met_free(r);
}

static void t_long_values_and_lengths(void)
{
    met_registry *r = met_new();
    const char *labels[] = {"v", NULL};
    int c = met_define(r, MET_COUNTER, "long_total", "x", labels, NULL, 0, 10);
    char a[600], b[600];
    memset(a, 'x', sizeof a);
    a[sizeof a - 1] = '\0';
    memcpy(b, a, sizeof b);
    b[400] = 'y'; /* differs only after the cut: same series */
    met_add(r, c, (const char *const[]){a}, 1);
    met_add(r, c, (const char *const[]){b}, 1);
    /* a 2-byte character straddling the cut is dropped whole */
    char u[300];
    memset(u, 'z', sizeof u);
    u[MET_LABEL_VALUE_MAX - 1] = (char)0xC3;
    u[MET_LABEL_VALUE_MAX] = (char)0xA9;
    u[sizeof u - 1] = '\0';
    met_add(r, c, (const char *const[]){u}, 1);
    /* explicit lengths: no NUL needed, and embedded bytes after len ignored */
    const char *vals[] = {"abcdef"};
    size_t lens[] = {3};
    met_add_n(r, c, vals, lens, 2);
    met_add(r, c, (const char *const[]){"abc"}, 1);
    char *out = met_render(r, NULL);
    char want[400];
    snprintf(want, sizeof want, "long_total{v=\"%.*s\"} 2", MET_LABEL_VALUE_MAX, a);
    T_EQ_INT(count_line(out, want), 1);
    snprintf(want, sizeof want, "long_total{v=\"%.*s\"} 1", MET_LABEL_VALUE_MAX - 1, u);
    T_EQ_INT(count_line(out, want), 1);
    T_EQ_INT(count_line(out, "long_total{v=\"abc\"} 3"), 1);
    T_EQ_INT(count_prefix(out, "long_total{"), 3);
    free(out);
    met_free(r);
}

/* ---- threads ---- */

struct hammer {
    met_registry *r;
    int id;
    long n;
    const char *const *labels;
};

static void *hammer_add(void *arg)
{
    struct hammer *h = arg;
    for (long i = 0; i < h->n; i++)
        met_add(h->r, h->id, h->labels, 1);
    return NULL;
}

static double series_value(const char *out, const char *prefix)
{
    const char *p = strstr(out, prefix);
    return p ? strtod(p + strlen(prefix), NULL) : -1;
}

static void t_two_threads_exact(void)
{
    met_registry *r = met_new();
    const char *labels[] = {"route", "code", NULL};
    int c = met_define(r, MET_COUNTER, "hot_total", "x", labels, NULL, 0, 100);
    const char *const lv[] = {"chat", "200"};
    long n = iters(1000000);
    met_add(r, c, lv, 0); /* create the series */

    struct hammer h = {r, c, n, lv};
    double t0 = now_s();
    hammer_add(&h);
    double t1 = now_s();
    printf("  met_add 1 thread: %.1f ns/op\n", (t1 - t0) * 1e9 / (double)n);

    pthread_t th[2];
    t0 = now_s();
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, hammer_add, &h);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    t1 = now_s();
    printf("  met_add 2 threads, same series: %.1f ns/op per thread (%ld ops each)\n",
           (t1 - t0) * 1e9 / (double)n, n);
    char *out = met_render(r, NULL);
    T_CHECK(series_value(out, "hot_total{route=\"chat\",code=\"200\"} ") == (double)(3 * n));
    free(out);
    met_free(r);
}

static void t_two_threads_distinct_series(void)
{
    met_registry *r = met_new();
    const char *labels[] = {"route", NULL};
    int c = met_define(r, MET_COUNTER, "hot2_total", "x", labels, NULL, 0, 100);
    long n = iters(1000000);
    const char *const a[] = {"a"}, *const b[] = {"b"};
    struct hammer h[2] = {{r, c, n, a}, {r, c, n, b}};
    pthread_t th[2];
    double t0 = now_s();
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, hammer_add, &h[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    double t1 = now_s();
    printf("  met_add 2 threads, own series: %.1f ns/op per thread\n", (t1 - t0) * 1e9 / (double)n);
    char *out = met_render(r, NULL);
    T_CHECK(series_value(out, "hot2_total{route=\"a\"} ") == (double)n);
    T_CHECK(series_value(out, "hot2_total{route=\"b\"} ") == (double)n);
    free(out);
    met_free(r);
}

struct churn {
    met_registry *r;
    int c, h;
    int seed;
    long n;
};

/* Creates series concurrently (values from a range wider than max_series), observes histograms
 * and renders while others write. */
static void *churn_thread(void *arg)
{
    struct churn *ch = arg;
    char v[32];
    unsigned x = (unsigned)ch->seed * 2654435761u + 1;
    for (long i = 0; i < ch->n; i++) {
        x = x * 1103515245u + 12345u;
        snprintf(v, sizeof v, "m%u", (x >> 16) % 200);
        met_add(ch->r, ch->c, (const char *const[]){v}, 1);
        met_observe(ch->r, ch->h, (const char *const[]){v}, (double)(i % 7) / 10);
        if (i % 5000 == 0) {
            char *out = met_render(ch->r, NULL);
            free(out);
        }
    }
    return NULL;
}

static void t_concurrent_creation(void)
{
    met_registry *r = met_new();
    const char *labels[] = {"model", NULL};
    int c = met_define(r, MET_COUNTER, "churn_total", "x", labels, NULL, 0, 50);
    double b[] = {0.1, 0.3};
    int h = met_define(r, MET_HISTOGRAM, "churn_seconds", "x", labels, b, 2, 50);
    long n = iters(1000000) / 10;
    struct churn ch[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        ch[i] = (struct churn){r, c, h, i + 1, n};
        pthread_create(&th[i], NULL, churn_thread, &ch[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char *out = met_render(r, NULL);
    /* 50 real series + overflow, sums exact */
    T_EQ_INT(count_prefix(out, "churn_total{"), 51);
    T_EQ_INT(count_prefix(out, "churn_seconds_count{"), 51);
    double total = 0, hcount = 0;
    for (const char *p = out; (p = strstr(p, "\nchurn_total{")); p++)
        total += strtod(strchr(p, '}') + 1, NULL);
    for (const char *p = out; (p = strstr(p, "\nchurn_seconds_count{")); p++)
        hcount += strtod(strchr(p, '}') + 1, NULL);
    T_CHECK(total == (double)(4 * n));
    T_CHECK(hcount == (double)(4 * n));
    T_EQ_INT(count_prefix(out, "churn_total{model=\"_other\"}"), 1);
    free(out);
    met_free(r);
}

struct definer {
    met_registry *r;
    int ids[64];
};

static void *define_thread(void *arg)
{
    struct definer *d = arg;
    char name[32];
    for (int i = 0; i < 64; i++) {
        snprintf(name, sizeof name, "m_%d", i);
        d->ids[i] = met_define(d->r, MET_GAUGE, name, "x", NULL, NULL, 0, 0);
        met_add(d->r, d->ids[i], NULL, 1);
    }
    return NULL;
}

static void t_concurrent_define(void)
{
    met_registry *r = met_new();
    struct definer d[2] = {{r, {0}}, {r, {0}}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, define_thread, &d[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 64; i++) {
        T_CHECK(d[0].ids[i] >= 0);
        T_EQ_INT(d[0].ids[i], d[1].ids[i]);
    }
    char *out = met_render(r, NULL);
    T_EQ_INT(count_line(out, "m_0 2"), 1);
    T_EQ_INT(count_line(out, "m_63 2"), 1);
    T_EQ_INT(count_prefix(out, "# TYPE "), 64);
    free(out);
    met_free(r);
}

int main(void)
{
    T_RUN(t_define_validation);
    T_RUN(t_counter_gauge_text);
    T_RUN(t_empty_registry);
    T_RUN(t_histogram_text);
    T_RUN(t_escaping);
    T_RUN(t_cardinality_bound);
    T_RUN(t_long_values_and_lengths);
    T_RUN(t_two_threads_exact);
    T_RUN(t_two_threads_distinct_series);
    T_RUN(t_concurrent_creation);
    T_RUN(t_concurrent_define);
    return T_END();
}
