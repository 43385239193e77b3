/* The ledger writes a small batch's verdicts and journal with INSERTs from
 * arrays, sent with the balances and lots in one pipelined round trip, and
 * a large batch's with COPY (store_write, TESSERA_LEDGER_INSERT_BATCH_MAX).
 *
 * - Both paths store the same rows for the same commands: every column
 *   but the ids the ledger makes up per attempt (posting and purchase ids,
 *   the verdict's event id), with a reason and an actor holding the
 *   characters COPY and array literals escape differently.
 * - A statement failing in the middle of the pipelined writes (a trigger
 *   refusing the journal rows, sent after the verdicts) fails the batch
 *   and leaves nothing of it once rolled back, and the connection works
 *   for the retry, which then stores the batch once.
 *
 * Drives ledger_apply_batch directly (the pipeline's apply callback), like
 * test_ledger_balance_race, with a tenant of its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"
#include "db/db.h"
#include "events/codec.h"
#include "ids/uuid7.h"
#include "../../services/ledger/ledger.h"

#define BATCH_COMMANDS 4
#define DUMP_MAX       16384

/* The characters the two encodings escape differently. */
static const char ODD_TEXT[] = "say \"hi\", {x}\\y 'z' \\N";

struct batch {
    rd_kafka_message_t msg[BATCH_COMMANDS];
    rd_kafka_message_t *msgs[BATCH_COMMANDS];
    const char *poison[BATCH_COMMANDS];
    struct pipeline_batch b;
};

static void add_message(struct batch *bt, size_t i, Envelope *env)
{
    size_t len = 0;
    uint8_t *payload = envelope_encode(env, &len);
    assert_non_null(payload);
    bt->msg[i] = (rd_kafka_message_t){.payload = payload, .len = len};
    bt->msgs[i] = &bt->msg[i];
}

/* A top-up and a purchase paid from it for member a, a purchase member b
 * cannot pay (rejected), points adjusted for a with an odd reason. */
static void make_batch(struct batch *bt, const char *tenant, const char *a, const char *b,
                       const char ids[BATCH_COMMANDS][UUID_STR_SIZE])
{
    memset(bt, 0, sizeof(*bt));
    struct event_meta meta = {
        .tenant_id = tenant, .branch_id = "hq", .actor_kind = "test", .actor_id = ODD_TEXT};
    Envelope env;
    Actor actor;

    TopUpStoredValue t;
    meta.member_id = a;
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__top_up_stored_value__init(&t);
    t.command_id = (char *)ids[0], t.amount = 10000, t.payment_method = "cash", t.currency = "CNY";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE;
    env.top_up_stored_value = &t;
    add_message(bt, 0, &env);

    RecordPurchase p;
    for (size_t i = 1; i <= 2; i++) {
        meta.member_id = i == 1 ? a : b;
        envelope_init(&env, &actor, &meta);
        tessera__ledger__v1__record_purchase__init(&p);
        p.command_id = (char *)ids[i], p.amount = i == 1 ? 2500 : 999999;
        p.payment_method = "stored_value", p.currency = "CNY";
        env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_RECORD_PURCHASE;
        env.record_purchase = &p;
        add_message(bt, i, &env);
    }

    AdjustPoints adj;
    meta.member_id = a;
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__adjust_points__init(&adj);
    adj.command_id = (char *)ids[3], adj.points = 50, adj.reason = (char *)ODD_TEXT;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS;
    env.adjust_points = &adj;
    add_message(bt, 3, &env);
    bt->b =
        (struct pipeline_batch){.msgs = bt->msgs, .count = BATCH_COMMANDS, .poison = bt->poison};
}

/* Between attempts the pipeline drops the failed attempt's events. */
static void batch_reset(struct batch *bt)
{
    for (size_t i = 0; i < bt->b.out_count; i++) {
        free((char *)bt->b.out[i].topic);
        free((char *)bt->b.out[i].key);
        free((uint8_t *)bt->b.out[i].payload);
    }
    bt->b.out_count = 0;
    memset(bt->poison, 0, sizeof(bt->poison));
}

static void batch_free(struct batch *bt)
{
    batch_reset(bt);
    free(bt->b.out);
    for (size_t i = 0; i < BATCH_COMMANDS; i++)
        free(bt->msg[i].payload);
}

static PGconn *ledger_pg(void)
{
    char err[256];
    PGconn *pg =
        db_connect(getenv("TESSERA_PG_DSN"), "ledger", "test-write-paths", 30000, err, sizeof(err));
    if (!pg)
        fprintf(stderr, "connect: %s\n", err);
    assert_non_null(pg);
    return pg;
}

/* A tenant, its members a and b, the batch's command ids. */
struct names {
    char tenant[64], a[UUID_STR_SIZE], b[UUID_STR_SIZE];
    char ids[BATCH_COMMANDS][UUID_STR_SIZE];
};

static void unique_names(struct names *n)
{
    char id[UUID_STR_SIZE];
    uuid7_generate(id);
    snprintf(n->tenant, sizeof(n->tenant), "paths-%.8s", id + 28);
    uuid7_generate(n->a);
    uuid7_generate(n->b);
    for (size_t i = 0; i < BATCH_COMMANDS; i++)
        uuid7_generate(n->ids[i]);
}

/* Every row the batch wrote for tenant, one line each, without the ids
 * made per attempt (posting ids compared through their command). */
static void dump_rows(PGconn *pg, const char *tenant, char *out, size_t out_len)
{
    const char *p[1] = {tenant};
    char err[256];
    PGresult *res = db_query(
        pg,
        "SELECT 'c', command_id, command_type, member_id, status, coalesce(code, '-'), "
        "(posting_id IS NULL)::text, (verdict IS NOT NULL)::text, '', '' "
        "FROM ledger.commands WHERE tenant_id = $1 "
        "UNION ALL SELECT 'j', j.command_id, coalesce(j.member_id, '-'), j.branch_id, j.account, "
        "j.asset, j.amount::text, j.reason, j.actor, "
        "(j.posting_id = c.posting_id)::text FROM ledger.journal j JOIN ledger.commands c "
        "ON c.tenant_id = j.tenant_id AND c.command_id = j.command_id WHERE j.tenant_id = $1 "
        "UNION ALL SELECT 'b', member_id, points::text, sv_principal::text, sv_bonus::text, "
        "version::text, points_pending::text, '', '', '' FROM ledger.balances "
        "WHERE tenant_id = $1 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8",
        1, p, err, sizeof(err), NULL);
    if (!res)
        fprintf(stderr, "dump: %s\n", err);
    assert_non_null(res);
    size_t len = 0;
    out[0] = '\0';
    for (int r = 0; r < PQntuples(res); r++) {
        for (int c = 0; c < PQnfields(res); c++)
            len += (size_t)snprintf(out + len, out_len - len, "%s|", PQgetvalue(res, r, c));
        len += (size_t)snprintf(out + len, out_len - len, "\n");
        assert_true(len < out_len);
    }
    PQclear(res);
}

/* The stored verdicts are byte for byte the ones the batch emitted. */
static void assert_verdicts_as_emitted(PGconn *pg, const char *tenant, const struct batch *bt)
{
    const char *p[1] = {tenant};
    char err[256];
    PGresult *res = db_query(pg, "SELECT verdict FROM ledger.commands WHERE tenant_id = $1", 1, p,
                             err, sizeof(err), NULL);
    assert_non_null(res);
    assert_int_equal(PQntuples(res), BATCH_COMMANDS);
    for (int r = 0; r < PQntuples(res); r++) {
        size_t len = 0;
        unsigned char *v = PQunescapeBytea((const unsigned char *)PQgetvalue(res, r, 0), &len);
        assert_non_null(v);
        bool found = false;
        for (size_t i = 0; i < bt->b.out_count && !found; i++)
            found = bt->b.out[i].len == len && memcmp(bt->b.out[i].payload, v, len) == 0;
        assert_true(found);
        PQfreemem(v);
    }
    PQclear(res);
}

/* Applies the batch with the given path in a transaction it rolls back,
 * and dumps what the transaction saw. */
static void apply_and_dump(size_t insert_batch_max, const struct names *n, char *out,
                           size_t out_len)
{
    /* a worker's, kept across batches and calls as a worker keeps it
     * (ledger_begin_batch resets a batch's part and reuses its arrays) */
    static struct ledger_ctx l;
    static bool made;
    if (!made) {
        store_rows_init(&l.rows);
        made = true;
    }
    l.insert_batch_max = insert_batch_max;
    PGconn *pg = ledger_pg();
    char err[512];
    struct batch bt;
    make_batch(&bt, n->tenant, n->a, n->b, n->ids);
    ledger_begin_batch(&l);
    assert_int_equal(db_begin(pg, err, sizeof(err)), 0);
    assert_true(l.rows.by_insert == false);
    int rc = ledger_apply_batch(&l, pg, &bt.b, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "apply: %s\n", err);
    assert_int_equal(rc, 0);
    assert_true(l.rows.by_insert == (insert_batch_max >= BATCH_COMMANDS));
    dump_rows(pg, n->tenant, out, out_len);
    assert_verdicts_as_emitted(pg, n->tenant, &bt);
    db_rollback(pg);
    batch_free(&bt);
    PQfinish(pg);
}

static void test_insert_and_copy_store_the_same_rows(void **state)
{
    struct names n;
    unique_names(&n);
    static char by_copy[DUMP_MAX], by_insert[DUMP_MAX];
    apply_and_dump(0, &n, by_copy, sizeof(by_copy));
    apply_and_dump(BATCH_COMMANDS, &n, by_insert, sizeof(by_insert));
    /* 4 verdicts, a top-up's, a purchase's and an adjustment's lines, 1
     * balance (b's purchase was refused: no row) */
    assert_non_null(strstr(by_copy, "insufficient_balance"));
    assert_non_null(strstr(by_copy, ODD_TEXT));
    assert_string_equal(by_insert, by_copy);
}

/* Refuses the tenant's journal rows while it exists. */
static void refuse_journal(PGconn *admin, const char *tenant, bool on)
{
    char sql[1024], err[256];
    if (on)
        snprintf(sql, sizeof(sql),
                 "CREATE OR REPLACE FUNCTION ledger.test_refuse_journal() RETURNS trigger "
                 "LANGUAGE plpgsql "
                 "AS $$BEGIN IF NEW.tenant_id = '%s' THEN RAISE EXCEPTION 'refused by the "
                 "test'; END IF; RETURN NEW; END$$; "
                 "DROP TRIGGER IF EXISTS test_refuse_journal ON ledger.journal; "
                 "CREATE TRIGGER test_refuse_journal BEFORE INSERT ON ledger.journal "
                 "FOR EACH ROW EXECUTE FUNCTION ledger.test_refuse_journal()",
                 tenant);
    else
        snprintf(sql, sizeof(sql),
                 "DROP TRIGGER IF EXISTS test_refuse_journal ON ledger.journal; "
                 "DROP FUNCTION IF EXISTS ledger.test_refuse_journal()");
    int rc = db_exec(admin, sql, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "trigger: %s\n", err);
    assert_int_equal(rc, 0);
}

static int64_t commands_of(PGconn *pg, const char *tenant)
{
    const char *p[1] = {tenant};
    return test_pg_int(pg,
                       "SELECT (SELECT count(*) FROM ledger.commands WHERE tenant_id = $1) + "
                       "(SELECT count(*) FROM ledger.journal WHERE tenant_id = $1) * 1000 + "
                       "(SELECT count(*) FROM ledger.balances WHERE tenant_id = $1) * 1000000",
                       1, p);
}

static void test_failure_mid_pipeline_leaves_nothing_and_the_retry_stores_once(void **state)
{
    struct names n;
    unique_names(&n);
    const char *tenant = n.tenant;
    static struct ledger_ctx l;
    memset(&l, 0, sizeof(l));
    store_rows_init(&l.rows);
    l.insert_batch_max = BATCH_COMMANDS;
    PGconn *pg = ledger_pg(), *observer = test_pg();
    char err[512];
    struct batch bt;
    make_batch(&bt, tenant, n.a, n.b, n.ids);

    refuse_journal(observer, tenant, true);
    ledger_begin_batch(&l);
    assert_int_equal(db_begin(pg, err, sizeof(err)), 0);
    int rc = ledger_apply_batch(&l, pg, &bt.b, err, sizeof(err));
    assert_int_not_equal(rc, 0);
    assert_true(l.rows.by_insert);
    assert_non_null(strstr(err, "refused by the test"));
    assert_string_equal(db_failure_last()->sqlstate, "P0001");
    /* the verdicts went first in the same round trip: in the transaction,
     * aborted with it */
    db_rollback(pg);
    refuse_journal(observer, tenant, false);
    assert_int_equal(commands_of(observer, tenant), 0);

    batch_reset(&bt);
    ledger_begin_batch(&l);
    assert_int_equal(db_begin(pg, err, sizeof(err)), 0);
    rc = ledger_apply_batch(&l, pg, &bt.b, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "retry: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(ledger_before_commit(&l, pg, &bt.b, err, sizeof(err)), 0);
    assert_int_equal(db_commit(pg, err, sizeof(err)), 0);
    /* 4 verdicts; 2 + 4 + 2 journal lines (top-up, purchase paid from
     * principal and the sale's side, adjustment); a's balance */
    int64_t seen = commands_of(observer, tenant);
    assert_int_equal(seen % 1000, BATCH_COMMANDS);
    assert_true(seen / 1000 % 1000 >= 6);
    assert_int_equal(seen / 1000000, 1);
    batch_free(&bt);
    PQfinish(pg);
    PQfinish(observer);
}

/* A failed assertion must not leave the trigger to other tests. */
static int drop_trigger(void **state)
{
    PGconn *admin = test_pg();
    refuse_journal(admin, "", false);
    PQfinish(admin);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_and_copy_store_the_same_rows),
        cmocka_unit_test_teardown(
            test_failure_mid_pipeline_leaves_nothing_and_the_retry_stores_once, drop_trigger),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
