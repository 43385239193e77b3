/* The tier ladder as the API takes it (tier_ladder.c): validation and the
 * normalized configuration. Limits are named here and in docs/tiers.md. */
#ifndef TESSERA_INGEST_TIER_LADDER_H
#define TESSERA_INGEST_TIER_LADDER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "events/codec.h"

#include "../tiering/rules.h"
#include "http/validate.h"

#define TIER_THRESHOLD_MAX     INT64_C(100000000000000) /* minor units: 1e12 yuan */
#define TIER_RANK_MAX          1000
#define TIER_MULTIPLIER_MAX    100000 /* x10 */
#define TIER_GIFT_POINTS_MAX   10000000
#define TIER_ENTITLEMENTS_MAX  32
#define TIER_RESOURCE_MAX      128 /* bytes of a resource pattern */
#define TIER_SKUS_MAX          32
#define TIER_SKU_MAX           64
#define TIER_REFERRALS_MAX     1000
#define TIER_YEARS_MAX         50
#define TIER_REVIEW_MONTHS_MAX 60
#define TIER_DAYS_MAX          365

/* The body checked into v (every bad field named, as
 * "levels[1].thresholds.lifetime"); the normalized configuration (levels
 * by rank, defaults filled in; new reference) or NULL. */
json_t *tier_ladder_normalize(json_t *body, struct validation *v);

/* The normalized configuration's levels as tiering's rules read them;
 * returns their number (at most TIER_LEVELS_MAX). */
size_t tier_ladder_levels(json_t *config, struct tier_level *out);

/* The TierLadderChanged event (change id change_id) of a normalized
 * configuration, in the envelope meta describes; *occurred_at_us is its
 * time (the change's effective time). NULL when it does not encode (over
 * EVENT_ENCODED_MAX). The PUT and a new tenant's template both send it. */
uint8_t *tier_ladder_encode(struct event_meta *meta, const char *change_id, json_t *config,
                            int32_t utc_offset_minutes, int64_t *occurred_at_us, size_t *len);

#endif
