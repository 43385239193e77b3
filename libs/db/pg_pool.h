/* Asynchronous PostgreSQL on a libevent loop: a few non-blocking libpq
 * connections and a bounded queue of statements. Nothing blocks the loop
 * after start-up; a broken connection is re-established in the background
 * with back-off, and the statements it held fail with an error. */
#ifndef TESSERA_PG_POOL_H
#define TESSERA_PG_POOL_H

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#define PG_POOL_QUEUE_MAX  4096 /* statements waiting for a connection */
#define PG_POOL_PARAMS_MAX 32

struct pg_pool;

/* Called on the loop exactly once per statement. On success res is the
 * result (TUPLES_OK or COMMAND_OK) and err NULL; on failure res is NULL,
 * err a message and sqlstate the SQLSTATE ("" when the connection failed).
 * The pool frees res after the callback returns. */
typedef void (*pg_pool_cb)(void *arg, PGresult *res, const char *err, const char *sqlstate);

/* Opens conn_count connections (blocking, once, at start-up) with
 * search_path "<schema>, public" and statement_timeout. Connections that
 * fail then are retried in the background with back-off, so the pool is
 * usable before its database is up (pg_pool_healthy tells). NULL with err
 * only for bad arguments or memory. */
struct pg_pool *pg_pool_new(struct event_base *base, const char *dsn, const char *schema,
                            unsigned conn_count, int statement_timeout_ms, char *err,
                            size_t err_len);

/* Queues a statement with text parameters (copied; NULL = SQL NULL).
 * Returns 0, or -1 when the queue is full (cb is not called then). */
int pg_pool_query(struct pg_pool *pool, const char *sql, int nparams, const char *const *params,
                  pg_pool_cb cb, void *arg) __attribute__((warn_unused_result));

/* True when at least one connection is up. */
bool pg_pool_healthy(const struct pg_pool *pool);
/* Statements queued or running. */
size_t pg_pool_pending(const struct pg_pool *pool);
/* Closes connections; queued statements get an error callback first. */
void pg_pool_free(struct pg_pool *pool);

#endif
