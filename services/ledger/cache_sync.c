/* After commit, the balances a batch changed are written to Redis in one
 * pipelined round trip. The cache is only a cache: a failure is logged,
 * the connection dropped and re-made on the next batch, and readers fall
 * back to PostgreSQL meanwhile. Versioned writes keep a late write from
 * replacing a newer one. */
#include <stdlib.h>

#include "cache/cache.h"
#include "ledger.h"
#include "log/log.h"

#define CACHE_TIMEOUT_MS 1000

static bool cache_ensure(struct ledger_ctx *l)
{
    if (l->rc)
        return true;
    char err[256];
    l->rc = cache_connect(l->redis_host, l->redis_port, CACHE_TIMEOUT_MS, err, sizeof(err));
    if (!l->rc)
        log_fields(LOG_WARN, "redis unreachable; cache not updated", "error", err, NULL);
    atomic_store(&l->redis_ok, l->rc != NULL);
    return l->rc != NULL;
}

void ledger_cache_sync(struct ledger_ctx *l)
{
    size_t dirty = 0;
    for (size_t i = 0; i < l->member_count; i++)
        dirty += l->members[i].dirty;
    if (dirty == 0 || !cache_ensure(l))
        return;
    struct cache_balances *items = calloc(dirty, sizeof(*items));
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
    if (cache_put_balances(l->rc, items, n, err, sizeof(err)) < 0) {
        log_fields(LOG_WARN, "redis write failed; reconnecting next batch", "error", err, NULL);
        redisFree(l->rc);
        l->rc = NULL;
        atomic_store(&l->redis_ok, false);
    }
    free(items);
}
