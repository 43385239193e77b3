#include "rules_delivery.h"

enum delivery_result delivery_classify_http(long status)
{
    if (status >= 200 && status < 300)
        return DELIVERY_OK;
    if (status == 0 || status == 408 || status == 429 || status >= 500)
        return DELIVERY_TRANSIENT;
    return DELIVERY_PERMANENT;
}

enum delivery_result delivery_classify_smtp(bool ok, long reply)
{
    if (ok)
        return DELIVERY_OK;
    return reply >= 500 && reply < 600 ? DELIVERY_PERMANENT : DELIVERY_TRANSIENT;
}

int64_t delivery_backoff_ms(int attempts, int64_t base_ms, int64_t max_ms, double jitter_unit)
{
    int64_t d = base_ms;
    for (int i = 1; i < attempts && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    if (jitter_unit < 0)
        jitter_unit = 0;
    if (jitter_unit >= 1)
        jitter_unit = 0.999999;
    return d / 2 + (int64_t)((double)(d - d / 2) * jitter_unit);
}

bool breaker_closed_or_due(const struct breaker *b, int64_t now_ms)
{
    return b->open_until_ms == 0 || (now_ms >= b->open_until_ms && !b->probing);
}

bool breaker_allows(struct breaker *b, int64_t now_ms)
{
    if (b->open_until_ms == 0)
        return true;
    if (now_ms < b->open_until_ms || b->probing)
        return false;
    b->probing = true;
    return true;
}

void breaker_record(struct breaker *b, bool success, int64_t now_ms, int threshold, int64_t open_ms)
{
    b->probing = false;
    if (success) {
        b->failures = 0;
        b->open_until_ms = 0;
        return;
    }
    b->failures++;
    if (b->open_until_ms != 0 || b->failures >= threshold)
        b->open_until_ms = now_ms + open_ms;
}
