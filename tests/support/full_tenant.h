/* A tenant whose outstanding prepaid value is a little under the most a
 * bigint holds (INT64_MAX - headroom), for tests of the ledger's overflow
 * checks (issue 10, item 2). Reaching it with real top-ups would take
 * ~900 000 of the largest ones, so the tenant's tenant_prepaid row is
 * seeded, and taken back down by as much when the test is done so the
 * audit (outstanding = sum of the members' balances) holds again. */
#ifndef TESSERA_TEST_FULL_TENANT_H
#define TESSERA_TEST_FULL_TENANT_H

#include <stdint.h>

struct full_tenant {
    char tenant_id[48];
    char key[64];   /* an admin API key of the tenant */
    int64_t seeded; /* what was added to tenant_prepaid.outstanding */
};

/* Creates the tenant (its hq branch and an admin key) and seeds it so
 * that headroom more minor units of stored value fit. Asserts. */
void full_tenant_make(struct full_tenant *t, int64_t headroom);
/* Registers a member at the tenant's hq; writes its id. Asserts 201. */
void full_tenant_member(const struct full_tenant *t, char member_id[64]);
/* Takes the seed back out of tenant_prepaid. */
void full_tenant_unseed(const struct full_tenant *t);

#endif
