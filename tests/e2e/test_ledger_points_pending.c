/* Pending points end to end, against the real runtime: EarnPoints
 * commands produced onto ledger-commands (as the campaign service sends
 * them) make pending lots the member view shows and no deduction can
 * spend; refunds of the purchase in parts take them back in proportion
 * (and return stored value exactly); the ledger's scheduler vests a lot
 * whose lock is over, after which it is spendable; a refund after the
 * points were spent reports what it could not take back; replayed
 * commands change nothing.
 *
 * The test runs in a tenant of its own ("lockpts", made here with
 * test-only SQL like the tenant isolation test), so its lock period and
 * ladder touch no other test and no earning rule of the demo tenant can
 * add points behind its back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../support/api_client.h"
#include "bus/bus.h"
#include "bus/topics.h"
#include "events/codec.h"

#define TENANT            "lockpts"
#define LOCK_WEEK_S       "604800"
#define LOCK_SHORT_S      "5" /* long enough to see the lot pending first */
#define COMMAND_WAIT_MS   15000
#define VEST_WAIT_MS      30000 /* the lock, then a scheduler round (2 s) */
#define TEST_KEY_HEX_SIZE 49

static char key[4 + TEST_KEY_HEX_SIZE];
static struct bus_producer *producer;

static void exec_ok(PGconn *pg, const char *sql, int n, const char *const *p)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    PQclear(res);
}

/* The tenant's points policy, by API: points expire at the end of the
 * 12th month, locked for seconds. */
static void set_lock(const char *seconds)
{
    char body[160];
    snprintf(body, sizeof(body),
             "{\"expiry\":{\"kind\":\"end_of_month\",\"periods\":12,"
             "\"utc_offset_minutes\":480},\"lock_seconds\":%s}",
             seconds);
    test_put_setting("points-policy", body, key);
}

/* The tenant, its hq branch, an admin key, a 7-day lock (points expire at
 * the end of the 12th month after vesting), and a ladder with a bonus so
 * stored-value purchases draw principal and bonus. */
static int setup(void **state)
{
    unsigned char raw[24];
    randombytes_buf(raw, sizeof(raw));
    strcpy(key, "tsk_");
    sodium_bin2hex(key + 4, sizeof(key) - 4, raw, sizeof(raw));
    PGconn *pg = test_pg();
    exec_ok(pg,
            "INSERT INTO ingest.tenants (tenant_id, name) VALUES ('" TENANT "', 'Lock Points') "
            "ON CONFLICT DO NOTHING",
            0, NULL);
    exec_ok(pg,
            "INSERT INTO ingest.branches (tenant_id, branch_id, name) VALUES "
            "('" TENANT "', 'hq', 'Lock HQ') ON CONFLICT DO NOTHING",
            0, NULL);
    const char *p[1] = {key};
    exec_ok(pg,
            "INSERT INTO ingest.api_keys (key_hash, tenant_id, name, scope) VALUES "
            "(encode(sha256(convert_to($1, 'UTF8')), 'hex'), '" TENANT "', 'lock admin', 'admin')",
            1, p);
    PQfinish(pg);
    set_lock(LOCK_WEEK_S);
    test_put_setting("topup-bonus", "{\"steps\":[{\"threshold\":100000,\"bonus\":10000}]}", key);
    char err[256];
    struct bus_config cfg = {.bootstrap = getenv("TESSERA_KAFKA_BOOTSTRAP"),
                             .client_id = "test-points-pending",
                             .session_timeout_ms = 6000,
                             .linger_ms = 5};
    assert_non_null(cfg.bootstrap);
    producer = bus_producer_new(&cfg, NULL, NULL, NULL, err, sizeof(err));
    assert_non_null(producer);
    return 0;
}

static int teardown(void **state)
{
    bus_producer_free(producer);
    return 0;
}

/* ------------------------------------------------------- HTTP helpers */
static struct api_response call(const char *method, const char *path, const char *body)
{
    return api_call(method, path, body, key, NULL);
}

static struct api_response member_post(const char *member_id, const char *tail, const char *body)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/members/%s%s", member_id, tail);
    return call("POST", path, body);
}

static void register_member(char member_id[64], char phone[16])
{
    char body[160];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"Lock Member\",\"phone\":\"%s\",\"branch_id\":\"hq\"}",
             phone);
    struct api_response r = call("POST", "/v1/members", body);
    assert_int_equal(r.status, 201);
    snprintf(member_id, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

struct balances {
    int64_t points, pending, principal, bonus;
};

static struct balances balances_of(const char *member_id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", member_id);
    struct api_response r = call("GET", path, NULL);
    assert_int_equal(r.status, 200);
    struct balances b = {json_int_at(r.body, "balances.points"),
                         json_int_at(r.body, "balances.points_pending"),
                         json_int_at(r.body, "balances.stored_value_principal"),
                         json_int_at(r.body, "balances.stored_value_bonus")};
    api_response_free(&r);
    return b;
}

/* A purchase; writes its operation id. */
static void purchase(const char *member_id, int64_t amount, const char *method, char op[64])
{
    char body[160];
    snprintf(body, sizeof(body),
             "{\"amount\":%lld,\"branch_id\":\"hq\",\"payment\":{\"method\":\"%s\"}}",
             (long long)amount, method);
    struct api_response r = member_post(member_id, "/purchases", body);
    assert_int_equal(r.status, 201);
    snprintf(op, 64, "%s", json_str_at(r.body, "operation_id"));
    api_response_free(&r);
}

static struct api_response refund(const char *member_id, const char *purchase_op, int64_t amount)
{
    char body[256], amount_field[48] = "";
    if (amount > 0)
        snprintf(amount_field, sizeof(amount_field), ",\"amount\":%lld", (long long)amount);
    snprintf(body, sizeof(body),
             "{\"kind\":\"purchase\",\"reason\":\"returned goods\",\"branch_id\":\"hq\","
             "\"purchase_operation_id\":\"%s\"%s}",
             purchase_op, amount_field);
    return member_post(member_id, "/refunds", body);
}

static void expect_code(struct api_response r, long status, const char *code)
{
    if (r.status != status)
        fprintf(stderr, "expected %ld %s, got %ld: %s\n", status, code, r.status, r.raw);
    assert_int_equal(r.status, status);
    assert_string_equal(json_str_at(r.body, "code"), code);
    api_response_free(&r);
}

static struct api_response adjust(const char *member_id, int64_t points)
{
    char body[96];
    snprintf(body, sizeof(body), "{\"points\":%lld,\"reason\":\"pending test\"}",
             (long long)points);
    return member_post(member_id, "/points-adjustments", body);
}

/* ------------------------------------------------------- commands */
/* Produces a ledger command to ledger-commands keyed by member, as the
 * campaign service (EarnPoints) or the ledger's scheduler (VestPoints)
 * does, and waits for Kafka to have it. */
static void produce(Envelope *env)
{
    size_t len = 0;
    uint8_t *payload = envelope_encode(env, &len);
    assert_non_null(payload);
    rd_kafka_resp_err_t delivered = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    assert_int_equal(bus_produce(producer, TOPIC_LEDGER_COMMANDS, env->member_id, payload, len,
                                 NULL, &delivered),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(bus_producer_flush(producer, 10000), 0);
    assert_int_equal(delivered, RD_KAFKA_RESP_ERR_NO_ERROR);
    free(payload);
}

static void send_earn(const char *member_id, const char *command_id, int64_t points,
                      const char *purchase_op)
{
    struct event_meta meta = {.tenant_id = TENANT,
                              .branch_id = "hq",
                              .member_id = member_id,
                              .correlation_id = command_id,
                              .actor_kind = "service",
                              .actor_id = "campaign"};
    Envelope env;
    Actor actor;
    EarnPoints e;
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__earn_points__init(&e);
    e.command_id = (char *)command_id;
    e.points = points;
    e.purchase_command_id = (char *)purchase_op;
    e.rule = "spend_1_per_yuan";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARN_POINTS;
    env.earn_points = &e;
    produce(&env);
}

static void send_vest(const char *member_id, const char *lot_id)
{
    char command_id[80];
    snprintf(command_id, sizeof(command_id), "vest:%s", lot_id);
    struct event_meta meta = {.tenant_id = TENANT,
                              .branch_id = "hq",
                              .member_id = member_id,
                              .actor_kind = "service",
                              .actor_id = "ledger-vesting"};
    Envelope env;
    Actor actor;
    VestPoints v;
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__vest_points__init(&v);
    v.command_id = command_id;
    v.lot_id = (char *)lot_id;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_VEST_POINTS;
    env.vest_points = &v;
    produce(&env);
}

static bool command_recorded(void *arg)
{
    PGconn *pg = test_pg();
    const char *p[1] = {arg};
    int64_t n = test_pg_int(pg,
                            "SELECT count(*) FROM ledger.commands WHERE tenant_id = '" TENANT
                            "' AND command_id = $1",
                            1, p);
    PQfinish(pg);
    return n == 1;
}

/* The stored verdict's status and code ("posted", "rejected:<code>"). */
static void command_status(const char *command_id, char out[64])
{
    assert_true(poll_until(command_recorded, (void *)command_id, COMMAND_WAIT_MS));
    PGconn *pg = test_pg();
    const char *p[1] = {command_id};
    PGresult *res = PQexecParams(pg,
                                 "SELECT status || coalesce(':' || code, '') FROM ledger.commands "
                                 "WHERE tenant_id = '" TENANT "' AND command_id = $1",
                                 1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQntuples(res), 1);
    snprintf(out, 64, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(pg);
}

static void earn_ok(const char *member_id, const char *command_id, int64_t points,
                    const char *purchase_op)
{
    char status[64];
    send_earn(member_id, command_id, points, purchase_op);
    command_status(command_id, status);
    assert_string_equal(status, "posted");
}

/* The one lot earned for a purchase. */
static void lot_of(const char *purchase_op, char lot_id[64])
{
    PGconn *pg = test_pg();
    const char *p[1] = {purchase_op};
    PGresult *res = PQexecParams(pg,
                                 "SELECT lot_id FROM ledger.point_lots WHERE tenant_id = '" TENANT
                                 "' AND purchase_command_id = $1",
                                 1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQntuples(res), 1);
    snprintf(lot_id, 64, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(pg);
}

static int64_t pg_int1(const char *sql, const char *param)
{
    PGconn *pg = test_pg();
    const char *p[1] = {param};
    int64_t v = test_pg_int(pg, sql, 1, p);
    PQfinish(pg);
    return v;
}

/* A command produced after others of the member, once recorded, shows
 * that everything before it on the partition was consumed. */
static void drain_member(const char *member_id)
{
    char marker[UUID_STR_SIZE + 8], status[64];
    char id[UUID_STR_SIZE];
    uuid7_generate(id);
    snprintf(marker, sizeof(marker), "mark:%s", id);
    send_earn(member_id, marker, 1, "");
    command_status(marker, status);
    assert_string_equal(status, "posted");
}

/* ------------------------------------------------------- tests */
/* 100 yuan topped up (+10 bonus at this tenant), 100.01 yuan spent from
 * stored value (90.92 principal, 9.09 bonus), 101 points earned for it,
 * pending. Half the purchase refunded takes back 50 of them from the
 * pending lot and returns 45.45 + 4.55; the rest takes the other 51 and
 * returns 45.47 + 4.54: stored value exactly as before the purchase. */
static void test_earn_pending_refund_in_parts(void **state)
{
    char member[64], phone[16], op[64], earn_id[128];
    register_member(member, phone);
    struct api_response r = member_post(
        member, "/topups", "{\"amount\":100000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}");
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "bonus"), 10000);
    api_response_free(&r);
    purchase(member, 10001, "stored_value", op);
    struct balances b = balances_of(member);
    assert_int_equal(b.principal, 90908);
    assert_int_equal(b.bonus, 9091);

    snprintf(earn_id, sizeof(earn_id), "earn:%s", op);
    earn_ok(member, earn_id, 101, op);
    b = balances_of(member);
    assert_int_equal(b.pending, 101);
    assert_int_equal(b.points, 0);
    char lot[64];
    lot_of(op, lot);
    assert_int_equal(pg_int1("SELECT count(*) FROM ledger.point_lots WHERE lot_id = $1 AND "
                             "pending AND vests_at BETWEEN now() + interval '6 days 23 hours' "
                             "AND now() + interval '7 days' AND rule = 'spend_1_per_yuan'",
                             lot),
                     1);
    /* pending points are not spendable */
    expect_code(adjust(member, -1), 409, "insufficient_points");

    /* half the purchase */
    r = refund(member, op, 5000);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "amount"), 5000);
    assert_int_equal(json_int_at(r.body, "principal"), 4545);
    assert_int_equal(json_int_at(r.body, "bonus_returned"), 455);
    assert_int_equal(json_int_at(r.body, "points_reversed"), 50);
    assert_int_equal(json_int_at(r.body, "points_unrecovered"), 0);
    assert_int_equal(json_int_at(r.body, "balances.points_pending"), 51);
    assert_int_equal(json_int_at(r.body, "balances.points"), 0);
    api_response_free(&r);
    assert_int_equal(balances_of(member).pending, 51);

    /* more than is left is refused and changes nothing */
    expect_code(refund(member, op, 5002), 409, "exceeds_refundable");

    /* the rest (no amount): exact to the fen and the point */
    r = refund(member, op, 0);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "amount"), 5001);
    assert_int_equal(json_int_at(r.body, "principal"), 4547);
    assert_int_equal(json_int_at(r.body, "bonus_returned"), 454);
    assert_int_equal(json_int_at(r.body, "points_reversed"), 51);
    assert_int_equal(json_int_at(r.body, "points_unrecovered"), 0);
    api_response_free(&r);
    b = balances_of(member);
    assert_int_equal(b.principal, 100000);
    assert_int_equal(b.bonus, 10000);
    assert_int_equal(b.pending, 0);
    assert_int_equal(b.points, 0);
    expect_code(refund(member, op, 0), 409, "already_refunded");

    /* the trail: two rows that add up to the purchase */
    assert_int_equal(pg_int1("SELECT sum(amount) FROM ledger.refunds WHERE purchase_command_id "
                             "= $1",
                             op),
                     10001);
    assert_int_equal(pg_int1("SELECT sum(points_reversed) FROM ledger.refunds WHERE "
                             "purchase_command_id = $1",
                             op),
                     101);
    assert_int_equal(pg_int1("SELECT remaining FROM ledger.point_lots WHERE lot_id = $1", lot), 0);

    /* The history shows the earned, then reversed pending lines, with
     * their reasons. */
    char path[128], reason[256];
    snprintf(path, sizeof(path), "/v1/members/%s/ledger", member);
    r = call("GET", path, NULL);
    assert_int_equal(r.status, 200);
    snprintf(reason, sizeof(reason), "points_earned:spend_1_per_yuan:purchase:%s", op);
    json_t *entries = json_object_get(r.body, "entries");
    int earned = 0, reversed = 0;
    int64_t reversed_sum = 0;
    for (size_t i = 0; i < json_array_size(entries); i++) {
        json_t *e = json_array_get(entries, i);
        if (strcmp(json_str_at(e, "asset"), "points_pending") != 0)
            continue;
        if (strcmp(json_str_at(e, "type"), "points_earning") == 0) {
            assert_string_equal(json_str_at(e, "reason"), reason);
            assert_int_equal(json_int_at(e, "amount"), 101);
            earned++;
        } else {
            assert_string_equal(json_str_at(e, "type"), "refund_purchase");
            assert_string_equal(json_str_at(e, "reason"), "refund_purchase:returned goods");
            reversed_sum += json_int_at(e, "amount");
            reversed++;
        }
    }
    assert_int_equal(earned, 1);
    assert_int_equal(reversed, 2);
    assert_int_equal(reversed_sum, -101);
    api_response_free(&r);

    /* Replaying the earning changes nothing: one verdict, one lot. */
    send_earn(member, earn_id, 101, op);
    drain_member(member);
    assert_int_equal(pg_int1("SELECT count(*) FROM ledger.point_lots WHERE purchase_command_id "
                             "= $1",
                             op),
                     1);
    assert_int_equal(balances_of(member).pending, 1); /* the marker's point only */
    /* and an earning for the fully refunded purchase grants nothing */
    char late[96], status[64];
    snprintf(late, sizeof(late), "late:%s", op);
    send_earn(member, late, 10, op);
    command_status(late, status);
    assert_string_equal(status, "rejected:purchase_refunded");
}

/* A refund that came before the points: the refunded share of them is
 * withheld when they arrive, and the rest comes back with the next part,
 * so the order changes nothing. An earning for another member's or an
 * unknown purchase is refused. */
static void test_refund_before_earning(void **state)
{
    char member[64], other[64], phone[16], op[64], id[128], status[64];
    register_member(member, phone);
    register_member(other, phone);
    purchase(member, 1000, "cash", op);
    struct api_response r = refund(member, op, 400);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "principal"), 0); /* cash: nothing to stored value */
    assert_int_equal(json_int_at(r.body, "points_reversed"), 0);
    api_response_free(&r);
    snprintf(id, sizeof(id), "earn:%s", op);
    earn_ok(member, id, 10, op);
    assert_int_equal(balances_of(member).pending, 6); /* 4 of 10 withheld */
    r = refund(member, op, 0);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "amount"), 600);
    assert_int_equal(json_int_at(r.body, "points_reversed"), 6);
    api_response_free(&r);
    assert_int_equal(balances_of(member).pending, 0);

    snprintf(id, sizeof(id), "earn-other:%s", op);
    send_earn(other, id, 10, op);
    command_status(id, status);
    assert_string_equal(status, "rejected:not_found");
    assert_int_equal(balances_of(other).pending, 0);
}

struct vest_target {
    const char *member_id;
    int64_t points;
};

static bool vested(void *arg)
{
    struct vest_target *t = arg;
    struct balances b = balances_of(t->member_id);
    return b.points == t->points && b.pending == 0;
}

/* Signs the member in with a password set here (an argon2id string, as
 * PUT /v1/me/password stores) and reads GET /v1/me. */
static struct balances me_balances(const char *member_id, const char *phone)
{
    char hash[crypto_pwhash_STRBYTES], body[256], token[160];
    assert_int_equal(crypto_pwhash_str(hash, "pending-pass-1", 14, crypto_pwhash_OPSLIMIT_MIN,
                                       crypto_pwhash_MEMLIMIT_MIN),
                     0);
    PGconn *pg = test_pg();
    const char *p[2] = {member_id, hash};
    exec_ok(pg,
            "INSERT INTO ingest.member_credentials (tenant_id, member_id, password_hash) VALUES "
            "('" TENANT "', $1, $2) ON CONFLICT (tenant_id, member_id) DO UPDATE SET "
            "password_hash = $2",
            2, p);
    PQfinish(pg);
    snprintf(body, sizeof(body),
             "{\"phone\":\"%s\",\"password\":\"pending-pass-1\",\"device_id\":\"pos-test\"}",
             phone);
    struct api_response r = call("POST", "/v1/api-keys", "{\"name\":\"app\",\"scope\":\"app\"}");
    assert_int_equal(r.status, 201);
    char app_key[128];
    snprintf(app_key, sizeof(app_key), "%s", json_str_at(r.body, "key"));
    api_response_free(&r);
    r = api_call("POST", "/v1/auth/sessions", body, app_key, NULL);
    assert_int_equal(r.status, 201);
    snprintf(token, sizeof(token), "%s", json_str_at(r.body, "token"));
    api_response_free(&r);
    r = api_call("GET", "/v1/me", NULL, token, NULL);
    assert_int_equal(r.status, 200);
    struct balances b = {json_int_at(r.body, "balances.points"),
                         json_int_at(r.body, "balances.points_pending"),
                         json_int_at(r.body, "balances.stored_value_principal"),
                         json_int_at(r.body, "balances.stored_value_bonus")};
    api_response_free(&r);
    return b;
}

/* With a 5-second lock the scheduler vests the lot (one VestPoints
 * command, "vest:<lot id>"), after which the points are spendable; a
 * replayed vesting changes nothing; a refund after most of them were
 * spent takes back what is left of the lot, then other vested points,
 * and reports the rest as unrecovered, never going below zero. */
static void test_vest_by_scheduler_then_spend_and_refund(void **state)
{
    char member[64], phone[16], op[64], earn_id[128], lot[64], vest_id[80];
    set_lock(LOCK_SHORT_S);
    register_member(member, phone);
    purchase(member, 5000, "cash", op);
    snprintf(earn_id, sizeof(earn_id), "earn:%s", op);
    earn_ok(member, earn_id, 50, op);
    set_lock(LOCK_WEEK_S); /* later earnings of the run lock for a week again */
    lot_of(op, lot);
    struct balances b = me_balances(member, phone);
    if (b.pending != 50)
        fprintf(stderr, "pending %lld points %lld\n", (long long)b.pending, (long long)b.points);
    assert_int_equal(b.pending, 50); /* seconds before the lock is over */
    assert_int_equal(b.points, 0);

    struct vest_target target = {member, 50};
    assert_true(poll_until(vested, &target, VEST_WAIT_MS));
    snprintf(vest_id, sizeof(vest_id), "vest:%s", lot);
    assert_int_equal(pg_int1("SELECT count(*) FROM ledger.commands WHERE command_id = $1 AND "
                             "status = 'posted' AND command_type = 'points_vesting'",
                             vest_id),
                     1);
    /* four lines, balanced per asset, with the reason */
    assert_int_equal(pg_int1("SELECT count(*) FROM ledger.journal WHERE command_id = $1 AND "
                             "reason = 'points_vested:' || substr($1, 6)",
                             vest_id),
                     4);
    assert_int_equal(pg_int1("SELECT count(*) FROM (SELECT asset FROM ledger.journal WHERE "
                             "command_id = $1 GROUP BY asset HAVING sum(amount) = 0) s",
                             vest_id),
                     2);
    b = me_balances(member, phone);
    assert_int_equal(b.points, 50);
    assert_int_equal(b.pending, 0);
    /* the history shows the vesting: pending out, points in, with the reason */
    char path[128], reason[96];
    snprintf(path, sizeof(path), "/v1/members/%s/ledger", member);
    snprintf(reason, sizeof(reason), "points_vested:%s", lot);
    struct api_response h = call("GET", path, NULL);
    assert_int_equal(h.status, 200);
    json_t *entries = json_object_get(h.body, "entries");
    int64_t pending_moved = 0, points_moved = 0;
    for (size_t i = 0; i < json_array_size(entries); i++) {
        json_t *e = json_array_get(entries, i);
        if (strcmp(json_str_at(e, "type"), "points_vesting") != 0)
            continue;
        assert_string_equal(json_str_at(e, "reason"), reason);
        *(strcmp(json_str_at(e, "asset"), "points") == 0 ? &points_moved : &pending_moved) +=
            json_int_at(e, "amount");
    }
    assert_int_equal(pending_moved, -50);
    assert_int_equal(points_moved, 50);
    api_response_free(&h);

    /* spendable now */
    struct api_response r = adjust(member, -30);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "balances.points"), 20);
    api_response_free(&r);

    /* a replayed vesting is a duplicate */
    send_vest(member, lot);
    drain_member(member); /* +1 pending point, the marker's */
    assert_int_equal(pg_int1("SELECT count(*) FROM ledger.commands WHERE command_id = $1", vest_id),
                     1);
    b = balances_of(member);
    assert_int_equal(b.points, 20);

    /* 10 more vested points from a grant, then the whole purchase refunded:
     * 50 to take back, 20 left in its lot, 10 elsewhere, 20 unrecovered;
     * the marker's pending point is another purchase's and stays. */
    r = adjust(member, 10);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    r = refund(member, op, 0);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "points_reversed"), 50);
    assert_int_equal(json_int_at(r.body, "points_unrecovered"), 20);
    assert_int_equal(json_int_at(r.body, "balances.points"), 0);
    assert_int_equal(json_int_at(r.body, "balances.points_pending"), 1);
    api_response_free(&r);
    assert_int_equal(pg_int1("SELECT points_unrecovered FROM ledger.refunds WHERE "
                             "purchase_command_id = $1",
                             op),
                     20);
}

/* ------------------------------------------------------- the audit */
#define AUDIT_OUTPUT_MAX 65536

/* Runs the audit; 0 passed, 1 failed (the check and culprit must be in
 * the report). */
static void expect_audit(int want_rc, const char *check, const char *culprit)
{
    static char report[AUDIT_OUTPUT_MAX];
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s audit 2>&1", getenv("TESSERA_RUNTIME"));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(report, 1, sizeof(report) - 1, p);
    report[n] = '\0';
    int status = pclose(p);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    char line[256] = "audit: passed";
    if (check)
        snprintf(line, sizeof(line), "FAIL  %s", check);
    if (rc != want_rc || !strstr(report, line) || (culprit && !strstr(report, culprit)))
        fprintf(stderr, "audit report:\n%s\n", report);
    assert_int_equal(rc, want_rc);
    assert_non_null(strstr(report, line));
    if (culprit)
        assert_non_null(strstr(report, culprit));
}

static void tamper(const char *sql, const char *member_id)
{
    PGconn *pg = test_pg();
    const char *p[1] = {member_id};
    exec_ok(pg, sql, 1, p);
    PQfinish(pg);
}

static void redis_hincrby(const char *member_id, int by)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "redis-cli -p \"$TESSERA_REDIS_PORT\" HINCRBY tessera:" TENANT
             ":member:%s:balances points_pending %d >/dev/null",
             member_id, by);
    assert_int_equal(system(cmd), 0);
}

/* The audit counts pending points apart: the member's points_pending
 * against its pending lots and its points_pending journal lines, and the
 * cached points_pending against PostgreSQL. Each corruption is named;
 * after the repair it passes. */
static void test_audit_checks_pending_points(void **state)
{
    char member[64], phone[16], earn_id[UUID_STR_SIZE + 16], id[UUID_STR_SIZE];
    register_member(member, phone);
    uuid7_generate(id);
    snprintf(earn_id, sizeof(earn_id), "streak:%s", id);
    earn_ok(member, earn_id, 40, ""); /* an activity: no purchase */
    assert_int_equal(balances_of(member).pending, 40);
    expect_audit(0, NULL, NULL);

    tamper("UPDATE ledger.point_lots SET remaining = remaining - 1 WHERE member_id = $1", member);
    expect_audit(1, "points balances equal their lots", member);
    tamper("UPDATE ledger.point_lots SET remaining = remaining + 1 WHERE member_id = $1", member);

    /* a pending lot counted as vested */
    tamper("UPDATE ledger.point_lots SET pending = false WHERE member_id = $1", member);
    expect_audit(1, "points balances equal their lots", member);
    tamper("UPDATE ledger.point_lots SET pending = true WHERE member_id = $1", member);

    tamper("UPDATE ledger.balances SET points_pending = points_pending + 1 WHERE member_id = $1",
           member);
    expect_audit(1, "balances equal the journal", member);
    tamper("UPDATE ledger.balances SET points_pending = points_pending - 1 WHERE member_id = $1",
           member);

    redis_hincrby(member, 1);
    expect_audit(1, "redis agrees with postgres", member);
    redis_hincrby(member, -1);
    expect_audit(0, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_earn_pending_refund_in_parts),
        cmocka_unit_test(test_refund_before_earning),
        cmocka_unit_test(test_vest_by_scheduler_then_spend_and_refund),
        cmocka_unit_test(test_audit_checks_pending_points),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
