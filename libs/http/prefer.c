/* RFC 7240 "Prefer" header: the one parser of "wait=N" for every route.
 * Pure string work, no allocation; called from handlers on the loop. */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"

#define PREFER_WAIT_NAME "wait"
#define MS_PER_S         1000

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* End of the preference starting at p: the next comma outside a quoted
 * string, or the end of the header. */
static const char *preference_end(const char *p)
{
    bool quoted = false;
    for (; *p; p++) {
        if (quoted && *p == '\\' && p[1])
            p++;
        else if (*p == '"')
            quoted = !quoted;
        else if (*p == ',' && !quoted)
            break;
    }
    return p;
}

/* Seconds of a wait value (1*DIGIT, optionally quoted) spanning [p, end)
 * up to its first ';' (parameters are ignored), in ms clamped to max_ms:
 * digits are read with saturation, so no value overflows. False when the
 * value is not a non-negative integer. */
static bool wait_value_ms(const char *p, const char *end, int max_ms, int *ms)
{
    p = skip_ows(p);
    bool quoted = p < end && *p == '"';
    if (quoted)
        p++;
    long long secs = 0;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9') {
        if (secs <= (long long)max_ms / MS_PER_S)
            secs = secs * 10 + (*p - '0');
        p++;
    }
    if (p == digits || (quoted && (p >= end || *p++ != '"')))
        return false;
    p = skip_ows(p);
    if (p < end && *p != ';')
        return false;
    long long v = secs * MS_PER_S; /* secs <= max_ms / 1000 * 10 + 9: no overflow */
    *ms = v > max_ms ? max_ms : (int)v;
    return true;
}

bool http_prefer_wait_ms(const char *prefer, int max_ms, int *wait_ms)
{
    assert(max_ms >= 0 && wait_ms != NULL);
    if (prefer == NULL)
        return false;
    for (const char *p = prefer; *p;) {
        const char *end = preference_end(p);
        const char *name = skip_ows(p);
        size_t name_len = strcspn(name, "=;, \t");
        if (name + name_len <= end && name_len == strlen(PREFER_WAIT_NAME) &&
            strncasecmp(name, PREFER_WAIT_NAME, name_len) == 0) {
            /* RFC 7240 section 2: only the first instance of a preference
             * counts, even when its value is unusable. */
            const char *eq = skip_ows(name + name_len);
            return eq < end && *eq == '=' && wait_value_ms(eq + 1, end, max_ms, wait_ms);
        }
        p = *end ? end + 1 : end;
    }
    return false;
}
