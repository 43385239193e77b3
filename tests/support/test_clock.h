/* Moving the test runtime's clock (libs/clock): tests/run.sh points
 * TESSERA_CLOCK_OFFSET_FILE at a file of the runtime, which every service
 * it starts reads, so a test that advances it moves all of them at once
 * and "the downgrade happens at period end" is tested in seconds.
 *
 * A test that moves the clock uses its own tenant and members (what other
 * tests left behind may look expired to it), and puts the clock back with
 * test_clock_restore when it is done so the tests after it see wall time. */
#ifndef TESSERA_TEST_CLOCK_H
#define TESSERA_TEST_CLOCK_H

#include <stdint.h>

/* The offset now in force (microseconds). Asserts the setting is there. */
int64_t test_clock_offset_us(void);
/* Moves the clock forward (or back, when negative) by delta microseconds
 * from where it is; returns the offset it replaced. Asserts. */
int64_t test_clock_advance_us(int64_t delta_us);
/* Sets the clock so that clock_now_us() is near target_us (UTC micros):
 * the offset is target minus wall time now. Returns the offset replaced. */
int64_t test_clock_set_now_us(int64_t target_us);
/* Puts back an offset returned by the two above. Asserts. */
void test_clock_restore(int64_t offset_us);

#endif
