/* The review scheduler: a thread of tiering that, every interval, reads
 * the service clock and finds members whose downgrade warning or review
 * is due (member_tiers.period_end against the tenant's warning and grace
 * days) and overrides whose expiry has come, and sends one TierReviewDue per member and kind on
 * member-events keyed by member. The member's partition owner applies it in order with its facts
 * (review_apply.c), once per member, period and kind (tier_reviews); so this thread never writes a
 * member's tier itself, and a command sent twice (the next round came before the first was applied)
 * changes nothing.
 *
 * Only one tiering instance schedules at a time: the one whose connection
 * holds a session advisory lock (as the ledger's points scheduler). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "bus/topics.h"
#include "clock/clock.h"
#include "log/log.h"
#include "schedule/schedule.h"
#include "service/common.h"
#include "tiering.h"

#define REVIEW_DUE_PER_ROUND    1000 /* the LIMIT of the due query */
#define REVIEW_STRINGIFY_(x)    #x
#define REVIEW_STRINGIFY(x)     REVIEW_STRINGIFY_(x)
#define REVIEW_FLUSH_TIMEOUT_MS 10000
#define REVIEW_LOCK_KEY         "tessera-tiering-review"

typedef Tessera__Tiering__V1__TierReviewDue TierReviewDue;

/* rounds completed as the leader (/metrics): a test that moved the clock
 * waits for two more to know a round has seen the new time */
static atomic_llong rounds_done;

long long tiering_review_rounds(void)
{
    return atomic_load(&rounds_done);
}

struct review {
    const struct service_common_config *common;
    struct bus_config bus;
    char client_id[128];
    struct bus_producer *producer;
    struct schedule schedule;
};

/* Members due at $1 (the service clock): a warning once the period's end
 * is within the tenant's warning days (and its review not due yet), a
 * review once the period and the grace days are over; none already
 * applied. Tenants without a policy row have the columns' defaults. */
/* clang-format off */
static const char REVIEW_DUE_SQL[] =
    "(WITH m AS (SELECT mt.tenant_id, mt.member_id, mt.period_end, "
    "coalesce(p.warning_days, 30) AS warning_days, coalesce(p.grace_days, 0) AS grace_days "
    "FROM member_tiers mt LEFT JOIN tier_policies p ON p.tenant_id = mt.tenant_id "
    "WHERE mt.period_end IS NOT NULL AND mt.name <> '' "
    "AND mt.period_end - make_interval(days => coalesce(p.warning_days, 30)) <= $1) "
    "SELECT tenant_id, member_id, (extract(epoch FROM period_end) * 1000000)::bigint, k.kind "
    "FROM m CROSS JOIN (VALUES ('warning'), ('review')) AS k(kind) "
    "WHERE (CASE WHEN k.kind = 'review' THEN period_end + make_interval(days => grace_days) <= $1 "
    "ELSE period_end + make_interval(days => grace_days) > $1 END) "
    "AND NOT EXISTS (SELECT 1 FROM tier_reviews r WHERE r.tenant_id = m.tenant_id "
    "AND r.member_id = m.member_id AND r.period_end = m.period_end AND r.kind = k.kind) "
    "ORDER BY period_end LIMIT " REVIEW_STRINGIFY(REVIEW_DUE_PER_ROUND) ") "
    /* overrides whose expiry has come: the member goes back to its spend */
    "UNION ALL (SELECT tenant_id, member_id, "
    "(extract(epoch FROM override_expires_at) * 1000000)::bigint, 'override_expired' "
    "FROM member_tiers mt WHERE reason = 'override' AND override_expires_at <= $1 "
    "AND NOT EXISTS (SELECT 1 FROM tier_reviews r WHERE r.tenant_id = mt.tenant_id "
    "AND r.member_id = mt.member_id AND r.period_end = mt.override_expires_at "
    "AND r.kind = 'override_expired') "
    "ORDER BY override_expires_at LIMIT " REVIEW_STRINGIFY(REVIEW_DUE_PER_ROUND) ") "
    /* membership anniversaries a level of the tenant's ladder rewards */
    "UNION ALL (SELECT ms.tenant_id, ms.member_id, (extract(epoch FROM ms.registered_at + "
    "make_interval(years => ms.years_done + 1)) * 1000000)::bigint, 'anniversary' "
    "FROM memberships ms WHERE ms.registered_at + make_interval(years => ms.years_done + 1) <= $1 "
    "AND EXISTS (SELECT 1 FROM tier_levels l WHERE l.tenant_id = ms.tenant_id "
    "AND l.membership_years > ms.years_done) "
    "AND NOT EXISTS (SELECT 1 FROM tier_reviews r WHERE r.tenant_id = ms.tenant_id "
    "AND r.member_id = ms.member_id AND r.kind = 'anniversary' "
    "AND r.period_end = ms.registered_at + make_interval(years => ms.years_done + 1)) "
    "LIMIT " REVIEW_STRINGIFY(REVIEW_DUE_PER_ROUND) ")";
/* clang-format on */

static rd_kafka_resp_err_t send_due(struct review *x, const PGresult *res, int i,
                                    rd_kafka_resp_err_t *result)
{
    struct event_meta meta = {.tenant_id = PQgetvalue(res, i, 0),
                              .branch_id = "",
                              .member_id = PQgetvalue(res, i, 1),
                              .actor_kind = "service",
                              .actor_id = "tiering-review"};
    Envelope env;
    Actor actor;
    TierReviewDue due;
    envelope_init(&env, &actor, &meta);
    tessera__tiering__v1__tier_review_due__init(&due);
    due.kind = PQgetvalue(res, i, 3);
    due.period_end_us = db_int_at(res, i, 2);
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_REVIEW_DUE;
    env.tier_review_due = &due;
    size_t len = 0;
    uint8_t *payload = envelope_encode(&env, &len);
    if (!payload)
        return RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
    rd_kafka_headers_t *headers = envelope_cloudevents_headers(&env, "/tessera/tiering");
    *result = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    rd_kafka_resp_err_t e =
        bus_produce(x->producer, TOPIC_MEMBER_EVENTS, env.member_id, payload, len, headers, result);
    free(payload);
    return e;
}

/* One round of the scheduler (schedule.h): every (member, kind) due at
 * now_us sent and flushed. */
static void review_round(void *ctx, PGconn *pg, int64_t now_us)
{
    struct review *x = ctx;
    char err[256], now[32];
    event_format_time(now_us, now);
    const char *p[1] = {now};
    PGresult *res = db_query(pg, REVIEW_DUE_SQL, 1, p, err, sizeof(err), NULL);
    if (!res) {
        log_fields(LOG_WARN, "tier review scheduler: cannot read due reviews", "error", err, NULL);
        return;
    }
    int n = PQntuples(res), attempted = 0, delivered = 0;
    rd_kafka_resp_err_t *results = calloc((size_t)n + 1, sizeof(*results));
    if (!results) {
        PQclear(res);
        return;
    }
    for (int i = 0; i < n; i++) {
        attempted++;
        if (send_due(x, res, i, &results[i]) != RD_KAFKA_RESP_ERR_NO_ERROR)
            results[i] = RD_KAFKA_RESP_ERR__FAIL;
    }
    /* every report lands before results is freed (a report writes in it) */
    while (attempted > 0 && bus_producer_flush(x->producer, REVIEW_FLUSH_TIMEOUT_MS) < 0)
        log_warn("tier review scheduler: Kafka is slow to acknowledge; still waiting");
    for (int i = 0; i < n; i++)
        delivered += results[i] == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (attempted > 0) {
        char sent[16];
        snprintf(sent, sizeof(sent), "%d", delivered);
        log_fields(LOG_INFO, "tier review scheduler: reviews sent", "count", sent, NULL);
    }
    free(results);
    PQclear(res);
}

/* A round, counted once done (tiering_review_rounds). */
static void review_round_counted(void *ctx, PGconn *pg, int64_t now_us)
{
    review_round(ctx, pg, now_us);
    atomic_fetch_add(&rounds_done, 1);
}

int tiering_review_scheduler_start(const struct service_common_config *c, long long interval_ms)
{
    static struct review x;
    char err[256];
    x.common = c;
    service_bus_config(c, "tiering-review", x.client_id, sizeof(x.client_id), &x.bus);
    x.producer = bus_producer_new(&x.bus, NULL, NULL, NULL, err, sizeof(err));
    if (!x.producer) {
        log_fields(LOG_ERROR, "tier review: cannot create a producer", "error", err, NULL);
        return -1;
    }
    x.schedule = (struct schedule){.name = "tier review scheduler",
                                   .pg_dsn = c->pg_dsn,
                                   .schema = "tiering",
                                   .app_name = "tessera-tiering-review",
                                   .statement_timeout_ms = (int)c->pg_statement_timeout_ms,
                                   .lock_key = REVIEW_LOCK_KEY,
                                   .interval_ms = interval_ms,
                                   .round = review_round_counted,
                                   .ctx = &x};
    return schedule_start(&x.schedule);
}
