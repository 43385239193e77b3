/* Refunds over HTTP: a partly spent top-up refunded in two steps (only
 * unspent principal comes back, the bonus is forfeited in proportion), the
 * tenant's fee rule, a stored-value purchase returned once in full and a
 * cash purchase refunded, the refund trail refusing changes, and bad
 * input changing nothing. Partial purchase refunds and the points they
 * reverse: test_ledger_points_pending.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"

static struct api_response member_post(const char *member_id, const char *tail, const char *body)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/members/%s%s", member_id, tail);
    return api_post(path, body, NULL);
}

static void topup(const char *member_id, int64_t amount)
{
    char body[128];
    snprintf(body, sizeof(body),
             "{\"amount\":%lld,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
             (long long)amount);
    struct api_response r = member_post(member_id, "/topups", body);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
}

/* A stored-value purchase; writes its operation id. */
static void sv_purchase(const char *member_id, int64_t amount, char operation_id[64])
{
    char body[160];
    snprintf(body, sizeof(body),
             "{\"amount\":%lld,\"branch_id\":\"branch-1\",\"payment\":{\"method\":"
             "\"stored_value\"}}",
             (long long)amount);
    struct api_response r = member_post(member_id, "/purchases", body);
    assert_int_equal(r.status, 201);
    snprintf(operation_id, 64, "%s", json_str_at(r.body, "operation_id"));
    api_response_free(&r);
}

static void expect_problem(struct api_response r, long status, const char *code)
{
    if (r.status != status)
        fprintf(stderr, "expected %ld %s, got %ld: %s\n", status, code, r.status, r.raw);
    assert_int_equal(r.status, status);
    assert_string_equal(json_str_at(r.body, "code"), code);
    assert_non_null(strstr(r.content_type, "application/problem+json"));
    api_response_free(&r);
}

/* 1 000 yuan topped up (+100 bonus), 110 yuan spent (100 principal, 10
 * bonus): 900 principal and 90 bonus unspent. A refund of 300 forfeits 30
 * of bonus; the rest refunded forfeits the rest; then nothing is left. */
static void test_refund_partly_spent_topup(void **state)
{
    char member_id[64], purchase[64];
    test_register_member(member_id);
    topup(member_id, 100000);
    sv_purchase(member_id, 11000, purchase);

    struct api_response r =
        member_post(member_id, "/refunds",
                    "{\"kind\":\"stored_value\",\"reason\":\"moving away\",\"branch_id\":\"hq\","
                    "\"principal\":30000}");
    assert_int_equal(r.status, 201);
    assert_string_equal(json_str_at(r.body, "status"), "refunded");
    assert_int_equal(json_int_at(r.body, "principal"), 30000);
    assert_int_equal(json_int_at(r.body, "bonus_forfeited"), 3000);
    assert_int_equal(json_int_at(r.body, "fee"), 0);
    assert_int_equal(json_int_at(r.body, "payout"), 30000);
    assert_int_equal(json_int_at(r.body, "balances.stored_value_principal"), 60000);
    assert_int_equal(json_int_at(r.body, "balances.stored_value_bonus"), 6000);
    api_response_free(&r);

    r = member_post(member_id, "/refunds",
                    "{\"kind\":\"stored_value\",\"reason\":\"closing the account\","
                    "\"branch_id\":\"hq\",\"refund_method\":\"bank_card\"}");
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "principal"), 60000);
    assert_int_equal(json_int_at(r.body, "bonus_forfeited"), 6000);
    assert_int_equal(json_int_at(r.body, "balances.stored_value"), 0);
    api_response_free(&r);

    expect_problem(member_post(member_id, "/refunds",
                               "{\"kind\":\"stored_value\",\"reason\":\"again\","
                               "\"branch_id\":\"hq\"}"),
                   409, "nothing_to_refund");

    /* The trail and the journal say why. */
    PGconn *pg = test_pg();
    const char *p[1] = {member_id};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT sum(payout) FROM ledger.refunds WHERE member_id = $1 "
                                 "AND kind = 'stored_value'",
                                 1, p),
                     90000);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.journal WHERE member_id = $1 AND "
                                 "reason = 'refund_stored_value:moving away'",
                                 1, p),
                     2);
    PQfinish(pg);
}

/* The refund trail is append-only, for the ledger's own role too. */
static void test_refund_trail_immutable(void **state)
{
    PGconn *pg = test_pg();
    PGresult *res = PQexec(pg, "UPDATE ledger.refunds SET payout = payout + 1");
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    assert_non_null(strstr(PQresultErrorMessage(res), "append-only"));
    PQclear(res);
    res = PQexec(pg, "DELETE FROM ledger.refunds");
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    PQclear(res);
    res = PQexec(pg, "TRUNCATE ledger.refunds");
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    PQclear(res);
    PQfinish(pg);
}

/* 2 % with a 5 yuan minimum: on 200 yuan the minimum applies. */
static void test_refund_fee_rule(void **state)
{
    char member_id[64];
    PGconn *pg = test_pg();
    test_put_setting("refund-fees", "{\"fee_bp\":200,\"fee_min\":500}", NULL);
    test_register_member(member_id);
    topup(member_id, 20000);
    struct api_response r =
        member_post(member_id, "/refunds",
                    "{\"kind\":\"stored_value\",\"reason\":\"fee test\",\"branch_id\":\"hq\"}");
    test_put_setting("refund-fees", "{\"fee_bp\":0,\"fee_min\":0}", NULL);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "principal"), 20000);
    assert_int_equal(json_int_at(r.body, "fee"), 500);
    assert_int_equal(json_int_at(r.body, "payout"), 19500);
    api_response_free(&r);
    const char *p[1] = {member_id};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT sum(amount) FROM ledger.journal WHERE posting_id IN "
                                 "(SELECT posting_id FROM ledger.refunds WHERE member_id = $1) "
                                 "AND account LIKE '%:sv_refund_fees'",
                                 1, p),
                     500);
    PQfinish(pg);
}

/* The points a purchase earned (the campaign service sends "earn:<op>"
 * after the purchase) have been applied. */
static bool earning_posted(void *arg)
{
    const char *op = arg;
    PGconn *pg = test_pg();
    const char *p[1] = {op};
    int64_t n = test_pg_int(pg,
                            "SELECT count(*) FROM ledger.commands WHERE command_id = 'earn:' || $1 "
                            "AND status = 'posted'",
                            1, p);
    PQfinish(pg);
    return n == 1;
}

static void test_refund_purchase_once(void **state)
{
    char member_id[64], purchase[64], body[256];
    test_register_member(member_id);
    topup(member_id, 100000);
    sv_purchase(member_id, 11000, purchase);
    snprintf(body, sizeof(body),
             "{\"kind\":\"purchase\",\"reason\":\"course cancelled\",\"branch_id\":\"branch-1\","
             "\"purchase_operation_id\":\"%s\"}",
             purchase);
    struct api_response r = member_post(member_id, "/refunds", body);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_str_at(r.body, "kind"), "purchase");
    assert_int_equal(json_int_at(r.body, "principal"), 10000);
    assert_int_equal(json_int_at(r.body, "bonus_returned"), 1000);
    assert_int_equal(json_int_at(r.body, "balances.stored_value_principal"), 100000);
    assert_int_equal(json_int_at(r.body, "balances.stored_value_bonus"), 10000);
    api_response_free(&r);
    expect_problem(member_post(member_id, "/refunds", body), 409, "already_refunded");

    /* a cash purchase is refunded too: its money goes back outside the
     * ledger, no stored value moves, the trail records the amount, and the
     * 50 points it earned (pending: the demo tenant's 7-day lock) go back */
    r = member_post(member_id, "/purchases",
                    "{\"amount\":5000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}");
    assert_int_equal(r.status, 201);
    char cash_op[64];
    snprintf(cash_op, sizeof(cash_op), "%s", json_str_at(r.body, "operation_id"));
    snprintf(body, sizeof(body),
             "{\"kind\":\"purchase\",\"reason\":\"x\",\"branch_id\":\"hq\","
             "\"purchase_operation_id\":\"%s\"}",
             cash_op);
    api_response_free(&r);
    assert_true(poll_until(earning_posted, cash_op, 15000));
    r = member_post(member_id, "/refunds", body);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "amount"), 5000);
    assert_int_equal(json_int_at(r.body, "principal"), 0);
    assert_int_equal(json_int_at(r.body, "bonus_returned"), 0);
    assert_int_equal(json_int_at(r.body, "points_reversed"), 50);
    assert_int_equal(json_int_at(r.body, "points_unrecovered"), 0);
    assert_int_equal(json_int_at(r.body, "balances.stored_value_principal"), 100000);
    api_response_free(&r);
    expect_problem(member_post(member_id, "/refunds", body), 409, "already_refunded");
    expect_problem(member_post(member_id, "/refunds",
                               "{\"kind\":\"purchase\",\"reason\":\"x\",\"branch_id\":\"hq\","
                               "\"purchase_operation_id\":\"01900000-0000-7000-8000-"
                               "000000000000\"}"),
                   404, "not_found");
}

static void test_refund_bad_input(void **state)
{
    char member_id[64];
    test_register_member(member_id);
    topup(member_id, 10000);
    expect_problem(
        member_post(member_id, "/refunds", "{\"kind\":\"stored_value\",\"branch_id\":\"hq\"}"), 422,
        "validation_failed");
    expect_problem(member_post(member_id, "/refunds",
                               "{\"kind\":\"card\",\"reason\":\"x\",\"branch_id\":\"hq\"}"),
                   422, "validation_failed");
    expect_problem(member_post(member_id, "/refunds",
                               "{\"kind\":\"purchase\",\"reason\":\"x\",\"branch_id\":\"hq\"}"),
                   422, "validation_failed");
    expect_problem(member_post(member_id, "/refunds",
                               "{\"kind\":\"stored_value\",\"reason\":\"x\",\"branch_id\":\"hq\","
                               "\"principal\":10001}"),
                   409, "insufficient_balance");
    /* amount is for purchase refunds only, and at least 1 fen */
    expect_problem(member_post(member_id, "/refunds",
                               "{\"kind\":\"stored_value\",\"reason\":\"x\",\"branch_id\":\"hq\","
                               "\"amount\":100}"),
                   422, "validation_failed");
    expect_problem(member_post(member_id, "/refunds",
                               "{\"kind\":\"purchase\",\"reason\":\"x\",\"branch_id\":\"hq\","
                               "\"purchase_operation_id\":\"01900000-0000-7000-8000-000000000000\","
                               "\"amount\":0}"),
                   422, "validation_failed");
    PGconn *pg = test_pg();
    const char *p[1] = {member_id};
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.refunds WHERE member_id = $1", 1, p), 0);
    assert_int_equal(
        test_pg_int(pg, "SELECT sv_principal FROM ledger.balances WHERE member_id = $1", 1, p),
        10000);
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refund_partly_spent_topup),
        cmocka_unit_test(test_refund_trail_immutable),
        cmocka_unit_test(test_refund_fee_rule),
        cmocka_unit_test(test_refund_purchase_once),
        cmocka_unit_test(test_refund_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
