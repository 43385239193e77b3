/* The points scheduler: a thread of the ledger that, every interval,
 * finds pending lots whose lock period is over and lots whose expiry is
 * due, and sends one VestPoints or ExpirePoints command per lot through
 * ledger-commands, keyed by member. So vesting and expiry are applied by
 * the partition owner in order with the member's other commands, exactly
 * once like any command: the command id is "vest:<lot id>" or the lot id,
 * and a lot sent twice (the next round came before the first was applied)
 * yields a duplicate verdict and changes nothing.
 *
 * While the ledger lags, a lot sent is still due in the next rounds: the
 * scheduler remembers what was delivered and sends it again only after a
 * back-off (rules_resend.h), not every round.
 *
 * Only one ledger instance schedules at a time: the one whose connection
 * holds a session advisory lock. Its memory of what it sent lives in the
 * thread; a crash, or another instance taking over, only means those lots
 * are sent once more (duplicate verdicts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/topics.h"
#include "ledger.h"
#include "log/log.h"
#include "rules_resend.h"
#include "schedule/schedule.h"

#define SCHEDULER_LOTS_PER_ROUND 1000 /* the LIMIT of the due-lot queries */
#define STRINGIFY_(x)            #x
#define STRINGIFY(x)             STRINGIFY_(x)
#define EXPIRY_FLUSH_TIMEOUT_MS  10000
#define EXPIRY_LOCK_KEY          "tessera-ledger-points-expiry"

struct expiry {
    const struct service_common_config *common;
    long long cache_resync_s;
    struct bus_config bus;
    char client_id[128];
    struct bus_producer *producer;
    PGconn *pg; /* the scheduler's session, for the round in hand */
    struct resend_memory vest_sent, expiry_sent; /* what each kind delivered */
    struct schedule schedule;
};

static int64_t mono_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A new session: another instance may have led meanwhile. */
static void expiry_session_lost(void *ctx)
{
    struct expiry *x = ctx;
    x->vest_sent.count = x->expiry_sent.count = 0;
}

/* Columns of a due-lot query: tenant, member, lot, branch, due (µs). The
 * command's time is never before the lot is due: the lot was found due at
 * the round's clock reading, and a clock read again now must not make the
 * ledger refuse it as not due (its command id could then never be used
 * again), should the test clock have been moved back meanwhile. */
static void due_meta(const PGresult *res, int i, const char *actor, struct event_meta *meta)
{
    int64_t due_us = db_int_at(res, i, 4), now_us = event_now_us();
    *meta = (struct event_meta){.tenant_id = PQgetvalue(res, i, 0),
                                .occurred_at_us = now_us > due_us ? now_us : due_us,
                                .member_id = PQgetvalue(res, i, 1),
                                .branch_id = PQgetvalue(res, i, 3),
                                .actor_kind = "service",
                                .actor_id = actor};
}

/* Produces a built command to ledger-commands, keyed by its member. */
static rd_kafka_resp_err_t scheduler_produce(struct expiry *x, Envelope *env,
                                             rd_kafka_resp_err_t *result)
{
    size_t len = 0;
    uint8_t *payload = envelope_encode(env, &len);
    if (!payload)
        return RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
    rd_kafka_headers_t *headers = envelope_cloudevents_headers(env, "/tessera/ledger");
    *result = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    rd_kafka_resp_err_t e = bus_produce(x->producer, TOPIC_LEDGER_COMMANDS, env->member_id, payload,
                                        len, headers, result);
    free(payload);
    return e;
}

/* ExpirePoints: the command id is the lot id. */
static rd_kafka_resp_err_t expiry_send(struct expiry *x, const PGresult *res, int i,
                                       rd_kafka_resp_err_t *result)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    ExpirePoints cmd;
    due_meta(res, i, "ledger-expiry", &meta);
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__expire_points__init(&cmd);
    cmd.command_id = (char *)PQgetvalue(res, i, 2);
    cmd.lot_id = (char *)PQgetvalue(res, i, 2);
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXPIRE_POINTS;
    env.expire_points = &cmd;
    return scheduler_produce(x, &env, result);
}

/* VestPoints: the command id is "vest:<lot id>", so a lot vests once. */
static rd_kafka_resp_err_t vest_send(struct expiry *x, const PGresult *res, int i,
                                     rd_kafka_resp_err_t *result)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    VestPoints cmd;
    char command_id[UUID_STR_SIZE + 8];
    due_meta(res, i, "ledger-vesting", &meta);
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__vest_points__init(&cmd);
    snprintf(command_id, sizeof(command_id), "vest:%s", PQgetvalue(res, i, 2));
    cmd.command_id = command_id;
    cmd.lot_id = (char *)PQgetvalue(res, i, 2);
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_VEST_POINTS;
    env.vest_points = &cmd;
    return scheduler_produce(x, &env, result);
}

typedef rd_kafka_resp_err_t (*due_send_fn)(struct expiry *x, const PGresult *res, int i,
                                           rd_kafka_resp_err_t *result);

/* One round: the due lots sql finds (at most SCHEDULER_LOTS_PER_ROUND,
 * soonest due first), one command each for those not delivered recently
 * (sent), produced and flushed. Returns how many were delivered, or -1. */
static int scheduler_round(struct expiry *x, const char *what, const char *sql, due_send_fn send,
                           struct resend_memory *sent, int64_t now_us)
{
    char err[256], now[24];
    snprintf(now, sizeof(now), "%lld", (long long)now_us);
    const char *p[1] = {now};
    PGresult *res = db_query(x->pg, sql, 1, p, err, sizeof(err), NULL);
    if (!res) {
        log_fields(LOG_WARN, "points scheduler: cannot read due lots", "what", what, "error", err,
                   NULL);
        return -1;
    }
    int n = PQntuples(res), delivered = 0, attempted = 0;
    rd_kafka_resp_err_t *results = calloc((size_t)n + 1, sizeof(*results));
    if (!results) {
        log_fields(LOG_WARN, "points scheduler: out of memory; next round retries", "what", what,
                   NULL);
        PQclear(res);
        return -1;
    }
    int64_t now_ms = mono_now_ms();
    resend_round_begin(sent);
    for (int i = 0; i < n; i++) {
        results[i] = RD_KAFKA_RESP_ERR__NOENT; /* not sent this round */
        if (!resend_due(sent, PQgetvalue(res, i, 2), now_ms))
            continue;
        attempted++;
        if (send(x, res, i, &results[i]) != RD_KAFKA_RESP_ERR_NO_ERROR)
            results[i] = RD_KAFKA_RESP_ERR__FAIL;
    }
    /* Every report must have landed before results is freed (a report
     * writes into it); librdkafka gives one within message.timeout.ms. */
    while (attempted > 0 && bus_producer_flush(x->producer, EXPIRY_FLUSH_TIMEOUT_MS) < 0)
        log_fields(LOG_WARN, "points scheduler: Kafka is slow to acknowledge; still waiting",
                   "what", what, NULL);
    for (int i = 0; i < n; i++)
        if (results[i] == RD_KAFKA_RESP_ERR_NO_ERROR) {
            delivered++;
            (void)resend_delivered(sent, PQgetvalue(res, i, 2), now_ms);
        }
    resend_round_end(sent);
    if (delivered < attempted)
        log_fields(LOG_WARN,
                   "points scheduler: some commands were not delivered; next round "
                   "retries",
                   "what", what, NULL);
    free(results);
    PQclear(res);
    if (delivered > 0) {
        char count[16];
        snprintf(count, sizeof(count), "%d", delivered);
        log_fields(LOG_INFO, "points scheduler: commands sent", "what", what, "lots", count, NULL);
    }
    return delivered;
}

/* Vested lots whose expiry is due at $1, the service clock (µs): never
 * PostgreSQL's now(), so a moved test clock expires lots as it moves
 * every other date rule (a pending lot's expiry counts from when it
 * vests, so it is never due while pending). */
static const char EXPIRY_DUE_SQL[] =
    "SELECT tenant_id, member_id, lot_id, coalesce(branch_id, ''), "
    "(extract(epoch FROM expires_at) * 1000000)::bigint "
    "FROM point_lots WHERE remaining > 0 AND expires_at <= to_timestamp($1::bigint / 1000000.0) "
    "AND NOT pending "
    "ORDER BY expires_at LIMIT " STRINGIFY(SCHEDULER_LOTS_PER_ROUND);

/* Pending lots whose lock period is over at $1 (the service clock, µs). */
static const char VEST_DUE_SQL[] = "SELECT tenant_id, member_id, lot_id, coalesce(branch_id, ''), "
                                   "(extract(epoch FROM vests_at) * 1000000)::bigint "
                                   "FROM point_lots WHERE pending AND remaining > 0 AND vests_at "
                                   "<= to_timestamp($1::bigint / 1000000.0) "
                                   "ORDER BY vests_at LIMIT " STRINGIFY(SCHEDULER_LOTS_PER_ROUND);

/* First repair what a crash may have left stale in the cache. */
static void expiry_first(void *ctx)
{
    struct expiry *x = ctx;
    ledger_cache_resync(x->common, x->cache_resync_s);
}

static void expiry_round(void *ctx, PGconn *pg, int64_t now_us)
{
    struct expiry *x = ctx;
    x->pg = pg;
    /* Vesting first: a lot that vests and expires in the same round
     * is then found by the next expiry round, already vested. */
    scheduler_round(x, "vesting", VEST_DUE_SQL, vest_send, &x->vest_sent, now_us);
    scheduler_round(x, "expiry", EXPIRY_DUE_SQL, expiry_send, &x->expiry_sent, now_us);
}

/* Starts the scheduler thread (which first resyncs the cache) (detached: it holds no state worth a
 * clean stop, see above). 0 or -1 when the producer cannot be made. */
int expiry_scheduler_start(const struct service_common_config *c, long long interval_ms,
                           long long cache_resync_s)
{
    static struct expiry x;
    char err[256];
    x.common = c;
    x.cache_resync_s = cache_resync_s;
    service_bus_config(c, "ledger-expiry", x.client_id, sizeof(x.client_id), &x.bus);
    x.producer = bus_producer_new(&x.bus, NULL, NULL, NULL, err, sizeof(err));
    if (!x.producer) {
        log_fields(LOG_ERROR, "points expiry: cannot create a producer", "error", err, NULL);
        return -1;
    }
    x.schedule = (struct schedule){.name = "points scheduler",
                                   .pg_dsn = c->pg_dsn,
                                   .schema = "ledger",
                                   .app_name = "tessera-ledger-expiry",
                                   .statement_timeout_ms = (int)c->pg_statement_timeout_ms,
                                   .lock_key = EXPIRY_LOCK_KEY,
                                   .interval_ms = interval_ms,
                                   .first = expiry_first,
                                   .round = expiry_round,
                                   .session_lost = expiry_session_lost,
                                   .ctx = &x};
    return schedule_start(&x.schedule);
}
