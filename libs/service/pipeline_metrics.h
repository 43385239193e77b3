/* Prometheus metrics of the consumer pipeline (see docs/operations.md, Metrics):
 * consumed messages by topic, lag per partition, batch sizes and
 * durations, dead letters, fencing, retries, outbox relay and backlog.
 * All called from the pipeline thread. */
#ifndef TESSERA_PIPELINE_METRICS_H
#define TESSERA_PIPELINE_METRICS_H

#include <libpq-fe.h>

#include "bus/bus.h"
#include "service/pipeline.h"

/* Registers every family so /metrics lists them before any traffic. */
void pipeline_metrics_register(void);
/* Adds delta to an unlabelled counter. */
void pipeline_metrics_count(const char *name, const char *help, long long delta);
/* The per-partition lag series one pipeline shows. Several pipelines of
 * one process (workers) each show their own partitions' series. */
#define PIPELINE_LAG_PARTITIONS_MAX 1024
struct pipeline_lag_view {
    double last_s;
    size_t count;
    struct metric_series *shown[PIPELINE_LAG_PARTITIONS_MAX];
    struct bus_partition_lag lags[PIPELINE_LAG_PARTITIONS_MAX]; /* scratch */
};
/* Lag per assigned partition, after each poll (at most every 50 ms). The
 * total over the process's pipelines is read at render time (pipeline.c). */
void pipeline_metrics_lags(struct pipeline_lag_view *v, struct bus_consumer *consumer);
/* Partitions were taken away: their lag is no longer ours to report. */
void pipeline_metrics_revoked(struct pipeline_lag_view *v);
/* The total lag gauge, set at render time. */
void pipeline_metrics_total_lag(long long lag);
/* A committed batch and how long it took (seconds). */
void pipeline_metrics_batch(const struct pipeline_batch *b, double seconds);
/* One poll of the consumer: how many messages it returned and how long it
 * took. A poll that returned a batch is the "poll" step; an empty one is
 * counted with its time (tessera_consumer_empty_polls_total and
 * tessera_consumer_empty_poll_seconds_total), so a starved consumer (a
 * prefetch too small, a slow broker) shows as time waiting on empty polls
 * rather than only as a large "between" step. */
void pipeline_metrics_poll(size_t count, double seconds);
/* Per polled message: producer timestamp to poll (the fetch delay). */
void pipeline_metrics_fetched(rd_kafka_message_t *const *msgs, size_t count);
/* A relayed group's time from produce to its last acknowledgement. */
void pipeline_metrics_relay_acked(double seconds);
/* Time one step of a batch took (seconds), by step: "between" (from the
 * end of one batch to the start of the next: polls, relay ticks, delivery
 * reports), "poll" (the poll that returned the batch), "apply" (the
 * service's statements), "outbox" (its rows in, delivered rows out),
 * "offsets", "commit", "after_commit", "relay" (producing the batch's
 * events), and a service's own finer steps of apply (the ledger's
 * "ledger_load", ...). Workers of one process add to the same series. */
void pipeline_metrics_step(const char *step, double seconds);
/* A committed dead letter; cause "invalid" or "refused". */
void pipeline_metrics_dead_letter(const rd_kafka_message_t *rkm, const char *cause);
/* A COMMIT whose answer was lost, settled: outcome "committed" or
 * "rolled_back". */
void pipeline_metrics_commit_unanswered(const char *outcome);
/* Events in the outbox's rows, but those of the rows delivered and
 * waiting to be deleted (delivered[0..n)), counted on at most
 * OUTBOX_BACKLOG_ROWS_MAX rows (outside a transaction). */
void pipeline_metrics_outbox_backlog(PGconn *pg, const int64_t *delivered, size_t n);

#endif
