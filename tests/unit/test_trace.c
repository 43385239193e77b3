/* Unit tests for libs/trace: W3C traceparent parsing and continuation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "trace/trace.h"

#define GOOD "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void test_parse_accepts_the_spec_example(void **state)
{
    char id[TRACE_ID_SIZE];
    assert_true(trace_parse(GOOD, id));
    assert_string_equal(id, "4bf92f3577b34da6a3ce929d0e0e4736");
    /* A future version may append fields after a dash. */
    assert_true(trace_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz", id));
}

static void test_parse_rejects_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",    /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* v00 with extra */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* forbidden version */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* uppercase */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero parent id */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   /* not hex */
    };
    char id[TRACE_ID_SIZE];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (trace_parse(bad[i], id))
            fail_msg("accepted '%s'", bad[i]);
        assert_string_equal(id, "");
    }
    assert_false(trace_parse(NULL, id));
}

static void test_continue_keeps_trace_and_flags_with_a_new_span(void **state)
{
    char out[TRACEPARENT_SIZE], id[TRACE_ID_SIZE];
    trace_continue(GOOD, out);
    assert_int_equal(strlen(out), TRACEPARENT_LEN);
    assert_true(trace_parse(out, id));
    assert_string_equal(id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_memory_not_equal(out + 36, GOOD + 36, 16);
    assert_string_equal(out + 53, "01");
    trace_continue("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", out);
    assert_string_equal(out + 53, "00"); /* not sampled stays not sampled */
}

static void test_continue_starts_a_trace_from_garbage(void **state)
{
    char a[TRACEPARENT_SIZE], b[TRACEPARENT_SIZE], id_a[TRACE_ID_SIZE], id_b[TRACE_ID_SIZE];
    trace_continue("garbage", a);
    trace_continue(NULL, b);
    assert_true(trace_parse(a, id_a));
    assert_true(trace_parse(b, id_b));
    assert_string_not_equal(id_a, id_b);
    assert_memory_equal(a, "00-", 3);
}

/* Ids come from a pool refilled now and then: across several refills
 * every new trace and span id is distinct and valid. */
static int compare_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_new_ids_are_distinct_across_pool_refills(void **state)
{
    enum { IDS = 200 }; /* 48 bytes an id pair: about 19 refills of the pool */
    static char seen[2 * IDS][TRACE_ID_SIZE];
    for (int i = 0; i < IDS; i++) {
        char out[TRACEPARENT_SIZE], id[TRACE_ID_SIZE];
        trace_continue(NULL, out);
        trace_id_of(out, id);
        assert_int_equal(strlen(id), 32);
        snprintf(seen[2 * i], TRACE_ID_SIZE, "%s", id);
        snprintf(seen[2 * i + 1], TRACE_ID_SIZE, "%.16s", out + 36);
    }
    qsort(seen, 2 * IDS, TRACE_ID_SIZE, compare_ids);
    for (int i = 1; i < 2 * IDS; i++)
        assert_string_not_equal(seen[i - 1], seen[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts_the_spec_example),
        cmocka_unit_test(test_parse_rejects_malformed),
        cmocka_unit_test(test_continue_keeps_trace_and_flags_with_a_new_span),
        cmocka_unit_test(test_continue_starts_a_trace_from_garbage),
        cmocka_unit_test(test_new_ids_are_distinct_across_pool_refills),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
