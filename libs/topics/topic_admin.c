/* Topic administration through librdkafka's Admin API (blocking calls on
 * a private result queue: this is a command-line tool, not a service). */
#undef NDEBUG /* asserts stay on in production builds */
#include "topics/topic_admin.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "bus/topics.h"

/* Facts (member, ledger, tier events) are kept forever: projections are
 * rebuilt by replaying them. Commands and requests are work queues: a
 * week covers any outage. Dead letters wait a month for an operator. */
const struct topic_spec topic_specs[] = {
    {TOPIC_MEMBER_EVENTS, "-1", "delete", "member facts; replayed to rebuild projections"},
    {TOPIC_LEDGER_COMMANDS, "604800000", "delete", "commands to the ledger (7 days)"},
    {TOPIC_LEDGER_EVENTS, "-1", "delete", "ledger verdicts and facts; replayed by consumers"},
    {TOPIC_TIER_EVENTS, "-1", "delete", "tier changes"},
    {TOPIC_NOTIFY_REQUESTS, "604800000", "delete", "messages to deliver (7 days)"},
    {TOPIC_NOTIFY_EVENTS, "2592000000", "delete", "delivery reports (30 days)"},
    {TOPIC_DEAD_LETTER, "2592000000", "delete", "poison messages for an operator (30 days)"},
};
const size_t topic_specs_count = sizeof(topic_specs) / sizeof(topic_specs[0]);

enum topic_action topic_plan(int current, int wanted)
{
    assert(wanted > 0);
    if (current < 0)
        return TOPIC_CREATE;
    if (current == wanted)
        return TOPIC_OK;
    return current < wanted ? TOPIC_GROW : TOPIC_REFUSE_SHRINK;
}

const char *topic_action_name(enum topic_action a)
{
    switch (a) {
    case TOPIC_OK:
        return "up to date";
    case TOPIC_CREATE:
        return "create";
    case TOPIC_GROW:
        return "add partitions";
    case TOPIC_REFUSE_SHRINK:
        return "refused: cannot shrink";
    }
    return "?";
}

int topic_admin_describe(rd_kafka_t *rk, const char *const *names, size_t count, int *partitions,
                         int timeout_ms, char *err, size_t err_len)
{
    const struct rd_kafka_metadata *md = NULL;
    /* all_topics=1: a request naming a missing topic would auto-create it
     * on brokers with auto.create.topics.enable. */
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, err_len, "metadata: %s", rd_kafka_err2str(e));
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        partitions[i] = -1;
        for (int t = 0; t < md->topic_cnt; t++)
            if (strcmp(md->topics[t].topic, names[i]) == 0 && md->topics[t].err == 0)
                partitions[i] = md->topics[t].partition_cnt;
    }
    rd_kafka_metadata_destroy(md);
    return 0;
}

/* Waits for the admin result event and checks the one topic result. */
static int admin_wait(rd_kafka_queue_t *q, bool create, int timeout_ms, char *err, size_t err_len)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 5000);
    if (!ev) {
        snprintf(err, err_len, "no answer from the cluster in time");
        return -1;
    }
    int rc = 0;
    if (rd_kafka_event_error(ev)) {
        snprintf(err, err_len, "%s", rd_kafka_event_error_string(ev));
        rc = -1;
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            create ? rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n)
                   : rd_kafka_CreatePartitions_result_topics(
                         rd_kafka_event_CreatePartitions_result(ev), &n);
        if (n != 1 || rd_kafka_topic_result_error(res[0])) {
            const char *why = n == 1 ? rd_kafka_topic_result_error_string(res[0]) : NULL;
            snprintf(err, err_len, "%s", why ? why : "no result for the topic");
            rc = -1;
        }
    }
    rd_kafka_event_destroy(ev);
    return rc;
}

static rd_kafka_AdminOptions_t *admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t op,
                                              int timeout_ms)
{
    char e[256];
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
    assert(o);
    rd_kafka_AdminOptions_set_operation_timeout(o, timeout_ms, e, sizeof(e));
    rd_kafka_AdminOptions_set_request_timeout(o, timeout_ms, e, sizeof(e));
    return o;
}

int topic_admin_create(rd_kafka_t *rk, const char *name, const struct topic_spec *spec,
                       int partitions, int replication_factor, int timeout_ms, char *err,
                       size_t err_len)
{
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(name, partitions, replication_factor, err, err_len);
    if (!nt)
        return -1;
    if (rd_kafka_NewTopic_set_config(nt, "retention.ms", spec->retention_ms) ||
        rd_kafka_NewTopic_set_config(nt, "cleanup.policy", spec->cleanup_policy)) {
        snprintf(err, err_len, "cannot set the topic's configuration");
        rd_kafka_NewTopic_destroy(nt);
        return -1;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout_ms);
    rd_kafka_CreateTopics(rk, &nt, 1, o, q);
    int rc = admin_wait(q, true, timeout_ms, err, err_len);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    return rc;
}

int topic_admin_grow(rd_kafka_t *rk, const char *name, int partitions, int timeout_ms, char *err,
                     size_t err_len)
{
    rd_kafka_NewPartitions_t *np =
        rd_kafka_NewPartitions_new(name, (size_t)partitions, err, err_len);
    if (!np)
        return -1;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS, timeout_ms);
    rd_kafka_CreatePartitions(rk, &np, 1, o, q);
    int rc = admin_wait(q, false, timeout_ms, err, err_len);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_NewPartitions_destroy(np);
    rd_kafka_queue_destroy(q);
    return rc;
}
