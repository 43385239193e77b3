/* Qualifying spend per window, and what a refund does to a member's tier.
 * Pure rules (no I/O), unit-tested from tables in
 * tests/unit/test_tiering_spend.c.
 *
 * Three windows, all seen from one instant `now` (the service clock) in
 * the tenant's zone (a fixed UTC offset):
 *   lifetime        every counted fact;
 *   calendar year   facts at or after local 1 January 00:00 of now's year;
 *   rolling 12 mo.  facts after the same local date and time twelve months
 *                   before now (29 February -> 28 February): a purchase
 *                   made at T has left the window at T + 12 months, the
 *                   end of a qualifying period it started.
 * A refund lowers the windows the refunded purchase was counted in: it
 * is counted at the purchase's time, not its own, so a refund in January
 * of a December purchase lowers last year's spend, not this year's. */
#ifndef TESSERA_TIERING_RULES_SPEND_H
#define TESSERA_TIERING_RULES_SPEND_H

#include <stdbool.h>
#include <stdint.h>

#include "rules.h"

/* The starts of the windows that end at now_us (microseconds, UTC). */
struct tier_windows {
    int64_t now_us;
    int32_t year;         /* now's local calendar year */
    int64_t year_from_us; /* local 1 January 00:00 of year */
    int64_t rolling_from_us;
};

void tier_windows_at(struct tier_windows *w, int64_t now_us, int32_t utc_offset_minutes);

/* What kind of sale a fact is; purchases always count, card and
 * subscription sales when the tenant says so. */
enum tier_sale { TIER_SALE_PURCHASE, TIER_SALE_CARD, TIER_SALE_SUBSCRIPTION };

struct tier_spend_policy {
    bool count_card_sales;
    bool count_subscription_sales;
};

bool tier_sale_counts(enum tier_sale kind, const struct tier_spend_policy *p);

/* Adds amount (negative for a refund) counted at at_us to the windows of
 * s that contain at_us. No window goes below zero (a refund never takes
 * back more than its purchase; the clamp guards replays of odd data).
 * False (nothing changed) on overflow. */
bool tier_spend_count(struct tier_spend *s, const struct tier_windows *w, int64_t amount,
                      int64_t at_us) __attribute__((warn_unused_result));

/* The tenant's rule for a refund that leaves the member below the level
 * held: move down at once, or keep the level until the review at the end
 * of the member's qualifying period. */
enum tier_refund_rule { TIER_REFUND_AT_REVIEW, TIER_REFUND_IMMEDIATE };

/* "at_review", "immediately"; parse returns false on anything else. */
const char *tier_refund_rule_name(enum tier_refund_rule r);
bool tier_refund_rule_parse(const char *s, enum tier_refund_rule *r)
    __attribute__((warn_unused_result));

enum tier_refund_outcome {
    TIER_REFUND_KEEP,         /* still qualifies for the level held (or holds none) */
    TIER_REFUND_DOWN_NOW,     /* moves down to *to (NULL: to no tier) now */
    TIER_REFUND_BELOW_REVIEW, /* below the level, kept until the review */
};

/* After a refund lowered spend: what happens to a member holding a level
 * of rank current_rank earned by spend (held_by_spend false: invited or
 * overridden, which a refund never moves). *to is the level the spend
 * now reaches (NULL: none). */
enum tier_refund_outcome tier_after_refund(const struct tier_level *ladder, size_t count,
                                           const struct tier_spend *spend, bool has_current,
                                           int32_t current_rank, bool held_by_spend,
                                           enum tier_refund_rule rule,
                                           const struct tier_level **to);

#endif
