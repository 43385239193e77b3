/* Earning points for a purchase (see rules_earning.h). The arithmetic is
 * done in unsigned __int128 after every input is checked against its
 * bound, so the only overflow left to guard is the result itself. */
#undef NDEBUG /* asserts stay on in production builds */
#include "rules_earning.h"

#include <assert.h>
#include <string.h>

#include "money/money.h"

typedef unsigned __int128 u128;

/* Bounds that keep charged x (sum of list prices) under 2^128:
 * 10^13 x 10^4 items x 10^6 x 10^13 = 10^36. ingest takes at most 200
 * items of at most 100 000 each. */
#define EARNING_ITEMS_MAX         10000
#define EARNING_ITEM_QUANTITY_MAX INT64_C(1000000)

bool rules_earning_rule_valid(const struct earning_rule *r)
{
    return r->unit_amount >= 1 && r->unit_amount <= EARNING_UNIT_AMOUNT_MAX &&
           r->points_per_unit >= 0 && r->points_per_unit <= EARNING_POINTS_PER_UNIT_MAX &&
           r->excluded_count <= EARNING_CATEGORIES_MAX &&
           (r->excluded_count == 0 || r->excluded_categories != NULL);
}

static bool excluded(const struct earning_rule *r, const char *category)
{
    if (!category || !category[0])
        return false; /* an item without a category is never excluded */
    for (size_t i = 0; i < r->excluded_count; i++)
        if (strcmp(r->excluded_categories[i], category) == 0)
            return true;
    return false;
}

/* The part of charged that earns: charged x (list price of the items not
 * excluded) / (list price of all items), rounded down. Without items, or
 * when their list prices sum to zero, all of it. false when an item is out
 * of range. */
static bool eligible_amount(const struct earning_rule *r, const struct earning_purchase *p,
                            int64_t *eligible)
{
    *eligible = p->charged;
    if (r->excluded_count == 0 || p->item_count == 0)
        return true;
    assert(p->items != NULL);
    if (p->item_count > EARNING_ITEMS_MAX)
        return false;
    u128 all = 0, kept = 0; /* each line <= 10^19, the sums <= 10^23 */
    for (size_t i = 0; i < p->item_count; i++) {
        const PurchaseItem *it = p->items[i];
        if (!it || it->quantity < 0 || it->quantity > EARNING_ITEM_QUANTITY_MAX ||
            it->unit_price < 0 || it->unit_price > MONEY_AMOUNT_MAX)
            return false;
        u128 line = (u128)it->quantity * (u128)it->unit_price;
        all += line;
        if (!excluded(r, it->category))
            kept += line;
    }
    if (all == 0)
        return true;
    /* charged <= 10^13 and kept <= all <= 10^23: the product <= 10^36 < 2^128 */
    *eligible = (int64_t)((u128)p->charged * kept / all);
    return true;
}

enum earning_result rules_earning_purchase_points(const struct earning_rule *r,
                                                  const struct earning_purchase *p, int64_t *points)
{
    assert(r != NULL && p != NULL && points != NULL);
    if (!rules_earning_rule_valid(r))
        return EARNING_INVALID_RULE;
    if (!r->enabled) { /* nothing of the purchase matters */
        *points = 0;
        return EARNING_OK;
    }
    int64_t multiplier_bp = p->multiplier_bp == 0 ? 10000 : p->multiplier_bp;
    if (p->charged < 0 || p->charged > MONEY_AMOUNT_MAX || multiplier_bp < 0 ||
        multiplier_bp > EARNING_MULTIPLIER_BP_MAX)
        return EARNING_INVALID_PURCHASE;
    int64_t eligible = 0;
    if (!eligible_amount(r, p, &eligible))
        return EARNING_INVALID_PURCHASE;
    if (eligible == 0) {
        *points = 0;
        return EARNING_OK;
    }
    u128 units = (u128)eligible / (u128)r->unit_amount; /* <= 10^13 */
    /* <= 10^13 x 10^6 x 10^5 = 10^24, far below 2^128 */
    u128 earned = units * (u128)r->points_per_unit * (u128)multiplier_bp / 10000u;
    if (earned > (u128)EARNING_POINTS_MAX)
        return EARNING_TOO_MANY_POINTS;
    *points = (int64_t)earned;
    return EARNING_OK;
}

const char *rules_earning_result_text(enum earning_result res)
{
    switch (res) {
    case EARNING_OK:
        return "ok";
    case EARNING_INVALID_RULE:
        return "earning rule out of range";
    case EARNING_INVALID_PURCHASE:
        return "purchase amount, multiplier or item out of range";
    case EARNING_TOO_MANY_POINTS:
        return "earned points above the bound of one grant";
    }
    return "unknown";
}
