/* Migration 0004 (pending points) adds the asset points_pending to
 * whatever list the journal allows, in either form PostgreSQL prints the
 * constraint: ARRAY['points'::text, ...] as 0001 wrote it, or
 * '{card_days,...}'::text[] as 0003 rewrote it (a first version of the
 * migration only understood the first form and dropped every other
 * asset). Runs the migration's DO block in a scratch schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"

#define MIGRATION "services/ledger/migrations/0004_points_pending.sql"

/* The migration's DO block (from "DO $$" to "END $$;"), malloc'ed. */
static char *asset_block(void)
{
    FILE *f = fopen(MIGRATION, "rb");
    assert_non_null(f);
    static char text[16384];
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[len] = '\0';
    char *start = strstr(text, "DO $$"), *end = start ? strstr(start, "END $$;") : NULL;
    assert_non_null(end);
    size_t n = (size_t)(end - start) + strlen("END $$;");
    char *block = calloc(1, n + 1);
    assert_non_null(block);
    memcpy(block, start, n);
    return block;
}

static void exec_ok(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    PQclear(res);
}

static bool insert_asset(PGconn *pg, const char *asset)
{
    const char *p[1] = {asset};
    PGresult *res = PQexecParams(pg, "INSERT INTO journal (asset, amount) VALUES ($1, 1)", 1, NULL,
                                 p, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok;
}

static void check_extends(const char *journal_ddl, const char *const *kept)
{
    PGconn *pg = test_pg();
    exec_ok(pg, "SET client_min_messages = warning");
    exec_ok(pg, "DROP SCHEMA IF EXISTS points_migration_probe CASCADE");
    exec_ok(pg, "CREATE SCHEMA points_migration_probe");
    exec_ok(pg, "SET search_path = points_migration_probe");
    exec_ok(pg, journal_ddl);
    char *block = asset_block();
    exec_ok(pg, block);
    free(block);
    assert_true(insert_asset(pg, "points_pending"));
    for (const char *const *a = kept; *a; a++) {
        if (!insert_asset(pg, *a))
            fail_msg("asset %s no longer allowed", *a);
    }
    assert_false(insert_asset(pg, "bogus"));
    exec_ok(pg, "DROP SCHEMA points_migration_probe CASCADE");
    PQfinish(pg);
}

static void test_extends_the_0001_form(void **state)
{
    static const char *const kept[] = {"points", "sv_principal", "sv_bonus", NULL};
    check_extends("CREATE TABLE journal (asset text NOT NULL CHECK (asset IN ('points', "
                  "'sv_principal', 'sv_bonus')), amount bigint CHECK (amount <> 0))",
                  kept);
}

static void test_extends_the_0003_form(void **state)
{
    static const char *const kept[] = {"card_days", "card_uses",    "points",
                                       "sv_bonus",  "sv_principal", NULL};
    check_extends("CREATE TABLE journal (asset text NOT NULL, amount bigint, CONSTRAINT "
                  "journal_asset_check CHECK (asset = ANY ('{card_days,card_uses,points,"
                  "sv_bonus,sv_principal}'::text[])))",
                  kept);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extends_the_0001_form),
        cmocka_unit_test(test_extends_the_0003_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
