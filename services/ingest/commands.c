/* Money endpoints answered with the ledger's verdict: top-ups and
 * purchases. Each request is checked, its member and branch confirmed,
 * its Idempotency-Key claimed, then sent to the ledger as a command with a
 * command id the ledger applies at most once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock/clock.h"
#include "http/validate.h"
#include "ingest.h"
#include "money/money.h"

#define PURCHASE_ITEMS_MAX 200

static const char *const topup_fields[] = {"amount", "branch_id", "payment_method", NULL};
static const char *const topup_methods[] = {"cash",   "bank_card", "wechat_pay",
                                            "alipay", "other",     NULL};
static const char *const purchase_fields[] = {"amount",    "branch_id", "payment", "items",
                                              "coupon_id", "card_id",   NULL};
static const char *const purchase_methods[] = {"cash",         "bank_card", "wechat_pay", "alipay",
                                               "stored_value", "points",    NULL};
/* payment.points: points paying part of the charge (all of it with method
 * "points"), at the tenant's rate and up to its share (docs/rewards.md). */
static const char *const payment_fields[] = {"method", "points", NULL};
static const char *const item_fields[] = {"sku", "category", "quantity", "unit_price", NULL};

/* "Prefer: wait=N" (seconds) changes the wait budget, clamped to the
 * maximum; without one the instance default (TESSERA_WAIT_MS) holds. */
void commands_read_prefer_wait(struct req *r)
{
    int ms;
    if (http_prefer_wait_ms(http_header(r->ex, "Prefer"), INGEST_WAIT_MAX_MS, &ms))
        r->wait_ms = ms;
}

static void validate_items(struct validation *v, json_t *items)
{
    if (!items)
        return;
    if (!json_is_array(items) || json_array_size(items) > PURCHASE_ITEMS_MAX) {
        validation_add(v, "items", "must be an array of at most 200 items");
        return;
    }
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        if (!json_is_object(item)) {
            validation_add(v, "items", "every item must be an object");
            return;
        }
        struct validation one;
        validation_init(&one);
        const char *s;
        int64_t n;
        validate_no_unknown_fields(&one, item, item_fields);
        validate_string(&one, item, "sku", true, 1, 64, &s);
        validate_string(&one, item, "category", false, 1, 64, &s);
        validate_int(&one, item, "quantity", true, 1, 100000, &n);
        validate_int(&one, item, "unit_price", true, 0, MONEY_AMOUNT_MAX, &n);
        if (!validation_ok(&one)) {
            char field[32];
            snprintf(field, sizeof(field), "items[%zu]", i);
            validation_add(v, field,
                           "needs sku, quantity (1..100000) and unit_price (minor units)");
        }
        validation_free(&one);
    }
}

/* Records every problem of a money command's body in v; sets *branch.
 * Shared by the single endpoints and the batch endpoint. */
void commands_check_fields(struct validation *v, json_t *b, bool purchase, const char **branch)
{
    const char *method = NULL;
    int64_t amount = 0;
    validate_no_unknown_fields(v, b, purchase ? purchase_fields : topup_fields);
    validate_int(v, b, "amount", true, 1, MONEY_AMOUNT_MAX, &amount);
    ingest_validate_id(v, b, "branch_id", true, branch);
    if (purchase) {
        json_t *payment = json_object_get(b, "payment");
        if (!json_is_object(payment))
            validation_add(v, "payment", "required: an object with a method");
        else if (!validate_enum(v, payment, "method", true, purchase_methods, &method))
            validation_add(v, "payment.method",
                           "one of cash, bank_card, wechat_pay, alipay, stored_value, points");
        if (json_is_object(payment)) {
            int64_t points = 0;
            validate_no_unknown_fields(v, payment, payment_fields);
            bool has = json_object_get(payment, "points") != NULL;
            if (has)
                validate_int(v, payment, "points", true, 1, MONEY_AMOUNT_MAX, &points);
            if (!has && method && strcmp(method, "points") == 0)
                validation_add(v, "payment.points", "required when the method is points");
        }
        validate_items(v, json_object_get(b, "items"));
        const char *coupon = NULL;
        if (ingest_validate_id(v, b, "coupon_id", false, &coupon) && coupon &&
            !uuid_is_valid(coupon))
            validation_add(v, "coupon_id", "must be a coupon id");
        const char *card = NULL;
        if (ingest_validate_id(v, b, "card_id", false, &card) && card && !uuid_is_valid(card))
            validation_add(v, "card_id", "must be the id of the member's discount card");
    } else {
        validate_enum(v, b, "payment_method", true, topup_methods, &method);
    }
}

/* Checks the body; answers and returns false when it is not acceptable. */
static bool validate_command(struct req *r, bool purchase)
{
    struct validation v;
    validation_init(&v);
    const char *branch = NULL;
    commands_check_fields(&v, r->body, purchase, &branch);
    if (!req_validated(r, &v))
        return false;
    if (!req_at_branch(r, branch))
        return false;
    return true;
}

static void fill_items(RecordPurchase *p, json_t *items, PurchaseItem *store, PurchaseItem **ptrs)
{
    size_t i;
    json_t *item;
    p->n_items = 0;
    p->items = ptrs;
    json_array_foreach(items, i, item)
    {
        tessera__ledger__v1__purchase_item__init(&store[i]);
        const char *cat = json_string_value(json_object_get(item, "category"));
        store[i].sku = (char *)json_string_value(json_object_get(item, "sku"));
        store[i].category = (char *)(cat ? cat : "");
        store[i].quantity = json_integer_value(json_object_get(item, "quantity"));
        store[i].unit_price = json_integer_value(json_object_get(item, "unit_price"));
        ptrs[p->n_items++] = &store[i];
    }
}

/* Encodes a money command (top-up when body has no "payment", purchase
 * otherwise) for the ledger. Returns the encoding (caller frees) and its
 * CloudEvents headers (caller owns), or NULL when it is too large. */
uint8_t *commands_encode(const struct caller *c, const char *member_id, const char *branch_id,
                         const char *command_id, const char *traceparent, json_t *body,
                         const struct member_tier *tier, int32_t utc_offset_s, size_t *len,
                         rd_kafka_headers_t **headers)
{
    struct event_meta meta;
    command_meta(&meta, c, member_id, branch_id, command_id, traceparent);
    Envelope env;
    Actor actor;
    TopUpStoredValue topup;
    RecordPurchase purchase;
    PurchaseItem items[PURCHASE_ITEMS_MAX];
    PurchaseItem *item_ptrs[PURCHASE_ITEMS_MAX];
    envelope_init(&env, &actor, &meta);
    int64_t amount = json_integer_value(json_object_get(body, "amount"));
    json_t *payment = json_object_get(body, "payment");
    if (payment) {
        tessera__ledger__v1__record_purchase__init(&purchase);
        purchase.command_id = (char *)command_id;
        purchase.amount = amount;
        purchase.payment_method = (char *)json_string_value(json_object_get(payment, "method"));
        purchase.points = json_integer_value(json_object_get(payment, "points"));
        purchase.currency = "CNY";
        const char *coupon = json_string_value(json_object_get(body, "coupon_id"));
        purchase.coupon_id = (char *)(coupon ? coupon : "");
        const char *card = json_string_value(json_object_get(body, "card_id"));
        purchase.card_id = (char *)(card ? card : "");
        fill_items(&purchase, json_object_get(body, "items"), items, item_ptrs);
        tier_fill_purchase(&purchase, tier);
        purchase.utc_offset_s = utc_offset_s;
        env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_RECORD_PURCHASE;
        env.record_purchase = &purchase;
    } else {
        tessera__ledger__v1__top_up_stored_value__init(&topup);
        topup.command_id = (char *)command_id;
        topup.amount = amount;
        topup.payment_method = (char *)json_string_value(json_object_get(body, "payment_method"));
        topup.currency = "CNY";
        env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE;
        env.top_up_stored_value = &topup;
    }
    return command_encode(&env, len, headers);
}

/* Once the command id is final (idempotency claimed). */
static void send_command(struct req *r)
{
    size_t len = 0;
    rd_kafka_headers_t *headers = NULL;
    uint8_t *command =
        commands_encode(&r->caller, r->member_id, r->branch_id, r->command_id, r->traceparent,
                        r->body, &r->tier, r->utc_offset_s, &len, &headers);
    req_send_command(r, command, len, headers);
}

static void claim_then_send(struct req *r)
{
    idem_claim_then(r, send_command);
}

static void on_checked(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!req_member_exists(r, res, err))
        return;
    if (!req_branch_exists(r, res, 1))
        return;
    r->utc_offset_s = (int32_t)strtol(PQgetvalue(res, 0, 2), NULL, 10);
    uuid7_generate(r->command_id);
    /* A purchase is priced under the member's tier as it is now. */
    if (json_object_get(r->body, "payment"))
        tier_lookup_then(r, claim_then_send);
    else
        claim_then_send(r);
}

/* Member exists, branch state, the tenant's UTC offset at the clock's now. */
/* clang-format off */
static const char check_sql[] =
    "SELECT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 AND member_id = $2), "
    BRANCH_STATE_SQL("$1", "$3") ", "
    "coalesce((SELECT " TENANT_UTC_OFFSET_SQL("t.time_zone", "$4") " "
    "FROM tenants t WHERE t.tenant_id = $1), 0)";
/* clang-format on */

static void command_authenticated(struct req *r, bool purchase)
{
    if (strcmp(r->caller.scope, "admin") != 0 && strcmp(r->caller.scope, "pos") != 0) {
        req_fail(r, 403, "forbidden", "this key may not move money");
        return;
    }
    if (!req_member_from_path(r))
        return;
    if (!req_read_body(r))
        return;
    if (!validate_command(r, purchase))
        return;
    commands_read_prefer_wait(r);
    char now_us[24];
    snprintf(now_us, sizeof(now_us), "%lld", (long long)clock_now_us());
    const char *p[4] = {r->caller.tenant_id, r->member_id, r->branch_id, now_us};
    if (pg_pool_query(r->app->pg, check_sql, 4, p, on_checked, r) < 0)
        req_fail_db(r, "queue full");
}

static void topup_authenticated(struct req *r)
{
    command_authenticated(r, false);
}

static void purchase_authenticated(struct req *r)
{
    command_authenticated(r, true);
}

void commands_topup(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), topup_authenticated);
}

void commands_purchase(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), purchase_authenticated);
}
