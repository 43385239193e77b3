/* POST /v1/branches (admin): a new branch of the caller's tenant, audited
 * in the same statement. Branch ids are short slugs because they travel
 * in events, keys and URLs. */
#include <stdio.h>
#include <string.h>

#include "http/validate.h"
#include "ingest.h"

#define BRANCH_ID_MAX   64
#define BRANCH_NAME_MAX 100

static const char *const branch_fields[] = {"branch_id", "name", NULL};

static bool slug_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return false;
    return true;
}

static void on_created(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        req_fail(r, 409, "branch_exists", "this tenant already has that branch");
        return;
    }
    json_t *answer = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    req_finish(r, 201, answer);
}

static void create_authorized(struct req *r)
{
    if (!req_read_body(r))
        return;
    struct validation v;
    validation_init(&v);
    const char *branch_id = NULL, *name = NULL;
    validate_no_unknown_fields(&v, r->body, branch_fields);
    if (validate_string(&v, r->body, "branch_id", true, 1, BRANCH_ID_MAX, &branch_id) &&
        branch_id && !slug_ok(branch_id))
        validation_add(&v, "branch_id", "use lower-case letters, digits, '-' and '_'");
    validate_string(&v, r->body, "name", true, 1, BRANCH_NAME_MAX, &name);
    if (!req_validated(r, &v))
        return;
    const char *p[5] = {r->caller.tenant_id, r->caller.key_id, http_peer(r->ex), branch_id, name};
    if (pg_pool_query(r->app->pg,
                      "WITH changed AS (INSERT INTO branches (tenant_id, branch_id, name) VALUES "
                      "($1, $4, $5) ON CONFLICT DO NOTHING RETURNING branch_id AS target, "
                      "NULL::jsonb AS before, jsonb_build_object('branch_id', branch_id, 'name', "
                      "name, 'created_at', created_at) AS after), " AUDIT_CTE(
                          "branch.create") "SELECT after::text FROM changed",
                      5, p, on_created, r) < 0)
        req_fail_db(r, "queue full");
}

void branches_create(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), create_authorized);
}

/* ------------------------------------------------------- list */
static void on_listed(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    json_t *list = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    req_finish(r, 200, json_pack("{s:o}", "branches", list ? list : json_array()));
}

/* GET /v1/branches: any key of the tenant (a POS needs the ids too);
 * closed branches are listed with their closed_at. */
static void list_authenticated(struct req *r)
{
    const char *p[1] = {r->caller.tenant_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT coalesce(json_agg(json_build_object('branch_id', branch_id, 'name', "
                      "name, 'created_at', created_at, 'closed_at', closed_at) ORDER BY "
                      "branch_id), '[]')::text FROM branches WHERE tenant_id = $1",
                      1, p, on_listed, r) < 0)
        req_fail_db(r, "queue full");
}

void branches_list(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), list_authenticated);
}

/* ------------------------------------------------------- rename, close */
static void on_changed(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        req_fail(r, 404, "not_found", "no such branch in this tenant");
        return;
    }
    req_finish(r, 200, json_loads(PQgetvalue(res, 0, 0), 0, NULL));
}

/* $1 tenant, $2 actor key, $3 address, $4 branch, $5 the new name (NULL:
 * a close). The before and after go to the audit row. */
/* clang-format off */
#define BRANCH_CHANGE_SQL(set, action)                                                          \
    "WITH old AS (SELECT * FROM branches WHERE tenant_id = $1 AND branch_id = $4 FOR UPDATE), " \
    "upd AS (UPDATE branches b SET " set " FROM old WHERE b.tenant_id = old.tenant_id "         \
    "AND b.branch_id = old.branch_id RETURNING b.*), "                                          \
    "changed AS (SELECT upd.branch_id AS target, jsonb_build_object('name', old.name, "         \
    "'closed_at', old.closed_at) AS before, jsonb_build_object('branch_id', upd.branch_id, "    \
    "'name', upd.name, 'created_at', upd.created_at, 'closed_at', upd.closed_at) AS after "     \
    "FROM upd JOIN old USING (tenant_id, branch_id)), " AUDIT_CTE(action)                       \
    "SELECT after::text FROM changed"
/* clang-format on */

static void rename_authorized(struct req *r)
{
    if (!req_read_body(r))
        return;
    static const char *const fields[] = {"name", NULL};
    struct validation v;
    validation_init(&v);
    const char *name = NULL;
    validate_no_unknown_fields(&v, r->body, fields);
    validate_string(&v, r->body, "name", true, 1, BRANCH_NAME_MAX, &name);
    if (!req_validated(r, &v))
        return;
    const char *p[5] = {r->caller.tenant_id, r->caller.key_id, http_peer(r->ex),
                        http_param(r->ex, "branch_id"), name};
    if (pg_pool_query(r->app->pg, BRANCH_CHANGE_SQL("name = $5", "branch.rename"), 5, p, on_changed,
                      r) < 0)
        req_fail_db(r, "queue full");
}

void branches_rename(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), rename_authorized);
}

/* Closing keeps the row (members and journal lines name the branch) and
 * its first closed_at: closing again changes nothing. */
static void close_authorized(struct req *r)
{
    const char *p[4] = {r->caller.tenant_id, r->caller.key_id, http_peer(r->ex),
                        http_param(r->ex, "branch_id")};
    if (pg_pool_query(
            r->app->pg,
            BRANCH_CHANGE_SQL("closed_at = coalesce(old.closed_at, now())", "branch.close"), 4, p,
            on_changed, r) < 0)
        req_fail_db(r, "queue full");
}

void branches_close(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), close_authorized);
}
