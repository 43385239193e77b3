/* Unit tests for the notification service's pure rules: the policy
 * decision and its order, quiet hours in the tenant's zone, back-off with
 * jitter, the classification of provider answers and the breaker, and the
 * cap counted inside one run of requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../services/notification/rules_cap.h"
#include "../../services/notification/rules_delivery.h"
#include "../../services/notification/rules_policy.h"

#define MIN_US INT64_C(60000000)
/* 2026-12-06T15:00:00Z = 23:00 in Shanghai */
#define NIGHT_US INT64_C(1796569200000000)

struct decide_case {
    struct policy_facts f;
    enum policy_status status;
    const char *rule;
};

static void test_decide_table(void **state)
{
    const int64_t now = NIGHT_US, quiet = NIGHT_US + 9 * 60 * MIN_US;
    /* a marketing SMS that may go, and variations of it */
    const struct policy_facts ok = {.marketing = true,
                                    .external = true,
                                    .provider = true,
                                    .address = true,
                                    .consent = true,
                                    .cap = 3,
                                    .now_us = now};
    struct decide_case cases[] = {
        {ok, POLICY_SEND, "consent"},
        {ok, POLICY_SUPPRESS, "expired"},
        {ok, POLICY_SUPPRESS, "no_provider"},
        {ok, POLICY_SUPPRESS, "no_address"},
        {ok, POLICY_SUPPRESS, "no_consent"},
        {ok, POLICY_SUPPRESS, "frequency_cap"},
        {ok, POLICY_HOLD, "quiet_hours"},
        {ok, POLICY_SEND, "transactional"}, /* transactional: no consent, cap or quiet hours */
        {ok, POLICY_SEND, "consent"},       /* the inbox is never held */
        {ok, POLICY_SEND, "consent"},       /* cap 0: none */
    };
    cases[1].f.expires_at_us = now;
    cases[2].f.provider = false;
    cases[3].f.address = false;
    cases[4].f.consent = false;
    cases[5].f.cap_used = 3;
    cases[6].f.quiet_until_us = quiet;
    cases[7].f = (struct policy_facts){.external = true,
                                       .provider = true,
                                       .address = true,
                                       .cap = 1,
                                       .cap_used = 5,
                                       .quiet_until_us = quiet,
                                       .now_us = now};
    cases[8].f.external = false, cases[8].f.provider = false, cases[8].f.quiet_until_us = quiet;
    cases[9].f.cap = 0, cases[9].f.cap_used = 100;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy_decision d = policy_decide(&cases[i].f);
        if (d.status != cases[i].status || strcmp(d.rule, cases[i].rule) != 0)
            fail_msg("case %zu: %d/%s, want %d/%s", i, d.status, d.rule, cases[i].status,
                     cases[i].rule);
        if (d.status == POLICY_HOLD)
            assert_int_equal(d.hold_until_us, quiet);
    }
}

struct quiet_case {
    const char *zone;
    int start, end;
    int64_t now_us, want_us; /* 0: not quiet */
};

static void test_quiet_hours_table(void **state)
{
    const int64_t eight_sh = NIGHT_US + 9 * 60 * MIN_US; /* 08:00 Shanghai next morning */
    const struct quiet_case cases[] = {
        {"Asia/Shanghai", 21 * 60, 8 * 60, NIGHT_US, eight_sh},
        {"Asia/Shanghai", 21 * 60, 8 * 60, NIGHT_US + 30 * 1000000, eight_sh}, /* in a minute */
        {"Asia/Shanghai", 21 * 60, 8 * 60, eight_sh - MIN_US, eight_sh},       /* 07:59 */
        {"Asia/Shanghai", 21 * 60, 8 * 60, eight_sh, 0},                       /* 08:00: over */
        {"Asia/Shanghai", 21 * 60, 8 * 60, NIGHT_US - 121 * MIN_US, 0},        /* 20:59 */
        {"Asia/Shanghai", 22 * 60, 23 * 60 + 30, NIGHT_US, NIGHT_US + 30 * MIN_US},
        {"UTC", 21 * 60, 8 * 60, NIGHT_US, 0}, /* 15:00 UTC */
        {"UTC", 14 * 60, 16 * 60, NIGHT_US, NIGHT_US + 60 * MIN_US},
        {"Asia/Shanghai", 8 * 60, 8 * 60, NIGHT_US, 0}, /* equal: no quiet hours */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct notify_policy p;
        policy_defaults(&p);
        snprintf(p.time_zone, sizeof(p.time_zone), "%s", cases[i].zone);
        p.quiet_start_minute = cases[i].start, p.quiet_end_minute = cases[i].end;
        int64_t got = policy_quiet_until(&p, cases[i].now_us);
        if (got != cases[i].want_us)
            fail_msg("case %zu: %lld, want %lld", i, (long long)got, (long long)cases[i].want_us);
    }
    struct notify_policy p;
    policy_defaults(&p);
    assert_true(policy_valid(&p));
    snprintf(p.time_zone, sizeof(p.time_zone), "Nowhere/Land");
    assert_false(policy_valid(&p));
    policy_defaults(&p);
    p.quiet_end_minute = 1440;
    assert_false(policy_valid(&p));
}

static void test_backoff_and_classes(void **state)
{
    /* 1 s doubling to a 10 s cap, equal jitter: [d/2, d] */
    assert_int_equal(delivery_backoff_ms(1, 1000, 10000, 0.0), 500);
    assert_int_equal(delivery_backoff_ms(1, 1000, 10000, 0.999999), 999);
    assert_int_equal(delivery_backoff_ms(2, 1000, 10000, 0.0), 1000);
    assert_int_equal(delivery_backoff_ms(3, 1000, 10000, 0.5), 3000);
    assert_int_equal(delivery_backoff_ms(10, 1000, 10000, 0.0), 5000);
    assert_int_equal(delivery_backoff_ms(60, 1000, 10000, 1.0), 9999); /* no overflow */
    assert_int_equal(delivery_classify_http(200), DELIVERY_OK);
    assert_int_equal(delivery_classify_http(204), DELIVERY_OK);
    assert_int_equal(delivery_classify_http(0), DELIVERY_TRANSIENT);
    assert_int_equal(delivery_classify_http(503), DELIVERY_TRANSIENT);
    assert_int_equal(delivery_classify_http(429), DELIVERY_TRANSIENT);
    assert_int_equal(delivery_classify_http(400), DELIVERY_PERMANENT);
    assert_int_equal(delivery_classify_http(404), DELIVERY_PERMANENT);
    assert_int_equal(delivery_classify_smtp(true, 250), DELIVERY_OK);
    assert_int_equal(delivery_classify_smtp(false, 451), DELIVERY_TRANSIENT);
    assert_int_equal(delivery_classify_smtp(false, 0), DELIVERY_TRANSIENT);
    assert_int_equal(delivery_classify_smtp(false, 550), DELIVERY_PERMANENT);
}

static void test_breaker(void **state)
{
    struct breaker b = {0};
    for (int i = 0; i < 2; i++) {
        assert_true(breaker_allows(&b, 0));
        breaker_record(&b, false, 0, 3, 1000);
    }
    assert_true(breaker_allows(&b, 0)); /* 2 failures: still closed */
    breaker_record(&b, false, 10, 3, 1000);
    assert_false(breaker_allows(&b, 500)); /* open until 1010 */
    assert_false(breaker_closed_or_due(&b, 1009));
    assert_true(breaker_closed_or_due(&b, 1010));
    assert_true(breaker_allows(&b, 1010));  /* the one probe */
    assert_false(breaker_allows(&b, 1011)); /* no second while it is out */
    breaker_record(&b, false, 1020, 3, 1000);
    assert_false(breaker_allows(&b, 1500)); /* the probe failed: open again */
    assert_true(breaker_allows(&b, 2020));
    breaker_record(&b, true, 2030, 3, 1000);
    assert_true(breaker_allows(&b, 2031)); /* closed */
    assert_int_equal(b.failures, 0);
}

/* A run's messages per member: counted per (tenant, member), never mixed
 * up between members or tenants, and full runs of distinct members fit. */
static void test_cap_tally(void **state)
{
    struct cap_tally t;
    assert_true(cap_tally_init(&t, 4));
    assert_int_equal(cap_tally_used(&t, "a", "m1"), 0);
    cap_tally_add(&t, "a", "m1");
    cap_tally_add(&t, "a", "m1");
    cap_tally_add(&t, "b", "m1");
    assert_int_equal(cap_tally_used(&t, "a", "m1"), 2);
    assert_int_equal(cap_tally_used(&t, "b", "m1"), 1);
    assert_int_equal(cap_tally_used(&t, "a", "m2"), 0);
    /* the pair's boundary is part of the key */
    cap_tally_add(&t, "ab", "c");
    assert_int_equal(cap_tally_used(&t, "a", "bc"), 0);
    assert_int_equal(cap_tally_used(&t, "ab", "c"), 1);
    cap_tally_free(&t);

    enum { RUN = 1000 };
    static char ids[RUN][16];
    assert_true(cap_tally_init(&t, RUN));
    for (int i = 0; i < RUN; i++) {
        snprintf(ids[i], sizeof(ids[i]), "m%d", i);
        cap_tally_add(&t, "t", ids[i]);
    }
    cap_tally_add(&t, "t", ids[RUN - 1]);
    for (int i = 0; i < RUN; i++)
        assert_int_equal(cap_tally_used(&t, "t", ids[i]), i == RUN - 1 ? 2 : 1);
    cap_tally_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_table),        cmocka_unit_test(test_quiet_hours_table),
        cmocka_unit_test(test_backoff_and_classes), cmocka_unit_test(test_breaker),
        cmocka_unit_test(test_cap_tally),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
