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
