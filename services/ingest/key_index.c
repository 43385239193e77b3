#include "key_index.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int key_index_init(struct key_index *x, size_t cap)
{
    x->e = malloc((cap ? cap : 1) * sizeof(*x->e));
    x->n = 0;
    x->cap = cap;
    return x->e ? 0 : -1;
}

void key_index_add(struct key_index *x, const char *key, size_t pos)
{
    assert(x->n < x->cap && key);
    x->e[x->n++] = (struct key_entry){.key = key, .pos = pos};
}

static int entry_cmp(const void *a, const void *b)
{
    const struct key_entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c != 0)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

void key_index_sort(struct key_index *x)
{
    qsort(x->e, x->n, sizeof(*x->e), entry_cmp);
}

const struct key_entry *key_index_find(const struct key_index *x, const char *key, size_t *count)
{
    size_t lo = 0, hi = x->n; /* the first entry whose key is not below key */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(x->e[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < x->n && strcmp(x->e[end].key, key) == 0)
        end++;
    *count = end - lo;
    return end > lo ? &x->e[lo] : NULL;
}

void key_index_free(struct key_index *x)
{
    free(x->e);
    *x = (struct key_index){0};
}
