/* After commit, the balances and the cards a batch changed are written to
 * Redis in one pipelined round trip. The cache is only a cache: a failure
 * is logged, the connection dropped and re-made (with back-off, so a
 * Redis that does not answer costs a batch nothing), and readers fall
 * back to PostgreSQL meanwhile. Versioned writes keep a late write from
 * replacing a newer one.
 *
 * Writes skipped while Redis is away are repaired when it comes back,
 * whether or not more commands arrive: every skipped or failed write asks
 * the repair thread (started on demand, one at a time) to resync
 * everything changed since the outage began; it waits for Redis to answer,
 * then runs the resync (cache_resync.c) while batches go on. Versioned
 * writes make the two safe to interleave. TESSERA_LEDGER_CACHE_RESYNC_S=0
 * turns the repair off with the start-up resync. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "cache/cache.h"
#include "cards.h"
#include "ledger.h"
#include "log/log.h"
#include "util/sleep.h"

#define CACHE_TIMEOUT_MS      1000
#define CACHE_BACKOFF_MIN_MS  100
#define CACHE_BACKOFF_MAX_MS  5000
#define CACHE_RESYNC_MARGIN_S 60 /* a batch commits before its failed write is seen */

static double wall_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the repair thread ---- */
/* Waits (with back-off) until Redis accepts a connection. */
static void repair_wait_for_redis(const struct ledger_ctx *l)
{
    int backoff_ms = CACHE_BACKOFF_MIN_MS;
    for (;;) {
        char err[256];
        redisContext *rc =
            cache_connect(l->redis_host, l->redis_port, CACHE_TIMEOUT_MS, err, sizeof(err));
        if (rc) {
            redisFree(rc);
            return;
        }
        sleep_ms(backoff_ms);
        backoff_ms = backoff_ms * 2 > CACHE_BACKOFF_MAX_MS ? CACHE_BACKOFF_MAX_MS : backoff_ms * 2;
    }
}

/* Records that writes since since_us (wall clock) need repairing; keeps
 * the oldest request. Any thread. */
static void repair_note(struct ledger_ctx *l, long long since_us)
{
    long long cur = atomic_load(&l->repair_since_us);
    while ((cur == 0 || since_us < cur) &&
           !atomic_compare_exchange_weak(&l->repair_since_us, &cur, since_us))
        ;
}

/* Takes requests until none is left: each waits for Redis, then resyncs
 * the window from its start to now (and is taken again if that fails).
 * Detached: a stop in the middle only leaves the start-up resync to do
 * the rest. */
static void *repair_main(void *arg)
{
    struct ledger_ctx *l = arg;
    for (;;) {
        repair_wait_for_redis(l);
        /* Before the resync reads PostgreSQL: the pipeline stops skipping
         * its writes now. Otherwise a batch committed after the resync's
         * read, while the pipeline still backs off, left Redis holding the
         * older balance the resync wrote, served to readers as a hit (a
         * top-up answered 201 and then not shown) until the next pass. A
         * batch that skipped before this store committed before the read
         * below, which then sees it. */
        atomic_store(&l->redis_back, true);
        long long since_us = atomic_exchange(&l->repair_since_us, 0);
        if (since_us == 0) {
            atomic_store(&l->repair_running, false);
            /* a request that came between the exchange and the store */
            if (atomic_load(&l->repair_since_us) == 0 || atomic_exchange(&l->repair_running, true))
                return NULL;
            continue;
        }
        long long window_s =
            (long long)ceil(wall_now_s() - (double)since_us / 1e6) + CACHE_RESYNC_MARGIN_S;
        log_fields(LOG_INFO, "redis answers; repairing what changed while writes were skipped",
                   NULL);
        if (ledger_cache_resync(l->common, window_s) != 0) {
            repair_note(l, since_us);
            sleep_ms(CACHE_BACKOFF_MAX_MS);
        }
    }
}

/* Asks for the writes skipped since since_s (wall clock) to be repaired;
 * starts the repair thread unless it runs. Pipeline thread. */
static void repair_request(struct ledger_ctx *l, double since_s)
{
    if (l->cache_resync_s <= 0 || l->common == NULL)
        return;
    repair_note(l, (long long)(since_s * 1e6));
    if (atomic_exchange(&l->repair_running, true))
        return; /* the running thread takes it */
    pthread_t thread;
    if (pthread_create(&thread, NULL, repair_main, l) != 0) {
        atomic_store(&l->repair_running, false);
        log_fields(LOG_WARN, "cache repair thread not started; the next skipped write retries",
                   NULL);
        return;
    }
    pthread_detach(thread);
}

/* ---- the pipeline thread's connection ---- */
/* The cache is away from now on: drop the link, back off, and ask for a
 * repair of what this batch (and the next ones, until a write succeeds)
 * did not write. */
static void cache_lost(struct ledger_ctx *l)
{
    if (l->rc) {
        redisFree(l->rc);
        l->rc = NULL;
    }
    atomic_store(&l->redis_ok, false);
    if (l->cache_down_since_s == 0)
        l->cache_down_since_s = wall_now_s();
    l->cache_retry_at_s = mono_now_s() + l->cache_backoff_ms / 1000.0;
    l->cache_backoff_ms = l->cache_backoff_ms ? l->cache_backoff_ms * 2 : CACHE_BACKOFF_MIN_MS;
    if (l->cache_backoff_ms > CACHE_BACKOFF_MAX_MS)
        l->cache_backoff_ms = CACHE_BACKOFF_MAX_MS;
    repair_request(l, l->cache_down_since_s);
}

void ledger_cache_down(struct ledger_ctx *l)
{
    /* Down at start: the start-up resync may have been skipped too, so
     * the repair covers its window as well. */
    l->cache_down_since_s = wall_now_s() - (double)l->cache_resync_s;
    cache_lost(l);
}

static bool cache_ensure(struct ledger_ctx *l)
{
    if (l->rc)
        return true;
    if (!atomic_exchange(&l->redis_back, false) && mono_now_s() < l->cache_retry_at_s) {
        repair_request(l, l->cache_down_since_s); /* this batch's writes too */
        return false;
    }
    char err[256];
    l->rc = cache_connect(l->redis_host, l->redis_port, CACHE_TIMEOUT_MS, err, sizeof(err));
    if (!l->rc) {
        log_fields(LOG_WARN, "redis unreachable; cache not updated", "error", err, NULL);
        cache_lost(l);
        return false;
    }
    atomic_store(&l->redis_ok, true);
    return true;
}

void ledger_cache_sync(struct ledger_ctx *l)
{
    size_t dirty = 0;
    for (size_t i = 0; i < l->member_count; i++)
        dirty += l->members[i].dirty;
    const struct cache_member_cards *cards = NULL;
    size_t ncards = l->cards ? cards_cache_state(l->cards, &cards) : 0;
    if ((dirty == 0 && ncards == 0) || !cache_ensure(l))
        return;
    struct cache_balances *items = calloc(dirty ? dirty : 1, sizeof(*items));
    size_t n = 0;
    for (size_t i = 0; i < l->member_count; i++) {
        const struct ledger_member *m = &l->members[i];
        if (!m->dirty)
            continue;
        items[n++] = (struct cache_balances){.tenant_id = m->tenant_id,
                                             .member_id = m->member_id,
                                             .points = m->points,
                                             .sv_principal = m->sv.principal,
                                             .sv_bonus = m->sv.bonus,
                                             .version = m->version,
                                             .points_pending = m->points_pending};
    }
    char err[256];
    if (cache_put_member_state(l->rc, items, n, cards, ncards, err, sizeof(err)) < 0) {
        log_fields(LOG_WARN, "redis write failed; reconnecting", "error", err, NULL);
        cache_lost(l);
    } else if (l->cache_down_since_s != 0) {
        log_fields(LOG_INFO, "redis writes resumed", NULL);
        l->cache_down_since_s = 0;
        l->cache_backoff_ms = 0;
    }
    free(items);
}
