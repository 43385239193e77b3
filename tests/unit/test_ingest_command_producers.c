/* Unit tests for services/ingest/command_producers.c: a member's ledger
 * commands always take the same producer (so they reach their partition
 * in order), and members spread over every producer (so the broker serves
 * the connections side by side). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "../../services/ingest/command_producers.h"

#define MEMBERS 4000

static void member_id(int n, char out[40])
{
    snprintf(out, 40, "0190c0de-%04x-7000-8000-%012x", n & 0xffff, n * 7919);
}

static void test_same_member_same_producer(void **state)
{
    char id[40];
    for (int n = 0; n < MEMBERS; n++) {
        member_id(n, id);
        size_t first = command_producer_index(id, 8);
        assert_true(first < 8);
        for (int again = 0; again < 3; again++)
            assert_int_equal(command_producer_index(id, 8), first);
    }
}

static void test_one_producer_takes_all(void **state)
{
    char id[40];
    for (int n = 0; n < 100; n++) {
        member_id(n, id);
        assert_int_equal(command_producer_index(id, 1), 0);
    }
}

/* Every producer gets a fair share: none below half of an even split. */
static void test_members_spread_over_every_producer(void **state)
{
    for (size_t count = 2; count <= INGEST_COMMAND_PRODUCERS_MAX; count *= 2) {
        size_t seen[INGEST_COMMAND_PRODUCERS_MAX] = {0};
        char id[40];
        for (int n = 0; n < MEMBERS; n++) {
            member_id(n, id);
            seen[command_producer_index(id, count)]++;
        }
        for (size_t i = 0; i < count; i++)
            assert_true(seen[i] > MEMBERS / count / 2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_member_same_producer),
        cmocka_unit_test(test_one_producer_takes_all),
        cmocka_unit_test(test_members_spread_over_every_producer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
