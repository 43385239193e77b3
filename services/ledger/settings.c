/* The tenants' ledger settings (settings.h). A change replaces the whole
 * setting; it is in force for every command the ledger decides after it
 * (later in its batch, and every later batch, which loads the current
 * rows). Ingest answers the PUT only once the ledger has posted it, so a
 * request recorded after that answer is decided under it. */
#include "settings.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/settings_types.h"
#include "ledger.h"

bool settings_is_command(const Envelope *env)
{
    return env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_SET_LEDGER_SETTING;
}

const char *settings_command_id(const Envelope *env)
{
    return settings_is_command(env) ? env->set_ledger_setting->command_id : NULL;
}

static const char *kind_of(const SetLedgerSetting *s)
{
    switch (s->setting_case) {
    case TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_TOPUP_BONUS:
        return SETTING_TOPUP_BONUS;
    case TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_POINTS_POLICY:
        return SETTING_POINTS_POLICY;
    case TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_REFUND_FEES:
        return SETTING_REFUND_FEES;
    case TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_PREPAID:
        return SETTING_PREPAID;
    default:
        return NULL;
    }
}

const char *settings_command_type(const Envelope *env)
{
    const char *kind = kind_of(env->set_ledger_setting);
    if (!kind)
        return "setting:none";
    static char types[4][32];
    static const char *const kinds[4] = {SETTING_TOPUP_BONUS, SETTING_POINTS_POLICY,
                                         SETTING_REFUND_FEES, SETTING_PREPAID};
    for (size_t i = 0; i < 4; i++)
        if (strcmp(kind, kinds[i]) == 0) {
            if (!types[i][0])
                snprintf(types[i], sizeof(types[i]), "setting:%s", kind);
            return types[i];
        }
    return "setting:none";
}

void settings_begin_batch(struct ledger_ctx *l)
{
    for (size_t i = 0; i < l->setting_count; i++) {
        free(l->settings[i].tenant_id);
        free(l->settings[i].change_id);
        free(l->settings[i].setting);
    }
    l->setting_count = 0;
}

/* ------------------------------------------------------- checks */
static bool ladder_ok(const TopUpBonusSetting *t)
{
    if (t->n_steps > SETTINGS_BONUS_STEPS_MAX || t->n_steps > RULES_BONUS_STEPS_MAX)
        return false;
    for (size_t i = 0; i < t->n_steps; i++) {
        const BonusStep *s = t->steps[i];
        if (s->threshold <= 0 || s->threshold > SETTINGS_MONEY_MAX || s->bonus < 0 ||
            s->bonus > SETTINGS_MONEY_MAX || (i > 0 && s->threshold <= t->steps[i - 1]->threshold))
            return false;
    }
    return true;
}

static bool policy_ok(const PointsPolicySetting *p)
{
    enum points_expiry_kind kind;
    return rules_points_kind_parse(p->expiry_kind, &kind) && p->expiry_periods >= 0 &&
           p->expiry_periods <= SETTINGS_EXPIRY_PERIODS_MAX &&
           (kind == POINTS_EXPIRE_NEVER || p->expiry_periods > 0) &&
           p->utc_offset_minutes >= -SETTINGS_UTC_OFFSET_MIN_MAX &&
           p->utc_offset_minutes <= SETTINGS_UTC_OFFSET_MIN_MAX && p->lock_seconds >= 0 &&
           p->lock_seconds <= SETTINGS_LOCK_SECONDS_MAX && p->payment_points_per_unit >= 1 &&
           p->payment_points_per_unit <= SETTINGS_PAYMENT_PER_UNIT_MAX &&
           p->payment_unit_amount >= 1 && p->payment_unit_amount <= SETTINGS_PAYMENT_UNIT_MAX &&
           p->payment_max_share_bp >= 0 && p->payment_max_share_bp <= SETTINGS_BP_MAX;
}

static bool setting_ok(const SetLedgerSetting *s)
{
    switch (s->setting_case) {
    case TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_TOPUP_BONUS:
        return ladder_ok(s->topup_bonus);
    case TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_POINTS_POLICY:
        return policy_ok(s->points_policy);
    case TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_REFUND_FEES:
        return s->refund_fees->fee_bp >= 0 && s->refund_fees->fee_bp <= SETTINGS_BP_MAX &&
               s->refund_fees->fee_min >= 0 && s->refund_fees->fee_min <= SETTINGS_MONEY_MAX;
    case TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_PREPAID:
        return s->prepaid->alert_threshold >= 0 &&
               s->prepaid->alert_threshold <= SETTINGS_MONEY_MAX;
    default:
        return false;
    }
}

/* ------------------------------------------------------- the setting as JSON */
static json_t *setting_json(const SetLedgerSetting *s)
{
    switch (s->setting_case) {
    case TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_TOPUP_BONUS: {
        json_t *steps = json_array();
        for (size_t i = 0; i < s->topup_bonus->n_steps; i++)
            json_array_append_new(steps,
                                  json_pack("{s:I, s:I}", "threshold",
                                            (json_int_t)s->topup_bonus->steps[i]->threshold,
                                            "bonus", (json_int_t)s->topup_bonus->steps[i]->bonus));
        return json_pack("{s:o}", "steps", steps);
    }
    case TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_POINTS_POLICY: {
        const PointsPolicySetting *p = s->points_policy;
        return json_pack("{s:{s:s, s:i, s:i}, s:I, s:{s:I, s:I, s:i}}", "expiry", "kind",
                         p->expiry_kind, "periods", p->expiry_periods, "utc_offset_minutes",
                         p->utc_offset_minutes, "lock_seconds", (json_int_t)p->lock_seconds,
                         "payment", "points_per_unit", (json_int_t)p->payment_points_per_unit,
                         "unit_amount", (json_int_t)p->payment_unit_amount, "max_share_bp",
                         p->payment_max_share_bp);
    }
    case TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_REFUND_FEES:
        return json_pack("{s:i, s:I}", "fee_bp", s->refund_fees->fee_bp, "fee_min",
                         (json_int_t)s->refund_fees->fee_min);
    default:
        return json_pack("{s:I}", "alert_threshold", (json_int_t)s->prepaid->alert_threshold);
    }
}

static void queue(struct ledger_ctx *l, const Envelope *env, const char *change_id,
                  const char *kind, json_t *j);

/* ------------------------------------------------------- the batch's state */
static void apply_ladder(struct ledger_ctx *l, const char *tenant_id, const TopUpBonusSetting *t)
{
    struct ledger_ladder *ld = ledger_ladder_find(l, tenant_id, true);
    ld->count = 0;
    for (size_t i = 0; i < t->n_steps; i++)
        ld->steps[ld->count++] =
            (struct bonus_step){.threshold = t->steps[i]->threshold, .bonus = t->steps[i]->bonus};
}

static void apply_policy(struct ledger_ctx *l, const char *tenant_id, const PointsPolicySetting *p)
{
    struct points_policy next = {.periods = p->expiry_periods,
                                 .utc_offset_minutes = p->utc_offset_minutes,
                                 .lock_seconds = p->lock_seconds};
    bool parsed = rules_points_kind_parse(p->expiry_kind, &next.kind);
    assert(parsed); /* policy_ok */
    (void)parsed;
    for (size_t i = 0; i < l->policy_count; i++)
        if (strcmp(l->policies[i].tenant_id, tenant_id) == 0) {
            l->policies[i].policy = next;
            return;
        }
    l->policies = array_grow(l->policies, l->policy_count, &l->policy_cap, sizeof(*l->policies));
    l->policies[l->policy_count++] =
        (struct ledger_points_policy){.tenant_id = strdup(tenant_id), .policy = next};
}

static void apply_fees(struct ledger_ctx *l, const char *tenant_id, const RefundFeeSetting *f)
{
    for (size_t i = 0; i < l->fee_rule_count; i++)
        if (strcmp(l->fee_rules[i].tenant_id, tenant_id) == 0) {
            l->fee_rules[i].fee_bp = f->fee_bp;
            l->fee_rules[i].fee_min = f->fee_min;
            return;
        }
    l->fee_rules =
        array_grow(l->fee_rules, l->fee_rule_count, &l->fee_rule_cap, sizeof(*l->fee_rules));
    l->fee_rules[l->fee_rule_count++] = (struct ledger_fee_rule){
        .tenant_id = strdup(tenant_id), .fee_bp = f->fee_bp, .fee_min = f->fee_min};
}

void settings_decide(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *env = o->cmd;
    const SetLedgerSetting *s = env->set_ledger_setting;
    const char *kind = kind_of(s);
    outcome_reason(o, "setting:%s", kind ? kind : "none");
    if (!setting_ok(s)) {
        outcome_reject(o, "invalid_command", "the setting is not acceptable");
        return;
    }
    if (s->setting_case == TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_TOPUP_BONUS)
        apply_ladder(l, env->tenant_id, s->topup_bonus);
    else if (s->setting_case == TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_POINTS_POLICY)
        apply_policy(l, env->tenant_id, s->points_policy);
    else if (s->setting_case == TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_REFUND_FEES)
        apply_fees(l, env->tenant_id, s->refund_fees);
    /* the prepaid threshold is read by prepaid_track's statement, after
     * settings_write has stored it */
    queue(l, env, s->command_id, kind, setting_json(s));
}

static void queue(struct ledger_ctx *l, const Envelope *env, const char *change_id,
                  const char *kind, json_t *j)
{
    l->settings = array_grow(l->settings, l->setting_count, &l->setting_cap, sizeof(*l->settings));
    l->settings[l->setting_count++] =
        (struct ledger_setting_change){.tenant_id = strdup(env->tenant_id),
                                       .change_id = strdup(change_id),
                                       .kind = kind,
                                       .setting = json_dumps(j, JSON_COMPACT),
                                       .effective_from_us = env->occurred_at_us};
    json_decref(j);
}

void settings_note_card_limits(struct ledger_ctx *l, const Envelope *cmd,
                               const struct card_limits *lim)
{
    queue(l, cmd, cmd->set_card_limits->command_id, SETTING_CARD_LIMITS,
          json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "daily_uses_max",
                    (json_int_t)lim->daily_uses_max, "prepaid_days_max",
                    (json_int_t)lim->prepaid_days_max, "prepaid_uses_max",
                    (json_int_t)lim->prepaid_uses_max, "burst_uses", (json_int_t)lim->burst_uses,
                    "burst_window_s", (json_int_t)lim->burst_window_s, "far_branch_window_s",
                    (json_int_t)lim->far_branch_window_s, "first_day_topup_spend_max",
                    (json_int_t)lim->first_day_topup_spend_max));
}

/* ------------------------------------------------------- rows */
/* The current row of each kind, from the version's JSON ($1 tenant, $2
 * the setting). */
static const char *const current_sql[][2] = {
    {SETTING_TOPUP_BONUS,
     "DELETE FROM topup_bonus_steps WHERE tenant_id = $1 AND $2::jsonb IS NOT NULL"},
    {SETTING_POINTS_POLICY,
     "INSERT INTO points_policy (tenant_id, kind, periods, utc_offset_minutes, lock_seconds, "
     "payment_points_per_unit, payment_unit_minor, payment_max_share_bp) "
     "SELECT $1, s->'expiry'->>'kind', (s->'expiry'->>'periods')::int, "
     "(s->'expiry'->>'utc_offset_minutes')::int, (s->>'lock_seconds')::bigint, "
     "(s->'payment'->>'points_per_unit')::bigint, (s->'payment'->>'unit_amount')::bigint, "
     "(s->'payment'->>'max_share_bp')::int FROM (SELECT $2::jsonb AS s) x "
     "ON CONFLICT (tenant_id) DO UPDATE SET kind = EXCLUDED.kind, periods = EXCLUDED.periods, "
     "utc_offset_minutes = EXCLUDED.utc_offset_minutes, lock_seconds = EXCLUDED.lock_seconds, "
     "payment_points_per_unit = EXCLUDED.payment_points_per_unit, "
     "payment_unit_minor = EXCLUDED.payment_unit_minor, "
     "payment_max_share_bp = EXCLUDED.payment_max_share_bp"},
    {SETTING_REFUND_FEES,
     "INSERT INTO refund_fee_rules (tenant_id, fee_bp, fee_min) "
     "SELECT $1, ($2::jsonb->>'fee_bp')::int, ($2::jsonb->>'fee_min')::bigint "
     "ON CONFLICT (tenant_id) DO UPDATE SET fee_bp = EXCLUDED.fee_bp, fee_min = EXCLUDED.fee_min"},
    {SETTING_PREPAID, "WITH d AS (DELETE FROM prepaid_thresholds WHERE tenant_id = $1 "
                      "AND ($2::jsonb->>'alert_threshold')::bigint = 0) "
                      "INSERT INTO prepaid_thresholds (tenant_id, threshold) "
                      "SELECT $1, ($2::jsonb->>'alert_threshold')::bigint "
                      "WHERE ($2::jsonb->>'alert_threshold')::bigint > 0 "
                      "ON CONFLICT (tenant_id) DO UPDATE SET threshold = EXCLUDED.threshold"},
};

/* A ladder's rungs go in after its old ones are gone (a second statement:
 * one statement cannot delete and re-insert the same keys). */
static const char ladder_insert_sql[] =
    "INSERT INTO topup_bonus_steps (tenant_id, threshold, bonus) "
    "SELECT $1, (e->>'threshold')::bigint, (e->>'bonus')::bigint "
    "FROM jsonb_array_elements($2::jsonb->'steps') e";

static const char version_sql[] =
    "INSERT INTO settings_changes (tenant_id, kind, change_id, effective_from_us, setting) "
    "VALUES ($1, $2, $3, $4::bigint, $5::jsonb)";

static int run(PGconn *pg, const char *sql, int n, const char *const *p, char *err, size_t err_len)
{
    PGresult *res = db_query(pg, sql, n, p, err, err_len, NULL);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

static int write_one(PGconn *pg, const struct ledger_setting_change *c, char *err, size_t err_len)
{
    char at[24];
    snprintf(at, sizeof(at), "%lld", (long long)c->effective_from_us);
    const char *v[5] = {c->tenant_id, c->kind, c->change_id, at, c->setting};
    if (run(pg, version_sql, 5, v, err, err_len) < 0)
        return -1;
    const char *p[2] = {c->tenant_id, c->setting};
    for (size_t i = 0; i < sizeof(current_sql) / sizeof(current_sql[0]); i++)
        if (strcmp(current_sql[i][0], c->kind) == 0 &&
            run(pg, current_sql[i][1], 2, p, err, err_len) < 0)
            return -1;
    if (strcmp(c->kind, SETTING_TOPUP_BONUS) == 0)
        return run(pg, ladder_insert_sql, 2, p, err, err_len);
    return 0;
}

int settings_write(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    for (size_t i = 0; i < l->setting_count; i++)
        if (write_one(pg, &l->settings[i], err, err_len) < 0)
            return -1;
    return 0;
}
