/* The start-up thread: try, wait (interruptibly), try again. The wait is
 * a condition variable so startup_free ends it at once, not after the
 * back-off. */
#undef NDEBUG /* asserts stay on in production builds */
#include "service/startup.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "util/sleep.h"
#include "log/log.h"

struct startup {
    const char *what;
    startup_step_fn step;
    void (*done)(void *ctx);
    void *ctx;
    struct event *ev_done; /* activated from the thread, runs done on the loop */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop; /* under lock */
    atomic_bool finished;
};

/* Waits ms unless stopped first; true when stopped. */
static bool startup_wait(struct startup *s, int ms)
{
    struct timespec until = deadline_after_ms(CLOCK_REALTIME, ms);
    pthread_mutex_lock(&s->lock);
    while (!s->stop && pthread_cond_timedwait(&s->wake, &s->lock, &until) != ETIMEDOUT)
        ;
    bool stopped = s->stop;
    pthread_mutex_unlock(&s->lock);
    return stopped;
}

static void *startup_main(void *arg)
{
    struct startup *s = arg;
    char err[512];
    for (int backoff_ms = STARTUP_BACKOFF_MIN_MS, attempt = 1;; attempt++) {
        if (s->step(s->ctx, err, sizeof(err)) == 0)
            break;
        char n[16], wait[16];
        snprintf(n, sizeof(n), "%d", attempt);
        snprintf(wait, sizeof(wait), "%d", backoff_ms);
        log_fields(LOG_WARN, "start-up step failed; retrying", "step", s->what, "attempt", n,
                   "retry_in_ms", wait, "error", err, NULL);
        if (startup_wait(s, backoff_ms))
            return NULL;
        backoff_ms =
            backoff_ms * 2 > STARTUP_BACKOFF_MAX_MS ? STARTUP_BACKOFF_MAX_MS : backoff_ms * 2;
    }
    atomic_store(&s->finished, true);
    event_active(s->ev_done, 0, 0);
    return NULL;
}

static void startup_on_done(evutil_socket_t fd, short what, void *arg)
{
    struct startup *s = arg;
    pthread_mutex_lock(&s->lock);
    bool stopped = s->stop;
    pthread_mutex_unlock(&s->lock);
    if (!stopped)
        s->done(s->ctx);
}

struct startup *startup_begin(struct event_base *base, const char *what, startup_step_fn step,
                              void (*done)(void *ctx), void *ctx)
{
    struct startup *s = calloc(1, sizeof(*s));
    assert(s && step && done);
    *s = (struct startup){.what = what, .step = step, .done = done, .ctx = ctx};
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    s->ev_done = event_new(base, -1, 0, startup_on_done, s);
    assert(s->ev_done);
    int rc = pthread_create(&s->thread, NULL, startup_main, s);
    assert(rc == 0);
    return s;
}

bool startup_finished(const struct startup *s)
{
    return s && atomic_load(&s->finished);
}

bool startup_free(struct startup *s)
{
    if (!s)
        return false;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    bool finished = atomic_load(&s->finished);
    event_free(s->ev_done);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return finished;
}
