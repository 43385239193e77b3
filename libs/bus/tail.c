/* The tail: follows every partition of one topic from its end on a
 * libevent loop, without joining a group and without committing.
 *
 * Readiness: at start the high watermark of every partition is queried
 * (blocking, like the metadata request) and each partition is assigned at
 * exactly that offset. Every message produced after bus_tail_new returns
 * has a higher offset and is seen; none from before is. So the tail is
 * ready as soon as it is created; bus_tail_ready exists so callers need
 * not know that. (Assigning at RD_KAFKA_OFFSET_END instead would resolve
 * the end later, and a message produced in between would be skipped.)
 *
 * Growth: partitions added later (tessera-topics) are found by a watcher
 * thread that asks for the topic's metadata every metadata_refresh_ms
 * and adds each new partition from its beginning: all of its messages
 * were produced after the tail started, so none is skipped. The thread
 * only talks to librdkafka (thread-safe), never to the loop. */
#include "bus/bus_internal.h"

#include "util/sleep.h"
#include "log/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUS_TAIL_PARTITIONS_MAX     1024
#define BUS_GROUP_ID_LEN_MAX        256
#define BUS_TAIL_TOPIC_LEN_MAX      249 /* Kafka's limit */
#define BUS_TAIL_REFRESH_DEFAULT_MS 300000
/* A watcher's metadata request: short, so a stop waits at most this long
 * for the thread even while the broker does not answer. */
#define BUS_TAIL_WATCH_TIMEOUT_MS 2000

struct bus_tail {
    rd_kafka_t *rk;
    struct bus_qwatch qwatch;
    bus_tail_fn on_message;
    void *ctx;
    bool ready;
    bool fatal;                 /* librdkafka raised a fatal error: never ready again */
    bus_tail_fatal_fn on_fatal; /* told once, when fatal becomes true */
    void *fatal_ctx;
    char topic[BUS_TAIL_TOPIC_LEN_MAX + 1];
    /* The growth watcher: partitions assigned so far (written by the
     * thread once started), its interval, and the stop flag under lock. */
    int partitions;
    int refresh_ms;
    pthread_t watcher;
    bool watcher_running;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
};

/* librdkafka 2.0.2 keeps assign() and the consumer queue on the group
 * handle, which exists only with a group.id; the tail never joins that
 * group (no subscribe) and never commits to it. */
static bool bus_tail_configure(rd_kafka_conf_t *conf, const struct bus_config *cfg, char *err,
                               size_t err_len)
{
    char group_id[BUS_GROUP_ID_LEN_MAX], fetch_wait[16];

    snprintf(fetch_wait, sizeof(fetch_wait), "%d",
             cfg->fetch_wait_max_ms > 0 ? cfg->fetch_wait_max_ms : 500);

    snprintf(group_id, sizeof(group_id), "tessera-tail.%s",
             cfg->client_id ? cfg->client_id : "anonymous");
    const struct bus_setting settings[] = {
        {"group.id", group_id},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"isolation.level", "read_committed"},
        {"fetch.wait.max.ms", fetch_wait},
    };
    return bus_conf_apply(conf, "tail", settings, sizeof(settings) / sizeof(settings[0]), err,
                          err_len);
}

/* Partition count of topic from a metadata request (blocking); -1 with
 * err when the topic is unknown or the cluster does not answer. */
static int bus_tail_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err,
                                    size_t err_len)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    BUS_ASSERT(rkt != NULL);
    rd_kafka_resp_err_t kerr = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    int count = -1;
    if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR)
        snprintf(err, err_len, "kafka metadata for %s: %s", topic, rd_kafka_err2str(kerr));
    else if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
        snprintf(
            err, err_len, "kafka topic %s: %s", topic,
            rd_kafka_err2str(md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
    else if (md->topics[0].partition_cnt < 1 ||
             md->topics[0].partition_cnt > BUS_TAIL_PARTITIONS_MAX)
        snprintf(err, err_len, "kafka topic %s: %d partitions", topic, md->topics[0].partition_cnt);
    else
        count = md->topics[0].partition_cnt;
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    return count;
}

/* Assigns every partition at its current high watermark (see the top of
 * this file). The partition count, or -1 with err. */
static int bus_tail_assign_at_end(rd_kafka_t *rk, const char *topic, char *err, size_t err_len)
{
    int count = bus_tail_partition_count(rk, topic, BUS_START_TIMEOUT_MS, err, err_len);
    if (count < 0)
        return -1;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(count);
    int rc = 0;
    for (int32_t i = 0; rc == 0 && i < count; i++) {
        int64_t low, high;
        rd_kafka_resp_err_t kerr =
            rd_kafka_query_watermark_offsets(rk, topic, i, &low, &high, BUS_START_TIMEOUT_MS);
        if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(err, err_len, "kafka watermarks of %s/%d: %s", topic, i,
                     rd_kafka_err2str(kerr));
            rc = -1;
        } else {
            rd_kafka_topic_partition_list_add(parts, topic, i)->offset = high;
        }
    }
    if (rc == 0) {
        rd_kafka_resp_err_t kerr = rd_kafka_assign(rk, parts);
        if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(err, err_len, "kafka assign %s: %s", topic, rd_kafka_err2str(kerr));
            rc = -1;
        }
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return rc == 0 ? count : -1;
}

/* Adds partitions [t->partitions, count) from their beginning. */
static void bus_tail_add_partitions(struct bus_tail *t, int count)
{
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(count - t->partitions);
    for (int32_t i = t->partitions; i < count; i++)
        rd_kafka_topic_partition_list_add(parts, t->topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_error_t *error = rd_kafka_incremental_assign(t->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (error != NULL) {
        log_fields(LOG_WARN, "kafka tail could not add partitions", "topic", t->topic, "error",
                   rd_kafka_error_string(error), NULL);
        rd_kafka_error_destroy(error);
        return;
    }
    log_fields(LOG_INFO, "kafka tail follows new partitions", "topic", t->topic, NULL);
    t->partitions = count;
}

/* Waits up to ms for a stop; true when the tail is stopping. */
static bool bus_tail_wait(struct bus_tail *t, int ms)
{
    struct timespec until = deadline_after_ms(CLOCK_MONOTONIC, ms);
    pthread_mutex_lock(&t->lock);
    while (!t->stopping && pthread_cond_timedwait(&t->wake, &t->lock, &until) != ETIMEDOUT) {
    }
    bool stopping = t->stopping;
    pthread_mutex_unlock(&t->lock);
    return stopping;
}

/* The growth watcher thread (see the top of this file). A metadata error
 * (broker restarting) is logged and tried again at the next interval. */
static void *bus_tail_watch(void *arg)
{
    struct bus_tail *t = arg;
    char err[256];
    while (!bus_tail_wait(t, t->refresh_ms)) {
        int count =
            bus_tail_partition_count(t->rk, t->topic, BUS_TAIL_WATCH_TIMEOUT_MS, err, sizeof(err));
        if (count < 0)
            log_fields(LOG_WARN, "kafka tail metadata", "topic", t->topic, "error", err, NULL);
        else if (count > t->partitions)
            bus_tail_add_partitions(t, count);
    }
    return NULL;
}

static int bus_tail_watch_start(struct bus_tail *t, char *err, size_t err_len)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&t->lock, NULL);
    int rc = pthread_create(&t->watcher, NULL, bus_tail_watch, t);
    if (rc != 0) {
        snprintf(err, err_len, "tail watcher thread: %s", strerror(rc));
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
        return -1;
    }
    t->watcher_running = true;
    return 0;
}

static void bus_tail_watch_stop(struct bus_tail *t)
{
    if (!t->watcher_running)
        return;
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->watcher, NULL);
    t->watcher_running = false;
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
}

/* Queue watcher drain, on the loop: hands each message to on_message
 * (which borrows it for the call and must not free the tail). True when it stopped at
 * BUS_DRAIN_EVENTS_MAX with more left. */
static bool bus_tail_drain(void *arg)
{
    struct bus_tail *t = arg;
    for (int served = 0; served < BUS_DRAIN_EVENTS_MAX; served++) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(t->rk, 0);
        if (rkm == NULL)
            return false;
        if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            t->on_message(t->ctx, rkm);
        else if (rkm->err == RD_KAFKA_RESP_ERR__FATAL) {
            /* librdkafka does not recover the handle: the tail is no longer
             * ready for good (/readyz: kafka_verdicts false) and its owner
             * is told, so it ends and its supervisor restarts it
             * (docs/kafka-consumer-recovery.md) */
            bool first = !t->fatal;
            t->fatal = true;
            bus_log_fatal(t->rk);
            if (first && t->on_fatal)
                t->on_fatal(t->fatal_ctx);
        } else if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_fields(LOG_WARN, "kafka tail error", "error", rd_kafka_err2name(rkm->err), "reason",
                       rd_kafka_message_errstr(rkm), NULL);
        rd_kafka_message_destroy(rkm);
    }
    return true;
}

struct bus_tail *bus_tail_new(const struct bus_config *cfg, struct event_base *base,
                              const char *topic, bus_tail_fn on_message, void *ctx, char *err,
                              size_t err_len)
{
    BUS_ASSERT(cfg != NULL && base != NULL && topic != NULL && on_message != NULL);

    struct bus_tail *t = calloc(1, sizeof(*t));
    BUS_ASSERT(t != NULL);
    t->on_message = on_message;
    t->ctx = ctx;
    BUS_ASSERT(strlen(topic) <= BUS_TAIL_TOPIC_LEN_MAX);
    snprintf(t->topic, sizeof(t->topic), "%s", topic);
    t->refresh_ms =
        cfg->metadata_refresh_ms > 0 ? cfg->metadata_refresh_ms : BUS_TAIL_REFRESH_DEFAULT_MS;
    rd_kafka_conf_t *conf = bus_conf_new(cfg, err, err_len);
    if (conf == NULL)
        goto fail;
    if (!bus_tail_configure(conf, cfg, err, err_len)) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    t->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, err_len);
    if (t->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    /* Errors and logs go to the consumer queue too: one queue to watch. */
    rd_kafka_poll_set_consumer(t->rk);
    if (bus_qwatch_start(&t->qwatch, base, rd_kafka_queue_get_consumer(t->rk), bus_tail_drain, t,
                         err, err_len) != 0)
        goto fail;
    t->partitions = bus_tail_assign_at_end(t->rk, topic, err, err_len);
    if (t->partitions < 0)
        goto fail;
    if (bus_tail_watch_start(t, err, err_len) != 0)
        goto fail;
    t->ready = true;
    log_fields(LOG_INFO, "kafka tail following", "topic", topic, NULL);
    return t;
fail:
    bus_tail_free(t);
    return NULL;
}

bool bus_tail_ready(const struct bus_tail *t)
{
    BUS_ASSERT(t != NULL);
    char why[256]; /* raised, its error event not drained yet: not ready either */
    return t->ready && !t->fatal &&
           rd_kafka_fatal_error(t->rk, why, sizeof(why)) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

void bus_tail_on_fatal(struct bus_tail *t, bus_tail_fatal_fn on_fatal, void *ctx)
{
    BUS_ASSERT(t != NULL);
    t->on_fatal = on_fatal;
    t->fatal_ctx = ctx;
}

rd_kafka_t *bus_tail_handle(struct bus_tail *t)
{
    BUS_ASSERT(t != NULL);
    return t->rk;
}

void bus_tail_free(struct bus_tail *t)
{
    if (t == NULL)
        return;
    bus_tail_watch_stop(t);
    bus_qwatch_stop(&t->qwatch);
    if (t->rk != NULL) {
        /* No group membership to leave; this only stops the fetchers. */
        rd_kafka_assign(t->rk, NULL);
        /* a handle with a fatal error is never closed (see consumer.c) */
        if (rd_kafka_consumer_close(t->rk) == RD_KAFKA_RESP_ERR__FATAL)
            rd_kafka_destroy_flags(t->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        else
            rd_kafka_destroy(t->rk);
    }
    free(t);
}
