/* The member's SKU hash (see cache_skus.h): whole-set writes for tiering,
 * reads for ingest (asynchronous) and tests (blocking). */
#include "cache/cache_skus.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_internal.h"
#include "metrics/metrics.h"

#define CACHE_SKUS_PUT_MAX 4096 /* members in one pipelined write */
#define SKUS_FIXED_ARGS    6    /* EVAL script 1 key "#count" n */

/* Replaces the whole hash in one step, so no reader sees half a set.
 * KEYS[1] the hash; ARGV field, value pairs, "#count" first. */
static const char PUT_SKUS_SCRIPT[] = "redis.call('DEL', KEYS[1])\n"
                                      "redis.call('HSET', KEYS[1], unpack(ARGV))\n"
                                      "return 1";

int cache_skus_key(char *out, size_t out_len, const char *tenant_id, const char *member_id)
{
    return cache_member_key(out, out_len, tenant_id, member_id, "skus");
}

/* Appends one member's EVAL to the pipeline; -1 when out of memory. */
static int append_member(redisContext *rc, const char *key, const struct cache_member_skus *m)
{
    bool whole = m->n <= CACHE_SKUS_PER_MEMBER_MAX;
    size_t n = whole ? m->n : 0, argc = SKUS_FIXED_ARGS + 2 * n;
    const char **v = calloc(argc, sizeof(*v));
    size_t *l = calloc(argc, sizeof(*l));
    char(*times)[24] = calloc(n + 1, sizeof(*times));
    int rc_ok = -1;
    if (v && l && times) {
        snprintf(times[n], sizeof(times[n]), "%lld", whole ? (long long)m->n : -1LL);
        v[0] = "EVAL", v[1] = PUT_SKUS_SCRIPT, v[2] = "1", v[3] = key;
        v[4] = CACHE_SKUS_COUNT_FIELD, v[5] = times[n];
        for (size_t i = 0; i < n; i++) {
            snprintf(times[i], sizeof(times[i]), "%" PRId64, m->last_us[i]);
            v[SKUS_FIXED_ARGS + 2 * i] = m->skus[i];
            v[SKUS_FIXED_ARGS + 2 * i + 1] = times[i];
        }
        for (size_t i = 0; i < argc; i++)
            l[i] = strlen(v[i]);
        rc_ok = redisAppendCommandArgv(rc, (int)argc, v, l) == REDIS_OK ? 0 : -1;
    }
    free(v);
    free(l);
    free(times);
    return rc_ok;
}

int cache_put_skus(redisContext *rc, const struct cache_member_skus *items, size_t count, char *err,
                   size_t err_len)
{
    assert(rc != NULL && (items != NULL || count == 0) && count <= CACHE_SKUS_PUT_MAX);
    double started_s = metrics_now_seconds();
    char key[CACHE_KEY_MAX];
    /* Keys first: a half-built pipeline would leave replies nobody reads. */
    for (size_t i = 0; i < count; i++) {
        if (cache_skus_key(key, sizeof key, items[i].tenant_id, items[i].member_id) != 0) {
            snprintf(err, err_len, "cache put skus: key too long");
            return -1;
        }
    }
    for (size_t i = 0; i < count; i++) {
        cache_skus_key(key, sizeof key, items[i].tenant_id, items[i].member_id);
        if (append_member(rc, key, &items[i]) != 0) {
            snprintf(err, err_len, "cache put skus: out of memory");
            return -1; /* the context is unusable now: the caller reconnects */
        }
    }
    int status = 0;
    for (size_t i = 0; i < count; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
            snprintf(err, err_len, "cache put skus: %s", rc->err ? rc->errstr : "no reply");
            return -1;
        }
        if (r->type != REDIS_REPLY_INTEGER) {
            snprintf(err, err_len, "cache put skus: %s",
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            status = -1; /* read on: the connection stays in step */
        }
        freeReplyObject(r);
    }
    if (status == 0)
        cache_observe("put_skus", metrics_now_seconds() - started_s);
    return status;
}

static bool field_is(const redisReply *f, const char *text)
{
    size_t len = strlen(text);
    return f->type == REDIS_REPLY_STRING && f->len == len && memcmp(f->str, text, len) == 0;
}

int cache_skus_lookup(const redisReply *reply, const char *const *skus, size_t n, int64_t *last_us)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0)
        return -1;
    for (size_t k = 0; k < n; k++)
        last_us[k] = 0;
    int64_t count = -1;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *f = reply->element[i], *val = reply->element[i + 1];
        if (field_is(f, CACHE_SKUS_COUNT_FIELD)) {
            if (!cache_reply_i64(val, &count))
                return -1;
            continue;
        }
        for (size_t k = 0; k < n; k++)
            if (field_is(f, skus[k]) && !cache_reply_i64(val, &last_us[k]))
                return -1;
    }
    return count >= 0 ? 1 : 0; /* no "#count" (flushed) or -1 (too many): a miss */
}

int cache_get_skus(redisContext *rc, const char *tenant_id, const char *member_id,
                   const char *const *skus, size_t n, int64_t *last_us)
{
    assert(rc != NULL && n <= CACHE_SKUS_ASK_MAX);
    char key[CACHE_KEY_MAX];
    if (cache_skus_key(key, sizeof key, tenant_id, member_id) != 0)
        return -1;
    redisReply *r = redisCommand(rc, "HGETALL %s", key);
    int status = cache_skus_lookup(r, skus, n, last_us);
    freeReplyObject(r);
    return status;
}

/* ---- asynchronous ---- */
struct skus_get {
    cache_skus_cb cb;
    void *arg;
    size_t n;
    char skus[CACHE_SKUS_ASK_MAX][CACHE_SKU_MAX + 1];
};

static void on_skus_reply(void *arg, const redisReply *reply)
{
    struct skus_get *g = arg;
    const char *names[CACHE_SKUS_ASK_MAX];
    int64_t last_us[CACHE_SKUS_ASK_MAX];
    for (size_t i = 0; i < g->n; i++)
        names[i] = g->skus[i];
    int status = reply ? cache_skus_lookup(reply, names, g->n, last_us) : -1;
    g->cb(g->arg, status, status == 1 ? last_us : NULL);
    free(g);
}

void cache_async_get_skus(struct cache_async *c, const char *tenant_id, const char *member_id,
                          const char *const *skus, size_t n, cache_skus_cb cb, void *arg)
{
    assert(c != NULL && tenant_id != NULL && member_id != NULL && cb != NULL);
    assert(n <= CACHE_SKUS_ASK_MAX);
    struct skus_get *g = calloc(1, sizeof *g);
    assert(g != NULL);
    g->cb = cb;
    g->arg = arg;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        ok = ok && strlen(skus[i]) <= CACHE_SKU_MAX;
        if (ok)
            strcpy(g->skus[i], skus[i]);
    }
    g->n = n;
    char key[CACHE_KEY_MAX];
    ok = ok && cache_skus_key(key, sizeof key, tenant_id, member_id) == 0;
    /* a bad key is answered as an error, on the next loop turn */
    cache_async_raw(c, "get_skus", ok ? key : NULL, "HGETALL %s", on_skus_reply, g);
}
