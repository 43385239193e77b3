/* Tiering's projection of qualifying spend: every PurchaseRecorded adds
 * its charged amount to the member's lifetime spend, in the same
 * transaction as the consumed offsets, so a replay never counts twice.
 * Tier evaluation (upgrades, downgrades, TierChanged) builds on this. */
#include <stdio.h>
#include <stdlib.h>

#include "db/db.h"
#include "events/codec.h"
#include "tiering.h"

int tiering_apply_batch(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err,
                        size_t err_len)
{
    struct db_array tenants, members, amounts, times;
    db_array_init(&tenants), db_array_init(&members);
    db_array_init(&amounts), db_array_init(&times);
    for (size_t i = 0; i < b->count; i++) {
        char why[128];
        Envelope *env = envelope_decode(b->msgs[i]->payload, b->msgs[i]->len, why, sizeof(why));
        if (!env) {
            pipeline_mark_poison(b, i, "undecodable envelope");
            continue;
        }
        if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED &&
            env->member_id[0]) {
            char at[32];
            event_format_time(env->occurred_at_us, at);
            db_array_add(&tenants, env->tenant_id);
            db_array_add(&members, env->member_id);
            db_array_add_int(&amounts, env->purchase_recorded->charged);
            db_array_add(&times, at);
        }
        envelope_free(env);
    }
    int rc = 0;
    if (tenants.count > 0) {
        /* Several purchases of one member in a batch are summed first:
         * ON CONFLICT cannot touch the same row twice in one statement. */
        const char *p[4] = {db_array_finish(&tenants), db_array_finish(&members),
                            db_array_finish(&amounts), db_array_finish(&times)};
        PGresult *res = db_query(
            pg,
            "INSERT INTO member_spend (tenant_id, member_id, lifetime_spend, purchases, "
            "last_purchase_at) SELECT t, m, sum(a), count(*), max(at) FROM "
            "unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[]) AS u(t, m, a, at) "
            "GROUP BY t, m ON CONFLICT (tenant_id, member_id) DO UPDATE SET "
            "lifetime_spend = member_spend.lifetime_spend + EXCLUDED.lifetime_spend, "
            "purchases = member_spend.purchases + EXCLUDED.purchases, "
            "last_purchase_at = greatest(member_spend.last_purchase_at, "
            "EXCLUDED.last_purchase_at)",
            4, p, err, err_len, NULL);
        rc = res ? 0 : -1;
        PQclear(res);
    }
    db_array_free(&tenants), db_array_free(&members);
    db_array_free(&amounts), db_array_free(&times);
    return rc;
}
