/* Unit tests for libs/metrics: exposition format, histogram buckets,
 * label escaping, hidden gauges, concurrent updates. */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../support/prom_text.h"
#include "metrics/metrics.h"

static int reset(void **state)
{
    metrics_reset_for_tests();
    return 0;
}

static char *render_valid(void)
{
    size_t len;
    char *text = metrics_render(&len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    char why[256] = "";
    if (!prom_validate(text, why, sizeof(why)))
        fail_msg("invalid exposition (%s):\n%s", why, text);
    return text;
}

static void test_counter_and_gauge_lines(void **state)
{
    struct metric_family *c =
        metrics_counter("t_requests_total", "Requests served.", "route,status");
    metrics_add(metrics_with(c, "/v1/members", "201"), 2);
    metrics_inc(metrics_with(c, "/v1/members", "201"));
    metrics_inc(metrics_with(c, "/v1/members/{member_id}", "404"));
    struct metric_family *g = metrics_gauge("t_lag_messages", "Lag.", NULL);
    metrics_set(metrics_series(g, NULL), 7);
    /* Registering again returns the same family. */
    assert_ptr_equal(c, metrics_counter("t_requests_total", "Requests served.", "route,status"));

    char *text = render_valid();
    assert_non_null(strstr(text, "# HELP t_requests_total Requests served.\n"
                                 "# TYPE t_requests_total counter\n"));
    assert_non_null(strstr(text, "t_requests_total{route=\"/v1/members\",status=\"201\"} 3\n"));
    assert_non_null(
        strstr(text, "t_requests_total{route=\"/v1/members/{member_id}\",status=\"404\"} 1\n"));
    assert_non_null(strstr(text, "t_lag_messages 7\n"));
    assert_true(prom_sum(text, "t_requests_total", NULL) == 4);
    free(text);
}

static void test_histogram_buckets_are_cumulative(void **state)
{
    static const double bounds[] = {0.1, 1, 10};
    struct metric_family *h =
        metrics_histogram("t_duration_seconds", "Durations.", "op", bounds, 3);
    struct metric_series *s = metrics_with(h, "get");
    metrics_observe(s, 0.05); /* le 0.1 */
    metrics_observe(s, 0.1);  /* le 0.1: upper bounds are inclusive */
    metrics_observe(s, 5);    /* le 10 */
    metrics_observe(s, 50);   /* +Inf only */
    assert_true(metrics_value(s) == 4);

    char *text = render_valid();
    assert_non_null(strstr(text, "t_duration_seconds_bucket{op=\"get\",le=\"0.1\"} 2\n"));
    assert_non_null(strstr(text, "t_duration_seconds_bucket{op=\"get\",le=\"1\"} 2\n"));
    assert_non_null(strstr(text, "t_duration_seconds_bucket{op=\"get\",le=\"10\"} 3\n"));
    assert_non_null(strstr(text, "t_duration_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(text, "t_duration_seconds_count{op=\"get\"} 4\n"));
    assert_true(prom_sum(text, "t_duration_seconds_sum", NULL) == 55.15);
    free(text);
}

static void test_label_values_are_escaped(void **state)
{
    struct metric_family *c = metrics_counter("t_odd_total", "Help with \\ and\nnewline.", "v");
    metrics_inc(metrics_with(c, "a\"b\\c\nd"));
    char *text = render_valid();
    assert_non_null(strstr(text, "# HELP t_odd_total Help with \\\\ and\\nnewline.\n"));
    assert_non_null(strstr(text, "t_odd_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
    free(text);
}

static void test_hidden_gauges_reappear_when_set(void **state)
{
    struct metric_family *g = metrics_gauge("t_partition_lag", "Lag.", "partition");
    metrics_set(metrics_with(g, "0"), 5);
    metrics_set(metrics_with(g, "1"), 6);
    metrics_gauge_hide_all(g);
    metrics_set(metrics_with(g, "1"), 2);
    char *text = render_valid();
    assert_null(strstr(text, "t_partition_lag{partition=\"0\"}"));
    assert_non_null(strstr(text, "t_partition_lag{partition=\"1\"} 2\n"));
    free(text);
}

static void test_series_past_the_limit_share_an_unrendered_series(void **state)
{
    struct metric_family *c = metrics_counter("t_many_total", "Many.", "id");
    char id[16];
    for (int i = 0; i < METRICS_SERIES_MAX + 10; i++) {
        snprintf(id, sizeof(id), "%d", i);
        metrics_inc(metrics_with(c, id));
    }
    char *text = render_valid();
    assert_true(prom_sum(text, "t_many_total", NULL) == METRICS_SERIES_MAX);
    free(text);
}

static void test_process_memory_is_reported(void **state)
{
    metrics_process_init();
    char *text = render_valid();
    assert_true(prom_sum(text, "process_resident_memory_bytes", NULL) > 1024 * 1024 / 2);
    assert_true(prom_sum(text, "process_start_time_seconds", NULL) > 1.7e9);
    free(text);
}

#define THREADS         4
#define ADDS_PER_THREAD 100000

static void *adder(void *arg)
{
    struct metric_family *h = arg;
    for (int i = 0; i < ADDS_PER_THREAD; i++) {
        metrics_inc(metrics_with(metrics_counter("t_concurrent_total", "C.", "k"), "x"));
        metrics_observe(metrics_series(h, NULL), 1);
    }
    return NULL;
}

/* Updates from several threads while another renders: nothing is lost. */
static void test_concurrent_updates_are_not_lost(void **state)
{
    static const double bounds[] = {1};
    struct metric_family *h = metrics_histogram("t_concurrent_size", "S.", NULL, bounds, 1);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, adder, h), 0);
    for (int i = 0; i < 20; i++)
        free(render_valid());
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *text = render_valid();
    assert_true(prom_sum(text, "t_concurrent_total", NULL) == THREADS * ADDS_PER_THREAD);
    assert_true(prom_sum(text, "t_concurrent_size_sum", NULL) == THREADS * ADDS_PER_THREAD);
    assert_true(prom_sum(text, "t_concurrent_size_bucket", "le=\"1\"") ==
                THREADS * ADDS_PER_THREAD);
    free(text);
}

/* The validator itself must reject what Prometheus rejects. */
static void test_validator_rejects_bad_text(void **state)
{
    char why[128];
    assert_false(prom_validate("x 1\n", why, sizeof(why))); /* no TYPE */
    assert_false(prom_validate("# TYPE x_total counter\nx_total{a=\"1} 1\n", why, sizeof(why)));
    assert_false(prom_validate("# TYPE x_total counter\nx_total one\n", why, sizeof(why)));
    assert_false(prom_validate("# TYPE x counter\nx 1\n", why, sizeof(why)));
    assert_false(prom_validate("# TYPE a gauge\na 1\n# TYPE a gauge\na 2\n", why, sizeof(why)));
    assert_false(prom_validate("# TYPE a gauge\na 1", why, sizeof(why)));
    assert_true(prom_validate("# TYPE a gauge\na{b=\"c\\\"\"} 1\n", why, sizeof(why)));
}

/* A family looked up again must have the shape it was registered with
 * (an always-on assert): the same labels pass, any other list aborts. */
static bool registers_in_child(const char *labels)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(STDERR_FILENO); /* the assert's message is expected */
        metrics_counter("t_shape_total", "Shape.", labels);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void test_a_family_keeps_its_shape(void **state)
{
    struct metric_family *f = metrics_counter("t_shape_total", "Shape.", "route,status");
    assert_ptr_equal(metrics_counter("t_shape_total", "Shape.", "route,status"), f);
    assert_true(registers_in_child("route,status"));
    assert_false(registers_in_child("route,statu"));
    assert_false(registers_in_child("route,statuses"));
    assert_false(registers_in_child("route"));
    assert_false(registers_in_child("route,status,extra"));
    assert_false(registers_in_child("routestatus"));
    assert_false(registers_in_child(""));
    assert_false(registers_in_child(NULL));
    struct metric_family *bare = metrics_counter("t_bare_total", "No labels.", NULL);
    assert_ptr_equal(metrics_counter("t_bare_total", "No labels.", ""), bare);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_counter_and_gauge_lines, reset),
        cmocka_unit_test_setup(test_histogram_buckets_are_cumulative, reset),
        cmocka_unit_test_setup(test_label_values_are_escaped, reset),
        cmocka_unit_test_setup(test_hidden_gauges_reappear_when_set, reset),
        cmocka_unit_test_setup(test_series_past_the_limit_share_an_unrendered_series, reset),
        cmocka_unit_test_setup(test_process_memory_is_reported, reset),
        cmocka_unit_test_setup(test_concurrent_updates_are_not_lost, reset),
        cmocka_unit_test_setup(test_a_family_keeps_its_shape, reset),
        cmocka_unit_test(test_validator_rejects_bad_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
