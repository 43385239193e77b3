/* The first-day limit on freshly topped-up stored value
 * (services/ledger/rules_firstday.h) from a table of cases: each case is a
 * member's day in Asia/Shanghai (UTC+8) — the balance from before, top-ups,
 * stored-value refunds and earlier spends at given local times — folded the
 * way the ledger folds the journal lines it loads (firstday.c), then one
 * stored-value charge checked against the tenant's limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <time.h>

#include "../../services/ledger/rules_cards.h"
#include "../../services/ledger/rules_firstday.h"

#define SHANGHAI_S (8 * 3600)
#define EVENTS_MAX 4

/* µs since the epoch of a wall-clock time in Shanghai. */
static int64_t sh(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return ((int64_t)timegm(&tm) - SHANGHAI_S) * 1000000LL;
}

enum ev_kind { EV_NONE, EV_TOPUP, EV_REFUND, EV_SPEND };

struct ev {
    enum ev_kind kind;
    int y, mo, d, h, mi;
    int64_t amount, bonus; /* top-ups: principal and bonus; refunds: principal, bonus forfeited */
};

struct fd_case {
    const char *name;
    int64_t limit;
    struct sv_balance before; /* at the start of the case's events */
    struct ev events[EVENTS_MAX];
    int day; /* the charge's day of January 2026, at 12:00 Shanghai */
    int64_t charge;
    enum rules_result expected;
};

/* one case a line or two: a table */
/* clang-format off */
static const struct fd_case cases[] = {
    {"no top-up today: no limit", 20000, {100000, 0}, {{0}}, 2, 100000, RULES_OK},
    {"no top-up today, one yesterday: no limit", 20000, {0, 0},
     {{EV_TOPUP, 2026, 1, 1, 9, 0, 100000, 10000}}, 2, 110000, RULES_OK},
    {"old balance covers it", 20000, {50000, 0},
     {{EV_TOPUP, 2026, 1, 2, 9, 0, 100000, 10000}}, 2, 50000, RULES_OK},
    {"old balance and exactly the limit", 20000, {50000, 0},
     {{EV_TOPUP, 2026, 1, 2, 9, 0, 100000, 10000}}, 2, 70000, RULES_OK},
    {"old balance and one fen over", 20000, {50000, 0},
     {{EV_TOPUP, 2026, 1, 2, 9, 0, 100000, 10000}}, 2, 70001, RULES_FIRST_DAY_LIMIT_EXCEEDED},
    {"fresh only: exactly at the limit", 20000, {0, 0},
     {{EV_TOPUP, 2026, 1, 2, 9, 0, 100000, 0}}, 2, 20000, RULES_OK},
    {"fresh only: one fen over", 20000, {0, 0},
     {{EV_TOPUP, 2026, 1, 2, 9, 0, 100000, 0}}, 2, 20001, RULES_FIRST_DAY_LIMIT_EXCEEDED},
    {"bonus counted as fresh", 20000, {10000, 0},
     {{EV_TOPUP, 2026, 1, 2, 9, 0, 100000, 10000}}, 2, 30001, RULES_FIRST_DAY_LIMIT_EXCEEDED},
    {"bonus counted as fresh: at the limit", 20000, {10000, 0},
     {{EV_TOPUP, 2026, 1, 2, 9, 0, 100000, 10000}}, 2, 30000, RULES_OK},
    {"no limit set", 0, {0, 0}, {{EV_TOPUP, 2026, 1, 2, 9, 0, 100000, 10000}}, 2, 110000,
     RULES_OK},
    /* 23:30 on the 1st in Shanghai is 15:30 UTC, 00:30 on the 2nd 16:30 UTC
     * of the 1st: one UTC day, two local ones */
    {"Shanghai midnight: 23:30 yesterday is not fresh", 20000, {0, 0},
     {{EV_TOPUP, 2026, 1, 1, 23, 30, 100000, 0}, {EV_TOPUP, 2026, 1, 2, 0, 30, 50000, 0}}, 2,
     120000, RULES_OK},
    {"Shanghai midnight: 00:30 today is", 20000, {0, 0},
     {{EV_TOPUP, 2026, 1, 1, 23, 30, 100000, 0}, {EV_TOPUP, 2026, 1, 2, 0, 30, 50000, 0}}, 2,
     120001, RULES_FIRST_DAY_LIMIT_EXCEEDED},
    /* 07:30 on the 2nd in Shanghai is 23:30 UTC of the 1st: another UTC
     * day than the noon charge, the same local one */
    {"Shanghai morning: 07:30 is fresh at noon", 20000, {0, 0},
     {{EV_TOPUP, 2026, 1, 2, 7, 30, 100000, 0}}, 2, 20001, RULES_FIRST_DAY_LIMIT_EXCEEDED},
    {"spent the old value before topping up", 20000, {50000, 0},
     {{EV_SPEND, 2026, 1, 2, 8, 0, 50000, 0}, {EV_TOPUP, 2026, 1, 2, 9, 0, 100000, 0}}, 2, 20001,
     RULES_FIRST_DAY_LIMIT_EXCEEDED},
    {"spent part of the limit already", 20000, {0, 0},
     {{EV_TOPUP, 2026, 1, 2, 9, 0, 100000, 0}, {EV_SPEND, 2026, 1, 2, 10, 0, 15000, 0}}, 2, 5001,
     RULES_FIRST_DAY_LIMIT_EXCEEDED},
    {"spent part of the limit, the rest allowed", 20000, {0, 0},
     {{EV_TOPUP, 2026, 1, 2, 9, 0, 100000, 0}, {EV_SPEND, 2026, 1, 2, 10, 0, 15000, 0}}, 2, 5000,
     RULES_OK},
    /* a refund of today's top-up lowers T by all it takes out: the old
     * value stays spendable as before */
    {"refund lowers the fresh value", 20000, {50000, 0},
     {{EV_TOPUP, 2026, 1, 2, 9, 0, 100000, 10000}, {EV_REFUND, 2026, 1, 2, 10, 0, 60000, 6000}},
     2, 70000, RULES_OK},
    {"refund lowers the fresh value: one fen over", 20000, {50000, 0},
     {{EV_TOPUP, 2026, 1, 2, 9, 0, 100000, 10000}, {EV_REFUND, 2026, 1, 2, 10, 0, 60000, 6000}},
     2, 70001, RULES_FIRST_DAY_LIMIT_EXCEEDED},
    {"refund of more than is fresh: no limit left", 20000, {50000, 0},
     {{EV_TOPUP, 2026, 1, 2, 9, 0, 30000, 0}, {EV_REFUND, 2026, 1, 2, 10, 0, 40000, 0}}, 2,
     40000, RULES_OK},
};
/* clang-format on */

/* The case's events in order; returns the charge's verdict. */
static enum rules_result run_case(const struct fd_case *c)
{
    int64_t at = sh(2026, 1, c->day, 12, 0);
    int64_t today = rules_local_day(at, SHANGHAI_S);
    struct sv_balance bal = c->before;
    struct sv_fresh fresh = {.day = today}; /* as firstday.c starts a member */
    for (int i = 0; i < EVENTS_MAX && c->events[i].kind != EV_NONE; i++) {
        const struct ev *e = &c->events[i];
        int64_t day = rules_local_day(sh(e->y, e->mo, e->d, e->h, e->mi), SHANGHAI_S);
        switch (e->kind) {
        case EV_TOPUP: /* one journal line each for principal and bonus */
            bal.principal += e->amount;
            bal.bonus += e->bonus;
            rules_fresh_topped_up(&fresh, day, e->amount);
            rules_fresh_topped_up(&fresh, day, e->bonus);
            break;
        case EV_REFUND:
            bal.principal -= e->amount;
            bal.bonus -= e->bonus;
            rules_fresh_refunded(&fresh, day, e->amount);
            rules_fresh_refunded(&fresh, day, e->bonus);
            break;
        case EV_SPEND:
            bal.principal -= e->amount; /* which part pays does not matter here */
            break;
        case EV_NONE:
            break;
        }
    }
    return rules_check_first_day(c->limit, bal, &fresh, today, c->charge);
}

static void test_first_day_table(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum rules_result got = run_case(&cases[i]);
        if (got != cases[i].expected)
            fail_msg("%s: got %s, expected %s", cases[i].name, rules_result_code(got),
                     rules_result_code(cases[i].expected));
    }
}

/* The check is x > B - T + L: the largest allowed charge is exactly that
 * for every split of old and fresh value. */
static void test_boundary_everywhere(void **state)
{
    for (int64_t old = 0; old <= 3000; old += 700)
        for (int64_t fresh_amount = 1; fresh_amount <= 5000; fresh_amount += 900)
            for (int64_t limit = 1; limit <= 6000; limit += 1100) {
                struct sv_fresh f = {.day = 20000, .amount = fresh_amount};
                struct sv_balance bal = {old + fresh_amount, 0};
                int64_t max = old + (limit < fresh_amount ? limit : fresh_amount);
                assert_int_equal(rules_check_first_day(limit, bal, &f, 20000, max), RULES_OK);
                if (max < bal.principal)
                    assert_int_equal(rules_check_first_day(limit, bal, &f, 20000, max + 1),
                                     RULES_FIRST_DAY_LIMIT_EXCEEDED);
                /* another day: nothing is fresh */
                assert_int_equal(rules_check_first_day(limit, bal, &f, 20001, bal.principal),
                                 RULES_OK);
            }
}

static void test_fresh_days(void **state)
{
    struct sv_fresh f = {.day = 10};
    rules_fresh_topped_up(&f, 9, 500); /* an earlier day's value is not fresh */
    assert_int_equal(rules_fresh_on(&f, 10), 0);
    rules_fresh_topped_up(&f, 10, 500);
    rules_fresh_topped_up(&f, 10, 50);
    assert_int_equal(rules_fresh_on(&f, 10), 550);
    assert_int_equal(rules_fresh_on(&f, 11), 0);
    rules_fresh_refunded(&f, 10, 100);
    assert_int_equal(rules_fresh_on(&f, 10), 450);
    rules_fresh_refunded(&f, 10, 1000); /* never below 0 */
    assert_int_equal(rules_fresh_on(&f, 10), 0);
    rules_fresh_topped_up(&f, 11, 70); /* a new day starts a new count */
    assert_int_equal(rules_fresh_on(&f, 11), 70);
    assert_int_equal(rules_fresh_on(&f, 10), 0);
}

static void test_day_start(void **state)
{
    int64_t at = sh(2026, 1, 2, 0, 0); /* local midnight = 16:00 UTC the day before */
    int64_t day = rules_local_day(at, SHANGHAI_S);
    assert_int_equal(rules_day_start_us(day, SHANGHAI_S), at);
    assert_int_equal(rules_local_day(at - 1, SHANGHAI_S), day - 1);
    assert_int_equal(rules_day_start_us(day, 0) - rules_day_start_us(day, SHANGHAI_S),
                     (int64_t)SHANGHAI_S * 1000000);
}

static void test_code_is_stable(void **state)
{
    assert_string_equal(rules_result_code(RULES_FIRST_DAY_LIMIT_EXCEEDED),
                        "first_day_limit_exceeded");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_day_table), cmocka_unit_test(test_boundary_everywhere),
        cmocka_unit_test(test_fresh_days),      cmocka_unit_test(test_day_start),
        cmocka_unit_test(test_code_is_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
