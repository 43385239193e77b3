/* Production topic administration (the tessera-topics command): the table
 * of Tessera's topics with partition counts and retention/cleanup
 * settings, a pure planner that compares it with what the cluster has,
 * and the librdkafka Admin API calls that carry the plan out.
 *
 * Kafka can add partitions but never remove them (and adding moves keys
 * to other partitions, so per-member order holds only for new events):
 * the planner refuses to shrink. */
#ifndef TESSERA_TOPIC_ADMIN_H
#define TESSERA_TOPIC_ADMIN_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

#define TOPIC_ADMIN_TIMEOUT_MS     30000 /* default wait for the cluster per request */
#define TOPIC_ADMIN_PARTITIONS_MAX 1024

struct topic_spec {
    const char *name;
    const char *retention_ms;   /* Kafka retention.ms ("-1" keeps forever) */
    const char *cleanup_policy; /* "delete" or "compact" */
    const char *why;            /* one line for --list */
};

/* Tessera's topics (topics.h) with their settings. */
extern const struct topic_spec topic_specs[];
extern const size_t topic_specs_count;

enum topic_action { TOPIC_OK, TOPIC_CREATE, TOPIC_GROW, TOPIC_REFUSE_SHRINK };

/* What to do with a topic that has `current` partitions (-1: missing)
 * when `wanted` are asked for. Pure. */
enum topic_action topic_plan(int current, int wanted);
const char *topic_action_name(enum topic_action a);

/* Partition count of each topic from the cluster's metadata (-1 when it
 * does not exist). 0, or -1 with err. Topics the broker auto-creates on
 * metadata requests are NOT requested by name, so asking never creates. */
int topic_admin_describe(rd_kafka_t *rk, const char *const *names, size_t count, int *partitions,
                         int timeout_ms, char *err, size_t err_len);

/* CreateTopics for one topic with partitions, replication factor and the
 * spec's configs. 0, or -1 with the broker's error in err. */
int topic_admin_create(rd_kafka_t *rk, const char *name, const struct topic_spec *spec,
                       int partitions, int replication_factor, int timeout_ms, char *err,
                       size_t err_len);

/* CreatePartitions: grows a topic to `partitions` in total. 0 or -1. */
int topic_admin_grow(rd_kafka_t *rk, const char *name, int partitions, int timeout_ms, char *err,
                     size_t err_len);

#endif
