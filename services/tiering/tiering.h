/* The tiering service's shared state: what one batch of ledger facts
 * loaded and will write. Only the pipeline thread touches it, except the
 * atomics the admin port reads.
 *
 * A batch: count the batch's purchases once each (qualifying_purchases,
 * keyed by purchase command id, so a fact the ledger's outbox relays twice
 * is not counted twice), load its members' spend and tiers and its
 * tenants' ladders, decide every purchase in order in memory (rules.c),
 * write spend, tiers and the trail, and emit TierChanged on tier-events
 * through the outbox: all in the transaction of the consumed offsets.
 * After commit the batch's members' tiers go to Redis (cache_sync.c). */
#ifndef TESSERA_TIERING_H
#define TESSERA_TIERING_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/cache_skus.h"
#include "cache/cache_tier.h"
#include "db/db.h"
#include "events/codec.h"
#include "rules.h"
#include "rules_review.h"
#include "rules_spend.h"
#include "service/common.h"
#include "service/pipeline.h"

typedef Tessera__Tiering__V1__Tier Tier;
typedef Tessera__Tiering__V1__TierChanged TierChanged;
typedef Tessera__Tiering__V1__TierLadderChanged TierLadderChanged;

#define TIERING_CACHE_RETRY_MAX 10000 /* failed cache writes kept for the next batch */
#define TIERING_ITEMS_MAX       100   /* a purchase's items looked at for upgrade packages */
#define TIERING_TEXT_MAX        200   /* bytes of an override's reason or author */
#define TIERING_SKUS_TEXT_MAX   2400  /* a level's upgrade SKUs, joined (32 x 64 + separators) */

struct tiering_member {
    char *tenant_id;
    char *member_id;
    struct tier_spend spend;
    int64_t purchases;
    int64_t last_purchase_at_us; /* 0: none yet */
    bool has_tier;
    struct tier_level tier; /* a copy of the level held, when has_tier */
    const char *reason;     /* of a change in this batch (static string); NULL: */
    char reason_loaded[32]; /* the reason read from member_tiers */
    bool held_by_spend;     /* reached by spend (not invited or overridden) */
    int64_t period_end_us;  /* the level's qualifying period ends (0: not reviewed) */
    /* a level set by hand (reason override or invitation) */
    char override_reason[TIERING_TEXT_MAX + 1];
    char override_by[TIERING_TEXT_MAX + 1];
    int64_t override_expires_us; /* 0: until cleared */
    int64_t referrals;           /* successful referrals counted */
    int64_t registered_at_us;    /* MemberRegistered; 0: not seen */
    int64_t version;             /* tier version: +1 per change; 0 never had one */
    int64_t changed_at_us;
    bool spent;        /* a fact counted in this batch: spend to write */
    bool tier_changed; /* its member_tiers row to write */
};

struct tiering_ladder {
    char *tenant_id;
    struct tier_level levels[TIER_LEVELS_MAX];
    char skus[TIER_LEVELS_MAX][TIERING_SKUS_TEXT_MAX + 1]; /* levels[i]'s upgrade SKUs */
    size_t count;
    int32_t utc_offset_minutes; /* the calendar year of annual spend */
    struct tier_spend_policy spend_policy;
    enum tier_refund_rule refund_rule;
    int32_t review_months, grace_days, warning_days;
    struct tier_windows windows; /* seen from the batch's clock_now_us */
};

/* A batch's qualifying facts, in order: a purchase, a card or
 * subscription sale, or a refund of a purchase. counted means first seen
 * (and, for a refund, that the purchase it lowers was counted); at_us is
 * when it counts (a refund: its purchase's time). */
struct tiering_purchase {
    const Envelope *env;
    const char *kind; /* purchase | card | subscription | refund */
    const char *command_id;
    const char *refund_of; /* refunds: the purchase's command id */
    int64_t amount;        /* negative for a refund */
    int64_t at_us;
    bool counted;
};

/* Rows of tier_changes, as array literals for unnest(). */
struct tiering_change_rows {
    struct db_array tenant, member, version, from_rank, from_name, to_rank, to_name, reason,
        lifetime, annual, year, purchase, event, at;
};

/* Rows of tier_notes. */
struct tiering_note_rows {
    struct db_array tenant, member, kind, detail, event, at;
};

/* skus.c: the SKUs the batch's counted purchases carried and the
 * purchases its counted refunds withdraw, as rows for unnest(); then,
 * read back in the batch's transaction, the whole set of each member
 * touched, for the cache after commit. */
struct tiering_skus {
    struct db_array tenant, member, sku, command, at;    /* bought */
    struct db_array ref_tenant, ref_member, ref_command; /* refunded */
    struct db_array touched_tenant, touched_member;      /* both, a member may repeat */
    /* read back: one entry per member touched, names owned */
    struct cache_member_skus *members;
    size_t member_count, member_cap;
    char **names;     /* the SKUs of every member, in order */
    int64_t *last_us; /* beside names */
    size_t name_count, name_cap;
};

struct tiering_ctx {
    const char *redis_host;
    int redis_port;
    redisContext *rc;
    atomic_bool redis_ok;
    /* counters for /metrics, moved only after a commit (a retried batch
     * decides again): the batch's own counts are added by after_commit */
    atomic_llong purchases_counted, duplicates_ignored, tier_changes;
    long long batch_counted, batch_duplicates, batch_changes;
    /* the batch in hand (reset by tiering_begin_batch) */
    struct tiering_member *members;
    size_t member_count, member_cap;
    struct tiering_ladder *ladders;
    size_t ladder_count, ladder_cap;
    struct tiering_purchase *purchases;
    size_t purchase_count, purchase_cap;
    struct tiering_change_rows changes;
    struct tiering_note_rows notes;
    /* cache writes that failed, tried again after the next batch */
    struct cache_tier *unsynced;
    size_t unsynced_count;
    struct tiering_skus skus; /* skus.c: what the batch's purchases bought */
};

/* pipeline_ops callbacks (apply.c, cache_sync.c) */
void tiering_begin_batch(void *ctx);
int tiering_apply_batch(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len);
void tiering_after_commit(void *ctx, struct pipeline_batch *b);

/* Moves m to `to` (NULL: no tier) because of the fact f, for reason (a
 * static string): the member row to write, TierChanged through the
 * outbox, the trail (apply.c). */
void tiering_change_tier(struct tiering_ctx *t, struct pipeline_batch *b,
                         const struct tiering_purchase *f, struct tiering_member *m,
                         const struct tier_level *to, const char *reason);

/* overrides.c: the batch's TierOverrideSet / TierOverrideCleared and
 * ReferralCounted commands, applied and written before its facts. */
int tiering_apply_member_commands(struct tiering_ctx *t, PGconn *pg, struct pipeline_batch *b,
                                  Envelope **envs, char *err, size_t err_len)
    __attribute__((warn_unused_result));
/* Moves m to what its spend reaches (override ended or expired). */
void tiering_requalify(struct tiering_ctx *t, struct pipeline_batch *b,
                       const struct tiering_purchase *f, struct tiering_member *m,
                       const char *reason);
/* The ladder's level named name (NULL: none). */
const struct tier_level *tiering_level_named(const struct tiering_ladder *ld, const char *name);

/* A note in the member's history that explains a tier that did not move
 * (apply.c). */
void tiering_add_note(struct tiering_ctx *t, const struct tiering_purchase *f,
                      const struct tiering_member *m, const char *kind, const char *detail);

/* ladder.c: the batch's TierLadderChanged facts, stored and applied
 * (members re-evaluated, written) before its member facts. */
int tiering_apply_ladders(struct tiering_ctx *t, PGconn *pg, struct pipeline_batch *b,
                          Envelope **envs, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* review_apply.c: the batch's TierReviewDue commands (warnings and period
 * end reviews), applied and written before its member facts. */
int tiering_apply_reviews(struct tiering_ctx *t, PGconn *pg, struct pipeline_batch *b,
                          Envelope **envs, char *err, size_t err_len)
    __attribute__((warn_unused_result));
/* Writes what a phase decided (ladders, reviews) and empties the trail so
 * the batch's final write does not write it twice. */
int tiering_flush_phase(struct tiering_ctx *t, PGconn *pg, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* notify.c: a NotifyRequest on notify-requests through the outbox, keyed
 * by member; request_id "<template>:<cause event id>". */
struct tiering_var {
    const char *name;
    const char *text; /* NULL: money */
    int64_t money;
    bool is_time; /* money holds a time in µs */
};
void tiering_notify(struct pipeline_batch *b, const char *tenant_id, const char *member_id,
                    const char *template_name, const char *cause_event_id,
                    const struct tiering_var *vars, size_t n);

/* review.c: the review scheduler thread (one instance at a time, by
 * advisory lock). 0 or -1. */
int tiering_review_scheduler_start(const struct service_common_config *c, long long interval_ms);
/* Rounds the scheduler completed as the leader. */
long long tiering_review_rounds(void);

/* lookups in the batch state (apply.c) */
struct tiering_member *tiering_member_find(struct tiering_ctx *t, const char *tenant_id,
                                           const char *member_id, bool create);
struct tiering_ladder *tiering_ladder_find(struct tiering_ctx *t, const char *tenant_id,
                                           bool create);

/* store.c: the database side, inside the batch's transaction. */
/* Records the batch's facts in qualifying_purchases and marks those not
 * seen before as counted (refunds: with their purchase's time). */
int tiering_store_count(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len);
/* Loads the batch tenants' ladders and policies. */
int tiering_store_load_ladders(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len);
/* Loads the batch members' tiers and their spend per window (before the
 * batch's facts, which the caller counts in order). */
int tiering_store_load_members(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len);
/* Adds every member of the tenant (with spend or a tier) to the batch. */
int tiering_store_tenant_members(PGconn *pg, struct tiering_ctx *t, const char *tenant_id,
                                 char *err, size_t err_len);
/* Writes spend, changed tiers and the change trail. */
int tiering_store_write(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len);
void tiering_change_rows_init(struct tiering_change_rows *r);
void tiering_change_rows_free(struct tiering_change_rows *r);
void tiering_note_rows_init(struct tiering_note_rows *r);
void tiering_note_rows_free(struct tiering_note_rows *r);

/* skus.c */
void tiering_skus_reset(struct tiering_skus *s);
/* Notes what the counted fact f of member m changes: a purchase's SKUs
 * or a refund's withdrawal. */
void tiering_skus_note(struct tiering_skus *s, const struct tiering_purchase *f);
/* Writes the noted rows and reads back the touched members' sets. */
int tiering_skus_write(PGconn *pg, struct tiering_skus *s, char *err, size_t err_len)
    __attribute__((warn_unused_result));
/* After commit: the read-back sets to Redis (logged on failure). */
void tiering_skus_sync(struct tiering_ctx *t);

/* cache_sync.c */
/* Connects to Redis when not connected (logs and returns false when it
 * cannot: the cache is only a cache). */
bool tiering_cache_ensure(struct tiering_ctx *t);

#endif
