/* Engagement grants: a row in activity_grants per grant id, and an
 * EarnPoints command (ledger-commands, keyed by member) for each row
 * inserted now. The grant id is the command id, derived from the cause
 * and the rule (engage_types.h): a cause delivered twice finds its row
 * and sends nothing, and the ledger applies a command relayed twice once.
 * The command's rule names the rule, so the journal reason reads
 * "points_earned:<rule>". */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "campaign.h"
#include "db/db.h"
#include "engage.h"

#define GRANT_ACTOR_ID "campaign"

/* The EarnPoints command of g for the cause's member (caller frees). */
static uint8_t *encode_grant(const Envelope *cause, const struct engage_grant *g, size_t *len)
{
    struct event_meta meta = {.tenant_id = cause->tenant_id,
                              .branch_id = cause->branch_id,
                              .member_id = cause->member_id,
                              .causation_id = cause->event_id,
                              .correlation_id = cause->correlation_id[0] ? cause->correlation_id
                                                                         : cause->event_id,
                              .actor_kind = "service",
                              .actor_id = GRANT_ACTOR_ID,
                              .traceparent = cause->traceparent,
                              .occurred_at_us = cause->occurred_at_us};
    Envelope env;
    Actor actor;
    Tessera__Ledger__V1__EarnPoints earn;
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__earn_points__init(&earn);
    earn.command_id = (char *)g->grant_id;
    earn.points = g->points;
    earn.purchase_command_id = "";
    earn.rule = (char *)g->rule;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARN_POINTS;
    env.earn_points = &earn;
    return envelope_encode(&env, len);
}

int engage_outbox_now(PGconn *pg, const char *topic, const char *key, const uint8_t *payload,
                      size_t len, char *err, size_t err_len)
{
    struct db_array topics, keys, payloads;
    db_array_init(&topics), db_array_init(&keys), db_array_init(&payloads);
    db_array_add(&topics, topic);
    db_array_add(&keys, key);
    db_array_add_bytea(&payloads, payload, len);
    const char *p[3] = {db_array_finish(&topics), db_array_finish(&keys),
                        db_array_finish(&payloads)};
    /* the lease over at once: the pipeline's next sweep relays the row */
    PGresult *res = db_query(pg,
                             "INSERT INTO outbox (topic, key, payload, lease_until) SELECT t, k, "
                             "v, now() FROM unnest($1::text[], $2::text[], $3::bytea[]) "
                             "AS u(t, k, v)",
                             3, p, err, err_len, NULL);
    db_array_free(&topics), db_array_free(&keys), db_array_free(&payloads);
    PQclear(res);
    return res ? 0 : -1;
}

int engage_grant(struct campaign_ctx *c, PGconn *pg, struct pipeline_batch *b,
                 const Envelope *cause, const struct engage_grant *g, bool *granted, char *err,
                 size_t err_len)
{
    assert(g->points > 0 && g->grant_id[0]);
    char points[24];
    snprintf(points, sizeof(points), "%lld", (long long)g->points);
    const char *p[7] = {cause->tenant_id, g->grant_id, cause->member_id, g->kind,
                        g->rule,          points,      g->local_day};
    PGresult *res = db_query(pg,
                             "INSERT INTO activity_grants (tenant_id, grant_id, member_id, kind, "
                             "rule, points, local_day) VALUES ($1, $2, $3, $4, $5, $6, $7::date) "
                             "ON CONFLICT (tenant_id, grant_id) DO NOTHING RETURNING 1",
                             7, p, err, err_len, NULL);
    if (!res)
        return -1;
    *granted = PQntuples(res) == 1;
    PQclear(res);
    if (!*granted)
        return 0;
    size_t len = 0;
    uint8_t *cmd = encode_grant(cause, g, &len);
    assert(cmd); /* every field is bounded: a failure is a programmer error */
    int rc = 0;
    if (b) {
        pipeline_emit(b, TOPIC_LEDGER_COMMANDS, cause->member_id, cmd, len);
    } else { /* the scheduler: relayed by the outbox sweep */
        rc = engage_outbox_now(pg, TOPIC_LEDGER_COMMANDS, cause->member_id, cmd, len, err, err_len);
        free(cmd);
    }
    if (c) {
        c->engage_grants++;
        c->engage_points += g->points;
    }
    return rc;
}
