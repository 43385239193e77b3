/* The coupon sweep (docs/coupons.md), on a libevent timer of every ingest
 * instance. One round, four statements in a chain:
 *
 *  1. coupon_issue_round (migration 0014) takes the oldest running issue
 *     nobody else holds (SKIP LOCKED) and decides its next chunk of
 *     members: one grant row each while the budget lasts;
 *  2. grants not sent yet, or sent a while ago without a verdict (a send
 *     lost to a crash or a refused produce), are (re)sent to the ledger as
 *     IssueCoupon, command id and coupon id = the grant's coupon id; the
 *     ledger applies a command id once, so a second send changes nothing;
 *  3. grants whose IssueCoupon has a verdict (ledger.read_commands) move
 *     once to issued or refused (a refused one gives its unit of the
 *     template's budget back); an issued one owes its member a notice
 *     (noticed_at NULL, migration 0020) in the same statement;
 *  4. owed notices, not sent yet or sent a while ago without a delivery
 *     report (a crash), are (re)sent as NotifyRequest coupon.issued
 *     (request id "coupon.issued:<coupon id>", de-duplicated by
 *     notification); the producer's delivery report marks noticed_at, so a
 *     crash or a refused produce after the settle never loses a notice.
 *
 * Sends follow their statement's commit; whatever a crash between the two
 * loses, a later round sends again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "coupon_templates.h"
#include "events/card_types.h"
#include "ingest.h"
#include "log/log.h"
#include "sweep_send.h"

#define ISSUER_ACTOR  "ingest-coupons"
#define SWEEP_NAME    "coupons" /* in the shared senders' logs */
#define RESEND_AFTER  "5 seconds"
#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x)

static bool issuer_running;

/* Columns of steps 2 and 3: a grant g joined with its template t. */
enum {
    G_TENANT,
    G_MEMBER,
    G_BRANCH,
    G_COUPON,
    G_STATUS,
    G_NAME,
    G_KIND,
    G_VALUE,
    G_PCT,
    G_SKU,
    G_MIN,
    G_DAYS,
    G_FROM,
    G_TO,
    G_EXPIRES
};
#define GRANT_COLUMNS                                                                              \
    "g.tenant_id, g.member_id, g.branch_id, g.coupon_id, g.status, t.name, t.kind, t.value, "      \
    "t.percent_bp, t.free_sku, t.min_spend, t.valid_days, t.valid_from_us, t.valid_to_us "

static void row_meta(const PGresult *res, int i, struct event_meta *m)
{
    *m = (struct event_meta){.tenant_id = PQgetvalue(res, i, G_TENANT),
                             .branch_id = PQgetvalue(res, i, G_BRANCH),
                             .member_id = PQgetvalue(res, i, G_MEMBER),
                             .causation_id = PQgetvalue(res, i, G_COUPON),
                             .correlation_id = PQgetvalue(res, i, G_COUPON),
                             .actor_kind = "service",
                             .actor_id = ISSUER_ACTOR};
}

static int64_t int_at(const PGresult *res, int i, int col)
{
    return strtoll(PQgetvalue(res, i, col), NULL, 10);
}

static void send_issue(struct ingest *app, const PGresult *res, int i)
{
    struct event_meta meta;
    IssueCoupon ic;
    row_meta(res, i, &meta);
    tessera__cards__v1__issue_coupon__init(&ic);
    ic.command_id = ic.coupon_id = (char *)PQgetvalue(res, i, G_COUPON);
    ic.kind = (char *)PQgetvalue(res, i, G_KIND);
    ic.value = strcmp(ic.kind, "value") == 0 ? int_at(res, i, G_VALUE) : 0;
    ic.percent_bp = strcmp(ic.kind, "percent") == 0 ? int_at(res, i, G_PCT) : 0;
    ic.free_sku = (char *)PQgetvalue(res, i, G_SKU);
    ic.min_spend = int_at(res, i, G_MIN);
    ic.valid_days = int_at(res, i, G_DAYS);
    ic.valid_from_us = int_at(res, i, G_FROM);
    ic.valid_to_us = int_at(res, i, G_TO);
    ic.name = (char *)PQgetvalue(res, i, G_NAME);
    sweep_send_command(app, &meta, &ic, SWEEP_NAME);
}

static void send_notice(struct ingest *app, const PGresult *res, int i)
{
    struct event_meta meta;
    Tessera__Notification__V1__NotifyRequest note;
    Tessera__Notification__V1__Variable v[4], *vars[4];
    char request_id[INGEST_KEY_MAX + 32];
    snprintf(request_id, sizeof(request_id), "coupon.issued:%s", PQgetvalue(res, i, G_COUPON));
    row_meta(res, i, &meta);
    tessera__notification__v1__notify_request__init(&note);
    size_t n = 0;
    for (int k = 0; k < 4; k++)
        tessera__notification__v1__variable__init(&v[k]), vars[k] = &v[k];
    v[n].name = "coupon.name", v[n].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
    v[n++].text = (char *)PQgetvalue(res, i, G_NAME);
    v[n].name = "coupon.code", v[n].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
    v[n++].text = (char *)PQgetvalue(res, i, G_COUPON);
    v[n].name = "coupon.expires_at";
    v[n].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TIME_US;
    v[n++].time_us = int_at(res, i, G_EXPIRES);
    if (strcmp(PQgetvalue(res, i, G_KIND), "value") == 0) {
        v[n].name = "coupon.value";
        v[n].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_MONEY_MINOR;
        v[n++].money_minor = int_at(res, i, G_VALUE);
    }
    note.request_id = request_id;
    note.template_ = "coupon.issued";
    note.purpose = "transactional";
    note.priority = "bulk"; /* a campaign: behind receipts and codes */
    note.n_variables = n;
    note.variables = vars;
    sweep_send_notice(app, &meta, &note, DELIVERY_COUPON_NOTICE, PQgetvalue(res, i, G_COUPON),
                      SWEEP_NAME);
}

/* clang-format off */
static const char ROUND_SQL[] =
    "SELECT count(*) FROM coupon_issue_round(" STRINGIFY(COUPON_ISSUE_CHUNK) ")";

static const char SEND_SQL[] =
    "WITH d AS (SELECT g.tenant_id, g.coupon_id FROM coupon_grants g WHERE g.status = 'sent' "
    "AND (g.sent_at IS NULL OR g.sent_at < now() - interval '" RESEND_AFTER "') "
    "ORDER BY g.created_at LIMIT " STRINGIFY(COUPON_SEND_MAX) " FOR UPDATE SKIP LOCKED), "
    "g AS (UPDATE coupon_grants g SET sent_at = now() FROM d WHERE g.tenant_id = d.tenant_id "
    "AND g.coupon_id = d.coupon_id RETURNING g.*) "
    "SELECT " GRANT_COLUMNS ", 0 FROM g JOIN coupon_templates t "
    "ON t.tenant_id = g.tenant_id AND t.template_id = g.template_id";

static const char SETTLE_SQL[] =
    "WITH v AS (SELECT g.tenant_id, g.coupon_id, c.status AS verdict FROM coupon_grants g "
    "JOIN ledger.read_commands c ON c.tenant_id = g.tenant_id AND c.command_id = g.coupon_id "
    "WHERE g.status = 'sent' AND g.sent_at IS NOT NULL LIMIT " STRINGIFY(COUPON_SEND_MAX) " "
    "FOR UPDATE OF g SKIP LOCKED), "
    "g AS (UPDATE coupon_grants g SET settled_at = now(), status = CASE WHEN v.verdict = "
    "'posted' THEN 'issued' ELSE 'refused' END FROM v WHERE g.tenant_id = v.tenant_id "
    "AND g.coupon_id = v.coupon_id AND g.status = 'sent' "
    "RETURNING g.tenant_id, g.template_id, g.coupon_id, g.status), "
    /* a refused grant gave nobody a coupon: its unit of the budget goes
     * back, once (the grant leaves 'sent' once, in this statement) */
    "back AS (UPDATE coupon_templates t SET issued_count = t.issued_count - n.units "
    "FROM (SELECT tenant_id, template_id, count(*) AS units FROM g WHERE status = 'refused' "
    "GROUP BY tenant_id, template_id) n WHERE t.tenant_id = n.tenant_id "
    "AND t.template_id = n.template_id) "
    "SELECT coupon_id FROM g WHERE status = 'refused'";

/* Settled grants whose notice is owed: never sent, or sent without a
 * delivery report for RESEND_AFTER (the report may have died with us). */
static const char NOTICE_SQL[] =
    "WITH d AS (SELECT g.tenant_id, g.coupon_id FROM coupon_grants g WHERE g.status = 'issued' "
    "AND g.noticed_at IS NULL AND (g.notice_sent_at IS NULL "
    "OR g.notice_sent_at < now() - interval '" RESEND_AFTER "') "
    "LIMIT " STRINGIFY(COUPON_SEND_MAX) " FOR UPDATE SKIP LOCKED), "
    "g AS (UPDATE coupon_grants g SET notice_sent_at = now() FROM d WHERE g.tenant_id = "
    "d.tenant_id AND g.coupon_id = d.coupon_id RETURNING g.*) "
    "SELECT " GRANT_COLUMNS ", coalesce(k.valid_to_us, 0) FROM g JOIN coupon_templates t "
    "ON t.tenant_id = g.tenant_id AND t.template_id = g.template_id "
    "LEFT JOIN ledger.read_coupons k ON k.tenant_id = g.tenant_id AND k.coupon_id = g.coupon_id";

static const char NOTICED_SQL[] =
    "UPDATE coupon_grants SET noticed_at = now() WHERE coupon_id = $1 AND status = 'issued' "
    "AND noticed_at IS NULL";
/* clang-format on */

static void on_noticed(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ingest *app = arg;
    issuer_running = false;
    if (!res)
        log_fields(LOG_WARN, "coupon notices failed; the next round retries", "error", err, NULL);
    for (int i = 0; res && i < PQntuples(res); i++)
        send_notice(app, res, i);
}

static void on_settled(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ingest *app = arg;
    if (!res)
        log_fields(LOG_WARN, "coupon settle failed; the next round retries", "error", err, NULL);
    for (int i = 0; res && i < PQntuples(res); i++)
        log_fields(LOG_WARN, "coupon refused by the ledger", "coupon_id", PQgetvalue(res, i, 0),
                   NULL);
    if (pg_pool_query(app->pg, NOTICE_SQL, 0, NULL, on_noticed, app) < 0)
        issuer_running = false;
}

void coupon_notice_on_delivery(struct ingest *app, const char *coupon_id, rd_kafka_resp_err_t err)
{
    sweep_notice_delivered(app, NOTICED_SQL, coupon_id, err, SWEEP_NAME);
}

static void on_sent(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ingest *app = arg;
    if (!res)
        log_fields(LOG_WARN, "coupon send failed; the next round retries", "error", err, NULL);
    for (int i = 0; res && i < PQntuples(res); i++)
        send_issue(app, res, i);
    if (pg_pool_query(app->pg, SETTLE_SQL, 0, NULL, on_settled, app) < 0)
        issuer_running = false;
}

static void on_round(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ingest *app = arg;
    if (!res)
        log_fields(LOG_WARN, "coupon issue round failed; the next round retries", "error", err,
                   NULL);
    if (pg_pool_query(app->pg, SEND_SQL, 0, NULL, on_sent, app) < 0)
        issuer_running = false;
}

void coupon_issuer_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ingest *app = arg;
    if (issuer_running || app->stopping || !pg_pool_healthy(app->pg))
        return;
    issuer_running = true;
    if (pg_pool_query(app->pg, ROUND_SQL, 0, NULL, on_round, app) < 0)
        issuer_running = false;
}
