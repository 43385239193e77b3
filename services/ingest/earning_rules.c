/* PUT /v1/config/earning-rules (admin): the tenant's earning rules.
 *
 * The rules are the campaign service's (it decides with them and owns its
 * schema), so ingest does what it does for card products and limits, the
 * ledger's configuration: it validates the change and sends it as an
 * event the owner applies, then answers with the owner's outcome. The
 * event is an EarningRulesChanged fact on member-events keyed by tenant
 * (the campaign already consumes that topic, whose facts are kept
 * forever, so a rebuilt campaign replays every change). Its outbox row
 * and the audit row are written by one statement: a change is audited if
 * and only if it is published.
 *
 * The change is in force for purchases recorded at or after its
 * occurred_at, whenever the campaign gets to them. The answer waits (the
 * money wait budget, Prefer: wait=N) until the campaign has stored it:
 * 200 {status: "applied"} means every purchase recorded after the answer
 * earns under it; 202 {status: "accepted"} means the campaign has not
 * stored it yet (it is down or far behind) and will. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "events/campaign_types.h"
#include "http/validate.h"
#include "ingest.h"
#include "log/log.h"
#include "settings_publish.h"

static const char *const rules_fields[] = {"purchase", NULL};
static const char *const purchase_fields[] = {"enabled", "unit_amount", "points_per_unit",
                                              "excluded_categories", NULL};

/* One PUT from the statement that publishes it to its answer. */
struct rules_put {
    struct req *r;
    int64_t effective_from_us;
    json_t *purchase; /* the rule as stored and answered */
};

static void rules_put_free(void *ctx)
{
    struct rules_put *put = ctx;
    json_decref(put->purchase);
    free(put);
}

/* ------------------------------------------------------------ validation */
static void validate_categories(struct validation *v, json_t *cats)
{
    if (!cats || json_is_null(cats))
        return;
    if (!json_is_array(cats) || json_array_size(cats) > EARNING_CATEGORIES_MAX) {
        validation_add(v, "excluded_categories", "must be an array of at most 32 categories");
        return;
    }
    for (size_t i = 0; i < json_array_size(cats); i++) {
        json_t *c = json_array_get(cats, i);
        const char *s = json_string_value(c);
        size_t chars = 0; /* characters, not bytes, like validate_string */
        for (const char *p = s; p && *p; p++)
            chars += ((unsigned char)*p & 0xc0) != 0x80;
        if (!s || chars == 0 || chars > EARNING_CATEGORY_LEN_MAX) {
            validation_add(v, "excluded_categories",
                           "each category is a string of 1 to 64 characters");
            return;
        }
        for (size_t j = 0; j < i; j++)
            if (json_equal(c, json_array_get(cats, j))) {
                validation_add(v, "excluded_categories", "a category is named twice");
                return;
            }
    }
}

/* Checks the purchase rule into v with its own field names, then copies
 * the errors under "purchase.<field>". */
static void validate_purchase(struct validation *v, json_t *purchase)
{
    struct validation one;
    validation_init(&one);
    int64_t n;
    json_t *enabled = json_object_get(purchase, "enabled");
    validate_no_unknown_fields(&one, purchase, purchase_fields);
    if (enabled && !json_is_null(enabled) && !json_is_boolean(enabled))
        validation_add(&one, "enabled", "must be true or false");
    validate_int(&one, purchase, "unit_amount", true, 1, EARNING_UNIT_AMOUNT_MAX, &n);
    validate_int(&one, purchase, "points_per_unit", true, 1, EARNING_POINTS_PER_UNIT_MAX, &n);
    validate_categories(&one, json_object_get(purchase, "excluded_categories"));
    size_t i;
    json_t *e;
    json_array_foreach(one.errors, i, e)
    {
        char field[96];
        snprintf(field, sizeof(field), "purchase.%s",
                 json_string_value(json_object_get(e, "field")));
        validation_add(v, field, json_string_value(json_object_get(e, "message")));
    }
    validation_free(&one);
}

/* The body as one 422 naming every bad field, or true. */
static bool validate_rules(struct req *r)
{
    struct validation v;
    validation_init(&v);
    validate_no_unknown_fields(&v, r->body, rules_fields);
    json_t *purchase = json_object_get(r->body, "purchase");
    if (!purchase || json_is_null(purchase))
        validation_add(&v, "purchase", "is required");
    else if (!json_is_object(purchase))
        validation_add(&v, "purchase", "must be an object");
    else
        validate_purchase(&v, purchase);
    if (validation_ok(&v)) {
        validation_free(&v);
        return true;
    }
    req_fail_validation(r, &v);
    return false;
}

/* The validated purchase rule with its defaults filled in (new reference). */
static json_t *purchase_rule_json(json_t *purchase)
{
    json_t *enabled = json_object_get(purchase, "enabled");
    json_t *cats = json_object_get(purchase, "excluded_categories");
    /* "o" takes the reference: a new empty array, or one more on cats. */
    return json_pack("{s:b, s:I, s:I, s:o}", "enabled", !json_is_false(enabled), "unit_amount",
                     json_integer_value(json_object_get(purchase, "unit_amount")),
                     "points_per_unit",
                     json_integer_value(json_object_get(purchase, "points_per_unit")),
                     "excluded_categories", json_is_array(cats) ? json_incref(cats) : json_array());
}

/* ------------------------------------------------------------ the answer */
static json_t *answer_body(const struct rules_put *put, const char *status)
{
    char at[32];
    event_format_time(put->effective_from_us, at);
    return json_pack("{s:s, s:s, s:s, s:O}", "status", status, "change_id", put->r->command_id,
                     "effective_from", at, "purchase", put->purchase);
}

static json_t *answer(void *ctx, const char *status, const PGresult *row)
{
    return answer_body(ctx, status);
}

/* The EarningRulesChanged event into r->command; false when it does not
 * encode (a bounded body always does). */
static bool encode_change(struct rules_put *put)
{
    struct req *r = put->r;
    struct event_meta meta = settings_event_meta(r);
    Envelope env;
    Actor actor;
    EarningRulesChanged change;
    PurchaseEarningRule rule;
    char *cats[EARNING_CATEGORIES_MAX];
    envelope_init(&env, &actor, &meta);
    put->effective_from_us = env.occurred_at_us;
    tessera__campaign__v1__earning_rules_changed__init(&change);
    tessera__campaign__v1__purchase_earning_rule__init(&rule);
    json_t *p = put->purchase, *list = json_object_get(p, "excluded_categories");
    rule.enabled = json_is_true(json_object_get(p, "enabled"));
    rule.unit_amount = json_integer_value(json_object_get(p, "unit_amount"));
    rule.points_per_unit = json_integer_value(json_object_get(p, "points_per_unit"));
    rule.n_excluded_categories = json_array_size(list);
    assert(rule.n_excluded_categories <= EARNING_CATEGORIES_MAX); /* validated */
    for (size_t i = 0; i < rule.n_excluded_categories; i++)
        cats[i] = (char *)json_string_value(json_array_get(list, i));
    rule.excluded_categories = cats;
    change.change_id = r->command_id;
    change.purchase = &rule;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARNING_RULES_CHANGED;
    env.earning_rules_changed = &change;
    r->command = envelope_encode(&env, &r->command_len);
    return r->command != NULL;
}

/* The audit row (target: the tenant, like card limits; after: the
 * request, the change id and the rule as stored) and the event's outbox
 * row, in one statement: $1 tenant, $2 actor key id, $3 actor address,
 * $4 after, $5 the event. */
static const char publish_sql[] = SETTINGS_PUBLISH_SQL("earning_rules.put");

static void publish(struct rules_put *put)
{
    struct req *r = put->r;
    json_t *after = answer_body(put, "published");
    json_object_del(after, "status");
    json_object_set(after, "request", r->body);
    struct settings_change c = {.publish_sql = publish_sql,
                                .audit_after = after,
                                .applied_sql = "SELECT 1 FROM campaign.read_earning_rules "
                                               "WHERE tenant_id = $1 AND change_id = $2",
                                .answer = answer,
                                .release = rules_put_free,
                                .ctx = put};
    settings_publish(r, &c);
    json_decref(after);
}

static void put_authorized(struct req *r)
{
    if (!req_read_body(r))
        return;
    if (!validate_rules(r))
        return;
    commands_read_prefer_wait(r);
    struct rules_put *put = calloc(1, sizeof(*put));
    assert(put);
    put->r = r;
    put->purchase = purchase_rule_json(json_object_get(r->body, "purchase"));
    uuid7_generate(r->command_id); /* the change id */
    if (!put->purchase || !encode_change(put)) {
        rules_put_free(put);
        req_fail(r, 413, "payload_too_large", "the rules do not fit in an event");
        return;
    }
    publish(put);
}

void earning_rules_put(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), put_authorized);
}
