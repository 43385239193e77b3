/* Operability over the running services: every admin port's /metrics is
 * valid Prometheus text with the families docs/operations.md documents, and the
 * values move when traffic flows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "../support/api_client.h"
#include "../support/ops_client.h"
#include "../support/prom_text.h"

#define SETTLE_MS 15000

static const char *const families_everywhere[] = {"process_resident_memory_bytes",
                                                  "process_start_time_seconds", NULL};
static const char *const families_ingest[] = {"tessera_http_requests_total",
                                              "tessera_http_request_duration_seconds",
                                              "tessera_kafka_produced_messages_total",
                                              "tessera_pg_query_duration_seconds",
                                              "tessera_redis_command_duration_seconds",
                                              "tessera_pg_pool_pending_statements",
                                              "tessera_ledger_commands_sent_total",
                                              NULL};
static const char *const families_consumer[] = {"tessera_consumer_messages_total",
                                                "tessera_consumer_lag_messages",
                                                "tessera_consumer_total_lag_messages",
                                                "tessera_consumer_batch_messages",
                                                "tessera_consumer_batch_duration_seconds",
                                                "tessera_consumer_batch_step_seconds",
                                                "tessera_consumer_batches_total",
                                                "tessera_consumer_dead_letters_total",
                                                "tessera_outbox_backlog_events",
                                                "tessera_outbox_relayed_total",
                                                NULL};
static const char *const families_ledger[] = {"tessera_redis_command_duration_seconds",
                                              "tessera_kafka_produced_messages_total", NULL};

static void assert_families(const char *service, const char *text, const char *const *names)
{
    for (; *names; names++) {
        char type_line[160];
        snprintf(type_line, sizeof(type_line), "# TYPE %s ", *names);
        if (!strstr(text, type_line))
            fail_msg("%s: /metrics lacks the family %s", service, *names);
    }
}

/* Scrapes one service, validates the text and checks its families. */
static void check_service(const char *service)
{
    long status;
    char *text = ops_admin_get(service, "/metrics", &status);
    assert_int_equal(status, 200);
    char why[256];
    if (!prom_validate(text, why, sizeof(why)))
        fail_msg("%s: invalid /metrics (%s)", service, why);
    assert_families(service, text, families_everywhere);
    assert_true(prom_sum(text, "process_resident_memory_bytes", NULL) > 1e6);
    if (strcmp(service, "ingest") == 0)
        assert_families(service, text, families_ingest);
    else
        assert_families(service, text, families_consumer);
    if (strcmp(service, "ledger") == 0)
        assert_families(service, text, families_ledger);
    free(text);
}

struct moved {
    const char *service, *name, *match;
    double before;
};

static bool metric_moved(void *arg)
{
    struct moved *m = arg;
    return ops_metric(m->service, m->name, m->match) > m->before;
}

#define TOPUP_ROUTE "route=\"/v1/members/{member_id}/topups\""

/* Traffic moves the counters each service is responsible for. */
static void test_metrics_valid_and_moving(void **state)
{
    struct moved watch[] = {
        {"ingest", "tessera_http_requests_total", TOPUP_ROUTE ",status=\"201\"", 0},
        {"ingest", "tessera_http_request_duration_seconds_count", TOPUP_ROUTE, 0},
        {"ingest", "tessera_kafka_produced_messages_total", "topic=\"ledger-commands\"", 0},
        {"ingest", "tessera_pg_query_duration_seconds_count", NULL, 0},
        {"ingest", "tessera_redis_command_duration_seconds_count", "op=\"get_view\"", 0},
        {"ledger", "tessera_consumer_messages_total", "topic=\"ledger-commands\"", 0},
        {"ledger", "tessera_consumer_batch_messages_count", NULL, 0},
        {"ledger", "tessera_redis_command_duration_seconds_count", "op=\"put_balances\"", 0},
        {"ledger", "tessera_kafka_produced_messages_total", "topic=\"ledger-events\"", 0},
        {"tiering", "tessera_consumer_messages_total", "topic=\"ledger-events\"", 0},
        {"campaign", "tessera_consumer_messages_total", "topic=\"member-events\"", 0},
    };
    size_t n = sizeof(watch) / sizeof(watch[0]);
    for (size_t i = 0; i < n; i++)
        watch[i].before = fmax(0, ops_metric(watch[i].service, watch[i].name, watch[i].match));

    char member_id[64], path[160];
    test_register_member(member_id);
    snprintf(path, sizeof(path), "/v1/members/%s/topups", member_id);
    struct api_response r =
        api_post(path, "{\"amount\":1000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s", member_id);
    r = api_get(path);
    assert_int_equal(r.status, 200);
    api_response_free(&r);

    for (size_t i = 0; i < n; i++)
        if (!poll_until(metric_moved, &watch[i], SETTLE_MS))
            fail_msg("%s: %s{%s} stayed at %g", watch[i].service, watch[i].name,
                     watch[i].match ? watch[i].match : "", watch[i].before);
    for (int i = 0; i < OPS_SERVICES_COUNT; i++)
        check_service(ops_services[i]);
}

/* A path outside the route table is counted under one label value, so a
 * client cannot grow the series without bound. */
static void test_unknown_paths_share_one_series(void **state)
{
    double before =
        ops_metric("ingest", "tessera_http_requests_total", "route=\"unmatched\",status=\"404\"");
    struct api_response r = api_get("/v1/no-such-thing/12345");
    assert_int_equal(r.status, 404);
    api_response_free(&r);
    r = api_get("/v1/no-such-thing/67890");
    api_response_free(&r);
    double after =
        ops_metric("ingest", "tessera_http_requests_total", "route=\"unmatched\",status=\"404\"");
    assert_true(after - (before < 0 ? 0 : before) == 2);
    long status;
    char *text = ops_admin_get("ingest", "/metrics", &status);
    assert_null(strstr(text, "12345"));
    free(text);
}

#define BETWEEN_STEP "step=\"between\""
#define IDLE_GAP_NS  1500000000L /* the ledger left idle between two batches */

static void topup_one(const char *member_id)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/members/%s/topups", member_id);
    struct api_response r =
        api_post(path, "{\"amount\":100,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", NULL);
    assert_int_equal(r.status, 201); /* answered: its batch has committed */
    api_response_free(&r);
}

/* The consumer's "between" step is the loop's own time between batches
 * back to back; an idle ledger (nothing to poll) is not counted in it, or
 * the per-hop means would show idle time as a wait behind the loop. The
 * pause is the idle time under test, not a synchronisation. */
static void test_between_step_leaves_idle_out(void **state)
{
    const char *name = "tessera_consumer_batch_step_seconds_sum";
    char member_id[64];
    test_register_member(member_id);
    topup_one(member_id);
    double before = fmax(0, ops_metric("ledger", name, BETWEEN_STEP));
    nanosleep(&(struct timespec){IDLE_GAP_NS / 1000000000L, IDLE_GAP_NS % 1000000000L}, NULL);
    topup_one(member_id);
    double grown = fmax(0, ops_metric("ledger", name, BETWEEN_STEP)) - before;
    if (grown >= (double)IDLE_GAP_NS / 2e9)
        fail_msg("between grew by %.3f s over an idle gap of %.1f s", grown,
                 (double)IDLE_GAP_NS / 1e9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_valid_and_moving),
        cmocka_unit_test(test_unknown_paths_share_one_series),
        cmocka_unit_test(test_between_step_leaves_idle_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
