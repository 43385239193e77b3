/* The activity rules as JSON (what GET answers and PUT takes): checking a
 * body into a full rule set with the seeds' defaults filled in, and that
 * rule set as the ActivityRulesChanged event the campaign applies. No I/O
 * (activity_rules.c does the requests).
 *
 * The full shape (every section optional in a PUT; what is left out takes
 * the default, so a PUT always replaces the whole setting):
 *   activities: {<type>: {points, per_day, per_week, per_month}}
 *   streak: {days, points}, monthly_cap,
 *   promotions: [{name, multiplier_bp, day_of_month, from, to,
 *                 categories, branches, applies_to: [activities|purchases]}],
 *   birthday: {points}, welcome: {days, tasks: {<type>: points}} */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activity_rules.h"
#include "datetime/datetime.h"
#include "events/codec.h"
#include "http/validate.h"

static const char *const top_fields[] = {"activities", "streak",  "monthly_cap", "promotions",
                                         "birthday",   "welcome", NULL};
static const char *const activity_fields[] = {"points", "per_day", "per_week", "per_month", NULL};
static const char *const streak_fields[] = {"days", "points", NULL};
static const char *const promotion_fields[] = {
    "name",       "multiplier_bp", "day_of_month", "from", "to",
    "categories", "branches",      "applies_to",   NULL};
static const char *const birthday_fields[] = {"points", NULL};
static const char *const welcome_fields[] = {"days", "tasks", NULL};

int activity_type_index(const char *type)
{
    for (size_t i = 0; type && i < ACTIVITY_TYPES_COUNT; i++)
        if (strcmp(activity_defaults[i].type, type) == 0)
            return (int)i;
    return -1;
}

/* Records the problems of one object under "<prefix>.<field>". */
static void add_prefixed(struct validation *v, const char *prefix, struct validation *one)
{
    size_t i;
    json_t *e;
    json_array_foreach(one->errors, i, e)
    {
        char field[160];
        snprintf(field, sizeof(field), "%s.%s", prefix,
                 json_string_value(json_object_get(e, "field")));
        validation_add(v, field, json_string_value(json_object_get(e, "message")));
    }
    validation_free(one);
}

/* An optional integer of obj in [min, max], else def. */
static int64_t int_or(struct validation *v, json_t *obj, const char *field, int64_t min,
                      int64_t max, int64_t def)
{
    int64_t n = def;
    if (!validate_int(v, obj, field, false, min, max, &n))
        return def;
    return json_object_get(obj, field) && !json_is_null(json_object_get(obj, field)) ? n : def;
}

static json_t *activities_json(struct validation *v, json_t *given)
{
    json_t *out = json_object();
    for (size_t i = 0; i < ACTIVITY_TYPES_COUNT; i++)
        json_object_set_new(out, activity_defaults[i].type,
                            json_pack("{s:I, s:I, s:I, s:I}", "points",
                                      (json_int_t)activity_defaults[i].points, "per_day", 0,
                                      "per_week", 0, "per_month", 0));
    if (!given || json_is_null(given))
        return out;
    if (!json_is_object(given)) {
        validation_add(v, "activities", "must be an object keyed by activity type");
        return out;
    }
    const char *type;
    json_t *rule;
    json_object_foreach(given, type, rule)
    {
        char prefix[96];
        snprintf(prefix, sizeof(prefix), "activities.%.64s", type);
        if (activity_type_index(type) < 0) {
            validation_add(v, prefix, "unknown activity type; allowed: " ACTIVITY_TYPES_TEXT);
            continue;
        }
        if (!json_is_object(rule)) {
            validation_add(v, prefix, "must be an object");
            continue;
        }
        struct validation one;
        validation_init(&one);
        validate_no_unknown_fields(&one, rule, activity_fields);
        json_t *r = json_pack(
            "{s:I, s:I, s:I, s:I}", "points",
            (json_int_t)int_or(&one, rule, "points", 0, ACTIVITY_POINTS_MAX,
                               activity_defaults[activity_type_index(type)].points),
            "per_day", (json_int_t)int_or(&one, rule, "per_day", 0, ACTIVITY_LIMIT_MAX, 0),
            "per_week", (json_int_t)int_or(&one, rule, "per_week", 0, ACTIVITY_LIMIT_MAX, 0),
            "per_month", (json_int_t)int_or(&one, rule, "per_month", 0, ACTIVITY_LIMIT_MAX, 0));
        json_object_set_new(out, type, r);
        add_prefixed(v, prefix, &one);
    }
    return out;
}

/* A section that is an object of plain integers (streak, birthday). */
static json_t *section_json(struct validation *v, json_t *body, const char *name,
                            const char *const *fields, const int64_t *min, const int64_t *max,
                            const int64_t *def)
{
    json_t *given = json_object_get(body, name), *out = json_object();
    struct validation one;
    validation_init(&one);
    if (given && !json_is_null(given) && !json_is_object(given))
        validation_add(v, name, "must be an object");
    else if (given && json_is_object(given))
        validate_no_unknown_fields(&one, given, fields);
    for (size_t i = 0; fields[i]; i++) {
        int64_t n =
            json_is_object(given) ? int_or(&one, given, fields[i], min[i], max[i], def[i]) : def[i];
        json_object_set_new(out, fields[i], json_integer(n));
    }
    add_prefixed(v, name, &one);
    return out;
}

/* A list of 0..PROMOTION_LIST_MAX distinct strings of 1..64 bytes. */
static json_t *string_list(struct validation *v, json_t *given, const char *field)
{
    if (!given || json_is_null(given))
        return json_array();
    bool ok = json_is_array(given) && json_array_size(given) <= PROMOTION_LIST_MAX;
    for (size_t i = 0; ok && i < json_array_size(given); i++) {
        const char *s = json_string_value(json_array_get(given, i));
        ok = s && s[0] && strlen(s) <= 64;
    }
    if (!ok) {
        validation_add(v, field, "must be an array of at most 32 strings of 1 to 64 bytes");
        return json_array();
    }
    return json_incref(given);
}

/* An optional RFC 3339 time as microseconds (0: absent). */
static int64_t time_or_zero(struct validation *v, json_t *obj, const char *field)
{
    const char *text = NULL;
    int64_t us = 0;
    if (!validate_string(v, obj, field, false, 1, 64, &text) || !text)
        return 0;
    if (!datetime_parse_rfc3339_us(text, &us) || us <= 0) {
        validation_add(v, field, "must be an RFC 3339 time");
        return 0;
    }
    return us;
}

static json_t *promotion_json(struct validation *v, json_t *p)
{
    validate_no_unknown_fields(v, p, promotion_fields);
    const char *name = "";
    validate_string(v, p, "name", true, 1, 64, &name);
    int64_t bp = 0;
    validate_int(v, p, "multiplier_bp", true, PROMOTION_MULTIPLIER_BP_MIN,
                 PROMOTION_MULTIPLIER_BP_MAX, &bp);
    int64_t day = int_or(v, p, "day_of_month", 0, 31, 0);
    int64_t from_us = time_or_zero(v, p, "from"), to_us = time_or_zero(v, p, "to");
    if (from_us && to_us && to_us <= from_us)
        validation_add(v, "to", "must be after from");
    json_t *applies = json_object_get(p, "applies_to");
    bool acts = true, buys = true;
    if (applies && !json_is_null(applies)) {
        acts = buys = false;
        bool ok = json_is_array(applies) && json_array_size(applies) > 0;
        for (size_t i = 0; ok && i < json_array_size(applies); i++) {
            const char *s = json_string_value(json_array_get(applies, i));
            acts |= s && strcmp(s, "activities") == 0;
            buys |= s && strcmp(s, "purchases") == 0;
            ok = s && (strcmp(s, "activities") == 0 || strcmp(s, "purchases") == 0);
        }
        if (!ok)
            validation_add(v, "applies_to", "must list activities and/or purchases");
    }
    json_t *out = json_pack("{s:s, s:I, s:I, s:o, s:o}", "name", name ? name : "", "multiplier_bp",
                            (json_int_t)bp, "day_of_month", (json_int_t)day, "categories",
                            string_list(v, json_object_get(p, "categories"), "categories"),
                            "branches", string_list(v, json_object_get(p, "branches"), "branches"));
    char at[32];
    if (from_us)
        event_format_time(from_us, at), json_object_set_new(out, "from", json_string(at));
    if (to_us)
        event_format_time(to_us, at), json_object_set_new(out, "to", json_string(at));
    json_t *list = json_array();
    if (acts)
        json_array_append_new(list, json_string("activities"));
    if (buys)
        json_array_append_new(list, json_string("purchases"));
    json_object_set_new(out, "applies_to", list);
    return out;
}

static json_t *promotions_json(struct validation *v, json_t *given)
{
    json_t *out = json_array();
    if (!given || json_is_null(given))
        return out;
    if (!json_is_array(given) || json_array_size(given) > PROMOTIONS_MAX) {
        validation_add(v, "promotions",
                       "must be an array of at most " PROMOTIONS_MAX_TEXT " promotions");
        return out;
    }
    for (size_t i = 0; i < json_array_size(given); i++) {
        char prefix[48];
        snprintf(prefix, sizeof(prefix), "promotions[%zu]", i);
        json_t *p = json_array_get(given, i);
        if (!json_is_object(p)) {
            validation_add(v, prefix, "must be an object");
            continue;
        }
        struct validation one;
        validation_init(&one);
        json_array_append_new(out, promotion_json(&one, p));
        add_prefixed(v, prefix, &one);
    }
    return out;
}

static json_t *welcome_json(struct validation *v, json_t *given)
{
    json_t *tasks = json_object();
    int64_t days = WELCOME_DAYS_DEFAULT;
    if (given && !json_is_null(given) && !json_is_object(given))
        validation_add(v, "welcome", "must be an object");
    if (json_is_object(given)) {
        struct validation one;
        validation_init(&one);
        validate_no_unknown_fields(&one, given, welcome_fields);
        days = int_or(&one, given, "days", 1, WELCOME_DAYS_MAX, WELCOME_DAYS_DEFAULT);
        json_t *t = json_object_get(given, "tasks");
        const char *type;
        json_t *points;
        if (t && !json_is_null(t) && !json_is_object(t))
            validation_add(&one, "tasks", "must be an object of activity type to points");
        if (json_is_object(t))
            json_object_foreach(t, type, points)
            {
                json_int_t n = json_integer_value(points);
                if (activity_type_index(type) < 0)
                    validation_add(&one, "tasks",
                                   "unknown activity type; allowed: " ACTIVITY_TYPES_TEXT);
                else if (!json_is_integer(points) || n < 0 || n > ACTIVITY_POINTS_MAX)
                    validation_add(&one, "tasks", "points must be 0 to 1000000");
                else
                    json_object_set_new(tasks, type, json_integer(n));
            }
        add_prefixed(v, "welcome", &one);
    }
    return json_pack("{s:I, s:o}", "days", (json_int_t)days, "tasks", tasks);
}

json_t *activity_rules_from_body(json_t *body, struct validation *v)
{
    static const int64_t streak_min[] = {ACTIVITY_STREAK_DAYS_MIN, 0};
    static const int64_t streak_max[] = {ACTIVITY_STREAK_DAYS_MAX, ACTIVITY_POINTS_MAX};
    static const int64_t streak_def[] = {STREAK_DAYS_DEFAULT, STREAK_POINTS_DEFAULT};
    static const int64_t bday_min[] = {0}, bday_max[] = {ACTIVITY_POINTS_MAX}, bday_def[] = {0};
    if (body)
        validate_no_unknown_fields(v, body, top_fields);
    json_t *rules = json_object();
    json_object_set_new(rules, "activities",
                        activities_json(v, body ? json_object_get(body, "activities") : NULL));
    json_object_set_new(
        rules, "streak",
        section_json(v, body, "streak", streak_fields, streak_min, streak_max, streak_def));
    json_object_set_new(
        rules, "monthly_cap",
        json_integer(body ? int_or(v, body, "monthly_cap", 0, ACTIVITY_MONTHLY_CAP_MAX, 0) : 0));
    json_object_set_new(rules, "promotions",
                        promotions_json(v, body ? json_object_get(body, "promotions") : NULL));
    json_object_set_new(
        rules, "birthday",
        section_json(v, body, "birthday", birthday_fields, bday_min, bday_max, bday_def));
    json_object_set_new(rules, "welcome",
                        welcome_json(v, body ? json_object_get(body, "welcome") : NULL));
    return rules;
}

/* ------------------------------------------------------------ the event */
static int64_t int_at(json_t *obj, const char *a, const char *b)
{
    json_t *o = json_object_get(obj, a);
    return json_integer_value(b ? json_object_get(o, b) : o);
}

/* The strings of a JSON array into a new char* array (borrowed strings;
 * the caller frees the array). */
static char **strings_of(json_t *list, size_t *n)
{
    *n = json_array_size(list);
    char **out = calloc(*n + 1, sizeof(char *));
    assert(out);
    for (size_t i = 0; i < *n; i++)
        out[i] = (char *)json_string_value(json_array_get(list, i));
    return out;
}

static bool lists_word(json_t *list, const char *word)
{
    for (size_t i = 0; i < json_array_size(list); i++)
        if (strcmp(json_string_value(json_array_get(list, i)), word) == 0)
            return true;
    return false;
}

static void promotion_fill(Promotion *p, json_t *j)
{
    tessera__engage__v1__promotion__init(p);
    p->name = (char *)json_string_value(json_object_get(j, "name"));
    p->multiplier_bp = int_at(j, "multiplier_bp", NULL);
    p->day_of_month = (int32_t)int_at(j, "day_of_month", NULL);
    const char *from = json_string_value(json_object_get(j, "from"));
    const char *to = json_string_value(json_object_get(j, "to"));
    if (from && !datetime_parse_rfc3339_us(from, &p->from_us))
        p->from_us = 0; /* formatted by us: cannot happen */
    if (to && !datetime_parse_rfc3339_us(to, &p->to_us))
        p->to_us = 0;
    p->categories = strings_of(json_object_get(j, "categories"), &p->n_categories);
    p->branches = strings_of(json_object_get(j, "branches"), &p->n_branches);
    p->activities = lists_word(json_object_get(j, "applies_to"), "activities");
    p->purchases = lists_word(json_object_get(j, "applies_to"), "purchases");
}

uint8_t *activity_rules_encode(json_t *rules, struct event_meta *meta, const char *change_id,
                               int64_t version, const char *time_zone, size_t *len)
{
    Envelope env;
    Actor actor;
    ActivityRulesChanged c;
    StreakRule streak;
    BirthdayRule birthday;
    WelcomeRule welcome;
    ActivityRule acts[ACTIVITY_TYPES_COUNT], tasks[ACTIVITY_TYPES_COUNT];
    ActivityRule *act_ptrs[ACTIVITY_TYPES_COUNT], *task_ptrs[ACTIVITY_TYPES_COUNT];
    Promotion promos[PROMOTIONS_MAX], *promo_ptrs[PROMOTIONS_MAX];
    envelope_init(&env, &actor, meta);
    tessera__engage__v1__activity_rules_changed__init(&c);
    c.change_id = (char *)change_id;
    c.version = version;
    c.time_zone = (char *)time_zone;
    json_t *activities = json_object_get(rules, "activities");
    for (size_t i = 0; i < ACTIVITY_TYPES_COUNT; i++) {
        const char *type = activity_defaults[i].type;
        tessera__engage__v1__activity_rule__init(&acts[i]);
        acts[i].type = (char *)type;
        acts[i].points = int_at(activities, type, "points");
        acts[i].per_day = int_at(activities, type, "per_day");
        acts[i].per_week = int_at(activities, type, "per_week");
        acts[i].per_month = int_at(activities, type, "per_month");
        act_ptrs[i] = &acts[i];
    }
    c.activities = act_ptrs;
    c.n_activities = ACTIVITY_TYPES_COUNT;
    tessera__engage__v1__streak_rule__init(&streak);
    streak.days = int_at(rules, "streak", "days");
    streak.points = int_at(rules, "streak", "points");
    c.streak = &streak;
    c.monthly_cap = int_at(rules, "monthly_cap", NULL);
    json_t *plist = json_object_get(rules, "promotions");
    c.n_promotions = json_array_size(plist);
    assert(c.n_promotions <= PROMOTIONS_MAX); /* validated */
    for (size_t i = 0; i < c.n_promotions; i++) {
        promotion_fill(&promos[i], json_array_get(plist, i));
        promo_ptrs[i] = &promos[i];
    }
    c.promotions = promo_ptrs;
    tessera__engage__v1__birthday_rule__init(&birthday);
    birthday.points = int_at(rules, "birthday", "points");
    c.birthday = &birthday;
    tessera__engage__v1__welcome_rule__init(&welcome);
    welcome.days = int_at(rules, "welcome", "days");
    json_t *wt = json_object_get(json_object_get(rules, "welcome"), "tasks");
    const char *type;
    json_t *points;
    json_object_foreach(wt, type, points)
    {
        assert(welcome.n_tasks < ACTIVITY_TYPES_COUNT); /* one per known type */
        ActivityRule *t = &tasks[welcome.n_tasks];
        tessera__engage__v1__activity_rule__init(t);
        t->type = (char *)type;
        t->points = json_integer_value(points);
        task_ptrs[welcome.n_tasks++] = t;
    }
    welcome.tasks = task_ptrs;
    c.welcome = &welcome;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ACTIVITY_RULES_CHANGED;
    env.activity_rules_changed = &c;
    uint8_t *out = envelope_encode(&env, len);
    for (size_t i = 0; i < c.n_promotions; i++)
        free(promos[i].categories), free(promos[i].branches);
    return out;
}
