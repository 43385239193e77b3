/* Prometheus metrics registry. Families live in a fixed array guarded by
 * one registry mutex (registration is rare: start-up and first use); each
 * family guards its own series table. Values are C11 atomics so updates
 * never take a lock once a series exists. Doubles are updated with a
 * compare-and-swap loop (there is no atomic add for floating point). */
#undef NDEBUG /* asserts stay on in production builds */
#include "metrics/metrics.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const double metrics_buckets_seconds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t metrics_buckets_seconds_count =
    sizeof(metrics_buckets_seconds) / sizeof(metrics_buckets_seconds[0]);
const double metrics_buckets_counts[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000};
const size_t metrics_buckets_counts_count =
    sizeof(metrics_buckets_counts) / sizeof(metrics_buckets_counts[0]);

struct metric_family;

struct metric_series {
    const struct metric_family *family;
    char *values[METRICS_LABELS_MAX];
    _Atomic double value;                           /* counter, gauge; histogram: sum */
    atomic_ullong buckets[METRICS_BUCKETS_MAX + 1]; /* histogram; last is +Inf (= count) */
    atomic_bool hidden;
};

struct metric_family {
    char name[METRICS_NAME_MAX];
    char *help;
    enum metric_type type;
    char *labels[METRICS_LABELS_MAX];
    size_t label_count;
    double bounds[METRICS_BUCKETS_MAX];
    size_t bound_count;
    pthread_mutex_t lock; /* series table */
    struct metric_series *series[METRICS_SERIES_MAX];
    size_t series_count;
    struct metric_series overflow; /* never rendered */
};

struct collector {
    void (*fn)(void *ctx);
    void *ctx;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric_family *families[METRICS_FAMILIES_MAX];
static size_t family_count;
static struct collector collectors[METRICS_COLLECTORS_MAX];
static size_t collector_count;

/* ------------------------------------------------------------ registration */
static size_t labels_split(const char *labels, char **out)
{
    size_t n = 0;
    for (const char *p = labels; p && *p;) {
        size_t len = strcspn(p, ",");
        assert(len > 0 && n < METRICS_LABELS_MAX);
        out[n] = strndup(p, len);
        assert(out[n]);
        n++;
        p += len + (p[len] == ',');
    }
    return n;
}

/* Whether f was registered with this type and label list ("a,b"). Runs on
 * every lookup (hot paths call metrics_counter per event): compares in
 * place, never formats. */
static bool family_same_shape(const struct metric_family *f, enum metric_type type,
                              const char *labels)
{
    if (f->type != type)
        return false;
    const char *p = labels ? labels : "";
    for (size_t i = 0; i < f->label_count; i++) {
        size_t len = strlen(f->labels[i]);
        if (i > 0 && *p++ != ',')
            return false;
        if (strncmp(p, f->labels[i], len) != 0)
            return false;
        p += len;
    }
    return *p == '\0';
}

static struct metric_family *family_register(const char *name, const char *help,
                                             enum metric_type type, const char *labels,
                                             const double *bounds, size_t bound_count)
{
    assert(name && help && strlen(name) < METRICS_NAME_MAX);
    assert(bound_count <= METRICS_BUCKETS_MAX);
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < family_count; i++) {
        if (strcmp(families[i]->name, name) == 0) {
            struct metric_family *f = families[i];
            pthread_mutex_unlock(&registry_lock);
            assert(family_same_shape(f, type, labels));
            return f;
        }
    }
    assert(family_count < METRICS_FAMILIES_MAX);
    struct metric_family *f = calloc(1, sizeof(*f));
    assert(f);
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->help = strdup(help);
    f->type = type;
    f->label_count = labels_split(labels, f->labels);
    for (size_t i = 0; i < bound_count; i++) {
        assert(i == 0 || bounds[i] > bounds[i - 1]);
        f->bounds[i] = bounds[i];
    }
    f->bound_count = bound_count;
    f->overflow.family = f;
    pthread_mutex_init(&f->lock, NULL);
    families[family_count++] = f;
    pthread_mutex_unlock(&registry_lock);
    return f;
}

struct metric_family *metrics_counter(const char *name, const char *help, const char *labels)
{
    return family_register(name, help, METRIC_COUNTER, labels, NULL, 0);
}

struct metric_family *metrics_gauge(const char *name, const char *help, const char *labels)
{
    return family_register(name, help, METRIC_GAUGE, labels, NULL, 0);
}

struct metric_family *metrics_histogram(const char *name, const char *help, const char *labels,
                                        const double *bounds, size_t bound_count)
{
    assert(bounds && bound_count > 0);
    return family_register(name, help, METRIC_HISTOGRAM, labels, bounds, bound_count);
}

/* ------------------------------------------------------------------ series */
static bool series_matches(const struct metric_family *f, const struct metric_series *s,
                           const char *const *values)
{
    for (size_t i = 0; i < f->label_count; i++)
        if (strncmp(s->values[i], values[i], METRICS_LABEL_VALUE_MAX) != 0)
            return false;
    return true;
}

struct metric_series *metrics_series(struct metric_family *f, const char *const *values)
{
    assert(f);
    for (size_t i = 0; i < f->label_count; i++)
        assert(values && values[i]);
    pthread_mutex_lock(&f->lock);
    struct metric_series *found = NULL;
    for (size_t i = 0; i < f->series_count && !found; i++)
        if (series_matches(f, f->series[i], values))
            found = f->series[i];
    if (!found && f->series_count < METRICS_SERIES_MAX) {
        found = calloc(1, sizeof(*found));
        assert(found);
        found->family = f;
        for (size_t i = 0; i < f->label_count; i++) {
            found->values[i] = strndup(values[i], METRICS_LABEL_VALUE_MAX);
            assert(found->values[i]);
        }
        f->series[f->series_count++] = found;
    }
    pthread_mutex_unlock(&f->lock);
    return found ? found : &f->overflow;
}

static void atomic_double_add(_Atomic double *v, double delta)
{
    double old = atomic_load(v);
    while (!atomic_compare_exchange_weak(v, &old, old + delta))
        ;
}

void metrics_add(struct metric_series *s, double delta)
{
    assert(s->family->type != METRIC_COUNTER || delta >= 0); /* counters only go up */
    atomic_double_add(&s->value, delta);
}

void metrics_inc(struct metric_series *s)
{
    metrics_add(s, 1);
}

void metrics_set(struct metric_series *s, double value)
{
    atomic_store(&s->value, value);
    atomic_store(&s->hidden, false);
}

void metrics_observe(struct metric_series *s, double value)
{
    const struct metric_family *f = s->family;
    assert(f->type == METRIC_HISTOGRAM);
    size_t b = 0;
    while (b < f->bound_count && value > f->bounds[b])
        b++;
    /* Buckets are stored non-cumulative; rendering sums them. */
    atomic_fetch_add(&s->buckets[b], 1);
    atomic_double_add(&s->value, value);
}

double metrics_value(const struct metric_series *s)
{
    const struct metric_family *f = s->family;
    if (f->type == METRIC_HISTOGRAM) {
        unsigned long long n = 0;
        for (size_t b = 0; b <= f->bound_count; b++)
            n += atomic_load(&s->buckets[b]);
        return (double)n;
    }
    return atomic_load(&s->value);
}

void metrics_gauge_hide_all(struct metric_family *f)
{
    assert(f->type == METRIC_GAUGE);
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->series_count; i++)
        atomic_store(&f->series[i]->hidden, true);
    pthread_mutex_unlock(&f->lock);
}

void metrics_series_hide(struct metric_series *s)
{
    assert(s->family->type == METRIC_GAUGE);
    atomic_store(&s->hidden, true);
}

/* --------------------------------------------------------------- rendering */
void metrics_on_collect(void (*collect)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&registry_lock);
    assert(collector_count < METRICS_COLLECTORS_MAX);
    collectors[collector_count++] = (struct collector){collect, ctx};
    pthread_mutex_unlock(&registry_lock);
}

/* Label values escape backslash, double quote and newline; HELP text
 * escapes backslash and newline (exposition format 0.0.4). */
static void write_escaped(FILE *out, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (quote && *s == '"')
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

/* {a="x",b="y"} plus an optional extra label (le for buckets). */
static void write_labels(FILE *out, const struct metric_family *f, const struct metric_series *s,
                         const char *extra_name, const char *extra_value)
{
    if (f->label_count == 0 && !extra_name)
        return;
    fputc('{', out);
    for (size_t i = 0; i < f->label_count; i++) {
        fprintf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
        write_escaped(out, s->values[i], true);
        fputc('"', out);
    }
    if (extra_name)
        fprintf(out, "%s%s=\"%s\"", f->label_count ? "," : "", extra_name, extra_value);
    fputc('}', out);
}

/* The shortest of %.15g and %.17g that reads back as the same double, so
 * 0.1 prints as "0.1" and large counters stay exact. */
static void format_number(char *buf, size_t len, double v)
{
    snprintf(buf, len, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, len, "%.17g", v);
}

static void write_number(FILE *out, double v)
{
    char buf[32];
    format_number(buf, sizeof(buf), v);
    fputs(buf, out);
}

static void write_histogram(FILE *out, const struct metric_family *f, const struct metric_series *s)
{
    unsigned long long cumulative = 0;
    for (size_t b = 0; b <= f->bound_count; b++) {
        char le[32];
        if (b < f->bound_count)
            format_number(le, sizeof(le), f->bounds[b]);
        else
            snprintf(le, sizeof(le), "+Inf");
        cumulative += atomic_load(&s->buckets[b]);
        fprintf(out, "%s_bucket", f->name);
        write_labels(out, f, s, "le", le);
        fprintf(out, " %llu\n", cumulative);
    }
    fprintf(out, "%s_sum", f->name);
    write_labels(out, f, s, NULL, NULL);
    fputc(' ', out);
    write_number(out, atomic_load(&s->value));
    fprintf(out, "\n%s_count", f->name);
    write_labels(out, f, s, NULL, NULL);
    fprintf(out, " %llu\n", cumulative);
}

static const char *type_name(enum metric_type t)
{
    return t == METRIC_COUNTER ? "counter" : t == METRIC_GAUGE ? "gauge" : "histogram";
}

static void write_family(FILE *out, struct metric_family *f)
{
    fprintf(out, "# HELP %s ", f->name);
    write_escaped(out, f->help, false);
    fprintf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->series_count; i++) {
        const struct metric_series *s = f->series[i];
        if (atomic_load(&s->hidden))
            continue;
        if (f->type == METRIC_HISTOGRAM) {
            write_histogram(out, f, s);
            continue;
        }
        fputs(f->name, out);
        write_labels(out, f, s, NULL, NULL);
        fputc(' ', out);
        write_number(out, atomic_load(&s->value));
        fputc('\n', out);
    }
    pthread_mutex_unlock(&f->lock);
}

char *metrics_render(size_t *len)
{
    /* Collectors run outside the registry lock: they register and set. */
    pthread_mutex_lock(&registry_lock);
    struct collector todo[METRICS_COLLECTORS_MAX];
    size_t n = collector_count;
    memcpy(todo, collectors, n * sizeof(*todo));
    pthread_mutex_unlock(&registry_lock);
    for (size_t i = 0; i < n; i++)
        todo[i].fn(todo[i].ctx);

    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    assert(out);
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < family_count; i++)
        write_family(out, families[i]);
    pthread_mutex_unlock(&registry_lock);
    fclose(out);
    *len = size;
    return text;
}

double metrics_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ----------------------------------------------------------------- process */
/* /proc/self/statm: size resident shared text lib data dt, in pages. */
static void collect_process(void *ctx)
{
    struct metric_series *rss = ctx;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return;
    unsigned long size_pages = 0, resident_pages = 0;
    if (fscanf(f, "%lu %lu", &size_pages, &resident_pages) == 2)
        metrics_set(rss, (double)resident_pages * (double)sysconf(_SC_PAGESIZE));
    fclose(f);
}

void metrics_process_init(void)
{
    struct metric_family *f =
        metrics_gauge("process_resident_memory_bytes", "Resident memory size in bytes.", NULL);
    metrics_on_collect(collect_process, metrics_series(f, NULL));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    metrics_set(metrics_series(metrics_gauge("process_start_time_seconds",
                                             "Start time of the process since unix epoch in "
                                             "seconds.",
                                             NULL),
                               NULL),
                (double)now.tv_sec);
}

/* ------------------------------------------------------------------- tests */
static void series_free(struct metric_series *s, size_t label_count)
{
    for (size_t i = 0; i < label_count; i++)
        free(s->values[i]);
    free(s);
}

void metrics_reset_for_tests(void)
{
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < family_count; i++) {
        struct metric_family *f = families[i];
        for (size_t j = 0; j < f->series_count; j++)
            series_free(f->series[j], f->label_count);
        for (size_t j = 0; j < f->label_count; j++)
            free(f->labels[j]);
        free(f->help);
        pthread_mutex_destroy(&f->lock);
        free(f);
    }
    family_count = 0;
    collector_count = 0;
    pthread_mutex_unlock(&registry_lock);
}
