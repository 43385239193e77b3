/* libFuzzer target: what ingest does with a JSON request body before any
 * database work — jansson decoding, the depth limit (http_json_depth),
 * the field validators every endpoint uses — plus opening a sealed PII
 * value from arbitrary text (a corrupted row must fail cleanly). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/validate.h"
#include "../../services/ingest/pii.h"

size_t http_json_depth(json_t *value, size_t limit);

#define DEPTH_MAX 16

static const char *const request_fields[] = {"name", "phone", "scope", "amount", "branch_id", NULL};
static const char *const scope_words[] = {"admin", "pos", "analytics:read", NULL};

static void validate_all(json_t *obj)
{
    struct validation v;
    validation_init(&v);
    const char *s = NULL;
    int64_t n = 0;
    validate_no_unknown_fields(&v, obj, request_fields);
    validate_string(&v, obj, "name", true, 1, 100, &s);
    validate_string(&v, obj, "phone", false, 5, 24, &s);
    validate_enum(&v, obj, "scope", false, scope_words, &s);
    validate_int(&v, obj, "amount", false, 1, INT64_MAX / 2, &n);
    validation_ok(&v);
    validation_free(&v);
}

static void open_sealed(const uint8_t *data, size_t size)
{
    static struct pii_keyring k;
    static int ready;
    char err[128];
    if (!ready)
        ready =
            pii_keyring_init(&k, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                             1, NULL, err, sizeof(err)) == 0;
    char *text = malloc(size + 3);
    memcpy(text, "\\x", 2);
    memcpy(text + 2, data, size);
    text[size + 2] = '\0';
    free(pii_open(&k, 1, "t", "m", "phone", text));
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *obj = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (obj && http_json_depth(obj, DEPTH_MAX) <= DEPTH_MAX && json_is_object(obj))
        validate_all(obj);
    json_decref(obj);
    open_sealed(data, size);
    return 0;
}
