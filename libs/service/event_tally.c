#include "service/event_tally.h"

#include "db/db.h"
#include "events/codec.h"

int event_tally_apply(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len)
{
    struct db_array tenants, types, times;
    db_array_init(&tenants), db_array_init(&types), db_array_init(&times);
    for (size_t i = 0; i < b->count; i++) {
        char why[128];
        Envelope *env = envelope_decode(b->msgs[i]->payload, b->msgs[i]->len, why, sizeof(why));
        if (!env) {
            pipeline_mark_poison(b, i, "undecodable envelope");
            continue;
        }
        char at[32];
        event_format_time(env->occurred_at_us, at);
        db_array_add(&tenants, env->tenant_id);
        db_array_add(&types, env->type);
        db_array_add(&times, at);
        envelope_free(env);
    }
    int rc = 0;
    if (tenants.count > 0) {
        const char *p[3] = {db_array_finish(&tenants), db_array_finish(&types),
                            db_array_finish(&times)};
        PGresult *res =
            db_query(pg,
                     "INSERT INTO event_tally (tenant_id, event_type, events, last_event_at) "
                     "SELECT t, ty, count(*), max(at) FROM unnest($1::text[], $2::text[], "
                     "$3::timestamptz[]) AS u(t, ty, at) GROUP BY t, ty "
                     "ON CONFLICT (tenant_id, event_type) DO UPDATE SET "
                     "events = event_tally.events + EXCLUDED.events, "
                     "last_event_at = greatest(event_tally.last_event_at, EXCLUDED.last_event_at)",
                     3, p, err, err_len, NULL);
        rc = res ? 0 : -1;
        PQclear(res);
    }
    db_array_free(&tenants), db_array_free(&types), db_array_free(&times);
    return rc;
}
