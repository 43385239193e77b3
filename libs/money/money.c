/* Money arithmetic on int64 minor units. Pure functions, no I/O. */
#undef NDEBUG /* asserts stay on in production builds */
#include "money/money.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>

#define MONEY_BP_PER_UNIT 10000

bool money_add(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

bool money_sub(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

/* part_b = floor(total * b / (a + b)); the product needs 127 bits in the
 * worst case, hence __int128. part_a = total - part_b is the ceiling of
 * a's exact share, which never exceeds a because total <= a + b. */
void money_split_pro_rata(int64_t total, int64_t balance_a, int64_t balance_b, int64_t *part_a,
                          int64_t *part_b)
{
    assert(part_a != NULL && part_b != NULL);
    assert(total >= 0 && balance_a >= 0 && balance_b >= 0);
    __int128 sum = (__int128)balance_a + balance_b;
    assert((__int128)total <= sum);

    if (sum == 0) {
        *part_a = 0;
        *part_b = 0;
        return;
    }
    int64_t b = (int64_t)(((__int128)total * balance_b) / sum);
    *part_b = b;
    *part_a = total - b;
    assert(*part_a >= 0 && *part_a <= balance_a);
    assert(*part_b >= 0 && *part_b <= balance_b);
}

/* Rounds half up for amount >= 0. For negative amounts the rounding is
 * half away from zero, i.e. money_apply_bp(-x, r) == -money_apply_bp(x, r),
 * so a refund mirrors its charge exactly. rate_bp must be >= 0; the result
 * must fit int64 (it does for every amount up to MONEY_AMOUNT_MAX and rates
 * up to 100x). */
int64_t money_apply_bp(int64_t amount, int32_t rate_bp)
{
    assert(rate_bp >= 0);
    __int128 mag = amount < 0 ? -(__int128)amount : (__int128)amount;
    __int128 r = (mag * rate_bp + MONEY_BP_PER_UNIT / 2) / MONEY_BP_PER_UNIT;
    assert(r <= INT64_MAX);
    return amount < 0 ? -(int64_t)r : (int64_t)r;
}

int money_format(int64_t minor, char *buf, size_t buf_len)
{
    assert(buf != NULL || buf_len == 0);
    /* Magnitude as unsigned so INT64_MIN formats too. */
    uint64_t mag = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
    if (buf_len == 0)
        return -1;
    int n = snprintf(buf, buf_len, "%s%" PRIu64 ".%02" PRIu64, minor < 0 ? "-" : "", mag / 100,
                     mag % 100);
    if (n < 0 || (size_t)n >= buf_len) {
        buf[0] = '\0';
        return -1;
    }
    return n;
}
