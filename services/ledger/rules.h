/* The ledger's pure money rules: no I/O, unit-tested from tables. */
#ifndef TESSERA_LEDGER_RULES_H
#define TESSERA_LEDGER_RULES_H

#include <stddef.h>
#include <stdint.h>

#define RULES_BONUS_STEPS_MAX 32

struct bonus_step {
    int64_t threshold; /* top-ups of at least this amount ... */
    int64_t bonus;     /* ... get this bonus (minor units) */
};

struct sv_balance {
    int64_t principal;
    int64_t bonus;
};

enum rules_result {
    RULES_OK = 0,
    RULES_INSUFFICIENT_BALANCE,
    RULES_INVALID_AMOUNT,
    RULES_OVERFLOW,
    RULES_FIRST_DAY_LIMIT_EXCEEDED, /* rules_firstday.h */
};

/* Stable machine word for a rejection ("insufficient_balance"). */
const char *rules_result_code(enum rules_result r);

/* The bonus of the highest step whose threshold the amount reaches; 0
 * below the first step. Steps may come in any order. */
int64_t rules_topup_bonus(const struct bonus_step *steps, size_t count, int64_t amount);

/* A top-up of amount with bonus: the balance after, or why not. */
enum rules_result rules_plan_topup(struct sv_balance bal, int64_t amount, int64_t bonus,
                                   struct sv_balance *after);

/* Paying charge from stored value draws principal and bonus in proportion
 * to the balances (rounding never creates or loses a fen: the bonus part
 * rounds down). Refused when the charge exceeds principal + bonus. */
enum rules_result rules_plan_sv_spend(struct sv_balance bal, int64_t charge,
                                      int64_t *from_principal, int64_t *from_bonus);

#endif
