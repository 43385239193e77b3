/* Bearer API keys. Only the SHA-256 of a key is stored; a request's key is
 * hashed and looked up (tenant, scope, branch, not revoked or expired).
 * Scopes are checked here, before any handler runs: analytics:read only
 * reads, and an app key (publishable: shipped inside member apps, so
 * anyone may hold it) reaches only the login routes, which in turn take
 * nothing but an app key.
 * SHA-256 rather than a slow password hash: keys are 32 random bytes, so
 * there is nothing to guess, and every request pays for the hash. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest.h"

#define AUTH_KEY_MAX 256

void auth_hash_key(const char *text, char out[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)text, strlen(text));
    sodium_bin2hex(out, 65, digest, sizeof(digest));
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Takes a token from name's bucket; otherwise answers 429 and ends r. */
static bool within_rate(struct req *r, const char *name, struct rate_limit limit)
{
    int retry_after_s = 1;
    if (rate_limit_take(&r->app->limiter, name, limit, now_ms(), &retry_after_s))
        return true;
    r->app->rate_limited++;
    req_fail_retry_after(r, 429, "rate_limited", "too many requests; retry after the given seconds",
                         retry_after_s);
    return false;
}

bool auth_within_rate(struct req *r, const char *name, long long per_s, long long burst)
{
    struct rate_limit limit = {per_s, burst};
    return within_rate(r, name, limit);
}

/* Per client address, before the key is even looked up: guessing keys or
 * flooding costs the database nothing past the limit. */
bool auth_address_within_rate(struct req *r)
{
    char name[RATE_NAME_MAX];
    snprintf(name, sizeof(name), "ip:%s", http_peer(r->ex));
    struct rate_limit limit = {r->app->rate_ip_per_s, r->app->rate_ip_burst};
    return within_rate(r, name, limit);
}

/* Per key: its own rate (burst twice that) or the instance default. */
static bool key_within_rate(struct req *r, long long own_per_s)
{
    char name[RATE_NAME_MAX];
    snprintf(name, sizeof(name), "key:%s", r->caller.key_id);
    struct rate_limit limit = {r->app->rate_key_per_s, r->app->rate_key_burst};
    if (own_per_s > 0)
        limit = (struct rate_limit){own_per_s, 2 * own_per_s};
    return within_rate(r, name, limit);
}

static void on_key(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) != 1) {
        req_fail(r, 401, "unauthorized", "the API key is unknown, revoked or expired");
        return;
    }
    snprintf(r->caller.tenant_id, sizeof(r->caller.tenant_id), "%s", PQgetvalue(res, 0, 0));
    snprintf(r->caller.scope, sizeof(r->caller.scope), "%s", PQgetvalue(res, 0, 1));
    snprintf(r->caller.branch_id, sizeof(r->caller.branch_id), "%s", PQgetvalue(res, 0, 2));
    snprintf(r->caller.key_id, sizeof(r->caller.key_id), "%s", PQgetvalue(res, 0, 3));
    if (!key_within_rate(r, atoll(PQgetvalue(res, 0, 4))))
        return;
    if (strcmp(r->caller.scope, "analytics:read") == 0 && strcmp(http_method(r->ex), "GET") != 0) {
        req_fail(r, 403, "forbidden", "this key may only read");
        return;
    }
    bool app_key = strcmp(r->caller.scope, "app") == 0;
    if (app_key != r->app_route) {
        req_fail(r, 403, "forbidden",
                 app_key ? "an app key serves only member login (/v1/auth/*)"
                         : "member login takes the tenant's app key");
        return;
    }
    http_exchange_log_field(r->ex, "tenant_id", r->caller.tenant_id);
    req_continue(r);
}

void auth_then(struct req *r, void (*next)(struct req *r))
{
    if (!auth_address_within_rate(r))
        return;
    const char *header = http_header(r->ex, "Authorization");
    const char *prefix = "Bearer ";
    if (!header || strncasecmp(header, prefix, strlen(prefix)) != 0 ||
        strlen(header) > AUTH_KEY_MAX || strlen(header) == strlen(prefix)) {
        req_fail(r, 401, "unauthorized", "send an API key as 'Authorization: Bearer <key>'");
        return;
    }
    char hash[65];
    auth_hash_key(header + strlen(prefix), hash);
    r->next = next;
    const char *params[1] = {hash};
    /* Every request reads the key's row: a revocation or an expiry holds
     * on every ingest instance from the next request on. */
    if (pg_pool_query(r->app->pg,
                      "SELECT tenant_id, scope, coalesce(branch_id, ''), key_id, "
                      "coalesce(rate_limit_per_s, 0) FROM api_keys "
                      "WHERE key_hash = $1 AND revoked_at IS NULL "
                      "AND (expires_at IS NULL OR expires_at > now())",
                      1, params, on_key, r) < 0)
        req_fail_db(r, "queue full");
}

void auth_app_then(struct req *r, void (*next)(struct req *r))
{
    r->app_route = true;
    auth_then(r, next);
}

bool auth_may_use_branch(struct req *r, const char *branch_id)
{
    if (strcmp(r->caller.scope, "pos") != 0)
        return true;
    return strcmp(r->caller.branch_id, branch_id) == 0;
}

bool auth_require_admin(struct req *r)
{
    if (strcmp(r->caller.scope, "admin") == 0)
        return true;
    req_fail(r, 403, "forbidden", "this action needs an admin key");
    return false;
}

static void admin_checked(struct req *r)
{
    void (*next)(struct req * r) = r->admin_next;
    if (auth_require_admin(r))
        next(r);
}

void auth_admin_then(struct req *r, void (*next)(struct req *r))
{
    r->admin_next = next;
    auth_then(r, admin_checked);
}
