/* See facts.h. */
#include "facts.h"

#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "topic_reader.h"

int fact_produce(const char *topic, const char *key, Envelope *env, const char *source)
{
    size_t len = 0;
    uint8_t *payload = envelope_encode(env, &len);
    if (!payload)
        return -1;
    int rc = topic_produce(topic, RD_KAFKA_PARTITION_UA, key, strlen(key), payload, len,
                           envelope_cloudevents_headers(env, source));
    free(payload);
    return rc;
}

int fact_purchase(const char *tenant, const char *member, const char *op, int64_t amount,
                  int64_t occurred_at_us)
{
    struct event_meta meta = {.tenant_id = tenant,
                              .branch_id = "hq",
                              .member_id = member,
                              .correlation_id = op,
                              .actor_kind = "service",
                              .actor_id = "ledger",
                              .occurred_at_us = occurred_at_us};
    Envelope env;
    Actor actor;
    PurchaseRecorded fact;
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__purchase_recorded__init(&fact);
    fact.command_id = (char *)op;
    fact.purchase_id = (char *)op;
    fact.amount = fact.charged = amount;
    fact.payment_method = (char *)"cash";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED;
    env.purchase_recorded = &fact;
    return fact_produce(TOPIC_LEDGER_EVENTS, member, &env, "/tessera/ledger");
}
