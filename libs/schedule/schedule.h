/* A scheduler thread that one instance of a service runs at a time.
 *
 * Scheduled work (points vesting and expiry, birthdays, referral rewards,
 * tier reviews) must be found and sent by one instance only. Every
 * interval the thread (re)connects to PostgreSQL if its session is gone
 * and tries for a session advisory lock on lock_key; the instance whose
 * session holds it runs a round, with the service clock read anew for
 * that round (clock_now_us, so a moved test clock is seen within one
 * interval). The lock goes with the session: an instance that dies or
 * loses its connection frees it, and another takes over within a round.
 *
 * The thread is detached and never stops: a round holds nothing worth a
 * clean stop (each is a transaction, or commands deduplicated downstream). */
#ifndef TESSERA_SCHEDULE_H
#define TESSERA_SCHEDULE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

struct schedule {
    const char *name;     /* in log lines: "points scheduler" */
    const char *pg_dsn;   /* the service's database */
    const char *schema;   /* its search_path */
    const char *app_name; /* application_name of the session */
    int statement_timeout_ms;
    const char *lock_key; /* the advisory lock (hashtext of it) */
    long long interval_ms;
    /* Optional: once on the thread, before the first round. */
    void (*first)(void *ctx);
    /* A round, while this instance holds the lock; pg is the session that
     * holds it, now_us the service clock read for this round. */
    void (*round)(void *ctx, PGconn *pg, int64_t now_us);
    /* Optional: a new session is being opened, so the lock (if it was
     * held) is gone and another instance may lead meanwhile: forget what
     * was remembered as the leader. */
    void (*session_lost)(void *ctx);
    void *ctx;
    /* the thread's own */
    PGconn *pg;
    bool leader;
};

/* Starts s's thread (detached). s must outlive the process (a static).
 * 0, or -1 when no thread could be made. */
int schedule_start(struct schedule *s) __attribute__((warn_unused_result));

/* One interval's work without the sleep: (re)connects, tries for the
 * lock and runs a round when held. True when a round ran. For tests and
 * for the thread. */
bool schedule_tick(struct schedule *s);

#endif
