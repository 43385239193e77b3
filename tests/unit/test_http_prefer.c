/* The one "Prefer: wait=N" parser (libs/http/prefer.c), from a table.
 * Regression for issue 10 item 14: three copies of strstr + strtol read
 * "nowait=5" as a wait, ignored an over-long wait instead of clamping it,
 * and multiplied an unbounded strtol result by 1000 (signed overflow). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "http/http.h"

#define MAX_MS    30000
#define UNTOUCHED (-7)

static const struct {
    const char *prefer;
    bool found;
    int ms;
} cases[] = {
    {NULL, false, UNTOUCHED},
    {"", false, UNTOUCHED},
    {"wait=0", true, 0},
    {"wait=5", true, 5000},
    {"WAIT=5", true, 5000},
    {" wait = 7 ", true, 7000},
    {"wait=\"3\"", true, 3000},
    {"wait=30", true, 30000},
    {"wait=31", true, MAX_MS}, /* clamped, not ignored */
    {"wait=86400", true, MAX_MS},
    {"wait=9223372036854775807", true, MAX_MS}, /* no overflow */
    {"wait=99999999999999999999999999", true, MAX_MS},
    {"wait=-1", false, UNTOUCHED},
    {"wait=", false, UNTOUCHED},
    {"wait", false, UNTOUCHED},
    {"wait=abc", false, UNTOUCHED},
    {"wait=5x", false, UNTOUCHED},
    {"wait=\"5", false, UNTOUCHED},
    {"nowait=5", false, UNTOUCHED}, /* another preference */
    {"waiting=5", false, UNTOUCHED},
    {"respond-async, wait=10", true, 10000},
    {"return=minimal;wait=4, wait=6", true, 6000}, /* a parameter is not a preference */
    {"wait=2; foo=bar", true, 2000},
    {"x=\"a,wait=9\", wait=1", true, 1000}, /* a comma inside quotes */
    {"wait=4, wait=6", true, 4000},         /* the first instance counts */
    {"wait=bad, wait=6", false, UNTOUCHED},
};

static void test_prefer_wait_table(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int ms = UNTOUCHED;
        bool found = http_prefer_wait_ms(cases[i].prefer, MAX_MS, &ms);
        if (found != cases[i].found || ms != cases[i].ms)
            fail_msg("Prefer \"%s\": got %d/%d, want %d/%d",
                     cases[i].prefer ? cases[i].prefer : "(none)", found, ms, cases[i].found,
                     cases[i].ms);
    }
}

/* A maximum of 0 (no waiting at all) clamps everything to 0. */
static void test_prefer_wait_zero_max(void **state)
{
    int ms = UNTOUCHED;
    assert_true(http_prefer_wait_ms("wait=12", 0, &ms));
    assert_int_equal(ms, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefer_wait_table),
        cmocka_unit_test(test_prefer_wait_zero_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
