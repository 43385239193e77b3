#include "test_clock.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "clock/clock.h"

static const char *offset_file(void)
{
    const char *path = getenv(CLOCK_OFFSET_FILE_ENV);
    assert_non_null(path); /* set by tests/run.sh */
    return path;
}

int64_t test_clock_offset_us(void)
{
    int64_t offset = 0;
    assert_int_equal(clock_offset_read(offset_file(), &offset), 0);
    return offset;
}

int64_t test_clock_advance_us(int64_t delta_us)
{
    int64_t before = test_clock_offset_us();
    assert_int_equal(clock_offset_write(offset_file(), before + delta_us), 0);
    return before;
}

int64_t test_clock_set_now_us(int64_t target_us)
{
    int64_t before = test_clock_offset_us();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wall = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    assert_int_equal(clock_offset_write(offset_file(), target_us - wall), 0);
    return before;
}

void test_clock_restore(int64_t offset_us)
{
    assert_int_equal(clock_offset_write(offset_file(), offset_us), 0);
}
