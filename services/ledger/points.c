/* Points commands: admin adjustments (grants make a lot, deductions spend
 * soonest-expiring lots first) and lot expiry. The batch loads the lots of
 * its members and its tenants' policies only when it holds a points
 * command, decides in memory like every ledger command, and writes new and
 * changed lots with one statement. A member's points balance always
 * equals the sum of its lots' remaining points (the audit checks it). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "money/money.h"

#define POINTS_POLICY_KIND_MAX 16

void *ledger_grow(void *arr, size_t count, size_t *cap, size_t elem)
{
    if (count < *cap)
        return arr;
    *cap = *cap ? *cap * 2 : 64;
    arr = realloc(arr, *cap * elem);
    assert(arr);
    return arr;
}

bool points_is_command(const Envelope *env)
{
    return env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS ||
           env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXPIRE_POINTS;
}

const char *points_command_id(const Envelope *env)
{
    return env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS
               ? env->adjust_points->command_id
               : env->expire_points->command_id;
}

const char *points_command_type(const Envelope *env)
{
    return env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS
               ? "points_adjustment"
               : "points_expiry";
}

/* ------------------------------------------------------- batch state */
void points_begin_batch(struct ledger_ctx *l)
{
    for (size_t i = 0; i < l->lot_count; i++) {
        free(l->lots[i].tenant_id);
        free(l->lots[i].member_id);
        free(l->lots[i].branch_id);
    }
    for (size_t i = 0; i < l->policy_count; i++)
        free(l->policies[i].tenant_id);
    l->lot_count = l->policy_count = 0;
    l->lots_wanted = false;
}

static struct ledger_lot *lot_add(struct ledger_ctx *l, const char *tenant_id,
                                  const char *member_id, const char *branch_id)
{
    l->lots = ledger_grow(l->lots, l->lot_count, &l->lot_cap, sizeof(*l->lots));
    struct ledger_lot *lot = &l->lots[l->lot_count++];
    *lot = (struct ledger_lot){.tenant_id = strdup(tenant_id),
                               .member_id = strdup(member_id),
                               .branch_id = strdup(branch_id)};
    return lot;
}

static const struct points_policy *policy_of(struct ledger_ctx *l, const char *tenant_id)
{
    static const struct points_policy never = {POINTS_EXPIRE_NEVER, 0, 0};
    for (size_t i = 0; i < l->policy_count; i++)
        if (strcmp(l->policies[i].tenant_id, tenant_id) == 0)
            return &l->policies[i].policy;
    return &never;
}

static bool lot_of_member(const struct ledger_lot *lot, const Envelope *cmd)
{
    return strcmp(lot->member_id, cmd->member_id) == 0 &&
           strcmp(lot->tenant_id, cmd->tenant_id) == 0;
}

/* ------------------------------------------------------- decisions */
static void points_account(char *out, const Envelope *cmd, const char *what)
{
    snprintf(out, LEDGER_ACCOUNT_MAX, "tenant:%s:%s", cmd->tenant_id, what);
}

static int64_t command_time_us(const Envelope *cmd)
{
    return cmd->occurred_at_us > 0 ? cmd->occurred_at_us : event_now_us();
}

static void reject(struct outcome *o, const char *code, const char *detail)
{
    o->reject_code = code;
    o->reject_detail = detail;
}

/* A grant: a new lot expiring when the command says, else by the tenant's
 * policy from the time of the request. */
static void decide_grant(struct ledger_ctx *l, struct outcome *o, const AdjustPoints *a)
{
    const Envelope *cmd = o->cmd;
    int64_t now = command_time_us(cmd);
    int64_t expires = a->expires_at_us > 0
                          ? a->expires_at_us
                          : rules_points_expiry_us(policy_of(l, cmd->tenant_id), now);
    if (expires != 0 && expires <= now) {
        reject(o, "invalid_points", "expires_at is not in the future");
        return;
    }
    int64_t after;
    if (!money_add(o->member->points, a->points, &after)) {
        reject(o, "balance_overflow", "the points balance would overflow");
        return;
    }
    struct ledger_lot *lot = lot_add(l, cmd->tenant_id, cmd->member_id, cmd->branch_id);
    uuid7_generate(lot->lot_id);
    snprintf(lot->posting_id, sizeof(lot->posting_id), "%s", o->posting_id);
    lot->granted = lot->remaining = a->points;
    lot->expires_at_us = expires;
    lot->is_new = true;
    char member[LEDGER_ACCOUNT_MAX], granted[LEDGER_ACCOUNT_MAX];
    snprintf(member, sizeof(member), "member:%s", cmd->member_id);
    points_account(granted, cmd, "points_granted");
    outcome_line(o, member, "points", a->points);
    outcome_line(o, granted, "points", -a->points);
    o->member->points = after;
    snprintf(o->lot_id, sizeof(o->lot_id), "%s", lot->lot_id);
    o->lot_expires_at_us = expires;
}

/* A deduction spends the member's lots soonest-expiring first; refused
 * when the spendable lots hold less (nothing changes). */
static void decide_deduction(struct ledger_ctx *l, struct outcome *o, int64_t points)
{
    const Envelope *cmd = o->cmd;
    size_t n = 0;
    struct ledger_lot **mine = calloc(l->lot_count + 1, sizeof(*mine));
    struct points_lot_view *views = calloc(l->lot_count + 1, sizeof(*views));
    int64_t *take = calloc(l->lot_count + 1, sizeof(*take));
    assert(mine && views && take);
    for (size_t i = 0; i < l->lot_count; i++)
        if (lot_of_member(&l->lots[i], cmd)) {
            mine[n] = &l->lots[i];
            views[n++] = (struct points_lot_view){l->lots[i].remaining, l->lots[i].expires_at_us};
        }
    enum points_result r = rules_points_plan_spend(views, n, command_time_us(cmd), points, take);
    if (r != POINTS_OK || o->member->points < points) {
        reject(o, r == POINTS_INVALID ? "invalid_points" : "insufficient_points",
               r == POINTS_INVALID ? "the points amount is not acceptable"
                                   : "the member's unexpired points do not cover the deduction");
    } else {
        for (size_t k = 0; k < n; k++)
            if (take[k] > 0) {
                mine[k]->remaining -= take[k];
                mine[k]->dirty = true;
            }
        char member[LEDGER_ACCOUNT_MAX], deducted[LEDGER_ACCOUNT_MAX];
        snprintf(member, sizeof(member), "member:%s", cmd->member_id);
        points_account(deducted, cmd, "points_deducted");
        outcome_line(o, member, "points", -points);
        outcome_line(o, deducted, "points", points);
        o->member->points -= points;
    }
    free(mine);
    free(views);
    free(take);
}

static void decide_adjust(struct ledger_ctx *l, struct outcome *o)
{
    const AdjustPoints *a = o->cmd->adjust_points;
    o->points = a->points;
    snprintf(o->reason, sizeof(o->reason), "points_adjustment:%s", a->reason);
    if (a->points == 0 || a->points > POINTS_ADJUST_MAX || a->points < -POINTS_ADJUST_MAX ||
        !a->reason[0]) {
        reject(o, "invalid_points", "points must be non-zero and a reason is required");
        return;
    }
    if (a->points > 0)
        decide_grant(l, o, a);
    else
        decide_deduction(l, o, -a->points);
}

/* What is left of a due lot expires. A lot already spent or expired is
 * not loaded: the command posts nothing (the scheduler may send a lot
 * twice; the command id, the lot id, makes the second a duplicate). */
static void decide_expiry(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *cmd = o->cmd;
    const ExpirePoints *e = cmd->expire_points;
    snprintf(o->lot_id, sizeof(o->lot_id), "%s", e->lot_id);
    snprintf(o->reason, sizeof(o->reason), "points_expiry:%s", e->lot_id);
    struct ledger_lot *lot = NULL;
    for (size_t i = 0; i < l->lot_count && !lot; i++)
        if (strcmp(l->lots[i].lot_id, e->lot_id) == 0 && lot_of_member(&l->lots[i], cmd))
            lot = &l->lots[i];
    if (!lot || lot->remaining == 0)
        return;
    o->lot_expires_at_us = lot->expires_at_us;
    if (lot->expires_at_us == 0 || lot->expires_at_us > command_time_us(cmd)) {
        reject(o, "not_due", "the lot has not expired yet");
        return;
    }
    int64_t points = lot->remaining;
    char member[LEDGER_ACCOUNT_MAX], expired[LEDGER_ACCOUNT_MAX];
    snprintf(member, sizeof(member), "member:%s", cmd->member_id);
    points_account(expired, cmd, "points_expired");
    outcome_line(o, member, "points", -points);
    outcome_line(o, expired, "points", points);
    o->member->points -= points;
    lot->remaining = 0;
    lot->dirty = true;
    o->points = -points;
}

void points_decide(struct ledger_ctx *l, struct outcome *o)
{
    if (o->cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS)
        decide_adjust(l, o);
    else
        decide_expiry(l, o);
}

/* ------------------------------------------------------- encoding */
uint8_t *points_encode_fact(const struct outcome *o, Envelope *env, Balances *bal, size_t *len)
{
    PointsAdjusted adjusted;
    PointsExpired expired;
    if (o->cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS) {
        tessera__ledger__v1__points_adjusted__init(&adjusted);
        adjusted.command_id = o->cmd->adjust_points->command_id;
        adjusted.points = o->points;
        adjusted.reason = o->cmd->adjust_points->reason;
        adjusted.lot_id = (char *)o->lot_id;
        adjusted.expires_at_us = o->lot_expires_at_us;
        adjusted.balances = bal;
        env->payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_POINTS_ADJUSTED;
        env->points_adjusted = &adjusted;
    } else {
        tessera__ledger__v1__points_expired__init(&expired);
        expired.command_id = o->cmd->expire_points->command_id;
        expired.lot_id = (char *)o->lot_id;
        expired.points = -o->points;
        expired.balances = bal;
        env->payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_POINTS_EXPIRED;
        env->points_expired = &expired;
    }
    return envelope_encode(env, len);
}

/* ------------------------------------------------------- database */
static int load_policies(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    PGresult *res = store_query_batch_tenants(
        pg, l,
        "SELECT tenant_id, kind, periods, utc_offset_minutes "
        "FROM points_policy WHERE tenant_id = ANY($1::text[])",
        err, err_len);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        struct points_policy policy = {.periods = atoi(PQgetvalue(res, i, 2)),
                                       .utc_offset_minutes = atoi(PQgetvalue(res, i, 3))};
        if (!rules_points_kind_parse(PQgetvalue(res, i, 1), &policy.kind))
            continue; /* the table's CHECK makes this impossible */
        l->policies =
            ledger_grow(l->policies, l->policy_count, &l->policy_cap, sizeof(*l->policies));
        l->policies[l->policy_count++] = (struct ledger_points_policy){
            .tenant_id = strdup(PQgetvalue(res, i, 0)), .policy = policy};
    }
    PQclear(res);
    return 0;
}

/* The batch members' lots with points left, oldest first (lot ids are
 * UUIDv7, time-ordered), which is the tie order of the spending rule. */
static int load_lots(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    struct db_array tenants, members;
    db_array_init(&tenants);
    db_array_init(&members);
    for (size_t i = 0; i < l->member_count; i++) {
        db_array_add(&tenants, l->members[i].tenant_id);
        db_array_add(&members, l->members[i].member_id);
    }
    const char *p[2] = {db_array_finish(&tenants), db_array_finish(&members)};
    PGresult *res = db_query(
        pg,
        "SELECT x.lot_id, x.tenant_id, x.member_id, coalesce(x.branch_id, ''), x.posting_id, "
        "x.granted, x.remaining, coalesce((extract(epoch FROM x.expires_at) * 1000000)::bigint, 0) "
        "FROM point_lots x JOIN unnest($1::text[], $2::text[]) AS k(t, m) "
        "ON x.tenant_id = k.t AND x.member_id = k.m WHERE x.remaining > 0 ORDER BY x.lot_id",
        2, p, err, err_len, NULL);
    db_array_free(&tenants);
    db_array_free(&members);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        struct ledger_lot *lot =
            lot_add(l, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
        snprintf(lot->lot_id, sizeof(lot->lot_id), "%s", PQgetvalue(res, i, 0));
        snprintf(lot->posting_id, sizeof(lot->posting_id), "%s", PQgetvalue(res, i, 4));
        lot->granted = strtoll(PQgetvalue(res, i, 5), NULL, 10);
        lot->remaining = strtoll(PQgetvalue(res, i, 6), NULL, 10);
        lot->expires_at_us = strtoll(PQgetvalue(res, i, 7), NULL, 10);
    }
    PQclear(res);
    return 0;
}

int points_load(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    if (!l->lots_wanted)
        return 0;
    return load_policies(pg, l, err, err_len) < 0 || load_lots(pg, l, err, err_len) < 0 ? -1 : 0;
}

/* New lots and lots whose remaining changed, in one upsert. */
int points_write(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    struct db_array id, t, m, br, post, granted, remaining, expires;
    struct db_array *all[] = {&id, &t, &m, &br, &post, &granted, &remaining, &expires};
    for (size_t k = 0; k < 8; k++)
        db_array_init(all[k]);
    for (size_t i = 0; i < l->lot_count; i++) {
        const struct ledger_lot *lot = &l->lots[i];
        if (!lot->is_new && !lot->dirty)
            continue;
        db_array_add(&id, lot->lot_id);
        db_array_add(&t, lot->tenant_id);
        db_array_add(&m, lot->member_id);
        db_array_add(&br, lot->branch_id[0] ? lot->branch_id : NULL);
        db_array_add(&post, lot->posting_id);
        db_array_add_int(&granted, lot->granted);
        db_array_add_int(&remaining, lot->remaining);
        db_array_add_int(&expires, lot->expires_at_us);
    }
    int rc = 0;
    if (id.count > 0) {
        const char *p[8];
        for (size_t k = 0; k < 8; k++)
            p[k] = db_array_finish(all[k]);
        PGresult *res = db_query(
            pg,
            "INSERT INTO point_lots (lot_id, tenant_id, member_id, branch_id, posting_id, "
            "granted, remaining, expires_at) SELECT i, t, m, b, p, g, r, CASE WHEN e = 0 THEN "
            "NULL ELSE 'epoch'::timestamptz + e * interval '1 microsecond' END "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
            "$6::bigint[], $7::bigint[], $8::bigint[]) AS x(i, t, m, b, p, g, r, e) "
            "ON CONFLICT (lot_id) DO UPDATE SET remaining = EXCLUDED.remaining",
            8, p, err, err_len, NULL);
        rc = res ? 0 : -1;
        PQclear(res);
    }
    for (size_t k = 0; k < 8; k++)
        db_array_free(all[k]);
    return rc;
}
