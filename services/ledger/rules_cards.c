#include "rules_cards.h"

#include <string.h>

#include "events/card_types.h"

struct card_limits card_limits_default(void)
{
    return (struct card_limits){.daily_uses_max = CARD_LIMITS_DEFAULT_DAILY_USES,
                                .prepaid_days_max = 0,
                                .prepaid_uses_max = 0,
                                .burst_uses = CARD_LIMITS_DEFAULT_BURST_USES,
                                .burst_window_s = CARD_LIMITS_DEFAULT_BURST_WINDOW_S,
                                .far_branch_window_s = CARD_LIMITS_DEFAULT_FAR_BRANCH_S,
                                .first_day_topup_spend_max = 0};
}

const char *rules_card_code(enum card_result r)
{
    switch (r) {
    case CARD_OK:
        return "ok";
    case CARD_EXPIRED:
        return "card_expired";
    case CARD_FROZEN:
        return "card_frozen";
    case CARD_NO_USES_LEFT:
        return "no_uses_left";
    case CARD_DAILY_LIMIT_REACHED:
        return "daily_limit_reached";
    case CARD_NOT_VALID_HERE:
        return "card_not_valid_here";
    case CARD_FREEZE_NOT_ALLOWED:
        return "freeze_not_allowed";
    case CARD_FREEZE_EXCEEDS_ALLOWANCE:
        return "freeze_exceeds_allowance";
    case CARD_PREPAID_CAP_EXCEEDED:
        return "prepaid_cap_exceeded";
    case CARD_INVALID:
        return "invalid_command";
    case CARD_COUPON_USED:
        return "coupon_used";
    case CARD_COUPON_EXPIRED:
        return "coupon_expired";
    case CARD_COUPON_MIN_SPEND:
        return "coupon_min_spend_not_met";
    case CARD_COUPON_NOT_APPLICABLE:
        return "coupon_not_applicable";
    case CARD_NOT_A_DISCOUNT_CARD:
        return "not_a_discount_card";
    case CARD_NOT_USABLE:
        return "card_not_usable";
    case CARD_VALIDITY_OVERFLOW:
        return "validity_overflow";
    case CARD_NO_ACTIVE_CARD:
        return "no_active_card";
    }
    return "unknown";
}

/* The index of name in names (count of them), or count when none. */
static int name_index(const char *const *names, int count, const char *name)
{
    for (int k = 0; k < count; k++)
        if (name && strcmp(name, names[k]) == 0)
            return k;
    return count;
}

static const char *const kind_names[] = {"count", "time", "discount", "subscription"};

enum card_kind rules_card_kind(const char *name)
{
    return (enum card_kind)name_index(kind_names, CARD_KIND_UNKNOWN, name);
}

const char *rules_card_kind_name(enum card_kind k)
{
    return k < CARD_KIND_UNKNOWN ? kind_names[k] : "unknown";
}

int64_t rules_local_day(int64_t at_us, int32_t utc_offset_s)
{
    int64_t local_us = at_us + (int64_t)utc_offset_s * 1000000LL;
    int64_t day = local_us / CARD_US_PER_DAY;
    if (local_us % CARD_US_PER_DAY < 0)
        day--; /* C division truncates toward zero; days floor */
    return day;
}

enum card_result rules_card_check_cap(const struct card_limits *lim, const struct card_terms *t)
{
    if (t->kind == CARD_COUNT)
        return lim->prepaid_uses_max > 0 && t->uses > lim->prepaid_uses_max
                   ? CARD_PREPAID_CAP_EXCEEDED
                   : CARD_OK;
    return lim->prepaid_days_max > 0 && t->validity_days > lim->prepaid_days_max
               ? CARD_PREPAID_CAP_EXCEEDED
               : CARD_OK;
}

enum card_result rules_card_check_cap_held(const struct card_limits *lim,
                                           const struct card_state *c, int64_t now_us)
{
    if (c->kind == CARD_COUNT)
        return lim->prepaid_uses_max > 0 && c->uses_left > lim->prepaid_uses_max
                   ? CARD_PREPAID_CAP_EXCEEDED
                   : CARD_OK;
    if (lim->prepaid_days_max <= 0 || c->valid_to_us <= now_us)
        return CARD_OK;
    /* Both sides in microseconds; the cap is bounded (card_limits are
     * validated), so the product does not overflow. */
    return c->valid_to_us - now_us > lim->prepaid_days_max * CARD_US_PER_DAY
               ? CARD_PREPAID_CAP_EXCEEDED
               : CARD_OK;
}

/* at_us + days, false when it does not fit an int64. */
static bool time_after_days(int64_t at_us, int64_t days, int64_t *out)
{
    int64_t span;
    return !__builtin_mul_overflow(days, CARD_US_PER_DAY, &span) &&
           !__builtin_add_overflow(at_us, span, out);
}

enum card_result rules_card_issue(const struct card_terms *t, int64_t now_us,
                                  struct card_state *out)
{
    int64_t to;
    if (!time_after_days(now_us, t->validity_days, &to))
        return CARD_VALIDITY_OVERFLOW;
    *out = (struct card_state){.kind = t->kind,
                               .uses_left = t->kind == CARD_COUNT ? t->uses : 0,
                               .valid_from_us = now_us,
                               .valid_to_us = to,
                               .freeze_days_left = t->freeze_days_max};
    return CARD_OK;
}

enum card_result rules_card_renew(struct card_state *c, const struct card_terms *t, int64_t now_us)
{
    if (t->kind != c->kind || t->validity_days <= 0)
        return CARD_INVALID;
    int64_t from = c->valid_to_us > now_us ? c->valid_to_us : now_us;
    int64_t to, uses = c->uses_left, freeze_days;
    if (!time_after_days(from, t->validity_days, &to) ||
        (c->kind == CARD_COUNT && __builtin_add_overflow(c->uses_left, t->uses, &uses)) ||
        __builtin_add_overflow(c->freeze_days_left, t->freeze_days_max, &freeze_days))
        return CARD_VALIDITY_OVERFLOW;
    c->valid_to_us = to;
    c->uses_left = uses;
    c->freeze_days_left = freeze_days;
    return CARD_OK;
}

/* Keeps the newest CARD_RECENT_USES_MAX use times, oldest first. */
static void remember_use(struct card_state *c, int64_t now_us)
{
    if (c->recent_count == CARD_RECENT_USES_MAX) {
        memmove(c->recent_uses_us, c->recent_uses_us + 1,
                (CARD_RECENT_USES_MAX - 1) * sizeof(c->recent_uses_us[0]));
        c->recent_count--;
    }
    c->recent_uses_us[c->recent_count++] = now_us;
}

/* Can the card be used at all now and here? Its validity first (a card
 * that is over is "expired" even at the wrong branch), then a freeze,
 * then the branch. */
static enum card_result usable_now(const struct card_state *c, int64_t now_us, bool branch_ok)
{
    if (now_us >= c->valid_to_us || now_us < c->valid_from_us)
        return CARD_EXPIRED;
    if (now_us < c->frozen_until_us)
        return CARD_FROZEN;
    return branch_ok ? CARD_OK : CARD_NOT_VALID_HERE;
}

enum card_result rules_card_use(const struct card_limits *lim, struct card_state *c, int64_t now_us,
                                int32_t utc_offset_s, bool branch_ok)
{
    /* Order matters for the answer: a card that is over is "expired" even
     * at the wrong branch; a frozen one says so before counting uses. */
    if (c->kind == CARD_DISCOUNT)
        return CARD_NOT_USABLE;
    enum card_result now = usable_now(c, now_us, branch_ok);
    if (now != CARD_OK)
        return now;
    if (c->kind == CARD_COUNT && c->uses_left <= 0)
        return CARD_NO_USES_LEFT;
    int64_t day = rules_local_day(now_us, utc_offset_s);
    int64_t today = c->use_day == day ? c->uses_on_day : 0;
    if (today >= lim->daily_uses_max)
        return CARD_DAILY_LIMIT_REACHED;
    if (c->kind == CARD_COUNT)
        c->uses_left--;
    c->use_day = day;
    c->uses_on_day = today + 1;
    remember_use(c, now_us);
    return CARD_OK;
}

enum card_result rules_card_freeze(struct card_state *c, int64_t days, int64_t now_us)
{
    if (c->kind != CARD_TIME && c->kind != CARD_SUBSCRIPTION)
        return CARD_FREEZE_NOT_ALLOWED;
    if (days <= 0 || days > CARD_FREEZE_DAYS_MAX)
        return CARD_INVALID;
    if (now_us >= c->valid_to_us)
        return CARD_EXPIRED;
    if (days > c->freeze_days_left)
        return CARD_FREEZE_EXCEEDS_ALLOWANCE;
    int64_t from = c->frozen_until_us > now_us ? c->frozen_until_us : now_us;
    int64_t until, to;
    if (!time_after_days(from, days, &until) || !time_after_days(c->valid_to_us, days, &to))
        return CARD_VALIDITY_OVERFLOW;
    c->frozen_until_us = until;
    c->valid_to_us = to;
    c->freeze_days_left -= days;
    return CARD_OK;
}

bool rules_card_extendable(const struct card_state *c, int64_t now_us)
{
    return (c->kind == CARD_TIME || c->kind == CARD_SUBSCRIPTION) && now_us < c->valid_to_us;
}

enum card_result rules_card_extend(struct card_state *c, int64_t days, int64_t now_us)
{
    if (days <= 0 || days > CARD_VALIDITY_DAYS_MAX)
        return CARD_INVALID;
    if (!rules_card_extendable(c, now_us))
        return CARD_NO_ACTIVE_CARD;
    int64_t to;
    if (!time_after_days(c->valid_to_us, days, &to))
        return CARD_VALIDITY_OVERFLOW;
    c->valid_to_us = to;
    return CARD_OK;
}

enum card_fraud rules_card_fraud(const struct card_limits *lim, const struct card_state *c,
                                 int64_t now_us, bool other_branch, int64_t previous_use_us,
                                 int64_t *in_window)
{
    int64_t window_us = lim->burst_window_s * 1000000LL, n = 0;
    for (int i = 0; i < c->recent_count; i++)
        if (c->recent_uses_us[i] > now_us - window_us && c->recent_uses_us[i] <= now_us)
            n++;
    *in_window = n;
    if (n >= lim->burst_uses)
        return CARD_FRAUD_BURST;
    if (other_branch && previous_use_us > 0 && lim->far_branch_window_s > 0 &&
        now_us - previous_use_us < lim->far_branch_window_s * 1000000LL)
        return CARD_FRAUD_DISTANT_BRANCHES;
    return CARD_FRAUD_NONE;
}

static const char *const coupon_kind_names[] = {"value", "percent", "free_item"};

enum coupon_kind rules_coupon_kind(const char *name)
{
    return (enum coupon_kind)name_index(coupon_kind_names, COUPON_KIND_UNKNOWN, name);
}

const char *rules_coupon_kind_name(enum coupon_kind k)
{
    return k < COUPON_KIND_UNKNOWN ? coupon_kind_names[k] : "unknown";
}

enum card_result rules_coupon_redeem(const struct coupon_state *c, int64_t amount, int64_t now_us,
                                     int64_t *discount)
{
    if (c->redeemed)
        return CARD_COUPON_USED;
    if (now_us >= c->valid_to_us || now_us < c->valid_from_us)
        return CARD_COUPON_EXPIRED;
    if (amount < 0 || (c->kind == COUPON_PERCENT && amount == 0))
        return CARD_INVALID;
    if (amount < c->min_spend)
        return CARD_COUPON_MIN_SPEND;
    if (c->kind == COUPON_FREE_ITEM) {
        if (amount > 0 && c->free_item_price <= 0)
            return CARD_COUPON_NOT_APPLICABLE;
        *discount = c->free_item_price < amount ? c->free_item_price : amount;
        return CARD_OK;
    }
    if (c->kind == COUPON_VALUE) {
        *discount = amount > 0 && amount < c->value ? amount : c->value;
        return CARD_OK;
    }
    /* 128-bit product: any int64 amount times 10 000 fits */
    *discount = (int64_t)((__int128)amount * c->percent_bp / 10000);
    return CARD_OK;
}

enum card_result rules_card_discount(const struct card_state *c, int64_t discount_bp,
                                     int64_t amount, int64_t now_us, bool branch_ok,
                                     int64_t *discount)
{
    if (c->kind != CARD_DISCOUNT)
        return CARD_NOT_A_DISCOUNT_CARD;
    enum card_result now = usable_now(c, now_us, branch_ok);
    if (now != CARD_OK)
        return now;
    if (amount <= 0 || discount_bp <= 0 || discount_bp > 10000)
        return CARD_INVALID;
    *discount = amount - (int64_t)((__int128)amount * discount_bp / 10000);
    return CARD_OK;
}
