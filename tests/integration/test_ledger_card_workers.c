/* Two ledger workers selling cards at the same time (issue 10, item 7):
 * a card sale planned its card in one `static struct card`, shared by
 * every worker of the process (TESSERA_LEDGER_WORKERS > 1), so two sales
 * deciding at once could write one tenant's card in place of another's.
 *
 * Two threads, each a worker of its own (its ledger_ctx, its connection,
 * its tenant), apply batches of card sales through ledger_apply_batch at
 * the same time; afterwards every sale's card (its id is the command id)
 * must exist, once, with the member and tenant of its own command. Under
 * `make tsan` this binary is built with ThreadSanitizer, which reports
 * the shared write whenever the two decide loops overlap (and the run
 * fails on the report); the uninstrumented run checks the cards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/ledger/ledger.h"
#include "../support/api_client.h"
#include "db/db.h"
#include "events/card_types.h"
#include "events/codec.h"
#include "ids/uuid7.h"

enum {
    ROUNDS = 6,
    SALES_PER_BATCH = 300,
};

struct worker {
    char tenant[64];
    char product[64];
    struct ledger_ctx l;
    PGconn *pg;
    int failures;
    char err[512];
};

static PGconn *ledger_pg(void)
{
    char err[256];
    PGconn *pg = db_connect(getenv("TESSERA_PG_DSN"), "ledger", "test-card-workers", 60000, err,
                            sizeof(err));
    if (!pg)
        fprintf(stderr, "connect: %s\n", err);
    assert_non_null(pg);
    return pg;
}

/* One encoded envelope as the pipeline hands it to apply. */
static void message_of(Envelope *env, rd_kafka_message_t *m)
{
    size_t len = 0;
    uint8_t *payload = envelope_encode(env, &len);
    assert_non_null(payload);
    *m = (rd_kafka_message_t){.payload = payload, .len = len};
}

static void define_product(struct worker *w, rd_kafka_message_t *m)
{
    struct event_meta meta = {
        .tenant_id = w->tenant, .branch_id = "hq", .actor_kind = "test", .actor_id = "workers"};
    Envelope env;
    Actor actor;
    DefineProduct d;
    char command_id[UUID_STR_SIZE];
    uuid7_generate(command_id);
    envelope_init(&env, &actor, &meta);
    tessera__cards__v1__define_product__init(&d);
    d.command_id = command_id;
    d.product_id = w->product;
    d.kind = "count";
    d.name = "10 classes";
    d.price = 5000;
    d.uses = 10;
    d.validity_days = 90;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_DEFINE_PRODUCT;
    env.define_product = &d;
    message_of(&env, m);
}

static void sale(struct worker *w, rd_kafka_message_t *m)
{
    char member[UUID_STR_SIZE], command_id[UUID_STR_SIZE];
    uuid7_generate(member);
    uuid7_generate(command_id);
    struct event_meta meta = {.tenant_id = w->tenant,
                              .branch_id = "hq",
                              .member_id = member,
                              .actor_kind = "test",
                              .actor_id = "workers"};
    Envelope env;
    Actor actor;
    IssueCard ic;
    envelope_init(&env, &actor, &meta);
    tessera__cards__v1__issue_card__init(&ic);
    ic.command_id = command_id;
    ic.card_id = command_id;
    ic.product_id = w->product;
    ic.payment_method = "cash";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_CARD;
    env.issue_card = &ic;
    message_of(&env, m);
}

/* Applies and commits one batch of n messages (freed here); counts a
 * failure in w. */
static void apply_commit(struct worker *w, rd_kafka_message_t *msgs, size_t n)
{
    rd_kafka_message_t **ptrs = calloc(n, sizeof(*ptrs));
    const char **poison = calloc(n, sizeof(*poison));
    assert_true(ptrs && poison);
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &msgs[i];
    struct pipeline_batch b = {.msgs = ptrs, .count = n, .poison = poison};
    ledger_begin_batch(&w->l);
    if (db_begin(w->pg, w->err, sizeof(w->err)) != 0 ||
        ledger_apply_batch(&w->l, w->pg, &b, w->err, sizeof(w->err)) != 0 ||
        ledger_before_commit(&w->l, w->pg, &b, w->err, sizeof(w->err)) != 0 ||
        db_commit(w->pg, w->err, sizeof(w->err)) != 0) {
        db_rollback(w->pg);
        w->failures++;
    }
    for (size_t i = 0; i < b.out_count; i++) {
        free((char *)b.out[i].topic);
        free((char *)b.out[i].key);
        free((uint8_t *)b.out[i].payload);
    }
    free(b.out);
    for (size_t i = 0; i < n; i++)
        free(msgs[i].payload);
    free(ptrs);
    free(poison);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    static __thread rd_kafka_message_t msgs[SALES_PER_BATCH];
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < SALES_PER_BATCH; i++)
            sale(w, &msgs[i]);
        apply_commit(w, msgs, SALES_PER_BATCH);
    }
    return NULL;
}

static void worker_init(struct worker *w, const char *name)
{
    char id[UUID_STR_SIZE];
    uuid7_generate(id);
    memset(w, 0, sizeof(*w));
    snprintf(w->tenant, sizeof(w->tenant), "%s-%.12s", name, id + 24);
    snprintf(w->product, sizeof(w->product), "classes-%s", name);
    store_rows_init(&w->l.rows);
    w->pg = ledger_pg();
    rd_kafka_message_t m;
    define_product(w, &m);
    apply_commit(w, &m, 1);
    assert_int_equal(w->failures, 0);
}

static void test_concurrent_sales_keep_their_cards(void **state)
{
    static struct worker a, b;
    worker_init(&a, "workers-a");
    worker_init(&b, "workers-b");
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, worker_main, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, worker_main, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (a.failures || b.failures)
        fail_msg("batches failed: %s / %s", a.err, b.err);

    PGconn *pg = test_pg();
    const char *p[2] = {a.tenant, b.tenant};
    /* Every sale posted, and its card is its member's, in its tenant. */
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.commands c JOIN ledger.cards k "
                                 "ON k.tenant_id = c.tenant_id AND k.card_id = c.command_id "
                                 "AND k.member_id = c.member_id "
                                 "WHERE c.tenant_id IN ($1, $2) AND c.command_type = 'card_issue' "
                                 "AND c.status = 'posted'",
                                 2, p),
                     2 * ROUNDS * SALES_PER_BATCH);
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.cards WHERE tenant_id IN ($1, $2)", 2, p),
        2 * ROUNDS * SALES_PER_BATCH);
    PQfinish(pg);
    PQfinish(a.pg);
    PQfinish(b.pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_sales_keep_their_cards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
