/* tessera-notification: renders and delivers messages (inbox, email, SMS,
 * push) under consent, quiet hours, caps and de-duplication. It consumes
 * notify-requests (apply.c), sends through SMTP and webhooks on its own
 * delivery thread (sender.c) and reports outcomes on notify-events. */
#include "bus/topics.h"
#include "notification.h"
#include "service/consumer_service.h"
#include "log/log.h"
#include <string.h>

extern const struct db_migration notification_migrations[];
extern const unsigned notification_migrations_count;

static struct service_common_config common;
static long long batch_max, poll_timeout_ms;
struct notify_config notify_cfg;

/* Bulk sends in flight: measured on the benchmark's bare local sink
 * (bench/notify.sh), where curl's multi handle keeps this many keep-alive
 * connections busy without the sink or the worker's loop becoming the
 * limit; a real provider's limits are set per deployment. The circuit
 * breaker still stops claiming for a failing provider, so a dead one never
 * ties up more than the slots of one round. */
#define NOTIFY_INFLIGHT_BULK_DEFAULT "512"

/* The consumer's prefetch, per partition of notify-requests (librdkafka
 * 2.0 counts queued.max.messages.kbytes and queued.min.messages per
 * partition). librdkafka's defaults (64 MiB, 100 000 messages) let the
 * service read a whole campaign of 100 000 requests into memory while the
 * decisions fall behind (129 MiB resident in bench/notify.sh). Too small
 * a bound starves the consumer instead: once a partition's queue is full,
 * librdkafka 2.0 fetches it again only at its broker thread's next
 * wake-up, not when the queue drains, so with 256 KiB (about a thousand
 * requests) the consumer waited for messages most of the time (a run of
 * 30 000: 29 s waiting, 3.6 s deciding; 1 200 messages/s). 4 MiB and
 * 10 000 messages a partition: 5 000-5 900 messages/s, 56 MiB peak over
 * 100 000 requests, flat. */
#define NOTIFY_PREFETCH_KBYTES   4096
#define NOTIFY_PREFETCH_MESSAGES 10000

/* Delivery workers. One by default: on the benchmark's 2 shared cores
 * (bench/notify.sh, 100 000 messages) one worker took 64 s and two 70-75 s,
 * the second competing with the consumer for the same cores. Two help
 * when one worker's waits for PostgreSQL are what holds the sends back
 * (a database on other cores or machines): while one waits, the other
 * drives its sends. */
#define NOTIFY_SENDERS_DEFAULT "1"
#define NOTIFY_SENDERS_MAX     8

/* clang-format off */
static const struct config_entry config_table[] = {
    SERVICE_COMMON_CONFIG(common, "9104"),
    {"TESSERA_NOTIFICATION_BATCH_MAX", CONFIG_INT, &batch_max, "1000", 1, PIPELINE_BATCH_MAX, false,
     "events applied in one transaction at most"},
    {"TESSERA_NOTIFICATION_POLL_TIMEOUT_MS", CONFIG_INT, &poll_timeout_ms, "200", 1, 5000, false,
     "how long a poll waits for the first event"},
    {"TESSERA_NOTIFICATION_CONTACT_KEY", CONFIG_STRING, &notify_cfg.contact_key_hex, "", 0, 0, true,
     "64 hex digits: the key members' addresses are sealed with at rest (empty: unsealed)"},
    {"TESSERA_NOTIFICATION_SMTP_URL", CONFIG_STRING, &notify_cfg.smtp_url, "", 0, 0, false,
     "smtp://host:port (smtps:// for implicit TLS); empty: email is suppressed (no_provider)"},
    {"TESSERA_NOTIFICATION_SMTP_FROM", CONFIG_STRING, &notify_cfg.smtp_from, "noreply@tessera.local",
     0, 0, false, "the envelope and header sender of email"},
    {"TESSERA_NOTIFICATION_SMTP_USERNAME", CONFIG_STRING, &notify_cfg.smtp_username, "", 0, 0,
     false, "SMTP AUTH user (empty: no AUTH)"},
    {"TESSERA_NOTIFICATION_SMTP_PASSWORD", CONFIG_STRING, &notify_cfg.smtp_password, "", 0, 0, true,
     "SMTP AUTH password"},
    {"TESSERA_NOTIFICATION_SMTP_TLS", CONFIG_STRING, &notify_cfg.smtp_tls, "try", 0, 0, false,
     "STARTTLS: none, try or required"},
    {"TESSERA_NOTIFICATION_SMS_URL", CONFIG_STRING, &notify_cfg.sms_url, "", 0, 0, false,
     "the SMS provider's webhook; empty: SMS is suppressed (no_provider)"},
    {"TESSERA_NOTIFICATION_PUSH_URL", CONFIG_STRING, &notify_cfg.push_url, "", 0, 0, false,
     "the push provider's webhook; empty: push is suppressed (no_provider)"},
    {"TESSERA_NOTIFICATION_WEBHOOK_SECRET", CONFIG_STRING, &notify_cfg.webhook_secret, "", 0, 0,
     true, "shared secret of the webhooks' X-Tessera-Signature (HMAC-SHA256)"},
    {"TESSERA_NOTIFICATION_SEND_TIMEOUT_MS", CONFIG_INT, &notify_cfg.send_timeout_ms, "10000", 100,
     120000, false, "one send's time limit (connect included)"},
    {"TESSERA_NOTIFICATION_ATTEMPTS_MAX", CONFIG_INT, &notify_cfg.attempts_max, "8", 1, 100, false,
     "sends of one message before it fails (retries_exhausted)"},
    {"TESSERA_NOTIFICATION_BACKOFF_BASE_MS", CONFIG_INT, &notify_cfg.backoff_base_ms, "1000", 1,
     3600000, false, "the first retry's delay; doubled each time, with jitter"},
    {"TESSERA_NOTIFICATION_BACKOFF_MAX_MS", CONFIG_INT, &notify_cfg.backoff_max_ms, "300000", 1,
     86400000, false, "the longest delay between retries"},
    {"TESSERA_NOTIFICATION_INFLIGHT_HIGH", CONFIG_INT, &notify_cfg.inflight_high, "16", 1, 256,
     false, "sends of the high lane (login codes) in flight at most: never used by bulk"},
    {"TESSERA_NOTIFICATION_INFLIGHT_BULK", CONFIG_INT, &notify_cfg.inflight_bulk,
     NOTIFY_INFLIGHT_BULK_DEFAULT, 1, 768, false,
     "sends of the normal and bulk lanes in flight at most (a slice; claimed once half is free)"},
    {"TESSERA_NOTIFICATION_SENDERS", CONFIG_INT, &notify_cfg.senders, NOTIFY_SENDERS_DEFAULT, 1,
     NOTIFY_SENDERS_MAX, false,
     "delivery workers (threads, each with its own PostgreSQL connection); the in-flight slots "
     "are split among them"},
    {"TESSERA_NOTIFICATION_BREAKER_FAILURES", CONFIG_INT, &notify_cfg.breaker_failures, "5", 1,
     1000, false, "failures in a row that open a provider's circuit breaker"},
    {"TESSERA_NOTIFICATION_BREAKER_OPEN_MS", CONFIG_INT, &notify_cfg.breaker_open_ms, "5000", 10,
     600000, false, "how long an open breaker sends nothing before one probe"},
};
/* clang-format on */

static int notify_setup(void *ctx, const struct service_common_config *c)
{
    const char *tls = notify_cfg.smtp_tls;
    if (strcmp(tls, "none") != 0 && strcmp(tls, "try") != 0 && strcmp(tls, "required") != 0) {
        log_fields(LOG_ERROR, "TESSERA_NOTIFICATION_SMTP_TLS must be none, try or required", NULL);
        return -1;
    }
    if (notify_seal_init(notify_cfg.contact_key_hex) < 0) {
        log_fields(LOG_ERROR, "TESSERA_NOTIFICATION_CONTACT_KEY must be 64 hex digits", NULL);
        return -1;
    }
    if (notify_sender_start(c) < 0) {
        log_fields(LOG_ERROR, "cannot start the delivery worker", NULL);
        return -1;
    }
    return 0;
}

static void notify_teardown(void *ctx)
{
    notify_sender_stop();
}

int main(int argc, char **argv)
{
    static const char *const topics[] = {TOPIC_NOTIFY_REQUESTS};
    static struct notify_ctx ctx;
    static const struct pipeline_ops ops = {.apply = notify_apply_batch,
                                            .after_commit = notify_after_commit,
                                            .begin_batch = notify_begin_batch};
    const struct consumer_service svc = {
        .name = "notification",
        .summary = "tessera-notification: message delivery",
        .schema = "notification",
        .group_id = "notification",
        .topics = topics,
        .topic_count = 1,
        .migrations = notification_migrations,
        .migration_count = notification_migrations_count,
        .ops = &ops,
        .ctx = &ctx,
        .setup = notify_setup,
        .teardown = notify_teardown,
        .prefetch_kbytes = NOTIFY_PREFETCH_KBYTES,
        .prefetch_messages = NOTIFY_PREFETCH_MESSAGES,
    };
    return consumer_service_run(argc, argv, &svc, config_table,
                                sizeof(config_table) / sizeof(config_table[0]), &common, &batch_max,
                                &poll_timeout_ms);
}
