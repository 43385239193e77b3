/* The notification settings a tenant's admin makes, validated here and
 * sent as events the notification service stores (it owns them; ingest
 * reads back only its published views):
 *
 *   PUT /v1/templates/{name}        a template for a channel and locale:
 *                                   every {{variable}} must be one of the
 *                                   name's (libs/template), else 422
 *                                   naming it; TemplateChanged
 *   GET /v1/templates/{name}        the tenant's templates of the name
 *                                   (notification.read_templates) and the
 *                                   built-in ones, with the variables
 *   PUT /v1/config/notifications    quiet hours, weekly marketing cap,
 *                                   time zone, default locale, currency:
 *                                   NotificationPolicyChanged
 *   GET /v1/config/notifications    the policy in force
 *                                   (notification.read_policies)
 *
 * Both events go to notify-requests keyed by tenant through ingest's
 * outbox, in one statement with the audit row; the answer is 202: the
 * service applies the change in order with the tenant's requests. */
#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "bus/topics.h"
#include "clock/clock.h"
#include "http/validate.h"
#include "ingest.h"
#include "tessera/notification/v1/notification.pb-c.h"
#include "template/template.h"
#include "tz/tz.h"

#define NOTIFY_LOCALE_MAX 16
#define NOTIFY_CAP_MAX    1000

static const char *const CHANNELS[] = {"inbox", "email", "sms", "push", NULL};
static const char *const LOCALES[] = {"zh-CN", "en", NULL};

/* The audit row and the outbox row in one statement: $1 tenant, $2 actor
 * key id, $3 actor address, $4 after, $5 the event, $6 the action. */
/* clang-format off */
static const char publish_sql[] =
    "WITH changed AS (SELECT $1::text AS target, NULL::jsonb AS before, $4::jsonb AS after), "
    "audit AS (INSERT INTO audit_log (tenant_id, actor_key_id, actor_ip, action, target, "
    "before, after) SELECT $1, $2, $3, $6, target, before, after FROM changed), "
    "o AS (INSERT INTO outbox (topic, key, payload) "
    "VALUES ('" TOPIC_NOTIFY_REQUESTS "', $1, $5::bytea) RETURNING id) "
    "SELECT id FROM o";
/* clang-format on */

static void on_published(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    outbox_publish_to(r->app, PQgetvalue(res, 0, 0), TOPIC_NOTIFY_REQUESTS, r->caller.tenant_id,
                      r->command, r->command_len);
    json_t *body = json_deep_copy(r->body);
    json_object_set_new(body, "status", json_string("accepted"));
    json_object_set_new(body, "change_id", json_string(r->command_id));
    req_finish(r, 202, body);
}

/* Encodes env into r->command and publishes it with its audit row. */
static void publish(struct req *r, Envelope *env, const char *action)
{
    r->command = envelope_encode(env, &r->command_len);
    if (!r->command) {
        req_fail(r, 413, "payload_too_large", "the change does not fit in an event");
        return;
    }
    char *hex = db_bytea_text(r->command, r->command_len);
    char *after = json_dumps(r->body, JSON_COMPACT);
    const char *p[6] = {
        r->caller.tenant_id, r->caller.key_id, http_peer(r->ex), after, hex, action};
    int rc = pg_pool_query(r->app->pg, publish_sql, 6, p, on_published, r);
    free(after);
    free(hex);
    if (rc < 0)
        req_fail_db(r, "queue full");
}

static void init_envelope(struct req *r, Envelope *env, Actor *actor, struct event_meta *meta)
{
    *meta = (struct event_meta){.tenant_id = r->caller.tenant_id,
                                .member_id = "",
                                .correlation_id = r->command_id,
                                .actor_kind = "api_key",
                                .actor_id = r->caller.key_id,
                                .traceparent = r->traceparent};
    envelope_init(env, actor, meta);
}

/* ------------------------------------------------------------ templates */

/* Adds "unknown variable ..." (or a syntax error) for field to v. */
static void validate_template_text(struct validation *v, const struct template_kind *kind,
                                   const char *field, const char *text)
{
    char bad[TEMPLATE_VAR_NAME_MAX + 1], err[TEMPLATE_ERR_MAX];
    if (text && !template_validate(kind, text, bad, sizeof(bad), err, sizeof(err)))
        validation_add(v, field, err);
}

static void template_put_authorized(struct req *r)
{
    static const char *const fields[] = {"channel", "locale", "subject", "body", NULL};
    const struct template_kind *kind = template_kind_find(http_param(r->ex, "name"));
    if (!kind) {
        req_fail(r, 404, "not_found", "no template of this name (see docs/notifications.md)");
        return;
    }
    if (!req_read_body(r))
        return;
    struct validation v;
    validation_init(&v);
    const char *channel = "", *locale = NULL, *subject = NULL, *body = NULL;
    validate_no_unknown_fields(&v, r->body, fields);
    validate_enum(&v, r->body, "channel", false, CHANNELS, &channel);
    validate_enum(&v, r->body, "locale", true, LOCALES, &locale);
    validate_string(&v, r->body, "subject", true, 0, TEMPLATE_SUBJECT_MAX, &subject);
    validate_string(&v, r->body, "body", true, 1, TEMPLATE_BODY_MAX, &body);
    validate_template_text(&v, kind, "subject", subject);
    validate_template_text(&v, kind, "body", body);
    if (!req_validated(r, &v))
        return;
    if (strlen(subject) > TEMPLATE_SUBJECT_MAX || strlen(body) > TEMPLATE_BODY_MAX) {
        req_fail(r, 413, "payload_too_large", "the template is longer than its limit in bytes");
        return;
    }
    uuid7_generate(r->command_id);
    Envelope env;
    Actor actor;
    struct event_meta meta;
    init_envelope(r, &env, &actor, &meta);
    Tessera__Notification__V1__TemplateChanged t =
        TESSERA__NOTIFICATION__V1__TEMPLATE_CHANGED__INIT;
    t.change_id = r->command_id;
    t.name = (char *)kind->name;
    t.channel = (char *)(channel ? channel : "");
    t.locale = (char *)locale;
    t.subject = (char *)subject;
    t.body = (char *)body;
    t.version = clock_now_us(); /* later saves win, also when delivered twice */
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TEMPLATE_CHANGED;
    env.template_changed = &t;
    publish(r, &env, "templates.put");
}

void notify_template_put(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), template_put_authorized);
}

static const char *type_name(enum template_var_type t)
{
    return t == TEMPLATE_MONEY    ? "money"
           : t == TEMPLATE_NUMBER ? "number"
           : t == TEMPLATE_TIME   ? "time"
                                  : "text";
}

static void on_templates(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    const struct template_kind *kind = template_kind_find(http_param(r->ex, "name"));
    json_t *vars = json_array(), *list = json_array();
    json_array_append_new(vars, json_pack("{s:s, s:s}", "name", "member.name", "type", "text"));
    json_array_append_new(vars, json_pack("{s:s, s:s}", "name", "tenant.name", "type", "text"));
    for (size_t i = 0; i < kind->var_count; i++)
        json_array_append_new(vars, json_pack("{s:s, s:s}", "name", kind->vars[i].name, "type",
                                              type_name(kind->vars[i].type)));
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(
            list,
            json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "channel", PQgetvalue(res, i, 0), "locale",
                      PQgetvalue(res, i, 1), "subject", PQgetvalue(res, i, 2), "body",
                      PQgetvalue(res, i, 3), "version",
                      (json_int_t)strtoll(PQgetvalue(res, i, 4), NULL, 10), "source", "tenant"));
    for (const char *const *l = LOCALES; *l; l++) {
        const char *subject, *body;
        if (template_default(kind->name, *l, &subject, &body))
            json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "channel", "",
                                                  "locale", *l, "subject", subject, "body", body,
                                                  "version", (json_int_t)0, "source", "default"));
    }
    req_finish(
        r, 200,
        json_pack("{s:s, s:o, s:o}", "name", kind->name, "variables", vars, "templates", list));
}

static void template_get_authorized(struct req *r)
{
    const struct template_kind *kind = template_kind_find(http_param(r->ex, "name"));
    if (!kind) {
        req_fail(r, 404, "not_found", "no template of this name (see docs/notifications.md)");
        return;
    }
    const char *p[2] = {r->caller.tenant_id, kind->name};
    if (pg_pool_query(r->app->pg,
                      "SELECT channel, locale, subject, body, version FROM "
                      "notification.read_templates WHERE tenant_id = $1 AND name = $2 "
                      "ORDER BY locale, channel",
                      2, p, on_templates, r) < 0)
        req_fail_db(r, "queue full");
}

void notify_template_get(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), template_get_authorized);
}

/* ------------------------------------------------------------ policy */

/* "HH:MM" to minutes after midnight; -1 when it is not one. */
static int minutes_of(const char *hhmm)
{
    if (!hhmm || strlen(hhmm) != 5 || hhmm[2] != ':' || strspn(hhmm, "0123456789:") != 5)
        return -1;
    int h = (hhmm[0] - '0') * 10 + (hhmm[1] - '0'), m = (hhmm[3] - '0') * 10 + (hhmm[4] - '0');
    return h < 24 && m < 60 && hhmm[0] != ':' && hhmm[3] != ':' ? h * 60 + m : -1;
}

static void policy_put_authorized(struct req *r)
{
    static const char *const fields[] = {
        "time_zone",      "quiet_start", "quiet_end", "marketing_cap_per_week",
        "default_locale", "currency",    NULL};
    if (!req_read_body(r))
        return;
    struct validation v;
    validation_init(&v);
    const char *zone = NULL, *qs = NULL, *qe = NULL, *locale = NULL, *currency = "CNY";
    int64_t cap = 0;
    validate_no_unknown_fields(&v, r->body, fields);
    if (validate_string(&v, r->body, "time_zone", true, 1, TZ_NAME_MAX, &zone) && zone &&
        !tz_zone_known(zone))
        validation_add(&v, "time_zone", "not a time zone (IANA, e.g. Asia/Shanghai)");
    if (validate_string(&v, r->body, "quiet_start", true, 5, 5, &qs) && qs && minutes_of(qs) < 0)
        validation_add(&v, "quiet_start", "a time of day HH:MM");
    if (validate_string(&v, r->body, "quiet_end", true, 5, 5, &qe) && qe && minutes_of(qe) < 0)
        validation_add(&v, "quiet_end", "a time of day HH:MM");
    validate_int(&v, r->body, "marketing_cap_per_week", true, 0, NOTIFY_CAP_MAX, &cap);
    validate_enum(&v, r->body, "default_locale", true, LOCALES, &locale);
    if (validate_string(&v, r->body, "currency", false, 3, 3, &currency) && currency &&
        strspn(currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)
        validation_add(&v, "currency", "an ISO 4217 code, e.g. CNY");
    if (!req_validated(r, &v))
        return;
    uuid7_generate(r->command_id);
    Envelope env;
    Actor actor;
    struct event_meta meta;
    init_envelope(r, &env, &actor, &meta);
    Tessera__Notification__V1__NotificationPolicyChanged p =
        TESSERA__NOTIFICATION__V1__NOTIFICATION_POLICY_CHANGED__INIT;
    p.change_id = r->command_id;
    p.time_zone = (char *)zone;
    p.quiet_start_minute = minutes_of(qs);
    p.quiet_end_minute = minutes_of(qe);
    p.marketing_cap_per_week = (int32_t)cap;
    p.default_locale = (char *)locale;
    p.currency = (char *)(currency ? currency : "CNY");
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFICATION_POLICY_CHANGED;
    env.notification_policy_changed = &p;
    publish(r, &env, "notifications.put");
}

void notify_policy_put(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), policy_put_authorized);
}

static void on_policy(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    /* no row: the service's defaults (services/notification/rules_policy.c) */
    bool set = PQntuples(res) == 1;
    int qs = set ? atoi(PQgetvalue(res, 0, 1)) : 21 * 60,
        qe = set ? atoi(PQgetvalue(res, 0, 2)) : 8 * 60;
    char start[8], end[8];
    snprintf(start, sizeof(start), "%02d:%02d", qs / 60 % 24, qs % 60);
    snprintf(end, sizeof(end), "%02d:%02d", qe / 60 % 24, qe % 60);
    req_finish(r, 200,
               json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:b}", "time_zone",
                         set ? PQgetvalue(res, 0, 0) : "Asia/Shanghai", "quiet_start", start,
                         "quiet_end", end, "marketing_cap_per_week",
                         (json_int_t)(set ? atoi(PQgetvalue(res, 0, 3)) : 3), "default_locale",
                         set ? PQgetvalue(res, 0, 4) : "zh-CN", "currency",
                         set ? PQgetvalue(res, 0, 5) : "CNY", "default", !set));
}

static void policy_get_authorized(struct req *r)
{
    const char *p[1] = {r->caller.tenant_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT time_zone, quiet_start_minute, quiet_end_minute, "
                      "marketing_cap_per_week, default_locale, currency FROM "
                      "notification.read_policies WHERE tenant_id = $1",
                      1, p, on_policy, r) < 0)
        req_fail_db(r, "queue full");
}

void notify_policy_get(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), policy_get_authorized);
}
