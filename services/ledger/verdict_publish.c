/* The verdict's fast path: after a batch commits (and its balances are in
 * Redis), each verdict of the batch is also published on Redis channel
 * CACHE_VERDICTS_CHANNEL, which every ingest instance follows; the
 * instance holding the request hands it the verdict there, without waiting
 * for the outbox relay, the broker's acknowledgement and its own fetch of
 * ledger-events. Only a hint: the verdict still goes to ledger-events
 * through the outbox (exactly once), and ingest keeps taking it from there
 * when Redis is away or a message is lost; whichever comes first ends the
 * wait, the other finds no waiter. Published after commit only, so nothing
 * rolled back is ever seen. */
#include <hiredis/hiredis.h>
#include <string.h>

#include "bus/topics.h"
#include "cache/cache_sub.h"
#include "ledger.h"
#include "log/log.h"

static bool is_verdict(const struct outbox_row *row)
{
    if (strcmp(row->topic, TOPIC_LEDGER_EVENTS) != 0)
        return false;
    char why[128];
    Envelope *env = envelope_decode(row->payload, row->len, why, sizeof(why));
    bool verdict =
        env && (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_POSTED ||
                env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_REJECTED);
    envelope_free(env);
    return verdict;
}

/* One pipelined round trip. A failure leaves l->rc in error, so the next
 * cache write sees it and reconnects (cache_sync.c). */
static void verdicts_publish(struct ledger_ctx *l, const struct pipeline_batch *b)
{
    if (!l->rc)
        return; /* Redis away: the Kafka verdict is enough */
    size_t sent = 0;
    for (size_t i = 0; i < b->out_count; i++) {
        const struct outbox_row *row = &b->out[i];
        if (!is_verdict(row))
            continue;
        if (redisAppendCommand(l->rc, "PUBLISH %s %b", CACHE_VERDICTS_CHANNEL, row->payload,
                               row->len) != REDIS_OK)
            break;
        sent++;
    }
    for (size_t i = 0; i < sent; i++) {
        void *reply = NULL;
        if (redisGetReply(l->rc, &reply) != REDIS_OK) {
            log_fields(LOG_WARN, "could not publish verdicts on redis", "error", l->rc->errstr,
                       NULL);
            return;
        }
        freeReplyObject(reply);
    }
}

void ledger_after_commit_publish(void *ctx, struct pipeline_batch *b)
{
    ledger_after_commit(ctx, b); /* balances first: a POS reading after its verdict sees them */
    verdicts_publish(ctx, b);
}
