/* tessera-tiering: keeps each member's qualifying spend from the ledger's
 * facts; tier evaluation and TierChanged events build on it. */
#include "bus/topics.h"
#include "service/consumer_service.h"
#include "tiering.h"

extern const struct db_migration tiering_migrations[];
extern const unsigned tiering_migrations_count;

static struct service_common_config common;
static long long batch_max, poll_timeout_ms;

static const struct config_entry config_table[] = {
    SERVICE_COMMON_CONFIG(common, "9102"),
    {"TESSERA_TIERING_BATCH_MAX", CONFIG_INT, &batch_max, "1000", 1, PIPELINE_BATCH_MAX, false,
     "events applied in one transaction at most"},
    {"TESSERA_TIERING_POLL_TIMEOUT_MS", CONFIG_INT, &poll_timeout_ms, "200", 1, 5000, false,
     "how long a poll waits for the first event"},
};

int main(int argc, char **argv)
{
    static const char *const topics[] = {TOPIC_LEDGER_EVENTS};
    static const struct pipeline_ops ops = {.apply = tiering_apply_batch};
    const struct consumer_service svc = {
        .name = "tiering",
        .summary = "tessera-tiering: qualifying spend and tiers",
        .schema = "tiering",
        .group_id = "tiering",
        .topics = topics,
        .topic_count = 1,
        .migrations = tiering_migrations,
        .migration_count = tiering_migrations_count,
        .ops = &ops,
    };
    return consumer_service_run(argc, argv, &svc, config_table,
                                sizeof(config_table) / sizeof(config_table[0]), &common,
                                &batch_max, &poll_timeout_ms);
}
