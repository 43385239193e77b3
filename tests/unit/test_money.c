/* Unit tests for libs/money. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "money/money.h"

static void test_add_sub_overflow(void **state)
{
    int64_t out = 42;
    assert_true(money_add(1, 2, &out));
    assert_int_equal(out, 3);
    out = 42;
    assert_false(money_add(INT64_MAX, 1, &out));
    assert_int_equal(out, 42); /* untouched on overflow */
    assert_false(money_add(INT64_MIN, -1, &out));
    assert_true(money_add(INT64_MAX, INT64_MIN, &out));
    assert_int_equal(out, -1);
    assert_true(money_sub(5, 7, &out));
    assert_int_equal(out, -2);
    out = 42;
    assert_false(money_sub(INT64_MIN, 1, &out));
    assert_false(money_sub(0, INT64_MIN, &out));
    assert_false(money_sub(INT64_MAX, -1, &out));
    assert_int_equal(out, 42);
}

struct split_case {
    int64_t total, a, b, want_a, want_b;
};

static void test_split_table(void **state)
{
    static const struct split_case cases[] = {
        /* 3333 of 100000+10000: b's exact share 303.0, a takes the rest. */
        {3333, 100000, 10000, 3030, 303},
        /* b's exact share 303.09... rounds down; the fen goes to a. */
        {3334, 100000, 10000, 3031, 303},
        {1, 1, 1, 1, 0},
        {0, 0, 0, 0, 0},
        {0, 500, 700, 0, 0},
        {500, 500, 0, 500, 0},
        {500, 0, 500, 0, 500},
        {1200, 500, 700, 500, 700}, /* all of both */
        {2, 1, 2, 1, 1},
        {MONEY_AMOUNT_MAX, MONEY_AMOUNT_MAX, MONEY_AMOUNT_MAX, MONEY_AMOUNT_MAX / 2,
         MONEY_AMOUNT_MAX / 2},
        {INT64_MAX / 2, INT64_MAX / 2, INT64_MAX / 2, INT64_MAX / 2 - INT64_MAX / 4, INT64_MAX / 4},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct split_case *c = &cases[i];
        int64_t pa = -1, pb = -1;
        money_split_pro_rata(c->total, c->a, c->b, &pa, &pb);
        assert_int_equal(pa, c->want_a);
        assert_int_equal(pb, c->want_b);
    }
}

/* Invariants over many random cases: exact sum, bounds, and b's part is
 * floor of its exact share (checked by cross-multiplication). */
static void test_split_random_invariants(void **state)
{
    unsigned seed = 12345;
    for (int i = 0; i < 200000; i++) {
        int64_t a = (int64_t)(((uint64_t)rand_r(&seed) << 31 | (uint64_t)rand_r(&seed)) %
                              (uint64_t)(i % 3 == 0 ? 1000 : MONEY_AMOUNT_MAX));
        int64_t b = (int64_t)(((uint64_t)rand_r(&seed) << 31 | (uint64_t)rand_r(&seed)) %
                              (uint64_t)(i % 5 == 0 ? 10 : MONEY_AMOUNT_MAX));
        int64_t sum = a + b;
        int64_t total = sum == 0
                            ? 0
                            : (int64_t)(((uint64_t)rand_r(&seed) << 31 | (uint64_t)rand_r(&seed)) %
                                        (uint64_t)(sum + 1));
        int64_t pa, pb;
        money_split_pro_rata(total, a, b, &pa, &pb);
        assert_int_equal(pa + pb, total);
        assert_true(pa >= 0 && pa <= a);
        assert_true(pb >= 0 && pb <= b);
        if (sum > 0) {
            __int128 exact = (__int128)total * b;
            assert_true((__int128)pb * sum <= exact);
            assert_true((__int128)(pb + 1) * sum > exact);
        }
    }
}

static void test_apply_bp(void **state)
{
    static const struct {
        int64_t amount;
        int32_t rate;
        int64_t want;
    } cases[] = {
        {12345, 8000, 9876}, /* 9876.0 */
        {12800, 8000, 10240},
        {1, 5000, 1}, /* 0.5 rounds up */
        {3, 5000, 2}, /* 1.5 rounds up */
        {1, 4999, 0}, /* 0.4999 rounds down */
        {0, 8000, 0},
        {12345, 0, 0},
        {12345, 10000, 12345},
        {12345, 15000, 18518}, /* 18517.5 rounds up */
        {-1, 5000, -1},        /* negatives mirror positives */
        {-12345, 15000, -18518},
        {MONEY_AMOUNT_MAX, 10000, MONEY_AMOUNT_MAX},
        {MONEY_AMOUNT_MAX, 1000000, MONEY_AMOUNT_MAX * 100},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(money_apply_bp(cases[i].amount, cases[i].rate), cases[i].want);
}

static void test_format(void **state)
{
    static const struct {
        int64_t minor;
        const char *want;
    } cases[] = {
        {110000, "1100.00"},
        {-5, "-0.05"},
        {0, "0.00"},
        {5, "0.05"},
        {100, "1.00"},
        {-100, "-1.00"},
        {12345, "123.45"},
        {-123456, "-1234.56"},
        {INT64_MAX, "92233720368547758.07"},
        {INT64_MIN, "-92233720368547758.08"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = money_format(cases[i].minor, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].want);
        assert_int_equal(n, (int)strlen(cases[i].want));
    }
}

static void test_format_small_buffer(void **state)
{
    char buf[8];
    assert_int_equal(money_format(1234567, buf, sizeof(buf)), -1); /* "12345.67" needs 9 */
    assert_int_equal(money_format(123456, buf, sizeof(buf)), 7);
    assert_string_equal(buf, "1234.56");
    assert_int_equal(money_format(1, buf, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_sub_overflow),
        cmocka_unit_test(test_split_table),
        cmocka_unit_test(test_split_random_invariants),
        cmocka_unit_test(test_apply_bp),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
