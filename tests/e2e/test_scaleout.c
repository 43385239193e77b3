/* Scale-out and rolling restarts under load: two ledger instances share
 * the command partitions; one is stopped (SIGTERM) and restarted and the
 * other SIGKILLed mid-load; then each consumer service is restarted in
 * turn while load flows. Afterwards every command has exactly one answer
 * and one verdict, the journal balances, and balances, tiering's spend and
 * campaign's tallies agree with what the clients were told. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"
#include "../support/ops_client.h"

#define THREADS             4
#define MEMBERS_PER_THREAD  2
#define REQUESTS_PER_THREAD 60
#define TOPUP_AMOUNT        1000 /* under the first bonus step: no bonus */
#define PURCHASE_AMOUNT     700
#define DEADLINE_MS         60000

struct member_book {
    char id[64];
    int64_t expected_sv;      /* from the answers */
    int64_t purchases, spend; /* purchases answered 201 and what they charged */
    int commands;             /* requests sent */
    int postings;             /* answered 201 */
};

struct worker {
    int index;
    int run; /* distinguishes the keys of the two tests */
    struct member_book members[MEMBERS_PER_THREAD];
    int bad_answers;
    char first_bad[160];
};

static atomic_int requests_done;

/* One request with a fresh Idempotency-Key, waiting up to 30 s for the
 * verdict (a rebalance after SIGKILL takes a session timeout). */
static struct api_response send_command(struct worker *w, int i, const char *path, const char *body)
{
    char key[160];
    snprintf(key, sizeof(key), "Idempotency-Key: scale-%d-%d-%d-%s", w->run, w->index, i,
             w->members[i % MEMBERS_PER_THREAD].id);
    /* Under curl's 30 s timeout: past 20 s ingest answers 202. */
    const char *headers[] = {"Prefer: wait=20", key, NULL};
    return api_call("POST", path, body, NULL, headers);
}

struct operation {
    char path[128];
    long status;  /* the verdict's HTTP status once decided */
    json_t *body; /* its body (owned) */
};

/* GET /v1/operations/{id}: true once the ledger decided. */
static bool operation_decided(void *arg)
{
    struct operation *op = arg;
    struct api_response r = api_get(op->path);
    const char *state = r.status == 200 ? json_str_at(r.body, "status") : "";
    bool decided = strcmp(state, "posted") == 0 || strcmp(state, "rejected") == 0;
    if (decided) {
        op->status = (long)json_int_at(r.body, "http_status");
        op->body = json_incref(json_object_get(r.body, "result"));
    }
    api_response_free(&r);
    return decided;
}

/* A 202 (the verdict took longer than the wait, e.g. across a
 * rebalance) is followed to its verdict, as a POS would. */
static void follow_accepted(struct api_response *r)
{
    if (r->status != 202 || !r->body)
        return;
    struct operation op = {.status = 0};
    snprintf(op.path, sizeof(op.path), "/v1/operations/%s", json_str_at(r->body, "operation_id"));
    if (!poll_until(operation_decided, &op, DEADLINE_MS))
        return; /* stays 202: counted as a bad answer */
    json_decref(r->body);
    r->body = op.body;
    r->status = op.status;
}

static void book_answer(struct worker *w, struct member_book *m, bool purchase,
                        struct api_response *r)
{
    m->commands++;
    follow_accepted(r);
    bool refused = purchase && r->status == 409 && r->body &&
                   strcmp(json_str_at(r->body, "code"), "insufficient_balance") == 0;
    if (r->status != 201 && !refused) {
        if (w->bad_answers++ == 0)
            snprintf(w->first_bad, sizeof(w->first_bad), "status %ld: %.120s", r->status,
                     r->raw ? r->raw : "");
        return;
    }
    if (refused)
        return;
    m->postings++;
    if (purchase) {
        m->purchases++;
        m->spend += json_int_at(r->body, "charged");
        m->expected_sv -= json_int_at(r->body, "charged");
    } else {
        m->expected_sv += json_int_at(r->body, "amount") + json_int_at(r->body, "bonus");
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char path[160], body[160];
    for (int i = 0; i < REQUESTS_PER_THREAD; i++) {
        struct member_book *m = &w->members[i % MEMBERS_PER_THREAD];
        bool purchase = i % 3 == 2; /* two top-ups, then a purchase */
        snprintf(path, sizeof(path), "/v1/members/%s/%s", m->id, purchase ? "purchases" : "topups");
        if (purchase)
            snprintf(
                body, sizeof(body),
                "{\"amount\":%d,\"branch_id\":\"hq\",\"payment\":{\"method\":\"stored_value\"}}",
                PURCHASE_AMOUNT);
        else
            snprintf(body, sizeof(body),
                     "{\"amount\":%d,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
                     TOPUP_AMOUNT);
        struct api_response r = send_command(w, i, path, body);
        book_answer(w, m, purchase, &r);
        api_response_free(&r);
        atomic_fetch_add(&requests_done, 1);
    }
    return NULL;
}

static bool progress_reached(void *arg)
{
    return atomic_load(&requests_done) >= *(int *)arg;
}

static void wait_progress(int requests)
{
    if (!poll_until(progress_reached, &requests, DEADLINE_MS))
        fail_msg("load stalled at %d requests", atomic_load(&requests_done));
}

static void start_load(struct worker *w, pthread_t *threads, int run)
{
    atomic_store(&requests_done, 0);
    for (int t = 0; t < THREADS; t++) {
        memset(&w[t], 0, sizeof(w[t]));
        w[t].index = t;
        w[t].run = run;
        for (int m = 0; m < MEMBERS_PER_THREAD; m++)
            test_register_member(w[t].members[m].id);
        assert_int_equal(pthread_create(&threads[t], NULL, worker_main, &w[t]), 0);
    }
}

static void join_load(struct worker *w, pthread_t *threads)
{
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    for (int t = 0; t < THREADS; t++)
        if (w[t].bad_answers)
            fail_msg("worker %d: %d unexpected answers (first: %s)", t, w[t].bad_answers,
                     w[t].first_bad);
}

/* The points a member's purchases earned (the campaign service sends one
 * EarnPoints, "earn:<purchase>", per purchase; 7 points for 7 yuan) have
 * all been applied. */
struct earned_wait {
    PGconn *pg;
    const struct member_book *m;
};

static bool earnings_applied(void *arg)
{
    struct earned_wait *e = arg;
    const char *p[1] = {e->m->id};
    return test_pg_int(e->pg,
                       "SELECT count(*) FROM ledger.commands WHERE member_id = $1 "
                       "AND command_id LIKE 'earn:%'",
                       1, p) >= e->m->purchases;
}

/* Nothing lost, nothing doubled, per member and over the whole journal. */
static void audit_ledger(PGconn *pg, const struct worker *w)
{
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < MEMBERS_PER_THREAD; i++) {
            const struct member_book *m = &w[t].members[i];
            const char *p[1] = {m->id};
            struct earned_wait ew = {pg, m};
            assert_true(poll_until(earnings_applied, &ew, DEADLINE_MS));
            assert_int_equal(test_pg_int(pg,
                                         "SELECT count(DISTINCT command_id) FROM ledger.commands "
                                         "WHERE member_id = $1 AND command_id NOT LIKE 'earn:%'",
                                         1, p),
                             m->commands);
            assert_int_equal(test_pg_int(pg,
                                         "SELECT count(DISTINCT command_id) FROM ledger.commands "
                                         "WHERE member_id = $1 AND command_id LIKE 'earn:%'",
                                         1, p),
                             m->purchases);
            assert_int_equal(test_pg_int(pg,
                                         "SELECT count(DISTINCT posting_id) FROM ledger.journal "
                                         "WHERE member_id = $1 AND command_id NOT LIKE 'earn:%'",
                                         1, p),
                             m->postings);
            assert_int_equal(test_pg_int(pg,
                                         "SELECT points_pending FROM ledger.balances "
                                         "WHERE member_id = $1",
                                         1, p),
                             PURCHASE_AMOUNT / 100 * m->purchases);
            int64_t journal = test_pg_int(
                pg,
                "SELECT coalesce(sum(amount), 0) FROM ledger.journal WHERE member_id = $1 "
                "AND asset IN ('sv_principal', 'sv_bonus')",
                1, p);
            int64_t balance = test_pg_int(
                pg, "SELECT sv_principal + sv_bonus FROM ledger.balances WHERE member_id = $1", 1,
                p);
            assert_int_equal(journal, m->expected_sv);
            assert_int_equal(balance, m->expected_sv);
        }
    }
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM (SELECT posting_id, asset FROM "
                                 "ledger.journal GROUP BY 1, 2 HAVING sum(amount) <> 0) x",
                                 0, NULL),
                     0);
    /* And the ledger's own audit over everything (balances = journal,
     * verdicts, lots, cache). */
    assert_int_equal(runtime_do("audit"), 0);
}

struct assigned {
    int port;
};

static bool has_partitions(void *arg)
{
    struct assigned *a = arg;
    return ops_metric_at(a->port, "tessera_consumer_assigned_partitions", NULL) > 0;
}

/* Two ledger instances split the partitions; instance 1 is stopped with
 * SIGTERM and restarted, then instance 2 is SIGKILLed, all under load. */
static void test_two_ledgers_stop_and_kill_mid_load(void **state)
{
    assert_int_equal(runtime_do("start-instance ledger 2"), 0);
    struct assigned first = {ops_admin_port("ledger")}, second = {ops_admin_port("ledger") + 10};
    assert_true(poll_until(has_partitions, &second, DEADLINE_MS));
    assert_true(poll_until(has_partitions, &first, DEADLINE_MS));

    static struct worker w[THREADS];
    pthread_t threads[THREADS];
    start_load(w, threads, 1);
    wait_progress(THREADS * REQUESTS_PER_THREAD / 4);
    assert_int_equal(runtime_do("stop-service ledger"), 0);
    wait_progress(THREADS * REQUESTS_PER_THREAD / 3);
    assert_int_equal(runtime_do("start-service ledger"), 0);
    wait_progress(THREADS * REQUESTS_PER_THREAD / 2);
    assert_int_equal(runtime_do("kill-instance ledger 2"), 0);
    join_load(w, threads);

    PGconn *pg = test_pg();
    audit_ledger(pg, w);
    PQfinish(pg);
}

struct tally_wait {
    PGconn *pg;
    int64_t want;
};

static int64_t purchases_tallied(PGconn *pg)
{
    return test_pg_int(pg,
                       "SELECT coalesce(sum(events), 0) FROM campaign.event_tally WHERE "
                       "tenant_id = 'demo' AND event_type = 'tessera.ledger.v1.PurchaseRecorded'",
                       0, NULL);
}

static bool tally_reached(void *arg)
{
    struct tally_wait *t = arg;
    return purchases_tallied(t->pg) >= t->want;
}

struct spend_wait {
    PGconn *pg;
    const struct member_book *m;
};

static bool spend_reached(void *arg)
{
    struct spend_wait *s = arg;
    const char *p[1] = {s->m->id};
    return test_pg_int(s->pg,
                       "SELECT coalesce(sum(purchases), 0) FROM tiering.member_spend "
                       "WHERE member_id = $1",
                       1, p) >= s->m->purchases;
}

/* Every consumer service restarted in turn (SIGTERM, start, ready) under
 * load: the ledger audit holds, tiering counted each purchase once, the
 * campaign earned points for each purchase once, and its tally (a count
 * of deliveries: the ledger relays facts at least once, so a restart may
 * deliver one twice) saw every PurchaseRecorded. */
static void test_rolling_restart_of_every_consumer(void **state)
{
    PGconn *pg = test_pg();
    int64_t tally_before = purchases_tallied(pg);
    static struct worker w[THREADS];
    pthread_t threads[THREADS];
    start_load(w, threads, 2);
    static const char *const consumers[] = {"ledger", "tiering", "campaign", "notification"};
    char cmd[64];
    for (int i = 0; i < 4; i++) {
        wait_progress(THREADS * REQUESTS_PER_THREAD * (i + 1) / 6);
        snprintf(cmd, sizeof(cmd), "stop-service %s", consumers[i]);
        assert_int_equal(runtime_do(cmd), 0);
        snprintf(cmd, sizeof(cmd), "start-service %s", consumers[i]);
        assert_int_equal(runtime_do(cmd), 0);
    }
    join_load(w, threads);
    audit_ledger(pg, w);

    int64_t purchases = 0;
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < MEMBERS_PER_THREAD; i++) {
            const struct member_book *m = &w[t].members[i];
            struct spend_wait s = {pg, m};
            assert_true(poll_until(spend_reached, &s, DEADLINE_MS));
            const char *p[1] = {m->id};
            assert_int_equal(test_pg_int(pg,
                                         "SELECT coalesce(sum(purchases), 0) FROM "
                                         "tiering.member_spend WHERE member_id = $1",
                                         1, p),
                             m->purchases);
            assert_int_equal(test_pg_int(pg,
                                         "SELECT coalesce(sum(lifetime_spend), 0) FROM "
                                         "tiering.member_spend WHERE member_id = $1",
                                         1, p),
                             m->spend);
            purchases += m->purchases;
        }
    }
    struct tally_wait tw = {pg, tally_before + purchases};
    assert_true(poll_until(tally_reached, &tw, DEADLINE_MS));
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < MEMBERS_PER_THREAD; i++) {
            const struct member_book *m = &w[t].members[i];
            const char *p[1] = {m->id};
            assert_int_equal(test_pg_int(pg,
                                         "SELECT count(*) FROM campaign.earnings "
                                         "WHERE member_id = $1",
                                         1, p),
                             m->purchases);
        }
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_ledgers_stop_and_kill_mid_load),
        cmocka_unit_test(test_rolling_restart_of_every_consumer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
