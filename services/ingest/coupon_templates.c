/* Coupon templates (issue 12, docs/coupons.md): POST/GET
 * /v1/coupon-templates and GET one (admin; GET also pos). A template is
 * the terms of the coupons issued from it (value | percent | free_item,
 * minimum spend, validity in days or a fixed window), how many one member
 * may hold (per_member_limit), how many may ever be given (total_count)
 * and whether members may claim it (public). Issues and claims are in
 * coupon_issues.c; the sweep that hands the coupons to the ledger in
 * coupon_issuer.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coupon_templates.h"
#include "datetime/datetime.h"
#include "http/validate.h"
#include "ingest.h"
#include "money/money.h"

static const char *const template_fields[] = {
    "name",        "kind",       "value",      "percent_bp", "free_sku",
    "min_spend",   "valid_days", "valid_from", "valid_to",   "per_member_limit",
    "total_count", "public",     NULL};
static const char *const template_kinds[] = {"value", "percent", "free_item", NULL};

struct template_input {
    const char *name, *kind, *sku;
    int64_t value, pct, min_spend, days, from_us, to_us, limit, total;
    bool has_total, is_public;
};

/* An optional RFC 3339 time; 0 when absent. */
static void validate_at(struct validation *v, json_t *b, const char *field, int64_t *us)
{
    const char *text = NULL;
    *us = 0;
    if (validate_string(v, b, field, false, 1, 64, &text) && text &&
        (!datetime_parse_rfc3339_us(text, us) || *us <= 0))
        validation_add(v, field, "must be an RFC 3339 time");
}

/* The kind's own term is required, the others' refused. */
static void validate_terms(struct validation *v, json_t *b, struct template_input *in)
{
    bool value = in->kind && strcmp(in->kind, "value") == 0;
    bool pct = in->kind && strcmp(in->kind, "percent") == 0;
    bool item = in->kind && strcmp(in->kind, "free_item") == 0;
    validate_int(v, b, "value", value, 1, MONEY_AMOUNT_MAX, &in->value);
    validate_int(v, b, "percent_bp", pct, 1, 10000, &in->pct);
    validate_text(v, b, "free_sku", item, 1, COUPON_TEMPLATE_SKU_MAX, COUPON_TEMPLATE_SKU_MAX,
                  &in->sku);
    if (!value && json_object_get(b, "value"))
        validation_add(v, "value", "only value coupons have a value");
    if (!pct && json_object_get(b, "percent_bp"))
        validation_add(v, "percent_bp", "only percent coupons have a rate");
    if (!item && json_object_get(b, "free_sku"))
        validation_add(v, "free_sku", "only free_item coupons name an item");
}

/* Validity: valid_days, or a fixed window valid_to (valid_from: now). */
static void validate_validity(struct validation *v, json_t *b, struct template_input *in)
{
    bool days = json_object_get(b, "valid_days") != NULL;
    validate_int(v, b, "valid_days", false, 1, COUPON_TEMPLATE_DAYS_MAX, &in->days);
    validate_at(v, b, "valid_from", &in->from_us);
    validate_at(v, b, "valid_to", &in->to_us);
    if (days == (in->to_us != 0) && validation_ok(v))
        validation_add(v, "valid_days", "give either valid_days or a window ending at valid_to");
    if (days && in->from_us)
        validation_add(v, "valid_from", "only a fixed window has a start");
    int64_t start = in->from_us ? in->from_us : event_now_us();
    if (in->to_us &&
        (in->to_us <= start || in->to_us - start > COUPON_TEMPLATE_DAYS_MAX * 86400LL * 1000000LL))
        validation_add(v, "valid_to", "must end after its start, within 3660 days");
}

static bool validate_template(struct req *r, struct template_input *in)
{
    struct validation v;
    validation_init(&v);
    json_t *b = r->body, *pub = json_object_get(b, "public"),
           *total = json_object_get(b, "total_count");
    *in = (struct template_input){.limit = 1};
    validate_no_unknown_fields(&v, b, template_fields);
    validate_text(&v, b, "name", true, 1, COUPON_TEMPLATE_NAME_MAX, 4 * COUPON_TEMPLATE_NAME_MAX,
                  &in->name);
    validate_enum(&v, b, "kind", true, template_kinds, &in->kind);
    validate_terms(&v, b, in);
    validate_int(&v, b, "min_spend", false, 0, MONEY_AMOUNT_MAX, &in->min_spend);
    validate_validity(&v, b, in);
    validate_int(&v, b, "per_member_limit", false, 1, COUPON_TEMPLATE_LIMIT_MAX, &in->limit);
    in->has_total = total && !json_is_null(total);
    if (in->has_total)
        validate_int(&v, b, "total_count", true, 1, COUPON_TEMPLATE_TOTAL_MAX, &in->total);
    if (pub && !json_is_boolean(pub))
        validation_add(&v, "public", "must be true or false");
    in->is_public = pub && json_is_true(pub);
    return req_validated(r, &v);
}

/* The template's JSON, built by PostgreSQL from a row t of coupon_templates. */
#define TEMPLATE_JSON                                                                              \
    "json_strip_nulls(json_build_object('template_id', t.template_id, 'name', t.name, "            \
    "'kind', t.kind, 'value', CASE WHEN t.kind = 'value' THEN t.value END, "                       \
    "'percent_bp', CASE WHEN t.kind = 'percent' THEN t.percent_bp END, "                           \
    "'free_sku', nullif(t.free_sku, ''), 'min_spend', t.min_spend, "                               \
    "'valid_days', nullif(t.valid_days, 0), "                                                      \
    "'valid_from', CASE WHEN t.valid_to_us > 0 THEN to_char(to_timestamp(t.valid_from_us / "       \
    "1e6) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') END, "                             \
    "'valid_to', CASE WHEN t.valid_to_us > 0 THEN to_char(to_timestamp(t.valid_to_us / 1e6) "      \
    "AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') END, "                                  \
    "'per_member_limit', t.per_member_limit, 'total_count', t.total_count, "                       \
    "'issued_count', t.issued_count, 'public', t.public))::text"

static void answer_one(struct req *r, PGresult *res, const char *err, int status)
{
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        req_fail(r, 404, "coupon_template_not_found", "no such coupon template");
        return;
    }
    req_finish(r, status, json_loads(PQgetvalue(res, 0, 0), 0, NULL));
}

static void on_one(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    answer_one(arg, res, err, 200);
}

static void on_created(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    answer_one(arg, res, err, 201);
}

static void query_one(struct req *r, const char *template_id, pg_pool_cb cb)
{
    const char *p[2] = {r->caller.tenant_id, template_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT " TEMPLATE_JSON " FROM coupon_templates t WHERE t.tenant_id = $1 "
                      "AND t.template_id = $2",
                      2, p, cb, r) < 0)
        req_fail_db(r, "queue full");
}

static void on_inserted(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    query_one(r, r->command_id, on_created);
}

static void create_authorized(struct req *r)
{
    struct template_input in;
    if (!req_read_body(r) || !validate_template(r, &in))
        return;
    uuid7_generate(r->command_id); /* the template's id */
    r->audit_action = "coupon_template.create";
    char n[8][24];
    int64_t from = in.to_us && !in.from_us ? event_now_us() : in.from_us;
    int64_t nums[8] = {in.value, in.pct, in.min_spend, in.days, from, in.to_us, in.limit, in.total};
    for (int i = 0; i < 8; i++)
        snprintf(n[i], sizeof(n[i]), "%lld", (long long)nums[i]);
    const char *p[13] = {r->caller.tenant_id,       r->command_id, in.name, in.kind, n[0], n[1],
                         in.sku ? in.sku : "",      n[2],          n[3],    n[4],    n[5], n[6],
                         in.has_total ? n[7] : NULL};
    const char *pub = in.is_public ? "true" : "false";
    const char *params[14];
    memcpy(params, p, sizeof(p));
    params[13] = pub;
    if (pg_pool_query(r->app->pg,
                      "INSERT INTO coupon_templates (tenant_id, template_id, name, kind, value, "
                      "percent_bp, free_sku, min_spend, valid_days, valid_from_us, valid_to_us, "
                      "per_member_limit, total_count, public) VALUES ($1, $2, $3, $4, $5::bigint, "
                      "$6::bigint, $7, $8::bigint, $9::bigint, $10::bigint, $11::bigint, "
                      "$12::bigint, $13::bigint, $14::boolean)",
                      14, params, on_inserted, r) < 0)
        req_fail_db(r, "queue full");
}

void coupon_templates_create(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), create_authorized);
}

static bool staff_may_read(struct req *r)
{
    if (strcmp(r->caller.scope, "admin") == 0 || strcmp(r->caller.scope, "pos") == 0)
        return true;
    req_fail(r, 403, "forbidden", "this key may not read coupon templates");
    return false;
}

static void one_authenticated(struct req *r)
{
    const char *id = http_param(r->ex, "template_id");
    if (!staff_may_read(r))
        return;
    if (!id || !uuid_is_valid(id)) {
        req_fail(r, 404, "coupon_template_not_found", "no such coupon template");
        return;
    }
    query_one(r, id, on_one);
}

void coupon_templates_get(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), one_authenticated);
}

static void on_listed(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(items, json_loads(PQgetvalue(res, i, 0), 0, NULL));
    req_finish(r, 200, json_pack("{s:o}", "coupon_templates", items));
}

static void list_authenticated(struct req *r)
{
    if (!staff_may_read(r))
        return;
    const char *p[1] = {r->caller.tenant_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT " TEMPLATE_JSON " FROM coupon_templates t WHERE t.tenant_id = $1 "
                      "ORDER BY t.created_at, t.template_id LIMIT 500",
                      1, p, on_listed, r) < 0)
        req_fail_db(r, "queue full");
}
_Static_assert(COUPON_TEMPLATE_LIST_MAX == 500, "the list's LIMIT");

void coupon_templates_list(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), list_authenticated);
}
