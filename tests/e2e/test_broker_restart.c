/* The Kafka broker restarted under load, on the same data: first stopped
 * cleanly (SIGTERM), then separately killed (SIGKILL). The services keep
 * running and reconnect by themselves; every top-up the API accepted
 * (201, or 202 "accepted, not yet applied") is applied exactly once, a
 * request that was not accepted is retried by the client with the same
 * Idempotency-Key, and the ledger audit holds afterwards. */
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

#define MEMBERS           6
#define ROUNDS_MAX        400
#define ROUNDS_BEFORE     3
#define ROUNDS_AFTER      3 /* rounds sent once the broker is back */
#define TOPUP_AMOUNT      100
#define RETRY_DEADLINE_MS 120000
#define APPLY_DEADLINE_MS 120000

struct load {
    char members[MEMBERS][64];
    char run[32];
    const char *phase;
    int rounds;
    long status[ROUNDS_MAX][MEMBERS];
};

static void idem_key(const struct load *l, int round, int m, char *out, size_t len)
{
    snprintf(out, len, "brk-%s-%s-%d-%d", l->run, l->phase, round, m);
}

static long topup(const struct load *l, int round, int m)
{
    char path[256], key[128];
    snprintf(path, sizeof(path), "/v1/members/%s/topups", l->members[m]);
    idem_key(l, round, m, key, sizeof(key));
    struct api_response r =
        api_post(path, "{\"amount\":100,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", key);
    long status = r.status;
    api_response_free(&r);
    return status;
}

static bool accepted(long status)
{
    return status == 201 || status == 202;
}

static void send_round(struct load *l)
{
    assert_true(l->rounds < ROUNDS_MAX);
    for (int m = 0; m < MEMBERS; m++)
        l->status[l->rounds][m] = topup(l, l->rounds, m);
    l->rounds++;
}

/* Runs `runtime.sh <what>` in a child while rounds keep going; returns
 * when it has ended (asserting success). */
static void rounds_during(struct load *l, const char *what)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *rt = getenv("TESSERA_RUNTIME");
        execl(rt, rt, what, (char *)NULL);
        _exit(127);
    }
    int wstatus = 0;
    do
        send_round(l);
    while (waitpid(pid, &wstatus, WNOHANG) == 0);
    assert_true(WIFEXITED(wstatus));
    assert_int_equal(WEXITSTATUS(wstatus), 0);
}

/* Retries every request not accepted, with its own key, until accepted. */
static void retry_unaccepted(struct load *l)
{
    struct timespec step = {0, 100 * 1000 * 1000};
    for (int round = 0; round < l->rounds; round++)
        for (int m = 0; m < MEMBERS; m++) {
            int waited = 0;
            while (!accepted(l->status[round][m])) {
                assert_true(waited < RETRY_DEADLINE_MS);
                nanosleep(&step, NULL);
                waited += 100;
                l->status[round][m] = topup(l, round, m);
            }
        }
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

struct expect {
    const struct load *l;
    int64_t want;
};

static bool all_applied(void *arg)
{
    const struct expect *e = arg;
    for (int m = 0; m < MEMBERS; m++)
        if (stored_value(e->l->members[m]) != e->want)
            return false;
    return true;
}

/* One restart by `how` (stop-kafka: SIGTERM, kill-kafka: SIGKILL). */
static void restart_under_load(const char *how)
{
    static struct load l;
    memset(&l, 0, sizeof(l));
    snprintf(l.run, sizeof(l.run), "%ld-%ld", (long)getpid(), (long)time(NULL));
    l.phase = how;
    for (int m = 0; m < MEMBERS; m++)
        test_register_member(l.members[m]);
    for (int i = 0; i < ROUNDS_BEFORE; i++)
        send_round(&l);
    rounds_during(&l, how);
    int down_rounds = l.rounds;
    rounds_during(&l, "start-kafka");
    for (int i = 0; i < ROUNDS_AFTER; i++)
        send_round(&l);
    int not_accepted = 0;
    for (int round = 0; round < l.rounds; round++)
        for (int m = 0; m < MEMBERS; m++)
            not_accepted += !accepted(l.status[round][m]);
    fprintf(stderr, "# %s: %d rounds (%d before the start), %d requests not accepted at first\n",
            how, l.rounds, down_rounds, not_accepted);
    retry_unaccepted(&l);

    /* Each top-up once: no more (a duplicate), no less (a loss). */
    struct expect e = {&l, (int64_t)l.rounds * TOPUP_AMOUNT};
    bool ok = poll_until(all_applied, &e, APPLY_DEADLINE_MS);
    if (!ok)
        for (int m = 0; m < MEMBERS; m++)
            fprintf(stderr, "# member %d: stored_value %lld, want %lld\n", m,
                    (long long)stored_value(l.members[m]), (long long)e.want);
    assert_true(ok);
    assert_int_equal(runtime_do("audit"), 0);
}

static void test_broker_sigterm_under_load(void **state)
{
    restart_under_load("stop-kafka");
}

static void test_broker_sigkill_under_load(void **state)
{
    restart_under_load("kill-kafka");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broker_sigterm_under_load),
        cmocka_unit_test(test_broker_sigkill_under_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
