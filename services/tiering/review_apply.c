/* TierReviewDue (member-events, keyed by member, from the review
 * scheduler, review.c): applied by the member's partition owner in order
 * with its facts, once per member, period and kind (tier_reviews).
 *
 * warning: the spend the member has as of its review time (period end +
 * grace; windows seen from then, facts known now) does not keep the level
 * held: a TierDowngradeWarning on tier-events, a NotifyRequest
 * "tier.downgrade_warning" saying what to spend and by when, and a note.
 * review: the level is kept when that spend still reaches it (a new
 * period starts where the old one ended), else the member moves to what
 * it reaches (reason "review", TierChanged and "tier.changed").
 * override_expired: the member's override has reached its expiry: the
 * member goes to what its spend reaches (reason "override_expired").
 * A command about a period the member no longer holds (it moved since) is
 * ignored: the scheduler asks again about the new one when it is due. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "log/log.h"
#include "tiering.h"

typedef Tessera__Tiering__V1__TierReviewDue TierReviewDue;
typedef Tessera__Tiering__V1__TierDowngradeWarning TierDowngradeWarning;

static bool is_review(const Envelope *e)
{
    return e && e->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_REVIEW_DUE &&
           e->member_id[0] &&
           (strcmp(e->tier_review_due->kind, "warning") == 0 ||
            strcmp(e->tier_review_due->kind, "review") == 0 ||
            strcmp(e->tier_review_due->kind, "override_expired") == 0 ||
            strcmp(e->tier_review_due->kind, "anniversary") == 0);
}

/* When the member's override ends (0: it holds none, or none that ends). */
static int64_t override_expires(const struct tiering_member *m)
{
    const char *reason = m->reason ? m->reason : m->reason_loaded;
    return m->has_tier && strcmp(reason, "override") == 0 ? m->override_expires_us : 0;
}

/* True when this (member, period, kind) was not applied before. */
static int claim(PGconn *pg, const Envelope *e, char *err, size_t err_len)
{
    char end[32];
    event_format_time(e->tier_review_due->period_end_us, end);
    const char *p[5] = {e->tenant_id, e->member_id, end, e->tier_review_due->kind, e->event_id};
    PGresult *res = db_query(pg,
                             "INSERT INTO tier_reviews (tenant_id, member_id, period_end, kind, "
                             "event_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING "
                             "RETURNING 1",
                             5, p, err, err_len, NULL);
    if (!res)
        return -1;
    int claimed = PQntuples(res) > 0;
    PQclear(res);
    return claimed;
}

/* The member's spend as of at_us: the windows seen from then, the facts
 * up to then. */
static int spend_as_of(PGconn *pg, const struct tiering_member *m, const struct tiering_ladder *ld,
                       int64_t at_us, struct tier_spend *s, char *err, size_t err_len)
{
    struct tier_windows w;
    tier_windows_at(&w, at_us, ld->utc_offset_minutes);
    char yf[32], rf[32], at[32];
    event_format_time(w.year_from_us, yf);
    event_format_time(w.rolling_from_us, rf);
    event_format_time(at_us, at);
    const char *p[5] = {m->tenant_id, m->member_id, yf, rf, at};
    PGresult *res = db_query(
        pg,
        "SELECT greatest(coalesce(sum(amount), 0), 0), "
        "greatest(coalesce(sum(amount) FILTER (WHERE occurred_at >= $3::timestamptz), 0), 0), "
        "greatest(coalesce(sum(amount) FILTER (WHERE occurred_at > $4::timestamptz), 0), 0) "
        "FROM qualifying_purchases WHERE tenant_id = $1 AND member_id = $2 "
        "AND occurred_at <= $5::timestamptz",
        5, p, err, err_len, NULL);
    if (!res)
        return -1;
    *s = (struct tier_spend){.lifetime = db_int_at(res, 0, 0),
                             .annual = db_int_at(res, 0, 1),
                             .rolling = db_int_at(res, 0, 2),
                             .year = w.year};
    PQclear(res);
    return 0;
}

static void tier_msg(Tier *msg, const struct tier_level *l)
{
    tessera__tiering__v1__tier__init(msg);
    if (!l)
        return;
    msg->name = (char *)l->name;
    msg->rank = l->rank;
    msg->discount_bp = l->discount_bp;
    msg->points_multiplier_bp = l->points_multiplier_bp;
}

/* TierDowngradeWarning, its NotifyRequest and a note. */
static void warn(struct tiering_ctx *t, struct pipeline_batch *b, const Envelope *e,
                 const struct tiering_member *m, const struct tier_level *would_be,
                 int64_t review_at_us, int64_t need, const char *window)
{
    struct event_meta meta = {.tenant_id = m->tenant_id,
                              .branch_id = "",
                              .member_id = m->member_id,
                              .causation_id = e->event_id,
                              .correlation_id = e->event_id,
                              .actor_kind = "service",
                              .actor_id = "tiering-review"};
    Envelope env;
    Actor actor;
    Tier current, next;
    TierDowngradeWarning w;
    envelope_init(&env, &actor, &meta);
    tier_msg(&current, &m->tier);
    tier_msg(&next, would_be);
    tessera__tiering__v1__tier_downgrade_warning__init(&w);
    w.current = &current;
    w.would_be = &next;
    w.review_at_us = review_at_us;
    w.must_spend = need;
    w.window = (char *)window;
    w.period_end_us = m->period_end_us;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_DOWNGRADE_WARNING;
    env.tier_downgrade_warning = &w;
    size_t len = 0;
    uint8_t *out = envelope_encode(&env, &len);
    assert(out);
    pipeline_emit(b, TOPIC_TIER_EVENTS, m->member_id, out, len);
    const struct tiering_var vars[] = {
        {.name = "tier.name", .text = m->tier.name},
        {.name = "tier.would_be", .text = would_be ? would_be->name : ""},
        {.name = "tier.must_spend", .money = need},
        {.name = "tier.window", .text = window},
        {.name = "tier.review_at", .money = review_at_us, .is_time = true},
    };
    tiering_notify(b, m->tenant_id, m->member_id, "tier.downgrade_warning", meta.event_id, vars,
                   sizeof(vars) / sizeof(vars[0]));
    char detail[256], at[32];
    event_format_time(review_at_us, at);
    snprintf(detail, sizeof(detail), "warned: spend %lld more (%s) by %s to keep %s",
             (long long)need, window, at, m->tier.name);
    struct tiering_purchase cause = {.env = e, .kind = "review", .command_id = ""};
    tiering_add_note(t, &cause, m, "downgrade_warning", detail);
}

/* One claimed command for member m. */
static int review_one(struct tiering_ctx *t, PGconn *pg, struct pipeline_batch *b,
                      const Envelope *e, struct tiering_member *m, const struct tiering_ladder *ld,
                      char *err, size_t err_len)
{
    int64_t review_at = tier_review_at(m->period_end_us, ld->grace_days);
    struct tier_spend s;
    if (spend_as_of(pg, m, ld, review_at, &s, err, err_len) < 0)
        return -1;
    const struct tier_level *to;
    enum tier_review_outcome o = tier_review(ld->levels, ld->count, &s, m->tier.rank, &to);
    struct tiering_purchase cause = {.env = e, .kind = "review", .command_id = ""};
    if (strcmp(e->tier_review_due->kind, "warning") == 0) {
        const struct tier_level *held = tier_level_of_rank(ld->levels, ld->count, m->tier.rank);
        const char *window = "";
        int64_t need = held ? tier_needed_to_keep(held, &s, &window) : -1;
        if (o == TIER_REVIEW_DOWN && need > 0)
            warn(t, b, e, m, to, review_at, need, window);
        return 0;
    }
    if (o == TIER_REVIEW_KEEP) {
        char detail[160], at[32];
        m->period_end_us =
            tier_period_end(m->period_end_us, ld->review_months, ld->utc_offset_minutes);
        m->tier_changed = true; /* the row's new period_end */
        event_format_time(m->period_end_us, at);
        snprintf(detail, sizeof(detail), "kept %s at review; next review %s", m->tier.name, at);
        tiering_add_note(t, &cause, m, "kept_at_review", detail);
        return 0;
    }
    tiering_change_tier(t, b, &cause, m, to, "review");
    return 0;
}

/* A membership anniversary: the member's full years now; a level whose
 * membership_years they reach lifts it (reason "membership_years"). The
 * years looked at are kept so the scheduler asks about the next one. */
static int anniversary(struct tiering_ctx *t, PGconn *pg, struct pipeline_batch *b,
                       const Envelope *e, struct tiering_member *m, const struct tiering_ladder *ld,
                       char *err, size_t err_len)
{
    if (m->registered_at_us == 0)
        return 0;
    int claimed = claim(pg, e, err, err_len);
    if (claimed <= 0)
        return claimed;
    int32_t years =
        tier_membership_years(m->registered_at_us, e->occurred_at_us, ld->utc_offset_minutes);
    char y[16];
    snprintf(y, sizeof(y), "%d", years);
    const char *p[3] = {m->tenant_id, m->member_id, y};
    PGresult *res = db_query(pg,
                             "UPDATE memberships SET years_done = greatest(years_done, $3::int) "
                             "WHERE tenant_id = $1 AND member_id = $2",
                             3, p, err, err_len, NULL);
    if (!res)
        return -1;
    PQclear(res);
    const struct tier_level *q = tier_by_membership(ld->levels, ld->count, years);
    struct tiering_purchase cause = {.env = e, .kind = "review", .command_id = ""};
    if (tier_is_upgrade(m->has_tier, m->tier.rank, q))
        tiering_change_tier(t, b, &cause, m, q, "membership_years");
    return 0;
}

int tiering_apply_reviews(struct tiering_ctx *t, PGconn *pg, struct pipeline_batch *b,
                          Envelope **envs, char *err, size_t err_len)
{
    size_t n = 0;
    for (size_t i = 0; i < b->count; i++) {
        const Envelope *e = envs[i];
        if (!e || e->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_REVIEW_DUE)
            continue;
        if (!is_review(e)) {
            pipeline_mark_poison(b, i, "tier review without member or with an unknown kind");
            continue;
        }
        tiering_member_find(t, e->tenant_id, e->member_id, true);
        tiering_ladder_find(t, e->tenant_id, true);
        n++;
    }
    if (n == 0)
        return 0;
    if (tiering_store_load_ladders(pg, t, err, err_len) < 0 ||
        tiering_store_load_members(pg, t, err, err_len) < 0)
        return -1;
    for (size_t i = 0; i < b->count; i++) {
        const Envelope *e = envs[i];
        if (!is_review(e))
            continue;
        struct tiering_member *m = tiering_member_find(t, e->tenant_id, e->member_id, false);
        const struct tiering_ladder *ld = tiering_ladder_find(t, e->tenant_id, false);
        assert(m && ld);
        if (strcmp(e->tier_review_due->kind, "anniversary") == 0) {
            if (anniversary(t, pg, b, e, m, ld, err, err_len) < 0)
                return -1;
            continue;
        }
        if (strcmp(e->tier_review_due->kind, "override_expired") == 0) {
            if (override_expires(m) != e->tier_review_due->period_end_us)
                continue; /* cleared or replaced since */
            int claimed = claim(pg, e, err, err_len);
            if (claimed < 0)
                return -1;
            struct tiering_purchase cause = {.env = e, .kind = "review", .command_id = ""};
            if (claimed)
                tiering_requalify(t, b, &cause, m, "override_expired");
            continue;
        }
        if (!m->has_tier || !m->held_by_spend ||
            m->period_end_us != e->tier_review_due->period_end_us)
            continue; /* moved since: not this period's any more */
        int claimed = claim(pg, e, err, err_len);
        if (claimed < 0)
            return -1;
        if (claimed && review_one(t, pg, b, e, m, ld, err, err_len) < 0)
            return -1;
    }
    return tiering_flush_phase(t, pg, err, err_len);
}
