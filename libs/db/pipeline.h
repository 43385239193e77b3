/* Several statements in one round trip (libpq pipeline mode): queued
 * with the function that reads each one's result, sent together with one
 * Sync, then their results read in order. The ledger sends a batch's
 * loads this way, and a small batch's writes: on this machine every round
 * trip waits for a core behind the broker, PostgreSQL and the services,
 * so a batch's cost grew with its statement count, not its rows.
 *
 * Inside an open transaction (BEGIN), the Sync commits nothing: a failed
 * statement aborts the transaction like any other, the statements after
 * it are skipped (PGRES_PIPELINE_ABORTED) and the caller rolls back. COPY
 * cannot run in pipeline mode: send it before or after. */
#ifndef TESSERA_DB_PIPELINE_H
#define TESSERA_DB_PIPELINE_H

#include <libpq-fe.h>
#include <stddef.h>

/* Reads one statement's result (TUPLES_OK or COMMAND_OK; do not PQclear
 * it). 0, or -1 with err: the run fails and the caller rolls back. */
typedef int (*db_pipeline_read_fn)(void *ctx, const PGresult *res, char *err, size_t err_len);

struct db_pipeline_stmt {
    const char *sql; /* not copied: a constant */
    int nparams;
    char **params; /* copied */
    db_pipeline_read_fn read;
    void *ctx;
};

struct db_pipeline {
    struct db_pipeline_stmt *stmts;
    size_t count, cap;
};

void db_pipeline_init(struct db_pipeline *pl);
/* Queues a statement; the parameters are copied (NULL element = SQL
 * NULL), sql must outlive the run. read may be NULL (no rows wanted). */
void db_pipeline_add(struct db_pipeline *pl, const char *sql, int nparams,
                     const char *const *params, db_pipeline_read_fn read, void *ctx);
/* Sends every queued statement and one Sync, then reads the results in
 * order, calling each statement's read. 0, or -1 with err and the failed
 * statement noted (db_failure_last); every result is read either way and
 * the connection leaves pipeline mode. Empties the queue. */
int db_pipeline_run(PGconn *pg, struct db_pipeline *pl, char *err, size_t err_len)
    __attribute__((warn_unused_result));
void db_pipeline_free(struct db_pipeline *pl);

#endif
