/* Asynchronous PostgreSQL on a libevent loop (see pg_pool.h). Every
 * function here runs on the loop thread. A connection is a small state
 * machine moved only by conn_set_state(); statements wait in a FIFO until
 * a connection is idle, and finished statements go through a "done" list
 * delivered by one event so callbacks never run inside pg_pool_query(). */
#include "db/pg_pool.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/db_internal.h"
#include "log/log.h"
#include "metrics/metrics.h"

#define PG_POOL_CONNS_MAX      64
#define PG_POOL_BACKOFF_MIN_MS 100
#define PG_POOL_BACKOFF_MAX_MS 5000
/* A statement gets this long beyond statement_timeout before we decide the
 * server is gone (no answer at all, e.g. a dead network path). */
#define PG_POOL_ANSWER_SLACK_MS 5000
#define PG_POOL_ERR_MAX         512
#define PG_POOL_APP_NAME        "tessera-pg-pool"

enum conn_state {
    CONN_DOWN,       /* no PGconn; the back-off timer owns what happens next */
    CONN_CONNECTING, /* PQconnectPoll in progress; socket event + deadline timer */
    CONN_IDLE,       /* ready; socket watched for EOF so a dead server is noticed */
    CONN_BUSY,       /* req in flight; socket event + answer deadline timer */
};

struct pg_req {
    struct pg_req *next;
    pg_pool_cb cb;
    void *arg;
    int nparams;
    char *sql; /* owned; params point into the same block */
    const char *params[PG_POOL_PARAMS_MAX];
    PGresult *res;             /* owned until after the callback */
    char err[PG_POOL_ERR_MAX]; /* "" on success */
    char sqlstate[6];
    double sent_s; /* when it went to the server, for the round-trip histogram */
};

struct req_list {
    struct pg_req *head, *tail;
    size_t len;
};

struct pg_conn {
    struct pg_pool *pool;
    unsigned index;
    enum conn_state state;
    PGconn *pg;
    struct event *ev_io; /* on PQsocket(pg); rebuilt when the socket or flags change */
    int io_fd;
    short io_what;
    struct event *ev_timer; /* back-off, connect deadline or answer deadline */
    int backoff_ms;
    struct pg_req *req; /* in flight when CONN_BUSY; owned */
};

struct pg_pool {
    struct event_base *base;
    int statement_timeout_ms;
    char *dsn;
    char options[DB_OPTIONS_MAX];
    char connect_timeout[16];
    struct req_list queue; /* waiting for an idle connection */
    struct req_list done;  /* finished, callbacks not yet run */
    struct event *ev_done;
    size_t pending; /* accepted statements whose callback has not returned */
    unsigned conn_count;
    struct pg_conn conns[];
};

static void conn_io_cb(evutil_socket_t fd, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void pool_dispatch(struct pg_pool *pool);

/* ---- request lists ---- */

static void list_push(struct req_list *l, struct pg_req *r)
{
    r->next = NULL;
    if (l->tail != NULL)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->len++;
}

static struct pg_req *list_pop(struct req_list *l)
{
    struct pg_req *r = l->head;
    if (r == NULL)
        return NULL;
    l->head = r->next;
    if (l->head == NULL)
        l->tail = NULL;
    l->len--;
    r->next = NULL;
    return r;
}

/* Copies sql and params into one allocation. NULL when out of memory. */
static struct pg_req *req_new(const char *sql, int nparams, const char *const *params,
                              pg_pool_cb cb, void *arg)
{
    size_t size = strlen(sql) + 1;
    for (int i = 0; i < nparams; i++)
        if (params[i] != NULL)
            size += strlen(params[i]) + 1;
    struct pg_req *r = calloc(1, sizeof *r);
    char *text = malloc(size);
    if (r == NULL || text == NULL) {
        free(r);
        free(text);
        return NULL;
    }
    r->cb = cb;
    r->arg = arg;
    r->nparams = nparams;
    r->sql = text;
    size_t len = strlen(sql) + 1;
    memcpy(text, sql, len);
    text += len;
    for (int i = 0; i < nparams; i++) {
        if (params[i] == NULL)
            continue; /* r->params[i] stays NULL: SQL NULL */
        len = strlen(params[i]) + 1;
        memcpy(text, params[i], len);
        r->params[i] = text;
        text += len;
    }
    return r;
}

/* Takes ownership of r (and of res, already in r) and schedules its
 * callback on the loop. */
static void req_finish(struct pg_pool *pool, struct pg_req *r)
{
    list_push(&pool->done, r);
    event_active(pool->ev_done, EV_TIMEOUT, 0);
}

static void req_fail(struct pg_pool *pool, struct pg_req *r, const char *err, const char *sqlstate)
{
    PQclear(r->res);
    r->res = NULL;
    db_set_err(r->err, sizeof r->err, "pg_pool", err);
    snprintf(r->sqlstate, sizeof r->sqlstate, "%s", sqlstate);
    req_finish(pool, r);
}

/* Runs callbacks of finished statements. Takes the list first: callbacks
 * may queue statements, which may finish into a new list. */
static void pool_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_pool *pool = arg;
    struct req_list done = pool->done;
    memset(&pool->done, 0, sizeof pool->done);
    struct pg_req *r;
    while ((r = list_pop(&done)) != NULL) {
        if (r->err[0] == '\0')
            r->cb(r->arg, r->res, NULL, NULL);
        else
            r->cb(r->arg, NULL, r->err, r->sqlstate);
        assert(pool->pending > 0);
        pool->pending--;
        PQclear(r->res);
        free(r->sql);
        free(r);
    }
}

/* ---- connections ---- */

static bool pool_any_up(const struct pg_pool *pool)
{
    for (unsigned i = 0; i < pool->conn_count; i++)
        if (pool->conns[i].state == CONN_IDLE || pool->conns[i].state == CONN_BUSY)
            return true;
    return false;
}

/* Watches the connection's socket for what (EV_READ and/or EV_WRITE); 0
 * stops watching. Rebuilt when the socket changes (PQconnectPoll may open
 * a new one). */
static void conn_watch(struct pg_conn *c, short what)
{
    int fd = c->pg != NULL ? PQsocket(c->pg) : -1;
    if (c->ev_io != NULL && fd == c->io_fd && what == c->io_what)
        return;
    if (c->ev_io != NULL) {
        event_free(c->ev_io);
        c->ev_io = NULL;
    }
    c->io_fd = fd;
    c->io_what = what;
    if (what == 0 || fd < 0)
        return;
    c->ev_io = event_new(c->pool->base, fd, what | EV_PERSIST, conn_io_cb, c);
    assert(c->ev_io != NULL);
    event_add(c->ev_io, NULL);
}

static void conn_timer_arm(struct pg_conn *c, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(c->ev_timer, &tv);
}

/* The only place a connection changes state; arms what the new state
 * needs. */
static void conn_set_state(struct pg_conn *c, enum conn_state state)
{
    c->state = state;
    evtimer_del(c->ev_timer);
    switch (state) {
    case CONN_DOWN:
        conn_watch(c, 0);
        conn_timer_arm(c, c->backoff_ms);
        break;
    case CONN_CONNECTING:
        conn_timer_arm(c, DB_CONNECT_TIMEOUT_S * 1000);
        break;
    case CONN_IDLE:
        conn_watch(c, EV_READ);
        break;
    case CONN_BUSY:
        if (c->pool->statement_timeout_ms > 0)
            conn_timer_arm(c, c->pool->statement_timeout_ms + PG_POOL_ANSWER_SLACK_MS);
        break;
    }
}

/* Fails everything queued: with no connection up, waiting would only turn
 * a fast error into a slow one for the caller (e.g. an HTTP 503). */
static void pool_fail_queue(struct pg_pool *pool, const char *why)
{
    struct pg_req *r;
    while ((r = list_pop(&pool->queue)) != NULL)
        req_fail(pool, r, why, "");
}

/* The connection is unusable: fail its statement, drop it and retry after
 * the back-off, which doubles up to its limit. */
static void conn_broken(struct pg_conn *c, const char *why)
{
    struct pg_pool *pool = c->pool;
    char msg[PG_POOL_ERR_MAX];
    db_set_err(msg, sizeof msg, "connection lost", why);
    log_warn("pg_pool: connection %u: %s; retrying in %d ms", c->index, msg, c->backoff_ms);
    if (c->req != NULL) {
        req_fail(pool, c->req, msg, "");
        c->req = NULL;
    }
    conn_watch(c, 0);
    PQfinish(c->pg);
    c->pg = NULL;
    conn_set_state(c, CONN_DOWN);
    c->backoff_ms *= 2;
    if (c->backoff_ms > PG_POOL_BACKOFF_MAX_MS)
        c->backoff_ms = PG_POOL_BACKOFF_MAX_MS;
    if (!pool_any_up(pool))
        pool_fail_queue(pool, "database unavailable");
}

static void conn_up(struct pg_conn *c)
{
    if (PQsetnonblocking(c->pg, 1) != 0) {
        conn_broken(c, PQerrorMessage(c->pg));
        return;
    }
    c->backoff_ms = PG_POOL_BACKOFF_MIN_MS;
    conn_set_state(c, CONN_IDLE);
}

/* Starts a non-blocking connect with the same parameters as at start-up
 * (the "options" carry search_path and statement_timeout). */
static void conn_start(struct pg_conn *c)
{
    struct pg_pool *pool = c->pool;
    const char *keys[] = {"dbname", "connect_timeout", "options", "fallback_application_name",
                          NULL};
    const char *vals[] = {pool->dsn, pool->connect_timeout, pool->options, PG_POOL_APP_NAME, NULL};
    assert(c->pg == NULL);
    c->pg = PQconnectStartParams(keys, vals, 1);
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_broken(c, c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    conn_set_state(c, CONN_CONNECTING);
    conn_watch(c, EV_WRITE); /* libpq: behave as if PGRES_POLLING_WRITING first */
}

/* One step of PQconnectPoll after the socket became ready. */
static void conn_poll_connect(struct pg_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        conn_watch(c, EV_READ);
        break;
    case PGRES_POLLING_WRITING:
        conn_watch(c, EV_WRITE);
        break;
    case PGRES_POLLING_OK:
        log_info("pg_pool: connection %u re-established", c->index);
        conn_up(c);
        pool_dispatch(c->pool);
        break;
    default:
        conn_broken(c, PQerrorMessage(c->pg));
        break;
    }
}

/* Sends what libpq still buffers; watches for writability while it
 * cannot. -1 when the connection broke (already handled). */
static int conn_flush(struct pg_conn *c)
{
    int rc = PQflush(c->pg);
    if (rc < 0) {
        conn_broken(c, PQerrorMessage(c->pg));
        return -1;
    }
    conn_watch(c, rc == 1 ? EV_READ | EV_WRITE : EV_READ);
    return 0;
}

/* Takes ownership of r and sends it on the idle connection c. */
static void conn_send(struct pg_conn *c, struct pg_req *r)
{
    assert(c->state == CONN_IDLE && c->req == NULL);
    c->req = r;
    r->sent_s = metrics_now_seconds();
    conn_set_state(c, CONN_BUSY);
    if (!PQsendQueryParams(c->pg, r->sql, r->nparams, NULL, r->params, NULL, NULL, 0)) {
        conn_broken(c, PQerrorMessage(c->pg));
        return;
    }
    (void)conn_flush(c);
}

/* Keeps the statement's result (the first error wins over later ones). */
static void req_take_result(struct pg_req *r, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    if (r->err[0] != '\0' || r->res != NULL) {
        PQclear(res); /* one statement gives one result; ignore extras */
        return;
    }
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        r->res = res;
        return;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    db_set_err(r->err, sizeof r->err, "pg_pool", PQresultErrorMessage(res));
    if (r->err[0] == '\0')
        snprintf(r->err, sizeof r->err, "pg_pool: %s", PQresStatus(st));
    snprintf(r->sqlstate, sizeof r->sqlstate, "%s", state != NULL ? state : "");
    PQclear(res);
}

/* Round trip of one statement, from send to its last result; failures
 * are labelled apart so a slow error does not look like a slow query. */
static void pg_pool_observe(const struct pg_req *r)
{
    struct metric_family *f =
        metrics_histogram("tessera_pg_query_duration_seconds",
                          "PostgreSQL statement round trip from the async pool, by result.",
                          "result", metrics_buckets_seconds, metrics_buckets_seconds_count);
    metrics_observe(metrics_with(f, r->err[0] == '\0' ? "ok" : "error"),
                    metrics_now_seconds() - r->sent_s);
}

/* Reads results of the statement in flight until libpq says it is
 * complete (PQgetResult NULL) or would block. */
static void conn_read_results(struct pg_conn *c)
{
    while (c->state == CONN_BUSY && !PQisBusy(c->pg)) {
        PGresult *res = PQgetResult(c->pg);
        if (res == NULL) {
            struct pg_req *r = c->req;
            c->req = NULL;
            conn_set_state(c, CONN_IDLE);
            pg_pool_observe(r);
            req_finish(c->pool, r);
            pool_dispatch(c->pool);
            return;
        }
        req_take_result(c->req, res);
    }
}

static void conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_conn *c = arg;
    if (c->state == CONN_CONNECTING) {
        conn_poll_connect(c);
        return;
    }
    assert(c->state == CONN_IDLE || c->state == CONN_BUSY);
    if ((what & EV_WRITE) && conn_flush(c) != 0)
        return;
    if (!(what & EV_READ))
        return;
    if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_broken(c, PQerrorMessage(c->pg));
        return;
    }
    if (c->state == CONN_BUSY)
        conn_read_results(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_conn *c = arg;
    switch (c->state) {
    case CONN_DOWN:
        conn_start(c);
        break;
    case CONN_CONNECTING:
        conn_broken(c, "connect timeout");
        break;
    case CONN_BUSY:
        conn_broken(c, "no answer from the server");
        break;
    case CONN_IDLE:
        break;
    }
}

static void pool_dispatch(struct pg_pool *pool)
{
    for (unsigned i = 0; i < pool->conn_count && pool->queue.len > 0; i++) {
        struct pg_conn *c = &pool->conns[i];
        if (c->state == CONN_IDLE)
            conn_send(c, list_pop(&pool->queue));
    }
}

/* ---- public ---- */

/* Blocking first connect of every connection, at start-up only, so a
 * service that starts with its database up can query at once. A server
 * that is not there yet is not an error: the connection goes down with
 * back-off and the loop keeps trying (pg_pool_healthy stays false, so
 * /readyz answers 503, until one connects). */
static void pool_connect_all(struct pg_pool *pool)
{
    const char *keys[] = {"dbname", "connect_timeout", "options", "fallback_application_name",
                          NULL};
    const char *vals[] = {pool->dsn, pool->connect_timeout, pool->options, PG_POOL_APP_NAME, NULL};
    for (unsigned i = 0; i < pool->conn_count; i++) {
        struct pg_conn *c = &pool->conns[i];
        c->pg = PQconnectdbParams(keys, vals, 1);
        if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
            conn_broken(c, c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory");
            continue;
        }
        conn_up(c);
    }
}

struct pg_pool *pg_pool_new(struct event_base *base, const char *dsn, const char *schema,
                            unsigned conn_count, int statement_timeout_ms, char *err,
                            size_t err_len)
{
    assert(base != NULL && dsn != NULL);
    assert(conn_count > 0 && conn_count <= PG_POOL_CONNS_MAX);
    if (statement_timeout_ms <= 0)
        statement_timeout_ms = DB_STATEMENT_TIMEOUT_MS_DEFAULT;
    struct pg_pool *pool = calloc(1, sizeof *pool + conn_count * sizeof pool->conns[0]);
    if (pool == NULL) {
        db_set_err(err, err_len, "pg_pool_new", "out of memory");
        return NULL;
    }
    pool->base = base;
    pool->statement_timeout_ms = statement_timeout_ms;
    pool->conn_count = conn_count;
    snprintf(pool->connect_timeout, sizeof pool->connect_timeout, "%d", DB_CONNECT_TIMEOUT_S);
    pool->dsn = strdup(dsn);
    pool->ev_done = event_new(base, -1, 0, pool_done_cb, pool);
    if (pool->dsn == NULL || pool->ev_done == NULL) {
        db_set_err(err, err_len, "pg_pool_new", "out of memory");
        goto fail;
    }
    if (db_session_options(pool->options, sizeof pool->options, schema, statement_timeout_ms) !=
        0) {
        db_set_err(err, err_len, "pg_pool_new", "schema name too long");
        goto fail;
    }
    for (unsigned i = 0; i < conn_count; i++) {
        struct pg_conn *c = &pool->conns[i];
        c->pool = pool;
        c->index = i;
        c->io_fd = -1;
        c->backoff_ms = PG_POOL_BACKOFF_MIN_MS;
        c->ev_timer = evtimer_new(base, conn_timer_cb, c);
        if (c->ev_timer == NULL) {
            db_set_err(err, err_len, "pg_pool_new", "out of memory");
            goto fail;
        }
    }
    pool_connect_all(pool);
    return pool;
fail:
    pg_pool_free(pool);
    return NULL;
}

int pg_pool_query(struct pg_pool *pool, const char *sql, int nparams, const char *const *params,
                  pg_pool_cb cb, void *arg)
{
    assert(pool != NULL && sql != NULL && cb != NULL);
    assert(nparams >= 0 && nparams <= PG_POOL_PARAMS_MAX && (nparams == 0 || params != NULL));
    if (pool->queue.len >= PG_POOL_QUEUE_MAX)
        return -1;
    struct pg_req *r = req_new(sql, nparams, params, cb, arg);
    if (r == NULL)
        return -1;
    pool->pending++;
    if (!pool_any_up(pool)) {
        req_fail(pool, r, "database unavailable", "");
        return 0;
    }
    list_push(&pool->queue, r);
    pool_dispatch(pool);
    return 0;
}

bool pg_pool_healthy(const struct pg_pool *pool)
{
    assert(pool != NULL);
    return pool_any_up(pool);
}

size_t pg_pool_pending(const struct pg_pool *pool)
{
    assert(pool != NULL);
    return pool->pending;
}

/* Callbacks of everything not finished run here, synchronously, with an
 * error; must not be called from inside a pool callback. */
void pg_pool_free(struct pg_pool *pool)
{
    if (pool == NULL)
        return;
    for (unsigned i = 0; i < pool->conn_count; i++) {
        struct pg_conn *c = &pool->conns[i];
        if (c->req != NULL) {
            req_fail(pool, c->req, "pool closed", "");
            c->req = NULL;
        }
        if (c->ev_io != NULL)
            event_free(c->ev_io);
        if (c->ev_timer != NULL)
            event_free(c->ev_timer);
        PQfinish(c->pg);
    }
    pool_fail_queue(pool, "pool closed");
    if (pool->ev_done != NULL) {
        pool_done_cb(-1, 0, pool);
        event_free(pool->ev_done);
    }
    free(pool->dsn);
    free(pool);
}
