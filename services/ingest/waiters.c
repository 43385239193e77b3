/* Commands waiting for the ledger's verdict. A command goes to
 * ledger-commands keyed by member id; the ledger's verdict comes back on
 * ledger-events, which every ingest instance tails; the instance holding a
 * waiter for that command id hands the verdict to it. Past the wait budget
 * the waiter ends with WAIT_TIMEOUT (a single request answers 202 and an
 * operation id to poll). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/topics.h"
#include "ingest.h"
#include "profile_cache.h"
#include "log/log.h"
#include "metrics/metrics.h"

struct waiter {
    struct waiter *next;
    char command_id[UUID_STR_SIZE];
    char tenant_id[INGEST_KEY_MAX]; /* from the command: who may see it pending */
    waiter_done_fn done;
    void *arg;
    struct event *timer;
    struct ingest *app;
    double sent_s; /* when the command was produced (metrics_now_seconds) */
};

/* Where a synchronous command's time goes, per stage: "ack" from produce
 * to the broker's acknowledgement, "verdict" from produce to the verdict
 * here, "tail" from the ledger producing the verdict (its Kafka
 * timestamp) to this instance reading it. */
/* Kafka timestamps are wall-clock (librdkafka's, not the service clock). */
static double wall_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void wait_observe(const char *stage, double seconds)
{
    metrics_observe(
        metrics_with(metrics_histogram("tessera_ledger_wait_stage_seconds",
                                       "Time of a synchronous ledger command by stage: ack "
                                       "(produce to broker ack), verdict (produce to verdict "
                                       "read from Kafka), verdict_fast (the same from Redis), tail "
                                       "(verdict produced to verdict read).",
                                       "stage", metrics_buckets_seconds,
                                       metrics_buckets_seconds_count),
                     stage),
        seconds > 0 ? seconds : 0);
}

static unsigned bucket_of(const char *command_id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *c = command_id; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    return h % INGEST_WAITERS_BUCKETS;
}

static struct waiter **find_slot(struct ingest *app, const char *command_id)
{
    struct waiter **w = &app->waiters[bucket_of(command_id)];
    while (*w && strcmp((*w)->command_id, command_id) != 0)
        w = &(*w)->next;
    return w;
}

bool waiter_pending(struct ingest *app, const char *command_id)
{
    return *find_slot(app, command_id) != NULL;
}

bool waiter_pending_in_tenant(struct ingest *app, const char *tenant_id, const char *command_id)
{
    const struct waiter *w = *find_slot(app, command_id);
    return w && strcmp(w->tenant_id, tenant_id) == 0;
}

/* The tenant of an encoded command (a decode of a few hundred bytes). */
static void command_tenant(const uint8_t *command, size_t len, char out[INGEST_KEY_MAX])
{
    char why[128];
    Envelope *env = envelope_decode(command, len, why, sizeof(why));
    snprintf(out, INGEST_KEY_MAX, "%s", env && env->tenant_id ? env->tenant_id : "");
    envelope_free(env);
}

/* Unlinks the waiter of command_id and ends it with outcome. */
static void waiter_end(struct ingest *app, const char *command_id, enum wait_outcome outcome,
                       const Envelope *verdict)
{
    struct waiter **slot = find_slot(app, command_id);
    struct waiter *w = *slot;
    if (!w)
        return;
    *slot = w->next;
    event_free(w->timer);
    waiter_done_fn done = w->done;
    void *arg = w->arg;
    free(w);
    done(arg, outcome, verdict);
}

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;
    w->app->wait_timeouts++;
    char command_id[UUID_STR_SIZE];
    snprintf(command_id, sizeof(command_id), "%s", w->command_id);
    waiter_end(w->app, command_id, WAIT_TIMEOUT, NULL);
}

int waiter_send(struct ingest *app, const char *command_id, const char *member_id,
                const uint8_t *command, size_t len, rd_kafka_headers_t *headers, int wait_ms,
                waiter_done_fn done, void *arg)
{
    if (waiter_pending(app, command_id)) {
        if (headers)
            rd_kafka_headers_destroy(headers);
        return -1;
    }
    struct delivery *d = delivery_new(DELIVERY_COMMAND, command_id);
    rd_kafka_resp_err_t e = bus_produce(ingest_command_producer(app, member_id),
                                        TOPIC_LEDGER_COMMANDS, member_id, command, len, headers, d);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        free(d); /* no delivery report comes for a message not enqueued */
        log_fields(LOG_ERROR, "cannot enqueue a ledger command", "error", rd_kafka_err2str(e),
                   NULL);
        return -2;
    }
    struct waiter *w = calloc(1, sizeof(*w));
    assert(w);
    snprintf(w->command_id, sizeof(w->command_id), "%s", command_id);
    command_tenant(command, len, w->tenant_id);
    w->done = done;
    w->arg = arg;
    w->app = app;
    w->timer = evtimer_new(app->base, on_wait_timeout, w);
    w->sent_s = metrics_now_seconds();
    *find_slot(app, w->command_id) = w;
    app->commands_sent++;
    struct timeval tv = {.tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000};
    evtimer_add(w->timer, &tv);
    return 0;
}

/* ---------------------------------------------- a single request waiting */
/* 202 with the operation to poll, once the 202 is recorded for every
 * instance (operations_record_pending). */
static void answer_pending(struct req *r)
{
    json_t *pending = json_pack("{s:s, s:s}", "operation_id", r->command_id, "status", "pending");
    if (r->audit_action) { /* audited as pending: the verdict is in the ledger's record */
        audit_verdict_then_answer(r, 202, pending); /* answers and ends r */
        return;
    }
    char location[96];
    snprintf(location, sizeof(location), "/v1/operations/%s", r->command_id);
    req_finish_with(r, 202, pending, "Location", location, NULL);
}

static void request_done(void *arg, enum wait_outcome outcome, const Envelope *verdict)
{
    struct req *r = arg;
    if (outcome == WAIT_VERDICT) {
        json_t *body = NULL;
        int status = verdict_to_response(verdict, &body);
        if (r->idem_key[0])
            idem_store_answer(r->app, &r->caller, r->idem_key, status, body);
        if (r->audit_action) {
            audit_verdict_then_answer(r, status, body); /* answers and ends r */
            return;
        }
        req_finish_verdict(r, status, body);
    } else if (outcome == WAIT_TIMEOUT) {
        operations_record_pending(r, answer_pending); /* answers and ends r */
    } else {
        req_fail(r, 503, "unavailable",
                 outcome == WAIT_SHUTDOWN ? "the service is shutting down"
                                          : "the ledger cannot be reached; retry");
    }
}

void waiter_send_and_wait(struct req *r)
{
    http_exchange_log_field(r->ex, "correlation_id", r->command_id);
    rd_kafka_headers_t *headers = r->headers;
    r->headers = NULL;                /* waiter_send takes them in every case */
    req_change_state(r, REQ_WAITING); /* request_done runs it next */
    int rc = waiter_send(r->app, r->command_id, r->member_id, r->command, r->command_len, headers,
                         r->wait_ms, request_done, r);
    if (rc == -1) {
        req_fail(r, 409, "request_in_progress",
                 "a request with this Idempotency-Key is still in progress");
    } else if (rc < 0) {
        req_fail(r, 503, "unavailable", "the ledger cannot be reached; retry");
    }
}

/* ---------------------------------------------- verdicts and deliveries */
/* Delivery report of a command: only failures end a waiter here. */
void waiters_on_delivery(struct ingest *app, const char *command_id, rd_kafka_resp_err_t err)
{
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const struct waiter *w = *find_slot(app, command_id);
        if (w)
            wait_observe("ack", metrics_now_seconds() - w->sent_s);
        return;
    }
    log_fields(LOG_ERROR, "ledger command not delivered", "error", rd_kafka_err2str(err), NULL);
    waiter_end(app, command_id, WAIT_UNDELIVERED, NULL);
}

static const char *verdict_command_id(const Envelope *env)
{
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_POSTED)
        return env->ledger_posted->command_id;
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_REJECTED)
        return env->ledger_rejected->command_id;
    return NULL;
}

/* A coupon issued or redeemed on its own (the verdict carries it), or a
 * purchase with a discount beyond its tier's (a coupon's or a discount
 * card's: the verdict does not say which): the member's cached coupons go,
 * on every instance that sees it. */
static bool verdict_touches_coupons(const Envelope *env)
{
    if (env->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_POSTED ||
        !env->tenant_id[0] || !env->member_id[0])
        return false;
    const LedgerPosted *p = env->ledger_posted;
    return p->coupon != NULL ||
           (strcmp(p->command_type, "purchase") == 0 && p->discount_applied > p->tier_discount);
}

/* Drops the member's cached coupons when the verdict changed them (before
 * the answer, so a read after it sees the change), then ends the waiter of
 * the verdict env, if it waits here; produced_ms is the verdict's Kafka
 * timestamp (0 when it came another way). Every instance sees every
 * verdict both ways, so the coupons are dropped on all of them. */
static void waiters_on_verdict(struct ingest *app, const Envelope *env, int64_t produced_ms,
                               bool fast)
{
    if (verdict_touches_coupons(env))
        profile_cache_forget_coupons(app, env->tenant_id, env->member_id);
    const char *command_id = verdict_command_id(env);
    struct waiter *w = command_id ? *find_slot(app, command_id) : NULL;
    if (!w)
        return;
    wait_observe(fast ? "verdict_fast" : "verdict", metrics_now_seconds() - w->sent_s);
    if (produced_ms > 0)
        wait_observe("tail", wall_now_s() - (double)produced_ms / 1000.0);
    app->verdicts_matched++;
    app->fast_verdicts += fast;
    waiter_end(app, command_id, WAIT_VERDICT, env);
}

/* Every ledger event passes here; most belong to other instances. The
 * CloudEvents type header saves decoding events that are not verdicts. */
void waiters_on_event(void *ctx, const rd_kafka_message_t *rkm)
{
    static const char verdict_prefix[] = "tessera.ledger.v1.Ledger";
    struct ingest *app = ctx;
    rd_kafka_headers_t *hdrs = NULL;
    const void *type = NULL;
    size_t type_len = 0;
    if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(hdrs, "ce_type", &type, &type_len) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        (type_len < sizeof(verdict_prefix) - 1 ||
         memcmp(type, verdict_prefix, sizeof(verdict_prefix) - 1) != 0))
        return;
    char why[128];
    Envelope *env = envelope_decode(rkm->payload, rkm->len, why, sizeof(why));
    if (!env)
        return;
    rd_kafka_timestamp_type_t ts_type;
    int64_t produced_ms = rd_kafka_message_timestamp(rkm, &ts_type);
    waiters_on_verdict(app, env, ts_type == RD_KAFKA_TIMESTAMP_CREATE_TIME ? produced_ms : 0,
                       false);
    envelope_free(env);
}

void waiters_on_published(void *ctx, const void *payload, size_t len)
{
    char why[128];
    Envelope *env = envelope_decode(payload, len, why, sizeof(why));
    if (!env)
        return;
    waiters_on_verdict(ctx, env, 0, true);
    envelope_free(env);
}

void waiters_fail_all(struct ingest *app)
{
    for (unsigned i = 0; i < INGEST_WAITERS_BUCKETS; i++) {
        while (app->waiters[i]) {
            char command_id[UUID_STR_SIZE];
            snprintf(command_id, sizeof(command_id), "%s", app->waiters[i]->command_id);
            waiter_end(app, command_id, WAIT_SHUTDOWN, NULL);
        }
    }
}
