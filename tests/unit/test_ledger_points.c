/* The ledger's points rules from tables: lot expiry under each policy kind
 * (checked against timegm, an independent calendar), when earned points
 * vest under a lock period, which lots a deduction spends (never pending
 * ones), and which lots a refund takes earned points back from. */
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
        struct points_policy p = {cases[i].kind, cases[i].periods, cases[i].offset_min, 0};
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
    {100, 2000, false, false}, {50, 0, false, false},   {30, 1000, false, false},
    {40, 1000, false, false},  {10, 500, false, false},
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

/* vests_at = earned + lock, exactly (no calendar: a lock of 7 days is
 * 604 800 s whatever the month or the tenant's offset). */
static void test_vests_at_from_lock(void **state)
{
    static const struct {
        int64_t lock_seconds;
        int earned[6], vests[6];
    } cases[] = {
        {0, {2026, 3, 15, 10, 0, 0}, {2026, 3, 15, 10, 0, 0}}, /* no lock: at once */
        {7 * 86400, {2026, 3, 15, 10, 0, 0}, {2026, 3, 22, 10, 0, 0}},
        {7 * 86400, {2026, 2, 25, 23, 30, 0}, {2026, 3, 4, 23, 30, 0}}, /* across a month end */
        {7 * 86400, {2028, 2, 25, 12, 0, 0}, {2028, 3, 3, 12, 0, 0}},   /* leap year */
        {30 * 86400, {2026, 12, 10, 0, 0, 0}, {2027, 1, 9, 0, 0, 0}},   /* across a year end */
        {1, {2026, 6, 1, 0, 0, 0}, {2026, 6, 1, 0, 0, 1}},
        {366 * 86400, {2026, 1, 1, 0, 0, 0}, {2027, 1, 2, 0, 0, 0}}, /* the longest lock */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const int *e = cases[i].earned, *v = cases[i].vests;
        struct points_policy p = {POINTS_EXPIRE_END_OF_MONTH, 12, 480, cases[i].lock_seconds};
        int64_t got = rules_points_vests_at_us(&p, utc_us(e[0], e[1], e[2], e[3], e[4], e[5]));
        int64_t want = utc_us(v[0], v[1], v[2], v[3], v[4], v[5]);
        if (got != want)
            print_error("case %zu: got %lld want %lld\n", i, (long long)got, (long long)want);
        assert_int_equal(got, want);
    }
}

/* Pending lots are never spent, whatever their expiry: the same lots as
 * above with two pending ones (the soonest-expiring, and the largest). */
static void test_pending_not_spent(void **state)
{
    static const struct points_lot_view mixed[] = {
        {.remaining = 100, .expires_at_us = 2000},
        {.remaining = 50, .expires_at_us = 0},
        {.remaining = 30, .expires_at_us = 1000, .pending = true},
        {.remaining = 40, .expires_at_us = 1000},
        {.remaining = 500, .expires_at_us = 3000, .pending = true},
    };
    static const struct {
        int64_t points;
        enum points_result result;
        int64_t take[5];
    } cases[] = {
        {20, POINTS_OK, {0, 0, 0, 20, 0}}, /* lot 2 expires first but is pending */
        {60, POINTS_OK, {20, 0, 0, 40, 0}},
        {190, POINTS_OK, {100, 50, 0, 40, 0}},
        {191, POINTS_INSUFFICIENT, {0}}, /* 190 vested; 530 pending do not count */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t take[5] = {-1, -1, -1, -1, -1};
        enum points_result r = rules_points_plan_spend(mixed, 5, 600, cases[i].points, take);
        if (r != cases[i].result)
            print_error("case %zu: result %d\n", i, r);
        assert_int_equal(r, cases[i].result);
        for (size_t k = 0; k < 5; k++)
            assert_int_equal(take[k], r == POINTS_OK ? cases[i].take[k] : -1);
    }
    /* only pending points: nothing to spend */
    static const struct points_lot_view locked[] = {{.remaining = 1000, .pending = true}};
    int64_t take[1] = {-1};
    assert_int_equal(rules_points_plan_spend(locked, 1, 600, 1, take), POINTS_INSUFFICIENT);
    assert_int_equal(take[0], -1);
}

/* A refund takes earned points back from the purchase's pending lots,
 * then what is left of its vested lots, then the member's other vested
 * lots soonest-expiring first; never other pending lots or expired lots.
 * What cannot be taken (spent) comes back as unrecovered. At now = 600. */
static void test_reversal_order_and_unrecovered(void **state)
{
    static const struct points_lot_view member_lots[] = {
        /* 0 */ {.remaining = 70, .expires_at_us = 0},                         /* other, vested */
        /* 1 */ {.remaining = 40, .expires_at_us = 5000, .of_purchase = true}, /* vested, partly
                                                                                  spent */
        /* 2 */ {.remaining = 25, .expires_at_us = 1000},                /* other, expires first */
        /* 3 */ {.remaining = 60, .pending = true, .of_purchase = true}, /* the purchase's pending
                                                                          */
        /* 4 */ {.remaining = 80, .pending = true},      /* another purchase's, pending */
        /* 5 */ {.remaining = 15, .expires_at_us = 500}, /* other, already expired */
    };
    static const struct {
        int64_t points;
        int64_t unrecovered;
        int64_t take[6];
    } cases[] = {
        {0, 0, {0, 0, 0, 0, 0, 0}},
        {50, 0, {0, 0, 0, 50, 0, 0}}, /* pending first: clean */
        {60, 0, {0, 0, 0, 60, 0, 0}},
        {61, 0, {0, 1, 0, 60, 0, 0}}, /* then the purchase's vested lot */
        {100, 0, {0, 40, 0, 60, 0, 0}},
        {110, 0, {0, 40, 10, 60, 0, 0}}, /* then other vested lots, soonest expiry first */
        {125, 0, {0, 40, 25, 60, 0, 0}},
        {195, 0, {70, 40, 25, 60, 0, 0}}, /* everything the member may spend */
        {200, 5, {70, 40, 25, 60, 0, 0}}, /* spent: never below zero, never pending of others */
        {1000, 805, {70, 40, 25, 60, 0, 0}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t take[6] = {-1, -1, -1, -1, -1, -1};
        int64_t unrecovered =
            rules_points_plan_reversal(member_lots, 6, 600, cases[i].points, take);
        if (unrecovered != cases[i].unrecovered)
            print_error("case %zu: unrecovered %lld\n", i, (long long)unrecovered);
        assert_int_equal(unrecovered, cases[i].unrecovered);
        int64_t taken = 0;
        for (size_t k = 0; k < 6; k++) {
            if (take[k] != cases[i].take[k])
                print_error("case %zu lot %zu: took %lld\n", i, k, (long long)take[k]);
            assert_int_equal(take[k], cases[i].take[k]);
            assert_true(take[k] <= member_lots[k].remaining);
            taken += take[k];
        }
        assert_int_equal(taken + unrecovered, cases[i].points); /* nothing created or lost */
    }
    /* a member with no lots: all of it unrecovered */
    assert_int_equal(rules_points_plan_reversal(NULL, 0, 600, 30, NULL), 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expiry_from_policy),
        cmocka_unit_test(test_kind_parse),
        cmocka_unit_test(test_spend_soonest_expiring_first),
        cmocka_unit_test(test_vests_at_from_lock),
        cmocka_unit_test(test_pending_not_spent),
        cmocka_unit_test(test_reversal_order_and_unrecovered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
