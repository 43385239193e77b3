/* Earning points for purchases, inside each batch's transaction:
 *
 *  1. EarningRulesChanged facts (member-events, keyed by tenant) become
 *     rule versions in earning_rules, each in force from its envelope's
 *     occurred_at (when ingest accepted the change).
 *  2. Every PurchaseRecorded with charged > 0 (ledger-events; the ledger
 *     emits the fact only for a posted purchase) is matched with the rule
 *     version in force when the purchase was recorded (its occurred_at),
 *     whenever this service gets to it: a campaign that lags or replays
 *     earns old purchases under the rules of their time.
 *  3. A purchase that earns points gets a row in earnings, keyed by tenant
 *     and the purchase's command id, and only the rows this batch really
 *     inserts emit an EarnPoints command (ledger-commands, keyed by member,
 *     through the outbox that commits with the offsets). A fact delivered
 *     twice (an outbox relayed again, a replay) finds its row and emits
 *     nothing; the command id "earn:<purchase command id>" makes the
 *     ledger apply it once even if the command itself is relayed twice.
 *
 * Between 1 and 2 a purchase recorded after a change this service has not
 * stored yet (its event is late) waits instead (earning_order.h), and
 * purchases that waited for changes stored now join the batch's.
 *
 * A fact that cannot be applied (a rule out of bounds, a purchase without
 * a member) goes to dead-letter; the tally has counted it already. */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "campaign.h"
#include "db/db.h"
#include "earning_order.h"
#include "engage.h"
#include "events/campaign_types.h"
#include "events/codec.h"
#include "log/log.h"
#include "rules_earning.h"

#define EARN_COMMAND_ID_MAX EVENT_ID_FIELD_MAX
#define EARN_ACTOR_ID       "campaign"
/* Item categories a promotion is matched against (ingest takes 200 items). */
#define EARNING_PROMOTION_ITEMS_MAX 256

/* A purchase of the batch that may earn. */
struct purchase_seen {
    size_t msg;          /* index in the batch; unused when released */
    const Envelope *env; /* borrowed from the batch's decoded envelopes */
    bool released;       /* it waited in deferred_purchases, not a message of the batch */
    bool waits;          /* a rule change of its time is not stored yet: deferred */
    bool has_rule;
    char change_id[EVENT_ID_FIELD_MAX];
    int64_t points;
    bool emitted;
};

/* Decoded envelopes of one batch (NULL where not ours), and what they
 * became. Freed by batch_free. */
struct earning_batch {
    Envelope **envs;
    size_t count;
    Envelope **released; /* purchases that waited and may earn now */
    size_t released_count;
    struct purchase_seen *purchases;
    size_t purchase_count;
};

static void batch_free(struct earning_batch *e)
{
    for (size_t i = 0; i < e->count; i++)
        envelope_free(e->envs[i]);
    for (size_t i = 0; i < e->released_count; i++)
        envelope_free(e->released[i]);
    free(e->envs);
    free(e->released);
    free(e->purchases);
}

/* A purchase that cannot earn: dead-lettered when it is a message of the
 * batch; one that waited is only logged (its message was consumed). */
static void purchase_refuse(struct pipeline_batch *b, const struct purchase_seen *s,
                            const char *reason)
{
    if (!s->released)
        pipeline_mark_poison(b, s->msg, reason);
    else
        log_fields(LOG_ERROR, "a purchase that waited for its rules cannot earn", "tenant",
                   s->env->tenant_id, "reason", reason, NULL);
}

/* The CloudEvents type header tells most messages apart without decoding
 * them (the tally decoded them already; member registrations and ledger
 * verdicts are most of the traffic). No header: decode and see. */
static bool may_concern_earning(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, "ce_type", &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || !v)
        return true;
    const char *purchase = tessera__ledger__v1__purchase_recorded__descriptor.name;
    const char *rules = tessera__campaign__v1__earning_rules_changed__descriptor.name;
    return (n == strlen(purchase) && memcmp(v, purchase, n) == 0) ||
           (n == strlen(rules) && memcmp(v, rules, n) == 0);
}

/* A received rule as the pure rule sees it; categories borrowed. */
static struct earning_rule rule_of(const PurchaseEarningRule *p)
{
    return (struct earning_rule){.enabled = p->enabled,
                                 .unit_amount = p->unit_amount,
                                 .points_per_unit = p->points_per_unit,
                                 .excluded_categories = (const char *const *)p->excluded_categories,
                                 .excluded_count = p->n_excluded_categories};
}

static bool categories_ok(const PurchaseEarningRule *p)
{
    for (size_t i = 0; i < p->n_excluded_categories; i++) {
        size_t len = strlen(p->excluded_categories[i]);
        if (len == 0 || len > 4 * EARNING_CATEGORY_LEN_MAX) /* UTF-8: up to 4 bytes a character */
            return false;
    }
    return true;
}

/* ------------------------------------------------------------ step 1 */
/* Inserts the batch's rule changes as versions; a change seen before (the
 * same change id) is left as it is. */
static int store_rule_changes(PGconn *pg, struct earning_batch *e, struct pipeline_batch *b,
                              char *err, size_t err_len)
{
    struct db_array tenants, ids, times, enabled, units, per_unit, categories;
    db_array_init(&tenants), db_array_init(&ids), db_array_init(&times);
    db_array_init(&enabled), db_array_init(&units), db_array_init(&per_unit);
    db_array_init(&categories);
    for (size_t i = 0; i < e->count; i++) {
        const Envelope *env = e->envs[i];
        if (!env ||
            env->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARNING_RULES_CHANGED)
            continue;
        const EarningRulesChanged *c = env->earning_rules_changed;
        struct earning_rule rule = c->purchase ? rule_of(c->purchase) : (struct earning_rule){0};
        if (!c->purchase || !c->change_id[0] || strlen(c->change_id) >= EVENT_ID_FIELD_MAX ||
            !rules_earning_rule_valid(&rule) || !categories_ok(c->purchase)) {
            pipeline_mark_poison(b, i, "earning rules out of range");
            /* nothing may wait for it (earning_order.h) */
            if (c->change_id[0] && strlen(c->change_id) < EVENT_ID_FIELD_MAX &&
                earning_order_refused(pg, env->tenant_id, c->change_id, err, err_len) < 0)
                return -1;
            continue;
        }
        json_t *cats = json_array();
        for (size_t k = 0; k < rule.excluded_count; k++)
            json_array_append_new(cats, json_string(rule.excluded_categories[k]));
        char *cats_text = json_dumps(cats, JSON_COMPACT);
        json_decref(cats);
        assert(cats_text); /* out of memory */
        db_array_add(&tenants, env->tenant_id);
        db_array_add(&ids, c->change_id);
        db_array_add_int(&times, env->occurred_at_us);
        db_array_add(&enabled, rule.enabled ? "t" : "f");
        db_array_add_int(&units, rule.unit_amount);
        db_array_add_int(&per_unit, rule.points_per_unit);
        db_array_add(&categories, cats_text);
        free(cats_text);
        log_fields(LOG_INFO, "earning rules changed", "tenant", env->tenant_id, "change_id",
                   c->change_id, NULL);
    }
    int rc = 0;
    if (tenants.count > 0) {
        const char *p[7] = {db_array_finish(&tenants),   db_array_finish(&ids),
                            db_array_finish(&times),     db_array_finish(&enabled),
                            db_array_finish(&units),     db_array_finish(&per_unit),
                            db_array_finish(&categories)};
        PGresult *res =
            db_query(pg,
                     "INSERT INTO earning_rules (tenant_id, change_id, effective_from_us, "
                     "purchase_enabled, purchase_unit_amount, purchase_points_per_unit, "
                     "purchase_excluded_categories) SELECT t, c, at, en, ua, ppu, cats::jsonb FROM "
                     "unnest($1::text[], $2::text[], $3::bigint[], $4::boolean[], $5::bigint[], "
                     "$6::bigint[], $7::text[]) AS u(t, c, at, en, ua, ppu, cats) "
                     "ON CONFLICT (tenant_id, change_id) DO NOTHING",
                     7, p, err, err_len, NULL);
        rc = res ? 0 : -1;
        PQclear(res);
    }
    db_array_free(&tenants), db_array_free(&ids), db_array_free(&times);
    db_array_free(&enabled), db_array_free(&units), db_array_free(&per_unit);
    db_array_free(&categories);
    return rc;
}

/* ------------------------------------------------------------ step 2 */
/* Collects the purchases that may earn: charged > 0, with a member and a
 * command id to derive the earning's id from. */
static void collect_purchases(struct earning_batch *e, struct pipeline_batch *b)
{
    e->purchases = calloc(e->count + e->released_count + 1, sizeof(*e->purchases));
    assert(e->purchases);
    for (size_t i = 0; i < e->released_count; i++)
        e->purchases[e->purchase_count++] =
            (struct purchase_seen){.env = e->released[i], .released = true};
    for (size_t i = 0; i < e->count; i++) {
        const Envelope *env = e->envs[i];
        if (!env ||
            env->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED ||
            env->purchase_recorded->charged <= 0)
            continue;
        size_t id_len = strlen(env->purchase_recorded->command_id);
        if (!env->member_id[0] || id_len == 0 ||
            id_len + strlen(EARNING_COMMAND_ID_PREFIX) >= EARN_COMMAND_ID_MAX) {
            pipeline_mark_poison(b, i, "purchase fact without member or command id");
            continue;
        }
        e->purchases[e->purchase_count++] = (struct purchase_seen){.msg = i, .env = env};
    }
}

/* The points times the largest promotion in force for the purchase
 * (columns 6, 7: the promotions JSON, the local day of month), at most
 * EARNING_POINTS_MAX. A promotion naming categories applies to the whole
 * purchase when one of its items is of one of them. */
static int64_t promoted_points(const struct purchase_seen *s, PGresult *res, int row)
{
    if (s->points == 0 || PQgetisnull(res, row, 6))
        return s->points;
    const PurchaseRecorded *p = s->env->purchase_recorded;
    const char *cats[EARNING_PROMOTION_ITEMS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < p->n_items && n < EARNING_PROMOTION_ITEMS_MAX; i++)
        if (p->items[i]->category && p->items[i]->category[0])
            cats[n++] = p->items[i]->category;
    struct promotion_target t = {.purchase = true,
                                 .at_us = s->env->occurred_at_us,
                                 .day_of_month = (int)db_int_at(res, row, 7),
                                 .branch = s->env->branch_id,
                                 .categories = cats,
                                 .category_count = n};
    /* column 8: the version's change_id, the key of its parsed promotions */
    const struct promotions *promos =
        promotions_of(s->env->tenant_id, PQgetvalue(res, row, 8), PQgetvalue(res, row, 6));
    int64_t bp = promotions_multiplier(promos, &t);
    /* points <= 10^9 and bp <= 10^5: the product fits in int64 */
    int64_t promoted = s->points * bp / 10000;
    return promoted > EARNING_POINTS_MAX ? EARNING_POINTS_MAX : promoted;
}

/* Earns one purchase under the rule row (columns 1..5 of row). false when
 * it cannot be computed (the message is marked poison). */
static bool earn_one(struct purchase_seen *s, PGresult *res, int row, struct pipeline_batch *b)
{
    const char *cats_text = PQgetvalue(res, row, 5);
    json_t *cats = json_loads(cats_text, 0, NULL);
    const char *names[EARNING_CATEGORIES_MAX];
    size_t n = json_array_size(cats);
    bool ok = cats && json_is_array(cats) && n <= EARNING_CATEGORIES_MAX;
    for (size_t k = 0; ok && k < n; k++) {
        names[k] = json_string_value(json_array_get(cats, k));
        ok = names[k] != NULL;
    }
    struct earning_rule rule = {.enabled = strcmp(PQgetvalue(res, row, 2), "t") == 0,
                                .unit_amount = db_int_at(res, row, 3),
                                .points_per_unit = db_int_at(res, row, 4),
                                .excluded_categories = names,
                                .excluded_count = ok ? n : 0};
    const PurchaseRecorded *p = s->env->purchase_recorded;
    /* the part paid with points earns nothing (issue 12) */
    struct earning_purchase purchase = {.charged = p->charged - p->points_value,
                                        .multiplier_bp = p->points_multiplier_bp,
                                        .items = p->items,
                                        .item_count = p->n_items};
    enum earning_result r =
        ok ? rules_earning_purchase_points(&rule, &purchase, &s->points) : EARNING_INVALID_RULE;
    json_decref(cats);
    if (r != EARNING_OK) {
        log_fields(LOG_ERROR, "purchase cannot earn", "tenant", s->env->tenant_id, "member",
                   s->env->member_id, "purchase_command_id", p->command_id, "reason",
                   rules_earning_result_text(r), NULL);
        purchase_refuse(b, s, rules_earning_result_text(r));
        return false;
    }
    s->has_rule = true;
    snprintf(s->change_id, sizeof(s->change_id), "%s", PQgetvalue(res, row, 1));
    s->points = promoted_points(s, res, row);
    return true;
}

/* Finds for each purchase the rule version in force when it was recorded
 * (one index probe each) and computes its points. */
static int compute_points(PGconn *pg, struct earning_batch *e, struct pipeline_batch *b, char *err,
                          size_t err_len)
{
    struct db_array tenants, times, idx;
    db_array_init(&tenants), db_array_init(&times), db_array_init(&idx);
    for (size_t i = 0; i < e->purchase_count; i++) {
        if (e->purchases[i].waits)
            continue;
        db_array_add(&tenants, e->purchases[i].env->tenant_id);
        db_array_add_int(&times, e->purchases[i].env->occurred_at_us);
        db_array_add_int(&idx, (long long)i);
    }
    const char *p[3] = {db_array_finish(&tenants), db_array_finish(&times), db_array_finish(&idx)};
    PGresult *res = db_query(
        pg,
        "SELECT u.i, r.change_id, r.purchase_enabled, r.purchase_unit_amount, "
        "r.purchase_points_per_unit, r.purchase_excluded_categories::text, "
        "a.promotions::text, extract(day FROM (to_timestamp(u.at / 1000000.0) AT TIME ZONE "
        "coalesce(a.time_zone, '" ACTIVITY_TIME_ZONE_DEFAULT "')))::int, a.change_id "
        "FROM unnest($1::text[], $2::bigint[], $3::int[]) AS u(t, at, i) "
        "CROSS JOIN LATERAL (SELECT * FROM earning_rules e WHERE e.tenant_id = u.t "
        "AND e.effective_from_us <= u.at ORDER BY e.effective_from_us DESC, e.change_id DESC "
        "LIMIT 1) r "
        /* the promotions in force then (activity_rules, engage.h) */
        "LEFT JOIN LATERAL (SELECT x.promotions, x.time_zone, x.change_id FROM activity_rules x "
        "WHERE x.tenant_id = u.t AND x.effective_from_us <= u.at "
        "ORDER BY x.effective_from_us DESC, x.change_id DESC LIMIT 1) a ON true",
        3, p, err, err_len, NULL);
    db_array_free(&tenants), db_array_free(&times), db_array_free(&idx);
    if (!res)
        return -1;
    for (int row = 0; row < PQntuples(res); row++) {
        long long i = db_int_at(res, row, 0);
        assert(i >= 0 && (size_t)i < e->purchase_count);
        earn_one(&e->purchases[i], res, row, b);
    }
    PQclear(res);
    return 0;
}

/* ------------------------------------------------------------ step 3 */
/* The EarnPoints command for purchase s, encoded (caller frees), or NULL
 * when too large. Same tenant, member and branch as the purchase; caused
 * by the purchase's fact; correlation id and trace carried on. */
static uint8_t *encode_earn(const struct purchase_seen *s, size_t *len)
{
    const Envelope *fact = s->env;
    const PurchaseRecorded *p = fact->purchase_recorded;
    char command_id[EARN_COMMAND_ID_MAX];
    snprintf(command_id, sizeof(command_id), EARNING_COMMAND_ID_PREFIX "%s", p->command_id);
    struct event_meta meta = {.tenant_id = fact->tenant_id,
                              .branch_id = fact->branch_id,
                              .member_id = fact->member_id,
                              .causation_id = fact->event_id,
                              .correlation_id =
                                  fact->correlation_id[0] ? fact->correlation_id : fact->event_id,
                              .actor_kind = "service",
                              .actor_id = EARN_ACTOR_ID,
                              .traceparent = fact->traceparent,
                              .occurred_at_us = fact->occurred_at_us};
    Envelope env;
    Actor actor;
    Tessera__Ledger__V1__EarnPoints earn;
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__earn_points__init(&earn);
    earn.command_id = command_id;
    earn.points = s->points;
    earn.purchase_command_id = p->command_id;
    earn.rule = (char *)EARNING_RULE_PURCHASE;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARN_POINTS;
    env.earn_points = &earn;
    return envelope_encode(&env, len);
}

static struct purchase_seen *purchase_find(struct earning_batch *e, const char *tenant_id,
                                           const char *command_id)
{
    for (size_t i = 0; i < e->purchase_count; i++) {
        struct purchase_seen *s = &e->purchases[i];
        if (s->has_rule && s->points > 0 && !s->emitted &&
            strcmp(s->env->purchase_recorded->command_id, command_id) == 0 &&
            strcmp(s->env->tenant_id, tenant_id) == 0)
            return s;
    }
    return NULL;
}

/* Records the earnings and emits a command for each row inserted now. */
static int record_and_emit(struct campaign_ctx *c, PGconn *pg, struct earning_batch *e,
                           struct pipeline_batch *b, char *err, size_t err_len)
{
    struct db_array tenants, purchases, members, points, charged, multipliers, changes, events;
    db_array_init(&tenants), db_array_init(&purchases), db_array_init(&members);
    db_array_init(&points), db_array_init(&charged), db_array_init(&multipliers);
    db_array_init(&changes), db_array_init(&events);
    for (size_t i = 0; i < e->purchase_count; i++) {
        const struct purchase_seen *s = &e->purchases[i];
        if (s->waits || (!s->released && b->poison[s->msg]))
            continue;
        if (!s->has_rule || s->points == 0) {
            c->earn_skipped++;
            continue;
        }
        const PurchaseRecorded *p = s->env->purchase_recorded;
        db_array_add(&tenants, s->env->tenant_id);
        db_array_add(&purchases, p->command_id);
        db_array_add(&members, s->env->member_id);
        db_array_add_int(&points, s->points);
        db_array_add_int(&charged, p->charged);
        db_array_add_int(&multipliers, p->points_multiplier_bp ? p->points_multiplier_bp : 10000);
        db_array_add(&changes, s->change_id);
        db_array_add(&events, s->env->event_id);
    }
    int rc = 0;
    if (tenants.count > 0) {
        const char *p[8] = {db_array_finish(&tenants), db_array_finish(&purchases),
                            db_array_finish(&members), db_array_finish(&points),
                            db_array_finish(&charged), db_array_finish(&multipliers),
                            db_array_finish(&changes), db_array_finish(&events)};
        /* DO NOTHING also takes the second of two equal keys in one batch. */
        PGresult *res = db_query(
            pg,
            "INSERT INTO earnings (tenant_id, purchase_command_id, member_id, command_id, "
            "points, charged, multiplier_bp, rule_change_id, purchase_event_id) "
            "SELECT t, pc, m, '" EARNING_COMMAND_ID_PREFIX "' || pc, pts, ch, mul, rc, ev FROM "
            "unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], "
            "$6::bigint[], $7::text[], $8::text[]) AS u(t, pc, m, pts, ch, mul, rc, ev) "
            "ON CONFLICT (tenant_id, purchase_command_id) DO NOTHING "
            "RETURNING tenant_id, purchase_command_id",
            8, p, err, err_len, NULL);
        rc = res ? 0 : -1;
        for (int row = 0; res && row < PQntuples(res); row++) {
            struct purchase_seen *s =
                purchase_find(e, PQgetvalue(res, row, 0), PQgetvalue(res, row, 1));
            assert(s); /* the statement returns only rows we sent */
            size_t len = 0;
            uint8_t *cmd = encode_earn(s, &len);
            assert(cmd); /* every field is bounded: a failure is a programmer error */
            pipeline_emit(b, TOPIC_LEDGER_COMMANDS, s->env->member_id, cmd, len);
            s->emitted = true;
            c->earn_commands++;
            c->earn_points += s->points;
        }
        PQclear(res);
    }
    db_array_free(&tenants), db_array_free(&purchases), db_array_free(&members);
    db_array_free(&points), db_array_free(&charged), db_array_free(&multipliers);
    db_array_free(&changes), db_array_free(&events);
    return rc;
}

/* Marks the batch's purchases recorded after a change not stored yet and
 * keeps their facts for later (released ones were checked on release). */
static int defer_early_purchases(struct campaign_ctx *c, PGconn *pg, struct earning_batch *e,
                                 struct pipeline_batch *b, char *err, size_t err_len)
{
    const char **tenants = calloc(e->purchase_count + 1, sizeof(*tenants));
    int64_t *times = calloc(e->purchase_count + 1, sizeof(*times));
    bool *wait = calloc(e->purchase_count + 1, sizeof(*wait));
    assert(tenants && times && wait);
    for (size_t i = 0; i < e->purchase_count; i++) {
        tenants[i] = e->purchases[i].env->tenant_id;
        times[i] = e->purchases[i].env->occurred_at_us;
    }
    int rc = earning_order_check(pg, tenants, times, e->purchase_count, wait, err, err_len);
    for (size_t i = 0; rc == 0 && i < e->purchase_count; i++) {
        struct purchase_seen *s = &e->purchases[i];
        if (!wait[i] || s->released)
            continue;
        s->waits = true;
        c->earn_deferred++;
        rc = earning_order_defer(pg, s->env, b->msgs[s->msg]->payload, b->msgs[s->msg]->len, err,
                                 err_len);
    }
    free(tenants);
    free(times);
    free(wait);
    return rc;
}

int earning_apply_batch(struct campaign_ctx *c, PGconn *pg, struct pipeline_batch *b, char *err,
                        size_t err_len)
{
    struct earning_batch e = {.envs = calloc(b->count + 1, sizeof(Envelope *)), .count = b->count};
    assert(e.envs);
    for (size_t i = 0; i < b->count; i++) {
        if (b->poison[i] || !may_concern_earning(b->msgs[i]))
            continue;
        char why[128];
        e.envs[i] = envelope_decode(b->msgs[i]->payload, b->msgs[i]->len, why, sizeof(why));
    }
    int rc = store_rule_changes(pg, &e, b, err, err_len);
    if (rc == 0)
        rc = earning_order_release(pg, &e.released, &e.released_count, err, err_len);
    collect_purchases(&e, b);
    if (rc == 0 && e.purchase_count > 0)
        rc = defer_early_purchases(c, pg, &e, b, err, err_len);
    if (rc == 0 && e.purchase_count > 0)
        rc = compute_points(pg, &e, b, err, err_len);
    if (rc == 0 && e.purchase_count > 0)
        rc = record_and_emit(c, pg, &e, b, err, err_len);
    batch_free(&e);
    return rc;
}
