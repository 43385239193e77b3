/* Migration 0003 (cards) extends the journal's asset list instead of
 * replacing it: assets another migration allowed stay allowed. Runs the
 * migration's SQL in a scratch schema of the test database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"

#define MIGRATION "services/ledger/migrations/0003_cards.sql"

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = calloc(1, (size_t)len + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return text;
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

static void test_asset_list_extended(void **state)
{
    PGconn *pg = test_pg();
    exec_ok(pg, "SET client_min_messages = warning");
    exec_ok(pg, "DROP SCHEMA IF EXISTS cards_migration_probe CASCADE");
    exec_ok(pg, "CREATE SCHEMA cards_migration_probe");
    exec_ok(pg, "SET search_path = cards_migration_probe");
    /* the journal as 0001 made it, with one more asset a later migration
     * (points, refunds) might have added */
    exec_ok(pg, "CREATE TABLE journal (asset text NOT NULL CHECK (asset IN ('points', "
                "'sv_principal', 'sv_bonus', 'points_pending')), amount bigint CHECK "
                "(amount <> 0))");
    char *sql = read_file(MIGRATION);
    exec_ok(pg, sql);
    free(sql);
    static const struct {
        const char *asset;
        bool allowed;
    } cases[] = {
        {"card_uses", true},      {"card_days", true}, {"points", true},
        {"points_pending", true}, {"sv_bonus", true},  {"bogus", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(insert_asset(pg, cases[i].asset), cases[i].allowed);
    exec_ok(pg, "DROP SCHEMA cards_migration_probe CASCADE");
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_asset_list_extended),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
