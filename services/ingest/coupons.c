/* Coupons: an admin gives a member a single-use coupon (a value or a
 * percentage off, valid for some days); the member redeems it once, on
 * its own here or as coupon_id inside a purchase (commands.c). Both are
 * ledger commands answered with the ledger's verdict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/card_types.h"
#include "http/validate.h"
#include "ingest.h"
#include "money/money.h"

#define COUPON_VALID_DAYS_MAX 3660

static const char *const issue_fields[] = {"kind",       "value", "percent_bp",
                                           "valid_days", "name",  NULL};
static const char *const redeem_fields[] = {"branch_id", "amount", NULL};
static const char *const kinds[] = {"value", "percent", NULL};

/* A coupon's id is its command's id: a resent command names the same
 * coupon, and the ledger applies it once. */
static void send_issue(struct req *r)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    IssueCoupon ic;
    ledger_request_meta(r, &meta);
    envelope_init(&env, &actor, &meta);
    tessera__cards__v1__issue_coupon__init(&ic);
    json_t *b = r->body;
    const char *name = json_string_value(json_object_get(b, "name"));
    ic.command_id = r->command_id;
    ic.coupon_id = r->command_id;
    ic.kind = (char *)json_string_value(json_object_get(b, "kind"));
    ic.value = json_integer_value(json_object_get(b, "value"));
    ic.percent_bp = json_integer_value(json_object_get(b, "percent_bp"));
    ic.valid_days = json_integer_value(json_object_get(b, "valid_days"));
    ic.name = (char *)(name ? name : "");
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_COUPON;
    env.issue_coupon = &ic;
    cards_send_envelope(r, &env);
}

static void send_redeem(struct req *r)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    RedeemCoupon rc;
    ledger_request_meta(r, &meta);
    envelope_init(&env, &actor, &meta);
    tessera__cards__v1__redeem_coupon__init(&rc);
    rc.command_id = r->command_id;
    rc.coupon_id = (char *)http_param(r->ex, "coupon_id");
    rc.amount = json_integer_value(json_object_get(r->body, "amount"));
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REDEEM_COUPON;
    env.redeem_coupon = &rc;
    cards_send_envelope(r, &env);
}

static bool validate_issue(struct validation *v, json_t *b)
{
    const char *kind = NULL, *s;
    int64_t n;
    validate_no_unknown_fields(v, b, issue_fields);
    validate_enum(v, b, "kind", true, kinds, &kind);
    bool value = kind && strcmp(kind, "value") == 0, pct = kind && strcmp(kind, "percent") == 0;
    validate_int(v, b, "value", value, 1, MONEY_AMOUNT_MAX, &n);
    validate_int(v, b, "percent_bp", pct, 1, 10000, &n);
    validate_int(v, b, "valid_days", true, 1, COUPON_VALID_DAYS_MAX, &n);
    validate_text(v, b, "name", false, 1, TEXT_NAME_CHARS_MAX, TEXT_NAME_BYTES_MAX, &s);
    if (!value && json_object_get(b, "value"))
        validation_add(v, "value", "only value coupons have a value");
    if (!pct && json_object_get(b, "percent_bp"))
        validation_add(v, "percent_bp", "only percent coupons have a rate");
    return validation_ok(v);
}

/* Common steps: scope, member id, body; then the route's own checks. */
static void coupon_authenticated(struct req *r, bool issue)
{
    bool admin = strcmp(r->caller.scope, "admin") == 0;
    if (!admin && (issue || strcmp(r->caller.scope, "pos") != 0)) {
        req_fail(r, 403, "forbidden",
                 issue ? "only an admin key may issue coupons" : "this key may not redeem coupons");
        return;
    }
    const char *id = http_param(r->ex, "member_id"), *coupon = http_param(r->ex, "coupon_id");
    if (!id || !uuid_is_valid(id) || (coupon && !uuid_is_valid(coupon))) {
        req_fail(r, 404, coupon ? "coupon_not_found" : "not_found", "no such member or coupon");
        return;
    }
    snprintf(r->member_id, sizeof(r->member_id), "%s", id);
    if (issue)
        r->audit_action = "coupon.issue";
    if (!req_read_body(r))
        return;
    struct validation v;
    validation_init(&v);
    const char *branch = "";
    int64_t n;
    if (issue) {
        validate_issue(&v, r->body);
    } else {
        validate_no_unknown_fields(&v, r->body, redeem_fields);
        ingest_validate_id(&v, r->body, "branch_id", true, &branch);
        validate_int(&v, r->body, "amount", false, 0, MONEY_AMOUNT_MAX, &n);
    }
    if (!req_validated(r, &v))
        return;
    if (!req_at_branch(r, branch))
        return;
    cards_check_then_send(r, issue ? send_issue : send_redeem);
}

static void issue_authenticated(struct req *r)
{
    coupon_authenticated(r, true);
}

static void redeem_authenticated(struct req *r)
{
    coupon_authenticated(r, false);
}

void coupons_issue(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), issue_authenticated);
}

void coupons_redeem(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), redeem_authenticated);
}

static json_t *time_text(int64_t us)
{
    char text[32];
    event_format_time(us, text);
    return json_string(text);
}

int coupons_verdict_to_response(const LedgerPosted *v, json_t **body)
{
    const CouponState *c = v->coupon;
    *body = json_pack("{s:s, s:s, s:s, s:o, s:o, s:s}", "operation_id", v->command_id, "coupon_id",
                      c->coupon_id, "kind", c->kind, "valid_from", time_text(c->valid_from_us),
                      "valid_to", time_text(c->valid_to_us), "status", c->status);
    if (strcmp(c->kind, "value") == 0)
        json_object_set_new(*body, "value", json_integer(c->value));
    else if (strcmp(c->kind, "percent") == 0)
        json_object_set_new(*body, "percent_bp", json_integer(c->percent_bp));
    else
        json_object_set_new(*body, "free_sku", json_string(c->free_sku));
    if (c->min_spend > 0)
        json_object_set_new(*body, "min_spend", json_integer(c->min_spend));
    if (strcmp(v->command_type, "coupon_redeem") == 0) {
        json_object_set_new(*body, "amount", json_integer(v->amount));
        json_object_set_new(*body, "discount_applied", json_integer(v->discount_applied));
        json_object_set_new(*body, "charged", json_integer(v->charged));
    }
    return 201;
}
