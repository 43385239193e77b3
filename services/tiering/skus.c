/* What members bought, by SKU, for entitlements by purchase
 * (docs/entitlements.md). Tiering sees every purchase once (a counted
 * fact, in the transaction of its offsets), so it is the one writer of
 * member_sku_purchases: a redelivered purchase is not counted again and
 * adds nothing, a counted refund of a purchase marks its rows refunded.
 * After commit each touched member's whole set, read back in the same
 * transaction, replaces its Redis hash (cache_skus.h), where ingest's
 * entitlement check reads it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "tiering.h"
#include "util/array.h"

#define SKUS_SYNC_CHUNK 4096 /* members in one pipelined cache write */

static void rows_init(struct tiering_skus *s)
{
    db_array_init(&s->tenant), db_array_init(&s->member), db_array_init(&s->sku);
    db_array_init(&s->command), db_array_init(&s->at);
    db_array_init(&s->ref_tenant), db_array_init(&s->ref_member), db_array_init(&s->ref_command);
    db_array_init(&s->touched_tenant), db_array_init(&s->touched_member);
}

void tiering_skus_reset(struct tiering_skus *s)
{
    db_array_free(&s->tenant), db_array_free(&s->member), db_array_free(&s->sku);
    db_array_free(&s->command), db_array_free(&s->at);
    db_array_free(&s->ref_tenant), db_array_free(&s->ref_member), db_array_free(&s->ref_command);
    db_array_free(&s->touched_tenant), db_array_free(&s->touched_member);
    rows_init(s);
    for (size_t i = 0; i < s->member_count; i++) {
        free((char *)s->members[i].tenant_id);
        free((char *)s->members[i].member_id);
    }
    for (size_t i = 0; i < s->name_count; i++)
        free(s->names[i]);
    s->member_count = s->name_count = 0;
}

void tiering_skus_note(struct tiering_skus *s, const struct tiering_purchase *f)
{
    const Envelope *e = f->env;
    bool refund = strcmp(f->kind, "refund") == 0;
    if (!refund && e->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED)
        return; /* card sales grant through the card rule */
    db_array_add(&s->touched_tenant, e->tenant_id);
    db_array_add(&s->touched_member, e->member_id);
    if (refund) {
        db_array_add(&s->ref_tenant, e->tenant_id);
        db_array_add(&s->ref_member, e->member_id);
        db_array_add(&s->ref_command, f->refund_of);
        return;
    }
    for (size_t i = 0; i < e->purchase_recorded->n_items; i++) {
        const char *sku = e->purchase_recorded->items[i]->sku;
        if (!sku || !sku[0] || strlen(sku) > CACHE_SKU_MAX)
            continue; /* ingest never sends one: nothing to grant */
        db_array_add(&s->tenant, e->tenant_id);
        db_array_add(&s->member, e->member_id);
        db_array_add(&s->sku, sku);
        db_array_add(&s->command, f->command_id);
        db_array_add_int(&s->at, f->at_us);
    }
}

/* The touched members' whole sets, into s->members/names. */
static int read_back(PGconn *pg, struct tiering_skus *s, const char *tenants, const char *members,
                     char *err, size_t err_len)
{
    const char *p[2] = {tenants, members};
    PGresult *res =
        db_query(pg,
                 "SELECT k.t, k.m, r.sku, r.last_purchased_us FROM (SELECT DISTINCT t, m FROM "
                 "unnest($1::text[], $2::text[]) AS u(t, m)) k LEFT JOIN read_member_skus r "
                 "ON r.tenant_id = k.t AND r.member_id = k.m ORDER BY k.t, k.m, r.sku",
                 2, p, err, err_len, NULL);
    if (!res)
        return -1;
    struct cache_member_skus *cm = NULL;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *t = PQgetvalue(res, i, 0), *m = PQgetvalue(res, i, 1);
        if (!cm || strcmp(cm->tenant_id, t) != 0 || strcmp(cm->member_id, m) != 0) {
            s->members =
                array_grow(s->members, s->member_count, &s->member_cap, sizeof(*s->members));
            cm = &s->members[s->member_count++];
            *cm = (struct cache_member_skus){.tenant_id = strdup(t), .member_id = strdup(m)};
            cm->n = s->name_count; /* the first name's index until fixed below */
        }
        if (PQgetisnull(res, i, 2))
            continue; /* the member holds none */
        size_t cap = s->name_cap;
        s->names = array_grow(s->names, s->name_count, &cap, sizeof(*s->names));
        s->last_us = array_grow(s->last_us, s->name_count, &s->name_cap, sizeof(*s->last_us));
        s->names[s->name_count] = strdup(PQgetvalue(res, i, 2));
        s->last_us[s->name_count++] = db_int_at(res, i, 3);
    }
    PQclear(res);
    /* pointers only now: names grew while reading */
    for (size_t i = 0; i < s->member_count; i++) {
        size_t first = s->members[i].n;
        size_t end = i + 1 < s->member_count ? s->members[i + 1].n : s->name_count;
        s->members[i].skus = (const char *const *)&s->names[first];
        s->members[i].last_us = &s->last_us[first];
        s->members[i].n = end - first;
    }
    return 0;
}

int tiering_skus_write(PGconn *pg, struct tiering_skus *s, char *err, size_t err_len)
{
    bool any = s->touched_tenant.count > 0;
    struct db_array bought[5] = {s->tenant, s->member, s->sku, s->command, s->at};
    struct db_array refunded[3] = {s->ref_tenant, s->ref_member, s->ref_command};
    struct db_array touched_t = s->touched_tenant, touched_m = s->touched_member;
    rows_init(s); /* the columns are db_write_columns' (and this function's) to free */
    /* a purchase is counted once, so its rows are new; DO NOTHING keeps a
     * replayed batch harmless all the same */
    int rc = db_write_columns(
        pg,
        "INSERT INTO member_sku_purchases (tenant_id, member_id, sku, command_id, "
        "purchased_us) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
        "$5::bigint[]) ON CONFLICT DO NOTHING",
        bought, 5, err, err_len);
    if (rc == 0)
        rc = db_write_columns(pg,
                              "UPDATE member_sku_purchases p SET refunded = true FROM unnest("
                              "$1::text[], $2::text[], $3::text[]) AS r(t, m, c) WHERE "
                              "p.tenant_id = r.t AND p.member_id = r.m AND p.command_id = r.c",
                              refunded, 3, err, err_len);
    else
        for (int i = 0; i < 3; i++)
            db_array_free(&refunded[i]);
    if (rc == 0 && any)
        rc = read_back(pg, s, db_array_finish(&touched_t), db_array_finish(&touched_m), err,
                       err_len);
    db_array_free(&touched_t), db_array_free(&touched_m);
    return rc;
}

void tiering_skus_sync(struct tiering_ctx *t)
{
    struct tiering_skus *s = &t->skus;
    char err[256];
    for (size_t done = 0; done < s->member_count;) {
        size_t chunk = s->member_count - done;
        if (chunk > SKUS_SYNC_CHUNK)
            chunk = SKUS_SYNC_CHUNK;
        if (!tiering_cache_ensure(t) ||
            cache_put_skus(t->rc, s->members + done, chunk, err, sizeof(err)) < 0) {
            /* The hash keeps the member's previous set: a purchase just
             * made is denied from the cache until the next write or a
             * flush (then PostgreSQL answers). Logged, like tiers. */
            if (t->rc) {
                log_fields(LOG_WARN, "redis sku write failed; reconnecting", "error", err, NULL);
                redisFree(t->rc);
                t->rc = NULL;
                atomic_store(&t->redis_ok, false);
            }
            break;
        }
        done += chunk;
    }
}
