/* Integration tests of libs/db against a real PostgreSQL given by
 * TESSERA_PG_DSN (skipped when unset). Each run works in its own schemas
 * (test_db_<pid>...) and drops them at the end. */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "db/db.h"
#include "db/migrate.h"
#include "db/offsets.h"
#include "db/pg_pool.h"
#include "db/pipeline.h"

#define ERR_MAX      512
#define NAME_MAX_LEN 64
#define DEADLINE_MS  15000
#define TICK_MS      10
#define POOL_QUERIES 500
#define POOL_CONNS   4

static const char *dsn;
static char schema[NAME_MAX_LEN];      /* migrations, offsets */
static char schema_conc[NAME_MAX_LEN]; /* concurrent migrators */
static char schema_pool[NAME_MAX_LEN]; /* pg_pool tables */
static char schema_pipe[NAME_MAX_LEN]; /* db_pipeline and the deferred BEGIN */
static PGconn *admin;

/* ---- helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static PGconn *connect_or_fail(const char *in_schema, int statement_timeout_ms)
{
    char err[ERR_MAX];
    PGconn *pg = db_connect(dsn, in_schema, "test_db", statement_timeout_ms, err, sizeof err);
    if (pg == NULL)
        fail_msg("%s", err);
    return pg;
}

static void exec_ok(PGconn *pg, const char *sql)
{
    char err[ERR_MAX];
    if (db_exec(pg, sql, err, sizeof err) != 0)
        fail_msg("%s: %s", sql, err);
}

static char *query_value(PGconn *pg, const char *sql, int nparams, const char *const *params)
{
    char err[ERR_MAX];
    PGresult *res = db_query(pg, sql, nparams, params, err, sizeof err, NULL);
    if (res == NULL)
        fail_msg("%s: %s", sql, err);
    assert_int_equal(PQntuples(res), 1);
    char *v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

static long long query_int(PGconn *pg, const char *sql)
{
    char *v = query_value(pg, sql, 0, NULL);
    long long n = atoll(v);
    free(v);
    return n;
}

/* Runs the loop until done(arg) or the deadline; a 10 ms tick makes the
 * loop come back to check. True when done. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}
static bool loop_until(struct event_base *base, bool (*done)(void *), void *arg, int deadline_ms)
{
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = {0, TICK_MS * 1000};
    event_add(tick, &tv);
    int64_t deadline = now_ms() + deadline_ms;
    bool ok;
    while (!(ok = done(arg)) && now_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    return ok;
}

static int group_setup(void **state)
{
    dsn = getenv("TESSERA_PG_DSN");
    if (dsn == NULL || dsn[0] == '\0')
        return 0;
    snprintf(schema, sizeof schema, "test_db_%d", (int)getpid());
    snprintf(schema_conc, sizeof schema_conc, "test_db_%d_conc", (int)getpid());
    snprintf(schema_pool, sizeof schema_pool, "test_db_%d_pool", (int)getpid());
    snprintf(schema_pipe, sizeof schema_pipe, "test_db_%d_pipe", (int)getpid());
    char err[ERR_MAX];
    admin = db_connect(dsn, NULL, "test_db_admin", 0, err, sizeof err);
    if (admin == NULL) {
        fprintf(stderr, "cannot connect: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    if (admin == NULL)
        return 0;
    const char *names[] = {schema, schema_conc, schema_pool, schema_pipe};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", names[i]);
        char err[ERR_MAX];
        if (db_exec(admin, sql, err, sizeof err) != 0)
            fprintf(stderr, "teardown: %s\n", err);
    }
    PQfinish(admin);
    return 0;
}

#define REQUIRE_PG()                                                                               \
    do {                                                                                           \
        if (admin == NULL)                                                                         \
            skip();                                                                                \
    } while (0)

/* ---- db_connect / db_healthy ---- */

static void test_connect_session_settings(void **state)
{
    REQUIRE_PG();
    PGconn *pg = connect_or_fail(schema, 250);
    char *path = query_value(pg, "SHOW search_path", 0, NULL);
    char expect[128];
    snprintf(expect, sizeof expect, "\"%s\", public", schema); /* quoted identifier */
    assert_string_equal(path, expect);
    free(path);
    char *app = query_value(pg, "SHOW application_name", 0, NULL);
    assert_string_equal(app, "test_db");
    free(app);

    char err[ERR_MAX], sqlstate[6];
    PGresult *res = db_query(pg, "SELECT pg_sleep(2)", 0, NULL, err, sizeof err, sqlstate);
    assert_null(res);
    assert_string_equal(sqlstate, "57014"); /* statement_timeout */

    /* Settings survive a reconnect through db_healthy (PQreset). */
    char pid[16];
    snprintf(pid, sizeof pid, "%d", PQbackendPID(pg));
    const char *params[] = {pid};
    free(query_value(admin, "SELECT pg_terminate_backend($1::int)", 1, params));
    res = db_query(pg, "SELECT 1", 0, NULL, err, sizeof err, sqlstate);
    assert_null(res);
    assert_true(db_healthy(pg));
    path = query_value(pg, "SHOW search_path", 0, NULL);
    assert_string_equal(path, expect);
    free(path);
    PQfinish(pg);
}

/* ---- db_array ---- */

static void test_array_text_round_trip(void **state)
{
    REQUIRE_PG();
    const char *values[] = {
        "plain", "with \"quotes\"", "back\\slash",       "\\",      "\"", "NULL",   "", "{braces}",
        "a,b",   " spaced ",        "tab\tand\nnewline", "ünïcødé", NULL, "end\\\""};
    size_t n = sizeof values / sizeof values[0];
    struct db_array a;
    db_array_init(&a);
    for (size_t i = 0; i < n; i++)
        db_array_add(&a, values[i]);
    const char *params[] = {db_array_finish(&a)};
    char err[ERR_MAX];
    PGresult *res =
        db_query(admin, "SELECT x FROM unnest($1::text[]) WITH ORDINALITY AS t(x, i) ORDER BY i", 1,
                 params, err, sizeof err, NULL);
    if (res == NULL)
        fail_msg("%s (literal %s)", err, params[0]);
    assert_int_equal(PQntuples(res), n);
    for (size_t i = 0; i < n; i++) {
        if (values[i] == NULL) {
            assert_true(PQgetisnull(res, (int)i, 0));
        } else {
            assert_false(PQgetisnull(res, (int)i, 0));
            assert_string_equal(PQgetvalue(res, (int)i, 0), values[i]);
        }
    }
    PQclear(res);
    db_array_free(&a);

    db_array_init(&a);
    params[0] = db_array_finish(&a);
    assert_string_equal(params[0], "{}");
    char *count = query_value(admin, "SELECT count(*) FROM unnest($1::text[])", 1, params);
    assert_string_equal(count, "0");
    free(count);
    db_array_free(&a);
}

static void test_array_int_and_bytea_round_trip(void **state)
{
    REQUIRE_PG();
    struct db_array ints, blobs;
    db_array_init(&ints);
    db_array_init(&blobs);
    long long nums[] = {0, -1, LLONG_MAX, LLONG_MIN};
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t i = 0; i < 4; i++)
        db_array_add_int(&ints, nums[i]);
    db_array_add_bytea(&blobs, all, sizeof all);
    db_array_add_bytea(&blobs, "", 0);
    db_array_add_bytea(&blobs, "\\\"", 2);
    db_array_add(&blobs, NULL);
    const char *params[] = {db_array_finish(&ints), db_array_finish(&blobs)};
    char err[ERR_MAX];
    PGresult *res =
        db_query(admin,
                 "SELECT sum(x::numeric)::text, (SELECT array_agg(coalesce(encode(b, "
                 "'hex'), 'null') ORDER BY i)::text FROM unnest($2::bytea[]) WITH "
                 "ORDINALITY AS u(b, i)), max(x), min(x) FROM unnest($1::bigint[]) AS t(x)",
                 2, params, err, sizeof err, NULL);
    if (res == NULL)
        fail_msg("%s", err);
    assert_string_equal(PQgetvalue(res, 0, 0), "-2");
    assert_string_equal(PQgetvalue(res, 0, 2), "9223372036854775807");
    assert_string_equal(PQgetvalue(res, 0, 3), "-9223372036854775808");
    char hex[600];
    size_t pos = 0;
    pos += (size_t)snprintf(hex + pos, sizeof hex - pos, "{");
    for (int i = 0; i < 256; i++)
        pos += (size_t)snprintf(hex + pos, sizeof hex - pos, "%02x", i);
    snprintf(hex + pos, sizeof hex - pos, ",\"\",5c22,\"null\"}");
    assert_string_equal(PQgetvalue(res, 0, 1), hex);
    PQclear(res);
    db_array_free(&ints);
    db_array_free(&blobs);
}

/* ---- migrations ---- */

static const struct db_migration migrations_v3[] = {
    {1, "0001_runs",
     "CREATE TABLE runs (version int, at timestamptz DEFAULT clock_timestamp());"
     "INSERT INTO runs (version) VALUES (1);"},
    {2, "0002_items",
     "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO runs (version) VALUES (2);"},
    /* Depends on 2 running first (and in this schema: unqualified names). */
    {5, "0005_items_name",
     "ALTER TABLE items ADD COLUMN name text; INSERT INTO runs (version) VALUES (5);"},
};

static void test_migrate_applies_in_order_and_rerun_is_noop(void **state)
{
    REQUIRE_PG();
    char err[ERR_MAX];
    PGconn *pg = connect_or_fail(schema, 0);
    if (db_migrate(pg, schema, migrations_v3, 2, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (db_migrate(pg, schema, migrations_v3, 3, err, sizeof err) != 0)
        fail_msg("%s", err);
    char *order =
        query_value(pg, "SELECT string_agg(version::text, ',' ORDER BY at) FROM runs", 0, NULL);
    assert_string_equal(order, "1,2,5");
    free(order);
    char *recorded = query_value(pg,
                                 "SELECT string_agg(version::text || ':' || name, ',' ORDER BY "
                                 "version) FROM schema_migrations",
                                 0, NULL);
    assert_string_equal(recorded, "1:0001_runs,2:0002_items,5:0005_items_name");
    free(recorded);
    /* Bookkeeping tables exist in the schema. */
    assert_int_equal(query_int(pg, "SELECT count(*) FROM consumer_offsets"), 0);
    assert_int_equal(query_int(pg, "SELECT count(*) FROM outbox"), 0);

    if (db_migrate(pg, schema, migrations_v3, 3, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(query_int(pg, "SELECT count(*) FROM runs"), 3);
    /* The session search_path is untouched by SET LOCAL inside migrations. */
    char *path = query_value(pg, "SHOW search_path", 0, NULL);
    assert_non_null(strstr(path, schema));
    free(path);
    PQfinish(pg);
}

static void test_migrate_refuses_unknown_version(void **state)
{
    REQUIRE_PG();
    char err[ERR_MAX];
    PGconn *pg = connect_or_fail(schema, 0);
    if (db_migrate(pg, schema, migrations_v3, 3, err, sizeof err) != 0)
        fail_msg("%s", err);
    exec_ok(pg, "INSERT INTO schema_migrations (version, name) VALUES (99, '0099_future')");
    err[0] = '\0';
    assert_int_equal(db_migrate(pg, schema, migrations_v3, 3, err, sizeof err), -1);
    assert_non_null(strstr(err, "99"));
    exec_ok(pg, "DELETE FROM schema_migrations WHERE version = 99");
    /* Connection still usable (no transaction left open). */
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
    PQfinish(pg);
}

static const struct db_migration migrations_slow[] = {
    {1, "0001_runs", "CREATE TABLE runs (version int); INSERT INTO runs VALUES (1);"},
    /* The sleep only widens the window in which the two migrators overlap;
     * the assertions do not depend on timing. */
    {2, "0002_slow", "SELECT pg_sleep(0.2); INSERT INTO runs VALUES (2);"},
    {3, "0003_more", "INSERT INTO runs VALUES (3);"},
};

struct migrator {
    pthread_barrier_t *barrier;
    int rc;
    char err[ERR_MAX];
};

static void *migrator_run(void *arg)
{
    struct migrator *m = arg;
    PGconn *pg = db_connect(dsn, schema_conc, "test_db_migrator", 0, m->err, sizeof m->err);
    pthread_barrier_wait(m->barrier);
    m->rc =
        pg == NULL ? -1 : db_migrate(pg, schema_conc, migrations_slow, 3, m->err, sizeof m->err);
    PQfinish(pg);
    return NULL;
}

static void test_migrate_concurrent_applies_once(void **state)
{
    REQUIRE_PG();
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    struct migrator m[2] = {{.barrier = &barrier}, {.barrier = &barrier}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, migrator_run, &m[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < 2; i++)
        if (m[i].rc != 0)
            fail_msg("migrator %d: %s", i, m[i].err);
    PGconn *pg = connect_or_fail(schema_conc, 0);
    char *runs = query_value(pg, "SELECT string_agg(version::text, ',' ORDER BY version) FROM runs",
                             0, NULL);
    assert_string_equal(runs, "1,2,3");
    free(runs);
    PQfinish(pg);
}

/* ---- offsets ---- */

static rd_kafka_topic_partition_list_t *parts_new(void)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(3);
    rd_kafka_topic_partition_list_add(parts, "tessera.a", 0);
    rd_kafka_topic_partition_list_add(parts, "tessera.a", 1);
    rd_kafka_topic_partition_list_add(parts, "tessera.b", 0);
    return parts;
}

static void test_offsets_load_and_store(void **state)
{
    REQUIRE_PG();
    char err[ERR_MAX];
    PGconn *pg = connect_or_fail(schema, 0);
    if (db_migrate(pg, schema, migrations_v3, 3, err, sizeof err) != 0)
        fail_msg("%s", err);
    rd_kafka_topic_partition_list_t *parts = parts_new();

    /* Nothing stored: beginning. */
    assert_int_equal(db_offsets_load(pg, "g1", "cluster-A", parts, err, sizeof err), 0);
    for (int i = 0; i < parts->cnt; i++)
        assert_int_equal(parts->elems[i].offset, RD_KAFKA_OFFSET_BEGINNING);

    struct db_offset_range ranges[] = {{"tessera.a", 0, 0, 10}, {"tessera.a", 1, 0, 7}};
    assert_int_equal(db_begin(pg, err, sizeof err), 0);
    assert_int_equal(db_offsets_store(pg, "g1", "cluster-A", ranges, 2, NULL, err, sizeof err), 0);
    assert_int_equal(db_commit(pg, err, sizeof err), 0);

    /* Same cluster: the stored offsets; unstored partition: beginning. */
    assert_int_equal(db_offsets_load(pg, "g1", "cluster-A", parts, err, sizeof err), 0);
    assert_int_equal(parts->elems[0].offset, 10);
    assert_int_equal(parts->elems[1].offset, 7);
    assert_int_equal(parts->elems[2].offset, RD_KAFKA_OFFSET_BEGINNING);
    /* Other group: nothing. */
    assert_int_equal(db_offsets_load(pg, "g2", "cluster-A", parts, err, sizeof err), 0);
    assert_int_equal(parts->elems[0].offset, RD_KAFKA_OFFSET_BEGINNING);
    /* Another cluster: ignored. */
    assert_int_equal(db_offsets_load(pg, "g1", "cluster-B", parts, err, sizeof err), 0);
    for (int i = 0; i < parts->cnt; i++)
        assert_int_equal(parts->elems[i].offset, RD_KAFKA_OFFSET_BEGINNING);

    /* Next batch continuing where we stopped: fine. */
    struct db_offset_range next[] = {{"tessera.a", 0, 10, 15}, {"tessera.b", 0, 0, 3}};
    assert_int_equal(db_begin(pg, err, sizeof err), 0);
    assert_int_equal(db_offsets_store(pg, "g1", "cluster-A", next, 2, NULL, err, sizeof err), 0);
    assert_int_equal(db_commit(pg, err, sizeof err), 0);

    /* A batch starting before the stored offset: fenced, rolled back. */
    struct db_offset_range stale[] = {{"tessera.a", 1, 7, 9}, {"tessera.a", 0, 12, 20}};
    assert_int_equal(db_begin(pg, err, sizeof err), 0);
    assert_int_equal(db_offsets_store(pg, "g1", "cluster-A", stale, 2, NULL, err, sizeof err), 1);
    db_rollback(pg);
    assert_int_equal(db_offsets_load(pg, "g1", "cluster-A", parts, err, sizeof err), 0);
    assert_int_equal(parts->elems[0].offset, 15);
    assert_int_equal(parts->elems[1].offset, 7);
    assert_int_equal(parts->elems[2].offset, 3);

    /* A new cluster starting from scratch overrides the old rows. */
    struct db_offset_range fresh[] = {{"tessera.a", 0, 0, 2}};
    assert_int_equal(db_begin(pg, err, sizeof err), 0);
    assert_int_equal(db_offsets_store(pg, "g1", "cluster-B", fresh, 1, NULL, err, sizeof err), 0);
    assert_int_equal(db_commit(pg, err, sizeof err), 0);
    assert_int_equal(db_offsets_load(pg, "g1", "cluster-B", parts, err, sizeof err), 0);
    assert_int_equal(parts->elems[0].offset, 2);
    assert_int_equal(parts->elems[1].offset, RD_KAFKA_OFFSET_BEGINNING);

    rd_kafka_topic_partition_list_destroy(parts);
    PQfinish(pg);
}

/* ---- pg_pool ---- */

struct pool_call {
    int input;
    bool called;
    bool ok;
    char sqlstate[6];
    char value[32];
};

static bool in_pool_query; /* set while pg_pool_query runs: callbacks must not see it */
static int pool_completed;

static void pool_cb(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct pool_call *call = arg;
    assert_false(in_pool_query);
    assert_false(call->called);
    call->called = true;
    pool_completed++;
    call->ok = res != NULL;
    if (res != NULL) {
        assert_null(err);
        if (PQntuples(res) > 0)
            snprintf(call->value, sizeof call->value, "%s", PQgetvalue(res, 0, 0));
    } else {
        assert_non_null(err);
        assert_non_null(sqlstate);
        snprintf(call->sqlstate, sizeof call->sqlstate, "%s", sqlstate);
    }
}

static int pool_submit(struct pg_pool *pool, const char *sql, int nparams,
                       const char *const *params, struct pool_call *call)
{
    in_pool_query = true;
    int rc = pg_pool_query(pool, sql, nparams, params, pool_cb, call);
    in_pool_query = false;
    if (rc == 0)
        assert_false(call->called);
    return rc;
}

static int pool_wanted;
static bool pool_all_done(void *arg)
{
    return pool_completed >= pool_wanted;
}

static struct pg_pool *pool_open(struct event_base *base, const char *in_dsn)
{
    char err[ERR_MAX];
    struct pg_pool *pool = pg_pool_new(base, in_dsn, schema_pool, POOL_CONNS, 0, err, sizeof err);
    if (pool == NULL)
        fail_msg("%s", err);
    return pool;
}

static void test_pool_concurrent_queries(void **state)
{
    REQUIRE_PG();
    struct event_base *base = event_base_new();
    struct pg_pool *pool = pool_open(base, dsn);
    assert_true(pg_pool_healthy(pool));
    static struct pool_call calls[POOL_QUERIES];
    memset(calls, 0, sizeof calls);
    pool_completed = 0;
    pool_wanted = POOL_QUERIES;
    for (int i = 0; i < POOL_QUERIES; i++) {
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        calls[i].input = i;
        const char *params[] = {text, i % 7 == 0 ? NULL : "x"};
        assert_int_equal(
            pool_submit(pool, "SELECT $1::int * 2 || coalesce($2, 'N')", 2, params, &calls[i]), 0);
    }
    assert_int_equal(pg_pool_pending(pool), POOL_QUERIES);
    assert_true(loop_until(base, pool_all_done, NULL, DEADLINE_MS));
    for (int i = 0; i < POOL_QUERIES; i++) {
        char expect[32];
        snprintf(expect, sizeof expect, "%d%s", 2 * i, i % 7 == 0 ? "N" : "x");
        assert_true(calls[i].ok);
        assert_string_equal(calls[i].value, expect);
    }
    assert_int_equal(pg_pool_pending(pool), 0);
    pg_pool_free(pool);
    event_base_free(base);
}

static void test_pool_error_sqlstate(void **state)
{
    REQUIRE_PG();
    char sql[256];
    snprintf(sql, sizeof sql,
             "CREATE SCHEMA IF NOT EXISTS \"%s\"; CREATE TABLE IF NOT EXISTS \"%s\".u (id int "
             "PRIMARY KEY)",
             schema_pool, schema_pool);
    exec_ok(admin, sql);
    struct event_base *base = event_base_new();
    struct pg_pool *pool = pool_open(base, dsn);
    struct pool_call calls[3] = {{0}};
    pool_completed = 0;
    pool_wanted = 3;
    /* Unqualified: resolved through the pool's search_path. */
    assert_int_equal(pool_submit(pool, "INSERT INTO u VALUES (1)", 0, NULL, &calls[0]), 0);
    assert_int_equal(pool_submit(pool, "INSERT INTO u VALUES (1)", 0, NULL, &calls[1]), 0);
    assert_int_equal(pool_submit(pool, "SELECT 1/0", 0, NULL, &calls[2]), 0);
    assert_true(loop_until(base, pool_all_done, NULL, DEADLINE_MS));
    assert_int_equal(calls[0].ok + calls[1].ok, 1);
    assert_string_equal(calls[calls[0].ok ? 1 : 0].sqlstate, "23505");
    assert_false(calls[2].ok);
    assert_string_equal(calls[2].sqlstate, "22012");
    pg_pool_free(pool);
    event_base_free(base);
}

static void test_pool_queue_bound_and_free(void **state)
{
    REQUIRE_PG();
    struct event_base *base = event_base_new();
    struct pg_pool *pool = pool_open(base, dsn);
    size_t total = PG_POOL_QUEUE_MAX + POOL_CONNS;
    struct pool_call *calls = calloc(total + 1, sizeof *calls);
    pool_completed = 0;
    for (size_t i = 0; i < total; i++)
        assert_int_equal(pool_submit(pool, "SELECT 1", 0, NULL, &calls[i]), 0);
    assert_int_equal(pool_submit(pool, "SELECT 1", 0, NULL, &calls[total]), -1);
    /* Free with everything outstanding: each gets exactly one error. */
    pg_pool_free(pool);
    assert_int_equal(pool_completed, (int)total);
    for (size_t i = 0; i < total; i++)
        assert_false(calls[i].ok);
    assert_false(calls[total].called);
    free(calls);
    event_base_free(base);
}

/* Issues a batch of SELECT 1 each time the previous one finished and
 * reports done when a whole batch succeeded. */
struct recovery {
    struct pg_pool *pool;
    struct pool_call calls[POOL_CONNS * 2];
    int outstanding_from;
    int failures;
    bool recovered;
};

static bool pool_recovered(void *arg)
{
    struct recovery *r = arg;
    size_t n = sizeof r->calls / sizeof r->calls[0];
    if (pool_completed < pool_wanted)
        return false;
    if (pool_wanted > 0) {
        bool all_ok = true;
        for (size_t i = 0; i < n; i++) {
            all_ok = all_ok && r->calls[i].ok && strcmp(r->calls[i].value, "1") == 0;
            r->failures += !r->calls[i].ok;
        }
        if (all_ok && pg_pool_healthy(r->pool))
            return true;
    }
    memset(r->calls, 0, sizeof r->calls);
    pool_completed = 0;
    pool_wanted = (int)n;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pool_submit(r->pool, "SELECT 1", 0, NULL, &r->calls[i]), 0);
    return false;
}

static bool pool_conns_back(void *arg)
{
    const char *params[] = {arg};
    char *count = query_value(
        admin, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", 1, params);
    bool back = strcmp(count, "4") == 0;
    free(count);
    return back;
}

static void test_pool_survives_terminate_backend(void **state)
{
    REQUIRE_PG();
    char app[NAME_MAX_LEN], pool_dsn[1024];
    snprintf(app, sizeof app, "test_db_pool_%d", (int)getpid());
    if (strstr(dsn, "://") != NULL)
        snprintf(pool_dsn, sizeof pool_dsn, "%s%capplication_name=%s", dsn,
                 strchr(dsn, '?') ? '&' : '?', app);
    else
        snprintf(pool_dsn, sizeof pool_dsn, "%s application_name=%s", dsn, app);
    struct event_base *base = event_base_new();
    struct pg_pool *pool = pool_open(base, pool_dsn);
    const char *params[] = {app};
    char *killed = query_value(
        admin,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
        1, params);
    assert_string_equal(killed, "4");
    free(killed);

    static struct recovery r;
    memset(&r, 0, sizeof r);
    r.pool = pool;
    pool_completed = 0;
    pool_wanted = 0;
    assert_true(loop_until(base, pool_recovered, &r, DEADLINE_MS));
    /* All four connections come back (new backends under the same name). */
    assert_true(loop_until(base, pool_conns_back, app, DEADLINE_MS));
    pg_pool_free(pool);
    event_base_free(base);
}

/* ---- db_pipeline and the deferred BEGIN ---- */

static int read_count(void *ctx, const PGresult *res, char *err, size_t err_len)
{
    *(long long *)ctx = atoll(PQgetvalue(res, 0, 0));
    return 0;
}

static long long rows_seen(void)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".t", schema_pipe);
    return query_int(admin, sql);
}

static PGconn *pipe_conn(void)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "DROP SCHEMA IF EXISTS \"%s\" CASCADE; CREATE SCHEMA \"%s\"; "
             "CREATE TABLE \"%s\".t (id int PRIMARY KEY)",
             schema_pipe, schema_pipe, schema_pipe);
    exec_ok(admin, sql);
    return connect_or_fail(schema_pipe, 0);
}

/* A pipeline's Sync would commit statements run outside a transaction:
 * the deferred BEGIN must go first in the same pipeline. */
static void test_pipeline_runs_inside_the_deferred_transaction(void **state)
{
    REQUIRE_PG();
    PGconn *pg = pipe_conn();
    char err[ERR_MAX];
    long long seen_inside = -1;
    struct db_pipeline pl;
    db_pipeline_init(&pl);
    assert_int_equal(db_begin_deferred(pg), 0);
    db_pipeline_add(&pl, "INSERT INTO t VALUES (1)", 0, NULL, NULL, NULL);
    db_pipeline_add(&pl, "SELECT count(*) FROM t", 0, NULL, read_count, &seen_inside);
    assert_int_equal(db_pipeline_run(pg, &pl, err, sizeof err), 0);
    assert_int_equal(seen_inside, 1);
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_INTRANS);
    assert_int_equal(rows_seen(), 0); /* not committed by the Sync */
    db_rollback(pg);
    assert_int_equal(rows_seen(), 0);

    /* A failing statement: every result read, the connection out of
     * pipeline mode and usable, nothing of the transaction kept. */
    assert_int_equal(db_begin_deferred(pg), 0);
    db_pipeline_add(&pl, "INSERT INTO t VALUES (2)", 0, NULL, NULL, NULL);
    db_pipeline_add(&pl, "INSERT INTO t VALUES (2)", 0, NULL, NULL, NULL);
    db_pipeline_add(&pl, "SELECT count(*) FROM t", 0, NULL, read_count, &seen_inside);
    assert_int_equal(db_pipeline_run(pg, &pl, err, sizeof err), -1);
    assert_string_equal(db_failure_last()->sqlstate, "23505");
    assert_int_equal(PQpipelineStatus(pg), PQ_PIPELINE_OFF);
    db_rollback(pg);
    assert_int_equal(rows_seen(), 0);

    /* Any other statement sends the BEGIN just before it. */
    assert_int_equal(db_begin_deferred(pg), 0);
    exec_ok(pg, "INSERT INTO t VALUES (3)");
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_INTRANS);
    assert_int_equal(rows_seen(), 0);
    assert_int_equal(db_commit(pg, err, sizeof err), 0);
    assert_int_equal(rows_seen(), 1);

    /* Nothing ran: COMMIT sends nothing. */
    assert_int_equal(db_begin_deferred(pg), 0);
    assert_int_equal(db_commit(pg, err, sizeof err), 0);
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
    db_pipeline_free(&pl);
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_session_settings),
        cmocka_unit_test(test_array_text_round_trip),
        cmocka_unit_test(test_array_int_and_bytea_round_trip),
        cmocka_unit_test(test_migrate_applies_in_order_and_rerun_is_noop),
        cmocka_unit_test(test_migrate_refuses_unknown_version),
        cmocka_unit_test(test_migrate_concurrent_applies_once),
        cmocka_unit_test(test_offsets_load_and_store),
        cmocka_unit_test(test_pool_concurrent_queries),
        cmocka_unit_test(test_pool_error_sqlstate),
        cmocka_unit_test(test_pool_queue_bound_and_free),
        cmocka_unit_test(test_pool_survives_terminate_backend),
        cmocka_unit_test(test_pipeline_runs_inside_the_deferred_transaction),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
