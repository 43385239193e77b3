/* Publishing MemberRegistered from ingest's outbox. The event is sent
 * right after the registration commits and its outbox row deleted once
 * Kafka has it; a sweep every few seconds sends rows a crash or a Kafka
 * outage left behind (at least once: consumers dedupe by event id). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "ingest.h"
#include "log/log.h"

#define SWEEP_AGE_S "10" /* rows older than this are considered stranded */
#define SWEEP_BATCH "200"

struct delivery *delivery_new(int kind, const char *id)
{
    struct delivery *d = calloc(1, sizeof(*d));
    assert(d);
    d->kind = kind;
    snprintf(d->id, sizeof(d->id), "%s", id);
    return d;
}

void ingest_on_delivery(void *ctx, void *msg_opaque, rd_kafka_resp_err_t err)
{
    struct delivery *d = msg_opaque;
    if (!d)
        return;
    if (d->kind == DELIVERY_COMMAND)
        waiters_on_delivery(ctx, d->id, err);
    else
        member_events_on_delivery(ctx, d->id, err);
    free(d);
}

static void on_deleted(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    if (!res)
        log_fields(LOG_WARN, "could not delete a relayed outbox row", "error", err, NULL);
}

void member_events_on_delivery(struct ingest *app, const char *outbox_id, rd_kafka_resp_err_t err)
{
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_fields(LOG_WARN, "member event not delivered; the sweep will retry", "error",
                   rd_kafka_err2str(err), NULL);
        return;
    }
    const char *params[1] = {outbox_id};
    if (pg_pool_query(app->pg, "DELETE FROM outbox WHERE id = $1", 1, params, on_deleted, NULL) <
        0)
        log_warn("could not queue an outbox delete");
    app->relayed_events++;
}

void member_events_publish(struct ingest *app, const char *outbox_id, const char *member_id,
                           const uint8_t *payload, size_t len)
{
    char why[128];
    Envelope *env = envelope_decode(payload, len, why, sizeof(why));
    rd_kafka_headers_t *headers = env ? envelope_cloudevents_headers(env, "/tessera/ingest") : NULL;
    envelope_free(env);
    struct delivery *d = delivery_new(DELIVERY_MEMBER_EVENT, outbox_id);
    rd_kafka_resp_err_t e =
        bus_produce(app->producer, TOPIC_MEMBER_EVENTS, member_id, payload, len, headers, d);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        free(d); /* no delivery report comes for a message not enqueued */
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_fields(LOG_WARN, "member event not enqueued; the sweep will retry", "error",
                   rd_kafka_err2str(e), NULL);
}

static void on_stranded(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ingest *app = arg;
    if (!res)
        return; /* the database is down; the next sweep tries again */
    for (int i = 0; i < PQntuples(res); i++) {
        size_t len = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &len);
        if (!raw)
            continue;
        member_events_publish(app, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), raw, len);
        PQfreemem(raw);
    }
}

void member_events_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct ingest *app = arg;
    if (app->stopping || !pg_pool_healthy(app->pg))
        return;
    if (pg_pool_query(app->pg,
                      "SELECT id, key, payload FROM outbox WHERE created_at < now() - "
                      "interval '" SWEEP_AGE_S " seconds' ORDER BY id LIMIT " SWEEP_BATCH,
                      0, NULL, on_stranded, app) < 0)
        log_warn("could not queue the outbox sweep");
}
