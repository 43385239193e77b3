#include "service/consumer_service.h"

#include <assert.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>

#include "log/log.h"
#include "service/admin.h"
#include "service/startup.h"

struct runner {
    const struct consumer_service *svc;
    struct service_common_config *common;
    struct pipeline_config pc;
    struct event_base *base;
    struct event *pipeline_ended;
    struct startup *startup;
    /* Set by the start-up thread, then read on the loop. */
    struct pipeline *pipelines[CONSUMER_WORKERS_MAX];
    bool running[CONSUMER_WORKERS_MAX];
    size_t worker_count;
    atomic_size_t ended; /* pipelines whose thread has ended */
    bool stopping;
};

static bool runner_ready(void *arg, json_t *checks)
{
    struct runner *r = arg;
    json_object_set_new(checks, "startup", json_boolean(startup_finished(r->startup)));
    if (!startup_finished(r->startup))
        return false;
    bool pg = true, assigned = true, positioned = true;
    for (size_t i = 0; i < r->worker_count; i++) {
        const struct pipeline_stats *s = pipeline_stats(r->pipelines[i]);
        pg = pg && atomic_load(&s->postgres_ok);
        assigned = assigned && atomic_load(&s->assignment_received);
        positioned = positioned && atomic_load(&s->positioned);
    }
    json_object_set_new(checks, "postgres", json_boolean(pg));
    json_object_set_new(checks, "kafka_assignment", json_boolean(assigned));
    json_object_set_new(checks, "kafka_positioned", json_boolean(positioned));
    bool extra = r->svc->ready ? r->svc->ready(r->svc->ctx, checks) : true;
    return pg && assigned && positioned && extra && !r->stopping;
}

/* The pipeline's own metrics live in the registry (pipeline_metrics.c);
 * this adds the assignment gauge and the service's extra lines. */
static void runner_metrics(void *arg, struct evbuffer *out)
{
    struct runner *r = arg;
    if (!startup_finished(r->startup))
        return;
    long long assigned = 0;
    for (size_t i = 0; i < r->worker_count; i++)
        assigned += atomic_load(&pipeline_stats(r->pipelines[i])->assigned_partitions);
    admin_metric(out, "tessera_consumer_assigned_partitions", "gauge", assigned);
    if (r->svc->metrics)
        r->svc->metrics(r->svc->ctx, out);
}

/* First signal: each pipeline finishes its batch, commits and leaves the
 * group; the last thread to end wakes the loop through pipeline_ended. */
static void runner_stop(void *arg)
{
    struct runner *r = arg;
    r->stopping = true;
    if (!startup_finished(r->startup)) {
        event_base_loopbreak(r->base); /* nothing consumed yet */
        return;
    }
    for (size_t i = 0; i < r->worker_count; i++)
        pipeline_request_stop(r->pipelines[i]);
}

/* Called on a pipeline thread; libevent is built thread-aware. One worker
 * ending on an error ends the service (the others are stopped). */
static void runner_pipeline_exited(void *arg)
{
    struct runner *r = arg;
    atomic_fetch_add(&r->ended, 1);
    event_active(r->pipeline_ended, 0, 0);
}

static void on_pipeline_ended(evutil_socket_t fd, short what, void *arg)
{
    struct runner *r = arg;
    if (atomic_load(&r->ended) < r->worker_count) {
        for (size_t i = 0; i < r->worker_count; i++) /* one failed: stop the rest */
            pipeline_request_stop(r->pipelines[i]);
        return;
    }
    event_base_loopbreak(r->base);
}

/* The start-up step, retried with back-off on the start-up thread until
 * PostgreSQL (migrations, offsets) and Kafka (the group) are there. */
static int runner_start_step(void *arg, char *err, size_t err_len)
{
    struct runner *r = arg;
    const struct consumer_service *svc = r->svc;
    if (service_migrate(r->common, svc->schema, svc->migrations, svc->migration_count) < 0) {
        snprintf(err, err_len, "migrations did not apply (see the log line before)");
        return -1;
    }
    size_t want = svc->workers ? (size_t)*svc->workers : 1;
    assert(want >= 1 && want <= CONSUMER_WORKERS_MAX);
    /* Every worker is prepared before any joins the group, so they join in
     * one rebalance. A retry after a failure redoes only what is missing. */
    for (size_t i = 0; i < want; i++) {
        if (r->pipelines[i])
            continue;
        void *ctx = svc->worker_ctx ? svc->worker_ctx(svc->ctx, i) : svc->ctx;
        r->pipelines[i] =
            pipeline_prepare(&r->pc, svc->ops, ctx, runner_pipeline_exited, r, err, err_len);
        if (!r->pipelines[i])
            return -1;
    }
    for (size_t i = 0; i < want; i++) {
        if (r->running[i])
            continue;
        if (pipeline_run(r->pipelines[i], err, err_len) < 0)
            return -1;
        r->running[i] = true;
    }
    r->worker_count = want;
    return 0;
}

static void runner_started(void *arg)
{
    log_info("started: consuming");
}

int consumer_service_run(int argc, char **argv, const struct consumer_service *svc,
                         const struct config_entry *table, size_t table_count,
                         struct service_common_config *common, const long long *batch_max,
                         const long long *poll_timeout_ms)
{
    int rc = service_init(svc->name, svc->summary, argc, argv, table, table_count, common);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (service_migrate_only(argc, argv))
        return service_migrate(common, svc->schema, svc->migrations, svc->migration_count) < 0;
    if (svc->setup && svc->setup(svc->ctx, common) < 0)
        return 1;

    evthread_use_pthreads();
    struct runner r = {.svc = svc, .common = common, .base = event_base_new()};
    assert(r.base);
    r.pipeline_ended = event_new(r.base, -1, 0, on_pipeline_ended, &r);

    char client_id[128], err[512];
    struct bus_config bus;
    service_bus_config(common, svc->name, client_id, sizeof(client_id), &bus);
    bus.prefetch_kbytes = svc->prefetch_kbytes;
    bus.prefetch_messages = svc->prefetch_messages;
    r.pc = (struct pipeline_config){.service = svc->name,
                                    .group_id = svc->group_id,
                                    .topics = svc->topics,
                                    .topic_count = svc->topic_count,
                                    .bus = &bus,
                                    .pg_dsn = common->pg_dsn,
                                    .schema = svc->schema,
                                    .statement_timeout_ms = (int)common->pg_statement_timeout_ms,
                                    .batch_max = (size_t)*batch_max,
                                    .poll_timeout_ms = (int)*poll_timeout_ms};
    /* The admin port first: /readyz says 503 until the pipeline runs. */
    struct admin_server *admin =
        admin_server_new(r.base, common->admin_addr, (uint16_t)common->admin_port, svc->name,
                         runner_ready, runner_metrics, &r, err, sizeof(err));
    if (!admin) {
        log_fields(LOG_ERROR, "cannot open the admin port", "error", err, NULL);
        return 1;
    }
    char port[8];
    snprintf(port, sizeof(port), "%u", admin_server_port(admin));
    log_fields(LOG_INFO, "starting", "admin_port", port, NULL);
    struct service_signals *signals = service_signals_new(r.base, runner_stop, &r);
    r.startup =
        startup_begin(r.base, "migrations and consumer", runner_start_step, runner_started, &r);

    event_base_dispatch(r.base);

    /* A pipeline the start-up thread started while we were stopping is
     * stopped too: it leaves the group instead of timing out of it. */
    startup_free(r.startup);
    for (size_t i = 0; i < CONSUMER_WORKERS_MAX; i++)
        if (r.running[i]) /* some may have started before a failed retry */
            pipeline_request_stop(r.pipelines[i]);
    for (size_t i = 0; i < CONSUMER_WORKERS_MAX; i++)
        pipeline_join(r.pipelines[i]); /* NULL is fine */
    if (svc->teardown)
        svc->teardown(svc->ctx);
    bool failed = !r.stopping;
    admin_server_free(admin);
    service_signals_free(signals);
    event_free(r.pipeline_ended);
    event_base_free(r.base);
    log_info("stopped");
    return failed ? 1 : 0;
}
