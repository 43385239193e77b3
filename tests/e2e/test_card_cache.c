/* Cards in the Redis cache, end to end against the runtime: a card use
 * leaves the new uses_left in Redis at the card's new version; the member
 * view and /v1/me answer from the cache (shown by the metric of the
 * source and by a value only the cache holds) and fall back to PostgreSQL
 * on a miss; the status is computed at read time, so a cached card turns
 * "expired" as time passes with no write; a corrupted cached card fails
 * the audit until repaired; with Redis stopped the ledger keeps applying,
 * and when Redis is back the cache is repaired without a new command for
 * the member. Each test leaves the cache agreeing with PostgreSQL (the
 * suite's final audit). Product ids carry a run id: the runtime is
 * shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/api_client.h"
#include "../support/login_code.h"
#include "../support/ops_client.h"
#include "cache/cache.h"
#include "events/codec.h"

#define DEADLINE_MS      30000
#define AUDIT_OUTPUT_MAX 65536
#define CARDS_READS      "tessera_ingest_member_cards_reads_total"
#define FROM_CACHE       "source=\"cache\""
#define FROM_POSTGRES    "source=\"postgres\""

static char run_id[32];
static char product[64];
static redisContext *rc;

static int setup(void **state)
{
    snprintf(run_id, sizeof(run_id), "%ld-%d", (long)time(NULL), (int)getpid());
    snprintf(product, sizeof(product), "cache-ten-%s", run_id);
    char err[256];
    if (cache_set_password(getenv("TESSERA_REDIS_PASSWORD")) != 0)
        return -1;
    rc = cache_connect(getenv("TESSERA_REDIS_HOST"), atoi(getenv("TESSERA_REDIS_PORT")), 2000, err,
                       sizeof(err));
    if (!rc) {
        fprintf(stderr, "redis: %s\n", err);
        return -1;
    }
    char body[256];
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"kind\":\"count\",\"name\":\"10 classes\",\"price\":1000,"
             "\"uses\":10,\"validity_days\":90}",
             product);
    struct api_response r = api_post("/v1/products", body, NULL);
    int ok = r.status == 201 ? 0 : -1;
    api_response_free(&r);
    return ok;
}

/* Requests whose answer, not speed, a test checks. */
static const char *const LONG_WAIT[] = {"Prefer: wait=30", NULL};

/* Redis back whatever the test did: a failure while it was stopped must
 * not take every later test of the suite with it. */
static int redis_back(void **state)
{
    return runtime_do("start-redis") == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    if (rc)
        redisFree(rc);
    return 0;
}

/* ------------------------------------------------------- helpers */
static void sell(const char *member_id, char card_id[64])
{
    char path[160], body[256];
    snprintf(path, sizeof(path), "/v1/members/%s/cards", member_id);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}",
             product);
    struct api_response r = api_post(path, body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(card_id, 64, "%s", json_str_at(r.body, "card_id"));
    api_response_free(&r);
}

/* One use at hq; asserts 201 and the uses left it answers. */
static void use(const char *member_id, const char *card_id, int64_t want_left)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/members/%s/cards/%s/uses", member_id, card_id);
    /* The answer is what is checked, not its speed: with Redis stopped the
     * verdict comes by the Kafka tail, slower than the default wait on a
     * busy machine. */
    struct api_response r = api_call("POST", path, "{\"branch_id\":\"hq\"}", NULL, LONG_WAIT);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "uses_left"), want_left);
    api_response_free(&r);
}

static void topup(const char *member_id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s/topups", member_id);
    struct api_response r =
        api_call("POST", path, "{\"amount\":100,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
                 NULL, LONG_WAIT);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
}

static int64_t pg_card(const char *card_id, const char *column)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT %s FROM ledger.cards WHERE card_id = $1", column);
    PGconn *pg = test_pg();
    const char *p[1] = {card_id};
    int64_t v = test_pg_int(pg, sql, 1, p);
    PQfinish(pg);
    return v;
}

static void cards_key(const char *member_id, char key[CACHE_KEY_MAX])
{
    assert_int_equal(cache_cards_key(key, CACHE_KEY_MAX, "demo", member_id), 0);
}

/* The member's card as Redis holds it; false when not cached. */
static bool cached_card(const char *member_id, const char *card_id, struct cache_card *out,
                        int *complete)
{
    static struct cache_cards_read read;
    int status = cache_get_cards(rc, "demo", member_id, &read);
    assert_true(status >= 0);
    if (complete)
        *complete = status;
    for (size_t i = 0; i < read.n_cards; i++) {
        if (strcmp(read.cards[i].card_id, card_id) == 0) {
            *out = read.cards[i];
            return true;
        }
    }
    return false;
}

struct want {
    const char *member_id, *card_id;
    int64_t version, uses_left;
};

/* Redis holds the card, complete, at this version with these uses. */
static bool cache_holds(void *arg)
{
    const struct want *w = arg;
    struct cache_card k;
    int complete = 0;
    return cached_card(w->member_id, w->card_id, &k, &complete) && complete == 1 &&
           k.version == w->version && k.uses_left == w->uses_left;
}

/* Writes a card's cached field as is (a test's own value), bypassing the
 * versioned script. */
static void cache_set_raw(const char *member_id, const struct cache_card *k)
{
    char key[CACHE_KEY_MAX], value[CACHE_CARD_VALUE_MAX];
    cards_key(member_id, key);
    assert_true(cache_card_encode(k, value, sizeof(value)) > 0);
    redisReply *r = redisCommand(rc, "HSET %s %s %s", key, k->card_id, value);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

static void cache_drop(const char *member_id)
{
    char key[CACHE_KEY_MAX];
    cards_key(member_id, key);
    freeReplyObject(redisCommand(rc, "DEL %s", key));
}

static double reads_from(const char *source)
{
    double v = ops_metric("ingest", CARDS_READS, source);
    return v < 0 ? 0 : v; /* no series until the first read */
}

/* GET path (with key, NULL: the demo admin key); the card as the view
 * shows it (a new reference). */
static json_t *view_card_at(const char *path, const char *key, const char *card_id)
{
    struct api_response r = api_call("GET", path, NULL, key, NULL);
    assert_int_equal(r.status, 200);
    json_t *found = NULL, *c;
    size_t i;
    json_array_foreach(json_object_get(r.body, "cards"), i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "card_id")), card_id) == 0)
            found = json_incref(c);
    }
    api_response_free(&r);
    assert_non_null(found);
    return found;
}

static json_t *view_card(const char *member_id, const char *card_id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", member_id);
    return view_card_at(path, NULL, card_id);
}

static int64_t view_uses_left(const char *member_id, const char *card_id)
{
    json_t *c = view_card(member_id, card_id);
    int64_t v = json_integer_value(json_object_get(c, "uses_left"));
    json_decref(c);
    return v;
}

/* Runs the audit; returns its exit status and its report in out. */
static int audit_run(char *out, size_t out_len)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s audit 2>&1", getenv("TESSERA_RUNTIME"));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, out_len - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void expect_audit_passes(void)
{
    static char report[AUDIT_OUTPUT_MAX];
    int status = audit_run(report, sizeof(report));
    if (status != 0)
        fprintf(stderr, "audit report:\n%s\n", report);
    assert_int_equal(status, 0);
    assert_non_null(strstr(report, "audit: ok    redis cards agree with postgres"));
}

static void expect_cards_audit_fails(const char *member_id, const char *detail)
{
    static char report[AUDIT_OUTPUT_MAX];
    int status = audit_run(report, sizeof(report));
    bool named = strstr(report, "FAIL  redis cards agree with postgres") &&
                 strstr(report, member_id) && strstr(report, detail);
    if (status != 1 || !named)
        fprintf(stderr, "audit report:\n%s\n", report);
    assert_int_equal(status, 1);
    assert_true(named);
}

/* ------------------------------------------------------- tests */
/* Issued (version 1), used (version 2): Redis holds uses_left 9 at
 * version 2, exactly PostgreSQL's row, and the member's whole set. */
static void test_use_writes_cache(void **state)
{
    char member[64], card[64];
    test_register_member(member);
    sell(member, card);
    struct want issued = {member, card, 1, 10};
    assert_true(poll_until(cache_holds, &issued, DEADLINE_MS));
    use(member, card, 9);
    assert_int_equal(pg_card(card, "version"), 2);
    assert_int_equal(pg_card(card, "uses_left"), 9);
    struct want used = {member, card, 2, 9};
    assert_true(poll_until(cache_holds, &used, DEADLINE_MS));
    struct cache_card k;
    int complete = 0;
    assert_true(cached_card(member, card, &k, &complete));
    assert_int_equal(complete, 1);
    assert_string_equal(k.kind, "count");
    assert_string_equal(k.product_id, product);
    assert_int_equal(k.valid_from_us, pg_card(card, "valid_from_us"));
    assert_int_equal(k.valid_to_us, pg_card(card, "valid_to_us"));
    assert_int_equal(k.freeze_days_left, pg_card(card, "freeze_days_left"));
    /* a second card: the hash holds both, the first untouched */
    char second[64];
    sell(member, second);
    struct want both = {member, second, 1, 10};
    assert_true(poll_until(cache_holds, &both, DEADLINE_MS));
    assert_true(poll_until(cache_holds, &used, DEADLINE_MS));
}

/* The member view answers from Redis: the metric counts the cache, and a
 * value only Redis holds (written at a newer version than the ledger's)
 * is what the view shows. Without the hash it answers from PostgreSQL;
 * the next change refills the hash and the cache answers again. */
static void test_member_view_reads_cache(void **state)
{
    char member[64], card[64];
    test_register_member(member);
    sell(member, card);
    use(member, card, 9);
    struct want used = {member, card, 2, 9};
    assert_true(poll_until(cache_holds, &used, DEADLINE_MS));

    double cache_before = reads_from(FROM_CACHE), pg_before = reads_from(FROM_POSTGRES);
    json_t *c = view_card(member, card);
    assert_int_equal(json_integer_value(json_object_get(c, "uses_left")), 9);
    assert_string_equal(json_string_value(json_object_get(c, "status")), "active");
    json_decref(c);
    assert_true(reads_from(FROM_CACHE) == cache_before + 1);
    assert_true(reads_from(FROM_POSTGRES) == pg_before);

    /* only the cache says 77 */
    struct cache_card k;
    assert_true(cached_card(member, card, &k, NULL));
    struct cache_card marked = k;
    marked.version += 1000;
    marked.uses_left = 77;
    cache_set_raw(member, &marked);
    assert_int_equal(view_uses_left(member, card), 77);
    /* the ledger's next write is older than the mark: ignored */
    use(member, card, 8);
    assert_int_equal(view_uses_left(member, card), 77);

    /* a miss: PostgreSQL answers, and says so */
    cache_drop(member);
    pg_before = reads_from(FROM_POSTGRES);
    assert_int_equal(view_uses_left(member, card), 8);
    assert_true(reads_from(FROM_POSTGRES) == pg_before + 1);

    /* the next use refills the member's hash: the cache answers again */
    use(member, card, 7);
    struct want refilled = {member, card, 4, 7};
    assert_true(poll_until(cache_holds, &refilled, DEADLINE_MS));
    cache_before = reads_from(FROM_CACHE);
    assert_int_equal(view_uses_left(member, card), 7);
    assert_true(reads_from(FROM_CACHE) == cache_before + 1);
}

/* /v1/me (a member's own token) reads the same cache. The login code is
 * read back from notify-requests, as the notification service would. */
static bool read_login_code(const char *member_id, char code[8])
{
    char errstr[256], group[64];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(group, sizeof(group), "test-card-cache-%d", (int)getpid());
    rd_kafka_conf_set(conf, "bootstrap.servers", getenv("TESSERA_KAFKA_BOOTSTRAP"), errstr,
                      sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, "notify-requests", RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(rk, topics), 0);
    rd_kafka_topic_partition_list_destroy(topics);
    bool found = false;
    time_t deadline = time(NULL) + DEADLINE_MS / 1000;
    while (!found && time(NULL) < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        bool mine = !m->err && m->key && m->key_len == strlen(member_id) &&
                    memcmp(m->key, member_id, m->key_len) == 0;
        char why[128];
        Envelope *env = mine ? envelope_decode(m->payload, m->len, why, sizeof(why)) : NULL;
        struct login_code sent;
        if (env && login_code_of(env, &sent)) {
            snprintf(code, 8, "%s", sent.code);
            found = true;
        }
        envelope_free(env);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return found;
}

/* An unknown (well-formed) member token answers 401 once ingest's session
 * store talks to Redis again; it reconnects on a request, after 503s. */
static bool sessions_answer(void *arg)
{
    char token[80];
    snprintf(token, sizeof(token), "tsm_%064d", 0);
    struct api_response r = api_call("GET", "/v1/me", NULL, token, NULL);
    long status = r.status;
    api_response_free(&r);
    return status == 401;
}

static void test_me_reads_cache(void **state)
{
    assert_true(poll_until(sessions_answer, NULL, DEADLINE_MS));
    char phone[16], body[256], member[64], card[64], code[8], token[160];
    test_unique_phone(phone);
    snprintf(body, sizeof(body),
             "{\"name\":\"Cache Member\",\"phone\":\"%s\",\"branch_id\":\"hq\"}", phone);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(member, sizeof(member), "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
    sell(member, card);
    struct want issued = {member, card, 1, 10};
    assert_true(poll_until(cache_holds, &issued, DEADLINE_MS));

    snprintf(body, sizeof(body), "{\"phone\":\"%s\"}", phone);
    r = api_app_post("/v1/auth/sms-codes", body);
    assert_int_equal(r.status, 202);
    api_response_free(&r);
    assert_true(read_login_code(member, code));
    snprintf(body, sizeof(body), "{\"phone\":\"%s\",\"code\":\"%s\",\"device_id\":\"cache-test\"}",
             phone, code);
    r = api_app_post("/v1/auth/sessions", body);
    assert_int_equal(r.status, 201);
    snprintf(token, sizeof(token), "%s", json_str_at(r.body, "token"));
    api_response_free(&r);

    struct cache_card k;
    assert_true(cached_card(member, card, &k, NULL));
    struct cache_card marked = k;
    marked.version += 1000;
    marked.uses_left = 55;
    cache_set_raw(member, &marked);
    double cache_before = reads_from(FROM_CACHE);
    json_t *c = view_card_at("/v1/me", token, card);
    assert_int_equal(json_integer_value(json_object_get(c, "uses_left")), 55);
    json_decref(c);
    assert_true(reads_from(FROM_CACHE) == cache_before + 1);
    cache_drop(member); /* the mark goes; PostgreSQL answers again */
    c = view_card_at("/v1/me", token, card);
    assert_int_equal(json_integer_value(json_object_get(c, "uses_left")), 10);
    json_decref(c);
}

struct status_probe {
    const char *member_id, *card_id, *want;
};

static bool view_status_is(void *arg)
{
    const struct status_probe *p = arg;
    json_t *c = view_card(p->member_id, p->card_id);
    bool is = strcmp(json_string_value(json_object_get(c, "status")), p->want) == 0;
    json_decref(c);
    return is;
}

/* Only valid_to is cached, never a status: a cached card whose validity
 * ends two seconds from now reads "active", then "expired" once the time
 * has passed, while the cached bytes stay the same. */
static void test_expiry_computed_at_read_time(void **state)
{
    char member[64], card[64], key[CACHE_KEY_MAX];
    test_register_member(member);
    sell(member, card);
    struct want issued = {member, card, 1, 10};
    assert_true(poll_until(cache_holds, &issued, DEADLINE_MS));
    struct cache_card k;
    assert_true(cached_card(member, card, &k, NULL));
    k.version += 1000; /* a test's value: the ledger's writes leave it be */
    k.valid_to_us = event_now_us() + 2 * 1000 * 1000;
    cache_set_raw(member, &k);
    cards_key(member, key);
    redisReply *before = redisCommand(rc, "HGET %s %s", key, card);
    assert_non_null(before);

    struct status_probe active = {member, card, "active"}, expired = {member, card, "expired"};
    assert_true(view_status_is(&active));
    assert_true(poll_until(view_status_is, &expired, DEADLINE_MS));
    redisReply *after = redisCommand(rc, "HGET %s %s", key, card);
    assert_non_null(after);
    assert_string_equal(after->str, before->str); /* nothing rewrote it */
    freeReplyObject(before);
    freeReplyObject(after);
    cache_drop(member); /* the test's value goes: PostgreSQL's card is still valid */
    assert_true(view_status_is(&active));
}

/* A cached card that differs from PostgreSQL at the same version fails
 * the audit, which names the member and the field; the repair passes it.
 * So does an unreadable cached card. */
static void test_corrupt_cache_fails_audit(void **state)
{
    char member[64], card[64], key[CACHE_KEY_MAX];
    test_register_member(member);
    sell(member, card);
    use(member, card, 9);
    struct want used = {member, card, 2, 9};
    assert_true(poll_until(cache_holds, &used, DEADLINE_MS));
    expect_audit_passes();

    struct cache_card k, wrong;
    assert_true(cached_card(member, card, &k, NULL));
    wrong = k;
    wrong.uses_left = 10; /* the use undone, at the same version */
    cache_set_raw(member, &wrong);
    expect_cards_audit_fails(member, "uses_left differs");
    cache_set_raw(member, &k);
    expect_audit_passes();

    cards_key(member, key);
    freeReplyObject(redisCommand(rc, "HSET %s %s %s", key, card, "2|count|nine"));
    expect_cards_audit_fails(member, "unreadable");
    cache_set_raw(member, &k);
    expect_audit_passes();
}

struct cached_view {
    const char *member_id, *card_id;
    int64_t uses_left;
};

/* One view, answered from the cache with these uses left. */
static bool view_from_cache(void *arg)
{
    const struct cached_view *v = arg;
    double before = reads_from(FROM_CACHE);
    int64_t left = view_uses_left(v->member_id, v->card_id);
    assert_int_equal(left, v->uses_left); /* from either source */
    return reads_from(FROM_CACHE) == before + 1;
}

/* Redis stopped: every use still answers 201 and the view reads
 * PostgreSQL. Redis back (empty): with no command at all after the
 * restart, the ledger's repair puts the member's card back at its
 * version (and ingest's views come back to the cache). */
static void test_redis_restart_repairs_cache(void **state)
{
    char member[64], card[64], other[64];
    test_register_member(member);
    test_register_member(other);
    sell(member, card);
    use(member, card, 9);
    struct want used = {member, card, 2, 9};
    assert_true(poll_until(cache_holds, &used, DEADLINE_MS));

    assert_int_equal(runtime_do("stop-redis"), 0);
    use(member, card, 8);
    use(member, card, 7);
    topup(other);
    double pg_before = reads_from(FROM_POSTGRES);
    assert_int_equal(view_uses_left(member, card), 7);
    assert_true(reads_from(FROM_POSTGRES) == pg_before + 1);

    assert_int_equal(runtime_do("start-redis"), 0);
    redisFree(rc);
    char err[256];
    rc = cache_connect(getenv("TESSERA_REDIS_HOST"), atoi(getenv("TESSERA_REDIS_PORT")), 2000, err,
                       sizeof(err));
    assert_non_null(rc);
    struct want repaired = {member, card, 4, 7};
    assert_true(poll_until(cache_holds, &repaired, DEADLINE_MS));
    assert_int_equal(pg_card(card, "version"), 4);
    /* ingest reconnects on its own back-off: its views come back to the cache */
    struct cached_view v = {member, card, 7};
    assert_true(poll_until(view_from_cache, &v, DEADLINE_MS));
    /* and its session store, which the tests after this one log in with */
    assert_true(poll_until(sessions_answer, NULL, DEADLINE_MS));
    expect_audit_passes();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_use_writes_cache),
        cmocka_unit_test(test_member_view_reads_cache),
        cmocka_unit_test(test_me_reads_cache),
        cmocka_unit_test(test_expiry_computed_at_read_time),
        cmocka_unit_test(test_corrupt_cache_fails_audit),
        cmocka_unit_test_teardown(test_redis_restart_repairs_cache, redis_back),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
