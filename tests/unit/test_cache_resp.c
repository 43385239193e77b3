/* Unit tests for the RESP formatting of pipelined cache commands
 * (libs/cache/cache_async.c): byte for byte what hiredis's own formatter
 * writes, binary-safe, and a refusal (0) when the command may not fit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cache/cache_internal.h"

/* Formats argv both ways and compares. */
static void same_as_hiredis(int argc, const char **argv, const size_t *argv_len)
{
    char ours[RESP_COMMAND_MAX_BYTES];
    size_t len = cache_resp_format(ours, sizeof(ours), argc, argv, argv_len);
    char *theirs = NULL;
    int n = redisFormatCommandArgv(&theirs, argc, argv, argv_len);
    assert_true(n > 0);
    assert_int_equal(len, (size_t)n);
    assert_memory_equal(ours, theirs, len);
    free(theirs);
}

static void test_view_reads_as_hiredis_writes_them(void **state)
{
    const char *hmget[] = {"HMGET", "tessera:demo:member:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b:view",
                           "profile", "coupons", "#cgen"};
    size_t hmget_len[5];
    for (int i = 0; i < 5; i++)
        hmget_len[i] = strlen(hmget[i]);
    same_as_hiredis(5, hmget, hmget_len);
    const char *getall[] = {"HGETALL", "k"};
    const size_t getall_len[] = {7, 1};
    same_as_hiredis(2, getall, getall_len);
}

static void test_binary_and_empty_arguments(void **state)
{
    const char *argv[] = {"SET", "a\r\n\0b", ""};
    const size_t argv_len[] = {3, 5, 0};
    same_as_hiredis(3, argv, argv_len);
    char long_arg[300];
    memset(long_arg, 'x', sizeof(long_arg));
    const char *argv2[] = {"GET", long_arg};
    const size_t argv2_len[] = {3, sizeof(long_arg)};
    same_as_hiredis(2, argv2, argv2_len);
}

static void test_too_long_is_refused(void **state)
{
    char big[RESP_COMMAND_MAX_BYTES];
    memset(big, 'x', sizeof(big));
    const char *argv[] = {"GET", big};
    const size_t argv_len[] = {3, sizeof(big)};
    char out[RESP_COMMAND_MAX_BYTES];
    assert_int_equal(cache_resp_format(out, sizeof(out), 2, argv, argv_len), 0);
    /* a small buffer refuses before writing past its end */
    const char *small[] = {"GET", "key"};
    const size_t small_len[] = {3, 3};
    assert_int_equal(cache_resp_format(out, 16, 2, small, small_len), 0);
}

/* The key names, written without snprintf (cache.c): the same text as
 * "tessera:%s:member:%s:%s", and refused (-1) exactly when that text and
 * its NUL do not fit. */
static void test_member_key_as_printf(void **state)
{
    const char *tenant = "demo", *member = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    char want[256], got[256];
    int n = snprintf(want, sizeof(want), "tessera:%s:member:%s:%s", tenant, member, "balances");
    assert_int_equal(cache_member_key(got, sizeof(got), tenant, member, "balances"), 0);
    assert_string_equal(got, want);
    assert_int_equal(cache_member_key(got, (size_t)n + 1, tenant, member, "balances"), 0);
    assert_string_equal(got, want);
    assert_int_equal(cache_member_key(got, (size_t)n, tenant, member, "balances"), -1);
    assert_int_equal(cache_member_key(got, sizeof(got), "", "", ""), 0);
    assert_string_equal(got, "tessera::member::");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_view_reads_as_hiredis_writes_them),
        cmocka_unit_test(test_binary_and_empty_arguments),
        cmocka_unit_test(test_too_long_is_refused),
        cmocka_unit_test(test_member_key_as_printf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
