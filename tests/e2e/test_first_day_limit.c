/* The first-day limit on freshly topped-up stored value, end to end: the
 * tenant sets first_day_topup_spend_max through PUT /v1/config/card-limits
 * (bounds checked), a member tops up, and stored-value purchases (single
 * and in a batch upload) and card sales spending more of today's fresh
 * value than the limit are refused 409 first_day_limit_exceeded, changing
 * nothing, while those within it are posted; value from before today is
 * spent first, and a stored-value refund lowers what is fresh.
 *
 * The test runs in a tenant of its own ("firstday", Asia/Shanghai, made
 * here with test-only SQL like test_ledger_points_pending.c's "lockpts"),
 * so its limit touches no other test and no tier or earning rule of the
 * demo tenant changes a price. Value "from before today" is made by moving
 * a member's journal lines two days back (created_at is all the limit
 * reads of a top-up's time). */
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

#define TENANT            "firstday"
#define LIMIT             20000 /* 200 yuan of today's top-ups may be spent today */
#define TEST_KEY_HEX_SIZE 49
#define WAIT_MS           10000

static char key[4 + TEST_KEY_HEX_SIZE];

static void exec_ok(PGconn *pg, const char *sql, int n, const char *const *p)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    PQclear(res);
}

/* The tenant (Asia/Shanghai, the default zone), its hq branch, an admin
 * key and a ladder (100 000 → +10 000) so top-ups carry a bonus. */
static int setup(void **state)
{
    unsigned char raw[24];
    randombytes_buf(raw, sizeof(raw));
    strcpy(key, "tsk_");
    sodium_bin2hex(key + 4, sizeof(key) - 4, raw, sizeof(raw));
    PGconn *pg = test_pg();
    exec_ok(pg,
            "INSERT INTO ingest.tenants (tenant_id, name, time_zone) VALUES ('" TENANT
            "', 'First Day', 'Asia/Shanghai') ON CONFLICT DO NOTHING",
            0, NULL);
    exec_ok(pg,
            "INSERT INTO ingest.branches (tenant_id, branch_id, name) VALUES "
            "('" TENANT "', 'hq', 'First Day HQ') ON CONFLICT DO NOTHING",
            0, NULL);
    const char *p[1] = {key};
    exec_ok(pg,
            "INSERT INTO ingest.api_keys (key_hash, tenant_id, name, scope) VALUES "
            "(encode(sha256(convert_to($1, 'UTF8')), 'hex'), '" TENANT "', 'fd admin', 'admin')",
            1, p);
    PQfinish(pg);
    test_put_setting("topup-bonus", "{\"steps\":[{\"threshold\":100000,\"bonus\":10000}]}", key);
    return 0;
}

/* ------------------------------------------------------- helpers */
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

static void register_member(char member_id[64])
{
    char body[160], phone[16];
    test_unique_phone(phone);
    snprintf(body, sizeof(body),
             "{\"name\":\"Fresh Member\",\"phone\":\"%s\",\"branch_id\":\"hq\"}", phone);
    struct api_response r = call("POST", "/v1/members", body);
    assert_int_equal(r.status, 201);
    snprintf(member_id, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

static void set_limit(const char *body, long status)
{
    struct api_response r = call("PUT", "/v1/config/card-limits", body);
    if (r.status != status)
        fprintf(stderr, "card-limits %s: got %ld: %s\n", body, r.status, r.raw);
    assert_int_equal(r.status, status);
    if (status == 422) {
        assert_string_equal(json_str_at(r.body, "code"), "validation_failed");
        assert_non_null(strstr(json_str_at(r.body, "detail"), "first_day_topup_spend_max"));
    }
    api_response_free(&r);
}

static void topup(const char *member_id, int64_t amount, int64_t bonus)
{
    char body[160];
    snprintf(body, sizeof(body),
             "{\"amount\":%lld,\"branch_id\":\"hq\",\"payment_method\":\"bank_card\"}",
             (long long)amount);
    struct api_response r = member_post(member_id, "/topups", body);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "bonus"), bonus);
    api_response_free(&r);
}

static struct api_response sv_purchase(const char *member_id, int64_t amount)
{
    char body[160];
    snprintf(body, sizeof(body),
             "{\"amount\":%lld,\"branch_id\":\"hq\",\"payment\":{\"method\":\"stored_value\"}}",
             (long long)amount);
    return member_post(member_id, "/purchases", body);
}

/* A 409 first_day_limit_exceeded whose verdict left the balance at
 * stored_value, and whose command wrote no journal line. */
static void expect_refused(struct api_response r, int64_t stored_value)
{
    if (r.status != 409)
        fprintf(stderr, "expected 409 first_day_limit_exceeded, got %ld: %s\n", r.status, r.raw);
    assert_int_equal(r.status, 409);
    assert_string_equal(json_str_at(r.body, "code"), "first_day_limit_exceeded");
    assert_int_equal(json_int_at(r.body, "balances.stored_value"), stored_value);
    PGconn *pg = test_pg();
    const char *p[1] = {json_str_at(r.body, "operation_id")};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.commands WHERE tenant_id = '" TENANT
                                 "' AND command_id = $1 AND status = 'rejected' "
                                 "AND code = 'first_day_limit_exceeded'",
                                 1, p),
                     1);
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.journal WHERE command_id = $1", 1, p), 0);
    PQfinish(pg);
    api_response_free(&r);
}

static void expect_posted(struct api_response r, int64_t stored_value)
{
    if (r.status != 201)
        fprintf(stderr, "expected 201, got %ld: %s\n", r.status, r.raw);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "balances.stored_value"), stored_value);
    api_response_free(&r);
}

struct sv_wait {
    const char *member_id;
    int64_t stored_value;
};

static bool member_shows(void *arg)
{
    const struct sv_wait *w = arg;
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", w->member_id);
    struct api_response r = call("GET", path, NULL);
    bool ok = r.status == 200 && json_int_at(r.body, "balances.stored_value") == w->stored_value;
    api_response_free(&r);
    return ok;
}

static void wait_stored_value(const char *member_id, int64_t stored_value)
{
    struct sv_wait w = {member_id, stored_value};
    assert_true(poll_until(member_shows, &w, WAIT_MS));
}

/* Everything the member has so far becomes value from two days ago. */
static void age_member(const char *member_id)
{
    PGconn *pg = test_pg();
    const char *p[1] = {member_id};
    exec_ok(pg,
            "UPDATE ledger.journal SET created_at = created_at - interval '2 days' "
            "WHERE tenant_id = '" TENANT "' AND member_id = $1",
            1, p);
    PQfinish(pg);
}

/* ------------------------------------------------------- tests */
static void test_setting_is_validated_and_stored(void **state)
{
    set_limit("{\"first_day_topup_spend_max\":-1}", 422);
    set_limit("{\"first_day_topup_spend_max\":\"200\"}", 422);
    set_limit("{\"first_day_topup_spend_max\":10000000000001}", 422);
    set_limit("{\"first_day_topup_spend_max\":20000}", 200);
    PGconn *pg = test_pg();
    assert_int_equal(test_pg_int(pg,
                                 "SELECT first_day_topup_spend_max FROM ledger.card_limits "
                                 "WHERE tenant_id = '" TENANT "'",
                                 0, NULL),
                     LIMIT);
    PQfinish(pg);
}

/* 500 yuan from before today, 1 000 (+100 bonus) topped up today: the old
 * 500 and 200 of today's 1 100 may be spent today, not a fen more. */
static void test_single_purchases(void **state)
{
    char m[64];
    register_member(m);
    topup(m, 50000, 0);
    age_member(m);
    topup(m, 100000, 10000); /* B 160 000, T 110 000 (bonus is fresh too) */
    expect_refused(sv_purchase(m, 70001), 160000);
    wait_stored_value(m, 160000);
    expect_posted(sv_purchase(m, 70000), 90000);
    expect_refused(sv_purchase(m, 1), 90000); /* the limit is used up for today */
    wait_stored_value(m, 90000);
    /* cash is not stored value: never limited */
    struct api_response r =
        member_post(m, "/purchases",
                    "{\"amount\":500000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}");
    assert_int_equal(r.status, 201);
    api_response_free(&r);
}

/* One upload: the top-up and the purchases after it go to the ledger
 * together, so the limit must count top-ups of the same ledger batch. */
static void test_batch_lines(void **state)
{
    char m[64], body[2048], run[40];
    register_member(m);
    snprintf(run, sizeof(run), "fd-%.24s", m);
    snprintf(body, sizeof(body),
             "{\"type\":\"topup\",\"member_id\":\"%s\",\"idempotency_key\":\"%s-1\","
             "\"amount\":100000,\"branch_id\":\"hq\",\"payment_method\":\"bank_card\"}\n"
             "{\"type\":\"purchase\",\"member_id\":\"%s\",\"idempotency_key\":\"%s-2\","
             "\"amount\":20001,\"branch_id\":\"hq\",\"payment\":{\"method\":\"stored_value\"}}\n"
             "{\"type\":\"purchase\",\"member_id\":\"%s\",\"idempotency_key\":\"%s-3\","
             "\"amount\":20000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"stored_value\"}}\n"
             "{\"type\":\"purchase\",\"member_id\":\"%s\",\"idempotency_key\":\"%s-4\","
             "\"amount\":1,\"branch_id\":\"hq\",\"payment\":{\"method\":\"stored_value\"}}\n",
             m, run, m, run, m, run, m, run);
    const char *headers[] = {"Content-Type: application/x-ndjson", "Prefer: wait=10", NULL};
    struct api_response r = api_call("POST", "/v1/events:batch", body, key, headers);
    assert_int_equal(r.status, 200);
    json_t *results = json_object_get(r.body, "results");
    static const long want[] = {201, 409, 201, 409};
    for (size_t i = 0; i < 4; i++) {
        json_t *line = json_array_get(results, i);
        long got = (long)json_integer_value(json_object_get(line, "status"));
        if (got != want[i])
            fprintf(stderr, "line %zu: %s\n", i + 1, r.raw);
        assert_int_equal(got, want[i]);
        if (want[i] == 409)
            assert_string_equal(json_str_at(json_object_get(line, "result"), "code"),
                                "first_day_limit_exceeded");
    }
    api_response_free(&r);
    wait_stored_value(m, 110000 - 20000);
}

/* A stored-value refund takes fresh value out first: the old 300 plus 200
 * of what is left of today's stay spendable today, whatever bonus the
 * refund forfeited. */
static void test_refund_lowers_fresh_value(void **state)
{
    char m[64];
    register_member(m);
    topup(m, 30000, 0);
    age_member(m);
    topup(m, 100000, 10000);
    struct api_response r =
        member_post(m, "/refunds",
                    "{\"kind\":\"stored_value\",\"reason\":\"card dispute\",\"branch_id\":\"hq\","
                    "\"principal\":50000}");
    assert_int_equal(r.status, 201);
    int64_t left = json_int_at(r.body, "balances.stored_value");
    assert_true(left < 140000 - 50000); /* bonus was forfeited too */
    api_response_free(&r);
    expect_refused(sv_purchase(m, 50001), left);
    expect_posted(sv_purchase(m, 50000), left - 50000);
}

/* A card sold for stored value spends it like a purchase. */
static void test_card_sale(void **state)
{
    struct api_response r = call("POST", "/v1/products",
                                 "{\"product_id\":\"fd-ten\",\"kind\":\"count\",\"name\":\"10 "
                                 "classes\",\"price\":30000,\"uses\":10,\"validity_days\":90}");
    assert_true(r.status == 201 || r.status == 200);
    api_response_free(&r);
    char m[64];
    register_member(m);
    topup(m, 100000, 10000);
    r = member_post(m, "/cards",
                    "{\"product_id\":\"fd-ten\",\"branch_id\":\"hq\",\"payment\":{\"method\":"
                    "\"stored_value\"}}");
    expect_refused(r, 110000);
    set_limit("{\"first_day_topup_spend_max\":30000}", 200);
    r = member_post(m, "/cards",
                    "{\"product_id\":\"fd-ten\",\"branch_id\":\"hq\",\"payment\":{\"method\":"
                    "\"stored_value\"}}");
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "balances.stored_value"), 80000);
    api_response_free(&r);
    set_limit("{\"first_day_topup_spend_max\":20000}", 200);
}

/* Switched off (absent: 0), today's value is all spendable. */
static void test_off(void **state)
{
    set_limit("{}", 200);
    char m[64];
    register_member(m);
    topup(m, 100000, 10000);
    expect_posted(sv_purchase(m, 110000), 0);
    set_limit("{\"first_day_topup_spend_max\":20000}", 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setting_is_validated_and_stored),
        cmocka_unit_test(test_single_purchases),
        cmocka_unit_test(test_batch_lines),
        cmocka_unit_test(test_refund_lowers_fresh_value),
        cmocka_unit_test(test_card_sale),
        cmocka_unit_test(test_off),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
