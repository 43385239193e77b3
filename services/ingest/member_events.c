/* Publishing ingest's outbox: MemberRegistered and earning rule changes
 * on member-events, what notification hears of members on
 * notify-requests (notify_out.c), each row on the topic it names. The event is sent right after its
 * row commits and the row deleted once Kafka has it. A new row is leased to whoever inserted it for
 * OUTBOX_LEASE_S (libs/outbox/outbox.h); while it is in flight here its lease is renewed, so
 * another instance never sends it too. A sweep every few seconds claims the rows whose lease ran
 * out (a crash, a failed delivery), skipping those in flight here: what librdkafka still holds is
 * never produced twice (consumers dedupe by event id anyway). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/topics.h"
#include "db/db.h"
#include "ids/uuid7.h"
#include "ingest.h"
#include "log/log.h"
#include "outbox/outbox.h"

#define SWEEP_BATCH   "200"
#define RENEW_AFTER_S (OUTBOX_LEASE_S / 3) /* in flight this long: renew its lease */
#define IN_FLIGHT_MAX 100000               /* beyond, a row is not tracked: its lease guards it */

/* Outbox rows produced and not yet reported, by id (a few hundred at
 * most under load: linear lookups). */
struct member_relay {
    char owner[OUTBOX_OWNER_MAX];
    struct relay_row {
        int64_t id;
        double sent_s; /* monotonic */
    } * rows;
    size_t count, cap;
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The relay, made on first use; NULL when out of memory. */
static struct member_relay *relay_of(struct ingest *app)
{
    if (!app->relay) {
        app->relay = calloc(1, sizeof(*app->relay));
        if (!app->relay)
            return NULL;
        char id[UUID_STR_SIZE];
        uuid7_generate(id);
        snprintf(app->relay->owner, sizeof(app->relay->owner), "ingest/%s", id);
    }
    return app->relay;
}

static void relay_track(struct ingest *app, int64_t id)
{
    struct member_relay *m = relay_of(app);
    if (!m || m->count == IN_FLIGHT_MAX)
        return;
    if (m->count == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct relay_row *rows = realloc(m->rows, cap * sizeof(*rows));
        if (!rows)
            return;
        m->rows = rows;
        m->cap = cap;
    }
    m->rows[m->count++] = (struct relay_row){.id = id, .sent_s = mono_s()};
}

static void relay_untrack(struct ingest *app, int64_t id)
{
    struct member_relay *m = app->relay;
    for (size_t i = 0; m && i < m->count; i++)
        if (m->rows[i].id == id) {
            m->rows[i] = m->rows[--m->count];
            return;
        }
}

/* The ids in flight for at least older_s, as a bigint[] literal in a. */
static void relay_ids(const struct member_relay *m, double older_s, struct db_array *a)
{
    double now_s = mono_s();
    db_array_init(a);
    for (size_t i = 0; m && i < m->count; i++)
        if (now_s - m->rows[i].sent_s >= older_s)
            db_array_add_int(a, m->rows[i].id);
}

void member_events_free(struct ingest *app)
{
    if (!app->relay)
        return;
    free(app->relay->rows);
    free(app->relay);
    app->relay = NULL;
}

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
    else if (d->kind == DELIVERY_COUPON_NOTICE)
        coupon_notice_on_delivery(ctx, d->id, err);
    else if (d->kind == DELIVERY_REDEMPTION_NOTICE)
        redemption_notice_on_delivery(ctx, d->id, err);
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
    relay_untrack(app, strtoll(outbox_id, NULL, 10));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_fields(LOG_WARN, "member event not delivered; the sweep will retry", "error",
                   rd_kafka_err2str(err), NULL);
        return;
    }
    const char *params[1] = {outbox_id};
    if (pg_pool_query(app->pg, "DELETE FROM outbox WHERE id = $1", 1, params, on_deleted, NULL) < 0)
        log_warn("could not queue an outbox delete");
    app->relayed_events++;
}

void member_events_publish(struct ingest *app, const char *outbox_id, const char *member_id,
                           const uint8_t *payload, size_t len)
{
    outbox_publish_to(app, outbox_id, TOPIC_MEMBER_EVENTS, member_id, payload, len);
}

/* Each outbox row names its topic: member events, the settings commands a
 * new tenant's template sends to the ledger (tenants.c), and what ingest
 * asks of notification (notify-requests, keyed by member or tenant). */
void outbox_publish_to(struct ingest *app, const char *outbox_id, const char *topic,
                       const char *key, const uint8_t *payload, size_t len)
{
    char why[128];
    Envelope *env = envelope_decode(payload, len, why, sizeof(why));
    rd_kafka_headers_t *headers = env ? envelope_cloudevents_headers(env, "/tessera/ingest") : NULL;
    envelope_free(env);
    struct delivery *d = delivery_new(DELIVERY_MEMBER_EVENT, outbox_id);
    int64_t id = strtoll(outbox_id, NULL, 10);
    relay_track(app, id);
    rd_kafka_resp_err_t e = bus_produce(app->producer, topic, key, payload, len, headers, d);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        free(d); /* no delivery report comes for a message not enqueued */
        relay_untrack(app, id);
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_fields(LOG_WARN, "member event not enqueued; the sweep will retry", "error",
                   rd_kafka_err2str(e), NULL);
}

void outbox_events_publish_rows(struct ingest *app, const PGresult *res, int col)
{
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, col))
            continue;
        size_t len = 0;
        unsigned char *raw =
            PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, col + 3), &len);
        if (!raw)
            continue; /* no memory: the sweep sends it once its lease is over */
        outbox_publish_to(app, PQgetvalue(res, i, col), PQgetvalue(res, i, col + 1),
                          PQgetvalue(res, i, col + 2), raw, len);
        PQfreemem(raw);
    }
}

static void on_stranded(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ingest *app = arg;
    if (!res)
        return; /* the database is down; the next sweep tries again */
    outbox_events_publish_rows(app, res, 0);
}

static void on_renewed(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    if (!res)
        log_fields(LOG_WARN, "could not renew the lease of member events in flight", "error", err,
                   NULL);
}

/* Every OUTBOX_SWEEP_S (a libevent timer): renews the lease of rows in
 * flight a while, then claims the stranded ones, minus those in flight. */
void member_events_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct ingest *app = arg;
    struct member_relay *m = relay_of(app);
    if (app->stopping || !m || !pg_pool_healthy(app->pg))
        return;
    struct db_array ids;
    relay_ids(m, RENEW_AFTER_S, &ids);
    if (ids.count > 0) {
        const char *p[2] = {m->owner, db_array_finish(&ids)};
        if (pg_pool_query(app->pg, OUTBOX_RENEW_SQL, 2, p, on_renewed, NULL) < 0)
            log_warn("could not queue an outbox lease renewal");
    }
    db_array_free(&ids);
    relay_ids(m, 0, &ids);
    const char *p[3] = {m->owner, db_array_finish(&ids), SWEEP_BATCH};
    if (pg_pool_query(app->pg, OUTBOX_CLAIM_SQL, 3, p, on_stranded, app) < 0)
        log_warn("could not queue the outbox sweep");
    db_array_free(&ids);
}
