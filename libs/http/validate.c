/* Field validation: each getter records what is wrong and carries on, so
 * one 422 names every bad field. Called from handlers on the loop thread. */
#undef NDEBUG /* asserts stay on in production builds */
#include "http/validate.h"

#include <assert.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

/* A hostile body could name thousands of unknown fields: keep the answer
 * bounded. Errors past the cap are counted in the last message. */
#define VALIDATION_ERRORS_MAX        64
#define VALIDATION_MESSAGE_MAX_BYTES 256
#define VALIDATION_DETAIL_MAX_BYTES  1024

void validation_init(struct validation *v)
{
    assert(v != NULL);
    v->errors = json_array();
    assert(v->errors != NULL); /* out of memory at request start */
}

void validation_free(struct validation *v)
{
    assert(v != NULL);
    json_decref(v->errors);
    v->errors = NULL;
}

bool validation_ok(const struct validation *v)
{
    assert(v != NULL && v->errors != NULL);
    return json_array_size(v->errors) == 0;
}

void validation_add(struct validation *v, const char *field, const char *message)
{
    assert(v != NULL && v->errors != NULL && field != NULL && message != NULL);
    if (json_array_size(v->errors) >= VALIDATION_ERRORS_MAX)
        return;
    json_array_append_new(v->errors, json_pack("{s:s, s:s}", "field", field, "message", message));
}

/* The field's value, or NULL when absent or JSON null (both mean "not
 * given"). Records "is required" when required and not given. */
static json_t *field_get(struct validation *v, json_t *obj, const char *field, bool required)
{
    assert(json_is_object(obj) && field != NULL);
    json_t *value = json_object_get(obj, field);
    if (value != NULL && !json_is_null(value))
        return value;
    if (required)
        validation_add(v, field, "is required");
    return NULL;
}

/* Code points in a valid UTF-8 string (jansson guarantees validity). */
static size_t utf8_length(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* Lengths count characters (code points), not bytes: a limit of 20 means
 * twenty Chinese characters, not six. */
bool validate_string(struct validation *v, json_t *obj, const char *field, bool required,
                     size_t min_len, size_t max_len, const char **out)
{
    return validate_text(v, obj, field, required, min_len, max_len, SIZE_MAX, out);
}

bool validate_text(struct validation *v, json_t *obj, const char *field, bool required,
                   size_t min_len, size_t max_len, size_t max_bytes, const char **out)
{
    char msg[VALIDATION_MESSAGE_MAX_BYTES];
    assert(min_len <= max_len && out != NULL);
    json_t *value = field_get(v, obj, field, required);
    if (value == NULL)
        return !required;
    if (!json_is_string(value)) {
        validation_add(v, field, "must be a string");
        return false;
    }
    const char *s = json_string_value(value);
    size_t bytes = json_string_length(value);
    if (strlen(s) != bytes) { /* "\u0000" inside: C strings would cut it */
        validation_add(v, field, "must not contain NUL characters");
        return false;
    }
    size_t chars = utf8_length(s, bytes);
    if (chars < min_len || chars > max_len) {
        snprintf(msg, sizeof(msg), "must be between %zu and %zu characters long", min_len, max_len);
        validation_add(v, field, msg);
        return false;
    }
    if (bytes > max_bytes) {
        snprintf(msg, sizeof(msg), "must be at most %zu bytes of UTF-8", max_bytes);
        validation_add(v, field, msg);
        return false;
    }
    *out = s;
    return true;
}

bool validate_int(struct validation *v, json_t *obj, const char *field, bool required, int64_t min,
                  int64_t max, int64_t *out)
{
    char msg[VALIDATION_MESSAGE_MAX_BYTES];
    assert(min <= max && out != NULL);
    json_t *value = field_get(v, obj, field, required);
    if (value == NULL)
        return !required;
    if (!json_is_integer(value)) { /* 1.0 and "1" are not integers */
        validation_add(v, field, "must be an integer");
        return false;
    }
    json_int_t n = json_integer_value(value);
    if (n < min || n > max) {
        snprintf(msg, sizeof(msg), "must be between %lld and %lld", (long long)min, (long long)max);
        validation_add(v, field, msg);
        return false;
    }
    *out = n;
    return true;
}

bool validate_enum(struct validation *v, json_t *obj, const char *field, bool required,
                   const char *const *allowed, const char **out)
{
    char msg[VALIDATION_MESSAGE_MAX_BYTES];
    assert(allowed != NULL && allowed[0] != NULL && out != NULL);
    json_t *value = field_get(v, obj, field, required);
    if (value == NULL)
        return !required;
    const char *s = json_is_string(value) ? json_string_value(value) : NULL;
    for (size_t i = 0; s != NULL && allowed[i] != NULL; i++) {
        if (strcmp(s, allowed[i]) == 0) {
            *out = allowed[i];
            return true;
        }
    }
    size_t used = (size_t)snprintf(msg, sizeof(msg), "must be one of:");
    for (size_t i = 0; allowed[i] != NULL && used < sizeof(msg); i++)
        used +=
            (size_t)snprintf(msg + used, sizeof(msg) - used, "%s %s", i > 0 ? "," : "", allowed[i]);
    validation_add(v, field, msg);
    return false;
}

void validate_no_unknown_fields(struct validation *v, json_t *obj, const char *const *known)
{
    const char *key;
    json_t *value;
    assert(json_is_object(obj) && known != NULL);
    json_object_foreach(obj, key, value)
    {
        bool found = false;
        for (size_t i = 0; !found && known[i] != NULL; i++)
            found = strcmp(key, known[i]) == 0;
        if (!found)
            validation_add(v, key, "unknown field");
    }
}

/* "invalid fields: a, b" naming each field once, cut with "..." when long. */
static void validation_detail(const struct validation *v, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "invalid fields:");
    size_t i;
    json_t *err;
    json_array_foreach(v->errors, i, err)
    {
        const char *field = json_string_value(json_object_get(err, "field"));
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(field, json_string_value(
                                     json_object_get(json_array_get(v->errors, j), "field"))) == 0;
        if (seen)
            continue;
        int n = snprintf(buf + used, len - used, "%s %s", i > 0 ? "," : "", field);
        if (n < 0 || used + (size_t)n >= len) {
            snprintf(buf + (len > 4 ? len - 4 : 0), len > 4 ? 4 : len, "...");
            return;
        }
        used += (size_t)n;
    }
}

void validation_reply(struct http_exchange *ex, struct validation *v)
{
    char detail[VALIDATION_DETAIL_MAX_BYTES];
    assert(v != NULL && v->errors != NULL && !validation_ok(v));
    validation_detail(v, detail, sizeof(detail));
    json_t *extra = json_object();
    if (extra != NULL)
        json_object_set_new(extra, "errors", v->errors); /* hands errors over */
    else
        json_decref(v->errors);
    v->errors = NULL;
    http_reply_problem(ex, 422, "validation_failed", detail, extra);
}
