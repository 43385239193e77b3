/* W3C traceparent parsing and generation. No allocation; random ids come
 * from getrandom(2), through a small per-thread pool. */
#undef NDEBUG /* asserts stay on in production builds */
#include "trace/trace.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sodium.h>

#define TRACE_ID_HEX     32
#define TRACE_PARENT_HEX 16

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0')
            return false;
    return true;
}

bool trace_parse(const char *h, char trace_id[TRACE_ID_SIZE])
{
    trace_id[0] = '\0';
    if (h == NULL || strlen(h) < TRACEPARENT_LEN)
        return false;
    /* version "ff" is forbidden; version 00 must be exactly 55 long; a
     * later version may append "-..." fields. */
    if (!is_lower_hex(h, 2) || strncmp(h, "ff", 2) == 0)
        return false;
    if (strncmp(h, "00", 2) == 0 ? h[TRACEPARENT_LEN] != '\0'
                                 : (h[TRACEPARENT_LEN] != '\0' && h[TRACEPARENT_LEN] != '-'))
        return false;
    if (h[2] != '-' || h[35] != '-' || h[52] != '-')
        return false;
    if (!is_lower_hex(h + 3, TRACE_ID_HEX) || !is_lower_hex(h + 36, TRACE_PARENT_HEX) ||
        !is_lower_hex(h + 53, 2))
        return false;
    if (all_zero(h + 3, TRACE_ID_HEX) || all_zero(h + 36, TRACE_PARENT_HEX))
        return false;
    memcpy(trace_id, h + 3, TRACE_ID_HEX);
    trace_id[TRACE_ID_HEX] = '\0';
    return true;
}

/* Random bytes drawn from a per-thread pool filled by one getrandom(2)
 * call every TRACE_RANDOM_POOL_BYTES / 16 ids: every API request starts
 * a trace (two ids), and a system call for each was a measurable part of
 * a cached read. Ids need to be unique, not secret (no service forks, so
 * no two processes share a pool). */
#define TRACE_RANDOM_POOL_BYTES 512

static void random_bytes(uint8_t *out, size_t len)
{
    static _Thread_local uint8_t pool[TRACE_RANDOM_POOL_BYTES];
    static _Thread_local size_t used = TRACE_RANDOM_POOL_BYTES;
    assert(len <= TRACE_RANDOM_POOL_BYTES);
    if (TRACE_RANDOM_POOL_BYTES - used < len) {
        ssize_t n = getrandom(pool, sizeof(pool), 0);
        assert(n == (ssize_t)sizeof(pool));
        used = 0;
    }
    memcpy(out, pool + used, len);
    used += len;
}

static void random_hex(char *out, size_t hex_len)
{
    uint8_t bytes[16];
    char hex[2 * sizeof(bytes) + 1];
    assert(hex_len <= 2 * sizeof(bytes) && hex_len % 2 == 0);
    do {
        random_bytes(bytes, hex_len / 2);
        sodium_bin2hex(hex, sizeof(hex), bytes, hex_len / 2);
        memcpy(out, hex, hex_len);
    } while (all_zero(out, hex_len)); /* all-zero ids are invalid */
}

void trace_continue(const char *incoming, char out[TRACEPARENT_SIZE])
{
    char trace_id[TRACE_ID_SIZE], parent[TRACE_PARENT_HEX + 1], flags[3] = "01";
    if (trace_parse(incoming, trace_id)) {
        memcpy(flags, incoming + 53, 2);
    } else {
        random_hex(trace_id, TRACE_ID_HEX);
        trace_id[TRACE_ID_HEX] = '\0';
    }
    random_hex(parent, TRACE_PARENT_HEX);
    parent[TRACE_PARENT_HEX] = '\0';
    /* We only emit version 00, whatever version came in. */
    snprintf(out, TRACEPARENT_SIZE, "00-%s-%s-%s", trace_id, parent, flags);
}

void trace_id_of(const char *traceparent, char out[TRACE_ID_SIZE])
{
    if (!trace_parse(traceparent, out))
        out[0] = '\0';
}
