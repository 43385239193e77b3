/* Finding a batch's lines (or a result's rows) by a string key in
 * O(log n): a batch holds up to 10 000 lines, and a linear search per line
 * made its checks quadratic (20 s of one core for 10 000 top-ups,
 * docs/ledger-performance.md). Entries are (key, position) pairs sorted by
 * key, then position. The keys are borrowed: they must outlive the index. */
#ifndef TESSERA_INGEST_KEY_INDEX_H
#define TESSERA_INGEST_KEY_INDEX_H

#include <stddef.h>

struct key_entry {
    const char *key;
    size_t pos;
};

struct key_index {
    struct key_entry *e;
    size_t n, cap;
};

/* Room for cap entries; -1 when out of memory. */
int key_index_init(struct key_index *x, size_t cap) __attribute__((warn_unused_result));
/* Adds one entry (at most cap of them). */
void key_index_add(struct key_index *x, const char *key, size_t pos);
/* Sorts the entries; call once after the last add, before finding. */
void key_index_sort(struct key_index *x);
/* The entries with key, in position order: *count of them from the
 * returned one (NULL and 0 when none). */
const struct key_entry *key_index_find(const struct key_index *x, const char *key, size_t *count);
void key_index_free(struct key_index *x);

#endif
