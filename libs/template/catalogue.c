/* The variable catalogue: every template name in use and what its
 * producers send. A producer may send fewer (a placeholder without a
 * value renders empty) but never another: ingest refuses a template that
 * names a variable not listed here, so what a tenant writes always has a
 * chance of being filled. Keep in step with docs/notifications.md. */
#include "template/template.h"

#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define KIND(name, channels, vars)                                                                 \
    {                                                                                              \
        name, channels, vars, N(vars)                                                              \
    }

#define T   TEMPLATE_TEXT
#define M   TEMPLATE_MONEY
#define NUM TEMPLATE_NUMBER
#define TM  TEMPLATE_TIME

static const struct template_var_def common_vars[] = {
    {"member.name", T},
    {"tenant.name", T},
};

static const struct template_var_def login_code[] = {
    {"code", T},
    {"expires_minutes", NUM},
};
static const struct template_var_def receipt_top_up[] = {
    {"amount", M},           {"bonus", M},       {"balance.stored_value", M},
    {"balance.points", NUM}, {"branch.name", T}, {"time", TM},
};
static const struct template_var_def receipt_purchase[] = {
    {"amount", M},
    {"paid.stored_value", M},
    {"points.earned", NUM},
    {"balance.stored_value", M},
    {"balance.points", NUM},
    {"branch.name", T},
    {"time", TM},
};
static const struct template_var_def receipt_refund[] = {
    {"amount", M},           {"points.reversed", NUM}, {"balance.stored_value", M},
    {"balance.points", NUM}, {"branch.name", T},       {"time", TM},
};
static const struct template_var_def card_sold[] = {
    {"card.name", T}, {"amount", M}, {"card.uses", NUM}, {"card.expires_at", TM}, {"time", TM},
};
static const struct template_var_def card_used[] = {
    {"card.name", T},
    {"card.uses_left", NUM},
    {"branch.name", T},
    {"time", TM},
};
static const struct template_var_def card_expiring[] = {
    {"card.name", T},
    {"card.uses_left", NUM},
    {"card.expires_at", TM},
    {"days_left", NUM},
};
static const struct template_var_def tier_changed[] = {
    {"tier.name", T},
    {"tier.previous", T},
    {"tier.expires_at", TM},
};
static const struct template_var_def tier_downgrade_warning[] = {
    {"tier.name", T},
    {"tier.next", T},
    {"downgrade_at", TM},
    {"points.needed", NUM},
};
static const struct template_var_def reward[] = {
    {"activity.name", T}, {"reward.points", NUM}, {"reward.amount", M},
    {"reward.name", T},   {"reward.days", NUM},
};
static const struct template_var_def redemption_done[] = {
    {"reward.name", T},      {"points.spent", NUM}, {"reward.days", NUM},
    {"balance.points", NUM}, {"time", TM},
};
static const struct template_var_def coupon_issued[] = {
    {"coupon.name", T},
    {"coupon.code", T},
    {"coupon.value", M},
    {"coupon.expires_at", TM},
};
static const struct template_var_def birthday_gift[] = {
    {"reward.name", T},
    {"reward.points", NUM},
    {"reward.amount", M},
    {"coupon.code", T},
};
static const struct template_var_def welcome[] = {
    {"balance.points", NUM},
};

enum {
    RECEIPT = TEMPLATE_CH_INBOX | TEMPLATE_CH_EMAIL,
    NEWS = TEMPLATE_CH_INBOX | TEMPLATE_CH_PUSH,
};

const struct template_kind template_kinds[] = {
    KIND("login_code", TEMPLATE_CH_SMS, login_code),
    KIND("receipt.top_up", RECEIPT, receipt_top_up),
    KIND("receipt.purchase", RECEIPT, receipt_purchase),
    KIND("receipt.refund", RECEIPT, receipt_refund),
    KIND("card.sold", RECEIPT, card_sold),
    KIND("card.used", RECEIPT, card_used),
    KIND("card.expiring", NEWS | TEMPLATE_CH_SMS, card_expiring),
    KIND("tier.changed", NEWS | TEMPLATE_CH_EMAIL, tier_changed),
    KIND("tier.downgrade_warning", NEWS, tier_downgrade_warning),
    KIND("activity.reward", NEWS, reward),
    KIND("streak.reward", NEWS, reward),
    KIND("referral.reward", NEWS, reward),
    KIND("redemption.done", RECEIPT, redemption_done),
    KIND("coupon.issued", NEWS, coupon_issued),
    KIND("birthday.gift", NEWS | TEMPLATE_CH_SMS, birthday_gift),
    KIND("welcome", NEWS | TEMPLATE_CH_EMAIL, welcome),
};
const size_t template_kind_count = N(template_kinds);

const struct template_kind *template_kind_find(const char *name)
{
    for (size_t i = 0; name && i < template_kind_count; i++)
        if (strcmp(template_kinds[i].name, name) == 0)
            return &template_kinds[i];
    return NULL;
}

static const struct template_var_def *find_in(const struct template_var_def *defs, size_t n,
                                              const char *var)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(defs[i].name, var) == 0)
            return &defs[i];
    return NULL;
}

const struct template_var_def *template_var_find(const struct template_kind *kind, const char *var)
{
    const struct template_var_def *d = find_in(common_vars, N(common_vars), var);
    if (!d && kind)
        d = find_in(kind->vars, kind->var_count, var);
    return d;
}
