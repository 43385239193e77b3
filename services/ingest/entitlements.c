/* GET /v1/members/{id}/entitlements?resource= and /v1/me/entitlements?
 * resource=: may the member use the resource now, by which rule, until
 * when, and why not (docs/entitlements.md, rules_entitlement.h). Asked by
 * course players and doors on every open, so the common path reads no
 * PostgreSQL: the resource's rules from this instance's memory
 * (resource_cache.h), then the member's facts from Redis in the order
 * tier, cards, SKUs bought — each only when a rule needs it and no
 * earlier kind allowed. A kind the cache misses (flushed, never written)
 * is read from its owner's read contract. The member's tier hash (or the
 * PostgreSQL fallback) also proves the member is the tenant's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_skus.h"
#include "cache/cache_tier.h"
#include "clock/clock.h"
#include "db/db.h"
#include "ingest.h"

/* One check from its rules to its answer; owns a copy of the rules (a
 * change heard meanwhile frees the cached ones). */
struct ent_check {
    struct req *r;
    char resource[256];
    struct ent_rules rules;
    int64_t now_us;
    char detail[ENT_DETAIL_MAX]; /* why the kinds asked so far did not hold */
    char tier_name[CACHE_TIER_NAME_MAX + 1];
    bool has_tier;
    int32_t tier_rank;
    const char *skus[CACHE_SKUS_ASK_MAX]; /* the purchase rules' SKUs, borrowed */
    size_t n_skus;
};

static void stage_cards(struct ent_check *c);
static void stage_skus(struct ent_check *c);

static struct req *check_end(struct ent_check *c)
{
    struct req *r = c->r;
    ent_rules_clear(&c->rules);
    free(c);
    return r;
}

static void answer(struct ent_check *c, const struct ent_decision *d)
{
    json_t *body = json_pack("{s:s, s:s, s:b, s:s, s:s}", "member_id", c->r->member_id, "resource",
                             c->resource, "allowed", d->allowed, "reason", d->reason, "detail",
                             d->allowed ? d->detail : c->detail);
    if (d->allowed && d->valid_until_us > 0) {
        char until[32];
        event_format_time(d->valid_until_us, until);
        json_object_set_new(body, "valid_until", json_string(until));
    }
    char now[32];
    event_format_time(c->now_us, now);
    json_object_set_new(body, "checked_at", json_string(now));
    struct req *r = check_end(c);
    r->app->entitlement_checks++;
    req_finish(r, 200, body);
}

/* Judges the rules of the kind just learnt: answers when one holds, else
 * keeps why not and goes on to next (NULL: the answer is a denial). */
static void judge(struct ent_check *c, const struct ent_facts *f, void (*next)(struct ent_check *))
{
    struct ent_decision d;
    ent_decide(&c->rules, f, &d);
    if (d.allowed) {
        answer(c, &d);
        return;
    }
    bool said = strstr(d.detail, "no rule this member can meet") == NULL;
    size_t used = strlen(c->detail);
    if (said)
        snprintf(c->detail + used, sizeof(c->detail) - used, "%s%s", used ? "; " : "", d.detail);
    if (next) {
        next(c);
        return;
    }
    if (c->detail[0] == '\0')
        snprintf(c->detail, sizeof(c->detail), "the resource has no rule");
    d.reason = "no_rule_met";
    answer(c, &d);
}

/* ------------------------------------------------------------ SKUs */

static void judge_skus(struct ent_check *c, const int64_t *last_us)
{
    struct ent_facts f = {.now_us = c->now_us,
                          .skus_known = true,
                          .skus = c->skus,
                          .sku_last_us = last_us,
                          .n_skus = c->n_skus};
    judge(c, &f, NULL);
}

static void on_db_skus(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ent_check *c = arg;
    if (!res) {
        req_fail_db(check_end(c), err);
        return;
    }
    int64_t last_us[CACHE_SKUS_ASK_MAX] = {0};
    for (int i = 0; i < PQntuples(res); i++)
        for (size_t k = 0; k < c->n_skus; k++)
            if (strcmp(PQgetvalue(res, i, 0), c->skus[k]) == 0)
                last_us[k] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
    judge_skus(c, last_us);
}

static void on_cached_skus(void *arg, int status, const int64_t *last_us)
{
    struct ent_check *c = arg;
    if (status == 1) {
        judge_skus(c, last_us);
        return;
    }
    c->r->app->entitlement_pg_reads++;
    struct db_array skus;
    db_array_init(&skus);
    for (size_t k = 0; k < c->n_skus; k++)
        db_array_add(&skus, c->skus[k]);
    const char *p[3] = {c->r->caller.tenant_id, c->r->member_id, db_array_finish(&skus)};
    int rc = pg_pool_query(c->r->app->pg,
                           "SELECT sku, last_purchased_us FROM tiering.read_member_skus "
                           "WHERE tenant_id = $1 AND member_id = $2 AND sku = ANY($3::text[])",
                           3, p, on_db_skus, c);
    db_array_free(&skus);
    if (rc < 0)
        req_fail_db(check_end(c), "queue full");
}

static void stage_skus(struct ent_check *c)
{
    if (!ent_rules_have(&c->rules, ENT_PURCHASE)) {
        judge(c, &(struct ent_facts){.now_us = c->now_us}, NULL);
        return;
    }
    c->n_skus = 0;
    for (size_t i = 0; i < c->rules.n; i++)
        for (size_t k = 0; c->rules.rules[i].kind == ENT_PURCHASE && k < c->rules.rules[i].n_ids;
             k++)
            if (c->n_skus < CACHE_SKUS_ASK_MAX)
                c->skus[c->n_skus++] = c->rules.rules[i].ids[k];
    cache_async_get_skus(c->r->app->cache, c->r->caller.tenant_id, c->r->member_id, c->skus,
                         c->n_skus, on_cached_skus, c);
}

/* ------------------------------------------------------------ cards */

static void judge_cards(struct ent_check *c, const struct cache_card *cards, size_t n)
{
    struct ent_card *ec = calloc(n ? n : 1, sizeof(*ec));
    if (!ec) {
        req_fail(check_end(c), 503, "unavailable", "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        ec[i] = (struct ent_card){.card_id = cards[i].card_id,
                                  .product_id = cards[i].product_id,
                                  .status = cache_card_status(&cards[i], c->now_us),
                                  .valid_to_us = cards[i].valid_to_us};
    struct ent_facts f = {.now_us = c->now_us, .cards_known = true, .cards = ec, .n_cards = n};
    judge(c, &f, stage_skus); /* c may be gone now: ec is the only thing left */
    free(ec);
}

static void on_db_cards(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ent_check *c = arg;
    if (!res) {
        req_fail_db(check_end(c), err);
        return;
    }
    int n = PQntuples(res);
    struct cache_card *cards = calloc(n ? (size_t)n : 1, sizeof(*cards));
    if (!cards) {
        req_fail(check_end(c), 503, "unavailable", "out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        struct cache_card *k = &cards[i];
        snprintf(k->card_id, sizeof(k->card_id), "%s", PQgetvalue(res, i, 0));
        snprintf(k->product_id, sizeof(k->product_id), "%s", PQgetvalue(res, i, 1));
        snprintf(k->kind, sizeof(k->kind), "%s", PQgetvalue(res, i, 2));
        k->uses_left = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        k->valid_from_us = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        k->valid_to_us = strtoll(PQgetvalue(res, i, 5), NULL, 10);
        k->frozen_until_us = strtoll(PQgetvalue(res, i, 6), NULL, 10);
    }
    judge_cards(c, cards, (size_t)n);
    free(cards);
}

static void on_cached_cards(void *arg, int status, const struct cache_cards_read *cards)
{
    struct ent_check *c = arg;
    if (status == 1) {
        judge_cards(c, cards->cards, cards->n_cards);
        return;
    }
    c->r->app->entitlement_pg_reads++;
    const char *p[2] = {c->r->caller.tenant_id, c->r->member_id};
    if (pg_pool_query(c->r->app->pg,
                      "SELECT card_id, product_id, kind, coalesce(uses_left, 0), valid_from_us, "
                      "valid_to_us, coalesce(frozen_until_us, 0) FROM ledger.read_cards "
                      "WHERE tenant_id = $1 AND member_id = $2 LIMIT 1000",
                      2, p, on_db_cards, c) < 0)
        req_fail_db(check_end(c), "queue full");
}

static void stage_cards(struct ent_check *c)
{
    if (!ent_rules_have(&c->rules, ENT_CARD)) {
        stage_skus(c);
        return;
    }
    cache_async_get_cards(c->r->app->cache, c->r->caller.tenant_id, c->r->member_id,
                          on_cached_cards, c);
}

/* ------------------------------------------------------------ tier */

static void judge_tier(struct ent_check *c)
{
    struct ent_facts f = {.now_us = c->now_us,
                          .tier_known = true,
                          .has_tier = c->has_tier,
                          .tier_name = c->tier_name,
                          .tier_rank = c->tier_rank};
    judge(c, &f, stage_cards);
}

/* Rows: the member exists, its tier's name and rank (NULL: none). */
static void on_db_tier(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ent_check *c = arg;
    if (!res) {
        req_fail_db(check_end(c), err);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        req_fail_no_member(check_end(c));
        return;
    }
    c->has_tier = !PQgetisnull(res, 0, 1) && PQgetvalue(res, 0, 1)[0] != '\0';
    snprintf(c->tier_name, sizeof(c->tier_name), "%s", PQgetvalue(res, 0, 1));
    c->tier_rank = (int32_t)strtol(PQgetvalue(res, 0, 2), NULL, 10);
    judge_tier(c);
}

static void on_cached_tier(void *arg, int status, const struct cache_tier *t)
{
    struct ent_check *c = arg;
    if (status == 1) { /* tiering wrote it: the member is the tenant's */
        c->has_tier = t->name[0] != '\0';
        snprintf(c->tier_name, sizeof(c->tier_name), "%s", t->name);
        c->tier_rank = t->rank;
        judge_tier(c);
        return;
    }
    c->r->app->entitlement_pg_reads++;
    const char *p[2] = {c->r->caller.tenant_id, c->r->member_id};
    if (pg_pool_query(c->r->app->pg,
                      "SELECT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 AND "
                      "member_id = $2), t.name, coalesce(t.rank, -1) FROM (SELECT 1) AS one "
                      "LEFT JOIN tiering.read_member_tiers t ON t.tenant_id = $1 "
                      "AND t.member_id = $2",
                      2, p, on_db_tier, c) < 0)
        req_fail_db(check_end(c), "queue full");
}

/* ------------------------------------------------------------ rules */

static void start_with(struct ent_check *c)
{
    /* the tier first, always: it also says the member is the tenant's */
    cache_async_get_tier(c->r->app->cache, c->r->caller.tenant_id, c->r->member_id, on_cached_tier,
                         c);
}

static void on_db_rules(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct ent_check *c = arg;
    if (!res) {
        req_fail_db(check_end(c), err);
        return;
    }
    uint64_t generation = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    struct resource_cache *cache = c->r->app->resources;
    if (PQgetisnull(res, 0, 1)) {
        resource_cache_put(cache, generation, c->r->caller.tenant_id, c->resource, NULL);
        req_fail(check_end(c), 404, "resource_not_found", "no such resource in this tenant");
        return;
    }
    json_t *rules = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    bool ok = rules && resource_rules_from_json(rules, &c->rules);
    json_decref(rules);
    if (!ok) {
        req_fail(check_end(c), 500, "internal", "the resource's stored rules do not read");
        return;
    }
    struct ent_rules copy;
    if (ent_rules_copy(&copy, &c->rules))
        resource_cache_put(cache, generation, c->r->caller.tenant_id, c->resource, &copy);
    start_with(c);
}

static void check_authenticated(struct req *r)
{
    const char *resource = http_query(r->ex, "resource");
    if (!resource || !resource_name_ok(resource)) {
        req_reply_invalid(r, "resource",
                          "required: the resource to check, <kind>:<id> (e.g. course:algebra-1)");
        return;
    }
    struct ent_check *c = calloc(1, sizeof(*c));
    if (!c) {
        req_fail(r, 503, "unavailable", "out of memory");
        return;
    }
    c->r = r;
    c->now_us = clock_now_us();
    snprintf(c->resource, sizeof(c->resource), "%s", resource);
    const struct ent_rules *cached;
    bool known;
    if (resource_cache_get(r->app->resources, r->caller.tenant_id, resource, &cached, &known)) {
        if (!known) {
            req_fail(check_end(c), 404, "resource_not_found", "no such resource in this tenant");
            return;
        }
        if (!ent_rules_copy(&c->rules, cached)) {
            req_fail(check_end(c), 503, "unavailable", "out of memory");
            return;
        }
        start_with(c);
        return;
    }
    r->app->entitlement_pg_reads++;
    /* the generation travels with the read: a change heard meanwhile
     * keeps the answer out of the cache */
    char generation[24];
    snprintf(generation, sizeof(generation), "%llu",
             (unsigned long long)resource_cache_generation(r->app->resources));
    const char *p[3] = {generation, r->caller.tenant_id, resource};
    if (pg_pool_query(r->app->pg,
                      "SELECT $1::text, (SELECT rules::text FROM entitlement_resources "
                      "WHERE tenant_id = $2 AND resource = $3)",
                      3, p, on_db_rules, c) < 0)
        req_fail_db(check_end(c), "queue full");
}

static void member_authenticated(struct req *r)
{
    if (!req_member_from_path(r))
        return;
    check_authenticated(r);
}

void entitlements_get(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), member_authenticated);
}

/* member_session_then has set r->member_id to the session's member. */
void entitlements_me(struct http_exchange *ex, void *app)
{
    member_session_then(req_new(app, ex), check_authenticated);
}
