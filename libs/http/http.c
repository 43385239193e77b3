/* HTTP server on evhttp: one generic callback routes every request through
 * our table, builds a struct http_exchange and calls the handler. All of
 * it runs on the server's event loop thread.
 *
 * Exchange lifetime. A handler may answer long after it returned (from a
 * PostgreSQL, Redis or timer callback). If the connection is torn down
 * first (evhttp_free, a timeout, a read or write error), libevent calls the
 * connection's close callback, which we point at the exchange: it marks the
 * exchange gone and forgets the request. Depending on the path libevent
 * either frees the request right after the callback or detaches it from
 * the connection (evcon == NULL) and leaves it to us; in the second case we
 * free it there. Either way a reply on a gone exchange only frees our
 * struct. Answering resets the close callback, because the connection
 * (keep-alive) outlives the exchange.
 *
 * libevent 2.1 stops reading a connection while its request awaits the
 * reply, so a client that merely closes its socket is noticed when the
 * reply is written (the write fails, libevent frees the connection). The
 * process must ignore SIGPIPE, as every service's main() does. */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/http_internal.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "util/fmt.h"
#include "util/json_text.h"
#include "util/pool.h"

/* Exchanges freed on this thread, kept for the next requests (pool.h). */
#define EXCHANGES_KEPT 256
static _Thread_local struct pool exchanges =
    POOL_INIT(sizeof(struct http_exchange), EXCHANGES_KEPT);

struct http_server {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    const struct http_route *routes;
    size_t route_count;
    struct http_limits limits;
    void *app;
    uint16_t port;
    const char *metrics_name; /* NULL: no request metrics */
    bool access_log;
    struct http_admission *admission;
};

#define HTTP_CONTENT_TYPE_JSON      "application/json"
#define HTTP_CONTENT_TYPE_PROBLEM   "application/problem+json"
#define HTTP_PROBLEM_TYPE_MAX_BYTES 128

/* --- exchange lifetime ---------------------------------------------------- */

/* evhttp close callback, called from inside evhttp_connection_free. */
static void exchange_on_close(struct evhttp_connection *evcon, void *arg)
{
    struct http_exchange *ex = arg;
    assert(ex->evcon == evcon && !ex->gone);
    ex->gone = true;
    /* Detached request (client EOF/timeout before we answered): libevent
     * will never free it, and nobody else can reach it, so free it now. */
    if (ex->req != NULL && evhttp_request_get_connection(ex->req) == NULL)
        evhttp_request_free(ex->req);
    ex->req = NULL;
}

void http_exchange_free(struct http_exchange *ex)
{
    for (size_t i = 0; i < ex->param_count; i++) {
        free(ex->param_names[i]);
        free(ex->param_values[i]);
    }
    evhttp_clear_headers(&ex->query);
    free(ex->path);
    pool_give(&exchanges, ex);
}

bool http_exchange_gone(const struct http_exchange *ex)
{
    assert(ex != NULL);
    return ex->gone;
}

/* src into dst (cap bytes), cut to fit: snprintf "%s" without the format
 * (several times a request). */
static void copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Writes the access lines batched during this pass of the loop. */
static void access_log_flush(evutil_socket_t fd, short what, void *arg)
{
    log_batch_flush();
}

/* One request answered (or its client gone, with the status it would have
 * had): its access line. Lines are batched, one write(2) per pass of the
 * loop rather than one per request (5% of ingest's CPU on the read path):
 * the first line of a batch activates a one-shot event, which runs after
 * the callbacks already active in this pass. */
static void exchange_log(const struct http_exchange *ex, int status)
{
    char code[FMT_I64_MAX], ms[FMT_MS3_MAX];
    const char *kv[2 * HTTP_LOG_FIELDS_MAX + 1] = {NULL};
    fmt_i64(code, status);
    fmt_ms3(ms, llround((metrics_now_seconds() - ex->started_s) * 1e6));
    for (size_t i = 0; i < ex->log_count; i++) {
        kv[2 * i] = ex->log_keys[i];
        kv[2 * i + 1] = ex->log_values[i];
    }
    /* Unused pairs are NULL: log_fields stops at the first NULL key. */
    bool first = log_fields_batched(LOG_INFO, "http request", "method", ex->method, "route",
                                    ex->route != NULL ? ex->route : "unmatched", "status", code,
                                    "duration_ms", ms, "client_gone", ex->gone ? "true" : "false",
                                    kv[0], kv[1], kv[2], kv[3], kv[4], kv[5], kv[6], kv[7], kv[8],
                                    kv[9], kv[10], kv[11], NULL);
    if (first && event_base_once(ex->base, -1, EV_TIMEOUT, access_log_flush, NULL, NULL) != 0)
        log_batch_flush(); /* no event: written at once */
}

void http_exchange_log_field(struct http_exchange *ex, const char *key, const char *value)
{
    assert(ex != NULL && key != NULL);
    size_t i = 0;
    while (i < ex->log_count && strcmp(ex->log_keys[i], key) != 0)
        i++;
    if (i == HTTP_LOG_FIELDS_MAX)
        return; /* a full line keeps its first fields */
    ex->log_keys[i] = key;
    copy_text(ex->log_values[i], HTTP_LOG_VALUE_MAX, value != NULL ? value : "");
    if (i == ex->log_count)
        ex->log_count++;
}

static void exchange_observe(const struct http_exchange *ex, int status)
{
    if (ex->access_log)
        exchange_log(ex, status);
    if (ex->metrics_server == NULL)
        return;
    char code[FMT_I64_MAX];
    fmt_i64(code, status);
    const char *route = ex->route != NULL ? ex->route : "unmatched";
    metrics_inc(metrics_with(metrics_counter("tessera_http_requests_total",
                                             "HTTP requests answered, by route pattern and status.",
                                             "server,method,route,status"),
                             ex->metrics_server, ex->method, route, code));
    metrics_observe(
        metrics_with(metrics_histogram("tessera_http_request_duration_seconds",
                                       "Time from request to reply, by route pattern and status.",
                                       "server,method,route,status", metrics_buckets_seconds,
                                       metrics_buckets_seconds_count),
                     ex->metrics_server, ex->method, route, code),
        metrics_now_seconds() - ex->started_s);
}

/* Extra reply headers a caller may pass (name/value pairs). */
#define HTTP_REPLY_HEADERS_MAX 8

/* Sends status and body (may be NULL) and frees the exchange; every reply
 * ends here. headers: NULL-terminated name, value, ... list or NULL. */
static void exchange_send(struct http_exchange *ex, int status, const char *content_type,
                          struct evbuffer *body, const char *const *headers)
{
    assert(ex != NULL && status >= 100 && status <= 599);
    exchange_observe(ex, status);
    if (ex->gone) {
        http_exchange_free(ex);
        return;
    }
    struct evkeyvalq *out = evhttp_request_get_output_headers(ex->req);
    if (content_type != NULL)
        evhttp_add_header(out, "Content-Type", content_type);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i += 2) {
        assert(headers[i + 1] != NULL);
        evhttp_add_header(out, headers[i], headers[i + 1]);
    }
    evhttp_connection_set_closecb(ex->evcon, NULL, NULL);
    evhttp_send_reply(ex->req, status, http_status_title(status), body);
    http_exchange_free(ex);
}

/* --- replies -------------------------------------------------------------- */

/* The reference's argument of a body to wipe before it is freed. */
static char body_wipe;

/* libevent is done with a body handed over (written, or the reply
 * dropped): it is freed, wiped first when the reference said so. */
static void body_release(const void *data, size_t len, void *wipe)
{
    if (wipe == &body_wipe)
        sodium_memzero((void *)data, len);
    free((void *)data);
}

/* A buffer holding text (malloc'ed, handed over) by reference: no copy of
 * it, no second allocation. NULL when out of memory (text freed). */
static struct evbuffer *body_buffer(char *text, size_t len, bool wipe)
{
    struct evbuffer *buf = evbuffer_new();
    if (buf != NULL &&
        evbuffer_add_reference(buf, text, len, body_release, wipe ? &body_wipe : NULL) == 0)
        return buf;
    if (buf != NULL)
        evbuffer_free(buf);
    body_release(text, len, wipe ? &body_wipe : NULL);
    return NULL;
}

/* Encodes body (stolen) and sends it. */
static void exchange_send_json(struct http_exchange *ex, int status, const char *content_type,
                               json_t *body, const char *const *headers)
{
    size_t len = 0;
    /* json_dumps(JSON_COMPACT)'s text, without its printf (json_text.h) */
    char *text = body != NULL ? json_text_dumps(body, &len) : NULL;
    json_decref(body);
    struct evbuffer *buf = text != NULL ? body_buffer(text, len, false) : NULL;
    if (buf == NULL) {
        log_error("http: cannot encode a %d reply for %s", status, ex->path);
        exchange_send(ex, 500, NULL, NULL, NULL);
        return;
    }
    exchange_send(ex, status, content_type, buf, headers);
    evbuffer_free(buf);
}

void http_reply_json(struct http_exchange *ex, int status, json_t *body, ...)
{
    const char *headers[2 * HTTP_REPLY_HEADERS_MAX + 1];
    size_t n = 0;
    va_list ap;

    assert(body != NULL);
    va_start(ap, body);
    for (const char *name = va_arg(ap, const char *); name != NULL;
         name = va_arg(ap, const char *)) {
        assert(n < 2 * HTTP_REPLY_HEADERS_MAX);
        headers[n++] = name;
        headers[n++] = va_arg(ap, const char *);
    }
    va_end(ap);
    headers[n] = NULL;
    exchange_send_json(ex, status, HTTP_CONTENT_TYPE_JSON, body, headers);
}

/* Builds the RFC 9457 body; extra (stolen) adds fields but cannot replace
 * the standard ones. */
static json_t *problem_body(int status, const char *code, const char *detail, json_t *extra)
{
    char type[HTTP_PROBLEM_TYPE_MAX_BYTES];
    snprintf(type, sizeof(type), "%s%s", HTTP_PROBLEM_TYPE_PREFIX, code);
    json_t *body =
        json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title", http_status_title(status),
                  "status", status, "detail", detail != NULL ? detail : "", "code", code);
    if (body != NULL && extra != NULL)
        json_object_update_missing(body, extra);
    json_decref(extra);
    return body;
}

static void exchange_send_problem(struct http_exchange *ex, int status, const char *code,
                                  const char *detail, json_t *extra, const char *const *headers)
{
    assert(ex != NULL && code != NULL && status >= 400 && status <= 599);
    assert(extra == NULL || json_is_object(extra));
    json_t *body = problem_body(status, code, detail, extra);
    exchange_send_json(ex, status, HTTP_CONTENT_TYPE_PROBLEM, body, headers);
}

void http_reply_problem(struct http_exchange *ex, int status, const char *code, const char *detail,
                        json_t *extra)
{
    exchange_send_problem(ex, status, code, detail, extra, NULL);
}

void http_reply_problem_retry_after(struct http_exchange *ex, int status, const char *code,
                                    const char *detail, int retry_after_s)
{
    char seconds[16];
    snprintf(seconds, sizeof(seconds), "%d", retry_after_s);
    const char *headers[] = {"Retry-After", seconds, NULL};
    exchange_send_problem(ex, status, code, detail,
                          json_pack("{s:i}", "retry_after_s", retry_after_s), headers);
}

void http_reply_raw(struct http_exchange *ex, int status, const char *content_type,
                    const char *body, size_t len)
{
    assert(ex != NULL && (body != NULL || len == 0));
    struct evbuffer *buf = evbuffer_new();
    if (buf == NULL || evbuffer_add(buf, body, len) != 0) {
        if (buf != NULL)
            evbuffer_free(buf);
        exchange_send(ex, 500, NULL, NULL, NULL);
        return;
    }
    exchange_send(ex, status, content_type, buf, NULL);
    evbuffer_free(buf);
}

void http_reply_owned(struct http_exchange *ex, int status, const char *content_type, char *body,
                      size_t len, bool wipe)
{
    assert(ex != NULL && body != NULL);
    struct evbuffer *buf = body_buffer(body, len, wipe);
    if (buf == NULL) {
        exchange_send(ex, 500, NULL, NULL, NULL);
        return;
    }
    exchange_send(ex, status, content_type, buf, NULL);
    evbuffer_free(buf);
}

const char *http_status_title(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* --- accessors ------------------------------------------------------------ */

const char *http_method(const struct http_exchange *ex)
{
    return ex->method;
}

const char *http_path(const struct http_exchange *ex)
{
    return ex->path;
}

const char *http_param(const struct http_exchange *ex, const char *name)
{
    for (size_t i = 0; i < ex->param_count; i++)
        if (strcmp(ex->param_names[i], name) == 0)
            return ex->param_values[i];
    return NULL;
}

const char *http_query(const struct http_exchange *ex, const char *name)
{
    return evhttp_find_header(&ex->query, name);
}

/* Headers and body live in the evhttp_request: none once gone. */
const char *http_header(const struct http_exchange *ex, const char *name)
{
    if (ex->gone)
        return NULL;
    return evhttp_find_header(evhttp_request_get_input_headers(ex->req), name);
}

const unsigned char *http_body(const struct http_exchange *ex, size_t *len)
{
    *len = 0;
    if (ex->gone)
        return NULL;
    struct evbuffer *in = evhttp_request_get_input_buffer(ex->req);
    *len = evbuffer_get_length(in);
    /* pullup makes the body contiguous in place; it stays owned by req. */
    return *len > 0 ? evbuffer_pullup(in, -1) : (const unsigned char *)"";
}

const char *http_peer(const struct http_exchange *ex)
{
    return ex->peer;
}

/* --- request dispatch ----------------------------------------------------- */

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    default:
        return "OTHER";
    }
}

/* Builds the exchange and hooks the connection's close callback to it.
 * NULL when out of memory. */
static struct http_exchange *exchange_new(struct http_server *srv, struct evhttp_request *req)
{
    struct http_exchange *ex = pool_take(&exchanges);
    if (ex == NULL)
        return NULL;
    TAILQ_INIT(&ex->query);
    ex->req = req;
    ex->evcon = evhttp_request_get_connection(req);
    assert(ex->evcon != NULL);
    ex->body_max_bytes = srv->limits.body_max_bytes;
    ex->metrics_server = srv->metrics_name;
    ex->access_log = srv->access_log;
    ex->base = srv->base;
    ex->started_s = metrics_now_seconds();
    ex->json_depth_max = srv->limits.json_depth_max;
    copy_text(ex->method, sizeof(ex->method), method_name(evhttp_request_get_command(req)));

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    ex->path = strdup(path != NULL && path[0] != '\0' ? path : "/");
    if (ex->path == NULL) {
        pool_give(&exchanges, ex);
        return NULL;
    }
    char *peer = NULL;
    ev_uint16_t peer_port = 0;
    evhttp_connection_get_peer(ex->evcon, &peer, &peer_port);
    copy_text(ex->peer, sizeof(ex->peer), peer != NULL ? peer : "");
    evhttp_connection_set_closecb(ex->evcon, exchange_on_close, ex);
    return ex;
}

/* Copies and percent-decodes the captured {param} values into ex. False
 * when a value decodes to something unusable (an embedded NUL). */
static bool exchange_set_params(struct http_exchange *ex, const struct http_capture *caps,
                                size_t count)
{
    for (size_t i = 0; i < count; i++) {
        char *raw = strndup(caps[i].value, caps[i].value_len);
        size_t len = 0;
        char *value = raw != NULL ? evhttp_uridecode(raw, 0, &len) : NULL;
        free(raw);
        char *name = strndup(caps[i].name, caps[i].name_len);
        if (value == NULL || name == NULL || strlen(value) != len) {
            free(value);
            free(name);
            return false;
        }
        ex->param_names[ex->param_count] = name;
        ex->param_values[ex->param_count] = value;
        ex->param_count++;
    }
    return true;
}

/* Answers a request the admission filter refused (its body never read);
 * the connection closes after the answer. True when it did. */
static bool exchange_refused(struct http_server *srv, struct http_exchange *ex,
                             struct evhttp_request *req)
{
    int status = 0;
    uint64_t declared = 0;
    char detail[160];
    if (!http_admission_refusal(srv->admission, req, &status, &declared))
        return false;
    const char *headers[] = {"Connection", "close", NULL, NULL, NULL};
    const char *code = "bad_request";
    if (status == 413) {
        code = "payload_too_large";
        snprintf(detail, sizeof(detail),
                 "a body of %llu bytes exceeds this route's limit; nothing was read",
                 (unsigned long long)declared);
    } else if (status == 411) {
        code = "length_required";
        snprintf(detail, sizeof(detail),
                 "a body must declare its Content-Length (Transfer-Encoding is not accepted)");
    } else if (status == 503) {
        code = "too_many_connections";
        snprintf(detail, sizeof(detail), "the server has all the connections it takes; retry");
        headers[2] = "Retry-After", headers[3] = "1";
    } else {
        status = 400;
        snprintf(detail, sizeof(detail), "the request head cannot be read");
    }
    exchange_send_problem(ex, status, code, detail, NULL, headers);
    return true;
}

/* evhttp generic callback: every request comes through here. */
static void server_on_request(struct evhttp_request *req, void *arg)
{
    struct http_server *srv = arg;
    struct http_capture caps[HTTP_PARAMS_MAX];
    size_t cap_count = 0;
    const struct http_route *route = NULL;
    char allow[HTTP_ALLOW_MAX_BYTES], detail[256];

    struct http_exchange *ex = exchange_new(srv, req);
    if (ex == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (exchange_refused(srv, ex, req))
        return;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    if (query != NULL && evhttp_parse_query_str(query, &ex->query) != 0) {
        http_reply_problem(ex, 400, "bad_request", "malformed query string", NULL);
        return;
    }
    /* evhttp reads no body after a TRACE head, so bytes that follow it
     * would be parsed as the next request: no route serves TRACE, and its
     * refusal closes the connection. */
    const char *closing = evhttp_request_get_command(req) == EVHTTP_REQ_TRACE ? "close" : NULL;
    switch (http_routes_find(srv->routes, srv->route_count, ex->method, ex->path, &route, caps,
                             &cap_count, allow, sizeof(allow))) {
    case HTTP_MATCH_NONE: {
        const char *headers[] = {"Connection", closing, NULL};
        snprintf(detail, sizeof(detail), "no resource at %.200s", ex->path);
        exchange_send_problem(ex, 404, "not_found", detail, NULL, closing ? headers : NULL);
        return;
    }
    case HTTP_MATCH_PATH_ONLY: {
        const char *headers[] = {"Allow", allow, closing ? "Connection" : NULL, closing, NULL};
        snprintf(detail, sizeof(detail), "%s is not allowed here; allowed: %s", ex->method, allow);
        exchange_send_problem(ex, 405, "method_not_allowed", detail, NULL, headers);
        return;
    }
    case HTTP_MATCH_FULL:
        break;
    }
    ex->route = route->pattern;
    ex->body_max_bytes = http_route_body_max(&srv->limits, route->method, route->pattern);
    if (!exchange_set_params(ex, caps, cap_count)) {
        snprintf(detail, sizeof(detail), "no resource at %.200s", ex->path);
        http_reply_problem(ex, 404, "not_found", detail, NULL);
        return;
    }
    route->handler(ex, srv->app); /* ex belongs to the handler now */
}

/* --- server --------------------------------------------------------------- */

static void limits_check(const struct http_limits *limits)
{
    assert(limits->body_max_bytes > 0);
    assert(limits->body_max_bytes <= limits->body_hard_max_bytes);
    assert(limits->body_hard_max_bytes <= (size_t)INT32_MAX);
    assert(limits->headers_max_bytes > 0 && limits->headers_max_bytes <= (size_t)INT32_MAX);
    assert(limits->json_depth_max >= 1);
    assert(limits->timeout_s > 0);
    assert(limits->connections_max > 0);
}

/* The largest body any route takes: what evhttp may read at most. */
static size_t routes_body_max(const struct http_limits *limits)
{
    size_t most = limits->body_max_bytes;
    assert(limits->route_body_limits != NULL || limits->route_body_limit_count == 0);
    for (size_t i = 0; i < limits->route_body_limit_count; i++) {
        const struct http_body_limit *l = &limits->route_body_limits[i];
        assert(l->method && l->pattern && l->body_max_bytes > 0);
        assert(l->body_max_bytes <= limits->body_hard_max_bytes);
        if (l->body_max_bytes > most)
            most = l->body_max_bytes;
    }
    return most;
}

size_t http_route_body_max(const struct http_limits *limits, const char *method,
                           const char *pattern)
{
    for (size_t i = 0; i < limits->route_body_limit_count; i++) {
        const struct http_body_limit *l = &limits->route_body_limits[i];
        if (strcmp(l->method, method) == 0 && strcmp(l->pattern, pattern) == 0)
            return l->body_max_bytes;
    }
    return limits->body_max_bytes;
}

static bool server_read_port(struct http_server *srv, char *err, size_t err_len)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(srv->sock);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        snprintf(err, err_len, "getsockname: %s", strerror(errno));
        return false;
    }
    if (ss.ss_family == AF_INET)
        srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else
        srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return true;
}

struct http_server *http_server_new(struct event_base *base, const char *addr, uint16_t port,
                                    const struct http_route *routes, size_t route_count,
                                    const struct http_limits *limits, void *app, char *err,
                                    size_t err_len)
{
    assert(base != NULL && addr != NULL && limits != NULL && err != NULL && err_len > 0);
    limits_check(limits);
    http_routes_check(routes, route_count);

    struct http_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    *srv = (struct http_server){
        .base = base, .routes = routes, .route_count = route_count, .limits = *limits, .app = app};
    srv->http = evhttp_new(base);
    if (srv->http == NULL) {
        snprintf(err, err_len, "evhttp_new failed");
        goto fail;
    }
    srv->admission = http_admission_new(routes, route_count, limits);
    if (srv->admission == NULL) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    evhttp_set_bevcb(srv->http, http_admission_bevcb, srv->admission);
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)routes_body_max(limits));
    evhttp_set_max_headers_size(srv->http, (ev_ssize_t)limits->headers_max_bytes);
    evhttp_set_timeout(srv->http, limits->timeout_s);
    /* PATCH, OPTIONS and TRACE are off by default; let them reach our
     * router so unknown combinations get our 405 problem rather than
     * evhttp's 501 HTML page. (CONNECT's request target is not a path.) */
    evhttp_set_allowed_methods(
        srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
                       EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE);
    evhttp_set_gencb(srv->http, server_on_request, srv);
    srv->sock = evhttp_bind_socket_with_handle(srv->http, addr, port);
    if (srv->sock == NULL) {
        snprintf(err, err_len, "cannot listen on %s:%u: %s", addr, (unsigned)port, strerror(errno));
        goto fail;
    }
    if (!server_read_port(srv, err, err_len))
        goto fail;
    return srv;

fail:
    if (srv != NULL && srv->http != NULL)
        evhttp_free(srv->http);
    if (srv != NULL)
        http_admission_release(srv->admission);
    free(srv);
    return NULL;
}

size_t http_server_connections(const struct http_server *srv)
{
    return http_admission_live(srv->admission);
}

uint16_t http_server_port(const struct http_server *srv)
{
    return srv->port;
}

void http_server_set_metrics_name(struct http_server *srv, const char *name)
{
    assert(srv != NULL && name != NULL);
    srv->metrics_name = name;
}

void http_server_set_access_log(struct http_server *srv, bool on)
{
    assert(srv != NULL);
    srv->access_log = on;
}

/* Closes the listener and every connection. Exchanges still in flight are
 * marked gone by their close callbacks; answering them later is legal and
 * only frees them. To let in-flight requests finish, stop taking new work
 * and wait for their answers before calling this. */
void http_server_free(struct http_server *srv)
{
    if (srv == NULL)
        return;
    evhttp_free(srv->http);
    log_batch_flush(); /* the last access lines, if their event has not run */
    http_admission_release(srv->admission);
    free(srv);
}
