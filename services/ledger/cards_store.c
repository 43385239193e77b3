/* Card rows in PostgreSQL: the batch loads the products, limits and cards
 * its commands need in a fixed number of statements and writes the
 * changed ones back through unnest(). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cards_internal.h"
#include <jansson.h>

#include "coupons.h"

/* ------------------------------------------------------- loading */

/* branch_ids come as a JSON array (array_to_json), which needs no
 * hand-written parser of PostgreSQL's array syntax. */
static void branches_from_json(struct branches *b, const char *text)
{
    b->count = 0;
    json_t *arr = json_loads(text, 0, NULL);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (b->count < CARD_BRANCHES_MAX && json_is_string(v))
            cards_copy_id(b->ids[b->count++], json_string_value(v));
    }
    json_decref(arr);
}

static void recent_from_json(struct card_state *st, const char *text)
{
    st->recent_count = 0;
    json_t *arr = json_loads(text, 0, NULL);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (st->recent_count < CARD_RECENT_USES_MAX && json_is_integer(v))
            st->recent_uses_us[st->recent_count++] = json_integer_value(v);
    }
    json_decref(arr);
}

static int load_products(PGconn *pg, struct ledger_cards *c, char *err, size_t err_len)
{
    struct db_array t, id;
    db_array_init(&t), db_array_init(&id);
    for (size_t i = 0; i < c->product_count; i++) {
        db_array_add(&t, c->products[i].tenant_id);
        db_array_add(&id, c->products[i].product_id);
    }
    const char *p[2] = {db_array_finish(&t), db_array_finish(&id)};
    PGresult *res = db_query(
        pg,
        "SELECT p.tenant_id, p.product_id, p.kind, p.name, p.price, p.uses, p.validity_days, "
        "array_to_json(p.branch_ids)::text, p.freeze_days_max, p.discount_bp "
        "FROM card_products p JOIN unnest($1::text[], $2::text[]) AS k(t, id) "
        "ON p.tenant_id = k.t AND p.product_id = k.id",
        2, p, err, err_len, NULL);
    db_array_free(&t), db_array_free(&id);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        struct product *pr =
            cards_product_find(c, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), false);
        if (!pr)
            continue;
        pr->found = true;
        pr->terms = (struct card_terms){.kind = rules_card_kind(PQgetvalue(res, i, 2)),
                                        .uses = db_int_at(res, i, 5),
                                        .validity_days = db_int_at(res, i, 6),
                                        .freeze_days_max = db_int_at(res, i, 8)};
        snprintf(pr->name, sizeof(pr->name), "%s", PQgetvalue(res, i, 3));
        pr->price = db_int_at(res, i, 4);
        pr->discount_bp = db_int_at(res, i, 9);
        branches_from_json(&pr->branches, PQgetvalue(res, i, 7));
    }
    PQclear(res);
    return 0;
}

static int load_limits(PGconn *pg, struct ledger_cards *c, char *err, size_t err_len)
{
    struct db_array t;
    db_array_init(&t);
    for (size_t i = 0; i < c->limit_count; i++)
        db_array_add(&t, c->limits[i].tenant_id);
    const char *p[1] = {db_array_finish(&t)};
    PGresult *res = db_query(pg,
                             "SELECT tenant_id, daily_uses_max, prepaid_days_max, "
                             "prepaid_uses_max, burst_uses, burst_window_s, far_branch_window_s, "
                             "first_day_topup_spend_max "
                             "FROM card_limits WHERE tenant_id = ANY($1::text[])",
                             1, p, err, err_len, NULL);
    db_array_free(&t);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        struct tenant_limits *tl = cards_limits_find(c, PQgetvalue(res, i, 0));
        tl->lim = (struct card_limits){.daily_uses_max = db_int_at(res, i, 1),
                                       .prepaid_days_max = db_int_at(res, i, 2),
                                       .prepaid_uses_max = db_int_at(res, i, 3),
                                       .burst_uses = db_int_at(res, i, 4),
                                       .burst_window_s = db_int_at(res, i, 5),
                                       .far_branch_window_s = db_int_at(res, i, 6),
                                       .first_day_topup_spend_max = db_int_at(res, i, 7)};
    }
    PQclear(res);
    return 0;
}

static void card_from_row(struct card *k, const PGresult *res, int i)
{
    k->found = true;
    cards_copy_id(k->member_id, PQgetvalue(res, i, 2));
    cards_copy_id(k->product_id, PQgetvalue(res, i, 3));
    k->st.kind = rules_card_kind(PQgetvalue(res, i, 4));
    k->price = db_int_at(res, i, 5);
    k->st.uses_left = db_int_at(res, i, 6);
    k->st.valid_from_us = db_int_at(res, i, 7);
    k->st.valid_to_us = db_int_at(res, i, 8);
    k->st.frozen_until_us = db_int_at(res, i, 9);
    k->st.freeze_days_left = db_int_at(res, i, 10);
    k->discount_bp = db_int_at(res, i, 11);
    branches_from_json(&k->branches, PQgetvalue(res, i, 12));
    k->st.use_day = db_int_at(res, i, 13);
    k->st.uses_on_day = db_int_at(res, i, 14);
    recent_from_json(&k->st, PQgetvalue(res, i, 15));
    cards_copy_id(k->last_branch, PQgetvalue(res, i, 16));
    cards_copy_id(k->sold_branch, PQgetvalue(res, i, 17));
    k->version = db_int_at(res, i, 18);
    k->paid_total = db_int_at(res, i, 19);
    k->uses_total = db_int_at(res, i, 20);
}

static int load_cards(PGconn *pg, struct ledger_cards *c, char *err, size_t err_len)
{
    if (c->card_count == 0)
        return 0;
    struct db_array t, id;
    db_array_init(&t), db_array_init(&id);
    for (size_t i = 0; i < c->card_count; i++) {
        db_array_add(&t, c->cards[i].tenant_id);
        db_array_add(&id, c->cards[i].card_id);
    }
    const char *p[2] = {db_array_finish(&t), db_array_finish(&id)};
    PGresult *res = db_query(
        pg,
        "SELECT c.tenant_id, c.card_id, c.member_id, c.product_id, c.kind, c.price, "
        "c.uses_left, c.valid_from_us, c.valid_to_us, c.frozen_until_us, c.freeze_days_left, "
        "c.discount_bp, array_to_json(c.branch_ids)::text, c.use_day, c.uses_on_day, "
        "array_to_json(c.recent_uses_us)::text, coalesce(c.last_branch_id, ''), "
        "c.sold_branch_id, c.version, c.paid_total, c.uses_total "
        "FROM cards c JOIN unnest($1::text[], $2::text[]) AS k(t, id) "
        "ON c.tenant_id = k.t AND c.card_id = k.id",
        2, p, err, err_len, NULL);
    db_array_free(&t), db_array_free(&id);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        struct card *k = cards_card_find(c, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), false);
        if (k)
            card_from_row(k, res, i);
    }
    PQclear(res);
    return 0;
}

int cards_load_wanted(PGconn *pg, struct ledger_cards *c, char *err, size_t err_len)
{
    if (c->wanted_count == 0)
        return 0;
    struct db_array t, m, p;
    db_array_init(&t), db_array_init(&m), db_array_init(&p);
    for (size_t i = 0; i < c->wanted_count; i++) {
        db_array_add(&t, c->wanted[i].tenant_id);
        db_array_add(&m, c->wanted[i].member_id);
        db_array_add(&p, c->wanted[i].product_id);
    }
    const char *params[3] = {db_array_finish(&t), db_array_finish(&m), db_array_finish(&p)};
    /* cards_member_idx finds a member's cards; a member holds few */
    PGresult *res = db_query(pg,
                             "SELECT c.tenant_id, c.card_id FROM cards c "
                             "JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(t, m, p) "
                             "ON c.tenant_id = k.t AND c.member_id = k.m AND c.product_id = k.p",
                             3, params, err, err_len, NULL);
    db_array_free(&t), db_array_free(&m), db_array_free(&p);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++)
        cards_card_find(c, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), true);
    PQclear(res);
    return 0;
}

int cards_load(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    struct ledger_cards *c = l->cards;
    /* each statement only when the batch needs it: most batches hold no
     * card command at all */
    if (coupons_load(pg, c->coupons, err, err_len) < 0 ||
        (c->product_count && load_products(pg, c, err, err_len) < 0) ||
        (c->limit_count && load_limits(pg, c, err, err_len) < 0) ||
        cards_load_wanted(pg, c, err, err_len) < 0 || load_cards(pg, c, err, err_len) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------- writing */
/* A set of branch ids as one PostgreSQL array literal, itself an element
 * of the outer text[] parameter (cast back with ::text[] per row). */
static void add_branches(struct db_array *outer, const struct branches *b)
{
    struct db_array inner;
    db_array_init(&inner);
    for (size_t i = 0; i < b->count; i++)
        db_array_add(&inner, b->ids[i]);
    db_array_add(outer, db_array_finish(&inner));
    db_array_free(&inner);
}

static int write_products(PGconn *pg, struct ledger_cards *c, char *err, size_t err_len)
{
    struct db_array a[11];
    for (int i = 0; i < 11; i++)
        db_array_init(&a[i]);
    for (size_t i = 0; i < c->product_count; i++) {
        const struct product *p = &c->products[i];
        if (!p->dirty)
            continue;
        db_array_add(&a[0], p->tenant_id);
        db_array_add(&a[1], p->product_id);
        db_array_add(&a[2], rules_card_kind_name(p->terms.kind));
        db_array_add(&a[3], p->name);
        db_array_add_int(&a[4], p->price);
        db_array_add_int(&a[5], p->terms.uses);
        db_array_add_int(&a[6], p->terms.validity_days);
        add_branches(&a[7], &p->branches);
        db_array_add_int(&a[8], p->terms.freeze_days_max);
        db_array_add_int(&a[9], p->discount_bp);
        db_array_add(&a[10], p->defined_by);
    }
    return db_write_columns(
        pg,
        "INSERT INTO card_products (tenant_id, product_id, kind, name, price, uses, "
        "validity_days, branch_ids, freeze_days_max, discount_bp, defined_by) "
        "SELECT t, id, k, n, pr, u, v, b::text[], f, d, by FROM unnest($1::text[], "
        "$2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], "
        "$8::text[], $9::bigint[], $10::bigint[], $11::text[]) "
        "AS x(t, id, k, n, pr, u, v, b, f, d, by) "
        "ON CONFLICT (tenant_id, product_id) DO UPDATE SET kind = EXCLUDED.kind, "
        "name = EXCLUDED.name, price = EXCLUDED.price, uses = EXCLUDED.uses, "
        "validity_days = EXCLUDED.validity_days, branch_ids = EXCLUDED.branch_ids, "
        "freeze_days_max = EXCLUDED.freeze_days_max, "
        "discount_bp = EXCLUDED.discount_bp, defined_by = EXCLUDED.defined_by, "
        "updated_at = now()",
        a, 11, err, err_len);
}

static int write_limits(PGconn *pg, struct ledger_cards *c, char *err, size_t err_len)
{
    struct db_array a[8];
    for (int i = 0; i < 8; i++)
        db_array_init(&a[i]);
    for (size_t i = 0; i < c->limit_count; i++) {
        const struct tenant_limits *t = &c->limits[i];
        if (!t->dirty)
            continue;
        db_array_add(&a[0], t->tenant_id);
        db_array_add_int(&a[1], t->lim.daily_uses_max);
        db_array_add_int(&a[2], t->lim.prepaid_days_max);
        db_array_add_int(&a[3], t->lim.prepaid_uses_max);
        db_array_add_int(&a[4], t->lim.burst_uses);
        db_array_add_int(&a[5], t->lim.burst_window_s);
        db_array_add_int(&a[6], t->lim.far_branch_window_s);
        db_array_add_int(&a[7], t->lim.first_day_topup_spend_max);
    }
    return db_write_columns(
        pg,
        "INSERT INTO card_limits (tenant_id, daily_uses_max, prepaid_days_max, "
        "prepaid_uses_max, burst_uses, burst_window_s, far_branch_window_s, "
        "first_day_topup_spend_max) "
        "SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], "
        "$5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[]) "
        "ON CONFLICT (tenant_id) DO UPDATE SET "
        "daily_uses_max = EXCLUDED.daily_uses_max, "
        "prepaid_days_max = EXCLUDED.prepaid_days_max, "
        "prepaid_uses_max = EXCLUDED.prepaid_uses_max, "
        "burst_uses = EXCLUDED.burst_uses, burst_window_s = EXCLUDED.burst_window_s, "
        "far_branch_window_s = EXCLUDED.far_branch_window_s, "
        "first_day_topup_spend_max = EXCLUDED.first_day_topup_spend_max, "
        "updated_at = now()",
        a, 8, err, err_len);
}

enum card_col {
    CC_TENANT,
    CC_ID,
    CC_MEMBER,
    CC_PRODUCT,
    CC_KIND,
    CC_PRICE,
    CC_USES,
    CC_FROM,
    CC_TO,
    CC_FROZEN,
    CC_FREEZE_LEFT,
    CC_DISCOUNT,
    CC_BRANCHES,
    CC_DAY,
    CC_ON_DAY,
    CC_RECENT,
    CC_LAST_BRANCH,
    CC_SOLD_BRANCH,
    CC_VERSION,
    CC_PAID_TOTAL,
    CC_USES_TOTAL,
    CC_COUNT
};

static void add_card_row(struct db_array *a, const struct card *k)
{
    db_array_add(&a[CC_TENANT], k->tenant_id);
    db_array_add(&a[CC_ID], k->card_id);
    db_array_add(&a[CC_MEMBER], k->member_id);
    db_array_add(&a[CC_PRODUCT], k->product_id);
    db_array_add(&a[CC_KIND], rules_card_kind_name(k->st.kind));
    db_array_add_int(&a[CC_PRICE], k->price);
    db_array_add_int(&a[CC_USES], k->st.uses_left);
    db_array_add_int(&a[CC_FROM], k->st.valid_from_us);
    db_array_add_int(&a[CC_TO], k->st.valid_to_us);
    db_array_add_int(&a[CC_FROZEN], k->st.frozen_until_us);
    db_array_add_int(&a[CC_FREEZE_LEFT], k->st.freeze_days_left);
    db_array_add_int(&a[CC_DISCOUNT], k->discount_bp);
    add_branches(&a[CC_BRANCHES], &k->branches);
    db_array_add_int(&a[CC_DAY], k->st.use_day);
    db_array_add_int(&a[CC_ON_DAY], k->st.uses_on_day);
    char recent[CARD_RECENT_USES_MAX * 21 + 3] = "{";
    size_t len = 1;
    for (int i = 0; i < k->st.recent_count; i++)
        len += (size_t)snprintf(recent + len, sizeof(recent) - len, "%s%lld", i ? "," : "",
                                (long long)k->st.recent_uses_us[i]);
    snprintf(recent + len, sizeof(recent) - len, "}");
    db_array_add(&a[CC_RECENT], recent);
    db_array_add(&a[CC_LAST_BRANCH], k->last_branch[0] ? k->last_branch : NULL);
    db_array_add(&a[CC_SOLD_BRANCH], k->sold_branch);
    db_array_add_int(&a[CC_VERSION], k->version);
    db_array_add_int(&a[CC_PAID_TOTAL], k->paid_total);
    db_array_add_int(&a[CC_USES_TOTAL], k->uses_total);
}

static int write_cards(PGconn *pg, struct ledger_cards *c, char *err, size_t err_len)
{
    struct db_array a[CC_COUNT];
    for (int i = 0; i < CC_COUNT; i++)
        db_array_init(&a[i]);
    for (size_t i = 0; i < c->card_count; i++)
        if (c->cards[i].dirty)
            add_card_row(a, &c->cards[i]);
    return db_write_columns(
        pg,
        "INSERT INTO cards (tenant_id, card_id, member_id, product_id, kind, price, "
        "uses_left, valid_from_us, valid_to_us, frozen_until_us, freeze_days_left, "
        "discount_bp, branch_ids, use_day, uses_on_day, recent_uses_us, "
        "last_branch_id, sold_branch_id, version, paid_total, uses_total) "
        "SELECT t, id, m, p, k, pr, u, vf, vt, fz, fl, d, b::text[], dy, od, "
        "r::bigint[], lb, sb, v, pt, ut FROM unnest($1::text[], $2::text[], $3::text[], "
        "$4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], "
        "$9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[], "
        "$14::bigint[], $15::bigint[], $16::text[], $17::text[], $18::text[], "
        "$19::bigint[], $20::bigint[], $21::bigint[]) AS x(t, id, m, p, k, pr, u, vf, "
        "vt, fz, fl, d, b, dy, od, r, lb, sb, v, pt, ut) "
        "ON CONFLICT (tenant_id, card_id) DO UPDATE SET "
        "uses_left = EXCLUDED.uses_left, valid_to_us = EXCLUDED.valid_to_us, "
        "frozen_until_us = EXCLUDED.frozen_until_us, "
        "freeze_days_left = EXCLUDED.freeze_days_left, use_day = EXCLUDED.use_day, "
        "uses_on_day = EXCLUDED.uses_on_day, recent_uses_us = EXCLUDED.recent_uses_us, "
        "last_branch_id = EXCLUDED.last_branch_id, version = EXCLUDED.version, "
        "price = EXCLUDED.price, paid_total = EXCLUDED.paid_total, "
        "uses_total = EXCLUDED.uses_total, updated_at = now()",
        a, CC_COUNT, err, err_len);
}

int cards_write(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    struct ledger_cards *c = l->cards;
    if (write_products(pg, c, err, err_len) < 0 || write_limits(pg, c, err, err_len) < 0 ||
        write_cards(pg, c, err, err_len) < 0 || coupons_write(pg, c->coupons, err, err_len) < 0 ||
        cards_cache_reload(pg, c, err, err_len) < 0)
        return -1;
    return 0;
}
