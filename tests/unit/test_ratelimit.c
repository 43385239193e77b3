/* Unit tests for services/ingest/ratelimit.c: burst, refill, Retry-After,
 * independent names and bounded memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../services/ingest/ratelimit.h"

static int takes(struct rate_limiter *rl, const char *name, struct rate_limit l, int64_t now, int n)
{
    int allowed = 0, retry = 0;
    for (int i = 0; i < n; i++)
        allowed += rate_limit_take(rl, name, l, now, &retry);
    return allowed;
}

static void test_burst_then_refused_with_retry_after(void **state)
{
    struct rate_limiter rl;
    assert_int_equal(rate_limiter_init(&rl, 16), 0);
    struct rate_limit l = {.per_s = 2, .burst = 5};
    assert_int_equal(takes(&rl, "key:a", l, 1000, 5), 5);
    int retry = 0;
    assert_false(rate_limit_take(&rl, "key:a", l, 1000, &retry));
    assert_int_equal(retry, 1); /* half a second to the next token, rounded up */
    struct rate_limit slow = {.per_s = 1, .burst = 1};
    assert_true(rate_limit_take(&rl, "key:slow", slow, 0, &retry));
    assert_false(rate_limit_take(&rl, "key:slow", slow, 100, &retry));
    assert_int_equal(retry, 1);
    rate_limiter_free(&rl);
}

static void test_refill_over_time(void **state)
{
    struct rate_limiter rl;
    assert_int_equal(rate_limiter_init(&rl, 16), 0);
    struct rate_limit l = {.per_s = 10, .burst = 10};
    assert_int_equal(takes(&rl, "ip:1.2.3.4", l, 0, 20), 10);
    /* 10 per second: 250 ms bring 2 tokens back, not more */
    assert_int_equal(takes(&rl, "ip:1.2.3.4", l, 250, 5), 2);
    /* a long pause refills to the burst, never beyond */
    assert_int_equal(takes(&rl, "ip:1.2.3.4", l, 3600 * 1000, 50), 10);
    rate_limiter_free(&rl);
}

static void test_names_are_independent(void **state)
{
    struct rate_limiter rl;
    assert_int_equal(rate_limiter_init(&rl, 16), 0);
    struct rate_limit l = {.per_s = 1, .burst = 3};
    assert_int_equal(takes(&rl, "key:a", l, 0, 10), 3);
    assert_int_equal(takes(&rl, "key:b", l, 0, 10), 3);
    assert_int_equal(takes(&rl, "ip:a", l, 0, 10), 3);
    rate_limiter_free(&rl);
}

/* Many more names than buckets: the table never grows, and an exhausted
 * bucket that is still in use is not evicted while refilled ones exist. */
static void test_bounded_table(void **state)
{
    struct rate_limiter rl;
    assert_int_equal(rate_limiter_init(&rl, 10), 0);
    assert_int_equal(rl.count, 16);
    struct rate_limit l = {.per_s = 1, .burst = 2};
    assert_int_equal(takes(&rl, "key:busy", l, 0, 5), 2);
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "ip:10.0.%d.%d", i / 256, i % 256);
        assert_int_equal(takes(&rl, name, l, 10 * 1000 + i * 10000, 1), 1);
    }
    /* the busy key's bucket may have been evicted as least recently used,
     * or kept: either way it never allows more than a burst at once */
    assert_true(takes(&rl, "key:busy", l, 20 * 1000 * 1000, 5) <= 2);
    rate_limiter_free(&rl);
}

static void test_long_names_are_cut_consistently(void **state)
{
    struct rate_limiter rl;
    assert_int_equal(rate_limiter_init(&rl, 16), 0);
    char long_name[200];
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    struct rate_limit l = {.per_s = 1, .burst = 1};
    int retry = 0;
    assert_true(rate_limit_take(&rl, long_name, l, 0, &retry));
    assert_false(rate_limit_take(&rl, long_name, l, 0, &retry));
    rate_limiter_free(&rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refused_with_retry_after),
        cmocka_unit_test(test_refill_over_time),
        cmocka_unit_test(test_names_are_independent),
        cmocka_unit_test(test_bounded_table),
        cmocka_unit_test(test_long_names_are_cut_consistently),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
