/* Bearer API keys. Only the SHA-256 of a key is stored; a request's key is
 * hashed and looked up (tenant, scope, branch, not revoked or expired). */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ingest.h"

#define AUTH_KEY_MAX 256

static void sha256_hex(const char *text, char out[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)text, strlen(text));
    sodium_bin2hex(out, 65, digest, sizeof(digest));
}

static void on_key(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) != 1) {
        http_reply_problem(r->ex, 401, "unauthorized", "the API key is unknown, revoked or expired",
                           NULL);
        req_free(r);
        return;
    }
    snprintf(r->caller.tenant_id, sizeof(r->caller.tenant_id), "%s", PQgetvalue(res, 0, 0));
    snprintf(r->caller.scope, sizeof(r->caller.scope), "%s", PQgetvalue(res, 0, 1));
    snprintf(r->caller.branch_id, sizeof(r->caller.branch_id), "%s", PQgetvalue(res, 0, 2));
    if (strcmp(r->caller.scope, "analytics:read") == 0 &&
        strcmp(http_method(r->ex), "GET") != 0) {
        http_reply_problem(r->ex, 403, "forbidden", "this key may only read", NULL);
        req_free(r);
        return;
    }
    http_exchange_log_field(r->ex, "tenant_id", r->caller.tenant_id);
    r->next(r);
}

void auth_then(struct req *r, void (*next)(struct req *r))
{
    const char *header = http_header(r->ex, "Authorization");
    const char *prefix = "Bearer ";
    if (!header || strncasecmp(header, prefix, strlen(prefix)) != 0 ||
        strlen(header) > AUTH_KEY_MAX || strlen(header) == strlen(prefix)) {
        http_reply_problem(r->ex, 401, "unauthorized",
                           "send an API key as 'Authorization: Bearer <key>'", NULL);
        req_free(r);
        return;
    }
    char hash[65];
    sha256_hex(header + strlen(prefix), hash);
    snprintf(r->caller.key_id, sizeof(r->caller.key_id), "%.12s", hash);
    r->next = next;
    const char *params[1] = {hash};
    if (pg_pool_query(r->app->pg,
                      "SELECT tenant_id, scope, coalesce(branch_id, '') FROM api_keys "
                      "WHERE key_hash = $1 AND revoked_at IS NULL "
                      "AND (expires_at IS NULL OR expires_at > now())",
                      1, params, on_key, r) < 0)
        req_fail_db(r, "queue full");
}

bool auth_may_use_branch(struct req *r, const char *branch_id)
{
    if (strcmp(r->caller.scope, "pos") != 0)
        return true;
    return strcmp(r->caller.branch_id, branch_id) == 0;
}
