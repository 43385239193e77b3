/* Unit tests for libs/util/pool.c: freed blocks come back zeroed, at most
 * max are kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/pool.h"

#define BLOCK_BYTES 1200
#define KEEP        2

static void test_blocks_come_back_zeroed(void **state)
{
    struct pool p = POOL_INIT(BLOCK_BYTES, KEEP);
    unsigned char *a = pool_take(&p), *b = pool_take(&p), *c = pool_take(&p);
    assert_non_null(a);
    assert_true(a != b && b != c && a != c);
    memset(a, 0xab, BLOCK_BYTES);
    memset(b, 0xcd, BLOCK_BYTES);
    pool_give(&p, a);
    pool_give(&p, b);
    pool_give(&p, c); /* a third: freed, not kept */
    pool_give(&p, NULL);
    assert_int_equal(p.kept, KEEP);
    unsigned char *d = pool_take(&p), *e = pool_take(&p);
    assert_ptr_equal(d, b); /* the last kept first */
    assert_ptr_equal(e, a);
    assert_int_equal(p.kept, 0);
    for (size_t i = 0; i < BLOCK_BYTES; i++)
        if (d[i] != 0 || e[i] != 0)
            fail_msg("byte %zu of a block taken again is not zero", i);
    pool_give(&p, d);
    pool_give(&p, e);
    while (p.kept > 0)
        free(pool_take(&p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_come_back_zeroed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
