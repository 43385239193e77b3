/* Points over HTTP: admin grants make lots, deductions spend the
 * soonest-expiring lot first and never go below zero, a lot whose expiry
 * passes is expired by the ledger's scheduler through ledger-commands
 * (exactly once), and bad input changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/api_client.h"
#include "../support/test_clock.h"

#define EXPIRY_WAIT_MS 20000

static void adjust_path(char *out, size_t len, const char *member_id)
{
    snprintf(out, len, "/v1/members/%s/points-adjustments", member_id);
}

static int64_t points_of(const char *member_id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", member_id);
    struct api_response r = api_get(path);
    assert_int_equal(r.status, 200);
    int64_t v = json_int_at(r.body, "balances.points");
    api_response_free(&r);
    return v;
}

/* An RFC 3339 time seconds from now (UTC). */
static void time_from_now(char out[32], int seconds)
{
    time_t t = time(NULL) + seconds;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static struct api_response adjust(const char *member_id, const char *body)
{
    char path[128];
    adjust_path(path, sizeof(path), member_id);
    return api_post(path, body, NULL);
}

static int64_t lot_remaining(PGconn *pg, const char *lot_id)
{
    const char *p[1] = {lot_id};
    return test_pg_int(pg, "SELECT remaining FROM ledger.point_lots WHERE lot_id = $1", 1, p);
}

struct points_target {
    const char *member_id;
    int64_t points;
};

static bool points_reached(void *arg)
{
    struct points_target *t = arg;
    return points_of(t->member_id) == t->points;
}

static void test_grant_deduct_expire(void **state)
{
    char member_id[64], body[256], soon[32], short_lot[64];
    test_register_member(member_id);
    struct api_response r = adjust(member_id, "{\"points\":500,\"reason\":\"welcome gift\"}");
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "points"), 500);
    assert_int_equal(json_int_at(r.body, "balances.points"), 500);
    /* the demo policy: end of the 12th month after this one, so next year */
    const char *expires = json_str_at(r.body, "expires_at");
    char this_year[8];
    time_t now = time(NULL);
    strftime(this_year, sizeof(this_year), "%Y", gmtime(&now));
    assert_true(strncmp(expires, this_year, 4) > 0);
    api_response_free(&r);

    time_from_now(soon, 3);
    snprintf(body, sizeof(body), "{\"points\":100,\"reason\":\"flash\",\"expires_at\":\"%s\"}",
             soon);
    r = adjust(member_id, body);
    assert_int_equal(r.status, 201);
    snprintf(short_lot, sizeof(short_lot), "%s", json_str_at(r.body, "lot_id"));
    assert_int_equal(json_int_at(r.body, "balances.points"), 600);
    api_response_free(&r);

    /* The deduction spends the lot that expires first. */
    r = adjust(member_id, "{\"points\":-60,\"reason\":\"correction\"}");
    assert_int_equal(r.status, 201);
    assert_int_equal(json_int_at(r.body, "points"), -60);
    assert_int_equal(json_int_at(r.body, "balances.points"), 540);
    api_response_free(&r);
    PGconn *pg = test_pg();
    assert_int_equal(lot_remaining(pg, short_lot), 40);

    r = adjust(member_id, "{\"points\":-541,\"reason\":\"too much\"}");
    assert_int_equal(r.status, 409);
    assert_string_equal(json_str_at(r.body, "code"), "insufficient_points");
    api_response_free(&r);
    assert_int_equal(points_of(member_id), 540);

    /* The scheduler expires the 40 points left in the short lot. */
    struct points_target target = {member_id, 500};
    assert_true(poll_until(points_reached, &target, EXPIRY_WAIT_MS));
    assert_int_equal(lot_remaining(pg, short_lot), 0);
    const char *p[2] = {member_id, short_lot};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT sum(amount) FROM ledger.journal WHERE member_id = $1 "
                                 "AND reason = 'points_expiry:' || $2",
                                 2, p),
                     -40);
    /* one verdict for the lot's expiry, whatever the scheduler resent */
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ledger.commands WHERE member_id = $1 "
                                 "AND command_id = $2 AND status = 'posted'",
                                 2, p),
                     1);
    PQfinish(pg);
}

static void expect_invalid(const char *member_id, const char *body, const char *field)
{
    struct api_response r = adjust(member_id, body);
    if (r.status != 422)
        fprintf(stderr, "%s -> %ld %s\n", body, r.status, r.raw);
    assert_int_equal(r.status, 422);
    assert_string_equal(json_str_at(r.body, "code"), "validation_failed");
    assert_non_null(strstr(r.content_type, "application/problem+json"));
    assert_non_null(strstr(json_str_at(r.body, "detail"), field));
    api_response_free(&r);
}

static void test_bad_input_changes_nothing(void **state)
{
    char member_id[64], body[256], past[32];
    test_register_member(member_id);
    expect_invalid(member_id, "{\"points\":0,\"reason\":\"x\"}", "points");
    expect_invalid(member_id, "{\"points\":10}", "reason");
    expect_invalid(member_id, "{\"points\":10,\"reason\":\"\"}", "reason");
    expect_invalid(member_id, "{\"points\":\"10\",\"reason\":\"x\"}", "points");
    expect_invalid(member_id, "{\"points\":10,\"reason\":\"x\",\"expires_at\":\"tomorrow\"}",
                   "expires_at");
    time_from_now(past, -60);
    snprintf(body, sizeof(body), "{\"points\":10,\"reason\":\"x\",\"expires_at\":\"%s\"}", past);
    expect_invalid(member_id, body, "expires_at");
    expect_invalid(member_id, "{\"points\":10,\"reason\":\"x\",\"bonus\":1}", "bonus");
    expect_invalid(member_id, "{\"points\":10,\"reason\":\"x\",\"branch_id\":\"nowhere\"}",
                   "branch_id");

    struct api_response r =
        adjust("01900000-0000-7000-8000-000000000000", "{\"points\":10,\"reason\":\"x\"}");
    assert_int_equal(r.status, 404);
    assert_string_equal(json_str_at(r.body, "code"), "not_found");
    api_response_free(&r);

    PGconn *pg = test_pg();
    const char *p[1] = {member_id};
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ledger.commands WHERE member_id = $1", 1, p), 0);
    PQfinish(pg);
    assert_int_equal(points_of(member_id), 0);
}

static void test_idempotent_grant(void **state)
{
    char member_id[64], path[128], key[96];
    test_register_member(member_id);
    adjust_path(path, sizeof(path), member_id);
    snprintf(key, sizeof(key), "grant-%s", member_id);
    const char *body = "{\"points\":70,\"reason\":\"survey\"}";
    struct api_response first = api_post(path, body, key);
    struct api_response again = api_post(path, body, key);
    assert_int_equal(first.status, 201);
    assert_int_equal(again.status, 201);
    assert_string_equal(json_str_at(first.body, "operation_id"),
                        json_str_at(again.body, "operation_id"));
    assert_int_equal(points_of(member_id), 70);
    api_response_free(&first);
    api_response_free(&again);
}

static int64_t clock_before;
static bool clock_moved;

/* Teardown too: a failed wait must not leave the runtime's clock moved. */
static int restore_clock(void **state)
{
    if (clock_moved)
        test_clock_restore(clock_before);
    clock_moved = false;
    return 0;
}

#define US_PER_S         1000000LL
#define CLOCK_LOT_LIFE_S 3600 /* the lot expires an hour after its grant */
#define CLOCK_MOVED_BY_S 7200 /* and the service clock is moved two hours on */

/* Regression: the scheduler found due lots with PostgreSQL's now(), so a
 * lot whose expiry had passed on the service clock (the test clock moved
 * past it) was never expired; it must be, within a round or two. */
static void test_expiry_follows_service_clock(void **state)
{
    char member_id[64], body[256], expires[32], lot[64];
    test_register_member(member_id);
    time_t at = time(NULL) + (time_t)(test_clock_offset_us() / US_PER_S) + CLOCK_LOT_LIFE_S;
    struct tm tm;
    gmtime_r(&at, &tm);
    strftime(expires, sizeof(expires), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, sizeof(body), "{\"points\":70,\"reason\":\"clock\",\"expires_at\":\"%s\"}",
             expires);
    struct api_response r = adjust(member_id, body);
    assert_int_equal(r.status, 201);
    snprintf(lot, sizeof(lot), "%s", json_str_at(r.body, "lot_id"));
    api_response_free(&r);
    assert_int_equal(points_of(member_id), 70);

    clock_before = test_clock_advance_us(CLOCK_MOVED_BY_S * US_PER_S);
    clock_moved = true;
    struct points_target target = {member_id, 0};
    assert_true(poll_until(points_reached, &target, EXPIRY_WAIT_MS));
    PGconn *pg = test_pg();
    assert_int_equal(lot_remaining(pg, lot), 0);
    const char *p[2] = {member_id, lot};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT sum(amount) FROM ledger.journal WHERE member_id = $1 "
                                 "AND reason = 'points_expiry:' || $2",
                                 2, p),
                     -70);
    PQfinish(pg);
    restore_clock(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grant_deduct_expire),
        cmocka_unit_test(test_bad_input_changes_nothing),
        cmocka_unit_test(test_idempotent_grant),
        cmocka_unit_test_teardown(test_expiry_follows_service_clock, restore_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
