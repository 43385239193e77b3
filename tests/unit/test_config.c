/* Unit tests for libs/config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "config/config.h"
#include "log/log.h"

static const char *dsn;
static const char *password;
static long long batch;
static bool idempotence;

static const struct config_entry entries[] = {
    {"T_DSN", CONFIG_STRING, &dsn, NULL, 0, 0, false, "PostgreSQL DSN"},
    {"T_PASSWORD", CONFIG_STRING, &password, "", 0, 0, true, "broker password"},
    {"T_BATCH", CONFIG_INT, &batch, "100", 1, 10000, false, "events per batch"},
    {"T_IDEMPOTENCE", CONFIG_BOOL, &idempotence, "true", 0, 0, false, "idempotent producer"},
};
#define COUNT (sizeof(entries) / sizeof(entries[0]))

static int reset_env(void **state)
{
    unsetenv("T_DSN");
    unsetenv("T_PASSWORD");
    unsetenv("T_BATCH");
    unsetenv("T_IDEMPOTENCE");
    setenv("T_DSN", "postgres://x", 1);
    return 0;
}

static void test_defaults_and_values(void **state)
{
    char err[256];
    assert_int_equal(config_load(entries, COUNT, err, sizeof(err)), 0);
    assert_string_equal(dsn, "postgres://x");
    assert_int_equal(batch, 100);
    assert_true(idempotence);
    setenv("T_BATCH", "-0", 1);
    assert_int_equal(config_load(entries, COUNT, err, sizeof(err)), -1);
    setenv("T_BATCH", "10000", 1);
    assert_int_equal(config_load(entries, COUNT, err, sizeof(err)), 0);
    assert_int_equal(batch, 10000);
}

static void test_missing_required(void **state)
{
    char err[256];
    unsetenv("T_DSN");
    assert_int_equal(config_load(entries, COUNT, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "T_DSN"));
    assert_non_null(strstr(err, "required"));
    setenv("T_DSN", "", 1); /* empty counts as missing for required */
    assert_int_equal(config_load(entries, COUNT, err, sizeof(err)), -1);
}

static void test_bool_words(void **state)
{
    static const char *const yes[] = {"1", "true", "yes", "on", "TRUE", "On"};
    static const char *const no[] = {"0", "false", "no", "off", "False", "OFF"};
    char err[256];
    for (size_t i = 0; i < 6; i++) {
        setenv("T_IDEMPOTENCE", yes[i], 1);
        assert_int_equal(config_load(entries, COUNT, err, sizeof(err)), 0);
        assert_true(idempotence);
        setenv("T_IDEMPOTENCE", no[i], 1);
        assert_int_equal(config_load(entries, COUNT, err, sizeof(err)), 0);
        assert_false(idempotence);
    }
    setenv("T_IDEMPOTENCE", "maybe", 1);
    assert_int_equal(config_load(entries, COUNT, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "T_IDEMPOTENCE"));
    assert_non_null(strstr(err, "maybe"));
}

static void test_int_strict(void **state)
{
    static const char *const bad[] = {
        "", " 5", "5 ", "5x", "0x10", "1e3", "99999999999999999999", "0", "10001", "+"};
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("T_BATCH", bad[i], 1);
        batch = 7;
        assert_int_equal(config_load(entries, COUNT, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "T_BATCH"));
        assert_int_equal(batch, 7);
    }
    setenv("T_BATCH", "+42", 1);
    assert_int_equal(config_load(entries, COUNT, err, sizeof(err)), 0);
    assert_int_equal(batch, 42);
}

static void test_secret_not_in_error(void **state)
{
    static const char *secret_int;
    static long long pin;
    const struct config_entry e[] = {
        {"T_PIN", CONFIG_INT, &pin, NULL, 0, 9999, true, "pin"},
    };
    char err[256];
    (void)secret_int;
    setenv("T_PIN", "hunter2", 1);
    assert_int_equal(config_load(e, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "T_PIN"));
    assert_null(strstr(err, "hunter2"));
    unsetenv("T_PIN");
}

static void test_help_aligned(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_print_help(f, "tessera-ledger", "Applies money commands.", entries, COUNT);
    fclose(f);
    assert_non_null(strstr(text, "usage: tessera-ledger"));
    assert_non_null(strstr(text, "[1..10000]"));
    assert_non_null(strstr(text, "required"));
    /* Help column starts at the same offset on every entry line. */
    const char *helps[] = {"PostgreSQL DSN", "broker password", "events per batch",
                           "idempotent producer"};
    long col = -1;
    for (size_t i = 0; i < COUNT; i++) {
        const char *h = strstr(text, helps[i]);
        assert_non_null(h);
        const char *line = h;
        while (line > text && line[-1] != '\n')
            line--;
        if (col < 0)
            col = h - line;
        assert_int_equal(h - line, col);
    }
    free(text);
}

static void test_log_effective_redacts(void **state)
{
    char err[256];
    int fds[2], saved;
    char buf[8192];
    setenv("T_PASSWORD", "s3cret", 1);
    assert_int_equal(config_load(entries, COUNT, err, sizeof(err)), 0);
    assert_int_equal(pipe(fds), 0);
    saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    log_init("test", LOG_INFO);
    config_log_effective(entries, COUNT);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    json_t *obj = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(obj);
    assert_string_equal(json_string_value(json_object_get(obj, "T_PASSWORD")), "***");
    assert_string_equal(json_string_value(json_object_get(obj, "T_DSN")), "postgres://x");
    assert_string_equal(json_string_value(json_object_get(obj, "T_BATCH")), "100");
    assert_string_equal(json_string_value(json_object_get(obj, "T_IDEMPOTENCE")), "true");
    assert_null(strstr(buf, "s3cret"));
    json_decref(obj);
}

static void test_wants_help(void **state)
{
    char *a[] = {"prog", "-x", "--help", NULL};
    char *b[] = {"prog", "-x", NULL};
    char *c[] = {"prog", "-h", NULL};
    assert_true(config_wants_help(3, a));
    assert_false(config_wants_help(2, b));
    assert_true(config_wants_help(2, c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_and_values, reset_env),
        cmocka_unit_test_setup(test_missing_required, reset_env),
        cmocka_unit_test_setup(test_bool_words, reset_env),
        cmocka_unit_test_setup(test_int_strict, reset_env),
        cmocka_unit_test_setup(test_secret_not_in_error, reset_env),
        cmocka_unit_test_setup(test_help_aligned, reset_env),
        cmocka_unit_test_setup(test_log_effective_redacts, reset_env),
        cmocka_unit_test(test_wants_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
