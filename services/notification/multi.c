/* The delivery worker's libcurl multi handle, driven by epoll through
 * curl_multi_socket_action: a wake-up costs the sockets that are ready,
 * not every transfer in flight. (curl_multi_perform and curl_multi_poll
 * walk every easy handle and socket on each call; with a slice of 512 sends
 * in flight that was most of the worker's CPU in bench/notify.sh.)
 * One worker thread uses each; multi_wakeup may be called from any thread. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "multi.h"

#define MULTI_EVENTS_MAX 256 /* sockets served per epoll_wait */

struct multi {
    CURLM *multi;
    int epfd, wakefd;
    int64_t timer_due_ms; /* curl's timer: -1 none */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* curl says which events a socket waits for (or that it is done). */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct multi *m = userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(m->epfd, EPOLL_CTL_DEL, s, NULL); /* may be closed already: ignored */
        return 0;
    }
    struct epoll_event ev = {.data.fd = s};
    if (what & CURL_POLL_IN)
        ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev.events |= EPOLLOUT;
    if (epoll_ctl(m->epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
        epoll_ctl(m->epfd, EPOLL_CTL_ADD, s, &ev);
    return 0;
}

/* curl's single timer: -1 stops it, 0 means now. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct multi *m = userp;
    m->timer_due_ms = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    return 0;
}

struct multi *multi_open(void)
{
    struct multi *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->multi = curl_multi_init();
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    m->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    m->timer_due_ms = -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = -1};
    if (!m->multi || m->epfd < 0 || m->wakefd < 0 ||
        epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->wakefd, &ev) != 0) {
        multi_close(m);
        return NULL;
    }
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    return m;
}

CURLM *multi_curl(struct multi *m)
{
    return m->multi;
}

/* Runs curl's timer if it is due; the time until it is, or -1. */
static int run_timer(struct multi *m)
{
    int running;
    if (m->timer_due_ms >= 0 && now_ms() >= m->timer_due_ms) {
        m->timer_due_ms = -1;
        curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    if (m->timer_due_ms < 0)
        return -1;
    int64_t left = m->timer_due_ms - now_ms();
    return left > 0 ? (int)left : 0;
}

void multi_wait(struct multi *m, int timeout_ms)
{
    int timer = run_timer(m); /* a transfer just added is started here */
    if (timer >= 0 && timer < timeout_ms)
        timeout_ms = timer;
    struct epoll_event ev[MULTI_EVENTS_MAX];
    int n = epoll_wait(m->epfd, ev, MULTI_EVENTS_MAX, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (ev[i].data.fd < 0) {
            uint64_t v;
            if (read(m->wakefd, &v, sizeof(v)) < 0) { /* drained: nothing to do */
            }
            continue;
        }
        int flags = (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                    (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                    (ev[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        int running;
        curl_multi_socket_action(m->multi, ev[i].data.fd, flags, &running);
    }
    run_timer(m);
}

void multi_wakeup(struct multi *m)
{
    uint64_t one = 1;
    if (write(m->wakefd, &one, sizeof(one)) < 0) { /* already signalled */
    }
}

void multi_close(struct multi *m)
{
    if (!m)
        return;
    if (m->multi)
        curl_multi_cleanup(m->multi);
    if (m->epfd >= 0)
        close(m->epfd);
    if (m->wakefd >= 0)
        close(m->wakefd);
    free(m);
}
