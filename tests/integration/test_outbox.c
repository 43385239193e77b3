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
#include "metrics/metrics.h"
#include "outbox/outbox.h"
#include "outbox/outbox_pack.h"
#include "service/pipeline_metrics.h"

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

/* This backend's scans of the outbox so far: sequential ones, those of
 * its primary key and those of its lease index. Flushed first (the
 * counters of a backend reach the shared statistics when it goes idle). */
struct outbox_scans {
    int64_t seq, pkey, lease;
};

static struct outbox_scans scans_now(PGconn *pg)
{
    exec_ok(pg, "SELECT pg_stat_force_next_flush()");
    const char *idx = "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid = ";
    char sql[160];
    struct outbox_scans s;
    s.seq = test_pg_int(pg,
                        "SELECT seq_scan FROM pg_stat_user_tables WHERE relid = "
                        "'outbox'::regclass",
                        0, NULL);
    snprintf(sql, sizeof(sql), "%s'outbox_pkey'::regclass", idx);
    s.pkey = test_pg_int(pg, sql, 0, NULL);
    snprintf(sql, sizeof(sql), "%s'outbox_lease_expiry'::regclass", idx);
    s.lease = test_pg_int(pg, sql, 0, NULL);
    return s;
}

/* The sweep reads the rows whose lease ended through the lease index,
 * not the whole outbox in id order (every row in flight and every dead
 * row of a busy outbox: up to 0.8 s a sweep under load). The statistics
 * of a queue table are always stale: here, as under load, they were
 * taken when the rows' leases had ended, and the rows are in flight now.
 * Ordered by id, the planner then walks the primary key. (The claim is a
 * function, db/migrate.c, so its plan is read from the scan counters.) */
static void test_claim_reads_the_lease_index(void **state)
{
    PGconn *a = relay_pg();
    exec_ok(a, "DELETE FROM outbox");
    exec_ok(a, "INSERT INTO outbox (topic, key, payload, lease_until) SELECT 'ledger-events', "
               "'m-1', '\\x01', now() - interval '1 hour' FROM generate_series(1, 5000)");
    exec_ok(a, "ANALYZE outbox");
    exec_ok(a, "UPDATE outbox SET lease_until = now() + interval '1 hour'");
    struct outbox_scans before = scans_now(a);
    assert_int_equal(claim(a, "relay-a", NULL, 0), 0);
    struct outbox_scans after = scans_now(a);
    assert_int_equal(after.seq, before.seq);
    assert_true(after.lease > before.lease);
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
    struct outbox_scans before = scans_now(a);
    char err[256];
    assert_int_equal(outbox_delete(a, ids, DELETED_ROWS, err, sizeof(err)), 0);
    struct outbox_scans after = scans_now(a);
    free(ids);
    assert_int_equal(after.seq, before.seq); /* no whole-table scan */
    assert_true(after.pkey > before.pkey);
    assert_int_equal(test_pg_int(a, "SELECT count(*) FROM outbox", 0, NULL),
                     2 * STALE_ROWS + 1 - STALE_ROWS - DELETED_ROWS);
    exec_ok(a, "DELETE FROM outbox");
    exec_ok(a, "ALTER TABLE outbox RESET (autovacuum_enabled)");
    PQfinish(a);
}

/* The ids of the newest n rows, highest first (malloc'ed). */
static int64_t *newest_ids(PGconn *pg, int n)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "SELECT id FROM outbox ORDER BY id DESC LIMIT %d", n);
    PGresult *res = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), n);
    int64_t *ids = malloc((size_t)n * sizeof(*ids));
    assert_non_null(ids);
    for (int i = 0; i < n; i++)
        ids[i] = db_int_at(res, i, 0);
    PQclear(res);
    return ids;
}

/* The claim's update and the renewal find rows by id through the primary
 * key under the same stale statistics as the delete (issue 15): with a
 * table of "one row" the planner would read all of it for each. */
static void test_claim_and_renew_read_the_primary_key_whatever_the_statistics(void **state)
{
    PGconn *a = relay_pg();
    make_stats_stale(a);
    exec_ok(a, "UPDATE outbox SET lease_until = now() - interval '1 second' WHERE id > "
               "(SELECT max(id) - " DELETED_ROWS_S " FROM outbox)");
    struct outbox_scans before = scans_now(a);
    struct outbox_stranded st;
    char err[256];
    assert_int_equal(outbox_claim(a, "relay-a", NULL, 0, DELETED_ROWS, &st, err, sizeof(err)), 0);
    assert_int_equal(st.count, DELETED_ROWS);
    outbox_stranded_free(&st);
    struct outbox_scans after = scans_now(a);
    assert_int_equal(after.seq, before.seq);
    assert_true(after.pkey > before.pkey);
    int64_t *ids = newest_ids(a, DELETED_ROWS);
    before = after;
    assert_int_equal(outbox_renew(a, "relay-a", ids, DELETED_ROWS, err, sizeof(err)), 0);
    after = scans_now(a);
    free(ids);
    assert_int_equal(after.seq, before.seq);
    assert_true(after.pkey > before.pkey);
    exec_ok(a, "DELETE FROM outbox");
    exec_ok(a, "ALTER TABLE outbox RESET (autovacuum_enabled)");
    PQfinish(a);
}

/* A batch's events: several topics and keys, each payload its index. */
#define PACKED_EVENTS 1234
static void batch_events(struct outbox_row *rows, uint32_t *payloads, char (*keys)[16])
{
    static const char *const topics[] = {"ledger-verdicts", "ledger-events", "notify-requests"};
    for (int i = 0; i < PACKED_EVENTS; i++) {
        payloads[i] = (uint32_t)i;
        snprintf(keys[i], sizeof(keys[i]), "m-%d", i / 3);
        rows[i] = (struct outbox_row){.topic = topics[i % 3],
                                      .key = keys[i],
                                      .payload = (const uint8_t *)&payloads[i],
                                      .len = sizeof(payloads[i])};
    }
}

/* One packed batch of a test: what was written and what came back. */
struct packed_batch {
    struct outbox_row rows[PACKED_EVENTS], got[PACKED_EVENTS];
    uint32_t payloads[PACKED_EVENTS];
    char keys[PACKED_EVENTS][16];
    int64_t ids[PACKED_EVENTS], got_ids[PACKED_EVENTS];
};

/* An empty outbox, then the first count events of a batch appended packed
 * and committed on pg. */
static void packed_write(PGconn *pg, struct packed_batch *pb, size_t count)
{
    char err[256];
    batch_events(pb->rows, pb->payloads, pb->keys);
    exec_ok(pg, "DELETE FROM outbox");
    exec_ok(pg, "BEGIN");
    if (outbox_append_packed(pg, pb->rows, count, pb->ids, err, sizeof(err)) != 0)
        fail_msg("append: %s", err);
    exec_ok(pg, "COMMIT");
}

/* Claims every stranded event (sweeps of up to max) into got from *n. */
static void claim_all(PGconn *pg, size_t max, struct outbox_row *got, int64_t *ids, size_t *n)
{
    struct outbox_stranded st;
    char err[256];
    do {
        if (outbox_claim(pg, "relay-b", NULL, 0, max, &st, err, sizeof(err)) != 0)
            fail_msg("claim: %s", err);
        assert_true(*n + st.count <= PACKED_EVENTS);
        memcpy(got + *n, st.rows, st.count * sizeof(*got));
        memcpy(ids + *n, st.ids, st.count * sizeof(*ids));
        *n += st.count;
        free(st.rows); /* the rows' strings now belong to got */
        free(st.ids);
    } while (st.count > 0);
}

/* A batch's events in a few packed rows (issue 15): its relay (or a sweep
 * after its crash) sends every one, in the order they were made, with its
 * topic, key and payload, and a row is claimed whole. */
static void test_packed_rows_are_relayed_in_order(void **state)
{
    PGconn *a = relay_pg(), *b = relay_pg();
    static struct packed_batch pb;
    struct outbox_row *rows = pb.rows, *got = pb.got;
    uint32_t *payloads = pb.payloads;
    int64_t *ids = pb.ids, *got_ids = pb.got_ids;
    packed_write(a, &pb, PACKED_EVENTS);
    int64_t packed_rows = (PACKED_EVENTS + OUTBOX_PACK_EVENTS_MAX - 1) / OUTBOX_PACK_EVENTS_MAX;
    assert_int_equal(test_pg_int(a, "SELECT count(*) FROM outbox", 0, NULL), packed_rows);
    assert_int_equal(test_pg_int(a, "SELECT sum(events) FROM outbox", 0, NULL), PACKED_EVENTS);
    /* A's relay crashed before any acknowledgement: once the lease is over
     * B sends the lot, whole rows per sweep, in order. */
    expire_all(a);
    size_t n = 0;
    claim_all(b, OUTBOX_PACK_EVENTS_MAX + 1, got, got_ids, &n);
    assert_int_equal(n, PACKED_EVENTS);
    for (int i = 0; i < PACKED_EVENTS; i++) {
        assert_string_equal(got[i].topic, rows[i].topic);
        assert_string_equal(got[i].key, rows[i].key);
        assert_int_equal(got[i].len, sizeof(uint32_t));
        assert_memory_equal(got[i].payload, &payloads[i], sizeof(uint32_t));
        assert_int_equal(got_ids[i], ids[i]);
        assert_true(i == 0 || ids[i] >= ids[i - 1]);
        outbox_unpacked_free(&got[i]);
    }
    PQfinish(a);
    PQfinish(b);
}

/* A relay dies with a packed row partly acknowledged (it deletes a row
 * only when all its events are): nobody else sends it while its lease
 * runs, then it is sent again whole, and once deleted nothing is left.
 * Consumers drop the events they already had by their event ids. */
static void test_a_row_partly_sent_is_sent_again_whole_after_its_lease(void **state)
{
    PGconn *a = relay_pg(), *b = relay_pg();
    static struct packed_batch pb;
    struct outbox_row *got = pb.got;
    uint32_t *payloads = pb.payloads;
    int64_t *ids = pb.ids, *got_ids = pb.got_ids;
    char err[256];
    packed_write(a, &pb, 7);
    assert_int_equal(ids[0], ids[6]); /* one row */
    /* A sent them; 3 of 7 were acknowledged when it died: its row stays. */
    size_t n = 0;
    claim_all(b, OUTBOX_RELAY_BATCH_MAX, got, got_ids, &n);
    assert_int_equal(n, 0); /* A's lease still runs */
    expire_all(a);
    claim_all(b, OUTBOX_RELAY_BATCH_MAX, got, got_ids, &n);
    assert_int_equal(n, 7);
    for (int i = 0; i < 7; i++) {
        assert_memory_equal(got[i].payload, &payloads[i], sizeof(uint32_t));
        outbox_unpacked_free(&got[i]);
    }
    assert_int_equal(outbox_delete(b, got_ids, n, err, sizeof(err)), 0);
    assert_int_equal(test_pg_int(a, "SELECT count(*) FROM outbox", 0, NULL), 0);
    PQfinish(a);
    PQfinish(b);
}

/* Rows written before packed rows existed (no events column; the shape
 * services still insert by SQL) are relayed after the upgrade, in order,
 * among packed ones. */
static void test_rows_of_the_old_shape_are_relayed_after_upgrade(void **state)
{
    char old[80], sql[1024], err[256];
    snprintf(old, sizeof(old), "%s_old", schema);
    PGconn *pg = test_pg();
    exec_ok(pg, "SET client_min_messages = warning");
    snprintf(sql, sizeof(sql),
             "CREATE SCHEMA %1$s; CREATE TABLE %1$s.outbox (id bigserial PRIMARY KEY, "
             "topic text NOT NULL, key text NOT NULL, payload bytea NOT NULL, created_at "
             "timestamptz NOT NULL DEFAULT now(), lease_owner text, lease_until timestamptz NOT "
             "NULL DEFAULT now()); INSERT INTO %1$s.outbox (topic, key, payload) SELECT "
             "'ledger-events', 'm-' || i, int4send(i) FROM generate_series(0, 2) i",
             old);
    exec_ok(pg, sql);
    assert_int_equal(db_migrate(pg, old, NULL, 0, err, sizeof(err)), 0);
    PGconn *relay =
        db_connect(getenv("TESSERA_PG_DSN"), old, "test-outbox", 2000, err, sizeof(err));
    assert_non_null(relay);
    static const uint8_t more[2][4] = {{0, 0, 0, 3}, {0, 0, 0, 4}};
    struct outbox_row rows[2] = {{"ledger-events", "m-3", more[0], 4},
                                 {"ledger-events", "m-4", more[1], 4}};
    exec_ok(relay, "BEGIN");
    assert_int_equal(outbox_append_packed(relay, rows, 2, NULL, err, sizeof(err)), 0);
    exec_ok(relay, "COMMIT");
    expire_all(relay);
    struct outbox_stranded st;
    assert_int_equal(outbox_claim(relay, "relay-a", NULL, 0, 100, &st, err, sizeof(err)), 0);
    assert_int_equal(st.count, 5);
    for (int i = 0; i < 5; i++) {
        uint8_t want[4] = {0, 0, 0, (uint8_t)i};
        char key[8];
        snprintf(key, sizeof(key), "m-%d", i);
        assert_string_equal(st.rows[i].key, key);
        assert_int_equal(st.rows[i].len, 4);
        assert_memory_equal(st.rows[i].payload, want, 4);
    }
    outbox_stranded_free(&st);
    PQfinish(relay);
    snprintf(sql, sizeof(sql), "SET client_min_messages = warning; DROP SCHEMA %s CASCADE", old);
    exec_ok(pg, sql);
    PQfinish(pg);
}

/* The backlog gauge counts events, not rows (issue 15): a packed row of 7
 * and two plain rows, one of them delivered and waiting to be deleted,
 * are 8 events behind. */
static void test_backlog_gauge_counts_events(void **state)
{
    PGconn *a = relay_pg();
    static const uint8_t payload[] = {1, 2, 3};
    struct outbox_row rows[7];
    for (int i = 0; i < 7; i++)
        rows[i] = (struct outbox_row){"ledger-events", "m-1", payload, sizeof(payload)};
    int64_t plain[2];
    char err[256];
    exec_ok(a, "DELETE FROM outbox");
    exec_ok(a, "BEGIN");
    assert_int_equal(outbox_append_packed(a, rows, 7, NULL, err, sizeof(err)), 0);
    assert_int_equal(outbox_append(a, rows, 2, plain, err, sizeof(err)), 0);
    exec_ok(a, "COMMIT");
    pipeline_metrics_outbox_backlog(a, plain, 1);
    struct metric_series *gauge =
        metrics_series(metrics_gauge("tessera_outbox_backlog_events",
                                     "Events in the outbox not yet relayed.", NULL),
                       NULL);
    assert_int_equal((int)metrics_value(gauge), 8);
    exec_ok(a, "DELETE FROM outbox");
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
        cmocka_unit_test(test_claim_and_renew_read_the_primary_key_whatever_the_statistics),
        cmocka_unit_test(test_packed_rows_are_relayed_in_order),
        cmocka_unit_test(test_a_row_partly_sent_is_sent_again_whole_after_its_lease),
        cmocka_unit_test(test_rows_of_the_old_shape_are_relayed_after_upgrade),
        cmocka_unit_test(test_backlog_gauge_counts_events),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
