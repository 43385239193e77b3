/* Promotional multipliers as activity_rules.promotions keeps them (JSON),
 * read into the pure rule (rules_promotion_multiplier). Shared by
 * activities (activities.c) and purchase earning (earning.c). */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <jansson.h>

#include "engage.h"

/* The strings of a JSON array, borrowed from it, into out (at most max). */
static size_t strings_of(json_t *list, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(list) && n < max; i++)
        if (json_is_string(json_array_get(list, i)))
            out[n++] = json_string_value(json_array_get(list, i));
    return n;
}

int64_t engage_promotion_multiplier(const char *promotions_json, const struct promotion_target *t)
{
    json_t *list = promotions_json ? json_loads(promotions_json, 0, NULL) : NULL;
    struct promotion_rule rules[PROMOTIONS_MAX];
    const char *cats[PROMOTIONS_MAX][PROMOTION_LIST_MAX];
    const char *branches[PROMOTIONS_MAX][PROMOTION_LIST_MAX];
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(list) && n < PROMOTIONS_MAX; i++, n++) {
        json_t *p = json_array_get(list, i);
        int64_t bp = json_integer_value(json_object_get(p, "multiplier_bp"));
        rules[n] = (struct promotion_rule){
            /* stored only within bounds (activity_rules_store.c) */
            .multiplier_bp = bp < PROMOTION_MULTIPLIER_BP_MIN   ? PROMOTION_MULTIPLIER_BP_MIN
                             : bp > PROMOTION_MULTIPLIER_BP_MAX ? PROMOTION_MULTIPLIER_BP_MAX
                                                                : bp,
            .day_of_month = (int)json_integer_value(json_object_get(p, "day_of_month")),
            .from_us = json_integer_value(json_object_get(p, "from_us")),
            .to_us = json_integer_value(json_object_get(p, "to_us")),
            .categories = cats[n],
            .category_count =
                strings_of(json_object_get(p, "categories"), cats[n], PROMOTION_LIST_MAX),
            .branches = branches[n],
            .branch_count =
                strings_of(json_object_get(p, "branches"), branches[n], PROMOTION_LIST_MAX),
            .activities = json_is_true(json_object_get(p, "activities")),
            .purchases = json_is_true(json_object_get(p, "purchases"))};
    }
    int64_t bp = rules_promotion_multiplier(rules, n, t);
    json_decref(list);
    return bp;
}
