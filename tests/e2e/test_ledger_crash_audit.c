/* Over 10 000 mixed ledger commands — single requests from several
 * clients and offline batches, plus the points every purchase earns (sent
 * by the campaign service) — with two ledger instances splitting the
 * partitions (the second running two workers), the first killed with
 * SIGKILL three times at random moments and restarted, the second stopped
 * (SIGTERM) in the middle of the load:
 * afterwards every command has exactly one verdict, every member holds
 * exactly what its commands imply (its own cards included: card sales on
 * two workers of one process once shared one static card), and the audit
 * passes. Purchases stay
 * under the demo ladder's first tier (500 yuan), so no tier discount
 * changes prices in the middle.
 *
 * Among them, the commands that used to stall a ledger worker for good
 * (issue 10, items 1 and 2): a points grant whose reason is 200 Chinese
 * characters (applied, the reason stored whole), the same with 300 put
 * straight on ledger-commands as a producer other than ingest could
 * (longer than the ledger takes: dead-lettered), and a top-up past the
 * most a tenant's outstanding prepaid value can hold (refused with
 * prepaid_overflow). */
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

#include "../support/api_client.h"
#include "../support/full_tenant.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "events/codec.h"
#include "events/text_limits.h"

enum {
    CLIENTS = 8,
    MEMBERS_PER_CLIENT = 4,
    ROUNDS = 15,     /* per member: a purchase and a points grant each */
    CARD_ROUNDS = 2, /* rounds 0 and ROUNDS / 2 also sell the member a card (cash) */
    KILLS = 3,
    SINGLE_COMMANDS = CLIENTS * MEMBERS_PER_CLIENT * (1 + 2 * ROUNDS + CARD_ROUNDS),
    BATCH_MEMBERS = 91,
    BATCH_PURCHASES = 99, /* per batch member, after its top-up */
    BATCH_MEMBERS_PER_REQUEST = 5,
    BATCH_COMMANDS = BATCH_MEMBERS * (1 + BATCH_PURCHASES),
    COMMANDS = SINGLE_COMMANDS + BATCH_COMMANDS,
    /* the demo tenant earns 1 point a yuan, pending for 7 days: 11 for an
     * 11-yuan purchase, 4 for a 4.40-yuan batch purchase */
    SINGLE_EARNED = 11,
    BATCH_EARNED = 4,
    EARNINGS = CLIENTS * MEMBERS_PER_CLIENT * ROUNDS + BATCH_MEMBERS * BATCH_PURCHASES,
};

struct client {
    char members[MEMBERS_PER_CLIENT][64];
    int unexpected; /* answers other than 201 and 202 */
};

static atomic_int sent;
static char card_product[64];

/* POST with an Idempotency-Key and a short wait, so a dead ledger costs a
 * client one second (202) rather than two. */
static void send_one(struct client *c, const char *member_id, const char *tail, const char *body,
                     int n)
{
    char path[160], idem[160];
    snprintf(path, sizeof(path), "/v1/members/%s%s", member_id, tail);
    snprintf(idem, sizeof(idem), "Idempotency-Key: crash-%s-%d", member_id, n);
    const char *headers[] = {"Prefer: wait=1", idem, NULL};
    struct api_response r = api_call("POST", path, body, NULL, headers);
    if (r.status != 201 && r.status != 202) {
        fprintf(stderr, "unexpected %ld on %s: %s\n", r.status, path, r.raw ? r.raw : "");
        c->unexpected++;
    }
    api_response_free(&r);
    atomic_fetch_add(&sent, 1);
}

/* Each member: a 1 000 yuan top-up (+100 bonus), then rounds of an 11
 * yuan stored-value purchase (10 principal + 1 bonus, exactly, at this
 * 10:1 ratio) and a grant of 10 points. One member's commands go in
 * order, so the end state is known whatever the verdicts said. */
static void *client_main(void *arg)
{
    struct client *c = arg;
    for (int m = 0; m < MEMBERS_PER_CLIENT; m++)
        send_one(c, c->members[m], "/topups",
                 "{\"amount\":100000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", 0);
    char sale[160];
    snprintf(sale, sizeof(sale),
             "{\"product_id\":\"%s\",\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}",
             card_product);
    for (int round = 0; round < ROUNDS; round++)
        for (int m = 0; m < MEMBERS_PER_CLIENT; m++) {
            if (round == 0 || round == ROUNDS / 2)
                send_one(c, c->members[m], "/cards", sale, 100 + round);
            send_one(c, c->members[m], "/purchases",
                     "{\"amount\":1100,\"branch_id\":\"branch-1\",\"payment\":{\"method\":"
                     "\"stored_value\"}}",
                     1 + 2 * round);
            send_one(c, c->members[m], "/points-adjustments",
                     "{\"points\":10,\"reason\":\"crash test\"}", 2 + 2 * round);
        }
    return NULL;
}

/* The batch client: each member a top-up, then 99 stored-value purchases
 * of 4.40 yuan (4 principal + 0.40 bonus, exactly, at the 10:1 ratio; 435.60
 * yuan in all, under the first tier), five members to a request, all lines
 * of a member in order. */
static char batch_members[BATCH_MEMBERS][64];
static int batch_unexpected;

static void *batch_client_main(void *arg)
{
    size_t cap = 1 << 20;
    char *body = malloc(cap);
    for (int first = 0; first < BATCH_MEMBERS; first += BATCH_MEMBERS_PER_REQUEST) {
        size_t len = 0;
        int lines = 0;
        for (int m = first; m < first + BATCH_MEMBERS_PER_REQUEST && m < BATCH_MEMBERS; m++)
            for (int n = 0; n <= BATCH_PURCHASES; n++, lines++)
                len += (size_t)snprintf(
                    body + len, cap - len,
                    n == 0 ? "{\"type\":\"topup\",\"member_id\":\"%s\",\"idempotency_key\":"
                             "\"crash-b-%s-%d\",\"amount\":100000,\"branch_id\":\"hq\","
                             "\"payment_method\":\"cash\"}\n"
                           : "{\"type\":\"purchase\",\"member_id\":\"%s\",\"idempotency_key\":"
                             "\"crash-b-%s-%d\",\"amount\":440,\"branch_id\":\"branch-1\","
                             "\"payment\":{\"method\":\"stored_value\"}}\n",
                    batch_members[m], batch_members[m], n);
        const char *headers[] = {"Content-Type: application/x-ndjson", "Prefer: wait=1", NULL};
        struct api_response r = api_call("POST", "/v1/events:batch", body, NULL, headers);
        if (r.status != 200) {
            fprintf(stderr, "unexpected %ld on a batch: %s\n", r.status, r.raw ? r.raw : "");
            batch_unexpected++;
        } else {
            json_t *results = json_object_get(r.body, "results");
            for (size_t i = 0; i < json_array_size(results); i++) {
                json_int_t st =
                    json_integer_value(json_object_get(json_array_get(results, i), "status"));
                if (st != 201 && st != 202)
                    batch_unexpected++;
            }
        }
        api_response_free(&r);
        atomic_fetch_add(&sent, lines);
    }
    free(body);
    return NULL;
}

/* ------------------------------------------------ the odd commands */
#define CJK           "\xe7\xa7\xaf" /* 积: 3 bytes of UTF-8 */
#define FULL_HEADROOM 1000

static struct {
    char member[64];         /* demo: the long reasons */
    struct full_tenant full; /* near the most a tenant's total holds */
    char full_member[64];
    char reason[3 * 300 + 1]; /* 200 characters, then 300 for the injected one */
    char injected_event[UUID_STR_SIZE];
    char injected_command[UUID_STR_SIZE];
} odd;

static void cjk_reason(int chars)
{
    for (int i = 0; i < chars; i++)
        memcpy(odd.reason + 3 * i, CJK, 3);
    odd.reason[3 * chars] = '\0';
}

/* An AdjustPoints whose reason is longer than the ledger takes, produced
 * to ledger-commands directly (ingest would refuse it with a 422). */
static void inject_long_reason(void)
{
    cjk_reason(300);
    assert_true(strlen(odd.reason) > TEXT_REASON_BYTES_MAX);
    struct event_meta meta = {.tenant_id = "demo",
                              .branch_id = "hq",
                              .member_id = odd.member,
                              .actor_kind = "test",
                              .actor_id = "crash-audit"};
    Envelope env;
    Actor actor;
    AdjustPoints a = TESSERA__LEDGER__V1__ADJUST_POINTS__INIT;
    envelope_init(&env, &actor, &meta);
    uuid7_generate(odd.injected_command);
    snprintf(odd.injected_event, sizeof(odd.injected_event), "%s", meta.event_id);
    a.command_id = odd.injected_command;
    a.points = 10;
    a.reason = odd.reason;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS;
    env.adjust_points = &a;
    size_t len = 0;
    uint8_t *payload = envelope_encode(&env, &len);
    assert_non_null(payload);
    assert_int_equal(topic_produce(TOPIC_LEDGER_COMMANDS, RD_KAFKA_PARTITION_UA, odd.member,
                                   strlen(odd.member), payload, len,
                                   envelope_cloudevents_headers(&env, "/tessera/test")),
                     0);
    free(payload);
}

/* Sent in the middle of the load, like any client's commands. */
static void send_odd_commands(void)
{
    char path[160], body[1200];
    const char *headers[] = {"Prefer: wait=1", NULL};
    cjk_reason(200);
    snprintf(path, sizeof(path), "/v1/members/%s/points-adjustments", odd.member);
    snprintf(body, sizeof(body), "{\"points\":10,\"reason\":\"%s\"}", odd.reason);
    struct api_response r = api_call("POST", path, body, NULL, headers);
    assert_true(r.status == 201 || r.status == 202);
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s/topups", odd.full_member);
    snprintf(body, sizeof(body), "{\"amount\":%d,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
             FULL_HEADROOM + 1);
    r = api_call("POST", path, body, odd.full.key, headers);
    assert_true(r.status == 409 || r.status == 202);
    api_response_free(&r);
    inject_long_reason();
}

static bool odd_settled(void *arg)
{
    PGconn *pg = arg;
    const char *p[] = {odd.member, odd.full_member};
    return test_pg_int(pg, "SELECT count(*) FROM ledger.commands WHERE member_id = $1", 1, p) ==
               1 &&
           test_pg_int(pg, "SELECT count(*) FROM ledger.commands WHERE member_id = $1", 1, p + 1) ==
               1;
}

static void on_dead_letter(void *ctx, const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(h, "ce_id", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        n == strlen(odd.injected_event) && memcmp(v, odd.injected_event, n) == 0)
        (*(int *)ctx)++;
}

/* The long reason applied whole, the longer one dead-lettered and never
 * applied, the overflow refused with its code. */
static void expect_odd_commands(PGconn *pg)
{
    assert_true(poll_until(odd_settled, pg, 60000));
    char account[96], stored[1100];
    cjk_reason(200);
    snprintf(account, sizeof(account), "member:%s", odd.member);
    snprintf(stored, sizeof(stored), "points_adjustment:%s", odd.reason);
    const char *p[] = {account, stored};
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.journal WHERE account = $1 AND reason = $2", 2,
                    p),
        1);
    const char *q[] = {odd.injected_command, odd.full_member};
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.commands WHERE command_id = $1", 1, q), 0);
    int seen = 0;
    assert_true(topic_read_all(TOPIC_DEAD_LETTER, on_dead_letter, &seen) >= 0);
    assert_true(seen >= 1); /* at least once: a kill may send it twice */
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.commands WHERE member_id = $1 AND "
                                 "status = 'rejected' AND code = 'prepaid_overflow'",
                                 1, q + 1),
                     1);
}

static void expect_batch_member(PGconn *pg, const char *member_id)
{
    const char *p[1] = {member_id};
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.commands WHERE member_id = $1", 1, p),
        1 + BATCH_PURCHASES + BATCH_PURCHASES);
    assert_int_equal(
        test_pg_int(pg, "SELECT sv_principal FROM ledger.balances WHERE member_id = $1", 1, p),
        100000 - 400 * BATCH_PURCHASES);
    assert_int_equal(
        test_pg_int(pg, "SELECT sv_bonus FROM ledger.balances WHERE member_id = $1", 1, p),
        10000 - 40 * BATCH_PURCHASES);
    assert_int_equal(
        test_pg_int(pg, "SELECT points_pending FROM ledger.balances WHERE member_id = $1", 1, p),
        BATCH_EARNED * BATCH_PURCHASES);
}

static bool sent_reached(void *arg)
{
    return atomic_load(&sent) >= *(int *)arg;
}

struct verdict_count {
    PGconn *pg;
    char members[(CLIENTS * MEMBERS_PER_CLIENT + BATCH_MEMBERS) * 40 + 8]; /* a text[] */
};

static bool all_applied(void *arg)
{
    struct verdict_count *v = arg;
    const char *p[1] = {v->members};
    return test_pg_int(v->pg,
                       "SELECT count(*) FROM ledger.commands WHERE member_id = ANY($1::text[])", 1,
                       p) >= COMMANDS + EARNINGS;
}

static void expect_member(PGconn *pg, const char *member_id)
{
    const char *p[1] = {member_id};
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.commands WHERE member_id = $1", 1, p),
        1 + 2 * ROUNDS + ROUNDS + CARD_ROUNDS);
    /* Each sale's card (its id is the command id) is the member's own. */
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.commands c JOIN ledger.cards k "
                                 "ON k.tenant_id = c.tenant_id AND k.card_id = c.command_id "
                                 "WHERE c.member_id = $1 AND k.member_id = $1 "
                                 "AND k.product_id = $2 AND k.uses_left = 10",
                                 2, (const char *const[]){member_id, card_product}),
                     CARD_ROUNDS);
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.cards WHERE member_id = $1", 1, p),
        CARD_ROUNDS);
    assert_int_equal(
        test_pg_int(pg, "SELECT sv_principal FROM ledger.balances WHERE member_id = $1", 1, p),
        100000 - 1000 * ROUNDS);
    assert_int_equal(
        test_pg_int(pg, "SELECT sv_bonus FROM ledger.balances WHERE member_id = $1", 1, p),
        10000 - 100 * ROUNDS);
    assert_int_equal(
        test_pg_int(pg, "SELECT points FROM ledger.balances WHERE member_id = $1", 1, p),
        10 * ROUNDS);
    assert_int_equal(
        test_pg_int(pg, "SELECT points_pending FROM ledger.balances WHERE member_id = $1", 1, p),
        SINGLE_EARNED * ROUNDS);
}

/* The full tenant's seeded total taken back once, here or in the teardown
 * of a failed run: left behind, it fails the audit of every later test. */
static bool full_seeded;

static int unseed_full_tenant(void **state)
{
    if (full_seeded)
        full_tenant_unseed(&odd.full);
    full_seeded = false;
    return 0;
}

static void test_sigkill_under_load_then_audit(void **state)
{
    static struct client clients[CLIENTS];
    pthread_t threads[CLIENTS], batch_thread;
    for (int i = 0; i < CLIENTS; i++)
        for (int m = 0; m < MEMBERS_PER_CLIENT; m++)
            test_register_member(clients[i].members[m]);
    for (int m = 0; m < BATCH_MEMBERS; m++)
        test_register_member(batch_members[m]);
    test_register_member(odd.member);
    full_tenant_make(&odd.full, FULL_HEADROOM);
    full_seeded = true;
    full_tenant_member(&odd.full, odd.full_member);
    srand((unsigned)time(NULL));
    snprintf(card_product, sizeof(card_product), "crash-10-classes-%ld", (long)time(NULL));
    char product[256];
    snprintf(product, sizeof(product),
             "{\"product_id\":\"%s\",\"kind\":\"count\",\"name\":\"10 classes\","
             "\"price\":5000,\"uses\":10,\"validity_days\":90}",
             card_product);
    struct api_response r = api_post("/v1/products", product, NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    /* The second instance runs two pipelines (workers) of its own: three
     * members of the group, one process SIGKILLed, the other stopped. */
    setenv("TESSERA_LEDGER_WORKERS", "2", 1);
    assert_int_equal(runtime_do("start-instance ledger 2"), 0);
    unsetenv("TESSERA_LEDGER_WORKERS");
    for (int i = 0; i < CLIENTS; i++)
        pthread_create(&threads[i], NULL, client_main, &clients[i]);
    pthread_create(&batch_thread, NULL, batch_client_main, NULL);
    /* Kill at random points of the load, each after more commands went out. */
    for (int k = 0; k < KILLS; k++) {
        int at = COMMANDS * (k + 1) / (KILLS + 2) + rand() % (COMMANDS / (KILLS + 2) / 2 + 1);
        assert_true(poll_until(sent_reached, &at, 120000));
        if (k == 0)
            send_odd_commands();
        assert_int_equal(runtime_do("kill-service ledger"), 0);
        /* launched, not started: ready means caught up, a moving target
         * while the clients keep sending (they retry what is not
         * accepted). */
        assert_int_equal(runtime_do("launch-service ledger"), 0);
        if (k == 1) /* the second instance leaves mid-load; the first takes over */
            assert_int_equal(runtime_do("stop-instance ledger 2"), 0);
    }
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(threads[i], NULL);
    pthread_join(batch_thread, NULL);

    PGconn *pg = test_pg();
    static struct verdict_count v;
    v.pg = pg;
    size_t len = 0;
    for (int i = 0; i < CLIENTS; i++)
        for (int m = 0; m < MEMBERS_PER_CLIENT; m++)
            len += (size_t)snprintf(v.members + len, sizeof(v.members) - len, "%s%s",
                                    len ? "," : "{", clients[i].members[m]);
    for (int m = 0; m < BATCH_MEMBERS; m++)
        len += (size_t)snprintf(v.members + len, sizeof(v.members) - len, ",%s", batch_members[m]);
    snprintf(v.members + len, sizeof(v.members) - len, "}");
    assert_true(poll_until(all_applied, &v, 120000));
    for (int i = 0; i < CLIENTS; i++) {
        assert_int_equal(clients[i].unexpected, 0);
        for (int m = 0; m < MEMBERS_PER_CLIENT; m++)
            expect_member(pg, clients[i].members[m]);
    }
    assert_int_equal(batch_unexpected, 0);
    for (int m = 0; m < BATCH_MEMBERS; m++)
        expect_batch_member(pg, batch_members[m]);
    expect_odd_commands(pg);
    PQfinish(pg);
    unseed_full_tenant(NULL);
    assert_int_equal(runtime_do("audit"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sigkill_under_load_then_audit, unseed_full_tenant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
