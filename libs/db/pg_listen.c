/* A LISTEN connection (pg_listen.h). Its state moves only through
 * set_state(); every function runs on the loop thread. */
#include "db/pg_listen.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/db_internal.h"
#include "log/log.h"

#define PG_LISTEN_SQL_MAX 128
#define PG_LISTEN_ERR_MAX 256

enum listen_state {
    LISTEN_DOWN,        /* no PGconn; the timer reconnects after the back-off */
    LISTEN_CONNECTING,  /* PQconnectPoll; the timer is the connect deadline */
    LISTEN_SUBSCRIBING, /* LISTEN sent, its result awaited */
    LISTEN_LISTENING,   /* notifications arrive; the timer pings */
};

struct pg_listen {
    struct event_base *base;
    char *dsn, *app_name;
    char sql[PG_LISTEN_SQL_MAX]; /* LISTEN "channel" */
    pg_listen_notify_fn on_notify;
    pg_listen_state_fn on_state;
    void *arg;
    enum listen_state state;
    PGconn *pg;
    struct event *ev_io, *ev_timer;
    short io_what;
    int io_fd;
    int backoff_ms;
    bool busy;         /* a statement (LISTEN or ping) awaits its result */
    int busy_ms;       /* how long the ping has waited, by ticks */
    bool statement_ok; /* its result so far */
};

static void io_cb(evutil_socket_t fd, short what, void *arg);

static void arm_timer(struct pg_listen *l, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(l->ev_timer, &tv);
}

/* Watches the socket for what (0: not at all); rebuilt when the socket
 * changes (PQconnectPoll may open another one). */
static void watch(struct pg_listen *l, short what)
{
    int fd = l->pg ? PQsocket(l->pg) : -1;
    if (l->ev_io && what == l->io_what && fd == l->io_fd)
        return;
    if (l->ev_io) {
        event_free(l->ev_io);
        l->ev_io = NULL;
    }
    l->io_what = what;
    l->io_fd = fd;
    if (what == 0 || fd < 0)
        return;
    l->ev_io = event_new(l->base, fd, what | EV_PERSIST, io_cb, l);
    assert(l->ev_io);
    event_add(l->ev_io, NULL);
}

/* The only place the state changes; tells the owner when listening starts
 * or stops. */
static void set_state(struct pg_listen *l, enum listen_state state)
{
    bool was = l->state == LISTEN_LISTENING, is = state == LISTEN_LISTENING;
    l->state = state;
    evtimer_del(l->ev_timer);
    switch (state) {
    case LISTEN_DOWN:
        watch(l, 0);
        arm_timer(l, l->backoff_ms);
        break;
    case LISTEN_CONNECTING:
        arm_timer(l, DB_CONNECT_TIMEOUT_S * 1000);
        break;
    case LISTEN_SUBSCRIBING:
        arm_timer(l, PG_LISTEN_ANSWER_MS);
        break;
    case LISTEN_LISTENING:
        arm_timer(l, PG_LISTEN_PING_MS);
        break;
    }
    if (was != is)
        l->on_state(l->arg, is);
}

static void lost(struct pg_listen *l, const char *why)
{
    char msg[PG_LISTEN_ERR_MAX];
    db_set_err(msg, sizeof(msg), "pg_listen", why);
    log_warn("%s; reconnecting in %d ms", msg, l->backoff_ms);
    watch(l, 0);
    PQfinish(l->pg);
    l->pg = NULL;
    l->busy = false;
    set_state(l, LISTEN_DOWN);
    l->backoff_ms =
        l->backoff_ms * 2 > PG_LISTEN_BACKOFF_MAX_MS ? PG_LISTEN_BACKOFF_MAX_MS : l->backoff_ms * 2;
}

/* Sends sql (LISTEN or the ping) and waits for its result. */
static void send_statement(struct pg_listen *l, const char *sql)
{
    if (!PQsendQuery(l->pg, sql)) {
        lost(l, PQerrorMessage(l->pg));
        return;
    }
    l->busy = true;
    l->busy_ms = 0;
    l->statement_ok = true;
    int rc = PQflush(l->pg);
    if (rc < 0)
        lost(l, PQerrorMessage(l->pg));
    else
        watch(l, rc == 1 ? EV_READ | EV_WRITE : EV_READ);
}

static void start(struct pg_listen *l)
{
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", DB_CONNECT_TIMEOUT_S);
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {l->dsn, timeout, l->app_name, NULL};
    l->pg = PQconnectStartParams(keys, vals, 1);
    if (!l->pg || PQstatus(l->pg) == CONNECTION_BAD) {
        lost(l, l->pg ? PQerrorMessage(l->pg) : "out of memory");
        return;
    }
    set_state(l, LISTEN_CONNECTING);
    watch(l, EV_WRITE);
}

static void poll_connect(struct pg_listen *l)
{
    switch (PQconnectPoll(l->pg)) {
    case PGRES_POLLING_READING:
        watch(l, EV_READ);
        break;
    case PGRES_POLLING_WRITING:
        watch(l, EV_WRITE);
        break;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(l->pg, 1) != 0) {
            lost(l, PQerrorMessage(l->pg));
            return;
        }
        set_state(l, LISTEN_SUBSCRIBING);
        send_statement(l, l->sql);
        break;
    default:
        lost(l, PQerrorMessage(l->pg));
        break;
    }
}

/* Results of the statement in flight; at its end LISTEN makes us listen. */
static void read_results(struct pg_listen *l)
{
    while (l->busy && !PQisBusy(l->pg)) {
        PGresult *res = PQgetResult(l->pg);
        if (!res) {
            l->busy = false;
            if (!l->statement_ok) {
                lost(l, "LISTEN or ping failed");
                return;
            }
            if (l->state == LISTEN_SUBSCRIBING) {
                l->backoff_ms = PG_LISTEN_BACKOFF_MIN_MS;
                set_state(l, LISTEN_LISTENING);
            }
            return;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            l->statement_ok = false;
        PQclear(res);
    }
}

static void deliver_notifications(struct pg_listen *l)
{
    PGnotify *n;
    while (l->pg && (n = PQnotifies(l->pg)) != NULL) {
        l->on_notify(l->arg, n->extra);
        PQfreemem(n);
    }
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_listen *l = arg;
    if (l->state == LISTEN_CONNECTING) {
        poll_connect(l);
        return;
    }
    if (what & EV_WRITE) {
        int rc = PQflush(l->pg);
        if (rc < 0) {
            lost(l, PQerrorMessage(l->pg));
            return;
        }
        watch(l, rc == 1 ? EV_READ | EV_WRITE : EV_READ);
    }
    if (!(what & EV_READ))
        return;
    if (!PQconsumeInput(l->pg) || PQstatus(l->pg) == CONNECTION_BAD) {
        lost(l, PQerrorMessage(l->pg));
        return;
    }
    read_results(l);
    deliver_notifications(l);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pg_listen *l = arg;
    switch (l->state) {
    case LISTEN_DOWN:
        start(l);
        break;
    case LISTEN_CONNECTING:
        lost(l, "connect timeout");
        break;
    case LISTEN_SUBSCRIBING:
        lost(l, "no answer to LISTEN");
        break;
    case LISTEN_LISTENING:
        if (l->busy) {
            l->busy_ms += PG_LISTEN_PING_MS;
            if (l->busy_ms >= PG_LISTEN_ANSWER_MS) {
                lost(l, "no answer to a ping");
                return;
            }
        } else {
            send_statement(l, "SELECT 1");
            if (l->state != LISTEN_LISTENING)
                return;
        }
        arm_timer(l, PG_LISTEN_PING_MS);
        break;
    }
}

struct pg_listen *pg_listen_new(struct event_base *base, const char *dsn, const char *app_name,
                                const char *channel, pg_listen_notify_fn on_notify,
                                pg_listen_state_fn on_state, void *arg, char *err, size_t err_len)
{
    assert(base && dsn && app_name && channel && on_notify && on_state);
    if (strlen(channel) == 0 || strlen(channel) > PG_LISTEN_CHANNEL_MAX || strchr(channel, '"')) {
        db_set_err(err, err_len, "pg_listen_new", "bad channel name");
        return NULL;
    }
    struct pg_listen *l = calloc(1, sizeof(*l));
    if (!l) {
        db_set_err(err, err_len, "pg_listen_new", "out of memory");
        return NULL;
    }
    *l = (struct pg_listen){.base = base,
                            .on_notify = on_notify,
                            .on_state = on_state,
                            .arg = arg,
                            .state = LISTEN_DOWN,
                            .backoff_ms = PG_LISTEN_BACKOFF_MIN_MS};
    snprintf(l->sql, sizeof(l->sql), "LISTEN \"%s\"", channel);
    l->dsn = strdup(dsn);
    l->app_name = strdup(app_name);
    l->ev_timer = evtimer_new(base, timer_cb, l);
    if (!l->dsn || !l->app_name || !l->ev_timer) {
        pg_listen_free(l);
        db_set_err(err, err_len, "pg_listen_new", "out of memory");
        return NULL;
    }
    start(l);
    return l;
}

bool pg_listen_listening(const struct pg_listen *l)
{
    return l->state == LISTEN_LISTENING;
}

void pg_listen_free(struct pg_listen *l)
{
    if (!l)
        return;
    if (l->ev_io)
        event_free(l->ev_io);
    if (l->ev_timer)
        event_free(l->ev_timer);
    PQfinish(l->pg);
    free(l->dsn);
    free(l->app_name);
    free(l);
}
