/* Tiering's database side, inside the batch's transaction: a fixed number
 * of statements per batch whatever its size (arrays through unnest()). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiering.h"

#define CHANGE_COLS 14

static struct db_array *change_col(struct tiering_change_rows *r, int i)
{
    struct db_array *cols[CHANGE_COLS] = {&r->tenant,    &r->member,  &r->version, &r->from_rank,
                                          &r->from_name, &r->to_rank, &r->to_name, &r->reason,
                                          &r->lifetime,  &r->annual,  &r->year,    &r->purchase,
                                          &r->event,     &r->at};
    return cols[i];
}

void tiering_change_rows_init(struct tiering_change_rows *r)
{
    for (int i = 0; i < CHANGE_COLS; i++)
        db_array_init(change_col(r, i));
}

void tiering_change_rows_free(struct tiering_change_rows *r)
{
    for (int i = 0; i < CHANGE_COLS; i++)
        db_array_free(change_col(r, i));
}

/* Marks the batch's facts that a RETURNING (tenant, command id, at) names
 * as counted, the first occurrence in the batch of each; refunds take the
 * time of the purchase they lower. */
static void mark_counted(struct tiering_ctx *t, PGresult *res, bool refunds)
{
    for (int r = 0; r < PQntuples(res); r++) {
        for (size_t i = 0; i < t->purchase_count; i++) {
            struct tiering_purchase *f = &t->purchases[i];
            if (!f->counted && (strcmp(f->kind, "refund") == 0) == refunds &&
                strcmp(f->command_id, PQgetvalue(res, r, 1)) == 0 &&
                strcmp(f->env->tenant_id, PQgetvalue(res, r, 0)) == 0) {
                f->counted = true;
                f->at_us = db_int_at(res, r, 2);
                break;
            }
        }
    }
}

/* Inserts the batch's sales (refunds false) or refunds (true). A fact the
 * ledger's outbox relayed twice (or twice in this batch) is inserted
 * once; RETURNING names the facts seen for the first time. A refund is
 * counted only when the purchase it lowers was (a purchase older than
 * tiering's history never raised the spend), at that purchase's time;
 * refunds go in after sales so a purchase and its refund in one batch
 * find each other. */
static int count_kind(PGconn *pg, struct tiering_ctx *t, bool refunds, char *err, size_t err_len)
{
    enum { T, ID, M, A, AT, K, OF, COLS };
    struct db_array a[COLS];
    for (int i = 0; i < COLS; i++)
        db_array_init(&a[i]);
    for (size_t i = 0; i < t->purchase_count; i++) {
        const struct tiering_purchase *f = &t->purchases[i];
        if ((strcmp(f->kind, "refund") == 0) != refunds)
            continue;
        char at[32];
        event_format_time(f->env->occurred_at_us, at);
        db_array_add(&a[T], f->env->tenant_id);
        db_array_add(&a[ID], f->command_id);
        db_array_add(&a[M], f->env->member_id);
        db_array_add_int(&a[A], f->amount);
        db_array_add(&a[AT], at);
        db_array_add(&a[K], f->kind);
        db_array_add(&a[OF], f->refund_of);
    }
    if (a[T].count == 0) {
        for (int i = 0; i < COLS; i++)
            db_array_free(&a[i]);
        return 0;
    }
    const char *p[COLS];
    for (int i = 0; i < COLS; i++)
        p[i] = db_array_finish(&a[i]);
    /* clang-format off */
    static const char sales_sql[] =
        "INSERT INTO qualifying_purchases (tenant_id, purchase_command_id, member_id, amount, "
        "occurred_at, kind, refund_of) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], "
        "$4::bigint[], $5::timestamptz[], $6::text[], $7::text[]) "
        "ON CONFLICT DO NOTHING RETURNING tenant_id, purchase_command_id, "
        "(extract(epoch FROM occurred_at) * 1000000)::bigint";
    static const char refunds_sql[] =
        "INSERT INTO qualifying_purchases (tenant_id, purchase_command_id, member_id, amount, "
        "occurred_at, kind, refund_of) SELECT k.t, k.id, k.m, k.a, o.occurred_at, k.k, k.of "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[], "
        "$6::text[], $7::text[]) AS k(t, id, m, a, at, k, of) "
        "JOIN qualifying_purchases o ON o.tenant_id = k.t AND o.purchase_command_id = k.of "
        "AND o.member_id = k.m AND o.kind = 'purchase' "
        "ON CONFLICT DO NOTHING RETURNING tenant_id, purchase_command_id, "
        "(extract(epoch FROM occurred_at) * 1000000)::bigint";
    /* clang-format on */
    PGresult *res = db_query(pg, refunds ? refunds_sql : sales_sql, COLS, p, err, err_len, NULL);
    for (int i = 0; i < COLS; i++)
        db_array_free(&a[i]);
    if (!res)
        return -1;
    mark_counted(t, res, refunds);
    PQclear(res);
    return 0;
}

int tiering_store_count(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    if (count_kind(pg, t, false, err, err_len) < 0)
        return -1;
    return count_kind(pg, t, true, err, err_len);
}

/* The batch members' tiers and spend per window before this batch (the
 * windows seen from each tenant's clock reading), from the facts counted
 * so far: sums over qualifying_purchases, so a rolling window moves on
 * with the clock without anyone rewriting a total. */
int tiering_store_load_members(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    enum { T, M, YF, RF, COLS };
    struct db_array a[COLS];
    for (int i = 0; i < COLS; i++)
        db_array_init(&a[i]);
    for (size_t i = 0; i < t->member_count; i++) {
        const struct tiering_ladder *ld = tiering_ladder_find(t, t->members[i].tenant_id, false);
        assert(ld);
        char yf[32], rf[32];
        event_format_time(ld->windows.year_from_us, yf);
        event_format_time(ld->windows.rolling_from_us, rf);
        db_array_add(&a[T], t->members[i].tenant_id);
        db_array_add(&a[M], t->members[i].member_id);
        db_array_add(&a[YF], yf);
        db_array_add(&a[RF], rf);
    }
    const char *p[COLS];
    for (int i = 0; i < COLS; i++)
        p[i] = db_array_finish(&a[i]);
    /* clang-format off */
    PGresult *res = db_query(pg,
        "SELECT k.t, k.m, greatest(coalesce(q.lifetime, 0), 0), greatest(coalesce(q.annual, 0), 0), "
        "greatest(coalesce(q.rolling, 0), 0), coalesce(s.purchases, 0), "
        "coalesce((extract(epoch FROM s.last_purchase_at) * 1000000)::bigint, 0), "
        "mt.rank, mt.name, mt.discount_bp, mt.points_multiplier_bp, mt.version, mt.reason, "
        "coalesce((extract(epoch FROM mt.period_end) * 1000000)::bigint, 0), "
        "coalesce((extract(epoch FROM mt.changed_at) * 1000000)::bigint, 0), "
        "coalesce(mt.override_reason, ''), coalesce(mt.override_by, ''), "
        "coalesce((extract(epoch FROM mt.override_expires_at) * 1000000)::bigint, 0), "
        "(SELECT count(*) FROM member_referrals mr WHERE mr.tenant_id = k.t "
        "AND mr.member_id = k.m), "
        "coalesce((extract(epoch FROM ms.registered_at) * 1000000)::bigint, 0) "
        "FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) "
        "AS k(t, m, yf, rf) "
        "LEFT JOIN LATERAL (SELECT sum(amount) AS lifetime, "
        "sum(amount) FILTER (WHERE occurred_at >= k.yf) AS annual, "
        "sum(amount) FILTER (WHERE occurred_at > k.rf) AS rolling "
        "FROM qualifying_purchases WHERE tenant_id = k.t AND member_id = k.m) q ON true "
        "LEFT JOIN member_spend s ON s.tenant_id = k.t AND s.member_id = k.m "
        "LEFT JOIN member_tiers mt ON mt.tenant_id = k.t AND mt.member_id = k.m "
        "LEFT JOIN memberships ms ON ms.tenant_id = k.t AND ms.member_id = k.m",
        COLS, p, err, err_len, NULL);
    /* clang-format on */
    for (int i = 0; i < COLS; i++)
        db_array_free(&a[i]);
    if (!res)
        return -1;
    for (int r = 0; r < PQntuples(res); r++) {
        struct tiering_member *m =
            tiering_member_find(t, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), false);
        const struct tiering_ladder *ld = tiering_ladder_find(t, PQgetvalue(res, r, 0), false);
        if (!m || !ld)
            continue;
        m->spend = (struct tier_spend){.lifetime = db_int_at(res, r, 2),
                                       .annual = db_int_at(res, r, 3),
                                       .year = ld->windows.year,
                                       .rolling = db_int_at(res, r, 4)};
        m->purchases = db_int_at(res, r, 5);
        m->referrals = db_int_at(res, r, 18);
        m->registered_at_us = db_int_at(res, r, 19);
        snprintf(m->override_reason, sizeof(m->override_reason), "%s", PQgetvalue(res, r, 15));
        snprintf(m->override_by, sizeof(m->override_by), "%s", PQgetvalue(res, r, 16));
        m->override_expires_us = db_int_at(res, r, 17);
        m->last_purchase_at_us = db_int_at(res, r, 6);
        if (!PQgetisnull(res, r, 7)) {
            m->version = db_int_at(res, r, 11);
            snprintf(m->reason_loaded, sizeof(m->reason_loaded), "%s", PQgetvalue(res, r, 12));
            m->reason = NULL; /* reason_loaded (a pointer would not survive array_grow) */
            m->changed_at_us = db_int_at(res, r, 14);
        }
        /* a row with an empty name: the member fell to no tier */
        m->has_tier = !PQgetisnull(res, r, 7) && PQgetvalue(res, r, 8)[0] != '\0';
        m->held_by_spend = true;
        if (m->has_tier) {
            m->tier = (struct tier_level){.rank = (int32_t)db_int_at(res, r, 7),
                                          .discount_bp = db_int_at(res, r, 9),
                                          .points_multiplier_bp = db_int_at(res, r, 10),
                                          .min_cumulative_spend = -1,
                                          .min_annual_spend = -1,
                                          .min_rolling_spend = -1};
            snprintf(m->tier.name, sizeof(m->tier.name), "%s", PQgetvalue(res, r, 8));
            m->held_by_spend = tier_reason_by_spend(PQgetvalue(res, r, 12));
            m->period_end_us = db_int_at(res, r, 13);
        }
    }
    PQclear(res);
    return 0;
}

/* The ladders and policies of the batch's tenants, in one statement: a
 * policy row has a NULL rank. */
int tiering_store_tenant_members(PGconn *pg, struct tiering_ctx *t, const char *tenant_id,
                                 char *err, size_t err_len)
{
    const char *p[1] = {tenant_id};
    PGresult *res = db_query(pg,
                             "SELECT member_id FROM member_spend WHERE tenant_id = $1 UNION "
                             "SELECT member_id FROM member_tiers WHERE tenant_id = $1",
                             1, p, err, err_len, NULL);
    if (!res)
        return -1;
    for (int r = 0; r < PQntuples(res); r++)
        tiering_member_find(t, tenant_id, PQgetvalue(res, r, 0), true);
    PQclear(res);
    return 0;
}

int tiering_store_load_ladders(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    struct db_array tenants;
    db_array_init(&tenants);
    for (size_t i = 0; i < t->ladder_count; i++)
        db_array_add(&tenants, t->ladders[i].tenant_id);
    const char *p[1] = {db_array_finish(&tenants)};
    /* clang-format off */
    PGresult *res = db_query(pg,
        "SELECT tenant_id, rank, name, coalesce(min_cumulative_spend, -1), "
        "coalesce(min_annual_spend, -1), coalesce(min_rolling_spend, -1), invitation_only, "
        "discount_bp, points_multiplier_bp, 0, false, false, '', 0, 0, 0, referrals_required, "
        "array_to_string(upgrade_skus, E'\\x1f'), membership_years FROM tier_levels "
        "WHERE tenant_id = ANY($1::text[]) UNION ALL "
        "SELECT tenant_id, NULL, '', -1, -1, -1, false, 0, 0, utc_offset_minutes, "
        "count_card_sales, count_subscription_sales, refund_rule, review_months, grace_days, "
        "warning_days, 0, '', 0 FROM tier_policies "
        "WHERE tenant_id = ANY($1::text[]) ORDER BY 1, 2",
        1, p, err, err_len, NULL);
    /* clang-format on */
    db_array_free(&tenants);
    if (!res)
        return -1;
    for (size_t i = 0; i < t->ladder_count; i++)
        t->ladders[i].count = 0; /* loaded again after a ladder change */
    for (int r = 0; r < PQntuples(res); r++) {
        struct tiering_ladder *ld = tiering_ladder_find(t, PQgetvalue(res, r, 0), false);
        if (!ld)
            continue;
        if (PQgetisnull(res, r, 1)) {
            ld->utc_offset_minutes = (int32_t)db_int_at(res, r, 9);
            ld->spend_policy.count_card_sales = strcmp(PQgetvalue(res, r, 10), "t") == 0;
            ld->spend_policy.count_subscription_sales = strcmp(PQgetvalue(res, r, 11), "t") == 0;
            if (!tier_refund_rule_parse(PQgetvalue(res, r, 12), &ld->refund_rule))
                ld->refund_rule = TIER_REFUND_AT_REVIEW; /* the column's CHECK allows no other */
            ld->review_months = (int32_t)db_int_at(res, r, 13);
            ld->grace_days = (int32_t)db_int_at(res, r, 14);
            ld->warning_days = (int32_t)db_int_at(res, r, 15);
            tier_windows_at(&ld->windows, ld->windows.now_us, ld->utc_offset_minutes);
            continue;
        }
        if (ld->count == TIER_LEVELS_MAX)
            continue; /* beyond the limit a ladder is cut, highest ranks last */
        struct tier_level *l = &ld->levels[ld->count++];
        *l = (struct tier_level){.rank = (int32_t)db_int_at(res, r, 1),
                                 .min_cumulative_spend = db_int_at(res, r, 3),
                                 .min_annual_spend = db_int_at(res, r, 4),
                                 .min_rolling_spend = db_int_at(res, r, 5),
                                 .invitation_only = strcmp(PQgetvalue(res, r, 6), "t") == 0,
                                 .discount_bp = db_int_at(res, r, 7),
                                 .points_multiplier_bp = db_int_at(res, r, 8),
                                 .referrals_required = (int32_t)db_int_at(res, r, 16),
                                 .membership_years = (int32_t)db_int_at(res, r, 18)};
        snprintf(l->name, sizeof(l->name), "%s", PQgetvalue(res, r, 2));
        snprintf(ld->skus[ld->count - 1], sizeof(ld->skus[0]), "%s", PQgetvalue(res, r, 17));
    }
    PQclear(res);
    return 0;
}

static int write_spend(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    enum { T, M, L, A, Y, P, AT, R, COLS };
    struct db_array a[COLS];
    for (int i = 0; i < COLS; i++)
        db_array_init(&a[i]);
    for (size_t i = 0; i < t->member_count; i++) {
        const struct tiering_member *m = &t->members[i];
        if (!m->spent)
            continue;
        char at[32];
        event_format_time(m->last_purchase_at_us, at);
        db_array_add(&a[T], m->tenant_id);
        db_array_add(&a[M], m->member_id);
        db_array_add_int(&a[L], m->spend.lifetime);
        db_array_add_int(&a[A], m->spend.annual);
        db_array_add_int(&a[Y], m->spend.year);
        db_array_add_int(&a[P], m->purchases);
        db_array_add(&a[AT], m->last_purchase_at_us ? at : NULL);
        db_array_add_int(&a[R], m->spend.rolling);
    }
    /* The batch decided from rows it read in this transaction, and a
     * member's facts have one consumer at a time: absolute values. */
    return db_write_columns(
        pg,
        "INSERT INTO member_spend (tenant_id, member_id, lifetime_spend, annual_spend, "
        "spend_year, purchases, last_purchase_at, rolling_spend) SELECT * FROM unnest("
        "$1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::int[], $6::bigint[], "
        "$7::timestamptz[], $8::bigint[]) ON CONFLICT (tenant_id, member_id) DO UPDATE SET "
        "lifetime_spend = EXCLUDED.lifetime_spend, annual_spend = EXCLUDED.annual_spend, "
        "spend_year = EXCLUDED.spend_year, purchases = EXCLUDED.purchases, "
        "last_purchase_at = EXCLUDED.last_purchase_at, rolling_spend = EXCLUDED.rolling_spend",
        a, COLS, err, err_len);
}

static int write_tiers(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    enum { T, M, RK, N, D, MU, R, V, AT, PE, OR, OB, OE, COLS };
    struct db_array a[COLS];
    for (int i = 0; i < COLS; i++)
        db_array_init(&a[i]);
    for (size_t i = 0; i < t->member_count; i++) {
        const struct tiering_member *m = &t->members[i];
        if (!m->tier_changed)
            continue;
        char at[32];
        event_format_time(m->changed_at_us, at);
        db_array_add(&a[T], m->tenant_id);
        db_array_add(&a[M], m->member_id);
        /* no tier: rank -1, "" (the row keeps the member's version) */
        db_array_add_int(&a[RK], m->has_tier ? m->tier.rank : -1);
        db_array_add(&a[N], m->has_tier ? m->tier.name : "");
        db_array_add_int(&a[D], m->has_tier ? m->tier.discount_bp : 10000);
        db_array_add_int(&a[MU], m->has_tier ? m->tier.points_multiplier_bp : 10000);
        db_array_add(&a[R], m->reason ? m->reason : m->reason_loaded);
        db_array_add_int(&a[V], m->version);
        db_array_add(&a[AT], at);
        char pe[32];
        event_format_time(m->period_end_us, pe);
        db_array_add(&a[PE], m->period_end_us ? pe : NULL);
        char oe[32];
        event_format_time(m->override_expires_us, oe);
        db_array_add(&a[OR], m->override_reason[0] ? m->override_reason : NULL);
        db_array_add(&a[OB], m->override_by[0] ? m->override_by : NULL);
        db_array_add(&a[OE], m->override_expires_us ? oe : NULL);
    }
    return db_write_columns(
        pg,
        "INSERT INTO member_tiers (tenant_id, member_id, rank, name, discount_bp, "
        "points_multiplier_bp, reason, version, changed_at, period_end, override_reason, "
        "override_by, override_expires_at) SELECT * FROM unnest("
        "$1::text[], $2::text[], $3::int[], $4::text[], $5::int[], $6::int[], $7::text[], "
        "$8::bigint[], $9::timestamptz[], $10::timestamptz[], $11::text[], $12::text[], "
        "$13::timestamptz[]) ON CONFLICT (tenant_id, member_id) "
        "DO UPDATE SET rank = EXCLUDED.rank, name = EXCLUDED.name, "
        "discount_bp = EXCLUDED.discount_bp, "
        "points_multiplier_bp = EXCLUDED.points_multiplier_bp, reason = EXCLUDED.reason, "
        "version = EXCLUDED.version, changed_at = EXCLUDED.changed_at, "
        "period_end = EXCLUDED.period_end, override_reason = EXCLUDED.override_reason, "
        "override_by = EXCLUDED.override_by, override_expires_at = EXCLUDED.override_expires_at",
        a, COLS, err, err_len);
}

static int write_changes(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    if (t->changes.tenant.count == 0)
        return 0;
    const char *p[CHANGE_COLS];
    for (int i = 0; i < CHANGE_COLS; i++)
        p[i] = db_array_finish(change_col(&t->changes, i));
    PGresult *res = db_query(
        pg,
        "INSERT INTO tier_changes (tenant_id, member_id, version, from_rank, from_name, "
        "to_rank, to_name, reason, lifetime_spend, annual_spend, spend_year, "
        "purchase_command_id, event_id, occurred_at) SELECT * FROM unnest($1::text[], "
        "$2::text[], $3::bigint[], $4::int[], $5::text[], $6::int[], $7::text[], $8::text[], "
        "$9::bigint[], $10::bigint[], $11::int[], $12::text[], $13::text[], "
        "$14::timestamptz[])",
        CHANGE_COLS, p, err, err_len, NULL);
    int rc = res ? 0 : -1;
    PQclear(res);
    return rc;
}

void tiering_note_rows_init(struct tiering_note_rows *r)
{
    db_array_init(&r->tenant), db_array_init(&r->member), db_array_init(&r->kind);
    db_array_init(&r->detail), db_array_init(&r->event), db_array_init(&r->at);
}

void tiering_note_rows_free(struct tiering_note_rows *r)
{
    db_array_free(&r->tenant), db_array_free(&r->member), db_array_free(&r->kind);
    db_array_free(&r->detail), db_array_free(&r->event), db_array_free(&r->at);
}

/* The notes; a replayed batch writes the same (member, event) again. */
static int write_notes(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    struct tiering_note_rows *n = &t->notes;
    struct db_array cols[6] = {n->tenant, n->member, n->kind, n->detail, n->event, n->at};
    tiering_note_rows_init(n); /* the columns are db_write_columns' to free */
    return db_write_columns(pg,
                            "INSERT INTO tier_notes (tenant_id, member_id, kind, detail, event_id, "
                            "occurred_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], "
                            "$4::text[], $5::text[], $6::timestamptz[]) ON CONFLICT DO NOTHING",
                            cols, 6, err, err_len);
}

int tiering_store_write(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    if (write_spend(pg, t, err, err_len) < 0 || write_tiers(pg, t, err, err_len) < 0 ||
        write_notes(pg, t, err, err_len) < 0)
        return -1;
    return write_changes(pg, t, err, err_len);
}
