/* Connection admission: what is refused before evhttp reads a body.
 *
 * libevent 2.1's evhttp reads a whole body (up to its one max_body_size)
 * before any callback sees the request, and it has no connection limit. So
 * every connection's bytes pass through a bufferevent filter of ours
 * (evhttp_set_bevcb) that frames requests by their heads:
 *
 *   - a head is screened when complete: a Content-Length over its route's
 *     limit (413), a Transfer-Encoding (411: a body must say its length,
 *     so that it can be refused before it is read), a duplicate
 *     Content-Length (400), or a connection over the cap (503) makes the
 *     filter hand evhttp a bodiless copy of the request line with
 *     "Connection: close" and an admission header instead, and drop
 *     everything the client sends after it. The gencb answers that header
 *     as problem+json (http.c) before routing to any handler, so nothing
 *     is authenticated, buffered or parsed;
 *   - an admitted head goes through unchanged, then exactly Content-Length
 *     body bytes, then the next head (keep-alive, pipelining).
 *
 * Output goes straight from the filter to the socket (conn_write): had it
 * gone through the socket bufferevent's buffer, the filter would report a
 * reply written while it still sat there, and evhttp, closing the
 * connection after a "Connection: close" reply, would drop it.
 *
 * evhttp stops reading a connection while its request waits for the reply
 * and reads again after it: the filter passes that on to the socket's read
 * event, an epoll_ctl(2) to remove it and another to add it back on every
 * request. A second read event of ours on the same socket (the keeper,
 * conn_keep) stays added, so libevent only changes its count of readers
 * and epoll is not told. The keeper reads nothing: when the socket turns
 * readable while evhttp is not reading (a pipelined request, the client's
 * EOF), it removes itself, so that the loop does not spin on the unread
 * bytes, and the next read of the socket puts it back.
 *
 * The admission header carries a per-server random token: a client that
 * sends one itself cannot make it count. Live connections are counted
 * from the filter's creation to its free_context callback; a connection
 * accepted at the cap is answered 503 too_many_connections on its first
 * request and closed. Runs on the server's event loop thread. */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>

#include "http/http_internal.h"

#define ADMISSION_TOKEN_BYTES 16
#define HEAD_END              "\r\n\r\n"
#define HEAD_END_LEN          4
#define CONTENT_LENGTH_MAX    ((uint64_t)1 << 62) /* larger values are "too large" */
/* Times the keeper may see the socket readable with no read in between
 * before it steps aside (conn_keeper_fired). */
#define KEEPER_IDLE_FIRES_MAX 2

struct http_admission {
    const struct http_route *routes;
    size_t route_count;
    struct http_limits limits; /* body limits per route */
    size_t headers_max_bytes;
    size_t connections_max;
    size_t live;      /* filters alive */
    bool server_gone; /* freed when the last filter goes */
    char token[2 * ADMISSION_TOKEN_BYTES + 1];
};

enum conn_state {
    CONN_HEAD,    /* waiting for a complete request head */
    CONN_BODY,    /* passing `remaining` body bytes */
    CONN_DISCARD, /* a request was refused: drop the rest */
};

struct conn {
    struct http_admission *adm;
    struct bufferevent *sock;   /* the socket under the filter */
    struct bufferevent *filter; /* what evhttp reads and writes */
    struct event *push;         /* activated when evhttp adds to a reply */
    struct event *writable;     /* armed while a reply waits for the socket */
    struct event *keeper;       /* a second reader of the socket (see the top) */
    bool keeper_off;            /* stepped aside until the socket is read again */
    int keeper_idle_fires;      /* fired since the socket was last read */
    enum conn_state state;
    uint64_t remaining;
    bool over_cap; /* accepted at the cap: its first request is refused */
};

/* What a screened head says. */
struct head {
    const char *line; /* the request line, without CRLF */
    size_t line_len;
    char method[HTTP_METHOD_MAX_BYTES];
    char path[HTTP_PATH_SCREEN_MAX_BYTES];
    bool has_length, length_conflict, has_transfer_encoding;
    uint64_t length;
};

struct http_admission *http_admission_new(const struct http_route *routes, size_t route_count,
                                          const struct http_limits *limits)
{
    struct http_admission *adm = calloc(1, sizeof(*adm));
    if (adm == NULL)
        return NULL;
    *adm = (struct http_admission){.routes = routes,
                                   .route_count = route_count,
                                   .limits = *limits,
                                   .headers_max_bytes = limits->headers_max_bytes,
                                   .connections_max = limits->connections_max};
    unsigned char raw[ADMISSION_TOKEN_BYTES];
    evutil_secure_rng_get_bytes(raw, sizeof(raw));
    sodium_bin2hex(adm->token, sizeof(adm->token), raw, sizeof(raw));
    return adm;
}

void http_admission_release(struct http_admission *adm)
{
    if (adm == NULL)
        return;
    adm->server_gone = true;
    if (adm->live == 0)
        free(adm);
}

size_t http_admission_live(const struct http_admission *adm)
{
    return adm->live;
}

static void conn_free(void *arg)
{
    struct conn *c = arg;
    struct http_admission *adm = c->adm;
    assert(adm->live > 0);
    adm->live--;
    if (c->push)
        event_free(c->push);
    if (c->writable)
        event_free(c->writable);
    if (c->keeper)
        event_free(c->keeper); /* before the socket closes: it is closed after us */
    free(c);
    if (adm->server_gone && adm->live == 0)
        free(adm);
}

/* --- heads ------------------------------------------------------------------ */

static bool header_is(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

/* Digits only, saturating at CONTENT_LENGTH_MAX; false when not a number. */
static bool parse_length(const char *v, size_t len, uint64_t *out)
{
    uint64_t n = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        n = n >= CONTENT_LENGTH_MAX ? CONTENT_LENGTH_MAX : n * 10 + (uint64_t)(v[i] - '0');
    }
    *out = n;
    return true;
}

/* Reads the request line's method and path (query cut off), and the
 * framing headers. False when the head is not a request we can read. */
static bool head_parse(const char *p, size_t len, struct head *h)
{
    const char *end = p + len, *eol = memchr(p, '\r', len);
    if (eol == NULL || eol + 1 >= end || eol[1] != '\n')
        return false;
    h->line = p;
    h->line_len = (size_t)(eol - p);
    const char *sp1 = memchr(p, ' ', h->line_len);
    if (sp1 == NULL || (size_t)(sp1 - p) >= sizeof(h->method))
        return false;
    memcpy(h->method, p, (size_t)(sp1 - p));
    const char *target = sp1 + 1, *sp2 = memchr(target, ' ', (size_t)(eol - target));
    if (sp2 == NULL)
        return false;
    size_t path_len = strcspn(target, "? ");
    if (path_len >= sizeof(h->path))
        path_len = sizeof(h->path) - 1; /* a path this long matches no route */
    memcpy(h->path, target, path_len);
    for (const char *line = eol + 2; line < end;) {
        const char *next = memchr(line, '\r', (size_t)(end - line));
        if (next == NULL || next == line)
            break; /* the empty line ending the head */
        const char *colon = memchr(line, ':', (size_t)(next - line));
        if (colon != NULL) {
            const char *v = colon + 1, *v_end = next;
            while (v < v_end && (*v == ' ' || *v == '\t'))
                v++;
            while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t'))
                v_end--;
            size_t name_len = (size_t)(colon - line);
            uint64_t n = 0;
            if (header_is(line, name_len, "Transfer-Encoding")) {
                h->has_transfer_encoding = true;
            } else if (header_is(line, name_len, "Content-Length")) {
                if (!parse_length(v, (size_t)(v_end - v), &n) || (h->has_length && n != h->length))
                    h->length_conflict = true;
                h->has_length = true;
                h->length = n;
            }
        }
        line = next + 2;
    }
    return true;
}

/* The body limit of the route the head names (the server's when none). */
static size_t head_body_max(const struct http_admission *adm, const struct head *h)
{
    const struct http_route *route = NULL;
    struct http_capture caps[HTTP_PARAMS_MAX];
    size_t cap_count = 0;
    char allow[HTTP_ALLOW_MAX_BYTES];
    if (http_routes_find(adm->routes, adm->route_count, h->method, h->path, &route, caps,
                         &cap_count, allow, sizeof(allow)) == HTTP_MATCH_FULL)
        return http_route_body_max(&adm->limits, route->method, route->pattern);
    return adm->limits.body_max_bytes;
}

/* Hands evhttp the request line alone with Connection: close and the
 * admission header saying why; the rest of the connection is dropped. */
static void head_refuse(struct conn *c, const struct head *h, struct evbuffer *dst, int status,
                        uint64_t detail)
{
    static const char fallback[] = "GET / HTTP/1.1";
    const char *line = h->line != NULL ? h->line : fallback;
    size_t line_len = h->line != NULL ? h->line_len : strlen(fallback);
    evbuffer_add(dst, line, line_len);
    evbuffer_add_printf(dst,
                        "\r\nConnection: close\r\n" HTTP_ADMISSION_HEADER ": %s %d %llu\r\n\r\n",
                        c->adm->token, status, (unsigned long long)detail);
    c->state = CONN_DISCARD;
}

/* A complete head of head_len bytes at the front of src: passed on, or
 * replaced by a refusal. */
static void head_screen(struct conn *c, struct evbuffer *src, struct evbuffer *dst, size_t head_len)
{
    struct head h = {0};
    const char *p = (const char *)evbuffer_pullup(src, (ev_ssize_t)head_len);
    bool parsed = p != NULL && head_parse(p, head_len, &h);
    /* the route is looked up only for a body: most requests have none */
    size_t limit = parsed && h.has_length ? head_body_max(c->adm, &h) : 0;
    if (c->over_cap)
        head_refuse(c, &h, dst, 503, 0);
    else if (!parsed || h.length_conflict)
        head_refuse(c, &h, dst, 400, 0);
    else if (h.has_transfer_encoding)
        head_refuse(c, &h, dst, 411, 0);
    else if (h.has_length && h.length > limit)
        head_refuse(c, &h, dst, 413, h.length);
    if (c->state == CONN_DISCARD) {
        evbuffer_drain(src, head_len);
        return;
    }
    evbuffer_remove_buffer(src, dst, head_len);
    /* evhttp reads no body for HEAD and TRACE (evhttp_method_may_have_body) */
    bool bodiless = strcmp(h.method, "HEAD") == 0 || strcmp(h.method, "TRACE") == 0;
    c->remaining = h.has_length && !bodiless ? h.length : 0;
    c->state = c->remaining > 0 ? CONN_BODY : CONN_HEAD;
}

/* The socket turned readable. While evhttp reads, the socket's own read
 * event reads it in this same pass; while it does not (a request waits for
 * its reply), the bytes stay unread and a level-triggered event would fire
 * on every pass: after the second time with no read in between, the
 * keeper steps aside (its epoll_ctl is paid only then). */
static void conn_keeper_fired(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    bufferevent_event_cb alive = NULL;
    bufferevent_getcb(c->filter, NULL, NULL, &alive, NULL);
    bool reading = alive != NULL && (bufferevent_get_enabled(c->filter) & EV_READ);
    c->keeper_idle_fires++;
    if (reading ? c->keeper_idle_fires > KEEPER_IDLE_FIRES_MAX
                : c->keeper_idle_fires >= KEEPER_IDLE_FIRES_MAX) {
        event_del(c->keeper);
        c->keeper_off = true;
    }
}

/* The socket was read: the keeper is (back) in place. Made on the first
 * read, once evhttp has given the socket to the bufferevent. */
static void conn_keep(struct conn *c)
{
    c->keeper_idle_fires = 0;
    if (c->keeper == NULL) {
        evutil_socket_t fd = bufferevent_getfd(c->sock);
        if (fd < 0)
            return;
        c->keeper = event_new(bufferevent_get_base(c->sock), fd, EV_READ | EV_PERSIST,
                              conn_keeper_fired, c);
        c->keeper_off = c->keeper == NULL || event_add(c->keeper, NULL) != 0;
    } else if (c->keeper_off) {
        c->keeper_off = event_add(c->keeper, NULL) != 0;
    }
}

/* bufferevent input filter: moves src (the socket) to dst (evhttp). */
static enum bufferevent_filter_result conn_filter(struct evbuffer *src, struct evbuffer *dst,
                                                  ev_ssize_t dst_limit,
                                                  enum bufferevent_flush_mode mode, void *arg)
{
    struct conn *c = arg;
    size_t before = evbuffer_get_length(dst);
    conn_keep(c);
    while (evbuffer_get_length(src) > 0) {
        if (c->state == CONN_DISCARD) {
            evbuffer_drain(src, evbuffer_get_length(src));
        } else if (c->state == CONN_BODY) {
            size_t n = evbuffer_get_length(src);
            if (n > c->remaining)
                n = (size_t)c->remaining;
            evbuffer_remove_buffer(src, dst, n);
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = CONN_HEAD;
        } else {
            char crlf[2];
            if (evbuffer_copyout(src, crlf, 2) == 2 && memcmp(crlf, "\r\n", 2) == 0) {
                /* an empty line between requests: evhttp's to judge */
                evbuffer_remove_buffer(src, dst, 2);
                continue;
            }
            struct evbuffer_ptr at = evbuffer_search(src, HEAD_END, HEAD_END_LEN, NULL);
            if (at.pos < 0) {
                /* evhttp refuses heads over its limit itself; we only wait
                 * as long as a head may be */
                if (evbuffer_get_length(src) > c->adm->headers_max_bytes + HTTP_LINE_SLACK_BYTES) {
                    struct head none = {0};
                    head_refuse(c, &none, dst, 400, 0);
                    continue;
                }
                break;
            }
            head_screen(c, src, dst, (size_t)at.pos + HEAD_END_LEN);
        }
    }
    return evbuffer_get_length(dst) > before ? BEV_OK : BEV_NEED_MORE;
}

/* The socket can take (more of) a reply, or evhttp added to one: push the
 * filter's output. Not once evhttp has freed the connection
 * (bufferevent_free clears the callbacks; the filter is finalized later,
 * freeing these events first). */
static void conn_push(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    bufferevent_event_cb alive = NULL;
    bufferevent_getcb(c->filter, NULL, NULL, &alive, NULL);
    if (alive != NULL)
        bufferevent_flush(c->filter, EV_WRITE, BEV_FLUSH);
}

/* Waits for the socket to be writable, once: only when it did not take a
 * whole reply (each arming and disarming is an epoll_ctl(2)). */
static void conn_arm_writable(struct conn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->sock);
    if (c->writable == NULL && fd >= 0)
        c->writable = event_new(bufferevent_get_base(c->sock), fd, EV_WRITE, conn_push, c);
    if (c->writable != NULL)
        event_add(c->writable, NULL);
}

/* evhttp added to its reply. The filter pushes output only while writing
 * is enabled, and evhttp enables it after adding: the push runs after the
 * callbacks already active in this pass of the loop, with no system call
 * to arrange it (a socket with room takes a reply at once). */
static void conn_on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    if (info->n_added == 0)
        return;
    if (c->push == NULL)
        c->push = event_new(bufferevent_get_base(c->sock), -1, 0, conn_push, c);
    if (c->push != NULL)
        event_active(c->push, EV_WRITE, 1);
    else
        conn_arm_writable(c);
}

/* bufferevent output filter: writes src (evhttp's reply) to the socket
 * itself, so that src is empty only once the kernel has every byte. What
 * the socket does not take now waits for the socket to be writable. A failed write
 * drops the reply: the read side then sees the connection fail. */
static enum bufferevent_filter_result conn_write(struct evbuffer *src, struct evbuffer *dst,
                                                 ev_ssize_t dst_limit,
                                                 enum bufferevent_flush_mode mode, void *arg)
{
    struct conn *c = arg;
    evutil_socket_t fd = bufferevent_getfd(c->sock);
    if (evbuffer_get_length(src) == 0)
        return BEV_NEED_MORE;
    int n = fd < 0 ? -1 : evbuffer_write(src, fd);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        evbuffer_drain(src, evbuffer_get_length(src));
        n = 1;
    }
    if (evbuffer_get_length(src) == 0) {
        if (c->writable != NULL)
            event_del(c->writable);
        return BEV_OK; /* all in the kernel: the reply is written */
    }
    conn_arm_writable(c);
    return n > 0 ? BEV_OK : BEV_NEED_MORE;
}

struct bufferevent *http_admission_bevcb(struct event_base *base, void *arg)
{
    struct http_admission *adm = arg;
    struct conn *c = calloc(1, sizeof(*c));
    struct bufferevent *sock = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    struct bufferevent *bev = NULL;
    if (c != NULL && sock != NULL)
        /* Deferred callbacks: evhttp may free the connection from its
         * write callback, and the filter re-arms its write timeout after
         * running that callback when it runs it inline (a freed
         * bufferevent's timer left in the heap hangs event_base_free). */
        bev = bufferevent_filter_new(sock, conn_filter, conn_write,
                                     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, conn_free, c);
    if (bev == NULL) {
        /* evhttp then makes a plain connection of its own: still served */
        if (sock != NULL)
            bufferevent_free(sock);
        free(c);
        return NULL;
    }
    *c = (struct conn){.adm = adm,
                       .sock = sock,
                       .filter = bev,
                       .state = CONN_HEAD,
                       .over_cap = adm->live >= adm->connections_max};
    evbuffer_add_cb(bufferevent_get_output(bev), conn_on_output, c);
    adm->live++;
    return bev;
}

bool http_admission_refusal(const struct http_admission *adm, struct evhttp_request *req,
                            int *status, uint64_t *detail)
{
    const char *v =
        evhttp_find_header(evhttp_request_get_input_headers(req), HTTP_ADMISSION_HEADER);
    size_t token_len = strlen(adm->token);
    unsigned long long n = 0;
    if (v == NULL || strncmp(v, adm->token, token_len) != 0 || v[token_len] != ' ' ||
        sscanf(v + token_len + 1, "%d %llu", status, &n) != 2)
        return false;
    *detail = n;
    return true;
}
