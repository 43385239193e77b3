/* tessera-campaign: the rules engine (earning rules, streaks, referrals,
 * coupons, reminders). It listens to member and ledger facts, keeps the
 * per-tenant tally and earns points for purchases under each tenant's
 * earning rules. It never writes balances: points go to the ledger as
 * EarnPoints commands. */
#include "bus/topics.h"
#include "campaign.h"
#include "engage.h"
#include "service/consumer_service.h"

extern const struct db_migration campaign_migrations[];
extern const unsigned campaign_migrations_count;

static struct service_common_config common;
static long long batch_max, poll_timeout_ms, birthday_interval_ms, referral_interval_ms;

static const struct config_entry config_table[] = {
    SERVICE_COMMON_CONFIG(common, "9103"),
    {"TESSERA_CAMPAIGN_BATCH_MAX", CONFIG_INT, &batch_max, "1000", 1, PIPELINE_BATCH_MAX, false,
     "events applied in one transaction at most"},
    {"TESSERA_CAMPAIGN_POLL_TIMEOUT_MS", CONFIG_INT, &poll_timeout_ms, "200", 1, 5000, false,
     "how long a poll waits for the first event"},
    {"TESSERA_CAMPAIGN_BIRTHDAY_INTERVAL_MS", CONFIG_INT, &birthday_interval_ms, "2000", 100,
     3600000, false, "how often the birthday scheduler looks for today's birthdays"},
    {"TESSERA_CAMPAIGN_REFERRAL_INTERVAL_MS", CONFIG_INT, &referral_interval_ms, "1000", 50,
     3600000, false, "how often the referral scheduler looks for lock periods that are over"},
};

/* Before the pipeline starts: the birthday and referral schedulers' threads. */
static int campaign_setup(void *ctx, const struct service_common_config *c)
{
    (void)ctx;
    if (birthday_scheduler_start(c, birthday_interval_ms) != 0)
        return -1;
    return referral_scheduler_start(c, referral_interval_ms);
}

int main(int argc, char **argv)
{
    static const char *const topics[] = {TOPIC_MEMBER_EVENTS, TOPIC_LEDGER_EVENTS};
    static struct campaign_ctx campaign;
    static const struct pipeline_ops ops = {.apply = campaign_apply_batch,
                                            .after_commit = campaign_after_commit,
                                            .begin_batch = campaign_begin_batch};
    const struct consumer_service svc = {
        .name = "campaign",
        .summary = "tessera-campaign: the rules engine",
        .schema = "campaign",
        .group_id = "campaign",
        .topics = topics,
        .topic_count = 2,
        .migrations = campaign_migrations,
        .migration_count = campaign_migrations_count,
        .ops = &ops,
        .ctx = &campaign,
        .setup = campaign_setup,
    };
    return consumer_service_run(argc, argv, &svc, config_table,
                                sizeof(config_table) / sizeof(config_table[0]), &common, &batch_max,
                                &poll_timeout_ms);
}
