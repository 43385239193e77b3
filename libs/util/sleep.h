/* Sleeping a thread (never the event loop): back-off between retries and
 * the pauses of scheduler threads. */
#ifndef TESSERA_UTIL_SLEEP_H
#define TESSERA_UTIL_SLEEP_H

/* Sleeps ms milliseconds (a signal may end it early: callers loop). */
void sleep_ms(long long ms);

#include <time.h>

/* The time ms milliseconds from now on clock: the deadline of a
 * pthread_cond_timedwait (whose condition uses that clock). */
struct timespec deadline_after_ms(clockid_t clock, long long ms);

#endif
