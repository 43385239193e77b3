#include "clock/clock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"

int clock_offset_read(const char *path, int64_t *offset_us)
{
    *offset_us = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    char text[32] = {0};
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (end == text || errno != 0 || (*end != '\0' && *end != '\n'))
        return -1;
    *offset_us = value;
    return 0;
}

int clock_offset_write(const char *path, int64_t offset_us)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int written = fprintf(f, "%" PRId64 "\n", offset_us);
    if (fclose(f) != 0 || written < 0 || rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        return -1;
    }
    return 0;
}

int64_t clock_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    const char *path = getenv(CLOCK_OFFSET_FILE_ENV);
    if (!path || !*path)
        return now;
    int64_t offset = 0;
    if (clock_offset_read(path, &offset) != 0) {
        static int warned; /* a benign race: at worst logged twice */
        if (!warned) {
            warned = 1;
            log_warn("clock: %s=%s does not hold a number of microseconds; offset 0",
                     CLOCK_OFFSET_FILE_ENV, path);
        }
        return now;
    }
    return now + offset;
}
