/* Engagement in the campaign service (issue 12): activities and their
 * rules, streaks, promotional multipliers, the welcome month and the
 * birthday gift. Facts arrive on member-events and are applied in the
 * batch's transaction (engage_apply_batch); grants go to the ledger as
 * EarnPoints commands through the outbox, each with a grant id derived
 * from its cause and rule (engage_types.h), recorded in activity_grants so
 * it fires once. */
#ifndef TESSERA_CAMPAIGN_ENGAGE_H
#define TESSERA_CAMPAIGN_ENGAGE_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "events/codec.h"
#include "events/engage_types.h"
#include "rules_activities.h"
#include "service/pipeline.h"

struct campaign_ctx;

/* Applies the batch's engagement facts in their order (a member's are
 * ordered in their partition). Messages marked poison are skipped; those
 * that cannot be applied are marked. 0, or -1 with err (the batch is
 * retried). */
int engage_apply_batch(struct campaign_ctx *c, PGconn *pg, struct pipeline_batch *b, char *err,
                       size_t err_len) __attribute__((warn_unused_result));

/* activity_rules_store.c: one fact each (message i of b). */
int engage_store_rules(PGconn *pg, const Envelope *env, struct pipeline_batch *b, size_t i,
                       char *err, size_t err_len) __attribute__((warn_unused_result));
int engage_store_member(PGconn *pg, const Envelope *env, char *err, size_t err_len)
    __attribute__((warn_unused_result));
int engage_store_birthday(PGconn *pg, const Envelope *env, struct pipeline_batch *b, size_t i,
                          char *err, size_t err_len) __attribute__((warn_unused_result));

/* notify.c: a NotifyRequest caused by cause (b NULL: straight into the
 * outbox, for the scheduler); points_name NULL: no variable. */
int engage_notify(PGconn *pg, struct pipeline_batch *b, const Envelope *cause,
                  const char *template_name, const char *purpose, const char *request_id,
                  const char *points_name, int64_t points, char *err, size_t err_len)
    __attribute__((warn_unused_result));
/* MemberRegistered: the member's row and the welcome message. */
int engage_member_registered(struct campaign_ctx *c, PGconn *pg, const Envelope *env,
                             struct pipeline_batch *b, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* promotions.c: a tenant's promotions of one rule version (activity_rules,
 * keyed by its change_id), parsed once and kept until another version is
 * used or the tenant's rules change (pipeline thread only). */
struct promotions;
/* The change_id of the tenant's kept promotions, or NULL: a reader may
 * leave their JSON out when this version is in force. */
const char *promotions_cached_version(const char *tenant);
/* The tenant's promotions of version change_id: the kept ones, else json
 * (activity_rules.promotions as text; NULL: none) parsed and kept. Valid
 * until the next call of promotions_of or promotions_forget. */
const struct promotions *promotions_of(const char *tenant, const char *change_id, const char *json);
/* Drops the tenant's kept promotions (its rules changed). */
void promotions_forget(const char *tenant);
/* The largest multiplier (basis points, 10000 = x1) of p (NULL: none) in
 * force for t. */
int64_t promotions_multiplier(const struct promotions *p, const struct promotion_target *t);

/* activities.c: one ActivityRecorded (message i of b). */
int engage_apply_activity(struct campaign_ctx *c, PGconn *pg, const Envelope *env,
                          struct pipeline_batch *b, size_t i, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* grants.c: an outbox row outside a pipeline batch (the scheduler), its
 * lease over at once so that the pipeline's next sweep relays it (within
 * RELAY_SWEEP_EVERY_S). 0 or -1 with err. */
int engage_outbox_now(PGconn *pg, const char *topic, const char *key, const uint8_t *payload,
                      size_t len, char *err, size_t err_len) __attribute__((warn_unused_result));

/* grants.c: records grants and emits an EarnPoints command for each one
 * inserted now (a grant id seen before emits nothing). */
struct engage_grant {
    char grant_id[EVENT_ID_FIELD_MAX];
    const char *kind; /* activity, streak, welcome, birthday */
    char rule[96];    /* the journal reason's rule name */
    int64_t points;
    const char *local_day; /* YYYY-MM-DD in the tenant's zone */
};
int engage_grant(struct campaign_ctx *c, PGconn *pg, struct pipeline_batch *b,
                 const Envelope *cause, const struct engage_grant *g, bool *granted, char *err,
                 size_t err_len) __attribute__((warn_unused_result));
/* notify.c: the "<g->kind>.reward" message of a grant just made
 * (activity.reward, streak.reward), request id "<template>:<grant id>",
 * variables reward.points and activity.name. 0 or -1 with err. */
int engage_notify_reward(PGconn *pg, struct pipeline_batch *b, const Envelope *cause,
                         const struct engage_grant *g, const char *activity_name, char *err,
                         size_t err_len) __attribute__((warn_unused_result));

/* birthday.c: starts the birthday scheduler thread (one instance leads,
 * by an advisory lock). 0 or -1. */
struct service_common_config;
int birthday_scheduler_start(const struct service_common_config *c, long long interval_ms)
    __attribute__((warn_unused_result));

#endif
