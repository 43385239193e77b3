/* tessera-tiering: each member's qualifying spend and tier, from the
 * ledger's facts. Upgrades a member as soon as a purchase lifts the spend
 * over a level of the tenant's ladder, emits TierChanged on tier-events
 * and caches the member's tier in Redis for ingest's pricing. */
#include "bus/topics.h"
#include "cache/cache.h"
#include "service/admin.h"
#include "service/consumer_service.h"
#include "tiering.h"

extern const struct db_migration tiering_migrations[];
extern const unsigned tiering_migrations_count;

static struct service_common_config common;
static long long batch_max, poll_timeout_ms, review_interval_ms;

static const struct config_entry config_table[] = {
    SERVICE_COMMON_CONFIG(common, "9102"),
    {"TESSERA_TIERING_BATCH_MAX", CONFIG_INT, &batch_max, "1000", 1, PIPELINE_BATCH_MAX, false,
     "events applied in one transaction at most"},
    {"TESSERA_TIERING_POLL_TIMEOUT_MS", CONFIG_INT, &poll_timeout_ms, "200", 1, 5000, false,
     "how long a poll waits for the first event"},
    {"TESSERA_TIERING_REVIEW_INTERVAL_MS", CONFIG_INT, &review_interval_ms, "1000", 50, 3600000,
     false, "how often the review scheduler looks for due warnings and period-end reviews"},
};

static struct tiering_ctx tiering;

static int tiering_setup(void *ctx, const struct service_common_config *c)
{
    struct tiering_ctx *t = ctx;
    t->redis_host = c->redis_host;
    t->redis_port = (int)c->redis_port;
    tiering_change_rows_init(&t->changes);
    tiering_note_rows_init(&t->notes);
    tiering_skus_reset(&t->skus);
    tiering_cache_ensure(t);
    if (tiering_review_scheduler_start(c, review_interval_ms) < 0)
        return -1;
    return 0; /* the cache may come later: it is only a cache */
}

static bool tiering_ready(void *ctx, json_t *checks)
{
    struct tiering_ctx *t = ctx;
    json_object_set_new(checks, "redis", json_boolean(atomic_load(&t->redis_ok)));
    return true; /* only a cache: ingest reads member_tiers on a miss */
}

static void tiering_metrics(void *ctx, struct evbuffer *out)
{
    struct tiering_ctx *t = ctx;
    admin_metric(out, "tessera_tiering_purchases_counted_total", "counter",
                 atomic_load(&t->purchases_counted));
    admin_metric(out, "tessera_tiering_purchases_duplicate_total", "counter",
                 atomic_load(&t->duplicates_ignored));
    admin_metric(out, "tessera_tiering_tier_changes_total", "counter",
                 atomic_load(&t->tier_changes));
    admin_metric(out, "tessera_tiering_review_rounds_total", "counter", tiering_review_rounds());
}

int main(int argc, char **argv)
{
    /* member-events: the tenant's ladder (TierLadderChanged) */
    static const char *const topics[] = {TOPIC_LEDGER_EVENTS, TOPIC_MEMBER_EVENTS};
    static const struct pipeline_ops ops = {.apply = tiering_apply_batch,
                                            .after_commit = tiering_after_commit,
                                            .begin_batch = tiering_begin_batch};
    const struct consumer_service svc = {
        .name = "tiering",
        .summary = "tessera-tiering: qualifying spend and tiers",
        .schema = "tiering",
        .group_id = "tiering",
        .topics = topics,
        .topic_count = 2,
        .migrations = tiering_migrations,
        .migration_count = tiering_migrations_count,
        .ops = &ops,
        .ctx = &tiering,
        .setup = tiering_setup,
        .ready = tiering_ready,
        .metrics = tiering_metrics,
    };
    return consumer_service_run(argc, argv, &svc, config_table,
                                sizeof(config_table) / sizeof(config_table[0]), &common, &batch_max,
                                &poll_timeout_ms);
}
