/* `tessera-ingest --create-platform-key NAME`: the bootstrap of an
 * installation (docs/tenants.md). Prints a new platform key once on
 * stdout; only its SHA-256 is stored (platform_keys), like a tenant's API
 * keys. A platform key may create tenants (POST /v1/tenants) and nothing
 * else. Blocking libpq: it runs instead of the service, never beside it. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "db/db.h"
#include "ingest.h"
#include "log/log.h"

#define PLATFORM_KEY_PREFIX "tpk_"
#define PLATFORM_KEY_BYTES  32
#define PLATFORM_ID_BYTES   8
#define PLATFORM_NAME_MAX   100

int platform_key_create(const char *pg_dsn, const char *name)
{
    if (!name || !*name || strlen(name) > PLATFORM_NAME_MAX) {
        fprintf(stderr, "--create-platform-key NAME: a name of 1 to %d bytes\n", PLATFORM_NAME_MAX);
        return 1;
    }
    unsigned char raw[PLATFORM_KEY_BYTES], id[PLATFORM_ID_BYTES];
    char key[sizeof(PLATFORM_KEY_PREFIX) + 2 * PLATFORM_KEY_BYTES];
    char key_id[4 + 2 * PLATFORM_ID_BYTES + 1], hash[65];
    randombytes_buf(raw, sizeof(raw));
    randombytes_buf(id, sizeof(id));
    memcpy(key, PLATFORM_KEY_PREFIX, sizeof(PLATFORM_KEY_PREFIX) - 1);
    sodium_bin2hex(key + sizeof(PLATFORM_KEY_PREFIX) - 1, 2 * PLATFORM_KEY_BYTES + 1, raw,
                   sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    memcpy(key_id, "pk_", 3);
    sodium_bin2hex(key_id + 3, 2 * PLATFORM_ID_BYTES + 1, id, sizeof(id));
    auth_hash_key(key, hash);
    char err[512];
    PGconn *pg =
        db_connect(pg_dsn, "ingest", "tessera-ingest platform-key", 10000, err, sizeof(err));
    if (!pg) {
        log_fields(LOG_ERROR, "cannot connect", "error", err, NULL);
        return 1;
    }
    const char *p[3] = {hash, key_id, name};
    PGresult *res = db_query(pg,
                             "INSERT INTO platform_keys (key_hash, key_id, name) "
                             "VALUES ($1, $2, $3)",
                             3, p, err, sizeof(err), NULL);
    PQfinish(pg);
    if (!res) {
        log_fields(LOG_ERROR, "platform key not stored", "error", err, NULL);
        sodium_memzero(key, sizeof(key));
        return 1;
    }
    PQclear(res);
    printf("%s\n", key); /* the only time it is shown */
    fflush(stdout);
    sodium_memzero(key, sizeof(key));
    log_fields(LOG_INFO, "platform key created", "key_id", key_id, "name", name, NULL);
    return 0;
}
