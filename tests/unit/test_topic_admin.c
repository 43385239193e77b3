/* Unit tests for libs/topics: the plan never shrinks, and the table
 * covers every topic the services use with valid Kafka settings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus/topics.h"
#include "topics/topic_admin.h"

static void test_plan(void **state)
{
    assert_int_equal(topic_plan(-1, 12), TOPIC_CREATE);
    assert_int_equal(topic_plan(12, 12), TOPIC_OK);
    assert_int_equal(topic_plan(6, 12), TOPIC_GROW);
    assert_int_equal(topic_plan(12, 6), TOPIC_REFUSE_SHRINK);
    assert_int_equal(topic_plan(2, 1), TOPIC_REFUSE_SHRINK);
}

static void test_table_covers_every_topic(void **state)
{
    static const char *const all[] = TOPICS_ALL;
    assert_int_equal(topic_specs_count, TOPICS_ALL_COUNT);
    for (size_t i = 0; i < TOPICS_ALL_COUNT; i++) {
        const struct topic_spec *found = NULL;
        for (size_t j = 0; j < topic_specs_count; j++)
            if (strcmp(topic_specs[j].name, all[i]) == 0)
                found = &topic_specs[j];
        if (!found)
            fail_msg("topic %s has no row in the table", all[i]);
        char *end;
        long long ms = strtoll(found->retention_ms, &end, 10);
        assert_true(*end == '\0' && (ms == -1 || ms >= 3600000)); /* forever, or >= 1 h */
        assert_true(strcmp(found->cleanup_policy, "delete") == 0 ||
                    strcmp(found->cleanup_policy, "compact") == 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_table_covers_every_topic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
