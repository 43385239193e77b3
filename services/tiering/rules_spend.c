#include "rules_spend.h"

#include <assert.h>
#include <string.h>

#include "datetime/datetime.h"
#include "money/money.h"

#define US_PER_DAY (INT64_C(86400) * 1000000)

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* days since 1970-01-01 -> civil date (H. Hinnant's civil_from_days, the
 * inverse of datetime_days_from_civil) */
static void civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

void tier_windows_at(struct tier_windows *w, int64_t now_us, int32_t utc_offset_minutes)
{
    int64_t offset_us = (int64_t)utc_offset_minutes * 60 * 1000000;
    int64_t local_us = now_us + offset_us;
    int64_t days = floor_div(local_us, US_PER_DAY);
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    w->now_us = now_us;
    w->year = (int32_t)y;
    w->year_from_us = datetime_days_from_civil(y, 1, 1) * US_PER_DAY - offset_us;
    /* the same local date a year before; 29 February has none: the 28th */
    int prev_d = (m == 2 && d == 29) ? 28 : d;
    int64_t back_days = days - datetime_days_from_civil(y - 1, m, prev_d);
    w->rolling_from_us = now_us - back_days * US_PER_DAY;
    assert(w->year_from_us <= now_us && w->rolling_from_us <= now_us);
}

bool tier_sale_counts(enum tier_sale kind, const struct tier_spend_policy *p)
{
    switch (kind) {
    case TIER_SALE_PURCHASE:
        return true;
    case TIER_SALE_CARD:
        return p->count_card_sales;
    case TIER_SALE_SUBSCRIPTION:
        return p->count_subscription_sales;
    }
    return false;
}

static bool add_floor0(int64_t *v, int64_t amount)
{
    int64_t next;
    if (!money_add(*v, amount, &next))
        return false;
    *v = next < 0 ? 0 : next;
    return true;
}

bool tier_spend_count(struct tier_spend *s, const struct tier_windows *w, int64_t amount,
                      int64_t at_us)
{
    struct tier_spend next = *s;
    if (next.year != w->year) { /* a stored annual figure of an older year */
        next.year = w->year;
        next.annual = 0;
    }
    if (!add_floor0(&next.lifetime, amount))
        return false;
    if (at_us >= w->year_from_us && !add_floor0(&next.annual, amount))
        return false;
    if (at_us > w->rolling_from_us && !add_floor0(&next.rolling, amount))
        return false;
    *s = next;
    return true;
}

const char *tier_refund_rule_name(enum tier_refund_rule r)
{
    return r == TIER_REFUND_IMMEDIATE ? "immediately" : "at_review";
}

bool tier_refund_rule_parse(const char *s, enum tier_refund_rule *r)
{
    if (strcmp(s, "immediately") == 0)
        *r = TIER_REFUND_IMMEDIATE;
    else if (strcmp(s, "at_review") == 0)
        *r = TIER_REFUND_AT_REVIEW;
    else
        return false;
    return true;
}

enum tier_refund_outcome tier_after_refund(const struct tier_level *ladder, size_t count,
                                           const struct tier_spend *spend, bool has_current,
                                           int32_t current_rank, bool held_by_spend,
                                           enum tier_refund_rule rule, const struct tier_level **to)
{
    *to = tier_qualify(ladder, count, spend, NULL);
    if (!has_current || !held_by_spend)
        return TIER_REFUND_KEEP;
    if (*to && (*to)->rank >= current_rank)
        return TIER_REFUND_KEEP;
    return rule == TIER_REFUND_IMMEDIATE ? TIER_REFUND_DOWN_NOW : TIER_REFUND_BELOW_REVIEW;
}
