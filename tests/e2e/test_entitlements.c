/* Entitlements (issue 13, docs/entitlements.md), end to end on a tenant of
 * each test's own: resources set by API; a member allowed by tier, by an
 * active card, by a purchase within N days; the answer follows time and
 * change — a card that expires under the test clock, an override that
 * grants and then expires (a downgrade), a purchase window that closes, a
 * refund that withdraws what the purchase bought — and a repeated check
 * reads no PostgreSQL (tessera_entitlement_pg_reads_total stays). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"
#include "../support/login_code.h"
#include "../support/ops_client.h"
#include "../support/test_clock.h"
#include "../support/tier_tenant.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "clock/clock.h"
#include "events/codec.h"

#define DAY_US      (INT64_C(86400) * 1000000)
#define DEADLINE_MS 30000

static const char ladder[] =
    "{\"levels\":["
    "{\"name\":\"Basic\",\"rank\":1,\"thresholds\":{\"lifetime\":10000},"
    "\"benefits\":{\"discount_bp\":10000}},"
    "{\"name\":\"Advanced\",\"rank\":2,\"thresholds\":{\"lifetime\":50000},"
    "\"benefits\":{\"discount_bp\":9000}}]}";

static void put_resource(const struct tier_tenant *t, const char *resource, const char *rules)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/resources/%s", resource);
    struct api_response r = tier_tenant_call(t, "PUT", path, rules);
    if (r.status != 200)
        fail_msg("PUT %s: %ld %s", path, r.status, r.raw);
    api_response_free(&r);
}

/* The check's answer; caller frees. */
static struct api_response check(const struct tier_tenant *t, const char *member,
                                 const char *resource)
{
    char path[320];
    snprintf(path, sizeof(path), "/v1/members/%s/entitlements?resource=%s", member, resource);
    return tier_tenant_call(t, "GET", path, NULL);
}

struct expect {
    const struct tier_tenant *t;
    const char *member, *resource;
    bool allowed;
    const char *reason;
};

static bool answers(void *arg)
{
    struct expect *e = arg;
    struct api_response r = check(e->t, e->member, e->resource);
    bool ok = r.status == 200 && json_is_true(json_object_get(r.body, "allowed")) == e->allowed &&
              strcmp(json_str_at(r.body, "reason"), e->reason) == 0;
    api_response_free(&r);
    return ok;
}

/* One check that answered as wanted without reading PostgreSQL. */
static bool check_read_no_pg(void *arg)
{
    double before = ops_metric("ingest", "tessera_entitlement_pg_reads_total", NULL);
    return answers(arg) &&
           ops_metric("ingest", "tessera_entitlement_pg_reads_total", NULL) == before;
}

/* Polls (cache writes follow commits) until the check answers as wanted. */
static void wait_answer(const struct tier_tenant *t, const char *member, const char *resource,
                        bool allowed, const char *reason)
{
    struct expect e = {t, member, resource, allowed, reason};
    if (!poll_until(answers, &e, DEADLINE_MS)) {
        struct api_response r = check(t, member, resource);
        fail_msg("%s for %s: wanted %s/%s, got %ld %s", resource, member,
                 allowed ? "allowed" : "denied", reason, r.status, r.raw);
    }
}

static void purchase_sku(const struct tier_tenant *t, const char *member, const char *sku,
                         char operation_id[64])
{
    char path[160], body[512];
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", member);
    snprintf(body, sizeof(body),
             "{\"amount\":5000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"},"
             "\"items\":[{\"sku\":\"%s\",\"category\":\"course\",\"quantity\":1,"
             "\"unit_price\":5000}]}",
             sku);
    struct api_response r = api_call("POST", path, body, t->key, NULL);
    if (r.status != 201)
        fail_msg("purchase: %ld %s", r.status, r.raw);
    snprintf(operation_id, 64, "%s", json_str_at(r.body, "operation_id"));
    api_response_free(&r);
}

static void test_rules_by_api(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    tier_tenant_put_ladder(&t, ladder);
    /* a tier that is not in the ladder, a bad kind, a bad name: 422 */
    struct api_response r =
        tier_tenant_call(&t, "PUT", "/v1/resources/course:a",
                         "{\"rules\":[{\"kind\":\"tier\",\"min_tier\":\"Gold\"}]}");
    assert_int_equal(r.status, 422);
    json_t *first = json_array_get(json_object_get(r.body, "errors"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "field")), "rules[0].min_tier");
    api_response_free(&r);
    r = tier_tenant_call(&t, "PUT", "/v1/resources/course:a", "{\"rules\":[{\"kind\":\"x\"}]}");
    assert_int_equal(r.status, 422);
    api_response_free(&r);
    r = tier_tenant_call(&t, "PUT", "/v1/resources/nocolon", "{\"rules\":[]}");
    assert_int_equal(r.status, 422);
    api_response_free(&r);
    put_resource(&t, "course:a", "{\"rules\":[{\"kind\":\"tier\",\"min_tier\":\"Advanced\"}]}");
    r = tier_tenant_call(&t, "GET", "/v1/resources/course:a", NULL);
    assert_int_equal(r.status, 200);
    json_t *rule = json_array_get(json_object_get(r.body, "rules"), 0);
    assert_int_equal(json_integer_value(json_object_get(rule, "min_rank")), 2);
    assert_int_equal(json_int_at(r.body, "version"), 1);
    api_response_free(&r);
    /* an unknown resource, an unknown member */
    char member[64];
    tier_tenant_member(&t, member);
    r = check(&t, member, "course:none");
    assert_int_equal(r.status, 404);
    assert_string_equal(json_str_at(r.body, "code"), "resource_not_found");
    api_response_free(&r);
    r = check(&t, "0190f0c2-0000-7000-8000-000000000000", "course:a");
    assert_int_equal(r.status, 404);
    assert_string_equal(json_str_at(r.body, "code"), "not_found");
    api_response_free(&r);
    /* no tier: denied, and why */
    r = check(&t, member, "course:a");
    assert_int_equal(r.status, 200);
    assert_false(json_is_true(json_object_get(r.body, "allowed")));
    assert_string_equal(json_str_at(r.body, "reason"), "no_rule_met");
    assert_non_null(strstr(json_str_at(r.body, "detail"), "needs Advanced"));
    api_response_free(&r);
    /* a change reaches the check at once: Basic now opens it */
    char op[64];
    tier_tenant_purchase(&t, member, 12000, op);
    tier_tenant_wait_tier(&t, member, "Basic");
    wait_answer(&t, member, "course:a", false, "no_rule_met");
    put_resource(&t, "course:a", "{\"rules\":[{\"kind\":\"tier\",\"min_tier\":\"Basic\"}]}");
    r = check(&t, member, "course:a");
    assert_true(json_is_true(json_object_get(r.body, "allowed")));
    assert_string_equal(json_str_at(r.body, "reason"), "tier");
    api_response_free(&r);
    /* served from memory and Redis: once the rules are cached (the
     * change's own NOTIFY may drop the first read), asking again reads no
     * PostgreSQL */
    struct expect e = {&t, member, "course:a", true, "tier"};
    assert_true(poll_until(check_read_no_pg, &e, DEADLINE_MS));
    double before = ops_metric("ingest", "tessera_entitlement_pg_reads_total", NULL);
    for (int i = 0; i < 20; i++)
        assert_true(answers(&e));
    assert_true(ops_metric("ingest", "tessera_entitlement_pg_reads_total", NULL) == before);
}

static void test_override_grants_then_expires(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    tier_tenant_put_ladder(&t, ladder);
    put_resource(&t, "door:hq-gym", "{\"rules\":[{\"kind\":\"tier\",\"min_tier\":\"Advanced\"}]}");
    char member[64], op[64], path[160], body[256], at[32];
    tier_tenant_member(&t, member);
    tier_tenant_purchase(&t, member, 12000, op);
    tier_tenant_wait_tier(&t, member, "Basic");
    wait_answer(&t, member, "door:hq-gym", false, "no_rule_met");
    int64_t saved = test_clock_offset_us();
    event_format_time(clock_now_us() + 10 * DAY_US, at);
    snprintf(path, sizeof(path), "/v1/members/%s/tier-override", member);
    snprintf(body, sizeof(body), "{\"tier\":\"Advanced\",\"reason\":\"vip\",\"expires_at\":\"%s\"}",
             at);
    struct api_response r = tier_tenant_call(&t, "PUT", path, body);
    assert_int_equal(r.status, 202);
    api_response_free(&r);
    wait_answer(&t, member, "door:hq-gym", true, "tier");
    /* the override expires: back to Basic, the door closes */
    test_clock_advance_us(11 * DAY_US);
    tier_tenant_wait_tier(&t, member, "Basic");
    wait_answer(&t, member, "door:hq-gym", false, "no_rule_met");
    test_clock_restore(saved);
}

static void test_card_opens_until_it_expires(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    char product[128], body[512], path[160];
    snprintf(product, sizeof(product), "gym-month-%s", t.tenant_id);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"kind\":\"time\",\"name\":\"Gym month\",\"price\":30000,"
             "\"validity_days\":30}",
             product);
    struct api_response r = api_call("POST", "/v1/products", body, t.key, NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    snprintf(body, sizeof(body), "{\"rules\":[{\"kind\":\"card\",\"product_ids\":[\"%s\"]}]}",
             product);
    put_resource(&t, "door:hq-gym", body);
    char member[64];
    tier_tenant_member(&t, member);
    wait_answer(&t, member, "door:hq-gym", false, "no_rule_met");
    snprintf(path, sizeof(path), "/v1/members/%s/cards", member);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}",
             product);
    r = api_call("POST", path, body, t.key, NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    wait_answer(&t, member, "door:hq-gym", true, "card");
    r = check(&t, member, "door:hq-gym");
    assert_true(json_is_string(json_object_get(r.body, "valid_until")));
    api_response_free(&r);
    int64_t saved = test_clock_advance_us(31 * DAY_US);
    r = check(&t, member, "door:hq-gym");
    assert_false(json_is_true(json_object_get(r.body, "allowed")));
    assert_non_null(strstr(json_str_at(r.body, "detail"), "expired"));
    api_response_free(&r);
    test_clock_restore(saved);
}

static void test_purchase_window_and_refund(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    put_resource(&t, "course:algebra-1",
                 "{\"rules\":[{\"kind\":\"purchase\",\"skus\":[\"ALG-1\"],\"within_days\":30}]}");
    put_resource(&t, "course:algebra-ever",
                 "{\"rules\":[{\"kind\":\"purchase\",\"skus\":[\"ALG-1\",\"ALG-BUNDLE\"]}]}");
    char member[64], other[64], op[64], op2[64];
    tier_tenant_member(&t, member);
    tier_tenant_member(&t, other);
    purchase_sku(&t, member, "ALG-1", op);
    wait_answer(&t, member, "course:algebra-1", true, "purchase");
    wait_answer(&t, member, "course:algebra-ever", true, "purchase");
    /* the window closes after 30 days; "ever" stays open */
    int64_t saved = test_clock_advance_us(31 * DAY_US);
    wait_answer(&t, member, "course:algebra-1", false, "no_rule_met");
    wait_answer(&t, member, "course:algebra-ever", true, "purchase");
    test_clock_restore(saved);
    /* a refund withdraws what the purchase bought */
    purchase_sku(&t, other, "ALG-BUNDLE", op2);
    wait_answer(&t, other, "course:algebra-ever", true, "purchase");
    tier_tenant_refund(&t, other, op2);
    wait_answer(&t, other, "course:algebra-ever", false, "no_rule_met");
    /* the cache flushed: PostgreSQL answers the same */
    PGconn *pg = test_pg();
    const char *p[2] = {t.tenant_id, member};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM tiering.read_member_skus WHERE "
                                 "tenant_id = $1 AND member_id = $2 AND sku = 'ALG-1'",
                                 2, p),
                     1);
    PQfinish(pg);
    assert_int_equal(system("redis-cli -p \"$TESSERA_REDIS_PORT\" flushall >/dev/null"), 0);
    wait_answer(&t, member, "course:algebra-ever", true, "purchase");
    wait_answer(&t, other, "course:algebra-ever", false, "no_rule_met");
}

struct me_wait {
    const char *token, *path;
};

static bool me_allowed(void *arg)
{
    struct me_wait *w = arg;
    struct api_response r = api_call("GET", w->path, NULL, w->token, NULL);
    bool ok = r.status == 200 && json_is_true(json_object_get(r.body, "allowed")) &&
              strcmp(json_str_at(r.body, "reason"), "tier") == 0;
    api_response_free(&r);
    return ok;
}

/* The member's own check, on the demo tenant (whose app key the tests
 * have): logged in by SMS code, GET /v1/me/entitlements answers for the
 * session's member. */
static void test_me_entitlements(void **state)
{
    char phone[16], body[256], member[64], token[160], resource[64], path[160];
    snprintf(resource, sizeof(resource), "course:me-%08x", (unsigned)random());
    snprintf(path, sizeof(path), "/v1/resources/%s", resource);
    struct api_response r = api_call(
        "PUT", path, "{\"rules\":[{\"kind\":\"tier\",\"min_tier\":\"Basic\"}]}", NULL, NULL);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"Me Ent\",\"phone\":\"%s\",\"branch_id\":\"hq\"}",
             phone);
    r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(member, sizeof(member), "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", member);
    r = api_post(path, "{\"amount\":60000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}",
                 NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    snprintf(body, sizeof(body), "{\"phone\":\"%s\"}", phone);
    r = api_app_post("/v1/auth/sms-codes", body);
    assert_int_equal(r.status, 202);
    api_response_free(&r);
    char code[8];
    assert_true(login_code_wait(member, code, DEADLINE_MS));
    snprintf(body, sizeof(body), "{\"phone\":\"%s\",\"code\":\"%s\",\"device_id\":\"ent-test\"}",
             phone, code);
    r = api_app_post("/v1/auth/sessions", body);
    assert_int_equal(r.status, 201);
    snprintf(token, sizeof(token), "%s", json_str_at(r.body, "token"));
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/me/entitlements?resource=%s", resource);
    struct me_wait w = {token, path};
    assert_true(poll_until(me_allowed, &w, DEADLINE_MS));
    r = api_call("GET", path, NULL, token, NULL);
    assert_string_equal(json_str_at(r.body, "member_id"), member);
    api_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_by_api),
        cmocka_unit_test(test_override_grants_then_expires),
        cmocka_unit_test(test_card_opens_until_it_expires),
        cmocka_unit_test(test_purchase_window_and_refund),
        cmocka_unit_test(test_me_entitlements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
