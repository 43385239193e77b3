/* Start-up that waits for dependencies instead of exiting: a thread runs
 * a step (migrations, connecting) until it succeeds, with bounded
 * exponential back-off between tries, while the loop already serves the
 * admin port (/readyz answers 503 with "startup": false meanwhile). When
 * the step succeeds, done(ctx) runs on the loop. */
#ifndef TESSERA_SERVICE_STARTUP_H
#define TESSERA_SERVICE_STARTUP_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#define STARTUP_BACKOFF_MIN_MS 100
#define STARTUP_BACKOFF_MAX_MS 5000

/* One try: 0 on success, -1 with err to try again after the back-off. */
typedef int (*startup_step_fn)(void *ctx, char *err, size_t err_len);

struct startup;

/* Starts the thread. what names the step in logs ("migrations"). The loop
 * must be thread-aware (evthread_use_pthreads). */
struct startup *startup_begin(struct event_base *base, const char *what, startup_step_fn step,
                              void (*done)(void *ctx), void *ctx);
/* True once the step succeeded (done has been or is about to be called). */
bool startup_finished(const struct startup *s);
/* Stops retrying (a shutdown during start-up), joins the thread and
 * frees. A step in progress finishes first; done is not called after.
 * Returns whether the step succeeded (perhaps during this call), so the
 * caller can stop what the step started. */
bool startup_free(struct startup *s);

#endif
