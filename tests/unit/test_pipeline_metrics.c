/* The consumer pipeline's poll metrics (libs/service/pipeline_metrics.c):
 * an empty poll is counted with its time, a poll that returned a batch is
 * the "poll" step and never an empty poll. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "metrics/metrics.h"
#include "service/pipeline_metrics.h"

static int reset(void **state)
{
    metrics_reset_for_tests();
    pipeline_metrics_register();
    return 0;
}

static double counter(const char *name)
{
    return metrics_value(metrics_series(metrics_counter(name, "", NULL), NULL));
}

/* Observations of the "poll" step (a histogram's value is its count). */
static double poll_steps(void)
{
    return metrics_value(
        metrics_with(metrics_histogram("tessera_consumer_batch_step_seconds", "", "step",
                                       metrics_buckets_seconds, metrics_buckets_seconds_count),
                     "poll"));
}

static void test_empty_polls_are_counted_with_their_time(void **state)
{
    assert_true(counter("tessera_consumer_empty_polls_total") == 0);
    pipeline_metrics_poll(0, 0.25);
    pipeline_metrics_poll(0, 0.5);
    assert_true(counter("tessera_consumer_empty_polls_total") == 2);
    assert_float_equal(counter("tessera_consumer_empty_poll_seconds_total"), 0.75, 1e-9);
    assert_true(poll_steps() == 0); /* an empty poll is not a batch's poll step */
}

static void test_a_batch_is_not_an_empty_poll(void **state)
{
    pipeline_metrics_poll(3, 0.01);
    pipeline_metrics_poll(1, 0.02);
    assert_true(poll_steps() == 2);
    assert_true(counter("tessera_consumer_empty_polls_total") == 0);
    assert_true(counter("tessera_consumer_empty_poll_seconds_total") == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_empty_polls_are_counted_with_their_time, reset),
        cmocka_unit_test_setup(test_a_batch_is_not_an_empty_poll, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
