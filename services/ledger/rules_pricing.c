#include "rules_pricing.h"

#include <stddef.h>

#include "money/money.h"
#include "rules.h"

const char *rules_price_purchase(int64_t amount, int64_t tier_bp, const struct price_card *card,
                                 const struct coupon_state *coupon, int64_t now_us,
                                 struct pricing_quote *q)
{
    if (amount <= 0 || amount > MONEY_AMOUNT_MAX)
        return rules_result_code(RULES_INVALID_AMOUNT);
    if (!pricing_rate_ok(tier_bp))
        return rules_card_code(CARD_INVALID);
    struct pricing_quote next;
    if (!pricing_begin(&next, amount, tier_bp))
        return rules_result_code(RULES_INVALID_AMOUNT);
    if (card) {
        int64_t off = 0;
        enum card_result r = rules_card_discount(card->st, card->discount_bp, next.charged, now_us,
                                                 card->branch_ok, &off);
        /* The tier may leave nothing of a tiny bill (85% of 1 fen is 0):
         * a valid card then takes nothing, where its rule refuses an
         * empty bill. */
        if (r == CARD_INVALID && next.charged == 0)
            r = CARD_OK, off = 0;
        if (r != CARD_OK)
            return rules_card_code(r);
        pricing_take(&next, PRICING_CARD, off);
    }
    if (coupon) {
        if (next.charged == 0)
            return rules_result_code(RULES_INVALID_AMOUNT);
        int64_t off = 0;
        enum card_result r = rules_coupon_redeem(coupon, next.charged, now_us, &off);
        if (r != CARD_OK)
            return rules_card_code(r);
        pricing_take(&next, PRICING_COUPON, off);
    }
    *q = next;
    return NULL;
}

const char *rules_price_points(const struct points_payment_terms *t, int64_t charged,
                               int64_t points, int64_t *value)
{
    if (t->points_per_unit < 1 || t->points_per_unit > POINTS_PAYMENT_TERM_MAX ||
        t->unit_minor < 1 || t->unit_minor > POINTS_PAYMENT_TERM_MAX || t->max_share_bp < 0 ||
        t->max_share_bp > PRICING_BP_FULL || points <= 0 || points > MONEY_AMOUNT_MAX ||
        points % t->points_per_unit != 0 || charged < 0)
        return "invalid_points";
    /* units <= MONEY_AMOUNT_MAX and unit_minor <= 1e6: the product fits
     * in 128 bits; above MONEY_AMOUNT_MAX it is refused */
    __int128 money = (__int128)(points / t->points_per_unit) * t->unit_minor;
    __int128 cap = (__int128)charged * t->max_share_bp / PRICING_BP_FULL;
    if (money > MONEY_AMOUNT_MAX)
        return "invalid_points";
    if (money > cap)
        return "points_share_exceeded";
    *value = (int64_t)money;
    return NULL;
}
