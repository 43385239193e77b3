#include "db/pipeline.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/db_internal.h"

void db_pipeline_init(struct db_pipeline *pl)
{
    memset(pl, 0, sizeof(*pl));
}

static void stmt_free(struct db_pipeline_stmt *s)
{
    for (int i = 0; i < s->nparams; i++)
        free(s->params[i]);
    free(s->params);
}

static void queue_clear(struct db_pipeline *pl)
{
    for (size_t i = 0; i < pl->count; i++)
        stmt_free(&pl->stmts[i]);
    pl->count = 0;
}

void db_pipeline_free(struct db_pipeline *pl)
{
    queue_clear(pl);
    free(pl->stmts);
    memset(pl, 0, sizeof(*pl));
}

void db_pipeline_add(struct db_pipeline *pl, const char *sql, int nparams,
                     const char *const *params, db_pipeline_read_fn read, void *ctx)
{
    assert(sql && nparams >= 0 && (nparams == 0 || params));
    if (pl->count == pl->cap) {
        pl->cap = pl->cap ? 2 * pl->cap : 8;
        pl->stmts = realloc(pl->stmts, pl->cap * sizeof(*pl->stmts));
        assert(pl->stmts);
    }
    struct db_pipeline_stmt *s = &pl->stmts[pl->count++];
    *s = (struct db_pipeline_stmt){.sql = sql, .nparams = nparams, .read = read, .ctx = ctx};
    s->params = calloc(nparams ? (size_t)nparams : 1, sizeof(*s->params));
    assert(s->params);
    for (int i = 0; i < nparams; i++) {
        s->params[i] = params[i] ? strdup(params[i]) : NULL;
        assert(!params[i] || s->params[i]);
    }
}

/* Reads statement s's result and the NULL that ends it. false when the
 * connection gave nothing (it broke): no later result will come. */
static bool read_one(PGconn *pg, const struct db_pipeline_stmt *s, bool *failed, char *err,
                     size_t err_len)
{
    PGresult *res = PQgetResult(pg);
    if (!res) {
        if (!*failed)
            db_set_err(err, err_len, "db_pipeline", PQerrorMessage(pg));
        db_failure_note(NULL);
        *failed = true;
        return false;
    }
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        if (!*failed && s->read && s->read(s->ctx, res, err, err_len) < 0)
            *failed = true;
    } else if (st != PGRES_PIPELINE_ABORTED && !*failed) { /* the first failure says why */
        db_set_err(err, err_len, "db_pipeline", PQresultErrorMessage(res));
        db_failure_note(res);
        *failed = true;
    }
    PQclear(res);
    while ((res = PQgetResult(pg)) != NULL) /* the end of this statement's results */
        PQclear(res);
    return true;
}

/* Sends the queue and the Sync. false with err when the connection
 * refused (it is then broken: nothing is read back). */
static bool send_all(PGconn *pg, const struct db_pipeline *pl, char *err, size_t err_len)
{
    for (size_t i = 0; i < pl->count; i++) {
        const struct db_pipeline_stmt *s = &pl->stmts[i];
        if (!PQsendQueryParams(pg, s->sql, s->nparams, NULL, (const char *const *)s->params, NULL,
                               NULL, 0)) {
            db_set_err(err, err_len, "db_pipeline send", PQerrorMessage(pg));
            return false;
        }
    }
    if (!PQpipelineSync(pg)) {
        db_set_err(err, err_len, "db_pipeline sync", PQerrorMessage(pg));
        return false;
    }
    return true;
}

/* A deferred BEGIN (db_begin_deferred) goes first in the same round trip;
 * its result is read like a statement's. */
static void begin_first(PGconn *pg, struct db_pipeline *pl)
{
    if (!db_begin_take(pg))
        return;
    db_pipeline_add(pl, "BEGIN", 0, NULL, NULL, NULL);
    struct db_pipeline_stmt begin = pl->stmts[pl->count - 1];
    memmove(pl->stmts + 1, pl->stmts, (pl->count - 1) * sizeof(*pl->stmts));
    pl->stmts[0] = begin;
}

int db_pipeline_run(PGconn *pg, struct db_pipeline *pl, char *err, size_t err_len)
{
    if (pl->count == 0)
        return 0;
    begin_first(pg, pl);
    if (!PQenterPipelineMode(pg)) {
        db_set_err(err, err_len, "db_pipeline enter", PQerrorMessage(pg));
        db_failure_note(NULL);
        queue_clear(pl);
        return -1;
    }
    bool failed = !send_all(pg, pl, err, err_len);
    if (failed) {
        db_failure_note(NULL);
    } else {
        bool up = true;
        for (size_t i = 0; i < pl->count && up; i++)
            up = read_one(pg, &pl->stmts[i], &failed, err, err_len);
        PGresult *sync = up ? PQgetResult(pg) : NULL;
        if (up && PQresultStatus(sync) != PGRES_PIPELINE_SYNC && !failed) {
            db_set_err(err, err_len, "db_pipeline", "no Sync after the statements");
            db_failure_note(NULL);
            failed = true;
        }
        PQclear(sync);
    }
    /* Fails only on a broken connection, which db_healthy then resets. */
    (void)PQexitPipelineMode(pg);
    queue_clear(pl);
    return failed ? -1 : 0;
}
