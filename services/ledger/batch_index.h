/* A hash index over one of a batch's arrays (members, verdicts), keyed by
 * two strings (tenant and id): a batch of up to PIPELINE_BATCH_MAX
 * commands looks its members and verdicts up several times per command,
 * which a linear scan made quadratic in the batch size. The index holds
 * positions in the caller's array; the caller compares the keys. */
#ifndef TESSERA_LEDGER_BATCH_INDEX_H
#define TESSERA_LEDGER_BATCH_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BATCH_INDEX_NONE SIZE_MAX

struct batch_index_slot {
    uint64_t hash;
    size_t pos_plus_one; /* 0: empty */
};

struct batch_index {
    struct batch_index_slot *slots;
    size_t cap; /* a power of two, at least twice count */
    size_t count;
};

/* Forgets every position (keeps the memory for the next batch). */
void batch_index_clear(struct batch_index *ix);
void batch_index_free(struct batch_index *ix);
uint64_t batch_index_hash(const char *a, const char *b);
/* The first position with this hash for which same(ctx, pos) holds, or
 * BATCH_INDEX_NONE. */
size_t batch_index_find(const struct batch_index *ix, uint64_t hash,
                        bool (*same)(const void *ctx, size_t pos), const void *ctx);
/* Adds pos under hash (asserts on out of memory, like array_grow). */
void batch_index_add(struct batch_index *ix, uint64_t hash, size_t pos);

#endif
