/* The rewards catalogue and redemptions end to end (issue 12), in a
 * tenant of its own: a reward is defined (bad ones refused with 422) and
 * listed; N members redeem a reward with stock K < N at the same time and
 * exactly K succeed (409 out_of_stock for the others), the stock ends at
 * 0 and never below, and the points are debited exactly K times; a member
 * without enough points is refused (409 insufficient_points) and the unit
 * reserved for it comes back; a coupon reward delivers one coupon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/api_client.h"
#include "../support/expect.h"
#include "../support/sql_tenant.h"
#include "../support/sql_wait.h"

#define DEADLINE_MS 30000
#define RACERS      8 /* N members racing for */
#define STOCK       3 /* K units */
#define PRICE       100
#define GRANT       150

static char tenant_id[48], admin_key[64];

static void tenant_make(void)
{
    sql_tenant_make("redeem", "Rewards Chain", tenant_id, sizeof(tenant_id), admin_key);
}

static void member_make(char id[64])
{
    char phone[16], body[160];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"R\",\"phone\":\"%s\",\"branch_id\":\"hq\"}", phone);
    struct api_response r = api_call("POST", "/v1/members", body, admin_key, NULL);
    api_expect_status(&r, 201);
    snprintf(id, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

static void grant(const char *member, int64_t points)
{
    char path[160], body[160];
    snprintf(path, sizeof(path), "/v1/members/%s/points-adjustments", member);
    snprintf(body, sizeof(body), "{\"points\":%lld,\"reason\":\"test grant\"}", (long long)points);
    struct api_response r = api_call("POST", path, body, admin_key, NULL);
    api_expect_status(&r, 201);
    api_response_free(&r);
}

/* Defines a reward; its id goes to id. */
static void reward_make(const char *body, char id[64])
{
    struct api_response r = api_call("POST", "/v1/rewards", body, admin_key, NULL);
    api_expect_status(&r, 201);
    snprintf(id, 64, "%s", json_str_at(r.body, "reward_id"));
    api_response_free(&r);
}

static struct api_response redeem(const char *member, const char *reward)
{
    char path[160], body[160];
    snprintf(path, sizeof(path), "/v1/members/%s/redemptions", member);
    snprintf(body, sizeof(body), "{\"reward_id\":\"%s\"}", reward);
    const char *headers[] = {"Prefer: wait=20", NULL};
    return api_call("POST", path, body, admin_key, headers);
}

static int64_t sql_int(const char *sql, const char *p1)
{
    return sql_int_of(sql, tenant_id, p1);
}

static void wait_for(const char *sql, const char *p1, int64_t want, const char *what)
{
    sql_wait_for(sql, tenant_id, p1, want, what);
}

#define STOCK_OF "SELECT stock FROM ingest.rewards WHERE tenant_id = $1 AND reward_id = $2"

/* ------------------------------------------------------------ tests */
static void test_catalogue(void **state)
{
    char id[64];
    api_expect_problem(api_call("POST", "/v1/rewards",
                                "{\"name\":\"Mug\",\"kind\":\"gift\",\"points_price\":0}",
                                admin_key, NULL),
                       422, "validation_failed");
    api_expect_problem(api_call("POST", "/v1/rewards",
                                "{\"name\":\"Coupon\",\"kind\":\"coupon\",\"points_price\":10}",
                                admin_key, NULL),
                       422, "validation_failed");
    reward_make("{\"name\":\"Mug\",\"kind\":\"gift\",\"points_price\":500,\"stock\":2}", id);
    struct api_response r = api_call("GET", "/v1/rewards", NULL, admin_key, NULL);
    api_expect_status(&r, 200);
    json_t *list = json_object_get(r.body, "rewards");
    bool found = false;
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *w = json_array_get(list, i);
        if (strcmp(json_str_at(w, "reward_id"), id) == 0) {
            found = true;
            assert_int_equal(json_int_at(w, "stock"), 2);
            assert_int_equal(json_int_at(w, "points_price"), 500);
        }
    }
    assert_true(found);
    api_response_free(&r);
}

struct racer {
    char member[64];
    const char *reward;
    long status;
    char code[64];
};

static void *race(void *arg)
{
    struct racer *x = arg;
    struct api_response r = redeem(x->member, x->reward);
    x->status = r.status;
    if (r.status != 201 && r.body && json_object_get(r.body, "code"))
        snprintf(x->code, sizeof(x->code), "%s", json_str_at(r.body, "code"));
    api_response_free(&r);
    return NULL;
}

static void test_stock_under_concurrency(void **state)
{
    char reward[64];
    reward_make("{\"name\":\"Tote\",\"kind\":\"gift\",\"points_price\":100,\"stock\":3}", reward);
    static struct racer racers[RACERS];
    pthread_t threads[RACERS];
    for (int i = 0; i < RACERS; i++) {
        member_make(racers[i].member);
        grant(racers[i].member, GRANT);
        racers[i].reward = reward;
    }
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
    int won = 0, sold_out = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(threads[i], NULL);
        if (racers[i].status == 201)
            won++;
        else if (racers[i].status == 409 && strcmp(racers[i].code, "out_of_stock") == 0)
            sold_out++;
        else
            fail_msg("racer %d: %ld %s", i, racers[i].status, racers[i].code);
    }
    assert_int_equal(won, STOCK);
    assert_int_equal(sold_out, RACERS - STOCK);
    assert_int_equal(sql_int(STOCK_OF, reward), 0);
    /* the points: debited exactly K times, PRICE each */
    int64_t left = 0;
    for (int i = 0; i < RACERS; i++) {
        int64_t p = sql_int("SELECT coalesce(sum(points), 0) FROM ledger.read_balances "
                            "WHERE tenant_id = $1 AND member_id = $2",
                            racers[i].member);
        assert_true(p == GRANT || p == GRANT - PRICE);
        left += p;
    }
    assert_int_equal(left, (int64_t)RACERS * GRANT - (int64_t)STOCK * PRICE);
    wait_for("SELECT count(*) FROM ingest.redemptions WHERE tenant_id = $1 AND reward_id = $2 "
             "AND status = 'done'",
             reward, STOCK, "the winners' redemptions to be done");
    /* one more after the race: still out of stock */
    api_expect_problem(redeem(racers[0].member, reward), 409, "out_of_stock");
}

static void test_refused_debit_gives_the_unit_back(void **state)
{
    char reward[64], poor[64];
    reward_make("{\"name\":\"Pen\",\"kind\":\"gift\",\"points_price\":100,\"stock\":1}", reward);
    member_make(poor);
    grant(poor, 50);
    api_expect_problem(redeem(poor, reward), 409, "insufficient_points");
    wait_for(STOCK_OF, reward, 1, "the unit to come back");
    wait_for("SELECT count(*) FROM ingest.redemptions WHERE tenant_id = $1 AND reward_id = $2 "
             "AND status = 'refused'",
             reward, 1, "the redemption to be refused");
}

static void test_coupon_reward_is_delivered_once(void **state)
{
    char reward[64], member[64];
    reward_make("{\"name\":\"10 off\",\"kind\":\"coupon\",\"points_price\":100,"
                "\"coupon\":{\"kind\":\"value\",\"value\":1000,\"valid_days\":30}}",
                reward);
    member_make(member);
    grant(member, 100);
    struct api_response r = redeem(member, reward);
    api_expect_status(&r, 201);
    api_response_free(&r);
    wait_for("SELECT count(*) FROM ingest.redemptions WHERE tenant_id = $1 AND member_id = $2 "
             "AND status = 'done'",
             member, 1, "the coupon redemption to be done");
    assert_int_equal(sql_int("SELECT count(*) FROM ledger.read_coupons WHERE tenant_id = $1 "
                             "AND member_id = $2 AND value = 1000",
                             member),
                     1);
    assert_int_equal(sql_int("SELECT coalesce(sum(points), 0) FROM ledger.read_balances "
                             "WHERE tenant_id = $1 AND member_id = $2",
                             member),
                     0);
}

int main(void)
{
    tenant_make();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalogue),
        cmocka_unit_test(test_stock_under_concurrency),
        cmocka_unit_test(test_refused_debit_gives_the_unit_back),
        cmocka_unit_test(test_coupon_reward_is_delivered_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
