#include "datetime/datetime.h"

#include <stddef.h>

/* Reads exactly n digits at *p (moving past them); false otherwise. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char a, char b)
{
    if (**p != a && **p != b)
        return false;
    (*p)++;
    return true;
}

bool datetime_date_valid(int year, int month, int day)
{
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1 || day > days[month - 1])
        return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return !(month == 2 && day == 29 && !leap);
}

static bool date_at(const char **p, int *y, int *m, int *d)
{
    return digits(p, 4, y) && expect(p, '-', '-') && digits(p, 2, m) && expect(p, '-', '-') &&
           digits(p, 2, d) && datetime_date_valid(*y, *m, *d);
}

bool datetime_parse_date(const char *text, int *year, int *month, int *day)
{
    const char *p = text;
    return text && date_at(&p, year, month, day) && *p == '\0';
}

int64_t datetime_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "Z", "z" or ±hh:mm at *p: the offset east of UTC in seconds. */
static bool offset_at(const char **p, int64_t *offset_s)
{
    if (expect(p, 'Z', 'z')) {
        *offset_s = 0;
        return true;
    }
    char sign = **p;
    int oh, om;
    if ((sign != '+' && sign != '-') || (++*p, !digits(p, 2, &oh)) || !expect(p, ':', ':') ||
        !digits(p, 2, &om) || oh > 23 || om > 59)
        return false;
    *offset_s = (sign == '-' ? -1 : 1) * (int64_t)(oh * 3600 + om * 60);
    return true;
}

bool datetime_parse_rfc3339_us(const char *text, int64_t *out_us)
{
    const char *p = text;
    int y, mo, d, h, mi, s;
    if (!text || !date_at(&p, &y, &mo, &d) || !expect(&p, 'T', 't') || !digits(&p, 2, &h) ||
        !expect(&p, ':', ':') || !digits(&p, 2, &mi) || !expect(&p, ':', ':') ||
        !digits(&p, 2, &s) || h > 23 || mi > 59 || s > 59)
        return false;
    int64_t frac_us = 0, scale = 100000;
    if (*p == '.') {
        const char *first = ++p;
        for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac_us += scale > 0 ? (*p - '0') * scale : 0;
        if (p == first)
            return false; /* a fraction has at least one digit */
    }
    int64_t offset_s;
    if (!offset_at(&p, &offset_s) || *p != '\0')
        return false;
    int64_t t = datetime_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset_s;
    *out_us = t * 1000000 + frac_us;
    return true;
}
