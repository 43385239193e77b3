/* Levels set by staff (admin): PUT /v1/members/{id}/tier-override (a
 * level, a reason, an optional expiry), DELETE of it, and POST
 * /v1/members/{id}/tier-invitations (the way into an invitation-only
 * level). The member's tier is tiering's, so ingest checks the request
 * (the member exists, the level is in the ladder in force) and sends a
 * TierOverrideSet / TierOverrideCleared command on member-events keyed by
 * member, through its outbox with the audit row in one statement; tiering
 * applies it in order with the member's facts. The answer is 202
 * "accepted": the member view shows the override once applied. */
#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "bus/topics.h"
#include "clock/clock.h"
#include "datetime/datetime.h"
#include "http/validate.h"
#include "ingest.h"
#include "tier_ladder.h"

#define OVERRIDE_REASON_MAX 200 /* characters (bytes too: TIERING_TEXT_MAX) */

typedef Tessera__Tiering__V1__TierOverrideSet TierOverrideSet;
typedef Tessera__Tiering__V1__TierOverrideCleared TierOverrideCleared;

static const char *const set_fields[] = {"tier", "reason", "expires_at", NULL};
static const char *const clear_fields[] = {"reason", NULL};

enum override_kind { OVERRIDE_SET, OVERRIDE_INVITE, OVERRIDE_CLEAR };

/* The command into r->command (r->command_id is its override id). */
static bool encode(struct req *r, enum override_kind kind, const char *tier, const char *reason,
                   int64_t expires_us)
{
    char by[96];
    snprintf(by, sizeof(by), "api_key:%s", r->caller.key_id);
    struct event_meta meta = {.tenant_id = r->caller.tenant_id,
                              .branch_id = "",
                              .member_id = r->member_id,
                              .correlation_id = r->command_id,
                              .actor_kind = "api_key",
                              .actor_id = r->caller.key_id,
                              .traceparent = r->traceparent};
    Envelope env;
    Actor actor;
    TierOverrideSet set;
    TierOverrideCleared clear;
    envelope_init(&env, &actor, &meta);
    if (kind == OVERRIDE_CLEAR) {
        tessera__tiering__v1__tier_override_cleared__init(&clear);
        clear.override_id = r->command_id;
        clear.reason = (char *)reason;
        clear.by = by;
        env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_OVERRIDE_CLEARED;
        env.tier_override_cleared = &clear;
    } else {
        tessera__tiering__v1__tier_override_set__init(&set);
        set.override_id = r->command_id;
        set.kind = kind == OVERRIDE_INVITE ? "invitation" : "override";
        set.tier = (char *)tier;
        set.reason = (char *)reason;
        set.expires_at_us = expires_us;
        set.by = by;
        env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_OVERRIDE_SET;
        env.tier_override_set = &set;
    }
    r->command = envelope_encode(&env, &r->command_len);
    return r->command != NULL;
}

static void on_published(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    member_events_publish(r->app, PQgetvalue(res, 0, 1), r->member_id, r->command, r->command_len);
    json_t *body = json_deep_copy(r->body);
    json_object_set_new(body, "status", json_string("accepted"));
    json_object_set_new(body, "override_id", json_string(r->command_id));
    json_object_set_new(body, "member_id", json_string(r->member_id));
    req_finish(r, 202, body);
}

/* The audit row and the command's outbox row in one statement, when the
 * member exists and (set, invite) the level is in the ladder in force or
 * (clear) the member holds a level set by hand: $1 tenant, $2 key id,
 * $3 address, $4 after, $5 command, $6 member, $7 level name (or ''),
 * $8 the check ('level' | 'held'). Answers whether the member exists and
 * the outbox row's id (NULL: a check failed, nothing written). */
/* clang-format off */
static const char publish_sql[] =
    "WITH ok AS (SELECT 1 FROM members m WHERE m.tenant_id = $1 AND m.member_id = $6 AND "
    "CASE WHEN $8 = 'level' THEN EXISTS (SELECT 1 FROM tiering.read_tier_ladders l, "
    "jsonb_array_elements(l.config->'levels') e WHERE l.tenant_id = $1 AND e->>'name' = $7 "
    "AND l.version = (SELECT max(version) FROM tiering.read_tier_ladders WHERE tenant_id = $1)) "
    "ELSE EXISTS (SELECT 1 FROM tiering.read_member_tiers t WHERE t.tenant_id = $1 "
    "AND t.member_id = $6 AND t.reason IN ('override', 'invitation')) END), "
    "changed AS (SELECT $6::text AS target, NULL::jsonb AS before, $4::jsonb AS after FROM ok), "
    AUDIT_CTE("tiers.override")
    ", o AS (INSERT INTO outbox (topic, key, payload) "
    "SELECT '" TOPIC_MEMBER_EVENTS "', $6, $5::bytea FROM ok RETURNING id) "
    "SELECT (SELECT count(*) FROM members WHERE tenant_id = $1 AND member_id = $6), "
    "(SELECT id FROM o)";
/* clang-format on */

static void on_checked(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (res && strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
        req_fail_no_member(r);
        return;
    }
    if (res && PQgetisnull(res, 0, 1)) {
        bool set = r->audit_status != OVERRIDE_CLEAR;
        req_fail(r, set ? 422 : 404, set ? "validation_failed" : "not_found",
                 set ? "the tier is not a level of the ladder in force (set it with PUT "
                       "/v1/config/tiers)"
                     : "the member holds no tier set by hand");
        return;
    }
    on_published(arg, res, err, sqlstate);
}

static void publish(struct req *r, enum override_kind kind, const char *tier)
{
    char *hex = db_bytea_text(r->command, r->command_len);
    json_t *after = json_pack("{s:s, s:s, s:O}", "override_id", r->command_id, "kind",
                              kind == OVERRIDE_SET      ? "override"
                              : kind == OVERRIDE_INVITE ? "invitation"
                                                        : "cleared",
                              "request", r->body);
    char *after_text = json_dumps(after, JSON_COMPACT);
    json_decref(after);
    r->audit_status = (int)kind; /* on_checked's answer when the check fails */
    const char *p[8] = {r->caller.tenant_id,
                        r->caller.key_id,
                        http_peer(r->ex),
                        after_text,
                        hex,
                        r->member_id,
                        tier ? tier : "",
                        kind == OVERRIDE_CLEAR ? "held" : "level"};
    int rc = pg_pool_query(r->app->pg, publish_sql, 8, p, on_checked, r);
    free(after_text);
    free(hex);
    if (rc < 0)
        req_fail_db(r, "queue full");
}

/* Body checks; the expiry in µs (0: none) into *expires_us. */
static bool validate(struct req *r, enum override_kind kind, int64_t *expires_us)
{
    struct validation v;
    validation_init(&v);
    const char *tier = NULL, *reason = NULL, *expires = NULL;
    *expires_us = 0;
    validate_no_unknown_fields(&v, r->body, kind == OVERRIDE_CLEAR ? clear_fields : set_fields);
    if (kind != OVERRIDE_CLEAR)
        validate_string(&v, r->body, "tier", true, 1, TIER_NAME_MAX, &tier);
    validate_text(&v, r->body, "reason", kind != OVERRIDE_CLEAR, 1, OVERRIDE_REASON_MAX,
                  OVERRIDE_REASON_MAX, &reason);
    if (kind == OVERRIDE_INVITE && json_object_get(r->body, "expires_at"))
        validation_add(&v, "expires_at", "an invitation does not expire; use tier-override");
    else if (kind == OVERRIDE_SET &&
             validate_string(&v, r->body, "expires_at", false, 20, 40, &expires) && expires &&
             (!datetime_parse_rfc3339_us(expires, expires_us) || *expires_us <= clock_now_us()))
        validation_add(&v, "expires_at", "must be an RFC 3339 time in the future");
    return req_validated(r, &v);
}

static void start(struct req *r, enum override_kind kind)
{
    if (!req_member_from_path(r))
        return;
    if (kind == OVERRIDE_CLEAR) {
        /* DELETE may come without a body */
        r->body = json_object();
    } else if (!req_read_body(r)) {
        return;
    }
    int64_t expires_us;
    if (!validate(r, kind, &expires_us))
        return;
    const char *tier = json_string_value(json_object_get(r->body, "tier"));
    const char *reason = json_string_value(json_object_get(r->body, "reason"));
    uuid7_generate(r->command_id); /* the override id */
    if (!encode(r, kind, tier, reason ? reason : "", expires_us)) {
        req_fail(r, 413, "payload_too_large", "the request does not fit in an event");
        return;
    }
    publish(r, kind, tier);
}

static void set_authorized(struct req *r)
{
    start(r, OVERRIDE_SET);
}

static void invite_authorized(struct req *r)
{
    start(r, OVERRIDE_INVITE);
}

static void clear_authorized(struct req *r)
{
    start(r, OVERRIDE_CLEAR);
}

void tier_override_put(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), set_authorized);
}

void tier_override_delete(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), clear_authorized);
}

void tier_invitation_post(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), invite_authorized);
}
