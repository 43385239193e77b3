#include "util/array.h"

#include <assert.h>
#include <stdlib.h>

void *array_grow(void *arr, size_t count, size_t *cap, size_t elem)
{
    if (count < *cap)
        return arr;
    *cap = *cap ? *cap * 2 : ARRAY_INITIAL_CAP;
    arr = realloc(arr, *cap * elem);
    assert(arr);
    return arr;
}
