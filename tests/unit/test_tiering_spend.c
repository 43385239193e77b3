/* Qualifying spend per window and refunds crossing a threshold, from
 * tables (services/tiering/rules_spend.h): where each window starts in
 * the tenant's zone, which facts land in which window, card and
 * subscription sales under the tenant's setting, and what a refund does
 * to the level held under each refund rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "../../services/tiering/rules_spend.h"

static int64_t utc_us(int y, int mon, int d, int h, int min, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = min,
                    .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000000;
}

static void test_windows_start(void **state)
{
    static const struct {
        int y, mon, d, h, min; /* now, UTC */
        int32_t offset;
        int32_t year;
        int yy, ym, yd, yh; /* year start, UTC */
        int ry, rm, rd, rh; /* rolling start, UTC */
    } cases[] = {
        /* Shanghai: local 2026-06-15 10:00 */
        {2026, 6, 15, 2, 0, 480, 2026, 2025, 12, 31, 16, 2025, 6, 15, 2},
        /* 16:00 UTC on 31 Dec is already next year in Shanghai */
        {2026, 12, 31, 16, 0, 480, 2027, 2026, 12, 31, 16, 2025, 12, 31, 16},
        /* but not in UTC */
        {2026, 12, 31, 16, 0, 0, 2026, 2026, 1, 1, 0, 2025, 12, 31, 16},
        /* 29 February looks back to 28 February */
        {2028, 2, 29, 12, 0, 0, 2028, 2028, 1, 1, 0, 2027, 2, 28, 12},
        /* west of UTC: local 2027-01-01 is 05:00 UTC in New York (-300) */
        {2027, 1, 1, 4, 59, -300, 2026, 2026, 1, 1, 5, 2026, 1, 1, 4},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tier_windows w;
        int64_t now = utc_us(cases[i].y, cases[i].mon, cases[i].d, cases[i].h, cases[i].min, 0);
        tier_windows_at(&w, now, cases[i].offset);
        assert_int_equal(w.year, cases[i].year);
        assert_int_equal(w.year_from_us,
                         utc_us(cases[i].yy, cases[i].ym, cases[i].yd, cases[i].yh, 0, 0));
        assert_int_equal(w.rolling_from_us, utc_us(cases[i].ry, cases[i].rm, cases[i].rd,
                                                   cases[i].rh, cases[i].min, 0));
    }
}

static void test_count_lands_in_windows(void **state)
{
    struct tier_windows w;
    tier_windows_at(&w, utc_us(2026, 6, 15, 2, 0, 0), 480); /* Shanghai 10:00 */
    static const struct {
        int y, mon, d, h; /* when the fact was, UTC */
        int64_t amount;
        int64_t lifetime, annual, rolling; /* after it */
    } cases[] = {
        {2024, 3, 1, 0, 10000, 10000, 0, 0},          /* too old for both windows */
        {2025, 7, 1, 0, 20000, 30000, 0, 20000},      /* last year, within 12 months */
        {2025, 12, 31, 15, 5000, 35000, 0, 25000},    /* 23:59 Shanghai: last year */
        {2025, 12, 31, 16, 7000, 42000, 7000, 32000}, /* 00:00 Shanghai: this year */
        {2026, 6, 1, 0, 1000, 43000, 8000, 33000},
        /* a refund of the July purchase lowers lifetime and rolling only */
        {2025, 7, 1, 0, -20000, 23000, 8000, 13000},
        /* a refund larger than a window holds floors it at zero */
        {2026, 6, 1, 0, -9000, 14000, 0, 4000},
    };
    struct tier_spend s = {0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t at = utc_us(cases[i].y, cases[i].mon, cases[i].d, cases[i].h, 0, 0);
        assert_true(tier_spend_count(&s, &w, cases[i].amount, at));
        assert_int_equal(s.lifetime, cases[i].lifetime);
        assert_int_equal(s.annual, cases[i].annual);
        assert_int_equal(s.rolling, cases[i].rolling);
        assert_int_equal(s.year, 2026);
    }
    /* an annual figure stored for an older year starts again at zero */
    struct tier_spend old = {.lifetime = 500, .annual = 500, .year = 2025, .rolling = 500};
    assert_true(tier_spend_count(&old, &w, 100, utc_us(2026, 6, 1, 0, 0, 0)));
    assert_int_equal(old.annual, 100);
    /* overflow changes nothing */
    struct tier_spend full = {.lifetime = INT64_MAX - 5, .year = 2026};
    assert_false(tier_spend_count(&full, &w, 6, utc_us(2026, 6, 1, 0, 0, 0)));
    assert_int_equal(full.lifetime, INT64_MAX - 5);
}

static void test_sale_counts(void **state)
{
    static const struct {
        bool cards, subs;
        enum tier_sale kind;
        bool counts;
    } cases[] = {
        {false, false, TIER_SALE_PURCHASE, true},    {false, false, TIER_SALE_CARD, false},
        {true, false, TIER_SALE_CARD, true},         {true, false, TIER_SALE_SUBSCRIPTION, false},
        {false, true, TIER_SALE_SUBSCRIPTION, true}, {false, true, TIER_SALE_CARD, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tier_spend_policy p = {cases[i].cards, cases[i].subs};
        assert_int_equal(tier_sale_counts(cases[i].kind, &p), cases[i].counts);
    }
}

static const struct tier_level ladder[] = {
    {.rank = 1,
     .name = "Basic",
     .min_cumulative_spend = 50000,
     .min_annual_spend = -1,
     .min_rolling_spend = -1,
     .discount_bp = 9500},
    {.rank = 2,
     .name = "Advanced",
     .min_cumulative_spend = 200000,
     .min_annual_spend = -1,
     .min_rolling_spend = 150000,
     .discount_bp = 9000},
    {.rank = 3,
     .name = "Premium",
     .min_cumulative_spend = -1,
     .min_annual_spend = 800000,
     .min_rolling_spend = -1,
     .discount_bp = 8000},
};

static void test_refund_crossing_down(void **state)
{
    static const struct {
        int64_t lifetime, annual, rolling; /* after the refund */
        bool has;
        int32_t rank;
        bool by_spend;
        enum tier_refund_rule rule;
        enum tier_refund_outcome outcome;
        const char *to; /* NULL: none */
    } cases[] = {
        /* still Advanced by the rolling window */
        {100000, 0, 150000, true, 2, true, TIER_REFUND_IMMEDIATE, TIER_REFUND_KEEP, "Advanced"},
        /* below Advanced: down to Basic now, or kept until the review */
        {199999, 0, 149999, true, 2, true, TIER_REFUND_IMMEDIATE, TIER_REFUND_DOWN_NOW, "Basic"},
        {199999, 0, 149999, true, 2, true, TIER_REFUND_AT_REVIEW, TIER_REFUND_BELOW_REVIEW,
         "Basic"},
        /* below every level: down to none */
        {49999, 0, 0, true, 1, true, TIER_REFUND_IMMEDIATE, TIER_REFUND_DOWN_NOW, NULL},
        /* an invited or overridden level never moves on a refund */
        {0, 0, 0, true, 3, false, TIER_REFUND_IMMEDIATE, TIER_REFUND_KEEP, NULL},
        /* no tier: nothing to lose */
        {0, 0, 0, false, 0, true, TIER_REFUND_IMMEDIATE, TIER_REFUND_KEEP, NULL},
        /* Premium by the year's spend, which the refund took under */
        {900000, 799999, 0, true, 3, true, TIER_REFUND_IMMEDIATE, TIER_REFUND_DOWN_NOW, "Advanced"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tier_spend s = {.lifetime = cases[i].lifetime,
                               .annual = cases[i].annual,
                               .rolling = cases[i].rolling,
                               .year = 2026};
        const struct tier_level *to = NULL;
        enum tier_refund_outcome o = tier_after_refund(ladder, 3, &s, cases[i].has, cases[i].rank,
                                                       cases[i].by_spend, cases[i].rule, &to);
        assert_int_equal(o, cases[i].outcome);
        if (cases[i].to)
            assert_string_equal(to->name, cases[i].to);
        else
            assert_null(to);
    }
}

static void test_refund_rule_names(void **state)
{
    enum tier_refund_rule r;
    assert_true(tier_refund_rule_parse("immediately", &r));
    assert_int_equal(r, TIER_REFUND_IMMEDIATE);
    assert_string_equal(tier_refund_rule_name(r), "immediately");
    assert_true(tier_refund_rule_parse("at_review", &r));
    assert_int_equal(r, TIER_REFUND_AT_REVIEW);
    assert_false(tier_refund_rule_parse("later", &r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows_start),     cmocka_unit_test(test_count_lands_in_windows),
        cmocka_unit_test(test_sale_counts),       cmocka_unit_test(test_refund_crossing_down),
        cmocka_unit_test(test_refund_rule_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
