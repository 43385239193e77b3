/* The ledger's audit (audit.c): every invariant checked from PostgreSQL and
 * Redis, read-only. */
#ifndef TESSERA_LEDGER_AUDIT_H
#define TESSERA_LEDGER_AUDIT_H

#include <stdio.h>

/* Runs every check and writes the report to out. Returns the exit status:
 * 0 all hold, 1 some do not, 2 the audit could not run. */
int ledger_audit_run(const char *pg_dsn, const char *redis_host, int redis_port, FILE *out);

#endif
