/* Kafka through librdkafka 2.0.2: an idempotent producer (acks=all,
 * murmur2_random so keys land where Java clients put them), a group
 * consumer whose offsets the caller keeps (in PostgreSQL, with its effects),
 * and a "tail" that follows every partition of one topic from its end on a
 * libevent loop (ingest uses it to hear the ledger's verdicts).
 *
 * The same configuration works against the local Apache Kafka broker and
 * a managed cluster: bootstrap and, for the latter, the security settings
 * (SASL PLAIN / SCRAM, TLS) change. */
#ifndef TESSERA_BUS_H
#define TESSERA_BUS_H

#include <event2/event.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits. */
#define BUS_PRODUCE_RETRIES_MAX 50 /* queue-full retries of a blocking produce */

struct bus_config {
    const char *bootstrap; /* bootstrap.servers */
    const char *client_id; /* client.id, e.g. "ledger-<host>-<pid>" */
    int session_timeout_ms;
    int linger_ms;
    /* fetch.wait.max.ms of consumers and tails; 0 keeps librdkafka's 500.
     * A broker answers a fetch as soon as data arrives, so this is only
     * how long an idle fetch is held. */
    int fetch_wait_max_ms;
    /* topic.metadata.refresh.interval.ms, and how often a tail looks for
     * new partitions; 0 keeps librdkafka's 300000. Partitions added by
     * tessera-topics reach producers, groups and tails within it. */
    int metadata_refresh_ms;
    /* Consumers' prefetch bound: queued.max.messages.kbytes and
     * queued.min.messages (per partition in librdkafka 2.0). 0 keeps
     * librdkafka's 65536 KiB and 100000 messages, which lets a consumer
     * that falls behind hold a whole backlog in memory. */
    int prefetch_kbytes;
    int prefetch_messages;
    /* Client security (NULL or "" leaves librdkafka's default):
     * security.protocol (plaintext, ssl, sasl_plaintext, sasl_ssl),
     * sasl.mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), the SASL
     * user and password, and ssl.ca.location (the CA file that signed the
     * brokers' certificates). The password is never logged. */
    const char *security_protocol;
    const char *sasl_mechanism;
    const char *sasl_username;
    const char *sasl_password;
    const char *ssl_ca_location;
};

/* ---------------------------------------------------------------- producer */
struct bus_producer;

/* Called once per produced message from the loop (or from
 * bus_producer_poll/flush when created without a base). */
typedef void (*bus_delivery_fn)(void *ctx, void *msg_opaque, rd_kafka_resp_err_t err);

/* Creates an idempotent producer. With a base, delivery reports are served
 * on that libevent loop (queue IO event plus a safety timer). Without one,
 * the caller drives them with bus_producer_poll/flush. When on_delivery is
 * NULL, a non-NULL msg_opaque must point to an rd_kafka_resp_err_t which
 * receives the message's result (callers preset it to
 * RD_KAFKA_RESP_ERR__IN_PROGRESS). Returns NULL with err on bad config.
 * After a fatal error (the idempotent producer lost its guarantees) the
 * producer replaces its handle, at most every 5 s, when it next serves
 * reports or produces: held messages get a failed report, later ones go
 * out (docs/kafka-producer-recovery.md). So every call but
 * bus_producer_outstanding must come from the thread that serves its
 * reports (the loop's, or the one calling poll/flush). */
struct bus_producer *bus_producer_new(const struct bus_config *cfg, struct event_base *base,
                                      bus_delivery_fn on_delivery, void *ctx, char *err,
                                      size_t err_len);

/* Enqueues one message keyed by key (NUL-terminated). Takes ownership of
 * headers (may be NULL) in every case. The dead-letter topic is refused
 * (RD_KAFKA_RESP_ERR__INVALID_ARG): bus_dead_letter is its only way in. Without a base it polls and
 * retries on a full queue; with a base it returns RD_KAFKA_RESP_ERR__QUEUE_FULL at once. Returns 0
 * (RD_KAFKA_RESP_ERR_NO_ERROR) or the error. */
rd_kafka_resp_err_t bus_produce(struct bus_producer *p, const char *topic, const char *key,
                                const void *payload, size_t len, rd_kafka_headers_t *headers,
                                void *msg_opaque);

/* Fetches the metadata of the topics this producer will write (blocking,
 * at start-up), so the first message to each is not held for a metadata
 * refresh. -1 when some topic did not answer (logged; not fatal). */
int bus_producer_prepare_topics(struct bus_producer *p, const char *const *topics, size_t count,
                                int timeout_ms);

/* Serves delivery reports for up to timeout_ms. */
void bus_producer_poll(struct bus_producer *p, int timeout_ms);
/* Waits until every enqueued message is delivered or failed; 0 when the
 * queue is empty in time, -1 on timeout. */
int bus_producer_flush(struct bus_producer *p, int timeout_ms);
/* Messages enqueued and not yet reported. */
int bus_producer_outstanding(struct bus_producer *p);
/* Flushes up to 10 s, then destroys. NULL is fine. */
void bus_producer_free(struct bus_producer *p);
rd_kafka_t *bus_producer_handle(struct bus_producer *p);

/* Sends a message that could not be decoded or applied to the dead-letter
 * topic with the same key and payload, and headers x-original-topic,
 * x-original-partition, x-original-offset, x-dead-letter-reason,
 * x-dead-letter-service, plus extra (name, value pairs, NULL-terminated;
 * may be NULL). Enqueues without waiting: *result is set to __IN_PROGRESS
 * now and to the delivery result when its report is served (poll, flush,
 * bus_dead_letters_wait), so a batch enqueues all its dead letters and
 * waits once. result must stay valid until then. Blocking producers only
 * (no base). Returns the enqueue error (then *result holds it too). */
rd_kafka_resp_err_t bus_dead_letter_enqueue(struct bus_producer *p, const rd_kafka_message_t *rkm,
                                            const char *service, const char *reason,
                                            const char *const *extra, rd_kafka_resp_err_t *result);
/* Serves reports until none of results[0..n) is __IN_PROGRESS, or
 * timeout_ms passed. 0 when every one is delivered; -1 otherwise (one
 * failed, or is still on its way: its report will still land in it). */
int bus_dead_letters_wait(struct bus_producer *p, const rd_kafka_resp_err_t *results, size_t n,
                          int timeout_ms) __attribute__((warn_unused_result));
/* One dead letter, enqueued and waited for (BUS_DEAD_LETTER_TIMEOUT_MS).
 * Returns the delivery result or __TIMED_OUT. */
rd_kafka_resp_err_t bus_dead_letter(struct bus_producer *p, const rd_kafka_message_t *rkm,
                                    const char *service, const char *reason);
#define BUS_DEAD_LETTER_TIMEOUT_MS 10000

/* ---------------------------------------------------------------- consumer */
struct bus_consumer;

struct bus_consumer_ops {
    /* Called from the polling thread when partitions are assigned: set each
     * element's .offset to where reading must start (the offset stored with
     * the effects, or RD_KAFKA_OFFSET_BEGINNING when there is none).
     * Returns 0, or -1 to give the assignment up (the consumer retries). */
    int (*on_assign)(void *ctx, rd_kafka_topic_partition_list_t *parts);
    /* Called before partitions are taken away (nothing to commit: the
     * caller commits offsets with each batch). May be NULL. */
    void (*on_revoke)(void *ctx, const rd_kafka_topic_partition_list_t *parts);
};

/* Joins group_id and subscribes to topics. enable.auto.commit and
 * enable.auto.offset.store are off; offsets come from ops->on_assign.
 * Fetches the cluster id at start (blocking, up to 10 s). For one thread:
 * every call on a consumer must come from the thread that polls it. */
struct bus_consumer *bus_consumer_new(const struct bus_config *cfg, const char *group_id,
                                      const char *const *topics, size_t topic_count,
                                      const struct bus_consumer_ops *ops, void *ctx, char *err,
                                      size_t err_len);

/* Waits up to timeout_ms for a first message, then takes what is already
 * fetched, up to max. Returns the count; the caller owns each message and
 * destroys it with rd_kafka_message_destroy. Error events (partition EOF,
 * transport errors) are logged and not returned. */
size_t bus_consumer_poll_batch(struct bus_consumer *c, rd_kafka_message_t **msgs, size_t max,
                               int timeout_ms);

/* Moves the fetch position of the given partitions (after another owner
 * was found to have moved the stored offsets). */
int bus_consumer_seek(struct bus_consumer *c, const rd_kafka_topic_partition_list_t *parts);

const char *bus_consumer_cluster_id(const struct bus_consumer *c);
/* Partitions currently assigned. */
int bus_consumer_assigned_count(const struct bus_consumer *c);
/* Sum over assigned partitions of (high watermark - position), from the
 * client's cached watermarks; -1 while unknown. */
int64_t bus_consumer_lag(struct bus_consumer *c);
/* The lag of each assigned partition (high watermark - position) into
 * out (up to max; -1 lag while unknown). Returns how many were written.
 * From the polling thread. */
struct bus_partition_lag {
    const char *topic; /* valid until the next rebalance */
    int32_t partition;
    int64_t lag;
};
size_t bus_consumer_partition_lags(struct bus_consumer *c, struct bus_partition_lag *out,
                                   size_t max);
/* Whether librdkafka raised a fatal error on the consumer. In librdkafka
 * 2.0.2 a consumer raises one when the group fences it (static membership:
 * another member with its group.instance.id; rd_kafka_test_fatal_error in
 * tests); after it the handle can neither commit nor be trusted to fetch,
 * and librdkafka does not recover it. The caller ends with an error so its
 * supervisor starts it afresh (pipeline.c). From the polling thread. */
bool bus_consumer_fatal(struct bus_consumer *c);
/* The librdkafka handle (tests raise a fatal error on it). */
rd_kafka_t *bus_consumer_handle(struct bus_consumer *c);
/* Leaves the group cleanly and destroys. NULL is fine. */
void bus_consumer_close(struct bus_consumer *c);

/* -------------------------------------------------------------------- tail */
struct bus_tail;
typedef void (*bus_tail_fn)(void *ctx, const rd_kafka_message_t *rkm);

/* Follows every partition of topic from its current end, without a group
 * and without committing, calling on_message on the loop for each message.
 * Ready once every partition's start position is resolved, so a message
 * produced after that is seen. */
struct bus_tail *bus_tail_new(const struct bus_config *cfg, struct event_base *base,
                              const char *topic, bus_tail_fn on_message, void *ctx, char *err,
                              size_t err_len);
bool bus_tail_ready(const struct bus_tail *t);
/* Called once, on the loop, when librdkafka raises a fatal error on the
 * tail's handle: it is never recovered, so its owner ends (ingest exits 1
 * for its supervisor: docs/kafka-consumer-recovery.md). The callback may
 * start a shutdown but must not free the tail. */
typedef void (*bus_tail_fatal_fn)(void *ctx);
void bus_tail_on_fatal(struct bus_tail *t, bus_tail_fatal_fn on_fatal, void *ctx);
/* The librdkafka handle (tests raise a fatal error on it). */
rd_kafka_t *bus_tail_handle(struct bus_tail *t);
void bus_tail_free(struct bus_tail *t);

/* Reads the cluster id with a short-lived metadata request (blocking, up
 * to timeout_ms); writes "" on failure and returns -1. */
int bus_cluster_id(const struct bus_config *cfg, char *out, size_t out_len, int timeout_ms);

#endif
