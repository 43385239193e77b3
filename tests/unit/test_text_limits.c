/* The text limits ingest and the ledger share (events/text_limits.h,
 * issue 10 item 1): ingest refuses text over a byte limit even when it is
 * within the character limit, and the ledger refuses (dead-letters) a
 * command whose text is longer than the limit rather than cutting it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "../../services/ledger/ledger.h"
#include "events/card_types.h"
#include "events/text_limits.h"
#include "http/validate.h"

/* n copies of a UTF-8 character of char_len bytes. */
static char *repeat(const char *ch, size_t n)
{
    size_t len = strlen(ch);
    char *s = malloc(n * len + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * len, ch, len);
    s[n * len] = '\0';
    return s;
}

static bool text_ok(const char *value, size_t max_chars, size_t max_bytes)
{
    json_t *obj = json_pack("{s:s}", "f", value);
    struct validation v;
    const char *out = NULL;
    validation_init(&v);
    bool ok = validate_text(&v, obj, "f", true, 1, max_chars, max_bytes, &out);
    assert_int_equal(ok, validation_ok(&v));
    validation_free(&v);
    json_decref(obj);
    return ok;
}

static void test_validate_text_counts_characters_and_bytes(void **state)
{
    char *cjk200 = repeat("\xe7\xa7\xaf", 200), *cjk201 = repeat("\xe7\xa7\xaf", 201);
    char *emoji200 = repeat("\xf0\x9f\x98\x80", 200);
    assert_true(text_ok(cjk200, TEXT_REASON_CHARS_MAX, TEXT_REASON_BYTES_MAX));
    assert_false(text_ok(cjk201, TEXT_REASON_CHARS_MAX, TEXT_REASON_BYTES_MAX));
    /* 200 characters of 4 bytes: the character limit implies the byte one */
    assert_true(text_ok(emoji200, TEXT_REASON_CHARS_MAX, TEXT_REASON_BYTES_MAX));
    char *cjk42 = repeat("\xe7\xa7\xaf", 42), *cjk43 = repeat("\xe7\xa7\xaf", 43);
    assert_true(text_ok(cjk42, TEXT_PRODUCT_ID_CHARS_MAX, TEXT_ID_BYTES_MAX));  /* 126 bytes */
    assert_false(text_ok(cjk43, TEXT_PRODUCT_ID_CHARS_MAX, TEXT_ID_BYTES_MAX)); /* 129 */
    free(cjk200), free(cjk201), free(emoji200), free(cjk42), free(cjk43);
}

static void test_ledger_refuses_text_over_its_limit(void **state)
{
    Envelope env = TESSERA__ENVELOPE__V1__ENVELOPE__INIT;
    AdjustPoints a = TESSERA__LEDGER__V1__ADJUST_POINTS__INIT;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS;
    env.adjust_points = &a;
    char *at_limit = repeat("\xf0\x9f\x98\x80", TEXT_REASON_CHARS_MAX); /* 800 bytes */
    a.reason = at_limit;
    assert_null(ledger_command_text_problem(&env));
    char *over = repeat("\xe7\xa7\xaf", TEXT_REASON_BYTES_MAX / 3 + 1); /* 801 bytes */
    a.reason = over;
    assert_non_null(ledger_command_text_problem(&env));

    DefineProduct d = TESSERA__CARDS__V1__DEFINE_PRODUCT__INIT;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_DEFINE_PRODUCT;
    env.define_product = &d;
    char *id127 = repeat("a", TEXT_ID_BYTES_MAX), *id128 = repeat("a", TEXT_ID_BYTES_MAX + 1);
    char *name600 = repeat("\xe7\xa7\xaf", TEXT_NAME_CHARS_MAX);
    d.product_id = id127;
    d.name = name600;
    assert_null(ledger_command_text_problem(&env));
    d.product_id = id128;
    assert_non_null(ledger_command_text_problem(&env));
    free(at_limit), free(over), free(id127), free(id128), free(name600);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_text_counts_characters_and_bytes),
        cmocka_unit_test(test_ledger_refuses_text_over_its_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
