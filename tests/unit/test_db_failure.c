/* Which database errors the pipeline treats as deterministic (issue 10,
 * item 2): data exceptions (class 22) and constraint violations (23) come
 * back every time the same data is applied, so the message is isolated
 * and dead-lettered; everything else (lost connections, timeouts,
 * serialization failures, deadlocks) is retried. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "db/db.h"
#include "db/db_internal.h"

static void test_deterministic_classes(void **state)
{
    static const struct {
        const char *sqlstate;
        bool deterministic;
    } cases[] = {
        {"22003", true},  /* numeric_value_out_of_range: a bigint overflow */
        {"22021", true},  /* character_not_in_repertoire: a cut UTF-8 character */
        {"22P02", true},  /* invalid_text_representation */
        {"23505", true},  /* unique_violation */
        {"23514", true},  /* check_violation */
        {"40001", false}, /* serialization_failure */
        {"40P01", false}, /* deadlock_detected */
        {"57014", false}, /* query_canceled: statement_timeout */
        {"08006", false}, /* connection_failure */
        {"", false},      /* no answer at all */
        {"2200", false},  /* not a SQLSTATE */
        {NULL, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(db_sqlstate_is_deterministic(cases[i].sqlstate), cases[i].deterministic);
}

static void test_failure_is_per_thread_and_cleared(void **state)
{
    db_failure_clear();
    assert_string_equal(db_failure_last()->sqlstate, "");
    db_failure_note(NULL); /* no answer: the connection broke */
    assert_string_equal(db_failure_last()->sqlstate, "");
    assert_string_equal(db_failure_last()->text, "no answer from the server");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic_classes),
        cmocka_unit_test(test_failure_is_per_thread_and_cleared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
