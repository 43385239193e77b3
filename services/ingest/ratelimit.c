/* Token buckets in a bounded table (see ratelimit.h). */
#include "ratelimit.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MILLI 1000

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

int rate_limiter_init(struct rate_limiter *rl, size_t count)
{
    size_t n = 1;
    while (n < count)
        n <<= 1;
    rl->buckets = calloc(n, sizeof(*rl->buckets));
    rl->count = rl->buckets ? n : 0;
    return rl->buckets ? 0 : -1;
}

void rate_limiter_free(struct rate_limiter *rl)
{
    free(rl->buckets);
    rl->buckets = NULL;
    rl->count = 0;
}

/* The bucket's tokens at now_ms, refilled and capped at the burst. */
static int64_t refilled(const struct rate_bucket *b, struct rate_limit limit, int64_t now_ms)
{
    int64_t elapsed = now_ms > b->updated_ms ? now_ms - b->updated_ms : 0;
    int64_t cap = limit.burst * MILLI;
    /* per_s tokens a second = per_s milli-tokens a millisecond */
    if (elapsed >= cap / limit.per_s + 1)
        return cap;
    int64_t t = b->milli_tokens + elapsed * limit.per_s;
    return t > cap ? cap : t;
}

/* The slot for name: its own, an empty one, a refilled one, or the least
 * recently used of the probe window (reset to a full bucket). */
static struct rate_bucket *slot_for(struct rate_limiter *rl, const char *name,
                                    struct rate_limit limit, int64_t now_ms)
{
    size_t mask = rl->count - 1, start = name_hash(name) & mask;
    struct rate_bucket *spare = NULL;
    int spare_rank = 0;
    for (size_t i = 0; i < RATE_PROBE_MAX; i++) {
        struct rate_bucket *b = &rl->buckets[(start + i) & mask];
        if (b->name[0] && strcmp(b->name, name) == 0)
            return b;
        /* 0 empty, 1 refilled (nothing to lose), 2 in use */
        int rank = !b->name[0] ? 0 : refilled(b, limit, now_ms) == limit.burst * MILLI ? 1 : 2;
        if (!spare || rank < spare_rank ||
            (rank == 2 && spare_rank == 2 && b->updated_ms < spare->updated_ms)) {
            spare = b;
            spare_rank = rank;
        }
    }
    assert(spare);
    snprintf(spare->name, sizeof(spare->name), "%s", name);
    spare->milli_tokens = limit.burst * MILLI;
    spare->updated_ms = now_ms;
    return spare;
}

bool rate_limit_take(struct rate_limiter *rl, const char *name, struct rate_limit limit,
                     int64_t now_ms, int *retry_after_s)
{
    assert(rl->count > 0 && limit.per_s >= 1 && limit.burst >= 1);
    /* Names are cut to what a bucket stores, so a long name finds its own
     * bucket again (names are key ids and addresses: far shorter). */
    char cut[RATE_NAME_MAX];
    snprintf(cut, sizeof(cut), "%s", name);
    struct rate_bucket *b = slot_for(rl, cut, limit, now_ms);
    b->milli_tokens = refilled(b, limit, now_ms);
    b->updated_ms = now_ms;
    if (b->milli_tokens >= MILLI) {
        b->milli_tokens -= MILLI;
        return true;
    }
    int64_t wait_ms = (MILLI - b->milli_tokens + limit.per_s - 1) / limit.per_s;
    *retry_after_s = (int)((wait_ms + 999) / 1000);
    if (*retry_after_s < 1)
        *retry_after_s = 1;
    return false;
}
