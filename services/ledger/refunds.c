/* Refunds: unspent stored-value principal paid back (bonus forfeited in
 * proportion, the tenant's fee kept: rules_refunds.h), and a purchase
 * refunded whole or in parts, whatever paid for it: each part returns its
 * share of the stored value the purchase drew (principal and bonus) and
 * takes back its share of the points the purchase earned, with cumulative
 * rounding so the parts add up exactly to the whole. Every refund also
 * lands in the append-only refund trail (ledger.refunds) in the batch's
 * transaction. The purchases named by refunds and by earnings are loaded
 * here too, with what their earlier refunds and earnings did. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "money/money.h"
#include "rules_refunds.h"

/* clang-format off: clang-format 14 never settles on this list */
#define REFUND_ROWS(l, X)                                                                          \
    X(l->r_id)                                                                                     \
    X(l->r_tenant)                                                                                 \
    X(l->r_member)                                                                                 \
    X(l->r_branch)                                                                                 \
    X(l->r_command)                                                                                \
    X(l->r_posting)                                                                                \
    X(l->r_kind)                                                                                   \
    X(l->r_purchase)                                                                               \
    X(l->r_principal)                                                                              \
    X(l->r_bonus)                                                                                  \
    X(l->r_fee)                                                                                    \
    X(l->r_payout)                                                                                 \
    X(l->r_reason)                                                                                 \
    X(l->r_actor)                                                                                  \
    X(l->r_amount)                                                                                 \
    X(l->r_points_reversed)                                                                        \
    X(l->r_points_unrecovered)                                                                     \
    X(l->r_points_returned)
/* clang-format on */
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

struct ledger_refundable *refunds_purchase_find(struct ledger_ctx *l, const char *tenant_id,
                                                const char *purchase_command_id)
{
    for (size_t i = 0; i < l->refundable_count; i++)
        if (strcmp(l->refundables[i].purchase_command_id, purchase_command_id) == 0 &&
            strcmp(l->refundables[i].tenant_id, tenant_id) == 0)
            return &l->refundables[i];
    return NULL;
}

/* Called for every decoded command of a batch: remembers what the load
 * must fetch for the refunds among them, and the purchases refunds and
 * earnings name. A purchase refund also needs the member's lots. */
void refunds_note(struct ledger_ctx *l, const Envelope *env)
{
    const char *purchase = NULL;
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARN_POINTS) {
        purchase = env->earn_points->purchase_command_id;
        if (!purchase[0])
            return; /* an activity's points: no purchase to look at */
    } else if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_PURCHASE) {
        purchase = env->refund_purchase->purchase_command_id;
    } else if (!refunds_is_command(env)) {
        return;
    }
    l->refunds_wanted = true;
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_PURCHASE)
        l->lots_wanted = true;
    if (!purchase || !purchase[0] || refunds_purchase_find(l, env->tenant_id, purchase))
        return;
    l->refundables = array_grow(l->refundables, l->refundable_count, &l->refundable_cap,
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
    outcome_reason(o, "refund_stored_value:%s", r->reason);
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

/* A purchase refunded whole or in part (amount 0: all that is left),
 * whatever paid for it. Its share of what the purchase drew from stored
 * value returns to the member's principal and bonus (the refunding
 * branch's redemptions go down by as much; a cash or card purchase drew
 * none, its money goes back outside the ledger), and its share of the
 * points the purchase earned is taken back (points.c): pending lots of the
 * purchase first, then the rest of its vested lots, then other vested
 * lots; what the member already spent is reported as unrecovered. */
static void decide_purchase_refund(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *cmd = o->cmd;
    const RefundPurchase *r = cmd->refund_purchase;
    struct ledger_refundable *p = refunds_purchase_find(l, cmd->tenant_id, r->purchase_command_id);
    o->refund_kind = "purchase";
    outcome_reason(o, "refund_purchase:%s", r->reason);
    if (!p || !p->member_id || strcmp(p->member_id, cmd->member_id) != 0) {
        o->reject_code = "not_found";
        o->reject_detail = "no such purchase of this member";
        return;
    }
    struct purchase_refund_plan plan;
    enum refund_result res = rules_plan_purchase_refund(&p->state, r->amount, &plan);
    if (res != REFUND_OK) {
        o->reject_code = rules_refund_code(res);
        o->reject_detail = res == REFUND_ALREADY ? "this purchase was refunded in full before"
                           : res == REFUND_EXCEEDS
                               ? "more than what is left of the purchase to refund"
                           : res == REFUND_NOT_REFUNDABLE ? "the purchase charged nothing"
                                                          : "the refund amount is not acceptable";
        return;
    }
    struct sv_balance after;
    if (!money_add(o->member->sv.principal, plan.principal, &after.principal) ||
        !money_add(o->member->sv.bonus, plan.bonus, &after.bonus)) {
        o->reject_code = "balance_overflow";
        o->reject_detail = "the stored-value balance would overflow";
        return;
    }
    int64_t in = 0;
    o->reject_code = money_add(plan.principal, plan.bonus, &in)
                         ? prepaid_check(l, cmd->tenant_id, in)
                         : PREPAID_OVERFLOW_CODE;
    if (o->reject_code) {
        o->reject_detail = PREPAID_OVERFLOW_DETAIL;
        return;
    }
    char member[LEDGER_ACCOUNT_MAX], redeemed[LEDGER_ACCOUNT_MAX];
    snprintf(member, sizeof(member), "member:%s", cmd->member_id);
    branch_account(redeemed, cmd, "sv_redeemed");
    outcome_line(o, member, "sv_principal", plan.principal);
    outcome_line(o, redeemed, "sv_principal", -plan.principal);
    outcome_line(o, member, "sv_bonus", plan.bonus);
    outcome_line(o, redeemed, "sv_bonus", -plan.bonus);
    o->member->sv = after;
    /* Last: nothing below can refuse, and the lots it moves stay moved. */
    int64_t unrecovered = points_reverse_for_refund(l, o, r->purchase_command_id, plan.points);
    points_return_for_refund(l, o, plan.points_returned);
    p->state.points_returned += plan.points_returned;
    o->points_returned = plan.points_returned;
    p->state.refunded += plan.amount;
    p->state.principal_returned += plan.principal;
    p->state.bonus_returned += plan.bonus;
    p->state.points_reversed += plan.points;
    o->refund_principal = plan.principal;
    o->refund_bonus = plan.bonus;
    o->refund_amount = plan.amount;
    o->points_reversed = plan.points;
    o->points_unrecovered = unrecovered;
    o->amount = plan.amount;
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
    db_array_add_int(&l->r_amount, o->refund_amount);
    db_array_add_int(&l->r_points_reversed, o->points_reversed);
    db_array_add_int(&l->r_points_unrecovered, o->points_unrecovered);
    db_array_add_int(&l->r_points_returned, o->points_returned);
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
    d->amount = o->refund_amount;
    d->points_reversed = o->points_reversed;
    d->points_unrecovered = o->points_unrecovered;
    d->points_returned = o->points_returned;
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
static const char LOAD_FEE_RULES_SQL[] =
    "SELECT tenant_id, fee_bp, fee_min FROM refund_fee_rules WHERE tenant_id = ANY($1::text[])";

static int read_fee_rules(void *ctx, const PGresult *res, char *err, size_t err_len)
{
    struct ledger_ctx *l = ctx;
    for (int i = 0; i < PQntuples(res); i++) {
        l->fee_rules =
            array_grow(l->fee_rules, l->fee_rule_count, &l->fee_rule_cap, sizeof(*l->fee_rules));
        l->fee_rules[l->fee_rule_count++] =
            (struct ledger_fee_rule){.tenant_id = strdup(PQgetvalue(res, i, 0)),
                                     .fee_bp = db_int_at(res, i, 1),
                                     .fee_min = db_int_at(res, i, 2)};
    }
    return 0;
}

/* What the purchase's stored verdict says it charged and drew; false
 * when the verdict does not decode as a posting. */
static bool purchase_terms(const char *verdict_text, struct purchase_refund_state *st)
{
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)verdict_text, &len);
    char why[128];
    Envelope *env = raw ? envelope_decode(raw, len, why, sizeof(why)) : NULL;
    PQfreemem(raw);
    bool ok = env && env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_POSTED;
    if (ok) {
        st->charged = env->ledger_posted->charged;
        st->paid_principal = env->ledger_posted->paid_principal;
        st->paid_bonus = env->ledger_posted->paid_bonus;
        st->points_paid = env->ledger_posted->points_paid;
    }
    envelope_free(env);
    return ok;
}

/* The purchases the batch's refunds and earnings name: their member, what
 * they charged and drew from stored value (from their verdict), what their
 * refunds took so far and the points they earned (from their lots: earned
 * is what the rules awarded, and earned - granted the share withheld
 * because a refund came first, which counts as reversed). */
static const char LOAD_REFUNDABLES_SQL[] =
    "SELECT k.t, k.id, c.member_id, c.verdict, r.amount, r.principal, r.bonus, "
    "r.points + x.withheld, x.earned, r.returned "
    "FROM unnest($1::text[], $2::text[]) AS k(t, id) JOIN commands c ON c.tenant_id = k.t "
    "AND c.command_id = k.id AND c.status = 'posted' AND c.command_type = 'purchase' "
    "CROSS JOIN LATERAL (SELECT coalesce(sum(amount), 0) AS amount, "
    "coalesce(sum(principal), 0) AS principal, coalesce(sum(bonus), 0) AS bonus, "
    "coalesce(sum(points_reversed), 0) AS points, "
    "coalesce(sum(points_returned), 0) AS returned FROM refunds "
    "WHERE tenant_id = k.t AND purchase_command_id = k.id) r "
    "CROSS JOIN LATERAL (SELECT coalesce(sum(earned), 0) AS earned, "
    "coalesce(sum(earned - granted), 0) AS withheld FROM point_lots "
    "WHERE tenant_id = k.t AND purchase_command_id = k.id) x";

static int read_refundables(void *ctx, const PGresult *res, char *err, size_t err_len)
{
    struct ledger_ctx *l = ctx;
    for (int i = 0; i < PQntuples(res); i++) {
        struct ledger_refundable *r =
            refunds_purchase_find(l, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        struct purchase_refund_state st = {0};
        if (!r || !purchase_terms(PQgetvalue(res, i, 3), &st))
            continue;
        st.refunded = db_int_at(res, i, 4);
        st.principal_returned = db_int_at(res, i, 5);
        st.bonus_returned = db_int_at(res, i, 6);
        st.points_reversed = db_int_at(res, i, 7);
        st.points_earned = db_int_at(res, i, 8);
        st.points_returned = db_int_at(res, i, 9);
        r->member_id = strdup(PQgetvalue(res, i, 2));
        r->state = st;
    }
    return 0;
}

void refunds_queue_load(struct db_pipeline *pl, struct ledger_ctx *l)
{
    if (!l->refunds_wanted)
        return;
    store_queue_batch_tenants(pl, l, LOAD_FEE_RULES_SQL, read_fee_rules);
    if (l->refundable_count == 0)
        return;
    struct db_array tenants, ids;
    db_array_init(&tenants);
    db_array_init(&ids);
    for (size_t i = 0; i < l->refundable_count; i++) {
        db_array_add(&tenants, l->refundables[i].tenant_id);
        db_array_add(&ids, l->refundables[i].purchase_command_id);
    }
    const char *p[2] = {db_array_finish(&tenants), db_array_finish(&ids)};
    db_pipeline_add(pl, LOAD_REFUNDABLES_SQL, 2, p, read_refundables, l);
    db_array_free(&tenants);
    db_array_free(&ids);
}

int refunds_write(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
{
    if (l->r_id.count == 0)
        return 0;
    const char *p[18] = {db_array_finish(&l->r_id),
                         db_array_finish(&l->r_tenant),
                         db_array_finish(&l->r_member),
                         db_array_finish(&l->r_branch),
                         db_array_finish(&l->r_command),
                         db_array_finish(&l->r_posting),
                         db_array_finish(&l->r_kind),
                         db_array_finish(&l->r_purchase),
                         db_array_finish(&l->r_principal),
                         db_array_finish(&l->r_bonus),
                         db_array_finish(&l->r_fee),
                         db_array_finish(&l->r_payout),
                         db_array_finish(&l->r_reason),
                         db_array_finish(&l->r_actor),
                         db_array_finish(&l->r_amount),
                         db_array_finish(&l->r_points_reversed),
                         db_array_finish(&l->r_points_unrecovered),
                         db_array_finish(&l->r_points_returned)};
    PGresult *res = db_query(
        pg,
        "INSERT INTO refunds (refund_id, tenant_id, member_id, branch_id, command_id, "
        "posting_id, kind, purchase_command_id, principal, bonus, fee, payout, reason, actor, "
        "amount, points_reversed, points_unrecovered, points_returned) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
        "$6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], "
        "$12::bigint[], $13::text[], $14::text[], $15::bigint[], $16::bigint[], $17::bigint[], "
        "$18::bigint[])",
        18, p, err, err_len, NULL);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}
