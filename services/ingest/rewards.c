/* The rewards catalogue (issue 12): POST /v1/rewards (admin) defines a
 * reward members buy with points, GET /v1/rewards lists the tenant's.
 *
 * A reward: {name, kind: coupon | gift | card_days, points_price, stock
 * (absent or null: unlimited), coupon: {kind: value | percent, value |
 * percent_bp, valid_days} for coupons, card: {product_id, days} for days
 * added to the member's active time card of the product, active_from /
 * active_to (RFC 3339; from now, no end by default)}. The id is ingest's
 * (a UUIDv7). Redemptions are in redemptions.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datetime/datetime.h"
#include "http/validate.h"
#include "ingest.h"

#define REWARD_NAME_MAX     100
#define REWARD_PRICE_MAX    INT64_C(1000000000) /* points */
#define REWARD_STOCK_MAX    INT64_C(100000000)
#define REWARD_COUPON_DAYS  3660
#define REWARD_COUPON_VALUE INT64_C(100000000) /* minor units */
#define REWARD_LIST_MAX     500
#define REWARD_CARD_DAYS    3660 /* the ledger's CARD_VALIDITY_DAYS_MAX */

static const char *const reward_fields[] = {
    "name", "kind", "points_price", "stock", "coupon", "active_from", "active_to", "card", NULL};
static const char *const coupon_fields[] = {"kind", "value", "percent_bp", "valid_days", NULL};
static const char *const card_fields[] = {"product_id", "days", NULL};
static const char *const reward_kinds[] = {"coupon", "gift", "card_days", NULL};
static const char *const coupon_kinds[] = {"value", "percent", NULL};

static void validate_coupon(struct validation *v, json_t *coupon)
{
    const char *kind = NULL;
    int64_t n = 0;
    validate_no_unknown_fields(v, coupon, coupon_fields);
    validate_enum(v, coupon, "kind", true, coupon_kinds, &kind);
    validate_int(v, coupon, "valid_days", true, 1, REWARD_COUPON_DAYS, &n);
    if (kind && strcmp(kind, "value") == 0)
        validate_int(v, coupon, "value", true, 1, REWARD_COUPON_VALUE, &n);
    if (kind && strcmp(kind, "percent") == 0)
        validate_int(v, coupon, "percent_bp", true, 1, 10000, &n);
}

/* card: {product_id, days} of a card_days reward; only that kind has one.
 * The product is not checked here (the ledger owns products): a member
 * without an active card of it is refused at redemption. */
static void validate_card(struct validation *v, json_t *b, const char *kind)
{
    json_t *card = json_object_get(b, "card");
    bool is_days = kind && strcmp(kind, "card_days") == 0;
    const char *product = NULL;
    int64_t days = 0;
    if (is_days && !json_is_object(card)) {
        validation_add(v, "card", "a card_days reward needs {product_id, days}");
    } else if (!is_days && card && !json_is_null(card)) {
        validation_add(v, "card", "only a card_days reward has one");
    } else if (is_days) {
        validate_no_unknown_fields(v, card, card_fields);
        ingest_validate_id(v, card, "product_id", true, &product);
        validate_int(v, card, "days", true, 1, REWARD_CARD_DAYS, &days);
    }
}

/* A time field: absent is fallback; sets *us. */
static void validate_time(struct validation *v, json_t *b, const char *field, int64_t fallback,
                          int64_t *us)
{
    const char *text = NULL;
    *us = fallback;
    if (validate_string(v, b, field, false, 1, 64, &text) && text &&
        !datetime_parse_rfc3339_us(text, us))
        validation_add(v, field, "must be an RFC 3339 time");
}

struct reward_input {
    const char *name, *kind;
    int64_t price, from_us, to_us;
    bool has_stock;
    int64_t stock;
};

static bool validate_reward(struct req *r, struct reward_input *in)
{
    struct validation v;
    validation_init(&v);
    json_t *b = r->body, *coupon = json_object_get(b, "coupon"),
           *stock = json_object_get(b, "stock");
    *in = (struct reward_input){0};
    validate_no_unknown_fields(&v, b, reward_fields);
    validate_text(&v, b, "name", true, 1, REWARD_NAME_MAX, 4 * REWARD_NAME_MAX, &in->name);
    validate_enum(&v, b, "kind", true, reward_kinds, &in->kind);
    validate_int(&v, b, "points_price", true, 1, REWARD_PRICE_MAX, &in->price);
    in->has_stock = stock && !json_is_null(stock);
    if (in->has_stock)
        validate_int(&v, b, "stock", true, 0, REWARD_STOCK_MAX, &in->stock);
    bool is_coupon = in->kind && strcmp(in->kind, "coupon") == 0;
    if (is_coupon && !json_is_object(coupon))
        validation_add(&v, "coupon", "a coupon reward needs {kind, value|percent_bp, valid_days}");
    else if (!is_coupon && coupon && !json_is_null(coupon))
        validation_add(&v, "coupon", "only a coupon reward has one");
    else if (is_coupon)
        validate_coupon(&v, coupon);
    validate_card(&v, b, in->kind);
    validate_time(&v, b, "active_from", event_now_us(), &in->from_us);
    validate_time(&v, b, "active_to", 0, &in->to_us);
    if (in->to_us && in->to_us <= in->from_us)
        validation_add(&v, "active_to", "must be after active_from");
    return req_validated(r, &v);
}

static void on_inserted(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    json_t *body = json_deep_copy(r->body);
    json_object_set_new(body, "reward_id", json_string(r->command_id));
    req_finish(r, 201, body);
}

static void create_authorized(struct req *r)
{
    struct reward_input in;
    if (!req_read_body(r) || !validate_reward(r, &in))
        return;
    uuid7_generate(r->command_id); /* the reward's id */
    json_t *coupon = json_object_get(r->body, "coupon"), *card = json_object_get(r->body, "card");
    char price[24], stock[24], from[24], to[24], value[24], pct[24], days[24], card_days[24];
    snprintf(price, sizeof(price), "%lld", (long long)in.price);
    snprintf(stock, sizeof(stock), "%lld", (long long)in.stock);
    snprintf(from, sizeof(from), "%lld", (long long)in.from_us);
    snprintf(to, sizeof(to), "%lld", (long long)in.to_us);
    snprintf(value, sizeof(value), "%lld",
             (long long)json_integer_value(json_object_get(coupon, "value")));
    snprintf(pct, sizeof(pct), "%lld",
             (long long)json_integer_value(json_object_get(coupon, "percent_bp")));
    snprintf(days, sizeof(days), "%lld",
             (long long)json_integer_value(json_object_get(coupon, "valid_days")));
    snprintf(card_days, sizeof(card_days), "%lld",
             (long long)json_integer_value(json_object_get(card, "days")));
    const char *p[14] = {r->caller.tenant_id,
                         r->command_id,
                         in.name,
                         in.kind,
                         price,
                         in.has_stock ? stock : NULL,
                         json_string_value(json_object_get(coupon, "kind")),
                         value,
                         pct,
                         days,
                         from,
                         in.to_us ? to : NULL,
                         json_string_value(json_object_get(card, "product_id")),
                         card_days};
    if (pg_pool_query(r->app->pg,
                      "INSERT INTO rewards (tenant_id, reward_id, name, kind, points_price, stock, "
                      "coupon_kind, coupon_value, coupon_percent_bp, coupon_valid_days, "
                      "active_from_us, active_to_us, card_product_id, card_days) VALUES ($1, $2, "
                      "$3, $4, $5::bigint, $6::bigint, $7, $8::bigint, $9::bigint, $10::bigint, "
                      "$11::bigint, $12::bigint, $13, $14::bigint)",
                      14, p, on_inserted, r) < 0)
        req_fail_db(r, "queue full");
}

void rewards_create(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), create_authorized);
}

/* ------------------------------------------------------------ GET */
static json_t *time_or_null(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return json_null();
    char at[32];
    event_format_time(strtoll(PQgetvalue(res, row, col), NULL, 10), at);
    return json_string(at);
}

static void on_listed(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *item = json_pack(
            "{s:s, s:s, s:s, s:I, s:o, s:o, s:o}", "reward_id", PQgetvalue(res, i, 0), "name",
            PQgetvalue(res, i, 1), "kind", PQgetvalue(res, i, 2), "points_price",
            (json_int_t)strtoll(PQgetvalue(res, i, 3), NULL, 10), "stock",
            PQgetisnull(res, i, 4) ? json_null()
                                   : json_integer(strtoll(PQgetvalue(res, i, 4), NULL, 10)),
            "active_from", time_or_null(res, i, 5), "active_to", time_or_null(res, i, 6));
        if (!PQgetisnull(res, i, 7))
            json_object_set_new(item, "coupon", json_loads(PQgetvalue(res, i, 7), 0, NULL));
        if (!PQgetisnull(res, i, 8))
            json_object_set_new(item, "card", json_loads(PQgetvalue(res, i, 8), 0, NULL));
        json_array_append_new(items, item);
    }
    req_finish(r, 200, json_pack("{s:o}", "rewards", items));
}

static void list_authenticated(struct req *r)
{
    if (strcmp(r->caller.scope, "admin") != 0 && strcmp(r->caller.scope, "pos") != 0) {
        req_fail(r, 403, "forbidden", "this key may not read the rewards catalogue");
        return;
    }
    const char *p[1] = {r->caller.tenant_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT reward_id, name, kind, points_price, stock, active_from_us, "
                      "active_to_us, CASE WHEN kind = 'coupon' THEN json_build_object('kind', "
                      "coupon_kind, 'value', coupon_value, 'percent_bp', coupon_percent_bp, "
                      "'valid_days', coupon_valid_days)::text END, CASE WHEN kind = 'card_days' "
                      "THEN json_build_object('product_id', card_product_id, 'days', "
                      "card_days)::text END "
                      "FROM rewards WHERE tenant_id = $1 ORDER BY created_at, reward_id LIMIT 500",
                      1, p, on_listed, r) < 0)
        req_fail_db(r, "queue full");
}
_Static_assert(REWARD_LIST_MAX == 500, "the list's LIMIT");

void rewards_list(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), list_authenticated);
}
