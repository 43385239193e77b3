/* GET /v1/members/{id}/ledger?limit=&cursor=: the member's journal lines,
 * newest first, each with the reason, command, branch and actor that
 * explain it. Pages are keyed by line id (journal_member_idx serves them
 * in order); the cursor is that key, opaque to clients: base64url of a
 * version byte and the last line id of the page. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/validate.h"
#include "ingest.h"

#define HISTORY_LIMIT_DEFAULT   50
#define HISTORY_LIMIT_MAX       500
#define HISTORY_CURSOR_VERSION  1
#define HISTORY_CURSOR_BYTES    9
#define HISTORY_CURSOR_TEXT_MAX 32

static void cursor_encode(long long line_id, char out[HISTORY_CURSOR_TEXT_MAX])
{
    unsigned char raw[HISTORY_CURSOR_BYTES] = {HISTORY_CURSOR_VERSION};
    for (int i = 0; i < 8; i++)
        raw[1 + i] = (unsigned char)((unsigned long long)line_id >> (56 - 8 * i));
    sodium_bin2base64(out, HISTORY_CURSOR_TEXT_MAX, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static bool cursor_decode(const char *text, long long *line_id)
{
    unsigned char raw[HISTORY_CURSOR_BYTES];
    size_t len = 0;
    if (strlen(text) >= HISTORY_CURSOR_TEXT_MAX ||
        sodium_base642bin(raw, sizeof(raw), text, strlen(text), NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        len != sizeof(raw) || raw[0] != HISTORY_CURSOR_VERSION)
        return false;
    unsigned long long v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | raw[1 + i];
    *line_id = (long long)v;
    return *line_id > 0;
}

/* Reads limit and cursor; answers 422 naming each bad one. */
static bool history_params(struct req *r)
{
    struct validation v;
    validation_init(&v);
    const char *limit = http_query(r->ex, "limit"), *cursor = http_query(r->ex, "cursor");
    struct req_list *page = req_list_of(r);
    page->limit = HISTORY_LIMIT_DEFAULT;
    page->before_id = 0;
    if (limit) {
        char *end = NULL;
        page->limit = strtoll(limit, &end, 10);
        if (!*limit || *end || page->limit < 1 || page->limit > HISTORY_LIMIT_MAX)
            validation_add(&v, "limit", "an integer from 1 to 500");
    }
    if (cursor && !cursor_decode(cursor, &page->before_id))
        validation_add(&v, "cursor", "not a cursor this API gave");
    if (!req_validated(r, &v))
        return false;
    return true;
}

static json_t *history_entry(const PGresult *res, int i)
{
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "posting_id",
                          PQgetvalue(res, i, 1), "operation_id", PQgetvalue(res, i, 2), "type",
                          PQgetvalue(res, i, 3), "asset", PQgetvalue(res, i, 5), "amount",
                          (json_int_t)strtoll(PQgetvalue(res, i, 6), NULL, 10), "reason",
                          PQgetvalue(res, i, 7), "created_at", PQgetvalue(res, i, 9));
    json_object_set_new(e, "branch_id",
                        PQgetisnull(res, i, 4) ? json_null() : json_string(PQgetvalue(res, i, 4)));
    json_object_set_new(e, "actor",
                        PQgetisnull(res, i, 8) || !*PQgetvalue(res, i, 8)
                            ? json_null()
                            : json_string(PQgetvalue(res, i, 8)));
    return e;
}

static void on_lines(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    int rows = PQntuples(res);
    const struct req_list *page = req_list_of(r);
    bool more = rows > page->limit; /* one row past the page says there is a next one */
    int shown = more ? (int)page->limit : rows;
    json_t *entries = json_array();
    for (int i = 0; i < shown; i++)
        json_array_append_new(entries, history_entry(res, i));
    json_t *next = json_null();
    if (more) {
        char cursor[HISTORY_CURSOR_TEXT_MAX];
        cursor_encode(strtoll(PQgetvalue(res, shown - 1, 0), NULL, 10), cursor);
        next = json_string(cursor);
    }
    req_finish(r, 200,
               json_pack("{s:s, s:o, s:o}", "member_id", r->member_id, "entries", entries,
                         "next_cursor", next));
}

static void on_member(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!req_member_exists(r, res, err))
        return;
    const struct req_list *page = req_list_of(r);
    char before[24], limit[24];
    snprintf(before, sizeof(before), "%lld", page->before_id);
    snprintf(limit, sizeof(limit), "%lld", page->limit + 1);
    const char *p[4] = {r->caller.tenant_id, r->member_id, page->before_id ? before : NULL, limit};
    if (pg_pool_query(
            r->app->pg,
            "SELECT j.line_id, j.posting_id, j.command_id, coalesce(c.command_type, ''), "
            "j.branch_id, j.asset, j.amount, j.reason, j.actor, "
            "to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
            "FROM ledger.read_journal j LEFT JOIN ledger.read_commands c "
            "ON c.tenant_id = j.tenant_id AND c.command_id = j.command_id "
            "WHERE j.tenant_id = $1 AND j.member_id = $2 "
            "AND ($3::bigint IS NULL OR j.line_id < $3::bigint) "
            "ORDER BY j.line_id DESC LIMIT $4::bigint",
            4, p, on_lines, r) < 0)
        req_fail_db(r, "queue full");
}

static void history_authenticated(struct req *r)
{
    if (!req_member_from_path(r))
        return;
    if (!history_params(r))
        return;
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 "
                      "AND member_id = $2)",
                      2, p, on_member, r) < 0)
        req_fail_db(r, "queue full");
}

void history_get(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), history_authenticated);
}
