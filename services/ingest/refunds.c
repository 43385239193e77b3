/* POST /v1/members/{id}/refunds, answered with the ledger's verdict:
 *   {"kind":"stored_value", "reason", "branch_id", "principal"?, "refund_method"?}
 *     pays back unspent principal (all of it without "principal"); the
 *     bonus is forfeited in proportion and the tenant's fee kept;
 *   {"kind":"purchase", "reason", "branch_id", "purchase_operation_id", "amount"?}
 *     refunds a purchase, whatever paid for it, whole or (with "amount",
 *     of its charged amount) in parts: each part returns its share of the
 *     stored value the purchase drew and takes back its share of the
 *     points it earned (points_reversed, points_unrecovered when spent).
 * A reason is always required: it goes to the journal and the refund
 * trail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/validate.h"
#include "ingest.h"
#include "money/money.h"

static const char *const refund_fields[] = {
    "kind",   "reason", "branch_id", "principal", "refund_method", "purchase_operation_id",
    "amount", NULL};
static const char *const refund_kinds[] = {"stored_value", "purchase", NULL};
static const char *const refund_methods[] = {"cash",   "bank_card", "wechat_pay",
                                             "alipay", "original",  NULL};

static void validate_kind_fields(struct validation *v, json_t *b, const char *kind)
{
    const char *s = NULL;
    int64_t n = 0;
    bool purchase = kind && strcmp(kind, "purchase") == 0;
    if (purchase) {
        if (ingest_validate_id(v, b, "purchase_operation_id", true, &s) && !uuid_is_valid(s))
            validation_add(v, "purchase_operation_id", "must be the purchase's operation_id");
        validate_int(v, b, "amount", false, 1, MONEY_AMOUNT_MAX, &n);
        if (json_object_get(b, "principal") || json_object_get(b, "refund_method"))
            validation_add(v, "principal",
                           "a purchase refund returns its share of what it drew: no principal");
        return;
    }
    if (json_object_get(b, "amount"))
        validation_add(v, "amount", "only for kind purchase (stored value refunds: principal)");
    validate_int(v, b, "principal", false, 1, MONEY_AMOUNT_MAX, &n);
    validate_enum(v, b, "refund_method", false, refund_methods, &s);
    if (json_object_get(b, "purchase_operation_id"))
        validation_add(v, "purchase_operation_id", "only for kind purchase");
}

static bool validate_refund(struct req *r)
{
    struct validation v;
    validation_init(&v);
    json_t *b = r->body;
    const char *kind = NULL, *reason = NULL, *branch = NULL;
    validate_no_unknown_fields(&v, b, refund_fields);
    validate_enum(&v, b, "kind", true, refund_kinds, &kind);
    validate_text(&v, b, "reason", true, 1, TEXT_REASON_CHARS_MAX, TEXT_REASON_BYTES_MAX, &reason);
    ingest_validate_id(&v, b, "branch_id", true, &branch);
    validate_kind_fields(&v, b, kind);
    if (!req_validated(r, &v))
        return false;
    if (!req_at_branch(r, branch))
        return false;
    return true;
}

static void refund_send(struct req *r)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    RefundStoredValue sv;
    RefundPurchase purchase;
    ledger_request_meta(r, &meta);
    envelope_init(&env, &actor, &meta);
    const char *kind = json_string_value(json_object_get(r->body, "kind"));
    const char *reason = json_string_value(json_object_get(r->body, "reason"));
    if (strcmp(kind, "purchase") == 0) {
        tessera__ledger__v1__refund_purchase__init(&purchase);
        purchase.command_id = r->command_id;
        purchase.purchase_command_id =
            (char *)json_string_value(json_object_get(r->body, "purchase_operation_id"));
        purchase.reason = (char *)reason;
        purchase.amount = json_integer_value(json_object_get(r->body, "amount")); /* 0: the rest */
        env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_PURCHASE;
        env.refund_purchase = &purchase;
    } else {
        const char *method = json_string_value(json_object_get(r->body, "refund_method"));
        tessera__ledger__v1__refund_stored_value__init(&sv);
        sv.command_id = r->command_id;
        sv.principal = json_integer_value(json_object_get(r->body, "principal"));
        sv.reason = (char *)reason;
        sv.refund_method = (char *)(method ? method : "original");
        env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_STORED_VALUE;
        env.refund_stored_value = &sv;
    }
    ledger_request_send(r, &env);
}

/* Columns: the purchase's verdict (kind purchase; NULL when unknown: the
 * ledger answers for it), whether stored value was credited to the member
 * at another branch (kind stored_value). */
static void on_pos_checked(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    bool foreign = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        size_t len = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 0), &len);
        char why[128];
        Envelope *env = raw ? envelope_decode(raw, len, why, sizeof(why)) : NULL;
        PQfreemem(raw);
        foreign = !env || !env->branch_id || strcmp(env->branch_id, r->caller.branch_id) != 0;
        envelope_free(env);
    }
    if (foreign) {
        req_fail(r, 403, "forbidden",
                 "this value was sold at another branch: refund it there, or at "
                 "headquarters with an admin key");
        return;
    }
    ledger_request_check_then(r, refund_send);
}

/* A pos key refunds only what its own branch took: a purchase recorded at
 * its branch, or stored value when none of the member's was sold (topped
 * up, or put back by a refund) at another branch. The member's balance is
 * one pool, so a branch till cannot pay out value another branch holds;
 * HQ (an admin key) refunds across branches. */
static void pos_check_then_send(struct req *r)
{
    const char *kind = json_string_value(json_object_get(r->body, "kind"));
    const char *purchase = json_string_value(json_object_get(r->body, "purchase_operation_id"));
    const char *p[5] = {r->caller.tenant_id, r->member_id, r->caller.branch_id, kind,
                        purchase ? purchase : ""};
    if (pg_pool_query(r->app->pg,
                      "SELECT (SELECT verdict FROM ledger.read_commands WHERE tenant_id = $1 AND "
                      "command_id = $5 AND member_id = $2 AND command_type = 'purchase'), "
                      "$4 = 'stored_value' AND EXISTS (SELECT 1 FROM ledger.read_journal WHERE "
                      "tenant_id = $1 AND member_id = $2 AND account = 'member:' || $2 AND "
                      "asset = 'sv_principal' AND amount > 0 AND branch_id IS DISTINCT FROM $3)",
                      5, p, on_pos_checked, r) < 0)
        req_fail_db(r, "queue full");
}

static void refund_authenticated(struct req *r)
{
    if (strcmp(r->caller.scope, "admin") != 0 && strcmp(r->caller.scope, "pos") != 0) {
        req_fail(r, 403, "forbidden", "this key may not move money");
        return;
    }
    if (!ledger_request_member_path(r) || !validate_refund(r))
        return;
    r->audit_action = "refund";
    commands_read_prefer_wait(r);
    if (strcmp(r->caller.scope, "pos") == 0)
        pos_check_then_send(r);
    else
        ledger_request_check_then(r, refund_send);
}

void refunds_create(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), refund_authenticated);
}
