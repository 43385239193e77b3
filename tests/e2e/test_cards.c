/* Cards end to end over HTTP: each card kind sold, used, frozen, renewed;
 * every refusal with its stable code and nothing changed; the journal
 * balanced per asset; a burst of uses raising a fraud alert on
 * ledger-events. Product ids carry a run id: the runtime is shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/api_client.h"
#include "bus/bus.h"
#include "bus/topics.h"
#include "events/card_types.h"
#include "events/codec.h"

#define US_PER_DAY        (86400LL * 1000000LL)
#define ALERT_DEADLINE_MS 30000

static char run_id[32];

static void product_id(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s-%s", name, run_id);
}

/* Defines product id with the other fields of its JSON body (fields). */
static void define_product(const char *id, const char *fields)
{
    char body[1024];
    snprintf(body, sizeof(body), "{\"product_id\":\"%s\",%s}", id, fields);
    struct api_response r = api_post("/v1/products", body, NULL);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_str_at(r.body, "product_id"), id);
    assert_string_equal(json_str_at(r.body, "status"), "defined");
    api_response_free(&r);
}

static struct api_response sell(const char *member_id, const char *product, const char *method,
                                const char *idem)
{
    char path[160], body[512];
    snprintf(path, sizeof(path), "/v1/members/%s/cards", member_id);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"branch_id\":\"hq\",\"payment\":{\"method\":\"%s\"}}",
             product, method);
    return api_post(path, body, idem);
}

/* Sells a card paid in cash; writes its id. */
static void sell_ok(const char *member_id, const char *product, char card_id[64])
{
    struct api_response r = sell(member_id, product, "cash", NULL);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_str_at(r.body, "status"), "issued");
    snprintf(card_id, 64, "%s", json_str_at(r.body, "card_id"));
    api_response_free(&r);
}

static struct api_response card_post(const char *member_id, const char *card_id, const char *what,
                                     const char *body, const char *idem)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/members/%s/cards/%s/%s", member_id, card_id, what);
    return api_post(path, body, idem);
}

static struct api_response use_at(const char *member_id, const char *card_id, const char *branch)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"branch_id\":\"%s\"}", branch);
    return card_post(member_id, card_id, "uses", body, NULL);
}

/* Asserts a problem answer with status and code; frees it. */
static void expect_problem(struct api_response r, long status, const char *code)
{
    assert_int_equal(r.status, status);
    assert_string_equal(r.content_type, "application/problem+json");
    assert_string_equal(json_str_at(r.body, "code"), code);
    api_response_free(&r);
}

static int64_t card_int(const char *card_id, const char *column)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT %s FROM ledger.cards WHERE card_id = $1", column);
    PGconn *pg = test_pg();
    const char *p[1] = {card_id};
    int64_t v = test_pg_int(pg, sql, 1, p);
    PQfinish(pg);
    return v;
}

/* A card's uses in the journal: the member's card_uses lines whose
 * reason names the card. */
static int64_t card_journal_sum(PGconn *pg, const char *member_id, const char *card_id)
{
    char like[96];
    snprintf(like, sizeof(like), "%%:card:%s:%%", card_id);
    const char *p[2] = {member_id, like};
    return test_pg_int(pg,
                       "SELECT coalesce(sum(amount), 0) FROM ledger.journal WHERE member_id = $1 "
                       "AND account = 'member:' || $1 AND asset = 'card_uses' AND reason LIKE $2",
                       2, p);
}

/* The member's card as GET /v1/members/{id} shows it (a new reference). */
static json_t *view_card(const char *member_id, const char *card_id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", member_id);
    struct api_response r = api_get(path);
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

/* A count card paid from stored value: the price drawn pro rata, ten uses
 * in the journal, three uses a day, the fourth refused and changing
 * nothing, a retried use applied once. */
static void test_count_card(void **state)
{
    char product[64], member[64], card[64], path[160];
    product_id(product, sizeof(product), "ten-classes");
    define_product(product, "\"kind\":\"count\",\"name\":\"10 classes\","
                            "\"price\":110000,\"uses\":10,\"validity_days\":90");
    test_register_member(member);
    snprintf(path, sizeof(path), "/v1/members/%s/topups", member);
    struct api_response r = api_post(
        path, "{\"amount\":100000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", NULL);
    assert_int_equal(r.status, 201); /* 100 000 + 10 000 bonus */
    api_response_free(&r);

    r = sell(member, product, "stored_value", NULL);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_str_at(r.body, "kind"), "count");
    assert_int_equal(json_int_at(r.body, "uses_left"), 10);
    assert_int_equal(json_int_at(r.body, "paid_principal"), 100000);
    assert_int_equal(json_int_at(r.body, "paid_bonus"), 10000);
    assert_int_equal(json_int_at(r.body, "balances.stored_value"), 0);
    snprintf(card, sizeof(card), "%s", json_str_at(r.body, "card_id"));
    api_response_free(&r);
    /* stored value is spent: a second sale is refused, no card made */
    expect_problem(sell(member, product, "stored_value", NULL), 409, "insufficient_balance");

    for (int i = 1; i <= 2; i++) {
        r = use_at(member, card, "hq");
        assert_int_equal(r.status, 201);
        assert_int_equal(json_int_at(r.body, "uses_left"), 10 - i);
        assert_int_equal(json_int_at(r.body, "uses_today"), i);
        api_response_free(&r);
    }
    /* a POS retry of the third use with its key is answered, not applied */
    char key[64];
    snprintf(key, sizeof(key), "use-3-%s", run_id);
    struct api_response first = card_post(member, card, "uses", "{\"branch_id\":\"hq\"}", key);
    struct api_response again = card_post(member, card, "uses", "{\"branch_id\":\"hq\"}", key);
    assert_string_equal(json_str_at(again.body, "operation_id"),
                        json_str_at(first.body, "operation_id"));
    assert_int_equal(first.status, 201);
    assert_int_equal(again.status, 201);
    assert_int_equal(json_int_at(again.body, "uses_left"), 7);
    api_response_free(&first);
    api_response_free(&again);
    expect_problem(use_at(member, card, "hq"), 409, "daily_limit_reached");
    assert_int_equal(card_int(card, "uses_left"), 7);
    json_t *c = view_card(member, card);
    assert_int_equal(json_integer_value(json_object_get(c, "uses_left")), 7);
    json_decref(c);

    /* the journal: +10 uses sold, -3 used, each posting balanced per asset */
    PGconn *pg = test_pg();
    assert_int_equal(card_journal_sum(pg, member, card), 7);
    const char *m[1] = {member};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM (SELECT posting_id, asset FROM "
                                 "ledger.journal WHERE posting_id IN (SELECT posting_id FROM "
                                 "ledger.journal WHERE member_id = $1) GROUP BY posting_id, asset "
                                 "HAVING sum(amount) <> 0) AS unbalanced",
                                 1, m),
                     0);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.commands WHERE member_id = $1 AND "
                                 "command_type = 'card_use' AND status = 'posted'",
                                 1, m),
                     3);
    PQfinish(pg);
}

/* Branch restriction and running out of uses. */
static void test_count_card_branch_and_uses(void **state)
{
    char product[64], member[64], card[64];
    product_id(product, sizeof(product), "hq-only-2");
    define_product(product, "\"kind\":\"count\",\"name\":\"2 at hq\","
                            "\"price\":5000,\"uses\":2,\"validity_days\":30,"
                            "\"branch_ids\":[\"hq\"]");
    test_register_member(member);
    sell_ok(member, product, card);
    expect_problem(use_at(member, card, "branch-1"), 409, "card_not_valid_here");
    assert_int_equal(card_int(card, "uses_left"), 2);
    struct api_response r = use_at(member, card, "hq");
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    r = use_at(member, card, "hq");
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "uses_left"), 0);
    api_response_free(&r);
    expect_problem(use_at(member, card, "hq"), 409, "no_uses_left");
    /* another member's card is not found, nor is a card never sold */
    char other[64];
    test_register_member(other);
    expect_problem(use_at(other, card, "hq"), 404, "card_not_found");
    expect_problem(use_at(member, "01a20000-0000-7000-8000-000000000000", "hq"), 404,
                   "card_not_found");
}

/* A time card: freeze within the allowance moves valid_to, a use while
 * frozen is refused, more than the allowance is refused, a renewal
 * extends from valid_to; a use after valid_to is card_expired. */
static void test_time_card(void **state)
{
    char product[64], member[64], card[64];
    product_id(product, sizeof(product), "month");
    define_product(product, "\"kind\":\"time\",\"name\":\"Monthly\","
                            "\"price\":39900,\"validity_days\":30,\"freeze_days_max\":7");
    test_register_member(member);
    sell_ok(member, product, card);
    int64_t valid_to = card_int(card, "valid_to_us");
    assert_int_equal(valid_to - card_int(card, "valid_from_us"), 30 * US_PER_DAY);
    struct api_response r = use_at(member, card, "branch-1"); /* unrestricted */
    assert_int_equal(r.status, 201);
    assert_string_equal(json_str_at(r.body, "status"), "used");
    api_response_free(&r);

    expect_problem(card_post(member, card, "freeze", "{\"days\":8}", NULL), 409,
                   "freeze_exceeds_allowance");
    expect_problem(card_post(member, card, "freeze", "{\"days\":0}", NULL), 422,
                   "validation_failed");
    assert_int_equal(card_int(card, "valid_to_us"), valid_to);
    r = card_post(member, card, "freeze", "{\"days\":5}", NULL);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_str_at(r.body, "status"), "frozen");
    assert_int_equal(json_int_at(r.body, "freeze_days_left"), 2);
    api_response_free(&r);
    assert_int_equal(card_int(card, "valid_to_us"), valid_to + 5 * US_PER_DAY);
    expect_problem(use_at(member, card, "hq"), 409, "card_frozen");
    expect_problem(card_post(member, card, "freeze", "{\"days\":3}", NULL), 409,
                   "freeze_exceeds_allowance");

    r = card_post(member, card, "renewals",
                  "{\"branch_id\":\"hq\",\"payment\":{\"method\":\"bank_card\"}}", NULL);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_str_at(r.body, "status"), "renewed");
    assert_int_equal(json_int_at(r.body, "freeze_days_left"), 9);
    api_response_free(&r);
    assert_int_equal(card_int(card, "valid_to_us"), valid_to + 35 * US_PER_DAY);
    json_t *c = view_card(member, card);
    assert_non_null(json_object_get(c, "frozen_until"));
    assert_null(json_object_get(c, "uses_left")); /* time cards have none */
    json_decref(c);

    /* Time passing, simulated: the test moves the card's validity into
     * the past (the ledger loads cards from its table every batch). */
    PGconn *pg = test_pg();
    const char *p[1] = {card};
    assert_int_equal(test_pg_int(pg,
                                 "WITH u AS (UPDATE ledger.cards SET valid_to_us = valid_from_us, "
                                 "frozen_until_us = 0 WHERE card_id = $1 RETURNING 1) "
                                 "SELECT count(*) FROM u",
                                 1, p),
                     1);
    PQfinish(pg);
    /* A hand edit of the ledger's table bypasses the cache the ledger
     * writes after commit: drop the member's cached cards (the cache may
     * be flushed at any time) so readers and the audit see the table. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "redis-cli -p \"$TESSERA_REDIS_PORT\" DEL tessera:demo:member:%s:cards >/dev/null",
             member);
    assert_int_equal(system(cmd), 0);
    expect_problem(use_at(member, card, "hq"), 409, "card_expired");
    expect_problem(card_post(member, card, "freeze", "{\"days\":1}", NULL), 409, "card_expired");
}

static void issue_coupon(const char *member_id, const char *fields, char coupon_id[64]);

/* A cash purchase naming a discount card and, when not NULL, a coupon. */
static struct api_response purchase_with_card(const char *member_id, const char *card_id,
                                              const char *coupon_id, int64_t amount)
{
    char path[160], body[320], coupon[96] = "";
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", member_id);
    if (coupon_id)
        snprintf(coupon, sizeof(coupon), ",\"coupon_id\":\"%s\"", coupon_id);
    snprintf(body, sizeof(body),
             "{\"amount\":%lld,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"},"
             "\"card_id\":\"%s\"%s}",
             (long long)amount, card_id, coupon);
    return api_post(path, body, NULL);
}

/* A discount card carries its rate; a subscription defined per period
 * (299 a quarter) lasts that period and cannot be frozen beyond 0 days. */
static void test_discount_card_and_subscription(void **state)
{
    char discount[64], quarter[64], member[64], card[64];
    product_id(discount, sizeof(discount), "eighty");
    product_id(quarter, sizeof(quarter), "quarter");
    define_product(discount, "\"kind\":\"discount\",\"name\":\"8 zhe\","
                             "\"price\":9900,\"discount_bp\":8000,\"validity_days\":365");
    define_product(quarter, "\"kind\":\"subscription\",\"name\":"
                            "\"Member quarterly\",\"price\":29900,\"period\":\"quarter\"");
    test_register_member(member);
    sell_ok(member, discount, card);
    json_t *c = view_card(member, card);
    assert_string_equal(json_string_value(json_object_get(c, "kind")), "discount");
    assert_int_equal(json_integer_value(json_object_get(c, "discount_bp")), 8000);
    json_decref(c);
    expect_problem(card_post(member, card, "freeze", "{\"days\":1}", NULL), 409,
                   "freeze_not_allowed");
    expect_problem(use_at(member, card, "hq"), 409, "card_not_usable");

    /* the card takes 20% off a purchase that names it; a coupon then
     * applies to what is left */
    struct api_response r = purchase_with_card(member, card, NULL, 10000);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "discount_applied"), 2000);
    assert_int_equal(json_int_at(r.body, "charged"), 8000);
    api_response_free(&r);
    char coupon[64];
    issue_coupon(member, "{\"kind\":\"value\",\"value\":500,\"valid_days\":7}", coupon);
    r = purchase_with_card(member, card, coupon, 10000);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "discount_applied"), 2500);
    assert_int_equal(json_int_at(r.body, "charged"), 7500);
    api_response_free(&r);

    r = sell(member, quarter, "cash", NULL);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_str_at(r.body, "kind"), "subscription");
    assert_int_equal(json_int_at(r.body, "charged"), 29900);
    snprintf(card, sizeof(card), "%s", json_str_at(r.body, "card_id"));
    api_response_free(&r);
    assert_int_equal(card_int(card, "valid_to_us") - card_int(card, "valid_from_us"),
                     91 * US_PER_DAY);
    expect_problem(purchase_with_card(member, card, NULL, 10000), 409, "not_a_discount_card");
    /* its 91 days are in the journal as the member's card_days */
    PGconn *pg = test_pg();
    const char *p[1] = {member};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT sum(amount) FROM ledger.journal WHERE member_id = $1 "
                                 "AND asset = 'card_days'",
                                 1, p),
                     365 + 91);
    PQfinish(pg);
}

/* Bad input is refused with a stable code and sends nothing. */
static void test_bad_input(void **state)
{
    char member[64], product[64];
    test_register_member(member);
    expect_problem(api_post("/v1/products",
                            "{\"kind\":\"count\",\"name\":\"x\",\"price\":1,"
                            "\"validity_days\":30}",
                            NULL),
                   422, "validation_failed"); /* a count card needs uses */
    expect_problem(api_post("/v1/products",
                            "{\"kind\":\"gift\",\"name\":\"x\",\"price\":1,"
                            "\"validity_days\":30}",
                            NULL),
                   422, "validation_failed");
    expect_problem(api_post("/v1/products",
                            "{\"kind\":\"time\",\"name\":\"x\",\"price\":1,"
                            "\"validity_days\":30,\"branch_ids\":[\"nowhere\"]}",
                            NULL),
                   422, "validation_failed");
    product_id(product, sizeof(product), "never-defined");
    expect_problem(sell(member, product, "cash", NULL), 422, "product_not_found");
    expect_problem(sell(member, product, "coins", NULL), 422, "validation_failed");
    PGconn *pg = test_pg();
    const char *p[1] = {member};
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.cards WHERE member_id = $1", 1, p), 0);
    PQfinish(pg);
}

/* ------------------------------------------------ exactly once */
struct command_seen {
    const char *command_id;
};

static bool command_recorded(void *arg)
{
    struct command_seen *c = arg;
    PGconn *pg = test_pg();
    const char *p[1] = {c->command_id};
    int64_t n = test_pg_int(pg, "SELECT count(*) FROM ledger.commands WHERE command_id = $1", 1, p);
    PQfinish(pg);
    return n == 1;
}

/* A card use as ingest would send it. Caller frees. */
static uint8_t *use_command(const char *tenant_id, const char *member_id, const char *card_id,
                            const char *command_id, size_t *len)
{
    struct event_meta meta = {.tenant_id = tenant_id,
                              .branch_id = "hq",
                              .member_id = member_id,
                              .correlation_id = command_id,
                              .actor_kind = "api_key",
                              .actor_id = "test"};
    Envelope env;
    Actor actor;
    UseCard uc;
    envelope_init(&env, &actor, &meta);
    tessera__cards__v1__use_card__init(&uc);
    uc.command_id = (char *)command_id;
    uc.card_id = (char *)card_id;
    uc.utc_offset_s = 8 * 3600;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_USE_CARD;
    env.use_card = &uc;
    return envelope_encode(&env, len);
}

/* The same card use delivered twice to ledger-commands (a producer retry,
 * a replay) is applied once: one verdict row, one use, one posting. A
 * later command on the same partition shows both were consumed. */
static void test_card_use_applied_once(void **state)
{
    char product[64], member[64], card[64], tenant[64];
    product_id(product, sizeof(product), "once");
    define_product(product, "\"kind\":\"count\",\"name\":\"once\",\"price\":100,"
                            "\"uses\":10,\"validity_days\":30");
    test_register_member(member);
    sell_ok(member, product, card);
    PGconn *pg = test_pg();
    const char *m[1] = {member};
    PGresult *res = PQexecParams(pg, "SELECT tenant_id FROM ledger.cards WHERE member_id = $1", 1,
                                 NULL, m, NULL, NULL, 0);
    assert_int_equal(PQntuples(res), 1);
    snprintf(tenant, sizeof(tenant), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    char err[256], first[UUID_STR_SIZE], later[UUID_STR_SIZE];
    uuid7_generate(first);
    uuid7_generate(later);
    struct bus_config cfg = {.bootstrap = getenv("TESSERA_KAFKA_BOOTSTRAP"),
                             .client_id = "test-cards",
                             .session_timeout_ms = 6000,
                             .linger_ms = 5};
    assert_non_null(cfg.bootstrap);
    struct bus_producer *producer = bus_producer_new(&cfg, NULL, NULL, NULL, err, sizeof(err));
    assert_non_null(producer);
    const char *ids[3] = {first, first, later};
    for (int i = 0; i < 3; i++) {
        size_t len = 0;
        uint8_t *cmd = use_command(tenant, member, card, ids[i], &len);
        assert_non_null(cmd);
        rd_kafka_resp_err_t delivered = RD_KAFKA_RESP_ERR__IN_PROGRESS;
        assert_int_equal(
            bus_produce(producer, TOPIC_LEDGER_COMMANDS, member, cmd, len, NULL, &delivered),
            RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(bus_producer_flush(producer, 10000), 0);
        assert_int_equal(delivered, RD_KAFKA_RESP_ERR_NO_ERROR);
        free(cmd);
    }
    bus_producer_free(producer);
    struct command_seen seen = {later};
    assert_true(poll_until(command_recorded, &seen, 15000));

    assert_int_equal(card_int(card, "uses_left"), 8);
    const char *f[1] = {first};
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.commands WHERE command_id = $1", 1, f), 1);
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.journal WHERE command_id = $1", 1, f), 2);
    PQfinish(pg);
}

/* ------------------------------------------------ a ledger crash */
#define KILL_USES 30

struct use_stream {
    const char *member_id, *card_id;
    atomic_int sent;
    atomic_int pending; /* answered 202: the ledger was down */
};

static void use_key(char *out, size_t len, const char *card_id, int i)
{
    snprintf(out, len, "Idempotency-Key: kill-use-%d-%s", i, card_id);
}

static struct api_response keyed_use(const char *member_id, const char *card_id, int i)
{
    char path[200], idem[160];
    snprintf(path, sizeof(path), "/v1/members/%s/cards/%s/uses", member_id, card_id);
    use_key(idem, sizeof(idem), card_id, i);
    const char *headers[] = {"Prefer: wait=1", idem, "Content-Type: application/json", NULL};
    return api_call("POST", path, "{\"branch_id\":\"hq\"}", NULL, headers);
}

/* Sends KILL_USES keyed uses one after another (answers 201 or 202). */
static void *send_uses(void *arg)
{
    struct use_stream *s = arg;
    for (int i = 0; i < KILL_USES; i++) {
        struct api_response r = keyed_use(s->member_id, s->card_id, i);
        if (r.status == 202)
            atomic_fetch_add(&s->pending, 1);
        api_response_free(&r);
        atomic_fetch_add(&s->sent, 1);
    }
    return NULL;
}

struct sent_at_least {
    struct use_stream *s;
    int n;
};

static bool stream_sent(void *arg)
{
    struct sent_at_least *w = arg;
    return atomic_load(&w->s->sent) >= w->n;
}

struct use_retry {
    const char *member_id, *card_id;
    int i;
};

static bool use_answered(void *arg)
{
    struct use_retry *u = arg;
    struct api_response r = keyed_use(u->member_id, u->card_id, u->i);
    bool done = r.status == 201;
    api_response_free(&r);
    return done;
}

static void put_limits(const char *body)
{
    struct api_response r = api_call("PUT", "/v1/config/card-limits", body, NULL,
                                     (const char *const[]){"Content-Type: application/json", NULL});
    assert_int_equal(r.status, 200);
    api_response_free(&r);
}

/* The ledger is SIGKILLed and restarted while a POS sends card uses: every
 * use, retried with its key until answered, is applied exactly once. */
static void test_card_uses_survive_ledger_kill(void **state)
{
    char product[64], member[64], card[64];
    product_id(product, sizeof(product), "kill-100");
    define_product(product, "\"kind\":\"count\",\"name\":\"100\",\"price\":100,"
                            "\"uses\":100,\"validity_days\":30");
    put_limits("{\"daily_uses_max\":1000,\"burst_uses\":100}");
    test_register_member(member);
    sell_ok(member, product, card);

    struct use_stream s = {.member_id = member, .card_id = card};
    pthread_t sender;
    pthread_create(&sender, NULL, send_uses, &s);
    struct sent_at_least w = {&s, 8};
    assert_true(poll_until(stream_sent, &w, 30000));
    assert_int_equal(runtime_do("kill-service ledger"), 0);
    w.n = 12;
    assert_true(poll_until(stream_sent, &w, 30000));
    assert_int_equal(runtime_do("start-service ledger"), 0);
    pthread_join(sender, NULL);
    assert_true(atomic_load(&s.pending) > 0); /* the crash did overlap the uses */
    for (int i = 0; i < KILL_USES; i++) {
        struct use_retry u = {member, card, i};
        assert_true(poll_until(use_answered, &u, 60000));
    }

    assert_int_equal(card_int(card, "uses_left"), 100 - KILL_USES);
    PGconn *pg = test_pg();
    const char *m[1] = {member};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.commands WHERE member_id = $1 AND "
                                 "command_type = 'card_use' AND status = 'posted'",
                                 1, m),
                     KILL_USES);
    assert_int_equal(card_journal_sum(pg, member, card), 100 - KILL_USES);
    PQfinish(pg);
    put_limits("{}");
}

/* ------------------------------------------------ coupons */
/* Issues a coupon (fields: the rest of its body); writes its id. */
static void issue_coupon(const char *member_id, const char *fields, char coupon_id[64])
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/members/%s/coupons", member_id);
    struct api_response r = api_post(path, fields, NULL);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_str_at(r.body, "status"), "issued");
    snprintf(coupon_id, 64, "%s", json_str_at(r.body, "coupon_id"));
    api_response_free(&r);
}

static struct api_response redeem(const char *member_id, const char *coupon_id, int64_t amount)
{
    char path[200], body[96];
    snprintf(path, sizeof(path), "/v1/members/%s/coupons/%s/redeem", member_id, coupon_id);
    snprintf(body, sizeof(body), "{\"branch_id\":\"hq\",\"amount\":%lld}", (long long)amount);
    return api_post(path, body, NULL);
}

static struct api_response purchase_with(const char *member_id, const char *coupon_id,
                                         const char *method, int64_t amount)
{
    char path[160], body[256];
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", member_id);
    snprintf(body, sizeof(body),
             "{\"amount\":%lld,\"branch_id\":\"hq\",\"payment\":{\"method\":\"%s\"},"
             "\"coupon_id\":\"%s\"}",
             (long long)amount, method, coupon_id);
    return api_post(path, body, NULL);
}

/* A value coupon redeemed on its own once; a second redemption refused. */
static void test_value_coupon_alone(void **state)
{
    char member[64], coupon[64], other[64];
    test_register_member(member);
    test_register_member(other);
    issue_coupon(member, "{\"kind\":\"value\",\"value\":1000,\"valid_days\":30}", coupon);
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", member);
    struct api_response view = api_get(path);
    assert_int_equal(view.status, 200);
    assert_int_equal(json_array_size(json_object_get(view.body, "coupons")), 1);
    assert_string_equal(
        json_str_at(json_array_get(json_object_get(view.body, "coupons"), 0), "coupon_id"), coupon);
    api_response_free(&view);
    expect_problem(redeem(other, coupon, 5000), 404, "coupon_not_found");
    struct api_response r = redeem(member, coupon, 5000);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_str_at(r.body, "status"), "redeemed");
    assert_int_equal(json_int_at(r.body, "discount_applied"), 1000);
    assert_int_equal(json_int_at(r.body, "charged"), 4000);
    api_response_free(&r);
    expect_problem(redeem(member, coupon, 5000), 409, "coupon_used");
    view = api_get(path);
    assert_int_equal(json_array_size(json_object_get(view.body, "coupons")), 0);
    api_response_free(&view);
    expect_problem(api_post("/v1/members/00000000-0000-7000-8000-000000000000/coupons",
                            "{\"kind\":\"value\",\"valid_days\":30}", NULL),
                   422, "validation_failed"); /* a value coupon needs its value */
}

/* A percentage coupon inside a purchase: 15% off, then refused on the
 * next purchase. A purchase refused for its balance leaves the coupon
 * unused; past its validity it is coupon_expired. */
static void test_coupon_in_purchase(void **state)
{
    char member[64], coupon[64], spare[64];
    test_register_member(member);
    issue_coupon(member, "{\"kind\":\"percent\",\"percent_bp\":1500,\"valid_days\":7}", coupon);
    issue_coupon(member, "{\"kind\":\"value\",\"value\":500,\"valid_days\":7}", spare);

    /* no stored value: refused, and the coupon stays unused */
    expect_problem(purchase_with(member, coupon, "stored_value", 10000), 409,
                   "insufficient_balance");
    struct api_response r = purchase_with(member, coupon, "cash", 10000);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "discount_applied"), 1500);
    assert_int_equal(json_int_at(r.body, "charged"), 8500);
    api_response_free(&r);
    expect_problem(purchase_with(member, coupon, "cash", 10000), 409, "coupon_used");

    PGconn *pg = test_pg();
    const char *p[1] = {member};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.commands WHERE member_id = $1 AND "
                                 "command_type = 'purchase' AND status = 'posted'",
                                 1, p),
                     1);
    /* time passing, simulated: the spare coupon's validity ends */
    const char *s[1] = {spare};
    assert_int_equal(test_pg_int(pg,
                                 "WITH u AS (UPDATE ledger.coupons SET valid_to_us = "
                                 "valid_from_us + 1 WHERE coupon_id = $1 RETURNING 1) "
                                 "SELECT count(*) FROM u",
                                 1, s),
                     1);
    PQfinish(pg);
    expect_problem(purchase_with(member, spare, "cash", 10000), 409, "coupon_expired");
    expect_problem(redeem(member, spare, 0), 409, "coupon_expired");
}

/* ------------------------------------------------ the fraud alert */
static int assign_from_beginning(void *ctx, rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++)
        parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    return 0;
}

static const struct bus_consumer_ops from_beginning = {assign_from_beginning, NULL};

/* True when one of msgs is a CardFraudAlert for card_id with reason. */
static bool has_alert(rd_kafka_message_t **msgs, size_t n, const char *card_id, const char *reason)
{
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        char why[128];
        Envelope *env =
            msgs[i]->err ? NULL : envelope_decode(msgs[i]->payload, msgs[i]->len, why, sizeof(why));
        if (env && env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CARD_FRAUD_ALERT &&
            strcmp(env->card_fraud_alert->card_id, card_id) == 0 &&
            strcmp(env->card_fraud_alert->reason, reason) == 0)
            found = true;
        envelope_free(env);
        rd_kafka_message_destroy(msgs[i]);
    }
    return found;
}

static bool wait_for_alert(const char *card_id, const char *reason)
{
    char group[96], err[256];
    snprintf(group, sizeof(group), "test-cards-alerts-%s-%s", run_id, reason);
    const char *bootstrap = getenv("TESSERA_KAFKA_BOOTSTRAP");
    assert_non_null(bootstrap);
    struct bus_config cfg = {
        .bootstrap = bootstrap, .client_id = group, .session_timeout_ms = 6000, .linger_ms = 5};
    const char *topics[1] = {TOPIC_LEDGER_EVENTS};
    struct bus_consumer *c =
        bus_consumer_new(&cfg, group, topics, 1, &from_beginning, NULL, err, sizeof(err));
    assert_non_null(c);
    bool found = false;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        rd_kafka_message_t *msgs[256];
        size_t n = bus_consumer_poll_batch(c, msgs, 256, 200);
        if (has_alert(msgs, n, card_id, reason)) {
            found = true;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 > ALERT_DEADLINE_MS)
            break;
    }
    bus_consumer_close(c);
    return found;
}

/* Three uses within minutes raise a burst alert; the next use at another
 * branch soon after raises a distant-branches alert. Alerts refuse
 * nothing. */
static void test_fraud_alerts(void **state)
{
    char product[64], member[64], card[64];
    product_id(product, sizeof(product), "fraud-20");
    define_product(product, "\"kind\":\"count\",\"name\":\"20\","
                            "\"price\":1000,\"uses\":20,\"validity_days\":30");
    test_register_member(member);
    sell_ok(member, product, card);
    for (int i = 0; i < 3; i++) {
        struct api_response r = use_at(member, card, "hq");
        assert_int_equal(r.status, 201);
        api_response_free(&r);
    }
    assert_true(wait_for_alert(card, "burst"));

    char other[64], card2[64];
    test_register_member(other);
    sell_ok(other, product, card2);
    struct api_response r = use_at(other, card2, "hq");
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    r = use_at(other, card2, "branch-1");
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    assert_true(wait_for_alert(card2, "distant_branches"));
}

/* Tenant limits: an education tenant caps one prepaid sale at 60 class
 * hours or 92 days, and allows one use a day. Runs last and restores the
 * defaults (the demo tenant is shared). */
static void test_tenant_limits(void **state)
{
    char hours61[64], year[64], member[64], card[64];
    product_id(hours61, sizeof(hours61), "hours-61");
    product_id(year, sizeof(year), "year");
    define_product(hours61, "\"kind\":\"count\",\"name\":\"61 hours\","
                            "\"price\":610000,\"uses\":61,\"validity_days\":60");
    define_product(year, "\"kind\":\"time\",\"name\":\"Year\","
                         "\"price\":198000,\"period\":\"year\"");
    struct api_response r =
        api_call("PUT", "/v1/config/card-limits",
                 "{\"prepaid_uses_max\":60,\"prepaid_days_max\":92,"
                 "\"daily_uses_max\":1}",
                 NULL, (const char *const[]){"Content-Type: application/json", NULL});
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "status"), "applied");
    api_response_free(&r);
    test_register_member(member);
    expect_problem(sell(member, hours61, "cash", NULL), 409, "prepaid_cap_exceeded");
    expect_problem(sell(member, year, "cash", NULL), 409, "prepaid_cap_exceeded");
    expect_problem(api_call("PUT", "/v1/config/card-limits", "{\"daily_uses_max\":0}", NULL,
                            (const char *const[]){"Content-Type: application/json", NULL}),
                   422, "validation_failed");

    char small[64];
    product_id(small, sizeof(small), "hours-60");
    define_product(small, "\"kind\":\"count\",\"name\":\"60 hours\","
                          "\"price\":600000,\"uses\":60,\"validity_days\":92");
    sell_ok(member, small, card);
    r = use_at(member, card, "hq");
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    expect_problem(use_at(member, card, "hq"), 409, "daily_limit_reached");
    /* Issue 10 item 11: a renewal may not lift what the card holds over
     * the cap (60 + 60 uses), whatever each sale is. */
    expect_problem(card_post(member, card, "renewals",
                             "{\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}", NULL),
                   409, "prepaid_cap_exceeded");
    char quarter[64], qcard[64];
    product_id(quarter, sizeof(quarter), "quarter");
    define_product(quarter, "\"kind\":\"time\",\"name\":\"Quarter\","
                            "\"price\":50000,\"period\":\"quarter\"");
    sell_ok(member, quarter, qcard); /* 91 days: under the cap of 92 */
    expect_problem(card_post(member, qcard, "renewals",
                             "{\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}", NULL),
                   409, "prepaid_cap_exceeded");

    r = api_call("PUT", "/v1/config/card-limits", "{}", NULL,
                 (const char *const[]){"Content-Type: application/json", NULL});
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    sell_ok(member, year, card); /* defaults again: no cap */
}

static int64_t branch1_unused_value(void)
{
    struct api_response r = api_get("/v1/reports/card-liability?branch_id=branch-1");
    assert_int_equal(r.status, 200);
    int64_t v = json_int_at(r.body, "tenant.unused_value");
    api_response_free(&r);
    return v;
}

/* The unused value of cards sold at a branch: the price while no use is
 * made, in proportion to the uses left after, and after a renewal the
 * total paid in proportion to all uses bought. Only count cards are sold
 * at branch-1 in these tests, so the value does not move with the clock. */
static void test_card_liability_report(void **state)
{
    char product[64], member[64], card[64], path[160], body[256];
    product_id(product, sizeof(product), "liability-10");
    define_product(product, "\"kind\":\"count\",\"name\":\"10\",\"price\":100000,"
                            "\"uses\":10,\"validity_days\":30");
    test_register_member(member);
    int64_t before = branch1_unused_value();
    snprintf(path, sizeof(path), "/v1/members/%s/cards", member);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"branch_id\":\"branch-1\",\"payment\":{\"method\":"
             "\"cash\"}}",
             product);
    struct api_response r = api_post(path, body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(card, sizeof(card), "%s", json_str_at(r.body, "card_id"));
    api_response_free(&r);
    assert_int_equal(branch1_unused_value(), before + 100000);
    for (int i = 0; i < 3; i++) {
        r = use_at(member, card, "branch-1");
        assert_int_equal(r.status, 201);
        api_response_free(&r);
    }
    assert_int_equal(branch1_unused_value(), before + 70000);
    r = card_post(member, card, "renewals",
                  "{\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}", NULL);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "uses_left"), 17);
    api_response_free(&r);
    /* 200 000 paid for 20 uses, 17 left; still counted where it was sold */
    assert_int_equal(branch1_unused_value(), before + 170000);
    expect_problem(api_get("/v1/reports/card-liability?branch_id="), 422, "validation_failed");
}

/* After every card and coupon scenario the ledger's audit (balances from
 * the journal, balanced postings, member accounts, one verdict per
 * command, prepaid totals, Redis) still passes. */
static void test_ledger_audit_passes(void **state)
{
    assert_int_equal(system("build/bin/tessera-ledger --audit >/dev/null 2>&1"), 0);
}

int main(void)
{
    snprintf(run_id, sizeof(run_id), "%ld-%d", (long)time(NULL), (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_card),
        cmocka_unit_test(test_count_card_branch_and_uses),
        cmocka_unit_test(test_time_card),
        cmocka_unit_test(test_discount_card_and_subscription),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_card_use_applied_once),
        cmocka_unit_test(test_card_uses_survive_ledger_kill),
        cmocka_unit_test(test_value_coupon_alone),
        cmocka_unit_test(test_coupon_in_purchase),
        cmocka_unit_test(test_fraud_alerts),
        cmocka_unit_test(test_tenant_limits),
        cmocka_unit_test(test_card_liability_report),
        cmocka_unit_test(test_ledger_audit_passes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
