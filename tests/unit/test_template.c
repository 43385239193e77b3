/* Unit tests for libs/template (and the zone reader of libs/tz it uses):
 * validation, formatting and rendering from tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "template/template.h"
#include "tz/tz.h"

/* 2026-12-06T19:10:00Z */
#define T0_US INT64_C(1796584200000000)

struct validate_case {
    const char *kind, *text;
    bool ok;
    const char *bad_var; /* when !ok and the problem is a variable */
};

static void test_validate_table(void **state)
{
    static const struct validate_case cases[] = {
        {"receipt.top_up", "Hi {{member.name}}, {{amount}} in, {{balance.stored_value}} now", true,
         ""},
        {"receipt.top_up", "{{ member.name }} spaces allowed", true, ""},
        {"receipt.top_up", "no placeholders at all", true, ""},
        {"receipt.top_up", "literal {{{{ braces", true, ""},
        {"receipt.top_up", "{{member.nmae}}", false, "member.nmae"},
        {"receipt.top_up", "{{code}}", false, "code"}, /* login_code's, not this one's */
        {"login_code", "{{code}} {{expires_minutes}} {{tenant.name}}", true, ""},
        {"receipt.top_up", "{{amount", false, ""},
        {"receipt.top_up", "{{}}", false, ""},
        {"receipt.top_up", "{{Amount}}", false, ""},
        {"receipt.top_up", "{{a b}}", false, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct validate_case *c = &cases[i];
        const struct template_kind *kind = template_kind_find(c->kind);
        assert_non_null(kind);
        char bad[TEMPLATE_VAR_NAME_MAX + 1], err[TEMPLATE_ERR_MAX] = "";
        bool ok = template_validate(kind, c->text, bad, sizeof(bad), err, sizeof(err));
        if (ok != c->ok)
            fail_msg("case %zu \"%s\": ok=%d err=%s", i, c->text, ok, err);
        if (!c->ok) {
            assert_string_equal(bad, c->bad_var);
            assert_true(err[0] != '\0');
            if (c->bad_var[0])
                assert_non_null(strstr(err, c->bad_var));
        }
    }
}

static void test_catalogue_names_and_defaults(void **state)
{
    static const char *const names[] = {
        "login_code",      "receipt.top_up", "receipt.purchase",
        "receipt.refund",  "card.sold",      "card.used",
        "card.expiring",   "tier.changed",   "tier.downgrade_warning",
        "activity.reward", "streak.reward",  "referral.reward",
        "redemption.done", "coupon.issued",  "birthday.gift",
        "welcome"};
    assert_int_equal(template_kind_count, sizeof(names) / sizeof(names[0]));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct template_kind *kind = template_kind_find(names[i]);
        assert_non_null(kind);
        assert_true(kind->default_channels != 0);
        for (int l = 0; l < 2; l++) {
            const char *subject, *body;
            assert_true(template_default(names[i], l ? "zh-CN" : "en", &subject, &body));
            char err[TEMPLATE_ERR_MAX];
            if (!template_validate(kind, subject, NULL, 0, err, sizeof(err)) ||
                !template_validate(kind, body, NULL, 0, err, sizeof(err)))
                fail_msg("default %s/%d: %s", names[i], l, err);
        }
    }
    assert_null(template_kind_find("nope"));
    const char *s, *b;
    assert_false(template_default("nope", "en", &s, &b));
    assert_true(template_default("welcome", "fr", &s, &b)); /* other locales: en */
    assert_string_equal(s, "Welcome");
}

struct format_case {
    enum template_var_type type;
    int64_t number;
    const char *currency, *zone, *want;
};

static void test_format_table(void **state)
{
    static const struct format_case cases[] = {
        {TEMPLATE_MONEY, 12800, "CNY", NULL, "¥128.00"},
        {TEMPLATE_MONEY, 5, "", NULL, "¥0.05"}, /* default currency CNY */
        {TEMPLATE_MONEY, -150, "USD", NULL, "-$1.50"},
        {TEMPLATE_MONEY, 100000, "CHF", NULL, "1000.00 CHF"},
        {TEMPLATE_NUMBER, -42, NULL, NULL, "-42"},
        {TEMPLATE_TIME, T0_US, NULL, "Asia/Shanghai", "2026-12-07 03:10"},
        {TEMPLATE_TIME, T0_US, NULL, "UTC", "2026-12-06 19:10"},
        {TEMPLATE_TIME, T0_US, NULL, NULL, "2026-12-07 03:10"}, /* default zone */
        /* New York: EST (-5) in December, EDT (-4) in July. */
        {TEMPLATE_TIME, T0_US, NULL, "America/New_York", "2026-12-06 14:10"},
        {TEMPLATE_TIME, INT64_C(1783357800000000), NULL, "America/New_York", "2026-07-06 13:10"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct format_case *c = &cases[i];
        struct template_value v = {.name = "x", .type = c->type, .number = c->number};
        struct template_render_opts o = {.currency = c->currency, .time_zone = c->zone};
        char buf[64];
        assert_true(template_format_value(&v, &o, buf, sizeof(buf)) > 0);
        if (strcmp(buf, c->want) != 0)
            fail_msg("case %zu: got \"%s\" want \"%s\"", i, buf, c->want);
    }
    struct template_value v = {.name = "t", .type = TEMPLATE_TIME, .number = T0_US};
    struct template_render_opts bad = {.time_zone = "../etc/passwd"};
    char buf[64];
    assert_int_equal(template_format_value(&v, &bad, buf, sizeof(buf)), -1);
    assert_false(tz_zone_known("Mars/Olympus"));
    assert_true(tz_zone_known("Asia/Shanghai"));
}

static void test_render(void **state)
{
    const struct template_value values[] = {
        {.name = "member.name", .type = TEMPLATE_TEXT, .text = "Li <b>&'\""},
        {.name = "amount", .type = TEMPLATE_MONEY, .number = 12800},
        {.name = "time", .type = TEMPLATE_TIME, .number = T0_US},
    };
    const char *text = "{{member.name}}: {{ amount }} at {{time}}{{bonus}}.\n{{{{x";
    struct template_render_opts plain = {.currency = "CNY", .time_zone = "Asia/Shanghai"};
    char err[TEMPLATE_ERR_MAX];
    char *out = template_render(text, values, 3, &plain, err, sizeof(err));
    assert_non_null(out);
    assert_string_equal(out, "Li <b>&'\": ¥128.00 at 2026-12-07 03:10.\n{{x");
    free(out);

    struct template_render_opts html = plain;
    html.html = true;
    out = template_render("<p>{{member.name}}</p>\n{{amount}}", values, 3, &html, err, sizeof(err));
    assert_non_null(out);
    assert_string_equal(out, "&lt;p&gt;Li &lt;b&gt;&amp;&#39;&quot;&lt;/p&gt;<br>\n¥128.00");
    free(out);

    assert_null(template_render("{{amount", values, 3, &plain, err, sizeof(err)));
    assert_non_null(strstr(err, "unclosed"));
}

static void test_render_limit(void **state)
{
    size_t len = TEMPLATE_OUTPUT_MAX / 4;
    char *text = malloc(len + 1);
    memset(text, 'a', len);
    memcpy(text, "{{member.name}}", 15);
    text[len] = '\0';
    char *big = malloc(4000);
    memset(big, 'b', 3999);
    big[3999] = '\0';
    const struct template_value v = {.name = "member.name", .type = TEMPLATE_TEXT, .text = big};
    struct template_render_opts html = {.html = true};
    char err[TEMPLATE_ERR_MAX];
    char *out = template_render(text, &v, 1, &html, err, sizeof(err));
    assert_non_null(out); /* 16k + 4k fits */
    free(out);
    for (size_t i = 0; i + 15 < len; i += 16) /* now 1000 placeholders of 4 kB */
        memcpy(text + i, "{{member.name}} ", 16);
    assert_null(template_render(text, &v, 1, &html, err, sizeof(err)));
    assert_non_null(strstr(err, "longer"));
    free(text);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_table), cmocka_unit_test(test_catalogue_names_and_defaults),
        cmocka_unit_test(test_format_table),   cmocka_unit_test(test_render),
        cmocka_unit_test(test_render_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
