/* A ledger verdict as the HTTP answer the POS gets: the same whether it
 * arrives while the request waits, on a retry with the same
 * Idempotency-Key, or through GET /v1/operations/{id}. */
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "problems.h"

static json_t *verdict_balances(const Balances *b)
{
    return balances_json_of(b);
}

/* A posted points command: the points moved and, for a grant, its lot. */
static json_t *verdict_points_json(const LedgerPosted *v)
{
    json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:o}", "operation_id", v->command_id,
                             "posting_id", v->posting_id, "status", "posted", "points",
                             (json_int_t)(v->points_lot ? v->points_lot->points : 0), "balances",
                             verdict_balances(v->balances));
    if (v->points_lot && v->points_lot->lot_id[0] && v->points_lot->points > 0) {
        char expires[32];
        json_object_set_new(body, "lot_id", json_string(v->points_lot->lot_id));
        if (v->points_lot->expires_at_us > 0) {
            event_format_time(v->points_lot->expires_at_us, expires);
            json_object_set_new(body, "expires_at", json_string(expires));
        } else {
            json_object_set_new(body, "expires_at", json_null());
        }
    }
    return body;
}

/* A posted refund: what left the member, what it got back, the fee. */
static json_t *verdict_refund_json(const LedgerPosted *v)
{
    const RefundDetail *d = v->refund;
    if (!d)
        return json_pack("{s:s, s:s}", "operation_id", v->command_id, "status", "refunded");
    bool purchase = strcmp(d->kind, "purchase") == 0;
    json_t *body =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o}", "operation_id", v->command_id, "refund_id",
                  d->refund_id, "posting_id", v->posting_id, "status", "refunded", "kind", d->kind,
                  "principal", (json_int_t)d->principal, "balances", verdict_balances(v->balances));
    if (purchase) {
        json_object_set_new(body, "purchase_operation_id", json_string(d->purchase_command_id));
        json_object_set_new(body, "amount", json_integer(d->amount));
        json_object_set_new(body, "bonus_returned", json_integer(d->bonus));
        json_object_set_new(body, "points_reversed", json_integer(d->points_reversed));
        json_object_set_new(body, "points_unrecovered", json_integer(d->points_unrecovered));
        json_object_set_new(body, "points_returned", json_integer(d->points_returned));
    } else {
        json_object_set_new(body, "bonus_forfeited", json_integer(d->bonus));
        json_object_set_new(body, "fee", json_integer(d->fee));
        json_object_set_new(body, "payout", json_integer(d->payout));
    }
    return body;
}

/* Returns the HTTP status and sets *body (new reference); -1 when env is
 * not a verdict. */
int verdict_to_response(const Envelope *env, json_t **body)
{
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_REJECTED) {
        const LedgerRejected *v = env->ledger_rejected;
        int status = problems_ledger_status(v->code);
        *body = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:o}", "type", HTTP_PROBLEM_TYPE_PREFIX,
                          "title", http_status_title(status), "status", status, "detail", v->detail,
                          "code", v->code, "operation_id", v->command_id, "balances",
                          verdict_balances(v->balances));
        json_object_set_new(*body, "type", json_sprintf(HTTP_PROBLEM_TYPE_PREFIX "%s", v->code));
        return status;
    }
    if (env->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_POSTED)
        return -1;
    int setting_status = settings_verdict_to_response(env->ledger_posted, body);
    if (setting_status >= 0)
        return setting_status;
    int card_status = cards_verdict_to_response(env, body);
    if (card_status >= 0)
        return card_status;
    const LedgerPosted *v = env->ledger_posted;
    if (strncmp(v->command_type, "points_", 7) == 0) {
        *body = verdict_points_json(v);
    } else if (strncmp(v->command_type, "refund_", 7) == 0) {
        *body = verdict_refund_json(v);
    } else if (strcmp(v->command_type, "topup") == 0) {
        *body =
            json_pack("{s:s, s:s, s:s, s:I, s:I, s:o}", "operation_id", v->command_id, "posting_id",
                      v->posting_id, "status", "posted", "amount", (json_int_t)v->amount, "bonus",
                      (json_int_t)v->bonus, "balances", verdict_balances(v->balances));
    } else {
        *body = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "operation_id",
                          v->command_id, "purchase_id", v->purchase_id, "status", "completed",
                          "amount", (json_int_t)v->amount, "charged", (json_int_t)v->charged,
                          "discount_applied", (json_int_t)v->discount_applied, "tier_discount",
                          (json_int_t)v->tier_discount, "paid_principal",
                          (json_int_t)v->paid_principal, "paid_bonus", (json_int_t)v->paid_bonus,
                          "tier", v->tier[0] ? json_string(v->tier) : json_null(), "balances",
                          verdict_balances(v->balances));
        json_object_set_new(*body, "points_paid", json_integer(v->points_paid));
        json_object_set_new(*body, "points_value", json_integer(v->points_value));
    }
    return 201;
}

void answer_json(struct http_exchange *ex, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    http_reply_raw(ex, status, status >= 400 ? "application/problem+json" : "application/json",
                   text ? text : "{}", text ? strlen(text) : 2);
    free(text);
}
