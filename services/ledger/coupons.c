#include "coupons.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "money/money.h"

#define US_PER_DAY (86400LL * 1000000LL)

struct ledger_coupons {
    struct ledger_coupon *items;
    size_t count, cap;
};

struct ledger_coupons *coupons_new(void)
{
    struct ledger_coupons *c = calloc(1, sizeof(*c));
    assert(c);
    return c;
}

void coupons_free(struct ledger_coupons *c)
{
    if (c)
        free(c->items);
    free(c);
}

void coupons_begin_batch(struct ledger_coupons *c)
{
    c->count = 0;
}

/* Linear: a batch holds at most PIPELINE_BATCH_MAX commands. */
static struct ledger_coupon *find(struct ledger_coupons *c, const char *tenant_id,
                                  const char *coupon_id, bool create)
{
    for (size_t i = 0; i < c->count; i++)
        if (strcmp(c->items[i].coupon_id, coupon_id) == 0 &&
            strcmp(c->items[i].tenant_id, tenant_id) == 0)
            return &c->items[i];
    if (!create)
        return NULL;
    if (c->count == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->items = realloc(c->items, c->cap * sizeof(*c->items));
        assert(c->items);
    }
    struct ledger_coupon *k = &c->items[c->count++];
    memset(k, 0, sizeof(*k));
    snprintf(k->tenant_id, sizeof(k->tenant_id), "%s", tenant_id);
    snprintf(k->coupon_id, sizeof(k->coupon_id), "%s", coupon_id);
    return k;
}

struct ledger_coupon *coupons_get(struct ledger_coupons *c, const char *tenant_id,
                                  const char *coupon_id)
{
    return find(c, tenant_id, coupon_id, false);
}

void coupons_note(struct ledger_coupons *c, const char *tenant_id, const char *coupon_id)
{
    if (coupon_id && coupon_id[0])
        find(c, tenant_id, coupon_id, true);
}

int coupons_load(PGconn *pg, struct ledger_coupons *c, char *err, size_t err_len)
{
    if (c->count == 0)
        return 0;
    struct db_array t, id;
    db_array_init(&t), db_array_init(&id);
    for (size_t i = 0; i < c->count; i++) {
        db_array_add(&t, c->items[i].tenant_id);
        db_array_add(&id, c->items[i].coupon_id);
    }
    const char *p[2] = {db_array_finish(&t), db_array_finish(&id)};
    PGresult *res = db_query(
        pg,
        "SELECT c.tenant_id, c.coupon_id, c.member_id, c.kind, c.name, c.value, c.percent_bp, "
        "c.valid_from_us, c.valid_to_us, coalesce(c.redeemed_by, ''), "
        "coalesce(c.redeemed_at_us, 0), c.discount, c.min_spend, c.free_sku FROM coupons c "
        "JOIN unnest($1::text[], $2::text[]) AS k(t, id) "
        "ON c.tenant_id = k.t AND c.coupon_id = k.id",
        2, p, err, err_len, NULL);
    db_array_free(&t), db_array_free(&id);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        struct ledger_coupon *k = find(c, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), false);
        if (!k)
            continue;
        k->found = true;
        snprintf(k->member_id, sizeof(k->member_id), "%s", PQgetvalue(res, i, 2));
        snprintf(k->name, sizeof(k->name), "%s", PQgetvalue(res, i, 4));
        snprintf(k->redeemed_by, sizeof(k->redeemed_by), "%s", PQgetvalue(res, i, 9));
        k->st = (struct coupon_state){.kind = rules_coupon_kind(PQgetvalue(res, i, 3)),
                                      .value = db_int_at(res, i, 5),
                                      .percent_bp = db_int_at(res, i, 6),
                                      .valid_from_us = db_int_at(res, i, 7),
                                      .valid_to_us = db_int_at(res, i, 8),
                                      .min_spend = db_int_at(res, i, 12),
                                      .redeemed = k->redeemed_by[0] != '\0'};
        snprintf(k->st.free_sku, sizeof(k->st.free_sku), "%s", PQgetvalue(res, i, 13));
        k->redeemed_at_us = db_int_at(res, i, 10);
        k->discount = db_int_at(res, i, 11);
    }
    PQclear(res);
    return 0;
}

int coupons_write(PGconn *pg, struct ledger_coupons *c, char *err, size_t err_len)
{
    enum { T, ID, M, K, N, V, P, VF, VT, RB, RA, D, MS, FS, COLS };
    struct db_array a[COLS];
    for (int i = 0; i < COLS; i++)
        db_array_init(&a[i]);
    for (size_t i = 0; i < c->count; i++) {
        const struct ledger_coupon *k = &c->items[i];
        if (!k->dirty)
            continue;
        db_array_add(&a[T], k->tenant_id);
        db_array_add(&a[ID], k->coupon_id);
        db_array_add(&a[M], k->member_id);
        db_array_add(&a[K], rules_coupon_kind_name(k->st.kind));
        db_array_add(&a[N], k->name);
        db_array_add_int(&a[V], k->st.value);
        db_array_add_int(&a[P], k->st.percent_bp);
        db_array_add_int(&a[VF], k->st.valid_from_us);
        db_array_add_int(&a[VT], k->st.valid_to_us);
        db_array_add(&a[RB], k->redeemed_by[0] ? k->redeemed_by : NULL);
        if (k->redeemed_by[0])
            db_array_add_int(&a[RA], k->redeemed_at_us);
        else
            db_array_add(&a[RA], NULL);
        db_array_add_int(&a[D], k->discount);
        db_array_add_int(&a[MS], k->st.min_spend);
        db_array_add(&a[FS], k->st.free_sku);
    }
    return db_write_columns(
        pg,
        "INSERT INTO coupons (tenant_id, coupon_id, member_id, kind, name, value, "
        "percent_bp, valid_from_us, valid_to_us, redeemed_by, redeemed_at_us, discount, "
        "min_spend, free_sku) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
        "$6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], "
        "$11::bigint[], $12::bigint[], $13::bigint[], $14::text[]) "
        "ON CONFLICT (tenant_id, coupon_id) DO UPDATE SET "
        "redeemed_by = EXCLUDED.redeemed_by, redeemed_at_us = EXCLUDED.redeemed_at_us, "
        "discount = EXCLUDED.discount",
        a, COLS, err, err_len);
}

/* The validity of an IssueCoupon: a fixed window when it names one, else
 * valid_days from now; false when neither is acceptable. */
static bool issue_window(const IssueCoupon *ic, int64_t now_us, int64_t *from, int64_t *to)
{
    if (ic->valid_to_us > 0) {
        *from = ic->valid_from_us > 0 ? ic->valid_from_us : now_us;
        *to = ic->valid_to_us;
        return *to > *from && *to - *from <= COUPON_VALID_DAYS_MAX * US_PER_DAY;
    }
    *from = now_us;
    *to = now_us + ic->valid_days * US_PER_DAY;
    return ic->valid_days > 0 && ic->valid_days <= COUPON_VALID_DAYS_MAX;
}

static bool issue_terms_ok(const IssueCoupon *ic, enum coupon_kind kind)
{
    if (ic->min_spend < 0 || ic->min_spend > MONEY_AMOUNT_MAX ||
        strlen(ic->free_sku) > COUPON_SKU_MAX || strlen(ic->name) > COUPON_NAME_MAX)
        return false;
    switch (kind) {
    case COUPON_VALUE:
        return ic->value > 0 && ic->value <= MONEY_AMOUNT_MAX;
    case COUPON_PERCENT:
        return ic->percent_bp > 0 && ic->percent_bp <= 10000;
    case COUPON_FREE_ITEM:
        return ic->free_sku[0] != '\0';
    default:
        return false;
    }
}

const char *coupons_issue(struct ledger_coupons *c, const Envelope *cmd, struct ledger_coupon **out)
{
    const IssueCoupon *ic = cmd->issue_coupon;
    enum coupon_kind kind = rules_coupon_kind(ic->kind);
    int64_t from = 0, to = 0;
    if (!ic->coupon_id[0] || !issue_terms_ok(ic, kind) ||
        !issue_window(ic, cmd->occurred_at_us, &from, &to))
        return "invalid_command";
    /* noted and loaded like any coupon: an id already issued is refused
     * rather than overwritten */
    struct ledger_coupon *k = find(c, cmd->tenant_id, ic->coupon_id, true);
    if (k->found)
        return "invalid_command";
    snprintf(k->member_id, sizeof(k->member_id), "%s", cmd->member_id);
    snprintf(k->name, sizeof(k->name), "%s", ic->name);
    k->st = (struct coupon_state){.kind = kind,
                                  .value = kind == COUPON_VALUE ? ic->value : 0,
                                  .percent_bp = kind == COUPON_PERCENT ? ic->percent_bp : 0,
                                  .valid_from_us = from,
                                  .valid_to_us = to,
                                  .min_spend = ic->min_spend};
    if (kind == COUPON_FREE_ITEM)
        snprintf(k->st.free_sku, sizeof(k->st.free_sku), "%s", ic->free_sku);
    k->found = k->dirty = true;
    *out = k;
    return NULL;
}

const char *coupons_plan_redeem(struct ledger_coupons *c, const Envelope *cmd,
                                const char *coupon_id, int64_t amount, struct ledger_coupon **out,
                                int64_t *discount)
{
    struct ledger_coupon *k = find(c, cmd->tenant_id, coupon_id, false);
    /* another member's coupon is as unknown as one never issued */
    if (!k || !k->found || strcmp(k->member_id, cmd->member_id) != 0)
        return "coupon_not_found";
    *out = k;
    enum card_result r = rules_coupon_redeem(&k->st, amount, cmd->occurred_at_us, discount);
    return r == CARD_OK ? NULL : rules_card_code(r);
}

void coupons_commit_redeem(struct ledger_coupon *k, const char *command_id, int64_t now_us,
                           int64_t discount)
{
    k->st.redeemed = true;
    snprintf(k->redeemed_by, sizeof(k->redeemed_by), "%s", command_id);
    k->redeemed_at_us = now_us;
    k->discount = discount;
    k->dirty = true;
}
