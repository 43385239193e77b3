/* The statements a connection runs again and again, prepared once per
 * session: db_query uses them, so a consumer's per-batch statements (the
 * offsets, its loads and writes) are parsed once instead of on every batch,
 * and PostgreSQL may reuse their plans. Each PGconn is used by one thread
 * (db.h), so the cache is the thread's own: no lock on the query path. */
#ifndef TESSERA_DB_PREPARED_H
#define TESSERA_DB_PREPARED_H

#include <libpq-fe.h>

#define DB_PREPARED_PER_CONN_MAX 128 /* statements; past this, unprepared */
#define DB_PREPARED_CONNS_MAX    8   /* connections one thread keeps statements for */
#define DB_PREPARED_NAME_MAX     32

/* Writes the name of sql's prepared statement on pg into name, preparing it
 * first when needed. Returns 0, or -1 when it cannot be prepared (the
 * cache is full, the transaction is aborted, a syntax error): the caller
 * runs sql unprepared, which reports any error itself. */
int db_prepared_name(PGconn *pg, const char *sql, int nparams, char name[DB_PREPARED_NAME_MAX]);

/* The session lost its statements (a reset, "prepared statement does not
 * exist"): forget them, so they are prepared again. */
void db_prepared_forget(PGconn *pg);

#endif
