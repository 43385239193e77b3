/* The ledger's points rules from tables: lot expiry under each policy kind
 * (checked against timegm, an independent calendar), and which lots a
 * deduction spends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "../../services/ledger/rules_points.h"

static int64_t utc_us(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000000;
}

static void test_expiry_from_policy(void **state)
{
    static const struct {
        enum points_expiry_kind kind;
        int periods, offset_min;
        int granted[6], expires[6]; /* UTC; expires all zero: never */
    } cases[] = {
        {POINTS_EXPIRE_DAYS, 30, 480, {2026, 3, 15, 10, 0, 0}, {2026, 4, 14, 10, 0, 0}},
        {POINTS_EXPIRE_DAYS, 0, 480, {2026, 3, 15, 10, 0, 0}, {2026, 3, 15, 10, 0, 0}},
        {POINTS_EXPIRE_DAYS, 365, 0, {2027, 12, 31, 23, 0, 0}, {2028, 12, 30, 23, 0, 0}},
        /* end of month in Shanghai (+08:00): local midnight of the next month */
        {POINTS_EXPIRE_END_OF_MONTH, 0, 480, {2026, 3, 15, 10, 0, 0}, {2026, 3, 31, 16, 0, 0}},
        {POINTS_EXPIRE_END_OF_MONTH, 12, 480, {2026, 3, 15, 10, 0, 0}, {2027, 3, 31, 16, 0, 0}},
        /* 17:00 UTC on 31 March is already 1 April in Shanghai */
        {POINTS_EXPIRE_END_OF_MONTH, 0, 480, {2026, 3, 31, 17, 0, 0}, {2026, 4, 30, 16, 0, 0}},
        {POINTS_EXPIRE_END_OF_MONTH, 1, 480, {2026, 12, 10, 0, 0, 0}, {2027, 1, 31, 16, 0, 0}},
        {POINTS_EXPIRE_END_OF_MONTH, 0, 480, {2028, 2, 10, 0, 0, 0}, {2028, 2, 29, 16, 0, 0}},
        {POINTS_EXPIRE_END_OF_MONTH, 11, 0, {2026, 2, 1, 0, 0, 0}, {2027, 2, 1, 0, 0, 0}},
        /* a negative offset: 03:00 UTC on 1 March is still February locally */
        {POINTS_EXPIRE_END_OF_MONTH, 0, -300, {2026, 3, 1, 3, 0, 0}, {2026, 3, 1, 5, 0, 0}},
        {POINTS_EXPIRE_END_OF_YEAR, 0, 480, {2026, 12, 31, 15, 59, 59}, {2026, 12, 31, 16, 0, 0}},
        {POINTS_EXPIRE_END_OF_YEAR, 0, 480, {2026, 12, 31, 16, 0, 0}, {2027, 12, 31, 16, 0, 0}},
        {POINTS_EXPIRE_END_OF_YEAR, 1, 0, {2026, 6, 1, 0, 0, 0}, {2028, 1, 1, 0, 0, 0}},
        {POINTS_EXPIRE_NEVER, 0, 480, {2026, 6, 1, 0, 0, 0}, {0}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const int *g = cases[i].granted, *e = cases[i].expires;
        struct points_policy p = {cases[i].kind, cases[i].periods, cases[i].offset_min};
        int64_t want = e[0] ? utc_us(e[0], e[1], e[2], e[3], e[4], e[5]) : 0;
        int64_t got = rules_points_expiry_us(&p, utc_us(g[0], g[1], g[2], g[3], g[4], g[5]));
        if (got != want)
            print_error("case %zu: got %lld want %lld\n", i, (long long)got, (long long)want);
        assert_int_equal(got, want);
    }
}

static void test_kind_parse(void **state)
{
    enum points_expiry_kind k;
    assert_true(rules_points_kind_parse("end_of_month", &k));
    assert_int_equal(k, POINTS_EXPIRE_END_OF_MONTH);
    assert_true(rules_points_kind_parse("never", &k));
    assert_int_equal(k, POINTS_EXPIRE_NEVER);
    assert_false(rules_points_kind_parse("weekly", &k));
}

/* Lots as loaded, oldest first; at now = 600 lot 4 has already expired. */
static const struct points_lot_view lots[] = {
    {100, 2000}, {50, 0}, {30, 1000}, {40, 1000}, {10, 500},
};

static void test_spend_soonest_expiring_first(void **state)
{
    static const struct {
        int64_t points;
        enum points_result result;
        int64_t take[5];
    } cases[] = {
        {20, POINTS_OK, {0, 0, 20, 0, 0}},
        {30, POINTS_OK, {0, 0, 30, 0, 0}},
        {60, POINTS_OK, {0, 0, 30, 30, 0}},
        {170, POINTS_OK, {100, 0, 30, 40, 0}},
        {171, POINTS_OK, {100, 1, 30, 40, 0}},
        {220, POINTS_OK, {100, 50, 30, 40, 0}},
        {221, POINTS_INSUFFICIENT, {0}},
        {0, POINTS_INVALID, {0}},
        {-5, POINTS_INVALID, {0}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t take[5] = {-1, -1, -1, -1, -1};
        enum points_result r = rules_points_plan_spend(lots, 5, 600, cases[i].points, take);
        assert_int_equal(r, cases[i].result);
        for (size_t k = 0; k < 5; k++)
            assert_int_equal(take[k], r == POINTS_OK ? cases[i].take[k] : -1);
    }
    int64_t none[1] = {-1};
    assert_int_equal(rules_points_plan_spend(NULL, 0, 600, 1, none), POINTS_INSUFFICIENT);
    assert_string_equal(rules_points_code(POINTS_INSUFFICIENT), "insufficient_points");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expiry_from_policy),
        cmocka_unit_test(test_kind_parse),
        cmocka_unit_test(test_spend_soonest_expiring_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
