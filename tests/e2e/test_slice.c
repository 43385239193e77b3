/* The first end-to-end slice over HTTP: HTTP -> Kafka -> ledger ->
 * PostgreSQL and Redis -> HTTP, with bad input and a ledger crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"

static void path_of(char *out, size_t len, const char *member_id, const char *tail)
{
    snprintf(out, len, "/v1/members/%s%s", member_id, tail);
}

static int64_t stored_value_of(const char *member_id)
{
    char path[128];
    path_of(path, sizeof(path), member_id, "");
    struct api_response r = api_get(path);
    assert_int_equal(r.status, 200);
    int64_t v = json_int_at(r.body, "balances.stored_value");
    api_response_free(&r);
    return v;
}

struct log_search {
    const char *needle_a, *needle_b;
};

/* True when one line of the test runtime's ledger log holds both needles. */
static bool ledger_log_has(void *arg)
{
    const struct log_search *q = arg;
    char path[512], line[8192];
    snprintf(path, sizeof(path), "%s/logs/ledger.log", getenv("TESSERA_LOCAL_DIR"));
    FILE *f = fopen(path, "r");
    bool found = false;
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, q->needle_a) && strstr(line, q->needle_b);
    if (f)
        fclose(f);
    return found;
}

/* register -> look up by phone -> top up 1 000 yuan (1 100 with bonus) ->
 * stored-value purchase -> over-balance purchase refused, nothing changed. */
static void test_walkthrough(void **state)
{
    char phone[16], body[512], path[256];
    test_unique_phone(phone);
    snprintf(body, sizeof(body),
             "{\"name\":\"Han Meimei\",\"phone\":\"%s\",\"branch_id\":\"hq\",\"email\":"
             "\"han@example.com\",\"birthday\":\"1990-02-28\"}",
             phone);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    char member_id[64];
    snprintf(member_id, sizeof(member_id), "%s", json_str_at(r.body, "member_id"));
    assert_true(strlen(json_str_at(r.body, "referral_code")) == 8);
    api_response_free(&r);

    snprintf(path, sizeof(path), "/v1/members?phone=%s", phone);
    r = api_get(path);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "member_id"), member_id);
    assert_string_equal(json_str_at(r.body, "birthday"), "1990-02-28");
    assert_int_equal(json_int_at(r.body, "balances.stored_value"), 0);
    api_response_free(&r);

    path_of(path, sizeof(path), member_id, "/topups");
    r = api_post(path, "{\"amount\":100000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
                 NULL);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "bonus"), 10000);
    assert_int_equal(json_int_at(r.body, "balances.stored_value"), 110000);
    assert_int_equal(json_int_at(r.body, "balances.stored_value_principal"), 100000);
    assert_int_equal(json_int_at(r.body, "balances.stored_value_bonus"), 10000);
    api_response_free(&r);

    /* 11 000 fen drawn pro rata from 100 000 principal and 10 000 bonus. */
    path_of(path, sizeof(path), member_id, "/purchases");
    r = api_post(path,
                 "{\"amount\":11000,\"branch_id\":\"branch-1\",\"payment\":{\"method\":"
                 "\"stored_value\"},\"items\":[{\"sku\":\"course-101\",\"quantity\":1,"
                 "\"unit_price\":11000}]}",
                 NULL);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_str_at(r.body, "status"), "completed");
    assert_int_equal(json_int_at(r.body, "charged"), 11000);
    assert_int_equal(json_int_at(r.body, "paid_principal"), 10000);
    assert_int_equal(json_int_at(r.body, "paid_bonus"), 1000);
    assert_int_equal(json_int_at(r.body, "balances.stored_value"), 99000);
    api_response_free(&r);

    r = api_post(path,
                 "{\"amount\":99001,\"branch_id\":\"hq\",\"payment\":{\"method\":"
                 "\"stored_value\"}}",
                 NULL);
    assert_int_equal(r.status, 409);
    assert_string_equal(json_str_at(r.body, "code"), "insufficient_balance");
    assert_non_null(strstr(r.content_type, "application/problem+json"));
    /* The ledger logs the rejection with who and why, for operators. */
    struct log_search rejected = {.needle_a = json_str_at(r.body, "operation_id"),
                                  .needle_b = "\"code\":\"insufficient_balance\""};
    assert_true(poll_until(ledger_log_has, &rejected, 5000));
    api_response_free(&r);
    assert_int_equal(stored_value_of(member_id), 99000);

    /* Redis and PostgreSQL agree: the cache flushed, the API still answers
     * from the ledger's table. */
    assert_int_equal(system("redis-cli -p \"$TESSERA_REDIS_PORT\" flushall >/dev/null"), 0);
    assert_int_equal(stored_value_of(member_id), 99000);
}

/* The same Idempotency-Key twice applies once and answers the same; with
 * another body it is refused. */
static void test_idempotency_key(void **state)
{
    char member_id[64], path[256], key[96];
    test_register_member(member_id);
    snprintf(key, sizeof(key), "topup-%s", member_id);
    path_of(path, sizeof(path), member_id, "/topups");
    const char *body = "{\"amount\":200000,\"branch_id\":\"hq\",\"payment_method\":\"bank_card\"}";
    struct api_response first = api_post(path, body, key);
    assert_int_equal(first.status, 201);
    assert_int_equal(json_int_at(first.body, "balances.stored_value"), 230000);
    struct api_response again = api_post(path, body, key);
    assert_int_equal(again.status, 201);
    assert_string_equal(json_str_at(again.body, "operation_id"),
                        json_str_at(first.body, "operation_id"));
    assert_int_equal(json_int_at(again.body, "balances.stored_value"), 230000);
    assert_int_equal(stored_value_of(member_id), 230000);

    struct api_response other = api_post(
        path, "{\"amount\":500000,\"branch_id\":\"hq\",\"payment_method\":\"bank_card\"}", key);
    assert_int_equal(other.status, 422);
    assert_string_equal(json_str_at(other.body, "code"), "idempotency_key_reused");
    assert_int_equal(stored_value_of(member_id), 230000);

    PGconn *pg = test_pg();
    const char *p[1] = {member_id};
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.commands WHERE member_id = $1", 1, p), 1);
    PQfinish(pg);
    api_response_free(&first);
    api_response_free(&again);
    api_response_free(&other);
}

static void expect_problem(struct api_response r, long status, const char *code)
{
    if (r.status != status)
        fprintf(stderr, "expected %ld %s, got %ld: %s\n", status, code, r.status, r.raw);
    assert_int_equal(r.status, status);
    assert_string_equal(json_str_at(r.body, "code"), code);
    assert_non_null(strstr(r.content_type, "application/problem+json"));
    api_response_free(&r);
}

static void test_bad_input(void **state)
{
    char member_id[64], path[256];
    test_register_member(member_id);
    path_of(path, sizeof(path), member_id, "/topups");

    expect_problem(api_post("/v1/members", "{\"name\": \"x\", ", NULL), 400, "malformed_json");

    struct api_response r = api_post("/v1/members", "{\"email\":\"nobody\"}", NULL);
    assert_int_equal(r.status, 422);
    assert_string_equal(json_str_at(r.body, "code"), "validation_failed");
    const char *detail = json_str_at(r.body, "detail");
    assert_non_null(strstr(detail, "name"));
    assert_non_null(strstr(detail, "phone"));
    assert_non_null(strstr(detail, "branch_id"));
    assert_non_null(strstr(detail, "email"));
    api_response_free(&r);

    expect_problem(
        api_post(path, "{\"amount\":-5,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", NULL),
        422, "validation_failed");
    expect_problem(api_post(path,
                            "{\"amount\":100,\"branch_id\":\"nowhere\",\"payment_method\":"
                            "\"cash\"}",
                            NULL),
                   422, "validation_failed");
    expect_problem(api_post("/v1/members/01a2a2a2-0000-7000-8000-000000000000/topups",
                            "{\"amount\":100,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
                            NULL),
                   404, "not_found");
    expect_problem(api_get("/v1/members/not-a-member"), 404, "not_found");

    size_t big_len = 100 * 1024;
    char *big = malloc(big_len + 64);
    snprintf(big, 32, "{\"name\":\"");
    memset(big + 9, 'a', big_len);
    strcpy(big + 9 + big_len, "\"}");
    expect_problem(api_post("/v1/members", big, NULL), 413, "payload_too_large");
    free(big);

    expect_problem(api_call("GET", "/v1/members?phone=13900000000", NULL, "", NULL), 401,
                   "unauthorized");
    expect_problem(api_call("GET", "/v1/members?phone=13900000000", NULL, "tsk_wrong", NULL), 401,
                   "unauthorized");

    /* Nothing above changed the member, and the service still serves. */
    assert_int_equal(stored_value_of(member_id), 0);
}

static void test_duplicate_phone(void **state)
{
    char phone[16], body[256];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"A\",\"phone\":\"%s\",\"branch_id\":\"hq\"}", phone);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    expect_problem(api_post("/v1/members", body, NULL), 409, "duplicate_phone");
}

/* Members registered with this phone. The phone is sealed at rest, so
 * the row is found through the API and counted by its blind index. */
static int64_t members_with_phone(const char *phone)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members?phone=%s", phone);
    struct api_response r = api_get(path);
    if (r.status == 404) {
        api_response_free(&r);
        return 0;
    }
    assert_int_equal(r.status, 200);
    PGconn *pg = test_pg();
    const char *p[1] = {json_str_at(r.body, "member_id")};
    int64_t n = test_pg_int(pg,
                            "SELECT count(*) FROM ingest.members WHERE phone_bidx = "
                            "(SELECT phone_bidx FROM ingest.members WHERE member_id = $1)",
                            1, p);
    PQfinish(pg);
    api_response_free(&r);
    return n;
}

/* A registration retried with the same Idempotency-Key is one member and
 * the same answer; the key with another body is refused. */
static void test_registration_idempotency(void **state)
{
    char phone[16], body[256], key[64];
    test_unique_phone(phone);
    snprintf(key, sizeof(key), "register-%s", phone);
    snprintf(body, sizeof(body), "{\"name\":\"Once\",\"phone\":\"%s\",\"branch_id\":\"hq\"}",
             phone);
    struct api_response first = api_post("/v1/members", body, key);
    assert_int_equal(first.status, 201);
    struct api_response again = api_post("/v1/members", body, key);
    assert_int_equal(again.status, 201);
    assert_string_equal(json_str_at(again.body, "member_id"), json_str_at(first.body, "member_id"));
    assert_string_equal(json_str_at(again.body, "member_no"), json_str_at(first.body, "member_no"));
    expect_problem(api_post("/v1/members",
                            "{\"name\":\"Other\",\"phone\":\"13912345678\","
                            "\"branch_id\":\"hq\"}",
                            key),
                   422, "idempotency_key_reused");
    assert_int_equal(members_with_phone(phone), 1);
    api_response_free(&first);
    api_response_free(&again);
}

struct race {
    const char *body;
    long status;
};

static void *register_racer(void *arg)
{
    struct race *race = arg;
    struct api_response r = api_post("/v1/members", race->body, NULL);
    race->status = r.status;
    api_response_free(&r);
    return NULL;
}

/* Eight registrations of one phone at once: exactly one member. */
static void test_duplicate_phone_race(void **state)
{
    char phone[16], body[256];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"Racer\",\"phone\":\"%s\",\"branch_id\":\"hq\"}",
             phone);
    enum { RACERS = 8 };
    pthread_t threads[RACERS];
    struct race races[RACERS];
    for (int i = 0; i < RACERS; i++) {
        races[i] = (struct race){.body = body};
        pthread_create(&threads[i], NULL, register_racer, &races[i]);
    }
    int created = 0, conflicts = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(threads[i], NULL);
        created += races[i].status == 201;
        conflicts += races[i].status == 409;
    }
    assert_int_equal(created, 1);
    assert_int_equal(conflicts, RACERS - 1);
    assert_int_equal(members_with_phone(phone), 1);
}

struct operation_wait {
    char path[128];
};

static bool operation_posted(void *arg)
{
    struct operation_wait *w = arg;
    struct api_response r = api_get(w->path);
    bool done = r.status == 200 && r.body &&
                strcmp(json_string_value(json_object_get(r.body, "status")), "posted") == 0;
    api_response_free(&r);
    return done;
}

/* The ledger is SIGKILLed between two requests: the second waits (202),
 * the restarted ledger applies it once, a retry gets the original answer,
 * and the journal balances to the fen. */
static void test_ledger_sigkill(void **state)
{
    char member_id[64], path[256];
    test_register_member(member_id);
    path_of(path, sizeof(path), member_id, "/topups");
    const char *body_a = "{\"amount\":100000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}";
    const char *body_b =
        "{\"amount\":50000,\"branch_id\":\"branch-1\",\"payment_method\":\"cash\"}";
    char key_a[96], key_b[96];
    snprintf(key_a, sizeof(key_a), "kill-a-%s", member_id);
    snprintf(key_b, sizeof(key_b), "kill-b-%s", member_id);

    struct api_response a = api_post(path, body_a, key_a);
    assert_int_equal(a.status, 201);
    assert_int_equal(json_int_at(a.body, "balances.stored_value"), 110000);

    assert_int_equal(runtime_do("kill-service ledger"), 0);
    const char *wait_1s[] = {"Prefer: wait=1", NULL};
    char idem[160];
    snprintf(idem, sizeof(idem), "Idempotency-Key: %s", key_b);
    const char *headers[] = {wait_1s[0], idem, NULL};
    struct api_response b = api_call("POST", path, body_b, NULL, headers);
    assert_int_equal(b.status, 202);
    struct operation_wait w;
    snprintf(w.path, sizeof(w.path), "/v1/operations/%s", json_str_at(b.body, "operation_id"));

    assert_int_equal(runtime_do("start-service ledger"), 0);
    assert_true(poll_until(operation_posted, &w, 60000));

    /* Retries of both requests answer as the first time, applying nothing. */
    struct api_response b2 = api_post(path, body_b, key_b);
    assert_int_equal(b2.status, 201);
    assert_int_equal(json_int_at(b2.body, "balances.stored_value"), 160000);
    struct api_response a2 = api_post(path, body_a, key_a);
    assert_int_equal(a2.status, 201);
    assert_int_equal(json_int_at(a2.body, "balances.stored_value"), 110000);
    assert_int_equal(stored_value_of(member_id), 160000);

    PGconn *pg = test_pg();
    const char *p[1] = {member_id};
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.commands WHERE member_id = $1", 1, p), 2);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT coalesce(sum(amount), 0) FROM ledger.journal "
                                 "WHERE member_id = $1",
                                 1, p),
                     160000);
    /* Double entry: every posting sums to zero per asset. */
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM (SELECT posting_id, asset FROM "
                                 "ledger.journal GROUP BY 1, 2 HAVING sum(amount) <> 0) x",
                                 0, NULL),
                     0);
    PQfinish(pg);
    api_response_free(&a);
    api_response_free(&b);
    api_response_free(&a2);
    api_response_free(&b2);
}

/* The Kafka cluster is lost and replaced by an empty one with a new
 * cluster id (runtime.sh recreate-kafka throws the broker's data away).
 * The ledger's stored offsets belong to the old cluster: it must start
 * the new one from the beginning instead of seeking past new commands.
 *
 * This is the one test of the suite that changes the cluster id the
 * services see; every test after it runs on the new cluster, and a
 * service restarted later still logs "ignoring stored offset of another
 * Kafka cluster" for partitions nothing was written to since (from the
 * beginning of the new cluster: right, and cheap).
 *
 * What is asserted is that the commands are applied, not how fast: the
 * first commands of a brand-new cluster wait for its internal topics and
 * group coordinator, which took over 3 s on a busy machine (the default
 * 2 s wait then answered 202, a flake). So they ask for the longest wait:
 * a ledger that skipped them would still answer 202 after it. */
static void test_broker_restart_new_cluster(void **state)
{
    enum { MEMBERS = 12 };
    char members[MEMBERS][64], path[1024];
    for (int i = 0; i < MEMBERS; i++) {
        test_register_member(members[i]); /* spread over the partitions */
        path_of(path, sizeof(path), members[i], "/topups");
        struct api_response r = api_post(
            path, "{\"amount\":1000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", NULL);
        assert_int_equal(r.status, 201);
        api_response_free(&r);
    }
    PGconn *pg = test_pg();
    PGresult *res = PQexec(pg, "SELECT DISTINCT cluster_id FROM ledger.consumer_offsets");
    assert_int_equal(PQntuples(res), 1);
    char old_cluster[128];
    snprintf(old_cluster, sizeof(old_cluster), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    assert_int_equal(runtime_do("recreate-kafka"), 0);

    for (int i = 0; i < MEMBERS; i++) {
        path_of(path, sizeof(path), members[i], "/topups");
        struct api_response r = api_call(
            "POST", path, "{\"amount\":2000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
            NULL, (const char *const[]){"Prefer: wait=30", NULL});
        if (r.status != 201)
            fprintf(stderr, "after the restart: %ld %s\n", r.status, r.raw);
        assert_int_equal(r.status, 201);
        assert_int_equal(json_int_at(r.body, "balances.stored_value"), 3000);
        api_response_free(&r);
    }
    /* The offsets the ledger stored since belong to the new cluster. */
    const char *p[1] = {old_cluster};
    assert_true(test_pg_int(pg,
                            "SELECT count(*) FROM ledger.consumer_offsets WHERE cluster_id <> $1",
                            1, p) > 0);
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walkthrough),
        cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_duplicate_phone),
        cmocka_unit_test(test_duplicate_phone_race),
        cmocka_unit_test(test_ledger_sigkill),
        cmocka_unit_test(test_registration_idempotency),
        cmocka_unit_test(test_broker_restart_new_cluster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
