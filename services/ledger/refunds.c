/* Refunds: unspent stored-value principal paid back (bonus forfeited in
 * proportion, the tenant's fee kept: rules_refunds.h), and a stored-value
 * purchase returned (exactly what it drew, principal and bonus, once).
 * Every refund also lands in the append-only refund trail (ledger.refunds)
 * in the batch's transaction. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "money/money.h"
#include "rules_refunds.h"

#define REFUND_ROWS(l, X)                                                                          \
    X(l->r_id)                                                                                     \
    X(l->r_tenant)                                                                                 \
    X(l->r_member) X(l->r_branch) X(l->r_command) X(l->r_posting) X(l->r_kind) X(l->r_purchase)    \
        X(l->r_principal) X(l->r_bonus) X(l->r_fee) X(l->r_payout) X(l->r_reason) X(l->r_actor)
#define INIT_ONE(a) db_array_init(&(a));
#define FREE_ONE(a) db_array_free(&(a));

bool refunds_is_command(const Envelope *env)
{
    return env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_STORED_VALUE ||
           env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_PURCHASE;
}

const char *refunds_command_id(const Envelope *env)
{
    return env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_STORED_VALUE
               ? env->refund_stored_value->command_id
               : env->refund_purchase->command_id;
}

const char *refunds_command_type(const Envelope *env)
{
    return env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_STORED_VALUE
               ? "refund_stored_value"
               : "refund_purchase";
}

/* ------------------------------------------------------- batch state */
void refunds_begin_batch(struct ledger_ctx *l)
{
    for (size_t i = 0; i < l->fee_rule_count; i++)
        free(l->fee_rules[i].tenant_id);
    for (size_t i = 0; i < l->refundable_count; i++) {
        free(l->refundables[i].tenant_id);
        free(l->refundables[i].purchase_command_id);
        free(l->refundables[i].member_id);
    }
    l->fee_rule_count = l->refundable_count = 0;
    l->refunds_wanted = false;
    /* The context starts zeroed, and freeing a zeroed array is a no-op. */
    REFUND_ROWS(l, FREE_ONE)
    REFUND_ROWS(l, INIT_ONE)
}

static struct ledger_refundable *refundable_find(struct ledger_ctx *l, const char *tenant_id,
                                                 const char *purchase_command_id)
{
    for (size_t i = 0; i < l->refundable_count; i++)
        if (strcmp(l->refundables[i].purchase_command_id, purchase_command_id) == 0 &&
            strcmp(l->refundables[i].tenant_id, tenant_id) == 0)
            return &l->refundables[i];
    return NULL;
}

/* Called for every decoded command of a batch: remembers what the load
 * must fetch for the refunds among them. */
void refunds_note(struct ledger_ctx *l, const Envelope *env)
{
    if (!refunds_is_command(env))
        return;
    l->refunds_wanted = true;
    if (env->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_PURCHASE)
        return;
    const char *purchase = env->refund_purchase->purchase_command_id;
    if (refundable_find(l, env->tenant_id, purchase))
        return;
    l->refundables = ledger_grow(l->refundables, l->refundable_count, &l->refundable_cap,
                                 sizeof(*l->refundables));
    l->refundables[l->refundable_count++] = (struct ledger_refundable){
        .tenant_id = strdup(env->tenant_id), .purchase_command_id = strdup(purchase)};
}

static const struct ledger_fee_rule *fee_rule_of(struct ledger_ctx *l, const char *tenant_id)
{
    static const struct ledger_fee_rule none = {NULL, 0, 0};
    for (size_t i = 0; i < l->fee_rule_count; i++)
        if (strcmp(l->fee_rules[i].tenant_id, tenant_id) == 0)
            return &l->fee_rules[i];
    return &none;
}

/* ------------------------------------------------------- decisions */
static void branch_account(char *out, const Envelope *cmd, const char *what)
{
    snprintf(out, LEDGER_ACCOUNT_MAX, "tenant:%s:branch:%s:%s", cmd->tenant_id, cmd->branch_id,
             what);
}

static void decide_sv_refund(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *cmd = o->cmd;
    const RefundStoredValue *r = cmd->refund_stored_value;
    const struct ledger_fee_rule *rule = fee_rule_of(l, cmd->tenant_id);
    struct refund_plan plan;
    enum refund_result res =
        rules_plan_sv_refund(o->member->sv, r->principal, rule->fee_bp, rule->fee_min, &plan);
    o->refund_kind = "stored_value";
    snprintf(o->reason, sizeof(o->reason), "refund_stored_value:%s", r->reason);
    if (res != REFUND_OK) {
        o->reject_code = rules_refund_code(res);
        o->reject_detail = res == REFUND_INSUFFICIENT ? "more than the unspent principal"
                           : res == REFUND_NOTHING    ? "no unspent principal to refund"
                                                      : "the refund amount is not acceptable";
        return;
    }
    char member[LEDGER_ACCOUNT_MAX], refunded[LEDGER_ACCOUNT_MAX], fees[LEDGER_ACCOUNT_MAX],
        forfeited[LEDGER_ACCOUNT_MAX];
    snprintf(member, sizeof(member), "member:%s", cmd->member_id);
    branch_account(refunded, cmd, "sv_refunded");
    branch_account(fees, cmd, "sv_refund_fees");
    branch_account(forfeited, cmd, "sv_bonus_forfeited");
    outcome_line(o, member, "sv_principal", -plan.principal);
    outcome_line(o, refunded, "sv_principal", plan.payout);
    outcome_line(o, fees, "sv_principal", plan.fee);
    outcome_line(o, member, "sv_bonus", -plan.bonus_forfeited);
    outcome_line(o, forfeited, "sv_bonus", plan.bonus_forfeited);
    o->member->sv.principal -= plan.principal;
    o->member->sv.bonus -= plan.bonus_forfeited;
    o->refund_principal = plan.principal;
    o->refund_bonus = plan.bonus_forfeited;
    o->refund_fee = plan.fee;
    o->refund_payout = plan.payout;
    o->amount = plan.payout;
}

/* A stored-value purchase comes back whole: what it drew returns to the
 * member's principal and bonus, the refunding branch's redemptions go
 * down by as much. Once per purchase. */
static void decide_purchase_refund(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *cmd = o->cmd;
    const RefundPurchase *r = cmd->refund_purchase;
    struct ledger_refundable *p = refundable_find(l, cmd->tenant_id, r->purchase_command_id);
    o->refund_kind = "purchase";
    snprintf(o->reason, sizeof(o->reason), "refund_purchase:%s", r->reason);
    if (!p || !p->member_id || strcmp(p->member_id, cmd->member_id) != 0) {
        o->reject_code = "not_found";
        o->reject_detail = "no such purchase of this member";
        return;
    }
    if (p->refunded) {
        o->reject_code = "already_refunded";
        o->reject_detail = "this purchase was refunded before";
        return;
    }
    struct sv_balance after;
    if (p->principal + p->bonus == 0) {
        o->reject_code = "not_refundable";
        o->reject_detail = "only purchases paid with stored value are refunded by the ledger";
        return;
    }
    if (!money_add(o->member->sv.principal, p->principal, &after.principal) ||
        !money_add(o->member->sv.bonus, p->bonus, &after.bonus)) {
        o->reject_code = "balance_overflow";
        o->reject_detail = "the stored-value balance would overflow";
        return;
    }
    char member[LEDGER_ACCOUNT_MAX], redeemed[LEDGER_ACCOUNT_MAX];
    snprintf(member, sizeof(member), "member:%s", cmd->member_id);
    branch_account(redeemed, cmd, "sv_redeemed");
    outcome_line(o, member, "sv_principal", p->principal);
    outcome_line(o, redeemed, "sv_principal", -p->principal);
    outcome_line(o, member, "sv_bonus", p->bonus);
    outcome_line(o, redeemed, "sv_bonus", -p->bonus);
    o->member->sv = after;
    p->refunded = true;
    o->refund_principal = p->principal;
    o->refund_bonus = p->bonus;
    o->amount = p->principal + p->bonus;
}

static void record_trail(struct ledger_ctx *l, const struct outcome *o)
{
    const Envelope *c = o->cmd;
    char actor[2 * EVENT_ID_FIELD_MAX + 2] = "";
    if (c->actor)
        snprintf(actor, sizeof(actor), "%s:%s", c->actor->kind, c->actor->id);
    bool purchase = c->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_PURCHASE;
    db_array_add(&l->r_id, o->refund_id);
    db_array_add(&l->r_tenant, c->tenant_id);
    db_array_add(&l->r_member, c->member_id);
    db_array_add(&l->r_branch, c->branch_id);
    db_array_add(&l->r_command, refunds_command_id(c));
    db_array_add(&l->r_posting, o->posting_id);
    db_array_add(&l->r_kind, o->refund_kind);
    db_array_add(&l->r_purchase, purchase ? c->refund_purchase->purchase_command_id : NULL);
    db_array_add_int(&l->r_principal, o->refund_principal);
    db_array_add_int(&l->r_bonus, o->refund_bonus);
    db_array_add_int(&l->r_fee, o->refund_fee);
    db_array_add_int(&l->r_payout, o->refund_payout);
    db_array_add(&l->r_reason,
                 purchase ? c->refund_purchase->reason : c->refund_stored_value->reason);
    db_array_add(&l->r_actor, actor);
}

void refunds_decide(struct ledger_ctx *l, struct outcome *o)
{
    o->is_refund = true;
    const char *reason =
        o->cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_PURCHASE
            ? o->cmd->refund_purchase->reason
            : o->cmd->refund_stored_value->reason;
    if (!reason[0]) {
        o->reject_code = "validation_failed";
        o->reject_detail = "a refund needs a reason";
        return;
    }
    if (o->cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_PURCHASE)
        decide_purchase_refund(l, o);
    else
        decide_sv_refund(l, o);
    if (!o->reject_code) {
        uuid7_generate(o->refund_id);
        record_trail(l, o);
    }
}

/* ------------------------------------------------------- encoding */
void refunds_fill_detail(const struct outcome *o, RefundDetail *d)
{
    const Envelope *c = o->cmd;
    bool purchase = c->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_PURCHASE;
    tessera__ledger__v1__refund_detail__init(d);
    d->refund_id = (char *)o->refund_id;
    d->kind = (char *)(o->refund_kind ? o->refund_kind : "");
    d->principal = o->refund_principal;
    d->bonus = o->refund_bonus;
    d->fee = o->refund_fee;
    d->payout = o->refund_payout;
    d->purchase_command_id = purchase ? c->refund_purchase->purchase_command_id : "";
    d->reason = purchase ? c->refund_purchase->reason : c->refund_stored_value->reason;
}

uint8_t *refunds_encode_fact(const struct outcome *o, Envelope *env, Balances *bal, size_t *len)
{
    RefundRecorded fact;
    RefundDetail detail;
    tessera__ledger__v1__refund_recorded__init(&fact);
    refunds_fill_detail(o, &detail);
    fact.command_id = (char *)refunds_command_id(o->cmd);
    fact.refund = &detail;
    fact.balances = bal;
    env->payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_RECORDED;
    env->refund_recorded = &fact;
    return envelope_encode(env, len);
}

/* ------------------------------------------------------- database */
static int load_fee_rules(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    PGresult *res = store_query_batch_tenants(
        pg, l,
        "SELECT tenant_id, fee_bp, fee_min FROM refund_fee_rules "
        "WHERE tenant_id = ANY($1::text[])",
        err, err_len);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        l->fee_rules =
            ledger_grow(l->fee_rules, l->fee_rule_count, &l->fee_rule_cap, sizeof(*l->fee_rules));
        l->fee_rules[l->fee_rule_count++] =
            (struct ledger_fee_rule){.tenant_id = strdup(PQgetvalue(res, i, 0)),
                                     .fee_bp = strtoll(PQgetvalue(res, i, 1), NULL, 10),
                                     .fee_min = strtoll(PQgetvalue(res, i, 2), NULL, 10)};
    }
    PQclear(res);
    return 0;
}

/* The purchases the batch's refunds name: their member, what they drew
 * from stored value (their member lines), and whether already refunded. */
static int load_refundables(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    if (l->refundable_count == 0)
        return 0;
    struct db_array tenants, ids;
    db_array_init(&tenants);
    db_array_init(&ids);
    for (size_t i = 0; i < l->refundable_count; i++) {
        db_array_add(&tenants, l->refundables[i].tenant_id);
        db_array_add(&ids, l->refundables[i].purchase_command_id);
    }
    const char *p[2] = {db_array_finish(&tenants), db_array_finish(&ids)};
    PGresult *res = db_query(
        pg,
        "SELECT k.t, k.id, c.member_id, "
        "coalesce(-sum(j.amount) FILTER (WHERE j.asset = 'sv_principal'), 0), "
        "coalesce(-sum(j.amount) FILTER (WHERE j.asset = 'sv_bonus'), 0), "
        "EXISTS (SELECT 1 FROM refunds r WHERE r.tenant_id = k.t AND r.purchase_command_id = k.id) "
        "FROM unnest($1::text[], $2::text[]) AS k(t, id) JOIN commands c ON c.tenant_id = k.t "
        "AND c.command_id = k.id AND c.status = 'posted' AND c.command_type = 'purchase' "
        "LEFT JOIN journal j ON j.posting_id = c.posting_id AND j.member_id IS NOT NULL "
        "GROUP BY k.t, k.id, c.member_id",
        2, p, err, err_len, NULL);
    db_array_free(&tenants);
    db_array_free(&ids);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        struct ledger_refundable *r =
            refundable_find(l, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        if (!r)
            continue;
        r->member_id = strdup(PQgetvalue(res, i, 2));
        r->principal = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        r->bonus = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        r->refunded = strcmp(PQgetvalue(res, i, 5), "t") == 0;
    }
    PQclear(res);
    return 0;
}

int refunds_load(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    if (!l->refunds_wanted)
        return 0;
    return load_fee_rules(pg, l, err, err_len) < 0 || load_refundables(pg, l, err, err_len) < 0 ? -1
                                                                                                : 0;
}

int refunds_write(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    if (l->r_id.count == 0)
        return 0;
    const char *p[14] = {db_array_finish(&l->r_id),        db_array_finish(&l->r_tenant),
                         db_array_finish(&l->r_member),    db_array_finish(&l->r_branch),
                         db_array_finish(&l->r_command),   db_array_finish(&l->r_posting),
                         db_array_finish(&l->r_kind),      db_array_finish(&l->r_purchase),
                         db_array_finish(&l->r_principal), db_array_finish(&l->r_bonus),
                         db_array_finish(&l->r_fee),       db_array_finish(&l->r_payout),
                         db_array_finish(&l->r_reason),    db_array_finish(&l->r_actor)};
    PGresult *res = db_query(
        pg,
        "INSERT INTO refunds (refund_id, tenant_id, member_id, branch_id, command_id, "
        "posting_id, kind, purchase_command_id, principal, bonus, fee, payout, reason, actor) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
        "$6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], "
        "$12::bigint[], $13::text[], $14::text[])",
        14, p, err, err_len, NULL);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}
