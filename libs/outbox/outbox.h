/* The transactional outbox (table <schema>.outbox, created by db_migrate).
 * Events a consumer must publish are inserted in the same transaction as
 * its effects and offsets, produced after commit, and their rows deleted
 * once Kafka has them. A crash or an outage in between only delays them:
 * the rows are still there and are sent again (at least once). */
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

/* Inside the caller's transaction, inserts rows with one statement and,
 * when ids is not NULL, writes the new rows' ids there (count of them, in
 * no particular order). Returns 0 or -1 with err. */
int outbox_append(PGconn *pg, const struct outbox_row *rows, size_t count, int64_t *ids,
                  char *err, size_t err_len) __attribute__((warn_unused_result));

/* Deletes relayed rows by id (inside the caller's transaction, or alone). */
int outbox_delete(PGconn *pg, const int64_t *ids, size_t count, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Produces one row with CloudEvents headers (source e.g.
 * "/tessera/ledger") taken from its envelope; msg_opaque goes to the
 * producer's delivery callback. Does not wait for delivery. */
rd_kafka_resp_err_t outbox_produce(struct bus_producer *p, const char *source,
                                   const struct outbox_row *row, void *msg_opaque);

/* Rows a crash or a Kafka outage left behind: up to max rows at least
 * older_than_s seconds old, in insertion order, copied out (free with
 * outbox_stranded_free). Returns 0 or -1 with err. */
struct outbox_stranded {
    int64_t *ids;
    struct outbox_row *rows;
    size_t count;
};
int outbox_stranded(PGconn *pg, int older_than_s, size_t max, struct outbox_stranded *out,
                    char *err, size_t err_len) __attribute__((warn_unused_result));
void outbox_stranded_free(struct outbox_stranded *s);

#endif
