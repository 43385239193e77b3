/* Tiers that live (issue 13), end to end over HTTP on a tenant of each
 * test's own (its ladder set by PUT /v1/config/tiers): a member climbs
 * Basic -> Advanced -> Premium by spend; a refund lowers the qualifying
 * spend and, under the "immediately" rule, takes the member down with the
 * reason "refund"; under "at_review" the level stays and the history
 * explains why; a ladder that does not hold together is refused naming
 * the field and the old version stays; a dry-run's counts are what
 * applying the ladder then does. Every wait polls a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/login_code.h"
#include "../support/api_client.h"
#include "../support/tier_tenant.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "events/codec.h"

#define TIER_DEADLINE_MS 20000

/* Basic 100, Advanced 500, Premium 1 000 yuan lifetime; rule as given.
 * Only Premium discounts (80%), so the amounts below are what counts. */
static void ladder_basic_advanced_premium(const struct tier_tenant *t, const char *refund_rule)
{
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"levels\":["
             "{\"name\":\"Basic\",\"rank\":1,\"thresholds\":{\"lifetime\":10000},"
             "\"benefits\":{\"discount_bp\":10000}},"
             "{\"name\":\"Advanced\",\"rank\":2,\"thresholds\":{\"lifetime\":50000},"
             "\"benefits\":{\"discount_bp\":10000}},"
             "{\"name\":\"Premium\",\"rank\":3,\"thresholds\":{\"lifetime\":100000},"
             "\"benefits\":{\"discount_bp\":8000}}],\"refund_rule\":\"%s\"}",
             refund_rule);
    tier_tenant_put_ladder(t, body);
}

static void test_climb_then_refund_immediately(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    ladder_basic_advanced_premium(&t, "immediately");
    char member[64], op[64];
    tier_tenant_member(&t, member);
    tier_tenant_purchase(&t, member, 12000, op);
    tier_tenant_wait_tier(&t, member, "Basic");
    tier_tenant_purchase(&t, member, 40000, op);
    tier_tenant_wait_tier(&t, member, "Advanced");
    tier_tenant_purchase(&t, member, 50000, op);
    tier_tenant_wait_tier(&t, member, "Premium");
    /* the member view: Advanced -> Premium took 102 000 lifetime, the
     * history lists each move with its rule, newest first */
    char path[160];
    snprintf(path, sizeof(path), "/v1/members/%s/tier", member);
    struct api_response v = tier_tenant_call(&t, "GET", path, NULL);
    assert_int_equal(v.status, 200);
    assert_string_equal(json_str_at(v.body, "tier.name"), "Premium");
    assert_string_equal(json_str_at(v.body, "tier.reason"), "cumulative_spend");
    assert_true(json_is_null(json_object_get(json_object_get(v.body, "tier"), "override")));
    assert_int_equal(json_int_at(v.body, "progress.spent.lifetime"), 102000);
    assert_true(json_is_null(json_object_get(json_object_get(v.body, "progress"), "next_level")));
    json_t *changes = json_object_get(json_object_get(v.body, "history"), "changes");
    assert_int_equal(json_array_size(changes), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(changes, 0), "to")),
                        "Premium");
    api_response_free(&v);
    /* the Premium purchase goes back: 52 000 left, Advanced at once */
    tier_tenant_refund(&t, member, op);
    tier_tenant_wait_tier(&t, member, "Advanced");
    PGconn *pg = test_pg();
    const char *p[2] = {t.tenant_id, member};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT lifetime_spend FROM tiering.member_spend WHERE "
                                 "tenant_id = $1 AND member_id = $2",
                                 2, p),
                     52000);
    /* the history names the rule of each move, the refund last */
    char reasons[256];
    tier_tenant_reasons(pg, &t, member, reasons, sizeof(reasons));
    assert_string_equal(reasons, "cumulative_spend,cumulative_spend,cumulative_spend,refund");
    PQfinish(pg);
    /* progress from Advanced: 48 000 more lifetime spend to Premium */
    struct api_response v2 = tier_tenant_call(&t, "GET", path, NULL);
    assert_int_equal(v2.status, 200);
    assert_string_equal(json_str_at(v2.body, "tier.name"), "Advanced");
    assert_string_equal(json_str_at(v2.body, "tier.reason"), "refund");
    assert_string_equal(json_str_at(v2.body, "progress.next_level.name"), "Premium");
    assert_int_equal(json_int_at(v2.body, "progress.next_level.needed"), 48000);
    assert_string_equal(json_str_at(v2.body, "progress.next_level.window"), "lifetime");
    assert_int_equal(json_int_at(v2.body, "progress.review.needed_to_keep"), 0);
    api_response_free(&v2);
    /* the price follows the tier held now: Advanced's full price, no
     * longer Premium's 80% */
    assert_int_equal(tier_tenant_quote(&t, member, 10000), 10000);
}

static void test_refund_at_review_keeps_level_and_explains(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    ladder_basic_advanced_premium(&t, "at_review");
    char member[64], op[64];
    tier_tenant_member(&t, member);
    tier_tenant_purchase(&t, member, 30000, op);
    tier_tenant_purchase(&t, member, 25000, op);
    tier_tenant_wait_tier(&t, member, "Advanced");
    tier_tenant_refund(&t, member, op);
    PGconn *pg = test_pg();
    const char *p[2] = {t.tenant_id, member};
    tier_tenant_wait_sql(pg,
                         "SELECT count(*) FROM tiering.tier_notes WHERE tenant_id = $1 AND "
                         "member_id = $2 AND kind = 'below_after_refund' AND detail LIKE "
                         "'%below Advanced%kept until the review'",
                         2, p, 1);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT lifetime_spend FROM tiering.member_spend WHERE "
                                 "tenant_id = $1 AND member_id = $2",
                                 2, p),
                     30000);
    char reasons[256];
    tier_tenant_reasons(pg, &t, member, reasons, sizeof(reasons));
    /* Basic, then Advanced; the refund moved nothing */
    assert_string_equal(reasons, "cumulative_spend,cumulative_spend");
    PQfinish(pg);
    tier_tenant_wait_tier(&t, member, "Advanced");
}

static void test_inconsistent_ladder_refused_old_stays(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    ladder_basic_advanced_premium(&t, "at_review");
    struct api_response r = tier_tenant_call(&t, "GET", "/v1/config/tiers", NULL);
    assert_int_equal(r.status, 200);
    int64_t version = json_int_at(r.body, "version");
    api_response_free(&r);
    /* Advanced cheaper than Basic, and a level no one can reach */
    r = tier_tenant_call(&t, "PUT", "/v1/config/tiers",
                         "{\"levels\":[{\"name\":\"Basic\",\"rank\":1,\"thresholds\":"
                         "{\"lifetime\":10000},\"benefits\":{\"discount_bp\":9500}},"
                         "{\"name\":\"Advanced\",\"rank\":2,\"thresholds\":{\"lifetime\":9000},"
                         "\"benefits\":{\"discount_bp\":9000}},"
                         "{\"name\":\"Ghost\",\"rank\":3,\"benefits\":{\"discount_bp\":8000}}]}");
    assert_int_equal(r.status, 422);
    assert_string_equal(json_str_at(r.body, "code"), "validation_failed");
    assert_non_null(strstr(r.raw, "levels[1].thresholds.lifetime"));
    assert_non_null(strstr(r.raw, "levels[2].thresholds"));
    api_response_free(&r);
    r = tier_tenant_call(&t, "GET", "/v1/config/tiers", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_int_at(r.body, "version"), version);
    json_t *levels = json_object_get(r.body, "levels");
    assert_int_equal(json_array_size(levels), 3);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_array_get(levels, 1), "thresholds"), "lifetime")),
                     50000);
    api_response_free(&r);
}

/* The dry-run's count for level name (gain or lose). */
static int64_t dry_count(json_t *body, const char *name, const char *which)
{
    json_t *levels = json_object_get(body, "levels");
    for (size_t i = 0; i < json_array_size(levels); i++) {
        json_t *l = json_array_get(levels, i);
        if (strcmp(json_string_value(json_object_get(l, "name")), name) == 0)
            return json_integer_value(json_object_get(l, which));
    }
    return -1;
}

static void test_dry_run_matches_apply(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    ladder_basic_advanced_premium(&t, "at_review");
    static const int64_t spends[] = {20000, 30000, 60000, 60000, 5000};
    static const char *const before[] = {"Basic", "Basic", "Advanced", "Advanced", ""};
    char members[5][64], op[64];
    for (int i = 0; i < 5; i++) {
        tier_tenant_member(&t, members[i]);
        tier_tenant_purchase(&t, members[i], spends[i], op);
    }
    /* every purchase counted (the one below Basic shows no tier either way) */
    PGconn *pg = test_pg();
    const char *tp[1] = {t.tenant_id};
    tier_tenant_wait_sql(
        pg, "SELECT count(*) FROM tiering.read_qualifying_facts WHERE tenant_id = $1", 1, tp, 5);
    for (int i = 0; i < 5; i++)
        tier_tenant_wait_tier(&t, members[i], before[i]);
    /* Basic from 150, Advanced from 250, Premium from 550 yuan: 30 000
     * moves up to Advanced and both 60 000 to Premium; 20 000 still
     * reaches Basic and 5 000 still nothing. */
    static const char ladder[] =
        "{\"levels\":["
        "{\"name\":\"Basic\",\"rank\":1,\"thresholds\":{\"lifetime\":15000},"
        "\"benefits\":{\"discount_bp\":9500}},"
        "{\"name\":\"Advanced\",\"rank\":2,\"thresholds\":{\"lifetime\":25000},"
        "\"benefits\":{\"discount_bp\":9000}},"
        "{\"name\":\"Premium\",\"rank\":3,\"thresholds\":{\"lifetime\":55000},"
        "\"benefits\":{\"discount_bp\":8000}}]}";
    struct api_response r = tier_tenant_call(&t, "POST", "/v1/config/tiers:dry-run", ladder);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_int_at(r.body, "members_evaluated"), 5);
    int64_t gain_adv = dry_count(r.body, "Advanced", "would_gain");
    int64_t gain_prem = dry_count(r.body, "Premium", "would_gain");
    int64_t gain_basic = dry_count(r.body, "Basic", "would_gain");
    assert_int_equal(gain_adv, 1);
    assert_int_equal(gain_prem, 2);
    assert_int_equal(gain_basic, 0);
    api_response_free(&r);
    /* a ladder of Basic alone from 250 yuan: the 20 000 member would
     * lose Basic, the two at Advanced (a level it drops) would fall to
     * Basic, both at their review */
    r = tier_tenant_call(&t, "POST", "/v1/config/tiers:dry-run",
                         "{\"levels\":[{\"name\":\"Basic\",\"rank\":1,\"thresholds\":"
                         "{\"lifetime\":25000},\"benefits\":{\"discount_bp\":9500}}]}");
    assert_int_equal(r.status, 200);
    assert_int_equal(dry_count(r.body, "Basic", "would_lose"), 1);
    assert_int_equal(dry_count(r.body, "Advanced", "would_lose"), 2);
    assert_int_equal(dry_count(r.body, "Premium", "would_lose"), -1); /* not listed */
    api_response_free(&r);
    /* applying the first one does what its dry-run said */
    tier_tenant_put_ladder(&t, ladder);
    const char *p[2] = {t.tenant_id, "Premium"};
    tier_tenant_wait_sql(pg,
                         "SELECT count(*) FROM tiering.tier_changes WHERE tenant_id = $1 AND "
                         "reason = 'ladder_change' AND to_name = $2",
                         2, p, gain_prem);
    p[1] = "Advanced";
    tier_tenant_wait_sql(pg,
                         "SELECT count(*) FROM tiering.tier_changes WHERE tenant_id = $1 AND "
                         "reason = 'ladder_change' AND to_name = $2",
                         2, p, gain_adv);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM tiering.tier_changes WHERE tenant_id = $1 "
                                 "AND reason = 'ladder_change'",
                                 1, p),
                     gain_adv + gain_prem + gain_basic);
    PQfinish(pg);
    tier_tenant_wait_tier(&t, members[1], "Advanced");
    tier_tenant_wait_tier(&t, members[2], "Premium");
}

struct me_wait {
    const char *token;
    int64_t lifetime;
};

/* GET /v1/me's tier_progress shows Basic (and the spend counted). */
static bool me_shows_basic(void *arg)
{
    struct me_wait *w = arg;
    struct api_response r = api_call("GET", "/v1/me", NULL, w->token, NULL);
    assert_int_equal(r.status, 200);
    json_t *tp = json_object_get(r.body, "tier_progress");
    assert_non_null(tp);
    json_t *tier = json_object_get(tp, "tier");
    bool basic = json_is_object(tier) &&
                 strcmp(json_string_value(json_object_get(tier, "name")), "Basic") == 0;
    if (basic)
        w->lifetime = json_int_at(r.body, "tier_progress.progress.spent.lifetime");
    api_response_free(&r);
    return basic;
}

/* The member's own view (the demo tenant, whose app key the test has):
 * GET /v1/me carries the tier view as tier_progress, as GET /v1/me/tier. */
static void test_me_shows_tier_progress(void **state)
{
    char phone[16], body[256], member[64], token[160];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"Me Tier\",\"phone\":\"%s\",\"branch_id\":\"hq\"}",
             phone);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(member, sizeof(member), "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
    char path[160];
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
    assert_true(login_code_wait(member, code, 20000));
    snprintf(body, sizeof(body), "{\"phone\":\"%s\",\"code\":\"%s\",\"device_id\":\"tier-test\"}",
             phone, code);
    r = api_app_post("/v1/auth/sessions", body);
    assert_int_equal(r.status, 201);
    snprintf(token, sizeof(token), "%s", json_str_at(r.body, "token"));
    api_response_free(&r);
    /* tiering counts the purchase: the demo ladder's Basic (500 yuan) */
    struct me_wait w = {token, 0};
    assert_true(poll_until(me_shows_basic, &w, 20000));
    assert_int_equal(w.lifetime, 60000);
    r = api_call("GET", "/v1/me/tier", NULL, token, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "tier.name"), "Basic");
    assert_string_equal(json_str_at(r.body, "member_id"), member);
    api_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_climb_then_refund_immediately),
        cmocka_unit_test(test_refund_at_review_keeps_level_and_explains),
        cmocka_unit_test(test_inconsistent_ladder_refused_old_stays),
        cmocka_unit_test(test_dry_run_matches_apply),
        cmocka_unit_test(test_me_shows_tier_progress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
