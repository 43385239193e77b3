/* The member's current tier for the API: the Redis cache first (tiering
 * writes it after commit), tiering.read_member_tiers when the cache misses or
 * is down. Read only: only tiering writes either. A purchase carries the
 * tier it was taken under in its command (RecordPurchase.tier_*), so the
 * ledger prices it with the tier the POS was quoted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_tier.h"
#include "ingest.h"

json_t *tier_json(const struct member_tier *t)
{
    if (!t->has)
        return json_null();
    return json_pack("{s:s, s:i, s:I, s:I}", "name", t->name, "rank", (int)t->rank, "discount_bp",
                     (json_int_t)t->discount_bp, "points_multiplier_bp",
                     (json_int_t)t->points_multiplier_bp);
}

void tier_from_row(struct member_tier *t, const PGresult *res, int row, int col)
{
    memset(t, 0, sizeof(*t));
    /* no row, or a row with an empty name: tiering says the member holds
     * no tier (it fell below every level and keeps its version) */
    if (PQgetisnull(res, row, col) || PQgetvalue(res, row, col)[0] == '\0')
        return;
    t->has = true;
    snprintf(t->name, sizeof(t->name), "%s", PQgetvalue(res, row, col));
    t->rank = (int32_t)strtol(PQgetvalue(res, row, col + 1), NULL, 10);
    t->discount_bp = strtoll(PQgetvalue(res, row, col + 2), NULL, 10);
    t->points_multiplier_bp = strtoll(PQgetvalue(res, row, col + 3), NULL, 10);
}

void tier_fill_purchase(RecordPurchase *p, const struct member_tier *t)
{
    if (!t || !t->has)
        return; /* 0 and "": no tier */
    p->tier_discount_bp = t->discount_bp;
    p->points_multiplier_bp = t->points_multiplier_bp;
    p->tier = (char *)t->name;
}

static void on_tier_row(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) > 0)
        tier_from_row(&r->tier, res, 0, 0);
    req_continue(r);
}

static void on_cached_tier(void *arg, int status, const struct cache_tier *t)
{
    struct req *r = arg;
    if (status == 1) {
        memset(&r->tier, 0, sizeof(r->tier));
        r->tier.has = t->name[0] != '\0'; /* "": tiering knows the member has none */
        snprintf(r->tier.name, sizeof(r->tier.name), "%s", t->name);
        r->tier.rank = t->rank;
        r->tier.discount_bp = t->discount_bp;
        r->tier.points_multiplier_bp = t->points_multiplier_bp;
        req_continue(r);
        return;
    }
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT name, rank, discount_bp, points_multiplier_bp "
                      "FROM tiering.read_member_tiers WHERE tenant_id = $1 AND member_id = $2",
                      2, p, on_tier_row, r) < 0)
        req_fail_db(r, "queue full");
}

void tier_lookup_then(struct req *r, void (*next)(struct req *r))
{
    req_change_state(r, REQ_TIER);
    memset(&r->tier, 0, sizeof(r->tier));
    r->next = next;
    cache_async_get_tier(r->app->cache, r->caller.tenant_id, r->member_id, on_cached_tier, r);
}
