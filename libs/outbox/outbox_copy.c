/* Binary COPY of outbox rows (outbox_copy.h); the format is PostgreSQL's
 * ("COPY", File Formats: Binary Format): a signature, flags and header
 * extension length, then per row a 16-bit field count and per field a
 * 32-bit length and its bytes in the type's binary form, then -1. */
#include "outbox/outbox_copy.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define COPY_CAP_MIN   4096
#define OUTBOX_COLUMNS 5

static const char COPY_SIGNATURE[11] = "PGCOPY\n\377\r\n\0";

static void put(struct db_copy *c, const void *data, size_t n)
{
    if (c->len + n > c->cap) {
        size_t cap = c->cap < COPY_CAP_MIN ? COPY_CAP_MIN : c->cap;
        while (cap < c->len + n)
            cap *= 2;
        char *buf = realloc(c->buf, cap);
        assert(buf); /* as db/copy.c: a batch's rows are bounded */
        c->buf = buf;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
}

static void put_be(struct db_copy *c, uint64_t v, int bytes)
{
    uint8_t b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    put(c, b, (size_t)bytes);
}

/* One field: its length, then its bytes. */
static void put_field(struct db_copy *c, const void *data, size_t n)
{
    assert(n <= INT32_MAX);
    put_be(c, n, 4);
    put(c, data, n);
}

void outbox_copy_begin(struct db_copy *c)
{
    assert(c->len == 0);
    put(c, COPY_SIGNATURE, sizeof(COPY_SIGNATURE));
    put_be(c, 0, 4); /* flags: no OIDs */
    put_be(c, 0, 4); /* no header extension */
}

void outbox_copy_row(struct db_copy *c, int64_t id, const char *topic, const char *key,
                     const uint8_t *payload, size_t len, int32_t events)
{
    put_be(c, OUTBOX_COLUMNS, 2);
    put_be(c, 8, 4);
    put_be(c, (uint64_t)id, 8);
    put_field(c, topic, strlen(topic));
    put_field(c, key, strlen(key));
    put_field(c, payload, len);
    put_be(c, 4, 4);
    put_be(c, (uint32_t)events, 4);
    c->rows++;
}

void outbox_copy_end(struct db_copy *c)
{
    put_be(c, 0xffff, 2); /* -1: no more rows */
}
