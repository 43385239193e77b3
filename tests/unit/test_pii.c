/* Unit tests for services/ingest/pii.c: sealing, binding to the row,
 * tenant separation, the blind index and reading across a key rotation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../services/ingest/pii.h"

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"

static struct pii_keyring ring(const char *current, int version, const char *previous)
{
    struct pii_keyring k;
    char err[256];
    assert_int_equal(pii_keyring_init(&k, current, version, previous, err, sizeof(err)), 0);
    return k;
}

static void test_seal_open_round_trip(void **state)
{
    struct pii_keyring k = ring(KEY_A, 1, NULL);
    char *sealed = pii_seal(&k, "demo", "m-1", "phone", "13800138000");
    assert_non_null(sealed);
    assert_memory_equal(sealed, "\\x", 2);
    assert_null(strstr(sealed, "13800138000"));
    char *clear = pii_open(&k, 1, "demo", "m-1", "phone", sealed);
    assert_non_null(clear);
    assert_string_equal(clear, "13800138000");
    free(clear);
    /* random nonces: sealing twice gives two different ciphertexts */
    char *again = pii_seal(&k, "demo", "m-1", "phone", "13800138000");
    assert_string_not_equal(sealed, again);
    free(again);
    free(sealed);
}

/* A ciphertext moved to another member, field or tenant does not open. */
static void test_sealed_value_is_bound_to_its_row(void **state)
{
    struct pii_keyring k = ring(KEY_A, 1, NULL);
    char *sealed = pii_seal(&k, "demo", "m-1", "phone", "13800138000");
    assert_null(pii_open(&k, 1, "demo", "m-2", "phone", sealed));
    assert_null(pii_open(&k, 1, "demo", "m-1", "name", sealed));
    assert_null(pii_open(&k, 1, "other", "m-1", "phone", sealed));
    sealed[10] = sealed[10] == '0' ? '1' : '0'; /* one flipped nibble */
    assert_null(pii_open(&k, 1, "demo", "m-1", "phone", sealed));
    free(sealed);
}

static void test_wrong_key_or_version_does_not_open(void **state)
{
    struct pii_keyring a = ring(KEY_A, 1, NULL), b = ring(KEY_B, 1, NULL);
    char *sealed = pii_seal(&a, "demo", "m-1", "name", "Li Lei");
    assert_null(pii_open(&b, 1, "demo", "m-1", "name", sealed));
    assert_null(pii_open(&a, 2, "demo", "m-1", "name", sealed));
    assert_null(pii_open(&a, 1, "demo", "m-1", "name", "\\xzz"));
    assert_null(pii_open(&a, 1, "demo", "m-1", "name", "not bytea"));
    assert_null(pii_open(&a, 1, "demo", "m-1", "name", "\\x00"));
    free(sealed);
}

/* The derived tenant keys are memoised per thread (pii.c): a keyring set
 * again in the same place with another key, or wiped, never opens with
 * what was derived from the old one; a third tenant between two opens
 * of the same tenant's value does not mix up keys. */
static void test_derived_keys_follow_the_keyring(void **state)
{
    struct pii_keyring k = ring(KEY_A, 1, NULL);
    char *sealed = pii_seal(&k, "demo", "m-1", "name", "Li Lei");
    char *clear = pii_open(&k, 1, "demo", "m-1", "name", sealed);
    assert_string_equal(clear, "Li Lei");
    free(clear);
    char *other = pii_seal(&k, "other", "m-1", "name", "Han Meimei");
    clear = pii_open(&k, 1, "demo", "m-1", "name", sealed);
    assert_string_equal(clear, "Li Lei");
    free(clear);
    assert_null(pii_open(&k, 1, "demo", "m-1", "name", other));
    k = ring(KEY_B, 1, NULL); /* the same place, another key */
    assert_null(pii_open(&k, 1, "demo", "m-1", "name", sealed));
    pii_keyring_wipe(&k);
    assert_null(pii_open(&k, 1, "demo", "m-1", "name", sealed));
    free(other);
    free(sealed);
}

/* After a rotation the ring reads both versions and seals under the new. */
static void test_rotation_reads_previous_and_seals_current(void **state)
{
    struct pii_keyring old = ring(KEY_A, 1, NULL), rotated = ring(KEY_B, 2, KEY_A);
    char *sealed_v1 = pii_seal(&old, "demo", "m-1", "email", "li@example.com");
    char *clear = pii_open(&rotated, 1, "demo", "m-1", "email", sealed_v1);
    assert_non_null(clear);
    assert_string_equal(clear, "li@example.com");
    free(clear);
    char *sealed_v2 = pii_seal(&rotated, "demo", "m-1", "email", "li@example.com");
    assert_null(pii_open(&old, 1, "demo", "m-1", "email", sealed_v2));
    clear = pii_open(&rotated, 2, "demo", "m-1", "email", sealed_v2);
    assert_string_equal(clear, "li@example.com");
    free(clear);
    assert_true(pii_keyring_has(&rotated, 1));
    assert_false(pii_keyring_has(&old, 2));
    free(sealed_v1);
    free(sealed_v2);
}

static void test_blind_index(void **state)
{
    struct pii_keyring a = ring(KEY_A, 1, NULL), b = ring(KEY_B, 2, KEY_A);
    char x[PII_BLIND_INDEX_HEX_BYTES], y[PII_BLIND_INDEX_HEX_BYTES];
    assert_true(pii_blind_index(&a, 1, "demo", "13800138000", x));
    assert_int_equal(strlen(x), 66);
    assert_true(pii_blind_index(&a, 1, "demo", "13800138000", y));
    assert_string_equal(x, y); /* deterministic: usable for lookup and uniqueness */
    assert_true(pii_blind_index(&a, 1, "demo", "13800138001", y));
    assert_string_not_equal(x, y);
    assert_true(pii_blind_index(&a, 1, "other", "13800138000", y));
    assert_string_not_equal(x, y); /* tenants cannot correlate members */
    assert_true(pii_blind_index(&b, 1, "demo", "13800138000", y));
    assert_string_equal(x, y); /* the previous key's index during a rotation */
    assert_true(pii_blind_index(&b, 2, "demo", "13800138000", y));
    assert_string_not_equal(x, y);
    assert_false(pii_blind_index(&a, 3, "demo", "13800138000", y));
}

static void test_bad_key_configuration(void **state)
{
    struct pii_keyring k;
    char err[256];
    assert_int_equal(pii_keyring_init(&k, "abc", 1, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "64 hex digits"));
    assert_int_equal(pii_keyring_init(&k, KEY_A "00", 1, NULL, err, sizeof(err)), -1);
    assert_int_equal(pii_keyring_init(&k, KEY_A, 0, NULL, err, sizeof(err)), -1);
    /* a previous key needs a current version of at least 2 */
    assert_int_equal(pii_keyring_init(&k, KEY_B, 1, KEY_A, err, sizeof(err)), -1);
    assert_int_equal(pii_keyring_init(&k, KEY_B, 2, "nothex", err, sizeof(err)), -1);
    assert_null(strstr(err, KEY_B)); /* keys are never echoed */
}

static void test_too_long_plaintext_is_refused(void **state)
{
    struct pii_keyring k = ring(KEY_A, 1, NULL);
    char *big = malloc(PII_PLAINTEXT_MAX + 2);
    memset(big, 'a', PII_PLAINTEXT_MAX + 1);
    big[PII_PLAINTEXT_MAX + 1] = '\0';
    assert_null(pii_seal(&k, "demo", "m-1", "name", big));
    big[PII_PLAINTEXT_MAX] = '\0';
    char *sealed = pii_seal(&k, "demo", "m-1", "name", big);
    char *clear = pii_open(&k, 1, "demo", "m-1", "name", sealed);
    assert_string_equal(clear, big);
    free(clear);
    free(sealed);
    free(big);
}

/* A member's data key: wrapped under the tenant key and bound to the
 * member; what it seals opens only with it, for that member and field. */
static void test_data_key_wrap_and_box(void **state)
{
    struct pii_keyring k = ring(KEY_A, 1, NULL);
    unsigned char key[PII_DATA_KEY_BYTES], back[PII_DATA_KEY_BYTES], other[PII_DATA_KEY_BYTES];
    pii_data_key_new(key);
    pii_data_key_new(other);
    assert_memory_not_equal(key, other, sizeof(key));
    char *wrapped = pii_data_key_wrap(&k, "demo", "m-1", key);
    assert_non_null(wrapped);
    assert_true(pii_data_key_unwrap(&k, 1, "demo", "m-1", wrapped, back));
    assert_memory_equal(key, back, sizeof(key));
    assert_false(pii_data_key_unwrap(&k, 1, "demo", "m-2", wrapped, back));
    assert_false(pii_data_key_unwrap(&k, 1, "rival", "m-1", wrapped, back));
    assert_false(pii_data_key_unwrap(&k, 2, "demo", "m-1", wrapped, back));
    /* after a rotation the previous version still unwraps it */
    struct pii_keyring rotated = ring(KEY_B, 2, KEY_A);
    assert_true(pii_data_key_unwrap(&rotated, 1, "demo", "m-1", wrapped, back));
    assert_false(pii_data_key_unwrap(&rotated, 2, "demo", "m-1", wrapped, back));
    free(wrapped);

    const uint8_t plain[] = "Li Lei 13800138000";
    size_t len = 0, open_len = 0;
    uint8_t *sealed =
        pii_box_seal(key, "demo", "m-1", "member_registered", plain, sizeof(plain) - 1, &len);
    assert_non_null(sealed);
    assert_int_equal(len, sizeof(plain) - 1 + PII_BOX_OVERHEAD);
    assert_null(memmem(sealed, len, "13800138000", 11));
    uint8_t *opened = pii_box_open(key, "demo", "m-1", "member_registered", sealed, len, &open_len);
    assert_non_null(opened);
    assert_int_equal(open_len, sizeof(plain) - 1);
    assert_memory_equal(opened, plain, open_len);
    free(opened);
    /* a destroyed key is gone for good: no other key, member or field opens it */
    assert_null(pii_box_open(other, "demo", "m-1", "member_registered", sealed, len, &open_len));
    assert_null(pii_box_open(key, "demo", "m-2", "member_registered", sealed, len, &open_len));
    assert_null(pii_box_open(key, "demo", "m-1", "name", sealed, len, &open_len));
    sealed[len - 1] ^= 1;
    assert_null(pii_box_open(key, "demo", "m-1", "member_registered", sealed, len, &open_len));
    free(sealed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_open_round_trip),
        cmocka_unit_test(test_data_key_wrap_and_box),
        cmocka_unit_test(test_sealed_value_is_bound_to_its_row),
        cmocka_unit_test(test_wrong_key_or_version_does_not_open),
        cmocka_unit_test(test_derived_keys_follow_the_keyring),
        cmocka_unit_test(test_rotation_reads_previous_and_seals_current),
        cmocka_unit_test(test_blind_index),
        cmocka_unit_test(test_bad_key_configuration),
        cmocka_unit_test(test_too_long_plaintext_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
