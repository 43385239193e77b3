/* Engagement end to end (issue 12), under the test clock, each test on a
 * tenant of its own: the activity rules setting (defaults, 422 naming the
 * field with the old version kept, versions, the tenant's zone); a 7-day
 * check-in streak rewarded once (across local midnights that are one UTC
 * day) and a broken one not; a daily limit and the monthly cap; a
 * duplicate activity_id granted once; the member day x2; the welcome
 * month's tasks, each once; and every grant reaching the ledger's journal
 * with a reason naming its rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/login_code.h"
#include "../support/api_client.h"
#include "../support/sql_tenant.h"
#include "../support/test_clock.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "events/codec.h"
#include "datetime/datetime.h"

#define DEADLINE_MS 30000

struct tenant {
    char id[48];
    char key[64];
};

/* A tenant of this test (Asia/Shanghai, an hq branch, an admin key). */
static void tenant_make(struct tenant *t, const char *name)
{
    char prefix[40];
    snprintf(prefix, sizeof(prefix), "eng-%s", name);
    sql_tenant_make(prefix, "Engage School", t->id, sizeof(t->id), t->key);
}

/* Registers a member at hq, with a birthday ("YYYY-MM-DD") or none. */
static void member_born(const struct tenant *t, const char *birthday, char member_id[64])
{
    char phone[16], body[200], extra[48] = "";
    test_unique_phone(phone);
    if (birthday)
        snprintf(extra, sizeof(extra), ",\"birthday\":\"%s\"", birthday);
    snprintf(body, sizeof(body), "{\"name\":\"Learner\",\"phone\":\"%s\",\"branch_id\":\"hq\"%s}",
             phone, extra);
    struct api_response r = api_call("POST", "/v1/members", body, t->key, NULL);
    if (r.status != 201)
        fail_msg("registering: %ld %s", r.status, r.raw);
    snprintf(member_id, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

static void member_make(const struct tenant *t, char member_id[64])
{
    member_born(t, NULL, member_id);
}

static void put_rules(const struct tenant *t, const char *body, long status)
{
    const char *headers[] = {"Prefer: wait=20", NULL};
    struct api_response r = api_call("PUT", "/v1/config/activity-rules", body, t->key, headers);
    if (r.status != status)
        fail_msg("PUT activity-rules: %ld %s", r.status, r.raw);
    if (status == 200)
        assert_string_equal(json_str_at(r.body, "status"), "applied");
    api_response_free(&r);
}

/* POSTs an activity at local time `local` (RFC 3339 with its offset). */
static void activity(const struct tenant *t, const char *member, const char *type, const char *id,
                     const char *local)
{
    char path[160], body[320];
    snprintf(path, sizeof(path), "/v1/members/%s/activities", member);
    if (local)
        snprintf(body, sizeof(body),
                 "{\"type\":\"%s\",\"activity_id\":\"%s\",\"occurred_at\":\"%s\"}", type, id,
                 local);
    else /* now, by the service clock */
        snprintf(body, sizeof(body), "{\"type\":\"%s\",\"activity_id\":\"%s\"}", type, id);
    struct api_response r = api_call("POST", path, body, t->key, NULL);
    if (r.status != 202)
        fail_msg("POST activity: %ld %s", r.status, r.raw);
    assert_string_equal(json_str_at(r.body, "activity_id"), id);
    api_response_free(&r);
}

struct count_wait {
    PGconn *pg;
    const char *sql;
    const char *member;
    int64_t at_least;
};

static bool count_reached(void *arg)
{
    struct count_wait *w = arg;
    const char *p[1] = {w->member};
    return test_pg_int(w->pg, w->sql, 1, p) >= w->at_least;
}

/* Waits until the campaign applied n activities of the member. */
static void wait_applied(PGconn *pg, const char *member, int64_t n)
{
    struct count_wait w = {pg, "SELECT count(*) FROM campaign.activities WHERE member_id = $1",
                           member, n};
    if (!poll_until(count_reached, &w, DEADLINE_MS))
        fail_msg("the campaign applied fewer than %lld activities", (long long)n);
}

static int64_t member_int(PGconn *pg, const char *sql, const char *member)
{
    const char *p[1] = {member};
    return test_pg_int(pg, sql, 1, p);
}

/* Waits until the ledger posted `expected` points of the member's grants
 * with this reason (or the deadline), then returns what it posted: more
 * than expected (a grant applied twice) fails the caller's equality. */
static int64_t journal_points(PGconn *pg, const char *member, const char *reason, int64_t expected)
{
    char sql[400];
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(sum(amount), 0) FROM ledger.read_journal WHERE member_id = $1 "
             "AND amount > 0 AND asset IN ('points', 'points_pending') AND reason = '%s'",
             reason);
    struct count_wait w = {pg, sql, member, expected};
    poll_until(count_reached, &w, DEADLINE_MS);
    return member_int(pg, sql, member);
}

/* Waits until the member's inbox holds `expected` messages of template
 * (or the deadline), then returns how many it holds: a message sent twice
 * fails the caller's equality. */
static int64_t inbox_count(PGconn *pg, const char *member, const char *template_name,
                           int64_t expected)
{
    char sql[300];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM notification.read_inbox WHERE member_id = $1 "
             "AND template = '%s' AND request_id LIKE '%s:%%'",
             template_name, template_name);
    struct count_wait w = {pg, sql, member, expected};
    poll_until(count_reached, &w, DEADLINE_MS);
    return member_int(pg, sql, member);
}

/* Moves the clock to a local time (RFC 3339); returns the offset replaced. */
static int64_t clock_at(const char *when)
{
    int64_t at = 0;
    assert_true(datetime_parse_rfc3339_us(when, &at));
    return test_clock_set_now_us(at);
}

/* 2031-03-20 12:00 in Shanghai: a date well inside one month and week. */
static int64_t set_clock(void)
{
    return clock_at("2031-03-20T12:00:00+08:00");
}

/* ------------------------------------------------------------ rules */
static void test_rules_setting(void **state)
{
    (void)state;
    struct tenant t;
    tenant_make(&t, "rules");
    struct api_response r = api_call("GET", "/v1/config/activity-rules", NULL, t.key, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_int_at(r.body, "version"), 0);
    assert_int_equal(json_int_at(r.body, "activities.comment.points"), 5);
    assert_int_equal(json_int_at(r.body, "activities.exam_passed.points"), 200);
    assert_int_equal(json_int_at(r.body, "streak.points"), 50);
    assert_string_equal(json_str_at(r.body, "time_zone"), "Asia/Shanghai");
    api_response_free(&r);
    put_rules(&t, "{\"activities\":{\"comment\":{\"points\":7}}}", 200);
    /* mistakes: 422 naming each field, and version 1 stays */
    r = api_call("PUT", "/v1/config/activity-rules",
                 "{\"activities\":{\"dance\":{\"points\":1},\"share\":{\"points\":-1}},"
                 "\"streak\":{\"days\":1},\"promotions\":[{\"name\":\"x\",\"multiplier_bp\":5}]}",
                 t.key, NULL);
    assert_int_equal(r.status, 422);
    assert_non_null(strstr(r.raw, "activities.dance"));
    assert_non_null(strstr(r.raw, "check_in, comment, share"));
    assert_non_null(strstr(r.raw, "activities.share.points"));
    assert_non_null(strstr(r.raw, "streak.days"));
    assert_non_null(strstr(r.raw, "promotions[0].multiplier_bp"));
    api_response_free(&r);
    r = api_call("GET", "/v1/config/activity-rules", NULL, t.key, NULL);
    assert_int_equal(json_int_at(r.body, "version"), 1);
    assert_int_equal(json_int_at(r.body, "activities.comment.points"), 7);
    assert_int_equal(json_int_at(r.body, "activities.share.points"), 10); /* default kept */
    api_response_free(&r);
    /* an unknown activity type is 422 naming the allowed ones */
    char member[64], path[160];
    member_make(&t, member);
    snprintf(path, sizeof(path), "/v1/members/%s/activities", member);
    r = api_call("POST", path, "{\"type\":\"dance\",\"activity_id\":\"a1\"}", t.key, NULL);
    assert_int_equal(r.status, 422);
    assert_non_null(strstr(r.raw, "\"type\""));
    assert_non_null(strstr(r.raw, "course_completed"));
    api_response_free(&r);
}

/* n promotions of 32 categories and 32 branches each (bench/rules.sh's
 * shape): only the last applies to comments, x3; the others to a category
 * no activity has. Caller frees. */
static char *many_promotions(int n)
{
    size_t cap = 4096 + (size_t)n * 1024, len = 0;
    char *body = malloc(cap);
    assert_non_null(body);
    len += (size_t)snprintf(body + len, cap - len, "{\"promotions\":[");
    for (int i = 1; i <= n; i++) {
        len += (size_t)snprintf(body + len, cap - len,
                                "%s{\"name\":\"promo %d\",\"multiplier_bp\":%d,\"categories\":[",
                                i > 1 ? "," : "", i, i == n ? 30000 : 20000);
        for (int c = 1; c <= 32; c++) {
            if (i == n && c == 1)
                len += (size_t)snprintf(body + len, cap - len, "\"comment\"");
            else
                len += (size_t)snprintf(body + len, cap - len, "%s\"cat-%d\"", c > 1 ? "," : "", c);
        }
        len += (size_t)snprintf(body + len, cap - len, "],\"branches\":[\"hq\"");
        for (int b = 2; b <= 32; b++)
            len += (size_t)snprintf(body + len, cap - len, ",\"branch-%d\"", b);
        len += (size_t)snprintf(body + len, cap - len, "]}");
        assert_true(len < cap);
    }
    snprintf(body + len, cap - len, "]}");
    return body;
}

/* "A tenant with 100 active rules" (issue 12): 64 promotions (PROMOTIONS_MAX)
 * with the activity rules are over 100 rule clauses; the campaign applies
 * the 64th; 65 is 422 naming promotions and the old version stays. */
static void test_many_promotions(void **state)
{
    (void)state;
    struct tenant t;
    tenant_make(&t, "manyrules");
    char *body = many_promotions(64);
    put_rules(&t, body, 200);
    free(body);
    body = many_promotions(65);
    struct api_response r = api_call("PUT", "/v1/config/activity-rules", body, t.key, NULL);
    free(body);
    assert_int_equal(r.status, 422);
    assert_non_null(strstr(r.raw, "\"promotions\""));
    api_response_free(&r);
    r = api_call("GET", "/v1/config/activity-rules", NULL, t.key, NULL);
    assert_int_equal(json_int_at(r.body, "version"), 1);
    assert_int_equal(json_array_size(json_object_get(r.body, "promotions")), 64);
    api_response_free(&r);
    char m[64];
    member_make(&t, m);
    activity(&t, m, "comment", "under-64", NULL);
    PGconn *pg = test_pg();
    wait_applied(pg, m, 1);
    assert_int_equal(member_int(pg,
                                "SELECT points FROM campaign.activities WHERE member_id = $1 "
                                "AND activity_id = 'under-64'",
                                m),
                     15);
    PQfinish(pg);
}

/* ------------------------------------------------------------ streaks */
static void test_streaks(void **state)
{
    (void)state;
    int64_t offset = set_clock();
    struct tenant t;
    tenant_make(&t, "streak");
    char kept[64], broken[64];
    member_make(&t, kept);
    member_make(&t, broken);
    /* 03-10 .. 03-16 in a row; 23:50 on the 13th and 00:10 on the 14th
     * are one UTC day (15:50Z, 16:10Z) and two local days */
    const char *run[] = {"2031-03-10T09:00:00+08:00", "2031-03-11T20:00:00+08:00",
                         "2031-03-12T08:00:00+08:00", "2031-03-13T23:50:00+08:00",
                         "2031-03-14T00:10:00+08:00", "2031-03-15T12:00:00+08:00",
                         "2031-03-16T07:00:00+08:00"};
    /* the same days but the 13th missed: runs of 3 and 3 */
    const char *gap[] = {"2031-03-10T09:00:00+08:00", "2031-03-11T09:00:00+08:00",
                         "2031-03-12T09:00:00+08:00", "2031-03-14T09:00:00+08:00",
                         "2031-03-15T09:00:00+08:00", "2031-03-16T09:00:00+08:00",
                         "2031-03-17T09:00:00+08:00"};
    for (int i = 0; i < 7; i++) {
        char id[16];
        snprintf(id, sizeof(id), "ci-%d", i);
        activity(&t, kept, "check_in", id, run[i]);
        activity(&t, broken, "check_in", id, gap[i]);
    }
    PGconn *pg = test_pg();
    wait_applied(pg, kept, 7);
    wait_applied(pg, broken, 7);
    assert_int_equal(journal_points(pg, kept, "points_earned:streak:check_in:7", 50), 50);
    /* the streak's grant told the member once, in the inbox */
    assert_int_equal(inbox_count(pg, kept, "streak.reward", 1), 1);
    assert_int_equal(member_int(pg,
                                "SELECT count(*) FROM notification.read_inbox WHERE member_id = "
                                "$1 AND template = 'streak.reward' AND body LIKE '%50%'",
                                kept),
                     1);
    assert_int_equal(member_int(pg,
                                "SELECT count(*) FROM campaign.activity_grants WHERE member_id "
                                "= $1 AND kind = 'streak'",
                                kept),
                     1);
    assert_int_equal(member_int(pg,
                                "SELECT count(*) FROM campaign.activity_grants WHERE member_id "
                                "= $1",
                                broken),
                     0);
    assert_int_equal(
        member_int(pg, "SELECT length FROM campaign.check_in_streaks WHERE member_id = $1", broken),
        4);
    PQfinish(pg);
    test_clock_restore(offset);
}

/* ------------------------------------------------------------ limits */
static void test_limits_and_cap(void **state)
{
    (void)state;
    /* the rules are in force for activities after them: set on the 17th */
    int64_t offset = clock_at("2031-03-17T12:00:00+08:00");
    struct tenant t;
    tenant_make(&t, "limits");
    put_rules(&t,
              "{\"activities\":{\"comment\":{\"points\":5,\"per_day\":2},"
              "\"share\":{\"points\":10}},\"monthly_cap\":30}",
              200);
    set_clock();
    char m[64];
    member_make(&t, m);
    activity(&t, m, "comment", "c1", "2031-03-18T10:00:00+08:00");
    activity(&t, m, "comment", "c2", "2031-03-18T11:00:00+08:00");
    activity(&t, m, "comment", "c3", "2031-03-18T12:00:00+08:00"); /* 3rd of the day */
    activity(&t, m, "comment", "c4", "2031-03-19T10:00:00+08:00"); /* next day: earns */
    activity(&t, m, "share", "s1", "2031-03-19T11:00:00+08:00");   /* 25 so far */
    activity(&t, m, "share", "s2", "2031-03-19T12:00:00+08:00");   /* cut to the cap: 5 */
    activity(&t, m, "share", "s3", "2031-03-19T13:00:00+08:00");   /* nothing left */
    PGconn *pg = test_pg();
    wait_applied(pg, m, 7);
    const char *outcomes =
        "SELECT string_agg(activity_id || '=' || outcome || ':' || points, ',' ORDER BY "
        "activity_id) FROM campaign.activities WHERE member_id = $1";
    const char *p[1] = {m};
    PGresult *res = PQexecParams(pg, outcomes, 1, NULL, p, NULL, NULL, 0);
    assert_string_equal(PQgetvalue(res, 0, 0),
                        "c1=earned:5,c2=earned:5,c3=day_limit:0,c4=earned:5,s1=earned:10,"
                        "s2=earned:5,s3=monthly_cap:0");
    PQclear(res);
    /* what reached the ledger: 15 for comments, 15 for shares */
    assert_int_equal(journal_points(pg, m, "points_earned:activity:comment", 15), 15);
    assert_int_equal(journal_points(pg, m, "points_earned:activity:share", 15), 15);
    PQfinish(pg);
    test_clock_restore(offset);
}

/* ------------------------------------------------------------ duplicates */
static void test_duplicate_activity(void **state)
{
    (void)state;
    struct tenant t;
    tenant_make(&t, "dup");
    char m[64], path[160];
    member_make(&t, m);
    snprintf(path, sizeof(path), "/v1/members/%s/activities", m);
    for (int i = 0; i < 3; i++) {
        struct api_response r = api_call(
            "POST", path, "{\"type\":\"exam_passed\",\"activity_id\":\"exam-42\",\"score\":91}",
            t.key, NULL);
        assert_int_equal(r.status, 202);
        api_response_free(&r);
    }
    /* a later activity of the member (same partition) shows that the
     * three copies were all consumed when it is applied */
    activity(&t, m, "comment", "after", NULL);
    PGconn *pg = test_pg();
    wait_applied(pg, m, 2);
    assert_int_equal(journal_points(pg, m, "points_earned:activity:comment", 5), 5);
    assert_int_equal(journal_points(pg, m, "points_earned:activity:exam_passed", 200), 200);
    assert_int_equal(member_int(pg,
                                "SELECT count(*) FROM campaign.activity_grants WHERE member_id "
                                "= $1 AND rule = 'activity:exam_passed'",
                                m),
                     1);
    /* one activity.reward per grant (exam and comment), none for the copies */
    assert_int_equal(inbox_count(pg, m, "activity.reward", 2), 2);
    assert_int_equal(member_int(pg,
                                "SELECT count(*) FROM notification.read_inbox WHERE member_id = "
                                "$1 AND template = 'activity.reward' AND body LIKE '%200%' "
                                "AND body LIKE '%exam_passed%'",
                                m),
                     1);
    PQfinish(pg);
}

/* ------------------------------------------------------------ member day */
static void test_member_day(void **state)
{
    (void)state;
    int64_t offset = clock_at("2031-03-07T12:00:00+08:00");
    struct tenant t;
    tenant_make(&t, "memberday");
    put_rules(&t,
              "{\"promotions\":[{\"name\":\"member day\",\"multiplier_bp\":20000,"
              "\"day_of_month\":8}]}",
              200);
    const char *headers[] = {"Prefer: wait=20", NULL};
    struct api_response r =
        api_call("PUT", "/v1/config/earning-rules",
                 "{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1}}", t.key, headers);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    char m[64], path[160];
    member_make(&t, m);
    clock_at("2031-03-09T12:00:00+08:00");
    /* 23:30 on the 8th and 00:30 on the 9th in Shanghai: both the 8th in UTC */
    activity(&t, m, "comment", "on-the-8th", "2031-03-08T23:30:00+08:00");
    activity(&t, m, "comment", "on-the-9th", "2031-03-09T00:30:00+08:00");
    PGconn *pg = test_pg();
    wait_applied(pg, m, 2);
    assert_int_equal(member_int(pg,
                                "SELECT points FROM campaign.activities WHERE member_id = $1 "
                                "AND activity_id = 'on-the-8th'",
                                m),
                     10);
    assert_int_equal(member_int(pg,
                                "SELECT points FROM campaign.activities WHERE member_id = $1 "
                                "AND activity_id = 'on-the-9th'",
                                m),
                     5);
    /* a purchase of 100 yuan on the member day earns 2 x 100 */
    clock_at("2031-04-08T10:00:00+08:00");
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", m);
    r = api_call("POST", path,
                 "{\"amount\":10000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}", t.key,
                 NULL);
    assert_true(r.status == 201 || r.status == 202);
    api_response_free(&r);
    struct count_wait w = {pg, "SELECT count(*) FROM campaign.earnings WHERE member_id = $1", m, 1};
    assert_true(poll_until(count_reached, &w, DEADLINE_MS));
    assert_int_equal(member_int(pg, "SELECT points FROM campaign.earnings WHERE member_id = $1", m),
                     200);
    PQfinish(pg);
    test_clock_restore(offset);
}

/* ------------------------------------------------------------ promotion versions */
/* The campaign keeps a tenant's parsed promotions, one rule version at a
 * time (promotions.c): activities that occurred under two versions, sent
 * in alternation, are each decided under their own version's promotions
 * (x2 before the change, x3 after), and two in a row under one version
 * (the kept one) as well. */
static int64_t activity_points(PGconn *pg, const char *member, const char *activity_id)
{
    const char *p[2] = {member, activity_id};
    return test_pg_int(pg,
                       "SELECT points FROM campaign.activities WHERE member_id = $1 "
                       "AND activity_id = $2",
                       2, p);
}

static void test_promotion_versions(void **state)
{
    (void)state;
    int64_t offset = clock_at("2031-05-10T09:00:00+08:00");
    struct tenant t;
    tenant_make(&t, "promoversion");
    put_rules(&t, "{\"promotions\":[{\"name\":\"double\",\"multiplier_bp\":20000}]}", 200);
    char m[64];
    member_make(&t, m);
    clock_at("2031-05-10T11:00:00+08:00");
    put_rules(&t, "{\"promotions\":[{\"name\":\"triple\",\"multiplier_bp\":30000}]}", 200);
    clock_at("2031-05-10T13:00:00+08:00");
    activity(&t, m, "comment", "v1-a", "2031-05-10T10:00:00+08:00");
    activity(&t, m, "comment", "v2-a", "2031-05-10T12:00:00+08:00");
    activity(&t, m, "comment", "v2-b", "2031-05-10T12:30:00+08:00");
    activity(&t, m, "comment", "v1-b", "2031-05-10T10:30:00+08:00");
    activity(&t, m, "comment", "v2-c", "2031-05-10T12:45:00+08:00");
    PGconn *pg = test_pg();
    wait_applied(pg, m, 5);
    assert_int_equal(activity_points(pg, m, "v1-a"), 10);
    assert_int_equal(activity_points(pg, m, "v2-a"), 15);
    assert_int_equal(activity_points(pg, m, "v2-b"), 15);
    assert_int_equal(activity_points(pg, m, "v1-b"), 10);
    assert_int_equal(activity_points(pg, m, "v2-c"), 15);
    PQfinish(pg);
    test_clock_restore(offset);
}

/* ------------------------------------------------------------ welcome */
/* NotifyRequests of one template for one member on notify-requests. */
struct welcome_seen {
    const char *member;
    int count;
    const char *template_name;
    int want; /* how many the poll waits for */
};

static void on_notify(void *ctx, const rd_kafka_message_t *m)
{
    struct welcome_seen *s = ctx;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    if (env && env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST &&
        strcmp(env->member_id, s->member) == 0 &&
        strcmp(env->notify_request->template_, s->template_name ? s->template_name : "welcome") ==
            0)
        s->count++;
    envelope_free(env);
}

static bool welcome_sent(void *arg)
{
    struct welcome_seen *s = arg;
    s->count = 0;
    return topic_read_all(TOPIC_NOTIFY_REQUESTS, on_notify, s) >= 0 && s->count >= s->want;
}

static void test_welcome_month(void **state)
{
    (void)state;
    int64_t offset = clock_at("2031-03-01T12:00:00+08:00");
    struct tenant t;
    tenant_make(&t, "welcome");
    put_rules(&t,
              "{\"welcome\":{\"days\":30,\"tasks\":{\"check_in\":20,"
              "\"profile_completed\":50,\"course_completed\":30}}}",
              200);
    clock_at("2031-03-02T12:00:00+08:00");
    char m[64], late[64];
    member_make(&t, m);
    member_make(&t, late);
    clock_at("2031-03-06T12:00:00+08:00");
    activity(&t, m, "check_in", "w1", "2031-03-03T09:00:00+08:00");
    activity(&t, m, "check_in", "w2", "2031-03-04T09:00:00+08:00"); /* the first only */
    activity(&t, m, "profile_completed", "w3", "2031-03-05T09:00:00+08:00");
    /* 31 days after registering: too late for the course task */
    clock_at("2031-04-02T13:00:00+08:00");
    activity(&t, late, "course_completed", "w4", NULL);
    PGconn *pg = test_pg();
    wait_applied(pg, m, 3);
    wait_applied(pg, late, 1);
    assert_int_equal(journal_points(pg, m, "points_earned:welcome:check_in", 20), 20);
    assert_int_equal(journal_points(pg, m, "points_earned:welcome:profile_completed", 50), 50);
    assert_int_equal(journal_points(pg, m, "points_earned:activity:profile_completed", 100), 100);
    assert_int_equal(member_int(pg,
                                "SELECT count(*) FROM campaign.activity_grants WHERE member_id "
                                "= $1 AND kind = 'welcome'",
                                m),
                     2);
    assert_int_equal(journal_points(pg, late, "points_earned:activity:course_completed", 100), 100);
    assert_int_equal(member_int(pg,
                                "SELECT count(*) FROM campaign.activity_grants WHERE member_id "
                                "= $1 AND kind = 'welcome'",
                                late),
                     0);
    /* the welcome message at registration, once */
    struct welcome_seen seen = {m, 0, "welcome", 1};
    assert_true(poll_until(welcome_sent, &seen, DEADLINE_MS));
    assert_int_equal(seen.count, 1);
    PQfinish(pg);
    test_clock_restore(offset);
}

/* ------------------------------------------------------------ /v1/me */
struct code_seen {
    const char *member;
    char code[16];
};

static void on_code(void *ctx, const rd_kafka_message_t *m)
{
    struct code_seen *s = ctx;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    struct login_code lc;
    if (env && strcmp(env->member_id, s->member) == 0 && login_code_of(env, &lc))
        snprintf(s->code, sizeof(s->code), "%s", lc.code);
    envelope_free(env);
}

static bool code_sent(void *arg)
{
    struct code_seen *s = arg;
    return topic_read_all(TOPIC_NOTIFY_REQUESTS, on_code, s) >= 0 && s->code[0];
}

/* A member of the demo tenant (its app key) logs in with an SMS code and
 * records a comment for themself; an exam is refused them (422 naming
 * type), and staff's branch_id is not theirs to give. */
static void test_member_records_own_activity(void **state)
{
    (void)state;
    char phone[16], body[200], member[64], token[200];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"App\",\"phone\":\"%s\",\"branch_id\":\"hq\"}", phone);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(member, sizeof(member), "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
    snprintf(body, sizeof(body), "{\"phone\":\"%s\"}", phone);
    r = api_app_post("/v1/auth/sms-codes", body);
    assert_int_equal(r.status, 202);
    api_response_free(&r);
    struct code_seen seen = {member, ""};
    assert_true(poll_until(code_sent, &seen, DEADLINE_MS));
    snprintf(body, sizeof(body), "{\"phone\":\"%s\",\"code\":\"%s\",\"device_id\":\"d1\"}", phone,
             seen.code);
    r = api_app_post("/v1/auth/sessions", body);
    assert_int_equal(r.status, 201);
    snprintf(token, sizeof(token), "%s", json_str_at(r.body, "token"));
    api_response_free(&r);
    r = api_call("POST", "/v1/me/activities",
                 "{\"type\":\"exam_passed\",\"activity_id\":\"mine-1\"}", token, NULL);
    assert_int_equal(r.status, 422);
    assert_non_null(strstr(r.raw, "\"type\""));
    api_response_free(&r);
    r = api_call("POST", "/v1/me/activities",
                 "{\"type\":\"comment\",\"activity_id\":\"mine-2\",\"branch_id\":\"hq\"}", token,
                 NULL);
    assert_int_equal(r.status, 422);
    api_response_free(&r);
    r = api_call("POST", "/v1/me/activities", "{\"type\":\"comment\",\"activity_id\":\"mine-3\"}",
                 token, NULL);
    assert_int_equal(r.status, 202);
    api_response_free(&r);
    PGconn *pg = test_pg();
    wait_applied(pg, member, 1);
    assert_int_equal(member_int(pg,
                                "SELECT count(*) FROM campaign.activities WHERE member_id = $1 "
                                "AND activity_id = 'mine-3' AND type = 'comment'",
                                member),
                     1);
    PQfinish(pg);
}

/* ------------------------------------------------------------ birthdays */
static int64_t birthday_grants(PGconn *pg, const char *member)
{
    return member_int(pg,
                      "SELECT count(*) FROM campaign.activity_grants WHERE member_id = $1 "
                      "AND kind = 'birthday'",
                      member);
}

/* Moves the clock to `when` and waits until the witness has `gifts`
 * birthday gifts: then the scheduler has run a round at that time, and
 * what another member did not get then, it was not given. */
static void clock_until_gift(PGconn *pg, const char *when, const char *witness, int64_t gifts)
{
    clock_at(when);
    struct count_wait w = {pg,
                           "SELECT count(*) FROM campaign.activity_grants WHERE member_id = $1 "
                           "AND kind = 'birthday'",
                           witness, gifts};
    if (!poll_until(count_reached, &w, DEADLINE_MS))
        fail_msg("no birthday gift for the witness at %s", when);
}

static void test_birthday_gift(void **state)
{
    (void)state;
    int64_t offset = clock_at("2031-03-01T12:00:00+08:00");
    struct tenant t;
    tenant_make(&t, "birthday");
    put_rules(&t, "{\"birthday\":{\"points\":88}}", 200);
    char m[64], eve[64];
    member_born(&t, "1990-03-10", m);
    member_born(&t, "1992-03-09", eve); /* the witness: born the day before */
    PGconn *pg = test_pg();
    struct count_wait known = {pg,
                               "SELECT count(*) FROM campaign.engage_members WHERE member_id = "
                               "$1 AND birth_month = 3 AND birth_day = 10",
                               m, 1};
    assert_true(poll_until(count_reached, &known, DEADLINE_MS));
    /* 23:30 on the 9th in Shanghai: the eve's birthday, not m's */
    clock_until_gift(pg, "2031-03-09T23:30:00+08:00", eve, 1);
    assert_int_equal(birthday_grants(pg, m), 0);
    /* 00:30 on the 10th in Shanghai (still the 9th in UTC): m's birthday */
    clock_at("2031-03-10T00:30:00+08:00");
    struct count_wait gift = {pg,
                              "SELECT count(*) FROM campaign.activity_grants WHERE member_id = $1 "
                              "AND kind = 'birthday'",
                              m, 1};
    assert_true(poll_until(count_reached, &gift, DEADLINE_MS));
    assert_int_equal(journal_points(pg, m, "points_earned:birthday", 88), 88);
    /* a year minus a day: the eve's next birthday, none for m */
    clock_until_gift(pg, "2032-03-09T12:00:00+08:00", eve, 2);
    assert_int_equal(birthday_grants(pg, m), 1);
    /* the next birthday: once more */
    clock_at("2032-03-10T12:00:00+08:00");
    gift.at_least = 2;
    assert_true(poll_until(count_reached, &gift, DEADLINE_MS));
    assert_int_equal(journal_points(pg, m, "points_earned:birthday", 176), 176);
    clock_until_gift(pg, "2032-03-10T18:00:00+08:00", eve, 2); /* later rounds: no more */
    assert_int_equal(birthday_grants(pg, m), 2);
    /* and the member was told, once per gift */
    struct welcome_seen seen = {m, 0, "birthday.gift", 2};
    assert_true(poll_until(welcome_sent, &seen, DEADLINE_MS));
    assert_int_equal(seen.count, 2);
    /* erasure: the campaign forgets the month and day too */
    char path[160];
    snprintf(path, sizeof(path), "/v1/members/%s/personal-data", m);
    struct api_response r = api_call("DELETE", path, NULL, t.key, NULL);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    struct count_wait forgotten = {pg,
                                   "SELECT count(*) FROM campaign.engage_members WHERE member_id "
                                   "= $1 AND birth_month IS NULL AND birth_day IS NULL",
                                   m, 1};
    assert_true(poll_until(count_reached, &forgotten, DEADLINE_MS));
    PQfinish(pg);
    test_clock_restore(offset);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_setting),
        cmocka_unit_test(test_many_promotions),
        cmocka_unit_test(test_streaks),
        cmocka_unit_test(test_limits_and_cap),
        cmocka_unit_test(test_duplicate_activity),
        cmocka_unit_test(test_member_day),
        cmocka_unit_test(test_promotion_versions),
        cmocka_unit_test(test_welcome_month),
        cmocka_unit_test(test_birthday_gift),
        cmocka_unit_test(test_member_records_own_activity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
