/* UUIDv7 per RFC 9562 section 5.7, with the 12-bit rand_a field used as a
 * counter (section 6.2, method 1) so ids from one process are strictly
 * increasing: within a millisecond the counter counts up from a random
 * start; when it would overflow, or the clock steps back, the timestamp is
 * carried forward from the last id instead of going backwards. */
#undef NDEBUG /* asserts stay on in production builds */
#include "ids/uuid7.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <sodium.h>
#include <string.h>
#include <time.h>

#define UUID7_COUNTER_MAX 0xfffu
/* A fresh millisecond starts the counter below this (11 random bits), so
 * at least 2048 ids fit in the millisecond before the carry. */
#define UUID7_COUNTER_SEED_MASK 0x7ffu
#define UUID_TEXT_LEN           36

static pthread_mutex_t uuid7_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t uuid7_last_ms;
static uint32_t uuid7_counter;
static pthread_once_t uuid7_once = PTHREAD_ONCE_INIT;

static void uuid7_init_sodium(void)
{
    /* Without a working random source ids could collide: fail loudly. */
    int rc = sodium_init();
    assert(rc >= 0);
    (void)rc;
}

static uint64_t uuid7_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Picks (ms, counter) strictly greater than the previous pair. */
static void uuid7_next_stamp(uint16_t seed, uint64_t *ms, uint32_t *counter)
{
    uint64_t now = uuid7_now_ms();
    pthread_mutex_lock(&uuid7_lock);
    if (now > uuid7_last_ms) {
        uuid7_last_ms = now;
        uuid7_counter = seed & UUID7_COUNTER_SEED_MASK;
    } else if (uuid7_counter < UUID7_COUNTER_MAX) {
        uuid7_counter++;
    } else {
        uuid7_last_ms++; /* borrow the next millisecond */
        uuid7_counter = seed & UUID7_COUNTER_SEED_MASK;
    }
    *ms = uuid7_last_ms;
    *counter = uuid7_counter;
    pthread_mutex_unlock(&uuid7_lock);
}

static void uuid_format(const uint8_t b[16], char out[UUID_STR_SIZE])
{
    char hex[2 * 16 + 1];
    sodium_bin2hex(hex, sizeof(hex), b, 16);
    /* RFC 9562 section 4: 8-4-4-4-12 hex digits */
    int n = snprintf(out, UUID_STR_SIZE, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
                     hex + 16, hex + 20);
    assert(n == UUID_TEXT_LEN);
}

void uuid7_generate(char out[UUID_STR_SIZE])
{
    uint8_t b[16], rnd[10];
    uint64_t ms;
    uint32_t counter;

    assert(out != NULL);
    pthread_once(&uuid7_once, uuid7_init_sodium);
    randombytes_buf(rnd, sizeof(rnd)); /* outside the lock: 2 seed + 8 rand_b */
    uuid7_next_stamp((uint16_t)(rnd[0] << 8 | rnd[1]), &ms, &counter);

    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (counter >> 8)); /* version 7, counter high bits */
    b[7] = (uint8_t)(counter & 0xff);
    memcpy(b + 8, rnd + 2, 8);
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f)); /* variant 10 */
    uuid_format(b, out);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool uuid_parse(const char *text, uint8_t out[16])
{
    uint8_t b[16];
    size_t n = 0;
    if (text == NULL)
        return false;
    for (size_t i = 0; i < UUID_TEXT_LEN; i += 2) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return false;
            i++;
        }
        int hi = hex_value(text[i]), lo = hi < 0 ? -1 : hex_value(text[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        b[n++] = (uint8_t)(hi << 4 | lo);
    }
    if (n != 16 || text[UUID_TEXT_LEN] != '\0')
        return false;
    memcpy(out, b, sizeof(b));
    return true;
}

/* RFC 9562 section 5.8 (UUIDv8, custom) with the name-based layout of
 * its appendix B.2: the first 128 bits of SHA-256(name), version and
 * variant bits set. Same name, same id; a hash collision is as unlikely
 * as a random v4 one. */
void uuid8_from_name(const char *name, char out[UUID_STR_SIZE])
{
    uint8_t digest[crypto_hash_sha256_BYTES], b[16];
    assert(name != NULL && out != NULL);
    pthread_once(&uuid7_once, uuid7_init_sodium);
    crypto_hash_sha256(digest, (const unsigned char *)name, strlen(name));
    memcpy(b, digest, 16);
    b[6] = (uint8_t)(0x80 | (b[6] & 0x0f)); /* version 8 */
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f)); /* variant 10 */
    uuid_format(b, out);
}

bool uuid_is_valid(const char *text)
{
    uint8_t b[16];
    return uuid_parse(text, b);
}

uint64_t uuid7_unix_ms(const char *text)
{
    uint8_t b[16];
    if (!uuid_parse(text, b) || (b[6] >> 4) != 7 || (b[8] & 0xc0) != 0x80)
        return 0;
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | b[i];
    return ms;
}
