/* A member's consents per channel and purpose (issue 11, issue 14):
 *
 *   GET /v1/members/{member_id}/consents, GET /v1/me/consents
 *   PUT /v1/members/{member_id}/consents (admin or pos key),
 *   PUT /v1/me/consents (the member's session)
 *
 * A PUT names 1 to 8 {channel, purpose, granted}; the pairs whose state
 * changes (or that were never set) are stored with their source
 * ("api_key:<key id>" or "member") and the service clock's time, and each
 * goes to notification as ConsentChanged through the outbox and gets an
 * audit row (member.consents.update), in the same statement. A pos key
 * changes the consents of any member of its tenant, as it changes their
 * profile and tags (members belong to the tenant, and a till serves a
 * member of any branch; docs/pos-scope.md). Every answer is the whole matrix: 4 channels x 2
 * purposes, a pair never set showing its default (transactional granted, marketing not) with source
 * "default". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "ingest.h"
#include "notify_out.h"

#define CONSENT_SOURCE_MAX 48

/* ------------------------------------------------------------ reading */
static json_t *consent_json(const PGresult *res, int i)
{
    json_t *changed = json_null();
    if (!PQgetisnull(res, i, 4)) {
        char at[32];
        event_format_time(strtoll(PQgetvalue(res, i, 4), NULL, 10), at);
        changed = json_string(at);
    }
    return json_pack("{s:s, s:s, s:b, s:s, s:o}", "channel", PQgetvalue(res, i, 0), "purpose",
                     PQgetvalue(res, i, 1), "granted", strcmp(PQgetvalue(res, i, 2), "t") == 0,
                     "source", PQgetvalue(res, i, 3), "changed_at", changed);
}

static void on_consents(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!req_member_row(r, res, err))
        return;
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(list, consent_json(res, i));
    req_finish(r, 200, json_pack("{s:s, s:o}", "member_id", r->member_id, "consents", list));
}

/* Answers the member's whole matrix (404 when there is no such member). */
static void consents_reply(struct req *r)
{
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(
            r->app->pg,
            "SELECT a.channel, b.purpose, coalesce(c.granted, b.purpose = 'transactional'), "
            "coalesce(c.source, 'default'), c.changed_at_us FROM members m "
            "CROSS JOIN unnest(ARRAY['inbox', 'email', 'sms', 'push']) WITH ORDINALITY "
            "AS a(channel, ci) "
            "CROSS JOIN unnest(ARRAY['transactional', 'marketing']) WITH ORDINALITY "
            "AS b(purpose, pi) "
            "LEFT JOIN member_consents c ON c.tenant_id = m.tenant_id "
            "AND c.member_id = m.member_id AND c.channel = a.channel AND c.purpose = b.purpose "
            "WHERE m.tenant_id = $1 AND m.member_id = $2 ORDER BY a.ci, b.pi",
            2, p, on_consents, r) < 0)
        req_fail_db(r, "queue full");
}

static void get_authenticated(struct req *r)
{
    if (!req_member_from_path(r))
        return;
    consents_reply(r);
}

void consents_get(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), get_authenticated);
}

void consents_me_get(struct http_exchange *ex, void *app)
{
    member_session_then(req_new(app, ex), consents_reply);
}

/* ------------------------------------------------------------ changing */
static void on_changed(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
        req_fail_no_member(r);
        return;
    }
    outbox_events_publish_rows(r->app, res, 1);
    consents_reply(r);
}

/* The changed pairs, their audit rows and their ConsentChanged events in
 * one statement (a change is stored if and only if it is audited and
 * published): $1 tenant, $2 member, $3-$6 the pairs and their events,
 * $7 source, $8 changed at (µs), $9 actor key id ("member" for the
 * member's session), $10 actor address. One audit row per pair that
 * changes (member.consents.update, target the member): before, the state
 * as it was (its default and source "default" when never set); after,
 * the new one. The first column says whether the member exists, the rest
 * are the outbox rows (none when nothing changed). */
/* clang-format off */
static const char STORE_SQL[] =
    "WITH mem AS (SELECT member_id FROM members WHERE tenant_id = $1 AND member_id = $2), "
    "x AS (SELECT x.* FROM mem, unnest($3::text[], $4::text[], $5::bool[], $6::bytea[]) "
    "WITH ORDINALITY AS x(channel, purpose, granted, payload, i)), "
    "changed AS (SELECT x.* FROM x WHERE NOT EXISTS (SELECT 1 FROM member_consents c "
    "WHERE c.tenant_id = $1 AND c.member_id = $2 AND c.channel = x.channel "
    "AND c.purpose = x.purpose AND c.granted = x.granted)), "
    "up AS (INSERT INTO member_consents (tenant_id, member_id, channel, purpose, granted, "
    "source, changed_at_us) SELECT $1, $2, channel, purpose, granted, $7, $8::bigint "
    "FROM changed ON CONFLICT (tenant_id, member_id, channel, purpose) DO UPDATE SET "
    "granted = EXCLUDED.granted, source = EXCLUDED.source, "
    "changed_at_us = EXCLUDED.changed_at_us), "
    "audit AS (INSERT INTO audit_log (tenant_id, actor_key_id, actor_ip, action, target, "
    "before, after) SELECT $1, $9, $10, 'member.consents.update', $2, "
    "jsonb_build_object('channel', x.channel, 'purpose', x.purpose, 'granted', "
    "coalesce(c.granted, x.purpose = 'transactional'), 'source', coalesce(c.source, 'default')), "
    "jsonb_build_object('channel', x.channel, 'purpose', x.purpose, 'granted', x.granted, "
    "'source', $7::text) FROM changed x LEFT JOIN member_consents c ON c.tenant_id = $1 "
    "AND c.member_id = $2 AND c.channel = x.channel AND c.purpose = x.purpose ORDER BY x.i), "
    "o AS (INSERT INTO outbox (topic, key, payload) SELECT '" TOPIC_NOTIFY_REQUESTS
    "', $2, payload FROM changed ORDER BY i RETURNING id, topic, key, payload) "
    "SELECT (SELECT count(*) FROM mem), o.id, o.topic, o.key, o.payload "
    "FROM (SELECT 1) one LEFT JOIN o ON true ORDER BY o.id";
/* clang-format on */

/* Stores the changed pairs (STORE_SQL). */
static void store_consents(struct req *r, const struct notify_consent_set *set, const char *source)
{
    struct notify_consent_arrays a;
    struct db_array payloads;
    db_array_init(&payloads);
    if (!notify_consent_arrays(&r->caller, r->member_id, r->traceparent, set, source, &a, NULL,
                               &payloads)) {
        notify_consent_arrays_free(&a);
        db_array_free(&payloads);
        req_fail_db(r, "could not encode the consent changes");
        return;
    }
    char now_us[24];
    snprintf(now_us, sizeof(now_us), "%lld", (long long)event_now_us());
    const char *p[10] = {r->caller.tenant_id,
                         r->member_id,
                         db_array_finish(&a.channels),
                         db_array_finish(&a.purposes),
                         db_array_finish(&a.granted),
                         db_array_finish(&payloads),
                         source,
                         now_us,
                         r->caller.key_id,
                         http_peer(r->ex)};
    int rc = pg_pool_query(r->app->pg, STORE_SQL, 10, p, on_changed, r);
    notify_consent_arrays_free(&a);
    db_array_free(&payloads);
    if (rc < 0)
        req_fail_db(r, "queue full");
}

/* Validates the body ({"consents": [...]}) and stores it. */
static void put_validated(struct req *r, const char *source)
{
    static const char *const fields[] = {"consents", NULL};
    if (!req_read_body(r))
        return;
    struct validation v;
    validation_init(&v);
    validate_no_unknown_fields(&v, r->body, fields);
    struct notify_consent_set set;
    notify_parse_consents(&v, r->body, true, &set);
    if (!req_validated(r, &v))
        return;
    store_consents(r, &set, source);
}

static void put_authenticated(struct req *r)
{
    if (strcmp(r->caller.scope, "admin") != 0 && strcmp(r->caller.scope, "pos") != 0) {
        req_fail(r, 403, "forbidden", "this key may not change members' consents");
        return;
    }
    if (!req_member_from_path(r))
        return;
    char source[CONSENT_SOURCE_MAX];
    snprintf(source, sizeof(source), "api_key:%s", r->caller.key_id);
    put_validated(r, source);
}

void consents_put(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), put_authenticated);
}

static void me_put_authenticated(struct req *r)
{
    put_validated(r, "member");
}

void consents_me_put(struct http_exchange *ex, void *app)
{
    member_session_then(req_new(app, ex), me_put_authenticated);
}
