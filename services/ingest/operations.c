/* GET /v1/operations/{id}: the verdict of a command that answered 202
 * (or of any command), read from the ledger's own record of verdicts;
 * "pending" while there is none and the command was answered 202 by any
 * instance (pending_operations) or still waits here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "log/log.h"

static void on_verdict(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        /* another tenant's command in flight is as unknown as any */
        bool recorded = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
        if (recorded || waiter_pending_in_tenant(r->app, r->caller.tenant_id, r->command_id))
            req_finish(r, 200,
                       json_pack("{s:s, s:s}", "operation_id", r->command_id, "status", "pending"));
        else
            req_fail(r, 404, "not_found",
                     "no verdict for this operation (unknown, or not applied yet)");
        return;
    }
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 0), &len);
    char why[128];
    Envelope *env = raw ? envelope_decode(raw, len, why, sizeof(why)) : NULL;
    PQfreemem(raw);
    json_t *result = NULL;
    int status = env ? verdict_to_response(env, &result) : -1;
    envelope_free(env);
    if (status < 0) {
        req_fail(r, 500, "internal", "the stored verdict cannot be read");
        return;
    }
    req_finish(r, 200,
               json_pack("{s:s, s:s, s:i, s:o}", "operation_id", r->command_id, "status",
                         status < 400 ? "posted" : "rejected", "http_status", status, "result",
                         result));
}

static void operation_authenticated(struct req *r)
{
    const char *id = http_param(r->ex, "operation_id");
    if (!id || !uuid_is_valid(id)) {
        req_fail(r, 404, "not_found", "no such operation");
        return;
    }
    snprintf(r->command_id, sizeof(r->command_id), "%s", id);
    const char *p[2] = {r->caller.tenant_id, r->command_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT (SELECT verdict FROM ledger.read_commands WHERE tenant_id = $1 "
                      "AND command_id = $2), EXISTS (SELECT 1 FROM pending_operations "
                      "WHERE tenant_id = $1 AND command_id = $2)",
                      2, p, on_verdict, r) < 0)
        req_fail_db(r, "queue full");
}

static void on_recorded(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res)
        log_fields(LOG_WARN, "a 202 answer was not recorded; other instances answer 404 for it",
                   "error", err ? err : "", NULL);
    void (*then)(struct req *) = r->next;
    then(r);
}

void operations_record_pending(struct req *r, void (*then)(struct req *r))
{
    const char *p[2] = {r->caller.tenant_id, r->command_id};
    req_change_state(r, REQ_RECORDING);
    r->next = then;
    if (pg_pool_query(r->app->pg,
                      "INSERT INTO pending_operations (tenant_id, command_id) VALUES ($1, $2) "
                      "ON CONFLICT DO NOTHING",
                      2, p, on_recorded, r) < 0)
        on_recorded(r, NULL, "queue full", NULL);
}

int operations_record_pending_many(struct ingest *app, const char *tenant_id,
                                   const char *command_ids, pg_pool_cb done, void *arg)
{
    const char *p[2] = {tenant_id, command_ids};
    return pg_pool_query(app->pg,
                         "INSERT INTO pending_operations (tenant_id, command_id) "
                         "SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
                         2, p, done, arg);
}

void operations_get(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), operation_authenticated);
}
