/* The delivery workers: TESSERA_NOTIFICATION_SENDERS threads, each with
 * its own PostgreSQL connection and libcurl multi handle (multi.c), so
 * sends never block the consumer's loop, many run at once, and one
 * worker's sends go on while another waits for PostgreSQL. The in-flight
 * slots are split between them; the circuit breakers are shared.
 *
 * Each round a worker claims due deliveries (their send_queue rows not
 * leased and due: pending, or held past quiet hours; a lease that ran out
 * because a worker died is lifted by a sweep every second) with FOR
 * UPDATE SKIP LOCKED, lane by lane (the SQL is in send_queue.c):
 *   - the high lane (login codes) first, with its own in-flight slots
 *     (TESSERA_NOTIFICATION_INFLIGHT_HIGH) that bulk can never fill;
 *   - normal and bulk after it, in bounded slices (INFLIGHT_BULK), claimed
 *     once half the slice is free, so a campaign of 100 000 messages is
 *     drained a big slice at a time and a code that arrives meanwhile is
 *     claimed in the next round.
 * A provider whose circuit breaker is open is not claimed for at all (its
 * rows wait; other providers and lanes go on).
 *
 * When a send completes, its row and its outcome (NotificationDelivered
 * or NotificationFailed, on notify-events through the outbox) commit
 * together; a failed row and its event are the send's dead letter. A transient failure is retried
 * with exponential back-off and jitter up to ATTEMPTS_MAX; a permanent
 * one fails at once. A crash between the provider's answer and that
 * commit sends the message again after the lease: at least once, with
 * the same message id for the provider to de-duplicate on. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "bus/topics.h"
#include "clock/clock.h"
#include "db/db.h"
#include "log/log.h"
#include "rules_delivery.h"
#include "metrics/metrics.h"
#include "multi.h"
#include "send_queue.h"
#include "transfer.h"

#define SENDER_CLAIM_EVERY_MS 10  /* at most this often under load */
#define SENDER_IDLE_WAIT_MS   100 /* poll the table this often when idle */
#define SENDER_BUSY_WAIT_MS   10
#define SENDER_RECONNECT_MS   1000
#define SENDER_INFLIGHT_MAX   1024 /* both lanes' limits together (main.c keeps them under) */
/* The normal and bulk lanes claim only when at least this share of their
 * slots is free (1/SENDER_SLICE_DIVISOR): one claim for a big slice
 * instead of one per few finished sends. The high lane claims for any free
 * slot (a login code never waits for a slice). */
#define SENDER_SLICE_DIVISOR  2
#define SENDER_SWEEP_EVERY_MS 1000 /* how often leases that ran out are looked for */
/* Finished sends are recorded once per claim round (SENDER_CLAIM_EVERY_MS),
 * all of them in one statement, not after every wake-up of the multi
 * handle: between two rounds at most every in-flight send finishes and
 * every row a round claimed can end at once (bad address, expired). */
#define SENDER_DONE_MAX (2 * SENDER_INFLIGHT_MAX)

static const char *const provider_channels[PROVIDER_COUNT] = {"email", "sms", "push"};

struct finish;

/* One delivery worker: its thread, PostgreSQL connection, multi handle
 * and share of the in-flight slots. Workers claim with SKIP LOCKED, so
 * they never take the same row; while one waits for PostgreSQL another
 * drives its sends. */
struct worker {
    pthread_t thread;
    bool started;
    PGconn *pg;
    struct multi *mh;
    CURLM *multi;
    int inflight[2];        /* [0] high lane, [1] normal and bulk */
    int cap_high, cap_bulk; /* this worker's share of the configured slots */
    int64_t idle_until_ms[LANE_BULK + 1][PROVIDER_COUNT]; /* per lane: nothing was due */
    CURL *easy_pool[SENDER_INFLIGHT_MAX];                 /* kept easy handles (easy_get) */
    int easy_pooled;
    struct finish *done;     /* SENDER_DONE_MAX finished sends, not yet recorded */
    const char **status;     /* their rows' next states */
    struct claimed *claimed; /* a claim's rows (SENDER_INFLIGHT_MAX) */
};

/* What the workers share: the breakers (one per provider, whichever
 * worker sends) under a lock. */
static struct {
    atomic_bool stop;
    char dsn[1024];
    int statement_timeout_ms;
    pthread_mutex_t breaker_lock;
    struct breaker breakers[PROVIDER_COUNT];
    int count;
    struct worker *workers;
} S = {.breaker_lock = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local struct worker *W; /* the calling thread's */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *provider_url(enum provider p)
{
    return p == PROVIDER_SMTP  ? notify_cfg.smtp_url
           : p == PROVIDER_SMS ? notify_cfg.sms_url
                               : notify_cfg.push_url;
}

/* Easy handles are kept for the next sends, their options cleared
 * (curl_easy_reset keeps the handle's buffers): one made and freed per
 * send was a good share of the worker's allocations. At most as many as
 * can be in flight are kept. */
static CURL *easy_get(void)
{
    return W->easy_pooled > 0 ? W->easy_pool[--W->easy_pooled] : curl_easy_init();
}

/* e must be off the multi handle. */
static void easy_put(CURL *e)
{
    if (!e)
        return;
    if (W->easy_pooled == SENDER_INFLIGHT_MAX) {
        curl_easy_cleanup(e);
        return;
    }
    curl_easy_reset(e); /* nothing points at the freed transfer */
    W->easy_pool[W->easy_pooled++] = e;
}

static void transfer_free(struct transfer *t)
{
    if (!t)
        return;
    easy_put(t->easy);
    curl_slist_free_all(t->headers);
    if (t->payload)
        sodium_memzero(t->payload, t->payload_len);
    free(t->payload);
    free(t->tenant_id), free(t->request_id), free(t->member_id), free(t->channel);
    free(t->message_id), free(t->template_name), free(t->address), free(t->subject);
    free(t->body), free(t->html);
    free(t);
}

/* Counts an outcome per channel in /metrics (any thread). */
static void count_outcome(const char *channel, const char *outcome)
{
    const char *values[2] = {channel, outcome};
    metrics_inc(metrics_series(metrics_counter("tessera_notification_sends_total",
                                               "External send attempts by channel and outcome "
                                               "(delivered, retry, failed, expired).",
                                               "channel,outcome"),
                               values));
}

/* --- completion ------------------------------------------------------------ */

struct finish {
    const struct transfer *t;
    enum delivery_result result;
    const char *reason; /* static or t->error */
    char reason_buf[64];
};

/* The row's next state and its outcome; *status says which. */
static int finish_one(const struct finish *f, int64_t now, struct send_outcomes *w,
                      const char **status, char *err, size_t err_len)
{
    const struct transfer *t = f->t;
    bool retry = f->result == DELIVERY_TRANSIENT && t->attempts < notify_cfg.attempts_max;
    int64_t next = now;
    if (retry)
        next += 1000 * delivery_backoff_ms(t->attempts, notify_cfg.backoff_base_ms,
                                           notify_cfg.backoff_max_ms,
                                           randombytes_uniform(1000000) / 1e6);
    *status = f->result == DELIVERY_OK ? "delivered" : retry ? "pending" : "failed";
    send_outcomes_row(w, t, *status, f->reason, next, now);
    if (retry)
        return 0;
    size_t len = 0;
    uint8_t *bin;
    if (f->result == DELIVERY_OK) {
        bin = notify_outcome_delivered(t->tenant_id, t->member_id, t->request_id, t->message_id,
                                       t->channel, t->attempts, &len);
        return send_outcomes_event(w, t->member_id, bin, len, err, err_len);
    }
    const char *reason = f->result == DELIVERY_TRANSIENT ? "retries_exhausted" : f->reason;
    bool permanent = f->result == DELIVERY_PERMANENT;
    /* The failed row and this event are the dead letter of a send. (Not a
     * copy on the dead-letter topic through the outbox: the relay's
     * delivery reports for that topic are taken for bus_dead_letter's
     * result cells, libs/bus/producer.c.) */
    log_fields(LOG_WARN, "notification failed", "request_id", t->request_id, "channel", t->channel,
               "reason", reason, NULL);
    bin = notify_outcome_failed(t->tenant_id, t->member_id, t->request_id, t->message_id,
                                t->channel, t->attempts, reason, permanent, &len);
    return send_outcomes_event(w, t->member_id, bin, len, err, err_len);
}

/* Records the outcomes of finished sends, rows and events together. On a
 * database error the rows stay "sending" and are sent again after their
 * lease (at least once). */
static void finish_all(struct finish *f, size_t n)
{
    if (n == 0)
        return;
    char err[512] = "";
    const char **status = W->status;
    struct send_outcomes w;
    send_outcomes_init(&w);
    int64_t now = clock_now_us();
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++)
        ok = finish_one(&f[i], now, &w, &status[i], err, sizeof(err)) == 0;
    if (ok && send_outcomes_write(W->pg, &w, err, sizeof(err)) == 0) {
        for (size_t i = 0; i < n; i++)
            count_outcome(f[i].t->channel, status[i][0] == 'p' ? "retry" : status[i]);
        return;
    }
    if (!ok)
        send_outcomes_free(&w);
    log_fields(LOG_WARN, "could not record send outcomes; they will be sent again", "error", err,
               NULL);
}

/* --- claiming and starting ------------------------------------------------- */

/* A provider's reply body is not read: its status says it all. */
static size_t discard_reply(char *data, size_t size, size_t n, void *arg)
{
    return size * n;
}

/* Starts t on the multi handle, or records at once why it cannot go. */
static void transfer_start(struct transfer *t, int64_t expires_at_us, struct finish *done,
                           size_t *done_count)
{
    const char *why = NULL;
    t->easy = easy_get();
    bool ok = t->easy != NULL;
    if (!ok)
        why = "out of memory";
    else if (!t->address)
        ok = false, why = "no_address";
    else if (expires_at_us > 0 && clock_now_us() >= expires_at_us)
        ok = false, why = "expired";
    else if (t->provider == PROVIDER_SMTP)
        ok = smtp_prepare(t, &why);
    else
        ok = webhook_prepare(t, provider_url(t->provider), &why);
    if (!ok) {
        done[*done_count] = (struct finish){.t = t, .result = DELIVERY_PERMANENT, .reason = why};
        (*done_count)++;
        return;
    }
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long)notify_cfg.send_timeout_ms);
    curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)notify_cfg.send_timeout_ms);
    curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, discard_reply);
    curl_multi_add_handle(W->multi, t->easy);
    W->inflight[t->lane == LANE_HIGH ? 0 : 1]++;
}

/* Claims up to max due rows of provider p in one lane (send_queue.c)
 * and starts them. Rows that end at once (bad address, expired) go to
 * done. */
static int claim_lane(enum provider p, int lane, int max, struct finish *done, size_t *done_count)
{
    char err[512];
    struct claimed *c = W->claimed;
    int n = send_queue_claim(W->pg, p, provider_channels[p], lane, max, clock_now_us(), c, err,
                             sizeof(err));
    if (n < 0)
        log_fields(LOG_WARN, "delivery claim failed", "error", err, NULL);
    for (int i = 0; i < n; i++)
        transfer_start(c[i].t, c[i].expires_at_us, done, done_count);
    return n;
}

/* Claims up to max due rows of provider p in the lanes given (in their
 * order: a lane before the next). A lane with nothing due is asked again
 * only after the idle wait. The count claimed, or -1. */
static int claim(enum provider p, const int *lanes, int nlanes, int max, struct finish *done,
                 size_t *done_count)
{
    int got = 0;
    int64_t now_ms = mono_ms();
    for (int i = 0; i < nlanes && got < max; i++) {
        int64_t *idle_until = &W->idle_until_ms[lanes[i]][p];
        if (now_ms < *idle_until)
            continue;
        int n = claim_lane(p, lanes[i], max - got, done, done_count);
        if (n < 0)
            return -1;
        *idle_until = n == 0 ? now_ms + SENDER_IDLE_WAIT_MS : 0;
        got += n;
    }
    return got;
}

/* --- the loop --------------------------------------------------------------- */

static void describe(struct finish *f, const char *kind, long code)
{
    snprintf(f->reason_buf, sizeof(f->reason_buf), "%s:%ld", kind, code);
    f->reason = f->reason_buf;
}

/* The outcome of a finished transfer, and its breaker's view of it. */
static void classify(struct transfer *t, CURLcode rc, struct finish *f)
{
    long code = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    *f = (struct finish){.t = t};
    if (t->provider == PROVIDER_SMTP) {
        f->result = delivery_classify_smtp(rc == CURLE_OK, code);
        if (f->result != DELIVERY_OK)
            code ? describe(f, code >= 500 ? "smtp_5xx" : "smtp_4xx", code)
                 : (void)(f->reason = t->error[0] ? t->error : curl_easy_strerror(rc));
    } else {
        if (rc != CURLE_OK)
            code = 0;
        f->result = delivery_classify_http(code);
        if (f->result != DELIVERY_OK)
            code ? describe(f, code >= 500 ? "provider_5xx" : "provider_4xx", code)
                 : (void)(f->reason = t->error[0] ? t->error : curl_easy_strerror(rc));
    }
    pthread_mutex_lock(&S.breaker_lock);
    if (f->result != DELIVERY_PERMANENT) /* a refused message says nothing of the provider */
        breaker_record(&S.breakers[t->provider], f->result == DELIVERY_OK, mono_ms(),
                       (int)notify_cfg.breaker_failures, notify_cfg.breaker_open_ms);
    else
        S.breakers[t->provider].probing = false;
    pthread_mutex_unlock(&S.breaker_lock);
}

static size_t completions(struct finish *done, size_t n)
{
    CURLMsg *m;
    int left;
    while (n < SENDER_DONE_MAX && (m = curl_multi_info_read(W->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct transfer *t = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(W->multi, t->easy);
        W->inflight[t->lane == LANE_HIGH ? 0 : 1]--;
        classify(t, rc, &done[n++]);
    }
    return n;
}

/* How many rows of provider p this worker may claim now: free_slots
 * while its breaker is closed, one when it is half open (the probe, taken
 * here so that one worker sends it), none while it is open. */
static int breaker_take(enum provider p, int free_slots, int64_t now_ms, bool *probe)
{
    pthread_mutex_lock(&S.breaker_lock);
    struct breaker *b = &S.breakers[p];
    int n = 0;
    *probe = false;
    if (breaker_closed_or_due(b, now_ms)) {
        *probe = b->open_until_ms != 0;
        n = *probe ? (int)breaker_allows(b, now_ms) : free_slots;
    }
    pthread_mutex_unlock(&S.breaker_lock);
    return n;
}

/* A probe that was not sent after all (nothing due, or it ended at once)
 * lets the next round probe again. */
static void breaker_probe_unused(enum provider p)
{
    pthread_mutex_lock(&S.breaker_lock);
    S.breakers[p].probing = false;
    pthread_mutex_unlock(&S.breaker_lock);
}

/* Claims for one lane group: each provider with a configured URL whose
 * breaker lets sends through, up to the group's free slots, once at least
 * min_free of them are free. */
static void claim_lanes(const int *lanes, int nlanes, int slot, int cap, int min_free,
                        struct finish *done, size_t *nd)
{
    int64_t now_ms = mono_ms();
    for (int p = 0; p < PROVIDER_COUNT; p++) {
        int free_slots = cap - W->inflight[slot];
        if (free_slots <= 0 || free_slots < min_free || *nd + (size_t)free_slots > SENDER_DONE_MAX)
            return;
        bool probe;
        int max =
            provider_url((enum provider)p)[0] ? breaker_take(p, free_slots, now_ms, &probe) : 0;
        if (max == 0)
            continue;
        int before = W->inflight[slot];
        int got = claim((enum provider)p, lanes, nlanes, max, done, nd);
        if (probe && W->inflight[slot] == before)
            breaker_probe_unused(p);
        if (got < 0)
            return; /* logged by claim_lane */
    }
}

static void finish_and_free(struct finish *done, size_t n)
{
    finish_all(done, n);
    for (size_t i = 0; i < n; i++)
        transfer_free((struct transfer *)done[i].t);
}

static bool connected(void)
{
    if (W->pg && PQstatus(W->pg) == CONNECTION_OK)
        return true;
    if (W->pg)
        PQfinish(W->pg);
    char err[512];
    W->pg = db_connect(S.dsn, "notification", "tessera-notification-sender", S.statement_timeout_ms,
                       err, sizeof(err));
    if (!W->pg) {
        log_fields(LOG_WARN, "delivery worker cannot reach PostgreSQL; will retry", "error", err,
                   NULL);
        return false;
    }
    /* The worker's commits do not wait for the WAL flush. Losing its last
     * few commits in a database crash loses nothing: a lost claim leaves
     * the row pending, a lost outcome leaves it "sending" until the lease
     * runs out, and it is sent again with the same message id (at least
     * once, as after a crash of the worker). The decisions (the consumer's
     * commits, with their offsets) stay synchronous. */
    PGresult *res =
        db_query(W->pg, "SET synchronous_commit = off", 0, NULL, err, sizeof(err), NULL);
    if (!res)
        log_fields(LOG_WARN, "delivery worker: synchronous_commit stays on", "error", err, NULL);
    PQclear(res);
    return true;
}

static void *sender_main(void *arg)
{
    static const int lanes_high[] = {LANE_HIGH}, lanes_rest[] = {LANE_NORMAL, LANE_BULK};
    W = arg;
    struct finish *done = W->done;
    size_t nd = 0; /* finished, not yet recorded */
    int64_t last_claim = 0, last_sweep = 0;
    while (!atomic_load(&S.stop)) {
        if (!connected()) {
            multi_wait(W->mh, SENDER_RECONNECT_MS);
            continue;
        }
        if (mono_ms() - last_claim >= SENDER_CLAIM_EVERY_MS) {
            last_claim = mono_ms();
            /* the round's outcomes first: their slots are free again */
            finish_and_free(done, nd);
            nd = 0;
            if (last_claim - last_sweep >= SENDER_SWEEP_EVERY_MS) {
                last_sweep = last_claim;
                send_queue_sweep(W->pg);
            }
            /* the high lane first, with its own slots */
            claim_lanes(lanes_high, 1, 0, W->cap_high, 1, done, &nd);
            int slice = W->cap_bulk / SENDER_SLICE_DIVISOR;
            claim_lanes(lanes_rest, 2, 1, W->cap_bulk, slice > 0 ? slice : 1, done, &nd);
        }
        nd = completions(done, nd);
        bool busy = W->inflight[0] + W->inflight[1] > 0;
        int64_t next_claim = last_claim + SENDER_CLAIM_EVERY_MS - mono_ms();
        int wait_ms = busy ? SENDER_CLAIM_EVERY_MS : SENDER_IDLE_WAIT_MS;
        if (nd > 0 && next_claim < wait_ms)
            wait_ms = next_claim > 0 ? (int)next_claim : 0; /* record them in time */
        multi_wait(W->mh, wait_ms);
    }
    finish_and_free(done, nd);
    return NULL;
}

/* Worker i's share of the slots: the configured counts are for the
 * service, split evenly (each worker keeps at least one of each). */
static int worker_init(struct worker *w, int i)
{
    int n = S.count;
    w->cap_high = (int)(notify_cfg.inflight_high / n + (i < notify_cfg.inflight_high % n));
    w->cap_bulk = (int)(notify_cfg.inflight_bulk / n + (i < notify_cfg.inflight_bulk % n));
    w->cap_high = w->cap_high > 0 ? w->cap_high : 1;
    w->cap_bulk = w->cap_bulk > 0 ? w->cap_bulk : 1;
    w->done = calloc(SENDER_DONE_MAX, sizeof(*w->done));
    w->status = calloc(SENDER_DONE_MAX, sizeof(*w->status));
    w->claimed = calloc(SENDER_INFLIGHT_MAX, sizeof(*w->claimed));
    w->mh = multi_open();
    if (!w->done || !w->status || !w->claimed || !w->mh)
        return -1;
    w->multi = multi_curl(w->mh);
    if (pthread_create(&w->thread, NULL, sender_main, w) != 0)
        return -1;
    w->started = true;
    return 0;
}

int notify_sender_start(const struct service_common_config *common)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    snprintf(S.dsn, sizeof(S.dsn), "%s", common->pg_dsn);
    S.statement_timeout_ms = (int)common->pg_statement_timeout_ms;
    S.count = (int)notify_cfg.senders;
    S.workers = calloc((size_t)S.count, sizeof(*S.workers));
    if (!S.workers)
        return -1;
    for (int i = 0; i < S.count; i++)
        if (worker_init(&S.workers[i], i) < 0)
            return -1;
    return 0;
}

/* A worker's kept easy handles and multi handle, once its thread ended. */
static void worker_free(struct worker *w)
{
    while (w->easy_pooled > 0)
        curl_easy_cleanup(w->easy_pool[--w->easy_pooled]);
    multi_close(w->mh);
    free(w->done), free(w->status), free(w->claimed);
    w->mh = NULL, w->multi = NULL, w->done = NULL, w->status = NULL, w->claimed = NULL;
}

/* In-flight sends are abandoned: their rows stay "sending" and a worker
 * sends them again after the lease, with the same message id. */
void notify_sender_stop(void)
{
    if (!S.workers)
        return;
    atomic_store(&S.stop, true);
    for (int i = 0; i < S.count; i++)
        if (S.workers[i].started)
            multi_wakeup(S.workers[i].mh);
    for (int i = 0; i < S.count; i++) {
        struct worker *w = &S.workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        if (w->pg)
            PQfinish(w->pg);
        w->pg = NULL, w->started = false;
        worker_free(w);
    }
    free(S.workers);
    S.workers = NULL;
}
