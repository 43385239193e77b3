/* The consumer pipeline every Kafka-consuming service runs on its own
 * thread: poll a batch, apply it in ONE PostgreSQL transaction together
 * with the consumed offsets and the outbox rows of the events it emits,
 * commit, then run after_commit (cache writes) and relay the outbox.
 *
 * Exactly-once effects follow: offsets only move with effects, a restart
 * seeks to the offsets stored with the effects, and a second instance that
 * finds the stored offsets past its batch (it lost the partition) rolls
 * back and seeks instead of applying twice. Undecodable messages go to the
 * dead-letter topic and the partition moves on; so does a message the
 * database refuses (SQLSTATE class 22 or 23), found by applying the batch
 * in halves. A COMMIT whose answer is lost is settled by asking the
 * server. See docs/poison-and-commits.md. */
#ifndef TESSERA_PIPELINE_H
#define TESSERA_PIPELINE_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"
#include "outbox/outbox.h"

#define PIPELINE_BATCH_MAX            2000
#define PIPELINE_RETRY_BACKOFF_MAX_MS 5000
/* Readiness: at most this many messages left to apply once every fetched
 * one is applied (a backlog left to a restarted service is worked off
 * before it says ready; a trickle of new traffic does not keep it
 * unready forever). */
#define PIPELINE_READY_LAG_MAX 100

struct pipeline_batch {
    rd_kafka_message_t **msgs;
    size_t count;
    const char **poison; /* per message: why it goes to dead-letter, or NULL */
    struct outbox_row *out;
    size_t out_count, out_cap;
};

/* Marks message i as poison (reason must be a static string). */
void pipeline_mark_poison(struct pipeline_batch *b, size_t i, const char *reason);
/* Queues an event to publish after commit; takes ownership of payload
 * (malloc'ed, e.g. from envelope_encode). topic and key are copied. */
void pipeline_emit(struct pipeline_batch *b, const char *topic, const char *key, uint8_t *payload,
                   size_t len);

struct pipeline_ops {
    /* Inside the batch's transaction, on the pipeline thread. Applies every
     * message not marked poison. Returns 0, or -1 for a database error: the
     * transaction is rolled back and the same batch retried with back-off,
     * or, when the error is deterministic (db_failure_last()), applied in
     * smaller batches (b may then be part of what was polled). A batch
     * with poison is rolled back once its dead letters are to be sent and
     * applied again. Must not keep state across calls that a rollback
     * would make wrong (or reset it in begin_batch). */
    int (*apply)(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len);
    /* After a successful commit (cache writes, metrics). May be NULL. */
    void (*after_commit)(void *ctx, struct pipeline_batch *b);
    /* Before each attempt at a batch (including retries). May be NULL. */
    void (*begin_batch)(void *ctx);
    /* Inside the batch's transaction, last before COMMIT (after the outbox
     * rows and the offsets are written): for a row every batch updates
     * (a tenant's running total), so its lock is held for the commit
     * only, not the whole batch. Events it emits (pipeline_emit) go to
     * the outbox too. Not called when apply was not (a refused message).
     * Returns 0 or -1 (a database error, as apply). May be NULL. */
    int (*before_commit)(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err,
                         size_t err_len);
};

struct pipeline_config {
    const char *service; /* also the CloudEvents source "/tessera/<service>" */
    const char *group_id;
    const char *const *topics;
    size_t topic_count;
    const struct bus_config *bus;
    const char *pg_dsn;
    const char *schema;
    int statement_timeout_ms;
    size_t batch_max;
    int poll_timeout_ms;
};

/* Counters the admin port reads from the loop thread. */
struct pipeline_stats {
    atomic_bool postgres_ok;
    atomic_bool assignment_received; /* joined the group and got partitions (maybe none) */
    atomic_int assigned_partitions;
    /* Since the latest assignment, the consumer has fetched from every
     * assigned partition and, with all it fetched applied, was at most
     * PIPELINE_READY_LAG_MAX messages from the ends: what it is given next
     * is applied within a batch. Set on
     * the pipeline thread, cleared on every assignment and revocation.
     * /readyz waits for it: before, a restarted service was "ready" at its
     * assignment while the group join, the first fetch and any backlog
     * still stood between a new command and its verdict. */
    atomic_bool positioned;
    atomic_llong lag; /* -1 while unknown */
    atomic_llong batches;
    atomic_llong messages;
    atomic_llong dead_letters;
    atomic_llong fenced;
    atomic_llong retries;
    atomic_llong relayed;
};

struct pipeline;

/* Connects (PostgreSQL, Kafka consumer and producer) and starts the thread.
 * on_exit(exit_ctx) is called from the pipeline thread when it ends (after
 * a stop or a fatal error); it may wake the main loop. NULL with err. */
struct pipeline *pipeline_start(const struct pipeline_config *cfg, const struct pipeline_ops *ops,
                                void *ctx, void (*on_exit)(void *exit_ctx), void *exit_ctx,
                                char *err, size_t err_len);
/* pipeline_start in two steps, so several workers of one process can
 * prepare (PostgreSQL, producer, topic metadata: up to a second each) and
 * then join the group together, in one rebalance instead of one per
 * worker. pipeline_join frees a pipeline that never ran. */
struct pipeline *pipeline_prepare(const struct pipeline_config *cfg, const struct pipeline_ops *ops,
                                  void *ctx, void (*on_exit)(void *exit_ctx), void *exit_ctx,
                                  char *err, size_t err_len);
int pipeline_run(struct pipeline *p, char *err, size_t err_len) __attribute__((warn_unused_result));

/* Asks the thread to finish the batch in hand, commit it and leave the
 * group; returns at once. */
void pipeline_request_stop(struct pipeline *p);
/* Joins the thread and frees everything. */
void pipeline_join(struct pipeline *p);

const struct pipeline_stats *pipeline_stats(const struct pipeline *p);
/* True when the thread ended because of an error rather than a stop. */
bool pipeline_failed(const struct pipeline *p);

#endif
