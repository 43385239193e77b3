/* A member as the API shows it: the profile from ingest's directory, the
 * balances from the Redis cache, or from the ledger's own table when the
 * cache misses or is down (the cache is only a cache), and the tier the
 * same way (tier.c). */
#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "log/log.h"

/* points_pending: earned points still in the tenant's lock period, not
 * spendable yet (not part of points). */
json_t *balances_json(int64_t points, int64_t points_pending, int64_t principal, int64_t bonus)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "points", (json_int_t)points, "points_pending",
                     (json_int_t)points_pending, "stored_value", (json_int_t)(principal + bonus),
                     "stored_value_principal", (json_int_t)principal, "stored_value_bonus",
                     (json_int_t)bonus);
}

json_t *balances_json_of(const Balances *b)
{
    if (!b)
        return balances_json(0, 0, 0, 0);
    return balances_json(b->points, b->points_pending, b->stored_value_principal,
                         b->stored_value_bonus);
}

static void view_with_tier(struct req *r)
{
    json_object_set_new(r->body, "tier", tier_json(&r->tier));
    if (r->with_tier_view)
        tier_view_embed_then(r, cards_view_reply);
    else
        cards_view_reply(r);
}

static void view_finish(struct req *r, json_t *balances)
{
    json_object_set_new(r->body, "balances", balances);
    tier_lookup_then(r, view_with_tier);
}

static void on_ledger_balances(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        view_finish(r, balances_json(0, 0, 0, 0));
        return;
    }
    view_finish(r, balances_json(strtoll(PQgetvalue(res, 0, 0), NULL, 10),
                                 strtoll(PQgetvalue(res, 0, 3), NULL, 10),
                                 strtoll(PQgetvalue(res, 0, 1), NULL, 10),
                                 strtoll(PQgetvalue(res, 0, 2), NULL, 10)));
}

static void on_cached(void *arg, int status, const struct cache_balances *b)
{
    struct req *r = arg;
    if (status == 1) {
        view_finish(r, balances_json(b->points, b->points_pending, b->sv_principal, b->sv_bonus));
        return;
    }
    /* A read of the ledger's projection: only the ledger writes it. */
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT points, sv_principal, sv_bonus, points_pending "
                      "FROM ledger.read_balances WHERE tenant_id = $1 AND member_id = $2",
                      2, p, on_ledger_balances, r) < 0)
        req_fail_db(r, "queue full");
}

static json_t *text_or_null(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? json_null() : json_string(PQgetvalue(res, 0, col));
}

/* Columns of the profile query below. */
enum {
    COL_ID,
    COL_NO,
    COL_KEY_VERSION,
    COL_NAME,
    COL_PHONE,
    COL_EMAIL,
    COL_NAME_ENC,
    COL_PHONE_ENC,
    COL_EMAIL_ENC,
    COL_BIRTHDAY,
    COL_GENDER,
    COL_BRANCH,
    COL_REFERRAL,
    COL_REFERRED_BY,
    COL_ATTRIBUTES,
    COL_CREATED,
    COL_BIRTHDAY_ENC,
    COL_GENDER_ENC,
    COL_ATTRIBUTES_ENC,
    COL_ERASED, /* personal_data_erased_at: null, or when the personal data was erased */
    COL_TAGS    /* the member's manual tags, a JSON array */
};

/* One PII field in the clear, malloc'ed: opened from its sealed column, or
 * copied from the legacy plaintext column of a row not yet resealed
 * (version 0). NULL for an absent field; *ok turns false when a sealed
 * field does not open. */
static char *pii_text(struct req *r, const PGresult *res, int plain_col, int sealed_col,
                      const char *field, bool *ok)
{
    int version = atoi(PQgetvalue(res, 0, COL_KEY_VERSION));
    if (version == 0)
        return PQgetisnull(res, 0, plain_col) ? NULL : strdup(PQgetvalue(res, 0, plain_col));
    if (PQgetisnull(res, 0, sealed_col))
        return NULL;
    char *clear = pii_open(&r->app->pii, version, r->caller.tenant_id, r->member_id, field,
                           PQgetvalue(res, 0, sealed_col));
    *ok = *ok && clear;
    return clear;
}

static json_t *pii_field(struct req *r, const PGresult *res, int plain_col, int sealed_col,
                         const char *field, bool *ok)
{
    char *clear = pii_text(r, res, plain_col, sealed_col, field, ok);
    json_t *v = clear ? json_string(clear) : json_null();
    if (clear)
        sodium_memzero(clear, strlen(clear));
    free(clear);
    return v;
}

/* The attributes object (legacy jsonb text or sealed JSON text). */
static json_t *pii_attributes(struct req *r, const PGresult *res, bool *ok)
{
    char *clear = pii_text(r, res, COL_ATTRIBUTES, COL_ATTRIBUTES_ENC, "attributes", ok);
    json_t *attrs = clear ? json_loads(clear, 0, NULL) : NULL;
    if (clear)
        sodium_memzero(clear, strlen(clear));
    free(clear);
    return json_is_object(attrs) ? attrs : (json_decref(attrs), json_object());
}

static json_t *profile_json(struct req *r, const PGresult *res, bool *ok)
{
    json_t *v = json_pack(
        "{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:s, s:s, s:o, s:o, s:s, s:n, s:[]}", "member_id",
        PQgetvalue(res, 0, COL_ID), "member_no", PQgetvalue(res, 0, COL_NO), "name",
        pii_field(r, res, COL_NAME, COL_NAME_ENC, "name", ok), "phone",
        pii_field(r, res, COL_PHONE, COL_PHONE_ENC, "phone", ok), "email",
        pii_field(r, res, COL_EMAIL, COL_EMAIL_ENC, "email", ok), "birthday",
        pii_field(r, res, COL_BIRTHDAY, COL_BIRTHDAY_ENC, "birthday", ok), "gender",
        pii_field(r, res, COL_GENDER, COL_GENDER_ENC, "gender", ok), "branch_id",
        PQgetvalue(res, 0, COL_BRANCH), "referral_code", PQgetvalue(res, 0, COL_REFERRAL),
        "referred_by", text_or_null(res, COL_REFERRED_BY), "attributes", pii_attributes(r, res, ok),
        "registered_at", PQgetvalue(res, 0, COL_CREATED), "tier", "cards");
    json_object_set_new(v, "personal_data_erased_at", text_or_null(res, COL_ERASED));
    if (strcmp(r->caller.scope, "member") == 0)
        return v; /* tags are the operator's labels, not shown in the member's own app */
    json_t *tags = json_loads(PQgetvalue(res, 0, COL_TAGS), 0, NULL);
    json_object_set_new(v, "tags", json_is_array(tags) ? tags : (json_decref(tags), json_array()));
    return v;
}

static void on_profile(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!req_member_row(r, res, err))
        return;
    bool ok = true;
    json_decref(r->body);
    r->body = profile_json(r, res, &ok);
    assert(r->body); /* the format matches its arguments */
    if (!ok) {
        /* A key missing from the ring or a tampered row: never guess. */
        log_fields(LOG_ERROR, "member PII does not open", "member_id", r->member_id, "key_version",
                   PQgetvalue(res, 0, COL_KEY_VERSION), NULL);
        req_fail(r, 500, "pii_unavailable", "the member's personal data cannot be decrypted");
        return;
    }
    cache_async_get_balances(r->app->cache, r->caller.tenant_id, r->member_id, on_cached, r);
}

void member_view_reply(struct req *r, const char *member_id)
{
    if (member_id != r->member_id)
        snprintf(r->member_id, sizeof(r->member_id), "%s", member_id);
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT member_id, member_no, pii_key_version, name, phone, email, "
                      "name_enc, phone_enc, email_enc, birthday::text, gender, "
                      "branch_id, referral_code, referred_by, attributes::text, "
                      "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                      "birthday_enc, gender_enc, attributes_enc, to_char(personal_data_erased_at "
                      "AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                      "(SELECT coalesce(json_agg(g.tag ORDER BY g.tag), '[]') FROM member_tags g "
                      "WHERE g.tenant_id = m.tenant_id AND g.member_id = m.member_id) "
                      "FROM members m WHERE tenant_id = $1 AND member_id = $2",
                      2, p, on_profile, r) < 0)
        req_fail_db(r, "queue full");
}
