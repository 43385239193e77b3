/* A consumer service's /readyz means it will apply what it is sent now:
 * its consumer holds its partitions, has fetched from each and is within
 * PIPELINE_READY_LAG_MAX messages of the ends, all it fetched applied
 * (libs/service/pipeline.h, positioned). Before, it answered ready at the
 * assignment, while the first fetch and any backlog still stood between a
 * new command and its verdict, and the first top-ups after `make run` or
 * a restart answered 202 pending.
 *
 * The test leaves a backlog for the ledger while it is stopped (commands
 * of the same member, so on the same partition, ahead of the probe) and
 * restarts it (runtime.sh start-service waits for /readyz). Ready must
 * mean positioned: at that moment all but PIPELINE_READY_LAG_MAX of the
 * backlog has a verdict (the count only grows after, so reading it just
 * after is a fair check; a ledger ready at its assignment has applied
 * none or a first batch). Then the first top-up is applied, after the
 * whole backlog, in order. It waits for its verdict (Prefer: wait=30)
 * rather than the default 2 s: on a loaded machine under the sanitizers
 * the last batch of the backlog and the top-up can take longer than
 * that, which says nothing about ready. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/api_client.h"
#include "service/pipeline.h"

#define BACKLOG_LINES  3000 /* several of the ledger's batches (500) */
#define LINE_MAX_BYTES 256
#define TOPUP_WAIT     "Prefer: wait=30" /* its verdict, however slow the machine */

/* One batch of top-ups for member, answered at once (202 each). */
static void leave_backlog(const char *member, const char *run)
{
    size_t cap = (size_t)BACKLOG_LINES * LINE_MAX_BYTES, len = 0;
    char *body = malloc(cap);
    assert_non_null(body);
    for (int i = 0; i < BACKLOG_LINES; i++) {
        int n = snprintf(body + len, cap - len,
                         "{\"type\":\"topup\",\"member_id\":\"%s\",\"idempotency_key\":"
                         "\"ready-%s-%d\",\"amount\":100,\"branch_id\":\"hq\","
                         "\"payment_method\":\"cash\"}\n",
                         member, run, i);
        assert_true(n > 0 && (size_t)n < cap - len);
        len += (size_t)n;
    }
    struct api_response r = api_call(
        "POST", "/v1/events:batch", body, NULL,
        (const char *const[]){"Content-Type: application/x-ndjson", "Prefer: wait=0", NULL});
    free(body);
    assert_int_equal(r.status, 200);
    json_t *first = json_array_get(json_object_get(r.body, "results"), 0);
    assert_int_equal(json_int_at(first, "status"), 202);
    api_response_free(&r);
}

static void test_first_topup_after_ready_is_applied(void **state)
{
    char member[64], path[160], run[32];
    snprintf(run, sizeof(run), "%d", (int)getpid());
    test_register_member(member);
    assert_int_equal(runtime_do("stop-service ledger"), 0);
    leave_backlog(member, run);
    assert_int_equal(runtime_do("start-service ledger"), 0); /* returns once /readyz says ready */

    /* ready meant positioned: the backlog applied but for the last few */
    PGconn *pg = test_pg();
    const char *p[1] = {member};
    int64_t decided = test_pg_int(
        pg, "SELECT count(*) FROM ledger.read_commands WHERE member_id = $1 AND status = 'posted'",
        1, p);
    PQfinish(pg);
    if (decided < BACKLOG_LINES - PIPELINE_READY_LAG_MAX)
        fail_msg("ready with %lld of %d backlog commands applied", (long long)decided,
                 BACKLOG_LINES);

    snprintf(path, sizeof(path), "/v1/members/%s/topups", member);
    struct api_response r =
        api_call("POST", path, "{\"amount\":1000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
                 NULL, (const char *const[]){TOPUP_WAIT, NULL});
    if (r.status != 201)
        fail_msg("first top-up after ready: %ld %s", r.status, r.raw);
    /* the backlog was applied before it, in order */
    assert_int_equal(json_int_at(r.body, "balances.stored_value"), BACKLOG_LINES * 100 + 1000);
    api_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_topup_after_ready_is_applied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
