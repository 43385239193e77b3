#include "pricing/pricing.h"

#include <assert.h>

#include "money/money.h"

bool pricing_rate_ok(int64_t rate_bp)
{
    return rate_bp >= 0 && rate_bp <= PRICING_BP_FULL;
}

int64_t pricing_rate_off(int64_t left, int64_t rate_bp)
{
    assert(left >= 0 && pricing_rate_ok(rate_bp));
    if (rate_bp == 0)
        return 0;
    /* 128-bit product: any int64 amount times 10 000 fits */
    return left - (int64_t)((__int128)left * rate_bp / PRICING_BP_FULL);
}

bool pricing_begin(struct pricing_quote *q, int64_t amount, int64_t tier_bp)
{
    if (amount <= 0 || amount > MONEY_AMOUNT_MAX || !pricing_rate_ok(tier_bp))
        return false;
    int64_t off = pricing_rate_off(amount, tier_bp);
    *q = (struct pricing_quote){
        .amount = amount, .tier_discount = off, .charged = amount - off, .stage = PRICING_TIER};
    return true;
}

void pricing_take(struct pricing_quote *q, enum pricing_stage stage, int64_t off)
{
    assert(stage > q->stage && stage <= PRICING_COUPON); /* tier, card, coupon: in order */
    assert(off >= 0);
    if (off > q->charged)
        off = q->charged; /* a coupon worth more than the bill pays the bill */
    if (stage == PRICING_CARD)
        q->card_discount = off;
    else
        q->coupon_discount = off;
    q->charged -= off;
    q->stage = stage;
    assert(q->charged >= 0 && pricing_discount_total(q) + q->charged == q->amount);
}

void pricing_take_card_rate(struct pricing_quote *q, int64_t card_bp)
{
    pricing_take(q, PRICING_CARD, pricing_rate_off(q->charged, card_bp));
}

int64_t pricing_discount_total(const struct pricing_quote *q)
{
    return q->tier_discount + q->card_discount + q->coupon_discount;
}
