/* Unit tests for libs/log: stderr is swapped for a pipe and each captured
 * line is parsed with jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log/log.h"

#define CAPTURE_MAX_BYTES (256 * 1024)

static int saved_stderr = -1;
static int pipe_fds[2];

static void capture_begin(void)
{
    assert_int_equal(pipe(pipe_fds), 0);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(pipe_fds[1], STDERR_FILENO) >= 0);
    close(pipe_fds[1]);
}

/* Restores stderr and returns what was written (caller frees). The pipe's
 * write end is closed, so read() ends at EOF: no waiting on time. */
static char *capture_end(void)
{
    static char buf[CAPTURE_MAX_BYTES];
    size_t len = 0;
    assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
    close(saved_stderr);
    for (;;) {
        ssize_t n = read(pipe_fds[0], buf + len, sizeof(buf) - 1 - len);
        assert_true(n >= 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(pipe_fds[0]);
    buf[len] = '\0';
    return strdup(buf);
}

static json_t *parse_line(const char *text)
{
    json_error_t err;
    size_t len = strlen(text);
    assert_true(len > 0 && text[len - 1] == '\n');
    assert_null(memchr(text, '\n', len - 1)); /* exactly one line */
    json_t *obj = json_loadb(text, len, 0, &err);
    if (obj == NULL)
        fail_msg("not JSON: %s (%s)", err.text, text);
    return obj;
}

static void test_line_shape_and_escaping(void **state)
{
    log_init("ledger", LOG_DEBUG);
    capture_begin();
    log_info("quote \" backslash \\ newline \n tab \t bell \a nul-free \x01 end %d", 7);
    char *out = capture_end();
    assert_non_null(strstr(out, "\\u0007")); /* control chars as \u00XX */
    assert_non_null(strstr(out, "\\u0001"));
    json_t *obj = parse_line(out);
    assert_string_equal(json_string_value(json_object_get(obj, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(obj, "service")), "ledger");
    assert_string_equal(json_string_value(json_object_get(obj, "msg")),
                        "quote \" backslash \\ newline \n tab \t bell \a nul-free \x01 end 7");
    const char *ts = json_string_value(json_object_get(obj, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), strlen("2026-11-23T05:00:00.123Z"));
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    json_decref(obj);
    free(out);
}

/* Replicas of one service are told apart by the instance field; it is
 * left out until set. */
static void test_instance_field(void **state)
{
    log_init("ledger", LOG_INFO);
    log_set_instance("ledger-2");
    capture_begin();
    log_info("with instance");
    char *out = capture_end();
    json_t *obj = parse_line(out);
    assert_string_equal(json_string_value(json_object_get(obj, "instance")), "ledger-2");
    json_decref(obj);
    free(out);

    log_set_instance("");
    capture_begin();
    log_info("without instance");
    out = capture_end();
    obj = parse_line(out);
    assert_null(json_object_get(obj, "instance"));
    json_decref(obj);
    free(out);
}

static void test_fields_and_level_filter(void **state)
{
    log_init("ingest", LOG_WARN);
    capture_begin();
    log_info("hidden");
    log_fields(LOG_WARN, "consumer assigned", "topic", "tessera.\"events\"", "partition", "3",
               NULL);
    char *out = capture_end();
    json_t *obj = parse_line(out); /* one line only: info was filtered */
    assert_string_equal(json_string_value(json_object_get(obj, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(obj, "msg")), "consumer assigned");
    assert_string_equal(json_string_value(json_object_get(obj, "topic")), "tessera.\"events\"");
    assert_string_equal(json_string_value(json_object_get(obj, "partition")), "3");
    json_decref(obj);
    free(out);
}

static void test_truncation_and_bad_utf8(void **state)
{
    size_t big = 10000;
    char *msg = malloc(big + 1);
    memset(msg, 'x', big);
    msg[big] = '\0';
    msg[0] = (char)0xff; /* invalid UTF-8 must still give valid JSON */
    log_init("ledger", LOG_DEBUG);
    capture_begin();
    log_error("%s", msg);
    log_write(LOG_INFO, "%s", "\xe4\xb8\xad\xe6\x96\x87"); /* valid UTF-8 kept */
    char *out = capture_end();
    char *second = strchr(out, '\n') + 1;
    char first[CAPTURE_MAX_BYTES];
    memcpy(first, out, (size_t)(second - out));
    first[second - out] = '\0';
    json_t *obj = parse_line(first);
    const char *text = json_string_value(json_object_get(obj, "msg"));
    assert_true(strlen(text) < big);
    assert_non_null(strstr(text, "...[truncated]"));
    assert_true(strncmp(text, "\xef\xbf\xbd", 3) == 0); /* U+FFFD */
    json_decref(obj);
    obj = parse_line(second);
    assert_string_equal(json_string_value(json_object_get(obj, "msg")), "\xe4\xb8\xad\xe6\x96\x87");
    json_decref(obj);
    free(out);
    free(msg);
}

/* What the pipe holds now, without waiting (the write end stays open). */
static size_t pipe_pending(char *buf, size_t cap)
{
    int flags = fcntl(pipe_fds[0], F_GETFL);
    assert_int_equal(fcntl(pipe_fds[0], F_SETFL, flags | O_NONBLOCK), 0);
    ssize_t n = read(pipe_fds[0], buf, cap - 1);
    assert_int_equal(fcntl(pipe_fds[0], F_SETFL, flags), 0);
    size_t len = n > 0 ? (size_t)n : 0;
    buf[len] = '\0';
    return len;
}

/* Batched lines wait for log_batch_flush; a full batch writes itself
 * first, whole lines at most PIPE_BUF at a time; a filtered line is not
 * batched. */
static void test_batched_lines(void **state)
{
    static char pending[CAPTURE_MAX_BYTES];
    log_init("ingest", LOG_INFO);
    capture_begin();
    assert_false(log_fields_batched(LOG_DEBUG, "filtered", NULL));
    assert_true(log_fields_batched(LOG_INFO, "http request", "status", "200", NULL));
    assert_false(log_fields_batched(LOG_INFO, "http request", "status", "404", NULL));
    assert_int_equal(pipe_pending(pending, sizeof(pending)), 0);
    log_batch_flush();
    assert_true(pipe_pending(pending, sizeof(pending)) > 0);
    char *second = strchr(pending, '\n') + 1;
    assert_non_null(strstr(pending, "\"200\""));
    json_decref(parse_line(second));
    assert_non_null(strstr(second, "\"404\""));

    char value[300];
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    size_t firsts = 0;
    for (int i = 0; i < 40; i++)
        firsts += log_fields_batched(LOG_INFO, "http request", "value", value, NULL);
    size_t early = pipe_pending(pending, sizeof(pending));
    assert_true(early > 0 && pending[early - 1] == '\n'); /* whole lines */
    /* 40 lines of over 300 bytes: a new batch at least every 4096 bytes */
    assert_true(firsts >= 40 * 300 / 4096);
    log_batch_flush();
    char *out = capture_end();
    size_t lines = 0;
    for (const char *p = pending; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    assert_int_equal(lines, 40);
    free(out);
}

static void test_level_parse(void **state)
{
    enum log_level lv = LOG_ERROR;
    assert_true(log_level_parse("debug", &lv));
    assert_int_equal(lv, LOG_DEBUG);
    assert_true(log_level_parse("warn", &lv));
    assert_int_equal(lv, LOG_WARN);
    assert_false(log_level_parse("verbose", &lv));
    assert_false(log_level_parse("INFO ", &lv));
    assert_false(log_level_parse(NULL, &lv));
}

/* The timestamp, formatted once a second and its milliseconds appended
 * (log.c), is what strftime and snprintf wrote for the same instant: in
 * one second, across seconds, days and years, and back in time. */
static void test_timestamp_as_strftime(void **state)
{
    const time_t seconds[] = {0,          1,          59,         60,          86399,
                              86400,      951782400,  1798761599, 1798761600,  1798761600,
                              1798761599, 2147483647, 4102444800, 253402300799};
    const long nanos[] = {0, 999999, 1000000, 123456789, 999000000, 999999999};
    for (size_t i = 0; i < sizeof(seconds) / sizeof(seconds[0]); i++)
        for (size_t j = 0; j < sizeof(nanos) / sizeof(nanos[0]); j++) {
            struct timespec now = {.tv_sec = seconds[i], .tv_nsec = nanos[j]};
            struct tm tm;
            char want[LOG_TS_MAX], got[LOG_TS_MAX];
            gmtime_r(&now.tv_sec, &tm);
            size_t n = strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
            snprintf(want + n, sizeof(want) - n, ".%03ldZ", now.tv_nsec / 1000000L);
            assert_int_equal(log_format_ts(&now, got), strlen(want));
            assert_string_equal(got, want);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_shape_and_escaping),
        cmocka_unit_test(test_fields_and_level_filter),
        cmocka_unit_test(test_instance_field),
        cmocka_unit_test(test_truncation_and_bad_utf8),
        cmocka_unit_test(test_batched_lines),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_timestamp_as_strftime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
