/* Marking inbox messages read (issue 11):
 *
 *   POST /v1/members/{member_id}/inbox/read (admin or pos key)
 *   POST /v1/me/inbox/read (the member's session)
 *
 * with {"message_ids": [...]} (1 to INBOX_READ_IDS_MAX ids), {"up_to":
 * "<RFC 3339 time>"} (every message delivered up to then), or both. The
 * inbox is notification's: ingest checks the member and puts
 * InboxMessagesRead on notify-requests through its outbox, keyed by the
 * member, and answers 202; notification marks the rows when it consumes
 * it (ids it does not know are ignored there). */
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "datetime/datetime.h"
#include "ingest.h"
#include "notify_out.h"

#define INBOX_READ_IDS_MAX 100
#define INBOX_ID_MAX       64 /* characters of one message id */

static void on_queued(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!req_member_row(r, res, err))
        return;
    outbox_events_publish_rows(r->app, res, 0);
    req_finish(r, 202, json_pack("{s:s, s:s}", "member_id", r->member_id, "status", "accepted"));
}

/* The message ids of the body (validated into ids, count n). */
static void parse_ids(struct validation *v, json_t *body, const char **ids, size_t *n)
{
    json_t *arr = json_object_get(body, "message_ids");
    *n = 0;
    if (!arr || json_is_null(arr))
        return;
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > INBOX_READ_IDS_MAX) {
        validation_add(v, "message_ids", "must be an array of 1 to 100 message ids");
        return;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *id = json_string_value(json_array_get(arr, i));
        if (!id || id[0] == '\0' || strlen(id) > INBOX_ID_MAX) {
            validation_add(v, "message_ids", "each must be a message id of 1 to 64 characters");
            return;
        }
        ids[(*n)++] = id;
    }
}

static void read_validated(struct req *r)
{
    static const char *const fields[] = {"message_ids", "up_to", NULL};
    if (!req_read_body(r))
        return;
    struct validation v;
    validation_init(&v);
    validate_no_unknown_fields(&v, r->body, fields);
    const char *ids[INBOX_READ_IDS_MAX];
    size_t n = 0;
    parse_ids(&v, r->body, ids, &n);
    const char *up_to = NULL;
    int64_t up_to_us = 0;
    if (validate_string(&v, r->body, "up_to", false, 1, 64, &up_to) && up_to &&
        (!datetime_parse_rfc3339_us(up_to, &up_to_us) || up_to_us <= 0))
        validation_add(&v, "up_to", "must be an RFC 3339 date-time after 1970");
    if (validation_ok(&v) && n == 0 && !up_to)
        validation_add(&v, "message_ids", "give message_ids, up_to or both");
    if (!req_validated(r, &v))
        return;
    size_t len = 0;
    uint8_t *bin =
        notify_encode_inbox_read(&r->caller, r->member_id, r->traceparent, ids, n, up_to_us, &len);
    char *payload = bin ? db_bytea_text(bin, len) : NULL;
    free(bin);
    if (!payload) {
        req_fail_db(r, "could not encode the inbox change");
        return;
    }
    const char *p[3] = {r->caller.tenant_id, r->member_id, payload};
    int rc = pg_pool_query(r->app->pg,
                           "INSERT INTO outbox (topic, key, payload) SELECT '" TOPIC_NOTIFY_REQUESTS
                           "', member_id, $3::bytea FROM members WHERE tenant_id = $1 "
                           "AND member_id = $2 RETURNING id, topic, key, payload",
                           3, p, on_queued, r);
    free(payload);
    if (rc < 0)
        req_fail_db(r, "queue full");
}

static void staff_authenticated(struct req *r)
{
    if (strcmp(r->caller.scope, "admin") != 0 && strcmp(r->caller.scope, "pos") != 0) {
        req_fail(r, 403, "forbidden", "this key may not change members' inboxes");
        return;
    }
    if (!req_member_from_path(r))
        return;
    read_validated(r);
}

void inbox_read_post(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), staff_authenticated);
}

void inbox_read_me_post(struct http_exchange *ex, void *app)
{
    member_session_then(req_new(app, ex), read_validated);
}
