/* The session store's Redis connection (see sessions.h). */
#include "sessions.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "log/log.h"

#define SESSION_HOST_MAX 256

struct session_store {
    struct event_base *base;
    char host[SESSION_HOST_MAX];
    int port;
    redisAsyncContext *ac; /* NULL while down; hiredis frees it on a drop */
    bool connected;
    bool closing;
};

struct pending {
    session_reply_fn cb;
    void *arg;
};

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct session_store *s = ac->data;
    if (status != REDIS_OK) {
        log_warn("sessions: connect to %s:%d failed: %s", s->host, s->port, ac->errstr);
        s->ac = NULL;
        return;
    }
    s->connected = true;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct session_store *s = ac->data;
    if (!s->closing)
        log_warn("sessions: link to %s:%d dropped", s->host, s->port);
    s->ac = NULL;
    s->connected = false;
}

static void connect_store(struct session_store *s)
{
    redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        return;
    }
    ac->data = s;
    if (redisLibeventAttach(ac, s->base) != REDIS_OK) {
        redisAsyncFree(ac);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (cache_async_auth(ac) != 0) {
        redisAsyncFree(ac);
        return;
    }
    s->ac = ac;
}

struct session_store *session_store_new(struct event_base *base, const char *host, int port)
{
    struct session_store *s = calloc(1, sizeof(*s));
    if (!s || strlen(host) >= sizeof(s->host)) {
        free(s);
        return NULL;
    }
    s->base = base;
    strcpy(s->host, host);
    s->port = port;
    connect_store(s);
    return s;
}

void session_store_free(struct session_store *s)
{
    if (!s)
        return;
    s->closing = true;
    if (s->ac)
        redisAsyncFree(s->ac); /* pending callbacks run with a NULL reply */
    free(s);
}

bool session_store_connected(const struct session_store *s)
{
    return s && s->connected;
}

/* hiredis reply callback; reply NULL on a drop or at free. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct pending *p = privdata;
    redisReply *r = reply;
    p->cb(p->arg, r && r->type != REDIS_REPLY_ERROR ? r : NULL);
    free(p);
}

void session_command(struct session_store *s, session_reply_fn cb, void *arg, const char *fmt, ...)
{
    /* After a drop the link is remade here, and this command rides on it:
     * hiredis sends what was queued once the connection is up (or answers
     * it with a NULL reply if the connect fails), so the first request
     * after a Redis restart is served, not refused. */
    if (!s->ac)
        connect_store(s);
    if (!s->ac) {
        cb(arg, NULL);
        return;
    }
    struct pending *p = malloc(sizeof(*p));
    if (!p) {
        cb(arg, NULL);
        return;
    }
    *p = (struct pending){cb, arg};
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAsyncCommand(s->ac, on_reply, p, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        free(p);
        cb(arg, NULL);
    }
}
