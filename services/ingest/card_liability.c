/* GET /v1/reports/card-liability?branch_id=: the unused value of the
 * cards sold, per selling branch, now: a count card's paid total in
 * proportion to its uses left, any other kind's in proportion to its days
 * left (a frozen card's days count in full: they are still owed). Expired
 * cards owe nothing. Read from the ledger's cards table (read only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

static json_t *row_json(const PGresult *res, int i)
{
    return json_pack("{s:I, s:I, s:I}", "cards",
                     (json_int_t)strtoll(PQgetvalue(res, i, 1), NULL, 10), "paid",
                     (json_int_t)strtoll(PQgetvalue(res, i, 2), NULL, 10), "unused_value",
                     (json_int_t)strtoll(PQgetvalue(res, i, 3), NULL, 10));
}

/* Rows: branch, live cards, paid, unused value; ordered by branch. */
static void on_rows(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    long long cards = 0, paid = 0, unused = 0;
    json_t *branches = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *b = row_json(res, i);
        json_object_set_new(b, "branch_id", json_string(PQgetvalue(res, i, 0)));
        cards += json_integer_value(json_object_get(b, "cards"));
        paid += json_integer_value(json_object_get(b, "paid"));
        unused += json_integer_value(json_object_get(b, "unused_value"));
        json_array_append_new(branches, b);
    }
    char as_of[32];
    event_format_time(event_now_us(), as_of);
    req_finish(r, 200,
               json_pack("{s:s, s:s, s:s, s:{s:I, s:I, s:I}, s:o}", "tenant_id",
                         r->caller.tenant_id, "currency", "CNY", "as_of", as_of, "tenant", "cards",
                         (json_int_t)cards, "paid", (json_int_t)paid, "unused_value",
                         (json_int_t)unused, "branches", branches));
}

static void card_liability_authenticated(struct req *r)
{
    const char *branch = NULL;
    if (!report_branch_filter(r, &branch))
        return;
    /* numeric arithmetic: a paid total times uses or microseconds would
     * overflow bigint */
    char now_us[24];
    snprintf(now_us, sizeof(now_us), "%lld", (long long)event_now_us());
    const char *p[3] = {r->caller.tenant_id, branch, now_us};
    if (pg_pool_query(
            r->app->pg,
            "WITH n AS (SELECT $3::bigint AS now_us), "
            "live AS (SELECT c.* FROM ledger.read_cards c, n WHERE c.tenant_id = $1 "
            "AND ($2::text IS NULL OR c.sold_branch_id = $2) AND c.valid_to_us > n.now_us) "
            "SELECT sold_branch_id, count(*), coalesce(sum(paid_total), 0), "
            "coalesce(sum(floor(CASE WHEN kind = 'count' THEN CASE WHEN uses_total > 0 THEN "
            "paid_total::numeric * uses_left / uses_total ELSE 0 END "
            "ELSE paid_total::numeric * (valid_to_us - greatest(n.now_us, valid_from_us)) / "
            "greatest(valid_to_us - valid_from_us, 1) END)), 0)::bigint "
            "FROM live, n GROUP BY 1 ORDER BY 1",
            3, p, on_rows, r) < 0)
        req_fail_db(r, "queue full");
}

void reports_card_liability(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), card_liability_authenticated);
}
