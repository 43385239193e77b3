/* Unit tests for services/ingest/member_view_text.c: the member view's
 * answer written around the cached profile's text must be, byte for byte,
 * what jansson writes for the parsed profile with the parts set in it
 * (the path it replaces), with and without the tags, for profiles whose
 * personal data imitates the markers it looks for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../services/ingest/member_view_text.h"

/* A profile as member_view.c's profile_json builds it (same keys, same
 * order), with attributes and tags chosen by the test. */
static json_t *profile(json_t *attributes, json_t *tags, const char *name)
{
    json_t *v =
        json_pack("{s:s, s:s, s:s, s:s, s:n, s:s, s:n, s:s, s:s, s:n, s:o, s:s, s:n, s:[]}",
                  "member_id", "0190a1b2-0000-7000-8000-000000000001", "member_no", "M1", "name",
                  name, "phone", "13800000000", "email", "birthday", "1990-01-01", "gender",
                  "branch_id", "hq", "referral_code", "ABC", "referred_by", "attributes",
                  attributes, "registered_at", "2026-12-01T00:00:00Z", "tier", "cards");
    assert_non_null(v);
    json_object_set_new(v, "personal_data_erased_at", json_null());
    json_object_set_new(v, "tags", tags);
    return v;
}

/* The parts as the view's steps set them: balances, tier, (the member's
 * tier progress), cards, coupons. */
static json_t *parts(void)
{
    json_t *p = json_object();
    json_object_set_new(p, "balances",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "points", (json_int_t)12,
                                  "points_pending", (json_int_t)0, "stored_value", (json_int_t)1000,
                                  "stored_value_principal", (json_int_t)900, "stored_value_bonus",
                                  (json_int_t)100));
    json_object_set_new(
        p, "tier", json_pack("{s:s, s:i, s:i}", "name", "Gold", "rank", 2, "discount_bp", 500));
    json_object_set_new(p, "tier_progress", json_pack("{s:I}", "spend", (json_int_t)4200));
    json_object_set_new(p, "cards", json_pack("[{s:s, s:s}]", "card_id", "c1", "status", "active"));
    json_object_set_new(p, "coupons", json_array());
    return p;
}

/* What the jansson path answers: the profile parsed, the parts set in it. */
static char *expected(const char *profile_text, const json_t *p, bool with_tags)
{
    json_t *body = json_loads(profile_text, 0, NULL);
    assert_non_null(body);
    json_object_update(body, (json_t *)p);
    if (!with_tags)
        json_object_del(body, "tags");
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

static void check_renders_with_parts(json_t *prof, json_t *p);

static void check_renders_as_jansson(json_t *prof)
{
    check_renders_with_parts(prof, parts());
}

static void check_renders_with_parts(json_t *prof, json_t *p)
{
    char *text = json_dumps(prof, JSON_COMPACT);
    json_decref(prof);
    struct profile_text_marks m;
    assert_true(profile_text_marks_find(text, strlen(text), &m));
    for (int with_tags = 0; with_tags <= 1; with_tags++) {
        size_t len = 0;
        char *out = member_view_text_render(text, &m, with_tags, p, &len);
        char *want = expected(text, p, with_tags);
        assert_non_null(out);
        assert_string_equal(out, want);
        assert_int_equal(len, strlen(want));
        free(out);
        free(want);
    }
    json_decref(p);
    free(text);
}

static void test_a_plain_profile(void **state)
{
    check_renders_as_jansson(profile(json_object(), json_pack("[s, s]", "gold", "vip"), "Ann"));
}

static void test_no_tags(void **state)
{
    check_renders_as_jansson(profile(json_object(), json_array(), "Ann"));
}

/* Personal data that spells the markers: inside strings every quote is
 * escaped, and in attributes the real keys come last. */
static void test_personal_data_that_spells_the_markers(void **state)
{
    json_t *attrs = json_pack("{s:i, s:n, s:[], s:n, s:[s]}", "a", 1, "tier", "cards",
                              "personal_data_erased_at", "tags", "x");
    check_renders_as_jansson(profile(
        attrs,
        json_pack("[s, s]",
                  ",\"tier\":null,\"cards\":[],\"personal_data_erased_at\":", ",\"tags\":["),
        ",\"tier\":null,\"cards\":[],\"personal_data_erased_at\":null,\"tags\":[]}"));
}

/* Parts larger than the renderer's buffer on the stack (100 cards, many
 * coupons) come out the same. */
static void test_large_parts(void **state)
{
    json_t *p = parts();
    json_t *cards = json_object_get(p, "cards"), *coupons = json_object_get(p, "coupons");
    for (int i = 0; i < 100; i++) {
        json_array_append_new(cards, json_pack("{s:s, s:i, s:s}", "card_id",
                                               "0190a1b2-0000-7000-8000-00000000abcd", "uses_left",
                                               i, "status", "active"));
        json_array_append_new(coupons, json_pack("{s:s, s:I}", "coupon_id",
                                                 "0190a1b2-0000-7000-8000-00000000cdef", "value",
                                                 (json_int_t)i * 100));
    }
    check_renders_with_parts(profile(json_object(), json_array(), "Ann"), p);
}

static void test_other_shapes_are_refused(void **state)
{
    struct profile_text_marks m;
    const char *bad[] = {
        "",
        "{}",
        "{\"member_id\":\"x\"}",
        "{\"tier\":null,\"cards\":[],\"personal_data_erased_at\":null,\"tags\":[]}", /* no ',' */
        "{\"a\":1,\"tier\":null,\"cards\":[],\"personal_data_erased_at\":null}",     /* no tags */
        "{\"a\":1,\"tier\":null,\"cards\":[],\"personal_data_erased_at\":null,\"tags\":[]} ",
        "{\"a\":1,\"tags\":[],\"tier\":null,\"cards\":[],\"personal_data_erased_at\":null}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(profile_text_marks_find(bad[i], strlen(bad[i]), &m));
}

static void test_parts_without_tier_or_cards_are_refused(void **state)
{
    const char *text =
        "{\"a\":1,\"tier\":null,\"cards\":[],\"personal_data_erased_at\":null,\"tags\":[]}";
    struct profile_text_marks m;
    assert_true(profile_text_marks_find(text, strlen(text), &m));
    json_t *p = parts();
    json_object_del(p, "cards");
    size_t len = 0;
    assert_null(member_view_text_render(text, &m, true, p, &len));
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_plain_profile),
        cmocka_unit_test(test_no_tags),
        cmocka_unit_test(test_personal_data_that_spells_the_markers),
        cmocka_unit_test(test_large_parts),
        cmocka_unit_test(test_other_shapes_are_refused),
        cmocka_unit_test(test_parts_without_tier_or_cards_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
