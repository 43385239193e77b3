/* Shared by the cache's own files only. */
#ifndef TESSERA_CACHE_INTERNAL_H
#define TESSERA_CACHE_INTERNAL_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/cache.h"

/* Reads an HMGET points sv_principal sv_bonus version reply into the
 * numeric fields of out (other fields untouched). 1 hit, 0 miss, -1 bad or
 * missing reply. */
int cache_balances_from_reply(const redisReply *reply, struct cache_balances *out);

/* Writes "tessera:<tenant>:member:<member>:<hash>" (the key of one of a
 * member's hashes) into out; -1 when it does not fit CACHE_KEY_MAX. */
int cache_member_key(char *out, size_t out_len, const char *tenant_id, const char *member_id,
                     const char *hash);

/* A reply element holding a decimal int64 (as HMGET returns numbers). */
bool cache_reply_i64(const redisReply *r, int64_t *out);

/* Observes one Redis round trip in tessera_redis_command_duration_seconds. */
void cache_observe(const char *op, double seconds);

/* A raw request on the ingest loop (cache_async.c) for the cache's other
 * hashes (cache_tier.c): cb is called exactly once, on the loop, with the
 * reply (NULL when Redis is down, the reply is late or key is NULL); the
 * reply lives during the call. fmt holds one %s, the key; op names the
 * round trip in the histogram. */
typedef void (*cache_reply_cb)(void *arg, const redisReply *reply);
void cache_async_raw(struct cache_async *c, const char *op, const char *key, const char *fmt,
                     cache_reply_cb cb, void *arg);

/* The same for a command given as argv (binary-safe: values may hold any
 * byte); the strings are copied before the call returns. */
void cache_async_argv(struct cache_async *c, const char *op, int argc, const char **argv,
                      const size_t *argv_len, cache_reply_cb cb, void *arg);

/* Commands sent back to back, one round trip, one timer and one
 * histogram observation for all of them: each command's cb is called
 * exactly once, in order, on the loop (with NULL when Redis is down, the
 * replies are late or a command has argc 0: then none is sent). The
 * strings are copied before the call returns. */
#define CACHE_PIPELINE_MAX 4
struct cache_command {
    int argc;
    const char **argv;
    const size_t *argv_len;
    cache_reply_cb cb;
};
/* One command of a pipeline formatted in RESP by us up to this size. */
#define RESP_COMMAND_MAX_BYTES 1024
/* "*<n>\r\n" or "$<n>\r\n" at most: a prefix, 20 digits, CRLF. */
#define RESP_HEADER_MAX_BYTES 23
/* argv as a RESP array into buf, as redisFormatCommandArgv writes it;
 * returns its length, or 0 when it may not fit in cap (nothing usable is
 * written then). */
size_t cache_resp_format(char *buf, size_t cap, int argc, const char **argv, const size_t *argv_len)
    __attribute__((warn_unused_result));

void cache_async_pipeline(struct cache_async *c, const char *op, int n,
                          const struct cache_command *cmds, void *arg);

/* An HMGET of CACHE_TIER_FIELDS into out (ids untouched): 1 hit, 0 miss,
 * -1 bad reply (cache_tier.c). */
struct cache_tier;
int cache_tier_from_reply(const redisReply *reply, struct cache_tier *out);

#endif
