/* API keys, managed by admins: POST /v1/api-keys makes one and shows it
 * once (only its SHA-256 is stored), GET lists the tenant's keys without
 * secrets, DELETE /v1/api-keys/{key_id} revokes one. Scopes: admin, pos
 * (bound to one branch of the tenant), analytics:read (GET only), app
 * (publishable: only the member login routes, see auth.c). Every change is
 * audited in the same statement.
 *
 * Idempotency-Key is not honoured here on purpose: replaying the answer
 * would mean storing the secret. A retried create makes a second key,
 * which the admin sees in the list and revokes. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datetime/datetime.h"
#include "http/validate.h"
#include "ingest.h"

#define API_KEY_PREFIX       "tsk_"
#define API_KEY_RANDOM_BYTES 32
#define API_KEY_TEXT_BYTES   (sizeof(API_KEY_PREFIX) + 2 * API_KEY_RANDOM_BYTES)
#define KEY_ID_RANDOM_BYTES  8
#define KEY_NAME_MAX         100
#define KEY_LIFETIME_MAX_S   (10LL * 366 * 24 * 3600) /* ten years */
#define KEYS_LIST_MAX        "500"
#define KEY_RATE_MAX         100000 /* as the api_keys check constraint */

static const char *const create_fields[] = {
    "name", "scope", "branch_id", "expires_at", "rate_limit_per_s", NULL};
static const char *const scopes[] = {"admin", "pos", "analytics:read", "app", NULL};

/* RFC 3339 UTC with seconds ("2027-01-31T00:00:00Z"); false otherwise. */
static bool parse_utc(const char *s, time_t *out)
{
    int64_t us;
    if (strlen(s) != 20 || s[10] != 'T' || s[19] != 'Z' || !datetime_parse_rfc3339_us(s, &us))
        return false;
    *out = (time_t)(us / 1000000);
    return true;
}

struct key_request {
    const char *name, *scope, *branch_id, *expires_at;
    int64_t rate_limit_per_s; /* 0: the instance default */
    char rate_text[24];
};

static bool validate_key_request(struct req *r, struct key_request *k)
{
    struct validation v;
    validation_init(&v);
    *k = (struct key_request){0};
    validate_no_unknown_fields(&v, r->body, create_fields);
    validate_string(&v, r->body, "name", true, 1, KEY_NAME_MAX, &k->name);
    validate_enum(&v, r->body, "scope", true, scopes, &k->scope);
    ingest_validate_id(&v, r->body, "branch_id", false, &k->branch_id);
    bool pos = k->scope && strcmp(k->scope, "pos") == 0;
    if (pos && !k->branch_id)
        validation_add(&v, "branch_id", "a pos key is bound to one branch: branch_id is required");
    if (!pos && k->branch_id)
        validation_add(&v, "branch_id", "only pos keys are bound to a branch");
    time_t at = 0, now = time(NULL);
    if (validate_string(&v, r->body, "expires_at", false, 20, 20, &k->expires_at) &&
        k->expires_at &&
        (!parse_utc(k->expires_at, &at) || at <= now || at - now > KEY_LIFETIME_MAX_S))
        validation_add(&v, "expires_at",
                       "must be a future RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SSZ) within 10 years");
    validate_int(&v, r->body, "rate_limit_per_s", false, 1, KEY_RATE_MAX, &k->rate_limit_per_s);
    snprintf(k->rate_text, sizeof(k->rate_text), "%lld", (long long)k->rate_limit_per_s);
    if (!req_validated(r, &v))
        return false;
    return true;
}

/* The secret (shown once) in the route's secret; r->request_hash its SHA-256. */
void api_keys_make(struct req *r, char key_id[32])
{
    unsigned char raw[API_KEY_RANDOM_BYTES], id[KEY_ID_RANDOM_BYTES];
    randombytes_buf(raw, sizeof(raw));
    randombytes_buf(id, sizeof(id));
    char *key = malloc(API_KEY_TEXT_BYTES);
    memcpy(key, API_KEY_PREFIX, sizeof(API_KEY_PREFIX) - 1);
    sodium_bin2hex(key + sizeof(API_KEY_PREFIX) - 1, 2 * API_KEY_RANDOM_BYTES + 1, raw,
                   sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    memcpy(key_id, "key_", 4);
    sodium_bin2hex(key_id + 4, 2 * KEY_ID_RANDOM_BYTES + 1, id, sizeof(id));
    auth_hash_key(key, r->request_hash);
    req_api_key_of(r)->secret = key;
}

static void on_created(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        req_reply_invalid(r, "branch_id", "no such branch in this tenant");
        return;
    }
    json_t *answer = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    json_object_set_new(answer, "key", json_string(req_api_key_of(r)->secret));
    char location[80];
    snprintf(location, sizeof(location), "/v1/api-keys/%s",
             json_string_value(json_object_get(answer, "key_id")));
    req_finish_with(r, 201, answer, "Location", location, "Cache-Control", "no-store", NULL);
}

static void create_authorized(struct req *r)
{
    if (!req_read_body(r))
        return;
    struct key_request k;
    if (!validate_key_request(r, &k))
        return;
    char key_id[32];
    api_keys_make(r, key_id);
    const char *p[10] = {r->caller.tenant_id,
                         r->caller.key_id,
                         http_peer(r->ex),
                         r->request_hash,
                         key_id,
                         k.name,
                         k.scope,
                         k.branch_id,
                         k.expires_at,
                         k.rate_limit_per_s ? k.rate_text : NULL};
    if (pg_pool_query(
            r->app->pg,
            "WITH changed AS (INSERT INTO api_keys (key_hash, key_id, tenant_id, name, scope, "
            "branch_id, expires_at, created_by, rate_limit_per_s) SELECT $4, $5, $1, $6, $7, $8, "
            "$9::timestamptz, $2, $10::int WHERE $8::text IS NULL OR EXISTS (SELECT 1 FROM "
            "branches "
            "WHERE tenant_id = $1 AND branch_id = $8) RETURNING key_id AS target, "
            "NULL::jsonb AS before, jsonb_build_object('key_id', key_id, 'name', name, "
            "'scope', scope, 'branch_id', branch_id, 'expires_at', expires_at, "
            "'rate_limit_per_s', rate_limit_per_s, 'created_at', created_at) AS after), " AUDIT_CTE(
                "api_key.create") "SELECT after::text FROM changed",
            10, p, on_created, r) < 0)
        req_fail_db(r, "queue full");
}

void api_keys_create(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), create_authorized);
}

static void on_listed(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    json_t *keys = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    req_finish(r, 200, json_pack("{s:o}", "api_keys", keys ? keys : json_array()));
}

static void list_authorized(struct req *r)
{
    const char *p[1] = {r->caller.tenant_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT coalesce(json_agg(json_build_object('key_id', key_id, 'name', name, "
                      "'scope', scope, 'branch_id', branch_id, 'created_at', created_at, "
                      "'expires_at', expires_at, 'revoked_at', revoked_at, 'rate_limit_per_s', "
                      "rate_limit_per_s) ORDER BY created_at), "
                      "'[]')::text FROM (SELECT * FROM api_keys WHERE tenant_id = $1 "
                      "ORDER BY created_at DESC LIMIT " KEYS_LIST_MAX ") k",
                      1, p, on_listed, r) < 0)
        req_fail_db(r, "queue full");
}

void api_keys_list(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), list_authorized);
}

static void on_revoked(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQgetisnull(res, 0, 0)) {
        req_fail(r, 404, "not_found", "no such API key");
        return;
    }
    /* This instance forgets the key before it answers, so the caller's
     * next request here is refused; the others hear it from the trigger's
     * NOTIFY when the statement commits (key_listen.c). */
    if (r->app->keys)
        key_cache_forget(r->app->keys, PQgetvalue(res, 0, 0));
    req_finish(r, 200, json_pack("{s:s, s:b}", "key_id", req_api_key_of(r)->target, "revoked", 1));
}

/* Revoking twice answers the same and audits once. The statement
 * answers the key's hash (NULL: no such key). */
static void revoke_authorized(struct req *r)
{
    const char *key_id = http_param(r->ex, "key_id");
    struct req_api_key *k = req_api_key_of(r);
    snprintf(k->target, sizeof(k->target), "%s", key_id ? key_id : "");
    const char *p[4] = {r->caller.tenant_id, r->caller.key_id, http_peer(r->ex), k->target};
    if (pg_pool_query(r->app->pg,
                      "WITH changed AS (UPDATE api_keys SET revoked_at = now() WHERE tenant_id = "
                      "$1 AND key_id = $4 AND revoked_at IS NULL RETURNING key_id AS target, "
                      "jsonb_build_object('revoked_at', NULL) AS before, "
                      "jsonb_build_object('revoked_at', revoked_at) AS after), " AUDIT_CTE(
                          "api_key.revoke") "SELECT (SELECT key_hash FROM api_keys WHERE "
                                            "tenant_id = $1 AND key_id = $4)",
                      4, p, on_revoked, r) < 0)
        req_fail_db(r, "queue full");
}

void api_keys_revoke(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), revoke_authorized);
}
