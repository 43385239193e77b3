/* The life of one API request across its asynchronous steps. */
#include <assert.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "http/validate.h"
#include "ingest.h"
#include "log/log.h"

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

struct req *req_new(struct ingest *app, struct http_exchange *ex)
{
    struct req *r = calloc(1, sizeof(*r));
    assert(r);
    r->app = app;
    r->ex = ex;
    r->wait_ms = (int)app->wait_default_ms;
    app->requests++;
    app->requests_live++;
    req_trace_start(r);
    return r;
}

void req_free(struct req *r)
{
    if (!r)
        return;
    if (r->app) { /* NULL only in a test's hand-made request (tests/fuzz) */
        assert(r->app->requests_live > 0);
        r->app->requests_live--;
    }
    json_decref(r->body);
    json_decref(r->audit_result);
    free(r->command);
    free(r->attributes_json);
    if (r->login) {
        sodium_memzero(r->login, r->login_size);
        free(r->login);
    }
    if (r->secret) {
        sodium_memzero(r->secret, strlen(r->secret));
        free(r->secret);
    }
    if (r->headers)
        rd_kafka_headers_destroy(r->headers);
    free(r);
}

void req_fail_db(struct req *r, const char *err)
{
    log_fields(LOG_ERROR, "database statement failed", "error", err ? err : "", NULL);
    http_reply_problem(r->ex, 503, "unavailable", "the database is unavailable; retry shortly",
                       NULL);
    req_free(r);
}

void req_reply_invalid(struct req *r, const char *field, const char *message)
{
    struct validation v;
    validation_init(&v);
    validation_add(&v, field, message);
    validation_reply(r->ex, &v);
    req_free(r);
}
