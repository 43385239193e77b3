/* /v1/config/tiers (admin): the tenant's tier ladder.
 *
 * PUT: the ladder is tiering's (it decides with it and owns its schema),
 * so ingest does what it does for earning rules (earning_rules.c): it
 * validates the whole ladder (422 naming every bad field; nothing is
 * published, the ladder in force stays), sends it as a TierLadderChanged
 * fact on member-events keyed by tenant through its outbox, with the
 * audit row in the same statement, and answers once tiering has stored it
 * as the tenant's next version (200 "applied"), or 202 "accepted" when
 * tiering has not within the wait budget (Prefer: wait=N). The fact
 * carries the tenant's UTC offset now (its calendar years and rolling
 * windows) and the normalized configuration, which GET answers.
 *
 * GET: the version in force (tiering.read_tier_ladders), 404 when the
 * tenant never set one by the API.
 *
 * POST :dry-run: the same validation, then per level how many members
 * would move up now (gain) and how many hold a level they would no
 * longer reach and so lose at their review (lose), computed from
 * tiering's qualifying facts with tiering's own rules (rules*.c), as
 * tiering does when the ladder is applied. Nothing is changed. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tiering/rules_spend.h"
#include "bus/topics.h"
#include "clock/clock.h"
#include "ingest.h"
#include "settings_publish.h"
#include "tier_ladder.h"

/* One PUT or dry-run from validation to its answer. */
struct tiers_put {
    struct req *r;
    json_t *config; /* normalized */
    int32_t utc_offset_minutes;
    int64_t effective_from_us;
    bool dry_run;
};

static void put_free(void *ctx)
{
    struct tiers_put *put = ctx;
    json_decref(put->config);
    free(put);
}

/* Frees put and hands back its request, which the caller ends. */
static struct req *put_release(struct tiers_put *put)
{
    struct req *r = put->r;
    put_free(put);
    return r;
}

/* ------------------------------------------------------------ the event */
/* The TierLadderChanged event into r->command; false when it does not
 * encode (over EVENT_ENCODED_MAX). */
static bool encode_change(struct tiers_put *put)
{
    struct req *r = put->r;
    struct event_meta meta = settings_event_meta(r);
    r->command = tier_ladder_encode(&meta, r->command_id, put->config, put->utc_offset_minutes,
                                    &put->effective_from_us, &r->command_len);
    return r->command != NULL;
}

/* ------------------------------------------------------------ the answer */
static json_t *answer_body(const struct tiers_put *put, const char *status, int64_t version)
{
    char at[32];
    event_format_time(put->effective_from_us, at);
    json_t *body = json_deep_copy(put->config);
    json_object_set_new(body, "status", json_string(status));
    json_object_set_new(body, "change_id", json_string(put->r->command_id));
    json_object_set_new(body, "effective_from", json_string(at));
    json_object_set_new(body, "version", version > 0 ? json_integer(version) : json_null());
    return body;
}

/* Column 0 of tiering's row: the version it stored the ladder as. */
static json_t *answer(void *ctx, const char *status, const PGresult *row)
{
    int64_t version = row ? strtoll(PQgetvalue(row, 0, 0), NULL, 10) : 0;
    return answer_body(ctx, status, version);
}

/* The audit row and the event's outbox row in one statement: $1 tenant,
 * $2 actor key id, $3 actor address, $4 after, $5 the event. */
static const char publish_sql[] = SETTINGS_PUBLISH_SQL("tiers.put");

static void publish(struct tiers_put *put)
{
    struct req *r = put->r;
    if (!encode_change(put)) {
        req_fail(put_release(put), 413, "payload_too_large", "the ladder does not fit in an event");
        return;
    }
    json_t *after = answer_body(put, "published", 0);
    struct settings_change c = {.publish_sql = publish_sql,
                                .audit_after = after,
                                .applied_sql = "SELECT version FROM tiering.read_tier_ladders "
                                               "WHERE tenant_id = $1 AND change_id = $2",
                                .answer = answer,
                                .release = put_free,
                                .ctx = put};
    settings_publish(r, &c);
    json_decref(after);
}

/* ------------------------------------------------------------ dry-run */
struct dry_count {
    char name[TIER_NAME_MAX + 1];
    int32_t rank;
    long long gain, lose;
    bool in_ladder;
};

static struct dry_count *dry_slot(struct dry_count *c, size_t *n, const char *name, int32_t rank,
                                  bool in_ladder)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(c[i].name, name) == 0)
            return &c[i];
    if (*n == 2 * TIER_LEVELS_MAX)
        return NULL; /* more held levels than any ladder had: not counted */
    struct dry_count *s = &c[(*n)++];
    *s = (struct dry_count){.rank = rank, .in_ladder = in_ladder};
    snprintf(s->name, sizeof(s->name), "%s", name);
    return s;
}

/* Rows: member, lifetime, year, rolling, held rank, name, reason. */
static void on_dry_rows(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct tiers_put *put = arg;
    if (!res) {
        req_fail_db(put_release(put), err);
        return;
    }
    struct tier_level levels[TIER_LEVELS_MAX];
    size_t n = tier_ladder_levels(put->config, levels), used = 0;
    struct dry_count counts[2 * TIER_LEVELS_MAX];
    for (size_t i = 0; i < n; i++)
        dry_slot(counts, &used, levels[i].name, levels[i].rank, true);
    for (int row = 0; row < PQntuples(res); row++) {
        struct tier_spend s = {.lifetime = strtoll(PQgetvalue(res, row, 1), NULL, 10),
                               .annual = strtoll(PQgetvalue(res, row, 2), NULL, 10),
                               .rolling = strtoll(PQgetvalue(res, row, 3), NULL, 10)};
        const char *held = PQgetisnull(res, row, 5) ? "" : PQgetvalue(res, row, 5);
        int32_t rank = (int32_t)strtol(PQgetvalue(res, row, 4), NULL, 10);
        bool has = held[0] != '\0';
        const struct tier_level *q = tier_qualify(levels, n, &s, NULL);
        struct dry_count *c = NULL;
        if (tier_is_upgrade(has, rank, q)) {
            if ((c = dry_slot(counts, &used, q->name, q->rank, true)))
                c->gain++;
        } else if (has && tier_reason_by_spend(PQgetvalue(res, row, 6)) && (!q || q->rank < rank)) {
            if ((c = dry_slot(counts, &used, held, rank, false)))
                c->lose++;
        }
    }
    json_t *out = json_array();
    for (size_t i = 0; i < used; i++)
        json_array_append_new(out, json_pack("{s:s, s:i, s:I, s:I, s:b}", "name", counts[i].name,
                                             "rank", (int)counts[i].rank, "would_gain",
                                             (json_int_t)counts[i].gain, "would_lose",
                                             (json_int_t)counts[i].lose, "in_ladder",
                                             counts[i].in_ladder));
    json_t *body = json_pack("{s:i, s:o}", "members_evaluated", PQntuples(res), "levels", out);
    req_finish(put_release(put), 200, body);
}

/* Every member of the tenant with qualifying facts or a tier: spend per
 * window seen from now (the windows in the tenant's zone), and the tier
 * held; summed as tiering sums them (store.c). */
static void dry_run_query(struct tiers_put *put)
{
    struct req *r = put->r;
    struct tier_windows w;
    tier_windows_at(&w, clock_now_us(), put->utc_offset_minutes);
    char yf[32], rf[32];
    event_format_time(w.year_from_us, yf);
    event_format_time(w.rolling_from_us, rf);
    const char *p[3] = {r->caller.tenant_id, yf, rf};
    /* clang-format off */
    if (pg_pool_query(r->app->pg,
        "SELECT coalesce(q.member_id, t.member_id), coalesce(q.l, 0), coalesce(q.y, 0), "
        "coalesce(q.r, 0), coalesce(t.rank, -1), t.name, coalesce(t.reason, '') "
        "FROM (SELECT member_id, greatest(sum(amount), 0) AS l, "
        "greatest(coalesce(sum(amount) FILTER (WHERE occurred_at >= $2::timestamptz), 0), 0) AS y, "
        "greatest(coalesce(sum(amount) FILTER (WHERE occurred_at > $3::timestamptz), 0), 0) AS r "
        "FROM tiering.read_qualifying_facts WHERE tenant_id = $1 GROUP BY member_id) q "
        "FULL JOIN (SELECT member_id, rank, name, reason FROM tiering.read_member_tiers "
        "WHERE tenant_id = $1) t ON t.member_id = q.member_id",
        3, p, on_dry_rows, put) < 0)
        req_fail_db(put_release(put), "queue full");
    /* clang-format on */
}

/* ------------------------------------------------------------ the flow */
static void on_offset(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct tiers_put *put = arg;
    if (!res || PQntuples(res) == 0) {
        req_fail_db(put_release(put), res ? "tenant not found" : err);
        return;
    }
    put->utc_offset_minutes = (int32_t)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    if (put->dry_run)
        dry_run_query(put);
    else
        publish(put);
}

/* The tenant's UTC offset at the service clock's now (its zone's rules). */
static void read_offset(struct tiers_put *put)
{
    char now[32];
    event_format_time(clock_now_us(), now);
    const char *p[2] = {put->r->caller.tenant_id, now};
    if (pg_pool_query(put->r->app->pg,
                      "SELECT (EXTRACT(EPOCH FROM ($2::timestamptz AT TIME ZONE time_zone) - "
                      "($2::timestamptz AT TIME ZONE 'UTC')) / 60)::int FROM tenants "
                      "WHERE tenant_id = $1",
                      2, p, on_offset, put) < 0)
        on_offset(put, NULL, "queue full", "");
}

static void start(struct req *r, bool dry_run)
{
    if (!req_read_body(r))
        return;
    struct validation v;
    validation_init(&v);
    json_t *config = tier_ladder_normalize(r->body, &v);
    if (!config) {
        req_fail_validation(r, &v);
        return;
    }
    validation_free(&v);
    commands_read_prefer_wait(r);
    struct tiers_put *put = calloc(1, sizeof(*put));
    assert(put);
    put->r = r;
    put->config = config;
    put->dry_run = dry_run;
    uuid7_generate(r->command_id); /* the change id */
    read_offset(put);
}

static void put_authorized(struct req *r)
{
    start(r, false);
}

static void dry_run_authorized(struct req *r)
{
    start(r, true);
}

static void on_current(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        req_fail(r, 404, "not_found", "no tier ladder was set through this API");
        return;
    }
    json_error_t jerr;
    json_t *body = json_loads(PQgetvalue(res, 0, 3), 0, &jerr);
    if (!body) {
        req_fail_db(r, "stored ladder is not JSON");
        return;
    }
    json_object_set_new(body, "version", json_integer(strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
    json_object_set_new(body, "change_id", json_string(PQgetvalue(res, 0, 1)));
    json_object_set_new(body, "effective_from", json_string(PQgetvalue(res, 0, 2)));
    req_finish(r, 200, body);
}

static void get_authorized(struct req *r)
{
    const char *p[1] = {r->caller.tenant_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT version, change_id, to_char(effective_from AT TIME ZONE 'UTC', "
                      "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), config::text "
                      "FROM tiering.read_tier_ladders WHERE tenant_id = $1 "
                      "ORDER BY version DESC LIMIT 1",
                      1, p, on_current, r) < 0)
        req_fail_db(r, "queue full");
}

void tiers_config_put(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), put_authorized);
}

void tiers_config_get(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), get_authorized);
}

void tiers_config_dry_run(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), dry_run_authorized);
}
