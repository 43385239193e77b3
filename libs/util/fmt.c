/* Numbers and short strings without the printf family (fmt.h). */
#include "util/fmt.h"

#include <string.h>

size_t fmt_i64(char out[FMT_I64_MAX], int64_t v)
{
    char rev[FMT_I64_MAX];
    size_t n = 0, len = 0;
    /* the magnitude as unsigned: -INT64_MIN does not fit an int64 */
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        rev[n++] = (char)('0' + m % 10);
        m /= 10;
    } while (m != 0);
    if (v < 0)
        out[len++] = '-';
    while (n > 0)
        out[len++] = rev[--n];
    out[len] = '\0';
    return len;
}

size_t fmt_ms3(char out[FMT_MS3_MAX], int64_t us)
{
    size_t len = 0;
    uint64_t m = us < 0 ? (uint64_t)0 - (uint64_t)us : (uint64_t)us;
    if (us < 0)
        out[len++] = '-';
    len += fmt_i64(out + len, (int64_t)(m / 1000)); /* below 2^63: fits */
    unsigned frac = (unsigned)(m % 1000);
    out[len++] = '.';
    out[len++] = (char)('0' + frac / 100);
    out[len++] = (char)('0' + frac / 10 % 10);
    out[len++] = (char)('0' + frac % 10);
    out[len] = '\0';
    return len;
}

bool fmt_append(char *out, size_t cap, size_t *at, const char *s, size_t len)
{
    if (*at >= cap || len >= cap - *at)
        return false;
    memcpy(out + *at, s, len);
    *at += len;
    out[*at] = '\0';
    return true;
}

bool fmt_append_str(char *out, size_t cap, size_t *at, const char *s)
{
    return fmt_append(out, cap, at, s, strlen(s));
}
