/* Days on a membership (time) card as a reward (issue 12), end to end in
 * a tenant of its own because it moves the test clock:
 *
 *  - a card_days reward of the catalogue: the redemption spends the points
 *    and adds the days to the member's time card in one posting (journal
 *    line with its reason), the entitlement check (from the cards cache)
 *    sees the new end, and under the test clock the card still opens the
 *    door after its first end; a retried request (Idempotency-Key) and
 *    the ExtendCard command redelivered change nothing;
 *  - a member without an active card of the product: 409 no_active_card,
 *    the points are not spent and the unit of stock comes back;
 *  - a referral rule giving card days: the referrer (who holds a card)
 *    gets them once after the lock period, even when the command is
 *    redelivered; the referee (who holds none) gets nothing and the
 *    referral records why (referee_card_note no_active_card);
 *  - the redemption.done notice is owed until Kafka has it (noticed_at). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"
#include "../support/expect.h"
#include "../support/sql_tenant.h"
#include "../support/sql_wait.h"
#include "../support/test_clock.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "events/card_types.h"
#include "events/codec.h"
#include "ids/uuid7.h"

#define DEADLINE_MS 30000
#define DAY_US      INT64_C(86400000000)
#define CARD_DAYS   30 /* the product's validity */
#define GIFT_DAYS   10 /* the reward's days */
#define PRICE       300

static char tenant_id[48], admin_key[64], product[96];
static int64_t clock_before;
static bool clock_moved;

static int restore_clock(void **state)
{
    if (clock_moved)
        test_clock_restore(clock_before);
    clock_moved = false;
    return 0;
}

static void expect_status(struct api_response *r, long status, const char *what)
{
    if (r->status != status)
        fail_msg("%s: wanted %ld, got %ld %s", what, status, r->status, r->raw);
}

static int64_t sql_int(const char *sql, const char *p1)
{
    return sql_int_of(sql, tenant_id, p1);
}

static void wait_for(const char *sql, const char *p1, int64_t want, const char *what)
{
    sql_wait_for(sql, tenant_id, p1, want, what);
}

#define POINTS_OF                                                                                  \
    "SELECT coalesce(sum(points), 0) FROM ledger.read_balances WHERE tenant_id = $1 "              \
    "AND member_id = $2"
#define VALID_TO_OF                                                                                \
    "SELECT valid_to_us FROM ledger.read_cards WHERE tenant_id = $1 AND card_id = $2"
#define EXTENSIONS_OF                                                                              \
    "SELECT count(*) FROM ledger.read_journal WHERE tenant_id = $1 AND asset = 'card_days' "       \
    "AND account LIKE 'member:%' AND reason LIKE 'card_extend:card:' || $2 || ':%'"

/* ------------------------------------------------------------ setup */
static void tenant_make(void)
{
    sql_tenant_make("days", "Card Days Chain", tenant_id, sizeof(tenant_id), admin_key);
    snprintf(product, sizeof(product), "gym-month-%s", tenant_id);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"kind\":\"time\",\"name\":\"Gym month\",\"price\":30000,"
             "\"validity_days\":%d}",
             product, CARD_DAYS);
    struct api_response r = api_call("POST", "/v1/products", body, admin_key, NULL);
    expect_status(&r, 201, "the product");
    api_response_free(&r);
    snprintf(body, sizeof(body), "{\"rules\":[{\"kind\":\"card\",\"product_ids\":[\"%s\"]}]}",
             product);
    r = api_call("PUT", "/v1/resources/door:gym", body, admin_key, NULL);
    expect_status(&r, 200, "the resource");
    api_response_free(&r);
}

struct member {
    char id[64], code[16];
};

static void member_make(struct member *m, const char *referral_code)
{
    char phone[16], body[256], code[64] = "";
    test_unique_phone(phone);
    if (referral_code)
        snprintf(code, sizeof(code), ",\"referral_code\":\"%s\"", referral_code);
    snprintf(body, sizeof(body), "{\"name\":\"D\",\"phone\":\"%s\",\"branch_id\":\"hq\"%s}", phone,
             code);
    struct api_response r = api_call("POST", "/v1/members", body, admin_key, NULL);
    expect_status(&r, 201, "a member");
    snprintf(m->id, sizeof(m->id), "%s", json_str_at(r.body, "member_id"));
    snprintf(m->code, sizeof(m->code), "%s", json_str_at(r.body, "referral_code"));
    api_response_free(&r);
}

/* A time card of the product, sold for cash; its id. */
static void sell_card(const char *member, char card[64])
{
    char path[160], body[256];
    snprintf(path, sizeof(path), "/v1/members/%s/cards", member);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}",
             product);
    struct api_response r = api_call("POST", path, body, admin_key, NULL);
    expect_status(&r, 201, "a card sale");
    snprintf(card, 64, "%s", json_str_at(r.body, "card_id"));
    api_response_free(&r);
}

static void grant(const char *member, int64_t points)
{
    char path[160], body[160];
    snprintf(path, sizeof(path), "/v1/members/%s/points-adjustments", member);
    snprintf(body, sizeof(body), "{\"points\":%lld,\"reason\":\"test grant\"}", (long long)points);
    struct api_response r = api_call("POST", path, body, admin_key, NULL);
    expect_status(&r, 201, "a points grant");
    api_response_free(&r);
}

static void reward_make(const char *body, char id[64])
{
    struct api_response r = api_call("POST", "/v1/rewards", body, admin_key, NULL);
    expect_status(&r, 201, "a reward");
    snprintf(id, 64, "%s", json_str_at(r.body, "reward_id"));
    api_response_free(&r);
}

static struct api_response redeem(const char *member, const char *reward, const char *idem)
{
    char path[160], body[160], key[128];
    snprintf(path, sizeof(path), "/v1/members/%s/redemptions", member);
    snprintf(body, sizeof(body), "{\"reward_id\":\"%s\"}", reward);
    snprintf(key, sizeof(key), "Idempotency-Key: %s", idem ? idem : "");
    const char *headers[] = {"Prefer: wait=20", idem ? key : NULL, NULL};
    return api_call("POST", path, body, admin_key, headers);
}

/* The entitlement check of door:gym: allowed, and its valid_until. */
static bool door_opens(const char *member, char valid_until[40])
{
    char path[200];
    snprintf(path, sizeof(path), "/v1/members/%s/entitlements?resource=door:gym", member);
    struct api_response r = api_call("GET", path, NULL, admin_key, NULL);
    bool open = r.status == 200 && json_is_true(json_object_get(r.body, "allowed"));
    const char *until = open ? json_str_at(r.body, "valid_until") : "";
    snprintf(valid_until, 40, "%s", until ? until : "");
    api_response_free(&r);
    return open;
}

struct door_wait {
    const char *member;
    char want[40];
};

static bool door_until(void *arg)
{
    struct door_wait *w = arg;
    char until[40];
    return door_opens(w->member, until) && strcmp(until, w->want) == 0;
}

/* ------------------------------------------------------------ redelivery */
struct kept {
    const char *command_id;
    bool found;
    int32_t partition;
    char key[64];
    uint8_t *payload;
    size_t len;
};

static void on_keep(void *ctx, const rd_kafka_message_t *m)
{
    struct kept *k = ctx;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    if (!env)
        return;
    if (!k->found && env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXTEND_CARD &&
        strcmp(env->extend_card->command_id, k->command_id) == 0) {
        k->found = true;
        k->partition = m->partition;
        snprintf(k->key, sizeof(k->key), "%.*s", (int)m->key_len, (const char *)m->key);
        k->payload = malloc(m->len);
        assert_non_null(k->payload);
        memcpy(k->payload, m->payload, m->len);
        k->len = m->len;
    }
    envelope_free(env);
}

/* Sends the ExtendCard command_id again (what a relay that sends an
 * outbox row twice does), then waits until the ledger has passed it: a
 * points grant to the same member (same key, same partition, applied in
 * order) is answered after it. */
static void redeliver_extend(const char *command_id, const char *member)
{
    struct kept k = {.command_id = command_id};
    assert_true(topic_read_all(TOPIC_LEDGER_COMMANDS, on_keep, &k) >= 0);
    if (!k.found)
        fail_msg("no ExtendCard %s on ledger-commands", command_id);
    assert_int_equal(topic_produce(TOPIC_LEDGER_COMMANDS, k.partition, k.key, strlen(k.key),
                                   k.payload, k.len, NULL),
                     0);
    free(k.payload);
    grant(member, 1);
}

/* ------------------------------------------------------------ tests */
static void test_catalogue_takes_card_days(void **state)
{
    api_expect_problem(api_call("POST", "/v1/rewards",
                                "{\"name\":\"Days\",\"kind\":\"card_days\",\"points_price\":10}",
                                admin_key, NULL),
                       422, "validation_failed");
    api_expect_problem(api_call("POST", "/v1/rewards",
                                "{\"name\":\"Days\",\"kind\":\"card_days\",\"points_price\":10,"
                                "\"card\":{\"product_id\":\"p\",\"days\":0}}",
                                admin_key, NULL),
                       422, "validation_failed");
    api_expect_problem(api_call("POST", "/v1/rewards",
                                "{\"name\":\"Mug\",\"kind\":\"gift\",\"points_price\":10,"
                                "\"card\":{\"product_id\":\"p\",\"days\":3}}",
                                admin_key, NULL),
                       422, "validation_failed");
    char id[64], body[256];
    snprintf(body, sizeof(body),
             "{\"name\":\"Week\",\"kind\":\"card_days\",\"points_price\":70,"
             "\"card\":{\"product_id\":\"%s\",\"days\":7}}",
             product);
    reward_make(body, id);
    struct api_response r = api_call("GET", "/v1/rewards", NULL, admin_key, NULL);
    expect_status(&r, 200, "the catalogue");
    json_t *list = json_object_get(r.body, "rewards");
    bool found = false;
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *w = json_array_get(list, i);
        if (strcmp(json_str_at(w, "reward_id"), id) == 0) {
            found = true;
            assert_string_equal(json_str_at(w, "card.product_id"), product);
            assert_int_equal(json_int_at(w, "card.days"), 7);
        }
    }
    assert_true(found);
    api_response_free(&r);
}

static void test_redeemed_days_extend_the_card_once(void **state)
{
    struct member m;
    char card[64], reward[64], body[256], redemption[64], idem[UUID_STR_SIZE];
    member_make(&m, NULL);
    sell_card(m.id, card);
    grant(m.id, 500);
    int64_t first_end = sql_int(VALID_TO_OF, card);
    snprintf(body, sizeof(body),
             "{\"name\":\"Ten days\",\"kind\":\"card_days\",\"points_price\":%d,\"stock\":5,"
             "\"card\":{\"product_id\":\"%s\",\"days\":%d}}",
             PRICE, product, GIFT_DAYS);
    reward_make(body, reward);

    uuid7_generate(idem);
    struct api_response r = redeem(m.id, reward, idem);
    expect_status(&r, 201, "the redemption");
    snprintf(redemption, sizeof(redemption), "%s", json_str_at(r.body, "operation_id"));
    api_response_free(&r);
    assert_true(sql_int(VALID_TO_OF, card) == first_end + GIFT_DAYS * DAY_US);
    assert_int_equal(sql_int(POINTS_OF, m.id), 500 - PRICE);
    /* the journal: the days with a reason naming the card, product and
     * reward, against the tenant's granted account */
    char reason[300];
    snprintf(reason, sizeof(reason), "card_extend:card:%s:product:%s:redemption:%s", card, product,
             reward);
    assert_int_equal(sql_int("SELECT coalesce(sum(amount), 0) FROM ledger.read_journal WHERE "
                             "tenant_id = $1 AND asset = 'card_days' AND reason = $2 "
                             "AND account LIKE 'member:%'",
                             reason),
                     GIFT_DAYS);
    /* the cache: the entitlement check answers with the new end */
    struct door_wait w = {.member = m.id};
    event_format_time(first_end + GIFT_DAYS * DAY_US, w.want);
    if (!poll_until(door_until, &w, DEADLINE_MS))
        fail_msg("the door's valid_until never became %s", w.want);

    /* a retry with the key: the same answer; the command again: nothing */
    r = redeem(m.id, reward, idem);
    expect_status(&r, 201, "the retried redemption");
    assert_string_equal(json_str_at(r.body, "operation_id"), redemption);
    api_response_free(&r);
    redeliver_extend(redemption, m.id);
    assert_true(sql_int(VALID_TO_OF, card) == first_end + GIFT_DAYS * DAY_US);
    assert_int_equal(sql_int(EXTENSIONS_OF, card), 1);
    assert_int_equal(sql_int(POINTS_OF, m.id), 500 - PRICE + 1);
    wait_for("SELECT count(*) FROM ingest.redemptions WHERE tenant_id = $1 AND redemption_id = $2 "
             "AND status = 'done' AND noticed_at IS NOT NULL",
             redemption, 1, "the redemption to be done and its notice delivered");

    /* a crash after the move to done, before the report (the notice sent
     * but never acknowledged as far as PostgreSQL knows): still owed, so
     * a later round sends it again and the report marks it */
    PGconn *pg = test_pg();
    const char *p[2] = {tenant_id, redemption};
    assert_int_equal(
        test_pg_int(pg,
                    "WITH u AS (UPDATE ingest.redemptions SET noticed_at = NULL, "
                    "notice_sent_at = now() - interval '1 minute' WHERE tenant_id = $1 "
                    "AND redemption_id = $2 RETURNING 1) SELECT count(*) FROM u",
                    2, p),
        1);
    PQfinish(pg);
    wait_for("SELECT count(*) FROM ingest.redemptions WHERE tenant_id = $1 AND redemption_id = $2 "
             "AND noticed_at IS NOT NULL AND notice_sent_at > now() - interval '50 seconds'",
             redemption, 1, "the owed notice to be sent again and delivered");

    /* under the test clock: past the card's first end, the door opens */
    clock_before = test_clock_advance_us((CARD_DAYS + 5) * DAY_US);
    clock_moved = true;
    char until[40];
    assert_true(door_opens(m.id, until));
    restore_clock(NULL);
}

static void test_no_active_card_spends_nothing(void **state)
{
    struct member m;
    char reward[64], body[256];
    member_make(&m, NULL);
    grant(m.id, 500);
    snprintf(body, sizeof(body),
             "{\"name\":\"Days\",\"kind\":\"card_days\",\"points_price\":%d,\"stock\":1,"
             "\"card\":{\"product_id\":\"%s\",\"days\":%d}}",
             PRICE, product, GIFT_DAYS);
    reward_make(body, reward);
    api_expect_problem(redeem(m.id, reward, NULL), 409, "no_active_card");
    assert_int_equal(sql_int(POINTS_OF, m.id), 500);
    wait_for("SELECT stock FROM ingest.rewards WHERE tenant_id = $1 AND reward_id = $2", reward, 1,
             "the unit to come back");
    wait_for("SELECT count(*) FROM ingest.redemptions WHERE tenant_id = $1 AND reward_id = $2 "
             "AND status = 'refused'",
             reward, 1, "the redemption to be refused");
}

#define REFERRAL_STATUS                                                                            \
    "SELECT count(*) FROM campaign.referrals WHERE tenant_id = $1 AND referee_member_id = $2 "     \
    "AND status = "

static void test_referral_days_once(void **state)
{
    const char *headers[] = {"Prefer: wait=10", NULL};
    char body[400], card[64], op[64], path[160], id[UUID_STR_SIZE], name[256];
    snprintf(body, sizeof(body),
             "{\"lock_days\":1,\"referrer\":{\"points\":0,\"card\":{\"product_id\":\"%s\","
             "\"days\":15}},\"referee\":{\"points\":50,\"card\":{\"product_id\":\"%s\","
             "\"days\":5}}}",
             product, product);
    struct api_response r = api_call("PUT", "/v1/config/referrals", body, admin_key, headers);
    expect_status(&r, 200, "the referral rule");
    api_response_free(&r);
    r = api_call("GET", "/v1/config/referrals", NULL, admin_key, NULL);
    assert_int_equal(json_int_at(r.body, "referrer.card.days"), 15);
    api_response_free(&r);
    struct member a, b;
    member_make(&a, NULL);
    sell_card(a.id, card);
    member_make(&b, a.code); /* b holds no card */
    int64_t first_end = sql_int(VALID_TO_OF, card);
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", b.id);
    r = api_call("POST", path,
                 "{\"amount\":5000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}",
                 admin_key, NULL);
    expect_status(&r, 201, "the referee's purchase");
    snprintf(op, sizeof(op), "%s", json_str_at(r.body, "operation_id"));
    api_response_free(&r);
    wait_for(REFERRAL_STATUS "'locked'", b.id, 1, "the referral to lock");
    clock_before = test_clock_advance_us(2 * DAY_US);
    clock_moved = true;
    wait_for(REFERRAL_STATUS "'rewarded'", b.id, 1, "the referral to be rewarded");
    wait_for(POINTS_OF, b.id, 50, "the referee's points");
    restore_clock(NULL);
    snprintf(name, sizeof(name), "referral:%s:%s:referrer:card_days", tenant_id, b.id);
    uuid8_from_name(name, id);
    wait_for("SELECT count(*) FROM ledger.read_commands WHERE tenant_id = $1 AND command_id = $2 "
             "AND status = 'posted'",
             id, 1, "the referrer's days");
    assert_true(sql_int(VALID_TO_OF, card) == first_end + 15 * DAY_US);
    /* exactly once on a replayed cause */
    redeliver_extend(id, a.id);
    assert_true(sql_int(VALID_TO_OF, card) == first_end + 15 * DAY_US);
    assert_int_equal(sql_int(EXTENSIONS_OF, card), 1);
    /* the referee held no card: nothing sent, and the reason recorded */
    assert_int_equal(sql_int("SELECT count(*) FROM campaign.referrals WHERE tenant_id = $1 "
                             "AND referee_member_id = $2 AND referee_card_note = 'no_active_card' "
                             "AND referrer_card_note = ''",
                             b.id),
                     1);
    snprintf(name, sizeof(name), "referral:%s:%s:referee:card_days", tenant_id, b.id);
    uuid8_from_name(name, id);
    assert_int_equal(sql_int("SELECT count(*) FROM ledger.read_commands WHERE tenant_id = $1 "
                             "AND command_id = $2",
                             id),
                     0);
}

int main(void)
{
    tenant_make();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalogue_takes_card_days),
        cmocka_unit_test_teardown(test_redeemed_days_extend_the_card_once, restore_clock),
        cmocka_unit_test(test_no_active_card_spends_nothing),
        cmocka_unit_test_teardown(test_referral_days_once, restore_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
