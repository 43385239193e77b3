/* A member's journal over HTTP (newest first, paged with an opaque
 * cursor) and the prepaid-liability report, checked against the ledger's
 * own balances. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "events/codec.h"

static void post_ok(const char *member_id, const char *tail, const char *body)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/members/%s%s", member_id, tail);
    struct api_response r = api_post(path, body, NULL);
    if (r.status != 201)
        fprintf(stderr, "%s -> %ld %s\n", path, r.status, r.raw);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
}

static struct api_response history(const char *member_id, const char *query)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/members/%s/ledger%s", member_id, query);
    return api_get(path);
}

/* Lines the member's history holds now. */
struct history_count {
    const char *member_id;
    size_t want;
};

static bool history_has(void *arg)
{
    struct history_count *h = arg;
    struct api_response r = history(h->member_id, "?limit=50");
    size_t n = r.status == 200 ? json_array_size(json_object_get(r.body, "entries")) : 0;
    api_response_free(&r);
    return n >= h->want;
}

/* A top-up (principal and bonus lines), a stored-value purchase (two
 * lines), the points it earned (one pending line, sent by the campaign
 * service after the purchase: waited for, so the order is known) and a
 * points grant (one line): six lines, read two at a time. */
static void test_history_newest_first_in_pages(void **state)
{
    char member_id[64], query[128];
    test_register_member(member_id);
    post_ok(member_id, "/topups",
            "{\"amount\":100000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}");
    post_ok(
        member_id, "/purchases",
        "{\"amount\":11000,\"branch_id\":\"branch-1\",\"payment\":{\"method\":\"stored_value\"}}");
    struct history_count earned = {member_id, 5};
    assert_true(poll_until(history_has, &earned, 15000));
    post_ok(member_id, "/points-adjustments", "{\"points\":10,\"reason\":\"birthday\"}");

    const char *want_types[] = {"points_adjustment", "points_earning", "purchase",
                                "purchase",          "topup",          "topup"};
    int64_t sums[4] = {0}; /* points, principal, bonus, points_pending */
    char cursor[128] = "";
    int seen = 0;
    for (int page = 0; page < 3; page++) {
        snprintf(query, sizeof(query), "?limit=2%s%s", cursor[0] ? "&cursor=" : "", cursor);
        struct api_response r = history(member_id, query);
        assert_int_equal(r.status, 200);
        json_t *entries = json_object_get(r.body, "entries");
        assert_int_equal(json_array_size(entries), 2);
        size_t i;
        json_t *e;
        json_array_foreach(entries, i, e)
        {
            assert_string_equal(json_str_at(e, "type"), want_types[seen++]);
            const char *asset = json_str_at(e, "asset");
            int k = strcmp(asset, "points") == 0         ? 0
                    : strcmp(asset, "sv_principal") == 0 ? 1
                    : strcmp(asset, "sv_bonus") == 0     ? 2
                                                         : 3;
            if (k == 3)
                assert_string_equal(asset, "points_pending");
            sums[k] += json_int_at(e, "amount");
            assert_true(strlen(json_str_at(e, "reason")) > 0);
        }
        json_t *next = json_object_get(r.body, "next_cursor");
        if (page < 2) {
            assert_true(json_is_string(next));
            snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        } else {
            assert_true(json_is_null(next));
        }
        api_response_free(&r);
    }
    assert_int_equal(seen, 6);
    /* the lines explain the balances exactly: 110 yuan earned 110 points,
     * pending for the demo tenant's 7-day lock */
    assert_int_equal(sums[0], 10);
    assert_int_equal(sums[1], 90000);
    assert_int_equal(sums[2], 9000);
    assert_int_equal(sums[3], 110);
}

static void test_history_bad_input(void **state)
{
    char member_id[64];
    test_register_member(member_id);
    const char *bad[] = {"?limit=0", "?limit=501", "?limit=ten", "?cursor=not-a-cursor",
                         "?cursor=AQ"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct api_response r = history(member_id, bad[i]);
        assert_int_equal(r.status, 422);
        assert_string_equal(json_str_at(r.body, "code"), "validation_failed");
        api_response_free(&r);
    }
    struct api_response r = history(member_id, "");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.body, "entries")), 0);
    api_response_free(&r);
    r = history("01900000-0000-7000-8000-000000000000", "");
    assert_int_equal(r.status, 404);
    api_response_free(&r);
}

static int64_t report_int(const char *query, const char *path)
{
    char url[256];
    snprintf(url, sizeof(url), "/v1/reports/prepaid-liability%s", query);
    struct api_response r = api_get(url);
    assert_int_equal(r.status, 200);
    int64_t v = json_int_at(r.body, path);
    api_response_free(&r);
    return v;
}

/* The tenant's outstanding stored value is what its members hold; a sale
 * at branch-1 shows there as sold and outstanding. */
static void test_liability_matches_balances(void **state)
{
    char member_id[64];
    PGconn *pg = test_pg();
    int64_t sold_before = report_int("?branch_id=branch-1", "tenant.stored_value_principal.sold");
    test_register_member(member_id);
    post_ok(member_id, "/topups",
            "{\"amount\":200000,\"branch_id\":\"branch-1\",\"payment_method\":\"alipay\"}");
    assert_int_equal(report_int("?branch_id=branch-1", "tenant.stored_value_principal.sold"),
                     sold_before + 200000);
    int64_t principal = test_pg_int(
        pg, "SELECT coalesce(sum(sv_principal), 0) FROM ledger.balances WHERE tenant_id = 'demo'",
        0, NULL);
    int64_t bonus = test_pg_int(
        pg, "SELECT coalesce(sum(sv_bonus), 0) FROM ledger.balances WHERE tenant_id = 'demo'", 0,
        NULL);
    assert_int_equal(report_int("", "tenant.stored_value_principal.outstanding"), principal);
    assert_int_equal(report_int("", "tenant.stored_value_bonus.outstanding"), bonus);
    assert_int_equal(report_int("", "tenant.outstanding"), principal + bonus);
    PQfinish(pg);
}

static int64_t crossings(PGconn *pg, const char *threshold, const char *above)
{
    const char *p[2] = {threshold, above};
    return test_pg_int(pg,
                       "SELECT count(*) FROM ledger.prepaid_threshold_crossings WHERE "
                       "tenant_id = 'demo' AND threshold = $1::bigint AND above = $2::boolean",
                       2, p);
}

/* The PrepaidThresholdCrossed events of tenant demo for one threshold and
 * direction on ledger-events (the ledger emits them in its last step
 * before commit: they must reach the outbox and the topic like the
 * batch's others). */
struct crossing_seen {
    int64_t threshold;
    bool above;
    int found;
};

static void count_crossing(void *ctx, const rd_kafka_message_t *m)
{
    struct crossing_seen *s = ctx;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    if (!env)
        return;
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PREPAID_THRESHOLD_CROSSED &&
        strcmp(env->tenant_id, "demo") == 0 &&
        env->prepaid_threshold_crossed->threshold == s->threshold &&
        env->prepaid_threshold_crossed->above == s->above)
        s->found++;
    envelope_free(env);
}

static bool crossing_published(void *arg)
{
    struct crossing_seen *s = arg;
    s->found = 0;
    return topic_read_all(TOPIC_LEDGER_EVENTS, count_crossing, s) >= 0 && s->found == 1;
}

/* A threshold 1 500 yuan above today's outstanding: a 1 000 top-up (+100
 * bonus) stays below, a 500 one crosses it (one event), refunding that
 * member's stored value crosses back. */
static void test_prepaid_threshold_crossing(void **state)
{
    char member_id[64], threshold[32], body[96];
    PGconn *pg = test_pg();
    int64_t now = test_pg_int(
        pg,
        "SELECT coalesce(sum(outstanding), 0) FROM ledger.tenant_prepaid WHERE tenant_id = 'demo'",
        0, NULL);
    snprintf(threshold, sizeof(threshold), "%lld", (long long)(now + 150000));
    snprintf(body, sizeof(body), "{\"alert_threshold\":%s}", threshold);
    test_put_setting("prepaid", body, NULL);
    test_register_member(member_id);
    post_ok(member_id, "/topups",
            "{\"amount\":100000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}");
    assert_int_equal(crossings(pg, threshold, "true"), 0);
    post_ok(member_id, "/topups",
            "{\"amount\":50000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}");
    assert_int_equal(crossings(pg, threshold, "true"), 1);
    struct crossing_seen up = {.threshold = now + 150000, .above = true};
    assert_true(poll_until(crossing_published, &up, 20000));
    post_ok(member_id, "/refunds",
            "{\"kind\":\"stored_value\",\"reason\":\"threshold test\",\"branch_id\":\"hq\"}");
    assert_int_equal(crossings(pg, threshold, "false"), 1);
    assert_int_equal(crossings(pg, threshold, "true"), 1);
    test_put_setting("prepaid", "{\"alert_threshold\":0}", NULL);
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_newest_first_in_pages),
        cmocka_unit_test(test_history_bad_input),
        cmocka_unit_test(test_liability_matches_balances),
        cmocka_unit_test(test_prepaid_threshold_crossing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
