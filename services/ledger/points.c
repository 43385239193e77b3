/* Points commands: admin adjustments (grants make a lot, deductions spend
 * soonest-expiring lots first), earnings (a lot pending for the tenant's
 * lock period, named after its purchase and rule), vesting and expiry of
 * lots, and the reversal a purchase refund asks for. The batch loads the
 * lots of its members and its tenants' policies only when it holds a
 * points command or a purchase refund, decides in memory like every
 * ledger command, and writes new and changed lots with one statement. A
 * member's points balance always equals the remaining points of its
 * vested lots, and points_pending those of its pending lots (the audit
 * checks both). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "money/money.h"
#include "rules_refunds.h"

#define POINTS_POLICY_KIND_MAX 16

#define VEST_ID_PREFIX "vest:"

bool points_is_command(const Envelope *env)
{
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS:
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXPIRE_POINTS:
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARN_POINTS:
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_VEST_POINTS:
        return true;
    default:
        return false;
    }
}

const char *points_command_id(const Envelope *env)
{
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS:
        return env->adjust_points->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARN_POINTS:
        return env->earn_points->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_VEST_POINTS:
        return env->vest_points->command_id;
    default:
        return env->expire_points->command_id;
    }
}

const char *points_command_type(const Envelope *env)
{
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS:
        return "points_adjustment";
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARN_POINTS:
        return "points_earning";
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_VEST_POINTS:
        return "points_vesting";
    default:
        return "points_expiry";
    }
}

/* An id made by another service from its cause ("earn:<purchase id>"):
 * printable, bounded like every id of an envelope. */
static bool derived_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= EVENT_ID_FIELD_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] <= ' ' || (unsigned char)id[i] == 0x7f)
            return false;
    return true;
}

const char *points_command_id_problem(const Envelope *env)
{
    const char *id = points_command_id(env);
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARN_POINTS)
        return derived_id_ok(id) ? NULL : "command_id is empty, too long or not printable";
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_VEST_POINTS) {
        const VestPoints *v = env->vest_points;
        size_t k = strlen(VEST_ID_PREFIX);
        if (!uuid_is_valid(v->lot_id) || strncmp(id, VEST_ID_PREFIX, k) != 0 ||
            strcmp(id + k, v->lot_id) != 0)
            return "command_id is not \"vest:<lot id>\"";
        return NULL;
    }
    return uuid_is_valid(id) ? NULL : "command_id is not a UUID";
}

/* ------------------------------------------------------- batch state */
void points_begin_batch(struct ledger_ctx *l)
{
    for (size_t i = 0; i < l->lot_count; i++) {
        free(l->lots[i].tenant_id);
        free(l->lots[i].member_id);
        free(l->lots[i].branch_id);
        free(l->lots[i].purchase_command_id);
        free(l->lots[i].rule);
    }
    for (size_t i = 0; i < l->policy_count; i++)
        free(l->policies[i].tenant_id);
    l->lot_count = l->policy_count = 0;
    l->lots_wanted = false;
}

static struct ledger_lot *lot_add(struct ledger_ctx *l, const char *tenant_id,
                                  const char *member_id, const char *branch_id)
{
    l->lots = array_grow(l->lots, l->lot_count, &l->lot_cap, sizeof(*l->lots));
    struct ledger_lot *lot = &l->lots[l->lot_count++];
    *lot = (struct ledger_lot){.tenant_id = strdup(tenant_id),
                               .member_id = strdup(member_id),
                               .branch_id = strdup(branch_id),
                               .purchase_command_id = strdup(""),
                               .rule = strdup("")};
    assert(lot->tenant_id && lot->member_id && lot->branch_id && lot->purchase_command_id &&
           lot->rule);
    return lot;
}

static const struct points_policy *policy_of(struct ledger_ctx *l, const char *tenant_id)
{
    static const struct points_policy never = {POINTS_EXPIRE_NEVER, 0, 0, 0};
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

/* Moves to_member of asset into the member's account (out of it when
 * negative) from the tenant's account `what`: two journal lines, the
 * member's first. */
static void points_lines(struct outcome *o, const char *what, const char *asset, int64_t to_member)
{
    char member[LEDGER_ACCOUNT_MAX], tenant[LEDGER_ACCOUNT_MAX];
    snprintf(member, sizeof(member), "member:%s", o->cmd->member_id);
    points_account(tenant, o->cmd, what);
    outcome_line(o, member, asset, to_member);
    outcome_line(o, tenant, asset, -to_member);
}

/* The command's member's lots with points left, as the spending rules see
 * them (of_purchase marks the lots purchase_command_id earned; NULL:
 * none), and what the rules take from each. */
struct member_lots {
    size_t n;
    struct ledger_lot **mine;
    struct points_lot_view *views;
    int64_t *take;
};

static void member_lots_collect(struct ledger_ctx *l, const Envelope *cmd,
                                const char *purchase_command_id, struct member_lots *ml)
{
    ml->n = 0;
    ml->mine = calloc(l->lot_count + 1, sizeof(*ml->mine));
    ml->views = calloc(l->lot_count + 1, sizeof(*ml->views));
    ml->take = calloc(l->lot_count + 1, sizeof(*ml->take));
    assert(ml->mine && ml->views && ml->take);
    for (size_t i = 0; i < l->lot_count; i++) {
        struct ledger_lot *lot = &l->lots[i];
        if (!lot_of_member(lot, cmd))
            continue;
        ml->mine[ml->n] = lot;
        ml->views[ml->n++] = (struct points_lot_view){
            .remaining = lot->remaining,
            .expires_at_us = lot->expires_at_us,
            .pending = lot->pending,
            .of_purchase =
                purchase_command_id && strcmp(lot->purchase_command_id, purchase_command_id) == 0};
    }
}

/* Takes from each lot what the rules planned; adds what came from
 * pending and from vested lots to the two sums. */
static void member_lots_take(struct member_lots *ml, int64_t *from_pending, int64_t *from_vested)
{
    for (size_t k = 0; k < ml->n; k++) {
        if (ml->take[k] == 0)
            continue;
        ml->mine[k]->remaining -= ml->take[k];
        ml->mine[k]->dirty = true;
        *(ml->mine[k]->pending ? from_pending : from_vested) += ml->take[k];
    }
}

static void member_lots_free(struct member_lots *ml)
{
    free(ml->mine);
    free(ml->views);
    free(ml->take);
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
        outcome_reject(o, "invalid_points", "expires_at is not in the future");
        return;
    }
    int64_t after;
    if (!money_add(o->member->points, a->points, &after)) {
        outcome_reject(o, "balance_overflow", "the points balance would overflow");
        return;
    }
    struct ledger_lot *lot = lot_add(l, cmd->tenant_id, cmd->member_id, cmd->branch_id);
    uuid7_generate(lot->lot_id);
    snprintf(lot->posting_id, sizeof(lot->posting_id), "%s", o->posting_id);
    lot->granted = lot->remaining = a->points;
    lot->expires_at_us = expires;
    lot->is_new = true;
    points_lines(o, "points_granted", "points", a->points);
    o->member->points = after;
    snprintf(o->lot_id, sizeof(o->lot_id), "%s", lot->lot_id);
    o->lot_expires_at_us = expires;
}

/* A deduction spends the member's vested lots soonest-expiring first;
 * refused when the spendable lots hold less (nothing changes): pending
 * points are not the member's to spend yet. */
static void decide_deduction(struct ledger_ctx *l, struct outcome *o, int64_t points)
{
    struct member_lots ml;
    member_lots_collect(l, o->cmd, NULL, &ml);
    enum points_result r =
        rules_points_plan_spend(ml.views, ml.n, command_time_us(o->cmd), points, ml.take);
    if (r != POINTS_OK || o->member->points < points) {
        outcome_reject(o, r == POINTS_INVALID ? "invalid_points" : "insufficient_points",
                       r == POINTS_INVALID
                           ? "the points amount is not acceptable"
                           : "the member's unexpired points do not cover the deduction");
    } else {
        int64_t from_pending = 0, from_vested = 0;
        member_lots_take(&ml, &from_pending, &from_vested);
        points_lines(o, "points_deducted", "points", -points);
        o->member->points -= points;
    }
    member_lots_free(&ml);
}

static void decide_adjust(struct ledger_ctx *l, struct outcome *o)
{
    const AdjustPoints *a = o->cmd->adjust_points;
    o->points = a->points;
    outcome_reason(o, "points_adjustment:%s", a->reason);
    if (a->points == 0 || a->points > POINTS_ADJUST_MAX || a->points < -POINTS_ADJUST_MAX ||
        !a->reason[0]) {
        outcome_reject(o, "invalid_points", "points must be non-zero and a reason is required");
        return;
    }
    if (a->points > 0)
        decide_grant(l, o, a);
    else
        decide_deduction(l, o, -a->points);
}

/* The member's loaded lot lot_id (loaded: it has points left), or NULL. */
static struct ledger_lot *lot_find(struct ledger_ctx *l, const Envelope *cmd, const char *lot_id)
{
    for (size_t i = 0; i < l->lot_count; i++)
        if (strcmp(l->lots[i].lot_id, lot_id) == 0 && lot_of_member(&l->lots[i], cmd))
            return &l->lots[i];
    return NULL;
}

/* The lot an expiry or a vesting names (NULL when not loaded: spent,
 * expired or another member's), noted in o with the journal reason
 * "<kind>:<lot id>". */
static struct ledger_lot *named_lot(struct ledger_ctx *l, struct outcome *o, const char *kind,
                                    const char *lot_id)
{
    snprintf(o->lot_id, sizeof(o->lot_id), "%s", lot_id);
    outcome_reason(o, "%s:%s", kind, lot_id);
    return lot_find(l, o->cmd, lot_id);
}

/* What is left of a due lot expires. A lot already spent or expired is
 * not loaded: the command posts nothing (the scheduler may send a lot
 * twice; the command id, the lot id, makes the second a duplicate). A
 * pending lot is never due: its expiry counts from when it vests, and the
 * scheduler only looks at vested lots. */
static void decide_expiry(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *cmd = o->cmd;
    struct ledger_lot *lot = named_lot(l, o, "points_expiry", cmd->expire_points->lot_id);
    if (!lot || lot->remaining == 0)
        return;
    o->lot_expires_at_us = lot->expires_at_us;
    if (lot->pending || lot->expires_at_us == 0 || lot->expires_at_us > command_time_us(cmd)) {
        outcome_reject(o, "not_due", "the lot has not expired yet");
        return;
    }
    int64_t points = lot->remaining;
    points_lines(o, "points_expired", "points", -points);
    o->member->points -= points;
    lot->remaining = 0;
    lot->dirty = true;
    o->points = -points;
}

/* How many of an earning's points are granted: all of them, unless it
 * names a purchase part of which was refunded before the points came.
 * Then the refunded share of everything the purchase earned, less what
 * its refunds already took back, is withheld (the same cumulative share a
 * later refund would reverse), so the order of earning and refunding
 * never changes what the member keeps. */
static int64_t earn_granted(const struct ledger_refundable *p, int64_t points)
{
    if (!p)
        return points;
    const struct purchase_refund_state *s = &p->state;
    int64_t withheld =
        rules_refund_share(s->refunded, s->charged, s->points_earned + points) - s->points_reversed;
    if (withheld <= 0)
        return points;
    return withheld >= points ? 0 : points - withheld;
}

/* Points earned by a rule (the campaign service sends them): a new lot,
 * pending until now + the tenant's lock (spendable at once without one),
 * held as points_pending in the journal against the tenant's
 * points_earned account. Its expiry counts from when it vests, not from
 * the grant: a lot never expires while pending (so expiry only ever sees
 * vested lots) and the member always gets the policy's whole spendable
 * period. An earning that names a purchase needs it posted for this
 * member; a refund of the purchase later takes its share back. */
static void decide_earn(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *cmd = o->cmd;
    const EarnPoints *e = cmd->earn_points;
    bool of_purchase = e->purchase_command_id[0] != '\0';
    outcome_reason(o, "points_earned:%s%s%s", e->rule, of_purchase ? ":purchase:" : "",
                   e->purchase_command_id);
    if (e->points <= 0 || e->points > POINTS_ADJUST_MAX || !e->rule[0] ||
        strlen(e->rule) > POINTS_RULE_MAX) {
        outcome_reject(o, "invalid_points",
                       "points must be positive and the rule named (128 at most)");
        return;
    }
    struct ledger_refundable *p = NULL;
    if (of_purchase) {
        p = refunds_purchase_find(l, cmd->tenant_id, e->purchase_command_id);
        if (!p || !p->member_id || strcmp(p->member_id, cmd->member_id) != 0) {
            outcome_reject(o, "not_found", "no such purchase of this member");
            return;
        }
    }
    int64_t granted = earn_granted(p, e->points);
    if (granted == 0) {
        outcome_reject(o, "purchase_refunded",
                       "the purchase was refunded: nothing left to earn on");
        return;
    }
    const struct points_policy *policy = policy_of(l, cmd->tenant_id);
    int64_t now = command_time_us(cmd), vests = rules_points_vests_at_us(policy, now);
    int64_t expires = rules_points_expiry_us(policy, vests);
    bool pending = vests > now;
    if (expires != 0 && expires <= vests) {
        outcome_reject(o, "invalid_points", "the tenant's policy would expire the points at once");
        return;
    }
    int64_t after;
    if (!money_add(pending ? o->member->points_pending : o->member->points, granted, &after)) {
        outcome_reject(o, "balance_overflow", "the points balance would overflow");
        return;
    }
    struct ledger_lot *lot = lot_add(l, cmd->tenant_id, cmd->member_id, cmd->branch_id);
    uuid7_generate(lot->lot_id);
    snprintf(lot->posting_id, sizeof(lot->posting_id), "%s", o->posting_id);
    lot->granted = lot->remaining = granted;
    lot->earned = e->points;
    lot->expires_at_us = expires;
    lot->pending = pending;
    lot->vests_at_us = pending ? vests : 0;
    free(lot->purchase_command_id);
    free(lot->rule);
    lot->purchase_command_id = strdup(e->purchase_command_id);
    lot->rule = strdup(e->rule);
    assert(lot->purchase_command_id && lot->rule);
    lot->is_new = true;
    points_lines(o, "points_earned", pending ? "points_pending" : "points", granted);
    *(pending ? &o->member->points_pending : &o->member->points) = after;
    if (p) {
        p->state.points_earned += e->points;
        p->state.points_reversed += e->points - granted;
    }
    o->points = granted;
    snprintf(o->lot_id, sizeof(o->lot_id), "%s", lot->lot_id);
    o->lot_expires_at_us = expires;
    o->lot_vests_at_us = lot->vests_at_us;
}

/* A pending lot whose lock is over vests: what is left of it moves from
 * points_pending to points (four lines through the tenant's points_earned
 * account, each asset balanced). A lot already vested, or emptied by a
 * refund, posts nothing; the command id "vest:<lot id>" makes a resent
 * command a duplicate, so a lot vests once. */
static void decide_vest(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *cmd = o->cmd;
    struct ledger_lot *lot = named_lot(l, o, "points_vested", cmd->vest_points->lot_id);
    if (!lot || lot->remaining == 0 || !lot->pending)
        return;
    o->lot_expires_at_us = lot->expires_at_us;
    o->lot_vests_at_us = lot->vests_at_us;
    if (lot->vests_at_us > command_time_us(cmd)) {
        outcome_reject(o, "not_due", "the lot's lock period is not over");
        return;
    }
    int64_t points = lot->remaining, after;
    if (!money_add(o->member->points, points, &after)) {
        outcome_reject(o, "balance_overflow", "the points balance would overflow");
        return;
    }
    points_lines(o, "points_earned", "points_pending", -points);
    points_lines(o, "points_earned", "points", points);
    o->member->points_pending -= points;
    o->member->points = after;
    lot->pending = false;
    lot->dirty = true;
    o->points = points;
}

struct points_payment_terms points_payment_terms_of(struct ledger_ctx *l, const char *tenant_id)
{
    static const struct points_payment_terms fallback = POINTS_PAYMENT_TERMS_DEFAULT;
    for (size_t i = 0; i < l->policy_count; i++)
        if (strcmp(l->policies[i].tenant_id, tenant_id) == 0)
            return l->policies[i].payment;
    return fallback;
}

bool points_spend_check(struct ledger_ctx *l, struct outcome *o, int64_t points)
{
    struct member_lots ml;
    member_lots_collect(l, o->cmd, NULL, &ml);
    enum points_result r =
        rules_points_plan_spend(ml.views, ml.n, command_time_us(o->cmd), points, ml.take);
    member_lots_free(&ml);
    if (r == POINTS_OK && o->member->points >= points)
        return true;
    outcome_reject(o, r == POINTS_INVALID ? "invalid_points" : "insufficient_points",
                   r == POINTS_INVALID ? "the points amount is not acceptable"
                                       : "the member's unexpired points do not cover the payment");
    return false;
}

void points_spend_commit(struct ledger_ctx *l, struct outcome *o, int64_t points)
{
    struct member_lots ml;
    member_lots_collect(l, o->cmd, NULL, &ml);
    enum points_result r =
        rules_points_plan_spend(ml.views, ml.n, command_time_us(o->cmd), points, ml.take);
    assert(r == POINTS_OK); /* points_spend_check held on the same lots */
    (void)r;
    int64_t from_pending = 0, from_vested = 0;
    member_lots_take(&ml, &from_pending, &from_vested);
    assert(from_pending == 0 && from_vested == points);
    points_lines(o, "points_paid", "points", -points);
    o->member->points -= points;
    member_lots_free(&ml);
}

void points_return_for_refund(struct ledger_ctx *l, struct outcome *o, int64_t points)
{
    const Envelope *cmd = o->cmd;
    if (points <= 0)
        return;
    struct ledger_lot *lot = lot_add(l, cmd->tenant_id, cmd->member_id, cmd->branch_id);
    uuid7_generate(lot->lot_id);
    snprintf(lot->posting_id, sizeof(lot->posting_id), "%s", o->posting_id);
    lot->granted = lot->remaining = points;
    lot->expires_at_us = rules_points_expiry_us(policy_of(l, cmd->tenant_id), command_time_us(cmd));
    lot->is_new = true;
    points_lines(o, "points_paid", "points", points);
    o->member->points += points;
}

int64_t points_reverse_for_refund(struct ledger_ctx *l, struct outcome *o,
                                  const char *purchase_command_id, int64_t points)
{
    if (points == 0)
        return 0;
    struct member_lots ml;
    member_lots_collect(l, o->cmd, purchase_command_id, &ml);
    int64_t unrecovered =
        rules_points_plan_reversal(ml.views, ml.n, command_time_us(o->cmd), points, ml.take);
    int64_t from_pending = 0, from_vested = 0;
    member_lots_take(&ml, &from_pending, &from_vested);
    points_lines(o, "points_reversed", "points_pending", -from_pending);
    points_lines(o, "points_reversed", "points", -from_vested);
    o->member->points_pending -= from_pending;
    o->member->points -= from_vested;
    /* lots hold exactly the balances: taking from lots cannot go below zero */
    assert(o->member->points >= 0 && o->member->points_pending >= 0);
    member_lots_free(&ml);
    return unrecovered;
}

void points_decide(struct ledger_ctx *l, struct outcome *o)
{
    switch (o->cmd->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS:
        decide_adjust(l, o);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARN_POINTS:
        decide_earn(l, o);
        break;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_VEST_POINTS:
        decide_vest(l, o);
        break;
    default:
        decide_expiry(l, o);
    }
}

/* ------------------------------------------------------- encoding */
uint8_t *points_encode_fact(const struct outcome *o, Envelope *env, Balances *bal, size_t *len)
{
    PointsAdjusted adjusted;
    PointsExpired expired;
    PointsEarned earned;
    PointsVested vested;
    if (o->cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EARN_POINTS) {
        const EarnPoints *e = o->cmd->earn_points;
        tessera__ledger__v1__points_earned__init(&earned);
        earned.command_id = e->command_id;
        earned.points = o->points;
        earned.purchase_command_id = e->purchase_command_id;
        earned.rule = e->rule;
        earned.lot_id = (char *)o->lot_id;
        earned.vests_at_us = o->lot_vests_at_us;
        earned.expires_at_us = o->lot_expires_at_us;
        earned.balances = bal;
        env->payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_POINTS_EARNED;
        env->points_earned = &earned;
    } else if (o->cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_VEST_POINTS) {
        tessera__ledger__v1__points_vested__init(&vested);
        vested.command_id = o->cmd->vest_points->command_id;
        vested.lot_id = (char *)o->lot_id;
        vested.points = o->points;
        vested.balances = bal;
        env->payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_POINTS_VESTED;
        env->points_vested = &vested;
    } else if (o->cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ADJUST_POINTS) {
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
static const char LOAD_POLICIES_SQL[] =
    "SELECT tenant_id, kind, periods, utc_offset_minutes, lock_seconds, "
    "payment_points_per_unit, payment_unit_minor, payment_max_share_bp "
    "FROM points_policy WHERE tenant_id = ANY($1::text[])";

static int read_policies(void *ctx, const PGresult *res, char *err, size_t err_len)
{
    struct ledger_ctx *l = ctx;
    for (int i = 0; i < PQntuples(res); i++) {
        struct points_policy policy = {.periods = atoi(PQgetvalue(res, i, 2)),
                                       .utc_offset_minutes = atoi(PQgetvalue(res, i, 3)),
                                       .lock_seconds = db_int_at(res, i, 4)};
        if (!rules_points_kind_parse(PQgetvalue(res, i, 1), &policy.kind))
            continue; /* the table's CHECK makes this impossible */
        l->policies =
            array_grow(l->policies, l->policy_count, &l->policy_cap, sizeof(*l->policies));
        l->policies[l->policy_count++] =
            (struct ledger_points_policy){.tenant_id = strdup(PQgetvalue(res, i, 0)),
                                          .policy = policy,
                                          .payment = {.points_per_unit = db_int_at(res, i, 5),
                                                      .unit_minor = db_int_at(res, i, 6),
                                                      .max_share_bp = db_int_at(res, i, 7)}};
    }
    return 0;
}

/* The batch members' lots with points left, oldest first (lot ids are
 * UUIDv7, time-ordered), which is the tie order of the spending rule. */
static const char LOAD_LOTS_SQL[] =
    "SELECT x.lot_id, x.tenant_id, x.member_id, coalesce(x.branch_id, ''), x.posting_id, "
    "x.granted, x.remaining, "
    "coalesce((extract(epoch FROM x.expires_at) * 1000000)::bigint, 0), x.pending, "
    "coalesce((extract(epoch FROM x.vests_at) * 1000000)::bigint, 0), "
    "coalesce(x.purchase_command_id, ''), coalesce(x.rule, ''), coalesce(x.earned, 0) "
    "FROM point_lots x JOIN unnest($1::text[], $2::text[]) AS k(t, m) "
    "ON x.tenant_id = k.t AND x.member_id = k.m WHERE x.remaining > 0 ORDER BY x.lot_id";

static int read_lots(void *ctx, const PGresult *res, char *err, size_t err_len)
{
    struct ledger_ctx *l = ctx;
    for (int i = 0; i < PQntuples(res); i++) {
        struct ledger_lot *lot =
            lot_add(l, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
        snprintf(lot->lot_id, sizeof(lot->lot_id), "%s", PQgetvalue(res, i, 0));
        snprintf(lot->posting_id, sizeof(lot->posting_id), "%s", PQgetvalue(res, i, 4));
        lot->granted = db_int_at(res, i, 5);
        lot->remaining = db_int_at(res, i, 6);
        lot->expires_at_us = db_int_at(res, i, 7);
        lot->pending = strcmp(PQgetvalue(res, i, 8), "t") == 0;
        lot->vests_at_us = db_int_at(res, i, 9);
        free(lot->purchase_command_id);
        free(lot->rule);
        lot->purchase_command_id = strdup(PQgetvalue(res, i, 10));
        lot->rule = strdup(PQgetvalue(res, i, 11));
        assert(lot->purchase_command_id && lot->rule);
        lot->earned = db_int_at(res, i, 12);
    }
    return 0;
}

void points_queue_load(struct db_pipeline *pl, struct ledger_ctx *l)
{
    if (!l->lots_wanted)
        return;
    store_queue_batch_tenants(pl, l, LOAD_POLICIES_SQL, read_policies);
    store_queue_batch_members(pl, l, LOAD_LOTS_SQL, read_lots);
}

/* New lots and lots whose remaining (or pending state) changed, in one
 * upsert. */
#define LOT_COLUMNS 13
static const char WRITE_LOTS_SQL[] =
    "INSERT INTO point_lots (lot_id, tenant_id, member_id, branch_id, posting_id, "
    "granted, remaining, expires_at, pending, vests_at, purchase_command_id, rule, "
    "earned) SELECT i, t, m, b, p, g, r, CASE WHEN e = 0 THEN NULL ELSE "
    "'epoch'::timestamptz + e * interval '1 microsecond' END, pe, CASE WHEN v = 0 THEN "
    "NULL ELSE 'epoch'::timestamptz + v * interval '1 microsecond' END, pu, ru, ea "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
    "$6::bigint[], $7::bigint[], $8::bigint[], $9::boolean[], $10::bigint[], "
    "$11::text[], $12::text[], $13::bigint[]) "
    "AS x(i, t, m, b, p, g, r, e, pe, v, pu, ru, ea) "
    "ON CONFLICT (lot_id) DO UPDATE SET remaining = EXCLUDED.remaining, "
    "pending = EXCLUDED.pending";

void points_queue_write(struct db_pipeline *pl, struct ledger_ctx *l)
{
    struct db_array id, t, m, br, post, granted, remaining, expires, pending, vests, purchase, rule,
        earned;
    struct db_array *all[LOT_COLUMNS] = {&id,       &t,         &m,       &br,      &post,
                                         &granted,  &remaining, &expires, &pending, &vests,
                                         &purchase, &rule,      &earned};
    for (size_t k = 0; k < LOT_COLUMNS; k++)
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
        db_array_add(&pending, lot->pending ? "t" : "f");
        db_array_add_int(&vests, lot->vests_at_us);
        db_array_add(&purchase, lot->purchase_command_id[0] ? lot->purchase_command_id : NULL);
        db_array_add(&rule, lot->rule[0] ? lot->rule : NULL);
        if (lot->earned > 0)
            db_array_add_int(&earned, lot->earned);
        else
            db_array_add(&earned, NULL);
    }
    if (id.count > 0) {
        const char *p[LOT_COLUMNS];
        for (size_t k = 0; k < LOT_COLUMNS; k++)
            p[k] = db_array_finish(all[k]);
        db_pipeline_add(pl, WRITE_LOTS_SQL, LOT_COLUMNS, p, NULL, NULL);
    }
    for (size_t k = 0; k < LOT_COLUMNS; k++)
        db_array_free(all[k]);
}
