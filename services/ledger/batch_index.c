#include "batch_index.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_INDEX_INITIAL_CAP 256

void batch_index_clear(struct batch_index *ix)
{
    if (ix->slots && ix->count)
        memset(ix->slots, 0, ix->cap * sizeof(*ix->slots));
    ix->count = 0;
}

void batch_index_free(struct batch_index *ix)
{
    free(ix->slots);
    *ix = (struct batch_index){0};
}

/* FNV-1a over a, a NUL, then b. */
uint64_t batch_index_hash(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h *= 1099511628211ULL;
    for (const unsigned char *p = (const unsigned char *)b; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

size_t batch_index_find(const struct batch_index *ix, uint64_t hash,
                        bool (*same)(const void *ctx, size_t pos), const void *ctx)
{
    if (!ix->slots)
        return BATCH_INDEX_NONE;
    for (size_t i = hash & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1)) {
        const struct batch_index_slot *s = &ix->slots[i];
        if (s->pos_plus_one == 0)
            return BATCH_INDEX_NONE;
        if (s->hash == hash && same(ctx, s->pos_plus_one - 1))
            return s->pos_plus_one - 1;
    }
}

static void put(struct batch_index_slot *slots, size_t cap, uint64_t hash, size_t pos_plus_one)
{
    size_t i = hash & (cap - 1);
    while (slots[i].pos_plus_one)
        i = (i + 1) & (cap - 1);
    slots[i] = (struct batch_index_slot){.hash = hash, .pos_plus_one = pos_plus_one};
}

void batch_index_add(struct batch_index *ix, uint64_t hash, size_t pos)
{
    if (2 * (ix->count + 1) > ix->cap) { /* at most half full: probes stay short */
        size_t cap = ix->cap ? 2 * ix->cap : BATCH_INDEX_INITIAL_CAP;
        struct batch_index_slot *slots = calloc(cap, sizeof(*slots));
        assert(slots);
        for (size_t i = 0; i < ix->cap; i++)
            if (ix->slots[i].pos_plus_one)
                put(slots, cap, ix->slots[i].hash, ix->slots[i].pos_plus_one);
        free(ix->slots);
        ix->slots = slots;
        ix->cap = cap;
    }
    put(ix->slots, ix->cap, hash, pos + 1);
    ix->count++;
}
