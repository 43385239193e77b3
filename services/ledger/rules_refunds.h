/* Pure refund rules: what a stored-value refund takes, forfeits, keeps as
 * a fee and pays out; what a (partial) purchase refund returns and how
 * many earned points it reverses. No I/O; unit-tested from tables. */
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
    REFUND_NOT_REFUNDABLE, /* "not_refundable": the purchase charged nothing */
    REFUND_ALREADY,        /* "already_refunded": nothing of the purchase is left to refund */
    REFUND_EXCEEDS,        /* "exceeds_refundable": more than what is left to refund */
};
const char *rules_refund_code(enum refund_result r);

/* Refunds return only unspent principal (requested; 0 means all of it).
 * The bonus is forfeited in proportion to the principal refunded, rounded
 * up, so the member never keeps more bonus than the principal left would
 * carry; a full refund forfeits all of it. The fee is fee_bp of the
 * principal (rounded down), at least fee_min, at most the principal. */
enum refund_result rules_plan_sv_refund(struct sv_balance bal, int64_t requested, int64_t fee_bp,
                                        int64_t fee_min, struct refund_plan *out);

/* floor(part * whole_value / whole) in 128 bits: the share of whole_value
 * that part of whole stands for. 0 when whole is 0. */
int64_t rules_refund_share(int64_t part, int64_t whole, int64_t whole_value);

/* A purchase as its refunds see it: what it charged and drew from stored
 * value, the points it earned, and what its earlier refunds took. */
struct purchase_refund_state {
    int64_t charged, paid_principal, paid_bonus;
    int64_t points_earned;      /* by every earning that names the purchase */
    int64_t refunded;           /* charged amount refunded so far */
    int64_t principal_returned; /* so far */
    int64_t bonus_returned;     /* so far */
    int64_t points_reversed;    /* so far, unrecovered ones and shares never granted included */
    int64_t points_paid;        /* points the purchase was paid with (issue 12) */
    int64_t points_returned;    /* of those, given back so far */
};

struct purchase_refund_plan {
    int64_t amount;    /* of the charge, refunded now */
    int64_t principal; /* returned to the member's stored value now */
    int64_t bonus;
    int64_t points;          /* earned points to take back now */
    int64_t points_returned; /* points the purchase was paid with, to give back now */
};

/* A refund of `requested` of the purchase's charge (0: all not refunded
 * yet). Cumulative rounding: after it, the refunded total R stands for
 * floor(R * paid_principal / charged) of principal, R's stored-value part
 * floor(R * (paid_principal + paid_bonus) / charged) minus that of bonus,
 * floor(R * points_earned / charged) points taken back and floor(R *
 * points_paid / charged) points given back; the plan is those totals
 * minus what earlier refunds took. So however a purchase is refunded in
 * parts, the parts sum exactly to the whole once R reaches the charge. */
enum refund_result rules_plan_purchase_refund(const struct purchase_refund_state *s,
                                              int64_t requested, struct purchase_refund_plan *out);

#endif
