/* The refund rules from tables: a stored-value refund (principal only,
 * bonus forfeited in proportion, rounded up, all of it on a full refund,
 * fee in basis points with a minimum, never more than the principal), and
 * purchase refunds in parts (each part's share of the stored value drawn
 * and of the points earned, with cumulative rounding so the parts sum
 * exactly to the whole). */
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

/* One refund of a purchase in a given state. */
static void test_purchase_refund_plan(void **state)
{
    static const struct {
        struct purchase_refund_state s;
        int64_t requested;
        enum refund_result result;
        struct purchase_refund_plan plan;
    } cases[] = {
        /* a cash purchase of 110 yuan that earned 110 points: no stored value back */
        {{11000, 0, 0, 110, 0, 0, 0, 0, 0, 0}, 0, REFUND_OK, {11000, 0, 0, 110, 0}},
        {{11000, 0, 0, 110, 0, 0, 0, 0, 0, 0}, 5500, REFUND_OK, {5500, 0, 0, 55, 0}},
        /* paid from stored value at 10:1 principal to bonus */
        {{11000, 10000, 1000, 110, 0, 0, 0, 0, 0, 0}, 0, REFUND_OK, {11000, 10000, 1000, 110, 0}},
        {{11000, 10000, 1000, 110, 0, 0, 0, 0, 0, 0}, 5500, REFUND_OK, {5500, 5000, 500, 55, 0}},
        /* the rest after that half */
        {{11000, 10000, 1000, 110, 5500, 5000, 500, 55, 0, 0},
         0,
         REFUND_OK,
         {5500, 5000, 500, 55, 0}},
        /* rounding: a third of 100 fen drawn 2:1 and of 10 points; principal and
         * points round down, the bonus takes the rest of the stored value */
        {{100, 67, 33, 10, 0, 0, 0, 0, 0, 0}, 33, REFUND_OK, {33, 22, 11, 3, 0}},
        /* points withheld at earning (a refund came first) count as reversed */
        {{1000, 0, 0, 100, 500, 0, 0, 50, 0, 0}, 0, REFUND_OK, {500, 0, 0, 50, 0}},
        {{11000, 0, 0, 110, 11000, 0, 0, 110, 0, 0}, 0, REFUND_ALREADY, {0}},
        {{11000, 0, 0, 110, 11000, 0, 0, 110, 0, 0}, 1, REFUND_ALREADY, {0}},
        {{11000, 0, 0, 110, 5500, 0, 0, 55, 0, 0}, 5501, REFUND_EXCEEDS, {0}},
        {{11000, 0, 0, 110, 0, 0, 0, 0, 0, 0}, 11001, REFUND_EXCEEDS, {0}},
        {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, REFUND_NOT_REFUNDABLE, {0}}, /* fully discounted */
        {{11000, 0, 0, 110, 0, 0, 0, 0, 0, 0}, -1, REFUND_INVALID_AMOUNT, {0}},
        /* paid 5000 points of a 100 yuan charge (cash the rest), earned
         * 100: a full refund gives all 5000 back and takes the 100 */
        {{10000, 0, 0, 100, 0, 0, 0, 0, 5000, 0}, 0, REFUND_OK, {10000, 0, 0, 100, 5000}},
        /* a third, then the rest: 1666 then 3334 points back */
        {{10000, 0, 0, 0, 0, 0, 0, 0, 5000, 0}, 3333, REFUND_OK, {3333, 0, 0, 0, 1666}},
        {{10000, 0, 0, 0, 3333, 0, 0, 0, 5000, 1666}, 0, REFUND_OK, {6667, 0, 0, 0, 3334}},
        /* stored value and points in one purchase */
        {{10000, 4000, 1000, 0, 0, 0, 0, 0, 5000, 0}, 0, REFUND_OK, {10000, 4000, 1000, 0, 5000}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct purchase_refund_plan p = {-1, -1, -1, -1, -1};
        enum refund_result r = rules_plan_purchase_refund(&cases[i].s, cases[i].requested, &p);
        if (r != cases[i].result)
            print_error("case %zu: result %d\n", i, r);
        assert_int_equal(r, cases[i].result);
        if (r != REFUND_OK) {
            assert_int_equal(p.amount, -1); /* untouched */
            continue;
        }
        assert_int_equal(p.amount, cases[i].plan.amount);
        assert_int_equal(p.principal, cases[i].plan.principal);
        assert_int_equal(p.bonus, cases[i].plan.bonus);
        assert_int_equal(p.points, cases[i].plan.points);
        assert_int_equal(p.points_returned, cases[i].plan.points_returned);
    }
    assert_string_equal(rules_refund_code(REFUND_EXCEEDS), "exceeds_refundable");
    assert_string_equal(rules_refund_code(REFUND_ALREADY), "already_refunded");
    assert_string_equal(rules_refund_code(REFUND_NOT_REFUNDABLE), "not_refundable");
}

/* Applies refunds of the given parts in order, as the ledger does (the
 * state keeps what each took), and checks the totals are exactly the
 * purchase's: charge, principal, bonus, points. Also each part's own
 * shares stay within one unit of its exact proportion. */
static void refund_in_parts(struct purchase_refund_state s, const int64_t *parts, size_t n,
                            const struct purchase_refund_plan *want_each)
{
    const struct purchase_refund_state whole = s;
    for (size_t k = 0; k < n; k++) {
        struct purchase_refund_plan p;
        assert_int_equal(rules_plan_purchase_refund(&s, parts[k], &p), REFUND_OK);
        if (want_each) {
            assert_int_equal(p.principal, want_each[k].principal);
            assert_int_equal(p.bonus, want_each[k].bonus);
            assert_int_equal(p.points, want_each[k].points);
        }
        assert_true(p.principal >= 0 && p.bonus >= 0 && p.points >= 0);
        /* the principal and points round down: never above the part's exact share */
        assert_true((__int128)p.principal * whole.charged <=
                    (__int128)p.amount * whole.paid_principal + whole.charged);
        assert_true((__int128)p.points * whole.charged <=
                    (__int128)p.amount * whole.points_earned + whole.charged);
        s.refunded += p.amount;
        s.principal_returned += p.principal;
        s.bonus_returned += p.bonus;
        s.points_reversed += p.points;
    }
    assert_int_equal(s.refunded, whole.charged);
    assert_int_equal(s.principal_returned, whole.paid_principal);
    assert_int_equal(s.bonus_returned, whole.paid_bonus);
    assert_int_equal(s.points_reversed, whole.points_earned);
    struct purchase_refund_plan none;
    assert_int_equal(rules_plan_purchase_refund(&s, 0, &none), REFUND_ALREADY);
}

static void test_partial_refunds_sum_exactly(void **state)
{
    /* 100 fen drawn 67 principal + 33 bonus, 10 points, refunded in
     * thirds: naive per-part rounding would give 22+22+22 = 66 principal
     * and 3+3+3 = 9 points; cumulative rounding gives the exact whole. */
    const int64_t thirds[] = {33, 33, 34};
    const struct purchase_refund_plan thirds_each[] = {
        {33, 22, 11, 3, 0}, {33, 22, 11, 3, 0}, {34, 23, 11, 4, 0}};
    refund_in_parts((struct purchase_refund_state){100, 67, 33, 10, 0, 0, 0, 0, 0, 0}, thirds, 3,
                    thirds_each);
    /* a cash purchase: points only, seven unequal parts (the last 0: the rest) */
    const int64_t seven[] = {1, 2, 3, 5, 8, 13, 0};
    refund_in_parts((struct purchase_refund_state){999, 0, 0, 7, 0, 0, 0, 0, 0, 0}, seven, 7, NULL);
    /* 1 fen at a time: every part rounds to nothing but the last ones catch up */
    int64_t fen[37];
    for (size_t k = 0; k < 37; k++)
        fen[k] = 1;
    refund_in_parts((struct purchase_refund_state){37, 20, 17, 3, 0, 0, 0, 0, 0, 0}, fen, 37, NULL);
    /* many splits of one purchase, from a fixed pseudo-random sequence */
    uint64_t x = 88172645463325252ULL;
    for (int round = 0; round < 500; round++) {
        struct purchase_refund_state s = {0};
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        s.charged = 1 + (int64_t)(x % 1000000);
        s.paid_principal = (int64_t)((x >> 20) % (uint64_t)(s.charged + 1));
        s.paid_bonus = (x >> 40) % 2 ? s.charged - s.paid_principal : 0; /* cash or stored value */
        s.points_earned = (int64_t)((x >> 8) % 100000);
        int64_t parts[8], left = s.charged;
        size_t n = 0;
        while (left > 0 && n < 7) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            parts[n] = 1 + (int64_t)(x % (uint64_t)left);
            left -= parts[n++];
        }
        if (left > 0)
            parts[n++] = 0; /* the rest */
        refund_in_parts(s, parts, n, NULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sv_refund_plan),
        cmocka_unit_test(test_purchase_refund_plan),
        cmocka_unit_test(test_partial_refunds_sum_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
