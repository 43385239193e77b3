/* The life of one API request across its asynchronous steps. */
#include <assert.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/validate.h"
#include "ids/uuid7.h"
#include "ingest.h"
#include "log/log.h"
#include "util/pool.h"

/* Requests freed on the loop, kept for the next ones (pool.h). */
#define REQS_KEPT 256
static _Thread_local struct pool reqs = POOL_INIT(sizeof(struct req), REQS_KEPT);

/* Continues the client's W3C trace (or starts one) and names the request
 * in its access-log line; the member is known from the path when there. */
static void req_trace_start(struct req *r)
{
    char trace_id[TRACE_ID_SIZE];
    trace_continue(http_header(r->ex, "traceparent"), r->traceparent);
    trace_id_of(r->traceparent, trace_id);
    http_exchange_log_field(r->ex, "trace_id", trace_id);
    const char *member = http_param(r->ex, "member_id");
    if (member)
        http_exchange_log_field(r->ex, "member_id", member);
}

/* The edges of a request's life: allowed[from][to]. Every state may end
 * (an answer can go out from anywhere); nothing leaves REQ_ENDED. */
static const bool allowed[REQ_STATES][REQ_STATES] = {
    [REQ_AUTHENTICATING] = {[REQ_ROUTE] = true, [REQ_ENDED] = true},
    [REQ_ROUTE] = {[REQ_TIER] = true,
                   [REQ_IDEMPOTENCY] = true,
                   [REQ_WAITING] = true,
                   [REQ_RECORDING] = true,
                   [REQ_ENDED] = true},
    [REQ_TIER] = {[REQ_ROUTE] = true, [REQ_ENDED] = true},
    [REQ_IDEMPOTENCY] = {[REQ_ROUTE] = true, [REQ_ENDED] = true},
    [REQ_WAITING] = {[REQ_RECORDING] = true, [REQ_ENDED] = true},
    /* a pending operation recorded, then the verdict's audit row */
    [REQ_RECORDING] = {[REQ_RECORDING] = true, [REQ_ENDED] = true},
};

void req_change_state(struct req *r, enum req_state state)
{
    assert(r->state < REQ_STATES && state < REQ_STATES);
    assert(allowed[r->state][state]);
    r->state = state;
}

void req_continue(struct req *r)
{
    assert(r->next);
    req_change_state(r, REQ_ROUTE);
    r->next(r);
}

struct req *req_new(struct ingest *app, struct http_exchange *ex)
{
    struct req *r = pool_take(&reqs);
    assert(r);
    r->state = REQ_AUTHENTICATING; /* every route starts with its caller's key or session */
    r->app = app;
    r->ex = ex;
    r->wait_ms = (int)app->wait_default_ms;
    app->requests++;
    app->requests_live++;
    req_trace_start(r);
    return r;
}

/* The route data's own memory; secrets are wiped first. */
static void route_release(struct req *r)
{
    switch (r->route_kind) {
    case REQ_KIND_REGISTRATION:
        free(r->route.registration.attributes_json);
        break;
    case REQ_KIND_API_KEY:
        if (r->route.api_key.secret) {
            sodium_memzero(r->route.api_key.secret, strlen(r->route.api_key.secret));
            free(r->route.api_key.secret);
        }
        break;
    case REQ_KIND_LOGIN:
        if (r->route.login.state) {
            sodium_memzero(r->route.login.state, r->route.login.size);
            free(r->route.login.state);
        }
        break;
    case REQ_KIND_PLAIN:
    case REQ_KIND_LIST:
        break;
    }
}

static void route_claim(struct req *r, enum req_route_kind kind)
{
    assert(r->route_kind == REQ_KIND_PLAIN || r->route_kind == kind);
    r->route_kind = kind;
}

struct req_registration *req_registration_of(struct req *r)
{
    route_claim(r, REQ_KIND_REGISTRATION);
    return &r->route.registration;
}

struct req_list *req_list_of(struct req *r)
{
    route_claim(r, REQ_KIND_LIST);
    return &r->route.list;
}

struct req_api_key *req_api_key_of(struct req *r)
{
    route_claim(r, REQ_KIND_API_KEY);
    return &r->route.api_key;
}

struct req_login *req_login_of(struct req *r)
{
    route_claim(r, REQ_KIND_LOGIN);
    return &r->route.login;
}

/* The only place a request's memory goes: every end below calls it once
 * the answer is out (the exchange is freed by the reply itself). */
static void req_free(struct req *r)
{
    assert(r);
    req_change_state(r, REQ_ENDED);
    if (r->app) { /* NULL only in a test's hand-made request (tests/fuzz) */
        assert(r->app->requests_live > 0);
        r->app->requests_live--;
    }
    json_decref(r->body);
    json_decref(r->audit_result);
    member_view_free(r->view);
    free(r->command);
    route_release(r);
    if (r->headers)
        rd_kafka_headers_destroy(r->headers);
    pool_give(&reqs, r);
}

void req_finish(struct req *r, int status, json_t *body)
{
    http_reply_json(r->ex, status, body, NULL);
    req_free(r);
}

void req_finish_with(struct req *r, int status, json_t *body, ...)
{
    /* http_reply_json takes its headers as arguments, not a va_list:
     * pass on up to REQ_ANSWER_HEADERS_MAX pairs by position. */
    const char *h[2 * REQ_ANSWER_HEADERS_MAX] = {0};
    size_t n = 0;
    va_list ap;
    va_start(ap, body);
    for (const char *name = va_arg(ap, const char *); name; name = va_arg(ap, const char *)) {
        assert(n < 2 * REQ_ANSWER_HEADERS_MAX);
        h[n++] = name;
        h[n++] = va_arg(ap, const char *);
    }
    va_end(ap);
    if (n == 0)
        http_reply_json(r->ex, status, body, NULL);
    else if (n == 2)
        http_reply_json(r->ex, status, body, h[0], h[1], NULL);
    else
        http_reply_json(r->ex, status, body, h[0], h[1], h[2], h[3], NULL);
    req_free(r);
}

void req_finish_verdict(struct req *r, int status, json_t *body)
{
    answer_json(r->ex, status, body);
    req_free(r);
}

void req_finish_raw(struct req *r, int status, const char *content_type, const char *body,
                    size_t len)
{
    http_reply_raw(r->ex, status, content_type, body, len);
    req_free(r);
}

void req_finish_owned(struct req *r, int status, const char *content_type, char *body, size_t len,
                      bool wipe)
{
    http_reply_owned(r->ex, status, content_type, body, len, wipe);
    req_free(r);
}

void req_finish_no_content(struct req *r)
{
    http_reply_raw(r->ex, 204, NULL, NULL, 0);
    req_free(r);
}

void req_fail(struct req *r, int status, const char *code, const char *detail)
{
    http_reply_problem(r->ex, status, code, detail, NULL);
    req_free(r);
}

void req_fail_retry_after(struct req *r, int status, const char *code, const char *detail,
                          int retry_after_s)
{
    http_reply_problem_retry_after(r->ex, status, code, detail, retry_after_s);
    req_free(r);
}

void req_fail_validation(struct req *r, struct validation *v)
{
    validation_reply(r->ex, v);
    req_free(r);
}

bool req_validated(struct req *r, struct validation *v)
{
    if (!validation_ok(v)) {
        req_fail_validation(r, v);
        return false;
    }
    validation_free(v);
    return true;
}

bool req_at_branch(struct req *r, const char *branch)
{
    assert(branch != r->branch_id);
    if (branch && branch[0] && !auth_may_use_branch(r, branch)) {
        req_fail(r, 403, "forbidden", "this key acts only for its own branch");
        return false;
    }
    snprintf(r->branch_id, sizeof(r->branch_id), "%s", branch ? branch : "");
    return true;
}

void req_fail_db(struct req *r, const char *err)
{
    log_fields(LOG_ERROR, "database statement failed", "error", err ? err : "", NULL);
    req_fail(r, 503, "unavailable", "the database is unavailable; retry shortly");
}

void req_reply_invalid(struct req *r, const char *field, const char *message)
{
    struct validation v;
    validation_init(&v);
    validation_add(&v, field, message);
    req_fail_validation(r, &v);
}

void req_fail_no_member(struct req *r)
{
    req_fail(r, 404, "not_found", "no such member");
}

bool req_member_row(struct req *r, const PGresult *res, const char *err)
{
    if (!res) {
        req_fail_db(r, err);
        return false;
    }
    if (PQntuples(res) == 0) {
        req_fail_no_member(r);
        return false;
    }
    return true;
}

bool req_member_exists(struct req *r, const PGresult *res, const char *err)
{
    if (!res) {
        req_fail_db(r, err);
        return false;
    }
    if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        req_fail_no_member(r);
        return false;
    }
    return true;
}

bool req_branch_exists(struct req *r, const PGresult *res, int col)
{
    if (strcmp(PQgetvalue(res, 0, col), "closed") == 0) {
        req_fail(r, 409, "branch_closed", "the branch is closed: it takes no new transactions");
        return false;
    }
    if (strcmp(PQgetvalue(res, 0, col), "t") != 0) {
        req_reply_invalid(r, "branch_id", "no such branch in this tenant");
        return false;
    }
    return true;
}

bool req_member_from_path(struct req *r)
{
    const char *id = http_param(r->ex, "member_id");
    if (!id || !uuid_is_valid(id)) {
        req_fail_no_member(r);
        return false;
    }
    snprintf(r->member_id, sizeof(r->member_id), "%s", id);
    return true;
}

bool req_read_body(struct req *r)
{
    if (http_read_json_object(r->ex, &r->body))
        return true;
    req_free(r); /* answered: 400, 413 or 415 */
    return false;
}
