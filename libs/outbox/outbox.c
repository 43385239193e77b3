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
#include "outbox/outbox_copy.h"
#include "outbox/outbox_pack.h"

/* How many of rows (from the first) the next outbox row holds. */
static size_t chunk_take(const struct outbox_row *rows, size_t count, bool packed)
{
    return packed ? outbox_pack_take(rows, count) : 1;
}

/* One outbox row holding rows[0..n) into copy: the plain shape for one
 * event, the packed one for more (outbox_pack.h). */
static int copy_chunk(struct db_copy *copy, int64_t id, const struct outbox_row *rows, size_t n,
                      char *err, size_t err_len)
{
    if (n == 1) {
        outbox_copy_row(copy, id, rows[0].topic, rows[0].key, rows[0].payload, rows[0].len, 1);
        return 0;
    }
    size_t len = 0;
    uint8_t *packed = outbox_pack(rows, n, &len);
    if (!packed) {
        snprintf(err, err_len, "outbox: cannot pack %zu events (out of memory?)", n);
        return -1;
    }
    outbox_copy_row(copy, id, rows[0].topic, rows[0].key, packed, len, (int32_t)n);
    free(packed);
    return 0;
}

/* Inserts rows as outbox rows of one event each (packed false) or of
 * several (packed true); ids[i] gets the id of the row holding rows[i]. */
static int append_rows(PGconn *pg, const struct outbox_row *rows, size_t count, int64_t *ids,
                       bool packed, char *err, size_t err_len)
{
    if (count == 0)
        return 0;
    size_t chunks = 0;
    for (size_t i = 0; i < count; chunks++)
        i += chunk_take(rows + i, count - i, packed);
    /* The ids first, then the rows through COPY: COPY cannot return them,
     * and an insert through unnest() pays for parsing every payload as an
     * array element (twice the cost for a batch of ledger verdicts). */
    char n[24];
    snprintf(n, sizeof(n), "%zu", chunks);
    const char *params[1] = {n};
    PGresult *res = db_query(pg, "SELECT nextval('outbox_id_seq') FROM generate_series(1, $1::int)",
                             1, params, err, err_len, NULL);
    if (!res)
        return -1;
    assert((size_t)PQntuples(res) == chunks);
    /* The new rows take the column's default lease: this relay sends them
     * after commit (see outbox.h). Ids rise with the events' order, so a
     * sweep sends stranded rows again in the order their events were made. */
    struct db_copy copy;
    db_copy_init(&copy);
    outbox_copy_begin(&copy);
    int rc = 0;
    for (size_t i = 0, c = 0; rc == 0 && i < count; c++) {
        size_t take = chunk_take(rows + i, count - i, packed);
        int64_t id = db_int_at(res, (int)c, 0);
        for (size_t k = 0; ids && k < take; k++)
            ids[i + k] = id;
        rc = copy_chunk(&copy, id, rows + i, take, err, err_len);
        i += take;
    }
    PQclear(res);
    outbox_copy_end(&copy);
    if (rc == 0)
        rc = db_copy_send(pg, OUTBOX_COPY_SQL, &copy, err, err_len);
    db_copy_free(&copy);
    return rc;
}

int outbox_append(PGconn *pg, const struct outbox_row *rows, size_t count, int64_t *ids, char *err,
                  size_t err_len)
{
    return append_rows(pg, rows, count, ids, false, err, err_len);
}

int outbox_append_packed(PGconn *pg, const struct outbox_row *rows, size_t count, int64_t *ids,
                         char *err, size_t err_len)
{
    return append_rows(pg, rows, count, ids, true, err, err_len);
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

/* The rows whose lease ran out longest ago, found through the index on
 * (lease_until, id) (db/migrate.c: partial, so that only a statement on
 * lease_until can use it) and updated through the primary key, whatever
 * the statistics (the function outbox_claim, db/migrate.c).
 * Ordered by id alone, and joined to the update, the planner walked the
 * primary key or the whole table, every row in flight and every dead row
 * of a busy outbox (its statistics are always stale): 0.1-4 s a sweep.
 * Rows of one batch share their lease (now() of its transaction), so the
 * id breaks the tie and a limit never leaves a batch's earlier row for a
 * later sweep. $3 counts events: whole rows are claimed while fewer than
 * $3 events are taken (at least one row). Returned in id order: a
 * member's events are sent again in the order they were made. */
const char OUTBOX_CLAIM_SQL[] = "SELECT * FROM outbox_claim($1, $2::bigint[], $3::int)";

const char OUTBOX_RENEW_SQL[] = "SELECT outbox_renew($1, $2::bigint[])";

/* ids as a bigint[] literal in a (caller frees with db_array_free). */
static const char *ids_literal(struct db_array *a, const int64_t *ids, size_t count)
{
    db_array_init(a);
    for (size_t i = 0; i < count; i++)
        db_array_add_int(a, ids[i]);
    return db_array_finish(a);
}

/* Copies row i of a claim's result (one event, or a packed row of
 * several) into out; false when out of memory. A packed row that does not
 * unpack is left out with a warning (it is claimed again after its lease,
 * and warned about again). */
static bool stranded_copy(const PGresult *res, int i, struct outbox_stranded *out)
{
    size_t len = 0, events = (size_t)db_int_at(res, i, 4);
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 3), &len);
    if (!raw)
        return false;
    int64_t id = db_int_at(res, i, 0);
    if (events > 1) {
        if (outbox_unpack(raw, len, events, out->rows + out->count)) {
            for (size_t k = 0; k < events; k++)
                out->ids[out->count++] = id;
        } else {
            log_fields(LOG_WARN, "outbox row does not unpack; left for the next sweep", "id",
                       PQgetvalue(res, i, 0), NULL);
        }
        PQfreemem(raw);
        return true;
    }
    uint8_t *copy = malloc(len ? len : 1);
    char *topic = strdup(PQgetvalue(res, i, 1)), *key = strdup(PQgetvalue(res, i, 2));
    if (copy)
        memcpy(copy, raw, len);
    PQfreemem(raw);
    if (!copy || !topic || !key) {
        free(copy), free(topic), free(key);
        return false;
    }
    out->ids[out->count] = id;
    out->rows[out->count++] =
        (struct outbox_row){.topic = topic, .key = key, .payload = copy, .len = len};
    return true;
}

/* The events the rows of a claim's result hold. */
static size_t claimed_events(const PGresult *res)
{
    size_t n = 0;
    for (int i = 0; i < PQntuples(res); i++)
        n += (size_t)db_int_at(res, i, 4);
    return n;
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
    size_t events = claimed_events(res);
    out->ids = calloc(events + 1, sizeof(*out->ids));
    out->rows = calloc(events + 1, sizeof(*out->rows));
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
