/* Environment configuration through a declarative table. Called once at
 * start from main(), before threads; nothing here is on a hot path. */
#undef NDEBUG /* asserts stay on in production builds */
#include "config/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log/log.h"

/* Entries logged per line by config_log_effective (log_fields takes a
 * fixed argument list, so longer tables are logged in parts). */
#define CONFIG_LOG_ENTRIES_PER_LINE 16
/* Longest value quoted back in an error message. */
#define CONFIG_ERR_VALUE_MAX_BYTES 64
#define CONFIG_NUM_TEXT_BYTES      32

static const char *const config_true_words[] = {"1", "true", "yes", "on"};
static const char *const config_false_words[] = {"0", "false", "no", "off"};

static const char *config_type_name(enum config_type type)
{
    switch (type) {
    case CONFIG_STRING:
        return "string";
    case CONFIG_INT:
        return "int";
    case CONFIG_BOOL:
        return "bool";
    }
    assert(!"unknown config type");
    return "?";
}

static bool config_parse_bool(const char *text, bool *out)
{
    for (size_t i = 0; i < sizeof(config_true_words) / sizeof(config_true_words[0]); i++) {
        if (strcasecmp(text, config_true_words[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(text, config_false_words[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Strict: optional sign and decimal digits only, the whole string, in
 * range. strtoll alone would accept " 12", "12abc" and silently clamp. */
static bool config_parse_int(const char *text, long long *out)
{
    char *end = NULL;
    if (text[0] == '\0' || isspace((unsigned char)text[0]))
        return false;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return false;
    *out = value;
    return true;
}

/* Quotes the offending value in err, except for secrets. */
static const char *config_shown_value(const struct config_entry *e, const char *text)
{
    return e->secret ? "(secret value not shown)" : text;
}

static int config_load_entry(const struct config_entry *e, char *err, size_t err_len)
{
    const char *text = getenv(e->name);
    const char *source = "";
    if (text == NULL) {
        text = e->default_value;
        source = " (default)";
    }
    if (text == NULL || (e->default_value == NULL && text[0] == '\0')) {
        snprintf(err, err_len, "%s is required but not set", e->name);
        return -1;
    }
    switch (e->type) {
    case CONFIG_STRING:
        *(const char **)e->dest = text;
        return 0;
    case CONFIG_BOOL:
        if (!config_parse_bool(text, (bool *)e->dest)) {
            snprintf(err, err_len, "%s%s: expected 1/0/true/false/yes/no/on/off, got \"%.*s\"",
                     e->name, source, CONFIG_ERR_VALUE_MAX_BYTES, config_shown_value(e, text));
            return -1;
        }
        return 0;
    case CONFIG_INT: {
        long long value;
        if (!config_parse_int(text, &value)) {
            snprintf(err, err_len, "%s%s: expected a whole decimal number, got \"%.*s\"", e->name,
                     source, CONFIG_ERR_VALUE_MAX_BYTES, config_shown_value(e, text));
            return -1;
        }
        if (value < e->min || value > e->max) {
            snprintf(err, err_len, "%s%s: %s is out of range [%lld, %lld]", e->name, source,
                     e->secret ? "value" : text, e->min, e->max);
            return -1;
        }
        *(long long *)e->dest = value;
        return 0;
    }
    }
    assert(!"unknown config type");
    return -1;
}

int config_load(const struct config_entry *entries, size_t count, char *err, size_t err_len)
{
    assert(entries != NULL || count == 0);
    assert(err != NULL && err_len > 0);
    err[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        const struct config_entry *e = &entries[i];
        assert(e->name != NULL && e->dest != NULL && e->help != NULL);
        assert(e->type != CONFIG_INT || e->min <= e->max);
        if (config_load_entry(e, err, err_len) != 0)
            return -1;
    }
    return 0;
}

/* Default column text: "required", "***" for secret defaults, or the
 * default itself ("" shown as ""). */
static void config_default_text(const struct config_entry *e, char *buf, size_t len)
{
    if (e->default_value == NULL)
        snprintf(buf, len, "required");
    else if (e->secret && e->default_value[0] != '\0')
        snprintf(buf, len, "default ***");
    else
        snprintf(buf, len, "default \"%s\"", e->default_value);
}

static void config_bounds_text(const struct config_entry *e, char *buf, size_t len)
{
    if (e->type == CONFIG_INT)
        snprintf(buf, len, "[%lld..%lld]", e->min, e->max);
    else
        buf[0] = '\0';
}

#define CONFIG_COLUMN_BYTES 256

void config_print_help(FILE *out, const char *program, const char *summary,
                       const struct config_entry *entries, size_t count)
{
    char def[CONFIG_COLUMN_BYTES], bounds[CONFIG_COLUMN_BYTES];
    int name_w = 0, def_w = 0, bounds_w = 0;

    assert(out != NULL && program != NULL);
    for (size_t i = 0; i < count; i++) {
        config_default_text(&entries[i], def, sizeof(def));
        config_bounds_text(&entries[i], bounds, sizeof(bounds));
        int n = (int)strlen(entries[i].name), d = (int)strlen(def), b = (int)strlen(bounds);
        name_w = n > name_w ? n : name_w;
        def_w = d > def_w ? d : def_w;
        bounds_w = b > bounds_w ? b : bounds_w;
    }
    fprintf(out, "usage: %s [--help]\n\n", program);
    if (summary != NULL)
        fprintf(out, "%s\n\n", summary);
    fprintf(out, "Configuration (environment variables):\n");
    for (size_t i = 0; i < count; i++) {
        const struct config_entry *e = &entries[i];
        config_default_text(e, def, sizeof(def));
        config_bounds_text(e, bounds, sizeof(bounds));
        fprintf(out, "  %-*s  %-6s  %-*s  %-*s  %s\n", name_w, e->name, config_type_name(e->type),
                def_w, def, bounds_w, bounds, e->help);
    }
}

/* Formats the effective value of e into buf (strings are pointed to). */
static const char *config_value_text(const struct config_entry *e, char *buf, size_t len)
{
    if (e->secret)
        return "***";
    switch (e->type) {
    case CONFIG_STRING:
        return *(const char *const *)e->dest;
    case CONFIG_BOOL:
        return *(const bool *)e->dest ? "true" : "false";
    case CONFIG_INT:
        snprintf(buf, len, "%lld", *(const long long *)e->dest);
        return buf;
    }
    assert(!"unknown config type");
    return "?";
}

void config_log_effective(const struct config_entry *entries, size_t count)
{
    /* A fixed-size argument list padded with NULLs: the first NULL key
     * ends log_fields' list, so a partly filled chunk is fine. */
    enum { SLOTS = 2 * CONFIG_LOG_ENTRIES_PER_LINE };
    _Static_assert(SLOTS == 32, "the log_fields call below passes 32 slots");
    char nums[CONFIG_LOG_ENTRIES_PER_LINE][CONFIG_NUM_TEXT_BYTES];
    const char *kv[SLOTS + 1];

    for (size_t start = 0; start < count; start += CONFIG_LOG_ENTRIES_PER_LINE) {
        size_t n = 0;
        memset(kv, 0, sizeof(kv));
        for (size_t i = start; i < count && n < CONFIG_LOG_ENTRIES_PER_LINE; i++, n++) {
            kv[2 * n] = entries[i].name;
            kv[2 * n + 1] = config_value_text(&entries[i], nums[n], sizeof(nums[n]));
        }
        log_fields(LOG_INFO, "effective configuration", kv[0], kv[1], kv[2], kv[3], kv[4], kv[5],
                   kv[6], kv[7], kv[8], kv[9], kv[10], kv[11], kv[12], kv[13], kv[14], kv[15],
                   kv[16], kv[17], kv[18], kv[19], kv[20], kv[21], kv[22], kv[23], kv[24], kv[25],
                   kv[26], kv[27], kv[28], kv[29], kv[30], kv[31], (const char *)NULL);
    }
}

bool config_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}
