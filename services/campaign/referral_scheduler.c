/* The referral scheduler: a thread of the campaign service that, every
 * interval, decides the referrals whose lock period is over (due_at_us at
 * or before clock_now_us(), so the test clock moves it), after forgetting
 * stale purchases remembered before their registration (referrals.c):
 *
 *  - the referee's first purchase was refunded (ledger.read_refunds has a
 *    refund of it): status 'refunded', nobody is rewarded;
 *  - else status 'rewarded', and in the same transaction the outbox gets
 *    one AdjustPoints per side with points (ledger-commands, command id
 *    the UUIDv8 of "referral:<tenant>:<referee>:<side>", reason
 *    "referral:<rule change id>:<side>"), one TopUpStoredValue bonus
 *    grant per side with a stored-value bonus (id "...:<side>:sv_bonus")
 *    and one IssueCoupon per side with a coupon template (id and coupon
 *    id "...:<side>:coupon", the terms from ingest.read_coupon_templates),
 *    one NotifyRequest referral.reward per side (request id
 *    "referral.reward:<purchase event id>:<side>"), and the referrer's
 *    ReferralCounted (member-events, keyed by the referrer) with its new
 *    count from referral_counts.
 *
 * Exactly once: a row leaves 'locked' in the transaction that writes its
 * events, rows are taken FOR UPDATE SKIP LOCKED, and only one instance
 * schedules (a session advisory lock, like the ledger's expiry.c). After
 * commit the thread relays its own rows and deletes them; a row it could
 * not deliver stays in the outbox and the pipeline's relay sends it once
 * its lease is over. The ledger and notification de-duplicate on the ids
 * above should a row be sent twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "campaign.h"
#include "clock/clock.h"
#include "db/db.h"
#include "events/campaign_types.h"
#include "events/card_types.h"
#include "events/codec.h"
#include "ids/uuid7.h"
#include "log/log.h"
#include "outbox/outbox.h"
#include "schedule/schedule.h"
#include "service/common.h"
#include "tessera/notification/v1/notification.pb-c.h"

#define REFERRALS_PER_ROUND 100 /* the LIMIT of the due query */
#define REFERRAL_EVENTS_MAX                                                                        \
    11 /* per referral: 2 x (points, bonus, coupon, days, notice), 1 count */
#define REFERRAL_FLUSH_MS 10000
#define REFERRAL_LOCK_KEY "tessera-campaign-referrals"
#define REFERRAL_ACTOR    "campaign-referrals"
#define REFERRAL_ID_MAX   (EVENT_ID_FIELD_MAX * 2 + 32)
#define REFERRAL_SOURCE   "/tessera/campaign"

struct referral_scheduler {
    const struct service_common_config *common;
    struct bus_config bus;
    char client_id[128];
    struct bus_producer *producer;
    PGconn *pg; /* the scheduler's session, for the round in hand */
    struct schedule schedule;
};

/* The events of one round, encoded (owned: freed by round_free). */
struct round_out {
    struct outbox_row rows[REFERRALS_PER_ROUND * REFERRAL_EVENTS_MAX];
    uint8_t *payloads[REFERRALS_PER_ROUND * REFERRAL_EVENTS_MAX];
    char *keys[REFERRALS_PER_ROUND * REFERRAL_EVENTS_MAX];
    size_t count;
};

static void round_free(struct round_out *o)
{
    for (size_t i = 0; i < o->count; i++) {
        free(o->payloads[i]);
        free(o->keys[i]);
    }
    o->count = 0;
}

/* Takes ownership of payload. */
static void round_add(struct round_out *o, const char *topic, const char *key, uint8_t *payload,
                      size_t len)
{
    if (!payload) { /* every field is bounded: cannot happen */
        log_fields(LOG_ERROR, "referral event does not encode", "topic", topic, NULL);
        return;
    }
    o->payloads[o->count] = payload;
    o->keys[o->count] = strdup(key);
    o->rows[o->count] = (struct outbox_row){
        .topic = topic, .key = o->keys[o->count], .payload = payload, .len = len};
    o->count++;
}

/* Columns of the due query. */
enum {
    C_TENANT,
    C_REFEREE,
    C_REFERRER,
    C_BRANCH,
    C_PURCHASE,
    C_EVENT,
    C_RULE,
    C_REFERRER_POINTS,
    C_REFEREE_POINTS,
    C_REFUNDED,
    C_REFERRER_SV,
    C_REFEREE_SV,
    C_REFERRER_COUPON, /* the 9 columns of COUPON_COLUMNS, then the referee's */
    C_REFEREE_COUPON = C_REFERRER_COUPON + 9,
    C_REFERRER_CARD = C_REFEREE_COUPON + 9, /* the 3 columns of CARD_COLUMNS, then the referee's */
    C_REFEREE_CARD = C_REFERRER_CARD + 3
};
/* A side's card days: the product ('' none), the days, and whether the
 * member holds a time card of it valid now ($1, the scheduler's clock). */
enum { D_PRODUCT, D_DAYS, D_ACTIVE };
#define CARD_COLUMNS(side)                                                                         \
    "coalesce(rr." side "_card_product, ''), coalesce(rr." side "_card_days, 0), "                 \
    "EXISTS (SELECT 1 FROM ledger.read_cards k WHERE k.tenant_id = r.tenant_id "                   \
    "AND k.member_id = r." side "_member_id AND k.product_id = rr." side "_card_product "          \
    "AND k.kind IN ('time', 'subscription') AND k.valid_to_us > $1::bigint)"
/* A side's coupon template terms (t: its alias), "" / 0 when none. */
enum { K_NAME, K_KIND, K_VALUE, K_PCT, K_SKU, K_MIN, K_DAYS, K_FROM, K_TO };
#define COUPON_COLUMNS(t)                                                                          \
    "coalesce(" t ".name, ''), coalesce(" t ".kind, ''), coalesce(" t ".value, 0), "               \
    "coalesce(" t ".percent_bp, 0), coalesce(" t ".free_sku, ''), coalesce(" t ".min_spend, 0), "  \
    "coalesce(" t ".valid_days, 0), coalesce(" t ".valid_from_us, 0), "                            \
    "coalesce(" t ".valid_to_us, 0)"

/* clang-format off */
static const char DUE_SQL[] =
    "SELECT r.tenant_id, r.referee_member_id, r.referrer_member_id, r.branch_id, "
    "r.purchase_command_id, r.purchase_event_id, r.rule_change_id, r.referrer_points, "
    "r.referee_points, EXISTS (SELECT 1 FROM ledger.read_refunds f "
    "WHERE f.tenant_id = r.tenant_id AND f.purchase_command_id = r.purchase_command_id "
    "AND f.member_id = r.referee_member_id), coalesce(rr.referrer_sv_bonus, 0), "
    "coalesce(rr.referee_sv_bonus, 0), " COUPON_COLUMNS("ta") ", " COUPON_COLUMNS("tb") ", "
    CARD_COLUMNS("referrer") ", " CARD_COLUMNS("referee") " "
    "FROM referrals r LEFT JOIN referral_rules rr ON rr.tenant_id = r.tenant_id "
    "AND rr.change_id = r.rule_change_id "
    "LEFT JOIN ingest.read_coupon_templates ta ON ta.tenant_id = r.tenant_id "
    "AND ta.template_id = rr.referrer_coupon_template "
    "LEFT JOIN ingest.read_coupon_templates tb ON tb.tenant_id = r.tenant_id "
    "AND tb.template_id = rr.referee_coupon_template "
    "WHERE r.status = 'locked' AND r.due_at_us <= $1::bigint "
    "ORDER BY r.due_at_us LIMIT 100 FOR UPDATE OF r SKIP LOCKED";
/* clang-format on */
_Static_assert(REFERRALS_PER_ROUND == 100, "DUE_SQL's LIMIT");

static void meta_for(const PGresult *res, int i, const char *member_id, struct event_meta *m)
{
    *m = (struct event_meta){.tenant_id = PQgetvalue(res, i, C_TENANT),
                             .branch_id = PQgetvalue(res, i, C_BRANCH),
                             .member_id = member_id,
                             .causation_id = PQgetvalue(res, i, C_EVENT),
                             .correlation_id = PQgetvalue(res, i, C_EVENT),
                             .actor_kind = "service",
                             .actor_id = REFERRAL_ACTOR};
}

/* One side of a referral: who, and what the rule gives. */
struct side {
    const char *name, *member; /* "referrer" | "referee" */
    int64_t points, sv_bonus;
    int coupon; /* the first of its COUPON_COLUMNS */
    int card;   /* the first of its CARD_COLUMNS */
};

/* The days the side is given: the rule's, when the member holds an
 * active card of the product; 0 otherwise. */
static int64_t side_days(const PGresult *res, int i, const struct side *s)
{
    return strcmp(PQgetvalue(res, i, s->card + D_ACTIVE), "t") == 0
               ? db_int_at(res, i, s->card + D_DAYS)
               : 0;
}

/* Why the rule's days were not given ("" when given or none in the rule). */
static const char *side_card_note(const PGresult *res, int i, const struct side *s)
{
    return db_int_at(res, i, s->card + D_DAYS) > 0 && side_days(res, i, s) == 0 ? "no_active_card"
                                                                                : "";
}

/* The ledger takes UUIDs: the command id of one reward of one side,
 * derived from the referral, the side and the reward's kind. */
static void reward_command_id(const PGresult *res, int i, const struct side *s, const char *kind,
                              char out[UUID_STR_SIZE])
{
    char name[REFERRAL_ID_MAX];
    snprintf(name, sizeof(name), "referral:%s:%s:%s%s", PQgetvalue(res, i, C_TENANT),
             PQgetvalue(res, i, C_REFEREE), s->name, kind);
    uuid8_from_name(name, out);
}

static void emit(struct round_out *o, const char *topic, const char *member, Envelope *env)
{
    size_t len = 0;
    uint8_t *bin = envelope_encode(env, &len);
    round_add(o, topic, member, bin, len);
}

static void side_points(struct round_out *o, const PGresult *res, int i, const struct side *s)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    char command_id[UUID_STR_SIZE], reason[REFERRAL_ID_MAX];
    reward_command_id(res, i, s, "", command_id); /* the id points rewards always had */
    snprintf(reason, sizeof(reason), "referral:%s:%s", PQgetvalue(res, i, C_RULE), s->name);
    AdjustPoints adjust;
    meta_for(res, i, s->member, &meta);
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__adjust_points__init(&adjust);
    adjust.command_id = command_id;
    adjust.points = s->points;
    adjust.reason = reason;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS;
    env.adjust_points = &adjust;
    emit(o, TOPIC_LEDGER_COMMANDS, s->member, &env);
}

/* A stored-value bonus: a TopUpStoredValue of amount 0 with bonus_grant. */
static void side_sv_bonus(struct round_out *o, const PGresult *res, int i, const struct side *s)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    char command_id[UUID_STR_SIZE], reason[REFERRAL_ID_MAX];
    reward_command_id(res, i, s, ":sv_bonus", command_id);
    snprintf(reason, sizeof(reason), "referral:%s:%s", PQgetvalue(res, i, C_RULE), s->name);
    TopUpStoredValue grant;
    meta_for(res, i, s->member, &meta);
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__top_up_stored_value__init(&grant);
    grant.command_id = command_id;
    grant.payment_method = "reward";
    grant.bonus_grant = s->sv_bonus;
    grant.grant_reason = reason;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE;
    env.top_up_stored_value = &grant;
    emit(o, TOPIC_LEDGER_COMMANDS, s->member, &env);
}

/* A coupon with the template's terms (coupon id = command id). */
static void side_coupon(struct round_out *o, const PGresult *res, int i, const struct side *s)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    char command_id[UUID_STR_SIZE];
    reward_command_id(res, i, s, ":coupon", command_id);
    IssueCoupon ic;
    meta_for(res, i, s->member, &meta);
    envelope_init(&env, &actor, &meta);
    tessera__cards__v1__issue_coupon__init(&ic);
    ic.command_id = ic.coupon_id = command_id;
    ic.name = (char *)PQgetvalue(res, i, s->coupon + K_NAME);
    ic.kind = (char *)PQgetvalue(res, i, s->coupon + K_KIND);
    ic.value = strcmp(ic.kind, "value") == 0 ? db_int_at(res, i, s->coupon + K_VALUE) : 0;
    ic.percent_bp = strcmp(ic.kind, "percent") == 0 ? db_int_at(res, i, s->coupon + K_PCT) : 0;
    ic.free_sku = (char *)PQgetvalue(res, i, s->coupon + K_SKU);
    ic.min_spend = db_int_at(res, i, s->coupon + K_MIN);
    ic.valid_days = db_int_at(res, i, s->coupon + K_DAYS);
    ic.valid_from_us = db_int_at(res, i, s->coupon + K_FROM);
    ic.valid_to_us = db_int_at(res, i, s->coupon + K_TO);
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_COUPON;
    env.issue_coupon = &ic;
    emit(o, TOPIC_LEDGER_COMMANDS, s->member, &env);
}

/* Days on the member's active card of the product (the ledger picks it;
 * should it have expired since the check, the ledger refuses with
 * no_active_card and its verdict records why). */
static void side_card_days(struct round_out *o, const PGresult *res, int i, const struct side *s)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    char command_id[UUID_STR_SIZE], reason[REFERRAL_ID_MAX];
    reward_command_id(res, i, s, ":card_days", command_id);
    snprintf(reason, sizeof(reason), "referral:%s:%s", PQgetvalue(res, i, C_RULE), s->name);
    ExtendCard x;
    meta_for(res, i, s->member, &meta);
    envelope_init(&env, &actor, &meta);
    tessera__cards__v1__extend_card__init(&x);
    x.command_id = command_id;
    x.product_id = (char *)PQgetvalue(res, i, s->card + D_PRODUCT);
    x.days = side_days(res, i, s);
    x.reason = reason;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXTEND_CARD;
    env.extend_card = &x;
    emit(o, TOPIC_LEDGER_COMMANDS, s->member, &env);
}

static void side_notice(struct round_out *o, const PGresult *res, int i, const struct side *s,
                        bool coupon)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    char request_id[REFERRAL_ID_MAX];
    snprintf(request_id, sizeof(request_id), "referral.reward:%s:%s", PQgetvalue(res, i, C_EVENT),
             s->name);
    Tessera__Notification__V1__NotifyRequest note;
    Tessera__Notification__V1__Variable v[5], *vars[5];
    size_t n = 0;
    for (int k = 0; k < 5; k++)
        tessera__notification__v1__variable__init(&v[k]), vars[k] = &v[k];
    v[n].name = "reward.points",
    v[n].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_NUMBER;
    v[n++].number = s->points;
    v[n].name = "referral.role", v[n].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
    v[n++].text = (char *)s->name;
    if (s->sv_bonus > 0) {
        v[n].name = "reward.amount";
        v[n].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_MONEY_MINOR;
        v[n++].money_minor = s->sv_bonus;
    }
    if (coupon) {
        v[n].name = "reward.name";
        v[n].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
        v[n++].text = (char *)PQgetvalue(res, i, s->coupon + K_NAME);
    }
    if (side_days(res, i, s) > 0) {
        v[n].name = "reward.days";
        v[n].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_NUMBER;
        v[n++].number = side_days(res, i, s);
    }
    meta_for(res, i, s->member, &meta);
    envelope_init(&env, &actor, &meta);
    tessera__notification__v1__notify_request__init(&note);
    note.request_id = request_id;
    note.template_ = "referral.reward";
    note.purpose = "transactional";
    note.priority = "normal";
    note.n_variables = n;
    note.variables = vars;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST;
    env.notify_request = &note;
    emit(o, TOPIC_NOTIFY_REQUESTS, s->member, &env);
}

/* One side's rewards (each command once: ids derived from the referral)
 * and its NotifyRequest. A coupon template the tenant no longer has is
 * left out. */
static void reward_side(struct round_out *o, const PGresult *res, int i, const struct side *s)
{
    bool coupon = PQgetvalue(res, i, s->coupon + K_KIND)[0] != '\0';
    int64_t days = side_days(res, i, s);
    if (s->points > 0)
        side_points(o, res, i, s);
    if (s->sv_bonus > 0)
        side_sv_bonus(o, res, i, s);
    if (coupon)
        side_coupon(o, res, i, s);
    if (days > 0)
        side_card_days(o, res, i, s);
    if (s->points > 0 || s->sv_bonus > 0 || coupon || days > 0)
        side_notice(o, res, i, s, coupon);
}

/* The referrer's new count and its ReferralCounted. 0 or -1 with err. */
static int count_referral(PGconn *pg, struct round_out *o, const PGresult *res, int i, char *err,
                          size_t err_len)
{
    const char *p[2] = {PQgetvalue(res, i, C_TENANT), PQgetvalue(res, i, C_REFERRER)};
    PGresult *c = db_query(pg,
                           "INSERT INTO referral_counts (tenant_id, member_id, successful) "
                           "VALUES ($1, $2, 1) ON CONFLICT (tenant_id, member_id) DO UPDATE "
                           "SET successful = referral_counts.successful + 1 RETURNING successful",
                           2, p, err, err_len, NULL);
    if (!c)
        return -1;
    struct event_meta meta;
    Envelope env;
    Actor actor;
    ReferralCounted counted;
    meta_for(res, i, PQgetvalue(res, i, C_REFERRER), &meta);
    envelope_init(&env, &actor, &meta);
    tessera__campaign__v1__referral_counted__init(&counted);
    counted.referrer_member_id = (char *)PQgetvalue(res, i, C_REFERRER);
    counted.referee_member_id = (char *)PQgetvalue(res, i, C_REFEREE);
    counted.purchase_command_id = (char *)PQgetvalue(res, i, C_PURCHASE);
    counted.rule_change_id = (char *)PQgetvalue(res, i, C_RULE);
    counted.successful_referrals = db_int_at(c, 0, 0);
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFERRAL_COUNTED;
    env.referral_counted = &counted;
    size_t len = 0;
    uint8_t *bin = envelope_encode(&env, &len);
    round_add(o, TOPIC_MEMBER_EVENTS, PQgetvalue(res, i, C_REFERRER), bin, len);
    PQclear(c);
    return 0;
}

/* Decides row i of the due query inside the round's transaction. */
static int decide(PGconn *pg, struct round_out *o, const PGresult *res, int i, int64_t now_us,
                  char *err, size_t err_len)
{
    bool refunded = strcmp(PQgetvalue(res, i, C_REFUNDED), "t") == 0;
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)now_us);
    struct side referrer = {"referrer",
                            PQgetvalue(res, i, C_REFERRER),
                            db_int_at(res, i, C_REFERRER_POINTS),
                            db_int_at(res, i, C_REFERRER_SV),
                            C_REFERRER_COUPON,
                            C_REFERRER_CARD};
    struct side referee = {"referee",
                           PQgetvalue(res, i, C_REFEREE),
                           db_int_at(res, i, C_REFEREE_POINTS),
                           db_int_at(res, i, C_REFEREE_SV),
                           C_REFEREE_COUPON,
                           C_REFEREE_CARD};
    const char *p[6] = {PQgetvalue(res, i, C_TENANT),
                        PQgetvalue(res, i, C_REFEREE),
                        refunded ? "refunded" : "rewarded",
                        now,
                        refunded ? "" : side_card_note(res, i, &referrer),
                        refunded ? "" : side_card_note(res, i, &referee)};
    PGresult *u = db_query(pg,
                           "UPDATE referrals SET status = $3, decided_at_us = $4::bigint, "
                           "referrer_card_note = $5, referee_card_note = $6 "
                           "WHERE tenant_id = $1 AND referee_member_id = $2 AND status = 'locked'",
                           6, p, err, err_len, NULL);
    if (!u)
        return -1;
    PQclear(u);
    log_fields(LOG_INFO, "referral decided", "tenant", p[0], "referee", p[1], "status", p[2],
               "referrer_card_note", p[4], "referee_card_note", p[5], NULL);
    if (refunded)
        return 0;
    reward_side(o, res, i, &referrer);
    reward_side(o, res, i, &referee);
    return count_referral(pg, o, res, i, err, err_len);
}

/* Decides every due referral in one transaction with its outbox rows;
 * their ids go to ids. Returns the rows' count, or -1 (rolled back). */
static int decide_due(struct referral_scheduler *s, struct round_out *o, int64_t *ids,
                      int64_t now_us)
{
    char err[256], now[24];
    snprintf(now, sizeof(now), "%lld", (long long)now_us);
    if (db_begin(s->pg, err, sizeof(err)) < 0)
        goto fail;
    const char *p[1] = {now};
    PGresult *res = db_query(s->pg, DUE_SQL, 1, p, err, sizeof(err), NULL);
    if (!res)
        goto rollback;
    int rc = 0;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++)
        rc = decide(s->pg, o, res, i, now_us, err, sizeof(err));
    PQclear(res);
    if (rc < 0 ||
        (o->count > 0 && outbox_append(s->pg, o->rows, o->count, ids, err, sizeof(err)) < 0))
        goto rollback;
    if (db_commit(s->pg, err, sizeof(err)) < 0)
        goto fail;
    return (int)o->count;
rollback:
    db_rollback(s->pg);
fail:
    log_fields(LOG_WARN, "referral scheduler: round failed; next round retries", "error", err,
               NULL);
    return -1;
}

/* Sends the committed rows and deletes those Kafka acknowledged. */
static void relay(struct referral_scheduler *s, struct round_out *o, const int64_t *ids)
{
    rd_kafka_resp_err_t results[REFERRALS_PER_ROUND * REFERRAL_EVENTS_MAX];
    int64_t done[REFERRALS_PER_ROUND * REFERRAL_EVENTS_MAX];
    size_t sent = 0, acked = 0;
    for (size_t i = 0; i < o->count; i++) {
        results[i] = RD_KAFKA_RESP_ERR__IN_PROGRESS;
        if (outbox_produce(s->producer, REFERRAL_SOURCE, &o->rows[i], &results[i]) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            results[i] = RD_KAFKA_RESP_ERR__FAIL;
        else
            sent++;
    }
    /* reports write into results: every one must land before it goes */
    while (sent > 0 && bus_producer_flush(s->producer, REFERRAL_FLUSH_MS) < 0)
        log_warn("referral scheduler: Kafka is slow to acknowledge; still waiting");
    for (size_t i = 0; i < o->count; i++)
        if (results[i] == RD_KAFKA_RESP_ERR_NO_ERROR)
            done[acked++] = ids[i];
    char err[256];
    if (acked > 0 && outbox_delete(s->pg, done, acked, err, sizeof(err)) < 0)
        log_fields(LOG_WARN, "referral scheduler: relayed rows not deleted (sent again later)",
                   "error", err, NULL);
}

/* A round of the scheduler (schedule.h): the referrals due at now_us. */
static void scheduler_round(void *ctx, PGconn *pg, int64_t now_us)
{
    struct referral_scheduler *s = ctx;
    static struct round_out out; /* large: not on the thread's stack */
    static int64_t ids[REFERRALS_PER_ROUND * REFERRAL_EVENTS_MAX];
    s->pg = pg;
    char err[256];
    if (referrals_forget_stale(pg, now_us, err, sizeof(err)) < 0)
        log_fields(LOG_WARN, "referral scheduler: remembered purchases not forgotten; next round",
                   "error", err, NULL);
    if (decide_due(s, &out, ids, now_us) > 0)
        relay(s, &out, ids);
    round_free(&out);
}

int referral_scheduler_start(const struct service_common_config *c, long long interval_ms)
{
    static struct referral_scheduler s;
    char err[256];
    s.common = c;
    service_bus_config(c, "campaign-referrals", s.client_id, sizeof(s.client_id), &s.bus);
    s.producer = bus_producer_new(&s.bus, NULL, NULL, NULL, err, sizeof(err));
    if (!s.producer) {
        log_fields(LOG_ERROR, "referral scheduler: cannot create a producer", "error", err, NULL);
        return -1;
    }
    s.schedule = (struct schedule){.name = "referral scheduler",
                                   .pg_dsn = c->pg_dsn,
                                   .schema = "campaign",
                                   .app_name = "tessera-campaign-referrals",
                                   .statement_timeout_ms = (int)c->pg_statement_timeout_ms,
                                   .lock_key = REFERRAL_LOCK_KEY,
                                   .interval_ms = interval_ms,
                                   .round = scheduler_round,
                                   .ctx = &s};
    return schedule_start(&s.schedule);
}
