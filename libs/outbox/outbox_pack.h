/* Packed outbox rows (issue 15): one row of <schema>.outbox holds many
 * events of one batch, so a batch of 1 500 events costs a few rows to
 * COPY, index, delete and vacuum instead of 1 500. A row's `events`
 * column says how many it holds; a row of one event keeps the plain
 * shape (topic, key, payload = the envelope), the shape every row had
 * before, and the shape of rows services insert by SQL. A row of more
 * has its events, in the order they were made, in payload:
 *   version byte OUTBOX_PACK_VERSION, then per event
 *   u16 topic length, topic, u16 key length, key, u32 payload length,
 *   payload (lengths big-endian; topic and key without their NUL).
 * Its topic and key columns are those of its first event (for a reader
 * of the table; the relay reads the packed ones). */
#ifndef TESSERA_OUTBOX_PACK_H
#define TESSERA_OUTBOX_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox/outbox.h"

#define OUTBOX_PACK_VERSION 1
/* A row's limits: a sweep claims whole rows (OUTBOX_RELAY_BATCH_MAX
 * events and at most one row beyond), and a row past ~2 kB is stored out
 * of line in 2 kB chunks whatever its size. */
#define OUTBOX_PACK_EVENTS_MAX 500
#define OUTBOX_PACK_BYTES_MAX  (256 * 1024)
#define OUTBOX_PACK_TEXT_MAX   UINT16_MAX /* a topic's or a key's length */

/* How many of rows (from the first) go into one row: at least 1, at most
 * OUTBOX_PACK_EVENTS_MAX, and no more than OUTBOX_PACK_BYTES_MAX bytes
 * packed unless the first alone is larger. */
size_t outbox_pack_take(const struct outbox_row *rows, size_t count);

/* rows[0..count) packed into a malloc'ed buffer of *len bytes (NULL when
 * out of memory, or a topic or key longer than OUTBOX_PACK_TEXT_MAX). */
uint8_t *outbox_pack(const struct outbox_row *rows, size_t count, size_t *len)
    __attribute__((warn_unused_result));

/* Unpacks a packed payload of `events` events into out[0..events):
 * topic, key and payload point into the malloc'ed copies made here (free
 * each row with outbox_unpacked_free). false when the bytes are not such
 * a payload (nothing left allocated). */
bool outbox_unpack(const uint8_t *data, size_t len, size_t events, struct outbox_row *out)
    __attribute__((warn_unused_result));
void outbox_unpacked_free(struct outbox_row *row);

#endif
