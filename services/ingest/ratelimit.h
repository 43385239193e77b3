/* Token-bucket rate limits per API key and per client address, kept in
 * this ingest instance's memory: N instances behind a load balancer allow
 * up to N times the configured rate (operators divide accordingly). Local
 * buckets cost no round trip on every request and keep working when Redis
 * is down; the trade-off is documented in docs/security.md (Abuse limits).
 *
 * Memory is bounded: a fixed table of buckets, found by hashing the name
 * and probing a few slots. A full probe window evicts a bucket that has
 * refilled (no state lost) or else the least recently used one, which then
 * starts again with a full burst. No I/O here: unit-tested. */
#ifndef TESSERA_INGEST_RATELIMIT_H
#define TESSERA_INGEST_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATE_NAME_MAX  64 /* "key:<key id>" or "ip:<address>" */
#define RATE_PROBE_MAX 8
#define RATE_PER_S_MAX 1000000

struct rate_limit {
    int64_t per_s; /* tokens added per second, >= 1 */
    int64_t burst; /* bucket size, >= 1 */
};

struct rate_bucket {
    char name[RATE_NAME_MAX];
    int64_t milli_tokens; /* 1000 per request */
    int64_t updated_ms;
};

struct rate_limiter {
    struct rate_bucket *buckets;
    size_t count; /* a power of two */
};

/* count is rounded up to a power of two. 0, or -1 when out of memory. */
int rate_limiter_init(struct rate_limiter *rl, size_t count) __attribute__((warn_unused_result));
void rate_limiter_free(struct rate_limiter *rl);

/* Takes one token from name's bucket at time now_ms (monotonic). True
 * when allowed; false with *retry_after_s (>= 1) when the bucket is empty. */
bool rate_limit_take(struct rate_limiter *rl, const char *name, struct rate_limit limit,
                     int64_t now_ms, int *retry_after_s);

#endif
