/* The API key cache (key_cache.h): one hash table over a fixed pool of
 * entries, and two lists in it, newest first: known keys (moved to the
 * front on every hit, so the least recently used goes when full) and
 * unknown keys (in the order they were stored, each for
 * KEY_CACHE_UNKNOWN_TTL_MS). The pool is allocated once, zeroed by the
 * kernel and touched only as it fills, so an idle cache costs no memory.
 * Buckets are chosen by SipHash (crypto_shorthash) under a random key:
 * whoever picks the bad keys of a flood cannot pile them into one chain. */
#include "key_cache.h"

#include <assert.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define KEY_HASH_BYTES 32

struct key_entry {
    uint8_t hash[KEY_HASH_BYTES];
    bool known;
    int64_t until_ms;                /* unknown: when it lapses */
    struct key_entry *chain;         /* next in its bucket */
    struct key_entry *newer, *older; /* its list */
    struct key_grant grant;          /* known only */
};

struct key_list {
    struct key_entry *newest, *oldest;
    size_t len, max;
};

struct key_cache {
    bool enabled;
    uint64_t generation;
    unsigned char bucket_key[crypto_shorthash_KEYBYTES];
    struct key_entry **buckets;
    size_t bucket_mask;
    struct key_entry *pool; /* pool_size entries */
    size_t pool_size, pool_used;
    struct key_entry *free; /* returned entries, through chain */
    struct key_list known, unknown;
    long long hits, misses, forgotten, resets;
};

struct key_cache *key_cache_new(size_t known_max)
{
    assert(known_max >= 1 && known_max <= KEY_CACHE_KNOWN_MAX_LIMIT);
    struct key_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->pool_size = known_max + KEY_CACHE_UNKNOWN_MAX;
    size_t buckets = 1;
    while (buckets < c->pool_size)
        buckets <<= 1;
    c->bucket_mask = buckets - 1;
    c->buckets = calloc(buckets, sizeof(c->buckets[0]));
    c->pool = calloc(c->pool_size, sizeof(c->pool[0]));
    if (!c->buckets || !c->pool) {
        key_cache_free(c);
        return NULL;
    }
    c->known.max = known_max;
    c->unknown.max = KEY_CACHE_UNKNOWN_MAX;
    crypto_shorthash_keygen(c->bucket_key);
    return c;
}

void key_cache_free(struct key_cache *c)
{
    if (!c)
        return;
    free(c->buckets);
    free(c->pool);
    free(c);
}

/* false when hash_hex is not 64 hex digits (never cached then). */
static bool parse_hash(const char *hash_hex, uint8_t out[KEY_HASH_BYTES])
{
    size_t len = 0;
    return strlen(hash_hex) == 2 * KEY_HASH_BYTES &&
           sodium_hex2bin(out, KEY_HASH_BYTES, hash_hex, 2 * KEY_HASH_BYTES, NULL, &len, NULL) ==
               0 &&
           len == KEY_HASH_BYTES;
}

static struct key_entry **bucket_of(struct key_cache *c, const uint8_t hash[KEY_HASH_BYTES])
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, hash, KEY_HASH_BYTES, c->bucket_key);
    uint64_t v;
    memcpy(&v, h, sizeof(v));
    return &c->buckets[v & c->bucket_mask];
}

static struct key_entry *find(struct key_cache *c, const uint8_t hash[KEY_HASH_BYTES])
{
    for (struct key_entry *e = *bucket_of(c, hash); e; e = e->chain)
        if (memcmp(e->hash, hash, KEY_HASH_BYTES) == 0)
            return e;
    return NULL;
}

static void list_unlink(struct key_list *l, struct key_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        l->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        l->oldest = e->newer;
    e->newer = e->older = NULL;
    l->len--;
}

static void list_push_newest(struct key_list *l, struct key_entry *e)
{
    e->newer = NULL;
    e->older = l->newest;
    if (l->newest)
        l->newest->newer = e;
    else
        l->oldest = e;
    l->newest = e;
    l->len++;
}

/* Out of its bucket and its list, back to the free entries. */
static void drop(struct key_cache *c, struct key_entry *e)
{
    struct key_entry **p = bucket_of(c, e->hash);
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    list_unlink(e->known ? &c->known : &c->unknown, e);
    memset(e, 0, sizeof(*e));
    e->chain = c->free;
    c->free = e;
}

/* A free entry of kind known, in its list and bucket; the oldest of the
 * kind makes room when the kind is full. */
static struct key_entry *take(struct key_cache *c, const uint8_t hash[KEY_HASH_BYTES], bool known)
{
    struct key_list *l = known ? &c->known : &c->unknown;
    if (l->len >= l->max)
        drop(c, l->oldest);
    struct key_entry *e = c->free;
    if (e) {
        c->free = e->chain;
    } else {
        assert(c->pool_used < c->pool_size); /* each kind stays within its max */
        e = &c->pool[c->pool_used++];
    }
    memcpy(e->hash, hash, KEY_HASH_BYTES);
    e->known = known;
    struct key_entry **b = bucket_of(c, hash);
    e->chain = *b;
    *b = e;
    list_push_newest(l, e);
    return e;
}

enum key_cache_result key_cache_get(struct key_cache *c, const char *hash_hex, int64_t now_ms,
                                    struct key_grant *grant)
{
    uint8_t hash[KEY_HASH_BYTES];
    struct key_entry *e = c->enabled && parse_hash(hash_hex, hash) ? find(c, hash) : NULL;
    if (e && !e->known && now_ms >= e->until_ms) {
        drop(c, e); /* lapsed: ask again */
        e = NULL;
    }
    if (!e) {
        c->misses++;
        return KEY_CACHE_MISS;
    }
    c->hits++;
    if (!e->known)
        return KEY_CACHE_UNKNOWN;
    if (e->grant.expires_at_ms != 0 && now_ms >= e->grant.expires_at_ms) {
        drop(c, e); /* PostgreSQL will say the same, then it is an unknown key */
        return KEY_CACHE_UNKNOWN;
    }
    list_unlink(&c->known, e);
    list_push_newest(&c->known, e);
    *grant = e->grant;
    return KEY_CACHE_KNOWN;
}

uint64_t key_cache_generation(const struct key_cache *c)
{
    return c->generation;
}

/* The entry to fill for hash_hex, or NULL when the put must be dropped. */
static struct key_entry *put(struct key_cache *c, const char *hash_hex, uint64_t generation,
                             bool known)
{
    uint8_t hash[KEY_HASH_BYTES];
    if (!c->enabled || generation != c->generation || !parse_hash(hash_hex, hash))
        return NULL;
    struct key_entry *old = find(c, hash);
    if (old)
        drop(c, old);
    return take(c, hash, known);
}

void key_cache_put_known(struct key_cache *c, const char *hash_hex, const struct key_grant *grant,
                         uint64_t generation)
{
    struct key_entry *e = put(c, hash_hex, generation, true);
    if (e)
        e->grant = *grant;
}

void key_cache_put_unknown(struct key_cache *c, const char *hash_hex, int64_t now_ms,
                           uint64_t generation)
{
    struct key_entry *e = put(c, hash_hex, generation, false);
    if (e)
        e->until_ms = now_ms + KEY_CACHE_UNKNOWN_TTL_MS;
}

void key_cache_forget(struct key_cache *c, const char *hash_hex)
{
    c->generation++;
    c->forgotten++;
    uint8_t hash[KEY_HASH_BYTES];
    struct key_entry *e = parse_hash(hash_hex, hash) ? find(c, hash) : NULL;
    if (e)
        drop(c, e);
}

void key_cache_clear(struct key_cache *c)
{
    c->generation++;
    c->resets++;
    memset(c->buckets, 0, (c->bucket_mask + 1) * sizeof(c->buckets[0]));
    /* Entries are reused from the start of the pool again: no page is
     * touched that was not before. */
    memset(c->pool, 0, c->pool_used * sizeof(c->pool[0]));
    c->pool_used = 0;
    c->free = NULL;
    c->known.newest = c->known.oldest = c->unknown.newest = c->unknown.oldest = NULL;
    c->known.len = c->unknown.len = 0;
}

void key_cache_set_enabled(struct key_cache *c, bool enabled)
{
    if (!enabled)
        key_cache_clear(c);
    c->generation++;
    c->enabled = enabled;
}

bool key_cache_enabled(const struct key_cache *c)
{
    return c->enabled;
}

void key_cache_stats(const struct key_cache *c, struct key_cache_stats *out)
{
    *out = (struct key_cache_stats){.hits = c->hits,
                                    .misses = c->misses,
                                    .forgotten = c->forgotten,
                                    .resets = c->resets,
                                    .known = c->known.len,
                                    .unknown = c->unknown.len};
}
