#include "topic_reader.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define READ_DEADLINE_MS  30000
#define BROKER_TIMEOUT_MS 5000
#define PARTITIONS_MAX    256

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *topic_bootstrap(void)
{
    return getenv("TESSERA_KAFKA_BOOTSTRAP");
}

/* A consumer that is only ever assigned partitions (it joins no group;
 * librdkafka still wants a group id) and commits nothing. */
static rd_kafka_t *reader_new(void)
{
    static const char *const settings[][2] = {{"client.id", "test-topic-reader"},
                                              {"group.id", "test-topic-reader"},
                                              {"enable.auto.commit", "false"},
                                              {"fetch.wait.max.ms", "10"}};
    char err[256];
    const char *bootstrap = topic_bootstrap();
    if (!bootstrap)
        return NULL;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bool ok = rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) ==
              RD_KAFKA_CONF_OK;
    for (size_t i = 0; ok && i < sizeof(settings) / sizeof(settings[0]); i++)
        ok = rd_kafka_conf_set(conf, settings[i][0], settings[i][1], err, sizeof(err)) ==
             RD_KAFKA_CONF_OK;
    rd_kafka_t *rk = ok ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)) : NULL;
    if (!rk) {
        fprintf(stderr, "topic_reader: %s\n", err);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static int partition_count(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    if (rd_kafka_metadata(rk, 0, rkt, &md, BROKER_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n > PARTITIONS_MAX ? PARTITIONS_MAX : n;
}

long topic_read_all(const char *topic, topic_message_fn fn, void *ctx)
{
    rd_kafka_t *rk = reader_new();
    if (!rk)
        return -1;
    rd_kafka_poll_set_consumer(rk);
    long read = -1;
    int n = partition_count(rk, topic);
    int64_t high[PARTITIONS_MAX], next[PARTITIONS_MAX];
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
    for (int p = 0; p < n; p++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, BROKER_TIMEOUT_MS) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            goto done;
        high[p] = hi;
        next[p] = lo;
        if (hi > lo)
            rd_kafka_topic_partition_list_add(parts, topic, p)->offset = lo;
    }
    if (n <= 0 || rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        goto done;
    read = 0;
    for (int64_t deadline = now_ms() + READ_DEADLINE_MS;;) {
        bool at_end = true;
        for (int p = 0; p < n; p++)
            at_end = at_end && next[p] >= high[p];
        if (at_end)
            break;
        if (now_ms() >= deadline) {
            fprintf(stderr, "topic_reader: %s not read to its end in time\n", topic);
            read = -1;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err && m->partition >= 0 && m->partition < n && m->offset < high[m->partition]) {
            next[m->partition] = m->offset + 1;
            fn(ctx, m);
            read++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
done:
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
    return read;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    *(rd_kafka_resp_err_t *)m->_private = m->err;
}

int topic_produce(const char *topic, int32_t partition, const void *key, size_t key_len,
                  const void *payload, size_t len, rd_kafka_headers_t *headers)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *bootstrap = topic_bootstrap();
    if (!bootstrap ||
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "partitioner", "murmur2_random", err, sizeof(err)) !=
            RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        if (headers)
            rd_kafka_headers_destroy(headers);
        return -1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        if (headers)
            rd_kafka_headers_destroy(headers);
        return -1;
    }
    rd_kafka_resp_err_t result = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY((void *)key, key_len), RD_KAFKA_V_VALUE((void *)payload, len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_OPAQUE(&result), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR && headers)
        rd_kafka_headers_destroy(headers); /* not taken on failure */
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_flush(rk, BROKER_TIMEOUT_MS);
    rd_kafka_destroy(rk);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR && result == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}
