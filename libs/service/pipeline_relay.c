/* The outbox relay of the pipeline: the events of committed batches go to
 * Kafka without the pipeline waiting for the broker, delivered rows are
 * deleted, and stranded rows are swept and sent again (outbox.h). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "metrics/metrics.h"
#include "service/pipeline_internal.h"
#include "service/pipeline_metrics.h"

static void relay_deletable_add(struct pipeline *p, const int64_t *ids, size_t n)
{
    if (p->deletable_count + n > p->deletable_cap) {
        p->deletable_cap = (p->deletable_count + n) * 2;
        p->deletable = realloc(p->deletable, p->deletable_cap * sizeof(*p->deletable));
        assert(p->deletable);
    }
    memcpy(p->deletable + p->deletable_count, ids, n * sizeof(*ids));
    p->deletable_count += n;
}

void pipeline_relay_deletable_drop(struct pipeline *p, size_t n)
{
    assert(n <= p->deletable_count);
    memmove(p->deletable, p->deletable + n, (p->deletable_count - n) * sizeof(*p->deletable));
    p->deletable_count -= n;
}

/* Delivery report of one relayed event (producer callback, served on the
 * pipeline thread by bus_producer_poll). */
void pipeline_relay_on_delivery(void *ctx, void *msg_opaque, rd_kafka_resp_err_t err)
{
    struct relay_group *g = msg_opaque;
    struct pipeline *p = ctx;
    if (!g)
        return;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        g->failed = true;
        log_fields(LOG_WARN, "event not delivered; its outbox row will be sent again", "error",
                   rd_kafka_err2str(err), NULL);
    }
    if (--g->pending > 0)
        return;
    if (!g->failed) {
        pipeline_metrics_relay_acked(metrics_now_seconds() - g->sent_s);
        relay_deletable_add(p, g->ids, g->count);
        atomic_fetch_add(&p->stats.relayed, (long long)g->events);
        pipeline_metrics_count("tessera_outbox_relayed_total", "Outbox events relayed to Kafka.",
                               (long long)g->events);
    }
    struct relay_group **link = &p->in_flight;
    while (*link != g)
        link = &(*link)->next;
    *link = g->next;
    free(g->ids);
    free(g);
}

/* Produces events rows[0..n), ids[i] the outbox row holding rows[i], as
 * one group: the group's rows (each id once; the events of a packed row
 * are consecutive) are deleted when every event is acknowledged. */
void pipeline_relay_send(struct pipeline *p, const struct outbox_row *rows, const int64_t *ids,
                         size_t n)
{
    if (n == 0)
        return;
    struct relay_group *g = calloc(1, sizeof(*g));
    assert(g);
    g->p = p;
    g->ids = malloc(n * sizeof(*ids));
    assert(g->ids);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || ids[i] != ids[i - 1])
            g->ids[g->count++] = ids[i];
    g->pending = n;
    g->events = n;
    g->sent_s = metrics_now_seconds();
    g->next = p->in_flight;
    p->in_flight = g;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = outbox_produce(p->producer, p->source, &rows[i], g);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) /* no report will come for it */
            pipeline_relay_on_delivery(p, g, e);
    }
}

/* Deletes the rows of delivered events. Inside a batch's transaction it
 * rides along with the batch; when idle it runs alone. */
int pipeline_relay_delete_delivered(struct pipeline *p, char *err, size_t err_len)
{
    if (p->deletable_count == 0)
        return 0;
    if (outbox_delete(p->pg, p->deletable, p->deletable_count, err, err_len) < 0)
        return -1;
    return 0;
}

/* The outbox ids this relay holds: in flight (only those sent at least
 * older_s ago) and delivered but not deleted yet. malloc'ed (NULL when
 * none, or out of memory: then *n is 0 and the caller does without). */
static int64_t *relay_held_ids(const struct pipeline *p, double older_s, size_t *n)
{
    double now_s = metrics_now_seconds();
    size_t count = p->deletable_count;
    for (const struct relay_group *g = p->in_flight; g; g = g->next)
        count += now_s - g->sent_s >= older_s ? g->count : 0;
    int64_t *ids = count ? malloc(count * sizeof(*ids)) : NULL;
    *n = 0;
    if (!ids)
        return NULL;
    if (p->deletable_count)
        memcpy(ids, p->deletable, p->deletable_count * sizeof(*ids));
    *n = p->deletable_count;
    for (const struct relay_group *g = p->in_flight; g; g = g->next)
        if (now_s - g->sent_s >= older_s) {
            memcpy(ids + *n, g->ids, g->count * sizeof(*ids));
            *n += g->count;
        }
    return ids;
}

/* Rows nobody is sending (a crash between commit and delivery, a failed
 * delivery), claimed with a lease and sent again, at least once. Runs
 * whatever is in flight (so it is never starved by a steady load), and
 * skips what this relay holds: a row is never in two groups, and nothing
 * librdkafka still holds is produced twice. */
void pipeline_relay_sweep(struct pipeline *p)
{
    size_t held_count = 0;
    int64_t *held = relay_held_ids(p, 0, &held_count);
    if (!held && (p->in_flight || p->deletable_count))
        return; /* out of memory: the next sweep tries again */
    struct outbox_stranded st = {0};
    char err[256];
    int rc = outbox_claim(p->pg, p->owner, held, held_count, OUTBOX_RELAY_BATCH_MAX, &st, err,
                          sizeof(err));
    free(held);
    if (rc < 0) {
        log_fields(LOG_WARN, "outbox sweep failed; will retry", "error", err, NULL);
        return;
    }
    if (st.count > 0)
        log_fields(LOG_INFO, "sending stranded outbox rows again", NULL);
    pipeline_relay_send(p, st.rows, st.ids, st.count);
    outbox_stranded_free(&st);
}

/* Keeps the lease of rows in flight a while (Kafka slow or away:
 * librdkafka holds them up to message.timeout.ms), so no other relay
 * claims them meanwhile. */
static void relay_renew(struct pipeline *p)
{
    size_t n = 0;
    int64_t *ids = relay_held_ids(p, RELAY_RENEW_AFTER_S, &n);
    char err[256];
    if (n > 0 && outbox_renew(p->pg, p->owner, ids, n, err, sizeof(err)) < 0)
        log_fields(LOG_WARN, "could not renew the lease of outbox rows in flight", "error", err,
                   NULL);
    free(ids);
}

/* Between batches: serve delivery reports, delete what was delivered when
 * no batch will carry it, and sweep now and then. */
void pipeline_relay_tick(struct pipeline *p, bool idle)
{
    bus_producer_poll(p->producer, 0);
    char err[256];
    if (idle && p->deletable_count > 0) {
        size_t n = p->deletable_count;
        if (pipeline_relay_delete_delivered(p, err, sizeof(err)) == 0)
            pipeline_relay_deletable_drop(p, n);
        else
            log_fields(LOG_WARN, "could not delete relayed outbox rows", "error", err, NULL);
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - p->last_sweep.tv_sec >= RELAY_SWEEP_EVERY_S) {
        p->last_sweep = now;
        relay_renew(p);
        pipeline_relay_sweep(p);
    }
    if (now.tv_sec - p->last_backlog.tv_sec >= RELAY_BACKLOG_EVERY_S) {
        p->last_backlog = now;
        pipeline_metrics_outbox_backlog(p->pg, p->deletable, p->deletable_count);
    }
}
