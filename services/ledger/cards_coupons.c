/* Coupon commands and what purchases ask of cards and coupons: the
 * ledger's side of coupons.c's batch state. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cards_internal.h"
#include "coupons.h"

void cards_decide_issue_coupon(struct ledger_ctx *l, struct outcome *o)
{
    const char *code = coupons_issue(l->cards->coupons, o->cmd, &o->coupon);
    if (code)
        outcome_reject(o, code, "the coupon's terms are not acceptable");
}

void cards_decide_redeem_coupon(struct ledger_ctx *l, struct outcome *o)
{
    const RedeemCoupon *rc = o->cmd->redeem_coupon;
    const char *code = coupons_plan_redeem(l->cards->coupons, o->cmd, rc->coupon_id, rc->amount,
                                           &o->coupon, &o->discount);
    if (code) {
        outcome_reject(o, code,
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
        struct card *k = cards_own_card(l, cmd, p->card_id);
        if (!k)
            return "card_not_found";
        *card_out =
            (struct price_card){.st = &k->st,
                                .discount_bp = k->discount_bp,
                                .branch_ok = cards_branch_allowed(&k->branches, cmd->branch_id)};
        *card = card_out;
    }
    if (p->coupon_id[0]) {
        struct ledger_coupon *k = coupons_get(l->cards->coupons, cmd->tenant_id, p->coupon_id);
        /* another member's coupon is as unknown as one never issued */
        if (!k || !k->found || strcmp(k->member_id, cmd->member_id) != 0)
            return "coupon_not_found";
        /* a free item coupon takes the item off only when bought */
        k->st.free_item_price = 0;
        for (size_t i = 0; k->st.kind == COUPON_FREE_ITEM && i < p->n_items; i++)
            if (strcmp(p->items[i]->sku, k->st.free_sku) == 0 && p->items[i]->quantity > 0) {
                k->st.free_item_price = p->items[i]->unit_price;
                break;
            }
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
    cs->min_spend = k->st.min_spend;
    cs->free_sku = (char *)k->st.free_sku;
}
