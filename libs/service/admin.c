#include "service/admin.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

#include "http/http.h"
#include "metrics/metrics.h"

struct admin_server {
    struct http_server *http;
    const char *service;
    admin_ready_fn ready;
    admin_metrics_fn metrics;
    void *ctx;
    const char *failed; /* admin_server_set_failed's reason; NULL while alive */
};

static void handle_livez(struct http_exchange *ex, void *app)
{
    struct admin_server *a = app;
    if (a->failed) {
        http_reply_json(ex, 503,
                        json_pack("{s:s, s:s, s:s}", "status", "failed", "service", a->service,
                                  "reason", a->failed),
                        NULL);
        return;
    }
    http_reply_json(ex, 200, json_pack("{s:s, s:s}", "status", "alive", "service", a->service),
                    NULL);
}

void admin_server_set_failed(struct admin_server *a, const char *reason)
{
    assert(a && reason);
    a->failed = reason;
}

static void handle_readyz(struct http_exchange *ex, void *app)
{
    struct admin_server *a = app;
    json_t *checks = json_object();
    bool ok = a->ready(a->ctx, checks);
    http_reply_json(ex, ok ? 200 : 503,
                    json_pack("{s:s, s:s, s:o}", "status", ok ? "ready" : "not_ready", "service",
                              a->service, "checks", checks),
                    NULL);
}

static void handle_metrics(struct http_exchange *ex, void *app)
{
    struct admin_server *a = app;
    struct evbuffer *out = evbuffer_new();
    assert(out);
    size_t registry_len;
    char *registry = metrics_render(&registry_len);
    evbuffer_add(out, registry, registry_len);
    free(registry);
    if (a->metrics)
        a->metrics(a->ctx, out);
    size_t len = evbuffer_get_length(out);
    const char *body = (const char *)evbuffer_pullup(out, -1);
    http_reply_raw(ex, 200, "text/plain; version=0.0.4", body ? body : "", len);
    evbuffer_free(out);
}

static const struct http_route admin_routes[] = {
    {"GET", "/livez", handle_livez},
    {"GET", "/readyz", handle_readyz},
    {"GET", "/metrics", handle_metrics},
};

struct admin_server *admin_server_new(struct event_base *base, const char *addr, uint16_t port,
                                      const char *service, admin_ready_fn ready,
                                      admin_metrics_fn metrics, void *ctx, char *err,
                                      size_t err_len)
{
    struct admin_server *a = calloc(1, sizeof(*a));
    assert(a);
    *a = (struct admin_server){.service = service, .ready = ready, .metrics = metrics, .ctx = ctx};
    struct http_limits limits = HTTP_LIMITS_DEFAULT;
    limits.body_max_bytes = 1024;
    a->http =
        http_server_new(base, addr, port, admin_routes,
                        sizeof(admin_routes) / sizeof(admin_routes[0]), &limits, a, err, err_len);
    if (!a->http) {
        free(a);
        return NULL;
    }
    static pthread_once_t process_metrics_once = PTHREAD_ONCE_INIT;
    pthread_once(&process_metrics_once, metrics_process_init);
    return a;
}

uint16_t admin_server_port(const struct admin_server *a)
{
    return http_server_port(a->http);
}

void admin_server_free(struct admin_server *a)
{
    if (!a)
        return;
    http_server_free(a->http);
    free(a);
}

void admin_metric(struct evbuffer *out, const char *name, const char *type, long long value)
{
    evbuffer_add_printf(
        out, "# HELP %s See the metrics table in docs/operations.md.\n# TYPE %s %s\n%s %lld\n",
        name, name, type, name, value);
}
