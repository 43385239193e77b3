#include "rules.h"

#include "money/money.h"

const char *rules_result_code(enum rules_result r)
{
    switch (r) {
    case RULES_OK:
        return "ok";
    case RULES_INSUFFICIENT_BALANCE:
        return "insufficient_balance";
    case RULES_INVALID_AMOUNT:
        return "invalid_amount";
    case RULES_OVERFLOW:
        return "balance_overflow";
    case RULES_FIRST_DAY_LIMIT_EXCEEDED:
        return "first_day_limit_exceeded";
    }
    return "unknown";
}

int64_t rules_topup_bonus(const struct bonus_step *steps, size_t count, int64_t amount)
{
    int64_t best_threshold = 0, bonus = 0;
    for (size_t i = 0; i < count; i++) {
        if (steps[i].threshold <= amount && steps[i].threshold > best_threshold) {
            best_threshold = steps[i].threshold;
            bonus = steps[i].bonus;
        }
    }
    return bonus;
}

enum rules_result rules_plan_topup(struct sv_balance bal, int64_t amount, int64_t bonus,
                                   struct sv_balance *after)
{
    if (amount <= 0 || amount > MONEY_AMOUNT_MAX || bonus < 0)
        return RULES_INVALID_AMOUNT;
    struct sv_balance next;
    if (!money_add(bal.principal, amount, &next.principal) ||
        !money_add(bal.bonus, bonus, &next.bonus))
        return RULES_OVERFLOW;
    *after = next;
    return RULES_OK;
}

enum rules_result rules_plan_sv_spend(struct sv_balance bal, int64_t charge,
                                      int64_t *from_principal, int64_t *from_bonus)
{
    if (charge <= 0 || charge > MONEY_AMOUNT_MAX)
        return RULES_INVALID_AMOUNT;
    int64_t total;
    if (!money_add(bal.principal, bal.bonus, &total))
        return RULES_OVERFLOW;
    if (charge > total)
        return RULES_INSUFFICIENT_BALANCE;
    money_split_pro_rata(charge, bal.principal, bal.bonus, from_principal, from_bonus);
    return RULES_OK;
}
