/* GET /v1/audit-log (admin): the tenant's admin actions, newest first, as
 * written by the statements that made them (see AUDIT_CTE). Paged with
 * ?limit= (1..500, default 100) and an opaque cursor (the last entry's
 * sequence number). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "log/log.h"

#define AUDIT_LIMIT_DEFAULT 100
#define AUDIT_LIMIT_MAX     500

static bool parse_positive(const char *text, long long max, long long *out)
{
    char *end = NULL;
    if (!text || !*text || strlen(text) > 18)
        return false;
    long long v = strtoll(text, &end, 10);
    if (*end || v < 1 || v > max)
        return false;
    *out = v;
    return true;
}

static void on_listed(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    json_t *entries = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    json_t *answer = json_pack("{s:o}", "entries", entries ? entries : json_array());
    if (!PQgetisnull(res, 0, 1))
        json_object_set_new(answer, "next_cursor", json_string(PQgetvalue(res, 0, 1)));
    req_finish(r, 200, answer);
}

static void list_authorized(struct req *r)
{
    long long limit = AUDIT_LIMIT_DEFAULT, cursor = 0;
    const char *limit_text = http_query(r->ex, "limit"), *cursor_text = http_query(r->ex, "cursor");
    if (limit_text && !parse_positive(limit_text, AUDIT_LIMIT_MAX, &limit)) {
        req_reply_invalid(r, "limit", "must be an integer from 1 to 500");
        return;
    }
    if (cursor_text && !parse_positive(cursor_text, INT64_MAX / 2, &cursor)) {
        req_reply_invalid(r, "cursor", "must be a cursor from a previous page");
        return;
    }
    char limit_s[24], cursor_s[24];
    snprintf(limit_s, sizeof(limit_s), "%lld", limit);
    snprintf(cursor_s, sizeof(cursor_s), "%lld", cursor);
    const char *p[3] = {r->caller.tenant_id, limit_s, cursor_text ? cursor_s : NULL};
    /* One more row than asked tells whether there is a next page. */
    if (pg_pool_query(
            r->app->pg,
            "WITH page AS (SELECT * FROM audit_log WHERE tenant_id = $1 AND ($3::bigint IS NULL "
            "OR audit_id < $3::bigint) ORDER BY audit_id DESC LIMIT $2::int + 1), "
            "shown AS (SELECT * FROM page ORDER BY audit_id DESC LIMIT $2::int) "
            "SELECT coalesce((SELECT json_agg(json_build_object('audit_id', audit_id, "
            "'occurred_at', occurred_at, 'actor_key_id', actor_key_id, 'actor_ip', actor_ip, "
            "'action', action, 'target', target, 'before', before, 'after', after) ORDER BY "
            "audit_id DESC) FROM shown), '[]')::text, CASE WHEN (SELECT count(*) FROM page) > "
            "$2::int THEN (SELECT min(audit_id) FROM shown)::text END",
            3, p, on_listed, r) < 0)
        req_fail_db(r, "queue full");
}

void audit_list(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), list_authorized);
}

static void on_recorded(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res)
        log_fields(LOG_ERROR, "audit row not written", "action", r->audit_action, "member_id",
                   r->member_id, "error", err ? err : "", NULL);
    json_t *result = r->audit_result; /* the answer takes it */
    r->audit_result = NULL;
    if (r->audit_status == 202) {
        char location[96];
        snprintf(location, sizeof(location), "/v1/operations/%s", r->command_id);
        req_finish_with(r, 202, result, "Location", location, NULL);
    } else {
        req_finish_verdict(r, r->audit_status, result);
    }
}

void audit_verdict_then_answer(struct req *r, int status, json_t *result)
{
    json_t *after = json_pack("{s:O, s:i, s:O}", "request", r->body ? r->body : json_null(),
                              "status", status, "result", result ? result : json_null());
    char *after_text = after ? json_dumps(after, JSON_COMPACT) : NULL;
    json_decref(after);
    req_change_state(r, REQ_RECORDING);
    r->audit_status = status;
    r->audit_result = result;
    const char *params[6] = {r->caller.tenant_id, r->caller.key_id, http_peer(r->ex),
                             r->audit_action,     r->member_id,     after_text ? after_text : "{}"};
    int rc = pg_pool_query(r->app->pg,
                           "INSERT INTO audit_log (tenant_id, actor_key_id, actor_ip, action, "
                           "target, after) VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
                           6, params, on_recorded, r);
    free(after_text);
    if (rc < 0)
        on_recorded(r, NULL, "queue full", "");
}
