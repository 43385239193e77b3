/* GET /v1/reports/prepaid-liability?branch_id=: stored value the tenant
 * owes its members, per branch and in total, read from the journal's
 * counter accounts at this moment. Per branch (the branch where value was
 * sold, spent or refunded), principal: sold - redeemed - refunded - fees
 * kept; bonus: issued - redeemed - forfeited. A purchase refund reduces
 * "redeemed". Outstanding is minus the sum of every counter line of the
 * asset, so it stays right for counter kinds added later; across branches
 * it equals the sum of the members' balances (the audit proves that the
 * journal and the balances agree). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

/* One asset's movements at one branch. */
struct liability {
    long long sold, redeemed, refunded, fees, issued, forfeited, outstanding;
};

struct branch_liability {
    char branch_id[INGEST_KEY_MAX];
    struct liability principal, bonus;
};

/* Adds one (kind, sum) row of counter lines to l. Counter amounts have the
 * sign the journal gave them: a sale credits sv_sold (negative). */
static void liability_add(struct liability *l, const char *kind, long long sum)
{
    if (strcmp(kind, "sv_sold") == 0)
        l->sold -= sum;
    else if (strcmp(kind, "sv_bonus_issued") == 0)
        l->issued -= sum;
    else if (strcmp(kind, "sv_redeemed") == 0)
        l->redeemed += sum;
    else if (strcmp(kind, "sv_refunded") == 0)
        l->refunded += sum;
    else if (strcmp(kind, "sv_refund_fees") == 0)
        l->fees += sum;
    else if (strcmp(kind, "sv_bonus_forfeited") == 0)
        l->forfeited += sum;
    l->outstanding -= sum;
}

static json_t *principal_json(const struct liability *l)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "sold", (json_int_t)l->sold, "redeemed",
                     (json_int_t)l->redeemed, "refunded", (json_int_t)l->refunded, "refund_fees",
                     (json_int_t)l->fees, "outstanding", (json_int_t)l->outstanding);
}

static json_t *bonus_json(const struct liability *l)
{
    return json_pack("{s:I, s:I, s:I, s:I}", "issued", (json_int_t)l->issued, "redeemed",
                     (json_int_t)l->redeemed, "forfeited", (json_int_t)l->forfeited, "outstanding",
                     (json_int_t)l->outstanding);
}

static json_t *branch_json(const struct branch_liability *b)
{
    return json_pack("{s:s, s:o, s:o, s:I}", "branch_id", b->branch_id, "stored_value_principal",
                     principal_json(&b->principal), "stored_value_bonus", bonus_json(&b->bonus),
                     "outstanding", (json_int_t)(b->principal.outstanding + b->bonus.outstanding));
}

/* Rows: branch, asset, counter kind, sum; ordered by branch. */
static void on_counters(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    struct branch_liability total = {.branch_id = ""};
    struct branch_liability *b = NULL;
    json_t *branches = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        const char *branch = PQgetvalue(res, i, 0);
        if (!b || strcmp(b->branch_id, branch) != 0) {
            if (b)
                json_array_append_new(branches, branch_json(b));
            free(b);
            b = calloc(1, sizeof(*b));
            snprintf(b->branch_id, sizeof(b->branch_id), "%s", branch);
        }
        bool principal = strcmp(PQgetvalue(res, i, 1), "sv_principal") == 0;
        long long sum = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        liability_add(principal ? &b->principal : &b->bonus, PQgetvalue(res, i, 2), sum);
        liability_add(principal ? &total.principal : &total.bonus, PQgetvalue(res, i, 2), sum);
    }
    if (b)
        json_array_append_new(branches, branch_json(b));
    free(b);
    json_t *tenant = branch_json(&total);
    json_object_del(tenant, "branch_id");
    char as_of[32];
    event_format_time(event_now_us(), as_of);
    req_finish(r, 200,
               json_pack("{s:s, s:s, s:s, s:o, s:o}", "tenant_id", r->caller.tenant_id, "currency",
                         "CNY", "as_of", as_of, "tenant", tenant, "branches", branches));
}

/* Reads ?branch_id= of a report: a pos key must name its own branch; a bad
 * value is 422. Ends r and returns false when refused. */
bool report_branch_filter(struct req *r, const char **branch)
{
    *branch = http_query(r->ex, "branch_id");
    if (strcmp(r->caller.scope, "pos") == 0 && (!*branch || !auth_may_use_branch(r, *branch))) {
        req_fail(r, 403, "forbidden", "a pos key reports only on its own branch");
        return false;
    }
    if (*branch && (!**branch || strlen(*branch) >= INGEST_KEY_MAX)) {
        req_reply_invalid(r, "branch_id", "a branch id");
        return false;
    }
    return true;
}

static void liability_authenticated(struct req *r)
{
    const char *branch = NULL;
    if (!report_branch_filter(r, &branch))
        return;
    const char *p[2] = {r->caller.tenant_id, branch};
    if (pg_pool_query(r->app->pg,
                      "SELECT coalesce(branch_id, ''), asset, regexp_replace(account, '^.*:', ''), "
                      "sum(amount) FROM ledger.read_journal "
                      "WHERE tenant_id = $1 AND member_id IS NULL "
                      "AND asset IN ('sv_principal', 'sv_bonus') "
                      "AND ($2::text IS NULL OR branch_id = $2) GROUP BY 1, 2, 3 ORDER BY 1",
                      2, p, on_counters, r) < 0)
        req_fail_db(r, "queue full");
}

void reports_prepaid_liability(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), liability_authenticated);
}
