#include "rules_firstday.h"

#include <assert.h>

#include "rules_cards.h"

void rules_fresh_topped_up(struct sv_fresh *f, int64_t day, int64_t amount)
{
    assert(amount >= 0);
    if (day < f->day)
        return; /* an earlier day's value is old now */
    if (day > f->day)
        *f = (struct sv_fresh){.day = day};
    int64_t sum;
    f->amount = money_add(f->amount, amount, &sum) ? sum : MONEY_AMOUNT_MAX;
}

void rules_fresh_refunded(struct sv_fresh *f, int64_t day, int64_t amount)
{
    assert(amount >= 0);
    if (day != f->day)
        return; /* nothing of that day's is fresh on another day */
    f->amount = amount >= f->amount ? 0 : f->amount - amount;
}

int64_t rules_fresh_on(const struct sv_fresh *f, int64_t day)
{
    return f->day == day ? f->amount : 0;
}

enum rules_result rules_check_first_day(int64_t limit, struct sv_balance bal,
                                        const struct sv_fresh *f, int64_t day, int64_t charge)
{
    int64_t fresh = rules_fresh_on(f, day);
    if (limit <= 0 || fresh <= 0 || charge <= 0)
        return RULES_OK;
    /* B - T + L in 128 bits: B and T are balances, L a bounded setting,
     * but nothing here should be able to wrap */
    __int128 allowed = (__int128)bal.principal + bal.bonus - fresh + limit;
    return (__int128)charge > allowed ? RULES_FIRST_DAY_LIMIT_EXCEEDED : RULES_OK;
}

int64_t rules_day_start_us(int64_t day, int32_t utc_offset_s)
{
    int64_t start = day * CARD_US_PER_DAY - (int64_t)utc_offset_s * 1000000LL;
    assert(rules_local_day(start, utc_offset_s) == day);
    return start;
}
