/* The first-day limit on freshly topped-up stored value in the batch
 * (the rule: rules_firstday.h).
 *
 * What "today" means: the local day, in the tenant's time zone (the UTC
 * offset ingest puts into the spending command, as for card uses), of the
 * ledger's clock when the batch is applied. The ledger's clock because the
 * journal's created_at is the only time it keeps of the top-ups already
 * posted: spends and top-ups are then measured on one clock, and an
 * offline upload of an old purchase spending value topped up today is
 * limited like any other.
 *
 * Where T comes from: the journal, read in the batch's load phase with one
 * statement, only for members that spend stored value in the batch and
 * only in tenants with a limit (or whose limit a command of the batch
 * sets): their member lines of top-ups ("topup:" reasons) and stored-value
 * refunds ("refund_stored_value:") since local midnight, folded in order
 * by the pure rules. Then the batch's own top-ups and refunds keep it
 * current in memory. No table of our own: nothing more to write per batch
 * (the journal is what the ledger writes most; a per-member-day table
 * would add an upsert to every batch with a top-up in a tenant with a
 * limit, and a load to every batch with a top-up to know which tenants
 * those are), and nothing that can drift from the journal.
 *
 * Cost: one statement per batch that spends stored value (none
 * otherwise); for tenants without a limit it stops at card_limits' primary
 * key. For a member it reads only today's lines and one more: the journal
 * index (tenant_id, member_id, line_id DESC) finds the member's newest
 * line before midnight, and the lines after it. That bound is exact
 * because one member's lines are written by one batch at a time (a
 * member's commands are one partition's, applied by its one owner), so
 * their line_id order is their created_at order; created_at is still
 * checked. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "log/log.h"
#include "rules_cards.h"

void firstday_begin_batch(struct ledger_ctx *l)
{
    for (size_t i = 0; i < l->fd_tenant_count; i++)
        free(l->fd_tenants[i].tenant_id);
    l->fd_tenant_count = 0;
    l->fd_wanted = false;
    l->fd_now_us = 0;
}

static struct ledger_fd_tenant *tenant_find(struct ledger_ctx *l, const char *tenant_id,
                                            bool create)
{
    for (size_t i = 0; i < l->fd_tenant_count; i++) /* a batch has few tenants */
        if (strcmp(l->fd_tenants[i].tenant_id, tenant_id) == 0)
            return &l->fd_tenants[i];
    if (!create)
        return NULL;
    l->fd_tenants =
        array_grow(l->fd_tenants, l->fd_tenant_count, &l->fd_tenant_cap, sizeof(*l->fd_tenants));
    struct ledger_fd_tenant *t = &l->fd_tenants[l->fd_tenant_count++];
    *t = (struct ledger_fd_tenant){.tenant_id = strdup(tenant_id)};
    assert(t->tenant_id);
    return t;
}

/* A command that draws stored value: its UTC offset; false otherwise. */
static bool spends_stored_value(const Envelope *env, int32_t *utc_offset_s)
{
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_RECORD_PURCHASE &&
        strcmp(env->record_purchase->payment_method, "stored_value") == 0) {
        *utc_offset_s = env->record_purchase->utc_offset_s;
        return true;
    }
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ISSUE_CARD &&
        strcmp(env->issue_card->payment_method, "stored_value") == 0) {
        *utc_offset_s = env->issue_card->utc_offset_s;
        return true;
    }
    return false;
}

/* Called for every decoded command, after its member is in the batch. */
void firstday_note(struct ledger_ctx *l, const Envelope *env)
{
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_SET_CARD_LIMITS) {
        tenant_find(l, env->tenant_id, true)->set_in_batch = true;
        return;
    }
    int32_t offset_s = 0;
    if (!spends_stored_value(env, &offset_s))
        return;
    struct ledger_member *m = ledger_member_find(l, env->tenant_id, env->member_id, false);
    assert(m);
    if (!l->fd_wanted) {
        l->fd_wanted = true;
        l->fd_now_us = event_now_us();
    }
    tenant_find(l, env->tenant_id, true);
    if (m->fd_noted)
        return; /* the member's first spend in the batch names the zone */
    int64_t today = rules_local_day(l->fd_now_us, offset_s);
    m->fd_noted = true;
    m->fd_offset_s = offset_s;
    m->fd_since_us = rules_day_start_us(today, offset_s);
    m->fresh = (struct sv_fresh){.day = today};
}

static void fold_line(struct ledger_member *m, int64_t created_us, int64_t amount, bool refund)
{
    int64_t day = rules_local_day(created_us, m->fd_offset_s);
    if (refund && amount < 0)
        rules_fresh_refunded(&m->fresh, day, -amount);
    else if (!refund && amount > 0)
        rules_fresh_topped_up(&m->fresh, day, amount);
}

/* Columns: tenant, member, the tenant's limit, then one of the member's
 * lines since midnight (NULL when it has none): created_at in µs, amount,
 * whether it is a refund's. In line order per member. */
static const char fresh_sql[] =
    "SELECT k.t, k.m, coalesce(cl.first_day_topup_spend_max, 0), j.created_us, j.amount, "
    "j.refund FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k(t, m, since_us) "
    "LEFT JOIN card_limits cl ON cl.tenant_id = k.t "
    "LEFT JOIN LATERAL (SELECT x.line_id, "
    "(extract(epoch FROM x.created_at) * 1000000)::bigint AS created_us, x.amount, "
    "x.reason LIKE 'refund\\_stored\\_value:%' AS refund FROM journal x "
    "WHERE x.tenant_id = k.t AND x.member_id = k.m "
    "AND x.line_id > coalesce((SELECT o.line_id FROM journal o WHERE o.tenant_id = k.t "
    "AND o.member_id = k.m AND o.created_at < to_timestamp(k.since_us / 1000000.0) "
    "ORDER BY o.line_id DESC LIMIT 1), 0) "
    "AND x.created_at >= to_timestamp(k.since_us / 1000000.0) "
    "AND x.asset IN ('sv_principal', 'sv_bonus') "
    "AND (x.reason LIKE 'topup:%' OR x.reason LIKE 'refund\\_stored\\_value:%')) j ON true "
    "WHERE coalesce(cl.first_day_topup_spend_max, 0) > 0 OR k.t = ANY($4::text[]) "
    "ORDER BY k.t, k.m, j.line_id";

/* After cards_load, in the batch's transaction. Returns 0 or -1 with err. */
static int read_fresh(void *ctx, const PGresult *res, char *err, size_t err_len)
{
    struct ledger_ctx *l = ctx;
    for (int i = 0; i < PQntuples(res); i++) {
        struct ledger_member *mb =
            ledger_member_find(l, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), false);
        struct ledger_fd_tenant *tn = tenant_find(l, PQgetvalue(res, i, 0), false);
        if (!mb || !tn)
            continue;
        mb->fd_tracked = true;
        tn->limit = db_int_at(res, i, 2);
        if (PQgetisnull(res, i, 3))
            continue;
        fold_line(mb, db_int_at(res, i, 3), db_int_at(res, i, 4), PQgetvalue(res, i, 5)[0] == 't');
    }
    return 0;
}

void firstday_queue_load(struct db_pipeline *pl, struct ledger_ctx *l)
{
    if (!l->fd_wanted)
        return;
    struct db_array t, m, since, set;
    db_array_init(&t), db_array_init(&m), db_array_init(&since), db_array_init(&set);
    for (size_t i = 0; i < l->member_count; i++) {
        const struct ledger_member *mb = &l->members[i];
        if (!mb->fd_noted)
            continue;
        db_array_add(&t, mb->tenant_id);
        db_array_add(&m, mb->member_id);
        db_array_add_int(&since, mb->fd_since_us);
    }
    for (size_t i = 0; i < l->fd_tenant_count; i++)
        if (l->fd_tenants[i].set_in_batch)
            db_array_add(&set, l->fd_tenants[i].tenant_id);
    const char *p[4] = {db_array_finish(&t), db_array_finish(&m), db_array_finish(&since),
                        db_array_finish(&set)};
    db_pipeline_add(pl, fresh_sql, 4, p, read_fresh, l);
    db_array_free(&t), db_array_free(&m), db_array_free(&since), db_array_free(&set);
}

const char *firstday_check(struct ledger_ctx *l, const Envelope *cmd, const struct ledger_member *m,
                           int64_t charge)
{
    if (!m->fd_tracked)
        return NULL; /* no limit in the tenant, or no stored value spent */
    const struct ledger_fd_tenant *tn = tenant_find(l, cmd->tenant_id, false);
    assert(tn);
    int64_t today = rules_local_day(l->fd_now_us, m->fd_offset_s);
    enum rules_result r = rules_check_first_day(tn->limit, m->sv, &m->fresh, today, charge);
    return r == RULES_OK ? NULL : rules_result_code(r);
}

void firstday_posted(struct ledger_ctx *l, const struct outcome *o)
{
    struct ledger_member *m = o->member;
    if (!m || !m->fd_tracked)
        return;
    int64_t today = rules_local_day(l->fd_now_us, m->fd_offset_s);
    switch (o->cmd->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE:
        rules_fresh_topped_up(&m->fresh, today, o->amount + o->bonus);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_STORED_VALUE:
        rules_fresh_refunded(&m->fresh, today, o->refund_principal + o->refund_bonus);
        break;
    default:
        break;
    }
}

void firstday_limit_set(struct ledger_ctx *l, const char *tenant_id, int64_t limit)
{
    struct ledger_fd_tenant *tn = tenant_find(l, tenant_id, false);
    if (tn)
        tn->limit = limit;
}
