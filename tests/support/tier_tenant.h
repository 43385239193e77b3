/* A tenant of a test's own for the tier tests: its hq branch and an admin
 * key made in SQL (tests may write any schema), then everything else over
 * HTTP with that key: the ladder, members, cash purchases, refunds, and
 * polls (with a deadline) for what tiering did. Asserts throughout. */
#ifndef TESSERA_TEST_TIER_TENANT_H
#define TESSERA_TEST_TIER_TENANT_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "api_client.h"

struct tier_tenant {
    char tenant_id[64];
    char key[64]; /* admin */
};

void tier_tenant_make(struct tier_tenant *t);
/* method path with the tenant's key; caller frees. */
struct api_response tier_tenant_call(const struct tier_tenant *t, const char *method,
                                     const char *path, const char *body);
/* PUT /v1/config/tiers; asserts 200 "applied" (tiering stored it). */
void tier_tenant_put_ladder(const struct tier_tenant *t, const char *body);
void tier_tenant_member(const struct tier_tenant *t, char member_id[64]);
/* A cash purchase at hq; writes its operation id (for a refund). */
void tier_tenant_purchase(const struct tier_tenant *t, const char *member_id, int64_t amount,
                          char operation_id[64]);
/* Refunds the whole purchase; asserts 201. */
void tier_tenant_refund(const struct tier_tenant *t, const char *member_id,
                        const char *operation_id);
/* Polls GET /v1/members/{id} until its tier is name ("": none). */
void tier_tenant_wait_tier(const struct tier_tenant *t, const char *member_id, const char *name);
/* The member's tier_changes reasons in version order, comma-separated. */
void tier_tenant_reasons(PGconn *pg, const struct tier_tenant *t, const char *member_id, char *out,
                         size_t out_len);
/* Polls until sql (one integer) answers want. */
void tier_tenant_wait_sql(PGconn *pg, const char *sql, int n, const char *const *p, int64_t want);
/* What the member would be charged for amount now (the quote). */
int64_t tier_tenant_quote(const struct tier_tenant *t, const char *member_id, int64_t amount);

#endif
