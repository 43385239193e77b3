/* Text at its limits reaches the ledger whole (issue 10, item 1). Ingest
 * allowed a 200-character reason and the ledger cut the prefixed reason
 * at 299 bytes, in the middle of a Chinese character: PostgreSQL refused
 * the batch, which was retried for ever and stopped every partition of
 * that ledger worker. Product names were limited in characters by ingest
 * and in bytes by the ledger, and a product id of 64 Chinese characters
 * was cut to 127 bytes. Now one limit in bytes is shared
 * (events/text_limits.h): what ingest accepts is stored whole, and what
 * would not fit is refused by ingest with a 422. */
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

#define CJK      "\xe7\xa7\xaf" /* 积: 3 bytes of UTF-8 */
#define BODY_MAX 4096

/* n copies of one CJK character, then tail. */
static void cjk_text(char *out, size_t len, int n, const char *tail)
{
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        assert_true(at + 3 < len);
        memcpy(out + at, CJK, 3);
        at += 3;
    }
    snprintf(out + at, len - at, "%s", tail);
}

static void expect_status(struct api_response r, long status, const char *what)
{
    if (r.status != status)
        fail_msg("%s: %ld %s", what, r.status, r.raw ? r.raw : "");
    api_response_free(&r);
}

static int64_t journal_lines_with_reason(const char *member_id, const char *reason)
{
    PGconn *pg = test_pg();
    char account[96];
    snprintf(account, sizeof(account), "member:%s", member_id);
    const char *p[] = {account, reason};
    int64_t n = test_pg_int(pg,
                            "SELECT count(*) FROM ledger.journal WHERE account = $1 "
                            "AND reason = $2",
                            2, p);
    PQfinish(pg);
    return n;
}

static void test_points_reason_of_200_cjk_characters_is_stored_whole(void **state)
{
    char member[64], path[160], reason[1024], body[BODY_MAX], stored[1100];
    test_register_member(member);
    snprintf(path, sizeof(path), "/v1/members/%s/points-adjustments", member);
    cjk_text(reason, sizeof(reason), 200, ""); /* 600 bytes */
    snprintf(body, sizeof(body), "{\"points\":10,\"reason\":\"%s\"}", reason);
    /* before the fix: 202, the verdict never came, the partition stalled */
    expect_status(api_post(path, body, NULL), 201, "200-character reason");
    snprintf(stored, sizeof(stored), "points_adjustment:%s", reason);
    assert_int_equal(journal_lines_with_reason(member, stored), 1);

    cjk_text(reason, sizeof(reason), 201, "");
    snprintf(body, sizeof(body), "{\"points\":10,\"reason\":\"%s\"}", reason);
    expect_status(api_post(path, body, NULL), 422, "201-character reason");
}

static void test_refund_reason_of_200_cjk_characters_is_stored_whole(void **state)
{
    char member[64], path[160], reason[1024], body[BODY_MAX], stored[1100];
    test_register_member(member);
    snprintf(path, sizeof(path), "/v1/members/%s/topups", member);
    expect_status(
        api_post(path, "{\"amount\":10000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", NULL),
        201, "top-up");
    snprintf(path, sizeof(path), "/v1/members/%s/refunds", member);
    cjk_text(reason, sizeof(reason), 200, "");
    snprintf(body, sizeof(body),
             "{\"kind\":\"stored_value\",\"reason\":\"%s\",\"branch_id\":\"hq\",\"principal\":100}",
             reason);
    expect_status(api_post(path, body, NULL), 201, "refund with a 200-character reason");
    snprintf(stored, sizeof(stored), "refund_stored_value:%s", reason);
    assert_true(journal_lines_with_reason(member, stored) >= 1);
}

static void test_product_with_cjk_id_and_name_at_their_limits(void **state)
{
    char id[256], name[1024], body[BODY_MAX], member[64], path[160], suffix[16];
    snprintf(suffix, sizeof(suffix), "-%06x", (unsigned)(time(NULL) ^ getpid()) & 0xffffff);
    cjk_text(id, sizeof(id), 40, suffix); /* 127 bytes: the id limit */
    assert_int_equal(strlen(id), 127);
    cjk_text(name, sizeof(name), 200, ""); /* 600 bytes */
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"kind\":\"count\",\"name\":\"%s\",\"price\":1000,"
             "\"uses\":5,\"validity_days\":30}",
             id, name);
    /* before the fix the ledger refused a name over 200 bytes */
    expect_status(api_post("/v1/products", body, NULL), 201, "product at the limits");
    test_register_member(member);
    snprintf(path, sizeof(path), "/v1/members/%s/cards", member);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}", id);
    expect_status(api_post(path, body, NULL), 201, "a card of it");

    /* 64 characters (192 bytes): before the fix ingest took it and the
     * ledger cut it to 127 bytes, mid-character; now ingest refuses it */
    cjk_text(id, sizeof(id), 64, "");
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"kind\":\"count\",\"name\":\"x\",\"price\":1000,\"uses\":5,"
             "\"validity_days\":30}",
             id);
    expect_status(api_post("/v1/products", body, NULL), 422, "product id over 127 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_points_reason_of_200_cjk_characters_is_stored_whole),
        cmocka_unit_test(test_refund_reason_of_200_cjk_characters_is_stored_whole),
        cmocka_unit_test(test_product_with_cjk_id_and_name_at_their_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
