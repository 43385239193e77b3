/* The delivery policy as pure rules (no I/O): what happens to one request
 * on one channel, and which rule decided it. Every decision names its
 * rule, stored with the delivery and carried by NotificationSuppressed.
 *
 * In order, the first that applies decides:
 *   expired        the request's expires_at_us is past        -> suppressed
 *   no_provider    an external channel with no provider set   -> suppressed
 *   no_address     the member has no address for the channel  -> suppressed
 *   no_consent     marketing without the member's consent for
 *                  this channel (transactional needs none)     -> suppressed
 *   frequency_cap  marketing past the tenant's weekly cap      -> suppressed
 *   quiet_hours    marketing on sms/email/push inside the
 *                  tenant's quiet hours (local time)          -> held until they end
 *   transactional / consent                                    -> delivered (inbox) or sent
 */
#ifndef TESSERA_NOTIFICATION_RULES_POLICY_H
#define TESSERA_NOTIFICATION_RULES_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define POLICY_ZONE_MAX        64
#define POLICY_LOCALE_MAX      16
#define POLICY_CURRENCY_MAX    8
#define POLICY_MINUTES_PER_DAY 1440
#define POLICY_CAP_MAX         1000
#define POLICY_WEEK_US         (INT64_C(7) * 86400 * 1000000)

/* A tenant's policy (NotificationPolicyChanged); policy_defaults when the
 * tenant set none. */
struct notify_policy {
    char time_zone[POLICY_ZONE_MAX + 1];
    int quiet_start_minute; /* equal start and end: no quiet hours */
    int quiet_end_minute;
    int marketing_cap_per_week; /* 0: no cap */
    char default_locale[POLICY_LOCALE_MAX + 1];
    char currency[POLICY_CURRENCY_MAX + 1];
};

void policy_defaults(struct notify_policy *p);

/* Are the policy's values in range (known zone, minutes of a day, cap)? */
bool policy_valid(const struct notify_policy *p) __attribute__((warn_unused_result));

/* When now_us falls in the quiet hours (local time of p->time_zone,
 * [start, end), wrapping midnight when start > end): the instant they
 * end, on the minute. 0 when it is not quiet. A DST change inside the
 * quiet hours moves the end by the change (documented, rare). */
int64_t policy_quiet_until(const struct notify_policy *p, int64_t now_us);

enum policy_status { POLICY_SEND, POLICY_HOLD, POLICY_SUPPRESS };

struct policy_facts {
    bool marketing;         /* purpose "marketing" (else transactional) */
    bool external;          /* sms / email / push (not the inbox) */
    bool provider;          /* the channel's provider is configured */
    bool address;           /* the member has an address for the channel */
    bool consent;           /* granted for this channel and purpose */
    int64_t expires_at_us;  /* 0: never */
    int cap_used;           /* marketing messages sent in the last 7 days */
    int cap;                /* 0: no cap */
    int64_t quiet_until_us; /* policy_quiet_until, 0 when not quiet */
    int64_t now_us;
};

struct policy_decision {
    enum policy_status status;
    const char *rule;      /* static */
    int64_t hold_until_us; /* POLICY_HOLD */
};

struct policy_decision policy_decide(const struct policy_facts *f);

#endif
