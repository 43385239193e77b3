/* Holding purchases back until the earning rules of their time are known;
 * see earning_order.h. Called from earning.c inside the batch's
 * transaction (pipeline thread). */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "earning_order.h"
#include "log/log.h"

/* Per tenant of `tenants` (an SQL expression giving a set of tenant ids),
 * the earliest time from which a published change is missing: listed by
 * ingest, newer than every change stored here, not stored, not refused. */
#define MISSING_CTE(tenants)                                                                       \
    "missing AS (SELECT c.tenant_id, min(c.effective_from_us) AS from_us "                         \
    "FROM ingest.read_earning_rule_changes c WHERE c.tenant_id IN (" tenants ") "                  \
    "AND c.effective_from_us > coalesce((SELECT max(r.effective_from_us) FROM earning_rules r "    \
    "WHERE r.tenant_id = c.tenant_id), -1) "                                                       \
    "AND NOT EXISTS (SELECT 1 FROM earning_rules r WHERE r.tenant_id = c.tenant_id "               \
    "AND r.change_id = c.change_id) "                                                              \
    "AND NOT EXISTS (SELECT 1 FROM refused_rule_changes x WHERE x.tenant_id = c.tenant_id "        \
    "AND x.change_id = c.change_id) GROUP BY c.tenant_id)"

/* The two statements below are kept as written: clang-format splits a
 * macro call followed by literals badly. */
/* clang-format off */
/* The indexes (into $1 tenants, $2 times, $3 indexes) of the purchases
 * that must wait. */
#define WAITING_SQL \
    "WITH " MISSING_CTE("SELECT unnest($1::text[])") " " \
    "SELECT u.i FROM unnest($1::text[], $2::bigint[], $3::int[]) AS u(t, at, i) " \
    "JOIN missing m ON m.tenant_id = u.t WHERE u.at >= m.from_us"

/* Takes out the deferred purchases that need not wait any more. */
#define RELEASE_SQL \
    "WITH " MISSING_CTE("SELECT tenant_id FROM deferred_purchases") " " \
    "DELETE FROM deferred_purchases d WHERE NOT EXISTS (SELECT 1 FROM missing m " \
    "WHERE m.tenant_id = d.tenant_id AND d.occurred_at_us >= m.from_us) RETURNING fact"
/* clang-format on */

int earning_order_check(PGconn *pg, const char *const *tenant_ids, const int64_t *occurred_at_us,
                        size_t n, bool *wait, char *err, size_t err_len)
{
    assert(n == 0 || (tenant_ids && occurred_at_us && wait));
    memset(wait, 0, n * sizeof(*wait));
    if (n == 0)
        return 0;
    struct db_array tenants, times, idx;
    db_array_init(&tenants), db_array_init(&times), db_array_init(&idx);
    for (size_t i = 0; i < n; i++) {
        db_array_add(&tenants, tenant_ids[i]);
        db_array_add_int(&times, occurred_at_us[i]);
        db_array_add_int(&idx, (long long)i);
    }
    const char *p[3] = {db_array_finish(&tenants), db_array_finish(&times), db_array_finish(&idx)};
    PGresult *res = db_query(pg, WAITING_SQL, 3, p, err, err_len, NULL);
    db_array_free(&tenants), db_array_free(&times), db_array_free(&idx);
    if (!res)
        return -1;
    for (int row = 0; row < PQntuples(res); row++) {
        long long i = db_int_at(res, row, 0);
        assert(i >= 0 && (size_t)i < n);
        wait[i] = true;
    }
    PQclear(res);
    return 0;
}

int earning_order_defer(PGconn *pg, const Envelope *fact, const void *payload, size_t len,
                        char *err, size_t err_len)
{
    assert(fact->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED);
    char at[24];
    snprintf(at, sizeof(at), "%lld", (long long)fact->occurred_at_us);
    struct db_array bytes;
    db_array_init(&bytes);
    db_array_add_bytea(&bytes, payload, len);
    const char *p[4] = {fact->tenant_id, fact->purchase_recorded->command_id, at,
                        db_array_finish(&bytes)};
    PGresult *res = db_query(pg,
                             "INSERT INTO deferred_purchases (tenant_id, purchase_command_id, "
                             "occurred_at_us, fact) SELECT $1, $2, $3, ($4::bytea[])[1] "
                             "ON CONFLICT DO NOTHING",
                             4, p, err, err_len, NULL);
    db_array_free(&bytes);
    if (!res)
        return -1;
    PQclear(res);
    log_fields(LOG_INFO, "purchase waits for an earning rule change", "tenant", fact->tenant_id,
               "purchase_command_id", fact->purchase_recorded->command_id, NULL);
    return 0;
}

int earning_order_release(PGconn *pg, Envelope ***facts, size_t *count, char *err, size_t err_len)
{
    *facts = NULL;
    *count = 0;
    PGresult *res = db_query(pg, RELEASE_SQL, 0, NULL, err, err_len, NULL);
    if (!res)
        return -1;
    int rows = PQntuples(res);
    *facts = calloc((size_t)rows + 1, sizeof(**facts));
    assert(*facts);
    for (int row = 0; row < rows; row++) {
        size_t len = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, 0), &len);
        char why[128] = "out of memory";
        Envelope *env = raw ? envelope_decode(raw, len, why, sizeof(why)) : NULL;
        PQfreemem(raw);
        if (!env ||
            env->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED) {
            log_fields(LOG_ERROR, "a deferred purchase cannot be read; dropped", "reason", why,
                       NULL);
            envelope_free(env);
            continue;
        }
        (*facts)[(*count)++] = env;
    }
    PQclear(res);
    return 0;
}

int earning_order_refused(PGconn *pg, const char *tenant_id, const char *change_id, char *err,
                          size_t err_len)
{
    const char *p[2] = {tenant_id, change_id};
    PGresult *res = db_query(pg,
                             "INSERT INTO refused_rule_changes (tenant_id, change_id) "
                             "VALUES ($1, $2) ON CONFLICT DO NOTHING",
                             2, p, err, err_len, NULL);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}
