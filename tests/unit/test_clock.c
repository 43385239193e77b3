/* The service clock (libs/clock): wall time without the test setting,
 * wall time plus the file's offset with it, the offset re-read on every
 * call, and a file that holds no number ignored rather than trusted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock/clock.h"

#define DAY_US (86400LL * 1000000LL)

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static char path[64];

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "/tmp/tessera-clock-test.%ld", (long)getpid());
    unlink(path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    unsetenv(CLOCK_OFFSET_FILE_ENV);
    return 0;
}

static void assert_near(int64_t got, int64_t want)
{
    assert_true(got >= want - 5000000 && got <= want + 5000000);
}

static void test_wall_time_without_the_setting(void **state)
{
    (void)state;
    unsetenv(CLOCK_OFFSET_FILE_ENV);
    assert_near(clock_now_us(), wall_us());
}

static void test_missing_file_is_offset_zero(void **state)
{
    (void)state;
    setenv(CLOCK_OFFSET_FILE_ENV, path, 1);
    int64_t offset = 42;
    assert_int_equal(clock_offset_read(path, &offset), 0);
    assert_int_equal(offset, 0);
    assert_near(clock_now_us(), wall_us());
}

static void test_offset_moves_the_clock_at_once(void **state)
{
    (void)state;
    setenv(CLOCK_OFFSET_FILE_ENV, path, 1);
    assert_int_equal(clock_offset_write(path, 30 * DAY_US), 0);
    assert_near(clock_now_us(), wall_us() + 30 * DAY_US);
    assert_int_equal(clock_offset_write(path, -2 * DAY_US), 0);
    assert_near(clock_now_us(), wall_us() - 2 * DAY_US);
    int64_t offset = 0;
    assert_int_equal(clock_offset_read(path, &offset), 0);
    assert_int_equal(offset, -2 * DAY_US);
}

static void test_garbage_is_refused_and_ignored(void **state)
{
    (void)state;
    setenv(CLOCK_OFFSET_FILE_ENV, path, 1);
    static const char *const bad[] = {"", "soon\n", "12abc", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(bad[i], f);
        fclose(f);
        int64_t offset = 7;
        assert_int_equal(clock_offset_read(path, &offset), -1);
        assert_near(clock_now_us(), wall_us());
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wall_time_without_the_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file_is_offset_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_moves_the_clock_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_is_refused_and_ignored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
