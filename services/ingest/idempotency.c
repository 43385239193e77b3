/* Idempotency-Key handling. A key belongs to a tenant and remembers the
 * hash of the first request, the command it became and, once known, the
 * answer. A retry with the same body gets the first answer, or (when the
 * first never got one: a crash, a timeout) resumes waiting for the same
 * command, which the ledger applies at most once. */
#include <sodium.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "ingest.h"
#include "log/log.h"

void idem_hash_request(struct req *r)
{
    crypto_hash_sha256_state st;
    unsigned char digest[crypto_hash_sha256_BYTES];
    size_t len = 0;
    const unsigned char *body = http_body(r->ex, &len);
    const char *method = http_method(r->ex), *path = http_path(r->ex);
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)method, strlen(method));
    crypto_hash_sha256_update(&st, (const unsigned char *)" ", 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)path, strlen(path));
    crypto_hash_sha256_update(&st, (const unsigned char *)"\n", 1);
    if (body && len)
        crypto_hash_sha256_update(&st, body, len);
    crypto_hash_sha256_final(&st, digest);
    sodium_bin2hex(r->request_hash, sizeof(r->request_hash), digest, sizeof(digest));
}

/* Answers from a stored answer. */
static void replay(struct req *r, int status, const char *body_text)
{
    size_t len = strlen(body_text);
    req_finish_raw(r, status, status >= 400 ? "application/problem+json" : "application/json",
                   body_text, len);
}

/* Handles an existing record (columns: request_hash, command_id,
 * response_status, response_body). Returns true when r was answered;
 * false when the command must be (re)sent: r->command_id is then the
 * stored one. */
static bool known_key(struct req *r, PGresult *res)
{
    if (strcmp(PQgetvalue(res, 0, 0), r->request_hash) != 0) {
        req_fail(r, 422, "idempotency_key_reused",
                 "this Idempotency-Key was used with a different request");
        return true;
    }
    if (!PQgetisnull(res, 0, 2)) {
        replay(r, atoi(PQgetvalue(res, 0, 2)), PQgetvalue(res, 0, 3));
        return true;
    }
    const char *command_id = PQgetvalue(res, 0, 1);
    if (!command_id[0] || waiter_pending(r->app, command_id)) {
        req_fail(r, 409, "request_in_progress",
                 "a request with this Idempotency-Key is still in progress");
        return true;
    }
    snprintf(r->command_id, sizeof(r->command_id), "%s", command_id);
    return false;
}

static void on_lookup(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0 || !known_key(r, res))
        req_continue(r);
}

static void lookup(struct req *r)
{
    const char *params[2] = {r->caller.tenant_id, r->idem_key};
    if (pg_pool_query(r->app->pg,
                      "SELECT request_hash, coalesce(command_id, ''), response_status, "
                      "response_body FROM idempotency_keys "
                      "WHERE tenant_id = $1 AND idempotency_key = $2",
                      2, params, on_lookup, r) < 0)
        req_fail_db(r, "queue full");
}

static void on_claim(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 1)
        req_continue(r); /* ours */
    else
        lookup(r); /* someone had it: replay, refuse or resume */
}

/* Reads the Idempotency-Key header; false after answering a bad one. */
static bool read_key(struct req *r)
{
    const char *key = http_header(r->ex, "Idempotency-Key");
    if (!key)
        return true;
    size_t len = strlen(key);
    if (len == 0 || len >= INGEST_KEY_MAX) {
        req_fail(r, 422, "validation_failed", "Idempotency-Key must be 1 to 127 characters");
        return false;
    }
    snprintf(r->idem_key, sizeof(r->idem_key), "%s", key);
    idem_hash_request(r);
    return true;
}

void idem_claim_then(struct req *r, void (*next)(struct req *r))
{
    if (!read_key(r))
        return;
    r->next = next;
    if (!r->idem_key[0]) {
        next(r); /* nothing to claim: still the route's */
        return;
    }
    req_change_state(r, REQ_IDEMPOTENCY);
    const char *params[4] = {r->caller.tenant_id, r->idem_key, r->request_hash, r->command_id};
    if (pg_pool_query(r->app->pg,
                      "INSERT INTO idempotency_keys (tenant_id, idempotency_key, request_hash, "
                      "command_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
                      4, params, on_claim, r) < 0)
        req_fail_db(r, "queue full");
}

void idem_lookup_then(struct req *r, void (*next)(struct req *r))
{
    if (!read_key(r))
        return;
    r->next = next;
    if (!r->idem_key[0]) {
        next(r); /* nothing to look up: still the route's */
        return;
    }
    req_change_state(r, REQ_IDEMPOTENCY);
    lookup(r);
}

static void on_stored(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    if (!res)
        log_fields(LOG_WARN, "could not record an idempotent answer", "error", err, NULL);
}

void idem_store_answer(struct ingest *app, const struct caller *c, const char *idem_key, int status,
                       json_t *body)
{
    char status_text[8];
    snprintf(status_text, sizeof(status_text), "%d", status);
    char *text = json_dumps(body, JSON_COMPACT);
    const char *params[4] = {c->tenant_id, idem_key, status_text, text};
    if (pg_pool_query(app->pg,
                      "UPDATE idempotency_keys SET response_status = $3, response_body = $4 "
                      "WHERE tenant_id = $1 AND idempotency_key = $2",
                      4, params, on_stored, NULL) < 0)
        log_warn("could not queue an idempotent answer");
    free(text);
}
