/* JSON text as json_dumps(JSON_COMPACT) writes it (json_text.h). */
#include "util/json_text.h"

#include <stdlib.h>
#include <string.h>

#include "util/fmt.h"

#define DUMPS_FIRST_BYTES 512

/* Writes s as a JSON string, escaped as jansson's dump_string escapes it
 * without flags: '"', '\\' and the control characters below 0x20 (the
 * usual short forms, else \u00XX in capitals), every other byte as it is
 * (jansson's strings are valid UTF-8). */
static int write_string(const char *s, size_t len, json_text_add add, void *arg)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = add("\"", 1, arg);
    size_t run = 0; /* bytes copied as they are, pending */
    for (size_t i = 0; rc == 0 && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        char esc[6] = {'\\', (char)c};
        size_t n = 2;
        switch (c) {
        case '"':
        case '\\':
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            n = 6;
        }
        rc = add(s + i - run, run, arg);
        run = 0;
        if (rc == 0)
            rc = add(esc, n, arg);
    }
    if (rc == 0)
        rc = add(s + len - run, run, arg);
    return rc == 0 ? add("\"", 1, arg) : -1;
}

int json_text_write(const json_t *value, json_text_add add, void *arg)
{
    char num[FMT_I64_MAX];
    switch (json_typeof(value)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *member;
        const char *sep = "{";
        json_object_foreach((json_t *)value, key, member)
        {
            if (add(sep, 1, arg) != 0 || write_string(key, strlen(key), add, arg) != 0 ||
                add(":", 1, arg) != 0 || json_text_write(member, add, arg) != 0)
                return -1;
            sep = ",";
        }
        return *sep == '{' ? add("{}", 2, arg) : add("}", 1, arg);
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(value);
        if (add("[", 1, arg) != 0)
            return -1;
        for (size_t i = 0; i < n; i++)
            if ((i > 0 && add(",", 1, arg) != 0) ||
                json_text_write(json_array_get(value, i), add, arg) != 0)
                return -1;
        return add("]", 1, arg);
    }
    case JSON_STRING:
        return write_string(json_string_value(value), json_string_length(value), add, arg);
    case JSON_INTEGER:
        return add(num, fmt_i64(num, json_integer_value(value)), arg);
    case JSON_TRUE:
        return add("true", 4, arg);
    case JSON_FALSE:
        return add("false", 5, arg);
    case JSON_NULL:
        return add("null", 4, arg);
    default:
        return json_dump_callback(value, add, arg, JSON_COMPACT | JSON_ENCODE_ANY);
    }
}

struct grow {
    char *buf;
    size_t len, cap;
};

static int grow_add(const char *s, size_t n, void *arg)
{
    struct grow *g = arg;
    if (g->len + n + 1 > g->cap) {
        size_t cap = g->cap ? g->cap : DUMPS_FIRST_BYTES;
        while (cap < g->len + n + 1)
            cap *= 2;
        char *bigger = realloc(g->buf, cap);
        if (bigger == NULL)
            return -1;
        g->buf = bigger;
        g->cap = cap;
    }
    memcpy(g->buf + g->len, s, n);
    g->len += n;
    g->buf[g->len] = '\0';
    return 0;
}

char *json_text_dumps(const json_t *value, size_t *len)
{
    struct grow g = {0};
    if (grow_add("", 0, &g) != 0 || json_text_write(value, grow_add, &g) != 0) {
        free(g.buf);
        return NULL;
    }
    *len = g.len;
    return g.buf;
}
