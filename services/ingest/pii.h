/* PII at rest: a member's name, phone, email, birthday, gender and
 * attributes are sealed with
 * XChaCha20-Poly1305 (libsodium AEAD) under a per-tenant key, and the phone
 * is found through a keyed blind index. Both keys are derived from the
 * operator's master key, so the database alone reveals nothing:
 *
 *   tenant root = BLAKE2b(key = master, "tessera-tenant:" || tenant_id)
 *   seal key    = crypto_kdf(tenant root, id 1, "tsrpii01")
 *   index key   = crypto_kdf(tenant root, id 2, "tsrbidx1")
 *
 * Master keys are versioned: rows keep the version that sealed them, the
 * keyring holds the current key and optionally the previous one, so a
 * rotation is: deploy the new key as current and the old one as previous,
 * then run `tessera-ingest --reencrypt-pii`. No I/O here: unit-tested.
 *
 * Each member also has a random data key of its own, kept only in
 * ingest's member_keys table, wrapped (sealed) under the tenant's seal
 * key. What leaves ingest with personal data in it (MemberRegistered on
 * member-events, kept forever) is sealed under that data key: destroying
 * the member's key row makes every copy unreadable (crypto-shredding),
 * however many consumers, replicas or backups of the topic hold it. */
#ifndef TESSERA_INGEST_PII_H
#define TESSERA_INGEST_PII_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PII_MASTER_KEY_BYTES       32
#define PII_MASTER_KEY_VERSION_MAX 1000000
#define PII_BLIND_INDEX_HEX_BYTES  69   /* "\x" + 64 hex digits + NUL */
#define PII_PLAINTEXT_MAX          1024 /* longest sealed field (bytes) */
#define PII_DATA_KEY_BYTES         32
#define PII_BOX_OVERHEAD           40    /* nonce (24) and tag (16) of pii_box_seal */
#define PII_BOX_PLAINTEXT_MAX      16384 /* longest data sealed under a data key */

/* The field named in the associated data of MemberRegistered's seal. */
#define PII_MEMBER_REGISTERED_FIELD "member_registered"

struct pii_keyring {
    int current_version;
    unsigned char current[PII_MASTER_KEY_BYTES];
    int previous_version; /* 0: no previous key configured */
    unsigned char previous[PII_MASTER_KEY_BYTES];
    /* Set by pii_keyring_init, unique in the process (0 once wiped): names
     * these keys in the per-thread memo of derived tenant keys (pii.c). */
    uint64_t generation;
};

/* Fills the keyring from hex keys (64 hex digits each). previous_hex may be
 * NULL or "" (no previous key); its version is current_version - 1.
 * Returns 0, or -1 with a reason in err (the key itself is never echoed). */
int pii_keyring_init(struct pii_keyring *k, const char *current_hex, int current_version,
                     const char *previous_hex, char *err, size_t err_len)
    __attribute__((warn_unused_result));
/* Wipes the key material. */
void pii_keyring_wipe(struct pii_keyring *k);
/* True when the keyring holds the key of this version. */
bool pii_keyring_has(const struct pii_keyring *k, int version);

/* Seals plaintext for one field of one member under the current key. The
 * tenant, member and field are authenticated (not encrypted) data, so a
 * ciphertext copied to another row or column fails to open. Returns a
 * malloc'ed PostgreSQL bytea literal ("\x" + hex of nonce || ciphertext)
 * the caller frees, or NULL when plaintext is NULL or too long. */
char *pii_seal(const struct pii_keyring *k, const char *tenant_id, const char *member_id,
               const char *field, const char *plaintext);
/* Opens a bytea literal as PostgreSQL returns it in text format, sealed
 * under key version. Returns a malloc'ed string the caller frees, or NULL
 * when the key is unknown, the literal malformed or the tag does not
 * verify (tampered, wrong row, wrong key). */
char *pii_open(const struct pii_keyring *k, int version, const char *tenant_id,
               const char *member_id, const char *field, const char *bytea_text);

/* The blind index of a phone in a tenant under key version, as a bytea
 * literal. Deterministic (equal phones, equal index) but useless without
 * the key. False when the keyring lacks that version. */
bool pii_blind_index(const struct pii_keyring *k, int version, const char *tenant_id,
                     const char *phone, char out[PII_BLIND_INDEX_HEX_BYTES])
    __attribute__((warn_unused_result));

/* A login code's keyed hash (BLAKE2b under a third derived key, current
 * version) over the phone's blind index and the code, as a bytea literal:
 * six digits cannot be guessed back from it without the master key. */
bool pii_code_hash(const struct pii_keyring *k, const char *tenant_id, const char *phone_index,
                   const char *code, char out[PII_BLIND_INDEX_HEX_BYTES])
    __attribute__((warn_unused_result));

/* The tenant's seal key of key version (what pii_seal seals under), for
 * sealing larger data with pii_box_seal (the member-profile cache). False
 * when the keyring lacks that version. The caller wipes key. */
bool pii_tenant_seal_key(const struct pii_keyring *k, int version, const char *tenant_id,
                         unsigned char key[PII_DATA_KEY_BYTES]) __attribute__((warn_unused_result));

/* A new random data key for one member. */
void pii_data_key_new(unsigned char key[PII_DATA_KEY_BYTES]);
/* The data key sealed under the tenant's key (current version) and bound
 * to the member: a malloc'ed bytea literal for member_keys, or NULL. */
char *pii_data_key_wrap(const struct pii_keyring *k, const char *tenant_id, const char *member_id,
                        const unsigned char key[PII_DATA_KEY_BYTES]);
/* Opens a wrapped data key (bytea literal as PostgreSQL returns it) sealed
 * under key version. False when the version is unknown or it does not
 * verify. */
bool pii_data_key_unwrap(const struct pii_keyring *k, int version, const char *tenant_id,
                         const char *member_id, const char *bytea_text,
                         unsigned char key[PII_DATA_KEY_BYTES]) __attribute__((warn_unused_result));
/* Seals len bytes under a member's data key (XChaCha20-Poly1305, tenant,
 * member and field authenticated): nonce || ciphertext, malloc'ed, its
 * size in *out_len (len + PII_BOX_OVERHEAD). NULL when too long. */
uint8_t *pii_box_seal(const unsigned char key[PII_DATA_KEY_BYTES], const char *tenant_id,
                      const char *member_id, const char *field, const uint8_t *plain, size_t len,
                      size_t *out_len);
/* Opens what pii_box_seal made: the plaintext, malloc'ed (NUL-terminated
 * for convenience, *out_len excludes it), or NULL when it does not verify. */
uint8_t *pii_box_open(const unsigned char key[PII_DATA_KEY_BYTES], const char *tenant_id,
                      const char *member_id, const char *field, const uint8_t *sealed, size_t len,
                      size_t *out_len);

#endif
