/* The pricing chain (折上折) from tables of cases: the tier's discount off
 * the list price, then a discount card's off what the tier left, then a
 * coupon's off what the card left; rounding in the member's favour at
 * each rate, and never a fen created or lost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "../../services/ledger/rules_pricing.h"
#include "money/money.h"
#include "pricing/pricing.h"

#define NOW_US INT64_C(1800000000000000)
#define DAY_US (INT64_C(86400) * 1000000)

static const struct card_state live_card = {
    .kind = CARD_DISCOUNT, .valid_from_us = NOW_US - DAY_US, .valid_to_us = NOW_US + DAY_US};
static const struct card_state expired_card = {
    .kind = CARD_DISCOUNT, .valid_from_us = NOW_US - 2 * DAY_US, .valid_to_us = NOW_US - DAY_US};
static const struct card_state count_card = {
    .kind = CARD_COUNT, .valid_from_us = NOW_US - DAY_US, .valid_to_us = NOW_US + DAY_US};

enum coupon_case { NO_COUPON, VALUE_COUPON, PERCENT_COUPON, USED_COUPON };

struct chain_case {
    int64_t amount, tier_bp;
    const struct card_state *card; /* NULL: no card */
    int64_t card_bp;
    enum coupon_case coupon;
    int64_t coupon_value; /* value: fen off; percent: bp off */
    const char *code;     /* NULL: priced */
    int64_t tier_discount, card_discount, coupon_discount, charged;
};

static const struct chain_case cases[] = {
    /* the tier alone: 85% of 110 yuan */
    {11000, 8500, NULL, 0, NO_COUPON, 0, NULL, 1650, 0, 0, 9350},
    /* 85% of 100.01 yuan is 85.0085: the member pays 85.00 */
    {10001, 8500, NULL, 0, NO_COUPON, 0, NULL, 1501, 0, 0, 8500},
    /* no tier (0) and a tier at the full price change nothing */
    {10000, 0, NULL, 0, NO_COUPON, 0, NULL, 0, 0, 0, 10000},
    {10000, 10000, NULL, 0, NO_COUPON, 0, NULL, 0, 0, 0, 10000},
    /* a 1-fen bill at 85% costs nothing */
    {1, 8500, NULL, 0, NO_COUPON, 0, NULL, 1, 0, 0, 0},
    /* tier then card: the card's 80% applies to the 85.00 the tier left
     * (1700 off), not to the list price (which would be 2000) */
    {10000, 8500, &live_card, 8000, NO_COUPON, 0, NULL, 1500, 1700, 0, 6800},
    /* then a 5-yuan coupon on what the card left */
    {10000, 8500, &live_card, 8000, VALUE_COUPON, 500, NULL, 1500, 1700, 500, 6300},
    /* then a 10%-off coupon on what the card left: 680 of 6800 */
    {10000, 8500, &live_card, 8000, PERCENT_COUPON, 1000, NULL, 1500, 1700, 680, 6120},
    /* odd amounts: every step rounds and the parts still add up to 12345 */
    {12345, 8500, &live_card, 9000, PERCENT_COUPON, 1500, NULL, 1852, 1050, 1416, 8027},
    /* a coupon worth more than what is left pays what is left */
    {1000, 8000, NULL, 0, VALUE_COUPON, 5000, NULL, 200, 0, 800, 0},
    /* no tier: card and coupon as before the tiers came */
    {10000, 0, &live_card, 8000, VALUE_COUPON, 500, NULL, 0, 2000, 500, 7500},
    /* the tier left nothing of a 1-fen bill: a valid card takes nothing */
    {1, 8500, &live_card, 8000, NO_COUPON, 0, NULL, 1, 0, 0, 0},
    /* ... and a coupon is refused rather than spent on nothing */
    {1, 8500, NULL, 0, VALUE_COUPON, 100, "invalid_amount", 0, 0, 0, 0},
    /* refusals */
    {0, 8500, NULL, 0, NO_COUPON, 0, "invalid_amount", 0, 0, 0, 0},
    {-5, 0, NULL, 0, NO_COUPON, 0, "invalid_amount", 0, 0, 0, 0},
    {MONEY_AMOUNT_MAX + 1, 0, NULL, 0, NO_COUPON, 0, "invalid_amount", 0, 0, 0, 0},
    {10000, 10001, NULL, 0, NO_COUPON, 0, "invalid_command", 0, 0, 0, 0},
    {10000, -1, NULL, 0, NO_COUPON, 0, "invalid_command", 0, 0, 0, 0},
    {10000, 8500, &expired_card, 8000, NO_COUPON, 0, "card_expired", 0, 0, 0, 0},
    {10000, 8500, &count_card, 8000, NO_COUPON, 0, "not_a_discount_card", 0, 0, 0, 0},
    {10000, 8500, &live_card, 8000, USED_COUPON, 500, "coupon_used", 0, 0, 0, 0},
    /* the largest bill: 128-bit products, no overflow */
    {MONEY_AMOUNT_MAX, 8500, &live_card, 9999, NO_COUPON, 0, NULL, 1500000000000, 850000000, 0,
     8499150000000},
};

static struct coupon_state coupon_of(enum coupon_case c, int64_t value)
{
    struct coupon_state k = {.valid_from_us = NOW_US - DAY_US, .valid_to_us = NOW_US + DAY_US};
    if (c == PERCENT_COUPON) {
        k.kind = COUPON_PERCENT;
        k.percent_bp = value;
    } else {
        k.kind = COUPON_VALUE;
        k.value = value;
        k.redeemed = c == USED_COUPON;
    }
    return k;
}

static void test_chain_table(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct chain_case *c = &cases[i];
        struct price_card card = {.st = c->card, .discount_bp = c->card_bp, .branch_ok = true};
        struct coupon_state coupon = coupon_of(c->coupon, c->coupon_value);
        struct pricing_quote q = {0};
        const char *code =
            rules_price_purchase(c->amount, c->tier_bp, c->card ? &card : NULL,
                                 c->coupon != NO_COUPON ? &coupon : NULL, NOW_US, &q);
        if (c->code) {
            assert_non_null(code);
            assert_string_equal(code, c->code);
            continue;
        }
        if (code)
            fail_msg("case %zu refused: %s", i, code);
        assert_int_equal(q.amount, c->amount);
        assert_int_equal(q.tier_discount, c->tier_discount);
        assert_int_equal(q.card_discount, c->card_discount);
        assert_int_equal(q.coupon_discount, c->coupon_discount);
        assert_int_equal(q.charged, c->charged);
        assert_int_equal(pricing_discount_total(&q) + q.charged, q.amount);
    }
}

/* A card at a branch it does not allow is refused before any coupon. */
static void test_card_branch_refused(void **state)
{
    struct price_card card = {.st = &live_card, .discount_bp = 8000, .branch_ok = false};
    struct coupon_state coupon = coupon_of(USED_COUPON, 100);
    struct pricing_quote q;
    assert_string_equal(rules_price_purchase(10000, 8500, &card, &coupon, NOW_US, &q),
                        "card_not_valid_here");
}

/* Whatever the bill and the rates, the parts add up to the list price,
 * each rate's step leaves the member paying the floor of the exact price
 * (never a fen more), and the quote's card step agrees with the ledger's
 * card rule. */
static void test_every_fen_conserved(void **state)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t amount = 1 + (int64_t)(x % 100000000);
        int64_t tier_bp = (int64_t)((x >> 27) % 10001);
        int64_t card_bp = 1 + (int64_t)((x >> 41) % 10000);
        int64_t pct = 1 + (int64_t)((x >> 17) % 10000);
        struct price_card card = {.st = &live_card, .discount_bp = card_bp, .branch_ok = true};
        struct coupon_state coupon = coupon_of(PERCENT_COUPON, pct);
        struct pricing_quote q;
        const char *code =
            rules_price_purchase(amount, tier_bp, &card, (x & 1) ? &coupon : NULL, NOW_US, &q);
        if (code) {
            /* only a bill the tier and card reduced to nothing refuses a coupon */
            assert_string_equal(code, "invalid_amount");
            continue;
        }
        assert_int_equal(q.tier_discount + q.card_discount + q.coupon_discount + q.charged, amount);
        assert_true(q.charged >= 0 && q.tier_discount >= 0 && q.card_discount >= 0);
        int64_t after_tier = amount - q.tier_discount;
        if (tier_bp > 0) {
            /* after_tier == floor(amount * tier_bp / 10000) */
            assert_true((__int128)after_tier * 10000 <= (__int128)amount * tier_bp);
            assert_true((__int128)(after_tier + 1) * 10000 > (__int128)amount * tier_bp);
        } else {
            assert_int_equal(after_tier, amount);
        }
        int64_t ledger_card_off = 0;
        if (after_tier > 0) {
            assert_int_equal(rules_card_discount(&live_card, card_bp, after_tier, NOW_US, true,
                                                 &ledger_card_off),
                             CARD_OK);
        }
        struct pricing_quote quote;
        assert_true(pricing_begin(&quote, amount, tier_bp));
        pricing_take_card_rate(&quote, card_bp);
        assert_int_equal(quote.card_discount, ledger_card_off);
        assert_int_equal(q.card_discount, ledger_card_off);
    }
}

static void test_rate_off(void **state)
{
    static const struct {
        int64_t left, rate_bp, off;
    } rates[] = {
        {10000, 8500, 1500}, {10001, 8500, 1501}, {1, 8500, 1},    {1, 10000, 0},
        {0, 8500, 0},        {10000, 0, 0},       {9999, 1, 9999}, {12345, 7000, 3704},
    };
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
        assert_int_equal(pricing_rate_off(rates[i].left, rates[i].rate_bp), rates[i].off);
    assert_true(pricing_rate_ok(0) && pricing_rate_ok(10000));
    assert_false(pricing_rate_ok(-1) || pricing_rate_ok(10001));
    struct pricing_quote q = {.amount = 7};
    assert_false(pricing_begin(&q, 0, 8500));
    assert_false(pricing_begin(&q, 100, 10001));
    assert_int_equal(q.amount, 7); /* untouched */
}

/* Points as payment, from a table: whole units only, the share cap, the
 * terms' bounds. */
struct points_case {
    struct points_payment_terms terms;
    int64_t charged, points;
    const char *code; /* NULL: accepted */
    int64_t value;
};

static const struct points_case points_cases[] = {
    /* the default: 100 points = 1 yuan, at most half the bill */
    {POINTS_PAYMENT_TERMS_DEFAULT, 10000, 5000, NULL, 5000},
    {POINTS_PAYMENT_TERMS_DEFAULT, 10000, 1000, NULL, 1000},
    {POINTS_PAYMENT_TERMS_DEFAULT, 10000, 5100, "points_share_exceeded", 0},
    {POINTS_PAYMENT_TERMS_DEFAULT, 10001, 5000, NULL, 5000}, /* cap floor(5000.5) */
    {POINTS_PAYMENT_TERMS_DEFAULT, 9999, 5000, "points_share_exceeded", 0},
    {POINTS_PAYMENT_TERMS_DEFAULT, 10000, 150, "invalid_points", 0}, /* not whole units */
    {POINTS_PAYMENT_TERMS_DEFAULT, 10000, 0, "invalid_points", 0},
    {POINTS_PAYMENT_TERMS_DEFAULT, 10000, -100, "invalid_points", 0},
    /* 200 points buy 1 fen... of a whole bill */
    {{200, 1, 10000}, 3, 600, NULL, 3},
    {{200, 1, 10000}, 3, 800, "points_share_exceeded", 0},
    /* 10 points = 1 yuan (100 fen) */
    {{10, 100, 10000}, 2500, 250, NULL, 2500},
    /* no share allowed */
    {{100, 100, 0}, 10000, 100, "points_share_exceeded", 0},
    /* terms out of range */
    {{0, 100, 5000}, 10000, 100, "invalid_points", 0},
    {{100, 0, 5000}, 10000, 100, "invalid_points", 0},
    {{100, 100, 10001}, 10000, 100, "invalid_points", 0},
    /* a value beyond any amount */
    {{1, 1000000, 10000}, MONEY_AMOUNT_MAX, MONEY_AMOUNT_MAX, "invalid_points", 0},
};

static void test_points_payment_table(void **state)
{
    for (size_t i = 0; i < sizeof(points_cases) / sizeof(points_cases[0]); i++) {
        const struct points_case *c = &points_cases[i];
        int64_t value = -1;
        const char *code = rules_price_points(&c->terms, c->charged, c->points, &value);
        if (c->code) {
            assert_non_null(code);
            assert_string_equal(code, c->code);
            assert_int_equal(value, -1); /* untouched */
        } else {
            if (code)
                fail_msg("case %zu refused: %s", i, code);
            assert_int_equal(value, c->value);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_table),          cmocka_unit_test(test_card_branch_refused),
        cmocka_unit_test(test_every_fen_conserved),  cmocka_unit_test(test_rate_off),
        cmocka_unit_test(test_points_payment_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
