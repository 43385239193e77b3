/* Days added to a member's time card as a reward (ExtendCard, issue 12):
 * a referral's gift, or a redemption that buys the days with points. The
 * command names the product, not the card: the ledger picks, among the
 * member's cards of the product that rules_card_extendable allows, the one
 * valid longest (ties: the smallest card id), so a member who renewed
 * early gets the days at the end of what they hold. The days are a
 * journal line like a sale's (asset card_days, member:<id> credited) but
 * against the tenant's card_days_granted account: nobody paid money for
 * them, and the prepaid report must not count them as sold at a branch.
 * A redemption's points are spent in the same posting, so the days and
 * their price move together or not at all. */
#include <stdio.h>
#include <string.h>

#include "cards_internal.h"

/* The member's card that takes the days at now_us, or NULL. */
static struct card *pick_card(struct ledger_cards *c, const Envelope *e, int64_t now_us)
{
    const char *product_id = e->extend_card->product_id;
    struct card *best = NULL;
    for (size_t i = 0; i < c->card_count; i++) {
        struct card *k = &c->cards[i];
        if (!k->found || strcmp(k->tenant_id, e->tenant_id) != 0 ||
            strcmp(k->member_id, e->member_id) != 0 || strcmp(k->product_id, product_id) != 0 ||
            !rules_card_extendable(&k->st, now_us))
            continue;
        if (!best || k->st.valid_to_us > best->st.valid_to_us ||
            (k->st.valid_to_us == best->st.valid_to_us && strcmp(k->card_id, best->card_id) < 0))
            best = k;
    }
    return best;
}

static const char *extend_detail(enum card_result r)
{
    switch (r) {
    case CARD_INVALID:
        return "the days must be 1 to 3660";
    case CARD_VALIDITY_OVERFLOW:
        return VALIDITY_OVERFLOW_DETAIL;
    default:
        return "the member has no active time card of the product";
    }
}

void cards_decide_extend(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *e = o->cmd;
    const ExtendCard *x = e->extend_card;
    int64_t now_us = e->occurred_at_us;
    struct card *k = pick_card(l->cards, e, now_us);
    struct card_state st = k ? k->st : (struct card_state){.kind = CARD_KIND_UNKNOWN};
    enum card_result r = rules_card_extend(&st, x->days, now_us);
    if (r != CARD_OK) {
        outcome_reject(o, rules_card_code(r), extend_detail(r));
        return;
    }
    if (x->points_price < 0) {
        outcome_reject(o, "invalid_points", "the points price is negative");
        return;
    }
    if (x->points_price > 0 && !points_spend_check(l, o, x->points_price))
        return;
    o->card = k;
    if (x->points_price > 0) {
        points_spend_commit(l, o, x->points_price);
        o->points_paid = x->points_price;
    }
    char holder[ACCOUNT_MAX], granted[ACCOUNT_MAX];
    snprintf(holder, sizeof(holder), "member:%s", e->member_id);
    snprintf(granted, sizeof(granted), "tenant:%s:card_days_granted", e->tenant_id);
    outcome_line(o, holder, "card_days", x->days);
    outcome_line(o, granted, "card_days", -x->days);
    o->amount = x->days;
    k->st = st;
    k->dirty = true;
    k->version++;
}
