/* Shared by cache.c and cache_async.c only. */
#ifndef TESSERA_CACHE_INTERNAL_H
#define TESSERA_CACHE_INTERNAL_H

#include <hiredis/hiredis.h>

#include "cache/cache.h"

/* Reads an HMGET points sv_principal sv_bonus version reply into the
 * numeric fields of out (other fields untouched). 1 hit, 0 miss, -1 bad or
 * missing reply. */
int cache_balances_from_reply(const redisReply *reply, struct cache_balances *out);

/* Observes one Redis round trip in tessera_redis_command_duration_seconds. */
void cache_observe(const char *op, double seconds);

#endif
