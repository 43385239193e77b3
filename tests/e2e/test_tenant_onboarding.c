/* A tenant made entirely through the API (issue 14's done-when): the
 * bootstrap command makes a platform key, POST /v1/tenants creates the
 * tenant from a template (its branch, its first admin key, the template's
 * settings applied by the ledger), and the tenant then sets its own top-up
 * bonus ladder and points policy, reads each back with GET, and sees them
 * applied: a top-up earns its own ladder's bonus, a purchase's points
 * follow its own policy (no lock, 30-day expiry). A bad setting is refused
 * with 422 naming the field and the version in force stays. Its branches
 * are listed, renamed and closed; a closed branch refuses a top-up. No SQL
 * writes anything here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/api_client.h"

#define DEADLINE_MS     30000
#define OWN_THRESHOLD   50000 /* below the template's first rung (100 000) */
#define OWN_BONUS       7000
#define TOPUP           60000
#define PURCHASE        12300 /* 123 points at 1 point per yuan */
#define EXPIRY_DAYS     30
#define OWN_TIER_SPEND  10000 /* the tenant's own one-level ladder: Gold from 100 yuan */
#define OWN_TIER_BP     9000  /* Gold pays 90% */
#define SECONDS_PER_DAY 86400

static char platform_key[128];
static char tenant_id[64];
static char admin_key[128];
static char template_ladder_change[64];
static char template_limits_change[64];
static char template_tiers_change[64];

static void expect_status(struct api_response *r, long status)
{
    if (r->status != status)
        fprintf(stderr, "test: expected %ld, got %ld: %s\n", status, r->status, r->raw);
    assert_int_equal(r->status, status);
}

/* The bootstrap command, as an operator runs it (runtime.sh platform-key
 * runs `tessera-ingest --create-platform-key NAME`): the key on stdout. */
static void make_platform_key(void)
{
    const char *runtime = getenv("TESSERA_RUNTIME");
    assert_non_null(runtime);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s platform-key e2e-onboarding", runtime);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(platform_key, sizeof(platform_key), p));
    assert_int_equal(pclose(p), 0);
    platform_key[strcspn(platform_key, "\n")] = 0;
    assert_int_equal(strncmp(platform_key, "tpk_", 4), 0);
}

static struct api_response get_setting(const char *kind)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/config/%s", kind);
    return api_call("GET", path, NULL, admin_key, NULL);
}

struct change_wait {
    const char *kind;
    const char *change_id;
};

static bool change_in_force(void *arg)
{
    struct change_wait *w = arg;
    struct api_response r = get_setting(w->kind);
    const char *id =
        r.status == 200 ? json_string_value(json_object_get(r.body, "change_id")) : NULL;
    bool ok = id && strcmp(id, w->change_id) == 0;
    api_response_free(&r);
    return ok;
}

static int setup_tenant(void **state)
{
    make_platform_key();
    snprintf(tenant_id, sizeof(tenant_id), "onb-%d-%ld", (int)getpid(), (long)time(NULL));
    char body[512];
    snprintf(body, sizeof(body),
             "{\"tenant_id\":\"%s\",\"name\":\"Onboarded Gym\",\"currency\":\"CNY\","
             "\"time_zone\":\"Asia/Shanghai\",\"template\":\"fitness\","
             "\"branch\":{\"branch_id\":\"hq\",\"name\":\"Flagship\"}}",
             tenant_id);
    struct api_response r = api_call("POST", "/v1/tenants", body, platform_key, NULL);
    expect_status(&r, 201);
    assert_string_equal(json_str_at(r.body, "tenant_id"), tenant_id);
    assert_string_equal(json_str_at(r.body, "admin_key.scope"), "admin");
    snprintf(admin_key, sizeof(admin_key), "%s", json_str_at(r.body, "admin_key.key"));
    json_t *first = json_array_get(json_object_get(r.body, "settings"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "kind")), "topup-bonus");
    snprintf(template_ladder_change, sizeof(template_ladder_change), "%s",
             json_string_value(json_object_get(first, "change_id")));
    json_t *limits = json_array_get(json_object_get(r.body, "settings"), 2);
    assert_string_equal(json_string_value(json_object_get(limits, "kind")), "card-limits");
    snprintf(template_limits_change, sizeof(template_limits_change), "%s",
             json_string_value(json_object_get(limits, "change_id")));
    json_t *tiers = json_array_get(json_object_get(r.body, "settings"), 4);
    assert_string_equal(json_string_value(json_object_get(tiers, "kind")), "tiers");
    snprintf(template_tiers_change, sizeof(template_tiers_change), "%s",
             json_string_value(json_object_get(tiers, "change_id")));
    api_response_free(&r);
    /* the same tenant again: refused, nothing changed */
    r = api_call("POST", "/v1/tenants", body, platform_key, NULL);
    expect_status(&r, 409);
    assert_string_equal(json_str_at(r.body, "code"), "tenant_exists");
    api_response_free(&r);
    return 0;
}

/* Only a platform key creates tenants; the template is validated. */
static void test_platform_key_only(void **state)
{
    const char *body = "{\"name\":\"X\",\"template\":\"fitness\","
                       "\"branch\":{\"branch_id\":\"hq\",\"name\":\"HQ\"}}";
    struct api_response r = api_call("POST", "/v1/tenants", body, admin_key, NULL);
    expect_status(&r, 403);
    api_response_free(&r);
    r = api_call("POST", "/v1/tenants",
                 "{\"name\":\"X\",\"template\":\"zoo\",\"branch\":{\"branch_id\":\"hq\","
                 "\"name\":\"HQ\"}}",
                 platform_key, NULL);
    expect_status(&r, 422);
    assert_string_equal(json_str_at(json_array_get(json_object_get(r.body, "errors"), 0), "field"),
                        "template");
    api_response_free(&r);
}

static void put_setting(const char *kind, const char *body, char change_id[64]);

/* The template's ladder arrives through the ledger like any change. */
static void test_template_applied(void **state)
{
    struct change_wait w = {"topup-bonus", template_ladder_change};
    assert_true(poll_until(change_in_force, &w, DEADLINE_MS));
    struct api_response r = get_setting("topup-bonus");
    json_t *steps = json_object_get(r.body, "steps");
    assert_int_equal(json_array_size(steps), 3);
    assert_int_equal(json_int_at(json_array_get(steps, 0), "threshold"), 100000);
    assert_int_equal(json_int_at(json_array_get(steps, 0), "bonus"), 10000);
    api_response_free(&r);
    /* card limits are versioned the same way */
    struct change_wait l = {"card-limits", template_limits_change};
    assert_true(poll_until(change_in_force, &l, DEADLINE_MS));
    char own[64];
    put_setting("card-limits", "{\"daily_uses_max\":5}", own);
    r = get_setting("card-limits");
    assert_string_equal(json_str_at(r.body, "change_id"), own);
    assert_int_equal(json_int_at(r.body, "daily_uses_max"), 5);
    assert_int_equal(json_int_at(r.body, "burst_window_s"), 600); /* the default, filled in */
    api_response_free(&r);
    /* and the seeds' tier ladder, through tiering's own settings */
    struct change_wait t = {"tiers", template_tiers_change};
    assert_true(poll_until(change_in_force, &t, DEADLINE_MS));
    r = get_setting("tiers");
    json_t *levels = json_object_get(r.body, "levels");
    assert_int_equal(json_array_size(levels), 3);
    assert_string_equal(json_str_at(json_array_get(levels, 0), "name"), "Basic");
    assert_int_equal(json_int_at(json_array_get(levels, 2), "benefits.discount_bp"), 7000);
    api_response_free(&r);
}

/* PUTs a setting; writes its change id. */
static void put_setting(const char *kind, const char *body, char change_id[64])
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/config/%s", kind);
    const char *headers[] = {"Prefer: wait=10", NULL};
    struct api_response r = api_call("PUT", path, body, admin_key, headers);
    expect_status(&r, 200);
    assert_string_equal(json_str_at(r.body, "status"), "applied");
    snprintf(change_id, 64, "%s", json_str_at(r.body, "change_id"));
    api_response_free(&r);
}

static void test_own_settings_read_back(void **state)
{
    char ladder[64], policy[64], body[256];
    snprintf(body, sizeof(body), "{\"steps\":[{\"threshold\":%d,\"bonus\":%d}]}", OWN_THRESHOLD,
             OWN_BONUS);
    put_setting("topup-bonus", body, ladder);
    put_setting("points-policy",
                "{\"expiry\":{\"kind\":\"days\",\"periods\":30},\"lock_seconds\":0}", policy);
    /* its own tier ladder, read back too */
    snprintf(body, sizeof(body),
             "{\"levels\":[{\"name\":\"Gold\",\"rank\":1,\"thresholds\":{\"lifetime\":%d},"
             "\"benefits\":{\"discount_bp\":%d}}]}",
             OWN_TIER_SPEND, OWN_TIER_BP);
    const char *wait[] = {"Prefer: wait=10", NULL};
    struct api_response t = api_call("PUT", "/v1/config/tiers", body, admin_key, wait);
    expect_status(&t, 200);
    api_response_free(&t);
    t = api_call("GET", "/v1/config/tiers", NULL, admin_key, NULL);
    expect_status(&t, 200);
    json_t *levels = json_object_get(t.body, "levels");
    assert_int_equal(json_array_size(levels), 1);
    assert_string_equal(json_str_at(json_array_get(levels, 0), "name"), "Gold");
    assert_int_equal(json_int_at(json_array_get(levels, 0), "thresholds.lifetime"), OWN_TIER_SPEND);
    api_response_free(&t);
    struct api_response r = get_setting("topup-bonus");
    assert_string_equal(json_str_at(r.body, "change_id"), ladder);
    json_t *steps = json_object_get(r.body, "steps");
    assert_int_equal(json_array_size(steps), 1);
    assert_int_equal(json_int_at(json_array_get(steps, 0), "bonus"), OWN_BONUS);
    api_response_free(&r);
    r = get_setting("points-policy");
    assert_string_equal(json_str_at(r.body, "change_id"), policy);
    assert_string_equal(json_str_at(r.body, "expiry.kind"), "days");
    assert_int_equal(json_int_at(r.body, "expiry.periods"), EXPIRY_DAYS);
    assert_int_equal(json_int_at(r.body, "lock_seconds"), 0);
    api_response_free(&r);

    /* a bad ladder: 422 naming the rung, and the one in force stays */
    r = api_call("PUT", "/v1/config/topup-bonus",
                 "{\"steps\":[{\"threshold\":900,\"bonus\":1},{\"threshold\":800,\"bonus\":1}]}",
                 admin_key, NULL);
    expect_status(&r, 422);
    assert_string_equal(json_str_at(json_array_get(json_object_get(r.body, "errors"), 0), "field"),
                        "steps[1]");
    api_response_free(&r);
    r = get_setting("topup-bonus");
    assert_string_equal(json_str_at(r.body, "change_id"), ladder);
    api_response_free(&r);
}

static void register_member(char member_id[64])
{
    char phone[16], body[160];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"Onb\",\"phone\":\"%s\",\"branch_id\":\"hq\"}", phone);
    struct api_response r = api_call("POST", "/v1/members", body, admin_key, NULL);
    expect_status(&r, 201);
    snprintf(member_id, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

static struct api_response topup(const char *member, int64_t amount)
{
    char path[128], body[128];
    snprintf(path, sizeof(path), "/v1/members/%s/topups", member);
    snprintf(body, sizeof(body),
             "{\"amount\":%lld,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
             (long long)amount);
    return api_call("POST", path, body, admin_key, NULL);
}

struct points_wait {
    const char *member;
    int64_t points, pending;
};

static bool points_arrived(void *arg)
{
    struct points_wait *w = arg;
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", w->member);
    struct api_response r = api_call("GET", path, NULL, admin_key, NULL);
    bool ok = false;
    if (r.status == 200) {
        json_t *b = json_object_get(r.body, "balances");
        w->points = json_integer_value(json_object_get(b, "points"));
        w->pending = json_integer_value(json_object_get(b, "points_pending"));
        ok = w->points + w->pending > 0;
    }
    api_response_free(&r);
    return ok;
}

struct quote_wait {
    const char *member;
    int64_t charged;
};

/* The price of 100 yuan for the member, once its tier reached the cache. */
static bool quote_discounted(void *arg)
{
    struct quote_wait *w = arg;
    char path[160];
    snprintf(path, sizeof(path), "/v1/members/%s/quote?amount=10000&branch_id=hq", w->member);
    struct api_response r = api_call("GET", path, NULL, admin_key, NULL);
    if (r.status == 200)
        w->charged = json_int_at(r.body, "charged");
    api_response_free(&r);
    return w->charged == 10000 * OWN_TIER_BP / 10000;
}

/* The ladders and the policy in force are the tenant's own: the template
 * would give no bonus for 600 yuan, would lock the points 7 days and has
 * no level at 123 yuan. */
static void test_settings_applied(void **state)
{
    char member[64];
    register_member(member);
    struct api_response r = topup(member, TOPUP);
    expect_status(&r, 201);
    assert_int_equal(json_int_at(r.body, "bonus"), OWN_BONUS);
    api_response_free(&r);

    char path[128], body[160];
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", member);
    snprintf(body, sizeof(body),
             "{\"amount\":%d,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}", PURCHASE);
    r = api_call("POST", path, body, admin_key, NULL);
    expect_status(&r, 201);
    api_response_free(&r);
    struct points_wait w = {.member = member};
    assert_true(poll_until(points_arrived, &w, DEADLINE_MS));
    assert_int_equal(w.points, PURCHASE / 100); /* spendable at once: lock 0 */
    assert_int_equal(w.pending, 0);
    /* the lot expires 30 days after it was granted (read only) */
    PGconn *pg = test_pg();
    const char *p[2] = {tenant_id, member};
    int64_t days = test_pg_int(pg,
                               "SELECT round(EXTRACT(EPOCH FROM (expires_at - created_at)) / "
                               "86400)::bigint FROM ledger.point_lots WHERE tenant_id = $1 "
                               "AND member_id = $2",
                               2, p);
    PQfinish(pg);
    assert_int_equal(days, EXPIRY_DAYS);
    /* 123 yuan spent: the tenant's own Gold, and its price */
    struct quote_wait q = {.member = member};
    assert_true(poll_until(quote_discounted, &q, DEADLINE_MS));
}

static void test_branches(void **state)
{
    struct api_response r = api_call("GET", "/v1/branches", NULL, admin_key, NULL);
    expect_status(&r, 200);
    json_t *list = json_object_get(r.body, "branches");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_str_at(json_array_get(list, 0), "name"), "Flagship");
    api_response_free(&r);
    r = api_call("PATCH", "/v1/branches/hq", "{\"name\":\"Main Street\"}", admin_key, NULL);
    expect_status(&r, 200);
    assert_string_equal(json_str_at(r.body, "name"), "Main Street");
    api_response_free(&r);

    char member[64];
    register_member(member);
    r = api_call("DELETE", "/v1/branches/hq", NULL, admin_key, NULL);
    expect_status(&r, 200);
    assert_true(json_is_string(json_object_get(r.body, "closed_at")));
    api_response_free(&r);
    r = topup(member, TOPUP);
    expect_status(&r, 409);
    assert_string_equal(json_str_at(r.body, "code"), "branch_closed");
    api_response_free(&r);
    r = api_call("PATCH", "/v1/branches/nowhere", "{\"name\":\"N\"}", admin_key, NULL);
    expect_status(&r, 404);
    api_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_platform_key_only),
        cmocka_unit_test(test_template_applied),
        cmocka_unit_test(test_own_settings_read_back),
        cmocka_unit_test(test_settings_applied),
        cmocka_unit_test(test_branches),
    };
    return cmocka_run_group_tests(tests, setup_tenant, NULL);
}
