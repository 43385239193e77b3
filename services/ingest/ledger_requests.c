/* What the points and refund endpoints share on their way to the ledger:
 * the member (and branch) confirmed in one statement, then the
 * Idempotency-Key claimed for a fresh command id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/validate.h"
#include "ingest.h"

/* Columns: the member's home branch (no row: no member), whether the
 * requested branch exists. */
static void on_member_checked(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!req_member_row(r, res, err))
        return;
    if (!r->branch_id[0]) {
        snprintf(r->branch_id, sizeof(r->branch_id), "%s", PQgetvalue(res, 0, 0));
    } else if (!req_branch_exists(r, res, 1)) {
        return;
    }
    uuid7_generate(r->command_id);
    idem_claim_then(r, r->next);
}

void ledger_request_check_then(struct req *r, void (*send)(struct req *r))
{
    r->next = send;
    const char *p[3] = {r->caller.tenant_id, r->member_id, r->branch_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT m.branch_id, " BRANCH_STATE_SQL(
                          "$1", "$3") " FROM members m "
                                      "WHERE m.tenant_id = $1 AND m.member_id = $2",
                      3, p, on_member_checked, r) < 0)
        req_fail_db(r, "queue full");
}

bool ledger_request_member_path(struct req *r)
{
    if (!req_member_from_path(r))
        return false;
    if (!req_read_body(r))
        return false;
    return true;
}

void command_meta(struct event_meta *meta, const struct caller *c, const char *member_id,
                  const char *branch_id, const char *command_id, const char *traceparent)
{
    *meta = (struct event_meta){.tenant_id = c->tenant_id,
                                .branch_id = branch_id,
                                .member_id = member_id,
                                .correlation_id = command_id,
                                .actor_kind = "api_key",
                                .actor_id = c->key_id,
                                .traceparent = traceparent};
}

uint8_t *command_encode(Envelope *env, size_t *len, rd_kafka_headers_t **headers)
{
    uint8_t *out = envelope_encode(env, len);
    if (out)
        *headers = envelope_cloudevents_headers(env, "/tessera/ingest");
    return out;
}

void req_send_command(struct req *r, uint8_t *command, size_t len, rd_kafka_headers_t *headers)
{
    free(r->command);
    if (r->headers)
        rd_kafka_headers_destroy(r->headers);
    r->command = command;
    r->command_len = len;
    r->headers = headers;
    if (!command) {
        req_fail(r, 413, "payload_too_large", "the command is too large");
        return;
    }
    waiter_send_and_wait(r);
}

/* Encodes env as r's command with its CloudEvents headers and sends it,
 * waiting for the verdict. */
void ledger_request_send(struct req *r, Envelope *env)
{
    size_t len = 0;
    rd_kafka_headers_t *headers = NULL;
    uint8_t *command = command_encode(env, &len, &headers);
    req_send_command(r, command, len, headers);
}

void ledger_request_meta(struct req *r, struct event_meta *meta)
{
    command_meta(meta, &r->caller, r->member_id, r->branch_id, r->command_id, r->traceparent);
}
