/* The delivery worker's SQL (send_queue.h). A delivery waiting to be sent
 * has a row in send_queue (migration 0006): narrow, with small indexes,
 * so the claim's lease and the outcome's removal never touch the indexes
 * of deliveries, and the outcome's update of deliveries changes no
 * indexed column (a HOT update). deliveries keeps status pending (or
 * held) while its queue row is leased: the lease is the queue row's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "log/log.h"
#include "send_queue.h"

#define SEND_QUEUE_STR_(x) #x
#define SEND_QUEUE_STR(x)  SEND_QUEUE_STR_(x)

static char *dup_value(const PGresult *res, int row, int col)
{
    char *s = strdup(PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
    if (!s)
        abort(); /* out of memory */
    return s;
}

/* The address column: sealed bytea, opened here. NULL when unreadable. */
static char *address_of(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    size_t len = 0;
    unsigned char *bin = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), &len);
    char *a = bin ? notify_unseal(bin, len) : NULL;
    PQfreemem(bin);
    return a;
}

static struct transfer *transfer_of(const PGresult *res, int row, enum provider p)
{
    struct transfer *t = calloc(1, sizeof(*t));
    if (!t)
        abort();
    t->id = db_int_at(res, row, 0);
    t->tenant_id = dup_value(res, row, 1);
    t->request_id = dup_value(res, row, 2);
    t->member_id = dup_value(res, row, 3);
    t->channel = dup_value(res, row, 4);
    t->message_id = dup_value(res, row, 5);
    t->template_name = dup_value(res, row, 6);
    t->address = address_of(res, row, 7);
    t->subject = dup_value(res, row, 8);
    t->body = dup_value(res, row, 9);
    t->html = dup_value(res, row, 10);
    t->attempts = (int)db_int_at(res, row, 11);
    t->lane = db_int_at(res, row, 12) == LANE_HIGH ? LANE_HIGH : LANE_NORMAL;
    t->provider = p;
    return t;
}

/* One lane per statement: the index of waiting rows (channel, lane,
 * next_attempt_us; unleased rows only, so the slice in flight is not
 * walked past) gives the due rows in order and the scan stops at max. The
 * lease counts the attempt (a worker that dies mid-send used one). */
int send_queue_claim(PGconn *pg, enum provider p, const char *channel, int lane, int max,
                     int64_t now_us, struct claimed *out, char *err, size_t err_len)
{
    char now[24], limit[12], lanes[8];
    snprintf(lanes, sizeof(lanes), "%d", lane);
    snprintf(now, sizeof(now), "%lld", (long long)now_us);
    snprintf(limit, sizeof(limit), "%d", max);
    const char *params[4] = {lanes, now, channel, limit};
    PGresult *res = db_query(
        pg,
        "WITH c AS (UPDATE send_queue q SET attempts = q.attempts + 1, "
        " lease_until = now() + interval '" SEND_QUEUE_STR(
            SEND_QUEUE_LEASE_S) " seconds' "
                                " WHERE q.delivery_id IN (SELECT delivery_id FROM send_queue WHERE "
                                "lease_until IS NULL "
                                "  AND channel = $3 AND lane = $1::smallint AND next_attempt_us <= "
                                "$2::bigint "
                                "  ORDER BY next_attempt_us LIMIT $4::int FOR UPDATE SKIP LOCKED) "
                                " RETURNING q.delivery_id, q.attempts) "
                                "SELECT d.id, d.tenant_id, d.request_id, d.member_id, d.channel, "
                                "d.message_id, "
                                " d.template, d.address, d.subject, d.body, d.html, c.attempts, "
                                "d.lane, d.expires_at_us "
                                "FROM c JOIN deliveries d ON d.id = c.delivery_id",
        4, params, err, err_len, NULL);
    if (!res)
        return -1;
    int n = PQntuples(res);
    for (int i = 0; i < n && i < max; i++)
        out[i] = (struct claimed){transfer_of(res, i, p), db_int_at(res, i, 13)};
    PQclear(res);
    return n < max ? n : max;
}

/* Cheap: the index of leased rows holds only those in flight. */
void send_queue_sweep(PGconn *pg)
{
    char err[512];
    PGresult *res = db_query(pg,
                             "UPDATE send_queue SET lease_until = NULL "
                             "WHERE lease_until IS NOT NULL AND lease_until < now()",
                             0, NULL, err, sizeof(err), NULL);
    if (!res)
        log_fields(LOG_WARN, "lease sweep failed", "error", err, NULL);
    PQclear(res);
}

void send_outcomes_init(struct send_outcomes *w)
{
    for (int k = 0; k < 6; k++)
        db_array_init(&w->rows[k]);
    for (int k = 0; k < 3; k++)
        db_array_init(&w->outbox[k]);
}

void send_outcomes_free(struct send_outcomes *w)
{
    for (int k = 0; k < 6; k++)
        db_array_free(&w->rows[k]);
    for (int k = 0; k < 3; k++)
        db_array_free(&w->outbox[k]);
}

void send_outcomes_row(struct send_outcomes *w, const struct transfer *t, const char *status,
                       const char *reason, int64_t next_us, int64_t now_us)
{
    db_array_add_int(&w->rows[0], t->id), db_array_add(&w->rows[1], status);
    db_array_add(&w->rows[2], reason), db_array_add_int(&w->rows[3], next_us);
    db_array_add_int(&w->rows[4], now_us), db_array_add_int(&w->rows[5], t->attempts);
}

/* The event's outbox row has its lease already over, so the pipeline's
 * relay sweep (every few seconds) publishes it. */
int send_outcomes_event(struct send_outcomes *w, const char *key, uint8_t *bin, size_t len,
                        char *err, size_t err_len)
{
    if (!bin) {
        snprintf(err, err_len, "outcome not encodable");
        return -1;
    }
    db_array_add(&w->outbox[0], TOPIC_NOTIFY_EVENTS);
    db_array_add(&w->outbox[1], key);
    db_array_add_bytea(&w->outbox[2], bin, len);
    free(bin);
    return 0;
}

/* Over, the rendered text and the address go (a code never outlives its
 * purpose in a table); the row keeps the decision and outcome. No column
 * of an index of deliveries changes (HOT). A row over leaves the queue; a
 * retry is unleased there, due at its next attempt. */
int send_outcomes_write(PGconn *pg, struct send_outcomes *w, char *err, size_t err_len)
{
    const char *params[9];
    for (int k = 0; k < 6; k++)
        params[k] = db_array_finish(&w->rows[k]);
    for (int k = 0; k < 3; k++)
        params[6 + k] = db_array_finish(&w->outbox[k]);
    PGresult *res = db_query(
        pg,
        "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], "
        " $5::bigint[], $6::int[]) AS u(id, st, reason, nxt, upd, att)), "
        "rec AS (UPDATE deliveries d SET status = u.st, last_error = NULLIF(u.reason, ''), "
        " next_attempt_us = u.nxt, updated_us = u.upd, attempts = u.att, "
        " subject = CASE WHEN u.st = 'pending' THEN d.subject END, "
        " body = CASE WHEN u.st = 'pending' THEN d.body END, "
        " html = CASE WHEN u.st = 'pending' THEN d.html END, "
        " address = CASE WHEN u.st = 'pending' THEN d.address END "
        " FROM u WHERE d.id = u.id), "
        "gone AS (DELETE FROM send_queue q USING u WHERE q.delivery_id = u.id "
        " AND u.st <> 'pending'), "
        "again AS (UPDATE send_queue q SET lease_until = NULL, next_attempt_us = u.nxt "
        " FROM u WHERE q.delivery_id = u.id AND u.st = 'pending') "
        "INSERT INTO outbox (topic, key, payload, lease_until) "
        "SELECT t, k, p, now() FROM unnest($7::text[], $8::text[], $9::bytea[]) AS o(t, k, p)",
        9, params, err, err_len, NULL);
    send_outcomes_free(w);
    PQclear(res);
    return res ? 0 : -1;
}
