/* The member view's answer written as text around the cached profile's
 * text, instead of parsing the profile into jansson and encoding the whole
 * answer again: on a cached read that parse and encode were a tenth of
 * ingest's CPU. Pure (no I/O), so it is tested without servers
 * (tests/unit/test_member_view_text.c), byte for byte against what
 * jansson writes for the same view.
 *
 * The profile's text is what member_view.c's profile_json encodes
 * (JSON_COMPACT, keys in insertion order): its keys end with
 *   ..."registered_at":"…","tier":null,"cards":[],
 *   "personal_data_erased_at":…,"tags":[…]}
 * where "tier" and "cards" hold the places of the view's tier and cards.
 * Inside a JSON string every '"' is escaped, so the unescaped marker
 * `,"tier":null,"cards":[],"personal_data_erased_at":` can only be those
 * keys; the last one is taken, as only a timestamp and the tags (strings)
 * follow it. Text of any other shape is refused and the caller parses it. */
#ifndef TESSERA_INGEST_MEMBER_VIEW_TEXT_H
#define TESSERA_INGEST_MEMBER_VIEW_TEXT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Where the parts of a cached profile's text are. */
struct profile_text_marks {
    size_t placeholders_at; /* the ',' before "tier":null */
    size_t erased_at;       /* the ',' before "personal_data_erased_at" */
    size_t tags_at;         /* the ',' before "tags" */
    size_t len;             /* of the whole text; it ends in "]}" */
};

/* Finds the marks in text (len bytes); false when it is not shaped as
 * above. */
bool profile_text_marks_find(const char *text, size_t len, struct profile_text_marks *m)
    __attribute__((warn_unused_result));

/* The answer: the profile's keys in their order with "tier" and "cards"
 * taken from parts (both required), the tags only when with_tags, then
 * every other key of parts in its order. malloc'ed, NUL-terminated, its
 * length in *out_len; the caller wipes it (personal data) and frees it.
 * NULL when a value of parts cannot be encoded or tier/cards are missing. */
char *member_view_text_render(const char *profile, const struct profile_text_marks *m,
                              bool with_tags, const json_t *parts, size_t *out_len)
    __attribute__((warn_unused_result));

#endif
