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

/* The key is valid: its rate, then its scope against the route, then on
 * to r->next (or an answer that ends r). */
static void grant_then(struct req *r, const struct key_grant *g)
{
    r->caller = g->caller;
    if (!key_within_rate(r, g->rate_limit_per_s))
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

static void refuse_key(struct req *r)
{
    req_fail(r, 401, "unauthorized", "the API key is unknown, revoked or expired");
}

/* PostgreSQL's answer for a key the cache did not hold: remembered (unless
 * the key changed meanwhile: key_cache_generation), then acted on. */
static void on_key(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    struct key_cache *keys = r->app->keys;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) != 1) {
        if (keys)
            key_cache_put_unknown(keys, r->key_hash, key_listen_now_ms(r->app), r->key_generation);
        refuse_key(r);
        return;
    }
    struct key_grant g = {.rate_limit_per_s = atoll(PQgetvalue(res, 0, 4)),
                          .expires_at_ms = atoll(PQgetvalue(res, 0, 5))};
    snprintf(g.caller.tenant_id, sizeof(g.caller.tenant_id), "%s", PQgetvalue(res, 0, 0));
    snprintf(g.caller.scope, sizeof(g.caller.scope), "%s", PQgetvalue(res, 0, 1));
    snprintf(g.caller.branch_id, sizeof(g.caller.branch_id), "%s", PQgetvalue(res, 0, 2));
    snprintf(g.caller.key_id, sizeof(g.caller.key_id), "%s", PQgetvalue(res, 0, 3));
    if (keys)
        key_cache_put_known(keys, r->key_hash, &g, r->key_generation);
    grant_then(r, &g);
}

/* A key is looked up in the instance's cache first (key_cache.h): a hit
 * costs no round trip. A revocation reaches the cache of every instance
 * through PostgreSQL's NOTIFY (key_listen.c), on this one at once
 * (api_keys.c), and expiry is checked by the clock on every hit. */
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
    auth_hash_key(header + strlen(prefix), r->key_hash);
    r->next = next;
    struct key_cache *keys = r->app->keys;
    if (keys) {
        struct key_grant g;
        switch (key_cache_get(keys, r->key_hash, key_listen_now_ms(r->app), &g)) {
        case KEY_CACHE_KNOWN:
            grant_then(r, &g);
            return;
        case KEY_CACHE_UNKNOWN:
            refuse_key(r);
            return;
        case KEY_CACHE_MISS:
            r->key_generation = key_cache_generation(keys);
            break;
        }
    }
    const char *params[1] = {r->key_hash};
    if (pg_pool_query(r->app->pg,
                      "SELECT tenant_id, scope, coalesce(branch_id, ''), key_id, "
                      "coalesce(rate_limit_per_s, 0), "
                      "coalesce((extract(epoch FROM expires_at) * 1000)::bigint, 0) FROM api_keys "
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
