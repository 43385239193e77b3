#include "sql_tenant.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_client.h"

void test_exec_ok(PGconn *pg, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "test: %s: %s\n", sql, PQerrorMessage(pg));
        abort();
    }
    PQclear(res);
}

void sql_tenant_make(const char *prefix, const char *name, char *tenant_id, size_t id_size,
                     char key[SQL_TENANT_KEY_SIZE])
{
    unsigned char raw[24];
    randombytes_buf(raw, sizeof(raw));
    strcpy(key, "tsk_");
    sodium_bin2hex(key + 4, SQL_TENANT_KEY_SIZE - 4, raw, sizeof(raw));
    randombytes_buf(raw, 6);
    char suffix[13];
    sodium_bin2hex(suffix, sizeof(suffix), raw, 6);
    snprintf(tenant_id, id_size, "%s-%d-%s", prefix, (int)getpid(), suffix);
    const char *p[] = {tenant_id, key, name};
    PGconn *pg = test_pg();
    const char *named[] = {tenant_id, name};
    test_exec_ok(pg, "INSERT INTO ingest.tenants (tenant_id, name) VALUES ($1, $2)", 2, named);
    test_exec_ok(pg,
                 "INSERT INTO ingest.branches (tenant_id, branch_id, name) VALUES ($1, 'hq', 'HQ')",
                 1, p);
    test_exec_ok(
        pg,
        "INSERT INTO ingest.api_keys (key_hash, tenant_id, name, scope) VALUES "
        "(encode(sha256(convert_to($2, 'UTF8')), 'hex'), $1, $3::text || ' admin', 'admin')",
        3, p);
    PQfinish(pg);
}
