/* Per-thread free lists of fixed-size blocks (pool.h). */
#include "util/pool.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void *pool_take(struct pool *p)
{
    assert(p->size >= sizeof(void *));
    void *block = p->free;
    if (block == NULL)
        return calloc(1, p->size);
    p->free = *(void **)block;
    p->kept--;
    memset(block, 0, p->size);
    return block;
}

void pool_give(struct pool *p, void *block)
{
    if (block == NULL)
        return;
    if (p->kept >= p->max) {
        free(block);
        return;
    }
    *(void **)block = p->free;
    p->free = block;
    p->kept++;
}
