/* Pure activity rules: what an activity earns under its type's rule, the
 * tenant's limits and monthly cap and the promotions in force; how a
 * check-in moves a streak; whether a welcome task is still due. No I/O:
 * days arrive as day numbers in the tenant's time zone (days since
 * 1970-01-01 of the local calendar date; activities.c asks PostgreSQL for
 * them, which knows the zones). Unit-tested from tables
 * (tests/unit/test_campaign_activities.c). */
#ifndef TESSERA_CAMPAIGN_RULES_ACTIVITIES_H
#define TESSERA_CAMPAIGN_RULES_ACTIVITIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One activity type's rule (limits: 0 = none). */
struct activity_rule {
    int64_t points;
    int64_t per_day, per_week, per_month;
};

/* Activities of the same type and member that already earned, in the
 * local day, ISO week and calendar month of this one; and the activity
 * points (activities and streaks) granted in that month. */
struct activity_counts {
    int64_t day, week, month;
    int64_t month_points;
};

enum activity_outcome {
    ACTIVITY_EARNED = 0,
    ACTIVITY_NO_POINTS,   /* the rule gives none */
    ACTIVITY_DAY_LIMIT,   /* per_day reached */
    ACTIVITY_WEEK_LIMIT,  /* per_week reached */
    ACTIVITY_MONTH_LIMIT, /* per_month reached */
    ACTIVITY_CAPPED,      /* the monthly cap leaves nothing */
};

/* The points one activity earns, into *points:
 *   0 when the rule gives none or a limit is reached (limits count the
 *   type's activities that earned: the n-th of a day earns when n <=
 *   per_day);
 *   else points x multiplier_bp / 10000 (rounded down), cut to what the
 *   monthly cap leaves (cap 0: none); nothing left is ACTIVITY_CAPPED. */
enum activity_outcome rules_activity_points(const struct activity_rule *r,
                                            const struct activity_counts *c, int64_t multiplier_bp,
                                            int64_t monthly_cap, int64_t *points)
    __attribute__((warn_unused_result));

/* Points cut to what a monthly cap leaves: min(points, cap - used), not
 * below 0; cap 0 means none. */
int64_t rules_activity_capped(int64_t points, int64_t monthly_cap, int64_t month_points);

/* A member's run of check-in days: the last local day with a check-in
 * and how many consecutive days end there (0: none yet). */
struct check_in_streak {
    int64_t last_day;
    int64_t length;
};

/* Moves s by a check-in on local day `day`: the same day changes nothing,
 * the next day lengthens the run, a later day (one missed day or more)
 * starts a new run of 1; a day before last_day (a late report) changes
 * nothing. True when this check-in made the run reach a multiple of
 * streak_days (the streak bonus is due; streak_days 0: never). */
bool rules_streak_check_in(struct check_in_streak *s, int64_t day, int64_t streak_days);

/* A promotion as the rule reads it (strings borrowed). */
struct promotion_rule {
    int64_t multiplier_bp;
    int day_of_month;       /* 1..31, 0: every day */
    int64_t from_us, to_us; /* 0: open */
    const char *const *categories;
    size_t category_count; /* 0: all */
    const char *const *branches;
    size_t branch_count; /* 0: all */
    bool activities, purchases;
};

/* What is being multiplied: an activity (category = its type) or a
 * purchase (categories = its items'), at a time, a local day of month
 * and a branch. */
struct promotion_target {
    bool purchase;
    int64_t at_us;
    int day_of_month;
    const char *branch;
    const char *const *categories;
    size_t category_count;
};

/* The largest multiplier_bp of the promotions in force for t, or 10000
 * (x1) when none is. A promotion with categories applies when one of
 * t's categories is listed. */
int64_t rules_promotion_multiplier(const struct promotion_rule *p, size_t n,
                                   const struct promotion_target *t);

/* Is an activity at occurred_us still inside the welcome month of a
 * member registered at registered_us (within `days` days after it)? */
bool rules_welcome_due(int64_t registered_us, int64_t occurred_us, int64_t days);

/* A static word for logs and the activities table. */
const char *rules_activity_outcome_text(enum activity_outcome o);

#endif
