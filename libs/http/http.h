/* HTTP helpers on libevent's evhttp: a route table with {param} segments,
 * request accessors, JSON and RFC 9457 problem+json replies, and limits.
 *
 * A handler gets a struct http_exchange and must answer it exactly once,
 * either before returning or later from another libevent callback (async
 * handlers wait for PostgreSQL, Redis or the ledger). If the client goes
 * away first, the exchange is marked gone: replying then only frees it. */
#ifndef TESSERA_HTTP_H
#define TESSERA_HTTP_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_PARAMS_MAX 8

struct http_server;
struct http_exchange;

typedef void (*http_handler_fn)(struct http_exchange *ex, void *app);

struct http_route {
    const char *method;  /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *pattern; /* "/v1/members/{member_id}/topups" */
    http_handler_fn handler;
};

/* A route whose bodies may be larger (or must be smaller) than the
 * server's body_max_bytes: method and pattern as in its http_route. */
struct http_body_limit {
    const char *method;
    const char *pattern;
    size_t body_max_bytes; /* at most body_hard_max_bytes */
};

/* Bodies are screened on their request head, before a byte of them is
 * read (admission.c): a Content-Length over the route's limit is 413
 * payload_too_large, a Transfer-Encoding 411 length_required (a body must
 * declare its length), a duplicate Content-Length 400 bad_request, each
 * problem+json with Connection: close. A connection accepted while
 * connections_max are open gets 503 too_many_connections (Retry-After)
 * on its first request and is closed. */
struct http_limits {
    size_t body_max_bytes;      /* API limit for routes without their own: larger is 413 */
    size_t body_hard_max_bytes; /* no route may allow more */
    size_t headers_max_bytes;
    size_t json_depth_max;  /* deeper JSON is 400 */
    int timeout_s;          /* idle connection / slow client timeout */
    size_t connections_max; /* open connections at once; more are refused */
    const struct http_body_limit *route_body_limits; /* may be NULL; must outlive the server */
    size_t route_body_limit_count;
};

#define HTTP_CONNECTIONS_MAX_DEFAULT 512 /* well under the usual 1024 open files */
#define HTTP_LIMITS_DEFAULT                                                                        \
    ((struct http_limits){.body_max_bytes = 64 * 1024,                                             \
                          .body_hard_max_bytes = 16 * 1024 * 1024,                                 \
                          .headers_max_bytes = 16 * 1024,                                          \
                          .json_depth_max = 16,                                                    \
                          .timeout_s = 30,                                                         \
                          .connections_max = HTTP_CONNECTIONS_MAX_DEFAULT})

/* Binds addr:port (port 0 picks a free one) and serves routes on base.
 * Unknown paths get 404 and known paths with another method 405, both as
 * problem+json. routes must outlive the server. Returns NULL with err. */
struct http_server *http_server_new(struct event_base *base, const char *addr, uint16_t port,
                                    const struct http_route *routes, size_t route_count,
                                    const struct http_limits *limits, void *app, char *err,
                                    size_t err_len);
uint16_t http_server_port(const struct http_server *srv);
/* Records tessera_http_requests_total and
 * tessera_http_request_duration_seconds for every request of this server,
 * labelled server=name (a static string), method, route pattern and
 * status. Off until called. */
void http_server_set_metrics_name(struct http_server *srv, const char *name);
/* Writes one JSON log line per answered request ("http request": method,
 * route pattern, status, duration_ms and the fields handlers added with
 * http_exchange_log_field). Off until called. */
void http_server_set_access_log(struct http_server *srv, bool on);
/* Adds (or replaces) a field of this request's access-log line, e.g.
 * tenant_id, member_id, correlation_id, trace_id. key must be a static
 * string; value is copied (cut at 127 bytes). Up to 6 fields. */
void http_exchange_log_field(struct http_exchange *ex, const char *key, const char *value);
/* Connections open now (admitted or being refused). */
size_t http_server_connections(const struct http_server *srv);
/* Stops accepting; exchanges still in flight may still be answered. */
void http_server_free(struct http_server *srv);

/* --- request accessors (valid until the exchange is answered) --- */
const char *http_method(const struct http_exchange *ex);
const char *http_path(const struct http_exchange *ex);
/* Value of a {param} of the matched route, percent-decoded; NULL if none. */
const char *http_param(const struct http_exchange *ex, const char *name);
/* Query-string value, percent-decoded; NULL when absent. */
const char *http_query(const struct http_exchange *ex, const char *name);
const char *http_header(const struct http_exchange *ex, const char *name);
const unsigned char *http_body(const struct http_exchange *ex, size_t *len);
/* Client address as text, e.g. "127.0.0.1". */
const char *http_peer(const struct http_exchange *ex);

/* Parses the body as a JSON object under the limits. On failure answers the
 * exchange itself (413 payload_too_large, 400 malformed_json, 415
 * unsupported_media_type when Content-Type is present and not JSON) and
 * returns false. On success *out is a new reference the caller decrefs. */
bool http_read_json_object(struct http_exchange *ex, json_t **out)
    __attribute__((warn_unused_result));

/* Nesting depth of a decoded JSON value (a scalar is 0, {} is 1), counted
 * no deeper than limit + 1: for bodies read another way (NDJSON lines). */
size_t http_json_depth(json_t *value, size_t limit);

/* The wait a client asks for with RFC 7240 "Prefer: wait=N" (N seconds, a
 * non-negative integer), in milliseconds clamped to max_ms, in *wait_ms.
 * False (and *wait_ms untouched: the caller's default holds) when prefer
 * is NULL or has no usable wait preference. Only the first "wait" counts;
 * other preferences and parameters are ignored. */
bool http_prefer_wait_ms(const char *prefer, int max_ms, int *wait_ms)
    __attribute__((warn_unused_result));

/* --- replies: each frees the exchange; call exactly one, once --- */
/* Steals the reference to body. Adds extra headers given as name, value
 * pairs ending in NULL. */
void http_reply_json(struct http_exchange *ex, int status, json_t *body, ...)
    __attribute__((sentinel));
/* A problem's type URL: this prefix and its code, which names the code's row
 * of docs/errors.md (tests/docs/check_links.py checks every code has one). */
#define HTTP_PROBLEM_TYPE_PREFIX "https://tessera.dev/docs/errors.md#"
/* RFC 9457 body {type, title, status, detail, code}; type is
 * HTTP_PROBLEM_TYPE_PREFIX "<code>". extra (stolen, may be NULL) is
 * merged into the body (e.g. "errors"). */
void http_reply_problem(struct http_exchange *ex, int status, const char *code, const char *detail,
                        json_t *extra);
/* The same with a Retry-After header (seconds) and retry_after_s in the
 * body: 429 rate_limited, 503 while draining. */
void http_reply_problem_retry_after(struct http_exchange *ex, int status, const char *code,
                                    const char *detail, int retry_after_s);
/* Replies with a status and a raw body of the given content type. */
void http_reply_raw(struct http_exchange *ex, int status, const char *content_type,
                    const char *body, size_t len);
/* The same with a malloc'ed body handed over: sent without a copy, and
 * freed (wiped first when wipe: personal data) once written or dropped. */
void http_reply_owned(struct http_exchange *ex, int status, const char *content_type, char *body,
                      size_t len, bool wipe);

/* True when the client has gone away; the handler may skip work. */
bool http_exchange_gone(const struct http_exchange *ex);

/* Standard title for a status code ("Not Found"). */
const char *http_status_title(int status);

#endif
