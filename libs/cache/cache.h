/* The Redis member-state cache. Balances live in a hash per member,
 * "tessera:<tenant>:member:<member>:balances" with fields points,
 * sv_principal, sv_bonus, version and points_pending (a hash without
 * points_pending, written before it was cached, reads as a miss). Writes
 * go through a Lua script that only replaces an older version, so a late
 * write never undoes a newer one.
 * The cache can be flushed at any time: readers fall back to PostgreSQL. */
#ifndef TESSERA_CACHE_H
#define TESSERA_CACHE_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_KEY_MAX 256

struct cache_balances {
    const char *tenant_id;
    const char *member_id;
    int64_t points;
    int64_t sv_principal;
    int64_t sv_bonus;
    int64_t version;
    int64_t points_pending;
};

/* Writes the key of a member's balances hash; -1 when it does not fit. */
int cache_balances_key(char *out, size_t out_len, const char *tenant_id, const char *member_id);

/* ---- blocking, for consumer threads ---- */
/* Connects with a timeout on connect and on every command. NULL with err. */
redisContext *cache_connect(const char *host, int port, int timeout_ms, char *err, size_t err_len);
/* Pipelines one versioned write per element (one round trip for all).
 * Returns the number of hashes actually replaced, or -1 with err (the
 * caller reconnects; the cache is only a cache). */
int cache_put_balances(redisContext *rc, const struct cache_balances *items, size_t count,
                       char *err, size_t err_len);
/* 1 hit (tenant_id/member_id of out are left untouched), 0 miss, -1 error. */
int cache_get_balances(redisContext *rc, const char *tenant_id, const char *member_id,
                       struct cache_balances *out);

/* ---- asynchronous, for the ingest loop ---- */
struct cache_async;
/* status: 1 hit, 0 miss, -1 error (not connected, timeout). */
typedef void (*cache_balances_cb)(void *arg, int status, const struct cache_balances *b);

/* Connects on base and reconnects with back-off when the link drops. */
struct cache_async *cache_async_new(struct event_base *base, const char *host, int port,
                                    char *err, size_t err_len);
/* Calls cb on the loop exactly once (immediately with -1 when down). */
void cache_async_get_balances(struct cache_async *c, const char *tenant_id, const char *member_id,
                              cache_balances_cb cb, void *arg);
bool cache_async_connected(const struct cache_async *c);
void cache_async_free(struct cache_async *c);

#endif
