/* Notification against real peers (issue 11): the runtime's SMTP server
 * and webhook sink (tests/support/notify_sinks.py) record what they
 * receive, and these tests assert on it — headers, body, the HMAC
 * signature checked with the shared secret. Requests are produced
 * straight to notify-requests, as any service would; each test uses its
 * own tenant and members. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/api_client.h"
#include "../support/test_clock.h"
#include "../support/topic_reader.h"
#include "events/codec.h"
#include "tessera/identity/v1/identity.pb-c.h"
#include "tessera/notification/v1/notification.pb-c.h"

#define WAIT_MS 30000
#define HOUR_US (INT64_C(3600) * 1000000)

typedef Tessera__Notification__V1__Variable Variable;

static PGconn *pg;
static char tenant[64];
static int serial;

static int setup(void **state)
{
    pg = test_pg();
    return sodium_init() < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    PQfinish(pg);
    return 0;
}

/* A fresh tenant per test: policies, caps and quiet hours stay its own. */
static void new_tenant(void)
{
    snprintf(tenant, sizeof(tenant), "t-notify-%d-%d-%ld", (int)getpid(), ++serial,
             (long)time(NULL));
}

static void member_id(char out[64], const char *tag)
{
    snprintf(out, 64, "m-%s-%d-%d", tag, (int)getpid(), ++serial);
}

/* --- producing ------------------------------------------------------------ */

static void produce(Envelope *env, const char *member)
{
    size_t len = 0;
    uint8_t *bin = envelope_encode(env, &len);
    assert_non_null(bin);
    assert_int_equal(topic_produce("notify-requests", RD_KAFKA_PARTITION_UA, member, strlen(member),
                                   bin, len, NULL),
                     0);
    free(bin);
}

#define ENVELOPE(env, actor, meta, member)                                                         \
    Envelope env;                                                                                  \
    Actor actor;                                                                                   \
    struct event_meta meta = {.tenant_id = tenant, .member_id = (member), .actor_kind = "test"};   \
    envelope_init(&env, &actor, &meta)

static void contact(const char *member, const char *name, const char *phone, const char *email)
{
    ENVELOPE(env, actor, meta, member);
    Tessera__Notification__V1__MemberContactChanged c =
        TESSERA__NOTIFICATION__V1__MEMBER_CONTACT_CHANGED__INIT;
    c.name = (char *)name, c.phone = (char *)phone, c.email = (char *)email, c.locale = "en";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_CONTACT_CHANGED;
    env.member_contact_changed = &c;
    produce(&env, member);
}

static void consent(const char *member, const char *channel, bool granted)
{
    ENVELOPE(env, actor, meta, member);
    Tessera__Notification__V1__ConsentChanged c = TESSERA__NOTIFICATION__V1__CONSENT_CHANGED__INIT;
    c.channel = (char *)channel, c.purpose = "marketing", c.granted = granted, c.source = "test";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CONSENT_CHANGED;
    env.consent_changed = &c;
    produce(&env, member);
}

/* The tenant's policy (keyed by tenant). */
static void policy(const char *zone, int quiet_start, int quiet_end, int cap)
{
    ENVELOPE(env, actor, meta, NULL);
    Tessera__Notification__V1__NotificationPolicyChanged p =
        TESSERA__NOTIFICATION__V1__NOTIFICATION_POLICY_CHANGED__INIT;
    char change[64];
    snprintf(change, sizeof(change), "policy-%d", ++serial);
    p.change_id = change, p.time_zone = (char *)zone, p.quiet_start_minute = quiet_start;
    p.quiet_end_minute = quiet_end, p.marketing_cap_per_week = cap, p.default_locale = "en";
    p.currency = "CNY";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFICATION_POLICY_CHANGED;
    env.notification_policy_changed = &p;
    produce(&env, tenant);
}

static void request(const char *member, const char *request_id, const char *template_name,
                    const char *purpose, const char *priority, const char *channel)
{
    ENVELOPE(env, actor, meta, member);
    Tessera__Notification__V1__NotifyRequest r = TESSERA__NOTIFICATION__V1__NOTIFY_REQUEST__INIT;
    Variable amount = TESSERA__NOTIFICATION__V1__VARIABLE__INIT, balance = amount;
    amount.name = "amount";
    amount.value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_MONEY_MINOR;
    amount.money_minor = 12800;
    balance.name = "balance.stored_value";
    balance.value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_MONEY_MINOR;
    balance.money_minor = 50050;
    Variable *vars[2] = {&amount, &balance};
    char *channels[1] = {(char *)channel};
    r.request_id = (char *)request_id, r.template_ = (char *)template_name;
    r.purpose = (char *)purpose, r.priority = (char *)priority;
    r.n_channels = channel ? 1 : 0, r.channels = channel ? channels : NULL;
    r.n_variables = 2, r.variables = vars, r.locale = "";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST;
    env.notify_request = &r;
    produce(&env, member);
}

/* --- the sinks ------------------------------------------------------------- */

static void sink_mode(const char *name, const char *mode)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.mode", getenv("TESSERA_NOTIFY_SINKS_DIR"), name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(mode, f);
    fclose(f);
}

/* Records of sink name (sms, push, mail) whose text contains needle, in
 * the order received: a JSON array the caller json_decref()s. */
static json_t *sink_records(const char *name, const char *needle)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.jsonl", getenv("TESSERA_NOTIFY_SINKS_DIR"), name);
    json_t *out = json_array();
    FILE *f = fopen(path, "r");
    if (!f)
        return out;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        if (!strstr(line, needle))
            continue;
        json_t *j = json_loads(line, 0, NULL);
        if (j)
            json_array_append_new(out, j);
    }
    free(line);
    fclose(f);
    return out;
}

static size_t sink_count(const char *name, const char *needle)
{
    json_t *a = sink_records(name, needle);
    size_t n = json_array_size(a);
    json_decref(a);
    return n;
}

struct sink_wait {
    const char *name, *needle;
    size_t at_least;
};

static bool sink_has(void *arg)
{
    const struct sink_wait *w = arg;
    return sink_count(w->name, w->needle) >= w->at_least;
}

static bool wait_sink(const char *name, const char *needle, size_t at_least)
{
    struct sink_wait w = {name, needle, at_least};
    return poll_until(sink_has, &w, WAIT_MS);
}

/* The JSON body of a webhook record, checked: signature, timestamp and
 * message id headers as docs/notifications.md promises. */
static json_t *verified_body(json_t *rec)
{
    json_t *h = json_object_get(rec, "headers");
    const char *body = json_string_value(json_object_get(rec, "body"));
    const char *ts = json_string_value(json_object_get(h, "x-tessera-timestamp"));
    const char *sig = json_string_value(json_object_get(h, "x-tessera-signature"));
    const char *mid = json_string_value(json_object_get(h, "x-tessera-message-id"));
    assert_non_null(body), assert_non_null(ts), assert_non_null(sig), assert_non_null(mid);
    assert_true(llabs(atoll(ts) - (long long)time(NULL)) < 600);
    const char *secret = getenv("TESSERA_NOTIFICATION_WEBHOOK_SECRET");
    assert_non_null(secret);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, strlen(body));
    crypto_auth_hmacsha256_final(&st, mac);
    char hex[2 * sizeof(mac) + 1];
    sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
    assert_string_equal(sig, hex);
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "message_id")), mid);
    return j;
}

/* --- the service's tables (tests may read any schema) ------------------------ */

/* A decision's column: its delivery row, or (a message put in the
 * inbox has none) its inbox row, as status delivered with its rule. */
static char *delivery_field(const char *request_id, const char *channel, const char *column)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT %s FROM (SELECT tenant_id, request_id, channel, status, rule, lane, "
             " last_error, attempts FROM notification.deliveries UNION ALL SELECT tenant_id, "
             " request_id, 'inbox', 'delivered', rule, NULL, NULL, 1 FROM notification.inbox) d "
             "WHERE tenant_id = $1 AND request_id = $2 AND channel = $3",
             column);
    const char *p[3] = {tenant, request_id, channel};
    PGresult *res = PQexecParams(pg, sql, 3, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    char *v = PQntuples(res) == 1 ? strdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    return v;
}

struct status_wait {
    const char *request_id, *channel, *status;
};

static bool has_status(void *arg)
{
    const struct status_wait *w = arg;
    char *s = delivery_field(w->request_id, w->channel, "status");
    bool ok = s && strcmp(s, w->status) == 0;
    free(s);
    return ok;
}

/* Waits for the delivery's status; fails naming what it was. */
static void expect_status(const char *request_id, const char *channel, const char *status,
                          const char *rule)
{
    struct status_wait w = {request_id, channel, status};
    if (!poll_until(has_status, &w, WAIT_MS)) {
        char *s = delivery_field(request_id, channel, "status || '/' || rule");
        fail_msg("%s/%s: status %s, want %s", request_id, channel, s ? s : "(none)", status);
    }
    if (rule) {
        char *r = delivery_field(request_id, channel, "rule");
        assert_string_equal(r, rule);
        free(r);
    }
}

/* --- the tests ---------------------------------------------------------------- */

struct code_ask {
    const char *phone;
};

static bool code_requested(void *arg)
{
    const struct code_ask *a = arg;
    char body[64];
    snprintf(body, sizeof(body), "{\"phone\":\"%s\"}", a->phone);
    struct api_response r = api_app_post("/v1/auth/sms-codes", body);
    long status = r.status;
    api_response_free(&r);
    assert_true(status == 202 || status == 429);
    return status == 202;
}

/* What a sink's log holds for a request: its id as the JSON body quotes it. */
static void sink_needle(char *needle, size_t size, const char *request_id)
{
    snprintf(needle, size, "\\\"request_id\\\":\\\"%s\\\"", request_id);
}

/* A login code reaches the SMS provider signed, in the high lane, and the
 * code in it logs the member in. */
static void test_login_code_by_sms(void **state)
{
    sink_mode("sms", "ok");
    char phone[16], body[256];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"Sms Member\",\"phone\":\"%s\",\"branch_id\":\"hq\"}",
             phone);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    /* the address's SMS bucket (1 a second) may be empty after
     * test_member_login: ask again until it takes the request */
    struct code_ask ask = {.phone = phone};
    assert_true(poll_until(code_requested, &ask, WAIT_MS));

    char needle[40];
    snprintf(needle, sizeof(needle), "\\\"to\\\":\\\"%s\\\"", phone);
    assert_true(wait_sink("sms", needle, 1));
    json_t *recs = sink_records("sms", needle);
    json_t *msg = verified_body(json_array_get(recs, 0));
    assert_string_equal(json_string_value(json_object_get(msg, "template")), "login_code");
    const char *text = json_string_value(json_object_get(msg, "text"));
    char code[8] = "";
    for (const char *c = text; *c && !code[0]; c++)
        if (strspn(c, "0123456789") == 6 && (c == text || c[-1] < '0' || c[-1] > '9'))
            memcpy(code, c, 6);
    assert_int_equal(strlen(code), 6);
    snprintf(body, sizeof(body), "{\"phone\":\"%s\",\"code\":\"%s\",\"device_id\":\"sms-test\"}",
             phone, code);
    r = api_app_post("/v1/auth/sessions", body);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    json_decref(msg);
    json_decref(recs);
}

/* A receipt produced straight to notify-requests lands in the inbox and
 * by email: money with its currency, the HTML part escaped, a plain-text
 * part beside it. */
static void test_receipt_inbox_and_email(void **state)
{
    new_tenant();
    char m[64], email[96], rid[96];
    member_id(m, "mail");
    snprintf(email, sizeof(email), "%s@example.test", m);
    contact(m, "Li <Wei> & co", "", email);
    snprintf(rid, sizeof(rid), "receipt:%s", m);
    request(m, rid, "receipt.top_up", "transactional", "normal", NULL); /* inbox + email */

    expect_status(rid, "inbox", "delivered", "transactional");
    const char *p[2] = {tenant, m};
    PGresult *res = PQexecParams(pg,
                                 "SELECT title, body, read_us IS NULL FROM notification.read_inbox "
                                 "WHERE tenant_id = $1 AND member_id = $2",
                                 2, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), "Top-up received");
    assert_non_null(strstr(PQgetvalue(res, 0, 1), "topped up ¥128.00"));
    assert_non_null(strstr(PQgetvalue(res, 0, 1), "Stored value: ¥500.50"));
    assert_string_equal(PQgetvalue(res, 0, 2), "t");
    PQclear(res);

    assert_true(wait_sink("mail", email, 1));
    expect_status(rid, "email", "delivered", "transactional");
    json_t *recs = sink_records("mail", email);
    const char *data = json_string_value(json_object_get(json_array_get(recs, 0), "data"));
    assert_non_null(strstr(data, "multipart/alternative"));
    assert_non_null(strstr(data, "text/plain; charset=UTF-8"));
    assert_non_null(strstr(data, "text/html; charset=UTF-8"));
    /* the HTML part, decoded: the name escaped, never markup */
    const char *html = strstr(data, "text/html; charset=UTF-8");
    html = strstr(html, "\r\n\r\n");
    assert_non_null(html);
    char decoded[4096];
    size_t len = 0;
    assert_int_equal(sodium_base642bin((unsigned char *)decoded, sizeof(decoded) - 1, html + 4,
                                       strcspn(html + 4, "-"), "\r\n", &len, NULL,
                                       sodium_base64_VARIANT_ORIGINAL),
                     0);
    decoded[len] = '\0';
    assert_non_null(strstr(decoded, "Li &lt;Wei&gt; &amp; co"));
    assert_null(strstr(decoded, "<Wei>"));
    assert_non_null(strstr(decoded, "¥128.00"));
    json_decref(recs);
}

/* The same request twice (a re-delivered cause) is delivered once. */
static void test_duplicate_delivered_once(void **state)
{
    new_tenant();
    sink_mode("sms", "ok");
    char m[64], rid[96], marker[96];
    member_id(m, "dup");
    contact(m, "Dup", "+8613900000001", "");
    snprintf(rid, sizeof(rid), "receipt:dup:%s", m);
    snprintf(marker, sizeof(marker), "receipt:marker:%s", m);
    request(m, rid, "receipt.purchase", "transactional", "normal", "sms");
    request(m, rid, "receipt.purchase", "transactional", "normal", "sms");
    request(m, marker, "receipt.purchase", "transactional", "normal", "sms");
    /* one partition (keyed by member): the marker is decided after both */
    expect_status(marker, "sms", "delivered", NULL);
    expect_status(rid, "sms", "delivered", NULL);
    char needle[128];
    sink_needle(needle, sizeof(needle), rid);
    assert_int_equal(sink_count("sms", needle), 1);
}

/* A login code carries its recipient (recipient.phone): it reaches a
 * member notification holds no contact for (registered before contacts
 * were sent), and only the login code may be addressed that way. */
static void test_login_code_to_its_recipient(void **state)
{
    new_tenant();
    sink_mode("sms", "ok");
    char m[64], rid[96], other[96];
    member_id(m, "nocontact");
    snprintf(rid, sizeof(rid), "login_code:direct:%s", m);
    snprintf(other, sizeof(other), "receipt:direct:%s", m);
    static const char *const templates[] = {"receipt.purchase", "login_code"};
    const char *ids[] = {other, rid};
    for (int i = 0; i < 2; i++) {
        ENVELOPE(env, actor, meta, m);
        Tessera__Notification__V1__NotifyRequest r =
            TESSERA__NOTIFICATION__V1__NOTIFY_REQUEST__INIT;
        Variable code = TESSERA__NOTIFICATION__V1__VARIABLE__INIT, to = code;
        code.name = "code", code.value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
        code.text = "813579";
        to.name = "recipient.phone",
        to.value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
        to.text = "+8613900000077";
        Variable *vars[2] = {&code, &to};
        char *channels[1] = {"sms"};
        r.request_id = (char *)ids[i], r.template_ = (char *)templates[i];
        r.purpose = "transactional", r.priority = "high";
        r.n_channels = 1, r.channels = channels, r.n_variables = 2, r.variables = vars;
        r.locale = "";
        env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST;
        env.notify_request = &r;
        produce(&env, m);
    }
    /* one partition: the receipt is decided before the code */
    expect_status(rid, "sms", "delivered", NULL);
    char needle[128];
    sink_needle(needle, sizeof(needle), rid);
    json_t *recs = sink_records("sms", needle);
    assert_int_equal(json_array_size(recs), 1);
    char *text = json_dumps(recs, 0);
    assert_non_null(strstr(text, "8613900000077"));
    assert_non_null(strstr(text, "813579"));
    free(text);
    json_decref(recs);
    char *status = delivery_field(other, "sms", "status");
    assert_non_null(status);
    assert_string_not_equal(status, "delivered"); /* no contact, no recipient of its own */
    free(status);
}

/* Marketing needs consent per channel; withdrawn, the next is
 * suppressed with its rule (and transactional still goes). */
static void test_consent_withdrawn(void **state)
{
    new_tenant();
    sink_mode("sms", "ok");
    policy("UTC", 0, 0, 0); /* no quiet hours, no cap */
    char m[64], r1[96], r2[96], r3[96];
    member_id(m, "consent");
    contact(m, "Consent", "+8613900000002", "");
    snprintf(r1, sizeof(r1), "offer:1:%s", m);
    snprintf(r2, sizeof(r2), "offer:2:%s", m);
    snprintf(r3, sizeof(r3), "receipt:3:%s", m);
    request(m, r1, "coupon.issued", "marketing", "bulk", "sms"); /* no consent yet */
    expect_status(r1, "sms", "suppressed", "no_consent");
    consent(m, "sms", true);
    snprintf(r1, sizeof(r1), "offer:1b:%s", m);
    request(m, r1, "coupon.issued", "marketing", "bulk", "sms");
    expect_status(r1, "sms", "delivered", "consent");
    consent(m, "sms", false); /* ConsentChanged produced directly */
    request(m, r2, "coupon.issued", "marketing", "bulk", "sms");
    request(m, r3, "receipt.purchase", "transactional", "normal", "sms");
    expect_status(r2, "sms", "suppressed", "no_consent");
    expect_status(r3, "sms", "delivered", "transactional");
    char needle[128];
    sink_needle(needle, sizeof(needle), r2);
    assert_int_equal(sink_count("sms", needle), 0);
}

/* The weekly marketing cap: the third of a cap of two is suppressed. */
static void test_weekly_cap(void **state)
{
    new_tenant();
    sink_mode("sms", "ok");
    policy("UTC", 0, 0, 2);
    char m[64], rid[3][96];
    member_id(m, "cap");
    contact(m, "Cap", "+8613900000003", "");
    consent(m, "sms", true);
    for (int i = 0; i < 3; i++) {
        snprintf(rid[i], sizeof(rid[i]), "offer:cap:%d:%s", i, m);
        request(m, rid[i], "activity.reward", "marketing", "bulk", "sms");
    }
    expect_status(rid[0], "sms", "delivered", "consent");
    expect_status(rid[1], "sms", "delivered", "consent");
    expect_status(rid[2], "sms", "suppressed", "frequency_cap");
}

static bool policy_stored(void *arg)
{
    const char *p[1] = {tenant};
    PGresult *res = PQexecParams(pg, "SELECT 1 FROM notification.policies WHERE tenant_id = $1", 1,
                                 NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    PQclear(res);
    return ok;
}

static bool member_forgotten(void *arg)
{
    const char *p[2] = {tenant, arg};
    return test_pg_int(pg,
                       "SELECT (SELECT count(*) FROM notification.inbox WHERE tenant_id = $1 "
                       "AND member_id = $2) + (SELECT count(*) FROM notification.contacts "
                       "WHERE tenant_id = $1 AND member_id = $2)",
                       2, p) == 0;
}

/* Erasure forgets the member's contact and inbox: the inbox's rendered
 * text is not sealed and names the member. */
static void test_erasure_forgets_inbox(void **state)
{
    new_tenant();
    char m[64], rid[96];
    member_id(m, "erase");
    contact(m, "Erasable Name", "", "");
    snprintf(rid, sizeof(rid), "receipt:erase:%s", m);
    request(m, rid, "receipt.purchase", "transactional", "normal", "inbox");
    expect_status(rid, "inbox", "delivered", "transactional");
    assert_false(member_forgotten(m));
    ENVELOPE(env, actor, meta, m);
    Tessera__Notification__V1__MemberContactChanged c =
        TESSERA__NOTIFICATION__V1__MEMBER_CONTACT_CHANGED__INIT;
    c.erased = true;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_CONTACT_CHANGED;
    env.member_contact_changed = &c;
    produce(&env, m);
    assert_true(poll_until(member_forgotten, m, WAIT_MS));
}

/* Several requests of one member decided in one run: they are produced
 * while the service is stopped, so its first poll takes them together.
 * The cap counts the run's earlier messages too, and a duplicate inside
 * the run is delivered once. */
static void test_cap_within_one_batch(void **state)
{
    new_tenant();
    sink_mode("sms", "ok");
    policy("UTC", 0, 0, 2);
    char m[64], marker[96], rid[5][96];
    member_id(m, "capbatch");
    contact(m, "Capb", "+8613900000013", "");
    consent(m, "sms", true);
    snprintf(marker, sizeof(marker), "receipt:capbatch:%s", m);
    request(m, marker, "receipt.purchase", "transactional", "normal", "sms");
    /* the member's settings are in (same partition), and the tenant's */
    expect_status(marker, "sms", "delivered", "transactional");
    assert_true(poll_until(policy_stored, NULL, WAIT_MS));
    assert_int_equal(runtime_do("stop-service notification"), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(rid[i], sizeof(rid[i]), "offer:capbatch:%d:%s", i, m);
        request(m, rid[i], "activity.reward", "marketing", "bulk", "sms");
    }
    request(m, rid[0], "activity.reward", "marketing", "bulk", "sms");
    assert_int_equal(runtime_do("start-service notification"), 0);
    expect_status(rid[0], "sms", "delivered", "consent");
    expect_status(rid[1], "sms", "delivered", "consent");
    for (int i = 2; i < 5; i++)
        expect_status(rid[i], "sms", "suppressed", "frequency_cap");
    char needle[128];
    sink_needle(needle, sizeof(needle), rid[0]);
    assert_int_equal(sink_count("sms", needle), 1);
}

/* The clock goes back after the test that moved it, also when it failed. */
static int64_t clock_saved;
static bool clock_moved;

static int restore_clock(void **state)
{
    if (clock_moved)
        test_clock_restore(clock_saved);
    clock_moved = false;
    return 0;
}

/* Marketing inside quiet hours (tenant's zone) is held, not dropped, and
 * goes out when they end: the test clock moves to 08:00 local. */
static void test_quiet_hours_held_until_morning(void **state)
{
    new_tenant();
    sink_mode("sms", "ok");
    policy("Asia/Shanghai", 21 * 60, 8 * 60, 0);
    char m[64], rid[96];
    member_id(m, "quiet");
    contact(m, "Quiet", "+8613900000004", "");
    consent(m, "sms", true);
    /* 23:00 in Shanghai (15:00 UTC) of a day ahead of now */
    int64_t day = (int64_t)time(NULL) / 86400 + 2;
    int64_t night_us = (day * 86400 + 15 * 3600) * INT64_C(1000000);
    clock_saved = test_clock_set_now_us(night_us);
    clock_moved = true;
    snprintf(rid, sizeof(rid), "offer:quiet:%s", m);
    request(m, rid, "birthday.gift", "marketing", "normal", "sms");
    expect_status(rid, "sms", "held", "quiet_hours");
    char needle[128];
    sink_needle(needle, sizeof(needle), rid);
    assert_int_equal(sink_count("sms", needle), 0);
    /* 07:59 local: still held; then 08:00 */
    test_clock_set_now_us(night_us + 8 * HOUR_US + 59 * INT64_C(60000000));
    struct status_wait w = {rid, "sms", "delivered"};
    assert_false(poll_until(has_status, &w, 1500));
    test_clock_set_now_us(night_us + 9 * HOUR_US);
    expect_status(rid, "sms", "delivered", "quiet_hours");
    assert_int_equal(sink_count("sms", needle), 1);
}

/* The provider answers 503, then recovers: retried with back-off, then
 * delivered once it is back; nothing lost. */
static void test_provider_down_then_back(void **state)
{
    new_tenant();
    char m[64], rid[96], needle[128];
    member_id(m, "down");
    contact(m, "Down", "+8613900000005", "");
    snprintf(rid, sizeof(rid), "receipt:down:%s", m);
    sink_needle(needle, sizeof(needle), rid);
    sink_mode("sms", "503");
    request(m, rid, "receipt.refund", "transactional", "normal", "sms");
    assert_true(wait_sink("sms", needle, 2)); /* tried, refused, tried again */
    char *s = delivery_field(rid, "sms", "status");
    assert_true(strcmp(s, "pending") == 0 || strcmp(s, "sending") == 0);
    free(s);
    sink_mode("sms", "ok");
    expect_status(rid, "sms", "delivered", NULL);
    json_t *recs = sink_records("sms", needle);
    size_t n = json_array_size(recs);
    assert_true(n >= 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(recs, n - 1), "status")),
                     200);
    /* the same message id on every attempt: the provider can de-duplicate */
    const char *first = json_string_value(json_object_get(
        json_object_get(json_array_get(recs, 0), "headers"), "x-tessera-message-id"));
    const char *last = json_string_value(json_object_get(
        json_object_get(json_array_get(recs, n - 1), "headers"), "x-tessera-message-id"));
    assert_string_equal(first, last);
    json_decref(recs);
}

/* A provider 4xx is permanent: failed after one attempt, never retried. */
static void test_provider_400_fails(void **state)
{
    new_tenant();
    char m[64], rid[96], marker[96], needle[128];
    member_id(m, "bad");
    contact(m, "Bad", "+8613900000006", "");
    snprintf(rid, sizeof(rid), "receipt:bad:%s", m);
    sink_needle(needle, sizeof(needle), rid);
    sink_mode("sms", "400");
    request(m, rid, "receipt.refund", "transactional", "normal", "sms");
    expect_status(rid, "sms", "failed", NULL);
    char *e = delivery_field(rid, "sms", "last_error");
    assert_string_equal(e, "provider_4xx:400");
    free(e);
    char *a = delivery_field(rid, "sms", "attempts");
    assert_string_equal(a, "1");
    free(a);
    /* later sends work, and the failed one was not tried again */
    sink_mode("sms", "ok");
    snprintf(marker, sizeof(marker), "receipt:bad-after:%s", m);
    request(m, marker, "receipt.refund", "transactional", "normal", "sms");
    expect_status(marker, "sms", "delivered", NULL);
    assert_int_equal(sink_count("sms", needle), 1);
}

/* The queue row of the tenant's request (send_queue, migration 0006)
 * with the given condition on it: a count. */
static int64_t queued_where(const char *request_id, const char *condition)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM notification.send_queue q JOIN notification.deliveries d "
             "ON d.id = q.delivery_id WHERE d.tenant_id = $1 AND d.request_id = $2 AND %s",
             condition);
    const char *p[2] = {tenant, request_id};
    return test_pg_int(pg, sql, 2, p);
}

static bool leased(void *arg)
{
    return queued_where(arg, "q.lease_until IS NOT NULL") == 1;
}

/* The service dies mid-send (the provider takes five seconds): the claim
 * holds the row's lease and no outcome was recorded. Nothing is lost:
 * once the lease runs out (60 s, run out here by hand) the row is claimed
 * again and delivered, with the same message id, its second attempt, and
 * it leaves the queue. */
static void test_crash_mid_send_sent_again(void **state)
{
    new_tenant();
    char m[64], rid[96], needle[128];
    member_id(m, "crash");
    contact(m, "Crash", "+8613900000008", "");
    snprintf(rid, sizeof(rid), "receipt:crash:%s", m);
    sink_needle(needle, sizeof(needle), rid);
    sink_mode("sms", "ok 5000");
    request(m, rid, "receipt.refund", "transactional", "normal", "sms");
    assert_true(poll_until(leased, rid, WAIT_MS));
    assert_int_equal(runtime_do("kill-service notification"), 0);
    sink_mode("sms", "ok");
    char *s = delivery_field(rid, "sms", "status");
    assert_string_equal(s, "pending"); /* the lease is the queue row's */
    free(s);
    const char *p[2] = {tenant, rid};
    assert_int_equal(test_pg_int(pg,
                                 "WITH u AS (UPDATE notification.send_queue q "
                                 " SET lease_until = now() - interval '1 second' "
                                 " FROM notification.deliveries d WHERE d.id = q.delivery_id "
                                 " AND d.tenant_id = $1 AND d.request_id = $2 RETURNING 1) "
                                 "SELECT count(*) FROM u",
                                 2, p),
                     1);
    assert_int_equal(runtime_do("start-service notification"), 0);
    expect_status(rid, "sms", "delivered", NULL);
    char *a = delivery_field(rid, "sms", "attempts");
    assert_string_equal(a, "2");
    free(a);
    assert_int_equal(queued_where(rid, "true"), 0);
    json_t *recs = sink_records("sms", needle);
    size_t n = json_array_size(recs);
    assert_true(n >= 1);
    for (size_t i = 1; i < n; i++)
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(json_array_get(recs, 0), "headers"),
                                              "x-tessera-message-id")),
            json_string_value(json_object_get(json_object_get(json_array_get(recs, i), "headers"),
                                              "x-tessera-message-id")));
    json_decref(recs);
}

#define BULK_COUNT 600

/* Bulk waiting in the delivery queue behind a slow provider, then a login
 * code: it goes out of the high lane ahead of the campaign (its own
 * in-flight slots; bulk is claimed a slice at a time), so when the
 * provider has the code, most of the campaign has not been sent yet. The
 * assertion is on order, not on time. The campaign is produced while the
 * service is stopped: its whole queue is then there at once, however slow
 * the producing (one producer per message) on a busy machine. */
static bool all_decided(void *arg)
{
    const char *p[1] = {tenant};
    return test_pg_int(pg, "SELECT count(*) FROM notification.deliveries WHERE tenant_id = $1", 1,
                       p) >= *(const int *)arg;
}

static void test_high_lane_passes_bulk(void **state)
{
    new_tenant();
    char m[64], rid[96], high[96], needle[128];
    member_id(m, "lane");
    sink_mode("sms", "ok 5000"); /* the provider takes five seconds a message */
    assert_int_equal(runtime_do("stop-service notification"), 0);
    contact(m, "Lane", "+8613900000007", "");
    for (int i = 0; i < BULK_COUNT; i++) {
        snprintf(rid, sizeof(rid), "campaign:%d:%s", i, m);
        request(m, rid, "receipt.purchase", "transactional", "bulk", "sms");
    }
    assert_int_equal(runtime_do("start-service notification"), 0);
    int want = BULK_COUNT;
    assert_true(poll_until(all_decided, &want, 120000));
    snprintf(high, sizeof(high), "code:%s", m);
    request(m, high, "login_code", "transactional", "high", "sms");
    sink_needle(needle, sizeof(needle), high);
    assert_true(wait_sink("sms", needle, 1));
    size_t bulk_done = 0;
    json_t *recs = sink_records("sms", m);
    for (size_t i = 0; i < json_array_size(recs); i++)
        bulk_done += strstr(json_string_value(json_object_get(json_array_get(recs, i), "body")),
                            "\"campaign:") != NULL;
    json_decref(recs);
    print_message("# bulk delivered when the code arrived: %zu of %d\n", bulk_done, BULK_COUNT);
    /* the code overtook most of the campaign (its first slice of up to
     * INFLIGHT_BULK, 512, takes the provider five seconds) */
    assert_true(bulk_done + 64 < BULK_COUNT);
    char *lane = delivery_field(high, "sms", "lane");
    assert_string_equal(lane, "0");
    free(lane);
    sink_mode("sms", "ok");
    /* nothing of the campaign is lost */
    const char *p[1] = {tenant};
    for (int i = 0; i < BULK_COUNT; i += 97) {
        snprintf(rid, sizeof(rid), "campaign:%d:%s", i, m);
        expect_status(rid, "sms", "delivered", NULL);
    }
    assert_int_equal(
        test_pg_int(pg,
                    "SELECT count(*) FROM notification.deliveries WHERE tenant_id = $1 "
                    "AND status NOT IN ('delivered', 'sending', 'pending')",
                    1, p),
        0);
}

/* The routes: a template naming an unknown variable is refused with 422
 * naming it; a saved one is read back and renders later requests; the
 * inbox pages newest first with its unread count; the policy is saved
 * and read back. (The demo tenant: routes need a real key.) */
struct get_wait {
    const char *path, *needle;
};

static bool get_has(void *arg)
{
    const struct get_wait *w = arg;
    struct api_response r = api_get(w->path);
    char *text = r.body ? json_dumps(r.body, 0) : NULL;
    bool ok = r.status == 200 && text && strstr(text, w->needle);
    free(text);
    api_response_free(&r);
    return ok;
}

static void test_template_and_inbox_routes(void **state)
{
    snprintf(tenant, sizeof(tenant), "demo");
    struct api_response r = api_call(
        "PUT", "/v1/templates/receipt.top_up",
        "{\"locale\":\"en\",\"subject\":\"x\",\"body\":\"Hi {{member.nmae}}\"}", NULL, NULL);
    assert_int_equal(r.status, 422);
    char *text = json_dumps(r.body, 0);
    assert_non_null(strstr(text, "member.nmae"));
    free(text);
    api_response_free(&r);
    r = api_call("PUT", "/v1/templates/no.such",
                 "{\"locale\":\"en\",\"subject\":\"x\",\"body\":\"y\"}", NULL, NULL);
    assert_int_equal(r.status, 404);
    api_response_free(&r);
    r = api_call("PUT", "/v1/templates/receipt.top_up",
                 "{\"locale\":\"en\",\"channel\":\"inbox\",\"subject\":\"Top-up {{amount}}\","
                 "\"body\":\"Dear {{member.name}}, now {{balance.stored_value}}\"}",
                 NULL, NULL);
    assert_int_equal(r.status, 202);
    api_response_free(&r);
    struct get_wait saved = {"/v1/templates/receipt.top_up", "Top-up {{amount}}"};
    assert_true(poll_until(get_has, &saved, WAIT_MS));

    char m[64], rid[96], path[320], phone[16], body[256];
    /* registered with its name and language: ingest sends the contact */
    test_unique_phone(phone);
    snprintf(body, sizeof(body),
             "{\"name\":\"Ada\",\"phone\":\"%s\",\"branch_id\":\"hq\",\"locale\":\"en\"}", phone);
    r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(m, sizeof(m), "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
    /* the campaign's welcome (transactional, at registration) comes first */
    snprintf(path, sizeof(path), "/v1/members/%s/inbox", m);
    struct get_wait welcomed = {path, "\"unread\": 1"};
    assert_true(poll_until(get_has, &welcomed, WAIT_MS));
    for (int i = 0; i < 2; i++) {
        snprintf(rid, sizeof(rid), "receipt:route:%d:%s", i, m);
        request(m, rid, "receipt.top_up", "transactional", "normal", "inbox");
    }
    struct get_wait three = {path, "\"unread\": 3"};
    assert_true(poll_until(get_has, &three, WAIT_MS));
    r = api_get(path);
    json_t *msgs = json_object_get(r.body, "messages");
    assert_int_equal(json_array_size(msgs), 3);
    assert_string_equal(json_str_at(json_array_get(msgs, 0), "title"), "Top-up ¥128.00");
    assert_string_equal(json_str_at(json_array_get(msgs, 0), "body"), "Dear Ada, now ¥500.50");
    assert_true(json_is_null(json_object_get(r.body, "next_cursor")));
    char newest[64];
    snprintf(newest, sizeof(newest), "%s", json_str_at(json_array_get(msgs, 0), "message_id"));
    api_response_free(&r);
    /* pages of one: the newest receipt, then the other, then the welcome */
    snprintf(path, sizeof(path), "/v1/members/%s/inbox?limit=1", m);
    r = api_get(path);
    assert_int_equal(r.status, 200);
    assert_string_equal(
        json_str_at(json_array_get(json_object_get(r.body, "messages"), 0), "message_id"), newest);
    char cursor[160];
    snprintf(cursor, sizeof(cursor), "%s", json_str_at(r.body, "next_cursor"));
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s/inbox?limit=1&cursor=%s", m, cursor);
    r = api_get(path);
    assert_int_equal(r.status, 200);
    msgs = json_object_get(r.body, "messages");
    assert_int_equal(json_array_size(msgs), 1);
    assert_string_not_equal(json_str_at(json_array_get(msgs, 0), "message_id"), newest);
    assert_string_equal(json_str_at(json_array_get(msgs, 0), "title"), "Top-up ¥128.00");
    assert_true(json_is_string(json_object_get(r.body, "next_cursor"))); /* the welcome is left */
    api_response_free(&r);
    /* InboxMessagesRead (from ingest) marks the newest read */
    {
        ENVELOPE(env, actor, meta, m);
        Tessera__Notification__V1__InboxMessagesRead rd =
            TESSERA__NOTIFICATION__V1__INBOX_MESSAGES_READ__INIT;
        char *ids[1] = {newest};
        rd.n_message_ids = 1, rd.message_ids = ids;
        env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_INBOX_MESSAGES_READ;
        env.inbox_messages_read = &rd;
        produce(&env, m);
    }
    snprintf(path, sizeof(path), "/v1/members/%s/inbox", m);
    struct get_wait two = {path, "\"unread\": 2"};
    assert_true(poll_until(get_has, &two, WAIT_MS));
    snprintf(path, sizeof(path), "/v1/members/%s/inbox?cursor=bogus", m);
    r = api_get(path);
    assert_int_equal(r.status, 422);
    api_response_free(&r);

    r = api_call("PUT", "/v1/config/notifications",
                 "{\"time_zone\":\"Mars/Olympus\",\"quiet_start\":\"25:00\",\"quiet_end\":"
                 "\"08:00\",\"marketing_cap_per_week\":3,\"default_locale\":\"en\"}",
                 NULL, NULL);
    assert_int_equal(r.status, 422);
    text = json_dumps(r.body, 0);
    assert_non_null(strstr(text, "time_zone"));
    assert_non_null(strstr(text, "quiet_start"));
    free(text);
    api_response_free(&r);
    r = api_call("PUT", "/v1/config/notifications",
                 "{\"time_zone\":\"Asia/Shanghai\",\"quiet_start\":\"22:30\",\"quiet_end\":"
                 "\"07:45\",\"marketing_cap_per_week\":4,\"default_locale\":\"zh-CN\"}",
                 NULL, NULL);
    assert_int_equal(r.status, 202);
    api_response_free(&r);
    struct get_wait pol = {"/v1/config/notifications", "\"quiet_start\": \"22:30\""};
    assert_true(poll_until(get_has, &pol, WAIT_MS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_code_by_sms),
        cmocka_unit_test(test_receipt_inbox_and_email),
        cmocka_unit_test(test_duplicate_delivered_once),
        cmocka_unit_test(test_login_code_to_its_recipient),
        cmocka_unit_test(test_consent_withdrawn),
        cmocka_unit_test(test_weekly_cap),
        cmocka_unit_test(test_cap_within_one_batch),
        cmocka_unit_test(test_erasure_forgets_inbox),
        cmocka_unit_test_teardown(test_quiet_hours_held_until_morning, restore_clock),
        cmocka_unit_test(test_provider_down_then_back),
        cmocka_unit_test(test_provider_400_fails),
        cmocka_unit_test(test_crash_mid_send_sent_again),
        cmocka_unit_test(test_template_and_inbox_routes),
        cmocka_unit_test(test_high_lane_passes_bulk),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
