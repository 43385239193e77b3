/* A strict reader of the Prometheus text exposition format (0.0.4) for
 * tests: prom_validate checks every line, prom_sum reads values. Header
 * only (static functions) so unit tests, which do not link tests/support,
 * can use it too. */
#ifndef TESSERA_TEST_PROM_TEXT_H
#define TESSERA_TEST_PROM_TEXT_H

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROM_FAMILIES_MAX 256

struct prom_family_seen {
    char name[128];
    char type[16];
};

static inline bool prom_name_ok(const char *s, size_t len)
{
    if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

/* Parses {a="x",b="y"} at *p; advances past it. */
static inline bool prom_labels_ok(const char **p)
{
    const char *s = *p;
    if (*s != '{')
        return true;
    s++;
    while (*s != '}') {
        size_t len = strcspn(s, "=");
        if (!prom_name_ok(s, len) || s[len] != '=' || s[len + 1] != '"')
            return false;
        s += len + 2;
        while (*s != '"') {
            if (*s == '\0' || *s == '\n')
                return false;
            if (*s == '\\') {
                if (s[1] != '\\' && s[1] != '"' && s[1] != 'n')
                    return false;
                s++;
            }
            s++;
        }
        s++;
        if (*s == ',')
            s++;
        else if (*s != '}')
            return false;
    }
    *p = s + 1;
    return true;
}

static inline bool prom_value_ok(const char *s)
{
    if (strcmp(s, "+Inf") == 0 || strcmp(s, "-Inf") == 0 || strcmp(s, "NaN") == 0)
        return true;
    char *end;
    strtod(s, &end);
    return end != s && (*end == '\0' || *end == ' '); /* an optional timestamp follows */
}

/* The family a sample name belongs to, given the last TYPE line. */
static inline bool prom_sample_in_family(const char *name, size_t len,
                                         const struct prom_family_seen *f)
{
    size_t flen = strlen(f->name);
    if (len == flen && strncmp(name, f->name, len) == 0)
        return strcmp(f->type, "histogram") != 0;
    if (strcmp(f->type, "histogram") != 0 || len <= flen || strncmp(name, f->name, flen) != 0)
        return false;
    const char *suffix = name + flen;
    size_t slen = len - flen;
    return (slen == 7 && strncmp(suffix, "_bucket", 7) == 0) ||
           (slen == 4 && strncmp(suffix, "_sum", 4) == 0) ||
           (slen == 6 && strncmp(suffix, "_count", 6) == 0);
}

static inline bool prom_fail(char *why, size_t why_len, int line, const char *what)
{
    snprintf(why, why_len, "line %d: %s", line, what);
    return false;
}

static inline bool prom_comment_ok(const char *l, struct prom_family_seen *seen, size_t *nseen,
                                   char *why, size_t why_len, int line)
{
    char kind[8], name[128], rest[64] = "";
    if (sscanf(l, "# %7s %127s %63s", kind, name, rest) < 2)
        return prom_fail(why, why_len, line, "bad comment");
    if (!prom_name_ok(name, strlen(name)))
        return prom_fail(why, why_len, line, "bad family name");
    if (strcmp(kind, "HELP") == 0)
        return true;
    if (strcmp(kind, "TYPE") != 0)
        return true; /* other comments are allowed */
    if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
        strcmp(rest, "summary") && strcmp(rest, "untyped"))
        return prom_fail(why, why_len, line, "unknown type");
    for (size_t i = 0; i < *nseen; i++)
        if (strcmp(seen[i].name, name) == 0)
            return prom_fail(why, why_len, line, "family declared twice");
    if (strcmp(rest, "counter") == 0 &&
        (strlen(name) <= 6 || strcmp(name + strlen(name) - 6, "_total") != 0))
        return prom_fail(why, why_len, line, "counter name without _total");
    if (*nseen == PROM_FAMILIES_MAX)
        return prom_fail(why, why_len, line, "too many families");
    snprintf(seen[*nseen].name, sizeof(seen[0].name), "%s", name);
    snprintf(seen[*nseen].type, sizeof(seen[0].type), "%s", rest);
    (*nseen)++;
    return true;
}

/* Checks the whole text: comment syntax, one TYPE per family before its
 * samples, sample names inside the declared family, label syntax and
 * escapes, numeric values, counters named *_total, a trailing newline.
 * On failure writes the first problem to why. */
static inline bool prom_validate(const char *text, char *why, size_t why_len)
{
    static struct prom_family_seen seen[PROM_FAMILIES_MAX];
    size_t nseen = 0;
    int line = 0;
    size_t tlen = strlen(text);
    if (tlen > 0 && text[tlen - 1] != '\n')
        return prom_fail(why, why_len, 0, "no trailing newline");
    for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
        char buf[1024];
        size_t len = strcspn(l, "\n");
        line++;
        if (len >= sizeof(buf))
            return prom_fail(why, why_len, line, "line too long");
        memcpy(buf, l, len);
        buf[len] = '\0';
        if (buf[0] == '#') {
            if (!prom_comment_ok(buf, seen, &nseen, why, why_len, line))
                return false;
            continue;
        }
        if (len == 0)
            continue;
        size_t nlen = strcspn(buf, "{ ");
        if (!prom_name_ok(buf, nlen))
            return prom_fail(why, why_len, line, "bad sample name");
        if (nseen == 0 || !prom_sample_in_family(buf, nlen, &seen[nseen - 1]))
            return prom_fail(why, why_len, line, "sample outside its TYPE'd family");
        const char *p = buf + nlen;
        if (!prom_labels_ok(&p))
            return prom_fail(why, why_len, line, "bad labels");
        if (*p != ' ' || !prom_value_ok(p + 1))
            return prom_fail(why, why_len, line, "bad value");
    }
    return true;
}

/* Sum of the samples named name whose label text contains every
 * comma-free fragment of match (e.g. "route=\"/v1/members\"",
 * or NULL for all). -1 when there is no such sample. */
static inline double prom_sum(const char *text, const char *name, const char *match)
{
    double sum = 0;
    bool found = false;
    size_t nlen = strlen(name);
    for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
        size_t len = strcspn(l, "\n");
        if (l[0] != '#' && len > nlen && strncmp(l, name, nlen) == 0 &&
            (l[nlen] == '{' || l[nlen] == ' ')) {
            char buf[1024];
            snprintf(buf, sizeof(buf), "%.*s", (int)len, l);
            char *space = strrchr(buf, ' ');
            if (match == NULL || (strstr(buf, match) && strstr(buf, match) < space)) {
                sum += strtod(space + 1, NULL);
                found = true;
            }
        }
        if (l[len] == '\0')
            break;
    }
    return found ? sum : -1;
}

#endif
