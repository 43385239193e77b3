/* Growing a batch array: every service keeps its batch state in arrays
 * that double as they fill. */
#ifndef TESSERA_UTIL_ARRAY_H
#define TESSERA_UTIL_ARRAY_H

#include <stddef.h>

#define ARRAY_INITIAL_CAP 64 /* elements, the first time an array grows */

/* Makes room for one more element after count (doubling *cap when full;
 * asserts on out of memory: batch state has no way around it). Returns
 * the array, maybe moved. */
void *array_grow(void *arr, size_t count, size_t *cap, size_t elem);

#endif
