/* Unit tests for libs/ids/uuid7. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ids/uuid7.h"

#define IDS_COUNT 10000

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_format_and_bits(void **state)
{
    char id[UUID_STR_SIZE];
    uint8_t b[16];
    uuid7_generate(id);
    assert_int_equal(strlen(id), 36);
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(id[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", id[i])); /* lowercase hex */
    }
    assert_int_equal(id[14], '7');           /* version */
    assert_non_null(strchr("89ab", id[19])); /* variant 10 */
    assert_true(uuid_is_valid(id));
    assert_true(uuid_parse(id, b));
    assert_int_equal(b[6] >> 4, 7);
    assert_int_equal(b[8] & 0xc0, 0x80);
}

static void test_strictly_increasing(void **state)
{
    static char ids[IDS_COUNT][UUID_STR_SIZE];
    for (size_t i = 0; i < IDS_COUNT; i++)
        uuid7_generate(ids[i]);
    for (size_t i = 1; i < IDS_COUNT; i++)
        assert_true(strcmp(ids[i - 1], ids[i]) < 0);
}

static void test_timestamp(void **state)
{
    char id[UUID_STR_SIZE];
    uint64_t before = now_ms();
    uuid7_generate(id);
    uint64_t after = now_ms();
    uint64_t ms = uuid7_unix_ms(id);
    /* The counter may borrow a few ms ahead after a burst; allow a little. */
    assert_true(ms >= before);
    assert_true(ms <= after + 50);
}

static void test_parse_rejects(void **state)
{
    uint8_t b[16];
    static const char *const bad[] = {
        "",
        "0190f5e2-7c3a-7b1e-8f00-12345678901",   /* short */
        "0190f5e2-7c3a-7b1e-8f00-1234567890123", /* long */
        "0190f5e2x7c3a-7b1e-8f00-123456789012",  /* dash */
        "0190f5e2-7c3a-7b1e-8f00-12345678901g",  /* hex */
        "0190f5e27c3a-7b1e-8f00-12345678901234",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(uuid_is_valid(bad[i]));
        assert_false(uuid_parse(bad[i], b));
    }
    assert_false(uuid_is_valid(NULL));
    assert_true(uuid_parse("0190F5E2-7C3A-7B1E-8F00-123456789012", b));
    assert_int_equal(b[0], 0x01);
    assert_int_equal(b[15], 0x12);
    /* v4 id: valid, but no v7 timestamp. */
    assert_true(uuid_is_valid("0190f5e2-7c3a-4b1e-8f00-123456789012"));
    assert_int_equal(uuid7_unix_ms("0190f5e2-7c3a-4b1e-8f00-123456789012"), 0);
    assert_int_equal(uuid7_unix_ms("0190f5e2-7c3a-7b1e-8f00-123456789012"), 0x0190f5e27c3aull);
}

/* Same name, same id; another name, another id; version 8, variant 10. */
static void test_name_based(void **state)
{
    char a[UUID_STR_SIZE], b[UUID_STR_SIZE], c[UUID_STR_SIZE];
    uuid8_from_name("referral:m1:referrer", a);
    uuid8_from_name("referral:m1:referrer", b);
    uuid8_from_name("referral:m1:referee", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_true(uuid_is_valid(a));
    assert_int_equal(a[14], '8');
    assert_true(strchr("89ab", a[19]) != NULL);
    /* SHA-256("abc") begins ba7816bf 8f01cfea 414140de 5dae2223 */
    uuid8_from_name("abc", a);
    assert_string_equal(a, "ba7816bf-8f01-8fea-8141-40de5dae2223");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_and_bits), cmocka_unit_test(test_strictly_increasing),
        cmocka_unit_test(test_timestamp),       cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_name_based),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
