/* Pure rules of delivery: how a provider's answer is classified, when a
 * transient failure is tried again (exponential back-off with jitter) and
 * the circuit breaker kept per provider. No I/O. */
#ifndef TESSERA_NOTIFICATION_RULES_DELIVERY_H
#define TESSERA_NOTIFICATION_RULES_DELIVERY_H

#include <stdbool.h>
#include <stdint.h>

enum delivery_result {
    DELIVERY_OK,        /* the provider accepted it */
    DELIVERY_TRANSIENT, /* 5xx, 429, timeout, connection, SMTP 4xx: try again */
    DELIVERY_PERMANENT, /* provider 4xx, SMTP 5xx, bad address: never again */
};

/* A webhook's answer: status 0 is a transfer failure (no answer). */
enum delivery_result delivery_classify_http(long status);
/* An SMTP transfer: ok when curl succeeded, else the last reply code
 * (0: no reply, e.g. the server is down). */
enum delivery_result delivery_classify_smtp(bool ok, long reply);

/* Delay before attempt number attempts+1 (attempts >= 1 made): base *
 * 2^(attempts-1), capped at max, then a random part of it in [half, full]
 * ("equal jitter") from jitter_unit in [0, 1). */
int64_t delivery_backoff_ms(int attempts, int64_t base_ms, int64_t max_ms, double jitter_unit);

/* A circuit breaker per provider: after `threshold` failures in a row it
 * opens for open_ms, sending nothing; then one probe (half open) decides:
 * success closes it, failure opens it again. */
struct breaker {
    int failures;
    int64_t open_until_ms; /* 0: closed */
    bool probing;          /* a probe is in flight (half open) */
};

/* May a send to this provider start now (monotonic ms)? A half-open
 * breaker lets exactly one through. */
bool breaker_allows(struct breaker *b, int64_t now_ms);
/* Peek without taking the probe. */
bool breaker_closed_or_due(const struct breaker *b, int64_t now_ms);
void breaker_record(struct breaker *b, bool success, int64_t now_ms, int threshold,
                    int64_t open_ms);

#endif
