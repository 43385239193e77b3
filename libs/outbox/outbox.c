#include "outbox/outbox.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "events/codec.h"
#include "log/log.h"

int outbox_append(PGconn *pg, const struct outbox_row *rows, size_t count, int64_t *ids,
                  char *err, size_t err_len)
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
                             "SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) "
                             "RETURNING id",
                             3, params, err, err_len, NULL);
    db_array_free(&topics);
    db_array_free(&keys);
    db_array_free(&payloads);
    if (!res)
        return -1;
    for (int i = 0; ids && i < PQntuples(res) && (size_t)i < count; i++)
        ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    PQclear(res);
    return 0;
}

int outbox_delete(PGconn *pg, const int64_t *ids, size_t count, char *err, size_t err_len)
{
    if (count == 0)
        return 0;
    struct db_array a;
    db_array_init(&a);
    for (size_t i = 0; i < count; i++)
        db_array_add_int(&a, ids[i]);
    const char *params[1] = {db_array_finish(&a)};
    PGresult *res = db_query(pg, "DELETE FROM outbox WHERE id = ANY($1::bigint[])", 1, params,
                             err, err_len, NULL);
    db_array_free(&a);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

rd_kafka_resp_err_t outbox_produce(struct bus_producer *p, const char *source,
                                   const struct outbox_row *row, void *msg_opaque)
{
    char why[128];
    rd_kafka_headers_t *headers = NULL;
    Envelope *env = envelope_decode(row->payload, row->len, why, sizeof(why));
    if (env) {
        headers = envelope_cloudevents_headers(env, source);
        envelope_free(env);
    } else {
        log_fields(LOG_WARN, "outbox row is not an envelope; sent without CloudEvents headers",
                   "topic", row->topic, "reason", why, NULL);
    }
    return bus_produce(p, row->topic, row->key, row->payload, row->len, headers, msg_opaque);
}

int outbox_stranded(PGconn *pg, int older_than_s, size_t max, struct outbox_stranded *out,
                    char *err, size_t err_len)
{
    char age[24], limit[24];
    snprintf(age, sizeof(age), "%d", older_than_s);
    snprintf(limit, sizeof(limit), "%zu", max > OUTBOX_RELAY_BATCH_MAX ? OUTBOX_RELAY_BATCH_MAX : max);
    const char *params[2] = {age, limit};
    PGresult *res = db_query(pg,
                             "SELECT id, topic, key, payload FROM outbox WHERE created_at <= "
                             "now() - make_interval(secs => $1::int) ORDER BY id LIMIT $2",
                             2, params, err, err_len, NULL);
    if (!res)
        return -1;
    int n = PQntuples(res);
    out->count = 0;
    out->ids = calloc((size_t)n + 1, sizeof(*out->ids));
    out->rows = calloc((size_t)n + 1, sizeof(*out->rows));
    assert(out->ids && out->rows);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 3), &len);
        if (!raw)
            continue;
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, raw, len);
        PQfreemem(raw);
        out->ids[out->count] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        out->rows[out->count++] = (struct outbox_row){.topic = strdup(PQgetvalue(res, i, 1)),
                                                      .key = strdup(PQgetvalue(res, i, 2)),
                                                      .payload = copy,
                                                      .len = len};
    }
    PQclear(res);
    return 0;
}

void outbox_stranded_free(struct outbox_stranded *s)
{
    for (size_t i = 0; i < s->count; i++) {
        free((char *)s->rows[i].topic);
        free((char *)s->rows[i].key);
        free((uint8_t *)s->rows[i].payload);
    }
    free(s->rows);
    free(s->ids);
    *s = (struct outbox_stranded){0};
}
