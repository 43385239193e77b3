/* The ledger's PostgreSQL statements. A batch costs a fixed number of
 * round trips whatever its size: loads through unnest() of array
 * parameters, verdicts and journal lines through COPY, balances through
 * one upsert. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "log/log.h"

void store_rows_init(struct ledger_rows *r)
{
    memset(r, 0, sizeof(*r));
    db_copy_init(&r->commands);
    db_copy_init(&r->journal);
    for (int i = 0; i < LEDGER_COMMAND_COLUMNS; i++)
        db_array_init(&r->command_cols[i]);
    for (int i = 0; i < LEDGER_JOURNAL_COLUMNS; i++)
        db_array_init(&r->journal_cols[i]);
}

void store_rows_free(struct ledger_rows *r)
{
    db_copy_free(&r->commands);
    db_copy_free(&r->journal);
    for (int i = 0; i < LEDGER_COMMAND_COLUMNS; i++)
        db_array_free(&r->command_cols[i]);
    for (int i = 0; i < LEDGER_JOURNAL_COLUMNS; i++)
        db_array_free(&r->journal_cols[i]);
    for (size_t i = 0; i < r->prepaid_count; i++) {
        free(r->prepaid[i].tenant_id);
        free(r->prepaid[i].last_command_id);
    }
    free(r->prepaid);
    memset(r, 0, sizeof(*r));
}

/* Stored value moving in or out of a member's balance changes the tenant's
 * outstanding prepaid liability (prepaid.c). */
static void add_prepaid_delta(struct ledger_rows *r, const char *tenant_id, const char *cmd_id,
                              int64_t amount)
{
    struct ledger_prepaid_delta *d = NULL;
    for (size_t i = 0; i < r->prepaid_count && !d; i++) /* a batch has few tenants */
        if (r->prepaid[i].tenant_id && strcmp(r->prepaid[i].tenant_id, tenant_id) == 0)
            d = &r->prepaid[i];
    if (!d) {
        if (r->prepaid_count == r->prepaid_cap) {
            size_t cap = r->prepaid_cap ? 2 * r->prepaid_cap : 8;
            void *grown = realloc(r->prepaid, cap * sizeof(*r->prepaid));
            if (!grown) {
                r->out_of_memory = true;
                return;
            }
            r->prepaid = grown;
            r->prepaid_cap = cap;
        }
        d = &r->prepaid[r->prepaid_count++];
        *d = (struct ledger_prepaid_delta){.tenant_id = strdup(tenant_id)};
    }
    d->delta += amount;
    free(d->last_command_id);
    d->last_command_id = strdup(cmd_id);
    r->out_of_memory |= !d->tenant_id || !d->last_command_id;
}

/* One row's fields go to the COPY rows or, for a small batch, to the
 * column arrays (one element per column): the same text either way. */
struct row_sink {
    struct db_copy *copy; /* NULL: the arrays */
    struct db_array *cols;
    int col;
};

static void sink_text(struct row_sink *s, const char *value)
{
    if (s->copy)
        db_copy_text(s->copy, value);
    else
        db_array_add(&s->cols[s->col++], value);
}

static void sink_int(struct row_sink *s, long long value)
{
    if (s->copy)
        db_copy_int(s->copy, value);
    else
        db_array_add_int(&s->cols[s->col++], value);
}

static void sink_bytea(struct row_sink *s, const void *data, size_t len)
{
    if (s->copy)
        db_copy_bytea(s->copy, data, len);
    else
        db_array_add_bytea(&s->cols[s->col++], data, len);
}

static void sink_end_row(struct row_sink *s, int columns)
{
    if (s->copy)
        db_copy_end_row(s->copy);
    else
        assert(s->col == columns);
    s->col = 0;
}

void store_add_verdict(struct ledger_rows *r, const Envelope *c, const char *cmd_id,
                       const char *cmd_type, const char *reject_code, const char *posting_id,
                       const uint8_t *verdict, size_t verdict_len, const JournalLine *lines,
                       size_t line_count, const char *reason)
{
    char actor[2 * EVENT_ID_FIELD_MAX + 2] = "";
    if (c->actor)
        snprintf(actor, sizeof(actor), "%s:%s", c->actor->kind, c->actor->id);
    struct row_sink cmd = {r->by_insert ? NULL : &r->commands, r->command_cols, 0};
    sink_text(&cmd, c->tenant_id);
    sink_text(&cmd, cmd_id);
    sink_text(&cmd, cmd_type);
    sink_text(&cmd, c->member_id);
    sink_text(&cmd, reject_code ? "rejected" : "posted");
    sink_text(&cmd, reject_code);
    sink_text(&cmd, reject_code ? NULL : posting_id);
    sink_bytea(&cmd, verdict, verdict_len);
    sink_end_row(&cmd, LEDGER_COMMAND_COLUMNS);
    struct row_sink j = {r->by_insert ? NULL : &r->journal, r->journal_cols, 0};
    for (size_t i = 0; i < line_count; i++) {
        bool member_line = strncmp(lines[i].account, "member:", 7) == 0;
        sink_text(&j, posting_id);
        sink_text(&j, cmd_id);
        sink_text(&j, c->tenant_id);
        sink_text(&j, member_line ? c->member_id : NULL);
        sink_text(&j, c->branch_id);
        sink_text(&j, lines[i].account);
        sink_text(&j, lines[i].asset);
        sink_int(&j, lines[i].amount);
        sink_text(&j, reason);
        sink_text(&j, actor);
        sink_end_row(&j, LEDGER_JOURNAL_COLUMNS);
        r->journal_lines++;
        if (member_line && (strcmp(lines[i].asset, "sv_principal") == 0 ||
                            strcmp(lines[i].asset, "sv_bonus") == 0))
            add_prepaid_delta(r, c->tenant_id, cmd_id, lines[i].amount);
    }
}

static const char LOAD_BALANCES_SQL[] =
    "SELECT b.tenant_id, b.member_id, b.points, b.sv_principal, b.sv_bonus, b.version, "
    "b.points_pending FROM balances b JOIN unnest($1::text[], $2::text[]) AS k(t, m) "
    "ON b.tenant_id = k.t AND b.member_id = k.m";

static int read_balances(void *ctx, const PGresult *res, char *err, size_t err_len)
{
    struct ledger_ctx *l = ctx;
    for (int i = 0; i < PQntuples(res); i++) {
        struct ledger_member *m =
            ledger_member_find(l, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), false);
        if (!m)
            continue;
        m->points = db_int_at(res, i, 2);
        m->sv.principal = db_int_at(res, i, 3);
        m->sv.bonus = db_int_at(res, i, 4);
        m->version = m->loaded_version = db_int_at(res, i, 5);
        m->points_pending = db_int_at(res, i, 6);
    }
    return 0;
}

void store_queue_batch_members(struct db_pipeline *pl, struct ledger_ctx *l, const char *sql,
                               db_pipeline_read_fn read)
{
    struct db_array tenants, members;
    db_array_init(&tenants);
    db_array_init(&members);
    for (size_t i = 0; i < l->member_count; i++) {
        db_array_add(&tenants, l->members[i].tenant_id);
        db_array_add(&members, l->members[i].member_id);
    }
    const char *params[2] = {db_array_finish(&tenants), db_array_finish(&members)};
    db_pipeline_add(pl, sql, 2, params, read, l);
    db_array_free(&tenants);
    db_array_free(&members);
}

void store_queue_batch_tenants(struct db_pipeline *pl, struct ledger_ctx *l, const char *sql,
                               db_pipeline_read_fn read)
{
    struct db_array tenants;
    db_array_init(&tenants);
    for (size_t i = 0; i < l->ladder_count; i++)
        db_array_add(&tenants, l->ladders[i].tenant_id);
    const char *params[1] = {db_array_finish(&tenants)};
    db_pipeline_add(pl, sql, 1, params, read, l);
    db_array_free(&tenants);
}

/* The ladders' steps and the tenants' outstanding prepaid value in one
 * statement: a row per step, or one without a step for a tenant that has
 * none. */
static const char LOAD_LADDERS_SQL[] =
    "SELECT t.tenant_id, s.threshold, s.bonus, coalesce(p.outstanding, 0) "
    "FROM unnest($1::text[]) AS t(tenant_id) "
    "LEFT JOIN topup_bonus_steps s ON s.tenant_id = t.tenant_id "
    "LEFT JOIN tenant_prepaid p ON p.tenant_id = t.tenant_id "
    "ORDER BY t.tenant_id, s.threshold";

static int read_ladders(void *ctx, const PGresult *res, char *err, size_t err_len)
{
    struct ledger_ctx *l = ctx;
    for (int i = 0; i < PQntuples(res); i++) {
        struct ledger_ladder *ld = ledger_ladder_find(l, PQgetvalue(res, i, 0), false);
        if (!ld)
            continue;
        ld->prepaid_outstanding = db_int_at(res, i, 3);
        if (PQgetisnull(res, i, 1) || ld->count == RULES_BONUS_STEPS_MAX)
            continue;
        ld->steps[ld->count++] =
            (struct bonus_step){.threshold = db_int_at(res, i, 1), .bonus = db_int_at(res, i, 2)};
    }
    return 0;
}

static const char LOAD_VERDICTS_SQL[] =
    "SELECT c.tenant_id, c.command_id, c.verdict FROM commands c "
    "JOIN unnest($1::text[], $2::text[]) AS k(t, id) "
    "ON c.tenant_id = k.t AND c.command_id = k.id";

static int read_verdicts(void *ctx, const PGresult *res, char *err, size_t err_len)
{
    struct ledger_ctx *l = ctx;
    for (int i = 0; i < PQntuples(res); i++) {
        size_t len = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &len);
        if (!raw)
            continue;
        uint8_t *copy = malloc(len ? len : 1);
        if (copy)
            memcpy(copy, raw, len);
        PQfreemem(raw);
        if (!copy) {
            snprintf(err, err_len, "load verdicts: out of memory");
            return -1;
        }
        ledger_verdict_add(l, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), copy, len);
    }
    return 0;
}

/* The batch's loads in one round trip (db/pipeline.h): verdicts already
 * given, balances, ladders and prepaid totals, and when the batch needs
 * them the points policies and lots, the first-day lines, the refund fee
 * rules and the purchases refunds and earnings name. Each reads keys the
 * decode step collected, none another's rows. */
int store_load(PGconn *pg, struct ledger_ctx *l, struct db_array *cmd_tenants,
               struct db_array *cmd_ids, char *err, size_t err_len)
{
    struct db_pipeline pl;
    db_pipeline_init(&pl);
    const char *keys[2] = {db_array_finish(cmd_tenants), db_array_finish(cmd_ids)};
    db_pipeline_add(&pl, LOAD_VERDICTS_SQL, 2, keys, read_verdicts, l);
    store_queue_batch_members(&pl, l, LOAD_BALANCES_SQL, read_balances);
    store_queue_batch_tenants(&pl, l, LOAD_LADDERS_SQL, read_ladders);
    points_queue_load(&pl, l);
    firstday_queue_load(&pl, l);
    refunds_queue_load(&pl, l);
    int rc = db_pipeline_run(pg, &pl, err, err_len);
    db_pipeline_free(&pl);
    return rc;
}

static int write_commands(PGconn *pg, struct ledger_rows *r, char *err, size_t err_len)
{
    return db_copy_send(pg,
                        "COPY commands (tenant_id, command_id, command_type, member_id, status, "
                        "code, posting_id, verdict) FROM STDIN",
                        &r->commands, err, err_len);
}

static int write_journal(PGconn *pg, struct ledger_rows *r, char *err, size_t err_len)
{
    return db_copy_send(pg,
                        "COPY journal (posting_id, command_id, tenant_id, member_id, branch_id, "
                        "account, asset, amount, reason, actor) FROM STDIN",
                        &r->journal, err, err_len);
}

/* The small batch's rows (by_insert): the same columns as the COPYs. */
static const char INSERT_COMMANDS_SQL[] =
    "INSERT INTO commands (tenant_id, command_id, command_type, member_id, status, code, "
    "posting_id, verdict) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
    "$5::text[], $6::text[], $7::text[], $8::bytea[])";

static const char INSERT_JOURNAL_SQL[] =
    "INSERT INTO journal (posting_id, command_id, tenant_id, member_id, branch_id, account, "
    "asset, amount, reason, actor) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], "
    "$4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[])";

static void queue_columns(struct db_pipeline *pl, const char *sql, struct db_array *cols, int n)
{
    if (cols[0].count == 0)
        return;
    const char *p[LEDGER_JOURNAL_COLUMNS];
    assert(n <= LEDGER_JOURNAL_COLUMNS);
    for (int i = 0; i < n; i++)
        p[i] = db_array_finish(&cols[i]);
    db_pipeline_add(pl, sql, n, p, NULL, NULL);
}

/* The balances of the batch's changed members, written only where the
 * row is still as the batch loaded it (same version, or still absent).
 * Loads take no lock, so two workers can load one member's balance at
 * once (after partitions grow, a member's old and new partitions can
 * belong to different workers for a while): the second write then finds
 * another version, or a row where it found none, and the whole batch
 * fails and is retried from a fresh load instead of overwriting the
 * first. Under READ COMMITTED, a write that waits for the other
 * transaction's row lock re-checks the version against the committed
 * row. */
static const char WRITE_BALANCES_SQL[] =
    "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], "
    "$5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[]) "
    "AS u(t, m, points, principal, bonus, version, pending, loaded)), "
    "upd AS (UPDATE balances b SET points = u.points, sv_principal = u.principal, "
    "sv_bonus = u.bonus, version = u.version, points_pending = u.pending, updated_at = now() "
    "FROM u WHERE u.loaded >= 0 AND b.tenant_id = u.t AND b.member_id = u.m "
    "AND b.version = u.loaded RETURNING 1), "
    "ins AS (INSERT INTO balances (tenant_id, member_id, points, sv_principal, sv_bonus, "
    "version, points_pending) SELECT t, m, points, principal, bonus, version, pending FROM u "
    "WHERE u.loaded < 0 ON CONFLICT (tenant_id, member_id) DO NOTHING RETURNING 1) "
    "SELECT (SELECT count(*) FROM upd) + (SELECT count(*) FROM ins)";

enum {
    BAL_TENANT,
    BAL_MEMBER,
    BAL_POINTS,
    BAL_PRINCIPAL,
    BAL_BONUS,
    BAL_VERSION,
    BAL_PENDING,
    BAL_LOADED,
    BAL_COLUMNS
};

/* The upsert's answer: every changed member's row written, or another
 * writer got there first. */
static int read_balances_written(void *ctx, const PGresult *res, char *err, size_t err_len)
{
    size_t dirty = *(const size_t *)ctx;
    if (strtoull(PQgetvalue(res, 0, 0), NULL, 10) == dirty)
        return 0;
    snprintf(err, err_len,
             "balances changed by another writer since this batch loaded them; "
             "retrying from a fresh load");
    return -1;
}

/* Queues the upsert of the changed members' balances; *dirty (which must
 * outlive the run) receives their count. */
static void queue_balances(struct db_pipeline *pl, struct ledger_ctx *l, size_t *dirty)
{
    struct db_array a[BAL_COLUMNS];
    for (int i = 0; i < BAL_COLUMNS; i++)
        db_array_init(&a[i]);
    for (size_t i = 0; i < l->member_count; i++) {
        const struct ledger_member *mb = &l->members[i];
        if (!mb->dirty)
            continue;
        db_array_add(&a[BAL_TENANT], mb->tenant_id);
        db_array_add(&a[BAL_MEMBER], mb->member_id);
        db_array_add_int(&a[BAL_POINTS], mb->points);
        db_array_add_int(&a[BAL_PRINCIPAL], mb->sv.principal);
        db_array_add_int(&a[BAL_BONUS], mb->sv.bonus);
        db_array_add_int(&a[BAL_VERSION], mb->version);
        db_array_add_int(&a[BAL_PENDING], mb->points_pending);
        db_array_add_int(&a[BAL_LOADED], mb->loaded_version);
    }
    *dirty = a[BAL_TENANT].count;
    if (*dirty > 0) {
        const char *p[BAL_COLUMNS];
        for (int i = 0; i < BAL_COLUMNS; i++)
            p[i] = db_array_finish(&a[i]);
        db_pipeline_add(pl, WRITE_BALANCES_SQL, BAL_COLUMNS, p, read_balances_written, dirty);
    }
    for (int i = 0; i < BAL_COLUMNS; i++)
        db_array_free(&a[i]);
}

/* A large batch's verdicts and journal go by COPY first (not allowed in
 * pipeline mode); then one round trip holds a small batch's verdicts and
 * journal, and every batch's balances and lots. All inside the batch's
 * transaction: a failed statement fails the batch, which rolls back. */
int store_write(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    struct ledger_rows *r = &l->rows;
    if (r->out_of_memory) {
        snprintf(err, err_len, "store write: out of memory building the batch's rows");
        return -1;
    }
    if (!r->by_insert &&
        (write_commands(pg, r, err, err_len) < 0 || write_journal(pg, r, err, err_len) < 0))
        return -1;
    struct db_pipeline pl;
    db_pipeline_init(&pl);
    if (r->by_insert) {
        queue_columns(&pl, INSERT_COMMANDS_SQL, r->command_cols, LEDGER_COMMAND_COLUMNS);
        queue_columns(&pl, INSERT_JOURNAL_SQL, r->journal_cols, LEDGER_JOURNAL_COLUMNS);
    }
    size_t dirty = 0;
    queue_balances(&pl, l, &dirty);
    points_queue_write(&pl, l);
    int rc = db_pipeline_run(pg, &pl, err, err_len);
    db_pipeline_free(&pl);
    if (rc < 0 || refunds_write(pg, l, err, err_len) < 0)
        return -1;
    return 0;
}
