/* The tier ladder as the API takes it (PUT /v1/config/tiers and its
 * dry-run): validation into one 422 naming every bad field, the
 * normalized configuration (defaults filled in, levels by rank) that GET
 * answers, the levels as tiering's pure rules read them, and the
 * TierLadderChanged event. No I/O. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/codec.h"
#include "http/validate.h"
#include "tier_ladder.h"

static const char *const ladder_fields[] = {"levels",
                                            "review_months",
                                            "grace_days",
                                            "warning_days",
                                            "refund_rule",
                                            "count_card_sales",
                                            "count_subscription_sales",
                                            NULL};
static const char *const level_fields[] = {
    "name",     "rank",         "thresholds",         "invitation_only",
    "benefits", "upgrade_skus", "referrals_required", "membership_years",
    NULL};
static const char *const threshold_fields[] = {"lifetime", "calendar_year", "rolling_12_months",
                                               NULL};
static const char *const benefit_fields[] = {"discount_bp",          "points_multiplier_bp",
                                             "birthday_gift_points", "priority_booking",
                                             "entitlements",         NULL};
static const char *const refund_rules[] = {"at_review", "immediately", NULL};

/* Copies the errors of one (named by its own fields) into v under prefix. */
static void merge(struct validation *v, struct validation *one, const char *prefix)
{
    size_t i;
    json_t *e;
    json_array_foreach(one->errors, i, e)
    {
        char field[128];
        snprintf(field, sizeof(field), "%s.%s", prefix,
                 json_string_value(json_object_get(e, "field")));
        validation_add(v, field, json_string_value(json_object_get(e, "message")));
    }
    validation_free(one);
}

static bool is_bool_or_absent(json_t *o, const char *f)
{
    json_t *x = json_object_get(o, f);
    return !x || json_is_null(x) || json_is_boolean(x);
}

/* A list of distinct strings of 1..max_len characters, at most max_items
 * (absent or null: empty). Returns a new array or NULL with an error. */
static json_t *string_list(struct validation *v, json_t *o, const char *f, size_t max_items,
                           size_t max_len)
{
    json_t *x = json_object_get(o, f);
    if (!x || json_is_null(x))
        return json_array();
    if (!json_is_array(x) || json_array_size(x) > max_items) {
        validation_add(v, f, "must be an array of at most the limit of strings");
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(x); i++) {
        const char *s = json_string_value(json_array_get(x, i));
        if (!s || !s[0] || strlen(s) > max_len) {
            validation_add(v, f, "each item is a non-empty string within the length limit");
            return NULL;
        }
        for (size_t j = 0; j < i; j++)
            if (json_equal(json_array_get(x, i), json_array_get(x, j))) {
                validation_add(v, f, "an item is named twice");
                return NULL;
            }
    }
    return json_incref(x);
}

/* An optional threshold: null/absent -> null, else an int in range. */
static json_t *threshold(struct validation *v, json_t *o, const char *f)
{
    json_t *x = json_object_get(o, f);
    if (!x || json_is_null(x))
        return json_null();
    int64_t n = 0;
    if (!validate_int(v, o, f, true, 0, TIER_THRESHOLD_MAX, &n))
        return NULL;
    return json_integer(n);
}

static json_t *level_thresholds(struct validation *v, json_t *lv)
{
    json_t *th = json_object_get(lv, "thresholds");
    if (th && !json_is_null(th) && !json_is_object(th)) {
        validation_add(v, "thresholds", "must be an object");
        return NULL;
    }
    json_t *empty = json_object();
    json_t *src = json_is_object(th) ? th : empty;
    struct validation one;
    validation_init(&one);
    validate_no_unknown_fields(&one, src, threshold_fields);
    json_t *l = threshold(&one, src, "lifetime"), *y = threshold(&one, src, "calendar_year"),
           *r = threshold(&one, src, "rolling_12_months");
    json_decref(empty);
    bool ok = validation_ok(&one);
    merge(v, &one, "thresholds");
    if (!ok || !l || !y || !r) {
        json_decref(l), json_decref(y), json_decref(r);
        return NULL;
    }
    return json_pack("{s:o, s:o, s:o}", "lifetime", l, "calendar_year", y, "rolling_12_months", r);
}

static json_t *level_benefits(struct validation *v, json_t *lv)
{
    json_t *b = json_object_get(lv, "benefits");
    if (!json_is_object(b)) {
        validation_add(v, "benefits", "is required: an object with discount_bp at least");
        return NULL;
    }
    struct validation one;
    validation_init(&one);
    int64_t d = 10000, mu = 10000, gift = 0;
    validate_no_unknown_fields(&one, b, benefit_fields);
    validate_int(&one, b, "discount_bp", true, 1, 10000, &d);
    validate_int(&one, b, "points_multiplier_bp", false, 0, TIER_MULTIPLIER_MAX, &mu);
    validate_int(&one, b, "birthday_gift_points", false, 0, TIER_GIFT_POINTS_MAX, &gift);
    if (!is_bool_or_absent(b, "priority_booking"))
        validation_add(&one, "priority_booking", "must be true or false");
    json_t *ents = string_list(&one, b, "entitlements", TIER_ENTITLEMENTS_MAX, TIER_RESOURCE_MAX);
    bool ok = validation_ok(&one);
    merge(v, &one, "benefits");
    if (!ok || !ents) {
        json_decref(ents);
        return NULL;
    }
    return json_pack("{s:I, s:I, s:I, s:b, s:o}", "discount_bp", (json_int_t)d,
                     "points_multiplier_bp", (json_int_t)mu, "birthday_gift_points",
                     (json_int_t)gift, "priority_booking",
                     json_is_true(json_object_get(b, "priority_booking")), "entitlements", ents);
}

/* One level, checked into v with its own field names; the normalized
 * level (new reference) or NULL. */
static json_t *level_normalize(struct validation *v, json_t *lv)
{
    if (!json_is_object(lv)) {
        validation_add(v, "level", "must be an object");
        return NULL;
    }
    validate_no_unknown_fields(v, lv, level_fields);
    const char *name = NULL;
    int64_t rank = 0, refs = 0, years = 0;
    validate_string(v, lv, "name", true, 1, TIER_NAME_MAX, &name);
    validate_int(v, lv, "rank", true, 0, TIER_RANK_MAX, &rank);
    validate_int(v, lv, "referrals_required", false, 0, TIER_REFERRALS_MAX, &refs);
    validate_int(v, lv, "membership_years", false, 0, TIER_YEARS_MAX, &years);
    if (!is_bool_or_absent(lv, "invitation_only"))
        validation_add(v, "invitation_only", "must be true or false");
    json_t *th = level_thresholds(v, lv), *be = level_benefits(v, lv);
    json_t *skus = string_list(v, lv, "upgrade_skus", TIER_SKUS_MAX, TIER_SKU_MAX);
    if (!validation_ok(v) || !th || !be || !skus) {
        json_decref(th), json_decref(be), json_decref(skus);
        return NULL;
    }
    bool invite = json_is_true(json_object_get(lv, "invitation_only"));
    bool reachable = !json_is_null(json_object_get(th, "lifetime")) ||
                     !json_is_null(json_object_get(th, "calendar_year")) ||
                     !json_is_null(json_object_get(th, "rolling_12_months")) ||
                     json_array_size(skus) > 0 || refs > 0 || years > 0;
    if (!invite && !reachable)
        validation_add(v, "thresholds",
                       "a level that is not invitation-only needs a threshold or another way up "
                       "(upgrade_skus, referrals_required, membership_years)");
    return json_pack("{s:s, s:I, s:o, s:b, s:o, s:o, s:I, s:I}", "name", name, "rank",
                     (json_int_t)rank, "thresholds", th, "invitation_only", invite, "benefits", be,
                     "upgrade_skus", skus, "referrals_required", (json_int_t)refs,
                     "membership_years", (json_int_t)years);
}

static int by_rank(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "rank"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "rank"));
    return (x > y) - (x < y);
}

/* Across levels: distinct ranks and names, and per window a threshold
 * that grows with rank (a higher level cheaper to reach than a lower one
 * would make the lower one unreachable). levels are sorted by rank;
 * index[] maps each back to its place in the request for the field name. */
static void check_ladder(struct validation *v, json_t **levels, const size_t *index, size_t n)
{
    static const char *const windows[] = {"lifetime", "calendar_year", "rolling_12_months"};
    char field[96];
    for (size_t i = 1; i < n; i++) {
        json_t *lo = levels[i - 1], *hi = levels[i];
        if (json_equal(json_object_get(lo, "rank"), json_object_get(hi, "rank"))) {
            snprintf(field, sizeof(field), "levels[%zu].rank", index[i]);
            validation_add(v, field, "two levels have the same rank");
        }
        for (size_t w = 0; w < 3; w++) {
            json_t *a = json_object_get(json_object_get(lo, "thresholds"), windows[w]);
            json_t *b = json_object_get(json_object_get(hi, "thresholds"), windows[w]);
            if (json_is_integer(a) && json_is_integer(b) &&
                json_integer_value(b) <= json_integer_value(a)) {
                snprintf(field, sizeof(field), "levels[%zu].thresholds.%s", index[i], windows[w]);
                validation_add(v, field, "must be above the threshold of the level ranked below");
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (json_equal(json_object_get(levels[i], "name"),
                           json_object_get(levels[j], "name"))) {
                snprintf(field, sizeof(field), "levels[%zu].name", index[i]);
                validation_add(v, field, "two levels have the same name");
            }
}

/* The levels array: each level normalized, then the ladder checked. */
static json_t *levels_normalize(struct validation *v, json_t *levels)
{
    if (!json_is_array(levels) || json_array_size(levels) < 1 ||
        json_array_size(levels) > TIER_LEVELS_MAX) {
        validation_add(v, "levels", "must be an array of 1 to 32 levels");
        return NULL;
    }
    size_t n = json_array_size(levels);
    json_t *out[TIER_LEVELS_MAX];
    size_t index[TIER_LEVELS_MAX], good = 0;
    for (size_t i = 0; i < n; i++) {
        struct validation one;
        validation_init(&one);
        json_t *l = level_normalize(&one, json_array_get(levels, i));
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "levels[%zu]", i);
        merge(v, &one, prefix);
        if (l) {
            index[good] = i;
            out[good++] = l;
        }
    }
    json_t *result = NULL;
    if (good == n) {
        /* sort levels and their indexes together (n <= 32: insertion) */
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && by_rank(&out[j - 1], &out[j]) > 0; j--) {
                json_t *t = out[j];
                out[j] = out[j - 1], out[j - 1] = t;
                size_t k = index[j];
                index[j] = index[j - 1], index[j - 1] = k;
            }
        check_ladder(v, out, index, n);
        result = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append(result, out[i]);
    }
    for (size_t i = 0; i < good; i++)
        json_decref(out[i]);
    return result;
}

json_t *tier_ladder_normalize(json_t *body, struct validation *v)
{
    if (!json_is_object(body)) {
        validation_add(v, "body", "must be a JSON object");
        return NULL;
    }
    validate_no_unknown_fields(v, body, ladder_fields);
    int64_t months = 12, grace = 0, warn = 30;
    const char *rule = "at_review";
    validate_int(v, body, "review_months", false, 1, TIER_REVIEW_MONTHS_MAX, &months);
    validate_int(v, body, "grace_days", false, 0, TIER_DAYS_MAX, &grace);
    validate_int(v, body, "warning_days", false, 0, TIER_DAYS_MAX, &warn);
    validate_enum(v, body, "refund_rule", false, refund_rules, &rule);
    if (!is_bool_or_absent(body, "count_card_sales"))
        validation_add(v, "count_card_sales", "must be true or false");
    if (!is_bool_or_absent(body, "count_subscription_sales"))
        validation_add(v, "count_subscription_sales", "must be true or false");
    if (warn >= months * 28)
        validation_add(v, "warning_days", "must be shorter than the review period");
    json_t *levels = levels_normalize(v, json_object_get(body, "levels"));
    if (!levels || !validation_ok(v)) {
        json_decref(levels);
        return NULL;
    }
    return json_pack("{s:o, s:I, s:I, s:I, s:s, s:b, s:b}", "levels", levels, "review_months",
                     (json_int_t)months, "grace_days", (json_int_t)grace, "warning_days",
                     (json_int_t)warn, "refund_rule", rule, "count_card_sales",
                     json_is_true(json_object_get(body, "count_card_sales")),
                     "count_subscription_sales",
                     json_is_true(json_object_get(body, "count_subscription_sales")));
}

static int64_t threshold_of(json_t *level, const char *window)
{
    json_t *x = json_object_get(json_object_get(level, "thresholds"), window);
    return json_is_integer(x) ? (int64_t)json_integer_value(x) : -1;
}

size_t tier_ladder_levels(json_t *config, struct tier_level *out)
{
    json_t *levels = json_object_get(config, "levels");
    size_t n = json_array_size(levels);
    assert(n <= TIER_LEVELS_MAX);
    for (size_t i = 0; i < n; i++) {
        json_t *l = json_array_get(levels, i), *b = json_object_get(l, "benefits");
        out[i] = (struct tier_level){
            .rank = (int32_t)json_integer_value(json_object_get(l, "rank")),
            .min_cumulative_spend = threshold_of(l, "lifetime"),
            .min_annual_spend = threshold_of(l, "calendar_year"),
            .min_rolling_spend = threshold_of(l, "rolling_12_months"),
            .invitation_only = json_is_true(json_object_get(l, "invitation_only")),
            .discount_bp = json_integer_value(json_object_get(b, "discount_bp")),
            .points_multiplier_bp = json_integer_value(json_object_get(b, "points_multiplier_bp"))};
        snprintf(out[i].name, sizeof(out[i].name), "%s",
                 json_string_value(json_object_get(l, "name")));
    }
    return n;
}

/* ------------------------------------------------------------ the event */
typedef Tessera__Tiering__V1__TierLadderChanged TierLadderChanged;
typedef Tessera__Tiering__V1__TierLevelConfig TierLevelConfig;

static void level_message(TierLevelConfig *m, json_t *l, char **ents, char **skus)
{
    json_t *th = json_object_get(l, "thresholds"), *b = json_object_get(l, "benefits");
    tessera__tiering__v1__tier_level_config__init(m);
    m->name = (char *)json_string_value(json_object_get(l, "name"));
    m->rank = (int32_t)json_integer_value(json_object_get(l, "rank"));
    json_t *w[3] = {json_object_get(th, "lifetime"), json_object_get(th, "calendar_year"),
                    json_object_get(th, "rolling_12_months")};
    m->min_lifetime_spend = json_is_integer(w[0]) ? json_integer_value(w[0]) : -1;
    m->min_calendar_year_spend = json_is_integer(w[1]) ? json_integer_value(w[1]) : -1;
    m->min_rolling_12_months_spend = json_is_integer(w[2]) ? json_integer_value(w[2]) : -1;
    m->invitation_only = json_is_true(json_object_get(l, "invitation_only"));
    m->discount_bp = json_integer_value(json_object_get(b, "discount_bp"));
    m->points_multiplier_bp = json_integer_value(json_object_get(b, "points_multiplier_bp"));
    m->birthday_gift_points = json_integer_value(json_object_get(b, "birthday_gift_points"));
    m->priority_booking = json_is_true(json_object_get(b, "priority_booking"));
    json_t *e = json_object_get(b, "entitlements"), *s = json_object_get(l, "upgrade_skus");
    m->n_entitlements = json_array_size(e);
    for (size_t i = 0; i < m->n_entitlements; i++)
        ents[i] = (char *)json_string_value(json_array_get(e, i));
    m->entitlements = ents;
    m->n_upgrade_skus = json_array_size(s);
    for (size_t i = 0; i < m->n_upgrade_skus; i++)
        skus[i] = (char *)json_string_value(json_array_get(s, i));
    m->upgrade_skus = skus;
    m->referrals_required = (int32_t)json_integer_value(json_object_get(l, "referrals_required"));
    m->membership_years = (int32_t)json_integer_value(json_object_get(l, "membership_years"));
}

uint8_t *tier_ladder_encode(struct event_meta *meta, const char *change_id, json_t *cfg,
                            int32_t utc_offset_minutes, int64_t *occurred_at_us, size_t *len)
{
    Envelope env;
    Actor actor;
    TierLadderChanged c;
    /* one loop thread encodes at a time (ingest's) */
    static TierLevelConfig levels[TIER_LEVELS_MAX];
    static TierLevelConfig *level_ptrs[TIER_LEVELS_MAX];
    static char *ents[TIER_LEVELS_MAX][TIER_ENTITLEMENTS_MAX],
        *skus[TIER_LEVELS_MAX][TIER_SKUS_MAX];
    envelope_init(&env, &actor, meta);
    *occurred_at_us = env.occurred_at_us;
    tessera__tiering__v1__tier_ladder_changed__init(&c);
    json_t *ls = json_object_get(cfg, "levels");
    c.change_id = (char *)change_id;
    c.n_levels = json_array_size(ls);
    assert(c.n_levels <= TIER_LEVELS_MAX); /* normalized */
    for (size_t i = 0; i < c.n_levels; i++) {
        level_message(&levels[i], json_array_get(ls, i), ents[i], skus[i]);
        level_ptrs[i] = &levels[i];
    }
    c.levels = level_ptrs;
    c.review_months = (int32_t)json_integer_value(json_object_get(cfg, "review_months"));
    c.grace_days = (int32_t)json_integer_value(json_object_get(cfg, "grace_days"));
    c.warning_days = (int32_t)json_integer_value(json_object_get(cfg, "warning_days"));
    c.refund_rule = (char *)json_string_value(json_object_get(cfg, "refund_rule"));
    c.count_card_sales = json_is_true(json_object_get(cfg, "count_card_sales"));
    c.count_subscription_sales = json_is_true(json_object_get(cfg, "count_subscription_sales"));
    c.utc_offset_minutes = utc_offset_minutes;
    c.config_json = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TIER_LADDER_CHANGED;
    env.tier_ladder_changed = &c;
    uint8_t *out = c.config_json ? envelope_encode(&env, len) : NULL;
    free(c.config_json);
    return out;
}
