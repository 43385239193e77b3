/* Card commands in the ledger (see cards.h): tenant products and limits,
 * and each card's life: sold (or renewed, cards_sale.c), used and frozen
 * (cards_use.c). A card sold for money is a prepaid liability: its uses
 * (count cards) or days (every other kind) are journal assets, credited
 * to the member's card account against the selling branch, and a count
 * card's use moves one use to the branch where it was used, so
 * cross-branch settlement reads from the journal like stored value's.
 * This file holds the batch state, the commands' ids and the decisions
 * about the tenant (products, limits); apply.c gives every verdict. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cards_internal.h"
#include "coupons.h"
#include "money/money.h"

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
    free(c->wanted);
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
    c->wanted_count = c->product_count = c->limit_count = c->card_count = 0;
    c->cached_member_count = c->cached_count = 0;
    coupons_begin_batch(c->coupons);
}

/* ------------------------------------------------------- lookups */
/* Ids were checked at the door (ledger_command_text_problem) or come from
 * rows written that way: one that does not fit is a programmer error, not
 * something to cut. */
void cards_copy_id(char dst[ID_MAX], const char *src)
{
    int n = snprintf(dst, ID_MAX, "%s", src ? src : "");
    assert(n >= 0 && n < ID_MAX);
}

/* ------------------------------------------------------- lookups */
/* Lookups are linear: a batch holds at most PIPELINE_BATCH_MAX commands. */
struct product *cards_product_find(struct ledger_cards *c, const char *tenant_id,
                                   const char *product_id, bool create)
{
    for (size_t i = 0; i < c->product_count; i++)
        if (strcmp(c->products[i].product_id, product_id) == 0 &&
            strcmp(c->products[i].tenant_id, tenant_id) == 0)
            return &c->products[i];
    if (!create)
        return NULL;
    c->products = array_grow(c->products, c->product_count, &c->product_cap, sizeof(*c->products));
    struct product *p = &c->products[c->product_count++];
    memset(p, 0, sizeof(*p));
    cards_copy_id(p->tenant_id, tenant_id);
    cards_copy_id(p->product_id, product_id);
    return p;
}

struct tenant_limits *cards_limits_find(struct ledger_cards *c, const char *tenant_id)
{
    for (size_t i = 0; i < c->limit_count; i++)
        if (strcmp(c->limits[i].tenant_id, tenant_id) == 0)
            return &c->limits[i];
    c->limits = array_grow(c->limits, c->limit_count, &c->limit_cap, sizeof(*c->limits));
    struct tenant_limits *t = &c->limits[c->limit_count++];
    memset(t, 0, sizeof(*t));
    cards_copy_id(t->tenant_id, tenant_id);
    t->lim = card_limits_default();
    return t;
}

struct card *cards_card_find(struct ledger_cards *c, const char *tenant_id, const char *card_id,
                             bool create)
{
    for (size_t i = 0; i < c->card_count; i++)
        if (strcmp(c->cards[i].card_id, card_id) == 0 &&
            strcmp(c->cards[i].tenant_id, tenant_id) == 0)
            return &c->cards[i];
    if (!create)
        return NULL;
    c->cards = array_grow(c->cards, c->card_count, &c->card_cap, sizeof(*c->cards));
    struct card *k = &c->cards[c->card_count++];
    memset(k, 0, sizeof(*k));
    cards_copy_id(k->tenant_id, tenant_id);
    cards_copy_id(k->card_id, card_id);
    return k;
}

bool cards_branch_allowed(const struct branches *b, const char *branch_id)
{
    if (b->count == 0)
        return true;
    for (size_t i = 0; i < b->count; i++)
        if (strcmp(b->ids[i], branch_id) == 0)
            return true;
    return false;
}

/* The member's own card, or NULL (another member's card is not found:
 * ids are not a way to probe other members). */
struct card *cards_own_card(struct ledger_ctx *l, const Envelope *e, const char *card_id)
{
    struct card *k = cards_card_find(l->cards, e->tenant_id, card_id, false);
    return k && k->found && strcmp(k->member_id, e->member_id) == 0 ? k : NULL;
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
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXTEND_CARD:
        return env->extend_card->command_id;
    default:
        return NULL;
    }
}

bool cards_is_tenant_command(const Envelope *env)
{
    return env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_DEFINE_PRODUCT ||
           env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_SET_CARD_LIMITS;
}

const char *cards_command_type(const Envelope *env)
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
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXTEND_CARD:
        return "card_extend";
    default:
        return "card_freeze";
    }
}

/* A member's cards of a product to load (ExtendCard picks among them). */
static void wanted_add(struct ledger_cards *c, const char *tenant_id, const char *member_id,
                       const char *product_id)
{
    c->wanted = array_grow(c->wanted, c->wanted_count, &c->wanted_cap, sizeof(*c->wanted));
    struct member_product *w = &c->wanted[c->wanted_count++];
    cards_copy_id(w->tenant_id, tenant_id);
    cards_copy_id(w->member_id, member_id);
    cards_copy_id(w->product_id, product_id);
}

void cards_note(struct ledger_ctx *l, const Envelope *env)
{
    struct ledger_cards *c = l->cards;
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_RECORD_PURCHASE:
        coupons_note(c->coupons, env->tenant_id, env->record_purchase->coupon_id);
        if (env->record_purchase->card_id[0])
            cards_card_find(c, env->tenant_id, env->record_purchase->card_id, true);
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
    cards_limits_find(c, env->tenant_id);
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_CARD:
        cards_product_find(c, env->tenant_id, env->issue_card->product_id, true);
        if (env->issue_card->renew_card_id[0])
            cards_card_find(c, env->tenant_id, env->issue_card->renew_card_id, true);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_USE_CARD:
        cards_card_find(c, env->tenant_id, env->use_card->card_id, true);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_FREEZE_CARD:
        cards_card_find(c, env->tenant_id, env->freeze_card->card_id, true);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXTEND_CARD:
        wanted_add(c, env->tenant_id, env->member_id, env->extend_card->product_id);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------- deciding */
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

static void decide_define_product(struct ledger_ctx *l, struct outcome *o)
{
    const DefineProduct *d = o->cmd->define_product;
    if (!product_terms_valid(d)) {
        outcome_reject(o, "invalid_command", "the product's terms are not acceptable");
        return;
    }
    struct product *p = cards_product_find(l->cards, o->cmd->tenant_id, d->product_id, true);
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
        cards_copy_id(p->branches.ids[p->branches.count++], d->branch_ids[i]);
    cards_copy_id(p->defined_by, d->command_id);
    o->product = p;
    o->amount = p->price;
}

static void decide_set_limits(struct ledger_ctx *l, struct outcome *o)
{
    const SetCardLimits *s = o->cmd->set_card_limits;
    struct tenant_limits *tl = cards_limits_find(l->cards, o->cmd->tenant_id);
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
        outcome_reject(o, "invalid_command", "the card limits are not acceptable");
        return;
    }
    tl->lim = next;
    tl->dirty = true;
    firstday_limit_set(l, o->cmd->tenant_id, next.first_day_topup_spend_max);
    settings_note_card_limits(l, o->cmd, &next);
}

void cards_decide(struct ledger_ctx *l, struct outcome *o)
{
    switch (o->cmd->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_DEFINE_PRODUCT:
        decide_define_product(l, o);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_SET_CARD_LIMITS:
        decide_set_limits(l, o);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_CARD:
        cards_decide_issue(l, o);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_USE_CARD:
        cards_decide_use(l, o);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_COUPON:
        cards_decide_issue_coupon(l, o);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REDEEM_COUPON:
        cards_decide_redeem_coupon(l, o);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXTEND_CARD:
        cards_decide_extend(l, o);
        break;
    default:
        cards_decide_freeze(l, o);
        break;
    }
    /* the journal's reason names the command, its card and product, and
     * what paid for it (a sale's method; a reward's cause) */
    const char *why = o->payment_method ? o->payment_method : "";
    if (o->cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXTEND_CARD)
        why = o->cmd->extend_card->reason;
    outcome_reason(o, "%s:card:%s:product:%s:%s", cards_command_type(o->cmd),
                   o->card ? o->card->card_id : "", o->card ? o->card->product_id : "", why);
}
