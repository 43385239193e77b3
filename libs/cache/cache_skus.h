/* What a member bought, by SKU, in the Redis member-state cache, for the
 * entitlement check (docs/entitlements.md): a hash per member,
 * "tessera:<tenant>:member:<member>:skus", one field per SKU the member
 * holds (a purchase carrying it that was not refunded) whose value is the
 * latest such purchase's time in µs, plus "#count", the number of SKUs.
 * Only tiering writes it, after commit, and always the member's whole set
 * read back from its table in the batch's transaction (one script:
 * delete, then set), so a hash that has "#count" is complete; a hash
 * without it (flushed) is a miss and readers ask tiering.read_member_skus.
 * A member past CACHE_SKUS_PER_MEMBER_MAX is cached as "#count" -1: always
 * a miss. */
#ifndef TESSERA_CACHE_SKUS_H
#define TESSERA_CACHE_SKUS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

#define CACHE_SKUS_PER_MEMBER_MAX 200 /* more: "#count" -1, readers ask PostgreSQL */
#define CACHE_SKU_MAX             256 /* bytes of one SKU (64 characters of UTF-8) */
#define CACHE_SKUS_COUNT_FIELD    "#count"

/* One member's SKUs for one write; skus[i] was last bought at last_us[i].
 * n may be 0 (the member holds none: all refunded). Borrowed pointers. */
struct cache_member_skus {
    const char *tenant_id;
    const char *member_id;
    const char *const *skus;
    const int64_t *last_us;
    size_t n;
};

/* Writes the key of a member's SKU hash; -1 when it does not fit. */
int cache_skus_key(char *out, size_t out_len, const char *tenant_id, const char *member_id);

/* Pipelines one whole-set write per member (one round trip). 0, or -1
 * with err (the caller reconnects; the cache is only a cache). */
int cache_put_skus(redisContext *rc, const struct cache_member_skus *items, size_t count, char *err,
                   size_t err_len) __attribute__((warn_unused_result));

#define CACHE_SKUS_ASK_MAX 64 /* SKUs one lookup asks about */

/* What a reader asks: the latest purchase time of each of skus[0..n),
 * from an HGETALL reply of the hash, into last_us[] (0: not held).
 * 1 complete hash, 0 miss (absent, flushed, too many SKUs), -1 bad reply. */
int cache_skus_lookup(const redisReply *reply, const char *const *skus, size_t n, int64_t *last_us);

/* blocking, for tests: the same from a fresh HGETALL. */
int cache_get_skus(redisContext *rc, const char *tenant_id, const char *member_id,
                   const char *const *skus, size_t n, int64_t *last_us);

/* ---- asynchronous, for the ingest loop ----
 * status: 1 complete (last_us[i] 0: skus[i] not held; lives during the
 * call), 0 miss, -1 error or down. */
typedef void (*cache_skus_cb)(void *arg, int status, const int64_t *last_us);
/* Calls cb on the loop exactly once (never inside this call); skus (at
 * most CACHE_SKUS_ASK_MAX) are copied. */
void cache_async_get_skus(struct cache_async *c, const char *tenant_id, const char *member_id,
                          const char *const *skus, size_t n, cache_skus_cb cb, void *arg);

#endif
