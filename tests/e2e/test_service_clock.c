/* Date rules of ingest read the service clock (libs/clock), never
 * PostgreSQL's now(): each test moves the test clock and checks that the
 * rule follows it, which it would not if the SQL still read now().
 *
 * - The card liability report: a time card's unused value falls with the
 *   days gone and the card drops out once it has expired.
 * - The tenant's UTC offset that purchases, batch purchases and card sales
 *   carry to the ledger (the local day of its first-day and daily limits)
 *   is the offset at the clock's date: the tenant's zone is a POSIX rule
 *   whose summer time starts three days after the clock's now, and after
 *   moving the clock six days the commands carry +2 h instead of +1 h.
 *
 * Each test uses a tenant of its own and puts the clock back, in a
 * teardown too, so a failed assertion does not leave the clock moved for
 * the tests after it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/api_client.h"
#include "../support/sql_tenant.h"
#include "../support/test_clock.h"
#include "../support/tier_tenant.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "clock/clock.h"
#include "events/codec.h"

#define DAY_US         (INT64_C(86400) * 1000000)
#define CARD_PRICE     30000
#define CARD_DAYS      30
#define STANDARD_S     3600 /* the test zone's offset before its summer time */
#define SUMMER_S       7200
#define SUMMER_AFTER_D 3 /* summer time starts this many days after the clock's now */
#define MOVE_D         6 /* how far the offset test moves the clock */

static int64_t clock_saved_us;

static int save_clock(void **state)
{
    clock_saved_us = test_clock_offset_us();
    return 0;
}

static int restore_clock(void **state)
{
    test_clock_restore(clock_saved_us);
    return 0;
}

static void define_time_card(const struct tier_tenant *t, char product[128])
{
    char body[512];
    snprintf(product, 128, "clock-month-%s", t->tenant_id);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"kind\":\"time\",\"name\":\"Month\",\"price\":%d,"
             "\"validity_days\":%d}",
             product, CARD_PRICE, CARD_DAYS);
    struct api_response r = tier_tenant_call(t, "POST", "/v1/products", body);
    if (r.status != 201)
        fail_msg("product: %ld %s", r.status, r.raw);
    api_response_free(&r);
}

static void sell_card(const struct tier_tenant *t, const char *member, const char *product)
{
    char path[160], body[512];
    snprintf(path, sizeof(path), "/v1/members/%s/cards", member);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}",
             product);
    struct api_response r = tier_tenant_call(t, "POST", path, body);
    if (r.status != 201)
        fail_msg("card sale: %ld %s", r.status, r.raw);
    api_response_free(&r);
}

/* The tenant-wide figure at path ("tenant.unused_value", "tenant.cards"). */
static int64_t liability(const struct tier_tenant *t, const char *path)
{
    struct api_response r = tier_tenant_call(t, "GET", "/v1/reports/card-liability", NULL);
    assert_int_equal(r.status, 200);
    int64_t v = json_int_at(r.body, path);
    api_response_free(&r);
    return v;
}

/* A 30-day time card's unused value is its price in proportion to the
 * time left: about half after 15 days by the service clock, nothing (and
 * no live card) after 31. With now() in the SQL it would stay the price. */
static void test_card_liability_follows_the_clock(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    char product[128], member[64];
    define_time_card(&t, product);
    tier_tenant_member(&t, member);
    sell_card(&t, member, product);
    assert_int_equal(liability(&t, "tenant.cards"), 1);
    int64_t fresh = liability(&t, "tenant.unused_value");
    assert_in_range(fresh, CARD_PRICE - 10, CARD_PRICE); /* seconds gone since the sale */

    int64_t saved = test_clock_advance_us(CARD_DAYS / 2 * DAY_US);
    int64_t half = liability(&t, "tenant.unused_value");
    assert_in_range(half, CARD_PRICE / 2 - 10, CARD_PRICE / 2 + 10);
    test_clock_advance_us((CARD_DAYS / 2 + 1) * DAY_US);
    assert_int_equal(liability(&t, "tenant.cards"), 0);
    assert_int_equal(liability(&t, "tenant.unused_value"), 0);
    test_clock_restore(saved);
    assert_int_equal(liability(&t, "tenant.cards"), 1);
}

/* ------------------------------------------------ the tenant's offset */
/* POSIX "Jn" day (1..365, February 29 never counted) of the UTC date at us. */
static int posix_julian_day(int64_t us)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    int y = tm.tm_year + 1900;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    int day = tm.tm_yday + 1 - (leap && tm.tm_yday >= 59 ? 1 : 0);
    return day < 1 ? 1 : day > 365 ? 365 : day;
}

/* Gives the tenant a zone of +1 h whose summer time (+2 h) starts
 * SUMMER_AFTER_D days after the clock's now and lasts half a year, and
 * checks that PostgreSQL reads it so at now and at now + MOVE_D days. */
static void set_summer_zone(PGconn *pg, const struct tier_tenant *t)
{
    int64_t now = clock_now_us();
    char zone[64], now_text[24], later_text[24];
    snprintf(zone, sizeof(zone), "XST-1XDT,J%d,J%d",
             posix_julian_day(now + SUMMER_AFTER_D * DAY_US), posix_julian_day(now + 180 * DAY_US));
    const char *p[2] = {zone, t->tenant_id};
    test_exec_ok(pg, "UPDATE ingest.tenants SET time_zone = $1 WHERE tenant_id = $2", 2, p);
    snprintf(now_text, sizeof(now_text), "%lld", (long long)now);
    snprintf(later_text, sizeof(later_text), "%lld", (long long)(now + MOVE_D * DAY_US));
    const char *at[3] = {zone, now_text, later_text};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT EXTRACT(EPOCH FROM (to_timestamp($2::bigint / 1e6) AT "
                                 "TIME ZONE $1) - (to_timestamp($2::bigint / 1e6) AT TIME ZONE "
                                 "'UTC'))::int * 100000 + EXTRACT(EPOCH FROM (to_timestamp("
                                 "$3::bigint / 1e6) AT TIME ZONE $1) - (to_timestamp($3::bigint "
                                 "/ 1e6) AT TIME ZONE 'UTC'))::int",
                                 3, at),
                     (int64_t)STANDARD_S * 100000 + SUMMER_S);
}

/* A cash purchase, a batch purchase and a card sale for member. */
static void send_commands(const struct tier_tenant *t, const char *member, const char *product,
                          const char *run)
{
    char path[160], body[512];
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", member);
    struct api_response r = tier_tenant_call(
        t, "POST", path,
        "{\"amount\":1000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}");
    if (r.status != 201)
        fail_msg("purchase: %ld %s", r.status, r.raw);
    api_response_free(&r);
    snprintf(body, sizeof(body),
             "{\"type\":\"purchase\",\"member_id\":\"%s\",\"idempotency_key\":\"clock-%s\","
             "\"amount\":1000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}\n",
             member, run);
    const char *headers[] = {"Content-Type: application/x-ndjson", NULL};
    r = api_call("POST", "/v1/events:batch", body, t->key, headers);
    if (r.status != 200)
        fail_msg("batch: %ld %s", r.status, r.raw);
    api_response_free(&r);
    sell_card(t, member, product);
}

struct offsets_seen {
    const char *tenant_id;
    int64_t moved_at_us;     /* commands stamped from here on were sent after the move */
    int before[3], after[3]; /* purchases, card sales: how many carried the wanted offset */
    int wrong;
};

static void tally(struct offsets_seen *s, bool after, int kind, int32_t offset_s)
{
    if (offset_s != (after ? SUMMER_S : STANDARD_S)) {
        s->wrong++;
        return;
    }
    (after ? s->after : s->before)[kind]++;
}

static void on_command(void *ctx, const rd_kafka_message_t *m)
{
    struct offsets_seen *s = ctx;
    char err[128];
    Envelope *env = envelope_decode(m->payload, m->len, err, sizeof(err));
    if (!env)
        return;
    if (strcmp(env->tenant_id, s->tenant_id) == 0) {
        bool after = env->occurred_at_us >= s->moved_at_us;
        if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_RECORD_PURCHASE)
            tally(s, after, 0, env->record_purchase->utc_offset_s);
        else if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_CARD)
            tally(s, after, 2, env->issue_card->utc_offset_s);
    }
    envelope_free(env);
}

static void test_utc_offset_follows_the_clock(void **state)
{
    struct tier_tenant t;
    tier_tenant_make(&t);
    PGconn *pg = test_pg();
    set_summer_zone(pg, &t);
    PQfinish(pg);
    char product[128], member[64];
    define_time_card(&t, product);
    tier_tenant_member(&t, member);
    send_commands(&t, member, product, t.tenant_id);

    int64_t saved = test_clock_advance_us(MOVE_D * DAY_US);
    struct offsets_seen s = {.tenant_id = t.tenant_id, .moved_at_us = clock_now_us()};
    char run[96];
    snprintf(run, sizeof(run), "%s-moved", t.tenant_id);
    send_commands(&t, member, product, run);
    test_clock_restore(saved);

    assert_true(topic_read_all(TOPIC_LEDGER_COMMANDS, on_command, &s) > 0);
    assert_int_equal(s.wrong, 0);
    assert_int_equal(s.before[0], 2); /* the purchase and the batch's */
    assert_int_equal(s.before[2], 1);
    assert_int_equal(s.after[0], 2);
    assert_int_equal(s.after[2], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_card_liability_follows_the_clock, save_clock,
                                        restore_clock),
        cmocka_unit_test_setup_teardown(test_utc_offset_follows_the_clock, save_clock,
                                        restore_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
