/* The member's tier as the member and staff see it: GET
 * /v1/members/{id}/tier (any key of the tenant) and GET /v1/me/tier (the
 * member's session). From tiering's read contract: the level held and why
 * (an override or invitation shown as such, with its reason and expiry),
 * progress (qualifying spend per window, what the next level needs, the
 * review date and what keeps the level held), and the history of changes
 * with their rules and the notes that explain a level that did not move.
 * GET /v1/me carries the same view as "tier_progress" (tier_view_embed_then).
 * Spend is summed per window from read_qualifying_facts as tiering sums
 * it, with tiering's rules (rules*.c). Read only. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tiering/rules_review.h"
#include "../tiering/rules_spend.h"
#include "clock/clock.h"
#include "ingest.h"
#include "tier_ladder.h"

#define TIER_HISTORY_MAX 50 /* changes and notes listed, newest first */
#define STRINGIFY_(x)    #x
#define STRINGIFY(x)     STRINGIFY_(x)

/* What the first query found, kept for the second. */
struct tier_view {
    struct req *r;
    void (*next)(struct req *r); /* embedded in GET /v1/me: what continues it */
    json_t *body;
    json_t *config; /* the ladder in force, or NULL */
    int32_t held_rank;
    bool has_tier, by_spend;
    int64_t period_end_us;
    struct tier_windows w;
};

static void view_free(struct tier_view *v)
{
    json_decref(v->body);
    json_decref(v->config);
    free(v);
}

/* Progress: spend per window, the next level and what it needs, the
 * review and what keeps the level held. */
static json_t *progress(const struct tier_view *v, const struct tier_spend *s)
{
    struct tier_level levels[TIER_LEVELS_MAX];
    size_t n = v->config ? tier_ladder_levels(v->config, levels) : 0;
    json_t *p = json_pack("{s:{s:I, s:I, s:I}}", "spent", "lifetime", (json_int_t)s->lifetime,
                          "calendar_year", (json_int_t)s->annual, "rolling_12_months",
                          (json_int_t)s->rolling);
    const struct tier_level *next = NULL;
    for (size_t i = 0; i < n; i++) /* levels are by rank */
        if (!levels[i].invitation_only && (!v->has_tier || levels[i].rank > v->held_rank) &&
            (!next || levels[i].rank < next->rank))
            next = &levels[i];
    const char *window = "";
    int64_t need = next ? tier_needed_to_keep(next, s, &window) : -1;
    json_object_set_new(p, "next_level",
                        next && need >= 0 ? json_pack("{s:s, s:I, s:s}", "name", next->name,
                                                      "needed", (json_int_t)need, "window", window)
                                          : json_null());
    const struct tier_level *held =
        v->has_tier ? tier_level_of_rank(levels, n, v->held_rank) : NULL;
    if (held && v->by_spend && v->period_end_us > 0) {
        char end[32], at[32];
        int64_t grace = json_integer_value(json_object_get(v->config, "grace_days"));
        event_format_time(v->period_end_us, end);
        event_format_time(tier_review_at(v->period_end_us, (int32_t)grace), at);
        int64_t keep = tier_needed_to_keep(held, s, &window);
        json_object_set_new(p, "review",
                            json_pack("{s:s, s:s, s:I, s:s}", "period_end", end, "review_at", at,
                                      "needed_to_keep", (json_int_t)(keep < 0 ? 0 : keep), "window",
                                      window));
    } else {
        json_object_set_new(p, "review", json_null());
    }
    return p;
}

static void on_spend(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct tier_view *v = arg;
    struct req *r = v->r;
    if (!res) {
        view_free(v);
        req_fail_db(r, err);
        return;
    }
    struct tier_spend s = {.lifetime = strtoll(PQgetvalue(res, 0, 0), NULL, 10),
                           .annual = strtoll(PQgetvalue(res, 0, 1), NULL, 10),
                           .rolling = strtoll(PQgetvalue(res, 0, 2), NULL, 10),
                           .year = v->w.year};
    json_object_set_new(v->body, "progress", progress(v, &s));
    void (*next)(struct req * r) = v->next;
    if (next) { /* GET /v1/me: r->body is that answer; the view goes in it */
        json_object_del(v->body, "member_id");
        json_object_set(r->body, "tier_progress", v->body);
        view_free(v);
        next(r);
        return;
    }
    json_t *body = json_incref(v->body);
    view_free(v);
    req_finish(r, 200, body);
}

static void query_spend(struct tier_view *v)
{
    char yf[32], rf[32];
    event_format_time(v->w.year_from_us, yf);
    event_format_time(v->w.rolling_from_us, rf);
    const char *p[4] = {v->r->caller.tenant_id, v->r->member_id, yf, rf};
    if (pg_pool_query(
            v->r->app->pg,
            "SELECT greatest(coalesce(sum(amount), 0), 0), "
            "greatest(coalesce(sum(amount) FILTER (WHERE occurred_at >= $3::timestamptz), 0), 0), "
            "greatest(coalesce(sum(amount) FILTER (WHERE occurred_at > $4::timestamptz), 0), 0) "
            "FROM tiering.read_qualifying_facts WHERE tenant_id = $1 AND member_id = $2",
            4, p, on_spend, v) < 0)
        on_spend(v, NULL, "queue full", "");
}

static json_t *json_text(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    return j ? j : json_array();
}

/* Columns: member exists, utc offset, ladder, name, rank, reason, since,
 * period_end µs, override reason, by, expires, discount, multiplier,
 * changes, notes. */
static void on_view(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    void (*next)(struct req * r) = r->tier_view_next;
    r->tier_view_next = NULL;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
        req_fail_no_member(r);
        return;
    }
    struct tier_view *v = calloc(1, sizeof(*v));
    assert(v);
    v->r = r;
    v->next = next;
    v->config = PQgetisnull(res, 0, 2) ? NULL : json_text(PQgetvalue(res, 0, 2));
    const char *name = PQgetisnull(res, 0, 3) ? "" : PQgetvalue(res, 0, 3);
    const char *reason = PQgetvalue(res, 0, 5);
    v->has_tier = name[0] != '\0';
    v->held_rank = (int32_t)strtol(PQgetvalue(res, 0, 4), NULL, 10);
    v->by_spend = tier_reason_by_spend(reason);
    v->period_end_us = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
    tier_windows_at(&v->w, clock_now_us(), (int32_t)strtol(PQgetvalue(res, 0, 1), NULL, 10));
    json_t *tier = json_null();
    if (v->has_tier) {
        tier =
            json_pack("{s:s, s:i, s:I, s:I, s:s, s:s}", "name", name, "rank", (int)v->held_rank,
                      "discount_bp", (json_int_t)strtoll(PQgetvalue(res, 0, 11), NULL, 10),
                      "points_multiplier_bp", (json_int_t)strtoll(PQgetvalue(res, 0, 12), NULL, 10),
                      "reason", reason, "since", PQgetvalue(res, 0, 6));
        json_object_set_new(
            tier, "override",
            v->by_spend
                ? json_null()
                : json_pack("{s:s, s:s, s:s, s:o}", "kind", reason, "reason", PQgetvalue(res, 0, 8),
                            "by", PQgetvalue(res, 0, 9), "expires_at",
                            PQgetisnull(res, 0, 10) ? json_null()
                                                    : json_string(PQgetvalue(res, 0, 10))));
    }
    v->body = json_pack("{s:s, s:o, s:{s:o, s:o}}", "member_id", r->member_id, "tier", tier,
                        "history", "changes", json_text(PQgetvalue(res, 0, 13)), "notes",
                        json_text(PQgetvalue(res, 0, 14)));
    query_spend(v);
}

#define TIME_TEXT(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* clang-format off */
static const char view_sql[] =
    "SELECT (SELECT count(*) FROM members WHERE tenant_id = $1 AND member_id = $2), "
    "(SELECT (EXTRACT(EPOCH FROM ($3::timestamptz AT TIME ZONE time_zone) - "
    "($3::timestamptz AT TIME ZONE 'UTC')) / 60)::int FROM tenants WHERE tenant_id = $1), "
    "(SELECT config::text FROM tiering.read_tier_ladders WHERE tenant_id = $1 "
    "ORDER BY version DESC LIMIT 1), "
    "t.name, coalesce(t.rank, -1), coalesce(t.reason, ''), coalesce(" TIME_TEXT("t.changed_at") ", ''), "
    "coalesce((extract(epoch FROM t.period_end) * 1000000)::bigint, 0), "
    "coalesce(t.override_reason, ''), coalesce(t.override_by, ''), " TIME_TEXT("t.override_expires_at") ", "
    "coalesce(t.discount_bp, 10000), coalesce(t.points_multiplier_bp, 10000), "
    "(SELECT coalesce(json_agg(c ORDER BY c.version DESC), '[]')::text FROM (SELECT version, "
    "from_name AS \"from\", to_name AS \"to\", reason, lifetime_spend, " TIME_TEXT("occurred_at")
    " AS at FROM tiering.read_tier_changes WHERE tenant_id = $1 AND member_id = $2 "
    "ORDER BY version DESC LIMIT " STRINGIFY(TIER_HISTORY_MAX) ") c), "
    "(SELECT coalesce(json_agg(n ORDER BY n.at DESC), '[]')::text FROM (SELECT kind, detail, "
    TIME_TEXT("occurred_at") " AS at FROM tiering.read_tier_notes WHERE tenant_id = $1 "
    "AND member_id = $2 ORDER BY occurred_at DESC LIMIT " STRINGIFY(TIER_HISTORY_MAX) ") n) "
    "FROM (SELECT 1) AS one LEFT JOIN tiering.read_member_tiers t "
    "ON t.tenant_id = $1 AND t.member_id = $2";
/* clang-format on */

static void view_reply(struct req *r)
{
    char now[32];
    event_format_time(clock_now_us(), now);
    const char *p[3] = {r->caller.tenant_id, r->member_id, now};
    if (pg_pool_query(r->app->pg, view_sql, 3, p, on_view, r) < 0)
        req_fail_db(r, "queue full");
}

static void get_authenticated(struct req *r)
{
    if (!req_member_from_path(r))
        return;
    view_reply(r);
}

void tier_view_get(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), get_authenticated);
}

void tier_view_embed_then(struct req *r, void (*next)(struct req *r))
{
    r->tier_view_next = next;
    view_reply(r);
}

/* member_session_then has set r->member_id to the session's member. */
void tier_view_me(struct http_exchange *ex, void *app)
{
    member_session_then(req_new(app, ex), view_reply);
}
