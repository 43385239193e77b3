#include "rules_review.h"

#include <assert.h>

#include "datetime/datetime.h"

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

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

static int days_in_month(int64_t y, int m)
{
    return (int)(datetime_days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) -
                 datetime_days_from_civil(y, m, 1));
}

int64_t tier_period_end(int64_t start_us, int32_t months, int32_t utc_offset_minutes)
{
    assert(months > 0);
    int64_t offset_us = (int64_t)utc_offset_minutes * 60 * 1000000;
    int64_t local = start_us + offset_us;
    int64_t days = floor_div(local, TIER_US_PER_DAY), time_of_day = local - days * TIER_US_PER_DAY;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    int64_t month_index = y * 12 + (m - 1) + months;
    int64_t ny = floor_div(month_index, 12);
    int nm = (int)(month_index - ny * 12) + 1;
    int nd = d > days_in_month(ny, nm) ? days_in_month(ny, nm) : d;
    return datetime_days_from_civil(ny, nm, nd) * TIER_US_PER_DAY + time_of_day - offset_us;
}

int64_t tier_needed_to_keep(const struct tier_level *held, const struct tier_spend *spend,
                            const char **window)
{
    const struct {
        int64_t threshold, spent;
        const char *name;
    } w[3] = {{held->min_cumulative_spend, spend->lifetime, "lifetime"},
              {held->min_annual_spend, spend->annual, "calendar_year"},
              {held->min_rolling_spend, spend->rolling, "rolling_12_months"}};
    int64_t best = -1;
    *window = "";
    for (int i = 0; i < 3; i++) {
        if (w[i].threshold < 0)
            continue;
        int64_t need = w[i].spent >= w[i].threshold ? 0 : w[i].threshold - w[i].spent;
        if (best < 0 || need < best) {
            best = need;
            *window = w[i].name;
        }
    }
    return best;
}

enum tier_review_outcome tier_review(const struct tier_level *ladder, size_t count,
                                     const struct tier_spend *spend, int32_t held_rank,
                                     const struct tier_level **to)
{
    *to = tier_qualify(ladder, count, spend, NULL);
    return *to && (*to)->rank >= held_rank ? TIER_REVIEW_KEEP : TIER_REVIEW_DOWN;
}

const struct tier_level *tier_level_of_rank(const struct tier_level *ladder, size_t count,
                                            int32_t rank)
{
    for (size_t i = 0; i < count; i++)
        if (ladder[i].rank == rank)
            return &ladder[i];
    return NULL;
}
