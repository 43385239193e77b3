/* API keys, scopes, branches and the audit log over HTTP: a pos key acts
 * only for its branch, analytics:read cannot write, only admins manage
 * keys and branches, revocation and expiry hold from the next request,
 * and every admin action leaves an audit entry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/api_client.h"

static void expect_status(struct api_response r, long status, const char *code)
{
    if (r.status != status)
        fprintf(stderr, "test: expected %ld, got %ld: %s\n", status, r.status, r.raw);
    assert_int_equal(r.status, status);
    if (code) {
        assert_string_equal(r.content_type, "application/problem+json");
        assert_string_equal(json_str_at(r.body, "code"), code);
    }
    api_response_free(&r);
}

/* Makes a key with the demo admin key; writes the secret and its id. */
static void make_key(const char *body, char key[128], char key_id[64])
{
    struct api_response r = api_call("POST", "/v1/api-keys", body, NULL, NULL);
    if (r.status != 201)
        fprintf(stderr, "test: key creation answered %ld: %s\n", r.status, r.raw);
    assert_int_equal(r.status, 201);
    snprintf(key, 128, "%s", json_str_at(r.body, "key"));
    snprintf(key_id, 64, "%s", json_str_at(r.body, "key_id"));
    assert_int_equal(strncmp(key, "tsk_", 4), 0);
    api_response_free(&r);
}

static void register_body(char *out, size_t len, const char *branch)
{
    char phone[16];
    test_unique_phone(phone);
    snprintf(out, len, "{\"name\":\"Scoped\",\"phone\":\"%s\",\"branch_id\":\"%s\"}", phone,
             branch);
}

static void test_pos_key_acts_only_for_its_branch(void **state)
{
    char key[128], key_id[64], body[256], path[160], member[64];
    make_key("{\"name\":\"till 1\",\"scope\":\"pos\",\"branch_id\":\"branch-1\"}", key, key_id);
    register_body(body, sizeof(body), "branch-1");
    struct api_response r = api_call("POST", "/v1/members", body, key, NULL);
    assert_int_equal(r.status, 201);
    snprintf(member, sizeof(member), "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
    register_body(body, sizeof(body), "hq");
    expect_status(api_call("POST", "/v1/members", body, key, NULL), 403, "forbidden");

    snprintf(path, sizeof(path), "/v1/members/%s/topups", member);
    expect_status(api_call("POST", path,
                           "{\"amount\":1000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
                           key, NULL),
                  403, "forbidden");
    expect_status(api_call("POST", path,
                           "{\"amount\":1000,\"branch_id\":\"branch-1\",\"payment_method\":"
                           "\"cash\"}",
                           key, NULL),
                  201, NULL);
    /* a pos key manages nothing */
    expect_status(
        api_call("POST", "/v1/api-keys", "{\"name\":\"x\",\"scope\":\"admin\"}", key, NULL), 403,
        "forbidden");
    expect_status(api_call("GET", "/v1/api-keys", NULL, key, NULL), 403, "forbidden");
    expect_status(
        api_call("POST", "/v1/branches", "{\"branch_id\":\"b-x\",\"name\":\"X\"}", key, NULL), 403,
        "forbidden");
    expect_status(api_call("GET", "/v1/audit-log", NULL, key, NULL), 403, "forbidden");
}

static void test_analytics_key_only_reads(void **state)
{
    char key[128], key_id[64], body[256], path[160], member[64];
    make_key("{\"name\":\"bi\",\"scope\":\"analytics:read\"}", key, key_id);
    test_register_member(member);
    snprintf(path, sizeof(path), "/v1/members/%s", member);
    expect_status(api_call("GET", path, NULL, key, NULL), 200, NULL);
    register_body(body, sizeof(body), "hq");
    expect_status(api_call("POST", "/v1/members", body, key, NULL), 403, "forbidden");
    snprintf(path, sizeof(path), "/v1/members/%s/topups", member);
    expect_status(api_call("POST", path,
                           "{\"amount\":1000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
                           key, NULL),
                  403, "forbidden");
    expect_status(api_call("DELETE", "/v1/api-keys/key_0000000000000000", NULL, key, NULL), 403,
                  "forbidden");
    expect_status(api_call("GET", "/v1/audit-log", NULL, key, NULL), 403, "forbidden");
}

static int64_t key_count(void)
{
    PGconn *pg = test_pg();
    int64_t n = test_pg_int(pg, "SELECT count(*) FROM ingest.api_keys", 0, NULL);
    PQfinish(pg);
    return n;
}

static void test_key_creation_validation(void **state)
{
    int64_t before = key_count();
    expect_status(api_call("POST", "/v1/api-keys", "{\"name\":\"x\"}", NULL, NULL), 422,
                  "validation_failed");
    expect_status(
        api_call("POST", "/v1/api-keys", "{\"name\":\"x\",\"scope\":\"root\"}", NULL, NULL), 422,
        "validation_failed");
    expect_status(
        api_call("POST", "/v1/api-keys", "{\"name\":\"x\",\"scope\":\"pos\"}", NULL, NULL), 422,
        "validation_failed");
    expect_status(api_call("POST", "/v1/api-keys",
                           "{\"name\":\"x\",\"scope\":\"admin\",\"branch_id\":\"hq\"}", NULL, NULL),
                  422, "validation_failed");
    expect_status(api_call("POST", "/v1/api-keys",
                           "{\"name\":\"x\",\"scope\":\"pos\",\"branch_id\":\"nowhere\"}", NULL,
                           NULL),
                  422, "validation_failed");
    expect_status(api_call("POST", "/v1/api-keys",
                           "{\"name\":\"x\",\"scope\":\"admin\",\"expires_at\":"
                           "\"2020-01-01T00:00:00Z\"}",
                           NULL, NULL),
                  422, "validation_failed");
    expect_status(api_call("POST", "/v1/api-keys",
                           "{\"name\":\"x\",\"scope\":\"admin\",\"expires_at\":"
                           "\"2030-02-31T00:00:00Z\"}",
                           NULL, NULL),
                  422, "validation_failed");
    expect_status(api_call("POST", "/v1/api-keys", "{\"name\":", NULL, NULL), 400,
                  "malformed_json");
    expect_status(
        api_call("POST", "/v1/api-keys", "{\"name\":\"x\",\"scope\":\"admin\"}", "", NULL), 401,
        "unauthorized");
    assert_int_equal(key_count(), before); /* nothing was created */
}

/* The stored row holds the SHA-256 of the key, never the key. */
static void test_key_stored_only_as_hash(void **state)
{
    char key[128], key_id[64];
    make_key("{\"name\":\"hash check\",\"scope\":\"analytics:read\"}", key, key_id);
    PGconn *pg = test_pg();
    const char *p[2] = {key_id, key};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.api_keys WHERE key_id = $1 AND "
                                 "key_hash = encode(sha256(convert_to($2, 'UTF8')), 'hex')",
                                 2, p),
                     1);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.api_keys k WHERE "
                                 "strpos(k::text, $1) > 0",
                                 1, p + 1),
                     0);
    PQfinish(pg);
    /* the list shows it without any secret */
    struct api_response r = api_call("GET", "/v1/api-keys", NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.raw, key));
    assert_null(strstr(r.raw, "key_hash"));
    assert_non_null(strstr(r.raw, key_id));
    api_response_free(&r);
}

static void test_revocation_holds_at_once(void **state)
{
    char key[128], key_id[64], path[128];
    make_key("{\"name\":\"temp admin\",\"scope\":\"admin\"}", key, key_id);
    expect_status(api_call("GET", "/v1/api-keys", NULL, key, NULL), 200, NULL);
    snprintf(path, sizeof(path), "/v1/api-keys/%s", key_id);
    expect_status(api_call("DELETE", path, NULL, NULL, NULL), 200, NULL);
    expect_status(api_call("GET", "/v1/api-keys", NULL, key, NULL), 401, "unauthorized");
    expect_status(api_call("DELETE", path, NULL, NULL, NULL), 200, NULL); /* idempotent */
    expect_status(api_call("DELETE", "/v1/api-keys/key_ffffffffffffffff", NULL, NULL, NULL), 404,
                  "not_found");
    PGconn *pg = test_pg();
    const char *p[1] = {key_id};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.audit_log WHERE target = $1 AND "
                                 "action = 'api_key.revoke'",
                                 1, p),
                     1);
    PQfinish(pg);
}

struct expiring {
    char key[128];
};

static bool key_refused(void *arg)
{
    struct expiring *e = arg;
    struct api_response r = api_call("GET", "/v1/api-keys", NULL, e->key, NULL);
    bool refused = r.status == 401;
    api_response_free(&r);
    return refused;
}

static void test_expired_key_is_refused(void **state)
{
    struct expiring e;
    char key_id[64], body[160], at[32];
    time_t soon = time(NULL) + 3;
    struct tm tm;
    gmtime_r(&soon, &tm);
    strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, sizeof(body), "{\"name\":\"short\",\"scope\":\"admin\",\"expires_at\":\"%s\"}",
             at);
    make_key(body, e.key, key_id);
    assert_false(key_refused(&e));
    assert_true(poll_until(key_refused, &e, 10000));
    assert_true(time(NULL) >= soon - 1); /* not refused before its time */
}

static void test_branches(void **state)
{
    char branch[32], body[160], key[128], key_id[64], reg[256];
    snprintf(branch, sizeof(branch), "b-%ld", (long)time(NULL) % 1000000 * 100 + rand() % 100);
    snprintf(body, sizeof(body), "{\"branch_id\":\"%s\",\"name\":\"New Branch\"}", branch);
    expect_status(api_call("POST", "/v1/branches", body, NULL, NULL), 201, NULL);
    expect_status(api_call("POST", "/v1/branches", body, NULL, NULL), 409, "branch_exists");
    expect_status(
        api_call("POST", "/v1/branches", "{\"branch_id\":\"Bad Id!\",\"name\":\"x\"}", NULL, NULL),
        422, "validation_failed");
    snprintf(body, sizeof(body), "{\"name\":\"till\",\"scope\":\"pos\",\"branch_id\":\"%s\"}",
             branch);
    make_key(body, key, key_id);
    register_body(reg, sizeof(reg), branch);
    expect_status(api_call("POST", "/v1/members", reg, key, NULL), 201, NULL);
    PGconn *pg = test_pg();
    const char *p[1] = {branch};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.audit_log WHERE target = $1 AND "
                                 "action = 'branch.create' AND actor_ip = '127.0.0.1' AND "
                                 "after->>'name' = 'New Branch'",
                                 1, p),
                     1);
    PQfinish(pg);
}

static void test_audit_log_is_queryable_and_append_only(void **state)
{
    char key[128], key_id[64];
    make_key("{\"name\":\"audited\",\"scope\":\"analytics:read\"}", key, key_id);
    struct api_response r = api_call("GET", "/v1/audit-log?limit=1", NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    json_t *first = json_array_get(json_object_get(r.body, "entries"), 0);
    assert_string_equal(json_str_at(first, "action"), "api_key.create");
    assert_string_equal(json_str_at(first, "target"), key_id);
    assert_string_equal(json_str_at(first, "after.scope"), "analytics:read");
    assert_string_equal(json_str_at(first, "actor_ip"), "127.0.0.1");
    assert_true(strncmp(json_str_at(first, "actor_key_id"), "key_", 4) == 0);
    assert_null(strstr(r.raw, key)); /* the secret is not audited */
    char path[128];
    snprintf(path, sizeof(path), "/v1/audit-log?limit=1&cursor=%s",
             json_str_at(r.body, "next_cursor"));
    api_response_free(&r);
    r = api_call("GET", path, NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    first = json_array_get(json_object_get(r.body, "entries"), 0);
    assert_string_not_equal(json_str_at(first, "target"), key_id);
    api_response_free(&r);
    expect_status(api_call("GET", "/v1/audit-log?limit=0", NULL, NULL, NULL), 422,
                  "validation_failed");

    PGconn *pg = test_pg();
    PGresult *res = PQexec(pg, "UPDATE ingest.audit_log SET actor_ip = 'x'");
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    PQclear(res);
    res = PQexec(pg, "DELETE FROM ingest.audit_log");
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    PQclear(res);
    assert_true(test_pg_int(pg, "SELECT count(*) FROM ingest.audit_log", 0, NULL) > 0);
    PQfinish(pg);
}

/* Money moved by hand is audited with the verdict: a points adjustment
 * (admin only) and a stored-value refund, who, from where, the request and
 * the result. */
static void test_points_adjustment_and_refund_are_audited(void **state)
{
    char member[64], path[160];
    test_register_member(member);
    snprintf(path, sizeof(path), "/v1/members/%s/points-adjustments", member);
    struct api_response r = api_post(path, "{\"points\":300,\"reason\":\"goodwill\"}", NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s/topups", member);
    r = api_post(path, "{\"amount\":5000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s/refunds", member);
    r = api_post(
        path, "{\"kind\":\"stored_value\",\"reason\":\"moving away\",\"branch_id\":\"hq\"}", NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);

    PGconn *pg = test_pg();
    const char *p[1] = {member};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.audit_log WHERE target = $1 AND "
                                 "action = 'points.adjust' AND actor_ip = '127.0.0.1' AND "
                                 "after->'request'->>'reason' = 'goodwill' AND "
                                 "(after->>'status')::int = 201",
                                 1, p),
                     1);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.audit_log WHERE target = $1 AND "
                                 "action = 'refund' AND after->'request'->>'reason' = "
                                 "'moving away' AND (after->>'status')::int = 201",
                                 1, p),
                     1);
    /* the top-up is no admin action: not audited */
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ingest.audit_log WHERE target = $1", 1, p), 2);
    PQfinish(pg);
}

/* Card configuration and coupons issued by admins are audited too. */
static void test_card_admin_actions_are_audited(void **state)
{
    char member[64], path[160];
    test_register_member(member);
    struct api_response r =
        api_call("PUT", "/v1/config/card-limits", "{\"daily_uses_max\":3}", NULL, NULL);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s/coupons", member);
    r = api_post(path, "{\"kind\":\"value\",\"value\":500,\"valid_days\":7}", NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    PGconn *pg = test_pg();
    const char *p[1] = {member};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.audit_log WHERE target = $1 AND "
                                 "action = 'coupon.issue' AND (after->'request'->>'value')::int "
                                 "= 500",
                                 1, p),
                     1);
    assert_true(test_pg_int(pg,
                            "SELECT count(*) FROM ingest.audit_log WHERE target = 'demo' AND "
                            "action = 'card_limits.put' AND (after->>'status')::int = 200",
                            0, NULL) >= 1);
    PQfinish(pg);
}

/* An audited command whose verdict comes after the wait is audited as
 * pending (202) before the client hears the 202. */
static void test_audited_command_answered_202_is_audited(void **state)
{
    char member[64], path[160];
    test_register_member(member);
    snprintf(path, sizeof(path), "/v1/members/%s/points-adjustments", member);
    assert_int_equal(runtime_do("stop-service ledger"), 0);
    const char *headers[] = {"Prefer: wait=1", NULL};
    struct api_response r =
        api_call("POST", path, "{\"points\":5,\"reason\":\"late verdict\"}", NULL, headers);
    assert_int_equal(runtime_do("start-service ledger"), 0);
    assert_int_equal(r.status, 202);
    api_response_free(&r);
    PGconn *pg = test_pg();
    const char *p[1] = {member};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.audit_log WHERE target = $1 AND "
                                 "action = 'points.adjust' AND (after->>'status')::int = 202",
                                 1, p),
                     1);
    PQfinish(pg);
}

int main(void)
{
    srand((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pos_key_acts_only_for_its_branch),
        cmocka_unit_test(test_analytics_key_only_reads),
        cmocka_unit_test(test_key_creation_validation),
        cmocka_unit_test(test_key_stored_only_as_hash),
        cmocka_unit_test(test_revocation_holds_at_once),
        cmocka_unit_test(test_expired_key_is_refused),
        cmocka_unit_test(test_branches),
        cmocka_unit_test(test_audit_log_is_queryable_and_append_only),
        cmocka_unit_test(test_points_adjustment_and_refund_are_audited),
        cmocka_unit_test(test_card_admin_actions_are_audited),
        cmocka_unit_test(test_audited_command_answered_202_is_audited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
