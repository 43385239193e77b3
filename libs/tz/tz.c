/* TZif reader (RFC 8536): the version 2+ block with 64-bit transition
 * times, the transitions and their types' UTC offsets; nothing else. */
#include "tz/tz.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZ_DIR        "/usr/share/zoneinfo/"
#define TZ_FILE_MAX   (256 * 1024)
#define TZ_HEADER_LEN 44

struct tz_zone {
    char name[TZ_NAME_MAX + 1];
    int64_t *times;   /* transition instants, ascending */
    int32_t *offsets; /* offset in force from times[i] on */
    size_t count;
    int32_t initial; /* offset before the first transition */
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tz_zone cache[TZ_CACHE_ZONES];
static size_t cache_used;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* Zone names are paths under TZ_DIR: letters, digits, "/_+-", no "..". */
static bool name_safe(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > TZ_NAME_MAX || name[0] == '/' || strstr(name, ".."))
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              strchr("/_+-", *c)))
            return false;
    return true;
}

static unsigned char *read_file(const char *name, size_t *len)
{
    char path[sizeof(TZ_DIR) + TZ_NAME_MAX];
    snprintf(path, sizeof(path), "%s%s", TZ_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = malloc(TZ_FILE_MAX);
    size_t n = buf ? fread(buf, 1, TZ_FILE_MAX, f) : 0;
    fclose(f);
    if (!buf || n == 0 || n == TZ_FILE_MAX) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Sizes of a block's sections from its header at p. */
struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
};

static bool header(const unsigned char *p, size_t avail, struct tzif_counts *c)
{
    if (avail < TZ_HEADER_LEN || memcmp(p, "TZif", 4) != 0)
        return false;
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    return c->type > 0 && c->type < 256 && c->time < 10000 && c->leap < 10000;
}

static size_t block_len(const struct tzif_counts *c, size_t time_len)
{
    return c->time * time_len + c->time + c->type * 6 + c->chars + c->leap * (time_len + 4) +
           c->isstd + c->isut;
}

/* Parses buf into z (z->name already set). */
static bool parse(const unsigned char *buf, size_t len, struct tz_zone *z)
{
    struct tzif_counts c;
    if (!header(buf, len, &c) || buf[4] < '2')
        return false;
    size_t v1 = TZ_HEADER_LEN + block_len(&c, 4);
    if (v1 > len || !header(buf + v1, len - v1, &c))
        return false;
    const unsigned char *p = buf + v1 + TZ_HEADER_LEN;
    if (v1 + TZ_HEADER_LEN + block_len(&c, 8) > len)
        return false;
    const unsigned char *idx = p + c.time * 8, *types = idx + c.time;
    z->times = calloc(c.time + 1, sizeof(*z->times));
    z->offsets = calloc(c.time + 1, sizeof(*z->offsets));
    if (!z->times || !z->offsets)
        return false;
    for (uint32_t i = 0; i < c.time; i++) {
        if (idx[i] >= c.type)
            return false;
        z->times[i] = be64(p + i * 8);
        z->offsets[i] = (int32_t)be32(types + idx[i] * 6);
    }
    z->count = c.time;
    /* RFC 8536 3.2: local time type 0 applies before the first transition. */
    z->initial = (int32_t)be32(types);
    return true;
}

/* The cached zone named name, loading it; NULL if unknown. Called with
 * cache_lock held. */
static const struct tz_zone *zone_get(const char *name)
{
    for (size_t i = 0; i < cache_used; i++)
        if (strcmp(cache[i].name, name) == 0)
            return &cache[i];
    if (!name_safe(name))
        return NULL;
    size_t len = 0;
    unsigned char *buf = read_file(name, &len);
    if (!buf)
        return NULL;
    struct tz_zone z = {0};
    snprintf(z.name, sizeof(z.name), "%s", name);
    bool ok = parse(buf, len, &z);
    free(buf);
    if (!ok) {
        free(z.times);
        free(z.offsets);
        return NULL;
    }
    if (cache_used == TZ_CACHE_ZONES) { /* full: evict the last slot */
        cache_used--;
        free(cache[cache_used].times);
        free(cache[cache_used].offsets);
    }
    cache[cache_used] = z;
    return &cache[cache_used++];
}

static int32_t offset_in(const struct tz_zone *z, int64_t utc_s)
{
    if (z->count == 0 || utc_s < z->times[0])
        return z->initial;
    size_t lo = 0, hi = z->count; /* last i with times[i] <= utc_s */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->times[mid] <= utc_s)
            lo = mid;
        else
            hi = mid;
    }
    return z->offsets[lo];
}

bool tz_offset_at(const char *zone, int64_t utc_s, int32_t *offset_s)
{
    assert(zone && offset_s);
    pthread_mutex_lock(&cache_lock);
    const struct tz_zone *z = zone_get(zone);
    if (z)
        *offset_s = offset_in(z, utc_s);
    pthread_mutex_unlock(&cache_lock);
    return z != NULL;
}

bool tz_zone_known(const char *name)
{
    int32_t off;
    return tz_offset_at(name, 0, &off);
}

/* civil_from_days (Howard Hinnant), the inverse of
 * datetime_days_from_civil. */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

bool tz_local_time(const char *zone, int64_t utc_us, struct tz_local *out)
{
    int64_t utc_s = utc_us >= 0 ? utc_us / 1000000 : -((-utc_us + 999999) / 1000000);
    int32_t off;
    if (!tz_offset_at(zone, utc_s, &off))
        return false;
    int64_t local = utc_s + off;
    int64_t days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    int64_t sod = local - days * 86400;
    civil_from_days(days, &out->year, &out->month, &out->day);
    out->hour = (int)(sod / 3600);
    out->minute = (int)(sod / 60 % 60);
    out->second = (int)(sod % 60);
    out->minute_of_day = out->hour * 60 + out->minute;
    return true;
}
