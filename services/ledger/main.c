/* tessera-ledger: the only writer of balances. Consumes ledger-commands,
 * applies each exactly once with a double-entry journal, and publishes
 * verdicts and facts on ledger-events. */
#include <string.h>

#include "audit.h"
#include "bus/topics.h"
#include "cache/cache.h"
#include "ledger.h"
#include "service/admin.h"
#include "service/consumer_service.h"

extern const struct db_migration ledger_migrations[];
extern const unsigned ledger_migrations_count;

static struct service_common_config common;
static long long batch_max, insert_batch_max, poll_timeout_ms, expiry_interval_ms, cache_resync_s,
    workers;

static const struct config_entry config_table[] = {
    SERVICE_COMMON_CONFIG(common, "9101"),
    {"TESSERA_LEDGER_BATCH_MAX", CONFIG_INT, &batch_max, "500", 1, PIPELINE_BATCH_MAX, false,
     "commands applied in one transaction at most"},
    {"TESSERA_LEDGER_INSERT_BATCH_MAX", CONFIG_INT, &insert_batch_max, "8", 0, PIPELINE_BATCH_MAX,
     false,
     "a batch of up to this many commands writes its verdicts and journal with INSERTs in one "
     "round trip, a larger one with COPY (0: always COPY)"},
    /* Two: one worker spends most of a batch waiting for PostgreSQL (or
     * PostgreSQL for it); a second overlaps them, which is what two cores
     * want (docs/benchmarks.md, scenario 3). */
    {"TESSERA_LEDGER_WORKERS", CONFIG_INT, &workers, "2", 1, CONSUMER_WORKERS_MAX, false,
     "pipelines applying batches in parallel, each owning its own partitions (like instances)"},
    {"TESSERA_LEDGER_POLL_TIMEOUT_MS", CONFIG_INT, &poll_timeout_ms, "100", 1, 5000, false,
     "how long a poll waits for the first command"},
    {"TESSERA_LEDGER_EXPIRY_INTERVAL_MS", CONFIG_INT, &expiry_interval_ms, "2000", 100, 3600000,
     false, "how often the points expiry scheduler looks for due lots"},
    {"TESSERA_LEDGER_CACHE_RESYNC_S", CONFIG_INT, &cache_resync_s, "3600", 0, 31536000, false,
     "at start (and when Redis comes back), rewrite cached balances and cards changed this "
     "recently (0: off)"},
};

/* One context per worker: a batch's state belongs to the pipeline thread
 * applying it. */
static struct ledger_ctx ledgers[CONSUMER_WORKERS_MAX];

static void *ledger_worker_ctx(void *ctx, size_t worker)
{
    return &ledgers[worker];
}

static int ledger_setup(void *ctx, const struct service_common_config *c)
{
    for (long long i = 0; i < workers; i++) {
        struct ledger_ctx *l = &ledgers[i];
        l->redis_host = c->redis_host;
        l->redis_port = (int)c->redis_port;
        l->common = c;
        l->cache_resync_s = cache_resync_s;
        l->insert_batch_max = (size_t)insert_batch_max;
        store_rows_init(&l->rows);
        char err[256];
        l->rc = cache_connect(l->redis_host, l->redis_port, 1000, err, sizeof(err));
        atomic_store(&l->redis_ok, l->rc != NULL);
        if (!l->rc)
            ledger_cache_down(l);
    }
    if (expiry_scheduler_start(c, expiry_interval_ms, cache_resync_s) < 0)
        return -1;
    return 0; /* the cache may come later: it is only a cache */
}

static bool ledger_ready(void *ctx, json_t *checks)
{
    bool redis = true;
    for (long long i = 0; i < workers; i++)
        redis = redis && atomic_load(&ledgers[i].redis_ok);
    json_object_set_new(checks, "redis", json_boolean(redis));
    return true; /* only a cache: batches commit without it and it is rebuilt later */
}

static void ledger_metrics(void *ctx, struct evbuffer *out)
{
    long long posted = 0, rejected = 0, duplicates = 0;
    for (long long i = 0; i < workers; i++) {
        posted += atomic_load(&ledgers[i].posted);
        rejected += atomic_load(&ledgers[i].rejected);
        duplicates += atomic_load(&ledgers[i].duplicates);
    }
    admin_metric(out, "tessera_ledger_commands_posted_total", "counter", posted);
    admin_metric(out, "tessera_ledger_commands_rejected_total", "counter", rejected);
    admin_metric(out, "tessera_ledger_commands_duplicate_total", "counter", duplicates);
}

static bool wants_audit(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--audit") == 0)
            return true;
    return false;
}

/* --audit reads the same configuration table as the service, checks every
 * invariant and exits (see audit.c); it never consumes or writes. */
static int run_audit(int argc, char **argv)
{
    int rc =
        service_init("ledger", "tessera-ledger --audit: checks the ledger's invariants", argc, argv,
                     config_table, sizeof(config_table) / sizeof(config_table[0]), &common);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    return ledger_audit_run(common.pg_dsn, common.redis_host, (int)common.redis_port, stdout);
}

int main(int argc, char **argv)
{
    if (wants_audit(argc, argv))
        return run_audit(argc, argv);
    static const char *const topics[] = {TOPIC_LEDGER_COMMANDS};
    static const struct pipeline_ops ops = {.apply = ledger_apply_batch,
                                            .after_commit = ledger_after_commit_publish,
                                            .begin_batch = ledger_begin_batch,
                                            .before_commit = ledger_before_commit};
    const struct consumer_service svc = {
        .name = "ledger",
        .summary = "tessera-ledger: applies ledger commands exactly once\n"
                   "  --audit   check every ledger invariant, print a report and exit "
                   "(0 all hold, 1 not, 2 cannot run)",
        .schema = "ledger",
        .group_id = "ledger",
        .topics = topics,
        .topic_count = 1,
        .migrations = ledger_migrations,
        .migration_count = ledger_migrations_count,
        .ops = &ops,
        .ctx = ledgers,
        .workers = &workers,
        .worker_ctx = ledger_worker_ctx,
        .setup = ledger_setup,
        .ready = ledger_ready,
        .metrics = ledger_metrics,
    };
    return consumer_service_run(argc, argv, &svc, config_table,
                                sizeof(config_table) / sizeof(config_table[0]), &common, &batch_max,
                                &poll_timeout_ms);
}
