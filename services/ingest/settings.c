/* GET/PUT /v1/config/{topup-bonus,points-policy,refund-fees,prepaid}
 * (admin): the tenant settings the ledger decides with. Built like card
 * limits: ingest validates the body (422 naming every bad field; nothing
 * is sent, so the version in force stays), sends one SetLedgerSetting
 * command keyed by tenant on ledger-commands and answers with the
 * ledger's verdict; the change is audited with that verdict. The ledger
 * stores each change as a version with its effective time (the change's
 * occurred_at) and publishes them in ledger.read_settings, which GET
 * reads. A new tenant's template sends the same commands
 * (settings_template_commands in tenants.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/card_types.h"
#include "events/settings_types.h"
#include "http/validate.h"
#include "ingest.h"
#include "settings_publish.h"

/* card-limits last: GET only here (its PUT is products.c's) */
static const char *const kinds[] = {SETTING_TOPUP_BONUS, SETTING_POINTS_POLICY, SETTING_REFUND_FEES,
                                    SETTING_PREPAID,     SETTING_CARD_LIMITS,   NULL};
static const char *const audit_actions[] = {
    "settings.topup-bonus.put", "settings.points-policy.put", "settings.refund-fees.put",
    "settings.prepaid.put", "card_limits.put"};
static const char *const expiry_kinds[] = {"never", "days", "end_of_month", "end_of_year", NULL};

/* The kind a path names ("/v1/config/<kind>"), or NULL. */
static const char *kind_of_path(struct req *r)
{
    const char *path = http_path(r->ex);
    const char *last = path ? strrchr(path, '/') : NULL;
    for (size_t i = 0; last && kinds[i]; i++)
        if (strcmp(last + 1, kinds[i]) == 0)
            return kinds[i];
    return NULL;
}

/* ------------------------------------------------------------ validation */
/* Runs check on obj (an object at prefix) into v, its field names under
 * "<prefix>.". */
static void validate_nested(struct validation *v, json_t *parent, const char *prefix, bool required,
                            void (*check)(struct validation *, json_t *))
{
    json_t *obj = json_object_get(parent, prefix);
    if (!obj || json_is_null(obj)) {
        if (required)
            validation_add(v, prefix, "is required");
        return;
    }
    if (!json_is_object(obj)) {
        validation_add(v, prefix, "must be an object");
        return;
    }
    struct validation one;
    validation_init(&one);
    check(&one, obj);
    size_t i;
    json_t *e;
    json_array_foreach(one.errors, i, e)
    {
        char field[96];
        snprintf(field, sizeof(field), "%s.%s", prefix,
                 json_string_value(json_object_get(e, "field")));
        validation_add(v, field, json_string_value(json_object_get(e, "message")));
    }
    validation_free(&one);
}

static void check_step(struct validation *v, json_t *step)
{
    static const char *const fields[] = {"threshold", "bonus", NULL};
    int64_t n;
    validate_no_unknown_fields(v, step, fields);
    validate_int(v, step, "threshold", true, 1, SETTINGS_MONEY_MAX, &n);
    validate_int(v, step, "bonus", true, 0, SETTINGS_MONEY_MAX, &n);
}

static void check_ladder(struct validation *v, json_t *b)
{
    static const char *const fields[] = {"steps", NULL};
    validate_no_unknown_fields(v, b, fields);
    json_t *steps = json_object_get(b, "steps");
    if (!json_is_array(steps) || json_array_size(steps) > SETTINGS_BONUS_STEPS_MAX) {
        validation_add(v, "steps", "required: an array of at most 32 steps");
        return;
    }
    json_int_t last = 0;
    for (size_t i = 0; i < json_array_size(steps); i++) {
        json_t *step = json_array_get(steps, i);
        char name[32];
        snprintf(name, sizeof(name), "steps[%zu]", i);
        json_t *wrap = json_pack("{s:O}", name, step);
        validate_nested(v, wrap, name, true, check_step);
        json_decref(wrap);
        json_int_t t = json_integer_value(json_object_get(step, "threshold"));
        if (json_is_object(step) && t > 0 && t <= last)
            validation_add(v, name, "thresholds must be in ascending order, each once");
        if (t > last)
            last = t;
    }
}

static void check_expiry(struct validation *v, json_t *e)
{
    static const char *const fields[] = {"kind", "periods", "utc_offset_minutes", NULL};
    const char *kind = NULL;
    int64_t periods = 0, n;
    validate_no_unknown_fields(v, e, fields);
    validate_enum(v, e, "kind", true, expiry_kinds, &kind);
    validate_int(v, e, "periods", false, 0, SETTINGS_EXPIRY_PERIODS_MAX, &periods);
    validate_int(v, e, "utc_offset_minutes", false, -SETTINGS_UTC_OFFSET_MIN_MAX,
                 SETTINGS_UTC_OFFSET_MIN_MAX, &n);
    if (kind && strcmp(kind, "never") != 0 && periods < 1)
        validation_add(v, "periods", "required (at least 1) unless kind is never");
}

static void check_payment(struct validation *v, json_t *p)
{
    static const char *const fields[] = {"points_per_unit", "unit_amount", "max_share_bp", NULL};
    int64_t n;
    validate_no_unknown_fields(v, p, fields);
    validate_int(v, p, "points_per_unit", false, 1, SETTINGS_PAYMENT_PER_UNIT_MAX, &n);
    validate_int(v, p, "unit_amount", false, 1, SETTINGS_PAYMENT_UNIT_MAX, &n);
    validate_int(v, p, "max_share_bp", false, 0, SETTINGS_BP_MAX, &n);
}

static void check_policy(struct validation *v, json_t *b)
{
    static const char *const fields[] = {"expiry", "lock_seconds", "payment", NULL};
    int64_t n;
    validate_no_unknown_fields(v, b, fields);
    validate_nested(v, b, "expiry", true, check_expiry);
    validate_int(v, b, "lock_seconds", false, 0, SETTINGS_LOCK_SECONDS_MAX, &n);
    validate_nested(v, b, "payment", false, check_payment);
}

static void check_fees(struct validation *v, json_t *b)
{
    static const char *const fields[] = {"fee_bp", "fee_min", NULL};
    int64_t n;
    validate_no_unknown_fields(v, b, fields);
    validate_int(v, b, "fee_bp", true, 0, SETTINGS_BP_MAX, &n);
    validate_int(v, b, "fee_min", false, 0, SETTINGS_MONEY_MAX, &n);
}

static void check_prepaid(struct validation *v, json_t *b)
{
    static const char *const fields[] = {"alert_threshold", NULL};
    int64_t n;
    validate_no_unknown_fields(v, b, fields);
    validate_int(v, b, "alert_threshold", true, 0, SETTINGS_MONEY_MAX, &n);
}

void settings_validate(struct validation *v, const char *kind, json_t *body)
{
    if (!json_is_object(body)) {
        validation_add(v, "body", "must be an object");
        return;
    }
    if (strcmp(kind, SETTING_TOPUP_BONUS) == 0)
        check_ladder(v, body);
    else if (strcmp(kind, SETTING_POINTS_POLICY) == 0)
        check_policy(v, body);
    else if (strcmp(kind, SETTING_REFUND_FEES) == 0)
        check_fees(v, body);
    else
        check_prepaid(v, body);
}

/* ------------------------------------------------------------ the command */
static int64_t int_at(json_t *obj, const char *a, const char *b, int64_t dflt)
{
    json_t *j = json_object_get(obj, a);
    if (b)
        j = json_object_get(j, b);
    return json_is_integer(j) ? json_integer_value(j) : dflt;
}

void settings_fill(struct setting_msg *m, const char *kind, json_t *b, const char *change_id)
{
    memset(m, 0, sizeof(*m));
    tessera__ledger__v1__set_ledger_setting__init(&m->s);
    m->s.command_id = (char *)change_id;
    if (strcmp(kind, SETTING_TOPUP_BONUS) == 0) {
        tessera__ledger__v1__top_up_bonus_setting__init(&m->ladder);
        json_t *steps = json_object_get(b, "steps");
        for (size_t i = 0; i < json_array_size(steps) && i < SETTINGS_BONUS_STEPS_MAX; i++) {
            tessera__ledger__v1__bonus_step__init(&m->steps[i]);
            m->steps[i].threshold = int_at(json_array_get(steps, i), "threshold", NULL, 0);
            m->steps[i].bonus = int_at(json_array_get(steps, i), "bonus", NULL, 0);
            m->step_ptrs[i] = &m->steps[i];
            m->ladder.n_steps = i + 1;
        }
        m->ladder.steps = m->step_ptrs;
        m->s.setting_case = TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_TOPUP_BONUS;
        m->s.topup_bonus = &m->ladder;
    } else if (strcmp(kind, SETTING_POINTS_POLICY) == 0) {
        PointsPolicySetting *p = &m->policy;
        tessera__ledger__v1__points_policy_setting__init(p);
        const char *ek = json_string_value(json_object_get(json_object_get(b, "expiry"), "kind"));
        p->expiry_kind = (char *)(ek ? ek : "never");
        p->expiry_periods = (int32_t)int_at(b, "expiry", "periods", 0);
        p->utc_offset_minutes = (int32_t)int_at(b, "expiry", "utc_offset_minutes", 480);
        p->lock_seconds = int_at(b, "lock_seconds", NULL, 0);
        p->payment_points_per_unit =
            int_at(b, "payment", "points_per_unit", SETTINGS_PAYMENT_PER_UNIT_DEFAULT);
        p->payment_unit_amount = int_at(b, "payment", "unit_amount", SETTINGS_PAYMENT_UNIT_DEFAULT);
        p->payment_max_share_bp =
            (int32_t)int_at(b, "payment", "max_share_bp", SETTINGS_PAYMENT_SHARE_BP_DEFAULT);
        m->s.setting_case = TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_POINTS_POLICY;
        m->s.points_policy = p;
    } else if (strcmp(kind, SETTING_REFUND_FEES) == 0) {
        tessera__ledger__v1__refund_fee_setting__init(&m->fees);
        m->fees.fee_bp = (int32_t)int_at(b, "fee_bp", NULL, 0);
        m->fees.fee_min = int_at(b, "fee_min", NULL, 0);
        m->s.setting_case = TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_REFUND_FEES;
        m->s.refund_fees = &m->fees;
    } else {
        tessera__ledger__v1__prepaid_setting__init(&m->prepaid);
        m->prepaid.alert_threshold = int_at(b, "alert_threshold", NULL, 0);
        m->s.setting_case = TESSERA__LEDGER__V1__SET_LEDGER_SETTING__SETTING_PREPAID;
        m->s.prepaid = &m->prepaid;
    }
}

static void send_setting(struct req *r)
{
    struct event_meta meta = settings_event_meta(r);
    Envelope env;
    Actor actor;
    struct setting_msg m;
    envelope_init(&env, &actor, &meta);
    settings_fill(&m, r->setting_kind, r->body, r->command_id);
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_SET_LEDGER_SETTING;
    env.set_ledger_setting = &m.s;
    ledger_request_send(r, &env); /* encodes, 413 when too large, waits */
}

static void put_authorized(struct req *r)
{
    r->setting_kind = kind_of_path(r);
    if (!r->setting_kind || strcmp(r->setting_kind, SETTING_CARD_LIMITS) == 0) {
        req_fail(r, 404, "not_found", "no such setting"); /* card limits: products.c */
        return;
    }
    if (!req_read_body(r))
        return;
    struct validation v;
    validation_init(&v);
    settings_validate(&v, r->setting_kind, r->body);
    if (!req_validated(r, &v))
        return;
    snprintf(r->member_id, sizeof(r->member_id), "%s", r->caller.tenant_id);
    for (size_t i = 0; kinds[i]; i++)
        if (strcmp(kinds[i], r->setting_kind) == 0)
            r->audit_action = audit_actions[i];
    uuid7_generate(r->command_id); /* the change id */
    idem_claim_then(r, send_setting);
}

void settings_put(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), put_authorized);
}

/* ------------------------------------------------------------ GET */
/* What a tenant that never set the kind decides with. */
static json_t *default_setting(const char *kind)
{
    if (strcmp(kind, SETTING_TOPUP_BONUS) == 0)
        return json_pack("{s:[]}", "steps");
    if (strcmp(kind, SETTING_POINTS_POLICY) == 0)
        return json_pack("{s:{s:s, s:i, s:i}, s:i, s:{s:i, s:i, s:i}}", "expiry", "kind", "never",
                         "periods", 0, "utc_offset_minutes", 480, "lock_seconds", 0, "payment",
                         "points_per_unit", SETTINGS_PAYMENT_PER_UNIT_DEFAULT, "unit_amount",
                         SETTINGS_PAYMENT_UNIT_DEFAULT, "max_share_bp",
                         SETTINGS_PAYMENT_SHARE_BP_DEFAULT);
    if (strcmp(kind, SETTING_REFUND_FEES) == 0)
        return json_pack("{s:i, s:i}", "fee_bp", 0, "fee_min", 0);
    if (strcmp(kind, SETTING_CARD_LIMITS) == 0)
        return json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "daily_uses_max",
                         CARD_LIMITS_DEFAULT_DAILY_USES, "prepaid_days_max", 0, "prepaid_uses_max",
                         0, "burst_uses", CARD_LIMITS_DEFAULT_BURST_USES, "burst_window_s",
                         CARD_LIMITS_DEFAULT_BURST_WINDOW_S, "far_branch_window_s",
                         CARD_LIMITS_DEFAULT_FAR_BRANCH_S, "first_day_topup_spend_max", 0);
    return json_pack("{s:i}", "alert_threshold", 0);
}

static void on_setting(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    json_t *body = NULL;
    if (PQntuples(res) == 1)
        body = json_loads(PQgetvalue(res, 0, 2), 0, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        body = default_setting(r->setting_kind);
        json_object_set_new(body, "change_id", json_null());
        json_object_set_new(body, "effective_from", json_null());
    } else {
        char at[32];
        event_format_time(strtoll(PQgetvalue(res, 0, 1), NULL, 10), at);
        json_object_set_new(body, "change_id", json_string(PQgetvalue(res, 0, 0)));
        json_object_set_new(body, "effective_from", json_string(at));
    }
    json_object_set_new(body, "kind", json_string(r->setting_kind));
    req_finish(r, 200, body);
}

static void get_authorized(struct req *r)
{
    r->setting_kind = kind_of_path(r);
    if (!r->setting_kind) {
        req_fail(r, 404, "not_found", "no such setting");
        return;
    }
    const char *p[2] = {r->caller.tenant_id, r->setting_kind};
    if (pg_pool_query(
            r->app->pg,
            "SELECT change_id, effective_from_us, setting::text FROM ledger.read_settings "
            "WHERE tenant_id = $1 AND kind = $2",
            2, p, on_setting, r) < 0)
        req_fail_db(r, "queue full");
}

void settings_get(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), get_authorized);
}

int settings_verdict_to_response(const LedgerPosted *v, json_t **body)
{
    if (strncmp(v->command_type, "setting:", 8) != 0)
        return -1;
    *body = json_pack("{s:s, s:s, s:s, s:s}", "operation_id", v->command_id, "change_id",
                      v->command_id, "kind", v->command_type + 8, "status", "applied");
    return 200;
}
