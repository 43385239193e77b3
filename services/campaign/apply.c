/* The campaign's batch: the event tally every consumer starts from, then
 * earning (earning.c), in the pipeline's one transaction with the offsets
 * and the outbox. */
#include "campaign.h"
#include "engage.h"
#include "service/event_tally.h"
#include "service/pipeline_metrics.h"

void campaign_begin_batch(void *ctx)
{
    struct campaign_ctx *c = ctx;
    c->earn_commands = c->earn_points = c->earn_skipped = c->earn_deferred = 0;
    c->engage_grants = c->engage_points = c->engage_activities = c->engage_duplicates = 0;
}

int campaign_apply_batch(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len)
{
    if (event_tally_apply(ctx, pg, b, err, err_len) < 0)
        return -1;
    if (earning_apply_batch(ctx, pg, b, err, err_len) < 0)
        return -1;
    if (engage_apply_batch(ctx, pg, b, err, err_len) < 0)
        return -1;
    return referrals_apply_batch(pg, b, err, err_len);
}

void campaign_after_commit(void *ctx, struct pipeline_batch *b)
{
    const struct campaign_ctx *c = ctx;
    pipeline_metrics_count("tessera_campaign_earn_commands_total",
                           "EarnPoints commands sent for purchases.", c->earn_commands);
    pipeline_metrics_count("tessera_campaign_earned_points_total", "Points those commands carry.",
                           c->earn_points);
    pipeline_metrics_count("tessera_campaign_purchases_not_earning_total",
                           "Purchases that earned nothing (no rule, disabled, below one unit).",
                           c->earn_skipped);
    pipeline_metrics_count("tessera_campaign_purchases_deferred_total",
                           "Purchases held back until an earning rule change of their time is "
                           "stored (its event came after them).",
                           c->earn_deferred);
    pipeline_metrics_count("tessera_campaign_engage_grants_total",
                           "EarnPoints commands sent for activities, streaks, welcome tasks.",
                           c->engage_grants);
    pipeline_metrics_count("tessera_campaign_engage_points_total", "Points those grants carry.",
                           c->engage_points);
    pipeline_metrics_count("tessera_campaign_activities_total", "Activities applied.",
                           c->engage_activities);
    pipeline_metrics_count("tessera_campaign_activity_duplicates_total",
                           "Activities whose member and activity id were applied before.",
                           c->engage_duplicates);
}
