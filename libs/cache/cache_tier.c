/* The member's tier hash (see cache_tier.h): versioned writes for tiering,
 * reads for ingest (asynchronous) and tests (blocking). */
#include "cache/cache_tier.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_internal.h"
#include "cache/cache_view.h"
#include "metrics/metrics.h"

#define CACHE_TIER_PUT_MAX 4096 /* items in one pipelined write */

/* Replaces the hash only when it holds no version or an older one.
 * KEYS[1] the hash; ARGV name, rank, discount_bp, points_multiplier_bp,
 * version. Sent with EVAL (Redis caches the compiled script by its body),
 * so a SCRIPT FLUSH or a failover needs no special path. */
static const char PUT_TIER_SCRIPT[] =
    "local v = redis.call('HGET', KEYS[1], 'version')\n"
    "if v and tonumber(v) >= tonumber(ARGV[5]) then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'name', ARGV[1], 'rank', ARGV[2], 'discount_bp', ARGV[3], "
    "'points_multiplier_bp', ARGV[4], 'version', ARGV[5])\n"
    "return 1";

int cache_tier_key(char *out, size_t out_len, const char *tenant_id, const char *member_id)
{
    return cache_member_key(out, out_len, tenant_id, member_id, "tier");
}

/* An HMGET of CACHE_TIER_FIELDS into out (ids untouched): 1 hit, 0 miss
 * (absent, or partly written and flushed mid-way), -1 bad reply. */
int cache_tier_from_reply(const redisReply *reply, struct cache_tier *out)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 5)
        return -1;
    for (size_t i = 0; i < 5; i++)
        if (reply->element[i]->type == REDIS_REPLY_NIL)
            return 0;
    const redisReply *name = reply->element[0];
    if (name->type != REDIS_REPLY_STRING || name->len > CACHE_TIER_NAME_MAX)
        return -1;
    int64_t rank, v[3];
    if (!cache_reply_i64(reply->element[1], &rank) || !cache_reply_i64(reply->element[2], &v[0]) ||
        !cache_reply_i64(reply->element[3], &v[1]) || !cache_reply_i64(reply->element[4], &v[2]))
        return -1;
    memcpy(out->name, name->str, name->len);
    out->name[name->len] = '\0';
    out->rank = (int32_t)rank;
    out->discount_bp = v[0];
    out->points_multiplier_bp = v[1];
    out->version = v[2];
    return 1;
}

int cache_put_tiers(redisContext *rc, const struct cache_tier *items, size_t count, char *err,
                    size_t err_len)
{
    assert(rc != NULL && (items != NULL || count == 0) && count <= CACHE_TIER_PUT_MAX);
    double started_s = metrics_now_seconds();
    char key[CACHE_KEY_MAX];
    /* Keys first: a half-built pipeline would leave replies nobody reads. */
    for (size_t i = 0; i < count; i++) {
        if (cache_tier_key(key, sizeof key, items[i].tenant_id, items[i].member_id) != 0) {
            snprintf(err, err_len, "cache put tier: key too long");
            return -1;
        }
    }
    for (size_t i = 0; i < count; i++) {
        const struct cache_tier *t = &items[i];
        cache_tier_key(key, sizeof key, t->tenant_id, t->member_id);
        if (redisAppendCommand(rc, "EVAL %s 1 %s %s %d %" PRId64 " %" PRId64 " %" PRId64,
                               PUT_TIER_SCRIPT, key, t->name, (int)t->rank, t->discount_bp,
                               t->points_multiplier_bp, t->version) != REDIS_OK) {
            snprintf(err, err_len, "cache put tier: out of memory");
            return -1; /* the context is unusable now: the caller reconnects */
        }
    }
    int replaced = 0, status = 0;
    for (size_t i = 0; i < count; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
            snprintf(err, err_len, "cache put tier: %s", rc->err ? rc->errstr : "no reply");
            return -1;
        }
        if (r->type == REDIS_REPLY_INTEGER) {
            replaced += r->integer == 1;
        } else {
            snprintf(err, err_len, "cache put tier: %s",
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            status = -1; /* read on: the connection stays in step */
        }
        freeReplyObject(r);
    }
    if (status == 0)
        cache_observe("put_tiers", metrics_now_seconds() - started_s);
    return status == 0 ? replaced : -1;
}

int cache_get_tier(redisContext *rc, const char *tenant_id, const char *member_id,
                   struct cache_tier *out)
{
    assert(rc != NULL && out != NULL);
    char key[CACHE_KEY_MAX];
    if (cache_tier_key(key, sizeof key, tenant_id, member_id) != 0)
        return -1;
    redisReply *r = redisCommand(rc, "HMGET %s " CACHE_TIER_FIELDS, key);
    int status = cache_tier_from_reply(r, out);
    freeReplyObject(r);
    return status;
}

/* ---- asynchronous ---- */
struct tier_get {
    cache_tier_cb cb;
    void *arg;
    struct cache_tier t;
};

static void on_tier_reply(void *arg, const redisReply *reply)
{
    struct tier_get *g = arg;
    int status = reply ? cache_tier_from_reply(reply, &g->t) : -1;
    g->cb(g->arg, status, status == 1 ? &g->t : NULL);
    free(g);
}

void cache_async_get_tier(struct cache_async *c, const char *tenant_id, const char *member_id,
                          cache_tier_cb cb, void *arg)
{
    assert(c != NULL && tenant_id != NULL && member_id != NULL && cb != NULL);
    struct tier_get *g = calloc(1, sizeof *g);
    assert(g != NULL);
    g->cb = cb;
    g->arg = arg;
    char key[CACHE_KEY_MAX];
    bool ok = strlen(tenant_id) < sizeof g->t.tenant_id &&
              strlen(member_id) < sizeof g->t.member_id &&
              cache_tier_key(key, sizeof key, tenant_id, member_id) == 0;
    if (ok) {
        strcpy(g->t.tenant_id, tenant_id);
        strcpy(g->t.member_id, member_id);
    }
    /* a bad key is answered as an error, on the next loop turn */
    cache_async_raw(c, "get_tier", ok ? key : NULL, "HMGET %s " CACHE_TIER_FIELDS, on_tier_reply,
                    g);
}

static void on_tier_put(void *arg, const redisReply *reply)
{
    /* fire and forget: a failed fill only leaves a miss */
}

void cache_async_put_tier(struct cache_async *c, const struct cache_tier *t)
{
    assert(c != NULL && t != NULL);
    char key[CACHE_KEY_MAX], rank[16], discount[24], multiplier[24], version[24];
    if (cache_tier_key(key, sizeof key, t->tenant_id, t->member_id) != 0)
        return;
    snprintf(rank, sizeof rank, "%d", (int)t->rank);
    snprintf(discount, sizeof discount, "%" PRId64, t->discount_bp);
    snprintf(multiplier, sizeof multiplier, "%" PRId64, t->points_multiplier_bp);
    snprintf(version, sizeof version, "%" PRId64, t->version);
    const char *argv[] = {"EVAL", PUT_TIER_SCRIPT, "1",        key,    t->name,
                          rank,   discount,        multiplier, version};
    size_t argv_len[sizeof(argv) / sizeof(argv[0])];
    for (size_t i = 0; i < sizeof(argv) / sizeof(argv[0]); i++)
        argv_len[i] = strlen(argv[i]);
    cache_async_argv(c, "put_tier", (int)(sizeof(argv) / sizeof(argv[0])), argv, argv_len,
                     on_tier_put, NULL);
}
