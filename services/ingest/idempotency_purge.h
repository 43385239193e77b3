/* Purging Idempotency-Keys, with the answers stored beside them, once they
 * are older than the retention (TESSERA_IDEMPOTENCY_RETENTION_S), then the
 * "pending" marks of 202 answers (pending_operations) of the same age. A run
 * deletes in batches of at most batch_max rows, one asynchronous statement
 * at a time through the pool, so the loop keeps serving between and
 * during batches and no statement holds many row locks. Instances purging
 * at once skip each other's rows (SKIP LOCKED). */
#ifndef TESSERA_INGEST_IDEMPOTENCY_PURGE_H
#define TESSERA_INGEST_IDEMPOTENCY_PURGE_H

#include <stdbool.h>
#include <stdint.h>

#include "db/pg_pool.h"

#define IDEM_PURGE_BATCH_MAX 1000

struct idem_purge;

/* Called once at the end of a run, on the loop: the keys it deleted and
 * whether every batch succeeded (a failed one ends the run early). */
typedef void (*idem_purge_done_fn)(void *arg, long long purged, bool ok);

/* A purger on pg for keys older than retention_s, batch_max (1 to
 * IDEM_PURGE_BATCH_MAX) rows a statement. NULL without memory. */
struct idem_purge *idem_purge_new(struct pg_pool *pg, int64_t retention_s, int batch_max);
/* Starts a run deleting every key created before now_us - retention
 * (now_us: the service's clock; tests pass their own). Returns 0, or -1
 * when a run is still going or the statement could not be queued (done
 * is not called then). */
int idem_purge_run(struct idem_purge *p, int64_t now_us, idem_purge_done_fn done, void *arg)
    __attribute__((warn_unused_result));
bool idem_purge_running(const struct idem_purge *p);
/* Statements issued since the purger was made (tests count batches). */
long long idem_purge_statements(const struct idem_purge *p);
/* Frees a purger that is not running. */
void idem_purge_free(struct idem_purge *p);

#endif
