/* The producers that carry ledger commands to the broker.
 *
 * librdkafka 2.0.2 sends one ProduceRequest per partition, and a Kafka
 * broker works through the requests of one connection one at a time. With
 * one producer, every synchronous command waits behind the requests of the
 * other partitions on that connection: under load the broker's per-request
 * time (a few ms on a busy machine) is paid once per partition in front of
 * it, and the acknowledgement (and so the ledger's poll) stretches to
 * hundreds of ms (docs/purchase-path.md, "The broker hop"). Several
 * producers are several connections, which the broker serves side by side.
 *
 * A member's commands always take the same producer (a hash of the member
 * id), so they reach their partition in the order they were produced, as
 * with one producer; each producer is idempotent on its own. */
#ifndef TESSERA_INGEST_COMMAND_PRODUCERS_H
#define TESSERA_INGEST_COMMAND_PRODUCERS_H

#include <stddef.h>

#define INGEST_COMMAND_PRODUCERS_MAX 16

/* Which of count producers carries member_id's commands: the same index
 * for the same member, spread evenly over members. count >= 1. */
size_t command_producer_index(const char *member_id, size_t count);

#endif
