/* GET /v1/members/{id}/inbox (staff) and GET /v1/me/inbox (the member's
 * session): the member's in-app messages, newest first, with the unread
 * count, read from notification.read_inbox (the notification service
 * writes the inbox; ingest only reads its published view). Pages are
 * keyed by (created_us, message_id); the cursor is that key, opaque to
 * clients: base64url of "<created_us>.<message_id>". */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/validate.h"
#include "ingest.h"

#define INBOX_LIMIT_DEFAULT   20
#define INBOX_LIMIT_MAX       100
#define INBOX_CURSOR_TEXT_MAX 128
#define INBOX_MESSAGE_ID_MAX  64

/* The page asked for: limit and the key the page starts after. */
struct inbox_page {
    long long limit;
    char before_us[24];
    char before_id[INBOX_MESSAGE_ID_MAX + 1];
};

static void cursor_encode(const char *created_us, const char *message_id, char *out)
{
    char raw[24 + INBOX_MESSAGE_ID_MAX + 2];
    snprintf(raw, sizeof(raw), "%s.%s", created_us, message_id);
    sodium_bin2base64(out, INBOX_CURSOR_TEXT_MAX, (const unsigned char *)raw, strlen(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static bool cursor_decode(const char *text, struct inbox_page *page)
{
    char raw[INBOX_CURSOR_TEXT_MAX];
    size_t len = 0;
    if (strlen(text) >= INBOX_CURSOR_TEXT_MAX ||
        sodium_base642bin((unsigned char *)raw, sizeof(raw) - 1, text, strlen(text), NULL, &len,
                          NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return false;
    raw[len] = '\0';
    char *dot = strchr(raw, '.');
    if (!dot || dot == raw || (size_t)(dot - raw) >= sizeof(page->before_us) ||
        strspn(raw, "0123456789") != (size_t)(dot - raw) || strlen(dot + 1) == 0 ||
        strlen(dot + 1) > INBOX_MESSAGE_ID_MAX ||
        strspn(dot + 1, "0123456789abcdef") != strlen(dot + 1))
        return false;
    memcpy(page->before_us, raw, (size_t)(dot - raw));
    page->before_us[dot - raw] = '\0';
    snprintf(page->before_id, sizeof(page->before_id), "%s", dot + 1);
    return true;
}

/* Reads limit and cursor into page; answers 422 naming each bad one. */
static bool inbox_params(struct req *r, struct inbox_page *page)
{
    struct validation v;
    validation_init(&v);
    const char *limit = http_query(r->ex, "limit"), *cursor = http_query(r->ex, "cursor");
    *page = (struct inbox_page){.limit = INBOX_LIMIT_DEFAULT};
    if (limit) {
        char *end = NULL;
        page->limit = strtoll(limit, &end, 10);
        if (!*limit || *end || page->limit < 1 || page->limit > INBOX_LIMIT_MAX)
            validation_add(&v, "limit", "an integer from 1 to 100");
    }
    if (cursor && !cursor_decode(cursor, page))
        validation_add(&v, "cursor", "not a cursor this API gave");
    return req_validated(r, &v);
}

static json_t *inbox_entry(const PGresult *res, int i)
{
    char at[32];
    event_format_time(strtoll(PQgetvalue(res, i, 5), NULL, 10), at);
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s}", "message_id", PQgetvalue(res, i, 1),
                          "template", PQgetvalue(res, i, 2), "title", PQgetvalue(res, i, 3), "body",
                          PQgetvalue(res, i, 4), "created_at", at);
    if (PQgetisnull(res, i, 6)) {
        json_object_set_new(e, "read_at", json_null());
    } else {
        event_format_time(strtoll(PQgetvalue(res, i, 6), NULL, 10), at);
        json_object_set_new(e, "read_at", json_string(at));
    }
    return e;
}

static void on_page(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    struct inbox_page page;
    if (!inbox_params(r, &page)) /* checked before: cannot fail now */
        return;
    int rows = PQntuples(res);
    long long unread = rows > 0 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    /* the LEFT JOIN gives one row of NULLs for an empty inbox */
    int real = rows == 1 && PQgetisnull(res, 0, 1) ? 0 : rows;
    bool more = real > page.limit;
    int shown = more ? (int)page.limit : real;
    json_t *messages = json_array();
    for (int i = 0; i < shown; i++)
        json_array_append_new(messages, inbox_entry(res, i));
    json_t *next = json_null();
    if (more) {
        char cursor[INBOX_CURSOR_TEXT_MAX];
        cursor_encode(PQgetvalue(res, shown - 1, 5), PQgetvalue(res, shown - 1, 1), cursor);
        next = json_string(cursor);
    }
    req_finish(r, 200,
               json_pack("{s:s, s:I, s:o, s:o}", "member_id", r->member_id, "unread",
                         (json_int_t)unread, "messages", messages, "next_cursor", next));
}

/* One statement: the unread count and the page (one row past it says
 * there is a next one). */
static void query_page(struct req *r)
{
    struct inbox_page page;
    if (!inbox_params(r, &page))
        return;
    char limit[24];
    snprintf(limit, sizeof(limit), "%lld", page.limit + 1);
    const char *p[5] = {r->caller.tenant_id, r->member_id,
                        page.before_us[0] ? page.before_us : NULL, page.before_id, limit};
    if (pg_pool_query(
            r->app->pg,
            "WITH u AS (SELECT count(*) AS n FROM notification.read_inbox WHERE tenant_id = $1 "
            "AND member_id = $2 AND read_us IS NULL) "
            "SELECT u.n, m.message_id, m.template, m.title, m.body, m.created_us, m.read_us "
            "FROM u LEFT JOIN LATERAL (SELECT * FROM notification.read_inbox i "
            " WHERE i.tenant_id = $1 AND i.member_id = $2 AND ($3::bigint IS NULL OR "
            " (i.created_us, i.message_id) < ($3::bigint, $4)) "
            " ORDER BY i.created_us DESC, i.message_id DESC LIMIT $5::bigint) m ON true",
            5, p, on_page, r) < 0)
        req_fail_db(r, "queue full");
}

static void on_member(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (req_member_exists(r, res, err))
        query_page(r);
}

static void staff_authenticated(struct req *r)
{
    struct inbox_page page;
    if (!req_member_from_path(r) || !inbox_params(r, &page))
        return;
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 "
                      "AND member_id = $2)",
                      2, p, on_member, r) < 0)
        req_fail_db(r, "queue full");
}

void inbox_get(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), staff_authenticated);
}

/* The session names the member: no path, no existence check. */
void inbox_get_mine(struct http_exchange *ex, void *app)
{
    member_session_then(req_new(app, ex), query_page);
}
