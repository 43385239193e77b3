/* The senders shared by ingest's sweeps: see sweep_send.h. */
#include <stdlib.h>

#include "bus/topics.h"
#include "log/log.h"
#include "sweep_send.h"

void sweep_send(struct ingest *app, const char *topic, Envelope *env, int kind, const char *id,
                const char *what)
{
    size_t len = 0;
    uint8_t *bin = envelope_encode(env, &len);
    if (!bin)
        return;
    rd_kafka_headers_t *headers = envelope_cloudevents_headers(env, "/tessera/ingest");
    struct delivery *d = delivery_new(kind, id);
    if (bus_produce(ingest_producer_for(app, topic, env->member_id), topic, env->member_id, bin,
                    len, headers, d) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        free(d);
        log_fields(LOG_WARN, "sweep send failed; the next round resends", "sweep", what, "topic",
                   topic, NULL);
    }
    free(bin);
}

void sweep_send_command(struct ingest *app, struct event_meta *meta, IssueCoupon *ic,
                        const char *what)
{
    Envelope env;
    Actor actor;
    envelope_init(&env, &actor, meta);
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_COUPON;
    env.issue_coupon = ic;
    sweep_send(app, TOPIC_LEDGER_COMMANDS, &env, DELIVERY_COMMAND, ic->command_id, what);
}

void sweep_send_notice(struct ingest *app, struct event_meta *meta,
                       Tessera__Notification__V1__NotifyRequest *note, int kind, const char *id,
                       const char *what)
{
    Envelope env;
    Actor actor;
    envelope_init(&env, &actor, meta);
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST;
    env.notify_request = note;
    sweep_send(app, TOPIC_NOTIFY_REQUESTS, &env, kind, id, what);
}

static void on_marked(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    if (!res)
        log_fields(LOG_WARN, "could not mark a notice sent; it is sent again", "sweep",
                   (const char *)arg, "error", err, NULL);
}

void sweep_notice_delivered(struct ingest *app, const char *noticed_sql, const char *id,
                            rd_kafka_resp_err_t err, const char *what)
{
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_fields(LOG_WARN, "notice not delivered; a later round resends", "sweep", what, "error",
                   rd_kafka_err2str(err), NULL);
        return;
    }
    const char *params[1] = {id};
    /* what is one of the sweeps' string literals: it outlives the query */
    if (pg_pool_query(app->pg, noticed_sql, 1, params, on_marked, (void *)what) < 0)
        log_fields(LOG_WARN, "could not queue a notice mark; it is sent again", "sweep", what,
                   NULL);
}
