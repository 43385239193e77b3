/* JSON-lines logger. Each line is built in a stack buffer and handed to one
 * write(2), so lines from different threads never interleave (a pipe or a
 * file opened O_APPEND keeps each write whole). Nothing here allocates. */
#undef NDEBUG /* asserts stay on in production builds */
#include "log/log.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Longest message kept (bytes before escaping); longer ones are cut at a
 * UTF-8 boundary and end in LOG_TRUNCATED_MARKER. */
#define LOG_MSG_MAX_BYTES 4096
/* Longest value of an extra field (bytes before escaping). */
#define LOG_FIELD_MAX_BYTES 1024
/* Extra fields per line; the rest are dropped (and counted). */
#define LOG_FIELDS_MAX        32
#define LOG_SERVICE_MAX_BYTES 64
/* Worst case: every byte escaped as \u00XX (6x) plus the fixed keys. */
#define LOG_LINE_MAX_BYTES   (6 * LOG_MSG_MAX_BYTES + 8192)
#define LOG_TRUNCATED_MARKER "...[truncated]"

static char log_service[LOG_SERVICE_MAX_BYTES] = "tessera";
static char log_instance[LOG_SERVICE_MAX_BYTES]; /* "" until set: not printed */
static enum log_level log_min_level = LOG_INFO;

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

struct log_line {
    char buf[LOG_LINE_MAX_BYTES];
    size_t len;
    bool full; /* an append did not fit; the line is cut but stays valid */
};

void log_init(const char *service, enum log_level min_level)
{
    assert(service != NULL);
    assert(min_level >= LOG_DEBUG && min_level <= LOG_ERROR);
    snprintf(log_service, sizeof(log_service), "%s", service);
    log_min_level = min_level;
}

void log_set_instance(const char *instance)
{
    assert(instance != NULL);
    snprintf(log_instance, sizeof(log_instance), "%s", instance);
}

bool log_level_parse(const char *text, enum log_level *out)
{
    if (text == NULL)
        return false;
    for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
        if (strcmp(text, log_level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    return false;
}

/* Room kept at the end of the buffer for the closing "}\n". */
#define LOG_LINE_TAIL_BYTES 2

static void line_append(struct log_line *line, const char *s, size_t n)
{
    if (line->full || line->len + n > sizeof(line->buf) - LOG_LINE_TAIL_BYTES) {
        line->full = true;
        return;
    }
    memcpy(line->buf + line->len, s, n);
    line->len += n;
}

static void line_append_str(struct log_line *line, const char *s)
{
    line_append(line, s, strlen(s));
}

/* Length of the valid UTF-8 sequence starting at s (at most avail bytes),
 * or 0 when the bytes there are not valid UTF-8. */
static size_t utf8_sequence_len(const unsigned char *s, size_t avail)
{
    size_t n;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    /* Overlong 3/4-byte forms, surrogates and code points past U+10FFFF. */
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

/* Appends s as a quoted JSON string. At most max_bytes of input are used;
 * a longer input ends in the marker. Invalid UTF-8 becomes U+FFFD so the
 * line always parses. */
static void line_append_json(struct log_line *line, const char *s, size_t max_bytes)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "(null)");
    size_t len = strlen((const char *)p);
    bool cut = len > max_bytes;
    size_t end = cut ? max_bytes : len;

    line_append(line, "\"", 1);
    for (size_t i = 0; i < end;) {
        unsigned char c = p[i];
        size_t n = utf8_sequence_len(p + i, end - i);
        if (n == 0) {
            line_append_str(line, "\\ufffd");
            i++;
            continue;
        }
        if (n > 1) {
            line_append(line, (const char *)p + i, n);
        } else if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            line_append(line, esc, 2);
        } else if (c == '\n') {
            line_append_str(line, "\\n");
        } else if (c == '\r') {
            line_append_str(line, "\\r");
        } else if (c == '\t') {
            line_append_str(line, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
            line_append(line, esc, sizeof(esc));
        } else {
            line_append(line, (const char *)p + i, 1);
        }
        i += n;
    }
    if (cut)
        line_append_str(line, LOG_TRUNCATED_MARKER);
    line_append(line, "\"", 1);
}

/* The second last formatted, per thread: gmtime_r and strftime run once a
 * second rather than on every line (the access line is written for every
 * request). */
static _Thread_local time_t ts_second = (time_t)-1;
static _Thread_local char ts_second_text[LOG_TS_MAX];
static _Thread_local size_t ts_second_len;

size_t log_format_ts(const struct timespec *now, char out[LOG_TS_MAX])
{
    if (now->tv_sec != ts_second) {
        struct tm tm;
        gmtime_r(&now->tv_sec, &tm);
        ts_second_len = strftime(ts_second_text, sizeof(ts_second_text) - sizeof(".000Z"),
                                 "%Y-%m-%dT%H:%M:%S", &tm);
        ts_second = now->tv_sec;
    }
    long ms = now->tv_nsec / 1000000L;
    memcpy(out, ts_second_text, ts_second_len);
    char *p = out + ts_second_len;
    *p++ = '.';
    *p++ = (char)('0' + ms / 100 % 10);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    *p++ = 'Z';
    *p = '\0';
    return (size_t)(p - out);
}

static void line_begin(struct log_line *line, enum log_level level)
{
    struct timespec now;
    char ts[LOG_TS_MAX];

    clock_gettime(CLOCK_REALTIME, &now);
    log_format_ts(&now, ts);

    line->len = 0;
    line->full = false;
    line_append_str(line, "{\"ts\":\"");
    line_append_str(line, ts);
    line_append_str(line, "\",\"level\":\"");
    line_append_str(line, log_level_names[level]);
    line_append_str(line, "\",\"service\":");
    line_append_json(line, log_service, LOG_SERVICE_MAX_BYTES);
    if (log_instance[0] != '\0') {
        line_append_str(line, ",\"instance\":");
        line_append_json(line, log_instance, LOG_SERVICE_MAX_BYTES);
    }
}

/* Writes len bytes to stderr with as many write(2) calls as it takes (one,
 * but for a signal or a short write). errno is preserved so logging never
 * disturbs the caller. */
static void write_all(const char *buf, size_t len)
{
    int saved_errno = errno;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(STDERR_FILENO, buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* nowhere to report a failing stderr */
        off += (size_t)n;
    }
    errno = saved_errno;
}

/* Closes the object. A full line was cut inside a value; it is rebuilt
 * short rather than emitted as broken JSON. */
static void line_close(struct log_line *line, enum log_level level, const char *msg)
{
    if (line->full) {
        /* Only reachable with many long fields: keep the message. */
        line_begin(line, level);
        line_append_str(line, ",\"msg\":");
        line_append_json(line, msg, LOG_MSG_MAX_BYTES);
        line_append_str(line, ",\"log_line_truncated\":\"true\"");
    }
    line->buf[line->len++] = '}';
    line->buf[line->len++] = '\n';
}

/* Closes the line and writes it with one write(2). */
static void line_finish(struct log_line *line, enum log_level level, const char *msg)
{
    line_close(line, level, msg);
    write_all(line->buf, line->len);
}

void log_write(enum log_level level, const char *fmt, ...)
{
    /* One byte more than kept, so the escaper sees that it must cut. */
    char msg[LOG_MSG_MAX_BYTES + 2];
    struct log_line line;
    va_list ap;

    assert(level >= LOG_DEBUG && level <= LOG_ERROR && fmt != NULL);
    if (level < log_min_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    line_begin(&line, level);
    line_append_str(&line, ",\"msg\":");
    line_append_json(&line, msg, LOG_MSG_MAX_BYTES);
    line_finish(&line, level, msg);
}

/* The line of log_fields: msg and the key, value pairs of ap. */
static void line_fields(struct log_line *line, enum log_level level, const char *msg, va_list ap)
{
    size_t count = 0, dropped = 0;
    line_begin(line, level);
    line_append_str(line, ",\"msg\":");
    line_append_json(line, msg, LOG_MSG_MAX_BYTES);
    for (const char *key = va_arg(ap, const char *); key != NULL; key = va_arg(ap, const char *)) {
        const char *value = va_arg(ap, const char *);
        if (count == LOG_FIELDS_MAX) {
            dropped++;
            continue;
        }
        line_append(line, ",", 1);
        line_append_json(line, key, LOG_FIELD_MAX_BYTES);
        line_append(line, ":", 1);
        if (value == NULL)
            line_append_str(line, "null");
        else
            line_append_json(line, value, LOG_FIELD_MAX_BYTES);
        count++;
    }
    if (dropped > 0) {
        char text[32];
        snprintf(text, sizeof(text), "\"%zu\"", dropped);
        line_append_str(line, ",\"log_fields_dropped\":");
        line_append_str(line, text);
    }
}

void log_fields(enum log_level level, const char *msg, ...)
{
    struct log_line line;
    va_list ap;

    assert(level >= LOG_DEBUG && level <= LOG_ERROR && msg != NULL);
    if (level < log_min_level)
        return;
    va_start(ap, msg);
    line_fields(&line, level, msg, ap);
    va_end(ap);
    line_finish(&line, level, msg);
}

/* --- batched lines ----------------------------------------------------------- */

/* This thread's batch of whole lines, written by log_batch_flush. At most
 * LOG_BATCH_BYTES (PIPE_BUF): a write of it stays whole on a pipe too, so
 * batches of different threads never interleave. */
#define LOG_BATCH_BYTES PIPE_BUF
static _Thread_local char log_batch[LOG_BATCH_BYTES];
static _Thread_local size_t log_batch_len;

void log_batch_flush(void)
{
    if (log_batch_len == 0)
        return;
    write_all(log_batch, log_batch_len);
    log_batch_len = 0;
}

bool log_fields_batched(enum log_level level, const char *msg, ...)
{
    struct log_line line;
    va_list ap;

    assert(level >= LOG_DEBUG && level <= LOG_ERROR && msg != NULL);
    if (level < log_min_level)
        return false;
    va_start(ap, msg);
    line_fields(&line, level, msg, ap);
    va_end(ap);
    line_close(&line, level, msg);
    if (line.len > LOG_BATCH_BYTES - log_batch_len)
        log_batch_flush(); /* full: the lines before this one go first */
    if (line.len > LOG_BATCH_BYTES) {
        write_all(line.buf, line.len); /* too long for any batch */
        return false;
    }
    bool was_empty = log_batch_len == 0;
    memcpy(log_batch + log_batch_len, line.buf, line.len);
    log_batch_len += line.len;
    return was_empty;
}
