/* Unit tests for libs/util/json_text.c: byte for byte what jansson's
 * json_dumps(JSON_COMPACT) writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/json_text.h"

#define RANDOM_VALUES 3000
#define RANDOM_DEPTH  4

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* A string of ASCII (every byte 1..127, controls and quotes among them)
 * and two- to four-byte UTF-8 characters. */
static json_t *random_string(uint64_t *s)
{
    static const char *const wide[] = {"\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80",
                                       "\xe2\x80\xa8"};
    char buf[64];
    size_t len = 0, n = next_random(s) % 12;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = next_random(s);
        if (r % 4 == 0) {
            const char *w = wide[(r >> 8) % 4];
            memcpy(buf + len, w, strlen(w));
            len += strlen(w);
        } else {
            buf[len++] = (char)(1 + (r >> 8) % 127);
        }
    }
    return json_stringn(buf, len);
}

static json_t *random_value(uint64_t *s, int depth)
{
    static const int64_t edges[] = {INT64_MIN, -1, 0, 1, 9, 10, INT64_MAX};
    uint64_t r = next_random(s);
    switch (depth > 0 ? r % 8 : r % 6) {
    case 0:
        return json_integer((json_int_t)edges[(r >> 8) % 7]);
    case 1:
        return json_integer((json_int_t)(int64_t)next_random(s) >> (r >> 8) % 63);
    case 2:
        return random_string(s);
    case 3:
        return json_null();
    case 4:
        return json_true();
    case 5:
        return json_false();
    case 6: {
        json_t *a = json_array();
        for (uint64_t i = 0, n = (r >> 8) % 4; i < n; i++)
            json_array_append_new(a, random_value(s, depth - 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (uint64_t i = 0, n = (r >> 8) % 4; i < n; i++) {
            json_t *key = random_string(s);
            json_object_set_new(o, json_string_value(key), random_value(s, depth - 1));
            json_decref(key);
        }
        return o;
    }
    }
}

static void same_as_jansson(const json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), *got = NULL;
    size_t len = 0;
    assert_non_null(want);
    got = json_text_dumps(v, &len);
    assert_non_null(got);
    if (len != strlen(want) || strcmp(got, want) != 0)
        fail_msg("encoded %s\njansson %s", got, want);
    free(got);
    free(want);
}

/* Byte for byte what jansson writes: integers at the int64 edges, every
 * ASCII control and quote escaped as jansson escapes them, UTF-8 as it
 * is, empty and nested objects and arrays, keys that need escaping. */
static void test_as_jansson(void **state)
{
    json_t *controls = json_object();
    char all[128];
    for (int c = 1; c < 128; c++)
        all[c - 1] = (char)c;
    json_object_set_new(controls, "all", json_stringn(all, 127));
    json_object_set_new(controls, "k\"\\\n\x01", json_string("\xe4\xb8\xad\xf0\x9f\x98\x80"));
    json_object_set_new(controls, "empty", json_pack("{s:{}, s:[], s:s}", "o", "a", "s", ""));
    same_as_jansson(controls);
    json_decref(controls);
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < RANDOM_VALUES; i++) {
        json_t *v = random_value(&seed, RANDOM_DEPTH);
        same_as_jansson(v);
        json_decref(v);
    }
}

/* A real is left to jansson, inside what is written here. */
static void test_reals_left_to_jansson(void **state)
{
    json_t *v = json_pack("{s:f, s:[f, i]}", "r", 0.1, "a", 1e300, 7);
    same_as_jansson(v);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_as_jansson),
        cmocka_unit_test(test_reals_left_to_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
