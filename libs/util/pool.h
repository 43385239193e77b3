/* A free list of blocks of one size, for one thread: structs made and
 * freed on every request (the HTTP exchange, ingest's request) are over a
 * kilobyte, past glibc's per-thread cache, so each malloc of one could
 * make glibc consolidate its free lists. A pool keeps up to max freed
 * blocks for the next take. Declare it _Thread_local (or use it from one
 * thread only); its blocks outlive the thread. */
#ifndef TESSERA_UTIL_POOL_H
#define TESSERA_UTIL_POOL_H

#include <stddef.h>

struct pool {
    size_t size; /* of a block; at least a pointer */
    size_t max;  /* freed blocks kept */
    size_t kept;
    void *free; /* the kept blocks, each pointing at the next */
};

#define POOL_INIT(block_size, keep)                                                                \
    {                                                                                              \
        .size = (block_size), .max = (keep)                                                        \
    }

/* A zeroed block (a kept one, else calloc'ed); NULL when out of memory. */
void *pool_take(struct pool *p);
/* Keeps block for a later take, or frees it when max are kept. NULL is
 * ignored. */
void pool_give(struct pool *p, void *block);

#endif
