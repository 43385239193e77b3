/* After commit, the tiers of the batch's members go to Redis in one
 * pipelined round trip (cache_tier.h): the current tier, or "no tier" at
 * version 0, so ingest finds every member that bought something in the
 * cache. Versioned: a write never replaces a newer one, so writing an
 * unchanged tier again is harmless. The cache is only a cache: a failed
 * write is logged, the connection re-made, and the writes kept (bounded)
 * for after the next batch; ingest reads tiering.read_member_tiers on a miss. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "log/log.h"
#include "tiering.h"

#define CACHE_TIMEOUT_MS 1000

bool tiering_cache_ensure(struct tiering_ctx *t)
{
    if (t->rc)
        return true;
    char err[256];
    t->rc = cache_connect(t->redis_host, t->redis_port, CACHE_TIMEOUT_MS, err, sizeof(err));
    if (!t->rc)
        log_fields(LOG_WARN, "redis unreachable; tiers not cached", "error", err, NULL);
    atomic_store(&t->redis_ok, t->rc != NULL);
    return t->rc != NULL;
}

static void keep_for_retry(struct tiering_ctx *t, const struct cache_tier *items, size_t n)
{
    if (!t->unsynced) /* made the first time Redis fails, kept after */
        t->unsynced = calloc(TIERING_CACHE_RETRY_MAX, sizeof(*t->unsynced));
    size_t room = t->unsynced ? TIERING_CACHE_RETRY_MAX - t->unsynced_count : 0;
    if (n > room) {
        char dropped[24];
        snprintf(dropped, sizeof(dropped), "%zu", n - room);
        log_fields(LOG_WARN,
                   "cache writes dropped: members keep an older cached tier until "
                   "their next purchase",
                   "dropped", dropped, NULL);
        n = room;
    }
    if (n == 0)
        return;
    memcpy(t->unsynced + t->unsynced_count, items, n * sizeof(*items));
    t->unsynced_count += n;
}

static void member_item(const struct tiering_member *m, struct cache_tier *c)
{
    *c = (struct cache_tier){.rank = m->has_tier ? m->tier.rank : 0,
                             .discount_bp = m->has_tier ? m->tier.discount_bp : 0,
                             .points_multiplier_bp = m->has_tier ? m->tier.points_multiplier_bp : 0,
                             .version = m->version};
    snprintf(c->tenant_id, sizeof(c->tenant_id), "%s", m->tenant_id);
    snprintf(c->member_id, sizeof(c->member_id), "%s", m->member_id);
    snprintf(c->name, sizeof(c->name), "%s", m->has_tier ? m->tier.name : "");
}

/* pipeline after_commit, on the pipeline thread. */
void tiering_after_commit(void *ctx, struct pipeline_batch *b)
{
    struct tiering_ctx *t = ctx;
    atomic_fetch_add(&t->purchases_counted, t->batch_counted);
    atomic_fetch_add(&t->duplicates_ignored, t->batch_duplicates);
    atomic_fetch_add(&t->tier_changes, t->batch_changes);
    tiering_skus_sync(t);
    size_t n = 0;
    for (size_t i = 0; i < t->member_count; i++)
        n += t->members[i].spent || t->members[i].tier_changed;
    if (n == 0 && t->unsynced_count == 0)
        return;
    struct cache_tier *items = calloc(n + t->unsynced_count, sizeof(*items));
    if (!items)
        return;
    if (t->unsynced_count > 0)
        memcpy(items, t->unsynced, t->unsynced_count * sizeof(*items));
    size_t count = t->unsynced_count;
    t->unsynced_count = 0;
    for (size_t i = 0; i < t->member_count; i++)
        if (t->members[i].spent || t->members[i].tier_changed)
            member_item(&t->members[i], &items[count++]);
    char err[256];
    for (size_t done = 0; done < count;) {
        size_t chunk = count - done < 4096 ? count - done : 4096;
        if (!tiering_cache_ensure(t) ||
            cache_put_tiers(t->rc, items + done, chunk, err, sizeof(err)) < 0) {
            if (t->rc) {
                log_fields(LOG_WARN, "redis tier write failed; reconnecting", "error", err, NULL);
                redisFree(t->rc);
                t->rc = NULL;
                atomic_store(&t->redis_ok, false);
            }
            keep_for_retry(t, items + done, count - done);
            break;
        }
        done += chunk;
    }
    free(items);
}
