/* The transactional outbox (table <schema>.outbox, created by db_migrate).
 * Events a consumer must publish are inserted in the same transaction as
 * its effects and offsets, produced after commit, and their rows deleted
 * once Kafka has them. A crash or an outage in between only delays them:
 * the rows are still there and are sent again (at least once).
 *
 * Who sends a row is decided by a lease (lease_owner, lease_until): a new
 * row is leased for OUTBOX_LEASE_S to whoever inserted it (the column's
 * default), which sends it right after its commit. A relay that keeps a
 * row in flight in librdkafka longer renews the lease (outbox_renew). Only
 * a row whose lease ran out (its sender crashed, or its delivery failed)
 * is stranded: outbox_claim leases it to one relay, skipping rows another
 * relay is claiming at that moment (FOR UPDATE SKIP LOCKED), so several
 * workers and instances sweeping one outbox send each stranded row once,
 * and a sweep under steady load never waits for the in-flight events of
 * other batches. */
#ifndef TESSERA_OUTBOX_H
#define TESSERA_OUTBOX_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"
#include "db/migrate.h"

#define OUTBOX_RELAY_BATCH_MAX  1000
#define OUTBOX_FLUSH_TIMEOUT_MS 10000
#define OUTBOX_LEASE_S          DB_OUTBOX_LEASE_S /* a sender's hold; renewed while in flight */
#define OUTBOX_OWNER_MAX        96

struct outbox_row {
    const char *topic;
    const char *key;        /* member id: the partition key */
    const uint8_t *payload; /* an encoded envelope */
    size_t len;
};

/* Inside the caller's transaction, inserts rows with one statement, one
 * outbox row per event, and, when ids is not NULL, writes ids[i] = the id
 * of the row holding rows[i]. Returns 0 or -1 with err. For a caller that
 * deletes each event's row as soon as that event is acknowledged. */
int outbox_append(PGconn *pg, const struct outbox_row *rows, size_t count, int64_t *ids, char *err,
                  size_t err_len) __attribute__((warn_unused_result));
/* The same with up to OUTBOX_PACK_EVENTS_MAX events in one outbox row
 * (outbox_pack.h): ids[i] is still the id of the row holding rows[i], so
 * consecutive events share ids. A row may be deleted only once every
 * event it holds is acknowledged (the pipeline's relay deletes a batch's
 * rows when all its events are); a row not deleted is sent again whole. */
int outbox_append_packed(PGconn *pg, const struct outbox_row *rows, size_t count, int64_t *ids,
                         char *err, size_t err_len) __attribute__((warn_unused_result));

/* Deletes relayed rows by id (inside the caller's transaction, or alone). */
int outbox_delete(PGconn *pg, const int64_t *ids, size_t count, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Produces one row with CloudEvents headers (source e.g.
 * "/tessera/ledger") taken from its envelope; msg_opaque goes to the
 * producer's delivery callback. Does not wait for delivery. */
rd_kafka_resp_err_t outbox_produce(struct bus_producer *p, const char *source,
                                   const struct outbox_row *row, void *msg_opaque);

/* Rows a crash or a failed delivery left behind: whole rows whose lease
 * is over, while fewer than max events are taken (at least one row), not
 * in skip (the caller's own rows in flight), oldest first, leased to owner
 * for OUTBOX_LEASE_S and copied out event by event, packed rows unpacked
 * (free with outbox_stranded_free). Rows another relay is claiming at the
 * same time are skipped, not waited for. Returns 0 or -1 with err. */
struct outbox_stranded {
    int64_t *ids;            /* ids[i]: the row holding rows[i] */
    struct outbox_row *rows; /* events, in the order they were made */
    size_t count;
};
int outbox_claim(PGconn *pg, const char *owner, const int64_t *skip, size_t skip_count, size_t max,
                 struct outbox_stranded *out, char *err, size_t err_len)
    __attribute__((warn_unused_result));
/* The statements behind outbox_claim and outbox_renew, for a caller on an
 * asynchronous pool (ingest): claim's $1 owner, $2 skip (bigint[]), $3
 * max events, returning id, topic, key, payload, events (a caller reading
 * them itself must unpack a row of events > 1; ingest writes none: only
 * outbox_append_packed does, for the pipeline); renew's $1 owner, $2 ids. */
extern const char OUTBOX_CLAIM_SQL[];
extern const char OUTBOX_RENEW_SQL[];
/* Extends the lease of rows still in flight here (ids), unless another
 * relay claimed them meanwhile. Returns 0 or -1 with err. */
int outbox_renew(PGconn *pg, const char *owner, const int64_t *ids, size_t count, char *err,
                 size_t err_len) __attribute__((warn_unused_result));
void outbox_stranded_free(struct outbox_stranded *s);

#endif
