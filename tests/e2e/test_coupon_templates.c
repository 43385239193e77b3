/* Coupons as campaigns end to end (issue 12, docs/coupons.md):
 *
 *  - templates: bad ones refused (422), a good one created, read and
 *    listed;
 *  - a bulk issue to a filter in a tenant of its own gives exactly the
 *    budget (3 of 5 members: issued 3, over_budget 2), a second issue to a
 *    list gives nobody a second coupon (skipped: the per-member limit) and
 *    counts an unknown id as skipped; the ledger holds exactly 3 coupons
 *    and each member got one coupon.issued message in the inbox;
 *  - redeemed in a purchase: the minimum spend and the free item are
 *    honoured (409 under them, the discount when met);
 *  - claims: a member racing 6 claims of a public template with a limit
 *    of 2 gets exactly 2; a template not public is refused;
 *  - a notice owed after a crash: a grant left issued with its notice not
 *    yet sent (what a crash between the settle and the send leaves) is
 *    noticed by a later round: the message arrives and noticed_at is set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"
#include "../support/expect.h"
#include "../support/login_code.h"
#include "../support/sql_tenant.h"
#include "../support/sql_wait.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"

#define DEADLINE_MS 30000
#define MEMBERS     5
#define BUDGET      3
#define RACERS      6
#define LIMIT       2

static char tenant_id[48], admin_key[64];

static void member_make(const char *key, char id[64])
{
    char phone[16], body[160];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"C\",\"phone\":\"%s\",\"branch_id\":\"hq\"}", phone);
    struct api_response r = api_call("POST", "/v1/members", body, key, NULL);
    api_expect_status(&r, 201);
    snprintf(id, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

static void template_make(const char *key, const char *body, char id[64])
{
    struct api_response r = api_call("POST", "/v1/coupon-templates", body, key, NULL);
    api_expect_status(&r, 201);
    snprintf(id, 64, "%s", json_str_at(r.body, "template_id"));
    api_response_free(&r);
}

/* Issues template to body; waits for the issue to be done; its JSON. */
static json_t *issue_and_wait(const char *key, const char *template_id, const char *body)
{
    char path[200];
    snprintf(path, sizeof(path), "/v1/coupon-templates/%s/issues", template_id);
    struct api_response r = api_call("POST", path, body, key, NULL);
    api_expect_status(&r, 202);
    char issue[64];
    snprintf(issue, sizeof(issue), "%s", json_str_at(r.body, "issue_id"));
    api_response_free(&r);
    sql_wait_for(
        "SELECT count(*) FROM ingest.coupon_issues WHERE issue_id = $1 AND status = 'done'", issue,
        NULL, 1, "the issue to finish");
    snprintf(path, sizeof(path), "/v1/coupon-templates/%s/issues/%s", template_id, issue);
    r = api_call("GET", path, NULL, key, NULL);
    api_expect_status(&r, 200);
    json_t *out = json_incref(r.body);
    api_response_free(&r);
    return out;
}

#define ISSUED_IN_LEDGER                                                                           \
    "SELECT count(*) FROM ingest.coupon_grants g JOIN ledger.read_coupons c "                      \
    "ON c.tenant_id = g.tenant_id AND c.coupon_id = g.coupon_id WHERE g.template_id = $1"

/* ------------------------------------------------------------ tests */
static void test_templates(void **state)
{
    (void)state;
    api_expect_problem(api_call("POST", "/v1/coupon-templates",
                                "{\"name\":\"X\",\"kind\":\"value\",\"valid_days\":30}", admin_key,
                                NULL),
                       422, "validation_failed"); /* no value */
    api_expect_problem(api_call("POST", "/v1/coupon-templates",
                                "{\"name\":\"X\",\"kind\":\"percent\",\"percent_bp\":1000}",
                                admin_key, NULL),
                       422, "validation_failed"); /* no validity */
    api_expect_problem(api_call("POST", "/v1/coupon-templates",
                                "{\"name\":\"X\",\"kind\":\"free_item\",\"free_sku\":\"latte\","
                                "\"valid_days\":3,\"valid_to\":\"2030-01-01T00:00:00Z\"}",
                                admin_key, NULL),
                       422, "validation_failed"); /* both validities */
    char id[64], path[120];
    template_make(admin_key,
                  "{\"name\":\"Autumn\",\"kind\":\"percent\",\"percent_bp\":1500,"
                  "\"valid_from\":\"2026-01-01T00:00:00Z\",\"valid_to\":\"2036-01-01T00:00:00Z\","
                  "\"total_count\":10,\"per_member_limit\":2,\"public\":true}",
                  id);
    snprintf(path, sizeof(path), "/v1/coupon-templates/%s", id);
    struct api_response r = api_call("GET", path, NULL, admin_key, NULL);
    api_expect_status(&r, 200);
    assert_int_equal(json_int_at(r.body, "percent_bp"), 1500);
    assert_int_equal(json_int_at(r.body, "total_count"), 10);
    assert_string_equal(json_str_at(r.body, "valid_to"), "2036-01-01T00:00:00Z");
    assert_true(json_is_true(json_object_get(r.body, "public")));
    api_response_free(&r);
    r = api_call("GET", "/v1/coupon-templates", NULL, admin_key, NULL);
    api_expect_status(&r, 200);
    assert_non_null(strstr(r.raw, id));
    api_response_free(&r);
    api_expect_problem(api_call("GET", "/v1/coupon-templates/00000000-0000-7000-8000-000000000000",
                                NULL, admin_key, NULL),
                       404, "coupon_template_not_found");
}

static void test_bulk_issue_within_budget(void **state)
{
    (void)state;
    char members[MEMBERS][64], tpl[64], body[400];
    for (int i = 0; i < MEMBERS; i++)
        member_make(admin_key, members[i]);
    snprintf(body, sizeof(body),
             "{\"name\":\"Ten off\",\"kind\":\"value\",\"value\":1000,\"valid_days\":30,"
             "\"total_count\":%d}",
             BUDGET);
    template_make(admin_key, body, tpl);
    /* nobody registered before 2001, nobody of a tier the tenant lacks */
    json_t *none =
        issue_and_wait(admin_key, tpl, "{\"filter\":{\"registered_to\":\"2001-01-01T00:00:00Z\"}}");
    assert_int_equal(json_int_at(none, "issued"), 0);
    json_decref(none);
    none = issue_and_wait(admin_key, tpl, "{\"filter\":{\"tier\":\"Platinum\"}}");
    assert_int_equal(json_int_at(none, "issued"), 0);
    json_decref(none);
    json_t *all = issue_and_wait(
        admin_key, tpl,
        "{\"filter\":{\"branch_id\":\"hq\",\"registered_from\":\"2020-01-01T00:00:00Z\"}}");
    assert_int_equal(json_int_at(all, "issued"), BUDGET);
    assert_int_equal(json_int_at(all, "over_budget"), MEMBERS - BUDGET);
    assert_int_equal(json_int_at(all, "skipped"), 0);
    json_decref(all);
    /* again to a list: the first three are at their limit of one, the
     * others over the budget, the unknown id skipped */
    snprintf(body, sizeof(body),
             "{\"member_ids\":[\"%s\",\"%s\",\"00000000-0000-7000-8000-000000000001\"]}",
             members[0], members[4]);
    json_t *again = issue_and_wait(admin_key, tpl, body);
    assert_int_equal(json_int_at(again, "issued"), 0);
    assert_int_equal(json_int_at(again, "skipped") + json_int_at(again, "over_budget"), 3);
    json_decref(again);
    sql_wait_for(ISSUED_IN_LEDGER, tpl, NULL, BUDGET, "the ledger's coupons");
    assert_int_equal(sql_int_of("SELECT issued_count FROM ingest.coupon_templates "
                                "WHERE template_id = $1",
                                tpl, NULL),
                     BUDGET);
    assert_int_equal(sql_int_of("SELECT count(DISTINCT member_id) FROM ingest.coupon_grants "
                                "WHERE template_id = $1",
                                tpl, NULL),
                     BUDGET);
    /* each member given one was told once */
    sql_wait_for("SELECT count(*) FROM notification.read_inbox i JOIN ingest.coupon_grants g "
                 "ON g.tenant_id = i.tenant_id AND i.request_id = 'coupon.issued:' || g.coupon_id "
                 "WHERE g.template_id = $1 AND i.template = 'coupon.issued'",
                 tpl, NULL, BUDGET, "the coupon.issued messages");
}

/* The coupon id one member was given from template. */
static void coupon_of(const char *tpl, const char *member, char out[64])
{
    sql_wait_for(
        "SELECT count(*) FROM ingest.coupon_grants WHERE template_id = $1 AND member_id = $2 "
        "AND status = 'issued'",
        tpl, member, 1, "the coupon to be issued");
    PGconn *pg = test_pg();
    const char *p[2] = {tpl, member};
    PGresult *res = PQexecParams(pg,
                                 "SELECT coupon_id FROM ingest.coupon_grants WHERE template_id = "
                                 "$1 AND member_id = $2",
                                 2, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQntuples(res), 1);
    snprintf(out, 64, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(pg);
}

static struct api_response buy(const char *member, const char *coupon, int64_t amount,
                               const char *items)
{
    char path[160], body[600];
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", member);
    snprintf(body, sizeof(body),
             "{\"amount\":%lld,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"},"
             "\"coupon_id\":\"%s\"%s}",
             (long long)amount, coupon, items ? items : "");
    return api_call("POST", path, body, admin_key, NULL);
}

static void test_min_spend_and_free_item(void **state)
{
    (void)state;
    char member[64], spend[64], item[64], coupon[64], body[200];
    member_make(admin_key, member);
    template_make(admin_key,
                  "{\"name\":\"10 off 50\",\"kind\":\"value\",\"value\":1000,"
                  "\"min_spend\":5000,\"valid_days\":7}",
                  spend);
    template_make(admin_key,
                  "{\"name\":\"Free latte\",\"kind\":\"free_item\",\"free_sku\":\"latte\","
                  "\"valid_days\":7}",
                  item);
    snprintf(body, sizeof(body), "{\"member_ids\":[\"%s\"]}", member);
    json_decref(issue_and_wait(admin_key, spend, body));
    json_decref(issue_and_wait(admin_key, item, body));
    coupon_of(spend, member, coupon);
    api_expect_problem(buy(member, coupon, 4999, NULL), 409, "coupon_min_spend_not_met");
    struct api_response r = buy(member, coupon, 6000, NULL);
    api_expect_status(&r, 201);
    assert_int_equal(json_int_at(r.body, "discount_applied"), 1000);
    api_response_free(&r);
    coupon_of(item, member, coupon);
    api_expect_problem(buy(member, coupon, 3000,
                           ",\"items\":[{\"sku\":\"cake\",\"category\":\"food\",\"quantity\":1,"
                           "\"unit_price\":3000}]"),
                       409, "coupon_not_applicable");
    r = buy(member, coupon, 4800,
            ",\"items\":[{\"sku\":\"cake\",\"category\":\"food\",\"quantity\":1,"
            "\"unit_price\":3000},{\"sku\":\"latte\",\"category\":\"drink\",\"quantity\":1,"
            "\"unit_price\":1800}]");
    api_expect_status(&r, 201);
    assert_int_equal(json_int_at(r.body, "discount_applied"), 1800);
    api_response_free(&r);
}

/* ------------------------------------------------------------ claims */
struct code_seen {
    const char *member;
    char code[16];
};

static void on_code(void *ctx, const rd_kafka_message_t *m)
{
    struct code_seen *s = ctx;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    struct login_code lc;
    if (env && strcmp(env->member_id, s->member) == 0 && login_code_of(env, &lc))
        snprintf(s->code, sizeof(s->code), "%s", lc.code);
    envelope_free(env);
}

static bool code_sent(void *arg)
{
    struct code_seen *s = arg;
    return topic_read_all(TOPIC_NOTIFY_REQUESTS, on_code, s) >= 0 && s->code[0];
}

/* A member of the demo tenant logged in by SMS code: its session token. */
static void member_session(char member[64], char token[200])
{
    char phone[16], body[200];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"App\",\"phone\":\"%s\",\"branch_id\":\"hq\"}", phone);
    struct api_response r = api_post("/v1/members", body, NULL);
    api_expect_status(&r, 201);
    snprintf(member, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
    snprintf(body, sizeof(body), "{\"phone\":\"%s\"}", phone);
    r = api_app_post("/v1/auth/sms-codes", body);
    api_expect_status(&r, 202);
    api_response_free(&r);
    struct code_seen seen = {member, ""};
    assert_true(poll_until(code_sent, &seen, DEADLINE_MS));
    snprintf(body, sizeof(body), "{\"phone\":\"%s\",\"code\":\"%s\",\"device_id\":\"d1\"}", phone,
             seen.code);
    r = api_app_post("/v1/auth/sessions", body);
    api_expect_status(&r, 201);
    snprintf(token, 200, "%s", json_str_at(r.body, "token"));
    api_response_free(&r);
}

struct racer {
    const char *path, *token;
    long status;
    char code[64];
};

static void *claim_racer(void *arg)
{
    struct racer *c = arg;
    struct api_response r = api_call("POST", c->path, "{}", c->token, NULL);
    c->status = r.status;
    if (r.body && json_object_get(r.body, "code"))
        snprintf(c->code, sizeof(c->code), "%s", json_str_at(r.body, "code"));
    api_response_free(&r);
    return NULL;
}

static void test_claims_respect_the_limit(void **state)
{
    (void)state;
    char member[64], token[200], tpl[64], closed[64], path[200], body[200];
    member_session(member, token);
    snprintf(body, sizeof(body),
             "{\"name\":\"Claim me\",\"kind\":\"value\",\"value\":500,\"valid_days\":7,"
             "\"per_member_limit\":%d,\"public\":true}",
             LIMIT);
    template_make(NULL, body, tpl);
    template_make(NULL,
                  "{\"name\":\"Staff only\",\"kind\":\"value\",\"value\":500,\"valid_days\":7}",
                  closed);
    snprintf(path, sizeof(path), "/v1/coupon-templates/%s/claims", closed);
    api_expect_problem(api_call("POST", path, "{}", token, NULL), 409,
                       "coupon_template_not_claimable");
    snprintf(path, sizeof(path), "/v1/coupon-templates/%s/claims", tpl);
    struct racer racers[RACERS];
    pthread_t threads[RACERS];
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (struct racer){.path = path, .token = token};
        assert_int_equal(pthread_create(&threads[i], NULL, claim_racer, &racers[i]), 0);
    }
    int won = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(threads[i], NULL);
        if (racers[i].status == 201)
            won++;
        else
            assert_string_equal(racers[i].code, "coupon_limit_reached");
    }
    assert_int_equal(won, LIMIT);
    sql_wait_for(ISSUED_IN_LEDGER, tpl, NULL, LIMIT, "the claimed coupons in the ledger");
}

/* A crash right after the settle committed leaves a grant issued with its
 * notice owed and nobody holding it in memory; the sweep must still send
 * it. The row is written as such a crash leaves it. */
static void test_owed_notice_survives_a_crash(void **state)
{
    (void)state;
    char member[64], tpl[64];
    member_make(admin_key, member);
    template_make(admin_key,
                  "{\"name\":\"Crash gift\",\"kind\":\"value\",\"value\":500,"
                  "\"valid_days\":10}",
                  tpl);
    PGconn *pg = test_pg();
    const char *p[3] = {tenant_id, tpl, member};
    PGresult *res =
        PQexecParams(pg,
                     "INSERT INTO ingest.coupon_grants (tenant_id, template_id, "
                     "member_id, source, coupon_id, branch_id, sent_at, status, "
                     "settled_at) VALUES ($1, $2, $3, 'crash', gen_random_uuid()::text, "
                     "'hq', now(), 'issued', now()) RETURNING coupon_id",
                     3, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    char coupon[64];
    snprintf(coupon, sizeof(coupon), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(pg);
    sql_wait_for("SELECT count(*) FROM notification.read_inbox WHERE request_id = "
                 "'coupon.issued:' || $1 AND template = 'coupon.issued' AND member_id = $2",
                 coupon, member, 1, "the owed coupon.issued message");
    sql_wait_for("SELECT count(*) FROM ingest.coupon_grants WHERE coupon_id = $1 "
                 "AND noticed_at IS NOT NULL",
                 coupon, NULL, 1, "the notice to be recorded as delivered");
}

static void sql_exec(const char *sql, const char *p1)
{
    PGconn *pg = test_pg();
    const char *p[1] = {p1};
    PGresult *res = PQexecParams(pg, sql, 1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    PQfinish(pg);
}

/* A grant the ledger refuses gave nobody a coupon: its unit of the budget
 * comes back. The refusal is provoked by terms the ledger cannot take
 * (a value coupon worth 0, written past the API's validation), then the
 * template is put right and another member gets the one coupon. */
static void test_refused_grant_releases_its_budget(void **state)
{
    (void)state;
    char a[64], b[64], tpl[64], body[160];
    member_make(admin_key, a);
    member_make(admin_key, b);
    template_make(admin_key,
                  "{\"name\":\"One only\",\"kind\":\"value\",\"value\":500,\"valid_days\":10,"
                  "\"total_count\":1}",
                  tpl);
    sql_exec("UPDATE ingest.coupon_templates SET value = 0 WHERE template_id = $1", tpl);
    snprintf(body, sizeof(body), "{\"member_ids\":[\"%s\"]}", a);
    json_decref(issue_and_wait(admin_key, tpl, body));
    sql_wait_for("SELECT count(*) FROM ingest.coupon_grants WHERE template_id = $1 "
                 "AND status = 'refused'",
                 tpl, NULL, 1, "the grant to be refused");
    sql_wait_for("SELECT issued_count FROM ingest.coupon_templates WHERE template_id = $1", tpl,
                 NULL, 0, "the budget to come back");
    sql_exec("UPDATE ingest.coupon_templates SET value = 500 WHERE template_id = $1", tpl);
    snprintf(body, sizeof(body), "{\"member_ids\":[\"%s\"]}", b);
    json_t *done = issue_and_wait(admin_key, tpl, body);
    assert_int_equal(json_int_at(done, "issued"), 1);
    assert_int_equal(json_int_at(done, "over_budget"), 0);
    json_decref(done);
    sql_wait_for(ISSUED_IN_LEDGER, tpl, NULL, 1, "b's coupon in the ledger");
}

/* A retried POST .../issues with its Idempotency-Key is answered with the
 * first issue and records no second one; the key with another body is
 * 422 idempotency_key_reused. */
static void test_issue_retry_makes_one_issue(void **state)
{
    (void)state;
    char a[64], tpl[64], body[160], path[200], key[120], issue[64];
    member_make(admin_key, a);
    template_make(admin_key,
                  "{\"name\":\"Retry\",\"kind\":\"value\",\"value\":100,\"valid_days\":10,"
                  "\"per_member_limit\":5}",
                  tpl);
    snprintf(path, sizeof(path), "/v1/coupon-templates/%s/issues", tpl);
    snprintf(body, sizeof(body), "{\"member_ids\":[\"%s\"]}", a);
    snprintf(key, sizeof(key), "Idempotency-Key: issue-%s", tpl);
    const char *headers[] = {key, NULL};
    struct api_response r = api_call("POST", path, body, admin_key, headers);
    api_expect_status(&r, 202);
    snprintf(issue, sizeof(issue), "%s", json_str_at(r.body, "issue_id"));
    api_response_free(&r);
    r = api_call("POST", path, body, admin_key, headers);
    api_expect_status(&r, 202);
    assert_string_equal(json_str_at(r.body, "issue_id"), issue);
    api_response_free(&r);
    api_expect_problem(api_call("POST", path, "{\"filter\":{}}", admin_key, headers), 422,
                       "idempotency_key_reused");
    assert_int_equal(
        sql_int_of("SELECT count(*) FROM ingest.coupon_issues WHERE template_id = $1", tpl, NULL),
        1);
    sql_wait_for(
        "SELECT count(*) FROM ingest.coupon_grants WHERE template_id = $1 AND member_id = $2", tpl,
        a, 1, "the member's one coupon");
}

static int setup(void **state)
{
    (void)state;
    sql_tenant_make("coupons", "Coupon Chain", tenant_id, sizeof(tenant_id), admin_key);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_bulk_issue_within_budget),
        cmocka_unit_test(test_min_spend_and_free_item),
        cmocka_unit_test(test_claims_respect_the_limit),
        cmocka_unit_test(test_owed_notice_survives_a_crash),
        cmocka_unit_test(test_refused_grant_releases_its_budget),
        cmocka_unit_test(test_issue_retry_makes_one_issue),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
