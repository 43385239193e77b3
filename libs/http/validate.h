/* Field validation for JSON request bodies. Collects every problem so one
 * 422 validation_failed names all the bad fields at once. */
#ifndef TESSERA_VALIDATE_H
#define TESSERA_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http/http.h"

struct validation {
    json_t *errors; /* array of {field, message} */
};

void validation_init(struct validation *v);
void validation_free(struct validation *v);
bool validation_ok(const struct validation *v);
void validation_add(struct validation *v, const char *field, const char *message);

/* Each getter records an error and returns false when the field is missing
 * (unless optional, then *out keeps its default and true is returned), of the
 * wrong JSON type, or out of bounds. Strings are trimmed of nothing and
 * must be valid UTF-8 (jansson guarantees it) with length in [min, max]. */
bool validate_string(struct validation *v, json_t *obj, const char *field, bool required,
                     size_t min_len, size_t max_len, const char **out);
/* validate_string with a limit in bytes too: text that a service copies
 * into a buffer of max_bytes (events/text_limits.h) is refused here, at
 * the edge, rather than cut there. */
bool validate_text(struct validation *v, json_t *obj, const char *field, bool required,
                   size_t min_chars, size_t max_chars, size_t max_bytes, const char **out);
bool validate_int(struct validation *v, json_t *obj, const char *field, bool required, int64_t min,
                  int64_t max, int64_t *out);
/* One of a NULL-terminated list of words. */
bool validate_enum(struct validation *v, json_t *obj, const char *field, bool required,
                   const char *const *allowed, const char **out);
/* Rejects fields not in the NULL-terminated known list ("unknown field"). */
void validate_no_unknown_fields(struct validation *v, json_t *obj, const char *const *known);

/* Answers 422 validation_failed with detail "invalid fields: a, b" and the
 * errors array; frees v's content. */
void validation_reply(struct http_exchange *ex, struct validation *v);

#endif
