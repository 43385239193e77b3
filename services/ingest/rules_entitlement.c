/* The entitlement decision (rules_entitlement.h). */
#include "rules_entitlement.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ent_rules_clear(struct ent_rules *rules)
{
    for (size_t i = 0; i < rules->n; i++) {
        struct ent_rule *r = &rules->rules[i];
        free(r->min_tier);
        for (size_t k = 0; k < r->n_ids; k++)
            free(r->ids[k]);
        free(r->ids);
    }
    memset(rules, 0, sizeof(*rules));
}

bool ent_rules_copy(struct ent_rules *to, const struct ent_rules *from)
{
    memset(to, 0, sizeof(*to));
    for (size_t i = 0; i < from->n; i++) {
        const struct ent_rule *f = &from->rules[i];
        struct ent_rule *t = &to->rules[to->n++];
        *t = (struct ent_rule){
            .kind = f->kind, .min_rank = f->min_rank, .within_days = f->within_days};
        t->min_tier = f->min_tier ? strdup(f->min_tier) : NULL;
        t->ids = calloc(f->n_ids ? f->n_ids : 1, sizeof(*t->ids));
        if ((f->min_tier && !t->min_tier) || !t->ids) {
            ent_rules_clear(to);
            return false;
        }
        for (size_t k = 0; k < f->n_ids; k++) {
            if (!(t->ids[k] = strdup(f->ids[k]))) {
                ent_rules_clear(to);
                return false;
            }
            t->n_ids++;
        }
    }
    return true;
}

bool ent_rules_have(const struct ent_rules *rules, enum ent_kind kind)
{
    for (size_t i = 0; i < rules->n; i++)
        if (rules->rules[i].kind == kind)
            return true;
    return false;
}

/* Appends to the decision's detail, "; " between parts; cut when full. */
static void say(struct ent_decision *d, const char *fmt, ...)
{
    size_t used = strlen(d->detail);
    if (used + 3 >= sizeof(d->detail))
        return;
    if (used > 0) {
        memcpy(d->detail + used, "; ", 3);
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->detail + used, sizeof(d->detail) - used, fmt, ap);
    va_end(ap);
}

static bool by_tier(const struct ent_rule *r, const struct ent_facts *f, struct ent_decision *d)
{
    if (f->has_tier && f->tier_rank >= r->min_rank) {
        say(d, "tier %s is at or above %s", f->tier_name, r->min_tier);
        return true;
    }
    if (f->has_tier)
        say(d, "tier %s is below %s", f->tier_name, r->min_tier);
    else
        say(d, "no tier (needs %s or above)", r->min_tier);
    return false;
}

static bool listed(const struct ent_rule *r, const char *id)
{
    for (size_t k = 0; k < r->n_ids; k++)
        if (strcmp(r->ids[k], id) == 0)
            return true;
    return false;
}

static bool by_card(const struct ent_rule *r, const struct ent_facts *f, struct ent_decision *d)
{
    const struct ent_card *best = NULL, *seen = NULL;
    for (size_t i = 0; i < f->n_cards; i++) {
        const struct ent_card *c = &f->cards[i];
        if (!listed(r, c->product_id))
            continue;
        seen = c;
        if (strcmp(c->status, "active") == 0 && (!best || c->valid_to_us > best->valid_to_us))
            best = c;
    }
    if (best) {
        say(d, "card %s of product %s is active", best->card_id, best->product_id);
        d->valid_until_us = best->valid_to_us;
        return true;
    }
    if (seen)
        say(d, "card %s of product %s is %s", seen->card_id, seen->product_id, seen->status);
    else
        say(d, "no card of product %s%s", r->ids[0], r->n_ids > 1 ? " (or the others listed)" : "");
    return false;
}

static bool by_purchase(const struct ent_rule *r, const struct ent_facts *f, struct ent_decision *d)
{
    int64_t last = 0;
    const char *sku = NULL;
    for (size_t i = 0; i < f->n_skus; i++)
        if (listed(r, f->skus[i]) && f->sku_last_us[i] > last)
            last = f->sku_last_us[i], sku = f->skus[i];
    if (!sku) {
        say(d, "no purchase of %s%s", r->ids[0], r->n_ids > 1 ? " (or the others listed)" : "");
        return false;
    }
    if (r->within_days == 0) {
        say(d, "bought %s", sku);
        return true;
    }
    int64_t until = last + (int64_t)r->within_days * ENT_US_PER_DAY;
    if (f->now_us < until) {
        say(d, "bought %s within %d days", sku, (int)r->within_days);
        d->valid_until_us = until;
        return true;
    }
    say(d, "last purchase of %s is older than %d days", sku, (int)r->within_days);
    return false;
}

static const char *const kind_names[] = {"tier", "card", "purchase"};

void ent_decide(const struct ent_rules *rules, const struct ent_facts *facts,
                struct ent_decision *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < rules->n; i++) {
        const struct ent_rule *r = &rules->rules[i];
        bool known = r->kind == ENT_TIER   ? facts->tier_known
                     : r->kind == ENT_CARD ? facts->cards_known
                                           : facts->skus_known;
        if (!known)
            continue;
        struct ent_decision one;
        memset(&one, 0, sizeof(one));
        bool holds = r->kind == ENT_TIER   ? by_tier(r, facts, &one)
                     : r->kind == ENT_CARD ? by_card(r, facts, &one)
                                           : by_purchase(r, facts, &one);
        if (holds) {
            *out = one;
            out->allowed = true;
            out->reason = kind_names[r->kind];
            return;
        }
        say(out, "%s", one.detail);
    }
    out->reason = "no_rule_met";
    out->valid_until_us = 0;
    if (out->detail[0] == '\0')
        say(out, "the resource has no rule this member can meet");
}
