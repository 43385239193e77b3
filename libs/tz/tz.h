/* Time zones without the C library's global TZ state: the UTC offset of an
 * IANA zone at an instant, read from the system's compiled zone files
 * (/usr/share/zoneinfo, TZif, RFC 8536). Thread-safe; files are read once
 * and kept (a bounded cache). Used for quiet hours and for rendering
 * times in the tenant's zone. */
#ifndef TESSERA_TZ_H
#define TESSERA_TZ_H

#include <stdbool.h>
#include <stdint.h>

#define TZ_NAME_MAX    64 /* longest zone name accepted */
#define TZ_CACHE_ZONES 32 /* zones kept in memory at most */

/* Is name a zone we can read ("Asia/Shanghai", "UTC")? */
bool tz_zone_known(const char *name) __attribute__((warn_unused_result));

/* The offset from UTC in seconds of zone at utc_s (seconds since the
 * epoch). Past the zone file's last transition the last rule holds (the
 * file's POSIX footer is not evaluated: Debian's "fat" files list
 * transitions to 2037). False when the zone is unknown. */
bool tz_offset_at(const char *zone, int64_t utc_s, int32_t *offset_s)
    __attribute__((warn_unused_result));

/* Local wall-clock parts of utc_us in zone. False when the zone is
 * unknown. */
struct tz_local {
    int year, month, day, hour, minute, second;
    int minute_of_day; /* hour * 60 + minute */
};
bool tz_local_time(const char *zone, int64_t utc_us, struct tz_local *out)
    __attribute__((warn_unused_result));

#endif
