/* What a card command adds to the ledger's one verdict (apply.c): the
 * card or product and the coupon a LedgerPosted carries, and the facts a
 * posted card command emits (CardChanged, CardFraudAlert). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "cards_internal.h"
#include "log/log.h"

/* The card (or, for a product definition, the product's terms) as the
 * verdict and facts carry it. Borrows strings from o. */
static void outcome_card(const struct outcome *o, CardState *cs)
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

void cards_fill_posted(const struct outcome *o, LedgerPosted *posted, CardState *cs,
                       CouponState *coupon)
{
    posted->charged = o->amount;
    posted->points_paid = o->points_paid; /* a redemption's card days */
    if (o->card || o->product) {
        outcome_card(o, cs);
        posted->card = cs;
    }
    if (o->coupon) {
        cards_coupon_state(o->coupon, coupon);
        posted->coupon = coupon;
        posted->discount_applied = o->discount;
        posted->amount =
            o->cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REDEEM_COUPON
                ? o->cmd->redeem_coupon->amount
                : 0;
        posted->charged = posted->amount - o->discount > 0 ? posted->amount - o->discount : 0;
    }
}

/* CardChanged for tiering, campaign (renewal reminders) and analytics. */
static uint8_t *encode_change(const struct outcome *o, size_t *len, char event_id[UUID_STR_SIZE])
{
    static const char *const changes[] = {"issued", "renewed", "used", "frozen", "extended"};
    const char *type = cards_command_type(o->cmd);
    size_t which = strcmp(type, "card_issue") == 0    ? 0
                   : strcmp(type, "card_renew") == 0  ? 1
                   : strcmp(type, "card_use") == 0    ? 2
                   : strcmp(type, "card_extend") == 0 ? 4
                                                      : 3;
    struct outcome_event ev;
    CardState cs;
    CardChanged ch;
    outcome_event_init(&ev, o, true);
    memcpy(event_id, ev.meta.event_id, UUID_STR_SIZE);
    outcome_card(o, &cs);
    tessera__cards__v1__card_changed__init(&ch);
    ch.command_id = (char *)cards_command_id(o->cmd);
    ch.change = (char *)changes[which];
    ch.card = &cs;
    ch.payment_method = (char *)(o->payment_method ? o->payment_method : "");
    ev.env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CARD_CHANGED;
    ev.env.card_changed = &ch;
    return envelope_encode(&ev.env, len);
}

static uint8_t *encode_alert(const struct outcome *o, size_t *len)
{
    struct outcome_event ev;
    CardFraudAlert a;
    outcome_event_init(&ev, o, true);
    tessera__cards__v1__card_fraud_alert__init(&a);
    a.card_id = (char *)o->card->card_id;
    a.reason = o->fraud == CARD_FRAUD_BURST ? "burst" : "distant_branches";
    a.uses_in_window = o->fraud_in_window;
    a.previous_branch_id = (char *)o->previous_branch;
    a.previous_use_us = o->previous_use_us;
    ev.env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CARD_FRAUD_ALERT;
    ev.env.card_fraud_alert = &a;
    return envelope_encode(&ev.env, len);
}

void cards_emit_facts(struct pipeline_batch *b, const struct outcome *o, const char *key,
                      char change_id[UUID_STR_SIZE])
{
    size_t len = 0;
    uint8_t *fact = NULL;
    change_id[0] = '\0';
    if (o->card) {
        fact = encode_change(o, &len, change_id);
        if (fact)
            pipeline_emit(b, TOPIC_LEDGER_EVENTS, key, fact, len);
        else
            change_id[0] = '\0';
    }
    if (o->fraud != CARD_FRAUD_NONE) {
        fact = encode_alert(o, &len);
        if (fact)
            pipeline_emit(b, TOPIC_LEDGER_EVENTS, key, fact, len);
        log_fields(LOG_WARN, "card fraud alert", "card_id", o->card->card_id, "reason",
                   o->fraud == CARD_FRAUD_BURST ? "burst" : "distant_branches", NULL);
    }
}
