/* Unit tests for the delivery worker's multi handle on epoll
 * (services/notification/multi.c): many POSTs to a real HTTP server on
 * loopback all complete through multi_wait alone (curl's sockets and timer
 * served from the epoll set), over kept-alive connections; and
 * multi_wakeup from another thread ends a wait at once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "../../services/notification/multi.h"

#define TRANSFERS     200 /* at once, more than one epoll_wait serves */
#define SERVER_CONNS  256 /* connections the server keeps: one per transfer at most */
#define DEADLINE_MS   20000
#define WAKE_WAIT_MS  10000
#define WAKE_BOUND_MS 5000
#define REQUEST_MAX   4096
static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A keep-alive HTTP server: answers each request (headers and a body of
 * Content-Length) with 200, on any number of connections, until stopped. */
struct server {
    int listen_fd, port;
    volatile int stop;
    int connections; /* accepted */
    pthread_t thread;
};

struct conn {
    int fd;
    char buf[REQUEST_MAX];
    size_t len;
};

/* Answers every whole request in c's buffer; false when it is closed. */
static int serve_requests(struct conn *c)
{
    for (;;) {
        c->buf[c->len] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end)
            return 1;
        const char *cl = strcasestr(c->buf, "Content-Length:");
        size_t body = cl && cl < end ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
        size_t whole = (size_t)(end + 4 - c->buf) + body;
        if (c->len < whole)
            return 1;
        if (write(c->fd, reply, sizeof(reply) - 1) != (ssize_t)(sizeof(reply) - 1))
            return 0;
        memmove(c->buf, c->buf + whole, c->len - whole);
        c->len -= whole;
    }
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    static struct conn conns[SERVER_CONNS];
    struct pollfd pfd[SERVER_CONNS + 1];
    int n = 0;
    while (!s->stop) {
        pfd[0] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
        for (int i = 0; i < n; i++)
            pfd[i + 1] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        if (poll(pfd, (nfds_t)n + 1, 50) <= 0)
            continue;
        for (int i = n - 1; i >= 0; i--) {
            if (!(pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(conns[i].fd, conns[i].buf + conns[i].len,
                             sizeof(conns[i].buf) - 1 - conns[i].len);
            if (r <= 0 || (conns[i].len += (size_t)r, !serve_requests(&conns[i]))) {
                close(conns[i].fd);
                conns[i] = conns[--n];
            }
        }
        if ((pfd[0].revents & POLLIN) && n < SERVER_CONNS) {
            int fd = accept(s->listen_fd, NULL, NULL);
            if (fd >= 0)
                conns[n++] = (struct conn){.fd = fd}, s->connections++;
        }
    }
    for (int i = 0; i < n; i++)
        close(conns[i].fd);
    return NULL;
}

static void server_start(struct server *s)
{
    memset(s, 0, sizeof(*s));
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->listen_fd, 256), 0);
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
    s->stop = 1;
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
}

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
    return size * n;
}

/* Adds n POSTs to m; returns how many finished with 200 once every one
 * finished or the deadline passed. */
static int run_posts(struct multi *m, int port, int n)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/sms", port);
    CURLM *multi = multi_curl(m);
    for (int i = 0; i < n; i++) {
        CURL *e = curl_easy_init();
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "{\"text\":\"hello\"}");
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        assert_int_equal(curl_multi_add_handle(multi, e), CURLM_OK);
    }
    int done = 0, ok = 0;
    int64_t deadline = now_ms() + DEADLINE_MS;
    while (done < n && now_ms() < deadline) {
        multi_wait(m, 100);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            long code = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            ok += msg->data.result == CURLE_OK && code == 200;
            done++;
            curl_multi_remove_handle(multi, msg->easy_handle);
            curl_easy_cleanup(msg->easy_handle);
        }
    }
    return ok;
}

static void test_posts_complete_through_epoll(void **state)
{
    struct server s;
    server_start(&s);
    struct multi *m = multi_open();
    assert_non_null(m);
    assert_int_equal(run_posts(m, s.port, TRANSFERS), TRANSFERS);
    /* a second round reuses the kept-alive connections: no new ones */
    int conns = s.connections;
    assert_int_equal(run_posts(m, s.port, TRANSFERS), TRANSFERS);
    assert_true(s.connections <= conns + TRANSFERS / 2);
    multi_close(m);
    server_stop(&s);
}

static void *wake_later(void *arg)
{
    usleep(100 * 1000);
    multi_wakeup(arg);
    return NULL;
}

static void test_wakeup_ends_a_wait(void **state)
{
    struct multi *m = multi_open();
    assert_non_null(m);
    pthread_t t;
    int64_t t0 = now_ms();
    assert_int_equal(pthread_create(&t, NULL, wake_later, m), 0);
    multi_wait(m, WAKE_WAIT_MS);
    int64_t waited = now_ms() - t0;
    pthread_join(t, NULL);
    assert_true(waited < WAKE_BOUND_MS);
    multi_close(m);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_complete_through_epoll),
        cmocka_unit_test(test_wakeup_ends_a_wait),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
