/* Card commands in the ledger (see cards.h): tenant products and limits,
 * and each card's life: sold (or renewed), used, frozen. A card sold for
 * money is a prepaid liability: its uses (count cards) or days (every
 * other kind) are journal assets, credited to the member's card account
 * against the selling branch, and a count card's use moves one use to the
 * branch where it was used, so cross-branch settlement reads from the
 * journal like stored value's. */
#include "cards.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "cache/cache.h"
#include "coupons.h"
#include "ids/uuid7.h"
#include "ledger.h"
#include "log/log.h"
#include "money/money.h"

#define ID_MAX       EVENT_ID_FIELD_MAX
#define NAME_MAX_LEN TEXT_NAME_BYTES_MAX
#define ACCOUNT_MAX  400
#define LINES_MAX    6
#define VALIDITY_OVERFLOW_DETAIL                                                                   \
    "the card's validity or uses would pass the most the ledger can hold"

struct branches {
    char ids[CARD_BRANCHES_MAX][ID_MAX];
    size_t count;
};

struct product {
    char tenant_id[ID_MAX], product_id[ID_MAX], name[NAME_MAX_LEN + 1];
    bool found, dirty;
    struct card_terms terms;
    int64_t price, discount_bp;
    struct branches branches;
    char defined_by[ID_MAX];
};

struct tenant_limits {
    char tenant_id[ID_MAX];
    struct card_limits lim;
    bool dirty;
};

struct card {
    char tenant_id[ID_MAX], card_id[ID_MAX], member_id[ID_MAX], product_id[ID_MAX];
    char last_branch[ID_MAX], sold_branch[ID_MAX];
    bool found, dirty;
    struct card_state st;
    int64_t price, discount_bp, version;
    int64_t paid_total, uses_total; /* every sale and renewal: for the unused value */
    struct branches branches;
};

/* A member whose cards changed in the batch, with every card it has as
 * the cache holds them (read back inside the batch's transaction, so what
 * goes to Redis is exactly what commits). */
struct cached_member {
    char tenant_id[ID_MAX], member_id[ID_MAX];
    int64_t card_count;
    size_t first, n; /* in ledger_cards.cached */
};

struct ledger_cards {
    struct product *products;
    size_t product_count, product_cap;
    struct tenant_limits *limits;
    size_t limit_count, limit_cap;
    struct card *cards;
    size_t card_count, card_cap;
    struct ledger_coupons *coupons;
    /* for the cache, after commit (cards_cache_state) */
    struct cached_member *cached_members;
    size_t cached_member_count, cached_member_cap;
    struct cache_card *cached;
    size_t cached_count, cached_cap;
    struct cache_member_cards *cache_items; /* built by cards_cache_state */
    size_t cache_item_cap;
    /* The card a sale or renewal plans before it is paid for (large, so
     * not on the stack). Per worker: each pipeline owns its ledger_cards,
     * and one shared card would let two workers' sales swap cards. */
    struct card planned;
};

struct ledger_cards *cards_new(void)
{
    struct ledger_cards *c = calloc(1, sizeof(*c));
    assert(c);
    c->coupons = coupons_new();
    return c;
}

void cards_free(struct ledger_cards *c)
{
    if (!c)
        return;
    free(c->products);
    free(c->limits);
    free(c->cards);
    free(c->cached_members);
    free(c->cached);
    free(c->cache_items);
    coupons_free(c->coupons);
    free(c);
}

void cards_begin_batch(struct ledger_cards *c)
{
    c->product_count = c->limit_count = c->card_count = 0;
    c->cached_member_count = c->cached_count = 0;
    coupons_begin_batch(c->coupons);
}

static void *grow(void *arr, size_t count, size_t *cap, size_t elem)
{
    if (count < *cap)
        return arr;
    *cap = *cap ? *cap * 2 : 16;
    arr = realloc(arr, *cap * elem);
    assert(arr);
    return arr;
}

/* Ids were checked at the door (ledger_command_text_problem) or come from
 * rows written that way: one that does not fit is a programmer error, not
 * something to cut. */
static void copy_id(char dst[ID_MAX], const char *src)
{
    int n = snprintf(dst, ID_MAX, "%s", src ? src : "");
    assert(n >= 0 && n < ID_MAX);
}

/* ------------------------------------------------------- lookups */
/* Lookups are linear: a batch holds at most PIPELINE_BATCH_MAX commands. */
static struct product *product_find(struct ledger_cards *c, const char *tenant_id,
                                    const char *product_id, bool create)
{
    for (size_t i = 0; i < c->product_count; i++)
        if (strcmp(c->products[i].product_id, product_id) == 0 &&
            strcmp(c->products[i].tenant_id, tenant_id) == 0)
            return &c->products[i];
    if (!create)
        return NULL;
    c->products = grow(c->products, c->product_count, &c->product_cap, sizeof(*c->products));
    struct product *p = &c->products[c->product_count++];
    memset(p, 0, sizeof(*p));
    copy_id(p->tenant_id, tenant_id);
    copy_id(p->product_id, product_id);
    return p;
}

static struct tenant_limits *limits_find(struct ledger_cards *c, const char *tenant_id)
{
    for (size_t i = 0; i < c->limit_count; i++)
        if (strcmp(c->limits[i].tenant_id, tenant_id) == 0)
            return &c->limits[i];
    c->limits = grow(c->limits, c->limit_count, &c->limit_cap, sizeof(*c->limits));
    struct tenant_limits *t = &c->limits[c->limit_count++];
    memset(t, 0, sizeof(*t));
    copy_id(t->tenant_id, tenant_id);
    t->lim = card_limits_default();
    return t;
}

static struct card *card_find(struct ledger_cards *c, const char *tenant_id, const char *card_id,
                              bool create)
{
    for (size_t i = 0; i < c->card_count; i++)
        if (strcmp(c->cards[i].card_id, card_id) == 0 &&
            strcmp(c->cards[i].tenant_id, tenant_id) == 0)
            return &c->cards[i];
    if (!create)
        return NULL;
    c->cards = grow(c->cards, c->card_count, &c->card_cap, sizeof(*c->cards));
    struct card *k = &c->cards[c->card_count++];
    memset(k, 0, sizeof(*k));
    copy_id(k->tenant_id, tenant_id);
    copy_id(k->card_id, card_id);
    return k;
}

static bool branch_allowed(const struct branches *b, const char *branch_id)
{
    if (b->count == 0)
        return true;
    for (size_t i = 0; i < b->count; i++)
        if (strcmp(b->ids[i], branch_id) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------- commands */
const char *cards_command_id(const Envelope *env)
{
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_DEFINE_PRODUCT:
        return env->define_product->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_SET_CARD_LIMITS:
        return env->set_card_limits->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_CARD:
        return env->issue_card->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_USE_CARD:
        return env->use_card->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_FREEZE_CARD:
        return env->freeze_card->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_COUPON:
        return env->issue_coupon->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REDEEM_COUPON:
        return env->redeem_coupon->command_id;
    default:
        return NULL;
    }
}

bool cards_is_tenant_command(const Envelope *env)
{
    return env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_DEFINE_PRODUCT ||
           env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_SET_CARD_LIMITS;
}

static const char *command_type(const Envelope *env)
{
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_DEFINE_PRODUCT:
        return "product_define";
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_SET_CARD_LIMITS:
        return "card_limits";
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_CARD:
        return env->issue_card->renew_card_id[0] ? "card_renew" : "card_issue";
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_USE_CARD:
        return "card_use";
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_COUPON:
        return "coupon_issue";
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REDEEM_COUPON:
        return "coupon_redeem";
    default:
        return "card_freeze";
    }
}

void cards_note(struct ledger_ctx *l, const Envelope *env)
{
    struct ledger_cards *c = l->cards;
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_RECORD_PURCHASE:
        coupons_note(c->coupons, env->tenant_id, env->record_purchase->coupon_id);
        if (env->record_purchase->card_id[0])
            card_find(c, env->tenant_id, env->record_purchase->card_id, true);
        return;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_COUPON:
        coupons_note(c->coupons, env->tenant_id, env->issue_coupon->coupon_id);
        return;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REDEEM_COUPON:
        coupons_note(c->coupons, env->tenant_id, env->redeem_coupon->coupon_id);
        return;
    default:
        break;
    }
    if (!cards_command_id(env))
        return; /* top-ups and the like need nothing of ours */
    limits_find(c, env->tenant_id);
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_CARD:
        product_find(c, env->tenant_id, env->issue_card->product_id, true);
        if (env->issue_card->renew_card_id[0])
            card_find(c, env->tenant_id, env->issue_card->renew_card_id, true);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_USE_CARD:
        card_find(c, env->tenant_id, env->use_card->card_id, true);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_FREEZE_CARD:
        card_find(c, env->tenant_id, env->freeze_card->card_id, true);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------- loading */
static int64_t int_at(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

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
            copy_id(b->ids[b->count++], json_string_value(v));
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
        struct product *pr = product_find(c, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), false);
        if (!pr)
            continue;
        pr->found = true;
        pr->terms = (struct card_terms){.kind = rules_card_kind(PQgetvalue(res, i, 2)),
                                        .uses = int_at(res, i, 5),
                                        .validity_days = int_at(res, i, 6),
                                        .freeze_days_max = int_at(res, i, 8)};
        snprintf(pr->name, sizeof(pr->name), "%s", PQgetvalue(res, i, 3));
        pr->price = int_at(res, i, 4);
        pr->discount_bp = int_at(res, i, 9);
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
        struct tenant_limits *tl = limits_find(c, PQgetvalue(res, i, 0));
        tl->lim = (struct card_limits){.daily_uses_max = int_at(res, i, 1),
                                       .prepaid_days_max = int_at(res, i, 2),
                                       .prepaid_uses_max = int_at(res, i, 3),
                                       .burst_uses = int_at(res, i, 4),
                                       .burst_window_s = int_at(res, i, 5),
                                       .far_branch_window_s = int_at(res, i, 6),
                                       .first_day_topup_spend_max = int_at(res, i, 7)};
    }
    PQclear(res);
    return 0;
}

static void card_from_row(struct card *k, const PGresult *res, int i)
{
    k->found = true;
    copy_id(k->member_id, PQgetvalue(res, i, 2));
    copy_id(k->product_id, PQgetvalue(res, i, 3));
    k->st.kind = rules_card_kind(PQgetvalue(res, i, 4));
    k->price = int_at(res, i, 5);
    k->st.uses_left = int_at(res, i, 6);
    k->st.valid_from_us = int_at(res, i, 7);
    k->st.valid_to_us = int_at(res, i, 8);
    k->st.frozen_until_us = int_at(res, i, 9);
    k->st.freeze_days_left = int_at(res, i, 10);
    k->discount_bp = int_at(res, i, 11);
    branches_from_json(&k->branches, PQgetvalue(res, i, 12));
    k->st.use_day = int_at(res, i, 13);
    k->st.uses_on_day = int_at(res, i, 14);
    recent_from_json(&k->st, PQgetvalue(res, i, 15));
    copy_id(k->last_branch, PQgetvalue(res, i, 16));
    copy_id(k->sold_branch, PQgetvalue(res, i, 17));
    k->version = int_at(res, i, 18);
    k->paid_total = int_at(res, i, 19);
    k->uses_total = int_at(res, i, 20);
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
        struct card *k = card_find(c, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), false);
        if (k)
            card_from_row(k, res, i);
    }
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
        load_cards(pg, c, err, err_len) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------- deciding */
/* What one card command produced, before it is encoded. */
struct card_outcome {
    const Envelope *cmd;
    struct ledger_member *member; /* NULL for tenant commands */
    char posting_id[UUID_STR_SIZE];
    JournalLine lines[LINES_MAX];
    JournalLine *line_ptrs[LINES_MAX];
    char accounts[LINES_MAX][ACCOUNT_MAX];
    size_t line_count;
    const char *reject_code; /* NULL: posted */
    const char *reject_detail;
    int64_t price, paid_principal, paid_bonus;
    const char *payment_method;
    struct card *card;            /* the card after (issue, renew, use, freeze) */
    struct product *product;      /* product_define */
    struct ledger_coupon *coupon; /* coupon commands */
    int64_t discount;
    enum card_fraud fraud;
    int64_t fraud_in_window, previous_use_us;
    char previous_branch[ID_MAX];
};

static void reject(struct card_outcome *o, const char *code, const char *detail)
{
    o->reject_code = code;
    o->reject_detail = detail;
}

static void add_line(struct card_outcome *o, const char *account, const char *asset, int64_t amount)
{
    if (amount == 0)
        return;
    assert(o->line_count < LINES_MAX);
    size_t i = o->line_count++;
    snprintf(o->accounts[i], ACCOUNT_MAX, "%s", account);
    tessera__ledger__v1__journal_line__init(&o->lines[i]);
    o->lines[i].account = o->accounts[i];
    o->lines[i].asset = (char *)asset;
    o->lines[i].amount = amount;
    o->line_ptrs[i] = &o->lines[i];
}

static bool product_terms_valid(const DefineProduct *d)
{
    enum card_kind kind = rules_card_kind(d->kind);
    if (kind == CARD_KIND_UNKNOWN || d->validity_days <= 0 ||
        d->validity_days > CARD_VALIDITY_DAYS_MAX || d->price < 0 || d->price > MONEY_AMOUNT_MAX ||
        d->n_branch_ids > CARD_BRANCHES_MAX || d->freeze_days_max < 0 ||
        d->freeze_days_max > CARD_FREEZE_DAYS_MAX)
        return false;
    if (kind == CARD_COUNT && (d->uses <= 0 || d->uses > CARD_USES_MAX))
        return false;
    if (kind == CARD_DISCOUNT && (d->discount_bp <= 0 || d->discount_bp > 10000))
        return false;
    return d->product_id[0] && strlen(d->name) <= NAME_MAX_LEN;
}

static void decide_define_product(struct ledger_ctx *l, struct card_outcome *o)
{
    const DefineProduct *d = o->cmd->define_product;
    if (!product_terms_valid(d)) {
        reject(o, "invalid_command", "the product's terms are not acceptable");
        return;
    }
    struct product *p = product_find(l->cards, o->cmd->tenant_id, d->product_id, true);
    enum card_kind kind = rules_card_kind(d->kind);
    p->found = p->dirty = true;
    p->terms = (struct card_terms){.kind = kind,
                                   .uses = kind == CARD_COUNT ? d->uses : 0,
                                   .validity_days = d->validity_days,
                                   .freeze_days_max = d->freeze_days_max};
    p->price = d->price;
    p->discount_bp = kind == CARD_DISCOUNT ? d->discount_bp : 0;
    snprintf(p->name, sizeof(p->name), "%s", d->name);
    p->branches.count = 0;
    for (size_t i = 0; i < d->n_branch_ids; i++)
        copy_id(p->branches.ids[p->branches.count++], d->branch_ids[i]);
    copy_id(p->defined_by, d->command_id);
    o->product = p;
    o->price = p->price;
}

static void decide_set_limits(struct ledger_ctx *l, struct card_outcome *o)
{
    const SetCardLimits *s = o->cmd->set_card_limits;
    struct tenant_limits *tl = limits_find(l->cards, o->cmd->tenant_id);
    /* A replacement, not a patch: a field left 0 (proto3 scalars have no
     * presence) takes its default; 0 caps mean no cap. */
    struct card_limits next = card_limits_default();
    if (s->daily_uses_max)
        next.daily_uses_max = s->daily_uses_max;
    if (s->burst_uses)
        next.burst_uses = s->burst_uses;
    if (s->burst_window_s)
        next.burst_window_s = s->burst_window_s;
    if (s->far_branch_window_s)
        next.far_branch_window_s = s->far_branch_window_s;
    next.prepaid_days_max = s->prepaid_days_max;
    next.prepaid_uses_max = s->prepaid_uses_max;
    next.first_day_topup_spend_max = s->first_day_topup_spend_max;
    if (next.daily_uses_max < 1 || next.daily_uses_max > 1000 || next.burst_uses < 2 ||
        next.burst_window_s < 1 || next.prepaid_days_max < 0 || next.prepaid_uses_max < 0 ||
        next.far_branch_window_s < 0 || next.first_day_topup_spend_max < 0 ||
        next.first_day_topup_spend_max > FIRST_DAY_LIMIT_MAX) {
        reject(o, "invalid_command", "the card limits are not acceptable");
        return;
    }
    tl->lim = next;
    tl->dirty = true;
    firstday_limit_set(l, o->cmd->tenant_id, next.first_day_topup_spend_max);
}

/* Paying a card's price from stored value: drawn pro rata and redeemed at
 * the selling branch like a purchase (the prepaid report and settlement
 * read sv_redeemed; the line's reason says it bought a card). */
static bool pay_from_stored_value(struct ledger_ctx *l, struct card_outcome *o)
{
    int64_t from_p = 0, from_b = 0;
    enum rules_result r = rules_plan_sv_spend(o->member->sv, o->price, &from_p, &from_b);
    if (r != RULES_OK) {
        reject(o, rules_result_code(r), "the stored-value balance does not cover the card");
        return false;
    }
    const char *first_day = firstday_check(l, o->cmd, o->member, o->price);
    if (first_day) {
        reject(o, first_day,
               "stored value topped up today may be spent today only up to the tenant's "
               "first-day limit");
        return false;
    }
    const Envelope *e = o->cmd;
    char member[ACCOUNT_MAX], sales[ACCOUNT_MAX];
    snprintf(member, sizeof(member), "member:%s", e->member_id);
    snprintf(sales, sizeof(sales), "tenant:%s:branch:%s:sv_redeemed", e->tenant_id, e->branch_id);
    add_line(o, member, "sv_principal", -from_p);
    add_line(o, sales, "sv_principal", from_p);
    add_line(o, member, "sv_bonus", -from_b);
    add_line(o, sales, "sv_bonus", from_b);
    o->member->sv.principal -= from_p;
    o->member->sv.bonus -= from_b;
    o->paid_principal = from_p;
    o->paid_bonus = from_b;
    return true;
}

/* The prepaid promise a sale adds: uses for count cards, days otherwise,
 * on the member's account (member lines name only "member:<id>"; the
 * card is in each line's reason). */
static void credit_card(struct card_outcome *o, const struct card_terms *t)
{
    const Envelope *e = o->cmd;
    char holder[ACCOUNT_MAX], sold[ACCOUNT_MAX];
    snprintf(holder, sizeof(holder), "member:%s", e->member_id);
    bool uses = t->kind == CARD_COUNT;
    snprintf(sold, sizeof(sold), "tenant:%s:branch:%s:%s", e->tenant_id, e->branch_id,
             uses ? "card_uses_sold" : "card_days_sold");
    int64_t amount = uses ? t->uses : t->validity_days;
    add_line(o, holder, uses ? "card_uses" : "card_days", amount);
    add_line(o, sold, uses ? "card_uses" : "card_days", -amount);
}

/* The card a sale makes (not yet in the batch state); CARD_OK or why not. */
static enum card_result new_card(const Envelope *e, const struct product *p, struct card *k)
{
    memset(k, 0, sizeof(*k));
    enum card_result r = rules_card_issue(&p->terms, e->occurred_at_us, &k->st);
    if (r != CARD_OK)
        return r;
    copy_id(k->tenant_id, e->tenant_id);
    copy_id(k->card_id, e->issue_card->card_id);
    copy_id(k->member_id, e->member_id);
    copy_id(k->product_id, p->product_id);
    copy_id(k->sold_branch, e->branch_id);
    k->price = k->paid_total = p->price;
    k->uses_total = p->terms.kind == CARD_COUNT ? p->terms.uses : 0;
    k->discount_bp = p->discount_bp;
    k->branches = p->branches;
    k->found = true;
    return CARD_OK;
}

/* The member's own card, or NULL (another member's card is not found:
 * ids are not a way to probe other members). */
static struct card *own_card(struct ledger_ctx *l, const Envelope *e, const char *card_id)
{
    struct card *k = card_find(l->cards, e->tenant_id, card_id, false);
    return k && k->found && strcmp(k->member_id, e->member_id) == 0 ? k : NULL;
}

/* The card after a sale or renewal, in next; false when refused. */
static bool plan_issue(struct ledger_ctx *l, struct card_outcome *o, const struct product *p,
                       struct card *next)
{
    const Envelope *e = o->cmd;
    const IssueCard *ic = e->issue_card;
    if (!ic->renew_card_id[0]) {
        if (card_find(l->cards, e->tenant_id, ic->card_id, false)) {
            reject(o, "invalid_command", "the card id is taken");
            return false;
        }
        if (new_card(e, p, next) != CARD_OK) {
            reject(o, "validity_overflow", VALIDITY_OVERFLOW_DETAIL);
            return false;
        }
        return true;
    }
    struct card *k = own_card(l, e, ic->renew_card_id);
    if (!k) {
        reject(o, "card_not_found", "the member has no such card");
        return false;
    }
    if (strcmp(k->product_id, p->product_id) != 0) {
        reject(o, "invalid_command", "a card renews with its own product");
        return false;
    }
    *next = *k;
    enum card_result r = rules_card_renew(&next->st, &p->terms, e->occurred_at_us);
    if (r != CARD_OK) {
        reject(o, rules_card_code(r),
               r == CARD_VALIDITY_OVERFLOW ? VALIDITY_OVERFLOW_DETAIL
                                           : "the product cannot renew this card");
        return false;
    }
    if (rules_card_check_cap_held(&limits_find(l->cards, e->tenant_id)->lim, &next->st,
                                  e->occurred_at_us) != CARD_OK) {
        reject(o, "prepaid_cap_exceeded",
               "the card renewed would hold more than the tenant's prepaid cap");
        return false;
    }
    next->price = p->price;
    next->paid_total += p->price;
    next->uses_total += p->terms.kind == CARD_COUNT ? p->terms.uses : 0;
    return true;
}

static void decide_issue(struct ledger_ctx *l, struct card_outcome *o)
{
    const Envelope *e = o->cmd;
    const IssueCard *ic = e->issue_card;
    struct product *p = product_find(l->cards, e->tenant_id, ic->product_id, false);
    if (!p || !p->found) {
        reject(o, "product_not_found", "no such product in this tenant");
        return;
    }
    o->price = p->price;
    o->payment_method = ic->payment_method;
    if (rules_card_check_cap(&limits_find(l->cards, e->tenant_id)->lim, &p->terms) != CARD_OK) {
        reject(o, "prepaid_cap_exceeded", "a single prepaid sale may not exceed the tenant's cap");
        return;
    }
    struct card *next = &l->cards->planned;
    if (!plan_issue(l, o, p, next))
        return;
    o->card = next;
    if (strcmp(ic->payment_method, "stored_value") == 0 && p->price > 0 &&
        !pay_from_stored_value(l, o))
        return;
    credit_card(o, &p->terms);
    struct card *k = card_find(l->cards, e->tenant_id, next->card_id, true);
    *k = *next;
    k->dirty = true;
    k->version++;
    o->card = k;
}

static void note_fraud(struct card_outcome *o, const struct card_limits *lim, struct card *k,
                       int64_t previous_use_us, const char *previous_branch)
{
    const Envelope *e = o->cmd;
    bool other = previous_branch[0] && strcmp(previous_branch, e->branch_id) != 0;
    o->fraud = rules_card_fraud(lim, &k->st, e->occurred_at_us, other, previous_use_us,
                                &o->fraud_in_window);
    o->previous_use_us = previous_use_us;
    copy_id(o->previous_branch, previous_branch);
}

static const char *use_detail(enum card_result r)
{
    switch (r) {
    case CARD_EXPIRED:
        return "the card is outside its validity";
    case CARD_FROZEN:
        return "the card is frozen";
    case CARD_NOT_VALID_HERE:
        return "the card is not valid at this branch";
    case CARD_NO_USES_LEFT:
        return "the card has no uses left";
    case CARD_DAILY_LIMIT_REACHED:
        return "the card reached its uses for today";
    case CARD_NOT_USABLE:
        return "a discount card is named in purchases, not used";
    default:
        return "the card cannot be used now";
    }
}

static void decide_use(struct ledger_ctx *l, struct card_outcome *o)
{
    const Envelope *e = o->cmd;
    struct card *k = own_card(l, e, e->use_card->card_id);
    if (!k) {
        reject(o, "card_not_found", "the member has no such card");
        return;
    }
    o->card = k;
    const struct card_limits *lim = &limits_find(l->cards, e->tenant_id)->lim;
    struct card_state st = k->st;
    int64_t previous_use_us = st.recent_count ? st.recent_uses_us[st.recent_count - 1] : 0;
    enum card_result r = rules_card_use(lim, &st, e->occurred_at_us, e->use_card->utc_offset_s,
                                        branch_allowed(&k->branches, e->branch_id));
    if (r != CARD_OK) {
        reject(o, rules_card_code(r), use_detail(r));
        return;
    }
    if (k->st.kind == CARD_COUNT) {
        char holder[ACCOUNT_MAX], used[ACCOUNT_MAX];
        snprintf(holder, sizeof(holder), "member:%s", e->member_id);
        snprintf(used, sizeof(used), "tenant:%s:branch:%s:card_uses_redeemed", e->tenant_id,
                 e->branch_id);
        add_line(o, holder, "card_uses", -1);
        add_line(o, used, "card_uses", 1);
    }
    k->st = st;
    note_fraud(o, lim, k, previous_use_us, k->last_branch);
    copy_id(k->last_branch, e->branch_id);
    k->dirty = true;
    k->version++;
}

static void decide_freeze(struct ledger_ctx *l, struct card_outcome *o)
{
    const Envelope *e = o->cmd;
    struct card *k = own_card(l, e, e->freeze_card->card_id);
    if (!k) {
        reject(o, "card_not_found", "the member has no such card");
        return;
    }
    o->card = k;
    struct card_state st = k->st;
    enum card_result r = rules_card_freeze(&st, e->freeze_card->days, e->occurred_at_us);
    if (r != CARD_OK) {
        reject(o, rules_card_code(r),
               r == CARD_FREEZE_EXCEEDS_ALLOWANCE
                   ? "more days than the card's freeze allowance left"
               : r == CARD_FREEZE_NOT_ALLOWED ? "only time cards and subscriptions freeze"
               : r == CARD_VALIDITY_OVERFLOW  ? VALIDITY_OVERFLOW_DETAIL
                                              : "the card cannot be frozen now");
        return;
    }
    k->st = st;
    k->dirty = true;
    k->version++;
}

/* ------------------------------------------------------- coupons */
static void decide_issue_coupon(struct ledger_ctx *l, struct card_outcome *o)
{
    const char *code = coupons_issue(l->cards->coupons, o->cmd, &o->coupon);
    if (code)
        reject(o, code, "the coupon's terms are not acceptable");
}

static void decide_redeem_coupon(struct ledger_ctx *l, struct card_outcome *o)
{
    const RedeemCoupon *rc = o->cmd->redeem_coupon;
    const char *code = coupons_plan_redeem(l->cards->coupons, o->cmd, rc->coupon_id, rc->amount,
                                           &o->coupon, &o->discount);
    if (code) {
        reject(o, code,
               strcmp(code, "coupon_used") == 0      ? "the coupon was already used"
               : strcmp(code, "coupon_expired") == 0 ? "the coupon is past its validity"
                                                     : "no such coupon for this member");
        return;
    }
    coupons_commit_redeem(o->coupon, rc->command_id, o->cmd->occurred_at_us, o->discount);
}

void cards_purchase_coupon_commit(struct ledger_ctx *l, const Envelope *cmd, int64_t discount)
{
    /* priced by the same command a moment ago (cards_purchase_terms) */
    struct ledger_coupon *k =
        coupons_get(l->cards->coupons, cmd->tenant_id, cmd->record_purchase->coupon_id);
    assert(k && k->found && !k->st.redeemed);
    coupons_commit_redeem(k, cmd->record_purchase->command_id, cmd->occurred_at_us, discount);
}

const char *cards_purchase_terms(struct ledger_ctx *l, const Envelope *cmd,
                                 struct price_card *card_out, const struct price_card **card,
                                 const struct coupon_state **coupon)
{
    const RecordPurchase *p = cmd->record_purchase;
    *card = NULL;
    *coupon = NULL;
    if (p->card_id[0]) {
        struct card *k = own_card(l, cmd, p->card_id);
        if (!k)
            return "card_not_found";
        *card_out = (struct price_card){.st = &k->st,
                                        .discount_bp = k->discount_bp,
                                        .branch_ok = branch_allowed(&k->branches, cmd->branch_id)};
        *card = card_out;
    }
    if (p->coupon_id[0]) {
        struct ledger_coupon *k = coupons_get(l->cards->coupons, cmd->tenant_id, p->coupon_id);
        /* another member's coupon is as unknown as one never issued */
        if (!k || !k->found || strcmp(k->member_id, cmd->member_id) != 0)
            return "coupon_not_found";
        *coupon = &k->st;
    }
    return NULL;
}

/* Borrows strings from k. */
void cards_coupon_state(const struct ledger_coupon *k, CouponState *cs)
{
    tessera__cards__v1__coupon_state__init(cs);
    cs->coupon_id = (char *)k->coupon_id;
    cs->kind = (char *)rules_coupon_kind_name(k->st.kind);
    cs->value = k->st.value;
    cs->percent_bp = k->st.percent_bp;
    cs->valid_from_us = k->st.valid_from_us;
    cs->valid_to_us = k->st.valid_to_us;
    cs->status = k->st.redeemed ? "redeemed" : "issued";
    cs->discount = k->discount;
}

/* ------------------------------------------------------- encoding */
static void outcome_meta(const struct card_outcome *o, struct event_meta *meta)
{
    const Envelope *c = o->cmd;
    *meta = (struct event_meta){.tenant_id = c->tenant_id,
                                .branch_id = c->branch_id,
                                .member_id = c->member_id,
                                .causation_id = c->event_id,
                                .correlation_id =
                                    c->correlation_id[0] ? c->correlation_id : c->event_id,
                                .actor_kind = "service",
                                .actor_id = "ledger"};
}

static void outcome_balances(const struct card_outcome *o, Balances *bal)
{
    tessera__ledger__v1__balances__init(bal);
    if (!o->member)
        return;
    bal->points = o->member->points;
    bal->points_pending = o->member->points_pending;
    bal->stored_value_principal = o->member->sv.principal;
    bal->stored_value_bonus = o->member->sv.bonus;
    bal->version = o->member->version;
}

/* The card (or, for a product definition, the product's terms) as the
 * verdict and facts carry it. Borrows strings from o. */
static void outcome_card(const struct card_outcome *o, CardState *cs)
{
    tessera__cards__v1__card_state__init(cs);
    if (o->product) {
        cs->product_id = o->product->product_id;
        cs->kind = (char *)rules_card_kind_name(o->product->terms.kind);
        cs->price = o->product->price;
        cs->discount_bp = o->product->discount_bp;
        cs->uses_left = o->product->terms.uses;
        cs->freeze_days_left = o->product->terms.freeze_days_max;
        return;
    }
    const struct card *k = o->card;
    cs->card_id = (char *)k->card_id;
    cs->product_id = (char *)k->product_id;
    cs->kind = (char *)rules_card_kind_name(k->st.kind);
    cs->uses_left = k->st.uses_left;
    cs->valid_from_us = k->st.valid_from_us;
    cs->valid_to_us = k->st.valid_to_us;
    cs->frozen_until_us = k->st.frozen_until_us;
    cs->freeze_days_left = k->st.freeze_days_left;
    cs->discount_bp = k->discount_bp;
    cs->price = k->price;
    cs->uses_today = k->st.uses_on_day;
}

static uint8_t *encode_verdict(const struct card_outcome *o, size_t *len)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    Balances bal;
    CardState cs;
    LedgerPosted posted;
    LedgerRejected rejected;
    outcome_meta(o, &meta);
    envelope_init(&env, &actor, &meta);
    outcome_balances(o, &bal);
    if (o->reject_code) {
        tessera__ledger__v1__ledger_rejected__init(&rejected);
        rejected.command_id = (char *)cards_command_id(o->cmd);
        rejected.command_type = (char *)command_type(o->cmd);
        rejected.code = (char *)o->reject_code;
        rejected.detail = (char *)o->reject_detail;
        rejected.balances = &bal;
        env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_REJECTED;
        env.ledger_rejected = &rejected;
        return envelope_encode(&env, len);
    }
    tessera__ledger__v1__ledger_posted__init(&posted);
    posted.command_id = (char *)cards_command_id(o->cmd);
    posted.posting_id = (char *)o->posting_id;
    posted.command_type = (char *)command_type(o->cmd);
    posted.n_lines = o->line_count;
    posted.lines = (JournalLine **)o->line_ptrs;
    posted.balances = &bal;
    posted.amount = o->price;
    posted.charged = o->price;
    posted.paid_principal = o->paid_principal;
    posted.paid_bonus = o->paid_bonus;
    if (o->card || o->product) {
        outcome_card(o, &cs);
        posted.card = &cs;
    }
    CouponState coupon;
    if (o->coupon) {
        cards_coupon_state(o->coupon, &coupon);
        posted.coupon = &coupon;
        posted.discount_applied = o->discount;
        posted.amount =
            o->cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REDEEM_COUPON
                ? o->cmd->redeem_coupon->amount
                : 0;
        posted.charged = posted.amount - o->discount > 0 ? posted.amount - o->discount : 0;
    }
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_POSTED;
    env.ledger_posted = &posted;
    return envelope_encode(&env, len);
}

/* CardChanged for tiering, campaign (renewal reminders) and analytics. */
static uint8_t *encode_change(const struct card_outcome *o, size_t *len)
{
    static const char *const changes[] = {"issued", "renewed", "used", "frozen"};
    const char *type = command_type(o->cmd);
    size_t which = strcmp(type, "card_issue") == 0   ? 0
                   : strcmp(type, "card_renew") == 0 ? 1
                   : strcmp(type, "card_use") == 0   ? 2
                                                     : 3;
    struct event_meta meta;
    Envelope env;
    Actor actor;
    CardState cs;
    CardChanged ch;
    outcome_meta(o, &meta);
    envelope_init(&env, &actor, &meta);
    env.occurred_at_us = o->cmd->occurred_at_us;
    outcome_card(o, &cs);
    tessera__cards__v1__card_changed__init(&ch);
    ch.command_id = (char *)cards_command_id(o->cmd);
    ch.change = (char *)changes[which];
    ch.card = &cs;
    ch.payment_method = (char *)(o->payment_method ? o->payment_method : "");
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CARD_CHANGED;
    env.card_changed = &ch;
    return envelope_encode(&env, len);
}

static uint8_t *encode_alert(const struct card_outcome *o, size_t *len)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    CardFraudAlert a;
    outcome_meta(o, &meta);
    envelope_init(&env, &actor, &meta);
    env.occurred_at_us = o->cmd->occurred_at_us;
    tessera__cards__v1__card_fraud_alert__init(&a);
    a.card_id = (char *)o->card->card_id;
    a.reason = o->fraud == CARD_FRAUD_BURST ? "burst" : "distant_branches";
    a.uses_in_window = o->fraud_in_window;
    a.previous_branch_id = (char *)o->previous_branch;
    a.previous_use_us = o->previous_use_us;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CARD_FRAUD_ALERT;
    env.card_fraud_alert = &a;
    return envelope_encode(&env, len);
}

/* ------------------------------------------------------- rows */
/* The command's verdict row and journal lines, in the ledger's rows: the
 * reason names the command and its card or product, so the journal
 * answers "why". */
static void record_rows(struct ledger_ctx *l, const struct card_outcome *o, const uint8_t *verdict,
                        size_t verdict_len)
{
    const Envelope *c = o->cmd;
    char reason[ID_MAX * 3 + 64];
    int n = snprintf(reason, sizeof(reason), "%s:card:%s:product:%s:%s", command_type(c),
                     o->card ? o->card->card_id : "", o->card ? o->card->product_id : "",
                     o->payment_method ? o->payment_method : "");
    assert(n >= 0 && (size_t)n < sizeof(reason)); /* ids and payment method checked */
    store_add_verdict(&l->rows, c, cards_command_id(c), command_type(c), o->reject_code,
                      o->posting_id, verdict, verdict_len, o->lines, o->line_count, reason);
}

static void decide(struct ledger_ctx *l, struct card_outcome *o)
{
    switch (o->cmd->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_DEFINE_PRODUCT:
        decide_define_product(l, o);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_SET_CARD_LIMITS:
        decide_set_limits(l, o);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_CARD:
        decide_issue(l, o);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_USE_CARD:
        decide_use(l, o);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_COUPON:
        decide_issue_coupon(l, o);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REDEEM_COUPON:
        decide_redeem_coupon(l, o);
        break;
    default:
        decide_freeze(l, o);
        break;
    }
}

static void emit_facts(struct pipeline_batch *b, const struct card_outcome *o, const char *key)
{
    size_t len = 0;
    uint8_t *fact = NULL;
    if (o->card) {
        fact = encode_change(o, &len);
        if (fact)
            pipeline_emit(b, TOPIC_LEDGER_EVENTS, key, fact, len);
    }
    if (o->fraud != CARD_FRAUD_NONE) {
        fact = encode_alert(o, &len);
        if (fact)
            pipeline_emit(b, TOPIC_LEDGER_EVENTS, key, fact, len);
        log_fields(LOG_WARN, "card fraud alert", "card_id", o->card->card_id, "reason",
                   o->fraud == CARD_FRAUD_BURST ? "burst" : "distant_branches", NULL);
    }
}

void cards_apply(struct ledger_ctx *l, struct pipeline_batch *b, const Envelope *cmd)
{
    bool tenant = cards_is_tenant_command(cmd);
    struct card_outcome o = {
        .cmd = cmd,
        .member = tenant ? NULL : ledger_member_find(l, cmd->tenant_id, cmd->member_id, false)};
    assert(tenant || o.member);
    uuid7_generate(o.posting_id);
    struct ledger_member before = o.member ? *o.member : (struct ledger_member){0};
    decide(l, &o);
    if (o.reject_code) {
        if (o.member)
            *o.member = before; /* a rejection changes nothing */
        o.line_count = 0;
        o.fraud = CARD_FRAUD_NONE;
    } else if (o.member && o.paid_principal + o.paid_bonus > 0) {
        o.member->version++;
        o.member->dirty = true;
    }
    size_t vlen = 0;
    uint8_t *verdict = encode_verdict(&o, &vlen);
    assert(verdict); /* bounded fields: an encoding failure is a programmer error */
    record_rows(l, &o, verdict, vlen);
    uint8_t *copy = malloc(vlen);
    assert(copy);
    memcpy(copy, verdict, vlen);
    ledger_verdict_add(l, cmd->tenant_id, cards_command_id(cmd), copy, vlen);
    const char *key = tenant ? cmd->tenant_id : cmd->member_id;
    if (!o.reject_code) {
        emit_facts(b, &o, key);
        l->batch_posted++;
    } else {
        l->batch_rejected++;
    }
    pipeline_emit(b, TOPIC_LEDGER_EVENTS, key, verdict, vlen);
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
    k->uses_left = int_at(res, i, KC_USES);
    k->valid_from_us = int_at(res, i, KC_FROM);
    k->valid_to_us = int_at(res, i, KC_TO);
    k->frozen_until_us = int_at(res, i, KC_FROZEN);
    k->freeze_days_left = int_at(res, i, KC_FREEZE_LEFT);
    k->discount_bp = int_at(res, i, KC_DISCOUNT);
    k->version = int_at(res, i, KC_VERSION);
    k->created_us = int_at(res, i, KC_CREATED);
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
            c->cached_members = grow(c->cached_members, c->cached_member_count,
                                     &c->cached_member_cap, sizeof(*c->cached_members));
            cm = &c->cached_members[c->cached_member_count++];
            memset(cm, 0, sizeof(*cm));
            copy_id(cm->tenant_id, tenant);
            copy_id(cm->member_id, member);
            cm->card_count = int_at(res, i, KC_COUNT);
            cm->first = c->cached_count;
        }
        if (cm->card_count > CACHE_CARDS_PER_MEMBER_MAX || cm->n == SIZE_MAX)
            continue; /* the count alone (see above) */
        c->cached = grow(c->cached, c->cached_count, &c->cached_cap, sizeof(*c->cached));
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
static int load_cache_state(PGconn *pg, struct ledger_cards *c, char *err, size_t err_len)
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

int cards_write(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    struct ledger_cards *c = l->cards;
    if (write_products(pg, c, err, err_len) < 0 || write_limits(pg, c, err, err_len) < 0 ||
        write_cards(pg, c, err, err_len) < 0 || coupons_write(pg, c->coupons, err, err_len) < 0 ||
        load_cache_state(pg, c, err, err_len) < 0)
        return -1;
    return 0;
}
