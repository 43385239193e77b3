/* Tiering's pure rules: which level of a tenant's ladder a member's spend
 * qualifies for, whether that moves the member, and the calendar-year
 * spend. No I/O; unit-tested from tables (tests/unit/test_tiering_rules.c).
 *
 * Today tiers only go up, at once, when a purchase lifts the spend over a
 * level (the ARCHITECTURE's "upgrade immediately"). Downgrades at the end
 * of a qualifying period are a later step: it will call tier_qualify with
 * the period's spend and decide with its own policy instead of
 * tier_is_upgrade. */
#ifndef TESSERA_TIERING_RULES_H
#define TESSERA_TIERING_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIER_LEVELS_MAX 32 /* levels of one tenant's ladder */
#define TIER_NAME_MAX   64 /* bytes of a level's name */

struct tier_level {
    int32_t rank; /* higher is better; unique per tenant */
    char name[TIER_NAME_MAX + 1];
    int64_t min_cumulative_spend; /* lifetime spend that reaches it; < 0: none */
    int64_t min_annual_spend;     /* calendar-year spend that reaches it; < 0: none */
    int64_t min_rolling_spend;    /* spend of the last 12 months that reaches it; < 0: none */
    bool invitation_only;         /* never reached by spend */
    int64_t discount_bp;          /* share of the price paid: 8500 = 85% */
    int64_t points_multiplier_bp; /* 10000 = x1 */
    int32_t referrals_required;   /* successful referrals that reach it; 0: not that way */
    int32_t membership_years;     /* years of membership that reach it; 0: not that way */
};

/* A member's qualifying spend per window (rules_spend.h): lifetime, the
 * calendar year `year` (in the tenant's time zone) and the rolling twelve
 * months, all net of refunds. */
struct tier_spend {
    int64_t lifetime;
    int64_t annual;
    int32_t year; /* 0: nothing counted yet */
    int64_t rolling;
};

enum tier_reason {
    TIER_REASON_NONE,
    TIER_REASON_CUMULATIVE,
    TIER_REASON_ANNUAL,
    TIER_REASON_ROLLING
};

/* "cumulative_spend", "annual_spend", "rolling_spend" (what
 * TierChanged.reason says). */
const char *tier_reason_name(enum tier_reason r);

/* True when a member holding a level for `reason` (a TierChanged reason)
 * holds it by spend: spend and refunds may move it. Invitations and
 * overrides are not moved by spend (until they end). */
bool tier_reason_by_spend(const char *reason);

/* The highest-ranked level the spend reaches: any window's spend at least
 * that window's threshold (a level without a threshold for a window is not
 * reached through it). Invitation-only levels are never reached. NULL when
 * none is reached (or the ladder is empty). *why says which threshold did
 * it (cumulative when both). Levels may come in any order. */
const struct tier_level *tier_qualify(const struct tier_level *ladder, size_t count,
                                      const struct tier_spend *spend, enum tier_reason *why);

/* The upgrade policy: true when qualified (may be NULL) ranks above the
 * member's current tier (has_current false: none), so the member moves
 * to it now. A member never moves down here, nor off an invitation-only
 * tier by spend. */
bool tier_is_upgrade(bool has_current, int32_t current_rank, const struct tier_level *qualified);

/* The highest level (not invitation-only) whose referrals_required the
 * member's successful referrals reach; NULL: none. */
const struct tier_level *tier_by_referrals(const struct tier_level *ladder, size_t count,
                                           int64_t referrals);

/* The highest level (not invitation-only) whose membership_years the
 * member's full years of membership reach; NULL: none. */
const struct tier_level *tier_by_membership(const struct tier_level *ladder, size_t count,
                                            int32_t years);

/* Full years from registered_us to now_us in a zone utc_offset_minutes
 * east of UTC (an anniversary counts from the same local date and time;
 * 29 February from 28 February). */
int32_t tier_membership_years(int64_t registered_us, int64_t now_us, int32_t utc_offset_minutes);

/* The level to which a purchase of a package moves the member: the
 * highest level whose upgrade SKUs (skus[i] for ladder[i], names joined by
 * TIER_SKU_SEPARATOR) name one of the bought items; NULL: none. */
#define TIER_SKU_SEPARATOR '\x1f'
const struct tier_level *tier_by_package(const struct tier_level *ladder, const char *const *skus,
                                         size_t count, const char *const *bought, size_t n_bought);

/* The calendar year of at_us (microseconds since the epoch, UTC) in a zone
 * utc_offset_minutes east of UTC. */
int32_t tier_local_year(int64_t at_us, int32_t utc_offset_minutes);

#endif
