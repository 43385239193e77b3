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
