/* Unit tests for the member-view cache's pure parts: the sealed profile
 * (services/ingest/profile_cache.c: it opens only for its tenant, member,
 * view version and a configured key, never shows the clear text, and
 * reads across a key rotation) and the profile field's version rule
 * (libs/cache/cache_view.c: an older fill never replaces a newer version
 * or its tombstone). The script is held to the same rule against Redis by
 * tests/e2e/test_member_view_cache.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../services/ingest/profile_cache.h"
#include "cache/cache_view.h"

#define KEY_A   "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B   "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"
#define PROFILE "{\"member_id\":\"m1\",\"name\":\"Wang Xiaoming\",\"phone\":\"13900000000\"}"

static struct pii_keyring ring(const char *current, int version, const char *previous)
{
    struct pii_keyring k;
    char err[256];
    assert_int_equal(pii_keyring_init(&k, current, version, previous, err, sizeof(err)), 0);
    return k;
}

static void test_sealed_profile_round_trip_and_no_clear_text(void **state)
{
    struct pii_keyring k = ring(KEY_A, 1, NULL);
    size_t len = 0;
    char *sealed = profile_cache_seal(&k, "t1", "m1", 7, PROFILE, strlen(PROFILE), &len);
    assert_non_null(sealed);
    assert_memory_equal(sealed, "1|", 2); /* the key version first */
    assert_null(memmem(sealed, len, "Wang", 4));
    assert_null(memmem(sealed, len, "13900000000", 11));
    char *clear = profile_cache_open(&k, "t1", "m1", 7, sealed, len);
    assert_non_null(clear);
    assert_string_equal(clear, PROFILE);
    free(clear);
    free(sealed);
}

static void test_sealed_profile_is_bound_to_member_version_and_key(void **state)
{
    struct pii_keyring k = ring(KEY_A, 1, NULL), other = ring(KEY_B, 1, NULL);
    size_t len = 0;
    char *sealed = profile_cache_seal(&k, "t1", "m1", 7, PROFILE, strlen(PROFILE), &len);
    assert_null(profile_cache_open(&k, "t1", "m2", 7, sealed, len));     /* another member */
    assert_null(profile_cache_open(&k, "t2", "m1", 7, sealed, len));     /* another tenant */
    assert_null(profile_cache_open(&k, "t1", "m1", 6, sealed, len));     /* an older version */
    assert_null(profile_cache_open(&other, "t1", "m1", 7, sealed, len)); /* another key */
    sealed[len - 1] ^= 1;                                                /* tampered */
    assert_null(profile_cache_open(&k, "t1", "m1", 7, sealed, len));
    assert_null(profile_cache_open(&k, "t1", "m1", 7, "1|", 2)); /* truncated */
    assert_null(profile_cache_open(&k, "t1", "m1", 7, "x|abc", 5));
    free(sealed);
}

static void test_sealed_profile_reads_across_a_rotation(void **state)
{
    struct pii_keyring old = ring(KEY_A, 1, NULL), rotated = ring(KEY_B, 2, KEY_A),
                       only_new = ring(KEY_B, 2, NULL);
    size_t len = 0;
    char *sealed = profile_cache_seal(&old, "t1", "m1", 3, PROFILE, strlen(PROFILE), &len);
    char *clear = profile_cache_open(&rotated, "t1", "m1", 3, sealed, len);
    assert_non_null(clear);
    free(clear);
    assert_null(profile_cache_open(&only_new, "t1", "m1", 3, sealed, len)); /* a miss: refilled */
    free(sealed);
}

/* The rule: a fill replaces nothing, an unreadable value, an older version
 * or the same version; a tombstone only an older version. */
static void test_profile_version_rule(void **state)
{
    assert_true(cache_view_profile_replaces(NULL, 0, 1, false));
    assert_true(cache_view_profile_replaces("garbage", 7, 1, false));
    assert_true(cache_view_profile_replaces("3|1|box", 7, 4, false));
    assert_true(cache_view_profile_replaces("3|", 2, 4, false));
    assert_false(cache_view_profile_replaces("5|", 2, 4, false));      /* a newer tombstone */
    assert_false(cache_view_profile_replaces("5|1|box", 7, 4, false)); /* a newer profile */
    assert_true(cache_view_profile_replaces("4|", 2, 4, false));       /* read after the change */
    assert_true(cache_view_profile_replaces("3|1|box", 7, 4, true));
    assert_false(cache_view_profile_replaces("4|1|box", 7, 4, true)); /* the same state, kept */
    assert_false(cache_view_profile_replaces("4|", 2, 4, true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sealed_profile_round_trip_and_no_clear_text),
        cmocka_unit_test(test_sealed_profile_is_bound_to_member_version_and_key),
        cmocka_unit_test(test_sealed_profile_reads_across_a_rotation),
        cmocka_unit_test(test_profile_version_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
