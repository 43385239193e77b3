/* GET and PUT /v1/config/referrals (admin): the tenant's referral rule.
 *
 * Like the earning rules (earning_rules.c), the rule is the campaign
 * service's: ingest validates a change, writes its audit row and the
 * ReferralRulesChanged event's outbox row in one statement (a change is
 * audited if and only if it is published; member-events keyed by tenant),
 * and answers 200 {status: "applied"} once the campaign has stored it
 * (campaign.read_referral_rules), or 202 {status: "accepted"} when the
 * wait budget (Prefer: wait=N) runs out first. GET answers the last rule
 * published, from the audit log ingest owns (a disabled rule when none).
 *
 * A rule: {enabled, lock_days, referrer: {points, stored_value_bonus?,
 * coupon_template_id?, card?: {product_id, days}}, referee: {...}}
 * (docs/rewards.md): a template must be the tenant's (422 naming the
 * field); card days go to the member's active time card of the product
 * when the reward is paid (the ledger owns products: not checked here). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "events/campaign_types.h"
#include "http/validate.h"
#include "ingest.h"
#include "settings_publish.h"

static const char *const rule_fields[] = {"enabled", "lock_days", "referrer", "referee", NULL};
static const char *const reward_fields[] = {"points", "stored_value_bonus", "coupon_template_id",
                                            "card", NULL};
static const char *const card_fields[] = {"product_id", "days", NULL};

struct referral_put {
    struct req *r;
    int64_t effective_from_us;
    json_t *rule; /* as stored and answered */
};

static void put_free(void *ctx)
{
    struct referral_put *put = ctx;
    json_decref(put->rule);
    free(put);
}

/* Frees the change and hands back its request, to answer it. */
static struct req *put_release(struct referral_put *put)
{
    struct req *r = put->r;
    put_free(put);
    return r;
}

/* ------------------------------------------------------------ validation */
/* card (optional): {product_id, days}; null is none. */
static void validate_card_days(struct validation *one, json_t *reward)
{
    json_t *card = json_object_get(reward, "card");
    const char *product = NULL;
    int64_t days = 0;
    if (!card || json_is_null(card))
        return;
    if (!json_is_object(card)) {
        validation_add(one, "card", "must be an object {product_id, days}");
        return;
    }
    struct validation inner;
    validation_init(&inner);
    validate_no_unknown_fields(&inner, card, card_fields);
    ingest_validate_id(&inner, card, "product_id", true, &product);
    validate_int(&inner, card, "days", true, 1, REFERRAL_CARD_DAYS_MAX, &days);
    char field[64];
    size_t i;
    json_t *e;
    json_array_foreach(inner.errors, i, e)
    {
        snprintf(field, sizeof(field), "card.%s", json_string_value(json_object_get(e, "field")));
        validation_add(one, field, json_string_value(json_object_get(e, "message")));
    }
    validation_free(&inner);
}

static void validate_reward(struct validation *v, json_t *body, const char *side)
{
    json_t *reward = json_object_get(body, side);
    char field[64];
    if (!reward || !json_is_object(reward)) {
        validation_add(v, side,
                       "is required: an object {points, stored_value_bonus, "
                       "coupon_template_id}");
        return;
    }
    struct validation one;
    validation_init(&one);
    int64_t n;
    const char *template_id = NULL;
    validate_no_unknown_fields(&one, reward, reward_fields);
    validate_int(&one, reward, "points", true, 0, REFERRAL_POINTS_MAX, &n);
    validate_int(&one, reward, "stored_value_bonus", false, 0, REFERRAL_SV_BONUS_MAX, &n);
    if (validate_string(&one, reward, "coupon_template_id", false, 1, 64, &template_id) &&
        template_id && !uuid_is_valid(template_id))
        validation_add(&one, "coupon_template_id", "must be a coupon template's id");
    validate_card_days(&one, reward);
    size_t i;
    json_t *e;
    json_array_foreach(one.errors, i, e)
    {
        snprintf(field, sizeof(field), "%s.%s", side,
                 json_string_value(json_object_get(e, "field")));
        validation_add(v, field, json_string_value(json_object_get(e, "message")));
    }
    validation_free(&one);
}

static bool validate_rule(struct req *r)
{
    struct validation v;
    validation_init(&v);
    int64_t n;
    json_t *enabled = json_object_get(r->body, "enabled");
    validate_no_unknown_fields(&v, r->body, rule_fields);
    if (enabled && !json_is_boolean(enabled))
        validation_add(&v, "enabled", "must be true or false");
    validate_int(&v, r->body, "lock_days", true, 0, REFERRAL_LOCK_DAYS_MAX, &n);
    validate_reward(&v, r->body, "referrer");
    validate_reward(&v, r->body, "referee");
    if (validation_ok(&v)) {
        validation_free(&v);
        return true;
    }
    req_fail_validation(r, &v);
    return false;
}

static int64_t side_int(json_t *rule, const char *side, const char *field)
{
    return json_integer_value(json_object_get(json_object_get(rule, side), field));
}

static int64_t side_points(json_t *rule, const char *side)
{
    return side_int(rule, side, "points");
}

/* A side's coupon template id, "" when none. */
static const char *side_template(json_t *rule, const char *side)
{
    const char *id =
        json_string_value(json_object_get(json_object_get(rule, side), "coupon_template_id"));
    return id ? id : "";
}

/* A side's card days ({product_id, days}), NULL when none. */
static json_t *side_card(json_t *rule, const char *side)
{
    json_t *card = json_object_get(json_object_get(rule, side), "card");
    return json_is_object(card) ? card : NULL;
}

/* One side as stored: points always, the other rewards when given. */
static json_t *side_json(json_t *body, const char *side)
{
    json_t *out = json_pack("{s:I}", "points", side_points(body, side));
    if (side_int(body, side, "stored_value_bonus") > 0)
        json_object_set_new(out, "stored_value_bonus",
                            json_integer(side_int(body, side, "stored_value_bonus")));
    if (side_template(body, side)[0])
        json_object_set_new(out, "coupon_template_id", json_string(side_template(body, side)));
    json_t *card = side_card(body, side);
    if (card)
        json_object_set_new(out, "card",
                            json_pack("{s:O, s:O}", "product_id",
                                      json_object_get(card, "product_id"), "days",
                                      json_object_get(card, "days")));
    return out;
}

/* The validated rule with its default (enabled) filled in. */
static json_t *rule_json(json_t *body)
{
    return json_pack("{s:b, s:I, s:o, s:o}", "enabled",
                     !json_is_false(json_object_get(body, "enabled")), "lock_days",
                     json_integer_value(json_object_get(body, "lock_days")), "referrer",
                     side_json(body, "referrer"), "referee", side_json(body, "referee"));
}

/* ------------------------------------------------------------ the answer */
static json_t *answer_body(const struct referral_put *put, const char *status)
{
    char at[32];
    event_format_time(put->effective_from_us, at);
    json_t *body = json_deep_copy(put->rule);
    json_object_set_new(body, "status", json_string(status));
    json_object_set_new(body, "change_id", json_string(put->r->command_id));
    json_object_set_new(body, "effective_from", json_string(at));
    return body;
}

static json_t *answer(void *ctx, const char *status, const PGresult *row)
{
    return answer_body(ctx, status);
}

/* A side's card days into its reward (borrows the rule's strings). */
static void side_card_fill(json_t *rule, const char *side, ReferralReward *w)
{
    json_t *card = side_card(rule, side);
    if (!card)
        return;
    w->card_product_id = (char *)json_string_value(json_object_get(card, "product_id"));
    w->card_days = json_integer_value(json_object_get(card, "days"));
}

/* The ReferralRulesChanged event into r->command. */
static bool encode_change(struct referral_put *put)
{
    struct req *r = put->r;
    struct event_meta meta = settings_event_meta(r);
    Envelope env;
    Actor actor;
    ReferralRulesChanged change;
    ReferralReward referrer, referee;
    envelope_init(&env, &actor, &meta);
    put->effective_from_us = env.occurred_at_us;
    tessera__campaign__v1__referral_rules_changed__init(&change);
    tessera__campaign__v1__referral_reward__init(&referrer);
    tessera__campaign__v1__referral_reward__init(&referee);
    referrer.points = side_points(put->rule, "referrer");
    referee.points = side_points(put->rule, "referee");
    referrer.stored_value_bonus = side_int(put->rule, "referrer", "stored_value_bonus");
    referee.stored_value_bonus = side_int(put->rule, "referee", "stored_value_bonus");
    referrer.coupon_template_id = (char *)side_template(put->rule, "referrer");
    referee.coupon_template_id = (char *)side_template(put->rule, "referee");
    side_card_fill(put->rule, "referrer", &referrer);
    side_card_fill(put->rule, "referee", &referee);
    change.change_id = r->command_id;
    change.enabled = json_is_true(json_object_get(put->rule, "enabled"));
    change.lock_days = json_integer_value(json_object_get(put->rule, "lock_days"));
    change.referrer = &referrer;
    change.referee = &referee;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFERRAL_RULES_CHANGED;
    env.referral_rules_changed = &change;
    r->command = envelope_encode(&env, &r->command_len);
    return r->command != NULL;
}

/* The audit row and the event's outbox row in one statement: $1 tenant,
 * $2 actor key id, $3 actor address, $4 after, $5 the event. */
static const char publish_sql[] = SETTINGS_PUBLISH_SQL("referrals.put");

static void publish(struct referral_put *put)
{
    json_t *after = answer_body(put, "published");
    json_object_del(after, "status");
    struct settings_change c = {.publish_sql = publish_sql,
                                .audit_after = after,
                                .applied_sql = "SELECT 1 FROM campaign.read_referral_rules "
                                               "WHERE tenant_id = $1 AND change_id = $2",
                                .answer = answer,
                                .release = put_free,
                                .ctx = put};
    settings_publish(put->r, &c);
    json_decref(after);
}

static void encode_then_publish(struct referral_put *put)
{
    uuid7_generate(put->r->command_id); /* the change id */
    if (!encode_change(put)) {
        req_fail(put_release(put), 413, "payload_too_large", "the rule does not fit in an event");
        return;
    }
    publish(put);
}

/* The coupon templates the rule names must be the tenant's. */
static void on_templates(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct referral_put *put = arg;
    if (!res) {
        req_fail_db(put_release(put), err);
        return;
    }
    const char *missing = PQgetvalue(res, 0, 0);
    if (missing[0]) {
        struct req *r = put_release(put);
        req_reply_invalid(r, missing, "no such coupon template in this tenant");
        return;
    }
    encode_then_publish(put);
}

static void put_authorized(struct req *r)
{
    if (!req_read_body(r) || !validate_rule(r))
        return;
    commands_read_prefer_wait(r);
    struct referral_put *put = calloc(1, sizeof(*put));
    assert(put);
    put->r = r;
    put->rule = rule_json(r->body);
    if (!put->rule) {
        req_fail(put_release(put), 413, "payload_too_large", "the rule does not fit in an event");
        return;
    }
    const char *a = side_template(put->rule, "referrer"), *b = side_template(put->rule, "referee");
    if (!a[0] && !b[0]) {
        encode_then_publish(put);
        return;
    }
    const char *p[3] = {r->caller.tenant_id, a, b};
    if (pg_pool_query(r->app->pg,
                      "SELECT CASE WHEN $2 <> '' AND NOT EXISTS (SELECT 1 FROM coupon_templates "
                      "WHERE tenant_id = $1 AND template_id = $2) "
                      "THEN 'referrer.coupon_template_id' WHEN $3 <> '' AND NOT EXISTS (SELECT 1 "
                      "FROM coupon_templates WHERE tenant_id = $1 AND template_id = $3) "
                      "THEN 'referee.coupon_template_id' ELSE '' END",
                      3, p, on_templates, put) < 0)
        req_fail_db(put_release(put), "queue full");
}

void referral_rules_put(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), put_authorized);
}

/* ------------------------------------------------------------ GET */
static void on_got(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    json_t *body = NULL;
    if (PQntuples(res) > 0)
        body = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!body) /* none published yet: nobody is rewarded */
        body = json_pack("{s:b, s:i, s:{s:i}, s:{s:i}}", "enabled", 0, "lock_days", 0, "referrer",
                         "points", 0, "referee", "points", 0);
    req_finish(r, 200, body);
}

static void get_authorized(struct req *r)
{
    const char *p[1] = {r->caller.tenant_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT after::text FROM audit_log WHERE tenant_id = $1 "
                      "AND action = 'referrals.put' ORDER BY audit_id DESC LIMIT 1",
                      1, p, on_got, r) < 0)
        req_fail_db(r, "queue full");
}

void referral_rules_get(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), get_authorized);
}
