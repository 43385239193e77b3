/* Notification end to end through the real producers (issue 11): a
 * member registered over the API (its contact and consents sent by
 * ingest) tops up and buys with stored value; the ledger's receipts
 * reach GET /v1/members/{id}/inbox and the member's email at the test
 * SMTP server (tests/support/notify_sinks.py), rendered with the amounts;
 * a marketing message reaches the inbox while the member consents, and
 * once the member's marketing consent is withdrawn through the API the
 * next one is suppressed (NotificationSuppressed, rule no_consent, on
 * notify-events) and never reaches the inbox; marking the top-up's
 * receipt read (POST /v1/members/{id}/inbox/read) lowers the unread count.
 *
 * Marketing requests have no producer of their own yet (the campaign's
 * offers are another issue): the test produces them on notify-requests
 * as the campaign will, keyed by the member. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "events/codec.h"

#define WAIT_MS  30000
#define TEXT_MAX 8192

/* ------------------------------------------------------------ the inbox */
struct inbox_wait {
    const char *member;
    size_t at_least;
    json_t *body; /* the last answer, kept */
};

static bool inbox_has(void *arg)
{
    struct inbox_wait *w = arg;
    char path[160];
    snprintf(path, sizeof(path), "/v1/members/%s/inbox", w->member);
    struct api_response r = api_get(path);
    assert_int_equal(r.status, 200);
    json_decref(w->body);
    w->body = json_incref(r.body);
    api_response_free(&r);
    return json_array_size(json_object_get(w->body, "messages")) >= w->at_least;
}

/* The inbox once it holds at least n messages (the caller json_decref()s). */
static json_t *inbox_at_least(const char *member, size_t n)
{
    struct inbox_wait w = {member, n, NULL};
    if (!poll_until(inbox_has, &w, WAIT_MS))
        fail_msg("the inbox of %s holds %zu messages, expected %zu", member,
                 json_array_size(json_object_get(w.body, "messages")), n);
    return w.body;
}

/* The message of template in an inbox answer (NULL when none). */
static json_t *message_of(json_t *inbox, const char *template_)
{
    json_t *list = json_object_get(inbox, "messages");
    for (size_t i = 0; i < json_array_size(list); i++)
        if (strcmp(json_str_at(json_array_get(list, i), "template"), template_) == 0)
            return json_array_get(list, i);
    return NULL;
}

static size_t count_of(json_t *inbox, const char *template_)
{
    size_t n = 0;
    json_t *list = json_object_get(inbox, "messages");
    for (size_t i = 0; i < json_array_size(list); i++)
        n += strcmp(json_str_at(json_array_get(list, i), "template"), template_) == 0;
    return n;
}

struct unread_wait {
    const char *member;
    int64_t unread;
};

static bool unread_is(void *arg)
{
    const struct unread_wait *w = arg;
    char path[160];
    snprintf(path, sizeof(path), "/v1/members/%s/inbox", w->member);
    struct api_response r = api_get(path);
    bool ok = r.status == 200 && json_int_at(r.body, "unread") == w->unread &&
              !json_is_null(json_object_get(message_of(r.body, "receipt.top_up"), "read_at"));
    api_response_free(&r);
    return ok;
}

/* ------------------------------------------------------------ the mail */
/* The plain-text parts, decoded, of every mail the SMTP sink received for
 * address, joined into out; the number of such mails. */
static size_t mail_text(const char *address, char *out, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/mail.jsonl", getenv("TESSERA_NOTIFY_SINKS_DIR"));
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t mails = 0, used = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        const char *to = json_string_value(json_array_get(json_object_get(j, "rcpt_tos"), 0));
        const char *data = json_string_value(json_object_get(j, "data"));
        const char *part = data ? strstr(data, "text/plain; charset=UTF-8") : NULL;
        part = part ? strstr(part, "\r\n\r\n") : NULL;
        if (to && strcmp(to, address) == 0 && part &&
            json_integer_value(json_object_get(j, "code")) == 250) {
            size_t n = 0;
            if (sodium_base642bin((unsigned char *)out + used, len - used - 1, part + 4,
                                  strcspn(part + 4, "-"), "\r\n", &n, NULL,
                                  sodium_base64_VARIANT_ORIGINAL) == 0) {
                used += n;
                out[used] = '\0';
                mails++;
            }
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    return mails;
}

struct mail_wait {
    const char *address;
    size_t at_least;
    char text[TEXT_MAX];
};

/* Both receipts have arrived (the welcome may come by mail too, before or
 * after them: it races the member's contact). */
static bool mail_has(void *arg)
{
    struct mail_wait *w = arg;
    return mail_text(w->address, w->text, sizeof(w->text)) >= w->at_least &&
           strstr(w->text, "you topped up") && strstr(w->text, "you spent");
}

static int occurrences(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ------------------------------------------------------------ marketing */
/* A marketing message for the member's inbox, as the campaign will send
 * it (template coupon.issued). */
static void marketing(const char *member, const char *request_id)
{
    struct event_meta meta = {
        .tenant_id = "demo", .member_id = member, .actor_kind = "service", .actor_id = "campaign"};
    Envelope env;
    Actor actor;
    envelope_init(&env, &actor, &meta);
    Tessera__Notification__V1__NotifyRequest q = TESSERA__NOTIFICATION__V1__NOTIFY_REQUEST__INIT;
    Tessera__Notification__V1__Variable name = TESSERA__NOTIFICATION__V1__VARIABLE__INIT;
    name.name = "coupon.name";
    name.value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
    name.text = "Ten off";
    Tessera__Notification__V1__Variable *vars[1] = {&name};
    char *channels[1] = {"inbox"};
    q.request_id = (char *)request_id;
    q.template_ = "coupon.issued";
    q.purpose = "marketing";
    q.priority = "bulk";
    q.n_channels = 1;
    q.channels = channels;
    q.n_variables = 1;
    q.variables = vars;
    q.locale = "";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST;
    env.notify_request = &q;
    size_t len = 0;
    uint8_t *bin = envelope_encode(&env, &len);
    assert_non_null(bin);
    assert_int_equal(topic_produce(TOPIC_NOTIFY_REQUESTS, RD_KAFKA_PARTITION_UA, member,
                                   strlen(member), bin, len,
                                   envelope_cloudevents_headers(&env, "/tessera/campaign")),
                     0);
    free(bin);
}

struct suppressed {
    const char *request_id;
    char rule[64], channel[16];
    int count;
};

static void on_outcome(void *ctx, const rd_kafka_message_t *m)
{
    struct suppressed *s = ctx;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    if (env &&
        env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFICATION_SUPPRESSED &&
        strcmp(env->notification_suppressed->request_id, s->request_id) == 0) {
        s->count++;
        snprintf(s->rule, sizeof(s->rule), "%s", env->notification_suppressed->rule);
        snprintf(s->channel, sizeof(s->channel), "%s", env->notification_suppressed->channel);
    }
    envelope_free(env);
}

static bool suppressed_seen(void *arg)
{
    struct suppressed *s = arg;
    s->count = 0;
    return topic_read_all(TOPIC_NOTIFY_EVENTS, on_outcome, s) >= 0 && s->count > 0;
}

/* The withdrawal on notify-requests: the request produced after it is
 * decided after it (one partition per member). */
struct withdrawal {
    const char *member;
    int count;
};

static void on_request(void *ctx, const rd_kafka_message_t *m)
{
    struct withdrawal *w = ctx;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    if (env && env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CONSENT_CHANGED &&
        strcmp(env->member_id, w->member) == 0 && !env->consent_changed->granted)
        w->count++;
    envelope_free(env);
}

static bool withdrawal_on_topic(void *arg)
{
    struct withdrawal *w = arg;
    w->count = 0;
    return topic_read_all(TOPIC_NOTIFY_REQUESTS, on_request, w) >= 0 && w->count > 0;
}

/* ------------------------------------------------------------ the test */
static void post_ok(const char *path, const char *body, long status)
{
    struct api_response r = api_post(path, body, NULL);
    if (r.status != status)
        fprintf(stderr, "test: %s answered %ld: %s\n", path, r.status, r.raw);
    assert_int_equal(r.status, status);
    api_response_free(&r);
}

static void test_receipts_reach_inbox_and_mail_and_consent_is_kept(void **state)
{
    char phone[16], email[64], body[512], path[160], member[64], offer1[96], offer2[96];
    test_unique_phone(phone);
    snprintf(email, sizeof(email), "m%s@example.test", phone);
    snprintf(body, sizeof(body),
             "{\"name\":\"Wang Fang\",\"phone\":\"%s\",\"email\":\"%s\",\"branch_id\":\"hq\","
             "\"locale\":\"en\",\"consents\":[{\"channel\":\"inbox\",\"purpose\":\"marketing\","
             "\"granted\":true}]}",
             phone, email);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(member, sizeof(member), "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);

    snprintf(path, sizeof(path), "/v1/members/%s/topups", member);
    post_ok(path, "{\"amount\":50000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", 201);
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", member);
    post_ok(path,
            "{\"amount\":12345,\"branch_id\":\"hq\",\"payment\":{\"method\":\"stored_value\"}}",
            201);

    /* the receipts in the inbox (after the campaign's welcome), rendered
     * in the member's language */
    json_t *inbox = inbox_at_least(member, 3);
    json_t *top_up = message_of(inbox, "receipt.top_up");
    json_t *purchase = message_of(inbox, "receipt.purchase");
    assert_non_null(top_up);
    assert_non_null(purchase);
    assert_non_null(strstr(json_str_at(top_up, "body"), "Wang Fang"));
    assert_non_null(strstr(json_str_at(top_up, "body"), "500.00"));
    assert_non_null(strstr(json_str_at(purchase, "body"), "123.45"));
    assert_non_null(strstr(json_str_at(purchase, "body"), "376.55")); /* the balance after */
    assert_int_equal(json_int_at(inbox, "unread"), 3);
    json_decref(inbox);

    /* and by email, to the address registration gave */
    struct mail_wait *mw = calloc(1, sizeof(*mw));
    assert_non_null(mw);
    mw->address = email;
    mw->at_least = 2;
    if (!poll_until(mail_has, mw, WAIT_MS))
        fail_msg("mail for %s: %s", email, mw->text);
    assert_non_null(strstr(mw->text, "500.00"));
    assert_non_null(strstr(mw->text, "123.45"));
    mail_text(email, mw->text, sizeof(mw->text));
    assert_int_equal(occurrences(mw->text, "you topped up"), 1); /* once each */
    assert_int_equal(occurrences(mw->text, "you spent"), 1);
    free(mw);

    /* marketing with consent reaches the inbox */
    snprintf(offer1, sizeof(offer1), "offer:e2e-1:%s", member);
    marketing(member, offer1);
    inbox = inbox_at_least(member, 4);
    assert_int_equal(count_of(inbox, "coupon.issued"), 1);
    json_decref(inbox);

    /* withdrawn through the API: the next one is suppressed */
    snprintf(path, sizeof(path), "/v1/members/%s/consents", member);
    r = api_call("PUT", path,
                 "{\"consents\":[{\"channel\":\"inbox\",\"purpose\":\"marketing\","
                 "\"granted\":false}]}",
                 NULL, NULL);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    struct withdrawal w = {member, 0};
    assert_true(poll_until(withdrawal_on_topic, &w, WAIT_MS));
    snprintf(offer2, sizeof(offer2), "offer:e2e-2:%s", member);
    marketing(member, offer2);
    struct suppressed s = {.request_id = offer2};
    if (!poll_until(suppressed_seen, &s, WAIT_MS))
        fail_msg("no NotificationSuppressed for %s", offer2);
    assert_string_equal(s.rule, "no_consent");
    assert_string_equal(s.channel, "inbox");
    inbox = inbox_at_least(member, 4);
    assert_int_equal(count_of(inbox, "coupon.issued"), 1);
    assert_int_equal(json_int_at(inbox, "unread"), 4);
    char read_body[160];
    snprintf(read_body, sizeof(read_body), "{\"message_ids\":[\"%s\"]}",
             json_str_at(message_of(inbox, "receipt.top_up"), "message_id"));
    json_decref(inbox);

    /* the member reads the top-up's receipt: POST .../inbox/read */
    snprintf(path, sizeof(path), "/v1/members/%s/inbox/read", member);
    post_ok(path, read_body, 202);
    struct unread_wait u = {member, 3};
    assert_true(poll_until(unread_is, &u, WAIT_MS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_receipts_reach_inbox_and_mail_and_consent_is_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
