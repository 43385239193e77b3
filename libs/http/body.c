/* JSON request bodies under limits: size, media type, syntax, depth.
 * Called from handlers on the event loop thread. */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/http_internal.h"

#define HTTP_DETAIL_MAX_BYTES 256
#define HTTP_MEDIA_TYPE_JSON  "application/json"

/* True when content_type names application/json, parameters allowed
 * ("application/json; charset=utf-8"), case-insensitive. */
static bool media_type_is_json(const char *content_type)
{
    const char *p = content_type;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strlen(HTTP_MEDIA_TYPE_JSON);
    if (strncasecmp(p, HTTP_MEDIA_TYPE_JSON, n) != 0)
        return false;
    p += n;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0' || *p == ';';
}

/* Depth of nested arrays/objects (a scalar is 0, {} is 1). Stops
 * descending past limit, so the recursion is bounded by limit too. */
size_t http_json_depth(json_t *value, size_t limit)
{
    size_t deepest = 0, d;
    if (limit == 0)
        return json_is_object(value) || json_is_array(value) ? 1 : 0;
    if (json_is_object(value)) {
        const char *key;
        json_t *child;
        json_object_foreach(value, key, child)
        {
            d = http_json_depth(child, limit - 1);
            deepest = d > deepest ? d : deepest;
            if (deepest >= limit)
                break;
        }
        return deepest + 1;
    }
    if (json_is_array(value)) {
        size_t i;
        json_t *child;
        json_array_foreach(value, i, child)
        {
            d = http_json_depth(child, limit - 1);
            deepest = d > deepest ? d : deepest;
            if (deepest >= limit)
                break;
        }
        return deepest + 1;
    }
    return 0;
}

bool http_read_json_object(struct http_exchange *ex, json_t **out)
{
    char detail[HTTP_DETAIL_MAX_BYTES];
    json_error_t jerr;
    size_t len = 0;

    assert(ex != NULL && out != NULL);
    *out = NULL;
    if (ex->gone) {
        http_reply_problem(ex, 400, "client_gone", "the client went away", NULL);
        return false;
    }
    const unsigned char *body = http_body(ex, &len);
    if (len > ex->body_max_bytes) {
        snprintf(detail, sizeof(detail), "body of %zu bytes exceeds the limit of %zu bytes", len,
                 ex->body_max_bytes);
        http_reply_problem(ex, 413, "payload_too_large", detail, NULL);
        return false;
    }
    const char *content_type = http_header(ex, "Content-Type");
    if (content_type != NULL && !media_type_is_json(content_type)) {
        snprintf(detail, sizeof(detail), "Content-Type must be %s, got \"%.100s\"",
                 HTTP_MEDIA_TYPE_JSON, content_type);
        http_reply_problem(ex, 415, "unsupported_media_type", detail, NULL);
        return false;
    }
    /* Duplicate keys are rejected: two readers could disagree on which one
     * counts. */
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(detail, sizeof(detail), "invalid JSON at line %d, column %d (byte %d): %s",
                 jerr.line, jerr.column, jerr.position, jerr.text);
        http_reply_problem(ex, 400, "malformed_json", detail, NULL);
        return false;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        http_reply_problem(ex, 400, "malformed_json", "the body must be a JSON object", NULL);
        return false;
    }
    if (http_json_depth(root, ex->json_depth_max) > ex->json_depth_max) {
        json_decref(root);
        snprintf(detail, sizeof(detail), "JSON nested too deep (more than %zu levels)",
                 ex->json_depth_max);
        http_reply_problem(ex, 400, "malformed_json", detail, NULL);
        return false;
    }
    *out = root;
    return true;
}
