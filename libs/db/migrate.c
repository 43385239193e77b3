/* Versioned migrations (see migrate.h). Runs at service start on a
 * blocking connection, before any consumer or HTTP listener. */
#include "db/migrate.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/db_internal.h"
#include "log/log.h"

#define MIGRATE_SQL_MAX 4096
#define MIGRATE_ERR_MAX 512
#define DB_STR_(x)      #x
#define DB_STR(x)       DB_STR_(x)

/* Everything a service's schema needs before its own migrations run. */
static const char BOOKKEEPING_SQL[] =
    "CREATE SCHEMA IF NOT EXISTS %1$s;"
    "CREATE TABLE IF NOT EXISTS %1$s.schema_migrations ("
    "  version int PRIMARY KEY, name text NOT NULL,"
    "  applied_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS %1$s.consumer_offsets ("
    "  group_id text, topic text, partition int,"
    "  next_offset bigint NOT NULL, cluster_id text NOT NULL,"
    "  updated_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (group_id, topic, partition));"
    "CREATE TABLE IF NOT EXISTS %1$s.outbox ("
    "  id bigserial PRIMARY KEY, topic text NOT NULL, key text NOT NULL,"
    "  payload bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now());"
    /* The relay's lease (outbox/outbox.h), added to outboxes made before
     * it; checked first so a start takes no table lock when it is there. */
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = "
    "  '%1$s.outbox'::regclass AND attname = 'lease_until' AND NOT attisdropped) THEN"
    "  ALTER TABLE %1$s.outbox ADD COLUMN lease_owner text,"
    "    ADD COLUMN lease_until timestamptz NOT NULL"
    "    DEFAULT now() + interval '" DB_STR(
        DB_OUTBOX_LEASE_S) " seconds';"
                           " END IF;"
                           /* Packed rows (outbox/outbox_pack.h): how many events a row holds;
                            * the rows of before hold one each (no rewrite: a constant default). */
                           " IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = "
                           "'%1$s.outbox'::regclass"
                           "  AND attname = 'events' AND NOT attisdropped) THEN"
                           "  ALTER TABLE %1$s.outbox ADD COLUMN events int NOT NULL DEFAULT 1;"
                           " END IF;"
                           /* A packed row is stored out of line; compressing a queue's rows on
                            * the way in costs CPU for pages deleted a moment later. */
                           " IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = "
                           "'%1$s.outbox'::regclass"
                           "  AND attname = 'payload' AND attstorage <> 'e') THEN"
                           "  ALTER TABLE %1$s.outbox ALTER COLUMN payload SET STORAGE EXTERNAL;"
                           " END IF; END $$;";

/* How the relays find outbox rows whatever the statistics say (a queue's
 * are always stale: VACUUM counts a drained table, the next burst fills
 * its pages, and the planner sees a table of one row).
 * - The sweep's claim reads the rows whose lease is over through an index
 *   on (lease_until, id) (outbox.c). Unconditional, that index also
 *   matched `id = ANY(...)` (the delete, the claim's update, the renewal),
 *   and with a one-row estimate the planner walked all of it once per id
 *   (45 ms for 1 000 ids in a table of 5 000 rows, growing with both).
 *   Partial on a predicate every row meets, it serves only statements
 *   that compare lease_until (a strict comparison implies IS NOT NULL);
 *   ids are looked up through the primary key alone.
 * - outbox_delete(), outbox_claim() and outbox_renew() run with
 *   sequential scans off, so they look rows up by id through the primary
 *   key even when the table seems too small to need it; functions, so the
 *   setting never reaches the batch they ride along with. The claim's
 *   order and limit are explained at OUTBOX_CLAIM_SQL (outbox/outbox.c):
 *   the rows whose lease ended longest ago, whole rows up to p_max events
 *   (at least one row), returned in id order.
 * Each index is checked first: CREATE and DROP INDEX lock the table even
 * when there is nothing to do. */
static const char OUTBOX_INDEX_SQL[] =
    "DO $$ BEGIN IF to_regclass('%1$s.outbox_lease_expiry') IS NULL THEN"
    "  CREATE INDEX outbox_lease_expiry ON %1$s.outbox (lease_until, id)"
    "    WHERE lease_until IS NOT NULL;"
    " END IF;"
    " IF to_regclass('%1$s.outbox_lease_until') IS NOT NULL THEN"
    "  DROP INDEX %1$s.outbox_lease_until;"
    " END IF; END $$;"
    "CREATE OR REPLACE FUNCTION %1$s.outbox_delete(ids bigint[]) RETURNS void"
    "  LANGUAGE sql SET enable_seqscan = off"
    "  AS $f$ DELETE FROM %1$s.outbox WHERE id = ANY(ids) $f$;"
    "CREATE OR REPLACE FUNCTION %1$s.outbox_claim(p_owner text, p_skip bigint[], p_max int)"
    "  RETURNS TABLE (claimed_id bigint, claimed_topic text, claimed_key text,"
    "    claimed_payload bytea, claimed_events int)"
    "  LANGUAGE sql SET enable_seqscan = off AS $f$"
    "  WITH cand AS (SELECT id, lease_until, events FROM %1$s.outbox"
    "    WHERE lease_until <= now() AND id <> ALL(p_skip)"
    "    ORDER BY lease_until, id LIMIT p_max FOR UPDATE SKIP LOCKED),"
    "  pick AS (SELECT id FROM (SELECT id, events,"
    "    sum(events) OVER (ORDER BY lease_until, id) AS upto FROM cand) s"
    "    WHERE upto - events < p_max),"
    "  c AS (UPDATE %1$s.outbox o SET lease_owner = p_owner,"
    "    lease_until = now() + interval '" DB_STR(
        DB_OUTBOX_LEASE_S) " seconds'"
                           "    WHERE o.id = ANY(ARRAY(SELECT id FROM pick))"
                           "    RETURNING o.id, o.topic, o.key, o.payload, o.events)"
                           "  SELECT * FROM c ORDER BY id $f$;"
                           "CREATE OR REPLACE FUNCTION %1$s.outbox_renew(p_owner text, p_ids "
                           "bigint[]) RETURNS void"
                           "  LANGUAGE sql SET enable_seqscan = off AS $f$"
                           "  UPDATE %1$s.outbox SET lease_owner = p_owner,"
                           "    lease_until = now() + interval '" DB_STR(
                               DB_OUTBOX_LEASE_S) " seconds'"
                                                  "  WHERE id = ANY(p_ids) AND (lease_owner IS "
                                                  "NULL OR lease_owner = p_owner) $f$;";

/* Serialises migrators of one schema for the rest of the transaction; the
 * key is derived from the schema name so other schemas never wait. */
static int migrate_lock(PGconn *pg, const char *schema, char *err, size_t err_len)
{
    const char *params[] = {schema};
    PGresult *res = db_query(pg, "SELECT pg_advisory_xact_lock(hashtext('tessera.migrate.' || $1))",
                             1, params, err, err_len, NULL);
    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

/* Runs sql (a format with the quoted schema as %1$s) inside a transaction
 * that holds the migration lock. */
static int migrate_bookkeeping(PGconn *pg, const char *schema, const char *ident, char *err,
                               size_t err_len)
{
    char sql[MIGRATE_SQL_MAX], index_sql[MIGRATE_SQL_MAX];
    int n = snprintf(sql, sizeof sql, BOOKKEEPING_SQL, ident);
    assert(n > 0 && (size_t)n < sizeof sql);
    n = snprintf(index_sql, sizeof index_sql, OUTBOX_INDEX_SQL, ident);
    assert(n > 0 && (size_t)n < sizeof index_sql);
    if (db_begin(pg, err, err_len) != 0)
        return -1;
    if (migrate_lock(pg, schema, err, err_len) != 0 || db_exec(pg, sql, err, err_len) != 0 ||
        db_exec(pg, index_sql, err, err_len) != 0 || db_commit(pg, err, err_len) != 0) {
        db_rollback(pg);
        return -1;
    }
    return 0;
}

static bool migration_known(const struct db_migration *migrations, size_t count, int version)
{
    for (size_t i = 0; i < count; i++)
        if (migrations[i].version == version)
            return true;
    return false;
}

/* Reads the recorded versions (inside the locked transaction), refuses
 * unknown ones and returns through *next the first migration not applied
 * yet (count when none). */
static int migrate_find_next(PGconn *pg, const struct db_migration *migrations, size_t count,
                             size_t *next, char *err, size_t err_len)
{
    PGresult *res = db_query(pg, "SELECT version FROM schema_migrations ORDER BY version", 0, NULL,
                             err, err_len, NULL);
    if (res == NULL)
        return -1;
    int max_version = 0;
    for (int row = 0; row < PQntuples(res); row++) {
        int version = atoi(PQgetvalue(res, row, 0));
        if (!migration_known(migrations, count, version)) {
            char msg[MIGRATE_ERR_MAX];
            snprintf(msg, sizeof msg,
                     "database has migration %d unknown to this binary (a newer version "
                     "migrated it)",
                     version);
            db_set_err(err, err_len, "db_migrate", msg);
            PQclear(res);
            return -1;
        }
        if (version > max_version)
            max_version = version;
    }
    PQclear(res);
    *next = count;
    for (size_t i = 0; i < count; i++) {
        if (migrations[i].version > max_version) {
            *next = i;
            break;
        }
    }
    return 0;
}

/* One transaction: lock, look at what is recorded, apply at most one
 * migration. *applied tells the caller whether to go round again. */
static int migrate_step(PGconn *pg, const char *schema, const char *ident,
                        const struct db_migration *migrations, size_t count, bool *applied,
                        char *err, size_t err_len)
{
    char sql[MIGRATE_SQL_MAX];
    snprintf(sql, sizeof sql, "SET LOCAL search_path TO %s, public", ident);
    *applied = false;
    if (db_begin(pg, err, err_len) != 0)
        return -1;
    size_t next = count;
    if (migrate_lock(pg, schema, err, err_len) != 0 || db_exec(pg, sql, err, err_len) != 0 ||
        migrate_find_next(pg, migrations, count, &next, err, err_len) != 0)
        goto fail;
    if (next == count) {
        db_rollback(pg); /* nothing written; ends the transaction */
        return 0;
    }
    const struct db_migration *m = &migrations[next];
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->name};
    if (db_exec(pg, m->sql, err, err_len) != 0)
        goto fail;
    PGresult *res = db_query(pg, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                             params, err, err_len, NULL);
    if (res == NULL)
        goto fail;
    PQclear(res);
    if (db_commit(pg, err, err_len) != 0)
        goto fail;
    log_fields(LOG_INFO, "migration applied", "schema", schema, "version", version, "name", m->name,
               NULL);
    *applied = true;
    return 0;
fail:
    db_rollback(pg);
    return -1;
}

int db_migrate(PGconn *pg, const char *schema, const struct db_migration *migrations, size_t count,
               char *err, size_t err_len)
{
    assert(pg != NULL && schema != NULL && (migrations != NULL || count == 0));
    for (size_t i = 0; i < count; i++) {
        assert(migrations[i].version > 0 && migrations[i].sql != NULL &&
               migrations[i].name != NULL);
        assert(i == 0 || migrations[i].version > migrations[i - 1].version);
    }
    if (schema[0] == '\0' || strlen(schema) > DB_SCHEMA_NAME_MAX) {
        db_set_err(err, err_len, "db_migrate", "bad schema name");
        return -1;
    }
    char *ident = PQescapeIdentifier(pg, schema, strlen(schema));
    if (ident == NULL) {
        db_set_err(err, err_len, "db_migrate", PQerrorMessage(pg));
        return -1;
    }
    int rc = migrate_bookkeeping(pg, schema, ident, err, err_len);
    bool applied = true;
    /* Bounded by count: each round applies one migration or stops. */
    for (size_t round = 0; rc == 0 && applied && round <= count; round++)
        rc = migrate_step(pg, schema, ident, migrations, count, &applied, err, err_len);
    PQfreemem(ident);
    return rc;
}
