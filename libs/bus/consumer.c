/* The group consumer. Offsets live with the caller's effects (in
 * PostgreSQL), so nothing is committed to Kafka: at each assignment the
 * caller says where every partition starts, through ops->on_assign. Used
 * from one thread, the one that polls. */
#include "bus/bus_internal.h"

#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUS_SESSION_TIMEOUT_MS_MIN 1000
#define BUS_SESSION_TIMEOUT_MS_MAX 300000
#define BUS_ASSIGN_RETRY_MS        1000 /* after on_assign gave an assignment up */
#define BUS_SEEK_TIMEOUT_MS        5000
#define BUS_POLL_ERRORS_MAX        64 /* error events skipped per poll_batch */

struct bus_consumer {
    rd_kafka_t *rk;
    struct bus_consumer_ops ops;
    void *ctx;
    char cluster_id[BUS_CLUSTER_ID_LEN_MAX];
    /* The assignment with the start offsets on_assign chose (they stand in
     * for the position until a message is consumed), or the one awaiting
     * a successful on_assign when pending. */
    rd_kafka_topic_partition_list_t *assignment;
    bool pending;
    int64_t next_assign_try_ms;
    int assigned_count;
    bool fatal; /* a fatal error was raised: the handle is done (bus_consumer_fatal) */
};

/* Re-reads the cluster id before an assignment. The cluster behind the
 * bootstrap address can be replaced while we run (a lost cluster rebuilt
 * under the same name, empty, with a new id): librdkafka's metadata then
 * carries the new id, and the new coordinator makes the group join again,
 * so an assignment follows. With the id read only at start, the start
 * offsets of the old cluster would pass as ours (seeking past the new
 * cluster's messages) and new offsets would be stored under the old id.
 * -1 when the id cannot be read now (the assignment is retried). */
static int bus_consumer_refresh_cluster_id(struct bus_consumer *c)
{
    char *id = rd_kafka_clusterid(c->rk, BUS_ASSIGN_CLUSTER_ID_TIMEOUT_MS);
    int rc = -1;
    if (id != NULL && strlen(id) < sizeof(c->cluster_id)) {
        if (strcmp(id, c->cluster_id) != 0)
            log_fields(LOG_WARN, "kafka cluster id changed: offsets of the old one are not ours",
                       "was", c->cluster_id, "now", id, NULL);
        memcpy(c->cluster_id, id, strlen(id) + 1);
        rc = 0;
    }
    if (id != NULL)
        rd_kafka_mem_free(c->rk, id);
    return rc;
}

/* Asks the caller for start offsets and assigns. On refusal nothing is
 * assigned and the list is kept pending: bus_consumer_poll_batch tries
 * again later, and the group keeps waiting for our assign call. */
static void bus_consumer_try_assign(struct bus_consumer *c)
{
    BUS_ASSERT(c->assignment != NULL && c->pending);
    if (bus_consumer_refresh_cluster_id(c) != 0 || c->ops.on_assign(c->ctx, c->assignment) != 0) {
        log_warn("consumer: start offsets not available, retrying in %d ms", BUS_ASSIGN_RETRY_MS);
        c->next_assign_try_ms = bus_now_ms() + BUS_ASSIGN_RETRY_MS;
        return;
    }
    rd_kafka_resp_err_t err = rd_kafka_assign(c->rk, c->assignment);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_fields(LOG_ERROR, "kafka assign failed", "error", rd_kafka_err2name(err), NULL);
        c->next_assign_try_ms = bus_now_ms() + BUS_ASSIGN_RETRY_MS;
        return;
    }
    c->pending = false;
    c->assigned_count = c->assignment->cnt;
    log_info("consumer: %d partition(s) assigned", c->assigned_count);
}

static void bus_consumer_forget_assignment(struct bus_consumer *c)
{
    if (c->assignment != NULL)
        rd_kafka_topic_partition_list_destroy(c->assignment);
    c->assignment = NULL;
    c->pending = false;
    c->assigned_count = 0;
}

/* Rebalance callback, from rd_kafka_consumer_poll (eager protocol: the
 * "range" strategy hands out and takes back whole assignments). */
static void bus_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct bus_consumer *c = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        bus_consumer_forget_assignment(c);
        c->assignment = rd_kafka_topic_partition_list_copy(parts);
        c->pending = true;
        bus_consumer_try_assign(c);
        return;
    }
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        log_fields(LOG_ERROR, "kafka rebalance error", "error", rd_kafka_err2name(err), NULL);
    if (c->ops.on_revoke != NULL && c->assignment != NULL && !c->pending)
        c->ops.on_revoke(c->ctx, parts);
    bus_consumer_forget_assignment(c);
    rd_kafka_resp_err_t aerr = rd_kafka_assign(rk, NULL);
    if (aerr != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_fields(LOG_ERROR, "kafka unassign failed", "error", rd_kafka_err2name(aerr), NULL);
    log_info("consumer: partitions revoked");
}

/* The prefetch bound of cfg, when it sets one (struct bus_config). */
static bool bus_consumer_bound_prefetch(rd_kafka_conf_t *conf, const struct bus_config *cfg,
                                        char *err, size_t err_len)
{
    if (cfg->prefetch_kbytes <= 0 || cfg->prefetch_messages <= 0)
        return true;
    char kbytes[16], messages[16];
    snprintf(kbytes, sizeof(kbytes), "%d", cfg->prefetch_kbytes);
    snprintf(messages, sizeof(messages), "%d", cfg->prefetch_messages);
    const struct bus_setting settings[] = {
        {"queued.max.messages.kbytes", kbytes},
        {"queued.min.messages", messages},
    };
    return bus_conf_apply(conf, "consumer prefetch", settings,
                          sizeof(settings) / sizeof(settings[0]), err, err_len);
}

static bool bus_consumer_configure(rd_kafka_conf_t *conf, const struct bus_config *cfg,
                                   const char *group_id, char *err, size_t err_len)
{
    char session[16], heartbeat[16];
    int session_ms =
        cfg->session_timeout_ms ? cfg->session_timeout_ms : BUS_SESSION_TIMEOUT_DEFAULT_MS;

    if (session_ms < BUS_SESSION_TIMEOUT_MS_MIN || session_ms > BUS_SESSION_TIMEOUT_MS_MAX) {
        snprintf(err, err_len, "session_timeout_ms %d outside %d..%d", session_ms,
                 BUS_SESSION_TIMEOUT_MS_MIN, BUS_SESSION_TIMEOUT_MS_MAX);
        return false;
    }
    snprintf(session, sizeof(session), "%d", session_ms);
    char fetch_wait[16];
    snprintf(fetch_wait, sizeof(fetch_wait), "%d",
             cfg->fetch_wait_max_ms > 0 ? cfg->fetch_wait_max_ms : 500);
    /* Three heartbeats per session, as Kafka recommends. */
    snprintf(heartbeat, sizeof(heartbeat), "%d", session_ms / 3);
    const struct bus_setting settings[] = {
        {"group.id", group_id},
        /* Offsets are stored with the effects, never in Kafka. */
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"isolation.level", "read_committed"},
        {"session.timeout.ms", session},
        {"heartbeat.interval.ms", heartbeat},
        {"partition.assignment.strategy", "range"},
        {"fetch.wait.max.ms", fetch_wait},
    };
    if (!bus_conf_apply(conf, "consumer", settings, sizeof(settings) / sizeof(settings[0]), err,
                        err_len))
        return false;
    return bus_consumer_bound_prefetch(conf, cfg, err, err_len);
}

/* Creates the handle and routes every event to the consumer queue, so
 * one rd_kafka_consumer_poll serves messages, rebalances and errors. */
static rd_kafka_t *bus_consumer_handle_new(struct bus_consumer *c, const struct bus_config *cfg,
                                           const char *group_id, char *err, size_t err_len)
{
    rd_kafka_conf_t *conf = bus_conf_new(cfg, err, err_len);
    if (conf == NULL)
        return NULL;
    if (!bus_consumer_configure(conf, cfg, group_id, err, err_len)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, bus_on_rebalance);
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, err_len);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static int bus_consumer_subscribe(struct bus_consumer *c, const char *const *topics,
                                  size_t topic_count, char *err, size_t err_len)
{
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new((int)topic_count);
    for (size_t i = 0; i < topic_count; i++)
        rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kerr = rd_kafka_subscribe(c->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, err_len, "kafka subscribe: %s", rd_kafka_err2str(kerr));
        return -1;
    }
    return 0;
}

/* Fetches the cluster id (blocking, BUS_START_TIMEOUT_MS): a service
 * compares it with the one its stored offsets belong to. */
static int bus_consumer_fetch_cluster_id(struct bus_consumer *c, char *err, size_t err_len)
{
    char *id = rd_kafka_clusterid(c->rk, BUS_START_TIMEOUT_MS);
    int rc = 0;
    if (id == NULL || strlen(id) >= sizeof(c->cluster_id)) {
        snprintf(err, err_len, "kafka cluster id not available within %d ms", BUS_START_TIMEOUT_MS);
        rc = -1;
    } else {
        memcpy(c->cluster_id, id, strlen(id) + 1);
    }
    if (id != NULL)
        rd_kafka_mem_free(c->rk, id);
    return rc;
}

struct bus_consumer *bus_consumer_new(const struct bus_config *cfg, const char *group_id,
                                      const char *const *topics, size_t topic_count,
                                      const struct bus_consumer_ops *ops, void *ctx, char *err,
                                      size_t err_len)
{
    BUS_ASSERT(cfg != NULL && group_id != NULL && group_id[0] != '\0');
    BUS_ASSERT(topics != NULL && topic_count > 0);
    BUS_ASSERT(ops != NULL && ops->on_assign != NULL);

    struct bus_consumer *c = calloc(1, sizeof(*c));
    BUS_ASSERT(c != NULL);
    c->ops = *ops;
    c->ctx = ctx;
    c->rk = bus_consumer_handle_new(c, cfg, group_id, err, err_len);
    if (c->rk == NULL)
        goto fail;
    if (bus_consumer_fetch_cluster_id(c, err, err_len) != 0)
        goto fail;
    if (bus_consumer_subscribe(c, topics, topic_count, err, err_len) != 0)
        goto fail;
    log_fields(LOG_INFO, "kafka consumer started", "group", group_id, "cluster", c->cluster_id,
               NULL);
    return c;
fail:
    bus_consumer_close(c);
    return NULL;
}

/* Logs an error event; partition EOF is routine and only debug. */
static void bus_consumer_log_event(struct bus_consumer *c, const rd_kafka_message_t *rkm)
{
    if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    if (rkm->err == RD_KAFKA_RESP_ERR__FATAL) {
        c->fatal = true;
        bus_log_fatal(c->rk);
        return;
    }
    log_fields(LOG_WARN, "kafka consumer error", "topic",
               rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "", "error", rd_kafka_err2name(rkm->err),
               "reason", rd_kafka_message_errstr(rkm), NULL);
}

bool bus_consumer_fatal(struct bus_consumer *c)
{
    char why[256];
    if (!c->fatal && rd_kafka_fatal_error(c->rk, why, sizeof(why)) != RD_KAFKA_RESP_ERR_NO_ERROR)
        c->fatal = true; /* raised, its error event not polled yet */
    return c->fatal;
}

rd_kafka_t *bus_consumer_handle(struct bus_consumer *c)
{
    return c->rk;
}

size_t bus_consumer_poll_batch(struct bus_consumer *c, rd_kafka_message_t **msgs, size_t max,
                               int timeout_ms)
{
    size_t count = 0;
    int errors = 0;

    BUS_ASSERT(c != NULL && msgs != NULL && max > 0 && timeout_ms >= 0);
    if (c->pending && bus_now_ms() >= c->next_assign_try_ms)
        bus_consumer_try_assign(c);
    int64_t deadline_ms = bus_now_ms() + timeout_ms;
    while (count < max && errors < BUS_POLL_ERRORS_MAX) {
        /* Wait only for the first message (error events do not extend the
         * wait); then take what is already fetched. */
        int64_t left_ms = count ? 0 : deadline_ms - bus_now_ms();
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, left_ms > 0 ? (int)left_ms : 0);
        if (rkm == NULL)
            break;
        if (rkm->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            bus_consumer_log_event(c, rkm);
            rd_kafka_message_destroy(rkm);
            errors++;
            continue;
        }
        msgs[count++] = rkm; /* the caller owns it now */
    }
    return count;
}

int bus_consumer_seek(struct bus_consumer *c, const rd_kafka_topic_partition_list_t *parts)
{
    BUS_ASSERT(c != NULL && parts != NULL);
    /* seek_partitions writes per-partition results into its argument. */
    rd_kafka_topic_partition_list_t *copy = rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_error_t *error = rd_kafka_seek_partitions(c->rk, copy, BUS_SEEK_TIMEOUT_MS);
    int rc = 0;
    if (error != NULL) {
        log_fields(LOG_ERROR, "kafka seek failed", "error", rd_kafka_error_string(error), NULL);
        rd_kafka_error_destroy(error);
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < copy->cnt; i++) {
        if (copy->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            log_fields(LOG_ERROR, "kafka seek failed", "topic", copy->elems[i].topic, "error",
                       rd_kafka_err2name(copy->elems[i].err), NULL);
            rc = -1;
        }
    }
    rd_kafka_topic_partition_list_destroy(copy);
    return rc;
}

const char *bus_consumer_cluster_id(const struct bus_consumer *c)
{
    BUS_ASSERT(c != NULL);
    return c->cluster_id;
}

int bus_consumer_assigned_count(const struct bus_consumer *c)
{
    BUS_ASSERT(c != NULL);
    return c->assigned_count;
}

/* Lag of one partition, or -1 while unknown. The position is "last
 * consumed + 1"; before the first message it is unknown to librdkafka, and
 * the start offset given at assignment stands in for it. */
static int64_t bus_partition_lag(struct bus_consumer *c, const rd_kafka_topic_partition_t *pos,
                                 const rd_kafka_topic_partition_t *start)
{
    int64_t low, high;
    if (rd_kafka_get_watermark_offsets(c->rk, pos->topic, pos->partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0)
        return -1;
    int64_t at = pos->offset;
    if (at < 0)
        at = start->offset;
    if (at == RD_KAFKA_OFFSET_BEGINNING && low >= 0)
        at = low;
    if (at < 0)
        return high == 0 ? 0 : -1; /* a partition never written has no lag */
    return high > at ? high - at : 0;
}

int64_t bus_consumer_lag(struct bus_consumer *c)
{
    BUS_ASSERT(c != NULL);
    if (c->assignment == NULL || c->pending)
        return -1;
    rd_kafka_topic_partition_list_t *positions = rd_kafka_topic_partition_list_copy(c->assignment);
    int64_t lag = -1;
    if (rd_kafka_position(c->rk, positions) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        lag = 0;
        for (int i = 0; lag >= 0 && i < positions->cnt; i++) {
            int64_t one = bus_partition_lag(c, &positions->elems[i], &c->assignment->elems[i]);
            lag = one < 0 ? -1 : lag + one;
        }
    }
    rd_kafka_topic_partition_list_destroy(positions);
    return lag;
}

size_t bus_consumer_partition_lags(struct bus_consumer *c, struct bus_partition_lag *out,
                                   size_t max)
{
    BUS_ASSERT(c != NULL);
    if (c->assignment == NULL || c->pending)
        return 0;
    rd_kafka_topic_partition_list_t *positions = rd_kafka_topic_partition_list_copy(c->assignment);
    size_t n = 0;
    bool known = rd_kafka_position(c->rk, positions) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; i < positions->cnt && n < max; i++) {
        const rd_kafka_topic_partition_t *a = &c->assignment->elems[i];
        out[n++] = (struct bus_partition_lag){
            .topic = a->topic,
            .partition = a->partition,
            .lag = known ? bus_partition_lag(c, &positions->elems[i], a) : -1};
    }
    rd_kafka_topic_partition_list_destroy(positions);
    return n;
}

void bus_consumer_close(struct bus_consumer *c)
{
    if (c == NULL)
        return;
    if (c->rk != NULL) {
        /* Leaves the group now (on_revoke runs from here) instead of
         * making the others wait for our session to time out. */
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
            log_fields(LOG_WARN, "kafka consumer close", "error", rd_kafka_err2name(err), NULL);
        /* librdkafka never closes a consumer with a fatal error (close
         * returns __FATAL at once) and rd_kafka_destroy would wait for that
         * close for ever: destroy it without. */
        if (err == RD_KAFKA_RESP_ERR__FATAL)
            rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        else
            rd_kafka_destroy(c->rk);
    }
    bus_consumer_forget_assignment(c);
    free(c);
}
