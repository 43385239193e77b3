/* Reading and writing the test runtime's topics directly, for tests that
 * check what a service emitted (not only what it stored): read a whole
 * topic up to its current end, or put a message back on a topic as a
 * redelivery would. */
#ifndef TESSERA_TEST_TOPIC_READER_H
#define TESSERA_TEST_TOPIC_READER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

/* The runtime broker's address (TESSERA_KAFKA_BOOTSTRAP: its port is
 * fixed, also across the restarts some tests make). */
const char *topic_bootstrap(void);

typedef void (*topic_message_fn)(void *ctx, const rd_kafka_message_t *m);

/* Calls fn for every message of every partition of topic, from the
 * oldest kept to the end each partition had when the call began, with an
 * assigned consumer that joins no group and commits nothing. Returns the
 * number of messages read, or -1 when the broker did not answer or the
 * end was not reached within 30 s. */
long topic_read_all(const char *topic, topic_message_fn fn, void *ctx);

/* Produces one message to partition (the original's, for a redelivery;
 * RD_KAFKA_PARTITION_UA to let the key choose as the services do) and
 * waits for the broker's acknowledgement. Takes ownership of headers (may
 * be NULL). 0, or -1 when it was not delivered. */
int topic_produce(const char *topic, int32_t partition, const void *key, size_t key_len,
                  const void *payload, size_t len, rd_kafka_headers_t *headers);

#endif
