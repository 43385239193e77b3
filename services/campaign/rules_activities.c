/* Activity rules (see rules_activities.h). Every input is bounded by the
 * setting's validation (engage_types.h), so points x multiplier stays
 * far below 2^63: 10^6 x 10^5. */
#undef NDEBUG /* asserts stay on in production builds */
#include "rules_activities.h"

#include <assert.h>
#include <string.h>

#define MULTIPLIER_ONE_BP INT64_C(10000)
#define DAY_US            (INT64_C(86400) * 1000000)

int64_t rules_activity_capped(int64_t points, int64_t monthly_cap, int64_t month_points)
{
    assert(points >= 0 && monthly_cap >= 0 && month_points >= 0);
    if (monthly_cap == 0)
        return points;
    int64_t left = monthly_cap > month_points ? monthly_cap - month_points : 0;
    return points < left ? points : left;
}

static bool reached(int64_t limit, int64_t count)
{
    return limit > 0 && count >= limit;
}

enum activity_outcome rules_activity_points(const struct activity_rule *r,
                                            const struct activity_counts *c, int64_t multiplier_bp,
                                            int64_t monthly_cap, int64_t *points)
{
    assert(r && c && points);
    assert(multiplier_bp >= MULTIPLIER_ONE_BP && multiplier_bp <= 10 * MULTIPLIER_ONE_BP);
    *points = 0;
    if (r->points <= 0)
        return ACTIVITY_NO_POINTS;
    if (reached(r->per_day, c->day))
        return ACTIVITY_DAY_LIMIT;
    if (reached(r->per_week, c->week))
        return ACTIVITY_WEEK_LIMIT;
    if (reached(r->per_month, c->month))
        return ACTIVITY_MONTH_LIMIT;
    int64_t multiplied = r->points * multiplier_bp / MULTIPLIER_ONE_BP;
    *points = rules_activity_capped(multiplied, monthly_cap, c->month_points);
    return *points > 0 ? ACTIVITY_EARNED : ACTIVITY_CAPPED;
}

bool rules_streak_check_in(struct check_in_streak *s, int64_t day, int64_t streak_days)
{
    assert(s && s->length >= 0 && streak_days >= 0);
    if (s->length > 0 && day <= s->last_day)
        return false; /* the same day again, or a late report of an earlier one */
    if (s->length > 0 && day == s->last_day + 1)
        s->length++;
    else
        s->length = 1; /* the first check-in, or a day was missed */
    s->last_day = day;
    return streak_days > 0 && s->length % streak_days == 0;
}

static bool listed(const char *const *list, size_t n, const char *word)
{
    for (size_t i = 0; word && i < n; i++)
        if (strcmp(list[i], word) == 0)
            return true;
    return false;
}

static bool in_force(const struct promotion_rule *p, const struct promotion_target *t)
{
    if (t->purchase ? !p->purchases : !p->activities)
        return false;
    if (p->day_of_month != 0 && p->day_of_month != t->day_of_month)
        return false;
    if ((p->from_us && t->at_us < p->from_us) || (p->to_us && t->at_us >= p->to_us))
        return false;
    if (p->branch_count > 0 && !listed(p->branches, p->branch_count, t->branch))
        return false;
    if (p->category_count == 0)
        return true;
    for (size_t i = 0; i < t->category_count; i++)
        if (listed(p->categories, p->category_count, t->categories[i]))
            return true;
    return false;
}

int64_t rules_promotion_multiplier(const struct promotion_rule *p, size_t n,
                                   const struct promotion_target *t)
{
    int64_t best = MULTIPLIER_ONE_BP;
    for (size_t i = 0; i < n; i++)
        if (in_force(&p[i], t) && p[i].multiplier_bp > best)
            best = p[i].multiplier_bp;
    return best;
}

bool rules_welcome_due(int64_t registered_us, int64_t occurred_us, int64_t days)
{
    return registered_us > 0 && occurred_us >= registered_us &&
           occurred_us - registered_us < days * DAY_US;
}

const char *rules_activity_outcome_text(enum activity_outcome o)
{
    switch (o) {
    case ACTIVITY_EARNED:
        return "earned";
    case ACTIVITY_NO_POINTS:
        return "no_points";
    case ACTIVITY_DAY_LIMIT:
        return "day_limit";
    case ACTIVITY_WEEK_LIMIT:
        return "week_limit";
    case ACTIVITY_MONTH_LIMIT:
        return "month_limit";
    case ACTIVITY_CAPPED:
        return "monthly_cap";
    }
    return "unknown";
}
