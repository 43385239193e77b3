/* The price a member pays for a bill (折上折): the tier's discount comes
 * off the list price first, then a discount card's off what the tier left,
 * then a coupon's off what the card left. Pure arithmetic on int64 minor
 * units, no I/O: the ledger decides purchases with it and ingest quotes
 * them with it (tests/unit/test_pricing.c).
 *
 * Rates are basis points of the price PAID (8500 = 85%, 8.5折; 0 = no
 * rate). Rounding: at a rate the member pays floor(left * rate / 10000),
 * i.e. in the member's favour by less than a fen at each step, the same
 * rule as a discount card (rules_card_discount). Every discount is taken
 * as what was left minus what is paid, so
 *     amount == tier_discount + card_discount + coupon_discount + charged
 * exactly: no fen is created or lost. */
#ifndef TESSERA_PRICING_H
#define TESSERA_PRICING_H

#include <stdbool.h>
#include <stdint.h>

#define PRICING_BP_FULL 10000 /* a rate of 10000 bp: the full price */

/* The steps, in the only order they may be taken. */
enum pricing_stage { PRICING_TIER, PRICING_CARD, PRICING_COUPON };

struct pricing_quote {
    int64_t amount;           /* the list price */
    int64_t tier_discount;    /* 1. the tier's, off the list price */
    int64_t card_discount;    /* 2. a discount card's, off what the tier left */
    int64_t coupon_discount;  /* 3. a coupon's, off what the card left */
    int64_t charged;          /* what is left to pay */
    enum pricing_stage stage; /* the last step taken */
};

/* True for a rate the chain accepts: 0 (none) or 1..10000 bp. */
bool pricing_rate_ok(int64_t rate_bp);

/* What comes off left when the member pays rate_bp of it: left -
 * floor(left * rate_bp / 10000); 0 for rate 0 (none) or 10000. Requires
 * left >= 0 and pricing_rate_ok(rate_bp). */
int64_t pricing_rate_off(int64_t left, int64_t rate_bp);

/* Step 1: the list price with the tier's rate (0: no tier) taken off.
 * False, q untouched, when amount is not 1..MONEY_AMOUNT_MAX or the rate
 * is not acceptable. */
bool pricing_begin(struct pricing_quote *q, int64_t amount, int64_t tier_bp)
    __attribute__((warn_unused_result));

/* Steps 2 and 3: off (what the card's or the coupon's own rule gives on
 * q->charged) comes off what is left, never more than that. Asserts the
 * steps come in order, each once, and off >= 0. */
void pricing_take(struct pricing_quote *q, enum pricing_stage stage, int64_t off);

/* Step 2 for a plain rate (a discount card whose validity is settled):
 * pricing_take(q, PRICING_CARD, pricing_rate_off(q->charged, card_bp)). */
void pricing_take_card_rate(struct pricing_quote *q, int64_t card_bp);

/* tier + card + coupon. */
int64_t pricing_discount_total(const struct pricing_quote *q);

#endif
