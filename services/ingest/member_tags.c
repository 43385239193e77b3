/* Manual member tags: PUT and DELETE /v1/members/{member_id}/tags/{tag}
 * (admin or pos key). A tag is the operator's label ("vip",
 * "lapsed-2026"), no personal data: lower-case letters, digits and
 * - _ . : only, so it is safe in a path, a query and a log. Both are
 * idempotent: putting a tag the member has, or deleting one it lacks,
 * answers the same as the first time. GET /v1/members/{id} lists the tags
 * and GET /v1/members?tag= filters by one (member_list.c). */
#include <stdio.h>
#include <string.h>

#include "ingest.h"
#include "profile_cache.h"

bool member_tag_ok(const char *tag)
{
    size_t n = strlen(tag);
    if (n < 1 || n > MEMBER_TAG_MAX)
        return false;
    for (const char *p = tag; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("-_.:", *p)))
            return false;
    return true;
}

/* The member and tag from the path; false after answering 404 or 422. */
static bool tag_from_path(struct req *r, const char **tag)
{
    if (!req_member_from_path(r))
        return false;
    *tag = http_param(r->ex, "tag");
    if (!*tag || !member_tag_ok(*tag)) {
        req_reply_invalid(r, "tag", MEMBER_TAG_RULE);
        return false;
    }
    return true;
}

static json_t *tag_answer(struct req *r, const char *tag, bool tagged)
{
    return json_pack("{s:s, s:s, s:b}", "member_id", r->member_id, "tag", tag, "tagged", tagged);
}

static void answer_tag(struct req *r)
{
    req_finish(r, 200, json_incref(r->body));
}

/* The answer in r->body goes out after the cached profile, when column
 * col holds the view version a change wrote (NULL: nothing changed). */
static void forget_then_answer(struct req *r, const PGresult *res, int col)
{
    if (PQgetisnull(res, 0, col)) {
        answer_tag(r);
        return;
    }
    profile_cache_forget_then(r, strtoll(PQgetvalue(res, 0, col), NULL, 10), answer_tag);
}

/* Columns: the member exists, it had the tag, its tag count before, the
 * view version written (NULL: the tag was there, or the limit refused it). */
static void on_put(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!req_member_exists(r, res, err))
        return;
    bool had = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    if (!had && atoi(PQgetvalue(res, 0, 2)) >= MEMBER_TAGS_MAX) {
        req_fail(r, 409, "tag_limit_reached", "the member has the most tags allowed (32)");
        return;
    }
    json_decref(r->body);
    r->body = tag_answer(r, http_param(r->ex, "tag"), true);
    forget_then_answer(r, res, 3);
}

static void put_authenticated(struct req *r)
{
    const char *tag = NULL;
    if (!auth_may_manage_members(r) || !tag_from_path(r, &tag))
        return;
    char max[16];
    snprintf(max, sizeof(max), "%d", MEMBER_TAGS_MAX);
    const char *p[4] = {r->caller.tenant_id, r->member_id, tag, max};
    if (pg_pool_query(r->app->pg,
                      "WITH m AS (SELECT member_id FROM members WHERE tenant_id = $1 "
                      "AND member_id = $2), "
                      "t AS (SELECT count(*) AS n, bool_or(tag = $3) AS had FROM member_tags "
                      "WHERE tenant_id = $1 AND member_id = $2), "
                      "ins AS (INSERT INTO member_tags (tenant_id, member_id, tag) "
                      "SELECT $1, member_id, $3 FROM m WHERE (SELECT n FROM t) < $4::int "
                      "ON CONFLICT DO NOTHING RETURNING tag), "
                      "v AS (UPDATE members SET view_version = view_version + 1 "
                      "WHERE tenant_id = $1 AND member_id = $2 AND EXISTS (SELECT 1 FROM ins) "
                      "RETURNING view_version) "
                      "SELECT EXISTS (SELECT 1 FROM m), coalesce((SELECT had FROM t), false), "
                      "(SELECT n FROM t), (SELECT view_version FROM v)",
                      4, p, on_put, r) < 0)
        req_fail_db(r, "queue full");
}

void member_tags_put(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), put_authenticated);
}

static void on_deleted(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!req_member_exists(r, res, err))
        return;
    json_decref(r->body);
    r->body = tag_answer(r, http_param(r->ex, "tag"), false);
    forget_then_answer(r, res, 1);
}

static void delete_authenticated(struct req *r)
{
    const char *tag = NULL;
    if (!auth_may_manage_members(r) || !tag_from_path(r, &tag))
        return;
    const char *p[3] = {r->caller.tenant_id, r->member_id, tag};
    if (pg_pool_query(r->app->pg,
                      "WITH d AS (DELETE FROM member_tags WHERE tenant_id = $1 AND member_id = $2 "
                      "AND tag = $3 RETURNING tag), "
                      "v AS (UPDATE members SET view_version = view_version + 1 "
                      "WHERE tenant_id = $1 AND member_id = $2 AND EXISTS (SELECT 1 FROM d) "
                      "RETURNING view_version) "
                      "SELECT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 "
                      "AND member_id = $2), (SELECT view_version FROM v)",
                      3, p, on_deleted, r) < 0)
        req_fail_db(r, "queue full");
}

void member_tags_delete(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), delete_authenticated);
}
