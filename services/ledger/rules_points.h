/* Pure points rules: when a lot vests and expires under a tenant's
 * policy, which lots a deduction spends, and which lots a refund takes
 * earned points back from. No I/O; unit-tested from tables. */
#ifndef TESSERA_LEDGER_RULES_POINTS_H
#define TESSERA_LEDGER_RULES_POINTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POINTS_ADJUST_MAX       1000000000LL /* one adjustment, either sign */
#define POINTS_PERIODS_MAX      1200
#define POINTS_US_PER_DAY       86400000000LL
#define POINTS_LOCK_SECONDS_MAX (366LL * 86400) /* the table's CHECK says the same */
#define POINTS_RULE_MAX         128             /* characters of an earning rule's name */

enum points_expiry_kind {
    POINTS_EXPIRE_NEVER = 0,
    POINTS_EXPIRE_DAYS,         /* granted_at + periods days */
    POINTS_EXPIRE_END_OF_MONTH, /* end of the month `periods` months after the grant's */
    POINTS_EXPIRE_END_OF_YEAR,  /* end of the year `periods` years after the grant's */
};

/* A tenant's policy. Month and year ends are taken in the tenant's local
 * time (utc_offset_minutes, e.g. +480 for Asia/Shanghai): a lot granted on
 * 2026-03-15 under "end of month, 12" is valid until 2027-03-31 24:00
 * local, i.e. expires_at is 2027-04-01 00:00 local. */
struct points_policy {
    enum points_expiry_kind kind;
    int periods;
    int utc_offset_minutes;
    int64_t lock_seconds; /* earned points stay pending this long; 0: spendable at once */
};

/* "never" | "days" | "end_of_month" | "end_of_year" -> kind; false when
 * unknown. */
bool rules_points_kind_parse(const char *text, enum points_expiry_kind *kind);

/* The instant (µs since the epoch) a lot granted at granted_at_us expires
 * under policy, or 0 for never. The lot is spendable while now < that. */
int64_t rules_points_expiry_us(const struct points_policy *policy, int64_t granted_at_us);

/* When points earned at earned_at_us vest under policy: earned_at_us
 * plus the lock (exactly, in seconds: no calendar involved). With no lock
 * that is earned_at_us itself, and the lot is never pending. */
int64_t rules_points_vests_at_us(const struct points_policy *policy, int64_t earned_at_us);

/* A lot as the spending and reversal rules see it. */
struct points_lot_view {
    int64_t remaining;
    int64_t expires_at_us; /* 0: never */
    bool pending;          /* inside its lock period: never spent */
    bool of_purchase;      /* earned by the purchase being refunded (reversal only) */
};

enum points_result {
    POINTS_OK = 0,
    POINTS_INSUFFICIENT, /* "insufficient_points" */
    POINTS_INVALID,      /* "invalid_points" */
};
const char *rules_points_code(enum points_result r);

/* Spends `points` (> 0) from lots: soonest-expiring first, never-expiring
 * last, equal expiries in the order given (the caller passes them oldest
 * first). Pending lots and lots already expired at now_us are not
 * spendable. Writes what each lot gives to take[i] (0 for most). Refused,
 * with take untouched, when the spendable lots hold less. */
enum points_result rules_points_plan_spend(const struct points_lot_view *lots, size_t count,
                                           int64_t now_us, int64_t points, int64_t *take);

/* Takes back `points` (>= 0) earned by a refunded purchase: first from the
 * purchase's own pending lots (clean: never spendable), then from what is
 * left of its vested lots, then from the member's other vested lots in the
 * spending order. Other pending lots and expired lots are never touched.
 * Writes take[i] for every lot and returns what could not be taken back
 * (the member spent it; balances never go negative). */
int64_t rules_points_plan_reversal(const struct points_lot_view *lots, size_t count, int64_t now_us,
                                   int64_t points, int64_t *take);

#endif
