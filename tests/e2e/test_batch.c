/* POST /v1/events:batch: a day of offline POS records in one request,
 * answered line by line, applied once even when sent twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/api_client.h"

enum { MEMBERS = 40, LINES = 2000 };

struct growing {
    char *text;
    size_t len, cap;
};

static void append(struct growing *g, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(g->text + g->len, g->cap - g->len, fmt, ap);
        va_end(ap);
        if ((size_t)n < g->cap - g->len) {
            g->len += (size_t)n;
            return;
        }
        g->cap = g->cap ? g->cap * 2 : 65536;
        g->text = realloc(g->text, g->cap);
        assert_non_null(g->text);
    }
}

static struct api_response post_batch(const char *body)
{
    const char *headers[] = {"Content-Type: application/x-ndjson", NULL};
    return api_call("POST", "/v1/events:batch", body, NULL, headers);
}

static int64_t stored_value_of(const char *member_id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%.64s", member_id);
    struct api_response r = api_get(path);
    assert_int_equal(r.status, 200);
    int64_t v = json_int_at(r.body, "balances.stored_value");
    api_response_free(&r);
    return v;
}

/* Lines alternate top-ups of 100.00 and cash purchases; every 100th line
 * repeats the key of the line before it; a few lines are broken. */
static void test_batch_applies_once(void **state)
{
    static char members[MEMBERS][64];
    int64_t expected[MEMBERS] = {0};
    for (int i = 0; i < MEMBERS; i++)
        test_register_member(members[i]);
    char run[32];
    snprintf(run, sizeof(run), "%d-%ld", (int)getpid(), (long)random());

    struct growing body = {0};
    int expect_status[LINES + 3];
    for (int i = 0; i < LINES; i++) {
        int m = i % MEMBERS;
        bool repeat = i % 100 == 99;
        int key = repeat ? i - 1 : i;
        if (i % 2 == 0 || repeat) {
            /* a repeat re-sends the line before it verbatim */
            int src = repeat ? i - 1 : i;
            m = src % MEMBERS;
            if (src % 2 == 0) {
                append(&body,
                       "{\"type\":\"topup\",\"member_id\":\"%s\",\"idempotency_key\":\"%s-%d\","
                       "\"amount\":10000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}\n",
                       members[m], run, key);
                if (!repeat)
                    expected[m] += 10000;
            } else {
                append(&body,
                       "{\"type\":\"purchase\",\"member_id\":\"%s\",\"idempotency_key\":\"%s-%d\","
                       "\"amount\":2500,\"branch_id\":\"branch-1\",\"payment\":{\"method\":"
                       "\"cash\"}}\n",
                       members[m], run, key);
            }
        } else {
            append(
                &body,
                "{\"type\":\"purchase\",\"member_id\":\"%s\",\"idempotency_key\":\"%s-%d\","
                "\"amount\":2500,\"branch_id\":\"branch-1\",\"payment\":{\"method\":\"cash\"}}\n",
                members[m], run, key);
        }
        expect_status[i] = 201;
    }
    append(&body, "this is not json\n");
    expect_status[LINES] = 400;
    append(&body, "{\"type\":\"topup\",\"member_id\":\"%s\"}\n", members[0]);
    expect_status[LINES + 1] = 422;
    append(&body,
           "{\"type\":\"topup\",\"member_id\":\"01a2a2a2-0000-7000-8000-000000000000\","
           "\"idempotency_key\":\"%s-nobody\",\"amount\":1,\"branch_id\":\"hq\","
           "\"payment_method\":\"cash\"}\n",
           run);
    expect_status[LINES + 2] = 404;

    for (int round = 0; round < 2; round++) {
        struct api_response r = post_batch(body.text);
        assert_int_equal(r.status, 200);
        json_t *results = json_object_get(r.body, "results");
        assert_int_equal(json_array_size(results), LINES + 3);
        for (int i = 0; i < LINES + 3; i++) {
            json_t *line = json_array_get(results, (size_t)i);
            assert_int_equal(json_integer_value(json_object_get(line, "line")), i + 1);
            assert_int_equal(json_integer_value(json_object_get(line, "status")), expect_status[i]);
        }
        /* The second round applies nothing: every valid line is replayed. */
        int64_t replayed = json_int_at(r.body, "summary.replayed");
        int64_t posted = json_int_at(r.body, "summary.posted");
        if (round == 0) {
            assert_int_equal(posted, LINES - LINES / 100);
            assert_int_equal(replayed, LINES / 100);
        } else {
            assert_int_equal(posted, 0);
            assert_int_equal(replayed, LINES);
        }
        api_response_free(&r);
        for (int m = 0; m < MEMBERS; m++)
            assert_int_equal(stored_value_of(members[m]), expected[m]); /* below the bonus ladder */
    }
    PGconn *pg = test_pg();
    char like[64];
    snprintf(like, sizeof(like), "%s-%%", run);
    const char *p[1] = {like};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.commands c JOIN "
                                 "ingest.idempotency_keys k ON k.command_id = c.command_id "
                                 "WHERE k.idempotency_key LIKE $1",
                                 1, p),
                     LINES - LINES / 100);
    PQfinish(pg);
    free(body.text);
}

/* Admin points adjustments in bulk: grants, a deduction, and one that
 * would go negative and is refused, in order. */
static void test_batch_points_adjustments(void **state)
{
    char member[64], body[2048], path[128];
    test_register_member(member);
    size_t len = 0;
    static const int points[] = {100, 100, 100, -50, -1000};
    for (int i = 0; i < 5; i++)
        len += (size_t)snprintf(body + len, sizeof(body) - len,
                                "{\"type\":\"points_adjustment\",\"member_id\":\"%s\","
                                "\"idempotency_key\":\"pts-%s-%d\",\"points\":%d,"
                                "\"reason\":\"goodwill\"}\n",
                                member, member, i, points[i]);
    struct api_response r = post_batch(body);
    assert_int_equal(r.status, 200);
    json_t *results = json_object_get(r.body, "results");
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            json_integer_value(json_object_get(json_array_get(results, (size_t)i), "status")), 201);
    json_t *last = json_array_get(results, 4);
    assert_int_equal(json_integer_value(json_object_get(last, "status")), 409);
    assert_string_equal(json_str_at(json_object_get(last, "result"), "code"),
                        "insufficient_points");
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%.64s", member);
    r = api_get(path);
    assert_int_equal(json_int_at(r.body, "balances.points"), 250);
    api_response_free(&r);

    /* Each line is an admin action with its own audit row, written before
     * the batch is answered, the refused one included; a re-sent batch
     * adds none. */
    PGconn *pg = test_pg();
    const char *p[1] = {member};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.audit_log WHERE target = $1 AND "
                                 "action = 'points.adjust'",
                                 1, p),
                     5);
    r = post_batch(body);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.audit_log WHERE target = $1 AND "
                                 "action = 'points.adjust'",
                                 1, p),
                     5);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.audit_log WHERE target = $1 AND "
                                 "action = 'points.adjust' AND after->'request'->>'reason' = "
                                 "'goodwill' AND (after->>'status')::int IN (201, 409)",
                                 1, p),
                     5);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT sum((after->'request'->>'points')::int) FROM "
                                 "ingest.audit_log WHERE target = $1 AND action = 'points.adjust'",
                                 1, p),
                     100 + 100 + 100 - 50 - 1000);
    PQfinish(pg);
}

static void test_batch_refuses_bad_bodies(void **state)
{
    struct api_response r = api_call("POST", "/v1/events:batch", "{}", NULL, NULL);
    assert_int_equal(r.status, 415); /* api_call sends application/json for a body */
    assert_string_equal(json_str_at(r.body, "code"), "unsupported_media_type");
    api_response_free(&r);

    r = post_batch("\n\n");
    assert_int_equal(r.status, 422);
    api_response_free(&r);

    struct growing big = {0};
    for (int i = 0; i < 10001; i++)
        append(&big, "{}\n");
    r = post_batch(big.text);
    assert_int_equal(r.status, 413);
    assert_string_equal(json_str_at(r.body, "code"), "payload_too_large");
    api_response_free(&r);
    free(big.text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_applies_once),
        cmocka_unit_test(test_batch_points_adjustments),
        cmocka_unit_test(test_batch_refuses_bad_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
