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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaign.h"
#include "clock/clock.h"
#include "db/db.h"
#include "engage.h"
#include "ids/uuid7.h"
#include "log/log.h"
#include "schedule/schedule.h"
#include "service/common.h"

#define BIRTHDAY_LOCK_KEY      "tessera-campaign-birthdays"
#define BIRTHDAYS_PER_ROUND    500
#define BIRTHDAY_STRINGIFY_(x) #x
#define BIRTHDAY_STRINGIFY(x)  BIRTHDAY_STRINGIFY_(x)

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
static int grant_one(PGconn *pg, const PGresult *due, int i, int64_t now_us, char *err,
                     size_t err_len)
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
    cause.occurred_at_us = now_us;
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

/* A round of the scheduler (schedule.h): the gifts due at now_us. */
static void birthdays_round(void *ctx, PGconn *pg, int64_t now_us)
{
    char err[256], now[24];
    snprintf(now, sizeof(now), "%lld", (long long)now_us);
    const char *p[1] = {now};
    PGresult *due = db_query(pg, due_sql, 1, p, err, sizeof(err), NULL);
    if (!due) {
        log_fields(LOG_WARN, "birthday scheduler: cannot read due birthdays", "error", err, NULL);
        return;
    }
    for (int i = 0; i < PQntuples(due); i++)
        if (grant_one(pg, due, i, now_us, err, sizeof(err)) < 0) {
            log_fields(LOG_WARN, "birthday scheduler: a gift failed; next round retries", "error",
                       err, NULL);
            break;
        }
    PQclear(due);
}

int birthday_scheduler_start(const struct service_common_config *c, long long interval_ms)
{
    static struct schedule s;
    s = (struct schedule){.name = "birthday scheduler",
                          .pg_dsn = c->pg_dsn,
                          .schema = "campaign",
                          .app_name = "tessera-campaign-birthdays",
                          .statement_timeout_ms = (int)c->pg_statement_timeout_ms,
                          .lock_key = BIRTHDAY_LOCK_KEY,
                          .interval_ms = interval_ms,
                          .round = birthdays_round};
    return schedule_start(&s);
}
