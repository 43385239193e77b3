/* The ledger's pure card rules: validity, freezing, the daily use limit in
 * the tenant's time zone, prepaid caps and fraud signals. No I/O; unit-
 * tested from tables (tests/unit/test_ledger_cards.c). Times are
 * microseconds since the Unix epoch, UTC. */
#ifndef TESSERA_LEDGER_RULES_CARDS_H
#define TESSERA_LEDGER_RULES_CARDS_H

#include <stdbool.h>
#include <stdint.h>

#define CARD_US_PER_DAY        (86400LL * 1000000LL)
#define CARD_RECENT_USES_MAX   8    /* use times kept per card for burst alerts */
#define CARD_VALIDITY_DAYS_MAX 3660 /* ten years: any longer is a typo */
#define CARD_USES_MAX          100000
#define CARD_FREEZE_DAYS_MAX   366

enum card_kind { CARD_COUNT, CARD_TIME, CARD_DISCOUNT, CARD_SUBSCRIPTION, CARD_KIND_UNKNOWN };

enum card_result {
    CARD_OK = 0,
    CARD_EXPIRED,
    CARD_FROZEN,
    CARD_NO_USES_LEFT,
    CARD_DAILY_LIMIT_REACHED,
    CARD_NOT_VALID_HERE,
    CARD_FREEZE_NOT_ALLOWED,
    CARD_FREEZE_EXCEEDS_ALLOWANCE,
    CARD_PREPAID_CAP_EXCEEDED,
    CARD_INVALID,
    CARD_COUPON_USED,
    CARD_COUPON_MIN_SPEND,
    CARD_COUPON_NOT_APPLICABLE,
    CARD_COUPON_EXPIRED,
    CARD_NOT_A_DISCOUNT_CARD,
    CARD_NOT_USABLE,
    CARD_VALIDITY_OVERFLOW, /* a time or count past what an int64 holds */
    CARD_NO_ACTIVE_CARD,    /* a reward of days: no valid time card of the product */
};

/* A tenant's card limits; card_limits_default() when it set none. */
struct card_limits {
    int64_t daily_uses_max;
    int64_t prepaid_days_max; /* 0: no cap */
    int64_t prepaid_uses_max; /* 0: no cap */
    int64_t burst_uses;
    int64_t burst_window_s;
    int64_t far_branch_window_s;       /* 0: no distant-branch alert */
    int64_t first_day_topup_spend_max; /* stored value, not cards (rules_firstday.h); 0: none */
};

/* The terms a card is sold with (a product's, copied onto the card). */
struct card_terms {
    enum card_kind kind;
    int64_t uses;
    int64_t validity_days;
    int64_t freeze_days_max;
};

/* What the rules read and change of one card. */
struct card_state {
    enum card_kind kind;
    int64_t uses_left;
    int64_t valid_from_us, valid_to_us;
    int64_t frozen_until_us;
    int64_t freeze_days_left;
    int64_t use_day; /* local day number that uses_on_day counts */
    int64_t uses_on_day;
    int64_t recent_uses_us[CARD_RECENT_USES_MAX]; /* oldest first */
    int recent_count;
};

enum card_fraud { CARD_FRAUD_NONE, CARD_FRAUD_BURST, CARD_FRAUD_DISTANT_BRANCHES };

struct card_limits card_limits_default(void);
const char *rules_card_code(enum card_result r);
enum card_kind rules_card_kind(const char *name);
const char *rules_card_kind_name(enum card_kind k);

/* The day number (days since 1970-01-01) at at_us in a zone utc_offset_s
 * east of UTC; floors, so instants before the epoch work too. */
int64_t rules_local_day(int64_t at_us, int32_t utc_offset_s);

/* Refuses a single sale above the tenant's prepaid cap: count cards by
 * uses, every other kind by validity days. */
enum card_result rules_card_check_cap(const struct card_limits *lim, const struct card_terms *t);

/* Refuses a card that, renewed, would hold more than the tenant's prepaid
 * cap at now_us: count cards by the uses left, every other kind by the
 * time from now to valid_to (frozen days included), against the cap in
 * days. A renewal adds to what is held, so it is checked after, not per
 * sale (a sale at the cap, renewed at once, would double it). */
enum card_result rules_card_check_cap_held(const struct card_limits *lim,
                                           const struct card_state *c, int64_t now_us);

/* A new card sold at now_us into *out: CARD_OK, or CARD_VALIDITY_OVERFLOW
 * when its end would not fit an int64 (the card's valid_to_us is a
 * bigint: PostgreSQL would refuse it, C would wrap it). */
enum card_result rules_card_issue(const struct card_terms *t, int64_t now_us,
                                  struct card_state *out);

/* A renewal: validity continues from valid_to (or now, if it has passed),
 * count cards get the product's uses on top. Checked like an issue: on
 * CARD_VALIDITY_OVERFLOW the card is unchanged. */
enum card_result rules_card_renew(struct card_state *c, const struct card_terms *t, int64_t now_us);

/* One use at now_us at a branch the card is (branch_ok) or is not valid
 * at. Discount cards are not used but named in purchases. On CARD_OK the card is changed (uses,
 * today's count, recent uses). */
enum card_result rules_card_use(const struct card_limits *lim, struct card_state *c, int64_t now_us,
                                int32_t utc_offset_s, bool branch_ok);

/* Pauses a time card (or subscription) for days from now (or from the end
 * of a freeze in progress): valid_to moves by as much; bounded by the
 * allowance left and, like a renewal, by what an int64 holds. */
enum card_result rules_card_freeze(struct card_state *c, int64_t days, int64_t now_us);

/* Can a reward of days go to this card at now_us: a time card or a
 * subscription still valid (frozen or not)? The ledger extends the one of
 * these valid longest (cards_extend.c). */
bool rules_card_extendable(const struct card_state *c, int64_t now_us);

/* Adds days (1..CARD_VALIDITY_DAYS_MAX) to a card rules_card_extendable
 * allows: valid_to moves by as much, nothing else changes (a gift, not a
 * sale: the freeze allowance and the prepaid cap are untouched). On any
 * refusal the card is unchanged: CARD_INVALID (days), CARD_NO_ACTIVE_CARD
 * (not extendable), CARD_VALIDITY_OVERFLOW. */
enum card_result rules_card_extend(struct card_state *c, int64_t days, int64_t now_us);

/* After a use recorded at now_us (already in recent uses): a burst when
 * burst_uses uses fall within burst_window_s; distant branches when the
 * previous use, at another branch, was less than far_branch_window_s ago.
 * *in_window gets the uses counted in the burst window. */
enum card_fraud rules_card_fraud(const struct card_limits *lim, const struct card_state *c,
                                 int64_t now_us, bool other_branch, int64_t previous_use_us,
                                 int64_t *in_window);

/* A discount card on a bill of amount at now_us: the member pays
 * discount_bp of it (8000: 80%, rounded down, in the member's favour by
 * less than a fen); *discount is what comes off. */
enum card_result rules_card_discount(const struct card_state *c, int64_t discount_bp,
                                     int64_t amount, int64_t now_us, bool branch_ok,
                                     int64_t *discount);

/* A single-use coupon: a value off, a percentage of the bill, or one
 * unit of an item free; usable on a bill of at least min_spend. */
#define COUPON_SKU_MAX 64
enum coupon_kind { COUPON_VALUE, COUPON_PERCENT, COUPON_FREE_ITEM, COUPON_KIND_UNKNOWN };
struct coupon_state {
    enum coupon_kind kind;
    int64_t value, percent_bp;
    int64_t valid_from_us, valid_to_us;
    int64_t min_spend;
    char free_sku[COUPON_SKU_MAX + 1];
    /* free_item, set by the purchase being priced: the unit price of
     * free_sku in its items (0: not among them); not stored */
    int64_t free_item_price;
    bool redeemed;
};

enum coupon_kind rules_coupon_kind(const char *name);
const char *rules_coupon_kind_name(enum coupon_kind k);

/* Redeeming a coupon on a bill of amount (0: no bill, value and free item
 * coupons only) at now_us: the discount (never more than the bill;
 * percentages round down, in the member's disfavour by less than a fen),
 * or why not. A bill under min_spend is refused (no bill counts as 0); a
 * free item coupon takes the item's unit price off a bill that holds it
 * (free_item_price), and nothing when redeemed without a bill (the item
 * is handed over). */
enum card_result rules_coupon_redeem(const struct coupon_state *c, int64_t amount, int64_t now_us,
                                     int64_t *discount);

#endif
