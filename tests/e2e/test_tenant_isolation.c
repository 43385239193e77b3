/* Tenant isolation: a second tenant ("rival", made here with test-only
 * SQL, its admin key hashed like any other) calls every endpoint for the
 * first tenant's member, operation, key and audit trail. Every answer is
 * 404 or 403 or the rival's own (empty) data, and never holds the demo
 * member's id, phone or name. The scope matrix calls every route of
 * ingest (checked against its route table) with the demo tenant's app key
 * and with a member's session token: the app key reaches only member
 * login, the token only /v1/me and logout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/types.h>

#include "../support/api_client.h"

static char rival_key[80];

struct demo_member {
    char id[64], phone[16], name[64], operation_id[64], key_id[64], idem_key[64];
};
static struct demo_member demo;

static void exec_ok(PGconn *pg, const char *sql, int n, const char *const *p)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
}

/* The rival tenant with its own hq branch (same id as demo's on purpose). */
static void make_rival_tenant(void)
{
    unsigned char raw[24];
    randombytes_buf(raw, sizeof(raw));
    strcpy(rival_key, "tsk_");
    sodium_bin2hex(rival_key + 4, sizeof(rival_key) - 4, raw, sizeof(raw));
    PGconn *pg = test_pg();
    exec_ok(pg,
            "INSERT INTO ingest.tenants (tenant_id, name) VALUES ('rival', 'Rival Chain') "
            "ON CONFLICT DO NOTHING",
            0, NULL);
    exec_ok(pg,
            "INSERT INTO ingest.branches (tenant_id, branch_id, name) VALUES "
            "('rival', 'hq', 'Rival HQ') ON CONFLICT DO NOTHING",
            0, NULL);
    const char *p[1] = {rival_key};
    exec_ok(pg,
            "INSERT INTO ingest.api_keys (key_hash, tenant_id, name, scope) VALUES "
            "(encode(sha256(convert_to($1, 'UTF8')), 'hex'), 'rival', 'rival admin', 'admin')",
            1, p);
    PQfinish(pg);
}

/* A demo member with a top-up (an operation) and a demo pos key. */
static void make_demo_data(void)
{
    char body[256], path[128];
    test_unique_phone(demo.phone);
    snprintf(demo.name, sizeof(demo.name), "Isolated %.10s", demo.phone + 5);
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"phone\":\"%s\",\"branch_id\":\"hq\"}",
             demo.name, demo.phone);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(demo.id, sizeof(demo.id), "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s/topups", demo.id);
    snprintf(demo.idem_key, sizeof(demo.idem_key), "iso-topup-%s", demo.phone);
    r = api_post(path, "{\"amount\":5000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
                 demo.idem_key);
    assert_int_equal(r.status, 201);
    snprintf(demo.operation_id, sizeof(demo.operation_id), "%s",
             json_str_at(r.body, "operation_id"));
    api_response_free(&r);
    r = api_call("POST", "/v1/api-keys",
                 "{\"name\":\"demo till\",\"scope\":\"pos\","
                 "\"branch_id\":\"hq\"}",
                 NULL, NULL);
    assert_int_equal(r.status, 201);
    snprintf(demo.key_id, sizeof(demo.key_id), "%s", json_str_at(r.body, "key_id"));
    api_response_free(&r);
}

static int setup(void **state)
{
    make_rival_tenant();
    make_demo_data();
    return 0;
}

static void assert_no_demo_data(const struct api_response *r)
{
    assert_null(strstr(r->raw, demo.id));
    assert_null(strstr(r->raw, demo.phone));
    assert_null(strstr(r->raw, demo.name));
    assert_null(strstr(r->raw, demo.operation_id));
    assert_null(strstr(r->raw, demo.key_id));
}

struct probe {
    const char *method, *path, *body; /* %M member id, %O operation, %P phone, %K key id */
    long status;
    const char *code;
};

static void expand(char *out, size_t len, const char *tmpl)
{
    size_t n = 0;
    for (const char *t = tmpl; *t && n + 64 < len; t++) {
        const char *v = NULL;
        if (t[0] == '%' && t[1] == 'M')
            v = demo.id;
        else if (t[0] == '%' && t[1] == 'O')
            v = demo.operation_id;
        else if (t[0] == '%' && t[1] == 'P')
            v = demo.phone;
        else if (t[0] == '%' && t[1] == 'K')
            v = demo.key_id;
        else if (t[0] == '%' && t[1] == 'T')
            v = "vip";
        else if (t[0] == '%' && t[1] == 'D')
            v = "probe-device";
        else if (t[0] == '%' && t[1] == 'B')
            v = "branch-1"; /* the demo's; the rival has none of that name */
        else if (t[0] == '%' && t[1] == 'N')
            v = "receipt.top_up"; /* a template name */
        else if (t[0] == '%' && t[1] == 'R')
            v = "course:probe"; /* an entitlement resource */
        else if (t[0] == '%' && t[1] == 'U')
            v = "00000000-0000-7000-8000-00000000c0de"; /* a coupon template id */
        else if (t[0] == '%' && t[1] == 'I')
            v = "00000000-0000-7000-8000-00000000155e"; /* a coupon issue id */
        if (v) {
            n += (size_t)snprintf(out + n, len - n, "%s", v);
            t++;
        } else {
            out[n++] = *t;
        }
    }
    out[n] = '\0';
}

/* Every route of the API, aimed at the demo tenant's things. */
static const struct probe probes[] = {
    {"GET", "/v1/members/%M", NULL, 404, "not_found"},
    {"PATCH", "/v1/members/%M", "{\"name\":\"Rival Rename\"}", 404, "not_found"},
    {"PUT", "/v1/members/%M/tags/rival", NULL, 404, "not_found"},
    {"DELETE", "/v1/members/%M/tags/rival", NULL, 404, "not_found"},
    {"GET", "/v1/members/%M/devices", NULL, 404, "not_found"},
    {"DELETE", "/v1/members/%M/devices/iso-device", NULL, 404, "not_found"},
    {"GET", "/v1/members?phone=%P", NULL, 404, "not_found"},
    {"POST", "/v1/members/%M/topups",
     "{\"amount\":1000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", 404, "not_found"},
    {"POST", "/v1/members/%M/purchases",
     "{\"amount\":1000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"stored_value\"}}", 404,
     "not_found"},
    {"GET", "/v1/operations/%O", NULL, 404, "not_found"},
    {"GET", "/v1/members/%M/ledger", NULL, 404, "not_found"},
    {"GET", "/v1/members/%M/inbox", NULL, 404, "not_found"},
    {"GET", "/v1/members/%M/quote?amount=1000&branch_id=hq", NULL, 404, "not_found"},
    {"POST", "/v1/members/%M/activities", "{\"type\":\"comment\",\"activity_id\":\"probe\"}", 404,
     "not_found"},
    {"POST", "/v1/members/%M/cards",
     "{\"product_id\":\"p1\",\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}", 404,
     "not_found"},
    {"POST", "/v1/members/%M/cards/%O/uses", "{\"branch_id\":\"hq\"}", 404, "not_found"},
    {"POST", "/v1/members/%M/cards/%O/freeze", "{\"days\":3}", 404, "not_found"},
    {"POST", "/v1/members/%M/coupons", "{\"kind\":\"value\",\"value\":100,\"valid_days\":7}", 404,
     "not_found"},
    {"POST", "/v1/members/%M/coupons/%O/redeem", "{\"branch_id\":\"hq\"}", 404, "not_found"},
    {"PATCH", "/v1/branches/%B", "{\"name\":\"renamed by a rival\"}", 404, "not_found"},
    {"DELETE", "/v1/branches/%B", NULL, 404, "not_found"},
    {"POST", "/v1/members/%M/points-adjustments", "{\"points\":100,\"reason\":\"probe\"}", 404,
     "not_found"},
    {"POST", "/v1/members/%M/refunds",
     "{\"kind\":\"stored_value\",\"reason\":\"probe\",\"branch_id\":\"hq\"}", 404, "not_found"},
    {"DELETE", "/v1/api-keys/%K", NULL, 404, "not_found"},
    {"DELETE", "/v1/members/%M/personal-data", NULL, 404, "not_found"},
    {"GET", "/v1/members/%M/consents", NULL, 404, "not_found"},
    {"PUT", "/v1/members/%M/consents",
     "{\"consents\":[{\"channel\":\"sms\",\"purpose\":\"marketing\",\"granted\":true}]}", 404,
     "not_found"},
    {"POST", "/v1/members/%M/inbox/read", "{\"message_ids\":[\"probe\"]}", 404, "not_found"},
    {"POST", "/v1/api-keys", "{\"name\":\"x\",\"scope\":\"pos\",\"branch_id\":\"branch-1\"}", 422,
     "validation_failed"},
    {"POST", "/v1/members", "{\"name\":\"x\",\"phone\":\"13900000000\",\"branch_id\":\"branch-1\"}",
     422, "validation_failed"},
    {"GET", "/v1/members/%M/tier", NULL, 404, "not_found"},
    {"GET", "/v1/members/%M/entitlements?resource=course:probe", NULL, 404, "resource_not_found"},
    {"PUT", "/v1/members/%M/tier-override", "{\"tier\":\"Basic\",\"reason\":\"probe\"}", 404,
     "not_found"},
    {"DELETE", "/v1/members/%M/tier-override", NULL, 404, "not_found"},
    {"POST", "/v1/members/%M/tier-invitations", "{\"tier\":\"Basic\",\"reason\":\"probe\"}", 404,
     "not_found"},
};

static void test_every_endpoint_with_another_tenants_key(void **state)
{
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        char path[256], body[512];
        expand(path, sizeof(path), probes[i].path);
        if (probes[i].body)
            expand(body, sizeof(body), probes[i].body);
        struct api_response r =
            api_call(probes[i].method, path, probes[i].body ? body : NULL, rival_key, NULL);
        if (r.status != probes[i].status)
            fprintf(stderr, "test: %s %s answered %ld: %s\n", probes[i].method, path, r.status,
                    r.raw);
        assert_int_equal(r.status, probes[i].status);
        assert_string_equal(json_str_at(r.body, "code"), probes[i].code);
        assert_no_demo_data(&r);
        api_response_free(&r);
    }
}

/* ------------------------------------------------ the scope matrix */
/* Every route of ingest with a body that would be valid for an admin, and
 * what an app key and a member token (of another member than %M) get.
 * 0 for the member token: its own routes, checked separately. */
struct route_probe {
    const char *method, *path, *body;
    long app_status;
    const char *app_code;
    long member_status;
};

#define TIER_LADDER_PROBE                                                                          \
    "{\"levels\":[{\"name\":\"Basic\",\"rank\":1,\"thresholds\":{\"lifetime\":1},"                 \
    "\"benefits\":{\"discount_bp\":9000}}]}"
#define APP_403 403, "forbidden"
#define TOK_401 401
static const struct route_probe routes[] = {
    {"POST", "/v1/members", "{\"name\":\"x\",\"phone\":\"13900000001\",\"branch_id\":\"hq\"}",
     APP_403, TOK_401},
    {"GET", "/v1/members?phone=%P", NULL, APP_403, TOK_401},
    {"GET", "/v1/members/%M", NULL, APP_403, TOK_401},
    {"PATCH", "/v1/members/%M", "{\"name\":\"x\"}", APP_403, TOK_401},
    {"PUT", "/v1/members/%M/tags/%T", NULL, APP_403, TOK_401},
    {"DELETE", "/v1/members/%M/tags/%T", NULL, APP_403, TOK_401},
    {"GET", "/v1/members/%M/devices", NULL, APP_403, TOK_401},
    {"DELETE", "/v1/members/%M/devices/%D", NULL, APP_403, TOK_401},
    {"DELETE", "/v1/members/%M/personal-data", NULL, APP_403, TOK_401},
    {"POST", "/v1/members/%M/topups",
     "{\"amount\":1000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", APP_403, TOK_401},
    {"POST", "/v1/members/%M/purchases",
     "{\"amount\":1000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}", APP_403, TOK_401},
    {"GET", "/v1/operations/%O", NULL, APP_403, TOK_401},
    {"POST", "/v1/api-keys", "{\"name\":\"x\",\"scope\":\"admin\"}", APP_403, TOK_401},
    {"GET", "/v1/api-keys", NULL, APP_403, TOK_401},
    {"DELETE", "/v1/api-keys/%K", NULL, APP_403, TOK_401},
    {"POST", "/v1/branches", "{\"branch_id\":\"app-made\",\"name\":\"x\"}", APP_403, TOK_401},
    {"GET", "/v1/audit-log", NULL, APP_403, TOK_401},
    {"GET", "/v1/branches", NULL, APP_403, TOK_401},
    {"PATCH", "/v1/branches/%B", "{\"name\":\"x\"}", APP_403, TOK_401},
    {"DELETE", "/v1/branches/%B", NULL, APP_403, TOK_401},
    /* not a platform key: 403 for both (the token's, below) */
    {"POST", "/v1/tenants",
     "{\"name\":\"x\",\"template\":\"retail\",\"branch\":{\"branch_id\":\"hq\",\"name\":\"x\"}}",
     APP_403, 0},
    {"GET", "/v1/config/topup-bonus", NULL, APP_403, TOK_401},
    {"PUT", "/v1/config/topup-bonus", "{\"steps\":[]}", APP_403, TOK_401},
    {"GET", "/v1/config/points-policy", NULL, APP_403, TOK_401},
    {"PUT", "/v1/config/points-policy", "{\"expiry\":{\"kind\":\"never\"}}", APP_403, TOK_401},
    {"GET", "/v1/config/refund-fees", NULL, APP_403, TOK_401},
    {"PUT", "/v1/config/refund-fees", "{\"fee_bp\":0}", APP_403, TOK_401},
    {"GET", "/v1/config/prepaid", NULL, APP_403, TOK_401},
    {"PUT", "/v1/config/prepaid", "{\"alert_threshold\":0}", APP_403, TOK_401},
    {"GET", "/v1/config/card-limits", NULL, APP_403, TOK_401},
    {"POST", "/v1/auth/sms-codes", "{\"phone\":\"%P\"}", 202, NULL, TOK_401},
    {"POST", "/v1/auth/sessions", "{\"phone\":\"%P\",\"code\":\"000000\",\"device_id\":\"m\"}", 401,
     "invalid_code", TOK_401},
    {"DELETE", "/v1/auth/sessions", NULL, 401, "unauthorized", 0},
    {"GET", "/v1/me", NULL, 401, "unauthorized", 0},
    {"PUT", "/v1/me/password", "{\"password\":\"x\"}", 401, "unauthorized", 0},
    {"POST", "/v1/me/activities", "{\"type\":\"comment\",\"activity_id\":\"probe\"}", 401,
     "unauthorized", 0},
    {"POST", "/v1/products",
     "{\"kind\":\"count\",\"name\":\"x\",\"price\":1,\"uses\":1,\"validity_days\":1}", APP_403,
     TOK_401},
    {"PUT", "/v1/config/card-limits", "{\"daily_uses_max\":3}", APP_403, TOK_401},
    {"PUT", "/v1/config/earning-rules",
     "{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1}}", APP_403, TOK_401},
    {"GET", "/v1/config/activity-rules", NULL, APP_403, TOK_401},
    {"PUT", "/v1/config/activity-rules", "{}", APP_403, TOK_401},
    {"POST", "/v1/members/%M/activities", "{\"type\":\"comment\",\"activity_id\":\"probe\"}",
     APP_403, TOK_401},
    {"POST", "/v1/members/%M/cards",
     "{\"product_id\":\"p1\",\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}", APP_403,
     TOK_401},
    {"POST", "/v1/members/%M/cards/%O/renewals",
     "{\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}", APP_403, TOK_401},
    {"POST", "/v1/members/%M/cards/%O/uses", "{\"branch_id\":\"hq\"}", APP_403, TOK_401},
    {"POST", "/v1/members/%M/cards/%O/freeze", "{\"days\":3}", APP_403, TOK_401},
    {"POST", "/v1/members/%M/coupons", "{\"kind\":\"value\",\"value\":100,\"valid_days\":7}",
     APP_403, TOK_401},
    {"POST", "/v1/members/%M/coupons/%O/redeem", "{\"branch_id\":\"hq\"}", APP_403, TOK_401},
    {"GET", "/v1/reports/card-liability", NULL, APP_403, TOK_401},
    {"POST", "/v1/events:batch", "{\"type\":\"topup\"}", APP_403, TOK_401},
    {"POST", "/v1/members/%M/points-adjustments", "{\"points\":100,\"reason\":\"probe\"}", APP_403,
     TOK_401},
    {"POST", "/v1/members/%M/refunds",
     "{\"kind\":\"stored_value\",\"reason\":\"probe\",\"branch_id\":\"hq\"}", APP_403, TOK_401},
    {"GET", "/v1/members/%M/ledger", NULL, APP_403, TOK_401},
    {"GET", "/v1/members/%M/quote?amount=1000&branch_id=hq", NULL, APP_403, TOK_401},
    {"GET", "/v1/reports/prepaid-liability", NULL, APP_403, TOK_401},
    {"PUT", "/v1/config/referrals",
     "{\"lock_days\":7,\"referrer\":{\"points\":1},\"referee\":{\"points\":1}}", APP_403, TOK_401},
    {"GET", "/v1/config/referrals", NULL, APP_403, TOK_401},
    {"POST", "/v1/rewards", "{\"name\":\"x\",\"kind\":\"gift\",\"points_price\":1}", APP_403,
     TOK_401},
    {"GET", "/v1/rewards", NULL, APP_403, TOK_401},
    {"POST", "/v1/coupon-templates",
     "{\"name\":\"x\",\"kind\":\"value\",\"value\":100,\"valid_days\":7}", APP_403, TOK_401},
    {"GET", "/v1/coupon-templates", NULL, APP_403, TOK_401},
    {"GET", "/v1/coupon-templates/%U", NULL, APP_403, TOK_401},
    {"POST", "/v1/coupon-templates/%U/issues", "{\"filter\":{}}", APP_403, TOK_401},
    {"GET", "/v1/coupon-templates/%U/issues/%I", NULL, APP_403, TOK_401},
    {"POST", "/v1/coupon-templates/%U/claims", "{}", 401, "unauthorized", 0},
    {"POST", "/v1/members/%M/redemptions", "{\"reward_id\":\"r1\"}", APP_403, TOK_401},
    {"POST", "/v1/me/redemptions", "{\"reward_id\":\"r1\"}", 401, "unauthorized", 0},
    {"GET", "/v1/config/tiers", NULL, APP_403, TOK_401},
    {"PUT", "/v1/config/tiers", TIER_LADDER_PROBE, APP_403, TOK_401},
    {"POST", "/v1/config/tiers:dry-run", TIER_LADDER_PROBE, APP_403, TOK_401},
    {"PUT", "/v1/members/%M/tier-override", "{\"tier\":\"Basic\",\"reason\":\"probe\"}", APP_403,
     TOK_401},
    {"DELETE", "/v1/members/%M/tier-override", NULL, APP_403, TOK_401},
    {"POST", "/v1/members/%M/tier-invitations", "{\"tier\":\"Basic\",\"reason\":\"probe\"}",
     APP_403, TOK_401},
    {"GET", "/v1/members/%M/tier", NULL, APP_403, TOK_401},
    {"GET", "/v1/me/tier", NULL, 401, "unauthorized", 0},
    {"PUT", "/v1/resources/%R", "{\"rules\":[{\"kind\":\"purchase\",\"skus\":[\"x\"]}]}", APP_403,
     TOK_401},
    {"GET", "/v1/resources/%R", NULL, APP_403, TOK_401},
    {"GET", "/v1/members/%M/entitlements?resource=course:probe", NULL, APP_403, TOK_401},
    {"GET", "/v1/me/entitlements?resource=course:probe", NULL, 401, "unauthorized", 0},
    {"GET", "/v1/members/%M/consents", NULL, APP_403, TOK_401},
    {"PUT", "/v1/members/%M/consents",
     "{\"consents\":[{\"channel\":\"email\",\"purpose\":\"marketing\",\"granted\":true}]}", APP_403,
     TOK_401},
    {"POST", "/v1/members/%M/inbox/read", "{\"message_ids\":[\"probe\"]}", APP_403, TOK_401},
    {"GET", "/v1/me/consents", NULL, 401, "unauthorized", 0},
    {"PUT", "/v1/me/consents",
     "{\"consents\":[{\"channel\":\"email\",\"purpose\":\"marketing\",\"granted\":true}]}", 401,
     "unauthorized", 0},
    {"POST", "/v1/me/inbox/read", "{\"message_ids\":[\"probe\"]}", 401, "unauthorized", 0},
    {"GET", "/v1/members/%M/inbox", NULL, APP_403, TOK_401},
    {"GET", "/v1/me/inbox", NULL, 401, "unauthorized", 0},
    {"PUT", "/v1/templates/%N", "{\"locale\":\"en\",\"subject\":\"x\",\"body\":\"y\"}", APP_403,
     TOK_401},
    {"GET", "/v1/templates/%N", NULL, APP_403, TOK_401},
    {"PUT", "/v1/config/notifications",
     "{\"time_zone\":\"UTC\",\"quiet_start\":\"21:00\",\"quiet_end\":\"08:00\","
     "\"marketing_cap_per_week\":3,\"default_locale\":\"en\"}",
     APP_403, TOK_401},
    {"GET", "/v1/config/notifications", NULL, APP_403, TOK_401},
};
#define ROUTES_COUNT (sizeof(routes) / sizeof(routes[0]))

/* The pattern of a probe's path as ingest's route table spells it. */
static void route_pattern(const char *path, char *out, size_t len)
{
    static const struct {
        const char *from, *to;
    } names[] = {{"%M", "{member_id}"}, {"%O", "{operation_id}"}, {"%K", "{key_id}"},
                 {"%T", "{tag}"},       {"%D", "{device_id}"},    {"%B", "{branch_id}"},
                 {"%N", "{name}"},      {"%R", "{resource}"},     {"%U", "{template_id}"},
                 {"%I", "{issue_id}"}};
    size_t n = 0;
    for (const char *p = path; *p && *p != '?' && n + 16 < len; p++) {
        const char *to = NULL;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && p[0] == '%'; i++)
            if (p[1] == names[i].from[1])
                to = names[i].to;
        if (to) {
            bool card = n >= 7 && strncmp(out + n - 7, "/cards/", 7) == 0;
            bool coupon = n >= 9 && strncmp(out + n - 9, "/coupons/", 9) == 0;
            to = card ? "{card_id}" : coupon ? "{coupon_id}" : to;
            n += (size_t)snprintf(out + n, len - n, "%s", to);
            p++;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

/* Every {"METHOD", "/v1/..."} line of services/ingest/main.c has a probe,
 * so a new route cannot skip the matrix. */
static void test_matrix_covers_every_route(void **state)
{
    FILE *f = fopen("services/ingest/main.c", "r");
    assert_non_null(f);
    char line[512], method[16], path[256], handler[64];
    int seen = 0;
    while (fgets(line, sizeof(line), f)) {
        /* route table lines only: {"METHOD", "/v1/...", route_...}; the
         * per-route body limits name the same paths with a number */
        if (sscanf(line, " {\"%15[A-Z]\", \"%255[^\"]\", %63[a-z_]", method, path, handler) != 3 ||
            strncmp(path, "/v1/", 4) != 0 || strncmp(handler, "route_", 6) != 0)
            continue;
        seen++;
        bool found = false;
        for (size_t i = 0; i < ROUTES_COUNT && !found; i++) {
            char pattern[256];
            route_pattern(routes[i].path, pattern, sizeof(pattern));
            found = strcmp(routes[i].method, method) == 0 && strcmp(pattern, path) == 0;
        }
        if (!found)
            fprintf(stderr, "test: route %s %s has no probe in the scope matrix\n", method, path);
        assert_true(found);
    }
    fclose(f);
    assert_int_equal(seen, (int)ROUTES_COUNT);
}

static void expect_probe(const char *who, const char *method, const char *path, const char *body,
                         const char *key, long status, const char *code)
{
    struct api_response r = api_call(method, path, body, key, NULL);
    if (r.status != status)
        fprintf(stderr, "test: %s: %s %s answered %ld, not %ld: %s\n", who, method, path, r.status,
                status, r.raw);
    assert_int_equal(r.status, status);
    if (code)
        assert_string_equal(json_str_at(r.body, "code"), code);
    assert_no_demo_data(&r);
    api_response_free(&r);
}

/* A session token for a fresh demo member, through an app key and a
 * password set with test-only SQL (argon2id at its cheapest). */
static void member_token(const char *app_key, char member[64], char token[160])
{
    char phone[16], body[256], hash[crypto_pwhash_STRBYTES];
    test_unique_phone(phone);
    snprintf(body, sizeof(body),
             "{\"name\":\"Token Holder\",\"phone\":\"%s\",\"branch_id\":\"hq\"}", phone);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(member, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
    assert_int_equal(crypto_pwhash_str(hash, "matrix-pass-1", 13, crypto_pwhash_OPSLIMIT_MIN,
                                       crypto_pwhash_MEMLIMIT_MIN),
                     0);
    PGconn *pg = test_pg();
    const char *p[2] = {member, hash};
    exec_ok(pg,
            "INSERT INTO ingest.member_credentials (tenant_id, member_id, password_hash) VALUES "
            "('demo', $1, $2)",
            2, p);
    PQfinish(pg);
    snprintf(body, sizeof(body),
             "{\"phone\":\"%s\",\"password\":\"matrix-pass-1\",\"device_id\":\"matrix\"}", phone);
    r = api_call("POST", "/v1/auth/sessions", body, app_key, NULL);
    assert_int_equal(r.status, 201);
    snprintf(token, 160, "%s", json_str_at(r.body, "token"));
    api_response_free(&r);
}

/* An app key is publishable: it reaches member login and nothing else (no
 * money, no member, no admin route); a member token reaches the member's
 * own routes only. Neither ever sees the demo member. */
static void test_app_key_and_member_token_on_every_route(void **state)
{
    const char *app_key = test_app_key();
    char member[64], token[160];
    member_token(app_key, member, token);
    for (size_t i = 0; i < ROUTES_COUNT; i++) {
        char path[256], body[512];
        expand(path, sizeof(path), routes[i].path);
        if (routes[i].body)
            expand(body, sizeof(body), routes[i].body);
        const char *b = routes[i].body ? body : NULL;
        expect_probe("app key", routes[i].method, path, b, app_key, routes[i].app_status,
                     routes[i].app_code);
        if (routes[i].member_status)
            expect_probe("member token", routes[i].method, path, b, token, routes[i].member_status,
                         "unauthorized");
    }
    expect_probe("member token", "POST", "/v1/tenants",
                 "{\"name\":\"x\",\"template\":\"retail\",\"branch\":{\"branch_id\":\"hq\","
                 "\"name\":\"x\"}}",
                 token, 403, "forbidden");
    /* the token's own routes: its member, never another */
    struct api_response r = api_call("GET", "/v1/me", NULL, token, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "member_id"), member);
    assert_no_demo_data(&r);
    api_response_free(&r);
    expect_probe("member token", "PUT", "/v1/me/password", "{\"password\":\"short\"}", token, 422,
                 "validation_failed");
    expect_probe("member token", "POST", "/v1/me/redemptions", "{\"reward_id\":\"no-such\"}", token,
                 422, "validation_failed");
    r = api_call("GET", "/v1/me/consents", NULL, token, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "member_id"), member);
    assert_no_demo_data(&r);
    api_response_free(&r);
    /* admin and pos keys are not app keys: the login routes refuse them */
    expect_probe("admin key", "POST", "/v1/auth/sms-codes", "{\"phone\":\"13900000002\"}", NULL,
                 403, "forbidden");
    /* another tenant's app key cannot log into a demo member */
    r = api_call("POST", "/v1/api-keys", "{\"name\":\"rival app\",\"scope\":\"app\"}", rival_key,
                 NULL);
    assert_int_equal(r.status, 201);
    char rival_app[128];
    snprintf(rival_app, sizeof(rival_app), "%s", json_str_at(r.body, "key"));
    api_response_free(&r);
    char body[256];
    snprintf(body, sizeof(body),
             "{\"phone\":\"%s\",\"password\":\"matrix-pass-1\",\"device_id\":\"matrix\"}",
             demo.phone);
    expect_probe("rival app key", "POST", "/v1/auth/sessions", body, rival_app, 401,
                 "invalid_credentials");
    expect_probe("member token", "DELETE", "/v1/auth/sessions", NULL, token, 204, NULL);
    expect_probe("ended token", "GET", "/v1/me", NULL, token, 401, "unauthorized");
}

/* The batch upload checks every line's member in the caller's tenant: a
 * line for the demo member, with the demo's own Idempotency-Key, is a
 * per-line 404 and replays nothing of demo's. */
static void test_batch_line_for_another_tenants_member(void **state)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"type\":\"topup\",\"member_id\":\"%s\",\"idempotency_key\":\"%s\","
             "\"amount\":5000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}\n",
             demo.id, demo.idem_key);
    const char *headers[] = {"Content-Type: application/x-ndjson", NULL};
    struct api_response r = api_call("POST", "/v1/events:batch", body, rival_key, headers);
    assert_int_equal(r.status, 200);
    json_t *line = json_array_get(json_object_get(r.body, "results"), 0);
    assert_int_equal(json_int_at(line, "status"), 404);
    assert_string_equal(json_str_at(line, "result.code"), "not_found");
    /* (the line's own key, which holds the phone, is echoed: nothing else) */
    assert_null(strstr(r.raw, demo.operation_id));
    assert_null(strstr(r.raw, demo.name));
    assert_null(strstr(r.raw, "\"balances\""));
    api_response_free(&r);
}

/* The tenant's outstanding prepaid liability (principal and bonus). */
static int64_t liability(const char *key)
{
    struct api_response r = api_call("GET", "/v1/reports/prepaid-liability", NULL, key, NULL);
    assert_int_equal(r.status, 200);
    int64_t v = json_int_at(r.body, "tenant.outstanding");
    api_response_free(&r);
    return v;
}

/* Lists and reports show only the caller's tenant. */
static void test_lists_hold_only_own_tenant(void **state)
{
    const char *lists[] = {"/v1/api-keys", "/v1/audit-log", "/v1/reports/prepaid-liability",
                           "/v1/reports/card-liability"};
    for (size_t i = 0; i < 4; i++) {
        struct api_response r = api_call("GET", lists[i], NULL, rival_key, NULL);
        assert_int_equal(r.status, 200);
        assert_no_demo_data(&r);
        assert_null(strstr(r.raw, "demo admin"));
        assert_null(strstr(r.raw, "\"demo\""));
        api_response_free(&r);
    }
    /* demo's money moves; the rival's liability does not */
    int64_t rival_before = liability(rival_key), demo_before = liability(NULL);
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s/topups", demo.id);
    struct api_response r =
        api_post(path, "{\"amount\":7000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    assert_int_equal(liability(rival_key), rival_before);
    assert_int_equal(liability(NULL), demo_before + 7000);
}

/* The same phone, the same branch id and the same Idempotency-Key mean
 * nothing across tenants: the rival gets its own answers, not demo's. */
static void test_shared_names_do_not_cross(void **state)
{
    char body[256], path[128];
    snprintf(body, sizeof(body),
             "{\"name\":\"Rival Member\",\"phone\":\"%s\",\"branch_id\":\"hq\"}", demo.phone);
    struct api_response r = api_call("POST", "/v1/members", body, rival_key, NULL);
    assert_int_equal(r.status, 201); /* not duplicate_phone: the index is keyed per tenant */
    char rival_member[64];
    snprintf(rival_member, sizeof(rival_member), "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members?phone=%s", demo.phone);
    r = api_call("GET", path, NULL, rival_key, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "member_id"), rival_member);
    assert_string_equal(json_str_at(r.body, "name"), "Rival Member");
    api_response_free(&r);

    char idem_header[96];
    snprintf(idem_header, sizeof(idem_header), "Idempotency-Key: %s", demo.idem_key);
    const char *headers[] = {idem_header, NULL};
    snprintf(path, sizeof(path), "/v1/members/%s/topups", rival_member);
    r = api_call("POST", path, "{\"amount\":5000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
                 rival_key, headers);
    assert_int_equal(r.status, 201);
    assert_string_not_equal(json_str_at(r.body, "operation_id"), demo.operation_id);
    assert_no_demo_data(&r);
    api_response_free(&r);

    /* and the demo member is untouched by all of it */
    snprintf(path, sizeof(path), "/v1/members/%s", demo.id);
    r = api_get(path);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "name"), demo.name);
    assert_int_equal(json_int_at(r.body, "balances.stored_value"), 5000 + 7000);
    api_response_free(&r);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_endpoint_with_another_tenants_key),
        cmocka_unit_test(test_batch_line_for_another_tenants_member),
        cmocka_unit_test(test_lists_hold_only_own_tenant),
        cmocka_unit_test(test_shared_names_do_not_cross),
        cmocka_unit_test(test_matrix_covers_every_route),
        cmocka_unit_test(test_app_key_and_member_token_on_every_route),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
