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
}

void store_rows_free(struct ledger_rows *r)
{
    db_copy_free(&r->commands);
    db_copy_free(&r->journal);
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
        if (strcmp(r->prepaid[i].tenant_id, tenant_id) == 0)
            d = &r->prepaid[i];
    if (!d) {
        if (r->prepaid_count == r->prepaid_cap) {
            r->prepaid_cap = r->prepaid_cap ? 2 * r->prepaid_cap : 8;
            r->prepaid = realloc(r->prepaid, r->prepaid_cap * sizeof(*r->prepaid));
            assert(r->prepaid);
        }
        d = &r->prepaid[r->prepaid_count++];
        *d = (struct ledger_prepaid_delta){.tenant_id = strdup(tenant_id)};
    }
    d->delta += amount;
    free(d->last_command_id);
    d->last_command_id = strdup(cmd_id);
}

void store_add_verdict(struct ledger_rows *r, const Envelope *c, const char *cmd_id,
                       const char *cmd_type, const char *reject_code, const char *posting_id,
                       const uint8_t *verdict, size_t verdict_len, const JournalLine *lines,
                       size_t line_count, const char *reason)
{
    char actor[2 * EVENT_ID_FIELD_MAX + 2] = "";
    if (c->actor)
        snprintf(actor, sizeof(actor), "%s:%s", c->actor->kind, c->actor->id);
    struct db_copy *cmd = &r->commands;
    db_copy_text(cmd, c->tenant_id);
    db_copy_text(cmd, cmd_id);
    db_copy_text(cmd, cmd_type);
    db_copy_text(cmd, c->member_id);
    db_copy_text(cmd, reject_code ? "rejected" : "posted");
    db_copy_text(cmd, reject_code);
    db_copy_text(cmd, reject_code ? NULL : posting_id);
    db_copy_bytea(cmd, verdict, verdict_len);
    db_copy_end_row(cmd);
    for (size_t i = 0; i < line_count; i++) {
        bool member_line = strncmp(lines[i].account, "member:", 7) == 0;
        struct db_copy *j = &r->journal;
        db_copy_text(j, posting_id);
        db_copy_text(j, cmd_id);
        db_copy_text(j, c->tenant_id);
        db_copy_text(j, member_line ? c->member_id : NULL);
        db_copy_text(j, c->branch_id);
        db_copy_text(j, lines[i].account);
        db_copy_text(j, lines[i].asset);
        db_copy_int(j, lines[i].amount);
        db_copy_text(j, reason);
        db_copy_text(j, actor);
        db_copy_end_row(j);
        r->journal_lines++;
        if (member_line && (strcmp(lines[i].asset, "sv_principal") == 0 ||
                            strcmp(lines[i].asset, "sv_bonus") == 0))
            add_prepaid_delta(r, c->tenant_id, cmd_id, lines[i].amount);
    }
}

static int64_t int_at(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static int load_balances(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    struct db_array tenants, members;
    db_array_init(&tenants);
    db_array_init(&members);
    for (size_t i = 0; i < l->member_count; i++) {
        db_array_add(&tenants, l->members[i].tenant_id);
        db_array_add(&members, l->members[i].member_id);
    }
    const char *params[2] = {db_array_finish(&tenants), db_array_finish(&members)};
    PGresult *res = db_query(pg,
                             "SELECT b.tenant_id, b.member_id, b.points, b.sv_principal, "
                             "b.sv_bonus, b.version, b.points_pending FROM balances b "
                             "JOIN unnest($1::text[], $2::text[]) AS k(t, m) "
                             "ON b.tenant_id = k.t AND b.member_id = k.m",
                             2, params, err, err_len, NULL);
    db_array_free(&tenants);
    db_array_free(&members);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        struct ledger_member *m =
            ledger_member_find(l, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), false);
        if (!m)
            continue;
        m->points = int_at(res, i, 2);
        m->sv.principal = int_at(res, i, 3);
        m->sv.bonus = int_at(res, i, 4);
        m->version = int_at(res, i, 5);
        m->points_pending = int_at(res, i, 6);
    }
    PQclear(res);
    return 0;
}

/* Runs a query of per-tenant settings whose $1 is the batch's tenants
 * (the ladders hold one entry per tenant of the batch). Returns the result
 * (caller PQclears) or NULL with err. */
PGresult *store_query_batch_tenants(PGconn *pg, const struct ledger_ctx *l, const char *sql,
                                    char *err, size_t err_len)
{
    struct db_array tenants;
    db_array_init(&tenants);
    for (size_t i = 0; i < l->ladder_count; i++)
        db_array_add(&tenants, l->ladders[i].tenant_id);
    const char *params[1] = {db_array_finish(&tenants)};
    PGresult *res = db_query(pg, sql, 1, params, err, err_len, NULL);
    db_array_free(&tenants);
    return res;
}

/* The ladders' steps and the tenants' outstanding prepaid value in one
 * statement: a row per step, or one without a step for a tenant that has
 * none. */
static int load_ladders(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    PGresult *res = store_query_batch_tenants(
        pg, l,
        "SELECT t.tenant_id, s.threshold, s.bonus, coalesce(p.outstanding, 0) "
        "FROM unnest($1::text[]) AS t(tenant_id) "
        "LEFT JOIN topup_bonus_steps s ON s.tenant_id = t.tenant_id "
        "LEFT JOIN tenant_prepaid p ON p.tenant_id = t.tenant_id "
        "ORDER BY t.tenant_id, s.threshold",
        err, err_len);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        struct ledger_ladder *ld = ledger_ladder_find(l, PQgetvalue(res, i, 0), false);
        if (!ld)
            continue;
        ld->prepaid_outstanding = int_at(res, i, 3);
        if (PQgetisnull(res, i, 1) || ld->count == RULES_BONUS_STEPS_MAX)
            continue;
        ld->steps[ld->count++] =
            (struct bonus_step){.threshold = int_at(res, i, 1), .bonus = int_at(res, i, 2)};
    }
    PQclear(res);
    return 0;
}

static int load_verdicts(PGconn *pg, struct ledger_ctx *l, const char *tenants_literal,
                         const char *ids_literal, char *err, size_t err_len)
{
    const char *params[2] = {tenants_literal, ids_literal};
    PGresult *res = db_query(pg,
                             "SELECT c.tenant_id, c.command_id, c.verdict FROM commands c "
                             "JOIN unnest($1::text[], $2::text[]) AS k(t, id) "
                             "ON c.tenant_id = k.t AND c.command_id = k.id",
                             2, params, err, err_len, NULL);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        size_t len = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &len);
        if (!raw)
            continue;
        uint8_t *copy = malloc(len);
        memcpy(copy, raw, len);
        PQfreemem(raw);
        ledger_verdict_add(l, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), copy, len);
    }
    PQclear(res);
    return 0;
}

int store_load(PGconn *pg, struct ledger_ctx *l, struct db_array *cmd_tenants,
               struct db_array *cmd_ids, char *err, size_t err_len)
{
    if (load_verdicts(pg, l, db_array_finish(cmd_tenants), db_array_finish(cmd_ids), err,
                      err_len) < 0 ||
        load_balances(pg, l, err, err_len) < 0 || load_ladders(pg, l, err, err_len) < 0 ||
        points_load(pg, l, err, err_len) < 0 || refunds_load(pg, l, err, err_len) < 0)
        return -1;
    return 0;
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

static int write_balances(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    struct db_array t, m, pts, pr, bo, ver, pend;
    db_array_init(&t), db_array_init(&m), db_array_init(&pts);
    db_array_init(&pr), db_array_init(&bo), db_array_init(&ver), db_array_init(&pend);
    for (size_t i = 0; i < l->member_count; i++) {
        const struct ledger_member *mb = &l->members[i];
        if (!mb->dirty)
            continue;
        db_array_add(&t, mb->tenant_id);
        db_array_add(&m, mb->member_id);
        db_array_add_int(&pts, mb->points);
        db_array_add_int(&pr, mb->sv.principal);
        db_array_add_int(&bo, mb->sv.bonus);
        db_array_add_int(&ver, mb->version);
        db_array_add_int(&pend, mb->points_pending);
    }
    int rc = 0;
    if (t.count > 0) {
        const char *p[7] = {db_array_finish(&t),   db_array_finish(&m),  db_array_finish(&pts),
                            db_array_finish(&pr),  db_array_finish(&bo), db_array_finish(&ver),
                            db_array_finish(&pend)};
        PGresult *res = db_query(
            pg,
            "INSERT INTO balances (tenant_id, member_id, points, sv_principal, sv_bonus, "
            "version, points_pending) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], "
            "$4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[]) ON CONFLICT (tenant_id, "
            "member_id) DO UPDATE SET points = EXCLUDED.points, sv_principal = "
            "EXCLUDED.sv_principal, sv_bonus = EXCLUDED.sv_bonus, version = EXCLUDED.version, "
            "points_pending = EXCLUDED.points_pending, updated_at = now()",
            7, p, err, err_len, NULL);
        rc = res ? 0 : -1;
        PQclear(res);
    }
    db_array_free(&t), db_array_free(&m), db_array_free(&pts);
    db_array_free(&pr), db_array_free(&bo), db_array_free(&ver), db_array_free(&pend);
    return rc;
}

int store_write(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    if (write_commands(pg, &l->rows, err, err_len) < 0 ||
        write_journal(pg, &l->rows, err, err_len) < 0 || write_balances(pg, l, err, err_len) < 0 ||
        points_write(pg, l, err, err_len) < 0 || refunds_write(pg, l, err, err_len) < 0)
        return -1;
    return 0;
}
