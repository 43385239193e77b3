/* A tenant of a test's own, made in SQL (tests may write any schema): the
 * tenant row, its hq branch and an admin key, so the test then works over
 * HTTP with that key. Tenant ids are "<prefix>-<pid>-<random>", unique
 * across runs and processes. Asserts. */
#ifndef TESSERA_TEST_SQL_TENANT_H
#define TESSERA_TEST_SQL_TENANT_H

#include <libpq-fe.h>
#include <stddef.h>

#define SQL_TENANT_KEY_SIZE 64 /* "tsk_" + 48 hex digits + NUL fits */

/* Runs one statement that returns no rows; aborts the test on failure. */
void test_exec_ok(PGconn *pg, const char *sql, int n, const char *const *params);

/* Makes the tenant (display name `name`); writes its id and admin key. */
void sql_tenant_make(const char *prefix, const char *name, char *tenant_id, size_t id_size,
                     char key[SQL_TENANT_KEY_SIZE]);

#endif
