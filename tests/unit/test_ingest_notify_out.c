/* Unit tests for services/ingest/notify_out.c: the consents list routes
 * take (each problem named consents[i].field, no pair twice, 1 to 8
 * items) and the envelopes for notification (addressed to the member,
 * acting as the caller or the member). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../services/ingest/notify_out.h"
#include "events/codec.h"

/* Parses body's consents; the fields named by the problems, joined by
 * spaces, to fields (empty when valid). */
static void parse(const char *body, struct notify_consent_set *set, char *fields, size_t len,
                  json_t **keep)
{
    json_error_t je;
    json_t *b = json_loads(body, 0, &je);
    assert_non_null(b);
    struct validation v;
    validation_init(&v);
    notify_parse_consents(&v, b, true, set);
    fields[0] = '\0';
    for (size_t i = 0; i < json_array_size(v.errors); i++) {
        const char *f = json_string_value(json_object_get(json_array_get(v.errors, i), "field"));
        snprintf(fields + strlen(fields), len - strlen(fields), "%s%s", i ? " " : "", f);
    }
    validation_free(&v);
    *keep = b; /* the set borrows from it */
}

static void test_valid_consents(void **state)
{
    struct notify_consent_set set;
    char fields[256];
    json_t *b;
    parse("{\"consents\":[{\"channel\":\"email\",\"purpose\":\"marketing\",\"granted\":true},"
          "{\"channel\":\"sms\",\"purpose\":\"transactional\",\"granted\":false}]}",
          &set, fields, sizeof(fields), &b);
    assert_string_equal(fields, "");
    assert_int_equal(set.count, 2);
    assert_string_equal(set.items[0].channel, "email");
    assert_string_equal(set.items[0].purpose, "marketing");
    assert_true(set.items[0].granted);
    assert_string_equal(set.items[1].channel, "sms");
    assert_false(set.items[1].granted);
    json_decref(b);
}

static void test_bad_consents_name_the_field(void **state)
{
    static const struct {
        const char *body, *fields;
    } cases[] = {
        {"{}", "consents"},
        {"{\"consents\":[]}", "consents"},
        {"{\"consents\":{}}", "consents"},
        {"{\"consents\":[1]}", "consents[0]"},
        {"{\"consents\":[{\"channel\":\"fax\",\"purpose\":\"marketing\",\"granted\":true}]}",
         "consents[0].channel"},
        {"{\"consents\":[{\"channel\":\"sms\",\"purpose\":\"spam\",\"granted\":true}]}",
         "consents[0].purpose"},
        {"{\"consents\":[{\"channel\":\"sms\",\"purpose\":\"marketing\",\"granted\":1}]}",
         "consents[0].granted"},
        {"{\"consents\":[{\"channel\":\"sms\",\"purpose\":\"marketing\",\"granted\":true,"
         "\"why\":1}]}",
         "consents[0].why"},
        {"{\"consents\":[{\"channel\":\"sms\",\"purpose\":\"marketing\",\"granted\":true},"
         "{\"channel\":\"sms\",\"purpose\":\"marketing\",\"granted\":false}]}",
         "consents[1]"},
        {"{\"consents\":[{},{},{},{},{},{},{},{},{}]}", "consents"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct notify_consent_set set;
        char fields[256];
        json_t *b;
        parse(cases[i].body, &set, fields, sizeof(fields), &b);
        if (strcmp(fields, cases[i].fields) != 0)
            fail_msg("%s: problems at \"%s\", expected \"%s\"", cases[i].body, fields,
                     cases[i].fields);
        json_decref(b);
    }
}

static void test_consent_envelope(void **state)
{
    struct caller staff = {.tenant_id = "demo", .scope = "admin", .key_id = "key_1"};
    struct notify_consent c = {.channel = "push", .purpose = "marketing", .granted = true};
    size_t len = 0;
    uint8_t *bin = notify_encode_consent(&staff, "m-1", "", &c, "api_key:key_1", &len);
    assert_non_null(bin);
    char why[128];
    Envelope *env = envelope_decode(bin, len, why, sizeof(why));
    assert_non_null(env);
    assert_int_equal(env->payload_case, TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CONSENT_CHANGED);
    assert_string_equal(env->member_id, "m-1");
    assert_string_equal(env->actor->kind, "api_key");
    assert_string_equal(env->actor->id, "key_1");
    assert_string_equal(env->consent_changed->channel, "push");
    assert_true(env->consent_changed->granted);
    assert_string_equal(env->consent_changed->source, "api_key:key_1");
    envelope_free(env);
    free(bin);
}

static void test_member_acts_as_itself(void **state)
{
    struct caller member = {.tenant_id = "demo", .scope = "member", .key_id = "member"};
    const char *ids[] = {"a", "b"};
    size_t len = 0;
    uint8_t *bin = notify_encode_inbox_read(&member, "m-2", "", ids, 2, 7, &len);
    char why[128];
    Envelope *env = envelope_decode(bin, len, why, sizeof(why));
    assert_non_null(env);
    assert_string_equal(env->actor->kind, "member");
    assert_string_equal(env->actor->id, "m-2");
    assert_int_equal(env->inbox_messages_read->n_message_ids, 2);
    assert_string_equal(env->inbox_messages_read->message_ids[1], "b");
    assert_int_equal(env->inbox_messages_read->up_to_us, 7);
    envelope_free(env);
    free(bin);

    struct notify_contact erased = {.erased = true};
    bin = notify_encode_contact(&member, "m-2", "", &erased, &len);
    env = envelope_decode(bin, len, why, sizeof(why));
    assert_non_null(env);
    assert_true(env->member_contact_changed->erased);
    assert_string_equal(env->member_contact_changed->phone, "");
    envelope_free(env);
    free(bin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_consents),
        cmocka_unit_test(test_bad_consents_name_the_field),
        cmocka_unit_test(test_consent_envelope),
        cmocka_unit_test(test_member_acts_as_itself),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
