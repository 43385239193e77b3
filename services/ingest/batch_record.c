/* Recording a batch's answers in chunks as its verdicts arrive
 * (batch_record.h). */
#include "batch_record.h"

#include <stdio.h>
#include <stdlib.h>

#include "db/db.h"
#include "ingest.h"
#include "log/log.h"

struct batch_recorder {
    struct ingest *app;
    char tenant_id[INGEST_KEY_MAX];
    struct db_array keys, statuses, bodies; /* the answers not yet sent */
    bool in_flight;                         /* a chunk's statement is running */
    bool finished;                          /* no more answers will come */
};

/* HOT-friendly: only unindexed columns change (idempotency_keys' row). */
static const char record_sql[] =
    "UPDATE idempotency_keys i SET response_status = u.s, response_body = u.b "
    "FROM unnest($2::text[], $3::int[], $4::text[]) AS u(k, s, b) "
    "WHERE i.tenant_id = $1 AND i.idempotency_key = u.k";

static void arrays_reset(struct batch_recorder *rec)
{
    db_array_free(&rec->keys), db_array_free(&rec->statuses), db_array_free(&rec->bodies);
    db_array_init(&rec->keys), db_array_init(&rec->statuses), db_array_init(&rec->bodies);
}

static void recorder_free(struct batch_recorder *rec)
{
    db_array_free(&rec->keys), db_array_free(&rec->statuses), db_array_free(&rec->bodies);
    free(rec);
}

static void flush(struct batch_recorder *rec);

/* Undoes db_array_finish (its closing brace) so more answers can follow. */
static void array_reopen(struct db_array *a)
{
    a->buf[--a->len] = '\0';
}

static void on_recorded(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct batch_recorder *rec = arg;
    if (!res)
        log_fields(LOG_WARN, "could not record the batch's answers", "error", err ? err : "", NULL);
    rec->in_flight = false;
    if (rec->keys.count >= BATCH_RECORD_CHUNK || (rec->finished && rec->keys.count > 0))
        flush(rec);
    else if (rec->finished)
        recorder_free(rec);
}

/* Sends the waiting answers as one statement. When the pool refuses it
 * they stay waiting for the next answer; once finished they are dropped
 * with a warning (their keys' retries resume the commands). */
static void flush(struct batch_recorder *rec)
{
    const char *p[4] = {rec->tenant_id, db_array_finish(&rec->keys),
                        db_array_finish(&rec->statuses), db_array_finish(&rec->bodies)};
    if (pg_pool_query(rec->app->pg, record_sql, 4, p, on_recorded, rec) == 0) {
        rec->in_flight = true;
        arrays_reset(rec);
        return;
    }
    if (!rec->finished) {
        array_reopen(&rec->keys), array_reopen(&rec->statuses), array_reopen(&rec->bodies);
        return;
    }
    log_warn("could not queue the batch's answers");
    recorder_free(rec);
}

struct batch_recorder *batch_recorder_new(struct ingest *app, const char *tenant_id)
{
    struct batch_recorder *rec = calloc(1, sizeof(*rec));
    if (!rec)
        return NULL;
    rec->app = app;
    snprintf(rec->tenant_id, sizeof(rec->tenant_id), "%s", tenant_id);
    db_array_init(&rec->keys), db_array_init(&rec->statuses), db_array_init(&rec->bodies);
    return rec;
}

void batch_recorder_add(struct batch_recorder *rec, const char *key, int status,
                        const json_t *result)
{
    if (!rec)
        return;
    char *text = result ? json_dumps(result, JSON_COMPACT) : NULL;
    db_array_add(&rec->keys, key);
    db_array_add_int(&rec->statuses, status);
    db_array_add(&rec->bodies, text ? text : "null");
    free(text);
    if (!rec->in_flight && rec->keys.count >= BATCH_RECORD_CHUNK)
        flush(rec);
}

void batch_recorder_finish(struct batch_recorder *rec)
{
    if (!rec)
        return;
    rec->finished = true;
    if (rec->in_flight)
        return; /* on_recorded sends the rest */
    if (rec->keys.count > 0)
        flush(rec);
    else
        recorder_free(rec);
}
