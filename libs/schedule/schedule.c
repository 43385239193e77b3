/* The scheduler thread under a PostgreSQL advisory lock (schedule.h). */
#include "schedule/schedule.h"

#include <assert.h>
#include <pthread.h>
#include <string.h>

#include "clock/clock.h"
#include "db/db.h"
#include "log/log.h"
#include "util/sleep.h"

/* (Re)connects and tries for the lock; true when this instance leads. */
static bool schedule_lead(struct schedule *s)
{
    char err[256];
    /* A broken session is replaced by a new one, which must take the lock
     * again: never PQreset (db_healthy), whose new session would be
     * taken for the leader's while another instance holds the lock. */
    if (s->pg && PQstatus(s->pg) != CONNECTION_OK) {
        PQfinish(s->pg);
        s->pg = NULL;
    }
    if (!s->pg) {
        s->leader = false;
        if (s->session_lost)
            s->session_lost(s->ctx);
        s->pg = db_connect(s->pg_dsn, s->schema, s->app_name, s->statement_timeout_ms, err,
                           sizeof(err));
        if (!s->pg)
            return false;
    }
    if (s->leader)
        return true;
    const char *p[1] = {s->lock_key};
    PGresult *res =
        db_query(s->pg, "SELECT pg_try_advisory_lock(hashtext($1))", 1, p, err, sizeof(err), NULL);
    s->leader = res && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (s->leader)
        log_fields(LOG_INFO, "scheduler: this instance schedules", "scheduler", s->name, NULL);
    return s->leader;
}

bool schedule_tick(struct schedule *s)
{
    if (!schedule_lead(s))
        return false;
    s->round(s->ctx, s->pg, clock_now_us());
    return true;
}

static void *schedule_main(void *arg)
{
    struct schedule *s = arg;
    if (s->first)
        s->first(s->ctx);
    for (;;) {
        sleep_ms(s->interval_ms);
        (void)schedule_tick(s);
    }
    return NULL;
}

int schedule_start(struct schedule *s)
{
    assert(s->name && s->pg_dsn && s->schema && s->app_name && s->lock_key && s->round);
    assert(s->interval_ms > 0);
    pthread_t thread;
    if (pthread_create(&thread, NULL, schedule_main, s) != 0)
        return -1;
    pthread_detach(thread);
    return 0;
}
