/* services/ingest/key_index.c: a batch's lines found by key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "../../services/ingest/key_index.h"

/* Every entry with a key, in position order; none for a key not there. */
static void test_find_returns_every_entry_of_a_key_in_order(void **state)
{
    static const char *const keys[] = {"k2", "k1", "k2", "k3", "k2", "k1"};
    struct key_index x;
    assert_int_equal(key_index_init(&x, 6), 0);
    for (size_t i = 0; i < 6; i++)
        key_index_add(&x, keys[i], i);
    key_index_sort(&x);
    size_t n = 0;
    const struct key_entry *e = key_index_find(&x, "k2", &n);
    assert_int_equal(n, 3);
    assert_int_equal(e[0].pos, 0);
    assert_int_equal(e[1].pos, 2);
    assert_int_equal(e[2].pos, 4);
    e = key_index_find(&x, "k3", &n);
    assert_int_equal(n, 1);
    assert_int_equal(e[0].pos, 3);
    assert_null(key_index_find(&x, "k0", &n));
    assert_int_equal(n, 0);
    assert_null(key_index_find(&x, "k4", &n));
    assert_null(key_index_find(&x, "", &n));
    key_index_free(&x);
}

/* 10 000 keys (a full batch): each found at its own position. */
static void test_a_full_batch(void **state)
{
    enum { N = 10000 };
    static char keys[N][16];
    struct key_index x;
    assert_int_equal(key_index_init(&x, N), 0);
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "key-%zu", (i * 7919) % N);
        key_index_add(&x, keys[i], i);
    }
    key_index_sort(&x);
    for (size_t i = 0; i < N; i++) {
        size_t n = 0;
        const struct key_entry *e = key_index_find(&x, keys[i], &n);
        assert_int_equal(n, 1);
        assert_int_equal(e->pos, i);
    }
    key_index_free(&x);
}

/* An empty index finds nothing. */
static void test_empty(void **state)
{
    struct key_index x;
    assert_int_equal(key_index_init(&x, 0), 0);
    key_index_sort(&x);
    size_t n = 7;
    assert_null(key_index_find(&x, "a", &n));
    assert_int_equal(n, 0);
    key_index_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_returns_every_entry_of_a_key_in_order),
        cmocka_unit_test(test_a_full_batch),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
