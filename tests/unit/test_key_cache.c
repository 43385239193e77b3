/* Unit tests for services/ingest/key_cache.c: hits and misses, expiry by
 * the clock, bad keys for a TTL, both kinds bounded (least recently used
 * known key goes first), a lookup that raced a change is not stored, and
 * a disabled cache holds nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../services/ingest/key_cache.h"

/* A 64-hex-digit "hash" made from n. */
static const char *hash_of(unsigned n, char out[KEY_CACHE_HASH_HEX])
{
    snprintf(out, KEY_CACHE_HASH_HEX, "%064x", n);
    return out;
}

static struct key_grant grant_of(const char *tenant, int64_t expires_at_ms)
{
    struct key_grant g = {.rate_limit_per_s = 7, .expires_at_ms = expires_at_ms};
    snprintf(g.caller.tenant_id, sizeof(g.caller.tenant_id), "%s", tenant);
    snprintf(g.caller.scope, sizeof(g.caller.scope), "admin");
    snprintf(g.caller.key_id, sizeof(g.caller.key_id), "key_1");
    return g;
}

static struct key_cache *enabled_cache(size_t max)
{
    struct key_cache *c = key_cache_new(max);
    assert_non_null(c);
    key_cache_set_enabled(c, true);
    return c;
}

static void test_known_key_is_a_hit_until_forgotten(void **state)
{
    struct key_cache *c = enabled_cache(10);
    char h[KEY_CACHE_HASH_HEX];
    struct key_grant g = grant_of("demo", 0), out;
    assert_int_equal(key_cache_get(c, hash_of(1, h), 1000, &out), KEY_CACHE_MISS);
    key_cache_put_known(c, h, &g, key_cache_generation(c));
    assert_int_equal(key_cache_get(c, h, 1000, &out), KEY_CACHE_KNOWN);
    assert_string_equal(out.caller.tenant_id, "demo");
    assert_int_equal(out.rate_limit_per_s, 7);
    key_cache_forget(c, h);
    assert_int_equal(key_cache_get(c, h, 1000, &out), KEY_CACHE_MISS);
    struct key_cache_stats st;
    key_cache_stats(c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.forgotten, 1);
    key_cache_free(c);
}

static void test_expiry_holds_on_a_hit(void **state)
{
    struct key_cache *c = enabled_cache(10);
    char h[KEY_CACHE_HASH_HEX];
    struct key_grant g = grant_of("demo", 5000), out;
    key_cache_put_known(c, hash_of(1, h), &g, key_cache_generation(c));
    assert_int_equal(key_cache_get(c, h, 4999, &out), KEY_CACHE_KNOWN);
    assert_int_equal(key_cache_get(c, h, 5000, &out), KEY_CACHE_UNKNOWN);
    assert_int_equal(key_cache_get(c, h, 5001, &out), KEY_CACHE_MISS); /* dropped: ask again */
    key_cache_free(c);
}

static void test_bad_key_remembered_for_its_ttl(void **state)
{
    struct key_cache *c = enabled_cache(10);
    char h[KEY_CACHE_HASH_HEX];
    struct key_grant out;
    key_cache_put_unknown(c, hash_of(9, h), 1000, key_cache_generation(c));
    assert_int_equal(key_cache_get(c, h, 1000 + KEY_CACHE_UNKNOWN_TTL_MS - 1, &out),
                     KEY_CACHE_UNKNOWN);
    assert_int_equal(key_cache_get(c, h, 1000 + KEY_CACHE_UNKNOWN_TTL_MS, &out), KEY_CACHE_MISS);
    key_cache_free(c);
}

static void test_both_kinds_are_bounded(void **state)
{
    struct key_cache *c = enabled_cache(3);
    char h[KEY_CACHE_HASH_HEX];
    struct key_grant g = grant_of("demo", 0), out;
    for (unsigned i = 1; i <= 3; i++)
        key_cache_put_known(c, hash_of(i, h), &g, key_cache_generation(c));
    assert_int_equal(key_cache_get(c, hash_of(1, h), 0, &out), KEY_CACHE_KNOWN); /* 1 is used */
    key_cache_put_known(c, hash_of(4, h), &g, key_cache_generation(c));
    assert_int_equal(key_cache_get(c, hash_of(2, h), 0, &out), KEY_CACHE_MISS); /* LRU went */
    assert_int_equal(key_cache_get(c, hash_of(1, h), 0, &out), KEY_CACHE_KNOWN);
    for (unsigned i = 0; i < 2 * KEY_CACHE_UNKNOWN_MAX; i++)
        key_cache_put_unknown(c, hash_of(1000 + i, h), 0, key_cache_generation(c));
    struct key_cache_stats st;
    key_cache_stats(c, &st);
    assert_int_equal(st.known, 3);
    assert_int_equal(st.unknown, KEY_CACHE_UNKNOWN_MAX);
    assert_int_equal(key_cache_get(c, hash_of(1000, h), 0, &out), KEY_CACHE_MISS); /* oldest */
    assert_int_equal(key_cache_get(c, hash_of(1000 + 2 * KEY_CACHE_UNKNOWN_MAX - 1, h), 0, &out),
                     KEY_CACHE_UNKNOWN);
    key_cache_free(c);
}

/* PostgreSQL answered "valid" for a read that began before a revocation
 * was heard: the answer must not be cached. */
static void test_lookup_that_raced_a_change_is_not_stored(void **state)
{
    struct key_cache *c = enabled_cache(10);
    char h[KEY_CACHE_HASH_HEX], other[KEY_CACHE_HASH_HEX];
    struct key_grant g = grant_of("demo", 0), out;
    uint64_t before = key_cache_generation(c);
    key_cache_forget(c, hash_of(1, h));
    key_cache_put_known(c, h, &g, before);
    assert_int_equal(key_cache_get(c, h, 0, &out), KEY_CACHE_MISS);
    before = key_cache_generation(c);
    key_cache_forget(c, hash_of(2, other));
    key_cache_put_unknown(c, h, 0, before);
    assert_int_equal(key_cache_get(c, h, 0, &out), KEY_CACHE_MISS);
    key_cache_free(c);
}

static void test_disabled_cache_holds_nothing(void **state)
{
    struct key_cache *c = enabled_cache(10);
    char h[KEY_CACHE_HASH_HEX];
    struct key_grant g = grant_of("demo", 0), out;
    key_cache_put_known(c, hash_of(1, h), &g, key_cache_generation(c));
    key_cache_set_enabled(c, false); /* the LISTEN connection was lost */
    assert_int_equal(key_cache_get(c, h, 0, &out), KEY_CACHE_MISS);
    key_cache_put_known(c, h, &g, key_cache_generation(c));
    assert_int_equal(key_cache_get(c, h, 0, &out), KEY_CACHE_MISS);
    struct key_cache_stats st;
    key_cache_stats(c, &st);
    assert_int_equal(st.known, 0);
    assert_int_equal(st.resets, 1);
    key_cache_set_enabled(c, true);
    key_cache_put_known(c, h, &g, key_cache_generation(c));
    assert_int_equal(key_cache_get(c, h, 0, &out), KEY_CACHE_KNOWN);
    key_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_key_is_a_hit_until_forgotten),
        cmocka_unit_test(test_expiry_holds_on_a_hit),
        cmocka_unit_test(test_bad_key_remembered_for_its_ttl),
        cmocka_unit_test(test_both_kinds_are_bounded),
        cmocka_unit_test(test_lookup_that_raced_a_change_is_not_stored),
        cmocka_unit_test(test_disabled_cache_holds_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
