/* PUT/GET /v1/resources/{resource} (admin): what a tenant guards with
 * entitlements — a course, a door — and the rules that open it
 * (docs/entitlements.md, rules_entitlement.h). Ingest owns the rows
 * (entitlement_resources, migration 0015): a trigger announces each change
 * to every instance, which drops its cached rules (resource_listen.c), and
 * this instance drops them before it answers. A tier rule names a level of
 * the tenant's ladder; its rank is read from tiering's read contract when
 * the resource is set and stored with the rule. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock/clock.h"
#include "http/validate.h"
#include "ingest.h"
#include "tier_ladder.h"

#define RESOURCE_KIND_MAX 32  /* bytes before the ':' */
#define RESOURCE_ID_MAX   128 /* bytes after it */
#define RESOURCE_ID_TEXT  "<kind>:<id>, kind 1-32 of a-z 0-9 _ -, id 1-128 of A-Z a-z 0-9 . _ - ~"

static const char *const body_fields[] = {"rules", NULL};
static const char *const rule_fields[] = {"kind", "min_tier",    "product_ids",
                                          "skus", "within_days", NULL};
static const char *const rule_kinds[] = {"tier", "card", "purchase", NULL};

bool resource_name_ok(const char *name)
{
    const char *colon = name ? strchr(name, ':') : NULL;
    if (!colon || colon == name || colon - name > RESOURCE_KIND_MAX ||
        !islower((unsigned char)name[0]))
        return false;
    for (const char *p = name; p < colon; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_' && *p != '-')
            return false;
    size_t id_len = strlen(colon + 1);
    if (id_len == 0 || id_len > RESOURCE_ID_MAX)
        return false;
    for (const char *p = colon + 1; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-~", *p))
            return false;
    return true;
}

/* A rule's list of ids (product_ids or skus) checked into v. */
static void check_ids(struct validation *v, json_t *rule, const char *field, const char *where)
{
    char name[96];
    snprintf(name, sizeof(name), "%s.%s", where, field);
    json_t *ids = json_object_get(rule, field);
    size_t n = json_array_size(ids);
    if (!json_is_array(ids) || n < 1 || n > ENT_IDS_MAX) {
        validation_add(v, name, "required: 1 to 16 ids");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *id = json_array_get(ids, i);
        const char *s = json_string_value(id);
        if (!s || !*s || strlen(s) > TEXT_ID_BYTES_MAX || !members_text_utf8(s))
            validation_add(v, name, "each id: a string of 1 to 64 characters");
    }
}

/* One rule checked into v; the normalized rule (new reference). */
static json_t *check_rule(struct validation *v, json_t *rule, size_t i)
{
    char where[32];
    snprintf(where, sizeof(where), "rules[%zu]", i);
    struct validation one;
    validation_init(&one);
    const char *kind = NULL;
    if (!json_is_object(rule)) {
        validation_add(v, where, "must be an object");
        validation_free(&one);
        return NULL;
    }
    validate_no_unknown_fields(&one, rule, rule_fields);
    validate_enum(&one, rule, "kind", true, rule_kinds, &kind);
    json_t *out = NULL;
    if (kind && strcmp(kind, "tier") == 0) {
        const char *tier = NULL;
        validate_text(&one, rule, "min_tier", true, 1, TIER_NAME_MAX, TIER_NAME_MAX, &tier);
        if (tier)
            out = json_pack("{s:s, s:s}", "kind", kind, "min_tier", tier);
    } else if (kind) {
        const char *field = strcmp(kind, "card") == 0 ? "product_ids" : "skus";
        check_ids(&one, rule, field, "");
        int64_t days = 0;
        if (strcmp(kind, "purchase") == 0)
            validate_int(&one, rule, "within_days", false, 0, ENT_WITHIN_DAYS_MAX, &days);
        else if (json_object_get(rule, "within_days"))
            validation_add(&one, "within_days", "only a purchase rule has within_days");
        out = json_pack("{s:s, s:O}", "kind", kind, field, json_object_get(rule, field));
        if (days > 0)
            json_object_set_new(out, "within_days", json_integer(days));
    }
    /* the rule's problems, named under rules[i] */
    size_t k;
    json_t *e;
    json_array_foreach(one.errors, k, e)
    {
        char name[128];
        const char *f = json_string_value(json_object_get(e, "field"));
        snprintf(name, sizeof(name), "%s%s%s", where, f && f[0] != '.' ? "." : "", f ? f : "");
        validation_add(v, name, json_string_value(json_object_get(e, "message")));
    }
    if (!validation_ok(&one)) {
        json_decref(out);
        out = NULL;
    }
    validation_free(&one);
    return out;
}

/* The body checked into v; the normalized rules array or NULL. */
static json_t *check_body(struct validation *v, json_t *body)
{
    validate_no_unknown_fields(v, body, body_fields);
    json_t *rules = json_object_get(body, "rules");
    if (!json_is_array(rules) || json_array_size(rules) < 1 ||
        json_array_size(rules) > ENT_RULES_MAX) {
        validation_add(v, "rules", "required: 1 to 8 rules, any of which opens the resource");
        return NULL;
    }
    json_t *out = json_array();
    for (size_t i = 0; i < json_array_size(rules); i++) {
        json_t *one = check_rule(v, json_array_get(rules, i), i);
        if (one)
            json_array_append_new(out, one);
    }
    if (!validation_ok(v)) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* rules_json is normalized (stored) rules; fills out (cleared on error). */
bool resource_rules_from_json(json_t *rules_json, struct ent_rules *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = json_array_size(rules_json);
    if (n > ENT_RULES_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_array_get(rules_json, i);
        const char *kind = json_string_value(json_object_get(j, "kind"));
        struct ent_rule *r = &out->rules[out->n++];
        if (!kind) {
            ent_rules_clear(out);
            return false;
        }
        if (strcmp(kind, "tier") == 0) {
            r->kind = ENT_TIER;
            r->min_tier = strdup(json_string_value(json_object_get(j, "min_tier")) ?: "");
            r->min_rank = (int32_t)json_integer_value(json_object_get(j, "min_rank"));
            continue;
        }
        r->kind = strcmp(kind, "card") == 0 ? ENT_CARD : ENT_PURCHASE;
        json_t *ids = json_object_get(j, r->kind == ENT_CARD ? "product_ids" : "skus");
        r->n_ids = json_array_size(ids) > ENT_IDS_MAX ? ENT_IDS_MAX : json_array_size(ids);
        r->ids = calloc(r->n_ids ? r->n_ids : 1, sizeof(*r->ids));
        for (size_t k = 0; k < r->n_ids; k++)
            r->ids[k] = strdup(json_string_value(json_array_get(ids, k)) ?: "");
        r->within_days = (int32_t)json_integer_value(json_object_get(j, "within_days"));
        if (r->n_ids == 0) {
            ent_rules_clear(out);
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------ PUT */

static void on_stored(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    const char *resource = http_param(r->ex, "resource");
    char key[INGEST_KEY_MAX * 2 + 256];
    snprintf(key, sizeof(key), "%s %s", r->caller.tenant_id, resource);
    if (r->app->resources)
        resource_cache_forget(r->app->resources, key); /* before the answer */
    json_t *body = json_pack("{s:s, s:O, s:I}", "resource", resource, "rules",
                             json_object_get(r->body, "rules"), "version",
                             (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10));
    req_finish(r, 200, body);
}

/* The row and its audit row in one statement: $1 tenant, $2 actor key
 * id, $3 actor address, $4 resource, $5 rules, $6 now. */
/* clang-format off */
static const char store_sql[] =
    "WITH old AS (SELECT rules FROM entitlement_resources WHERE tenant_id = $1 AND resource = $4), "
    "up AS (INSERT INTO entitlement_resources (tenant_id, resource, rules, updated_at) "
    "VALUES ($1, $4, $5::jsonb, $6::timestamptz) ON CONFLICT (tenant_id, resource) DO UPDATE "
    "SET rules = EXCLUDED.rules, updated_at = EXCLUDED.updated_at, "
    "version = entitlement_resources.version + 1 RETURNING version), "
    "changed AS (SELECT $4::text AS target, (SELECT rules FROM old) AS before, "
    "$5::jsonb AS after), "
    AUDIT_CTE("resources.put")
    "SELECT version FROM up";
/* clang-format on */

static void store(struct req *r)
{
    char *rules = json_dumps(json_object_get(r->body, "rules"), JSON_COMPACT);
    char now[32];
    event_format_time(clock_now_us(), now);
    const char *p[6] = {r->caller.tenant_id,
                        r->caller.key_id,
                        http_peer(r->ex),
                        http_param(r->ex, "resource"),
                        rules,
                        now};
    int rc = pg_pool_query(r->app->pg, store_sql, 6, p, on_stored, r);
    free(rules);
    if (rc < 0)
        req_fail_db(r, "queue full");
}

/* The ladder in force: each tier rule gets its level's rank, or 422. */
static void on_ladder(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    struct tier_level levels[TIER_LEVELS_MAX];
    size_t n = 0;
    if (PQntuples(res) > 0) {
        json_t *config = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        n = config ? tier_ladder_levels(config, levels) : 0;
        json_decref(config);
    }
    struct validation v;
    validation_init(&v);
    json_t *rules = json_object_get(r->body, "rules");
    for (size_t i = 0; i < json_array_size(rules); i++) {
        json_t *rule = json_array_get(rules, i);
        const char *name = json_string_value(json_object_get(rule, "min_tier"));
        if (!name)
            continue;
        size_t k = 0;
        while (k < n && strcmp(levels[k].name, name) != 0)
            k++;
        char field[48];
        snprintf(field, sizeof(field), "rules[%zu].min_tier", i);
        if (k == n)
            validation_add(&v, field, "no level of this name in the tenant's tier ladder");
        else
            json_object_set_new(rule, "min_rank", json_integer(levels[k].rank));
    }
    if (req_validated(r, &v))
        store(r);
}

static void put_authorized(struct req *r)
{
    const char *resource = http_param(r->ex, "resource");
    if (!resource_name_ok(resource)) {
        req_reply_invalid(r, "resource", "must be " RESOURCE_ID_TEXT);
        return;
    }
    if (!req_read_body(r))
        return;
    struct validation v;
    validation_init(&v);
    json_t *rules = check_body(&v, r->body);
    if (!rules) {
        req_fail_validation(r, &v);
        return;
    }
    validation_free(&v);
    json_object_set_new(r->body, "rules", rules);
    const char *p[1] = {r->caller.tenant_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT config::text FROM tiering.read_tier_ladders WHERE tenant_id = $1 "
                      "ORDER BY version DESC LIMIT 1",
                      1, p, on_ladder, r) < 0)
        req_fail_db(r, "queue full");
}

void resources_put(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), put_authorized);
}

/* ------------------------------------------------------------ GET */

static void on_row(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        req_fail(r, 404, "resource_not_found", "no such resource in this tenant");
        return;
    }
    json_t *rules = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    json_t *body = json_pack("{s:s, s:o, s:I, s:s}", "resource", http_param(r->ex, "resource"),
                             "rules", rules ? rules : json_array(), "version",
                             (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10), "updated_at",
                             PQgetvalue(res, 0, 2));
    req_finish(r, 200, body);
}

static void get_authorized(struct req *r)
{
    const char *resource = http_param(r->ex, "resource");
    if (!resource_name_ok(resource)) {
        req_fail(r, 404, "resource_not_found", "no such resource in this tenant");
        return;
    }
    const char *p[2] = {r->caller.tenant_id, resource};
    if (pg_pool_query(r->app->pg,
                      "SELECT rules::text, version, to_char(updated_at AT TIME ZONE 'UTC', "
                      "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM entitlement_resources "
                      "WHERE tenant_id = $1 AND resource = $2",
                      2, p, on_row, r) < 0)
        req_fail_db(r, "queue full");
}

void resources_get(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), get_authorized);
}
