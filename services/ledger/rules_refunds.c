#include "rules_refunds.h"

#include "money/money.h"

const char *rules_refund_code(enum refund_result r)
{
    switch (r) {
    case REFUND_OK:
        return "ok";
    case REFUND_INVALID_AMOUNT:
        return "invalid_amount";
    case REFUND_INSUFFICIENT:
        return "insufficient_balance";
    case REFUND_NOTHING:
        return "nothing_to_refund";
    case REFUND_NOT_REFUNDABLE:
        return "not_refundable";
    case REFUND_ALREADY:
        return "already_refunded";
    case REFUND_EXCEEDS:
        return "exceeds_refundable";
    }
    return "unknown";
}

enum refund_result rules_plan_sv_refund(struct sv_balance bal, int64_t requested, int64_t fee_bp,
                                        int64_t fee_min, struct refund_plan *out)
{
    if (requested < 0 || requested > MONEY_AMOUNT_MAX || fee_bp < 0 || fee_bp > REFUND_FEE_BP_MAX ||
        fee_min < 0)
        return REFUND_INVALID_AMOUNT;
    if (bal.principal <= 0)
        return REFUND_NOTHING;
    int64_t principal = requested == 0 ? bal.principal : requested;
    if (principal > bal.principal)
        return REFUND_INSUFFICIENT;
    struct refund_plan p = {.principal = principal};
    if (principal == bal.principal)
        p.bonus_forfeited = bal.bonus;
    else /* 128-bit product: bonus * principal can pass int64 */
        p.bonus_forfeited =
            (int64_t)(((__int128)bal.bonus * principal + bal.principal - 1) / bal.principal);
    int64_t fee = (int64_t)((__int128)principal * fee_bp / REFUND_FEE_BP_MAX);
    if (fee < fee_min)
        fee = fee_min;
    if (fee > principal)
        fee = principal;
    p.fee = fee;
    p.payout = principal - fee;
    *out = p;
    return REFUND_OK;
}

int64_t rules_refund_share(int64_t part, int64_t whole, int64_t whole_value)
{
    if (whole <= 0)
        return 0;
    return (int64_t)((__int128)part * whole_value / whole);
}

static int64_t at_least_zero(int64_t v)
{
    return v > 0 ? v : 0;
}

enum refund_result rules_plan_purchase_refund(const struct purchase_refund_state *s,
                                              int64_t requested, struct purchase_refund_plan *out)
{
    if (requested < 0 || requested > MONEY_AMOUNT_MAX)
        return REFUND_INVALID_AMOUNT;
    if (s->charged <= 0)
        return REFUND_NOT_REFUNDABLE;
    int64_t left = s->charged - s->refunded;
    if (left <= 0)
        return REFUND_ALREADY;
    int64_t amount = requested == 0 ? left : requested;
    if (amount > left)
        return REFUND_EXCEEDS;
    int64_t total = s->refunded + amount;
    int64_t principal = rules_refund_share(total, s->charged, s->paid_principal);
    int64_t drawn = rules_refund_share(total, s->charged, s->paid_principal + s->paid_bonus);
    int64_t points = rules_refund_share(total, s->charged, s->points_earned);
    int64_t paid_back = rules_refund_share(total, s->charged, s->points_paid);
    /* Earlier refunds never took more than these totals (the shares only
     * grow with R), but a state read from elsewhere is not trusted to. */
    *out = (struct purchase_refund_plan){
        .amount = amount,
        .principal = at_least_zero(principal - s->principal_returned),
        .bonus = at_least_zero(drawn - principal - s->bonus_returned),
        .points = at_least_zero(points - s->points_reversed),
        .points_returned = at_least_zero(paid_back - s->points_returned),
    };
    return REFUND_OK;
}
