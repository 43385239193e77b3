#include "service/pipeline_internal.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db.h"
#include "bus/topics.h"
#include "db/offsets.h"
#include "ids/uuid7.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "service/pipeline_metrics.h"
#include "trace/trace.h"
#include "util/sleep.h"

/* The process's live pipelines (a service may run several workers), for
 * the total lag gauge: the sum over them, set when /metrics renders, so
 * "lag is 0" means every worker has caught up. */
#define PIPELINES_MAX 64
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pipeline *live[PIPELINES_MAX];
static size_t live_count;

static void collect_total_lag(void *unused)
{
    pthread_mutex_lock(&live_lock);
    long long total = live_count ? 0 : -1;
    for (size_t i = 0; i < live_count; i++) {
        long long lag = atomic_load(&live[i]->stats.lag);
        if (lag < 0 || total < 0)
            total = -1;
        else
            total += lag;
    }
    pthread_mutex_unlock(&live_lock);
    pipeline_metrics_total_lag(total);
}

static void live_add(struct pipeline *p)
{
    static bool collecting;
    pthread_mutex_lock(&live_lock);
    assert(live_count < PIPELINES_MAX);
    live[live_count++] = p;
    bool first = !collecting;
    collecting = true;
    pthread_mutex_unlock(&live_lock);
    if (first)
        metrics_on_collect(collect_total_lag, NULL);
}

static void live_remove(struct pipeline *p)
{
    pthread_mutex_lock(&live_lock);
    for (size_t i = 0; i < live_count; i++)
        if (live[i] == p) {
            live[i] = live[--live_count];
            break;
        }
    pthread_mutex_unlock(&live_lock);
}

void pipeline_mark_poison(struct pipeline_batch *b, size_t i, const char *reason)
{
    assert(i < b->count && reason);
    b->poison[i] = reason;
}

void pipeline_emit(struct pipeline_batch *b, const char *topic, const char *key, uint8_t *payload,
                   size_t len)
{
    assert(payload);
    if (b->out_count == b->out_cap) {
        b->out_cap = b->out_cap ? b->out_cap * 2 : 64;
        b->out = realloc(b->out, b->out_cap * sizeof(*b->out));
        assert(b->out);
    }
    b->out[b->out_count++] = (struct outbox_row){
        .topic = strdup(topic), .key = strdup(key), .payload = payload, .len = len};
}

static void batch_reset_outputs(struct pipeline_batch *b)
{
    for (size_t i = 0; i < b->out_count; i++) {
        free((char *)b->out[i].topic);
        free((char *)b->out[i].key);
        free((uint8_t *)b->out[i].payload);
    }
    b->out_count = 0;
    memset(b->poison, 0, b->count * sizeof(*b->poison));
}

/* ------------------------------------------------------- offsets on assign */
static int on_assign(void *arg, rd_kafka_topic_partition_list_t *parts)
{
    struct pipeline *p = arg;
    char err[256];
    if (!db_healthy(p->pg) ||
        db_offsets_load(p->pg, p->cfg.group_id, bus_consumer_cluster_id(p->consumer), parts, err,
                        sizeof(err)) < 0) {
        log_fields(LOG_ERROR, "cannot load stored offsets for assignment", "error", err, NULL);
        return -1;
    }
    for (int i = 0; i < parts->cnt; i++) {
        char part[16], off[24];
        snprintf(part, sizeof(part), "%d", (int)parts->elems[i].partition);
        snprintf(off, sizeof(off), "%lld", (long long)parts->elems[i].offset);
        log_fields(LOG_INFO, "partition assigned", "topic", parts->elems[i].topic, "partition",
                   part, "start_offset", off, NULL);
    }
    atomic_store(&p->stats.assigned_partitions, parts->cnt);
    atomic_store(&p->stats.positioned, false);
    atomic_store(&p->stats.assignment_received, true);
    return 0;
}

static void on_revoke(void *arg, const rd_kafka_topic_partition_list_t *parts)
{
    struct pipeline *p = arg;
    log_fields(LOG_INFO, "partitions revoked", NULL);
    atomic_store(&p->stats.assigned_partitions, 0);
    atomic_store(&p->stats.positioned, false);
    pipeline_metrics_revoked(&p->lag_view);
}

/* ------------------------------------------------------------ the batches */
/* One [first, next) range per partition of the batch. */
static size_t batch_ranges(const struct pipeline_batch *b, struct db_offset_range *r, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < b->count; i++) {
        const rd_kafka_message_t *m = b->msgs[i];
        const char *topic = rd_kafka_topic_name(m->rkt);
        size_t j = 0;
        while (j < n && !(r[j].partition == m->partition && strcmp(r[j].topic, topic) == 0))
            j++;
        if (j == n) {
            assert(n < max);
            r[n++] = (struct db_offset_range){.topic = topic,
                                              .partition = m->partition,
                                              .first = m->offset,
                                              .next = m->offset + 1};
        } else {
            if (m->offset < r[j].first)
                r[j].first = m->offset;
            if (m->offset + 1 > r[j].next)
                r[j].next = m->offset + 1;
        }
    }
    return n;
}

/* Another instance moved the stored offsets past our batch: seek every
 * partition of the batch to what is stored and drop the batch. */
static void handle_fence(struct pipeline *p, const struct db_offset_range *r, size_t n)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(parts, r[i].topic, r[i].partition);
    char err[256];
    if (db_offsets_load(p->pg, p->cfg.group_id, bus_consumer_cluster_id(p->consumer), parts, err,
                        sizeof(err)) == 0)
        bus_consumer_seek(p->consumer, parts);
    else
        log_fields(LOG_ERROR, "fenced, and cannot reload offsets", "error", err, NULL);
    rd_kafka_topic_partition_list_destroy(parts);
    atomic_fetch_add(&p->stats.fenced, 1);
    pipeline_metrics_count("tessera_consumer_batches_fenced_total",
                           "Batches dropped because another instance already applied them.", 1);
    log_fields(LOG_WARN, "batch fenced: another instance already applied it; seeking", NULL);
}

/* A header's value as a string ("" when absent or not text). */
enum attempt_result {
    ATTEMPT_COMMITTED,
    ATTEMPT_FENCED,
    ATTEMPT_FAILED,
    ATTEMPT_DEAD_LETTERS /* rolled back: poison to dead-letter first */
};

static void backoff_sleep(int attempt)
{
    int ms = 100 << (attempt < 6 ? attempt : 6);
    if (ms > PIPELINE_RETRY_BACKOFF_MAX_MS)
        ms = PIPELINE_RETRY_BACKOFF_MAX_MS;
    sleep_ms(ms);
}

/* COMMIT failed. While the connection is up, the server answered: the
 * transaction is rolled back. When the connection is gone, the answer was
 * lost and the server may well have committed; retrying would then be
 * fenced and skip the cache writes and the relay of a committed batch. So
 * ask the server (reconnecting) what became of transaction xid, until it
 * can tell or a stop is requested. */
static enum attempt_result commit_settle(struct pipeline *p, long long xid)
{
    if (PQstatus(p->pg) == CONNECTION_OK)
        return ATTEMPT_FAILED;
    log_warn("commit unanswered (connection lost); asking the server whether it committed");
    for (int attempt = 0; !atomic_load(&p->stop); attempt++) {
        char why[256] = "";
        bool up = db_healthy(p->pg);
        atomic_store(&p->stats.postgres_ok, up);
        enum db_xact_state st = up ? db_xact_status(p->pg, xid, why, sizeof(why)) : DB_XACT_UNKNOWN;
        if (st == DB_XACT_COMMITTED || st == DB_XACT_ABORTED) {
            const char *outcome = st == DB_XACT_COMMITTED ? "committed" : "rolled_back";
            log_fields(LOG_WARN, "unanswered commit settled", "outcome", outcome, NULL);
            pipeline_metrics_commit_unanswered(outcome);
            return st == DB_XACT_COMMITTED ? ATTEMPT_COMMITTED : ATTEMPT_FAILED;
        }
        if (why[0])
            log_fields(LOG_WARN, "cannot settle the unanswered commit yet", "error", why, NULL);
        backoff_sleep(attempt);
    }
    return ATTEMPT_FAILED; /* stopping: the next owner finds the offsets either way */
}

/* Observes the step that started at started_s; returns now. */
static double step_done(const char *step, double started_s)
{
    double now_s = metrics_now_seconds();
    pipeline_metrics_step(step, now_s - started_s);
    return now_s;
}

/* The service's last step of a batch (pipeline_ops.before_commit), and
 * the outbox rows of the events it emitted; *ids grows to hold them. */
static int before_commit(struct pipeline *p, struct pipeline_batch *b, int64_t **ids, char *err,
                         size_t err_len)
{
    size_t had = b->out_count;
    if (p->ops.before_commit(p->ctx, p->pg, b, err, err_len) < 0)
        return -1;
    if (b->out_count == had)
        return 0;
    int64_t *grown = realloc(*ids, (b->out_count + 1) * sizeof(**ids));
    assert(grown);
    *ids = grown;
    return outbox_append_packed(p->pg, b->out + had, b->out_count - had, *ids + had, err, err_len);
}

/* One try at a batch in one transaction. *ids receives the outbox ids of
 * the batch's events (malloc'ed; the caller frees). from is the index of
 * b's first message in the polled batch. With refused (b is then one
 * message the database refused), nothing is applied: the message is
 * dead-lettered and its offset stored. */
static enum attempt_result batch_attempt(struct pipeline *p, struct pipeline_batch *b, size_t from,
                                         const struct refusal *refused,
                                         const struct db_offset_range *r, size_t nr, int64_t **ids,
                                         char *err, size_t err_len)
{
    batch_reset_outputs(b);
    if (refused)
        pipeline_mark_poison(b, 0, REFUSED_REASON);
    if (p->ops.begin_batch)
        p->ops.begin_batch(p->ctx);
    db_failure_clear();
    double t = metrics_now_seconds();
    /* BEGIN rides with the first statement (the ledger's loads: one round
     * trip less a batch) */
    if (db_begin_deferred(p->pg) < 0)
        return ATTEMPT_FAILED;
    if (!refused && p->ops.apply(p->ctx, p->pg, b, err, err_len) < 0)
        goto fail;
    t = step_done("apply", t);
    for (size_t i = 0; i < b->count; i++)
        if (pipeline_dl_pending(p, b, from, i)) { /* send them with no row locked */
            db_rollback(p->pg);
            return ATTEMPT_DEAD_LETTERS;
        }
    free(*ids);
    *ids = calloc(b->out_count + 1, sizeof(**ids));
    assert(*ids);
    if (b->out_count > 0 &&
        outbox_append_packed(p->pg, b->out, b->out_count, *ids, err, err_len) < 0)
        goto fail;
    size_t deleted = p->deletable_count; /* reports served below add more */
    if (pipeline_relay_delete_delivered(p, err, err_len) < 0)
        goto fail;
    t = step_done("outbox", t);
    long long xid = 0;
    int stored = db_offsets_store(p->pg, p->cfg.group_id, bus_consumer_cluster_id(p->consumer), r,
                                  nr, &xid, err, err_len);
    if (stored < 0)
        goto fail;
    if (stored == 1) {
        db_rollback(p->pg);
        return ATTEMPT_FENCED;
    }
    t = step_done("offsets", t);
    if (!refused && p->ops.before_commit && before_commit(p, b, ids, err, err_len) < 0)
        goto fail;
    t = step_done("before_commit", t);
    if (db_commit(p->pg, err, err_len) < 0 && commit_settle(p, xid) != ATTEMPT_COMMITTED)
        return ATTEMPT_FAILED;
    step_done("commit", t);
    pipeline_relay_deletable_drop(p, deleted); /* deleted with the batch */
    return ATTEMPT_COMMITTED;
fail:
    db_rollback(p->pg);
    return ATTEMPT_FAILED;
}

/* A failed attempt the same data will fail again: a data exception or
 * constraint violation on a connection that is still up. */
static bool failure_is_deterministic(const struct pipeline *p)
{
    return PQstatus(p->pg) == CONNECTION_OK &&
           db_sqlstate_is_deterministic(db_failure_last()->sqlstate);
}

enum range_result { RANGE_DONE, RANGE_FENCED, RANGE_STOPPED };
static enum range_result process_range(struct pipeline *p, struct pipeline_batch *whole,
                                       size_t from, size_t to);

/* The database refused [from, to) deterministically: apply each half as
 * a batch of its own, down to the one message that is refused alone. */
static enum range_result split_range(struct pipeline *p, struct pipeline_batch *whole, size_t from,
                                     size_t to)
{
    size_t mid = from + (to - from) / 2;
    log_fields(LOG_WARN, "batch refused by the database; applying it in halves", "sqlstate",
               db_failure_last()->sqlstate, "error", db_failure_last()->text, NULL);
    enum range_result r = process_range(p, whole, from, mid);
    return r == RANGE_DONE ? process_range(p, whole, mid, to) : r;
}

/* After the commit of [b]: cache writes, metrics, the outbox relay. */
static void range_committed(struct pipeline *p, struct pipeline_batch *b,
                            const struct refusal *refused, const int64_t *ids, double started_s)
{
    atomic_fetch_add(&p->stats.batches, 1);
    atomic_fetch_add(&p->stats.messages, (long long)b->count);
    pipeline_metrics_batch(b, metrics_now_seconds() - started_s);
    pipeline_dl_count(p, b, refused != NULL);
    double t = metrics_now_seconds();
    if (p->ops.after_commit && !refused) /* a refusal applied nothing */
        p->ops.after_commit(p->ctx, b);
    t = step_done("after_commit", t);
    pipeline_relay_send(p, b->out, ids, b->out_count);
    step_done("relay", t);
}

/* Applies messages [from, to) of the polled batch as one batch, retrying
 * transient failures until it commits, is fenced, or a stop is requested
 * (then nothing more is committed and the next owner re-reads it). A
 * deterministic database error splits it (split_range); a message refused
 * alone twice in a row is dead-lettered with the SQLSTATE, so one bad
 * message never stalls its partition. */
static enum range_result process_range(struct pipeline *p, struct pipeline_batch *whole,
                                       size_t from, size_t to)
{
    struct pipeline_batch b = {
        .msgs = whole->msgs + from, .count = to - from, .poison = whole->poison + from};
    /* The pipeline's ranges: a split (split_range) ends this call, so the
     * halves may reuse them. */
    struct db_offset_range *ranges = p->ranges;
    size_t nr = batch_ranges(&b, ranges, p->cfg.batch_max);
    struct refusal refusal, *refused = NULL;
    int refused_alone = 0; /* deterministic failures of a lone message in a row */
    char err[512];
    int64_t *ids = NULL;
    enum range_result result = RANGE_STOPPED;
    double started_s = metrics_now_seconds();
    for (int attempt = 0;; attempt++) {
        bus_producer_poll(p->producer, 0); /* reports decide what the batch deletes */
        enum attempt_result r =
            batch_attempt(p, &b, from, refused, ranges, nr, &ids, err, sizeof(err));
        atomic_store(&p->stats.postgres_ok, r != ATTEMPT_FAILED || db_healthy(p->pg));
        if (r == ATTEMPT_FENCED) {
            handle_fence(p, ranges, nr);
            result = RANGE_FENCED;
            break;
        }
        if (r == ATTEMPT_COMMITTED) {
            range_committed(p, &b, refused, ids, started_s);
            result = RANGE_DONE;
            break;
        }
        if (r == ATTEMPT_DEAD_LETTERS &&
            pipeline_dl_send(p, &b, from, refused, err, sizeof(err)) == 0) {
            attempt--; /* not a failure: try again at once */
            continue;
        }
        if (r == ATTEMPT_FAILED && !refused && failure_is_deterministic(p)) {
            if (b.count > 1) {
                result = split_range(p, whole, from, to);
                break;
            }
            if (++refused_alone >= 2) { /* twice: not a race with another writer */
                const struct db_failure *f = db_failure_last();
                memcpy(refusal.sqlstate, f->sqlstate, sizeof(refusal.sqlstate));
                snprintf(refusal.text, sizeof(refusal.text), "%s", f->text);
                refused = &refusal;
                log_fields(LOG_ERROR, "the database refuses a message; dead-lettering it",
                           "sqlstate", refusal.sqlstate, "error", refusal.text, NULL);
                continue;
            }
        } else {
            refused_alone = 0;
        }
        atomic_fetch_add(&p->stats.retries, 1);
        pipeline_metrics_count("tessera_consumer_batch_retries_total",
                               "Batch attempts that failed and were retried.", 1);
        log_fields(LOG_ERROR, "batch failed; retrying", "error", err, NULL);
        if (atomic_load(&p->stop))
            break;
        backoff_sleep(attempt);
        db_healthy(p->pg); /* resets a broken connection */
    }
    batch_reset_outputs(&b);
    free(b.out);
    free(ids);
    return result;
}

/* Applies one polled batch (see process_range). */
static void process_batch(struct pipeline *p, struct pipeline_batch *b)
{
    for (size_t i = 0; i < b->count; i++) {
        p->dl_queued[i] = false;
        p->dl_result[i] = RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    (void)process_range(p, b, 0, b->count);
}

/* After each poll and each applied batch: the lag (known once a fetch
 * has answered for every assigned partition). applied_all says every
 * message fetched so far has been applied (an empty poll, or the batch in
 * hand done): only then does a small lag mean caught up, and positioned
 * is set the first time it does since the latest assignment. */
static void note_position(struct pipeline *p, bool applied_all)
{
    int64_t lag = bus_consumer_lag(p->consumer);
    atomic_store(&p->stats.lag, lag);
    if (!applied_all || lag < 0 || lag > PIPELINE_READY_LAG_MAX ||
        atomic_load(&p->stats.positioned))
        return;
    char text[24];
    snprintf(text, sizeof(text), "%lld", (long long)lag);
    log_fields(LOG_INFO, "consumer positioned: every partition fetched and caught up", "lag", text,
               NULL);
    atomic_store(&p->stats.positioned, true);
}

static void *pipeline_main(void *arg)
{
    struct pipeline *p = arg;
    size_t max = p->cfg.batch_max;
    struct pipeline_batch b = {.msgs = calloc(max, sizeof(*b.msgs)),
                               .poison = calloc(max, sizeof(*b.poison))};
    assert(b.msgs && b.poison);
    pipeline_relay_sweep(p); /* events a crash left behind, once their lease is over */
    pipeline_metrics_outbox_backlog(p->pg, p->deletable, p->deletable_count);
    double ended_s = 0;
    while (!atomic_load(&p->stop)) {
        int wait_ms = p->in_flight ? 1 : p->cfg.poll_timeout_ms; /* reports are due soon */
        double poll_s = metrics_now_seconds();
        b.count = bus_consumer_poll_batch(p->consumer, b.msgs, max, wait_ms);
        pipeline_metrics_fetched(b.msgs, b.count);
        pipeline_metrics_poll(b.count, metrics_now_seconds() - poll_s);
        if (bus_consumer_fatal(p->consumer)) {
            /* librdkafka does not recover a consumer from a fatal error:
             * ending on an error (not stopping) ends the service with
             * status 1 (consumer_service.c) and its supervisor starts it
             * again; what was fetched is applied by the next owner. */
            log_fields(LOG_ERROR, "pipeline ending: its Kafka consumer hit a fatal error", NULL);
            for (size_t i = 0; i < b.count; i++)
                rd_kafka_message_destroy(b.msgs[i]);
            b.count = 0;
            atomic_store(&p->failed, true);
            break;
        }
        note_position(p, b.count == 0);
        pipeline_metrics_lags(&p->lag_view, p->consumer);
        pipeline_relay_tick(p, b.count == 0);
        if (b.count == 0) {
            atomic_store(&p->stats.postgres_ok, db_healthy(p->pg));
            ended_s = 0; /* idle: the next batch did not wait for this loop */
            continue;
        }
        double started_s = metrics_now_seconds();
        /* Polls, relay ticks and reports between two batches back to back
         * (an empty poll in between was idle time, not overhead: counting
         * it made "between" look like a wait behind the loop). */
        if (ended_s > 0)
            pipeline_metrics_step("between", started_s - ended_s);
        process_batch(p, &b);
        ended_s = metrics_now_seconds();
        memset(b.poison, 0, b.count * sizeof(*b.poison));
        for (size_t i = 0; i < b.count; i++)
            rd_kafka_message_destroy(b.msgs[i]);
        b.count = 0;
        note_position(p, true);
    }
    free(b.out);
    free(b.msgs);
    free(b.poison);
    /* Let in-flight events land and their rows go, so a clean stop leaves
     * nothing for the next start to send twice. */
    if (bus_producer_flush(p->producer, OUTBOX_FLUSH_TIMEOUT_MS) < 0)
        log_warn("pipeline stopping with events still in flight; they will be sent again");
    pipeline_relay_tick(p, true);
    log_info("pipeline stopping: leaving the consumer group");
    bus_consumer_close(p->consumer);
    p->consumer = NULL;
    if (p->on_exit)
        p->on_exit(p->exit_ctx);
    return NULL;
}

struct pipeline *pipeline_prepare(const struct pipeline_config *cfg, const struct pipeline_ops *ops,
                                  void *ctx, void (*on_exit)(void *exit_ctx), void *exit_ctx,
                                  char *err, size_t err_len)
{
    assert(cfg->batch_max > 0 && cfg->batch_max <= PIPELINE_BATCH_MAX && ops->apply);
    struct pipeline *p = calloc(1, sizeof(*p));
    assert(p);
    p->cfg = *cfg;
    p->ops = *ops;
    p->ctx = ctx;
    p->on_exit = on_exit;
    p->exit_ctx = exit_ctx;
    atomic_store(&p->stats.lag, -1);
    p->dl_queued = calloc(cfg->batch_max, sizeof(*p->dl_queued));
    p->dl_result = calloc(cfg->batch_max, sizeof(*p->dl_result));
    assert(p->dl_queued && p->dl_result);
    snprintf(p->source, sizeof(p->source), "/tessera/%s", cfg->service);
    char lease_id[UUID_STR_SIZE];
    uuid7_generate(lease_id); /* unique per pipeline and start */
    snprintf(p->owner, sizeof(p->owner), "%.40s/%s", cfg->service, lease_id);
    pipeline_metrics_register();
    p->ranges = calloc(cfg->batch_max, sizeof(*p->ranges));
    if (!p->ranges) {
        snprintf(err, err_len, "pipeline: out of memory");
        goto fail;
    }

    p->pg =
        db_connect(cfg->pg_dsn, cfg->schema, cfg->service, cfg->statement_timeout_ms, err, err_len);
    if (!p->pg)
        goto fail;
    atomic_store(&p->stats.postgres_ok, true);
    p->producer = bus_producer_new(cfg->bus, NULL, pipeline_relay_on_delivery, p, err, err_len);
    if (!p->producer)
        goto fail;
    static const char *const all_topics[] = TOPICS_ALL;
    bus_producer_prepare_topics(p->producer, all_topics, TOPICS_ALL_COUNT, 5000);
    return p;
fail:
    bus_producer_free(p->producer);
    if (p->pg)
        PQfinish(p->pg);
    free(p->ranges);
    free(p->dl_queued);
    free(p->dl_result);
    free(p);
    return NULL;
}

int pipeline_run(struct pipeline *p, char *err, size_t err_len)
{
    assert(!p->running);
    static const struct bus_consumer_ops consumer_ops = {.on_assign = on_assign,
                                                         .on_revoke = on_revoke};
    p->consumer = bus_consumer_new(p->cfg.bus, p->cfg.group_id, p->cfg.topics, p->cfg.topic_count,
                                   &consumer_ops, p, err, err_len);
    if (!p->consumer)
        return -1;
    log_fields(LOG_INFO, "consumer started", "group", p->cfg.group_id, "cluster_id",
               bus_consumer_cluster_id(p->consumer), NULL);
    live_add(p);
    if (pthread_create(&p->thread, NULL, pipeline_main, p) != 0) {
        live_remove(p);
        bus_consumer_close(p->consumer);
        p->consumer = NULL;
        snprintf(err, err_len, "cannot start the pipeline thread");
        return -1;
    }
    p->running = true;
    return 0;
}

struct pipeline *pipeline_start(const struct pipeline_config *cfg, const struct pipeline_ops *ops,
                                void *ctx, void (*on_exit)(void *exit_ctx), void *exit_ctx,
                                char *err, size_t err_len)
{
    struct pipeline *p = pipeline_prepare(cfg, ops, ctx, on_exit, exit_ctx, err, err_len);
    if (p && pipeline_run(p, err, err_len) < 0) {
        pipeline_join(p);
        return NULL;
    }
    return p;
}

void pipeline_request_stop(struct pipeline *p)
{
    atomic_store(&p->stop, true);
}

void pipeline_join(struct pipeline *p)
{
    if (!p)
        return;
    if (p->running) {
        pthread_join(p->thread, NULL);
        live_remove(p);
    }
    bus_producer_free(p->producer); /* serves the last reports */
    while (p->in_flight) {          /* undelivered: their rows stay for the sweep */
        struct relay_group *g = p->in_flight;
        p->in_flight = g->next;
        free(g->ids);
        free(g);
    }
    free(p->deletable);
    free(p->ranges);
    free(p->dl_queued);
    free(p->dl_result); /* after the producer: its last reports land here */
    PQfinish(p->pg);
    free(p);
}

const struct pipeline_stats *pipeline_stats(const struct pipeline *p)
{
    return &p->stats;
}

bool pipeline_failed(const struct pipeline *p)
{
    return atomic_load(&p->failed);
}
