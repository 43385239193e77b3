/* GET/PUT /v1/config/activity-rules (admin): the tenant's activity rules
 * (points per activity type, limits, the check-in streak, the monthly cap,
 * promotional multipliers, the birthday gift and the welcome month).
 *
 * Built like earning_rules.c: the rules are the campaign service's, so
 * ingest validates a change and publishes it as an ActivityRulesChanged
 * fact on member-events keyed by tenant, in one statement with its audit
 * row and its version row here (activity_rules: what GET answers, versions
 * 1, 2, ... per tenant). The tenant's time zone (tenants.time_zone) travels
 * in the event: the campaign counts days, weeks, months and birthdays in
 * it. The answer waits (Prefer: wait=N) until the campaign has stored the
 * change: 200 "applied", or 202 "accepted" when it has not yet. A body
 * with mistakes is 422 naming every bad field; nothing is published and
 * the old version stays. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activity_rules.h"
#include "bus/topics.h"
#include "http/validate.h"
#include "ingest.h"
#include "log/log.h"
#include "settings_publish.h"

/* One PUT from its validation to its answer. */
struct activity_put {
    struct req *r;
    json_t *rules; /* the full rule set, as stored and answered */
    char time_zone[TIME_ZONE_BYTES_MAX + 1];
    int64_t version;
    int64_t effective_from_us;
};

static void put_free(void *ctx)
{
    struct activity_put *put = ctx;
    json_decref(put->rules);
    free(put);
}

/* Frees put and hands back its request, which the caller ends. */
static struct req *put_release(struct activity_put *put)
{
    struct req *r = put->r;
    put_free(put);
    return r;
}

/* The answer of GET and PUT: the rules and where they stand. */
static json_t *answer_body(json_t *rules, int64_t version, const char *change_id,
                           int64_t effective_from_us, const char *time_zone, const char *status)
{
    json_t *body = json_deep_copy(rules);
    char at[32];
    json_object_set_new(body, "version", json_integer(version));
    json_object_set_new(body, "time_zone", json_string(time_zone));
    json_object_set_new(body, "change_id", change_id ? json_string(change_id) : json_null());
    if (effective_from_us)
        event_format_time(effective_from_us, at);
    json_object_set_new(body, "effective_from", effective_from_us ? json_string(at) : json_null());
    if (status)
        json_object_set_new(body, "status", json_string(status));
    return body;
}

/* ------------------------------------------------------------ GET */
static void on_read(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) { /* the key's tenant is gone */
        req_fail(r, 404, "not_found", "no such tenant");
        return;
    }
    json_t *rules = NULL;
    if (!PQgetisnull(res, 0, 1))
        rules = json_loads(PQgetvalue(res, 0, 4), 0, NULL);
    else
        rules = activity_rules_from_body(NULL, NULL); /* the defaults: version 0 */
    if (!rules) {
        req_fail(r, 500, "internal", "the stored rules cannot be read");
        return;
    }
    bool stored = !PQgetisnull(res, 0, 1);
    json_t *body = answer_body(
        rules, stored ? atoll(PQgetvalue(res, 0, 1)) : 0, stored ? PQgetvalue(res, 0, 2) : NULL,
        stored ? atoll(PQgetvalue(res, 0, 3)) : 0, PQgetvalue(res, 0, 0), NULL);
    json_decref(rules);
    req_finish(r, 200, body);
}

static void get_authorized(struct req *r)
{
    const char *p[1] = {r->caller.tenant_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT coalesce(a.time_zone, t.time_zone), a.version, a.change_id, "
                      "a.effective_from_us, a.rules::text FROM tenants t LEFT JOIN LATERAL "
                      "(SELECT * FROM activity_rules x WHERE x.tenant_id = t.tenant_id "
                      "ORDER BY x.version DESC LIMIT 1) a ON true WHERE t.tenant_id = $1",
                      1, p, on_read, r) < 0)
        req_fail_db(r, "queue full");
}

void activity_rules_get(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), get_authorized);
}

/* ------------------------------------------------------------ PUT */
static json_t *answer(void *ctx, const char *status, const PGresult *row)
{
    struct activity_put *put = ctx;
    return answer_body(put->rules, put->version, put->r->command_id, put->effective_from_us,
                       put->time_zone, status);
}

/* The version row, the audit row and the outbox row in one statement:
 * $1 tenant, $2 actor key, $3 address, $4 audit after, $5 the event,
 * $6 version, $7 change id, $8 effective from, $9 zone, $10 rules. A
 * version taken by a concurrent PUT fails the whole statement (23505). */
/* clang-format off */
static const char publish_sql[] =
    "WITH changed AS (SELECT $1::text AS target, NULL::jsonb AS before, $4::jsonb AS after), "
    AUDIT_CTE("activity_rules.put")
    ", v AS (INSERT INTO activity_rules (tenant_id, version, change_id, effective_from_us, "
    "time_zone, rules) VALUES ($1, $6::bigint, $7, $8::bigint, $9, $10::jsonb) RETURNING version)"
    ", o AS (INSERT INTO outbox (topic, key, payload) "
    "SELECT '" TOPIC_MEMBER_EVENTS "', $1, $5::bytea FROM v RETURNING id) "
    "SELECT id FROM o";
/* clang-format on */

static void publish(struct activity_put *put)
{
    struct req *r = put->r;
    json_t *after = answer_body(put->rules, put->version, r->command_id, put->effective_from_us,
                                put->time_zone, NULL);
    json_object_set(after, "request", r->body);
    char *rules_text = json_dumps(put->rules, JSON_COMPACT);
    char version[24], from[24];
    snprintf(version, sizeof(version), "%lld", (long long)put->version);
    snprintf(from, sizeof(from), "%lld", (long long)put->effective_from_us);
    const char *extra[5] = {version, r->command_id, from, put->time_zone, rules_text};
    struct settings_change c = {
        .publish_sql = publish_sql,
        .audit_after = after,
        .extra = extra,
        .n_extra = 5,
        .applied_sql = "SELECT 1 FROM campaign.read_activity_rules WHERE tenant_id = $1 "
                       "AND change_id = $2",
        .answer = answer,
        .release = put_free,
        .ctx = put,
        .conflict_code = "rules_changed_concurrently",
        .conflict_detail =
            "another change of these rules was made at the same time; read and retry"};
    settings_publish(r, &c);
    free(rules_text);
    json_decref(after);
}

/* Columns: the tenant's zone, the next version. */
static void on_tenant(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct activity_put *put = arg;
    struct req *r = put->r;
    if (!res || PQntuples(res) == 0) {
        req_fail_db(put_release(put), res ? "no tenant row" : err);
        return;
    }
    snprintf(put->time_zone, sizeof(put->time_zone), "%s", PQgetvalue(res, 0, 0));
    put->version = atoll(PQgetvalue(res, 0, 1));
    struct event_meta meta = settings_event_meta(r);
    meta.occurred_at_us = event_now_us();
    put->effective_from_us = meta.occurred_at_us;
    r->command = activity_rules_encode(put->rules, &meta, r->command_id, put->version,
                                       put->time_zone, &r->command_len);
    if (!r->command) {
        req_fail(put_release(put), 413, "payload_too_large", "the rules do not fit in an event");
        return;
    }
    publish(put);
}

static void put_authorized(struct req *r)
{
    if (!req_read_body(r))
        return;
    struct validation v;
    validation_init(&v);
    json_t *rules = activity_rules_from_body(r->body, &v);
    if (!req_validated(r, &v)) {
        json_decref(rules);
        return;
    }
    commands_read_prefer_wait(r);
    struct activity_put *put = calloc(1, sizeof(*put));
    assert(put);
    put->r = r;
    put->rules = rules;
    uuid7_generate(r->command_id); /* the change id */
    const char *p[1] = {r->caller.tenant_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT t.time_zone, coalesce((SELECT max(version) FROM activity_rules a "
                      "WHERE a.tenant_id = t.tenant_id), 0) + 1 FROM tenants t "
                      "WHERE t.tenant_id = $1",
                      1, p, on_tenant, put) < 0)
        on_tenant(put, NULL, "queue full", "");
}

void activity_rules_put(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), put_authorized);
}
