/* Sleeping a thread (never the event loop): back-off between retries and
 * the pauses of scheduler threads. */
#ifndef TESSERA_UTIL_SLEEP_H
#define TESSERA_UTIL_SLEEP_H

/* Sleeps ms milliseconds (a signal may end it early: callers loop). */
void sleep_ms(long long ms);

#endif
