/* Blocking PostgreSQL access for consumer threads and tools: connect with
 * timeouts and a search_path, run statements, transactions. One PGconn per
 * thread. The libevent front door uses pg_pool.h instead. */
#ifndef TESSERA_DB_H
#define TESSERA_DB_H

#include <libpq-fe.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#define DB_CONNECT_TIMEOUT_S            5
#define DB_STATEMENT_TIMEOUT_MS_DEFAULT 30000

/* Connects (connect_timeout 5 s), sets statement_timeout and
 * search_path to "<schema>, public" (schema may be NULL), application_name.
 * Returns NULL with err. Caller closes with PQfinish. */
PGconn *db_connect(const char *dsn, const char *schema, const char *app_name,
                   int statement_timeout_ms, char *err, size_t err_len);

/* Runs SQL without parameters that returns no rows (may hold several
 * statements). 0 or -1 with err. */
int db_exec(PGconn *pg, const char *sql, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Runs a parameterised statement with text parameters (NULL element = SQL
 * NULL). Returns the result (TUPLES_OK or COMMAND_OK; caller PQclears) or
 * NULL with err; the SQLSTATE of a failure is copied to sqlstate when not
 * NULL (6 bytes). */
PGresult *db_query(PGconn *pg, const char *sql, int nparams, const char *const *params, char *err,
                   size_t err_len, char sqlstate[6]) __attribute__((warn_unused_result));

/* The integer in a result's cell (bigint, int or a count), 0 for NULL. */
int64_t db_int_at(const PGresult *res, int row, int col);

/* BEGIN / COMMIT / ROLLBACK. Rollback never fails loudly (logged). */
int db_begin(PGconn *pg, char *err, size_t err_len) __attribute__((warn_unused_result));
/* BEGIN sent with the transaction's first statement instead of in a round
 * trip of its own: in the same pipeline when that is a db_pipeline_run
 * (db/pipeline.h), just before it otherwise (every statement of libs/db
 * sends it first). COMMIT or ROLLBACK before any statement sends nothing.
 * One deferred BEGIN per thread at a time. Always 0. */
int db_begin_deferred(PGconn *pg) __attribute__((warn_unused_result));
/* Clears pg's deferred BEGIN: true when there was one (the caller sends
 * it). For libs/db's own senders. */
bool db_begin_take(PGconn *pg);
int db_commit(PGconn *pg, char *err, size_t err_len) __attribute__((warn_unused_result));
void db_rollback(PGconn *pg);

/* True when the connection is usable; otherwise tries PQreset once. */
bool db_healthy(PGconn *pg);

/* The last statement that failed on this thread (db_exec, db_query,
 * db_copy_send): its SQLSTATE ("" when there was no answer, e.g. the
 * connection broke) and a description naming no values (the primary
 * message, plus the constraint, table and column when the server names
 * them; a DETAIL line can quote a row, personal data included). Consumer
 * threads own one connection each, so the pipeline reads it after a failed
 * batch without every caller passing the SQLSTATE up. */
#define DB_FAILURE_TEXT_MAX 256
struct db_failure {
    char sqlstate[6];
    char text[DB_FAILURE_TEXT_MAX];
};
void db_failure_clear(void);
const struct db_failure *db_failure_last(void);
/* True for SQLSTATE classes 22 (data exception: a value out of range, an
 * invalid byte sequence) and 23 (integrity constraint violation): the same
 * statements on the same data fail the same way, so retrying the batch as
 * it is can never succeed. Pure. */
bool db_sqlstate_is_deterministic(const char *sqlstate);

/* What became of transaction xid (from txid_current()) after its COMMIT
 * got no answer: committed, aborted, or still in progress (the server has
 * not finished with the lost session yet). DB_XACT_UNKNOWN with err when
 * the question itself failed. */
enum db_xact_state {
    DB_XACT_UNKNOWN = -1,
    DB_XACT_ABORTED,
    DB_XACT_COMMITTED,
    DB_XACT_IN_PROGRESS
};
enum db_xact_state db_xact_status(PGconn *pg, long long xid, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Appends text to a growing buffer as one element of a PostgreSQL array
 * literal ("{"a","b\"c"}"): quoted and escaped. NULL value = NULL element.
 * Used to send many rows in one statement through unnest(). */
struct db_array {
    char *buf;
    size_t len, cap;
    size_t count;
};
void db_array_init(struct db_array *a);
void db_array_add(struct db_array *a, const char *value);
void db_array_add_int(struct db_array *a, long long value);
/* data as the text of a bytea parameter in hex form ("\\x" then two hex
 * digits a byte). Caller frees; asserts on out of memory. The one encoder
 * of bytea parameters: services pass events and sealed fields this way. */
char *db_bytea_text(const void *data, size_t len);
/* bytea element in hex form (\x...). */
void db_array_add_bytea(struct db_array *a, const void *data, size_t len);
/* Closes the literal and returns it (owned by a; valid until free). */
const char *db_array_finish(struct db_array *a);
void db_array_free(struct db_array *a);

/* A batch's rows as n column arrays (one row per element): runs sql, whose
 * parameters $1..$n are the columns (an INSERT ... SELECT FROM unnest()),
 * when the first column holds any row, and frees the arrays either way.
 * 0, or -1 with err. */
#define DB_COLUMNS_MAX 32
int db_write_columns(PGconn *pg, const char *sql, struct db_array *cols, int n, char *err,
                     size_t err_len) __attribute__((warn_unused_result));

#endif
