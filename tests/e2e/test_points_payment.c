/* Points as payment end to end (issue 12), in a tenant of its own: a
 * cash purchase paid half with points (the tenant's rate, 100 points =
 * 1 yuan by default) debits exactly those points; more than the tenant's
 * share, or a part of a unit, is refused and changes nothing; with the
 * share raised to the whole bill, method "points" pays it all; stored
 * value and points split a bill; a refund gives the points back (a new
 * lot); every posting balances per asset and the ledger audit passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/api_client.h"
#include "../support/expect.h"
#include "../support/sql_tenant.h"

#define AUDIT_OUTPUT_MAX 65536

static char tenant_id[48], admin_key[64];

static void tenant_make(void)
{
    sql_tenant_make("ptspay", "Points Chain", tenant_id, sizeof(tenant_id), admin_key);
}

static struct api_response member_post(const char *member, const char *what, const char *body)
{
    char path[200];
    snprintf(path, sizeof(path), "/v1/members/%s/%s", member, what);
    return api_call("POST", path, body, admin_key, NULL);
}

static void member_make(char id[64])
{
    char phone[16], body[160];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"P\",\"phone\":\"%s\",\"branch_id\":\"hq\"}", phone);
    struct api_response r = api_call("POST", "/v1/members", body, admin_key, NULL);
    api_expect_status(&r, 201);
    snprintf(id, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

static int64_t points_of(const char *member)
{
    PGconn *pg = test_pg();
    const char *p[2] = {tenant_id, member};
    int64_t v = test_pg_int(pg,
                            "SELECT coalesce(sum(points), 0) FROM ledger.read_balances "
                            "WHERE tenant_id = $1 AND member_id = $2",
                            2, p);
    PQfinish(pg);
    return v;
}

/* A purchase with the given payment object; the response. */
static struct api_response buy(const char *member, int64_t amount, const char *payment)
{
    char body[300];
    snprintf(body, sizeof(body), "{\"amount\":%lld,\"branch_id\":\"hq\",\"payment\":%s}",
             (long long)amount, payment);
    return member_post(member, "purchases", body);
}

static void expect_audit_passes(void)
{
    static char report[AUDIT_OUTPUT_MAX];
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s audit 2>&1", getenv("TESSERA_RUNTIME"));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(report, 1, sizeof(report) - 1, p);
    report[n] = '\0';
    int status = pclose(p);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "audit report:\n%s\n", report);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_points_pay_part_and_come_back_on_refund(void **state)
{
    char member[64], op[64];
    member_make(member);
    struct api_response r =
        member_post(member, "points-adjustments", "{\"points\":10000,\"reason\":\"test grant\"}");
    api_expect_status(&r, 201);
    api_response_free(&r);

    /* refused, nothing changes: above the default 50% share, part of a unit */
    api_expect_problem(buy(member, 10000, "{\"method\":\"cash\",\"points\":5100}"), 409,
                       "points_share_exceeded");
    r = buy(member, 10000, "{\"method\":\"cash\",\"points\":150}");
    assert_true(r.status == 409 || r.status == 422);
    assert_string_equal(json_str_at(r.body, "code"), "invalid_points");
    api_response_free(&r);
    assert_int_equal(points_of(member), 10000);

    /* half of a 100 yuan bill with 5000 points */
    r = buy(member, 10000, "{\"method\":\"cash\",\"points\":5000}");
    api_expect_status(&r, 201);
    assert_int_equal(json_int_at(r.body, "charged"), 10000);
    assert_int_equal(json_int_at(r.body, "points_paid"), 5000);
    assert_int_equal(json_int_at(r.body, "points_value"), 5000);
    assert_int_equal(json_int_at(r.body, "balances.points"), 5000);
    snprintf(op, sizeof(op), "%s", json_str_at(r.body, "operation_id"));
    api_response_free(&r);

    /* points alone need the tenant to allow the whole bill */
    api_expect_problem(buy(member, 3000, "{\"method\":\"points\",\"points\":3000}"), 409,
                       "points_share_exceeded");
    PGconn *pg = test_pg();
    const char *p[1] = {tenant_id};
    test_exec_ok(pg,
                 "INSERT INTO ledger.points_policy (tenant_id, kind, payment_max_share_bp) "
                 "VALUES ($1, 'never', 10000)",
                 1, p);
    PQfinish(pg);
    api_expect_problem(buy(member, 3000, "{\"method\":\"points\",\"points\":2000}"), 409,
                       "points_do_not_cover");
    r = buy(member, 3000, "{\"method\":\"points\",\"points\":3000}");
    api_expect_status(&r, 201);
    assert_int_equal(json_int_at(r.body, "balances.points"), 2000);
    api_response_free(&r);

    /* stored value and points split a bill */
    r = member_post(member, "topups",
                    "{\"amount\":5000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}");
    api_expect_status(&r, 201);
    api_response_free(&r);
    r = buy(member, 4000, "{\"method\":\"stored_value\",\"points\":1000}");
    api_expect_status(&r, 201);
    assert_int_equal(json_int_at(r.body, "paid_principal") + json_int_at(r.body, "paid_bonus"),
                     3000);
    assert_int_equal(json_int_at(r.body, "balances.points"), 1000);
    api_response_free(&r);

    /* the refund of the first purchase gives its 5000 points back */
    char body[256];
    snprintf(body, sizeof(body),
             "{\"kind\":\"purchase\",\"reason\":\"returned\",\"branch_id\":\"hq\","
             "\"purchase_operation_id\":\"%s\"}",
             op);
    r = member_post(member, "refunds", body);
    api_expect_status(&r, 201);
    assert_int_equal(json_int_at(r.body, "points_returned"), 5000);
    assert_int_equal(json_int_at(r.body, "balances.points"), 6000);
    api_response_free(&r);
    assert_int_equal(points_of(member), 6000);

    /* every posting of the tenant balances per asset, and the audit passes */
    pg = test_pg();
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM (SELECT posting_id, asset FROM "
                                 "ledger.read_journal WHERE tenant_id = $1 GROUP BY posting_id, "
                                 "asset HAVING sum(amount) <> 0) x",
                                 1, p),
                     0);
    /* three purchases paid with points and one refund giving them back:
     * one line each on the tenant's points_paid account */
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.read_journal WHERE tenant_id = $1 "
                                 "AND account LIKE 'tenant:%:points_paid'",
                                 1, p),
                     4);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT coalesce(sum(amount), 0) FROM ledger.read_journal "
                                 "WHERE tenant_id = $1 AND account LIKE 'tenant:%:points_paid'",
                                 1, p),
                     5000 + 3000 + 1000 - 5000);
    PQfinish(pg);
    expect_audit_passes();
}

int main(void)
{
    tenant_make();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_points_pay_part_and_come_back_on_refund),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
