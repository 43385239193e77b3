#include "rules_policy.h"

#include <stdio.h>
#include <string.h>

#include "tz/tz.h"

#define MINUTE_US INT64_C(60000000)

void policy_defaults(struct notify_policy *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->time_zone, sizeof(p->time_zone), "Asia/Shanghai");
    p->quiet_start_minute = 21 * 60;
    p->quiet_end_minute = 8 * 60;
    p->marketing_cap_per_week = 3;
    snprintf(p->default_locale, sizeof(p->default_locale), "zh-CN");
    snprintf(p->currency, sizeof(p->currency), "CNY");
}

bool policy_valid(const struct notify_policy *p)
{
    return tz_zone_known(p->time_zone) && p->quiet_start_minute >= 0 &&
           p->quiet_start_minute < POLICY_MINUTES_PER_DAY && p->quiet_end_minute >= 0 &&
           p->quiet_end_minute < POLICY_MINUTES_PER_DAY && p->marketing_cap_per_week >= 0 &&
           p->marketing_cap_per_week <= POLICY_CAP_MAX;
}

int64_t policy_quiet_until(const struct notify_policy *p, int64_t now_us)
{
    int start = p->quiet_start_minute, end = p->quiet_end_minute;
    struct tz_local t;
    if (start == end || !tz_local_time(p->time_zone, now_us, &t))
        return 0;
    int m = t.minute_of_day;
    bool quiet = start < end ? (m >= start && m < end) : (m >= start || m < end);
    if (!quiet)
        return 0;
    int wait_min = (end - m + POLICY_MINUTES_PER_DAY) % POLICY_MINUTES_PER_DAY;
    /* back to the start of this minute, then forward to the end */
    int64_t into_minute = now_us - (now_us / MINUTE_US) * MINUTE_US;
    if (into_minute < 0)
        into_minute += MINUTE_US;
    return now_us - into_minute + (int64_t)wait_min * MINUTE_US;
}

struct policy_decision policy_decide(const struct policy_facts *f)
{
    struct policy_decision d = {POLICY_SUPPRESS, "", 0};
    if (f->expires_at_us > 0 && f->now_us >= f->expires_at_us)
        d.rule = "expired";
    else if (f->external && !f->provider)
        d.rule = "no_provider";
    else if (!f->address)
        d.rule = "no_address";
    else if (f->marketing && !f->consent)
        d.rule = "no_consent";
    else if (f->marketing && f->cap > 0 && f->cap_used >= f->cap)
        d.rule = "frequency_cap";
    else if (f->marketing && f->external && f->quiet_until_us > f->now_us) {
        d.status = POLICY_HOLD;
        d.rule = "quiet_hours";
        d.hold_until_us = f->quiet_until_us;
    } else {
        d.status = POLICY_SEND;
        d.rule = f->marketing ? "consent" : "transactional";
    }
    return d;
}
