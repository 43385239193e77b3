/* tessera-topics against the development broker. librdkafka's mock
 * cluster answers metadata but implements neither CreateTopics nor
 * CreatePartitions (it has no controller): planning, the up-to-date case,
 * --dry-run and the refusal to shrink are checked for real; creating and
 * growing are checked up to the request, which must fail fast and say so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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

/* The mock has no controller: the request fails within the timeout, the
 * tool names the topic and stops at the first failure. */
static void test_create_on_the_mock_fails_fast_and_clearly(void **state)
{
    struct run r;
    run_topics(&r, "--prefix opstest- --partitions 2 --replication-factor 1");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "opstest-member-events: missing, want 2: create"));
    assert_non_null(strstr(r.out, "opstest-member-events: create failed: "));
    assert_int_equal(count_of(r.out, "create failed"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_up_to_date_changes_nothing),
        cmocka_unit_test(test_shrink_is_refused_with_a_clear_message),
        cmocka_unit_test(test_dry_run_plans_growth_without_requests),
        cmocka_unit_test(test_create_on_the_mock_fails_fast_and_clearly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
