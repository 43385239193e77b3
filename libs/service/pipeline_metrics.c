/* The consumer pipeline's Prometheus metrics, kept apart from the
 * pipeline's control flow. Everything here runs on the pipeline thread;
 * the admin loop only renders. */
#include "service/pipeline_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db.h"
#include "log/log.h"
#include "metrics/metrics.h"

#define PIPELINE_LAG_EVERY_S 0.05

static struct metric_family *lag_family(void)
{
    return metrics_gauge("tessera_consumer_lag_messages",
                         "Messages behind the high watermark, per assigned partition "
                         "(-1 while unknown).",
                         "topic,partition");
}

static struct metric_family *step_family(void)
{
    return metrics_histogram("tessera_consumer_batch_step_seconds",
                             "Time one step of a batch took, by step (poll_wait, apply, outbox, "
                             "offsets, commit, after_commit, relay, and the service's own).",
                             "step", metrics_buckets_seconds, metrics_buckets_seconds_count);
}

void pipeline_metrics_step(const char *step, double seconds)
{
    metrics_observe(metrics_with(step_family(), step), seconds);
}

#define EMPTY_POLLS_HELP                                                                           \
    "Consumer polls that returned no message (idle, or starved: a prefetch too small, a slow "     \
    "broker)."
#define EMPTY_POLL_SECONDS_HELP "Time spent in consumer polls that returned no message."

void pipeline_metrics_poll(size_t count, double seconds)
{
    if (count > 0) {
        pipeline_metrics_step("poll", seconds);
        return;
    }
    pipeline_metrics_count("tessera_consumer_empty_polls_total", EMPTY_POLLS_HELP, 1);
    metrics_add(metrics_series(metrics_counter("tessera_consumer_empty_poll_seconds_total",
                                               EMPTY_POLL_SECONDS_HELP, NULL),
                               NULL),
                seconds);
}

#define DEAD_LETTERS_HELP                                                                          \
    "Messages sent to the dead-letter topic, by original topic and cause (invalid: not "           \
    "decodable or not a valid command; refused: the database refused it, SQLSTATE in its "         \
    "headers)."
#define COMMITS_UNANSWERED_HELP                                                                    \
    "COMMITs whose answer was lost with the connection, by what the server said became of the "    \
    "transaction (committed, rolled_back)."

void pipeline_metrics_register(void)
{
    /* Families appear in /metrics from the start, before any traffic. */
    lag_family();
    metrics_gauge("tessera_consumer_total_lag_messages",
                  "Messages behind over every assigned partition (-1 while unknown).", NULL);
    metrics_counter("tessera_consumer_messages_total", "Messages consumed and committed, by topic.",
                    "topic");
    metrics_counter("tessera_consumer_dead_letters_total", DEAD_LETTERS_HELP, "topic,cause");
    metrics_counter("tessera_consumer_commits_unanswered_total", COMMITS_UNANSWERED_HELP,
                    "outcome");
    pipeline_metrics_count("tessera_consumer_batches_total", "Batches committed.", 0);
    pipeline_metrics_count("tessera_consumer_batches_fenced_total",
                           "Batches dropped because another instance already applied them.", 0);
    pipeline_metrics_count("tessera_consumer_batch_retries_total",
                           "Batch attempts that failed and were retried.", 0);
    pipeline_metrics_count("tessera_outbox_relayed_total", "Outbox events relayed to Kafka.", 0);
    pipeline_metrics_count("tessera_consumer_empty_polls_total", EMPTY_POLLS_HELP, 0);
    metrics_series(
        metrics_counter("tessera_consumer_empty_poll_seconds_total", EMPTY_POLL_SECONDS_HELP, NULL),
        NULL);
    metrics_series(metrics_histogram("tessera_consumer_batch_messages",
                                     "Messages per committed batch.", NULL, metrics_buckets_counts,
                                     metrics_buckets_counts_count),
                   NULL);
    metrics_series(metrics_histogram("tessera_consumer_batch_duration_seconds",
                                     "Time to apply and commit one batch, retries included.", NULL,
                                     metrics_buckets_seconds, metrics_buckets_seconds_count),
                   NULL);
    metrics_set(metrics_series(metrics_gauge("tessera_outbox_backlog_events",
                                             "Events in the outbox not yet relayed.", NULL),
                               NULL),
                0);
    step_family();
}

void pipeline_metrics_count(const char *name, const char *help, long long delta)
{
    metrics_add(metrics_series(metrics_counter(name, help, NULL), NULL), (double)delta);
}

void pipeline_metrics_lags(struct pipeline_lag_view *v, struct bus_consumer *consumer)
{
    /* The pipeline polls every millisecond while events are in flight:
     * the per-partition walk runs at most every PIPELINE_LAG_EVERY_S. */
    double now_s = metrics_now_seconds();
    if (now_s - v->last_s < PIPELINE_LAG_EVERY_S)
        return;
    v->last_s = now_s;
    size_t n = bus_consumer_partition_lags(consumer, v->lags, PIPELINE_LAG_PARTITIONS_MAX);
    struct metric_family *f = lag_family();
    struct metric_series *now_shown[PIPELINE_LAG_PARTITIONS_MAX];
    for (size_t i = 0; i < n; i++) {
        char part[16];
        snprintf(part, sizeof(part), "%d", (int)v->lags[i].partition);
        now_shown[i] = metrics_with(f, v->lags[i].topic, part);
        metrics_set(now_shown[i], (double)v->lags[i].lag);
    }
    /* Partitions another instance or worker took over disappear from our
     * output; another worker's partitions are left alone. */
    for (size_t i = 0; i < v->count; i++) {
        bool kept = false;
        for (size_t j = 0; j < n && !kept; j++)
            kept = v->shown[i] == now_shown[j];
        if (!kept)
            metrics_series_hide(v->shown[i]);
    }
    memcpy(v->shown, now_shown, n * sizeof(*now_shown));
    v->count = n;
}

void pipeline_metrics_revoked(struct pipeline_lag_view *v)
{
    for (size_t i = 0; i < v->count; i++)
        metrics_series_hide(v->shown[i]);
    v->count = 0;
}

void pipeline_metrics_total_lag(long long lag)
{
    metrics_set(metrics_series(metrics_gauge("tessera_consumer_total_lag_messages",
                                             "Messages behind over every assigned partition "
                                             "(-1 while unknown).",
                                             NULL),
                               NULL),
                (double)lag);
}

void pipeline_metrics_batch(const struct pipeline_batch *b, double seconds)
{
    struct metric_family *consumed = metrics_counter(
        "tessera_consumer_messages_total", "Messages consumed and committed, by topic.", "topic");
    for (size_t i = 0; i < b->count; i++)
        metrics_inc(metrics_with(consumed, rd_kafka_topic_name(b->msgs[i]->rkt)));
    metrics_observe(
        metrics_series(metrics_histogram("tessera_consumer_batch_messages",
                                         "Messages per committed batch.", NULL,
                                         metrics_buckets_counts, metrics_buckets_counts_count),
                       NULL),
        (double)b->count);
    metrics_observe(
        metrics_series(metrics_histogram("tessera_consumer_batch_duration_seconds",
                                         "Time to apply and commit one batch, retries included.",
                                         NULL, metrics_buckets_seconds,
                                         metrics_buckets_seconds_count),
                       NULL),
        seconds);
    pipeline_metrics_count("tessera_consumer_batches_total", "Batches committed.", 1);
}

void pipeline_metrics_dead_letter(const rd_kafka_message_t *rkm, const char *cause)
{
    metrics_inc(metrics_with(
        metrics_counter("tessera_consumer_dead_letters_total", DEAD_LETTERS_HELP, "topic,cause"),
        rd_kafka_topic_name(rkm->rkt), cause));
}

void pipeline_metrics_commit_unanswered(const char *outcome)
{
    metrics_inc(metrics_with(metrics_counter("tessera_consumer_commits_unanswered_total",
                                             COMMITS_UNANSWERED_HELP, "outcome"),
                             outcome));
}

/* A bounded count: a row holds up to OUTBOX_PACK_EVENTS_MAX events
 * (outbox_pack.h), so a batch leaves a few rows instead of one per event,
 * and the scan reads at most this many live rows (and the dead ones
 * between them). Beyond it the gauge is a lower bound: the outbox is then
 * at least this many events behind, which is what an alert needs. */
#define OUTBOX_BACKLOG_ROWS_MAX 10000
#define STR_(x)                 #x
#define STR(x)                  STR_(x)

void pipeline_metrics_outbox_backlog(PGconn *pg, const int64_t *delivered, size_t n)
{
    char err[256];
    struct db_array a;
    db_array_init(&a);
    for (size_t i = 0; i < n; i++)
        db_array_add_int(&a, delivered[i]);
    const char *params[1] = {db_array_finish(&a)};
    PGresult *res =
        db_query(pg,
                 "SELECT coalesce(sum(events), 0) FROM (SELECT events FROM outbox "
                 "WHERE id <> ALL($1::bigint[]) LIMIT " STR(OUTBOX_BACKLOG_ROWS_MAX) ") s",
                 1, params, err, sizeof(err), NULL);
    db_array_free(&a);
    if (!res)
        return; /* the next batch tries again; the gauge keeps its last value */
    metrics_set(metrics_series(metrics_gauge("tessera_outbox_backlog_events",
                                             "Events in the outbox not yet relayed.", NULL),
                               NULL),
                strtod(PQgetvalue(res, 0, 0), NULL));
    PQclear(res);
}

/* Kafka timestamps are wall-clock (the producer's librdkafka). */
static double wall_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void pipeline_metrics_fetched(rd_kafka_message_t *const *msgs, size_t count)
{
    struct metric_series *delay = metrics_series(
        metrics_histogram("tessera_consumer_fetch_delay_seconds",
                          "From a message's producer timestamp to this consumer polling it.", NULL,
                          metrics_buckets_seconds, metrics_buckets_seconds_count),
        NULL);
    double now_s = wall_now_s();
    for (size_t i = 0; i < count; i++) {
        rd_kafka_timestamp_type_t type;
        int64_t ms = rd_kafka_message_timestamp(msgs[i], &type);
        if (ms > 0 && type == RD_KAFKA_TIMESTAMP_CREATE_TIME) {
            double d = now_s - (double)ms / 1000.0;
            metrics_observe(delay, d > 0 ? d : 0);
        }
    }
}

void pipeline_metrics_relay_acked(double seconds)
{
    metrics_observe(
        metrics_series(metrics_histogram("tessera_outbox_relay_ack_seconds",
                                         "From relaying a batch's events to their last broker "
                                         "acknowledgement.",
                                         NULL, metrics_buckets_seconds,
                                         metrics_buckets_seconds_count),
                       NULL),
        seconds);
}
