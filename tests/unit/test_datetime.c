/* The one date/time module (libs/datetime): RFC 3339 date-times and full
 * dates from a table, each answer checked against timegm (an independent
 * calendar) where it is a time; 2027-02-31 and other days that do not
 * exist are refused instead of rolling over into the next month. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <cmocka.h>

#include "datetime/datetime.h"

static int64_t utc_us(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000000;
}

static void test_rfc3339_accepts(void **state)
{
    (void)state;
    const struct {
        const char *text;
        int64_t want_us;
    } cases[] = {
        {"2027-01-01T00:00:00Z", utc_us(2027, 1, 1, 0, 0, 0)},
        {"2027-01-31t23:59:59z", utc_us(2027, 1, 31, 23, 59, 59)},
        {"2028-02-29T12:00:00Z", utc_us(2028, 2, 29, 12, 0, 0)},
        {"2000-02-29T00:00:00Z", utc_us(2000, 2, 29, 0, 0, 0)},
        {"2027-06-15T10:00:00+08:00", utc_us(2027, 6, 15, 2, 0, 0)},
        {"2027-06-15T10:00:00-05:30", utc_us(2027, 6, 15, 15, 30, 0)},
        {"2027-06-15T10:00:00.25Z", utc_us(2027, 6, 15, 10, 0, 0) + 250000},
        {"2027-06-15T10:00:00.123456789Z", utc_us(2027, 6, 15, 10, 0, 0) + 123456},
        {"1969-12-31T23:59:59Z", -1000000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t us = 0;
        if (!datetime_parse_rfc3339_us(cases[i].text, &us))
            fail_msg("refused %s", cases[i].text);
        assert_int_equal(us, cases[i].want_us);
    }
}

static void test_rfc3339_refuses(void **state)
{
    (void)state;
    const char *const bad[] = {
        "2027-02-31T00:00:00Z", /* the day that started it: no rolling into March */
        "2027-02-29T00:00:00Z", /* not a leap year */
        "1900-02-29T00:00:00Z", /* divisible by 100, not by 400 */
        "2027-04-31T00:00:00Z",
        "2027-13-01T00:00:00Z",
        "2027-00-10T00:00:00Z",
        "2027-01-00T00:00:00Z",
        "2027-01-01T24:00:00Z",
        "2027-01-01T00:60:00Z",
        "2027-01-01T00:00:60Z",
        "2027-01-01T00:00:00",       /* no offset */
        "2027-01-01T00:00:00+0800",  /* offset without colon */
        "2027-01-01T00:00:00+24:00", /* offset hours */
        "2027-01-01T00:00:00.Z",     /* empty fraction */
        "2027-01-01 00:00:00Z",
        "2027-1-01T00:00:00Z",
        "2027-01-01T00:00:00Zjunk",
        " 2027-01-01T00:00:00Z",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t us = 0;
        if (datetime_parse_rfc3339_us(bad[i], &us))
            fail_msg("accepted %s", bad[i]);
    }
}

static void test_dates(void **state)
{
    (void)state;
    int y, m, d;
    assert_true(datetime_parse_date("1990-02-28", &y, &m, &d));
    assert_int_equal(y * 10000 + m * 100 + d, 19900228);
    assert_true(datetime_parse_date("2024-02-29", &y, &m, &d));
    assert_false(datetime_parse_date("2027-02-31", &y, &m, &d));
    assert_false(datetime_parse_date("2023-02-29", &y, &m, &d));
    assert_false(datetime_parse_date("2027-02-01x", &y, &m, &d));
    assert_false(datetime_parse_date("2027-2-01", &y, &m, &d));
    assert_false(datetime_parse_date(NULL, &y, &m, &d));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339_accepts),
        cmocka_unit_test(test_rfc3339_refuses),
        cmocka_unit_test(test_dates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
