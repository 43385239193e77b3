/* GET /v1/members/{id}/quote?amount=&branch_id=&card_id=: the price this
 * member would pay now for a bill of amount at branch_id, priced like the
 * ledger prices a purchase (libs/pricing, 折上折): the member's tier off
 * the list price first, then, when card_id names one of the member's
 * discount cards usable there now, its rate off what the tier left.
 * Coupons are not quoted: one named at the purchase comes off what this
 * answer charges. A quote changes nothing; the purchase is decided by the
 * ledger, with the tier current when it is made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/validate.h"
#include "ingest.h"
#include "money/money.h"
#include "pricing/pricing.h"

/* Columns of the check below. */
enum { COL_MEMBER, COL_BRANCH, COL_KIND, COL_BP, COL_FROM, COL_TO, COL_FROZEN, COL_HERE };

static int64_t amount_of(struct req *r)
{
    return strtoll(http_query(r->ex, "amount"), NULL, 10);
}

/* Why the card cannot discount this bill now (the ledger's card rule, in
 * its order, with its codes), or NULL when it can. */
static const char *card_refusal(const PGresult *res, int64_t now_us)
{
    if (PQgetisnull(res, 0, COL_KIND))
        return "card_not_found";
    if (strcmp(PQgetvalue(res, 0, COL_KIND), "discount") != 0)
        return "not_a_discount_card";
    int64_t from = strtoll(PQgetvalue(res, 0, COL_FROM), NULL, 10);
    int64_t to = strtoll(PQgetvalue(res, 0, COL_TO), NULL, 10);
    int64_t bp = strtoll(PQgetvalue(res, 0, COL_BP), NULL, 10);
    if (now_us >= to || now_us < from)
        return "card_expired";
    if (now_us < strtoll(PQgetvalue(res, 0, COL_FROZEN), NULL, 10))
        return "card_frozen";
    if (strcmp(PQgetvalue(res, 0, COL_HERE), "t") != 0)
        return "card_not_valid_here";
    return bp > 0 && pricing_rate_ok(bp) ? NULL : "invalid_command";
}

static void quote_answer(struct req *r)
{
    struct pricing_quote q;
    bool ok = pricing_begin(&q, amount_of(r), r->tier.has ? r->tier.discount_bp : 0);
    if (!ok) { /* a tier rate tiering would never store */
        req_fail(r, 500, "internal", "the member's tier rate is not usable");
        return;
    }
    json_t *card = json_object_get(r->body, "card"); /* set by on_checked */
    if (json_is_true(json_object_get(card, "usable")))
        pricing_take_card_rate(&q, json_integer_value(json_object_get(card, "discount_bp")));
    if (card)
        json_object_set_new(card, "discount", json_integer(q.card_discount));
    json_t *body = json_pack(
        "{s:s, s:s, s:I, s:o, s:I, s:I, s:I, s:[s]}", "member_id", r->member_id, "branch_id",
        r->branch_id, "amount", (json_int_t)q.amount, "tier", tier_json(&r->tier), "tier_discount",
        (json_int_t)q.tier_discount, "discount_applied", (json_int_t)pricing_discount_total(&q),
        "charged", (json_int_t)q.charged, "not_included", "coupons");
    if (card)
        json_object_set(body, "card", card);
    req_finish(r, 200, body);
}

static void on_checked(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, COL_MEMBER), "t") != 0) {
        req_fail_no_member(r);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, COL_BRANCH), "t") != 0) {
        req_reply_invalid(r, "branch_id", "no such branch in this tenant");
        return;
    }
    const char *card_id = http_query(r->ex, "card_id");
    if (card_id) {
        const char *why = card_refusal(res, event_now_us());
        json_t *card = json_pack("{s:s, s:b}", "card_id", card_id, "usable", why == NULL);
        if (why)
            json_object_set_new(card, "reason", json_string(why));
        else
            json_object_set_new(card, "discount_bp",
                                json_integer(strtoll(PQgetvalue(res, 0, COL_BP), NULL, 10)));
        json_object_set_new(r->body, "card", card);
    }
    tier_lookup_then(r, quote_answer);
}

/* The query's parameters; answers 422 naming each bad one. */
static bool quote_params(struct req *r)
{
    struct validation v;
    validation_init(&v);
    const char *amount = http_query(r->ex, "amount"), *branch = http_query(r->ex, "branch_id");
    const char *card = http_query(r->ex, "card_id");
    char *end = NULL;
    long long n = amount ? strtoll(amount, &end, 10) : 0;
    if (!amount || !*amount || *end || n < 1 || n > MONEY_AMOUNT_MAX)
        validation_add(&v, "amount", "required: the list price in minor units, 1 or more");
    if (!branch || !*branch || strlen(branch) >= INGEST_KEY_MAX)
        validation_add(&v, "branch_id", "required: the branch of the bill");
    if (card && !uuid_is_valid(card))
        validation_add(&v, "card_id", "must be the id of the member's discount card");
    if (!req_validated(r, &v))
        return false;
    snprintf(r->branch_id, sizeof(r->branch_id), "%s", branch);
    return true;
}

static void quote_authenticated(struct req *r)
{
    if (!req_member_from_path(r))
        return;
    if (!quote_params(r))
        return;
    if (!auth_may_use_branch(r, r->branch_id)) {
        req_fail(r, 403, "forbidden", "this key acts only for its own branch");
        return;
    }
    r->body = json_object(); /* the card's part, between the steps */
    const char *card = http_query(r->ex, "card_id");
    const char *p[4] = {r->caller.tenant_id, r->member_id, r->branch_id, card ? card : ""};
    if (pg_pool_query(r->app->pg,
                      "SELECT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 AND "
                      "member_id = $2), EXISTS (SELECT 1 FROM branches WHERE tenant_id = $1 AND "
                      "branch_id = $3), c.kind, c.discount_bp, c.valid_from_us, c.valid_to_us, "
                      "c.frozen_until_us, cardinality(c.branch_ids) = 0 OR $3 = ANY(c.branch_ids) "
                      "FROM (SELECT 1) AS one LEFT JOIN ledger.read_cards c ON c.tenant_id = $1 "
                      "AND c.card_id = $4 AND c.member_id = $2",
                      4, p, on_checked, r) < 0)
        req_fail_db(r, "queue full");
}

void quote_get(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), quote_authenticated);
}
