/* Redemptions (issue 12): POST /v1/members/{id}/redemptions (admin or pos
 * key) and POST /v1/me/redemptions (the member's session) spend points on
 * a reward of the catalogue (rewards.c).
 *
 * A card_days reward is one ledger command instead of the debit: an
 * ExtendCard that spends the points and adds the days to the member's
 * active time card of the product in one posting, so a member without one
 * is refused (409 no_active_card) and keeps the points.
 *
 * Stock: the request reserves one unit with a conditional UPDATE (stock >
 * 0, or unlimited) in the statement that records the redemption
 * (reserved), so concurrent requests can never take more than the stock:
 * the row lock serialises them and the loser of the last unit sees 0 and
 * answers 409 out_of_stock. Only then is the debit sent to the ledger as
 * AdjustPoints (-price, reason "redemption:<reward id>") whose command id
 * is the redemption id, and the answer is the ledger's verdict like any
 * points command (409 insufficient_points when it refuses; 202 and an
 * operation id past the wait budget; a retried Idempotency-Key gets the
 * same answer). The reservation is settled from that verdict by
 * redemption_settle.c: stock released when the ledger refused, the reward
 * delivered when it posted. Keeping the stock here rather than in the
 * ledger keeps the ledger free of a tenant-wide row that every worker's
 * batch would lock; the price is that a refused debit gives its unit back
 * a settle round later, not at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/card_types.h"
#include "http/validate.h"
#include "ingest.h"

static const char *const staff_fields[] = {"reward_id", "branch_id", NULL};
static const char *const member_fields[] = {"reward_id", NULL};

uint8_t *redemption_encode_debit(const struct event_meta *meta_in, const struct redemption_debit *d,
                                 size_t *len, rd_kafka_headers_t **headers)
{
    struct event_meta meta = *meta_in;
    Envelope env;
    Actor actor;
    AdjustPoints cmd;
    ExtendCard extend;
    char reason[INGEST_KEY_MAX + 16];
    snprintf(reason, sizeof(reason), "redemption:%s", d->reward_id);
    envelope_init(&env, &actor, &meta);
    if (d->card_product_id && d->card_product_id[0]) {
        tessera__cards__v1__extend_card__init(&extend);
        extend.command_id = (char *)d->redemption_id;
        extend.product_id = (char *)d->card_product_id;
        extend.days = d->card_days;
        extend.points_price = d->points;
        extend.reason = reason;
        env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXTEND_CARD;
        env.extend_card = &extend;
        return command_encode(&env, len, headers);
    }
    tessera__ledger__v1__adjust_points__init(&cmd);
    cmd.command_id = (char *)d->redemption_id;
    cmd.points = -d->points;
    cmd.reason = reason;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS;
    env.adjust_points = &cmd;
    return command_encode(&env, len, headers);
}

/* Columns: the price reserved (NULL: nothing reserved), whether the reward
 * exists, whether it is active now, its card product ("" none) and days. */
static void on_reserved(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQgetisnull(res, 0, 0)) {
        if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
            req_reply_invalid(r, "reward_id", "no such reward in this tenant");
        else if (strcmp(PQgetvalue(res, 0, 2), "t") != 0)
            req_fail(r, 409, "reward_not_active", "the reward is outside its active window");
        else
            req_fail(r, 409, "out_of_stock", "the reward's stock is exhausted");
        return;
    }
    struct event_meta meta;
    ledger_request_meta(r, &meta);
    size_t len = 0;
    rd_kafka_headers_t *headers = NULL;
    struct redemption_debit d = {.redemption_id = r->command_id,
                                 .reward_id =
                                     json_string_value(json_object_get(r->body, "reward_id")),
                                 .points = strtoll(PQgetvalue(res, 0, 0), NULL, 10),
                                 .card_product_id = PQgetvalue(res, 0, 3),
                                 .card_days = strtoll(PQgetvalue(res, 0, 4), NULL, 10)};
    uint8_t *command = redemption_encode_debit(&meta, &d, &len, &headers);
    req_send_command(r, command, len, headers);
}

/* After the member, branch and Idempotency-Key are settled: the unit of
 * stock and the redemption row, in one statement ($6: the clock now). */
static void reserve(struct req *r)
{
    char now[24], delivery_id[UUID_STR_SIZE];
    snprintf(now, sizeof(now), "%lld", (long long)event_now_us());
    uuid7_generate(delivery_id);
    const char *p[7] = {
        r->caller.tenant_id, json_string_value(json_object_get(r->body, "reward_id")),
        r->command_id,       r->member_id,
        r->branch_id,        now,
        delivery_id};
    if (pg_pool_query(
            r->app->pg,
            "WITH w AS (UPDATE rewards SET stock = stock - 1 WHERE tenant_id = $1 "
            "AND reward_id = $2 AND (stock IS NULL OR stock > 0) "
            "AND active_from_us <= $6::bigint AND (active_to_us IS NULL "
            "OR active_to_us > $6::bigint) RETURNING reward_id, kind, points_price, "
            "card_product_id, card_days), "
            "d AS (INSERT INTO redemptions (tenant_id, redemption_id, member_id, branch_id, "
            "reward_id, kind, points, delivery_id) SELECT $1, $3, $4, $5, reward_id, kind, "
            "points_price, $7 "
            "FROM w RETURNING points) "
            "SELECT (SELECT points FROM d), EXISTS (SELECT 1 FROM rewards WHERE tenant_id = $1 "
            "AND reward_id = $2), EXISTS (SELECT 1 FROM rewards WHERE tenant_id = $1 "
            "AND reward_id = $2 AND active_from_us <= $6::bigint AND (active_to_us IS NULL "
            "OR active_to_us > $6::bigint)), coalesce((SELECT card_product_id FROM w), ''), "
            "coalesce((SELECT card_days FROM w), 0)",
            7, p, on_reserved, r) < 0)
        req_fail_db(r, "queue full");
}

static bool validate_redemption(struct req *r, const char *const *fields, const char **branch)
{
    struct validation v;
    validation_init(&v);
    const char *reward = NULL;
    *branch = NULL;
    validate_no_unknown_fields(&v, r->body, fields);
    ingest_validate_id(&v, r->body, "reward_id", true, &reward);
    ingest_validate_id(&v, r->body, "branch_id", false, branch);
    return req_validated(r, &v);
}

static void staff_authenticated(struct req *r)
{
    if (strcmp(r->caller.scope, "admin") != 0 && strcmp(r->caller.scope, "pos") != 0) {
        req_fail(r, 403, "forbidden", "this key may not redeem rewards");
        return;
    }
    const char *branch = NULL;
    if (!ledger_request_member_path(r) || !validate_redemption(r, staff_fields, &branch))
        return;
    if (!req_at_branch(r, branch))
        return;
    commands_read_prefer_wait(r);
    ledger_request_check_then(r, reserve);
}

void redemptions_create(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), staff_authenticated);
}

/* The member's own session: its id is the session's; its home branch. */
static void member_authenticated(struct req *r)
{
    const char *branch = NULL;
    if (!req_read_body(r) || !validate_redemption(r, member_fields, &branch))
        return;
    commands_read_prefer_wait(r);
    ledger_request_check_then(r, reserve);
}

void redemptions_create_mine(struct http_exchange *ex, void *app)
{
    member_session_then(req_new(app, ex), member_authenticated);
}
