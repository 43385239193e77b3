/* The entitlement decision (docs/entitlements.md), pure: may a member use
 * a resource now, by which rule, until when, and why not. No I/O: the
 * caller hands in the member's facts (tier, cards, what it bought) as the
 * cache or PostgreSQL gave them. Unit-tested from tables in
 * tests/unit/test_entitlement_rules.c.
 *
 * A resource has up to ENT_RULES_MAX rules; any one that holds allows,
 * and the first that holds, in the resource's order among the kinds the
 * caller knows, is the answer's reason (the check learns the kinds in the
 * order tier, card, purchase, and stops at the first that allows):
 * - tier: the member's level has a rank at or above min_rank (the rank of
 *   the level named when the resource was set);
 * - card: the member has a card of one of the products that is active at
 *   now (within [valid_from, valid_to), not frozen, uses left): valid
 *   until the latest valid_to among them;
 * - purchase: the member holds (bought and not refunded) one of the SKUs,
 *   ever, or with its latest purchase within within_days days of now:
 *   valid until that purchase + within_days.
 * A denial lists why each rule did not hold. */
#ifndef TESSERA_INGEST_RULES_ENTITLEMENT_H
#define TESSERA_INGEST_RULES_ENTITLEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENT_RULES_MAX       8    /* rules of one resource */
#define ENT_IDS_MAX         16   /* products or SKUs of one rule */
#define ENT_WITHIN_DAYS_MAX 3650 /* a purchase counts for at most ten years */
#define ENT_DETAIL_MAX      1024 /* bytes of an answer's detail */
#define ENT_US_PER_DAY      INT64_C(86400000000)

enum ent_kind { ENT_TIER, ENT_CARD, ENT_PURCHASE };

struct ent_rule {
    enum ent_kind kind;
    char *min_tier; /* tier: the level's name (owned) */
    int32_t min_rank;
    char **ids; /* card: product ids; purchase: SKUs (owned) */
    size_t n_ids;
    int32_t within_days; /* purchase: 0 ever */
};

struct ent_rules {
    struct ent_rule rules[ENT_RULES_MAX];
    size_t n;
};

/* Frees what the rules own (not rules itself). */
void ent_rules_clear(struct ent_rules *rules);
/* A deep copy of from into to; false (to cleared) when out of memory. */
bool ent_rules_copy(struct ent_rules *to, const struct ent_rules *from)
    __attribute__((warn_unused_result));
/* Whether any rule is of kind. */
bool ent_rules_have(const struct ent_rules *rules, enum ent_kind kind);

/* One card as the decision sees it; status as cache_card_status says it
 * at now ("active", "expired", "frozen", "used_up"). */
struct ent_card {
    const char *card_id;
    const char *product_id;
    const char *status;
    int64_t valid_to_us;
};

/* The member's facts; a kind not known is judged as not holding (the
 * caller asks for a kind only when the rules need it). */
struct ent_facts {
    int64_t now_us;
    bool tier_known, has_tier;
    const char *tier_name;
    int32_t tier_rank;
    bool cards_known;
    const struct ent_card *cards;
    size_t n_cards;
    bool skus_known;
    const char *const *skus;    /* the SKUs asked about ... */
    const int64_t *sku_last_us; /* ... and their latest purchase (0: not held) */
    size_t n_skus;
};

struct ent_decision {
    bool allowed;
    const char *reason;     /* "tier", "card", "purchase"; "no_rule_met" when denied */
    int64_t valid_until_us; /* 0: no end known (a tier, a purchase ever) */
    char detail[ENT_DETAIL_MAX];
};

/* Decides by the rules of the known kinds only: allowed by the first that
 * holds; otherwise denied, with every rule's reason in detail. */
void ent_decide(const struct ent_rules *rules, const struct ent_facts *facts,
                struct ent_decision *out);

#endif
