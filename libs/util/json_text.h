/* JSON text written as jansson's json_dumps(JSON_COMPACT) writes it, byte
 * for byte, without its printf and its per-character UTF-8 decoding: on
 * the read path encoding the answer was a tenth of ingest's CPU. Objects
 * (keys in their order), arrays, strings, integers, true, false and null
 * are written here; a real is left to jansson. tests/unit/test_json_text.c
 * holds it to jansson. */
#ifndef TESSERA_UTIL_JSON_TEXT_H
#define TESSERA_UTIL_JSON_TEXT_H

#include <jansson.h>
#include <stddef.h>

/* Takes len bytes of the text; non-zero stops the writing (jansson's
 * json_dump_callback_t). */
typedef int (*json_text_add)(const char *buffer, size_t len, void *arg);

/* Writes value through add; 0, or -1 when add refused. */
int json_text_write(const json_t *value, json_text_add add, void *arg)
    __attribute__((warn_unused_result));

/* value's text, malloc'ed and NUL-terminated, its length in *len; NULL
 * when out of memory. */
char *json_text_dumps(const json_t *value, size_t *len) __attribute__((warn_unused_result));

#endif
