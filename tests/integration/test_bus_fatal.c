/* A tail (ingest's follower of the verdicts) whose handle hits a fatal
 * error tells its owner once, on the loop, and is never ready again; the
 * admin port's /livez then says the process failed (ingest exits 1).
 *
 * A producer whose handle hits a fatal error (what an idempotent producer
 * gets when a SIGKILLed broker lost messages it had acknowledged: see
 * tests/e2e/test_broker_restart.c) replaces the handle and delivers again,
 * and the message it held gets a failed report (its caller sends it
 * again). Against the runtime's broker (TESSERA_KAFKA_BOOTSTRAP); the fatal
 * error is raised with librdkafka's rd_kafka_test_fatal_error. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bus/bus.h"
#include "bus/topics.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "service/admin.h"
#include "../support/ops_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TEST_DEADLINE_MS  30000
#define TEST_POLL_STEP_MS 20
/* Long enough that the second message still waits in the producer's queue
 * when the fatal error is raised. */
#define TEST_LINGER_MS 2000

static char bootstrap[256];

/* What each message's delivery report said; __IN_PROGRESS until it came. */
enum { MSG_FIRST, MSG_HELD, MSG_AFTER, MSG_COUNT };
static rd_kafka_resp_err_t reports[MSG_COUNT];

static void on_delivery(void *ctx, void *msg_opaque, rd_kafka_resp_err_t err)
{
    (void)ctx;
    *(rd_kafka_resp_err_t *)msg_opaque = err;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Serves delivery reports for one poll step: the event loop's when the
 * producer is loop-driven, a poll otherwise. */
static void serve_reports(struct bus_producer *p, struct event_base *base)
{
    if (base != NULL) {
        struct timeval step = {0, TEST_POLL_STEP_MS * 1000};
        event_base_loopexit(base, &step);
        event_base_dispatch(base);
    } else
        bus_producer_poll(p, TEST_POLL_STEP_MS);
}

/* Serves reports (the loop when there is one, else poll) until message i
 * has its report or the deadline passed. */
static void wait_report(struct bus_producer *p, struct event_base *base, int i)
{
    int64_t deadline = now_ms() + TEST_DEADLINE_MS;
    while (reports[i] == RD_KAFKA_RESP_ERR__IN_PROGRESS && now_ms() < deadline) {
        serve_reports(p, base);
    }
    assert_int_not_equal(reports[i], RD_KAFKA_RESP_ERR__IN_PROGRESS);
}

/* Enqueues message i as a caller does: a failed enqueue is tried again
 * after serving reports, until the deadline. */
static void produce(struct bus_producer *p, struct event_base *base, int i)
{
    char key[64];
    snprintf(key, sizeof(key), "fatal-%ld-%d", (long)getpid(), i);
    reports[i] = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    int64_t deadline = now_ms() + TEST_DEADLINE_MS;
    while (bus_produce(p, TOPIC_TIER_EVENTS, key, key, strlen(key), NULL, &reports[i]) != 0) {
        assert_true(now_ms() < deadline);
        serve_reports(p, base);
    }
}

static double recreated_total(void)
{
    struct metric_family *f = metrics_counter(
        "tessera_kafka_producer_recreated_total",
        "Kafka producer handles replaced after a fatal error, by the error.", "error");
    return metrics_value(metrics_with(f, "OUT_OF_ORDER_SEQUENCE_NUMBER"));
}

static void fatal_then_deliver(struct event_base *base)
{
    char err[256];
    struct bus_config cfg = {
        .bootstrap = bootstrap, .client_id = "test-fatal", .linger_ms = TEST_LINGER_MS};
    struct bus_producer *p = bus_producer_new(&cfg, base, on_delivery, NULL, err, sizeof(err));
    assert_non_null(p);
    double recreated_before = recreated_total();

    produce(p, base, MSG_FIRST);
    wait_report(p, base, MSG_FIRST);
    assert_int_equal(reports[MSG_FIRST], RD_KAFKA_RESP_ERR_NO_ERROR);

    produce(p, base, MSG_HELD);
    assert_int_equal(rd_kafka_test_fatal_error(bus_producer_handle(p),
                                               RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                               "test: broker lost acknowledged messages"),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    wait_report(p, base, MSG_HELD);
    assert_int_not_equal(reports[MSG_HELD], RD_KAFKA_RESP_ERR_NO_ERROR);

    produce(p, base, MSG_AFTER);
    wait_report(p, base, MSG_AFTER);
    assert_int_equal(reports[MSG_AFTER], RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_fatal_error(bus_producer_handle(p), NULL, 0),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(bus_producer_outstanding(p), 0);
    assert_true(recreated_total() == recreated_before + 1);
    bus_producer_free(p);
}

/* The pipelines' and batch jobs' way: the caller polls and flushes. */
static void test_blocking_producer_recovers(void **state)
{
    (void)state;
    fatal_then_deliver(NULL);
}

/* Ingest's way: reports are served on a libevent loop by the queue
 * watcher, which must follow the new handle. */
static void test_loop_producer_recovers(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    fatal_then_deliver(base);
    event_base_free(base);
}

/* ---------------------------------------------------------------- tail */
static int tail_fatal_calls;

static void on_tail_message(void *ctx, const rd_kafka_message_t *rkm)
{
    (void)ctx;
    (void)rkm;
}

/* What ingest's on_verdicts_fatal does first: /livez says failed. */
static void on_tail_fatal(void *ctx)
{
    tail_fatal_calls++;
    admin_server_set_failed(ctx, "test: the tail hit a fatal error");
}

static void loop_step(struct event_base *base)
{
    struct timeval step = {0, TEST_POLL_STEP_MS * 1000};
    event_base_loopexit(base, &step);
    event_base_dispatch(base);
}

struct livez_get {
    char url[64];
    long status;
    atomic_bool done;
};

static void *livez_get_run(void *arg)
{
    struct livez_get *g = arg;
    free(ops_http_get(g->url, &g->status));
    atomic_store(&g->done, true);
    return NULL;
}

/* The status of /livez; the admin server answers on this thread's loop,
 * so the GET runs on its own thread while the loop is served. */
static long livez_status(struct event_base *base, struct admin_server *admin)
{
    struct livez_get g = {.status = 0};
    atomic_init(&g.done, false);
    snprintf(g.url, sizeof(g.url), "http://127.0.0.1:%u/livez", admin_server_port(admin));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, livez_get_run, &g), 0);
    int64_t deadline = now_ms() + TEST_DEADLINE_MS;
    while (!atomic_load(&g.done) && now_ms() < deadline)
        loop_step(base);
    pthread_join(th, NULL);
    return g.status;
}

static bool always_ready(void *ctx, json_t *checks)
{
    (void)ctx;
    (void)checks;
    return true;
}

static void test_tail_fatal_tells_its_owner_once(void **state)
{
    (void)state;
    char err[256];
    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct admin_server *admin =
        admin_server_new(base, "127.0.0.1", 0, "test", always_ready, NULL, NULL, err, sizeof(err));
    assert_non_null(admin);
    struct bus_config cfg = {.bootstrap = bootstrap, .client_id = "test-tail-fatal"};
    struct bus_tail *t =
        bus_tail_new(&cfg, base, TOPIC_LEDGER_EVENTS, on_tail_message, NULL, err, sizeof(err));
    assert_non_null(t);
    bus_tail_on_fatal(t, on_tail_fatal, admin);
    tail_fatal_calls = 0;
    for (int i = 0; i < 5; i++)
        loop_step(base);
    assert_int_equal(tail_fatal_calls, 0); /* nothing told while the handle is healthy */
    assert_true(bus_tail_ready(t));
    assert_int_equal(livez_status(base, admin), 200);

    assert_int_equal(rd_kafka_test_fatal_error(bus_tail_handle(t),
                                               RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID,
                                               "test_bus_fatal"),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    int64_t deadline = now_ms() + TEST_DEADLINE_MS;
    while (tail_fatal_calls == 0 && now_ms() < deadline)
        loop_step(base);
    assert_int_equal(tail_fatal_calls, 1);
    assert_false(bus_tail_ready(t));
    for (int i = 0; i < 5; i++)
        loop_step(base);
    assert_int_equal(tail_fatal_calls, 1); /* once, not at every drain */
    assert_int_equal(livez_status(base, admin), 503);

    bus_tail_free(t); /* returns: a fatal handle is destroyed without a close */
    admin_server_free(admin);
    event_base_free(base);
}

static int broker_setup(void **state)
{
    (void)state;
    const char *given = getenv("TESSERA_KAFKA_BOOTSTRAP");
    if (given == NULL || given[0] == '\0') {
        fprintf(stderr, "TESSERA_KAFKA_BOOTSTRAP is not set (run through make test)\n");
        return -1;
    }
    snprintf(bootstrap, sizeof(bootstrap), "%s", given);
    return 0;
}

int main(void)
{
    log_init("test_bus_fatal", LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocking_producer_recovers),
        cmocka_unit_test(test_loop_producer_recovers),
        cmocka_unit_test(test_tail_fatal_tells_its_owner_once),
    };
    return cmocka_run_group_tests_name("bus_fatal", tests, broker_setup, NULL);
}
