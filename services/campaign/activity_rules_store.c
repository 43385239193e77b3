/* Engagement facts that only update this service's state, inside the
 * batch's transaction: ActivityRulesChanged (a rule version, in force from
 * its occurred_at, like earning_rules), MemberRegistered (when the member
 * registered and where: the welcome month) and MemberBirthdaySet (the
 * month and day of a birthday, or its erasure). A rule change out of
 * bounds, or naming a time zone PostgreSQL does not know, goes to
 * dead-letter: nothing else would let the batch pass (a bad zone would
 * fail every later activity's statement). */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "engage.h"
#include "log/log.h"

static bool rule_valid(const ActivityRule *a)
{
    return a && a->type && a->type[0] && strlen(a->type) <= 64 && a->points >= 0 &&
           a->points <= ACTIVITY_POINTS_MAX && a->per_day >= 0 &&
           a->per_day <= ACTIVITY_LIMIT_MAX && a->per_week >= 0 &&
           a->per_week <= ACTIVITY_LIMIT_MAX && a->per_month >= 0 &&
           a->per_month <= ACTIVITY_LIMIT_MAX;
}

static bool promotion_valid(const Promotion *p)
{
    return p && p->multiplier_bp >= PROMOTION_MULTIPLIER_BP_MIN &&
           p->multiplier_bp <= PROMOTION_MULTIPLIER_BP_MAX && p->day_of_month >= 0 &&
           p->day_of_month <= 31 && p->n_categories <= PROMOTION_LIST_MAX &&
           p->n_branches <= PROMOTION_LIST_MAX;
}

/* Every bound of engage_types.h (what ingest checked) holds. */
static bool change_valid(const ActivityRulesChanged *c)
{
    bool ok = c->change_id[0] && strlen(c->change_id) < EVENT_ID_FIELD_MAX && c->time_zone[0] &&
              strlen(c->time_zone) <= TIME_ZONE_BYTES_MAX && c->streak && c->birthday &&
              c->welcome && c->streak->days >= 0 && c->streak->days <= ACTIVITY_STREAK_DAYS_MAX &&
              c->streak->points >= 0 && c->streak->points <= ACTIVITY_POINTS_MAX &&
              c->monthly_cap >= 0 && c->monthly_cap <= ACTIVITY_MONTHLY_CAP_MAX &&
              c->n_promotions <= PROMOTIONS_MAX && c->birthday->points >= 0 &&
              c->birthday->points <= ACTIVITY_POINTS_MAX && c->welcome->days >= 0 &&
              c->welcome->days <= WELCOME_DAYS_MAX && c->n_activities <= 64 &&
              c->welcome->n_tasks <= 64;
    for (size_t i = 0; ok && i < c->n_activities; i++)
        ok = rule_valid(c->activities[i]);
    for (size_t i = 0; ok && i < c->welcome->n_tasks; i++)
        ok = rule_valid(c->welcome->tasks[i]);
    for (size_t i = 0; ok && i < c->n_promotions; i++)
        ok = promotion_valid(c->promotions[i]);
    return ok;
}

static json_t *strings_json(char **list, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(list[i]));
    return a;
}

/* The change's sections as the JSON texts activity_rules keeps (caller
 * frees each). */
static void change_json(const ActivityRulesChanged *c, char **activities, char **promotions,
                        char **tasks)
{
    json_t *acts = json_object(), *promos = json_array(), *t = json_object();
    for (size_t i = 0; i < c->n_activities; i++) {
        const ActivityRule *a = c->activities[i];
        json_object_set_new(acts, a->type,
                            json_pack("{s:I, s:I, s:I, s:I}", "points", (json_int_t)a->points,
                                      "per_day", (json_int_t)a->per_day, "per_week",
                                      (json_int_t)a->per_week, "per_month",
                                      (json_int_t)a->per_month));
    }
    for (size_t i = 0; i < c->n_promotions; i++) {
        const Promotion *p = c->promotions[i];
        json_array_append_new(promos,
                              json_pack("{s:s, s:I, s:i, s:I, s:I, s:o, s:o, s:b, s:b}", "name",
                                        p->name, "multiplier_bp", (json_int_t)p->multiplier_bp,
                                        "day_of_month", p->day_of_month, "from_us",
                                        (json_int_t)p->from_us, "to_us", (json_int_t)p->to_us,
                                        "categories", strings_json(p->categories, p->n_categories),
                                        "branches", strings_json(p->branches, p->n_branches),
                                        "activities", p->activities, "purchases", p->purchases));
    }
    for (size_t i = 0; i < c->welcome->n_tasks; i++)
        json_object_set_new(t, c->welcome->tasks[i]->type,
                            json_integer(c->welcome->tasks[i]->points));
    *activities = json_dumps(acts, JSON_COMPACT);
    *promotions = json_dumps(promos, JSON_COMPACT);
    *tasks = json_dumps(t, JSON_COMPACT);
    assert(*activities && *promotions && *tasks); /* out of memory */
    json_decref(acts), json_decref(promos), json_decref(t);
}

static int zone_known(PGconn *pg, const char *zone, bool *known, char *err, size_t err_len)
{
    const char *p[1] = {zone};
    PGresult *res = db_query(pg, "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)",
                             1, p, err, err_len, NULL);
    if (!res)
        return -1;
    *known = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}

int engage_store_rules(PGconn *pg, const Envelope *env, struct pipeline_batch *b, size_t i,
                       char *err, size_t err_len)
{
    const ActivityRulesChanged *c = env->activity_rules_changed;
    bool known = false;
    if (!change_valid(c)) {
        pipeline_mark_poison(b, i, "activity rules out of range");
        return 0;
    }
    if (zone_known(pg, c->time_zone, &known, err, err_len) < 0)
        return -1;
    if (!known) {
        pipeline_mark_poison(b, i, "activity rules name an unknown time zone");
        return 0;
    }
    char *acts, *promos, *tasks, from[24], version[24], cap[24], sdays[24], spoints[24], bday[24],
        wdays[24];
    change_json(c, &acts, &promos, &tasks);
    snprintf(from, sizeof(from), "%lld", (long long)env->occurred_at_us);
    snprintf(version, sizeof(version), "%lld", (long long)c->version);
    snprintf(cap, sizeof(cap), "%lld", (long long)c->monthly_cap);
    snprintf(sdays, sizeof(sdays), "%lld", (long long)c->streak->days);
    snprintf(spoints, sizeof(spoints), "%lld", (long long)c->streak->points);
    snprintf(bday, sizeof(bday), "%lld", (long long)c->birthday->points);
    snprintf(wdays, sizeof(wdays), "%lld", (long long)c->welcome->days);
    const char *p[13] = {env->tenant_id, c->change_id, version, from, c->time_zone, acts, sdays,
                         spoints,        cap,          promos,  bday, wdays,        tasks};
    PGresult *res = db_query(
        pg,
        "INSERT INTO activity_rules (tenant_id, change_id, version, effective_from_us, time_zone, "
        "activities, streak_days, streak_points, monthly_cap, promotions, birthday_points, "
        "welcome_days, welcome_tasks) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, "
        "$10::jsonb, $11, $12, $13::jsonb) ON CONFLICT (tenant_id, change_id) DO NOTHING",
        13, p, err, err_len, NULL);
    free(acts), free(promos), free(tasks);
    PQclear(res);
    if (res) {
        promotions_forget(env->tenant_id); /* the kept parsed ones are superseded */
        log_fields(LOG_INFO, "activity rules changed", "tenant", env->tenant_id, "change_id",
                   c->change_id, NULL);
    }
    return res ? 0 : -1;
}

int engage_store_member(PGconn *pg, const Envelope *env, char *err, size_t err_len)
{
    char at[24];
    snprintf(at, sizeof(at), "%lld", (long long)env->occurred_at_us);
    const char *p[4] = {env->tenant_id, env->member_id, env->branch_id, at};
    PGresult *res = db_query(pg,
                             "INSERT INTO engage_members (tenant_id, member_id, branch_id, "
                             "registered_at_us) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, "
                             "member_id) DO UPDATE SET branch_id = $3, registered_at_us = $4",
                             4, p, err, err_len, NULL);
    PQclear(res);
    return res ? 0 : -1;
}

int engage_store_birthday(PGconn *pg, const Envelope *env, struct pipeline_batch *b, size_t i,
                          char *err, size_t err_len)
{
    const MemberBirthdaySet *s = env->member_birthday_set;
    bool forget = s->month == 0;
    if (!forget && (s->month < 1 || s->month > 12 || s->day < 1 || s->day > 31)) {
        pipeline_mark_poison(b, i, "birthday month or day out of range");
        return 0;
    }
    char month[8], day[8];
    snprintf(month, sizeof(month), "%d", s->month);
    snprintf(day, sizeof(day), "%d", s->day);
    const char *p[4] = {env->tenant_id, env->member_id, forget ? NULL : month, forget ? NULL : day};
    PGresult *res = db_query(pg,
                             "INSERT INTO engage_members (tenant_id, member_id, birth_month, "
                             "birth_day) VALUES ($1, $2, $3::int, $4::int) ON CONFLICT (tenant_id, "
                             "member_id) DO UPDATE SET birth_month = $3::int, birth_day = $4::int",
                             4, p, err, err_len, NULL);
    PQclear(res);
    return res ? 0 : -1;
}
