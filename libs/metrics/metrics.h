/* Process-wide Prometheus metrics: counters, gauges and histograms with
 * fixed buckets, each family with up to METRICS_LABELS_MAX label names.
 *
 * One registry per process (a service is one process). Families are
 * registered by name; registering an existing name again returns the same
 * family, so a library (bus, pg_pool, cache) and a service can both ask for
 * it. Series values are atomics: the pipeline thread, librdkafka callbacks
 * and the admin loop may update and render concurrently. The family's
 * mutex only guards its series table (lookup, creation, rendering), so a
 * hot path can look a series up once and keep the pointer: series are
 * never freed while the process runs.
 *
 * Names follow Prometheus conventions: snake_case, base units (seconds,
 * bytes), counters end in _total. */
#ifndef TESSERA_METRICS_H
#define TESSERA_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#define METRICS_FAMILIES_MAX    128
#define METRICS_LABELS_MAX      4
#define METRICS_SERIES_MAX      512 /* per family; more label sets share one hidden overflow series */
#define METRICS_BUCKETS_MAX     16
#define METRICS_NAME_MAX        96
#define METRICS_LABEL_VALUE_MAX 128 /* longer values are cut */

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metric_family;
struct metric_series;

/* Latency buckets in seconds (0.5 ms .. 10 s) and count buckets (1 .. 2000). */
extern const double metrics_buckets_seconds[];
extern const size_t metrics_buckets_seconds_count;
extern const double metrics_buckets_counts[];
extern const size_t metrics_buckets_counts_count;

/* Registers (or finds) a family. labels is a comma-separated list of label
 * names ("route,status") or NULL. A name registered again with another type
 * or labels is a programmer error (assert). The registry owns the family. */
struct metric_family *metrics_counter(const char *name, const char *help, const char *labels);
struct metric_family *metrics_gauge(const char *name, const char *help, const char *labels);
/* bounds: strictly increasing upper bounds (the +Inf bucket is implicit). */
struct metric_family *metrics_histogram(const char *name, const char *help, const char *labels,
                                        const double *bounds, size_t bound_count);

/* The series of one label-value set (values in label order, as many as the
 * family has labels; NULL for none). Created on first use. Never NULL: past
 * METRICS_SERIES_MAX a hidden overflow series is returned. */
struct metric_series *metrics_series(struct metric_family *f, const char *const *values);
/* metrics_with(family, "value1", "value2") */
#define metrics_with(f, ...) metrics_series((f), (const char *const[]){__VA_ARGS__, NULL})

void metrics_add(struct metric_series *s, double delta); /* counter (delta >= 0) or gauge */
void metrics_inc(struct metric_series *s);
void metrics_set(struct metric_series *s, double value);     /* gauge */
void metrics_observe(struct metric_series *s, double value); /* histogram */
double metrics_value(const struct metric_series *s);         /* counter/gauge; histogram: count */

/* Hides every series of a gauge family until it is set again (e.g. the lag
 * of partitions this instance no longer owns). */
void metrics_gauge_hide_all(struct metric_family *f);
/* Hides one gauge series until it is set again. */
void metrics_series_hide(struct metric_series *s);

/* Called at the start of every render, on the rendering thread (the admin
 * loop): sets gauges that are read rather than pushed (memory, pool
 * sizes). At most METRICS_COLLECTORS_MAX. */
#define METRICS_COLLECTORS_MAX 16
void metrics_on_collect(void (*collect)(void *ctx), void *ctx);

/* The Prometheus text exposition (version 0.0.4) of every family with
 * HELP and TYPE lines. Returns a malloc'ed NUL-terminated string the
 * caller frees; *len gets its length. */
char *metrics_render(size_t *len);

/* Seconds on the monotonic clock, for durations. */
double metrics_now_seconds(void);

/* Sets process_resident_memory_bytes from /proc/self/statm; registered as
 * a collector by metrics_process_init. */
void metrics_process_init(void);

/* Forgets every family and collector. Tests only: series pointers held
 * anywhere become dangling. */
void metrics_reset_for_tests(void);

#endif
