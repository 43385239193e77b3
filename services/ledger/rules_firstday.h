/* The first-day limit on freshly topped-up stored value, a fraud control:
 * value topped up today (say with a stolen bank card) cannot all be spent
 * the same day. Pure rules, no I/O; unit-tested from a table
 * (tests/unit/test_ledger_firstday.c).
 *
 * Per member and local day (the tenant's time zone, the day of
 * rules_local_day like the daily card-use limit), T is the stored value
 * (principal + bonus) topped up that day. Spending draws first from value
 * that existed before the day, then from the day's fresh value; at most L
 * of the fresh value may be spent that day. With B the balance before a
 * charge x, that is: refused when T > 0 and x > B - T + L.
 *
 * Why B - T + L is right without tracking what was spent: B = B0 - S + T
 * (B0 the balance at midnight, S spent today), so x > B - T + L is
 * S + x > B0 + L, i.e. the fresh part of today's spending would pass L.
 * A refund of a purchase puts value back into B, which undoes spending:
 * it needs nothing here.
 *
 * A stored-value refund (cash out) takes value out of the balance: it
 * lowers T by everything it takes (principal paid out plus bonus
 * forfeited), down to 0. That keeps B - T (old value left, less fresh
 * value spent) unchanged: refunding today's top-up neither frees nor
 * locks the member's older value, and once all fresh value is refunded
 * T is 0 and nothing is limited. */
#ifndef TESSERA_LEDGER_RULES_FIRSTDAY_H
#define TESSERA_LEDGER_RULES_FIRSTDAY_H

#include <stdint.h>

#include "money/money.h"
#include "rules.h"

/* Bounds of the tenant setting (minor units; 0 = no limit). */
#define FIRST_DAY_LIMIT_MAX MONEY_AMOUNT_MAX

/* Fresh stored value of one local day. day is a rules_local_day number;
 * a state for an earlier day counts as nothing fresh. */
struct sv_fresh {
    int64_t day;
    int64_t amount; /* topped up that day (principal + bonus), less what refunds took */
};

/* Value topped up on day (a top-up's principal or its bonus, or both). A
 * later day starts a new count; an earlier day's value is not fresh and
 * changes nothing. */
void rules_fresh_topped_up(struct sv_fresh *f, int64_t day, int64_t amount);

/* A stored-value refund on day took amount out of the balance: the fresh
 * value drops by as much, never below 0. */
void rules_fresh_refunded(struct sv_fresh *f, int64_t day, int64_t amount);

/* What is fresh on day. */
int64_t rules_fresh_on(const struct sv_fresh *f, int64_t day);

/* May charge be drawn from bal on day under the tenant's limit (0 or less:
 * no limit)? RULES_OK, or RULES_FIRST_DAY_LIMIT_EXCEEDED. Only the limit
 * is checked here: whether the balance covers the charge is
 * rules_plan_sv_spend's. */
enum rules_result rules_check_first_day(int64_t limit, struct sv_balance bal,
                                        const struct sv_fresh *f, int64_t day, int64_t charge);

/* The first instant (µs since the epoch, UTC) of local day in a zone
 * utc_offset_s east of UTC: rules_local_day's inverse. */
int64_t rules_day_start_us(int64_t day, int32_t utc_offset_s);

#endif
