/* Member self-service with a session token: GET /v1/me (the member's own
 * profile and balances, the same view staff see) and PUT /v1/me/password
 * (argon2id; the password never reaches a log, an idempotency record or
 * the database). Member tokens reach only these and logout: every other
 * route looks them up as API keys and answers 401. */
#include <stdio.h>
#include <string.h>

#include "http/validate.h"
#include "ingest.h"

static void me_authenticated(struct req *r)
{
    char member_id[INGEST_KEY_MAX];
    snprintf(member_id, sizeof(member_id), "%s", r->member_id);
    r->with_tier_view = true; /* the member sees its progress and history too */
    member_view_reply(r, member_id);
}

void me_get(struct http_exchange *ex, void *app)
{
    member_session_then(req_new(app, ex), me_authenticated);
}

static void on_password_stored(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    req_finish_no_content(r);
}

static void on_password_hashed(void *arg, int result, const char *hash)
{
    struct req *r = arg;
    if (result != 1) {
        req_fail(r, 500, "internal", "the password could not be hashed");
        return;
    }
    const char *p[3] = {r->caller.tenant_id, r->member_id, hash};
    if (pg_pool_query(r->app->pg,
                      "INSERT INTO member_credentials (tenant_id, member_id, password_hash) "
                      "VALUES ($1, $2, $3) ON CONFLICT (tenant_id, member_id) DO UPDATE SET "
                      "password_hash = $3, updated_at = now()",
                      3, p, on_password_stored, r) < 0)
        req_fail_db(r, "queue full");
}

static void set_password_authenticated(struct req *r)
{
    static const char *const fields[] = {"password", NULL};
    if (!req_read_body(r))
        return;
    struct validation v;
    validation_init(&v);
    const char *password = NULL;
    validate_no_unknown_fields(&v, r->body, fields);
    validate_string(&v, r->body, "password", true, PWHASH_PASSWORD_MIN, PWHASH_PASSWORD_MAX,
                    &password);
    if (!req_validated(r, &v))
        return;
    if (pwhash_hash(&r->app->pwhash, password, on_password_hashed, r) < 0) {
        req_fail_retry_after(r, 503, "busy", "too many password changes at once", 1);
    }
}

void me_set_password(struct http_exchange *ex, void *app)
{
    member_session_then(req_new(app, ex), set_password_authenticated);
}
