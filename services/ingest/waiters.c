/* Requests waiting for the ledger's verdict. A command goes to
 * ledger-commands keyed by member id; the ledger's verdict comes back on
 * ledger-events, which every ingest instance tails; the instance holding a
 * waiter for that command id answers its client. Past the wait budget the
 * client gets 202 and an operation id to poll. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "ingest.h"
#include "log/log.h"

struct waiter {
    struct waiter *next;
    char command_id[UUID_STR_SIZE];
    struct req *r;
    struct event *timer;
    struct ingest *app;
};

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

/* Unlinks and frees the waiter; returns its request (still unanswered). */
static struct req *waiter_take(struct ingest *app, const char *command_id)
{
    struct waiter **slot = find_slot(app, command_id);
    struct waiter *w = *slot;
    if (!w)
        return NULL;
    *slot = w->next;
    struct req *r = w->r;
    event_free(w->timer);
    free(w);
    return r;
}

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;
    struct ingest *app = w->app;
    struct req *r = waiter_take(app, w->command_id);
    app->wait_timeouts++;
    char location[96];
    snprintf(location, sizeof(location), "/v1/operations/%s", r->command_id);
    http_reply_json(r->ex, 202,
                    json_pack("{s:s, s:s}", "operation_id", r->command_id, "status", "pending"),
                    "Location", location, NULL);
    req_free(r);
}

void waiter_send_and_wait(struct req *r)
{
    struct ingest *app = r->app;
    if (waiter_pending(app, r->command_id)) {
        http_reply_problem(r->ex, 409, "request_in_progress",
                           "a request with this Idempotency-Key is still in progress", NULL);
        req_free(r);
        return;
    }
    http_exchange_log_field(r->ex, "correlation_id", r->command_id);
    struct waiter *w = calloc(1, sizeof(*w));
    assert(w);
    snprintf(w->command_id, sizeof(w->command_id), "%s", r->command_id);
    w->r = r;
    w->app = app;
    w->timer = evtimer_new(app->base, on_wait_timeout, w);
    struct waiter **slot = find_slot(app, w->command_id);
    *slot = w;

    rd_kafka_headers_t *headers = r->headers;
    r->headers = NULL; /* bus_produce takes them in every case */
    struct delivery *d = delivery_new(DELIVERY_COMMAND, r->command_id);
    rd_kafka_resp_err_t e = bus_produce(app->producer, TOPIC_LEDGER_COMMANDS, r->member_id,
                                        r->command, r->command_len, headers, d);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        free(d); /* no delivery report comes for a message not enqueued */
        waiter_take(app, r->command_id);
        log_fields(LOG_ERROR, "cannot enqueue a ledger command", "error", rd_kafka_err2str(e),
                   NULL);
        http_reply_problem(r->ex, 503, "unavailable", "the ledger cannot be reached; retry",
                           NULL);
        req_free(r);
        return;
    }
    app->commands_sent++;
    struct timeval tv = {.tv_sec = r->wait_ms / 1000, .tv_usec = (r->wait_ms % 1000) * 1000};
    evtimer_add(w->timer, &tv);
}

/* Delivery report of a command: only failures need an answer here. */
void waiters_on_delivery(struct ingest *app, const char *command_id, rd_kafka_resp_err_t err)
{
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    struct req *r = waiter_take(app, command_id);
    log_fields(LOG_ERROR, "ledger command not delivered", "error", rd_kafka_err2str(err), NULL);
    if (r) {
        http_reply_problem(r->ex, 503, "unavailable", "the ledger cannot be reached; retry",
                           NULL);
        req_free(r);
    }
}

static const char *verdict_command_id(const Envelope *env)
{
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_POSTED)
        return env->ledger_posted->command_id;
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_REJECTED)
        return env->ledger_rejected->command_id;
    return NULL;
}

/* Every ledger event passes here; most belong to other instances. The
 * CloudEvents type header saves decoding events that are not verdicts. */
void waiters_on_event(void *ctx, const rd_kafka_message_t *rkm)
{
    struct ingest *app = ctx;
    rd_kafka_headers_t *hdrs = NULL;
    const void *type = NULL;
    size_t type_len = 0;
    if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(hdrs, "ce_type", &type, &type_len) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        !(type_len > 13 && memcmp(type, "tessera.ledger.v1.Ledger", type_len < 24 ? type_len : 24) == 0))
        return;
    char why[128];
    Envelope *env = envelope_decode(rkm->payload, rkm->len, why, sizeof(why));
    if (!env)
        return;
    const char *command_id = verdict_command_id(env);
    struct req *r = command_id ? waiter_take(app, command_id) : NULL;
    if (r) {
        app->verdicts_matched++;
        json_t *body = NULL;
        int status = verdict_to_response(env, &body);
        if (r->idem_key[0])
            idem_store_answer(app, &r->caller, r->idem_key, status, body);
        answer_json(r->ex, status, body);
        req_free(r);
    }
    envelope_free(env);
}

void waiters_fail_all(struct ingest *app)
{
    for (unsigned i = 0; i < INGEST_WAITERS_BUCKETS; i++) {
        while (app->waiters[i]) {
            struct req *r = waiter_take(app, app->waiters[i]->command_id);
            http_reply_problem(r->ex, 503, "unavailable", "the service is shutting down", NULL);
            req_free(r);
        }
    }
}
