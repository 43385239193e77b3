/* Versioned migrations, one schema per service. A service's SQL files
 * (services/<svc>/migrations/NNNN_name.sql) are compiled into its binary
 * by deploy/tools/embed-migrations.sh as a struct db_migration array. */
#ifndef TESSERA_MIGRATE_H
#define TESSERA_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

/* How long a new outbox row is leased to the relay that inserted it (the
 * column default; outbox/outbox.h explains the lease). */
#define DB_OUTBOX_LEASE_S 30

struct db_migration {
    int version; /* NNNN of the file name; strictly increasing */
    const char *name;
    const char *sql; /* runs with search_path set to the schema */
};

/* Creates the schema and its bookkeeping tables (schema_migrations,
 * consumer_offsets, outbox) when missing, then applies every migration
 * newer than the recorded version, each in its own transaction, under an
 * advisory lock so concurrent instances apply each exactly once.
 * Fails when a recorded version is unknown to this binary (a newer binary
 * migrated the schema). Returns 0, or -1 with err. */
int db_migrate(PGconn *pg, const char *schema, const struct db_migration *migrations, size_t count,
               char *err, size_t err_len) __attribute__((warn_unused_result));

#endif
