#include "rules.h"

#include <assert.h>
#include <string.h>

#include "money/money.h"
#include "rules_review.h"

const char *tier_reason_name(enum tier_reason r)
{
    switch (r) {
    case TIER_REASON_CUMULATIVE:
        return "cumulative_spend";
    case TIER_REASON_ANNUAL:
        return "annual_spend";
    case TIER_REASON_ROLLING:
        return "rolling_spend";
    case TIER_REASON_NONE:
        break;
    }
    return "";
}

bool tier_reason_by_spend(const char *reason)
{
    return strcmp(reason, "invitation") != 0 && strcmp(reason, "override") != 0;
}

const struct tier_level *tier_qualify(const struct tier_level *ladder, size_t count,
                                      const struct tier_spend *spend, enum tier_reason *why)
{
    assert(count <= TIER_LEVELS_MAX && (ladder || count == 0));
    const struct tier_level *best = NULL;
    enum tier_reason best_why = TIER_REASON_NONE;
    for (size_t i = 0; i < count; i++) {
        const struct tier_level *t = &ladder[i];
        if (t->invitation_only)
            continue;
        enum tier_reason r = TIER_REASON_NONE;
        if (t->min_cumulative_spend >= 0 && spend->lifetime >= t->min_cumulative_spend)
            r = TIER_REASON_CUMULATIVE;
        else if (t->min_annual_spend >= 0 && spend->annual >= t->min_annual_spend)
            r = TIER_REASON_ANNUAL;
        else if (t->min_rolling_spend >= 0 && spend->rolling >= t->min_rolling_spend)
            r = TIER_REASON_ROLLING;
        if (r != TIER_REASON_NONE && (!best || t->rank > best->rank)) {
            best = t;
            best_why = r;
        }
    }
    if (why)
        *why = best_why;
    return best;
}

bool tier_is_upgrade(bool has_current, int32_t current_rank, const struct tier_level *qualified)
{
    return qualified && (!has_current || qualified->rank > current_rank);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

int32_t tier_local_year(int64_t at_us, int32_t utc_offset_minutes)
{
    /* days since 1970-01-01 in the zone, then the civil year (H. Hinnant's
     * days_from_civil inverse; proleptic Gregorian) */
    int64_t secs = floor_div(at_us, 1000000) + (int64_t)utc_offset_minutes * 60;
    int64_t z = floor_div(secs, 86400) + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    return (int32_t)(yoe + era * 400 + (month <= 2));
}

const struct tier_level *tier_by_referrals(const struct tier_level *ladder, size_t count,
                                           int64_t referrals)
{
    const struct tier_level *best = NULL;
    for (size_t i = 0; i < count; i++) {
        const struct tier_level *t = &ladder[i];
        if (t->invitation_only || t->referrals_required <= 0 || referrals < t->referrals_required)
            continue;
        if (!best || t->rank > best->rank)
            best = t;
    }
    return best;
}

/* true when list (names joined by TIER_SKU_SEPARATOR) names sku */
static bool sku_listed(const char *list, const char *sku)
{
    size_t n = strlen(sku);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, TIER_SKU_SEPARATOR);
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && n > 0 && memcmp(p, sku, n) == 0)
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

const struct tier_level *tier_by_package(const struct tier_level *ladder, const char *const *skus,
                                         size_t count, const char *const *bought, size_t n_bought)
{
    const struct tier_level *best = NULL;
    for (size_t i = 0; i < count; i++)
        for (size_t j = 0; j < n_bought; j++)
            if (sku_listed(skus[i], bought[j]) && (!best || ladder[i].rank > best->rank))
                best = &ladder[i];
    return best;
}

const struct tier_level *tier_by_membership(const struct tier_level *ladder, size_t count,
                                            int32_t years)
{
    const struct tier_level *best = NULL;
    for (size_t i = 0; i < count; i++) {
        const struct tier_level *t = &ladder[i];
        if (t->invitation_only || t->membership_years <= 0 || years < t->membership_years)
            continue;
        if (!best || t->rank > best->rank)
            best = t;
    }
    return best;
}

int32_t tier_membership_years(int64_t registered_us, int64_t now_us, int32_t utc_offset_minutes)
{
    if (now_us <= registered_us)
        return 0;
    int32_t years = tier_local_year(now_us, utc_offset_minutes) -
                    tier_local_year(registered_us, utc_offset_minutes);
    /* not yet the anniversary this year: one fewer */
    while (years > 0 && tier_period_end(registered_us, years * 12, utc_offset_minutes) > now_us)
        years--;
    return years;
}
