/* Shared pieces of the Kafka bus: configuration, error reporting, the
 * libevent queue watcher and the cluster id probe. The producer, the group
 * consumer and the tail live in producer.c, consumer.c and tail.c. */
#include "bus/bus_internal.h"

#include "log/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUS_SETTINGS_LOG_LEN_MAX 1024

_Noreturn void bus_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", file, line, func, expr);
    abort();
}

int64_t bus_now_ms(void)
{
    struct timespec ts;
    BUS_ASSERT(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Called by librdkafka from rd_kafka_poll/consumer_poll on the polling
 * thread. Most errors are transient (a broker restarting) and librdkafka
 * retries them itself, so they are logged (once per kind a while, see
 * error_log.c: every handle reports the same outage); a fatal error (the idempotent
 * producer lost its guarantees) is read out in full because every later
 * call on the handle fails with __FATAL: a producer replaces its handle
 * (producer.c, bus_producer_recover). */
void bus_log_fatal(rd_kafka_t *rk)
{
    char fatal[512];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
    log_fields(LOG_ERROR, "kafka fatal error", "client", rd_kafka_name(rk), "error",
               rd_kafka_err2name(orig), "reason", fatal, NULL);
}

static void bus_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        bus_log_fatal(rk);
        return;
    }
    long held_back = 0;
    if (!bus_error_log_due(err, bus_now_ms(), &held_back))
        return; /* the same kind, from another handle or a retry: logged a moment ago */
    char held[24];
    snprintf(held, sizeof(held), "%ld", held_back);
    log_fields(err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? LOG_ERROR : LOG_WARN, "kafka error",
               "client", rd_kafka_name(rk), "error", rd_kafka_err2name((rd_kafka_resp_err_t)err),
               "reason", reason, "same_kind_not_logged", held, NULL);
}

static bool bus_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                         size_t err_len)
{
    char why[256];

    if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) == RD_KAFKA_CONF_OK)
        return true;
    snprintf(err, err_len, "kafka setting %s: %s", key, why);
    return false;
}

/* The security settings of cfg that are set (see struct bus_config);
 * false with err on a value librdkafka refuses (which names the key, never
 * the value: the password stays out of logs). */
static bool bus_conf_security(rd_kafka_conf_t *conf, const struct bus_config *cfg, char *err,
                              size_t err_len)
{
    const struct bus_setting settings[] = {
        {"security.protocol", cfg->security_protocol}, {"sasl.mechanism", cfg->sasl_mechanism},
        {"sasl.username", cfg->sasl_username},         {"sasl.password", cfg->sasl_password},
        {"ssl.ca.location", cfg->ssl_ca_location},
    };
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
        if (settings[i].value != NULL && settings[i].value[0] != '\0' &&
            !bus_conf_set(conf, settings[i].key, settings[i].value, err, err_len))
            return false;
    return true;
}

rd_kafka_conf_t *bus_conf_new(const struct bus_config *cfg, char *err, size_t err_len)
{
    BUS_ASSERT(cfg != NULL);
    if (cfg->bootstrap == NULL || cfg->bootstrap[0] == '\0') {
        snprintf(err, err_len, "kafka bootstrap servers not set");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!bus_conf_set(conf, "bootstrap.servers", cfg->bootstrap, err, err_len))
        goto fail;
    if (cfg->client_id != NULL && !bus_conf_set(conf, "client.id", cfg->client_id, err, err_len))
        goto fail;
    if (!bus_conf_security(conf, cfg, err, err_len))
        goto fail;
    /* Small requests (one command, one verdict) go out at once: with
     * Nagle on, a request written while an earlier one is unacknowledged
     * waits for the peer's delayed ACK (up to 40 ms on Linux). */
    if (!bus_conf_set(conf, "socket.nagle.disable", "true", err, err_len))
        goto fail;
    if (cfg->metadata_refresh_ms > 0) {
        char ms[16];
        snprintf(ms, sizeof(ms), "%d", cfg->metadata_refresh_ms);
        if (!bus_conf_set(conf, "topic.metadata.refresh.interval.ms", ms, err, err_len))
            goto fail;
    }
    rd_kafka_conf_set_error_cb(conf, bus_on_error);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

bool bus_conf_apply(rd_kafka_conf_t *conf, const char *what, const struct bus_setting *settings,
                    size_t count, char *err, size_t err_len)
{
    char line[BUS_SETTINGS_LOG_LEN_MAX];
    size_t used = 0;

    line[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        if (!bus_conf_set(conf, settings[i].key, settings[i].value, err, err_len))
            return false;
        /* Nothing secret is set here (no SASL), so the values are logged. */
        int n = snprintf(line + used, sizeof(line) - used, "%s%s=%s", i ? " " : "", settings[i].key,
                         settings[i].value);
        if (n > 0 && (size_t)n < sizeof(line) - used)
            used += (size_t)n;
    }
    log_fields(LOG_INFO, "kafka configuration", "client", what, "settings", line, NULL);
    return true;
}

/* --------------------------------------------------------- queue watcher */

static void bus_qwatch_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct bus_qwatch *w = arg;
    char buf[64];

    /* Empty the pipe first: a wakeup written while we drain must stay
     * readable so the next loop iteration sees it. */
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    if (w->drain(w->ctx))
        event_active(w->ev_read, EV_READ, 0);
}

static void bus_qwatch_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct bus_qwatch *w = arg;
    if (w->drain(w->ctx))
        event_active(w->ev_read, EV_READ, 0);
}

static int bus_pipe_nonblocking(int fds[2])
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        fds[0] = fds[1] = -1;
        return -1;
    }
    return 0;
}

int bus_qwatch_start(struct bus_qwatch *w, struct event_base *base, rd_kafka_queue_t *rkqu,
                     bool (*drain)(void *ctx), void *ctx, char *err, size_t err_len)
{
    static const char wake = 'k';
    const struct timeval safety = {0, BUS_DRAIN_SAFETY_MS * 1000};

    BUS_ASSERT(w != NULL && base != NULL && rkqu != NULL && drain != NULL);
    memset(w, 0, sizeof(*w));
    w->rkqu = rkqu;
    w->drain = drain;
    w->ctx = ctx;
    w->active = true;
    if (bus_pipe_nonblocking(w->pipe_fds) != 0) {
        snprintf(err, err_len, "pipe: %s", strerror(errno));
        goto fail;
    }
    w->ev_read = event_new(base, w->pipe_fds[0], EV_READ | EV_PERSIST, bus_qwatch_on_read, w);
    w->ev_timer = event_new(base, -1, EV_PERSIST, bus_qwatch_on_timer, w);
    if (w->ev_read == NULL || w->ev_timer == NULL || event_add(w->ev_read, NULL) != 0 ||
        event_add(w->ev_timer, &safety) != 0) {
        snprintf(err, err_len, "libevent: cannot add queue events");
        goto fail;
    }
    rd_kafka_queue_io_event_enable(rkqu, w->pipe_fds[1], &wake, sizeof(wake));
    return 0;
fail:
    bus_qwatch_stop(w);
    return -1;
}

void bus_qwatch_stop(struct bus_qwatch *w)
{
    if (w == NULL || !w->active)
        return;
    /* librdkafka must stop writing before the pipe closes. */
    rd_kafka_queue_io_event_enable(w->rkqu, -1, NULL, 0);
    if (w->ev_read != NULL)
        event_free(w->ev_read);
    if (w->ev_timer != NULL)
        event_free(w->ev_timer);
    for (int i = 0; i < 2; i++)
        if (w->pipe_fds[i] >= 0)
            close(w->pipe_fds[i]);
    rd_kafka_queue_destroy(w->rkqu);
    memset(w, 0, sizeof(*w));
}

/* ------------------------------------------------------------ cluster id */

int bus_cluster_id(const struct bus_config *cfg, char *out, size_t out_len, int timeout_ms)
{
    char err[256];

    BUS_ASSERT(out != NULL && out_len > 0 && timeout_ms >= 0);
    out[0] = '\0';
    rd_kafka_conf_t *conf = bus_conf_new(cfg, err, sizeof(err));
    if (conf == NULL) {
        log_error("bus_cluster_id: %s", err);
        return -1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        log_error("bus_cluster_id: %s", err);
        return -1;
    }
    char *id = rd_kafka_clusterid(rk, timeout_ms);
    int rc = -1;
    if (id == NULL)
        log_warn("kafka cluster id not known within %d ms (%s)", timeout_ms, cfg->bootstrap);
    else if (strlen(id) >= out_len)
        log_error("kafka cluster id longer than %zu bytes", out_len - 1);
    else {
        memcpy(out, id, strlen(id) + 1);
        rc = 0;
    }
    if (id != NULL)
        rd_kafka_mem_free(rk, id);
    rd_kafka_destroy(rk);
    return rc;
}
