/* Personal data on the topics, end to end: after members register, no
 * topic holds their phone, name or email in the clear (payloads, keys and
 * headers of every message of every topic); MemberRegistered carries them
 * sealed under the member's data key, which opens them; and
 * DELETE /v1/members/{id}/personal-data destroys that key (every copy of
 * the event becomes unreadable), empties the profile, keeps the money and
 * the journal, and is audited. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/ingest/pii.h"
#include "../support/api_client.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "events/codec.h"

#define RELAY_DEADLINE_MS 15000
#define SEALED_MAX        4096

struct member {
    char id[64], phone[16], name[64], email[96];
};

static void register_member(struct member *m, const char *tag)
{
    char body[512];
    test_unique_phone(m->phone);
    snprintf(m->name, sizeof(m->name), "%s Wang %s", tag, m->phone + 4);
    snprintf(m->email, sizeof(m->email), "wang%s@example.org", m->phone);
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"phone\":\"%s\",\"email\":\"%s\",\"branch_id\":\"hq\","
             "\"birthday\":\"1990-02-03\",\"attributes\":{\"club\":\"%s\"}}",
             m->name, m->phone, m->email, m->name);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(m->id, sizeof(m->id), "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

/* ------------------------------------------------ reading the topics */
struct registered {
    const char *member_id;
    bool found;
    uint8_t sealed[SEALED_MAX];
    size_t sealed_len;
    char clear_name[64]; /* what the deprecated clear field holds */
};

static void on_member_event(void *ctx, const rd_kafka_message_t *m)
{
    struct registered *g = ctx;
    if (!m->key || m->key_len != strlen(g->member_id) ||
        memcmp(m->key, g->member_id, m->key_len) != 0)
        return;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    if (env && env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_REGISTERED) {
        const MemberRegistered *e = env->member_registered;
        g->found = true;
        g->sealed_len = e->personal_sealed.len < SEALED_MAX ? e->personal_sealed.len : 0;
        memcpy(g->sealed, e->personal_sealed.data, g->sealed_len);
        snprintf(g->clear_name, sizeof(g->clear_name), "%s", e->name);
    }
    envelope_free(env);
}

static bool registered_on_topic(void *arg)
{
    struct registered *g = arg;
    return topic_read_all(TOPIC_MEMBER_EVENTS, on_member_event, g) >= 0 && g->found;
}

struct scan {
    const char *needles[3];
    long hits;
    long contacts; /* MemberContactChanged messages: the one place they may be */
};

/* Notification needs a member's addresses to deliver: MemberContactChanged
 * on notify-requests (7 days' retention, restricted by ACLs, erased by a
 * later erased = true) is the one message allowed to carry them. */
static bool is_contact(const rd_kafka_message_t *m)
{
    if (strcmp(rd_kafka_topic_name(m->rkt), TOPIC_NOTIFY_REQUESTS) != 0)
        return false;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    bool contact =
        env && env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_CONTACT_CHANGED;
    envelope_free(env);
    return contact;
}

static bool holds(const void *data, size_t len, const char *needle)
{
    return data && memmem(data, len, needle, strlen(needle)) != NULL;
}

static void on_any_message(void *ctx, const rd_kafka_message_t *m)
{
    struct scan *s = ctx;
    if (is_contact(m)) {
        s->contacts += holds(m->payload, m->len, s->needles[0]);
        return;
    }
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_message_headers(m, &hdrs);
    for (int i = 0; i < 3; i++) {
        const char *n = s->needles[i];
        bool hit = holds(m->payload, m->len, n) || holds(m->key, m->key_len, n);
        const char *name;
        const void *value;
        size_t size;
        for (size_t h = 0;
             hdrs && !hit &&
             rd_kafka_header_get_all(hdrs, h, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
             h++)
            hit = holds(value, size, n);
        if (hit)
            fprintf(stderr, "test: %s holds \"%s\" in the clear\n", rd_kafka_topic_name(m->rkt), n);
        s->hits += hit;
    }
}

/* ------------------------------------------------ opening the seal */
static void read_local(const char *file, char *out, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", getenv("TESSERA_LOCAL_DIR"), file);
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    if (f) {
        if (!fgets(out, (int)len, f))
            out[0] = '\0';
        fclose(f);
    }
    out[strcspn(out, "\n")] = '\0';
}

/* The member's personal data as the event seals it, opened with the
 * runtime's master key and the member's data key row; NULL when the key
 * is gone (or does not open). Caller frees with __free_unpacked. */
static Tessera__Member__V1__MemberPersonalData *open_personal(const char *member_id,
                                                              const struct registered *g)
{
    char master[80], version[16], err[256];
    read_local("master-key", master, sizeof(master));
    read_local("master-key.version", version, sizeof(version));
    struct pii_keyring k;
    assert_int_equal(
        pii_keyring_init(&k, master, version[0] ? atoi(version) : 1, NULL, err, sizeof(err)), 0);
    PGconn *pg = test_pg();
    const char *p[1] = {member_id};
    PGresult *res = PQexecParams(pg,
                                 "SELECT key_version, data_key_enc FROM ingest.member_keys "
                                 "WHERE tenant_id = 'demo' AND member_id = $1",
                                 1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    unsigned char key[PII_DATA_KEY_BYTES];
    bool have = PQntuples(res) == 1 && pii_data_key_unwrap(&k, atoi(PQgetvalue(res, 0, 0)), "demo",
                                                           member_id, PQgetvalue(res, 0, 1), key);
    PQclear(res);
    PQfinish(pg);
    pii_keyring_wipe(&k);
    if (!have)
        return NULL;
    size_t len = 0;
    uint8_t *plain = pii_box_open(key, "demo", member_id, PII_MEMBER_REGISTERED_FIELD, g->sealed,
                                  g->sealed_len, &len);
    assert_non_null(plain);
    Tessera__Member__V1__MemberPersonalData *d =
        tessera__member__v1__member_personal_data__unpack(NULL, len, plain);
    free(plain);
    return d;
}

/* ------------------------------------------------ tests */
/* Every topic, every message: none holds a registered member's phone,
 * name or email in the clear, but for the one MemberContactChanged that
 * tells notification where to deliver; the event holds them sealed. */
static void test_no_plaintext_personal_data_on_any_topic(void **state)
{
    struct member m[2];
    register_member(&m[0], "Scan");
    register_member(&m[1], "Scan");
    for (int i = 0; i < 2; i++) {
        struct registered g = {.member_id = m[i].id};
        assert_true(poll_until(registered_on_topic, &g, RELAY_DEADLINE_MS));
        assert_string_equal(g.clear_name, "");
        assert_true(g.sealed_len > PII_BOX_OVERHEAD);
        Tessera__Member__V1__MemberPersonalData *d = open_personal(m[i].id, &g);
        assert_non_null(d);
        assert_string_equal(d->phone, m[i].phone);
        assert_string_equal(d->name, m[i].name);
        assert_string_equal(d->email, m[i].email);
        assert_string_equal(d->birthday, "1990-02-03");
        tessera__member__v1__member_personal_data__free_unpacked(d, NULL);
    }
    static const char *const topics[] = TOPICS_ALL;
    long messages = 0;
    for (int i = 0; i < 2; i++) {
        struct scan s = {{m[i].phone, m[i].name, m[i].email}, 0, 0};
        for (int t = 0; t < TOPICS_ALL_COUNT; t++) {
            long n = topic_read_all(topics[t], on_any_message, &s);
            assert_true(n >= 0);
            messages += n;
        }
        assert_int_equal(s.hits, 0);
        assert_int_equal(s.contacts, 1); /* the registration's, and nothing else */
    }
    assert_true(messages > 0);
}

static void expect(struct api_response r, long status, const char *code)
{
    if (r.status != status)
        fprintf(stderr, "test: expected %ld, got %ld: %s\n", status, r.status, r.raw);
    assert_int_equal(r.status, status);
    if (code)
        assert_string_equal(json_str_at(r.body, "code"), code);
    api_response_free(&r);
}

static int64_t audit_rows(const char *member_id)
{
    PGconn *pg = test_pg();
    const char *p[1] = {member_id};
    int64_t n = test_pg_int(pg,
                            "SELECT count(*) FROM ingest.audit_log WHERE tenant_id = 'demo' "
                            "AND action = 'member.personal_data.erase' AND target = $1",
                            1, p);
    PQfinish(pg);
    return n;
}

/* Erasure: the data key goes (the event no longer opens), the profile is
 * empty, the phone is free again, balances and journal stay, audited. */
static void test_erasure_shreds_every_copy(void **state)
{
    struct member m;
    register_member(&m, "Erase");
    char path[160], key[128];
    snprintf(path, sizeof(path), "/v1/members/%s/topups", m.id);
    expect(
        api_post(path, "{\"amount\":3000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", NULL),
        201, NULL);
    struct registered g = {.member_id = m.id};
    struct api_response r0;
    assert_true(poll_until(registered_on_topic, &g, RELAY_DEADLINE_MS));
    Tessera__Member__V1__MemberPersonalData *d = open_personal(m.id, &g);
    assert_non_null(d);
    tessera__member__v1__member_personal_data__free_unpacked(d, NULL);
    snprintf(path, sizeof(path), "/v1/members/%s", m.id);
    r0 = api_get(path);
    assert_int_equal(r0.status, 200);
    assert_true(json_is_null(json_object_get(r0.body, "personal_data_erased_at")));
    api_response_free(&r0);

    /* only admins erase */
    struct api_response r =
        api_call("POST", "/v1/api-keys",
                 "{\"name\":\"erase till\",\"scope\":\"pos\",\"branch_id\":\"hq\"}", NULL, NULL);
    assert_int_equal(r.status, 201);
    snprintf(key, sizeof(key), "%s", json_str_at(r.body, "key"));
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s/personal-data", m.id);
    expect(api_call("DELETE", path, NULL, key, NULL), 403, "forbidden");
    expect(api_call("DELETE", "/v1/members/01890000-0000-7000-8000-000000000000/personal-data",
                    NULL, NULL, NULL),
           404, "not_found");

    r = api_call("DELETE", path, NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.body, "personal_data_erased")));
    char erased_at[32];
    snprintf(erased_at, sizeof(erased_at), "%s", json_str_at(r.body, "erased_at"));
    api_response_free(&r);
    /* again: the same answer */
    r = api_call("DELETE", path, NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "erased_at"), erased_at);
    api_response_free(&r);

    /* every copy of the event is now unreadable: the key is gone */
    assert_null(open_personal(m.id, &g));
    snprintf(path, sizeof(path), "/v1/members/%s", m.id);
    r = api_get(path);
    assert_int_equal(r.status, 200);
    assert_true(json_is_null(json_object_get(r.body, "name")));
    assert_true(json_is_null(json_object_get(r.body, "phone")));
    assert_true(json_is_null(json_object_get(r.body, "email")));
    assert_true(json_is_null(json_object_get(r.body, "birthday")));
    assert_int_equal(json_object_size(json_object_get(r.body, "attributes")), 0);
    assert_string_equal(json_str_at(r.body, "personal_data_erased_at"), erased_at);
    assert_int_equal(json_int_at(r.body, "balances.stored_value"), 3000);
    assert_null(strstr(r.raw, m.phone));
    assert_null(strstr(r.raw, m.name));
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s/ledger", m.id);
    r = api_get(path);
    assert_int_equal(r.status, 200);
    assert_true(json_array_size(json_object_get(r.body, "entries")) > 0);
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members?phone=%s", m.phone);
    expect(api_get(path), 404, "not_found");
    assert_int_equal(audit_rows(m.id), 2);

    /* the phone is free again: a new registration is a new member */
    char body[256];
    snprintf(body, sizeof(body), "{\"name\":\"New Owner\",\"phone\":\"%s\",\"branch_id\":\"hq\"}",
             m.phone);
    r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    assert_string_not_equal(json_str_at(r.body, "member_id"), m.id);
    api_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_plaintext_personal_data_on_any_topic),
        cmocka_unit_test(test_erasure_shreds_every_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
