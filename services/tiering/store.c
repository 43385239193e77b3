/* Tiering's database side, inside the batch's transaction: a fixed number
 * of statements per batch whatever its size (arrays through unnest()). */
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

int tiering_store_count(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    struct db_array tenants, ids, members, amounts, times;
    db_array_init(&tenants), db_array_init(&ids), db_array_init(&members);
    db_array_init(&amounts), db_array_init(&times);
    for (size_t i = 0; i < t->purchase_count; i++) {
        const Envelope *e = t->purchases[i].env;
        char at[32];
        event_format_time(e->occurred_at_us, at);
        db_array_add(&tenants, e->tenant_id);
        db_array_add(&ids, e->purchase_recorded->command_id);
        db_array_add(&members, e->member_id);
        db_array_add_int(&amounts, e->purchase_recorded->charged);
        db_array_add(&times, at);
    }
    const char *p[5] = {db_array_finish(&tenants), db_array_finish(&ids), db_array_finish(&members),
                        db_array_finish(&amounts), db_array_finish(&times)};
    /* A fact the ledger's outbox relayed twice (or twice in this batch)
     * is inserted once; RETURNING names the purchases seen for the first
     * time. */
    PGresult *res = db_query(
        pg,
        "INSERT INTO qualifying_purchases (tenant_id, purchase_command_id, member_id, amount, "
        "occurred_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], "
        "$5::timestamptz[]) ON CONFLICT DO NOTHING RETURNING tenant_id, purchase_command_id",
        5, p, err, err_len, NULL);
    db_array_free(&tenants), db_array_free(&ids), db_array_free(&members);
    db_array_free(&amounts), db_array_free(&times);
    if (!res)
        return -1;
    for (int r = 0; r < PQntuples(res); r++) {
        /* the first occurrence in the batch counts */
        for (size_t i = 0; i < t->purchase_count; i++) {
            const Envelope *e = t->purchases[i].env;
            if (!t->purchases[i].counted &&
                strcmp(e->purchase_recorded->command_id, PQgetvalue(res, r, 1)) == 0 &&
                strcmp(e->tenant_id, PQgetvalue(res, r, 0)) == 0) {
                t->purchases[i].counted = true;
                break;
            }
        }
    }
    PQclear(res);
    return 0;
}

static int load_members(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    struct db_array tenants, members;
    db_array_init(&tenants), db_array_init(&members);
    for (size_t i = 0; i < t->member_count; i++) {
        db_array_add(&tenants, t->members[i].tenant_id);
        db_array_add(&members, t->members[i].member_id);
    }
    const char *p[2] = {db_array_finish(&tenants), db_array_finish(&members)};
    PGresult *res =
        db_query(pg,
                 "SELECT k.t, k.m, coalesce(s.lifetime_spend, 0), coalesce(s.annual_spend, 0), "
                 "coalesce(s.spend_year, 0), coalesce(s.purchases, 0), "
                 "coalesce((extract(epoch FROM s.last_purchase_at) * 1000000)::bigint, 0), "
                 "mt.rank, mt.name, mt.discount_bp, mt.points_multiplier_bp, mt.version "
                 "FROM unnest($1::text[], $2::text[]) AS k(t, m) "
                 "LEFT JOIN member_spend s ON s.tenant_id = k.t AND s.member_id = k.m "
                 "LEFT JOIN member_tiers mt ON mt.tenant_id = k.t AND mt.member_id = k.m",
                 2, p, err, err_len, NULL);
    db_array_free(&tenants), db_array_free(&members);
    if (!res)
        return -1;
    for (int r = 0; r < PQntuples(res); r++) {
        struct tiering_member *m =
            tiering_member_find(t, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), false);
        if (!m)
            continue;
        m->spend = (struct tier_spend){.lifetime = db_int_at(res, r, 2),
                                       .annual = db_int_at(res, r, 3),
                                       .year = (int32_t)db_int_at(res, r, 4)};
        m->purchases = db_int_at(res, r, 5);
        m->last_purchase_at_us = db_int_at(res, r, 6);
        m->has_tier = !PQgetisnull(res, r, 7);
        if (m->has_tier) {
            m->tier = (struct tier_level){.rank = (int32_t)db_int_at(res, r, 7),
                                          .discount_bp = db_int_at(res, r, 9),
                                          .points_multiplier_bp = db_int_at(res, r, 10),
                                          .min_annual_spend = -1};
            snprintf(m->tier.name, sizeof(m->tier.name), "%s", PQgetvalue(res, r, 8));
            m->version = db_int_at(res, r, 11);
        }
    }
    PQclear(res);
    return 0;
}

/* The ladders and policies of the batch's tenants, in one statement: a
 * policy row has a NULL rank. */
static int load_ladders(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    struct db_array tenants;
    db_array_init(&tenants);
    for (size_t i = 0; i < t->ladder_count; i++)
        db_array_add(&tenants, t->ladders[i].tenant_id);
    const char *p[1] = {db_array_finish(&tenants)};
    PGresult *res = db_query(
        pg,
        "SELECT tenant_id, rank, name, min_cumulative_spend, coalesce(min_annual_spend, -1), "
        "invitation_only, discount_bp, points_multiplier_bp, 0 FROM tier_levels "
        "WHERE tenant_id = ANY($1::text[]) UNION ALL "
        "SELECT tenant_id, NULL, '', 0, -1, false, 0, 0, utc_offset_minutes FROM tier_policies "
        "WHERE tenant_id = ANY($1::text[]) ORDER BY 1, 2",
        1, p, err, err_len, NULL);
    db_array_free(&tenants);
    if (!res)
        return -1;
    for (int r = 0; r < PQntuples(res); r++) {
        struct tiering_ladder *ld = tiering_ladder_find(t, PQgetvalue(res, r, 0), false);
        if (!ld)
            continue;
        if (PQgetisnull(res, r, 1)) {
            ld->utc_offset_minutes = (int32_t)db_int_at(res, r, 8);
            continue;
        }
        if (ld->count == TIER_LEVELS_MAX)
            continue; /* beyond the limit a ladder is cut, highest ranks last */
        struct tier_level *l = &ld->levels[ld->count++];
        *l = (struct tier_level){.rank = (int32_t)db_int_at(res, r, 1),
                                 .min_cumulative_spend = db_int_at(res, r, 3),
                                 .min_annual_spend = db_int_at(res, r, 4),
                                 .invitation_only = strcmp(PQgetvalue(res, r, 5), "t") == 0,
                                 .discount_bp = db_int_at(res, r, 6),
                                 .points_multiplier_bp = db_int_at(res, r, 7)};
        snprintf(l->name, sizeof(l->name), "%s", PQgetvalue(res, r, 2));
    }
    PQclear(res);
    return 0;
}

int tiering_store_load(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    if (load_members(pg, t, err, err_len) < 0)
        return -1;
    return load_ladders(pg, t, err, err_len);
}

static int write_spend(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    enum { T, M, L, A, Y, P, AT, COLS };
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
        db_array_add(&a[AT], at);
    }
    /* The batch decided from rows it read in this transaction, and a
     * member's facts have one consumer at a time: absolute values. */
    return db_write_columns(
        pg,
        "INSERT INTO member_spend (tenant_id, member_id, lifetime_spend, annual_spend, "
        "spend_year, purchases, last_purchase_at) SELECT * FROM unnest($1::text[], "
        "$2::text[], $3::bigint[], $4::bigint[], $5::int[], $6::bigint[], "
        "$7::timestamptz[]) ON CONFLICT (tenant_id, member_id) DO UPDATE SET "
        "lifetime_spend = EXCLUDED.lifetime_spend, annual_spend = EXCLUDED.annual_spend, "
        "spend_year = EXCLUDED.spend_year, purchases = EXCLUDED.purchases, "
        "last_purchase_at = EXCLUDED.last_purchase_at",
        a, COLS, err, err_len);
}

static int write_tiers(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    enum { T, M, RK, N, D, MU, R, V, AT, COLS };
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
        db_array_add_int(&a[RK], m->tier.rank);
        db_array_add(&a[N], m->tier.name);
        db_array_add_int(&a[D], m->tier.discount_bp);
        db_array_add_int(&a[MU], m->tier.points_multiplier_bp);
        db_array_add(&a[R], m->reason);
        db_array_add_int(&a[V], m->version);
        db_array_add(&a[AT], at);
    }
    return db_write_columns(
        pg,
        "INSERT INTO member_tiers (tenant_id, member_id, rank, name, discount_bp, "
        "points_multiplier_bp, reason, version, changed_at) SELECT * FROM unnest("
        "$1::text[], $2::text[], $3::int[], $4::text[], $5::int[], $6::int[], $7::text[], "
        "$8::bigint[], $9::timestamptz[]) ON CONFLICT (tenant_id, member_id) DO UPDATE SET "
        "rank = EXCLUDED.rank, name = EXCLUDED.name, discount_bp = EXCLUDED.discount_bp, "
        "points_multiplier_bp = EXCLUDED.points_multiplier_bp, reason = EXCLUDED.reason, "
        "version = EXCLUDED.version, changed_at = EXCLUDED.changed_at",
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

int tiering_store_write(PGconn *pg, struct tiering_ctx *t, char *err, size_t err_len)
{
    if (write_spend(pg, t, err, err_len) < 0 || write_tiers(pg, t, err, err_len) < 0)
        return -1;
    return write_changes(pg, t, err, err_len);
}
