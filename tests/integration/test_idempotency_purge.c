/* The idempotency retention against the test runtime's PostgreSQL: the
 * purge (services/ingest/idempotency_purge.c) driven with a "now" of the
 * test's choosing deletes exactly the keys older than the retention, in
 * batches of the given size, while the loop keeps turning; and the
 * running ingest purges a key backdated past the retention on its own
 * timer (make test runs it every 500 ms) and keeps a younger one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../services/ingest/idempotency_purge.h"
#include "../support/api_client.h"

#define WEEK_S         (7 * 24 * 3600)
#define OLD_KEYS       10
#define BATCH          3
#define DEADLINE_MS    15000
#define T2100_01_01_US 4102444800000000LL /* 2100-01-01T00:00:00Z: past any running purge */
#define HOUR_US        3600000000LL

static char tenant[64];

static void exec_ok(PGconn *pg, const char *sql, int n, const char *const *p)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fprintf(stderr, "test: %s\n", PQerrorMessage(pg));
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
}

/* A key of the test tenant created at_us (microseconds since the epoch). */
static void insert_key(PGconn *pg, const char *name, int64_t at_us)
{
    char at[24];
    snprintf(at, sizeof(at), "%lld", (long long)at_us);
    const char *p[3] = {tenant, name, at};
    exec_ok(pg,
            "INSERT INTO ingest.idempotency_keys (tenant_id, idempotency_key, request_hash, "
            "response_status, response_body, created_at) VALUES ($1, $2, 'h', 201, '{}', "
            "to_timestamp($3::bigint / 1000000.0))",
            3, p);
}

/* A "pending" mark of a 202 answer (operations.c) made at_us. */
static void insert_pending(PGconn *pg, const char *command_id, int64_t at_us)
{
    char at[24];
    snprintf(at, sizeof(at), "%lld", (long long)at_us);
    const char *p[3] = {tenant, command_id, at};
    exec_ok(pg,
            "INSERT INTO ingest.pending_operations (tenant_id, command_id, created_at) "
            "VALUES ($1, $2, to_timestamp($3::bigint / 1000000.0))",
            3, p);
}

static int64_t pending_left(PGconn *pg, const char *like)
{
    const char *p[2] = {tenant, like};
    return test_pg_int(pg,
                       "SELECT count(*) FROM ingest.pending_operations WHERE tenant_id = $1 "
                       "AND command_id LIKE $2",
                       2, p);
}

static int64_t keys_left(PGconn *pg, const char *like)
{
    const char *p[2] = {tenant, like};
    return test_pg_int(pg,
                       "SELECT count(*) FROM ingest.idempotency_keys WHERE tenant_id = $1 "
                       "AND idempotency_key LIKE $2",
                       2, p);
}

struct run {
    int done_calls;
    long long purged;
    bool ok;
    int ticks; /* the loop's heartbeat while the run went on */
};

static void on_done(void *arg, long long purged, bool ok)
{
    struct run *r = arg;
    r->done_calls++;
    r->purged = purged;
    r->ok = ok;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    ((struct run *)arg)->ticks++;
}

/* Keys "from" 2100 (in the future, so the running ingest's own purge
 * never takes them): ten from the first hour of the year, two from a week
 * later. "Now" is a week and three hours after the first: the ten are
 * past the retention, the two are not. Batches of three: 3 + 3 + 3 + 1,
 * then the run ends. */
static void test_purge_deletes_expired_keys_in_batches(void **state)
{
    PGconn *pg = test_pg();
    /* The purge spans every tenant: rows an earlier, failed run of this
     * test left (other pids) would be counted too. */
    exec_ok(pg, "DELETE FROM ingest.idempotency_keys WHERE tenant_id LIKE 'purge-test-%'", 0, NULL);
    exec_ok(pg, "DELETE FROM ingest.pending_operations WHERE tenant_id LIKE 'purge-test-%'", 0,
            NULL);
    char name[64];
    for (int i = 0; i < OLD_KEYS; i++) {
        snprintf(name, sizeof(name), "old-%d", i);
        insert_key(pg, name, T2100_01_01_US + i * 60000000LL);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof(name), "young-%d", i);
        insert_key(pg, name, T2100_01_01_US + (int64_t)WEEK_S * 1000000 + i * HOUR_US);
    }
    insert_pending(pg, "op-old", T2100_01_01_US);
    insert_pending(pg, "op-young", T2100_01_01_US + (int64_t)WEEK_S * 1000000);
    struct event_base *base = event_base_new();
    char err[256];
    struct pg_pool *pool =
        pg_pool_new(base, getenv("TESSERA_PG_DSN"), "ingest", 1, 5000, err, sizeof(err));
    assert_non_null(pool);
    struct idem_purge *p = idem_purge_new(pool, WEEK_S, BATCH);
    assert_non_null(p);
    struct run run = {0};
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, &run);
    /* Due at once in every turn of the loop: it ticks whenever the loop
     * gets control back, however fast PostgreSQL answers (a 1 ms timer
     * missed runs that finished within the millisecond). */
    struct timeval every_turn = {0, 0};
    event_add(tick, &every_turn);
    int64_t now_us = T2100_01_01_US + (int64_t)WEEK_S * 1000000 + 3 * HOUR_US;
    assert_int_equal(idem_purge_run(p, now_us, on_done, &run), 0);
    assert_int_equal(idem_purge_run(p, now_us, on_done, &run), -1); /* one run at a time */
    while (run.done_calls == 0)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(run.done_calls, 1);
    assert_true(run.ok);
    assert_int_equal(run.purged, OLD_KEYS);
    /* 3 + 3 + 3 + 1 keys, then the one old pending mark */
    assert_int_equal(idem_purge_statements(p), 5);
    assert_int_equal(pending_left(pg, "op-old"), 0);
    assert_int_equal(pending_left(pg, "op-young"), 1);
    assert_true(run.ticks > 0); /* the loop served other events meanwhile */
    assert_int_equal(keys_left(pg, "old-%"), 0);
    assert_int_equal(keys_left(pg, "young-%"), 2);

    /* a week after the first young key it has expired too, not the second */
    assert_int_equal(
        idem_purge_run(p, now_us + (int64_t)WEEK_S * 1000000 - 2 * HOUR_US, on_done, &run), 0);
    while (run.done_calls == 1)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(run.purged, 1);
    assert_int_equal(keys_left(pg, "young-%"), 1);

    const char *t[1] = {tenant};
    exec_ok(pg, "DELETE FROM ingest.idempotency_keys WHERE tenant_id = $1", 1, t);
    exec_ok(pg, "DELETE FROM ingest.pending_operations WHERE tenant_id = $1", 1, t);
    event_free(tick);
    pg_pool_free(pool);
    idem_purge_free(p);
    event_base_free(base);
    PQfinish(pg);
}

struct aged {
    PGconn *pg;
};

static bool expired_key_gone(void *arg)
{
    return keys_left(((struct aged *)arg)->pg, "ingest-expired") == 0;
}

/* The running ingest, on its own clock: a key created eight days ago goes,
 * one created six days ago stays. */
static void test_ingest_purges_on_its_own(void **state)
{
    PGconn *pg = test_pg();
    int64_t now_us = (int64_t)time(NULL) * 1000000;
    insert_key(pg, "ingest-expired", now_us - 8LL * 24 * HOUR_US);
    insert_key(pg, "ingest-kept", now_us - 6LL * 24 * HOUR_US);
    struct aged a = {pg};
    assert_true(poll_until(expired_key_gone, &a, DEADLINE_MS));
    assert_int_equal(keys_left(pg, "ingest-kept"), 1);
    PQfinish(pg);
}

static int setup(void **state)
{
    snprintf(tenant, sizeof(tenant), "purge-test-%d", (int)getpid());
    return getenv("TESSERA_PG_DSN") ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_purge_deletes_expired_keys_in_batches),
        cmocka_unit_test(test_ingest_purges_on_its_own),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
