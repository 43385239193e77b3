/* Resealing member PII under the current master key: the tool half of a
 * key rotation (`tessera-ingest --reencrypt-pii`) and of the upgrade from
 * plaintext rows. Blocking libpq; never runs on the API loop.
 *
 * Rows go in batches. Each update is a compare-and-set on the row's key
 * version, so a concurrent run or a registration never loses a write; a
 * row changed meanwhile is simply picked up by the next batch. Members'
 * data keys (member_keys) are rewrapped the same way: the keys themselves
 * never change, so what was sealed under them stays readable. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "ingest.h"
#include "log/log.h"

#define REENCRYPT_BATCH "500"

/* The sealed fields: their names (authenticated with each value), and
 * the columns of the query below holding the legacy plaintext and the
 * sealed value. */
#define FIELDS 6
static const char *const field_names[FIELDS] = {"name",     "phone",  "email",
                                                "birthday", "gender", "attributes"};
#define COL_TENANT    0
#define COL_MEMBER    1
#define COL_VERSION   2
#define COL_PLAIN(i)  (3 + (i))
#define COL_SEALED(i) (3 + FIELDS + (i))

/* Field i of row in the clear (malloc'ed), from the legacy column (version
 * 0) or by opening the sealed one. NULL when absent, or with *ok false
 * when it does not open. */
static char *field_clear(const struct pii_keyring *k, const PGresult *res, int row, int i,
                         int version, bool *ok)
{
    if (version == 0)
        return PQgetisnull(res, row, COL_PLAIN(i)) ? NULL
                                                   : strdup(PQgetvalue(res, row, COL_PLAIN(i)));
    if (PQgetisnull(res, row, COL_SEALED(i)))
        return NULL;
    char *clear =
        pii_open(k, version, PQgetvalue(res, row, COL_TENANT), PQgetvalue(res, row, COL_MEMBER),
                 field_names[i], PQgetvalue(res, row, COL_SEALED(i)));
    *ok = *ok && clear;
    return clear;
}

/* Opens every field of the row and seals it under the current key into
 * sealed[]; the phone's blind index goes to index, the email's to
 * email_index ("" without an email). False on failure. */
static bool row_reseal_fields(const struct pii_keyring *k, const PGresult *res, int row,
                              char *sealed[FIELDS], char *index, char *email_index)
{
    const char *tenant = PQgetvalue(res, row, COL_TENANT);
    int version = atoi(PQgetvalue(res, row, COL_VERSION));
    bool ok = version == 0 || pii_keyring_has(k, version), phone = false;
    email_index[0] = '\0';
    for (int i = 0; i < FIELDS && ok; i++) {
        char *clear = field_clear(k, res, row, i, version, &ok);
        sealed[i] = clear ? pii_seal(k, PQgetvalue(res, row, COL_TENANT),
                                     PQgetvalue(res, row, COL_MEMBER), field_names[i], clear)
                          : NULL;
        ok = ok && (sealed[i] || !clear);
        if (i == 1 && clear) /* the phone */
            ok = ok && (phone = pii_blind_index(k, k->current_version, tenant, clear, index));
        if (i == 2 && clear) /* the email */
            ok = ok && members_email_index(k, k->current_version, tenant, clear, email_index);
        if (clear)
            sodium_memzero(clear, strlen(clear));
        free(clear);
    }
    return ok && phone && sealed[0];
}

/* Reseals row; 1 when updated, 0 when the row changed meanwhile, -1. */
static int row_reseal(PGconn *pg, const struct pii_keyring *k, const PGresult *res, int row,
                      char *err, size_t err_len)
{
    const char *tenant = PQgetvalue(res, row, COL_TENANT), *member = PQgetvalue(res, row, 1);
    char *sealed[FIELDS] = {0}, index[PII_BLIND_INDEX_HEX_BYTES], version[16];
    char email_index[PII_BLIND_INDEX_HEX_BYTES];
    bool ok = row_reseal_fields(k, res, row, sealed, index, email_index);
    snprintf(version, sizeof(version), "%d", k->current_version);
    const char *p[12] = {tenant,    member,    PQgetvalue(res, row, COL_VERSION),
                         sealed[0], sealed[1], sealed[2],
                         sealed[3], sealed[4], sealed[5],
                         index,     version,   email_index[0] ? email_index : NULL};
    PGresult *up = ok ? db_query(pg,
                                 "UPDATE members SET name = NULL, phone = NULL, email = NULL, "
                                 "birthday = NULL, gender = NULL, attributes = '{}', "
                                 "name_enc = $4, phone_enc = $5, email_enc = $6, birthday_enc = "
                                 "$7, gender_enc = $8, attributes_enc = $9, phone_bidx = $10, "
                                 "pii_key_version = $11, email_bidx = $12, "
                                 "view_version = view_version + 1 WHERE tenant_id = $1 "
                                 "AND member_id = $2 AND pii_key_version = $3",
                                 12, p, err, err_len, NULL)
                      : NULL;
    if (!ok)
        snprintf(err, err_len,
                 "member %s of tenant %s: sealed under key version %s, which is not configured "
                 "(or its data does not verify)",
                 member, tenant, PQgetvalue(res, row, COL_VERSION));
    for (int i = 0; i < FIELDS; i++)
        free(sealed[i]);
    if (!up)
        return -1;
    int changed = atoi(PQcmdTuples(up));
    PQclear(up);
    return changed;
}

/* Rewraps one member's data key under the current master key; 1 when
 * updated, 0 when it changed meanwhile (or was destroyed), -1. */
static int key_rewrap(PGconn *pg, const struct pii_keyring *k, const PGresult *res, int row,
                      char *err, size_t err_len)
{
    const char *tenant = PQgetvalue(res, row, 0), *member = PQgetvalue(res, row, 1);
    unsigned char key[PII_DATA_KEY_BYTES];
    char *wrapped = NULL, version[16];
    if (pii_data_key_unwrap(k, atoi(PQgetvalue(res, row, 2)), tenant, member,
                            PQgetvalue(res, row, 3), key))
        wrapped = pii_data_key_wrap(k, tenant, member, key);
    sodium_memzero(key, sizeof(key));
    if (!wrapped) {
        snprintf(err, err_len,
                 "data key of member %s of tenant %s: key version %s does not open it", member,
                 tenant, PQgetvalue(res, row, 2));
        return -1;
    }
    snprintf(version, sizeof(version), "%d", k->current_version);
    const char *p[5] = {tenant, member, PQgetvalue(res, row, 2), wrapped, version};
    PGresult *up = db_query(pg,
                            "UPDATE member_keys SET data_key_enc = $4::bytea, key_version = $5 "
                            "WHERE tenant_id = $1 AND member_id = $2 AND key_version = $3",
                            5, p, err, err_len, NULL);
    free(wrapped);
    if (!up)
        return -1;
    int changed = atoi(PQcmdTuples(up));
    PQclear(up);
    return changed;
}

/* Every data key not under the current master key, in batches. */
static long long rewrap_keys(PGconn *pg, const struct pii_keyring *k, char *err, size_t err_len)
{
    char version[16];
    snprintf(version, sizeof(version), "%d", k->current_version);
    const char *p[1] = {version};
    long long rewrapped = 0;
    for (;;) {
        PGresult *res = db_query(pg,
                                 "SELECT tenant_id, member_id, key_version, data_key_enc "
                                 "FROM member_keys WHERE key_version <> $1 LIMIT " REENCRYPT_BATCH,
                                 1, p, err, err_len, NULL);
        if (!res)
            return -1;
        int rows = PQntuples(res), rc = 0;
        for (int i = 0; i < rows && rc >= 0; i++) {
            rc = key_rewrap(pg, k, res, i, err, err_len);
            rewrapped += rc > 0 ? rc : 0;
        }
        PQclear(res);
        if (rc < 0)
            return -1;
        if (rows == 0)
            return rewrapped;
    }
}

long long pii_reencrypt_all(const char *pg_dsn, const struct pii_keyring *k, char *err,
                            size_t err_len)
{
    PGconn *pg = db_connect(pg_dsn, "ingest", "tessera-reencrypt", 60000, err, err_len);
    if (!pg)
        return -1;
    char version[16];
    snprintf(version, sizeof(version), "%d", k->current_version);
    const char *p[1] = {version};
    long long resealed = 0;
    for (;;) {
        PGresult *res = db_query(pg,
                                 "SELECT tenant_id, member_id, pii_key_version, name, phone, "
                                 "email, birthday::text, gender, attributes::text, name_enc, "
                                 "phone_enc, email_enc, birthday_enc, gender_enc, attributes_enc "
                                 "FROM members "
                                 "WHERE (pii_key_version <> $1 OR (email_bidx IS NULL AND "
                                 "(email_enc IS NOT NULL OR email IS NOT NULL))) "
                                 "AND personal_data_erased_at IS NULL "
                                 "LIMIT " REENCRYPT_BATCH,
                                 1, p, err, err_len, NULL);
        if (!res) {
            resealed = -1;
            break;
        }
        int rows = PQntuples(res), rc = 0;
        for (int i = 0; i < rows && rc >= 0; i++) {
            rc = row_reseal(pg, k, res, i, err, err_len);
            resealed += rc > 0 ? rc : 0;
        }
        PQclear(res);
        if (rc < 0)
            resealed = -1;
        if (rc < 0 || rows == 0)
            break;
    }
    long long keys = resealed < 0 ? -1 : rewrap_keys(pg, k, err, err_len);
    PQfinish(pg);
    return keys < 0 ? -1 : resealed + keys;
}
