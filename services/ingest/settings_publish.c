/* Publish a settings change with its audit row and wait until its owner
 * applied it: the one flow behind the campaign's and tiering's settings
 * PUTs (settings_publish.h). */
#include "db/db.h"
#include "settings_publish.h"

#include <assert.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"

/* One change from its publish statement to its answer. */
struct settings_wait {
    struct req *r;
    struct event *timer;
    int64_t deadline_ms; /* monotonic */
    const char *applied_sql;
    json_t *(*answer)(void *ctx, const char *status, const PGresult *row);
    void (*release)(void *ctx);
    void *ctx;
    const char *conflict_code;
    const char *conflict_detail;
};

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Frees w and the caller's state; hands back the request, which the
 * caller ends. */
static struct req *wait_release(struct settings_wait *w)
{
    struct req *r = w->r;
    if (w->timer)
        event_free(w->timer);
    w->release(w->ctx);
    free(w);
    return r;
}

static void finish(struct settings_wait *w, const PGresult *row)
{
    bool applied = row != NULL;
    json_t *body = w->answer(w->ctx, applied ? "applied" : "accepted", row);
    req_finish(wait_release(w), applied ? 200 : 202, body);
}

static void poll_tick(evutil_socket_t fd, short what, void *arg);

static void on_polled(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct settings_wait *w = arg;
    /* An error (the owner's schema not migrated yet) is "not yet". */
    if (res && PQntuples(res) > 0) {
        finish(w, res);
        return;
    }
    if (w->r->app->stopping || monotonic_ms() >= w->deadline_ms) {
        finish(w, NULL);
        return;
    }
    struct timeval tv = {0, SETTINGS_POLL_MS * 1000};
    evtimer_add(w->timer, &tv);
}

/* Timer: has the owner stored the change? (read only, its read view) */
static void poll_tick(evutil_socket_t fd, short what, void *arg)
{
    struct settings_wait *w = arg;
    const char *p[2] = {w->r->caller.tenant_id, w->r->command_id};
    if (pg_pool_query(w->r->app->pg, w->applied_sql, 2, p, on_polled, w) < 0)
        on_polled(w, NULL, "queue full", "");
}

static void on_published(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct settings_wait *w = arg;
    struct req *r = w->r;
    if (!res && w->conflict_code && sqlstate && strcmp(sqlstate, "23505") == 0) {
        req_fail(wait_release(w), 409, w->conflict_code, w->conflict_detail);
        return;
    }
    if (!res) {
        req_fail_db(wait_release(w), err);
        return;
    }
    member_events_publish(r->app, PQgetvalue(res, 0, 0), r->caller.tenant_id, r->command,
                          r->command_len);
    log_fields(LOG_INFO, "settings change published", "tenant", r->caller.tenant_id, "change_id",
               r->command_id, NULL);
    w->deadline_ms = monotonic_ms() + r->wait_ms;
    w->timer = evtimer_new(r->app->base, poll_tick, w);
    assert(w->timer);
    poll_tick(-1, 0, w);
}

void settings_publish(struct req *r, const struct settings_change *c)
{
    assert(r->command && c->publish_sql && c->applied_sql && c->answer && c->release);
    assert(c->n_extra >= 0 && c->n_extra <= SETTINGS_EXTRA_PARAMS_MAX);
    struct settings_wait *w = calloc(1, sizeof(*w));
    assert(w);
    *w = (struct settings_wait){.r = r,
                                .applied_sql = c->applied_sql,
                                .answer = c->answer,
                                .release = c->release,
                                .ctx = c->ctx,
                                .conflict_code = c->conflict_code,
                                .conflict_detail = c->conflict_detail};
    char *hex = db_bytea_text(r->command, r->command_len);
    char *after = json_dumps(c->audit_after, JSON_COMPACT);
    const char *p[5 + SETTINGS_EXTRA_PARAMS_MAX] = {r->caller.tenant_id, r->caller.key_id,
                                                    http_peer(r->ex), after, hex};
    for (int i = 0; i < c->n_extra; i++)
        p[5 + i] = c->extra[i];
    int rc = pg_pool_query(r->app->pg, c->publish_sql, 5 + c->n_extra, p, on_published, w);
    free(after);
    free(hex);
    if (rc < 0)
        on_published(w, NULL, "queue full", "");
}

struct event_meta settings_event_meta(const struct req *r)
{
    return (struct event_meta){.tenant_id = r->caller.tenant_id,
                               .branch_id = "",
                               .member_id = "",
                               .correlation_id = r->command_id,
                               .actor_kind = "api_key",
                               .actor_id = r->caller.key_id,
                               .traceparent = r->traceparent};
}
