/* POST /v1/events:batch — a day of offline POS records in one request:
 * NDJSON, one command per line ("type": topup | purchase |
 * points_adjustment, "member_id", "idempotency_key" plus the body of its
 * single endpoint), up to BATCH_LINES_MAX lines.
 * Every line is answered in order with what its single endpoint would
 * have answered; a line whose key was seen before is answered from its
 * record, never applied twice. The whole batch costs a fixed number of
 * database round trips (check members, claim keys, read known keys)
 * whatever its size, its commands travel to the ledger together, and its
 * answers are recorded in chunks as the verdicts come (batch_record.h). */
#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_record.h"
#include "db/db.h"
#include "clock/clock.h"
#include "http/validate.h"
#include "ingest.h"
#include "key_index.h"
#include "log/log.h"

#define BATCH_LINES_MAX 10000
/* Lines checked, claimed and sent together: the ledger starts on the
 * first chunk while ingest checks the next, and the event loop serves
 * other requests between chunks (10 000 produces in one callback stalled
 * them). Not smaller: chunks of 1 000 spread over the partitions gave the
 * ledger small consumer batches and it applied 10 000 lines 0.4 s slower
 * (docs/batch.md). */
#define BATCH_CHUNK_LINES    2500
#define BATCH_JSON_DEPTH_MAX 8

enum line_state {
    LINE_ANSWERED, /* status and result are final */
    LINE_SEND,     /* to send to the ledger (new, or resumed after a crash) */
    LINE_WAITING,  /* sent; its waiter will answer */
    LINE_COPY,     /* the same key as an earlier line: copies its answer */
};

struct batch_line {
    struct batch *batch;
    enum line_state state;
    int line_no; /* 1-based line of the body */
    enum { LINE_TOPUP, LINE_PURCHASE, LINE_POINTS } kind;
    json_t *body; /* the line without type, member_id, idempotency_key */
    char member_id[INGEST_KEY_MAX];
    char branch_id[INGEST_KEY_MAX];
    char key[INGEST_KEY_MAX];
    char hash[65];
    char command_id[UUID_STR_SIZE];
    struct member_tier tier; /* purchases: the member's tier when checked */
    long copy_of;            /* LINE_COPY: index of the first line with this key */
    int status;
    json_t *result;
    bool record;   /* a verdict to record under the key */
    bool replayed; /* answered from the key's record */
};

struct batch {
    struct req *r;
    int32_t utc_offset_s; /* the tenant's time zone now (purchases' first-day limit) */
    struct batch_line *lines;
    size_t count;
    size_t from, to; /* the chunk of lines being checked, claimed and sent */
    size_t sent;     /* lines handed to the ledger: their waiters hold lines */
    size_t waiting;  /* lines sent without an answer yet, +1 until every chunk is sent */
    struct batch_recorder *recorder; /* the verdicts' answers, recorded as they come */
    /* why batch_parse refused the body (its caller answers it) */
    int refused_status;
    const char *refused_code, *refused_detail;
};

static void line_answer(struct batch_line *l, int status, json_t *result)
{
    l->state = LINE_ANSWERED;
    l->status = status;
    json_decref(l->result);
    l->result = result;
}

static void line_problem(struct batch_line *l, int status, const char *code, const char *detail)
{
    line_answer(l, status,
                json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", HTTP_PROBLEM_TYPE_PREFIX, "title",
                          http_status_title(status), "status", status, "detail", detail, "code",
                          code));
    json_object_set_new(l->result, "type", json_sprintf(HTTP_PROBLEM_TYPE_PREFIX "%s", code));
}

/* Frees b and hands back its request, which the caller ends. */
static struct req *batch_release(struct batch *b)
{
    struct req *r = b->r;
    batch_recorder_finish(b->recorder);
    for (size_t i = 0; i < b->count; i++) {
        json_decref(b->lines[i].body);
        json_decref(b->lines[i].result);
    }
    free(b->lines);
    free(b);
    return r;
}

static void batch_fail(struct batch *b, int status, const char *code, const char *detail)
{
    req_fail(batch_release(b), status, code, detail);
}

static bool batch_refuse(struct batch *b, int status, const char *code, const char *detail)
{
    b->refused_status = status;
    b->refused_code = code;
    b->refused_detail = detail;
    return false;
}

/* ------------------------------------------------------------- parsing */
static const char *take_string(json_t *obj, const char *field, char *out, size_t out_len)
{
    const char *s = json_string_value(json_object_get(obj, field));
    if (!s || !*s || strlen(s) >= out_len)
        return NULL;
    snprintf(out, out_len, "%s", s);
    json_object_del(obj, field);
    return out;
}

/* Decodes and checks one line; on failure the line is answered. */
static void line_parse(struct batch *b, struct batch_line *l, const char *text, size_t len)
{
    json_error_t jerr;
    crypto_hash_sha256_state st;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)"batch\n", 6);
    crypto_hash_sha256_update(&st, (const unsigned char *)text, len);
    crypto_hash_sha256_final(&st, digest);
    sodium_bin2hex(l->hash, sizeof(l->hash), digest, sizeof(digest));

    json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(obj) || http_json_depth(obj, BATCH_JSON_DEPTH_MAX) > BATCH_JSON_DEPTH_MAX) {
        json_decref(obj);
        line_problem(l, 400, "malformed_json", "the line is not a JSON object (or is too deep)");
        return;
    }
    l->body = obj;
    struct validation v;
    validation_init(&v);
    const char *type = json_string_value(json_object_get(obj, "type"));
    bool known = true;
    if (type && strcmp(type, "topup") == 0)
        l->kind = LINE_TOPUP;
    else if (type && strcmp(type, "purchase") == 0)
        l->kind = LINE_PURCHASE;
    else if (type && strcmp(type, "points_adjustment") == 0)
        l->kind = LINE_POINTS;
    else
        known = false;
    if (!known)
        validation_add(&v, "type", "one of topup, purchase, points_adjustment");
    json_object_del(obj, "type");
    if (!take_string(obj, "member_id", l->member_id, sizeof(l->member_id)) ||
        !uuid_is_valid(l->member_id))
        validation_add(&v, "member_id", "required: a member id");
    if (!take_string(obj, "idempotency_key", l->key, sizeof(l->key)))
        validation_add(&v, "idempotency_key", "required: 1 to 127 characters");
    const char *branch = NULL;
    if (l->kind == LINE_POINTS)
        points_check_fields(&v, obj, &branch); /* no branch: the member's home branch */
    else
        commands_check_fields(&v, obj, l->kind == LINE_PURCHASE, &branch);
    if (branch)
        snprintf(l->branch_id, sizeof(l->branch_id), "%s", branch);
    if (!validation_ok(&v)) {
        char detail[512] = "invalid fields:";
        size_t i;
        json_t *e;
        json_array_foreach(v.errors, i, e)
        {
            size_t n = strlen(detail);
            snprintf(detail + n, sizeof(detail) - n, "%s %s", i ? "," : "",
                     json_string_value(json_object_get(e, "field")));
        }
        line_problem(l, 422, "validation_failed", detail);
        json_object_set(l->result, "errors", v.errors);
        validation_free(&v);
        return;
    }
    validation_free(&v);
    if (l->kind == LINE_POINTS && strcmp(b->r->caller.scope, "admin") != 0) {
        line_problem(l, 403, "forbidden", "only an admin key adjusts points");
        return;
    }
    if (!auth_may_use_branch(b->r, l->branch_id)) {
        line_problem(l, 403, "forbidden", "this key acts only for its own branch");
        return;
    }
    l->state = LINE_SEND;
}

/* Lines sharing a key with an earlier line copy its answer (the first
 * line with the key). False when out of memory. */
static bool mark_repeated_keys(struct batch *b)
{
    struct key_index x;
    if (key_index_init(&x, b->count) < 0)
        return false;
    for (size_t i = 0; i < b->count; i++)
        if (b->lines[i].key[0])
            key_index_add(&x, b->lines[i].key, i);
    key_index_sort(&x);
    for (size_t i = 0; i < b->count; i++) {
        struct batch_line *l = &b->lines[i];
        size_t n = 0;
        const struct key_entry *first =
            l->state == LINE_SEND ? key_index_find(&x, l->key, &n) : NULL;
        if (!first || first->pos >= i)
            continue;
        size_t j = first->pos;
        l->state = LINE_COPY;
        l->copy_of = (long)(b->lines[j].state == LINE_COPY ? b->lines[j].copy_of : (long)j);
    }
    key_index_free(&x);
    return true;
}

/* Splits the body into lines; false with b->refused_* for a body-level error. */
static bool batch_parse(struct batch *b, const char *body, size_t len)
{
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += body[i] == '\n';
    lines++;
    if (lines > BATCH_LINES_MAX + 1) {
        return batch_refuse(b, 413, "payload_too_large", "a batch holds at most 10000 lines");
    }
    b->lines = calloc(lines, sizeof(*b->lines));
    if (!b->lines) {
        return batch_refuse(b, 503, "unavailable", "out of memory; retry");
    }
    const char *p = body, *end = body + len;
    int line_no = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        line_no++;
        size_t n = (size_t)(stop - p);
        if (n && p[n - 1] == '\r')
            n--;
        if (n > 0) {
            struct batch_line *l = &b->lines[b->count++];
            *l = (struct batch_line){.batch = b, .line_no = line_no, .copy_of = -1};
            line_parse(b, l, p, n);
        }
        p = nl ? nl + 1 : end;
    }
    if (b->count == 0) {
        return batch_refuse(b, 422, "validation_failed", "the batch holds no lines");
    }
    if (b->count > BATCH_LINES_MAX) {
        return batch_refuse(b, 413, "payload_too_large", "a batch holds at most 10000 lines");
    }
    if (!mark_repeated_keys(b))
        return batch_refuse(b, 503, "unavailable", "out of memory; retry");
    return true;
}

/* ------------------------------------------------------------- answers */
static json_t *line_json(const struct batch_line *l, const struct batch_line *source)
{
    json_t *o = json_pack("{s:i, s:i, s:O}", "line", l->line_no, "status", source->status, "result",
                          source->result ? source->result : json_null());
    if (l->key[0])
        json_object_set_new(o, "idempotency_key", json_string(l->key));
    if (source != l)
        json_object_set_new(o, "repeats_line", json_integer(source->line_no));
    return o;
}

static void batch_reply(struct batch *b);

static void on_audited(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct batch *b = arg;
    if (!res)
        log_fields(LOG_ERROR, "batch audit rows not written", "action", "points.adjust", "error",
                   err ? err : "", NULL);
    batch_reply(b);
}

/* Points adjustments are admin actions: each line sent to the ledger (its
 * verdict, or pending past the wait) gets an audit_log row like a single
 * POST /v1/members/{id}/points-adjustments (audit_verdict_then_answer),
 * all in one statement, written before the batch is answered (a failure
 * is logged and the answer goes out, as for single requests). Repeats and
 * replays were audited when first sent. True when the answer waits for
 * the rows. */
static bool audit_points_lines(struct batch *b)
{
    struct db_array targets, afters;
    db_array_init(&targets), db_array_init(&afters);
    for (size_t i = 0; i < b->count; i++) {
        const struct batch_line *l = &b->lines[i];
        if (l->kind != LINE_POINTS || l->state == LINE_COPY || l->replayed ||
            !(l->record || l->status == 202))
            continue;
        json_t *after =
            json_pack("{s:O, s:i, s:O}", "request", l->body ? l->body : json_null(), "status",
                      l->status, "result", l->result ? l->result : json_null());
        char *text = after ? json_dumps(after, JSON_COMPACT) : NULL;
        json_decref(after);
        db_array_add(&targets, l->member_id);
        db_array_add(&afters, text ? text : "{}");
        free(text);
    }
    bool queued = false;
    if (targets.count > 0) {
        struct req *r = b->r;
        const char *p[5] = {r->caller.tenant_id, r->caller.key_id, http_peer(r->ex),
                            db_array_finish(&targets), db_array_finish(&afters)};
        queued = pg_pool_query(r->app->pg,
                               "INSERT INTO audit_log (tenant_id, actor_key_id, actor_ip, action, "
                               "target, after) SELECT $1, $2, $3, 'points.adjust', t, a::jsonb "
                               "FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS u(t, a, n) "
                               "ORDER BY n",
                               5, p, on_audited, b) == 0;
        if (!queued)
            log_fields(LOG_ERROR, "batch audit rows not written", "action", "points.adjust",
                       "error", "queue full", NULL);
    }
    db_array_free(&targets), db_array_free(&afters);
    return queued;
}

static void batch_after_pending(struct batch *b)
{
    if (!audit_points_lines(b))
        batch_reply(b);
}

static void on_pending_recorded(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    if (!res)
        log_fields(LOG_WARN, "the batch's 202 lines were not recorded", "error", err ? err : "",
                   NULL);
    batch_after_pending(arg);
}

/* Lines answered 202 are recorded before the answer, like single requests
 * (operations_record_pending), so any instance answers their operation
 * pending. True when the answer waits for the rows. */
static bool record_pending_lines(struct batch *b)
{
    struct db_array ids;
    db_array_init(&ids);
    for (size_t i = 0; i < b->count; i++) {
        const struct batch_line *l = &b->lines[i];
        if (l->state != LINE_COPY && !l->record && l->status == 202)
            db_array_add(&ids, l->command_id);
    }
    bool queued = false;
    if (ids.count > 0) {
        queued = operations_record_pending_many(b->r->app, b->r->caller.tenant_id,
                                                db_array_finish(&ids), on_pending_recorded, b) == 0;
        if (!queued)
            log_warn("could not queue the batch's 202 lines");
    }
    db_array_free(&ids);
    return queued;
}

static void batch_finish(struct batch *b)
{
    batch_recorder_finish(b->recorder); /* the last chunk */
    b->recorder = NULL;
    if (!record_pending_lines(b))
        batch_after_pending(b);
}

static void batch_reply(struct batch *b)
{
    json_t *results = json_array();
    long posted = 0, rejected = 0, replayed = 0, pending = 0, refused = 0;
    for (size_t i = 0; i < b->count; i++) {
        const struct batch_line *l = &b->lines[i];
        const struct batch_line *src = l->state == LINE_COPY ? &b->lines[l->copy_of] : l;
        json_array_append_new(results, line_json(l, src));
        if (src != l || src->replayed)
            replayed++;
        else if (src->record && src->status == 201)
            posted++;
        else if (src->record)
            rejected++;
        else if (src->status == 202)
            pending++;
        else
            refused++;
    }
    json_t *answer = json_pack("{s:o, s:{s:i, s:I, s:I, s:I, s:I, s:I}}", "results", results,
                               "summary", "lines", (int)b->count, "posted", (json_int_t)posted,
                               "rejected", (json_int_t)rejected, "replayed", (json_int_t)replayed,
                               "pending", (json_int_t)pending, "refused", (json_int_t)refused);
    req_finish(batch_release(b), 200, answer);
}

static void line_done(void *arg, enum wait_outcome outcome, const Envelope *verdict)
{
    struct batch_line *l = arg;
    struct batch *b = l->batch;
    if (outcome == WAIT_VERDICT) {
        json_t *body = NULL;
        int status = verdict_to_response(verdict, &body);
        line_answer(l, status, body);
        l->record = true;
        batch_recorder_add(b->recorder, l->key, status, body);
    } else if (outcome == WAIT_TIMEOUT) {
        line_answer(l, 202,
                    json_pack("{s:s, s:s}", "operation_id", l->command_id, "status", "pending"));
    } else {
        line_problem(l, 503, "unavailable", "the ledger cannot be reached; retry the line");
    }
    if (--b->waiting == 0)
        batch_finish(b);
}

/* ---------------------------------------------------------- the steps */
static void next_chunk(struct batch *b);

/* Sends the chunk's lines, then goes on to the next chunk. */
static void send_lines(struct batch *b)
{
    struct req *r = b->r;
    for (size_t i = b->from; i < b->to; i++) {
        struct batch_line *l = &b->lines[i];
        if (l->state != LINE_SEND)
            continue;
        size_t len = 0;
        rd_kafka_headers_t *headers = NULL;
        uint8_t *cmd = l->kind == LINE_POINTS
                           ? points_encode(&r->caller, l->member_id, l->branch_id, l->command_id,
                                           r->traceparent, l->body, &len, &headers)
                           : commands_encode(&r->caller, l->member_id, l->branch_id, l->command_id,
                                             r->traceparent, l->body, &l->tier, b->utc_offset_s,
                                             &len, &headers);
        if (!cmd) {
            line_problem(l, 413, "payload_too_large", "the command is too large");
            continue;
        }
        b->waiting++;
        b->sent++;
        l->state = LINE_WAITING;
        int rc = waiter_send(r->app, l->command_id, l->member_id, cmd, len, headers, r->wait_ms,
                             line_done, l);
        free(cmd);
        if (rc < 0) {
            b->waiting--;
            b->sent--;
            if (rc == -1)
                line_problem(l, 409, "request_in_progress",
                             "a request with this key is still in progress");
            else
                line_problem(l, 503, "unavailable", "the ledger cannot be reached; retry");
        }
    }
    next_chunk(b);
}

/* A chunk's statement failed. Before any line was sent the whole batch
 * is refused, as it always was; after, the sent lines are waited for and
 * every line not yet sent gets the problem as its answer. */
static void chunk_fail(struct batch *b, int status, const char *code, const char *detail)
{
    if (b->sent == 0) {
        batch_fail(b, status, code, detail);
        return;
    }
    for (size_t i = b->from; i < b->count; i++)
        if (b->lines[i].state == LINE_SEND)
            line_problem(&b->lines[i], status, code, detail);
    b->from = b->to = b->count;
    next_chunk(b);
}

/* The lines still to send, by key (at most one a key: repeats are
 * LINE_COPY). -1 when out of memory. */
static int index_sendable(const struct batch *b, struct key_index *x)
{
    if (key_index_init(x, b->to - b->from) < 0)
        return -1;
    for (size_t i = b->from; i < b->to; i++)
        if (b->lines[i].state == LINE_SEND)
            key_index_add(x, b->lines[i].key, i);
    key_index_sort(x);
    return 0;
}

static struct batch_line *line_by_key(struct batch *b, const struct key_index *x, const char *key)
{
    size_t n = 0;
    const struct key_entry *e = key_index_find(x, key, &n);
    for (size_t k = 0; k < n; k++)
        if (b->lines[e[k].pos].state == LINE_SEND)
            return &b->lines[e[k].pos];
    return NULL;
}

/* Keys someone had before: replay their answer, refuse a different
 * request, or resume the command they became. */
static void on_known_keys(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct batch *b = arg;
    if (!res) {
        chunk_fail(b, 503, "unavailable", "the database is unavailable");
        return;
    }
    struct key_index x;
    if (index_sendable(b, &x) < 0) {
        chunk_fail(b, 503, "unavailable", "out of memory; retry");
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        struct batch_line *l = line_by_key(b, &x, PQgetvalue(res, i, 0));
        if (!l)
            continue;
        if (strcmp(PQgetvalue(res, i, 1), l->hash) != 0)
            line_problem(l, 422, "idempotency_key_reused",
                         "this idempotency_key was used with a different line");
        else if (!PQgetisnull(res, i, 3)) {
            line_answer(l, atoi(PQgetvalue(res, i, 3)), json_loads(PQgetvalue(res, i, 4), 0, NULL));
            l->replayed = true;
        } else
            snprintf(l->command_id, sizeof(l->command_id), "%s", PQgetvalue(res, i, 2));
    }
    key_index_free(&x);
    send_lines(b);
}

static void on_claimed(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct batch *b = arg;
    if (!res) {
        chunk_fail(b, 503, "unavailable", "the database is unavailable");
        return;
    }
    /* Claimed keys are ours: send. The others were known before. */
    bool *claimed = calloc(b->count + 1, sizeof(*claimed));
    struct key_index x = {0};
    if (!claimed || index_sendable(b, &x) < 0) {
        free(claimed);
        key_index_free(&x);
        /* The keys stay claimed without an answer: a retry of the batch
         * sends their lines under the same command ids, as after a crash
         * here. */
        chunk_fail(b, 503, "unavailable", "out of memory; retry");
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        struct batch_line *l = line_by_key(b, &x, PQgetvalue(res, i, 0));
        if (l)
            claimed[l - b->lines] = true;
    }
    key_index_free(&x);
    struct db_array known;
    db_array_init(&known);
    for (size_t i = b->from; i < b->to; i++)
        if (b->lines[i].state == LINE_SEND && !claimed[i])
            db_array_add(&known, b->lines[i].key);
    free(claimed);
    if (known.count == 0) {
        db_array_free(&known);
        send_lines(b);
        return;
    }
    const char *p[2] = {b->r->caller.tenant_id, db_array_finish(&known)};
    int rc = pg_pool_query(b->r->app->pg,
                           "SELECT idempotency_key, request_hash, coalesce(command_id, ''), "
                           "response_status, response_body FROM idempotency_keys "
                           "WHERE tenant_id = $1 AND idempotency_key = ANY($2::text[])",
                           2, p, on_known_keys, b);
    db_array_free(&known);
    if (rc < 0) {
        chunk_fail(b, 503, "unavailable", "the database is busy; retry");
    }
}

/* Claims every new key with one statement; each line gets a fresh
 * command id, replaced by the stored one when its key was known. */
static void claim_keys(struct batch *b)
{
    struct db_array keys, hashes, ids;
    db_array_init(&keys), db_array_init(&hashes), db_array_init(&ids);
    for (size_t i = b->from; i < b->to; i++) {
        struct batch_line *l = &b->lines[i];
        if (l->state != LINE_SEND)
            continue;
        uuid7_generate(l->command_id);
        db_array_add(&keys, l->key);
        db_array_add(&hashes, l->hash);
        db_array_add(&ids, l->command_id);
    }
    if (keys.count == 0) {
        db_array_free(&keys), db_array_free(&hashes), db_array_free(&ids);
        send_lines(b);
        return;
    }
    const char *p[4] = {b->r->caller.tenant_id, db_array_finish(&keys), db_array_finish(&hashes),
                        db_array_finish(&ids)};
    int rc = pg_pool_query(b->r->app->pg,
                           "INSERT INTO idempotency_keys (tenant_id, idempotency_key, "
                           "request_hash, command_id) SELECT $1, k, h, c FROM "
                           "unnest($2::text[], $3::text[], $4::text[]) AS u(k, h, c) "
                           "ON CONFLICT DO NOTHING RETURNING idempotency_key",
                           4, p, on_claimed, b);
    db_array_free(&keys), db_array_free(&hashes), db_array_free(&ids);
    if (rc < 0) {
        chunk_fail(b, 503, "unavailable", "the database is busy; retry");
    }
}

/* The row of kind ('m' member, 'b' branch) and value, or -1; x indexes
 * the rows by value (index_rows). */
static int find_row(PGresult *res, const struct key_index *x, const char *kind, const char *value)
{
    size_t n = 0;
    const struct key_entry *e = key_index_find(x, value, &n);
    for (size_t k = 0; k < n; k++)
        if (strcmp(PQgetvalue(res, (int)e[k].pos, 0), kind) == 0)
            return (int)e[k].pos;
    return -1;
}

static int index_rows(PGresult *res, struct key_index *x)
{
    if (key_index_init(x, (size_t)PQntuples(res)) < 0)
        return -1;
    for (int i = 0; i < PQntuples(res); i++)
        key_index_add(x, PQgetvalue(res, i, 1), (size_t)i);
    key_index_sort(x);
    return 0;
}

static void on_checked(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct batch *b = arg;
    if (!res) {
        chunk_fail(b, 503, "unavailable", "the database is unavailable");
        return;
    }
    struct key_index x;
    if (index_rows(res, &x) < 0) {
        chunk_fail(b, 503, "unavailable", "out of memory; retry");
        return;
    }
    for (int i = 0; i < PQntuples(res); i++)
        if (strcmp(PQgetvalue(res, i, 0), "z") == 0)
            b->utc_offset_s = (int32_t)strtol(PQgetvalue(res, i, 1), NULL, 10);
    for (size_t i = b->from; i < b->to; i++) {
        struct batch_line *l = &b->lines[i];
        if (l->state != LINE_SEND)
            continue;
        int member = find_row(res, &x, "m", l->member_id);
        if (member >= 0 && !l->branch_id[0]) /* points without a branch: the home branch */
            snprintf(l->branch_id, sizeof(l->branch_id), "%s", PQgetvalue(res, member, 2));
        if (member >= 0 && l->kind == LINE_PURCHASE)
            tier_from_row(&l->tier, res, member, 3);
        if (member < 0)
            line_problem(l, 404, "not_found", "no such member");
        else if (find_row(res, &x, "b", l->branch_id) < 0)
            line_problem(l, 422, "validation_failed", "invalid fields: branch_id (no such branch)");
    }
    key_index_free(&x);
    claim_keys(b);
}

/* clang-format off */
static const char check_sql[] =
    "SELECT 'm', m.member_id, m.branch_id, t.name, t.rank, "
    "t.discount_bp, t.points_multiplier_bp FROM members m "
    "LEFT JOIN tiering.read_member_tiers t ON t.tenant_id = m.tenant_id "
    "AND t.member_id = m.member_id "
    "WHERE m.tenant_id = $1 AND m.member_id = ANY($2::text[]) "
    "UNION ALL SELECT 'b', branch_id, '', NULL, NULL, NULL, NULL "
    "FROM branches WHERE tenant_id = $1 "
    "UNION ALL SELECT 'z', " TENANT_UTC_OFFSET_SQL("time_zone", "$3") "::text, '', NULL, "
    "NULL, NULL, NULL FROM tenants WHERE tenant_id = $1";
/* clang-format on */

/* Which of the batch's members exist, with their tiers (tiering's table:
 * the whole batch in the same single statement, where the cache would
 * cost a round trip of its own), the tenant's branches and its UTC offset
 * now (the first-day limit's local day), in one round trip. */
static void check_members(struct batch *b)
{
    struct db_array members;
    db_array_init(&members);
    for (size_t i = b->from; i < b->to; i++)
        if (b->lines[i].state == LINE_SEND)
            db_array_add(&members, b->lines[i].member_id);
    char now_us[24];
    snprintf(now_us, sizeof(now_us), "%lld", (long long)clock_now_us());
    const char *p[3] = {b->r->caller.tenant_id, db_array_finish(&members), now_us};
    int rc = pg_pool_query(b->r->app->pg, check_sql, 3, p, on_checked, b);
    db_array_free(&members);
    if (rc < 0) {
        chunk_fail(b, 503, "unavailable", "the database is busy; retry");
    }
}

/* Checks, claims and sends the next chunk of lines; after the last, the
 * batch is answered once every sent line is. */
static void next_chunk(struct batch *b)
{
    b->from = b->to;
    if (b->from >= b->count) {
        if (--b->waiting == 0)
            batch_finish(b);
        return;
    }
    b->to = b->from + BATCH_CHUNK_LINES < b->count ? b->from + BATCH_CHUNK_LINES : b->count;
    check_members(b);
}

static void batch_start(struct batch *b)
{
    b->recorder = batch_recorder_new(b->r->app, b->r->caller.tenant_id);
    if (!b->recorder)
        log_warn("out of memory: the batch's answers will not be recorded");
    b->waiting = 1; /* held until every chunk is sent */
    b->from = b->to = 0;
    next_chunk(b);
}

static bool ndjson_content_type(const char *ct)
{
    static const char *const accepted[] = {"application/x-ndjson", "application/jsonl",
                                           "application/json-seq", NULL};
    if (!ct)
        return true;
    for (const char *const *a = accepted; *a; a++)
        if (strncasecmp(ct, *a, strlen(*a)) == 0)
            return true;
    return false;
}

static void batch_authenticated(struct req *r)
{
    if (strcmp(r->caller.scope, "admin") != 0 && strcmp(r->caller.scope, "pos") != 0) {
        req_fail(r, 403, "forbidden", "this key may not move money");
        return;
    }
    if (!ndjson_content_type(http_header(r->ex, "Content-Type"))) {
        req_fail(r, 415, "unsupported_media_type",
                 "send one JSON object per line as application/x-ndjson");
        return;
    }
    size_t len = 0;
    const char *body = (const char *)http_body(r->ex, &len);
    if (len > BATCH_BODY_MAX_BYTES) {
        req_fail(r, 413, "payload_too_large", "a batch body is at most 8 MiB");
        return;
    }
    /* A batch waits as long as allowed unless it asks for less. */
    r->wait_ms = INGEST_WAIT_MAX_MS;
    commands_read_prefer_wait(r);
    struct batch *b = calloc(1, sizeof(*b));
    assert(b);
    b->r = r;
    if (!batch_parse(b, body ? body : "", len)) {
        batch_fail(b, b->refused_status, b->refused_code, b->refused_detail);
        return;
    }
    batch_start(b);
}

void batch_post(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), batch_authenticated);
}
