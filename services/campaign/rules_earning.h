/* Pure earning rules: how many points a purchase earns under a tenant's
 * purchase rule. No I/O; unit-tested from tables (tests/unit/
 * test_campaign_earning.c). */
#ifndef TESSERA_CAMPAIGN_RULES_EARNING_H
#define TESSERA_CAMPAIGN_RULES_EARNING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events/campaign_types.h"
#include "events/codec.h"

/* A tenant's purchase rule as the campaign keeps it (one version). The
 * category strings are borrowed. */
struct earning_rule {
    bool enabled;
    int64_t unit_amount;     /* minor units per unit, 1..EARNING_UNIT_AMOUNT_MAX */
    int64_t points_per_unit; /* 0..EARNING_POINTS_PER_UNIT_MAX */
    const char *const *excluded_categories;
    size_t excluded_count; /* 0..EARNING_CATEGORIES_MAX */
};

/* What of a purchase the rule reads (borrowed from its PurchaseRecorded). */
struct earning_purchase {
    int64_t charged;       /* what the member paid, after every discount */
    int64_t multiplier_bp; /* the tier's points multiplier; 0 means 10000 (x1) */
    PurchaseItem *const *items;
    size_t item_count;
};

enum earning_result {
    EARNING_OK = 0,
    EARNING_INVALID_RULE,     /* a bound of struct earning_rule is broken */
    EARNING_INVALID_PURCHASE, /* charged, multiplier or an item out of range */
    EARNING_TOO_MANY_POINTS,  /* more than EARNING_POINTS_MAX */
};

/* True when every field of r is within its bound (what a stored or
 * received rule must satisfy before it is used). */
bool rules_earning_rule_valid(const struct earning_rule *r);

/* The points purchase p earns under rule r, into *points (0 when the rule
 * is disabled, whatever the purchase, or the amount is below one unit):
 *
 *   eligible = charged, less the excluded items' share of it (in
 *              proportion to list prices, rounded so the excluded share
 *              is rounded up: a fen never earns twice)
 *   points   = floor(eligible / unit_amount) * points_per_unit
 *              * multiplier_bp / 10000, rounded down
 *
 * Every product is taken in 128 bits, so no input in range overflows.
 * *points is written only with EARNING_OK. */
enum earning_result rules_earning_purchase_points(const struct earning_rule *r,
                                                  const struct earning_purchase *p, int64_t *points)
    __attribute__((warn_unused_result));

/* A static word for logs and dead-letter reasons. */
const char *rules_earning_result_text(enum earning_result res);

#endif
