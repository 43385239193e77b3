/* The ledger audit (`runtime.sh audit`, i.e. `tessera-ledger --audit`)
 * against the live test runtime: it passes on honest data, and each kind
 * of corruption of a scratch member makes it fail and name what is wrong;
 * after the repair it passes again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"

#define AUDIT_OUTPUT_MAX 65536

/* Runs the audit; returns its exit status and its report in out. */
static int audit_run(char *out, size_t out_len)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s audit 2>&1", getenv("TESSERA_RUNTIME"));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, out_len - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void expect_audit_passes(void)
{
    static char report[AUDIT_OUTPUT_MAX];
    int rc = audit_run(report, sizeof(report));
    if (rc != 0)
        fprintf(stderr, "audit report:\n%s\n", report);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(report, "audit: passed"));
}

/* The audit fails with exit 1, the failed check named and the culprit
 * (a member or posting id) in the report. */
static void expect_audit_fails(const char *check, const char *culprit)
{
    static char report[AUDIT_OUTPUT_MAX];
    int rc = audit_run(report, sizeof(report));
    if (rc != 1 || !strstr(report, check) || !strstr(report, culprit))
        fprintf(stderr, "audit report:\n%s\n", report);
    assert_int_equal(rc, 1);
    char line[256];
    snprintf(line, sizeof(line), "FAIL  %s", check);
    assert_non_null(strstr(report, line));
    assert_non_null(strstr(report, culprit));
}

static void pg_exec(PGconn *pg, const char *sql, const char *member_id)
{
    const char *p[1] = {member_id};
    PGresult *res = PQexecParams(pg, sql, 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fprintf(stderr, "%s: %s\n", sql, PQerrorMessage(pg));
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdTuples(res), "1");
    PQclear(res);
}

/* A member with 1 000 yuan topped up, so it has journal lines, a balance
 * row and a cached hash. */
static void scratch_member(char member_id[64])
{
    char path[128];
    test_register_member(member_id);
    snprintf(path, sizeof(path), "/v1/members/%s/topups", member_id);
    struct api_response r = api_post(
        path, "{\"amount\":100000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
}

static void test_balance_tampered(void **state)
{
    char member_id[64];
    scratch_member(member_id);
    expect_audit_passes();
    PGconn *pg = test_pg();
    pg_exec(pg, "UPDATE ledger.balances SET sv_principal = sv_principal + 1 WHERE member_id = $1",
            member_id);
    expect_audit_fails("balances equal the journal", member_id);
    pg_exec(pg, "UPDATE ledger.balances SET sv_principal = sv_principal - 1 WHERE member_id = $1",
            member_id);
    expect_audit_passes();
    PQfinish(pg);
}

/* A line added to the member's posting unbalances it and is not in the
 * verdict either. */
static void test_posting_unbalanced(void **state)
{
    char member_id[64];
    scratch_member(member_id);
    PGconn *pg = test_pg();
    const char *p[1] = {member_id};
    PGresult *res = PQexecParams(pg,
                                 "SELECT posting_id FROM ledger.journal WHERE member_id = $1 "
                                 "LIMIT 1",
                                 1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQntuples(res), 1);
    char posting[64];
    snprintf(posting, sizeof(posting), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    pg_exec(pg,
            "INSERT INTO ledger.journal (posting_id, command_id, tenant_id, branch_id, account, "
            "asset, amount, reason) SELECT posting_id, command_id, tenant_id, branch_id, "
            "'tenant:demo:tampered', 'sv_principal', 7, 'tampered' FROM ledger.journal "
            "WHERE member_id = $1 LIMIT 1",
            member_id);
    expect_audit_fails("every posting sums to zero per asset", posting);
    expect_audit_fails("every command has one verdict matching the journal", "journal does not");
    pg_exec(pg,
            "DELETE FROM ledger.journal WHERE account = 'tenant:demo:tampered' AND command_id IN "
            "(SELECT command_id FROM ledger.journal WHERE member_id = $1)",
            member_id);
    expect_audit_passes();
    PQfinish(pg);
}

/* Redis holding another value at the same version is a difference no
 * pending write explains. */
static void test_cache_disagrees(void **state)
{
    char member_id[64], cmd[512];
    scratch_member(member_id);
    snprintf(cmd, sizeof(cmd),
             "redis-cli -p \"$TESSERA_REDIS_PORT\" HINCRBY tessera:demo:member:%s:balances "
             "sv_bonus 5 >/dev/null",
             member_id);
    assert_int_equal(system(cmd), 0);
    expect_audit_fails("redis agrees with postgres", member_id);
    snprintf(cmd, sizeof(cmd),
             "redis-cli -p \"$TESSERA_REDIS_PORT\" HINCRBY tessera:demo:member:%s:balances "
             "sv_bonus -5 >/dev/null",
             member_id);
    assert_int_equal(system(cmd), 0);
    expect_audit_passes();
}

static int64_t cached_version(const char *member_id)
{
    char cmd[256], out[64] = "";
    snprintf(cmd, sizeof(cmd),
             "redis-cli -p \"$TESSERA_REDIS_PORT\" HGET tessera:demo:member:%s:balances version",
             member_id);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    if (!fgets(out, sizeof(out), p))
        out[0] = '\0';
    pclose(p);
    return strtoll(out, NULL, 10);
}

static bool cache_current(void *arg)
{
    return cached_version(arg) == 1;
}

/* A crash between a batch's commit and its cache write leaves the cache
 * a version behind: the audit says so, and a restarted ledger repairs it
 * (versioned resync of recently changed balances) without any new
 * command for the member. */
static void test_stale_cache_repaired_on_restart(void **state)
{
    char member_id[64], cmd[512];
    scratch_member(member_id);
    assert_int_equal(cached_version(member_id), 1);
    snprintf(cmd, sizeof(cmd),
             "redis-cli -p \"$TESSERA_REDIS_PORT\" HSET tessera:demo:member:%s:balances "
             "sv_principal 0 sv_bonus 0 version 0 >/dev/null",
             member_id);
    assert_int_equal(system(cmd), 0);
    expect_audit_fails("redis agrees with postgres", member_id);
    assert_int_equal(runtime_do("stop-service ledger"), 0);
    assert_int_equal(runtime_do("start-service ledger"), 0);
    assert_true(poll_until(cache_current, member_id, 15000));
    expect_audit_passes();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_balance_tampered),
        cmocka_unit_test(test_posting_unbalanced),
        cmocka_unit_test(test_cache_disagrees),
        cmocka_unit_test(test_stale_cache_repaired_on_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
