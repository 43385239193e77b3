/* The member's tier in the Redis member-state cache: a hash of its own
 * per member, "tessera:<tenant>:member:<member>:tier", with fields name,
 * rank, discount_bp, points_multiplier_bp and version. Only tiering writes
 * it (after commit, versioned by the member's tier version: a late write
 * never undoes a newer one), beside the ledger's balances hash, so the two
 * writers never touch each other's fields. A hash whose name is "" says
 * "no tier" (version 0). Flushing it is always safe: readers fall back to
 * tiering.read_member_tiers. */
#ifndef TESSERA_CACHE_TIER_H
#define TESSERA_CACHE_TIER_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

#define CACHE_TIER_ID_MAX   128 /* tenant and member ids (EVENT_ID_FIELD_MAX) */
#define CACHE_TIER_NAME_MAX 64
/* What a reader asks for (HMGET), in this order. */
#define CACHE_TIER_FIELDS "name rank discount_bp points_multiplier_bp version"

struct cache_tier {
    char tenant_id[CACHE_TIER_ID_MAX];
    char member_id[CACHE_TIER_ID_MAX];
    char name[CACHE_TIER_NAME_MAX + 1]; /* "": no tier */
    int32_t rank;
    int64_t discount_bp;          /* share of the price paid: 8500 = 85% */
    int64_t points_multiplier_bp; /* 10000 = x1 */
    int64_t version;              /* the member's tier version; 0: never had one */
};

/* Writes the key of a member's tier hash; -1 when it does not fit. */
int cache_tier_key(char *out, size_t out_len, const char *tenant_id, const char *member_id);

/* ---- blocking, for consumer threads (tiering) and tests ---- */
/* Pipelines one versioned write per element (one round trip). Returns the
 * number of hashes replaced, or -1 with err (the caller reconnects). */
int cache_put_tiers(redisContext *rc, const struct cache_tier *items, size_t count, char *err,
                    size_t err_len);
/* 1 hit (out filled, ids kept), 0 miss, -1 error. */
int cache_get_tier(redisContext *rc, const char *tenant_id, const char *member_id,
                   struct cache_tier *out);

/* ---- asynchronous, for the ingest loop ---- */
/* status: 1 hit (t lives during the call), 0 miss, -1 error or down. */
typedef void (*cache_tier_cb)(void *arg, int status, const struct cache_tier *t);
/* Calls cb on the loop exactly once (never inside this call). */
void cache_async_get_tier(struct cache_async *c, const char *tenant_id, const char *member_id,
                          cache_tier_cb cb, void *arg);

#endif
