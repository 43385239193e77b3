/* A card's sale and renewal: the card the sale makes (or the renewed
 * card), paid for in money or from stored value, and the prepaid promise
 * it adds to the journal. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cards_internal.h"

#define COVER_DETAIL "the stored-value balance does not cover the card"

/* The prepaid promise a sale adds: uses for count cards, days otherwise,
 * on the member's account (member lines name only "member:<id>"; the
 * card is in each line's reason). */
static void credit_card(struct outcome *o, const struct card_terms *t)
{
    const Envelope *e = o->cmd;
    char holder[ACCOUNT_MAX], sold[ACCOUNT_MAX];
    snprintf(holder, sizeof(holder), "member:%s", e->member_id);
    bool uses = t->kind == CARD_COUNT;
    snprintf(sold, sizeof(sold), "tenant:%s:branch:%s:%s", e->tenant_id, e->branch_id,
             uses ? "card_uses_sold" : "card_days_sold");
    int64_t amount = uses ? t->uses : t->validity_days;
    outcome_line(o, holder, uses ? "card_uses" : "card_days", amount);
    outcome_line(o, sold, uses ? "card_uses" : "card_days", -amount);
}

/* The card a sale makes (not yet in the batch state); CARD_OK or why not. */
static enum card_result new_card(const Envelope *e, const struct product *p, struct card *k)
{
    memset(k, 0, sizeof(*k));
    enum card_result r = rules_card_issue(&p->terms, e->occurred_at_us, &k->st);
    if (r != CARD_OK)
        return r;
    cards_copy_id(k->tenant_id, e->tenant_id);
    cards_copy_id(k->card_id, e->issue_card->card_id);
    cards_copy_id(k->member_id, e->member_id);
    cards_copy_id(k->product_id, p->product_id);
    cards_copy_id(k->sold_branch, e->branch_id);
    k->price = k->paid_total = p->price;
    k->uses_total = p->terms.kind == CARD_COUNT ? p->terms.uses : 0;
    k->discount_bp = p->discount_bp;
    k->branches = p->branches;
    k->found = true;
    return CARD_OK;
}

/* The card after a sale or renewal, in next; false when refused. */
static bool plan_issue(struct ledger_ctx *l, struct outcome *o, const struct product *p,
                       struct card *next)
{
    const Envelope *e = o->cmd;
    const IssueCard *ic = e->issue_card;
    if (!ic->renew_card_id[0]) {
        if (cards_card_find(l->cards, e->tenant_id, ic->card_id, false)) {
            outcome_reject(o, "invalid_command", "the card id is taken");
            return false;
        }
        if (new_card(e, p, next) != CARD_OK) {
            outcome_reject(o, "validity_overflow", VALIDITY_OVERFLOW_DETAIL);
            return false;
        }
        return true;
    }
    struct card *k = cards_own_card(l, e, ic->renew_card_id);
    if (!k) {
        outcome_reject(o, "card_not_found", "the member has no such card");
        return false;
    }
    if (strcmp(k->product_id, p->product_id) != 0) {
        outcome_reject(o, "invalid_command", "a card renews with its own product");
        return false;
    }
    *next = *k;
    enum card_result r = rules_card_renew(&next->st, &p->terms, e->occurred_at_us);
    if (r != CARD_OK) {
        outcome_reject(o, rules_card_code(r),
                       r == CARD_VALIDITY_OVERFLOW ? VALIDITY_OVERFLOW_DETAIL
                                                   : "the product cannot renew this card");
        return false;
    }
    if (rules_card_check_cap_held(&cards_limits_find(l->cards, e->tenant_id)->lim, &next->st,
                                  e->occurred_at_us) != CARD_OK) {
        outcome_reject(o, "prepaid_cap_exceeded",
                       "the card renewed would hold more than the tenant's prepaid cap");
        return false;
    }
    next->price = p->price;
    next->paid_total += p->price;
    next->uses_total += p->terms.kind == CARD_COUNT ? p->terms.uses : 0;
    return true;
}

void cards_decide_issue(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *e = o->cmd;
    const IssueCard *ic = e->issue_card;
    struct product *p = cards_product_find(l->cards, e->tenant_id, ic->product_id, false);
    if (!p || !p->found) {
        outcome_reject(o, "product_not_found", "no such product in this tenant");
        return;
    }
    o->amount = p->price;
    o->payment_method = ic->payment_method;
    if (rules_card_check_cap(&cards_limits_find(l->cards, e->tenant_id)->lim, &p->terms) !=
        CARD_OK) {
        outcome_reject(o, "prepaid_cap_exceeded",
                       "a single prepaid sale may not exceed the tenant's cap");
        return;
    }
    struct card *next = &l->cards->planned;
    if (!plan_issue(l, o, p, next))
        return;
    o->card = next;
    if (strcmp(ic->payment_method, "stored_value") == 0 && p->price > 0 &&
        !outcome_spend_sv(l, o, o->amount, COVER_DETAIL, COVER_DETAIL))
        return;
    credit_card(o, &p->terms);
    struct card *k = cards_card_find(l->cards, e->tenant_id, next->card_id, true);
    *k = *next;
    k->dirty = true;
    k->version++;
    o->card = k;
}
