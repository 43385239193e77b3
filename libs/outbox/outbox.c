#include "outbox/outbox.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "events/codec.h"
#include "log/log.h"

int outbox_append(PGconn *pg, const struct outbox_row *rows, size_t count, char *err,
                  size_t err_len)
{
    if (count == 0)
        return 0;
    struct db_array topics, keys, payloads;
    db_array_init(&topics);
    db_array_init(&keys);
    db_array_init(&payloads);
    for (size_t i = 0; i < count; i++) {
        db_array_add(&topics, rows[i].topic);
        db_array_add(&keys, rows[i].key);
        db_array_add_bytea(&payloads, rows[i].payload, rows[i].len);
    }
    const char *params[3] = {db_array_finish(&topics), db_array_finish(&keys),
                             db_array_finish(&payloads)};
    PGresult *res = db_query(pg,
                             "INSERT INTO outbox (topic, key, payload) "
                             "SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])",
                             3, params, err, err_len, NULL);
    db_array_free(&topics);
    db_array_free(&keys);
    db_array_free(&payloads);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

/* Produces one outbox row; status receives its delivery result. */
static int relay_row(struct bus_producer *p, const char *source, const char *topic,
                     const char *key, const uint8_t *payload, size_t len,
                     rd_kafka_resp_err_t *status)
{
    char why[128];
    rd_kafka_headers_t *headers = NULL;
    Envelope *env = envelope_decode(payload, len, why, sizeof(why));
    if (env) {
        headers = envelope_cloudevents_headers(env, source);
        envelope_free(env);
    } else {
        log_fields(LOG_WARN, "outbox row is not an envelope; sent without CloudEvents headers",
                   "topic", topic, "reason", why, NULL);
    }
    *status = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    return bus_produce(p, topic, key, payload, len, headers, status) == RD_KAFKA_RESP_ERR_NO_ERROR
               ? 0
               : -1;
}

int outbox_relay(PGconn *pg, struct bus_producer *p, const char *source, size_t max, char *err,
                 size_t err_len)
{
    if (max > OUTBOX_RELAY_BATCH_MAX)
        max = OUTBOX_RELAY_BATCH_MAX;
    char limit[24];
    snprintf(limit, sizeof(limit), "%zu", max);
    const char *params[1] = {limit};
    int relayed = -1;
    rd_kafka_resp_err_t *status = NULL;
    PGresult *rows = NULL;
    struct db_array done;
    db_array_init(&done);

    if (db_begin(pg, err, err_len) < 0)
        goto out;
    rows = db_query(pg,
                    "SELECT id, topic, key, payload FROM outbox ORDER BY id "
                    "LIMIT $1 FOR UPDATE SKIP LOCKED",
                    1, params, err, err_len, NULL);
    if (!rows)
        goto fail;
    int n = PQntuples(rows);
    if (n == 0) {
        relayed = 0;
        db_rollback(pg);
        goto out;
    }
    status = calloc((size_t)n, sizeof(*status));
    assert(status);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        unsigned char *payload =
            PQunescapeBytea((const unsigned char *)PQgetvalue(rows, i, 3), &len);
        if (!payload) {
            snprintf(err, err_len, "outbox: cannot unescape payload");
            goto fail;
        }
        int rc = relay_row(p, source, PQgetvalue(rows, i, 1), PQgetvalue(rows, i, 2), payload,
                           len, &status[i]);
        PQfreemem(payload);
        if (rc < 0)
            status[i] = RD_KAFKA_RESP_ERR__FAIL;
    }
    /* Every delivery report must arrive before status is freed: the
     * producer's message timeout bounds this wait even with Kafka down. */
    while (bus_producer_flush(p, OUTBOX_FLUSH_TIMEOUT_MS) < 0)
        log_fields(LOG_WARN, "outbox relay: still waiting for Kafka deliveries", NULL);
    for (int i = 0; i < n; i++)
        if (status[i] == RD_KAFKA_RESP_ERR_NO_ERROR)
            db_array_add(&done, PQgetvalue(rows, i, 0));
    if (done.count > 0) {
        const char *ids[1] = {db_array_finish(&done)};
        PGresult *del = db_query(pg, "DELETE FROM outbox WHERE id = ANY($1::bigint[])", 1, ids,
                                 err, err_len, NULL);
        if (!del)
            goto fail;
        PQclear(del);
    }
    if (db_commit(pg, err, err_len) < 0)
        goto out;
    relayed = (int)done.count;
    if (done.count < (size_t)n)
        log_fields(LOG_WARN, "outbox relay: some events not delivered; will retry", NULL);
    goto out;
fail:
    db_rollback(pg);
out:
    PQclear(rows);
    free(status);
    db_array_free(&done);
    return relayed;
}
