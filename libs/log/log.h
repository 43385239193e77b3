/* JSON-lines logging to stderr: one object per line with ts, level,
 * service and msg, plus optional string fields. Thread-safe (one write(2)
 * per line). */
#ifndef TESSERA_LOG_H
#define TESSERA_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the service name printed on every line and the lowest level shown.
 * Call once at start, before threads. */
void log_init(const char *service, enum log_level min_level);

/* Sets the instance id printed on every line ("instance"), e.g.
 * "ledger-host-1234" or the pod name, so lines of two replicas of one
 * service can be told apart. Call once at start, before threads. */
void log_set_instance(const char *instance);

/* Parses "debug" | "info" | "warn" | "error"; false on anything else. */
bool log_level_parse(const char *text, enum log_level *out) __attribute__((warn_unused_result));

/* printf-style message, JSON-escaped into "msg". */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Message plus extra string fields given as key, value pairs ending in NULL:
 * log_fields(LOG_INFO, "consumer assigned", "topic", t, "partition", "3", NULL) */
void log_fields(enum log_level level, const char *msg, ...) __attribute__((sentinel));

/* log_fields into this thread's batch of lines, written by log_batch_flush
 * with one write(2): for a line on every request (the access log), flushed
 * once per event-loop pass. A line that does not fit flushes the batch
 * first. True when the batch was empty before, so the caller arranges the
 * flush (on this thread); false when nothing waits on this line (filtered
 * by level, or too long for a batch and written at once). Lines still in
 * the batch are lost if the process dies before the flush. */
bool log_fields_batched(enum log_level level, const char *msg, ...)
    __attribute__((sentinel, warn_unused_result));

/* Writes this thread's batched lines (nothing when there are none). */
void log_batch_flush(void);

/* A line's "ts": now (UTC) as "YYYY-MM-DDTHH:MM:SS.mmmZ", what strftime
 * "%Y-%m-%dT%H:%M:%S" and ".%03ldZ" of the milliseconds write, for
 * tv_nsec in [0, 1e9). Returns its length. */
#define LOG_TS_MAX 64
struct timespec;
size_t log_format_ts(const struct timespec *now, char out[LOG_TS_MAX]);

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
