/* The built-in templates: what every tenant starts with, in zh-CN and en,
 * for every name of the catalogue (a tenant's saved template for a
 * channel and locale replaces it). Each names only its kind's variables;
 * test_template checks that they all validate. */
#include "template/template.h"

#include <string.h>

struct default_template {
    const char *name;
    const char *subject_zh, *body_zh;
    const char *subject_en, *body_en;
};

static const struct default_template defaults[] = {
    {"login_code", "登录验证码",
     "【{{tenant.name}}】您的登录验证码是 {{code}}，{{expires_minutes}} 分钟内有效。", "Login code",
     "{{tenant.name}}: your login code is {{code}}, valid for {{expires_minutes}} minutes."},
    {"receipt.top_up", "充值成功",
     "{{member.name}}，您于 {{time}} 充值 {{amount}}，赠送 {{bonus}}，储值余额 "
     "{{balance.stored_value}}。",
     "Top-up received",
     "{{member.name}}, you topped up {{amount}} (bonus {{bonus}}) at {{time}}. Stored value: "
     "{{balance.stored_value}}."},
    {"receipt.purchase", "消费成功",
     /* no points earned here: the campaign grants them after the ledger's
      * receipt (the ledger cannot know them when it writes it) */
     "{{member.name}}，您于 {{time}} 消费 {{amount}}。储值余额 {{balance.stored_value}}，积分 "
     "{{balance.points}}。",
     "Purchase receipt",
     "{{member.name}}, you spent {{amount}} at {{time}}. Stored value: "
     "{{balance.stored_value}}, points: {{balance.points}}."},
    {"receipt.refund", "退款成功",
     "{{member.name}}，已退款 {{amount}}，扣回 {{points.reversed}} 积分。储值余额 "
     "{{balance.stored_value}}。",
     "Refund processed",
     "{{member.name}}, {{amount}} was refunded and {{points.reversed}} points reversed. Stored "
     "value: {{balance.stored_value}}."},
    {"card.sold", "购卡成功",
     "{{member.name}}，您购买了 {{card.name}}（{{card.uses}} 次），有效期至 {{card.expires_at}}。",
     "Card purchased",
     "{{member.name}}, you bought {{card.name}} ({{card.uses}} uses), valid until "
     "{{card.expires_at}}."},
    {"card.used", "次卡已使用",
     "{{member.name}}，您的 {{card.name}} 已使用一次，剩余 {{card.uses_left}} 次。", "Card used",
     "{{member.name}}, your {{card.name}} was used; {{card.uses_left}} uses left."},
    {"card.expiring", "次卡即将到期",
     "{{member.name}}，您的 {{card.name}} 将于 {{card.expires_at}} 到期，剩余 {{card.uses_left}} "
     "次。",
     "Card expiring",
     "{{member.name}}, your {{card.name}} expires on {{card.expires_at}} with {{card.uses_left}} "
     "uses left."},
    {"tier.changed", "会员等级变更", "{{member.name}}，您的会员等级已变更为 {{tier.name}}。",
     "Your tier changed", "{{member.name}}, your tier is now {{tier.name}}."},
    {"tier.downgrade_warning", "会员等级即将调整",
     "{{member.name}}，您的 {{tier.name}} 等级将于 {{downgrade_at}} 调整为 {{tier.next}}，再获得 "
     "{{points.needed}} 积分即可保级。",
     "Keep your tier",
     "{{member.name}}, your {{tier.name}} tier becomes {{tier.next}} on {{downgrade_at}}; earn "
     "{{points.needed}} more points to keep it."},
    {"activity.reward", "活动奖励",
     "{{member.name}}，您在 {{activity.name}} 中获得 {{reward.points}} 积分。", "Activity reward",
     "{{member.name}}, you earned {{reward.points}} points in {{activity.name}}."},
    {"streak.reward", "连续到店奖励",
     "{{member.name}}，恭喜完成 {{activity.name}}，获得 {{reward.points}} 积分。", "Streak reward",
     "{{member.name}}, you completed {{activity.name}} and earned {{reward.points}} points."},
    {"referral.reward", "推荐奖励",
     "{{member.name}}，感谢推荐好友，您获得 {{reward.points}} 积分。", "Referral reward",
     "{{member.name}}, thanks for your referral: {{reward.points}} points are yours."},
    {"redemption.done", "兑换成功",
     "{{member.name}}，您已用 {{points.spent}} 积分兑换 {{reward.name}}，剩余积分 "
     "{{balance.points}}。",
     "Redemption done",
     "{{member.name}}, you redeemed {{reward.name}} for {{points.spent}} points; "
     "{{balance.points}} points left."},
    {"coupon.issued", "您有一张新优惠券",
     "{{member.name}}，您获得 {{coupon.name}}，券码 {{coupon.code}}，有效期至 "
     "{{coupon.expires_at}}。",
     "A coupon for you",
     "{{member.name}}, here is {{coupon.name}} (code {{coupon.code}}), valid until "
     "{{coupon.expires_at}}."},
    {"birthday.gift", "生日快乐", "{{member.name}}，生日快乐！送您 {{reward.name}}。",
     "Happy birthday", "Happy birthday, {{member.name}}! {{reward.name}} is our gift to you."},
    {"welcome", "欢迎加入", "{{member.name}}，欢迎加入{{tenant.name}}会员！", "Welcome",
     "Welcome to {{tenant.name}}, {{member.name}}!"},
};

bool template_default(const char *name, const char *locale, const char **subject, const char **body)
{
    bool zh = locale && strncmp(locale, "zh", 2) == 0;
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if (strcmp(defaults[i].name, name) != 0)
            continue;
        *subject = zh ? defaults[i].subject_zh : defaults[i].subject_en;
        *body = zh ? defaults[i].body_zh : defaults[i].body_en;
        return true;
    }
    return false;
}
