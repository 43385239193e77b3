/* PII at rest, end to end: what reaches ingest's schema is sealed (no
 * plaintext phone, name or email anywhere in it), the phone is still found
 * and still unique through the blind index, and a master key rotation
 * reseals every row without changing what the API answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"

struct member {
    char id[64], phone[16], name[64], email[96], birthday[16], school[48];
};

static void register_member(struct member *m)
{
    char body[512];
    test_unique_phone(m->phone);
    snprintf(m->name, sizeof(m->name), "Zhang Wei %s", m->phone + 3);
    snprintf(m->email, sizeof(m->email), "zw%s@example.com", m->phone);
    /* a birthday no other row is likely to hold, and a tenant attribute */
    snprintf(m->birthday, sizeof(m->birthday), "19%c%c-0%c-1%c", m->phone[9], m->phone[10],
             '1' + m->phone[8] % 9, m->phone[7]);
    snprintf(m->school, sizeof(m->school), "School %s", m->phone + 2);
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"phone\":\"%s\",\"email\":\"%s\",\"branch_id\":\"hq\","
             "\"birthday\":\"%s\",\"gender\":\"undisclosed\",\"attributes\":{\"school\":"
             "\"%s\"}}",
             m->name, m->phone, m->email, m->birthday, m->school);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(m->id, sizeof(m->id), "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

static bool outbox_relayed(void *arg)
{
    const struct member *m = arg;
    PGconn *pg = test_pg();
    const char *p[1] = {m->id};
    int64_t n = test_pg_int(pg, "SELECT count(*) FROM ingest.outbox WHERE key = $1", 1, p);
    PQfinish(pg);
    return n == 0;
}

/* Rows anywhere in schema ingest whose text form (every column, bytea as
 * hex) holds needle, or needle's bytes in hex (a plaintext inside a bytea). */
static int64_t rows_containing(PGconn *pg, const char *needle)
{
    PGresult *tables = PQexec(pg, "SELECT table_name FROM information_schema.tables "
                                  "WHERE table_schema = 'ingest' AND table_type = 'BASE TABLE'");
    assert_int_equal(PQresultStatus(tables), PGRES_TUPLES_OK);
    assert_true(PQntuples(tables) >= 5);
    int64_t found = 0;
    for (int i = 0; i < PQntuples(tables); i++) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM ingest.%s AS t WHERE strpos(t::text, $1) > 0 "
                 "OR strpos(t::text, encode(convert_to($1, 'UTF8'), 'hex')) > 0",
                 PQgetvalue(tables, i, 0));
        const char *p[1] = {needle};
        found += test_pg_int(pg, sql, 1, p);
    }
    PQclear(tables);
    return found;
}

static void assert_api_shows(const struct member *m)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", m->id);
    struct api_response r = api_get(path);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "phone"), m->phone);
    assert_string_equal(json_str_at(r.body, "name"), m->name);
    assert_string_equal(json_str_at(r.body, "email"), m->email);
    assert_string_equal(json_str_at(r.body, "birthday"), m->birthday);
    assert_string_equal(json_str_at(r.body, "attributes.school"), m->school);
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members?phone=%s", m->phone);
    r = api_get(path);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "member_id"), m->id);
    api_response_free(&r);
}

static void assert_duplicate_refused(const struct member *m)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"name\":\"Someone Else\",\"phone\":\"%s\",\"branch_id\":\"hq\"}", m->phone);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 409);
    assert_string_equal(json_str_at(r.body, "code"), "duplicate_phone");
    api_response_free(&r);
}

static void test_schema_holds_no_plaintext_pii(void **state)
{
    struct member m;
    register_member(&m);
    assert_api_shows(&m);
    /* The MemberRegistered event carries the personal data sealed under
     * the member's data key (test_security_topics); its outbox row is
     * deleted once Kafka has it. */
    assert_true(poll_until(outbox_relayed, &m, 15000));
    PGconn *pg = test_pg();
    assert_int_equal(rows_containing(pg, m.phone), 0);
    assert_int_equal(rows_containing(pg, m.name), 0);
    assert_int_equal(rows_containing(pg, m.email), 0);
    assert_int_equal(rows_containing(pg, m.birthday), 0);
    assert_int_equal(rows_containing(pg, m.school), 0);
    assert_int_equal(rows_containing(pg, "undisclosed"), 0);
    /* ... while the member row is there, sealed. */
    const char *p[1] = {m.id};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.members WHERE member_id = $1 "
                                 "AND phone IS NULL AND name IS NULL AND email IS NULL "
                                 "AND birthday IS NULL AND gender IS NULL AND attributes = '{}' "
                                 "AND birthday_enc IS NOT NULL AND attributes_enc IS NOT NULL "
                                 "AND length(phone_enc) > 40 AND length(phone_bidx) = 32 "
                                 "AND pii_key_version >= 1",
                                 1, p),
                     1);
    /* the member row and its data key (wrapped) */
    assert_int_equal(rows_containing(pg, m.id), 2);
    PQfinish(pg);
}

static void test_duplicate_phone_through_blind_index(void **state)
{
    struct member m;
    register_member(&m);
    assert_duplicate_refused(&m);
    PGconn *pg = test_pg();
    const char *p[1] = {m.id};
    int64_t bidx_rows = test_pg_int(pg,
                                    "SELECT count(*) FROM ingest.members WHERE phone_bidx = "
                                    "(SELECT phone_bidx FROM ingest.members WHERE member_id = $1)",
                                    1, p);
    assert_int_equal(bidx_rows, 1);
    PQfinish(pg);
}

static int64_t key_version_of(PGconn *pg, const char *member_id)
{
    const char *p[1] = {member_id};
    return test_pg_int(pg, "SELECT pii_key_version FROM ingest.members WHERE member_id = $1", 1, p);
}

/* A member as the schema before 0002 held it: plaintext columns. */
static void insert_legacy_member(PGconn *pg, struct member *m)
{
    test_unique_phone(m->phone);
    snprintf(m->name, sizeof(m->name), "Legacy %s", m->phone + 3);
    snprintf(m->email, sizeof(m->email), "legacy%s@example.com", m->phone);
    snprintf(m->birthday, sizeof(m->birthday), "1970-01-0%c", '1' + m->phone[10] % 9);
    snprintf(m->school, sizeof(m->school), "Legacy School %s", m->phone + 2);
    char attributes[96];
    snprintf(attributes, sizeof(attributes), "{\"school\":\"%s\"}", m->school);
    const char *p[5] = {m->name, m->phone, m->email, m->birthday, attributes};
    PGresult *res =
        PQexecParams(pg,
                     "INSERT INTO ingest.members (tenant_id, member_id, member_no, "
                     "name, phone, email, birthday, attributes, branch_id, referral_code) "
                     "SELECT 'demo', id, 'L' || left(md5(id), 9), $1, $2, $3, $4::date, "
                     "$5::jsonb, 'hq', upper(left(md5($2), 8)) "
                     "FROM CAST(gen_random_uuid() AS text) AS id RETURNING member_id",
                     5, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    snprintf(m->id, sizeof(m->id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* rotate-master-key: new key current, old one previous, ingest restarted,
 * `--reencrypt-pii`, old key dropped, ingest restarted without it. Every
 * row then sits under the new version and reads as before. */
static void test_master_key_rotation(void **state)
{
    struct member m;
    register_member(&m);
    PGconn *pg = test_pg();
    int64_t before = key_version_of(pg, m.id);
    char old_sealed[512];
    const char *p[1] = {m.id};
    PGresult *res =
        PQexecParams(pg, "SELECT phone_enc::text FROM ingest.members WHERE member_id = $1", 1, NULL,
                     p, NULL, NULL, 0);
    snprintf(old_sealed, sizeof(old_sealed), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    /* A row from before encryption (plaintext, version 0) is sealed too. */
    struct member legacy;
    insert_legacy_member(pg, &legacy);

    assert_int_equal(runtime_do("rotate-master-key"), 0);

    assert_int_equal(key_version_of(pg, m.id), before + 1);
    char version[24];
    snprintf(version, sizeof(version), "%lld", (long long)(before + 1));
    const char *v[1] = {version};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.members WHERE pii_key_version <> "
                                 "$1::int AND personal_data_erased_at IS NULL",
                                 1, v),
                     0);
    /* members' data keys are rewrapped, not replaced: the events sealed
     * under them stay readable (test_security_topics opens them) */
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.member_keys WHERE key_version <> "
                                 "$1::int",
                                 1, v),
                     0);
    assert_int_equal(
        test_pg_int(pg, "SELECT count(*) FROM ingest.member_keys WHERE member_id = $1", 1, p), 1);
    res = PQexecParams(pg, "SELECT phone_enc::text FROM ingest.members WHERE member_id = $1", 1,
                       NULL, p, NULL, NULL, 0);
    assert_string_not_equal(PQgetvalue(res, 0, 0), old_sealed);
    PQclear(res);
    PQfinish(pg);
    pg = NULL;
    /* ingest now runs without the old key: the resealed row still reads */
    assert_api_shows(&m);
    assert_duplicate_refused(&m);
    assert_api_shows(&legacy);
    assert_duplicate_refused(&legacy);
    pg = test_pg();
    assert_int_equal(rows_containing(pg, legacy.phone), 0);
    assert_int_equal(rows_containing(pg, legacy.school), 0);
    PQfinish(pg);
    struct member fresh;
    register_member(&fresh);
    assert_api_shows(&fresh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_holds_no_plaintext_pii),
        cmocka_unit_test(test_duplicate_phone_through_blind_index),
        cmocka_unit_test(test_master_key_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
