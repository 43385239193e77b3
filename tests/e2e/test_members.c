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
#include <pthread.h>
#include <sodium.h>
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

/* MemberContactChanged of a member on notify-requests. */
struct contact_events {
    const char *member_id, *name;
    int found;
    char email[96], phone[24];
};

static void on_notify_request(void *ctx, const rd_kafka_message_t *m)
{
    struct contact_events *ce = ctx;
    if (!m->key || m->key_len != strlen(ce->member_id) ||
        memcmp(m->key, ce->member_id, m->key_len) != 0)
        return;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    if (env &&
        env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_CONTACT_CHANGED &&
        strcmp(env->member_contact_changed->name, ce->name) == 0) {
        ce->found++;
        snprintf(ce->email, sizeof(ce->email), "%s", env->member_contact_changed->email);
        snprintf(ce->phone, sizeof(ce->phone), "%s", env->member_contact_changed->phone);
    }
    envelope_free(env);
}

static bool contact_change_arrived(void *arg)
{
    struct contact_events *ce = arg;
    ce->found = 0;
    assert_true(topic_read_all("notify-requests", on_notify_request, ce) >= 0);
    return ce->found > 0;
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

    /* notification is told the new contact (the name changed, the email went) */
    struct contact_events ce = {.member_id = m.id, .name = new_name};
    assert_true(poll_until(contact_change_arrived, &ce, POLL_MS));
    assert_int_equal(ce.found, 1);
    assert_string_equal(ce.phone, m.phone);
    assert_string_equal(ce.email, "");
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

/* Another change lands between PATCH's read and its write: the write's
 * compare-and-set refuses it (409 edit_conflict) instead of overwriting.
 * The test holds the row locked, lets the PATCH read it and block on the
 * lock (seen in pg_stat_activity, no sleep), changes the row, then lets go. */
struct patch_call {
    const char *id;
    long status;
    char code[64];
};

static void *patch_in_thread(void *arg)
{
    struct patch_call *c = arg;
    struct api_response r = patch(c->id, "{\"name\":\"Second Writer\"}");
    c->status = r.status;
    snprintf(c->code, sizeof(c->code), "%s",
             r.body && json_is_string(json_object_get(r.body, "code")) ? json_str_at(r.body, "code")
                                                                       : "");
    api_response_free(&r);
    return NULL;
}

static bool patch_waits_on_the_lock(void *arg)
{
    PGconn *watcher = arg;
    return test_pg_int(watcher,
                       "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND query LIKE 'WITH dup AS%'",
                       0, NULL) > 0;
}

static void exec_ok(PGconn *pg, const char *sql, int n, const char *const *p)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
}

static void test_a_concurrent_change_is_an_edit_conflict(void **state)
{
    struct member m;
    register_member(&m, NULL);
    PGconn *holder = test_pg(), *watcher = test_pg();
    const char *p[1] = {m.id};
    exec_ok(holder, "BEGIN", 0, NULL);
    PGresult *res =
        PQexecParams(holder, "SELECT 1 FROM ingest.members WHERE member_id = $1 FOR UPDATE", 1,
                     NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    struct patch_call call = {.id = m.id};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, patch_in_thread, &call), 0);
    assert_true(poll_until(patch_waits_on_the_lock, watcher, POLL_MS));
    exec_ok(holder,
            "UPDATE ingest.members SET profile_version = profile_version + 1 WHERE member_id = $1",
            1, p);
    exec_ok(holder, "COMMIT", 0, NULL);
    pthread_join(thread, NULL);
    PQfinish(holder);
    PQfinish(watcher);
    assert_int_equal(call.status, 409);
    assert_string_equal(call.code, "edit_conflict");
    struct api_response r = get_member(m.id);
    assert_string_equal(json_str_at(r.body, "name"), m.name); /* nothing overwritten */
    api_response_free(&r);
}

/* ------------------------------------------------------------ listing */
/* A branch of its own, so a listing filtered by it holds only this test's
 * members whatever else the suite registered. */
static void make_branch(char branch[32])
{
    char phone[16], body[128];
    test_unique_phone(phone);
    snprintf(branch, 32, "lst-%s", phone + 3);
    snprintf(body, sizeof(body), "{\"branch_id\":\"%s\",\"name\":\"List %s\"}", branch, phone);
    struct api_response r = api_post("/v1/branches", body, NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
}

static void register_at(struct member *m, const char *branch, const char *email)
{
    char body[512];
    test_unique_phone(m->phone);
    snprintf(m->name, sizeof(m->name), "Listed %s", m->phone + 3);
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"phone\":\"%s\",\"branch_id\":\"%s\",\"email\":\"%s\"}", m->name,
             m->phone, branch, email);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(m->id, sizeof(m->id), "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

/* The ids of one page (query after "/v1/members?"), and its next cursor. */
static size_t list_page(const char *query, char ids[][64], size_t max, char *next, size_t next_len)
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/members?%s", query);
    struct api_response r = api_get(path);
    if (r.status != 200)
        fprintf(stderr, "test: %s answered %ld: %s\n", path, r.status, r.raw);
    assert_int_equal(r.status, 200);
    json_t *members = json_object_get(r.body, "members"), *m;
    size_t i, n = 0;
    json_array_foreach(members, i, m)
    {
        assert_true(n < max);
        snprintf(ids[n++], 64, "%s", json_string_value(json_object_get(m, "member_id")));
    }
    json_t *cursor = json_object_get(r.body, "next_cursor");
    snprintf(next, next_len, "%s", json_is_string(cursor) ? json_string_value(cursor) : "");
    api_response_free(&r);
    return n;
}

static size_t list_ids(const char *query, char ids[][64], size_t max)
{
    char next[256];
    return list_page(query, ids, max, next, sizeof(next));
}

#define LISTED 7

static void test_paging_covers_every_member_exactly_once(void **state)
{
    char branch[32];
    make_branch(branch);
    struct member m[LISTED];
    for (int i = 0; i < LISTED; i++)
        register_at(&m[i], branch, "paged@example.com");
    char seen[LISTED + 3][64], page[3][64], next[256] = "", query[512];
    size_t total = 0;
    int pages = 0;
    do {
        snprintf(query, sizeof(query), "branch_id=%s&limit=3%s%s", branch,
                 next[0] ? "&cursor=" : "", next);
        size_t n = list_page(query, page, 3, next, sizeof(next));
        for (size_t i = 0; i < n; i++) {
            assert_true(total < LISTED);
            snprintf(seen[total++], sizeof(seen[0]), "%.63s", page[i]);
        }
        pages++;
    } while (next[0] && pages < 10);
    assert_int_equal(pages, 3); /* 3 + 3 + 1 */
    assert_int_equal(total, LISTED);
    for (int i = 0; i < LISTED; i++) { /* each registered member once, in order */
        assert_string_equal(seen[i], m[i].id);
    }
}

static void test_listing_filters(void **state)
{
    char branch[32], ids[LISTED][64], query[512], email[96];
    make_branch(branch);
    struct member a, b;
    char unique[16];
    test_unique_phone(unique);
    snprintf(email, sizeof(email), "Mixed.Case%s@Example.com", unique);
    register_at(&a, branch, email);
    register_at(&b, branch, "other@example.com");

    /* by email: case-blind, through the blind index */
    for (char *c = email; *c; c++)
        *c = (*c >= 'A' && *c <= 'Z') ? (char)(*c + 32) : *c;
    snprintf(query, sizeof(query), "email=%s", email);
    assert_int_equal(list_ids(query, ids, LISTED), 1);
    assert_string_equal(ids[0], a.id);

    /* by member number */
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", b.id);
    struct api_response r = api_get(path);
    snprintf(query, sizeof(query), "member_no=%s", json_str_at(r.body, "member_no"));
    api_response_free(&r);
    assert_int_equal(list_ids(query, ids, LISTED), 1);
    assert_string_equal(ids[0], b.id);

    /* registered_from later than both: none; a day back: both */
    snprintf(query, sizeof(query), "branch_id=%s&registered_from=2100-01-01", branch);
    assert_int_equal(list_ids(query, ids, LISTED), 0);
    snprintf(query, sizeof(query),
             "branch_id=%s&registered_from=2000-01-01&registered_to=2100-01-01T00:00:00Z", branch);
    assert_int_equal(list_ids(query, ids, LISTED), 2);

    /* by tag */
    snprintf(path, sizeof(path), "/v1/members/%s/tags/vip", b.id);
    r = api_call("PUT", path, NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    snprintf(query, sizeof(query), "branch_id=%s&tag=vip", branch);
    assert_int_equal(list_ids(query, ids, LISTED), 1);
    assert_string_equal(ids[0], b.id);
}

/* A pos key lists its own branch only. */
static void test_a_pos_key_lists_its_branch_only(void **state)
{
    char branch[32];
    make_branch(branch);
    struct member m;
    register_at(&m, branch, "till@example.com");
    char body[160];
    snprintf(body, sizeof(body), "{\"name\":\"list till\",\"scope\":\"pos\",\"branch_id\":\"%s\"}",
             branch);
    struct api_response r = api_post("/v1/api-keys", body, NULL);
    assert_int_equal(r.status, 201);
    char key[128];
    snprintf(key, sizeof(key), "%s", json_str_at(r.body, "key"));
    api_response_free(&r);
    r = api_call("GET", "/v1/members?limit=500", NULL, key, NULL);
    assert_int_equal(r.status, 200);
    json_t *members = json_object_get(r.body, "members"), *one;
    size_t i;
    assert_int_equal(json_array_size(members), 1);
    json_array_foreach(members, i, one)
        assert_string_equal(json_string_value(json_object_get(one, "branch_id")), branch);
    api_response_free(&r);
    r = api_call("GET", "/v1/members?branch_id=hq", NULL, key, NULL);
    assert_int_equal(r.status, 403);
    assert_string_equal(json_str_at(r.body, "code"), "forbidden");
    api_response_free(&r);
}

struct tier_wait {
    const char *member_no, *member_id;
};

static bool tier_listed(void *arg)
{
    struct tier_wait *w = arg;
    char query[128], ids[2][64];
    snprintf(query, sizeof(query), "tier=Basic&member_no=%s", w->member_no);
    return list_ids(query, ids, 2) == 1 && strcmp(ids[0], w->member_id) == 0;
}

static void test_listing_by_tier_reads_tierings_view(void **state)
{
    struct member m;
    register_member(&m, NULL);
    char path[128], member_no[32], query[128], ids[2][64];
    snprintf(path, sizeof(path), "/v1/members/%s", m.id);
    struct api_response r = api_get(path);
    snprintf(member_no, sizeof(member_no), "%s", json_str_at(r.body, "member_no"));
    api_response_free(&r);
    snprintf(query, sizeof(query), "tier=Basic&member_no=%s", member_no);
    assert_int_equal(list_ids(query, ids, 2), 0); /* no tier yet */
    /* 500 yuan spent: the demo ladder's Basic */
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", m.id);
    r = api_post(path, "{\"amount\":50000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}",
                 NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    struct tier_wait w = {member_no, m.id};
    assert_true(poll_until(tier_listed, &w, POLL_MS));
}

static void test_listing_bad_input_is_422_naming_the_field(void **state)
{
    static const struct {
        const char *query, *field;
    } bad[] = {
        {"limit=0", "limit"},
        {"limit=501", "limit"},
        {"limit=ten", "limit"},
        {"cursor=not-a-cursor", "cursor"},
        {"email=nobody", "email"},
        {"registered_from=yesterday", "registered_from"},
        {"registered_to=2026-02-30", "registered_to"},
        {"tag=Not%20A%20Tag", "tag"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/members?%s", bad[i].query);
        struct api_response r = api_get(path);
        assert_invalid(&r, bad[i].field);
        api_response_free(&r);
    }
}

/* ------------------------------------------------------------ tags */
static void test_tags_put_delete_and_show(void **state)
{
    struct member m;
    register_member(&m, NULL);
    char path[160];
    snprintf(path, sizeof(path), "/v1/members/%s/tags/lapsed-2026", m.id);
    for (int i = 0; i < 2; i++) { /* again: the same */
        struct api_response r = api_call("PUT", path, NULL, NULL, NULL);
        assert_int_equal(r.status, 200);
        assert_true(json_is_true(json_object_get(r.body, "tagged")));
        api_response_free(&r);
    }
    struct api_response r = get_member(m.id);
    assert_int_equal(json_array_size(json_object_get(r.body, "tags")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r.body, "tags"), 0)),
                        "lapsed-2026");
    api_response_free(&r);
    for (int i = 0; i < 2; i++) {
        r = api_call("DELETE", path, NULL, NULL, NULL);
        assert_int_equal(r.status, 200);
        api_response_free(&r);
    }
    r = get_member(m.id);
    assert_int_equal(json_array_size(json_object_get(r.body, "tags")), 0);
    api_response_free(&r);

    snprintf(path, sizeof(path), "/v1/members/%s/tags/Bad%%20Tag", m.id);
    r = api_call("PUT", path, NULL, NULL, NULL);
    assert_invalid(&r, "tag");
    api_response_free(&r);
    r = api_call("PUT", "/v1/members/00000000-0000-7000-8000-000000000000/tags/vip", NULL, NULL,
                 NULL);
    assert_int_equal(r.status, 404);
    api_response_free(&r);
}

static void test_tags_are_limited_per_member(void **state)
{
    struct member m;
    register_member(&m, NULL);
    char path[160];
    for (int i = 0; i <= 32; i++) {
        snprintf(path, sizeof(path), "/v1/members/%s/tags/t%02d", m.id, i);
        struct api_response r = api_call("PUT", path, NULL, NULL, NULL);
        assert_int_equal(r.status, i < 32 ? 200 : 409);
        if (i == 32)
            assert_string_equal(json_str_at(r.body, "code"), "tag_limit_reached");
        api_response_free(&r);
    }
    /* a tag it has is still "put" at the limit */
    snprintf(path, sizeof(path), "/v1/members/%s/tags/t00", m.id);
    struct api_response r = api_call("PUT", path, NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
}

/* ------------------------------------------------------------ devices */
/* A password set straight in the table (argon2id, as PUT /v1/me/password
 * stores it), so the test logs in without an SMS code. */
static void set_password(const char *member_id, const char *password)
{
    char hash[crypto_pwhash_STRBYTES];
    assert_int_equal(crypto_pwhash_str(hash, password, strlen(password),
                                       crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                       crypto_pwhash_MEMLIMIT_INTERACTIVE),
                     0);
    PGconn *pg = test_pg();
    const char *p[2] = {member_id, hash};
    PGresult *res = PQexecParams(pg,
                                 "INSERT INTO ingest.member_credentials (tenant_id, member_id, "
                                 "password_hash) VALUES ('demo', $1, $2)",
                                 2, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    PQfinish(pg);
}

struct login_try {
    const struct member *m;
    const char *device;
    long status;
    char token[160];
};

/* One login; false (try again) while the member's login rate answers 429. */
static bool try_login(void *arg)
{
    struct login_try *t = arg;
    char body[256];
    snprintf(body, sizeof(body),
             "{\"phone\":\"%s\",\"password\":\"correct horse 1\",\"device_id\":\"%s\"}",
             t->m->phone, t->device);
    struct api_response r = api_app_post("/v1/auth/sessions", body);
    t->status = r.status;
    if (r.status == 201)
        snprintf(t->token, sizeof(t->token), "%s", json_str_at(r.body, "token"));
    api_response_free(&r);
    return t->status != 429;
}

static long login_from(const struct member *m, const char *device, char token[160])
{
    struct login_try t = {.m = m, .device = device};
    assert_true(poll_until(try_login, &t, POLL_MS));
    if (token)
        snprintf(token, 160, "%s", t.token);
    return t.status;
}

static long me_status(const char *token)
{
    struct api_response r = api_call("GET", "/v1/me", NULL, token, NULL);
    long status = r.status;
    api_response_free(&r);
    return status;
}

static void test_unbinding_a_device_frees_a_slot_and_ends_its_sessions(void **state)
{
    struct member m;
    register_member(&m, NULL);
    set_password(m.id, "correct horse 1");
    char tokens[3][160], path[192];
    const char *devices[3] = {"phone-a", "tablet b", "phone/c"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(login_from(&m, devices[i], tokens[i]), 201);
    assert_int_equal(login_from(&m, "phone-d", NULL), 403); /* device_limit_reached */

    snprintf(path, sizeof(path), "/v1/members/%s/devices", m.id);
    struct api_response r = api_get(path);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.body, "devices")), 3);
    assert_int_equal(json_int_at(r.body, "devices_max"), 3);
    api_response_free(&r);

    /* "tablet b" (a space, percent-encoded in the path) is unbound: its
     * session ends, the others go on, and a new device may log in */
    snprintf(path, sizeof(path), "/v1/members/%s/devices/tablet%%20b", m.id);
    r = api_call("DELETE", path, NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_str_at(r.body, "device_id"), "tablet b");
    api_response_free(&r);
    assert_int_equal(me_status(tokens[1]), 401);
    assert_int_equal(me_status(tokens[0]), 200);
    assert_int_equal(me_status(tokens[2]), 200);
    /* the operator's tags are not shown in the member's own app */
    snprintf(path, sizeof(path), "/v1/members/%s/tags/difficult", m.id);
    r = api_call("PUT", path, NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    r = api_call("GET", "/v1/me", NULL, tokens[0], NULL);
    assert_int_equal(r.status, 200);
    assert_null(json_object_get(r.body, "tags"));
    assert_null(strstr(r.raw, "difficult"));
    api_response_free(&r);
    assert_int_equal(login_from(&m, "phone-d", NULL), 201);

    /* "phone/c": a slash, encoded */
    snprintf(path, sizeof(path), "/v1/members/%s/devices/phone%%2Fc", m.id);
    r = api_call("DELETE", path, NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    assert_int_equal(me_status(tokens[2]), 401);
    /* again: the member has no such device any more */
    r = api_call("DELETE", path, NULL, NULL, NULL);
    assert_int_equal(r.status, 404);
    assert_string_equal(json_str_at(r.body, "code"), "not_found");
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
        cmocka_unit_test(test_a_concurrent_change_is_an_edit_conflict),
        cmocka_unit_test(test_paging_covers_every_member_exactly_once),
        cmocka_unit_test(test_listing_filters),
        cmocka_unit_test(test_a_pos_key_lists_its_branch_only),
        cmocka_unit_test(test_listing_by_tier_reads_tierings_view),
        cmocka_unit_test(test_listing_bad_input_is_422_naming_the_field),
        cmocka_unit_test(test_tags_put_delete_and_show),
        cmocka_unit_test(test_tags_are_limited_per_member),
        cmocka_unit_test(test_unbinding_a_device_frees_a_slot_and_ends_its_sessions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
