/* Short names for the tessera.engage.v1 messages, the activity types the
 * API takes, the seeds' default rules and the bounds of a rule: ingest
 * refuses a rule outside them at the edge (422), the campaign service
 * refuses one that got past (dead letter), so both read them from here. */
#ifndef TESSERA_ENGAGE_TYPES_H
#define TESSERA_ENGAGE_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "tessera/engage/v1/engage.pb-c.h"

typedef Tessera__Engage__V1__ActivityRule ActivityRule;
typedef Tessera__Engage__V1__StreakRule StreakRule;
typedef Tessera__Engage__V1__Promotion Promotion;
typedef Tessera__Engage__V1__BirthdayRule BirthdayRule;
typedef Tessera__Engage__V1__WelcomeRule WelcomeRule;
typedef Tessera__Engage__V1__ActivityRulesChanged ActivityRulesChanged;
typedef Tessera__Engage__V1__ActivityRecorded ActivityRecorded;
typedef Tessera__Engage__V1__MemberBirthdaySet MemberBirthdaySet;

#define ACTIVITY_POINTS_MAX        INT64_C(1000000)    /* one activity's points */
#define ACTIVITY_LIMIT_MAX         INT64_C(100000)     /* per day/week/month */
#define ACTIVITY_MONTHLY_CAP_MAX   INT64_C(1000000000) /* points per member and month */
#define ACTIVITY_STREAK_DAYS_MIN   2
#define ACTIVITY_STREAK_DAYS_MAX   366
#define ACTIVITY_ID_BYTES_MAX      64 /* the caller's activity id (grant ids derive from it) */
#define ACTIVITY_DETAILS_BYTES_MAX 2048
/* Promotions of one tenant's rules: with the 8 activity types' points and
 * limits (32), the streak, cap, birthday and welcome tasks and an earning
 * rule with its exclusions, 64 lets a tenant configure well over 100 rule
 * clauses (issue 12: "a tenant with 100 active rules"); the largest such
 * body (64 promotions of 32 categories and 32 branches, ~50 KiB) still
 * fits the API's 64 KiB body and an event. */
#define PROMOTIONS_MAX              64
#define PROMOTIONS_MAX_TEXT         "64"
#define PROMOTION_MULTIPLIER_BP_MIN INT64_C(10000)  /* x1 */
#define PROMOTION_MULTIPLIER_BP_MAX INT64_C(100000) /* x10 */
#define PROMOTION_LIST_MAX          32              /* categories or branches of one promotion */
#define WELCOME_DAYS_MAX            366
#define WELCOME_DAYS_DEFAULT        30
#define TIME_ZONE_BYTES_MAX         64

/* The activity types, in the order the API lists them, with the seeds'
 * points (comment +5, share +10, course +100, exam +200, profile +100). */
struct activity_default {
    const char *type;
    int64_t points;
};
static const struct activity_default activity_defaults[] = {
    {"check_in", 0},      {"comment", 5},
    {"share", 10},        {"course_completed", 100},
    {"exam_passed", 200}, {"profile_completed", 100},
    {"login", 0},         {"trial_booked", 0},
};
#define ACTIVITY_TYPES_COUNT (sizeof(activity_defaults) / sizeof(activity_defaults[0]))
#define ACTIVITY_TYPES_TEXT                                                                        \
    "check_in, comment, share, course_completed, exam_passed, profile_completed, login, "          \
    "trial_booked"
#define STREAK_DAYS_DEFAULT        7
#define STREAK_POINTS_DEFAULT      50
#define ACTIVITY_TIME_ZONE_DEFAULT "Asia/Shanghai" /* a tenant with no rules stored */

/* The grant ids (EarnPoints command ids), derived from the cause and the
 * rule so that a grant happens once: "act:<member>:<activity id>",
 * "act:<member>:<activity id>:streak", "act:<member>:<activity id>:welcome",
 * "birthday:<member>:<year>". */
#define ACTIVITY_GRANT_PREFIX "act:"

#endif
