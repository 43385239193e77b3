/* The campaign's activity rules from tables: points per rule, the day,
 * week and month limits, the monthly cap (cut, then nothing), promotions
 * (day of month, window, branch, category, activities vs purchases, the
 * largest wins), check-in streaks (continue, break after one missed day,
 * the same day twice, a late report, a bonus at each multiple of the
 * streak length; days are local day numbers, so a check-in at 23:50 and
 * one at 00:10 the next local day are consecutive whatever UTC says) and
 * the welcome month's edge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../services/campaign/rules_activities.h"
#include "datetime/datetime.h"

struct points_case {
    const char *name;
    struct activity_rule rule;
    struct activity_counts counts;
    int64_t multiplier_bp, cap;
    enum activity_outcome outcome;
    int64_t points;
};

/* clang-format off */
static const struct points_case points_cases[] = {
    {"comment +5",              {5, 0, 0, 0},   {0, 0, 0, 0},      10000, 0,    ACTIVITY_EARNED, 5},
    {"no points",               {0, 0, 0, 0},   {0, 0, 0, 0},      10000, 0,    ACTIVITY_NO_POINTS, 0},
    {"3rd of 3 a day earns",    {5, 3, 0, 0},   {2, 2, 2, 0},      10000, 0,    ACTIVITY_EARNED, 5},
    {"4th of 3 a day does not", {5, 3, 0, 0},   {3, 3, 3, 15},     10000, 0,    ACTIVITY_DAY_LIMIT, 0},
    {"week limit",              {5, 0, 10, 0},  {0, 10, 10, 50},   10000, 0,    ACTIVITY_WEEK_LIMIT, 0},
    {"month limit",             {5, 0, 0, 20},  {0, 0, 20, 100},   10000, 0,    ACTIVITY_MONTH_LIMIT, 0},
    {"day limit checked first", {5, 1, 1, 1},   {1, 1, 1, 5},      10000, 0,    ACTIVITY_DAY_LIMIT, 0},
    {"member day x2",           {100, 0, 0, 0}, {0, 0, 0, 0},      20000, 0,    ACTIVITY_EARNED, 200},
    {"x1.5 rounds down",        {5, 0, 0, 0},   {0, 0, 0, 0},      15000, 0,    ACTIVITY_EARNED, 7},
    {"under the cap",           {100, 0, 0, 0}, {0, 0, 0, 800},    10000, 1000, ACTIVITY_EARNED, 100},
    {"cut by the cap",          {200, 0, 0, 0}, {0, 0, 0, 900},    10000, 1000, ACTIVITY_EARNED, 100},
    {"cap reached",             {200, 0, 0, 0}, {0, 0, 0, 1000},   10000, 1000, ACTIVITY_CAPPED, 0},
    {"cap passed (older rule)", {200, 0, 0, 0}, {0, 0, 0, 1500},   10000, 1000, ACTIVITY_CAPPED, 0},
    {"cap after multiplier",    {300, 0, 0, 0}, {0, 0, 0, 500},    20000, 1000, ACTIVITY_EARNED, 500},
};
/* clang-format on */

static void test_points(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(points_cases) / sizeof(points_cases[0]); i++) {
        const struct points_case *c = &points_cases[i];
        int64_t points = -1;
        enum activity_outcome o =
            rules_activity_points(&c->rule, &c->counts, c->multiplier_bp, c->cap, &points);
        if (o != c->outcome || points != c->points)
            fail_msg("%s: got %s %lld, want %s %lld", c->name, rules_activity_outcome_text(o),
                     (long long)points, rules_activity_outcome_text(c->outcome),
                     (long long)c->points);
    }
}

/* A sequence of check-in days and the bonus each must (not) give. */
struct streak_case {
    const char *name;
    int64_t streak_days;
    int64_t days[16]; /* local day numbers, -1 ends */
    bool bonus[16];
    int64_t length; /* at the end */
};

#define D(y, m, d) datetime_days_from_civil(y, m, d)

static void test_streaks(void **state)
{
    (void)state;
    /* clang-format off */
    const struct streak_case cases[] = {
        {"7 days in a row: one bonus on the 7th", 7,
         {D(2027,1,1), D(2027,1,2), D(2027,1,3), D(2027,1,4), D(2027,1,5), D(2027,1,6), D(2027,1,7), -1},
         {0, 0, 0, 0, 0, 0, 1}, 7},
        {"one missed day breaks it", 7,
         {D(2027,1,1), D(2027,1,2), D(2027,1,3), D(2027,1,5), D(2027,1,6), D(2027,1,7), D(2027,1,8), -1},
         {0, 0, 0, 0, 0, 0, 0}, 4},
        {"twice a day counts once", 3,
         {D(2027,1,1), D(2027,1,1), D(2027,1,2), D(2027,1,2), D(2027,1,3), D(2027,1,3), -1},
         {0, 0, 0, 0, 1, 0}, 3},
        {"a late report changes nothing", 3,
         {D(2027,1,5), D(2027,1,3), D(2027,1,6), D(2027,1,7), -1},
         {0, 0, 0, 1}, 3},
        {"across a month and a year end", 3,
         {D(2026,12,30), D(2026,12,31), D(2027,1,1), -1},
         {0, 0, 1}, 3},
        {"14 days: a bonus at 7 and at 14", 7,
         {D(2027,3,1), D(2027,3,2), D(2027,3,3), D(2027,3,4), D(2027,3,5), D(2027,3,6), D(2027,3,7),
          D(2027,3,8), D(2027,3,9), D(2027,3,10), D(2027,3,11), D(2027,3,12), D(2027,3,13), D(2027,3,14), -1},
         {0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1}, 14},
        {"streak days 0: never a bonus", 0, {D(2027,1,1), D(2027,1,2), -1}, {0, 0}, 2},
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct check_in_streak s = {0, 0};
        for (size_t k = 0; cases[i].days[k] != -1; k++) {
            bool bonus = rules_streak_check_in(&s, cases[i].days[k], cases[i].streak_days);
            if (bonus != cases[i].bonus[k])
                fail_msg("%s: check-in %zu gave bonus %d", cases[i].name, k, bonus);
        }
        if (s.length != cases[i].length)
            fail_msg("%s: length %lld, want %lld", cases[i].name, (long long)s.length,
                     (long long)cases[i].length);
    }
}

/* The local day decides, not UTC: 2027-01-01 23:50 and 2027-01-02 00:10
 * in Asia/Shanghai (+08:00) are 15:50 and 16:10 UTC of the same UTC day,
 * yet two local days, so the run grows; 00:10 and 23:50 of one local day
 * (different UTC days) are one day. */
static void test_streak_local_midnight(void **state)
{
    (void)state;
    int64_t shanghai = 8 * 3600;
    int64_t a_us = 0, b_us = 0, c_us = 0;
    assert_true(datetime_parse_rfc3339_us("2027-01-01T23:50:00+08:00", &a_us));
    assert_true(datetime_parse_rfc3339_us("2027-01-02T00:10:00+08:00", &b_us));
    assert_true(datetime_parse_rfc3339_us("2027-01-02T23:50:00+08:00", &c_us));
    /* what activities.c asks PostgreSQL: the day of the local wall time */
#define LOCAL_DAY(us) (((us) / 1000000 + shanghai) / 86400)
    assert_int_equal(a_us / 1000000 / 86400, b_us / 1000000 / 86400); /* one UTC day */
    struct check_in_streak s = {0, 0};
    assert_false(rules_streak_check_in(&s, LOCAL_DAY(a_us), 2));
    assert_true(rules_streak_check_in(&s, LOCAL_DAY(b_us), 2));  /* two local days */
    assert_false(rules_streak_check_in(&s, LOCAL_DAY(c_us), 2)); /* same local day as b */
    assert_int_equal(s.length, 2);
#undef LOCAL_DAY
}

static void test_promotions(void **state)
{
    (void)state;
    const char *const books[] = {"books"};
    const char *const hq[] = {"hq"};
    int64_t jan_us = 0, feb_us = 0;
    assert_true(datetime_parse_rfc3339_us("2027-01-01T00:00:00Z", &jan_us));
    assert_true(datetime_parse_rfc3339_us("2027-02-01T00:00:00Z", &feb_us));
    const struct promotion_rule promos[] = {
        /* member day: the 8th, x2, everything */
        {20000, 8, 0, 0, NULL, 0, NULL, 0, true, true},
        /* January, books, x3, purchases only */
        {30000, 0, jan_us, feb_us, books, 1, NULL, 0, false, true},
        /* hq only, x1.5, activities */
        {15000, 0, 0, 0, NULL, 0, hq, 1, true, false},
    };
    const char *const book_cat[] = {"books"};
    const char *const food_cat[] = {"food"};
    const char *const comment[] = {"comment"};
    struct {
        const char *name;
        struct promotion_target t;
        int64_t bp;
    } cases[] = {
        {"the 8th, an activity", {false, jan_us + 1, 8, "b1", comment, 1}, 20000},
        {"the 9th, an activity elsewhere", {false, jan_us + 1, 9, "b1", comment, 1}, 10000},
        {"hq activity", {false, jan_us + 1, 9, "hq", comment, 1}, 15000},
        {"hq on the 8th: the largest", {false, jan_us + 1, 8, "hq", comment, 1}, 20000},
        {"January books purchase", {true, jan_us + 1, 9, "b1", book_cat, 1}, 30000},
        {"January food purchase", {true, jan_us + 1, 9, "b1", food_cat, 1}, 10000},
        {"February books purchase", {true, feb_us, 9, "b1", book_cat, 1}, 10000},
        {"hq purchase: activities only", {true, feb_us, 9, "hq", food_cat, 1}, 10000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t bp = rules_promotion_multiplier(promos, 3, &cases[i].t);
        if (bp != cases[i].bp)
            fail_msg("%s: %lld, want %lld", cases[i].name, (long long)bp, (long long)cases[i].bp);
    }
}

static void test_welcome(void **state)
{
    (void)state;
    int64_t day = INT64_C(86400) * 1000000, reg = INT64_C(1800000000) * 1000000;
    assert_true(rules_welcome_due(reg, reg, 30));
    assert_true(rules_welcome_due(reg, reg + 30 * day - 1, 30));
    assert_false(rules_welcome_due(reg, reg + 30 * day, 30));
    assert_false(rules_welcome_due(reg, reg - 1, 30)); /* before registering */
    assert_false(rules_welcome_due(0, reg, 30));       /* registration unknown */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_points),
        cmocka_unit_test(test_streaks),
        cmocka_unit_test(test_streak_local_midnight),
        cmocka_unit_test(test_promotions),
        cmocka_unit_test(test_welcome),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
