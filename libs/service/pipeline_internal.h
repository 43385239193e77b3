/* What the pipeline's files share (pipeline.c runs the batches,
 * pipeline_relay.c relays the outbox, pipeline_dead_letters.c sends the
 * dead letters): the pipeline itself. Only the pipeline thread touches
 * it, except the atomics. */
#ifndef TESSERA_PIPELINE_INTERNAL_H
#define TESSERA_PIPELINE_INTERNAL_H

#include <pthread.h>
#include <time.h>

#include "db/db.h"
#include "db/offsets.h"
#include "service/pipeline.h"
#include "service/pipeline_metrics.h"

#define RELAY_SWEEP_EVERY_S 5                    /* look for stranded outbox rows this often */
#define RELAY_RENEW_AFTER_S (OUTBOX_LEASE_S / 3) /* in flight this long: renew its lease */
/* The backlog gauge counts the outbox: with a row per event, under load a
 * queue of dead rows, 40-210 ms a count (docs/benchmarks.md, scenario 3);
 * packed rows (outbox/outbox_pack.h) and a bounded scan made it cheap,
 * but a gauge needs no more: six times less often than the sweep. */
#define RELAY_BACKLOG_EVERY_S 30

/* The outbox rows of one committed batch (or one sweep), produced without
 * waiting: the pipeline never waits for the broker (the development
 * broker takes ~40 ms to acknowledge a produce spread over 6 partitions).
 * When every event of the group is delivered its rows become deletable;
 * they are deleted in the next batch's transaction (or alone when idle).
 * When one fails, the rows stay and a sweep sends them again once their
 * lease is over (outbox.h). While a group is in flight its rows are
 * never claimed again here, and their lease is renewed for other relays. */
struct relay_group {
    struct relay_group *next;
    struct pipeline *p;
    int64_t *ids;  /* its outbox rows */
    size_t count;  /* of ids */
    size_t events; /* the events they hold, each produced once */
    size_t pending;
    bool failed;
    double sent_s; /* monotonic */
};

struct pipeline {
    struct pipeline_config cfg;
    struct pipeline_ops ops;
    void *ctx;
    void (*on_exit)(void *);
    void *exit_ctx;
    char source[64];
    char owner[OUTBOX_OWNER_MAX]; /* this relay's name on the outbox rows it leases */
    PGconn *pg;
    struct bus_consumer *consumer;
    struct bus_producer *producer;
    pthread_t thread;
    struct db_offset_range *ranges; /* batch_max of them: a batch's partitions */
    /* Events of committed batches on their way to Kafka (see relay_*). */
    struct relay_group *in_flight;
    int64_t *deletable; /* outbox ids delivered, rows still to delete */
    size_t deletable_count, deletable_cap;
    struct timespec last_sweep;
    struct timespec last_backlog; /* the outbox backlog gauge's last count */
    /* Per message of the polled batch: a dead letter was enqueued for it,
     * and its delivery result (the report lands here, see dl_send). */
    bool *dl_queued;
    rd_kafka_resp_err_t *dl_result;
    atomic_bool stop;
    atomic_bool failed;
    struct pipeline_stats stats;
    struct pipeline_lag_view lag_view;
    bool running; /* the thread was started (pipeline_run) */
};

/* Why the database refused a message applied alone (SQLSTATE class 22 or
 * 23, twice in a row): it goes to the dead-letter topic with these. */
struct refusal {
    char sqlstate[6];
    char text[DB_FAILURE_TEXT_MAX];
};
#define REFUSED_REASON "the database refused it"

/* pipeline_relay.c */
/* Delivery report of one relayed event (producer callback). */
void pipeline_relay_on_delivery(void *ctx, void *msg_opaque, rd_kafka_resp_err_t err);
/* Produces rows whose outbox ids are ids, as one group. */
void pipeline_relay_send(struct pipeline *p, const struct outbox_row *rows, const int64_t *ids,
                         size_t n);
/* Deletes the rows of delivered events (in the caller's transaction). */
int pipeline_relay_delete_delivered(struct pipeline *p, char *err, size_t err_len)
    __attribute__((warn_unused_result));
/* The first n delivered ids were deleted: forget them. */
void pipeline_relay_deletable_drop(struct pipeline *p, size_t n);
/* Claims and sends stranded outbox rows (also once at start). */
void pipeline_relay_sweep(struct pipeline *p);
/* Between batches: delivery reports, deletes when idle, sweeps. */
void pipeline_relay_tick(struct pipeline *p, bool idle);

/* pipeline_dead_letters.c */
/* Sends b's undelivered dead letters and waits for them: 0, or -1 with
 * err when one was not delivered. from: b's first index in the poll. */
int pipeline_dl_send(struct pipeline *p, struct pipeline_batch *b, size_t from,
                     const struct refusal *refused, char *err, size_t err_len)
    __attribute__((warn_unused_result));
/* Is b's message i poison with its dead letter not delivered yet? */
bool pipeline_dl_pending(const struct pipeline *p, const struct pipeline_batch *b, size_t from,
                         size_t i);
/* After the commit: counts the batch's dead letters. */
void pipeline_dl_count(struct pipeline *p, const struct pipeline_batch *b, bool refused);

#endif
