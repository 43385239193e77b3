/* Outbox rows as COPY ... FROM STDIN (FORMAT binary), in a struct db_copy
 * for db_copy_send. Binary because a packed row (outbox_pack.h) is a few
 * hundred kB of bytea: in text form the client writes it in hex (twice
 * the bytes) and the server parses every character back; binary COPY of
 * the same rows took half the time in a trial (3 rows of 150 kB). */
#ifndef TESSERA_OUTBOX_COPY_H
#define TESSERA_OUTBOX_COPY_H

#include <stddef.h>
#include <stdint.h>

#include "db/copy.h"

/* The columns, in the order outbox_copy_row writes them. */
#define OUTBOX_COPY_SQL "COPY outbox (id, topic, key, payload, events) FROM STDIN (FORMAT binary)"

/* Starts c (initialised, empty) with the binary COPY header. */
void outbox_copy_begin(struct db_copy *c);
void outbox_copy_row(struct db_copy *c, int64_t id, const char *topic, const char *key,
                     const uint8_t *payload, size_t len, int32_t events);
/* Ends the rows with the trailer; c is then ready for db_copy_send. */
void outbox_copy_end(struct db_copy *c);

#endif
