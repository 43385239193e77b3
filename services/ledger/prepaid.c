/* Prepaid liability per tenant, tracked inside each batch: the stored
 * value the batch moved in or out of members' balances is added to
 * tenant_prepaid in the batch's transaction, and a tenant whose total
 * crosses its configured threshold (either way) gets one
 * PrepaidThresholdCrossed event through the outbox and a row in
 * prepaid_threshold_crossings. Exactly once, like everything the batch
 * does. The cost: one statement per batch that moved stored value, and
 * batches of two ledger instances touching one tenant commit one after
 * the other on its row (rows are locked in tenant order: no deadlock). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "ledger.h"
#include "money/money.h"

const char *prepaid_check(const struct ledger_ctx *l, const char *tenant_id, int64_t in)
{
    int64_t total = 0;
    for (size_t i = 0; i < l->ladder_count; i++)
        if (strcmp(l->ladders[i].tenant_id, tenant_id) == 0)
            total = l->ladders[i].prepaid_outstanding;
    for (size_t i = 0; i < l->rows.prepaid_count; i++) /* what the batch moved so far */
        if (strcmp(l->rows.prepaid[i].tenant_id, tenant_id) == 0 &&
            !money_add(total, l->rows.prepaid[i].delta, &total))
            return PREPAID_OVERFLOW_CODE;
    return money_add(total, in, &total) ? NULL : PREPAID_OVERFLOW_CODE;
}

static void emit_crossing(struct pipeline_batch *b, const PGresult *res, int i)
{
    struct event_meta meta = {
        .tenant_id = PQgetvalue(res, i, 0), .actor_kind = "service", .actor_id = "ledger"};
    Envelope env;
    Actor actor;
    PrepaidThresholdCrossed fact;
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__prepaid_threshold_crossed__init(&fact);
    fact.tenant_id = (char *)meta.tenant_id;
    fact.outstanding = db_int_at(res, i, 1);
    fact.threshold = db_int_at(res, i, 2);
    fact.above = strcmp(PQgetvalue(res, i, 3), "t") == 0;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PREPAID_THRESHOLD_CROSSED;
    env.prepaid_threshold_crossed = &fact;
    size_t len = 0;
    uint8_t *payload = envelope_encode(&env, &len);
    if (payload) /* takes ownership */
        pipeline_emit(b, TOPIC_LEDGER_EVENTS, meta.tenant_id, payload, len);
}

/* After store_write, in the same transaction: the batch's per-tenant
 * deltas (summed by store_add_verdict) are a handful of rows. */
int prepaid_track(PGconn *pg, struct ledger_ctx *l, struct pipeline_batch *b, char *err,
                  size_t err_len)
{
    const struct ledger_rows *r = &l->rows;
    struct db_array tenants, deltas, commands;
    db_array_init(&tenants), db_array_init(&deltas), db_array_init(&commands);
    for (size_t i = 0; i < r->prepaid_count; i++) {
        if (r->prepaid[i].delta == 0)
            continue;
        db_array_add(&tenants, r->prepaid[i].tenant_id);
        db_array_add_int(&deltas, r->prepaid[i].delta);
        db_array_add(&commands, r->prepaid[i].last_command_id);
    }
    PGresult *res = NULL;
    size_t moved = tenants.count;
    if (moved > 0) {
        const char *p[3] = {db_array_finish(&tenants), db_array_finish(&deltas),
                            db_array_finish(&commands)};
        res = db_query(
            pg,
            "WITH d AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]) "
            "AS d(t, delta, last_command)), "
            "u AS (INSERT INTO tenant_prepaid (tenant_id, outstanding) SELECT t, delta FROM d "
            "ORDER BY t ON CONFLICT (tenant_id) DO UPDATE SET outstanding = "
            "tenant_prepaid.outstanding + EXCLUDED.outstanding RETURNING tenant_id, outstanding), "
            "c AS (SELECT u.tenant_id, u.outstanding, p.threshold, u.outstanding >= p.threshold "
            "AS above, d.last_command FROM u JOIN d ON d.t = u.tenant_id JOIN prepaid_thresholds p "
            "ON p.tenant_id = u.tenant_id WHERE (u.outstanding >= p.threshold) <> "
            "(u.outstanding - d.delta >= p.threshold)), "
            "i AS (INSERT INTO prepaid_threshold_crossings (tenant_id, threshold, outstanding, "
            "above, command_id) SELECT tenant_id, threshold, outstanding, above, last_command "
            "FROM c) SELECT tenant_id, outstanding, threshold, above FROM c",
            3, p, err, err_len, NULL);
    }
    db_array_free(&tenants), db_array_free(&deltas), db_array_free(&commands);
    if (moved == 0)
        return 0;
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++)
        emit_crossing(b, res, i);
    PQclear(res);
    return 0;
}
