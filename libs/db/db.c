/* Blocking PostgreSQL access (see db.h). Called from consumer threads and
 * tools, one PGconn per thread; nothing here touches an event loop. */
#include "db/db.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "db/db_internal.h"
#include "log/log.h"

#define DB_ARRAY_CAP_MIN 256
#define DB_INT_TEXT_MAX  24 /* "-9223372036854775808" plus NUL, rounded up */

void db_set_err(char *err, size_t err_len, const char *prefix, const char *msg)
{
    if (err == NULL || err_len == 0)
        return;
    if (msg == NULL)
        msg = "";
    int n = snprintf(err, err_len, "%s: %s", prefix, msg);
    if (n < 0) {
        err[0] = '\0';
        return;
    }
    size_t len = strlen(err);
    while (len > 0 && (err[len - 1] == '\n' || err[len - 1] == ' '))
        err[--len] = '\0';
}

/* The backend splits "options" on whitespace; a backslash escapes the next
 * character, so spaces and backslashes inside the value are escaped. */
static int options_append_escaped(char *out, size_t out_len, size_t *pos, const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        bool escape = (*p == ' ' || *p == '\\' || *p == '\t');
        if (*pos + (escape ? 2 : 1) >= out_len)
            return -1;
        if (escape)
            out[(*pos)++] = '\\';
        out[(*pos)++] = *p;
    }
    out[*pos] = '\0';
    return 0;
}

int db_session_options(char *out, size_t out_len, const char *schema, int statement_timeout_ms)
{
    assert(out != NULL && out_len > 0);
    assert(statement_timeout_ms >= 0);
    int n = snprintf(out, out_len,
                     "-c client_min_messages=warning -c statement_timeout=%d -c search_path=",
                     statement_timeout_ms);
    if (n < 0 || (size_t)n >= out_len)
        return -1;
    size_t pos = (size_t)n;

    /* search_path value: "schema", public with the identifier quoted the
     * SQL way (embedded double quotes doubled). */
    char path[2 * DB_SCHEMA_NAME_MAX + 16];
    size_t plen = 0;
    if (schema != NULL) {
        if (schema[0] == '\0' || strlen(schema) > DB_SCHEMA_NAME_MAX)
            return -1;
        path[plen++] = '"';
        for (const char *p = schema; *p != '\0'; p++) {
            if (*p == '"')
                path[plen++] = '"';
            path[plen++] = *p;
        }
        path[plen++] = '"';
        path[plen++] = ',';
        path[plen++] = ' ';
    }
    memcpy(path + plen, "public", sizeof "public");
    return options_append_escaped(out, out_len, &pos, path);
}

PGconn *db_connect(const char *dsn, const char *schema, const char *app_name,
                   int statement_timeout_ms, char *err, size_t err_len)
{
    assert(dsn != NULL);
    if (statement_timeout_ms <= 0)
        statement_timeout_ms = DB_STATEMENT_TIMEOUT_MS_DEFAULT;
    char options[DB_OPTIONS_MAX];
    if (db_session_options(options, sizeof options, schema, statement_timeout_ms) != 0) {
        db_set_err(err, err_len, "db_connect", "schema name too long");
        return NULL;
    }
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", DB_CONNECT_TIMEOUT_S);
    /* Later keywords override what the expanded dsn says. */
    const char *keys[] = {"dbname", "connect_timeout", "options", "application_name", NULL};
    const char *vals[] = {dsn, timeout, options, app_name != NULL ? app_name : "tessera", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (pg == NULL) {
        db_set_err(err, err_len, "db_connect", "out of memory");
        return NULL;
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        db_set_err(err, err_len, "db_connect", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

static _Thread_local struct db_failure last_failure;

void db_failure_clear(void)
{
    memset(&last_failure, 0, sizeof last_failure);
}

const struct db_failure *db_failure_last(void)
{
    return &last_failure;
}

/* Appends " (<label> <value>)" for a diagnostic field the server set. */
static void failure_append(const PGresult *res, int field, const char *label)
{
    const char *value = PQresultErrorField(res, field);
    size_t len = strlen(last_failure.text);
    if (value != NULL && len < sizeof last_failure.text)
        snprintf(last_failure.text + len, sizeof last_failure.text - len, " (%s %s)", label, value);
}

void db_failure_note(const PGresult *res)
{
    db_failure_clear();
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (state != NULL && strlen(state) == 5)
        memcpy(last_failure.sqlstate, state, 6);
    snprintf(last_failure.text, sizeof last_failure.text, "%s",
             primary != NULL ? primary : "no answer from the server");
    if (res == NULL)
        return;
    failure_append(res, PG_DIAG_CONSTRAINT_NAME, "constraint");
    failure_append(res, PG_DIAG_TABLE_NAME, "table");
    failure_append(res, PG_DIAG_COLUMN_NAME, "column");
}

bool db_sqlstate_is_deterministic(const char *sqlstate)
{
    return sqlstate != NULL && strlen(sqlstate) == 5 &&
           (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0);
}

/* The connection whose BEGIN waits for its transaction's first statement
 * (db_begin_deferred). A consumer thread owns one connection: per thread. */
static _Thread_local PGconn *begin_deferred;

bool db_begin_take(PGconn *pg)
{
    if (pg == NULL || begin_deferred != pg)
        return false;
    begin_deferred = NULL;
    return true;
}

static int exec_now(PGconn *pg, const char *sql, char *err, size_t err_len);

/* Sends a deferred BEGIN on its own, before a statement that cannot carry
 * it. */
static int begin_now(PGconn *pg, char *err, size_t err_len)
{
    return db_begin_take(pg) ? exec_now(pg, "BEGIN", err, err_len) : 0;
}

int db_begin_deferred(PGconn *pg)
{
    assert(pg != NULL);
    begin_deferred = pg; /* one per thread: a newer one replaces it */
    return 0;
}

int db_exec(PGconn *pg, const char *sql, char *err, size_t err_len)
{
    assert(pg != NULL && sql != NULL);
    if (begin_now(pg, err, err_len) < 0)
        return -1;
    return exec_now(pg, sql, err, err_len);
}

static int exec_now(PGconn *pg, const char *sql, char *err, size_t err_len)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (res == NULL || (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)) {
        db_set_err(err, err_len, "db_exec",
                   res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(pg));
        db_failure_note(res);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

int64_t db_int_at(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

PGresult *db_query(PGconn *pg, const char *sql, int nparams, const char *const *params, char *err,
                   size_t err_len, char sqlstate[6])
{
    assert(pg != NULL && sql != NULL);
    assert(nparams >= 0 && (nparams == 0 || params != NULL));
    if (sqlstate != NULL)
        sqlstate[0] = '\0';
    if (begin_now(pg, err, err_len) < 0)
        return NULL;
    PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (res != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK))
        return res;
    db_set_err(err, err_len, "db_query",
               res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(pg));
    db_failure_note(res);
    if (sqlstate != NULL && res != NULL) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state != NULL) {
            strncpy(sqlstate, state, 5);
            sqlstate[5] = '\0';
        }
    }
    PQclear(res);
    return NULL;
}

int db_begin(PGconn *pg, char *err, size_t err_len)
{
    return db_exec(pg, "BEGIN", err, err_len);
}

int db_commit(PGconn *pg, char *err, size_t err_len)
{
    if (db_begin_take(pg))
        return 0; /* no statement ran: nothing to commit */
    return db_exec(pg, "COMMIT", err, err_len);
}

/* A failed ROLLBACK leaves nothing for the caller to do: the connection is
 * broken and db_healthy() will notice, so it is only logged. */
void db_rollback(PGconn *pg)
{
    char err[256];
    if (db_begin_take(pg))
        return; /* no statement ran: nothing to roll back */
    if (db_exec(pg, "ROLLBACK", err, sizeof err) != 0)
        log_warn("%s", err);
}

bool db_healthy(PGconn *pg)
{
    assert(pg != NULL);
    if (PQstatus(pg) == CONNECTION_OK)
        return true;
    /* PQreset reuses the original parameters, including "options", so the
     * search_path and statement_timeout come back with the connection. */
    PQreset(pg);
    if (PQstatus(pg) == CONNECTION_OK) {
        log_info("db: connection re-established");
        return true;
    }
    log_warn("db: reconnect failed: %s", PQerrorMessage(pg));
    return false;
}

enum db_xact_state db_xact_status(PGconn *pg, long long xid, char *err, size_t err_len)
{
    char text[DB_INT_TEXT_MAX];
    snprintf(text, sizeof text, "%lld", xid);
    const char *params[] = {text};
    PGresult *res = db_query(pg, "SELECT txid_status($1::bigint)", 1, params, err, err_len, NULL);
    if (res == NULL)
        return DB_XACT_UNKNOWN;
    enum db_xact_state st = DB_XACT_UNKNOWN;
    const char *v = PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0);
    if (strcmp(v, "committed") == 0)
        st = DB_XACT_COMMITTED;
    else if (strcmp(v, "aborted") == 0)
        st = DB_XACT_ABORTED;
    else if (strcmp(v, "in progress") == 0)
        st = DB_XACT_IN_PROGRESS;
    else
        snprintf(err, err_len, "db_xact_status: transaction %lld is too old to tell", xid);
    PQclear(res);
    return st;
}

/* ---- array literals ---- */

void db_array_init(struct db_array *a)
{
    assert(a != NULL);
    memset(a, 0, sizeof *a);
}

/* Out of memory while building a statement is not recoverable here. */
static void array_reserve(struct db_array *a, size_t extra)
{
    size_t need = a->len + extra + 1; /* always room for the NUL */
    if (need <= a->cap)
        return;
    size_t cap = a->cap < DB_ARRAY_CAP_MIN ? DB_ARRAY_CAP_MIN : a->cap;
    while (cap < need)
        cap *= 2;
    char *buf = realloc(a->buf, cap);
    assert(buf != NULL);
    a->buf = buf;
    a->cap = cap;
}

static void array_put(struct db_array *a, char c)
{
    array_reserve(a, 1);
    a->buf[a->len++] = c;
    a->buf[a->len] = '\0';
}

/* Opens the literal before the first element, separates the others. */
static void array_begin_element(struct db_array *a)
{
    array_put(a, a->count == 0 ? '{' : ',');
    a->count++;
}

void db_array_add(struct db_array *a, const char *value)
{
    assert(a != NULL);
    array_begin_element(a);
    if (value == NULL) {
        array_reserve(a, 4);
        memcpy(a->buf + a->len, "NULL", 5);
        a->len += 4;
        return;
    }
    /* Always quoted, so "NULL", "" and values with braces, commas or
     * blanks stay strings; inside quotes only " and \ need a backslash. */
    size_t vlen = strlen(value);
    array_reserve(a, 2 * vlen + 2);
    a->buf[a->len++] = '"';
    for (size_t i = 0; i < vlen; i++) {
        if (value[i] == '"' || value[i] == '\\')
            a->buf[a->len++] = '\\';
        a->buf[a->len++] = value[i];
    }
    a->buf[a->len++] = '"';
    a->buf[a->len] = '\0';
}

void db_array_add_int(struct db_array *a, long long value)
{
    char text[DB_INT_TEXT_MAX];
    snprintf(text, sizeof text, "%lld", value);
    db_array_add(a, text);
}

char *db_bytea_text(const void *data, size_t len)
{
    assert(data != NULL || len == 0);
    char *text = malloc(2 * len + 3);
    assert(text != NULL);
    text[0] = '\\';
    text[1] = 'x';
    sodium_bin2hex(text + 2, 2 * len + 1, data, len);
    return text;
}

void db_array_add_bytea(struct db_array *a, const void *data, size_t len)
{
    /* The element text is \x<hex>; db_array_add escapes the backslash. */
    char *text = db_bytea_text(data, len);
    db_array_add(a, text);
    free(text);
}

const char *db_array_finish(struct db_array *a)
{
    assert(a != NULL);
    if (a->count == 0)
        array_put(a, '{');
    array_put(a, '}');
    return a->buf;
}

void db_array_free(struct db_array *a)
{
    if (a == NULL)
        return;
    free(a->buf);
    memset(a, 0, sizeof *a);
}

int db_write_columns(PGconn *pg, const char *sql, struct db_array *cols, int n, char *err,
                     size_t err_len)
{
    assert(n > 0 && n <= DB_COLUMNS_MAX);
    int rc = 0;
    if (cols[0].count > 0) {
        const char *params[DB_COLUMNS_MAX];
        for (int i = 0; i < n; i++)
            params[i] = db_array_finish(&cols[i]);
        PGresult *res = db_query(pg, sql, n, params, err, err_len, NULL);
        rc = res ? 0 : -1;
        PQclear(res);
    }
    for (int i = 0; i < n; i++)
        db_array_free(&cols[i]);
    return rc;
}
