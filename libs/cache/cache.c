/* The Redis member-state cache, blocking half (see cache.h): used by
 * consumer threads, one redisContext per thread. The asynchronous half for
 * the ingest loop is in cache_async.c. */
#include "cache/cache.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_internal.h"
#include "cache/cache_view.h"
#include "metrics/metrics.h"
#include "util/fmt.h"

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

/* A member's cards hash (see cache.h): each card field is replaced only
 * when the hash holds no readable version of it or an older one
 * (cache_card_replaces is the same rule in C), and "#count" only grows.
 * KEYS[1] the hash; ARGV[1] the member's card count, then pairs of card id
 * and encoded state. Returns the number of card fields written. */
static const char CARDS_SCRIPT[] =
    "local function ver(s)\n"
    "  if not s then return nil end\n"
    "  return tonumber(string.match(s, '^(%d+)|'))\n"
    "end\n"
    "local n = tonumber(redis.call('HGET', KEYS[1], '#count'))\n"
    "if not n or n < tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], '#count', ARGV[1]) end\n"
    "local written = 0\n"
    "for i = 2, #ARGV, 2 do\n"
    "  local old = ver(redis.call('HGET', KEYS[1], ARGV[i]))\n"
    "  if not old or old < ver(ARGV[i + 1]) then\n"
    "    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "    written = written + 1\n"
    "  end\n"
    "end\n"
    "return written";
/* SHA1 of CARDS_SCRIPT, checked like PUT_SCRIPT_SHA. */
static const char CARDS_SCRIPT_SHA[] = "97fce68dd30d49f61673f6e34a47fef9bbf54b4e";

int cache_member_key(char *out, size_t out_len, const char *tenant_id, const char *member_id,
                     const char *hash)
{
    assert(out != NULL && tenant_id != NULL && member_id != NULL && hash != NULL);
    if (out_len > CACHE_KEY_MAX)
        out_len = CACHE_KEY_MAX;
    /* "tessera:<tenant>:member:<member>:<hash>", without snprintf (every
     * cached read names four keys) */
    size_t at = 0;
    bool fits = fmt_append_str(out, out_len, &at, "tessera:") &&
                fmt_append_str(out, out_len, &at, tenant_id) &&
                fmt_append_str(out, out_len, &at, ":member:") &&
                fmt_append_str(out, out_len, &at, member_id) &&
                fmt_append_str(out, out_len, &at, ":") && fmt_append_str(out, out_len, &at, hash);
    return fits ? 0 : -1;
}

int cache_balances_key(char *out, size_t out_len, const char *tenant_id, const char *member_id)
{
    return cache_member_key(out, out_len, tenant_id, member_id, "balances");
}

bool cache_reply_i64(const redisReply *r, int64_t *out)
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
        if (!cache_reply_i64(e, fields[i]))
            return -1;
    }
    *out = b;
    return 1;
}

static void cache_set_err(char *err, size_t err_len, const char *what, const redisContext *rc)
{
    if (err != NULL && err_len > 0)
        snprintf(err, err_len, "%s: %s", what,
                 rc != NULL && rc->err ? rc->errstr : "unexpected reply");
}

/* Loads one script so EVALSHA works on this server; a failover or SCRIPT
 * FLUSH later is handled by the EVAL fallback. */
static int cache_load_one(redisContext *rc, const char *body, const char *sha, char *err,
                          size_t err_len)
{
    redisReply *r = redisCommand(rc, "SCRIPT LOAD %s", body);
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        if (r != NULL && r->type == REDIS_REPLY_ERROR && err != NULL)
            snprintf(err, err_len, "cache script load: %s", r->str);
        else
            cache_set_err(err, err_len, "cache script load", rc);
        freeReplyObject(r);
        return -1;
    }
    assert(strcmp(r->str, sha) == 0);
    freeReplyObject(r);
    return 0;
}

static int cache_load_script(redisContext *rc, char *err, size_t err_len)
{
    if (cache_load_one(rc, PUT_SCRIPT, PUT_SCRIPT_SHA, err, err_len) != 0)
        return -1;
    return cache_load_one(rc, CARDS_SCRIPT, CARDS_SCRIPT_SHA, err, err_len);
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
    if (cache_auth(rc, err, err_len) != 0)
        goto fail;
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
            *replaced += (int)r->integer; /* balances: 0 or 1; cards: fields written */
        } else if (r->type == REDIS_REPLY_ERROR && retry != NULL &&
                   strncmp(r->str, "NOSCRIPT", 8) == 0) {
            retry[i] = true;
        } else {
            if (err != NULL)
                snprintf(err, err_len, "cache put: %s",
                         r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            rc_status = -1;
        }
        freeReplyObject(r);
    }
    return rc_status;
}

/* Checks one member's cards before anything is appended (see below):
 * the key fits, the set is all of the member's cards (within the limit)
 * or none, and every card encodes. */
static bool cache_cards_ok(const struct cache_member_cards *m)
{
    char key[CACHE_KEY_MAX], value[CACHE_CARD_VALUE_MAX];
    if (m->tenant_id == NULL || m->member_id == NULL ||
        cache_cards_key(key, sizeof key, m->tenant_id, m->member_id) != 0 || m->card_count < 0)
        return false;
    if (m->n_cards > 0 && ((int64_t)m->n_cards != m->card_count ||
                           m->n_cards > CACHE_CARDS_PER_MEMBER_MAX || m->cards == NULL))
        return false; /* all of the member's cards, or the count alone */
    for (size_t i = 0; i < m->n_cards; i++)
        if (cache_card_encode(&m->cards[i], value, sizeof value) < 0)
            return false;
    return true;
}

/* Appends one member's versioned cards write: cmd script 1 key count
 * (id value)... ; checked by cache_cards_ok first. */
static int cache_append_cards(redisContext *rc, const char *cmd, const char *script,
                              const struct cache_member_cards *m)
{
    enum { HEAD = 5, ARGS_MAX = HEAD + 2 * CACHE_CARDS_PER_MEMBER_MAX };
    const char *argv[ARGS_MAX];
    size_t argvlen[ARGS_MAX];
    char key[CACHE_KEY_MAX], count[24];
    assert(m->n_cards <= CACHE_CARDS_PER_MEMBER_MAX);
    if (cache_cards_key(key, sizeof key, m->tenant_id, m->member_id) != 0)
        return -1;
    /* hiredis copies the arguments into its output buffer: the values only
     * live through the call */
    char(*values)[CACHE_CARD_VALUE_MAX] =
        m->n_cards > 0 ? malloc(m->n_cards * sizeof(*values)) : NULL;
    if (m->n_cards > 0 && values == NULL)
        return -1;
    snprintf(count, sizeof count, "%" PRId64, m->card_count);
    const char *head[HEAD] = {cmd, script, "1", key, count};
    size_t argc = 0;
    for (; argc < HEAD; argc++) {
        argv[argc] = head[argc];
        argvlen[argc] = strlen(head[argc]);
    }
    for (size_t i = 0; i < m->n_cards; i++) {
        int len = cache_card_encode(&m->cards[i], values[i], sizeof values[i]);
        if (len < 0) {
            free(values);
            return -1;
        }
        argv[argc] = m->cards[i].card_id;
        argvlen[argc++] = strlen(m->cards[i].card_id);
        argv[argc] = values[i];
        argvlen[argc++] = (size_t)len;
    }
    int status = redisAppendCommandArgv(rc, (int)argc, argv, argvlen) == REDIS_OK ? 0 : -1;
    free(values);
    return status;
}

static int cache_put_timed(redisContext *rc, const struct cache_balances *balances, size_t nb,
                           const struct cache_member_cards *cards, size_t nc, char *err,
                           size_t err_len);

void cache_observe(const char *op, double seconds)
{
    struct metric_family *f =
        metrics_histogram("tessera_redis_command_duration_seconds",
                          "Redis round trip by operation (a pipelined batch counts once).", "op",
                          metrics_buckets_seconds, metrics_buckets_seconds_count);
    metrics_observe(metrics_with(f, op), seconds);
}

int cache_put_member_state(redisContext *rc, const struct cache_balances *balances, size_t nb,
                           const struct cache_member_cards *cards, size_t nc, char *err,
                           size_t err_len)
{
    double started_s = metrics_now_seconds();
    int replaced = cache_put_timed(rc, balances, nb, cards, nc, err, err_len);
    if (replaced >= 0)
        cache_observe(nc == 0   ? "put_balances"
                      : nb == 0 ? "put_cards"
                                : "put_member_state",
                      metrics_now_seconds() - started_s);
    return replaced;
}

int cache_put_balances(redisContext *rc, const struct cache_balances *items, size_t count,
                       char *err, size_t err_len)
{
    return cache_put_member_state(rc, items, count, NULL, 0, err, err_len);
}

int cache_put_cards(redisContext *rc, const struct cache_member_cards *cards, size_t count,
                    char *err, size_t err_len)
{
    return cache_put_member_state(rc, NULL, 0, cards, count, err, err_len);
}

/* Appends item i of the combined pipeline: balances first, then cards. */
static int cache_append_item(redisContext *rc, bool by_sha, const struct cache_balances *balances,
                             size_t nb, const struct cache_member_cards *cards, size_t i)
{
    if (i < nb)
        return cache_append_put(rc, by_sha ? "EVALSHA" : "EVAL",
                                by_sha ? PUT_SCRIPT_SHA : PUT_SCRIPT, &balances[i]);
    return cache_append_cards(rc, by_sha ? "EVALSHA" : "EVAL",
                              by_sha ? CARDS_SCRIPT_SHA : CARDS_SCRIPT, &cards[i - nb]);
}

static int cache_put_timed(redisContext *rc, const struct cache_balances *balances, size_t nb,
                           const struct cache_member_cards *cards, size_t nc, char *err,
                           size_t err_len)
{
    assert(rc != NULL && (balances != NULL || nb == 0) && (cards != NULL || nc == 0));
    assert(nb + nc <= CACHE_PUT_MAX);
    size_t count = nb + nc;
    bool retry[CACHE_PUT_MAX];
    memset(retry, 0, count * sizeof retry[0]);
    /* Keys are checked before anything is appended: a half-built pipeline
     * would leave commands behind whose replies nobody reads. */
    char key[CACHE_KEY_MAX];
    for (size_t i = 0; i < nb; i++) {
        if (cache_balances_key(key, sizeof key, balances[i].tenant_id, balances[i].member_id) !=
            0) {
            if (err != NULL)
                snprintf(err, err_len, "cache put: key too long");
            return -1;
        }
    }
    for (size_t i = 0; i < nc; i++) {
        if (!cache_cards_ok(&cards[i])) {
            if (err != NULL)
                snprintf(err, err_len, "cache put: member %s: cards not cacheable",
                         cards[i].member_id ? cards[i].member_id : "(none)");
            return -1;
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (cache_append_item(rc, true, balances, nb, cards, i) != 0) {
            if (err != NULL)
                snprintf(err, err_len, "cache put: out of memory");
            return -1; /* context unusable now: the caller reconnects */
        }
    }
    int replaced = 0;
    if (cache_read_puts(rc, count, retry, &replaced, err, err_len) != 0)
        return -1;
    /* The server lost its scripts (restart, failover, SCRIPT FLUSH): send the
     * body for those items, and load them again for the next batches. */
    size_t again = 0;
    for (size_t i = 0; i < count; i++) {
        if (retry[i]) {
            if (cache_append_item(rc, false, balances, nb, cards, i) != 0)
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

static void on_no_cards_put(void *arg, const redisReply *reply)
{
    /* fire and forget: a failed fill only leaves a miss */
}

void cache_async_put_no_cards(struct cache_async *c, const char *tenant_id, const char *member_id)
{
    assert(c != NULL && tenant_id != NULL && member_id != NULL);
    char key[CACHE_KEY_MAX];
    if (cache_cards_key(key, sizeof key, tenant_id, member_id) != 0)
        return;
    /* the ledger's own script: "#count" only grows, so a count of 0 never
     * hides a card the ledger wrote meanwhile */
    const char *argv[] = {"EVAL", CARDS_SCRIPT, "1", key, "0"};
    size_t argv_len[] = {4, strlen(CARDS_SCRIPT), 1, strlen(key), 1};
    cache_async_argv(c, "put_no_cards", 5, argv, argv_len, on_no_cards_put, NULL);
}
