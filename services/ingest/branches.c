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
