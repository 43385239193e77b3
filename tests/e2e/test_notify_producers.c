/* What ingest tells notification on notify-requests (issue 11), read from
 * the topic itself: a registration's contact (name, phone, email, locale)
 * and then its initial consents; consents through the API and /v1/me
 * (stored, read back as the whole matrix with defaults, each change one
 * ConsentChanged with its source, an unchanged pair none, bad bodies 422
 * naming the field and changing nothing); inbox messages marked read (202,
 * InboxMessagesRead); erasure (MemberContactChanged erased, no address);
 * the login code as a NotifyRequest a member can log in with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"
#include "../support/login_code.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "events/codec.h"

#define DEADLINE_MS 20000
#define SEEN_MAX    32

/* ------------------------------------------------------------ the topic */
struct seen_msg {
    int payload_case;
    char a[64], b[64], c[64], d[64]; /* the payload's strings, by kind */
    bool flag;                       /* granted / erased */
    int64_t n;                       /* up_to_us, message id count */
    char actor[64];
    struct login_code code;
};

struct seen {
    const char *member;
    struct seen_msg m[SEEN_MAX];
    size_t count;
};

static void keep(struct seen_msg *s, const Envelope *env)
{
    s->payload_case = env->payload_case;
    snprintf(s->actor, sizeof(s->actor), "%s", env->actor ? env->actor->kind : "");
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_CONTACT_CHANGED) {
        const Tessera__Notification__V1__MemberContactChanged *c = env->member_contact_changed;
        snprintf(s->a, sizeof(s->a), "%s", c->name);
        snprintf(s->b, sizeof(s->b), "%s", c->phone);
        snprintf(s->c, sizeof(s->c), "%s", c->email);
        snprintf(s->d, sizeof(s->d), "%s", c->locale);
        s->flag = c->erased;
    } else if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CONSENT_CHANGED) {
        const Tessera__Notification__V1__ConsentChanged *c = env->consent_changed;
        snprintf(s->a, sizeof(s->a), "%s", c->channel);
        snprintf(s->b, sizeof(s->b), "%s", c->purpose);
        snprintf(s->c, sizeof(s->c), "%s", c->source);
        s->flag = c->granted;
    } else if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_INBOX_MESSAGES_READ) {
        const Tessera__Notification__V1__InboxMessagesRead *r = env->inbox_messages_read;
        snprintf(s->a, sizeof(s->a), "%s", r->n_message_ids ? r->message_ids[0] : "");
        s->n = r->up_to_us;
    } else {
        login_code_of(env, &s->code);
    }
}

static void on_message(void *ctx, const rd_kafka_message_t *m)
{
    struct seen *s = ctx;
    if (m->key_len != strlen(s->member) || memcmp(m->key, s->member, m->key_len) != 0)
        return;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    /* ingest's messages only: other services' requests for the member
     * (the campaign's welcome, the ledger's receipts) are not counted */
    bool others = env &&
                  env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST &&
                  strcmp(env->notify_request->template_, "login_code") != 0;
    if (env && !others && s->count < SEEN_MAX && strcmp(env->member_id, s->member) == 0)
        keep(&s->m[s->count++], env);
    envelope_free(env);
}

struct wait_for {
    struct seen *s;
    size_t at_least;
};

static bool enough_seen(void *arg)
{
    struct wait_for *w = arg;
    const char *member = w->s->member;
    memset(w->s, 0, sizeof(*w->s));
    w->s->member = member;
    return topic_read_all(TOPIC_NOTIFY_REQUESTS, on_message, w->s) >= 0 &&
           w->s->count >= w->at_least;
}

/* Reads the member's messages until there are at least n (fails after
 * the deadline). */
static void read_at_least(const char *member, size_t n, struct seen *s)
{
    s->member = member;
    struct wait_for w = {s, n};
    if (!poll_until(enough_seen, &w, DEADLINE_MS))
        fail_msg("%zu messages for %s on notify-requests, expected %zu", s->count, member, n);
}

/* ------------------------------------------------------------ the API */
static void expect_status(struct api_response *r, long status)
{
    if (r->status != status)
        fprintf(stderr, "test: expected %ld, got %ld: %s\n", status, r->status, r->raw);
    assert_int_equal(r->status, status);
}

static void expect_problem_field(struct api_response r, const char *field)
{
    expect_status(&r, 422);
    assert_string_equal(json_str_at(r.body, "code"), "validation_failed");
    json_t *e = json_array_get(json_object_get(r.body, "errors"), 0);
    assert_string_equal(json_string_value(json_object_get(e, "field")), field);
    api_response_free(&r);
}

/* The pair's entry of a consents answer. */
static json_t *pair_of(json_t *body, const char *channel, const char *purpose)
{
    json_t *list = json_object_get(body, "consents");
    assert_int_equal(json_array_size(list), 8);
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *e = json_array_get(list, i);
        if (strcmp(json_str_at(e, "channel"), channel) == 0 &&
            strcmp(json_str_at(e, "purpose"), purpose) == 0)
            return e;
    }
    fail_msg("no %s/%s in the answer", channel, purpose);
    return NULL;
}

static void expect_pair(json_t *body, const char *channel, const char *purpose, bool granted,
                        const char *source)
{
    json_t *e = pair_of(body, channel, purpose);
    assert_int_equal(json_is_true(json_object_get(e, "granted")), granted);
    if (strncmp(source, "api_key:", 8) == 0)
        assert_true(strncmp(json_str_at(e, "source"), "api_key:", 8) == 0);
    else
        assert_string_equal(json_str_at(e, "source"), source);
    assert_int_equal(json_is_null(json_object_get(e, "changed_at")),
                     strcmp(source, "default") == 0);
}

static void expect_consent(const struct seen_msg *m, const char *channel, const char *purpose,
                           bool granted, const char *source)
{
    assert_int_equal(m->payload_case, TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CONSENT_CHANGED);
    assert_string_equal(m->a, channel);
    assert_string_equal(m->b, purpose);
    assert_int_equal(m->flag, granted);
    if (strncmp(source, "api_key:", 8) == 0)
        assert_true(strncmp(m->c, "api_key:", 8) == 0);
    else
        assert_string_equal(m->c, source);
}

static void register_with(const char *phone, const char *extra, char member[64])
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\":\"Notify Member\",\"phone\":\"%s\",\"email\":\"nm@example.com\","
             "\"branch_id\":\"hq\"%s}",
             phone, extra);
    struct api_response r = api_post("/v1/members", body, NULL);
    expect_status(&r, 201);
    snprintf(member, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

static struct api_response put_consents(const char *member, const char *body, const char *key)
{
    char path[160];
    snprintf(path, sizeof(path), member ? "/v1/members/%s/consents" : "/v1/me/consents",
             member ? member : "");
    return api_call("PUT", path, body, key, NULL);
}

/* Asks for a login code for phone until ingest takes the request: the
 * SMS bucket of this address (shared with the tests before) refills at
 * one a second, and a 429 sends nothing. */
static bool code_requested(void *arg)
{
    char body[96];
    snprintf(body, sizeof(body), "{\"phone\":\"%s\"}", (const char *)arg);
    struct api_response r = api_app_post("/v1/auth/sms-codes", body);
    long status = r.status;
    api_response_free(&r);
    assert_true(status == 202 || status == 429);
    return status == 202;
}

/* ------------------------------------------------------------ tests */
/* Registration: the contact, then the initial consent; defaults read
 * back; a staff change stored and sent once; the same change again sends
 * nothing; bad bodies refused naming the field. */
static void test_registration_and_staff_consents(void **state)
{
    char phone[16], member[64], path[160];
    test_unique_phone(phone);
    register_with(phone,
                  ",\"locale\":\"en\",\"consents\":[{\"channel\":\"email\",\"purpose\":"
                  "\"marketing\",\"granted\":true}]",
                  member);
    struct seen s;
    read_at_least(member, 2, &s);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.m[0].payload_case,
                     TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_CONTACT_CHANGED);
    assert_string_equal(s.m[0].a, "Notify Member");
    assert_string_equal(s.m[0].b, phone);
    assert_string_equal(s.m[0].c, "nm@example.com");
    assert_string_equal(s.m[0].d, "en");
    assert_false(s.m[0].flag);
    expect_consent(&s.m[1], "email", "marketing", true, "registration");

    snprintf(path, sizeof(path), "/v1/members/%s/consents", member);
    struct api_response r = api_get(path);
    expect_status(&r, 200);
    expect_pair(r.body, "email", "marketing", true, "registration");
    expect_pair(r.body, "sms", "marketing", false, "default");
    expect_pair(r.body, "sms", "transactional", true, "default");
    api_response_free(&r);

    const char *change = "{\"consents\":[{\"channel\":\"email\",\"purpose\":\"marketing\","
                         "\"granted\":false},{\"channel\":\"sms\",\"purpose\":\"marketing\","
                         "\"granted\":true}]}";
    r = put_consents(member, change, NULL);
    expect_status(&r, 200);
    expect_pair(r.body, "email", "marketing", false, "api_key:");
    expect_pair(r.body, "sms", "marketing", true, "api_key:");
    api_response_free(&r);
    r = put_consents(member, change, NULL); /* nothing changes: nothing sent */
    expect_status(&r, 200);
    api_response_free(&r);
    expect_problem_field(
        put_consents(member,
                     "{\"consents\":[{\"channel\":\"fax\",\"purpose\":\"marketing\","
                     "\"granted\":true}]}",
                     NULL),
        "consents[0].channel");
    expect_problem_field(put_consents(member, "{\"consents\":[]}", NULL), "consents");
    expect_problem_field(
        put_consents(member,
                     "{\"consents\":[{\"channel\":\"push\",\"purpose\":\"marketing\","
                     "\"granted\":\"yes\"}]}",
                     NULL),
        "consents[0].granted");
    r = put_consents("01a24cc9-d4a9-70b5-91db-000000000000",
                     "{\"consents\":[{\"channel\":\"push\",\"purpose\":\"marketing\","
                     "\"granted\":true}]}",
                     NULL);
    expect_status(&r, 404);
    api_response_free(&r);
    /* a last change: everything before it on the member's partition is in */
    r = put_consents(member,
                     "{\"consents\":[{\"channel\":\"inbox\",\"purpose\":\"marketing\","
                     "\"granted\":true}]}",
                     NULL);
    expect_status(&r, 200);
    expect_pair(r.body, "push", "marketing", false, "default");
    api_response_free(&r);
    read_at_least(member, 5, &s);
    assert_int_equal(s.count, 5);
    expect_consent(&s.m[2], "email", "marketing", false, "api_key:");
    expect_consent(&s.m[3], "sms", "marketing", true, "api_key:");
    expect_consent(&s.m[4], "inbox", "marketing", true, "api_key:");
}

static int64_t consent_audits(const char *member, const char *actor_key_id)
{
    PGconn *pg = test_pg();
    const char *p[2] = {member, actor_key_id};
    int64_t n = test_pg_int(pg,
                            "SELECT count(*) FROM ingest.audit_log WHERE target = $1 "
                            "AND action = 'member.consents.update' AND actor_key_id = $2",
                            2, p);
    PQfinish(pg);
    return n;
}

/* Regression: consent changes were not audited. A till of another branch
 * than the member's (a pos key changes any member of its tenant, as for
 * the profile) changes two pairs: two audit rows naming its key, with the
 * state before (the default) and after; the same change again adds none. */
static void test_consent_changes_audited(void **state)
{
    char phone[16], member[64], key[128], key_id[32];
    test_unique_phone(phone);
    register_with(phone, "", member);
    struct api_response r =
        api_post("/v1/api-keys",
                 "{\"name\":\"consent till\",\"scope\":\"pos\",\"branch_id\":\"branch-1\"}", NULL);
    expect_status(&r, 201);
    snprintf(key, sizeof(key), "%s", json_str_at(r.body, "key"));
    snprintf(key_id, sizeof(key_id), "%s", json_str_at(r.body, "key_id"));
    api_response_free(&r);
    const char *change = "{\"consents\":[{\"channel\":\"email\",\"purpose\":\"marketing\","
                         "\"granted\":true},{\"channel\":\"sms\",\"purpose\":\"transactional\","
                         "\"granted\":false}]}";
    r = put_consents(member, change, key);
    expect_status(&r, 200);
    api_response_free(&r);
    assert_int_equal(consent_audits(member, key_id), 2);
    PGconn *pg = test_pg();
    const char *p[2] = {member, key_id};
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.audit_log WHERE target = $1 "
                                 "AND actor_key_id = $2 AND action = 'member.consents.update' "
                                 "AND after->>'source' = 'api_key:' || $2 AND ("
                                 "(before @> '{\"channel\":\"email\",\"purpose\":\"marketing\","
                                 "\"granted\":false,\"source\":\"default\"}' "
                                 "AND after @> '{\"channel\":\"email\",\"granted\":true}') OR "
                                 "(before @> '{\"channel\":\"sms\",\"purpose\":\"transactional\","
                                 "\"granted\":true,\"source\":\"default\"}' "
                                 "AND after @> '{\"channel\":\"sms\",\"granted\":false}'))",
                                 2, p),
                     2);
    PQfinish(pg);
    r = put_consents(member, change, key); /* nothing changes: nothing audited */
    expect_status(&r, 200);
    api_response_free(&r);
    assert_int_equal(consent_audits(member, key_id), 2);
}

/* A member logs in with the code read from notify-requests, sets and
 * reads its own consents and marks its inbox read; staff mark messages
 * read; an erasure tells notification to forget the member's addresses. */
static void test_member_self_service_and_erasure(void **state)
{
    char phone[16], member[64], body[160], path[160], token[160];
    test_unique_phone(phone);
    register_with(phone, "", member);
    assert_true(poll_until(code_requested, phone, DEADLINE_MS));
    struct seen s;
    read_at_least(member, 2, &s); /* the contact (no consents given), the code */
    assert_int_equal(s.m[0].payload_case,
                     TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_CONTACT_CHANGED);
    assert_string_equal(s.m[0].d, "");
    const struct login_code *code = &s.m[1].code;
    assert_string_equal(code->phone, phone);
    assert_string_equal(code->channel, "sms");
    snprintf(body, sizeof(body), "{\"phone\":\"%s\",\"code\":\"%s\",\"device_id\":\"np-1\"}", phone,
             code->code);
    struct api_response r = api_app_post("/v1/auth/sessions", body);
    expect_status(&r, 201);
    snprintf(token, sizeof(token), "%s", json_str_at(r.body, "token"));
    api_response_free(&r);

    r = put_consents(NULL,
                     "{\"consents\":[{\"channel\":\"push\",\"purpose\":\"marketing\","
                     "\"granted\":true}]}",
                     token);
    expect_status(&r, 200);
    api_response_free(&r);
    r = api_call("GET", "/v1/me/consents", NULL, token, NULL);
    expect_status(&r, 200);
    assert_string_equal(json_str_at(r.body, "member_id"), member);
    expect_pair(r.body, "push", "marketing", true, "member");
    api_response_free(&r);
    assert_int_equal(consent_audits(member, "member"), 1); /* the member's own change */
    r = put_consents(member, "{\"consents\":[]}", token);  /* a member token: staff routes 401 */
    expect_status(&r, 401);
    api_response_free(&r);

    r = api_call("POST", "/v1/me/inbox/read", "{\"up_to\":\"2026-01-02T03:04:05Z\"}", token, NULL);
    expect_status(&r, 202);
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s/inbox/read", member);
    expect_problem_field(api_post(path, "{}", NULL), "message_ids");
    expect_problem_field(api_post(path, "{\"up_to\":\"yesterday\"}", NULL), "up_to");
    r = api_post(path, "{\"message_ids\":[\"msg-1\"]}", NULL);
    expect_status(&r, 202);
    api_response_free(&r);

    snprintf(path, sizeof(path), "/v1/members/%s/personal-data", member);
    r = api_call("DELETE", path, NULL, NULL, NULL);
    expect_status(&r, 200);
    api_response_free(&r);

    read_at_least(member, 6, &s);
    assert_int_equal(s.count, 6);
    expect_consent(&s.m[2], "push", "marketing", true, "member");
    assert_string_equal(s.m[2].actor, "member");
    assert_int_equal(s.m[3].payload_case,
                     TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_INBOX_MESSAGES_READ);
    assert_int_equal(s.m[3].n, 1767323045000000LL);
    assert_int_equal(s.m[4].payload_case,
                     TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_INBOX_MESSAGES_READ);
    assert_string_equal(s.m[4].a, "msg-1");
    assert_int_equal(s.m[4].n, 0);
    assert_int_equal(s.m[5].payload_case,
                     TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_CONTACT_CHANGED);
    assert_true(s.m[5].flag);
    assert_string_equal(s.m[5].b, "");
    assert_string_equal(s.m[5].c, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registration_and_staff_consents),
        cmocka_unit_test(test_member_self_service_and_erasure),
        cmocka_unit_test(test_consent_changes_audited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
