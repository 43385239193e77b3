/* Unit tests for libs/util/fmt.c: every number written byte for byte as
 * the printf form it replaces writes it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util/fmt.h"

#define RANDOM_ROUNDS 200000
/* Below it, us / 1000.0 is close enough to its three-decimal value for
 * printf to round to it; beyond, fmt_ms3 stays exact and printf may not. */
#define EXACT_US_MAX ((int64_t)1 << 40)

/* A fixed sequence (xorshift64*): the same values on every run. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void check_i64(int64_t v)
{
    char want[32], got[FMT_I64_MAX];
    int n = snprintf(want, sizeof(want), "%" PRId64, v);
    size_t len = fmt_i64(got, v);
    if (len != (size_t)n || strcmp(got, want) != 0)
        fail_msg("fmt_i64(%s) wrote \"%s\"", want, got);
}

static void check_ms3(int64_t us)
{
    char want[64], got[FMT_MS3_MAX];
    int n = snprintf(want, sizeof(want), "%.3f", (double)us / 1000.0);
    size_t len = fmt_ms3(got, us);
    if (len != (size_t)n || strcmp(got, want) != 0)
        fail_msg("fmt_ms3(%" PRId64 ") wrote \"%s\", printf \"%s\"", us, got, want);
}

static void test_i64_as_printf(void **state)
{
    const int64_t edges[] = {INT64_MIN,
                             INT64_MIN + 1,
                             -1000000000000000000LL,
                             -10,
                             -9,
                             -1,
                             0,
                             1,
                             9,
                             10,
                             99,
                             100,
                             INT32_MAX,
                             (int64_t)INT32_MAX + 1,
                             INT64_MAX - 1,
                             INT64_MAX};
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        check_i64(edges[i]);
    for (int64_t p = 1; p <= INT64_MAX / 10; p *= 10) {
        check_i64(p - 1);
        check_i64(p);
        check_i64(-p);
        check_i64(-p + 1);
    }
    uint64_t s = 88172645463325252ULL;
    for (int i = 0; i < RANDOM_ROUNDS; i++) {
        uint64_t r = next_random(&s);
        check_i64((int64_t)r);
        check_i64((int64_t)(r >> (r % 64))); /* short numbers too */
    }
}

static void test_ms3_as_printf(void **state)
{
    const int64_t edges[] = {0,    1,     9,     10,      99,           100,
                             999,  1000,  1001,  1999,    123456,       -1,
                             -999, -1000, -1001, -123456, EXACT_US_MAX, -EXACT_US_MAX};
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        check_ms3(edges[i]);
    uint64_t s = 2463534242ULL;
    for (int i = 0; i < RANDOM_ROUNDS; i++) {
        uint64_t r = next_random(&s);
        int64_t us = (int64_t)(r % (uint64_t)EXACT_US_MAX) >> (r % 50);
        check_ms3(r & 1 ? -us : us);
    }
}

/* Appends keep a NUL after the text; what does not fit changes nothing. */
static void test_append_bounds(void **state)
{
    char out[8];
    size_t at = 0;
    memset(out, 'x', sizeof(out));
    assert_true(fmt_append_str(out, sizeof(out), &at, "abc"));
    assert_true(fmt_append(out, sizeof(out), &at, "defgh", 4)); /* 7 bytes and the NUL */
    assert_int_equal(at, 7);
    assert_string_equal(out, "abcdefg");
    assert_false(fmt_append_str(out, sizeof(out), &at, "h"));
    assert_int_equal(at, 7);
    assert_string_equal(out, "abcdefg");
    at = 5;
    assert_false(fmt_append_str(out, sizeof(out), &at, "xyz"));
    assert_true(fmt_append_str(out, sizeof(out), &at, ""));
    assert_string_equal(out, "abcde");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_i64_as_printf),
        cmocka_unit_test(test_ms3_as_printf),
        cmocka_unit_test(test_append_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
