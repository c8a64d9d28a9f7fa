/* metrics.h - Prometheus metrics registry with bounded cardinality.
 *
 * Metrics are declared once (startup, config load, plugin create) and updated by id from the
 * workers' hot path: an update hashes the label values, finds the series in an open-addressing
 * table without taking a lock and changes its value with atomics. Only the first update of a new
 * label combination takes the metric's mutex to create the series.
 *
 * CARDINALITY: each metric has at most max_series label combinations. Once they are used up, every
 * further combination is counted in one overflow series whose label values are all "_other", so
 * client-chosen values (unknown paths, made-up model names) can never grow memory. Label values
 * that are not valid UTF-8 also go to the overflow series, values literally equal to "_other" in
 * every label too (they would render as the overflow series). Values longer than
 * MET_LABEL_VALUE_MAX bytes are cut (at a UTF-8 boundary) before they are compared and stored.
 *
 * OWNERSHIP: the registry owns everything it stores; all strings passed in are copied, nothing the
 * caller passes is kept. met_render returns memory the caller frees with free().
 *
 * THREADS: every function except met_free may be called from any thread at any time.
 * met_free must not race with any other call on the same registry.
 */
#ifndef AIGW_METRICS_H
#define AIGW_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { MET_COUNTER, MET_GAUGE, MET_HISTOGRAM } met_kind;
typedef struct met_registry met_registry;

#define MET_MAX_METRICS 4096       /* metrics per registry */
#define MET_MAX_LABELS 8           /* label names per metric */
#define MET_MAX_BUCKETS 64         /* histogram upper bounds per metric (+Inf is implicit) */
#define MET_MAX_SERIES (1u << 20)  /* hard ceiling for max_series */
#define MET_DEFAULT_SERIES 1000    /* max_series 0 means this */
#define MET_LABEL_VALUE_MAX 256    /* bytes of a label value kept */

/* Returns a new empty registry, or NULL on ENOMEM. Thread-safe. */
met_registry *met_new(void);
/* Frees the registry and all metrics. r may be NULL. Not thread-safe: no other call may run. */
void met_free(met_registry *r);

/* Declares a metric; returns its id (>= 0) or -1.
 * name: [a-zA-Z_:][a-zA-Z0-9_:]*. help: any text (NULL = ""), escaped on output.
 * label_names: NULL-terminated array, NULL for none; at most MET_MAX_LABELS, each
 *   [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", no duplicates, "le" not allowed on histograms.
 * buckets/nbuckets: histograms only; strictly ascending finite upper bounds (a trailing +Inf is
 *   accepted and dropped); NULL (or nbuckets 0) = default latency buckets in seconds
 *   {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}.
 *   Ignored for counters and gauges.
 * max_series: bound on distinct label combinations (0 = MET_DEFAULT_SERIES, capped at
 *   MET_MAX_SERIES); irrelevant without labels.
 * Defining a name again with the same kind, label names and buckets returns the same id (help and
 * max_series of the first definition stay); another shape under the same name returns -1, as do
 * bad names, too many metrics and ENOMEM.
 * All arrays and strings are copied. Thread-safe (takes the registry mutex); not for the hot path. */
int met_define(met_registry *r, met_kind kind, const char *name, const char *help,
               const char *const *label_names, const double *buckets, size_t nbuckets,
               uint32_t max_series);

/* Updates. label_values has exactly as many entries as the metric has labels (may be NULL if it has
 * none); NULL entries count as "". Values are copied when a series is created, never kept.
 * Thread-safe; lock-free for existing series and for the overflow series; wait-free apart from the
 * CAS loop on a double. Calls with a bad id or for the wrong kind are ignored.
 *   met_add:     counter or gauge += v (counters ignore negative and NaN v: they only go up)
 *   met_set:     gauge = v
 *   met_observe: histogram: one observation of v (NaN ignored) */
void met_add(met_registry *r, int id, const char *const *label_values, double v);
void met_set(met_registry *r, int id, const char *const *label_values, double v);
void met_observe(met_registry *r, int id, const char *const *label_values, double v);

/* Same, with explicit lengths (lens[i] bytes of label_values[i], which then need no NUL); lens NULL
 * means strlen. For the plugin ABI, whose label values are (ptr, len) pairs. */
void met_add_n(met_registry *r, int id, const char *const *label_values, const size_t *lens, double v);
void met_set_n(met_registry *r, int id, const char *const *label_values, const size_t *lens, double v);
void met_observe_n(met_registry *r, int id, const char *const *label_values, const size_t *lens,
                   double v);

/* Renders all metrics in definition order, series in creation order, in the Prometheus text
 * exposition format 0.0.4: # HELP (\\ and \n escaped), # TYPE, one line per series; histograms as
 * cumulative _bucket{le="..."} lines ending with le="+Inf", then _sum and _count (_count always
 * equals the +Inf bucket). Label values escaped (\\, \", \n). Metrics without labels always show
 * (value 0 before any update); labelled ones show once a series exists.
 * Returns a malloc'd NUL-terminated buffer the caller frees, its length in *len (len may be NULL);
 * NULL on ENOMEM. Thread-safe against concurrent updates and definitions (each value is read
 * atomically; a histogram updated during rendering may show a _sum one observation apart from its
 * buckets). */
char *met_render(met_registry *r, size_t *len);

#endif
