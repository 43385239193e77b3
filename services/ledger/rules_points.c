#include "rules_points.h"

#include "datetime/datetime.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

bool rules_points_kind_parse(const char *text, enum points_expiry_kind *kind)
{
    static const struct {
        const char *name;
        enum points_expiry_kind kind;
    } kinds[] = {{"never", POINTS_EXPIRE_NEVER},
                 {"days", POINTS_EXPIRE_DAYS},
                 {"end_of_month", POINTS_EXPIRE_END_OF_MONTH},
                 {"end_of_year", POINTS_EXPIRE_END_OF_YEAR}};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(text, kinds[i].name) == 0) {
            *kind = kinds[i].kind;
            return true;
        }
    return false;
}

const char *rules_points_code(enum points_result r)
{
    switch (r) {
    case POINTS_OK:
        return "ok";
    case POINTS_INSUFFICIENT:
        return "insufficient_points";
    case POINTS_INVALID:
        return "invalid_points";
    }
    return "unknown";
}

/* The date of a day since 1970-01-01 (Howard Hinnant's civil_from_days,
 * the inverse of datetime_days_from_civil): exact for any date we will
 * meet, no time zone database and no libc state involved. */
static void civil_from_days(int64_t z, int64_t *y, int *m)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

int64_t rules_points_expiry_us(const struct points_policy *p, int64_t granted_at_us)
{
    assert(p->periods >= 0 && p->periods <= POINTS_PERIODS_MAX);
    if (p->kind == POINTS_EXPIRE_NEVER)
        return 0;
    if (p->kind == POINTS_EXPIRE_DAYS)
        return granted_at_us + (int64_t)p->periods * POINTS_US_PER_DAY;
    int64_t offset_us = (int64_t)p->utc_offset_minutes * 60 * 1000000;
    int64_t local_day = floor_div(granted_at_us + offset_us, POINTS_US_PER_DAY);
    int64_t y;
    int m;
    civil_from_days(local_day, &y, &m);
    /* The first day after the period: month m + periods + 1, or the year
     * y + periods + 1, at local midnight. */
    int64_t next_day;
    if (p->kind == POINTS_EXPIRE_END_OF_MONTH) {
        int64_t months = y * 12 + (m - 1) + p->periods + 1;
        next_day = datetime_days_from_civil(floor_div(months, 12),
                                            (int)(months - floor_div(months, 12) * 12) + 1, 1);
    } else {
        next_day = datetime_days_from_civil(y + p->periods + 1, 1, 1);
    }
    return next_day * POINTS_US_PER_DAY - offset_us;
}

int64_t rules_points_vests_at_us(const struct points_policy *p, int64_t earned_at_us)
{
    assert(p->lock_seconds >= 0 && p->lock_seconds <= POINTS_LOCK_SECONDS_MAX);
    return earned_at_us + p->lock_seconds * 1000000;
}

struct spend_order {
    size_t index;
    int64_t expires_at_us;
};

/* Soonest first; never (0) after every dated lot; ties keep input order. */
static int spend_order_cmp(const void *a, const void *b)
{
    const struct spend_order *x = a, *y = b;
    bool xn = x->expires_at_us == 0, yn = y->expires_at_us == 0;
    if (xn != yn)
        return xn ? 1 : -1;
    if (x->expires_at_us != y->expires_at_us)
        return x->expires_at_us < y->expires_at_us ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static bool spendable(const struct points_lot_view *lot, int64_t now_us)
{
    return lot->remaining > 0 && !lot->pending &&
           (lot->expires_at_us == 0 || lot->expires_at_us > now_us);
}

enum points_result rules_points_plan_spend(const struct points_lot_view *lots, size_t count,
                                           int64_t now_us, int64_t points, int64_t *take)
{
    if (points <= 0 || points > POINTS_ADJUST_MAX)
        return POINTS_INVALID;
    int64_t available = 0;
    size_t n = 0;
    struct spend_order *order = malloc((count ? count : 1) * sizeof(*order));
    assert(order);
    for (size_t i = 0; i < count; i++) {
        if (!spendable(&lots[i], now_us))
            continue;
        available += lots[i].remaining; /* lots hold at most int64 points in total */
        order[n++] = (struct spend_order){.index = i, .expires_at_us = lots[i].expires_at_us};
    }
    if (available < points) {
        free(order);
        return POINTS_INSUFFICIENT;
    }
    qsort(order, n, sizeof(*order), spend_order_cmp);
    for (size_t i = 0; i < count; i++)
        take[i] = 0;
    for (size_t k = 0; k < n && points > 0; k++) {
        int64_t remaining = lots[order[k].index].remaining;
        int64_t t = remaining < points ? remaining : points;
        take[order[k].index] = t;
        points -= t;
    }
    free(order);
    return POINTS_OK;
}

/* Takes up to *points from lot i into take[i]. */
static void reversal_take(const struct points_lot_view *lot, int64_t *take_i, int64_t *points)
{
    int64_t t = lot->remaining < *points ? lot->remaining : *points;
    *take_i += t;
    *points -= t;
}

int64_t rules_points_plan_reversal(const struct points_lot_view *lots, size_t count, int64_t now_us,
                                   int64_t points, int64_t *take)
{
    assert(points >= 0);
    for (size_t i = 0; i < count; i++)
        take[i] = 0;
    /* 1. the purchase's pending lots, oldest first */
    for (size_t i = 0; i < count && points > 0; i++)
        if (lots[i].of_purchase && lots[i].pending && lots[i].remaining > 0)
            reversal_take(&lots[i], &take[i], &points);
    /* 2. what is left of the purchase's vested lots */
    for (size_t i = 0; i < count && points > 0; i++)
        if (lots[i].of_purchase && spendable(&lots[i], now_us))
            reversal_take(&lots[i], &take[i], &points);
    if (points == 0 || count == 0)
        return points;
    /* 3. the member's other vested lots, as a deduction would spend them */
    size_t n = 0;
    struct spend_order *order = malloc(count * sizeof(*order));
    assert(order);
    for (size_t i = 0; i < count; i++)
        if (!lots[i].of_purchase && spendable(&lots[i], now_us))
            order[n++] = (struct spend_order){.index = i, .expires_at_us = lots[i].expires_at_us};
    qsort(order, n, sizeof(*order), spend_order_cmp);
    for (size_t k = 0; k < n && points > 0; k++)
        reversal_take(&lots[order[k].index], &take[order[k].index], &points);
    free(order);
    return points;
}
