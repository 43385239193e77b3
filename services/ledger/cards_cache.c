/* The cards of the members a batch changed, as the cache holds them
 * (cache_sync.c writes them to Redis after commit). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cards_internal.h"
#include "cache/cache.h"
#include "log/log.h"

/* ------------------------------------------------------- the cache */
/* ------------------------------------------------------- the cache */
enum cache_col {
    KC_TENANT,
    KC_MEMBER,
    KC_CARD,
    KC_PRODUCT,
    KC_KIND,
    KC_USES,
    KC_FROM,
    KC_TO,
    KC_FROZEN,
    KC_FREEZE_LEFT,
    KC_DISCOUNT,
    KC_VERSION,
    KC_CREATED,
    KC_COUNT
};

/* One row of load_cache_state into a cache card; false when it does not
 * fit the cache's bounds (the member is then cached as its count alone,
 * which readers take for a miss). */
static bool cache_card_from_row(const PGresult *res, int i, struct cache_card *k)
{
    memset(k, 0, sizeof(*k));
    static const enum cache_col text_cols[] = {KC_CARD, KC_PRODUCT, KC_KIND};
    char *texts[] = {k->card_id, k->product_id, k->kind};
    size_t sizes[] = {sizeof(k->card_id), sizeof(k->product_id), sizeof(k->kind)};
    for (size_t t = 0; t < 3; t++) {
        if ((size_t)PQgetlength(res, i, (int)text_cols[t]) >= sizes[t])
            return false;
        memcpy(texts[t], PQgetvalue(res, i, (int)text_cols[t]),
               (size_t)PQgetlength(res, i, (int)text_cols[t]));
    }
    k->uses_left = db_int_at(res, i, KC_USES);
    k->valid_from_us = db_int_at(res, i, KC_FROM);
    k->valid_to_us = db_int_at(res, i, KC_TO);
    k->frozen_until_us = db_int_at(res, i, KC_FROZEN);
    k->freeze_days_left = db_int_at(res, i, KC_FREEZE_LEFT);
    k->discount_bp = db_int_at(res, i, KC_DISCOUNT);
    k->version = db_int_at(res, i, KC_VERSION);
    k->created_us = db_int_at(res, i, KC_CREATED);
    char value[CACHE_CARD_VALUE_MAX];
    return cache_card_encode(k, value, sizeof(value)) >= 0;
}

/* Every card of the members named by tenants/members (arrays, a member
 * may repeat) as the cache holds them, replacing what c held for the
 * cache. A member past CACHE_CARDS_PER_MEMBER_MAX cards sends one row, for
 * its count. */
int cards_cache_load(PGconn *pg, struct ledger_cards *c, struct db_array *tenants,
                     struct db_array *members, char *err, size_t err_len)
{
    c->cached_member_count = c->cached_count = 0;
    if (tenants->count == 0)
        return 0;
    char limit[24];
    snprintf(limit, sizeof(limit), "%d", CACHE_CARDS_PER_MEMBER_MAX);
    const char *p[3] = {db_array_finish(tenants), db_array_finish(members), limit};
    PGresult *res = db_query(
        pg,
        "SELECT tenant_id, member_id, card_id, product_id, kind, uses_left, valid_from_us, "
        "valid_to_us, frozen_until_us, freeze_days_left, discount_bp, version, created_us, n "
        "FROM (SELECT c.*, (extract(epoch FROM c.created_at) * 1000000)::bigint AS created_us, "
        "count(*) OVER w AS n, row_number() OVER (w ORDER BY c.created_at, c.card_id) AS rn "
        "FROM cards c JOIN (SELECT DISTINCT t, m FROM unnest($1::text[], $2::text[]) AS k(t, m)) "
        "k ON c.tenant_id = k.t AND c.member_id = k.m "
        "WINDOW w AS (PARTITION BY c.tenant_id, c.member_id)) x "
        "WHERE n <= $3::bigint OR rn = 1 ORDER BY tenant_id, member_id, rn",
        3, p, err, err_len, NULL);
    if (!res)
        return -1;
    struct cached_member *cm = NULL;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *tenant = PQgetvalue(res, i, KC_TENANT), *member = PQgetvalue(res, i, KC_MEMBER);
        if (!cm || strcmp(cm->member_id, member) != 0 || strcmp(cm->tenant_id, tenant) != 0) {
            c->cached_members = array_grow(c->cached_members, c->cached_member_count,
                                           &c->cached_member_cap, sizeof(*c->cached_members));
            cm = &c->cached_members[c->cached_member_count++];
            memset(cm, 0, sizeof(*cm));
            cards_copy_id(cm->tenant_id, tenant);
            cards_copy_id(cm->member_id, member);
            cm->card_count = db_int_at(res, i, KC_COUNT);
            cm->first = c->cached_count;
        }
        if (cm->card_count > CACHE_CARDS_PER_MEMBER_MAX || cm->n == SIZE_MAX)
            continue; /* the count alone (see above) */
        c->cached = array_grow(c->cached, c->cached_count, &c->cached_cap, sizeof(*c->cached));
        if (!cache_card_from_row(res, i, &c->cached[c->cached_count])) {
            log_fields(LOG_WARN, "card does not fit the cache; its member is cached as a count",
                       "card_id", PQgetvalue(res, i, KC_CARD), NULL);
            c->cached_count = cm->first; /* drop what this member had */
            cm->n = SIZE_MAX;
            continue;
        }
        c->cached_count++;
        cm->n++;
    }
    PQclear(res);
    return 0;
}

/* Every card of every member whose cards changed in this batch, read
 * back in the batch's transaction: the cache gets each such member's
 * whole set (so a hash refilled after a flush is complete again at the
 * first change) with each card's committed version. */
int cards_cache_reload(PGconn *pg, struct ledger_cards *c, char *err, size_t err_len)
{
    struct db_array t, m;
    db_array_init(&t), db_array_init(&m);
    for (size_t i = 0; i < c->card_count; i++) {
        if (!c->cards[i].dirty)
            continue;
        db_array_add(&t, c->cards[i].tenant_id);
        db_array_add(&m, c->cards[i].member_id);
    }
    int rc = cards_cache_load(pg, c, &t, &m, err, err_len);
    db_array_free(&t), db_array_free(&m);
    return rc;
}

size_t cards_cache_state(struct ledger_cards *c, const struct cache_member_cards **out)
{
    if (c->cached_member_count > c->cache_item_cap) {
        c->cache_item_cap = c->cached_member_count;
        c->cache_items = realloc(c->cache_items, c->cache_item_cap * sizeof(*c->cache_items));
        assert(c->cache_items);
    }
    for (size_t i = 0; i < c->cached_member_count; i++) {
        const struct cached_member *cm = &c->cached_members[i];
        bool whole = cm->n != SIZE_MAX && cm->card_count <= CACHE_CARDS_PER_MEMBER_MAX;
        c->cache_items[i] =
            (struct cache_member_cards){.tenant_id = cm->tenant_id,
                                        .member_id = cm->member_id,
                                        .card_count = cm->card_count,
                                        .cards = whole ? &c->cached[cm->first] : NULL,
                                        .n_cards = whole ? cm->n : 0};
    }
    *out = c->cache_items;
    return c->cached_member_count;
}
