/* Tier evaluation from the ledger's facts. Every PurchaseRecorded adds its
 * charged amount to the member's lifetime and calendar-year spend; when
 * that reaches a level above the member's tier (rules.c), the member moves
 * up at once and a TierChanged fact goes to tier-events. All of it is
 * decided in memory, in order (a member's facts arrive in order on one
 * partition), and committed with the consumed offsets, so a replay never
 * counts twice. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
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
    *ld = (struct tiering_ladder){.tenant_id = strdup(tenant_id), .utc_offset_minutes = 480};
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
 * caused by the purchase fact p; emitted through the outbox on
 * tier-events, keyed by member. Returns its event id in event_id. */
static void emit_changed(struct pipeline_batch *b, const Envelope *p,
                         const struct tiering_member *m, bool has_previous,
                         const struct tier_level *previous, char event_id[UUID_STR_SIZE])
{
    struct event_meta meta = {.tenant_id = p->tenant_id,
                              .branch_id = p->branch_id,
                              .member_id = p->member_id,
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
    tier_message(&to, true, &m->tier);
    tessera__tiering__v1__tier_changed__init(&tc);
    tc.previous = &from;
    tc.current = &to;
    tc.reason = (char *)m->reason;
    tc.lifetime_spend = m->spend.lifetime;
    tc.annual_spend = m->spend.annual;
    tc.spend_year = m->spend.year;
    tc.version = m->version;
    tc.purchase_command_id = p->purchase_recorded->command_id;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_CHANGED;
    env.tier_changed = &tc;
    size_t len = 0;
    uint8_t *out = envelope_encode(&env, &len);
    assert(out); /* bounded fields: an encoding failure is a programmer error */
    pipeline_emit(b, TOPIC_TIER_EVENTS, p->member_id, out, len);
    memcpy(event_id, meta.event_id, UUID_STR_SIZE);
}

static void add_change_row(struct tiering_ctx *t, const Envelope *p, const struct tiering_member *m,
                           bool has_previous, const struct tier_level *previous,
                           const char *event_id)
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
    db_array_add_int(&r->to_rank, m->tier.rank);
    db_array_add(&r->to_name, m->tier.name);
    db_array_add(&r->reason, m->reason);
    db_array_add_int(&r->lifetime, m->spend.lifetime);
    db_array_add_int(&r->annual, m->spend.annual);
    db_array_add_int(&r->year, m->spend.year);
    db_array_add(&r->purchase, p->purchase_recorded->command_id);
    db_array_add(&r->event, event_id);
    db_array_add(&r->at, at);
}

/* One counted purchase: the spend grows; a level above the member's tier
 * that the spend now reaches is the member's tier from this purchase on. */
static void decide_purchase(struct tiering_ctx *t, struct pipeline_batch *b, const Envelope *p)
{
    struct tiering_member *m = tiering_member_find(t, p->tenant_id, p->member_id, false);
    const struct tiering_ladder *ld = tiering_ladder_find(t, p->tenant_id, false);
    assert(m && ld);
    int32_t year = tier_local_year(p->occurred_at_us, ld->utc_offset_minutes);
    if (!tier_spend_add(&m->spend, p->purchase_recorded->charged, year)) {
        log_fields(LOG_ERROR, "purchase not counted: charged out of range", "tenant", p->tenant_id,
                   "member", p->member_id, "command_id", p->purchase_recorded->command_id, NULL);
        return;
    }
    m->purchases++;
    if (p->occurred_at_us > m->last_purchase_at_us)
        m->last_purchase_at_us = p->occurred_at_us;
    m->spent = true;
    t->batch_counted++;
    enum tier_reason why;
    const struct tier_level *q = tier_qualify(ld->levels, ld->count, &m->spend, &why);
    if (!tier_is_upgrade(m->has_tier, m->tier.rank, q))
        return;
    struct tier_level previous = m->tier;
    bool had = m->has_tier;
    m->tier = *q;
    m->has_tier = true;
    m->reason = tier_reason_name(why);
    m->version++;
    m->changed_at_us = p->occurred_at_us;
    m->tier_changed = true;
    char event_id[UUID_STR_SIZE];
    emit_changed(b, p, m, had, &previous, event_id);
    add_change_row(t, p, m, had, &previous, event_id);
    t->batch_changes++;
    log_fields(LOG_INFO, "tier changed", "tenant", p->tenant_id, "member", p->member_id, "tier",
               m->tier.name, "reason", m->reason, "correlation_id", p->correlation_id, NULL);
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
        const Envelope *e = envs[i];
        if (e->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED ||
            !e->member_id[0] || !e->purchase_recorded->command_id[0])
            continue;
        t->purchases =
            array_grow(t->purchases, t->purchase_count, &t->purchase_cap, sizeof(*t->purchases));
        t->purchases[t->purchase_count++] = (struct tiering_purchase){.env = e};
        tiering_member_find(t, e->tenant_id, e->member_id, true);
        tiering_ladder_find(t, e->tenant_id, true);
    }
    int rc = 0;
    if (t->purchase_count > 0) {
        rc = tiering_store_count(pg, t, err, err_len);
        if (rc == 0)
            rc = tiering_store_load(pg, t, err, err_len);
        for (size_t i = 0; rc == 0 && i < t->purchase_count; i++) {
            if (t->purchases[i].counted)
                decide_purchase(t, b, t->purchases[i].env);
            else
                t->batch_duplicates++;
        }
        if (rc == 0)
            rc = tiering_store_write(pg, t, err, err_len);
    }
    for (size_t i = 0; i < b->count; i++)
        envelope_free(envs[i]);
    free(envs);
    return rc;
}
