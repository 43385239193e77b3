/* The Redis member-state cache, blocking half (see cache.h): used by
 * consumer threads, one redisContext per thread. The asynchronous half for
 * the ingest loop is in cache_async.c. */
#include "cache/cache.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cache/cache_internal.h"
#include "metrics/metrics.h"

#define CACHE_PUT_MAX 4096 /* items in one pipelined write */
#define CACHE_ERR_MAX 256

/* Replaces the hash only when it holds no version or an older one, so a
 * late write never undoes a newer one; or the same version without
 * points_pending (written before it was cached: the same balances, so
 * completing it is safe, and the start-up resync repairs such hashes).
 * KEYS[1] the hash; ARGV points, sv_principal, sv_bonus, version,
 * points_pending. Returns 1 when written, 0 when not. */
static const char PUT_SCRIPT[] =
    "local v = redis.call('HGET', KEYS[1], 'version')\n"
    "if v and (tonumber(v) > tonumber(ARGV[4]) or (tonumber(v) == tonumber(ARGV[4]) and "
    "redis.call('HEXISTS', KEYS[1], 'points_pending') == 1)) then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'points', ARGV[1], 'sv_principal', ARGV[2], 'sv_bonus', "
    "ARGV[3], 'version', ARGV[4], 'points_pending', ARGV[5])\n"
    "return 1";
/* SHA1 of PUT_SCRIPT; cache_connect asserts Redis agrees, so an edit of the
 * script without this line fails at the first connect, not silently. */
static const char PUT_SCRIPT_SHA[] = "5604573a0cebb4f45727af7e4114aaf03bcc46d9";

int cache_balances_key(char *out, size_t out_len, const char *tenant_id, const char *member_id)
{
    assert(out != NULL && tenant_id != NULL && member_id != NULL);
    if (out_len > CACHE_KEY_MAX)
        out_len = CACHE_KEY_MAX;
    int n = snprintf(out, out_len, "tessera:%s:member:%s:balances", tenant_id, member_id);
    return n < 0 || (size_t)n >= out_len ? -1 : 0;
}

static bool parse_i64(const redisReply *r, int64_t *out)
{
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
        return false;
    char text[24];
    memcpy(text, r->str, r->len);
    text[r->len] = '\0';
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}

int cache_balances_from_reply(const redisReply *reply, struct cache_balances *out)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 5)
        return -1;
    struct cache_balances b = *out;
    int64_t *fields[] = {&b.points, &b.sv_principal, &b.sv_bonus, &b.version, &b.points_pending};
    for (size_t i = 0; i < 5; i++) {
        const redisReply *e = reply->element[i];
        /* absent or partly written (flushed mid-way), or written before
         * points_pending was cached: a miss, read from PostgreSQL */
        if (e->type == REDIS_REPLY_NIL)
            return 0;
        if (!parse_i64(e, fields[i]))
            return -1;
    }
    *out = b;
    return 1;
}

static void cache_set_err(char *err, size_t err_len, const char *what, const redisContext *rc)
{
    if (err != NULL && err_len > 0)
        snprintf(err, err_len, "%s: %s", what, rc != NULL && rc->err ? rc->errstr : "unexpected reply");
}

/* Loads the script so EVALSHA works on this server; a failover or SCRIPT
 * FLUSH later is handled by the EVAL fallback. */
static int cache_load_script(redisContext *rc, char *err, size_t err_len)
{
    redisReply *r = redisCommand(rc, "SCRIPT LOAD %s", PUT_SCRIPT);
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        if (r != NULL && r->type == REDIS_REPLY_ERROR && err != NULL)
            snprintf(err, err_len, "cache script load: %s", r->str);
        else
            cache_set_err(err, err_len, "cache script load", rc);
        freeReplyObject(r);
        return -1;
    }
    assert(strcmp(r->str, PUT_SCRIPT_SHA) == 0);
    freeReplyObject(r);
    return 0;
}

redisContext *cache_connect(const char *host, int port, int timeout_ms, char *err, size_t err_len)
{
    assert(host != NULL && port > 0 && timeout_ms > 0);
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    redisContext *rc = redisConnectWithTimeout(host, port, tv);
    if (rc == NULL || rc->err) {
        cache_set_err(err, err_len, "cache connect", rc);
        if (rc == NULL && err != NULL)
            snprintf(err, err_len, "cache connect: out of memory");
        goto fail;
    }
    if (redisSetTimeout(rc, tv) != REDIS_OK) {
        cache_set_err(err, err_len, "cache set timeout", rc);
        goto fail;
    }
    if (cache_load_script(rc, err, err_len) != 0)
        goto fail;
    return rc;
fail:
    if (rc != NULL)
        redisFree(rc);
    return NULL;
}

/* Appends one versioned write; script is EVALSHA's sha or EVAL's body. */
static int cache_append_put(redisContext *rc, const char *cmd, const char *script,
                            const struct cache_balances *b)
{
    char key[CACHE_KEY_MAX];
    assert(b->tenant_id != NULL && b->member_id != NULL);
    if (cache_balances_key(key, sizeof key, b->tenant_id, b->member_id) != 0)
        return -1;
    return redisAppendCommand(rc,
                              "%s %s 1 %s %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64,
                              cmd, script, key, b->points, b->sv_principal, b->sv_bonus, b->version,
                              b->points_pending) == REDIS_OK
               ? 0
               : -1;
}

/* Reads count replies, adding written hashes to *replaced and marking
 * NOSCRIPT ones in retry. Every reply is read even after an error so the
 * connection stays in step. */
static int cache_read_puts(redisContext *rc, size_t count, bool *retry, int *replaced, char *err,
                           size_t err_len)
{
    int rc_status = 0;
    for (size_t i = 0; i < count; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
            cache_set_err(err, err_len, "cache put", rc);
            return -1; /* connection broken: the caller reconnects */
        }
        if (r->type == REDIS_REPLY_INTEGER) {
            *replaced += r->integer == 1;
        } else if (r->type == REDIS_REPLY_ERROR && retry != NULL &&
                   strncmp(r->str, "NOSCRIPT", 8) == 0) {
            retry[i] = true;
        } else {
            if (err != NULL)
                snprintf(err, err_len, "cache put: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            rc_status = -1;
        }
        freeReplyObject(r);
    }
    return rc_status;
}

static int cache_put_balances_timed(redisContext *rc, const struct cache_balances *items,
                                    size_t count, char *err, size_t err_len);

void cache_observe(const char *op, double seconds)
{
    struct metric_family *f = metrics_histogram(
        "tessera_redis_command_duration_seconds",
        "Redis round trip by operation (a pipelined batch counts once).", "op",
        metrics_buckets_seconds, metrics_buckets_seconds_count);
    metrics_observe(metrics_with(f, op), seconds);
}

int cache_put_balances(redisContext *rc, const struct cache_balances *items, size_t count,
                       char *err, size_t err_len)
{
    double started_s = metrics_now_seconds();
    int replaced = cache_put_balances_timed(rc, items, count, err, err_len);
    if (replaced >= 0)
        cache_observe("put_balances", metrics_now_seconds() - started_s);
    return replaced;
}

static int cache_put_balances_timed(redisContext *rc, const struct cache_balances *items,
                                    size_t count, char *err, size_t err_len)
{
    assert(rc != NULL && (items != NULL || count == 0));
    assert(count <= CACHE_PUT_MAX);
    bool retry[CACHE_PUT_MAX];
    memset(retry, 0, count * sizeof retry[0]);
    /* Keys are checked before anything is appended: a half-built pipeline
     * would leave commands behind whose replies nobody reads. */
    char key[CACHE_KEY_MAX];
    for (size_t i = 0; i < count; i++) {
        if (cache_balances_key(key, sizeof key, items[i].tenant_id, items[i].member_id) != 0) {
            if (err != NULL)
                snprintf(err, err_len, "cache put: key too long");
            return -1;
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (cache_append_put(rc, "EVALSHA", PUT_SCRIPT_SHA, &items[i]) != 0) {
            if (err != NULL)
                snprintf(err, err_len, "cache put: out of memory");
            return -1; /* context unusable now: the caller reconnects */
        }
    }
    int replaced = 0;
    if (cache_read_puts(rc, count, retry, &replaced, err, err_len) != 0)
        return -1;
    /* The server lost its scripts (restart, failover, SCRIPT FLUSH): send the
     * body for those items, and load it again for the next batches. */
    size_t again = 0;
    for (size_t i = 0; i < count; i++) {
        if (retry[i]) {
            if (cache_append_put(rc, "EVAL", PUT_SCRIPT, &items[i]) != 0)
                return -1;
            again++;
        }
    }
    if (again == 0)
        return replaced;
    if (cache_read_puts(rc, again, NULL, &replaced, err, err_len) != 0 ||
        cache_load_script(rc, err, err_len) != 0)
        return -1;
    return replaced;
}

int cache_get_balances(redisContext *rc, const char *tenant_id, const char *member_id,
                       struct cache_balances *out)
{
    assert(rc != NULL && out != NULL);
    char key[CACHE_KEY_MAX];
    if (cache_balances_key(key, sizeof key, tenant_id, member_id) != 0)
        return -1;
    redisReply *r =
        redisCommand(rc, "HMGET %s points sv_principal sv_bonus version points_pending", key);
    int status = cache_balances_from_reply(r, out);
    freeReplyObject(r);
    return status;
}
