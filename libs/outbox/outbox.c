#include "outbox/outbox.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/copy.h"
#include "db/db.h"
#include "events/codec.h"
#include "log/log.h"

int outbox_append(PGconn *pg, const struct outbox_row *rows, size_t count, int64_t *ids,
                  char *err, size_t err_len)
{
    if (count == 0)
        return 0;
    /* The ids first, then the rows through COPY: COPY cannot return them,
     * and an insert through unnest() pays for parsing every payload as an
     * array element (twice the cost for a batch of ledger verdicts). */
    char n[24];
    snprintf(n, sizeof(n), "%zu", count);
    const char *params[1] = {n};
    PGresult *res = db_query(pg, "SELECT nextval('outbox_id_seq') FROM generate_series(1, $1::int)",
                             1, params, err, err_len, NULL);
    if (!res)
        return -1;
    assert((size_t)PQntuples(res) == count);
    struct db_copy copy;
    db_copy_init(&copy);
    for (size_t i = 0; i < count; i++) {
        int64_t id = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
        if (ids)
            ids[i] = id;
        db_copy_int(&copy, id);
        db_copy_text(&copy, rows[i].topic);
        db_copy_text(&copy, rows[i].key);
        db_copy_bytea(&copy, rows[i].payload, rows[i].len);
        db_copy_end_row(&copy);
    }
    PQclear(res);
    int rc = db_copy_send(pg, "COPY outbox (id, topic, key, payload) FROM STDIN", &copy, err,
                          err_len);
    db_copy_free(&copy);
    return rc;
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
