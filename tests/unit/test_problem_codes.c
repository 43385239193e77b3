/* The error catalogue (services/ingest/problems.c) lists every problem code
 * the API can answer, and docs/errors.md lists the catalogue. The codes are
 * read from the sources as text: the string literals in calls that answer a
 * problem (req_fail, http_reply_problem, line_problem ...), `code = "..."`
 * assignments, the ledger's outcome_reject calls and its rules_*.c code
 * names. A self-check feeds the scanner a made-up code and expects it to be
 * reported. Run from the repository root (make test does). */
#include <ctype.h>
#include <glob.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../services/ingest/problems.h"

#define CODE_CHARS_MAX 64
#define FILE_BYTES_MAX (1024 * 1024)
#define ERRORS_PAGE    "docs/errors.md"

/* Functions whose arguments hold a problem code as a literal. */
static const char *const problem_calls[] = {"req_fail",
                                            "req_fail_retry_after",
                                            "http_reply_problem",
                                            "http_reply_problem_retry_after",
                                            "exchange_send_problem",
                                            "line_problem",
                                            "batch_fail",
                                            "batch_refuse",
                                            "reply_bad_credentials",
                                            "outcome_reject",
                                            NULL};

/* The whole file as a NUL-terminated string; caller frees. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *text = malloc(FILE_BYTES_MAX + 1);
    assert_non_null(text);
    size_t n = fread(text, 1, FILE_BYTES_MAX, f);
    assert_true(feof(f));
    fclose(f);
    text[n] = '\0';
    return text;
}

static bool is_code(const char *s, size_t len)
{
    if (len == 0 || len >= CODE_CHARS_MAX || !islower((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!islower((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

/* Reports a code the catalogue lacks; returns 1 for it, else 0. */
static int check_code(const char *where, const char *s, size_t len)
{
    char code[CODE_CHARS_MAX];
    snprintf(code, sizeof(code), "%.*s", (int)len, s);
    if (problems_find(code))
        return 0;
    fprintf(stderr, "# %s: problem code \"%s\" is not in the catalogue\n", where, code);
    return 1;
}

/* The code-like literals in a call's arguments (up to ';' or '{'). */
static int scan_call_arguments(const char *where, const char *args)
{
    int missing = 0;
    const char *end = args + strcspn(args, ";{");
    for (const char *p = args; p < end; p++) {
        if (*p != '"')
            continue;
        const char *close = strchr(p + 1, '"');
        if (!close || close > end)
            break;
        if (is_code(p + 1, (size_t)(close - p - 1)))
            missing += check_code(where, p + 1, (size_t)(close - p - 1));
        p = close;
    }
    return missing;
}

static int scan_calls(const char *where, const char *text)
{
    int missing = 0;
    for (size_t i = 0; problem_calls[i]; i++) {
        size_t len = strlen(problem_calls[i]);
        for (const char *p = strstr(text, problem_calls[i]); p;
             p = strstr(p + len, problem_calls[i]))
            if ((p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_')) && p[len] == '(')
                missing += scan_call_arguments(where, p + len + 1);
    }
    return missing;
}

/* Every first group of pattern's matches in text must be a known code. */
static int scan_pattern(const char *where, const char *text, const char *pattern)
{
    regex_t re;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED), 0);
    int missing = 0;
    regmatch_t m[2];
    for (const char *p = text; regexec(&re, p, 2, m, 0) == 0; p += m[0].rm_eo)
        missing += check_code(where, p + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so));
    regfree(&re);
    return missing;
}

static int scan_source(const char *where, const char *text, bool ledger_rules)
{
    int missing = scan_calls(where, text);
    missing += scan_pattern(where, text, "code = \"([a-z_]+)\"");
    missing += scan_pattern(where, text, "#define [A-Z_]+_CODE \"([a-z_]+)\"");
    if (ledger_rules) /* the rules_*_code() names, but "ok" and "unknown" */
        missing += scan_pattern(where, text, "return \"([a-z]+_[a-z_]+)\";");
    return missing;
}

static int scan_files(const char *pattern, bool ledger_rules)
{
    glob_t g;
    assert_int_equal(glob(pattern, 0, NULL, &g), 0);
    int missing = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char *text = read_text(g.gl_pathv[i]);
        missing += scan_source(g.gl_pathv[i], text, ledger_rules);
        free(text);
    }
    globfree(&g);
    return missing;
}

static void test_every_code_in_the_sources_is_catalogued(void **state)
{
    (void)state;
    int missing = scan_files("services/ingest/*.c", false);
    missing += scan_files("libs/http/*.c", false);
    missing += scan_files("services/ledger/*.c", false);
    missing += scan_files("services/ledger/*.h", false);
    missing += scan_files("services/ledger/rules*.c", true);
    assert_int_equal(missing, 0);
}

static void test_self_check_notices_an_unknown_code(void **state)
{
    (void)state;
    assert_int_equal(
        scan_source("made-up", "req_fail(r, 409, \"made_up_code\", \"a detail\");", false), 1);
    assert_int_equal(scan_source("made-up",
                                 "req_fail(r, 404, c ? \"coupon_not_found\" : \"not_listed\", d);"
                                 "line_problem(l, 1, \"coupon_used\", d);",
                                 false),
                     1);
    assert_int_equal(scan_source("made-up", "*code = \"made_up\";", false), 1);
    assert_int_equal(scan_source("made-up", "req_fail(r, 409, \"duplicate_phone\", d);", false), 0);
}

/* docs/errors.md has a row "| <a id="code"></a>`code` | status |" for every
 * code (the anchor is what a problem's type URL names), and no row for a
 * code the catalogue lacks. */
static void test_the_errors_page_lists_the_catalogue(void **state)
{
    (void)state;
    char *page = read_text(ERRORS_PAGE);
    int missing = 0;
    for (size_t i = 0; i < problem_code_count; i++) {
        char row[2 * CODE_CHARS_MAX + 48];
        snprintf(row, sizeof(row), "| <a id=\"%s\"></a>`%s` | %d |", problem_codes[i].code,
                 problem_codes[i].code, problem_codes[i].status);
        if (!strstr(page, row)) {
            fprintf(stderr, "# %s lacks the row %s\n", ERRORS_PAGE, row);
            missing++;
        }
    }
    missing += scan_pattern(ERRORS_PAGE, page, "\n\\| [^`|]*`([a-z_]+)` \\|");
    free(page);
    assert_int_equal(missing, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_in_the_sources_is_catalogued),
        cmocka_unit_test(test_self_check_notices_an_unknown_code),
        cmocka_unit_test(test_the_errors_page_lists_the_catalogue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
