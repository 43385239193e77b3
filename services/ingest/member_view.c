/* A member as the API shows it (GET /v1/members/{id}, GET /v1/me, the
 * answer of registration and PATCH): the profile, the balances, the tier,
 * the cards and the usable coupons. All five come from Redis in one round
 * trip (libs/cache/cache_view.h): the profile sealed in ingest's view hash
 * (profile_cache.h), the balances and cards from the ledger's hashes, the
 * tier from tiering's. A part the cache misses, or all of them with Redis
 * away, is read from its owner (ingest's table, the ledger's and tiering's
 * read contracts) and put back: the profile and coupons into the view
 * hash, a tier through tiering's versioned script, "no cards" as the
 * ledger's "#count" 0. Balances are only read: the ledger's read contract
 * has no version to write them back with. */
#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_view.h"
#include "ingest.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "member_view_text.h"
#include "profile_cache.h"

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
    COL_TAGS,   /* the member's manual tags, a JSON array */
    COL_VIEW_VERSION
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

/* The profile as the staff see it (with the tags; member_view_send drops
 * them for the member's own app): what the cache holds, sealed. */
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
    json_t *tags = json_loads(PQgetvalue(res, 0, COL_TAGS), 0, NULL);
    json_object_set_new(v, "tags", json_is_array(tags) ? tags : (json_decref(tags), json_array()));
    return v;
}

/* ------------------------------------------------------- the view's state */
#define VIEW_COUPONS_MAX 100 /* the usable coupons listed, soonest to expire first */

/* What the view carries between its steps (r->view). */
struct member_view {
    struct cache_member_view *cached; /* the round trip's answer */
    char *fill_profile;               /* the profile sealed for the cache after a miss, or NULL */
    size_t fill_profile_len;
    int64_t fill_version;
    char *fill_coupons; /* the coupons' JSON text after a miss, or NULL */
    /* A cached profile's text when it has the shape member_view_text.h
     * renders around (r->body then holds only the other parts), or NULL
     * (r->body is the whole answer). Personal data: wiped when freed. */
    char *profile_text;
    struct profile_text_marks marks;
};

static void profile_text_free(struct member_view *v)
{
    if (v->profile_text) {
        sodium_memzero(v->profile_text, v->marks.len);
        free(v->profile_text);
        v->profile_text = NULL;
    }
}

void member_view_free(struct member_view *v)
{
    if (!v)
        return;
    if (v->cached) {
        cache_member_view_clear(v->cached);
        free(v->cached);
    }
    free(v->fill_profile);
    free(v->fill_coupons);
    profile_text_free(v);
    free(v);
}

/* Counts which source answered one part, in
 * tessera_ingest_member_view_reads_total{part, source="cache"|"postgres"}. */
static void count_source(const char *part, const char *source)
{
    static struct metric_family *f;
    if (!f)
        f = metrics_counter("tessera_ingest_member_view_reads_total",
                            "Parts of member views (profile, balances, tier, cards, coupons), by "
                            "the source that answered (cache, or postgres on a miss or with "
                            "Redis away).",
                            "part,source");
    metrics_inc(metrics_with(f, part, source));
}

/* Counts the cards' source also in the older
 * tessera_ingest_member_cards_reads_total{source}. */
static void count_cards_source(struct req *r, const char *source)
{
    static struct metric_family *f;
    if (!f)
        f = metrics_counter("tessera_ingest_member_cards_reads_total",
                            "Member views' cards, by the source that answered "
                            "(cache, or postgres on a miss or with Redis away).",
                            "source");
    metrics_inc(metrics_with(f, source));
    count_source("cards", source);
}

/* ------------------------------------------------------- the end */
/* Puts back what was read from PostgreSQL, then answers: the staff see
 * the tags, the member's own app does not. */
/* The answer written around the cached profile's text (r->body holds
 * the other parts); false when it could not be, r->body then is the
 * whole view, parsed, as without the text. */
static bool view_send_text(struct req *r, bool with_tags)
{
    struct member_view *v = r->view;
    size_t len = 0;
    char *text = member_view_text_render(v->profile_text, &v->marks, with_tags, r->body, &len);
    if (text) {
        /* sent without a copy, wiped and freed once written; frees r and v */
        req_finish_owned(r, 200, "application/json", text, len, true);
        return true;
    }
    json_t *profile = json_loads(v->profile_text, 0, NULL);
    profile_text_free(v);
    assert(json_is_object(profile));      /* the marks were found in it */
    json_object_update(profile, r->body); /* tier and cards keep their places */
    json_decref(r->body);
    r->body = profile;
    return false;
}

static void view_send(struct req *r)
{
    struct member_view *v = r->view;
    if (v->fill_profile || v->fill_coupons)
        cache_async_fill_view(r->app->cache, r->caller.tenant_id, r->member_id, v->fill_version,
                              v->fill_profile, v->fill_profile_len, v->fill_coupons,
                              v->cached->coupon_gen);
    bool staff = strcmp(r->caller.scope, "member") != 0;
    if (v->profile_text && view_send_text(r, staff))
        return;
    if (!staff)
        json_object_del(r->body, "tags"); /* the operator's labels */
    req_finish(r, 200, json_incref(r->body));
}

/* ------------------------------------------------------- coupons */
/* The usable coupons at now_us from the list as cached (each with its
 * valid_to_us, which the answer does not show). */
static json_t *coupons_usable(json_t *list, int64_t now_us)
{
    json_t *out = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c)
    {
        if (json_integer_value(json_object_get(c, "valid_to_us")) <= now_us)
            continue;
        json_t *shown = json_deep_copy(c);
        json_object_del(shown, "valid_to_us");
        json_array_append_new(out, shown);
    }
    return out;
}

static void view_coupons_json(struct req *r, json_t *list)
{
    json_object_set_new(r->body, "coupons", coupons_usable(list, event_now_us()));
    json_decref(list);
    view_send(r);
}

/* Every coupon not redeemed nor expired at the service clock's now (the
 * cached list is filtered again when it is read). */
static void on_coupons(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        bool value = strcmp(PQgetvalue(res, i, 1), "value") == 0;
        int64_t valid_to_us = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        json_t *c = json_pack("{s:s, s:s, s:o}", "coupon_id", PQgetvalue(res, i, 0), "kind",
                              PQgetvalue(res, i, 1), "valid_to", cards_time_or_null(valid_to_us));
        json_object_set_new(c, value ? "value" : "percent_bp",
                            json_integer(strtoll(PQgetvalue(res, i, value ? 2 : 3), NULL, 10)));
        json_object_set_new(c, "valid_to_us", json_integer(valid_to_us));
        json_array_append_new(list, c);
    }
    r->view->fill_coupons = json_dumps(list, JSON_COMPACT);
    view_coupons_json(r, list);
}

static void view_coupons(struct req *r)
{
    const struct cache_member_view *c = r->view->cached;
    json_t *list = c->coupons_status == 1 ? json_loads(c->coupons, 0, NULL) : NULL;
    if (json_is_array(list)) {
        count_source("coupons", "cache");
        view_coupons_json(r, list);
        return;
    }
    json_decref(list);
    count_source("coupons", "postgres");
    char now[24], limit[8];
    snprintf(now, sizeof(now), "%lld", (long long)event_now_us());
    snprintf(limit, sizeof(limit), "%d", VIEW_COUPONS_MAX);
    /* A read of the ledger's projection: only the ledger writes it. */
    const char *p[4] = {r->caller.tenant_id, r->member_id, now, limit};
    if (pg_pool_query(r->app->pg,
                      "SELECT coupon_id, kind, value, percent_bp, valid_to_us "
                      "FROM ledger.read_coupons "
                      "WHERE tenant_id = $1 AND member_id = $2 AND redeemed_by IS NULL "
                      "AND valid_to_us > $3::bigint ORDER BY valid_to_us, coupon_id LIMIT $4::int",
                      4, p, on_coupons, r) < 0)
        req_fail_db(r, "queue full");
}

/* ------------------------------------------------------- cards */
static void on_cards(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    json_t *cards = json_array();
    int64_t now_us = event_now_us();
    for (int i = 0; i < PQntuples(res); i++) {
        struct cache_card k = {0};
        snprintf(k.card_id, sizeof(k.card_id), "%s", PQgetvalue(res, i, 0));
        snprintf(k.product_id, sizeof(k.product_id), "%s", PQgetvalue(res, i, 1));
        snprintf(k.kind, sizeof(k.kind), "%s", PQgetvalue(res, i, 2));
        k.uses_left = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        k.valid_from_us = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        k.valid_to_us = strtoll(PQgetvalue(res, i, 5), NULL, 10);
        k.frozen_until_us = strtoll(PQgetvalue(res, i, 6), NULL, 10);
        k.freeze_days_left = strtoll(PQgetvalue(res, i, 7), NULL, 10);
        k.discount_bp = strtoll(PQgetvalue(res, i, 8), NULL, 10);
        json_array_append_new(cards, cards_view_card_json(&k, now_us));
    }
    /* "No cards" goes back as the ledger would write it; a member with
     * cards is the ledger's to write (the read contract has no versions). */
    if (PQntuples(res) == 0)
        cache_async_put_no_cards(r->app->cache, r->caller.tenant_id, r->member_id);
    json_object_set_new(r->body, "cards", cards);
    view_coupons(r);
}

/* The query's LIMIT: a member with more cards is never served from the
 * cache (only its count is cached), so both sources list the same. */
_Static_assert(CACHE_CARDS_PER_MEMBER_MAX == 100, "the cards query's LIMIT");

static void view_cards(struct req *r)
{
    const struct cache_member_view *c = r->view->cached;
    if (c->cards_status == 1) {
        count_cards_source(r, "cache");
        json_t *cards = json_array();
        int64_t now_us = event_now_us();
        for (size_t i = 0; i < c->cards->n_cards; i++)
            json_array_append_new(cards, cards_view_card_json(&c->cards->cards[i], now_us));
        json_object_set_new(r->body, "cards", cards);
        view_coupons(r);
        return;
    }
    count_cards_source(r, "postgres");
    /* A read of the ledger's projection: only the ledger writes it. */
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT card_id, product_id, kind, uses_left, valid_from_us, valid_to_us, "
                      "frozen_until_us, freeze_days_left, discount_bp FROM ledger.read_cards "
                      "WHERE tenant_id = $1 AND member_id = $2 ORDER BY created_at, card_id "
                      "LIMIT 100",
                      2, p, on_cards, r) < 0)
        req_fail_db(r, "queue full");
}

/* ------------------------------------------------------- tier */
static void view_tier_json(struct req *r)
{
    json_object_set_new(r->body, "tier", tier_json(&r->tier));
    if (r->with_tier_view)
        tier_view_embed_then(r, view_cards);
    else
        view_cards(r);
}

static void on_tier_row(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    struct cache_tier t = {.version = 0}; /* no row: tiering's "no tier" */
    snprintf(t.tenant_id, sizeof(t.tenant_id), "%s", r->caller.tenant_id);
    snprintf(t.member_id, sizeof(t.member_id), "%s", r->member_id);
    if (PQntuples(res) > 0) {
        tier_from_row(&r->tier, res, 0, 0);
        snprintf(t.name, sizeof(t.name), "%s", r->tier.name);
        t.rank = r->tier.rank;
        t.discount_bp = r->tier.discount_bp;
        t.points_multiplier_bp = r->tier.points_multiplier_bp;
        t.version = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    }
    /* through tiering's versioned script: a newer write is never undone */
    cache_async_put_tier(r->app->cache, &t);
    view_tier_json(r);
}

static void view_tier(struct req *r)
{
    const struct cache_member_view *c = r->view->cached;
    memset(&r->tier, 0, sizeof(r->tier));
    if (c->tier_status == 1) {
        count_source("tier", "cache");
        r->tier.has = c->tier.name[0] != '\0'; /* "": tiering knows the member has none */
        snprintf(r->tier.name, sizeof(r->tier.name), "%s", c->tier.name);
        r->tier.rank = c->tier.rank;
        r->tier.discount_bp = c->tier.discount_bp;
        r->tier.points_multiplier_bp = c->tier.points_multiplier_bp;
        view_tier_json(r);
        return;
    }
    count_source("tier", "postgres");
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT name, rank, discount_bp, points_multiplier_bp, version "
                      "FROM tiering.read_member_tiers WHERE tenant_id = $1 AND member_id = $2",
                      2, p, on_tier_row, r) < 0)
        req_fail_db(r, "queue full");
}

/* ------------------------------------------------------- balances */
static void on_ledger_balances(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    json_object_set_new(r->body, "balances",
                        PQntuples(res) == 0
                            ? balances_json(0, 0, 0, 0)
                            : balances_json(strtoll(PQgetvalue(res, 0, 0), NULL, 10),
                                            strtoll(PQgetvalue(res, 0, 3), NULL, 10),
                                            strtoll(PQgetvalue(res, 0, 1), NULL, 10),
                                            strtoll(PQgetvalue(res, 0, 2), NULL, 10)));
    view_tier(r);
}

static void view_balances(struct req *r)
{
    const struct cache_member_view *c = r->view->cached;
    if (c->balances_status == 1) {
        count_source("balances", "cache");
        const struct cache_balances *b = &c->balances;
        json_object_set_new(
            r->body, "balances",
            balances_json(b->points, b->points_pending, b->sv_principal, b->sv_bonus));
        view_tier(r);
        return;
    }
    count_source("balances", "postgres");
    /* A read of the ledger's projection: only the ledger writes it. */
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT points, sv_principal, sv_bonus, points_pending "
                      "FROM ledger.read_balances WHERE tenant_id = $1 AND member_id = $2",
                      2, p, on_ledger_balances, r) < 0)
        req_fail_db(r, "queue full");
}

/* ------------------------------------------------------- profile */
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
    struct member_view *v = r->view;
    v->fill_version = strtoll(PQgetvalue(res, 0, COL_VIEW_VERSION), NULL, 10);
    char *text = json_dumps(r->body, JSON_COMPACT);
    if (text) {
        v->fill_profile =
            profile_cache_seal(&r->app->pii, r->caller.tenant_id, r->member_id, v->fill_version,
                               text, strlen(text), &v->fill_profile_len);
        sodium_memzero(text, strlen(text));
        free(text);
    }
    view_balances(r);
}

static void profile_from_pg(struct req *r)
{
    count_source("profile", "postgres");
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT member_id, member_no, pii_key_version, name, phone, email, "
                      "name_enc, phone_enc, email_enc, birthday::text, gender, "
                      "branch_id, referral_code, referred_by, attributes::text, "
                      "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                      "birthday_enc, gender_enc, attributes_enc, to_char(personal_data_erased_at "
                      "AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                      "(SELECT coalesce(json_agg(g.tag ORDER BY g.tag), '[]') FROM member_tags g "
                      "WHERE g.tenant_id = m.tenant_id AND g.member_id = m.member_id), "
                      "view_version FROM members m WHERE tenant_id = $1 AND member_id = $2",
                      2, p, on_profile, r) < 0)
        req_fail_db(r, "queue full");
}

/* The round trip answered: the profile from its sealed copy when it opens
 * (a box that does not is a miss: a key rotated out, or tampered). */
static void on_view(void *arg, struct cache_member_view *cached)
{
    struct req *r = arg;
    r->view->cached = cached;
    if (cached->profile_status != 1) {
        profile_from_pg(r);
        return;
    }
    char *text = profile_cache_open(&r->app->pii, r->caller.tenant_id, r->member_id,
                                    cached->profile_version, cached->profile, cached->profile_len);
    struct member_view *v = r->view;
    if (text && profile_text_marks_find(text, strlen(text), &v->marks)) {
        /* no parse: the answer is written around the text (view_send) */
        count_source("profile", "cache");
        v->profile_text = text;
        json_decref(r->body);
        r->body = json_object();
        view_balances(r);
        return;
    }
    json_t *profile = text ? json_loads(text, 0, NULL) : NULL;
    if (text) {
        sodium_memzero(text, strlen(text));
        free(text);
    }
    if (!json_is_object(profile)) {
        json_decref(profile);
        profile_from_pg(r);
        return;
    }
    count_source("profile", "cache");
    json_decref(r->body);
    r->body = profile;
    view_balances(r);
}

void member_view_reply(struct req *r, const char *member_id)
{
    if (member_id != r->member_id)
        snprintf(r->member_id, sizeof(r->member_id), "%s", member_id);
    assert(r->view == NULL); /* one view a request */
    r->view = calloc(1, sizeof(*r->view));
    assert(r->view != NULL);
    cache_async_get_member_view(r->app->cache, r->caller.tenant_id, r->member_id, on_view, r);
}
