/* How often an error librdkafka reports is logged (bus_error_log_due).
 *
 * A transport error (the broker down, a connection refused) is reported
 * by every handle that talks to the broker: ingest alone has eight
 * command producers besides its event producer and its tails, so one
 * outage wrote each error eight times and more, every retry. Logged once
 * per error kind per BUS_ERROR_LOG_EVERY_MS across the process, it says
 * the same; the reports held back are counted in the next line logged.
 * Error callbacks run on each handle's polling thread: the table is
 * behind a mutex. */
#include "bus/bus_internal.h"

#include <pthread.h>

struct error_kind {
    int err;
    int64_t logged_ms; /* when it was last logged */
    long held_back;    /* reports since, not logged */
};

static struct error_kind kinds[BUS_ERROR_KINDS_MAX];
static size_t kind_count;
static pthread_mutex_t kinds_lock = PTHREAD_MUTEX_INITIALIZER;

bool bus_error_log_due(int err, int64_t now_ms, long *held_back)
{
    BUS_ASSERT(pthread_mutex_lock(&kinds_lock) == 0);
    struct error_kind *k = NULL;
    for (size_t i = 0; i < kind_count && !k; i++)
        if (kinds[i].err == err)
            k = &kinds[i];
    bool due = true;
    *held_back = 0;
    if (!k && kind_count < BUS_ERROR_KINDS_MAX) /* more kinds than that: each logged */
        k = &kinds[kind_count++], *k = (struct error_kind){.err = err, .logged_ms = now_ms};
    else if (k && now_ms - k->logged_ms < BUS_ERROR_LOG_EVERY_MS)
        due = false, k->held_back++;
    else if (k)
        *held_back = k->held_back, k->held_back = 0, k->logged_ms = now_ms;
    BUS_ASSERT(pthread_mutex_unlock(&kinds_lock) == 0);
    return due;
}
