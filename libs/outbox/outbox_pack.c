/* The packed shape of an outbox row (outbox_pack.h). */
#include "outbox/outbox_pack.h"

#include <stdlib.h>
#include <string.h>

#define PACK_HEADER_LEN 1
#define PACK_FIXED_LEN  (2 + 2 + 4) /* the three lengths of an event */

static size_t packed_len(const struct outbox_row *row)
{
    return PACK_FIXED_LEN + strlen(row->topic) + strlen(row->key) + row->len;
}

size_t outbox_pack_take(const struct outbox_row *rows, size_t count)
{
    size_t n = 0, bytes = PACK_HEADER_LEN;
    while (n < count && n < OUTBOX_PACK_EVENTS_MAX) {
        size_t more = packed_len(&rows[n]);
        if (n > 0 && bytes + more > OUTBOX_PACK_BYTES_MAX)
            break;
        bytes += more;
        n++;
    }
    return n;
}

static uint8_t *put_be(uint8_t *at, uint32_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        *at++ = (uint8_t)(v >> (8 * i));
    return at;
}

static uint8_t *put_text(uint8_t *at, const char *s, size_t len)
{
    at = put_be(at, (uint32_t)len, 2);
    memcpy(at, s, len);
    return at + len;
}

uint8_t *outbox_pack(const struct outbox_row *rows, size_t count, size_t *len)
{
    size_t total = PACK_HEADER_LEN;
    for (size_t i = 0; i < count; i++) {
        if (strlen(rows[i].topic) > OUTBOX_PACK_TEXT_MAX ||
            strlen(rows[i].key) > OUTBOX_PACK_TEXT_MAX || rows[i].len > UINT32_MAX)
            return NULL;
        total += packed_len(&rows[i]);
    }
    uint8_t *buf = malloc(total), *at = buf;
    if (!buf)
        return NULL;
    *at++ = OUTBOX_PACK_VERSION;
    for (size_t i = 0; i < count; i++) {
        at = put_text(at, rows[i].topic, strlen(rows[i].topic));
        at = put_text(at, rows[i].key, strlen(rows[i].key));
        at = put_be(at, (uint32_t)rows[i].len, 4);
        memcpy(at, rows[i].payload, rows[i].len);
        at += rows[i].len;
    }
    *len = total;
    return buf;
}

/* Reads a big-endian length of `bytes` bytes at *at, within end. */
static bool get_len(const uint8_t **at, const uint8_t *end, int bytes, size_t *v)
{
    if ((size_t)(end - *at) < (size_t)bytes)
        return false;
    *v = 0;
    for (int i = 0; i < bytes; i++)
        *v = (*v << 8) | *(*at)++;
    return (size_t)(end - *at) >= *v;
}

static char *copy_text(const uint8_t *at, size_t len)
{
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, at, len);
        s[len] = '\0';
    }
    return s;
}

/* One event at *at into out; false when malformed or out of memory. */
static bool unpack_one(const uint8_t **at, const uint8_t *end, struct outbox_row *out)
{
    size_t topic_len, key_len, payload_len;
    if (!get_len(at, end, 2, &topic_len))
        return false;
    const uint8_t *topic = *at;
    *at += topic_len;
    if (!get_len(at, end, 2, &key_len))
        return false;
    const uint8_t *key = *at;
    *at += key_len;
    if (!get_len(at, end, 4, &payload_len))
        return false;
    char *t = copy_text(topic, topic_len), *k = copy_text(key, key_len);
    uint8_t *payload = malloc(payload_len ? payload_len : 1);
    if (!t || !k || !payload) {
        free(t), free(k), free(payload);
        return false;
    }
    memcpy(payload, *at, payload_len);
    *at += payload_len;
    *out = (struct outbox_row){.topic = t, .key = k, .payload = payload, .len = payload_len};
    return true;
}

bool outbox_unpack(const uint8_t *data, size_t len, size_t events, struct outbox_row *out)
{
    const uint8_t *at = data, *end = data + len;
    if (len < PACK_HEADER_LEN || *at++ != OUTBOX_PACK_VERSION)
        return false;
    size_t n = 0;
    while (n < events && unpack_one(&at, end, &out[n]))
        n++;
    if (n == events && at == end)
        return true;
    for (size_t i = 0; i < n; i++)
        outbox_unpacked_free(&out[i]);
    return false;
}

void outbox_unpacked_free(struct outbox_row *row)
{
    free((char *)row->topic);
    free((char *)row->key);
    free((uint8_t *)row->payload);
    *row = (struct outbox_row){0};
}
