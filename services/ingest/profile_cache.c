/* The sealed profile in Redis and its invalidations (profile_cache.h).
 * Everything runs on the ingest loop. */
#include "profile_cache.h"

#include <assert.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_view.h"
#include "ingest.h"
#include "log/log.h"
#include "metrics/metrics.h"

#define KEY_VERSION_DIGITS_MAX 8 /* PII_MASTER_KEY_VERSION_MAX has 7 */

/* The associated data's field: binds a box to its view version. */
static void box_field(char out[64], int64_t view_version)
{
    snprintf(out, 64, PROFILE_CACHE_FIELD ":%" PRId64, view_version);
}

char *profile_cache_seal(const struct pii_keyring *k, const char *tenant_id, const char *member_id,
                         int64_t view_version, const char *json, size_t len, size_t *out_len)
{
    unsigned char key[PII_DATA_KEY_BYTES];
    if (len > PII_BOX_PLAINTEXT_MAX || !pii_tenant_seal_key(k, k->current_version, tenant_id, key))
        return NULL;
    char field[64];
    box_field(field, view_version);
    size_t box_len = 0;
    uint8_t *box =
        pii_box_seal(key, tenant_id, member_id, field, (const uint8_t *)json, len, &box_len);
    sodium_memzero(key, sizeof(key));
    if (!box)
        return NULL;
    char prefix[KEY_VERSION_DIGITS_MAX + 2];
    int n = snprintf(prefix, sizeof(prefix), "%d|", k->current_version);
    char *out = malloc((size_t)n + box_len);
    assert(out != NULL);
    memcpy(out, prefix, (size_t)n);
    memcpy(out + n, box, box_len);
    free(box);
    *out_len = (size_t)n + box_len;
    return out;
}

char *profile_cache_open(const struct pii_keyring *k, const char *tenant_id, const char *member_id,
                         int64_t view_version, const char *sealed, size_t len)
{
    const char *bar =
        memchr(sealed, '|', len < KEY_VERSION_DIGITS_MAX ? len : KEY_VERSION_DIGITS_MAX);
    if (!bar || bar == sealed)
        return NULL;
    int version = 0;
    for (const char *p = sealed; p < bar; p++) {
        if (*p < '0' || *p > '9')
            return NULL;
        version = version * 10 + (*p - '0');
    }
    unsigned char key[PII_DATA_KEY_BYTES];
    if (!pii_tenant_seal_key(k, version, tenant_id, key))
        return NULL;
    char field[64];
    box_field(field, view_version);
    size_t plain_len = 0;
    const size_t head = (size_t)(bar - sealed) + 1;
    uint8_t *plain = pii_box_open(key, tenant_id, member_id, field, (const uint8_t *)sealed + head,
                                  len - head, &plain_len);
    sodium_memzero(key, sizeof(key));
    return (char *)plain;
}

/* ---- invalidations, retried until taken ---- */
enum forget_kind { FORGET_PROFILE, FORGET_COUPONS };

struct forget {
    struct ingest *app;
    enum forget_kind kind;
    char tenant_id[INGEST_KEY_MAX];
    char member_id[INGEST_KEY_MAX];
    int64_t view_version;
    int tries_left;
    struct event *ev_retry;
    struct req *r; /* the request waiting for the first answer, or NULL */
    void (*next)(struct req *r);
    struct forget *prev, *next_waiting; /* in waiting while its retry timer is armed */
};

/* The loop's only: retries waiting for their timer, for the count and for
 * profile_cache_drop_pending at exit. */
static struct forget *waiting;
static long long forgets_pending;

static void waiting_link(struct forget *f)
{
    f->prev = NULL;
    f->next_waiting = waiting;
    if (waiting)
        waiting->prev = f;
    waiting = f;
    forgets_pending++;
}

static void waiting_unlink(struct forget *f)
{
    if (f->prev)
        f->prev->next_waiting = f->next_waiting;
    else
        waiting = f->next_waiting;
    if (f->next_waiting)
        f->next_waiting->prev = f->prev;
    forgets_pending--;
}

static void forget_send(struct forget *f);

static void forget_free(struct forget *f)
{
    if (f->ev_retry)
        event_free(f->ev_retry);
    free(f);
}

static void forget_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct forget *f = arg;
    waiting_unlink(f);
    forget_send(f);
}

static void forget_count(const char *outcome)
{
    metrics_inc(metrics_with(metrics_counter("tessera_ingest_view_cache_invalidations_total",
                                             "Invalidations of ingest's member-view cache "
                                             "(profile tombstones, coupon drops), by outcome.",
                                             "outcome"),
                             outcome));
}

static void on_forgotten(void *arg, bool ok)
{
    struct forget *f = arg;
    struct req *r = f->r;
    void (*next)(struct req *) = f->next;
    f->r = NULL;
    if (ok || f->app->stopping || f->tries_left-- <= 0 ||
        forgets_pending >= PROFILE_FORGET_PENDING_MAX) {
        forget_count(ok ? "done" : "dropped");
        if (!ok)
            log_fields(LOG_ERROR,
                       "view cache: invalidation dropped (Redis away); the hash "
                       "expires on its own",
                       "member_id", f->member_id, NULL);
        forget_free(f);
    } else {
        forget_count("retried");
        if (!f->ev_retry)
            f->ev_retry = evtimer_new(f->app->base, forget_retry_cb, f);
        assert(f->ev_retry != NULL);
        struct timeval tv = {PROFILE_FORGET_RETRY_MS / 1000,
                             (PROFILE_FORGET_RETRY_MS % 1000) * 1000};
        evtimer_add(f->ev_retry, &tv);
        waiting_link(f);
    }
    if (r)
        next(r); /* last: r may end in it */
}

static void forget_send(struct forget *f)
{
    if (f->kind == FORGET_PROFILE)
        cache_async_forget_profile(f->app->cache, f->tenant_id, f->member_id, f->view_version,
                                   on_forgotten, f);
    else
        cache_async_forget_coupons(f->app->cache, f->tenant_id, f->member_id, on_forgotten, f);
}

static struct forget *forget_new(struct ingest *app, enum forget_kind kind, const char *tenant_id,
                                 const char *member_id)
{
    struct forget *f = calloc(1, sizeof(*f));
    assert(f != NULL);
    f->app = app;
    f->kind = kind;
    snprintf(f->tenant_id, sizeof(f->tenant_id), "%s", tenant_id);
    snprintf(f->member_id, sizeof(f->member_id), "%s", member_id);
    f->tries_left = CACHE_VIEW_TTL_S * 1000 / PROFILE_FORGET_RETRY_MS;
    return f;
}

void profile_cache_forget_then(struct req *r, int64_t view_version, void (*next)(struct req *r))
{
    struct forget *f = forget_new(r->app, FORGET_PROFILE, r->caller.tenant_id, r->member_id);
    f->view_version = view_version;
    f->r = r;
    f->next = next;
    forget_send(f);
}

void profile_cache_forget_coupons(struct ingest *app, const char *tenant_id, const char *member_id)
{
    forget_send(forget_new(app, FORGET_COUPONS, tenant_id, member_id));
}

void profile_cache_drop_pending(void)
{
    while (waiting) {
        struct forget *f = waiting;
        waiting_unlink(f);
        forget_free(f);
    }
}
