/* Route table matching: literal segments and {param} captures. Runs once
 * per request inside the libevent request callback; no allocation. */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "http/http_internal.h"

static const char *const http_routable_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};

static bool segment_is_param(const char *seg, size_t len)
{
    return len >= 3 && seg[0] == '{' && seg[len - 1] == '}';
}

/* Route tables are code: a malformed pattern is a programmer error and
 * stops the service at start rather than 404ing at run time. */
void http_routes_check(const struct http_route *routes, size_t count)
{
    assert(routes != NULL || count == 0);
    for (size_t i = 0; i < count; i++) {
        const struct http_route *r = &routes[i];
        bool known = false;
        assert(r->method != NULL && r->pattern != NULL && r->handler != NULL);
        for (size_t m = 0; m < sizeof(http_routable_methods) / sizeof(*http_routable_methods); m++)
            known = known || strcmp(r->method, http_routable_methods[m]) == 0;
        assert(known);
        assert(r->pattern[0] == '/');
        size_t params = 0;
        for (const char *p = r->pattern + 1;;) {
            size_t len = strcspn(p, "/");
            assert(len > 0 || p[len] == '\0'); /* no empty inner segments */
            if (segment_is_param(p, len)) {
                assert(memchr(p + 1, '{', len - 2) == NULL);
                params++;
            } else {
                assert(memchr(p, '{', len) == NULL && memchr(p, '}', len) == NULL);
            }
            if (p[len] == '\0')
                break;
            p += len + 1;
        }
        assert(params <= HTTP_PARAMS_MAX);
    }
}

/* True when path has the pattern's shape; captures the raw {param} spans.
 * Literal segments compare byte for byte against the raw path. */
bool http_route_match_path(const char *pattern, const char *path, struct http_capture *caps,
                           size_t *cap_count)
{
    const char *p = pattern + 1, *s = path + 1;
    size_t n = 0;

    if (pattern[0] != '/' || path[0] != '/')
        return false;
    for (;;) {
        /* strchrnul, not strcspn: this runs for every route on every
         * request, and strcspn's set handling cost 4% of a read's CPU */
        size_t plen = (size_t)(strchrnul(p, '/') - p), slen = (size_t)(strchrnul(s, '/') - s);
        if (segment_is_param(p, plen)) {
            if (slen == 0)
                return false;
            assert(n < HTTP_PARAMS_MAX);
            caps[n++] = (struct http_capture){p + 1, plen - 2, s, slen};
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return false;
        }
        p += plen;
        s += slen;
        if (*p == '\0' || *s == '\0')
            break;
        p++;
        s++;
    }
    if (*p != '\0' || *s != '\0')
        return false;
    *cap_count = n;
    return true;
}

static void allow_add(char *allow, size_t allow_len, const char *method)
{
    size_t used = strlen(allow);
    /* Patterns may repeat a method on equivalent paths: list it once. */
    for (const char *a = allow; (a = strstr(a, method)) != NULL; a++) {
        size_t ml = strlen(method);
        if ((a == allow || a[-1] == ' ') && (a[ml] == ',' || a[ml] == '\0'))
            return;
    }
    snprintf(allow + used, allow_len - used, "%s%s", used > 0 ? ", " : "", method);
}

enum http_match http_routes_find(const struct http_route *routes, size_t count, const char *method,
                                 const char *path, const struct http_route **found,
                                 struct http_capture *caps, size_t *cap_count, char *allow,
                                 size_t allow_len)
{
    struct http_capture scratch[HTTP_PARAMS_MAX];
    size_t scratch_count;
    bool path_known = false;

    assert(allow != NULL && allow_len > 0);
    allow[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        if (!http_route_match_path(routes[i].pattern, path, scratch, &scratch_count))
            continue;
        if (strcmp(routes[i].method, method) == 0) {
            memcpy(caps, scratch, scratch_count * sizeof(*caps));
            *cap_count = scratch_count;
            *found = &routes[i];
            return HTTP_MATCH_FULL;
        }
        path_known = true;
        allow_add(allow, allow_len, routes[i].method);
    }
    return path_known ? HTTP_MATCH_PATH_ONLY : HTTP_MATCH_NONE;
}
