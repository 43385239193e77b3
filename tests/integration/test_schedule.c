/* Integration test of libs/schedule against a real PostgreSQL given by
 * TESSERA_PG_DSN (skipped when unset): of two schedulers on one lock key
 * only one runs rounds, each round gets the service clock read for it,
 * and when the leader's session dies the other takes over while the old
 * leader, reconnected, forgets what it remembered and stays out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock/clock.h"
#include "db/db.h"
#include "schedule/schedule.h"

#define LOCK_KEY_MAX         64
#define TAKEOVER_DEADLINE_US 10000000LL
#define TAKEOVER_POLL_US     20000

struct counts {
    int rounds, lost, failed;
    int64_t last_now_us;
    PGconn *last_pg;
};

/* A round does what real ones do first: a statement on its session. */
static void count_round(void *ctx, PGconn *pg, int64_t now_us)
{
    struct counts *c = ctx;
    PGresult *res = PQexec(pg, "SELECT 1");
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    if (!ok) {
        c->failed++;
        return;
    }
    c->rounds++;
    c->last_now_us = now_us;
    c->last_pg = pg;
}

static void count_lost(void *ctx)
{
    ((struct counts *)ctx)->lost++;
}

static struct schedule make(const char *dsn, const char *key, struct counts *c)
{
    return (struct schedule){.name = "test scheduler",
                             .pg_dsn = dsn,
                             .schema = "public",
                             .app_name = "test-schedule",
                             .statement_timeout_ms = 5000,
                             .lock_key = key,
                             .interval_ms = 1000,
                             .round = count_round,
                             .session_lost = count_lost,
                             .ctx = c};
}

static void test_one_leader_and_takeover(void **state)
{
    const char *dsn = getenv("TESSERA_PG_DSN");
    if (!dsn || !dsn[0])
        skip();
    char key[LOCK_KEY_MAX];
    snprintf(key, sizeof(key), "tessera-test-schedule-%d", (int)getpid());
    struct counts ca = {0}, cb = {0};
    struct schedule a = make(dsn, key, &ca), b = make(dsn, key, &cb);

    int64_t before_us = clock_now_us();
    assert_true(schedule_tick(&a));
    assert_false(schedule_tick(&b));
    assert_true(schedule_tick(&a));
    assert_int_equal(ca.rounds, 2);
    assert_int_equal(cb.rounds, 0);
    assert_true(ca.last_now_us >= before_us && ca.last_now_us <= clock_now_us());
    assert_ptr_equal(ca.last_pg, a.pg); /* the round runs on the session holding the lock */
    assert_int_equal(ca.lost, 1);       /* the first session */

    /* The leader's session dies: its lock goes with it. */
    char err[256];
    PGconn *admin = db_connect(dsn, NULL, "test-schedule-admin", 0, err, sizeof(err));
    assert_non_null(admin);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", PQbackendPID(a.pg));
    const char *p[1] = {pid};
    PGresult *res =
        db_query(admin, "SELECT pg_terminate_backend($1::int)", 1, p, err, sizeof(err), NULL);
    assert_non_null(res);
    PQclear(res);

    /* a's next round fails on its dead session; b takes the lock once
     * the backend has gone (terminating is asynchronous) */
    (void)schedule_tick(&a);
    assert_int_equal(ca.failed, 1);
    int64_t deadline_us = clock_now_us() + TAKEOVER_DEADLINE_US;
    while (!schedule_tick(&b) && clock_now_us() < deadline_us)
        usleep(TAKEOVER_POLL_US);
    assert_int_equal(cb.rounds, 1);
    /* Regression: a's broken session was PQreset and the new session kept
     * the leader's flag, so both instances ran rounds. */
    assert_false(schedule_tick(&a)); /* a new session, and the lock is b's */
    assert_int_equal(ca.lost, 2);    /* told to forget what it led with */
    assert_int_equal(ca.rounds, 2);
    PQfinish(a.pg);
    PQfinish(b.pg);
    PQfinish(admin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_leader_and_takeover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
