/* After commit, the balances and the cards a batch changed are written to
 * Redis in one pipelined round trip. The cache is only a cache: a failure
 * is logged, the connection dropped and re-made (with back-off, so a
 * Redis that does not answer costs a batch nothing), and readers fall
 * back to PostgreSQL meanwhile. Versioned writes keep a late write from
 * replacing a newer one.
 *
 * Writes skipped while Redis was away are repaired when it comes back: the
 * first successful write after an outage starts a resync (cache_resync.c,
 * on a thread of its own so batches go on) of everything changed since
 * the outage began. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "cache/cache.h"
#include "cards.h"
#include "ledger.h"
#include "log/log.h"

#define CACHE_TIMEOUT_MS         1000
#define CACHE_BACKOFF_MIN_MS     100
#define CACHE_BACKOFF_MAX_MS     5000
#define CACHE_RESYNC_MARGIN_S    60 /* batches committed just before the failure was seen */

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

/* The cache is away from now on (or since start, see ledger_cache_down). */
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
}

void ledger_cache_down(struct ledger_ctx *l)
{
    /* Down at start: the start-up resync may have been skipped too, so
     * the repair covers its window as well. */
    cache_lost(l);
    l->cache_down_since_s = wall_now_s() - (double)l->cache_resync_s;
}

static bool cache_ensure(struct ledger_ctx *l)
{
    if (l->rc)
        return true;
    if (mono_now_s() < l->cache_retry_at_s)
        return false; /* backing off: this batch's writes wait for the repair */
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

/* ---- the repair after an outage ---- */
static void *resync_main(void *arg)
{
    struct ledger_ctx *l = arg;
    for (;;) {
        long long window_s = atomic_exchange(&l->resync_window_s, 0);
        if (window_s > 0) {
            ledger_cache_resync(l->common, window_s);
            continue;
        }
        atomic_store(&l->resync_running, false);
        /* a request that came between the exchange and the store */
        if (atomic_load(&l->resync_window_s) == 0 || atomic_exchange(&l->resync_running, true))
            return NULL;
    }
}

/* Redis answers again after an outage that began at down_since_s (wall
 * clock): rewrite what changed since, unless resync is turned off. */
static void cache_back(struct ledger_ctx *l, double down_since_s)
{
    if (l->cache_resync_s <= 0 || l->common == NULL)
        return;
    long long window_s = (long long)ceil(wall_now_s() - down_since_s) + CACHE_RESYNC_MARGIN_S;
    long long asked = atomic_load(&l->resync_window_s);
    while (asked < window_s && !atomic_compare_exchange_weak(&l->resync_window_s, &asked, window_s))
        ;
    if (atomic_exchange(&l->resync_running, true))
        return; /* the running resync takes the new window too */
    pthread_t thread;
    if (pthread_create(&thread, NULL, resync_main, l) != 0) {
        atomic_store(&l->resync_running, false);
        log_fields(LOG_WARN, "cache resync after an outage not started", NULL);
        return;
    }
    pthread_detach(thread);
    log_fields(LOG_INFO, "redis is back; resyncing what changed meanwhile", NULL);
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
                                             .version = m->version};
    }
    char err[256];
    if (cache_put_member_state(l->rc, items, n, cards, ncards, err, sizeof(err)) < 0) {
        log_fields(LOG_WARN, "redis write failed; reconnecting", "error", err, NULL);
        cache_lost(l);
    } else if (l->cache_down_since_s != 0) {
        double since = l->cache_down_since_s;
        l->cache_down_since_s = 0;
        l->cache_backoff_ms = 0;
        cache_back(l, since);
    }
    free(items);
}
