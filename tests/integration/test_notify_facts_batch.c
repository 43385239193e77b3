/* Notification writes a run of contact and consent changes in one
 * statement (services/notification/facts.c); several changes of one member
 * in one batch must end as they did when each was written alone: the last
 * by message order wins, an erasure empties the inbox even when a later
 * change brings the contact back, and a request after a change sees it.
 * Drives notify_apply_batch on the runtime's PostgreSQL (TESSERA_PG_DSN,
 * the notification schema migrated by its service) inside a transaction
 * that is rolled back, so nothing stays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../services/notification/notification.h"
#include "db/db.h"
#include "log/log.h"

#define BATCH_MAX 16

static char tenant[64];
/* The service's configuration lives in its main.c; these batches hold no
 * request, so nothing reads it. */
struct notify_config notify_cfg;

struct batch {
    rd_kafka_message_t msg[BATCH_MAX], *msgs[BATCH_MAX];
    const char *poison[BATCH_MAX];
    size_t count;
};

static void add(struct batch *b, Envelope *env)
{
    assert_true(b->count < BATCH_MAX);
    size_t len = 0;
    uint8_t *buf = envelope_encode(env, &len);
    assert_non_null(buf);
    b->msg[b->count] = (rd_kafka_message_t){.payload = buf, .len = len};
    b->msgs[b->count] = &b->msg[b->count];
    b->count++;
}

/* One fact of member (a contact change or, without one, a consent). */
static void add_fact(struct batch *b, const char *member, MemberContactChanged *contact,
                     ConsentChanged *consent)
{
    struct event_meta meta = {.tenant_id = tenant, .member_id = member, .actor_kind = "test"};
    Envelope env;
    Actor actor;
    envelope_init(&env, &actor, &meta);
    if (contact) {
        env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_CONTACT_CHANGED;
        env.member_contact_changed = contact;
    } else {
        env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CONSENT_CHANGED;
        env.consent_changed = consent;
    }
    add(b, &env);
}

static void contact(struct batch *b, const char *member, const char *phone, bool erased)
{
    MemberContactChanged c = TESSERA__NOTIFICATION__V1__MEMBER_CONTACT_CHANGED__INIT;
    c.name = "Facts Member", c.phone = (char *)phone, c.email = "", c.locale = "en";
    c.erased = erased;
    add_fact(b, member, &c, NULL);
}

static void consent(struct batch *b, const char *member, const char *channel, bool granted)
{
    ConsentChanged c = TESSERA__NOTIFICATION__V1__CONSENT_CHANGED__INIT;
    c.channel = (char *)channel, c.purpose = "marketing", c.granted = granted, c.source = "test";
    add_fact(b, member, NULL, &c);
}

/* Applies b as the pipeline does (the caller's transaction). */
static void apply(PGconn *pg, struct batch *b)
{
    struct notify_ctx ctx;
    struct pipeline_batch pb = {.msgs = b->msgs, .count = b->count, .poison = b->poison};
    char err[512] = "";
    notify_begin_batch(&ctx);
    if (notify_apply_batch(&ctx, pg, &pb, err, sizeof(err)) != 0)
        fail_msg("apply: %s", err);
    for (size_t i = 0; i < b->count; i++) {
        assert_null(b->poison[i]);
        free(b->msg[i].payload);
    }
    free(pb.out);
    b->count = 0;
}

static int64_t count(PGconn *pg, const char *sql, const char *member, const char *arg)
{
    char err[256];
    const char *p[3] = {tenant, member, arg};
    PGresult *res = db_query(pg, sql, arg ? 3 : 2, p, err, sizeof(err), NULL);
    if (!res)
        fail_msg("%s: %s", sql, err);
    int64_t n = db_int_at(res, 0, 0);
    PQclear(res);
    return n;
}

/* Whether member's stored contact holds phone (unsealed in tests). */
static bool contact_has(PGconn *pg, const char *member, const char *phone)
{
    return count(pg,
                 "SELECT count(*) FROM contacts WHERE tenant_id = $1 AND member_id = $2 "
                 "AND position(convert_to($3, 'UTF8') in sealed) > 0",
                 member, phone) == 1;
}

static bool consent_granted(PGconn *pg, const char *member, const char *channel)
{
    return count(pg,
                 "SELECT count(*) FROM consents WHERE tenant_id = $1 AND member_id = $2 "
                 "AND channel = $3 AND purpose = 'marketing' AND granted",
                 member, channel) == 1;
}

static void inbox_row(PGconn *pg, const char *member)
{
    char err[256];
    const char *p[2] = {tenant, member};
    PGresult *res = db_query(pg,
                             "INSERT INTO inbox (tenant_id, message_id, member_id, request_id, "
                             "template, title, body, created_us) VALUES ($1, 'm-' || $2, $2, "
                             "'r', 'receipt.top_up', 't', 'b', 1)",
                             2, p, err, sizeof(err), NULL);
    if (!res)
        fail_msg("inbox: %s", err);
    PQclear(res);
}

static int64_t inbox_rows(PGconn *pg, const char *member)
{
    return count(pg, "SELECT count(*) FROM inbox WHERE tenant_id = $1 AND member_id = $2", member,
                 NULL);
}

static void test_several_changes_of_one_member_in_one_batch(void **state)
{
    char err[256];
    PGconn *pg = db_connect(getenv("TESSERA_PG_DSN"), "notification", "test-notify-facts-batch",
                            2000, err, sizeof(err));
    if (!pg)
        fail_msg("connect: %s", err);
    assert_int_equal(db_begin(pg, err, sizeof(err)), 0);
    inbox_row(pg, "m-erased-back");
    inbox_row(pg, "m-erased-last");
    static struct batch b;

    /* one run of facts: several changes of the same members */
    contact(&b, "m-last", "+100", false);
    consent(&b, "m-last", "sms", true);
    contact(&b, "m-last", "+101", false);
    consent(&b, "m-last", "sms", false);
    consent(&b, "m-last", "email", false);
    contact(&b, "m-last", "+102", false);
    consent(&b, "m-last", "email", true);
    contact(&b, "m-erased-back", "+200", false);
    contact(&b, "m-erased-back", "", true);
    contact(&b, "m-erased-back", "+201", false);
    contact(&b, "m-erased-last", "+300", false);
    contact(&b, "m-erased-last", "", true);
    apply(pg, &b);

    assert_true(contact_has(pg, "m-last", "+102"));
    assert_false(consent_granted(pg, "m-last", "sms"));
    assert_true(consent_granted(pg, "m-last", "email"));
    assert_true(contact_has(pg, "m-erased-back", "+201")); /* back after the erasure */
    assert_int_equal(inbox_rows(pg, "m-erased-back"), 0);  /* but the inbox went with it */
    assert_int_equal(count(pg,
                           "SELECT count(*) FROM contacts WHERE tenant_id = $1 AND member_id = $2",
                           "m-erased-last", NULL),
                     0);
    assert_int_equal(inbox_rows(pg, "m-erased-last"), 0);

    /* a later batch overrides, and a member untouched keeps its inbox */
    inbox_row(pg, "m-kept");
    contact(&b, "m-last", "+103", false);
    consent(&b, "m-last", "sms", true);
    apply(pg, &b);
    assert_true(contact_has(pg, "m-last", "+103"));
    assert_true(consent_granted(pg, "m-last", "sms"));
    assert_int_equal(inbox_rows(pg, "m-kept"), 1);

    db_rollback(pg);
    PQfinish(pg);
}

int main(void)
{
    log_init("test_notify_facts_batch", LOG_WARN);
    if (!getenv("TESSERA_PG_DSN")) {
        fprintf(stderr, "TESSERA_PG_DSN is not set (run through make test)\n");
        return 1;
    }
    snprintf(tenant, sizeof(tenant), "facts-batch-%ld", (long)getpid());
    assert_int_equal(notify_seal_init(""), 0); /* unsealed: the test reads the phone */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_several_changes_of_one_member_in_one_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
