/* Pure refund rules: what a stored-value refund takes, forfeits, keeps as
 * a fee and pays out. No I/O; unit-tested from tables. */
#ifndef TESSERA_LEDGER_RULES_REFUNDS_H
#define TESSERA_LEDGER_RULES_REFUNDS_H

#include <stdint.h>

#include "rules.h"

#define REFUND_FEE_BP_MAX 10000

struct refund_plan {
    int64_t principal;       /* taken off the member's principal */
    int64_t bonus_forfeited; /* taken off the member's bonus, paid to nobody */
    int64_t fee;             /* kept by the tenant */
    int64_t payout;          /* principal - fee, paid back to the member */
};

enum refund_result {
    REFUND_OK = 0,
    REFUND_INVALID_AMOUNT, /* "invalid_amount" */
    REFUND_INSUFFICIENT,   /* "insufficient_balance": more than the unspent principal */
    REFUND_NOTHING,        /* "nothing_to_refund": no principal left */
};
const char *rules_refund_code(enum refund_result r);

/* Refunds return only unspent principal (requested; 0 means all of it).
 * The bonus is forfeited in proportion to the principal refunded, rounded
 * up, so the member never keeps more bonus than the principal left would
 * carry; a full refund forfeits all of it. The fee is fee_bp of the
 * principal (rounded down), at least fee_min, at most the principal. */
enum refund_result rules_plan_sv_refund(struct sv_balance bal, int64_t requested, int64_t fee_bp,
                                        int64_t fee_min, struct refund_plan *out);

#endif
