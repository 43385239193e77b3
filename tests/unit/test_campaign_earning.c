/* The campaign's purchase earning rule from tables: rounding down at each
 * step, the tier multiplier (0 meaning x1), zero and disabled rules,
 * category exclusions in proportion to list prices, bounds, and the
 * overflow guard (a computation in int64 would wrap on the largest
 * inputs and earn a small, wrong number). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "../../services/campaign/rules_earning.h"
#include "money/money.h"

#define MAX_ITEMS 4

struct item_spec {
    const char *category; /* NULL: no more items */
    int64_t quantity, unit_price;
};

struct earning_case {
    const char *name;
    /* the rule */
    bool enabled;
    int64_t unit_amount, points_per_unit;
    const char *excluded[3]; /* NULL-terminated */
    /* the purchase */
    int64_t charged, multiplier_bp;
    struct item_spec items[MAX_ITEMS];
    /* the answer */
    enum earning_result result;
    int64_t points;
};

/* One case a line or two, so the table reads as a table. */
/* clang-format off */
static const struct earning_case cases[] = {
    /* 1 point per yuan, the demo tenant's rule */
    {"123.45 yuan earns 123", true, 100, 1, {NULL}, 12345, 0, {{0}}, EARNING_OK, 123},
    {"a yuan exactly", true, 100, 1, {NULL}, 100, 0, {{0}}, EARNING_OK, 1},
    {"below one unit", true, 100, 1, {NULL}, 99, 0, {{0}}, EARNING_OK, 0},
    {"nothing charged", true, 100, 1, {NULL}, 0, 0, {{0}}, EARNING_OK, 0},
    {"one fen per point", true, 1, 1, {NULL}, 12345, 0, {{0}}, EARNING_OK, 12345},
    {"2 points per yuan", true, 100, 2, {NULL}, 12345, 0, {{0}}, EARNING_OK, 246},
    /* units are floored before points_per_unit: 12 units, not 12.345 */
    {"3 points per 10 yuan", true, 1000, 3, {NULL}, 12345, 0, {{0}}, EARNING_OK, 36},
    {"zero points per unit", true, 100, 0, {NULL}, 12345, 0, {{0}}, EARNING_OK, 0},
    /* the tier multiplier */
    {"multiplier 0 means x1", true, 100, 1, {NULL}, 12345, 0, {{0}}, EARNING_OK, 123},
    {"x1 explicitly", true, 100, 1, {NULL}, 12345, 10000, {{0}}, EARNING_OK, 123},
    {"x1.5 rounds down", true, 100, 1, {NULL}, 12345, 15000, {{0}}, EARNING_OK, 184},
    {"x2", true, 100, 1, {NULL}, 12345, 20000, {{0}}, EARNING_OK, 246},
    {"x1.0001 rounds down", true, 100, 1, {NULL}, 12345, 10001, {{0}}, EARNING_OK, 123},
    {"x0.5", true, 100, 1, {NULL}, 12345, 5000, {{0}}, EARNING_OK, 61},
    {"x10, the bound", true, 100, 1, {NULL}, 12345, 100000, {{0}}, EARNING_OK, 1230},
    /* the multiplier applies to the product of units and points */
    {"x1.5 on 3 per 10 yuan", true, 1000, 3, {NULL}, 12345, 15000, {{0}}, EARNING_OK, 54},
    /* a disabled rule earns nothing, whatever the purchase */
    {"disabled", false, 100, 1, {NULL}, 12345, 0, {{0}}, EARNING_OK, 0},
    {"disabled, odd purchase", false, 100, 1, {NULL}, -5, -1, {{0}}, EARNING_OK, 0},
    /* category exclusions, in proportion to list prices */
    {"gift excluded",
     true, 100, 1, {"gift", NULL}, 20000, 0,
     {{"gift", 1, 5000}, {"course", 1, 15000}}, EARNING_OK, 150},
    {"gift excluded after a 10% discount",
     true, 100, 1, {"gift", NULL}, 18000, 0,
     {{"gift", 1, 5000}, {"course", 1, 15000}}, EARNING_OK, 135},
    {"quantities count",
     true, 100, 1, {"gift", NULL}, 10000, 0,
     {{"gift", 3, 1000}, {"course", 1, 7000}}, EARNING_OK, 70},
    /* 10001 x 2/3 = 6667.33: the eligible share rounds down */
    {"eligible share rounds down",
     true, 1, 1, {"gift", NULL}, 10001, 0,
     {{"gift", 1, 1}, {"course", 1, 2}}, EARNING_OK, 6667},
    {"everything excluded",
     true, 100, 1, {"gift", "card", NULL}, 20000, 0,
     {{"gift", 1, 5000}, {"card", 1, 15000}}, EARNING_OK, 0},
    {"no category is never excluded",
     true, 100, 1, {"gift", NULL}, 20000, 0,
     {{"", 1, 5000}, {"gift", 1, 15000}}, EARNING_OK, 50},
    {"no excluded item",
     true, 100, 1, {"gift", NULL}, 20000, 0,
     {{"course", 1, 5000}, {"book", 1, 15000}}, EARNING_OK, 200},
    {"exclusions without items", true, 100, 1, {"gift", NULL}, 12345, 0, {{0}}, EARNING_OK, 123},
    {"items priced zero",
     true, 100, 1, {"gift", NULL}, 12345, 0, {{"gift", 2, 0}}, EARNING_OK, 123},
    {"exclusion and multiplier",
     true, 100, 1, {"gift", NULL}, 20000, 15000,
     {{"gift", 1, 5000}, {"course", 1, 15000}}, EARNING_OK, 225},
    {"a bad item matters only with exclusions",
     true, 100, 1, {NULL}, 12345, 0, {{"gift", 1, -5}}, EARNING_OK, 123},
    {"a bad item with exclusions",
     true, 100, 1, {"gift", NULL}, 12345, 0, {{"gift", 1, -5}}, EARNING_INVALID_PURCHASE, 0},
    {"a negative quantity",
     true, 100, 1, {"gift", NULL}, 12345, 0, {{"course", -1, 5}}, EARNING_INVALID_PURCHASE, 0},
    /* bounds of the purchase */
    {"negative charge", true, 100, 1, {NULL}, -1, 0, {{0}}, EARNING_INVALID_PURCHASE, 0},
    {"charge over the money bound",
     true, 100, 1, {NULL}, MONEY_AMOUNT_MAX + 1, 0, {{0}}, EARNING_INVALID_PURCHASE, 0},
    {"negative multiplier", true, 100, 1, {NULL}, 12345, -1, {{0}}, EARNING_INVALID_PURCHASE, 0},
    {"multiplier over x10",
     true, 100, 1, {NULL}, 12345, 100001, {{0}}, EARNING_INVALID_PURCHASE, 0},
    /* bounds of the rule */
    {"unit zero", true, 0, 1, {NULL}, 12345, 0, {{0}}, EARNING_INVALID_RULE, 0},
    {"unit negative", false, -100, 1, {NULL}, 12345, 0, {{0}}, EARNING_INVALID_RULE, 0},
    {"unit over its bound",
     true, EARNING_UNIT_AMOUNT_MAX + 1, 1, {NULL}, 12345, 0, {{0}}, EARNING_INVALID_RULE, 0},
    {"unit at its bound",
     true, EARNING_UNIT_AMOUNT_MAX, 1, {NULL}, 3 * EARNING_UNIT_AMOUNT_MAX - 1, 0, {{0}},
     EARNING_OK, 2},
    {"points per unit negative", true, 100, -1, {NULL}, 12345, 0, {{0}}, EARNING_INVALID_RULE, 0},
    {"points per unit over its bound",
     true, 100, EARNING_POINTS_PER_UNIT_MAX + 1, {NULL}, 12345, 0, {{0}}, EARNING_INVALID_RULE, 0},
    /* the result's bound, and the overflow guard */
    {"exactly the most points",
     true, 1, 1, {NULL}, EARNING_POINTS_MAX, 0, {{0}}, EARNING_OK, EARNING_POINTS_MAX},
    {"one point too many",
     true, 1, 1, {NULL}, EARNING_POINTS_MAX + 1, 0, {{0}}, EARNING_TOO_MANY_POINTS, 0},
    /* 10^13 x 10^6 x 10^5 = 10^24: wraps in int64 */
    {"largest inputs",
     true, 1, EARNING_POINTS_PER_UNIT_MAX, {NULL}, MONEY_AMOUNT_MAX, EARNING_MULTIPLIER_BP_MAX,
     {{0}}, EARNING_TOO_MANY_POINTS, 0},
    /* 9 223 372 036 855 units x 10^6 points is just past INT64_MAX: a
     * signed product would wrap negative */
    {"product just past int64",
     true, 1, EARNING_POINTS_PER_UNIT_MAX, {NULL}, INT64_C(9223372036855), 1, {{0}},
     EARNING_TOO_MANY_POINTS, 0},
    /* exclusions on the largest amounts: charged x list prices ~ 2^108 */
    {"exclusion on the largest amounts",
     true, 1000000, 1, {"gift", NULL}, MONEY_AMOUNT_MAX, 0,
     {{"gift", 1000000, MONEY_AMOUNT_MAX}, {"course", 1000000, MONEY_AMOUNT_MAX}}, EARNING_OK,
     5000000},
    {"a quantity past its bound",
     true, 100, 1, {"gift", NULL}, 12345, 0, {{"course", 1000001, 1}}, EARNING_INVALID_PURCHASE,
     0},
};
/* clang-format on */

/* Runs one case; items and categories live on this frame. */
static void run_case(const struct earning_case *c, size_t index)
{
    PurchaseItem store[MAX_ITEMS];
    PurchaseItem *items[MAX_ITEMS];
    size_t n = 0;
    for (; n < MAX_ITEMS && c->items[n].category; n++) {
        tessera__ledger__v1__purchase_item__init(&store[n]);
        store[n].sku = (char *)"sku";
        store[n].category = (char *)c->items[n].category;
        store[n].quantity = c->items[n].quantity;
        store[n].unit_price = c->items[n].unit_price;
        items[n] = &store[n];
    }
    size_t excluded = 0;
    while (excluded < 3 && c->excluded[excluded])
        excluded++;
    struct earning_rule rule = {.enabled = c->enabled,
                                .unit_amount = c->unit_amount,
                                .points_per_unit = c->points_per_unit,
                                .excluded_categories = c->excluded,
                                .excluded_count = excluded};
    struct earning_purchase purchase = {
        .charged = c->charged, .multiplier_bp = c->multiplier_bp, .items = items, .item_count = n};
    int64_t points = -42; /* must stay untouched unless OK */
    enum earning_result r = rules_earning_purchase_points(&rule, &purchase, &points);
    if (r != c->result || (r == EARNING_OK && points != c->points))
        print_error("case %zu (%s): result %d points %lld, want %d and %lld\n", index, c->name,
                    (int)r, (long long)points, (int)c->result, (long long)c->points);
    assert_int_equal(r, c->result);
    assert_int_equal(points, r == EARNING_OK ? c->points : -42);
}

static void test_earning_table(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i], i);
}

static void test_too_many_categories(void **state)
{
    const char *names[EARNING_CATEGORIES_MAX + 1];
    for (size_t i = 0; i <= EARNING_CATEGORIES_MAX; i++)
        names[i] = "gift";
    struct earning_rule rule = {true, 100, 1, names, EARNING_CATEGORIES_MAX};
    struct earning_purchase purchase = {.charged = 12345};
    int64_t points = 0;
    assert_true(rules_earning_rule_valid(&rule));
    assert_int_equal(rules_earning_purchase_points(&rule, &purchase, &points), EARNING_OK);
    assert_int_equal(points, 123);
    rule.excluded_count = EARNING_CATEGORIES_MAX + 1;
    assert_false(rules_earning_rule_valid(&rule));
    assert_int_equal(rules_earning_purchase_points(&rule, &purchase, &points),
                     EARNING_INVALID_RULE);
}

static void test_result_texts(void **state)
{
    for (int r = EARNING_OK; r <= EARNING_TOO_MANY_POINTS; r++)
        assert_string_not_equal(rules_earning_result_text((enum earning_result)r), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_earning_table),
        cmocka_unit_test(test_too_many_categories),
        cmocka_unit_test(test_result_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
