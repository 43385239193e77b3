/* Other ways to a level (issue 13), end to end on a tenant of each
 * test's own: a manual override with a reason and an expiry, shown as an
 * override and ending under the test clock back at what the spend reaches
 * (lower: never a floor); an invitation to an invitation-only level and
 * its end; an upgrade package bought as an item; enough successful
 * referrals (ReferralCounted produced on member-events, once counted even
 * when delivered twice). Each move names its rule in the history. */
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
#include "../support/test_clock.h"
#include "../support/tier_tenant.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "clock/clock.h"
#include "events/codec.h"

#define DAY_US (INT64_C(86400) * 1000000)

static const char ladder[] =
    "{\"levels\":["
    "{\"name\":\"Basic\",\"rank\":1,\"thresholds\":{\"lifetime\":10000},"
    "\"benefits\":{\"discount_bp\":10000}},"
    "{\"name\":\"Advanced\",\"rank\":2,\"thresholds\":{\"lifetime\":50000},"
    "\"upgrade_skus\":[\"PKG-ADV\"],\"referrals_required\":2,"
    "\"benefits\":{\"discount_bp\":9000}},"
    "{\"name\":\"Black\",\"rank\":9,\"invitation_only\":true,"
    "\"benefits\":{\"discount_bp\":7000}}]}";

static void member_path(char *out, size_t len, const char *member, const char *tail)
{
    snprintf(out, len, "/v1/members/%s%s", member, tail);
}

static void expect_accepted(struct api_response r)
{
    if (r.status != 202)
        fail_msg("expected 202: %ld %s", r.status, r.raw);
    api_response_free(&r);
}

static void test_override_shown_and_expires(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    tier_tenant_put_ladder(&t, ladder);
    char member[64], op[64], path[160], body[256], at[32];
    tier_tenant_member(&t, member);
    tier_tenant_purchase(&t, member, 12000, op);
    tier_tenant_wait_tier(&t, member, "Basic");
    int64_t saved = test_clock_offset_us();
    event_format_time(clock_now_us() + 10 * DAY_US, at);
    member_path(path, sizeof(path), member, "/tier-override");
    /* a level not in the ladder is refused and changes nothing */
    struct api_response r =
        tier_tenant_call(&t, "PUT", path, "{\"tier\":\"Gold\",\"reason\":\"complaint\"}");
    assert_int_equal(r.status, 422);
    api_response_free(&r);
    snprintf(body, sizeof(body),
             "{\"tier\":\"Advanced\",\"reason\":\"service complaint\",\"expires_at\":\"%s\"}", at);
    expect_accepted(tier_tenant_call(&t, "PUT", path, body));
    tier_tenant_wait_tier(&t, member, "Advanced");
    PGconn *pg = test_pg();
    const char *p[2] = {t.tenant_id, member};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM tiering.member_tiers WHERE tenant_id = $1 "
                                 "AND member_id = $2 AND reason = 'override' AND "
                                 "override_reason = 'service complaint' AND "
                                 "override_expires_at IS NOT NULL",
                                 2, p),
                     1);
    /* the member view shows it as an override, with its reason */
    snprintf(path, sizeof(path), "/v1/members/%s/tier", member);
    r = tier_tenant_call(&t, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "tier.override.kind"), "override");
    assert_string_equal(json_str_at(r.body, "tier.override.reason"), "service complaint");
    assert_true(json_is_string(json_object_get(
        json_object_get(json_object_get(r.body, "tier"), "override"), "expires_at")));
    api_response_free(&r);
    /* the expiry passes: back to what the spend reaches, Basic */
    test_clock_advance_us(11 * DAY_US);
    tier_tenant_wait_tier(&t, member, "Basic");
    char reasons[256];
    tier_tenant_reasons(pg, &t, member, reasons, sizeof(reasons));
    assert_string_equal(reasons, "cumulative_spend,override,override_expired");
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM tiering.member_tiers WHERE tenant_id = $1 "
                                 "AND member_id = $2 AND override_reason IS NULL",
                                 2, p),
                     1);
    PQfinish(pg);
    test_clock_restore(saved);
}

static void test_invitation_then_cleared(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    tier_tenant_put_ladder(&t, ladder);
    char member[64], op[64], path[160];
    tier_tenant_member(&t, member);
    member_path(path, sizeof(path), member, "/tier-override");
    /* nothing set by hand yet: nothing to clear */
    struct api_response r = tier_tenant_call(&t, "DELETE", path, NULL);
    assert_int_equal(r.status, 404);
    api_response_free(&r);
    member_path(path, sizeof(path), member, "/tier-invitations");
    expect_accepted(
        tier_tenant_call(&t, "POST", path, "{\"tier\":\"Black\",\"reason\":\"founder\"}"));
    tier_tenant_wait_tier(&t, member, "Black");
    /* spend does not move an invited member down (and is charged at
     * Black's 70%: 15 000 -> 10 500) */
    tier_tenant_purchase(&t, member, 15000, op);
    PGconn *pg = test_pg();
    const char *p[2] = {t.tenant_id, member};
    tier_tenant_wait_sql(pg,
                         "SELECT coalesce((SELECT lifetime_spend FROM tiering.member_spend "
                         "WHERE tenant_id = $1 AND member_id = $2), 0)",
                         2, p, 10500);
    tier_tenant_wait_tier(&t, member, "Black");
    member_path(path, sizeof(path), member, "/tier-override");
    expect_accepted(tier_tenant_call(&t, "DELETE", path, NULL));
    tier_tenant_wait_tier(&t, member, "Basic");
    char reasons[256];
    tier_tenant_reasons(pg, &t, member, reasons, sizeof(reasons));
    assert_string_equal(reasons, "invitation,override_ended");
    PQfinish(pg);
}

static void test_upgrade_package(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    tier_tenant_put_ladder(&t, ladder);
    char member[64], path[160];
    tier_tenant_member(&t, member);
    member_path(path, sizeof(path), member, "/purchases");
    struct api_response r =
        tier_tenant_call(&t, "POST", path,
                         "{\"amount\":3000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"},"
                         "\"items\":[{\"sku\":\"PKG-ADV\",\"category\":\"package\","
                         "\"quantity\":1,\"unit_price\":3000}]}");
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    tier_tenant_wait_tier(&t, member, "Advanced");
    PGconn *pg = test_pg();
    char reasons[256];
    tier_tenant_reasons(pg, &t, member, reasons, sizeof(reasons));
    assert_string_equal(reasons, "upgrade_package");
    PQfinish(pg);
}

/* A ReferralCounted for member (the referrer) as the campaign sends it;
 * id names the referee, who counts once. */
static void produce_referral(const struct tier_tenant *t, const char *member, const char *id)
{
    struct event_meta meta = {.tenant_id = t->tenant_id,
                              .branch_id = "",
                              .member_id = member,
                              .actor_kind = "service",
                              .actor_id = "test-rewards"};
    Envelope env;
    Actor actor;
    Tessera__Campaign__V1__ReferralCounted rc;
    envelope_init(&env, &actor, &meta);
    tessera__campaign__v1__referral_counted__init(&rc);
    rc.referrer_member_id = (char *)member;
    rc.referee_member_id = (char *)id;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFERRAL_COUNTED;
    env.referral_counted = &rc;
    size_t len = 0;
    uint8_t *out = envelope_encode(&env, &len);
    assert_non_null(out);
    assert_int_equal(topic_produce(TOPIC_MEMBER_EVENTS, RD_KAFKA_PARTITION_UA, member,
                                   strlen(member), out, len, NULL),
                     0);
    free(out);
}

static void test_referrals_lift(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    tier_tenant_put_ladder(&t, ladder);
    char member[64], id1[80], id2[80];
    tier_tenant_member(&t, member);
    snprintf(id1, sizeof(id1), "ref-1-%s", member);
    snprintf(id2, sizeof(id2), "ref-2-%s", member);
    /* the same referral twice counts once: not enough yet */
    produce_referral(&t, member, id1);
    produce_referral(&t, member, id1);
    PGconn *pg = test_pg();
    const char *p[2] = {t.tenant_id, member};
    tier_tenant_wait_sql(pg,
                         "SELECT count(*) FROM tiering.member_referrals WHERE tenant_id = $1 "
                         "AND member_id = $2",
                         2, p, 1);
    tier_tenant_wait_tier(&t, member, "");
    produce_referral(&t, member, id2);
    tier_tenant_wait_tier(&t, member, "Advanced");
    char reasons[256];
    tier_tenant_reasons(pg, &t, member, reasons, sizeof(reasons));
    assert_string_equal(reasons, "referrals");
    PQfinish(pg);
}

/* One year of membership reaches a level that rewards it: the
 * scheduler looks at the anniversary under the test clock. */
static void test_one_year_of_membership(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    tier_tenant_put_ladder(&t, "{\"levels\":[{\"name\":\"Loyal\",\"rank\":1,"
                               "\"membership_years\":1,\"benefits\":{\"discount_bp\":9500}}]}");
    char member[64];
    tier_tenant_member(&t, member);
    PGconn *pg = test_pg();
    const char *p[2] = {t.tenant_id, member};
    tier_tenant_wait_sql(pg,
                         "SELECT count(*) FROM tiering.memberships WHERE tenant_id = $1 AND "
                         "member_id = $2",
                         2, p, 1);
    int64_t saved = test_clock_advance_us(300 * DAY_US);
    /* 300 days: not yet (the scheduler has nothing due for it) */
    tier_tenant_wait_tier(&t, member, "");
    test_clock_advance_us(70 * DAY_US);
    tier_tenant_wait_tier(&t, member, "Loyal");
    char reasons[256];
    tier_tenant_reasons(pg, &t, member, reasons, sizeof(reasons));
    assert_string_equal(reasons, "membership_years");
    PQfinish(pg);
    test_clock_restore(saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_override_shown_and_expires),
        cmocka_unit_test(test_invitation_then_cleared),
        cmocka_unit_test(test_upgrade_package),
        cmocka_unit_test(test_referrals_lift),
        cmocka_unit_test(test_one_year_of_membership),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
