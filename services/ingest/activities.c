/* POST /v1/members/{id}/activities (admin and pos keys: staff, the POS, a
 * course platform) and POST /v1/me/activities (a member session): a member
 * did something that may earn points. ingest checks it and publishes an
 * ActivityRecorded fact on member-events keyed by the member, through its
 * outbox; the campaign service decides what it earns. The answer is 202
 * with the activity id: the points follow asynchronously.
 *
 * De-duplication is the caller's activity_id: the campaign applies one per
 * member once, however often it is sent, so a retried POST is harmless
 * (and needs no Idempotency-Key). A member may record for themself only
 * the types an app can witness (MEMBER_TYPES); finished courses, passed
 * exams and the like come from staff or the course platform. */
#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "activity_rules.h"
#include "bus/topics.h"
#include "datetime/datetime.h"
#include "http/validate.h"
#include "ingest.h"

/* How far in the future an occurred_at may be (clock skew of devices). */
#define ACTIVITY_FUTURE_SKEW_US (INT64_C(5) * 60 * 1000000)
/* How far back: the campaign counts limits and streaks by day, and an
 * activity older than this would rewrite history nobody can see. */
#define ACTIVITY_PAST_MAX_US (INT64_C(31) * 24 * 3600 * 1000000)
#define ACTIVITY_SCORE_MAX   INT64_C(1000000)

static const char *const activity_fields[] = {"type",  "activity_id", "occurred_at", "course_id",
                                              "score", "details",     "branch_id",   NULL};
static const char *const member_types[] = {"check_in", "comment", "share", "login", NULL};

static bool member_may_record(const char *type)
{
    for (size_t i = 0; member_types[i]; i++)
        if (strcmp(member_types[i], type) == 0)
            return true;
    return false;
}

/* Checks the body into v; *occurred_us is the time it happened. */
static void check_fields(struct req *r, struct validation *v, bool by_member, int64_t *occurred_us,
                         const char **branch)
{
    json_t *b = r->body;
    const char *type = NULL, *id = NULL, *at = NULL, *course = NULL;
    int64_t score = 0, now = event_now_us();
    validate_no_unknown_fields(v, b, activity_fields);
    if (validate_string(v, b, "type", true, 1, 64, &type) && type) {
        if (activity_type_index(type) < 0)
            validation_add(v, "type", "unknown activity type; allowed: " ACTIVITY_TYPES_TEXT);
        else if (by_member && !member_may_record(type))
            validation_add(v, "type",
                           "a member records only check_in, comment, share, login; the rest "
                           "come from staff or the course platform");
    }
    validate_text(v, b, "activity_id", true, 1, ACTIVITY_ID_BYTES_MAX, ACTIVITY_ID_BYTES_MAX, &id);
    validate_text(v, b, "course_id", false, 1, 64, 64, &course);
    validate_int(v, b, "score", false, 0, ACTIVITY_SCORE_MAX, &score);
    ingest_validate_id(v, b, "branch_id", false, branch);
    if (by_member && json_object_get(b, "branch_id"))
        validation_add(v, "branch_id", "a member's activity counts at their home branch");
    *occurred_us = now;
    if (validate_string(v, b, "occurred_at", false, 1, 64, &at) && at) {
        if (!datetime_parse_rfc3339_us(at, occurred_us))
            validation_add(v, "occurred_at", "must be an RFC 3339 time");
        else if (*occurred_us > now + ACTIVITY_FUTURE_SKEW_US)
            validation_add(v, "occurred_at", "must not be in the future");
        else if (*occurred_us < now - ACTIVITY_PAST_MAX_US)
            validation_add(v, "occurred_at", "must be within the last 31 days");
    }
    json_t *details = json_object_get(b, "details");
    if (details && !json_is_null(details)) {
        char *text = json_is_object(details) ? json_dumps(details, JSON_COMPACT) : NULL;
        if (!text || strlen(text) > ACTIVITY_DETAILS_BYTES_MAX)
            validation_add(v, "details", "must be an object of at most 2048 bytes as JSON");
        free(text);
    }
}

/* The ActivityRecorded fact (caller frees), NULL when too large. */
static uint8_t *encode_activity(struct req *r, int64_t occurred_us, size_t *len)
{
    struct event_meta meta = {
        .tenant_id = r->caller.tenant_id,
        .branch_id = r->branch_id,
        .member_id = r->member_id,
        .correlation_id = r->command_id,
        .actor_kind = strcmp(r->caller.scope, "member") == 0 ? "member" : "api_key",
        .actor_id = strcmp(r->caller.scope, "member") == 0 ? r->member_id : r->caller.key_id,
        .traceparent = r->traceparent,
        .occurred_at_us = occurred_us};
    Envelope env;
    Actor actor;
    ActivityRecorded a;
    envelope_init(&env, &actor, &meta);
    tessera__engage__v1__activity_recorded__init(&a);
    json_t *b = r->body, *details = json_object_get(b, "details");
    a.activity_id = (char *)json_string_value(json_object_get(b, "activity_id"));
    a.type = (char *)json_string_value(json_object_get(b, "type"));
    const char *course = json_string_value(json_object_get(b, "course_id"));
    a.course_id = (char *)(course ? course : "");
    a.score = json_integer_value(json_object_get(b, "score"));
    char *details_text = json_is_object(details) ? json_dumps(details, JSON_COMPACT) : NULL;
    a.details_json = details_text ? details_text : "";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ACTIVITY_RECORDED;
    env.activity_recorded = &a;
    uint8_t *out = envelope_encode(&env, len);
    free(details_text);
    return out;
}

static void on_published(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    member_events_publish(r->app, PQgetvalue(res, 0, 0), r->member_id, r->command, r->command_len);
    json_t *body = json_pack("{s:s, s:s, s:s}", "status", "accepted", "activity_id",
                             json_string_value(json_object_get(r->body, "activity_id")), "type",
                             json_string_value(json_object_get(r->body, "type")));
    req_finish(r, 202, body);
}

/* Columns: the member's home branch (no row: no member), whether the
 * requested branch exists. Then the fact goes to the outbox. */
static void on_member_checked(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!req_member_row(r, res, err))
        return;
    if (!r->branch_id[0]) {
        snprintf(r->branch_id, sizeof(r->branch_id), "%s", PQgetvalue(res, 0, 0));
    } else if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        req_reply_invalid(r, "branch_id", "no such branch in this tenant");
        return;
    }
    uuid7_generate(r->command_id);
    const char *at = json_string_value(json_object_get(r->body, "occurred_at"));
    int64_t when = event_now_us();
    if (at && !datetime_parse_rfc3339_us(at, &when))
        when = event_now_us(); /* validated before: cannot happen */
    free(r->command);
    r->command = encode_activity(r, when, &r->command_len);
    if (!r->command) {
        req_fail(r, 413, "payload_too_large", "the activity does not fit in an event");
        return;
    }
    char *hex = db_bytea_text(r->command, r->command_len);
    const char *p[2] = {r->member_id, hex};
    int rc = pg_pool_query(r->app->pg,
                           "INSERT INTO outbox (topic, key, payload) VALUES ('" TOPIC_MEMBER_EVENTS
                           "', $1, $2::bytea) RETURNING id",
                           2, p, on_published, r);
    free(hex);
    if (rc < 0)
        req_fail_db(r, "queue full");
}

static void record(struct req *r, bool by_member)
{
    if (!req_read_body(r))
        return;
    struct validation v;
    validation_init(&v);
    int64_t occurred_us = 0;
    const char *branch = NULL;
    check_fields(r, &v, by_member, &occurred_us, &branch);
    if (!req_validated(r, &v))
        return;
    if (!by_member && !req_at_branch(r, branch))
        return;
    const char *p[3] = {r->caller.tenant_id, r->member_id, r->branch_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT m.branch_id, EXISTS (SELECT 1 FROM branches b WHERE "
                      "b.tenant_id = $1 AND b.branch_id = $3) FROM members m "
                      "WHERE m.tenant_id = $1 AND m.member_id = $2",
                      3, p, on_member_checked, r) < 0)
        req_fail_db(r, "queue full");
}

static void staff_authenticated(struct req *r)
{
    if (strcmp(r->caller.scope, "admin") != 0 && strcmp(r->caller.scope, "pos") != 0) {
        req_fail(r, 403, "forbidden", "only an admin or pos key records activities");
        return;
    }
    if (!req_member_from_path(r))
        return;
    record(r, false);
}

static void member_authenticated(struct req *r)
{
    record(r, true);
}

void activities_record(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), staff_authenticated);
}

void activities_record_me(struct http_exchange *ex, void *app)
{
    member_session_then(req_new(app, ex), member_authenticated);
}
