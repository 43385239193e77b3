/* Receipts: what a posted command's fact asks notification to tell the
 * member (issue 11). A top-up, a purchase, a refund, a card sold and a
 * card used each add one NotifyRequest to the batch's outbox, in the same
 * transaction as the fact, keyed by member: a rejected or duplicate
 * command posts no fact and so sends no receipt, and a replayed batch
 * rolls both back together. Its request_id is "<template>:<fact event
 * id>", so notification keeps one outcome per fact even if the outbox
 * relays the request twice.
 *
 * Points commands (earned, adjusted, expired, vested) and tenant commands
 * send none; card expiry has no ledger fact (renewal reminders are the
 * campaign's), so there is no card.expiring receipt here.
 *
 * Kept cheap for the hot path: variables point into the outcome and a
 * stack array; one envelope encoded per fact, nothing allocated besides
 * the encoded buffer the outbox takes. */
#include <assert.h>
#include <string.h>

#include "bus/topics.h"
#include "cards_internal.h"
#include "ledger.h"
#include "tessera/notification/v1/notification.pb-c.h"

typedef Tessera__Notification__V1__NotifyRequest NotifyRequest;
typedef Tessera__Notification__V1__Variable Variable;

#define RECEIPT_VARS_MAX       20
#define RECEIPT_REQUEST_ID_MAX (32 + UUID_STR_SIZE)

/* A receipt's variables, being built on the stack. */
struct receipt_vars {
    Variable v[RECEIPT_VARS_MAX];
    Variable *ptrs[RECEIPT_VARS_MAX];
    size_t n;
};

static Variable *var_add(struct receipt_vars *rv, const char *name)
{
    assert(rv->n < RECEIPT_VARS_MAX);
    Variable *v = &rv->v[rv->n];
    tessera__notification__v1__variable__init(v);
    v->name = (char *)name;
    rv->ptrs[rv->n++] = v;
    return v;
}

static void var_money(struct receipt_vars *rv, const char *name, int64_t minor)
{
    Variable *v = var_add(rv, name);
    v->value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_MONEY_MINOR;
    v->money_minor = minor;
}

static void var_number(struct receipt_vars *rv, const char *name, int64_t n)
{
    Variable *v = var_add(rv, name);
    v->value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_NUMBER;
    v->number = n;
}

static void var_text(struct receipt_vars *rv, const char *name, const char *text)
{
    Variable *v = var_add(rv, name);
    v->value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
    v->text = (char *)text;
}

static void var_time(struct receipt_vars *rv, const char *name, int64_t us)
{
    Variable *v = var_add(rv, name);
    v->value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TIME_US;
    v->time_us = us;
}

/* The member's balances after the command, as every receipt shows them. */
static void vars_balances(struct receipt_vars *rv, const struct ledger_member *m)
{
    var_money(rv, "balance.stored_value", m->sv.principal + m->sv.bonus);
    var_money(rv, "balance.principal", m->sv.principal);
    var_money(rv, "balance.bonus", m->sv.bonus);
    var_number(rv, "balance.points", m->points);
}

/* The card's variables; its name is its product's when the batch loaded
 * the product (a sale), else the product id (a use knows only the card). */
static void vars_card(struct ledger_ctx *l, struct receipt_vars *rv, const struct card *k)
{
    const struct product *p = cards_product_find(l->cards, k->tenant_id, k->product_id, false);
    var_text(rv, "card.name", p && p->found && p->name[0] ? p->name : k->product_id);
    var_text(rv, "card.id", k->card_id);
    var_text(rv, "card.product_id", k->product_id);
    var_text(rv, "card.kind", rules_card_kind_name(k->st.kind));
    var_number(rv, "card.uses_left", k->st.uses_left);
    var_time(rv, "card.valid_to", k->st.valid_to_us);
}

/* The template of a posted command's receipt, filling its own variables;
 * NULL when the command sends none. */
static const char *receipt_template(struct ledger_ctx *l, const struct outcome *o,
                                    struct receipt_vars *rv)
{
    const Envelope *c = o->cmd;
    if (c->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE) {
        if (c->top_up_stored_value->bonus_grant > 0)
            return NULL; /* a reward: its giver tells the member */
        var_money(rv, "amount", o->amount);
        var_money(rv, "bonus", o->bonus);
        return "receipt.top_up";
    }
    if (c->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_RECORD_PURCHASE) {
        var_money(rv, "amount", o->amount);
        var_money(rv, "charged", o->charged);
        var_money(rv, "discount", o->discount);
        var_text(rv, "payment_method", c->record_purchase->payment_method);
        var_money(rv, "paid.stored_value", o->paid_principal + o->paid_bonus);
        return "receipt.purchase";
    }
    if (o->is_refund) {
        var_text(rv, "refund.kind", o->refund_kind ? o->refund_kind : "");
        var_money(rv, "amount", o->refund_payout);
        var_money(rv, "fee", o->refund_fee);
        var_number(rv, "points.reversed", o->points_reversed);
        return "receipt.refund";
    }
    if (!o->card || !cards_command_id(c))
        return NULL;
    const char *type = cards_command_type(c);
    if (strcmp(type, "card_issue") == 0) {
        var_money(rv, "amount", o->amount);
        vars_card(l, rv, o->card);
        var_number(rv, "card.uses", o->card->st.uses_left);
        var_time(rv, "card.expires_at", o->card->st.valid_to_us);
        return "card.sold";
    }
    if (strcmp(type, "card_use") == 0) {
        vars_card(l, rv, o->card);
        return "card.used";
    }
    return NULL;
}

void receipts_emit(struct ledger_ctx *l, struct pipeline_batch *b, const struct outcome *o,
                   const char *fact_event_id)
{
    if (!o->member || !fact_event_id[0])
        return; /* a tenant command: nobody to tell */
    struct receipt_vars rv = {.n = 0};
    const char *template = receipt_template(l, o, &rv);
    if (!template)
        return;
    vars_balances(&rv, o->member);
    var_text(&rv, "branch.id", o->cmd->branch_id);
    var_text(&rv, "branch.name", o->cmd->branch_id); /* the ledger knows no branch names */
    var_time(&rv, "time", o->cmd->occurred_at_us);

    char request_id[RECEIPT_REQUEST_ID_MAX];
    int n = snprintf(request_id, sizeof(request_id), "%s:%s", template, fact_event_id);
    assert(n > 0 && (size_t)n < sizeof(request_id));
    NotifyRequest req;
    tessera__notification__v1__notify_request__init(&req);
    req.request_id = request_id;
    req.template_ = (char *)template;
    req.purpose = "transactional";
    req.priority = "normal";
    req.n_variables = rv.n;
    req.variables = rv.ptrs;

    struct outcome_event ev;
    outcome_event_init(&ev, o, true);
    ev.env.causation_id = (char *)fact_event_id; /* the fact it tells of */
    ev.env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST;
    ev.env.notify_request = &req;
    size_t len = 0;
    uint8_t *out = envelope_encode(&ev.env, &len);
    assert(out); /* bounded fields: an encoding failure is a programmer error */
    pipeline_emit(b, TOPIC_NOTIFY_REQUESTS, o->cmd->member_id, out, len);
}
