/* Integers read from PostgreSQL by end-to-end tests, and waits until one
 * reaches a value: the state the services write asynchronously (a grant
 * applied, a notice owed) is polled with a deadline, never slept for. */
#ifndef TESSERA_TEST_SQL_WAIT_H
#define TESSERA_TEST_SQL_WAIT_H

#include <stdint.h>

/* How long sql_wait_for waits: the slowest asynchronous step (a scheduler
 * round behind a consumer batch) on a busy machine, with room. */
#define SQL_WAIT_DEADLINE_MS 30000

/* The integer sql gives with $1 = p1 and, unless p2 is NULL, $2 = p2. */
int64_t sql_int_of(const char *sql, const char *p1, const char *p2);

/* Waits until sql_int_of(sql, p1, p2) is want; at the deadline the test
 * fails naming what and the last value. */
void sql_wait_for(const char *sql, const char *p1, const char *p2, int64_t want, const char *what);

#endif
