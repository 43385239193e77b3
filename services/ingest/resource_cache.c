/* The resources' rules in memory (resource_cache.h): a chained hash table
 * whose buckets are chosen by SipHash under a random key (a caller naming
 * many resources cannot pile them into one chain). */
#include "resource_cache.h"

#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESOURCE_BUCKETS 32768 /* a power of two above RESOURCE_CACHE_MAX */

struct resource_entry {
    char *key; /* "<tenant> <resource>" */
    bool known;
    struct ent_rules rules;
    struct resource_entry *next;
};

struct resource_cache {
    bool enabled;
    uint64_t generation;
    size_t count;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    struct resource_entry *buckets[RESOURCE_BUCKETS];
};

struct resource_cache *resource_cache_new(void)
{
    struct resource_cache *c = calloc(1, sizeof(*c));
    if (c)
        crypto_shorthash_keygen(c->hash_key);
    return c;
}

static void entry_free(struct resource_entry *e)
{
    ent_rules_clear(&e->rules);
    free(e->key);
    free(e);
}

static void clear_all(struct resource_cache *c)
{
    for (size_t b = 0; b < RESOURCE_BUCKETS; b++) {
        for (struct resource_entry *e = c->buckets[b], *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
        c->buckets[b] = NULL;
    }
    c->count = 0;
    c->generation++;
}

void resource_cache_free(struct resource_cache *c)
{
    if (!c)
        return;
    clear_all(c);
    free(c);
}

void resource_cache_set_enabled(struct resource_cache *c, bool enabled)
{
    clear_all(c); /* either way: what was cached while deaf is not trusted */
    c->enabled = enabled;
}

uint64_t resource_cache_generation(const struct resource_cache *c)
{
    return c->generation;
}

static struct resource_entry **slot(struct resource_cache *c, const char *key)
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)key, strlen(key), c->hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof(v));
    struct resource_entry **p = &c->buckets[v & (RESOURCE_BUCKETS - 1)];
    while (*p && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    return p;
}

static char *make_key(const char *tenant_id, const char *resource)
{
    char *key = NULL;
    return asprintf(&key, "%s %s", tenant_id, resource) < 0 ? NULL : key;
}

int resource_cache_get(struct resource_cache *c, const char *tenant_id, const char *resource,
                       const struct ent_rules **rules, bool *known)
{
    if (!c->enabled)
        return 0;
    char *key = make_key(tenant_id, resource);
    if (!key)
        return 0;
    struct resource_entry *e = *slot(c, key);
    free(key);
    if (!e)
        return 0;
    *rules = &e->rules;
    *known = e->known;
    return 1;
}

void resource_cache_put(struct resource_cache *c, uint64_t generation, const char *tenant_id,
                        const char *resource, struct ent_rules *rules)
{
    char *key = NULL;
    if (!c->enabled || generation != c->generation || !(key = make_key(tenant_id, resource))) {
        if (rules)
            ent_rules_clear(rules);
        return;
    }
    if (c->count >= RESOURCE_CACHE_MAX)
        clear_all(c), generation = c->generation;
    struct resource_entry **p = slot(c, key);
    if (*p) { /* two reads raced: keep the first */
        free(key);
        if (rules)
            ent_rules_clear(rules);
        return;
    }
    struct resource_entry *e = calloc(1, sizeof(*e));
    assert(e);
    e->key = key;
    e->known = rules != NULL;
    if (rules) {
        e->rules = *rules;
        memset(rules, 0, sizeof(*rules)); /* taken */
    }
    *p = e;
    c->count++;
}

void resource_cache_forget(struct resource_cache *c, const char *payload)
{
    if (payload[0] == '\0') {
        clear_all(c);
        return;
    }
    c->generation++;
    struct resource_entry **p = slot(c, payload);
    if (*p) {
        struct resource_entry *e = *p;
        *p = e->next;
        entry_free(e);
        c->count--;
    }
}
