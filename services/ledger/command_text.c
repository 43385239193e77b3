/* The text of a command that the ledger copies into fixed buffers or
 * stores: checked against the limits ingest validates requests with
 * (events/text_limits.h) before anything is decided, so no buffer ever
 * cuts it. A cut could split a UTF-8 character, and PostgreSQL refuses
 * the whole batch that carries the broken text. Ingest never sends longer
 * text; a command that does comes from elsewhere and is dead-lettered. */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "events/card_types.h"
#include "events/text_limits.h"
#include "ledger.h"

static bool fits(const char *s, size_t max_bytes)
{
    return s == NULL || strlen(s) <= max_bytes;
}

static bool ids_fit(const char *const *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!fits(ids[i], TEXT_ID_BYTES_MAX))
            return false;
    return true;
}

#define IDS_FIT(...)                                                                               \
    ids_fit((const char *const[]){__VA_ARGS__},                                                    \
            sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* The ids (and id-like words) of card and coupon commands. */
static bool card_ids_fit(const Envelope *env)
{
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_DEFINE_PRODUCT: {
        const DefineProduct *d = env->define_product;
        for (size_t i = 0; i < d->n_branch_ids; i++)
            if (!fits(d->branch_ids[i], TEXT_ID_BYTES_MAX))
                return false;
        return IDS_FIT(d->product_id) && fits(d->name, TEXT_NAME_BYTES_MAX);
    }
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_CARD: {
        const IssueCard *c = env->issue_card;
        return IDS_FIT(c->card_id, c->product_id, c->payment_method, c->renew_card_id);
    }
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_USE_CARD:
        return IDS_FIT(env->use_card->card_id);
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_FREEZE_CARD:
        return IDS_FIT(env->freeze_card->card_id);
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_COUPON:
        return IDS_FIT(env->issue_coupon->coupon_id) &&
               fits(env->issue_coupon->name, TEXT_NAME_BYTES_MAX);
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REDEEM_COUPON:
        return IDS_FIT(env->redeem_coupon->coupon_id);
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXTEND_CARD:
        /* the reason is a cause's id with a prefix: id-sized, so the
         * journal reason (with the card and product) always fits */
        return IDS_FIT(env->extend_card->product_id, env->extend_card->reason);
    default:
        return true;
    }
}

const char *ledger_command_text_problem(const Envelope *env)
{
    bool ok = true;
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE:
        ok = IDS_FIT(env->top_up_stored_value->payment_method);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_RECORD_PURCHASE: {
        const RecordPurchase *p = env->record_purchase;
        ok = IDS_FIT(p->payment_method, p->coupon_id, p->card_id);
        break;
    }
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS:
        ok = fits(env->adjust_points->reason, TEXT_REASON_BYTES_MAX);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXPIRE_POINTS:
        ok = IDS_FIT(env->expire_points->lot_id);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARN_POINTS:
        ok = IDS_FIT(env->earn_points->purchase_command_id) &&
             fits(env->earn_points->rule, POINTS_RULE_MAX);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_VEST_POINTS:
        ok = IDS_FIT(env->vest_points->lot_id);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_STORED_VALUE:
        ok = fits(env->refund_stored_value->reason, TEXT_REASON_BYTES_MAX);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_PURCHASE:
        ok = fits(env->refund_purchase->reason, TEXT_REASON_BYTES_MAX) &&
             IDS_FIT(env->refund_purchase->purchase_command_id);
        break;
    default:
        ok = card_ids_fit(env);
        break;
    }
    return ok ? NULL : "a text field of the command is longer than its limit";
}
