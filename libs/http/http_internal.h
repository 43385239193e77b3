/* Shared between the files of libs/http; not for services. */
#ifndef TESSERA_HTTP_INTERNAL_H
#define TESSERA_HTTP_INTERNAL_H

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <netinet/in.h>

#include "http/http.h"

/* Longest method name we route ("DELETE", "OPTIONS") plus NUL. */
#define HTTP_METHOD_MAX_BYTES 8
/* "Allow" header text: every routable method, comma-separated. */
#define HTTP_ALLOW_MAX_BYTES 64

/* The admission filter's note to the request callback (admission.c). */
#define HTTP_ADMISSION_HEADER "Tessera-Admission"
/* Paths screened for their route; longer ones match no route anyway. */
#define HTTP_PATH_SCREEN_MAX_BYTES 2048
/* A head may be this much over headers_max_bytes (its request line). */
#define HTTP_LINE_SLACK_BYTES (8 * 1024)

#define HTTP_LOG_FIELDS_MAX 6
#define HTTP_LOG_VALUE_MAX  128

/* One request being served. Created by the server's request callback and
 * freed by exactly one reply function. req is NULL once the exchange is
 * gone: libevent freed (or handed us) the request when its connection
 * closed, so nothing of the request may be touched any more. The exchange
 * keeps copies of everything it needs and does not point at the server, so
 * it may outlive http_server_free. */
struct http_exchange {
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    bool gone;
    char method[HTTP_METHOD_MAX_BYTES];
    char *path;             /* raw (still percent-encoded) path */
    struct evkeyvalq query; /* decoded query pairs */
    size_t param_count;
    char *param_names[HTTP_PARAMS_MAX];
    char *param_values[HTTP_PARAMS_MAX]; /* percent-decoded */
    size_t body_max_bytes;
    size_t json_depth_max;
    char peer[INET6_ADDRSTRLEN];
    /* For request metrics: NULL metrics_server means none are recorded.
     * route is the matched pattern (route tables are static), "unmatched"
     * otherwise, so labels stay few whatever paths clients send. */
    const char *metrics_server;
    const char *route;
    double started_s;
    /* Access log: one line per answered request with these fields (keys
     * are static strings, values copied), batched and written once per
     * pass of base's loop (the server's; it outlives every exchange). */
    bool access_log;
    struct event_base *base;
    size_t log_count;
    const char *log_keys[HTTP_LOG_FIELDS_MAX];
    char log_values[HTTP_LOG_FIELDS_MAX][HTTP_LOG_VALUE_MAX];
};

/* A {param} capture: spans into the pattern and into the request path. */
struct http_capture {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

enum http_match { HTTP_MATCH_NONE, HTTP_MATCH_PATH_ONLY, HTTP_MATCH_FULL };

/* Router (router.c). */
void http_routes_check(const struct http_route *routes, size_t count);
bool http_route_match_path(const char *pattern, const char *path, struct http_capture *caps,
                           size_t *cap_count);
/* Finds the route for method and path. HTTP_MATCH_PATH_ONLY means some
 * route has the path with other methods: allow then lists them. */
enum http_match http_routes_find(const struct http_route *routes, size_t count, const char *method,
                                 const char *path, const struct http_route **found,
                                 struct http_capture *caps, size_t *cap_count, char *allow,
                                 size_t allow_len);

/* Replies with extra headers (name, value pairs) taken from a va_list. */
void http_exchange_free(struct http_exchange *ex);

/* The body limit of the route method + pattern under limits. */
size_t http_route_body_max(const struct http_limits *limits, const char *method,
                           const char *pattern);

/* Admission (admission.c): screens request heads before evhttp reads a
 * body and counts connections. routes must outlive it. */
struct http_admission;
struct bufferevent;
struct http_admission *http_admission_new(const struct http_route *routes, size_t route_count,
                                          const struct http_limits *limits);
/* The server is gone: freed now, or when its last connection is. */
void http_admission_release(struct http_admission *adm);
size_t http_admission_live(const struct http_admission *adm);
/* evhttp_set_bevcb callback: the filtered bufferevent of a new connection. */
struct bufferevent *http_admission_bevcb(struct event_base *base, void *arg);
/* True when the filter refused req: *status (400, 411, 413, 503) and
 * *detail (the declared Content-Length for 413). */
bool http_admission_refusal(const struct http_admission *adm, struct evhttp_request *req,
                            int *status, uint64_t *detail);

#endif
