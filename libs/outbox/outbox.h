/* The transactional outbox (table <schema>.outbox, created by db_migrate).
 * Events a consumer must publish are inserted in the same transaction as
 * its effects and offsets, then relayed to Kafka after commit. A crash
 * between commit and relay only delays them: the next relay sends them. */
#ifndef TESSERA_OUTBOX_H
#define TESSERA_OUTBOX_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"

#define OUTBOX_RELAY_BATCH_MAX 1000
#define OUTBOX_FLUSH_TIMEOUT_MS 10000

struct outbox_row {
    const char *topic;
    const char *key; /* member id: the partition key */
    const uint8_t *payload; /* an encoded envelope */
    size_t len;
};

/* Inside the caller's transaction, inserts rows with one statement.
 * Returns 0 or -1 with err. */
int outbox_append(PGconn *pg, const struct outbox_row *rows, size_t count, char *err,
                  size_t err_len) __attribute__((warn_unused_result));

/* Sends up to max waiting rows in insertion order with CloudEvents headers
 * (source e.g. "/tessera/ledger"), waits for their delivery and deletes
 * the delivered ones, in one transaction that locks the rows it sends
 * (SKIP LOCKED, so two relays never send the same row at once).
 * p must be a blocking producer (no event base). Returns the number of
 * rows relayed, or -1 with err. */
int outbox_relay(PGconn *pg, struct bus_producer *p, const char *source, size_t max, char *err,
                 size_t err_len) __attribute__((warn_unused_result));

#endif
