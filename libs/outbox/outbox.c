#include "outbox/outbox.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/copy.h"
#include "db/db.h"
#include "events/codec.h"
#include "log/log.h"

int outbox_append(PGconn *pg, const struct outbox_row *rows, size_t count, int64_t *ids, char *err,
                  size_t err_len)
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
    /* The new rows take the column's default lease: this relay sends them
     * after commit (see outbox.h). */
    struct db_copy copy;
    db_copy_init(&copy);
    for (size_t i = 0; i < count; i++) {
        int64_t id = db_int_at(res, (int)i, 0);
        if (ids)
            ids[i] = id;
        db_copy_int(&copy, id);
        db_copy_text(&copy, rows[i].topic);
        db_copy_text(&copy, rows[i].key);
        db_copy_bytea(&copy, rows[i].payload, rows[i].len);
        db_copy_end_row(&copy);
    }
    PQclear(res);
    int rc =
        db_copy_send(pg, "COPY outbox (id, topic, key, payload) FROM STDIN", &copy, err, err_len);
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
    /* Through the primary key whatever the statistics (db/migrate.c). */
    PGresult *res =
        db_query(pg, "SELECT outbox_delete($1::bigint[])", 1, params, err, err_len, NULL);
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

#define STR_(x) #x
#define STR(x)  STR_(x)

/* The rows whose lease ran out longest ago, found through the index on
 * (lease_until, id) (db/migrate.c: partial, so that only a statement on
 * lease_until can use it) and updated through the primary key.
 * Ordered by id alone, and joined to the update, the planner walked the
 * primary key or the whole table, every row in flight and every dead row
 * of a busy outbox (its statistics are always stale): 0.1-4 s a sweep.
 * Rows of one batch share their lease (now() of its transaction), so the
 * id breaks the tie and a limit never leaves a batch's earlier row for a
 * later sweep. Returned in id order: a member's events are sent again in
 * the order they were made. */
const char OUTBOX_CLAIM_SQL[] =
    "WITH c AS (UPDATE outbox SET lease_owner = $1, lease_until = now() + interval '" STR(
        OUTBOX_LEASE_S) " seconds' "
                        "WHERE id = ANY(ARRAY(SELECT id FROM outbox WHERE lease_until <= now() "
                        "AND id <> ALL($2::bigint[]) ORDER BY lease_until, id LIMIT $3::int "
                        "FOR UPDATE SKIP LOCKED)) RETURNING id, topic, key, payload) "
                        "SELECT id, topic, key, payload FROM c ORDER BY id";

const char OUTBOX_RENEW_SQL[] =
    "UPDATE outbox SET lease_owner = $1, lease_until = now() + interval '" STR(
        OUTBOX_LEASE_S) " seconds' "
                        "WHERE id = ANY($2::bigint[]) AND (lease_owner IS NULL OR lease_owner = "
                        "$1)";

/* ids as a bigint[] literal in a (caller frees with db_array_free). */
static const char *ids_literal(struct db_array *a, const int64_t *ids, size_t count)
{
    db_array_init(a);
    for (size_t i = 0; i < count; i++)
        db_array_add_int(a, ids[i]);
    return db_array_finish(a);
}

/* Copies row i of a claim's result into out; false when out of memory. */
static bool stranded_copy(const PGresult *res, int i, struct outbox_stranded *out)
{
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 3), &len);
    if (!raw)
        return false;
    uint8_t *copy = malloc(len ? len : 1);
    char *topic = strdup(PQgetvalue(res, i, 1)), *key = strdup(PQgetvalue(res, i, 2));
    if (copy)
        memcpy(copy, raw, len);
    PQfreemem(raw);
    if (!copy || !topic || !key) {
        free(copy), free(topic), free(key);
        return false;
    }
    out->ids[out->count] = db_int_at(res, i, 0);
    out->rows[out->count++] =
        (struct outbox_row){.topic = topic, .key = key, .payload = copy, .len = len};
    return true;
}

int outbox_claim(PGconn *pg, const char *owner, const int64_t *skip, size_t skip_count, size_t max,
                 struct outbox_stranded *out, char *err, size_t err_len)
{
    assert(owner && strlen(owner) < OUTBOX_OWNER_MAX && (skip || skip_count == 0));
    *out = (struct outbox_stranded){0};
    char limit[24];
    snprintf(limit, sizeof(limit), "%zu",
             max > OUTBOX_RELAY_BATCH_MAX ? OUTBOX_RELAY_BATCH_MAX : max);
    struct db_array a;
    const char *params[3] = {owner, ids_literal(&a, skip, skip_count), limit};
    PGresult *res = db_query(pg, OUTBOX_CLAIM_SQL, 3, params, err, err_len, NULL);
    db_array_free(&a);
    if (!res)
        return -1;
    int n = PQntuples(res);
    out->ids = calloc((size_t)n + 1, sizeof(*out->ids));
    out->rows = calloc((size_t)n + 1, sizeof(*out->rows));
    bool ok = out->ids && out->rows;
    for (int i = 0; ok && i < n; i++)
        ok = stranded_copy(res, i, out);
    PQclear(res);
    if (!ok) {
        /* The rows claimed but not copied are sent when their lease ends. */
        outbox_stranded_free(out);
        snprintf(err, err_len, "outbox claim: out of memory");
        return -1;
    }
    return 0;
}

int outbox_renew(PGconn *pg, const char *owner, const int64_t *ids, size_t count, char *err,
                 size_t err_len)
{
    if (count == 0)
        return 0;
    struct db_array a;
    const char *params[2] = {owner, ids_literal(&a, ids, count)};
    PGresult *res = db_query(pg, OUTBOX_RENEW_SQL, 2, params, err, err_len, NULL);
    db_array_free(&a);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

void outbox_stranded_free(struct outbox_stranded *s)
{
    for (size_t i = 0; s->rows && i < s->count; i++) {
        free((char *)s->rows[i].topic);
        free((char *)s->rows[i].key);
        free((uint8_t *)s->rows[i].payload);
    }
    free(s->rows);
    free(s->ids);
    *s = (struct outbox_stranded){0};
}
