/* The notification service: consumes notify-requests (requests, login
 * codes, members' contacts and consents, inbox reads, templates and
 * policy), decides each request per channel under the tenant's policy
 * (rules_policy.h), writes inbox rows and the deliveries the delivery
 * worker (sender.c) drains to SMTP and the webhook providers, and reports
 * outcomes on notify-events through the outbox. */
#ifndef TESSERA_NOTIFICATION_H
#define TESSERA_NOTIFICATION_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"
#include "events/codec.h"
#include "service/common.h"
#include "service/pipeline.h"
#include "tessera/identity/v1/identity.pb-c.h"
#include "tessera/notification/v1/notification.pb-c.h"

typedef Tessera__Notification__V1__NotifyRequest NotifyRequest;
typedef Tessera__Notification__V1__Variable NotifyVariable;
typedef Tessera__Notification__V1__MemberContactChanged MemberContactChanged;
typedef Tessera__Notification__V1__ConsentChanged ConsentChanged;
typedef Tessera__Notification__V1__InboxMessagesRead InboxMessagesRead;
typedef Tessera__Notification__V1__TemplateChanged TemplateChanged;
typedef Tessera__Notification__V1__NotificationPolicyChanged NotificationPolicyChanged;
typedef Tessera__Identity__V1__LoginCodeRequested LoginCodeRequested;

#define NOTIFY_ADDRESS_MAX    320 /* an email address at most (RFC 5321 path) */
#define NOTIFY_NAME_MAX       200
#define NOTIFY_MESSAGE_ID_LEN 32  /* hex of a 16-byte hash */
#define NOTIFY_READ_IDS_MAX   500 /* message ids in one InboxMessagesRead */
#define NOTIFY_VARIABLES_MAX  64

/* Lanes of the delivery queue: high never waits behind bulk. */
enum notify_lane { LANE_HIGH = 0, LANE_NORMAL = 1, LANE_BULK = 2 };

/* Configuration (main.c's table), read by every file of the service. */
struct notify_config {
    const char *contact_key_hex; /* 64 hex digits; "" stores contacts unsealed */
    const char *smtp_url;        /* "smtp://host:port" or smtps://; "" = no email provider */
    const char *smtp_from;
    const char *smtp_username;
    const char *smtp_password;
    const char *smtp_tls; /* "none" | "try" | "required" (STARTTLS) */
    const char *sms_url;  /* webhook; "" = no SMS provider */
    const char *push_url; /* webhook; "" = no push provider */
    const char *webhook_secret;
    const char *tenant_name; /* shown as {{tenant.name}} when the request has none */
    long long send_timeout_ms;
    long long attempts_max;
    long long backoff_base_ms;
    long long backoff_max_ms;
    long long inflight_high;
    long long inflight_bulk;
    long long senders; /* delivery workers (threads) */
    long long breaker_failures;
    long long breaker_open_ms;
};
extern struct notify_config notify_cfg;

/* Per-batch counters, counted in /metrics after commit. */
struct notify_ctx {
    long long requests, duplicates, inbox_delivered, queued, held, suppressed;
};

/* pipeline_ops (apply.c), on the pipeline thread. */
void notify_begin_batch(void *ctx);
int notify_apply_batch(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len);
void notify_after_commit(void *ctx, struct pipeline_batch *b);

/* facts.c: contacts and consents, gathered over a run of consecutive
 * facts and written in one statement (last change by message order wins). */
#define NOTIFY_CONTACT_COLUMNS 5 /* tenant, member, sealed, locale, erased */
#define NOTIFY_CONSENT_COLUMNS 6 /* tenant, member, channel, purpose, granted, source */
struct notify_facts {
    struct db_array contact[NOTIFY_CONTACT_COLUMNS], consent[NOTIFY_CONSENT_COLUMNS];
    size_t count; /* facts gathered since the last flush */
};
bool notify_is_fact(const Envelope *env);
void notify_facts_init(struct notify_facts *f);
void notify_facts_free(struct notify_facts *f);
/* Checks and gathers one fact: 0, 1 (poison: reason set, nothing gathered)
 * or -1 (out of memory, with err). */
int notify_facts_add(struct notify_facts *f, const Envelope *env, const char **poison, char *err,
                     size_t err_len) __attribute__((warn_unused_result));
/* Writes what was gathered (nothing: no statement) and empties f. 0, or -1
 * with err. */
int notify_facts_flush(struct notify_facts *f, PGconn *pg, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* settings.c: inbox reads, templates and policy, one message each inside
 * the batch's transaction. 0, 1 (poison: reason set) or -1 (database
 * error with err). */
int notify_apply_setting(PGconn *pg, const Envelope *env, const char **poison, char *err,
                         size_t err_len);

/* decide.c: one request (decoded from a NotifyRequest or a login code);
 * decided in runs (decide.h). */
struct notify_request_in {
    const char *tenant_id, *member_id, *request_id, *template_name, *purpose, *priority;
    const char *const *channels;
    size_t channel_count;
    const NotifyVariable *const *variables;
    size_t variable_count;
    const char *locale;
    int64_t expires_at_us;
    const char *phone; /* the login code's recipient, else NULL (the contact's) */
};
/* The stable id of a request's message on a channel: providers and the
 * inbox de-duplicate on it. out must hold NOTIFY_MESSAGE_ID_LEN + 1. */
void notify_message_id(const char *tenant_id, const char *request_id, const char *channel,
                       char *out);

/* seal.c: contacts at rest. */
int notify_seal_init(const char *key_hex) __attribute__((warn_unused_result));
/* Returns a malloc'ed sealed copy of text (len bytes in *out_len). */
unsigned char *notify_seal(const char *text, size_t *out_len);
/* Returns a malloc'ed string, or NULL when data is not ours. */
char *notify_unseal(const unsigned char *data, size_t len);

/* outcomes.c: encoded outcome envelopes (malloc'ed; NULL on failure). */
uint8_t *notify_outcome_suppressed(const char *tenant_id, const char *member_id,
                                   const char *request_id, const char *channel, const char *rule,
                                   size_t *len);
uint8_t *notify_outcome_delivered(const char *tenant_id, const char *member_id,
                                  const char *request_id, const char *message_id,
                                  const char *channel, int attempts, size_t *len);
uint8_t *notify_outcome_failed(const char *tenant_id, const char *member_id, const char *request_id,
                               const char *message_id, const char *channel, int attempts,
                               const char *reason, bool permanent, size_t *len);

/* sender.c: the delivery worker thread (started from setup). */
int notify_sender_start(const struct service_common_config *common)
    __attribute__((warn_unused_result));
void notify_sender_stop(void);

#endif
