/* Applying a batch of ledger commands: decode, load what the batch needs
 * in three statements, decide every command in order in memory (a member's
 * commands arrive in order on one partition), then write commands, journal
 * lines and balances in three statements. The pipeline commits all of it
 * with the offsets and the outbox. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "cards.h"
#include "events/codec.h"
#include "ids/uuid7.h"
#include "ledger.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "money/money.h"
#include "service/pipeline_metrics.h"

#define ACCOUNT_MAX LEDGER_ACCOUNT_MAX

/* ------------------------------------------------------- batch state */
void ledger_begin_batch(void *ctx)
{
    struct ledger_ctx *l = ctx;
    for (size_t i = 0; i < l->member_count; i++) {
        free(l->members[i].tenant_id);
        free(l->members[i].member_id);
    }
    for (size_t i = 0; i < l->ladder_count; i++)
        free(l->ladders[i].tenant_id);
    for (size_t i = 0; i < l->verdict_count; i++) {
        free(l->verdicts[i].tenant_id);
        free(l->verdicts[i].command_id);
        free(l->verdicts[i].envelope);
    }
    l->member_count = l->ladder_count = l->verdict_count = 0;
    batch_index_clear(&l->member_index);
    batch_index_clear(&l->verdict_index);
    l->batch_posted = l->batch_rejected = l->batch_duplicates = 0;
    if (!l->cards)
        l->cards = cards_new();
    cards_begin_batch(l->cards);
    points_begin_batch(l);
    refunds_begin_batch(l);
    firstday_begin_batch(l);
    settings_begin_batch(l);
    store_rows_free(&l->rows);
    store_rows_init(&l->rows);
}

/* The key a member or verdict lookup compares (batch_index_find). */
struct key_pair {
    const struct ledger_ctx *l;
    const char *tenant_id, *id;
};

static bool member_is(const void *ctx, size_t pos)
{
    const struct key_pair *k = ctx;
    const struct ledger_member *m = &k->l->members[pos];
    return strcmp(m->member_id, k->id) == 0 && strcmp(m->tenant_id, k->tenant_id) == 0;
}

/* Hashed: a batch holds up to PIPELINE_BATCH_MAX commands, and each looks
 * its member up several times. */
struct ledger_member *ledger_member_find(struct ledger_ctx *l, const char *tenant_id,
                                         const char *member_id, bool create)
{
    uint64_t h = batch_index_hash(tenant_id, member_id);
    const struct key_pair k = {l, tenant_id, member_id};
    size_t pos = batch_index_find(&l->member_index, h, member_is, &k);
    if (pos != BATCH_INDEX_NONE)
        return &l->members[pos];
    if (!create)
        return NULL;
    l->members = array_grow(l->members, l->member_count, &l->member_cap, sizeof(*l->members));
    batch_index_add(&l->member_index, h, l->member_count);
    struct ledger_member *m = &l->members[l->member_count++];
    *m = (struct ledger_member){
        .tenant_id = strdup(tenant_id), .member_id = strdup(member_id), .loaded_version = -1};
    assert(m->tenant_id && m->member_id);
    return m;
}

struct ledger_ladder *ledger_ladder_find(struct ledger_ctx *l, const char *tenant_id, bool create)
{
    for (size_t i = 0; i < l->ladder_count; i++)
        if (strcmp(l->ladders[i].tenant_id, tenant_id) == 0)
            return &l->ladders[i];
    if (!create)
        return NULL;
    l->ladders = array_grow(l->ladders, l->ladder_count, &l->ladder_cap, sizeof(*l->ladders));
    struct ledger_ladder *ld = &l->ladders[l->ladder_count++];
    *ld = (struct ledger_ladder){.tenant_id = strdup(tenant_id)};
    return ld;
}

static bool verdict_is(const void *ctx, size_t pos)
{
    const struct key_pair *k = ctx;
    const struct ledger_verdict *v = &k->l->verdicts[pos];
    return strcmp(v->command_id, k->id) == 0 && strcmp(v->tenant_id, k->tenant_id) == 0;
}

struct ledger_verdict *ledger_verdict_find(struct ledger_ctx *l, const char *tenant_id,
                                           const char *command_id)
{
    const struct key_pair k = {l, tenant_id, command_id};
    size_t pos = batch_index_find(&l->verdict_index, batch_index_hash(tenant_id, command_id),
                                  verdict_is, &k);
    return pos == BATCH_INDEX_NONE ? NULL : &l->verdicts[pos];
}

void ledger_verdict_add(struct ledger_ctx *l, const char *tenant_id, const char *command_id,
                        uint8_t *envelope, size_t len)
{
    l->verdicts = array_grow(l->verdicts, l->verdict_count, &l->verdict_cap, sizeof(*l->verdicts));
    batch_index_add(&l->verdict_index, batch_index_hash(tenant_id, command_id), l->verdict_count);
    l->verdicts[l->verdict_count++] = (struct ledger_verdict){.tenant_id = strdup(tenant_id),
                                                              .command_id = strdup(command_id),
                                                              .envelope = envelope,
                                                              .len = len};
}

/* ------------------------------------------------------- commands */
static const char *command_id_of(const Envelope *env)
{
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE:
        return env->top_up_stored_value->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_RECORD_PURCHASE:
        return env->record_purchase->command_id;
    default:
        if (points_is_command(env))
            return points_command_id(env);
        if (refunds_is_command(env))
            return refunds_command_id(env);
        if (settings_is_command(env))
            return settings_command_id(env);
        return cards_command_id(env);
    }
}

static const char *command_type_of(const Envelope *env)
{
    if (settings_is_command(env))
        return settings_command_type(env);
    if (cards_command_id(env))
        return cards_command_type(env);
    if (points_is_command(env))
        return points_command_type(env);
    if (refunds_is_command(env))
        return refunds_command_type(env);
    return env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE
               ? "topup"
               : "purchase";
}

void outcome_line(struct outcome *o, const char *account, const char *asset, int64_t amount)
{
    if (amount == 0)
        return;
    assert(o->line_count < LEDGER_LINES_MAX);
    size_t i = o->line_count++;
    snprintf(o->accounts[i], ACCOUNT_MAX, "%s", account);
    tessera__ledger__v1__journal_line__init(&o->lines[i]);
    o->lines[i].account = o->accounts[i];
    o->lines[i].asset = (char *)asset;
    o->lines[i].amount = amount;
    o->line_ptrs[i] = &o->lines[i];
}

void outcome_pay_from_sv(struct outcome *o, int64_t from_p, int64_t from_b)
{
    const Envelope *e = o->cmd;
    char member[ACCOUNT_MAX], redeemed[ACCOUNT_MAX];
    snprintf(member, sizeof(member), "member:%s", e->member_id);
    snprintf(redeemed, sizeof(redeemed), "tenant:%s:branch:%s:sv_redeemed", e->tenant_id,
             e->branch_id);
    outcome_line(o, member, "sv_principal", -from_p);
    outcome_line(o, redeemed, "sv_principal", from_p);
    outcome_line(o, member, "sv_bonus", -from_b);
    outcome_line(o, redeemed, "sv_bonus", from_b);
    o->member->sv.principal -= from_p;
    o->member->sv.bonus -= from_b;
    o->paid_principal = from_p;
    o->paid_bonus = from_b;
}

bool outcome_spend_sv(struct ledger_ctx *l, struct outcome *o, int64_t charge,
                      const char *uncovered_detail, const char *invalid_detail)
{
    int64_t from_p = 0, from_b = 0;
    enum rules_result r = rules_plan_sv_spend(o->member->sv, charge, &from_p, &from_b);
    if (r != RULES_OK) {
        outcome_reject(o, rules_result_code(r),
                       r == RULES_INSUFFICIENT_BALANCE ? uncovered_detail : invalid_detail);
        return false;
    }
    const char *first_day = firstday_check(l, o->cmd, o->member, charge);
    if (first_day) {
        outcome_reject(o, first_day,
                       "stored value topped up today may be spent today only up to the tenant's "
                       "first-day limit");
        return false;
    }
    outcome_pay_from_sv(o, from_p, from_b);
    return true;
}

void outcome_reject(struct outcome *o, const char *code, const char *detail)
{
    o->reject_code = code;
    o->reject_detail = detail;
}

void outcome_reason(struct outcome *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->reason, sizeof(o->reason), fmt, ap);
    va_end(ap);
    assert(n >= 0 && (size_t)n < sizeof(o->reason));
}

/* A stored-value bonus given as a reward: bonus only, counted against the
 * tenant's prepaid cap like any top-up's. */
static void decide_bonus_grant(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *env = o->cmd;
    const TopUpStoredValue *t = env->top_up_stored_value;
    int64_t bonus = t->bonus_grant, after = 0;
    if (bonus <= 0 || bonus > MONEY_AMOUNT_MAX || !t->grant_reason[0] ||
        strlen(t->grant_reason) > LEDGER_REASON_MAX / 2) {
        outcome_reject(o, "invalid_command", "a bonus grant needs a bonus and a reason");
        return;
    }
    o->reject_code = money_add(o->member->sv.bonus, bonus, &after)
                         ? prepaid_check(l, env->tenant_id, bonus)
                         : PREPAID_OVERFLOW_CODE;
    if (o->reject_code) {
        o->reject_detail = PREPAID_OVERFLOW_DETAIL;
        return;
    }
    char member[ACCOUNT_MAX], issued[ACCOUNT_MAX];
    snprintf(member, sizeof(member), "member:%s", env->member_id);
    snprintf(issued, sizeof(issued), "tenant:%s:sv_bonus_issued", env->tenant_id);
    outcome_line(o, member, "sv_bonus", bonus);
    outcome_line(o, issued, "sv_bonus", -bonus);
    o->member->sv.bonus = after;
    o->bonus = bonus;
    outcome_reason(o, "sv_bonus_grant:%s", t->grant_reason);
}

static void decide_topup(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *env = o->cmd;
    const TopUpStoredValue *t = env->top_up_stored_value;
    if (t->amount == 0 && t->bonus_grant > 0) {
        decide_bonus_grant(l, o);
        return;
    }
    struct ledger_ladder *ld = ledger_ladder_find(l, env->tenant_id, false);
    int64_t bonus = ld ? rules_topup_bonus(ld->steps, ld->count, t->amount) : 0;
    struct sv_balance after;
    enum rules_result r = rules_plan_topup(o->member->sv, t->amount, bonus, &after);
    o->amount = t->amount;
    if (r != RULES_OK) {
        o->reject_code = rules_result_code(r);
        o->reject_detail = "the top-up amount is not acceptable";
        return;
    }
    int64_t in = 0; /* both fit an int64 (rules_plan_topup): so does their sum */
    o->reject_code = money_add(t->amount, bonus, &in) ? prepaid_check(l, env->tenant_id, in)
                                                      : PREPAID_OVERFLOW_CODE;
    if (o->reject_code) {
        o->reject_detail = PREPAID_OVERFLOW_DETAIL;
        return;
    }
    char member[ACCOUNT_MAX], sold[ACCOUNT_MAX], issued[ACCOUNT_MAX];
    snprintf(member, sizeof(member), "member:%s", env->member_id);
    snprintf(sold, sizeof(sold), "tenant:%s:branch:%s:sv_sold", env->tenant_id, env->branch_id);
    snprintf(issued, sizeof(issued), "tenant:%s:sv_bonus_issued", env->tenant_id);
    outcome_line(o, member, "sv_principal", t->amount);
    outcome_line(o, sold, "sv_principal", -t->amount);
    outcome_line(o, member, "sv_bonus", bonus);
    outcome_line(o, issued, "sv_bonus", -bonus);
    o->member->sv = after;
    o->bonus = bonus;
    o->charged = t->amount;
}

/* The part of the charge the purchase's points pay (rules_price_points,
 * the tenant's terms), into *value: 0 when it names none. With payment
 * method "points" they must pay all of it. false with o refused. */
static bool purchase_points_check(struct ledger_ctx *l, struct outcome *o, int64_t *value)
{
    const RecordPurchase *p = o->cmd->record_purchase;
    bool all_points = strcmp(p->payment_method, "points") == 0;
    *value = 0;
    if (p->points == 0 && !all_points)
        return true;
    struct points_payment_terms terms = points_payment_terms_of(l, o->cmd->tenant_id);
    const char *code = rules_price_points(&terms, o->charged, p->points, value);
    if (code) {
        outcome_reject(o, code,
                       strcmp(code, "points_share_exceeded") == 0
                           ? "the points pay more of the bill than the tenant allows"
                           : "the points are not a whole number of the tenant's points units");
        return false;
    }
    if (all_points && *value < o->charged) {
        outcome_reject(o, "points_do_not_cover", "paid with points alone, they must cover it all");
        return false;
    }
    return points_spend_check(l, o, p->points);
}

/* A purchase's price (rules_pricing.c): the tier's discount off the list
 * price first (折上折), then the named discount card's and coupon's, each
 * on what the step before left; stored value pays what is left, principal
 * and bonus pro rata. */
static void decide_purchase(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *env = o->cmd;
    const RecordPurchase *p = env->record_purchase;
    o->amount = p->amount;
    struct price_card card_terms;
    const struct price_card *card;
    const struct coupon_state *coupon;
    struct pricing_quote q;
    const char *code = cards_purchase_terms(l, env, &card_terms, &card, &coupon);
    if (!code)
        code = rules_price_purchase(p->amount, p->tier_discount_bp, card, coupon,
                                    env->occurred_at_us, &q);
    if (code) {
        bool bad_amount = p->amount <= 0 || p->amount > MONEY_AMOUNT_MAX;
        bool bad_tier = !pricing_rate_ok(p->tier_discount_bp);
        o->reject_code = code;
        o->reject_detail = bad_amount ? "the purchase amount is not acceptable"
                           : bad_tier ? "the tier's rate is not acceptable"
                                      : "the card or coupon cannot be used with this purchase";
        return;
    }
    o->charged = q.charged;
    o->tier_discount = q.tier_discount;
    o->coupon_discount = q.coupon_discount;
    o->discount = pricing_discount_total(&q);
    int64_t by_points = 0;
    if (!purchase_points_check(l, o, &by_points))
        return;
    if (strcmp(p->payment_method, "stored_value") == 0 && o->charged - by_points > 0) {
        if (!outcome_spend_sv(l, o, o->charged - by_points,
                              "the stored-value balance does not cover the charge",
                              "the purchase amount is not acceptable"))
            return;
    }
    /* Last: nothing below refuses, and the lots it takes stay taken. */
    if (p->points > 0)
        points_spend_commit(l, o, p->points);
    o->points_paid = p->points;
    o->points_value = by_points;
    uuid7_generate(o->purchase_id);
}

/* ------------------------------------------------------- encoding */
static void outcome_balances(const struct outcome *o, Balances *bal)
{
    tessera__ledger__v1__balances__init(bal);
    if (!o->member)
        return; /* a tenant command (cards_is_tenant_command) */
    bal->points = o->member->points;
    bal->points_pending = o->member->points_pending;
    bal->stored_value_principal = o->member->sv.principal;
    bal->stored_value_bonus = o->member->sv.bonus;
    bal->version = o->member->version;
}

void outcome_event_init(struct outcome_event *ev, const struct outcome *o, bool fact)
{
    const Envelope *c = o->cmd;
    ev->meta = (struct event_meta){.tenant_id = c->tenant_id,
                                   .branch_id = c->branch_id,
                                   .member_id = c->member_id,
                                   .causation_id = c->event_id,
                                   .correlation_id =
                                       c->correlation_id[0] ? c->correlation_id : c->event_id,
                                   .actor_kind = "service",
                                   .actor_id = "ledger",
                                   .traceparent = c->traceparent};
    envelope_init(&ev->env, &ev->actor, &ev->meta);
    outcome_balances(o, &ev->bal);
    if (fact)
        ev->env.occurred_at_us = c->occurred_at_us;
}

/* The verdict envelope (LedgerPosted or LedgerRejected), encoded. */
static uint8_t *encode_verdict(const struct outcome *o, size_t *len)
{
    struct outcome_event ev;
    LedgerPosted posted;
    LedgerRejected rejected;
    PointsLotDetail lot;
    RefundDetail refund;
    CardState card;
    CouponState coupon;
    outcome_event_init(&ev, o, false);
    Envelope *env = &ev.env;
    const char *cmd_id = command_id_of(o->cmd);
    if (o->reject_code) {
        tessera__ledger__v1__ledger_rejected__init(&rejected);
        rejected.command_id = (char *)cmd_id;
        rejected.command_type = (char *)command_type_of(o->cmd);
        rejected.code = (char *)o->reject_code;
        rejected.detail = (char *)o->reject_detail;
        rejected.balances = &ev.bal;
        env->payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_REJECTED;
        env->ledger_rejected = &rejected;
    } else {
        tessera__ledger__v1__ledger_posted__init(&posted);
        posted.command_id = (char *)cmd_id;
        posted.posting_id = (char *)o->posting_id;
        posted.command_type = (char *)command_type_of(o->cmd);
        posted.n_lines = o->line_count;
        posted.lines = (JournalLine **)o->line_ptrs;
        posted.balances = &ev.bal;
        posted.amount = o->amount;
        posted.charged = o->charged;
        posted.bonus = o->bonus;
        posted.purchase_id = (char *)o->purchase_id;
        posted.paid_principal = o->paid_principal;
        posted.paid_bonus = o->paid_bonus;
        posted.discount_applied = o->discount;
        if (o->cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_RECORD_PURCHASE) {
            posted.tier_discount = o->tier_discount;
            posted.tier = o->cmd->record_purchase->tier;
            posted.points_paid = o->points_paid;
            posted.points_value = o->points_value;
        }
        if (points_is_command(o->cmd)) {
            tessera__ledger__v1__points_lot_detail__init(&lot);
            lot.lot_id = (char *)o->lot_id;
            lot.expires_at_us = o->lot_expires_at_us;
            lot.vests_at_us = o->lot_vests_at_us;
            lot.points = o->points;
            posted.points_lot = &lot;
        }
        if (o->is_refund) {
            refunds_fill_detail(o, &refund);
            posted.refund = &refund;
        }
        if (cards_command_id(o->cmd))
            cards_fill_posted(o, &posted, &card, &coupon);
        env->payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_POSTED;
        env->ledger_posted = &posted;
    }
    return envelope_encode(env, len);
}

/* The business fact of a posted command (StoredValueToppedUp or
 * PurchaseRecorded), for tiering, campaign and analytics; its event id
 * goes to event_id (the receipt names it). */
static uint8_t *encode_fact(const struct outcome *o, size_t *len, char event_id[UUID_STR_SIZE])
{
    struct outcome_event ev;
    StoredValueToppedUp topped;
    PurchaseRecorded purchase;
    outcome_event_init(&ev, o, true);
    memcpy(event_id, ev.meta.event_id, UUID_STR_SIZE);
    Envelope *env = &ev.env;
    if (points_is_command(o->cmd))
        return points_encode_fact(o, env, &ev.bal, len);
    if (refunds_is_command(o->cmd))
        return refunds_encode_fact(o, env, &ev.bal, len);
    if (o->cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE) {
        tessera__ledger__v1__stored_value_topped_up__init(&topped);
        topped.command_id = o->cmd->top_up_stored_value->command_id;
        topped.amount = o->amount;
        topped.bonus = o->bonus;
        topped.payment_method = o->cmd->top_up_stored_value->payment_method;
        topped.balances = &ev.bal;
        env->payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_STORED_VALUE_TOPPED_UP;
        env->stored_value_topped_up = &topped;
    } else {
        const RecordPurchase *p = o->cmd->record_purchase;
        tessera__ledger__v1__purchase_recorded__init(&purchase);
        purchase.command_id = p->command_id;
        purchase.purchase_id = (char *)o->purchase_id;
        purchase.amount = o->amount;
        purchase.charged = o->charged;
        purchase.discount_applied = o->discount;
        purchase.payment_method = p->payment_method;
        purchase.paid_principal = o->paid_principal;
        purchase.paid_bonus = o->paid_bonus;
        purchase.n_items = p->n_items;
        purchase.items = p->items;
        purchase.tier_discount = o->tier_discount;
        purchase.points_multiplier_bp = p->points_multiplier_bp;
        purchase.tier = p->tier;
        purchase.points_paid = o->points_paid;
        purchase.points_value = o->points_value;
        env->payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED;
        env->purchase_recorded = &purchase;
    }
    return envelope_encode(env, len);
}

/* ------------------------------------------------------- rows */
static void record_rows(struct ledger_ctx *l, const struct outcome *o, const uint8_t *verdict,
                        size_t verdict_len)
{
    const Envelope *c = o->cmd;
    char reason[LEDGER_REASON_MAX];
    if (o->reason[0]) {
        memcpy(reason, o->reason, sizeof(reason));
    } else {
        const char *method =
            c->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE
                ? c->top_up_stored_value->payment_method
                : c->record_purchase->payment_method;
        snprintf(reason, sizeof(reason), "%s:%s", command_type_of(c), method);
    }
    store_add_verdict(&l->rows, c, command_id_of(c), command_type_of(c), o->reject_code,
                      o->posting_id, verdict, verdict_len, o->lines, o->line_count, reason);
}

/* A command seen before: answer with the original verdict again, marked
 * duplicate, and change nothing. */
static void emit_duplicate(struct ledger_ctx *l, struct pipeline_batch *b, const Envelope *cmd,
                           const struct ledger_verdict *v)
{
    char why[128];
    Envelope *env = envelope_decode(v->envelope, v->len, why, sizeof(why));
    if (!env) {
        log_fields(LOG_ERROR, "stored verdict does not decode", "reason", why, NULL);
        return;
    }
    char event_id[UUID_STR_SIZE];
    uuid7_generate(event_id);
    char *own_event_id = env->event_id, *own_causation_id = env->causation_id;
    char *own_traceparent = env->traceparent;
    env->event_id = event_id;
    env->causation_id = cmd->event_id;
    env->traceparent = cmd->traceparent; /* the retry's trace, not the first request's */
    env->recorded_at_us = event_now_us();
    if (env->ledger_posted &&
        env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_POSTED)
        env->ledger_posted->duplicate = true;
    else if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_REJECTED)
        env->ledger_rejected->duplicate = true;
    size_t len = 0;
    uint8_t *out = envelope_encode(env, &len);
    /* Give the decoded strings back so envelope_free frees what it owns. */
    env->event_id = own_event_id;
    env->causation_id = own_causation_id;
    env->traceparent = own_traceparent;
    envelope_free(env);
    if (out)
        pipeline_emit(b, TOPIC_LEDGER_EVENTS, cmd->member_id, out, len);
    l->batch_duplicates++;
}

/* One line per verdict, so an operator can follow a request from ingest's
 * access log (same correlation id and trace) to the ledger's decision:
 * rejections at info, postings at debug. */
static void log_verdict(const Envelope *cmd, const char *cmd_id, const struct outcome *o)
{
    log_fields(o->reject_code ? LOG_INFO : LOG_DEBUG,
               o->reject_code ? "command rejected" : "command posted", "tenant", cmd->tenant_id,
               "member", cmd->member_id, "command_id", cmd_id, "correlation_id",
               cmd->correlation_id, "traceparent", cmd->traceparent, "code",
               o->reject_code ? o->reject_code : "", NULL);
}

static void decide(struct ledger_ctx *l, struct outcome *o)
{
    const Envelope *cmd = o->cmd;
    if (cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE)
        decide_topup(l, o);
    else if (points_is_command(cmd))
        points_decide(l, o);
    else if (refunds_is_command(cmd))
        refunds_decide(l, o);
    else if (cards_command_id(cmd))
        cards_decide(l, o);
    else if (settings_is_command(cmd))
        settings_decide(l, o);
    else
        decide_purchase(l, o);
}

/* Did the posted command move the member's balances (its version goes
 * up)? A card command's lines move card uses and days, which are not
 * balances: only a card paid from stored value moves them. */
static bool moves_balances(const struct outcome *o)
{
    if (!o->member)
        return false; /* a tenant command */
    if (cards_command_id(o->cmd))
        return o->paid_principal + o->paid_bonus + o->points_paid > 0;
    return o->line_count > 0;
}

/* The facts of a posted command, keyed like its verdict, and the
 * receipt the member hears of it (receipts.c). */
static void emit_facts(struct ledger_ctx *l, struct pipeline_batch *b, const struct outcome *o,
                       const char *key)
{
    char fact_id[UUID_STR_SIZE] = "";
    if (cards_command_id(o->cmd)) {
        cards_emit_facts(b, o, key, fact_id);
    } else if (settings_is_command(o->cmd)) {
        return; /* the verdict is the fact: the version is in read_settings */
    } else {
        size_t flen = 0;
        uint8_t *fact = encode_fact(o, &flen, fact_id);
        if (fact)
            pipeline_emit(b, TOPIC_LEDGER_EVENTS, key, fact, flen);
        else
            fact_id[0] = '\0';
    }
    receipts_emit(l, b, o, fact_id);
}

/* Every command kind's one path: decide, undo a rejection, record the
 * verdict (rows, batch memory for duplicates, event), emit the facts. */
static void apply_one(struct ledger_ctx *l, struct pipeline_batch *b, const Envelope *cmd)
{
    const char *cmd_id = command_id_of(cmd);
    struct ledger_verdict *seen = ledger_verdict_find(l, cmd->tenant_id, cmd_id);
    if (seen) {
        emit_duplicate(l, b, cmd, seen);
        return;
    }
    bool tenant = cards_is_tenant_command(cmd) || settings_is_command(cmd);
    struct outcome o = {
        .cmd = cmd,
        .member = tenant ? NULL : ledger_member_find(l, cmd->tenant_id, cmd->member_id, false)};
    assert(tenant || o.member);
    uuid7_generate(o.posting_id);
    struct ledger_member before = o.member ? *o.member : (struct ledger_member){0};
    decide(l, &o);
    if (o.reject_code) {
        if (o.member)
            *o.member = before; /* a rejection changes nothing */
        o.line_count = 0;
        o.fraud = CARD_FRAUD_NONE;
    } else if (o.member && moves_balances(&o)) {
        o.member->version++;
        o.member->dirty = true;
    }
    if (!o.reject_code)
        firstday_posted(l, &o);
    if (!o.reject_code &&
        cmd->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_RECORD_PURCHASE &&
        cmd->record_purchase->coupon_id[0])
        cards_purchase_coupon_commit(l, cmd, o.coupon_discount);
    size_t vlen = 0;
    uint8_t *verdict = encode_verdict(&o, &vlen);
    assert(verdict); /* bounded fields: an encoding failure is a programmer error */
    record_rows(l, &o, verdict, vlen);
    uint8_t *copy = malloc(vlen);
    assert(copy);
    memcpy(copy, verdict, vlen);
    ledger_verdict_add(l, cmd->tenant_id, cmd_id, copy, vlen);
    const char *key = tenant ? cmd->tenant_id : cmd->member_id;
    if (!o.reject_code) {
        emit_facts(l, b, &o, key);
        l->batch_posted++;
    } else {
        l->batch_rejected++;
    }
    log_verdict(cmd, cmd_id, &o);
    pipeline_emit(b, TOPIC_LEDGER_EVENTS, key, verdict, vlen);
}

/* Checks a decoded envelope is a ledger command we can key; the reason
 * when not (the message goes to dead-letter). */
static const char *command_problem(const Envelope *env)
{
    const char *id = command_id_of(env);
    if (!id)
        return "not a ledger command";
    if (points_is_command(env)) {
        const char *problem = points_command_id_problem(env);
        if (problem)
            return problem;
    } else if (!uuid_is_valid(id)) {
        return "command_id is not a UUID";
    }
    if (!env->member_id[0] && !cards_is_tenant_command(env) && !settings_is_command(env))
        return "command without member_id";
    return ledger_command_text_problem(env);
}

/* Observes the ledger's step that started at started_s; returns now. */
static double step_done(const char *step, double started_s)
{
    double now_s = metrics_now_seconds();
    pipeline_metrics_step(step, now_s - started_s);
    return now_s;
}

int ledger_apply_batch(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len)
{
    struct ledger_ctx *l = ctx;
    double t0 = metrics_now_seconds();
    Envelope **envs = calloc(b->count, sizeof(*envs));
    assert(envs);
    struct db_array cmd_tenants, cmd_ids;
    db_array_init(&cmd_tenants);
    db_array_init(&cmd_ids);
    for (size_t i = 0; i < b->count; i++) {
        char why[128];
        const rd_kafka_message_t *m = b->msgs[i];
        envs[i] = envelope_decode(m->payload, m->len, why, sizeof(why));
        const char *problem = envs[i] ? command_problem(envs[i]) : "undecodable envelope";
        if (problem) {
            pipeline_mark_poison(b, i, problem);
            envelope_free(envs[i]);
            envs[i] = NULL;
            continue;
        }
        ledger_member_find(l, envs[i]->tenant_id, envs[i]->member_id, true);
        l->lots_wanted |=
            points_is_command(envs[i]) ||
            (envs[i]->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_RECORD_PURCHASE &&
             (envs[i]->record_purchase->points != 0 ||
              strcmp(envs[i]->record_purchase->payment_method, "points") == 0)) ||
            (envs[i]->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_EXTEND_CARD &&
             envs[i]->extend_card->points_price != 0);
        refunds_note(l, envs[i]);
        ledger_ladder_find(l, envs[i]->tenant_id, true);
        cards_note(l, envs[i]);
        firstday_note(l, envs[i]);
        db_array_add(&cmd_tenants, envs[i]->tenant_id);
        db_array_add(&cmd_ids, command_id_of(envs[i]));
    }
    l->rows.by_insert = b->count <= l->insert_batch_max;
    double t = step_done("ledger_decode", t0);
    int rc = store_load(pg, l, &cmd_tenants, &cmd_ids, err, err_len);
    if (rc == 0)
        rc = cards_load(pg, l, err, err_len);
    if (rc == 0) {
        t = step_done("ledger_load", t);
        for (size_t i = 0; i < b->count; i++)
            if (envs[i])
                apply_one(l, b, envs[i]);
        t = step_done("ledger_decide", t);
        rc = store_write(pg, l, err, err_len);
        if (rc == 0)
            rc = settings_write(pg, l, err, err_len);
        /* prepaid_track runs in ledger_before_commit */
    }
    if (rc == 0)
        rc = cards_write(pg, l, err, err_len);
    if (rc == 0)
        step_done("ledger_write", t);
    for (size_t i = 0; i < b->count; i++)
        envelope_free(envs[i]);
    free(envs);
    db_array_free(&cmd_tenants);
    db_array_free(&cmd_ids);
    return rc;
}

/* The tenant's prepaid total is one row every batch of that tenant
 * updates: updated last, its lock is held across the commit only, not
 * across the batch's writes and outbox, so two workers on one tenant
 * overlap everything else (docs/benchmarks.md, scenario 3). */
int ledger_before_commit(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len)
{
    return prepaid_track(pg, ctx, b, err, err_len);
}

void ledger_after_commit(void *ctx, struct pipeline_batch *b)
{
    struct ledger_ctx *l = ctx;
    atomic_fetch_add(&l->posted, l->batch_posted);
    atomic_fetch_add(&l->rejected, l->batch_rejected);
    atomic_fetch_add(&l->duplicates, l->batch_duplicates);
    ledger_cache_sync(l);
}
