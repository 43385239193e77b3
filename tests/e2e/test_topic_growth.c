/* Growing the services' topics under load with tessera-topics, on the
 * runtime's real broker: from the runtime's 6 partitions to 8 while
 * top-ups keep coming. Producers, consumer groups and ingest's verdict
 * tail learn of the new partitions within TESSERA_KAFKA_METADATA_REFRESH_MS:
 * once verdicts land on a new partition of ledger-events, every top-up is
 * answered 201 at once (a tail still on the first 6 partitions would miss
 * those verdicts and answer 202 after its wait), and every top-up is
 * applied exactly once. Runs after the tests that expect 6 partitions
 * (test_topics) and leaves the runtime's topics at 8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "../support/api_client.h"
#include "../support/topic_reader.h"

#define MEMBERS            24
#define PARTITIONS_BEFORE  6
#define PARTITIONS_AFTER   8
#define ROUNDS_MAX         200
#define SWITCH_DEADLINE_MS 90000
#define APPLY_DEADLINE_MS  60000
#define TOPUP_AMOUNT       100

static struct {
    char members[MEMBERS][64];
    char run[32];
    int rounds;
    long status[ROUNDS_MAX][MEMBERS];
} g;

static long topup(int round, int m)
{
    char path[256], key[96];
    snprintf(path, sizeof(path), "/v1/members/%s/topups", g.members[m]);
    snprintf(key, sizeof(key), "grow-%s-%d-%d", g.run, round, m);
    struct api_response r =
        api_post(path, "{\"amount\":100,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", key);
    long status = r.status;
    api_response_free(&r);
    return status;
}

/* One top-up per member; returns how many were answered 201. */
static int send_round(void)
{
    assert_true(g.rounds < ROUNDS_MAX);
    int applied = 0;
    for (int m = 0; m < MEMBERS; m++) {
        g.status[g.rounds][m] = topup(g.rounds, m);
        applied += g.status[g.rounds][m] == 201;
    }
    g.rounds++;
    return applied;
}

static int run_topics(int partitions)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "build/bin/tessera-topics --bootstrap %s --partitions %d --replication-factor 1 "
             ">/dev/null 2>&1",
             topic_bootstrap(), partitions);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void count_new(void *ctx, const rd_kafka_message_t *m)
{
    if (m->partition >= PARTITIONS_BEFORE)
        (*(long *)ctx)++;
}

/* Messages on the new partitions of a topic. */
static long on_new_partitions(const char *topic)
{
    long n = 0;
    assert_true(topic_read_all(topic, count_new, &n) >= 0);
    return n;
}

static int64_t stored_value(const char *member)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/members/%s", member);
    struct api_response r = api_get(path);
    int64_t v = r.status == 200 ? json_int_at(r.body, "balances.stored_value") : -1;
    api_response_free(&r);
    return v;
}

static bool all_applied(void *arg)
{
    for (int m = 0; m < MEMBERS; m++)
        if (stored_value(g.members[m]) != (int64_t)g.rounds * TOPUP_AMOUNT)
            return false;
    return true;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_grow_partitions_under_load(void **state)
{
    snprintf(g.run, sizeof(g.run), "%ld-%ld", (long)getpid(), (long)time(NULL));
    for (int m = 0; m < MEMBERS; m++)
        test_register_member(g.members[m]);
    assert_int_equal(send_round(), MEMBERS);
    assert_int_equal(run_topics(PARTITIONS_AFTER), 0);

    /* Keep the load on until verdicts use the new partitions; from then
     * on a round is answered 201 throughout. */
    int64_t deadline = now_ms() + SWITCH_DEADLINE_MS;
    while (on_new_partitions("ledger-events") == 0 || on_new_partitions("ledger-commands") == 0) {
        assert_true(now_ms() < deadline);
        send_round();
    }
    int applied = send_round();
    if (applied != MEMBERS)
        for (int m = 0; m < MEMBERS; m++)
            fprintf(stderr, "# member %d: %ld\n", m, g.status[g.rounds - 1][m]);
    assert_int_equal(applied, MEMBERS);

    /* Every top-up accepted (202 too) is applied once; none was refused. */
    for (int r = 0; r < g.rounds; r++)
        for (int m = 0; m < MEMBERS; m++)
            assert_true(g.status[r][m] == 201 || g.status[r][m] == 202);
    assert_true(poll_until(all_applied, NULL, APPLY_DEADLINE_MS));
    fprintf(stderr, "# %d rounds until the switch\n", g.rounds);

    /* Shrinking back is refused and changes nothing. */
    assert_int_equal(run_topics(PARTITIONS_BEFORE), 3);
    assert_int_equal(runtime_do("audit"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_partitions_under_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
