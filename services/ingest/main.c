/* tessera-ingest: the HTTP API. Authenticates, validates, turns requests
 * into events and ledger commands, and answers with the ledger's verdict. */
#include <event2/thread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "coupon_templates.h"
#include "ingest.h"
#include "profile_cache.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "service/admin.h"
#include "service/startup.h"

#define DRAIN_CHECK_MS        50
#define DRAIN_MAX_MS          5000
#define OUTBOX_SWEEP_S        3
#define REDEMPTION_SETTLE_MS  250   /* how soon a verdict settles its redemption */
#define INGEST_KAFKA_PROBE_MS 5000  /* one start-up check of the broker */
#define RATE_BUCKETS          65536 /* keys and addresses tracked at once (~6 MiB) */

extern const struct db_migration ingest_migrations[];
extern const unsigned ingest_migrations_count;

static struct ingest app;
static struct startup *startup;    /* waits for the database before opening the API */
static struct event *open_retry;   /* armed while ingest_open keeps failing */
static struct admin_server *admin; /* its /livez says failed once the verdict tail is dead */
static bool failed;                /* ending on an error: exit status 1 */

static const struct config_entry config_table[] = {
    SERVICE_COMMON_CONFIG(app.common, "9100"),
    {"TESSERA_API_ADDR", CONFIG_STRING, &app.api_addr, "127.0.0.1", 0, 0, false,
     "address the HTTP API listens on"},
    {"TESSERA_API_PORT", CONFIG_INT, &app.api_port, "8080", 0, 65535, false,
     "port of the HTTP API (0 picks a free one)"},
    {"TESSERA_WAIT_MS", CONFIG_INT, &app.wait_default_ms, "2000", 0, INGEST_WAIT_MAX_MS, false,
     "how long a money request waits for the ledger before answering 202"},
    {"TESSERA_KAFKA_COMMAND_PRODUCERS", CONFIG_INT, &app.command_producer_count, "8", 1,
     INGEST_COMMAND_PRODUCERS_MAX, false,
     "Kafka producers (broker connections) carrying ledger commands, a member's always by the "
     "same one (docs/purchase-path.md)"},
    {"TESSERA_KAFKA_COMMAND_LINGER_MS", CONFIG_INT, &app.command_linger_ms, "0", 0, 1000, false,
     "linger.ms of ingest's producers, in place of TESSERA_KAFKA_LINGER_MS: a command waits for "
     "its verdict, so it goes at once"},
    {"TESSERA_PG_POOL_SIZE", CONFIG_INT, &app.pg_pool_size, "4", 1, 64, false,
     "PostgreSQL connections of the API"},
    {"TESSERA_BODY_MAX_BYTES", CONFIG_INT, &app.body_max_bytes, "65536", 1024, 1048576, false,
     "largest accepted request body (POST /v1/events:batch: 8 MiB)"},
    {"TESSERA_HTTP_CONNECTIONS_MAX", CONFIG_INT, &app.connections_max, "512", 1, 65536, false,
     "API connections open at once; more are answered 503 too_many_connections and closed "
     "(keep it under the open-files limit)"},
    {"TESSERA_RATE_KEY_PER_S", CONFIG_INT, &app.rate_key_per_s, "1000", 1, RATE_PER_S_MAX, false,
     "requests per second per API key and instance (a key's own rate_limit_per_s wins)"},
    {"TESSERA_RATE_KEY_BURST", CONFIG_INT, &app.rate_key_burst, "2000", 1, RATE_PER_S_MAX, false,
     "requests an idle API key may send at once"},
    {"TESSERA_RATE_IP_PER_S", CONFIG_INT, &app.rate_ip_per_s, "2000", 1, RATE_PER_S_MAX, false,
     "requests per second per client address and instance (before authentication)"},
    {"TESSERA_RATE_IP_BURST", CONFIG_INT, &app.rate_ip_burst, "4000", 1, RATE_PER_S_MAX, false,
     "requests an idle client address may send at once"},
    {"TESSERA_API_KEY_CACHE_MAX", CONFIG_INT, &app.key_cache_max, "100000", 0,
     KEY_CACHE_KNOWN_MAX_LIMIT, false,
     "API keys each instance keeps in memory (least recently used go first); 0: every request "
     "reads the key from PostgreSQL"},
    {"TESSERA_SESSION_TTL_S", CONFIG_INT, &app.session_ttl_s, "86400", 60, 2592000, false,
     "lifetime of a member session token"},
    {"TESSERA_MEMBER_DEVICES_MAX", CONFIG_INT, &app.member_devices_max, "3", 1, 100, false,
     "devices a member may log in from"},
    {"TESSERA_IDEMPOTENCY_RETENTION_S", CONFIG_INT, &app.idem_retention_s, "604800", 3600, 31622400,
     false, "how long Idempotency-Keys and their answers are kept (a retry after that is new)"},
    {"TESSERA_IDEMPOTENCY_PURGE_INTERVAL_MS", CONFIG_INT, &app.idem_purge_interval_ms, "60000", 100,
     3600000, false, "how often expired Idempotency-Keys are purged"},
    {"TESSERA_MASTER_KEY", CONFIG_STRING, &app.master_key_hex, NULL, 0, 0, true,
     "master key sealing member PII: 64 hex digits (32 random bytes); never commit it"},
    {"TESSERA_MASTER_KEY_VERSION", CONFIG_INT, &app.master_key_version, "1", 1, 1000000, false,
     "version of TESSERA_MASTER_KEY; raise it by one on every rotation"},
    {"TESSERA_MASTER_KEY_PREVIOUS", CONFIG_STRING, &app.master_key_previous_hex, "", 0, 0, true,
     "the master key before the last rotation, until --reencrypt-pii has run"},
};

/* Handlers refuse new work while the service drains. */
#define GUARDED(name, handler)                                                                     \
    static void name(struct http_exchange *ex, void *a)                                            \
    {                                                                                              \
        if (((struct ingest *)a)->stopping) {                                                      \
            http_reply_problem(ex, 503, "unavailable", "the service is shutting down", NULL);      \
            return;                                                                                \
        }                                                                                          \
        handler(ex, a);                                                                            \
    }
GUARDED(route_register, members_register)
GUARDED(route_find, members_find)
GUARDED(route_get, members_get)
GUARDED(route_patch, members_patch)
GUARDED(route_tag_put, member_tags_put)
GUARDED(route_tag_delete, member_tags_delete)
GUARDED(route_devices, member_devices_list)
GUARDED(route_device_delete, member_devices_delete)
GUARDED(route_erase, members_erase_personal_data)
GUARDED(route_topup, commands_topup)
GUARDED(route_purchase, commands_purchase)
GUARDED(route_operation, operations_get)
GUARDED(route_key_create, api_keys_create)
GUARDED(route_key_list, api_keys_list)
GUARDED(route_key_revoke, api_keys_revoke)
GUARDED(route_branch_create, branches_create)
GUARDED(route_audit_list, audit_list)
GUARDED(route_sms_code, member_auth_sms_code)
GUARDED(route_login, member_auth_login)
GUARDED(route_logout, member_auth_logout)
GUARDED(route_me, me_get)
GUARDED(route_me_password, me_set_password)
GUARDED(route_product, products_define)
GUARDED(route_card_limits, card_limits_put)
GUARDED(route_earning_rules, earning_rules_put)
GUARDED(route_setting_put, settings_put)
GUARDED(route_tenant_create, tenants_create)
GUARDED(route_branch_list, branches_list)
GUARDED(route_branch_rename, branches_rename)
GUARDED(route_branch_close, branches_close)
GUARDED(route_setting_get, settings_get)
GUARDED(route_activity_rules_get, activity_rules_get)
GUARDED(route_activity_rules_put, activity_rules_put)
GUARDED(route_activity, activities_record)
GUARDED(route_activity_me, activities_record_me)
GUARDED(route_referral_rules_put, referral_rules_put)
GUARDED(route_referral_rules_get, referral_rules_get)
GUARDED(route_rewards_create, rewards_create)
GUARDED(route_rewards_list, rewards_list)
GUARDED(route_coupon_templates_create, coupon_templates_create)
GUARDED(route_coupon_templates_list, coupon_templates_list)
GUARDED(route_coupon_templates_get, coupon_templates_get)
GUARDED(route_coupon_issues_create, coupon_issues_create)
GUARDED(route_coupon_issues_get, coupon_issues_get)
GUARDED(route_coupon_claims_create, coupon_claims_create)
GUARDED(route_redemption, redemptions_create)
GUARDED(route_redemption_mine, redemptions_create_mine)
GUARDED(route_tiers_put, tiers_config_put)
GUARDED(route_tiers_get, tiers_config_get)
GUARDED(route_tiers_dry_run, tiers_config_dry_run)
GUARDED(route_tier_override_put, tier_override_put)
GUARDED(route_tier_override_delete, tier_override_delete)
GUARDED(route_tier_invitation, tier_invitation_post)
GUARDED(route_tier_view, tier_view_get)
GUARDED(route_me_tier, tier_view_me)
GUARDED(route_resource_put, resources_put)
GUARDED(route_resource_get, resources_get)
GUARDED(route_entitlements, entitlements_get)
GUARDED(route_me_entitlements, entitlements_me)
GUARDED(route_card_issue, cards_issue)
GUARDED(route_card_renew, cards_renew)
GUARDED(route_card_use, cards_use)
GUARDED(route_card_freeze, cards_freeze)
GUARDED(route_coupon_issue, coupons_issue)
GUARDED(route_coupon_redeem, coupons_redeem)
GUARDED(route_card_liability, reports_card_liability)
GUARDED(route_batch, batch_post)
GUARDED(route_points_adjust, points_adjust)
GUARDED(route_refund, refunds_create)
GUARDED(route_history, history_get)
GUARDED(route_liability, reports_prepaid_liability)
GUARDED(route_quote, quote_get)
GUARDED(route_consents_get, consents_get)
GUARDED(route_consents_put, consents_put)
GUARDED(route_me_consents_get, consents_me_get)
GUARDED(route_me_consents_put, consents_me_put)
GUARDED(route_inbox_read, inbox_read_post)
GUARDED(route_me_inbox_read, inbox_read_me_post)
GUARDED(route_inbox, inbox_get)
GUARDED(route_me_inbox, inbox_get_mine)
GUARDED(route_template_put, notify_template_put)
GUARDED(route_template_get, notify_template_get)
GUARDED(route_notify_policy_put, notify_policy_put)
GUARDED(route_notify_policy_get, notify_policy_get)

static const struct http_route api_routes[] = {
    {"POST", "/v1/members", route_register},
    {"GET", "/v1/members", route_find},
    {"GET", "/v1/members/{member_id}", route_get},
    {"PATCH", "/v1/members/{member_id}", route_patch},
    {"PUT", "/v1/members/{member_id}/tags/{tag}", route_tag_put},
    {"DELETE", "/v1/members/{member_id}/tags/{tag}", route_tag_delete},
    {"GET", "/v1/members/{member_id}/devices", route_devices},
    {"DELETE", "/v1/members/{member_id}/devices/{device_id}", route_device_delete},
    {"DELETE", "/v1/members/{member_id}/personal-data", route_erase},
    {"POST", "/v1/members/{member_id}/topups", route_topup},
    {"POST", "/v1/members/{member_id}/purchases", route_purchase},
    {"GET", "/v1/operations/{operation_id}", route_operation},
    {"POST", "/v1/api-keys", route_key_create},
    {"GET", "/v1/api-keys", route_key_list},
    {"DELETE", "/v1/api-keys/{key_id}", route_key_revoke},
    {"POST", "/v1/branches", route_branch_create},
    {"GET", "/v1/branches", route_branch_list},
    {"PATCH", "/v1/branches/{branch_id}", route_branch_rename},
    {"DELETE", "/v1/branches/{branch_id}", route_branch_close},
    {"POST", "/v1/tenants", route_tenant_create},
    {"GET", "/v1/audit-log", route_audit_list},
    {"POST", "/v1/auth/sms-codes", route_sms_code},
    {"POST", "/v1/auth/sessions", route_login},
    {"DELETE", "/v1/auth/sessions", route_logout},
    {"GET", "/v1/me", route_me},
    {"PUT", "/v1/me/password", route_me_password},
    {"POST", "/v1/products", route_product},
    {"PUT", "/v1/config/card-limits", route_card_limits},
    {"PUT", "/v1/config/earning-rules", route_earning_rules},
    {"GET", "/v1/config/topup-bonus", route_setting_get},
    {"PUT", "/v1/config/topup-bonus", route_setting_put},
    {"GET", "/v1/config/points-policy", route_setting_get},
    {"PUT", "/v1/config/points-policy", route_setting_put},
    {"GET", "/v1/config/refund-fees", route_setting_get},
    {"PUT", "/v1/config/refund-fees", route_setting_put},
    {"GET", "/v1/config/prepaid", route_setting_get},
    {"GET", "/v1/config/card-limits", route_setting_get},
    {"PUT", "/v1/config/prepaid", route_setting_put},
    {"GET", "/v1/config/activity-rules", route_activity_rules_get},
    {"PUT", "/v1/config/activity-rules", route_activity_rules_put},
    {"POST", "/v1/members/{member_id}/activities", route_activity},
    {"POST", "/v1/me/activities", route_activity_me},
    {"PUT", "/v1/config/referrals", route_referral_rules_put},
    {"GET", "/v1/config/referrals", route_referral_rules_get},
    {"POST", "/v1/rewards", route_rewards_create},
    {"GET", "/v1/rewards", route_rewards_list},
    {"POST", "/v1/coupon-templates", route_coupon_templates_create},
    {"GET", "/v1/coupon-templates", route_coupon_templates_list},
    {"GET", "/v1/coupon-templates/{template_id}", route_coupon_templates_get},
    {"POST", "/v1/coupon-templates/{template_id}/issues", route_coupon_issues_create},
    {"GET", "/v1/coupon-templates/{template_id}/issues/{issue_id}", route_coupon_issues_get},
    {"POST", "/v1/coupon-templates/{template_id}/claims", route_coupon_claims_create},
    {"POST", "/v1/members/{member_id}/redemptions", route_redemption},
    {"POST", "/v1/me/redemptions", route_redemption_mine},
    {"PUT", "/v1/config/tiers", route_tiers_put},
    {"GET", "/v1/config/tiers", route_tiers_get},
    {"POST", "/v1/config/tiers:dry-run", route_tiers_dry_run},
    {"PUT", "/v1/members/{member_id}/tier-override", route_tier_override_put},
    {"DELETE", "/v1/members/{member_id}/tier-override", route_tier_override_delete},
    {"POST", "/v1/members/{member_id}/tier-invitations", route_tier_invitation},
    {"GET", "/v1/members/{member_id}/tier", route_tier_view},
    {"GET", "/v1/me/tier", route_me_tier},
    {"PUT", "/v1/resources/{resource}", route_resource_put},
    {"GET", "/v1/resources/{resource}", route_resource_get},
    {"GET", "/v1/members/{member_id}/entitlements", route_entitlements},
    {"GET", "/v1/me/entitlements", route_me_entitlements},
    {"POST", "/v1/members/{member_id}/cards", route_card_issue},
    {"POST", "/v1/members/{member_id}/cards/{card_id}/renewals", route_card_renew},
    {"POST", "/v1/members/{member_id}/cards/{card_id}/uses", route_card_use},
    {"POST", "/v1/members/{member_id}/cards/{card_id}/freeze", route_card_freeze},
    {"POST", "/v1/members/{member_id}/coupons", route_coupon_issue},
    {"POST", "/v1/members/{member_id}/coupons/{coupon_id}/redeem", route_coupon_redeem},
    {"GET", "/v1/reports/card-liability", route_card_liability},
    {"POST", "/v1/events:batch", route_batch},
    {"POST", "/v1/members/{member_id}/points-adjustments", route_points_adjust},
    {"POST", "/v1/members/{member_id}/refunds", route_refund},
    {"GET", "/v1/members/{member_id}/ledger", route_history},
    {"GET", "/v1/members/{member_id}/quote", route_quote},
    {"GET", "/v1/reports/prepaid-liability", route_liability},
    {"GET", "/v1/members/{member_id}/consents", route_consents_get},
    {"PUT", "/v1/members/{member_id}/consents", route_consents_put},
    {"GET", "/v1/me/consents", route_me_consents_get},
    {"PUT", "/v1/me/consents", route_me_consents_put},
    {"POST", "/v1/members/{member_id}/inbox/read", route_inbox_read},
    {"POST", "/v1/me/inbox/read", route_me_inbox_read},
    {"GET", "/v1/members/{member_id}/inbox", route_inbox},
    {"GET", "/v1/me/inbox", route_me_inbox},
    {"PUT", "/v1/templates/{name}", route_template_put},
    {"GET", "/v1/templates/{name}", route_template_get},
    {"PUT", "/v1/config/notifications", route_notify_policy_put},
    {"GET", "/v1/config/notifications", route_notify_policy_get},
};

static bool ingest_ready(void *ctx, json_t *checks)
{
    struct ingest *a = ctx;
    json_object_set_new(checks, "startup", json_boolean(a->api != NULL));
    if (!a->api)
        return false;
    bool pg = pg_pool_healthy(a->pg), redis = cache_async_connected(a->cache),
         kafka = bus_tail_ready(a->verdicts);
    json_object_set_new(checks, "postgres", json_boolean(pg));
    json_object_set_new(checks, "redis", json_boolean(redis));
    json_object_set_new(checks, "kafka_verdicts", json_boolean(kafka));
    /* Redis is only a cache: without it reads fall back to PostgreSQL and
     * writes go on, so it is reported but does not take us out of service. */
    return pg && kafka && !a->stopping;
}

/* The API key cache's figures (key_cache.h); none without a cache. */
static void key_cache_collect(struct ingest *a)
{
    if (!a->keys)
        return;
    struct key_cache_stats st;
    key_cache_stats(a->keys, &st);
    const struct {
        const char *name, *help;
        long long value;
    } counters[] = {
        {"tessera_api_key_cache_hits_total",
         "Requests whose API key was answered from this instance's cache (no PostgreSQL read).",
         st.hits},
        {"tessera_api_key_cache_misses_total",
         "Requests whose API key was read from PostgreSQL (not cached, or the cache is off).",
         st.misses},
        {"tessera_api_key_cache_forgotten_total",
         "API key changes heard (NOTIFY api_key_changes) or made here: the key left the cache.",
         st.forgotten},
        {"tessera_api_key_cache_resets_total",
         "Times the whole API key cache was dropped (its LISTEN connection lost, a TRUNCATE).",
         st.resets},
    };
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        metrics_set(metrics_series(metrics_counter(counters[i].name, counters[i].help, NULL), NULL),
                    (double)counters[i].value);
    struct metric_family *entries = metrics_gauge(
        "tessera_api_key_cache_entries", "API keys in this instance's cache, by kind.", "kind");
    metrics_set(metrics_with(entries, "known"), (double)st.known);
    metrics_set(metrics_with(entries, "unknown"), (double)st.unknown);
    metrics_set(
        metrics_series(metrics_gauge("tessera_api_key_listener_up",
                                     "1 while key changes are heard (the cache is on).", NULL),
                       NULL),
        key_cache_enabled(a->keys) ? 1 : 0);
}

/* Messages produced and not yet acknowledged, over every producer. */
static int producers_outstanding(struct ingest *a)
{
    int n = a->producer ? bus_producer_outstanding(a->producer) : 0;
    for (long long i = 1; i < a->command_producer_count; i++)
        if (a->command_producers[i])
            n += bus_producer_outstanding(a->command_producers[i]);
    return n;
}

/* The command producers beyond the first (app.producer), on the loop. */
static int command_producers_open(const struct bus_config *bus, char *err, size_t err_len)
{
    static const char *const commands[] = {TOPIC_LEDGER_COMMANDS};
    app.command_producers[0] = app.producer;
    for (long long i = 1; i < app.command_producer_count; i++) {
        app.command_producers[i] =
            bus_producer_new(bus, app.base, ingest_on_delivery, &app, err, err_len);
        if (!app.command_producers[i])
            return -1;
        bus_producer_prepare_topics(app.command_producers[i], commands, 1, 5000);
    }
    return 0;
}

static void command_producers_close(void)
{
    for (long long i = 1; i < app.command_producer_count; i++) {
        bus_producer_free(app.command_producers[i]);
        app.command_producers[i] = NULL;
    }
    app.command_producers[0] = NULL;
}

/* Read at each /metrics render on the loop, where these fields live.
 * HTTP requests, Kafka deliveries and PostgreSQL/Redis round trips are
 * counted by the libraries themselves. */
static void ingest_collect(void *ctx)
{
    struct ingest *a = ctx;
    if (!a->api)
        return; /* still starting */
    static const struct {
        const char *name, *help;
        size_t offset;
    } counters[] = {
        {"tessera_ledger_commands_sent_total", "Ledger commands produced by this instance.",
         offsetof(struct ingest, commands_sent)},
        {"tessera_ledger_verdicts_matched_total", "Ledger verdicts that reached a waiting request.",
         offsetof(struct ingest, verdicts_matched)},
        {"tessera_ledger_verdicts_fast_total",
         "Of the verdicts that reached a waiting request, those published by the ledger on "
         "Redis that came before the Kafka event.",
         offsetof(struct ingest, fast_verdicts)},
        {"tessera_ledger_wait_timeouts_total",
         "Money requests answered 202 because the verdict came too late.",
         offsetof(struct ingest, wait_timeouts)},
        {"tessera_member_events_published_total", "Member events relayed from ingest's outbox.",
         offsetof(struct ingest, relayed_events)},
        {"tessera_http_rate_limited_total", "Requests refused with 429 by a rate limit.",
         offsetof(struct ingest, rate_limited)},
        {"tessera_entitlement_checks_total", "Entitlement checks answered.",
         offsetof(struct ingest, entitlement_checks)},
        {"tessera_entitlement_pg_reads_total",
         "Entitlement checks that read PostgreSQL (a cache miss or the rules cache off).",
         offsetof(struct ingest, entitlement_pg_reads)},
        {"tessera_idempotency_keys_purged_total",
         "Idempotency-Keys (and their stored answers) deleted after the retention.",
         offsetof(struct ingest, idem_purged)},
    };
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        metrics_set(metrics_series(metrics_counter(counters[i].name, counters[i].help, NULL), NULL),
                    (double)*(const long long *)((const char *)a + counters[i].offset));
    key_cache_collect(a);
    metrics_set(metrics_series(metrics_gauge("tessera_pg_pool_pending_statements",
                                             "Statements queued or running in the pool.", NULL),
                               NULL),
                (double)pg_pool_pending(a->pg));
    metrics_set(metrics_series(metrics_gauge("tessera_kafka_outstanding_messages",
                                             "Messages produced and not yet acknowledged.", NULL),
                               NULL),
                (double)producers_outstanding(a));
    metrics_set(metrics_series(metrics_gauge("tessera_ingest_requests_live",
                                             "API requests being served (0 when idle).", NULL),
                               NULL),
                (double)a->requests_live);
    metrics_set(
        metrics_series(metrics_gauge("tessera_http_connections", "API connections open now.", NULL),
                       NULL),
        (double)http_server_connections(a->api));
}

static bool waiters_empty(const struct ingest *a)
{
    for (unsigned i = 0; i < INGEST_WAITERS_BUCKETS; i++)
        if (a->waiters[i])
            return false;
    return true;
}

/* Staged shutdown: refuse new requests, let those in flight get their
 * verdicts (bounded), then stop. */
/* The shutdown's drain check (ingest_stop), freed when the loop ends. */
static struct event *drain_timer;

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    static int waited_ms;
    waited_ms += DRAIN_CHECK_MS;
    bool idle = waiters_empty(&app) && pg_pool_pending(app.pg) == 0 && app.pwhash.inflight == 0 &&
                producers_outstanding(&app) == 0;
    if (!idle && waited_ms < DRAIN_MAX_MS)
        return;
    waiters_fail_all(&app);
    event_base_loopbreak(app.base);
}

static void ingest_stop(void *ctx)
{
    app.stopping = true;
    if (!startup_finished(startup) || !app.api) {
        event_base_loopbreak(app.base); /* nothing was accepted yet */
        return;
    }
    if (drain_timer)
        return; /* a second signal while draining: already on its way out */
    struct timeval tv = {0, DRAIN_CHECK_MS * 1000};
    drain_timer = event_new(app.base, -1, EV_PERSIST, on_drain_tick, NULL);
    assert(drain_timer);
    event_add(drain_timer, &tv);
}

/* The verdict tail's handle hit a fatal Kafka error (bus_tail_on_fatal):
 * librdkafka never recovers it, so no verdict would reach a request again.
 * Ending beats living on not-ready: /livez says failed at once, the drain
 * answers what is in flight (503 to new requests, 202 to waiting money
 * requests, whose commands are sent) and the process exits 1, so a
 * supervisor that watches only liveness or the exit starts it afresh. */
static void on_verdicts_fatal(void *ctx)
{
    log_fields(LOG_ERROR, "ingest ending: its verdict tail hit a fatal Kafka error", NULL);
    failed = true;
    admin_server_set_failed(admin, "the verdict tail hit a fatal Kafka error");
    ingest_stop(ctx);
}

static int ingest_open(char *err, size_t err_len)
{
    static char client_id[128];
    static struct bus_config bus;
    service_bus_config(&app.common, "ingest", client_id, sizeof(client_id), &bus);
    bus.linger_ms = (int)app.command_linger_ms;
    app.pg = pg_pool_new(app.base, app.common.pg_dsn, "ingest", (unsigned)app.pg_pool_size,
                         (int)app.common.pg_statement_timeout_ms, err, err_len);
    if (!app.pg)
        return -1;
    app.idem_purge = idem_purge_new(app.pg, app.idem_retention_s, IDEM_PURGE_BATCH_MAX);
    if (!app.idem_purge) {
        snprintf(err, err_len, "no memory for the idempotency purge");
        return -1;
    }
    if (key_listen_open(&app, err, err_len) < 0)
        return -1;
    if (resource_listen_open(&app, err, err_len) < 0)
        return -1;
    app.cache =
        cache_async_new(app.base, app.common.redis_host, (int)app.common.redis_port, err, err_len);
    if (!app.cache)
        return -1;
    app.producer = bus_producer_new(&bus, app.base, ingest_on_delivery, &app, err, err_len);
    if (!app.producer)
        return -1;
    static const char *const produced[] = {TOPIC_LEDGER_COMMANDS, TOPIC_MEMBER_EVENTS,
                                           TOPIC_NOTIFY_REQUESTS};
    bus_producer_prepare_topics(app.producer, produced, 3, 5000);
    if (command_producers_open(&bus, err, err_len) < 0)
        return -1;
    app.verdicts =
        bus_tail_new(&bus, app.base, TOPIC_LEDGER_EVENTS, waiters_on_event, &app, err, err_len);
    if (!app.verdicts)
        return -1;
    bus_tail_on_fatal(app.verdicts, on_verdicts_fatal, &app);
    /* The fast path of the verdicts: the Kafka tail above stays the one
     * that cannot miss one. */
    app.verdicts_fast =
        cache_sub_new(app.base, app.common.redis_host, (int)app.common.redis_port,
                      CACHE_VERDICTS_CHANNEL, waiters_on_published, &app, err, err_len);
    if (!app.verdicts_fast)
        return -1;
    app.sessions = session_store_new(app.base, app.common.redis_host, (int)app.common.redis_port);
    if (!app.sessions) {
        snprintf(err, err_len, "cannot create the session store");
        return -1;
    }
    /* Batches are large by design; every other body is screened against
     * TESSERA_BODY_MAX_BYTES before it is read. */
    static const struct http_body_limit body_limits[] = {
        {"POST", "/v1/events:batch", BATCH_BODY_MAX_BYTES},
    };
    struct http_limits limits = HTTP_LIMITS_DEFAULT;
    limits.body_max_bytes = (size_t)app.body_max_bytes;
    limits.connections_max = (size_t)app.connections_max;
    limits.route_body_limits = body_limits;
    limits.route_body_limit_count = sizeof(body_limits) / sizeof(body_limits[0]);
    app.api =
        http_server_new(app.base, app.api_addr, (uint16_t)app.api_port, api_routes,
                        sizeof(api_routes) / sizeof(api_routes[0]), &limits, &app, err, err_len);
    return app.api ? 0 : -1;
}

static void ingest_on_started(void *ctx);
static void ingest_on_started_cb(evutil_socket_t fd, short what, void *arg)
{
    ingest_on_started(arg);
}

static void on_idem_purged(void *arg, long long purged, bool ok)
{
    struct ingest *a = arg;
    a->idem_purged += purged;
    if (purged > 0) {
        char n[24];
        snprintf(n, sizeof(n), "%lld", purged);
        log_fields(LOG_INFO, "expired idempotency keys purged", "rows", n, NULL);
    }
}

/* Every TESSERA_IDEMPOTENCY_PURGE_INTERVAL_MS on the loop: purge what the
 * retention let go, by ingest's own clock (a run still going is left). */
static void on_idem_purge_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ingest *a = arg;
    if (a->stopping || !pg_pool_healthy(a->pg) || idem_purge_running(a->idem_purge))
        return;
    if (idem_purge_run(a->idem_purge, event_now_us(), on_idem_purged, a) < 0)
        log_warn("could not queue the idempotency purge");
}

/* Undoes a partial ingest_open so it can be tried again. */
static void ingest_close(void)
{
    http_server_free(app.api);
    bus_tail_free(app.verdicts);
    cache_sub_free(app.verdicts_fast);
    app.verdicts_fast = NULL;
    command_producers_close();
    bus_producer_free(app.producer);
    cache_async_free(app.cache);
    profile_cache_drop_pending();
    session_store_free(app.sessions);
    pg_pool_free(app.pg); /* ends a purge run in progress (its statement fails) */
    key_listen_close(&app);
    resource_listen_close(&app);
    idem_purge_free(app.idem_purge);
    app.idem_purge = NULL;
    app.sessions = NULL;
    app.api = NULL;
    app.verdicts = NULL;
    app.producer = NULL;
    app.cache = NULL;
    app.pg = NULL;
}

/* The start-up step, on the start-up thread: migrations need the
 * database and the verdict tail needs the broker, either of which may not
 * be up yet. Checking the broker here keeps the loop (and /readyz) from
 * blocking on it in ingest_open. */
static int ingest_start_step(void *ctx, char *err, size_t err_len)
{
    if (service_migrate(&app.common, "ingest", ingest_migrations, ingest_migrations_count) < 0) {
        snprintf(err, err_len, "migrations did not apply (see the log line before)");
        return -1;
    }
    char client_id[128], cluster[128];
    struct bus_config bus;
    service_bus_config(&app.common, "ingest", client_id, sizeof(client_id), &bus);
    if (bus_cluster_id(&bus, cluster, sizeof(cluster), INGEST_KAFKA_PROBE_MS) < 0) {
        snprintf(err, err_len, "Kafka at %s does not answer", app.common.kafka_bootstrap);
        return -1;
    }
    return 0;
}

/* On the loop once migrations applied: open the clients and the API. */
static void ingest_on_started(void *ctx)
{
    static int backoff_ms = STARTUP_BACKOFF_MIN_MS;
    char err[512];
    if (app.stopping)
        return;
    if (ingest_open(err, sizeof(err)) < 0) {
        /* The broker went away since the step checked it, or the port is
         * taken: try again later rather than exit. */
        char wait[16];
        snprintf(wait, sizeof(wait), "%d", backoff_ms);
        log_fields(LOG_WARN, "cannot open the clients; retrying", "retry_in_ms", wait, "error", err,
                   NULL);
        ingest_close();
        if (!open_retry)
            open_retry = evtimer_new(app.base, ingest_on_started_cb, NULL);
        struct timeval tv = {backoff_ms / 1000, (backoff_ms % 1000) * 1000};
        evtimer_add(open_retry, &tv);
        backoff_ms =
            backoff_ms * 2 > STARTUP_BACKOFF_MAX_MS ? STARTUP_BACKOFF_MAX_MS : backoff_ms * 2;
        return;
    }
    http_server_set_metrics_name(app.api, "api");
    http_server_set_access_log(app.api, true);
    struct timeval sweep_every = {OUTBOX_SWEEP_S, 0};
    app.outbox_timer = event_new(app.base, -1, EV_PERSIST, member_events_sweep, &app);
    event_add(app.outbox_timer, &sweep_every);
    struct timeval settle_every = {0, REDEMPTION_SETTLE_MS * 1000};
    app.redemption_timer = event_new(app.base, -1, EV_PERSIST, redemption_settle_tick, &app);
    event_add(app.redemption_timer, &settle_every);
    struct timeval coupons_every = {0, COUPON_ISSUER_MS * 1000};
    app.coupon_timer = event_new(app.base, -1, EV_PERSIST, coupon_issuer_tick, &app);
    event_add(app.coupon_timer, &coupons_every);
    struct timeval purge_every = {app.idem_purge_interval_ms / 1000,
                                  (app.idem_purge_interval_ms % 1000) * 1000};
    app.idem_purge_timer = event_new(app.base, -1, EV_PERSIST, on_idem_purge_tick, &app);
    event_add(app.idem_purge_timer, &purge_every);
    char api_port[8];
    snprintf(api_port, sizeof(api_port), "%u", http_server_port(app.api));
    log_fields(LOG_INFO, "started", "api_addr", app.api_addr, "api_port", api_port, NULL);
}

/* The NAME of `--create-platform-key NAME`, or NULL. */
static const char *platform_key_name(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--create-platform-key") == 0)
            return argv[i + 1];
    return NULL;
}

static bool wants_reencrypt(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--reencrypt-pii") == 0)
            return true;
    return false;
}

/* `--reencrypt-pii`: the second half of a master key rotation (and of the
 * upgrade from plaintext rows). Safe to run while instances serve: every
 * row is resealed under a compare-and-set on its key version. */
static int reencrypt_and_exit(void)
{
    char err[512];
    if (service_migrate(&app.common, "ingest", ingest_migrations, ingest_migrations_count) < 0) {
        pii_keyring_wipe(&app.pii);
        return 1;
    }
    long long n = pii_reencrypt_all(app.common.pg_dsn, &app.pii, err, sizeof(err));
    pii_keyring_wipe(&app.pii);
    if (n < 0) {
        log_fields(LOG_ERROR, "re-encryption failed", "error", err, NULL);
        return 1;
    }
    char count[24];
    snprintf(count, sizeof(count), "%lld", n);
    log_fields(LOG_INFO, "re-encryption done", "rows", count, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = service_init("ingest", "tessera-ingest: the HTTP API", argc, argv, config_table,
                          sizeof(config_table) / sizeof(config_table[0]), &app.common);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (service_migrate_only(argc, argv))
        return service_migrate(&app.common, "ingest", ingest_migrations, ingest_migrations_count) <
               0;
    const char *platform_key = platform_key_name(argc, argv);
    if (platform_key) /* the bootstrap: migrate, then make the key */
        return service_migrate(&app.common, "ingest", ingest_migrations, ingest_migrations_count) <
                       0
                   ? 1
                   : platform_key_create(app.common.pg_dsn, platform_key);
    char err[512];
    if (pii_keyring_init(&app.pii, app.master_key_hex, (int)app.master_key_version,
                         app.master_key_previous_hex, err, sizeof(err)) < 0) {
        log_fields(LOG_ERROR, "bad master key configuration", "error", err, NULL);
        return 2;
    }
    if (wants_reencrypt(argc, argv))
        return reencrypt_and_exit();
    if (rate_limiter_init(&app.limiter, RATE_BUCKETS) < 0) {
        log_error("no memory for the rate limiter");
        return 1;
    }
    evthread_use_pthreads();
    app.base = event_base_new();
    app.pwhash.base = app.base;
    /* The admin port comes first, so /readyz can say 503 while the
     * database or the broker are not there yet. */
    admin = admin_server_new(app.base, app.common.admin_addr, (uint16_t)app.common.admin_port,
                             "ingest", ingest_ready, NULL, &app, err, sizeof(err));
    if (!admin) {
        log_fields(LOG_ERROR, "cannot open the admin port", "error", err, NULL);
        return 1;
    }
    char admin_port[8];
    snprintf(admin_port, sizeof(admin_port), "%u", admin_server_port(admin));
    log_fields(LOG_INFO, "starting", "admin_port", admin_port, NULL);
    metrics_on_collect(ingest_collect, &app);
    struct service_signals *signals = service_signals_new(app.base, ingest_stop, NULL);
    startup =
        startup_begin(app.base, "migrations and Kafka", ingest_start_step, ingest_on_started, &app);

    event_base_dispatch(app.base);

    (void)startup_free(startup); /* the API, if opened, is closed below */
    if (app.outbox_timer)
        event_free(app.outbox_timer);
    if (app.redemption_timer)
        event_free(app.redemption_timer);
    if (app.coupon_timer)
        event_free(app.coupon_timer);
    if (app.idem_purge_timer)
        event_free(app.idem_purge_timer);
    if (open_retry)
        event_free(open_retry);
    if (drain_timer)
        event_free(drain_timer);
    ingest_close();
    member_events_free(&app); /* after the producer's last reports */
    admin_server_free(admin);
    service_signals_free(signals);
    event_base_free(app.base);
    log_batch_flush(); /* access lines of exchanges answered after the server closed */
    pii_keyring_wipe(&app.pii);
    rate_limiter_free(&app.limiter);
    log_info(failed ? "stopped after a fatal error" : "stopped");
    return failed ? 1 : 0;
}
