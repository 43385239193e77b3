/* Members managed by API (issue 14): PATCH /v1/members/{id} changes the
 * profile (sealed, audited, published as MemberProfileChanged), a new
 * phone is checked for duplicates through the blind index, bad input is
 * 422 naming the field and changes nothing, an erased member's profile
 * cannot change. Another tenant's member is 404 (and every route is also
 * probed by test_tenant_isolation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"
#include "../support/topic_reader.h"
#include "events/codec.h"

#define POLL_MS 20000

struct member {
    char id[64], phone[16], name[64];
};

static void register_member(struct member *m, const char *extra)
{
    char body[512];
    test_unique_phone(m->phone);
    snprintf(m->name, sizeof(m->name), "Patch %s", m->phone + 3);
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"phone\":\"%s\",\"branch_id\":\"hq\"%s}",
             m->name, m->phone, extra ? extra : "");
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(m->id, sizeof(m->id), "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

static struct api_response patch(const char *id, const char *body)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", id);
    return api_call("PATCH", path, body, NULL, NULL);
}

static struct api_response get_member(const char *id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", id);
    return api_get(path);
}

/* A 422 validation_failed whose errors[] names field. */
static void assert_invalid(struct api_response *r, const char *field)
{
    if (r->status != 422)
        fprintf(stderr, "test: expected 422 for %s, got %ld: %s\n", field, r->status, r->raw);
    assert_int_equal(r->status, 422);
    assert_string_equal(json_str_at(r->body, "code"), "validation_failed");
    json_t *errors = json_object_get(r->body, "errors"), *e;
    size_t i;
    bool named = false;
    json_array_foreach(errors, i, e) named =
        named || strcmp(json_string_value(json_object_get(e, "field")), field) == 0;
    if (!named)
        fprintf(stderr, "test: %s not named in %s\n", field, r->raw);
    assert_true(named);
}

/* ------------------------------------------------------------ PATCH */
struct profile_events {
    const char *member_id, *needle;
    int changed;      /* MemberProfileChanged of the member */
    int needle_found; /* messages whose bytes hold the needle */
    char fields[256]; /* changed_fields of the last one, comma-joined */
    int64_t version;
};

static void on_member_event(void *ctx, const rd_kafka_message_t *m)
{
    struct profile_events *pe = ctx;
    if (!m->key || m->key_len != strlen(pe->member_id) ||
        memcmp(m->key, pe->member_id, m->key_len) != 0)
        return;
    if (memmem(m->payload, m->len, pe->needle, strlen(pe->needle)))
        pe->needle_found++;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    if (env &&
        env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_PROFILE_CHANGED) {
        pe->changed++;
        pe->fields[0] = '\0';
        for (size_t i = 0; i < env->member_profile_changed->n_changed_fields; i++) {
            strncat(pe->fields, env->member_profile_changed->changed_fields[i],
                    sizeof(pe->fields) - strlen(pe->fields) - 2);
            strcat(pe->fields, ",");
        }
        pe->version = env->member_profile_changed->profile_version;
    }
    envelope_free(env);
}

static bool profile_event_arrived(void *arg)
{
    struct profile_events *pe = arg;
    pe->changed = pe->needle_found = 0;
    assert_true(topic_read_all("member-events", on_member_event, pe) >= 0);
    return pe->changed > 0;
}

static void test_patch_changes_the_profile_sealed_and_published(void **state)
{
    struct member m;
    register_member(&m, ",\"email\":\"old@example.com\",\"gender\":\"male\"");
    char new_name[96], body[512];
    snprintf(new_name, sizeof(new_name), "Renamed %s", m.phone + 4);
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"email\":null,\"birthday\":\"1990-02-03\",\"gender\":"
             "\"female\",\"attributes\":{\"school\":\"No. 2\"}}",
             new_name);
    struct api_response r = patch(m.id, body);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "name"), new_name);
    api_response_free(&r);

    r = get_member(m.id);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "name"), new_name);
    assert_string_equal(json_str_at(r.body, "phone"), m.phone); /* left out: kept */
    assert_true(json_is_null(json_object_get(r.body, "email")));
    assert_string_equal(json_str_at(r.body, "birthday"), "1990-02-03");
    assert_string_equal(json_str_at(r.body, "gender"), "female");
    assert_string_equal(json_str_at(r.body, "attributes.school"), "No. 2");
    api_response_free(&r);

    /* Sealed at rest, audited with field names only. */
    PGconn *pg = test_pg();
    const char *p[2] = {m.id, new_name};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.members WHERE member_id = $1 "
                                 "AND name IS NULL AND name_enc IS NOT NULL AND email_enc IS NULL "
                                 "AND email_bidx IS NULL AND profile_version = 1 "
                                 "AND position(convert_to($2, 'UTF8') in name_enc) = 0",
                                 2, p),
                     1);
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.audit_log WHERE target = $1 "
                                 "AND action = 'member.profile.update' AND after->>"
                                 "'changed_fields' = '[\"name\", \"email\", \"birthday\", "
                                 "\"gender\", \"attributes\"]' AND strpos(after::text, $2) = 0",
                                 2, p),
                     1);
    PQfinish(pg);

    /* Published, sealed: the new name is nowhere on the topic. */
    struct profile_events pe = {.member_id = m.id, .needle = new_name};
    assert_true(poll_until(profile_event_arrived, &pe, POLL_MS));
    assert_int_equal(pe.changed, 1);
    assert_int_equal(pe.needle_found, 0);
    assert_string_equal(pe.fields, "name,email,birthday,gender,attributes,");
    assert_int_equal(pe.version, 1);
}

static void test_patch_without_a_change_publishes_nothing(void **state)
{
    struct member m;
    register_member(&m, NULL);
    char body[128];
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", m.name);
    struct api_response r = patch(m.id, body);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    PGconn *pg = test_pg();
    const char *p[1] = {m.id};
    assert_int_equal(
        test_pg_int(pg, "SELECT profile_version FROM ingest.members WHERE member_id = $1", 1, p),
        0);
    PQfinish(pg);
}

static void test_patch_phone_rechecks_the_blind_index(void **state)
{
    struct member a, b;
    register_member(&a, NULL);
    register_member(&b, NULL);
    char body[128], path[64];
    /* b's phone is a's: refused, nothing changes */
    snprintf(body, sizeof(body), "{\"phone\":\"%s\",\"name\":\"Taken\"}", a.phone);
    struct api_response r = patch(b.id, body);
    assert_int_equal(r.status, 409);
    assert_string_equal(json_str_at(r.body, "code"), "duplicate_phone");
    api_response_free(&r);
    r = get_member(b.id);
    assert_string_equal(json_str_at(r.body, "phone"), b.phone);
    assert_string_equal(json_str_at(r.body, "name"), b.name);
    api_response_free(&r);

    /* a fresh phone: found by it, no longer by the old one */
    char fresh[16];
    test_unique_phone(fresh);
    snprintf(body, sizeof(body), "{\"phone\":\"%s\"}", fresh);
    r = patch(b.id, body);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members?phone=%s", fresh);
    r = api_get(path);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "member_id"), b.id);
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members?phone=%s", b.phone);
    r = api_get(path);
    assert_int_equal(r.status, 404);
    api_response_free(&r);
    /* and the old phone is free for a registration again */
    snprintf(body, sizeof(body), "{\"name\":\"Reuse\",\"phone\":\"%s\",\"branch_id\":\"hq\"}",
             b.phone);
    r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
}

static void test_patch_bad_input_is_422_naming_the_field(void **state)
{
    struct member m;
    register_member(&m, NULL);
    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{}", "body"},
        {"{\"name\":null}", "name"},
        {"{\"name\":\"\"}", "name"},
        {"{\"phone\":\"12ab\"}", "phone"},
        {"{\"phone\":null}", "phone"},
        {"{\"email\":\"no-at-sign\"}", "email"},
        {"{\"birthday\":\"1990-13-01\"}", "birthday"},
        {"{\"gender\":\"robot\"}", "gender"},
        {"{\"attributes\":[1]}", "attributes"},
        {"{\"branch_id\":\"hq\"}", "branch_id"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct api_response r = patch(m.id, bad[i].body);
        assert_invalid(&r, bad[i].field);
        api_response_free(&r);
    }
    struct api_response r = get_member(m.id);
    assert_string_equal(json_str_at(r.body, "name"), m.name);
    api_response_free(&r);
    r = patch("00000000-0000-7000-8000-000000000000", "{\"name\":\"Nobody\"}");
    assert_int_equal(r.status, 404);
    assert_string_equal(json_str_at(r.body, "code"), "not_found");
    api_response_free(&r);
}

static void test_patch_after_erasure_is_refused(void **state)
{
    struct member m;
    register_member(&m, NULL);
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s/personal-data", m.id);
    struct api_response r = api_call("DELETE", path, NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    r = patch(m.id, "{\"name\":\"Back Again\"}");
    assert_int_equal(r.status, 409);
    assert_string_equal(json_str_at(r.body, "code"), "personal_data_erased");
    api_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patch_changes_the_profile_sealed_and_published),
        cmocka_unit_test(test_patch_without_a_change_publishes_nothing),
        cmocka_unit_test(test_patch_phone_rechecks_the_blind_index),
        cmocka_unit_test(test_patch_bad_input_is_422_naming_the_field),
        cmocka_unit_test(test_patch_after_erasure_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
