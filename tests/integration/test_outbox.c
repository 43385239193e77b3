/* The outbox's lease (issue 10, item 5): several relays (workers of one
 * ledger, other instances, ingest's sweep) over one outbox send each
 * stranded row once, never a row another relay holds, never a row still
 * in flight. Deterministic: two connections claim in turn, one holding
 * its claim's transaction open so the other meets locked rows (FOR UPDATE
 * SKIP LOCKED: skipped, not waited for; a statement timeout turns a wait
 * into a failure). Runs in a scratch schema made by db_migrate. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/api_client.h"
#include "db/db.h"
#include "db/migrate.h"
#include "outbox/outbox.h"

#define ROWS 5
/* A burst after a drained queue's VACUUM, and the part of it delivered. */
#define STALE_ROWS     5000
#define STALE_ROWS_S   "5000"
#define DELETED_ROWS   1000
#define DELETED_ROWS_S "1000"

static char schema[64];

static PGconn *relay_pg(void)
{
    char err[256];
    PGconn *pg =
        db_connect(getenv("TESSERA_PG_DSN"), schema, "test-outbox", 2000, err, sizeof(err));
    if (!pg)
        fprintf(stderr, "connect: %s\n", err);
    assert_non_null(pg);
    return pg;
}

static void exec_ok(PGconn *pg, const char *sql)
{
    char err[256];
    if (db_exec(pg, sql, err, sizeof(err)) != 0)
        fail_msg("%s: %s", sql, err);
}

static int setup(void **state)
{
    snprintf(schema, sizeof(schema), "outbox_test_%d", (int)getpid());
    PGconn *pg = test_pg();
    char err[256];
    if (db_migrate(pg, schema, NULL, 0, err, sizeof(err)) != 0) {
        fprintf(stderr, "migrate: %s\n", err);
        return -1;
    }
    PQfinish(pg);
    return 0;
}

static int teardown(void **state)
{
    PGconn *pg = test_pg();
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", schema);
    PQclear(PQexec(pg, "SET client_min_messages = warning"));
    PQclear(PQexec(pg, sql));
    PQfinish(pg);
    return 0;
}

/* ROWS rows appended and committed as a batch would; ids out. */
static void append_rows(PGconn *pg, int64_t ids[ROWS])
{
    static const uint8_t payload[] = {1, 2, 3};
    struct outbox_row rows[ROWS];
    for (int i = 0; i < ROWS; i++)
        rows[i] = (struct outbox_row){
            .topic = "ledger-events", .key = "m-1", .payload = payload, .len = sizeof(payload)};
    char err[256];
    exec_ok(pg, "BEGIN");
    assert_int_equal(outbox_append(pg, rows, ROWS, ids, err, sizeof(err)), 0);
    exec_ok(pg, "COMMIT");
}

static size_t claim(PGconn *pg, const char *owner, const int64_t *skip, size_t skip_count)
{
    struct outbox_stranded st;
    char err[256];
    if (outbox_claim(pg, owner, skip, skip_count, 100, &st, err, sizeof(err)) != 0)
        fail_msg("claim by %s: %s", owner, err);
    size_t n = st.count;
    for (size_t i = 0; i < n; i++)
        assert_memory_equal(st.rows[i].payload, "\1\2\3", 3);
    outbox_stranded_free(&st);
    return n;
}

/* The inserter's relay is sending them (or crashed): their lease ends. */
static void expire_all(PGconn *pg)
{
    exec_ok(pg, "UPDATE outbox SET lease_until = now() - interval '1 second'");
}

/* Two relays sweep the same stranded rows: each row is sent once. */
static void test_two_relays_claim_each_stranded_row_once(void **state)
{
    PGconn *a = relay_pg(), *b = relay_pg();
    int64_t ids[ROWS];
    exec_ok(a, "DELETE FROM outbox");
    append_rows(a, ids);
    /* Fresh rows belong to the relay that inserted them. */
    assert_int_equal(claim(b, "relay-b", NULL, 0), 0);
    expire_all(a);
    /* A claims inside an open transaction: its rows are locked. */
    exec_ok(a, "BEGIN");
    assert_int_equal(claim(a, "relay-a", NULL, 0), ROWS);
    /* B skips the locked rows at once (a wait would hit the timeout). */
    assert_int_equal(claim(b, "relay-b", NULL, 0), 0);
    exec_ok(a, "COMMIT");
    /* Once A's lease is stored, B finds nothing to send either. */
    assert_int_equal(claim(b, "relay-b", NULL, 0), 0);
    assert_int_equal(claim(a, "relay-a", NULL, 0), 0);
    PQfinish(a);
    PQfinish(b);
}

/* A relay never claims the rows it holds in flight itself, and its
 * renewal keeps other relays off them after the lease would have ended. */
static void test_in_flight_rows_are_skipped_and_renewed(void **state)
{
    PGconn *a = relay_pg(), *b = relay_pg();
    int64_t ids[ROWS];
    char err[256];
    exec_ok(a, "DELETE FROM outbox");
    append_rows(a, ids);
    expire_all(a);
    /* Two rows still in flight at A (librdkafka holds them): not claimed. */
    assert_int_equal(claim(a, "relay-a", ids, 2), ROWS - 2);
    expire_all(a);
    assert_int_equal(outbox_renew(a, "relay-a", ids, 2, err, sizeof(err)), 0);
    assert_int_equal(claim(b, "relay-b", NULL, 0), ROWS - 2); /* only the other three */
    /* A renewal never takes back a row another relay claimed meanwhile. */
    expire_all(a);
    assert_int_equal(outbox_renew(a, "relay-a", ids + 2, ROWS - 2, err, sizeof(err)), 0);
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM %s.outbox WHERE lease_owner = 'relay-b' "
             "AND lease_until <= now()",
             schema);
    PGconn *observer = test_pg();
    assert_int_equal(test_pg_int(observer, sql, 0, NULL), ROWS - 2);
    PQfinish(observer);
    PQfinish(a);
    PQfinish(b);
}

/* Claims up to max rows; their ids, in the order returned, go to ids. */
static size_t claim_ids(PGconn *pg, size_t max, int64_t *ids)
{
    struct outbox_stranded st;
    char err[256];
    if (outbox_claim(pg, "relay-a", NULL, 0, max, &st, err, sizeof(err)) != 0)
        fail_msg("claim: %s", err);
    size_t n = st.count;
    memcpy(ids, st.ids, n * sizeof(*ids));
    outbox_stranded_free(&st);
    return n;
}

/* Stranded rows go out again in the order they were made (a member's
 * events stay in order), whatever order their leases ended in, and a
 * limit takes a batch's (one lease's) earliest rows first. */
static void test_stranded_rows_come_back_in_id_order(void **state)
{
    PGconn *a = relay_pg();
    int64_t ids[ROWS], got[ROWS];
    exec_ok(a, "DELETE FROM outbox");
    append_rows(a, ids);
    /* One batch, one lease: the limit keeps the lowest ids. */
    expire_all(a);
    assert_int_equal(claim_ids(a, 2, got), 2);
    int64_t lowest = ids[0]; /* outbox_append's ids come in no particular order */
    for (int i = 1; i < ROWS; i++)
        lowest = ids[i] < lowest ? ids[i] : lowest;
    assert_int_equal(got[0], lowest);
    assert_int_equal(got[1], lowest + 1);
    /* The later rows' leases ended first (a renewal, a second relay). */
    exec_ok(a, "UPDATE outbox SET lease_until = now() - (id * interval '1 second')");
    assert_int_equal(claim_ids(a, ROWS, got), ROWS);
    for (int i = 1; i < ROWS; i++)
        assert_true(got[i - 1] < got[i]);
    PQfinish(a);
}

/* The sweep reads the rows whose lease ended through the lease index,
 * not the whole outbox in id order (every row in flight and every dead
 * row of a busy outbox: up to 0.8 s a sweep under load). The statistics
 * of a queue table are always stale: here, as under load, they were
 * taken when the rows' leases had ended, and the rows are in flight now.
 * Ordered by id, the planner then walks the primary key. */
static void test_claim_reads_the_lease_index(void **state)
{
    PGconn *a = relay_pg();
    exec_ok(a, "DELETE FROM outbox");
    exec_ok(a, "INSERT INTO outbox (topic, key, payload, lease_until) SELECT 'ledger-events', "
               "'m-1', '\\x01', now() - interval '1 hour' FROM generate_series(1, 5000)");
    exec_ok(a, "ANALYZE outbox");
    exec_ok(a, "UPDATE outbox SET lease_until = now() + interval '1 hour'");
    PGresult *res = PQprepare(a, "claim", OUTBOX_CLAIM_SQL, 3, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("prepare: %s", PQerrorMessage(a));
    PQclear(res);
    res = PQexec(a, "EXPLAIN EXECUTE claim('relay-a', '{}', 100)");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    bool lease_index = false, whole_table = false;
    for (int i = 0; i < PQntuples(res); i++) {
        lease_index |= strstr(PQgetvalue(res, i, 0), "outbox_lease_expiry") != NULL;
        whole_table |= strstr(PQgetvalue(res, i, 0), "Seq Scan") != NULL;
    }
    for (int i = 0; (!lease_index || whole_table) && i < PQntuples(res); i++)
        fprintf(stderr, "%s\n", PQgetvalue(res, i, 0)); /* the plan it chose instead */
    PQclear(res);
    assert_true(lease_index);
    assert_false(whole_table);
    exec_ok(a, "DELETE FROM outbox");
    PQfinish(a);
}

/* A drained queue's statistics (issue 15): VACUUM of an outbox whose only
 * live row is on its last page records one row on many pages; the next
 * burst fills those pages, and to the planner the table still holds one
 * row. The old `DELETE ... WHERE id = ANY(...)` then scanned the whole
 * table (or walked the lease index once per id): 18-488 ms a call in a
 * bench round. Autovacuum is off on this scratch table so the stale
 * figures stay while the test looks. */
static void make_stats_stale(PGconn *pg)
{
    exec_ok(pg, "ALTER TABLE outbox SET (autovacuum_enabled = false)");
    exec_ok(pg, "DELETE FROM outbox");
    exec_ok(pg, "INSERT INTO outbox (topic, key, payload) SELECT 'ledger-events', 'm-1', "
                "'\\x01' FROM generate_series(1, " STALE_ROWS_S ")");
    exec_ok(pg, "DELETE FROM outbox WHERE id < (SELECT max(id) FROM outbox)");
    exec_ok(pg, "VACUUM outbox");
    exec_ok(pg, "INSERT INTO outbox (topic, key, payload) SELECT 'ledger-events', 'm-1', "
                "'\\x01' FROM generate_series(1, " STALE_ROWS_S ")");
    assert_true(test_pg_int(pg,
                            "SELECT reltuples::bigint FROM pg_class WHERE oid = "
                            "'outbox'::regclass",
                            0, NULL) < 10);
}

/* This backend's scans of the outbox so far: sequential ones into *seq,
 * those of its primary key into *pkey. Flushed first (the counters of a
 * backend reach the shared statistics when it goes idle). */
static void outbox_scans(PGconn *pg, int64_t *seq, int64_t *pkey)
{
    exec_ok(pg, "SELECT pg_stat_force_next_flush()");
    *seq = test_pg_int(pg,
                       "SELECT seq_scan FROM pg_stat_user_tables WHERE relid = "
                       "'outbox'::regclass",
                       0, NULL);
    *pkey = test_pg_int(pg,
                        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid = "
                        "'outbox_pkey'::regclass",
                        0, NULL);
}

static void test_delete_reads_the_primary_key_whatever_the_statistics(void **state)
{
    PGconn *a = relay_pg();
    make_stats_stale(a);
    PGresult *res = PQexec(a, "SELECT id FROM outbox ORDER BY id DESC LIMIT " DELETED_ROWS_S);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), DELETED_ROWS);
    int64_t *ids = malloc(DELETED_ROWS * sizeof(*ids));
    assert_non_null(ids);
    for (int i = 0; i < DELETED_ROWS; i++)
        ids[i] = db_int_at(res, i, 0);
    PQclear(res);
    int64_t seq_before, pkey_before, seq_after, pkey_after;
    outbox_scans(a, &seq_before, &pkey_before);
    char err[256];
    assert_int_equal(outbox_delete(a, ids, DELETED_ROWS, err, sizeof(err)), 0);
    outbox_scans(a, &seq_after, &pkey_after);
    free(ids);
    assert_int_equal(seq_after, seq_before); /* no whole-table scan */
    assert_true(pkey_after > pkey_before);
    assert_int_equal(test_pg_int(a, "SELECT count(*) FROM outbox", 0, NULL),
                     2 * STALE_ROWS + 1 - STALE_ROWS - DELETED_ROWS);
    exec_ok(a, "DELETE FROM outbox");
    exec_ok(a, "ALTER TABLE outbox RESET (autovacuum_enabled)");
    PQfinish(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_relays_claim_each_stranded_row_once),
        cmocka_unit_test(test_in_flight_rows_are_skipped_and_renewed),
        cmocka_unit_test(test_stranded_rows_come_back_in_id_order),
        cmocka_unit_test(test_claim_reads_the_lease_index),
        cmocka_unit_test(test_delete_reads_the_primary_key_whatever_the_statistics),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
