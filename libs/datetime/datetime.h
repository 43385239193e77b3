/* Dates and times as the API takes them: RFC 3339 date-times
 * ("2027-01-31T09:30:00.250+08:00") and full dates ("1990-02-28"), checked
 * against the Gregorian calendar: 2027-02-31 is not a date, and neither
 * parser lets the C library roll it over into March. */
#ifndef TESSERA_DATETIME_H
#define TESSERA_DATETIME_H

#include <stdbool.h>
#include <stdint.h>

#define DATETIME_DATE_LEN 10 /* "YYYY-MM-DD" */

/* Is year-month-day a day of the (proleptic) Gregorian calendar? */
bool datetime_date_valid(int year, int month, int day);

/* Days since 1970-01-01 of year-month-day of the proleptic Gregorian
 * calendar (Howard Hinnant's days_from_civil: exact over the whole
 * calendar, no time zone, no libc state). A month past 12 or a day past
 * the month's end counts on, as the formula does. */
int64_t datetime_days_from_civil(int64_t year, int month, int day);

/* "YYYY-MM-DD" and nothing else, a real date: true with its parts. */
bool datetime_parse_date(const char *text, int *year, int *month, int *day)
    __attribute__((warn_unused_result));

/* An RFC 3339 date-time (section 5.6: "T" or "t", a fraction of any
 * length, then "Z", "z" or ±hh:mm) to microseconds since the epoch
 * (digits past the sixth of a fraction are dropped). False when text is
 * not one, or names a day or time that does not exist (seconds 60 too:
 * POSIX time has no leap seconds). */
bool datetime_parse_rfc3339_us(const char *text, int64_t *out_us)
    __attribute__((warn_unused_result));

#endif
