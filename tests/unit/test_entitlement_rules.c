/* The entitlement decision from tables (services/ingest/rules_entitlement.h):
 * tier at or above, an active card of a listed product (not expired,
 * frozen or used up), a purchase ever or within N days, the first rule
 * that holds as the reason, and a denial that says why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/ingest/rules_entitlement.h"

#define NOW (INT64_C(1800000000) * 1000000)
#define DAY ENT_US_PER_DAY

static char **ids1(const char *id)
{
    char **ids = calloc(1, sizeof(*ids));
    ids[0] = strdup(id);
    return ids;
}

/* tier >= rank 2 ("Advanced"), card of product "gym-year", purchase of
 * "ALG-1" within 30 days. */
static void course_rules(struct ent_rules *r)
{
    memset(r, 0, sizeof(*r));
    r->rules[0] =
        (struct ent_rule){.kind = ENT_TIER, .min_tier = strdup("Advanced"), .min_rank = 2};
    r->rules[1] = (struct ent_rule){.kind = ENT_CARD, .ids = ids1("gym-year"), .n_ids = 1};
    r->rules[2] = (struct ent_rule){
        .kind = ENT_PURCHASE, .ids = ids1("ALG-1"), .n_ids = 1, .within_days = 30};
    r->n = 3;
}

static void test_table(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        bool has_tier;
        int32_t rank;
        const char *card_product, *card_status;
        int64_t bought_days_ago; /* -1: never */
        bool allowed;
        const char *reason;
        int64_t valid_until_us;
        const char *detail_has;
    } cases[] = {
        {"no tier, nothing", false, 0, NULL, NULL, -1, false, "no_rule_met", 0, "no tier"},
        {"tier below", true, 1, NULL, NULL, -1, false, "no_rule_met", 0, "is below Advanced"},
        {"tier at", true, 2, NULL, NULL, -1, true, "tier", 0, "at or above"},
        {"tier above", true, 3, NULL, NULL, -1, true, "tier", 0, NULL},
        {"active card", false, 0, "gym-year", "active", -1, true, "card", NOW + 10 * DAY, NULL},
        {"expired card", false, 0, "gym-year", "expired", -1, false, "no_rule_met", 0, "expired"},
        {"frozen card", false, 0, "gym-year", "frozen", -1, false, "no_rule_met", 0, "frozen"},
        {"other product", false, 0, "swim", "active", -1, false, "no_rule_met", 0,
         "no card of product gym-year"},
        {"bought 10 days ago", false, 0, NULL, NULL, 10, true, "purchase", NOW + 20 * DAY, NULL},
        {"bought 30 days ago", false, 0, NULL, NULL, 30, false, "no_rule_met", 0, "older than 30"},
        {"tier wins over card (first rule)", true, 2, "gym-year", "active", 1, true, "tier", 0,
         NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ent_rules rules;
        course_rules(&rules);
        struct ent_card card = {.card_id = "c1",
                                .product_id = cases[i].card_product,
                                .status = cases[i].card_status,
                                .valid_to_us = NOW + 10 * DAY};
        const char *skus[1] = {"ALG-1"};
        int64_t last[1] = {cases[i].bought_days_ago < 0 ? 0 : NOW - cases[i].bought_days_ago * DAY};
        struct ent_facts f = {.now_us = NOW,
                              .tier_known = true,
                              .has_tier = cases[i].has_tier,
                              .tier_name = "Tier",
                              .tier_rank = cases[i].rank,
                              .cards_known = true,
                              .cards = &card,
                              .n_cards = cases[i].card_product ? 1 : 0,
                              .skus_known = true,
                              .skus = skus,
                              .sku_last_us = last,
                              .n_skus = 1};
        struct ent_decision d;
        ent_decide(&rules, &f, &d);
        print_message("%s\n", cases[i].what);
        assert_int_equal(d.allowed, cases[i].allowed);
        assert_string_equal(d.reason, cases[i].reason);
        assert_int_equal(d.valid_until_us, cases[i].valid_until_us);
        if (cases[i].detail_has)
            assert_non_null(strstr(d.detail, cases[i].detail_has));
        ent_rules_clear(&rules);
    }
}

/* Kinds not known yet are not judged: the tier alone may allow (the
 * check's first stage), and a denial by tier alone names only the tier. */
static void test_unknown_kinds_skipped(void **state)
{
    (void)state;
    struct ent_rules rules;
    course_rules(&rules);
    struct ent_facts f = {
        .now_us = NOW, .tier_known = true, .has_tier = true, .tier_name = "Basic", .tier_rank = 1};
    struct ent_decision d;
    ent_decide(&rules, &f, &d);
    assert_false(d.allowed);
    assert_null(strstr(d.detail, "card"));
    assert_true(ent_rules_have(&rules, ENT_CARD));
    ent_rules_clear(&rules);
    assert_false(ent_rules_have(&rules, ENT_CARD));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_unknown_kinds_skipped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
