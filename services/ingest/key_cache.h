/* A per-instance cache of API keys by the SHA-256 of the key: what a
 * request's key grants (known keys, LRU, bounded) and which keys are not
 * valid (unknown, revoked or expired; a short TTL, bounded), so neither a
 * good key nor a flood of bad ones costs a PostgreSQL read per request.
 *
 * Pure: no I/O, the clock is passed in; every call runs on ingest's loop.
 * What keeps it true is outside: key_listen.c forgets a key when
 * PostgreSQL notifies a change of its row, and disables (empties) the
 * whole cache while it is not listening. A lookup that raced a change is
 * not stored: callers take key_cache_generation() before their read and
 * hand it to the put, which is dropped if anything was forgotten since. */
#ifndef TESSERA_INGEST_KEY_CACHE_H
#define TESSERA_INGEST_KEY_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caller.h"

#define KEY_CACHE_KNOWN_MAX_DEFAULT 100000
#define KEY_CACHE_KNOWN_MAX_LIMIT   1000000
#define KEY_CACHE_UNKNOWN_MAX       10000 /* bad keys remembered at once */
#define KEY_CACHE_UNKNOWN_TTL_MS    5000  /* how long a bad key is remembered */
#define KEY_CACHE_HASH_HEX          65    /* 64 hex digits of SHA-256 and NUL */

/* What a valid key grants: the caller it makes and its own rate. */
struct key_grant {
    struct caller caller;
    long long rate_limit_per_s; /* 0: the instance default */
    int64_t expires_at_ms;      /* Unix ms; 0: never */
};

enum key_cache_result {
    KEY_CACHE_MISS,    /* not cached: read PostgreSQL */
    KEY_CACHE_KNOWN,   /* a valid key: *grant filled */
    KEY_CACHE_UNKNOWN, /* known not to be valid (or expired by now): 401 */
};

struct key_cache;

/* known_max entries for valid keys (>= 1), KEY_CACHE_UNKNOWN_MAX for bad
 * ones. Starts disabled. NULL when out of memory. Free with key_cache_free. */
struct key_cache *key_cache_new(size_t known_max);
void key_cache_free(struct key_cache *c);

/* Looks hash_hex up at now_ms (Unix ms). A known key past its expires_at
 * is dropped and answered KEY_CACHE_UNKNOWN: expiry holds by the clock on
 * every hit. Counts a hit or a miss. */
enum key_cache_result key_cache_get(struct key_cache *c, const char *hash_hex, int64_t now_ms,
                                    struct key_grant *grant);

/* Bumped by every forget, clear, enable and disable. */
uint64_t key_cache_generation(const struct key_cache *c);
/* Stores what PostgreSQL answered for a lookup started at generation;
 * ignored when the cache is disabled or the generation moved on. The
 * oldest entry of its kind makes room when full. */
void key_cache_put_known(struct key_cache *c, const char *hash_hex, const struct key_grant *grant,
                         uint64_t generation);
void key_cache_put_unknown(struct key_cache *c, const char *hash_hex, int64_t now_ms,
                           uint64_t generation);

/* The key's row changed (revoked, made, altered, deleted): drop it. */
void key_cache_forget(struct key_cache *c, const char *hash_hex);
/* Drops everything (a TRUNCATE of api_keys). */
void key_cache_clear(struct key_cache *c);
/* Enabled only while changes are heard; disabling empties the cache. */
void key_cache_set_enabled(struct key_cache *c, bool enabled);
bool key_cache_enabled(const struct key_cache *c);

struct key_cache_stats {
    long long hits, misses, forgotten, resets;
    size_t known, unknown; /* entries now */
};
void key_cache_stats(const struct key_cache *c, struct key_cache_stats *out);

#endif
