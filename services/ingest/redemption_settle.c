/* Settling redemptions (see redemptions.c) from the ledger's verdicts, on
 * a libevent timer of every ingest instance. One round, four statements
 * in a chain:
 *
 *  1. reserved redemptions whose debit has a verdict (ledger.read_commands,
 *     command id = redemption id) move, once each (FOR UPDATE SKIP
 *     LOCKED, WHERE status = 'reserved'): refused ones give their unit of
 *     stock back in the same statement; a posted gift or card_days reward
 *     is done (the ledger's ExtendCard added the days in the debit's own
 *     posting); a posted coupon is delivering and its IssueCoupon (command
 *     id and coupon id: the row's delivery_id) is sent;
 *  2. delivering redemptions whose coupon has a verdict are done;
 *  3. done redemptions owe their member NotifyRequest redemption.done
 *     (request id "redemption.done:<redemption id>") until the producer's
 *     delivery report says Kafka has it (noticed_at, migration 0022); an
 *     owed notice not sent yet, or sent a while ago without a report (a
 *     crash), is sent; notification de-duplicates by request id;
 *  4. what is still open after a while is sent again: the debit of a
 *     reservation without a verdict (its request's send was lost: ingest
 *     crashed, Kafka refused), the coupon of a delivering one. The ledger
 *     applies a command id once, so a second send changes nothing.
 *
 * Sends follow their statement's commit; whatever a crash between the two
 * loses, a later round sends again. Several instances may run rounds at
 * once; the row locks and the status conditions make each move happen
 * once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "events/card_types.h"
#include "ingest.h"
#include "log/log.h"
#include "sweep_send.h"

#define SETTLE_ROWS_MAX     200 /* the LIMIT of each statement */
#define SETTLE_ACTOR        "ingest-redemptions"
#define SWEEP_NAME          "redemptions" /* in the shared senders' logs */
#define RESEND_DEBIT_AFTER  "30 seconds"
#define RESEND_COUPON_AFTER "2 seconds"
#define RESEND_NOTICE_AFTER "5 seconds" /* a send without a delivery report */

static bool settle_running;

/* Columns shared by the statements' results. */
enum {
    S_TENANT,
    S_ID,
    S_MEMBER,
    S_BRANCH,
    S_REWARD,
    S_STATUS,
    S_POINTS,
    S_DELIVERY,
    S_NAME,
    S_CKIND,
    S_CVALUE,
    S_CPCT,
    S_CDAYS,
    S_CARD_PRODUCT,
    S_CARD_DAYS
};

static void row_meta(const PGresult *res, int i, struct event_meta *m)
{
    *m = (struct event_meta){.tenant_id = PQgetvalue(res, i, S_TENANT),
                             .branch_id = PQgetvalue(res, i, S_BRANCH),
                             .member_id = PQgetvalue(res, i, S_MEMBER),
                             .causation_id = PQgetvalue(res, i, S_ID),
                             .correlation_id = PQgetvalue(res, i, S_ID),
                             .actor_kind = "service",
                             .actor_id = SETTLE_ACTOR};
}

static void send_coupon(struct ingest *app, const PGresult *res, int i)
{
    struct event_meta meta;
    IssueCoupon ic;
    row_meta(res, i, &meta);
    tessera__cards__v1__issue_coupon__init(&ic);
    ic.command_id = (char *)PQgetvalue(res, i, S_DELIVERY);
    ic.coupon_id = (char *)PQgetvalue(res, i, S_DELIVERY);
    ic.kind = (char *)PQgetvalue(res, i, S_CKIND);
    ic.value = strtoll(PQgetvalue(res, i, S_CVALUE), NULL, 10);
    ic.percent_bp = strtoll(PQgetvalue(res, i, S_CPCT), NULL, 10);
    ic.valid_days = strtoll(PQgetvalue(res, i, S_CDAYS), NULL, 10);
    ic.name = (char *)PQgetvalue(res, i, S_NAME);
    sweep_send_command(app, &meta, &ic, SWEEP_NAME);
}

static void send_debit(struct ingest *app, const PGresult *res, int i)
{
    struct event_meta meta;
    row_meta(res, i, &meta);
    size_t len = 0;
    rd_kafka_headers_t *headers = NULL;
    struct redemption_debit debit = {.redemption_id = PQgetvalue(res, i, S_ID),
                                     .reward_id = PQgetvalue(res, i, S_REWARD),
                                     .points = strtoll(PQgetvalue(res, i, S_POINTS), NULL, 10),
                                     .card_product_id = PQgetvalue(res, i, S_CARD_PRODUCT),
                                     .card_days =
                                         strtoll(PQgetvalue(res, i, S_CARD_DAYS), NULL, 10)};
    uint8_t *bin = redemption_encode_debit(&meta, &debit, &len, &headers);
    if (!bin)
        return;
    struct delivery *d = delivery_new(DELIVERY_COMMAND, PQgetvalue(res, i, S_ID));
    if (bus_produce(ingest_command_producer(app, meta.member_id), TOPIC_LEDGER_COMMANDS,
                    meta.member_id, bin, len, headers, d) != RD_KAFKA_RESP_ERR_NO_ERROR)
        free(d);
    free(bin);
}

static void send_notice(struct ingest *app, const PGresult *res, int i)
{
    struct event_meta meta;
    Tessera__Notification__V1__NotifyRequest note;
    Tessera__Notification__V1__Variable vname, vpoints, vdays,
        *vars[3] = {&vname, &vpoints, &vdays};
    char request_id[INGEST_KEY_MAX + 32];
    snprintf(request_id, sizeof(request_id), "redemption.done:%s", PQgetvalue(res, i, S_ID));
    row_meta(res, i, &meta);
    tessera__notification__v1__notify_request__init(&note);
    tessera__notification__v1__variable__init(&vname);
    tessera__notification__v1__variable__init(&vpoints);
    tessera__notification__v1__variable__init(&vdays);
    vname.name = "reward.name";
    vname.value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
    vname.text = (char *)PQgetvalue(res, i, S_NAME);
    vpoints.name = "points.spent"; /* the catalogue's name (libs/template/catalogue.c) */
    vpoints.value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_NUMBER;
    vpoints.number = strtoll(PQgetvalue(res, i, S_POINTS), NULL, 10);
    vdays.name = "reward.days"; /* card_days rewards: the days added */
    vdays.value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_NUMBER;
    vdays.number = strtoll(PQgetvalue(res, i, S_CARD_DAYS), NULL, 10);
    note.request_id = request_id;
    note.template_ = "redemption.done";
    note.purpose = "transactional";
    note.priority = "normal";
    note.n_variables = vdays.number > 0 ? 3 : 2;
    note.variables = vars;
    sweep_send_notice(app, &meta, &note, DELIVERY_REDEMPTION_NOTICE, PQgetvalue(res, i, S_ID),
                      SWEEP_NAME);
}

/* The columns every statement returns, from s (redemptions) joined with
 * w (rewards). */
#define SETTLE_COLUMNS                                                                             \
    "s.tenant_id, s.redemption_id, s.member_id, s.branch_id, s.reward_id, s.status, s.points, "    \
    "s.delivery_id, w.name, coalesce(w.coupon_kind, ''), w.coupon_value, w.coupon_percent_bp, "    \
    "w.coupon_valid_days, coalesce(w.card_product_id, ''), w.card_days "

/* clang-format off */
static const char SETTLE_DEBITS_SQL[] =
    "WITH v AS (SELECT r.tenant_id, r.redemption_id, c.status AS verdict FROM redemptions r "
    "JOIN ledger.read_commands c ON c.tenant_id = r.tenant_id AND c.command_id = r.redemption_id "
    "WHERE r.status = 'reserved' LIMIT 200 FOR UPDATE OF r SKIP LOCKED), "
    "s AS (UPDATE redemptions r SET settled_at = now(), status = CASE WHEN v.verdict <> 'posted' "
    "THEN 'refused' WHEN r.kind = 'coupon' THEN 'delivering' ELSE 'done' END FROM v "
    "WHERE r.tenant_id = v.tenant_id AND r.redemption_id = v.redemption_id "
    "AND r.status = 'reserved' RETURNING r.*), "
    "back AS (UPDATE rewards w SET stock = w.stock + n.units FROM (SELECT tenant_id, reward_id, "
    "count(*) AS units FROM s WHERE status = 'refused' GROUP BY tenant_id, reward_id) n "
    "WHERE w.tenant_id = n.tenant_id AND w.reward_id = n.reward_id AND w.stock IS NOT NULL) "
    "SELECT " SETTLE_COLUMNS "FROM s JOIN rewards w ON w.tenant_id = s.tenant_id "
    "AND w.reward_id = s.reward_id";

static const char SETTLE_COUPONS_SQL[] =
    "WITH v AS (SELECT r.tenant_id, r.redemption_id FROM redemptions r "
    "JOIN ledger.read_commands c ON c.tenant_id = r.tenant_id AND c.command_id = r.delivery_id "
    "WHERE r.status = 'delivering' LIMIT 200 FOR UPDATE OF r SKIP LOCKED), "
    "s AS (UPDATE redemptions r SET status = 'done' FROM v WHERE r.tenant_id = v.tenant_id "
    "AND r.redemption_id = v.redemption_id AND r.status = 'delivering' RETURNING r.*) "
    "SELECT " SETTLE_COLUMNS "FROM s JOIN rewards w ON w.tenant_id = s.tenant_id "
    "AND w.reward_id = s.reward_id";

/* Done redemptions whose notice is owed: never sent, or sent without a
 * delivery report for RESEND_NOTICE_AFTER (the report may have died with
 * us). */
static const char NOTICE_SQL[] =
    "WITH d AS (SELECT r.tenant_id, r.redemption_id FROM redemptions r WHERE r.status = 'done' "
    "AND r.noticed_at IS NULL AND (r.notice_sent_at IS NULL "
    "OR r.notice_sent_at < now() - interval '" RESEND_NOTICE_AFTER "') "
    "LIMIT 200 FOR UPDATE SKIP LOCKED), "
    "s AS (UPDATE redemptions r SET notice_sent_at = now() FROM d WHERE r.tenant_id = d.tenant_id "
    "AND r.redemption_id = d.redemption_id RETURNING r.*) "
    "SELECT " SETTLE_COLUMNS "FROM s JOIN rewards w ON w.tenant_id = s.tenant_id "
    "AND w.reward_id = s.reward_id";

static const char NOTICED_SQL[] =
    "UPDATE redemptions SET noticed_at = now() WHERE redemption_id = $1 AND status = 'done' "
    "AND noticed_at IS NULL";

static const char RESEND_SQL[] =
    "SELECT " SETTLE_COLUMNS "FROM redemptions s JOIN rewards w ON w.tenant_id = s.tenant_id "
    "AND w.reward_id = s.reward_id WHERE (s.status = 'reserved' "
    "AND s.created_at < now() - interval '" RESEND_DEBIT_AFTER "') OR (s.status = 'delivering' "
    "AND s.settled_at < now() - interval '" RESEND_COUPON_AFTER "') ORDER BY s.created_at LIMIT 200";
/* clang-format on */
_Static_assert(SETTLE_ROWS_MAX == 200, "the statements' LIMIT");

static void on_resend(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ingest *app = arg;
    settle_running = false;
    for (int i = 0; res && i < PQntuples(res); i++) {
        if (strcmp(PQgetvalue(res, i, S_STATUS), "reserved") == 0)
            send_debit(app, res, i);
        else
            send_coupon(app, res, i);
    }
}

static void on_notices(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ingest *app = arg;
    if (!res)
        log_fields(LOG_WARN, "redemption notices failed; the next round retries", "error", err,
                   NULL);
    for (int i = 0; res && i < PQntuples(res); i++)
        send_notice(app, res, i);
    if (pg_pool_query(app->pg, RESEND_SQL, 0, NULL, on_resend, app) < 0)
        settle_running = false;
}

static void on_coupons(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ingest *app = arg;
    if (!res || pg_pool_query(app->pg, NOTICE_SQL, 0, NULL, on_notices, app) < 0)
        settle_running = false;
}

void redemption_notice_on_delivery(struct ingest *app, const char *redemption_id,
                                   rd_kafka_resp_err_t err)
{
    sweep_notice_delivered(app, NOTICED_SQL, redemption_id, err, SWEEP_NAME);
}

static void on_debits(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ingest *app = arg;
    for (int i = 0; res && i < PQntuples(res); i++) {
        const char *status = PQgetvalue(res, i, S_STATUS);
        log_fields(LOG_INFO, "redemption settled", "redemption_id", PQgetvalue(res, i, S_ID),
                   "status", status, NULL);
        if (strcmp(status, "delivering") == 0)
            send_coupon(app, res, i); /* a done one's notice: the notice step */
    }
    if (!res)
        log_fields(LOG_WARN, "redemption settle failed; the next round retries", "error", err,
                   NULL);
    if (!res || pg_pool_query(app->pg, SETTLE_COUPONS_SQL, 0, NULL, on_coupons, app) < 0)
        settle_running = false;
}

void redemption_settle_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ingest *app = arg;
    if (settle_running || app->stopping || !pg_pool_healthy(app->pg))
        return;
    settle_running = true;
    if (pg_pool_query(app->pg, SETTLE_DEBITS_SQL, 0, NULL, on_debits, app) < 0)
        settle_running = false;
}
