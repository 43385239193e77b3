#include "db/prepared.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct prepared_stmt {
    uint64_t hash;
    char *sql;
};

/* One connection's statements. backend_pid tells a session apart from the
 * one a reset (or a new PGconn at the same address) replaced. */
struct prepared_conn {
    PGconn *pg;
    int backend_pid;
    size_t count;
    struct prepared_stmt stmts[DB_PREPARED_PER_CONN_MAX];
};

struct prepared_thread {
    struct prepared_conn conns[DB_PREPARED_CONNS_MAX];
    size_t next_evict; /* round robin when a thread uses more connections */
};

static pthread_key_t thread_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void conn_clear(struct prepared_conn *c)
{
    for (size_t i = 0; i < c->count; i++)
        free(c->stmts[i].sql);
    c->count = 0;
}

static void thread_free(void *arg)
{
    struct prepared_thread *t = arg;
    for (size_t i = 0; i < DB_PREPARED_CONNS_MAX; i++)
        conn_clear(&t->conns[i]);
    free(t);
}

static void make_key(void)
{
    int rc = pthread_key_create(&thread_key, thread_free);
    assert(rc == 0);
    (void)rc;
}

/* FNV-1a: the hash only narrows the search; the text is compared too. */
static uint64_t sql_hash(const char *sql)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static struct prepared_conn *conn_of(PGconn *pg)
{
    pthread_once(&key_once, make_key);
    struct prepared_thread *t = pthread_getspecific(thread_key);
    if (!t) {
        t = calloc(1, sizeof(*t));
        assert(t);
        pthread_setspecific(thread_key, t);
    }
    int pid = PQbackendPID(pg);
    struct prepared_conn *c = NULL;
    for (size_t i = 0; i < DB_PREPARED_CONNS_MAX && !c; i++)
        if (t->conns[i].pg == pg)
            c = &t->conns[i];
    for (size_t i = 0; i < DB_PREPARED_CONNS_MAX && !c; i++)
        if (t->conns[i].pg == NULL)
            c = &t->conns[i];
    if (!c) {
        c = &t->conns[t->next_evict];
        t->next_evict = (t->next_evict + 1) % DB_PREPARED_CONNS_MAX;
        conn_clear(c);
        c->pg = NULL;
    }
    if (c->pg != pg || c->backend_pid != pid) {
        conn_clear(c);
        c->pg = pg;
        c->backend_pid = pid;
    }
    return c;
}

int db_prepared_name(PGconn *pg, const char *sql, int nparams, char name[DB_PREPARED_NAME_MAX])
{
    assert(pg && sql);
    if (PQstatus(pg) != CONNECTION_OK)
        return -1;
    struct prepared_conn *c = conn_of(pg);
    uint64_t h = sql_hash(sql);
    for (size_t i = 0; i < c->count; i++)
        if (c->stmts[i].hash == h && strcmp(c->stmts[i].sql, sql) == 0) {
            snprintf(name, DB_PREPARED_NAME_MAX, "tessera_%zu", i);
            return 0;
        }
    if (c->count == DB_PREPARED_PER_CONN_MAX)
        return -1;
    snprintf(name, DB_PREPARED_NAME_MAX, "tessera_%zu", c->count);
    PGresult *res = PQprepare(pg, name, sql, nparams, NULL);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok)
        return -1;
    c->stmts[c->count++] = (struct prepared_stmt){.hash = h, .sql = strdup(sql)};
    assert(c->stmts[c->count - 1].sql);
    return 0;
}

void db_prepared_forget(PGconn *pg)
{
    conn_clear(conn_of(pg));
}
