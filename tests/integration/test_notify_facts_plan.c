/* The plan of notification's facts statement (services/notification/
 * decide_sql.h) against the runtime's PostgreSQL (TESSERA_PG_DSN, the
 * notification schema migrated by its service): a run's contacts are
 * looked up by key, never read by a scan of the whole contacts table.
 * As a join, PostgreSQL hashed every contact for every run of requests
 * while the table was small enough (44 of 50 ms of a 1 000-request run
 * with 30 000 contacts), a cost no functional test sees. Works under a
 * tenant of its own and deletes its rows at the end. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../services/notification/decide_sql.h"
#include "db/db.h"

#define CONTACTS      5000 /* enough that hashing them looks cheap to the planner */
#define RUN           1000 /* a full batch of requests */
#define MEMBER_ID_MAX 32

static char tenant[64];

static PGconn *notification_pg(void)
{
    char err[256];
    PGconn *pg = db_connect(getenv("TESSERA_PG_DSN"), "notification", "test-notify-facts-plan",
                            2000, err, sizeof(err));
    if (!pg)
        fail_msg("connect: %s", err);
    return pg;
}

static void exec_ok(PGconn *pg, const char *sql)
{
    char err[256];
    if (db_exec(pg, sql, err, sizeof(err)) != 0)
        fail_msg("%s: %s", sql, err);
}

/* An array literal of n elements: prefix, followed by the element's
 * number when numbered. */
static char *array_of(size_t n, const char *prefix, bool numbered)
{
    size_t cap = n * (strlen(prefix) + MEMBER_ID_MAX) + 3, len = 1;
    char *s = malloc(cap);
    assert_non_null(s);
    s[0] = '{';
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(s + len, cap - len, "%s\"%s", i ? "," : "", prefix);
        if (numbered)
            len += (size_t)snprintf(s + len, cap - len, "%d", (int)i);
        len += (size_t)snprintf(s + len, cap - len, "\"");
    }
    snprintf(s + len, cap - len, "}");
    return s;
}

static void test_contacts_are_looked_up_by_key(void **state)
{
    (void)state;
    PGconn *pg = notification_pg();
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO contacts (tenant_id, member_id, sealed, locale, updated_us) "
             "SELECT '%s', 'm-' || g, '\\x00'::bytea, 'en', 0 FROM generate_series(0, %d) g",
             tenant, CONTACTS - 1);
    exec_ok(pg, sql);
    exec_ok(pg, "ANALYZE contacts");
    char *tenants = array_of(RUN, tenant, false), *members = array_of(RUN, "m-", true),
         *purposes = array_of(RUN, "transactional", false);
    const char *params[4] = {tenants, members, purposes, "0"};
    char err[256];
    PGresult *res = db_query(pg, "EXPLAIN " DECIDE_FACTS_SQL, 4, params, err, sizeof(err), NULL);
    if (!res)
        fail_msg("explain: %s", err);
    /* The contact is read by a subplan of its own, an index lookup per
     * request, whatever the table holds: as a join it was a hash of every
     * contact on a small table and a nested loop on a big one, the
     * planner's choice (it assumes 1 000 rows for any unnest). */
    size_t lookups = 0;
    for (int row = 0; row < PQntuples(res); row++) {
        const char *line = PQgetvalue(res, row, 0);
        if (strstr(line, "Seq Scan on contacts"))
            fail_msg("the facts statement scans every contact: %s", line);
        if (strstr(line, "using contacts_pkey on contacts")) {
            assert_true(row > 0 && strstr(PQgetvalue(res, row - 1, 0), "SubPlan"));
            lookups++;
        }
    }
    assert_int_equal(lookups, 1);
    PQclear(res);
    free(tenants), free(members), free(purposes);
    snprintf(sql, sizeof(sql), "DELETE FROM contacts WHERE tenant_id = '%s'", tenant);
    exec_ok(pg, sql);
    PQfinish(pg);
}

int main(void)
{
    if (!getenv("TESSERA_PG_DSN")) {
        printf("1..0 # SKIP TESSERA_PG_DSN unset\n");
        return 0;
    }
    snprintf(tenant, sizeof(tenant), "facts-plan-%d", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contacts_are_looked_up_by_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
