/* A member as the API shows it: the profile from ingest's directory, the
 * balances from the Redis cache, or from the ledger's own table when the
 * cache misses or is down (the cache is only a cache). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

json_t *balances_json(int64_t points, int64_t principal, int64_t bonus)
{
    return json_pack("{s:I, s:I, s:I, s:I}", "points", (json_int_t)points, "stored_value",
                     (json_int_t)(principal + bonus), "stored_value_principal",
                     (json_int_t)principal, "stored_value_bonus", (json_int_t)bonus);
}

static void view_finish(struct req *r, json_t *balances)
{
    json_object_set_new(r->body, "balances", balances);
    cards_view_reply(r);
}

static void on_ledger_balances(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        view_finish(r, balances_json(0, 0, 0));
        return;
    }
    view_finish(r, balances_json(strtoll(PQgetvalue(res, 0, 0), NULL, 10),
                                 strtoll(PQgetvalue(res, 0, 1), NULL, 10),
                                 strtoll(PQgetvalue(res, 0, 2), NULL, 10)));
}

static void on_cached(void *arg, int status, const struct cache_balances *b)
{
    struct req *r = arg;
    if (status == 1) {
        view_finish(r, balances_json(b->points, b->sv_principal, b->sv_bonus));
        return;
    }
    /* A read of the ledger's projection: only the ledger writes it. */
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT points, sv_principal, sv_bonus FROM ledger.balances "
                      "WHERE tenant_id = $1 AND member_id = $2",
                      2, p, on_ledger_balances, r) < 0)
        req_fail_db(r, "queue full");
}

static json_t *text_or_null(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? json_null() : json_string(PQgetvalue(res, 0, col));
}

static void on_profile(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        http_reply_problem(r->ex, 404, "not_found", "no such member", NULL);
        req_free(r);
        return;
    }
    json_t *attrs = json_loads(PQgetvalue(res, 0, 10), 0, NULL);
    json_decref(r->body);
    r->body = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:s, s:o, s:o, s:s, s:n, s:[]}",
                        "member_id", PQgetvalue(res, 0, 0), "member_no", PQgetvalue(res, 0, 1),
                        "name", PQgetvalue(res, 0, 2), "phone", PQgetvalue(res, 0, 3), "email",
                        text_or_null(res, 4), "birthday", text_or_null(res, 5), "gender",
                        text_or_null(res, 6), "branch_id", PQgetvalue(res, 0, 7),
                        "referral_code", PQgetvalue(res, 0, 8), "referred_by",
                        text_or_null(res, 9), "attributes", attrs ? attrs : json_object(),
                        "registered_at", PQgetvalue(res, 0, 11), "tier", "cards");
    cache_async_get_balances(r->app->cache, r->caller.tenant_id, r->member_id, on_cached, r);
}

void member_view_reply(struct req *r, const char *member_id)
{
    snprintf(r->member_id, sizeof(r->member_id), "%s", member_id);
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT member_id, member_no, name, phone, email, birthday::text, gender, "
                      "branch_id, referral_code, referred_by, attributes::text, "
                      "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                      "FROM members WHERE tenant_id = $1 AND member_id = $2",
                      2, p, on_profile, r) < 0)
        req_fail_db(r, "queue full");
}
