/* The whole member view from Redis in ONE round trip (ingest's read path,
 * GET /v1/members/{id}): four commands pipelined on the ingest loop, each
 * on a hash its writer owns:
 *
 *   ...:member:<m>:view      ingest: the profile (sealed) and the coupons
 *   ...:member:<m>:balances  the ledger (cache.h)
 *   ...:member:<m>:tier      tiering (cache_tier.h)
 *   ...:member:<m>:cards     the ledger (cache.h)
 *
 * The view hash is ingest's own, fields:
 *   "profile"  "<profile_version>|<key_version>|<sealed bytes>", or the
 *              tombstone "<profile_version>|" a writer leaves after its
 *              commit; a fill replaces only an older version (or the
 *              tombstone of its own version), so a reader that read
 *              PostgreSQL before a change can never put the old profile
 *              back (the version is ingest.members.profile_version).
 *   "coupons"  the member's coupons as JSON text (an array), filled only
 *              while "#cgen" still holds the generation the reader saw
 *              before it read PostgreSQL;
 *   "#cgen"    bumped (and "coupons" dropped) by ingest for every ledger
 *              verdict that touches a coupon of the member.
 * The hash expires CACHE_VIEW_TTL_S after its last write: that bounds what
 * a lost invalidation (Redis away at that moment, a crash between a commit
 * and its invalidation) can leave behind. The profile is never in clear
 * text here: the caller seals it (services/ingest/profile_cache.c). */
#ifndef TESSERA_CACHE_VIEW_H
#define TESSERA_CACHE_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "cache/cache_tier.h"
#include <hiredis/hiredis.h>

#define CACHE_VIEW_TTL_S      3600
#define CACHE_VIEW_VALUE_MAX  (64 * 1024) /* a profile or coupon list larger is not cached */
#define CACHE_VIEW_GEN_MAX    24
#define CACHE_VIEW_PROFILE    "profile"
#define CACHE_VIEW_COUPONS    "coupons"
#define CACHE_VIEW_COUPON_GEN "#cgen"

/* What the round trip found; each part: 1 hit, 0 miss, -1 Redis failed. */
struct cache_member_view {
    int profile_status;
    int64_t profile_version; /* of a hit or a tombstone (0: neither) */
    char *profile;           /* a hit: "<key_version>|<sealed bytes>" part, malloc'ed */
    size_t profile_len;
    int coupons_status;
    char *coupons;                       /* a hit: JSON text, malloc'ed, NUL-terminated */
    char coupon_gen[CACHE_VIEW_GEN_MAX]; /* "" when absent; what a fill must still find */
    int balances_status;
    struct cache_balances balances;
    int tier_status;
    struct cache_tier tier;
    int cards_status;
    struct cache_cards_read *cards; /* malloc'ed; read it only on a hit */
};

/* Frees what a view holds (not v itself). */
void cache_member_view_clear(struct cache_member_view *v);

/* Called exactly once, on the loop; takes ownership of v (free it with
 * cache_member_view_clear, then free()). */
typedef void (*cache_view_cb)(void *arg, struct cache_member_view *v);
void cache_async_get_member_view(struct cache_async *c, const char *tenant_id,
                                 const char *member_id, cache_view_cb cb, void *arg);

/* Fills the view hash after a miss (fire and forget: a failure only
 * leaves a miss). profile (NULL: leave it) is "<key_version>|<sealed>"
 * of profile_version; coupons (NULL: leave them) are written only while
 * "#cgen" still reads coupon_gen. */
void cache_async_fill_view(struct cache_async *c, const char *tenant_id, const char *member_id,
                           int64_t profile_version, const char *profile, size_t profile_len,
                           const char *coupons, const char *coupon_gen);

/* The profile part of the same fill, blocking (tests and tools): 1 written,
 * 0 refused (the hash holds a newer version), -1 Redis failed. */
int cache_fill_view_profile(redisContext *rc, const char *tenant_id, const char *member_id,
                            int64_t profile_version, const char *profile, size_t profile_len);

/* Invalidations, after the writer's commit. done (may be NULL) is called
 * once on the loop with true when Redis took it. */
typedef void (*cache_view_done_cb)(void *arg, bool ok);
/* Leaves the tombstone of profile_version (the version the commit wrote). */
void cache_async_forget_profile(struct cache_async *c, const char *tenant_id, const char *member_id,
                                int64_t profile_version, cache_view_done_cb done, void *arg);
/* Bumps "#cgen" and drops the cached coupons. */
void cache_async_forget_coupons(struct cache_async *c, const char *tenant_id, const char *member_id,
                                cache_view_done_cb done, void *arg);

/* Read-through fills of the other writers' hashes, through their own
 * versioned scripts, so a fill can never replace a newer write:
 * the tier (as tiering would write it: version 0 and name "" for "no
 * tier"), and the card count 0 of a member without cards ("#count" only
 * grows). Fire and forget. */
void cache_async_put_tier(struct cache_async *c, const struct cache_tier *t);
void cache_async_put_no_cards(struct cache_async *c, const char *tenant_id, const char *member_id);

/* The profile field's rule, in C beside the script (unit-tested): does
 * an incoming value of version v (a tombstone when tombstone) replace the
 * cached value (NULL: none)? */
bool cache_view_profile_replaces(const char *cached, size_t cached_len, int64_t v, bool tombstone);

#endif
