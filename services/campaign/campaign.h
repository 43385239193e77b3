/* The campaign service: the rules engine. Today it keeps the per-tenant
 * event tally and earns points for purchases (earning.c, with the pure
 * rule in rules_earning.c). */
#ifndef TESSERA_CAMPAIGN_H
#define TESSERA_CAMPAIGN_H

#include <libpq-fe.h>

#include "service/pipeline.h"

/* What the last attempt at a batch earned, counted in /metrics once the
 * batch commits (an attempt rolled back and retried must not count). */
struct campaign_ctx {
    long long earn_commands; /* EarnPoints emitted */
    long long earn_points;   /* their points */
    long long earn_skipped;  /* purchases that earned nothing: no rule, disabled, below a unit */
    long long earn_deferred; /* purchases held back for a rule change not stored yet */
    long long engage_grants; /* engagement EarnPoints emitted (engage.h) */
    long long engage_points; /* their points */
    long long engage_activities; /* activities applied (not duplicates) */
    long long engage_duplicates; /* activities seen before */
};

/* pipeline_ops of the campaign (pipeline thread). */
void campaign_begin_batch(void *ctx);
int campaign_apply_batch(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err,
                         size_t err_len);
void campaign_after_commit(void *ctx, struct pipeline_batch *b);

/* earning.c: inside the batch's transaction, after the tally: applies
 * EarningRulesChanged facts, then earns for PurchaseRecorded facts (see
 * the comment at the top of earning.c). Messages already marked poison
 * are skipped; those it cannot apply are marked. 0 or -1 with err (the
 * batch is retried). */
int earning_apply_batch(struct campaign_ctx *c, PGconn *pg, struct pipeline_batch *b, char *err,
                        size_t err_len);

/* referrals.c: inside the batch's transaction: referral rule changes,
 * referees' registrations and first paid purchases (see its top comment).
 * 0 or -1 with err (the batch is retried). */
int referrals_apply_batch(PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* referrals.c: forgets purchases remembered before their registration
 * more than REFERRAL_REMEMBER_DAYS before now_us (at most a round's worth:
 * the next round takes the rest). 0 or -1 with err. */
int referrals_forget_stale(PGconn *pg, int64_t now_us, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* referral_scheduler.c: starts the thread that decides referrals whose
 * lock period is over, every interval_ms. 0, or -1 when it cannot start. */
struct service_common_config;
int referral_scheduler_start(const struct service_common_config *c, long long interval_ms)
    __attribute__((warn_unused_result));

#endif
