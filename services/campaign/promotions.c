/* Promotional multipliers as activity_rules.promotions keeps them (JSON),
 * read into the pure rule (rules_promotion_multiplier). Shared by
 * activities (activities.c) and purchase earning (earning.c).
 *
 * A tenant's promotions are up to PROMOTIONS_MAX rules of up to
 * PROMOTION_LIST_MAX categories and branches each (some 50 KiB of JSON):
 * parsing them for every activity cost more than deciding it. A rule
 * version (tenant, change_id) is never rewritten (activity_rules_store.c
 * inserts it once), so its parsed form is kept per tenant, keyed by its
 * change_id, and parsed again only when another version is in force; a
 * stored ActivityRulesChanged drops the tenant's entry (promotions_forget),
 * so no superseded version is kept beyond its use. Pipeline thread only. */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "engage.h"

/* Tenants whose promotions are kept at once; another tenant hashing to a
 * taken slot takes it over (it is parsed again on its next use). About
 * 33 KiB each at the most. */
#define PROMOTIONS_CACHE_SLOTS 64

struct promotions {
    json_t *doc; /* owns the strings the rules point at */
    size_t n;
    struct promotion_rule rules[PROMOTIONS_MAX];
    const char *cats[PROMOTIONS_MAX][PROMOTION_LIST_MAX];
    const char *branches[PROMOTIONS_MAX][PROMOTION_LIST_MAX];
};

struct cache_slot {
    char *tenant;
    char *change_id;
    struct promotions *parsed;
};

static struct cache_slot cache[PROMOTIONS_CACHE_SLOTS];

/* The strings of a JSON array, borrowed from it, into out (at most max). */
static size_t strings_of(json_t *list, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(list) && n < max; i++)
        if (json_is_string(json_array_get(list, i)))
            out[n++] = json_string_value(json_array_get(list, i));
    return n;
}

/* json: the promotions as stored (NULL or unreadable: none). */
static struct promotions *parse(const char *json)
{
    struct promotions *p = calloc(1, sizeof(*p));
    assert(p);
    p->doc = json ? json_loads(json, 0, NULL) : NULL;
    for (size_t i = 0; i < json_array_size(p->doc) && p->n < PROMOTIONS_MAX; i++, p->n++) {
        json_t *o = json_array_get(p->doc, i);
        size_t n = p->n;
        int64_t bp = json_integer_value(json_object_get(o, "multiplier_bp"));
        p->rules[n] = (struct promotion_rule){
            /* stored only within bounds (activity_rules_store.c) */
            .multiplier_bp = bp < PROMOTION_MULTIPLIER_BP_MIN   ? PROMOTION_MULTIPLIER_BP_MIN
                             : bp > PROMOTION_MULTIPLIER_BP_MAX ? PROMOTION_MULTIPLIER_BP_MAX
                                                                : bp,
            .day_of_month = (int)json_integer_value(json_object_get(o, "day_of_month")),
            .from_us = json_integer_value(json_object_get(o, "from_us")),
            .to_us = json_integer_value(json_object_get(o, "to_us")),
            .categories = p->cats[n],
            .category_count =
                strings_of(json_object_get(o, "categories"), p->cats[n], PROMOTION_LIST_MAX),
            .branches = p->branches[n],
            .branch_count =
                strings_of(json_object_get(o, "branches"), p->branches[n], PROMOTION_LIST_MAX),
            .activities = json_is_true(json_object_get(o, "activities")),
            .purchases = json_is_true(json_object_get(o, "purchases"))};
    }
    return p;
}

static void parsed_free(struct promotions *p)
{
    if (!p)
        return;
    json_decref(p->doc);
    free(p);
}

static struct cache_slot *slot_of(const char *tenant)
{
    size_t h = 5381; /* djb2 */
    for (const char *c = tenant; *c; c++)
        h = h * 33 + (unsigned char)*c;
    return &cache[h % PROMOTIONS_CACHE_SLOTS];
}

static void slot_clear(struct cache_slot *s)
{
    free(s->tenant), free(s->change_id), parsed_free(s->parsed);
    *s = (struct cache_slot){0};
}

const char *promotions_cached_version(const char *tenant)
{
    struct cache_slot *s = slot_of(tenant);
    return s->tenant && strcmp(s->tenant, tenant) == 0 ? s->change_id : NULL;
}

const struct promotions *promotions_of(const char *tenant, const char *change_id, const char *json)
{
    struct cache_slot *s = slot_of(tenant);
    const char *cached = promotions_cached_version(tenant);
    if (cached && strcmp(cached, change_id) == 0)
        return s->parsed;
    slot_clear(s);
    s->parsed = parse(json);
    s->tenant = strdup(tenant);
    s->change_id = strdup(change_id);
    assert(s->tenant && s->change_id);
    return s->parsed;
}

void promotions_forget(const char *tenant)
{
    if (promotions_cached_version(tenant))
        slot_clear(slot_of(tenant));
}

int64_t promotions_multiplier(const struct promotions *p, const struct promotion_target *t)
{
    return p ? rules_promotion_multiplier(p->rules, p->n, t)
             : rules_promotion_multiplier(NULL, 0, t);
}
