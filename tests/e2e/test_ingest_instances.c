/* Ingest instances are stateless: with two of them, every money request
 * gets its own verdict from whichever instance it reached (the ledger's
 * replies travel on ledger-events, which every instance tails, and only
 * the instance holding the waiter answers), and an Idempotency-Key used on
 * one instance is honoured on the other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"

static char first_url[256], second_url[256];

static void use_instance(int n)
{
    setenv("TESSERA_API_URL", n == 1 ? first_url : second_url, 1);
}

static void test_two_ingest_instances(void **state)
{
    snprintf(first_url, sizeof(first_url), "%s", getenv("TESSERA_API_URL"));
    const char *colon = strrchr(first_url, ':');
    assert_non_null(colon);
    snprintf(second_url, sizeof(second_url), "%.*s:%d", (int)(colon - first_url), first_url,
             atoi(colon + 1) + 10);
    assert_int_equal(runtime_do("start-instance ingest 2"), 0);

    char member[64], path[160], key[96];
    use_instance(1);
    test_register_member(member);
    snprintf(path, sizeof(path), "/v1/members/%s/topups", member);
    int64_t expected = 0;
    for (int i = 0; i < 20; i++) {
        use_instance(1 + i % 2);
        struct api_response r = api_post(
            path, "{\"amount\":5000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", NULL);
        assert_int_equal(r.status, 201);
        expected += 5000;
        assert_int_equal(json_int_at(r.body, "balances.stored_value"), expected);
        api_response_free(&r);
    }
    /* A retry on the other instance answers as the first did. */
    snprintf(key, sizeof(key), "two-instances-%s", member);
    use_instance(1);
    struct api_response a =
        api_post(path, "{\"amount\":7000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", key);
    assert_int_equal(a.status, 201);
    use_instance(2);
    struct api_response b =
        api_post(path, "{\"amount\":7000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", key);
    assert_int_equal(b.status, 201);
    assert_string_equal(json_str_at(a.body, "operation_id"), json_str_at(b.body, "operation_id"));
    api_response_free(&a);
    api_response_free(&b);

    use_instance(2);
    snprintf(path, sizeof(path), "/v1/members/%s", member);
    struct api_response m = api_get(path);
    assert_int_equal(json_int_at(m.body, "balances.stored_value"), expected + 7000);
    api_response_free(&m);
    use_instance(1);
    assert_int_equal(runtime_do("stop-instance ingest 2"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_ingest_instances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
