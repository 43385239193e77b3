/* The tier review under the test clock (issue 13): a member at Advanced
 * by its rolling 12 months is warned, warning_days before its qualifying
 * period ends, what it must still spend (a NotifyRequest
 * "tier.downgrade_warning" on notify-requests, read from the topic); is
 * not downgraded before the period and its grace days are over (the
 * scheduler has looked at that time twice); and at the review falls to
 * the level its spend reaches, with the reason "review" and a
 * "tier.changed" request; each warning and review happens once. Own
 * tenant and members; the clock is put back at the end. */
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
#include "../support/ops_client.h"
#include "../support/test_clock.h"
#include "../support/tier_tenant.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "events/codec.h"

#define DAY_US            (INT64_C(86400) * 1000000)
#define ROUND_DEADLINE_MS 20000

/* NotifyRequests of one member and template on notify-requests. */
struct notify_scan {
    const char *member_id, *template_name;
    int count;
    int64_t must_spend; /* tier.must_spend of the last one */
    char reason[32];    /* tier.reason of the last one */
};

static void scan_one(void *ctx, const rd_kafka_message_t *m)
{
    struct notify_scan *s = ctx;
    char why[128];
    Envelope *e = envelope_decode(m->payload, m->len, why, sizeof(why));
    if (!e)
        return;
    if (e->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST &&
        strcmp(e->member_id, s->member_id) == 0 &&
        strcmp(e->notify_request->template_, s->template_name) == 0) {
        s->count++;
        for (size_t i = 0; i < e->notify_request->n_variables; i++) {
            const Tessera__Notification__V1__Variable *v = e->notify_request->variables[i];
            if (strcmp(v->name, "tier.must_spend") == 0)
                s->must_spend = v->money_minor;
            if (strcmp(v->name, "tier.reason") == 0)
                snprintf(s->reason, sizeof(s->reason), "%s", v->text);
        }
    }
    envelope_free(e);
}

static bool notified(void *arg)
{
    struct notify_scan *s = arg;
    s->count = 0;
    return topic_read_all(TOPIC_NOTIFY_REQUESTS, scan_one, s) >= 0 && s->count > 0;
}

static void wait_notified(struct notify_scan *s)
{
    if (!poll_until(notified, s, ROUND_DEADLINE_MS))
        fail_msg("no %s request for %s on notify-requests", s->template_name, s->member_id);
}

static bool rounds_reached(void *arg)
{
    return ops_metric("tiering", "tessera_tiering_review_rounds_total", NULL) >= *(double *)arg;
}

/* Two more review rounds than now: one has certainly started after the
 * clock moved. */
static void wait_two_rounds(void)
{
    double target = ops_metric("tiering", "tessera_tiering_review_rounds_total", NULL) + 2;
    if (!poll_until(rounds_reached, &target, ROUND_DEADLINE_MS))
        fail_msg("the review scheduler did not run two rounds");
}

static int64_t period_end_us(PGconn *pg, const struct tier_tenant *t, const char *member)
{
    const char *p[2] = {t->tenant_id, member};
    return test_pg_int(pg,
                       "SELECT (extract(epoch FROM period_end) * 1000000)::bigint FROM "
                       "tiering.member_tiers WHERE tenant_id = $1 AND member_id = $2",
                       2, p);
}

static int64_t reviews(PGconn *pg, const struct tier_tenant *t, const char *member,
                       const char *kind)
{
    const char *p[3] = {t->tenant_id, member, kind};
    return test_pg_int(pg,
                       "SELECT count(*) FROM tiering.tier_reviews WHERE tenant_id = $1 AND "
                       "member_id = $2 AND kind = $3",
                       3, p);
}

static void test_warning_then_downgrade_at_period_end(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    tier_tenant_put_ladder(&t,
                           "{\"levels\":["
                           "{\"name\":\"Basic\",\"rank\":1,\"thresholds\":"
                           "{\"rolling_12_months\":10000},\"benefits\":{\"discount_bp\":10000}},"
                           "{\"name\":\"Advanced\",\"rank\":2,\"thresholds\":"
                           "{\"rolling_12_months\":50000},\"benefits\":{\"discount_bp\":10000}}],"
                           "\"review_months\":12,\"warning_days\":10,\"grace_days\":5}");
    char member[64], op[64];
    tier_tenant_member(&t, member);
    tier_tenant_purchase(&t, member, 60000, op);
    tier_tenant_wait_tier(&t, member, "Advanced");
    PGconn *pg = test_pg();
    int64_t end = period_end_us(pg, &t, member);
    assert_true(end > 0);
    int64_t saved = test_clock_offset_us();

    /* 9 days before the period ends: warned, must spend the whole 500
     * yuan (the purchase that reached Advanced leaves the window at the
     * period's end); not reviewed in the same round */
    test_clock_set_now_us(end - 9 * DAY_US);
    struct notify_scan warning = {.member_id = member, .template_name = "tier.downgrade_warning"};
    wait_notified(&warning);
    assert_int_equal(warning.must_spend, 50000);
    assert_int_equal(reviews(pg, &t, member, "warning"), 1);
    assert_int_equal(reviews(pg, &t, member, "review"), 0);

    /* within the grace days after the period: still Advanced; a purchase
     * of 150 yuan keeps the member at Basic at the review */
    test_clock_set_now_us(end + 2 * DAY_US);
    tier_tenant_purchase(&t, member, 15000, op);
    wait_two_rounds();
    assert_int_equal(reviews(pg, &t, member, "review"), 0);
    tier_tenant_wait_tier(&t, member, "Advanced");

    /* the grace days are over: reviewed once, down to Basic */
    test_clock_set_now_us(end + 6 * DAY_US);
    tier_tenant_wait_tier(&t, member, "Basic");
    char reasons[256];
    tier_tenant_reasons(pg, &t, member, reasons, sizeof(reasons));
    assert_string_equal(reasons, "rolling_spend,review");
    struct notify_scan changed = {.member_id = member, .template_name = "tier.changed"};
    wait_notified(&changed);
    assert_int_equal(changed.count, 2); /* reaching Advanced, then the review */
    assert_string_equal(changed.reason, "review");
    wait_two_rounds();
    assert_int_equal(reviews(pg, &t, member, "review"), 1);
    assert_int_equal(reviews(pg, &t, member, "warning"), 1);
    assert_true(notified(&warning));
    assert_int_equal(warning.count, 1); /* never twice */
    /* the new level's period starts at the review */
    assert_true(period_end_us(pg, &t, member) > end + 360 * DAY_US);
    PQfinish(pg);
    test_clock_restore(saved);
}

/* Spending enough before the review keeps the level: no downgrade, a
 * new period from the old one's end, and the history says so. */
static void test_spend_keeps_level_at_review(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    tier_tenant_put_ladder(&t,
                           "{\"levels\":["
                           "{\"name\":\"Advanced\",\"rank\":2,\"thresholds\":"
                           "{\"rolling_12_months\":50000},\"benefits\":{\"discount_bp\":10000}}],"
                           "\"review_months\":12,\"warning_days\":10}");
    char member[64], op[64];
    tier_tenant_member(&t, member);
    tier_tenant_purchase(&t, member, 50000, op);
    tier_tenant_wait_tier(&t, member, "Advanced");
    PGconn *pg = test_pg();
    int64_t end = period_end_us(pg, &t, member);
    int64_t saved = test_clock_offset_us();
    test_clock_set_now_us(end - 30 * DAY_US);
    tier_tenant_purchase(&t, member, 50000, op);
    test_clock_set_now_us(end + DAY_US);
    const char *p[2] = {t.tenant_id, member};
    tier_tenant_wait_sql(pg,
                         "SELECT count(*) FROM tiering.tier_notes WHERE tenant_id = $1 AND "
                         "member_id = $2 AND kind = 'kept_at_review'",
                         2, p, 1);
    assert_int_equal(reviews(pg, &t, member, "warning"), 0); /* nothing to warn about */
    int64_t next = period_end_us(pg, &t, member);
    assert_true(next > end + 360 * DAY_US && next < end + 370 * DAY_US);
    char reasons[256];
    tier_tenant_reasons(pg, &t, member, reasons, sizeof(reasons));
    assert_string_equal(reasons, "rolling_spend");
    tier_tenant_wait_tier(&t, member, "Advanced");
    PQfinish(pg);
    test_clock_restore(saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warning_then_downgrade_at_period_end),
        cmocka_unit_test(test_spend_keeps_level_at_review),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
