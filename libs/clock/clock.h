/* The service's clock: wall time plus an offset that tests can move.
 *
 * Every rule that depends on the date (expiry, vesting, streaks,
 * birthdays, reminders, renewals, downgrades, quiet hours) and every
 * event's timestamp read clock_now_us(), never time() or now() in SQL,
 * so that "60 days before expiry" is tested in seconds, not by sleeping.
 *
 * Test-only: when TESSERA_CLOCK_OFFSET_FILE names a file, its content, a
 * signed decimal count of microseconds, is added to wall time. The file
 * is read on every call (a few microseconds, and only when the setting is
 * there), so a test that moves it moves every service of its runtime at
 * once. A missing file means offset 0; an unreadable one is logged once
 * and also means 0. Production never sets it: plain wall time. */
#ifndef TESSERA_CLOCK_H
#define TESSERA_CLOCK_H

#include <stdint.h>

#define CLOCK_OFFSET_FILE_ENV "TESSERA_CLOCK_OFFSET_FILE"

/* Microseconds since the Unix epoch, UTC, by this service's clock. */
int64_t clock_now_us(void);

/* The offset in the file at path (0 when the file does not exist).
 * Returns 0, or -1 when the file exists but does not hold a number. */
__attribute__((warn_unused_result)) int clock_offset_read(const char *path, int64_t *offset_us);

/* Replaces the offset in the file at path atomically (a temporary file
 * renamed over it), so a reader sees the old or the new value, never half
 * of one. Returns 0, or -1 with errno set. For tests and the test runtime. */
__attribute__((warn_unused_result)) int clock_offset_write(const char *path, int64_t offset_us);

#endif
