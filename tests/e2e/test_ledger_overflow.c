/* Amounts at the edge of what the ledger holds are refused with a clear
 * code instead of reaching PostgreSQL (issue 10, item 2). A top-up that
 * would carry the tenant's outstanding prepaid value past the largest
 * bigint used to fail tenant_prepaid's update with SQLSTATE 22003 on every
 * retry: the batch never committed and every partition of that ledger
 * worker stopped. The ledger now checks the tenant's total in C and
 * answers prepaid_overflow (409); the card arithmetic is checked the same
 * way (unit tests in test_ledger_cards.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../support/api_client.h"
#include "../support/full_tenant.h"

#define HEADROOM 1000

static struct api_response topup(const struct full_tenant *t, const char *member, int64_t amount)
{
    char path[128], body[160];
    snprintf(path, sizeof(path), "/v1/members/%s/topups", member);
    snprintf(body, sizeof(body),
             "{\"amount\":%lld,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
             (long long)amount);
    return api_call("POST", path, body, t->key, NULL);
}

static void test_topup_past_the_tenant_total_is_rejected(void **state)
{
    struct full_tenant t;
    full_tenant_make(&t, HEADROOM);
    char member[64];
    full_tenant_member(&t, member);

    struct api_response r = topup(&t, member, HEADROOM + 1);
    if (r.status != 409) /* before the fix: 202, and the worker stalled */
        fail_msg("expected 409 prepaid_overflow, got %ld %s", r.status, r.raw);
    assert_string_equal(json_str_at(r.body, "code"), "prepaid_overflow");
    api_response_free(&r);
    r = topup(&t, member, HEADROOM); /* exactly what fits */
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    r = topup(&t, member, 1);
    assert_int_equal(r.status, 409);
    api_response_free(&r);

    PGconn *pg = test_pg();
    const char *p[] = {member, t.tenant_id};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.commands WHERE member_id = $1 "
                                 "AND status = 'rejected' AND code = 'prepaid_overflow'",
                                 1, p),
                     2);
    assert_int_equal(
        test_pg_int(pg, "SELECT sv_principal FROM ledger.balances WHERE member_id = $1", 1, p),
        HEADROOM);
    assert_true(test_pg_int(pg,
                            "SELECT outstanding FROM ledger.tenant_prepaid WHERE tenant_id = $1", 1,
                            p + 1) == INT64_MAX);
    PQfinish(pg);
    full_tenant_unseed(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topup_past_the_tenant_total_is_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
