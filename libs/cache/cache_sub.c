/* A Redis channel followed on a libevent loop (see cache_sub.h). Runs on
 * the loop thread only. hiredis keeps a SUBSCRIBE callback registered for
 * every message of the channel, and calls it once more with a NULL reply
 * when the link goes; the link is then made again after a back-off. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>

#include "cache/cache.h"
#include "cache/cache_sub.h"
#include "log/log.h"

#define CACHE_SUB_CONNECT_TIMEOUT_MS 1000
#define CACHE_SUB_BACKOFF_MIN_MS     100
#define CACHE_SUB_BACKOFF_MAX_MS     5000
#define CACHE_SUB_HOST_MAX           256
#define CACHE_SUB_CHANNEL_MAX        128

struct cache_sub {
    struct event_base *base;
    char host[CACHE_SUB_HOST_MAX];
    int port;
    char channel[CACHE_SUB_CHANNEL_MAX];
    cache_sub_fn on_message;
    void *ctx;
    redisAsyncContext *ac; /* NULL while down; hiredis frees it on a drop */
    bool subscribed;
    bool closing;
    int backoff_ms;
    struct event *ev_reconnect;
    struct event *ev_connect_timeout;
};

static void sub_connect(struct cache_sub *s);

static void timer_arm(struct event *ev, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

static void schedule_reconnect(struct cache_sub *s)
{
    s->ac = NULL;
    s->subscribed = false;
    if (s->closing)
        return;
    evtimer_del(s->ev_connect_timeout);
    timer_arm(s->ev_reconnect, s->backoff_ms);
    s->backoff_ms =
        s->backoff_ms * 2 > CACHE_SUB_BACKOFF_MAX_MS ? CACHE_SUB_BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* Every reply of the subscription: ["subscribe", channel, n] once, then
 * ["message", channel, payload] per message; NULL when the link goes. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct cache_sub *s = privdata;
    const redisReply *r = reply;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(r->element[0]->str, "subscribe") == 0) {
        s->subscribed = true;
        s->backoff_ms = CACHE_SUB_BACKOFF_MIN_MS;
        log_info("cache: subscribed to %s", s->channel);
    } else if (strcmp(r->element[0]->str, "message") == 0 &&
               r->element[2]->type == REDIS_REPLY_STRING) {
        s->on_message(s->ctx, r->element[2]->str, r->element[2]->len);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct cache_sub *s = ac->data;
    if (status != REDIS_OK) { /* hiredis frees ac after this returns */
        log_warn("cache: subscriber connect to %s:%d failed: %s", s->host, s->port, ac->errstr);
        schedule_reconnect(s);
        return;
    }
    evtimer_del(s->ev_connect_timeout);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct cache_sub *s = ac->data;
    if (!s->closing)
        log_warn("cache: subscriber link to %s:%d dropped: %s", s->host, s->port,
                 status == REDIS_OK ? "closed" : ac->errstr);
    schedule_reconnect(s);
}

/* Freeing a context that never connected runs neither callback. */
static void connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cache_sub *s = arg;
    if (s->ac == NULL)
        return;
    log_warn("cache: subscriber connect to %s:%d timed out", s->host, s->port);
    redisAsyncFree(s->ac);
    schedule_reconnect(s);
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    sub_connect(arg);
}

static void sub_connect(struct cache_sub *s)
{
    assert(s->ac == NULL);
    redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
    if (ac == NULL || ac->err) {
        log_warn("cache: subscriber connect to %s:%d failed: %s", s->host, s->port,
                 ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    ac->data = s;
    /* AUTH is queued first, so it goes out before SUBSCRIBE. */
    if (redisLibeventAttach(ac, s->base) != REDIS_OK || cache_async_auth(ac) != 0 ||
        redisAsyncSetConnectCallback(ac, on_connect) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(ac, on_disconnect) != REDIS_OK ||
        redisAsyncCommand(ac, on_reply, s, "SUBSCRIBE %s", s->channel) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    s->ac = ac;
    timer_arm(s->ev_connect_timeout, CACHE_SUB_CONNECT_TIMEOUT_MS);
}

struct cache_sub *cache_sub_new(struct event_base *base, const char *host, int port,
                                const char *channel, cache_sub_fn on_message, void *ctx, char *err,
                                size_t err_len)
{
    assert(base && host && channel && on_message);
    if (strlen(host) >= CACHE_SUB_HOST_MAX || strlen(channel) >= CACHE_SUB_CHANNEL_MAX) {
        snprintf(err, err_len, "cache: subscriber host or channel too long");
        return NULL;
    }
    struct cache_sub *s = calloc(1, sizeof(*s));
    assert(s);
    s->base = base;
    snprintf(s->host, sizeof(s->host), "%s", host);
    s->port = port;
    snprintf(s->channel, sizeof(s->channel), "%s", channel);
    s->on_message = on_message;
    s->ctx = ctx;
    s->backoff_ms = CACHE_SUB_BACKOFF_MIN_MS;
    s->ev_reconnect = evtimer_new(base, reconnect_cb, s);
    s->ev_connect_timeout = evtimer_new(base, connect_timeout_cb, s);
    assert(s->ev_reconnect && s->ev_connect_timeout);
    sub_connect(s); /* a failure only schedules a retry */
    return s;
}

bool cache_sub_active(const struct cache_sub *s)
{
    return s && s->subscribed;
}

void cache_sub_free(struct cache_sub *s)
{
    if (!s)
        return;
    s->closing = true;
    if (s->ac)
        redisAsyncFree(s->ac);
    event_free(s->ev_reconnect);
    event_free(s->ev_connect_timeout);
    free(s);
}
