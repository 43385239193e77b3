/* The ledger's card rules from tables of cases: validity, the daily limit
 * in the tenant's time zone, freeze bounds, prepaid caps, fraud signals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../services/ledger/rules_cards.h"

#define S   1000000LL /* one second in microseconds */
#define DAY CARD_US_PER_DAY
/* 2026-01-01T00:00:00Z */
#define T0       (1767225600LL * S)
#define SHANGHAI (8 * 3600)

static void test_local_day(void **state)
{
    static const struct {
        int64_t at_us;
        int32_t offset_s;
        int64_t day;
    } cases[] = {
        {0, 0, 0},
        {-1, 0, -1}, /* floors before the epoch */
        {T0, 0, 20454},
        {T0 - 1, 0, 20453},
        /* 16:00Z is midnight in Shanghai: the next local day starts */
        {T0 + 16 * 3600 * S - 1, SHANGHAI, 20454},
        {T0 + 16 * 3600 * S, SHANGHAI, 20455},
        /* 23:30 the evening before in UTC is already the 1st in Shanghai */
        {T0 - 30 * 60 * S, SHANGHAI, 20454},
        {T0 + 4 * 3600 * S, -5 * 3600, 20453}, /* New York: still Dec 31 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(rules_local_day(cases[i].at_us, cases[i].offset_s), cases[i].day);
}

static const struct card_terms ten_uses = {.kind = CARD_COUNT, .uses = 10, .validity_days = 90};
static const struct card_terms month = {
    .kind = CARD_TIME, .validity_days = 30, .freeze_days_max = 14};

static void test_issue_and_validity(void **state)
{
    struct card_limits lim = card_limits_default();
    struct card_state c;
    assert_int_equal(rules_card_issue(&ten_uses, T0, &c), CARD_OK);
    assert_int_equal(c.uses_left, 10);
    assert_int_equal(c.valid_to_us, T0 + 90 * DAY);
    static const struct {
        int64_t at_us;
        bool branch_ok;
        enum card_result want;
    } cases[] = {
        {T0 - 1, true, CARD_EXPIRED}, /* before it was sold */
        {T0, true, CARD_OK},
        {T0 + 90 * DAY - 1, true, CARD_OK}, /* the last microsecond */
        {T0 + 90 * DAY, true, CARD_EXPIRED},
        {T0 + DAY, false, CARD_NOT_VALID_HERE},
        {T0 + 100 * DAY, false, CARD_EXPIRED}, /* expiry wins over branch */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct card_state one = c;
        assert_int_equal(rules_card_use(&lim, &one, cases[i].at_us, 0, cases[i].branch_ok),
                         cases[i].want);
        assert_int_equal(one.uses_left, cases[i].want == CARD_OK ? 9 : 10);
    }
}

static void test_uses_run_out(void **state)
{
    struct card_limits lim = card_limits_default();
    struct card_terms two = {.kind = CARD_COUNT, .uses = 2, .validity_days = 30};
    struct card_state c;
    assert_int_equal(rules_card_issue(&two, T0, &c), CARD_OK);
    assert_int_equal(rules_card_use(&lim, &c, T0 + 1 * DAY, 0, true), CARD_OK);
    assert_int_equal(rules_card_use(&lim, &c, T0 + 2 * DAY, 0, true), CARD_OK);
    assert_int_equal(rules_card_use(&lim, &c, T0 + 3 * DAY, 0, true), CARD_NO_USES_LEFT);
    assert_int_equal(c.uses_left, 0);
    /* a renewal adds the product's uses and extends from valid_to */
    assert_int_equal(rules_card_renew(&c, &two, T0 + 3 * DAY), CARD_OK);
    assert_int_equal(c.uses_left, 2);
    assert_int_equal(c.valid_to_us, T0 + 60 * DAY);
    /* renewing a lapsed card starts from now */
    assert_int_equal(rules_card_renew(&c, &two, T0 + 100 * DAY), CARD_OK);
    assert_int_equal(c.valid_to_us, T0 + 130 * DAY);
    assert_int_equal(rules_card_renew(&c, &month, T0), CARD_INVALID); /* other kind */
}

/* K uses per local day: the fourth is refused until local midnight, which
 * in Shanghai is 16:00 UTC. */
static void test_daily_limit_in_time_zone(void **state)
{
    struct card_limits lim = card_limits_default();
    struct card_state c;
    assert_int_equal(rules_card_issue(&ten_uses, T0, &c), CARD_OK);
    int64_t morning = T0 + 2 * 3600 * S; /* 10:00 in Shanghai */
    static const struct {
        int64_t after_s;
        enum card_result want;
    } cases[] = {
        {0, CARD_OK},
        {3600, CARD_OK},
        {7200, CARD_OK},
        {10800, CARD_DAILY_LIMIT_REACHED},
        {14 * 3600 - 1, CARD_DAILY_LIMIT_REACHED}, /* 23:59:59 local */
        {14 * 3600, CARD_OK},                      /* 00:00 local, next day */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(rules_card_use(&lim, &c, morning + cases[i].after_s * S, SHANGHAI, true),
                         cases[i].want);
    assert_int_equal(c.uses_left, 6);
    assert_int_equal(c.uses_on_day, 1);
    lim.daily_uses_max = 1;
    assert_int_equal(rules_card_use(&lim, &c, morning + 15 * 3600 * S, SHANGHAI, true),
                     CARD_DAILY_LIMIT_REACHED);
}

static void test_freeze_bounds(void **state)
{
    struct card_limits lim = card_limits_default();
    struct card_state c;
    assert_int_equal(rules_card_issue(&month, T0, &c), CARD_OK);
    static const struct {
        int64_t days, at_day;
        enum card_result want;
        int64_t valid_to_day, left;
    } cases[] = {
        {0, 1, CARD_INVALID, 30, 14},
        {-3, 1, CARD_INVALID, 30, 14},
        {15, 1, CARD_FREEZE_EXCEEDS_ALLOWANCE, 30, 14},
        {10, 1, CARD_OK, 40, 4}, /* frozen days 1..11 */
        {4, 2, CARD_OK, 44, 0},  /* stacks: frozen until day 15 */
        {1, 3, CARD_FREEZE_EXCEEDS_ALLOWANCE, 44, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(rules_card_freeze(&c, cases[i].days, T0 + cases[i].at_day * DAY),
                         cases[i].want);
        assert_int_equal(c.valid_to_us, T0 + cases[i].valid_to_day * DAY);
        assert_int_equal(c.freeze_days_left, cases[i].left);
    }
    assert_int_equal(c.frozen_until_us, T0 + 15 * DAY);
    assert_int_equal(rules_card_use(&lim, &c, T0 + 15 * DAY - 1, 0, true), CARD_FROZEN);
    assert_int_equal(rules_card_use(&lim, &c, T0 + 15 * DAY, 0, true), CARD_OK);
    assert_int_equal(rules_card_use(&lim, &c, T0 + 44 * DAY, 0, true), CARD_EXPIRED);
    struct card_state count;
    assert_int_equal(rules_card_issue(&ten_uses, T0, &count), CARD_OK);
    assert_int_equal(rules_card_freeze(&count, 1, T0), CARD_FREEZE_NOT_ALLOWED);
    assert_int_equal(rules_card_freeze(&c, 1, T0 + 50 * DAY), CARD_EXPIRED);
}

static void test_prepaid_caps(void **state)
{
    struct card_limits lim = card_limits_default();
    struct card_terms t60 = {.kind = CARD_COUNT, .uses = 60, .validity_days = 365};
    struct card_terms t61 = {.kind = CARD_COUNT, .uses = 61, .validity_days = 30};
    struct card_terms quarter = {.kind = CARD_TIME, .validity_days = 92};
    struct card_terms year = {.kind = CARD_SUBSCRIPTION, .validity_days = 365};
    /* no cap by default */
    assert_int_equal(rules_card_check_cap(&lim, &t61), CARD_OK);
    assert_int_equal(rules_card_check_cap(&lim, &year), CARD_OK);
    lim.prepaid_uses_max = 60;
    lim.prepaid_days_max = 92;
    assert_int_equal(rules_card_check_cap(&lim, &t60), CARD_OK);
    assert_int_equal(rules_card_check_cap(&lim, &t61), CARD_PREPAID_CAP_EXCEEDED);
    assert_int_equal(rules_card_check_cap(&lim, &quarter), CARD_OK);
    assert_int_equal(rules_card_check_cap(&lim, &year), CARD_PREPAID_CAP_EXCEEDED);
}

/* Issue 10 item 11: a renewal is held against the cap with what the card
 * still holds, so two sales at the cap cannot stack into twice the cap. */
static void test_prepaid_caps_after_renewal(void **state)
{
    struct card_limits lim = card_limits_default();
    struct card_terms t40 = {.kind = CARD_COUNT, .uses = 40, .validity_days = 365};
    struct card_terms quarter = {.kind = CARD_TIME, .validity_days = 46};
    struct card_state count, time;
    assert_int_equal(rules_card_issue(&t40, T0, &count), CARD_OK);
    assert_int_equal(rules_card_issue(&quarter, T0, &time), CARD_OK);
    assert_int_equal(rules_card_renew(&count, &t40, T0), CARD_OK);
    assert_int_equal(rules_card_renew(&time, &quarter, T0), CARD_OK);
    /* no cap by default */
    assert_int_equal(rules_card_check_cap_held(&lim, &count, T0), CARD_OK);
    assert_int_equal(rules_card_check_cap_held(&lim, &time, T0), CARD_OK);
    lim.prepaid_uses_max = 60;
    lim.prepaid_days_max = 92;
    /* 80 uses held */
    assert_int_equal(rules_card_check_cap_held(&lim, &count, T0), CARD_PREPAID_CAP_EXCEEDED);
    count.uses_left = 60;
    assert_int_equal(rules_card_check_cap_held(&lim, &count, T0), CARD_OK);
    /* 92 days held exactly: at the cap; a second later there is less */
    assert_int_equal(rules_card_check_cap_held(&lim, &time, T0), CARD_OK);
    assert_int_equal(rules_card_renew(&time, &quarter, T0 + 45 * DAY), CARD_OK);
    assert_int_equal(rules_card_check_cap_held(&lim, &time, T0 + 45 * DAY),
                     CARD_PREPAID_CAP_EXCEEDED); /* 93 days ahead */
    assert_int_equal(rules_card_check_cap_held(&lim, &time, T0 + 46 * DAY), CARD_OK);
    /* a lapsed card holds nothing */
    assert_int_equal(rules_card_check_cap_held(&lim, &time, T0 + 1000 * DAY), CARD_OK);
}

static void test_fraud_signals(void **state)
{
    struct card_limits lim = card_limits_default();
    lim.daily_uses_max = 10;
    struct card_state c;
    assert_int_equal(rules_card_issue(&ten_uses, T0, &c), CARD_OK);
    int64_t n = 0;
    assert_int_equal(rules_card_use(&lim, &c, T0 + 60 * S, 0, true), CARD_OK);
    assert_int_equal(rules_card_fraud(&lim, &c, T0 + 60 * S, false, 0, &n), CARD_FRAUD_NONE);
    assert_int_equal(rules_card_use(&lim, &c, T0 + 120 * S, 0, true), CARD_OK);
    assert_int_equal(rules_card_fraud(&lim, &c, T0 + 120 * S, false, T0 + 60 * S, &n),
                     CARD_FRAUD_NONE);
    assert_int_equal(n, 2);
    assert_int_equal(rules_card_use(&lim, &c, T0 + 180 * S, 0, true), CARD_OK);
    assert_int_equal(rules_card_fraud(&lim, &c, T0 + 180 * S, false, T0 + 120 * S, &n),
                     CARD_FRAUD_BURST);
    assert_int_equal(n, 3);
    /* an hour later one use is no burst; another branch 20 minutes after
     * the last use is */
    int64_t later = T0 + 3600 * S;
    assert_int_equal(rules_card_use(&lim, &c, later, 0, true), CARD_OK);
    assert_int_equal(rules_card_fraud(&lim, &c, later, true, T0 + 180 * S, &n), CARD_FRAUD_NONE);
    assert_int_equal(rules_card_use(&lim, &c, later + 1200 * S, 0, true), CARD_OK);
    assert_int_equal(rules_card_fraud(&lim, &c, later + 1200 * S, true, later, &n),
                     CARD_FRAUD_DISTANT_BRANCHES);
    assert_int_equal(rules_card_fraud(&lim, &c, later + 1200 * S, false, later, &n),
                     CARD_FRAUD_NONE);
    /* only the newest uses are kept */
    for (int i = 0; i < 20; i++)
        assert_int_equal(rules_card_use(&lim, &c, T0 + (i + 2) * DAY, 0, true),
                         i < 5 ? CARD_OK : CARD_NO_USES_LEFT);
    assert_true(c.recent_count <= CARD_RECENT_USES_MAX);
    assert_int_equal(c.recent_uses_us[c.recent_count - 1], T0 + 6 * DAY);
}

static void test_coupon_redeem(void **state)
{
    struct coupon_state ten = {
        .kind = COUPON_VALUE, .value = 1000, .valid_from_us = T0, .valid_to_us = T0 + 30 * DAY};
    struct coupon_state pct = {.kind = COUPON_PERCENT,
                               .percent_bp = 1500,
                               .valid_from_us = T0,
                               .valid_to_us = T0 + 30 * DAY};
    static const struct {
        int pct;
        int64_t amount, at_day;
        bool redeemed;
        enum card_result want;
        int64_t discount;
    } cases[] = {
        {0, 5000, 1, false, CARD_OK, 1000},
        {0, 0, 1, false, CARD_OK, 1000},  /* alone, without a bill */
        {0, 600, 1, false, CARD_OK, 600}, /* never more than the bill */
        {0, 5000, 30, false, CARD_COUPON_EXPIRED, 0},
        {0, 5000, 1, true, CARD_COUPON_USED, 0},
        {0, 5000, 40, true, CARD_COUPON_USED, 0}, /* used wins over expired */
        {1, 10000, 1, false, CARD_OK, 1500},
        {1, 999, 1, false, CARD_OK, 149},  /* 149.85 rounds down */
        {1, 0, 1, false, CARD_INVALID, 0}, /* a percentage needs a bill */
        {1, INT64_MAX, 1, false, CARD_OK,
         INT64_MAX / 10000 * 1500 + (INT64_MAX % 10000) * 1500 / 10000},
        {0, -1, 1, false, CARD_INVALID, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct coupon_state c = cases[i].pct ? pct : ten;
        c.redeemed = cases[i].redeemed;
        int64_t discount = 0;
        assert_int_equal(
            rules_coupon_redeem(&c, cases[i].amount, T0 + cases[i].at_day * DAY, &discount),
            cases[i].want);
        assert_int_equal(discount, cases[i].discount);
    }
    assert_int_equal(rules_coupon_kind("percent"), COUPON_PERCENT);
    assert_int_equal(rules_coupon_kind("free"), COUPON_KIND_UNKNOWN);
    assert_string_equal(rules_card_code(CARD_COUPON_USED), "coupon_used");
    assert_string_equal(rules_card_code(CARD_COUPON_EXPIRED), "coupon_expired");
}

/* Minimum spend and the free item (coupon templates, issue 12). */
static void test_coupon_terms(void **state)
{
    static const struct {
        enum coupon_kind kind;
        int64_t min_spend, item_price, amount;
        enum card_result want;
        int64_t discount;
    } cases[] = {
        {COUPON_VALUE, 10000, 0, 10000, CARD_OK, 1000}, /* exactly the minimum */
        {COUPON_VALUE, 10000, 0, 9999, CARD_COUPON_MIN_SPEND, 0},
        {COUPON_VALUE, 10000, 0, 0, CARD_COUPON_MIN_SPEND, 0}, /* no bill is under it */
        {COUPON_FREE_ITEM, 0, 1800, 5000, CARD_OK, 1800},
        {COUPON_FREE_ITEM, 0, 1800, 1000, CARD_OK, 1000}, /* never more than the bill */
        {COUPON_FREE_ITEM, 0, 0, 5000, CARD_COUPON_NOT_APPLICABLE, 0}, /* item not bought */
        {COUPON_FREE_ITEM, 0, 0, 0, CARD_OK, 0},                       /* handed over alone */
        {COUPON_FREE_ITEM, 3000, 1800, 2999, CARD_COUPON_MIN_SPEND, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct coupon_state c = {.kind = cases[i].kind,
                                 .value = 1000,
                                 .min_spend = cases[i].min_spend,
                                 .free_item_price = cases[i].item_price,
                                 .valid_from_us = T0,
                                 .valid_to_us = T0 + DAY};
        int64_t discount = 0;
        assert_int_equal(rules_coupon_redeem(&c, cases[i].amount, T0 + 1, &discount),
                         cases[i].want);
        assert_int_equal(discount, cases[i].discount);
    }
    assert_int_equal(rules_coupon_kind("free_item"), COUPON_FREE_ITEM);
    assert_string_equal(rules_card_code(CARD_COUPON_MIN_SPEND), "coupon_min_spend_not_met");
}

static void test_discount_card(void **state)
{
    struct card_terms year = {.kind = CARD_DISCOUNT, .validity_days = 365};
    struct card_state c;
    assert_int_equal(rules_card_issue(&year, T0, &c), CARD_OK);
    static const struct {
        int64_t amount, at_day, bp;
        bool branch_ok;
        enum card_result want;
        int64_t discount;
    } cases[] = {
        {10000, 1, 8000, true, CARD_OK, 2000},
        {999, 1, 8000, true, CARD_OK, 200}, /* pays 799.2 -> 799 */
        {1, 1, 8000, true, CARD_OK, 1},     /* pays 0.8 -> 0 */
        {10000, 1, 10000, true, CARD_OK, 0},
        {10000, 365, 8000, true, CARD_EXPIRED, 0},
        {10000, 1, 8000, false, CARD_NOT_VALID_HERE, 0},
        {0, 1, 8000, true, CARD_INVALID, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t discount = 0;
        assert_int_equal(rules_card_discount(&c, cases[i].bp, cases[i].amount,
                                             T0 + cases[i].at_day * DAY, cases[i].branch_ok,
                                             &discount),
                         cases[i].want);
        assert_int_equal(discount, cases[i].discount);
    }
    struct card_state count;
    assert_int_equal(rules_card_issue(&ten_uses, T0, &count), CARD_OK);
    int64_t d = 0;
    assert_int_equal(rules_card_discount(&count, 8000, 100, T0, true, &d),
                     CARD_NOT_A_DISCOUNT_CARD);
    struct card_limits lim = card_limits_default();
    assert_int_equal(rules_card_use(&lim, &c, T0 + DAY, 0, true), CARD_NOT_USABLE);
    c.frozen_until_us = T0 + 2 * DAY;
    assert_int_equal(rules_card_discount(&c, 8000, 100, T0 + DAY, true, &d), CARD_FROZEN);
}

/* Issue 12: days given as a reward go to a time card or subscription
 * still valid (frozen too), move valid_to only, and a refusal changes
 * nothing. */
static void test_extend_days(void **state)
{
    struct card_state c;
    assert_int_equal(rules_card_issue(&month, T0, &c), CARD_OK);
    static const struct {
        int64_t days, at_day;
        enum card_result r;
        int64_t to_day; /* valid_to after, in days from T0 */
    } cases[] = {
        {7, 0, CARD_OK, 37},       /* 30 + 7 */
        {1, 36, CARD_OK, 38},      /* the last valid day still counts */
        {0, 1, CARD_INVALID, 38},  /* no days */
        {-3, 1, CARD_INVALID, 38}, /* no negative days */
        {CARD_VALIDITY_DAYS_MAX + 1, 1, CARD_INVALID, 38},
        {5, 38, CARD_NO_ACTIVE_CARD, 38}, /* over at valid_to */
        {5, 60, CARD_NO_ACTIVE_CARD, 38},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t freeze_left = c.freeze_days_left;
        assert_int_equal(rules_card_extend(&c, cases[i].days, T0 + cases[i].at_day * DAY),
                         cases[i].r);
        assert_true(c.valid_to_us == T0 + cases[i].to_day * DAY);
        assert_int_equal(c.freeze_days_left, freeze_left);
    }
    struct card_state frozen;
    assert_int_equal(rules_card_issue(&month, T0, &frozen), CARD_OK);
    assert_int_equal(rules_card_freeze(&frozen, 3, T0), CARD_OK);
    assert_int_equal(rules_card_extend(&frozen, 2, T0 + DAY), CARD_OK);
    assert_true(frozen.valid_to_us == T0 + 35 * DAY);
    struct card_state count;
    assert_int_equal(rules_card_issue(&ten_uses, T0, &count), CARD_OK);
    struct card_state before = count;
    assert_int_equal(rules_card_extend(&count, 5, T0), CARD_NO_ACTIVE_CARD);
    assert_memory_equal(&count, &before, sizeof(count));
    c.valid_to_us = INT64_MAX - DAY;
    before = c;
    assert_int_equal(rules_card_extend(&c, 2, T0), CARD_VALIDITY_OVERFLOW);
    assert_memory_equal(&c, &before, sizeof(c));
}

static void test_codes_and_kinds_are_stable(void **state)
{
    static const struct {
        enum card_result r;
        const char *code;
    } cases[] = {
        {CARD_EXPIRED, "card_expired"},
        {CARD_FROZEN, "card_frozen"},
        {CARD_NO_USES_LEFT, "no_uses_left"},
        {CARD_DAILY_LIMIT_REACHED, "daily_limit_reached"},
        {CARD_NOT_VALID_HERE, "card_not_valid_here"},
        {CARD_FREEZE_EXCEEDS_ALLOWANCE, "freeze_exceeds_allowance"},
        {CARD_PREPAID_CAP_EXCEEDED, "prepaid_cap_exceeded"},
        {CARD_NO_ACTIVE_CARD, "no_active_card"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(rules_card_code(cases[i].r), cases[i].code);
    assert_int_equal(rules_card_kind("count"), CARD_COUNT);
    assert_int_equal(rules_card_kind("subscription"), CARD_SUBSCRIPTION);
    assert_int_equal(rules_card_kind("gift"), CARD_KIND_UNKNOWN);
    assert_int_equal(rules_card_kind(NULL), CARD_KIND_UNKNOWN);
    assert_string_equal(rules_card_kind_name(CARD_TIME), "time");
}

/* Issue 10 item 2: a renewal, sale or freeze whose end would pass what an
 * int64 holds is refused with validity_overflow and changes nothing (it
 * used to wrap in C or fail the batch in PostgreSQL). */
static void test_validity_overflow_refused(void **state)
{
    struct card_state c;
    assert_int_equal(rules_card_issue(&month, INT64_MAX - 10 * DAY, &c), CARD_VALIDITY_OVERFLOW);
    assert_int_equal(rules_card_issue(&month, T0, &c), CARD_OK);
    c.valid_to_us = INT64_MAX - 29 * DAY; /* renewed for centuries */
    struct card_state before = c;
    assert_int_equal(rules_card_renew(&c, &month, T0), CARD_VALIDITY_OVERFLOW);
    assert_memory_equal(&c, &before, sizeof(c));
    c.valid_to_us = INT64_MAX - 30 * DAY; /* exactly fits */
    assert_int_equal(rules_card_renew(&c, &month, T0), CARD_OK);
    assert_true(c.valid_to_us == INT64_MAX);

    assert_int_equal(rules_card_issue(&month, T0, &c), CARD_OK);
    c.valid_to_us = INT64_MAX - DAY;
    before = c;
    assert_int_equal(rules_card_freeze(&c, 2, T0), CARD_VALIDITY_OVERFLOW);
    assert_memory_equal(&c, &before, sizeof(c));

    struct card_state count;
    assert_int_equal(rules_card_issue(&ten_uses, T0, &count), CARD_OK);
    count.uses_left = INT64_MAX - 5;
    assert_int_equal(rules_card_renew(&count, &ten_uses, T0), CARD_VALIDITY_OVERFLOW);
    assert_string_equal(rules_card_code(CARD_VALIDITY_OVERFLOW), "validity_overflow");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_day),
        cmocka_unit_test(test_issue_and_validity),
        cmocka_unit_test(test_uses_run_out),
        cmocka_unit_test(test_daily_limit_in_time_zone),
        cmocka_unit_test(test_freeze_bounds),
        cmocka_unit_test(test_prepaid_caps),
        cmocka_unit_test(test_prepaid_caps_after_renewal),
        cmocka_unit_test(test_fraud_signals),
        cmocka_unit_test(test_coupon_redeem),
        cmocka_unit_test(test_coupon_terms),
        cmocka_unit_test(test_discount_card),
        cmocka_unit_test(test_extend_days),
        cmocka_unit_test(test_codes_and_kinds_are_stable),
        cmocka_unit_test(test_validity_overflow_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
