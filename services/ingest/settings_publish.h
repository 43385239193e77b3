/* settings_publish.c: the second half of every tenant-settings PUT whose
 * settings another service owns (earning, referral and activity rules in
 * the campaign, the tier ladder in tiering).
 *
 * The caller has validated the body and encoded the change event into
 * r->command (its change id in r->command_id). settings_publish then
 *  1. runs the caller's publish statement, which writes the audit row and
 *     the event's outbox row (and any row of its own) in one statement,
 *     so a change is audited if and only if it is published;
 *  2. produces the event on member-events keyed by tenant;
 *  3. polls the owner's read view until it has stored the change, up to
 *     the request's wait budget (Prefer: wait=N), and answers 200 with
 *     status "applied", or 202 "accepted" when the budget ran out first
 *     (or ingest is stopping).
 * Called from a libevent callback; the request ends in every case. */
#ifndef TESSERA_INGEST_SETTINGS_PUBLISH_H
#define TESSERA_INGEST_SETTINGS_PUBLISH_H

#include <jansson.h>
#include <libpq-fe.h>

#include "bus/topics.h"
#include "events/codec.h"
#include "ingest.h"

#define SETTINGS_EXTRA_PARAMS_MAX 8  /* publish statement parameters past $5 */
#define SETTINGS_POLL_MS          20 /* how often the answer looks for the owner's row */

/* The statement that writes the audit row and the outbox row, and its
 * parameters: $1 tenant, $2 actor key id, $3 actor address, $4 audit
 * "after" (JSON), $5 the event (bytea), then extra[0] as $6, ... It
 * returns one row whose first column is the outbox row id. */
struct settings_change {
    const char *publish_sql;
    json_t *audit_after; /* borrowed; dumped before settings_publish returns */
    const char *const *extra;
    int n_extra;
    /* $1 tenant, $2 change id; a row once the owner has stored the change. */
    const char *applied_sql;
    /* The body to answer: status "applied" with the owner's row, or
     * "accepted" with row NULL. Returns a new reference. */
    json_t *(*answer)(void *ctx, const char *status, const PGresult *row);
    /* Frees ctx (not the request); called once, before the request ends. */
    void (*release)(void *ctx);
    void *ctx;
    /* When set, a publish statement failing on a unique key (23505) is a
     * 409 with this problem code and detail instead of a 503. */
    const char *conflict_code;
    const char *conflict_detail;
};

/* The audit row and the event's outbox row in one statement, for a
 * change with no row of its own: $1 tenant, $2 actor key id, $3 actor
 * address, $4 after, $5 the event; action a string literal. */
#define SETTINGS_PUBLISH_SQL(action)                                                               \
    "WITH changed AS (SELECT $1::text AS target, NULL::jsonb AS before, $4::jsonb AS "             \
    "after), " AUDIT_CTE(action) ", o AS (INSERT INTO outbox (topic, key, payload) "               \
                                 "VALUES ('" TOPIC_MEMBER_EVENTS                                   \
                                 "', $1, $5::bytea) RETURNING id) "                                \
                                 "SELECT id FROM o"

/* The metadata of a tenant setting's change event: the tenant's, made by
 * the calling admin key, correlated by the change id (r->command_id).
 * Borrows r's strings. */
struct event_meta settings_event_meta(const struct req *r);

/* Takes ownership of c->ctx (released through c->release in every case). */
void settings_publish(struct req *r, const struct settings_change *c);

#endif
