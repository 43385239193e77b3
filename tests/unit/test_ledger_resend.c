/* The points scheduler's memory of what it sent (services/ledger/
 * rules_resend.h), driven round by round with an explicit clock: a ledger
 * that lags keeps finding the same lots due, and each must be sent once
 * per back-off window, not once per round (issue 10, item 6). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../services/ledger/rules_resend.h"

#define ROUND_MS 2000 /* the scheduler's default interval */

static struct resend_memory memory;

/* One scheduler round at now_ms over the due lots: sends what is due,
 * every send delivered when delivered is true. Counts sends per lot. */
static void round_at(int64_t now_ms, const char *const *lots, size_t n, int *sends, bool delivered)
{
    resend_round_begin(&memory);
    for (size_t i = 0; i < n; i++)
        if (resend_due(&memory, lots[i], now_ms)) {
            sends[i]++;
            if (delivered)
                assert_true(resend_delivered(&memory, lots[i], now_ms));
        }
    resend_round_end(&memory);
}

/* Ten minutes of rounds every 2 s while the ledger applies nothing: each
 * lot goes at 0, then after 1, 2, 4 minutes (0, 60, 180, 420 s): four
 * copies, where sending every round made 300. */
static void test_lagging_ledger_gets_each_lot_once_per_backoff(void **state)
{
    memset(&memory, 0, sizeof(memory));
    const char *lots[] = {"0190a000-0000-7000-8000-000000000001",
                          "0190a000-0000-7000-8000-000000000002",
                          "vest:0190a000-0000-7000-8000-000000000003"};
    int sends[3] = {0};
    for (int64_t t = 0; t < 600000; t += ROUND_MS)
        round_at(t, lots, 3, sends, true);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sends[i], 4);
    /* The window doubles up to RESEND_MAX_MS and stays there. */
    int64_t last = -1, gap = 0;
    for (int64_t t = 600000; t < 600000 + 8 * RESEND_MAX_MS; t += ROUND_MS) {
        int before = sends[0];
        round_at(t, lots, 1, sends, true);
        if (sends[0] > before) {
            gap = last < 0 ? 0 : t - last;
            assert_true(gap <= RESEND_MAX_MS);
            last = t;
        }
    }
    assert_int_equal(gap, RESEND_MAX_MS);
}

/* A lot the ledger applied is no longer due: forgotten, and a lot that
 * becomes due later is sent at once. */
static void test_applied_lot_is_forgotten(void **state)
{
    memset(&memory, 0, sizeof(memory));
    const char *both[] = {"lot-a", "lot-b"};
    int sends[2] = {0};
    round_at(0, both, 2, sends, true);
    round_at(ROUND_MS, both + 1, 1, sends + 1, true); /* lot-a applied */
    assert_int_equal(memory.count, 1);
    round_at(2 * ROUND_MS, both, 2, sends, true); /* lot-a due again: new */
    assert_int_equal(sends[0], 2);
    assert_int_equal(sends[1], 1);
}

/* A send that was not delivered is tried again the next round. */
static void test_undelivered_lot_is_retried_next_round(void **state)
{
    memset(&memory, 0, sizeof(memory));
    const char *lots[] = {"lot-a"};
    int sends[1] = {0};
    round_at(0, lots, 1, sends, false);
    round_at(ROUND_MS, lots, 1, sends, false);
    round_at(2 * ROUND_MS, lots, 1, sends, true);
    round_at(3 * ROUND_MS, lots, 1, sends, true);
    assert_int_equal(sends[0], 3);
}

/* The memory is bounded: past RESEND_ENTRIES_MAX a lot is not remembered
 * (it is sent again next round, as before), nothing overflows. */
static void test_memory_is_bounded(void **state)
{
    memset(&memory, 0, sizeof(memory));
    char key[32];
    for (int i = 0; i < RESEND_ENTRIES_MAX; i++) {
        snprintf(key, sizeof(key), "lot-%d", i);
        assert_true(resend_delivered(&memory, key, 0));
    }
    assert_false(resend_delivered(&memory, "one-more", 0));
    assert_true(resend_due(&memory, "one-more", 1));
    char long_key[RESEND_KEY_MAX + 8];
    memset(long_key, 'x', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    memset(&memory, 0, sizeof(memory));
    assert_false(resend_delivered(&memory, long_key, 0));
    assert_int_equal(memory.count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lagging_ledger_gets_each_lot_once_per_backoff),
        cmocka_unit_test(test_applied_lot_is_forgotten),
        cmocka_unit_test(test_undelivered_lot_is_retried_next_round),
        cmocka_unit_test(test_memory_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
