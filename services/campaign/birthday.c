/* The birthday scheduler: a thread of the campaign that, every interval,
 * reads the service clock (clock_now_us, so a moved test clock is seen
 * within a round) and grants the birthday gift to the members whose
 * birthday is today in their tenant's time zone:
 *
 *   - the tenant's rule is the activity rules version in force now, with
 *     birthday.points > 0;
 *   - a member born on 29 February gets it on 28 February in other years;
 *   - once a year: engage_members.last_birthday_year moves to this year in
 *     the same transaction as the grant (activity_grants, grant id
 *     "birthday:<member>:<year>") and the outbox rows of its EarnPoints and
 *     its NotifyRequest birthday.gift. A restart, a crash between rounds
 *     or a second instance never grants twice: the year and the grant id
 *     both say it was done.
 *
 * Only one campaign instance schedules at a time: the one whose
 * connection holds a session advisory lock (like the ledger's expiry
 * scheduler). A birthday missed entirely (the service down all day) is
 * not granted later: the gift is for the day. */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaign.h"
#include "clock/clock.h"
#include "db/db.h"
#include "engage.h"
#include "ids/uuid7.h"
#include "log/log.h"
#include "service/common.h"
#include "util/sleep.h"

#define BIRTHDAY_LOCK_KEY      "tessera-campaign-birthdays"
#define BIRTHDAYS_PER_ROUND    500
#define BIRTHDAY_STRINGIFY_(x) #x
#define BIRTHDAY_STRINGIFY(x)  BIRTHDAY_STRINGIFY_(x)

struct birthdays {
    const struct service_common_config *common;
    long long interval_ms;
    PGconn *pg;
    bool leader;
};

/* (Re)connects and tries for the lock; true when this instance leads. */
static bool birthdays_lead(struct birthdays *s)
{
    char err[256];
    if (s->pg && !db_healthy(s->pg)) {
        PQfinish(s->pg); /* a new session must take the lock again */
        s->pg = NULL;
    }
    if (!s->pg) {
        s->leader = false;
        s->pg = db_connect(s->common->pg_dsn, "campaign", "tessera-campaign-birthdays",
                           (int)s->common->pg_statement_timeout_ms, err, sizeof(err));
        if (!s->pg)
            return false;
    }
    if (s->leader)
        return true;
    const char *p[1] = {BIRTHDAY_LOCK_KEY};
    PGresult *res =
        db_query(s->pg, "SELECT pg_try_advisory_lock(hashtext($1))", 1, p, err, sizeof(err), NULL);
    s->leader = res && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (s->leader)
        log_info("birthday scheduler: this instance schedules");
    return s->leader;
}

/* Members whose birthday is today (in force rules' zone) and not granted
 * this year. $1: now (µs). Columns: tenant, member, branch, points, year,
 * today. */
/* clang-format off */
static const char due_sql[] =
    "WITH r AS (SELECT DISTINCT ON (tenant_id) tenant_id, time_zone, birthday_points "
    "  FROM activity_rules WHERE effective_from_us <= $1 "
    "  ORDER BY tenant_id, effective_from_us DESC, change_id DESC), "
    "t AS (SELECT tenant_id, birthday_points, "
    "  (to_timestamp($1::bigint / 1000000.0) AT TIME ZONE time_zone)::date AS today "
    "  FROM r WHERE birthday_points > 0) "
    "SELECT m.tenant_id, m.member_id, m.branch_id, t.birthday_points, "
    "  extract(year FROM t.today)::int, t.today::text "
    "FROM t JOIN engage_members m ON m.tenant_id = t.tenant_id "
    "WHERE m.birth_month = extract(month FROM t.today) "
    "  AND (m.birth_day = extract(day FROM t.today) "
    "    OR (m.birth_month = 2 AND m.birth_day = 29 AND extract(day FROM t.today) = 28 "
    "      AND extract(month FROM t.today + 1) = 3)) "
    "  AND coalesce(m.last_birthday_year, 0) < extract(year FROM t.today) "
    "LIMIT " BIRTHDAY_STRINGIFY(BIRTHDAYS_PER_ROUND);
/* clang-format on */

/* One member's gift in one transaction (row i of due). 0, or -1 with err
 * (rolled back: the next round tries again). */
static int grant_one(PGconn *pg, const PGresult *due, int i, char *err, size_t err_len)
{
    const char *tenant = PQgetvalue(due, i, 0), *member = PQgetvalue(due, i, 1);
    const char *year = PQgetvalue(due, i, 4);
    /* the cause: a fact of this scheduler, for the ids and the trace */
    Envelope cause = TESSERA__ENVELOPE__V1__ENVELOPE__INIT;
    char event_id[UUID_STR_SIZE];
    uuid7_generate(event_id);
    cause.event_id = event_id;
    cause.tenant_id = (char *)tenant;
    cause.member_id = (char *)member;
    cause.branch_id = (char *)PQgetvalue(due, i, 2);
    cause.occurred_at_us = clock_now_us();
    struct engage_grant g = {
        .kind = "birthday", .points = db_int_at(due, i, 3), .local_day = PQgetvalue(due, i, 5)};
    snprintf(g.grant_id, sizeof(g.grant_id), "birthday:%s:%s", member, year);
    snprintf(g.rule, sizeof(g.rule), "birthday");
    if (db_begin(pg, err, err_len) < 0)
        return -1;
    const char *p[3] = {tenant, member, year};
    PGresult *res = db_query(pg,
                             "UPDATE engage_members SET last_birthday_year = $3::int WHERE "
                             "tenant_id = $1 AND member_id = $2 AND coalesce(last_birthday_year, "
                             "0) < $3::int",
                             3, p, err, err_len, NULL);
    bool claimed = res && strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    bool granted = false;
    char request_id[EVENT_ID_FIELD_MAX + 16];
    snprintf(request_id, sizeof(request_id), "birthday.gift:%s", g.grant_id);
    int rc = res ? 0 : -1;
    if (rc == 0 && claimed)
        rc = engage_grant(NULL, pg, NULL, &cause, &g, &granted, err, err_len);
    if (rc == 0 && granted)
        rc = engage_notify(pg, NULL, &cause, "birthday.gift", "marketing", request_id, "points",
                           g.points, err, err_len);
    if (rc < 0) {
        db_rollback(pg);
        return -1;
    }
    if (db_commit(pg, err, err_len) < 0)
        return -1;
    if (granted)
        log_fields(LOG_INFO, "birthday gift granted", "tenant", tenant, "member", member, "year",
                   year, NULL);
    return 0;
}

static void birthdays_round(struct birthdays *s)
{
    char err[256], now[24];
    snprintf(now, sizeof(now), "%lld", (long long)clock_now_us());
    const char *p[1] = {now};
    PGresult *due = db_query(s->pg, due_sql, 1, p, err, sizeof(err), NULL);
    if (!due) {
        log_fields(LOG_WARN, "birthday scheduler: cannot read due birthdays", "error", err, NULL);
        return;
    }
    for (int i = 0; i < PQntuples(due); i++)
        if (grant_one(s->pg, due, i, err, sizeof(err)) < 0) {
            log_fields(LOG_WARN, "birthday scheduler: a gift failed; next round retries", "error",
                       err, NULL);
            break;
        }
    PQclear(due);
}

static void *birthdays_main(void *arg)
{
    struct birthdays *s = arg;
    for (;;) {
        sleep_ms(s->interval_ms);
        if (birthdays_lead(s))
            birthdays_round(s);
    }
    return NULL;
}

int birthday_scheduler_start(const struct service_common_config *c, long long interval_ms)
{
    static struct birthdays s;
    s.common = c;
    s.interval_ms = interval_ms;
    pthread_t thread;
    if (pthread_create(&thread, NULL, birthdays_main, &s) != 0)
        return -1;
    pthread_detach(thread); /* holds nothing worth a clean stop: see above */
    return 0;
}
