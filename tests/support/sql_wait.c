#include "sql_wait.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "api_client.h"

int64_t sql_int_of(const char *sql, const char *p1, const char *p2)
{
    PGconn *pg = test_pg();
    const char *p[2] = {p1, p2};
    int64_t v = test_pg_int(pg, sql, p2 ? 2 : 1, p);
    PQfinish(pg);
    return v;
}

struct sql_wait {
    const char *sql, *p1, *p2;
    int64_t want;
};

static bool sql_reached(void *arg)
{
    struct sql_wait *w = arg;
    return sql_int_of(w->sql, w->p1, w->p2) == w->want;
}

void sql_wait_for(const char *sql, const char *p1, const char *p2, int64_t want, const char *what)
{
    struct sql_wait w = {sql, p1, p2, want};
    if (!poll_until(sql_reached, &w, SQL_WAIT_DEADLINE_MS))
        fail_msg("timed out waiting for %s (last %lld, want %lld)", what,
                 (long long)sql_int_of(sql, p1, p2), (long long)want);
}
