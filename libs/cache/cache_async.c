/* The Redis member-state cache, asynchronous half (see cache.h): hiredis
 * on the ingest libevent loop. Everything here runs on the loop thread.
 *
 * hiredis 0.14 has no command timeout, so each request carries its own
 * timer. A request is owned jointly by hiredis (until its reply callback
 * runs, which hiredis guarantees, with a NULL reply on disconnect or free)
 * and by its timer; whichever of the two comes first calls the user's
 * callback, and the hiredis reply callback, always the last owner, frees
 * it. Requests refused before reaching hiredis are owned by the timer
 * alone. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>

#include "cache/cache.h"
#include "cache/cache_internal.h"
#include "log/log.h"
#include "metrics/metrics.h"

#define CACHE_ASYNC_REQUEST_TIMEOUT_MS                                                             \
    100 /* a cache read slower than this is a miss we cannot afford */
#define CACHE_ASYNC_CONNECT_TIMEOUT_MS 1000
#define CACHE_ASYNC_BACKOFF_MIN_MS     100
#define CACHE_ASYNC_BACKOFF_MAX_MS     5000
#define CACHE_HOST_MAX                 256

struct cache_req {
    struct cache_req *prev, *next; /* in cache_async.reqs while alive */
    struct cache_async *c;
    cache_balances_cb cb;    /* a balances read, or */
    cache_cards_cb cards_cb; /* a cards read, or */
    cache_reply_cb raw_cb;   /* a raw request (cache_async_raw), or */
    /* a pipeline (cache_async_pipeline): one callback a command, called in
     * order; parts[next_part] is the next to be called */
    cache_reply_cb parts[CACHE_PIPELINE_MAX];
    int n_parts, next_part;
    int in_hiredis_n; /* a pipeline's commands hiredis still holds */
    const char *op;   /* the round trip's name in the histogram */
    void *arg;
    struct event *ev_timeout;
    bool answered;   /* cb has run (a pipeline: every part's) */
    bool in_hiredis; /* hiredis still holds it as privdata */
    double sent_s;   /* for the round-trip histogram */
    char tenant_id[CACHE_KEY_MAX];
    char member_id[CACHE_KEY_MAX];
};

struct cache_async {
    struct event_base *base;
    char host[CACHE_HOST_MAX];
    int port;
    redisAsyncContext *ac; /* NULL while down; freed by hiredis on a drop */
    bool connected;
    bool closing;
    int backoff_ms;
    struct event *ev_reconnect;       /* back-off timer while down */
    struct event *ev_connect_timeout; /* armed while connecting */
    struct cache_req *reqs;           /* every live request, for cache_async_free */
};

static void cache_async_connect(struct cache_async *c);

static void timer_arm(struct event *ev, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* ---- requests ---- */

static void req_unlink_free(struct cache_req *r)
{
    struct cache_async *c = r->c;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    event_free(r->ev_timeout);
    free(r);
}

/* Calls the user's callback exactly once for r; result is a struct
 * cache_balances or a struct cache_cards_read (by the request's kind), or
 * NULL unless status is 1. */
static void req_answer(struct cache_req *r, int status, const void *result)
{
    if (r->answered)
        return;
    r->answered = true;
    evtimer_del(r->ev_timeout);
    if (r->n_parts > 0)
        while (r->next_part < r->n_parts) /* the parts without a reply */
            r->parts[r->next_part++](r->arg, NULL);
    else if (r->raw_cb)
        r->raw_cb(r->arg, NULL); /* raw requests get here only without a reply */
    else if (r->cards_cb != NULL)
        r->cards_cb(r->arg, status, result);
    else
        r->cb(r->arg, status, result);
}

/* A cards reply, decoded for the user's callback into a per-thread
 * scratch struct (about 20 KB: a malloc of that size on every read made
 * glibc consolidate its free lists each time). The callback has it only
 * while it runs, and a decode never nests in another. */
static void req_answer_cards(struct cache_req *r, const redisReply *reply)
{
    static _Thread_local struct cache_cards_read cards;
    int status = cache_cards_from_reply(reply, &cards);
    req_answer(r, status, status == 1 ? &cards : NULL);
}

/* Timer: the reply is late (or the request never reached Redis). A late
 * reply will find answered set and only free. */
static void req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cache_req *r = arg;
    req_answer(r, -1, NULL);
    if (!r->in_hiredis)
        req_unlink_free(r);
}

/* hiredis reply callback; reply is NULL when the link dropped or the
 * context is being freed. Last owner: always frees r. */
static void req_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct cache_req *r = privdata;
    r->in_hiredis = false;
    if (reply != NULL)
        cache_observe(r->op, metrics_now_seconds() - r->sent_s);
    if (!r->answered && r->raw_cb) {
        r->answered = true;
        evtimer_del(r->ev_timeout);
        r->raw_cb(r->arg, reply);
    } else if (!r->answered && r->cards_cb != NULL) {
        req_answer_cards(r, reply);
    } else if (!r->answered) {
        struct cache_balances b = {.tenant_id = r->tenant_id, .member_id = r->member_id};
        int status = cache_balances_from_reply(reply, &b);
        req_answer(r, status, status == 1 ? &b : NULL);
    }
    req_unlink_free(r);
}

/* ---- connection ---- */

static void schedule_reconnect(struct cache_async *c)
{
    c->ac = NULL;
    c->connected = false;
    if (c->closing)
        return;
    evtimer_del(c->ev_connect_timeout);
    timer_arm(c->ev_reconnect, c->backoff_ms);
    c->backoff_ms *= 2;
    if (c->backoff_ms > CACHE_ASYNC_BACKOFF_MAX_MS)
        c->backoff_ms = CACHE_ASYNC_BACKOFF_MAX_MS;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct cache_async *c = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees ac after this returns */
        log_warn("cache: connect to %s:%d failed: %s", c->host, c->port, ac->errstr);
        schedule_reconnect(c);
        return;
    }
    evtimer_del(c->ev_connect_timeout);
    c->connected = true;
    c->backoff_ms = CACHE_ASYNC_BACKOFF_MIN_MS;
    log_info("cache: connected to %s:%d", c->host, c->port);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct cache_async *c = ac->data;
    if (!c->closing)
        log_warn("cache: link to %s:%d dropped: %s", c->host, c->port,
                 status == REDIS_OK ? "closed" : ac->errstr);
    schedule_reconnect(c);
}

/* Still not connected: give up on this attempt. Freeing a context that
 * never connected runs neither callback, so we schedule the retry. */
static void connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cache_async *c = arg;
    if (c->ac == NULL || c->connected)
        return;
    log_warn("cache: connect to %s:%d timed out", c->host, c->port);
    redisAsyncFree(c->ac);
    schedule_reconnect(c);
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    cache_async_connect(arg);
}

static void cache_async_connect(struct cache_async *c)
{
    assert(c->ac == NULL);
    redisAsyncContext *ac = redisAsyncConnect(c->host, c->port);
    if (ac == NULL || ac->err) {
        log_warn("cache: connect to %s:%d failed: %s", c->host, c->port,
                 ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_reconnect(c);
        return;
    }
    ac->data = c;
    if (redisLibeventAttach(ac, c->base) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_reconnect(c);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (cache_async_auth(ac) != 0) {
        redisAsyncFree(ac);
        schedule_reconnect(c);
        return;
    }
    c->ac = ac;
    timer_arm(c->ev_connect_timeout, CACHE_ASYNC_CONNECT_TIMEOUT_MS);
}

/* ---- public ---- */

struct cache_async *cache_async_new(struct event_base *base, const char *host, int port, char *err,
                                    size_t err_len)
{
    assert(base != NULL && host != NULL && port > 0);
    struct cache_async *c = calloc(1, sizeof *c);
    if (c == NULL)
        goto oom;
    if (strlen(host) >= sizeof c->host) {
        snprintf(err, err_len, "cache: host name too long");
        free(c);
        return NULL;
    }
    strcpy(c->host, host);
    c->base = base;
    c->port = port;
    c->backoff_ms = CACHE_ASYNC_BACKOFF_MIN_MS;
    c->ev_reconnect = evtimer_new(base, reconnect_cb, c);
    c->ev_connect_timeout = evtimer_new(base, connect_timeout_cb, c);
    if (c->ev_reconnect == NULL || c->ev_connect_timeout == NULL)
        goto oom;
    cache_async_connect(c); /* a failure only schedules a retry */
    return c;
oom:
    snprintf(err, err_len, "cache: out of memory");
    cache_async_free(c);
    return NULL;
}

/* A live request of c (linked, its timer made, not yet armed). */
static struct cache_req *req_new(struct cache_async *c, const char *op, void *arg)
{
    struct cache_req *r = calloc(1, sizeof *r);
    assert(r != NULL);
    r->c = c;
    r->op = op;
    r->arg = arg;
    r->ev_timeout = evtimer_new(c->base, req_timeout_cb, r);
    assert(r->ev_timeout != NULL);
    r->next = c->reqs;
    if (c->reqs != NULL)
        c->reqs->prev = r;
    c->reqs = r;
    return r;
}

/* Copies the ids into r and writes its key with key_fn; true when the
 * request can go to Redis now (connected, ids fit). */
static bool req_prepare(struct cache_req *r,
                        int (*key_fn)(char *, size_t, const char *, const char *),
                        const char *tenant_id, const char *member_id, char key[CACHE_KEY_MAX])
{
    bool ok = strlen(tenant_id) < sizeof r->tenant_id && strlen(member_id) < sizeof r->member_id &&
              key_fn(key, CACHE_KEY_MAX, tenant_id, member_id) == 0;
    if (ok) {
        strcpy(r->tenant_id, tenant_id);
        strcpy(r->member_id, member_id);
    }
    return ok && r->c->connected;
}

/* After redisAsyncCommand (sent: it returned REDIS_OK) or instead of it:
 * arms the request's timeout, or answers -1 on the next loop turn (down,
 * bad key), never inside the caller's call. */
static void req_sent(struct cache_req *r, bool sent)
{
    if (sent) {
        r->in_hiredis = true;
        r->sent_s = metrics_now_seconds();
        timer_arm(r->ev_timeout, CACHE_ASYNC_REQUEST_TIMEOUT_MS);
        return;
    }
    timer_arm(r->ev_timeout, 0);
}

void cache_async_raw(struct cache_async *c, const char *op, const char *key, const char *fmt,
                     cache_reply_cb cb, void *arg)
{
    assert(c != NULL && op != NULL && fmt != NULL && cb != NULL);
    struct cache_req *r = req_new(c, op, arg);
    r->raw_cb = cb; /* down or no key: NULL on the next loop turn */
    req_sent(r, key != NULL && c->connected &&
                    redisAsyncCommand(c->ac, req_reply_cb, r, fmt, key) == REDIS_OK);
}

void cache_async_argv(struct cache_async *c, const char *op, int argc, const char **argv,
                      const size_t *argv_len, cache_reply_cb cb, void *arg)
{
    assert(c != NULL && op != NULL && argc > 0 && argv != NULL && argv_len != NULL && cb != NULL);
    struct cache_req *r = req_new(c, op, arg);
    r->raw_cb = cb;
    req_sent(r, c->connected && redisAsyncCommandArgv(c->ac, req_reply_cb, r, argc, argv,
                                                      argv_len) == REDIS_OK);
}

/* hiredis reply callback of one command of a pipeline, in order. The
 * request is answered when its last part is (or by its timer), and freed
 * once hiredis holds none of its commands. */
static void pipe_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct cache_req *r = privdata;
    assert(r->in_hiredis_n > 0);
    r->in_hiredis = --r->in_hiredis_n > 0;
    if (!r->answered) {
        r->parts[r->next_part++](r->arg, reply);
        if (r->next_part == r->n_parts && reply != NULL)
            cache_observe(r->op, metrics_now_seconds() - r->sent_s);
        if (r->next_part == r->n_parts || !r->in_hiredis)
            req_answer(r, -1, NULL); /* done, or the rest never reached hiredis */
    }
    if (!r->in_hiredis)
        req_unlink_free(r);
}

/* Appends "<prefix><n>\r\n" at p; returns the bytes written. */
static size_t resp_header(char *p, char prefix, size_t n)
{
    char digits[24];
    size_t d = 0;
    do {
        digits[d++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    size_t len = 0;
    p[len++] = prefix;
    while (d > 0)
        p[len++] = digits[--d];
    p[len++] = '\r';
    p[len++] = '\n';
    return len;
}

size_t cache_resp_format(char *buf, size_t cap, int argc, const char **argv, const size_t *argv_len)
{
    assert(buf != NULL && argc > 0 && argv != NULL && argv_len != NULL);
    size_t need = RESP_HEADER_MAX_BYTES;
    for (int i = 0; i < argc; i++)
        need += RESP_HEADER_MAX_BYTES + argv_len[i] + 2;
    if (need > cap)
        return 0;
    size_t len = resp_header(buf, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        len += resp_header(buf + len, '$', argv_len[i]);
        memcpy(buf + len, argv[i], argv_len[i]);
        len += argv_len[i];
        buf[len++] = '\r';
        buf[len++] = '\n';
    }
    return len;
}

/* Hands one command of a pipeline to hiredis, formatted here when it fits
 * RESP_COMMAND_MAX_BYTES: hiredis 0.14 formats with sdscatfmt into an sds
 * of its own per command (3% of ingest's CPU on the read path). */
static int pipe_send(struct cache_async *c, struct cache_req *r, const struct cache_command *cmd)
{
    char text[RESP_COMMAND_MAX_BYTES];
    size_t len = cache_resp_format(text, sizeof(text), cmd->argc, cmd->argv, cmd->argv_len);
    if (len > 0)
        return redisAsyncFormattedCommand(c->ac, pipe_reply_cb, r, text, len);
    return redisAsyncCommandArgv(c->ac, pipe_reply_cb, r, cmd->argc, cmd->argv, cmd->argv_len);
}

void cache_async_pipeline(struct cache_async *c, const char *op, int n,
                          const struct cache_command *cmds, void *arg)
{
    assert(c != NULL && op != NULL && n > 0 && n <= CACHE_PIPELINE_MAX && cmds != NULL);
    struct cache_req *r = req_new(c, op, arg);
    bool sendable = c->connected;
    for (int i = 0; i < n; i++) {
        assert(cmds[i].cb != NULL);
        r->parts[i] = cmds[i].cb;
        sendable = sendable && cmds[i].argc > 0;
    }
    r->n_parts = n;
    /* all or none: a command hiredis refuses (a context being freed)
     * leaves the later ones unsent, answered when the sent ones are */
    for (int i = 0; sendable && i < n; i++) {
        if (pipe_send(c, r, &cmds[i]) != REDIS_OK)
            break;
        r->in_hiredis_n++;
    }
    req_sent(r, r->in_hiredis_n > 0);
}

void cache_async_get_balances(struct cache_async *c, const char *tenant_id, const char *member_id,
                              cache_balances_cb cb, void *arg)
{
    assert(c != NULL && tenant_id != NULL && member_id != NULL && cb != NULL);
    struct cache_req *r = req_new(c, "get_balances", arg);
    r->cb = cb;
    char key[CACHE_KEY_MAX];
    req_sent(r,
             req_prepare(r, cache_balances_key, tenant_id, member_id, key) &&
                 redisAsyncCommand(c->ac, req_reply_cb, r,
                                   "HMGET %s points sv_principal sv_bonus version points_pending",
                                   key) == REDIS_OK);
}

void cache_async_get_cards(struct cache_async *c, const char *tenant_id, const char *member_id,
                           cache_cards_cb cb, void *arg)
{
    assert(c != NULL && tenant_id != NULL && member_id != NULL && cb != NULL);
    struct cache_req *r = req_new(c, "get_cards", arg);
    r->cards_cb = cb;
    char key[CACHE_KEY_MAX];
    req_sent(r, req_prepare(r, cache_cards_key, tenant_id, member_id, key) &&
                    redisAsyncCommand(c->ac, req_reply_cb, r, "HGETALL %s", key) == REDIS_OK);
}

bool cache_async_connected(const struct cache_async *c)
{
    assert(c != NULL);
    return c->connected;
}

/* Every request still waiting gets its callback (-1) here, synchronously.
 * Must not be called from inside a cache callback. */
void cache_async_free(struct cache_async *c)
{
    if (c == NULL)
        return;
    c->closing = true;
    if (c->ac != NULL)
        redisAsyncFree(c->ac); /* runs reply callbacks with NULL: they answer and free */
    c->ac = NULL;
    while (c->reqs != NULL) {
        struct cache_req *r = c->reqs;
        assert(!r->in_hiredis);
        req_answer(r, -1, NULL);
        req_unlink_free(r);
    }
    if (c->ev_reconnect != NULL)
        event_free(c->ev_reconnect);
    if (c->ev_connect_timeout != NULL)
        event_free(c->ev_connect_timeout);
    free(c);
}
