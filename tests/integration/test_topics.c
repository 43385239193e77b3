/* tessera-topics against the runtime's Apache Kafka broker and its KRaft
 * controller: planning, the up-to-date case, --dry-run, the refusal to
 * shrink, and creating and growing topics of a prefix of this run's own
 * (so the services' topics keep their 6 partitions). Growing the services'
 * own topics under load is tests/e2e/test_topic_growth.c. */
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

#define OUTPUT_MAX 16384

struct run {
    int status;
    char out[OUTPUT_MAX]; /* stdout and stderr */
};

static const char *bootstrap(void)
{
    static char addr[256];
    char path[512];
    snprintf(path, sizeof(path), "%s/kafka.bootstrap", getenv("TESSERA_LOCAL_DIR"));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(addr, sizeof(addr), f));
    fclose(f);
    addr[strcspn(addr, "\n")] = '\0';
    return addr;
}

static void run_topics(struct run *r, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "build/bin/tessera-topics --bootstrap %s --timeout-ms 1500 %s 2>&1",
             bootstrap(), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(r->out, 1, sizeof(r->out) - 1, p);
    r->out[n] = '\0';
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    r->status = WEXITSTATUS(st);
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* The runtime's broker has 6 partitions per topic (TESSERA_LOCAL_PARTITIONS). */
static void test_up_to_date_changes_nothing(void **state)
{
    struct run r;
    run_topics(&r, "--partitions 6 --replication-factor 1");
    assert_int_equal(r.status, 0);
    assert_int_equal(count_of(r.out, "6 partitions, want 6: up to date"), 7);
}

static void test_shrink_is_refused_with_a_clear_message(void **state)
{
    struct run r;
    run_topics(&r, "--partitions 3 --replication-factor 1");
    assert_int_equal(r.status, 3);
    assert_non_null(strstr(r.out, "ledger-commands has 6 partitions and 3 were asked for: "
                                  "Kafka cannot remove partitions"));
    /* Nothing else was attempted. */
    assert_null(strstr(r.out, "done"));
    assert_null(strstr(r.out, "failed"));
}

static void test_dry_run_plans_growth_without_requests(void **state)
{
    struct run r;
    run_topics(&r, "--partitions 8 --replication-factor 1 --dry-run");
    assert_int_equal(r.status, 0);
    assert_int_equal(count_of(r.out, "6 partitions, want 8: add partitions"), 7);
    run_topics(&r, "--partitions 6 --replication-factor 1");
    assert_int_equal(count_of(r.out, "up to date"), 7); /* still 6 */
}

/* Reruns args until every topic reports want (the broker's metadata
 * follows the controller a moment after a request), up to a deadline. */
static void run_until(struct run *r, const char *args, const char *want, int count)
{
    for (int tries = 0; tries < 50; tries++) {
        run_topics(r, args);
        if (r->status == 0 && count_of(r->out, want) == count)
            return;
        struct timespec step = {0, 200 * 1000 * 1000};
        nanosleep(&step, NULL);
    }
    fail_msg("never %d x '%s'; last output:\n%s", count, want, r->out);
}

/* Creates 7 topics of 2 partitions, grows them to 3, refuses 2 again. */
static void test_create_grow_and_refuse_shrink_on_the_controller(void **state)
{
    char prefix[64], args[256], want[128];
    snprintf(prefix, sizeof(prefix), "opstest-%ld-", (long)getpid());
    struct run r;

    snprintf(args, sizeof(args), "--prefix %s --partitions 2 --replication-factor 1", prefix);
    run_topics(&r, args);
    assert_int_equal(r.status, 0);
    snprintf(want, sizeof(want), "%smember-events: missing, want 2: create", prefix);
    assert_non_null(strstr(r.out, want));
    assert_int_equal(count_of(r.out, ": done"), 7);
    run_until(&r, args, "2 partitions, want 2: up to date", 7);

    snprintf(args, sizeof(args), "--prefix %s --partitions 3 --replication-factor 1", prefix);
    run_topics(&r, args);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_of(r.out, "2 partitions, want 3: add partitions"), 7);
    assert_int_equal(count_of(r.out, ": done"), 7);
    run_until(&r, args, "3 partitions, want 3: up to date", 7);

    snprintf(args, sizeof(args), "--prefix %s --partitions 2 --replication-factor 1", prefix);
    run_topics(&r, args);
    assert_int_equal(r.status, 3);
    assert_int_equal(count_of(r.out, "Kafka cannot remove partitions"), 7);
    /* Nothing changed: still 3 partitions each. */
    snprintf(args, sizeof(args), "--prefix %s --partitions 3 --replication-factor 1", prefix);
    run_topics(&r, args);
    assert_int_equal(count_of(r.out, "3 partitions, want 3: up to date"), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_up_to_date_changes_nothing),
        cmocka_unit_test(test_shrink_is_refused_with_a_clear_message),
        cmocka_unit_test(test_dry_run_plans_growth_without_requests),
        cmocka_unit_test(test_create_grow_and_refuse_shrink_on_the_controller),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
