/* Integration tests of libs/cache against a real Redis given by
 * TESSERA_REDIS_HOST / TESSERA_REDIS_PORT (skipped when unset). Keys use a
 * per-run tenant id; one test flushes the whole server on purpose. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache/cache.h"
#include "cache/cache_view.h"

#define ERR_MAX     256
#define TIMEOUT_MS  2000
#define DEADLINE_MS 10000
#define TICK_MS     10

static const char *host;
static int port;
static char tenant[64];
static redisContext *rc;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Runs the loop until done(arg) or the deadline (a tick brings the loop
 * back to check). True when done. */
static bool loop_until(struct event_base *base, bool (*done)(void *), void *arg, int deadline_ms)
{
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = {0, TICK_MS * 1000};
    event_add(tick, &tv);
    int64_t deadline = now_ms() + deadline_ms;
    bool ok;
    while (!(ok = done(arg)) && now_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    return ok;
}

static int group_setup(void **state)
{
    host = getenv("TESSERA_REDIS_HOST");
    const char *port_text = getenv("TESSERA_REDIS_PORT");
    if (host == NULL || port_text == NULL)
        return 0;
    port = atoi(port_text);
    snprintf(tenant, sizeof tenant, "test-cache-%d", (int)getpid());
    char err[ERR_MAX];
    if (cache_set_password(getenv("TESSERA_REDIS_PASSWORD")) != 0)
        return -1;
    rc = cache_connect(host, port, TIMEOUT_MS, err, sizeof err);
    if (rc == NULL) {
        fprintf(stderr, "cannot connect: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    if (rc == NULL)
        return 0;
    char pattern[128];
    snprintf(pattern, sizeof pattern, "tessera:%s:*", tenant);
    redisReply *keys = redisCommand(rc, "KEYS %s", pattern);
    for (size_t i = 0; keys != NULL && i < keys->elements; i++)
        freeReplyObject(redisCommand(rc, "DEL %s", keys->element[i]->str));
    freeReplyObject(keys);
    redisFree(rc);
    return 0;
}

#define REQUIRE_REDIS()                                                                            \
    do {                                                                                           \
        if (rc == NULL)                                                                            \
            skip();                                                                                \
    } while (0)

static struct cache_balances bal(const char *member, int64_t points, int64_t version)
{
    return (struct cache_balances){.tenant_id = tenant,
                                   .member_id = member,
                                   .points = points,
                                   .sv_principal = points * 10,
                                   .sv_bonus = points * 100,
                                   .version = version,
                                   .points_pending = points * 3};
}

static void test_key(void **state)
{
    char key[CACHE_KEY_MAX];
    assert_int_equal(cache_balances_key(key, sizeof key, "t1", "m1"), 0);
    assert_string_equal(key, "tessera:t1:member:m1:balances");
    char small[10];
    assert_int_equal(cache_balances_key(small, sizeof small, "t1", "m1"), -1);
    char long_member[CACHE_KEY_MAX + 1];
    memset(long_member, 'm', CACHE_KEY_MAX);
    long_member[CACHE_KEY_MAX] = '\0';
    assert_int_equal(cache_balances_key(key, sizeof key, "t1", long_member), -1);
}

static void test_put_versioned(void **state)
{
    REQUIRE_REDIS();
    char err[ERR_MAX];
    struct cache_balances v2 = bal("m-versioned", 200, 2), v1 = bal("m-versioned", 100, 1);
    assert_int_equal(cache_put_balances(rc, &v2, 1, err, sizeof err), 1);
    assert_int_equal(cache_put_balances(rc, &v1, 1, err, sizeof err), 0); /* older: ignored */
    assert_int_equal(cache_put_balances(rc, &v2, 1, err, sizeof err), 0); /* same: ignored */
    struct cache_balances got = {.tenant_id = "untouched", .member_id = "untouched"};
    assert_int_equal(cache_get_balances(rc, tenant, "m-versioned", &got), 1);
    assert_int_equal(got.points, 200);
    assert_int_equal(got.sv_principal, 2000);
    assert_int_equal(got.sv_bonus, 20000);
    assert_int_equal(got.version, 2);
    assert_int_equal(got.points_pending, 600);
    assert_string_equal(got.tenant_id, "untouched");

    /* One pipelined batch: two new hashes, one stale write, one newer. */
    struct cache_balances batch[] = {bal("m-b1", 1, 1), bal("m-b2", -5, 7),
                                     bal("m-versioned", 150, 1), bal("m-versioned", 300, 3)};
    assert_int_equal(cache_put_balances(rc, batch, 4, err, sizeof err), 3);
    assert_int_equal(cache_get_balances(rc, tenant, "m-versioned", &got), 1);
    assert_int_equal(got.points, 300);
    assert_int_equal(cache_get_balances(rc, tenant, "m-b2", &got), 1);
    assert_int_equal(got.points, -5);
}

static void test_put_after_script_flush(void **state)
{
    REQUIRE_REDIS();
    char err[ERR_MAX];
    freeReplyObject(redisCommand(rc, "SCRIPT FLUSH"));
    struct cache_balances items[] = {bal("m-noscript", 5, 10), bal("m-noscript2", 6, 10)};
    assert_int_equal(cache_put_balances(rc, items, 2, err, sizeof err), 2);
    /* The script is loaded again: EVALSHA works on the next batch. */
    items[0].version = 11;
    assert_int_equal(cache_put_balances(rc, items, 1, err, sizeof err), 1);
    struct cache_balances got = {0};
    assert_int_equal(cache_get_balances(rc, tenant, "m-noscript", &got), 1);
    assert_int_equal(got.version, 11);
}

static void test_get_miss(void **state)
{
    REQUIRE_REDIS();
    struct cache_balances got = {0};
    assert_int_equal(cache_get_balances(rc, tenant, "m-nobody", &got), 0);
}

/* A hash written before points_pending was cached is a miss (readers go
 * to PostgreSQL); a write of the same version (the start-up resync) or a
 * newer one completes it, an older one does not. */
static void test_hash_without_points_pending(void **state)
{
    REQUIRE_REDIS();
    char key[CACHE_KEY_MAX], err[ERR_MAX];
    assert_int_equal(cache_balances_key(key, sizeof key, tenant, "m-old-format"), 0);
    freeReplyObject(
        redisCommand(rc, "HSET %s points 5 sv_principal 50 sv_bonus 500 version 3", key));
    struct cache_balances got = {0};
    assert_int_equal(cache_get_balances(rc, tenant, "m-old-format", &got), 0);
    /* an older version never replaces it; the same version completes it */
    struct cache_balances v2 = bal("m-old-format", 9, 2), v3 = bal("m-old-format", 5, 3);
    assert_int_equal(cache_put_balances(rc, &v2, 1, err, sizeof err), 0);
    assert_int_equal(cache_put_balances(rc, &v3, 1, err, sizeof err), 1);
    assert_int_equal(cache_get_balances(rc, tenant, "m-old-format", &got), 1);
    assert_int_equal(got.points_pending, 15);
    assert_int_equal(cache_put_balances(rc, &v3, 1, err, sizeof err),
                     0); /* complete: same is ignored */
    struct cache_balances v4 = bal("m-old-format", 7, 4);
    assert_int_equal(cache_put_balances(rc, &v4, 1, err, sizeof err), 1);
    assert_int_equal(cache_get_balances(rc, tenant, "m-old-format", &got), 1);
    assert_int_equal(got.points_pending, 21);
    assert_int_equal(got.version, 4);
}

/* ---- cards ---- */

static struct cache_card cc(const char *id, int64_t version, int64_t uses_left)
{
    struct cache_card c = {.version = version,
                           .uses_left = uses_left,
                           .valid_from_us = 1000,
                           .valid_to_us = 2000,
                           .created_us = 1000};
    snprintf(c.card_id, sizeof c.card_id, "%s", id);
    snprintf(c.product_id, sizeof c.product_id, "p1");
    snprintf(c.kind, sizeof c.kind, "count");
    return c;
}

static struct cache_member_cards member_cards(const char *member, const struct cache_card *cards,
                                              size_t n)
{
    return (struct cache_member_cards){.tenant_id = tenant,
                                       .member_id = member,
                                       .card_count = (int64_t)n,
                                       .cards = cards,
                                       .n_cards = n};
}

static const struct cache_card *read_card(const struct cache_cards_read *r, const char *id)
{
    for (size_t i = 0; i < r->n_cards; i++)
        if (strcmp(r->cards[i].card_id, id) == 0)
            return &r->cards[i];
    return NULL;
}

/* Each card is versioned on its own within the member's hash: in one
 * write a newer card replaces its field while an older one is ignored;
 * the count never shrinks. */
static void test_cards_put_versioned(void **state)
{
    REQUIRE_REDIS();
    char err[ERR_MAX];
    static struct cache_cards_read got;
    struct cache_card first[] = {cc("c1", 1, 10), cc("c2", 1, 5)};
    struct cache_member_cards m = member_cards("m-cards", first, 2);
    assert_int_equal(cache_put_cards(rc, &m, 1, err, sizeof err), 2);
    assert_int_equal(cache_get_cards(rc, tenant, "m-cards", &got), 1);
    assert_int_equal(got.card_count, 2);
    assert_int_equal(read_card(&got, "c1")->uses_left, 10);

    /* c1 used twice (v3), while a late write still carries c2 at v1 */
    struct cache_card second[] = {cc("c1", 3, 8), cc("c2", 1, 5)};
    m = member_cards("m-cards", second, 2);
    assert_int_equal(cache_put_cards(rc, &m, 1, err, sizeof err), 1);
    /* an instance that lost the partition writes its older state late */
    struct cache_card late[] = {cc("c1", 2, 9), cc("c2", 1, 5)};
    m = member_cards("m-cards", late, 2);
    assert_int_equal(cache_put_cards(rc, &m, 1, err, sizeof err), 0);
    /* and an even older one, from before c2 existed */
    struct cache_card older[] = {cc("c1", 1, 10)};
    m = member_cards("m-cards", older, 1);
    assert_int_equal(cache_put_cards(rc, &m, 1, err, sizeof err), 0);
    assert_int_equal(cache_get_cards(rc, tenant, "m-cards", &got), 1);
    assert_int_equal(got.card_count, 2);
    assert_int_equal(read_card(&got, "c1")->version, 3);
    assert_int_equal(read_card(&got, "c1")->uses_left, 8);
    assert_int_equal(read_card(&got, "c2")->version, 1);

    /* a member past the limit: only the count, and readers miss */
    m = (struct cache_member_cards){
        .tenant_id = tenant, .member_id = "m-cards", .card_count = CACHE_CARDS_PER_MEMBER_MAX + 1};
    assert_int_equal(cache_put_cards(rc, &m, 1, err, sizeof err), 0);
    assert_int_equal(cache_get_cards(rc, tenant, "m-cards", &got), 0);
    assert_int_equal(got.card_count, CACHE_CARDS_PER_MEMBER_MAX + 1);

    /* a set that is not the member's whole set is refused before sending */
    m = member_cards("m-cards", first, 2);
    m.card_count = 3;
    assert_int_equal(cache_put_cards(rc, &m, 1, err, sizeof err), -1);
    assert_int_equal(cache_get_cards(rc, tenant, "m-nobody", &got), 0);
}

/* The script and cache_card_replaces (what the unit tests check) agree on
 * every case of a table: the cached field, if any, against an incoming
 * write. */
static void test_cards_script_follows_the_rule(void **state)
{
    REQUIRE_REDIS();
    struct rule_case {
        const char *cached; /* NULL: no field */
        int64_t incoming;
    } cases[] = {{NULL, 0},
                 {NULL, 4},
                 {"3|count|1|1|2|0|0|0|1|p", 4},
                 {"4|count|1|1|2|0|0|0|1|p", 4},
                 {"5|count|1|1|2|0|0|0|1|p", 4},
                 {"10|count|1|1|2|0|0|0|1|p", 9},
                 {"9|count|1|1|2|0|0|0|1|p", 10},
                 {"garbage", 1},
                 {"", 1},
                 {"-3|count|1|1|2|0|0|0|1|p", 1}};
    char key[CACHE_KEY_MAX], err[ERR_MAX], value[CACHE_CARD_VALUE_MAX];
    assert_int_equal(cache_cards_key(key, sizeof key, tenant, "m-rule"), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        freeReplyObject(redisCommand(rc, "DEL %s", key));
        if (cases[i].cached)
            freeReplyObject(redisCommand(rc, "HSET %s c1 %s", key, cases[i].cached));
        struct cache_card in = cc("c1", cases[i].incoming, 42);
        int len = cache_card_encode(&in, value, sizeof value);
        bool want = cache_card_replaces(
            cases[i].cached, cases[i].cached ? strlen(cases[i].cached) : 0, value, (size_t)len);
        struct cache_member_cards m = member_cards("m-rule", &in, 1);
        int written = cache_put_cards(rc, &m, 1, err, sizeof err);
        redisReply *r = redisCommand(rc, "HGET %s c1", key);
        assert_non_null(r);
        bool replaced = r->type == REDIS_REPLY_STRING && strcmp(r->str, value) == 0;
        freeReplyObject(r);
        if (written != (want ? 1 : 0) || replaced != want)
            fail_msg("case %zu (cached %s, incoming v%lld): script wrote %d, rule says %d", i,
                     cases[i].cached ? cases[i].cached : "none", (long long)cases[i].incoming,
                     written, want);
    }
}

/* Balances and cards of a batch go in one pipelined call, and survive the
 * server losing its scripts. */
static void test_member_state_one_call(void **state)
{
    REQUIRE_REDIS();
    char err[ERR_MAX];
    freeReplyObject(redisCommand(rc, "SCRIPT FLUSH"));
    struct cache_balances b[] = {bal("m-state", 7, 3), bal("m-state2", 8, 1)};
    struct cache_card cards[] = {cc("k1", 2, 4)};
    struct cache_member_cards m[] = {member_cards("m-state", cards, 1),
                                     member_cards("m-state2", NULL, 0)};
    assert_int_equal(cache_put_member_state(rc, b, 2, m, 2, err, sizeof err), 3);
    struct cache_balances got = {0};
    assert_int_equal(cache_get_balances(rc, tenant, "m-state", &got), 1);
    assert_int_equal(got.points, 7);
    static struct cache_cards_read read;
    assert_int_equal(cache_get_cards(rc, tenant, "m-state", &read), 1);
    assert_int_equal(read.cards[0].uses_left, 4);
    assert_int_equal(cache_get_cards(rc, tenant, "m-state2", &read), 1); /* zero cards, known */
    assert_int_equal(read.n_cards, 0);
    /* EVALSHA works again for both scripts */
    cards[0] = cc("k1", 3, 3);
    assert_int_equal(cache_put_member_state(rc, b, 1, m, 1, err, sizeof err), 1);
    assert_int_equal(cache_get_cards(rc, tenant, "m-state", &read), 1);
    assert_int_equal(read.cards[0].uses_left, 3);
}

/* ---- async ---- */

struct get_call {
    int calls;
    int status;
    struct cache_balances b;
    char member_id[64]; /* b's strings are valid only during the callback */
};

static void get_cb(void *arg, int status, const struct cache_balances *b)
{
    struct get_call *call = arg;
    call->calls++;
    call->status = status;
    if (status == 1) {
        assert_non_null(b);
        call->b = *b;
        snprintf(call->member_id, sizeof call->member_id, "%s", b->member_id);
        call->b.member_id = NULL;
        call->b.tenant_id = NULL;
    }
}

static bool call_done(void *arg)
{
    return ((struct get_call *)arg)->calls > 0;
}

static bool async_connected(void *arg)
{
    return cache_async_connected(arg);
}

/* Issues a get and waits for its answer; checks the callback was not run
 * inside the call and ran exactly once. */
static struct get_call async_get(struct event_base *base, struct cache_async *c, const char *member)
{
    struct get_call call = {0};
    cache_async_get_balances(c, tenant, member, get_cb, &call);
    assert_int_equal(call.calls, 0);
    assert_true(loop_until(base, call_done, &call, DEADLINE_MS));
    /* Let any stray second call or late timer show up. */
    struct event *ev = evtimer_new(base, tick_cb, NULL);
    struct timeval tv = {0, 200 * 1000};
    evtimer_add(ev, &tv);
    event_base_loop(base, EVLOOP_ONCE);
    event_free(ev);
    assert_int_equal(call.calls, 1);
    return call;
}

/* The runtime's Redis asks for a password: a client without it can do
 * nothing, one with a wrong password cannot connect, and every connection
 * the services open (sync and async) sends TESSERA_REDIS_PASSWORD. */
static void test_password_required(void **state)
{
    REQUIRE_REDIS();
    redisContext *raw = redisConnect(host, port);
    assert_true(raw && !raw->err);
    redisReply *r = redisCommand(raw, "GET %s", "tessera:any");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "NOAUTH"));
    freeReplyObject(r);
    redisFree(raw);

    char err[ERR_MAX] = "";
    assert_int_equal(cache_set_password("not-the-password"), 0);
    assert_null(cache_connect(host, port, TIMEOUT_MS, err, sizeof err));
    assert_non_null(strstr(err, "cache auth"));
    assert_int_equal(cache_set_password(getenv("TESSERA_REDIS_PASSWORD")), 0);
    redisContext *ok = cache_connect(host, port, TIMEOUT_MS, err, sizeof err);
    assert_non_null(ok);
    redisFree(ok);
}

static void test_async_get_hit_miss_flush(void **state)
{
    REQUIRE_REDIS();
    char err[ERR_MAX];
    struct cache_balances v = bal("m-async", 42, 4);
    assert_int_equal(cache_put_balances(rc, &v, 1, err, sizeof err), 1);

    struct event_base *base = event_base_new();
    struct cache_async *c = cache_async_new(base, host, port, err, sizeof err);
    assert_non_null(c);
    assert_true(loop_until(base, async_connected, c, DEADLINE_MS));

    struct get_call hit = async_get(base, c, "m-async");
    assert_int_equal(hit.status, 1);
    assert_int_equal(hit.b.points, 42);
    assert_int_equal(hit.b.version, 4);
    assert_int_equal(hit.b.points_pending, 126);
    assert_string_equal(hit.member_id, "m-async");

    struct get_call miss = async_get(base, c, "m-async-nobody");
    assert_int_equal(miss.status, 0);

    freeReplyObject(redisCommand(rc, "FLUSHALL"));
    struct get_call flushed = async_get(base, c, "m-async");
    assert_int_equal(flushed.status, 0);

    /* Outstanding at free: answered exactly once, with -1. */
    struct get_call pending = {0};
    cache_async_get_balances(c, tenant, "m-async", get_cb, &pending);
    cache_async_free(c);
    assert_int_equal(pending.calls, 1);
    assert_int_equal(pending.status, -1);
    event_base_free(base);
}

struct cards_call {
    int calls;
    int status;
    int64_t uses_left;
};

static void cards_cb(void *arg, int status, const struct cache_cards_read *cards)
{
    struct cards_call *call = arg;
    call->calls++;
    call->status = status;
    if (status == 1) {
        assert_non_null(cards);
        call->uses_left = cards->n_cards > 0 ? cards->cards[0].uses_left : -1;
    } else {
        assert_null(cards);
    }
}

static bool cards_done(void *arg)
{
    return ((struct cards_call *)arg)->calls > 0;
}

static struct cards_call async_get_cards(struct event_base *base, struct cache_async *c,
                                         const char *member)
{
    struct cards_call call = {0};
    cache_async_get_cards(c, tenant, member, cards_cb, &call);
    assert_int_equal(call.calls, 0);
    assert_true(loop_until(base, cards_done, &call, DEADLINE_MS));
    return call;
}

static void test_async_get_cards(void **state)
{
    REQUIRE_REDIS();
    char err[ERR_MAX];
    struct cache_card cards[] = {cc("a1", 1, 9)};
    struct cache_member_cards m = member_cards("m-async-cards", cards, 1);
    assert_int_equal(cache_put_cards(rc, &m, 1, err, sizeof err), 1);
    struct event_base *base = event_base_new();
    struct cache_async *c = cache_async_new(base, host, port, err, sizeof err);
    assert_non_null(c);
    assert_true(loop_until(base, async_connected, c, DEADLINE_MS));
    struct cards_call hit = async_get_cards(base, c, "m-async-cards");
    assert_int_equal(hit.status, 1);
    assert_int_equal(hit.uses_left, 9);
    /* a hash missing the count (half-refilled) is a miss, like no hash */
    char key[CACHE_KEY_MAX];
    assert_int_equal(cache_cards_key(key, sizeof key, tenant, "m-async-cards"), 0);
    freeReplyObject(redisCommand(rc, "HDEL %s %s", key, CACHE_CARDS_COUNT_FIELD));
    assert_int_equal(async_get_cards(base, c, "m-async-cards").status, 0);
    assert_int_equal(async_get_cards(base, c, "m-async-cards-nobody").status, 0);
    cache_async_free(c);
    event_base_free(base);
}

/* A port on which nothing listens: bind, read the port, close. */
static int unused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* A server that accepts connections (the kernel's backlog) and never
 * answers; returns its socket and sets *out_port. */
static int silent_listener(int *out_port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *out_port = ntohs(sa.sin_port);
    return fd;
}

/* An async client connected to 127.0.0.1:server_port within the deadline. */
static struct cache_async *connected_client(struct event_base *base, int server_port)
{
    char err[ERR_MAX];
    struct cache_async *c = cache_async_new(base, "127.0.0.1", server_port, err, sizeof err);
    assert_non_null(c);
    assert_true(loop_until(base, async_connected, c, DEADLINE_MS));
    return c;
}

static void test_async_unreachable(void **state)
{
    char err[ERR_MAX];
    struct event_base *base = event_base_new();
    struct cache_async *c = cache_async_new(base, "127.0.0.1", unused_port(), err, sizeof err);
    assert_non_null(c);
    int64_t start = now_ms();
    struct get_call call = async_get(base, c, "m-any");
    assert_int_equal(call.status, -1);
    assert_true(now_ms() - start < DEADLINE_MS);
    assert_false(cache_async_connected(c));
    cache_async_free(c);
    event_base_free(base);
}

/* Accepts the connection (kernel backlog) but never answers: the request
 * must time out with -1, exactly once. */
static void test_async_request_timeout(void **state)
{
    int server_port;
    int fd = silent_listener(&server_port);
    struct event_base *base = event_base_new();
    struct cache_async *c = connected_client(base, server_port);
    struct get_call call = async_get(base, c, "m-silent");
    assert_int_equal(call.status, -1);
    cache_async_free(c); /* the request is still in hiredis: freed, not answered again */
    assert_int_equal(call.calls, 1);
    event_base_free(base);
    close(fd);
}

/* ---- the member view: four reads in one pipeline (cache_view.c) ---- */
struct view_call {
    int calls;
    struct cache_member_view v;
};

static void view_cb(void *arg, struct cache_member_view *v)
{
    struct view_call *call = arg;
    call->calls++;
    call->v = *v; /* takes what v holds */
    free(v);
}

static bool view_done(void *arg)
{
    return ((struct view_call *)arg)->calls > 0;
}

/* Issues a view read and waits for its answer: called once, never inside
 * the call. The caller clears call.v. */
static struct view_call async_view(struct event_base *base, struct cache_async *c,
                                   const char *member)
{
    struct view_call call = {0};
    cache_async_get_member_view(c, tenant, member, view_cb, &call);
    assert_int_equal(call.calls, 0);
    assert_true(loop_until(base, view_done, &call, DEADLINE_MS));
    struct event *ev = evtimer_new(base, tick_cb, NULL);
    struct timeval tv = {0, 200 * 1000};
    evtimer_add(ev, &tv);
    event_base_loop(base, EVLOOP_ONCE);
    event_free(ev);
    assert_int_equal(call.calls, 1);
    return call;
}

/* Each part answers from its own hash: a hit where the hash is, a miss
 * where it is not, in the same round trip. */
static void test_async_member_view_parts(void **state)
{
    REQUIRE_REDIS();
    char err[ERR_MAX];
    struct cache_balances b = bal("m-view", 300, 3);
    assert_int_equal(cache_put_balances(rc, &b, 1, err, sizeof err), 1);
    struct event_base *base = event_base_new();
    struct cache_async *c = cache_async_new(base, host, port, err, sizeof err);
    assert_non_null(c);
    assert_true(loop_until(base, async_connected, c, DEADLINE_MS));

    struct view_call call = async_view(base, c, "m-view");
    assert_int_equal(call.v.balances_status, 1);
    assert_int_equal(call.v.balances.points, 300);
    assert_int_equal(call.v.balances.version, 3);
    assert_int_equal(call.v.profile_status, 0);
    assert_int_equal(call.v.coupons_status, 0);
    assert_int_equal(call.v.tier_status, 0);
    assert_int_equal(call.v.cards_status, 0);
    cache_member_view_clear(&call.v);

    call = async_view(base, c, "m-view-nobody");
    assert_int_equal(call.v.balances_status, 0);
    assert_int_equal(call.v.profile_status, 0);
    cache_member_view_clear(&call.v);
    cache_async_free(c);
    event_base_free(base);
}

/* Redis away: every part fails (-1), and the caller hears once. */
static void test_async_member_view_unreachable(void **state)
{
    char err[ERR_MAX];
    struct event_base *base = event_base_new();
    struct cache_async *c = cache_async_new(base, "127.0.0.1", unused_port(), err, sizeof err);
    assert_non_null(c);
    struct view_call call = async_view(base, c, "m-any");
    assert_int_equal(call.v.profile_status, -1);
    assert_int_equal(call.v.coupons_status, -1);
    assert_int_equal(call.v.balances_status, -1);
    assert_int_equal(call.v.tier_status, -1);
    assert_int_equal(call.v.cards_status, -1);
    cache_member_view_clear(&call.v);
    cache_async_free(c);
    event_base_free(base);
}

/* A server that never answers: the pipeline's one timer fails every part
 * once; freeing the client (the commands still in hiredis) calls nobody
 * again. */
static void test_async_member_view_timeout(void **state)
{
    int server_port;
    int fd = silent_listener(&server_port);
    struct event_base *base = event_base_new();
    struct cache_async *c = connected_client(base, server_port);
    struct view_call call = async_view(base, c, "m-silent");
    assert_int_equal(call.v.profile_status, -1);
    assert_int_equal(call.v.balances_status, -1);
    assert_int_equal(call.v.tier_status, -1);
    assert_int_equal(call.v.cards_status, -1);
    cache_member_view_clear(&call.v);
    cache_async_free(c);
    assert_int_equal(call.calls, 1);
    event_base_free(base);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_password_required),
        cmocka_unit_test(test_put_versioned),
        cmocka_unit_test(test_put_after_script_flush),
        cmocka_unit_test(test_get_miss),
        cmocka_unit_test(test_hash_without_points_pending),
        cmocka_unit_test(test_cards_put_versioned),
        cmocka_unit_test(test_cards_script_follows_the_rule),
        cmocka_unit_test(test_member_state_one_call),
        cmocka_unit_test(test_async_get_cards),
        cmocka_unit_test(test_async_get_hit_miss_flush),
        cmocka_unit_test(test_async_unreachable),
        cmocka_unit_test(test_async_request_timeout),
        cmocka_unit_test(test_async_member_view_parts),
        cmocka_unit_test(test_async_member_view_unreachable),
        cmocka_unit_test(test_async_member_view_timeout),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
