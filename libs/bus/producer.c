/* The idempotent producer: one rd_kafka_t per bus_producer, delivery
 * reports served either on a libevent loop (queue watcher on the main
 * queue) or by the caller through bus_producer_poll/flush. */
#include "bus/bus_internal.h"
#include "bus/topics.h"

#include "log/log.h"
#include "metrics/metrics.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUS_PRODUCE_RETRY_POLL_MS 100 /* poll between queue-full retries */
#define BUS_LINGER_MS_MAX         10000
/* A handle is replaced after a fatal error at most this often: a broker
 * that keeps breaking the idempotent producer is not met with a new
 * connection storm. Until then every produce fails, and callers retry. */
#define BUS_RECREATE_INTERVAL_MS 5000
/* How long a replacement waits for the old handle's purged reports. */
#define BUS_RECREATE_PURGE_WAIT_MS 2000

struct bus_producer {
    rd_kafka_t *rk;
    rd_kafka_conf_t *conf;   /* a copy of rk's, to build a replacement from */
    int64_t recreated_ms;    /* bus_now_ms() of the last replacement, 0: none */
    bool recreating;         /* reports of the old handle are being served */
    struct event_base *base; /* NULL: the caller polls */
    struct bus_qwatch qwatch;
    bus_delivery_fn on_delivery;
    void *ctx;
    /* Enqueued and not yet reported. Atomic because a caller may read it
     * from another thread than the one serving delivery reports. */
    atomic_int outstanding;
};

static bool bus_producer_drain(void *arg);

/* Only bus_dead_letter_enqueue produces to the dead-letter topic, and its
 * msg_opaque is the caller's result cell: such reports go there, not to
 * on_delivery (which does not know about them). */
static bool bus_is_dead_letter(const rd_kafka_message_t *rkm)
{
    return strcmp(rd_kafka_topic_name(rkm->rkt), TOPIC_DEAD_LETTER) == 0;
}

/* Counts a delivery report by topic and result: "produced" means the
 * broker acknowledged it (acks=all), not merely that it was enqueued. */
static void bus_producer_observe(const rd_kafka_message_t *rkm)
{
    struct metric_family *f = metrics_counter(
        "tessera_kafka_produced_messages_total",
        "Messages produced to Kafka, by topic and delivery result.", "topic,result");
    metrics_inc(metrics_with(f, rd_kafka_topic_name(rkm->rkt),
                             rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR ? "ok" : "error"));
}

/* Delivery report callback, from rd_kafka_poll on the loop or the caller's
 * thread. Exactly one per enqueued message, whatever its fate. */
static void bus_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    struct bus_producer *p = opaque;
    void *msg_opaque = rkm->_private;

    int before = atomic_fetch_sub(&p->outstanding, 1);
    BUS_ASSERT(before > 0); /* one report per enqueued message */
    bus_producer_observe(rkm);
    if (rkm->err != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_fields(LOG_WARN, "kafka delivery failed", "topic", rd_kafka_topic_name(rkm->rkt),
                   "error", rd_kafka_err2name(rkm->err), NULL);
    if (bus_is_dead_letter(rkm)) {
        if (msg_opaque != NULL)
            *(rd_kafka_resp_err_t *)msg_opaque = rkm->err;
        return;
    }
    if (p->on_delivery != NULL)
        p->on_delivery(p->ctx, msg_opaque, rkm->err);
    else if (msg_opaque != NULL)
        *(rd_kafka_resp_err_t *)msg_opaque = rkm->err;
}

/* Serves the old handle's reports after purging it: every message it still
 * held gets a failed report (__PURGE_QUEUE or __PURGE_INFLIGHT), which
 * its caller already handles as any failed delivery (the outbox relays the
 * row again, ingest answers 503 or 202, dead letters are waited for
 * again). */
static void bus_producer_purge_old(struct bus_producer *p)
{
    int64_t deadline = bus_now_ms() + BUS_RECREATE_PURGE_WAIT_MS;
    rd_kafka_resp_err_t e =
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_fields(LOG_WARN, "kafka purge failed", "error", rd_kafka_err2name(e), NULL);
    rd_kafka_poll(p->rk, 0);
    while (rd_kafka_outq_len(p->rk) > 0 && bus_now_ms() < deadline)
        rd_kafka_poll(p->rk, 1);
    if (rd_kafka_outq_len(p->rk) > 0)
        log_fields(LOG_ERROR, "kafka producer replaced with messages unreported", "client",
                   rd_kafka_name(p->rk), NULL);
}

static void bus_producer_count_recreated(const char *error)
{
    struct metric_family *f = metrics_counter(
        "tessera_kafka_producer_recreated_total",
        "Kafka producer handles replaced after a fatal error, by the error.", "error");
    metrics_inc(metrics_with(f, error));
}

/* An idempotent producer's fatal error (e.g. OUT_OF_ORDER_SEQUENCE_NUMBER
 * after a broker lost unflushed messages) makes every later call on its
 * handle fail with __FATAL: the handle is replaced with a new one built
 * from the same configuration, here on the thread that serves the
 * producer's reports (its loop, or the caller of poll/flush/produce). A
 * message whose report was purged may still have reached the broker and is
 * sent again by its caller: that is safe because every consumer
 * de-duplicates by the message's id (event id, command id). */
static void bus_producer_recover(struct bus_producer *p)
{
    char reason[512], err[256];
    rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(p->rk, reason, sizeof(reason));
    if (fatal == RD_KAFKA_RESP_ERR_NO_ERROR || p->recreating)
        return;
    int64_t now = bus_now_ms();
    if (p->recreated_ms != 0 && now - p->recreated_ms < BUS_RECREATE_INTERVAL_MS)
        return;
    p->recreated_ms = now;
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(p->conf);
    rd_kafka_t *fresh = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (fresh == NULL) {
        rd_kafka_conf_destroy(conf);
        log_fields(LOG_ERROR, "kafka producer not replaced", "error", err, NULL);
        return;
    }
    p->recreating = true; /* a report callback that produces must not recurse */
    bus_producer_purge_old(p);
    p->recreating = false;
    bus_qwatch_stop(&p->qwatch);
    rd_kafka_destroy(p->rk);
    p->rk = fresh;
    if (p->base != NULL && bus_qwatch_start(&p->qwatch, p->base, rd_kafka_queue_get_main(p->rk),
                                            bus_producer_drain, p, err, sizeof(err)) != 0)
        log_fields(LOG_ERROR, "kafka producer replaced without its queue watcher", "error", err,
                   NULL);
    log_fields(LOG_ERROR, "kafka producer replaced after a fatal error", "client",
               rd_kafka_name(p->rk), "error", rd_kafka_err2name(fatal), "reason", reason, NULL);
    bus_producer_count_recreated(rd_kafka_err2name(fatal));
}

/* Queue watcher drain: serves the delivery reports waiting; true when it
 * stopped at BUS_DRAIN_EVENTS_MAX with more left. */
static bool bus_producer_drain(void *arg)
{
    struct bus_producer *p = arg;
    int served = 0;
    bus_producer_recover(p);
    while (served < BUS_DRAIN_EVENTS_MAX) {
        int n = rd_kafka_poll(p->rk, 0);
        if (n <= 0)
            return false;
        served += n;
    }
    return true;
}

static bool bus_producer_configure(rd_kafka_conf_t *conf, const struct bus_config *cfg, char *err,
                                   size_t err_len)
{
    char linger[16];

    if (cfg->linger_ms < 0 || cfg->linger_ms > BUS_LINGER_MS_MAX) {
        snprintf(err, err_len, "linger_ms %d outside 0..%d", cfg->linger_ms, BUS_LINGER_MS_MAX);
        return false;
    }
    snprintf(linger, sizeof(linger), "%d", cfg->linger_ms);
    const struct bus_setting settings[] = {
        /* No duplicates or reordering on retries; needs acks=all. */
        {"enable.idempotence", "true"},
        {"acks", "all"},
        /* Same partition for a key as the Java clients' default. */
        {"partitioner", "murmur2_random"},
        {"linger.ms", linger},
    };
    return bus_conf_apply(conf, "producer", settings, sizeof(settings) / sizeof(settings[0]), err,
                          err_len);
}

struct bus_producer *bus_producer_new(const struct bus_config *cfg, struct event_base *base,
                                      bus_delivery_fn on_delivery, void *ctx, char *err,
                                      size_t err_len)
{
    struct bus_producer *p = calloc(1, sizeof(*p));
    BUS_ASSERT(p != NULL);
    p->base = base;
    p->on_delivery = on_delivery;
    p->ctx = ctx;
    atomic_init(&p->outstanding, 0);

    rd_kafka_conf_t *conf = bus_conf_new(cfg, err, err_len);
    if (conf == NULL)
        goto fail;
    if (!bus_producer_configure(conf, cfg, err, err_len)) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, bus_on_delivery);
    rd_kafka_conf_set_opaque(conf, p);
    p->conf = rd_kafka_conf_dup(conf);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, err_len);
    if (p->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    if (base != NULL && bus_qwatch_start(&p->qwatch, base, rd_kafka_queue_get_main(p->rk),
                                         bus_producer_drain, p, err, err_len) != 0)
        goto fail;
    return p;
fail:
    bus_producer_free(p);
    return NULL;
}

/* One enqueue attempt and, for blocking producers, the queue-full retries.
 * Takes ownership of headers in every case. */
static rd_kafka_resp_err_t bus_produce_raw(struct bus_producer *p, const char *topic,
                                           const void *key, size_t key_len, const void *payload,
                                           size_t len, rd_kafka_headers_t *headers,
                                           void *msg_opaque)
{
    rd_kafka_resp_err_t err;

    for (int attempt = 0;; attempt++) {
        err = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            atomic_fetch_add(&p->outstanding, 1);
            return err; /* librdkafka owns headers now */
        }
        /* A loop-driven producer must not block the loop: the caller
         * decides (503, back-pressure). A blocking one serves reports,
         * which frees queue space, and tries again. */
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || p->base != NULL ||
            attempt >= BUS_PRODUCE_RETRIES_MAX)
            break;
        rd_kafka_poll(p->rk, BUS_PRODUCE_RETRY_POLL_MS);
    }
    if (headers != NULL)
        rd_kafka_headers_destroy(headers);
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        bus_producer_recover(p); /* this message failed; the next one may go */
    else if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        log_fields(LOG_WARN, "kafka produce failed", "topic", topic, "error",
                   rd_kafka_err2name(err), NULL);
    return err;
}

rd_kafka_resp_err_t bus_produce(struct bus_producer *p, const char *topic, const char *key,
                                const void *payload, size_t len, rd_kafka_headers_t *headers,
                                void *msg_opaque)
{
    BUS_ASSERT(p != NULL && topic != NULL && key != NULL);
    BUS_ASSERT(payload != NULL || len == 0);
    if (strcmp(topic, TOPIC_DEAD_LETTER) == 0) {
        /* Its reports would write an error code through msg_opaque as if
         * it were bus_dead_letter's result cell (bus_on_delivery), which
         * corrupts whatever the caller passed: refused, loudly. */
        log_fields(LOG_ERROR, "refused: only bus_dead_letter produces to the dead-letter topic",
                   "topic", topic, NULL);
        if (headers != NULL)
            rd_kafka_headers_destroy(headers);
        return RD_KAFKA_RESP_ERR__INVALID_ARG;
    }
    return bus_produce_raw(p, topic, key, strlen(key), payload, len, headers, msg_opaque);
}

void bus_producer_poll(struct bus_producer *p, int timeout_ms)
{
    BUS_ASSERT(p != NULL && timeout_ms >= 0);
    bus_producer_recover(p);
    rd_kafka_poll(p->rk, timeout_ms);
}

/* rd_kafka_flush() of 2.0.2 serves reports in 10 ms steps, and a longer
 * rd_kafka_poll() does not return when a report arrives: a flush after
 * every batch cost 10 ms (measured against the dev broker: 10.1 ms per
 * produce+flush, 1.1 ms with this loop). So: wake the brokers to send now
 * (rd_kafka_flush with no wait ignores linger.ms), then serve reports in
 * 1 ms steps until none is outstanding. */
int bus_producer_flush(struct bus_producer *p, int timeout_ms)
{
    BUS_ASSERT(p != NULL && timeout_ms >= 0);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    rd_kafka_flush(p->rk, 0);
    while (rd_kafka_outq_len(p->rk) > 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed_ms =
            (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed_ms >= timeout_ms)
            return -1;
        rd_kafka_poll(p->rk, 1);
        bus_producer_recover(p);
    }
    return 0;
}

int bus_producer_outstanding(struct bus_producer *p)
{
    BUS_ASSERT(p != NULL);
    return atomic_load(&p->outstanding);
}

void bus_producer_free(struct bus_producer *p)
{
    if (p == NULL)
        return;
    if (p->rk != NULL && bus_producer_flush(p, BUS_CLOSE_FLUSH_MS) != 0)
        log_fields(LOG_ERROR, "kafka producer closed with messages undelivered", "client",
                   rd_kafka_name(p->rk), NULL);
    bus_qwatch_stop(&p->qwatch);
    if (p->rk != NULL)
        rd_kafka_destroy(p->rk);
    if (p->conf != NULL)
        rd_kafka_conf_destroy(p->conf);
    free(p);
}

rd_kafka_t *bus_producer_handle(struct bus_producer *p)
{
    BUS_ASSERT(p != NULL);
    return p->rk;
}

/* ------------------------------------------------------------ dead letter */

/* The original headers (CloudEvents routing data) plus why and where the
 * message was dead-lettered, and the caller's extra pairs. Caller owns the
 * result. */
static rd_kafka_headers_t *bus_dead_letter_headers(const rd_kafka_message_t *rkm,
                                                   const char *service, const char *reason,
                                                   const char *const *extra)
{
    rd_kafka_headers_t *orig = NULL;
    rd_kafka_headers_t *hdrs;
    char partition[16], offset[24];

    if (rd_kafka_message_headers(rkm, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR)
        hdrs = rd_kafka_headers_copy(orig);
    else
        hdrs = rd_kafka_headers_new(5);
    snprintf(partition, sizeof(partition), "%" PRId32, rkm->partition);
    snprintf(offset, sizeof(offset), "%" PRId64, rkm->offset);
    rd_kafka_header_add(hdrs, "x-original-topic", -1, rd_kafka_topic_name(rkm->rkt), -1);
    rd_kafka_header_add(hdrs, "x-original-partition", -1, partition, -1);
    rd_kafka_header_add(hdrs, "x-original-offset", -1, offset, -1);
    rd_kafka_header_add(hdrs, "x-dead-letter-reason", -1, reason, -1);
    rd_kafka_header_add(hdrs, "x-dead-letter-service", -1, service, -1);
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i += 2) {
        BUS_ASSERT(extra[i + 1] != NULL);
        rd_kafka_header_add(hdrs, extra[i], -1, extra[i + 1], -1);
    }
    return hdrs;
}

rd_kafka_resp_err_t bus_dead_letter_enqueue(struct bus_producer *p, const rd_kafka_message_t *rkm,
                                            const char *service, const char *reason,
                                            const char *const *extra, rd_kafka_resp_err_t *result)
{
    BUS_ASSERT(p != NULL && rkm != NULL && rkm->rkt != NULL && result != NULL);
    BUS_ASSERT(service != NULL && reason != NULL);
    BUS_ASSERT(p->base == NULL); /* blocking producers only */
    *result = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    rd_kafka_headers_t *hdrs = bus_dead_letter_headers(rkm, service, reason, extra);
    rd_kafka_resp_err_t err = bus_produce_raw(p, TOPIC_DEAD_LETTER, rkm->key, rkm->key_len,
                                              rkm->payload, rkm->len, hdrs, result);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        *result = err; /* never enqueued: no report will come */
    return err;
}

int bus_dead_letters_wait(struct bus_producer *p, const rd_kafka_resp_err_t *results, size_t n,
                          int timeout_ms)
{
    BUS_ASSERT(p != NULL && (results != NULL || n == 0) && timeout_ms >= 0);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    rd_kafka_flush(p->rk, 0); /* send now, whatever linger.ms says */
    for (size_t i = 0; i < n;) {
        if (results[i] != RD_KAFKA_RESP_ERR__IN_PROGRESS) {
            i++;
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed_ms =
            (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed_ms >= timeout_ms)
            return -1;
        rd_kafka_poll(p->rk, 1);
        bus_producer_recover(p);
    }
    for (size_t i = 0; i < n; i++)
        if (results[i] != RD_KAFKA_RESP_ERR_NO_ERROR)
            return -1;
    return 0;
}

rd_kafka_resp_err_t bus_dead_letter(struct bus_producer *p, const rd_kafka_message_t *rkm,
                                    const char *service, const char *reason)
{
    /* static: a report that comes after the timeout still has its cell
     * (blocking producers are used from one thread each). */
    static _Thread_local rd_kafka_resp_err_t result;
    rd_kafka_resp_err_t err = bus_dead_letter_enqueue(p, rkm, service, reason, NULL, &result);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR &&
        bus_dead_letters_wait(p, &result, 1, BUS_DEAD_LETTER_TIMEOUT_MS) < 0)
        err = result == RD_KAFKA_RESP_ERR__IN_PROGRESS ? RD_KAFKA_RESP_ERR__TIMED_OUT : result;
    log_fields(err ? LOG_ERROR : LOG_WARN, "message dead-lettered", "topic",
               rd_kafka_topic_name(rkm->rkt), "reason", reason, "result", rd_kafka_err2name(err),
               NULL);
    return err;
}

/* librdkafka learns a topic's partitions only when the first message for
 * it waits in the queue, and 2.0.2 then asks at its next one-second timer
 * tick: the first request after start took ~1 s longer. Asking for each
 * topic's metadata up front removes that. */
int bus_producer_prepare_topics(struct bus_producer *p, const char *const *topics, size_t count,
                                int timeout_ms)
{
    int failures = 0;
    for (size_t i = 0; i < count; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topics[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rkt ? rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms)
                                    : RD_KAFKA_RESP_ERR__INVALID_ARG;
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            log_fields(LOG_WARN, "kafka: no metadata for topic yet", "topic", topics[i], "error",
                       rd_kafka_err2str(e), NULL);
            failures++;
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        if (rkt)
            rd_kafka_topic_destroy(rkt);
    }
    return failures ? -1 : 0;
}
