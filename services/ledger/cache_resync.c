/* Cache repair at start: the ledger writes Redis after commit, so a crash
 * between a batch's commit and its cache write leaves those members'
 * cached balances and cards one version behind until their next change,
 * and readers would see the old values (the audit reports them). On
 * start, before it schedules anything, the ledger rewrites from
 * PostgreSQL the balances and cards changed in the last
 * TESSERA_LEDGER_CACHE_RESYNC_S seconds; cache_sync.c does the same, for
 * the outage's length, when Redis comes back after batches went by
 * without it. The writes are versioned (per card for cards), so a row
 * that is already current, or that a live batch has meanwhile moved
 * further, is left alone: the resync can never make the cache older. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cards.h"
#include "ledger.h"
#include "log/log.h"

#define RESYNC_CHUNK         1000
#define RESYNC_CARDS_MEMBERS 500 /* members whose cards one page rewrites */
#define RESYNC_TIMEOUT_MS    2000

/* Writes one chunk of rows (tenant, member, points, principal, bonus,
 * version, points pending) to Redis; -1 on a Redis failure. */
static int resync_chunk(redisContext *rc, const PGresult *res, char *err, size_t err_len)
{
    int n = PQntuples(res);
    struct cache_balances items[RESYNC_CHUNK];
    for (int i = 0; i < n; i++)
        items[i] = (struct cache_balances){.tenant_id = PQgetvalue(res, i, 0),
                                           .member_id = PQgetvalue(res, i, 1),
                                           .points = db_int_at(res, i, 2),
                                           .sv_principal = db_int_at(res, i, 3),
                                           .sv_bonus = db_int_at(res, i, 4),
                                           .version = db_int_at(res, i, 5),
                                           .points_pending = db_int_at(res, i, 6)};
    return cache_put_balances(rc, items, (size_t)n, err, err_len) < 0 ? -1 : n;
}

/* Pages through the recent rows by key (tenant, member), so each page is
 * one indexed range read. Returns the rows written or -1. */
static long long resync_pages(PGconn *pg, redisContext *rc, const char *window_s)
{
    char err[256], tenant[CACHE_KEY_MAX] = "", member[CACHE_KEY_MAX] = "";
    long long rewritten = 0;
    for (;;) {
        const char *p[3] = {window_s, tenant, member};
        PGresult *res = db_query(
            pg,
            "SELECT tenant_id, member_id, points, sv_principal, sv_bonus, "
            "version, points_pending FROM balances WHERE updated_at > now() - $1::bigint * "
            "interval '1 second' AND (tenant_id, member_id) > ($2, $3) "
            "ORDER BY tenant_id, member_id LIMIT 1000",
            3, p, err, sizeof(err), NULL);
        if (!res) {
            log_fields(LOG_WARN, "cache resync: cannot read balances", "error", err, NULL);
            return -1;
        }
        int n = PQntuples(res);
        if (n > 0 && resync_chunk(rc, res, err, sizeof(err)) < 0) {
            log_fields(LOG_WARN, "cache resync: redis write failed", "error", err, NULL);
            PQclear(res);
            return -1;
        }
        rewritten += n;
        if (n > 0) {
            snprintf(tenant, sizeof(tenant), "%s", PQgetvalue(res, n - 1, 0));
            snprintf(member, sizeof(member), "%s", PQgetvalue(res, n - 1, 1));
        }
        PQclear(res);
        if (n < RESYNC_CHUNK)
            return rewritten;
    }
}

/* Pages through the members whose cards changed recently, by key, and
 * rewrites each one's whole set of cards (as a batch does). Returns the
 * members written or -1. */
static long long resync_card_pages(PGconn *pg, redisContext *rc, const char *window_s)
{
    char err[256], tenant[CACHE_KEY_MAX] = "", member[CACHE_KEY_MAX] = "";
    long long rewritten = 0;
    struct ledger_cards *cards = cards_new();
    for (;;) {
        const char *p[3] = {window_s, tenant, member};
        PGresult *res = db_query(pg,
                                 "SELECT DISTINCT tenant_id, member_id FROM cards "
                                 "WHERE updated_at > now() - $1::bigint * interval '1 second' "
                                 "AND (tenant_id, member_id) > ($2, $3) "
                                 "ORDER BY tenant_id, member_id LIMIT 500",
                                 3, p, err, sizeof(err), NULL);
        if (!res) {
            log_fields(LOG_WARN, "cache resync: cannot read cards", "error", err, NULL);
            rewritten = -1;
            break;
        }
        int n = PQntuples(res);
        struct db_array t, m;
        db_array_init(&t), db_array_init(&m);
        for (int i = 0; i < n; i++) {
            db_array_add(&t, PQgetvalue(res, i, 0));
            db_array_add(&m, PQgetvalue(res, i, 1));
        }
        if (n > 0) {
            snprintf(tenant, sizeof(tenant), "%s", PQgetvalue(res, n - 1, 0));
            snprintf(member, sizeof(member), "%s", PQgetvalue(res, n - 1, 1));
        }
        PQclear(res);
        const struct cache_member_cards *items = NULL;
        int status = cards_cache_load(pg, cards, &t, &m, err, sizeof(err));
        db_array_free(&t), db_array_free(&m);
        size_t count = status == 0 ? cards_cache_state(cards, &items) : 0;
        if (status != 0 || (count > 0 && cache_put_cards(rc, items, count, err, sizeof(err)) < 0)) {
            log_fields(LOG_WARN, "cache resync: cards not rewritten", "error", err, NULL);
            rewritten = -1;
            break;
        }
        rewritten += (long long)count;
        if (n < RESYNC_CARDS_MEMBERS)
            break;
    }
    cards_free(cards);
    return rewritten;
}

int ledger_cache_resync(const struct service_common_config *c, long long window_s)
{
    if (window_s <= 0)
        return 0;
    char err[256], window[24];
    int status = -1;
    PGconn *pg = db_connect(c->pg_dsn, "ledger", "tessera-ledger-resync",
                            (int)c->pg_statement_timeout_ms, err, sizeof(err));
    redisContext *rc =
        pg ? cache_connect(c->redis_host, (int)c->redis_port, RESYNC_TIMEOUT_MS, err, sizeof(err))
           : NULL;
    if (!pg || !rc) {
        /* the cache is only a cache: the audit will name what stays stale */
        log_fields(LOG_WARN, "cache resync skipped", "error", err, NULL);
    } else {
        snprintf(window, sizeof(window), "%lld", window_s);
        long long n = resync_pages(pg, rc, window);
        long long k = n >= 0 ? resync_card_pages(pg, rc, window) : -1;
        if (n >= 0 && k >= 0) {
            char count[24], card_members[24];
            snprintf(count, sizeof(count), "%lld", n);
            snprintf(card_members, sizeof(card_members), "%lld", k);
            log_fields(LOG_INFO, "cache resync done", "members", count, "card_members",
                       card_members, "window_s", window, NULL);
            status = 0;
        }
    }
    if (rc)
        redisFree(rc);
    if (pg)
        PQfinish(pg);
    return status;
}
