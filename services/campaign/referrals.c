/* Referrals, inside each batch's transaction (the decision itself is made
 * later by referral_scheduler.c, once the lock period is over):
 *
 *  1. ReferralRulesChanged facts (member-events, keyed by tenant) become
 *     rule versions in referral_rules, in force from their occurred_at.
 *  2. A MemberRegistered naming a referrer (ingest checked the code)
 *     becomes a referrals row; one per referee, so a redelivery is a no-op.
 *  3. The referee's first paid PurchaseRecorded (charged > 0) locks the
 *     referral under the rule in force when the purchase was recorded: due
 *     lock_days later, with both sides' points copied from the rule, or
 *     no_reward when no enabled rule was in force. Only a row still
 *     'registered' moves, so only the first purchase counts.
 *
 * Order: a referee's registration (member-events) and purchase
 * (ledger-events) are on different topics, so a purchase may be met
 * before its registration (a lag, a replay, a restart). Such a purchase,
 * of a member with no referrals row whose registration was not applied
 * yet (engage_members, written earlier in the same batch transaction by
 * engage.c), is remembered in referral_first_purchases (the earliest by
 * occurred_at). Every registration takes its member's remembered purchase
 * away and, when it named a referrer, locks the referral from it exactly
 * as step 3 would have. The table so holds only members whose
 * registration the campaign has not caught up with. A rule out of bounds
 * goes to dead-letter. */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaign.h"
#include "clock/clock.h"
#include "db/db.h"
#include "events/campaign_types.h"
#include "events/codec.h"
#include "log/log.h"

#define US_PER_DAY INT64_C(86400000000)
/* How long a purchase met before its registration is remembered: the
 * longest the campaign's member-events may trail its ledger-events (an
 * outage, a replay) before the referral is lost. */
#define REFERRAL_REMEMBER_DAYS 30
/* The first key of the per-member transaction locks ("REFR"); the two-key
 * form never meets the schedulers' one-key session locks. */
#define REFERRAL_MEMBER_LOCK_CLASS 0x52454652
/* Rows forgotten per scheduler round, so a round stays short. */
#define REFERRAL_FORGET_PER_ROUND 1000

static bool header_is(const rd_kafka_message_t *m, const char *const *types)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, "ce_type", &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || !v)
        return true; /* no header: decode and see */
    for (size_t i = 0; types[i]; i++)
        if (n == strlen(types[i]) && memcmp(v, types[i], n) == 0)
            return true;
    return false;
}

static bool may_concern_referrals(const rd_kafka_message_t *m)
{
    const char *types[] = {tessera__campaign__v1__referral_rules_changed__descriptor.name,
                           tessera__member__v1__member_registered__descriptor.name,
                           tessera__ledger__v1__purchase_recorded__descriptor.name, NULL};
    return header_is(m, types);
}

/* Card days: both the product and the days, or neither. */
static bool card_days_ok(const ReferralReward *w)
{
    bool product = w->card_product_id[0] != '\0';
    return strlen(w->card_product_id) < EVENT_ID_FIELD_MAX && w->card_days >= 0 &&
           w->card_days <= REFERRAL_CARD_DAYS_MAX && product == (w->card_days > 0);
}

static bool rule_ok(const ReferralRulesChanged *c)
{
    return c->change_id[0] && strlen(c->change_id) < EVENT_ID_FIELD_MAX && c->referrer &&
           c->referee && c->lock_days >= 0 && c->lock_days <= REFERRAL_LOCK_DAYS_MAX &&
           c->referrer->points >= 0 && c->referrer->points <= REFERRAL_POINTS_MAX &&
           c->referee->points >= 0 && c->referee->points <= REFERRAL_POINTS_MAX &&
           c->referrer->stored_value_bonus >= 0 &&
           c->referrer->stored_value_bonus <= REFERRAL_SV_BONUS_MAX &&
           c->referee->stored_value_bonus >= 0 &&
           c->referee->stored_value_bonus <= REFERRAL_SV_BONUS_MAX &&
           strlen(c->referrer->coupon_template_id) < EVENT_ID_FIELD_MAX &&
           strlen(c->referee->coupon_template_id) < EVENT_ID_FIELD_MAX &&
           card_days_ok(c->referrer) && card_days_ok(c->referee);
}

/* Step 1: one rule version; a change seen before is left as it is. */
static int store_rule(PGconn *pg, const Envelope *env, char *err, size_t err_len)
{
    const ReferralRulesChanged *c = env->referral_rules_changed;
    char at[24], lock[24], referrer[24], referee[24], referrer_sv[24], referee_sv[24];
    char referrer_days[24], referee_days[24];
    snprintf(referrer_days, sizeof(referrer_days), "%lld", (long long)c->referrer->card_days);
    snprintf(referee_days, sizeof(referee_days), "%lld", (long long)c->referee->card_days);
    snprintf(at, sizeof(at), "%lld", (long long)env->occurred_at_us);
    snprintf(lock, sizeof(lock), "%lld", (long long)c->lock_days);
    snprintf(referrer, sizeof(referrer), "%lld", (long long)c->referrer->points);
    snprintf(referee, sizeof(referee), "%lld", (long long)c->referee->points);
    snprintf(referrer_sv, sizeof(referrer_sv), "%lld", (long long)c->referrer->stored_value_bonus);
    snprintf(referee_sv, sizeof(referee_sv), "%lld", (long long)c->referee->stored_value_bonus);
    const char *p[15] = {env->tenant_id,
                         c->change_id,
                         at,
                         c->enabled ? "t" : "f",
                         lock,
                         referrer,
                         referee,
                         referrer_sv,
                         referee_sv,
                         c->referrer->coupon_template_id,
                         c->referee->coupon_template_id,
                         c->referrer->card_product_id,
                         referrer_days,
                         c->referee->card_product_id,
                         referee_days};
    PGresult *res = db_query(pg,
                             "INSERT INTO referral_rules (tenant_id, change_id, effective_from_us, "
                             "enabled, lock_days, referrer_points, referee_points, "
                             "referrer_sv_bonus, referee_sv_bonus, referrer_coupon_template, "
                             "referee_coupon_template, referrer_card_product, referrer_card_days, "
                             "referee_card_product, referee_card_days) "
                             "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
                             "$14, $15) ON CONFLICT (tenant_id, change_id) DO NOTHING",
                             15, p, err, err_len, NULL);
    PQclear(res);
    if (res)
        log_fields(LOG_INFO, "referral rule changed", "tenant", env->tenant_id, "change_id",
                   c->change_id, NULL);
    return res ? 0 : -1;
}

/* Step 2: the referee's row. */
static int store_referral(PGconn *pg, const Envelope *env, char *err, size_t err_len)
{
    const char *p[4] = {env->tenant_id, env->member_id, env->member_registered->referrer_member_id,
                        env->branch_id};
    PGresult *res = db_query(pg,
                             "INSERT INTO referrals (tenant_id, referee_member_id, "
                             "referrer_member_id, branch_id) VALUES ($1, $2, $3, $4) "
                             "ON CONFLICT (tenant_id, referee_member_id) DO NOTHING",
                             4, p, err, err_len, NULL);
    PQclear(res);
    return res ? 0 : -1;
}

/* The rule in force at j0.at for each row of j0 (t, m, pc, ev, at), as j. */
#define RULE_AT_J0                                                                                 \
    "j AS (SELECT j0.*, r.change_id, r.enabled, r.lock_days, r.referrer_points, "                  \
    "r.referee_points FROM j0 LEFT JOIN LATERAL (SELECT * FROM referral_rules rr "                 \
    "WHERE rr.tenant_id = j0.t AND rr.effective_from_us <= j0.at "                                 \
    "ORDER BY rr.effective_from_us DESC, rr.change_id DESC LIMIT 1) r ON true) "

/* Step 3's lock of the referrals named by j (rows still 'registered'
 * only); $N is the microseconds of a day. */
#define LOCK_FROM_J(day_param)                                                                     \
    "UPDATE referrals f SET status = CASE WHEN coalesce(j.enabled, false) "                        \
    "THEN 'locked' ELSE 'no_reward' END, purchase_command_id = j.pc, "                             \
    "purchase_event_id = j.ev, purchased_at_us = j.at, "                                           \
    "due_at_us = j.at + coalesce(j.lock_days, 0) * " day_param "::bigint, "                        \
    "rule_change_id = j.change_id, "                                                               \
    "referrer_points = j.referrer_points, referee_points = j.referee_points "                      \
    "FROM j WHERE f.tenant_id = j.t AND f.referee_member_id = j.m "                                \
    "AND f.status = 'registered'"

/* The earliest paid purchase of each member of the batch's columns. */
#define BATCH_FIRST_PURCHASES                                                                      \
    "j0 AS (SELECT DISTINCT ON (t, m) t, m, pc, ev, at FROM unnest($1::text[], "                   \
    "$2::text[], $3::text[], $4::text[], $5::bigint[]) AS x(t, m, pc, ev, at) "                    \
    "ORDER BY t, m, at, pc) "

/* Step 3 for the batch's paid purchases, one statement: the earliest
 * purchase of each referee in the batch, under the rule in force at its
 * time; only rows still 'registered' move. */
static int lock_first_purchases(PGconn *pg, const char *const *p, char *err, size_t err_len)
{
    char day[24];
    snprintf(day, sizeof(day), "%lld", (long long)US_PER_DAY);
    const char *params[6] = {p[0], p[1], p[2], p[3], p[4], day};
    PGresult *res = db_query(pg, "WITH " BATCH_FIRST_PURCHASES ", " RULE_AT_J0 LOCK_FROM_J("$6"), 6,
                             params, err, err_len, NULL);
    PQclear(res);
    return res ? 0 : -1;
}

/* The batch's first purchases of members with no referral and no applied
 * registration: remembered until their registration comes (an earlier
 * purchase met later replaces a remembered one). */
static int remember_first_purchases(PGconn *pg, const char *const *p, char *err, size_t err_len)
{
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)clock_now_us());
    const char *params[6] = {p[0], p[1], p[2], p[3], p[4], now};
    PGresult *res = db_query(
        pg,
        "WITH " BATCH_FIRST_PURCHASES
        "INSERT INTO referral_first_purchases AS fp (tenant_id, member_id, "
        "purchase_command_id, purchase_event_id, occurred_at_us, remembered_at_us) "
        "SELECT t, m, pc, ev, at, $6 FROM j0 WHERE NOT EXISTS (SELECT 1 FROM referrals f "
        "WHERE f.tenant_id = j0.t AND f.referee_member_id = j0.m) "
        "AND NOT EXISTS (SELECT 1 FROM engage_members e WHERE e.tenant_id = j0.t "
        "AND e.member_id = j0.m AND e.registered_at_us IS NOT NULL) "
        "ON CONFLICT (tenant_id, member_id) DO UPDATE SET "
        "purchase_command_id = excluded.purchase_command_id, "
        "purchase_event_id = excluded.purchase_event_id, occurred_at_us = excluded.occurred_at_us "
        "WHERE (excluded.occurred_at_us, excluded.purchase_command_id) < "
        "(fp.occurred_at_us, fp.purchase_command_id)",
        6, params, err, err_len, NULL);
    PQclear(res);
    return res ? 0 : -1;
}

int referrals_forget_stale(PGconn *pg, int64_t now_us, char *err, size_t err_len)
{
    char before[24], limit[24];
    snprintf(before, sizeof(before), "%lld",
             (long long)(now_us - REFERRAL_REMEMBER_DAYS * US_PER_DAY));
    snprintf(limit, sizeof(limit), "%d", REFERRAL_FORGET_PER_ROUND);
    const char *p[2] = {before, limit};
    PGresult *res = db_query(pg,
                             "DELETE FROM referral_first_purchases WHERE ctid IN (SELECT ctid "
                             "FROM referral_first_purchases WHERE remembered_at_us < $1 "
                             "LIMIT $2::int)",
                             2, p, err, err_len, NULL);
    PQclear(res);
    return res ? 0 : -1;
}

/* The batch's registrations (tenant, member columns): each takes its
 * member's remembered purchase away; a referral still 'registered' (its
 * registration named a referrer) is locked from it as step 3 would have. */
static int claim_remembered_purchases(PGconn *pg, const char *tenants, const char *members,
                                      char *err, size_t err_len)
{
    char day[24];
    snprintf(day, sizeof(day), "%lld", (long long)US_PER_DAY);
    const char *p[3] = {tenants, members, day};
    PGresult *res = db_query(
        pg,
        "WITH reg AS (SELECT DISTINCT t, m FROM unnest($1::text[], $2::text[]) AS x(t, m)), "
        "j0 AS (DELETE FROM referral_first_purchases fp USING reg WHERE fp.tenant_id = reg.t "
        "AND fp.member_id = reg.m RETURNING fp.tenant_id AS t, fp.member_id AS m, "
        "fp.purchase_command_id AS pc, fp.purchase_event_id AS ev, fp.occurred_at_us AS "
        "at), " RULE_AT_J0 LOCK_FROM_J("$3"),
        3, p, err, err_len, NULL);
    PQclear(res);
    return res ? 0 : -1;
}

/* Serialises the batch's members with any other campaign instance's batch
 * (scale-out: a member's registration and purchase may be on partitions
 * of two instances): without it both could miss the other's uncommitted
 * row, the purchase remembered and the registration finding nothing.
 * Transaction locks, taken in one sorted pass (no deadlock between two
 * batches); each statement after it sees what the other committed. */
static int lock_members(PGconn *pg, const char *const *p, char *err, size_t err_len)
{
    char cls[16];
    snprintf(cls, sizeof(cls), "%d", REFERRAL_MEMBER_LOCK_CLASS);
    const char *params[5] = {p[0], p[1], p[2], p[3], cls};
    PGresult *res = db_query(pg,
                             "SELECT count(pg_advisory_xact_lock($5::int, k)) FROM (SELECT "
                             "DISTINCT hashtext(t || ':' || m) AS k FROM (SELECT * FROM "
                             "unnest($1::text[], $2::text[]) UNION ALL SELECT * FROM "
                             "unnest($3::text[], $4::text[])) AS x(t, m) ORDER BY k) s",
                             5, params, err, err_len, NULL);
    PQclear(res);
    return res ? 0 : -1;
}

/* After the batch's facts were read: registrations claim remembered
 * purchases, then the batch's purchases lock or are remembered. */
static int apply_collected(PGconn *pg, struct db_array *cols, struct db_array *reg, char *err,
                           size_t err_len)
{
    if (reg[0].count == 0 && cols[0].count == 0)
        return 0;
    const char *r[2] = {db_array_finish(&reg[0]), db_array_finish(&reg[1])};
    const char *p[5] = {db_array_finish(&cols[0]), db_array_finish(&cols[1]),
                        db_array_finish(&cols[2]), db_array_finish(&cols[3]),
                        db_array_finish(&cols[4])};
    const char *members[4] = {r[0], r[1], p[0], p[1]};
    if (lock_members(pg, members, err, err_len) < 0)
        return -1;
    if (reg[0].count > 0 && claim_remembered_purchases(pg, r[0], r[1], err, err_len) < 0)
        return -1;
    if (cols[0].count == 0)
        return 0;
    if (lock_first_purchases(pg, p, err, err_len) < 0)
        return -1;
    return remember_first_purchases(pg, p, err, err_len);
}

/* Decodes what may concern referrals and applies it in arrival order of
 * kind (rules, registrations, then purchases). */
int referrals_apply_batch(PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len)
{
    struct db_array cols[5], reg[2];
    for (int k = 0; k < 5; k++)
        db_array_init(&cols[k]);
    db_array_init(&reg[0]);
    db_array_init(&reg[1]);
    Envelope **envs = calloc(b->count + 1, sizeof(*envs));
    assert(envs);
    int rc = 0;
    for (size_t i = 0; i < b->count; i++) {
        if (b->poison[i] || !may_concern_referrals(b->msgs[i]))
            continue;
        char why[128];
        envs[i] = envelope_decode(b->msgs[i]->payload, b->msgs[i]->len, why, sizeof(why));
    }
    for (size_t i = 0; rc == 0 && i < b->count; i++) {
        const Envelope *env = envs[i];
        if (!env)
            continue;
        switch (env->payload_case) {
        case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFERRAL_RULES_CHANGED:
            if (!rule_ok(env->referral_rules_changed))
                pipeline_mark_poison(b, i, "referral rule out of range");
            else
                rc = store_rule(pg, env, err, err_len);
            break;
        case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_REGISTERED:
            if (env->member_id[0]) { /* with or without a referrer */
                db_array_add(&reg[0], env->tenant_id);
                db_array_add(&reg[1], env->member_id);
            }
            if (env->member_id[0] && env->member_registered->referrer_member_id[0] &&
                strcmp(env->member_id, env->member_registered->referrer_member_id) != 0)
                rc = store_referral(pg, env, err, err_len);
            break;
        case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED:
            /* paid: money changed hands, not only points */
            if (env->purchase_recorded->charged - env->purchase_recorded->points_value <= 0 ||
                !env->member_id[0] || !env->purchase_recorded->command_id[0])
                break;
            db_array_add(&cols[0], env->tenant_id);
            db_array_add(&cols[1], env->member_id);
            db_array_add(&cols[2], env->purchase_recorded->command_id);
            db_array_add(&cols[3], env->event_id);
            db_array_add_int(&cols[4], env->occurred_at_us);
            break;
        default:
            break;
        }
    }
    if (rc == 0)
        rc = apply_collected(pg, cols, reg, err, err_len);
    for (int k = 0; k < 5; k++)
        db_array_free(&cols[k]);
    db_array_free(&reg[0]);
    db_array_free(&reg[1]);
    for (size_t i = 0; i < b->count; i++)
        envelope_free(envs[i]);
    free(envs);
    return rc;
}
