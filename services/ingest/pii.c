/* Sealing and blind-indexing member PII (see pii.h for the key scheme). */
#include "db/db.h"
#include "pii.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TENANT_ROOT_PREFIX "tessera-tenant:"
#define SEAL_KDF_ID        1
#define SEAL_KDF_CONTEXT   "tsrpii01"
#define INDEX_KDF_ID       2
#define INDEX_KDF_CONTEXT  "tsrbidx1"
#define CODE_KDF_ID        3
#define CODE_KDF_CONTEXT   "tsrcode1"
#define DATA_KEY_FIELD     "data_key" /* the AD's field of a wrapped data key */
#define AD_MAX             512
#define NONCE_BYTES        crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES          crypto_aead_xchacha20poly1305_ietf_ABYTES

_Static_assert(sizeof(SEAL_KDF_CONTEXT) - 1 == crypto_kdf_CONTEXTBYTES, "kdf context size");
_Static_assert(sizeof(INDEX_KDF_CONTEXT) - 1 == crypto_kdf_CONTEXTBYTES, "kdf context size");
_Static_assert(PII_MASTER_KEY_BYTES == crypto_kdf_KEYBYTES, "master key size");

/* The keyrings made so far: each gets the next number (pii.h). */
static atomic_uint_fast64_t keyring_generations;

/* ---- derived keys, memoised per thread
 * Every cached member view opens a box under its tenant's seal key, and
 * deriving it was a fifth of the box's cost: the last keys derived are
 * kept per thread (no lock), named by the keyring's generation, the key
 * version, the kdf id and the tenant. They are as secret as the master
 * keys the process already holds, and live as long. */
#define DERIVED_MEMO_SLOTS      16
#define DERIVED_MEMO_TENANT_MAX 64 /* longer tenant ids are derived each time */

struct derived_memo {
    uint64_t generation; /* 0: an empty slot */
    int version;
    uint64_t kdf_id;
    char tenant_id[DERIVED_MEMO_TENANT_MAX];
    unsigned char key[32];
};

static _Thread_local struct derived_memo derived_memo[DERIVED_MEMO_SLOTS];
static _Thread_local unsigned derived_memo_next; /* the slot replaced next */

static int key_from_hex(unsigned char out[PII_MASTER_KEY_BYTES], const char *hex)
{
    size_t len = 0;
    if (!hex || strlen(hex) != 2 * PII_MASTER_KEY_BYTES)
        return -1;
    if (sodium_hex2bin(out, PII_MASTER_KEY_BYTES, hex, strlen(hex), NULL, &len, NULL) != 0)
        return -1;
    return len == PII_MASTER_KEY_BYTES ? 0 : -1;
}

int pii_keyring_init(struct pii_keyring *k, const char *current_hex, int current_version,
                     const char *previous_hex, char *err, size_t err_len)
{
    memset(k, 0, sizeof(*k));
    if (sodium_init() < 0) {
        snprintf(err, err_len, "libsodium did not initialise");
        return -1;
    }
    if (current_version < 1 || current_version > PII_MASTER_KEY_VERSION_MAX) {
        snprintf(err, err_len, "the master key version must be 1..%d", PII_MASTER_KEY_VERSION_MAX);
        return -1;
    }
    if (key_from_hex(k->current, current_hex) < 0) {
        snprintf(err, err_len, "TESSERA_MASTER_KEY must be 64 hex digits (32 random bytes)");
        return -1;
    }
    k->current_version = current_version;
    k->generation = atomic_fetch_add(&keyring_generations, 1) + 1;
    if (previous_hex && *previous_hex) {
        if (current_version < 2 || key_from_hex(k->previous, previous_hex) < 0) {
            pii_keyring_wipe(k);
            snprintf(err, err_len,
                     "TESSERA_MASTER_KEY_PREVIOUS must be 64 hex digits, with a current "
                     "version of 2 or more");
            return -1;
        }
        k->previous_version = current_version - 1;
    }
    return 0;
}

void pii_keyring_wipe(struct pii_keyring *k)
{
    for (size_t i = 0; k->generation != 0 && i < DERIVED_MEMO_SLOTS; i++)
        if (derived_memo[i].generation == k->generation)
            sodium_memzero(&derived_memo[i], sizeof(derived_memo[i]));
    sodium_memzero(k, sizeof(*k));
}

bool pii_keyring_has(const struct pii_keyring *k, int version)
{
    return version >= 1 && (version == k->current_version || version == k->previous_version);
}

static const unsigned char *master_of(const struct pii_keyring *k, int version)
{
    if (version >= 1 && version == k->current_version)
        return k->current;
    if (version >= 1 && version == k->previous_version)
        return k->previous;
    return NULL;
}

/* Derives the tenant's key number kdf_id from the master key (two
 * BLAKE2b passes). */
static void derive_from_master(const unsigned char *master, const char *tenant_id, uint64_t kdf_id,
                               const char *context, unsigned char out[32])
{
    unsigned char root[crypto_kdf_KEYBYTES];
    crypto_generichash_state st;
    crypto_generichash_init(&st, master, PII_MASTER_KEY_BYTES, sizeof(root));
    crypto_generichash_update(&st, (const unsigned char *)TENANT_ROOT_PREFIX,
                              strlen(TENANT_ROOT_PREFIX));
    crypto_generichash_update(&st, (const unsigned char *)tenant_id, strlen(tenant_id));
    crypto_generichash_final(&st, root, sizeof(root));
    crypto_kdf_derive_from_key(out, 32, kdf_id, context, root);
    sodium_memzero(root, sizeof(root));
}

static struct derived_memo *memo_find(uint64_t generation, int version, uint64_t kdf_id,
                                      const char *tenant_id)
{
    for (size_t i = 0; i < DERIVED_MEMO_SLOTS; i++) {
        struct derived_memo *m = &derived_memo[i];
        if (m->generation == generation && m->version == version && m->kdf_id == kdf_id &&
            strcmp(m->tenant_id, tenant_id) == 0)
            return m;
    }
    return NULL;
}

/* Derives the tenant's key number kdf_id; false when the version is unknown. */
static bool derive(const struct pii_keyring *k, int version, const char *tenant_id, uint64_t kdf_id,
                   const char *context, unsigned char out[32])
{
    const unsigned char *master = master_of(k, version);
    if (!master)
        return false;
    bool memoised = k->generation != 0 && strlen(tenant_id) < DERIVED_MEMO_TENANT_MAX;
    struct derived_memo *m = memoised ? memo_find(k->generation, version, kdf_id, tenant_id) : NULL;
    if (m) {
        memcpy(out, m->key, 32);
        return true;
    }
    derive_from_master(master, tenant_id, kdf_id, context, out);
    if (memoised) {
        m = &derived_memo[derived_memo_next++ % DERIVED_MEMO_SLOTS];
        *m = (struct derived_memo){
            .generation = k->generation, .version = version, .kdf_id = kdf_id};
        memcpy(m->tenant_id, tenant_id, strlen(tenant_id) + 1);
        memcpy(m->key, out, 32);
    }
    return true;
}

bool pii_tenant_seal_key(const struct pii_keyring *k, int version, const char *tenant_id,
                         unsigned char key[PII_DATA_KEY_BYTES])
{
    _Static_assert(PII_DATA_KEY_BYTES == 32, "a seal key is 32 bytes");
    return derive(k, version, tenant_id, SEAL_KDF_ID, SEAL_KDF_CONTEXT, key);
}

/* "tenant\0member\0field": binds a ciphertext to its row and column. */
static size_t make_ad(unsigned char ad[AD_MAX], const char *tenant_id, const char *member_id,
                      const char *field)
{
    int n = snprintf((char *)ad, AD_MAX, "%s%c%s%c%s", tenant_id, 0, member_id, 0, field);
    return n > 0 && n < AD_MAX ? (size_t)n : 0;
}

char *pii_seal(const struct pii_keyring *k, const char *tenant_id, const char *member_id,
               const char *field, const char *plaintext)
{
    size_t len = plaintext ? strlen(plaintext) : 0;
    unsigned char ad[AD_MAX], key[32];
    size_t ad_len = make_ad(ad, tenant_id, member_id, field);
    if (!plaintext || len > PII_PLAINTEXT_MAX || ad_len == 0)
        return NULL;
    if (!derive(k, k->current_version, tenant_id, SEAL_KDF_ID, SEAL_KDF_CONTEXT, key))
        return NULL;
    unsigned char sealed[NONCE_BYTES + PII_PLAINTEXT_MAX + TAG_BYTES];
    randombytes_buf(sealed, NONCE_BYTES);
    unsigned long long sealed_len = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + NONCE_BYTES, &sealed_len,
                                               (const unsigned char *)plaintext, len, ad, ad_len,
                                               NULL, sealed, key);
    sodium_memzero(key, sizeof(key));
    size_t total = NONCE_BYTES + (size_t)sealed_len;
    return db_bytea_text(sealed, total);
}

char *pii_open(const struct pii_keyring *k, int version, const char *tenant_id,
               const char *member_id, const char *field, const char *bytea_text)
{
    unsigned char sealed[NONCE_BYTES + PII_PLAINTEXT_MAX + TAG_BYTES], ad[AD_MAX], key[32];
    size_t sealed_len = 0, ad_len = make_ad(ad, tenant_id, member_id, field);
    if (!bytea_text || strncmp(bytea_text, "\\x", 2) != 0 || ad_len == 0)
        return NULL;
    const char *hex = bytea_text + 2;
    if (strlen(hex) > 2 * sizeof(sealed) ||
        sodium_hex2bin(sealed, sizeof(sealed), hex, strlen(hex), NULL, &sealed_len, NULL) != 0 ||
        sealed_len < NONCE_BYTES + TAG_BYTES)
        return NULL;
    if (!derive(k, version, tenant_id, SEAL_KDF_ID, SEAL_KDF_CONTEXT, key))
        return NULL;
    char *plain = malloc(sealed_len - NONCE_BYTES - TAG_BYTES + 1);
    unsigned long long plain_len = 0;
    int rc = plain ? crypto_aead_xchacha20poly1305_ietf_decrypt(
                         (unsigned char *)plain, &plain_len, NULL, sealed + NONCE_BYTES,
                         sealed_len - NONCE_BYTES, ad, ad_len, sealed, key)
                   : -1;
    sodium_memzero(key, sizeof(key));
    if (rc != 0) {
        free(plain);
        return NULL;
    }
    plain[plain_len] = '\0';
    return plain;
}

bool pii_blind_index(const struct pii_keyring *k, int version, const char *tenant_id,
                     const char *phone, char out[PII_BLIND_INDEX_HEX_BYTES])
{
    unsigned char key[32], digest[32];
    if (!derive(k, version, tenant_id, INDEX_KDF_ID, INDEX_KDF_CONTEXT, key))
        return false;
    crypto_generichash(digest, sizeof(digest), (const unsigned char *)phone, strlen(phone), key,
                       sizeof(key));
    sodium_memzero(key, sizeof(key));
    memcpy(out, "\\x", 2);
    sodium_bin2hex(out + 2, PII_BLIND_INDEX_HEX_BYTES - 2, digest, sizeof(digest));
    return true;
}

bool pii_code_hash(const struct pii_keyring *k, const char *tenant_id, const char *phone_index,
                   const char *code, char out[PII_BLIND_INDEX_HEX_BYTES])
{
    unsigned char key[32], digest[32];
    if (!derive(k, k->current_version, tenant_id, CODE_KDF_ID, CODE_KDF_CONTEXT, key))
        return false;
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, sizeof(key), sizeof(digest));
    crypto_generichash_update(&st, (const unsigned char *)phone_index, strlen(phone_index) + 1);
    crypto_generichash_update(&st, (const unsigned char *)code, strlen(code));
    crypto_generichash_final(&st, digest, sizeof(digest));
    sodium_memzero(key, sizeof(key));
    memcpy(out, "\\x", 2);
    sodium_bin2hex(out + 2, PII_BLIND_INDEX_HEX_BYTES - 2, digest, sizeof(digest));
    return true;
}

/* ------------------------------------------------------------ data keys */
void pii_data_key_new(unsigned char key[PII_DATA_KEY_BYTES])
{
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
}

uint8_t *pii_box_seal(const unsigned char key[PII_DATA_KEY_BYTES], const char *tenant_id,
                      const char *member_id, const char *field, const uint8_t *plain, size_t len,
                      size_t *out_len)
{
    unsigned char ad[AD_MAX];
    size_t ad_len = make_ad(ad, tenant_id, member_id, field);
    if (len > PII_BOX_PLAINTEXT_MAX || ad_len == 0)
        return NULL;
    uint8_t *out = malloc(len + PII_BOX_OVERHEAD);
    if (!out)
        return NULL;
    randombytes_buf(out, NONCE_BYTES);
    unsigned long long sealed_len = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + NONCE_BYTES, &sealed_len, plain, len, ad,
                                               ad_len, NULL, out, key);
    *out_len = NONCE_BYTES + (size_t)sealed_len;
    return out;
}

uint8_t *pii_box_open(const unsigned char key[PII_DATA_KEY_BYTES], const char *tenant_id,
                      const char *member_id, const char *field, const uint8_t *sealed, size_t len,
                      size_t *out_len)
{
    unsigned char ad[AD_MAX];
    size_t ad_len = make_ad(ad, tenant_id, member_id, field);
    if (len < PII_BOX_OVERHEAD || len > PII_BOX_PLAINTEXT_MAX + PII_BOX_OVERHEAD || ad_len == 0)
        return NULL;
    uint8_t *plain = malloc(len - PII_BOX_OVERHEAD + 1);
    unsigned long long plain_len = 0;
    if (!plain || crypto_aead_xchacha20poly1305_ietf_decrypt(
                      plain, &plain_len, NULL, sealed + NONCE_BYTES, len - NONCE_BYTES, ad, ad_len,
                      sealed, key) != 0) {
        free(plain);
        return NULL;
    }
    plain[plain_len] = '\0';
    *out_len = (size_t)plain_len;
    return plain;
}

char *pii_data_key_wrap(const struct pii_keyring *k, const char *tenant_id, const char *member_id,
                        const unsigned char key[PII_DATA_KEY_BYTES])
{
    unsigned char tenant_key[32];
    if (!derive(k, k->current_version, tenant_id, SEAL_KDF_ID, SEAL_KDF_CONTEXT, tenant_key))
        return NULL;
    size_t len = 0;
    uint8_t *sealed = pii_box_seal(tenant_key, tenant_id, member_id, DATA_KEY_FIELD, key,
                                   PII_DATA_KEY_BYTES, &len);
    sodium_memzero(tenant_key, sizeof(tenant_key));
    char *hex = sealed ? db_bytea_text(sealed, len) : NULL;
    free(sealed);
    return hex;
}

bool pii_data_key_unwrap(const struct pii_keyring *k, int version, const char *tenant_id,
                         const char *member_id, const char *bytea_text,
                         unsigned char key[PII_DATA_KEY_BYTES])
{
    uint8_t sealed[PII_DATA_KEY_BYTES + PII_BOX_OVERHEAD];
    size_t sealed_len = 0, plain_len = 0;
    unsigned char tenant_key[32];
    if (!bytea_text || strncmp(bytea_text, "\\x", 2) != 0 ||
        strlen(bytea_text + 2) != 2 * sizeof(sealed) ||
        sodium_hex2bin(sealed, sizeof(sealed), bytea_text + 2, 2 * sizeof(sealed), NULL,
                       &sealed_len, NULL) != 0 ||
        !derive(k, version, tenant_id, SEAL_KDF_ID, SEAL_KDF_CONTEXT, tenant_key))
        return false;
    uint8_t *plain = pii_box_open(tenant_key, tenant_id, member_id, DATA_KEY_FIELD, sealed,
                                  sealed_len, &plain_len);
    sodium_memzero(tenant_key, sizeof(tenant_key));
    bool ok = plain && plain_len == PII_DATA_KEY_BYTES;
    if (ok)
        memcpy(key, plain, PII_DATA_KEY_BYTES);
    if (plain)
        sodium_memzero(plain, plain_len);
    free(plain);
    return ok;
}
