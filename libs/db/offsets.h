/* Consumer offsets kept in PostgreSQL, in the same transaction as the
 * effects (table <schema>.consumer_offsets, created by db_migrate). Each
 * row remembers the Kafka cluster id it belongs to: offsets stored for
 * another cluster (the development broker restarted empty) are ignored, so
 * the service starts cleanly from the beginning instead of skipping. */
#ifndef TESSERA_OFFSETS_H
#define TESSERA_OFFSETS_H

#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* What one batch consumed from one partition: [first, next). */
struct db_offset_range {
    const char *topic;
    int32_t partition;
    int64_t first; /* offset of the first message of the batch */
    int64_t next;  /* offset after the last message */
};

/* Sets .offset of each element of parts to the stored next offset, or to
 * RD_KAFKA_OFFSET_BEGINNING when there is none or it belongs to another
 * cluster (logged). Returns 0 or -1 with err. */
int db_offsets_load(PGconn *pg, const char *group_id, const char *cluster_id,
                    rd_kafka_topic_partition_list_t *parts, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Inside the caller's transaction, records each range's next offset.
 * Returns 0; 1 when fenced: a stored offset of this cluster is already past
 * a range's first offset (another instance applied these messages), so the
 * caller must roll back and seek to the stored offsets; -1 with err.
 * *xid (may be NULL) receives the transaction's id (txid_current()), so a
 * COMMIT that gets no answer can be settled with db_xact_status: the
 * offsets move only with the effects, so "this transaction committed" is
 * exactly "the stored offsets are this batch's end, written by us". */
int db_offsets_store(PGconn *pg, const char *group_id, const char *cluster_id,
                     const struct db_offset_range *ranges, size_t count, long long *xid, char *err,
                     size_t err_len) __attribute__((warn_unused_result));

#endif
