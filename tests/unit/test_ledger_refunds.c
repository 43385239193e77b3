/* The stored-value refund rule from a table: principal only, bonus
 * forfeited in proportion (rounded up, all of it on a full refund), fee
 * in basis points with a minimum, never more than the principal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../services/ledger/rules_refunds.h"

static void test_sv_refund_plan(void **state)
{
    static const struct {
        int64_t principal, bonus, requested, fee_bp, fee_min;
        enum refund_result result;
        int64_t taken, forfeited, fee, payout;
    } cases[] = {
        /* all unspent principal, no fee: all bonus forfeited */
        {90000, 9000, 0, 0, 0, REFUND_OK, 90000, 9000, 0, 90000},
        {90000, 9000, 90000, 0, 0, REFUND_OK, 90000, 9000, 0, 90000},
        /* a third of the principal: a third of the bonus */
        {90000, 9000, 30000, 0, 0, REFUND_OK, 30000, 3000, 0, 30000},
        /* rounding: 1 of 3 fen of principal with 1 fen of bonus forfeits it */
        {3, 1, 1, 0, 0, REFUND_OK, 1, 1, 0, 1},
        {3, 2, 2, 0, 0, REFUND_OK, 2, 2, 0, 2},
        /* 2% fee, 5 yuan minimum */
        {90000, 9000, 0, 200, 500, REFUND_OK, 90000, 9000, 1800, 88200},
        {10000, 0, 0, 200, 500, REFUND_OK, 10000, 0, 500, 9500},
        /* the fee never passes the principal */
        {300, 0, 0, 200, 500, REFUND_OK, 300, 0, 300, 0},
        /* fee rounds down */
        {99, 0, 0, 100, 0, REFUND_OK, 99, 0, 0, 99},
        {90000, 9000, 90001, 0, 0, REFUND_INSUFFICIENT, 0, 0, 0, 0},
        {0, 500, 0, 0, 0, REFUND_NOTHING, 0, 0, 0, 0},
        {100, 0, -1, 0, 0, REFUND_INVALID_AMOUNT, 0, 0, 0, 0},
        {100, 0, 0, 10001, 0, REFUND_INVALID_AMOUNT, 0, 0, 0, 0},
        /* large balances: bonus * principal would overflow int64 */
        {INT64_C(4000000000000), INT64_C(4000000000000), INT64_C(3000000000000), 0, 0, REFUND_OK,
         INT64_C(3000000000000), INT64_C(3000000000000), 0, INT64_C(3000000000000)},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct refund_plan p = {-1, -1, -1, -1};
        enum refund_result r =
            rules_plan_sv_refund((struct sv_balance){cases[i].principal, cases[i].bonus},
                                 cases[i].requested, cases[i].fee_bp, cases[i].fee_min, &p);
        if (r != cases[i].result)
            print_error("case %zu: result %d\n", i, r);
        assert_int_equal(r, cases[i].result);
        if (r != REFUND_OK) {
            assert_int_equal(p.principal, -1); /* untouched */
            continue;
        }
        assert_int_equal(p.principal, cases[i].taken);
        assert_int_equal(p.bonus_forfeited, cases[i].forfeited);
        assert_int_equal(p.fee, cases[i].fee);
        assert_int_equal(p.payout, cases[i].payout);
        assert_int_equal(p.fee + p.payout, p.principal); /* nothing created or lost */
    }
    assert_string_equal(rules_refund_code(REFUND_NOTHING), "nothing_to_refund");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_sv_refund_plan)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
