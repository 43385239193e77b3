/* Card configuration (admin): POST /v1/products defines a card product
 * (count, time, discount card or membership subscription) and
 * PUT /v1/config/card-limits sets the tenant's card limits. Both are
 * ledger commands: the ledger owns products and limits because it decides
 * with them, and each service writes only its own schema. They are keyed
 * on Kafka by tenant (they belong to no member) and answered with the
 * ledger's verdict like any money command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/card_types.h"
#include "http/validate.h"
#include "ingest.h"
#include "money/money.h"

#define PRODUCT_BRANCHES_MAX      32
#define PRODUCT_VALIDITY_DAYS_MAX 3660
#define PRODUCT_USES_MAX          100000
#define PRODUCT_FREEZE_DAYS_MAX   366

static const char *const product_fields[] = {"product_id",  "kind",       "name",
                                             "price",       "uses",       "validity_days",
                                             "period",      "branch_ids", "freeze_days_max",
                                             "discount_bp", NULL};
static const char *const kinds[] = {"count", "time", "discount", "subscription", NULL};
static const char *const periods[] = {"month", "quarter", "half_year", "year", NULL};
static const int64_t period_days[] = {30, 91, 182, 365};
static const char *const limit_fields[] = {
    "daily_uses_max", "prepaid_days_max",    "prepaid_uses_max",          "burst_uses",
    "burst_window_s", "far_branch_window_s", "first_day_topup_spend_max", NULL};

static bool admin_only(struct req *r)
{
    if (strcmp(r->caller.scope, "admin") == 0)
        return true;
    req_fail(r, 403, "forbidden", "only an admin key may change configuration");
    return false;
}

static void validate_branch_ids(struct validation *v, json_t *ids)
{
    if (!ids)
        return;
    bool ok = json_is_array(ids) && json_array_size(ids) <= PRODUCT_BRANCHES_MAX;
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        size_t len = json_is_string(id) ? strlen(json_string_value(id)) : 0;
        ok = ok && len > 0 && len < INGEST_KEY_MAX;
    }
    if (!ok)
        validation_add(v, "branch_ids", "at most 32 branch ids");
}

/* Kind-specific fields: a count card needs uses, a discount card its rate;
 * validity comes as validity_days or a period. */
static void validate_terms(struct validation *v, json_t *b, const char *kind)
{
    int64_t n;
    const char *period = NULL;
    bool count = kind && strcmp(kind, "count") == 0,
         discount = kind && strcmp(kind, "discount") == 0;
    validate_int(v, b, "uses", count, 1, PRODUCT_USES_MAX, &n);
    validate_int(v, b, "discount_bp", discount, 1, 10000, &n);
    validate_int(v, b, "freeze_days_max", false, 0, PRODUCT_FREEZE_DAYS_MAX, &n);
    validate_enum(v, b, "period", false, periods, &period);
    bool has_days = json_object_get(b, "validity_days") != NULL;
    validate_int(v, b, "validity_days", !period, 1, PRODUCT_VALIDITY_DAYS_MAX, &n);
    if (period && has_days)
        validation_add(v, "period", "give validity_days or period, not both");
    if (!count && json_object_get(b, "uses"))
        validation_add(v, "uses", "only count cards have uses");
    if (!discount && json_object_get(b, "discount_bp"))
        validation_add(v, "discount_bp", "only discount cards have a rate");
}

static bool validate_product(struct req *r)
{
    struct validation v;
    validation_init(&v);
    json_t *b = r->body;
    const char *s = NULL, *kind = NULL;
    int64_t n;
    validate_no_unknown_fields(&v, b, product_fields);
    validate_text(&v, b, "product_id", false, 1, TEXT_PRODUCT_ID_CHARS_MAX, TEXT_ID_BYTES_MAX, &s);
    validate_enum(&v, b, "kind", true, kinds, &kind);
    validate_text(&v, b, "name", true, 1, TEXT_NAME_CHARS_MAX, TEXT_NAME_BYTES_MAX, &s);
    validate_int(&v, b, "price", true, 0, MONEY_AMOUNT_MAX, &n);
    validate_branch_ids(&v, json_object_get(b, "branch_ids"));
    validate_terms(&v, b, kind);
    if (validation_ok(&v)) {
        validation_free(&v);
        return true;
    }
    req_fail_validation(r, &v);
    return false;
}

static int64_t product_validity_days(json_t *b)
{
    const char *period = json_string_value(json_object_get(b, "period"));
    for (size_t i = 0; period && periods[i]; i++)
        if (strcmp(period, periods[i]) == 0)
            return period_days[i];
    return json_integer_value(json_object_get(b, "validity_days"));
}

/* Tenant commands carry no member: the envelope's member_id stays empty
 * and the tenant id is only the Kafka key (r->member_id). */
static void tenant_meta(struct req *r, struct event_meta *meta)
{
    *meta = (struct event_meta){.tenant_id = r->caller.tenant_id,
                                .branch_id = "",
                                .member_id = "",
                                .correlation_id = r->command_id,
                                .actor_kind = "api_key",
                                .actor_id = r->caller.key_id,
                                .traceparent = r->traceparent};
}

static void send_product(struct req *r)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    DefineProduct d;
    char *branch_ids[PRODUCT_BRANCHES_MAX];
    tenant_meta(r, &meta);
    envelope_init(&env, &actor, &meta);
    tessera__cards__v1__define_product__init(&d);
    json_t *b = r->body, *ids = json_object_get(b, "branch_ids"), *id;
    const char *pid = json_string_value(json_object_get(b, "product_id"));
    d.command_id = r->command_id;
    d.product_id = (char *)(pid ? pid : r->command_id);
    d.kind = (char *)json_string_value(json_object_get(b, "kind"));
    d.name = (char *)json_string_value(json_object_get(b, "name"));
    d.price = json_integer_value(json_object_get(b, "price"));
    d.uses = json_integer_value(json_object_get(b, "uses"));
    d.validity_days = product_validity_days(b);
    d.freeze_days_max = json_integer_value(json_object_get(b, "freeze_days_max"));
    d.discount_bp = json_integer_value(json_object_get(b, "discount_bp"));
    size_t i;
    json_array_foreach(ids, i, id) branch_ids[i] = (char *)json_string_value(id);
    d.n_branch_ids = json_array_size(ids);
    d.branch_ids = branch_ids;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_DEFINE_PRODUCT;
    env.define_product = &d;
    cards_send_envelope(r, &env);
}

/* Every restricted branch must exist in the tenant. */
static void on_branches(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        req_reply_invalid(r, "branch_ids", "no such branch in this tenant");
        return;
    }
    uuid7_generate(r->command_id);
    idem_claim_then(r, send_product);
}

static void product_authenticated(struct req *r)
{
    if (!admin_only(r))
        return; /* ended */
    if (!req_read_body(r))
        return;
    if (!validate_product(r))
        return; /* ended */
    snprintf(r->member_id, sizeof(r->member_id), "%s", r->caller.tenant_id);
    r->audit_action = "product.define";
    json_t *ids = json_object_get(r->body, "branch_ids");
    json_t *none = ids ? NULL : json_array(); /* ours: released below */
    char *ids_json = json_dumps(ids ? ids : none, JSON_COMPACT);
    json_decref(none);
    const char *p[2] = {r->caller.tenant_id, ids_json};
    int rc = pg_pool_query(r->app->pg,
                           "SELECT NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text($2::jsonb) "
                           "AS x(id) WHERE NOT EXISTS (SELECT 1 FROM branches WHERE "
                           "tenant_id = $1 AND branch_id = x.id))",
                           2, p, on_branches, r);
    free(ids_json);
    if (rc < 0)
        req_fail_db(r, "queue full");
}

void products_define(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), product_authenticated);
}

/* ------------------------------------------------------- limits */
static void send_limits(struct req *r)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    SetCardLimits s;
    tenant_meta(r, &meta);
    envelope_init(&env, &actor, &meta);
    tessera__cards__v1__set_card_limits__init(&s);
    json_t *b = r->body;
    s.command_id = r->command_id;
    s.daily_uses_max = json_integer_value(json_object_get(b, "daily_uses_max"));
    s.prepaid_days_max = json_integer_value(json_object_get(b, "prepaid_days_max"));
    s.prepaid_uses_max = json_integer_value(json_object_get(b, "prepaid_uses_max"));
    s.burst_uses = json_integer_value(json_object_get(b, "burst_uses"));
    s.burst_window_s = json_integer_value(json_object_get(b, "burst_window_s"));
    s.far_branch_window_s = json_integer_value(json_object_get(b, "far_branch_window_s"));
    s.first_day_topup_spend_max =
        json_integer_value(json_object_get(b, "first_day_topup_spend_max"));
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_SET_CARD_LIMITS;
    env.set_card_limits = &s;
    cards_send_envelope(r, &env);
}

static void limits_authenticated(struct req *r)
{
    if (!admin_only(r))
        return; /* ended */
    if (!req_read_body(r))
        return;
    struct validation v;
    validation_init(&v);
    json_t *b = r->body;
    int64_t n;
    validate_no_unknown_fields(&v, b, limit_fields);
    validate_int(&v, b, "daily_uses_max", false, 1, 1000, &n);
    validate_int(&v, b, "prepaid_days_max", false, 0, PRODUCT_VALIDITY_DAYS_MAX, &n);
    validate_int(&v, b, "prepaid_uses_max", false, 0, PRODUCT_USES_MAX, &n);
    validate_int(&v, b, "burst_uses", false, 2, 100, &n);
    validate_int(&v, b, "burst_window_s", false, 1, 86400, &n);
    validate_int(&v, b, "far_branch_window_s", false, 1, 86400, &n);
    validate_int(&v, b, "first_day_topup_spend_max", false, 0, MONEY_AMOUNT_MAX, &n);
    if (!req_validated(r, &v))
        return;
    snprintf(r->member_id, sizeof(r->member_id), "%s", r->caller.tenant_id);
    r->audit_action = "card_limits.put";
    uuid7_generate(r->command_id);
    idem_claim_then(r, send_limits);
}

void card_limits_put(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), limits_authenticated);
}
