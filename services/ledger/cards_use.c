/* A card used at a branch (with the fraud signals a use may raise) and a
 * card frozen for some days. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cards_internal.h"
#include "log/log.h"

static void note_fraud(struct outcome *o, const struct card_limits *lim, struct card *k,
                       int64_t previous_use_us, const char *previous_branch)
{
    const Envelope *e = o->cmd;
    bool other = previous_branch[0] && strcmp(previous_branch, e->branch_id) != 0;
    o->fraud = rules_card_fraud(lim, &k->st, e->occurred_at_us, other, previous_use_us,
                                &o->fraud_in_window);
    o->previous_use_us = previous_use_us;
    cards_copy_id(o->previous_branch, previous_branch);
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

/* The member's card the command names, now o's card; NULL, with o
 * rejected, when the member has no such card. */
static struct card *command_card(struct ledger_ctx *l, struct outcome *o, const char *card_id)
{
    struct card *k = cards_own_card(l, o->cmd, card_id);
    if (!k)
        outcome_reject(o, "card_not_found", "the member has no such card");
    o->card = k;
    return k;
}

void cards_decide_use(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *e = o->cmd;
    struct card *k = command_card(l, o, e->use_card->card_id);
    if (!k)
        return;
    const struct card_limits *lim = &cards_limits_find(l->cards, e->tenant_id)->lim;
    struct card_state st = k->st;
    int64_t previous_use_us = st.recent_count ? st.recent_uses_us[st.recent_count - 1] : 0;
    enum card_result r = rules_card_use(lim, &st, e->occurred_at_us, e->use_card->utc_offset_s,
                                        cards_branch_allowed(&k->branches, e->branch_id));
    if (r != CARD_OK) {
        outcome_reject(o, rules_card_code(r), use_detail(r));
        return;
    }
    if (k->st.kind == CARD_COUNT) {
        char holder[ACCOUNT_MAX], used[ACCOUNT_MAX];
        snprintf(holder, sizeof(holder), "member:%s", e->member_id);
        snprintf(used, sizeof(used), "tenant:%s:branch:%s:card_uses_redeemed", e->tenant_id,
                 e->branch_id);
        outcome_line(o, holder, "card_uses", -1);
        outcome_line(o, used, "card_uses", 1);
    }
    k->st = st;
    note_fraud(o, lim, k, previous_use_us, k->last_branch);
    cards_copy_id(k->last_branch, e->branch_id);
    k->dirty = true;
    k->version++;
}

void cards_decide_freeze(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *e = o->cmd;
    struct card *k = command_card(l, o, e->freeze_card->card_id);
    if (!k)
        return;
    struct card_state st = k->st;
    enum card_result r = rules_card_freeze(&st, e->freeze_card->days, e->occurred_at_us);
    if (r != CARD_OK) {
        outcome_reject(o, rules_card_code(r),
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
