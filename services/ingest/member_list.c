/* GET /v1/members without phone=: a tenant's members, filtered and paged.
 *
 * Filters (all optional, combined with AND): member_no (exact), email
 * (through its keyed blind index: the database never sees the address),
 * tier (the tier's name, from tiering's published view read_member_tiers,
 * never its tables), branch_id (the home branch), registered_from /
 * registered_to (RFC 3339 or a date, UTC; from inclusive, to exclusive)
 * and tag. Pages go in member id order (UUIDv7: registration order) and
 * the cursor is the last id of a page, opaque to clients (base64url of a
 * version byte and the id), so paging visits every member exactly once
 * however the pages are cut; members registered meanwhile come last.
 *
 * A pos key lists only its own branch's members (a till has no business
 * paging through the whole member base): without branch_id it gets its
 * branch, with another one 403 forbidden.
 *
 * `GET /v1/members?phone=` stays the exact look-up answering one member
 * (members.c). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datetime/datetime.h"
#include "http/validate.h"
#include "ingest.h"
#include "log/log.h"

#define LIST_LIMIT_DEFAULT   50
#define LIST_LIMIT_MAX       500
#define LIST_CURSOR_VERSION  1
#define LIST_CURSOR_ID_MAX   64  /* bytes of a member id in a cursor */
#define LIST_CURSOR_TEXT_MAX 128 /* base64url of the version byte and the id */
#define LIST_FILTER_MAX      127 /* bytes of member_no, tier, branch_id */
#define LIST_PARAMS          13

static void cursor_encode(const char *member_id, char out[LIST_CURSOR_TEXT_MAX])
{
    unsigned char raw[1 + LIST_CURSOR_ID_MAX] = {LIST_CURSOR_VERSION};
    size_t len = strlen(member_id);
    if (len > LIST_CURSOR_ID_MAX)
        len = LIST_CURSOR_ID_MAX; /* ids are UUIDs: never */
    memcpy(raw + 1, member_id, len);
    sodium_bin2base64(out, LIST_CURSOR_TEXT_MAX, raw, 1 + len,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static bool cursor_decode(const char *text, char id[LIST_CURSOR_ID_MAX + 1])
{
    unsigned char raw[1 + LIST_CURSOR_ID_MAX];
    size_t len = 0;
    if (strlen(text) >= LIST_CURSOR_TEXT_MAX ||
        sodium_base642bin(raw, sizeof(raw), text, strlen(text), NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        len < 2 || raw[0] != LIST_CURSOR_VERSION)
        return false;
    memcpy(id, raw + 1, len - 1);
    id[len - 1] = '\0';
    return uuid_is_valid(id);
}

/* registered_from / registered_to: a date (midnight UTC) or RFC 3339, as
 * microseconds in text for the query. */
static void time_filter(struct validation *v, struct req *r, const char *name, char out[24],
                        const char **param)
{
    const char *text = http_query(r->ex, name);
    int64_t us = 0;
    int y, m, d;
    *param = NULL;
    if (!text)
        return;
    if (datetime_parse_date(text, &y, &m, &d))
        us = datetime_days_from_civil(y, m, d) * 86400LL * 1000000LL;
    else if (!datetime_parse_rfc3339_us(text, &us)) {
        validation_add(v, name, "must be a date YYYY-MM-DD or an RFC 3339 time");
        return;
    }
    snprintf(out, 24, "%lld", (long long)us);
    *param = out;
}

/* A filter given as text of at most LIST_FILTER_MAX bytes (NULL: none). */
static const char *text_filter(struct validation *v, struct req *r, const char *name)
{
    const char *text = http_query(r->ex, name);
    if (text && (!*text || strlen(text) > LIST_FILTER_MAX || !members_text_utf8(text))) {
        validation_add(v, name, "must be 1 to 127 bytes of UTF-8");
        return NULL;
    }
    return text;
}

struct list_query {
    const char *p[LIST_PARAMS];
    char limit[24], from[24], to[24], after[LIST_CURSOR_ID_MAX + 1];
    char email[PII_BLIND_INDEX_HEX_BYTES], email_previous[PII_BLIND_INDEX_HEX_BYTES];
};

static void email_filter(struct validation *v, struct req *r, struct list_query *q)
{
    const char *email = http_query(r->ex, "email");
    if (!email)
        return;
    if (strlen(email) < 3 || strlen(email) > MEMBER_EMAIL_MAX || !strchr(email, '@')) {
        validation_add(v, "email", "must be an email address");
        return;
    }
    if (!members_email_indexes(r->app, r->caller.tenant_id, email, q->email, q->email_previous)) {
        validation_add(v, "email", "cannot be indexed with the keys at hand");
        return;
    }
    q->p[2] = q->email;
    q->p[3] = q->email_previous[0] ? q->email_previous : NULL;
}

/* Reads every filter into q; false after answering 422 naming each bad one. */
static bool list_params(struct req *r, struct list_query *q)
{
    struct validation v;
    validation_init(&v);
    struct req_list *page = req_list_of(r);
    const char *limit = http_query(r->ex, "limit"), *cursor = http_query(r->ex, "cursor");
    page->limit = LIST_LIMIT_DEFAULT;
    if (limit) {
        char *end = NULL;
        page->limit = strtoll(limit, &end, 10);
        if (!*limit || *end || page->limit < 1 || page->limit > LIST_LIMIT_MAX)
            validation_add(&v, "limit", "an integer from 1 to 500");
    }
    if (cursor && !cursor_decode(cursor, q->after))
        validation_add(&v, "cursor", "not a cursor this API gave");
    const char *tag = http_query(r->ex, "tag");
    if (tag && !member_tag_ok(tag))
        validation_add(&v, "tag", MEMBER_TAG_RULE);
    q->p[0] = r->caller.tenant_id;
    q->p[1] = text_filter(&v, r, "member_no");
    email_filter(&v, r, q);
    q->p[4] = text_filter(&v, r, "branch_id");
    time_filter(&v, r, "registered_from", q->from, &q->p[5]);
    time_filter(&v, r, "registered_to", q->to, &q->p[6]);
    q->p[7] = text_filter(&v, r, "tier");
    q->p[8] = tag;
    q->p[9] = cursor ? q->after : NULL;
    snprintf(q->limit, sizeof(q->limit), "%lld", page->limit + 1); /* one more: is there a next? */
    q->p[10] = q->limit;
    return req_validated(r, &v);
}

/* Columns of LIST_SQL. */
enum {
    L_ID,
    L_NO,
    L_VERSION,
    L_NAME,
    L_PHONE,
    L_NAME_ENC,
    L_PHONE_ENC,
    L_BRANCH,
    L_CREATED,
    L_TIER,
    L_RANK,
    L_TAGS,
    L_ERASED
};

static const char LIST_SQL[] =
    "SELECT m.member_id, m.member_no, m.pii_key_version, m.name, m.phone, m.name_enc, "
    "m.phone_enc, m.branch_id, to_char(m.created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), NULLIF(t.name, ''), t.rank, "
    "(SELECT coalesce(json_agg(g.tag ORDER BY g.tag), '[]') FROM member_tags g "
    "WHERE g.tenant_id = m.tenant_id AND g.member_id = m.member_id), "
    "m.personal_data_erased_at IS NOT NULL "
    "FROM members m LEFT JOIN tiering.read_member_tiers t "
    "ON t.tenant_id = m.tenant_id AND t.member_id = m.member_id "
    "WHERE m.tenant_id = $1 AND ($2::text IS NULL OR m.member_no = $2) "
    "AND ($3::bytea IS NULL OR m.email_bidx IN ($3::bytea, $4::bytea)) "
    "AND ($5::text IS NULL OR m.branch_id = $5) "
    "AND ($6::bigint IS NULL OR m.created_at >= to_timestamp($6::bigint / 1e6)) "
    "AND ($7::bigint IS NULL OR m.created_at < to_timestamp($7::bigint / 1e6)) "
    "AND ($8::text IS NULL OR t.name = $8) "
    "AND ($9::text IS NULL OR EXISTS (SELECT 1 FROM member_tags g WHERE g.tenant_id = $1 "
    "AND g.member_id = m.member_id AND g.tag = $9)) "
    "AND ($10::text IS NULL OR m.member_id > $10) "
    "ORDER BY m.member_id LIMIT $11::int";

/* One personal field of row i in the clear (legacy column at version 0). */
static json_t *row_pii(struct req *r, const PGresult *res, int i, int plain, int sealed,
                       const char *field, bool *ok)
{
    int version = atoi(PQgetvalue(res, i, L_VERSION));
    if (version == 0)
        return PQgetisnull(res, i, plain) ? json_null() : json_string(PQgetvalue(res, i, plain));
    if (PQgetisnull(res, i, sealed))
        return json_null();
    char *clear = pii_open(&r->app->pii, version, r->caller.tenant_id, PQgetvalue(res, i, L_ID),
                           field, PQgetvalue(res, i, sealed));
    *ok = *ok && clear;
    json_t *v = clear ? json_string(clear) : json_null();
    if (clear)
        sodium_memzero(clear, strlen(clear));
    free(clear);
    return v;
}

static json_t *row_json(struct req *r, const PGresult *res, int i, bool *ok)
{
    json_t *tier = PQgetisnull(res, i, L_TIER)
                       ? json_null()
                       : json_pack("{s:s, s:i}", "name", PQgetvalue(res, i, L_TIER), "rank",
                                   atoi(PQgetvalue(res, i, L_RANK)));
    json_t *tags = json_loads(PQgetvalue(res, i, L_TAGS), 0, NULL);
    json_t *row =
        json_pack("{s:s, s:s, s:o, s:o, s:s, s:s, s:o, s:o, s:b}", "member_id",
                  PQgetvalue(res, i, L_ID), "member_no", PQgetvalue(res, i, L_NO), "name",
                  row_pii(r, res, i, L_NAME, L_NAME_ENC, "name", ok), "phone",
                  row_pii(r, res, i, L_PHONE, L_PHONE_ENC, "phone", ok), "branch_id",
                  PQgetvalue(res, i, L_BRANCH), "registered_at", PQgetvalue(res, i, L_CREATED),
                  "tier", tier, "tags", tags ? tags : json_array(), "personal_data_erased",
                  strcmp(PQgetvalue(res, i, L_ERASED), "t") == 0);
    return row;
}

static void on_listed(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    long long limit = req_list_of(r)->limit;
    int rows = PQntuples(res), shown = rows > limit ? (int)limit : rows;
    bool ok = true;
    json_t *members = json_array();
    for (int i = 0; i < shown; i++)
        json_array_append_new(members, row_json(r, res, i, &ok));
    if (!ok) {
        json_decref(members);
        log_warn("a listed member's PII does not open");
        req_fail(r, 500, "pii_unavailable", "a member's personal data cannot be decrypted");
        return;
    }
    json_t *next = json_null();
    if (rows > limit) {
        char cursor[LIST_CURSOR_TEXT_MAX];
        cursor_encode(PQgetvalue(res, shown - 1, L_ID), cursor);
        next = json_string(cursor);
    }
    req_finish(r, 200, json_pack("{s:o, s:o}", "members", members, "next_cursor", next));
}

void members_list(struct req *r)
{
    struct list_query q = {0};
    if (!list_params(r, &q))
        return;
    if (strcmp(r->caller.scope, "pos") == 0) {
        if (q.p[4] && !auth_may_use_branch(r, q.p[4])) {
            req_fail(r, 403, "forbidden", "this key lists only its own branch's members");
            return;
        }
        q.p[4] = r->caller.branch_id;
    }
    if (pg_pool_query(r->app->pg, LIST_SQL, 11, q.p, on_listed, r) < 0)
        req_fail_db(r, "queue full");
}
