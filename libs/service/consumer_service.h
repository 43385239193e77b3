/* The main() of a consuming service (ledger, tiering, campaign,
 * notification): configuration, migrations, the admin port, the pipeline
 * thread and staged shutdown. A service supplies its table, its schema and
 * migrations, its topics and its pipeline_ops. */
#ifndef TESSERA_CONSUMER_SERVICE_H
#define TESSERA_CONSUMER_SERVICE_H

#include <event2/buffer.h>
#include <jansson.h>

#include "service/common.h"
#include "service/pipeline.h"

#define CONSUMER_WORKERS_MAX 16

struct consumer_service {
    const char *name;    /* "ledger" */
    const char *summary; /* one line for --help */
    const char *schema;
    const char *group_id;
    const char *const *topics;
    size_t topic_count;
    const struct db_migration *migrations;
    size_t migration_count;
    const struct pipeline_ops *ops;
    void *ctx;
    /* Optional: several pipelines (workers) in one process, each a member
     * of the consumer group with its own partitions, PostgreSQL connection
     * and context, so batches of different partitions are applied in
     * parallel like separate instances would. workers points at the
     * configured count (NULL: one); worker_ctx(ctx, i) gives worker i's
     * pipeline context (worker 0 may be ctx itself). */
    const long long *workers;
    void *(*worker_ctx)(void *ctx, size_t worker);
    /* Optional: called once configuration is loaded, before the pipeline
     * starts (connect the cache, load settings). 0 or -1 to exit. */
    int (*setup)(void *ctx, const struct service_common_config *common);
    /* Optional: called once the pipelines have stopped, before exit (stop
     * what setup started). */
    void (*teardown)(void *ctx);
    /* Optional: extra readiness checks and metrics. */
    bool (*ready)(void *ctx, json_t *checks);
    void (*metrics)(void *ctx, struct evbuffer *out);
    /* Optional: the consumer's prefetch bound (struct bus_config's
     * prefetch_kbytes and prefetch_messages); 0 keeps librdkafka's. */
    int prefetch_kbytes;
    int prefetch_messages;
};

/* Runs the service until SIGINT/SIGTERM. table must start with
 * SERVICE_COMMON_CONFIG(*common, ...) and may hold batch_max and
 * poll_timeout_ms entries the caller reads after. Returns the exit code. */
int consumer_service_run(int argc, char **argv, const struct consumer_service *svc,
                         const struct config_entry *table, size_t table_count,
                         struct service_common_config *common, const long long *batch_max,
                         const long long *poll_timeout_ms);

#endif
