/* A Redis channel followed on a libevent loop (SUBSCRIBE), reconnecting
 * with back-off when the link drops. For hints only: a message published
 * while the link is down is lost, so whatever it carries must also arrive
 * by a durable path (the verdict fast path: the Kafka verdict still comes,
 * services/ingest/verdict_fast.c). */
#ifndef TESSERA_CACHE_SUB_H
#define TESSERA_CACHE_SUB_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

/* The channel the ledger publishes each verdict on after its commit (the
 * encoded envelope, as on ledger-events). */
#define CACHE_VERDICTS_CHANNEL "tessera:verdicts"

struct cache_sub;
typedef void (*cache_sub_fn)(void *ctx, const void *payload, size_t len);

/* Subscribes to channel on base; on_message runs on the loop for every
 * message. A refused first connection only schedules a retry. */
struct cache_sub *cache_sub_new(struct event_base *base, const char *host, int port,
                                const char *channel, cache_sub_fn on_message, void *ctx, char *err,
                                size_t err_len);
/* Subscribed now (the channel's messages arrive). */
bool cache_sub_active(const struct cache_sub *s);
void cache_sub_free(struct cache_sub *s);

#endif
