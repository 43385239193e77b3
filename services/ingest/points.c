/* POST /v1/members/{id}/points-adjustments: an admin grants (points > 0)
 * or deducts (points < 0) points with a required reason, answered with the
 * ledger's verdict like a top-up. A grant may name its expiry; otherwise
 * the tenant's points policy decides (in the ledger). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datetime/datetime.h"
#include "http/validate.h"
#include "ingest.h"

#define POINTS_ABS_MAX 1000000000LL

static const char *const adjustment_fields[] = {"points", "reason", "expires_at", "branch_id",
                                                NULL};

/* Records every problem of an adjustment's body in v; sets *branch (NULL
 * when absent). Shared with the batch endpoint. */
void points_check_fields(struct validation *v, json_t *b, const char **branch)
{
    int64_t points = 0, expires_us = 0;
    const char *reason = NULL, *expires = NULL;
    validate_no_unknown_fields(v, b, adjustment_fields);
    if (validate_int(v, b, "points", true, -POINTS_ABS_MAX, POINTS_ABS_MAX, &points) && points == 0)
        validation_add(v, "points", "must not be 0");
    validate_text(v, b, "reason", true, 1, TEXT_REASON_CHARS_MAX, TEXT_REASON_BYTES_MAX, &reason);
    ingest_validate_id(v, b, "branch_id", false, branch);
    if (validate_string(v, b, "expires_at", false, 1, 64, &expires) && expires) {
        if (!datetime_parse_rfc3339_us(expires, &expires_us))
            validation_add(v, "expires_at", "must be an RFC 3339 time");
        else if (expires_us <= event_now_us())
            validation_add(v, "expires_at", "must be in the future");
        else if (points < 0)
            validation_add(v, "expires_at", "only a grant (points > 0) has an expiry");
    }
}

static bool validate_adjustment(struct req *r)
{
    struct validation v;
    validation_init(&v);
    const char *branch = NULL;
    points_check_fields(&v, r->body, &branch);
    if (!req_validated(r, &v))
        return false;
    snprintf(r->branch_id, sizeof(r->branch_id), "%s", branch ? branch : "");
    return true;
}

/* Encodes an AdjustPoints command from a checked body; the caller frees
 * the result and owns *headers. NULL when too large. */
uint8_t *points_encode(const struct caller *c, const char *member_id, const char *branch_id,
                       const char *command_id, const char *traceparent, json_t *body, size_t *len,
                       rd_kafka_headers_t **headers)
{
    struct event_meta meta;
    command_meta(&meta, c, member_id, branch_id, command_id, traceparent);
    Envelope env;
    Actor actor;
    AdjustPoints cmd;
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__adjust_points__init(&cmd);
    cmd.command_id = (char *)command_id;
    cmd.points = json_integer_value(json_object_get(body, "points"));
    cmd.reason = (char *)json_string_value(json_object_get(body, "reason"));
    const char *expires = json_string_value(json_object_get(body, "expires_at"));
    if (expires && !datetime_parse_rfc3339_us(expires, &cmd.expires_at_us))
        cmd.expires_at_us = 0; /* validated before: cannot happen */
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS;
    env.adjust_points = &cmd;
    return command_encode(&env, len, headers);
}

static void adjustment_send(struct req *r)
{
    size_t len = 0;
    rd_kafka_headers_t *headers = NULL;
    uint8_t *command = points_encode(&r->caller, r->member_id, r->branch_id, r->command_id,
                                     r->traceparent, r->body, &len, &headers);
    req_send_command(r, command, len, headers);
}

static void adjustment_authenticated(struct req *r)
{
    if (strcmp(r->caller.scope, "admin") != 0) {
        req_fail(r, 403, "forbidden", "only an admin key adjusts points");
        return;
    }
    if (!ledger_request_member_path(r) || !validate_adjustment(r))
        return;
    r->audit_action = "points.adjust";
    commands_read_prefer_wait(r);
    ledger_request_check_then(r, adjustment_send);
}

void points_adjust(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), adjustment_authenticated);
}
