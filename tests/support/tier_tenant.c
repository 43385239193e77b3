#include "tier_tenant.h"
#include "sql_tenant.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TIER_TENANT_DEADLINE_MS 20000

void tier_tenant_make(struct tier_tenant *t)
{
    sql_tenant_make("tiers", "Tier Chain", t->tenant_id, sizeof(t->tenant_id), t->key);
}

struct api_response tier_tenant_call(const struct tier_tenant *t, const char *method,
                                     const char *path, const char *body)
{
    return api_call(method, path, body, t->key, NULL);
}

void tier_tenant_put_ladder(const struct tier_tenant *t, const char *body)
{
    static const char *const wait[] = {"Prefer: wait=10", NULL};
    struct api_response r = api_call("PUT", "/v1/config/tiers", body, t->key, wait);
    if (r.status != 200) {
        fprintf(stderr, "test: PUT /v1/config/tiers: %ld %s\n", r.status, r.raw);
        abort();
    }
    assert(strcmp(json_str_at(r.body, "status"), "applied") == 0);
    api_response_free(&r);
}

void tier_tenant_member(const struct tier_tenant *t, char member_id[64])
{
    char phone[16], body[160];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"Tier\",\"phone\":\"%s\",\"branch_id\":\"hq\"}",
             phone);
    struct api_response r = api_call("POST", "/v1/members", body, t->key, NULL);
    if (r.status != 201) {
        fprintf(stderr, "test: registering at %s: %ld %s\n", t->tenant_id, r.status, r.raw);
        abort();
    }
    snprintf(member_id, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

void tier_tenant_purchase(const struct tier_tenant *t, const char *member_id, int64_t amount,
                          char operation_id[64])
{
    char path[160], body[256];
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", member_id);
    snprintf(body, sizeof(body),
             "{\"amount\":%lld,\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}",
             (long long)amount);
    struct api_response r = api_call("POST", path, body, t->key, NULL);
    if (r.status != 201) {
        fprintf(stderr, "test: purchase of %lld: %ld %s\n", (long long)amount, r.status, r.raw);
        abort();
    }
    snprintf(operation_id, 64, "%s", json_str_at(r.body, "operation_id"));
    api_response_free(&r);
}

void tier_tenant_refund(const struct tier_tenant *t, const char *member_id,
                        const char *operation_id)
{
    char path[160], body[256];
    snprintf(path, sizeof(path), "/v1/members/%s/refunds", member_id);
    snprintf(body, sizeof(body),
             "{\"kind\":\"purchase\",\"reason\":\"returned\",\"branch_id\":\"hq\","
             "\"purchase_operation_id\":\"%s\"}",
             operation_id);
    struct api_response r = api_call("POST", path, body, t->key, NULL);
    if (r.status != 201) {
        fprintf(stderr, "test: refund of %s: %ld %s\n", operation_id, r.status, r.raw);
        abort();
    }
    api_response_free(&r);
}

struct tier_wait {
    const struct tier_tenant *t;
    const char *member_id, *name;
    char seen[80];
};

static bool shows_tier(void *arg)
{
    struct tier_wait *w = arg;
    char path[160];
    snprintf(path, sizeof(path), "/v1/members/%s", w->member_id);
    struct api_response r = api_call("GET", path, NULL, w->t->key, NULL);
    json_t *tier = r.status == 200 ? json_object_get(r.body, "tier") : NULL;
    const char *name = "";
    if (json_is_string(tier))
        name = json_string_value(tier);
    else if (json_is_object(tier))
        name = json_string_value(json_object_get(tier, "name"));
    snprintf(w->seen, sizeof(w->seen), "%s", name ? name : "");
    api_response_free(&r);
    return strcmp(w->seen, w->name) == 0;
}

void tier_tenant_wait_tier(const struct tier_tenant *t, const char *member_id, const char *name)
{
    struct tier_wait w = {t, member_id, name, ""};
    if (!poll_until(shows_tier, &w, TIER_TENANT_DEADLINE_MS)) {
        fprintf(stderr, "test: member %s never showed tier '%s' (last: '%s')\n", member_id, name,
                w.seen);
        abort();
    }
}

void tier_tenant_reasons(PGconn *pg, const struct tier_tenant *t, const char *member_id, char *out,
                         size_t out_len)
{
    const char *p[2] = {t->tenant_id, member_id};
    PGresult *res = PQexecParams(pg,
                                 "SELECT coalesce(string_agg(reason, ',' ORDER BY version), '') "
                                 "FROM tiering.tier_changes WHERE tenant_id = $1 AND "
                                 "member_id = $2",
                                 2, NULL, p, NULL, NULL, 0);
    assert(PQresultStatus(res) == PGRES_TUPLES_OK);
    snprintf(out, out_len, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

struct sql_wait {
    PGconn *pg;
    const char *sql;
    int n;
    const char *const *p;
    int64_t want, seen;
};

static bool sql_answers(void *arg)
{
    struct sql_wait *w = arg;
    w->seen = test_pg_int(w->pg, w->sql, w->n, w->p);
    return w->seen == w->want;
}

void tier_tenant_wait_sql(PGconn *pg, const char *sql, int n, const char *const *p, int64_t want)
{
    struct sql_wait w = {pg, sql, n, p, want, -1};
    if (!poll_until(sql_answers, &w, TIER_TENANT_DEADLINE_MS)) {
        fprintf(stderr, "test: %s answered %lld, not %lld\n", sql, (long long)w.seen,
                (long long)want);
        abort();
    }
}

int64_t tier_tenant_quote(const struct tier_tenant *t, const char *member_id, int64_t amount)
{
    char path[200];
    snprintf(path, sizeof(path), "/v1/members/%s/quote?amount=%lld&branch_id=hq", member_id,
             (long long)amount);
    struct api_response r = api_call("GET", path, NULL, t->key, NULL);
    assert(r.status == 200);
    int64_t charged = json_int_at(r.body, "charged");
    api_response_free(&r);
    return charged;
}
