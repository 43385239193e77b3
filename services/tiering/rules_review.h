/* The review of a tier at the end of its qualifying period: when the
 * period ends, when the warning and the review are due, what the member
 * must still spend to keep the level, and the verdict. Pure rules, tested
 * from tables in tests/unit/test_tiering_review.c.
 *
 * A level is held for review_months from when it was reached (or last
 * kept), in the tenant's calendar (31 January + 1 month = 28/29 February).
 * The review is due grace_days after the period ends; the warning
 * warning_days before the period ends. At the review the spend counts as
 * of the review time (rules_spend.h windows seen from then): the member
 * keeps the level when the spend still reaches it (or a higher one), and
 * else moves to the level it reaches (or none). */
#ifndef TESSERA_TIERING_RULES_REVIEW_H
#define TESSERA_TIERING_RULES_REVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rules.h"

#define TIER_US_PER_DAY (INT64_C(86400) * 1000000)

/* start_us + months in the zone's calendar, same local time of day. */
int64_t tier_period_end(int64_t start_us, int32_t months, int32_t utc_offset_minutes);

static inline int64_t tier_warning_at(int64_t period_end_us, int32_t warning_days)
{
    return period_end_us - (int64_t)warning_days * TIER_US_PER_DAY;
}

static inline int64_t tier_review_at(int64_t period_end_us, int32_t grace_days)
{
    return period_end_us + (int64_t)grace_days * TIER_US_PER_DAY;
}

/* What the member must still spend to keep `held` with `spend` (as of the
 * review): the least shortfall over the windows the level has a threshold
 * for (0: it is kept already), and which window (*window: "lifetime",
 * "calendar_year", "rolling_12_months"). -1 when no spend keeps it (no
 * threshold: invitation-only, or reached by another way). */
int64_t tier_needed_to_keep(const struct tier_level *held, const struct tier_spend *spend,
                            const char **window);

enum tier_review_outcome { TIER_REVIEW_KEEP, TIER_REVIEW_DOWN };

/* The review of a member holding rank held_rank: KEEP when the spend
 * reaches that rank or above, else DOWN to *to (NULL: no tier). */
enum tier_review_outcome tier_review(const struct tier_level *ladder, size_t count,
                                     const struct tier_spend *spend, int32_t held_rank,
                                     const struct tier_level **to);

/* The ladder's level of rank (NULL: the ladder has none). */
const struct tier_level *tier_level_of_rank(const struct tier_level *ladder, size_t count,
                                            int32_t rank);

#endif
