/* Two ledger workers applying from the same loaded balance (issue 10, item
 * 8a): after partitions grow, a member's commands can sit on an old and a
 * new partition owned by different workers for a while. Both load the
 * balance without a lock; the second write must not overwrite the first.
 *
 * Deterministic: worker A applies a top-up and holds its transaction open;
 * worker B loads the same balance, decides, and its write waits for A's
 * row lock (the test waits until PostgreSQL shows B waiting on a lock).
 * A commits: B's write must fail (the batch is retried from a fresh load),
 * and the retry must end with both top-ups in the balance.
 *
 * Also (item 16): a batch that rolls back and is retried counts its
 * verdicts once, when it commits; and (issue 15) two batches of one
 * tenant do not wait for each other on its prepaid row but at commit.
 *
 * Drives ledger_apply_batch directly (the pipeline's apply callback) on
 * two connections, with commands of a tenant of its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/api_client.h"
#include "db/db.h"
#include "events/codec.h"
#include "ids/uuid7.h"
#include "../../services/ledger/ledger.h"

/* One command as the pipeline hands it to apply. */
struct one_batch {
    rd_kafka_message_t msg;
    rd_kafka_message_t *msgs[1];
    const char *poison[1];
    struct pipeline_batch b;
};

static void batch_of_topup(struct one_batch *ob, const char *tenant, const char *member,
                           int64_t amount)
{
    struct event_meta meta = {.tenant_id = tenant,
                              .branch_id = "hq",
                              .member_id = member,
                              .actor_kind = "test",
                              .actor_id = "balance-race"};
    Envelope env;
    Actor actor;
    TopUpStoredValue t;
    char command_id[UUID_STR_SIZE];
    uuid7_generate(command_id);
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__top_up_stored_value__init(&t);
    t.command_id = command_id;
    t.amount = amount;
    t.payment_method = "cash";
    t.currency = "CNY";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE;
    env.top_up_stored_value = &t;
    size_t len = 0;
    uint8_t *payload = envelope_encode(&env, &len);
    assert_non_null(payload);
    memset(ob, 0, sizeof(*ob));
    ob->msg.payload = payload;
    ob->msg.len = len;
    ob->msgs[0] = &ob->msg;
    ob->b = (struct pipeline_batch){.msgs = ob->msgs, .count = 1, .poison = ob->poison};
}

/* What the pipeline does between attempts: the events of the failed one
 * are dropped. */
static void batch_reset(struct one_batch *ob)
{
    for (size_t i = 0; i < ob->b.out_count; i++) {
        free((char *)ob->b.out[i].topic);
        free((char *)ob->b.out[i].key);
        free((uint8_t *)ob->b.out[i].payload);
    }
    ob->b.out_count = 0;
    ob->poison[0] = NULL;
}

static void batch_free(struct one_batch *ob)
{
    batch_reset(ob);
    free(ob->b.out);
    free(ob->msg.payload);
}

static PGconn *ledger_pg(void)
{
    char err[256];
    PGconn *pg = db_connect(getenv("TESSERA_PG_DSN"), "ledger", "test-balance-race", 30000, err,
                            sizeof(err));
    if (!pg)
        fprintf(stderr, "connect: %s\n", err);
    assert_non_null(pg);
    return pg;
}

static void ledger_init(struct ledger_ctx *l)
{
    memset(l, 0, sizeof(*l));
    l->redis_host = getenv("TESSERA_REDIS_HOST");
    l->redis_port = atoi(getenv("TESSERA_REDIS_PORT") ? getenv("TESSERA_REDIS_PORT") : "0");
    store_rows_init(&l->rows);
}

/* One attempt as the pipeline makes it: begin, apply, the step before
 * commit; the caller ends it. */
static int attempt(struct ledger_ctx *l, PGconn *pg, struct one_batch *ob, char *err,
                   size_t err_len)
{
    ledger_begin_batch(l);
    assert_int_equal(db_begin(pg, err, err_len), 0);
    if (ledger_apply_batch(l, pg, &ob->b, err, err_len) != 0)
        return -1;
    return ledger_before_commit(l, pg, &ob->b, err, err_len);
}

static void commit(PGconn *pg)
{
    char err[256];
    assert_int_equal(db_commit(pg, err, sizeof(err)), 0);
}

static int64_t principal_of(PGconn *pg, const char *tenant, const char *member)
{
    const char *p[2] = {tenant, member};
    return test_pg_int(pg,
                       "SELECT coalesce((SELECT sv_principal FROM ledger.balances "
                       "WHERE tenant_id = $1 AND member_id = $2), -1)",
                       2, p);
}

struct second_writer {
    struct ledger_ctx *l;
    PGconn *pg;
    struct one_batch *ob;
    int rc;
    char err[512];
};

static void *second_writer_main(void *arg)
{
    struct second_writer *w = arg;
    w->rc = attempt(w->l, w->pg, w->ob, w->err, sizeof(w->err));
    return NULL;
}

struct lock_wait {
    PGconn *observer;
    int pid;
};

static bool waiting_on_lock(void *arg)
{
    struct lock_wait *lw = arg;
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", lw->pid);
    const char *p[1] = {pid};
    return test_pg_int(lw->observer,
                       "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int "
                       "AND wait_event_type = 'Lock'",
                       1, p) == 1;
}

/* A's top-up commits while B's, decided from the same loaded balance,
 * waits to write it; B must fail and its retry must add on top of A's. */
static void race(const char *tenant, const char *member, int64_t start)
{
    /* Kept across races like a worker's across batches (ledger_begin_batch
     * resets them): made once, so what they hold is never dropped. */
    static struct ledger_ctx la, lb;
    static bool made;
    if (!made) {
        ledger_init(&la);
        ledger_init(&lb);
        made = true;
    }
    PGconn *pa = ledger_pg(), *pb = ledger_pg(), *observer = test_pg();
    char err[512];
    struct one_batch a, b;
    batch_of_topup(&a, tenant, member, 10000);
    batch_of_topup(&b, tenant, member, 2500);

    assert_int_equal(attempt(&la, pa, &a, err, sizeof(err)), 0); /* A holds its row lock */
    struct second_writer w = {.l = &lb, .pg = pb, .ob = &b};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, second_writer_main, &w), 0);
    struct lock_wait lw = {.observer = observer, .pid = PQbackendPID(pb)};
    assert_true(poll_until(waiting_on_lock, &lw, 20000));
    commit(pa);
    pthread_join(thread, NULL);
    /* B decided from the balance before A's top-up: it must not write. */
    assert_int_not_equal(w.rc, 0);
    assert_non_null(strstr(w.err, "another writer"));
    db_rollback(pb);
    batch_reset(&b);
    assert_int_equal(principal_of(observer, tenant, member), start + 10000);
    /* The retry loads A's balance and adds B's top-up to it. */
    assert_int_equal(attempt(&lb, pb, &b, err, sizeof(err)), 0);
    commit(pb);
    assert_int_equal(principal_of(observer, tenant, member), start + 12500);

    batch_free(&a);
    batch_free(&b);
    PQfinish(pa);
    PQfinish(pb);
    PQfinish(observer);
}

static void unique_ids(char tenant[64], char member[64])
{
    char id[UUID_STR_SIZE];
    uuid7_generate(id);
    snprintf(tenant, 64, "race-%.8s", id + 28);
    uuid7_generate(member);
}

/* The member has a balance row: both load version n. */
static void test_second_write_from_a_stale_balance_fails(void **state)
{
    char tenant[64], member[64];
    unique_ids(tenant, member);
    static struct ledger_ctx l;
    ledger_init(&l);
    PGconn *pg = ledger_pg();
    char err[512];
    struct one_batch first;
    batch_of_topup(&first, tenant, member, 1000);
    assert_int_equal(attempt(&l, pg, &first, err, sizeof(err)), 0);
    commit(pg);
    batch_free(&first);
    PQfinish(pg);
    race(tenant, member, 1000);
}

/* The member has no balance row yet: both find none and insert. */
static void test_second_insert_of_a_new_balance_fails(void **state)
{
    char tenant[64], member[64];
    unique_ids(tenant, member);
    race(tenant, member, 0);
}

/* A batch that fails after deciding (here: rolled back) and is retried
 * counts its verdict once, after the commit. */
static void test_retried_batch_counts_once(void **state)
{
    char tenant[64], member[64];
    unique_ids(tenant, member);
    static struct ledger_ctx l;
    ledger_init(&l);
    PGconn *pg = ledger_pg();
    char err[512];
    struct one_batch ob;
    batch_of_topup(&ob, tenant, member, 500);
    assert_int_equal(attempt(&l, pg, &ob, err, sizeof(err)), 0);
    db_rollback(pg); /* e.g. the commit failed */
    batch_reset(&ob);
    assert_int_equal(attempt(&l, pg, &ob, err, sizeof(err)), 0);
    commit(pg);
    ledger_after_commit(&l, &ob.b);
    assert_int_equal(atomic_load(&l.posted), 1);
    assert_int_equal(atomic_load(&l.rejected), 0);
    batch_free(&ob);
    PQfinish(pg);
}

static int64_t prepaid_of(PGconn *observer, const char *tenant)
{
    const char *p[1] = {tenant};
    return test_pg_int(observer,
                       "SELECT outstanding FROM ledger.tenant_prepaid WHERE tenant_id = $1", 1, p);
}

/* Two workers' batches of one tenant (different members): the tenant's
 * prepaid row is locked only by the step before commit, so B applies and
 * commits while A is still in its batch's writes. Were the row updated in
 * apply, B would wait for A's commit: lock_timeout makes that a failure. */
static void test_prepaid_row_locked_only_before_commit(void **state)
{
    char tenant[64], m1[64], m2[64];
    unique_ids(tenant, m1);
    uuid7_generate(m2);
    static struct ledger_ctx la, lb;
    ledger_init(&la);
    ledger_init(&lb);
    PGconn *pa = ledger_pg(), *pb = ledger_pg(), *observer = test_pg();
    char err[512];
    struct one_batch first, a, b;
    batch_of_topup(&first, tenant, m1, 1000); /* the tenant's row exists */
    assert_int_equal(attempt(&la, pa, &first, err, sizeof(err)), 0);
    commit(pa);
    batch_of_topup(&a, tenant, m1, 2000);
    batch_of_topup(&b, tenant, m2, 3000);
    PQclear(db_query(pb, "SET lock_timeout = '2s'", 0, NULL, err, sizeof(err), NULL));

    ledger_begin_batch(&la); /* A: in its batch, before its last step */
    assert_int_equal(db_begin(pa, err, sizeof(err)), 0);
    assert_int_equal(ledger_apply_batch(&la, pa, &a.b, err, sizeof(err)), 0);
    int rc = attempt(&lb, pb, &b, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "B: %s\n", err);
    assert_int_equal(rc, 0);
    commit(pb);
    assert_int_equal(ledger_before_commit(&la, pa, &a.b, err, sizeof(err)), 0);
    commit(pa);
    assert_int_equal(prepaid_of(observer, tenant), 6000);

    batch_free(&first);
    batch_free(&a);
    batch_free(&b);
    PQfinish(pa);
    PQfinish(pb);
    PQfinish(observer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_write_from_a_stale_balance_fails),
        cmocka_unit_test(test_second_insert_of_a_new_balance_fails),
        cmocka_unit_test(test_retried_batch_counts_once),
        cmocka_unit_test(test_prepaid_row_locked_only_before_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
