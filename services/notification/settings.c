/* What ingest tells notification about members and tenants, stored in
 * message order inside the batch's transaction: inbox reads, templates and
 * policy (contacts and consents: facts.c). A later message always wins (a
 * member's and a tenant's messages share one partition). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock/clock.h"
#include "db/db.h"
#include "log/log.h"
#include "notification.h"
#include "rules_policy.h"
#include "template/template.h"

static bool one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

static const char *const CHANNELS[] = {"inbox", "email", "sms", "push", NULL};

static int run(PGconn *pg, const char *sql, int n, const char *const *p, char *err, size_t err_len)
{
    PGresult *res = db_query(pg, sql, n, p, err, err_len, NULL);
    PQclear(res);
    return res ? 0 : -1;
}

static int store_read(PGconn *pg, const Envelope *env, const char **poison, char *err,
                      size_t err_len)
{
    const InboxMessagesRead *r = env->inbox_messages_read;
    if (!env->member_id[0] || r->n_message_ids > NOTIFY_READ_IDS_MAX) {
        *poison = "inbox read without a member or with too many ids";
        return 1;
    }
    struct db_array ids;
    db_array_init(&ids);
    for (size_t i = 0; i < r->n_message_ids; i++)
        db_array_add(&ids, r->message_ids[i]);
    char now[24], up_to[24];
    snprintf(now, sizeof(now), "%lld", (long long)clock_now_us());
    snprintf(up_to, sizeof(up_to), "%lld", (long long)r->up_to_us);
    const char *p[5] = {env->tenant_id, env->member_id, db_array_finish(&ids), up_to, now};
    int rc = run(pg,
                 "UPDATE inbox SET read_us = $5 WHERE tenant_id = $1 AND member_id = $2 AND "
                 "read_us IS NULL AND (message_id = ANY($3::text[]) OR created_us <= $4::bigint)",
                 5, p, err, err_len);
    db_array_free(&ids);
    return rc;
}

static int store_template(PGconn *pg, const Envelope *env, const char **poison, char *err,
                          size_t err_len)
{
    const TemplateChanged *t = env->template_changed;
    const struct template_kind *kind = template_kind_find(t->name);
    char why[TEMPLATE_ERR_MAX];
    if (!kind || !t->change_id[0] || (t->channel[0] && !one_of(t->channel, CHANNELS)) ||
        strlen(t->locale) > POLICY_LOCALE_MAX || strlen(t->subject) > TEMPLATE_SUBJECT_MAX ||
        strlen(t->body) > TEMPLATE_BODY_MAX ||
        !template_validate(kind, t->subject, NULL, 0, why, sizeof(why)) ||
        !template_validate(kind, t->body, NULL, 0, why, sizeof(why))) {
        *poison = "template refused (unknown name or variable, or too long)";
        return 1;
    }
    char version[24], now[24];
    snprintf(version, sizeof(version), "%lld", (long long)t->version);
    snprintf(now, sizeof(now), "%lld", (long long)clock_now_us());
    const char *p[9] = {env->tenant_id, t->name, t->channel,   t->locale, t->subject,
                        t->body,        version, t->change_id, now};
    /* A re-delivered older change (lower version) never overwrites a newer one. */
    return run(pg,
               "INSERT INTO templates (tenant_id, name, channel, locale, subject, body, version, "
               "change_id, updated_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
               "ON CONFLICT (tenant_id, name, channel, locale) DO UPDATE SET "
               "subject = EXCLUDED.subject, body = EXCLUDED.body, version = EXCLUDED.version, "
               "change_id = EXCLUDED.change_id, updated_us = EXCLUDED.updated_us "
               "WHERE templates.version <= EXCLUDED.version",
               9, p, err, err_len);
}

static int store_policy(PGconn *pg, const Envelope *env, const char **poison, char *err,
                        size_t err_len)
{
    const NotificationPolicyChanged *c = env->notification_policy_changed;
    struct notify_policy pol;
    policy_defaults(&pol);
    if (strlen(c->time_zone) > POLICY_ZONE_MAX || strlen(c->default_locale) > POLICY_LOCALE_MAX ||
        strlen(c->currency) > POLICY_CURRENCY_MAX || !c->change_id[0]) {
        *poison = "policy field too long";
        return 1;
    }
    if (c->time_zone[0])
        snprintf(pol.time_zone, sizeof(pol.time_zone), "%s", c->time_zone);
    if (c->default_locale[0])
        snprintf(pol.default_locale, sizeof(pol.default_locale), "%s", c->default_locale);
    if (c->currency[0])
        snprintf(pol.currency, sizeof(pol.currency), "%s", c->currency);
    pol.quiet_start_minute = c->quiet_start_minute;
    pol.quiet_end_minute = c->quiet_end_minute;
    pol.marketing_cap_per_week = c->marketing_cap_per_week;
    if (!policy_valid(&pol)) {
        *poison = "policy out of range";
        return 1;
    }
    char qs[12], qe[12], cap[12], now[24];
    snprintf(qs, sizeof(qs), "%d", pol.quiet_start_minute);
    snprintf(qe, sizeof(qe), "%d", pol.quiet_end_minute);
    snprintf(cap, sizeof(cap), "%d", pol.marketing_cap_per_week);
    snprintf(now, sizeof(now), "%lld", (long long)clock_now_us());
    const char *p[9] = {env->tenant_id,     pol.time_zone, qs,           qe, cap,
                        pol.default_locale, pol.currency,  c->change_id, now};
    log_fields(LOG_INFO, "notification policy changed", "tenant", env->tenant_id, "change_id",
               c->change_id, NULL);
    return run(pg,
               "INSERT INTO policies (tenant_id, time_zone, quiet_start_minute, "
               "quiet_end_minute, marketing_cap_per_week, default_locale, currency, change_id, "
               "updated_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id) "
               "DO UPDATE SET time_zone = EXCLUDED.time_zone, quiet_start_minute = "
               "EXCLUDED.quiet_start_minute, quiet_end_minute = EXCLUDED.quiet_end_minute, "
               "marketing_cap_per_week = EXCLUDED.marketing_cap_per_week, default_locale = "
               "EXCLUDED.default_locale, currency = EXCLUDED.currency, change_id = "
               "EXCLUDED.change_id, updated_us = EXCLUDED.updated_us",
               9, p, err, err_len);
}

int notify_apply_setting(PGconn *pg, const Envelope *env, const char **poison, char *err,
                         size_t err_len)
{
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_INBOX_MESSAGES_READ:
        return store_read(pg, env, poison, err, err_len);
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TEMPLATE_CHANGED:
        return store_template(pg, env, poison, err, err_len);
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFICATION_POLICY_CHANGED:
        return store_policy(pg, env, poison, err, err_len);
    default:
        *poison = "not a notification message";
        return 1;
    }
}
