/* The ledger's batch index (services/ledger/batch_index.h): lookups of a
 * batch's members and verdicts by (tenant, id) through a hash, instead of
 * a scan that made a 2 000-command batch quadratic. Every key added must
 * be found at its position, keys never added must not, equal hashes must
 * be told apart by the caller's comparison, and a cleared index must
 * forget everything while growing past its first size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../services/ledger/batch_index.h"

#define KEYS 5000 /* well past the initial capacity: the index grows */

struct keys {
    char tenant[KEYS][16];
    char id[KEYS][24];
    const char *want_tenant, *want_id;
};
static struct keys k;

static bool same(const void *ctx, size_t pos)
{
    const struct keys *ks = ctx;
    return strcmp(ks->tenant[pos], ks->want_tenant) == 0 && strcmp(ks->id[pos], ks->want_id) == 0;
}

static size_t find(struct batch_index *ix, const char *tenant, const char *id)
{
    k.want_tenant = tenant;
    k.want_id = id;
    return batch_index_find(ix, batch_index_hash(tenant, id), same, &k);
}

static void test_every_key_found_at_its_position(void **state)
{
    struct batch_index ix = {0};
    for (size_t i = 0; i < KEYS; i++) {
        snprintf(k.tenant[i], sizeof(k.tenant[i]), "t%zu", i % 3);
        snprintf(k.id[i], sizeof(k.id[i]), "member-%zu", i);
        assert_int_equal(find(&ix, k.tenant[i], k.id[i]), BATCH_INDEX_NONE);
        batch_index_add(&ix, batch_index_hash(k.tenant[i], k.id[i]), i);
    }
    for (size_t i = 0; i < KEYS; i++)
        assert_int_equal(find(&ix, k.tenant[i], k.id[i]), i);
    assert_int_equal(find(&ix, "t9", "member-1"), BATCH_INDEX_NONE);
    assert_int_equal(find(&ix, "t1", "member-0"), BATCH_INDEX_NONE); /* member-0 is t0's */
    batch_index_clear(&ix);
    assert_int_equal(find(&ix, k.tenant[7], k.id[7]), BATCH_INDEX_NONE);
    batch_index_free(&ix);
}

/* The tenant and id are hashed apart: ("ab", "c") is not ("a", "bc"). */
static void test_key_parts_are_separate(void **state)
{
    assert_true(batch_index_hash("ab", "c") != batch_index_hash("a", "bc"));
    struct batch_index ix = {0};
    snprintf(k.tenant[0], sizeof(k.tenant[0]), "ab");
    snprintf(k.id[0], sizeof(k.id[0]), "c");
    batch_index_add(&ix, batch_index_hash("ab", "c"), 0);
    assert_int_equal(find(&ix, "a", "bc"), BATCH_INDEX_NONE);
    assert_int_equal(find(&ix, "ab", "c"), 0);
    batch_index_free(&ix);
}

/* Two keys under one hash: the comparison picks the right one. */
static void test_same_hash_told_apart(void **state)
{
    struct batch_index ix = {0};
    snprintf(k.tenant[0], sizeof(k.tenant[0]), "t");
    snprintf(k.id[0], sizeof(k.id[0]), "x");
    snprintf(k.tenant[1], sizeof(k.tenant[1]), "t");
    snprintf(k.id[1], sizeof(k.id[1]), "y");
    batch_index_add(&ix, 42, 0);
    batch_index_add(&ix, 42, 1);
    k.want_tenant = "t";
    k.want_id = "y";
    assert_int_equal(batch_index_find(&ix, 42, same, &k), 1);
    k.want_id = "x";
    assert_int_equal(batch_index_find(&ix, 42, same, &k), 0);
    k.want_id = "z";
    assert_int_equal(batch_index_find(&ix, 42, same, &k), BATCH_INDEX_NONE);
    batch_index_free(&ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_key_found_at_its_position),
        cmocka_unit_test(test_key_parts_are_separate),
        cmocka_unit_test(test_same_hash_told_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
