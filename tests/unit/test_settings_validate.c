/* The edge checks of the ledger's settings (services/ingest/settings.c):
 * every bad field of a PUT /v1/config/<kind> body is named (so the 422
 * says which), a good body passes, and the command built from it carries
 * exactly the body's values (defaults for what it leaves out). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../services/ingest/ingest.h"

/* The fields named when body (JSON) is checked as kind, comma-joined. */
static void fields_of(const char *kind, const char *body, char *out, size_t out_len)
{
    json_t *b = json_loads(body, 0, NULL);
    assert_non_null(b);
    struct validation v;
    validation_init(&v);
    settings_validate(&v, kind, b);
    out[0] = 0;
    size_t i;
    json_t *e;
    json_array_foreach(v.errors, i, e)
    {
        if (out[0])
            strncat(out, ",", out_len - strlen(out) - 1);
        strncat(out, json_string_value(json_object_get(e, "field")), out_len - strlen(out) - 1);
    }
    validation_free(&v);
    json_decref(b);
}

static void expect_fields(const char *kind, const char *body, const char *fields)
{
    char got[512];
    fields_of(kind, body, got, sizeof(got));
    if (strcmp(got, fields) != 0)
        fail_msg("%s %s: named [%s], expected [%s]", kind, body, got, fields);
}

static void test_ladder(void **state)
{
    expect_fields(SETTING_TOPUP_BONUS, "{\"steps\":[]}", "");
    expect_fields(SETTING_TOPUP_BONUS,
                  "{\"steps\":[{\"threshold\":100,\"bonus\":1},{\"threshold\":200,\"bonus\":5}]}",
                  "");
    expect_fields(SETTING_TOPUP_BONUS, "{}", "steps");
    expect_fields(SETTING_TOPUP_BONUS, "{\"steps\":[{\"threshold\":0,\"bonus\":-1}]}",
                  "steps[0].threshold,steps[0].bonus");
    expect_fields(SETTING_TOPUP_BONUS,
                  "{\"steps\":[{\"threshold\":200,\"bonus\":1},{\"threshold\":200,\"bonus\":1}]}",
                  "steps[1]");
    expect_fields(SETTING_TOPUP_BONUS, "{\"steps\":[{\"threshold\":5,\"bonus\":1,\"x\":1}]}",
                  "steps[0].x");
    expect_fields(SETTING_TOPUP_BONUS, "{\"steps\":[7]}", "steps[0]");
}

static void test_points_policy(void **state)
{
    expect_fields(SETTING_POINTS_POLICY, "{\"expiry\":{\"kind\":\"never\"}}", "");
    expect_fields(
        SETTING_POINTS_POLICY,
        "{\"expiry\":{\"kind\":\"end_of_month\",\"periods\":12,"
        "\"utc_offset_minutes\":480},\"lock_seconds\":604800,"
        "\"payment\":{\"points_per_unit\":100,\"unit_amount\":100,\"max_share_bp\":5000}}",
        "");
    expect_fields(SETTING_POINTS_POLICY, "{}", "expiry");
    expect_fields(SETTING_POINTS_POLICY, "{\"expiry\":{\"kind\":\"days\"}}", "expiry.periods");
    expect_fields(SETTING_POINTS_POLICY,
                  "{\"expiry\":{\"kind\":\"weeks\",\"periods\":1},\"lock_seconds\":-1,"
                  "\"payment\":{\"max_share_bp\":10001}}",
                  "expiry.kind,lock_seconds,payment.max_share_bp");
}

static void test_fees_and_prepaid(void **state)
{
    expect_fields(SETTING_REFUND_FEES, "{\"fee_bp\":200,\"fee_min\":500}", "");
    expect_fields(SETTING_REFUND_FEES, "{\"fee_bp\":10001,\"fee_min\":-1}", "fee_bp,fee_min");
    expect_fields(SETTING_PREPAID, "{\"alert_threshold\":0}", "");
    expect_fields(SETTING_PREPAID, "{\"threshold\":5}", "threshold,alert_threshold");
}

/* The command carries the body's values, and the defaults for the rest. */
static void test_fill(void **state)
{
    struct setting_msg m;
    json_t *b =
        json_loads("{\"expiry\":{\"kind\":\"days\",\"periods\":30},\"lock_seconds\":60}", 0, NULL);
    settings_fill(&m, SETTING_POINTS_POLICY, b, "change-1");
    assert_int_equal(m.s.setting_case,
                     TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_POINTS_POLICY);
    assert_string_equal(m.s.command_id, "change-1");
    assert_string_equal(m.s.points_policy->expiry_kind, "days");
    assert_int_equal(m.s.points_policy->expiry_periods, 30);
    assert_int_equal(m.s.points_policy->utc_offset_minutes, 480); /* default: Asia/Shanghai */
    assert_int_equal(m.s.points_policy->lock_seconds, 60);
    assert_int_equal(m.s.points_policy->payment_max_share_bp, SETTINGS_PAYMENT_SHARE_BP_DEFAULT);
    json_decref(b);

    b = json_loads("{\"steps\":[{\"threshold\":100,\"bonus\":1},{\"threshold\":200,\"bonus\":5}]}",
                   0, NULL);
    settings_fill(&m, SETTING_TOPUP_BONUS, b, "change-2");
    assert_int_equal(m.s.topup_bonus->n_steps, 2);
    assert_int_equal(m.s.topup_bonus->steps[1]->threshold, 200);
    assert_int_equal(m.s.topup_bonus->steps[1]->bonus, 5);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ladder),
        cmocka_unit_test(test_points_policy),
        cmocka_unit_test(test_fees_and_prepaid),
        cmocka_unit_test(test_fill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
