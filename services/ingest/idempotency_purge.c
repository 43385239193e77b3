/* Batched purge of expired Idempotency-Keys (see idempotency_purge.h). */
#include "idempotency_purge.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "log/log.h"

struct idem_purge {
    struct pg_pool *pg;
    int64_t retention_s;
    int batch_max;
    /* the run in progress */
    bool running;
    char cutoff_us[24];
    bool keys_done; /* then the run purges pending_operations rows */
    long long purged;
    idem_purge_done_fn done;
    void *arg;
    long long statements;
};

struct idem_purge *idem_purge_new(struct pg_pool *pg, int64_t retention_s, int batch_max)
{
    assert(pg && retention_s > 0 && batch_max >= 1 && batch_max <= IDEM_PURGE_BATCH_MAX);
    struct idem_purge *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->pg = pg;
    p->retention_s = retention_s;
    p->batch_max = batch_max;
    return p;
}

static void finish(struct idem_purge *p, bool ok)
{
    p->running = false;
    p->done(p->arg, p->purged, ok);
}

static int next_batch(struct idem_purge *p);

/* One batch answered, on the loop: a full batch means more may be left. */
static void on_batch(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct idem_purge *p = arg;
    if (!res) {
        log_fields(LOG_WARN, "idempotency purge failed; the next run retries", "error", err, NULL);
        finish(p, false);
        return;
    }
    long long n = atoll(PQcmdTuples(res));
    if (!p->keys_done)
        p->purged += n;
    if (n == p->batch_max) { /* more may be left */
        if (next_batch(p) < 0)
            finish(p, false);
        return;
    }
    if (p->keys_done) {
        finish(p, true);
        return;
    }
    p->keys_done = true;
    if (next_batch(p) < 0)
        finish(p, false);
}

/* Oldest rows first would need a sort; any expired rows will do, and the
 * index on created_at finds them. */
static int next_batch(struct idem_purge *p)
{
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", p->batch_max);
    const char *params[2] = {p->cutoff_us, limit};
    p->statements++;
    /* The "pending" marks of 202 answers (operations.c) go with the same
     * retention: the verdict is stored long before, and a key that is
     * purged makes a retry a new request anyway. */
    if (p->keys_done)
        return pg_pool_query(p->pg,
                             "DELETE FROM pending_operations WHERE (tenant_id, command_id) IN "
                             "(SELECT tenant_id, command_id FROM pending_operations WHERE "
                             "created_at < to_timestamp($1::bigint / 1000000.0) LIMIT $2::int "
                             "FOR UPDATE SKIP LOCKED)",
                             2, params, on_batch, p);
    return pg_pool_query(p->pg,
                         "DELETE FROM idempotency_keys WHERE (tenant_id, idempotency_key) IN "
                         "(SELECT tenant_id, idempotency_key FROM idempotency_keys WHERE "
                         "created_at < to_timestamp($1::bigint / 1000000.0) LIMIT $2::int "
                         "FOR UPDATE SKIP LOCKED)",
                         2, params, on_batch, p);
}

int idem_purge_run(struct idem_purge *p, int64_t now_us, idem_purge_done_fn done, void *arg)
{
    if (p->running)
        return -1;
    snprintf(p->cutoff_us, sizeof(p->cutoff_us), "%lld",
             (long long)(now_us - p->retention_s * 1000000));
    p->purged = 0;
    p->keys_done = false;
    p->done = done;
    p->arg = arg;
    if (next_batch(p) < 0)
        return -1;
    p->running = true;
    return 0;
}

bool idem_purge_running(const struct idem_purge *p)
{
    return p->running;
}

long long idem_purge_statements(const struct idem_purge *p)
{
    return p->statements;
}

void idem_purge_free(struct idem_purge *p)
{
    if (!p)
        return;
    assert(!p->running);
    free(p);
}
