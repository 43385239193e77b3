/* TierLadderChanged (member-events, keyed by tenant): an admin replaced
 * the tenant's ladder through ingest (PUT /v1/config/tiers). Tiering
 * stores it as the tenant's next version (tier_ladders, which ingest's
 * answer polls through read_tier_ladders), replaces the tenant's levels
 * and policy, and re-evaluates every member of the tenant under it, in
 * the batch's transaction: a member whose spend now reaches a higher
 * level moves up at once (reason "ladder_change"); one below the level
 * held keeps it until the review (period end), as with any downgrade.
 * A redelivered change (same change_id) is stored once and changes
 * nothing. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "tiering.h"

typedef Tessera__Tiering__V1__TierLevelConfig TierLevelConfig;

/* The next version of the tenant's ladder; 0 when this change was stored
 * before (a redelivery), -1 on error. */
static int64_t store_version(PGconn *pg, const Envelope *e, char *err, size_t err_len)
{
    const TierLadderChanged *c = e->tier_ladder_changed;
    char at[32];
    event_format_time(e->occurred_at_us, at);
    const char *p[4] = {e->tenant_id, c->change_id, at, c->config_json};
    PGresult *res =
        db_query(pg,
                 "INSERT INTO tier_ladders (tenant_id, version, change_id, effective_from, config) "
                 "SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4::jsonb FROM tier_ladders "
                 "WHERE tenant_id = $1 ON CONFLICT DO NOTHING RETURNING version",
                 4, p, err, err_len, NULL);
    if (!res)
        return -1;
    int64_t v = PQntuples(res) > 0 ? db_int_at(res, 0, 0) : 0;
    PQclear(res);
    return v;
}

static void add_text_array(struct db_array *a, char **items, size_t n)
{
    struct db_array inner;
    db_array_init(&inner);
    for (size_t i = 0; i < n; i++)
        db_array_add(&inner, items[i]);
    db_array_add(a, db_array_finish(&inner));
    db_array_free(&inner);
}

static int64_t or_null(struct db_array *a, int64_t v)
{
    if (v < 0)
        db_array_add(a, NULL);
    else
        db_array_add_int(a, v);
    return v;
}

/* Replaces the tenant's levels and policy with the change's. */
static int store_levels(PGconn *pg, const Envelope *e, char *err, size_t err_len)
{
    const TierLadderChanged *c = e->tier_ladder_changed;
    const char *tp[1] = {e->tenant_id};
    PGresult *res =
        db_query(pg, "DELETE FROM tier_levels WHERE tenant_id = $1", 1, tp, err, err_len, NULL);
    if (!res)
        return -1;
    PQclear(res);
    enum { T, RK, N, L, Y, R, INV, D, MU, BG, PB, EN, SK, RF, MY, COLS };
    struct db_array a[COLS];
    for (int i = 0; i < COLS; i++)
        db_array_init(&a[i]);
    for (size_t i = 0; i < c->n_levels; i++) {
        const TierLevelConfig *l = c->levels[i];
        db_array_add(&a[T], e->tenant_id);
        db_array_add_int(&a[RK], l->rank);
        db_array_add(&a[N], l->name);
        or_null(&a[L], l->min_lifetime_spend);
        or_null(&a[Y], l->min_calendar_year_spend);
        or_null(&a[R], l->min_rolling_12_months_spend);
        db_array_add(&a[INV], l->invitation_only ? "t" : "f");
        db_array_add_int(&a[D], l->discount_bp);
        db_array_add_int(&a[MU], l->points_multiplier_bp);
        db_array_add_int(&a[BG], l->birthday_gift_points);
        db_array_add(&a[PB], l->priority_booking ? "t" : "f");
        add_text_array(&a[EN], l->entitlements, l->n_entitlements);
        add_text_array(&a[SK], l->upgrade_skus, l->n_upgrade_skus);
        db_array_add_int(&a[RF], l->referrals_required);
        db_array_add_int(&a[MY], l->membership_years);
    }
    /* clang-format off */
    if (db_write_columns(pg,
        "INSERT INTO tier_levels (tenant_id, rank, name, min_cumulative_spend, min_annual_spend, "
        "min_rolling_spend, invitation_only, discount_bp, points_multiplier_bp, "
        "birthday_gift_points, priority_booking, entitlements, upgrade_skus, referrals_required, "
        "membership_years) SELECT k.t, k.rk, k.n, k.l, k.y, k.r, k.inv, k.d, k.mu, k.bg, k.pb, "
        "k.en::text[], k.sk::text[], k.rf, k.my FROM unnest($1::text[], $2::int[], $3::text[], "
        "$4::bigint[], $5::bigint[], $6::bigint[], $7::boolean[], $8::int[], $9::int[], "
        "$10::bigint[], $11::boolean[], $12::text[], $13::text[], $14::int[], $15::int[]) "
        "AS k(t, rk, n, l, y, r, inv, d, mu, bg, pb, en, sk, rf, my)",
        a, COLS, err, err_len) < 0)
        return -1;
    /* clang-format on */
    char months[16], grace[16], warn[16], offset[16];
    snprintf(months, sizeof(months), "%d", c->review_months);
    snprintf(grace, sizeof(grace), "%d", c->grace_days);
    snprintf(warn, sizeof(warn), "%d", c->warning_days);
    snprintf(offset, sizeof(offset), "%d", c->utc_offset_minutes);
    const char *p[8] = {e->tenant_id,
                        offset,
                        c->count_card_sales ? "t" : "f",
                        c->count_subscription_sales ? "t" : "f",
                        c->refund_rule,
                        months,
                        grace,
                        warn};
    res = db_query(pg,
                   "INSERT INTO tier_policies (tenant_id, utc_offset_minutes, count_card_sales, "
                   "count_subscription_sales, refund_rule, review_months, grace_days, "
                   "warning_days) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                   "ON CONFLICT (tenant_id) DO UPDATE SET "
                   "utc_offset_minutes = EXCLUDED.utc_offset_minutes, "
                   "count_card_sales = EXCLUDED.count_card_sales, "
                   "count_subscription_sales = EXCLUDED.count_subscription_sales, "
                   "refund_rule = EXCLUDED.refund_rule, review_months = EXCLUDED.review_months, "
                   "grace_days = EXCLUDED.grace_days, warning_days = EXCLUDED.warning_days",
                   8, p, err, err_len, NULL);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

/* Every member of the tenant under its new ladder: up now when the spend
 * reaches a higher level (the rule tier_is_upgrade, as for a purchase). */
static int reevaluate(PGconn *pg, struct tiering_ctx *t, struct pipeline_batch *b,
                      const Envelope *e, char *err, size_t err_len)
{
    struct tiering_ladder *ld = tiering_ladder_find(t, e->tenant_id, true);
    if (tiering_store_tenant_members(pg, t, e->tenant_id, err, err_len) < 0 ||
        tiering_store_load_ladders(pg, t, err, err_len) < 0 ||
        tiering_store_load_members(pg, t, err, err_len) < 0)
        return -1;
    struct tiering_purchase cause = {.env = e, .kind = "ladder", .command_id = ""};
    for (size_t i = 0; i < t->member_count; i++) {
        struct tiering_member *m = &t->members[i];
        if (strcmp(m->tenant_id, e->tenant_id) != 0)
            continue;
        enum tier_reason why;
        const struct tier_level *q = tier_qualify(ld->levels, ld->count, &m->spend, &why);
        if (tier_is_upgrade(m->has_tier, m->tier.rank, q))
            tiering_change_tier(t, b, &cause, m, q, "ladder_change");
    }
    return 0;
}

int tiering_apply_ladders(struct tiering_ctx *t, PGconn *pg, struct pipeline_batch *b,
                          Envelope **envs, char *err, size_t err_len)
{
    bool any = false;
    for (size_t i = 0; i < b->count; i++) {
        const Envelope *e = envs[i];
        if (!e || e->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_LADDER_CHANGED)
            continue;
        if (!e->tenant_id[0] || !e->tier_ladder_changed->change_id[0] ||
            e->tier_ladder_changed->n_levels > TIER_LEVELS_MAX) {
            pipeline_mark_poison(b, i, "tier ladder change without tenant or change id");
            continue;
        }
        int64_t v = store_version(pg, e, err, err_len);
        if (v < 0)
            return -1;
        if (v == 0)
            continue; /* a redelivery: stored and applied before */
        if (store_levels(pg, e, err, err_len) < 0 || reevaluate(pg, t, b, e, err, err_len) < 0)
            return -1;
        char version[24];
        snprintf(version, sizeof(version), "%lld", (long long)v);
        log_fields(LOG_INFO, "tier ladder changed", "tenant", e->tenant_id, "version", version,
                   "change_id", e->tier_ladder_changed->change_id, NULL);
        any = true;
    }
    if (!any)
        return 0;
    /* Written now, so the facts of this batch load what the ladders did
     * (same transaction). */
    return tiering_flush_phase(t, pg, err, err_len);
}
