/* Shared by db.c and pg_pool.c only: how a Tessera connection is opened.
 * Not part of the public interface of libs/db. */
#ifndef TESSERA_DB_INTERNAL_H
#define TESSERA_DB_INTERNAL_H

#include <stddef.h>

#define DB_SCHEMA_NAME_MAX 63 /* PostgreSQL NAMEDATALEN - 1 */
#define DB_OPTIONS_MAX     512
#define DB_ERR_PREFIX_MAX  128

/* Writes the libpq "options" value that sets statement_timeout and
 * search_path ("<schema>, public"; schema may be NULL) at connection start,
 * and keeps NOTICEs ("already exists, skipping") out of the JSON logs.
 * Settings given this way survive PQreset and the pool's background
 * reconnects, which a SET after connecting would not. -1 when the schema
 * name is too long or out_len too small. */
int db_session_options(char *out, size_t out_len, const char *schema, int statement_timeout_ms);

/* Records a failed statement as the thread's last failure (db.h,
 * db_failure_last); res may be NULL (no answer: the connection broke). */
#include <libpq-fe.h>
void db_failure_note(const PGresult *res);

/* Copies "prefix: msg" into err without the trailing newline libpq adds. */
void db_set_err(char *err, size_t err_len, const char *prefix, const char *msg);

#endif
