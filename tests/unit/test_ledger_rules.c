/* The ledger's money rules from tables of cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../services/ledger/rules.h"

static const struct bonus_step demo_ladder[] = {
    {500000, 100000}, {100000, 10000}, {200000, 30000}, /* deliberately unordered */
};

static void test_topup_bonus_ladder(void **state)
{
    static const struct {
        int64_t amount, bonus;
    } cases[] = {
        {1, 0},          {99999, 0},      {100000, 10000},  {150000, 10000},   {199999, 10000},
        {200000, 30000}, {499999, 30000}, {500000, 100000}, {9000000, 100000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(rules_topup_bonus(demo_ladder, 3, cases[i].amount), cases[i].bonus);
    assert_int_equal(rules_topup_bonus(NULL, 0, 100000), 0);
}

static void test_plan_topup(void **state)
{
    struct sv_balance after;
    assert_int_equal(rules_plan_topup((struct sv_balance){5, 7}, 100000, 10000, &after), RULES_OK);
    assert_int_equal(after.principal, 100005);
    assert_int_equal(after.bonus, 10007);
    assert_int_equal(rules_plan_topup((struct sv_balance){0, 0}, 0, 0, &after),
                     RULES_INVALID_AMOUNT);
    assert_int_equal(rules_plan_topup((struct sv_balance){0, 0}, -1, 0, &after),
                     RULES_INVALID_AMOUNT);
    assert_int_equal(rules_plan_topup((struct sv_balance){INT64_MAX - 1, 0}, 5, 0, &after),
                     RULES_OVERFLOW);
}

static void test_sv_spend_table(void **state)
{
    static const struct {
        int64_t principal, bonus, charge;
        enum rules_result result;
        int64_t from_principal, from_bonus;
    } cases[] = {
        {100000, 10000, 11000, RULES_OK, 10000, 1000},    /* exact proportion */
        {100000, 10000, 33333, RULES_OK, 30303, 3030},    /* the bonus part rounds down */
        {100000, 10000, 110000, RULES_OK, 100000, 10000}, /* everything */
        {100000, 10000, 110001, RULES_INSUFFICIENT_BALANCE, 0, 0},
        {0, 500, 300, RULES_OK, 0, 300}, /* bonus only */
        {500, 0, 300, RULES_OK, 300, 0}, /* principal only */
        {1, 1, 1, RULES_OK, 1, 0},       /* the odd fen from principal */
        {0, 0, 1, RULES_INSUFFICIENT_BALANCE, 0, 0},
        {100, 100, 0, RULES_INVALID_AMOUNT, 0, 0},
        {100, 100, -3, RULES_INVALID_AMOUNT, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t p = 0, b = 0;
        enum rules_result r = rules_plan_sv_spend(
            (struct sv_balance){cases[i].principal, cases[i].bonus}, cases[i].charge, &p, &b);
        assert_int_equal(r, cases[i].result);
        if (r != RULES_OK)
            continue;
        assert_int_equal(p, cases[i].from_principal);
        assert_int_equal(b, cases[i].from_bonus);
    }
}

/* Whatever the balances, a spend takes exactly the charge and never more
 * than either balance holds. */
static void test_sv_spend_conserves_every_fen(void **state)
{
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t principal = (int64_t)(x % 10000000), bonus = (int64_t)((x >> 24) % 3000000);
        if (principal + bonus == 0)
            continue;
        int64_t charge = 1 + (int64_t)((x >> 40) % (uint64_t)(principal + bonus));
        int64_t p = -1, b = -1;
        assert_int_equal(rules_plan_sv_spend((struct sv_balance){principal, bonus}, charge, &p, &b),
                         RULES_OK);
        assert_int_equal(p + b, charge);
        assert_true(p >= 0 && p <= principal);
        assert_true(b >= 0 && b <= bonus);
    }
}

static void test_result_codes_are_stable(void **state)
{
    assert_string_equal(rules_result_code(RULES_INSUFFICIENT_BALANCE), "insufficient_balance");
    assert_string_equal(rules_result_code(RULES_INVALID_AMOUNT), "invalid_amount");
    assert_string_equal(rules_result_code(RULES_OVERFLOW), "balance_overflow");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topup_bonus_ladder),
        cmocka_unit_test(test_plan_topup),
        cmocka_unit_test(test_sv_spend_table),
        cmocka_unit_test(test_sv_spend_conserves_every_fen),
        cmocka_unit_test(test_result_codes_are_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
