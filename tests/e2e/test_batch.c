/* POST /v1/events:batch: a day of offline POS records in one request,
 * answered line by line, applied once even when sent twice. */
#include <pthread.h>
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
#include "../support/sql_wait.h"

#define RECORD_POLL_DEADLINE_MS 60000

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

/* A batch is checked, claimed and sent in chunks of 2 500 lines
 * (BATCH_CHUNK_LINES in services/ingest/batch.c): a key repeated in a
 * later chunk is answered from its first line and applied once, broken
 * lines in a later chunk are answered in place, and a re-sent batch is
 * replayed whole. */
static void test_batch_chunk_boundaries(void **state)
{
    enum { CHUNK = 2500, BOUNDARY_LINES = 2 * CHUNK + 10 };
    char member[64], run[48];
    test_register_member(member);
    snprintf(run, sizeof(run), "chunk-%d-%ld", (int)getpid(), (long)random());
    struct growing body = {0};
    static int want[BOUNDARY_LINES];
    int64_t expected = 0;
    for (int i = 0; i < BOUNDARY_LINES; i++) {
        int line = i + 1, key = i;
        want[i] = 201;
        if (line == CHUNK + 1)
            key = 0; /* the second chunk's first line repeats line 1 */
        else if (line == 2 * CHUNK + 1)
            key = CHUNK + 5; /* the third chunk's first line repeats line CHUNK + 6 */
        if (line == CHUNK + 2) {
            append(&body, "not json\n");
            want[i] = 400;
        } else if (line == CHUNK + 3) {
            append(&body,
                   "{\"type\":\"topup\",\"member_id\":\"01a2a2a2-0000-7000-8000-000000000000\","
                   "\"idempotency_key\":\"%s-nobody\",\"amount\":1,\"branch_id\":\"hq\","
                   "\"payment_method\":\"cash\"}\n",
                   run);
            want[i] = 404;
        } else {
            append(&body,
                   "{\"type\":\"topup\",\"member_id\":\"%s\",\"idempotency_key\":\"%s-%d\","
                   "\"amount\":%d,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}\n",
                   member, run, key, 100 + key);
            if (key == i)
                expected += 100 + key;
        }
    }
    for (int round = 0; round < 2; round++) {
        struct api_response r = post_batch(body.text);
        assert_int_equal(r.status, 200);
        json_t *results = json_object_get(r.body, "results");
        assert_int_equal(json_array_size(results), BOUNDARY_LINES);
        for (int i = 0; i < BOUNDARY_LINES; i++) {
            json_t *line = json_array_get(results, (size_t)i);
            assert_int_equal(json_integer_value(json_object_get(line, "line")), i + 1);
            assert_int_equal(json_integer_value(json_object_get(line, "status")), want[i]);
        }
        json_t *repeat = json_array_get(results, CHUNK);
        assert_int_equal(json_integer_value(json_object_get(repeat, "repeats_line")), 1);
        assert_int_equal(json_int_at(json_object_get(repeat, "result"), "amount"), 100);
        repeat = json_array_get(results, 2 * CHUNK);
        assert_int_equal(json_integer_value(json_object_get(repeat, "repeats_line")), CHUNK + 6);
        assert_int_equal(json_int_at(json_object_get(repeat, "result"), "amount"), 100 + CHUNK + 5);
        assert_int_equal(json_int_at(r.body, "summary.posted"),
                         round == 0 ? BOUNDARY_LINES - 4 : 0);
        assert_int_equal(json_int_at(r.body, "summary.replayed"),
                         round == 0 ? 2 : BOUNDARY_LINES - 2);
        assert_int_equal(json_int_at(r.body, "summary.refused"), 2);
        api_response_free(&r);
        assert_int_equal(stored_value_of(member), expected);
    }
    free(body.text);
}

struct posted_batch {
    const char *body;
    struct api_response r;
};

static void *post_batch_thread(void *arg)
{
    struct posted_batch *p = arg;
    p->r = post_batch(p->body);
    return NULL;
}

struct first_answer {
    PGconn *pg;
    const char *first_key, *like;
    int64_t applied; /* the batch's commands applied when its first answer was recorded */
};

/* In one snapshot: -1 while the first line's answer is not recorded,
 * then how many of the batch's commands the ledger has applied. */
static bool first_answer_recorded(void *arg)
{
    struct first_answer *f = arg;
    const char *p[2] = {f->first_key, f->like};
    f->applied = test_pg_int(f->pg,
                             "SELECT CASE WHEN (SELECT response_status FROM "
                             "ingest.idempotency_keys WHERE idempotency_key = $1) IS NULL THEN -1 "
                             "ELSE (SELECT count(*) FROM ledger.commands c JOIN "
                             "ingest.idempotency_keys k ON k.command_id = c.command_id WHERE "
                             "k.idempotency_key LIKE $2) END",
                             2, p);
    return f->applied >= 0;
}

/* Answers are recorded as the verdicts come, not after the last: the
 * first line's answer is under its key while the ledger has not yet
 * applied every line of the batch (recorded only at the end, it would
 * appear after all of them). */
static void test_batch_records_answers_as_they_come(void **state)
{
    enum { RECORD_LINES = 4000 };
    static char members[MEMBERS][64];
    for (int i = 0; i < MEMBERS; i++)
        test_register_member(members[i]);
    char run[48], first_key[64], like[64];
    snprintf(run, sizeof(run), "rec-%d-%ld", (int)getpid(), (long)random());
    struct growing body = {0};
    for (int i = 0; i < RECORD_LINES; i++)
        append(&body,
               "{\"type\":\"topup\",\"member_id\":\"%s\",\"idempotency_key\":\"%s-%d\","
               "\"amount\":100,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}\n",
               members[i % MEMBERS], run, i);
    snprintf(first_key, sizeof(first_key), "%s-0", run);
    snprintf(like, sizeof(like), "%s-%%", run);

    struct posted_batch posted = {.body = body.text};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, post_batch_thread, &posted), 0);
    struct first_answer f = {.pg = test_pg(), .first_key = first_key, .like = like};
    bool seen = poll_until(first_answer_recorded, &f, RECORD_POLL_DEADLINE_MS);
    pthread_join(t, NULL);
    assert_true(seen);
    assert_in_range(f.applied, 0, RECORD_LINES - 1);

    assert_int_equal(posted.r.status, 200);
    assert_int_equal(json_int_at(posted.r.body, "summary.posted"), RECORD_LINES);
    api_response_free(&posted.r);
    /* Every answer is recorded in the end (the last chunk after the reply). */
    sql_wait_for("SELECT count(*) FROM ingest.idempotency_keys WHERE idempotency_key LIKE $1 "
                 "AND response_status = 201",
                 like, NULL, RECORD_LINES, "every answer of the batch recorded");
    PQfinish(f.pg);
    free(body.text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_applies_once),
        cmocka_unit_test(test_batch_points_adjustments),
        cmocka_unit_test(test_batch_refuses_bad_bodies),
        cmocka_unit_test(test_batch_chunk_boundaries),
        cmocka_unit_test(test_batch_records_answers_as_they_come),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
