/* The ledger service's shared state: what one batch loaded and what it
 * will write. Only the pipeline thread touches it, except the atomics the
 * admin port reads. */
#ifndef TESSERA_LEDGER_H
#define TESSERA_LEDGER_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"
#include "rules.h"
#include "service/pipeline.h"

struct ledger_member {
    char *tenant_id;
    char *member_id;
    struct sv_balance sv;
    int64_t points;
    int64_t version;
    bool dirty; /* changed in this batch: write to PostgreSQL and Redis */
};

struct ledger_ladder {
    char *tenant_id;
    struct bonus_step steps[RULES_BONUS_STEPS_MAX];
    size_t count;
};

/* A verdict already given: from the database or earlier in the batch. */
struct ledger_verdict {
    char *tenant_id;
    char *command_id;
    uint8_t *envelope; /* encoded LedgerPosted/LedgerRejected envelope */
    size_t len;
};

/* Rows of one batch, as PostgreSQL array literals for unnest(). */
struct ledger_rows {
    struct db_array cmd_tenant, cmd_id, cmd_type, cmd_member, cmd_status, cmd_code, cmd_posting,
        cmd_verdict;
    struct db_array j_posting, j_command, j_tenant, j_member, j_branch, j_account, j_asset,
        j_amount, j_reason, j_actor;
};

struct ledger_ctx {
    /* configuration */
    const char *redis_host;
    int redis_port;
    redisContext *rc;
    atomic_bool redis_ok;
    /* counters for /metrics */
    atomic_llong posted, rejected, duplicates;
    /* the batch in hand (reset by ledger_begin_batch) */
    struct ledger_member *members;
    size_t member_count, member_cap;
    struct ledger_ladder *ladders;
    size_t ladder_count, ladder_cap;
    struct ledger_verdict *verdicts;
    size_t verdict_count, verdict_cap;
    struct ledger_rows rows;
};

/* pipeline_ops callbacks (apply.c) */
void ledger_begin_batch(void *ctx);
int ledger_apply_batch(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len);
void ledger_after_commit(void *ctx, struct pipeline_batch *b);

/* lookups in the batch state (apply.c) */
struct ledger_member *ledger_member_find(struct ledger_ctx *l, const char *tenant_id,
                                         const char *member_id, bool create);
struct ledger_verdict *ledger_verdict_find(struct ledger_ctx *l, const char *tenant_id,
                                           const char *command_id);
void ledger_verdict_add(struct ledger_ctx *l, const char *tenant_id, const char *command_id,
                        uint8_t *envelope, size_t len);
struct ledger_ladder *ledger_ladder_find(struct ledger_ctx *l, const char *tenant_id, bool create);

/* the database side (store.c) */
/* Loads the verdicts already given for the batch's command ids, the
 * balances of its members and the ladders of its tenants. */
int store_load(PGconn *pg, struct ledger_ctx *l, struct db_array *cmd_tenants,
               struct db_array *cmd_ids, char *err, size_t err_len);
int store_write(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len);
void store_rows_init(struct ledger_rows *r);
void store_rows_free(struct ledger_rows *r);

/* the cache side (cache_sync.c) */
void ledger_cache_sync(struct ledger_ctx *l);

#endif
