/* The review of a tier at period end, from tables
 * (services/tiering/rules_review.h): where a period ends in the tenant's
 * calendar, when warning and review are due, what the member must still
 * spend, and the verdict (kept, down a level, down to none), including a
 * purchase that leaves the rolling window exactly at period end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "../../services/tiering/rules_review.h"
#include "../../services/tiering/rules_spend.h"

static int64_t utc_us(int y, int mon, int d, int h, int min)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h, .tm_min = min};
    return (int64_t)timegm(&tm) * 1000000;
}

static void test_period_end(void **state)
{
    static const struct {
        int y, m, d, h; /* start, UTC */
        int32_t months, offset;
        int ey, em, ed, eh; /* end, UTC */
    } cases[] = {
        {2026, 3, 15, 2, 12, 480, 2027, 3, 15, 2},
        {2026, 1, 31, 4, 1, 0, 2026, 2, 28, 4},      /* clamped to the month's end */
        {2027, 12, 31, 4, 2, 0, 2028, 2, 29, 4},     /* a leap February */
        {2026, 11, 30, 20, 3, 480, 2027, 2, 28, 20}, /* local 1 Dec 04:00 -> 1 Mar */
        {2026, 6, 1, 0, 60, 0, 2031, 6, 1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(tier_period_end(utc_us(cases[i].y, cases[i].m, cases[i].d, cases[i].h, 0),
                                         cases[i].months, cases[i].offset),
                         utc_us(cases[i].ey, cases[i].em, cases[i].ed, cases[i].eh, 0));
    int64_t end = utc_us(2027, 3, 15, 2, 0);
    assert_int_equal(tier_warning_at(end, 10), utc_us(2027, 3, 5, 2, 0));
    assert_int_equal(tier_review_at(end, 7), utc_us(2027, 3, 22, 2, 0));
    assert_int_equal(tier_review_at(end, 0), end);
}

static const struct tier_level ladder[] = {
    {.rank = 1,
     .name = "Basic",
     .min_cumulative_spend = -1,
     .min_annual_spend = -1,
     .min_rolling_spend = 10000},
    {.rank = 2,
     .name = "Advanced",
     .min_cumulative_spend = 500000,
     .min_annual_spend = 80000,
     .min_rolling_spend = 50000},
    {.rank = 3,
     .name = "Black",
     .min_cumulative_spend = -1,
     .min_annual_spend = -1,
     .min_rolling_spend = -1,
     .invitation_only = true},
};

static void test_needed_and_verdict(void **state)
{
    static const struct {
        int64_t lifetime, annual, rolling;
        int32_t held;
        int64_t needed;
        const char *window;
        enum tier_review_outcome outcome;
        const char *to;
    } cases[] = {
        /* the rolling window is the closest of three */
        {100000, 20000, 45000, 2, 5000, "rolling_12_months", TIER_REVIEW_DOWN, "Basic"},
        /* the calendar year is closer */
        {100000, 79000, 0, 2, 1000, "calendar_year", TIER_REVIEW_DOWN, NULL},
        /* kept: one window is enough */
        {500000, 0, 0, 2, 0, "lifetime", TIER_REVIEW_KEEP, "Advanced"},
        {0, 0, 50000, 2, 0, "rolling_12_months", TIER_REVIEW_KEEP, "Advanced"},
        /* above the level held is kept too (upgrades happen at once anyway) */
        {0, 0, 60000, 1, 0, "rolling_12_months", TIER_REVIEW_KEEP, "Advanced"},
        /* nothing left: down to no tier */
        {0, 0, 0, 1, 10000, "rolling_12_months", TIER_REVIEW_DOWN, NULL},
        /* invitation-only: no spend keeps it (never reviewed by the service) */
        {0, 0, 1000000, 3, -1, "", TIER_REVIEW_DOWN, "Advanced"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tier_spend s = {.lifetime = cases[i].lifetime,
                               .annual = cases[i].annual,
                               .rolling = cases[i].rolling,
                               .year = 2027};
        const struct tier_level *held = tier_level_of_rank(ladder, 3, cases[i].held);
        assert_non_null(held);
        const char *window;
        assert_int_equal(tier_needed_to_keep(held, &s, &window), cases[i].needed);
        assert_string_equal(window, cases[i].window);
        const struct tier_level *to;
        assert_int_equal(tier_review(ladder, 3, &s, cases[i].held, &to), cases[i].outcome);
        if (cases[i].to)
            assert_string_equal(to->name, cases[i].to);
        else
            assert_null(to);
    }
    assert_null(tier_level_of_rank(ladder, 3, 7));
}

/* A purchase at T that started a 12-month period has left the rolling
 * window at the period's end: the review does not count it. */
static void test_purchase_leaves_window_at_period_end(void **state)
{
    int64_t t = utc_us(2026, 5, 10, 3, 30);
    int64_t end = tier_period_end(t, 12, 480);
    struct tier_windows before, at;
    tier_windows_at(&before, end - 1000000, 480);
    tier_windows_at(&at, end, 480);
    struct tier_spend s1 = {0}, s2 = {0};
    assert_true(tier_spend_count(&s1, &before, 60000, t));
    assert_true(tier_spend_count(&s2, &at, 60000, t));
    assert_int_equal(s1.rolling, 60000);
    assert_int_equal(s2.rolling, 0);
    assert_int_equal(s2.lifetime, 60000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_period_end),
        cmocka_unit_test(test_needed_and_verdict),
        cmocka_unit_test(test_purchase_leaves_window_at_period_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
