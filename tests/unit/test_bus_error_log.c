/* Unit tests for libs/bus/error_log.c: an outage that every Kafka handle
 * of a process reports (ingest's eight command producers among them) is
 * logged once per error kind per BUS_ERROR_LOG_EVERY_MS, and the reports
 * held back are counted in the next line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bus/bus_internal.h"

#define PRODUCERS 8 /* ingest's command producers (TESSERA_KAFKA_COMMAND_PRODUCERS) */

static void test_one_line_per_kind(void **state)
{
    (void)state;
    long held = -1;
    const int64_t t0 = 1000000;
    /* the eight producers report the broker down at once: one line */
    assert_true(bus_error_log_due(RD_KAFKA_RESP_ERR__TRANSPORT, t0, &held));
    assert_int_equal(held, 0);
    for (int i = 1; i < PRODUCERS; i++)
        assert_false(bus_error_log_due(RD_KAFKA_RESP_ERR__TRANSPORT, t0 + i, &held));
    /* another kind is its own line */
    assert_true(bus_error_log_due(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, t0 + 10, &held));
    assert_int_equal(held, 0);
    /* still within the window: held back */
    assert_false(
        bus_error_log_due(RD_KAFKA_RESP_ERR__TRANSPORT, t0 + BUS_ERROR_LOG_EVERY_MS - 1, &held));
    /* the window over: logged, with the eight held back counted */
    assert_true(
        bus_error_log_due(RD_KAFKA_RESP_ERR__TRANSPORT, t0 + BUS_ERROR_LOG_EVERY_MS, &held));
    assert_int_equal(held, PRODUCERS);
    /* and the count starts again */
    assert_true(
        bus_error_log_due(RD_KAFKA_RESP_ERR__TRANSPORT, t0 + 2 * BUS_ERROR_LOG_EVERY_MS, &held));
    assert_int_equal(held, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_line_per_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
