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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
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

static char first_url[256], second_url[256];

static void use_instance(int n)
{
    setenv("TESSERA_API_URL", n == 1 ? first_url : second_url, 1);
}

static struct api_response get_operation(const char *operation_id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/operations/%s", operation_id);
    return api_get(path);
}

static void expect_operation(const char *operation_id, const char *status)
{
    struct api_response r = get_operation(operation_id);
    if (r.status != 200 || strcmp(json_str_at(r.body, "status"), status) != 0)
        fail_msg("operation %s: want 200 %s, got %ld %s", operation_id, status, r.status,
                 r.raw ? r.raw : "");
    api_response_free(&r);
}

static bool operation_posted(void *arg)
{
    struct api_response r = get_operation(arg);
    bool posted = r.status == 200 && strcmp(json_str_at(r.body, "status"), "posted") == 0;
    api_response_free(&r);
    return posted;
}

/* Item 12: a top-up answered 202 (the ledger is stopped, and Prefer:
 * wait=0) and a batch line answered 202 are "pending" on the instance
 * that answered and on another one (before the fix: 404 on both, the
 * waiter being gone), then "posted" once the ledger has applied them. */
static void test_operation_pending_on_every_instance(void **state)
{
    snprintf(first_url, sizeof(first_url), "%s", getenv("TESSERA_API_URL"));
    const char *colon = strrchr(first_url, ':');
    assert_non_null(colon);
    snprintf(second_url, sizeof(second_url), "%.*s:%d", (int)(colon - first_url), first_url,
             atoi(colon + 1) + 10);
    assert_int_equal(runtime_do("start-instance ingest 2"), 0);
    char member[64], path[160], single[64], line[64], batch[512];
    test_register_member(member);
    assert_int_equal(runtime_do("stop-service ledger"), 0);

    snprintf(path, sizeof(path), "/v1/members/%s/topups", member);
    struct api_response r =
        api_call("POST", path, "{\"amount\":1000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
                 NULL, (const char *const[]){"Prefer: wait=0", NULL});
    assert_int_equal(r.status, 202);
    snprintf(single, sizeof(single), "%s", json_str_at(r.body, "operation_id"));
    api_response_free(&r);
    snprintf(batch, sizeof(batch),
             "{\"type\":\"topup\",\"member_id\":\"%s\",\"idempotency_key\":\"edges-%s\","
             "\"amount\":2000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}\n",
             member, run_id);
    r = api_call(
        "POST", "/v1/events:batch", batch, NULL,
        (const char *const[]){"Content-Type: application/x-ndjson", "Prefer: wait=0", NULL});
    assert_int_equal(r.status, 200);
    json_t *first = json_array_get(json_object_get(r.body, "results"), 0);
    assert_int_equal(json_int_at(first, "status"), 202);
    snprintf(line, sizeof(line), "%s", json_str_at(first, "result.operation_id"));
    api_response_free(&r);

    for (int n = 1; n <= 2; n++) {
        use_instance(n);
        expect_operation(single, "pending");
        expect_operation(line, "pending");
    }
    assert_int_equal(runtime_do("start-service ledger"), 0);
    use_instance(2);
    assert_true(poll_until(operation_posted, single, 60000));
    assert_true(poll_until(operation_posted, line, 60000));
    use_instance(1);
    expect_operation(single, "posted");
    assert_int_equal(runtime_do("stop-instance ingest 2"), 0);
}

static void make_pos_key(const char *branch, char key[128])
{
    char body[160];
    snprintf(body, sizeof(body),
             "{\"name\":\"edges till %s\",\"scope\":\"pos\",\"branch_id\":\"%s\"}", branch, branch);
    struct api_response r = api_post("/v1/api-keys", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(key, 128, "%s", json_str_at(r.body, "key"));
    api_response_free(&r);
}

static struct api_response member_post_as(const char *key, const char *member, const char *tail,
                                          const char *body)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/members/%s%s", member, tail);
    return api_call("POST", path, body, key, NULL);
}

static void expect_created(struct api_response r, char *operation_id)
{
    if (r.status != 201)
        fail_msg("want 201, got %ld %s", r.status, r.raw ? r.raw : "");
    if (operation_id)
        snprintf(operation_id, 64, "%s", json_str_at(r.body, "operation_id"));
    api_response_free(&r);
}

/* Item 15, freezes: a pos key acts at its own branch, named or not, and
 * only on cards valid there (before the fix a freeze without branch_id
 * skipped the check: any till could freeze any card of the tenant). */
static void test_pos_freeze_stays_in_its_branch(void **state)
{
    char hq_key[128], b1_key[128], member[64], product[64], body[256], tail[128];
    make_pos_key("hq", hq_key);
    make_pos_key("branch-1", b1_key);
    snprintf(product, sizeof(product), "edges-hq-month-%s", run_id);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"kind\":\"time\",\"name\":\"HQ month\",\"price\":30000,"
             "\"validity_days\":30,\"freeze_days_max\":10,\"branch_ids\":[\"hq\"]}",
             product);
    struct api_response r = api_post("/v1/products", body, NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    test_register_member(member);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}",
             product);
    r = member_post_as(NULL, member, "/cards", body);
    assert_int_equal(r.status, 201);
    snprintf(tail, sizeof(tail), "/cards/%s/freeze", json_str_at(r.body, "card_id"));
    api_response_free(&r);

    expect_problem(member_post_as(b1_key, member, tail, "{\"days\":2}"), 409,
                   "card_not_valid_here");
    expect_problem(member_post_as(b1_key, member, tail, "{\"days\":2,\"branch_id\":\"hq\"}"), 403,
                   "forbidden");
    expect_created(member_post_as(hq_key, member, tail, "{\"days\":2}"), NULL);
    expect_created(member_post_as(NULL, member, tail, "{\"days\":1}"), NULL); /* admin */
}

/* Item 15, refunds: a pos key refunds only what its branch took: a
 * purchase recorded there, or stored value none of which was sold at
 * another branch (before the fix any till refunded any branch's sales). */
static void test_pos_refunds_stay_in_their_branch(void **state)
{
    char b1_key[128], member[64], local[64], purchase[64], body[256];
    make_pos_key("branch-1", b1_key);
    test_register_member(member);
    expect_created(
        member_post_as(NULL, member, "/topups",
                       "{\"amount\":5000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}"),
        NULL);
    expect_created(member_post_as(NULL, member, "/purchases",
                                  "{\"amount\":1000,\"branch_id\":\"hq\",\"payment\":{\"method\":"
                                  "\"stored_value\"}}"),
                   purchase);
    snprintf(body, sizeof(body),
             "{\"kind\":\"purchase\",\"reason\":\"edges\",\"branch_id\":\"branch-1\","
             "\"purchase_operation_id\":\"%s\"}",
             purchase);
    expect_problem(member_post_as(b1_key, member, "/refunds", body), 403, "forbidden");
    expect_problem(member_post_as(b1_key, member, "/refunds",
                                  "{\"kind\":\"stored_value\",\"reason\":\"edges\","
                                  "\"branch_id\":\"branch-1\"}"),
                   403, "forbidden");

    /* everything of this member was sold at branch-1: its till refunds it */
    test_register_member(local);
    expect_created(member_post_as(b1_key, local, "/topups",
                                  "{\"amount\":5000,\"branch_id\":\"branch-1\",\"payment_method\":"
                                  "\"cash\"}"),
                   NULL);
    expect_created(member_post_as(b1_key, local, "/purchases",
                                  "{\"amount\":1000,\"branch_id\":\"branch-1\",\"payment\":{"
                                  "\"method\":\"stored_value\"}}"),
                   purchase);
    snprintf(body, sizeof(body),
             "{\"kind\":\"purchase\",\"reason\":\"edges\",\"branch_id\":\"branch-1\","
             "\"purchase_operation_id\":\"%s\"}",
             purchase);
    expect_created(member_post_as(b1_key, local, "/refunds", body), NULL);
    expect_created(member_post_as(b1_key, local, "/refunds",
                                  "{\"kind\":\"stored_value\",\"reason\":\"edges\","
                                  "\"branch_id\":\"branch-1\"}"),
                   NULL);
}

/* Sends raw bytes to the API port and reads what comes back within
 * deadline_ms (until the server closes). */
static void raw_exchange(const char *request, char *out, size_t out_len, int deadline_ms)
{
    const char *url = getenv("TESSERA_API_URL"), *colon = url ? strrchr(url, ':') : NULL;
    assert_non_null(colon);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
    size_t len = 0;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (len + 1 < out_len && poll(&pfd, 1, deadline_ms) == 1) {
        ssize_t n = recv(fd, out + len, out_len - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fd);
}

/* Item 9: a money request declaring a 10 MiB body, without a key, sent
 * head only: 413 at once, nothing read and nobody authenticated (before
 * the fix ingest waited for the body, up to 16 MiB, before anything). */
static void test_body_refused_before_authentication(void **state)
{
    char out[2048];
    raw_exchange("POST /v1/members/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/topups HTTP/1.1\r\n"
                 "Host: t\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n",
                 out, sizeof(out), 5000);
    if (strncmp(out, "HTTP/1.1 413", 12) != 0 || !strstr(out, "\"code\":\"payload_too_large\""))
        fail_msg("want 413 payload_too_large at once, got: %s", out);
}

int main(void)
{
    snprintf(run_id, sizeof(run_id), "%ld-%d", (long)time(NULL), (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_json_ends_the_request),
        cmocka_unit_test(test_body_refused_before_authentication),
        cmocka_unit_test(test_operation_pending_on_every_instance),
        cmocka_unit_test(test_pos_freeze_stays_in_its_branch),
        cmocka_unit_test(test_pos_refunds_stay_in_their_branch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
