/* Applying one ActivityRecorded, inside the batch's transaction:
 *
 *  1. One statement reads what the decision needs: whether this member's
 *     activity id was applied before (then nothing happens), the rule
 *     version in force when it occurred (none: the seeds' defaults in
 *     Asia/Shanghai), its local day in that version's time zone, the
 *     type's earned activities of that day, ISO week and month, the
 *     activity points granted that month, the check-in streak and when
 *     the member registered.
 *  2. The pure rules (rules_activities.h) decide the points (limits,
 *     promotions, the monthly cap), the streak bonus and the welcome task.
 *  3. The activity's row, its grants (grants.c: EarnPoints, once per grant
 *     id) and the streak are written.
 *
 * Activities are applied in the batch's order; one member's are ordered in
 * their partition and this service is their only writer, so the counts of
 * step 1 include every earlier activity of the member.
 *
 * Step 1 leaves the version's promotions out when promotions.c keeps them
 * parsed (the tenant's kept change_id is its parameter $6). */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaign.h"
#include "db/db.h"
#include "engage.h"
#include "log/log.h"
#include "rules_activities.h"

/* clang-format off */
static const char context_sql[] =
    "WITH r AS (SELECT * FROM activity_rules WHERE tenant_id = $1 AND effective_from_us <= $3 "
    "  ORDER BY effective_from_us DESC, change_id DESC LIMIT 1), "
    "d AS (SELECT (to_timestamp($3::bigint / 1000000.0) AT TIME ZONE "
    "  coalesce((SELECT time_zone FROM r), '" ACTIVITY_TIME_ZONE_DEFAULT "'))::date AS day), "
    "p AS (SELECT day, date_trunc('week', day::timestamp)::date AS week, "
    "  date_trunc('month', day::timestamp)::date AS month FROM d), "
    "a AS (SELECT local_day FROM activities WHERE tenant_id = $1 AND member_id = $2 "
    "  AND type = $4 AND outcome = 'earned' AND local_day >= least((SELECT week FROM p), "
    "  (SELECT month FROM p)) AND local_day <= (SELECT day FROM p)) "
    "SELECT EXISTS (SELECT 1 FROM activities WHERE tenant_id = $1 AND member_id = $2 "
    "  AND activity_id = $5), "                                                   /* 0 */
    "  p.day::text, (p.day - DATE '1970-01-01'), extract(day FROM p.day)::int, " /* 1-3 */
    "  (SELECT change_id FROM r), (SELECT activities -> $4 FROM r)::text, "     /* 4-5 */
    "  (SELECT monthly_cap FROM r), (SELECT streak_days FROM r), "               /* 6-7 */
    "  (SELECT streak_points FROM r), "                                          /* 8 */
    /* the promotions only when those kept parsed (promotions.c) are of another version */
    "  CASE WHEN (SELECT change_id FROM r) = $6 THEN NULL "
    "    ELSE (SELECT promotions FROM r)::text END, "                               /* 9 */
    "  (SELECT welcome_days FROM r), (SELECT welcome_tasks -> $4 FROM r)::text, " /* 10-11 */
    "  (SELECT registered_at_us FROM engage_members WHERE tenant_id = $1 "
    "    AND member_id = $2), "                                                   /* 12 */
    "  (SELECT count(*) FROM a WHERE local_day = p.day), "                        /* 13 */
    "  (SELECT count(*) FROM a WHERE local_day >= p.week), "                      /* 14 */
    "  (SELECT count(*) FROM a WHERE local_day >= p.month), "                     /* 15 */
    "  (SELECT coalesce(sum(points), 0) FROM activity_grants g WHERE g.tenant_id = $1 "
    "    AND g.member_id = $2 AND g.kind IN ('activity', 'streak') "
    "    AND g.local_day >= p.month AND g.local_day <= p.day), "                  /* 16 */
    "  (SELECT last_day - DATE '1970-01-01' FROM check_in_streaks WHERE tenant_id = $1 "
    "    AND member_id = $2), "                                                   /* 17 */
    "  (SELECT length FROM check_in_streaks WHERE tenant_id = $1 AND member_id = $2) " /* 18 */
    "FROM p";
/* clang-format on */

/* What step 1 read and step 2 decided about one activity. */
struct activity_case {
    const Envelope *env;
    const ActivityRecorded *a;
    PGresult *ctx; /* step 1's row */
    struct activity_rule rule;
    struct activity_counts counts;
    int64_t multiplier_bp, monthly_cap, points;
    enum activity_outcome outcome;
};

static bool col_null(const struct activity_case *k, int col)
{
    return PQgetisnull(k->ctx, 0, col);
}

/* The type's rule of the version in force (column 5), or the default. */
static void read_rule(struct activity_case *k)
{
    k->rule = (struct activity_rule){0};
    for (size_t i = 0; i < ACTIVITY_TYPES_COUNT; i++)
        if (strcmp(activity_defaults[i].type, k->a->type) == 0)
            k->rule.points = activity_defaults[i].points;
    if (col_null(k, 4))
        return;         /* no rules set: defaults, no limits */
    k->rule.points = 0; /* a version without the type gives nothing */
    json_t *j = col_null(k, 5) ? NULL : json_loads(PQgetvalue(k->ctx, 0, 5), 0, NULL);
    if (!j)
        return;
    k->rule.points = json_integer_value(json_object_get(j, "points"));
    k->rule.per_day = json_integer_value(json_object_get(j, "per_day"));
    k->rule.per_week = json_integer_value(json_object_get(j, "per_week"));
    k->rule.per_month = json_integer_value(json_object_get(j, "per_month"));
    json_decref(j);
}

/* The promotions multiplier for this activity (category: its type). */
static int64_t read_multiplier(const struct activity_case *k)
{
    const char *type = k->a->type;
    struct promotion_target t = {.purchase = false,
                                 .at_us = k->env->occurred_at_us,
                                 .day_of_month = (int)db_int_at(k->ctx, 0, 3),
                                 .branch = k->env->branch_id,
                                 .categories = &type,
                                 .category_count = 1};
    if (col_null(k, 4))
        return promotions_multiplier(NULL, &t); /* no rules set */
    /* column 9 is NULL when the kept promotions are of this version */
    const struct promotions *p = promotions_of(k->env->tenant_id, PQgetvalue(k->ctx, 0, 4),
                                               col_null(k, 9) ? NULL : PQgetvalue(k->ctx, 0, 9));
    return promotions_multiplier(p, &t);
}

/* Step 2 for the activity's own points. */
static void decide_points(struct activity_case *k)
{
    read_rule(k);
    k->counts = (struct activity_counts){.day = db_int_at(k->ctx, 0, 13),
                                         .week = db_int_at(k->ctx, 0, 14),
                                         .month = db_int_at(k->ctx, 0, 15),
                                         .month_points = db_int_at(k->ctx, 0, 16)};
    k->monthly_cap = db_int_at(k->ctx, 0, 6);
    k->multiplier_bp = read_multiplier(k);
    k->outcome =
        rules_activity_points(&k->rule, &k->counts, k->multiplier_bp, k->monthly_cap, &k->points);
}

static int record_activity(PGconn *pg, const struct activity_case *k, char *err, size_t err_len)
{
    char at[24], points[24], bp[24];
    snprintf(at, sizeof(at), "%lld", (long long)k->env->occurred_at_us);
    snprintf(points, sizeof(points), "%lld", (long long)k->points);
    snprintf(bp, sizeof(bp), "%lld", (long long)k->multiplier_bp);
    const char *p[11] = {k->env->tenant_id,
                         k->env->member_id,
                         k->a->activity_id,
                         k->a->type,
                         at,
                         PQgetvalue(k->ctx, 0, 1),
                         points,
                         bp,
                         rules_activity_outcome_text(k->outcome),
                         col_null(k, 4) ? NULL : PQgetvalue(k->ctx, 0, 4),
                         k->env->event_id};
    PGresult *res = db_query(pg,
                             "INSERT INTO activities (tenant_id, member_id, activity_id, type, "
                             "occurred_at_us, local_day, points, multiplier_bp, outcome, "
                             "rule_change_id, event_id) VALUES ($1, $2, $3, $4, $5, $6::date, $7, "
                             "$8, $9, $10, $11)",
                             11, p, err, err_len, NULL);
    PQclear(res);
    return res ? 0 : -1;
}

/* The activity's own grant, then the check-in streak's (which the
 * monthly cap also bounds), then the welcome task's (outside the cap: a
 * one-off gift). */
static int grant_all(struct campaign_ctx *c, PGconn *pg, struct pipeline_batch *b,
                     struct activity_case *k, char *err, size_t err_len)
{
    const Envelope *env = k->env;
    struct engage_grant g = {.kind = "activity", .local_day = PQgetvalue(k->ctx, 0, 1)};
    bool granted = false;
    if (k->points > 0) {
        snprintf(g.grant_id, sizeof(g.grant_id), ACTIVITY_GRANT_PREFIX "%s:%s", env->member_id,
                 k->a->activity_id);
        snprintf(g.rule, sizeof(g.rule), "activity:%s", k->a->type);
        g.points = k->points;
        if (engage_grant(c, pg, b, env, &g, &granted, err, err_len) < 0 ||
            (granted && engage_notify_reward(pg, b, env, &g, k->a->type, err, err_len) < 0))
            return -1;
    }
    if (strcmp(k->a->type, "check_in") == 0) {
        int64_t days = col_null(k, 4) ? STREAK_DAYS_DEFAULT : db_int_at(k->ctx, 0, 7);
        int64_t bonus = col_null(k, 4) ? STREAK_POINTS_DEFAULT : db_int_at(k->ctx, 0, 8);
        struct check_in_streak s = {db_int_at(k->ctx, 0, 17), db_int_at(k->ctx, 0, 18)};
        bool due = rules_streak_check_in(&s, db_int_at(k->ctx, 0, 2), days);
        char length[24], last[24];
        snprintf(length, sizeof(length), "%lld", (long long)s.length);
        snprintf(last, sizeof(last), "%lld", (long long)s.last_day);
        const char *p[4] = {env->tenant_id, env->member_id, last, length};
        PGresult *res = db_query(pg,
                                 "INSERT INTO check_in_streaks (tenant_id, member_id, last_day, "
                                 "length) VALUES ($1, $2, DATE '1970-01-01' + $3::int, $4) "
                                 "ON CONFLICT (tenant_id, member_id) DO UPDATE SET "
                                 "last_day = EXCLUDED.last_day, length = EXCLUDED.length",
                                 4, p, err, err_len, NULL);
        PQclear(res);
        if (!res)
            return -1;
        g.points = rules_activity_capped(due ? bonus : 0, k->monthly_cap,
                                         k->counts.month_points + k->points);
        if (g.points > 0) {
            g.kind = "streak";
            snprintf(g.grant_id, sizeof(g.grant_id), ACTIVITY_GRANT_PREFIX "%s:%s:streak",
                     env->member_id, k->a->activity_id);
            snprintf(g.rule, sizeof(g.rule), "streak:check_in:%lld", (long long)days);
            char streak_name[48];
            snprintf(streak_name, sizeof(streak_name), "%lld-day check-in streak", (long long)days);
            if (engage_grant(c, pg, b, env, &g, &granted, err, err_len) < 0 ||
                (granted && engage_notify_reward(pg, b, env, &g, streak_name, err, err_len) < 0))
                return -1;
        }
    }
    int64_t task = col_null(k, 11) ? 0 : atoll(PQgetvalue(k->ctx, 0, 11));
    if (task > 0 && rules_welcome_due(db_int_at(k->ctx, 0, 12), env->occurred_at_us,
                                      db_int_at(k->ctx, 0, 10))) {
        g.kind = "welcome";
        g.points = task;
        /* once per member and task, whichever activity does it first */
        snprintf(g.grant_id, sizeof(g.grant_id), "welcome:%s:%s", env->member_id, k->a->type);
        snprintf(g.rule, sizeof(g.rule), "welcome:%s", k->a->type);
        if (engage_grant(c, pg, b, env, &g, &granted, err, err_len) < 0)
            return -1;
    }
    return 0;
}

static bool activity_valid(const Envelope *env)
{
    const ActivityRecorded *a = env->activity_recorded;
    size_t id_len = strlen(a->activity_id);
    bool known = false;
    for (size_t i = 0; i < ACTIVITY_TYPES_COUNT; i++)
        known |= strcmp(activity_defaults[i].type, a->type) == 0;
    return known && env->member_id[0] && strlen(env->member_id) <= 64 && id_len > 0 &&
           id_len <= ACTIVITY_ID_BYTES_MAX && env->occurred_at_us > 0;
}

int engage_apply_activity(struct campaign_ctx *c, PGconn *pg, const Envelope *env,
                          struct pipeline_batch *b, size_t i, char *err, size_t err_len)
{
    if (!activity_valid(env)) {
        pipeline_mark_poison(b, i, "activity without member, id or known type");
        return 0;
    }
    struct activity_case k = {.env = env, .a = env->activity_recorded};
    char at[24];
    snprintf(at, sizeof(at), "%lld", (long long)env->occurred_at_us);
    const char *kept = promotions_cached_version(env->tenant_id);
    const char *p[6] = {env->tenant_id, env->member_id,   at,
                        k.a->type,      k.a->activity_id, kept ? kept : ""};
    k.ctx = db_query(pg, context_sql, 6, p, err, err_len, NULL);
    if (!k.ctx)
        return -1;
    assert(PQntuples(k.ctx) == 1);
    int rc = 0;
    if (strcmp(PQgetvalue(k.ctx, 0, 0), "t") == 0) {
        c->engage_duplicates++; /* this member's activity id was applied before */
    } else {
        decide_points(&k);
        rc = record_activity(pg, &k, err, err_len);
        if (rc == 0)
            rc = grant_all(c, pg, b, &k, err, err_len);
        c->engage_activities++;
    }
    PQclear(k.ctx);
    return rc;
}
