/* tessera-notification: renders and delivers messages under consent, quiet
 * hours, caps and de-duplication. It consumes notify-requests; today it
 * keeps the per-tenant tally that delivery will build on. Delivery
 * status will go to notify-events. */
#include "bus/topics.h"
#include "service/consumer_service.h"
#include "service/event_tally.h"

extern const struct db_migration notification_migrations[];
extern const unsigned notification_migrations_count;

static struct service_common_config common;
static long long batch_max, poll_timeout_ms;

static const struct config_entry config_table[] = {
    SERVICE_COMMON_CONFIG(common, "9104"),
    {"TESSERA_NOTIFICATION_BATCH_MAX", CONFIG_INT, &batch_max, "1000", 1, PIPELINE_BATCH_MAX, false,
     "events applied in one transaction at most"},
    {"TESSERA_NOTIFICATION_POLL_TIMEOUT_MS", CONFIG_INT, &poll_timeout_ms, "200", 1, 5000, false,
     "how long a poll waits for the first event"},
};

int main(int argc, char **argv)
{
    static const char *const topics[] = {TOPIC_NOTIFY_REQUESTS};
    static const struct pipeline_ops ops = {.apply = event_tally_apply};
    const struct consumer_service svc = {
        .name = "notification",
        .summary = "tessera-notification: message delivery",
        .schema = "notification",
        .group_id = "notification",
        .topics = topics,
        .topic_count = 1,
        .migrations = notification_migrations,
        .migration_count = notification_migrations_count,
        .ops = &ops,
    };
    return consumer_service_run(argc, argv, &svc, config_table,
                                sizeof(config_table) / sizeof(config_table[0]), &common, &batch_max,
                                &poll_timeout_ms);
}
