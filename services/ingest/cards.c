/* Member cards: sell (or renew) a card of a product, use it at a branch,
 * freeze it. Each request is checked, its member, branch and card
 * confirmed, its Idempotency-Key claimed, then sent to the ledger as a
 * command the ledger applies exactly once; the answer is the ledger's
 * verdict, like a top-up's. GET /v1/members/{id} lists the cards from the
 * ledger's Redis cache, or on a miss from its projection (read only: only
 * the ledger writes either), with each card's status computed at read
 * time from its validity. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock/clock.h"
#include "http/validate.h"
#include "ingest.h"
#include "events/card_types.h"
#include "log/log.h"
#include "metrics/metrics.h"

#define FREEZE_DAYS_MAX 366

enum card_route { ROUTE_ISSUE, ROUTE_RENEW, ROUTE_USE, ROUTE_FREEZE };

static const char *const issue_fields[] = {"product_id", "branch_id", "payment", NULL};
static const char *const renew_fields[] = {"branch_id", "payment", NULL};
static const char *const use_fields[] = {"branch_id", NULL};
static const char *const freeze_fields[] = {"days", "branch_id", NULL};
static const char *const pay_methods[] = {"cash",   "bank_card",    "wechat_pay",
                                          "alipay", "stored_value", NULL};

static void validate_payment(struct validation *v, json_t *b)
{
    const char *method;
    json_t *payment = json_object_get(b, "payment");
    if (!json_is_object(payment))
        validation_add(v, "payment", "required: an object with a method");
    else if (!validate_enum(v, payment, "method", true, pay_methods, &method))
        validation_add(v, "payment.method",
                       "one of cash, bank_card, wechat_pay, alipay, stored_value");
}

/* Checks the body for the route; answers and returns false when not
 * acceptable. Sets r->branch_id ("" when a freeze names none). */
static bool validate_body(struct req *r, enum card_route route)
{
    static const char *const *const fields[] = {issue_fields, renew_fields, use_fields,
                                                freeze_fields};
    struct validation v;
    validation_init(&v);
    json_t *b = r->body;
    const char *branch = "", *s;
    int64_t n;
    validate_no_unknown_fields(&v, b, fields[route]);
    ingest_validate_id(&v, b, "branch_id", route != ROUTE_FREEZE, &branch);
    if (route == ROUTE_ISSUE)
        validate_text(&v, b, "product_id", true, 1, TEXT_PRODUCT_ID_CHARS_MAX, TEXT_ID_BYTES_MAX,
                      &s);
    if (route == ROUTE_ISSUE || route == ROUTE_RENEW)
        validate_payment(&v, b);
    if (route == ROUTE_FREEZE)
        validate_int(&v, b, "days", true, 1, FREEZE_DAYS_MAX, &n);
    if (!req_validated(r, &v))
        return false;
    /* A pos key always acts at its branch: a freeze that names none is
     * made there (and checked there, see on_checked), never nowhere. */
    if (!branch[0] && strcmp(r->caller.scope, "pos") == 0)
        branch = r->caller.branch_id;
    if (!req_at_branch(r, branch))
        return false;
    return true;
}

/* ------------------------------------------------------- sending */
void cards_send_envelope(struct req *r, Envelope *env)
{
    ledger_request_send(r, env); /* encodes, 413 when too large, waits */
}

static const char *payment_method(struct req *r)
{
    return json_string_value(json_object_get(json_object_get(r->body, "payment"), "method"));
}

/* A sold card's id is its command's id: a resent command names the same
 * card, and the ledger applies it once. */
static void send_issue(struct req *r)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    IssueCard ic;
    ledger_request_meta(r, &meta);
    envelope_init(&env, &actor, &meta);
    tessera__cards__v1__issue_card__init(&ic);
    ic.command_id = r->command_id;
    ic.card_id = r->command_id;
    ic.product_id = (char *)json_string_value(json_object_get(r->body, "product_id"));
    ic.payment_method = (char *)payment_method(r);
    const char *renew = http_param(r->ex, "card_id");
    ic.renew_card_id = (char *)(renew ? renew : "");
    ic.utc_offset_s = r->utc_offset_s;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_CARD;
    env.issue_card = &ic;
    cards_send_envelope(r, &env);
}

static void send_use(struct req *r)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    UseCard uc;
    ledger_request_meta(r, &meta);
    envelope_init(&env, &actor, &meta);
    tessera__cards__v1__use_card__init(&uc);
    uc.command_id = r->command_id;
    uc.card_id = (char *)http_param(r->ex, "card_id");
    uc.utc_offset_s = r->utc_offset_s;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_USE_CARD;
    env.use_card = &uc;
    cards_send_envelope(r, &env);
}

static void send_freeze(struct req *r)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    FreezeCard fc;
    ledger_request_meta(r, &meta);
    envelope_init(&env, &actor, &meta);
    tessera__cards__v1__freeze_card__init(&fc);
    fc.command_id = r->command_id;
    fc.card_id = (char *)http_param(r->ex, "card_id");
    fc.days = json_integer_value(json_object_get(r->body, "days"));
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_FREEZE_CARD;
    env.freeze_card = &fc;
    cards_send_envelope(r, &env);
}

/* ------------------------------------------------------- checking */
/* Columns: member exists, branch exists (or none named), the tenant's UTC
 * offset now, the card's product when the member holds that card, and
 * whether the card may be used at the branch (or none named). */
static void on_checked(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!req_member_exists(r, res, err))
        return;
    if (!req_branch_exists(r, res, 1))
        return;
    r->utc_offset_s = (int32_t)strtol(PQgetvalue(res, 0, 2), NULL, 10);
    if (http_param(r->ex, "card_id") && PQgetisnull(res, 0, 3)) {
        req_fail(r, 404, "card_not_found", "the member has no such card");
        return;
    }
    /* A freeze at a branch is that branch acting on the card: only where
     * the card is valid, like a use (the ledger checks uses itself). */
    if (r->next == send_freeze && strcmp(PQgetvalue(res, 0, 4), "t") != 0) {
        req_fail(r, 409, "card_not_valid_here", "the card is not valid at this branch");
        return;
    }
    if (r->next == send_issue && http_param(r->ex, "card_id"))
        json_object_set_new(r->body, "product_id", json_string(PQgetvalue(res, 0, 3)));
    uuid7_generate(r->command_id);
    idem_claim_then(r, r->next);
}

static void card_authenticated(struct req *r, enum card_route route, void (*send)(struct req *))
{
    if (strcmp(r->caller.scope, "admin") != 0 && strcmp(r->caller.scope, "pos") != 0) {
        req_fail(r, 403, "forbidden", "this key may not act on cards");
        return;
    }
    const char *id = http_param(r->ex, "member_id"), *card = http_param(r->ex, "card_id");
    if (!id || !uuid_is_valid(id) || (card && !uuid_is_valid(card))) {
        req_fail(r, 404, card && id && uuid_is_valid(id) ? "card_not_found" : "not_found",
                 card ? "no such member or card" : "no such member");
        return;
    }
    snprintf(r->member_id, sizeof(r->member_id), "%s", id);
    if (!req_read_body(r))
        return;
    if (!validate_body(r, route))
        return; /* ended */
    cards_check_then_send(r, send);
}

/* clang-format off */
static const char check_sql[] =
    "SELECT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 AND member_id = $2), "
    "CASE WHEN $3 = '' THEN 't' ELSE " BRANCH_STATE_SQL("$1", "$3") " END, "
    TENANT_UTC_OFFSET_SQL("t.time_zone", "$5") ", "
    "(SELECT product_id FROM ledger.read_cards WHERE tenant_id = $1 AND "
    "card_id = $4 AND member_id = $2), "
    "($3 = '' OR coalesce((SELECT cardinality(branch_ids) = 0 OR "
    "$3 = ANY(branch_ids) FROM ledger.read_cards WHERE tenant_id = $1 AND "
    "card_id = $4 AND member_id = $2), true)) "
    "FROM tenants t WHERE t.tenant_id = $1";
/* clang-format on */

/* Confirms the member, the branch (when one is named) and the card (when
 * the path names one), reads the tenant's UTC offset, claims the
 * Idempotency-Key, then calls send. */
void cards_check_then_send(struct req *r, void (*send)(struct req *r))
{
    commands_read_prefer_wait(r);
    r->next = send;
    const char *card = http_param(r->ex, "card_id");
    char now_us[24];
    snprintf(now_us, sizeof(now_us), "%lld", (long long)clock_now_us());
    const char *p[5] = {r->caller.tenant_id, r->member_id, r->branch_id, card ? card : "", now_us};
    if (pg_pool_query(r->app->pg, check_sql, 5, p, on_checked, r) < 0)
        req_fail_db(r, "queue full");
}

static void issue_authenticated(struct req *r)
{
    card_authenticated(r, ROUTE_ISSUE, send_issue);
}

static void renew_authenticated(struct req *r)
{
    card_authenticated(r, ROUTE_RENEW, send_issue);
}

static void use_authenticated(struct req *r)
{
    card_authenticated(r, ROUTE_USE, send_use);
}

static void freeze_authenticated(struct req *r)
{
    card_authenticated(r, ROUTE_FREEZE, send_freeze);
}

void cards_issue(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), issue_authenticated);
}

void cards_renew(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), renew_authenticated);
}

void cards_use(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), use_authenticated);
}

void cards_freeze(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), freeze_authenticated);
}

/* ------------------------------------------------------- answers */
static json_t *time_or_null(int64_t us)
{
    if (us <= 0)
        return json_null();
    char text[32];
    event_format_time(us, text);
    return json_string(text);
}

static json_t *card_json(const CardState *c)
{
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:I}", "card_id", c->card_id, "product_id",
                  c->product_id, "kind", c->kind, "valid_from", time_or_null(c->valid_from_us),
                  "valid_to", time_or_null(c->valid_to_us), "freeze_days_left",
                  (json_int_t)c->freeze_days_left, "uses_today", (json_int_t)c->uses_today);
    if (strcmp(c->kind, "count") == 0)
        json_object_set_new(j, "uses_left", json_integer(c->uses_left));
    if (strcmp(c->kind, "discount") == 0)
        json_object_set_new(j, "discount_bp", json_integer(c->discount_bp));
    if (c->frozen_until_us > 0)
        json_object_set_new(j, "frozen_until", time_or_null(c->frozen_until_us));
    return j;
}

int cards_verdict_to_response(const Envelope *env, json_t **body)
{
    if (env->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_POSTED)
        return -1;
    const LedgerPosted *v = env->ledger_posted;
    const char *type = v->command_type;
    if (strncmp(type, "coupon_", 7) == 0 && v->coupon)
        return coupons_verdict_to_response(v, body);
    if (strcmp(type, "card_limits") == 0) {
        *body = json_pack("{s:s, s:s, s:s}", "operation_id", v->command_id, "change_id",
                          v->command_id, "status", "applied"); /* GET shows the version */
        return 200;
    }
    if (!v->card || (strncmp(type, "card_", 5) != 0 && strcmp(type, "product_define") != 0))
        return -1;
    if (strcmp(type, "product_define") == 0) {
        *body = json_pack("{s:s, s:s, s:s, s:I, s:s}", "operation_id", v->command_id, "product_id",
                          v->card->product_id, "kind", v->card->kind, "price",
                          (json_int_t)v->card->price, "status", "defined");
        return 201;
    }
    *body = card_json(v->card);
    if (strcmp(type, "card_use") != 0)
        json_object_del(*body, "uses_today"); /* a count of the day of the last use */
    json_object_set_new(*body, "operation_id", json_string(v->command_id));
    static const char *const types[] = {"card_issue", "card_renew", "card_use", "card_freeze"};
    static const char *const statuses[] = {"issued", "renewed", "used", "frozen"};
    for (size_t i = 0; i < 4; i++)
        if (strcmp(type, types[i]) == 0)
            json_object_set_new(*body, "status", json_string(statuses[i]));
    if (strcmp(type, "card_issue") == 0 || strcmp(type, "card_renew") == 0) {
        json_object_set_new(*body, "charged", json_integer(v->charged));
        json_object_set_new(*body, "paid_principal", json_integer(v->paid_principal));
        json_object_set_new(*body, "paid_bonus", json_integer(v->paid_bonus));
        json_object_set_new(*body, "balances", balances_json_of(v->balances));
    }
    return 201;
}

/* ------------------------------------------------------- the view */
json_t *cards_time_or_null(int64_t us)
{
    return time_or_null(us);
}

/* A card as the member view shows it, from either source: its status is
 * computed now from its validity, never read from a cache. */
json_t *cards_view_card_json(const struct cache_card *k, int64_t now_us)
{
    CardState c;
    tessera__cards__v1__card_state__init(&c);
    c.card_id = (char *)k->card_id;
    c.product_id = (char *)k->product_id;
    c.kind = (char *)k->kind;
    c.uses_left = k->uses_left;
    c.valid_from_us = k->valid_from_us;
    c.valid_to_us = k->valid_to_us;
    c.frozen_until_us = k->frozen_until_us;
    c.freeze_days_left = k->freeze_days_left;
    c.discount_bp = k->discount_bp;
    json_t *j = card_json(&c);
    json_object_del(j, "uses_today"); /* only meaningful at the moment of a use */
    json_object_set_new(j, "status", json_string(cache_card_status(k, now_us)));
    return j;
}
