#include "db/copy.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "db/db.h"
#include "db/db_internal.h"

#define DB_COPY_CAP_MIN   4096
#define DB_COPY_CHUNK_MAX (1 << 20) /* bytes per PQputCopyData */

void db_copy_init(struct db_copy *c)
{
    assert(c);
    memset(c, 0, sizeof(*c));
}

void db_copy_free(struct db_copy *c)
{
    if (!c)
        return;
    free(c->buf);
    memset(c, 0, sizeof(*c));
}

void db_copy_reset(struct db_copy *c)
{
    c->len = 0;
    c->rows = 0;
    c->fields_in_row = 0;
}

/* Out of memory while building a batch is not recoverable here. */
static void copy_reserve(struct db_copy *c, size_t extra)
{
    size_t need = c->len + extra;
    if (need <= c->cap)
        return;
    size_t cap = c->cap < DB_COPY_CAP_MIN ? DB_COPY_CAP_MIN : c->cap;
    while (cap < need)
        cap *= 2;
    char *buf = realloc(c->buf, cap);
    assert(buf);
    c->buf = buf;
    c->cap = cap;
}

static void copy_begin_field(struct db_copy *c)
{
    if (c->fields_in_row++ > 0) {
        copy_reserve(c, 1);
        c->buf[c->len++] = '\t';
    }
}

void db_copy_text(struct db_copy *c, const char *value)
{
    copy_begin_field(c);
    if (!value) {
        copy_reserve(c, 2);
        memcpy(c->buf + c->len, "\\N", 2);
        c->len += 2;
        return;
    }
    /* Text format: backslash, tab, newline and carriage return are the
     * characters COPY would otherwise read as syntax. */
    size_t n = strlen(value);
    copy_reserve(c, 2 * n);
    for (size_t i = 0; i < n; i++) {
        char ch = value[i];
        switch (ch) {
        case '\\':
            c->buf[c->len++] = '\\';
            c->buf[c->len++] = '\\';
            break;
        case '\t':
            c->buf[c->len++] = '\\';
            c->buf[c->len++] = 't';
            break;
        case '\n':
            c->buf[c->len++] = '\\';
            c->buf[c->len++] = 'n';
            break;
        case '\r':
            c->buf[c->len++] = '\\';
            c->buf[c->len++] = 'r';
            break;
        default:
            c->buf[c->len++] = ch;
        }
    }
}

void db_copy_int(struct db_copy *c, long long value)
{
    copy_begin_field(c);
    copy_reserve(c, 24);
    c->len += (size_t)snprintf(c->buf + c->len, 24, "%lld", value);
}

void db_copy_bytea(struct db_copy *c, const void *data, size_t len)
{
    assert(data || len == 0);
    copy_begin_field(c);
    /* The field text is \x<hex>, its backslash doubled for COPY. */
    copy_reserve(c, 3 + 2 * len + 1); /* sodium_bin2hex ends with a NUL, written over next */
    c->buf[c->len++] = '\\';
    c->buf[c->len++] = '\\';
    c->buf[c->len++] = 'x';
    sodium_bin2hex(c->buf + c->len, 2 * len + 1, data, len);
    c->len += 2 * len;
}

void db_copy_end_row(struct db_copy *c)
{
    assert(c->fields_in_row > 0);
    copy_reserve(c, 1);
    c->buf[c->len++] = '\n';
    c->rows++;
    c->fields_in_row = 0;
}

int db_copy_send(PGconn *pg, const char *copy_sql, const struct db_copy *c, char *err,
                 size_t err_len)
{
    assert(c->fields_in_row == 0); /* no row left half built */
    if (c->rows == 0)
        return 0;
    if (db_begin_take(pg) && db_exec(pg, "BEGIN", err, err_len) < 0)
        return -1;
    PGresult *res = PQexec(pg, copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        snprintf(err, err_len, "%s: %s", copy_sql, PQerrorMessage(pg));
        db_failure_note(res);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    int ok = 1;
    for (size_t off = 0; ok == 1 && off < c->len; off += DB_COPY_CHUNK_MAX) {
        size_t n = c->len - off < DB_COPY_CHUNK_MAX ? c->len - off : DB_COPY_CHUNK_MAX;
        ok = PQputCopyData(pg, c->buf + off, (int)n);
    }
    if (PQputCopyEnd(pg, ok == 1 ? NULL : "client could not send the rows") != 1)
        ok = 0;
    int rc = ok == 1 ? 0 : -1;
    if (rc < 0)
        db_failure_note(NULL);
    while ((res = PQgetResult(pg)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            snprintf(err, err_len, "%s: %s", copy_sql, PQresultErrorMessage(res));
            db_failure_note(res);
            rc = -1;
        }
        PQclear(res);
    }
    if (rc < 0 && ok != 1)
        snprintf(err, err_len, "%s: %s", copy_sql, PQerrorMessage(pg));
    return rc;
}
