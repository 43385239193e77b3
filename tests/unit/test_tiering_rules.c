/* Tiering's rules from tables of cases: the level a spend reaches (the
 * demo ladder's boundaries, annual spend, invitation-only levels, an empty
 * ladder), the upgrade-only policy, and the local calendar year; the
 * windows are in test_tiering_spend.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "../../services/tiering/rules.h"

/* The demo tenant's ladder (deploy/local/runtime.sh), out of order, with an
 * invitation-only level above it that no spend reaches */
static const struct tier_level demo[] = {
    {.rank = 3,
     .name = "Premium",
     .min_cumulative_spend = 2000001,
     .min_annual_spend = -1,
     .min_rolling_spend = -1,
     .discount_bp = 7000,
     .points_multiplier_bp = 10000},
    {.rank = 1,
     .name = "Basic",
     .min_cumulative_spend = 50000,
     .min_annual_spend = -1,
     .min_rolling_spend = -1,
     .discount_bp = 8500,
     .points_multiplier_bp = 10000},
    {.rank = 4,
     .name = "Black",
     .min_cumulative_spend = 0,
     .min_annual_spend = 0,
     .min_rolling_spend = 0,
     .invitation_only = true,
     .discount_bp = 6000,
     .points_multiplier_bp = 20000},
    {.rank = 2,
     .name = "Advanced",
     .min_cumulative_spend = 200000,
     .min_annual_spend = 500000,
     .min_rolling_spend = -1,
     .discount_bp = 8000,
     .points_multiplier_bp = 10000},
};
#define DEMO_COUNT (sizeof(demo) / sizeof(demo[0]))

/* A ladder whose annual threshold is below the cumulative one. */
static const struct tier_level annual[] = {
    {.rank = 1,
     .name = "Basic",
     .min_cumulative_spend = 50000,
     .min_annual_spend = -1,
     .min_rolling_spend = -1,
     .discount_bp = 8500},
    {.rank = 2,
     .name = "Advanced",
     .min_cumulative_spend = 200000,
     .min_annual_spend = 100000,
     .min_rolling_spend = -1,
     .discount_bp = 8000},
};

static void test_qualify_demo_boundaries(void **state)
{
    static const struct {
        int64_t lifetime, annual;
        const char *tier; /* NULL: none */
        enum tier_reason why;
    } cases[] = {
        {0, 0, NULL, TIER_REASON_NONE},
        {49999, 49999, NULL, TIER_REASON_NONE},
        {50000, 50000, "Basic", TIER_REASON_CUMULATIVE},
        {199999, 199999, "Basic", TIER_REASON_CUMULATIVE},
        {200000, 0, "Advanced", TIER_REASON_CUMULATIVE},
        {2000000, 2000000, "Advanced", TIER_REASON_CUMULATIVE},
        {2000001, 0, "Premium", TIER_REASON_CUMULATIVE},
        {INT64_MAX, INT64_MAX, "Premium", TIER_REASON_CUMULATIVE},
        /* annual spend never exceeds lifetime spend, but the rule reads
         * them apart: 5 000 yuan this year reaches Advanced by itself */
        {60000, 500000, "Advanced", TIER_REASON_ANNUAL},
        {60000, 499999, "Basic", TIER_REASON_CUMULATIVE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tier_spend s = {
            .lifetime = cases[i].lifetime, .annual = cases[i].annual, .year = 2026};
        enum tier_reason why = TIER_REASON_CUMULATIVE;
        const struct tier_level *l = tier_qualify(demo, DEMO_COUNT, &s, &why);
        if (!cases[i].tier) {
            assert_null(l);
        } else {
            assert_non_null(l);
            assert_string_equal(l->name, cases[i].tier);
        }
        assert_int_equal(why, cases[i].why);
    }
}

static void test_qualify_annual_below_cumulative(void **state)
{
    enum tier_reason why;
    struct tier_spend s = {.lifetime = 150000, .annual = 100000, .year = 2026};
    const struct tier_level *l = tier_qualify(annual, 2, &s, &why);
    assert_string_equal(l->name, "Advanced");
    assert_int_equal(why, TIER_REASON_ANNUAL);
    assert_string_equal(tier_reason_name(why), "annual_spend");
    s.annual = 99999;
    l = tier_qualify(annual, 2, &s, &why);
    assert_string_equal(l->name, "Basic");
    assert_string_equal(tier_reason_name(why), "cumulative_spend");
}

static void test_qualify_empty_and_invitation_only(void **state)
{
    enum tier_reason why = TIER_REASON_ANNUAL;
    struct tier_spend rich = {.lifetime = INT64_MAX, .annual = INT64_MAX, .year = 2026};
    assert_null(tier_qualify(NULL, 0, &rich, &why));
    assert_int_equal(why, TIER_REASON_NONE);
    /* a ladder of invitation-only levels is never reached by spend */
    struct tier_level invite = demo[2];
    assert_null(tier_qualify(&invite, 1, &rich, NULL));
}

static void test_upgrade_only(void **state)
{
    const struct tier_level *basic = &demo[1], *advanced = &demo[3];
    static const struct {
        bool has_current;
        int32_t current_rank;
        int which; /* 0 none, 1 Basic, 2 Advanced */
        bool moves;
    } cases[] = {
        {false, 0, 0, false}, /* nothing reached, no tier */
        {false, 0, 1, true},  /* first tier */
        {true, 1, 1, false},  /* the same level again */
        {true, 1, 2, true},   /* up */
        {true, 2, 1, false},  /* never down here (period end decides that later) */
        {true, 4, 2, false},  /* an invitation-only tier stays */
        {true, 2, 0, false},  /* a ladder edit leaves the member reaching nothing */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct tier_level *q = cases[i].which == 0   ? NULL
                                     : cases[i].which == 1 ? basic
                                                           : advanced;
        assert_int_equal(tier_is_upgrade(cases[i].has_current, cases[i].current_rank, q),
                         cases[i].moves);
    }
}

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

static void test_local_year(void **state)
{
    static const struct {
        int64_t at_us;
        int32_t offset_min;
        int32_t year;
    } cases[] = {
        {0, 0, 1970},
        {-1, 0, 1969},
        {0, -60, 1969},
        {INT64_C(0), 480, 1970},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(tier_local_year(cases[i].at_us, cases[i].offset_min), cases[i].year);
    /* New Year in Shanghai is 16:00 UTC on 31 December */
    assert_int_equal(tier_local_year(utc_us(2026, 12, 31, 15, 59, 59), 480), 2026);
    assert_int_equal(tier_local_year(utc_us(2026, 12, 31, 16, 0, 0), 480), 2027);
    assert_int_equal(tier_local_year(utc_us(2026, 12, 31, 16, 0, 0), 0), 2026);
    assert_int_equal(tier_local_year(utc_us(2024, 2, 29, 12, 0, 0), 480), 2024);
    assert_int_equal(tier_local_year(utc_us(2100, 3, 1, 0, 0, 0), 0), 2100);
    assert_int_equal(tier_local_year(utc_us(2000, 1, 1, 0, 0, 0), -480), 1999);
    /* every day of four centuries agrees with the C library */
    for (int64_t day = -146097; day < 146097 * 2; day += 7) {
        time_t secs = (time_t)(day * 86400 + 43200);
        struct tm tm;
        gmtime_r(&secs, &tm);
        assert_int_equal(tier_local_year((int64_t)secs * 1000000, 0), tm.tm_year + 1900);
    }
}

static void test_referrals_and_packages(void **state)
{
    static const struct tier_level ways[] = {
        {.rank = 1, .name = "Basic", .referrals_required = 1},
        {.rank = 2, .name = "Advanced", .referrals_required = 5},
        {.rank = 3, .name = "Black", .referrals_required = 1, .invitation_only = true},
        {.rank = 4, .name = "Gold"},
    };
    static const struct {
        int64_t referrals;
        const char *to; /* NULL: none */
    } refs[] = {{0, NULL}, {1, "Basic"}, {4, "Basic"}, {5, "Advanced"}, {50, "Advanced"}};
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
        const struct tier_level *l = tier_by_referrals(ways, 4, refs[i].referrals);
        if (refs[i].to)
            assert_string_equal(l->name, refs[i].to);
        else
            assert_null(l);
    }
    const char *const skus[] = {"", "PKG-ADV\x1fPKG-ADV-Y", "", "GOLD"};
    static const struct {
        const char *bought[3];
        size_t n;
        const char *to;
    } pkgs[] = {
        {{"PKG-ADV"}, 1, "Advanced"},
        {{"PKG-ADV-Y"}, 1, "Advanced"},
        {{"PKG-AD"}, 1, NULL}, /* a prefix is not the SKU */
        {{"PKG-ADV", "GOLD"}, 2, "Gold"},
        {{""}, 1, NULL},
        {{NULL}, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(pkgs) / sizeof(pkgs[0]); i++) {
        const struct tier_level *l = tier_by_package(ways, skus, 4, pkgs[i].bought, pkgs[i].n);
        if (pkgs[i].to)
            assert_string_equal(l->name, pkgs[i].to);
        else
            assert_null(l);
    }
    assert_true(tier_reason_by_spend("cumulative_spend"));
    assert_true(tier_reason_by_spend("review"));
    assert_false(tier_reason_by_spend("override"));
    assert_false(tier_reason_by_spend("invitation"));
}

static void test_membership_years(void **state)
{
    static const struct {
        int ry, rm, rd, rh; /* registered, UTC */
        int ny, nm, nd, nh; /* now, UTC */
        int32_t offset, years;
    } cases[] = {
        {2025, 6, 1, 10, 2026, 6, 1, 9, 0, 0},  /* an hour short */
        {2025, 6, 1, 10, 2026, 6, 1, 10, 0, 1}, /* the anniversary itself */
        {2025, 6, 1, 10, 2028, 5, 31, 23, 0, 2},
        {2024, 2, 29, 0, 2025, 2, 28, 0, 0, 1}, /* 29 February: from the 28th */
        {2025, 6, 1, 10, 2025, 5, 1, 0, 0, 0},  /* before registering */
        {2025, 12, 31, 20, 2026, 12, 31, 20, 480, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tm r = {.tm_year = cases[i].ry - 1900,
                       .tm_mon = cases[i].rm - 1,
                       .tm_mday = cases[i].rd,
                       .tm_hour = cases[i].rh};
        struct tm n = {.tm_year = cases[i].ny - 1900,
                       .tm_mon = cases[i].nm - 1,
                       .tm_mday = cases[i].nd,
                       .tm_hour = cases[i].nh};
        assert_int_equal(tier_membership_years((int64_t)timegm(&r) * 1000000,
                                               (int64_t)timegm(&n) * 1000000, cases[i].offset),
                         cases[i].years);
    }
    static const struct tier_level loyal[] = {
        {.rank = 1, .name = "Member", .membership_years = 1},
        {.rank = 2, .name = "Loyal", .membership_years = 3},
        {.rank = 5, .name = "Black", .membership_years = 1, .invitation_only = true},
    };
    assert_null(tier_by_membership(loyal, 3, 0));
    assert_string_equal(tier_by_membership(loyal, 3, 1)->name, "Member");
    assert_string_equal(tier_by_membership(loyal, 3, 2)->name, "Member");
    assert_string_equal(tier_by_membership(loyal, 3, 3)->name, "Loyal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qualify_demo_boundaries),
        cmocka_unit_test(test_qualify_annual_below_cumulative),
        cmocka_unit_test(test_qualify_empty_and_invitation_only),
        cmocka_unit_test(test_upgrade_only),
        cmocka_unit_test(test_local_year),
        cmocka_unit_test(test_referrals_and_packages),
        cmocka_unit_test(test_membership_years),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
