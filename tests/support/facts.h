/* Facts produced straight to a topic as the service that owns them would
 * (headers included), for tests that need an order or a time the API
 * cannot give: a purchase met before its registration, a late rule. */
#ifndef TESSERA_TEST_FACTS_H
#define TESSERA_TEST_FACTS_H

#include <stdint.h>

#include "events/codec.h"

/* Encodes env and produces it to topic keyed by key, with its
 * CloudEvents headers naming source. 0, or -1 when not delivered. */
int fact_produce(const char *topic, const char *key, Envelope *env, const char *source)
    __attribute__((warn_unused_result));

/* The PurchaseRecorded of a cash purchase of amount by member of tenant
 * (op: its command and purchase id), recorded at occurred_at_us, on
 * ledger-events keyed by member as the ledger produces it. 0 or -1. */
int fact_purchase(const char *tenant, const char *member, const char *op, int64_t amount,
                  int64_t occurred_at_us) __attribute__((warn_unused_result));

#endif
