/* A purchase's price as the ledger decides it: the pricing chain
 * (libs/pricing: tier first, 折上折) with the ledger's own card and coupon
 * rules at steps 2 and 3. Pure: no I/O (tests/unit/test_pricing.c). */
#ifndef TESSERA_LEDGER_RULES_PRICING_H
#define TESSERA_LEDGER_RULES_PRICING_H

#include <stdbool.h>
#include <stdint.h>

#include "events/settings_types.h"
#include "pricing/pricing.h"
#include "rules_cards.h"

/* The discount card a purchase names, as the rules read it. */
struct price_card {
    const struct card_state *st;
    int64_t discount_bp; /* the share paid: 8000 = 80% */
    bool branch_ok;      /* the card is valid at the purchase's branch */
};

/* Prices a bill of amount at now_us: the tier's rate tier_bp (0: none) on
 * the list price, then card (NULL: none) on what the tier left, then
 * coupon (NULL: none) on what the card left. NULL with *q filled, or the
 * refusal's code: invalid_amount (amount out of range, or nothing left to
 * pay when a coupon's turn comes: the member keeps the coupon),
 * invalid_command (a tier rate out of 0..10000), a card's refusal
 * (not_a_discount_card, card_expired, card_frozen, card_not_valid_here) or
 * a coupon's (coupon_used, coupon_expired). */
const char *rules_price_purchase(int64_t amount, int64_t tier_bp, const struct price_card *card,
                                 const struct coupon_state *coupon, int64_t now_us,
                                 struct pricing_quote *q);

/* Paying part of a bill with points (issue 12). A tenant's terms:
 * points_per_unit points are worth unit_minor minor units (the default,
 * 100 points = 100 fen = 1 yuan), and at most max_share_bp of a bill's
 * charge (after every discount) may be paid with points. Points are spent
 * in whole units only, so no fraction of a fen is ever created. */
struct points_payment_terms {
    int64_t points_per_unit; /* 1..1 000 000 */
    int64_t unit_minor;      /* 1..1 000 000 */
    int64_t max_share_bp;    /* 0..10000 */
};
#define POINTS_PAYMENT_TERMS_DEFAULT                                                               \
    {                                                                                              \
        SETTINGS_PAYMENT_PER_UNIT_DEFAULT, SETTINGS_PAYMENT_UNIT_DEFAULT,                          \
            SETTINGS_PAYMENT_SHARE_BP_DEFAULT                                                      \
    }
#define POINTS_PAYMENT_TERM_MAX INT64_C(1000000)

/* The money `points` pay of a bill charging `charged`: points /
 * points_per_unit * unit_minor. NULL with *value set, or the refusal's
 * code: invalid_points (points <= 0, not whole units, terms out of range,
 * value not representable), points_share_exceeded (value above
 * floor(charged * max_share_bp / 10000)). */
const char *rules_price_points(const struct points_payment_terms *t, int64_t charged,
                               int64_t points, int64_t *value);

#endif
