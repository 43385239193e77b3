/* What producer.c, consumer.c and tail.c share: configuration helpers,
 * the error callback and the queue watcher that wakes a libevent loop
 * when a librdkafka queue gets work. Not part of the public interface. */
#ifndef TESSERA_BUS_INTERNAL_H
#define TESSERA_BUS_INTERNAL_H

#include "bus/bus.h"

#include <assert.h>

/* Always-on assert for programmer errors, also in -DNDEBUG builds. */
#define BUS_ASSERT(cond) ((cond) ? (void)0 : bus_assert_fail(#cond, __FILE__, __LINE__, __func__))
_Noreturn void bus_assert_fail(const char *expr, const char *file, int line, const char *func);

/* Limits. */
#define BUS_CLUSTER_ID_LEN_MAX         64    /* Kafka cluster ids are 22 base64 chars */
#define BUS_DRAIN_SAFETY_MS            100   /* safety timer of a queue watcher */
#define BUS_DRAIN_EVENTS_MAX           10000 /* events served per drain call */
#define BUS_START_TIMEOUT_MS           10000 /* blocking metadata calls at start-up */
#define BUS_CLOSE_FLUSH_MS             10000 /* flush before a producer is destroyed */
#define BUS_SESSION_TIMEOUT_DEFAULT_MS 10000

/* Re-reading the cluster id before an assignment: the cached id, or one
 * metadata request. */
#define BUS_ASSIGN_CLUSTER_ID_TIMEOUT_MS 2000

/* Monotonic clock in milliseconds. */
int64_t bus_now_ms(void);

/* error_log.c: whether a report of error err (librdkafka's error
 * callback) is to be logged at now_ms: the first of its kind in
 * BUS_ERROR_LOG_EVERY_MS across the process is; *held_back says how many
 * of its kind were not logged since the last one that was. Thread-safe. */
#define BUS_ERROR_LOG_EVERY_MS 10000
#define BUS_ERROR_KINDS_MAX    32 /* kinds remembered; more are always logged */
bool bus_error_log_due(int err, int64_t now_ms, long *held_back);

/* Logs the fatal error of rk in full (after a call returned __FATAL). */
void bus_log_fatal(rd_kafka_t *rk);

struct bus_setting {
    const char *key;
    const char *value;
};

/* A conf with bootstrap.servers, client.id and the shared error callback
 * set; NULL with err on a bad value. Caller owns the conf (rd_kafka_new
 * takes it on success, else rd_kafka_conf_destroy). */
rd_kafka_conf_t *bus_conf_new(const struct bus_config *cfg, char *err, size_t err_len);

/* Applies settings in order and logs them in one line under what; false
 * with err naming the first key librdkafka refused. */
bool bus_conf_apply(rd_kafka_conf_t *conf, const char *what, const struct bus_setting *settings,
                    size_t count, char *err, size_t err_len) __attribute__((warn_unused_result));

/* Wakes a libevent loop when rkqu goes from empty to non-empty (librdkafka
 * writes a byte to a pipe) and, as a safety net, every
 * BUS_DRAIN_SAFETY_MS. Either way drain(ctx) must empty the queue, because
 * the IO event does not fire again while it holds anything; a drain that
 * stops at its batch limit returns true and is called again on the next
 * loop iteration, after other ready events. */
struct bus_qwatch {
    bool active;            /* between a successful start and stop */
    rd_kafka_queue_t *rkqu; /* owned: destroyed by bus_qwatch_stop */
    int pipe_fds[2];
    struct event *ev_read;
    struct event *ev_timer;
    bool (*drain)(void *ctx);
    void *ctx;
};

/* Takes ownership of rkqu in every case. 0, or -1 with err. */
int bus_qwatch_start(struct bus_qwatch *w, struct event_base *base, rd_kafka_queue_t *rkqu,
                     bool (*drain)(void *ctx), void *ctx, char *err, size_t err_len)
    __attribute__((warn_unused_result));
/* Safe on a zeroed or already stopped watcher. */
void bus_qwatch_stop(struct bus_qwatch *w);

#endif
