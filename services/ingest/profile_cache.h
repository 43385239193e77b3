/* The member's profile in Redis (the "profile" field of ingest's view hash,
 * libs/cache/cache_view.h), sealed. Personal data never sits in Redis in
 * clear text: the profile, as the member view shows it, is sealed as one
 * XChaCha20-Poly1305 box under the tenant's seal key, the key the profile
 * columns are sealed under in PostgreSQL (pii.h), with the tenant, the
 * member and the view version authenticated, so a value copied to another
 * member or put back at another version does not open. Chosen over a
 * decrypted copy in each instance's memory: Redis is shared, so a change
 * made on one instance is seen by every other at once, with no broadcast,
 * and opening a box costs a few microseconds.
 *
 * Writers (PATCH, tags, erasure) bump ingest.members.view_version in the
 * statement of their change and, after it commits and before they answer,
 * leave the tombstone of that version (profile_cache_forget_then); a fill
 * never replaces a newer version, so a reader that read PostgreSQL before
 * the change cannot put the old profile back. A tombstone Redis did not
 * take is retried every PROFILE_FORGET_RETRY_MS until it is taken or the
 * hash has expired anyway (CACHE_VIEW_TTL_S). */
#ifndef TESSERA_INGEST_PROFILE_CACHE_H
#define TESSERA_INGEST_PROFILE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "pii.h"

#define PROFILE_FORGET_RETRY_MS    1000
#define PROFILE_FORGET_PENDING_MAX 10000 /* retries waiting at once; past it: logged, dropped */
#define PROFILE_CACHE_FIELD        "profile_cache"

/* The profile JSON (len bytes) sealed for the cache under the current key:
 * "<key_version>|" then nonce || ciphertext, malloc'ed, its size in
 * *out_len; NULL when too large (PII_BOX_PLAINTEXT_MAX) or no key. */
char *profile_cache_seal(const struct pii_keyring *k, const char *tenant_id, const char *member_id,
                         int64_t view_version, const char *json, size_t len, size_t *out_len);
/* Opens what profile_cache_seal made: the JSON, malloc'ed and
 * NUL-terminated (the caller wipes and frees it), or NULL when it does not
 * open (another member or version, a key no longer configured, tampered). */
char *profile_cache_open(const struct pii_keyring *k, const char *tenant_id, const char *member_id,
                         int64_t view_version, const char *sealed, size_t len);

struct req;
/* Leaves the tombstone of view_version for r's member, then next(r) once
 * Redis answered (or failed: the tombstone is then retried in the
 * background). */
void profile_cache_forget_then(struct req *r, int64_t view_version, void (*next)(struct req *r));

struct ingest;
/* Drops the member's cached coupons (a ledger verdict touched them),
 * retried like a tombstone. */
void profile_cache_forget_coupons(struct ingest *app, const char *tenant_id, const char *member_id);

/* At exit, after the cache is freed: the retries still waiting are
 * dropped (the hash expires on its own). */
void profile_cache_drop_pending(void);

#endif
