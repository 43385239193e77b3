#include "full_tenant.h"

#include <assert.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_client.h"
#include "sql_tenant.h"

void full_tenant_make(struct full_tenant *t, int64_t headroom)
{
    assert(headroom > 0);
    sql_tenant_make("full", "Full Chain", t->tenant_id, sizeof(t->tenant_id), t->key);
    t->seeded = INT64_MAX - headroom;
    char seed[24];
    snprintf(seed, sizeof(seed), "%lld", (long long)t->seeded);
    PGconn *pg = test_pg();
    const char *q[] = {t->tenant_id, seed};
    test_exec_ok(pg, "INSERT INTO ledger.tenant_prepaid (tenant_id, outstanding) VALUES ($1, $2)",
                 2, q);
    PQfinish(pg);
}

void full_tenant_member(const struct full_tenant *t, char member_id[64])
{
    char phone[16], body[160];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"Full\",\"phone\":\"%s\",\"branch_id\":\"hq\"}",
             phone);
    struct api_response r = api_call("POST", "/v1/members", body, t->key, NULL);
    if (r.status != 201) {
        fprintf(stderr, "test: registering at %s: %ld %s\n", t->tenant_id, r.status, r.raw);
        abort();
    }
    snprintf(member_id, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

void full_tenant_unseed(const struct full_tenant *t)
{
    char seed[24];
    snprintf(seed, sizeof(seed), "%lld", (long long)t->seeded);
    const char *p[] = {t->tenant_id, seed};
    PGconn *pg = test_pg();
    test_exec_ok(pg,
                 "UPDATE ledger.tenant_prepaid SET outstanding = outstanding - $2::bigint "
                 "WHERE tenant_id = $1",
                 2, p);
    PQfinish(pg);
}
