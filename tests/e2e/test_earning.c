/* Points earned for purchases, end to end: a purchase of the demo tenant
 * makes the campaign service send exactly one EarnPoints command on
 * ledger-commands (read from the topic itself), named after the purchase,
 * keyed and addressed like it, caused by its fact and carrying its trace;
 * a redelivered fact or command earns nothing more; PUT
 * /v1/config/earning-rules changes the points of the next purchase, is
 * audited, refuses bad bodies with 422 and changes nothing then; a change
 * applies only to purchases recorded after it, even when an older
 * purchase's fact reaches the campaign later; the tier multiplier on the fact is honoured; another
 * tenant's rules are its own.
 *
 * Until the ledger applies EarnPoints it dead-letters them, so nothing
 * here looks at balances: only at what the campaign emitted and stored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"
#include "../support/facts.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "events/campaign_types.h"
#include "events/codec.h"
#include "trace/trace.h"

#define DEADLINE_MS   20000
#define PURCHASE_TYPE "tessera.ledger.v1.PurchaseRecorded"

/* ------------------------------------------------------------ helpers */
static void expect_status(struct api_response *r, long status)
{
    if (r->status != status)
        fprintf(stderr, "test: expected %ld, got %ld: %s\n", status, r->status, r->raw);
    assert_int_equal(r->status, status);
}

/* PUTs the demo tenant's rules (or key's tenant's) and expects status;
 * the change id goes to change_id when not NULL. */
static void put_rules(const char *body, const char *key, long status, char change_id[64])
{
    const char *headers[] = {"Prefer: wait=10", NULL};
    struct api_response r = api_call("PUT", "/v1/config/earning-rules", body, key, headers);
    expect_status(&r, status);
    if (status == 200 || status == 202) {
        assert_string_equal(json_str_at(r.body, "status"), status == 200 ? "applied" : "accepted");
        if (change_id)
            snprintf(change_id, 64, "%s", json_str_at(r.body, "change_id"));
    }
    api_response_free(&r);
}

/* A cash purchase of amount at hq; extra is more of the body (",\"items\":[...]")
 * and traceparent an optional header. Writes the operation id. */
static void purchase(const char *member, int64_t amount, const char *extra, const char *traceparent,
                     char op[64])
{
    char path[160], body[1024], trace_header[128];
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", member);
    snprintf(body, sizeof(body),
             "{\"amount\":%lld,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}%s}",
             (long long)amount, extra ? extra : "");
    snprintf(trace_header, sizeof(trace_header), "traceparent: %s", traceparent ? traceparent : "");
    const char *headers[] = {traceparent ? trace_header : NULL, NULL};
    struct api_response r = api_call("POST", path, body, NULL, headers);
    expect_status(&r, 201);
    snprintf(op, 64, "%s", json_str_at(r.body, "operation_id"));
    api_response_free(&r);
}

struct row_wait {
    PGconn *pg;
    const char *sql;
    const char *params[3];
    int nparams;
    int64_t at_least;
};

static bool row_count_reached(void *arg)
{
    struct row_wait *w = arg;
    return test_pg_int(w->pg, w->sql, w->nparams, w->params) >= w->at_least;
}

/* The points the campaign recorded for the purchase op (waits for it). */
static int64_t earned_points(PGconn *pg, const char *op)
{
    struct row_wait w = {pg,
                         "SELECT count(*) FROM campaign.earnings WHERE tenant_id = 'demo' AND "
                         "purchase_command_id = $1",
                         {op},
                         1,
                         1};
    if (!poll_until(row_count_reached, &w, DEADLINE_MS))
        fail_msg("the campaign recorded no earning for purchase %s", op);
    char command_id[80];
    snprintf(command_id, sizeof(command_id), "earn:%s", op);
    const char *p[2] = {op, command_id};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM campaign.earnings WHERE tenant_id = 'demo' "
                                 "AND purchase_command_id = $1 AND command_id = $2",
                                 2, p),
                     1);
    return test_pg_int(pg,
                       "SELECT points FROM campaign.earnings WHERE tenant_id = 'demo' AND "
                       "purchase_command_id = $1",
                       1, p);
}

static int64_t tally(PGconn *pg, const char *type)
{
    const char *p[1] = {type};
    return test_pg_int(pg,
                       "SELECT coalesce(sum(events), 0) FROM campaign.event_tally WHERE "
                       "tenant_id = 'demo' AND event_type = $1",
                       1, p);
}

/* Waits until the campaign committed `more` further facts of type (its
 * tally moves in the same transaction as earnings and the outbox), then
 * until its outbox is empty: whatever those facts made it send is on
 * Kafka by then. */
static void wait_campaign_consumed(PGconn *pg, const char *type, int64_t before, int64_t more)
{
    struct row_wait w = {pg,
                         "SELECT coalesce(sum(events), 0) FROM campaign.event_tally WHERE "
                         "tenant_id = 'demo' AND event_type = $1",
                         {type},
                         1,
                         before + more};
    if (!poll_until(row_count_reached, &w, DEADLINE_MS))
        fail_msg("the campaign did not consume %lld more %s", (long long)more, type);
    struct row_wait empty = {pg, "SELECT (count(*) = 0)::int FROM campaign.outbox", {NULL}, 0, 1};
    if (!poll_until(row_count_reached, &empty, DEADLINE_MS))
        fail_msg("the campaign's outbox was not relayed");
}

/* Earn commands for one purchase, as read from ledger-commands. */
struct earn_seen {
    char command_id[80];
    int count;
    int64_t points;
    char tenant[64], member[64], branch[64], key[64];
    char causation[64], correlation[64], traceparent[TRACEPARENT_SIZE];
    char purchase_command_id[64], rule[32], actor[32];
};

static void on_command(void *ctx, const rd_kafka_message_t *m)
{
    struct earn_seen *s = ctx;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    if (!env)
        return;
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARN_POINTS &&
        strcmp(env->earn_points->command_id, s->command_id) == 0) {
        s->count++;
        s->points = env->earn_points->points;
        snprintf(s->tenant, sizeof(s->tenant), "%s", env->tenant_id);
        snprintf(s->member, sizeof(s->member), "%s", env->member_id);
        snprintf(s->branch, sizeof(s->branch), "%s", env->branch_id);
        snprintf(s->key, sizeof(s->key), "%.*s", (int)m->key_len, (const char *)m->key);
        snprintf(s->causation, sizeof(s->causation), "%s", env->causation_id);
        snprintf(s->correlation, sizeof(s->correlation), "%s", env->correlation_id);
        snprintf(s->traceparent, sizeof(s->traceparent), "%s", env->traceparent);
        snprintf(s->purchase_command_id, sizeof(s->purchase_command_id), "%s",
                 env->earn_points->purchase_command_id);
        snprintf(s->rule, sizeof(s->rule), "%s", env->earn_points->rule);
        snprintf(s->actor, sizeof(s->actor), "%s", env->actor ? env->actor->id : "");
    }
    envelope_free(env);
}

static void read_earn_commands(const char *op, struct earn_seen *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->command_id, sizeof(s->command_id), "earn:%s", op);
    assert_true(topic_read_all(TOPIC_LEDGER_COMMANDS, on_command, s) >= 0);
}

static bool earn_command_on_topic(void *arg)
{
    struct earn_seen *s = arg;
    char op[64];
    snprintf(op, sizeof(op), "%s", s->command_id + strlen("earn:"));
    read_earn_commands(op, s);
    return s->count > 0;
}

/* A message of a topic kept whole, to be put back as a redelivery. */
struct kept_message {
    const char *want_type;
    const char *command_id;
    bool found;
    int32_t partition;
    char key[64];
    uint8_t *payload;
    size_t len;
    rd_kafka_headers_t *headers;
    char event_id[64], correlation[64], traceparent[TRACEPARENT_SIZE];
};

static void on_keep(void *ctx, const rd_kafka_message_t *m)
{
    struct kept_message *k = ctx;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    if (!env)
        return;
    const char *id = NULL;
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED)
        id = env->purchase_recorded->command_id;
    else if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_RECORD_PURCHASE)
        id = env->record_purchase->command_id;
    if (!k->found && id && strcmp(env->type, k->want_type) == 0 && strcmp(id, k->command_id) == 0) {
        k->found = true;
        k->partition = m->partition;
        snprintf(k->key, sizeof(k->key), "%.*s", (int)m->key_len, (const char *)m->key);
        k->payload = malloc(m->len);
        memcpy(k->payload, m->payload, m->len);
        k->len = m->len;
        rd_kafka_headers_t *h = NULL;
        if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
            k->headers = rd_kafka_headers_copy(h);
        snprintf(k->event_id, sizeof(k->event_id), "%s", env->event_id);
        snprintf(k->correlation, sizeof(k->correlation), "%s", env->correlation_id);
        snprintf(k->traceparent, sizeof(k->traceparent), "%s", env->traceparent);
    }
    envelope_free(env);
}

static void keep_message(const char *topic, const char *type, const char *op,
                         struct kept_message *k)
{
    *k = (struct kept_message){.want_type = type, .command_id = op};
    assert_true(topic_read_all(topic, on_keep, k) >= 0);
    if (!k->found)
        fail_msg("no %s for %s on %s", type, op, topic);
}

/* Puts the kept message back on its topic and partition (what a relay
 * sending an outbox row twice does), then frees it. */
static void redeliver(const char *topic, struct kept_message *k)
{
    assert_int_equal(
        topic_produce(topic, k->partition, k->key, strlen(k->key), k->payload, k->len, k->headers),
        0);
    k->headers = NULL;
    free(k->payload);
    k->payload = NULL;
}

/* ------------------------------------------------------------ tests */
/* 123.45 yuan under 1 point per yuan: one EarnPoints of 123, however
 * often the purchase's fact or command is delivered. */
static void test_purchase_earns_once(void **state)
{
    PGconn *pg = test_pg();
    /* no PUT: the demo tenant's seeded rule (or the last test's restore) */
    char member[64], op[64], traceparent[TRACEPARENT_SIZE], trace_id[TRACE_ID_SIZE];
    test_register_member(member);
    trace_continue(NULL, traceparent);
    assert_true(trace_parse(traceparent, trace_id));
    purchase(member, 12345, NULL, traceparent, op);
    assert_int_equal(earned_points(pg, op), 123);

    struct earn_seen s = {0};
    snprintf(s.command_id, sizeof(s.command_id), "earn:%s", op);
    if (!poll_until(earn_command_on_topic, &s, DEADLINE_MS))
        fail_msg("no EarnPoints for %s on ledger-commands", op);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.points, 123);
    assert_string_equal(s.tenant, "demo");
    assert_string_equal(s.member, member);
    assert_string_equal(s.key, member);
    assert_string_equal(s.branch, "hq");
    assert_string_equal(s.purchase_command_id, op);
    assert_string_equal(s.rule, "purchase");
    assert_string_equal(s.actor, "campaign");

    /* caused by the purchase's fact, in its correlation and trace */
    struct kept_message fact, command;
    keep_message(TOPIC_LEDGER_EVENTS, PURCHASE_TYPE, op, &fact);
    assert_string_equal(s.causation, fact.event_id);
    assert_string_equal(s.correlation, fact.correlation);
    assert_true(fact.correlation[0] != '\0');
    assert_string_equal(s.traceparent, fact.traceparent);
    char earn_trace[TRACE_ID_SIZE];
    trace_id_of(s.traceparent, earn_trace);
    assert_string_equal(earn_trace, trace_id);

    /* the fact relayed twice, the command sent twice (the ledger answers
     * the second with a duplicate verdict and no new fact) */
    keep_message(TOPIC_LEDGER_COMMANDS, "tessera.ledger.v1.RecordPurchase", op, &command);
    int64_t purchases_before = tally(pg, PURCHASE_TYPE);
    int64_t verdicts_before = tally(pg, "tessera.ledger.v1.LedgerPosted");
    redeliver(TOPIC_LEDGER_EVENTS, &fact);
    redeliver(TOPIC_LEDGER_COMMANDS, &command);
    wait_campaign_consumed(pg, "tessera.ledger.v1.LedgerPosted", verdicts_before, 1);
    wait_campaign_consumed(pg, PURCHASE_TYPE, purchases_before, 1);
    read_earn_commands(op, &s);
    assert_int_equal(s.count, 1);
    const char *p[1] = {op};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM campaign.earnings WHERE "
                                 "purchase_command_id = $1",
                                 1, p),
                     1);
    PQfinish(pg);
}

/* Each PUT changes what the next purchase earns, and is audited. */
static void test_rule_change_applies_to_next_purchase(void **state)
{
    PGconn *pg = test_pg();
    char member[64], op[64], change[64];
    test_register_member(member);

    const char *headers[] = {"Prefer: wait=10", NULL};
    struct api_response r =
        api_call("PUT", "/v1/config/earning-rules",
                 "{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":2}}", NULL, headers);
    expect_status(&r, 200);
    assert_string_equal(json_str_at(r.body, "status"), "applied");
    assert_true(json_is_true(json_object_get(json_object_get(r.body, "purchase"), "enabled")));
    assert_int_equal(json_int_at(r.body, "purchase.points_per_unit"), 2);
    assert_int_equal(json_array_size(json_object_get(json_object_get(r.body, "purchase"),
                                                     "excluded_categories")),
                     0);
    json_str_at(r.body, "effective_from");
    snprintf(change, sizeof(change), "%s", json_str_at(r.body, "change_id"));
    api_response_free(&r);
    purchase(member, 12345, NULL, NULL, op);
    assert_int_equal(earned_points(pg, op), 246);
    const char *p[2] = {change, op};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.audit_log WHERE tenant_id = 'demo' "
                                 "AND action = 'earning_rules.put' AND target = 'demo' AND "
                                 "after->>'change_id' = $1 AND "
                                 "(after->'purchase'->>'points_per_unit')::int = 2 AND "
                                 "(after->'request'->'purchase'->>'unit_amount')::int = 100",
                                 1, p),
                     1);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM campaign.earnings WHERE "
                                 "rule_change_id = $1 AND purchase_command_id = $2",
                                 2, p),
                     1);

    /* 3 points per 10 yuan, gift cards excluded: 150 of 200 yuan earn */
    put_rules("{\"purchase\":{\"unit_amount\":1000,\"points_per_unit\":3,"
              "\"excluded_categories\":[\"gift\"]}}",
              NULL, 200, NULL);
    purchase(member, 20000,
             ",\"items\":[{\"sku\":\"g-50\",\"category\":\"gift\",\"quantity\":1,"
             "\"unit_price\":5000},{\"sku\":\"c-1\",\"category\":\"course\",\"quantity\":1,"
             "\"unit_price\":15000}]",
             NULL, op);
    assert_int_equal(earned_points(pg, op), 45);

    /* disabled: the purchase is consumed and earns nothing */
    put_rules("{\"purchase\":{\"enabled\":false,\"unit_amount\":100,\"points_per_unit\":1}}", NULL,
              200, NULL);
    int64_t before = tally(pg, PURCHASE_TYPE);
    purchase(member, 12345, NULL, NULL, op);
    wait_campaign_consumed(pg, PURCHASE_TYPE, before, 1);
    const char *q[1] = {op};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM campaign.earnings WHERE "
                                 "purchase_command_id = $1",
                                 1, q),
                     0);
    struct earn_seen s;
    read_earn_commands(op, &s);
    assert_int_equal(s.count, 0);

    put_rules("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1}}", NULL, 200, NULL);
    purchase(member, 12345, NULL, NULL, op);
    assert_int_equal(earned_points(pg, op), 123);
    PQfinish(pg);
}

static void expect_invalid(const char *body, const char *field)
{
    struct api_response r = api_call("PUT", "/v1/config/earning-rules", body, NULL, NULL);
    expect_status(&r, 422);
    assert_string_equal(r.content_type, "application/problem+json");
    assert_string_equal(json_str_at(r.body, "code"), "validation_failed");
    bool named = false;
    json_t *errors = json_object_get(r.body, "errors");
    for (size_t i = 0; i < json_array_size(errors); i++)
        named =
            named || strcmp(json_string_value(json_object_get(json_array_get(errors, i), "field")),
                            field) == 0;
    if (!named)
        fail_msg("422 for %s does not name %s: %s", body, field, r.raw);
    api_response_free(&r);
}

/* Bad bodies: 422 naming the field, 400, 403; no audit row, no version,
 * and the next purchase earns under the rule in force before. */
static void test_bad_rules_are_refused_and_change_nothing(void **state)
{
    PGconn *pg = test_pg();
    put_rules("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1}}", NULL, 200, NULL);
    const char *audit_sql = "SELECT count(*) FROM ingest.audit_log WHERE tenant_id = 'demo' AND "
                            "action = 'earning_rules.put'";
    const char *versions_sql =
        "SELECT count(*) FROM campaign.earning_rules WHERE tenant_id = 'demo'";
    int64_t audits = test_pg_int(pg, audit_sql, 0, NULL);
    int64_t versions = test_pg_int(pg, versions_sql, 0, NULL);

    expect_invalid("{}", "purchase");
    expect_invalid("{\"purchase\":null}", "purchase");
    expect_invalid("{\"purchase\":[1]}", "purchase");
    expect_invalid("{\"purchase\":{\"points_per_unit\":1}}", "purchase.unit_amount");
    expect_invalid("{\"purchase\":{\"unit_amount\":0,\"points_per_unit\":1}}",
                   "purchase.unit_amount");
    expect_invalid("{\"purchase\":{\"unit_amount\":100000001,\"points_per_unit\":1}}",
                   "purchase.unit_amount");
    expect_invalid("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":-1}}",
                   "purchase.points_per_unit");
    expect_invalid("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1000001}}",
                   "purchase.points_per_unit");
    expect_invalid("{\"purchase\":{\"unit_amount\":\"100\",\"points_per_unit\":1}}",
                   "purchase.unit_amount");
    expect_invalid("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1,\"enabled\":\"yes\"}}",
                   "purchase.enabled");
    expect_invalid("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1,"
                   "\"excluded_categories\":[\"gift\",\"gift\"]}}",
                   "purchase.excluded_categories");
    expect_invalid("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1,"
                   "\"excluded_categories\":[\"\"]}}",
                   "purchase.excluded_categories");
    expect_invalid("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1,"
                   "\"excluded_categories\":\"gift\"}}",
                   "purchase.excluded_categories");
    expect_invalid("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1,\"colour\":1}}",
                   "purchase.colour");
    expect_invalid("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1},\"bonus\":1}",
                   "bonus");
    struct api_response r =
        api_call("PUT", "/v1/config/earning-rules", "{\"purchase\":", NULL, NULL);
    expect_status(&r, 400);
    assert_string_equal(json_str_at(r.body, "code"), "malformed_json");
    api_response_free(&r);

    /* only admins configure */
    r = api_call("POST", "/v1/api-keys",
                 "{\"name\":\"earning till\",\"scope\":\"pos\","
                 "\"branch_id\":\"hq\"}",
                 NULL, NULL);
    expect_status(&r, 201);
    char pos_key[128];
    snprintf(pos_key, sizeof(pos_key), "%s", json_str_at(r.body, "key"));
    api_response_free(&r);
    r = api_call("PUT", "/v1/config/earning-rules",
                 "{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":9}}", pos_key, NULL);
    expect_status(&r, 403);
    assert_string_equal(json_str_at(r.body, "code"), "forbidden");
    api_response_free(&r);
    r = api_call("PUT", "/v1/config/earning-rules",
                 "{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":9}}", "", NULL);
    expect_status(&r, 401);
    api_response_free(&r);

    /* The audit row and the event's outbox row are one statement: no
     * audit row, no event. */
    assert_int_equal(test_pg_int(pg, audit_sql, 0, NULL), audits);
    char member[64], op[64];
    test_register_member(member);
    purchase(member, 12345, NULL, NULL, op);
    assert_int_equal(earned_points(pg, op), 123);
    assert_int_equal(test_pg_int(pg, versions_sql, 0, NULL), versions);
    assert_int_equal(test_pg_int(pg, audit_sql, 0, NULL), audits);
    PQfinish(pg);
}

/* A purchase recorded before a change earns under the rules of its time
 * even when its fact reaches the campaign after the change: purchase A is
 * taken while the ledger is down (202), the change is made while the
 * campaign is down too (202: not stored yet), the campaign comes back and
 * stores it, then the ledger comes back and A's fact arrives: 1 point per
 * yuan. Purchase B, recorded after the change, earns 3. */
static void test_change_applies_to_purchases_recorded_after_it(void **state)
{
    PGconn *pg = test_pg();
    char member[64], path[160], op_a[64], op_b[64], change[64];
    put_rules("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1}}", NULL, 200, NULL);
    test_register_member(member);
    const char *headers[] = {"Prefer: wait=1", NULL};

    assert_int_equal(runtime_do("stop-service ledger"), 0);
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", member);
    struct api_response a = api_call(
        "POST", path, "{\"amount\":12345,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}",
        NULL, headers);
    assert_int_equal(runtime_do("stop-service campaign"), 0);
    struct api_response r =
        api_call("PUT", "/v1/config/earning-rules",
                 "{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":3}}", NULL, headers);
    assert_int_equal(runtime_do("start-service campaign"), 0);
    expect_status(&r, 202);
    assert_string_equal(json_str_at(r.body, "status"), "accepted");
    snprintf(change, sizeof(change), "%s", json_str_at(r.body, "change_id"));
    api_response_free(&r);
    struct row_wait stored = {pg,
                              "SELECT count(*) FROM campaign.earning_rules WHERE "
                              "tenant_id = 'demo' AND change_id = $1",
                              {change},
                              1,
                              1};
    bool change_stored = poll_until(row_count_reached, &stored, DEADLINE_MS);
    assert_int_equal(runtime_do("start-service ledger"), 0);
    assert_true(change_stored);
    expect_status(&a, 202);
    snprintf(op_a, sizeof(op_a), "%s", json_str_at(a.body, "operation_id"));
    api_response_free(&a);

    assert_int_equal(earned_points(pg, op_a), 123);
    purchase(member, 12345, NULL, NULL, op_b);
    assert_int_equal(earned_points(pg, op_b), 369);
    const char *p[2] = {change, op_b};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM campaign.earnings WHERE "
                                 "rule_change_id = $1 AND purchase_command_id = $2",
                                 2, p),
                     1);
    put_rules("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1}}", NULL, 200, NULL);
    PQfinish(pg);
}

/* The tier multiplier travels on the fact (PurchaseRecorded.
 * points_multiplier_bp, filled by the tier work): a fact carrying x1.5,
 * put on ledger-events as the ledger would, earns floor(123 x 1.5). */
static void test_multiplier_on_the_fact(void **state)
{
    PGconn *pg = test_pg();
    put_rules("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1}}", NULL, 200, NULL);
    char member[64], op[UUID_STR_SIZE];
    test_register_member(member);
    uuid7_generate(op);
    struct event_meta meta = {.tenant_id = "demo",
                              .branch_id = "hq",
                              .member_id = member,
                              .correlation_id = op,
                              .actor_kind = "service",
                              .actor_id = "ledger"};
    Envelope env;
    Actor actor;
    PurchaseRecorded fact;
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__purchase_recorded__init(&fact);
    fact.command_id = op;
    fact.purchase_id = op;
    fact.amount = fact.charged = 12345;
    fact.payment_method = (char *)"cash";
    fact.points_multiplier_bp = 15000;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED;
    env.purchase_recorded = &fact;
    size_t len = 0;
    uint8_t *payload = envelope_encode(&env, &len);
    assert_non_null(payload);
    assert_int_equal(topic_produce(TOPIC_LEDGER_EVENTS, RD_KAFKA_PARTITION_UA, member,
                                   strlen(member), payload, len,
                                   envelope_cloudevents_headers(&env, "/tessera/ledger")),
                     0);
    free(payload);
    assert_int_equal(earned_points(pg, op), 184);
    const char *p[1] = {op};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT multiplier_bp FROM campaign.earnings WHERE "
                                 "purchase_command_id = $1",
                                 1, p),
                     15000);
    struct earn_seen s = {0};
    snprintf(s.command_id, sizeof(s.command_id), "earn:%s", op);
    if (!poll_until(earn_command_on_topic, &s, DEADLINE_MS))
        fail_msg("no EarnPoints for %s on ledger-commands", op);
    assert_int_equal(s.points, 184);
    assert_string_equal(s.causation, env.event_id);
    PQfinish(pg);
}

static char late_change[UUID_STR_SIZE];

/* Whatever happens in the test, nothing of demo waits for the late change
 * after it (a test failing before producing it must not stall the rest). */
static int forget_late_change(void **state)
{
    if (!late_change[0])
        return 0;
    PGconn *pg = test_pg();
    const char *p[1] = {late_change};
    PQclear(PQexecParams(pg,
                         "INSERT INTO campaign.refused_rule_changes (tenant_id, change_id) "
                         "VALUES ('demo', $1) ON CONFLICT DO NOTHING",
                         1, NULL, p, NULL, NULL, 0));
    PQfinish(pg);
    return 0;
}

/* Issue 10 item 13: a purchase recorded after a rule change, whose fact
 * reaches the campaign before the change does, earns under the change
 * (before the fix: under the old rule, for good). The change is made as
 * ingest makes it (its audit row, the list the campaign reads, first)
 * but its event is produced only after the purchase's fact was consumed:
 * the purchase waits, then earns 4 points a yuan. */
static void test_late_rule_change_is_waited_for(void **state)
{
    PGconn *pg = test_pg();
    put_rules("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1}}", NULL, 200, NULL);
    char member[64], op[UUID_STR_SIZE], after[256], at[32];
    test_register_member(member);
    uuid7_generate(late_change);
    uuid7_generate(op);
    int64_t changed_at_us = event_now_us();
    event_format_time(changed_at_us, at);
    snprintf(after, sizeof(after), "{\"change_id\":\"%s\",\"effective_from\":\"%s\"}", late_change,
             at);
    const char *p[2] = {after, op};
    PGresult *res = PQexecParams(pg,
                                 "INSERT INTO ingest.audit_log (tenant_id, actor_key_id, actor_ip, "
                                 "action, target, after) VALUES ('demo', 'test', '127.0.0.1', "
                                 "'earning_rules.put', 'demo', $1::jsonb)",
                                 1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);

    assert_int_equal(fact_purchase("demo", member, op, 12345, changed_at_us + 1000000), 0);
    struct row_wait consumed = {pg,
                                "SELECT (SELECT count(*) FROM campaign.earnings WHERE "
                                "purchase_command_id = $1) + (SELECT count(*) FROM "
                                "campaign.deferred_purchases WHERE purchase_command_id = $1)",
                                {op},
                                1,
                                1};
    assert_true(poll_until(row_count_reached, &consumed, DEADLINE_MS));

    /* the change's event, late, as ingest would have sent it */
    struct event_meta meta = {.tenant_id = "demo",
                              .correlation_id = late_change,
                              .actor_kind = "api_key",
                              .actor_id = "test",
                              .occurred_at_us = changed_at_us};
    Envelope env;
    Actor actor;
    EarningRulesChanged change;
    PurchaseEarningRule rule;
    envelope_init(&env, &actor, &meta);
    tessera__campaign__v1__earning_rules_changed__init(&change);
    tessera__campaign__v1__purchase_earning_rule__init(&rule);
    rule.enabled = true;
    rule.unit_amount = 100;
    rule.points_per_unit = 4;
    change.change_id = late_change;
    change.purchase = &rule;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARNING_RULES_CHANGED;
    env.earning_rules_changed = &change;
    size_t len = 0;
    uint8_t *payload = envelope_encode(&env, &len);
    assert_non_null(payload);
    assert_int_equal(topic_produce(TOPIC_MEMBER_EVENTS, RD_KAFKA_PARTITION_UA, "demo", 4, payload,
                                   len, envelope_cloudevents_headers(&env, "/tessera/ingest")),
                     0);
    free(payload);

    assert_int_equal(earned_points(pg, op), 123 * 4);
    const char *q[2] = {op, late_change};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM campaign.earnings WHERE "
                                 "purchase_command_id = $1 AND rule_change_id = $2",
                                 2, q),
                     1);
    put_rules("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1}}", NULL, 200, NULL);
    PQfinish(pg);
}

/* Another tenant's PUT is its own: demo's next purchase earns as before. */
static void test_rules_are_per_tenant(void **state)
{
    unsigned char raw[24];
    char rival_key[80];
    randombytes_buf(raw, sizeof(raw));
    strcpy(rival_key, "tsk_");
    sodium_bin2hex(rival_key + 4, sizeof(rival_key) - 4, raw, sizeof(raw));
    PGconn *pg = test_pg();
    const char *p[1] = {rival_key};
    PQclear(PQexec(pg, "INSERT INTO ingest.tenants (tenant_id, name) VALUES "
                       "('earning-rival', 'Earning Rival') ON CONFLICT DO NOTHING"));
    PGresult *res = PQexecParams(pg,
                                 "INSERT INTO ingest.api_keys (key_hash, tenant_id, name, scope) "
                                 "VALUES (encode(sha256(convert_to($1, 'UTF8')), 'hex'), "
                                 "'earning-rival', 'rival admin', 'admin')",
                                 1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    put_rules("{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1}}", NULL, 200, NULL);
    char change[64];
    put_rules("{\"purchase\":{\"unit_amount\":1,\"points_per_unit\":50}}", rival_key, 200, change);
    const char *q[1] = {change};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM campaign.earning_rules WHERE "
                                 "tenant_id = 'earning-rival' AND change_id = $1",
                                 1, q),
                     1);
    char member[64], op[64];
    test_register_member(member);
    purchase(member, 12345, NULL, NULL, op);
    assert_int_equal(earned_points(pg, op), 123);
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_purchase_earns_once),
        cmocka_unit_test(test_rule_change_applies_to_next_purchase),
        cmocka_unit_test(test_bad_rules_are_refused_and_change_nothing),
        cmocka_unit_test(test_change_applies_to_purchases_recorded_after_it),
        cmocka_unit_test(test_multiplier_on_the_fact),
        cmocka_unit_test_teardown(test_late_rule_change_is_waited_for, forget_late_change),
        cmocka_unit_test(test_rules_are_per_tenant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
