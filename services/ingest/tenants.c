/* POST /v1/tenants (platform key): a new tenant, its first branch and its
 * first admin key (shown once), started from a template (docs/tenants.md).
 *
 * The template's defaults travel as the same settings every tenant can
 * change afterwards: SetLedgerSetting commands (top-up bonus ladder,
 * points policy) and SetCardLimits to the ledger, EarningRulesChanged to
 * the campaign. Their outbox rows, their audit rows and the tenant's rows
 * are written by one statement, so a tenant exists if and only if its
 * settings are on their way; they are relayed right after the commit (the
 * outbox sweep retries). The tier ladder is not among them: tiering has
 * no settings event yet (see docs/tenants.md).
 *
 * A platform key is made by `tessera-ingest --create-platform-key NAME`
 * (platform_keys.c) and may do nothing else. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "db/db.h"
#include "events/campaign_types.h"
#include "events/card_types.h"
#include "http/validate.h"
#include "ingest.h"
#include "log/log.h"
#include "tier_ladder.h"

#define TENANT_ID_MAX      48
#define TENANT_NAME_MAX    100
#define TIME_ZONE_MAX      64
#define TEMPLATE_COMMANDS  5 /* bonus ladder, points policy, card limits, earning, tiers */
#define GENERATED_ID_BYTES 6

static const char *const tenant_fields[] = {"tenant_id", "name",   "currency", "time_zone",
                                            "template",  "branch", NULL};
static const char *const branch_fields[] = {"branch_id", "name", NULL};
static const char *const templates[] = {"education", "fitness", "restaurant", "retail", NULL};

/* ------------------------------------------------------------ templates */
/* Every template starts from the defaults of the chains we studied
 * (ARCHITECTURE.md §2): the top-up ladder 1 000 -> +100, 2 000 -> +300,
 * 5 000 -> +1 000 yuan; points expiring at the end of the 12th month,
 * locked 7 days after a purchase; 1 point per yuan; at most 3 uses of a
 * card a day; the tiers Basic (500 yuan spent, pays 85%), Advanced (2 000,
 * or 5 000 in a calendar year, 80%) and Premium (over 20 000, 70%). They differ only in name today;
 * the name is kept on the tenant so later defaults can follow it. */
static const char template_ladder[] =
    "{\"steps\":[{\"threshold\":100000,\"bonus\":10000},{\"threshold\":200000,\"bonus\":30000},"
    "{\"threshold\":500000,\"bonus\":100000}]}";
static const char template_tiers[] =
    "{\"levels\":[{\"name\":\"Basic\",\"rank\":1,\"thresholds\":{\"lifetime\":50000},"
    "\"benefits\":{\"discount_bp\":8500}},{\"name\":\"Advanced\",\"rank\":2,\"thresholds\":"
    "{\"lifetime\":200000,\"calendar_year\":500000},\"benefits\":{\"discount_bp\":8000}},"
    "{\"name\":\"Premium\",\"rank\":3,\"thresholds\":{\"lifetime\":2000001},"
    "\"benefits\":{\"discount_bp\":7000}}]}";
#define TEMPLATE_EXPIRY_MONTHS 12
#define TEMPLATE_LOCK_SECONDS  604800
#define TEMPLATE_DAILY_USES    3
#define TEMPLATE_UNIT_AMOUNT   100 /* fen per point */

static bool slug_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return false;
    return true;
}

static void check_branch(struct validation *v, json_t *b)
{
    const char *id = NULL, *name = NULL;
    if (!json_is_object(b)) {
        validation_add(v, "branch", "required: an object with branch_id and name");
        return;
    }
    struct validation one;
    validation_init(&one);
    validate_no_unknown_fields(&one, b, branch_fields);
    if (validate_string(&one, b, "branch_id", true, 1, 64, &id) && id && !slug_ok(id))
        validation_add(&one, "branch_id", "use lower-case letters, digits, '-' and '_'");
    validate_string(&one, b, "name", true, 1, 100, &name);
    size_t i;
    json_t *e;
    json_array_foreach(one.errors, i, e)
    {
        char field[64];
        snprintf(field, sizeof(field), "branch.%s", json_string_value(json_object_get(e, "field")));
        validation_add(v, field, json_string_value(json_object_get(e, "message")));
    }
    validation_free(&one);
}

static bool validate_tenant(struct req *r)
{
    struct validation v;
    validation_init(&v);
    json_t *b = r->body;
    const char *id = NULL, *name = NULL, *cur = NULL, *tz = NULL, *tpl = NULL;
    validate_no_unknown_fields(&v, b, tenant_fields);
    if (validate_string(&v, b, "tenant_id", false, 1, TENANT_ID_MAX, &id) && id && !slug_ok(id))
        validation_add(&v, "tenant_id", "use lower-case letters, digits, '-' and '_'");
    validate_string(&v, b, "name", true, 1, TENANT_NAME_MAX, &name);
    if (validate_string(&v, b, "currency", false, 3, 3, &cur) && cur &&
        !(cur[0] >= 'A' && cur[0] <= 'Z' && cur[1] >= 'A' && cur[1] <= 'Z' && cur[2] >= 'A' &&
          cur[2] <= 'Z'))
        validation_add(&v, "currency", "an ISO 4217 code, e.g. CNY");
    validate_string(&v, b, "time_zone", false, 1, TIME_ZONE_MAX, &tz);
    validate_enum(&v, b, "template", true, templates, &tpl);
    check_branch(&v, json_object_get(b, "branch"));
    return req_validated(r, &v);
}

static const char *str_or(json_t *b, const char *field, const char *dflt)
{
    const char *s = json_string_value(json_object_get(b, field));
    return s ? s : dflt;
}

/* ------------------------------------------------------------ the commands */
/* One encoded template command, as the statement's arrays take it. */
struct template_cmd {
    const char *topic;
    const char *action; /* its audit row's */
    char change_id[UUID_STR_SIZE];
    char *hex;   /* the envelope, hex */
    char *after; /* its audit row's after (JSON text) */
};

static char *hex_of(const uint8_t *buf, size_t len)
{
    char *hex = malloc(2 * len + 1);
    if (hex)
        sodium_bin2hex(hex, 2 * len + 1, buf, len);
    return hex;
}

static void meta_for(struct event_meta *meta, const char *tenant_id, const char *change_id,
                     const char *actor)
{
    *meta = (struct event_meta){.tenant_id = tenant_id,
                                .branch_id = "",
                                .member_id = "",
                                .correlation_id = change_id,
                                .actor_kind = "platform_key",
                                .actor_id = actor,
                                .traceparent = ""};
}

/* c from an encoded event (buf, freed here) and its audit row. */
static bool finish_encoded(struct template_cmd *c, uint8_t *buf, size_t len, int64_t at_us,
                           json_t *request)
{
    char at[32];
    event_format_time(at_us, at);
    json_t *after = json_pack("{s:s, s:s, s:O, s:s}", "change_id", c->change_id, "effective_from",
                              at, "request", request, "source", "template");
    json_t *purchase = json_object_get(request, "purchase");
    if (purchase)
        json_object_set(after, "purchase", purchase); /* as earning_rules.c audits it */
    c->after = json_dumps(after, JSON_COMPACT);
    json_decref(after);
    c->hex = buf ? hex_of(buf, len) : NULL;
    free(buf);
    return c->hex && c->after;
}

/* Encodes env into c with its audit row: {change_id, effective_from,
 * request} like the PUT of the same setting. */
static bool finish_cmd(struct template_cmd *c, Envelope *env, json_t *request)
{
    size_t len = 0;
    uint8_t *buf = envelope_encode(env, &len);
    return finish_encoded(c, buf, len, env->occurred_at_us, request);
}

static bool encode_setting(struct template_cmd *c, const char *tenant, const char *actor,
                           const char *kind, json_t *setting)
{
    struct event_meta meta;
    Envelope env;
    Actor a;
    struct setting_msg m;
    uuid7_generate(c->change_id);
    meta_for(&meta, tenant, c->change_id, actor);
    envelope_init(&env, &a, &meta);
    settings_fill(&m, kind, setting, c->change_id);
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_SET_LEDGER_SETTING;
    env.set_ledger_setting = &m.s;
    c->topic = TOPIC_LEDGER_COMMANDS;
    return finish_cmd(c, &env, setting);
}

static bool encode_limits(struct template_cmd *c, const char *tenant, const char *actor)
{
    struct event_meta meta;
    Envelope env;
    Actor a;
    SetCardLimits s;
    uuid7_generate(c->change_id);
    meta_for(&meta, tenant, c->change_id, actor);
    envelope_init(&env, &a, &meta);
    tessera__cards__v1__set_card_limits__init(&s);
    s.command_id = c->change_id;
    s.daily_uses_max = TEMPLATE_DAILY_USES; /* the others: the ledger's defaults */
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_SET_CARD_LIMITS;
    env.set_card_limits = &s;
    c->topic = TOPIC_LEDGER_COMMANDS;
    c->action = "card_limits.put";
    json_t *req = json_pack("{s:i}", "daily_uses_max", TEMPLATE_DAILY_USES);
    bool ok = finish_cmd(c, &env, req);
    json_decref(req);
    return ok;
}

static bool encode_earning(struct template_cmd *c, const char *tenant, const char *actor)
{
    struct event_meta meta;
    Envelope env;
    Actor a;
    EarningRulesChanged change;
    PurchaseEarningRule rule;
    uuid7_generate(c->change_id);
    meta_for(&meta, tenant, c->change_id, actor);
    envelope_init(&env, &a, &meta);
    tessera__campaign__v1__earning_rules_changed__init(&change);
    tessera__campaign__v1__purchase_earning_rule__init(&rule);
    rule.enabled = true;
    rule.unit_amount = TEMPLATE_UNIT_AMOUNT;
    rule.points_per_unit = 1;
    change.change_id = c->change_id;
    change.purchase = &rule;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARNING_RULES_CHANGED;
    env.earning_rules_changed = &change;
    c->topic = TOPIC_MEMBER_EVENTS; /* the campaign reads its settings there */
    c->action = "earning_rules.put";
    json_t *req = json_pack("{s:{s:b, s:i, s:i, s:[]}}", "purchase", "enabled", 1, "unit_amount",
                            TEMPLATE_UNIT_AMOUNT, "points_per_unit", 1, "excluded_categories");
    bool ok = finish_cmd(c, &env, req);
    json_decref(req);
    return ok;
}

/* The seeds' tier ladder, normalized as PUT /v1/config/tiers would. */
static bool encode_tiers(struct template_cmd *c, const char *tenant, const char *actor,
                         int utc_offset_minutes)
{
    struct validation v;
    validation_init(&v);
    json_t *body = json_loads(template_tiers, 0, NULL);
    json_t *config = body ? tier_ladder_normalize(body, &v) : NULL;
    validation_free(&v);
    json_decref(body);
    if (!config)
        return false; /* the template is wrong: test_tenant_onboarding says so */
    struct event_meta meta;
    uuid7_generate(c->change_id);
    meta_for(&meta, tenant, c->change_id, actor);
    int64_t at_us = 0;
    size_t len = 0;
    uint8_t *buf =
        tier_ladder_encode(&meta, c->change_id, config, utc_offset_minutes, &at_us, &len);
    c->topic = TOPIC_MEMBER_EVENTS; /* tiering reads its settings there */
    c->action = "tiers.put";
    bool ok = finish_encoded(c, buf, len, at_us, config);
    json_decref(config);
    return ok;
}

static bool encode_template(struct template_cmd cmds[TEMPLATE_COMMANDS], const char *tenant,
                            const char *actor, int utc_offset_minutes)
{
    json_t *ladder = json_loads(template_ladder, 0, NULL);
    json_t *policy = json_pack("{s:{s:s, s:i, s:i}, s:i}", "expiry", "kind", "end_of_month",
                               "periods", TEMPLATE_EXPIRY_MONTHS, "utc_offset_minutes",
                               utc_offset_minutes, "lock_seconds", TEMPLATE_LOCK_SECONDS);
    cmds[0].action = "settings.topup-bonus.put";
    cmds[1].action = "settings.points-policy.put";
    bool ok = ladder && policy &&
              encode_setting(&cmds[0], tenant, actor, SETTING_TOPUP_BONUS, ladder) &&
              encode_setting(&cmds[1], tenant, actor, SETTING_POINTS_POLICY, policy) &&
              encode_limits(&cmds[2], tenant, actor) && encode_earning(&cmds[3], tenant, actor) &&
              encode_tiers(&cmds[4], tenant, actor, utc_offset_minutes);
    json_decref(ladder);
    json_decref(policy);
    return ok;
}

static void free_template(struct template_cmd cmds[TEMPLATE_COMMANDS])
{
    for (size_t i = 0; i < TEMPLATE_COMMANDS; i++) {
        free(cmds[i].hex);
        free(cmds[i].after);
    }
}

/* ------------------------------------------------------------ the statement */
/* $1 platform key id, $2 tenant, $3 name, $4 currency, $5 time zone, $6
 * template, $7 branch id, $8 branch name, $9 admin key hash, $10 admin key
 * id, $11 actor ip, $12 topics, $13 payloads (hex), $14 audit actions, $15
 * audit afters. */
static const char create_sql[] =
    "WITH t AS (INSERT INTO tenants (tenant_id, name, currency, time_zone, template, created_by) "
    "VALUES ($2, $3, $4, $5, $6, $1) ON CONFLICT DO NOTHING RETURNING tenant_id), "
    "b AS (INSERT INTO branches (tenant_id, branch_id, name) SELECT tenant_id, $7, $8 FROM t), "
    "k AS (INSERT INTO api_keys (key_hash, key_id, tenant_id, name, scope, created_by) "
    "SELECT $9, $10, tenant_id, 'first admin', 'admin', $1 FROM t), "
    "o AS (INSERT INTO outbox (topic, key, payload) SELECT x.topic, $2, decode(x.hex, 'hex') "
    "FROM t, unnest($12::text[], $13::text[]) WITH ORDINALITY AS x(topic, hex, n) ORDER BY x.n "
    "RETURNING id, topic, key, payload), "
    "a AS (INSERT INTO audit_log (tenant_id, actor_key_id, actor_ip, action, target, after) "
    "SELECT $2, $1, $11, 'tenant.create', $2, jsonb_build_object('tenant_id', $2::text, "
    "'name', $3::text, 'currency', $4::text, 'time_zone', $5::text, 'template', $6::text, "
    "'branch_id', $7::text, 'admin_key_id', $10::text) FROM t "
    "UNION ALL SELECT $2, $1, $11, x.action, $2, x.after::jsonb FROM t, "
    "unnest($14::text[], $15::text[]) AS x(action, after)) "
    "SELECT o.id, o.topic, o.key, o.payload FROM o ORDER BY o.id";

static void on_created(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        req_fail(r, 409, "tenant_exists", "a tenant with that tenant_id exists");
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        size_t len = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 3), &len);
        if (raw)
            outbox_publish_to(r->app, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                              PQgetvalue(res, i, 2), raw, len);
        PQfreemem(raw);
    }
    json_t *answer = json_incref(r->audit_result);
    json_object_set_new(json_object_get(answer, "admin_key"), "key",
                        json_string(req_api_key_of(r)->secret));
    char location[96];
    snprintf(location, sizeof(location), "/v1/tenants/%s",
             json_string_value(json_object_get(answer, "tenant_id")));
    req_finish_with(r, 201, answer, "Location", location, "Cache-Control", "no-store", NULL);
}

static void add_template_arrays(struct template_cmd cmds[TEMPLATE_COMMANDS],
                                struct db_array *topics, struct db_array *hexes,
                                struct db_array *actions, struct db_array *afters)
{
    db_array_init(topics);
    db_array_init(hexes);
    db_array_init(actions);
    db_array_init(afters);
    for (size_t i = 0; i < TEMPLATE_COMMANDS; i++) {
        db_array_add(topics, cmds[i].topic);
        db_array_add(hexes, cmds[i].hex);
        db_array_add(actions, cmds[i].action);
        db_array_add(afters, cmds[i].after);
    }
}

/* The answer (kept in r->audit_result until the statement is done). */
static json_t *answer_of(struct req *r, const char *tenant, const char *key_id,
                         struct template_cmd cmds[TEMPLATE_COMMANDS])
{
    json_t *b = r->body, *branch = json_object_get(b, "branch");
    json_t *settings = json_array();
    static const char *const kinds[TEMPLATE_COMMANDS] = {SETTING_TOPUP_BONUS, SETTING_POINTS_POLICY,
                                                         "card-limits", "earning-rules", "tiers"};
    for (size_t i = 0; i < TEMPLATE_COMMANDS; i++)
        json_array_append_new(
            settings, json_pack("{s:s, s:s}", "kind", kinds[i], "change_id", cmds[i].change_id));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:{s:s, s:s, s:s}, s:o}", "tenant_id", tenant,
                     "name", str_or(b, "name", ""), "currency", str_or(b, "currency", "CNY"),
                     "time_zone", str_or(b, "time_zone", "Asia/Shanghai"), "template",
                     str_or(b, "template", ""), "branch", branch, "admin_key", "key_id", key_id,
                     "name", "first admin", "scope", "admin", "settings", settings);
}

/* Columns: the platform key's id (no row: not a platform key), whether
 * the time zone is known, its UTC offset now in minutes. */
static void on_platform_key(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        req_fail(r, 403, "forbidden", "creating a tenant needs a platform key");
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        req_reply_invalid(r, "time_zone", "not a known IANA time zone, e.g. Asia/Shanghai");
        return;
    }
    char actor[64], tenant[TENANT_ID_MAX + 1], key_id[32];
    snprintf(actor, sizeof(actor), "%s", PQgetvalue(res, 0, 0));
    const char *given = json_string_value(json_object_get(r->body, "tenant_id"));
    if (given) {
        snprintf(tenant, sizeof(tenant), "%s", given);
    } else {
        unsigned char raw[GENERATED_ID_BYTES];
        randombytes_buf(raw, sizeof(raw));
        memcpy(tenant, "t-", 3);
        sodium_bin2hex(tenant + 2, sizeof(tenant) - 2, raw, sizeof(raw));
    }
    struct template_cmd cmds[TEMPLATE_COMMANDS] = {{0}};
    if (!encode_template(cmds, tenant, actor, atoi(PQgetvalue(res, 0, 2)))) {
        free_template(cmds);
        req_fail(r, 500, "internal", "the template did not encode");
        return;
    }
    api_keys_make(r, key_id);
    r->audit_result = answer_of(r, tenant, key_id, cmds);
    struct db_array topics, hexes, actions, afters;
    add_template_arrays(cmds, &topics, &hexes, &actions, &afters);
    json_t *branch = json_object_get(r->body, "branch");
    const char *p[15] = {actor,
                         tenant,
                         str_or(r->body, "name", ""),
                         str_or(r->body, "currency", "CNY"),
                         str_or(r->body, "time_zone", "Asia/Shanghai"),
                         str_or(r->body, "template", ""),
                         str_or(branch, "branch_id", ""),
                         str_or(branch, "name", ""),
                         r->request_hash,
                         key_id,
                         http_peer(r->ex),
                         db_array_finish(&topics),
                         db_array_finish(&hexes),
                         db_array_finish(&actions),
                         db_array_finish(&afters)};
    int rc = pg_pool_query(r->app->pg, create_sql, 15, p, on_created, r);
    db_array_free(&topics);
    db_array_free(&hexes);
    db_array_free(&actions);
    db_array_free(&afters);
    free_template(cmds);
    if (rc < 0)
        req_fail_db(r, "queue full");
}

void tenants_create(struct http_exchange *ex, void *app)
{
    struct req *r = req_new(app, ex);
    const char *header = http_header(r->ex, "Authorization");
    const char *prefix = "Bearer ";
    if (!header || strncasecmp(header, prefix, strlen(prefix)) != 0 ||
        strlen(header) == strlen(prefix) || strlen(header) > 512) {
        req_fail(r, 401, "unauthorized", "send a platform key as 'Authorization: Bearer <key>'");
        return;
    }
    char hash[65];
    auth_hash_key(header + strlen(prefix), hash);
    if (!req_read_body(r) || !validate_tenant(r))
        return;
    const char *p[2] = {hash, str_or(r->body, "time_zone", "Asia/Shanghai")};
    if (pg_pool_query(r->app->pg,
                      "SELECT k.key_id, z.name IS NOT NULL, coalesce(EXTRACT(EPOCH FROM "
                      "z.utc_offset)::int / 60, 0) FROM platform_keys k LEFT JOIN "
                      "pg_timezone_names z ON z.name = $2 WHERE k.key_hash = $1 "
                      "AND k.revoked_at IS NULL",
                      2, p, on_platform_key, r) < 0)
        req_fail_db(r, "queue full");
}
