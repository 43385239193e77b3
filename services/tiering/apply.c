/* Tier evaluation from the ledger's facts. A PurchaseRecorded (and a card
 * or subscription sale, CardChanged issued/renewed, when the tenant counts
 * them) adds to the member's spend per window (rules_spend.h); a
 * RefundRecorded of a purchase takes its amount back from the windows the
 * purchase was counted in. A spend that reaches a level above the
 * member's tier moves the member up at once; a refund that leaves the
 * member below the level held follows the tenant's refund rule (down now,
 * or a note and the review decides). Every move is a TierChanged on
 * tier-events. All of it is decided in memory, in order (a member's facts
 * arrive in order on one partition), and committed with the consumed
 * offsets, so a replay never counts twice. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "clock/clock.h"
#include "events/card_types.h"
#include "events/codec.h"
#include "log/log.h"
#include "tiering.h"
#include "util/array.h"

void tiering_begin_batch(void *ctx)
{
    struct tiering_ctx *t = ctx;
    for (size_t i = 0; i < t->member_count; i++) {
        free(t->members[i].tenant_id);
        free(t->members[i].member_id);
    }
    for (size_t i = 0; i < t->ladder_count; i++)
        free(t->ladders[i].tenant_id);
    t->member_count = t->ladder_count = t->purchase_count = 0;
    t->batch_counted = t->batch_duplicates = t->batch_changes = 0;
    tiering_change_rows_free(&t->changes);
    tiering_change_rows_init(&t->changes);
    tiering_note_rows_free(&t->notes);
    tiering_note_rows_init(&t->notes);
    tiering_skus_reset(&t->skus);
}

/* Lookups are linear: a batch holds at most PIPELINE_BATCH_MAX facts. */
struct tiering_member *tiering_member_find(struct tiering_ctx *t, const char *tenant_id,
                                           const char *member_id, bool create)
{
    for (size_t i = 0; i < t->member_count; i++)
        if (strcmp(t->members[i].member_id, member_id) == 0 &&
            strcmp(t->members[i].tenant_id, tenant_id) == 0)
            return &t->members[i];
    if (!create)
        return NULL;
    t->members = array_grow(t->members, t->member_count, &t->member_cap, sizeof(*t->members));
    struct tiering_member *m = &t->members[t->member_count++];
    *m = (struct tiering_member){.tenant_id = strdup(tenant_id), .member_id = strdup(member_id)};
    assert(m->tenant_id && m->member_id);
    return m;
}

struct tiering_ladder *tiering_ladder_find(struct tiering_ctx *t, const char *tenant_id,
                                           bool create)
{
    for (size_t i = 0; i < t->ladder_count; i++)
        if (strcmp(t->ladders[i].tenant_id, tenant_id) == 0)
            return &t->ladders[i];
    if (!create)
        return NULL;
    t->ladders = array_grow(t->ladders, t->ladder_count, &t->ladder_cap, sizeof(*t->ladders));
    struct tiering_ladder *ld = &t->ladders[t->ladder_count++];
    /* no policy row: the defaults of tier_policies' columns */
    *ld = (struct tiering_ladder){.tenant_id = strdup(tenant_id),
                                  .utc_offset_minutes = 480,
                                  .review_months = 12,
                                  .warning_days = 30};
    tier_windows_at(&ld->windows, clock_now_us(), ld->utc_offset_minutes);
    assert(ld->tenant_id);
    return ld;
}

static void tier_message(Tier *msg, bool has, const struct tier_level *l)
{
    tessera__tiering__v1__tier__init(msg);
    if (!has)
        return;
    msg->name = (char *)l->name;
    msg->rank = l->rank;
    msg->discount_bp = l->discount_bp;
    msg->points_multiplier_bp = l->points_multiplier_bp;
}

/* TierChanged for m's move from previous (has_previous false: none),
 * caused by the fact p (command_id: the purchase, sale or refund, or "");
 * emitted through the outbox on tier-events, keyed by member. Returns its
 * event id in event_id. */
static void emit_changed(struct pipeline_batch *b, const Envelope *p, const char *command_id,
                         const struct tiering_member *m, bool has_previous,
                         const struct tier_level *previous, char event_id[UUID_STR_SIZE])
{
    struct event_meta meta = {.tenant_id = m->tenant_id,
                              .branch_id = p->branch_id,
                              .member_id = m->member_id,
                              .causation_id = p->event_id,
                              .correlation_id =
                                  p->correlation_id[0] ? p->correlation_id : p->event_id,
                              .actor_kind = "service",
                              .actor_id = "tiering",
                              .traceparent = p->traceparent,
                              .occurred_at_us = p->occurred_at_us};
    Envelope env;
    Actor actor;
    Tier from, to;
    TierChanged tc;
    envelope_init(&env, &actor, &meta);
    tier_message(&from, has_previous, previous);
    tier_message(&to, m->has_tier, &m->tier);
    tessera__tiering__v1__tier_changed__init(&tc);
    tc.previous = &from;
    tc.current = &to;
    tc.reason = (char *)m->reason;
    tc.lifetime_spend = m->spend.lifetime;
    tc.annual_spend = m->spend.annual;
    tc.spend_year = m->spend.year;
    tc.version = m->version;
    tc.purchase_command_id = (char *)command_id;
    tc.rolling_spend = m->spend.rolling;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_CHANGED;
    env.tier_changed = &tc;
    size_t len = 0;
    uint8_t *out = envelope_encode(&env, &len);
    assert(out); /* bounded fields: an encoding failure is a programmer error */
    pipeline_emit(b, TOPIC_TIER_EVENTS, m->member_id, out, len);
    memcpy(event_id, meta.event_id, UUID_STR_SIZE);
}

static void add_change_row(struct tiering_ctx *t, const Envelope *p, const char *command_id,
                           const struct tiering_member *m, bool has_previous,
                           const struct tier_level *previous, const char *event_id)
{
    struct tiering_change_rows *r = &t->changes;
    char at[32];
    event_format_time(p->occurred_at_us, at);
    db_array_add(&r->tenant, m->tenant_id);
    db_array_add(&r->member, m->member_id);
    db_array_add_int(&r->version, m->version);
    if (has_previous) {
        db_array_add_int(&r->from_rank, previous->rank);
        db_array_add(&r->from_name, previous->name);
    } else {
        db_array_add(&r->from_rank, NULL);
        db_array_add(&r->from_name, NULL);
    }
    db_array_add_int(&r->to_rank, m->has_tier ? m->tier.rank : -1);
    db_array_add(&r->to_name, m->has_tier ? m->tier.name : "");
    db_array_add(&r->reason, m->reason);
    db_array_add_int(&r->lifetime, m->spend.lifetime);
    db_array_add_int(&r->annual, m->spend.annual);
    db_array_add_int(&r->year, m->spend.year);
    db_array_add(&r->purchase, command_id);
    db_array_add(&r->event, event_id);
    db_array_add(&r->at, at);
}

/* Moves m to `to` (NULL: no tier) because of the fact f, for `reason`:
 * the member row to write, TierChanged through the outbox, the trail. */
void tiering_change_tier(struct tiering_ctx *t, struct pipeline_batch *b,
                         const struct tiering_purchase *f, struct tiering_member *m,
                         const struct tier_level *to, const char *reason)
{
    const Envelope *p = f->env;
    struct tier_level previous = m->tier;
    bool had = m->has_tier;
    const struct tiering_ladder *ld = tiering_ladder_find(t, m->tenant_id, false);
    assert(ld);
    if (to)
        m->tier = *to;
    m->has_tier = to != NULL;
    m->reason = reason;
    m->held_by_spend = tier_reason_by_spend(reason);
    /* any other move ends a level set by hand (apply_set sets it after) */
    m->override_reason[0] = m->override_by[0] = '\0';
    m->override_expires_us = 0;
    m->version++;
    m->changed_at_us = p->occurred_at_us;
    m->tier_changed = true;
    /* a level reached by spend is held for a qualifying period from now */
    m->period_end_us =
        m->has_tier && m->held_by_spend
            ? tier_period_end(m->changed_at_us, ld->review_months, ld->utc_offset_minutes)
            : 0;
    char event_id[UUID_STR_SIZE];
    emit_changed(b, p, f->command_id, m, had, &previous, event_id);
    add_change_row(t, p, f->command_id, m, had, &previous, event_id);
    const struct tiering_var vars[] = {
        {.name = "tier.name", .text = m->has_tier ? m->tier.name : ""},
        {.name = "tier.previous", .text = had ? previous.name : ""},
        {.name = "tier.reason", .text = reason},
    };
    tiering_notify(b, m->tenant_id, m->member_id, "tier.changed", event_id, vars,
                   sizeof(vars) / sizeof(vars[0]));
    t->batch_changes++;
    log_fields(LOG_INFO, "tier changed", "tenant", m->tenant_id, "member", m->member_id, "tier",
               m->has_tier ? m->tier.name : "", "reason", m->reason, "correlation_id",
               p->correlation_id, NULL);
}

void tiering_add_note(struct tiering_ctx *t, const struct tiering_purchase *f,
                      const struct tiering_member *m, const char *kind, const char *detail)
{
    char at[32];
    event_format_time(f->env->occurred_at_us, at);
    db_array_add(&t->notes.tenant, m->tenant_id);
    db_array_add(&t->notes.member, m->member_id);
    db_array_add(&t->notes.kind, kind);
    db_array_add(&t->notes.detail, detail);
    db_array_add(&t->notes.event, f->env->event_id);
    db_array_add(&t->notes.at, at);
}

/* A refund lowered m's spend: the tenant's rule decides whether a member
 * now below the level held moves down now or at the review. */
static void decide_refund(struct tiering_ctx *t, struct pipeline_batch *b,
                          const struct tiering_purchase *f, struct tiering_member *m,
                          const struct tiering_ladder *ld)
{
    const struct tier_level *to;
    enum tier_refund_outcome o =
        tier_after_refund(ld->levels, ld->count, &m->spend, m->has_tier, m->tier.rank,
                          m->held_by_spend, ld->refund_rule, &to);
    if (o == TIER_REFUND_DOWN_NOW) {
        tiering_change_tier(t, b, f, m, to, "refund");
        return;
    }
    if (o == TIER_REFUND_BELOW_REVIEW) {
        char detail[256];
        snprintf(detail, sizeof(detail),
                 "refund %s lowered qualifying spend below %s (lifetime %lld, year %lld, "
                 "12 months %lld); the level is kept until the review",
                 f->command_id, m->tier.name, (long long)m->spend.lifetime,
                 (long long)m->spend.annual, (long long)m->spend.rolling);
        tiering_add_note(t, f, m, "below_after_refund", detail);
    }
}

/* A purchase of an upgrade package (an item's SKU, or a card's product,
 * listed in a level's upgrade_skus) moves the member to that level when
 * it is above the one held. */
static void decide_package(struct tiering_ctx *t, struct pipeline_batch *b,
                           const struct tiering_purchase *f, struct tiering_member *m,
                           const struct tiering_ladder *ld)
{
    const char *bought[TIERING_ITEMS_MAX];
    size_t n = 0;
    const Envelope *e = f->env;
    if (e->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED) {
        for (size_t i = 0; i < e->purchase_recorded->n_items && n < TIERING_ITEMS_MAX; i++)
            bought[n++] = e->purchase_recorded->items[i]->sku;
    } else if (e->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CARD_CHANGED) {
        bought[n++] = e->card_changed->card->product_id;
    }
    const char *skus[TIER_LEVELS_MAX];
    for (size_t i = 0; i < ld->count; i++)
        skus[i] = ld->skus[i];
    const struct tier_level *p = tier_by_package(ld->levels, skus, ld->count, bought, n);
    if (tier_is_upgrade(m->has_tier, m->tier.rank, p))
        tiering_change_tier(t, b, f, m, p, "upgrade_package");
}

/* One counted fact: the spend per window moves; a level above the
 * member's tier that the spend now reaches is the member's tier from this
 * fact on; a refund may take the member down (decide_refund). */
static void decide_fact(struct tiering_ctx *t, struct pipeline_batch *b,
                        const struct tiering_purchase *f)
{
    const Envelope *p = f->env;
    struct tiering_member *m = tiering_member_find(t, p->tenant_id, p->member_id, false);
    const struct tiering_ladder *ld = tiering_ladder_find(t, p->tenant_id, false);
    assert(m && ld);
    tiering_skus_note(&t->skus, f);
    if (!tier_spend_count(&m->spend, &ld->windows, f->amount, f->at_us)) {
        log_fields(LOG_ERROR, "fact not counted: amount out of range", "tenant", p->tenant_id,
                   "member", p->member_id, "command_id", f->command_id, NULL);
        return;
    }
    if (strcmp(f->kind, "purchase") == 0) {
        m->purchases++;
        if (p->occurred_at_us > m->last_purchase_at_us)
            m->last_purchase_at_us = p->occurred_at_us;
    }
    m->spent = true;
    t->batch_counted++;
    if (f->amount < 0) {
        decide_refund(t, b, f, m, ld);
        return;
    }
    enum tier_reason why;
    const struct tier_level *q = tier_qualify(ld->levels, ld->count, &m->spend, &why);
    if (tier_is_upgrade(m->has_tier, m->tier.rank, q))
        tiering_change_tier(t, b, f, m, q, tier_reason_name(why));
    decide_package(t, b, f, m, ld);
}

/* The qualifying fact in e, or false when e is none: a purchase, a card
 * or subscription sale, a refund of a purchase. */
static bool fact_of(const Envelope *e, struct tiering_purchase *f)
{
    *f = (struct tiering_purchase){.env = e, .at_us = e->occurred_at_us};
    switch (e->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED:
        f->kind = "purchase";
        f->command_id = e->purchase_recorded->command_id;
        f->amount = e->purchase_recorded->charged;
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CARD_CHANGED: {
        const CardChanged *c = e->card_changed;
        if (!c->card || (strcmp(c->change, "issued") != 0 && strcmp(c->change, "renewed") != 0))
            return false;
        f->kind = strcmp(c->card->kind, "subscription") == 0 ? "subscription" : "card";
        f->command_id = c->command_id;
        f->amount = c->card->price;
        break;
    }
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_RECORDED: {
        const RefundDetail *d = e->refund_recorded->refund;
        if (!d || strcmp(d->kind, "purchase") != 0 || !d->purchase_command_id[0])
            return false;
        f->kind = "refund";
        f->command_id = e->refund_recorded->command_id;
        f->refund_of = d->purchase_command_id;
        f->amount = -d->amount;
        break;
    }
    default:
        return false;
    }
    return e->member_id[0] && f->command_id[0] && f->amount != 0 &&
           f->amount != INT64_MIN; /* negated: never reached by a valid refund */
}

/* Drops the facts a tenant does not count (card and subscription sales
 * under its setting), once the ladders are loaded. */
static void drop_uncounted_sales(struct tiering_ctx *t)
{
    size_t kept = 0;
    for (size_t i = 0; i < t->purchase_count; i++) {
        struct tiering_purchase *f = &t->purchases[i];
        const struct tiering_ladder *ld = tiering_ladder_find(t, f->env->tenant_id, false);
        enum tier_sale kind = strcmp(f->kind, "card") == 0           ? TIER_SALE_CARD
                              : strcmp(f->kind, "subscription") == 0 ? TIER_SALE_SUBSCRIPTION
                                                                     : TIER_SALE_PURCHASE;
        if (tier_sale_counts(kind, &ld->spend_policy))
            t->purchases[kept++] = *f;
    }
    t->purchase_count = kept;
}

int tiering_flush_phase(struct tiering_ctx *t, PGconn *pg, char *err, size_t err_len)
{
    int rc = tiering_store_write(pg, t, err, err_len);
    tiering_change_rows_free(&t->changes);
    tiering_change_rows_init(&t->changes);
    for (size_t i = 0; i < t->member_count; i++)
        t->members[i].spent = false;
    return rc;
}

int tiering_apply_batch(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len)
{
    struct tiering_ctx *t = ctx;
    Envelope **envs = calloc(b->count, sizeof(*envs));
    assert(envs || b->count == 0);
    for (size_t i = 0; i < b->count; i++) {
        char why[128];
        envs[i] = envelope_decode(b->msgs[i]->payload, b->msgs[i]->len, why, sizeof(why));
        if (!envs[i]) {
            pipeline_mark_poison(b, i, "undecodable envelope");
            continue;
        }
        struct tiering_purchase f;
        if (!fact_of(envs[i], &f))
            continue;
        t->purchases =
            array_grow(t->purchases, t->purchase_count, &t->purchase_cap, sizeof(*t->purchases));
        t->purchases[t->purchase_count++] = f;
        tiering_member_find(t, f.env->tenant_id, f.env->member_id, true);
        tiering_ladder_find(t, f.env->tenant_id, true);
    }
    /* tenant-wide ladder changes first, then reviews: the batch's facts
     * see what they did */
    int rc = tiering_apply_ladders(t, pg, b, envs, err, err_len);
    if (rc == 0)
        rc = tiering_apply_reviews(t, pg, b, envs, err, err_len);
    if (rc == 0)
        rc = tiering_apply_member_commands(t, pg, b, envs, err, err_len);
    if (rc == 0 && t->purchase_count > 0) {
        /* members before counting: their spend is what came before the
         * batch, and the batch's facts are counted in order below */
        rc = tiering_store_load_ladders(pg, t, err, err_len);
        if (rc == 0) {
            drop_uncounted_sales(t);
            rc = tiering_store_load_members(pg, t, err, err_len);
        }
        if (rc == 0)
            rc = tiering_store_count(pg, t, err, err_len);
        for (size_t i = 0; rc == 0 && i < t->purchase_count; i++) {
            if (t->purchases[i].counted)
                decide_fact(t, b, &t->purchases[i]);
            else
                t->batch_duplicates++;
        }
        if (rc == 0)
            rc = tiering_store_write(pg, t, err, err_len);
        if (rc == 0)
            rc = tiering_skus_write(pg, &t->skus, err, err_len);
    }
    for (size_t i = 0; i < b->count; i++)
        envelope_free(envs[i]);
    free(envs);
    return rc;
}
