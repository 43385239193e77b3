/* Other ways up, and levels set by hand (member-events, keyed by member,
 * applied by the partition owner in order, before the batch's facts):
 *
 * TierOverrideSet kind "override": staff put the member on a level, with
 * a reason and an optional expiry (reason "override"). It is held as an
 * override, shown as one, and never becomes a floor: when it is cleared
 * (TierOverrideCleared, reason "override_ended") or expires (the review
 * scheduler, reason "override_expired"), the member goes to what its
 * spend reaches, lower or higher. Spend that reaches a higher level moves
 * the member up meanwhile and ends the override.
 * TierOverrideSet kind "invitation": the way into an invitation-only
 * level (reason "invitation"); not reviewed, not moved down by spend.
 * ReferralCounted: one successful referral of the member, counted once
 * per referral_id; enough of them reach a level (reason "referrals").
 * MemberRegistered: when the member joined, for levels reached by years
 * of membership (review_apply.c, kind "anniversary"). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "tiering.h"

typedef Tessera__Tiering__V1__TierOverrideSet TierOverrideSet;

const struct tier_level *tiering_level_named(const struct tiering_ladder *ld, const char *name)
{
    for (size_t i = 0; i < ld->count; i++)
        if (strcmp(ld->levels[i].name, name) == 0)
            return &ld->levels[i];
    return NULL;
}

void tiering_requalify(struct tiering_ctx *t, struct pipeline_batch *b,
                       const struct tiering_purchase *f, struct tiering_member *m,
                       const char *reason)
{
    const struct tiering_ladder *ld = tiering_ladder_find(t, m->tenant_id, false);
    assert(ld);
    tiering_change_tier(t, b, f, m, tier_qualify(ld->levels, ld->count, &m->spend, NULL), reason);
}

static bool is_member_command(const Envelope *e)
{
    if (!e || !e->member_id[0])
        return false;
    switch (e->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_OVERRIDE_SET:
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_OVERRIDE_CLEARED:
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFERRAL_COUNTED:
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_REGISTERED:
        return true;
    default:
        return false;
    }
}

static void apply_set(struct tiering_ctx *t, struct pipeline_batch *b, const Envelope *e,
                      struct tiering_member *m, const struct tiering_ladder *ld)
{
    const TierOverrideSet *o = e->tier_override_set;
    struct tiering_purchase cause = {.env = e, .kind = "override", .command_id = o->override_id};
    const struct tier_level *l = tiering_level_named(ld, o->tier);
    if (!l) { /* ingest checked the ladder in force; it changed since */
        tiering_add_note(t, &cause, m, "override_refused", "the level is not in the ladder");
        return;
    }
    bool invitation = strcmp(o->kind, "invitation") == 0;
    tiering_change_tier(t, b, &cause, m, l, invitation ? "invitation" : "override");
    snprintf(m->override_reason, sizeof(m->override_reason), "%s", o->reason);
    snprintf(m->override_by, sizeof(m->override_by), "%s", o->by);
    m->override_expires_us = invitation ? 0 : o->expires_at_us;
}

/* A referral counted for the first time (member_referrals); 1, 0 when seen
 * before, -1 on error. */
static int count_referral(PGconn *pg, const Envelope *e, char *err, size_t err_len)
{
    char at[32];
    event_format_time(e->occurred_at_us, at);
    const char *p[4] = {e->tenant_id, e->member_id, e->referral_counted->referee_member_id, at};
    PGresult *res = db_query(pg,
                             "INSERT INTO member_referrals (tenant_id, member_id, referral_id, "
                             "occurred_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING "
                             "RETURNING 1",
                             4, p, err, err_len, NULL);
    if (!res)
        return -1;
    int n = PQntuples(res) > 0;
    PQclear(res);
    return n;
}

/* When the member registered: its years of membership count from then
 * (the review scheduler looks at each anniversary). */
static int remember_registration(PGconn *pg, const Envelope *e, char *err, size_t err_len)
{
    char at[32];
    event_format_time(e->occurred_at_us, at);
    const char *p[3] = {e->tenant_id, e->member_id, at};
    PGresult *res = db_query(pg,
                             "INSERT INTO memberships (tenant_id, member_id, registered_at) "
                             "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                             3, p, err, err_len, NULL);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

static int apply_one(struct tiering_ctx *t, PGconn *pg, struct pipeline_batch *b, const Envelope *e,
                     char *err, size_t err_len)
{
    struct tiering_member *m = tiering_member_find(t, e->tenant_id, e->member_id, false);
    const struct tiering_ladder *ld = tiering_ladder_find(t, e->tenant_id, false);
    assert(m && ld);
    if (e->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_OVERRIDE_SET) {
        apply_set(t, b, e, m, ld);
        return 0;
    }
    if (e->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_OVERRIDE_CLEARED) {
        struct tiering_purchase cause = {
            .env = e, .kind = "override", .command_id = e->tier_override_cleared->override_id};
        if (m->has_tier && !m->held_by_spend)
            tiering_requalify(t, b, &cause, m, "override_ended");
        return 0;
    }
    if (e->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_REGISTERED)
        return remember_registration(pg, e, err, err_len);
    int counted = count_referral(pg, e, err, err_len);
    if (counted <= 0)
        return counted;
    m->referrals++;
    const struct tier_level *q = tier_by_referrals(ld->levels, ld->count, m->referrals);
    struct tiering_purchase cause = {
        .env = e, .kind = "referral", .command_id = e->referral_counted->referee_member_id};
    if (tier_is_upgrade(m->has_tier, m->tier.rank, q))
        tiering_change_tier(t, b, &cause, m, q, "referrals");
    return 0;
}

int tiering_apply_member_commands(struct tiering_ctx *t, PGconn *pg, struct pipeline_batch *b,
                                  Envelope **envs, char *err, size_t err_len)
{
    size_t n = 0;
    for (size_t i = 0; i < b->count; i++)
        if (is_member_command(envs[i])) {
            tiering_member_find(t, envs[i]->tenant_id, envs[i]->member_id, true);
            tiering_ladder_find(t, envs[i]->tenant_id, true);
            n++;
        }
    if (n == 0)
        return 0;
    if (tiering_store_load_ladders(pg, t, err, err_len) < 0 ||
        tiering_store_load_members(pg, t, err, err_len) < 0)
        return -1;
    for (size_t i = 0; i < b->count; i++)
        if (is_member_command(envs[i]) && apply_one(t, pg, b, envs[i], err, err_len) < 0)
            return -1;
    return tiering_flush_phase(t, pg, err, err_len);
}
