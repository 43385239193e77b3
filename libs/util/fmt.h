/* Numbers and short strings written without the printf family: on the
 * read path the access line, the request metrics' labels and the cache's
 * key names were formatted with snprintf on every request (a twentieth of
 * ingest's CPU, most of it in parsing the format). Each writes exactly
 * what the printf form named beside it writes (tests/unit/test_fmt.c
 * holds them to it). Pure, no allocation. */
#ifndef TESSERA_UTIL_FMT_H
#define TESSERA_UTIL_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FMT_I64_MAX 21 /* "-9223372036854775808" and its NUL */
#define FMT_MS3_MAX 24 /* fmt_ms3 of any int64 and its NUL */

/* v in decimal, NUL-terminated: snprintf "%" PRId64. Returns its length. */
size_t fmt_i64(char out[FMT_I64_MAX], int64_t v);

/* us microseconds as milliseconds with three decimals, NUL-terminated:
 * snprintf "%.3f" of us / 1000.0 for |us| below 2^40 (12 days; beyond,
 * printf may miss the last digit of the exact value written here).
 * Returns its length. */
size_t fmt_ms3(char out[FMT_MS3_MAX], int64_t us);

/* Appends s (len bytes) at *at in out (cap bytes), keeping a NUL after it;
 * false, with out unchanged past *at, when it does not fit. */
bool fmt_append(char *out, size_t cap, size_t *at, const char *s, size_t len)
    __attribute__((warn_unused_result));

/* fmt_append of a NUL-terminated string. */
bool fmt_append_str(char *out, size_t cap, size_t *at, const char *s)
    __attribute__((warn_unused_result));

#endif
