/* The member view in one Redis round trip, and ingest's own view hash
 * (see cache_view.h). Runs on the ingest loop. The four reads are sent
 * back to back: hiredis writes them in one go and Redis answers them in
 * order, so they cost one round trip; each reply is decoded as it comes
 * (hiredis frees it after its callback) and the caller hears once, after
 * the last. */
#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_internal.h"
#include "cache/cache_view.h"

#define VIEW_READS 4

/* KEYS[1] the view hash. ARGV: ttl, profile version ("" none), profile
 * payload, "1" when coupons are given, coupons, the "#cgen" the reader
 * saw. The profile rule is cache_view_profile_replaces. */
static const char FILL_SCRIPT[] =
    "local old = redis.call('HGET', KEYS[1], 'profile')\n"
    "if ARGV[2] ~= '' then\n"
    "  local ov = old and tonumber(string.match(old, '^(%d+)|'))\n"
    "  local nv = tonumber(ARGV[2])\n"
    "  if not ov or ov < nv or (ov == nv and old == ARGV[2] .. '|') then\n"
    "    redis.call('HSET', KEYS[1], 'profile', ARGV[2] .. '|' .. ARGV[3])\n"
    "  end\n"
    "end\n"
    "if ARGV[4] == '1' and (redis.call('HGET', KEYS[1], '#cgen') or '') == ARGV[6] then\n"
    "  redis.call('HSET', KEYS[1], 'coupons', ARGV[5])\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "return 1";

/* KEYS[1] the view hash; ARGV ttl, the version the writer committed. */
static const char FORGET_PROFILE_SCRIPT[] =
    "local old = redis.call('HGET', KEYS[1], 'profile')\n"
    "local ov = old and tonumber(string.match(old, '^(%d+)|'))\n"
    "if not ov or ov < tonumber(ARGV[2]) then\n"
    "  redis.call('HSET', KEYS[1], 'profile', ARGV[2] .. '|')\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "return 1";

/* KEYS[1] the view hash; ARGV ttl. */
static const char FORGET_COUPONS_SCRIPT[] = "redis.call('HINCRBY', KEYS[1], '#cgen', 1)\n"
                                            "redis.call('HDEL', KEYS[1], 'coupons')\n"
                                            "redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
                                            "return 1";

static int view_key(char *out, size_t out_len, const char *tenant_id, const char *member_id)
{
    return cache_member_key(out, out_len, tenant_id, member_id, "view");
}

/* The leading "<digits>|" of a value: the version, or -1. */
static int64_t leading_version(const char *s, size_t len, size_t *digits)
{
    size_t i = 0;
    int64_t v = 0;
    while (i < len && i < 19 && s[i] >= '0' && s[i] <= '9')
        v = v * 10 + (s[i++] - '0');
    if (i == 0 || i >= len || s[i] != '|')
        return -1;
    *digits = i;
    return v;
}

bool cache_view_profile_replaces(const char *cached, size_t cached_len, int64_t v, bool tombstone)
{
    size_t digits = 0;
    int64_t ov = cached ? leading_version(cached, cached_len, &digits) : -1;
    if (ov < 0 || ov < v)
        return true;
    bool cached_tombstone = cached_len == digits + 1;
    return ov == v && cached_tombstone && !tombstone;
}

void cache_member_view_clear(struct cache_member_view *v)
{
    if (v == NULL)
        return;
    free(v->profile);
    free(v->coupons);
    free(v->cards);
    memset(v, 0, sizeof(*v));
}

/* ---- the read ---- */
struct view_get {
    cache_view_cb cb;
    void *arg;
    int pending;
    struct cache_member_view *v;
};

static void view_part_done(struct view_get *g)
{
    if (--g->pending > 0)
        return;
    g->cb(g->arg, g->v);
    free(g);
}

static char *copy_bytes(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    assert(out != NULL);
    memcpy(out, s, len);
    out[len] = '\0';
    return out;
}

/* HMGET view profile coupons #cgen */
static void on_view_hash(void *arg, const redisReply *reply)
{
    struct view_get *g = arg;
    struct cache_member_view *v = g->v;
    v->profile_status = v->coupons_status = -1;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3) {
        const redisReply *p = reply->element[0], *c = reply->element[1], *gen = reply->element[2];
        size_t digits = 0;
        v->profile_status = 0;
        if (p->type == REDIS_REPLY_STRING && p->len <= CACHE_VIEW_VALUE_MAX) {
            int64_t pv = leading_version(p->str, p->len, &digits);
            if (pv >= 0) {
                v->profile_version = pv;
                if (p->len > digits + 1) {
                    v->profile_status = 1;
                    v->profile_len = p->len - digits - 1;
                    v->profile = copy_bytes(p->str + digits + 1, v->profile_len);
                }
            }
        }
        v->coupons_status = 0;
        if (c->type == REDIS_REPLY_STRING && c->len <= CACHE_VIEW_VALUE_MAX) {
            v->coupons_status = 1;
            v->coupons = copy_bytes(c->str, c->len);
        }
        if (gen->type == REDIS_REPLY_STRING && gen->len < sizeof(v->coupon_gen))
            memcpy(v->coupon_gen, gen->str, gen->len);
    }
    view_part_done(g);
}

static void on_balances(void *arg, const redisReply *reply)
{
    struct view_get *g = arg;
    g->v->balances_status = reply ? cache_balances_from_reply(reply, &g->v->balances) : -1;
    view_part_done(g);
}

static void on_tier(void *arg, const redisReply *reply)
{
    struct view_get *g = arg;
    g->v->tier_status = reply ? cache_tier_from_reply(reply, &g->v->tier) : -1;
    view_part_done(g);
}

/* Decoded into a scratch struct (room for CACHE_CARDS_PER_MEMBER_MAX
 * cards, about 20 KB), then copied into an allocation sized for the cards
 * found: most members have none, and a 20 KB malloc on every read made
 * glibc consolidate its free lists each time. The loop's thread only. */
static void on_cards(void *arg, const redisReply *reply)
{
    static _Thread_local struct cache_cards_read scratch;
    struct view_get *g = arg;
    memset(&scratch, 0, offsetof(struct cache_cards_read, cards));
    g->v->cards_status = reply ? cache_cards_from_reply(reply, &scratch) : -1;
    size_t n = g->v->cards_status == 1 ? scratch.n_cards : 0;
    size_t size = offsetof(struct cache_cards_read, cards) + n * sizeof(scratch.cards[0]);
    g->v->cards = malloc(size);
    assert(g->v->cards != NULL);
    memcpy(g->v->cards, &scratch, size);
    g->v->cards->n_cards = n;
    view_part_done(g);
}

/* One read of the view: "<command> <key> <fields...>" (fields:
 * space-separated words) as an argument vector, which hiredis formats
 * with one allocation and no printf-style parsing. */
enum { READ_WORDS_MAX = 8, READ_FIELDS_TEXT_MAX = 128 };
struct view_read {
    char words[READ_FIELDS_TEXT_MAX];
    const char *argv[2 + READ_WORDS_MAX];
    size_t argv_len[2 + READ_WORDS_MAX];
};

/* Fills rd and cmd; a NULL key leaves cmd->argc 0 (nothing is sent). */
static void view_read_init(struct view_read *rd, struct cache_command *cmd, const char *command,
                           const char *key, const char *fields, cache_reply_cb cb)
{
    *cmd = (struct cache_command){.argv = rd->argv, .argv_len = rd->argv_len, .cb = cb};
    if (key == NULL)
        return;
    rd->argv[0] = command;
    rd->argv_len[0] = strlen(command);
    rd->argv[1] = key;
    rd->argv_len[1] = strlen(key);
    int argc = 2;
    assert(strlen(fields) < sizeof(rd->words));
    strcpy(rd->words, fields);
    char *save = NULL;
    for (char *w = strtok_r(rd->words, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
        assert(argc < 2 + READ_WORDS_MAX);
        rd->argv[argc] = w;
        rd->argv_len[argc++] = strlen(w);
    }
    cmd->argc = argc;
}

void cache_async_get_member_view(struct cache_async *c, const char *tenant_id,
                                 const char *member_id, cache_view_cb cb, void *arg)
{
    assert(c != NULL && tenant_id != NULL && member_id != NULL && cb != NULL);
    struct view_get *g = calloc(1, sizeof(*g));
    assert(g != NULL);
    g->cb = cb;
    g->arg = arg;
    g->pending = VIEW_READS;
    g->v = calloc(1, sizeof(*g->v));
    assert(g->v != NULL);
    char keys[VIEW_READS][CACHE_KEY_MAX];
    bool ok = view_key(keys[0], CACHE_KEY_MAX, tenant_id, member_id) == 0 &&
              cache_balances_key(keys[1], CACHE_KEY_MAX, tenant_id, member_id) == 0 &&
              cache_tier_key(keys[2], CACHE_KEY_MAX, tenant_id, member_id) == 0 &&
              cache_cards_key(keys[3], CACHE_KEY_MAX, tenant_id, member_id) == 0;
    /* a key too long is answered as a failure of each part, next loop turn */
    struct view_read rd[VIEW_READS];
    struct cache_command cmds[VIEW_READS];
    view_read_init(&rd[0], &cmds[0], "HMGET", ok ? keys[0] : NULL,
                   CACHE_VIEW_PROFILE " " CACHE_VIEW_COUPONS " " CACHE_VIEW_COUPON_GEN,
                   on_view_hash);
    view_read_init(&rd[1], &cmds[1], "HMGET", ok ? keys[1] : NULL,
                   "points sv_principal sv_bonus version points_pending", on_balances);
    view_read_init(&rd[2], &cmds[2], "HMGET", ok ? keys[2] : NULL, CACHE_TIER_FIELDS, on_tier);
    view_read_init(&rd[3], &cmds[3], "HGETALL", ok ? keys[3] : NULL, "", on_cards);
    /* one round trip, one timer, one observation in the histogram */
    _Static_assert(VIEW_READS <= CACHE_PIPELINE_MAX, "the view's reads fit one pipeline");
    cache_async_pipeline(c, "get_view", VIEW_READS, cmds, g);
}

/* ---- writes ---- */
struct view_write {
    cache_view_done_cb done;
    void *arg;
};

static void on_written(void *arg, const redisReply *reply)
{
    struct view_write *w = arg;
    if (w->done)
        w->done(w->arg, reply != NULL && reply->type == REDIS_REPLY_INTEGER);
    free(w);
}

/* EVAL script 1 key argv... with a completion. */
static void eval_view(struct cache_async *c, const char *op, const char *script, const char *key,
                      int nargs, const char **args, const size_t *lens, cache_view_done_cb done,
                      void *arg)
{
    enum { ARGS_MAX = 8 };
    assert(nargs <= ARGS_MAX);
    const char *argv[4 + ARGS_MAX] = {"EVAL", script, "1", key};
    size_t argv_len[4 + ARGS_MAX] = {4, strlen(script), 1, strlen(key)};
    for (int i = 0; i < nargs; i++) {
        argv[4 + i] = args[i];
        argv_len[4 + i] = lens ? lens[i] : strlen(args[i]);
    }
    struct view_write *w = calloc(1, sizeof(*w));
    assert(w != NULL);
    w->done = done;
    w->arg = arg;
    cache_async_argv(c, op, 4 + nargs, argv, argv_len, on_written, w);
}

#define TTL_TEXT_(x) #x
#define TTL_TEXT(x)  TTL_TEXT_(x)

void cache_async_fill_view(struct cache_async *c, const char *tenant_id, const char *member_id,
                           int64_t profile_version, const char *profile, size_t profile_len,
                           const char *coupons, const char *coupon_gen)
{
    char key[CACHE_KEY_MAX], version[24] = "";
    if (view_key(key, sizeof(key), tenant_id, member_id) != 0)
        return;
    if (profile != NULL && profile_len <= CACHE_VIEW_VALUE_MAX)
        snprintf(version, sizeof(version), "%" PRId64, profile_version);
    bool with_coupons = coupons != NULL && strlen(coupons) <= CACHE_VIEW_VALUE_MAX;
    if (!version[0] && !with_coupons)
        return;
    const char *args[6] = {TTL_TEXT(CACHE_VIEW_TTL_S),  version,
                           version[0] ? profile : "",   with_coupons ? "1" : "0",
                           with_coupons ? coupons : "", coupon_gen ? coupon_gen : ""};
    size_t lens[6];
    for (int i = 0; i < 6; i++) /* the sealed profile is binary: never strlen it */
        lens[i] = i == 2 ? (version[0] ? profile_len : 0) : strlen(args[i]);
    eval_view(c, "fill_view", FILL_SCRIPT, key, 6, args, lens, NULL, NULL);
}

int cache_fill_view_profile(redisContext *rc, const char *tenant_id, const char *member_id,
                            int64_t profile_version, const char *profile, size_t profile_len)
{
    char key[CACHE_KEY_MAX], version[24];
    if (view_key(key, sizeof(key), tenant_id, member_id) != 0)
        return -1;
    snprintf(version, sizeof(version), "%" PRId64, profile_version);
    const char *argv[] = {"EVAL",  FILL_SCRIPT, "1", key, TTL_TEXT(CACHE_VIEW_TTL_S),
                          version, profile,     "0", "",  ""};
    size_t argv_len[10];
    for (int i = 0; i < 10; i++) /* the sealed profile is binary: never strlen it */
        argv_len[i] = i == 6 ? profile_len : strlen(argv[i]);
    /* the script answers 1 either way: compare what the field holds after */
    redisReply *r = redisCommandArgv(rc, 10, argv, argv_len);
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    freeReplyObject(r);
    if (!ok)
        return -1;
    r = redisCommand(rc, "HGET %s " CACHE_VIEW_PROFILE, key);
    size_t digits = 0;
    int written = r && r->type == REDIS_REPLY_STRING &&
                  leading_version(r->str, r->len, &digits) == profile_version &&
                  r->len == digits + 1 + profile_len &&
                  memcmp(r->str + digits + 1, profile, profile_len) == 0;
    freeReplyObject(r);
    return written;
}

void cache_async_forget_profile(struct cache_async *c, const char *tenant_id, const char *member_id,
                                int64_t profile_version, cache_view_done_cb done, void *arg)
{
    char key[CACHE_KEY_MAX], version[24];
    if (view_key(key, sizeof(key), tenant_id, member_id) != 0) {
        if (done)
            done(arg, false);
        return;
    }
    snprintf(version, sizeof(version), "%" PRId64, profile_version);
    const char *args[2] = {TTL_TEXT(CACHE_VIEW_TTL_S), version};
    eval_view(c, "forget_profile", FORGET_PROFILE_SCRIPT, key, 2, args, NULL, done, arg);
}

void cache_async_forget_coupons(struct cache_async *c, const char *tenant_id, const char *member_id,
                                cache_view_done_cb done, void *arg)
{
    char key[CACHE_KEY_MAX];
    if (view_key(key, sizeof(key), tenant_id, member_id) != 0) {
        if (done)
            done(arg, false);
        return;
    }
    const char *args[1] = {TTL_TEXT(CACHE_VIEW_TTL_S)};
    eval_view(c, "forget_coupons", FORGET_COUPONS_SCRIPT, key, 1, args, NULL, done, arg);
}
