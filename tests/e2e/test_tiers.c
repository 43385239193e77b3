/* Tiers end to end: a member's purchases cross the demo ladder's Basic
 * threshold (500 yuan lifetime, 85%), tiering moves the member up and
 * says so on tier-events, the member view and the quote show the tier,
 * and the next purchase is charged with the tier's discount first, stored
 * value drawn pro rata from the discounted price; a replayed purchase
 * changes nothing. Also: the tier read from Redis first and from
 * PostgreSQL when the cache has none, the batch endpoint pricing every
 * line with its member's tier, and the chain tier -> discount card ->
 * coupon in the ledger and in the quote. Every wait polls a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cache/cache.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/api_client.h"
#include "bus/bus.h"
#include "bus/topics.h"
#include "cache/cache_tier.h"
#include "events/codec.h"

#define TIER_DEADLINE_MS  20000
#define EVENT_DEADLINE_MS 20000

static char run_id[32];

/* ------------------------------------------------------------ helpers */
static struct api_response member_post(const char *member_id, const char *tail, const char *body,
                                       const char *idem)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/members/%s%s", member_id, tail);
    return api_post(path, body, idem);
}

static struct api_response purchase(const char *member_id, int64_t amount, const char *method,
                                    const char *branch, const char *extra, const char *idem)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"amount\":%lld,\"branch_id\":\"%s\",\"payment\":{\"method\":\"%s\"}%s%s}",
             (long long)amount, branch, method, extra ? "," : "", extra ? extra : "");
    return member_post(member_id, "/purchases", body, idem);
}

/* A posted purchase's answer (asserts 201); caller frees. */
static struct api_response purchase_ok(const char *member_id, int64_t amount, const char *method,
                                       const char *extra, const char *idem)
{
    struct api_response r = purchase(member_id, amount, method, "hq", extra, idem);
    if (r.status != 201)
        fail_msg("purchase of %lld: %ld %s", (long long)amount, r.status, r.raw);
    return r;
}

static struct api_response view(const char *member_id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", member_id);
    struct api_response r = api_get(path);
    assert_int_equal(r.status, 200);
    return r;
}

/* The tier's name in a JSON answer, "" when it is null. */
static const char *tier_name(json_t *body)
{
    json_t *t = json_object_get(body, "tier");
    if (json_is_null(t))
        return "";
    if (json_is_string(t))
        return json_string_value(t);
    assert_true(json_is_object(t));
    return json_string_value(json_object_get(t, "name"));
}

struct tier_wait {
    const char *member_id;
    const char *name;
};

static bool view_shows_tier(void *arg)
{
    struct tier_wait *w = arg;
    struct api_response r = view(w->member_id);
    bool ok = strcmp(tier_name(r.body), w->name) == 0;
    api_response_free(&r);
    return ok;
}

static void wait_for_tier(const char *member_id, const char *name)
{
    struct tier_wait w = {member_id, name};
    if (!poll_until(view_shows_tier, &w, TIER_DEADLINE_MS))
        fail_msg("member %s never showed tier %s", member_id, name);
}

static struct api_response quote(const char *member_id, int64_t amount, const char *card_id)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/members/%s/quote?amount=%lld&branch_id=hq%s%s", member_id,
             (long long)amount, card_id ? "&card_id=" : "", card_id ? card_id : "");
    return api_get(path);
}

struct spend_wait {
    PGconn *pg;
    const char *member_id;
    int64_t lifetime;
};

static bool spend_counted(void *arg)
{
    struct spend_wait *w = arg;
    const char *p[1] = {w->member_id};
    return test_pg_int(w->pg,
                       "SELECT coalesce(sum(lifetime_spend), 0) FROM tiering.member_spend "
                       "WHERE member_id = $1",
                       1, p) == w->lifetime;
}

static void wait_for_spend(PGconn *pg, const char *member_id, int64_t lifetime)
{
    struct spend_wait w = {pg, member_id, lifetime};
    if (!poll_until(spend_counted, &w, TIER_DEADLINE_MS))
        fail_msg("tiering never counted %lld for %s", (long long)lifetime, member_id);
}

static redisContext *test_redis(void)
{
    const char *host = getenv("TESSERA_REDIS_HOST"), *port = getenv("TESSERA_REDIS_PORT");
    assert_non_null(host);
    assert_non_null(port);
    redisContext *rc = redisConnect(host, atoi(port));
    assert_true(rc && !rc->err);
    char err[256];
    assert_int_equal(cache_set_password(getenv("TESSERA_REDIS_PASSWORD")), 0);
    assert_int_equal(cache_auth(rc, err, sizeof(err)), 0);
    return rc;
}

struct cached_wait {
    redisContext *rc;
    const char *member_id;
    int64_t version;
};

static bool tier_cached(void *arg)
{
    struct cached_wait *w = arg;
    struct cache_tier t = {0};
    return cache_get_tier(w->rc, "demo", w->member_id, &t) == 1 && t.version == w->version;
}

/* A member at Basic: one cash purchase of 600 yuan, then the view. */
static void member_at_basic(char member_id[64])
{
    test_register_member(member_id);
    struct api_response r = purchase_ok(member_id, 60000, "cash", NULL, NULL);
    api_response_free(&r);
    wait_for_tier(member_id, "Basic");
}

/* ------------------------------------------------- tier-events */
/* The broker's current address: other tests restart it (on a new port),
 * so the file the runtime writes wins over the environment. */
static const char *bootstrap(void)
{
    static char addr[256];
    char path[512];
    snprintf(path, sizeof(path), "%s/kafka.bootstrap", getenv("TESSERA_LOCAL_DIR"));
    FILE *f = fopen(path, "r");
    if (f && fgets(addr, sizeof(addr), f)) {
        addr[strcspn(addr, "\n")] = '\0';
        fclose(f);
        return addr;
    }
    if (f)
        fclose(f);
    return getenv("TESSERA_KAFKA_BOOTSTRAP");
}

static int assign_from_beginning(void *ctx, rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++)
        parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    return 0;
}

static const struct bus_consumer_ops from_beginning = {assign_from_beginning, NULL};

/* The member's TierChanged facts on tier-events (copied out), read from
 * the beginning until `want` of them arrived or the deadline passed. */
typedef Tessera__Tiering__V1__TierChanged TierChanged;

static size_t read_tier_changes(const char *member_id, size_t want, TierChanged **out, size_t max)
{
    char group[128], err[256];
    snprintf(group, sizeof(group), "test-tiers-%s-%s", run_id, member_id);
    struct bus_config cfg = {
        .bootstrap = bootstrap(), .client_id = group, .session_timeout_ms = 6000, .linger_ms = 5};
    assert_non_null(cfg.bootstrap);
    const char *topics[1] = {TOPIC_TIER_EVENTS};
    struct bus_consumer *c =
        bus_consumer_new(&cfg, group, topics, 1, &from_beginning, NULL, err, sizeof(err));
    assert_non_null(c);
    size_t n = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (n < want) {
        rd_kafka_message_t *msgs[256];
        size_t got = bus_consumer_poll_batch(c, msgs, 256, 200);
        for (size_t i = 0; i < got; i++) {
            char why[128];
            Envelope *env = msgs[i]->err
                                ? NULL
                                : envelope_decode(msgs[i]->payload, msgs[i]->len, why, sizeof(why));
            if (env && env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_CHANGED &&
                strcmp(env->member_id, member_id) == 0 && n < max) {
                /* keep the payload: detach it from the envelope */
                out[n++] = env->tier_changed;
                env->tier_changed = NULL;
                env->payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD__NOT_SET;
            }
            envelope_free(env);
            rd_kafka_message_destroy(msgs[i]);
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 > EVENT_DEADLINE_MS)
            break;
    }
    bus_consumer_close(c);
    return n;
}

/* ------------------------------------------------------------ tests */

/* The walk of the brief: purchases cross Basic's 50 000 fen exactly, the
 * member view shows the tier, the next purchase is charged 85% and drawn
 * pro rata from stored value, and its replay changes nothing. */
static void test_threshold_then_tier_discount_first(void **state)
{
    char member[64], op[64], key[96];
    PGconn *pg = test_pg();
    test_register_member(member);
    struct api_response r =
        member_post(member, "/topups",
                    "{\"amount\":300000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", NULL);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "balances.stored_value_bonus"), 30000);
    api_response_free(&r);

    /* No tier yet: the quote is the list price. */
    r = quote(member, 11000, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(tier_name(r.body), "");
    assert_int_equal(json_int_at(r.body, "tier_discount"), 0);
    assert_int_equal(json_int_at(r.body, "charged"), 11000);
    api_response_free(&r);

    /* 300 + 199.99 yuan: one fen below Basic. */
    r = purchase_ok(member, 30000, "cash", NULL, NULL);
    assert_int_equal(json_int_at(r.body, "charged"), 30000);
    assert_string_equal(tier_name(r.body), "");
    api_response_free(&r);
    r = purchase_ok(member, 19999, "stored_value", NULL, NULL);
    assert_int_equal(json_int_at(r.body, "charged"), 19999);
    assert_int_equal(json_int_at(r.body, "tier_discount"), 0);
    api_response_free(&r);
    wait_for_spend(pg, member, 49999);
    const char *p[1] = {member};
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM tiering.member_tiers WHERE member_id = $1", 1, p), 0);
    r = view(member);
    assert_true(json_is_null(json_object_get(r.body, "tier")));
    api_response_free(&r);

    /* One fen more reaches Basic. */
    char reaching_op[64];
    r = purchase_ok(member, 1, "cash", NULL, NULL);
    snprintf(reaching_op, sizeof(reaching_op), "%s", json_str_at(r.body, "operation_id"));
    api_response_free(&r);
    wait_for_tier(member, "Basic");
    r = view(member);
    assert_int_equal(json_int_at(r.body, "tier.rank"), 1);
    assert_int_equal(json_int_at(r.body, "tier.discount_bp"), 8500);
    int64_t principal = json_int_at(r.body, "balances.stored_value_principal");
    int64_t bonus = json_int_at(r.body, "balances.stored_value_bonus");
    api_response_free(&r);

    r = quote(member, 11000, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(tier_name(r.body), "Basic");
    assert_int_equal(json_int_at(r.body, "tier_discount"), 1650);
    assert_int_equal(json_int_at(r.body, "charged"), 9350);
    api_response_free(&r);

    /* 110 yuan from stored value: 93.50 charged, drawn pro rata. */
    int64_t from_bonus = 9350 * bonus / (principal + bonus); /* the bonus part rounds down */
    snprintf(key, sizeof(key), "tier-buy-%s", member);
    r = purchase(member, 11000, "stored_value", "branch-1", NULL, key);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "amount"), 11000);
    assert_int_equal(json_int_at(r.body, "tier_discount"), 1650);
    assert_int_equal(json_int_at(r.body, "discount_applied"), 1650);
    assert_int_equal(json_int_at(r.body, "charged"), 9350);
    assert_string_equal(tier_name(r.body), "Basic");
    assert_int_equal(json_int_at(r.body, "paid_bonus"), from_bonus);
    assert_int_equal(json_int_at(r.body, "paid_principal"), 9350 - from_bonus);
    assert_int_equal(json_int_at(r.body, "balances.stored_value_principal"),
                     principal - (9350 - from_bonus));
    assert_int_equal(json_int_at(r.body, "balances.stored_value_bonus"), bonus - from_bonus);
    snprintf(op, sizeof(op), "%s", json_str_at(r.body, "operation_id"));
    api_response_free(&r);

    /* The POS retries: the same answer, nothing applied again. */
    r = purchase(member, 11000, "stored_value", "branch-1", NULL, key);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_str_at(r.body, "operation_id"), op);
    assert_int_equal(json_int_at(r.body, "charged"), 9350);
    api_response_free(&r);
    r = view(member);
    assert_int_equal(json_int_at(r.body, "balances.stored_value"), principal + bonus - 9350);
    api_response_free(&r);

    /* The ledger: one posting, the member's lines take exactly the
     * charge, under the purchase's reason; tiering counted it once. */
    const char *q[2] = {member, op};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.commands WHERE member_id = $1 AND "
                                 "command_id = $2 AND status = 'posted'",
                                 2, q),
                     1);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT sum(amount) FROM ledger.journal WHERE member_id = $1 "
                                 "AND command_id = $2 AND account = 'member:' || $1",
                                 2, q),
                     -9350);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.journal WHERE member_id = $1 AND "
                                 "command_id = $2 AND reason <> 'purchase:stored_value'",
                                 2, q),
                     0);
    wait_for_spend(pg, member, 50000 + 9350);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM tiering.qualifying_purchases "
                                 "WHERE member_id = $1 AND purchase_command_id = $2",
                                 2, q),
                     1);
    assert_int_equal(
        test_pg_int(pg, "SELECT purchases FROM tiering.member_spend WHERE member_id = $1", 1, p),
        4);

    /* One change, on the trail, in the cache and on tier-events. */
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM tiering.tier_changes WHERE member_id = $1 "
                                 "AND version = 1 AND from_rank IS NULL AND to_name = 'Basic' "
                                 "AND reason = 'cumulative_spend' AND lifetime_spend = 50000",
                                 1, p),
                     1);
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM tiering.tier_changes WHERE member_id = $1", 1, p), 1);
    redisContext *rc = test_redis();
    struct cached_wait cw = {rc, member, 1};
    assert_true(poll_until(tier_cached, &cw, TIER_DEADLINE_MS));
    redisFree(rc);
    TierChanged *changes[4];
    size_t n = read_tier_changes(member, 1, changes, 4);
    assert_int_equal(n, 1);
    assert_string_equal(changes[0]->previous->name, "");
    assert_string_equal(changes[0]->current->name, "Basic");
    assert_int_equal(changes[0]->current->discount_bp, 8500);
    assert_string_equal(changes[0]->reason, "cumulative_spend");
    assert_int_equal(changes[0]->version, 1);
    assert_int_equal(changes[0]->lifetime_spend, 50000);
    assert_string_equal(changes[0]->purchase_command_id, reaching_op);
    tessera__tiering__v1__tier_changed__free_unpacked(changes[0], NULL);
    PQfinish(pg);
}

/* ingest reads the tier from Redis first (a planted cache entry wins) and
 * from tiering.member_tiers when the cache has none. */
static void test_cache_first_then_postgres(void **state)
{
    char member[64];
    member_at_basic(member);
    redisContext *rc = test_redis();
    struct cached_wait cw = {rc, member, 1};
    assert_true(poll_until(tier_cached, &cw, TIER_DEADLINE_MS));

    /* A newer cached tier (as tiering would write after an upgrade) is
     * what the purchase is priced with. */
    struct cache_tier planted = {
        .rank = 9, .discount_bp = 5000, .points_multiplier_bp = 20000, .version = 2};
    snprintf(planted.tenant_id, sizeof(planted.tenant_id), "demo");
    snprintf(planted.member_id, sizeof(planted.member_id), "%s", member);
    snprintf(planted.name, sizeof(planted.name), "Planted");
    char err[256];
    assert_int_equal(cache_put_tiers(rc, &planted, 1, err, sizeof(err)), 1);
    /* an older write never replaces it */
    struct cache_tier older = planted;
    older.version = 1;
    snprintf(older.name, sizeof(older.name), "Basic");
    assert_int_equal(cache_put_tiers(rc, &older, 1, err, sizeof(err)), 0);
    struct api_response r = purchase_ok(member, 10000, "cash", NULL, NULL);
    assert_string_equal(tier_name(r.body), "Planted");
    assert_int_equal(json_int_at(r.body, "charged"), 5000);
    api_response_free(&r);

    /* Flushed: PostgreSQL answers, with the tier tiering stored. */
    char key[CACHE_KEY_MAX];
    assert_int_equal(cache_tier_key(key, sizeof(key), "demo", member), 0);
    redisReply *del = redisCommand(rc, "DEL %s", key);
    assert_non_null(del);
    freeReplyObject(del);
    r = purchase_ok(member, 10000, "cash", NULL, NULL);
    assert_string_equal(tier_name(r.body), "Basic");
    assert_int_equal(json_int_at(r.body, "tier_discount"), 1500);
    assert_int_equal(json_int_at(r.body, "charged"), 8500);
    api_response_free(&r);
    r = view(member);
    assert_string_equal(tier_name(r.body), "Basic");
    api_response_free(&r);
    redisFree(rc);
}

/* One batch prices each purchase line with its member's tier: Basic,
 * none, and Advanced reached in one step by a single large purchase. */
static void test_batch_lines_priced_with_their_tiers(void **state)
{
    char basic[64], plain[64], advanced[64];
    member_at_basic(basic);
    test_register_member(plain);
    test_register_member(advanced);
    struct api_response r = purchase_ok(advanced, 250000, "cash", NULL, NULL);
    api_response_free(&r);
    wait_for_tier(advanced, "Advanced");
    PGconn *pg = test_pg();
    const char *p[1] = {advanced};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM tiering.tier_changes WHERE member_id = $1 "
                                 "AND from_rank IS NULL AND to_rank = 2",
                                 1, p),
                     1);
    PQfinish(pg);

    const char *members[3] = {basic, plain, advanced};
    const int64_t charged[3] = {8500, 10000, 8000};
    const char *tiers[3] = {"Basic", "", "Advanced"};
    char body[2048];
    size_t len = 0;
    for (int i = 0; i < 3; i++)
        len += (size_t)snprintf(body + len, sizeof(body) - len,
                                "{\"type\":\"purchase\",\"member_id\":\"%s\",\"idempotency_key\":"
                                "\"tier-batch-%s-%d\",\"amount\":10000,\"branch_id\":\"hq\","
                                "\"payment\":{\"method\":\"cash\"}}\n",
                                members[i], run_id, i);
    const char *headers[] = {"Content-Type: application/x-ndjson", NULL};
    r = api_call("POST", "/v1/events:batch", body, NULL, headers);
    assert_int_equal(r.status, 200);
    json_t *results = json_object_get(r.body, "results");
    assert_int_equal(json_array_size(results), 3);
    for (int i = 0; i < 3; i++) {
        json_t *line = json_array_get(results, (size_t)i);
        assert_int_equal(json_int_at(line, "status"), 201);
        json_t *result = json_object_get(line, "result");
        assert_int_equal(json_int_at(result, "charged"), charged[i]);
        assert_int_equal(json_int_at(result, "tier_discount"), 10000 - charged[i]);
        assert_string_equal(tier_name(result), tiers[i]);
    }
    api_response_free(&r);
}

/* Tier first, then the discount card on what it left, then a coupon on
 * what the card left: in the ledger, and in the quote (without the
 * coupon). Bad quotes answer 422 and 404. */
static void test_chain_with_card_and_coupon(void **state)
{
    char member[64], product[96], body[512], card[64], coupon[64];
    member_at_basic(member);
    snprintf(product, sizeof(product), "tier-discount-card-%s", run_id);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"kind\":\"discount\",\"name\":\"80%% card\",\"price\":1000,"
             "\"validity_days\":30,\"discount_bp\":8000}",
             product);
    struct api_response r = api_post("/v1/products", body, NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}",
             product);
    r = member_post(member, "/cards", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(card, sizeof(card), "%s", json_str_at(r.body, "card_id"));
    api_response_free(&r);

    r = quote(member, 10000, card);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_int_at(r.body, "tier_discount"), 1500);
    assert_true(json_is_true(json_object_get(json_object_get(r.body, "card"), "usable")));
    assert_int_equal(json_int_at(r.body, "card.discount"), 1700);
    assert_int_equal(json_int_at(r.body, "discount_applied"), 3200);
    assert_int_equal(json_int_at(r.body, "charged"), 6800);
    api_response_free(&r);

    char extra[256];
    snprintf(extra, sizeof(extra), "\"card_id\":\"%s\"", card);
    r = purchase_ok(member, 10000, "cash", extra, NULL);
    assert_int_equal(json_int_at(r.body, "tier_discount"), 1500);
    assert_int_equal(json_int_at(r.body, "discount_applied"), 3200);
    assert_int_equal(json_int_at(r.body, "charged"), 6800);
    api_response_free(&r);

    r = member_post(member, "/coupons", "{\"kind\":\"value\",\"value\":500,\"valid_days\":30}",
                    NULL);
    assert_int_equal(r.status, 201);
    snprintf(coupon, sizeof(coupon), "%s", json_str_at(r.body, "coupon_id"));
    api_response_free(&r);
    snprintf(extra, sizeof(extra), "\"card_id\":\"%s\",\"coupon_id\":\"%s\"", card, coupon);
    r = purchase_ok(member, 10000, "cash", extra, NULL);
    assert_int_equal(json_int_at(r.body, "tier_discount"), 1500);
    assert_int_equal(json_int_at(r.body, "discount_applied"), 3700);
    assert_int_equal(json_int_at(r.body, "charged"), 6300);
    api_response_free(&r);

    /* A card the member does not have is named, not applied. */
    r = quote(member, 10000, "01900000-0000-7000-8000-000000000000");
    assert_int_equal(r.status, 200);
    assert_true(json_is_false(json_object_get(json_object_get(r.body, "card"), "usable")));
    assert_string_equal(json_str_at(r.body, "card.reason"), "card_not_found");
    assert_int_equal(json_int_at(r.body, "charged"), 8500);
    api_response_free(&r);

    char path[256];
    snprintf(path, sizeof(path), "/v1/members/%s/quote?branch_id=hq", member);
    r = api_get(path);
    assert_int_equal(r.status, 422);
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s/quote?amount=0&branch_id=hq", member);
    r = api_get(path);
    assert_int_equal(r.status, 422);
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s/quote?amount=100&branch_id=nowhere", member);
    r = api_get(path);
    assert_int_equal(r.status, 422);
    api_response_free(&r);
    r = quote("01900000-0000-7000-8000-000000000000", 100, NULL);
    assert_int_equal(r.status, 404);
    api_response_free(&r);
}

/* The ledger's outbox relays at least once: the same PurchaseRecorded
 * fact twice on ledger-events (here sent by the test) counts once, and
 * the member moves up once. */
static void test_fact_relayed_twice_counts_once(void **state)
{
    char member[64], command_id[UUID_STR_SIZE];
    test_register_member(member);
    uuid7_generate(command_id);
    struct event_meta meta = {.tenant_id = "demo",
                              .branch_id = "hq",
                              .member_id = member,
                              .actor_kind = "service",
                              .actor_id = "ledger"};
    Envelope env;
    Actor actor;
    PurchaseRecorded pr;
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__purchase_recorded__init(&pr);
    pr.command_id = command_id;
    pr.purchase_id = command_id;
    pr.amount = pr.charged = 70000;
    pr.payment_method = "cash";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED;
    env.purchase_recorded = &pr;
    size_t len = 0;
    uint8_t *payload = envelope_encode(&env, &len);
    assert_non_null(payload);

    char err[256];
    struct bus_config cfg = {.bootstrap = bootstrap(),
                             .client_id = "test-tiers-relay",
                             .session_timeout_ms = 6000,
                             .linger_ms = 5};
    assert_non_null(cfg.bootstrap);
    struct bus_producer *p = bus_producer_new(&cfg, NULL, NULL, NULL, err, sizeof(err));
    assert_non_null(p);
    rd_kafka_resp_err_t results[2] = {RD_KAFKA_RESP_ERR__IN_PROGRESS,
                                      RD_KAFKA_RESP_ERR__IN_PROGRESS};
    for (int i = 0; i < 2; i++)
        assert_int_equal(bus_produce(p, TOPIC_LEDGER_EVENTS, member, payload, len,
                                     envelope_cloudevents_headers(&env, "/tessera/ledger"),
                                     &results[i]),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(bus_producer_flush(p, 10000), 0);
    assert_int_equal(results[0], RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(results[1], RD_KAFKA_RESP_ERR_NO_ERROR);
    bus_producer_free(p);
    free(payload);

    wait_for_tier(member, "Basic");
    PGconn *pg = test_pg();
    const char *q[1] = {member};
    /* A later purchase's fact follows both copies on the member's
     * partition: once it is counted, both copies were consumed. */
    wait_for_spend(pg, member, 70000);
    struct api_response r = purchase_ok(member, 100, "cash", NULL, NULL);
    api_response_free(&r);
    wait_for_spend(pg, member, 70085);
    assert_int_equal(
        test_pg_int(pg, "SELECT purchases FROM tiering.member_spend WHERE member_id = $1", 1, q),
        2);
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM tiering.tier_changes WHERE member_id = $1", 1, q), 1);
    PQfinish(pg);
}

int main(void)
{
    snprintf(run_id, sizeof(run_id), "%d-%ld", (int)getpid(), (long)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_then_tier_discount_first),
        cmocka_unit_test(test_cache_first_then_postgres),
        cmocka_unit_test(test_batch_lines_priced_with_their_tiers),
        cmocka_unit_test(test_chain_with_card_and_coupon),
        cmocka_unit_test(test_fact_relayed_twice_counts_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
